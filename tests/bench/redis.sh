#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# redis.sh: keyauthd with the Redis store at REDIS_KEYS keys (issue 10:
# start-up load time and memory at 1,000,000 keys).
#
# Starts its own redis-server (Debian's) on a free loopback port, no
# persistence, working directory in a temporary directory; fills it with
# mkredis | redis-cli --pipe (the record layout of agent/common/store_redis.c,
# digests only) and checks the id count. Then for REDIS_ROUNDS rounds:
# starts keyauthd (one worker, redis backend, resync_interval 3600 so that
# only the forced resync below happens) and measures
#   load_ms      process start to the first ACK "ok" for a known key (loadgen,
#                one connection, one valid NOTIFY, retried every 20 ms until
#                the listener answers; the listener is up only after the load)
#   rss/hwm      VmRSS and VmHWM of keyauthd once answering
#   resync_ms    PUBLISH "*" on <ns>:events (what a writer does past 64 ids)
#                to the agent's next "store_loaded" log line: a full SCAN +
#                HGETALL reload and swap, including the 50 ms debounce; with
#                the agent's CPU over it and VmRSS/VmHWM after it (the old
#                and the new set live at once)
#   under load   a second forced resync while loadgen keeps 16 x 32 NOTIFYs
#                in flight (from 0.5 s before to ~1 s after): its errors
#                (must be 0) and p99/max latency over that window
# plus Redis's own used_memory and RSS. Every process is stopped by pid; the
# temporary directory (it holds keys) is removed on exit. Keys never printed.
#
#   tests/bench/redis.sh [BUILD_DIR]        default build/rel
#   tests/bench/redis.sh --report RESULTS   the BENCHMARKS.md section (markdown)
#   env: REDIS_KEYS=1000000 REDIS_ROUNDS=2 REDIS_SERVER=/usr/bin/redis-server
#        REDIS_CLI=redis-cli RESULTS=<file to append "result ..." lines to>
set -eu

HERE=$(dirname "$0")
. "$HERE/lib.sh"

# ---- report ------------------------------------------------------------------------

if [ "${1:-}" = --report ]; then
	R=$2
	grep -q '^result bench=redis ' "$R" 2>/dev/null || exit 0
	awk '
	function f(k) { return (k in F) ? F[k] : "" }
	function mib(kb) { return sprintf("%.1f", kb / 1024) }
	$1 == "result" && ($2 == "bench=redis" || $2 == "bench=redis-fill") {
		delete F
		for (i = 3; i <= NF; i++) { split($i, kv, "="); F[kv[1]] = kv[2] }
		if ($2 == "bench=redis-fill") {
			for (k in F) { v = F[k]; gsub(/_/, " ", v); if (k ~ /^load_/) gsub(/,/, " ", v); fill[k] = v }
			next
		}
		row[++n] = sprintf("| %d | %d | %d | %s (%s) | %d | %s (%s) | %d | %.0f / %.0f | %d |",
			f("round"), f("keys_loaded"), f("load_ms"), mib(f("rss_kb")), mib(f("hwm_kb")),
			f("resync_ms"), mib(f("rss_after_resync_kb")), mib(f("hwm_after_resync_kb")),
			f("resync_cpu_ms"), f("load_p99_us"), f("load_max_us"), f("load_errors"))
	}
	END {
		print "## Redis store at " fill["keys"] " keys (issue 10)"
		print ""
		printf "`sh tests/bench/redis.sh BUILD_DIR`, run of %s UTC on %s; load average\n", fill["date"], fill["machine"]
		printf "before %s, after %s. %s on loopback TCP, no persistence, filled by\n", fill["load_before"], fill["load_after"], fill["redis"]
		print "`mkredis | redis-cli --pipe` in " fill["fill_ms"] " ms (" fill["redis_used_mb"] " MiB used_memory, " fill["redis_rss_mb"] " MiB RSS in Redis)."
		print "keyauthd: one worker, not pinned. Load = process start to the first verdict for a known key"
		print "(the listener opens after the store is loaded). Resync = PUBLISH \"*\" to the change channel"
		print "(a full SCAN + HGETALL reload, 50 ms debounce included) to the agent'"'"'s store_loaded log"
		print "line, CPU and memory of that one; a second resync runs under load (loadgen 16 x 32 NOTIFYs"
		print "in flight from 0.5 s before to ~1 s after it: p99 / max latency and errors over that"
		print "window). Memory in MiB, VmRSS (VmHWM, the peak)."
		print ""
		print "| round | keys loaded | start-up load ms | memory after load | resync ms | memory after resync | resync agent CPU ms | loadgen p99 / max µs during resync | errors |"
		print "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		for (i = 1; i <= n; i++) print row[i]
		print ""
	}' "$R"
	exit 0
fi


# ---- run ---------------------------------------------------------------------------

B=${1:-build/rel}
KEYAUTHD=${KEYAUTHD:-$B/keyauthd}
LOADGEN=$B/bench/loadgen
MKREDIS=$B/bench/mkredis
NKEYS=${REDIS_KEYS:-1000000}
ROUNDS=${REDIS_ROUNDS:-2}
REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
RESULTS=${RESULTS:-/dev/null}
NS=kabench

for f in "$KEYAUTHD" "$LOADGEN" "$MKREDIS" "$REDIS_SERVER"; do
	[ -x "$f" ] || { echo "redis.sh: $f not built or not installed (make deps)" >&2; exit 2; }
done
command -v "$REDIS_CLI" >/dev/null 2>&1 || { echo "redis.sh: $REDIS_CLI missing (make deps)" >&2; exit 2; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/karedis-XXXXXX")
REDIS= AGENT= LOAD=
cleanup() {
	stop_pid "$LOAD"
	stop_pid "$AGENT"
	stop_pid "$REDIS"
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_before="$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
started=$(date -u '+%Y-%m-%dT%H:%M')
set -- $(pick_ports 2)
APORT=$2
redis_start "$DIR" "$1" redis.sh

t0=$(now_ms)
"$MKREDIS" "$NS" "$NKEYS" "$DIR/keys.txt" 1000 openai 2>"$DIR/mkredis.log" |
	rcli --pipe >"$DIR/pipe.log" 2>&1 ||
	{ cat "$DIR/mkredis.log" "$DIR/pipe.log" >&2; echo "redis.sh: fill failed" >&2; exit 1; }
t1=$(now_ms)
grep -q 'errors: 0,' "$DIR/pipe.log" || { cat "$DIR/pipe.log" >&2; echo "redis.sh: redis-cli --pipe reported errors" >&2; exit 1; }
n=$(rcli scard "$NS:ids")
[ "$n" -eq "$NKEYS" ] || { echo "redis.sh: $n ids in Redis, expected $NKEYS" >&2; exit 1; }
used=$(rcli info memory | awk -F: '$1 == "used_memory" { printf "%.0f", $2 / 1048576 }')
redis_rss=$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$REDIS/status")
fill_line="keys=$NKEYS fill_ms=$((t1 - t0)) redis_used_mb=$used redis_rss_mb=$redis_rss redis=$("$REDIS_SERVER" --version | awk '{ sub(/^v=/, "", $3); print $1 "_" $2 "_" $3 }')"
echo "redis.sh: filled: $fill_line"

cat >"$DIR/keyauth.conf" <<EOC
listen = [ "127.0.0.1:$APORT" ];
allow_plain_tcp = true;
workers = 1;
key_prefix = "ka_";
store = { backend = "redis"; address = "127.0.0.1:$RPORT"; namespace = "$NS"; resync_interval = 3600; };
log = { level = "info"; target = "stderr"; };
routes = ( { name = "openai"; type = "provider"; context = "/openai"; } );
EOC
head -1 "$DIR/keys.txt" >"$DIR/one.txt"

verdict_ok() {
	"$LOADGEN" -s "127.0.0.1:$APORT" -c 1 -d 1 -n 1 -v 100 -m 0 -k "$DIR/one.txt" >/dev/null 2>&1
}
loaded_lines() { grep -c 'event=store_loaded' "$DIR/agent.log" || true; }

r=1
while [ $r -le "$ROUNDS" ]; do
	: >"$DIR/agent.log"
	t0=$(now_ms)
	"$KEYAUTHD" -c "$DIR/keyauth.conf" 2>"$DIR/agent.log" &
	AGENT=$!
	agent_ready() { kill -0 "$AGENT" && ! port_free "$APORT" && verdict_ok; }
	until_ok 120 agent_ready || { cat "$DIR/agent.log" >&2; echo "redis.sh: agent not answering" >&2; exit 1; }
	t1=$(now_ms)
	loaded=$(awk '/event=store_loaded/ { for (i = 1; i <= NF; i++) if ($i ~ /^keys=/) { sub(/keys=/, "", $i); print $i; exit } }' "$DIR/agent.log")
	[ "${loaded:-0}" -eq "$NKEYS" ] || { cat "$DIR/agent.log" >&2; echo "redis.sh: agent loaded ${loaded:-?} keys, expected $NKEYS" >&2; exit 1; }
	rss=$(rss_kb "$AGENT" VmRSS) hwm=$(rss_kb "$AGENT" VmHWM)

	# A forced full resync, quiet: its time, the main thread's CPU, the peak.
	resynced() { [ "$(loaded_lines)" -gt "$before" ]; }
	before=$(loaded_lines)
	c0=$(cpu_ticks "$AGENT")
	rt0=$(now_ms)
	rcli publish "$NS:events" '*' >/dev/null
	until_ok 120 resynced || { cat "$DIR/agent.log" >&2; echo "redis.sh: no resync seen" >&2; exit 1; }
	rt1=$(now_ms)
	c1=$(cpu_ticks "$AGENT")
	rss2=$(rss_kb "$AGENT" VmRSS) hwm2=$(rss_kb "$AGENT" VmHWM)

	# Another one under load: the workers must keep answering meanwhile.
	# loadgen runs 0.5 s before and about 1 s after it.
	before=$(loaded_lines)
	secs=$(awk -v ms=$((rt1 - rt0)) 'BEGIN { printf "%.1f", ms / 1000 + 1.5 }')
	"$LOADGEN" -s "127.0.0.1:$APORT" -c 16 -d 32 -t "$secs" -k "$DIR/keys.txt" >"$DIR/load.out" 2>&1 &
	LOAD=$!
	sleep 0.5
	rcli publish "$NS:events" '*' >/dev/null
	until_ok 120 resynced || { echo "redis.sh: no second resync seen" >&2; exit 1; }
	rc=0
	wait "$LOAD" || rc=$?
	LOAD=
	out=$(cat "$DIR/load.out")
	[ $rc -eq 0 ] || { echo "$out" >&2; echo "redis.sh: loadgen reported errors during the resync" >&2; exit 1; }
	emit "result bench=redis round=$r keys=$NKEYS keys_loaded=$loaded load_ms=$((t1 - t0)) rss_kb=$rss hwm_kb=$hwm resync_ms=$((rt1 - rt0)) resync_cpu_ms=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t * 1000 / hz }') rss_after_resync_kb=$rss2 hwm_after_resync_kb=$hwm2 load_rate=$(kv "$out" rate) load_p99_us=$(kv "$out" p99_us) load_max_us=$(kv "$out" max_us) load_errors=$(kv "$out" errors)"
	stop_pid "$AGENT"
	AGENT=
	r=$((r + 1))
done
emit "result bench=redis-fill $fill_line date=$(echo "$started" | tr T _) machine=$(machine) load_before=$load_before load_after=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
