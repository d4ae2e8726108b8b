#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/run.sh: black-box tests of keyauthctl, every command and the error
# paths of issue 4. Runs ${KEYAUTHCTL:-build/keyauthctl} against a config and
# stores in a private mktemp directory (removed on exit). Uses HAProxy (haproxy
# -c, and a short-lived instance on a free loopback port to prove the rendered
# rules fail closed) when it is installed, curl when present, and node (which
# `make deps` installs) to check JSON: without node every JSON check fails.
#
# Every wait is bounded: each command runs under timeout(1) (CLI_CMD_TIMEOUT
# seconds, default 60; exit 124 = timed out, and the command is named on
# stderr), curl has --max-time, polls give up after 5 s saying what they
# waited for, and started processes get SIGTERM, then SIGKILL 5 s later.
#
# Keys are secrets even in tests: they are captured into variables or 0600
# files and fed back through stdin, never echoed; on a failure only stderr
# (which never carries a key) is shown.
#
# This file sets up and sources the parts, in this order, into one shell so
# that the counters accumulate (a part may use files an earlier one left):
#   lib.sh      helpers: run, expect_*, ok/bad, bounded, write_conf, cleanup
#   options.sh  --help, usage errors, common options, stats
#   keys.sh     key create, verify, list, revoke, rotate, import
#   lifecycle.sh  several routes, alias and tags, filters, bulk revoke, purge
#   limits.sh   --rpm, key set, a route's rate_limit_rpm
#   store.sh    corrupt and unwritable stores, concurrency, kill -9, owner
#   audit.sh    the store's audit log (file and Redis stream), keyauthctl audit
#   render.sh   haproxy rendering, haproxy -c, live fail-closed, rate limits
#   deploy.sh   deploy, keyauthd -t on provider settings
#   route.sh    route list/show/set (route_overrides), deploy --preview
#   admin.sh    the admin group, --scope, key show, exit 3, the admin route
#
# Ends with exactly one line "N passed, N failed"; exit status 1 on any failure.

set -u

KEYAUTHCTL=${KEYAUTHCTL:-build/keyauthctl}
case $KEYAUTHCTL in /*) ;; *) KEYAUTHCTL=$PWD/$KEYAUTHCTL ;; esac
K=$KEYAUTHCTL
if [ ! -x "$K" ]; then
	echo "run.sh: $K is not executable (build it first)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

CLI=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/keyauthctl-test.XXXXXX")
umask 077

# shellcheck source=tests/cli/lib.sh
. "$CLI/lib.sh"

AGENT_PORT=$(free_port)
mkdir -p "$T/store"
C=$T/k.conf
write_conf "$C" "$T/store/keys.db"
HAPROXY=$(command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; })
KD=${KEYAUTHD:-$(dirname "$K")/keyauthd}

# shellcheck source=tests/cli/options.sh
. "$CLI/options.sh"
# shellcheck source=tests/cli/keys.sh
. "$CLI/keys.sh"
# shellcheck source=tests/cli/lifecycle.sh
. "$CLI/lifecycle.sh"
# shellcheck source=tests/cli/limits.sh
. "$CLI/limits.sh"
# shellcheck source=tests/cli/store.sh
. "$CLI/store.sh"
# shellcheck source=tests/cli/audit.sh
. "$CLI/audit.sh"
# shellcheck source=tests/cli/render.sh
. "$CLI/render.sh"
# shellcheck source=tests/cli/deploy.sh
. "$CLI/deploy.sh"
# shellcheck source=tests/cli/route.sh
. "$CLI/route.sh"
# shellcheck source=tests/cli/admin.sh
. "$CLI/admin.sh"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
