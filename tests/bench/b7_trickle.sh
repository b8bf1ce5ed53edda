#!/usr/bin/env bash
# b7_trickle.sh - what mw-pvm and mw-ins spend while a ping-pong only trickles: one 1-byte
# round trip per ms through mwcomms, CPU time of each daemon per round trip (from
# /proc/PID/schedstat).  With MW_SPIN_US set, the cost of the spin windows where they
# cannot pay (common/spin.h).
# Usage: MW_BUILD_DIR=build MW_SPIN_US=50 N=2000 bash tests/bench/b7_trickle.sh
N=${N:-2000}
source "$(dirname "$0")/contenders.sh"
mw_require_cmd python3
pp_servers
pvm=$(mw_pid pvm) ins=$(mw_pid ins1)
cpu_ns() { awk '{print $1}' "/proc/$1/schedstat"; }
p0=$(cpu_ns "$pvm") i0=$(cpu_ns "$ins")
in_cli python3 - "$INS_IP" "$N" <<'PY' || mw_fail "trickle ping-pong failed"
import socket, sys, time
s = socket.create_connection((sys.argv[1], 7103))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for i in range(int(sys.argv[2])):
    s.sendall(b"x")
    if s.recv(1) != b"x":
        sys.exit("bad echo")
    time.sleep(0.001)
PY
p1=$(cpu_ns "$pvm") i1=$(cpu_ns "$ins")
echo "b7trickle_pvm_cpu_us_per_rt: $(((p1 - p0) / (N * 1000)))"
echo "b7trickle_ins_cpu_us_per_rt: $(((i1 - i0) / (N * 1000)))"
