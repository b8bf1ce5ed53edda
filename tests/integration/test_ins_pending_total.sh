#!/bin/bash
# test_ins_pending_total.sh - ins.pending_total bounds what all pending buffers of mw-ins hold
#
# mw-ins with socket_window 1 MiB and pending_total 2 MiB, a shimmed threaded server
# (bp_probe.py) sending 32 MiB to each client that asks:
#   four clients ask and read nothing (4 KiB receive buffer): each would pin about a
#     window in the INS's pending buffers, 4 MiB together; the INS resets the largest
#     while over the bound, so at least two of them are reset (their log line, and the
#     STATUS= counter: a notify socket stands in for systemd);
#   meanwhile a fifth client downloads 16 MiB, whole;
#   released, the four read what they can: the reset ones see a reset or an EOF before
#     the 32 MiB; the STATUS= line shows the pending bytes back under the bound.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
BP=$(dirname "$0")/bp_probe.py
MAX=$((2 * 1024 * 1024))
STALL=$((32 * 1024 * 1024))
SIZE=$((16 * 1024 * 1024))
PORT=9430
mw_notify_up
# shellcheck disable=SC2034 # read by mw_appliance_up
MW_INS_CONF="socket_window = 1048576; pending_total = $MAX;"
# shellcheck disable=SC2034 # read by mw_appliance_up; the bulk goes through the data pipe
MW_PVM_CONF="data_pipe = true;"
mw_appliance_up
unset NOTIFY_SOCKET
INS_LOG=$(mw_logfile ins1)

mw_spawn server shimmed "$PY" "$BP" server "$PORT" "$MW_TMP/release"
mw_wait_for "ins_listens $PORT" 15 || mw_fail "the shimmed server does not listen"

for i in 1 2 3 4; do
	mw_spawn "stall-$i" in_cli timeout 60 "$PY" "$BP" stall "$INS_IP" "$PORT" get "$STALL" "$MW_TMP/release"
done
for i in 1 2 3 4; do
	mw_wait_for "grep -q stalled '$(mw_logfile "stall-$i")'" 20 || mw_fail "stalled client $i did not start"
done
mw_wait_for "[ \$(grep -c 'pending total reached' '$INS_LOG') -ge 2 ]" 10 ||
	mw_fail "four stuck windows over a 2 MiB bound, but mw-ins reset $(grep -c 'pending total reached' "$INS_LOG") of them"

mw_spawn fast in_cli timeout 30 "$PY" "$BP" get "$INS_IP" "$PORT" "$SIZE"
mw_wait_for "grep -q '^get ' '$(mw_logfile fast)'" 30 || mw_fail "the normal download did not finish: $(cat "$(mw_logfile fast)")"
n=$(awk '/^get / { print $2 }' "$(mw_logfile fast)")
[ "$n" = "$SIZE" ] || mw_fail "the normal download got $n bytes, want $SIZE"

touch "$MW_TMP/release"
cut=0
for i in 1 2 3 4; do
	f=$(mw_logfile "stall-$i")
	mw_wait_for "grep -q '^get \|^reset ' '$f'" 30 || mw_fail "stalled client $i did not finish once released: $(cat "$f")"
	n=$(awk '/^(get|reset) / { print $2 }' "$f")
	[ "$n" -lt "$STALL" ] && cut=$((cut + 1))
done
[ "$cut" -ge 2 ] || mw_fail "only $cut of the 4 stuck clients were cut short"

# Every reset left the total within the bound; so does the STATUS= line, now and later.
while read -r held; do
	[ "$held" -le "$MAX" ] || mw_fail "a reset left $held bytes pending, over $MAX"
done < <(sed -n 's/.*pending total reached: .* (\([0-9]*\) of .*/\1/p' "$INS_LOG")
resets=$(grep -c 'pending total reached' "$INS_LOG")
mw_wait_for "grep -q 'STATUS=ins 1: .*pending: 0 bytes, [1-9][0-9]* resets at pending_total' '$(mw_logfile notify)'" 10 ||
	mw_fail "mw-ins's STATUS= line: $(grep 'ins 1' "$(mw_logfile notify)" | tail -1)"
# The bulk went through the channel's data pipe (DATA_PIPE): spliced while TCP took it,
# copied into the pending buffers of the stuck ones; every byte checked by the probe.
status=$(grep 'STATUS=ins 1: ' "$(mw_logfile notify)" | tail -1)
spliced=$(sed -n 's/.*data pipe: \([0-9]*\) bytes spliced, \([0-9]*\) copied.*/\1/p' <<<"$status")
copied=$(sed -n 's/.*data pipe: \([0-9]*\) bytes spliced, \([0-9]*\) copied.*/\2/p' <<<"$status")
[ "${spliced:-0}" -gt 0 ] || mw_fail "data pipe: nothing spliced ($status)"
[ "${copied:-0}" -gt 0 ] || mw_fail "data pipe: nothing copied to pending buffers ($status)"
kill -0 "$(mw_pid ins1)" || mw_fail "mw-ins died"
kill -0 "$(mw_pid pvm)" || mw_fail "mw-pvm died"
mw_log "pending_total 2 MiB: $cut of 4 stuck clients cut short ($resets resets logged), 16 MiB download whole; data pipe $spliced spliced, $copied copied"
