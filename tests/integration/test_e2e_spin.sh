#!/usr/bin/env bash
# test_e2e_spin.sh - pvm.spin_us/ins.spin_us: the data path works while both
# daemons spin before sleeping, and once traffic stops they really sleep
# (CPU time over an idle second stays near zero: a window that never closed
# would burn a whole CPU).
source "$(dirname "$0")/lib.sh"
mw_require_cmd python3
MW_SPIN_US=200 mw_appliance_up
PROBE="python3 $MW_SOURCE_DIR/tests/integration/tcp_probe.py"
grep -q 'spin_us = 200' "$CONF" || mw_fail "the config does not set spin_us"

mw_spawn echo shimmed $PROBE echo-server 7000
mw_wait_for "ins_listens 7000" 10 || mw_fail "echo server does not listen on the INS"
in_cli timeout 60 $PROBE many "$INS_IP" 7000 200 >"$MW_TMP/many.out" 2>&1 ||
	mw_fail "200 connections with spinning daemons failed: $(tail -3 "$MW_TMP/many.out")"
grep -q '^ok 200/200$' "$MW_TMP/many.out" || mw_fail "echo: $(cat "$MW_TMP/many.out")"

# cpu_ticks PID: utime + stime of all its threads, in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ins_pid=$(pgrep -f "mw-ins --id 1 -c $CONF" | head -1)
pvm_pid=$(mw_pid pvm)
sleep 0.5 # the last windows close (200 us each)
p0=$(cpu_ticks "$pvm_pid")
i0=$(cpu_ticks "$ins_pid")
sleep 2
p1=$(cpu_ticks "$pvm_pid")
i1=$(cpu_ticks "$ins_pid")
hz=$(getconf CLK_TCK)
# Idle: heartbeats only (5/s); 10 % of a CPU over 2 s is 0.2 s of ticks.
[ $((p1 - p0)) -le $((hz / 5)) ] || mw_fail "mw-pvm used $((p1 - p0)) ticks in 2 idle seconds (spin never stopped?)"
[ $((i1 - i0)) -le $((hz / 5)) ] || mw_fail "mw-ins used $((i1 - i0)) ticks in 2 idle seconds (spin never stopped?)"
mw_log "spinning daemons served 200 connections, then slept (pvm $((p1 - p0)), ins $((i1 - i0)) ticks idle)"
