# SPDX-License-Identifier: Apache-2.0
#
# lib.sh: helpers shared by the benchmark drivers (sourced, POSIX sh).
# Nothing here starts a process that outlives its caller; pids are the
# caller's to stop.

# now_ms: wall clock in milliseconds.
now_ms() { date +%s%3N; }

# cpu_ticks PID: user + system CPU time of PID (all its threads) in clock
# ticks, from /proc/PID/stat fields 14 and 15 (counted after the ")" that
# ends the command name, which may hold spaces).
cpu_ticks() {
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# rss_kb PID FIELD: VmRSS or VmHWM of PID in kB.
rss_kb() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# port_free PORT: true when nothing listens on TCP PORT (loopback or any).
port_free() {
	[ -z "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
}

# pick_ports N: N free TCP ports, space separated, below the kernel's
# ephemeral range and from a base that depends on this shell's pid (parallel
# runs pick different ranges). Inside the ephemeral range a port can be taken
# between picking and bind by an outgoing connection (the agent's to Redis)
# or still be held by one of the thousands left in TIME_WAIT by set-up runs.
pick_ports() {
	_lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	_span=$((_lo - 10000))
	[ $_span -gt 2000 ] || _span=2000
	_n=$1 _p=$((10000 + ($$ * 7) % (_span - 1000))) _out= _tries=0
	while [ "$_n" -gt 0 ]; do
		_tries=$((_tries + 1))
		[ $_tries -le 1000 ] || { echo "bench: no free port" >&2; return 1; }
		if port_free "$_p" && [ -z "$(ss -Htan "sport = :$_p" 2>/dev/null)" ]; then
			_out="$_out $_p"
			_n=$((_n - 1))
		fi
		_p=$((_p + 1))
	done
	echo $_out
}

# machine: "N CPUs, model", blanks as "_" (for a key=value line).
machine() {
	echo "$(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" | tr ' ' _
}

# per_unit TICKS COUNT: microseconds of CPU per unit, 2 decimals.
per_unit() {
	awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print "nan" }'
}

# kv LINE KEY: the value of KEY in a "key=value ..." line.
kv() {
	echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}

# stop_pid PID: SIGTERM, wait up to 5 s, then SIGKILL. Reaps it if it is our child.
stop_pid() {
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || return 0
	_i=0
	while kill -0 "$1" 2>/dev/null && [ $_i -lt 100 ]; do
		# a zombie child answers kill -0: check its state
		case "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" in
		Z|"") break ;;
		esac
		sleep 0.05
		_i=$((_i + 1))
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# emit LINE: a "result ..." line, to stdout and appended to $RESULTS.
emit() {
	echo "$1"
	echo "$1" >>"$RESULTS"
}

# until_ok SECONDS COMMAND...: polls COMMAND every 20 ms until it succeeds.
until_ok() {
	_end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(now_ms)" -lt $_end ] || return 1
		sleep 0.02
	done
}

# redis_start DIR PORT WHO: Debian's redis-server ($REDIS_SERVER) on
# 127.0.0.1:PORT, no persistence, its files in DIR; sets REDIS (its pid, the
# caller's to stop) and waits until it answers PING (10 s), else exits 1
# naming WHO. rcli runs $REDIS_CLI against it.
redis_start() {
	RPORT=$2
	"$REDIS_SERVER" --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
		--dir "$1" --dbfilename dump.rdb --daemonize no --logfile "$1/redis.log" &
	REDIS=$!
	until_ok 10 redis_up || { cat "$1/redis.log" >&2; echo "$3: redis-server not up" >&2; exit 1; }
}
rcli() { "$REDIS_CLI" -h 127.0.0.1 -p "$RPORT" "$@"; }
redis_up() { [ "$(rcli ping 2>/dev/null)" = PONG ]; }

# keyauthd refuses to run as root without a `user` setting; the benchmarks
# run it as whoever runs them (CI containers are root), on purpose.
if [ "$(id -u)" = 0 ]; then
	KEYAUTH_ALLOW_ROOT=1
	export KEYAUTH_ALLOW_ROOT
fi
