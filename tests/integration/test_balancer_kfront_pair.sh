#!/usr/bin/env bash
# test_balancer_kfront_pair.sh - two kernel front ends on one host leave each other's
# connections alone
#
# The bug this carries: the conntrack mark of a connection steered to INS N was
# 0x6d770000 | N in every balancer, so when one balancer's INS 1 died and it deleted the
# conntrack entries of that mark, it deleted the established connections of every other
# balancer's INS 1 too: their next packet met no NAT and was reset, or their answer
# reached the client un-NATed and was never seen (a hang).  Seen as resets in
# test_balancer_autoscale_kernel and a 15 s hang in test_balancer_health_kernel when
# other balancers ran on the machine.
#
# A (bal_up) and B each have INS 1 and one held keep-alive connection.  B has its own
# tag, bridge, subnet, front-end address and port, and its own mw-pvm (index 1: INS ids
# are per mw-pvm, one refuses a second INS 1) and nginx.  kill -9 of A's INS 1: A
# removes its connection's conntrack entry; B's stays (the same conntrack id) and B's
# connection answers again.
export MW_BALANCER_MODE=kernel
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/balancer_lib.sh"
mw_require_cmd conntrack python3
bal_up 1 1

B_FRONT=${MW_FRONT%.*}.2
B_PORT=$((PORT + 1))
B_CONF=$MW_TMP/b.conf
ip addr add "$B_FRONT/32" dev "$MW_PREFIX-fe" || mw_fail "cannot add $B_FRONT"
sed -e "s|/pvm.sock|/pvm1.sock|g; s|/pvm-ins.sock|/pvm1-ins.sock|g; s|pvm: {|pvm: { index = 1;|" \
	-e "s|/balancer.sock|/balancer-b.sock|; s|tag = \"$TAG\"|tag = \"q$(($$ % 100000))\"|" \
	-e "s|bridge = \"$BR\"|bridge = \"mwq$(($$ % 100000))\"|" \
	-e "s|subnet = \"$SUBNET_PREFIX.0/24\"|subnet = \"10.$((200 + $$ % 50)).$((($$ + 125) % 250)).0/24\"|" \
	-e "s|listen = \[ \"$MW_FRONT:$PORT\" \]|listen = [ \"$B_FRONT:$B_PORT\" ]|" "$CONF" >"$B_CONF"
if ! grep -q "index = 1;" "$B_CONF" || ! grep -q "\"$B_FRONT:$B_PORT\"" "$B_CONF" ||
	! grep -q mwq "$B_CONF"; then
	mw_fail "B's configuration was not derived: $(cat "$B_CONF")"
fi
mw_spawn pvm1 "$PVM" -c "$B_CONF"
mw_wait_for "[ -S '$MW_RUNTIME_DIR/pvm1.sock' ] && [ -S '$MW_RUNTIME_DIR/pvm1-ins.sock' ]" ||
	mw_fail "mw-pvm 1 did not create its sockets"
mw_spawn balB "$BAL" -c "$B_CONF"
mw_wait_for "grep -q 'INS 1 joined' '$(mw_logfile pvm1)'" 20 || mw_fail "B's INS 1 did not join mw-pvm 1"
NGX_B=$MW_TMP/nginx-b
mkdir -p "$NGX_B"
sed -e "s|$NGX/|$NGX_B/|g; s|listen $PORT;|listen $B_PORT;|" "$NGX/nginx.conf" >"$NGX_B/nginx.conf"
mw_spawn nginxB env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm1.sock" \
	nginx -c "$NGX_B/nginx.conf"
ctlb() { "$MWCTL" -s "$MW_RUNTIME_DIR/balancer-b.sock" "$@"; }
mw_wait_for "[ -s '$NGX_B/nginx.pid' ] && ctlb ins list | awk '\$1 == 1 && \$2 == \"ready\"' | grep -q ." 20 ||
	mw_fail "B's nginx or INS 1 not ready: $(ctlb ins list; tail -5 "$(mw_logfile balB)")"

# ct_ids ADDR PORT: the conntrack ids of the connections to ADDR:PORT.
ct_ids() {
	conntrack -L -p tcp --orig-dst "$1" --dport "$2" -o id 2>/dev/null |
		sed -n 's/.* id=\([0-9]*\).*/\1/p' | sort
}
bal_hold "$MW_TMP/ha" 2>/dev/null # its second request meets a reset: no traceback
hapid=$!
MW_FRONT=$B_FRONT PORT=$B_PORT bal_hold "$MW_TMP/hb"
hbpid=$!
mw_wait_for "[ -s '$MW_TMP/ha.1' ] && [ -s '$MW_TMP/hb.1' ]" 20 || mw_fail "held connections: no first answers"
[ "$(cat "$MW_TMP/ha.1") $(cat "$MW_TMP/hb.1")" = "ok ok" ] ||
	mw_fail "held connections: first answers $(cat "$MW_TMP/ha.1") $(cat "$MW_TMP/hb.1")"
ida=$(ct_ids "$MW_FRONT" "$PORT")
idb=$(ct_ids "$B_FRONT" "$B_PORT")
[ "$(echo "$ida" | wc -w) $(echo "$idb" | wc -w)" = "1 1" ] ||
	mw_fail "want one conntrack entry per front end: A '$ida' B '$idb'"

kill -9 "$(ctl ins list | awk 'NR > 1 && $1 == 1 {print $4}')" || mw_fail "no INS 1 in A"
mw_wait_for "grep -q 'INS 1 .* died' '$BAL_LOG'" 10 || mw_fail "A did not see its INS 1 die"
mw_wait_for "! ct_ids '$MW_FRONT' '$PORT' | grep -qx '$ida'" 10 ||
	mw_fail "A's dead INS 1 kept its connection's conntrack entry"
[ "$(ct_ids "$B_FRONT" "$B_PORT")" = "$idb" ] ||
	mw_fail "A's dead INS 1 took B's connection's conntrack entry (id $idb, now '$(ct_ids "$B_FRONT" "$B_PORT")')"
touch "$MW_TMP/hb.go" "$MW_TMP/ha.go"
wait "$hbpid" || true
[ "$(cat "$MW_TMP/hb.2" 2>/dev/null)" = ok ] || mw_fail "B's held connection did not answer again"
wait "$hapid" 2>/dev/null || true
mw_log "A's INS 1 died: its connection's conntrack entry removed, B's kept and answering"
