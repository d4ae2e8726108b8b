# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/admin.sh: the admin group and admin-route keys (issue #22):
# the group's checks (keyauthctl and keyauthd -t), --scope rules, key show,
# exit 3 for unknown ids, KEYAUTH_ACTOR in the audit log, the rendered admin
# route (haproxy -c on 2.6 and 3.2), and a live check through HAProxy,
# keyauthd and a stand-in for keyauth-admin on its unix socket.
# Sourced by run.sh (K, KD, T, HAPROXY and the helpers of lib.sh).
# shellcheck disable=SC2016  # node programs in single quotes: JS, not shell

AD=$T/admin
mkdir -p "$AD"
AD_AGENT=$AD/agent.sock
# ad_conf FILE [ADMIN-GROUP] [EXTRA-ROUTE]: one route "openai" and an admin group.
AD_GROUP="admin = { socket = \"$AD/admin.sock\"; user = \"\"; };"
ad_conf() {
	cat >"$1" <<EOC
listen = [ "unix:$AD_AGENT" ];
store = { path = "$AD/keys.db"; };
routes = ( { name = "openai"; context = "/openai"; upstream = "127.0.0.1:9"; }${3-} );
${2-$AD_GROUP}
EOC
}
AC=$AD/k.conf
ad_conf "$AC"

# ---- the admin group ------------------------------------------------------------------
run "$KD" -t -c "$AC"; expect_rc 0 "keyauthd -t accepts an admin group"
ad_conf "$AD/b1.conf" "$AD_GROUP" ', { name = "admin"; context = "/adm"; }'
run "$K" -c "$AD/b1.conf" key list; expect_rc 1 "a user route named admin is refused"
expect_err 'route name "admin" is reserved' "the reserved name is named"
run "$KD" -t -c "$AD/b1.conf"; expect_rc 1 "keyauthd -t refuses the reserved name too"
ad_conf "$AD/b2.conf" "admin = { context = \"/apps\"; socket = \"$AD/admin.sock\"; };" ', { name = "apps"; context = "/apps/x"; }'
run "$K" -c "$AD/b2.conf" key list; expect_rc 1 "a route inside the admin context is refused"
expect_err 'overlaps the admin context "/apps"' "the overlap is named"
ad_conf "$AD/b3.conf" 'admin = { socket = "run/admin.sock"; };'
run "$K" -c "$AD/b3.conf" key list; expect_rc 1 "a relative admin socket is refused"
expect_err 'bad socket "run/admin.sock" in admin' "the bad socket is named"
ad_conf "$AD/b4.conf" "admin = { socket = \"/$(printf 'x%.0s' $(seq 1 120))\"; };"
run "$K" -c "$AD/b4.conf" key list; expect_rc 1 "an admin socket path of 121 bytes is refused"
expect_err 'at most 107 fit a unix socket' "the length limit is given"
ad_conf "$AD/b5.conf" 'admin = { user = "root"; context = "/"; rate_limit_rpm = 0; bogus = 1; };'
run "$K" -c "$AD/b5.conf" key list; expect_rc 1 "bad admin settings are refused"
expect_err 'user "root" in admin' "admin.user root is refused"
expect_err 'bad context "/" in admin' "admin.context / is refused"
expect_err 'rate_limit_rpm = 0 in admin is out of range' "admin.rate_limit_rpm 0 is refused"
expect_err 'unknown setting "bogus" in admin' "an unknown admin setting is named"

# ---- keys of the admin route: --scope -------------------------------------------------
run "$K" -c "$AC" key create --route admin --owner ops
expect_rc 2 "an admin key without --scope is a usage error"
expect_err "needs at least one --scope" "the missing scope is named"
run "$K" -c "$AC" key create --route openai --scope read
expect_rc 2 "--scope on a provider route's key is a usage error"
run "$K" -c "$AC" key create --route admin --route openai --scope read
expect_rc 2 "an admin key bound to another route too is a usage error"
run "$K" -c "$AC" key create --route admin --scope admin
expect_rc 2 "an unknown scope is a usage error"
run "$K" -c "$AC" key create --route admin --scope read --scope read
expect_rc 2 "a scope given twice is a usage error"
if [ "$(count_keys "$AC")" -eq 0 ]; then ok; else bad "refused creates stored nothing"; fi
run "$K" -c "$AC" key create --route admin --scope read --owner reader@example.com
expect_rc 0 "create a read admin key"; key_file admin_read.key
RID=$(grep -m1 '^Key id:' "$T/err" | awk '{print $3}')
run "$K" -c "$AC" key create --route admin --scope write --scope read --scope deploy --owner ops@example.com --json
expect_rc 0 "create a read,write,deploy admin key (--json)"
node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));process.stdout.write(j.key)' "$T/out" >"$T/admin_all.key" 2>/dev/null
WID=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).id)' "$T/out" 2>/dev/null)
if node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));process.exit(JSON.stringify(j.scopes)==="[\"read\",\"write\",\"deploy\"]"&&j.routes[0]==="admin"?0:1)' "$T/out"
then ok; else bad "create --json: scopes in canonical order, routes [admin]"; fi
run "$K" -c "$AC" key create --route openai --owner app
expect_rc 0 "create a provider key beside them"; key_file admin_openai.key
run "$K" -c "$AC" key list --json
if node -e 'const l=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));const by=o=>l.find(e=>e.owner===o);
  process.exit(JSON.stringify(by("reader@example.com").scopes)==="[\"read\"]"&&JSON.stringify(by("app").scopes)==="[]"?0:1)' "$T/out"
then ok; else bad "key list --json: scopes per key, [] for a provider key"; fi
run "$K" -c "$AC" key list
if grep -q 'SCOPES' "$T/out" && grep "$RID" "$T/out" | grep -q ' read$'; then ok; else bad "key list: a SCOPES column when admin keys are listed"; fi
run "$K" -c "$AC" key list --route openai
if grep -q 'SCOPES' "$T/out"; then bad "key list: no SCOPES column without admin keys"; else ok; fi

# key import takes the same rules (the key from stdin)
printf 'zz_imported_admin_key_0123456789\n' >"$T/imp_admin.key"
run_in "$T/imp_admin.key" "$K" -c "$AC" key import --route admin
expect_rc 2 "key import of an admin key without --scope is a usage error"
run_in "$T/imp_admin.key" "$K" -c "$AC" key import --route admin --scope read --json
expect_rc 0 "key import --route admin --scope read"
if node -e 'process.exit(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).rpm===0?0:1)' "$T/out"; then ok; else bad "key import --json"; fi
IID=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).id)' "$T/out" 2>/dev/null)
run "$K" -c "$AC" key show "$IID"; expect_out '^scopes: +read$' "an imported admin key has its scope"
run "$K" -c "$AC" key revoke "$IID"; expect_rc 0 "revoke the imported admin key"

# key show, exit 3
run "$K" -c "$AC" key show "$RID" --json
expect_rc 0 "key show --json"
if json_ok "$T/out" && node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
  process.exit(j.id===process.argv[2]&&JSON.stringify(j.scopes)==="[\"read\"]"&&Array.isArray(j.routes_usage)&&j.status==="active"?0:1)' "$T/out" "$RID"
then ok; else bad "key show --json: the list entry with scopes and routes_usage"; fi
run "$K" -c "$AC" key show "$RID"
expect_rc 0 "key show (text)"; expect_out '^scopes: +read$' "key show prints the scopes"
for cmd in show revoke rotate "set --rpm 5"; do
	# shellcheck disable=SC2086
	run "$K" -c "$AC" key $cmd AAAAAAAAAAAA
	expect_rc 3 "key ${cmd%% *} of an unknown id exits 3"
	expect_err "no key with id 'AAAAAAAAAAAA'" "key ${cmd%% *}: the unknown id is named"
done
run "$K" key --help; expect_out "show" "key --help lists key show"
run "$K" --help; expect_out "3 not found" "--help documents exit status 3"

# set --scope replaces, rules hold on set; rotate keeps the scopes
run "$K" -c "$AC" key set "$RID" --scope write --scope read
expect_rc 0 "key set --scope replaces the scopes"
run "$K" -c "$AC" key show "$RID" --json
if node -e 'process.exit(JSON.stringify(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).scopes)==="[\"read\",\"write\"]"?0:1)' "$T/out"
then ok; else bad "key set --scope: read,write stored"; fi
run "$K" -c "$AC" key set "$RID" --route openai
expect_rc 2 "moving an admin key to another route is a usage error"
OID=$(bounded "$K" -c "$AC" key list --route openai --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].id))')
run "$K" -c "$AC" key set "$OID" --scope read
expect_rc 2 "--scope on a provider key (key set) is a usage error"
run "$K" -c "$AC" key set "$RID" --scope read
run "$K" -c "$AC" key rotate "$RID" --grace 0s --json
expect_rc 0 "rotate an admin key"
if node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));process.exit(JSON.stringify(j.scopes)==="[\"read\"]"?0:1)' "$T/out"
then ok; else bad "rotate keeps the scopes"; fi
node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).key)' "$T/out" >"$T/admin_read.key" 2>/dev/null
NRID=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).id)' "$T/out" 2>/dev/null)

# KEYAUTH_ACTOR in the audit log
KEYAUTH_ACTOR="keyauth-admin key_id=$WID owner=ops@example.com" run "$K" -c "$AC" key set "$OID" --rpm 7
expect_rc 0 "a change made with KEYAUTH_ACTOR"
run "$K" -c "$AC" audit --json
if node -e 'const l=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));const a=Array.isArray(l)?l:l.entries;
  const last=a[a.length-1], first=a[0];
  process.exit(last.actor===`keyauth-admin key_id=${process.argv[2]} owner=ops@example.com`&&first.actor===null&&first.user?0:1)' "$T/out" "$WID"
then ok; else bad "audit --json: actor from KEYAUTH_ACTOR, null without it, user kept"; fi
run "$K" -c "$AC" audit
expect_out "\(actor: keyauth-admin key_id=$WID owner=ops@example.com\)" "audit (text) shows the actor"
if grep -q '"scopes"' "$AD/keys.db.audit" 2>/dev/null; then ok; else bad "scope changes are audited"; fi

# ---- scopes in the Redis store: the record field, written only when non-zero ----------------
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}
if [ -x "$REDIS_SERVER" ] && command -v redis-cli >/dev/null 2>&1; then
	ARP=$(free_port)
	"$REDIS_SERVER" --port "$ARP" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$AD" >"$AD/redis.log" 2>&1 &
	ARPID=$!
	PIDS+=("$ARPID")
	for _ in $(seq 1 100); do redis-cli -p "$ARP" ping >/dev/null 2>&1 && break; sleep 0.05; done
	ARC=$AD/redis.conf
	sed "s|^store = .*|store = { backend = \"redis\"; address = \"127.0.0.1:$ARP\"; namespace = \"adm\"; };|" "$AC" >"$ARC"
	run "$K" -c "$ARC" key create --route admin --scope deploy --scope read --json
	expect_rc 0 "redis: create an admin key"
	XID=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).id)' "$T/out" 2>/dev/null)
	run "$K" -c "$ARC" key create --route openai --json
	YID=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).id)' "$T/out" 2>/dev/null)
	if [ "$(redis-cli -p "$ARP" hget "adm:key:$XID" scopes)" = 5 ] &&
	   [ "$(redis-cli -p "$ARP" hexists "adm:key:$YID" scopes)" = 0 ]; then ok
	else bad "redis: scopes stored as bits (read+deploy = 5), no field for other keys"; fi
	run "$K" -c "$ARC" key show "$XID" --json
	if node -e 'process.exit(JSON.stringify(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).scopes)==="[\"read\",\"deploy\"]"?0:1)' "$T/out"
	then ok; else bad "redis: scopes read back"; fi
	run "$K" -c "$ARC" key set "$XID" --scope write
	if [ "$(redis-cli -p "$ARP" hget "adm:key:$XID" scopes)" = 2 ]; then ok; else bad "redis: key set --scope rewrites the field"; fi
	run "$K" -c "$ARC" key show BBBBBBBBBBBB; expect_rc 3 "redis: key show of an unknown id exits 3"
	stop_pid "$ARPID"
fi

# ---- rendering -------------------------------------------------------------------------
H32=$(cd "$CLI/../.." && pwd)/.haproxy32/bin/haproxy
[ -x "$H32" ] || H32=
for v in 2.6 3.2; do
	run "$K" -c "$AC" haproxy --out "$AD/r$v" --haproxy-version "$v"
	expect_rc 0 "render the admin route for $v"
done
RC=$AD/r2.6/haproxy-keyauth.cfg
if grep -qxF "    server admin unix@$AD/admin.sock" "$RC" &&
   grep -qxF '    http-request replace-path ^/admin(/.*)$ \1' "$RC" &&
   grep -qxF '    use_backend be_keyauth_admin if keyauth_admin' "$RC" &&
   grep -q '^    http-request allow if keyauth_admin$' "$RC" &&
   grep -q '^    http-request set-header X-Keyauth-Scopes ' "$RC" &&
   grep -q 'messages keyauth-admin' "$AD/r2.6/keyauth-spoe.conf" &&
   grep -q 'args route=str(admin) key=req.fhdr(Authorization)$' "$AD/r2.6/keyauth-spoe.conf"
then ok; else bad "the admin route: backend on the socket, prefix stripped, bearer only"; fi
if grep -q 'keyauth_admin' "$AD/r2.6/haproxy-keyauth.cfg" && ! grep -q 'be_admin\b' "$RC"; then ok
else bad "the admin route is not rendered as a provider route"; fi
for h in "$HAPROXY" "$H32"; do
	[ -n "$h" ] || continue
	for v in 2.6 3.2; do
		# each version parses its own rendering
		if [ "$h" = "$HAPROXY" ]; then [ "$v" = 2.6 ] || continue; else [ "$v" = 3.2 ] || continue; fi
		run "$h" -c -f "$AD/r$v/haproxy-keyauth.cfg"; expect_rc 0 "$h -c accepts the admin route ($v)"
		if grep -q "WARNING\|ALERT" "$T/out" "$T/err"; then bad "$h -c warns on the admin route"; else ok; fi
	done
done

# ---- live: HAProxy (2.6 and 3.2), keyauthd and a stand-in for keyauth-admin --------------
# acurl KEYFILE|- METHOD PATH: status into $code, body into $AD/body; the key
# goes to curl through a header file, never argv. A client's own
# X-Keyauth-Scopes is sent every time: it must never arrive.
acurl() {
	local h=()
	if [ "$1" != - ]; then printf 'Authorization: Bearer %s\n' "$(cat "$1")" >"$AD/hdr"; h=(-H "@$AD/hdr"); fi
	code=$(curl -s --max-time 10 -o "$AD/body" -w '%{http_code}' "${h[@]}" -H 'X-Keyauth-Scopes: read,write,deploy' \
		-X "$2" "http://127.0.0.1:$AFP$3")
	rm -f "$AD/hdr"
}
# body_ok JS: the JSON body satisfies JS (j is the body).
body_ok() { node -e "const j=JSON.parse(require('fs').readFileSync(process.argv[1],'utf8'));process.exit(($1)?0:1)" "$AD/body" 2>/dev/null; }
# admin_live HAPROXY VERSION: HAProxy on the admin route's rendering for VERSION;
# leaves it running (its pid in $HPID).
admin_live() {
	local hb=$1 v=$2 up=0
	AFP=$(free_port)
	bounded "$K" -c "$AC" haproxy --out "$AD/live$v" --bind "127.0.0.1:$AFP" --haproxy-version "$v" >/dev/null 2>&1
	"$hb" -db -f "$AD/live$v/haproxy-keyauth.cfg" >"$AD/haproxy$v.log" 2>&1 &
	HPID=$!
	PIDS+=("$HPID")
	for _ in $(seq 1 200); do
		if grep -q listening "$AD/stub.out" 2>/dev/null && [ -S "$AD_AGENT" ] &&
		   [ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AFP/admin/v1/whoami")" = 401 ]
		then up=1; break; fi
		sleep 0.05
	done
	if [ "$up" -eq 1 ]; then ok; else bad "$v: HAProxy, keyauthd and the stand-in came up (401 without a key) within 10 s"; return; fi
	acurl - GET /admin/v1/keys
	if [ "$code" = 401 ] && body_ok 'j.error.code==="unauthorized"&&typeof j.error.message==="string"'
	then ok; else bad "$v: no key: 401 in the admin JSON error shape (got $code)"; fi
	acurl "$T/admin_openai.key" GET /admin/v1/keys
	if [ "$code" = 403 ] && body_ok 'j.error.code==="forbidden"'; then ok; else bad "$v: a provider route's key: 403 (got $code)"; fi
	acurl "$T/admin_read.key" GET '/admin/v1/keys?x=1'
	if [ "$code" = 200 ] && body_ok 'j.url==="/v1/keys?x=1"&&j.headers["x-keyauth-scopes"]==="read"&&
	     j.headers["x-keyauth-key-id"]&&j.headers["x-keyauth-key-id"].length===12&&
	     j.headers["x-keyauth-owner"]==="reader@example.com"&&!("authorization" in j.headers)'
	then ok; else bad "$v: read key: reaches keyauth-admin as /v1/keys with id, owner and its own scopes, without Authorization (got $code)"; fi
	acurl "$T/admin_read.key" POST /admin/v1/keys
	if [ "$code" = 403 ] && body_ok 'j.error.code==="forbidden"'; then ok; else bad "$v: read key: POST is 403 (got $code)"; fi
	acurl "$T/admin_read.key" DELETE /admin/v1/keys/x
	if [ "$code" = 403 ]; then ok; else bad "$v: read key: DELETE is 403 (got $code)"; fi
	acurl "$T/admin_all.key" PATCH /admin/v1/keys/x
	if [ "$code" = 200 ] && body_ok 'j.method==="PATCH"&&j.headers["x-keyauth-scopes"]==="read,write,deploy"'
	then ok; else bad "$v: a write key: PATCH passes with its scopes (got $code)"; fi
	acurl "$T/admin_all.key" POST /admin/v1/deploy
	if [ "$code" = 200 ]; then ok; else bad "$v: a deploy-scoped key: POST deploy passes (got $code)"; fi
	acurl "$T/admin_write.key" POST /admin/v1/deploy
	if [ "$code" = 403 ] && body_ok 'j.error.message.includes("deploy")'; then ok; else bad "$v: a write key without deploy: POST deploy is 403 (got $code)"; fi
	acurl "$T/admin_all.key" OPTIONS /admin/v1/keys
	if [ "$code" = 405 ]; then ok; else bad "$v: OPTIONS on the admin route: 405 (got $code)"; fi
	acurl - GET /admin/console/index.html
	if [ "$code" = 200 ] && body_ok 'j.url==="/console/index.html"'; then ok; else bad "$v: the console's static files need no key (got $code)"; fi
	acurl - GET /admin/
	if [ "$code" = 200 ] && body_ok 'j.url==="/"'; then ok; else bad "$v: GET <context>/ is public (got $code)"; fi
	acurl - GET /admin
	if [ "$code" = 301 ]; then ok; else bad "$v: <context> alone redirects to <context>/ (got $code)"; fi
	acurl - POST /admin/console/x
	if [ "$code" = 401 ]; then ok; else bad "$v: a POST under console/ needs a key (got $code)"; fi
	acurl - GET /admin/openapi.json
	if [ "$code" = 401 ]; then ok; else bad "$v: openapi.json needs a key (got $code)"; fi
	acurl - GET /openai/v1/models
	if [ "$code" = 401 ] && body_ok 'j.error.type'; then ok; else bad "$v: a provider route keeps its own rules and error shape (got $code)"; fi
	for _ in 1 2; do acurl "$T/admin_slow.key" GET /admin/v1/whoami; done
	acurl "$T/admin_slow.key" GET /admin/v1/whoami
	if [ "$code" = 429 ] && body_ok 'j.error.code==="rate_limited"'; then ok; else bad "$v: the third request of a 2-rpm admin key: 429 (got $code)"; fi
}
if [ -n "$HAPROXY" ] && command -v curl >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
	run "$K" -c "$AC" key create --route admin --scope read --scope write --owner writer
	key_file admin_write.key
	run "$K" -c "$AC" key create --route admin --scope read --rpm 2 --owner slow
	key_file admin_slow.key
	# The stand-in answers every request with what reached it (method, path, headers).
	node -e '
const http = require("http"), fs = require("fs"); const p = process.argv[1];
try { fs.unlinkSync(p); } catch (e) {}
http.createServer((q, r) => { r.setHeader("content-type", "application/json");
  r.end(JSON.stringify({ method: q.method, url: q.url, headers: q.headers })); })
  .listen(p, () => { fs.chmodSync(p, 0o666); console.log("listening"); });' "$AD/admin.sock" >"$AD/stub.out" 2>&1 &
	PIDS+=($!)
	KEYAUTH_ALLOW_ROOT=1 "$KD" -c "$AC" >"$AD/keyauthd.log" 2>&1 &
	PIDS+=($!)
	admin_live "$HAPROXY" 2.6
	if [ -n "$H32" ]; then
		stop_pid "$HPID"
		admin_live "$H32" 3.2
	fi
	run "$K" -c "$AC" key revoke "$NRID"; expect_rc 0 "revoke the read key"
	for _ in $(seq 1 40); do acurl "$T/admin_read.key" GET /admin/v1/keys; [ "$code" = 401 ] && break; sleep 0.05; done
	if [ "$code" = 401 ]; then ok; else bad "a revoked admin key is refused within 2 s (got $code)"; fi
	for f in admin_read admin_all admin_write admin_openai; do
		if grep -qF -- "$(cat "$T/$f.key")" "$AD"/haproxy*.log "$AD/keyauthd.log"; then bad "the key $f reached a log"; else ok; fi
	done
fi
