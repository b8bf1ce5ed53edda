#!/usr/bin/env bash
# b7_profile.sh - where B7's round trip goes: per process, per 1-byte ping-pong round trip,
# the system calls (perf trace -s), context switches and CPU time (perf stat), for the
# echo server alone (direct) and through mwcomms (server under the shim, mw-pvm, mw-ins).
#
# Same topology as b7_latency.sh (tests/bench/contenders.sh: client in namespace cli, the
# direct server and mw-ins in namespace ins).  Each contender is profiled in two separate
# client runs of N round trips: one under perf stat (cheap: counters), one under perf
# trace -s (syscall counts; it slows every syscall, so its latency is not reported).
# Figures are per round trip; what the processes did while idle is noise (< 1 %: the
# heartbeats and timers run a few times a second, a run lasts ~ N x 150 us).
# Usage: MW_BUILD_DIR=build-rel N=20000 bash tests/bench/b7_profile.sh
N=${N:-20000}
source "$(dirname "$0")/contenders.sh"
mw_require_cmd perf
pp_servers direct
pvm=$(mw_pid pvm) ins=$(mw_pid ins1)
pid_of() { # the bench_pingpong server listening on port $1 (mw_spawn's pid is its shell)
	pgrep -f "^$PP server 0.0.0.0:$1\$" | head -1
}

# profile CONTENDER PORT NAME=PID...: perf stat and perf trace around one client run each
profile() {
	local c=$1 port=$2 out=$MW_TMP/prof.$1 np pids="" name pid
	shift 2
	for np in "$@"; do pids+="${pids:+,}${np#*=}"; done
	# counters per process: -p with several pids and --per-thread
	perf stat -e task-clock,context-switches,cpu-migrations --per-thread -x, -p "$pids" \
		-o "$out.stat" &
	local sp=$!
	sleep 0.5
	in_cli "$PP" client "$INS_IP:$port" "$N" >"$out.pp" || mw_fail "$c ping-pong failed"
	kill -INT "$sp"
	wait "$sp" || true
	perf trace -s -p "$pids" -o "$out.trace" >/dev/null 2>&1 &
	sp=$!
	sleep 1
	in_cli "$PP" client "$INS_IP:$port" "$N" >/dev/null || mw_fail "$c ping-pong (traced) failed"
	kill -INT "$sp"
	wait "$sp" || true
	# scheduler: how long each process waited from its wake-up to running (sch delay),
	# and ran, per round trip (every CPU recorded; timehist lines are per switch-out)
	perf sched record -a -o "$out.sched" >/dev/null 2>&1 &
	sp=$!
	sleep 1
	in_cli "$PP" client "$INS_IP:$port" "$((N / 4))" >"$out.pp4" || mw_fail "$c ping-pong (sched) failed"
	kill -INT "$sp"
	wait "$sp" || true
	perf sched timehist -i "$out.sched" 2>/dev/null >"$out.timehist" || true
	echo "b7prof_${c}_p50_us: $(awk '/p50_us/ {print $2}' "$out.pp")"
	echo "b7prof_${c}_p99_us: $(awk '/p99_us/ {print $2}' "$out.pp")"
	for np in "$@"; do
		name=${np%%=*} pid=${np#*=}
		# perf stat -x, --per-thread: "comm-tid,value,unit,event,..."
		awk -F, -v p="-$pid" -v n="$N" -v who="${c}_$name" '
			index($1, p) && $1 ~ p "$" {
				if ($4 ~ /task-clock/) printf "b7prof_%s_cpu_us_per_rt: %.2f\n", who, $2 * 1000 / n
				else if ($4 ~ /context-switches/) printf "b7prof_%s_cswitch_per_rt: %.2f\n", who, $2 / n
				else if ($4 ~ /cpu-migrations/) printf "b7prof_%s_migrations_per_rt: %.3f\n", who, $2 / n
			}' "$out.stat"
		# perf trace -s: a block per thread " comm (tid), N events", then "syscall calls ..."
		awk -v p="($pid)" -v n="$N" -v who="${c}_$name" '
			/events,/ { on = index($0, p) > 0; next }
			on && $2 ~ /^[0-9]+$/ && $1 !~ /^-/ && $1 != "syscall" {
				tot += $2
				if ($2 / n >= 0.05)
					printf "b7prof_%s_%s_per_rt: %.2f (%.1f us each, traced)\n", who, $1, $2 / n, $6 * 1000
			}
			END { printf "b7prof_%s_syscalls_per_rt: %.2f\n", who, tot / n }' "$out.trace"
		# timehist: time cpu comm[tid] wait sch_delay run (ms)
		awk -v p="[$pid]" -v n="$((N / 4))" -v who="${c}_$name" '
			index($3, p) == length($3) - length(p) + 1 { d += $5; r += $6; k++ }
			END { printf "b7prof_%s_sched_delay_us_per_rt: %.2f\nb7prof_%s_run_us_per_rt: %.2f\nb7prof_%s_switches_in_per_rt: %.2f\n", who, d * 1000 / n, who, r * 1000 / n, who, k / n }' "$out.timehist"
	done
}
# where the daemons' CPU goes during the ping-pong: perf record, top symbols per process
# (RECORD=1; the report goes to stderr, $MW_TMP is removed at exit)
record() {
	[ "${RECORD:-0}" = 1 ] || return 0
	perf record -F 20000 -g -p "$pvm,$ins,$(pid_of 7103)" -o "$MW_TMP/perf.data" >/dev/null 2>&1 &
	local sp=$!
	sleep 1
	in_cli "$PP" client "$INS_IP:7103" "$N" >/dev/null || mw_fail "ping-pong (recorded) failed"
	kill -INT "$sp"
	wait "$sp" || true
	perf report -i "$MW_TMP/perf.data" --no-children --sort comm,sym --stdio -g none \
		--percent-limit 0.8 2>/dev/null | grep -v '^#' | grep -v '^$' | head -80 >&2
	perf report -i "$MW_TMP/perf.data" --no-children --sort comm,dso --stdio -g none \
		--percent-limit 0.5 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 >&2
	# who wakes the echo server, mw-pvm and mw-ins, from where: waker and call chain, counted
	local who pid
	perf record -e sched:sched_wakeup -a -g -o "$MW_TMP/wake.data" >/dev/null 2>&1 &
	sp=$!
	sleep 1
	in_cli "$PP" client "$INS_IP:7103" 2000 >/dev/null || mw_fail "ping-pong (wake-ups) failed"
	kill -INT "$sp"
	wait "$sp" || true
	perf script -i "$MW_TMP/wake.data" >"$MW_TMP/wake.txt" 2>/dev/null || true
	for who in server="$(pid_of 7103)" pvm="$pvm" ins="$ins"; do
		pid=${who#*=}
		echo "wake-ups of ${who%%=*} per 2000 round trips, by waker and call chain:" >&2
		awk -v pid="pid=$pid " '
			/sched:sched_wakeup/ { on = index($0 " ", pid) > 0; if (on) { w = $1; c = "" }; n = 0; next }
			on && NF >= 2 && n < 7 { c = c " < " $2; n++; next }
			on && NF == 0 { k[w c]++; on = 0 }
			END { for (x in k) print k[x], x }' "$MW_TMP/wake.txt" | sort -rn | head -6 >&2
	done
}
if [ "${PINGPONG:-1}" = 1 ]; then
	record
	echo "b7prof_sched_note: sched figures from a run of $((N / 4)) round trips under perf sched record"
	profile direct 7101 server="$(pid_of 7101)"
	profile mwcomms 7103 server="$(pid_of 7103)" pvm="$pvm" ins="$ins"
	# BATCH=1: again with both daemons SCHED_BATCH (a woken batch task does not preempt)
	if [ "${BATCH:-0}" = 1 ]; then
		{ chrt -b -a -p 0 "$pvm" && chrt -b -a -p 0 "$ins"; } || mw_fail "chrt -b failed"
		profile mwbatch 7103 server="$(pid_of 7103)" pvm="$pvm" ins="$ins"
		{ chrt -o -a -p 0 "$pvm" && chrt -o -a -p 0 "$ins"; } || mw_fail "chrt -o failed"
		profile mwagain 7103 server="$(pid_of 7103)" pvm="$pvm" ins="$ins"
	fi
fi

# B1's load (wrk, keep-alive, 64 connections) through mwcomms: CPU time per request (perf
# stat, one wrk run) and system calls per request (perf trace -s, another: it slows them)
# in nginx's worker, mw-pvm and mw-ins.
[ "${WRK:-1}" = 1 ] || exit 0
mw_spawn nginx-mw shimmed nginx -c "$(nginx_conf mw 8003)"
mw_wait_for "in_cli curl -sf -o /dev/null --max-time 2 http://$INS_IP:8003/" 15 || mw_fail "nginx does not answer"
worker=$(pgrep -P "$(cat "$MW_TMP/nginx-mw/nginx.pid")" | head -1)
perf stat -e task-clock --per-thread -x, -p "$worker,$pvm,$ins" -o "$MW_TMP/wrk.stat" &
sp=$!
sleep 0.5
sreqs=$(in_cli wrk -t 2 -c 64 -d 3s "http://$INS_IP:8003/index.html" | awk '/requests in/ {print $1}')
kill -INT "$sp"
wait "$sp" || true
echo "b7prof_wrk_rps: $((${sreqs:-0} / 3))"
for np in app="$worker" pvm="$pvm" ins="$ins"; do
	awk -F, -v p="-${np#*=}" -v n="$sreqs" -v who="wrk_${np%%=*}" '
		index($1, p) && $1 ~ p "$" && $4 ~ /task-clock/ {
			printf "b7prof_%s_cpu_us_per_req: %.2f\n", who, $2 * 1000 / n }' "$MW_TMP/wrk.stat"
done
perf trace -s -p "$worker,$pvm,$ins" -o "$MW_TMP/wrk.trace" >/dev/null 2>&1 &
sp=$!
sleep 1
reqs=$(in_cli wrk -t 2 -c 64 -d 3s "http://$INS_IP:8003/index.html" | awk '/requests in/ {print $1}')
kill -INT "$sp"
wait "$sp" || true
echo "b7prof_wrk_requests: $reqs"
for np in app="$worker" pvm="$pvm" ins="$ins"; do
	awk -v p="(${np#*=})" -v n="$reqs" -v who="wrk_${np%%=*}" '
		/events,/ { on = index($0, p) > 0; next }
		on && $2 ~ /^[0-9]+$/ && $1 !~ /^-/ && $1 != "syscall" {
			tot += $2
			if ($2 / n >= 0.02) printf "b7prof_%s_%s_per_req: %.2f\n", who, $1, $2 / n
		}
		END { printf "b7prof_%s_syscalls_per_req: %.2f\n", who, tot / n }' "$MW_TMP/wrk.trace"
done
