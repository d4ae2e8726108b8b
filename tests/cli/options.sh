# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/cli/options.sh, sourced by run.sh: --help and usage errors of every
# command, the common options (-c FILE, KEYAUTH_CONF) and stats, against a
# running keyauthd when $KD is built.

# ---- help and usage ---------------------------------------------------------------

for cmd in "" "key" "key create" "key list" "key revoke" "key rotate" "key import" \
           "key verify" "key set" "key purge" "haproxy" "deploy" "stats" "audit"; do
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
            "key set" "key purge" "haproxy" "deploy" "stats" "audit"; do
	expect_out "^  $name " "'keyauthctl --help' lists '$name'"
done
expect_out "--version" "'keyauthctl --help' shows --version"

# --help and --version, long and short, on both programs (issue #21).
for opt in --version -V; do
	run "$K" $opt; expect_rc 0 "keyauthctl $opt"
	expect_out "^keyauthctl [0-9]+\.[0-9]+\.[0-9]+$" "keyauthctl $opt prints the version"
done
if [ -x "$KD" ]; then
	for opt in --help -h; do
		run "$KD" $opt; expect_rc 0 "keyauthd $opt"
		expect_out "--version" "keyauthd $opt lists --version"
		expect_out "example" "keyauthd $opt shows an example"
	done
	for opt in --version -V; do
		run "$KD" $opt; expect_rc 0 "keyauthd $opt"
		expect_out "^keyauthd [0-9]+\.[0-9]+\.[0-9]+$" "keyauthd $opt prints the version"
	done
	run "$K" --version; v1=$(sed 's/.* //' "$T/out")
	run "$KD" --version
	if [ "$(sed 's/.* //' "$T/out")" = "$v1" ]; then ok; else bad "both programs print one version"; fi
	run "$KD" --bogus; expect_rc 2 "keyauthd: an unknown option is a usage error"
	run "$KD" --test --config "$T/nope.conf"; expect_rc 1 "keyauthd --test --config FILE loads FILE"
	expect_err "nope.conf" "keyauthd --config FILE names FILE"
fi
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

# ---- stats from a running keyauthd --------------------------------------------------------
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
	# The file backend shows no Redis change-feed counters (issue #21).
	if grep -qE '"(age_s|connected|disconnects|resyncs|resyncs_skipped|records_skipped|stale|outages)":' "$T/out"
	then bad "stats --json: no Redis-only store counters for the file backend"; else ok; fi
	if grep -q '"backend":"file"' "$T/out" && grep -q '"loads_ok":' "$T/out"; then ok; else
		bad "stats --json keeps the file backend's store counters"; fi
	run "$K" -c "$T/stats.conf" stats; expect_rc 0 "stats, plain, again"
	if grep -qE '^store\.(age_s|connected|disconnects|resyncs|resyncs_skipped|records_skipped|stale|outages) ' "$T/out"
	then bad "stats: no Redis-only store counters for the file backend"; else ok; fi
	expect_out "^store.backend file$" "stats names the file backend"
	expect_out "^store.loads_ok [0-9]+$" "stats keeps the file store's load counters"
	# ---- every log line is logfmt, whatever the input (issue #21) ----
	# A reload with quotes and backslashes in what reaches the log: an
	# unknown setting, a bad route name.
	cp "$T/stats.conf" "$T/stats.good"
	grep -v '^routes' "$T/stats.good" >"$T/stats.conf"
	cat >>"$T/stats.conf" <<'EOF'
upstrem = "x";
routes = ( { name = "a\"b\\c\tq"; context = "/q\"uote"; } );
EOF
	kill -HUP "$SAG"
	for _ in $(seq 1 100); do grep -q 'event=reload result=rejected' "$T/stats/agent.log" && break; sleep 0.05; done
	expect_log_grep 'event=reload_rejected error=.*upstrem' "$T/stats/agent.log" "a rejected reload names the unknown setting"
	expect_log_grep 'event=reload_rejected error=.*bad route name \\"a\\"b\\\\c' "$T/stats/agent.log" \
		"a quote and a backslash in a logged value are escaped"
	cp "$T/stats.good" "$T/stats.conf"
	# stats as a user without permission on the control socket (issue #21):
	# the socket's owner and mode, not "is it running?". $T is opened to
	# search only (0711) while this runs.
	if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
		chmod 0711 "$T"
		chmod 0755 "$T/stats"
		chmod 0644 "$T/stats.conf"
		SMODE=$(stat -c %04a "$T/stats/control.sock")
		run setpriv --reuid=65534 --regid=65534 --clear-groups "$K" -c "$T/stats.conf" stats
		expect_rc 1 "stats as nobody without permission on the socket"
		expect_err "no permission to connect to keyauthd's control socket $T/stats/control.sock: it is owned by root, mode $SMODE: run as root, e\\.g\\. runuser -u root -- keyauthctl stats" \
			"stats names the control socket's owner and mode"
		if grep -q "is it running" "$T/err"; then bad "stats does not ask whether keyauthd runs"; else ok; fi
		if [ ! -s "$T/out" ]; then ok; else bad "a denied stats prints nothing on stdout"; fi
		chmod 0600 "$T/stats.conf"
		chmod 0700 "$T"
	else
		bad "stats as nobody: needs root and setpriv"
	fi
	stop_pid "$SAG"
	run "$K" -c "$T/stats.conf" stats; expect_rc 1 "stats with the agent stopped"
	expect_err "cannot reach keyauthd" "stats says the agent is not reachable"
	# A store path with a quote, a space and a backslash (logged as where=).
	WD="$T/we\"ird d\\ir"
	mkdir -p "$WD"
	WDC=$(printf '%s' "$WD" | sed 's/[\\"]/\\&/g')
	grep -v '^store = ' "$T/stats.good" >"$T/weird.conf"
	printf 'store = { path = "%s/keys.db"; };\n' "$WDC" >>"$T/weird.conf"
	"$KD" -c "$T/weird.conf" 2>"$T/stats/weird.log" &
	WAG=$!
	PIDS+=("$WAG")
	for _ in $(seq 1 100); do grep -q 'event=started' "$T/stats/weird.log" && break; sleep 0.05; done
	stop_pid "$WAG"
	expect_log_grep 'event=store_loaded where="' "$T/stats/weird.log" "a path with a space is quoted"
	if logfmt_ok "$T/stats/agent.log" "$T/stats/weird.log"; then ok; else bad "every keyauthd log line is logfmt"; fi
	if grep -qE 'ka_[A-Za-z0-9]{20,}' "$T/stats/agent.log" "$T/stats/weird.log"; then
		bad "a key reached keyauthd's log"
	else ok; fi
fi
