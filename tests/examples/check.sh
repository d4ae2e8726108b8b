#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/examples/check.sh: keeps haproxy-examples/ honest.
#
# For every haproxy-examples/NN-*/ folder:
#   - keyauthd -t accepts its keyauth.conf;
#   - its haproxy.cfg and keyauth-spoe.conf are byte for byte what
#     "keyauthctl -c keyauth.conf haproxy --spoe-path /etc/haproxy/keyauth-spoe.conf"
#     renders today (run inside the folder), so the examples cannot drift;
#   - HAProxy 2.6 accepts the rendering ("haproxy -c", on a copy whose filter line
#     points at the SPOE file beside it), and HAProxy 3.2, when .haproxy32/bin/haproxy
#     runs, accepts both the 2.6 and the --haproxy-version 3.2 rendering;
#   - the log-format records no query string (%r, %HU, %{..}r, "query", httplog);
#   - every key the agent is asked about is removed before the request goes upstream
#     (del-header for header routes, the query rewrite for query routes), and those
#     rules come after the fail-closed backstop.
# Then, when node is installed, a live check of 03-query (its own config, moved to
# free loopback ports) with HAProxy 2.6 and 3.2: every spelling of the query that
# HAProxy's url_param reads a key from (?k=K, &k=K, ;k=K, a second '?') is accepted
# and the key reaches neither the upstream nor HAProxy's log.
#
#   tests/examples/check.sh            check (the last line is "N passed, N failed")
#   tests/examples/check.sh --update   re-render the committed files after a change
#                                      to keyauthctl's rendering, then check
#
# Environment: KEYAUTHCTL, KEYAUTHD (default build/...), HAPROXY (default: haproxy
# from PATH, else /usr/sbin/haproxy), HAPROXY32 (default .haproxy32/bin/haproxy).
# Keys are never printed nor put in argv: they live in 0600 files (grep -f, curl -K).

set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
abspath() { case $1 in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }
KEYAUTHCTL=$(abspath "${KEYAUTHCTL:-build/keyauthctl}")
KEYAUTHD=$(abspath "${KEYAUTHD:-build/keyauthd}")
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
HAPROXY32=$(abspath "${HAPROXY32:-.haproxy32/bin/haproxy}")
SPOE_PATH=/etc/haproxy/keyauth-spoe.conf
EXAMPLES=$ROOT/haproxy-examples

update=0
case ${1:-} in
--update) update=1 ;;
"") ;;
*) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# check DESCRIPTION CMD...: one result; on failure the command's output is shown.
check() {
	local what=$1; shift
	if "$@" >"$T/out" 2>&1; then ok; else bad "$what"; sed 's/^/    /' "$T/out" | head -n 20 >&2; fi
}

for b in "$KEYAUTHCTL" "$KEYAUTHD"; do
	if [ ! -x "$b" ]; then
		echo "check.sh: $b is not executable (build it first)" >&2
		echo "0 passed, 1 failed"
		exit 1
	fi
done

T=$(mktemp -d "${TMPDIR:-/tmp}/keyauth-examples.XXXXXX")
umask 077
PIDS=()
# stop_pids PID...: SIGTERM to each; SIGKILL to those still running 5 s later;
# then reaps them (children of this shell: the wait returns at once).
stop_pids() {
	local p i left
	for p in "$@"; do kill "$p" 2>/dev/null; done
	for i in $(seq 1 100); do
		left=0
		for p in "$@"; do kill -0 "$p" 2>/dev/null && left=1; done
		[ "$left" = 0 ] && break
		sleep 0.05
	done
	for p in "$@"; do
		if kill -0 "$p" 2>/dev/null; then
			echo "check.sh: pid $p still runs 5 s after SIGTERM: SIGKILL" >&2
			kill -9 "$p" 2>/dev/null
		fi
	done
	for p in "$@"; do wait "$p" 2>/dev/null; done
	return 0
}
cleanup() {
	[ "${#PIDS[@]}" -gt 0 ] && stop_pids "${PIDS[@]}"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

have_h26=0
if "$HAPROXY" -v 2>/dev/null | head -n 1 | grep -q '^HAProxy version'; then have_h26=1
else echo "check.sh: $HAPROXY does not run: HAProxy 2.6 checks SKIPPED" >&2; fi
have_h32=0
if [ -x "$HAPROXY32" ] && "$HAPROXY32" -v 2>/dev/null | head -n 1 | grep -q '^HAProxy version 3\.'; then
	have_h32=1
else
	echo "check.sh: $HAPROXY32 does not run: HAProxy 3.2 checks SKIPPED (sh scripts/haproxy32.sh)" >&2
fi

# haproxy_c HAPROXY CFG: "haproxy -c" must pass with no ALERT and no WARNING except
# an upstream name that does not resolve on this (possibly offline) machine.
haproxy_c() {
	local out rc
	out=$("$1" -c -f "$2" 2>&1); rc=$?
	if [ "$rc" -ne 0 ]; then echo "$out"; return 1; fi
	if echo "$out" | grep -E 'ALERT|WARNING' | grep -vq 'could not resolve address'; then
		echo "$out"; return 1
	fi
	return 0
}

# render DIR OUT [OPTIONS...]: keyauthctl haproxy, run inside the example folder so
# that the "generated from" comment names "keyauth.conf" as committed.
render() {
	local dir=$1 out=$2; shift 2
	mkdir -p "$out"
	(cd "$dir" && "$KEYAUTHCTL" -c keyauth.conf haproxy --out "$out" "$@" >/dev/null)
}

# static_checks CFG SPOE: properties of a rendering that must hold whatever the routes.
static_checks() {
	local cfg=$1 spoe=$2 name=$3 lf r loc key backstop line
	lf=$(grep -E '^\s*log-format' "$cfg")
	if [ -n "$lf" ] && ! echo "$lf" | grep -qE '%r([^a-zA-Z]|$)|%\{[^}]*\}r|%HU|query|url'; then ok
	else bad "$name: log-format must exist and record no URI query (%r, %HU, query)"; fi
	if grep -vE '^\s*#' "$cfg" | grep -qE 'option (httplog|tcplog)|capture request'; then
		bad "$name: httplog/tcplog/capture would log the query or headers"; else ok; fi
	backstop=$(grep -n 'http-request deny deny_status 503 unless { var(txn.keyauth.ok) -m bool }' "$cfg" | cut -d: -f1)
	if [ -n "$backstop" ] && grep -q 'if { var(txn.keyauth.err) -m found }' "$cfg"; then ok
	else bad "$name: fail-closed rules (agent error 503, deny unless txn.keyauth.ok) missing"; backstop=0; fi
	# Every carrier "keyN=SOURCE(NAME)" the agent receives, on every route, must be
	# removed from every allowed request, after the backstop (issue 16: for all
	# routes at once, so a copy of a key in another route's carrier goes too).
	local n=0 src
	while read -r line; do
		r=$(echo "$line" | sed -E 's/.*route=str\(([^)]*)\).*/\1/')
		n=$((n + 1))
		if ! grep -q "^\s*use_backend be_$r if keyauth_is_$r\$" "$cfg"; then
			bad "$name: route $r has an SPOE message but no use_backend"; continue
		fi
		for src in $(echo "$line" | grep -oE 'key[0-9]*=(req\.fhdr|url_param)\([^)]*\)'); do
			loc=$(echo "$src" | sed -E 's/.*=(req\.fhdr|url_param)\(([^)]*)\)/\1/')
			key=$(echo "$src" | sed -E 's/.*=(req\.fhdr|url_param)\(([^)]*)\)/\2/')
			if [ "$loc" = req.fhdr ]; then
				line=$(grep -niE "^\s*http-request del-header $key\$" "$cfg" | head -n 1 | cut -d: -f1)
			else
				line=$(grep -nF "regsub([&;?]$key=[^&;?]*,,gi)" "$cfg" | grep -F 'if { query -m found }' | head -n 1 | cut -d: -f1)
				if ! grep -qF 'set-query "%[var(txn.keyauth_q)]" if { var(txn.keyauth_q) -m len gt 0 }' "$cfg" ||
				   ! grep -qF 'set-uri "%[path]" if { query -m found } !{ var(txn.keyauth_q) -m len gt 0 }' "$cfg"; then
					line=""
				fi
			fi
			if [ -n "$line" ] && [ "$line" -gt "$backstop" ]; then ok
			else bad "$name: route $r: the client's key ($loc $key) is not removed after the backstop"; fi
		done
	done < <(grep -E '^\s*args route=str\(' "$spoe")
	# Authorization and Proxy-Authorization never go upstream from a client.
	for key in Authorization Proxy-Authorization; do
		line=$(grep -nE "^\s*http-request del-header $key\$" "$cfg" | head -n 1 | cut -d: -f1)
		if [ -n "$line" ] && [ "$line" -gt "$backstop" ]; then ok
		else bad "$name: $key is not removed after the backstop"; fi
	done
	# Rate limits (issues 12, 16): counted per key id, never the key, only for
	# admitted requests (gpc0, incremented after the 429 check), and the 429
	# comes after the fail-closed rules.
	local track over inc
	track=$(grep -n '^\s*http-request track-sc0 var(txn.keyauth.key_id) table keyauth_rate if { var(txn.keyauth.ok) -m bool } { var(txn.keyauth.rpm) -m found }$' "$cfg" | cut -d: -f1)
	over=$(grep -nE '^\s*http-request return status 429 .*(rate_limit|RESOURCE_EXHAUSTED).* hdr Retry-After [0-9]+ if .*sub\(txn\.keyauth\.rpm\) -m int ge 0 \}.*$' "$cfg" | head -n 1 | cut -d: -f1)
	inc=$(grep -n '^\s*http-request sc-inc-gpc0(0) if { var(txn.keyauth.rpm) -m found }$' "$cfg" | cut -d: -f1)
	if [ -n "$track" ] && [ -n "$over" ] && [ -n "$inc" ] && [ "$track" -gt "$backstop" ] &&
	   [ "$over" -gt "$track" ] && [ "$inc" -gt "$over" ] &&
	   grep -qE '^\s*stick-table type string len 16 .*store gpc0_rate\([0-9]+s\)' "$cfg" &&
	   [ "$(grep -c 'track-sc' "$cfg")" -eq 1 ]; then ok
	else bad "$name: rate limit (track-sc0 on txn.keyauth.key_id, 429 after the backstop) missing or misplaced"; fi
	if [ "$n" -gt 0 ] && [ "$n" -eq "$(grep -c '^spoe-message ' "$spoe")" ] &&
	   [ "$n" -eq "$(grep -c '^\s*use_backend ' "$cfg")" ]; then ok
	else bad "$name: one SPOE message and one backend per route"; fi
}

examples=("$EXAMPLES"/[0-9][0-9]-*/)
if [ ! -d "${examples[0]}" ]; then
	bad "no haproxy-examples/NN-*/ folders"
	examples=()
fi
for dir in "${examples[@]}"; do
	dir=${dir%/}
	name=$(basename "$dir")
	w=$T/$name
	mkdir -p "$w"
	missing=""
	for f in keyauth.conf haproxy.cfg keyauth-spoe.conf README.md; do
		[ -f "$dir/$f" ] || missing="$missing $f"
	done
	if [ -n "$missing" ]; then bad "$name: missing$missing"; continue; fi
	ok

	# keyauthd -t. The example's store path is usually absent here ("missing, 0
	# keys" is fine); if it exists it may be a real, unreadable store: use a copy
	# of the config pointing at a temporary one instead.
	store=$(sed -nE 's/^\s*path\s*=\s*"([^"]*)".*/\1/p' "$dir/keyauth.conf" | head -n 1)
	if [ -n "$store" ] && [ -e "$store" ]; then
		sed "s|\"$store\"|\"$w/keys.db\"|" "$dir/keyauth.conf" >"$w/t.conf"
		check "$name: keyauthd -t accepts keyauth.conf" "$KEYAUTHD" -t -c "$w/t.conf"
	else
		check "$name: keyauthd -t accepts keyauth.conf" "$KEYAUTHD" -t -c "$dir/keyauth.conf"
	fi

	if ! render "$dir" "$w/r" --spoe-path "$SPOE_PATH" 2>"$T/out"; then
		bad "$name: keyauthctl haproxy failed"; sed 's/^/    /' "$T/out" >&2; continue
	fi
	if [ "$update" = 1 ]; then
		cp "$w/r/haproxy-keyauth.cfg" "$dir/haproxy.cfg"
		cp "$w/r/keyauth-spoe.conf" "$dir/keyauth-spoe.conf"
		chmod 0644 "$dir/haproxy.cfg" "$dir/keyauth-spoe.conf"
		echo "updated $name"
	fi
	check "$name: haproxy.cfg is what keyauthctl renders" diff -u "$dir/haproxy.cfg" "$w/r/haproxy-keyauth.cfg"
	check "$name: keyauth-spoe.conf is what keyauthctl renders" diff -u "$dir/keyauth-spoe.conf" "$w/r/keyauth-spoe.conf"
	static_checks "$dir/haproxy.cfg" "$dir/keyauth-spoe.conf" "$name"

	# The committed files name /etc/haproxy/keyauth-spoe.conf; haproxy -c reads
	# that file, so check copies that name the SPOE file beside them.
	render "$dir" "$w/c26" --spoe-path "$w/c26/keyauth-spoe.conf" 2>/dev/null
	render "$dir" "$w/c32" --spoe-path "$w/c32/keyauth-spoe.conf" --haproxy-version 3.2 2>/dev/null
	if grep -vE '^\s*#' "$w/c32/keyauth-spoe.conf" | grep -qE 'send-frag-payload|timeout (hello|idle)'; then
		bad "$name: the 3.2 rendering keeps 2.6-only SPOE options"; else ok; fi
	if [ "$have_h26" = 1 ]; then
		check "$name: HAProxy 2.6 accepts the rendering" haproxy_c "$HAPROXY" "$w/c26/haproxy-keyauth.cfg"
	fi
	if [ "$have_h32" = 1 ]; then
		check "$name: HAProxy 3.2 accepts the 2.6 rendering" haproxy_c "$HAPROXY32" "$w/c26/haproxy-keyauth.cfg"
		check "$name: HAProxy 3.2 accepts the --haproxy-version 3.2 rendering" \
			haproxy_c "$HAPROXY32" "$w/c32/haproxy-keyauth.cfg"
	fi
done

# ---- live: 03-query with real HAProxy, keyauthd and the stand-in provider -------------

free_port() {
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

# wait_for CMD...: polls CMD (every 50 ms) until it succeeds; gives up once 10 s
# have passed (1; CMD itself must be bounded: status_is is, by curl --max-time),
# or at once when CMD returns 2 (what it waits for can no longer happen).
wait_for() {
	local end=$(($(date +%s%N) + 10000000000)) rc
	while :; do
		"$@"; rc=$?
		[ "$rc" = 0 ] || [ "$rc" = 2 ] && return "$rc"
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# alive_then NAME:PID... -- CMD...: 2 (and says so) when one of the processes
# has exited, else CMD's status.
alive_then() {
	local np
	while [ "$1" != -- ]; do
		np=$1; shift
		if ! kill -0 "${np#*:}" 2>/dev/null; then echo "${np%%:*} exited" >"$T/gone"; return 2; fi
	done
	shift
	"$@"
}

# status_is CODE URL: a GET of URL (no key in it) answers CODE (2 s at most).
status_is() { [ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$2")" = "$1" ]; }

# live_query LABEL HAPROXY VERSION
live_query() {
	local label=$1 hap=$2 ver=$3 d=$T/live-$1 pp fp hp kp code u seen q
	mkdir -p "$d/hap"
	rm -f "$T/gone"
	: >"$d/prov.out"
	node "$ROOT/tests/e2e/provider.js" 0 >"$d/prov.out" 2>&1 &
	PIDS+=($!)
	if ! wait_for alive_then "provider:$!" -- grep -q '^listening' "$d/prov.out"; then
		bad "$label: stand-in provider did not start within 10 s ($(cat "$T/gone" 2>/dev/null || echo 'still running'))"; return
	fi
	pp=$(awk '/^listening/ {print $2}' "$d/prov.out")
	fp=$(free_port)
	sed -e "s|unix:/run/keyauth/keyauthd.sock|unix:$d/keyauthd.sock|" -e "s|127.0.0.1:8000|127.0.0.1:$pp|" \
	    -e "s|/var/lib/keyauth/keys.db|$d/keys.db|" "$EXAMPLES/03-query/keyauth.conf" >"$d/keyauth.conf"
	if ! "$KEYAUTHCTL" -c "$d/keyauth.conf" key create --route chat-app >"$d/key" 2>"$T/out"; then
		bad "$label: key create"; return
	fi
	q=$(head -n 1 "$d/key")
	"$KEYAUTHD" -c "$d/keyauth.conf" >"$d/keyauthd.log" 2>&1 &
	kp=$!
	PIDS+=("$kp")
	"$KEYAUTHCTL" -c "$d/keyauth.conf" haproxy --out "$d/hap" --bind "127.0.0.1:$fp" \
		--haproxy-version "$ver" >/dev/null 2>"$T/out" || { bad "$label: render"; return; }
	"$hap" -db -f "$d/hap/haproxy-keyauth.cfg" >"$d/haproxy.log" 2>&1 &
	hp=$!
	PIDS+=("$hp")
	# Ready when a request without a key gets the agent's 401 (not 503).
	if ! wait_for alive_then "keyauthd:$kp" "haproxy:$hp" -- status_is 401 "http://127.0.0.1:$fp/apps/chat/v1/models"; then
		bad "$label: HAProxy + keyauthd did not come up within 10 s, no 401 without a key ($(cat "$T/gone" 2>/dev/null || echo 'both running'))"; return
	fi
	# The URLs go to curl through a 0600 config file, not argv: they hold the key.
	for u in '?api_key=@K@' '?a=1&api_key=@K@&b=2' '?a=1;api_key=@K@' '?api_key=@K@;b=2' \
	         '?a=b?api_key=@K@' '?api_key=@K@&api_key=@K@' '?x_api_key=1&api_key=@K@'; do
		printf 'url = "http://127.0.0.1:%s/apps/chat/v1/models%s"\n' "$fp" "${u//@K@/$q}" >"$d/curl.cfg"
		code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -K "$d/curl.cfg")
		if [ "$code" = 200 ]; then ok; else bad "$label: $u (key elided) -> $code, want 200"; fi
	done
	printf 'url = "http://127.0.0.1:%s/apps/chat/v1/models?API_KEY=%s"\n' "$fp" "$q" >"$d/curl.cfg"
	code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -K "$d/curl.cfg")
	if [ "$code" = 401 ]; then ok; else bad "$label: ?API_KEY= (wrong case) -> $code, want 401"; fi
	curl -s --max-time 10 "http://127.0.0.1:$pp/__requests" >"$d/seen.json"
	seen=$(grep -o '"path":' "$d/seen.json" | wc -l)
	if [ "$seen" -eq 7 ]; then ok; else bad "$label: upstream saw $seen requests, want 7"; fi
	if ! grep -qF -f "$d/key" "$d/seen.json" && ! grep -qE '[?&;]api_key=' "$d/seen.json"; then ok
	else bad "$label: the key (or an api_key parameter) reached the upstream"; fi
	if grep -q '"query":"?a=1&b=2"' "$d/seen.json" && grep -q '"query":"?x_api_key=1"' "$d/seen.json"; then ok
	else bad "$label: other query parameters must reach the upstream unchanged"; fi
	stop_pids "$hp"
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$hp" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
	if [ -s "$d/haproxy.log" ] && ! grep -qF -f "$d/key" "$d/haproxy.log" &&
	   grep -q 'keyauth=ok' "$d/haproxy.log"; then ok
	else bad "$label: HAProxy's log must have the requests and no key"; fi
}

if ! command -v node >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
	echo "check.sh: node or curl missing: live 03-query check SKIPPED" >&2
elif [ -d "$EXAMPLES/03-query" ]; then
	[ "$have_h26" = 1 ] && live_query haproxy-2.6 "$HAPROXY" 2.6
	[ "$have_h32" = 1 ] && live_query haproxy-3.2 "$HAPROXY32" 3.2
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
