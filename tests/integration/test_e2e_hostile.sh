#!/usr/bin/env bash
# test_e2e_hostile.sh - a lying INS (hostile_ins, user nobody) hurts only itself
#
# Topology: mw_appliance_up (mw-pvm, honest mw-ins 1 in ns ins, clients in ns cli)
# plus a shimmed python3 HTTP server, and hostile_ins, which joins the real
# mw-pvm through the real handshake and channel code as another INS, then lies.
# pvm-ins.sock is handed to group nogroup so that the liar runs unprivileged.
# Checks: (1) stalled handshakes (idle and half-hello connections) do not freeze
# mw-pvm: requests meanwhile are answered fast, and the honest INS is not reaped;
# (2) each lie (unsolicited EV_CLOSED on listeners it owns, EV_CONNECTED on a
# listener, EV_ACCEPTED on a connection, replayed EV_ACCEPTED / EV_EOF / RESULT,
# lying CREDIT, DATA beyond the window, garbage, another INS's socket, an
# EV_ACCEPTED flood, holding the data pipe's lock, a bind's made-up name, closes never
# confirmed) cuts the liar; an accept at another port than its listener's is observed
# at the listener's; a second channel
# from the liar's process is refused with its reason logged, and so is a join under
# another id after its channel ended; mw-pvm lives, and the
# app keeps serving through the honest INS; (3) the flood is aborted beyond
# pvm.ins_max_conns; (4) an app's request to an INS that answers nothing fails
# with ETIMEDOUT after pvm.op_timeout_ms instead of hanging.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hostile_lib.sh"

MAX_CONNS=16
MW_PVM_CONF="ins_max_conns = $MAX_CONNS; op_timeout_ms = 1000; handshake_max = 8; data_pipe = true; close_confirm_ms = 3000;"
hostile_up

# fetch PORT: one request from cli; prints its time in ms; fails on error or wrong content.
fetch() {
	local out
	out=$(in_cli curl -sf --max-time 5 -w '\n%{time_total}' "http://$INS_IP:$1/") ||
		mw_fail "request to port $1 failed"
	[ "$(head -n1 <<<"$out")" = "served through the honest INS" ] ||
		mw_fail "request to port $1: wrong content: $out"
	tail -n1 <<<"$out" | awk '{ printf "%d\n", $1 * 1000 }'
}

# --- (1) stalled handshakes: the loop keeps answering -----------------------------
# fast_during NAME N: N requests while NAME stalls handshakes, each under 1.5 s (one
# stalled handshake used to freeze mw-pvm for 2 s, so 6 stalled ones for 12 s).
fast_during() {
	local name=$1 n=$2 i ms slow=0
	mw_wait_for "grep -q 'stalled .* handshake' '$(mw_logfile "$name")'" 10 ||
		mw_fail "$name: the stalling connections were not made"
	for i in $(seq 1 "$n"); do
		ms=$(fetch 8080)
		[ "$ms" -lt 1500 ] || slow=$((slow + 1))
		mw_log "request $i during stalled handshakes ($name): ${ms} ms"
	done
	[ "$slow" = 0 ] || mw_fail "$slow of $n requests took 1.5 s or more during stalled handshakes"
}
# Phase 1: 6 stalled (under pvm.handshake_max 8), re-made as mw-pvm drops each at 2 s.
mw_spawn stall as_nobody "$HOSTILE" "$MW_RUNTIME_DIR/pvm-ins.sock" 0 stall 6 6
fast_during stall 8
mw_wait_for "grep -q 'no complete hello within 2 s' '$PVM_LOG'" 10 ||
	mw_fail "mw-pvm did not drop the stalled handshakes at their deadline"
mw_wait_for "grep -q 'stall done: [1-9]' '$(mw_logfile stall)'" 15 ||
	mw_fail "the staller did not finish, or mw-pvm never dropped a stalled handshake"
# Phase 2: 12 stalled, over pvm.handshake_max: the oldest go; an INS that sends its
# hello at once still joins (the liar of section 2, INS 11, joins here).
mw_spawn stall2 as_nobody "$HOSTILE" "$MW_RUNTIME_DIR/pvm-ins.sock" 0 stall 12 4
fast_during stall2 3
mw_wait_for "grep -q 'in progress (pvm.handshake_max); dropping the oldest' '$PVM_LOG'" 10 ||
	mw_fail "pvm.handshake_max did not bound the pending handshakes"
! grep -q "$ENDED_1" "$PVM_LOG" || mw_fail "the honest INS was reaped during stalled handshakes"
pvm_alive "stalled handshakes"
mw_log "stalled handshakes: no freeze, dropped at the deadline and beyond handshake_max"

# --- (2) lies: each cuts the liar only ---------------------------------------------
# lie_start ID SCENARIO [N...]: start the liar as INS ID (process liarID).
lie_start() {
	local id=$1
	shift
	mw_spawn "liar$id" as_nobody "$HOSTILE" "$MW_RUNTIME_DIR/pvm-ins.sock" "$id" "$@"
}
# lie_cut ID SCENARIO REASON: the liar exits 0 (cut by mw-pvm), REASON in mw-pvm's log.
lie_cut() {
	local id=$1 what=$2 reason=$3 name=liar$1 status=0
	mw_wait_for "! kill -0 $(mw_pid "$name")" 20 || mw_fail "liar $what did not finish"
	wait "$(mw_pid "$name")" || status=$?
	[ "$status" = 0 ] || mw_fail "liar $what: exit $status (3 = not cut); $(cat "$(mw_logfile "$name")")"
	grep -q "INS $id: channel ended: .*$reason" "$PVM_LOG" ||
		mw_fail "liar $what: no 'INS $id: channel ended: ...$reason' in mw-pvm's log"
	pvm_alive "after liar $what"
}
# lie ID SCENARIO REASON [N]: run the liar, expect it cut with REASON in the log.
lie() {
	# shellcheck disable=SC2086 # N is optional: no argument when empty
	lie_start "$1" "$2" ${4:-}
	lie_cut "$1" "$2" "$3"
	ms=$(fetch 8080)
	mw_log "liar $2 cut ($3); next request ${ms} ms"
}
# liar_run NAME SCENARIO ID SED [ARG...]: run liar NAME as INS ID, want exit 0; set
# liar_out to what its log names (the sed expression SED picks it: a pid, a count).
liar_run() {
	local name=$1 what=$2 id=$3 sed=$4 status=0
	shift 4
	mw_spawn "$name" as_nobody "$HOSTILE" "$MW_RUNTIME_DIR/pvm-ins.sock" "$id" "$what" "$@"
	mw_wait_for "! kill -0 $(mw_pid "$name")" 20 || mw_fail "liar $what did not finish"
	wait "$(mw_pid "$name")" || status=$?
	[ "$status" = 0 ] || mw_fail "liar $what: exit $status (3 = the wrong outcome); $(cat "$(mw_logfile "$name")")"
	liar_out=$(sed -n "$sed" "$(mw_logfile "$name")")
}
# One process, one channel: a second join from the liar (naming pid 1) is refused by
# its kernel credentials, and the first channel lives on; the log names the real pid.
liar_run liar24 second 24 's/.*second channel refused: .*; pid \([0-9]*\)$/\1/p'
pid=$liar_out
[ "${pid:-1}" != 1 ] || mw_fail "liar second: no pid in its log: $(cat "$(mw_logfile liar24)")"
grep -q "INS 24 joined over the local channel (pid $pid," "$PVM_LOG" ||
	mw_fail "liar second: the join does not name its real pid $pid: $(grep 'INS 24 joined' "$PVM_LOG")"
grep -q "rejecting INS id 1024 (pid $pid already holds the channel of INS 24)" "$PVM_LOG" ||
	mw_fail "liar second: no refusal of the second channel in mw-pvm's log"
pvm_alive "after liar second"
# One process, one id: the liar ends its channel and joins again as another INS
# (refused: it was INS 25), then as INS 25 (accepted, as a restart would be).
liar_run liar25 rejoin 25 's/.*join as INS 1025 refused: .*; pid \([0-9]*\)$/\1/p'
pid=$liar_out
grep -q "rejecting INS id 1025 (pid ${pid:-none} joined as INS 25 before: one process, one id)" "$PVM_LOG" ||
	mw_fail "liar rejoin: no refusal naming pid ${pid:-none} and INS 25 in mw-pvm's log"
[ "$(grep -c "INS 25 joined over the local channel (pid $pid," "$PVM_LOG")" = 2 ] ||
	mw_fail "liar rejoin: INS 25 did not join twice: $(grep 'INS 25 joined' "$PVM_LOG")"
pvm_alive "after liar rejoin"
lie 11 connected "EV_CONNECTED on .* which is not connecting"
mw_wait_for "! kill -0 $(mw_pid stall2)" 15 || mw_fail "the second staller did not finish"
lie 12 accepted-on-conn "EV_ACCEPTED on .* which is not listening"
lie 13 replay-accepted "EV_ACCEPTED with bad or reused new id"
lie 14 replay-eof "EV_EOF on .* past that event already"
lie 15 replay-result "RESULT for unknown request"
lie 16 credit "CREDIT 1000 on .* exceeds what was sent"
# An app that accepts and never reads: DATA beyond the window cannot be drained.
mw_spawn sink shimmed python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8090)); s.listen(8); c, _ = s.accept(); time.sleep(60)'
mw_wait_for "ins_listens 8090" 10 || mw_fail "the non-reading app does not listen"
lie 17 data "DATA .* beyond the credit granted" 8090
mw_stop sink # now: its listener's close must not fall on a later INS that answers nothing
lie 18 garbage "unknown frame type 0x7777"
lie 19 foreign "DATA for socket .* that is not on this INS"
lie 20 flood "EV_ACCEPTED flood" 400
# An app that writes in bulk on accept: its bytes go through the data pipe, whose
# lock the liar then holds (docs/ins-protocol.md); mw-pvm's loop waits for its
# splicer thread only pvm.splice_timeout_ms, then cuts the liar.
mw_spawn bulk shimmed python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8091)); s.listen(8)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"b" * (64 << 20))
    except OSError:
        pass
    c.close()'
mw_wait_for "ins_listens 8091" 10 || mw_fail "the bulk app does not listen"
lie 23 pipe-lock "a splice into its data pipe took over 1000 ms" 8091
grep -q 'holding the data pipe.s lock' "$(mw_logfile liar23)" ||
	mw_fail "the liar never held the pipe: $(cat "$(mw_logfile liar23)")"
mw_stop bulk
# 16 handed over, then aborted one by one, then (16/8 + 64 unanswered aborts later) cut.
n=$(sed -n 's/.*INS 20: \([0-9]*\) connection(s) had been aborted over pvm.ins_max_conns.*/\1/p' "$PVM_LOG")
[ "${n:-0}" -ge 60 ] && [ "$n" -le 70 ] ||
	mw_fail "the flood: ${n:-no} connection(s) aborted over pvm.ins_max_conns, want 66"

# EV_CLOSED on listeners the liar owns: two more apps start while it serves, so
# round-robin places one of their listeners on it (the app's own socket); the lie
# must not drop that app's listener, which keeps serving through its replica on INS 1.
lie_start 21 closed 3
mw_wait_for "grep -q 'INS 21 joined' '$PVM_LOG'" 10 || mw_fail "liar 21 did not join"
mw_spawn http2 shimmed python3 -m http.server 8082 --bind 0.0.0.0 --directory "$WWW"
mw_wait_for "ins_listens 8082" 10 || mw_fail "app 2 does not listen"
mw_spawn http3 shimmed python3 -m http.server 8083 --bind 0.0.0.0 --directory "$WWW"
mw_wait_for "ins_listens 8083" 10 || mw_fail "app 3 does not listen"
lie_cut 21 closed "EV_CLOSED for .* which we did not close"
for port in 8080 8082 8083; do
	ms=$(fetch $port)
	mw_log "after the EV_CLOSED lie: port $port served in ${ms} ms"
done

# A bind's name is the INS's to report, and the replica on every other INS is bound
# to it: a liar naming a privileged port for an app's port-0 bind (on the old code,
# every honest INS then bound port 22 for that app) is cut, the bind refused.
lie_start 27 misname
mw_wait_for "grep -q 'lying: misname' '$(mw_logfile liar27)'" 15 ||
	mw_fail "liar misname did not start: $(cat "$(mw_logfile liar27)")"
# Round-robin puts every other socket on the liar.
out=$(shimmed timeout 20 python3 -c '
import errno, socket
res, keep = [], []
for i in range(4):
    s = socket.socket(); keep.append(s)
    try:
        s.bind(("0.0.0.0", 0)); res.append("port:%d" % s.getsockname()[1])
    except OSError as e:
        res.append(errno.errorcode.get(e.errno, str(e.errno)))
print(" ".join(res))
') || mw_fail "the app under the shim failed against the misnaming INS: $out"
mw_log "bind(port 0) x4 with a misnaming INS: $out"
grep -q 'naming a bind port 22' "$(mw_logfile liar27)" ||
	mw_fail "liar misname: no bind was placed on it: $out"
[[ "$out" == *EADDRNOTAVAIL* ]] || mw_fail "liar misname: no bind was refused: $out"
! grep -qE 'port:(22|[0-9]{1,3})( |$)' <<<"$out" || mw_fail "a bind took the liar's port: $out"
lie_cut 27 misname "its bind's name is not the address asked for"

# A close holds its socket until the INS confirms it (no longer its user's
# pvm.max_sockets_per_user): a liar that never does is cut once a close has waited
# pvm.close_confirm_ms (3 s here; an honest INS confirms within its ins.fin_timeout_ms).
lie_start 29 unconfirmed
mw_wait_for "grep -q 'lying: unconfirmed' '$(mw_logfile liar29)'" 15 ||
	mw_fail "liar unconfirmed did not start: $(cat "$(mw_logfile liar29)")"
out=$(shimmed timeout 20 python3 -c '
import socket
for i in range(8):
    socket.socket().close()
print("8 sockets opened and closed")
') || mw_fail "the app under the shim failed against the unconfirming INS: $out"
lie_cut 29 unconfirmed "a close unconfirmed (EV_CLOSED) for [0-9]* s (close_confirm_ms 3000)"
mw_log "liar unconfirmed: cut after the app's closes ($out)"

# An accept's local port reaches Netflow's consumers as its listener's port, as mw-pvm
# bound it, not as the INS says (mw-guard learns a listener's port from its accepts: a
# liar naming another port would leave the app's listener unprotected, or put an HTTP
# filter on another protocol's listener on every INS; PROXY v2 may name another too).
mw_spawn json "$MW_BUILD_DIR/tools/mw-console" -k "$MW_RUNTIME_DIR/store" --json
mw_wait_for "grep -q 'netflow: consumer .* connected' '$PVM_LOG'" 10 ||
	mw_fail "mw-console --json did not connect to the Netflow server"
liar_run liar28 misport 28 's/.*misport done: \(.*\)$/\1/p' 8080
[ "$liar_out" = "not cut" ] || mw_fail "liar misport: $liar_out"
acc='"obs":"accept".*"peer":"192.0.2.1:40000"'
mw_wait_for "grep -q '$acc' '$(mw_logfile json)'" 10 || mw_fail "liar misport: its accept was not observed"
line=$(grep -m1 "$acc" "$(mw_logfile json)")
grep -q '"local":"192.0.2.1:8080"' <<<"$line" ||
	mw_fail "liar misport: the accept's local port is the INS's word: $line"
mw_stop json
mw_log "liar misport: its accept observed at the listener's port: $line"

# --- (5) F_NOREPLY options: one op in flight per client, like every request -------
# An app sets TCP_NODELAY 200 times on each of 4 connections of an INS that answers
# no op (the shim sends these with no response wanted).  mw-pvm reads the app's next
# request only once the INS answered (or pvm.op_timeout_ms passed), so they cannot
# pile up there (on the old code all 800 went to the INS at once: a user with many
# control connections could fill an INS's pvm.ins_max_queued for every user).
mw_spawn noreply_app shimmed python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8092)); s.listen(8); print("listening", flush=True)
for n in range(4):
    c, _ = s.accept()
    for i in range(200):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print("set 200 on connection %d" % (n + 1), flush=True)
time.sleep(60)'
mw_wait_for "ins_listens 8092" 10 || mw_fail "the NOREPLY app does not listen"
liar_run liar26 mute 26 's/.*mute done: \([0-9]*\) op.*/\1/p' 8092 4
[ -n "$liar_out" ] || mw_fail "liar mute: no count: $(cat "$(mw_logfile liar26)")"
[ "$liar_out" -le 24 ] ||
	mw_fail "$liar_out ops reached the INS that answers none in 4 s (the app's F_NOREPLY options piled up)"
pvm_alive "after the mute INS"
mw_stop noreply_app
mw_log "F_NOREPLY options on an INS that answers nothing: $liar_out op(s) reached it in 4 s"

# --- (4) a wedged INS: the app's socket() fails with ETIMEDOUT, not forever ---------
mw_spawn wedge as_nobody "$HOSTILE" "$MW_RUNTIME_DIR/pvm-ins.sock" 22 wedge 30
mw_wait_for "grep -q 'INS 22 joined' '$PVM_LOG'" 10 || mw_fail "the wedged INS did not join"
# Round-robin puts every other socket on the wedged INS.
out=$(shimmed timeout 20 python3 -c '
import errno, socket, time
res = []
for i in range(4):
    t = time.monotonic()
    try:
        s = socket.socket(); res.append("ok"); s.close()
    except OSError as e:
        res.append(errno.errorcode.get(e.errno, str(e.errno)))
    res[-1] += ":%d" % int((time.monotonic() - t) * 1000)
print(" ".join(res))
') || mw_fail "the app under the shim hung or failed against the wedged INS: $out"
mw_log "socket() x4 with a wedged INS: $out"
grep -q "ETIMEDOUT" <<<"$out" || mw_fail "no socket() failed with ETIMEDOUT: $out"
for r in $out; do
	ms=${r#*:}
	[ "$ms" -lt 4000 ] || mw_fail "socket() took $ms ms (op_timeout_ms is 1000): $out"
done
fetch 8080 >/dev/null
mw_stop wedge 5
pvm_alive "after the wedged INS"
! grep -q "$ENDED_1" "$PVM_LOG" || mw_fail "the honest INS was reaped"
mw_log "wedged INS: requests time out with ETIMEDOUT"
