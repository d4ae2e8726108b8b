#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# e2e.sh: end to end through HAProxy 2.6 and 3.2 on loopback, driven by wrk
# (issues 6 and 19).
#
# For each HAProxy binary (E2E_HAPROXIES: Debian's 2.6, and 3.2 from
# .haproxy32/ when it runs), one HAProxy configuration per contender, each
# with the same global tuning (@GLOBAL@: nbthread, maxconn) and routing, all
# forwarding to one upstream stub that runs in ITS OWN HAProxy process (one
# thread; a real provider is elsewhere, so its CPU is neither counted nor
# shared with the measured process):
#   a  no authentication                      haproxy-noauth.cfg
#   b  HAProxy's native sha2(256),hex,map()   haproxy-native.cfg
#   c  keyauth, as `keyauthctl haproxy` renders it, keyauthd on its default
#      listener kind (a unix socket)
#   d  as c, keyauthd on loopback TCP (allow_plain_tcp)
#   g  the floor: as c, but the agent is floor_agent, which answers every
#      NOTIFY with one precomputed ACK (no parsing, lookup or hashing): what
#      HAProxy itself spends on an SPOE exchange, which keyauth cannot remove
#   h  3.1+ only: as c with the agent backend in `mode spop` instead of the
#      rendered `mode tcp` (which 3.1+ converts)
#   i  the bare SPOE exchange: (a) plus only the filter, the rendered SPOE
#      message and agent backend and one "deny unless ok" rule, with the
#      floor agent: (i) - (a) is HAProxy's SPOE machinery, (g) - (i) what the
#      rest of keyauth's rendered rules cost
#   j  as c with `balance first` on the agent backend instead of roundrobin
#   k  as c without the two rules that fill the log's sanitized method and
#      path (their regsub()s: what a configuration that does not log saves)
#   e  as d with `no option pipelining` (2.6 only; not in the default runs)
#   f  as d with `maxconn 5` on the agent server (not in the default runs)
# Levers of issue 19, not in the default runs (BENCHMARKS.md, "What keyauth
# controls"); with the floor agent, so that only HAProxy's side moves:
#   l m n o p  g without one group of rules: log sanitizing, refusals (503,
#      403, 401), rate limit, carrier stripping, identity/credential headers
#   L M N O P  g with that group repeated ten times (each rule idempotent or
#      false on the allowed path): (X - g) / 9 is the group's cost, which
#      stands above the round-to-round noise where a removal (l-p) cannot
#   q  g without `option http-no-delay`
#   s  g without the message's route= argument; S: ten more arguments
#   t  g with an agent that sends no txn.keyauth.ok (rules test status);
#      T: ten more variables in each ACK (floor_agent pad10)
#   u  g with every refusal moved into a backend only refused requests
#      reach (the allowed path tests one condition instead of eight rules);
#      U: the same with keyauthd
#   v  c with `timeout processing 5s` instead of 500ms
#   w  g with no frontend http-request rule but the route's and the backstop
#   y  g without the provider backend's Host header and tunnel timeout
#   C  c with the keyauthd binary E2E_KEYAUTHD_B (an A/B of two builds)
# The only edits to the rendered files: the global log line is removed (no
# configuration logs per request here), @GLOBAL@ is added. wrk runs
# tests/bench/mix.lua, every answer checked, in three request mixes: "valid"
# (100% valid keys: every request goes upstream; the headline, the worst
# case for the ratio to no authentication), "mix" (80% valid, 15%
# unknown, 5% none) and "light" (100% valid over E2E_LIGHT_CONNS=4
# connections: little queueing, so the added latency is the exchange's
# own, not the wait behind a lower throughput). E2E_RUNS lists CONFIG:MIX pairs; each gets a 1 s
# warm-up, then E2E_SECONDS of measurement, all in turn (per HAProxy
# version), E2E_ROUNDS times, so that the ratios of one run hold on a noisy
# machine. Reported per run: req/s, latency p50/p99/p99.9, errors (see
# mix.lua), and CPU per request of HAProxy and of the agent (utime+stime from
# /proc/PID/stat over the measurement).
#
#   tests/bench/e2e.sh [BUILD_DIR]      default build/rel
#   env: E2E_SECONDS=5 E2E_ROUNDS=1 E2E_CONNS=64 E2E_THREADS=1 (wrk)
#        E2E_RUNS="a:valid b:valid c:valid d:valid g:valid i:valid h:valid j:valid k:valid
#        a:mix b:mix c:mix a:light b:light c:light"
#        (h is skipped on 2.6, e on 3.x) E2E_NBTHREAD=2 (HAProxy)
#        E2E_WORKERS=1 (keyauthd) E2E_KEYS=10000 E2E_KEYAUTHD_B (config C)
#        E2E_HAPROXIES="/usr/sbin/haproxy .haproxy32/bin/haproxy" RESULTS=<file>
#        E2E_HOOK=<sh command run beside each measurement, with AGENT_PID,
#        PROXY_PID, CONFIG, HV, SECS and HAPSOCK (HAProxy's admin socket) set;
#        e.g. perf record, strace -c, or tests/bench/profile.sh>
#
# Every process started here is stopped by pid; the temporary directory (it
# holds keys) is removed on exit. Keys are never printed nor put in argv.
set -eu

B=${1:-build/rel}
HERE=$(dirname "$0")
. "$HERE/lib.sh"
KEYAUTHD=${KEYAUTHD:-$B/keyauthd}
KEYAUTHCTL=${KEYAUTHCTL:-$B/keyauthctl}
MKSTORE=$B/bench/mkstore
MKMAP=$B/bench/mkmap
FLOOR=$B/bench/floor_agent
if [ -z "${E2E_HAPROXIES:-}" ]; then
	E2E_HAPROXIES=/usr/sbin/haproxy
	! .haproxy32/bin/haproxy -v >/dev/null 2>&1 || E2E_HAPROXIES="$E2E_HAPROXIES $(pwd)/.haproxy32/bin/haproxy"
fi
WRK=${WRK:-wrk}
SECS=${E2E_SECONDS:-5}
ROUNDS=${E2E_ROUNDS:-1}
RUNS=${E2E_RUNS:-a:valid b:valid c:valid d:valid g:valid i:valid h:valid j:valid k:valid a:mix b:mix c:mix a:light b:light c:light}
CONNS=${E2E_CONNS:-64}
LIGHT_CONNS=${E2E_LIGHT_CONNS:-4}
THREADS=${E2E_THREADS:-1}
NBTHREAD=${E2E_NBTHREAD:-2}
WORKERS=${E2E_WORKERS:-1}
NKEYS=${E2E_KEYS:-10000}
RESULTS=${RESULTS:-/dev/null}

for f in "$KEYAUTHD" "$KEYAUTHCTL" "$MKSTORE" "$MKMAP" "$FLOOR" $E2E_HAPROXIES; do
	[ -x "$f" ] || { echo "e2e.sh: $f not built or not installed" >&2; exit 2; }
done
command -v "$WRK" >/dev/null 2>&1 || { echo "e2e.sh: wrk not installed (Debian package wrk)" >&2; exit 2; }
command -v curl >/dev/null 2>&1 || { echo "e2e.sh: curl not installed" >&2; exit 2; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/kae2e-XXXXXX")
AGENT= PROXY= STUB=
cleanup() {
	stop_pid "$PROXY"
	stop_pid "$AGENT"
	stop_pid "$STUB"
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

set -- $(pick_ports 3)
FPORT=$1 SPORT=$2 APORT=$3
URL="http://127.0.0.1:$FPORT/openai/v1/chat/completions"

# ---- keys, store, map -------------------------------------------------------

m=$NKEYS
[ "$m" -le 10000 ] || m=10000
"$MKSTORE" "$DIR/keys.db" "$NKEYS" "$DIR/valid.txt" "$m" openai >/dev/null
"$MKMAP" "$DIR/valid.txt" "$DIR/keys.map" "$DIR/invalid.txt" 1000 >/dev/null

# ---- the upstream, in its own process -------------------------------------------

{
	printf 'global\n    nbthread 1\n    maxconn 5000\n\ndefaults\n    mode http\n'
	printf '    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\n'
	cat "$HERE/haproxy-stub.cfg"
} | sed -e "s|@STUB@|127.0.0.1:$SPORT|g" >"$DIR/stub.cfg"
set -- $E2E_HAPROXIES
"$1" -db -f "$DIR/stub.cfg" >"$DIR/stub.log" 2>&1 &
STUB=$!
i=0
until curl -s -o /dev/null "http://127.0.0.1:$SPORT/"; do
	i=$((i + 1))
	[ $i -le 200 ] || { echo "e2e.sh: the upstream stub did not start" >&2; cat "$DIR/stub.log" >&2; exit 1; }
	sleep 0.05
done

# ---- configurations -----------------------------------------------------------

GLOBAL="    nbthread $NBTHREAD
    maxconn 5000
    stats socket $DIR/hap.sock mode 600 level admin"

# subst TEMPLATE OUT: fills the placeholders.
subst() {
	awk -v g="$GLOBAL" '$0 == "@GLOBAL@" { print g; next } { print }' "$1" |
		sed -e "s|@BIND@|127.0.0.1:$FPORT|g" -e "s|@STUB@|127.0.0.1:$SPORT|g" \
			-e "s|@MAP@|$DIR/keys.map|g" >"$2"
}

# render DIR LISTEN VERSION: keyauth.conf for keyauthd listening on LISTEN,
# and the HAProxy files keyauthctl renders from it for HAProxy VERSION, into
# DIR/ (DIR/haproxy.cfg: the global tuning added, the log line removed).
render() {
	mkdir -p "$1"
	cat >"$1/keyauth.conf" <<EOC
listen = [ "$2" ];
allow_plain_tcp = true;
socket_mode = "0600";
workers = $WORKERS;
key_prefix = "ka_";
store = { backend = "file"; path = "$DIR/keys.db"; };
log = { level = "warning"; target = "stderr"; };
routes = ( { name = "openai"; type = "provider"; context = "/openai";
             upstream = "127.0.0.1:$SPORT";
             security = { key_name = "Authorization"; key_location = "header"; }; } );
EOC
	"$KEYAUTHCTL" -c "$1/keyauth.conf" haproxy --out "$1" \
		--bind "127.0.0.1:$FPORT" --haproxy-version "$3" >/dev/null
	awk -v g="$GLOBAL" '/^global$/ { print; print g; next }
		/^[ \t]*log stdout / { next } { print }' "$1/haproxy-keyauth.cfg" >"$1/haproxy.cfg"
}

# shape_error NAME: the rendered configuration no longer has the shape
# e2e.sh edits for configuration NAME.
shape_error() {
	echo "e2e.sh: the rendered configuration changed shape ($1); update e2e.sh" >&2
	exit 1
}

# must_differ A B NAME: a variant B that did not change A is a shape error.
must_differ() {
	! cmp -s "$1" "$2" || shape_error "$3"
}

# ablate NAME PATTERN: g without the lines matching PATTERN (grep -E).
ablate() {
	grep -v -E "$2" "$v/g.cfg" >"$v/$1.cfg"
	must_differ "$v/g.cfg" "$v/$1.cfg" "$1"
}

# spoe_variant NAME SED: c with its SPOE file edited by SED.
spoe_variant() {
	mkdir -p "$v/$1"
	sed "$2" "$v/c/keyauth-spoe.conf" >"$v/$1/keyauth-spoe.conf"
	must_differ "$v/c/keyauth-spoe.conf" "$v/$1/keyauth-spoe.conf" "$1"
	sed "s|$v/c/keyauth-spoe.conf|$v/$1/keyauth-spoe.conf|" "$v/c.cfg" >"$v/$1.cfg"
}

# configure HV BIN: every configuration for one HAProxy version under $DIR/$HV.
configure() {
	v=$DIR/$1
	mkdir -p "$v"
	subst "$HERE/haproxy-noauth.cfg" "$v/a.cfg"
	subst "$HERE/haproxy-native.cfg" "$v/b.cfg"
	render "$v/c" "unix:$DIR/agent.sock" "$1"
	cp "$v/c/haproxy.cfg" "$v/c.cfg"
	[ -z "${E2E_KEYAUTHD_B:-}" ] || cp "$v/c.cfg" "$v/C.cfg"
	render "$v/d" "127.0.0.1:$APORT" "$1"
	cp "$v/d/haproxy.cfg" "$v/d.cfg"
	# g: the rendered c, its agent replaced by the floor agent on the same socket.
	mkdir -p "$v/g"
	cp "$v/c/keyauth-spoe.conf" "$v/g/keyauth-spoe.conf"
	sed "s|$v/c/keyauth-spoe.conf|$v/g/keyauth-spoe.conf|" "$v/c.cfg" >"$v/g.cfg"
	# i: the bare SPOE exchange: (a) plus the filter, the rendered SPOE
	# message and agent backend, and one rule (deny unless ok), with the floor
	# agent: (i)-(a) is the SPOE machinery, (g)-(i) what keyauth's other
	# rendered rules cost.
	awk -v spoe="$v/c/keyauth-spoe.conf" '{ print }
		/^    bind / { print "    filter spoe engine keyauth config " spoe
		             print "    http-request deny deny_status 503 unless { var(txn.keyauth.ok) -m bool }" }' \
		"$v/a.cfg" >"$v/i.cfg"
	awk '/^backend keyauth_agents$/ { on = 1; print "" } on && /^(backend|frontend|peers) / && !/keyauth_agents/ { on = 0 }
		on { print }' "$v/c.cfg" >>"$v/i.cfg"
	grep -q '^backend keyauth_agents$' "$v/i.cfg" || shape_error i
	if [ "$1" != 2.6 ]; then
		render "$v/h" "unix:$DIR/agent.sock" "$1"
		awk '/^backend keyauth_agents$/ { inb = 1 } /^backend / && !/keyauth_agents/ { inb = 0 }
			inb && $1 == "mode" && $2 == "tcp" { sub(/mode tcp/, "mode spop") } { print }' \
			"$v/h/haproxy.cfg" >"$v/h.cfg"
		grep -q '^    mode spop$' "$v/h.cfg" || shape_error h
	else
		render "$v/e" "127.0.0.1:$APORT" "$1"
		awk '{ print } /^spoe-agent / { print "    no option pipelining" }' \
			"$v/e/keyauth-spoe.conf" >"$v/e/spoe.tmp"
		mv "$v/e/spoe.tmp" "$v/e/keyauth-spoe.conf"
		cp "$v/e/haproxy.cfg" "$v/e.cfg"
	fi
	# Ablations of the rendered rules, all with the floor agent (so only
	# HAProxy's side moves): (g) - (X) is what the removed group costs.
	# Amplified (capitals): the same group repeated ten times (each rule is
	# idempotent or its condition false on the allowed path), so that
	# (X10 - g) / 9 is one group's cost, well above the round-to-round noise
	# of ~2 us where a removal is not.
	for group in \
		'l:set-var\(txn\.keyauth_l(path|method)\)' \
		'm:^    http-request return status (503|403|401) ' \
		'n:^    http-request .*(keyauth_rate|sc-inc-gpc0|status 429 )' \
		'o:del-header (Proxy-Authorization|X-API-Key|api-key|x-goog-api-key)$|keyauth_q|set-uri ' \
		'p:del-header x(-|_)keyauth|set-header Authorization '; do
		name=${group%%:*} re=${group#*:}
		ablate "$name" "$re"
		awk -v re="$re" '$0 ~ re { for (i = 0; i < 10; i++) print; next } { print }' "$v/g.cfg" \
			>"$v/$(echo "$name" | tr a-z A-Z).cfg"
	done
	# q: g without `option http-no-delay` (what the streaming fix costs).
	ablate q '^    option http-no-delay$'
	# w: g with no frontend http-request rule but the route's and the
	# backstop (deny unless ok): what the rendered rules cost together.
	awk '/^    http-request / && !/set-var\(txn\.keyauth_route\)|deny deny_status 503 unless|set-path|replace-path|set-header Host/ { next }
		{ print }' "$v/g.cfg" >"$v/w.cfg"
	must_differ "$v/g.cfg" "$v/w.cfg" w
	# y: g without the provider backend's Host header and tunnel timeout.
	ablate y '^    http-request set-header Host |^    timeout tunnel '
	# s: without the message's route= argument (HAProxy's side of it); S: ten
	# more arguments (str(), as route= is); v: the SPOE processing timeout at
	# 5s instead of the rendered 500ms (a timer armed per exchange either way).
	spoe_variant s 's/ route=str([^)]*)//'
	spoe_variant S 's/ route=str(\([^)]*\))/ route=str(\1) a0=str(\1) a1=str(\1) a2=str(\1) a3=str(\1) a4=str(\1) a5=str(\1) a6=str(\1) a7=str(\1) a8=str(\1) a9=str(\1)/'
	spoe_variant v 's/^    timeout processing .*/    timeout processing 5s/'
	# t: g with an agent that sends no txn.keyauth.ok, the rules testing
	# status "ok" instead (one variable fewer per ACK); T: ten more variables
	# in each ACK (floor_agent pad10).
	sed 's/var(txn\.keyauth\.ok) -m bool/var(txn.keyauth.status) -m str ok/g' "$v/g.cfg" >"$v/t.cfg"
	must_differ "$v/g.cfg" "$v/t.cfg" t
	cp "$v/g.cfg" "$v/T.cfg"
	# u: g with every refusal (404, 405, 503, 403, 401, the backstop) moved
	# into a backend that only refused requests reach: the allowed path
	# tests one condition (on use_backend) instead of eight rules; U: the
	# same with keyauthd.
	for x in g:u c:U; do
		awk '/^    http-request (return status (404|405|503|403|401) |deny deny_status 503 unless)/ { r[++n] = $0; next }
			/^    use_backend be_openai if keyauth_is_openai$/ {
				print $0 " { var(txn.keyauth.ok) -m bool }"; print "    default_backend keyauth_refuse"; next }
			{ print }
			END { print ""; print "backend keyauth_refuse"; for (i = 1; i <= n; i++) print r[i]
			      print "    http-request deny deny_status 503" }' "$v/${x%:*}.cfg" >"$v/${x#*:}.cfg"
		grep -q 'default_backend keyauth_refuse' "$v/${x#*:}.cfg" || shape_error "${x#*:}"
	done
	# j: c with `balance first` on the agent backend (one agent: no
	# round-robin write lock per NOTIFY in 3.x).
	render "$v/j" "unix:$DIR/agent.sock" "$1"
	sed 's/^    balance roundrobin$/    balance first/' "$v/j/haproxy.cfg" >"$v/j.cfg"
	grep -q '^    balance first$' "$v/j.cfg" || shape_error j
	# k: c without the two rules that fill the sanitized log method and path
	# (their regsub()s run on every request, logged or not).
	grep -v 'set-var(txn.keyauth_lpath)\|set-var(txn.keyauth_lmethod)' "$v/c.cfg" >"$v/k.cfg"
	must_differ "$v/c.cfg" "$v/k.cfg" k
	render "$v/f" "127.0.0.1:$APORT" "$1"
	sed 's/^\(    server agent1 .*\)$/\1 maxconn 5/' "$v/f/haproxy.cfg" >"$v/f.cfg"
	grep -q '^    server agent1 .* maxconn 5$' "$v/f.cfg" || shape_error f
	for c in "$v"/?.cfg; do
		"$2" -c -q -f "$c" || { echo "e2e.sh: config $c rejected by $2" >&2; exit 1; }
	done
}

label() {
	case $1 in
	a) echo "no auth" ;;
	b) echo "haproxy map" ;;
	c) echo "keyauth" ;;
	d) echo "keyauth tcp" ;;
	e) echo "keyauth no pipelining" ;;
	f) echo "keyauth maxconn 5" ;;
	g) echo "floor agent" ;;
	h) echo "keyauth mode spop" ;;
	i) echo "bare spoe, floor agent" ;;
	j) echo "keyauth balance first" ;;
	k) echo "keyauth no log sanitizing" ;;
	l) echo "floor, no log sanitizing" ;;
	m) echo "floor, no refusal rules" ;;
	n) echo "floor, no rate-limit rules" ;;
	o) echo "floor, no carrier stripping" ;;
	p) echo "floor, no identity/credential headers" ;;
	s) echo "floor, no route= argument" ;;
	t) echo "floor, no ok variable" ;;
	u) echo "floor, refusals in a backend" ;;
	w) echo "floor, only the route and backstop rules" ;;
	y) echo "floor, no Host header or tunnel timeout" ;;
	q) echo "floor, no http-no-delay" ;;
	U) echo "keyauth, refusals in a backend" ;;
	v) echo "keyauth, timeout processing 5s" ;;
	C) echo "keyauth, agent B" ;;
	L) echo "floor, log sanitizing x10" ;;
	M) echo "floor, refusal rules x10" ;;
	N) echo "floor, rate-limit rules x10" ;;
	O) echo "floor, carrier stripping x10" ;;
	P) echo "floor, identity/credential headers x10" ;;
	S) echo "floor, 10 more message arguments" ;;
	T) echo "floor, 10 more ACK variables" ;;
	esac
}

# ---- processes ------------------------------------------------------------------

# floor_config CONFIG: true when CONFIG runs floor_agent instead of keyauthd.
floor_config() {
	case $1 in g|i|l|m|n|o|p|q|s|t|u|w|y|L|M|N|O|P|S|T) return 0 ;; esac
	return 1
}

start_agent() { # HV CONFIG
	rm -f "$DIR/agent.sock"
	bin_agent=$KEYAUTHD
	case $2 in C) bin_agent=${E2E_KEYAUTHD_B:?C needs E2E_KEYAUTHD_B} ;; esac
	case $2 in k|U|v|C) set -- "$1" c ;; esac
	if floor_config "$2"; then
		mode=
		case $2 in t) mode=nook ;; T) mode=pad10 ;; esac
		"$FLOOR" "unix:$DIR/agent.sock" $mode >"$DIR/agent.log" 2>&1 &
	else
		"$bin_agent" -c "$DIR/$1/$2/keyauth.conf" 2>"$DIR/agent.log" &
	fi
	AGENT=$!
}

# wait_http WANT: until a request without a key gets status WANT (10 s max).
wait_http() {
	i=0
	while :; do
		code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL" 2>/dev/null || true)
		[ "$code" = "$1" ] && return 0
		i=$((i + 1))
		if [ $i -gt 200 ]; then
			echo "e2e.sh: no $1 from HAProxy after 10 s (last: $code)" >&2
			cat "$DIR/haproxy.log" "$DIR/agent.log" >&2 2>/dev/null || true
			exit 1
		fi
		sleep 0.05
	done
}

run_wrk() { # SECONDS EXPECT MIX OUTFILE
	vp=80 mp=5 n=$CONNS
	case $3 in
	valid) vp=100 mp=0 ;;
	light) vp=100 mp=0 n=$LIGHT_CONNS ;;
	esac
	MIX_KEYS="$DIR/valid.txt" MIX_INVALID="$DIR/invalid.txt" MIX_EXPECT=$2 \
	MIX_VALID_PCT=$vp MIX_MISSING_PCT=$mp \
	MIX_CONNS=$n "$WRK" -t"$THREADS" -c"$n" -d"$1"s --timeout 2s \
		-s "$HERE/mix.lua" "$URL" >"$4" 2>&1 || true
}

bench_config() { # HV BIN CONFIG MIX ROUND
	hv=$1 bin=$2 c=$3 mix=$4
	expect=auth want=401
	[ "$c" = a ] && expect=noauth want=200
	# The floor agent allows everything: a 200 without a key shows it is up.
	! floor_config "$c" || want=200
	case $c in a|b) ;; *) start_agent "$hv" "$c" ;; esac
	"$bin" -db -f "$DIR/$hv/$c.cfg" >"$DIR/haproxy.log" 2>&1 &
	PROXY=$!
	wait_http $want
	run_wrk 1 "$expect" "$mix" "$DIR/warmup.out"
	h0=$(cpu_ticks "$PROXY")
	a0=0
	[ -n "$AGENT" ] && a0=$(cpu_ticks "$AGENT")
	hook=
	if [ -n "${E2E_HOOK:-}" ]; then
		AGENT_PID=${AGENT:-0} PROXY_PID=$PROXY CONFIG=$c HV=$hv SECS=$SECS HAPSOCK=$DIR/hap.sock \
			sh -c "$E2E_HOOK" &
		hook=$!
	fi
	run_wrk "$SECS" "$expect" "$mix" "$DIR/wrk.out"
	[ -z "$hook" ] || wait "$hook" || true
	h1=$(cpu_ticks "$PROXY")
	a1=0
	[ -n "$AGENT" ] && a1=$(cpu_ticks "$AGENT")
	out=$(grep '^wrk ' "$DIR/wrk.out" || true)
	if [ -z "$out" ]; then
		cat "$DIR/wrk.out" >&2
		echo "e2e.sh: wrk gave no result for config $c on $hv" >&2
		exit 1
	fi
	reqs=$(kv "$out" requests)
	line="result bench=e2e hv=$hv config=$c mix=$mix round=$5 rate=$(kv "$out" rate)"
	line="$line p50_us=$(kv "$out" p50_us) p99_us=$(kv "$out" p99_us) p999_us=$(kv "$out" p999_us)"
	line="$line errors=$(kv "$out" errors) timeouts=$(kv "$out" timeouts) other=$(kv "$out" other)"
	line="$line sock_errors=$(kv "$out" sock_errors) bad200=$(kv "$out" bad200)"
	line="$line haproxy_cpu_us=$(per_unit $((h1 - h0)) "$reqs") agent_cpu_us=$(per_unit $((a1 - a0)) "$reqs")"
	line="$line requests=$reqs ok200=$(kv "$out" ok200) n401=$(kv "$out" n401)"
	echo "$line label=\"$(label "$c")\""
	[ "${E2E_DEBUG:-0}" = 0 ] || grep -v '^wrk ' "$DIR/wrk.out" >&2
	echo "$line" >>"$RESULTS"
	stop_pid "$PROXY"
	PROXY=
	stop_pid "$AGENT"
	AGENT=
}

# hv_of BIN: "2.6" or "3.2" (the rendering family: 3.1+ renders as 3.2).
hv_of() {
	"$1" -v 2>/dev/null | head -n 1 | sed -nE 's/^HAProxy version ([0-9]+)\.([0-9]+).*/\1 \2/p' |
		awk '{ print ($1 > 3 || ($1 == 3 && $2 >= 1)) ? "3.2" : "2.6" }'
}

for bin in $E2E_HAPROXIES; do
	configure "$(hv_of "$bin")" "$bin"
done
r=1
while [ $r -le "$ROUNDS" ]; do
	for bin in $E2E_HAPROXIES; do
		hv=$(hv_of "$bin")
		for run in $RUNS; do
			c=${run%%:*}
			[ -f "$DIR/$hv/$c.cfg" ] || continue
			bench_config "$hv" "$bin" "$c" "${run#*:}" "$r"
		done
	done
	r=$((r + 1))
done
