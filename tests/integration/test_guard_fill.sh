#!/usr/bin/env bash
# test_guard_fill.sh - a compromised INS filling mw-guard's tables does not hide an attacker
#
# mw-pvm with the honest INS 1, a shimmed python3 HTTP server on port 8080 and
# mw-guard (enforce, tables of 64 connections and 64 sources) on mw-pvm's stream;
# hostile_ins joins as INS 7 (user nobody) and reports 64 silent connections, each
# from its own address (10.77.0.1 ...): mw-guard's connection and source tables are
# full of them.  The client then holds 12 idle connections on INS 1:
#   tracked   INS 1, holding none of the table, takes the room of the liar's
#             connections (conn_evictions in mwctl guard status), and of the sources
#             they leave without connections (source_evictions)
#   blocked   the client's address is blocked on INS 1 by INS 1's own evidence
#             (evidence ins=1,pvm=0), and refused; never on every INS
# Before the tables were shared, the client's connections were dropped from a full
# table: never closed nor blocked.  close_max = 0 keeps the liar's connections open
# (a liar would make up new ones as fast as they are closed): blocks only.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hostile_lib.sh"

GP=$(dirname "$0")/guard_probe.py
NFP=$(dirname "$0")/nf_probe.py
GUARD=$(mw_need_bin mw-guard)
MWCTL=$MW_BUILD_DIR/tools/mwctl
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
PORT=8080
HID=7
N=64

hostile_up "guard: { control_socket = \"$MW_RUNTIME_DIR/guard.sock\";
	mode = \"enforce\"; listeners = [ \"$PORT:http\" ]; tick_ms = 200;
	slow_after_ms = 1000; idle_ms = 1500; pressure_slow = 10; block_slow = 10;
	block_prefix_sources = 0; block_expiry_s = 120; good_memory_ms = 1000;
	calm_ms = 2000; close_max = 0; max_conns = $N; max_sources = $N; };"
GLOG=$(mw_logfile guard)
ctl() { "$MWCTL" -c "$CONF" "$@"; }
stat_of() { ctl guard status | sed -n "s/^$1  *\([0-9]*\)$/\1/p"; }
mw_spawn guard "$GUARD" -c "$CONF"
mw_wait_for "grep -q 'notice: ready: netflow .* subscribed, mode enforce' '$GLOG'" 20 ||
	mw_fail "mw-guard did not subscribe: $(cat "$GLOG")"
fetch_ok() { in_cli curl -sf -o /dev/null --max-time 3 "http://$INS_IP:$PORT/"; }
fetch_ok || mw_fail "the client cannot fetch before the attack"

# --- the liar fills the tables
mw_spawn hostile as_nobody "$HOSTILE" "$MW_RUNTIME_DIR/pvm-ins.sock" "$HID" spread $N 10.77.0.1 90
HLOG=$(mw_logfile hostile)
mw_wait_for "grep -q 'forged $N connection(s) from 10.77.0.1 on' '$HLOG'" 20 ||
	mw_fail "fill: no forgery: $(cat "$HLOG")"
mw_wait_for "[ \"\$(stat_of conns)\" = $N ]" 20 ||
	mw_fail "fill: mw-guard's table is not full of the liar's: $(ctl guard status)"
[ "$(stat_of sources)" = $N ] || mw_fail "fill: the sources are not full: $(ctl guard status)"
mw_log "fill: ok ($N made-up connections from $N addresses)"

# --- tracked: the client's idle connections on INS 1 take the liar's room
guard_idle_clients tracked
mw_wait_for "[ \"\$(stat_of conn_evictions)\" -ge 12 ]" 20 ||
	mw_fail "tracked: the client's connections took no room: $(ctl guard status)"
[ "$(stat_of source_evictions)" -ge 1 ] ||
	mw_fail "tracked: the client's address got no source: $(ctl guard status)"
mw_log "tracked: ok (conn_evictions $(stat_of conn_evictions), source_evictions $(stat_of source_evictions))"

# --- blocked on INS 1, by INS 1's evidence
mw_wait_for "grep -q 'action [0-9]*: block $CLI_IP reason=slow_source evidence=.*,ins=1,pvm=0,' '$GLOG'" 30 ||
	mw_fail "blocked: no block on INS 1: $(grep -E ': block ' "$GLOG" | grep -v 10.77. | tail -5)"
mw_wait_for "grep -q 'netflow: block $CLI_IP:0 on INS 1\$' '$PVM_LOG'" 10 ||
	mw_fail "blocked: mw-pvm did not block on INS 1: $(grep 'netflow: block' "$PVM_LOG" | tail -3)"
mw_wait_for "! fetch_ok" 10 || mw_fail "blocked: the client still fetches through INS 1"
grep -q "action [0-9]*: block $CLI_IP .*ins=all" "$GLOG" &&
	mw_fail "blocked: a block of every INS on one INS's word: $(grep ": block $CLI_IP" "$GLOG")"
pvm_alive "after the fill"
mw_log "blocked: ok ($CLI_IP blocked on INS 1 though the liar filled the tables)"
