#!/usr/bin/env bash
# test_guard_forged.sh - a compromised INS cannot get a client blocked on the other INS
#
# mw-pvm with the honest INS 1, a shimmed python3 HTTP server on port 8080 and
# mw-guard (enforce) on mw-pvm's stream; hostile_ins joins as INS 7 (user nobody) and
# reports 12 connections "from" the client's address that never send a byte: slow
# connections under pressure, a lie mw-pvm cannot see.  Cases:
#   scoped     mw-guard closes them and blocks the address on INS 7 only (evidence
#              ins=7,pvm=0; mw-pvm logs "on INS 7"; INS 7 gets the AddrBlock); the
#              client keeps fetching through INS 1
#   own        the same address then holds idle connections on INS 1 itself: that
#              INS's own evidence blocks it there (evidence ins=1), and the client is
#              refused; still no block of every INS (never two INS at once)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hostile_lib.sh"

GP=$(dirname "$0")/guard_probe.py
NFP=$(dirname "$0")/nf_probe.py
GUARD=$(mw_need_bin mw-guard)
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
PORT=8080
HID=7

hostile_up "guard: { control_socket = \"$MW_RUNTIME_DIR/guard.sock\";
	mode = \"enforce\"; listeners = [ \"$PORT:http\" ]; tick_ms = 200;
	slow_after_ms = 1000; idle_ms = 1500; pressure_slow = 10; block_slow = 10;
	block_expiry_s = 120; good_memory_ms = 1000; calm_ms = 2000; };"
GLOG=$(mw_logfile guard)
mw_spawn guard "$GUARD" -c "$CONF"
mw_wait_for "grep -q 'notice: ready: netflow .* subscribed, mode enforce' '$GLOG'" 20 ||
	mw_fail "mw-guard did not subscribe: $(cat "$GLOG")"
fetch_ok() { in_cli curl -sf -o /dev/null --max-time 3 "http://$INS_IP:$PORT/"; }
fetch_ok || mw_fail "the client cannot fetch before the attack"

# --- scoped: the forged connections get the address blocked on the liar only
mw_spawn hostile as_nobody "$HOSTILE" "$MW_RUNTIME_DIR/pvm-ins.sock" "$HID" forge 12 "$CLI_IP" 90
HLOG=$(mw_logfile hostile)
mw_wait_for "grep -q 'forged 12 connection' '$HLOG'" 20 || mw_fail "scoped: no forgery: $(cat "$HLOG")"
mw_wait_for "grep -q 'action [0-9]*: block $CLI_IP reason=slow_source ' '$GLOG'" 30 ||
	mw_fail "scoped: no block: $(grep -E ': (block|close) ' "$GLOG" | tail -5)"
mw_wait_for "grep -q 'blocked on us: $CLI_IP' '$HLOG'" 10 || mw_fail "scoped: INS $HID got no AddrBlock"
for i in 1 2 3; do
	fetch_ok || mw_fail "scoped: fetch $i through INS 1 refused: the liar's block reached it"
done
grep -q "action [0-9]*: block $CLI_IP reason=slow_source evidence=.*,ins=$HID,pvm=0," "$GLOG" ||
	mw_fail "scoped: the block's evidence does not name INS $HID: $(grep ": block $CLI_IP" "$GLOG")"
grep -q "action [0-9]*: block $CLI_IP .*ins=all" "$GLOG" &&
	mw_fail "scoped: blocked on every INS on one INS's word: $(grep ": block $CLI_IP" "$GLOG")"
grep -q "netflow: block $CLI_IP:0 on INS $HID\$" "$PVM_LOG" ||
	mw_fail "scoped: mw-pvm did not scope the block: $(grep 'netflow: block' "$PVM_LOG")"
kill -0 "$(mw_pid hostile)" 2>/dev/null || mw_fail "scoped: the liar was cut (nothing it did is detectable)"
mw_log "scoped: ok ($CLI_IP blocked on INS $HID only, served by INS 1)"

# --- own: slow connections of the address on INS 1 get it blocked on INS 1
guard_idle_clients own
mw_wait_for "grep -q 'action [0-9]*: block $CLI_IP reason=slow_source evidence=.*,ins=1,pvm=0,' '$GLOG'" 30 ||
	mw_fail "own: no block on INS 1: $(grep -E ': block ' "$GLOG" | tail -5)"
mw_wait_for "grep -q 'netflow: block $CLI_IP:0 on INS 1\$' '$PVM_LOG'" 10 ||
	mw_fail "own: mw-pvm did not block on INS 1: $(grep 'netflow: block' "$PVM_LOG")"
mw_wait_for "! fetch_ok" 10 || mw_fail "own: the client still fetches through INS 1"
grep -q "action [0-9]*: block $CLI_IP .*ins=all" "$GLOG" &&
	mw_fail "own: a block of every INS without two INS at once: $(grep ": block $CLI_IP" "$GLOG")"
mw_log "own: ok (blocked on INS 1 by INS 1's own evidence)"
