#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# profile.sh: an E2E_HOOK for e2e.sh (issue 19) that asks the measured HAProxy
# where its time goes: task profiling on through its admin socket at the start
# of the measurement, "show profiling tasks" near its end, saved to
# $PROFILE_DIR/profile-$HV-$CONFIG.txt (HAProxy's own per-task-handler CPU
# and latency: process_stream, the SPOE applet or mux, h1 I/O, ...).
#
#   E2E_HOOK='sh tests/bench/profile.sh' PROFILE_DIR=/tmp/prof sh tests/bench/e2e.sh
set -eu
: "${HAPSOCK:?run as E2E_HOOK of e2e.sh}" "${PROFILE_DIR:=.}" "${SECS:=5}"
mkdir -p "$PROFILE_DIR"
cli() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode(errors="replace"))' "$HAPSOCK" "$1"
}
cli "set profiling tasks on" >/dev/null
# Most of the measurement: the numbers cover it, not the warm-up.
sleep $((SECS > 1 ? SECS - 1 : 1))
cli "show profiling tasks" >"$PROFILE_DIR/profile-$HV-$CONFIG.txt" 2>&1 ||
	cli "show profiling" >"$PROFILE_DIR/profile-$HV-$CONFIG.txt"
cli "set profiling tasks off" >/dev/null || true
