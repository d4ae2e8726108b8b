#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/pkg/deb.sh: "make test-pkg". The Debian package, installed for real:
#
#   1. builds it twice with scripts/deb.sh (the tree's version, and VERSION+pkgtest1
#      for the upgrade), lintian on it (no error, no warning);
#   2. dpkg -i: files, owners and modes, the conffile, the user keyauth, the
#      directories the maintainer scripts made (no systemd needed);
#   3. a gateway from the installed files: the operator edits
#      /etc/keyauth/keyauth.conf (a route to a stand-in upstream on loopback),
#      keyauthd runs as keyauth the way keyauthd.service runs it, on
#      /run/keyauth/keyauthd.sock; the installed keyauthctl (as keyauth) creates
#      a key and renders the HAProxy files; HAProxy 2.6 (and 3.2 when
#      scripts/haproxy32.sh got it) runs as the haproxy user, let in by the
#      socket's group: 200 with the key, 401 without;
#   4. upgrade over itself (dpkg -i --force-confold, no prompt): the operator's
#      keyauth.conf, its owner and mode, and the key store's bytes are kept;
#      the same key gets 200 through a restarted agent;
#   5. dpkg -r, then dpkg -i again: keys and configuration kept, 200 again;
#   6. dpkg --purge: programs, /etc/keyauth and /run/keyauth gone, the key
#      store and the user kept (dist/debian/README.Debian).
#
# Needs root (dpkg). Refuses to start when a keyauth package, /usr/sbin/keyauthd,
# /etc/keyauth, /var/lib/keyauth or /run/keyauth is already there: it would
# overwrite or purge someone's installation. Whatever it started or installed is
# undone on any exit: processes stopped by pid, the package purged, the key store
# it made and the user keyauth (when it made it) removed.
#
# Keys never appear in argv or in the output: keyauthctl's stdout goes straight
# into a 0600 file, curl reads the key through a header file (-H @FILE).
# Environment: DEB_DIR (where the packages are built, default build/pkg-test),
# PKG_TIMEOUT (bound of each dpkg/build step, default 180 s).

set -u
umask 077

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
HAPROXY26=${HAPROXY:-/usr/sbin/haproxy}
HAPROXY32=$ROOT/.haproxy32/bin/haproxy
DEB_DIR=${DEB_DIR:-build/pkg-test}
STEP_TIMEOUT=${PKG_TIMEOUT:-180}
SOCK=/run/keyauth/keyauthd.sock
CONF=/etc/keyauth/keyauth.conf
STORE=/var/lib/keyauth/keys.db

say() { echo "pkg: $*"; }
die() { echo "pkg: ERROR: $*" >&2; exit 1; }

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }
# check DESC CMD...: CMD succeeds.
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# expect DESC WANT GOT
expect() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$3', want '$2'"; fi; }
# bounded CMD...: CMD under timeout(1), named when it timed out.
bounded() {
	local r
	timeout -k 5 "$STEP_TIMEOUT" "$@"
	r=$?
	if [ "$r" -eq 124 ] || [ "$r" -eq 137 ]; then echo "pkg: timed out after $STEP_TIMEOUT s: ${*:1:4}" >&2; fi
	return "$r"
}

# ---- refuse to touch someone else's installation ---------------------------------------
[ "$(id -u)" = 0 ] || die "needs root: it installs, upgrades and purges the keyauth package with dpkg"
for tool in dpkg-buildpackage dh fakeroot lintian node curl setpriv runuser systemd-sysusers systemd-tmpfiles; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (make deps installs what this test needs)"
done
"$HAPROXY26" -v >/dev/null 2>&1 || die "no HAProxy at $HAPROXY26 (make deps installs Debian's)"
getent group haproxy >/dev/null || die "no group haproxy (the haproxy package makes it)"
st=$(dpkg-query -W -f='${db:Status-Status}' keyauth 2>/dev/null || true)
case $st in
"" | not-installed) ;;
*) die "a keyauth package is on this machine (dpkg status '$st'): this test installs and purges its own; remove it first (dpkg --purge keyauth)" ;;
esac
for p in /usr/sbin/keyauthd /usr/bin/keyauthctl /etc/keyauth /var/lib/keyauth /run/keyauth; do
	if [ -e "$p" ] || [ -L "$p" ]; then
		die "$p exists (make install, or a package test killed before it could clean up?): this test would overwrite or remove it; move it away first"
	fi
done

# ---- clean-up: on any exit -----------------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/keyauth-pkg.XXXXXX") || die "mktemp failed"
# HAProxy runs as haproxy: its configuration lives in a directory it may read.
H=$(mktemp -d "${TMPDIR:-/tmp}/keyauth-pkg-haproxy.XXXXXX") || die "mktemp failed"
chmod 0755 "$H"
had_user=0
getent passwd keyauth >/dev/null && had_user=1
had_group=0
getent group keyauth >/dev/null && had_group=1
installed=0
PIDS=()

gone() {
	! kill -0 "$1" 2>/dev/null || [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ]
}
# stop_pid PID: SIGTERM, SIGKILL when still running 5 s later, then reap.
stop_pid() {
	local p=$1 _
	[ -n "$p" ] || return 0
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 1 100); do gone "$p" && break; sleep 0.05; done
	if ! gone "$p"; then
		echo "pkg: pid $p still running 5 s after SIGTERM: SIGKILL" >&2
		kill -KILL "$p" 2>/dev/null
	fi
	wait "$p" 2>/dev/null
	return 0
}
cleanup() {
	local p
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	if [ "$installed" = 1 ] || dpkg-query -W keyauth >/dev/null 2>&1; then
		timeout -k 5 120 dpkg --purge keyauth </dev/null >"$T/cleanup-purge.log" 2>&1 ||
			{ echo "pkg: cleanup: dpkg --purge keyauth failed:" >&2; tail -n 5 "$T/cleanup-purge.log" >&2; }
	fi
	# Purge keeps the key store and the user on purpose; this test made them.
	rm -rf /var/lib/keyauth /run/keyauth /etc/keyauth
	if [ "$had_user" = 0 ] && getent passwd keyauth >/dev/null; then userdel keyauth 2>/dev/null; fi
	if [ "$had_group" = 0 ] && getent group keyauth >/dev/null; then groupdel keyauth 2>/dev/null; fi
	rm -rf "$T" "$H"
	if [ -e /usr/sbin/keyauthd ]; then echo "pkg: cleanup: /usr/sbin/keyauthd is still there" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for SECONDS CMD...: polls CMD every 100 ms until it succeeds or SECONDS passed.
wait_for() {
	local end=$(($(date +%s%N) + $1 * 1000000000))
	shift
	while :; do
		"$@" && return 0
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.1
	done
}
# mode_of PATH: "mode owner:group" as stat prints them (mode in octal).
mode_of() { stat -c '%a %U:%G' "$1" 2>/dev/null || echo missing; }
# dpkg_step LOG CMD...: a dpkg command, non-interactive, bounded; its output in LOG.
dpkg_step() {
	local log=$1
	shift
	DEBIAN_FRONTEND=noninteractive bounded "$@" </dev/null >"$T/$log" 2>&1 || {
		tail -n 20 "$T/$log" >&2
		return 1
	}
}
free_port() {
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

# ---- 1. build, lintian -------------------------------------------------------------------
version=$(sed -nE 's/^#define KEYAUTH_VERSION "([^"]+)"$/\1/p' agent/common/version.h)
[ -n "$version" ] || die "no KEYAUTH_VERSION in agent/common/version.h"
version2=$version+pkgtest1
# The upgrade's package also ships a changed keyauth.conf: the operator's edit
# and the new default then conflict, as in a real upgrade (dpkg would ask).
CONF_MARK="# keyauth $version2: a changed default (tests/pkg/deb.sh)"
for v in "$version" "$version2"; do
	stage_cmd=""
	[ "$v" = "$version2" ] && stage_cmd="printf '\\n%s\\n' '$CONF_MARK' >>agent/keyauth.conf"
	say "building keyauth $v (scripts/deb.sh, into $DEB_DIR)"
	DEB_VERSION=$v DEB_DIR=$DEB_DIR DEB_STAGE_CMD=$stage_cmd bounded bash scripts/deb.sh >"$T/build-$v.log" 2>&1 || {
		tail -n 30 "$T/build-$v.log" >&2
		die "make deb DEB_VERSION=$v failed"
	}
done
DEB1=$(tail -n 1 "$T/build-$version.log")
DEB2=$(tail -n 1 "$T/build-$version2.log")
{ [ -f "$DEB1" ] && [ -f "$DEB2" ]; } || die "scripts/deb.sh printed no .deb path ($DEB1, $DEB2)"
expect "the package's version is version.h's" "$version" "$(dpkg-deb -f "$DEB1" Version)"
deps=$(dpkg-deb -f "$DEB1" Depends)
check "Depends: haproxy (the group of /run/keyauth), sysusers, tmpfiles, the shared libraries" \
	sh -c "echo '$deps' | grep -qE '(^|, )haproxy(,|\$)' && echo '$deps' | grep -q systemd-sysusers &&
	       echo '$deps' | grep -q systemd-tmpfiles && echo '$deps' | grep -q 'libconfig'"

# lintian as an unprivileged user when possible (it warns when run as root).
cp "$DEB1" "$T/lintian.deb" && chmod 0644 "$T/lintian.deb"
lint_as=()
if [ -n "$(getent passwd nobody)" ]; then
	chmod 0711 "$T"
	lint_as=(setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/nonexistent TMPDIR=/tmp)
fi
# From $T: lintian returns to its working directory, and the checkout's may be
# closed to nobody (a clone in a 0700 mktemp directory, as CI makes).
if (cd "$T" && bounded "${lint_as[@]}" lintian --fail-on error,warning "$T/lintian.deb") >"$T/lintian.log" 2>&1; then
	ok "lintian: no error, no warning"
else
	bad "lintian: $(grep -E '^[EW]:' "$T/lintian.log" | head -n 5 | tr '\n' ' ')"
	sed 's/^/    lintian: /' "$T/lintian.log" | head -n 20 >&2
fi
chmod 0700 "$T"

# ---- 2. install ----------------------------------------------------------------------------
say "dpkg -i $(basename "$DEB1")"
installed=1
dpkg_step install1.log dpkg -i "$DEB1" || die "dpkg -i $DEB1 failed"
expect "installed, configured" "install ok installed" "$(dpkg-query -W -f='${Status}' keyauth)"

expect "/usr/sbin/keyauthd" "755 root:root" "$(mode_of /usr/sbin/keyauthd)"
expect "/usr/bin/keyauthctl" "755 root:root" "$(mode_of /usr/bin/keyauthctl)"
expect "keyauthd -V is the package's version" "$version" "$(/usr/sbin/keyauthd -V 2>&1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+[^ ]*' | head -n 1)"
# shellcheck disable=SC2016 # awk's own $fields
check "the user keyauth: system user, no login shell, home /var/lib/keyauth" \
	awk -F: '$1 == "keyauth" && $3 < 1000 && $6 == "/var/lib/keyauth" && $7 ~ /nologin$/ { f = 1 } END { exit !f }' /etc/passwd
expect "/etc/keyauth" "750 root:keyauth" "$(mode_of /etc/keyauth)"
expect "$CONF" "640 root:keyauth" "$(mode_of "$CONF")"
check "$CONF is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' keyauth | grep -q '^ $CONF '"
check "$CONF is the shipped example" sh -c "dpkg-deb --fsys-tarfile '$DEB1' | tar -xOf - ./usr/share/doc/keyauth/keyauth.conf.example | cmp -s - '$CONF'"
expect "/var/lib/keyauth" "750 keyauth:keyauth" "$(mode_of /var/lib/keyauth)"
expect "/run/keyauth" "2750 keyauth:haproxy" "$(mode_of /run/keyauth)"
check "dpkg keeps the configuration's owner and mode (statoverride)" \
	sh -c 'dpkg-statoverride --list /etc/keyauth/keyauth.conf | grep -qxE "root keyauth 0?640 /etc/keyauth/keyauth.conf"'
# excluded PATH: this machine's dpkg does not unpack PATH (path-exclude in
# dpkg.cfg.d, as minimal container images do for man pages and docs).
excluded() {
	local pat
	while IFS= read -r pat; do
		# shellcheck disable=SC2053 # the pattern is a glob on purpose
		[[ $1 == $pat ]] && return 0
	done < <(sed -n 's/^path-exclude[= ][[:space:]]*//p' /etc/dpkg/dpkg.cfg.d/* 2>/dev/null)
	return 1
}
dpkg-deb -c "$DEB1" | awk '{ sub(/^\./, "", $6); print $6 }' >"$T/contents"
for f in /usr/share/man/man8/keyauthd.8.gz /usr/share/man/man8/keyauthctl.8.gz /usr/share/man/man5/keyauth.conf.5.gz \
	/usr/share/bash-completion/completions/keyauthctl /usr/lib/sysusers.d/keyauth.conf /usr/lib/tmpfiles.d/keyauth.conf \
	/usr/share/doc/keyauth/copyright /usr/share/doc/keyauth/keyauth.conf.example /usr/share/doc/keyauth/README.Debian \
	/usr/share/doc/keyauth/README-ops.md.gz /usr/share/doc/keyauth/changelog.gz; do
	check "in the package: $f" grep -qxF "$f" "$T/contents"
	if excluded "$f"; then
		echo "pkg: not installed here (dpkg path-exclude): $f"
	else
		check "installed: $f" test -f "$f"
	fi
done
UNIT=/lib/systemd/system/keyauthd.service
check "the unit runs /usr/sbin/keyauthd -c $CONF" grep -qx "ExecStart=/usr/sbin/keyauthd -c $CONF" "$UNIT"
check "no @PLACEHOLDER@ left in the unit and the tmpfiles entry" sh -c "! grep -q '@[A-Z]*@' $UNIT /usr/lib/tmpfiles.d/keyauth.conf"
check "the unit is enabled (multi-user.target.wants)" test -L /etc/systemd/system/multi-user.target.wants/keyauthd.service
excluded /usr/share/man/man8/keyauthd.8.gz ||
	check "the man pages load" sh -c 'man -w keyauthd >/dev/null && man -w keyauth.conf >/dev/null'

# The unit's ExecStartPre, as the unit runs it, on the shipped configuration.
if setpriv --reuid=keyauth --regid=keyauth --init-groups env -u KEYAUTH_ALLOW_ROOT \
	/usr/sbin/keyauthd -t -c "$CONF" >"$T/t.out" 2>&1; then
	check "keyauthd -t on the shipped configuration, as keyauth" grep -q 'configuration OK' "$T/t.out"
else
	bad "keyauthd -t on the shipped configuration, as keyauth: $(head -n 3 "$T/t.out")"
fi

# ---- 3. a gateway from the installed files ------------------------------------------------
node tests/e2e/provider.js 0 >"$T/provider.log" 2>&1 &
PIDS+=($!)
wait_for 15 grep -q '^listening' "$T/provider.log" || die "the stand-in upstream did not start within 15 s: $(cat "$T/provider.log")"
PP=$(awk '/^listening/ { print $2 }' "$T/provider.log")

# The operator's change to the conffile (written in place: owner and mode stay).
cat >"$CONF" <<EOF
# keyauth.conf as an operator edited it (tests/pkg/deb.sh): one route to the
# stand-in upstream on 127.0.0.1:$PP.
listen = [ "unix:$SOCK" ];
socket_mode = "0660";
workers = 1;
store = { backend = "file"; path = "$STORE"; };
control_socket = "/run/keyauth/control.sock";
pid_file = "/run/keyauth/keyauthd.pid";
routes = (
	{ name = "demo"; type = "provider"; context = "/demo"; upstream = "127.0.0.1:$PP"; }
);
EOF
cp "$CONF" "$T/operator.conf"
expect "$CONF after the operator's edit" "640 root:keyauth" "$(mode_of "$CONF")"

AGENT_PID=""
# start_agent: keyauthd the way keyauthd.service starts it (User=/Group=keyauth,
# UMask=0077, no capabilities, ExecStartPre -t), tracked by pid; waits for its
# socket.
start_agent() {
	local n=$1
	setpriv --reuid=keyauth --regid=keyauth --init-groups env -u KEYAUTH_ALLOW_ROOT \
		/usr/sbin/keyauthd -t -c "$CONF" >"$T/agent-$n.t" 2>&1 ||
		die "keyauthd -t as keyauth ($n): $(head -n 3 "$T/agent-$n.t")"
	(umask 0077 && exec setpriv --reuid=keyauth --regid=keyauth --init-groups --no-new-privs \
		--inh-caps=-all --bounding-set=-all env -u KEYAUTH_ALLOW_ROOT \
		/usr/sbin/keyauthd -c "$CONF") >"$T/agent-$n.log" 2>&1 &
	AGENT_PID=$!
	PIDS+=("$AGENT_PID")
	wait_for 15 test -S "$SOCK" || die "keyauthd ($n) made no $SOCK within 15 s: $(tail -n 5 "$T/agent-$n.log")"
}
# stop_agent: as systemd stops it (SIGTERM); a socket it left behind is removed
# so that the next start_agent waits for the new one.
stop_agent() {
	stop_pid "$AGENT_PID"
	AGENT_PID=""
	rm -f "$SOCK"
}
start_agent 1
expect "keyauthd runs as keyauth" keyauth "$(ps -o user= -p "$AGENT_PID" | tr -d ' ')"
expect "$SOCK: HAProxy's group may connect, nobody else" "660 keyauth:haproxy" "$(mode_of "$SOCK")"
check "a user outside the group haproxy cannot enter /run/keyauth" \
	sh -c '! setpriv --reuid=nobody --regid=nogroup --clear-groups test -x /run/keyauth'

# A key, made by the installed keyauthctl as keyauth: stdout straight into a 0600 file.
if runuser -u keyauth -- /usr/bin/keyauthctl key create --route demo --owner pkg-test \
	>"$T/demo.key" 2>"$T/create.err"; then
	ok "keyauthctl key create as keyauth"
else
	die "keyauthctl key create as keyauth: $(cat "$T/create.err")"
fi
{ printf 'X-API-Key: '; head -n 1 "$T/demo.key"; } >"$T/demo.header"
expect "the key store" "600 keyauth:keyauth" "$(mode_of "$STORE")"
check "keyauthctl stats as keyauth (control socket)" \
	sh -c 'runuser -u keyauth -- /usr/bin/keyauthctl stats >/dev/null 2>&1'

# render_haproxy DIR PORT VERSION: the installed keyauthctl renders HAProxy's files.
render_haproxy() {
	mkdir -p "$1" && chmod 0755 "$1"
	/usr/bin/keyauthctl -c "$CONF" haproxy --out "$1" --bind "127.0.0.1:$2" --haproxy-version "$3" \
		>/dev/null 2>"$T/render.err" || die "keyauthctl haproxy: $(cat "$T/render.err")"
	chmod 0644 "$1"/*
}
# start_haproxy BIN DIR NAME: as the haproxy user, in the foreground, tracked by pid;
# from DIR, since HAProxy returns to its working directory while it reads the
# configuration and the checkout's may be closed to haproxy (a clone in a 0700
# directory, as CI makes).
start_haproxy() {
	(cd "$2" && exec setpriv --reuid=haproxy --regid=haproxy --init-groups "$1" -db \
		-f "$2/haproxy-keyauth.cfg") >"$T/$3.log" 2>&1 &
	PIDS+=($!)
	HAPROXY_PID=$!
}
# code PORT [HEADERFILE]: the status of GET /demo/v1/models through HAProxy.
code() {
	if [ -n "${2:-}" ]; then
		curl -s --max-time 5 -o /dev/null -w '%{http_code}' -H "@$2" "http://127.0.0.1:$1/demo/v1/models"
	else
		curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/demo/v1/models"
	fi
}
# ready PORT: the key gets through.
ready() { [ "$(code "$1" "$T/demo.header")" = 200 ]; }
# gateway_checks PORT WHAT: 200 with the key, 401 without.
gateway_checks() {
	wait_for 15 ready "$1" || bad "$2: the gateway did not answer 200 within 15 s"
	expect "$2: with the key" 200 "$(code "$1" "$T/demo.header")"
	expect "$2: without a key" 401 "$(code "$1")"
}

# HAProxy 3.2 is unpacked inside the checkout, which haproxy may not be able to
# enter: a copy where it may (bin/ and root/, what its wrapper uses).
if "$HAPROXY32" -v >/dev/null 2>&1; then
	mkdir -p "$H/haproxy32" && chmod 0755 "$H/haproxy32" && cp -a "$ROOT/.haproxy32/bin" "$ROOT/.haproxy32/root" "$H/haproxy32/" ||
		die "cannot copy HAProxy 3.2 for the haproxy user"
	HAPROXY32=$H/haproxy32/bin/haproxy
fi
FP=$(free_port)
render_haproxy "$H/26" "$FP" 2.6
start_haproxy "$HAPROXY26" "$H/26" haproxy26
HAPROXY26_PID=$HAPROXY_PID
gateway_checks "$FP" "HAProxy 2.6 as haproxy"
if "$HAPROXY32" -v >/dev/null 2>&1; then
	FP32=$(free_port)
	render_haproxy "$H/32" "$FP32" 3.2
	start_haproxy "$HAPROXY32" "$H/32" haproxy32
	gateway_checks "$FP32" "HAProxy 3.2 as haproxy"
	stop_pid "$HAPROXY_PID"
else
	echo "pkg: SKIP HAProxy 3.2 (no $HAPROXY32: sh scripts/haproxy32.sh gets it)" >&2
fi
curl -s --max-time 5 "http://127.0.0.1:$PP/__requests" >"$T/seen.json"
check "no client key reached the upstream" sh -c "! grep -qF -f '$T/demo.key' '$T/seen.json'"

# ---- 4. upgrade over itself ------------------------------------------------------------------
store_sum=$(sha256sum "$STORE" | cut -d' ' -f1)
say "dpkg -i $(basename "$DEB2") (upgrade, the agent running)"
dpkg_step upgrade.log dpkg -i --force-confdef --force-confold "$DEB2" || die "dpkg -i $DEB2 (upgrade) failed"
expect "upgraded" "$version2" "$(dpkg-query -W -f='${Version}' keyauth)"
check "upgrade: the operator's keyauth.conf kept" cmp -s "$CONF" "$T/operator.conf"
check "upgrade: the new default beside it, as keyauth.conf.dpkg-dist" grep -qxF "$CONF_MARK" "$CONF.dpkg-dist"
expect "upgrade: $CONF owner and mode" "640 root:keyauth" "$(mode_of "$CONF")"
expect "upgrade: /etc/keyauth owner and mode" "750 root:keyauth" "$(mode_of /etc/keyauth)"
expect "upgrade: the key store's bytes" "$store_sum" "$(sha256sum "$STORE" | cut -d' ' -f1)"
expect "upgrade: the key store's owner and mode" "600 keyauth:keyauth" "$(mode_of "$STORE")"
expect "upgrade: /run/keyauth" "2750 keyauth:haproxy" "$(mode_of /run/keyauth)"
expect "upgrade: keyauthd -V" "$version" "$(/usr/sbin/keyauthd -V 2>&1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1)"
stop_agent
start_agent 2
gateway_checks "$FP" "after the upgrade, restarted agent"

# ---- 5. remove, reinstall ----------------------------------------------------------------------
stop_agent
say "dpkg -r keyauth, then dpkg -i again"
dpkg_step remove.log dpkg -r keyauth || die "dpkg -r keyauth failed"
check "remove: /usr/sbin/keyauthd gone" test ! -e /usr/sbin/keyauthd
check "remove: the operator's keyauth.conf kept" cmp -s "$CONF" "$T/operator.conf"
expect "remove: the key store's bytes" "$store_sum" "$(sha256sum "$STORE" | cut -d' ' -f1)"
dpkg_step reinstall.log dpkg -i --force-confdef --force-confold "$DEB2" || die "dpkg -i $DEB2 (reinstall) failed"
check "reinstall: the operator's keyauth.conf kept" cmp -s "$CONF" "$T/operator.conf"
expect "reinstall: $CONF owner and mode" "640 root:keyauth" "$(mode_of "$CONF")"
expect "reinstall: the key store's bytes" "$store_sum" "$(sha256sum "$STORE" | cut -d' ' -f1)"
start_agent 3
gateway_checks "$FP" "after remove and reinstall"

# ---- 6. purge ----------------------------------------------------------------------------------
stop_agent
stop_pid "$HAPROXY26_PID"
say "dpkg --purge keyauth"
dpkg_step purge.log dpkg --purge keyauth || die "dpkg --purge keyauth failed"
installed=0
expect "purge: no package left" "" "$(dpkg-query -W -f='${db:Status-Status}' keyauth 2>/dev/null | grep -v '^not-installed$')"
for p in /usr/sbin/keyauthd /usr/bin/keyauthctl /etc/keyauth /run/keyauth "$UNIT" \
	/etc/systemd/system/multi-user.target.wants/keyauthd.service /usr/lib/tmpfiles.d/keyauth.conf; do
	check "purge: $p gone" test ! -e "$p" -a ! -L "$p"
done
check "purge: no statoverride left" sh -c '! dpkg-statoverride --list "/etc/keyauth*" | grep -q .'
expect "purge: the key store kept, same bytes" "$store_sum" "$(sha256sum "$STORE" 2>/dev/null | cut -d' ' -f1)"
check "purge: the user keyauth kept (owns the key store)" sh -c 'getent passwd keyauth >/dev/null'

echo "pkg: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
