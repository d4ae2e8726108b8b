# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/limits.sh, sourced by run.sh after keys.sh: rate limits on keys
# (--rpm on create, rotate and import; key set) and a route's rate_limit_rpm.
# Leaves $T/rl.conf for render.sh.

# ---- rate limits (--rpm, key set, route default) ------------------------------------

run "$K" -c "$C" key create --route openai --owner rl60 --rpm 60
expect_rc 0 "create --rpm 60"
key_file k_rl60
RL_ID=$(sed -n 's/^Key id: *//p' "$T/err")
expect_err "^RPM: +60$" "create prints the rpm"
run "$K" -c "$C" key list
expect_out "^ID +ALIAS +ROUTES +OWNER +CREATED +EXPIRES +STATUS +RPM +LAST_USED +REQUESTS$" "list has an RPM column"
expect_out "^$RL_ID .* rl60 .* active +60 +- +0$" "list shows the rpm"
run "$K" -c "$C" key list --json
if json_ok "$T/out" && grep -q "\"id\":\"$RL_ID\"[^}]*\"rpm\":60," "$T/out" &&
   grep -q '"owner":"alice"[^}]*"rpm":0,' "$T/out"; then ok; else bad "list --json shows rpm (0 = none)"; fi
verify "$C" openai "$T/k_rl60"; expect_rc 0 "verify a limited key"
expect_out "^rpm: +60$" "verify prints the effective limit"
verify "$C" openai "$T/k_rl60" --json
if json_ok "$T/out" && grep -q '"rpm":60}' "$T/out"; then ok; else bad "verify --json has rpm"; fi
verify "$C" mistral "$T/k_rl60"; expect_out "^rpm: +-$" "no limit on a refused verdict"
for v in -1 1000001 abc "" 1.5 0x10 " 5"; do
	run "$K" -c "$C" key create --route openai --rpm "$v"
	expect_rc 2 "create --rpm '$v' is refused"
	run "$K" -c "$C" key set "$RL_ID" --rpm "$v"
	expect_rc 2 "set --rpm '$v' is refused"
done
expect_err "between 0 \(no limit\) and 1000000" "bad --rpm is explained"
run "$K" -c "$C" key create --route openai --rpm 1000000; expect_rc 0 "create --rpm at the maximum"
BEFORE=$(count_keys "$C")
run "$K" -c "$C" key create --route openai --rpm 1000001
if [ "$(count_keys "$C")" -eq "$BEFORE" ]; then ok; else bad "a refused --rpm stores nothing"; fi

# key set: a live change by id; 0 removes the limit; the same value writes nothing.
run "$K" -c "$C" key set "$RL_ID" --rpm 5; expect_rc 0 "key set --rpm 5"
expect_out "rpm 5$" "key set reports the new rpm"
verify "$C" openai "$T/k_rl60"; expect_out "^rpm: +5$" "key set changes the limit"
run "$K" -c "$C" key set "$RL_ID" --rpm 5 --json; expect_rc 0 "key set to the same value"
if json_ok "$T/out" && grep -q '"rpm":5,"changed":false' "$T/out"; then ok; else bad "key set --json reports unchanged"; fi
run "$K" -c "$C" key set "$RL_ID" --rpm 0; expect_rc 0 "key set --rpm 0"
expect_out "rpm -$" "rpm 0 shows as no limit"
verify "$C" openai "$T/k_rl60"; expect_out "^rpm: +-$" "the limit is removed"
run "$K" -c "$C" key set "$RL_ID";                expect_rc 2 "key set with nothing to set"
run "$K" -c "$C" key set --rpm 5;                 expect_rc 2 "key set without an id"
run "$K" -c "$C" key set AAAAAAAAAAAA --rpm 5;    expect_rc 3 "key set on an unknown id (exit 3: not found)"
expect_err "no key with id" "unknown id is explained"
run "$K" -c "$C" key set "$RL_ID" --rpm 60;       expect_rc 0 "key set back to 60"

# rotate keeps the old key's rpm unless --rpm is given.
run "$K" -c "$C" key rotate "$RL_ID" --grace 0s
expect_rc 0 "rotate a limited key"
expect_err "^RPM: +60$" "rotate keeps the rpm"
RL_ID2=$(sed -n 's/^Key id: *//p' "$T/err")
run "$K" -c "$C" key rotate "$RL_ID2" --grace 0s --rpm 7 --json
if json_ok "$T/out" && grep -q '"rpm":7,' "$T/out"; then ok; else bad "rotate --rpm sets the new key's rpm"; fi
run "$K" -c "$C" key rotate "$RL_ID2" --rpm x;    expect_rc 2 "rotate --rpm x is refused"

# import --rpm
printf 'sk-ratelimited0123456789abcdefghijklmn\n' >"$T/imp_rl"
run_in "$T/imp_rl" "$K" -c "$C" key import --route chat --rpm 30 --json
expect_rc 0 "import --rpm"
if json_ok "$T/out" && grep -q '"rpm":30}' "$T/out"; then ok; else bad "import --json shows the rpm"; fi
verify "$C" chat "$T/imp_rl"; expect_out "^rpm: +30$" "imported key carries its rpm"
printf 'sk-ratelimited0123456789abcdefghijklmX\n' >"$T/imp_rl2"
run_in "$T/imp_rl2" "$K" -c "$C" key import --route chat --rpm -5; expect_rc 2 "import --rpm -5 is refused"

# A route's rate_limit_rpm applies to keys without their own.
cat >"$T/rl.conf" <<EOF
store = { path = "$T/rl-keys.db"; };
routes = ( { name = "capped"; context = "/capped"; rate_limit_rpm = 120; } );
EOF
run "$K" -c "$T/rl.conf" key create --route capped; key_file k_capped
verify "$T/rl.conf" capped "$T/k_capped"; expect_out "^rpm: +120$" "route default applies"
run "$K" -c "$T/rl.conf" key create --route capped --rpm 9; key_file k_capped9
verify "$T/rl.conf" capped "$T/k_capped9"; expect_out "^rpm: +9$" "the key's own rpm wins"
printf 'store = { path = "%s"; };\nroutes = ( { name = "x"; context = "/x"; rate_limit_rpm = 1000001; } );\n' \
	"$T/rl-keys.db" >"$T/rl-bad.conf"
run "$K" -c "$T/rl-bad.conf" key list; expect_rc 1 "rate_limit_rpm out of range"
expect_err "rate_limit_rpm = 1000001" "out of range rate_limit_rpm is named"
