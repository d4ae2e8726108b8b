#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# e2e.sh: end to end through HAProxy 2.6 on loopback, driven by wrk (issue 6).
#
# One HAProxy configuration per contender, each with the same global tuning
# (@GLOBAL@: nbthread, maxconn), the same routing and the same upstream stub
# (haproxy-stub.cfg: a frontend of the same HAProxy answering 200):
#   a  no authentication                      haproxy-noauth.cfg
#   b  HAProxy's native sha2(256),hex,map()   haproxy-native.cfg
#   c  keyauth, as `keyauthctl haproxy` renders it, keyauthd on loopback TCP
#      (where the default keyauth.conf listens)
#   d  as c, keyauthd on a unix socket
# and two settings that matter, to show how much (rendered, then changed):
#   e  as c with `no option pipelining` in the SPOE agent (one NOTIFY in
#      flight per agent connection)
#   f  as c with `maxconn 5` on the agent server line (a README default
#      elsewhere)
# The only edits to the rendered files: the global log line is removed (no
# configuration logs per request here), @GLOBAL@ is added, the stub is
# appended. wrk runs tests/bench/mix.lua, every answer checked, in two
# request mixes: "mix" (80% valid keys, 15% unknown, 5% none) and "valid"
# (100% valid: every request goes upstream, the worst case for the ratio to
# no authentication). E2E_RUNS lists CONFIG:MIX pairs; each gets a 1 s
# warm-up, then E2E_SECONDS of measurement, all in turn, E2E_ROUNDS times,
# so that the ratios of one run hold on a noisy machine. Reported: req/s,
# latency p50/p99/p99.9, errors (see mix.lua), and CPU per request of HAProxy
# and of keyauthd (utime+stime from /proc/PID/stat over the measurement).
#
#   tests/bench/e2e.sh [BUILD_DIR]      default build/rel
#   env: E2E_SECONDS=8 E2E_ROUNDS=1 E2E_CONNS=64 E2E_THREADS=1 (wrk)
#        E2E_RUNS="a:mix b:mix c:mix d:mix e:mix f:mix a:valid b:valid c:valid d:valid"
#        E2E_NBTHREAD=2 (HAProxy) E2E_WORKERS=1 (keyauthd) E2E_KEYS=10000
#        HAPROXY=/usr/sbin/haproxy RESULTS=<file>
#        E2E_HOOK=<sh command run beside each measurement, with AGENT_PID,
#        PROXY_PID, CONFIG and SECS set; e.g. perf record or strace -c>
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
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
WRK=${WRK:-wrk}
SECS=${E2E_SECONDS:-8}
ROUNDS=${E2E_ROUNDS:-1}
RUNS=${E2E_RUNS:-a:mix b:mix c:mix d:mix e:mix f:mix a:valid b:valid c:valid d:valid}
CONNS=${E2E_CONNS:-64}
THREADS=${E2E_THREADS:-1}
NBTHREAD=${E2E_NBTHREAD:-2}
WORKERS=${E2E_WORKERS:-1}
NKEYS=${E2E_KEYS:-10000}
RESULTS=${RESULTS:-/dev/null}

for f in "$KEYAUTHD" "$KEYAUTHCTL" "$MKSTORE" "$MKMAP" "$HAPROXY"; do
	[ -x "$f" ] || { echo "e2e.sh: $f not built or not installed" >&2; exit 2; }
done
command -v "$WRK" >/dev/null 2>&1 || { echo "e2e.sh: wrk not installed (Debian package wrk)" >&2; exit 2; }
command -v curl >/dev/null 2>&1 || { echo "e2e.sh: curl not installed" >&2; exit 2; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/kae2e-XXXXXX")
AGENT= PROXY=
cleanup() {
	stop_pid "$PROXY"
	stop_pid "$AGENT"
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

# ---- configurations -----------------------------------------------------------

GLOBAL="    nbthread $NBTHREAD
    maxconn 5000"

# subst TEMPLATE OUT: fills the placeholders, appends the stub.
subst() {
	{
		awk -v g="$GLOBAL" '$0 == "@GLOBAL@" { print g; next } { print }' "$1"
		cat "$HERE/haproxy-stub.cfg"
	} | sed -e "s|@BIND@|127.0.0.1:$FPORT|g" -e "s|@STUB@|127.0.0.1:$SPORT|g" \
		-e "s|@MAP@|$DIR/keys.map|g" >"$2"
}

# render NAME LISTEN: keyauth.conf for keyauthd listening on LISTEN, and the
# HAProxy files keyauthctl renders from it, into $DIR/NAME/.
render() {
	mkdir -p "$DIR/$1"
	cat >"$DIR/$1/keyauth.conf" <<EOC
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
	"$KEYAUTHCTL" -c "$DIR/$1/keyauth.conf" haproxy --out "$DIR/$1" \
		--bind "127.0.0.1:$FPORT" --haproxy-version 2.6 >/dev/null
	{
		awk -v g="$GLOBAL" '/^global$/ { print; print g; next }
			/^[ \t]*log stdout / { next } { print }' "$DIR/$1/haproxy-keyauth.cfg"
		cat "$HERE/haproxy-stub.cfg"
	} | sed -e "s|@STUB@|127.0.0.1:$SPORT|g" >"$DIR/$1/haproxy.cfg"
}

subst "$HERE/haproxy-noauth.cfg" "$DIR/a.cfg"
subst "$HERE/haproxy-native.cfg" "$DIR/b.cfg"
render c "127.0.0.1:$APORT"
cp "$DIR/c/haproxy.cfg" "$DIR/c.cfg"
render d "unix:$DIR/agent.sock"
cp "$DIR/d/haproxy.cfg" "$DIR/d.cfg"
render e "127.0.0.1:$APORT"
awk '{ print } /^spoe-agent / { print "    no option pipelining" }' \
	"$DIR/e/keyauth-spoe.conf" >"$DIR/e/spoe.tmp"
mv "$DIR/e/spoe.tmp" "$DIR/e/keyauth-spoe.conf"
cp "$DIR/e/haproxy.cfg" "$DIR/e.cfg"
render f "127.0.0.1:$APORT"
sed 's/^\(    server agent1 .*\)$/\1 maxconn 5/' "$DIR/f/haproxy.cfg" >"$DIR/f.cfg"
grep -q 'no option pipelining' "$DIR/e/keyauth-spoe.conf" &&
	grep -q '^    server agent1 .* maxconn 5$' "$DIR/f.cfg" ||
	{ echo "e2e.sh: the rendered configuration changed shape; update e2e.sh" >&2; exit 1; }
for c in a b c d e f; do
	"$HAPROXY" -c -q -f "$DIR/$c.cfg" || { echo "e2e.sh: config $c rejected" >&2; exit 1; }
done

label() {
	case $1 in
	a) echo "no auth" ;;
	b) echo "haproxy map" ;;
	c) echo "keyauth" ;;
	d) echo "keyauth unix" ;;
	e) echo "keyauth no pipelining" ;;
	f) echo "keyauth maxconn 5" ;;
	esac
}

# ---- processes ------------------------------------------------------------------

start_agent() { # NAME
	rm -f "$DIR/agent.sock"
	"$KEYAUTHD" -c "$DIR/$1/keyauth.conf" 2>"$DIR/agent.log" &
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
	vp=80
	[ "$3" = valid ] && vp=100 mp=0 || mp=5
	MIX_KEYS="$DIR/valid.txt" MIX_INVALID="$DIR/invalid.txt" MIX_EXPECT=$2 \
	MIX_VALID_PCT=$vp MIX_MISSING_PCT=$mp \
	MIX_CONNS=$CONNS "$WRK" -t"$THREADS" -c"$CONNS" -d"$1"s --timeout 2s \
		-s "$HERE/mix.lua" "$URL" >"$4" 2>&1 || true
}

bench_config() { # CONFIG MIX ROUND
	c=$1 mix=$2
	expect=auth want=401
	[ "$c" = a ] && expect=noauth want=200
	case $c in
	c|d|e|f) start_agent "$c" ;;
	esac
	"$HAPROXY" -db -f "$DIR/$c.cfg" >"$DIR/haproxy.log" 2>&1 &
	PROXY=$!
	wait_http $want
	run_wrk 1 "$expect" "$mix" "$DIR/warmup.out"
	h0=$(cpu_ticks "$PROXY")
	a0=0
	[ -n "$AGENT" ] && a0=$(cpu_ticks "$AGENT")
	hook=
	if [ -n "${E2E_HOOK:-}" ]; then
		AGENT_PID=${AGENT:-0} PROXY_PID=$PROXY CONFIG=$c SECS=$SECS sh -c "$E2E_HOOK" &
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
		echo "e2e.sh: wrk gave no result for config $c" >&2
		exit 1
	fi
	reqs=$(kv "$out" requests)
	line="result bench=e2e config=$c mix=$mix round=$3 rate=$(kv "$out" rate)"
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

r=1
while [ $r -le "$ROUNDS" ]; do
	for run in $RUNS; do
		bench_config "${run%%:*}" "${run#*:}" "$r"
	done
	r=$((r + 1))
done
