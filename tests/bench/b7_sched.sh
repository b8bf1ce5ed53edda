#!/usr/bin/env bash
# b7_sched.sh - B7's round trip seen by the scheduler: per 1-byte ping-pong round trip
# through mwcomms, the context switches of the echo server, mw-pvm and mw-ins, and who
# preempted whom (a switch-out while still runnable), from sched_switch/sched_wakeup
# events on every CPU; with the p50/p99 of ROUNDS client runs, direct and mwcomms.
# SEQ=1 also prints the events of a few round trips (the timeline in docs/benchmarks.md).
# Same topology as b7_latency.sh.
# Usage: MW_BUILD_DIR=build N=2000 bash tests/bench/b7_sched.sh
N=${N:-2000}
ROUNDS=${ROUNDS:-3}
source "$(dirname "$0")/contenders.sh"
mw_require_cmd perf
pp_servers direct
pvm=$(mw_pid pvm) ins=$(mw_pid ins1)
srv=$(pgrep -f "^$PP server 0.0.0.0:7103\$" | head -1)
for r in $(seq "$ROUNDS"); do
	echo "b7sched_direct_round$r: $(in_cli "$PP" client "$INS_IP:7101" 10000 | tr '\n' ' ')"
	echo "b7sched_mwcomms_round$r: $(in_cli "$PP" client "$INS_IP:7103" 10000 | tr '\n' ' ')"
done
perf record -e sched:sched_switch -e sched:sched_wakeup -a -o "$MW_TMP/sw.data" >/dev/null 2>&1 &
sp=$!
sleep 1
in_cli "$PP" client "$INS_IP:7103" "$N" >/dev/null || mw_fail "ping-pong (recorded) failed"
kill -INT "$sp"
wait "$sp" || true
perf script -i "$MW_TMP/sw.data" >"$MW_TMP/sw.txt" 2>/dev/null || true
for who in server="$srv" pvm="$pvm" ins="$ins"; do
	awk -v pid="prev_pid=${who#*=} " -v n="$N" -v who="${who%%=*}" '
		/sched_switch/ && index($0, pid) { k++ }
		END { printf "b7sched_%s_switches_per_rt: %.2f\n", who, k / n }' "$MW_TMP/sw.txt"
done
echo "b7sched_preempted_per_rt (switched out while runnable, by the task that ran next):"
grep sched_switch "$MW_TMP/sw.txt" | grep -E "prev_pid=($pvm|$ins|$srv) " | grep "prev_state=R" |
	sed -E 's/.*prev_comm=([^ ]+) .*next_comm=([^ ]+) .*/\1 -> \2/' | sort | uniq -c | sort -rn |
	awk -v n="$N" '$1 / n >= 0.02 { printf "  %.2f %s %s %s\n", $1 / n, $2, $3, $4 }'
echo "b7sched_cpus: $(grep -E "^ *(mw-pvm|mw-ins|bench_pingpong) " "$MW_TMP/sw.txt" | awk '{print $3}' | sort | uniq -c | tr '\n' ' ')"
[ "${SEQ:-0}" = 1 ] && grep -E "sched_(switch|wakeup)" "$MW_TMP/sw.txt" |
	grep -E " ($pvm|$ins|$srv) \[|pid=($pvm|$ins|$srv) " | sed -n '2000,2060p' |
	sed -E 's/ +/ /g; s/prev_prio=[0-9]+ //; s/next_prio=[0-9]+//; s/ prio=[0-9]+//'
exit 0
