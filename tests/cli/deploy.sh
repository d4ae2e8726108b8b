# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/deploy.sh, sourced by run.sh: deploy writes nothing on a bad
# config, bad provider settings (also keyauthd -t) or a failing haproxy -c,
# signals only keyauthd through the pid file and runs the reload command.

# ---- deploy -------------------------------------------------------------------------------

mkdir -p "$T/deploy"
BADC=$T/bad.conf
printf 'routes = ( { name = "x"; context = "nope"; } );\nthis is not libconfig\n' >"$BADC"
run "$K" -c "$BADC" deploy --haproxy-dir "$T/deploy"
expect_rc 1 "deploy with an invalid config"
if [ -z "$(ls -A "$T/deploy")" ]; then ok; else bad "invalid config: nothing is written"; fi
run "$K" -c "$C" deploy --haproxy-dir "$T/nonexistent"; expect_rc 1 "deploy into a missing directory"

run "$K" -c "$C" deploy --haproxy-dir "$T/deploy"
expect_rc 0 "deploy"
expect_out "keyauth-spoe.conf: changed" "first deploy changes the SPOE file"
expect_out "haproxy-keyauth.cfg: changed" "first deploy changes haproxy.cfg"
expect_err "keyauthd.pid does not exist" "missing pid file is a warning"
if [ -n "$HAPROXY" ]; then expect_out "haproxy -c: ok" "deploy ran haproxy -c"; fi
if [ -n "$HAPROXY" ] && "$HAPROXY" -c -f "$T/deploy/haproxy-keyauth.cfg" >/dev/null 2>&1; then ok
elif [ -z "$HAPROXY" ]; then ok; else bad "deployed config is valid"; fi
cp "$T/deploy/haproxy-keyauth.cfg" "$T/deployed.orig"

# Invalid config after a good deploy: the deployed files are kept as they are.
run "$K" -c "$BADC" deploy --haproxy-dir "$T/deploy"
expect_rc 1 "deploy an invalid config over a good one"
if cmp -s "$T/deploy/haproxy-keyauth.cfg" "$T/deployed.orig"; then ok; else bad "old files kept"; fi

# Provider settings HAProxy cannot honour (issue 16): keyauthd -t names FILE:LINE
# and the fix, and deploy writes nothing.
for bad in 'provider = "openia";' 'security = { carriers = [ "" ]; };' \
           'security = { carriers = [ "bearer", "header:authorization" ]; };' \
           'security = { carriers = [ "header:X API" ]; };' 'upstream_auth = "basic";'; do
	printf 'store = { path = "%s"; };\nroutes = (\n { name = "p"; context = "/p";\n   %s }\n);\n' \
		"$T/store/keys.db" "$bad" >"$T/prov.conf"
	run "$KD" -t -c "$T/prov.conf"
	expect_rc 1 "keyauthd -t: $bad"
	expect_err "prov.conf:4: " "keyauthd -t names the line: $bad"
	cp "$T/deploy/haproxy-keyauth.cfg" "$T/before.cfg"
	run "$K" -c "$T/prov.conf" deploy --haproxy-dir "$T/deploy"
	expect_rc 1 "deploy refuses: $bad"
	if cmp -s "$T/deploy/haproxy-keyauth.cfg" "$T/before.cfg"; then ok; else bad "deploy wrote despite: $bad"; fi
done

# HAProxy rejecting the files: nothing is written.
printf '#!/bin/sh\necho "[ALERT] fake haproxy says no"\nexit 1\n' >"$T/fakehaproxy"
chmod 0755 "$T/fakehaproxy"
write_conf "$T/k3.conf" "$T/store/keys.db"
sed -i 's|"/mistral"|"/mistral2"|' "$T/k3.conf"
run "$K" -c "$T/k3.conf" deploy --haproxy-dir "$T/deploy" --haproxy "$T/fakehaproxy"
expect_rc 1 "deploy when haproxy -c fails"
expect_err "fake haproxy says no" "haproxy's complaint is shown"
if cmp -s "$T/deploy/haproxy-keyauth.cfg" "$T/deployed.orig" && ! ls -A "$T/deploy" | grep -q '^\.'
then ok; else bad "haproxy -c failure writes nothing"; fi

# Agent signalled through the pid file; the reload command runs.
mkdir -p "$T/bin"
cp "$(command -v sleep)" "$T/bin/keyauthd"
"$T/bin/keyauthd" 60 &
AG=$!
disown "$AG"   # its death by SIGHUP is the expected outcome; no job notice
PIDS+=("$AG")
echo "$AG" >"$T/keyauthd.pid"
run "$K" -c "$C" deploy --haproxy-dir "$T/deploy" --reload-haproxy "touch '$T/reloaded'"
expect_rc 0 "deploy again"
expect_out "keyauth-spoe.conf: unchanged" "unchanged files are reported"
expect_out "signalled pid $AG" "agent signalled"
if [ -e "$T/reloaded" ]; then ok; else bad "reload command ran"; fi
gone=0
for _ in $(seq 1 100); do
	if ! kill -0 "$AG" 2>/dev/null; then gone=1; break; fi
	sleep 0.05
done
if [ "$gone" -eq 1 ]; then ok; else bad "the agent (pid $AG) still runs 5 s after deploy should have sent it SIGHUP"; fi

# A pid file naming another program: not signalled.
sleep 60 &
OTHER=$!
PIDS+=("$OTHER")
echo "$OTHER" >"$T/keyauthd.pid"
run "$K" -c "$C" deploy --haproxy-dir "$T/deploy" --json
expect_rc 0 "deploy --json"
if json_ok "$T/out" && grep -q '"signalled":false' "$T/out"; then ok; else bad "deploy --json report"; fi
expect_err "not keyauthd" "a foreign pid is not signalled"
if kill -0 "$OTHER" 2>/dev/null; then ok; else bad "the foreign process is untouched"; fi
stop_pid "$OTHER"
rm -f "$T/keyauthd.pid"
run "$K" -c "$C" deploy --haproxy-dir "$T/deploy" --reload-haproxy "exit 3"
expect_rc 1 "a failing reload command fails the deploy"
