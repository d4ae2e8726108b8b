# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/audit.sh, sourced by run.sh after store.sh: the audit log of the
# key store (issue 20). One entry per changed key for every command that
# writes (create, revoke, rotate, import, set, purge), with the user, host, command,
# key id and the fields changed; concurrent writers leave one entry each; a
# write that fails leaves none, and an audit log that cannot be trusted or
# opened stops the change; never a key in the log; `keyauthctl audit` and its
# filters; the Redis stream when redis-server is installed.

AU=$T/au
mkdir -p "$AU"
AC=$T/au.conf
write_conf "$AC" "$AU/keys.db"
ALOG=$AU/keys.db.audit

# aj DESC JS: the entries `keyauthctl audit --json` printed into $T/out are
# `e` (an array); JS (statements, the last an expression) must end true.
# Fails when node is missing.
aj() {
	if ! command -v node >/dev/null 2>&1; then bad "$1 (node not found)"; return; fi
	if node -e 'const e = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
		process.exit(eval(process.argv[2]) ? 0 : 1);' "$T/out" "$2" 2>>"$T/err"; then ok
	else bad "$1"; fi
}
audit_json() { run "$K" -c "$AC" audit --json "$@"; }
ME=$(id -un)
HOST=$(hostname)

# ---- one entry per command that writes -----------------------------------------------

run "$K" -c "$AC" key create --route openai --owner ann --rpm 60
expect_rc 0 "audit: create"
key_file au_k1
AID=$(grep -oE 'Key id: +[A-Za-z0-9]{12}' "$T/err" | awk '{print $3}')
if [ -f "$ALOG" ] && [ "$(stat -c %a "$ALOG")" = 600 ]; then ok; else bad "the audit log is beside the store, mode 0600"; fi
audit_json
expect_rc 0 "audit --json"
aj "create: one entry, the key's id, added, owner and rpm, user, host, command" \
   "e.length === 1 && e[0].key_id === '$AID' && e[0].change === 'added' &&
    e[0].fields.owner.old === null && e[0].fields.owner.new === 'ann' &&
    e[0].fields.rpm.new === 60 && e[0].fields.expires.new !== null &&
    e[0].user === '$ME' && e[0].uid === $(id -u) && e[0].host === '$HOST' &&
    e[0].command === 'key create' && e[0].argv.includes('--owner') &&
    e[0].outcome === 'committed' && e[0].route === 'openai' &&
    !('digest' in e[0].fields) && !JSON.stringify(e[0]).includes('digest')"

SUDO_USER=operator1 run "$K" -c "$AC" key revoke "$AID"
expect_rc 0 "audit: revoke"
audit_json --key "$AID"
aj "revoke: a second entry, revoked null -> a time, sudo_user recorded" \
   "e.length === 2 && e[1].change === 'changed' && e[1].command === 'key revoke' &&
    e[1].fields.revoked.old === null && /^\\d{4}-\\d\\d-\\d\\dT/.test(e[1].fields.revoked.new) &&
    Object.keys(e[1].fields).length === 1 && e[1].sudo_user === 'operator1' &&
    e[0].sudo_user === null"

run "$K" -c "$AC" key create --route chat --owner bea
key_file au_k2
RID=$(grep -oE 'Key id: +[A-Za-z0-9]{12}' "$T/err" | awk '{print $3}')
run "$K" -c "$AC" key rotate "$RID" --grace 1h
expect_rc 0 "audit: rotate"
key_file au_k3
audit_json
aj "rotate: the old key's expiry changed and the new key added, two entries" \
   "const r = e.filter(x => x.command === 'key rotate');
    r.length === 2 && r.some(x => x.key_id === '$RID' && x.change === 'changed' &&
                         x.fields.expires.new !== x.fields.expires.old) &&
    r.some(x => x.key_id !== '$RID' && x.change === 'added' && x.fields.owner.new === 'bea')"

printf 'sk-auditimport0123456789abcdefghijkl\n' >"$T/au_imp"
run_in "$T/au_imp" "$K" -c "$AC" key import --route mistral --owner cid
expect_rc 0 "audit: import"
IID=$(head -n 1 "$T/out")
audit_json --key "$IID"
aj "import: one entry, added, owner cid" \
   "e.length === 1 && e[0].change === 'added' && e[0].command === 'key import' &&
    e[0].fields.owner.new === 'cid' && e[0].fields.routes.new === 'mistral'"

run "$K" -c "$AC" key set "$IID" --rpm 120
expect_rc 0 "audit: set --rpm"
audit_json --key "$IID"
aj "set: rpm null -> 120, nothing else" \
   "e.length === 2 && e[1].command === 'key set' && e[1].fields.rpm.old === null &&
    e[1].fields.rpm.new === 120 && Object.keys(e[1].fields).length === 1"

# key purge (when this keyauthctl has it): the revoked key's record removed.
AID_N=2     # entries about $AID: create, revoke (and purge below)
if "$K" key purge --help >/dev/null 2>&1; then
	AID_N=3
	run "$K" -c "$AC" --now $(( $(date +%s) + 2 * 86400 )) key purge --older-than 1d
	expect_rc 0 "audit: key purge"
	audit_json --key "$AID"
	aj "purge: a removed entry, its fields going to null" \
	   "const x = e.at(-1); e.length === 3 && x.command === 'key purge' && x.change === 'removed' &&
	    x.fields.owner.old === 'ann' && x.fields.owner.new === null"
fi

# A command that changes nothing leaves nothing.
n0=$(wc -l <"$ALOG")
run "$K" -c "$AC" key set "$IID" --rpm 120
if [ "$(wc -l <"$ALOG")" -eq "$n0" ]; then ok; else bad "a write that changes nothing leaves no entry"; fi
run "$K" -c "$AC" key revoke AAAAAAAAAAAA
if [ "$(wc -l <"$ALOG")" -eq "$n0" ]; then ok; else bad "a refused command leaves no entry"; fi

# ---- never a key ------------------------------------------------------------------------

leak=0
for f in au_k1 au_k2 au_k3 au_imp; do
	grep -qF -f "$T/$f" "$ALOG" && leak=$((leak + 1))
done
if [ "$leak" -eq 0 ]; then ok; else bad "the audit log holds $leak of the keys"; fi
# A key-like value on the command line (an owner pasted by mistake) is redacted.
run "$K" -c "$AC" key create --route openai --owner "$(cat "$T/au_k1")"
: >"$T/err"     # it names the owner: a failure below must not print it
if [ "$rc" -eq 0 ]; then
	if grep -qF -f "$T/au_k1" "$ALOG"; then bad "a key given as --owner reaches the audit log"; else ok; fi
	if grep -qF '<redacted>' "$ALOG"; then ok; else bad "a key-like argument is redacted"; fi
else
	ok; ok      # refused outright: nothing written either
fi

# ---- keyauthctl audit: plain, filters, errors ----------------------------------------------

run "$K" -c "$AC" audit
expect_rc 0 "audit (plain)"
if [ "$(wc -l <"$T/out")" -eq "$(wc -l <"$ALOG")" ]; then ok; else bad "audit prints one line per entry"; fi
expect_out "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z $ME@$HOST key create $AID added " "plain line: time user@host command id change"
expect_out "$ME\\(sudo:operator1\\)@$HOST key revoke $AID changed revoked: null -> \"" "plain line shows sudo and old -> new"
run "$K" -c "$AC" audit --key "$AID"
if [ "$(wc -l <"$T/out")" -eq "$AID_N" ]; then ok; else bad "audit --key keeps that key's entries"; fi
run "$K" -c "$AC" audit --since 1h --json
aj "audit --since 1h keeps today's entries" "e.length >= 7"
run "$K" -c "$AC" --now 4102444800 audit --since 1d --json   # 2100-01-01
aj "audit --since 1d a century later: none" "e.length === 0"
run "$K" -c "$AC" audit --since 2000-01-01 --json
aj "audit --since DATE" "e.length >= 7"
run "$K" -c "$AC" audit --since yesterday; expect_rc 2 "audit --since junk"
run "$K" -c "$AC" audit --key short;      expect_rc 2 "audit --key not an id"
run "$K" -c "$AC" audit extra;            expect_rc 2 "audit takes no operand"
write_conf "$T/au_empty.conf" "$T/au_none/keys.db"
mkdir -p "$T/au_none"
run "$K" -c "$T/au_empty.conf" audit --json
expect_rc 0 "audit without a log yet"
aj "no log: an empty array" "e.length === 0"

# ---- concurrent writers: one entry each ------------------------------------------------------

mkdir -p "$T/auc"
ACC=$T/auc.conf
write_conf "$ACC" "$T/auc/keys.db"
apids=()
for i in $(seq 1 12); do
	bounded "$K" -c "$ACC" key create --route openai --owner "w$i" >/dev/null 2>&1 &
	apids+=($!)
done
for p in "${apids[@]}"; do wait "$p"; done
run "$K" -c "$ACC" audit --json
aj "twelve concurrent creates: twelve entries, one per owner and id" \
   "e.length === 12 && new Set(e.map(x => x.key_id)).size === 12 &&
    new Set(e.map(x => x.fields.owner.new)).size === 12"
ids_store=$("$K" -c "$ACC" key list --json 2>/dev/null | grep -oE '"id":"[A-Za-z0-9]{12}"' | sort | tr -d '\n')
ids_audit=$(grep -oE '"key_id":"[A-Za-z0-9]{12}"' "$T/auc/keys.db.audit" | sed 's/"key_id"/"id"/' | sort | tr -d '\n')
if [ -n "$ids_store" ] && [ "$ids_store" = "$ids_audit" ]; then ok; else bad "the audit log names exactly the stored ids"; fi

# ---- a write that fails leaves no entry; a log that cannot be used stops the write ---------

mkdir -p "$T/auf"
AFC=$T/auf.conf
write_conf "$AFC" "$T/auf/keys.db"
"$K" -c "$AFC" key create --route openai >/dev/null 2>&1
n0=$(wc -l <"$T/auf/keys.db.audit")
# The file size limit at 0 (SIGXFSZ ignored: write() fails with EFBIG) makes
# the store's temporary file unwritable, for root too; the log, opened
# before the commit, would be writable but must stay untouched.
# stderr goes through a pipe: the limit would stop its writes to $T/err too.
run bash -c 'set -o pipefail; ( trap "" XFSZ; ulimit -f 0; exec "$@" ) 2>&1 >/dev/null | cat >&2' \
	sh "$K" -c "$AFC" key create --route openai
expect_rc 1 "audit: a store that cannot be written"
expect_err "cannot write the key store" "the failed write is the store's"
if [ "$(wc -l <"$T/auf/keys.db.audit")" -eq "$n0" ]; then ok; else bad "a failed write leaves no audit entry"; fi
# An audit log others may write is refused like the store: the change is not made.
chmod 0622 "$T/auf/keys.db.audit"
nk=$(count_keys "$AFC")
run "$K" -c "$AFC" key create --route openai
expect_rc 1 "an audit log writable by others stops the write"
expect_err "refusing the audit log .*writable" "the untrusted audit log is named"
if [ "$(count_keys "$AFC")" -eq "$nk" ]; then ok; else bad "no key made without its audit entry"; fi
run "$K" -c "$AFC" audit
expect_rc 1 "audit refuses to read an untrusted log"
chmod 0600 "$T/auf/keys.db.audit"
# A directory where the log should be: the change is not made either.
mkdir -p "$T/aud"
write_conf "$T/aud.conf" "$T/aud/keys.db"
mkdir "$T/aud/keys.db.audit"
run "$K" -c "$T/aud.conf" key create --route openai
expect_rc 1 "an audit log that cannot be opened stops the write"
if [ ! -e "$T/aud/keys.db" ]; then ok; else bad "no store written without its audit log"; fi

# ---- Redis: the stream <namespace>:audit -------------------------------------------------------

REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}
if [ -x "$REDIS_SERVER" ] && command -v redis-cli >/dev/null 2>&1; then
	RPORT=$(free_port)
	"$REDIS_SERVER" --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$T" >"$T/redis.log" 2>&1 &
	RPID=$!
	PIDS+=("$RPID")
	for _ in $(seq 1 100); do
		redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break
		sleep 0.05
	done
	ARC=$T/aur.conf
	write_conf "$ARC" "$T/unused"
	sed -i "s|^store = .*|store = { backend = \"redis\"; address = \"127.0.0.1:$RPORT\"; namespace = \"aut\"; };|" "$ARC"
	run "$K" -c "$ARC" key create --route openai --owner rita
	expect_rc 0 "audit (redis): create"
	key_file au_rk
	RKID=$(grep -oE 'Key id: +[A-Za-z0-9]{12}' "$T/err" | awk '{print $3}')
	run "$K" -c "$ARC" key revoke "$RKID"
	expect_rc 0 "audit (redis): revoke"
	if [ "$(redis-cli -p "$RPORT" xlen aut:audit)" = 2 ]; then ok; else bad "two entries in the stream aut:audit"; fi
	if redis-cli -p "$RPORT" xinfo stream aut:audit >/dev/null 2>&1; then ok; else bad "aut:audit is a stream"; fi
	run "$K" -c "$ARC" audit --json
	expect_rc 0 "audit --json (redis)"
	aj "redis: create then revoke, user and fields" \
	   "e.length === 2 && e[0].key_id === '$RKID' && e[0].change === 'added' &&
	    e[0].fields.owner.new === 'rita' && e[1].fields.revoked.old === null &&
	    e[0].user === '$ME'"
	run "$K" -c "$ARC" --now 4102444800 audit --since 1d --json
	aj "redis: --since skips old entries" "e.length === 0"
	if redis-cli -p "$RPORT" xrange aut:audit - + | grep -qF -f "$T/au_rk"; then
		bad "the stream holds the key"; else ok; fi
	# Concurrent writers through Redis: one entry each.
	rpids=()
	for i in $(seq 1 8); do
		bounded "$K" -c "$ARC" key create --route openai --owner "r$i" >/dev/null 2>&1 &
		rpids+=($!)
	done
	rfail=0
	for p in "${rpids[@]}"; do wait "$p" || rfail=$((rfail + 1)); done
	if [ "$(redis-cli -p "$RPORT" xlen aut:audit)" = $((10 - rfail)) ]; then ok
	else bad "redis: concurrent creates leave one entry each ($rfail failed)"; fi
	# WAIT for a replica that does not exist: written, outcome uncertain, said so.
	sed "s|namespace = \"aut\";|namespace = \"aut\"; write_replicas = 1; write_timeout_ms = 50;|" "$ARC" >"$T/aurw.conf"
	run "$K" -c "$T/aurw.conf" key create --route openai --owner unsure
	expect_rc 1 "audit (redis): unconfirmed write"
	run "$K" -c "$ARC" audit --json
	aj "redis: the unconfirmed write has its entry, outcome unconfirmed with a note" \
	   "const x = e.at(-1); x.fields.owner.new === 'unsure' && x.outcome === 'unconfirmed' &&
	    typeof x.note === 'string' && x.note.length > 0"
	# Redis down: the change cannot be made, so no entry either.
	stop_pid "$RPID"
	run "$K" -c "$ARC" key create --route openai
	expect_rc 1 "audit (redis): redis down"
else
	echo "run.sh: redis-server or redis-cli not installed; the audit stream checks are skipped" >&2
fi
