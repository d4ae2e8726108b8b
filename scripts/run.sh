#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# scripts/run.sh: "make run". Starts, on loopback, a working keyauth gateway:
# the stand-in provider (tests/e2e/provider.js), keyauthd and HAProxy (2.6 by
# default) with the configuration keyauthctl renders, creates one demo key per
# route, and prints ready commands: curl with X-API-Key, curl with
# "Authorization: Bearer", the OpenAI SDK, and one request that is refused.
# Ctrl-C (or SIGTERM) stops every process it started, by pid, and removes its
# temporary directory.
#
#   scripts/run.sh              run until Ctrl-C
#   scripts/run.sh --self-test  run the printed commands, check 200/200/200/401 (and that
#                               no client key reached the upstream), stop, exit 0 or 1
#
# It builds nothing ("make run" builds first). Environment: B (build dir, default
# build), KEYAUTHD, KEYAUTHCTL, HAPROXY (an HAProxy 3.1+ binary is detected and
# gets the --haproxy-version 3.2 rendering; run 3.2 in the foreground, as here),
# KEYAUTH_RUN_PORT (default 8080, or a free port when it is taken). The agent
# listens on a unix socket in the run's private 0700 directory, as in
# production (no local user can take its place, see SECURITY.md).
#
# Keys never appear in argv: each lives in a 0600 file, curl reads it through a
# header file (-H @FILE) and the SDK script reads it from its file. In normal mode
# each demo key is shown once, like "keyauthctl key create"; --self-test shows none.

set -u
# The demo runs keyauthd as whoever runs it (root on a fresh machine): on purpose.
export KEYAUTH_ALLOW_ROOT=1

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
abspath() { case $1 in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }
KEYAUTHD=$(abspath "${KEYAUTHD:-$B/keyauthd}")
KEYAUTHCTL=$(abspath "${KEYAUTHCTL:-$B/keyauthctl}")
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
E2E=$ROOT/tests/e2e

self_test=0
case ${1:-} in
--self-test) self_test=1 ;;
"") ;;
-h|--help) sed -n '3,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "usage: $0 [--self-test]" >&2; exit 2 ;;
esac

say() { echo "run: $*"; }
die() { echo "run: ERROR: $*" >&2; exit 1; }

for b in "$KEYAUTHD" "$KEYAUTHCTL"; do
	[ -x "$b" ] || die "$b is not built (run 'make' first, or 'make run')"
done
"$HAPROXY" -v >/dev/null 2>&1 || die "no haproxy at '$HAPROXY' (make deps installs Debian's)"
command -v node >/dev/null 2>&1 || die "node is missing (make deps installs it)"
command -v curl >/dev/null 2>&1 || die "curl is missing (make deps installs it)"
if [ ! -d "$E2E/node_modules/openai" ]; then
	command -v npm >/dev/null 2>&1 || die "npm is missing (make deps installs it)"
	say "installing the pinned openai SDK (npm ci --prefix tests/e2e)"
	npm ci --prefix "$E2E" --no-audit --no-fund >/dev/null || die "npm ci failed"
fi
hv=$("$HAPROXY" -v 2>/dev/null | head -n 1 | sed -nE 's/^HAProxy version ([0-9]+\.[0-9]+).*/\1/p')
case $hv in
3.[1-9]*|[4-9].*) render_ver=3.2 ;;
*) render_ver=2.6 ;;
esac

umask 077
T=$(mktemp -d "${TMPDIR:-/tmp}/keyauth-run.XXXXXX") || die "mktemp failed"
PIDS=()
NAMES=()
cleanup() {
	local i p
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	# Bounded: whatever ignores SIGTERM for 5 s gets SIGKILL.
	for i in $(seq 1 100); do
		local alive=0
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ "$alive" = 0 ] && break
		sleep 0.05
	done
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'echo; say "stopping"; exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: runs CMD in the background, output to $T/NAME.log.
start() {
	local name=$1; shift
	"$@" >"$T/$name.log" 2>&1 &
	PIDS+=($!)
	NAMES+=("$name")
}

# wait_for CMD...: polls CMD every 100 ms until it succeeds; gives up once 15 s
# have passed (CMD itself must be bounded: ready is, by curl --max-time).
wait_for() {
	local end=$(($(date +%s%N) + 15000000000))
	while :; do
		"$@" && return 0
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# port_free PORT: nothing listens on 127.0.0.1:PORT and we may bind it.
port_free() {
	node -e 'const s=require("net").createServer();s.on("error",()=>process.exit(1));
s.listen(Number(process.argv[1]),"127.0.0.1",()=>s.close(()=>process.exit(0)));' "$1" 2>/dev/null
}
free_port() {
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}
pick_port() {
	if port_free "$1"; then echo "$1"; else free_port; fi
}

FP=$(pick_port "${KEYAUTH_RUN_PORT:-8080}")

# ---- the stand-in provider -------------------------------------------------------------
start provider node "$E2E/provider.js" 0
wait_for grep -q '^listening' "$T/provider.log" || die "the stand-in provider did not start within 15 s: $(cat "$T/provider.log")"
PP=$(awk '/^listening/ {print $2}' "$T/provider.log")

# ---- keyauthd ------------------------------------------------------------------------------
cat >"$T/keyauth.conf" <<EOF
# make run: two routes in front of the stand-in provider on 127.0.0.1:$PP.
# A unix socket in this run's private directory, the production default.
listen = [ "unix:$T/keyauthd.sock" ];
store = { path = "$T/keys.db"; };
pid_file = "$T/keyauthd.pid";
routes = (
	# curl with "X-API-Key: <key>" (the default key_name).
	{ name = "demo"; type = "provider"; context = "/demo"; upstream = "127.0.0.1:$PP"; },
	# OpenAI SDKs and curl with "Authorization: Bearer <key>".
	{ name = "openai"; type = "provider"; context = "/openai"; upstream = "127.0.0.1:$PP";
	  security = { key_name = "Authorization"; key_location = "header"; }; }
);
EOF
for r in demo openai; do
	"$KEYAUTHCTL" -c "$T/keyauth.conf" key create --route "$r" --owner make-run \
		>"$T/$r.key" 2>"$T/$r.create" || die "key create --route $r: $(cat "$T/$r.create")"
done
{ printf 'X-API-Key: '; head -n 1 "$T/demo.key"; } >"$T/demo.header"
{ printf 'Authorization: Bearer '; head -n 1 "$T/openai.key"; } >"$T/openai.header"
start keyauthd "$KEYAUTHD" -c "$T/keyauth.conf"

# ---- HAProxy -------------------------------------------------------------------------------
mkdir -p "$T/haproxy"
"$KEYAUTHCTL" -c "$T/keyauth.conf" haproxy --out "$T/haproxy" --bind "127.0.0.1:$FP" \
	--haproxy-version "$render_ver" >/dev/null 2>"$T/render.err" || die "keyauthctl haproxy: $(cat "$T/render.err")"
# In the foreground (-db), tracked by pid: no master-worker re-exec.
start haproxy "$HAPROXY" -db -f "$T/haproxy/haproxy-keyauth.cfg"

# ---- the commands ------------------------------------------------------------------------
URL=http://127.0.0.1:$FP
cat >"$T/sdk.mjs" <<EOF
// The OpenAI SDK against the keyauth gateway. The api key is read from a file
// (never argv, never the environment of the shell).
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const client = new OpenAI({
	baseURL: '$URL/openai/v1',
	apiKey: readFileSync(new URL('./openai.key', import.meta.url), 'utf8').trim(),
});
const r = await client.chat.completions.create({
	model: 'stand-in-model',
	messages: [{ role: 'user', content: 'Hello' }],
});
console.log(r.choices[0].message.content);
EOF
# The SDK script imports "openai" from the pinned copy in tests/e2e.
ln -s "$E2E/node_modules" "$T/node_modules"
printf '{"model":"stand-in-model","messages":[{"role":"user","content":"Hello"}]}\n' >"$T/chat.json"

CMD_HEADER=(curl -sS -H "@$T/demo.header" "$URL/demo/v1/models")
CMD_BEARER=(curl -sS -H "@$T/openai.header" -H 'Content-Type: application/json'
            --data "@$T/chat.json" "$URL/openai/v1/chat/completions")
CMD_SDK=(node "$T/sdk.mjs")
CMD_REFUSED=(curl -sS -i "$URL/demo/v1/models")

# Ready when the demo key gets through HAProxy, keyauthd and the provider.
ready() {
	[ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' -H "@$T/demo.header" "$URL/demo/v1/models")" = 200 ]
}
if ! wait_for ready; then
	for n in "${NAMES[@]}"; do echo "---- $n.log" >&2; tail -n 20 "$T/$n.log" >&2; done
	die "the gateway did not answer 200 within 15 s"
fi

# show CMD...: the command as one shell line (single quotes where needed).
show() {
	local a out=""
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9@/:._=-]+$ ]]; then out+="$a "; else out+="'${a//\'/\'\\\'\'}' "; fi
	done
	echo "${out% }"
}

if [ "$self_test" = 1 ]; then
	pass=0 fail=0
	expect() { # expect WHAT WANT GOT
		if [ "$2" = "$3" ]; then pass=$((pass + 1)); echo "ok   $1"
		else fail=$((fail + 1)); echo "FAIL $1: got $3, want $2"; fi
	}
	# Each bounded (the printed commands stay as a user would type them).
	code=$("${CMD_HEADER[@]}" --max-time 10 -o "$T/out1" -w '%{http_code}')
	expect "curl with X-API-Key (HAProxy $hv)" 200 "$code"
	code=$("${CMD_BEARER[@]}" --max-time 10 -o "$T/out2" -w '%{http_code}')
	expect "curl with Authorization: Bearer (HAProxy $hv)" 200 "$code"
	if timeout 30 "${CMD_SDK[@]}" >"$T/out3" 2>&1 && grep -q 'Hello from the stand-in provider' "$T/out3"; then
		expect "OpenAI SDK chat.completions.create (HAProxy $hv)" 200 200
	else
		expect "OpenAI SDK chat.completions.create (HAProxy $hv)" "success" "$(head -c 300 "$T/out3")"
	fi
	code=$("${CMD_REFUSED[@]}" --max-time 10 -o "$T/out4" -w '%{http_code}')
	expect "curl without a key is refused (HAProxy $hv)" 401 "$code"
	curl -s --max-time 10 "http://127.0.0.1:$PP/__requests" >"$T/seen.json"
	if grep -qF -f "$T/demo.key" "$T/seen.json" || grep -qF -f "$T/openai.key" "$T/seen.json"; then
		expect "no client key reached the upstream" clean leaked
	else
		expect "no client key reached the upstream" clean clean
	fi
	echo "self-test: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit
fi

cat <<EOF

keyauth is running on loopback (HAProxy $hv):
  gateway     $URL        (HAProxy, config $T/haproxy/haproxy-keyauth.cfg)
  keyauthd    unix:$T/keyauthd.sock  (config $T/keyauth.conf)
  provider    127.0.0.1:$PP     (stand-in OpenAI-compatible API)

Demo keys, shown once (also in 0600 files, which the commands below read):
  route demo   (X-API-Key)             $(head -n 1 "$T/demo.key")
  route openai (Authorization: Bearer) $(head -n 1 "$T/openai.key")

1. curl with the X-API-Key header (the header comes from a file, so the key is not in argv):
   $(show "${CMD_HEADER[@]}")
2. curl with Authorization: Bearer:
   $(show "${CMD_BEARER[@]}")
3. the OpenAI SDK (reads the key from $T/openai.key):
   $(show "${CMD_SDK[@]}")
4. refused: no key, 401 with WWW-Authenticate and an OpenAI-style JSON error:
   $(show "${CMD_REFUSED[@]}")

Manage keys: $KEYAUTHCTL -c $T/keyauth.conf key list
Logs: $T/{haproxy,keyauthd,provider}.log
Press Ctrl-C to stop everything (the directory $T is removed).
EOF

# Stay up until Ctrl-C / SIGTERM, or until one of the processes dies.
wait -n "${PIDS[@]}"
for i in "${!PIDS[@]}"; do
	if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
		echo "run: ${NAMES[$i]} exited; its last lines:" >&2
		tail -n 20 "$T/${NAMES[$i]}.log" >&2
	fi
done
exit 1
