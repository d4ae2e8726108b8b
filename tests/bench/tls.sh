#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# tls.sh: keyauthd over TLS and mutual TLS against plain TCP, in one run
# (issue 11; target: agent CPU per verdict with TLS within 1.3x of plain).
#
# Makes a throwaway CA, an agent certificate (CN and SAN localhost, SAN IP
# 127.0.0.1) and a client certificate with the openssl CLI in a temporary
# directory, and a store of TLS_KEYS keys with mkstore. Starts two agents
# with one worker each, alike but for the tls group: A listens on a plain
# and a TLS loopback port, B on a plain and an mTLS port (tls.ca set: client
# certificates required). Agents are pinned to CPU 0, loadgen to CPU 1.
#
# Verdicts: for each round and load profile, loadgen drives A plain, A TLS,
# B plain, B mTLS for SECONDS_PER_RUN s each (interleaved, so that drift on a
# busy machine hits every transport alike): verdicts/s, latency, and the
# agent's CPU per verdict (utime+stime of its pid from /proc over the run).
# The ratio to plain is taken against the plain run of the same agent in the
# same round. The handful of handshakes at the start of a TLS run is counted
# in its CPU (16 or 64 connections against ~10^6 verdicts).
#   batch  16 connections x 32 NOTIFYs in flight (HAProxy with pipelining)
#   d1     64 connections x 1 NOTIFY in flight (one frame per read/record)
# Connection set-up: SETUP_CONNS loops of connect, (TLS handshake,) HELLO,
# one NOTIFY, close; connections/s and agent CPU per connection, for plain,
# full TLS 1.3 handshakes, TLS 1.3 resumed (loadgen offers the latest
# session), the same under mTLS, and TLS 1.2 full/resumed.
#
# Results are "result bench=tls ..." lines on stdout and appended to
# RESULTS. Every process started here is stopped by pid; the temporary
# directory (keys, private keys) is removed on exit. Keys are never printed.
#
#   tests/bench/tls.sh [BUILD_DIR]          default build/rel
#   tests/bench/tls.sh --report RESULTS     the BENCHMARKS.md section (markdown)
#   env: SECONDS_PER_RUN=3 TLS_ROUNDS=2 TLS_PROFILES="batch d1" TLS_KEYS=10000
#        TLS_KEYTYPE=ec (P-256) or rsa (2048 bits) SETUP_CONNS=4 RESULTS=<file>
set -eu

HERE=$(dirname "$0")
. "$HERE/lib.sh"

# ---- report ------------------------------------------------------------------------

if [ "${1:-}" = --report ]; then
	R=$2
	grep -q '^result bench=tls ' "$R" 2>/dev/null || exit 0
	awk '
	function f(k) { return (k in F) ? F[k] : "" }
	$1 == "result" && $2 == "bench=tls-meta" {
		delete F
		for (i = 3; i <= NF; i++) { split($i, kv, "="); F[kv[1]] = kv[2] }
		for (k in F) { v = F[k]; gsub(/_/, " ", v); if (k ~ /^load_/) gsub(/,/, " ", v); meta[k] = v }
	}
	$1 == "result" && $2 == "bench=tls" {
		delete F
		for (i = 3; i <= NF; i++) { split($i, kv, "="); F[kv[1]] = kv[2] }
		if (f("kind") == "verdicts") {
			k = f("profile") " " f("transport")
			if (!(k in n)) vord[++nv] = k
			n[k]++; rate[k] += f("rate"); p50[k] += f("p50_us"); p99[k] += f("p99_us")
			cpu[k] += f("cpu_us_per_verdict"); err[k] += f("errors")
			res[k] += f("resumed"); hs[k] += f("handshakes")
			vc[f("round") " " k] = f("cpu_us_per_verdict")
			vr[f("round") " " k] = f("rate")
			if (f("round") > rounds) rounds = f("round")
		} else if (f("kind") == "setup") {
			k = f("case")
			if (!(k in sn)) sord[++ns] = k
			sn[k]++; srate[k] += f("conn_rate"); scpu[k] += f("cpu_us_per_conn")
			sres[k] += f("resumed"); scon[k] += f("connects"); serr[k] += f("errors")
			sr[f("round") " " k] = f("conn_rate")
		}
	}
	function base(k) { split(k, p, " "); return p[1] " " (p[2] == "mtls" ? "plainB" : "plain") }
	function label(t) {
		if (t == "plain") return "plain TCP (agent A)"
		if (t == "tls") return "TLS (agent A)"
		if (t == "plainB") return "plain TCP (agent B)"
		if (t == "mtls") return "mTLS (agent B)"
		return t
	}
	function slabel(c) {
		if (c == "plain") return "plain TCP"
		if (c == "tls13-full") return "TLS 1.3, full handshake"
		if (c == "tls13-resumed") return "TLS 1.3, resumed session"
		if (c == "mtls13-full") return "mTLS 1.3, full handshake"
		if (c == "mtls13-resumed") return "mTLS 1.3, resumed session"
		if (c == "tls12-full") return "TLS 1.2, full handshake"
		if (c == "tls12-resumed") return "TLS 1.2, resumed session"
		return c
	}
	END {
		print "## TLS and mutual TLS against plain TCP (issue 11)"
		print ""
		printf "`sh tests/bench/tls.sh BUILD_DIR`, run of %s UTC on %s; %s s per row,\n", meta["date"], meta["machine"], meta["seconds"]
		printf "%d round(s) interleaved, means shown; load average before %s, after %s.\n", rounds, meta["load_before"], meta["load_after"]
		print "keyauthd, one worker pinned to CPU 0, loadgen on CPU 1, loopback;"
		printf "agent A listens plain + TLS, agent B plain + mTLS (same configuration but `tls.ca`);\n"
		printf "%s certificates, %s, store of %s keys, mix 80/15/5. CPU = the agent'"'"'s\n", meta["keytype"], meta["openssl"], meta["keys"]
		print "utime+stime over the row. Ratio = agent CPU per verdict against the plain listener of the"
		print "same agent in the same round (range over rounds in brackets)."
		print ""
		print "| load | transport | verdicts/s | p50 µs | p99 µs | agent CPU µs/verdict | CPU ratio to plain | errors |"
		print "|---|---|---:|---:|---:|---:|---:|---:|"
		for (i = 1; i <= nv; i++) {
			k = vord[i]; c = n[k]; split(k, p, " ")
			ratio = "-"
			if (p[2] == "tls" || p[2] == "mtls") {
				lo = 1e9; hi = 0; s = 0; m = 0
				for (r = 1; r <= rounds; r++) {
					b = vc[r " " base(k)]; t = vc[r " " k]
					if (b > 0 && t != "") { q = t / b; s += q; m++; if (q < lo) lo = q; if (q > hi) hi = q }
				}
				if (m > 0) {
					ratio = sprintf("%.2f", s / m)
					if (m > 1) ratio = ratio sprintf(" (%.2f-%.2f)", lo, hi)
					if (p[1] == "batch") {
						sep = (tgt == "") ? "" : ", "
						name = (p[2] == "tls") ? "TLS" : "mTLS"
						tgt = tgt sep sprintf("%s %.2fx", name, s / m)
						if (s / m > 1.3) miss = 1
					}
				}
			}
			printf "| %s | %s | %d | %.0f | %.0f | %.2f | %s | %d |\n", p[1], label(p[2]),
				rate[k] / c, p50[k] / c, p99[k] / c, cpu[k] / c, ratio, err[k]
		}
		print ""
		if (tgt != "")
			printf "Target (issue 11: TLS within 1.3x the agent CPU of plain, pipelined load): %s: **%s**.\n\n", tgt, (miss ? "missed" : "met")
		printf "Connection set-up: %s concurrent loops of connect, handshake, HELLO, one NOTIFY, close\n", meta["setup_conns"]
		print "(the HAProxy side of an agent connection that is opened, used once and dropped). Resumed:"
		print "loadgen offers the latest session the agent handed out (a TLS 1.3 ticket, or a TLS 1.2"
		print "session ticket) on each new connection; the first ones have none to offer, and of"
		print "concurrent connections offering one TLS 1.3 ticket, OpenSSL'"'"'s server resumes one."
		print ""
		print "| case | connections/s | agent CPU µs/connection | resumed | errors |"
		print "|---|---:|---:|---:|---:|"
		for (i = 1; i <= ns; i++) {
			k = sord[i]; c = sn[k]
			printf "| %s | %d | %.0f | %.1f%% | %d |\n", slabel(k), srate[k] / c, scpu[k] / c,
				(scon[k] > 0 ? 100 * sres[k] / scon[k] : 0), serr[k]
		}
		print ""
	}' "$R"
	exit 0
fi


# ---- run ---------------------------------------------------------------------------

B=${1:-build/rel}
KEYAUTHD=${KEYAUTHD:-$B/keyauthd}
LOADGEN=$B/bench/loadgen
MKSTORE=$B/bench/mkstore
RUN_SECONDS=${SECONDS_PER_RUN:-3}
ROUNDS=${TLS_ROUNDS:-2}
PROFILES=${TLS_PROFILES:-batch d1}
NKEYS=${TLS_KEYS:-10000}
KEYTYPE=${TLS_KEYTYPE:-ec}
SETUP_CONNS=${SETUP_CONNS:-4}
RESULTS=${RESULTS:-/dev/null}

for f in "$KEYAUTHD" "$LOADGEN" "$MKSTORE"; do
	[ -x "$f" ] || { echo "tls.sh: $f not built" >&2; exit 2; }
done
command -v openssl >/dev/null 2>&1 || { echo "tls.sh: the openssl CLI is missing (make deps)" >&2; exit 2; }
case $KEYTYPE in
ec)  NEWKEY="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes" KEYDESC="ECDSA P-256" ;;
rsa) NEWKEY="-newkey rsa:2048 -nodes" KEYDESC="RSA 2048" ;;
*)   echo "tls.sh: TLS_KEYTYPE is ec or rsa" >&2; exit 2 ;;
esac
pin_agent= pin_load=
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	pin_agent="taskset -c 0" pin_load="taskset -c 1"
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/katls-XXXXXX")
AGENT_A= AGENT_B=
cleanup() {
	stop_pid "$AGENT_A"
	stop_pid "$AGENT_B"
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_before="$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
started=$(date -u '+%Y-%m-%dT%H:%M')

# Certificates: valid 2 days, never leave $DIR.
(
	cd "$DIR"
	# shellcheck disable=SC2086
	openssl req -x509 $NEWKEY -keyout ca.key -out ca.pem -days 2 -subj /CN=keyauth-bench-ca &&
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >srv.ext &&
	openssl req $NEWKEY -keyout srv.key -out srv.csr -subj /CN=localhost &&
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem \
		-days 2 -extfile srv.ext &&
	openssl req $NEWKEY -keyout cli.key -out cli.csr -subj /CN=haproxy &&
	openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cli.pem -days 2
) >"$DIR/openssl.log" 2>&1 || { cat "$DIR/openssl.log" >&2; echo "tls.sh: openssl failed" >&2; exit 1; }

"$MKSTORE" "$DIR/keys.db" "$NKEYS" "$DIR/keys.txt" "$NKEYS" openai >/dev/null
set -- $(pick_ports 4)
PA=$1 TA=$2 PB=$3 TB=$4

write_conf() { # FILE PLAIN_PORT TLS_PORT EXTRA_TLS
	cat >"$1" <<EOC
listen = [ "127.0.0.1:$2", "tls:127.0.0.1:$3" ];
allow_plain_tcp = true;
workers = 1;
max_connections = 10000;
idle_timeout = 60;
key_prefix = "ka_";
store = { backend = "file"; path = "$DIR/keys.db"; };
log = { level = "warning"; target = "stderr"; };
tls = { cert = "$DIR/srv.pem"; key = "$DIR/srv.key"; $4 };
routes = ( { name = "openai"; type = "provider"; context = "/openai"; } );
EOC
}
write_conf "$DIR/a.conf" "$PA" "$TA" ""
write_conf "$DIR/b.conf" "$PB" "$TB" "ca = \"$DIR/ca.pem\";"

wait_listening() { # PID LOG PORT...
	_pid=$1 _log=$2
	shift 2
	_i=0
	for _p in "$@"; do
		until ! port_free "$_p"; do
			_i=$((_i + 1))
			[ $_i -le 600 ] || { echo "tls.sh: keyauthd not ready after 30 s" >&2; exit 1; }
			kill -0 "$_pid" 2>/dev/null || { cat "$_log" >&2; echo "tls.sh: keyauthd exited" >&2; exit 1; }
			sleep 0.05
		done
	done
}
$pin_agent "$KEYAUTHD" -c "$DIR/a.conf" 2>"$DIR/a.log" &
AGENT_A=$!
$pin_agent "$KEYAUTHD" -c "$DIR/b.conf" 2>"$DIR/b.log" &
AGENT_B=$!
wait_listening "$AGENT_A" "$DIR/a.log" "$PA" "$TA"
wait_listening "$AGENT_B" "$DIR/b.log" "$PB" "$TB"

TLSOPT="-T $DIR/ca.pem -H localhost"
MTLSOPT="$TLSOPT -C $DIR/cli.pem -K $DIR/cli.key"

# measure PID LOADGEN_ARGS...: runs loadgen, sets $out, $ticks, $rc
measure() {
	_pid=$1
	shift
	t0=$(cpu_ticks "$_pid")
	rc=0
	out=$($pin_load "$LOADGEN" "$@") || rc=$?
	t1=$(cpu_ticks "$_pid")
	ticks=$((t1 - t0))
	if [ $rc -ne 0 ]; then
		echo "$out" >&2
		echo "tls.sh: loadgen failed: $*" | sed "s|$DIR|\$DIR|g" >&2
		exit 1
	fi
}

verdict_row() { # ROUND PROFILE TRANSPORT PID ADDR OPTS
	case $2 in
	batch) conns=16 depth=32 ;;
	d1)    conns=64 depth=1 ;;
	*)     echo "tls.sh: unknown profile $2" >&2; exit 2 ;;
	esac
	# shellcheck disable=SC2086
	measure "$4" -s "$5" -c $conns -d $depth -t "$RUN_SECONDS" -k "$DIR/keys.txt" $6
	v=$(kv "$out" verdicts)
	emit "result bench=tls kind=verdicts round=$1 profile=$2 transport=$3 conns=$conns depth=$depth rate=$(kv "$out" rate) p50_us=$(kv "$out" p50_us) p99_us=$(kv "$out" p99_us) cpu_us_per_verdict=$(per_unit "$ticks" "$v") verdicts=$v errors=$(kv "$out" errors) handshakes=$(kv "$out" handshakes) resumed=$(kv "$out" resumed)"
}

setup_row() { # ROUND CASE PID ADDR OPTS
	# shellcheck disable=SC2086
	measure "$3" -s "$4" -c "$SETUP_CONNS" -d 1 -x 1 -t "$RUN_SECONDS" -k "$DIR/keys.txt" $5
	n=$(kv "$out" connects)
	emit "result bench=tls kind=setup round=$1 case=$2 conn_rate=$(kv "$out" conn_rate) cpu_us_per_conn=$(per_unit "$ticks" "$n") connects=$n resumed=$(kv "$out" resumed) errors=$(kv "$out" errors) p50_us=$(kv "$out" p50_us)"
}

r=1
while [ $r -le "$ROUNDS" ]; do
	for p in $PROFILES; do
		verdict_row $r "$p" plain "$AGENT_A" "127.0.0.1:$PA" ""
		verdict_row $r "$p" tls "$AGENT_A" "127.0.0.1:$TA" "$TLSOPT"
		verdict_row $r "$p" plainB "$AGENT_B" "127.0.0.1:$PB" ""
		verdict_row $r "$p" mtls "$AGENT_B" "127.0.0.1:$TB" "$MTLSOPT"
	done
	setup_row $r plain "$AGENT_A" "127.0.0.1:$PA" ""
	setup_row $r tls13-full "$AGENT_A" "127.0.0.1:$TA" "$TLSOPT -V 1.3 -F"
	setup_row $r tls13-resumed "$AGENT_A" "127.0.0.1:$TA" "$TLSOPT -V 1.3"
	setup_row $r mtls13-full "$AGENT_B" "127.0.0.1:$TB" "$MTLSOPT -V 1.3 -F"
	setup_row $r mtls13-resumed "$AGENT_B" "127.0.0.1:$TB" "$MTLSOPT -V 1.3"
	setup_row $r tls12-full "$AGENT_A" "127.0.0.1:$TA" "$TLSOPT -V 1.2 -F"
	setup_row $r tls12-resumed "$AGENT_A" "127.0.0.1:$TA" "$TLSOPT -V 1.2"
	r=$((r + 1))
done

for a in "$AGENT_A" "$AGENT_B"; do
	kill -0 "$a" 2>/dev/null || { echo "tls.sh: an agent died during the run" >&2; exit 1; }
done
emit "result bench=tls-meta date=$(echo "$started" | tr T _) seconds=$RUN_SECONDS keys=$NKEYS keytype=$(echo "$KEYDESC" | tr ' ' _) openssl=$(openssl version | cut -d' ' -f1-2 | tr ' ' _) setup_conns=$SETUP_CONNS machine=$(machine) load_before=$load_before load_after=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
