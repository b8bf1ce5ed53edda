#!/usr/bin/env bash
# b8_spawn.sh - B8: INS spawn-to-ready with the netns backend, and the time to replace a
# killed INS, through mw-balancer and mwctl (nginx under the shim as the app, so "ready"
# means mw-pvm has replicated its listener into the new INS's namespace).
#
#   spawn: `mwctl ins spawn` until `mwctl ins list` shows that INS ready; N times
#   replace: kill -9 of the one INS until a new one is listed ready; N times
# Prints the median and max of each (ms), also as the balancer logs it ("ready (X s after
# spawn)", its own clock).  The balancer checks readiness on its 100 ms tick, so both are
# rounded up to that tick; mwctl polling adds ~ its own run time (spawn_poll_ms).
# Usage: MW_BUILD_DIR=build-rel N=10 bash tests/bench/b8_spawn.sh
N=${N:-10}
: "${MW_BUILD_DIR:?set MW_BUILD_DIR to the build tree (e.g. build)}"
MW_BUILD_DIR=$(cd "$MW_BUILD_DIR" && pwd)
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../integration/balancer_lib.sh"
median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
max() { sort -g | tail -1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
state_of() { ctl ins list | awk -v id="$1" '$1 == id {print $2}'; }
# wait_ready ID: poll until INS ID is ready; at most 3000 polls (well over 10 s).
wait_ready() {
	local k
	for ((k = 0; k < 3000; k++)); do
		[ "$(state_of "$1")" = ready ] && return 0
	done
	return 1
}

bal_up 1 2
# One poll's own cost, to read the figures against.
t0=$(now_ms)
for _ in 1 2 3 4 5 6 7 8 9 10; do ctl ins list >/dev/null; done
poll_ms=$((($(now_ms) - t0) / 10))

for ((r = 0; r < N; r++)); do
	t0=$(now_ms)
	id=$(ctl ins spawn | awk 'NR == 2 {print $1}')
	t1=$(now_ms)
	[ -n "$id" ] || mw_fail "ins spawn failed: $(ctl status)"
	wait_ready "$id" || mw_fail "INS $id not ready: $(ctl ins list)"
	t2=$(now_ms)
	echo $((t1 - t0)) >>"$MW_TMP/spawn_call"
	echo $((t2 - t0)) >>"$MW_TMP/spawn_ready"
	grep -o "INS $id ready ([0-9.]* s after spawn)" "$BAL_LOG" | sed 's/.*(\([0-9.]*\) s.*/\1/' | awk '{print $1 * 1000}' >>"$MW_TMP/spawn_log"
	ctl ins retire "$id" >/dev/null || mw_fail "retire $id failed"
	mw_wait_for "[ -z \"\$(state_of $id)\" ]" 10 || mw_fail "INS $id did not go away"
done

for ((r = 0; r < N; r++)); do
	# An INS that dies within 1 s of its start is replaced only after a 1 s back-off (the
	# crash-loop guard, docs/balancer.md): measure the replacement of a settled INS.
	sleep 1.2
	read -r old pid < <(ctl ins list | awk '$2 == "ready" {print $1, $4; exit}')
	[ -n "$pid" ] || mw_fail "no ready INS to kill: $(ctl ins list)"
	t0=$(now_ms)
	kill -9 "$pid"
	new=
	for ((k = 0; k < 3000; k++)); do
		new=$(ctl ins list | awk -v old="$old" '$2 == "ready" && $1 != old {print $1; exit}')
		[ -n "$new" ] && break
	done
	t1=$(now_ms)
	[ -n "$new" ] || mw_fail "INS $old killed: no replacement ready: $(ctl ins list)"
	echo $((t1 - t0)) >>"$MW_TMP/replace"
	grep -o "INS $new ready ([0-9.]* s after spawn)" "$BAL_LOG" | sed 's/.*(\([0-9.]*\) s.*/\1/' | awk '{print $1 * 1000}' >>"$MW_TMP/replace_log"
	# the dead one's namespace is gone before the next round
	mw_wait_for "! ip netns list | grep -q '^mw-$TAG-ins$old\\b'" 10 || mw_fail "INS $old's namespace left"
done
[ "$(ctl status | awk '$1 == "replaced" {print $2}')" = "$N" ] || mw_fail "status does not count $N replacements"

echo "b8_rounds: $N"
echo "b8_poll_ms: $poll_ms"
echo "b8_spawn_call_ms_median: $(median <"$MW_TMP/spawn_call")"
echo "b8_spawn_to_ready_ms_median: $(median <"$MW_TMP/spawn_ready")"
echo "b8_spawn_to_ready_ms_max: $(max <"$MW_TMP/spawn_ready")"
echo "b8_spawn_to_ready_ms_balancer_log_median: $(median <"$MW_TMP/spawn_log")"
echo "b8_replace_ms_all: $(tr '\n' ' ' <"$MW_TMP/replace")"
echo "b8_replace_ms_median: $(median <"$MW_TMP/replace")"
echo "b8_replace_ms_max: $(max <"$MW_TMP/replace")"
echo "b8_replace_ms_balancer_log_median: $(median <"$MW_TMP/replace_log")"
