# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/lib.sh: the helpers every part of tests/cli/run.sh uses, sourced
# once by run.sh after it has set K (keyauthctl) and T (the private temporary
# directory). Defines the pass/fail counters, installs the cleanup trap, and
# gives write_conf, which needs AGENT_PORT (set by run.sh) when called.

PIDS=()
CMD_TIMEOUT=${CLI_CMD_TIMEOUT:-60}

# gone PID: the process has exited (a zombie counts as gone).
gone() {
	! kill -0 "$1" 2>/dev/null || [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ]
}
# stop_pid PID: SIGTERM, SIGKILL if it is still running 5 s later, then reap.
stop_pid() {
	local p=$1 i
	kill "$p" 2>/dev/null
	for i in $(seq 1 100); do gone "$p" && break; sleep 0.05; done
	if ! gone "$p"; then
		echo "run.sh: pid $p still running 5 s after SIGTERM: SIGKILL" >&2
		kill -9 "$p" 2>/dev/null
	fi
	wait "$p" 2>/dev/null
	return 0
}
cleanup() {
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	[ -d "$T/immutable" ] && chattr -i "$T/immutable" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $1" >&2
	if [ -s "$T/err" ]; then sed 's/^/    stderr: /' "$T/err" | head -n 8 >&2; fi
}

# bounded CMD...: CMD under timeout(1); says so on stderr when it timed out.
bounded() {
	local r
	timeout -k 5 "$CMD_TIMEOUT" "$@"
	r=$?
	if [ "$r" -eq 124 ] || [ "$r" -eq 137 ]; then
		echo "run.sh: timed out after $CMD_TIMEOUT s: ${*:1:4}" >&2
	fi
	return "$r"
}
# run CMD...: stdout -> $T/out, stderr -> $T/err, status -> $rc.
run() { bounded "$@" >"$T/out" 2>"$T/err"; rc=$?; }
# run_in INPUTFILE CMD...: the same with stdin from a file.
run_in() { local in=$1; shift; bounded "$@" <"$in" >"$T/out" 2>"$T/err"; rc=$?; }
expect_rc() { if [ "$rc" -eq "$1" ]; then ok; else bad "$2 (exit $rc, want $1)"; fi; }
expect_err() { if grep -qiE -- "$1" "$T/err"; then ok; else bad "$2 (stderr lacks /$1/)"; fi; }
expect_out() { if grep -qE -- "$1" "$T/out"; then ok; else bad "$2 (stdout lacks /$1/)"; fi; }
count_keys() { bounded "$K" -c "$1" key list --all --json 2>/dev/null | grep -o '"id":' | wc -l; }
# json_ok FILE: FILE is one JSON value. Fails (never passes vacuously) when
# node is missing.
json_ok() {
	if ! command -v node >/dev/null 2>&1; then
		echo "run.sh: node not found: cannot check JSON (make deps installs it)" >&2
		return 1
	fi
	node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$1" 2>/dev/null
}
# expect_log_grep ERE FILE MSG: FILE has a line matching ERE.
expect_log_grep() {
	if grep -qE -- "$1" "$2"; then ok; else
		bad "$3 ($2 lacks /$1/)"
		sed 's/^/    log: /' "$2" | tail -n 5 >&2
	fi
}
LOGFMT_JS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../lib" && pwd)/logfmt.cjs
# logfmt_ok FILE...: every line of every FILE is logfmt: key=value pairs
# separated by one space, a value bare (no space, '=', '"' or control byte)
# or double-quoted with \" \\ \n \r \t \uXXXX escapes (what Loki and Vector
# parse). Prints the lines that do not parse; fails (never passes
# vacuously) when node is missing or a file is empty.
logfmt_ok() {
	if ! command -v node >/dev/null 2>&1; then
		echo "run.sh: node not found: cannot check logfmt" >&2
		return 1
	fi
	node "$LOGFMT_JS" "$@"
}
# key_file NAME: a 0600 file holding the key from $T/out (a create/rotate).
key_file() { head -n 1 "$T/out" | tr -d '\n' >"$T/$1"; }
verify() { # verify CONF ROUTE KEYFILE [--now N]
	local conf=$1 route=$2 kf=$3; shift 3
	run_in "$kf" "$K" -c "$conf" key verify --route "$route" "$@"
}

free_port() {
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});' \
		2>/dev/null || echo $((20000 + RANDOM % 20000))
}
write_conf() { # write_conf FILE STOREPATH
	cat >"$1" <<EOF
listen = [ "127.0.0.1:$AGENT_PORT" ];
allow_plain_tcp = true;
store = { path = "$2"; };
pid_file = "$T/keyauthd.pid";
frontend = { bind = [ "127.0.0.1:8080" ]; };
routes = (
	{ name = "openai"; context = "/openai"; upstream = "127.0.0.1:9";
	  security = { key_name = "Authorization"; key_location = "header"; }; },
	{ name = "mistral"; context = "/mistral"; upstream = "127.0.0.1:9"; },
	{ name = "chat"; type = "proxy"; context = "/apps/chat"; upstream = "127.0.0.1:9";
	  security = { key_name = "api_key"; key_location = "query"; }; }
);
EOF
}
