# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/store.sh, sourced by run.sh after keys.sh ($T/imp): the key store
# under stress: corrupt, unwritable, twenty concurrent writers, kill -9 at any
# moment of a write, its owner when keyauthctl runs as root, and file trust
# (issue #17, finding 3): a store or config another user could have written
# is neither read nor written.

# ---- a corrupt store is never overwritten -----------------------------------------

mkdir -p "$T/corrupt"
CC=$T/corrupt.conf
write_conf "$CC" "$T/corrupt/keys.db"
printf '\x85garbage that is not a keyauth store\x00\x01' >"$T/corrupt/keys.db"
cp "$T/corrupt/keys.db" "$T/corrupt.orig"
for args in "key create --route openai" "key revoke AAAAAAAAAAAA" "key list"; do
	# shellcheck disable=SC2086
	run "$K" -c "$CC" $args
	expect_rc 1 "corrupt store: $args fails"
	expect_err "backup|move it aside" "corrupt store: $args says how to recover"
done
run_in "$T/imp" "$K" -c "$CC" key import --route chat; expect_rc 1 "corrupt store: import fails"
if cmp -s "$T/corrupt/keys.db" "$T/corrupt.orig"; then ok; else bad "corrupt store is byte-identical"; fi

# ---- a store directory that cannot be written ---------------------------------------
# As root, permission bits do not stop writes. An immutable directory (chattr +i,
# ext4 and friends) does, for root too; where chattr is not usable the store's
# parent is made a regular file instead, which fails the same code path
# (lock file creation). As another user, a 0500 directory is used as well.

mkdir -p "$T/immutable"
RC_CONF=$T/ro.conf
if chattr +i "$T/immutable" 2>/dev/null; then
	write_conf "$RC_CONF" "$T/immutable/keys.db"
else
	: >"$T/notadir"
	write_conf "$RC_CONF" "$T/notadir/keys.db"
fi
run "$K" -c "$RC_CONF" key create --route openai
expect_rc 1 "store directory not writable"
expect_err "cannot lock the key store" "unwritable directory is explained"
if [ "$(id -u)" -ne 0 ]; then
	mkdir -p "$T/ro"
	chmod 0500 "$T/ro"
	write_conf "$T/ro2.conf" "$T/ro/keys.db"
	run "$K" -c "$T/ro2.conf" key create --route openai
	expect_rc 1 "store directory mode 0500"
	chmod 0700 "$T/ro"
fi

# ---- twenty concurrent creates leave twenty keys ----------------------------------------

mkdir -p "$T/conc"
CONC=$T/conc.conf
write_conf "$CONC" "$T/conc/keys.db"
cpids=()
for i in $(seq 1 20); do
	bounded "$K" -c "$CONC" key create --route openai --owner "c$i" >"$T/conc/key.$i" 2>"$T/conc/err.$i" &
	cpids+=($!)
done
cfail=0
for p in "${cpids[@]}"; do wait "$p" || cfail=$((cfail + 1)); done
if [ "$cfail" -eq 0 ]; then ok; else bad "concurrent creates: $cfail failed"; fi
n=$(count_keys "$CONC")
if [ "$n" -eq 20 ]; then ok; else bad "twenty concurrent creates leave twenty keys (got $n)"; fi
nok=0
for i in $(seq 1 20); do
	verify "$CONC" openai "$T/conc/key.$i" && nok=$((nok + 1))
done
if [ "$nok" -eq 20 ]; then ok; else bad "every concurrent key verifies ($nok/20)"; fi

# ---- kill -9 at any moment of a write -----------------------------------------------------

mkdir -p "$T/kill"
KC=$T/kill.conf
write_conf "$KC" "$T/kill/keys.db"
"$K" -c "$KC" key create --route openai >/dev/null 2>&1
killbad=0
interrupted=0
for i in $(seq 1 50); do
	before=$(count_keys "$KC")
	"$K" -c "$KC" key create --route openai --owner "k$i" >/dev/null 2>&1 &
	p=$!
	# A random point in the command, not a synchronisation: 0..5.9 ms (a
	# create takes about 5 ms here, lock to rename).
	sleep "0.$(printf '%04d' $((RANDOM % 60)))"
	kill -9 "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	if ! bounded "$K" -c "$KC" key list --all >/dev/null 2>"$T/err"; then
		killbad=$((killbad + 1)); continue
	fi
	after=$(count_keys "$KC")
	if [ "$after" -eq "$before" ]; then
		interrupted=$((interrupted + 1))
	elif [ "$after" -ne $((before + 1)) ]; then
		killbad=$((killbad + 1))
	fi
done
echo "run.sh: kill -9 loop: $interrupted of 50 creates killed before their rename" >&2
if [ "$killbad" -eq 0 ]; then ok; else bad "kill -9 during writes: $killbad of 50 left a bad store"; fi
run "$K" -c "$KC" key create --route openai; expect_rc 0 "store still writable after kill -9s"
stale=$(find "$T/kill" -name '.keys.db.??????' | wc -l)
if [ "$stale" -eq 0 ]; then ok; else bad "temporary files of killed writers left behind: $stale"; fi

# ---- run as root, the store keeps the agent's ownership ---------------------------------------
# The agent's user (`user`, here nobody) owns its state directory; files it
# owns are trusted (filetrust.h), so root's keyauthctl manages them in place.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	mkdir -p "$T/owned"
	chown nobody "$T/owned"
	write_conf "$T/owned.conf" "$T/owned/keys.db"
	echo 'user = "nobody";' >>"$T/owned.conf"
	run "$K" -c "$T/owned.conf" key create --route openai; expect_rc 0 "create in a directory owned by the agent's user"
	if [ "$(stat -c %U "$T/owned/keys.db")" = nobody ]; then ok; else bad "a first store gets the owner of its directory"; fi
	chown nobody:daemon "$T/owned/keys.db"
	run "$K" -c "$T/owned.conf" key create --route openai; expect_rc 0 "create again"
	if [ "$(stat -c %U:%G "$T/owned/keys.db")" = nobody:daemon ]; then ok; else bad "a rewritten store keeps its owner"; fi
	if [ "$(stat -c %a "$T/owned/keys.db")" = 600 ]; then ok; else bad "store mode stays 0600"; fi
fi

# ---- file trust: what another user could have written is refused ------------------------------
# Only where another user exists to own things: root with a nobody account.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	mkdir -p "$T/trust"
	TC=$T/trust.conf
	write_conf "$TC" "$T/trust/keys.db"
	run "$K" -c "$TC" key create --route openai; expect_rc 0 "trust: a root-owned store is used"
	key_file trust.key
	cp "$T/trust/keys.db" "$T/trust.orig"
	chown nobody "$T/trust/keys.db"
	for args in "key list" "key list --all --json" "key create --route openai" "key revoke AAAAAAAAAAAA"; do
		# shellcheck disable=SC2086
		run "$K" -c "$TC" $args
		expect_rc 1 "trust: store owned by nobody: $args fails"
		expect_err "refusing the key store" "trust: store owned by nobody: $args says so"
		expect_err "owned by uid 65534 \(nobody\)" "trust: store owned by nobody: $args names the owner"
		expect_err "fix: chown root $T/trust/keys.db" "trust: store owned by nobody: $args gives the fix"
		if [ ! -s "$T/out" ]; then ok; else bad "trust: store owned by nobody: $args prints nothing on stdout"; fi
	done
	verify "$TC" openai "$T/trust.key"
	expect_rc 1 "trust: key verify refuses to vouch for a key from a store owned by nobody"
	if cmp -s "$T/trust/keys.db" "$T/trust.orig"; then ok; else bad "trust: store owned by nobody is byte-identical"; fi
	chown root "$T/trust/keys.db"
	verify "$TC" openai "$T/trust.key"; expect_rc 0 "trust: owned by root again, the key verifies"

	# group- or world-writable store
	chmod 0620 "$T/trust/keys.db"
	run "$K" -c "$TC" key list; expect_rc 1 "trust: store writable by its group"
	expect_err "writable by its group \(mode 0620\)" "trust: group-writable store is explained"
	expect_err "chmod go-w" "trust: group-writable store gives the fix"
	chmod 0600 "$T/trust/keys.db"

	# a store directory others may write (no sticky bit): refused, even missing
	mkdir -p "$T/open"
	chmod 0777 "$T/open"
	write_conf "$T/open.conf" "$T/open/keys.db"
	run "$K" -c "$T/open.conf" key create --route openai; expect_rc 1 "trust: store in a 0777 directory"
	expect_err "writable by others \(mode 0777\)" "trust: 0777 directory is explained"
	expect_err "fix: chmod go-w $T/open" "trust: 0777 directory gives the fix"
	if [ -z "$(ls -A "$T/open")" ]; then ok; else bad "trust: nothing written in a 0777 directory"; fi
	run "$K" -c "$T/open.conf" key list; expect_rc 1 "trust: key list of a store in a 0777 directory"
	# sticky and root-owned, like /tmp: may be crossed
	mkdir -p "$T/sticky/sub"
	chmod 1777 "$T/sticky"
	write_conf "$T/sticky.conf" "$T/sticky/sub/keys.db"
	run "$K" -c "$T/sticky.conf" key create --route openai; expect_rc 0 "trust: a root-owned sticky directory may be crossed"
	# a directory owned by another user
	mkdir -p "$T/theirs"
	chown nobody "$T/theirs"
	write_conf "$T/theirs.conf" "$T/theirs/keys.db"
	run "$K" -c "$T/theirs.conf" key list; expect_rc 1 "trust: store missing from a directory owned by nobody"
	expect_err "directory owned by uid 65534" "trust: directory owned by nobody is explained"

	# a configuration owned by another user: keyauthctl and keyauthd -t
	chown nobody "$TC"
	run "$K" -c "$TC" key list; expect_rc 1 "trust: config owned by nobody refused by keyauthctl"
	expect_err "owned by uid 65534 \(nobody\)" "trust: keyauthctl names the config's owner"
	expect_err "fix: chown root $TC" "trust: keyauthctl gives the config's fix"
	if [ -x "$KD" ]; then
		run "$KD" -t -c "$TC"; expect_rc 1 "trust: config owned by nobody refused by keyauthd -t"
		expect_err "$TC: owned by uid 65534 \(nobody\)" "trust: keyauthd -t names the config's owner"
		if ! grep -q "configuration OK" "$T/out"; then ok; else bad "trust: keyauthd -t does not say OK"; fi
	else
		bad "trust: $KD not built"
	fi
	chown root "$TC"
	chmod 0666 "$TC"
	run "$K" -c "$TC" key list; expect_rc 1 "trust: world-writable config refused"
	expect_err "writable by others \(mode 0666\)" "trust: world-writable config is explained"
	chmod 0600 "$TC"
	run "$K" -c "$TC" key list; expect_rc 0 "trust: config owned by root again"
	if [ -x "$KD" ]; then
		run "$KD" -t -c "$TC"
		if ! grep -q "owned by uid" "$T/err"; then ok; else bad "trust: keyauthd -t accepts the config's owner again"; fi
	fi
fi

# ---- read-only commands without read permission (issue #21) --------------------------------
# keyauthctl run as uid 65534 against a store and a configuration owned by
# root, mode 0600: the message names the owner and whom to run as, never the
# advice for a corrupt store; exit 1, nothing written. $T is opened to
# search only (0711) while this runs.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
	AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	chmod 0711 "$T"
	mkdir -p "$T/ro/store"
	chmod 0755 "$T/ro" "$T/ro/store"
	write_conf "$T/ro/k.conf" "$T/ro/store/keys.db"
	chmod 0644 "$T/ro/k.conf"
	run "$K" -c "$T/ro/k.conf" key create --route openai; expect_rc 0 "ro: create a key as root"
	key_file ro.key
	chmod 0600 "$T/ro/store/keys.db"
	ro_state() { (cd "$T/ro/store" && ls -la --full-time . && sha256sum keys.db) 2>&1; }
	before=$(ro_state)
	run "${AS_NOBODY[@]}" "$K" -c "$T/ro/k.conf" key list; expect_rc 1 "ro: key list as nobody"
	expect_err "cannot read the key store $T/ro/store/keys.db \(owned by root, mode 0600\): run as root, e\.g\. runuser -u root -- keyauthctl key list" \
		"ro: key list names the store's owner and whom to run as"
	if grep -qiE "move it aside|mv |created again|restore" "$T/err"; then
		bad "ro: key list gives no corrupt-store advice"; else ok; fi
	chmod 0644 "$T/ro.key"
	run_in "$T/ro.key" "${AS_NOBODY[@]}" "$K" -c "$T/ro/k.conf" key verify --route openai
	chmod 0600 "$T/ro.key"
	expect_rc 1 "ro: key verify as nobody"
	expect_err "\(owned by root, mode 0600\): run as root, e\.g\. runuser -u root -- keyauthctl key verify" \
		"ro: key verify names the store's owner"
	if grep -qiE "move it aside|mv |created again" "$T/err"; then
		bad "ro: key verify gives no corrupt-store advice"; else ok; fi
	# the store's directory closed to the user
	chmod 0700 "$T/ro/store"
	run "${AS_NOBODY[@]}" "$K" -c "$T/ro/k.conf" key list; expect_rc 1 "ro: key list, directory closed"
	expect_err "its directory $T/ro/store \(owned by root, mode 0700\).*run as root" \
		"ro: a closed store directory is named with its owner"
	if grep -qiE "could have put keys|move it aside" "$T/err"; then
		bad "ro: a closed directory is not called untrusted or broken"; else ok; fi
	chmod 0755 "$T/ro/store"
	# a configuration only root can read
	chmod 0600 "$T/ro/k.conf"
	run "${AS_NOBODY[@]}" "$K" -c "$T/ro/k.conf" key list; expect_rc 1 "ro: key list, config 0600 root"
	expect_err "$T/ro/k.conf: cannot read the file: Permission denied \(owned by root, mode 0600\): user nobody \(uid 65534\) needs read access" \
		"ro: an unreadable config says which user needs read access"
	if [ "$(ro_state)" = "$before" ]; then ok; else bad "ro: nothing written by the denied commands"; fi
	# the real corrupt store keeps its advice
	chmod 0644 "$T/ro/k.conf"
	printf 'garbage' >"$T/ro/store/keys.db"
	run "$K" -c "$T/ro/k.conf" key list; expect_rc 1 "ro: a corrupt store still fails"
	expect_err "move it aside" "ro: a corrupt store keeps its recovery advice"
	chmod 0700 "$T"
else
	echo "run.sh: not root or no setpriv: read-permission checks not run" >&2
	bad "ro: needs root and setpriv"
fi
