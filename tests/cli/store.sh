# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/store.sh, sourced by run.sh after keys.sh ($T/imp): the key store
# under stress: corrupt, unwritable, twenty concurrent writers, kill -9 at any
# moment of a write, and its owner when keyauthctl runs as root.

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
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	mkdir -p "$T/owned"
	chown nobody "$T/owned"
	write_conf "$T/owned.conf" "$T/owned/keys.db"
	run "$K" -c "$T/owned.conf" key create --route openai; expect_rc 0 "create in a directory owned by nobody"
	if [ "$(stat -c %U "$T/owned/keys.db")" = nobody ]; then ok; else bad "a first store gets the owner of its directory"; fi
	chown daemon:daemon "$T/owned/keys.db"
	run "$K" -c "$T/owned.conf" key create --route openai; expect_rc 0 "create again"
	if [ "$(stat -c %U:%G "$T/owned/keys.db")" = daemon:daemon ]; then ok; else bad "a rewritten store keeps its owner"; fi
	if [ "$(stat -c %a "$T/owned/keys.db")" = 600 ]; then ok; else bad "store mode stays 0600"; fi
fi
