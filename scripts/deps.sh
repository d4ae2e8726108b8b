#!/bin/sh
# Install, with apt-get, only the Debian packages keyauth needs that are missing.
# Idempotent: a machine that has everything runs no apt command at all.
# A non-root user is told the exact command instead.
set -eu

PKGS="build-essential pkg-config libev-dev libssl-dev libmsgpack-dev libconfig-dev
libcmocka-dev clang libclang-rt-14-dev llvm haproxy curl ca-certificates
wrk gnuplot-nox mandoc openssl libhiredis-dev redis-server redis-tools iproute2
libjansson-dev libmicrohttpd-dev"
# make deb and tests/pkg/deb.sh (the package needs systemd's sysusers and
# tmpfiles, not a running systemd).
PKGS="$PKGS debhelper dpkg-dev fakeroot lintian systemd"
# The admin console test (tests/e2e/console.test.js) drives Debian's chromium
# headless with npm playwright-core (which downloads no browser of its own).
PKGS="$PKGS chromium"
PKGS="$PKGS ${KEYAUTH_EXTRA_PKGS:-}"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done

# Node.js and npm run the end-to-end tests (the openai SDK). Any node >= 18
# with npm will do, whoever packaged it: only install Debian's when absent.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi

if [ -z "$missing" ]; then
	echo "deps: all Debian packages present"
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing" >&2
	echo "deps: run as root:  apt-get update && apt-get install -y$missing" >&2
	exit 1
fi

echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
# Debian starts the packaged haproxy and redis services on install; keyauth's
# tests run their own, on free loopback ports.
if [ -d /run/systemd/system ]; then
	for svc in haproxy redis-server; do
		if echo "$missing" | grep -qw "$svc"; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
	done
fi
true
