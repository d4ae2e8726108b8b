#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# run.sh: keyauthd's throughput benchmark (issue 3, "Speed").
#
# For a store of 10 keys and one of BIG_KEYS keys (default 1,000,000): writes
# the store with mkstore, times `keyauthd -t` on it (config check + full store
# load), starts keyauthd with one worker pinned to CPU 0, drives it from CPU 1
# with loadgen for SECONDS seconds, and reports verdicts/s, latency
# percentiles and the agent's resident memory. Loopback (a unix socket) only;
# every process started here is stopped by pid; the temporary directory (it
# holds keys) is removed on exit. Keys are never printed.
#
#   tests/bench/run.sh [BUILD_DIR]      default build/rel (make bench's tree)
#   env: SECONDS_PER_RUN=5 CONNS=16 DEPTH=32 BIG_KEYS=1000000 KEYAUTHD=<BUILD_DIR>/keyauthd
set -eu

B=${1:-build/rel}
KEYAUTHD=${KEYAUTHD:-$B/keyauthd}
LOADGEN=$B/bench/loadgen
MKSTORE=$B/bench/mkstore
RUN_SECONDS=${SECONDS_PER_RUN:-5}
CONNS=${CONNS:-16}
DEPTH=${DEPTH:-32}
BIG_KEYS=${BIG_KEYS:-1000000}

for f in "$KEYAUTHD" "$LOADGEN" "$MKSTORE"; do
	[ -x "$f" ] || { echo "run.sh: $f not built" >&2; exit 2; }
done
PIN0= PIN1=
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	PIN0="taskset -c 0"
	PIN1="taskset -c 1"
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/kabench-XXXXXX")
AGENT=
cleanup() {
	if [ -n "$AGENT" ]; then
		kill -TERM "$AGENT" 2>/dev/null || true
		wait "$AGENT" 2>/dev/null || true
	fi
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

write_conf() { # STORE
	cat >"$DIR/keyauth.conf" <<EOF
listen = [ "unix:$DIR/agent.sock" ];
workers = 1;
max_connections = 1000;
max_frame_size = 16380;
idle_timeout = 60;
key_prefix = "ka_";
store = { backend = "file"; path = "$1"; };
log = { level = "info"; target = "stderr"; };
routes = ( { name = "openai"; type = "provider"; context = "/openai"; } );
EOF
}

now_ms() { date +%s%3N; }

bench_one() { # NKEYS
	n=$1
	rc=0
	store="$DIR/keys-$n.db"
	keys="$DIR/keys-$n.txt"
	m=$n
	[ "$m" -le 10000 ] || m=10000
	"$MKSTORE" "$store" "$n" "$keys" "$m" openai
	write_conf "$store"

	t0=$(now_ms)
	"$KEYAUTHD" -t -c "$DIR/keyauth.conf" >"$DIR/check.out" 2>&1 ||
		{ cat "$DIR/check.out" >&2; exit 1; }
	t1=$(now_ms)
	echo "bench keys=$n check_and_load_ms=$((t1 - t0))"

	rm -f "$DIR/agent.sock"
	$PIN0 "$KEYAUTHD" -c "$DIR/keyauth.conf" 2>"$DIR/agent-$n.log" &
	AGENT=$!
	i=0
	until [ -S "$DIR/agent.sock" ]; do
		i=$((i + 1))
		[ $i -le 600 ] || { echo "run.sh: keyauthd not ready after 30 s" >&2; exit 1; }
		kill -0 "$AGENT" 2>/dev/null || { echo "run.sh: keyauthd exited" >&2; exit 1; }
		sleep 0.05
	done
	rss_idle=$(awk '/^VmRSS/ {print $2}' "/proc/$AGENT/status")
	$PIN1 "$LOADGEN" -s "unix:$DIR/agent.sock" -c "$CONNS" -d "$DEPTH" -t "$RUN_SECONDS" \
		-k "$keys" || rc=$?
	rss_load=$(awk '/^VmRSS/ {print $2}' "/proc/$AGENT/status")
	echo "bench keys=$n agent_rss_kb_idle=$rss_idle agent_rss_kb_after_load=$rss_load"
	kill -TERM "$AGENT"
	wait "$AGENT" || { echo "run.sh: keyauthd exited with $?" >&2; exit 1; }
	AGENT=
	[ "${rc:-0}" -eq 0 ] || { echo "run.sh: loadgen reported errors" >&2; exit 1; }
}

bench_one 10
bench_one "$BIG_KEYS"
