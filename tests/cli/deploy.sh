# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/deploy.sh, sourced by run.sh: deploy writes nothing on a bad
# config, bad provider settings (also keyauthd -t) or a failing haproxy -c,
# signals only keyauthd through the pid file and runs the reload command.
# Then how HAProxy is run (issue 21): Debian's service and its defaults file
# (a CONFIG file that does not load ours is refused before anything is
# written; EXTRAOPTS -f and a CONFIG directory are accepted; haproxy -c sees
# every file the service loads), the version from haproxy -v (2.6 and 3.2),
# and master-worker reloads through the master socket of a real HAProxy 2.6
# and 3.2 this file starts on a free loopback port. The first tests pass
# --haproxy-service none: they are about deploy itself, on any host.

# ---- deploy -------------------------------------------------------------------------------

mkdir -p "$T/deploy"
BADC=$T/bad.conf
printf 'routes = ( { name = "x"; context = "nope"; } );\nthis is not libconfig\n' >"$BADC"
run "$K" -c "$BADC" deploy --haproxy-service none --haproxy-dir "$T/deploy"
expect_rc 1 "deploy with an invalid config"
if [ -z "$(ls -A "$T/deploy")" ]; then ok; else bad "invalid config: nothing is written"; fi
run "$K" -c "$C" deploy --haproxy-service none --haproxy-dir "$T/nonexistent"; expect_rc 1 "deploy into a missing directory"

run "$K" -c "$C" deploy --haproxy-service none --haproxy-dir "$T/deploy"
expect_rc 0 "deploy"
expect_out "keyauth-spoe.conf: changed" "first deploy changes the SPOE file"
expect_out "haproxy-keyauth.cfg: changed" "first deploy changes haproxy.cfg"
expect_err "keyauthd.pid does not exist" "missing pid file is a warning"
if [ -n "$HAPROXY" ]; then expect_out "haproxy -c: ok" "deploy ran haproxy -c"; fi
if [ -n "$HAPROXY" ] && "$HAPROXY" -c -f "$T/deploy/haproxy-keyauth.cfg" >/dev/null 2>&1; then ok
elif [ -z "$HAPROXY" ]; then ok; else bad "deployed config is valid"; fi
cp "$T/deploy/haproxy-keyauth.cfg" "$T/deployed.orig"

# Invalid config after a good deploy: the deployed files are kept as they are.
run "$K" -c "$BADC" deploy --haproxy-service none --haproxy-dir "$T/deploy"
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
	run "$K" -c "$T/prov.conf" deploy --haproxy-service none --haproxy-dir "$T/deploy"
	expect_rc 1 "deploy refuses: $bad"
	if cmp -s "$T/deploy/haproxy-keyauth.cfg" "$T/before.cfg"; then ok; else bad "deploy wrote despite: $bad"; fi
done

# HAProxy rejecting the files: nothing is written.
# shellcheck disable=SC2016 # $1 is the fake's own argument
printf '#!/bin/sh\n[ "$1" = -v ] && { echo "HAProxy version 2.6.99 2026/01/01"; exit 0; }\necho "[ALERT] fake haproxy says no"\nexit 1\n' >"$T/fakehaproxy"
chmod 0755 "$T/fakehaproxy"
write_conf "$T/k3.conf" "$T/store/keys.db"
sed -i 's|"/mistral"|"/mistral2"|' "$T/k3.conf"
run "$K" -c "$T/k3.conf" deploy --haproxy-service none --haproxy-dir "$T/deploy" --haproxy "$T/fakehaproxy"
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
run "$K" -c "$C" deploy --haproxy-service none --haproxy-dir "$T/deploy" --reload-haproxy "touch '$T/reloaded'"
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
run "$K" -c "$C" deploy --haproxy-service none --haproxy-dir "$T/deploy" --json
expect_rc 0 "deploy --json"
if json_ok "$T/out" && grep -q '"signalled":false' "$T/out"; then ok; else bad "deploy --json report"; fi
expect_err "not keyauthd" "a foreign pid is not signalled"
if kill -0 "$OTHER" 2>/dev/null; then ok; else bad "the foreign process is untouched"; fi
stop_pid "$OTHER"
rm -f "$T/keyauthd.pid"
run "$K" -c "$C" deploy --haproxy-service none --haproxy-dir "$T/deploy" --reload-haproxy "exit 3"
expect_rc 1 "a failing reload command fails the deploy"

# ---- the deploy group of keyauth.conf: the flags' defaults -----------------------------------

# A plain `keyauthctl deploy` (what keyauth-admin runs) deploys as the group says.
DG=$T/dgroup
mkdir -p "$DG/a" "$DG/b"
write_conf "$DG/k.conf" "$T/store/keys.db"
cat >>"$DG/k.conf" <<EOF
deploy = {
	haproxy_dir = "$DG/a";
	haproxy_service = "none";
	reload_haproxy = "touch $DG/reloaded";
};
EOF
run "$K" -c "$DG/k.conf" deploy
expect_rc 0 "deploy with the deploy group's settings, no flags"
if [ -s "$DG/a/haproxy-keyauth.cfg" ] && [ -s "$DG/a/keyauth-spoe.conf" ]; then ok
else bad "deploy.haproxy_dir: the files go there"; fi
if [ -e "$DG/reloaded" ]; then ok; else bad "deploy.reload_haproxy: the reload command ran"; fi
run "$K" -c "$DG/k.conf" deploy --preview --json
expect_rc 0 "deploy --preview with the deploy group"
if json_ok "$T/out" && grep -q '"changed":false' "$T/out"; then ok
else bad "deploy --preview compares against deploy.haproxy_dir"; fi
# Flags override the group.
rm -f "$DG/reloaded"
run "$K" -c "$DG/k.conf" deploy --haproxy-dir "$DG/b" --reload-haproxy none
expect_rc 0 "flags override the deploy group"
if [ -s "$DG/b/haproxy-keyauth.cfg" ]; then ok; else bad "--haproxy-dir overrides deploy.haproxy_dir"; fi
if [ ! -e "$DG/reloaded" ]; then ok; else bad "--reload-haproxy none overrides deploy.reload_haproxy"; fi
# A missing directory from the group is named as the group's setting.
sed -i "s|haproxy_dir = \"$DG/a\"|haproxy_dir = \"$DG/missing\"|" "$DG/k.conf"
run "$K" -c "$DG/k.conf" deploy
expect_rc 1 "deploy.haproxy_dir that does not exist"
expect_err "deploy.haproxy_dir $DG/missing" "the error names the setting"
# deploy.haproxy is the haproxy that checks the files (the fake refuses them).
write_conf "$DG/h.conf" "$T/store/keys.db"
printf 'deploy = { haproxy_dir = "%s"; haproxy_service = "none"; haproxy = "%s"; };\n' \
	"$DG/a" "$T/fakehaproxy" >>"$DG/h.conf"
sed -i 's|"/mistral"|"/mistral2"|' "$DG/h.conf"
cp "$DG/a/haproxy-keyauth.cfg" "$DG/a.orig"
run "$K" -c "$DG/h.conf" deploy --reload-haproxy none
expect_rc 1 "deploy.haproxy is the haproxy that checks the files"
expect_err "fake haproxy says no" "deploy.haproxy ran haproxy -c"
if cmp -s "$DG/a/haproxy-keyauth.cfg" "$DG/a.orig"; then ok; else bad "deploy.haproxy refusal writes nothing"; fi
if [ -n "$HAPROXY" ]; then
	run "$K" -c "$DG/h.conf" deploy --reload-haproxy none --haproxy "$HAPROXY"
	expect_rc 0 "--haproxy overrides deploy.haproxy"
fi
# Bad values: refused with file:line, by keyauthctl and keyauthd -t alike.
dg_bad() { # dg_bad 'deploy = {...};' 'expected error (regex)' 'what'
	write_conf "$DG/bad.conf" "$T/store/keys.db"
	printf '%s\n' "$1" >>"$DG/bad.conf"
	run "$K" -c "$DG/bad.conf" deploy --haproxy-service none --haproxy-dir "$DG/b"
	expect_rc 1 "deploy group: $3"
	expect_err "bad.conf:13: .*$2" "deploy group: $3 (file:line, why)"
	if [ -n "${KEYAUTHD:-}" ] && [ -x "${KEYAUTHD:-}" ]; then
		run "$KEYAUTHD" -t -c "$DG/bad.conf"
		if [ "$rc" -ne 0 ]; then ok; else bad "keyauthd -t: deploy group: $3"; fi
	fi
}
dg_bad 'deploy = { haproxy_dir = "etc/haproxy"; };' 'bad haproxy_dir "etc/haproxy" in deploy' "relative haproxy_dir"
dg_bad 'deploy = { haproxy_dir = "/etc/../haproxy"; };' 'bad haproxy_dir' "haproxy_dir with .."
dg_bad 'deploy = { haproxy_service = "systemd"; };' 'bad haproxy_service "systemd" in deploy' "unknown haproxy_service"
dg_bad 'deploy = { haproxy_defaults = "default/haproxy"; };' 'bad haproxy_defaults' "relative haproxy_defaults"
dg_bad 'deploy = { haproxy = "haproxy"; };' 'bad haproxy "haproxy" in deploy' "relative haproxy"
dg_bad 'deploy = { reload_haproxy = "master:run/haproxy.sock"; };' 'master: takes the absolute path' "relative master socket"
dg_bad 'deploy = { reload_haproxy = ""; };' 'bad reload_haproxy' "empty reload_haproxy"
dg_bad 'deploy = { reload_haproxy = "systemctl reload haproxy\nrm -rf /tmp/x"; };' 'one-line shell command' "a two-line reload_haproxy"
dg_bad 'deploy = { haproxy_service = "none"; haproxy_defaults = "/etc/default/haproxy"; };' 'does not go with haproxy_service = "none"' "haproxy_defaults with haproxy_service none"
dg_bad 'deploy = { haproxy_dirs = "/etc/haproxy"; };' 'haproxy_dirs' "unknown setting"
dg_bad 'deploy = { haproxy_dir = 1; };' 'haproxy_dir' "haproxy_dir not a string"
if [ -z "$(find "$DG/b" -newer "$DG/bad.conf" -type f)" ]; then ok
else bad "deploy group errors write nothing"; fi

# ---- how HAProxy is run: Debian's service, its defaults file (issue 21) ---------------------

SV=$T/svc
mkdir -p "$SV/dep" "$SV/confd"
# The operator's own HAProxy configuration, valid on its own.
printf 'global\n    maxconn 1000\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend fe_operator\n    bind 127.0.0.1:9\n    http-request return status 200\n' \
	>"$SV/haproxy.cfg"

# CONFIG a file, no -f: refused before anything is written, naming the file
# HAProxy loads and the EXTRAOPTS line that fixes it.
printf '# Defaults file for HAProxy\n\nCONFIG="%s"\n' "$SV/haproxy.cfg" >"$SV/default"
run "$K" -c "$C" deploy --haproxy-defaults "$SV/default" --haproxy-dir "$SV/dep" --reload-haproxy none
expect_rc 1 "deploy refuses a directory Debian's service does not load"
if [ -z "$(ls -A "$SV/dep")" ]; then ok; else bad "refused: nothing is written"; fi
expect_err "would not load $SV/dep/haproxy-keyauth.cfg" "the refusal names our file"
expect_err "loads $SV/haproxy.cfg" "the refusal names the file HAProxy loads"
expect_err "EXTRAOPTS=\"-S /run/haproxy-master.sock -f $SV/dep/haproxy-keyauth.cfg\"" \
	"the refusal gives the EXTRAOPTS line (the unit's -S kept)"
expect_err "--haproxy-service none" "the refusal names the way out for another HAProxy"
# The same defaults file from the deploy group; --haproxy-service none overrides it.
write_conf "$SV/dg.conf" "$T/store/keys.db"
printf 'deploy = { haproxy_defaults = "%s"; haproxy_dir = "%s"; reload_haproxy = "none"; };\n' \
	"$SV/default" "$SV/dep" >>"$SV/dg.conf"
run "$K" -c "$SV/dg.conf" deploy
expect_rc 1 "deploy.haproxy_defaults is the defaults file read"
expect_err "loads $SV/haproxy.cfg" "deploy.haproxy_defaults: the refusal names its CONFIG"
if [ -z "$(ls -A "$SV/dep")" ]; then ok; else bad "deploy.haproxy_defaults refusal: nothing is written"; fi
run "$K" -c "$SV/dg.conf" deploy --haproxy-service none
expect_rc 0 "--haproxy-service none overrides deploy.haproxy_defaults"
rm -f "$SV/dep/haproxy-keyauth.cfg" "$SV/dep/keyauth-spoe.conf"
# The operator's EXTRAOPTS replaces the unit's: the fix keeps it.
printf 'CONFIG=%s\nEXTRAOPTS="-S %s/m.sock -m 256"\n' "$SV/haproxy.cfg" "$SV" >>"$SV/default"
run "$K" -c "$C" deploy --haproxy-defaults "$SV/default" --haproxy-dir "$SV/dep" --reload-haproxy none
expect_rc 1 "refused again with the operator's EXTRAOPTS"
expect_err "EXTRAOPTS=\"-S $SV/m.sock -m 256 -f $SV/dep/haproxy-keyauth.cfg\"" "the fix keeps the operator's EXTRAOPTS"
# Without the defaults file (or with a bad one): the unit's defaults, or a clear error.
run "$K" -c "$C" deploy --haproxy-defaults "$SV/absent" --haproxy-dir "$SV/dep" --reload-haproxy none
expect_rc 1 "no defaults file: the unit's CONFIG, which does not load ours"
expect_err "loads /etc/haproxy/haproxy.cfg" "the unit's CONFIG is /etc/haproxy/haproxy.cfg"
printf 'CONFIG="%s\n' "$SV/haproxy.cfg" >"$SV/default.bad"
run "$K" -c "$C" deploy --haproxy-defaults "$SV/default.bad" --haproxy-dir "$SV/dep" --reload-haproxy none
expect_rc 1 "an unterminated quote in the defaults file"
expect_err "default.bad:1: unterminated" "the defaults file's line is named"
if [ -z "$(ls -A "$SV/dep")" ]; then ok; else bad "bad defaults file: nothing is written"; fi
run "$K" -c "$C" deploy --haproxy-service none --haproxy-defaults "$SV/default"
expect_rc 2 "--haproxy-defaults with --haproxy-service none is a usage error"
run "$K" -c "$C" deploy --haproxy-service upstart
expect_rc 2 "an unknown --haproxy-service is a usage error"

# EXTRAOPTS -f names our file (single quotes, a comment, blanks): accepted, and
# haproxy -c checks it together with the operator's file.
printf '; a comment\n  CONFIG = %s  \nEXTRAOPTS='"'"'-S %s/m.sock -f %s/dep/haproxy-keyauth.cfg'"'"'\n' \
	"$SV/haproxy.cfg" "$SV" "$SV" >"$SV/default.f"
run "$K" -c "$C" deploy --haproxy-defaults "$SV/default.f" --haproxy-dir "$SV/dep" --reload-haproxy none
expect_rc 0 "deploy with EXTRAOPTS -f of our file"
expect_out "haproxy service: debian \($SV/default.f\): loads $SV/haproxy.cfg $SV/dep/haproxy-keyauth.cfg" \
	"the report says which files HAProxy's service loads"
if [ -s "$SV/dep/haproxy-keyauth.cfg" ]; then ok; else bad "EXTRAOPTS -f: the file is written"; fi
if [ -n "$HAPROXY" ]; then
	# A clash only the files together show: the operator's frontend has our name.
	cp "$SV/dep/haproxy-keyauth.cfg" "$SV/before.cfg"
	printf '\nfrontend fe_keyauth\n    bind 127.0.0.1:9\n' >>"$SV/haproxy.cfg"
	sed 's|"/mistral"|"/mistral9"|' "$C" >"$SV/k9.conf"
	run "$K" -c "$SV/k9.conf" deploy --haproxy-defaults "$SV/default.f" --haproxy-dir "$SV/dep" --reload-haproxy none
	expect_rc 1 "haproxy -c of the files together catches a duplicate frontend"
	expect_err "fe_keyauth.*same name" "HAProxy's complaint names the clash"
	if cmp -s "$SV/dep/haproxy-keyauth.cfg" "$SV/before.cfg"; then ok; else bad "a clash writes nothing"; fi
	sed -i '/^frontend fe_keyauth$/,$d' "$SV/haproxy.cfg"
fi

# The operator's global section chroots HAProxy (Debian's haproxy.cfg does):
# an agent on a unix socket is then out of reach; deploy says how to bind it in.
expect_err_not() { if grep -qiE -- "$1" "$T/err"; then bad "$2 (stderr has /$1/)"; else ok; fi; }
sed 's|^listen = .*|listen = [ "unix:/run/keyauth/keyauthd.sock" ];|' "$C" >"$SV/unix.conf"
run "$K" -c "$SV/unix.conf" deploy --haproxy-defaults "$SV/default.f" --haproxy-dir "$SV/dep" --reload-haproxy none
expect_rc 0 "deploy with a unix agent socket, no chroot"
expect_err_not "chroot" "a unix socket without chroot: no warning"
sed -i 's|^global$|global\n    chroot /var/empty|' "$SV/haproxy.cfg"
run "$K" -c "$SV/unix.conf" deploy --haproxy-defaults "$SV/default.f" --haproxy-dir "$SV/dep" --reload-haproxy none
expect_rc 0 "deploy with a unix agent socket under chroot (a warning)"
expect_err "chroots to /var/empty \($SV/haproxy.cfg:2\)" "the chroot line is named"
expect_err "BindReadOnlyPaths=/run/keyauth:/var/empty/run/keyauth" "the bind mount that fixes it is given"
run "$K" -c "$C" deploy --haproxy-defaults "$SV/default.f" --haproxy-dir "$SV/dep" --reload-haproxy none
expect_err_not "chroot" "an agent on TCP under chroot: no warning"
sed -i '/^    chroot /d' "$SV/haproxy.cfg"

# CONFIG a directory: our file goes there, HAProxy loads it with the others.
cp "$SV/haproxy.cfg" "$SV/confd/00-main.cfg"
printf 'CONFIG=%s\n' "$SV/confd" >"$SV/default.d"
run "$K" -c "$C" deploy --haproxy-defaults "$SV/default.d" --haproxy-dir "$SV/confd" --reload-haproxy none --json
expect_rc 0 "deploy into Debian's CONFIG directory"
if [ -s "$SV/confd/haproxy-keyauth.cfg" ] && json_ok "$T/out" &&
   grep -q '"service":{"name":"debian"' "$T/out"; then ok; else bad "CONFIG directory: the file placed there, JSON report"; fi
if [ -n "$HAPROXY" ]; then
	expect_out '"haproxy_check":"ok"' "haproxy -c ran on the directory"
	printf 'frontend fe_keyauth\n    bind 127.0.0.1:9\n' >"$SV/confd/50-clash.cfg"
	run "$K" -c "$SV/k9.conf" deploy --haproxy-defaults "$SV/default.d" --haproxy-dir "$SV/confd" --reload-haproxy none
	expect_rc 1 "haproxy -c checks every *.cfg of the CONFIG directory"
	if ! grep -q mistral9 "$SV/confd/haproxy-keyauth.cfg"; then ok; else bad "directory clash: nothing written"; fi
	rm -f "$SV/confd/50-clash.cfg"
fi

# ---- the version, from haproxy -v ----------------------------------------------------------

HB_H32=$(cd "$CLI/../.." && pwd)/.haproxy32/bin/haproxy
HB_HAPS=()
[ -x /usr/sbin/haproxy ] && HB_HAPS+=(/usr/sbin/haproxy)
if [ -x "$HB_H32" ]; then HB_HAPS+=("$HB_H32")
else echo "run.sh: $HB_H32 missing: HAProxy 3.2 deploy tests SKIPPED (sh scripts/haproxy32.sh)" >&2; fi
for H in "${HB_HAPS[@]}"; do
	want=$("$H" -v | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p')
	mkdir -p "$SV/v$want"
	run "$K" -c "$C" deploy --haproxy-service none --haproxy "$H" --haproxy-dir "$SV/v$want"
	expect_rc 0 "deploy with HAProxy $want"
	case $want in
	2.6) expect_out "^haproxy: $H 2\.6\.[0-9].* \(rendered for 2\.6\.\.3\.0\)$" "HAProxy 2.6 detected"
	     if grep -q 'timeout hello' "$SV/v$want/keyauth-spoe.conf"; then ok; else bad "2.6: the 2.6 SPOE file"; fi ;;
	*)   expect_out "^haproxy: $H 3\.[0-9]+\.[0-9].* \(rendered for 3\.1\+\)$" "HAProxy $want detected"
	     if ! grep -q 'timeout hello' "$SV/v$want/keyauth-spoe.conf"; then ok; else bad "$want: the 3.1+ SPOE file"; fi
	     # --haproxy-version still decides when given.
	     run "$K" -c "$C" deploy --haproxy-service none --haproxy "$H" --haproxy-dir "$SV/v$want" --haproxy-version 2.6
	     expect_rc 0 "deploy --haproxy-version 2.6 with HAProxy $want"
	     expect_out "rendered for 2\.6\.\.3\.0" "--haproxy-version overrides the detected version" ;;
	esac
done
mkdir -p "$SV/old"
printf '#!/bin/sh\necho "HA-Proxy version 2.4.22-0ubuntu0.22.04.3 2023/12/04"\n' >"$SV/haproxy24"
printf '#!/bin/sh\necho "HAProxy-ish 7"\n' >"$SV/haproxyx"
chmod 0755 "$SV/haproxy24" "$SV/haproxyx"
run "$K" -c "$C" deploy --haproxy-service none --haproxy "$SV/haproxy24" --haproxy-dir "$SV/old"
expect_rc 1 "HAProxy 2.4 is refused"
expect_err "HAProxy 2\.4\.22.*needs 2\.6 or newer" "the refusal says which version and what is needed"
run "$K" -c "$C" deploy --haproxy-service none --haproxy "$SV/haproxyx" --haproxy-dir "$SV/old"
expect_rc 1 "an unreadable haproxy -v is refused"
expect_err "cannot tell the version.*--haproxy-version" "and says how to go on"
if [ -z "$(ls -A "$SV/old")" ]; then ok; else bad "version refused: nothing is written"; fi

# ---- master-worker reloads through the master socket, real HAProxy 2.6 and 3.2 -------------

# code URL: the HTTP status of a GET (000 when nothing answered).
code() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$1"; }
# wait_code URL WANT: polls (bounded, 10 s) until URL answers WANT.
wait_code() {
	local _
	for _ in $(seq 1 200); do [ "$(code "$1")" = "$2" ] && return 0; sleep 0.05; done
	return 1
}
if ! command -v curl >/dev/null 2>&1; then
	bad "curl not found: the master-worker reload tests cannot run"
	HB_HAPS=()
fi
for H in "${HB_HAPS[@]}"; do
	v=$("$H" -v | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p')
	MW=$T/mw$v
	mkdir -p "$MW"
	FP=$(free_port)
	write_conf "$MW/k.conf" "$T/store/keys.db"
	sed -i "s|\"127.0.0.1:8080\"|\"127.0.0.1:$FP\"|" "$MW/k.conf"
	printf 'global\n    maxconn 1000\n' >"$MW/main.cfg"
	printf 'CONFIG=%s\nEXTRAOPTS="-S %s/m.sock -f %s/haproxy-keyauth.cfg"\n' "$MW/main.cfg" "$MW" "$MW" \
		>"$MW/default"
	run "$K" -c "$MW/k.conf" deploy --haproxy "$H" --haproxy-defaults "$MW/default" --haproxy-dir "$MW" \
		--reload-haproxy none
	expect_rc 0 "$v: the first deploy"
	# As Debian's unit runs it, master-worker with a master socket.
	"$H" -W -S "$MW/m.sock" -f "$MW/main.cfg" -f "$MW/haproxy-keyauth.cfg" >"$MW/log" 2>&1 &
	MP=$!
	WP=
	PIDS+=("$MP")
	if ! wait_code "http://127.0.0.1:$FP/newroute/x" 404; then
		bad "$v: HAProxy did not answer 404 on 127.0.0.1:$FP within 10 s"
		sed 's/^/    haproxy: /' "$MW/log" | tail -n 5 >&2
		stop_pid "$MP"
		continue
	fi
	ok
	# A new route; the default reload without systemd is the service's master socket.
	sed -i 's|^routes = (|routes = (\n\t{ name = "newroute"; context = "/newroute"; upstream = "127.0.0.1:9"; },|' "$MW/k.conf"
	if [ -d /run/systemd/system ]; then rl=(--reload-haproxy "master:$MW/m.sock"); else rl=(); fi
	run "$K" -c "$MW/k.conf" deploy --haproxy "$H" --haproxy-defaults "$MW/default" --haproxy-dir "$MW" "${rl[@]}"
	expect_rc 0 "$v: deploy a new route, reload through the master socket"
	expect_out "^haproxy reload: ok, master socket $MW/m.sock, new worker pid [0-9]+" "$v: the reload is reported"
	WP=$(sed -n 's/^haproxy reload: ok, .*new worker pid \([0-9]*\).*/\1/p' "$T/out")
	[ -d /run/systemd/system ] || expect_out "default: no systemd" "$v: the default reload is said"
	# The new route is live: agent down, so fail-closed 503 instead of 404.
	if wait_code "http://127.0.0.1:$FP/newroute/x" 503; then ok; else bad "$v: the new route answers 503 within 10 s"; fi
	if kill -0 "$MP" 2>/dev/null; then ok; else bad "$v: the master survived the reload"; fi
	# HAProxy refusing the reload (the operator's file broke since; deploy told
	# the service is not Debian's only checks its own): an error, old config kept.
	printf 'frontend broken\n    no_such_keyword\n' >>"$MW/main.cfg"
	sed -i 's|^routes = (|routes = (\n\t{ name = "second"; context = "/second"; upstream = "127.0.0.1:9"; },|' "$MW/k.conf"
	run "$K" -c "$MW/k.conf" deploy --haproxy "$H" --haproxy-service none --haproxy-dir "$MW" \
		--reload-haproxy "master:$MW/m.sock" --json
	expect_rc 1 "$v: a reload HAProxy refuses fails the deploy"
	expect_err "HAProxy refused the reload" "$v: the refusal is reported"
	if json_ok "$T/out" && grep -q '"method":"master"' "$T/out" && grep -q '"ok":false' "$T/out"; then ok
	else bad "$v: the JSON report of a refused reload"; fi
	if [ "$(code "http://127.0.0.1:$FP/second/x")" = 404 ] &&
	   [ "$(code "http://127.0.0.1:$FP/newroute/x")" = 503 ]; then ok
	else bad "$v: the previous configuration keeps serving after a refused reload"; fi
	# Debian's mode checks the operator's file too: refused before writing.
	cp "$MW/haproxy-keyauth.cfg" "$MW/before.cfg"
	sed -i 's|"/second"|"/third"|' "$MW/k.conf"
	run "$K" -c "$MW/k.conf" deploy --haproxy "$H" --haproxy-defaults "$MW/default" --haproxy-dir "$MW" \
		--reload-haproxy "master:$MW/m.sock"
	expect_rc 1 "$v: a broken operator file fails haproxy -c"
	expect_err "main.cfg" "$v: HAProxy's complaint names the operator's file"
	if cmp -s "$MW/haproxy-keyauth.cfg" "$MW/before.cfg"; then ok; else bad "$v: nothing written"; fi
	# Not a master socket: a clear error.
	run "$K" -c "$MW/k.conf" deploy --haproxy "$H" --haproxy-service none --haproxy-dir "$MW" \
		--reload-haproxy "master:$MW/nosuch.sock"
	expect_rc 1 "$v: a missing master socket fails the deploy"
	expect_err "nosuch.sock: No such file" "$v: the socket is named"
	stop_pid "$MP"
	# The master stops its workers: none is left behind.
	left=0
	for w in $WP; do
		for _ in $(seq 1 100); do gone "$w" && break; sleep 0.05; done
		if ! gone "$w"; then left=1; kill -9 "$w" 2>/dev/null; fi
	done
	if [ "$left" -eq 0 ]; then ok; else bad "$v: an HAProxy worker outlived its master by 5 s"; fi
done
