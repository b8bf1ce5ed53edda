#!/usr/bin/env bash
# test_pvm_pend.sh - client bytes waiting for an app are bounded by pvm.pending_total
#
# mw-pvm with pvm.pending_total = 1 MiB (its minimum) and the default 256 KiB window;
# a shimmed app (pend_probe.py app) listens with backlog 1 and accepts nothing until
# told.  4 benign clients send 1 KiB each and wait; then 48 connections each push
# 200 KiB, which mw-pvm must hold for the app (9.6 MiB on the old code, a window
# allocated for each).  mw-pvm's STATUS lines go to a stand-in for systemd's notify
# socket (pend_probe.py notify), which keeps the largest "byte(s) pending for apps".
# Checks: mw-pvm resets the connections filling windows (logged, counted), never
# holds more than 1 MiB, and once the app accepts every benign client gets its
# answer: its 1 KiB was kept; and once the app took everything, nothing stays
# counted (a drained buffer is freed); and an upload that an app is reading gets through
# a flood of connections it has not taken (the last phase).
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
PP=$(dirname "$0")/pend_probe.py
PORT=8090
FLAG=$MW_TMP/accept.flag

NOTIFY=$MW_TMP/notify.state
mw_spawn notify "$PY" "$PP" notify "$MW_TMP/notify.sock" "$NOTIFY"
mw_wait_for "[ -S '$MW_TMP/notify.sock' ]" 10 || mw_fail "the notify stand-in did not start"
export NOTIFY_SOCKET=$MW_TMP/notify.sock
MW_PVM_CONF="pending_total = 1048576;" mw_appliance_up
unset NOTIFY_SOCKET
mw_spawn app shimmed "$PY" "$PP" app "$PORT" "$FLAG"
mw_wait_for "ins_listens $PORT" 20 || mw_fail "the app does not listen"
mw_wait_for "[ -s '$NOTIFY' ]" 10 || mw_fail "no STATUS line from mw-pvm"

for i in 1 2 3 4; do
	mw_spawn "benign$i" in_cli "$PY" "$PP" benign "$INS_IP" "$PORT" "$i"
done
sleep 1
mw_spawn attack in_cli "$PY" "$PP" attack "$INS_IP" "$PORT" 48 200 20
ALOG=$(mw_logfile attack)
mw_wait_for "grep -q '^sent' '$ALOG'" 60 || mw_fail "the attack did not send: $(cat "$ALOG")"
mw_wait_for "grep -q 'reset: .*pvm.pending_total' '$PVM_LOG'" 20 ||
	mw_fail "mw-pvm reset nothing over pvm.pending_total: $(tail -5 "$PVM_LOG")"
resets() { awk '{ print $6 }' "$NOTIFY"; }
mw_wait_for "[ \$(resets) -ge 40 ]" 20 ||
	mw_fail "mw-pvm reset $(resets) of the 48 window-filling connections (pvm.pending_total)"
read -r _ MAX _ LAST _ R <"$NOTIFY"
mw_log "mw-pvm held at most $MAX byte(s) for the app (now $LAST)"
[ "$MAX" -gt 0 ] && [ "$MAX" -le 1048576 ] || mw_fail "mw-pvm held $MAX bytes (pvm.pending_total 1 MiB)"

touch "$FLAG"
for i in 1 2 3 4; do
	mw_wait_for "grep -q '^reply\|^reset' '$(mw_logfile "benign$i")'" 60 ||
		mw_fail "benign client $i got nothing"
	grep -q "^reply ok benign-$i" "$(mw_logfile "benign$i")" ||
		mw_fail "benign client $i lost its request: $(cat "$(mw_logfile "benign$i")")"
done
# Drained buffers are freed: nothing stays counted once the app took every byte.
mw_wait_for "grep -q ' last 0 ' '$NOTIFY'" 20 ||
	mw_fail "bytes still counted as pending after the app took them: $(cat "$NOTIFY")"
mw_log "ok: $R of 48 reset by mw-pvm, the 4 benign requests answered, nothing left counted"

# An upload the app is reading gives way to no connection the app has not taken: a
# second app accepts one connection and reads its 16 MiB with a 0.2 s pause every
# 512 KiB (its socket fills, mw-pvm holds up to a window for it, then the app takes
# bytes out: from the second pause on, mw-pvm knows the app reads); then 12
# connections it never accepts keep pushing 300 KiB each, made again when reset, so
# pvm.pending_total stays reached while the upload's buffer drains and grows again
# (on the old code it was reset as soon as it grew to the flood's size).
PORT2=8091
mw_spawn reader shimmed "$PY" "$PP" slowread "$PORT2" 512 0.2 60
mw_wait_for "ins_listens $PORT2" 20 || mw_fail "the reading app does not listen"
mw_spawn upload in_cli "$PY" "$PP" upload "$INS_IP" "$PORT2" 16
ULOG=$(mw_logfile upload)
mw_wait_for "[ \$(grep -c '^read' '$(mw_logfile reader)') -ge 2 ]" 20 ||
	mw_fail "the app did not read the upload: $(cat "$(mw_logfile reader)")"
R0=$(resets)
mw_spawn flood in_cli "$PY" "$PP" flood "$INS_IP" "$PORT2" 12 300 30
mw_wait_for "[ \$(resets) -ge $((R0 + 4)) ]" 20 ||
	mw_fail "the flood did not reach pvm.pending_total ($(resets) reset, $R0 before)"
grep -q '^upload' "$ULOG" && mw_log "note: the upload ended before the STATUS line showed the flood's resets"
mw_wait_for "grep -q '^upload' '$ULOG'" 120 || mw_fail "the upload did not end"
grep -q '^upload ok 16777216$' "$ULOG" ||
	mw_fail "the upload the app was reading did not get through the flood: $(cat "$ULOG"); $(grep 'reset' "$PVM_LOG" | tail -3)"
R1=$(resets)
mw_log "ok: the 16 MiB upload got through exactly while the flood had $((R1 - R0)) connection(s) reset"
