#!/usr/bin/env bash
# test_listener_release.sh - a listener whose app is gone is released with no client, at once
#
# For each way an app can lose its listening socket (exit, SIGKILL, a crash,
# dup2 over it, exec without it) the INS stops listening on the port without
# any TCP client connecting, and the app started again on the same port binds
# at once and serves.  Last, an app killed and restarted straight away (no wait
# for the release) binds at once: mw-pvm checks the port's old listener first.
source "$(dirname "$0")/lib.sh"
mw_require_cmd python3 ss
mw_appliance_up
PROBE="python3 $MW_SOURCE_DIR/tests/integration/attack_probe.py"

# start_victim NAME PORT MODE: a shimmed app listening on PORT, dying by MODE on "go".
start_victim() {
	rm -f "$MW_TMP/go-$1"
	mw_spawn "$1" bash -c "ulimit -c 0; exec env LD_PRELOAD='$SHIM' \
		MW_PVM_SOCKET='$MW_RUNTIME_DIR/pvm.sock' $PROBE victim $2 '$MW_TMP/go-$1' $3"
	mw_wait_for "grep -q '^listening pid' '$(mw_logfile "$1")'" 10 ||
		mw_fail "$1: the app did not listen: $(cat "$(mw_logfile "$1")")"
	mw_wait_for "ins_listens $2" 10 || mw_fail "$1: the INS does not listen on $2"
}

# restart_serves NAME PORT: the app again on PORT binds at once and answers a client.
restart_serves() {
	mw_spawn "$1-again" shimmed $PROBE serve "$2" "$1"
	mw_wait_for "grep -q '^listening pid' '$(mw_logfile "$1-again")'" 10 ||
		mw_fail "$1: the restarted app could not listen: $(cat "$(mw_logfile "$1-again")")"
	got=$(in_cli $PROBE client "$INS_IP" "$2")
	[ "$got" = "got b'hello $1\\n'" ] || mw_fail "$1: the restarted app does not serve: $got"
	mw_stop "$1-again"
}

# released NAME PORT: no INS listener on PORT within the deadline, no client involved.
released() {
	local t0=$SECONDS
	mw_wait_for "! ins_listens $2" 10 || mw_fail "$1: the listener on $2 was not released"
	mw_log "$1: released after <= $((SECONDS - t0 + 1)) s with no client"
}

port=7100
for mode in exit kill segv dup2 exec; do
	port=$((port + 1))
	start_victim "$mode" "$port" "$([ "$mode" = kill ] && echo stay || echo "$mode")"
	if [ "$mode" = kill ]; then
		pid=$(sed -n 's/^listening pid \([0-9]*\) .*/\1/p' "$(mw_logfile kill)")
		kill -KILL "$pid"
	else
		touch "$MW_TMP/go-$mode"
	fi
	released "$mode" "$port"
	n=$(grep -c '^accepted' "$(mw_logfile "$mode")" || true)
	[ "$n" = 0 ] || mw_fail "$mode: a client was involved"
	case $mode in
	dup2 | exec) # the process lives on without the socket
		mw_wait_for "grep -q 'dup2 done' '$(mw_logfile "$mode")' || [ '$mode' = exec ]" 5
		kill -0 "$(sed -n 's/^listening pid \([0-9]*\) .*/\1/p' "$(mw_logfile "$mode")")" ||
			mw_fail "$mode: the app should still run" ;;
	esac
	restart_serves "$mode" "$port"
	mw_stop "$mode"
	mw_log "case $mode: OK"
done

# --- killed and restarted at once: the port's dead listener is checked before BIND -----
port=$((port + 1))
start_victim quick "$port" stay
pid=$(sed -n 's/^listening pid \([0-9]*\) .*/\1/p' "$(mw_logfile quick)")
kill -KILL "$pid"
for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
restart_serves quick "$port"
mw_log "case restart at once: OK"
# The restarted apps were stopped (SIGTERM) too: nothing is left listening.
mw_wait_for "! in_ins ss -Hltn | grep -q ':71[0-9][0-9] '" 10 ||
	mw_fail "listeners left on the INS: $(in_ins ss -Hltn)"

# --- an INS dies while an app's socket there is bound, not listening: its copies go too ---
# INS 2 in a namespace of its own; the app binds two sockets, so that round-robin puts
# one on each INS and each has a copy on the other.  INS 1 is killed, the app exits;
# then no copy may hold either port on INS 2: an app binds both again and serves.
mw_netns_add ins2
NS_INS2=$(mw_netns ins2)
mw_spawn ins2 ip netns exec "$NS_INS2" "$INS" --id 2 -c "$CONF"
mw_wait_for "grep -q 'INS 2 joined' '$PVM_LOG'" 10 || mw_fail "bound: INS 2 did not join"
mw_spawn bound shimmed $PROBE bound 7200 "$MW_TMP/go-bound"
mw_wait_for "grep -q '^bound pid' '$(mw_logfile bound)'" 10 ||
	mw_fail "bound: the app could not bind: $(cat "$(mw_logfile bound)")"
sleep 1 # the copies are made on INS 2 after bind() returns
ended=$(grep -c 'INS 1: channel ended' "$PVM_LOG" || true)
kill -KILL "$(mw_pid ins1)"
mw_stop ins1 1
mw_wait_for "[ \$(grep -c 'INS 1: channel ended' '$PVM_LOG') -gt $ended ]" 10 ||
	mw_fail "bound: mw-pvm did not notice INS 1 died"
touch "$MW_TMP/go-bound"
mw_stop bound 5
for p in 7200 7201; do
	mw_spawn "again$p" shimmed $PROBE serve "$p" "again$p"
	mw_wait_for "grep -q '^listening pid' '$(mw_logfile "again$p")'" 10 ||
		mw_fail "bound: port $p is still held on INS 2: $(cat "$(mw_logfile "again$p")")"
	got=$(ip netns exec "$NS_INS2" $PROBE client 127.0.0.1 "$p")
	[ "$got" = "got b'hello again$p\\n'" ] || mw_fail "bound: port $p does not serve: $got"
	mw_stop "again$p"
done
kill -0 "$(mw_pid pvm)" || mw_fail "bound: mw-pvm died"
mw_log "case INS death while bound: OK"
mw_log "PASS"
