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
#   rotate    reloaded with guard.balancer_socket and no closes: sustained pressure on
#             INS 1 makes mw-guard ask the balancer for a fresh INS and drain INS 1
#             (action rotate, result ok in mwctl guard actions, counted in status), once
#             per rotate_interval_ms; new requests go to the fresh INS; INS 1 stops
#             once its attackers are gone
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/balancer_lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
GP=$(dirname "$0")/guard_probe.py
GUARD=$(mw_need_bin mw-guard)
N=20

bal_up 1 2
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

# --- rotate
INS1=$(ctl ins list | awk 'NR > 1 && $2 == "ready" {print $1}')
[ "$INS1" ] && [ "$(echo "$INS1" | wc -l)" = 1 ] || mw_fail "rotate: not one ready INS: $(ctl ins list)"
sed -i "s|block_slow = 1000; };|block_slow = 1000; close_max = 0;\n\tbalancer_socket = \"$MW_RUNTIME_DIR/balancer.sock\"; rotate_after_ms = 1000;\n\trotate_interval_ms = 600000; };|" "$CONF"
grep -q 'rotate_interval_ms = 600000' "$CONF" || mw_fail "rotate: the configuration was not edited"
"$MWCTL" -c "$CONF" guard reload >/dev/null || mw_fail "rotate: mwctl guard reload failed: $(tail -3 "$GLOG")"
mw_stop idle
mw_spawn idle2 "$PY" "$GP" idle 127.0.0.1 "$PORT" "$N" 120
ILOG2=$(mw_logfile idle2)
mw_wait_for "grep -q '^open $N' '$ILOG2'" 20 || mw_fail "rotate: clients did not connect: $(cat "$ILOG2")"
mw_wait_for "grep -q 'action [0-9]*: rotate ins:$INS1 reason=pressure evidence=ins=$INS1,ins_held=[0-9]*,ins_slow=[0-9]*,held=' '$GLOG'" 30 ||
	mw_fail "rotate: no rotate action for INS $INS1: $(grep 'action' "$GLOG" | tail -5)"
mw_wait_for "grep -q 'rotate: INS [0-9]* spawned, INS $INS1 draining' '$GLOG'" 20 ||
	mw_fail "rotate: the balancer did not carry it out: $(grep -i 'rotate' "$GLOG" | tail -3)"
INS2=$(grep -m1 "rotate: INS [0-9]* spawned" "$GLOG" | sed 's/.*rotate: INS \([0-9]*\) spawned.*/\1/')
[ "$INS2" != "$INS1" ] || mw_fail "rotate: the fresh INS is the attacked one"
ctl ins list | awk -v i="$INS1" 'NR > 1 && $1 == i && $2 == "draining"' | grep -q . ||
	mw_fail "rotate: INS $INS1 is not draining: $(ctl ins list)"
mw_wait_for "ctl ins list | awk -v i=$INS2 'NR > 1 && \$1 == i && \$2 == \"ready\"' | grep -q ." 20 ||
	mw_fail "rotate: the fresh INS $INS2 did not become ready: $(ctl ins list)"
acts=$("$MWCTL" -c "$CONF" guard actions) || mw_fail "rotate: mwctl guard actions failed"
echo "$acts" | grep -q " rotate  *ins:$INS1  *reason=pressure  *result=ok  *evidence=ins=$INS1," ||
	mw_fail "rotate: mwctl guard actions has no rotate with result ok: $(echo "$acts" | grep rotate)"
st=$("$MWCTL" -c "$CONF" --json guard status) || mw_fail "rotate: mwctl guard status failed"
echo "$st" | grep -q '"rotate":1,' && echo "$st" | grep -q '"rotate_ok":1,' ||
	mw_fail "rotate: status does not count one rotation: $st"
# New connections go to the fresh INS while INS 1 drains.
before=$(ins_field 6 | awk -v i="$INS2" '$1 == i {print $2}')
curl -s --max-time 10 -o /dev/null "$URL/index.html" || mw_fail "rotate: nginx does not answer"
after=$(ins_field 6 | awk -v i="$INS2" '$1 == i {print $2}')
[ "${after:-0}" -gt "${before:-0}" ] || mw_fail "rotate: the request did not go to INS $INS2: $(ctl ins list)"
# Pressure goes on (nothing is closed): still one rotation, the interval holds.
sleep 3
[ "$(grep -c 'action [0-9]*: rotate ' "$GLOG")" = 1 ] || mw_fail "rotate: more than one rotation: $(grep 'rotate' "$GLOG")"
# The attackers leave: INS 1 has drained and stops.
mw_stop idle2
mw_wait_for "! ctl ins list | awk -v i=$INS1 'NR > 1 && \$1 == i && \$2 != \"dead\"' | grep -q ." 30 ||
	mw_fail "rotate: INS $INS1 did not stop once drained: $(ctl ins list)"
mw_log "rotate: ok (INS $INS2 spawned, INS $INS1 drained)"
