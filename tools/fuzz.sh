#!/usr/bin/env bash
# fuzz.sh - run the libFuzzer targets of tests/fuzz for long, or measure their coverage
#
#   tools/fuzz.sh --minutes 60            every target for 60 minutes (docs/fuzzing.md)
#   tools/fuzz.sh --minutes 5 fuzz_ring   only the named targets
#   tools/fuzz.sh --coverage 30           each target 30 s from the committed seeds, in a
#                                         fresh corpus; prints edges and features
#   -b DIR      the MW_FUZZ build (default build-fuzz; configured and built if missing)
#   -j N        targets running at once (default: the number of CPUs)
#
# Long runs keep their corpus in DIR/fuzz-corpus/<target> (grown from the seeds
# in tests/fuzz/corpus/<target>) and crashes in DIR/fuzz-crash/<target>/.  A
# crash input goes into tests/fuzz/corpus/<target>/ as a regression seed once
# the bug is fixed.  Exits 1 if any target crashed, leaked or timed out.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
jobs=$(nproc)
minutes=
coverage=
while [ $# -gt 0 ]; do
	case "$1" in
	-b)
		build=$(realpath -m "$2")
		shift 2
		;;
	-j)
		jobs=$2
		shift 2
		;;
	--minutes)
		minutes=$2
		shift 2
		;;
	--coverage)
		coverage=$2
		shift 2
		;;
	-h | --help)
		sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "fuzz.sh: unknown option $1 (see --help)" >&2
		exit 2
		;;
	*) break ;;
	esac
done
if [ -z "$minutes" ] && [ -z "$coverage" ]; then
	echo "fuzz.sh: give --minutes N or --coverage SECONDS (see --help)" >&2
	exit 2
fi
case "${minutes:-1}${coverage:-1}" in
*[!0-9]*)
	echo "fuzz.sh: --minutes and --coverage take whole numbers" >&2
	exit 2
	;;
esac

if [ ! -f "$build/CMakeCache.txt" ]; then
	CC=clang cmake -S "$root" -B "$build" -DMW_FUZZ=ON -DMW_SANITIZE=ON >/dev/null
fi
grep -q '^MW_FUZZ:BOOL=ON' "$build/CMakeCache.txt" || {
	echo "fuzz.sh: $build is not an MW_FUZZ=ON build" >&2
	exit 2
}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for src in "$root"/tests/fuzz/fuzz_*.c; do
		targets+=("$(basename "$src" .c)")
	done
fi
cmake --build "$build" -j"$jobs" --target "${targets[@]}" >/dev/null

if [ -n "$coverage" ]; then
	seconds=$coverage
	work=$(mktemp -d /tmp/mw-fuzz-cov-XXXXXX)
	trap 'rm -rf "$work"' EXIT
else
	seconds=$((minutes * 60))
	work=$build/fuzz-corpus
fi

# One target: run it, keep its log; its last "DONE"/"pulse" line has the counts.
run_one() {
	local t=$1 bin=$build/tests/fuzz/$1 corpus crash
	corpus=$work/$t
	crash=$build/fuzz-crash/$t
	mkdir -p "$corpus" "$crash"
	[ -x "$bin" ] || {
		echo "fuzz.sh: $bin is missing" >"$work/$t.log"
		return 1
	}
	"$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=60 -print_final_stats=1 \
		-artifact_prefix="$crash/" "$corpus" "$root/tests/fuzz/corpus/$t" \
		>"$work/$t.log" 2>&1
}

declare -A pids
failed=0
for t in "${targets[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n || true
	done
	run_one "$t" &
	pids[$t]=$!
done
for t in "${targets[@]}"; do
	if ! wait "${pids[$t]}"; then
		failed=1
		echo "FAILED $t: see $work/$t.log and $build/fuzz-crash/$t/" >&2
		grep -E 'ERROR|SUMMARY' "$work/$t.log" >&2 || true
	fi
done

printf '%-18s %8s %9s %8s %12s\n' target edges features corpus inputs
for t in "${targets[@]}"; do
	line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$work/$t.log" | tail -1 || true)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$line")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$line")
	corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$line")
	runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$line")
	printf '%-18s %8s %9s %8s %12s\n' "$t" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${runs:-?}"
done
exit $failed
