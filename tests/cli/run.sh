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

T=$(mktemp -d "${TMPDIR:-/tmp}/keyauthctl-test.XXXXXX")
umask 077
PIDS=()
CMD_TIMEOUT=${CLI_CMD_TIMEOUT:-60}

# gone PID: the process has exited (a zombie counts as gone).
gone() {
	! kill -0 "$1" 2>/dev/null || [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ]
}
# stop_pid PID: SIGTERM, SIGKILL if it is still running 5 s later, then reap.
stop_pid() {
	local p=$1 i
	kill "$p" 2>/dev/null
	for i in $(seq 1 100); do gone "$p" && break; sleep 0.05; done
	if ! gone "$p"; then
		echo "run.sh: pid $p still running 5 s after SIGTERM: SIGKILL" >&2
		kill -9 "$p" 2>/dev/null
	fi
	wait "$p" 2>/dev/null
	return 0
}
cleanup() {
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	[ -d "$T/immutable" ] && chattr -i "$T/immutable" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $1" >&2
	if [ -s "$T/err" ]; then sed 's/^/    stderr: /' "$T/err" | head -n 8 >&2; fi
}

# bounded CMD...: CMD under timeout(1); says so on stderr when it timed out.
bounded() {
	local r
	timeout -k 5 "$CMD_TIMEOUT" "$@"
	r=$?
	if [ "$r" -eq 124 ] || [ "$r" -eq 137 ]; then
		echo "run.sh: timed out after $CMD_TIMEOUT s: ${*:1:4}" >&2
	fi
	return "$r"
}
# run CMD...: stdout -> $T/out, stderr -> $T/err, status -> $rc.
run() { bounded "$@" >"$T/out" 2>"$T/err"; rc=$?; }
# run_in INPUTFILE CMD...: the same with stdin from a file.
run_in() { local in=$1; shift; bounded "$@" <"$in" >"$T/out" 2>"$T/err"; rc=$?; }
expect_rc() { if [ "$rc" -eq "$1" ]; then ok; else bad "$2 (exit $rc, want $1)"; fi; }
expect_err() { if grep -qiE -- "$1" "$T/err"; then ok; else bad "$2 (stderr lacks /$1/)"; fi; }
expect_out() { if grep -qE -- "$1" "$T/out"; then ok; else bad "$2 (stdout lacks /$1/)"; fi; }
count_keys() { bounded "$K" -c "$1" key list --all --json 2>/dev/null | grep -o '"id":' | wc -l; }
# json_ok FILE: FILE is one JSON value. Fails (never passes vacuously) when
# node is missing.
json_ok() {
	if ! command -v node >/dev/null 2>&1; then
		echo "run.sh: node not found: cannot check JSON (make deps installs it)" >&2
		return 1
	fi
	node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$1" 2>/dev/null
}
# key_file NAME: a 0600 file holding the key from $T/out (a create/rotate).
key_file() { head -n 1 "$T/out" | tr -d '\n' >"$T/$1"; }
verify() { # verify CONF ROUTE KEYFILE [--now N]
	local conf=$1 route=$2 kf=$3; shift 3
	run_in "$kf" "$K" -c "$conf" key verify --route "$route" "$@"
}

free_port() {
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});' \
		2>/dev/null || echo $((20000 + RANDOM % 20000))
}

AGENT_PORT=$(free_port)
write_conf() { # write_conf FILE STOREPATH
	cat >"$1" <<EOF
listen = [ "127.0.0.1:$AGENT_PORT" ];
store = { path = "$2"; };
pid_file = "$T/keyauthd.pid";
routes = (
	{ name = "openai"; context = "/openai"; upstream = "127.0.0.1:9";
	  security = { key_name = "Authorization"; key_location = "header"; }; },
	{ name = "mistral"; context = "/mistral"; upstream = "127.0.0.1:9"; },
	{ name = "chat"; type = "proxy"; context = "/apps/chat"; upstream = "127.0.0.1:9";
	  security = { key_name = "api_key"; key_location = "query"; }; }
);
EOF
}
mkdir -p "$T/store"
C=$T/k.conf
write_conf "$C" "$T/store/keys.db"

# ---- help and usage ---------------------------------------------------------------

for cmd in "" "key" "key create" "key list" "key revoke" "key rotate" "key import" \
           "key verify" "key set" "haproxy" "deploy" "stats"; do
	# shellcheck disable=SC2086
	run "$K" $cmd --help
	expect_rc 0 "'keyauthctl $cmd --help'"
	expect_out "example" "'keyauthctl $cmd --help' shows an example"
done
run "$K";                      expect_rc 2 "no command is a usage error"
run "$K" frobnicate;           expect_rc 2 "unknown command is a usage error"
run "$K" -c "$C" key create;   expect_rc 2 "key create without --route"
run "$K" -c "$C" key create --route openai --bogus; expect_rc 2 "unknown option"
run "$K" -c "$T/nope.conf" key list; expect_rc 1 "missing config file"
expect_err "nope.conf" "missing config is named"
run env KEYAUTH_CONF="$C" "$K" key list; expect_rc 0 "KEYAUTH_CONF selects the config"
run "$K" -c "$C" stats;        expect_rc 1 "stats without a control socket fails"
expect_err "control_socket" "stats says which setting is missing"

# One command table: 'keyauthctl --help' names every command, and every
# command takes the common options after its name too (stats once refused
# -c there with exit 2).
run "$K" --help
for name in "key create" "key list" "key revoke" "key rotate" "key import" "key verify" \
            "key set" "haproxy" "deploy" "stats"; do
	expect_out "^  $name " "'keyauthctl --help' lists '$name'"
done
for args in "key create --route openai" "key list" "key revoke AAAAAAAAAAAA" \
            "key rotate AAAAAAAAAAAA" "key import --route openai" "key verify --route openai" \
            "key set AAAAAAAAAAAA --rpm 1" "haproxy" "deploy --haproxy-dir $T" "stats"; do
	# shellcheck disable=SC2086
	run "$K" $args -c "$T/nope.conf" </dev/null
	expect_rc 1 "'keyauthctl $args -c FILE' loads FILE"
	expect_err "nope.conf" "'keyauthctl $args -c FILE' names FILE"
done
run "$K" stats -c "$C";        expect_rc 1 "stats -c FILE: as stats with that config"
expect_err "control_socket" "stats -c FILE reads FILE"
run "$K" stats --config="$C" --json; expect_rc 1 "stats --config=FILE --json"
run "$K" stats --bogus;        expect_rc 2 "stats: unknown option is a usage error"
run "$K" stats extra;          expect_rc 2 "stats: an argument is a usage error"

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

run "$K" -c "$C" key create --route nosuch;  expect_rc 1 "unknown route"
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
expect_out "^ID +ROUTE +OWNER +CREATED +EXPIRES +STATUS" "list has a header"
expect_out "alice .* active +-$" "list shows alice's key as active (no rpm: -)"
if grep -q "dated" "$T/out"; then bad "list hides expired keys by default"; else ok; fi
run "$K" -c "$C" key list --all
expect_out "dated .* expired +-$" "list --all shows the expired key"
run "$K" -c "$C" key list --route mistral --json
if json_ok "$T/out" && ! grep -q '"route":"openai"' "$T/out" && grep -q '"route":"mistral"' "$T/out"
then ok; else bad "list --route filters"; fi
run "$K" -c "$C" key list --all --json
KEYHEX=$(tr -d '\n' <"$T/k_alice" | sha256sum | cut -c1-64)
if grep -qF -f "$T/k_alice" "$T/out" || grep -qi "$KEYHEX" "$T/out" || grep -qi '"key"\|digest' "$T/out"
then bad "list shows a key or digest"; else ok; fi
ALICE_ID=$(grep -o '"id":"[A-Za-z0-9]*","route":"openai","owner":"alice"' "$T/out" | cut -d'"' -f4)

# ---- key revoke -------------------------------------------------------------------

run "$K" -c "$C" key revoke AAAAAAAAAAAA;  expect_rc 1 "revoke an unknown id"
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
run "$K" -c "$C" key list --all;           expect_out "victim .* revoked +-$" "list --all shows revoked"

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
run "$K" -c "$C" key rotate "$VICTIM_ID";  expect_rc 1 "rotating a revoked key"
run "$K" -c "$C" key rotate AAAAAAAAAAAA;  expect_rc 1 "rotating an unknown id"
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
expect_rc 1 "import a duplicate"
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
run_in "$T/imp" "$K" -c "$C" key import --route nosuch; expect_rc 1 "import to an unknown route"
run_in "$T/imp" "$K" -c "$C" key import --route chat sk-inargv; expect_rc 2 "import refuses argv"
printf 'anotherforeignkey_0123456789\n' >"$T/imp2"
run_in "$T/imp2" "$K" -c "$C" key import --route chat --json
if [ "$rc" -eq 0 ] && json_ok "$T/out" && ! grep -q '"key"' "$T/out"; then ok; else bad "import --json"; fi

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

# ---- haproxy rendering --------------------------------------------------------------------

mkdir -p "$T/hap"
run "$K" -c "$C" haproxy --out "$T/hap" --bind 127.0.0.1:18080
expect_rc 0 "haproxy --out"
S=$T/hap/keyauth-spoe.conf
H=$T/hap/haproxy-keyauth.cfg
for pat in "option var-prefix keyauth" "option set-on-error err" "no option send-frag-payload" \
           "timeout hello" "timeout idle" "timeout processing 500ms" "use-backend keyauth_agents" \
           "spoe-message keyauth-openai" "key=req.fhdr\(Authorization\)" "key=req.fhdr\(X-API-Key\)" \
           "key=url_param\(api_key\)" "route=str\(chat\)" "event on-frontend-http-request if keyauth_ctx"; do
	if grep -qE -- "$pat" "$S"; then ok; else bad "SPOE file has /$pat/"; fi
done
for pat in "filter spoe engine keyauth config $S" "option spop-check" "mode tcp" \
           "server agent1 127.0.0.1:$AGENT_PORT check inter 2s" "return status 404" \
           "return status 503 .* if \{ var\(txn.keyauth.err\) -m found \}" "unknown_route" \
           "return status 401 .*WWW-Authenticate 'Bearer realm=\"keyauth\"'" "return status 403" \
           "deny deny_status 503 unless \{ var\(txn.keyauth.ok\) -m bool \}" \
           "del-header Authorization" "del-header X-API-Key" "set-query" "%HP" \
           "use_backend be_openai" "backend be_chat" "env\(KEYAUTH_OPENAI_CREDENTIAL\)"; do
	if grep -qE -- "$pat" "$H"; then ok; else bad "haproxy.cfg has /$pat/"; fi
done
if grep -vE '^ *#' "$H" | grep -qE '%r([^a-z]|$)|%\{[^}]*\}r([^a-z]|$)|%HU|option httplog'; then
	bad "log format must not record the query string"; else ok; fi
if node - "$H" <<'JS'
const text = require('fs').readFileSync(process.argv[2], 'utf8');
const bodies = [...text.matchAll(/(?:string|lf-string) '([^']*)'/g)].map((m) => m[1]);
if (bodies.length < 6)
	throw new Error(`only ${bodies.length} bodies`);
for (const b of bodies) {
	// Any message, quotes included, in place of each %[...].
	const e = JSON.parse(b.replace(/%\[[^\]]*\]/g, 'x\\"y')).error;
	if (Object.keys(e).sort().join() !== 'code,message,param,type')
		throw new Error(`error members: ${Object.keys(e)}`);
}
JS
then ok; else bad "every JSON body is valid OpenAI-style JSON"; fi
run "$K" -c "$C" haproxy
expect_rc 0 "haproxy to stdout"
expect_out "^# ---- keyauth-spoe.conf" "stdout rendering has both files"
run "$K" -c "$C" haproxy --haproxy-version 9.9; expect_rc 2 "bad --haproxy-version"
run "$K" -c "$C" haproxy --bind '1.2.3.4:80 ssl crt /x'; expect_rc 2 "--bind cannot inject"
mkdir -p "$T/hap32"
run "$K" -c "$C" haproxy --out "$T/hap32" --haproxy-version 3.2
expect_rc 0 "haproxy --haproxy-version 3.2"
if grep -v '^ *#' "$T/hap32/keyauth-spoe.conf" | grep -q "send-frag-payload\|timeout hello"; then
	bad "3.2 rendering drops 2.6-only directives"; else ok; fi

HAPROXY=$(command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; })
if [ -n "$HAPROXY" ]; then
	run "$HAPROXY" -c -f "$H"
	expect_rc 0 "haproxy -c accepts the rendered config"
	if grep -q "WARNING\|ALERT" "$T/out" "$T/err"; then bad "haproxy -c warns"; cat "$T/out" "$T/err" >&2; else ok; fi
	run "$HAPROXY" -c -f "$T/hap32/haproxy-keyauth.cfg"
	expect_rc 0 "haproxy -c accepts the 3.2 rendering (parsed by 2.6)"
	# A config with unix and IPv6 listeners, a root route and nested contexts.
	cat >"$T/k2.conf" <<EOF
listen = [ "127.0.0.1:$AGENT_PORT", "[::1]:$AGENT_PORT", "unix:$T/agent.sock" ];
store = { path = "$T/store/keys.db"; };
routes = (
	{ name = "root"; context = "/"; upstream = "[::1]:9"; },
	{ name = "a"; context = "/a"; upstream = "127.0.0.1:443"; },
	{ name = "a-b"; context = "/a/b"; security = { key_name = "key"; key_location = "query"; }; }
);
EOF
	mkdir -p "$T/hap2"
	run "$K" -c "$T/k2.conf" haproxy --out "$T/hap2"
	expect_rc 0 "render nested contexts, unix and IPv6 agents"
	run "$HAPROXY" -c -f "$T/hap2/haproxy-keyauth.cfg"
	expect_rc 0 "haproxy -c accepts nested/unix/IPv6 rendering"
	if grep -q "acl keyauth_sub path_beg /a/b/" "$T/hap2/keyauth-spoe.conf"; then ok
	else bad "a parent route's message excludes the nested route"; fi

	# Fail closed for real: HAProxy with the rendered config and no agent.
	if command -v curl >/dev/null 2>&1; then
		FP=$(free_port)
		mkdir -p "$T/live"
		bounded "$K" -c "$C" haproxy --out "$T/live" --bind "127.0.0.1:$FP" >/dev/null 2>&1
		"$HAPROXY" -db -f "$T/live/haproxy-keyauth.cfg" >"$T/live/log" 2>&1 &
		HP_PID=$!
		PIDS+=("$HP_PID")
		up=0
		for _ in $(seq 1 100); do
			if curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$FP/"; then up=1; break; fi
			sleep 0.05
		done
		if [ "$up" -eq 1 ]; then
			code=$(curl -s --max-time 10 -o "$T/live/body" -w '%{http_code}' "http://127.0.0.1:$FP/nowhere")
			if [ "$code" = 404 ] && json_ok "$T/live/body"; then ok; else bad "path under no route: 404 JSON (got $code)"; fi
			code=$(curl -s --max-time 10 -o "$T/live/body" -w '%{http_code}' -H "Authorization: Bearer ka_x" \
			       "http://127.0.0.1:$FP/openai/v1/models")
			if [ "$code" = 503 ] && json_ok "$T/live/body"; then ok; else bad "agent down: 503 JSON (got $code)"; fi
			code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FP/apps/chat?api_key=ka_secretvalue&x=1")
			if [ "$code" = 503 ]; then ok; else bad "agent down on a query route: 503 (got $code)"; fi
			if grep -q "secretvalue" "$T/live/log"; then bad "query key in the HAProxy log"; else ok; fi
		else
			bad "haproxy with the rendered config did not answer on 127.0.0.1:$FP within 5 s"
		fi
		stop_pid "$HP_PID"
	fi
else
	echo "run.sh: haproxy not installed; haproxy -c checks skipped" >&2
fi

# ---- deploy -------------------------------------------------------------------------------

mkdir -p "$T/deploy"
BADC=$T/bad.conf
printf 'routes = ( { name = "x"; context = "nope"; } );\nthis is not libconfig\n' >"$BADC"
run "$K" -c "$BADC" deploy --haproxy-dir "$T/deploy"
expect_rc 1 "deploy with an invalid config"
if [ -z "$(ls -A "$T/deploy")" ]; then ok; else bad "invalid config: nothing is written"; fi
run "$K" -c "$C" deploy --haproxy-dir "$T/nonexistent"; expect_rc 1 "deploy into a missing directory"

run "$K" -c "$C" deploy --haproxy-dir "$T/deploy"
expect_rc 0 "deploy"
expect_out "keyauth-spoe.conf: changed" "first deploy changes the SPOE file"
expect_out "haproxy-keyauth.cfg: changed" "first deploy changes haproxy.cfg"
expect_err "keyauthd.pid does not exist" "missing pid file is a warning"
if [ -n "$HAPROXY" ]; then expect_out "haproxy -c: ok" "deploy ran haproxy -c"; fi
if [ -n "$HAPROXY" ] && "$HAPROXY" -c -f "$T/deploy/haproxy-keyauth.cfg" >/dev/null 2>&1; then ok
elif [ -z "$HAPROXY" ]; then ok; else bad "deployed config is valid"; fi
cp "$T/deploy/haproxy-keyauth.cfg" "$T/deployed.orig"

# Invalid config after a good deploy: the deployed files are kept as they are.
run "$K" -c "$BADC" deploy --haproxy-dir "$T/deploy"
expect_rc 1 "deploy an invalid config over a good one"
if cmp -s "$T/deploy/haproxy-keyauth.cfg" "$T/deployed.orig"; then ok; else bad "old files kept"; fi

# Provider settings HAProxy cannot honour (issue 16): keyauthd -t names FILE:LINE
# and the fix, and deploy writes nothing.
for bad in 'provider = "openia";' 'security = { carriers = [ "" ]; };' \
           'security = { carriers = [ "bearer", "header:authorization" ]; };' \
           'security = { carriers = [ "header:X API" ]; };' 'upstream_auth = "basic";'; do
	printf 'store = { path = "%s"; };\nroutes = (\n { name = "p"; context = "/p";\n   %s }\n);\n' \
		"$T/store/keys.db" "$bad" >"$T/prov.conf"
	run "${KEYAUTHD:-$(dirname "$K")/keyauthd}" -t -c "$T/prov.conf"
	expect_rc 1 "keyauthd -t: $bad"
	expect_err "prov.conf:4: " "keyauthd -t names the line: $bad"
	cp "$T/deploy/haproxy-keyauth.cfg" "$T/before.cfg"
	run "$K" -c "$T/prov.conf" deploy --haproxy-dir "$T/deploy"
	expect_rc 1 "deploy refuses: $bad"
	if cmp -s "$T/deploy/haproxy-keyauth.cfg" "$T/before.cfg"; then ok; else bad "deploy wrote despite: $bad"; fi
done

# HAProxy rejecting the files: nothing is written.
printf '#!/bin/sh\necho "[ALERT] fake haproxy says no"\nexit 1\n' >"$T/fakehaproxy"
chmod 0755 "$T/fakehaproxy"
write_conf "$T/k3.conf" "$T/store/keys.db"
sed -i 's|"/mistral"|"/mistral2"|' "$T/k3.conf"
run "$K" -c "$T/k3.conf" deploy --haproxy-dir "$T/deploy" --haproxy "$T/fakehaproxy"
expect_rc 1 "deploy when haproxy -c fails"
expect_err "fake haproxy says no" "haproxy's complaint is shown"
if cmp -s "$T/deploy/haproxy-keyauth.cfg" "$T/deployed.orig" && ! ls -A "$T/deploy" | grep -q '^\.'
then ok; else bad "haproxy -c failure writes nothing"; fi

# Agent signalled through the pid file; the reload command runs.
mkdir -p "$T/bin"
cp "$(command -v sleep)" "$T/bin/keyauthd"
"$T/bin/keyauthd" 60 &
AG=$!
disown "$AG"   # its death by SIGHUP is the expected outcome; no job notice
PIDS+=("$AG")
echo "$AG" >"$T/keyauthd.pid"
run "$K" -c "$C" deploy --haproxy-dir "$T/deploy" --reload-haproxy "touch '$T/reloaded'"
expect_rc 0 "deploy again"
expect_out "keyauth-spoe.conf: unchanged" "unchanged files are reported"
expect_out "signalled pid $AG" "agent signalled"
if [ -e "$T/reloaded" ]; then ok; else bad "reload command ran"; fi
gone=0
for _ in $(seq 1 100); do
	if ! kill -0 "$AG" 2>/dev/null; then gone=1; break; fi
	sleep 0.05
done
if [ "$gone" -eq 1 ]; then ok; else bad "the agent (pid $AG) still runs 5 s after deploy should have sent it SIGHUP"; fi

# A pid file naming another program: not signalled.
sleep 60 &
OTHER=$!
PIDS+=("$OTHER")
echo "$OTHER" >"$T/keyauthd.pid"
run "$K" -c "$C" deploy --haproxy-dir "$T/deploy" --json
expect_rc 0 "deploy --json"
if json_ok "$T/out" && grep -q '"signalled":false' "$T/out"; then ok; else bad "deploy --json report"; fi
expect_err "not keyauthd" "a foreign pid is not signalled"
if kill -0 "$OTHER" 2>/dev/null; then ok; else bad "the foreign process is untouched"; fi
stop_pid "$OTHER"
rm -f "$T/keyauthd.pid"
run "$K" -c "$C" deploy --haproxy-dir "$T/deploy" --reload-haproxy "exit 3"
expect_rc 1 "a failing reload command fails the deploy"

# ---- rate limits (--rpm, key set, route default) ------------------------------------

run "$K" -c "$C" key create --route openai --owner rl60 --rpm 60
expect_rc 0 "create --rpm 60"
key_file k_rl60
RL_ID=$(sed -n 's/^Key id: *//p' "$T/err")
expect_err "^RPM: +60$" "create prints the rpm"
run "$K" -c "$C" key list
expect_out "^ID +ROUTE +OWNER +CREATED +EXPIRES +STATUS +RPM$" "list has an RPM column"
expect_out "^$RL_ID .* rl60 .* active +60$" "list shows the rpm"
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
run "$K" -c "$C" key set AAAAAAAAAAAA --rpm 5;    expect_rc 1 "key set on an unknown id"
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

# Rendering: the stick table, the 429 rule, peers.
run "$K" -c "$T/rl.conf" haproxy; expect_rc 0 "render with a rate limit"
expect_out "^    http-request track-sc0 var\(txn.keyauth.key_id\) table keyauth_rate if \{ var\(txn.keyauth.ok\) -m bool \} \{ var\(txn.keyauth.rpm\) -m found \}$" "track-sc0 on the key id, allowed and limited only"
expect_out "http-request return status 429 .*rate_limit_error.*rate_limit_exceeded.* hdr Retry-After [0-9]+ if" "429 with an OpenAI-style error and Retry-After"
expect_out "stick-table type string len 16 size [0-9]+[km]? expire [0-9]+[smh] store gpc0_rate\(60s\)$" "stick table without peers"
expect_out "^    http-request sc-inc-gpc0\(0\) if \{ var\(txn.keyauth.rpm\) -m found \}$" "only admitted requests are counted"
if grep -q '^peers' "$T/out"; then bad "no peers section without haproxy_peers"; else ok; fi
cat >"$T/rlp.conf" <<EOF
store = { path = "$T/rl-keys.db"; };
routes = ( { name = "capped"; context = "/capped"; } );
haproxy_peers = ( { name = "lb1"; address = "127.0.0.1:10000"; }, { name = "lb2"; address = "[::1]:10001"; } );
haproxy_local_peer = "lb2";
EOF
run "$K" -c "$T/rlp.conf" haproxy; expect_rc 0 "render with peers"
expect_out "^peers keyauth_peers$" "peers section"
expect_out "^    peer lb2 \[::1\]:10001$" "peer lines"
expect_out "^    localpeer lb2$" "localpeer from haproxy_local_peer"
expect_out "store gpc0_rate\(60s\) peers keyauth_peers$" "the table is shared with the peers"
HAP=$(command -v haproxy || echo /usr/sbin/haproxy)
if [ -x "$HAP" ]; then
	mkdir -p "$T/rlp"
	run "$K" -c "$T/rlp.conf" haproxy --out "$T/rlp"
	run "$HAP" -c -f "$T/rlp/haproxy-keyauth.cfg"; expect_rc 0 "haproxy -c accepts the peers rendering"
fi

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

# ---- stats from a running keyauthd --------------------------------------------------------
KD=${KEYAUTHD:-$(dirname "$K")/keyauthd}
if [ -x "$KD" ]; then
	mkdir -p "$T/stats"
	cat >"$T/stats.conf" <<EOF
listen = [ "unix:$T/stats/agent.sock" ];
workers = 1;
control_socket = "$T/stats/control.sock";
store = { path = "$T/stats/keys.db"; };
routes = ( { name = "openai"; context = "/openai"; } );
EOF
	run "$K" -c "$T/stats.conf" key create --route openai; expect_rc 0 "stats: create a key"
	"$KD" -c "$T/stats.conf" 2>"$T/stats/agent.log" &
	SAG=$!
	PIDS+=("$SAG")
	up=0
	for _ in $(seq 1 100); do [ -S "$T/stats/control.sock" ] && { up=1; break; }; sleep 0.05; done
	if [ "$up" -eq 1 ]; then ok; else bad "keyauthd's control socket did not appear within 5 s"; fi
	run "$K" -c "$T/stats.conf" stats; expect_rc 0 "stats from a running agent"
	expect_out "^store.keys 1$" "stats shows the key count"
	expect_out "^routes.openai.ok 0$" "stats shows verdicts by route"
	run "$K" stats --json -c "$T/stats.conf"; expect_rc 0 "stats --json -c FILE"
	if json_ok "$T/out" && grep -q '"workers":1' "$T/out"; then ok; else bad "stats --json is JSON"; fi
	stop_pid "$SAG"
	run "$K" -c "$T/stats.conf" stats; expect_rc 1 "stats with the agent stopped"
	expect_err "cannot reach keyauthd" "stats says the agent is not reachable"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
