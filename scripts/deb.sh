#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# scripts/deb.sh: "make deb". Builds the Debian package keyauth from the tree:
# stages a copy of the tree's files (git ls-files: tracked files and new ones
# .gitignore does not exclude; every file but build/, .haproxy32/ and
# node_modules/ outside a git checkout) into DIR/keyauth-VERSION/, puts
# dist/debian there as debian/ with a changelog entry for VERSION, and runs
# dpkg-buildpackage -b -us -uc (no test runs in the package build). Prints the
# path of DIR/keyauth_VERSION_ARCH.deb.
#
# Environment: DEB_VERSION (default: KEYAUTH_VERSION of agent/common/version.h;
# a native version, e.g. 0.1.0+local1 for an upgrade), DEB_DIR (default
# build/deb), DEB_JOBS (parallel build jobs, default 2), DEB_STAGE_CMD (a
# shell command run in the staged copy before the build: tests/pkg/deb.sh
# changes the shipped keyauth.conf of its upgrade package with it).

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

die() { echo "deb: ERROR: $*" >&2; exit 1; }

upstream=$(sed -nE 's/^#define KEYAUTH_VERSION "([^"]+)"$/\1/p' agent/common/version.h)
[ -n "$upstream" ] || die "no KEYAUTH_VERSION in agent/common/version.h"
version=${DEB_VERSION:-$upstream}
# A native package's version: no revision (no '-'), dpkg's characters only.
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] ||
	die "DEB_VERSION '$version' is not a native Debian version (digits first, then letters, digits, '.', '+', '~')"
dir=${DEB_DIR:-build/deb}
jobs=${DEB_JOBS:-2}

for tool in dpkg-buildpackage dh fakeroot; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (make deps installs it: dpkg-dev, debhelper, fakeroot)"
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stage=$dir/keyauth-$version
rm -rf "$stage"
mkdir -p "$stage"

# The tree's files, as they are in the working tree.
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard
else
	find . \( -path ./build -o -path ./.haproxy32 -o -name node_modules -o -name .git \) -prune \
		-o \( -type f -o -type l \) -printf '%P\0'
fi | while IFS= read -r -d '' f; do
	# A tracked file deleted in the working tree is not part of it.
	if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
done | tar --null --no-recursion -T - -cf - | tar -xf - -C "$stage"

rm -rf "$stage/debian"
cp -a dist/debian "$stage/debian"

# The changelog: one entry for this version, dated by the last commit (so two
# builds of one commit are alike), or now outside git.
when=$(git log -1 --format=%cD 2>/dev/null || true)
[ -n "$when" ] || when=$(date -R)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "no git")
dirty=""
if [ "$commit" != "no git" ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
	dirty=$'\n    plus uncommitted changes'
fi
maint=$(sed -n 's/^Maintainer: //p' dist/debian/control)
cat >"$stage/debian/changelog" <<CL
keyauth ($version) unstable; urgency=medium

  * Built from the keyauth tree: version $upstream, commit $commit$dirty.

 -- $maint  $when
CL

if [ -n "${DEB_STAGE_CMD:-}" ]; then
	(cd "$stage" && sh -c "$DEB_STAGE_CMD") || die "DEB_STAGE_CMD failed in $stage"
fi

# The same build from make (make deb, make test) as from a shell: nothing of
# an outer make (its variables, its jobserver) reaches debian/rules.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES

echo "deb: building keyauth $version in $stage"
(cd "$stage" && dpkg-buildpackage -b -us -uc -J"$jobs") >"$dir/keyauth_$version.build.log" 2>&1 || {
	tail -n 40 "$dir/keyauth_$version.build.log" >&2
	die "dpkg-buildpackage failed (whole log: $dir/keyauth_$version.build.log)"
}
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=$dir/keyauth_${version}_$arch.deb
[ -f "$deb" ] || die "dpkg-buildpackage made no $deb"
echo "$deb"
