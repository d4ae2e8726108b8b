# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/route.sh: keyauthctl route list|show|set (route_overrides),
# deploy --preview / --if-preview, and what a deploy of route edits does to
# HAProxy and keyauthd (issue #22). Sourced by run.sh (K, KD, T, HAPROXY and
# the helpers of lib.sh). Keys stay in 0600 files: curl reads its header with
# -H @FILE, never from argv.

R=$T/route
mkdir -p "$R/var" "$R/hap"
RC=$R/k.conf
OV=$R/var/routes.override
cat >"$RC" <<EOF
# a comment keyauthctl must never rewrite
listen = [ "127.0.0.1:$AGENT_PORT" ];
allow_plain_tcp = true;
store = { path = "$R/var/keys.db"; };
route_overrides = "$OV";
frontend = { bind = [ "127.0.0.1:8080" ]; };
routes = (
	{ name = "openai"; context = "/openai"; upstream = "127.0.0.1:9";
	  security = { key_name = "X-API-Key"; key_location = "header"; }; },
	{ name = "mistral"; context = "/mistral"; upstream = "127.0.0.1:9"; },
	{ name = "chat"; type = "proxy"; context = "/apps/chat"; upstream = "127.0.0.1:9";
	  security = { key_name = "api_key"; key_location = "query"; }; }
);
EOF
CONF_SUM=$(sha256sum <"$RC")
# jq_out EXPR: EXPR (JavaScript, on the JSON value v) of $T/out.
jq_out() { node -e 'const v=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(eval(process.argv[2]))' "$T/out" "$1" 2>/dev/null; }
# files_sum FILE...: one checksum of the files (absent ones count as absent).
files_sum() { for f in "$@"; do if [ -e "$f" ]; then sha256sum <"$f"; else echo "absent $f"; fi; done | sha256sum; }

# ---- feature off: no route_overrides ----
run "$K" -c "$C" route list; expect_rc 0 "route list without route_overrides"
expect_out "^openai +/openai " "route list shows the routes"
run "$K" -c "$C" route set openai --rpm 5; expect_rc 1 "route set without route_overrides fails"
expect_err "route_overrides = \"/var/lib/keyauth/routes.override\";" "route set says how to enable the overrides"

# ---- list / show ----
run "$K" -c "$RC" route list --json; expect_rc 0 "route list --json"
if json_ok "$T/out" && [ "$(jq_out 'v.routes.length')" = 3 ] &&
   [ "$(jq_out 'v.routes.every(r => /^[0-9a-f]{32}$/.test(r.etag) && r.pending === false)')" = true ] &&
   [ "$(jq_out 'JSON.stringify(Object.keys(v.routes[0]))')" = '["name","context","provider","security","carriers","rate_limit_rpm","methods","etag","pending"]' ] &&
   [ "$(jq_out 'JSON.stringify(v.routes[0].security)')" = '{"key_name":"X-API-Key","key_location":"header"}' ]
then ok; else bad "route list --json: the contract's shape, an etag per route, nothing pending"; fi
run "$K" -c "$RC" route show chat --json; expect_rc 0 "route show --json"
if [ "$(jq_out 'v.name + " " + v.carriers.join() + " " + v.methods.join()')" = "chat query:api_key GET,HEAD,POST,DELETE,OPTIONS" ]
then ok; else bad "route show --json: one route"; fi
ETAG_CHAT=$(jq_out v.etag)
run "$K" -c "$RC" route show nosuch; expect_rc 3 "route show of an unknown route: exit 3"
expect_err 'no route "nosuch"' "route show names the unknown route"
run "$K" -c "$RC" route set nosuch --rpm 5; expect_rc 3 "route set of an unknown route: exit 3"
run "$K" -c "$RC" route show; expect_rc 2 "route show without a name: usage"
run "$K" -c "$RC" route set openai; expect_rc 2 "route set with nothing to set: usage"
run "$K" -c "$RC" route set openai --carrier bearer --key-name X; expect_rc 2 "--carrier with --key-name: usage"
run "$K" -c "$RC" route set openai --rpm ten; expect_rc 2 "--rpm ten: usage"

# ---- validation: the config file's own messages, nothing written ----
# A config with the same bad values, for the messages keyauthd gives.
sed 's/key_name = "X-API-Key"/key_name = "bad name"/' "$RC" | grep -v route_overrides >"$R/bad.conf"
run "$KD" -t -c "$R/bad.conf"
want=$(grep -o 'bad key_name.*' "$T/err" | head -n 1)
run "$K" -c "$RC" route set openai --key-name "bad name"; expect_rc 2 "route set with a bad key name: exit 2"
if [ -n "$want" ] && grep -qF "$want" "$T/err" && grep -qE "routes\.override\.pending:[0-9]+: bad key_name" "$T/err"
then ok; else bad "a bad key name: keyauth.conf's message, at the override file's line (want: $want)"; fi
run "$K" -c "$RC" route set openai --key-location cookie; expect_rc 2 "bad key location: exit 2"
expect_err 'bad key_location "cookie" \(use "header" or "query"\)' "bad key location: the config's message"
run "$K" -c "$RC" route set openai --rpm 2000000; expect_rc 2 "rpm out of range: exit 2"
expect_err 'rate_limit_rpm = 2000000 in route "openai" is out of range \(use 0\.\.1000000\)' "rpm out of range: the config's message"
run "$K" -c "$RC" route set openai --carrier cookie:x; expect_rc 2 "bad carrier: exit 2"
expect_err 'bad carrier "cookie:x"' "bad carrier: the config's message"
run "$K" -c "$RC" route set openai --carrier bearer --carrier bearer; expect_rc 2 "duplicate carrier: exit 2"
if [ ! -e "$OV.pending" ] && [ ! -e "$OV" ] && [ -z "$(find "$R/var" -name '*.candidate*')" ]
then ok; else bad "invalid edits leave no override file behind"; fi

# ---- an edit: pending, etag, If-Match ----
run "$K" -c "$RC" route show openai --json; E1=$(jq_out v.etag)
run "$K" -c "$RC" route set openai --key-name X-Custom-Key --if-match "$E1" --json
expect_rc 0 "route set --key-name with the current etag"
if [ "$(jq_out 'v.security.key_name + " " + v.pending + " " + (v.etag !== process.argv[3])' "$E1")" = "X-Custom-Key true true" ]
then ok; else bad "route set --json: the new key name, pending, a new etag"; fi
E2=$(jq_out v.etag)
run "$K" -c "$RC" route show openai --json
if [ "$(jq_out v.etag)" = "$E2" ]; then ok; else bad "route show gives the etag route set answered"; fi
run "$K" -c "$RC" route set openai --rpm 7 --if-match "$E1"; expect_rc 4 "route set with a stale etag: exit 4"
expect_err "changed since etag $E1" "a stale etag is named"
run "$K" -c "$RC" route show openai --json
if [ "$(jq_out v.rate_limit_rpm)" = 0 ] && [ "$(jq_out v.etag)" = "$E2" ]; then ok; else bad "a stale etag changed nothing"; fi
if [ "$(sha256sum <"$RC")" = "$CONF_SUM" ]; then ok; else bad "keyauth.conf is byte-identical after route set"; fi
if [ -f "$OV.pending" ] && [ ! -e "$OV" ]; then ok; else bad "the edit is pending (only $OV.pending written)"; fi
# Applied is what keyauthd and keyauthctl haproxy read: still X-API-Key.
run "$K" -c "$RC" haproxy; expect_rc 0 "render while an edit is pending"
if grep -q 'req.fhdr(X-API-Key)' "$T/out" && ! grep -q 'X-Custom-Key' "$T/out"; then ok
else bad "keyauthctl haproxy renders the applied settings, not the pending edit"; fi
run "$K" -c "$RC" route list; expect_out "^openai .*header:X-Custom-Key .* pending$" "route list marks the pending edit"

# ---- ten concurrent edits with one etag: exactly one wins ----
run "$K" -c "$RC" route show mistral --json; EM=$(jq_out v.etag)
for i in $(seq 1 10); do
	( bounded "$K" -c "$RC" route set mistral --rpm "$((100 + i))" --if-match "$EM" >/dev/null 2>&1
	  echo $? >"$R/race.$i" ) &
done
wait
wins=0; stale=0; winner=
for i in $(seq 1 10); do
	case $(cat "$R/race.$i") in 0) wins=$((wins + 1)); winner=$((100 + i)) ;; 4) stale=$((stale + 1)) ;; esac
done
run "$K" -c "$RC" route show mistral --json
if [ "$wins" = 1 ] && [ "$stale" = 9 ] && [ "$(jq_out v.rate_limit_rpm)" = "$winner" ]; then ok
else bad "10 concurrent route set with one etag: $wins won, $stale stale (want 1 and 9, the winner's rpm kept)"; fi
run "$K" -c "$RC" route show openai --json
if [ "$(jq_out v.security.key_name)" = X-Custom-Key ]; then ok; else bad "the race lost no earlier edit"; fi
run "$K" -c "$RC" route set mistral --reset; expect_rc 0 "route set --reset"
run "$K" -c "$RC" route show mistral --json
if [ "$(jq_out 'v.rate_limit_rpm + " " + v.pending')" = "0 false" ]; then ok; else bad "--reset: back to keyauth.conf, nothing pending"; fi

# ---- deploy --preview: the diff and an id, no side effect ----
DEP=$R/hap
# What is installed: the config without the edits (a copy without route_overrides).
grep -v '^route_overrides' "$RC" >"$R/noovr.conf"
run "$K" -c "$R/noovr.conf" deploy --haproxy-service none --haproxy-dir "$DEP" --reload-haproxy none
expect_rc 0 "deploy the config without the edits"
run "$K" -c "$RC" route set chat --rpm 30; expect_rc 0 "a second pending edit"
SUM=$(files_sum "$DEP/keyauth-spoe.conf" "$DEP/haproxy-keyauth.cfg" "$OV" "$OV.pending" "$RC" "$R/var/keys.db.audit")
run "$K" -c "$RC" deploy --haproxy-service none --haproxy-dir "$DEP" --preview --json
expect_rc 0 "deploy --preview --json"
P1=$(jq_out v.preview_id)
if json_ok "$T/out" && [[ $P1 =~ ^[0-9a-f]{64}$ ]] && [ "$(jq_out v.changed)" = true ] &&
   [ "$(jq_out 'JSON.stringify(v.routes)')" = '["openai","chat"]' ] &&
   [ "$(jq_out 'JSON.stringify(Object.keys(v))')" = '["preview_id","changed","diff","routes"]' ] &&
   [ "$(jq_out 'v.diff.includes("+    args route=str(openai) key=req.fhdr(X-Custom-Key)") && v.diff.includes("-    args route=str(openai) key=req.fhdr(X-API-Key)")')" = true ]
then ok; else bad "deploy --preview --json: id, changed, the diff -u of the new key name, the routes"; fi
if [ "$(files_sum "$DEP/keyauth-spoe.conf" "$DEP/haproxy-keyauth.cfg" "$OV" "$OV.pending" "$RC" "$R/var/keys.db.audit")" = "$SUM" ]
then ok; else bad "deploy --preview changed no file (haproxy dir, overrides, config, audit)"; fi
run "$K" -c "$RC" deploy --haproxy-service none --haproxy-dir "$DEP" --preview
expect_rc 0 "deploy --preview (text)"
expect_out "^preview id: $P1$" "the text preview shows the same id"
expect_out "^routes with pending edits: openai chat$" "the text preview names the routes"
# --if-preview: stale after another edit, then exact.
run "$K" -c "$RC" route set chat --rpm 31; expect_rc 0 "an edit after the preview"
SUM=$(files_sum "$DEP/keyauth-spoe.conf" "$DEP/haproxy-keyauth.cfg" "$OV" "$OV.pending")
run "$K" -c "$RC" deploy --haproxy-service none --haproxy-dir "$DEP" --reload-haproxy none --if-preview "$P1"
expect_rc 4 "deploy --if-preview of a stale preview: exit 4"
expect_err "changed since preview $P1" "the stale preview is named"
if [ "$(files_sum "$DEP/keyauth-spoe.conf" "$DEP/haproxy-keyauth.cfg" "$OV" "$OV.pending")" = "$SUM" ]
then ok; else bad "a stale --if-preview wrote nothing"; fi
run "$K" -c "$RC" deploy --haproxy-service none --haproxy-dir "$DEP" --preview --json; P2=$(jq_out v.preview_id)
run "$K" -c "$RC" deploy --haproxy-service none --haproxy-dir "$DEP" --reload-haproxy none --if-preview "$P2"
expect_rc 0 "deploy --if-preview of the current preview"
if grep -q 'req.fhdr(X-Custom-Key)' "$DEP/keyauth-spoe.conf" && grep -q 'del-header X-Custom-Key' "$DEP/haproxy-keyauth.cfg"
then ok; else bad "the deployed files read the new key name"; fi
if [ -f "$OV" ] && [ ! -e "$OV.pending" ]; then ok; else bad "deploy made the pending edits the applied ones"; fi
run "$K" -c "$RC" route list --json
if [ "$(jq_out 'v.routes.some(r => r.pending)')" = false ] &&
   [ "$(jq_out 'v.routes.find(r => r.name === "chat").rate_limit_rpm')" = 31 ]; then ok
else bad "after deploy nothing is pending and the edits are applied"; fi
run "$K" -c "$RC" deploy --haproxy-service none --haproxy-dir "$DEP" --preview --json
if [ "$(jq_out 'v.changed + " " + v.routes.length + " " + v.diff.length')" = "false 0 0" ]; then ok
else bad "a preview after the deploy: nothing changed"; fi
if [ "$(sha256sum <"$RC")" = "$CONF_SUM" ]; then ok; else bad "keyauth.conf is byte-identical after deploy"; fi
if [ -x "$KD" ]; then
	run "$KD" -t -c "$RC"; expect_rc 0 "keyauthd -t reads the applied overrides"
fi

# ---- audit ----
run "$K" -c "$RC" audit --json; expect_rc 0 "audit --json"
if [ "$(jq_out 'v.some(e => e.change === "route_changed" && e.route === "openai" && e.key_id === null && e.fields.key_name.old === "X-API-Key" && e.fields.key_name.new === "X-Custom-Key")')" = true ] &&
   [ "$(jq_out 'v.some(e => e.change === "deployed" && e.fields.routes.new.join() === "openai,chat")')" = true ] &&
   [ "$(jq_out 'v.filter(e => e.change === "route_changed" && e.route === "mistral").length')" = 2 ]
then ok; else bad "audit: route_changed (old -> new) per edit, one race winner only, and deployed"; fi

# ---- bad override files: the file and line, never a keyauthd crash ----
cp "$OV" "$R/ov.good"
printf 'version = 1;\nroutes = ( { name = "openai";\n  security = { key_name = "X-Custom-Key"; key_location = "cookie"; }; } );\n' >"$OV"
if [ -x "$KD" ]; then
	run "$KD" -t -c "$RC"; expect_rc 1 "keyauthd -t refuses an invalid override"
	expect_err "^$OV:3: bad key_location \"cookie\"" "the invalid override's file and line"
fi
# An override of a route keyauth.conf no longer has: ignored, said.
printf 'version = 1;\nroutes = ( { name = "gone"; rate_limit_rpm = 5; } );\n' >"$OV"
if [ -x "$KD" ]; then
	run "$KD" -t -c "$RC"; expect_rc 0 "keyauthd -t: an orphan override is no start failure"
	expect_err "event=route_override_ignored route=gone" "keyauthd reports the orphan override"
fi
run "$K" -c "$RC" route list; expect_rc 0 "route list with an orphan override"
expect_err 'overrides route "gone", which .* no longer has: ignored' "route list warns about the orphan"
run "$K" -c "$RC" route set gone --reset; expect_rc 0 "route set --reset drops an orphan override"
if ! grep -q gone "$OV.pending"; then ok; else bad "the orphan override is gone from the pending file"; fi
rm -f "$OV.pending"
chmod 0666 "$OV"
run "$K" -c "$RC" route list; expect_rc 1 "a world-writable override file is refused"
expect_err "$OV: writable by others" "the untrusted override file is named"
cp "$R/ov.good" "$OV"; chmod 0644 "$OV"

# ---- run as root: a new audit log keeps the agent's ownership ----
# The agent's user (here nobody) owns its state directory; root's route set
# must not leave a log that user cannot append to.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	mkdir -p "$R/owned"
	chown nobody "$R/owned"
	sed -e "s|$R/var/|$R/owned/|g" "$RC" >"$R/owned.conf"
	echo 'user = "nobody";' >>"$R/owned.conf"
	run "$K" -c "$R/owned.conf" route set chat --rpm 9; expect_rc 0 "route set in a directory owned by the agent's user"
	if [ "$(stat -c %U "$R/owned/keys.db.audit")" = nobody ]; then ok
	else bad "a new audit log gets the owner of its directory (got $(stat -c %U "$R/owned/keys.db.audit"))"; fi
	if [ "$(stat -c %a "$R/owned/keys.db.audit")" = 600 ]; then ok; else bad "audit log mode stays 0600"; fi
fi

# ---- live: HAProxy (each installed version) and keyauthd take the deployed edit ----
HAP32=$CLI/../../.haproxy32/bin/haproxy
route_live() { # route_live HAPROXY LABEL
	local hx=$1 v=$2 L=$R/live-$2 up fp ap kd hp uh i code
	mkdir -p "$L/var" "$L/dep"
	up=$(free_port); fp=$(free_port); ap=$(free_port)
	cat >"$L/up.cfg" <<EOF
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend up
    bind 127.0.0.1:$up
    http-request return status 200 content-type text/plain string upstream-ok
EOF
	cat >"$L/k.conf" <<EOF
listen = [ "127.0.0.1:$ap" ];
allow_plain_tcp = true;
workers = 1;
store = { path = "$L/var/keys.db"; };
pid_file = "$L/keyauthd.pid";
route_overrides = "$L/var/routes.override";
frontend = { bind = [ "127.0.0.1:$fp" ]; };
routes = ( { name = "openai"; context = "/openai"; upstream = "127.0.0.1:$up";
             security = { key_name = "X-API-Key"; key_location = "header"; }; } );
EOF
	"$hx" -db -f "$L/up.cfg" >"$L/up.log" 2>&1 &
	uh=$!; PIDS+=("$uh")
	run "$K" -c "$L/k.conf" key create --route openai --owner route-test; expect_rc 0 "$v: create a key"
	key_file "live-$v.key"
	{ printf 'X-Custom-Key: '; cat "$T/live-$v.key"; echo; } >"$L/h.custom"
	{ printf 'X-API-Key: '; cat "$T/live-$v.key"; echo; } >"$L/h.old"
	KEYAUTH_ALLOW_ROOT=1 "$KD" -c "$L/k.conf" 2>"$L/agent.log" &
	kd=$!; PIDS+=("$kd")
	for i in $(seq 1 100); do [ -s "$L/keyauthd.pid" ] && break; sleep 0.05; done
	[ -s "$L/keyauthd.pid" ] || bad "$v: keyauthd wrote no pid file within 5 s"
	run "$K" -c "$L/k.conf" route set openai --key-name X-Custom-Key --rpm 1; expect_rc 0 "$v: route set"
	run "$K" -c "$L/k.conf" deploy --haproxy-service none --haproxy "$hx" --haproxy-dir "$L/dep" --reload-haproxy none --json
	expect_rc 0 "$v: deploy the edit"
	if [ "$(jq_out v.agent.signalled)" = true ]; then ok; else bad "$v: deploy signalled keyauthd"; fi
	for i in $(seq 1 100); do grep -q 'event=reload result=ok' "$L/agent.log" && break; sleep 0.05; done
	expect_log_grep 'event=reload result=ok' "$L/agent.log" "$v: keyauthd reloaded after the deploy"
	"$hx" -db -f "$L/dep/haproxy-keyauth.cfg" >"$L/hap.log" 2>&1 &
	hp=$!; PIDS+=("$hp")
	code=000
	for i in $(seq 1 100); do
		code=$(curl -s --max-time 2 -o "$L/body" -w '%{http_code}' -H @"$L/h.custom" "http://127.0.0.1:$fp/openai/v1/models")
		[ "$code" != 000 ] && [ "$code" != 503 ] && break; sleep 0.05
	done
	if [ "$code" = 200 ] && grep -q upstream-ok "$L/body"; then ok; else bad "$v: the key in X-Custom-Key passes (got $code)"; fi
	code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H @"$L/h.custom" "http://127.0.0.1:$fp/openai/v1/models")
	if [ "$code" = 429 ]; then ok; else bad "$v: keyauthd applies the deployed rpm 1: second request 429 (got $code)"; fi
	code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H @"$L/h.old" "http://127.0.0.1:$fp/openai/v1/models")
	if [ "$code" = 401 ]; then ok; else bad "$v: the key in the old X-API-Key header is not read any more: 401 (got $code)"; fi
	stop_pid "$hp"; stop_pid "$kd"; stop_pid "$uh"
	if grep -qF -f "$T/live-$v.key" "$L/agent.log" "$L/hap.log" "$L/var/routes.override" "$L/var/keys.db.audit"
	then bad "$v: the key appears in a log or the override file"; else ok; fi
}
if [ -n "$HAPROXY" ] && [ -x "$KD" ] && command -v curl >/dev/null 2>&1; then
	route_live "$HAPROXY" 2.6
	if [ -x "$HAP32" ]; then route_live "$HAP32" 3.2; else
		bad "HAProxy 3.2 not found at $HAP32 (sh scripts/haproxy32.sh installs it)"; fi
else
	bad "route live test needs haproxy, keyauthd and curl"
fi
