#!/bin/bash
# test_guard_balancer.sh - mw-guard on mw-balancer's merged Netflow stream, nginx behind it
#
# mw-pvm, nginx under the shim, mw-balancer (netns backend, one INS) in front, and
# mw-guard reading the balancer's AF_UNIX merged stream.  Its requests go through the
# balancer to the PVM owning each socket.  Named cases:
#   ready     mw-guard subscribes to the merged stream
#   baseline  nginx's listener, seen at its first accept: shield_set reason=baseline,
#             every request answered through the balancer
#   enforce   20 connections holding half a request head: closes (answered ok through
#             the balancer) and the client sees every connection cut
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/balancer_lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
GP=$(dirname "$0")/guard_probe.py
GUARD=$(mw_need_bin mw-guard)
N=20

bal_up 1 1
cat >>"$CONF" <<EOF2
guard: { netflow = "$MW_RUNTIME_DIR/balancer-$TAG-netflow.sock";
	control_socket = "$MW_RUNTIME_DIR/guard.sock"; listeners = [ "$PORT:http" ];
	allow = [ "10.250.250.0/24" ]; tick_ms = 200; slow_after_ms = 1000; idle_ms = 1500;
	pressure_slow = 10; block_slow = 1000; };
EOF2
GLOG=$(mw_logfile guard)

# --- ready
mw_wait_for "[ -S '$MW_RUNTIME_DIR/balancer-$TAG-netflow.sock' ]" 20 ||
	mw_fail "ready: the balancer's merged stream is not there"
mw_spawn guard "$GUARD" -c "$CONF"
mw_wait_for "grep -q 'notice: ready: netflow $MW_RUNTIME_DIR/balancer-$TAG-netflow.sock subscribed' '$GLOG'" 20 ||
	mw_fail "ready: mw-guard did not subscribe: $(cat "$GLOG")"
mw_log "ready: ok"

# --- baseline: nginx listened before mw-guard came: its first accept shows the listener.
curl -s --max-time 10 -o /dev/null "$URL/index.html" || mw_fail "baseline: nginx does not answer"
mw_wait_for "grep -q 'action 1: shield_set [^ ]*:$PORT reason=baseline evidence=filter=http,' '$GLOG'" 20 ||
	mw_fail "baseline: no baseline action: $(cat "$GLOG")"
for o in ShieldFilter ShieldDeadlineMs ShieldOutBuffer; do
	mw_wait_for "grep -q 'action 1: $o \(accepted\|refused\)' '$GLOG'" 20 ||
		mw_fail "baseline: no answer to $o through the balancer: $(cat "$GLOG")"
	grep -q "action 1: $o accepted" "$GLOG" ||
		mw_fail "baseline: refused through the balancer: $(grep "action 1: $o" "$GLOG")"
done
mw_log "baseline: ok (accepted through the balancer)"
# The idle clients below would be held by the accept filter away from nginx: lift it
# through the merged stream (an operator's write), so that mw-guard's closes are tested.
NFP=$(dirname "$0")/nf_probe.py
LSOCK=$(grep -m1 'action 1: shield_set' "$GLOG" | sed 's/.*,sock=\([0-9]*\).*/\1/')
r=$("$PY" "$NFP" req "$MW_RUNTIME_DIR/balancer-$TAG-netflow.sock" 0x2011 3 "$LSOCK" 0)
echo "$r" | grep -q 'status=0 ' || mw_fail "baseline: lifting the filter failed: $r"

# --- enforce
mw_spawn idle "$PY" "$GP" idle 127.0.0.1 "$PORT" "$N" 60
ILOG=$(mw_logfile idle)
mw_wait_for "grep -q '^open $N' '$ILOG'" 20 || mw_fail "enforce: clients did not connect: $(cat "$ILOG")"
mw_wait_for "[ \$(grep -c 'action [0-9]*: close [^ ]* reason=slow evidence=sock=' '$GLOG') -ge $N ]" 30 ||
	mw_fail "enforce: fewer than $N close actions: $(tail -5 "$GLOG")"
mw_wait_for "[ \$(grep -c 'action [0-9]*: IsOpen accepted' '$GLOG') -ge $N ]" 20 ||
	mw_fail "enforce: the balancer did not carry the closes: $(grep -c 'IsOpen accepted' "$GLOG") accepted, $(grep 'IsOpen' "$GLOG" | grep -v accepted | head -3)"
mw_wait_for "[ \$(grep -c '^closed ' '$ILOG') -ge $N ]" 20 ||
	mw_fail "enforce: only $(grep -c '^closed ' "$ILOG") of $N connections were cut"
grep -q 'action [0-9]*: block ' "$GLOG" && mw_fail "enforce: blocked although block_slow = 1000"
curl -s --max-time 10 -o /dev/null "$URL/index.html" || mw_fail "enforce: nginx no longer answers"
mw_log "enforce: ok ($N closed through the balancer)"
