#!/bin/bash
# test_e2e_backpressure.sh - one stalled connection never holds up the others, on the real relay
#
# Real mw-pvm and mw-ins (pvm_relay.c, ins_io.c, the rings and their credit)
# between a shimmed threaded server and clients in the cli namespace:
#   download: one client asks for 1 GiB and reads nothing (its bytes back up to
#     the INS kernel, the INS's pending buffer, the ring credit, mw-pvm and the
#     app's socket); meanwhile four clients download 16 MiB each;
#   upload: the app reads nothing from one connection whose client writes until
#     blocked (mw-pvm's pending buffer, the ring credit, mw-ins stops reading);
#     meanwhile four clients upload 16 MiB each.
# The fast transfers must all complete, byte-exact (each its own pattern), within 30 s, while the
# stalled connection is still established and stalled; released, the stalled
# transfer completes byte-exact too (its bytes were held, not lost).
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
BP=$(dirname "$0")/bp_probe.py
# Downloads go through the data pipe (pvm.data_pipe): every connection's bytes share
# it, and bp_probe checks each download's own pattern (test_e2e_bulk keeps the ring).
# shellcheck disable=SC2034 # read by mw_appliance_up
MW_PVM_CONF="data_pipe = true;"
mw_appliance_up
SIZE=$((16 * 1024 * 1024))
# Well above what the path can hold for one connection (the client's send buffer, up to
# tcp_wmem's 4 MiB; the INS's receive buffer, up to tcp_rmem's 6 MiB; the relay's window
# and the app's socket): with 8 MiB, autotuned buffers sometimes took it all and the
# upload never stalled.
STALL=$((32 * 1024 * 1024))
mw_spawn server shimmed "$PY" "$BP" server 9400 "$MW_TMP/release"
mw_wait_for "ins_listens 9400" 15 || mw_fail "the shimmed server does not listen"

# phase NAME MODE: a stalled MODE connection, then four fast ones of the same kind.
phase() {
	local name=$1 mode=$2 i t0 t1 n
	rm -f "$MW_TMP/release"
	mw_spawn "$name-stall" in_cli "$PY" "$BP" stall "$INS_IP" 9400 "$mode" "$STALL" "$MW_TMP/release"
	mw_wait_for "grep -q stalled '$(mw_logfile "$name-stall")'" 40 ||
		mw_fail "$name: the stalled connection did not fill up"
	t0=$(date +%s%N)
	for i in 1 2 3 4; do
		mw_spawn "$name-$i" in_cli timeout 40 "$PY" "$BP" "$mode" "$INS_IP" 9400 "$SIZE"
	done
	for i in 1 2 3 4; do
		mw_wait_for "grep -q '^$mode ' '$(mw_logfile "$name-$i")'" 30 ||
			mw_fail "$name: fast transfer $i did not finish within 30 s beside a stalled one"
		n=$(awk '{ print $2 }' "$(mw_logfile "$name-$i")")
		[ "$n" = "$SIZE" ] || mw_fail "$name: fast transfer $i moved $n bytes, want $SIZE"
	done
	t1=$(date +%s%N)
	in_cli ss -Htn state established "dport = :9400" | grep -q . ||
		mw_fail "$name: the stalled connection is gone"
	kill -0 "$(mw_pid "$name-stall")" || mw_fail "$name: the stalled client exited"
	if [ "$mode" = put ]; then
		n=$(sed -n 's/^stalled after //p' "$(mw_logfile "$name-stall")")
		[ "$n" -lt "$STALL" ] || mw_fail "$name: all $n bytes went through: nothing was stalled"
	fi
	mw_log "$name: 4 x $SIZE bytes in $(((t1 - t0) / 1000000)) ms beside a stalled connection"
	touch "$MW_TMP/release"
	mw_wait_for "grep -q '^$mode ' '$(mw_logfile "$name-stall")'" 30 ||
		mw_fail "$name: the stalled transfer did not finish once released"
	n=$(grep "^$mode " "$(mw_logfile "$name-stall")" | awk '{ print $2 }')
	if [ "$mode" = get ]; then
		[ "$n" = "$STALL" ] || mw_fail "$name: the released transfer got $n bytes, want $STALL"
	else
		# put reports what the app read after the release: all of it, held or not.
		[ "$n" = "$STALL" ] || mw_fail "$name: the app read $n of the $STALL bytes sent"
	fi
}
phase download get
phase upload put
