#!/usr/bin/env bash
# test_e2e_ins_bounds.sh - mw-pvm's per-INS bounds and heartbeat judgement against hostile_ins
#
# Topology: mw_appliance_up (mw-pvm, honest mw-ins 1 in ns ins, clients in ns cli),
# a shimmed python3 HTTP server, and hostile_ins (user nobody) joined as more INS.
# Checks: (1) heartbeat silence is judged after the rings are drained: mw-pvm is
# stopped for 2.5 x heartbeat_timeout_ms while both INS keep heartbeating into
# their rings; after SIGCONT neither is reaped for silence; (2) pvm.ins_max_queued
# bounds the requests outstanding on a wedged INS: the app's socket() calls placed
# on it beyond the bound fail at once with ENOBUFS; (3) the queue of control
# frames waiting for ring room is bounded too: an INS that stops consuming its
# ring while mw-pvm owes it CREDIT is cut, with the reason logged. After each: mw-pvm lives, the honest
# INS serves.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hostile_lib.sh"

MAX_QUEUED=64 # the smallest pvm.ins_max_queued the configuration accepts
OP_TIMEOUT_MS=3000
# The smallest ring and window: the no-drain liar fills the ring with little data,
# and every KiB an app drains is credited back in a frame of its own.
MW_PVM_CONF="ins_max_queued = $MAX_QUEUED; op_timeout_ms = $OP_TIMEOUT_MS;"
MW_PVM_CONF+=" ring_size = 131072; socket_window = 4096;"
# pvm.heartbeat_timeout_ms is 1000 (lib.sh); the INS heartbeat every 200 and 100 ms.
hostile_up

# fetch: one request from cli to port 8080; fails on error or wrong content.
fetch() {
	local out
	out=$(in_cli curl -sf --max-time 5 "http://$INS_IP:8080/") ||
		mw_fail "request to port 8080 failed"
	[ "$out" = "served through the honest INS" ] || mw_fail "wrong content: $out"
}

# A wedged INS: joins, heartbeats every 100 ms, answers no op (its requests stay).
mw_spawn wedge as_nobody "$HOSTILE" "$MW_RUNTIME_DIR/pvm-ins.sock" 22 wedge 40
mw_wait_for "grep -q 'INS 22 joined' '$PVM_LOG'" 10 || mw_fail "the wedged INS did not join"

# --- (1) heartbeat silence is judged after draining the rings ----------------------
# While mw-pvm is stopped, both INS keep writing heartbeats into their rings (mw-ins
# every 200 ms, the wedged one every 100 ms) and kick. On SIGCONT libev runs the
# overdue heartbeat timers before the ring watchers (pending callbacks run last
# queued first, and timers are queued after I/O), so the timer sees last_heard
# 2.5 s old: a check that judged before draining reaped both INS here, as a
# freeze of mw-pvm once reaped a healthy INS with 505 sockets. Draining first finds
# the frames, and nothing is reaped. The stop is the deterministic form of "mw-pvm
# was busy": no wait on state can stand in for it.
kill -STOP "$(mw_pid pvm)" || mw_fail "cannot stop mw-pvm"
sleep 2.5 # 2.5 x pvm.heartbeat_timeout_ms
kill -CONT "$(mw_pid pvm)" || mw_fail "cannot continue mw-pvm"
fetch # the loop ran at least once after SIGCONT, so the overdue checks were made
pvm_alive "after SIGSTOP/SIGCONT"
! grep -q "$ENDED_1" "$PVM_LOG" || mw_fail "the honest INS was reaped after mw-pvm was stopped"
! grep -q "INS 22: channel ended" "$PVM_LOG" ||
	mw_fail "the heartbeating wedged INS was reaped after mw-pvm was stopped: $(grep 'INS 22' "$PVM_LOG")"
mw_log "heartbeat judged after draining: no INS reaped after a 2.5 s stop of mw-pvm"

# --- (2) pvm.ins_max_queued: requests outstanding on a wedged INS -------------------
# Two waves of 100 threads call socket() at once (each thread has its own control
# connection); round-robin places every other one on the wedged INS, so each INS
# gets 50 at a time (under the bound: the honest one answers all). In wave 1 the
# wedged INS's 50 wait op_timeout_ms and get ETIMEDOUT, and their requests stay
# outstanding; in wave 2 the few that still fit under ins_max_queued wait too, the
# rest are refused with ENOBUFS at once.
out=$(shimmed timeout 30 python3 -c '
import errno, socket, threading, time
N = 100
keep = []
def wave():
    bar = threading.Barrier(N)
    res = [None] * N
    def one(i):
        bar.wait()
        t = time.monotonic()
        try:
            keep.append(socket.socket()); r = "ok"
        except OSError as e:
            r = errno.errorcode.get(e.errno, str(e.errno))
        res[i] = "%s:%d" % (r, int((time.monotonic() - t) * 1000))
    ts = [threading.Thread(target=one, args=(i,)) for i in range(N)]
    for t in ts: t.start()
    for t in ts: t.join()
    return res
print(" ".join(wave() + wave()))
') || mw_fail "the app under the shim hung or failed against the wedged INS: $out"
declare -A count=([ok]=0 [ETIMEDOUT]=0 [ENOBUFS]=0)
for r in $out; do
	e=${r%%:*} ms=${r#*:}
	[ -n "${count[$e]+set}" ] || mw_fail "socket() failed with $e: $out"
	count[$e]=$((count[$e] + 1))
	[ "$e" != ENOBUFS ] || [ "$ms" -lt $((OP_TIMEOUT_MS / 2)) ] ||
		mw_fail "an ENOBUFS socket() took $ms ms (op_timeout_ms $OP_TIMEOUT_MS): $out"
done
mw_log "socket() x200 with a wedged INS: ok ${count[ok]}, ETIMEDOUT ${count[ETIMEDOUT]}," \
	"ENOBUFS ${count[ENOBUFS]}"
# 100 on each INS: all on the honest one succeed; on the wedged one at most
# MAX_QUEUED wait (fewer: the listener's replay is outstanding there too), the
# other 36 or more are refused.
[ "${count[ok]}" = 100 ] || mw_fail "${count[ok]} socket() calls succeeded, want 100: $out"
[ "${count[ETIMEDOUT]}" -le "$MAX_QUEUED" ] ||
	mw_fail "${count[ETIMEDOUT]} requests were let wait on the wedged INS (bound $MAX_QUEUED)"
[ "${count[ENOBUFS]}" -ge $((100 - MAX_QUEUED)) ] ||
	mw_fail "${count[ENOBUFS]} socket() calls failed with ENOBUFS, want 36 or more: $out"
grep -q "INS 22: $MAX_QUEUED requests wait for a result (pvm.ins_max_queued)" "$PVM_LOG" ||
	mw_fail "mw-pvm did not log the ins_max_queued refusal"
! grep -q "INS 1: .*(pvm.ins_max_queued)" "$PVM_LOG" ||
	mw_fail "the honest INS refused requests: $(grep 'INS 1: .*ins_max_queued' "$PVM_LOG")"
pvm_alive "after ins_max_queued"
fetch
! grep -q "$ENDED_1" "$PVM_LOG" || mw_fail "the honest INS was reaped"
mw_stop wedge 5
mw_log "ins_max_queued: requests beyond the bound fail at once with ENOBUFS"

# --- (3) the control-frame queue: an INS that does not drain its ring is cut --------
# The liar (INS 23) takes the listener of port 8095, stops consuming its rx ring and
# pushes 200 connections with a window (4 KiB) of DATA each, in 1 KiB frames. The
# app answers each with 64 KiB: mw-pvm's 128 KiB ring to the liar fills after two
# of them; the app drains the DATA and each KiB drained owes the liar a CREDIT,
# which waits for ring room. Once ins_max_queued frames wait, the liar is cut.
# (OP_ABORT or other requests that wait count too: all are frames it does not take.)
mw_spawn echoer shimmed python3 -c '
import socket, threading
def conn(c):
    c.setblocking(False)
    try: c.send(b"y" * 65536)
    except BlockingIOError: pass
    c.setblocking(True)
    while c.recv(65536): pass
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8095)); s.listen(1024)
while True:
    c, _ = s.accept()
    threading.Thread(target=conn, args=(c,), daemon=True).start()'
mw_wait_for "ins_listens 8095" 10 || mw_fail "the app of port 8095 does not listen"
mw_spawn nodrain as_nobody "$HOSTILE" "$MW_RUNTIME_DIR/pvm-ins.sock" 23 no-drain 8095
mw_wait_for "! kill -0 $(mw_pid nodrain)" 30 || mw_fail "the no-drain liar did not finish"
status=0
wait "$(mw_pid nodrain)" || status=$?
[ "$status" = 0 ] || mw_fail "no-drain liar: exit $status (3 = not cut); $(cat "$(mw_logfile nodrain)")"
grep -q "INS 23: channel ended: it does not drain its ring: $MAX_QUEUED control frames wait" \
	"$PVM_LOG" || mw_fail "no-drain liar: no 'does not drain its ring' in mw-pvm's log"
pvm_alive "after the no-drain liar"
fetch
! grep -q "$ENDED_1" "$PVM_LOG" || mw_fail "the honest INS was reaped"
mw_log "control-frame queue: the INS that did not drain its ring was cut"
