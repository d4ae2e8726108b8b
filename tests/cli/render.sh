# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/render.sh, sourced by run.sh after limits.sh ($T/rl.conf): the
# haproxy command's SPOE and HAProxy files, checked by haproxy -c and a live
# HAProxy with no agent when $HAPROXY is installed; the rate-limit rendering
# (stick table, 429, peers); what the rendering lets through (issue 17): the
# log line, a route's methods (405, and their config errors), Host and the
# origin-form request line.

# ---- haproxy rendering --------------------------------------------------------------------

mkdir -p "$T/hap"
run "$K" -c "$C" haproxy --out "$T/hap" --bind 127.0.0.1:18080
expect_rc 0 "haproxy --out"
S=$T/hap/keyauth-spoe.conf
H=$T/hap/haproxy-keyauth.cfg
for pat in "option var-prefix keyauth" "option set-on-error err" "no option send-frag-payload" \
           "timeout hello" "timeout idle" "timeout processing 500ms" "use-backend keyauth_agents" \
           "spoe-message keyauth-openai" "key=req.fhdr\(Authorization\)" "key=req.fhdr\(X-API-Key\)" \
           "key=url_param\(api_key\)" "route=str\(chat\)" "event on-frontend-http-request if keyauth_ctx"; do
	if grep -qE -- "$pat" "$S"; then ok; else bad "SPOE file has /$pat/"; fi
done
for pat in "filter spoe engine keyauth config $S" "option spop-check" "mode tcp" \
           "server agent1 127.0.0.1:$AGENT_PORT check inter 2s" "return status 404" \
           "return status 503 .* if \{ var\(txn.keyauth.err\) -m found \}" "unknown_route" \
           "return status 401 .*WWW-Authenticate 'Bearer realm=\"keyauth\"'" "return status 403" \
           "deny deny_status 503 unless \{ var\(txn.keyauth.ok\) -m bool \}" \
           "del-header Authorization" "del-header X-API-Key" "set-query" "%\[var\(txn.keyauth_lpath\)\]" \
           "use_backend be_openai" "backend be_chat" "env\(KEYAUTH_OPENAI_CREDENTIAL\)"; do
	if grep -qE -- "$pat" "$H"; then ok; else bad "haproxy.cfg has /$pat/"; fi
done
if grep -vE '^ *#' "$H" | grep -qE '%r([^a-z]|$)|%\{[^}]*\}r([^a-z]|$)|%HU|option httplog'; then
	bad "log format must not record the query string"; else ok; fi

# ---- what the rendering lets through (issue 17) -------------------------------------------
# The log line: nothing of the request line but a standard method and the
# sanitized path; no header, no capture.
LF=$(grep -E '^ *log-format ' "$H")
if [ "$(grep -cE '^ *log-format ' "$H")" -eq 1 ] &&
   ! echo "$LF" | grep -qE '%(r|HU|HP|HPO|HQ|hr|hrl|HM)([^A-Za-z]|$)|%\{[^}]*\}|query|url|hdr|cook'; then ok
else bad "log-format has only the sanitized path and method: $LF"; fi
if grep -vE '^ *#' "$H" | grep -qE 'capture|option (httplog|tcplog|httpslog)|log-format-sd|error-log-format'; then
	bad "nothing else logs the request or its headers"; else ok; fi
expect_lpath='^    http-request set-var\(txn.keyauth_lpath\) "path,field\(1,;\),regsub\(ka_\[A-Za-z0-9_\]\*,<key>,g\),regsub\('"'"'\[-A-Za-z0-9_~%\+=\]\{20,\}'"'"',<token>,g\)"$'
lp=$(grep -nE "$expect_lpath" "$H" | cut -d: -f1)
first=$(grep -nE '^    http-request ' "$H" | head -n 1 | cut -d: -f1)
if [ -n "$lp" ] && [ "$lp" = "$first" ]; then ok
else bad "the logged path is set by the first http-request rule, parameters and key-like runs removed"; fi
if grep -qE '^    http-request set-var\(txn.keyauth_lmethod\) method if \{ method GET HEAD POST PUT PATCH DELETE OPTIONS TRACE CONNECT \}$' "$H"
then ok; else bad "the logged method is a standard one or none"; fi
# Methods: the default list in the SPOE message's event and in a 405 before the
# fail-closed rules, with Allow and the route's error shape.
if [ "$(grep -c '^    acl keyauth_meth method GET HEAD POST DELETE OPTIONS$' "$S")" -eq 3 ] &&
   [ "$(grep -cE '^    event on-frontend-http-request if keyauth_ctx( !keyauth_sub)? keyauth_meth$' "$S")" -eq 3 ]
then ok; else bad "every SPOE message is sent only for its route's methods"; fi
l405=$(grep -nE "^    http-request return status 405 content-type application/json string '.*\"code\":\"method_not_allowed\".*' hdr Allow 'GET, HEAD, POST, DELETE, OPTIONS' if !\{ method GET HEAD POST DELETE OPTIONS \}$" "$H" | cut -d: -f1)
l503=$(grep -n 'return status 503' "$H" | head -n 1 | cut -d: -f1)
l404=$(grep -n 'return status 404' "$H" | head -n 1 | cut -d: -f1)
if [ -n "$l405" ] && [ -n "$l503" ] && [ "$l405" -gt "$l404" ] && [ "$l405" -lt "$l503" ]; then ok
else bad "405 for other methods, after the 404 and before the agent's verdict is read"; fi
# Host: every backend sets its upstream's authority, numeric ones too; the
# request line goes upstream in origin-form.
for be in openai mistral chat; do
	if sed -n "/^backend be_$be\$/,/^\$/p" "$H" | grep -q '^    http-request set-header Host 127\.0\.0\.1:9$'; then ok
	else bad "backend be_$be sets Host to its numeric upstream 127.0.0.1:9"; fi
done
luri=$(grep -nF 'http-request set-uri "/%[pathq,regsub(^/,)]" unless { url_beg / }' "$H" | cut -d: -f1)
lback=$(grep -n 'deny deny_status 503 unless' "$H" | cut -d: -f1)
if [ -n "$luri" ] && [ "$luri" -gt "$lback" ] && grep -qF 'set-uri "%[path]" if { query -m found } !{ var(txn.keyauth_q) -m len gt 0 }' "$H"
then ok; else bad "absolute-form made origin-form after the backstop; the query rewrite kept"; fi

# A route's own methods: its own 405 rule, ACL and SPOE condition.
cat >"$T/meth.conf" <<EOF
listen = [ "unix:$T/meth.sock" ];
store = { path = "$T/store/keys.db"; };
routes = (
	{ name = "files"; context = "/files"; upstream = "127.0.0.1:8080"; methods = [ "PUT", "GET", "PATCH" ]; },
	{ name = "chat"; context = "/chat"; upstream = "[::1]:80"; provider = "anthropic"; },
	{ name = "tls"; context = "/tls"; upstream = "10.0.0.1:443"; }
);
EOF
mkdir -p "$T/meth"
run "$K" -c "$T/meth.conf" haproxy --out "$T/meth"; expect_rc 0 "render a route with methods"
MS=$T/meth/keyauth-spoe.conf
MH=$T/meth/haproxy-keyauth.cfg
if sed -n '/^spoe-message keyauth-files$/,/^$/p' "$MS" | grep -q '^    acl keyauth_meth method GET PUT PATCH$'; then ok
else bad "the SPOE message of a route with methods tests them"; fi
if grep -q "^    acl keyauth_mg1 var(txn.keyauth_route) -m str files$" "$MH" &&
   grep -q "return status 405 .*hdr Allow 'GET, PUT, PATCH' if !{ method GET PUT PATCH } keyauth_mg1$" "$MH" &&
   grep -q "return status 405 .*\"type\":\"error\".*hdr Allow 'GET, HEAD, POST, DELETE, OPTIONS' if !{ method GET HEAD POST DELETE OPTIONS } keyauth_mg2$" "$MH"
then ok; else bad "405 per group of methods and error shape"; fi
if sed -n '/^backend be_files$/,/^$/p' "$MH" | grep -q '^    http-request set-header Host 127\.0\.0\.1:8080$' &&
   sed -n '/^backend be_chat$/,/^$/p' "$MH" | grep -q '^    http-request set-header Host \[::1\]$' &&
   sed -n '/^backend be_tls$/,/^$/p' "$MH" | grep -q '^    http-request set-header Host 10\.0\.0\.1$'
then ok; else bad "Host: host:port, [IPv6], and no default port (80, 443)"; fi
if [ -n "$HAPROXY" ]; then
	run "$HAPROXY" -c -f "$MH"; expect_rc 0 "haproxy -c accepts the methods rendering"
fi
# Methods that are errors: keyauthd -t names the line and why, keyauthctl renders nothing.
for m in '"TRACE"@is never allowed \(TRACE echoes' '"CONNECT"@is never allowed \(CONNECT' \
         '"FOO"@unknown method "FOO"' '"GET", "GET"@duplicate method "GET"' '"get"@must be written "GET"' \
         '@methods is empty'; do
	printf 'listen = [ "unix:%s" ];\nstore = { path = "%s"; };\nroutes = (\n { name = "p"; context = "/p";\n   methods = [ %s ]; }\n);\n' \
		"$T/meth.sock" "$T/store/keys.db" "${m%%@*}" >"$T/badm.conf"
	run "$KD" -t -c "$T/badm.conf"
	expect_rc 1 "keyauthd -t: methods = [ ${m%%@*} ]"
	expect_err "badm.conf:[45]: .*${m#*@}" "keyauthd -t says why: methods = [ ${m%%@*} ]"
	run "$K" -c "$T/badm.conf" haproxy
	expect_rc 1 "keyauthctl haproxy refuses methods = [ ${m%%@*} ]"
done
if node - "$H" <<'JS'
const text = require('fs').readFileSync(process.argv[2], 'utf8');
const bodies = [...text.matchAll(/(?:string|lf-string) '([^']*)'/g)].map((m) => m[1]);
if (bodies.length < 6)
	throw new Error(`only ${bodies.length} bodies`);
for (const b of bodies) {
	// Any message, quotes included, in place of each %[...].
	const e = JSON.parse(b.replace(/%\[[^\]]*\]/g, 'x\\"y')).error;
	if (Object.keys(e).sort().join() !== 'code,message,param,type')
		throw new Error(`error members: ${Object.keys(e)}`);
}
JS
then ok; else bad "every JSON body is valid OpenAI-style JSON"; fi
run "$K" -c "$C" haproxy
expect_rc 0 "haproxy to stdout"
expect_out "^# ---- keyauth-spoe.conf" "stdout rendering has both files"
run "$K" -c "$C" haproxy --haproxy-version 9.9; expect_rc 2 "bad --haproxy-version"
# --out DIR that does not exist (the --help example): created with its
# parents, 0755 whatever the umask (run.sh sets 077); a file in the way or an
# invalid config create nothing.
run "$K" -c "$C" haproxy --out "$T/newout/a/b/"
expect_rc 0 "haproxy --out creates a missing DIR and its parents"
if [ -f "$T/newout/a/b/haproxy-keyauth.cfg" ] && [ -f "$T/newout/a/b/keyauth-spoe.conf" ]; then ok; else
	bad "haproxy --out wrote both files into the new DIR"; fi
if [ "$(stat -c %a "$T/newout" 2>/dev/null)" = 755 ] && [ "$(stat -c %a "$T/newout/a/b" 2>/dev/null)" = 755 ]; then ok; else
	bad "new --out directories are 0755 ($(stat -c %a "$T/newout" "$T/newout/a/b" 2>&1 | tr '\n' ' '))"; fi
grep -qs "spoe engine keyauth config $T/newout/a/b/keyauth-spoe.conf\$" "$T/newout/a/b/haproxy-keyauth.cfg" && ok ||
	bad "a new --out DIR is the default SPOE path"
run "$K" -c "$C" haproxy --out "$T/newout/a/b"; expect_rc 0 "haproxy --out an existing DIR again"
: >"$T/notadir"
run "$K" -c "$C" haproxy --out "$T/notadir"; expect_rc 1 "haproxy --out a regular file"
expect_err "notadir exists and is not a directory" "--out a file: clear error"
run "$K" -c "$C" haproxy --out "$T/notadir/sub"; expect_rc 1 "haproxy --out under a regular file"
expect_err "notadir exists and is not a directory" "--out under a file: clear error"
[ -f "$T/notadir" ] && [ ! -s "$T/notadir" ] && ok || bad "--out a file leaves it alone"
run "$K" -c "$T/missing.conf" haproxy --out "$T/nooutdir"; expect_rc 1 "haproxy --out with a missing config"
[ ! -e "$T/nooutdir" ] && ok || bad "a failed config load creates no --out DIR"
run "$K" -c "$C" haproxy --bind '1.2.3.4:80 ssl crt /x'; expect_rc 2 "--bind cannot inject"
mkdir -p "$T/hap32"
run "$K" -c "$C" haproxy --out "$T/hap32" --haproxy-version 3.2
expect_rc 0 "haproxy --haproxy-version 3.2"
if grep -v '^ *#' "$T/hap32/keyauth-spoe.conf" | grep -q "send-frag-payload\|timeout hello"; then
	bad "3.2 rendering drops 2.6-only directives"; else ok; fi

if [ -n "$HAPROXY" ]; then
	run "$HAPROXY" -c -f "$H"
	expect_rc 0 "haproxy -c accepts the rendered config"
	if grep -q "WARNING\|ALERT" "$T/out" "$T/err"; then bad "haproxy -c warns"; cat "$T/out" "$T/err" >&2; else ok; fi
	run "$HAPROXY" -c -f "$T/hap32/haproxy-keyauth.cfg"
	expect_rc 0 "haproxy -c accepts the 3.2 rendering (parsed by 2.6)"
	# A config with unix and IPv6 listeners, a root route and nested contexts.
	cat >"$T/k2.conf" <<EOF
listen = [ "127.0.0.1:$AGENT_PORT", "[::1]:$AGENT_PORT", "unix:$T/agent.sock" ];
allow_plain_tcp = true;
store = { path = "$T/store/keys.db"; };
routes = (
	{ name = "root"; context = "/"; upstream = "[::1]:9"; },
	{ name = "a"; context = "/a"; upstream = "127.0.0.1:443"; },
	{ name = "a-b"; context = "/a/b"; security = { key_name = "key"; key_location = "query"; }; }
);
EOF
	mkdir -p "$T/hap2"
	run "$K" -c "$T/k2.conf" haproxy --out "$T/hap2"
	expect_rc 0 "render nested contexts, unix and IPv6 agents"
	run "$HAPROXY" -c -f "$T/hap2/haproxy-keyauth.cfg"
	expect_rc 0 "haproxy -c accepts nested/unix/IPv6 rendering"
	if grep -q "acl keyauth_sub path_beg /a/b/" "$T/hap2/keyauth-spoe.conf"; then ok
	else bad "a parent route's message excludes the nested route"; fi
	if sed -n '/^backend be_root$/,/^$/p' "$T/hap2/haproxy-keyauth.cfg" | grep -q '^    http-request set-header Host \[::1\]:9$' &&
	   sed -n '/^backend be_a$/,/^$/p' "$T/hap2/haproxy-keyauth.cfg" | grep -q '^    http-request set-header Host 127\.0\.0\.1$'
	then ok; else bad "Host for numeric upstreams ([::1]:9; 127.0.0.1:443 without its port)"; fi

	# Fail closed for real: HAProxy with the rendered config and no agent.
	if command -v curl >/dev/null 2>&1; then
		FP=$(free_port)
		mkdir -p "$T/live"
		bounded "$K" -c "$C" haproxy --out "$T/live" --bind "127.0.0.1:$FP" >/dev/null 2>&1
		"$HAPROXY" -db -f "$T/live/haproxy-keyauth.cfg" >"$T/live/log" 2>&1 &
		HP_PID=$!
		PIDS+=("$HP_PID")
		up=0
		for _ in $(seq 1 100); do
			if curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$FP/"; then up=1; break; fi
			sleep 0.05
		done
		if [ "$up" -eq 1 ]; then
			code=$(curl -s --max-time 10 -o "$T/live/body" -w '%{http_code}' "http://127.0.0.1:$FP/nowhere")
			if [ "$code" = 404 ] && json_ok "$T/live/body"; then ok; else bad "path under no route: 404 JSON (got $code)"; fi
			code=$(curl -s --max-time 10 -o "$T/live/body" -w '%{http_code}' -H "Authorization: Bearer ka_x" \
			       "http://127.0.0.1:$FP/openai/v1/models")
			if [ "$code" = 503 ] && json_ok "$T/live/body"; then ok; else bad "agent down: 503 JSON (got $code)"; fi
			code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FP/apps/chat?api_key=ka_secretvalue&x=1")
			if [ "$code" = 503 ]; then ok; else bad "agent down on a query route: 503 (got $code)"; fi
			# Keys in the path: in its parameters, as a segment with or
			# without the prefix, percent-encoded.
			for u in '/apps/chat/v1;api_key=ka_secretvalue' '/apps/chat/v1;x=1/ka_secretvalue/m' \
			         '/openai/v1/SecretValueSecretValue42/m' '/openai/v1/%53ecretValue%53ecretValue'; do
				curl -s --max-time 10 -o /dev/null "http://127.0.0.1:$FP$u"
			done
			# Methods the route does not allow: 405 even with the agent down
			# (the agent is not asked), with Allow, in the route's shape.
			for m in TRACE FOO PUT get; do
				code=$(curl -s --max-time 10 -o "$T/live/body" -D "$T/live/hdrs" -w '%{http_code}' -X "$m" \
				       -H "Authorization: Bearer ka_x" "http://127.0.0.1:$FP/openai/v1/models")
				if [ "$code" = 405 ] && json_ok "$T/live/body" && grep -q '"method_not_allowed"' "$T/live/body" &&
				   grep -qi '^allow: GET, HEAD, POST, DELETE, OPTIONS' "$T/live/hdrs"; then ok
				else bad "$m: 405 JSON with Allow (got $code)"; fi
			done
		else
			bad "haproxy with the rendered config did not answer on 127.0.0.1:$FP within 5 s"
		fi
		stop_pid "$HP_PID"
		if [ "$up" -eq 1 ]; then
			if grep -qiE "secret|%53ecret" "$T/live/log"; then bad "a path key in the HAProxy log"; else ok; fi
			if grep -qE ' TRACE /openai/v1/models HTTP/1.1 route=openai ' "$T/live/log" &&
			   grep -qE ' - /openai/v1/models HTTP/1.1 route=openai ' "$T/live/log" &&
			   grep -qE ' /apps/chat/v1 HTTP/1.1 route=chat ' "$T/live/log" &&
			   grep -qE ' /openai/v1/<token>/m HTTP/1.1 ' "$T/live/log"; then ok
			else bad "the log line has the method (if standard), the sanitized path and the route"; sed 's/^/    /' "$T/live/log" >&2; fi
		fi
	fi
else
	echo "run.sh: haproxy not installed; haproxy -c checks skipped" >&2
fi

# ---- rate-limit rendering: the stick table, the 429 rule, peers ---------------------------
run "$K" -c "$T/rl.conf" haproxy; expect_rc 0 "render with a rate limit"
expect_out "^    http-request track-sc0 var\(txn.keyauth.key_id\) table keyauth_rate if \{ var\(txn.keyauth.ok\) -m bool \} \{ var\(txn.keyauth.rpm\) -m found \}$" "track-sc0 on the key id, allowed and limited only"
expect_out "http-request return status 429 .*rate_limit_error.*rate_limit_exceeded.* hdr Retry-After [0-9]+ if" "429 with an OpenAI-style error and Retry-After"
expect_out "stick-table type string len 16 size [0-9]+[km]? expire [0-9]+[smh] store gpc0_rate\(60s\)$" "stick table without peers"
expect_out "^    http-request sc-inc-gpc0\(0\) if \{ var\(txn.keyauth.rpm\) -m found \}$" "only admitted requests are counted"
if grep -q '^peers' "$T/out"; then bad "no peers section without haproxy_peers"; else ok; fi
cat >"$T/rlp.conf" <<EOF
store = { path = "$T/rl-keys.db"; };
routes = ( { name = "capped"; context = "/capped"; } );
haproxy_peers = ( { name = "lb1"; address = "127.0.0.1:10000"; }, { name = "lb2"; address = "[::1]:10001"; } );
haproxy_local_peer = "lb2";
EOF
run "$K" -c "$T/rlp.conf" haproxy; expect_rc 0 "render with peers"
expect_out "^peers keyauth_peers$" "peers section"
expect_out "^    peer lb2 \[::1\]:10001$" "peer lines"
expect_out "^    localpeer lb2$" "localpeer from haproxy_local_peer"
expect_out "store gpc0_rate\(60s\) peers keyauth_peers$" "the table is shared with the peers"
HAP=$(command -v haproxy || echo /usr/sbin/haproxy)
if [ -x "$HAP" ]; then
	mkdir -p "$T/rlp"
	run "$K" -c "$T/rlp.conf" haproxy --out "$T/rlp"
	run "$HAP" -c -f "$T/rlp/haproxy-keyauth.cfg"; expect_rc 0 "haproxy -c accepts the peers rendering"
fi

# ---- identity upstream (issue 20) -------------------------------------------------------------
# Client copies of X-Keyauth-* (and x_keyauth_*) are removed on every route, after
# the backstop; the headers are set from the ACK's variables, each only when its
# variable is found, for the routes with identity_headers (proxy routes by default).
ldel=$(grep -nE '^    http-request del-header x-keyauth- -m beg$' "$H" | cut -d: -f1)
lback=$(grep -n 'deny deny_status 503 unless' "$H" | cut -d: -f1)
if [ -n "$ldel" ] && [ -n "$lback" ] && [ "$ldel" -gt "$lback" ]; then ok
else bad "client X-Keyauth-* headers are removed, after the backstop"; fi
if grep -qE '^    acl keyauth_identity var\(txn.keyauth_route\) -m str chat$' "$H"; then ok
else bad "identity headers: the proxy route only, by default"; fi
nset=0
for v in "X-Keyauth-Key-Id key_id" "X-Keyauth-Owner owner" "X-Keyauth-Alias alias" "X-Keyauth-Tags tags"; do
	set -- $v
	l=$(grep -nE "^    http-request set-header $1 \"%\[var\(txn.keyauth.$2\)\]\" if keyauth_identity \{ var\(txn.keyauth.$2\) -m found \}$" "$H" | cut -d: -f1)
	[ -n "$l" ] && [ -n "$ldel" ] && [ "$l" -gt "$ldel" ] && nset=$((nset + 1))
done
if [ "$nset" -eq 4 ]; then ok; else bad "the four identity headers are set after the removal ($nset/4)"; fi
if grep -E 'X-Keyauth' "$H" | grep -qiE 'key\)|txn.keyauth.key[^_]|req.fhdr'; then bad "no identity header carries the key"; else ok; fi

mkdir -p "$T/idh"
cat >"$T/idh.conf" <<EOC
listen = [ "127.0.0.1:$AGENT_PORT" ];
allow_plain_tcp = true;
store = { path = "$T/idh/keys.db"; };
routes = (
	{ name = "openai"; context = "/openai"; upstream = "127.0.0.1:9"; identity_headers = true; },
	{ name = "mistral"; context = "/mistral"; upstream = "127.0.0.1:9"; identity_headers = false; },
	{ name = "chat"; type = "proxy"; context = "/apps/chat"; upstream = "127.0.0.1:9"; identity_headers = false; }
);
EOC
run "$K" -c "$T/idh.conf" haproxy --out "$T/idh"
expect_rc 0 "haproxy with identity_headers set per route"
if grep -qE '^    acl keyauth_identity var\(txn.keyauth_route\) -m str openai$' "$T/idh/haproxy-keyauth.cfg"; then ok
else bad "identity_headers = true on a provider route, false on a proxy route"; fi
sed -i 's/identity_headers = true;/identity_headers = false;/' "$T/idh.conf"
run "$K" -c "$T/idh.conf" haproxy --out "$T/idh"
if ! grep -q 'set-header X-Keyauth' "$T/idh/haproxy-keyauth.cfg" &&
   grep -qE '^    http-request del-header x-keyauth- -m beg$' "$T/idh/haproxy-keyauth.cfg" &&
   grep -qE '^    http-request del-header x_keyauth_ -m beg$' "$T/idh/haproxy-keyauth.cfg"; then ok
else bad "every route off: no identity header set, client copies still removed"; fi
if [ -n "$HAPROXY" ]; then
	run "$HAPROXY" -c -f "$T/idh/haproxy-keyauth.cfg"; expect_rc 0 "haproxy -c accepts the identity rendering"
fi
sed -i 's/identity_headers = false; },$/identity_headers = "yes"; },/' "$T/idh.conf"
run "$K" -c "$T/idh.conf" haproxy --out "$T/idh"
expect_rc 1 "identity_headers must be a boolean"
expect_err "identity_headers" "the bad setting is named"

# ---- the frontend: bind, client TLS, HTTP/2 (issue 21) ------------------------------------
# frontend.bind is what the gateway binds; --bind replaces it for a preview and
# keeps its TLS; deploy binds only what the config names.
H32=$(cd "$CLI/../.." && pwd)/.haproxy32/bin/haproxy
[ -x "$H32" ] || H32=
FE=$T/fe
mkdir -p "$FE/certs"
if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-keyout "$FE/certs/gw.key" -out "$FE/certs/gw.crt" >/dev/null 2>&1; then
	cat "$FE/certs/gw.crt" "$FE/certs/gw.key" >"$FE/certs/gw.pem"
	printf '%s\n' "$FE/certs/gw.pem" >"$FE/certs/list.txt"
	ok
else bad "openssl made a test certificate"; fi
# fe_conf FILE FRONTEND-GROUP: a config with one route and that frontend line.
fe_conf() {
	cat >"$1" <<EOC
listen = [ "127.0.0.1:$AGENT_PORT" ];
allow_plain_tcp = true;
store = { path = "$FE/keys.db"; };
$2
routes = ( { name = "openai"; context = "/openai"; upstream = "127.0.0.1:9"; } );
EOC
}
# fe_haproxy_c CFG WHAT: haproxy -c accepts CFG on 2.6 and on 3.2 (when there).
fe_haproxy_c() {
	local h
	for h in "$HAPROXY" "$H32"; do
		[ -n "$h" ] || continue
		run "$h" -c -f "$1"; expect_rc 0 "$h -c: $2"
	done
}
fe_conf "$FE/tls.conf" "frontend = { bind = [ \"127.0.0.1:18443\", \"[::1]:18443\" ]; tls = { certificate = \"$FE/certs/gw.pem\"; }; };"
run "$KD" -t -c "$FE/tls.conf"; expect_rc 0 "keyauthd -t accepts a frontend with tls"
run "$K" -c "$FE/tls.conf" haproxy --out "$FE/r1"; expect_rc 0 "render a TLS frontend"
if [ "$(grep -c '^    bind ' "$FE/r1/haproxy-keyauth.cfg")" -eq 2 ] &&
   grep -qxF "    bind 127.0.0.1:18443 ssl crt $FE/certs/gw.pem ssl-min-ver TLSv1.2 alpn h2,http/1.1" "$FE/r1/haproxy-keyauth.cfg" &&
   grep -qxF "    bind [::1]:18443 ssl crt $FE/certs/gw.pem ssl-min-ver TLSv1.2 alpn h2,http/1.1" "$FE/r1/haproxy-keyauth.cfg"
then ok; else bad "every frontend.bind address with ssl crt, TLSv1.2+ and ALPN h2,http/1.1"; grep -n 'bind' "$FE/r1/haproxy-keyauth.cfg" >&2; fi
fe_haproxy_c "$FE/r1/haproxy-keyauth.cfg" "TLS frontend with h2"
run "$K" -c "$FE/tls.conf" haproxy --out "$FE/r1v32" --haproxy-version 3.2; expect_rc 0 "render a TLS frontend for 3.2"
[ -z "$H32" ] || { run "$H32" -c -f "$FE/r1v32/haproxy-keyauth.cfg"; expect_rc 0 "3.2 accepts its TLS rendering"; }
fe_conf "$FE/list.conf" "frontend = { bind = [ \"0.0.0.0:18444\" ]; http2 = false; tls = { crt_list = \"$FE/certs/list.txt\"; min_version = \"1.3\"; }; };"
run "$K" -c "$FE/list.conf" haproxy --out "$FE/r2"; expect_rc 0 "render a crt-list frontend"
if grep -qxF "    bind 0.0.0.0:18444 ssl crt-list $FE/certs/list.txt ssl-min-ver TLSv1.3 alpn http/1.1" "$FE/r2/haproxy-keyauth.cfg"
then ok; else bad "crt-list, TLSv1.3+, http2 = false: ALPN http/1.1 only"; grep -n 'bind' "$FE/r2/haproxy-keyauth.cfg" >&2; fi
fe_haproxy_c "$FE/r2/haproxy-keyauth.cfg" "crt-list frontend"
# --bind: one address instead of frontend.bind, the TLS kept.
run "$K" -c "$FE/tls.conf" haproxy --out "$FE/r3" --bind 127.0.0.1:18445; expect_rc 0 "--bind over a TLS frontend"
if [ "$(grep -c '^    bind ' "$FE/r3/haproxy-keyauth.cfg")" -eq 1 ] &&
   grep -qxF "    bind 127.0.0.1:18445 ssl crt $FE/certs/gw.pem ssl-min-ver TLSv1.2 alpn h2,http/1.1" "$FE/r3/haproxy-keyauth.cfg"
then ok; else bad "--bind replaces frontend.bind and keeps its tls"; fi
# Plain frontend: bind lines without ssl.
fe_conf "$FE/plain.conf" 'frontend = { bind = [ "127.0.0.1:18446", "127.0.0.2:18446" ]; };'
run "$K" -c "$FE/plain.conf" haproxy --out "$FE/r4"; expect_rc 0 "render a plain frontend"
if [ "$(grep -c '^    bind ' "$FE/r4/haproxy-keyauth.cfg")" -eq 2 ] && grep -qx '    bind 127.0.0.1:18446' "$FE/r4/haproxy-keyauth.cfg" &&
   grep -qx '    bind 127.0.0.2:18446' "$FE/r4/haproxy-keyauth.cfg"; then ok; else bad "plain frontend: bare bind lines"; fi
# Bad frontends: keyauthctl refuses to render them, naming the setting.
fe_conf "$FE/bad.conf" 'frontend = { bind = [ "gateway.example:443" ]; tls = { certificate = "certs/gw.pem"; }; };'
run "$K" -c "$FE/bad.conf" haproxy --out "$FE/r5"; expect_rc 1 "a bad frontend is not rendered"
expect_err "bad bind address \"gateway.example:443\" in frontend" "a host name in frontend.bind is named"
expect_err "bad certificate \"certs/gw.pem\" in frontend.tls" "a relative certificate path is named"
run "$KD" -t -c "$FE/bad.conf"; expect_rc 1 "keyauthd -t refuses a bad frontend"
# No frontend.bind: haproxy previews on 127.0.0.1:8080, deploy refuses and writes nothing.
# (--haproxy-service none: deploy itself, whatever runs HAProxy on this host.)
fe_conf "$FE/none.conf" ''
run "$K" -c "$FE/none.conf" haproxy --out "$FE/r6"; expect_rc 0 "render without a frontend"
if grep -qx '    bind 127.0.0.1:8080' "$FE/r6/haproxy-keyauth.cfg"; then ok; else bad "no frontend: a 127.0.0.1:8080 preview"; fi
mkdir -p "$FE/dep"
run "$K" -c "$FE/none.conf" deploy --haproxy-service none --haproxy-dir "$FE/dep"
expect_rc 1 "deploy refuses a config without frontend.bind"
expect_err "has no frontend.bind.*nothing was deployed" "deploy says to set frontend.bind"
if [ -z "$(ls -A "$FE/dep")" ]; then ok; else bad "deploy without frontend.bind writes nothing"; fi
run "$K" -c "$FE/plain.conf" deploy --haproxy-service none --haproxy-dir "$FE/dep" --bind 127.0.0.1:18447
expect_rc 2 "deploy --bind is a usage error"
expect_err "deploy binds frontend.bind" "deploy --bind says where the address goes"
if [ -z "$(ls -A "$FE/dep")" ]; then ok; else bad "deploy --bind writes nothing"; fi
run "$K" -c "$FE/tls.conf" deploy --haproxy-service none --haproxy-dir "$FE/dep"
expect_rc 0 "deploy a TLS frontend"
if grep -qxF "    bind 127.0.0.1:18443 ssl crt $FE/certs/gw.pem ssl-min-ver TLSv1.2 alpn h2,http/1.1" "$FE/dep/haproxy-keyauth.cfg"
then ok; else bad "deploy binds frontend.bind with its tls"; fi
# The help says what --bind is now.
run "$K" haproxy --help
expect_out "instead of the config's" "haproxy --help: --bind replaces frontend.bind"
run "$K" deploy --help
if grep -q -- '--bind' "$T/out"; then expect_out "takes no --bind" "deploy --help: no --bind"; else ok; fi
