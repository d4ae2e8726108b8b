#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/doc/check.sh: what `make install` ships, checked.
#   - the man pages pass `mandoc -T lint -W warning` (any warning fails);
#   - every top-level setting of agent/common/conf.c is in keyauth.conf(5) and in the
#     example agent/keyauth.conf;
#   - `make install DESTDIR=...` lays out the expected tree with the right
#     modes, fills in the unit's paths, and keeps an existing configuration;
#   - the installed example configuration passes `keyauthd -t`;
#   - the installed bash completion loads and completes commands, key
#     subcommands and options; every option it offers keyauthctl accepts;
#   - `make uninstall DESTDIR=...` removes what install installed but the
#     configuration, and is harmless a second time;
#   - the systemd unit passes `systemd-analyze verify`, carries the hardening
#     issue 7 asks for and scores at most 2.0 in `systemd-analyze security`;
#     sysusers and tmpfiles entries create the user and the store directory
#     with the right owner and mode (under --root, nothing on the host).
#     systemd checks are skipped, and counted so, when systemd-analyze is absent.
#   - doc/README-ops.md shows the log-format the rendered configs use.
# Run from the repository root: B=build bash tests/doc/check.sh
# Prints "N passed, N failed, N skipped"; exits 1 on any failure.
set -u

B=${B:-build}
MAKE=${MAKE:-make}
pass=0 fail=0 skip=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/keyauth-doc.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

ok()   { pass=$((pass + 1)); echo "ok   $1"; }
bad()  { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
skp()  { skip=$((skip + 1)); echo "skip $1${2:+: $2}"; }
# check NAME COMMAND...: passes when COMMAND exits 0; its output is shown on failure.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else bad "$name"; printf '%s\n' "$out" | head -20; fi
}

# ---- man pages -----------------------------------------------------------------
if command -v mandoc >/dev/null 2>&1; then
	for m in doc/keyauthd.8 doc/keyauthctl.8 doc/keyauth-admin.8 doc/keyauth.conf.5; do
		check "mandoc lint $m" mandoc -T lint -W warning "$m"
	done
else
	bad "mandoc lint" "mandoc not installed (Debian package mandoc)"
fi

# Every top-level setting is documented in both places.
settings=$(sed -n '/^static const struct conf_kw conf_top_kws\[\]/,/^};/p' agent/common/conf.c |
	grep -o '{ "[a-z_]*"' | tr -d '{" ')
missing=""
for s in $settings; do
	grep -q "^\.It Ic $s\b" doc/keyauth.conf.5 || grep -q "Ic $s\b" doc/keyauth.conf.5 || missing="$missing man:$s"
	grep -Eq "^#? ?$s = " agent/keyauth.conf || missing="$missing example:$s"
done
if [ -n "$settings" ] && [ -z "$missing" ]; then ok "every setting documented ($(echo $settings | wc -w))"
else bad "every setting documented" "missing:${missing:- (no settings found in agent/common/conf.c)}"; fi

# ---- make install -----------------------------------------------------------------
dest=$tmp/dest
if $MAKE --no-print-directory B="$B" install DESTDIR="$dest" >"$tmp/install.log" 2>&1; then
	ok "make install DESTDIR"
else
	bad "make install DESTDIR"; tail -20 "$tmp/install.log"
fi
want="0755 usr/local/sbin/keyauthd
0755 usr/local/bin/keyauthctl
0644 usr/local/share/man/man8/keyauthd.8
0644 usr/local/share/man/man8/keyauthctl.8
0644 usr/local/share/man/man5/keyauth.conf.5
0644 usr/local/share/doc/keyauth/keyauth.conf.example
0644 usr/local/share/doc/keyauth/README-ops.md
0644 usr/local/lib/systemd/system/keyauthd.service
0644 usr/local/lib/sysusers.d/keyauth.conf
0644 usr/local/lib/tmpfiles.d/keyauth.conf
0644 usr/local/share/bash-completion/completions/keyauthctl
0755 usr/local/sbin/keyauth-admin
0644 usr/local/share/man/man8/keyauth-admin.8
0644 usr/local/lib/systemd/system/keyauth-admin.service
0644 usr/local/share/keyauth/openapi.json
0640 etc/keyauth/keyauth.conf
0750 etc/keyauth"
layout_bad=""
while read -r mode path; do
	got=$(stat -c %a "$dest/$path" 2>/dev/null || echo absent)
	[ "0$got" = "$mode" ] || layout_bad="$layout_bad $path($got)"
done <<<"$want"
[ -z "$layout_bad" ] && ok "installed tree and modes" || bad "installed tree and modes" "$layout_bad"
unit=$dest/usr/local/lib/systemd/system/keyauthd.service
if grep -q '@[A-Z]*@' "$unit" "$dest/usr/local/lib/tmpfiles.d/keyauth.conf" 2>/dev/null; then
	bad "unit paths filled in" "a @VAR@ is left"
else
	check "unit paths filled in" grep -q '^ExecStart=/usr/local/sbin/keyauthd -c /etc/keyauth/keyauth.conf$' "$unit"
fi
check "installed example config passes keyauthd -t" \
	"$dest/usr/local/sbin/keyauthd" -t -c "$dest/etc/keyauth/keyauth.conf"
# An operator's configuration survives a reinstall.
echo "# local edit" >>"$dest/etc/keyauth/keyauth.conf"
$MAKE --no-print-directory B="$B" install DESTDIR="$dest" >"$tmp/install2.log" 2>&1
check "reinstall keeps the configuration" grep -q '^# local edit$' "$dest/etc/keyauth/keyauth.conf"

# ---- bash completion -------------------------------------------------------------------
# Its words come from keyauthctl's help (the command table) when completing.
compl=$dest/usr/local/share/bash-completion/completions/keyauthctl
check "completion: complete -p keyauthctl" bash -c 'source "$1" && complete -p keyauthctl' _ "$compl"
# compl_words WORD...: what completing the last WORD offers, sorted, one line.
compl_words() {
	PATH="$dest/usr/local/bin:$PATH" bash -c 'source "$1"; shift; COMP_WORDS=("$@");
		COMP_CWORD=$(($# - 1)); _keyauthctl; printf "%s\n" "${COMPREPLY[@]}" | sort -u | tr "\n" " "' \
		_ "$compl" keyauthctl "$@"
}
# compl_is WANT WORD...: completing gives exactly WANT (sorted, space-separated).
compl_is() {
	local want=$1 got
	shift
	got=$(compl_words "$@")
	if [ "$got" = "$want " ]; then ok "completion: keyauthctl $*<TAB>"
	else bad "completion: keyauthctl $*<TAB>" "got '$got', want '$want'"; fi
}
compl_is "key" ke
compl_is "revoke" key re
compl_is "rotate" key ro
compl_is "--route" key create --ro
compl_is "--reload-haproxy" -c /x deploy --rel
compl_is "--untag" key set --un
compl_is "--json" stats --j
compl_is "audit" au
# Top-level commands: exactly the command table's first words.
table=$("$dest/usr/local/bin/keyauthctl" --help | awk '/^commands:/ { on = 1; next }
	on && /^$/ { exit } on { print $1 }' | sort -u | tr '\n' ' ')
compl_is "${table% }" ""
compl_is "dist/keyauthctl.bash-completion" key create --out dist/keyauthctl.
# Every option offered for every command is one keyauthctl accepts (a required
# argument missing is not "unrecognized").
unknown=""
for c in $table; do
	if [ "$c" = key ]; then subs=$(compl_words key ""); else subs=-; fi
	for s in $subs; do
		[ "$s" = - ] && words=("$c") || words=("$c" "$s")
		for o in $(compl_words "${words[@]}" --); do
			err=$("$dest/usr/local/bin/keyauthctl" -c /nonexistent "${words[@]}" "$o" </dev/null 2>&1 >/dev/null)
			case $err in *unrecognized*|*"unknown option"*|*"invalid option"*) unknown="$unknown ${words[*]}:$o" ;; esac
		done
	done
done
[ -z "$unknown" ] && ok "completion: every option offered is accepted" || bad "completion: every option offered is accepted" "$unknown"

# ---- make uninstall ----------------------------------------------------------------------
if $MAKE --no-print-directory B="$B" uninstall DESTDIR="$dest" >"$tmp/uninstall.log" 2>&1; then
	ok "make uninstall DESTDIR"
else
	bad "make uninstall DESTDIR"; tail -20 "$tmp/uninstall.log"
fi
left=$(cd "$dest" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')
[ "$left" = "etc/keyauth/keyauth.conf " ] && ok "uninstall leaves only the configuration" \
	|| bad "uninstall leaves only the configuration" "left: $left"
check "uninstall keeps the operator's edit" grep -q '^# local edit$' "$dest/etc/keyauth/keyauth.conf"
check "uninstall removes share/doc/keyauth" test ! -e "$dest/usr/local/share/doc/keyauth"
check "uninstall says what it kept" grep -q '^uninstall: kept .*etc/keyauth/keyauth.conf' "$tmp/uninstall.log"
check "second uninstall is harmless" $MAKE --no-print-directory B="$B" uninstall DESTDIR="$dest"

# ---- systemd -------------------------------------------------------------------------
for d in 'User=keyauth' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' \
	 'PrivateTmp=yes' 'PrivateDevices=yes' 'ProtectKernelTunables=yes' \
	 'ProtectKernelModules=yes' 'ProtectKernelLogs=yes' 'CapabilityBoundingSet=' \
	 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
	 'ReadWritePaths=/var/lib/keyauth /run/keyauth' \
	 'StateDirectory=keyauth' 'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure'; do
	grep -qxF "$d" dist/keyauthd.service || hard_missing="${hard_missing:-} [$d]"
done
[ -z "${hard_missing:-}" ] && ok "unit hardening directives" || bad "unit hardening directives" "$hard_missing"
# The socket directory: only the agent creates entries, HAProxy's group enters,
# the socket inherits that group. RuntimeDirectory= would make it keyauth:keyauth.
check "tmpfiles: /run/keyauth is keyauth:haproxy 2750" \
	grep -qxF 'd /run/keyauth 2750 keyauth haproxy -' dist/keyauth.tmpfiles
check "unit leaves /run/keyauth to tmpfiles" sh -c '! grep -q "^RuntimeDirectory" dist/keyauthd.service'
# keyauth-admin's socket directory: root creates the socket (0660, group
# haproxy) there, nobody else may create entries, HAProxy's group enters.
check "tmpfiles: /run/keyauth-admin is root:haproxy 0750" \
	grep -qxF 'd /run/keyauth-admin 0750 root haproxy -' dist/keyauth.tmpfiles
check "sysusers: the keyauth-admin user" grep -q '^u keyauth-admin ' dist/keyauth.sysusers

if command -v systemd-analyze >/dev/null 2>&1; then
	# Installed under a private PREFIX (no DESTDIR), so that ExecStart names
	# a binary that exists: verify checks it.
	root=$tmp/root
	if $MAKE --no-print-directory B="$B" install PREFIX="$root/usr" SYSCONFDIR="$root/etc" \
	    >"$tmp/install3.log" 2>&1; then
		u=$root/usr/lib/systemd/system/keyauthd.service
		check "systemd-analyze verify" systemd-analyze verify --man=no "$u"
		check "systemd-analyze security <= 2.0" \
			systemd-analyze security --offline=yes --threshold=20 "$u"
		check "systemd-analyze verify keyauth-admin.service" \
			systemd-analyze verify --man=no "$root/usr/lib/systemd/system/keyauth-admin.service"
		if command -v systemd-sysusers >/dev/null 2>&1 && command -v systemd-tmpfiles >/dev/null 2>&1; then
			systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/keyauth.conf" >/dev/null 2>&1
			uid=$(awk -F: '$1 == "keyauth" { print $3 }' "$root/etc/passwd" 2>/dev/null)
			systemd-tmpfiles --root="$root" --create "$root/usr/lib/tmpfiles.d/keyauth.conf" >/dev/null 2>&1
			got=$(stat -c '%a %u' "$root/var/lib/keyauth" 2>/dev/null)
			if [ -n "$uid" ] && [ "$got" = "750 $uid" ]; then ok "sysusers + tmpfiles: store dir 0750 keyauth"
			else bad "sysusers + tmpfiles: store dir 0750 keyauth" "user uid '${uid}', dir '${got}'"; fi
		else
			skp "sysusers + tmpfiles" "systemd-sysusers/systemd-tmpfiles absent"
		fi
	else
		bad "make install PREFIX (for systemd checks)"; tail -20 "$tmp/install3.log"
	fi
else
	skp "systemd-analyze verify" "systemd-analyze absent"
	skp "systemd-analyze security" "systemd-analyze absent"
	skp "sysusers + tmpfiles" "systemd absent"
fi

# ---- README section -------------------------------------------------------------------
# Key files are 0600 in every recipe (issue #21): no key create/rotate output
# redirected to a file with a bare '>' (use --out FILE, or a '(umask 077; ...)'
# subshell).
# Lines continued with a backslash (\e in the man pages) are joined first.
bare=$(for f in README.md doc/*.md doc/*.8 haproxy-examples/*/README.md; do
	awk -v f="$f" '{ l = l $0 } /\\(e)?$/ { sub(/\\(e)?$/, " ", l); next } { print f ": " l; l = "" }' "$f"
done | grep -E 'key (create|rotate)[^#|]*[^0-9&]>[^&]' | grep -v 'umask 077' || true)
if [ -z "$bare" ]; then ok "no recipe writes a key file with a bare '>'"
else bad "no recipe writes a key file with a bare '>'" "$bare"; fi

fmt=$(grep -ho 'log-format "[^"]*"' haproxy-examples/01-header/haproxy.cfg 2>/dev/null | head -1)
if [ -n "$fmt" ] && grep -qF "$fmt" doc/README-ops.md; then ok "README-ops shows the rendered log-format"
else bad "README-ops shows the rendered log-format"; fi
for s in Install 'First key' 'HAProxy wiring' Deploy Rotate Revoke Monitor Upgrade Troubleshoot; do
	grep -q "^### $s" doc/README-ops.md || readme_missing="${readme_missing:-} [$s]"
done
[ -z "${readme_missing:-}" ] && ok "README-ops sections" || bad "README-ops sections" "$readme_missing"

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
