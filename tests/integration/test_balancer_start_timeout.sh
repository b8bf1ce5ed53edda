#!/usr/bin/env bash
# test_balancer_start_timeout.sh - balancer.start_timeout_ms: an INS that never joins
# mw-pvm is killed and replaced; one that joined and waits for the app is left alone.
#
# The gap this closes (issue 15): an INS (a Xen domain above all: its kernel or init can
# hang) that never became ready stayed "starting" for ever and was never replaced.
# Case 1: real mw-ins, no app: it joins mw-pvm and stays starting past the timeout, the
# same INS, no fail_start_timeout.  Case 2: balancer.ins_binary is a program that never
# joins: each INS is killed after the timeout, counted and replaced by a new one.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/balancer_lib.sh"
mw_require_root
mw_require_cmd ip
mw_ins_user >/dev/null
PVM=$(mw_need_bin mw-pvm)
BAL=$(mw_need_bin mw-balancer)
MWCTL=$MW_BUILD_DIR/tools/mwctl
[ -x "$MWCTL" ] || mw_fail "mwctl is not built ($MWCTL)"
st() { ctl status | awk -v k="$1" '$1 == k {print $2}'; }
insf() { ctl ins list | awk -v id="$1" -v c="$2" 'NR > 1 && $1 == id {print $c}'; }

# conf FILE [KEYS] [START_TIMEOUT_MS]: the test's configuration, KEYS added to the
# balancer section, start_timeout_ms 1500 unless given.
conf() {
	mw_write_config "$1" "pvm: { control_socket = \"$MW_RUNTIME_DIR/pvm.sock\";
	ins_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; heartbeat_timeout_ms = 1000; };
ins: { pvm_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; heartbeat_ms = 200; };
balancer: { control_socket = \"$MW_RUNTIME_DIR/balancer.sock\"; backend = \"netns\";
	min_ins = 1; max_ins = 1; listen = [ \"127.0.0.1:$PORT\" ];
	subnet = \"$SUBNET_PREFIX.0/24\"; bridge = \"$BR\"; tag = \"$TAG\";
	start_timeout_ms = ${3:-1500}; ${2:-} };"
}
CONF=$MW_TMP/mwcomms.conf
# Case 1's timeout is 4 s: it covers the namespace, an ASan mw-ins and its join on a
# loaded machine (the clock starts before the spawn), and the case looks past it.
conf "$CONF" "" 4000
mw_spawn pvm "$PVM" -c "$CONF"
mw_wait_for "[ -S '$MW_RUNTIME_DIR/pvm-ins.sock' ]" || mw_fail "mw-pvm did not create its sockets"

# Case 1: joined, no app listening: starting past the timeout, not replaced.
mw_spawn balancer "$BAL" -c "$CONF"
mw_wait_for "grep -q 'INS 1 joined' '$(mw_logfile pvm)'" 20 || mw_fail "INS 1 did not join mw-pvm"
sleep 5 # past start_timeout_ms
if [ "$(insf 1 2)" != starting ] || [ "$(st fail_start_timeout)" != 0 ] || [ "$(st spawned)" != 1 ]; then
	mw_fail "a joined INS waiting for the app was touched: $(ctl ins list; ctl status | grep -E 'spawned|start_timeout')"
fi
mw_log "case 1: INS 1 joined, starting for 5 s (start_timeout_ms 4000) without an app, left alone"
mw_stop balancer

# Case 2: an "mw-ins" that never joins mw-pvm: killed after 1.5 s and replaced, again.
printf '#!/bin/sh\nexec sleep 60\n' >"$MW_TMP/never-joins"
chmod 0755 "$MW_TMP/never-joins"
conf "$MW_TMP/never.conf" "ins_binary = \"$MW_TMP/never-joins\";"
mw_spawn balancer2 "$BAL" -c "$MW_TMP/never.conf"
mw_wait_for "[ \"\$(st fail_start_timeout)\" -ge 2 ]" 15 ||
	mw_fail "no INS replaced for start_timeout_ms: $(ctl status | grep -E 'spawned|replaced|start_timeout')"
log=$(mw_logfile balancer2)
grep -q 'INS 1 (mw-'"$TAG"'-ins1) not joined mw-pvm [0-9.]* s after its spawn (balancer.start_timeout_ms): killed; replacing it' "$log" ||
	mw_fail "no start_timeout line for INS 1: $(grep -i 'ins 1' "$log" | head -5)"
if [ "$(st replaced)" -lt 2 ] || [ "$(st spawned)" -lt 3 ]; then
	mw_fail "not replaced: $(ctl status | grep -E 'spawned|replaced')"
fi
mw_log "case 2: $(st fail_start_timeout) INS killed after start_timeout_ms and replaced ($(st spawned) spawned)"
echo "PASS [$MW_TEST_NAME]"
