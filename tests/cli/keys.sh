# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/keys.sh, sourced by run.sh: key create, verify, list, revoke,
# rotate (grace on the test clock) and import on the store of $C. Leaves
# $T/k_alice, $T/empty and $T/imp for the later parts.

# ---- key create -------------------------------------------------------------------

run "$K" -c "$C" key create --route openai --owner alice
expect_rc 0 "key create"
key_file k_alice
if [ "$(wc -l <"$T/out")" -eq 1 ] && grep -qE '^ka_[A-Za-z0-9]{49}$' "$T/out"; then ok
else bad "create prints the key alone on stdout, ka_ + 49 base62"; fi
expect_err "will not be shown again" "create warns the key is shown once"
expect_err "Key id: +[A-Za-z0-9]{12}" "create prints the key id on stderr"
expect_err "Owner: +alice" "create prints the owner"
if grep -qF -f "$T/k_alice" "$T/err"; then bad "the key appears on stderr"; else ok; fi

run "$K" -c "$C" key create --route mistral --json
expect_rc 0 "key create --json"
if json_ok "$T/out" && grep -q '"key":"ka_' "$T/out"; then ok; else bad "create --json is JSON with the key"; fi

run "$K" -c "$C" key create --route nosuch;  expect_rc 2 "unknown route"
expect_err "unknown route 'nosuch'" "unknown route is named"
expect_err "openai" "unknown route lists the routes"
for d in 0 abc -3 3651 1.5 ""; do
	run "$K" -c "$C" key create --route openai --days "$d"
	expect_rc 2 "--days '$d' is refused"
done
for e in 2025-13-01 2025-02-30 20250101 tomorrow 2025-1-01; do
	run "$K" -c "$C" key create --route openai --expires "$e"
	expect_rc 2 "--expires '$e' is refused"
done
run "$K" -c "$C" key create --route openai --expires 2020-01-01
expect_rc 1 "--expires in the past"
expect_err "in the past" "past date says so"
run "$K" -c "$C" key create --route openai --days 5 --expires 2030-01-01
expect_rc 2 "--days with --expires"
run "$K" -c "$C" key create --route openai --owner "$(printf 'a\tb')"
expect_rc 2 "owner with a control character"

# --expires keeps the key through the whole day (UTC), on the test clock.
NOW0=1700000000   # 2023-11-14T22:13:20Z
run "$K" -c "$C" --now $NOW0 key create --route openai --owner dated --expires 2024-01-31
expect_rc 0 "create --expires on the test clock"
expect_err "Expires: 2024-02-01T00:00:00Z" "--expires covers the whole day"
run "$K" -c "$C" --now $NOW0 key create --route openai --days 1
expect_err "Expires: 2023-11-15T22:13:20Z" "--days counts from now"
run "$K" -c "$C" key create --route openai
expect_err "Expires: $(date -u -d @$(( $(date +%s) + 90 * 86400 )) +%Y-%m-%d)" "90 days by default"

# ---- --out FILE: the key in a new 0600 file (issue #21) ---------------------------
run sh -c 'umask 022; exec "$@"' sh "$K" -c "$C" key create --route openai --owner outfile --out "$T/out.key"
expect_rc 0 "key create --out FILE"
if [ "$(stat -c %a "$T/out.key" 2>/dev/null)" = 600 ]; then ok; else bad "--out FILE is mode 0600 under umask 022"; fi
if [ ! -s "$T/out" ] && grep -qE '^ka_[A-Za-z0-9]{49}$' "$T/out.key"; then ok
else bad "--out FILE holds the key, stdout nothing"; fi
expect_err "Key file: " "--out names the file on stderr"
verify "$C" openai "$T/out.key"; expect_rc 0 "the --out key verifies"
n0=$(count_keys "$C")
run "$K" -c "$C" key create --route openai --out "$T/out.key"
expect_rc 1 "--out refuses an existing file"
expect_err "exists" "--out says the file exists"
if [ "$(count_keys "$C")" -eq "$n0" ]; then ok; else bad "a refused --out creates no key"; fi
ln -s "$T/elsewhere" "$T/link.key"
run "$K" -c "$C" key create --route openai --out "$T/link.key"
expect_rc 1 "--out refuses a symlink"
if [ ! -e "$T/elsewhere" ]; then ok; else bad "--out wrote through a symlink"; fi
run "$K" -c "$C" key create --route nosuch --out "$T/none.key"
if [ ! -e "$T/none.key" ]; then ok; else bad "a failed create leaves no key file"; fi
OID=$(grep -oE 'Key id: +[A-Za-z0-9]{12}' <(bounded "$K" -c "$C" key create --route openai --out "$T/rot0.key" 2>&1) | awk '{print $3}')
run sh -c 'umask 022; exec "$@"' sh "$K" -c "$C" key rotate "$OID" --out "$T/rot.key" --json
expect_rc 0 "key rotate --out FILE --json"
if [ "$(stat -c %a "$T/rot.key" 2>/dev/null)" = 600 ] && grep -qE '^ka_' "$T/rot.key"; then ok
else bad "rotate --out FILE: the new key, mode 0600"; fi
if json_ok "$T/out" && grep -q '"key_file":' "$T/out" && ! grep -q '"key":' "$T/out"; then ok
else bad "rotate --out --json names the file, never the key"; fi
run "$K" -c "$C" key rotate "$OID" --out "$T/rot.key"
expect_rc 1 "rotate --out refuses an existing file"

# ---- key verify -------------------------------------------------------------------

verify "$C" openai "$T/k_alice";    expect_rc 0 "verify a fresh key"
expect_out "^status: +ok" "verify prints ok"
expect_out "^key_id: +[A-Za-z0-9]{12}" "verify prints the key id"
printf 'Bearer %s\n' "$(cat "$T/k_alice")" >"$T/k_bearer"
verify "$C" openai "$T/k_bearer";   expect_rc 0 "verify strips Bearer"
verify "$C" mistral "$T/k_alice";   expect_rc 1 "verify on another route"
expect_out "^status: +forbidden" "other route is forbidden"
printf 'ka_notarealkey' >"$T/junk"
verify "$C" openai "$T/junk";       expect_rc 1 "verify junk"
expect_out "^status: +malformed" "junk with our prefix is malformed"
: >"$T/empty"
verify "$C" openai "$T/empty";      expect_rc 1 "verify nothing"
expect_out "^status: +missing" "empty input is missing"
verify "$C" nosuch "$T/k_alice";    expect_rc 1 "verify on an unknown route"
expect_out "^status: +unknown_route" "unknown route verdict"
verify "$C" openai "$T/k_alice" --json; expect_rc 0 "verify --json"
if json_ok "$T/out" && grep -q '"status":"ok"' "$T/out"; then ok; else bad "verify --json"; fi

# ---- key list ---------------------------------------------------------------------

run "$K" -c "$C" key list
expect_rc 0 "key list"
expect_out "^ID +ALIAS +ROUTES +OWNER +CREATED +EXPIRES +STATUS" "list has a header"
expect_out "alice .* active +- +- +0$" "list shows alice's key as active (no rpm: -)"
if grep -q "dated" "$T/out"; then bad "list hides expired keys by default"; else ok; fi
run "$K" -c "$C" key list --all
expect_out "dated .* expired +- +- +0$" "list --all shows the expired key"
run "$K" -c "$C" key list --route mistral --json
if json_ok "$T/out" && ! grep -q '"route":"openai"' "$T/out" && grep -q '"route":"mistral"' "$T/out"
then ok; else bad "list --route filters"; fi
run "$K" -c "$C" key list --all --json
KEYHEX=$(tr -d '\n' <"$T/k_alice" | sha256sum | cut -c1-64)
if grep -qF -f "$T/k_alice" "$T/out" || grep -qi "$KEYHEX" "$T/out" || grep -qi '"key"\|digest' "$T/out"
then bad "list shows a key or digest"; else ok; fi
ALICE_ID=$(grep -o '"id":"[A-Za-z0-9]*","route":"openai","owner":"alice"' "$T/out" | cut -d'"' -f4)

# ---- key revoke -------------------------------------------------------------------

run "$K" -c "$C" key revoke AAAAAAAAAAAA;  expect_rc 3 "revoke an unknown id (exit 3: not found)"
expect_err "no key with id" "unknown id is explained"
run "$K" -c "$C" key revoke short;         expect_rc 2 "revoke a malformed id"
run "$K" -c "$C" key revoke;               expect_rc 2 "revoke without an id"
run "$K" -c "$C" key create --route openai --owner victim
key_file k_victim
VICTIM_ID=$(sed -n 's/^Key id: *//p' "$T/err")
run "$K" -c "$C" key revoke "$VICTIM_ID";  expect_rc 0 "revoke"
verify "$C" openai "$T/k_victim";          expect_rc 1 "a revoked key fails"
expect_out "^status: +revoked" "revoked verdict"
run "$K" -c "$C" key revoke "$VICTIM_ID" --json; expect_rc 0 "revoke twice is fine"
expect_out '"already_revoked":true' "second revoke says already"
run "$K" -c "$C" key list;                 if grep -q victim "$T/out"; then bad "list hides revoked"; else ok; fi
run "$K" -c "$C" key list --all;           expect_out "victim .* revoked +- +- +0$" "list --all shows revoked"

# ---- key rotate (grace on the test clock) -------------------------------------------

T0=$(date +%s)
run "$K" -c "$C" --now "$T0" key create --route mistral --owner rot
key_file k_rot_old
ROT_ID=$(sed -n 's/^Key id: *//p' "$T/err")
for g in 5x 1 -1h "" 1h30m 3651d; do
	run "$K" -c "$C" key rotate "$ROT_ID" --grace "$g"
	expect_rc 2 "--grace '$g' is refused"
done
run "$K" -c "$C" --now "$T0" key rotate "$ROT_ID" --grace 1h
expect_rc 0 "rotate"
key_file k_rot_new
expect_err "Old key $ROT_ID stays valid until" "rotate reports the grace"
expect_err "Owner: +rot" "rotate keeps the owner"
if cmp -s "$T/k_rot_old" "$T/k_rot_new"; then bad "rotate makes a new key"; else ok; fi
verify "$C" mistral "$T/k_rot_old" --now $((T0 + 3599)); expect_rc 0 "old key valid inside the grace"
verify "$C" mistral "$T/k_rot_old" --now $((T0 + 3600)); expect_rc 1 "old key expired after the grace"
expect_out "^status: +expired" "old key reads as expired"
verify "$C" mistral "$T/k_rot_new" --now $((T0 + 3600)); expect_rc 0 "new key valid after the grace"
run "$K" -c "$C" key rotate "$VICTIM_ID";  expect_rc 5 "rotating a revoked key (exit 5: conflict)"
expect_err "is revoked" "rotating a revoked key is explained"
run "$K" -c "$C" key rotate "$ROT_ID";     expect_rc 5 "rotating an already rotated key (exit 5: conflict)"
expect_err "already rotated" "rotating a rotated key is explained"
run "$K" -c "$C" key rotate AAAAAAAAAAAA;  expect_rc 3 "rotating an unknown id (exit 3: not found)"
run "$K" -c "$C" key create --route mistral --owner rot0
key_file k_rot0
R0=$(sed -n 's/^Key id: *//p' "$T/err")
run "$K" -c "$C" key rotate "$R0" --grace 0s --json
expect_rc 0 "rotate --grace 0s --json"
if json_ok "$T/out" && grep -q '"key":"ka_' "$T/out"; then ok; else bad "rotate --json"; fi
verify "$C" mistral "$T/k_rot0";           expect_rc 1 "grace 0s ends the old key now"
# A default grace never extends an expiry that comes sooner.
run "$K" -c "$C" --now "$T0" key create --route mistral --days 1 --owner soon
SOON=$(sed -n 's/^Key id: *//p' "$T/err")
run "$K" -c "$C" --now "$T0" key rotate "$SOON" --grace 7d
run "$K" -c "$C" key list --all --json
if grep -q "\"id\":\"$SOON\".*\"expires\":\"$(date -u -d @$((T0 + 86400)) +%Y-%m-%dT%H:%M:%SZ)\"" "$T/out"
then ok; else bad "rotate never moves an expiry later"; fi

# ---- key import -------------------------------------------------------------------

printf 'sk-imported0123456789abcdefghijklmnopq\n' >"$T/imp"
run_in "$T/imp" "$K" -c "$C" key import --route chat --owner bob
expect_rc 0 "import"
expect_out "^[A-Za-z0-9]{12}$" "import prints the id"
printf 'sk-imported0123456789abcdefghijklmnopq' >"$T/imp_nonl"
verify "$C" chat "$T/imp_nonl";            expect_rc 0 "imported key verifies (newline trimmed)"
run_in "$T/imp" "$K" -c "$C" key import --route chat
expect_rc 5 "import a duplicate (exit 5: conflict)"
expect_err "already in the store" "duplicate is explained"
printf 'tooshort\n' >"$T/imp_short"
run_in "$T/imp_short" "$K" -c "$C" key import --route chat; expect_rc 1 "import a short key"
printf 'has a space in it 0123456789abcdef\n' >"$T/imp_space"
run_in "$T/imp_space" "$K" -c "$C" key import --route chat; expect_rc 1 "import a key with spaces"
expect_err "without spaces" "charset is explained"
head -c 300 /dev/zero | tr '\0' 'a' >"$T/imp_long"
run_in "$T/imp_long" "$K" -c "$C" key import --route chat; expect_rc 1 "import a too long key"
tr -d '\n' <"$T/k_alice" | sed 's/.$/#/' >"$T/imp_badsum"
sed -i 's/#$/0/' "$T/imp_badsum"
if cmp -s "$T/imp_badsum" "$T/k_alice"; then sed -i 's/0$/1/' "$T/imp_badsum"; fi
run_in "$T/imp_badsum" "$K" -c "$C" key import --route chat; expect_rc 1 "import ka_ key with a bad checksum"
run_in "$T/empty" "$K" -c "$C" key import --route chat; expect_rc 1 "import nothing"
run_in "$T/imp" "$K" -c "$C" key import --route nosuch; expect_rc 2 "import to an unknown route"
run_in "$T/imp" "$K" -c "$C" key import --route chat sk-inargv; expect_rc 2 "import refuses argv"
printf 'anotherforeignkey_0123456789\n' >"$T/imp2"
run_in "$T/imp2" "$K" -c "$C" key import --route chat --json
if [ "$rc" -eq 0 ] && json_ok "$T/out" && ! grep -q '"key"' "$T/out"; then ok; else bad "import --json"; fi
