# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/lifecycle.sh, sourced by run.sh: issue 20's key record and
# lifecycle commands on a store of its own: several routes per key, alias
# and tags, list filters, bulk revoke, purge (also under 20 concurrent
# writers), rotation links and the grace status, --no-expiry. Bad input must
# exit 2 and leave the store byte-identical.

LC=$T/lc.conf
mkdir -p "$T/lc"
write_conf "$LC" "$T/lc/keys.db"
NOW=1700000000
DAY=86400

# same_store WHAT: the store is byte-identical to $T/lc.before.
same_store() { if cmp -s "$T/lc/keys.db" "$T/lc.before"; then ok; else bad "$1: store changed"; fi; }

run "$K" -c "$LC" --now $NOW key create --route openai --route mistral --owner ann \
	--alias ann-main --tag team=ml --tag env=prod
expect_rc 0 "create on two routes with alias and tags"
key_file lc_two
run "$K" -c "$LC" --now $NOW key list --json
expect_rc 0 "list --json"
LC_TWO=$(node -e 'const a=JSON.parse(require("fs").readFileSync(process.argv[1]));console.log(a[0].id)' "$T/out")
node -e 'const a=JSON.parse(require("fs").readFileSync(process.argv[1]))[0];
	process.exit(a.routes.join()==="openai,mistral" && a.route==="openai" && a.alias==="ann-main" &&
	a.tags.team==="ml" && a.tags.env==="prod" && a.rotated_from===null && a.requests===0 &&
	a.last_used===null ? 0 : 1)' "$T/out" && ok || bad "list --json shows routes, alias, tags, usage"

verify "$LC" openai "$T/lc_two" --now $NOW;  expect_rc 0 "two-route key passes its first route"
verify "$LC" mistral "$T/lc_two" --now $NOW; expect_rc 0 "two-route key passes its second route"
verify "$LC" chat "$T/lc_two" --now $NOW;    expect_rc 1 "two-route key on a third route"
expect_out "^status: +forbidden" "third route is forbidden"

# ---- bad input: exit 2, nothing written ----
cp "$T/lc/keys.db" "$T/lc.before"
run "$K" -c "$LC" key create --route openai --route nosuch;    expect_rc 2 "unknown second route"
expect_err "unknown route 'nosuch'" "unknown route named"; same_store "unknown route"
run "$K" -c "$LC" key create --route openai --route openai;    expect_rc 2 "duplicate route"
expect_err "given twice" "duplicate route named"; same_store "duplicate route"
R17=""; for i in $(seq 1 17); do R17="$R17 --route r$i"; done
# shellcheck disable=SC2086
run "$K" -c "$LC" key create $R17;                              expect_rc 2 "17 routes"
expect_err "at most 16 routes" "route cap named"; same_store "17 routes"
for t in "Team=x" "team" "=x" "team=a,b" "team=a=b" "t=$(printf 'a\tb')" \
	"$(printf 'k%.0s' $(seq 1 33))=v" "team=$(printf 'v%.0s' $(seq 1 65))"; do
	run "$K" -c "$LC" key create --route openai --tag "$t"
	expect_rc 2 "malformed tag is refused"
done
same_store "malformed tags"
run "$K" -c "$LC" key create --route openai --tag a=1 --tag a=2;  expect_rc 2 "duplicate tag"
expect_err "given twice" "duplicate tag named"; same_store "duplicate tag"
for al in "has space" "a/b" "$(printf 'a%.0s' $(seq 1 65))"; do
	run "$K" -c "$LC" key create --route openai --alias "$al"; expect_rc 2 "bad alias '$al'"
done
same_store "bad aliases"
run "$K" -c "$LC" key create --route openai --days 0;         expect_rc 2 "--days 0"
expect_err "no-expiry" "--days 0 points at --no-expiry"; same_store "--days 0"
run "$K" -c "$LC" key create --route openai --no-expiry --days 5; expect_rc 2 "--no-expiry with --days"
for d in 7 7x x7d -1d 7D ""; do
	run "$K" -c "$LC" key list --expiring-within "$d"; expect_rc 2 "bad duration '$d'"
	run "$K" -c "$LC" key list --unused-for "$d";      expect_rc 2 "bad --unused-for '$d'"
	run "$K" -c "$LC" key purge --older-than "$d";     expect_rc 2 "bad --older-than '$d'"
done
same_store "bad durations"
run "$K" -c "$LC" key set "$LC_TWO" --route chat --route nosuch; expect_rc 2 "set: unknown route"
same_store "set unknown route"
run "$K" -c "$LC" key set "$LC_TWO" --tag x=1 --untag x;      expect_rc 2 "set: --tag and --untag"
run "$K" -c "$LC" key revoke "$LC_TWO" --owner ann;             expect_rc 2 "revoke: id and --owner"
run "$K" -c "$LC" key purge;                                    expect_rc 2 "purge without --older-than"
same_store "usage errors"

# ---- key set: routes live, labels ----
run "$K" -c "$LC" --now $NOW key set "$LC_TWO" --route chat --tag team=infra --untag env --alias ""
expect_rc 0 "set routes, tags, alias"
verify "$LC" chat "$T/lc_two" --now $NOW;   expect_rc 0 "new route passes after set"
verify "$LC" openai "$T/lc_two" --now $NOW; expect_rc 1 "old route forbidden after set"
run "$K" -c "$LC" --now $NOW key list --json
node -e 'const a=JSON.parse(require("fs").readFileSync(process.argv[1]))[0];
	process.exit(a.routes.join()==="chat" && a.alias===null && a.tags.team==="infra" &&
	!("env" in a.tags) ? 0 : 1)' "$T/out" && ok || bad "set's changes are listed"

# ---- --no-expiry and its warning ----
run "$K" -c "$LC" --now $NOW key create --route openai --owner bob --no-expiry
expect_rc 0 "create --no-expiry"; expect_err "Expires: never" "no expiry shown"
run "$K" -c "$LC" --now $NOW key list;  expect_rc 0 "list"
expect_err "warning: 1 active key never expires" "list warns about keys without expiry"
expect_out "^ID +ALIAS +ROUTES +OWNER +CREATED +EXPIRES +STATUS +RPM +LAST_USED +REQUESTS" "list header"
if [ -x "$KD" ]; then
	run "$KD" -t -c "$LC"; expect_rc 0 "keyauthd -t"
	expect_err "warning: 1 key never expires" "keyauthd -t warns about keys without expiry"
fi

# ---- filters ----
run "$K" -c "$LC" --now $NOW key create --route openai --owner bob --days 3 --tag team=ml
expect_rc 0 "create a short key"
run "$K" -c "$LC" --now $NOW key list --owner bob --json
[ "$(grep -o '"id":' "$T/out" | wc -l)" -eq 2 ] && ok || bad "--owner filter"
run "$K" -c "$LC" --now $NOW key list --tag team=ml --json
[ "$(grep -o '"id":' "$T/out" | wc -l)" -eq 1 ] && ok || bad "--tag filter"
run "$K" -c "$LC" --now $NOW key list --expiring-within 1w --json
[ "$(grep -o '"id":' "$T/out" | wc -l)" -eq 1 ] && ok || bad "--expiring-within filter"
run "$K" -c "$LC" --now $((NOW + 31 * DAY)) key list --unused-for 30d --json
[ "$(grep -o '"id":' "$T/out" | wc -l)" -eq 2 ] && ok || bad "--unused-for: never used, created > 30d ago"
run "$K" -c "$LC" --now $((NOW + 29 * DAY)) key list --unused-for 30d --json
[ "$(grep -o '"id":' "$T/out" | wc -l)" -eq 0 ] && ok || bad "--unused-for: created < 30d ago"

# ---- rotation: links and grace ----
run "$K" -c "$LC" --now $NOW key list --owner ann --json
run "$K" -c "$LC" --now $NOW key rotate "$LC_TWO" --grace 1h
expect_rc 0 "rotate"; key_file lc_new
run "$K" -c "$LC" --now $((NOW + 60)) key list --owner ann --json
node -e 'const a=JSON.parse(require("fs").readFileSync(process.argv[1]));
	const o=a.find(x=>x.id===process.argv[2]), n=a.find(x=>x.id!==process.argv[2]);
	process.exit(o.status==="grace" && o.rotated_to===n.id && n.rotated_from===o.id &&
	n.routes.join()==="chat" && n.tags.team==="infra" && n.status==="active" ? 0 : 1)' \
	"$T/out" "$LC_TWO" && ok || bad "rotate links both records, old shows grace, routes inherited"
run "$K" -c "$LC" --now $((NOW + 7200)) key list --all --owner ann
expect_out "$LC_TWO .* expired " "grace ends in expired"
run "$K" -c "$LC" --now $NOW key rotate "$LC_TWO" --route nosuch; expect_rc 2 "rotate to an unknown route"

# ---- bulk revoke ----
cp "$T/lc/keys.db" "$T/lc.before"
run "$K" -c "$LC" --now $((NOW + 60)) key revoke --owner bob
expect_rc 1 "bulk revoke without --yes"
expect_err "re-run with --yes to revoke 2 keys" "bulk revoke says how many"
same_store "bulk revoke without --yes"
run "$K" -c "$LC" --now $((NOW + 60)) key revoke --owner bob --yes
expect_rc 0 "bulk revoke --yes"; expect_out "revoked 2 keys" "bulk revoke prints the count"
run "$K" -c "$LC" --now $((NOW + 60)) key list --owner bob --json
[ "$(grep -o '"id":' "$T/out" | wc -l)" -eq 0 ] && ok || bad "bob's keys are revoked"
run "$K" -c "$LC" --now $((NOW + 60)) key revoke --tag team=infra --yes
expect_rc 0 "bulk revoke by tag"; expect_out "revoked 2 keys" "the rotated pair had the tag"

# ---- purge ----
N0=$(count_keys "$LC")
run "$K" -c "$LC" --now $((NOW + 10 * DAY)) key purge --older-than 90d
expect_rc 0 "purge, nothing old enough"; expect_out "purged 0 key records" "nothing purged"
run "$K" -c "$LC" --now $((NOW + 100 * DAY)) key purge --older-than 90d --dry-run
expect_rc 0 "purge --dry-run"; expect_out "would purge $N0 key records" "dry run counts"
[ "$(count_keys "$LC")" -eq "$N0" ] && ok || bad "dry run removes nothing"
run "$K" -c "$LC" --now $((NOW + 100 * DAY)) key create --route openai --days 30
expect_rc 0 "an active key"
run "$K" -c "$LC" --now $((NOW + 100 * DAY)) key purge --older-than 90d
expect_rc 0 "purge"; expect_out "purged $N0 key records" "purge removes the old records"
[ "$(count_keys "$LC")" -eq 1 ] && ok || bad "the active key stays"

# ---- purge and bulk revoke under 20 concurrent writers ----
CC=$T/cc.conf; mkdir -p "$T/cc"; write_conf "$CC" "$T/cc/keys.db"
for i in $(seq 1 10); do
	bounded "$K" -c "$CC" --now $NOW key create --route openai --owner old --days 1 >/dev/null 2>&1
	bounded "$K" -c "$CC" --now $NOW key create --route openai --owner victim --days 365 >/dev/null 2>&1
done
bounded "$K" -c "$CC" --now $NOW key revoke --owner old --yes >/dev/null 2>&1
WPIDS=()
for w in $(seq 1 20); do
	( for i in 1 2 3; do
		bounded "$K" -c "$CC" --now $((NOW + 100 * DAY)) key create --route mistral \
			--owner "w$w" --tag "n=$i" >/dev/null 2>"$T/cc/w$w.err" || echo fail >>"$T/cc/w$w.fail"
	done ) &
	WPIDS+=($!)
done
run "$K" -c "$CC" --now $((NOW + 100 * DAY)) key purge --older-than 90d
expect_rc 0 "purge under concurrent writers"; expect_out "purged 10 key records" "purge removed exactly the old keys"
run "$K" -c "$CC" --now $((NOW + 100 * DAY)) key revoke --owner victim --yes
expect_rc 0 "bulk revoke under concurrent writers"; expect_out "revoked 10 keys" "bulk revoke hit exactly the victims"
for p in "${WPIDS[@]}"; do wait "$p"; done
ls "$T"/cc/*.fail >/dev/null 2>&1 && bad "a concurrent create failed" || ok
run "$K" -c "$CC" --now $((NOW + 100 * DAY)) key list --all --json
node -e 'const a=JSON.parse(require("fs").readFileSync(process.argv[1]));
	const w=a.filter(x=>/^w\d+$/.test(x.owner)), v=a.filter(x=>x.owner==="victim");
	const ok = w.length===60 && w.every(x=>x.status==="active") && v.length===10 &&
	  v.every(x=>x.status==="revoked") && !a.some(x=>x.owner==="old");
	process.exit(ok?0:1)' "$T/out" && ok || bad "after concurrency: 60 new keys active, 10 victims revoked, old ones gone"
