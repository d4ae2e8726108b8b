#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# run.sh: keyauthd alone, driven by the SPOP load generator (issues 3 and 6).
#
# For a store of 10 keys and one of BIG_KEYS keys (default 1,000,000): writes
# the store with mkstore and times `keyauthd -t` on it (config check + full
# store load). Then for 1 and 2 workers it starts keyauthd listening on a
# unix socket and on a loopback TCP port, and drives each address with
# loadgen for SECONDS_PER_RUN seconds in two load profiles:
#   batch  16 connections x 32 NOTIFYs in flight (HAProxy with pipelining
#          under heavy load: many frames per read)
#   d1     64 connections x 1 NOTIFY in flight (HAProxy 2.6 without
#          pipelining: one frame per read, one ACK per write)
# One worker is pinned to CPU 0 and loadgen to CPU 1; two workers and
# loadgen share both CPUs. Reported per run: verdicts/s, latency p50/p99/
# p99.9, the agent's CPU per verdict (utime+stime from /proc/PID/stat over the
# run), its resident memory (idle after load, and peak). Every process
# started here is stopped by pid; the temporary directory (it holds keys) is
# removed on exit. Keys are never printed.
#
#   tests/bench/run.sh [BUILD_DIR]      default build/rel (make bench's tree)
#   env: SECONDS_PER_RUN=3 BIG_KEYS=1000000 WORKERS="1 2" TRANSPORTS="unix tcp"
#        PROFILES="batch d1" RESULTS=<file to append "result ..." lines to>
set -eu

B=${1:-build/rel}
HERE=$(dirname "$0")
. "$HERE/lib.sh"
KEYAUTHD=${KEYAUTHD:-$B/keyauthd}
LOADGEN=$B/bench/loadgen
MKSTORE=$B/bench/mkstore
RUN_SECONDS=${SECONDS_PER_RUN:-3}
BIG_KEYS=${BIG_KEYS:-1000000}
WORKERS=${WORKERS:-1 2}
TRANSPORTS=${TRANSPORTS:-unix tcp}
PROFILES=${PROFILES:-batch d1}
RESULTS=${RESULTS:-/dev/null}

for f in "$KEYAUTHD" "$LOADGEN" "$MKSTORE"; do
	[ -x "$f" ] || { echo "run.sh: $f not built" >&2; exit 2; }
done
NCPU=$(nproc)
have_taskset=0
if command -v taskset >/dev/null 2>&1 && [ "$NCPU" -ge 2 ]; then
	have_taskset=1
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/kabench-XXXXXX")
AGENT=
cleanup() {
	stop_pid "$AGENT"
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TCP_PORT=$(pick_ports 1)

write_conf() { # STORE WORKERS
	cat >"$DIR/keyauth.conf" <<EOC
listen = [ "unix:$DIR/agent.sock", "127.0.0.1:$TCP_PORT" ];
allow_plain_tcp = true;
workers = $2;
max_connections = 1000;
max_frame_size = 16380;
idle_timeout = 60;
key_prefix = "ka_";
store = { backend = "file"; path = "$1"; };
log = { level = "warning"; target = "stderr"; };
routes = ( { name = "openai"; type = "provider"; context = "/openai"; } );
EOC
}

start_agent() { # NKEYS WORKERS
	rm -f "$DIR/agent.sock"
	if [ "$2" -eq 1 ] && [ $have_taskset -eq 1 ]; then
		taskset -c 0 "$KEYAUTHD" -c "$DIR/keyauth.conf" 2>"$DIR/agent.log" &
	else
		"$KEYAUTHD" -c "$DIR/keyauth.conf" 2>"$DIR/agent.log" &
	fi
	AGENT=$!
	i=0
	until [ -S "$DIR/agent.sock" ] && ! port_free "$TCP_PORT"; do
		i=$((i + 1))
		[ $i -le 600 ] || { echo "run.sh: keyauthd not ready after 30 s" >&2; exit 1; }
		kill -0 "$AGENT" 2>/dev/null || { cat "$DIR/agent.log" >&2; echo "run.sh: keyauthd exited" >&2; exit 1; }
		sleep 0.05
	done
}

run_load() { # NKEYS WORKERS TRANSPORT PROFILE
	case $3 in
	unix) addr="unix:$DIR/agent.sock" ;;
	tcp)  addr="127.0.0.1:$TCP_PORT" ;;
	*)    echo "run.sh: unknown transport $3" >&2; exit 2 ;;
	esac
	case $4 in
	batch) conns=16 depth=32 ;;
	d1)    conns=64 depth=1 ;;
	*)     echo "run.sh: unknown profile $4" >&2; exit 2 ;;
	esac
	pin=
	[ "$2" -eq 1 ] && [ $have_taskset -eq 1 ] && pin="taskset -c 1"
	t0=$(cpu_ticks "$AGENT")
	rc=0
	out=$($pin "$LOADGEN" -s "$addr" -c "$conns" -d "$depth" -t "$RUN_SECONDS" \
		-k "$DIR/keys-$1.txt") || rc=$?
	t1=$(cpu_ticks "$AGENT")
	verdicts=$(kv "$out" verdicts)
	line="result bench=agent keys=$1 workers=$2 transport=$3 profile=$4 conns=$conns depth=$depth"
	line="$line rate=$(kv "$out" rate) p50_us=$(kv "$out" p50_us) p99_us=$(kv "$out" p99_us)"
	line="$line p999_us=$(kv "$out" p999_us) cpu_us_per_verdict=$(per_unit $((t1 - t0)) "$verdicts")"
	line="$line rss_kb=$(rss_kb "$AGENT" VmRSS) rss_peak_kb=$(rss_kb "$AGENT" VmHWM)"
	line="$line verdicts=$verdicts errors=$(kv "$out" errors)"
	echo "$line"
	echo "$line" >>"$RESULTS"
	[ $rc -eq 0 ] || { echo "$out" >&2; echo "run.sh: loadgen reported errors" >&2; exit 1; }
}

bench_store() { # NKEYS
	n=$1
	m=$n
	[ "$m" -le 10000 ] || m=10000
	"$MKSTORE" "$DIR/keys-$n.db" "$n" "$DIR/keys-$n.txt" "$m" openai >/dev/null
	write_conf "$DIR/keys-$n.db" 1
	t0=$(now_ms)
	"$KEYAUTHD" -t -c "$DIR/keyauth.conf" >"$DIR/check.out" 2>&1 ||
		{ cat "$DIR/check.out" >&2; exit 1; }
	t1=$(now_ms)
	line="result bench=load keys=$n check_and_load_ms=$((t1 - t0))"
	echo "$line"
	echo "$line" >>"$RESULTS"
	for w in $WORKERS; do
		write_conf "$DIR/keys-$n.db" "$w"
		start_agent "$n" "$w"
		echo "result bench=idle keys=$n workers=$w rss_kb=$(rss_kb "$AGENT" VmRSS)" |
			tee -a "$RESULTS"
		for t in $TRANSPORTS; do
			for p in $PROFILES; do
				run_load "$n" "$w" "$t" "$p"
			done
		done
		stop_pid "$AGENT"
		AGENT=
	done
	rm -f "$DIR/keys-$n.db"
}

bench_store 10
bench_store "$BIG_KEYS"
