#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# scripts/test-repeat.sh [N] [--load]: runs CI (.ci/run, i.e. `make test`) N
# times (default 5), each in a fresh `git clone` of HEAD in a temporary
# directory (uncommitted changes are not in it), one run after the other.
# --load keeps one core busy with a CPU-bound process (started here, stopped
# by its pid at the end) for the whole time.
#
# Logs are kept in ${TEST_REPEAT_DIR:-build/test-repeat/<date>-<commit>}/
# run-<i>.log; each clone is removed after its run (KEEP=1 keeps them).
# Prints each run's result and wall time, then every test that failed at
# least once with the number of runs it failed in, from the logs: cmocka
# "[  FAILED  ] <test>" lines (with the program and the build flavour),
# node:test "✖ <test>" and TAP "not ok <n> - <test>" lines, the shell suites'
# "FAIL" lines, and the suite `make test` stopped at.
#
# Exit status: 0 when every run passed, 1 otherwise, 2 on a usage error.
set -u

usage() { echo "usage: $0 [N] [--load]" >&2; exit 2; }
n=5
load=0
for a in "$@"; do
	case $a in
	--load) load=1 ;;
	''|*[!0-9]*) usage ;;
	*) n=$a ;;
	esac
done
[ "$n" -ge 1 ] || usage

root=$(cd "$(dirname "$0")/.." && pwd)
sha=$(git -C "$root" rev-parse HEAD) || { echo "test-repeat: $root is not a git checkout" >&2; exit 2; }
short=${sha:0:12}
logs=${TEST_REPEAT_DIR:-$root/build/test-repeat/$(date +%Y%m%d-%H%M%S)-$short}
mkdir -p "$logs" || exit 2
work=$(mktemp -d "${TMPDIR:-/tmp}/keyauth-repeat.XXXXXX") || exit 2

burner=
cleanup() {
	if [ -n "$burner" ]; then
		kill "$burner" 2>/dev/null
		wait "$burner" 2>/dev/null
		echo "test-repeat: CPU burner (pid $burner) stopped"
		burner=
	fi
	[ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
	echo "test-repeat: note: the working tree has uncommitted changes; the runs test commit $short only"
fi
echo "test-repeat: $n run(s) of .ci/run on $short$([ "$load" = 1 ] && echo ', one core kept busy'); logs in $logs"

if [ "$load" = 1 ]; then
	# A shell busy loop: one core, no I/O; its pid is the one stopped at the end.
	bash -c 'while :; do :; done' &
	burner=$!
	echo "test-repeat: CPU burner started (pid $burner)"
fi

# failures LOG: one line per distinct failure in LOG (a run counts once).
failures() {
	awk '
	function clean(s) {
		sub(/\r$/, "", s)
		gsub(/\/tmp\/[^ :;,)"'\'']*/, "<tmp>", s)     # temporary paths, ports and pids differ per run
		gsub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:<port>", s)
		gsub(/pid [0-9]+/, "pid <n>", s)
		sub(/ \([0-9.]+m?s\)$/, "", s)                # node:test durations
		return substr(s, 1, 160)
	}
	/^==== [a-z0-9-]+$/ { suite = $2 }
	/^== / { prog = $2; sub(/.*\//, "", prog); flav = ($2 ~ /\/san\//) ? " (san)" : "" }
	/^make test: FAILED: / { s = $4; sub(/;$/, "", s); print "make test stopped at suite " s; next }
	/^\[  FAILED  \] ([A-Za-z_][A-Za-z_0-9]*|GROUP SETUP|GROUP TEARDOWN)$/ {
		print suite ": " prog ": " substr($0, 14) flav; next }
	/^\[  ERROR   \] [^-]/ { print suite ": " prog ": " clean(substr($0, 14)) flav; next }
	/^[ \t]*✖ failing tests:/ { next }
	/^[ \t]*✖ / { s = $0; sub(/^[ \t]*✖ /, "", s); print suite ": " clean(s); next }
	/^[ \t]*not ok [0-9]+ - / { s = $0; sub(/^[ \t]*not ok [0-9]+ - /, "", s); if (s !~ /# (SKIP|TODO)/) print suite ": " clean(s); next }
	/^FAIL:? / { s = $0; sub(/^FAIL:? /, "", s); print suite ": FAIL " clean(s); next }
	' "$1" | sort -u
}

declare -A count=()
results=()
failed_runs=0
for i in $(seq 1 "$n"); do
	src=$work/run-$i
	log=$logs/run-$i.log
	t0=$(date +%s%N)
	{
		echo "test-repeat: run $i of $n, commit $sha, $(date -u +%FT%TZ), load=$load"
		git clone -q --no-checkout "$root" "$src" && git -C "$src" checkout -q --detach "$sha" &&
			(cd "$src" && bash .ci/run)
	} >"$log" 2>&1
	rc=$?
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	secs=$(printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)))
	if [ "$rc" -eq 0 ]; then st=passed; else st="FAILED (exit $rc)"; failed_runs=$((failed_runs + 1)); fi
	results+=("$(printf 'run %-3s %-18s %8s s   %s' "$i" "$st" "$secs" "$log")")
	echo "${results[-1]}"
	while IFS= read -r f; do
		[ -n "$f" ] && count[$f]=$(( ${count[$f]:-0} + 1 ))
	done < <(failures "$log")
	if [ "$rc" -ne 0 ] && [ -z "$(failures "$log")" ]; then
		count["run $i: failed with no recognised failure line (see its log)"]=1
	fi
	[ "${KEEP:-0}" = 1 ] || rm -rf "$src"
done

echo
echo "test-repeat: $((n - failed_runs)) of $n run(s) passed (commit $short$([ "$load" = 1 ] && echo ', under load'))"
for r in "${results[@]}"; do echo "  $r"; done
echo
if [ "${#count[@]}" -eq 0 ]; then
	echo "test-repeat: no test failed"
else
	echo "test-repeat: tests that failed at least once (runs failed / runs):"
	for f in "${!count[@]}"; do printf '%s\t%s\n' "${count[$f]}" "$f"; done | sort -t$'\t' -k1,1nr -k2 |
		while IFS=$'\t' read -r c f; do printf '  %3d/%-3d %s\n' "$c" "$n" "$f"; done
fi
[ "$failed_runs" -eq 0 ]
