#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Make HAProxy 3.2 available beside the system's HAProxy (Debian 12 ships 2.6), without
# touching the system: Debian unstable's haproxy package and the sid versions of the
# libraries it needs are fetched with a private apt configuration, unpacked with dpkg -x
# into .haproxy32/root/ and started through sid's own dynamic loader by the wrapper
# .haproxy32/bin/haproxy (an ordinary `haproxy` command for the tests).
#
# Idempotent and cached: when the wrapper already runs a 3.2 binary (and, if
# HAPROXY32_PIN is set in the environment, exactly that version), nothing is fetched.
#
# Environment:
#   HAPROXY32_PIN          Debian version to prefer (default below); when sid no longer
#                          has it, the current sid candidate is taken instead.
#   HAPROXY32_ALLOW_OTHER  1 = accept a candidate that is not 3.2.x.
#   HAPROXY32_MIRROR       Debian archive URI; default: the one the system's apt uses.
#   HAPROXY32_SUITE        Debian suite to take haproxy from (default sid).
#   HAPROXY32_DIR          state folder (default: <checkout>/.haproxy32, git-ignored).
#
# Exit status: 0 = the wrapper runs 3.2 (its version line is printed);
# 3 = HAProxy 3.2 cannot be had here (no network, archive without 3.2, ...): a line
# "haproxy32: SKIPPED: <reason>" goes to stderr and callers skip the 3.2 runs, loudly;
# 1 = any other failure.
set -eu

DEFAULT_PIN=3.2.26-1
# Only used when no Debian archive URI can be read from the system's apt sources.
FALLBACK_MIRROR=http://deb.debian.org/debian
FALLBACK_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

here=$(cd "$(dirname "$0")/.." && pwd)
top=${HAPROXY32_DIR:-$here/.haproxy32}
pin=${HAPROXY32_PIN:-$DEFAULT_PIN}
suite=${HAPROXY32_SUITE:-sid}
wrapper=$top/bin/haproxy

say() { echo "haproxy32: $*"; }
die() { echo "haproxy32: ERROR: $*" >&2; exit 1; }
skip() { echo "haproxy32: SKIPPED: $*" >&2; exit 3; }

# Prints the wrapper's version line when it runs a 3.2 binary (and the pinned
# version when a pin was given explicitly); fails otherwise.
wrapper_ok() {
	[ -x "$wrapper" ] || return 1
	# Wrappers from before --argv0 break master-worker reloads: rebuild them.
	grep -q -- '--argv0' "$wrapper" || return 1
	v=$("$wrapper" -v 2>/dev/null | head -n 1) || return 1
	case "$v" in
	"HAProxy version 3.2."*) ;;
	"HAProxy version "*) [ "${HAPROXY32_ALLOW_OTHER:-0}" = 1 ] || return 1 ;;
	*) return 1 ;;
	esac
	# A pin that was gone from the archive is satisfied by the candidate taken instead
	# (recorded in $top/resolved), so such a pin does not refetch on every run.
	if [ -n "${HAPROXY32_PIN:-}" ]; then
		case "$v" in
		"HAProxy version $HAPROXY32_PIN "*) ;;
		*)
			r=$(cat "$top/resolved" 2>/dev/null) || return 1
			case "$v" in
			"HAProxy version ${r#"$HAPROXY32_PIN "} "*) ;;
			*) return 1 ;;
			esac
			[ "${r%% *}" = "$HAPROXY32_PIN" ] || return 1
			;;
		esac
	fi
	echo "$v"
}

if v=$(wrapper_ok); then
	say "cached: $v"
	exit 0
fi

command -v apt-get >/dev/null 2>&1 || skip "apt-get not available (not a Debian-like system)"
command -v apt-cache >/dev/null 2>&1 || skip "apt-cache not available"
command -v dpkg >/dev/null 2>&1 || skip "dpkg not available"

mkdir -p "$top"
# Serialise concurrent callers (parallel make): the second one waits, then finds the cache.
if command -v flock >/dev/null 2>&1 && [ -z "${HAPROXY32_LOCKED:-}" ]; then
	HAPROXY32_LOCKED=1 exec flock "$top/lock" sh "$0" "$@"
fi
if v=$(wrapper_ok); then
	say "cached: $v"
	exit 0
fi

# --- 1. private apt configuration ------------------------------------------------------

# Prints "URI KEYRING" of the first enabled Debian (non-security) archive the system's
# apt uses, from deb822 .sources files and one-line .list files.
system_mirror() {
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
			function flush() {
				if (uri != "" && enabled && uri ~ /\/debian\/?$/ && uri !~ /security/)
					{ print uri, (key == "" ? "-" : key); found = 1; exit }
				uri = ""; key = ""; enabled = 1
			}
			BEGIN { enabled = 1 }
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			tolower($1) == "uris:" { uri = $2 }
			tolower($1) == "signed-by:" && $2 ~ /^\// { key = $2 }
			tolower($1) == "enabled:" && tolower($2) == "no" { enabled = 0 }
			END { if (!found) flush() }
		' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '
			$1 != "deb" { next }
			{
				key = "-"; i = 2
				if ($2 ~ /^\[/) {
					for (; i <= NF; i++) {
						if ($i ~ /signed-by=/) { key = $i; sub(/.*signed-by=/, "", key); sub(/\].*/, "", key) }
						if ($i ~ /\]$/) { i++; break }
					}
				}
				uri = $i
				if (uri ~ /\/debian\/?$/ && uri !~ /security/) { print uri, key; exit }
			}
		' "$f"
	done
}

if [ -n "${HAPROXY32_MIRROR:-}" ]; then
	mirror=$HAPROXY32_MIRROR
	keyring=-
else
	line=$(system_mirror | head -n 1)
	mirror=${line%% *}
	keyring=${line#* }
	if [ -z "$mirror" ]; then
		mirror=$FALLBACK_MIRROR
		say "no Debian archive found in the system's apt sources; using $mirror"
	fi
fi
[ "$keyring" != - ] && [ -n "$keyring" ] && [ -r "$keyring" ] || keyring=$FALLBACK_KEYRING
[ -r "$keyring" ] || skip "Debian archive keyring $keyring not readable"

apt=$top/apt
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
: >"$apt/status"
cat >"$apt/sid.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite
Components: main
Signed-By: $keyring
EOF

# An empty dpkg status makes every candidate sid's, whatever the machine has installed.
# The package caches are named because Debian container images turn them off, which makes
# every apt-cache call re-parse the 10 MB sid Packages file.
set -- -o "Dir::Etc::sourcelist=$apt/sid.sources" -o Dir::Etc::sourceparts=- \
	-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" \
	-o "Dir::State::status=$apt/status" \
	-o "Dir::Cache::pkgcache=$apt/cache/pkgcache.bin" \
	-o "Dir::Cache::srcpkgcache=$apt/cache/srcpkgcache.bin"
# apt drops to _apt for downloads, which cannot write into a root-owned project folder.
[ "$(id -u)" = 0 ] && set -- "$@" -o APT::Sandbox::User=root

say "apt update: $suite main from $mirror"
if ! apt-get -q "$@" update >"$apt/update.log" 2>&1 || grep -q '^[WE]:' "$apt/update.log"; then
	sed 's/^/  /' "$apt/update.log" >&2
	if ls "$apt/lists/"*_Packages* >/dev/null 2>&1; then
		say "apt update failed; using the lists fetched before"
	else
		skip "cannot fetch Debian $suite package lists from $mirror (see above)"
	fi
fi

# --- 2. choose the version and the libraries --------------------------------------------

versions=$(apt-cache "$@" madison haproxy 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
[ -n "$versions" ] || skip "Debian $suite has no haproxy package"
if printf '%s\n' "$versions" | grep -qxF "$pin"; then
	ver=$pin
else
	ver=$(apt-cache "$@" policy haproxy | awk '$1 == "Candidate:" { print $2 }')
	if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
		skip "no haproxy candidate in Debian $suite"
	fi
	say "pinned $pin is gone from $suite; taking the candidate $ver"
fi
case "$ver" in
3.2.*) ;;
*)
	[ "${HAPROXY32_ALLOW_OTHER:-0}" = 1 ] ||
		skip "Debian $suite's haproxy is $ver, not 3.2.x (HAPROXY32_ALLOW_OTHER=1 accepts it)"
	say "accepting haproxy $ver (HAPROXY32_ALLOW_OTHER=1)"
	;;
esac

# Dependency names (first alternative of each, no version or arch qualifier) of a package.
deps_of() {
	apt-cache "$@" show "$pkg" 2>/dev/null | awk '
		/^$/ { exit }
		/^(Pre-)?Depends:/ {
			sub(/^[^:]*:/, "")
			n = split($0, d, ",")
			for (i = 1; i <= n; i++) {
				x = d[i]; sub(/\|.*/, "", x); sub(/\(.*/, "", x); sub(/:.*/, "", x)
				gsub(/[ \t]/, "", x); if (x != "") print x
			}
		}'
}
section_of() {
	apt-cache "$@" show "$pkg" 2>/dev/null | awk '/^$/ { exit } /^Section:/ { print $2 }'
}

# The sid libc (and its loader) runs the binary, so every shared library on the way must be
# sid's too: take the closure of Depends over packages in section libs (this skips
# adduser, lsb-base, debconf and other packaging-only dependencies). The loader check
# below proves nothing is still taken from the system.
pkg=haproxy=$ver
queue=$(deps_of "$@")
libs=""
seen=" "
while [ -n "$(echo "$queue" | tr -d ' ')" ]; do
	next=""
	for pkg in $queue; do
		case "$seen" in *" $pkg "*) continue ;; esac
		seen="$seen$pkg "
		case "$(section_of "$@")" in
		libs | */libs) ;;
		*) continue ;;
		esac
		libs="$libs $pkg"
		next="$next $(deps_of "$@")"
	done
	queue=$next
done
[ -n "$libs" ] || die "could not read the Depends of haproxy $ver"
say "haproxy $ver with:$libs"

rm -f "$apt/debs/"*.deb
# shellcheck disable=SC2086
if ! (cd "$apt/debs" && apt-get -q "$@" download "haproxy=$ver" $libs) >"$apt/download.log" 2>&1; then
	sed 's/^/  /' "$apt/download.log" >&2
	skip "cannot download haproxy $ver and its libraries from $mirror (see above)"
fi

# --- 3. unpack ----------------------------------------------------------------------------

new=$top/root.new
rm -rf "$new"
mkdir -p "$new"
for deb in "$apt/debs/"*.deb; do
	dpkg -x "$deb" "$new" || die "dpkg -x $deb failed"
done
[ -x "$new/usr/sbin/haproxy" ] || die "the haproxy package has no usr/sbin/haproxy"

loader=$(find "$new" -name 'ld-linux*.so.*' -path '*/lib*/*' ! -type d | sort | head -n 1)
[ -n "$loader" ] || die "no dynamic loader in the unpacked libc6"
# Library folders: the loader's own (multiarch) folder under both usr/lib and lib.
multi=$(basename "$(dirname "$loader")")
case "$multi" in
lib | lib64) libpath="usr/lib:lib" ;;
*) libpath="usr/lib/$multi:lib/$multi" ;;
esac
loader_rel=${loader#"$new"/}

# Every library the binary needs must resolve inside the unpacked tree.
libdirs="$new/${libpath%%:*}:$new/${libpath#*:}"
listing=$("$loader" --library-path "$libdirs" --list "$new/usr/sbin/haproxy" 2>&1) ||
	{ echo "$listing" >&2; die "sid's loader cannot load haproxy"; }
outside=$(echo "$listing" | awk -v root="$new/" '
	/=>/ && $3 != "" && index($3, root) != 1 && $3 !~ /^\(/ { print }
	/not found/ { print }')
if [ -n "$outside" ]; then
	echo "$outside" >&2
	die "libraries not found in the unpacked sid tree (add their packages)"
fi

rm -rf "$top/root"
mv "$new" "$top/root"
echo "$pin $ver" >"$top/resolved"

# --- 4. wrapper ---------------------------------------------------------------------------

mkdir -p "$top/bin"
# The wrapper finds root/ next to its own folder, so the checkout may move.
cat >"$wrapper.tmp" <<EOF
#!/bin/sh
# Generated by scripts/haproxy32.sh: Debian sid's HAProxy $ver run by sid's own loader
# and libraries from ../root (nothing outside that folder is used but the kernel and /etc).
# --argv0: HAProxy's master re-executes argv[0] on reload (-W, USR2); it must be
# this wrapper, not the bare binary, which cannot run with the system's libraries.
self=\$(readlink -f "\$0")
root=\$(dirname "\$(dirname "\$self")")/root
exec "\$root/$loader_rel" --argv0 "\$self" \\
	--library-path "\$root/${libpath%%:*}:\$root/${libpath#*:}" \\
	"\$root/usr/sbin/haproxy" "\$@"
EOF
chmod +x "$wrapper.tmp"
mv "$wrapper.tmp" "$wrapper"

# --- 5. check -----------------------------------------------------------------------------

if v=$(wrapper_ok); then
	say "installed: $v"
	say "command: $wrapper"
	exit 0
fi
"$wrapper" -v >&2 || true
die "$wrapper does not report HAProxy version 3.2.x"
