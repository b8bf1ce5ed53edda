#!/bin/bash
# test_guard.sh - mw-guard with real daemons: baseline, acting on idle connections, mwctl, reload, report
#
# mw-pvm + mw-ins + a shimmed worker-per-connection server on port 8480, and
# mw-guard consuming mw-pvm's AF_UNIX Netflow stream (guard.netflow = "": the
# default path).  Named cases:
#   ready      mw-guard connects, subscribes, logs "ready:"
#   baseline   the app's listen is seen: shield_set reason=baseline, sent to mw-pvm and
#              answered (read back with a Netflow READ when mw-pvm records shields)
#   enforce    30 connections holding half a request head: pressure levers, closes
#              (the client sees every connection cut), a block of the source, lifted
#              after guard.block_expiry_s
#   nat        the same idle connections while the same address fetches every 0.2 s
#              (a NAT): pressure levers without the per-source ones (src_levers=off_nat),
#              the idle ones closed, the address not blocked, every fetch answered
#   mwctl      mwctl guard status / actions show the mode, the link, the counters and
#              the actions with their evidence
#   console    mw-console shows the actions: "mw-console guard" (the configuration's
#              guard.control_socket) and the g key of the interactive console (--guard),
#              under tmux
#   reload     SIGHUP and mwctl guard reload re-read the file (mode -> report); a
#              file with an error is refused whole, the mode in force stays
#   report     the same burst: would_close lines, nothing sent, the connections survive
#   reconnect  mw-pvm stops and starts again: mw-guard notices, retries, subscribes again
# Waits are on state with generous bounds (a loaded machine): no timing is asserted.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
GP=$(dirname "$0")/guard_probe.py
NFP=$(dirname "$0")/nf_probe.py
GUARD=$(mw_need_bin mw-guard)
MWCTL=$MW_BUILD_DIR/tools/mwctl
[ -x "$MWCTL" ] || mw_fail "mwctl is not built ($MWCTL)"
CON=${MW_CONSOLE:-$MW_BUILD_DIR/tools/mw-console}
[ -x "$CON" ] || mw_fail "mw-console is not built ($CON)"
mw_require_cmd tmux
# tmux runs its own server, outside lib.sh's process bookkeeping: end it first.
TMUX_SOCK=mwgd$$
tmuxc() { tmux -L "$TMUX_SOCK" -f /dev/null "$@"; }
# shellcheck disable=SC2154 # rc is assigned inside the trap
trap 'rc=$?; tmux -L "$TMUX_SOCK" kill-server >/dev/null 2>&1 || true; _mw_cleanup $rc' EXIT
PORT=8480
N=30

mw_appliance_up "guard: { control_socket = \"$MW_RUNTIME_DIR/guard.sock\";
	mode = \"enforce\"; listeners = [ \"$PORT:http\" ]; tick_ms = 200;
	slow_after_ms = 1000; idle_ms = 1500; pressure_slow = 10; block_slow = 10;
	block_expiry_s = 4; good_memory_ms = 1000; calm_ms = 2000; };"
GLOG=$(mw_logfile guard)
ctl() { "$MWCTL" -c "$CONF" "$@"; }
field() { sed -n "s/\(^\|.* \)$1=\([^ ]*\).*/\2/p"; }

# --- ready
mw_spawn guard "$GUARD" -c "$CONF"
mw_wait_for "grep -q 'notice: ready: netflow $MW_RUNTIME_DIR/netflow-0.sock subscribed, mode enforce' '$GLOG'" 20 ||
	mw_fail "ready: mw-guard did not subscribe: $(cat "$GLOG")"
mw_log "ready: ok"

# --- baseline: the app starts after mw-guard, so its bind is observed.
mw_spawn app shimmed "$PY" "$GP" app "$PORT"
mw_wait_for "ins_listens $PORT" 20 || mw_fail "baseline: the app does not listen"
mw_wait_for "grep -q 'action 1: shield_set [^ ]*:$PORT reason=baseline evidence=filter=http,deadline_ms=10000,out_buffer=262144,stall_max=16,sock=' '$GLOG'" 20 ||
	mw_fail "baseline: no baseline action: $(cat "$GLOG")"
grep -q 'action [0-9]*: shield_set [^ ]*:8481' "$GLOG" && mw_fail "baseline: shield on an unconfigured port"
LSOCK=$(grep -m1 'action 1: shield_set' "$GLOG" | sed 's/.*,sock=\([0-9]*\).*/\1/')
# Every request of the baseline is accepted by mw-pvm and its INS.
for o in ShieldFilter ShieldDeadlineMs ShieldOutBuffer ShieldStallMax; do
	mw_wait_for "grep -q 'action 1: $o \(accepted\|refused\)' '$GLOG'" 20 ||
		mw_fail "baseline: no answer from mw-pvm to $o: $(cat "$GLOG")"
	grep -q "action 1: $o accepted" "$GLOG" ||
		mw_fail "baseline: mw-pvm refused $o: $(grep "action 1: $o" "$GLOG")"
done
KEY=$MW_RUNTIME_DIR/store/mw/pvm/netflow
NF=$(cat "$KEY")
r=$("$PY" "$NFP" req "$NF" 0x2011 2 "$LSOCK" 0)
if [ "$(echo "$r" | field status)" != 0 ] || [ "$(echo "$r" | field val0)" != 2 ]; then
	mw_fail "baseline: mw-pvm accepted the filter but reads back '$r'"
fi
mw_log "baseline: ok (the listener's filter reads back http)"
# The enforce phase plays slow clients that the accept filter would hold away from the app:
# an operator lifts the filter (the deadline and out buffer stay), so that mw-guard's own
# levers, closes and blocks are what is tested.
r=$("$PY" "$NFP" req "$NF" 0x2011 3 "$LSOCK" 0)
[ "$(echo "$r" | field status)" = 0 ] || mw_fail "baseline: lifting the filter failed: $r"
r=$(in_cli "$PY" "$GP" fetch "$INS_IP" "$PORT")
[ "$r" = ok ] || mw_fail "baseline: a benign request failed: $r"

# --- enforce: N idle connections from one address.
mw_spawn idle in_cli "$PY" "$GP" idle "$INS_IP" "$PORT" "$N" 60
ILOG=$(mw_logfile idle)
mw_wait_for "grep -q '^open $N' '$ILOG'" 20 || mw_fail "enforce: clients did not connect: $(cat "$ILOG")"
mw_wait_for "grep -q 'shield_set [^ ]*:$PORT reason=pressure evidence=held=' '$GLOG'" 20 ||
	mw_fail "enforce: no pressure levers: $(tail -20 "$GLOG")"
mw_wait_for "grep -q 'action [0-9]*: block $CLI_IP reason=slow_source evidence=slow=' '$GLOG'" 20 ||
	mw_fail "enforce: the source was not blocked: $(tail -20 "$GLOG")"
# Each connection slow at the evaluation that blocked the source got its close (a slow
# machine may accept some later: still too young to be slow then, the block cuts them).
S=$(sed -n "s/.*action [0-9]*: block $CLI_IP reason=slow_source evidence=slow=\([0-9]*\),.*/\1/p" "$GLOG" | head -1)
[ "$S" -ge 10 ] || mw_fail "enforce: blocked on $S slow connections (block_slow is 10)"
mw_wait_for "[ \$(grep -c 'action [0-9]*: close $CLI_IP:[0-9]* reason=slow evidence=sock=[0-9]*,age_ms=[0-9]*,idle_ms=[0-9]*,bytes_in=16,bytes_out=0' '$GLOG') -ge $S ]" 20 ||
	mw_fail "enforce: fewer than $S close actions: $(grep -c ': close ' "$GLOG")"
mw_wait_for "[ \$(grep -c '^closed ' '$ILOG') -ge $N ]" 20 ||
	mw_fail "enforce: only $(grep -c '^closed ' "$ILOG") of $N connections were cut: $(tail -5 "$ILOG")"
grep -q 'IsOpen refused\|AddrBlock refused' "$GLOG" &&
	mw_fail "enforce: mw-pvm refused a close or a block: $(grep 'IsOpen refused\|AddrBlock refused' "$GLOG")"
mw_wait_for "grep -q 'action [0-9]*: unblock $CLI_IP reason=expiry' '$GLOG'" 20 ||
	mw_fail "enforce: the block was not lifted after guard.block_expiry_s"
mw_stop idle
mw_log "enforce: ok ($N closed, $CLI_IP blocked and unblocked)"

# --- nat: benign clients behind the attackers' address
mw_wait_for "[ \$(grep -c 'shield_set .* reason=pressure' '$GLOG') -le \$(grep -c 'shield_clear .* reason=calm' '$GLOG') ]" 20 ||
	mw_fail "nat: the enforce case's levers did not go off after calm_ms"
off=$(wc -l <"$GLOG")
closes0=$(grep -c ': close ' "$GLOG")
mw_spawn benign in_cli "$PY" "$GP" fetches "$INS_IP" "$PORT" 6
BLOG=$(mw_logfile benign)
mw_wait_for "[ \$(grep -c '^ok' '$BLOG') -ge 2 ]" 20 || mw_fail "nat: the benign client is not served: $(cat "$BLOG")"
mw_spawn idle2 in_cli "$PY" "$GP" idle "$INS_IP" "$PORT" "$N" 60
mw_wait_for "grep -q '^open $N' '$(mw_logfile idle2)'" 20 || mw_fail "nat: clients did not connect"
mw_wait_for "tail -n +$((off + 1)) '$GLOG' | grep -q 'shield_set [^ ]*:$PORT reason=pressure evidence=held=.*src_levers=off_nat'" 20 ||
	mw_fail "nat: no pressure levers without the per-source ones: $(tail -n +$((off + 1)) "$GLOG" | grep shield_set)"
tail -n +$((off + 1)) "$GLOG" | grep 'shield_set .*reason=pressure' | grep -q 'src_max_conns\|src_rate' &&
	mw_fail "nat: per-source levers sent for a NAT: $(tail -n +$((off + 1)) "$GLOG" | grep shield_set)"
mw_wait_for "[ \$((\$(grep -c ': close ' '$GLOG') - closes0)) -ge $N ]" 20 ||
	mw_fail "nat: fewer than $N close actions"
mw_wait_for "grep -q '^done ' '$BLOG'" 20 || mw_fail "nat: the benign client did not finish"
grep -q '^done ok=[0-9]* fail=0$' "$BLOG" || mw_fail "nat: benign fetches failed: $(grep -v '^ok' "$BLOG")"
tail -n +$((off + 1)) "$GLOG" | grep -q ": block $CLI_IP " && mw_fail "nat: the NAT's address was blocked"
mw_stop idle2
mw_log "nat: ok ($N closed, $(sed -n 's/^done //p' "$BLOG"), no per-source levers, no block)"

# --- mwctl
st=$(ctl guard status) || mw_fail "mwctl: guard status failed: $st"
echo "$st" | grep -q '^mode  *enforce$' || mw_fail "mwctl: status has no 'mode enforce': $st"
echo "$st" | grep -q '^netflow  *connected$' || mw_fail "mwctl: status has no 'netflow connected': $st"
echo "$st" | grep -q "^listener .*:$PORT .*protected=yes *baseline=set" ||
	mw_fail "mwctl: status shows no protected listener: $st"
js=$(ctl --json guard status)
closes=$(echo "$js" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["close"])')
[ "$closes" -ge "$N" ] || mw_fail "mwctl: close counter $closes < $N: $js"
acts=$(ctl guard actions) || mw_fail "mwctl: guard actions failed"
echo "$acts" | grep -q "close  *$CLI_IP:[0-9]* .*reason=slow .*result=ok .*evidence=sock=" ||
	mw_fail "mwctl: no accepted close with its evidence in: $(echo "$acts" | head -5)"
echo "$acts" | grep -q "shield_set .*reason=baseline .*evidence=filter=http" ||
	mw_fail "mwctl: no baseline in the actions"
mw_log "mwctl: ok"

# --- console: one-shot (socket from the configuration), then the g key (--guard)
out=$("$CON" -c "$CONF" guard) || mw_fail "console: mw-console guard failed: $out"
echo "$out" | grep -q "^#[0-9]* close $CLI_IP:[0-9]* reason=slow result=ok evidence=sock=[0-9]*,age_ms=" ||
	mw_fail "console: no close with its evidence in: $(echo "$out" | head -5)"
echo "$out" | grep -q "^#1 shield_set [^ ]*:$PORT reason=baseline result=ok evidence=filter=http," ||
	mw_fail "console: no baseline as action 1 in: $(echo "$out" | head -3)"
[ "$(echo "$out" | grep -cv '^#[0-9]* [a-z_]* [^ ]* reason=[a-z_]* result=[^ ]* evidence=')" = 0 ] ||
	mw_fail "console: a line is not an action: $(echo "$out" | grep -v '^#[0-9]* ' | head -3)"
[ "$(echo "$out" | wc -l)" -ge $((N + 3)) ] || mw_fail "console: fewer actions than closes: $out"
tmuxc new-session -d -s con -x 200 -y 48 \
	"'$CON' -k '$MW_RUNTIME_DIR/store' --guard '$MW_RUNTIME_DIR/guard.sock'; sleep 600" ||
	mw_fail "console: tmux new-session failed"
pane() { tmuxc capture-pane -p -t con; }
mw_wait_for "pane | grep -q 'mw-console  monitor'" 10 || mw_fail "console: the console did not draw: $(pane)"
tmuxc send-keys -t con g
mw_wait_for "pane | grep -q 'guard: [0-9]* actions kept, the most recent:'" 10 ||
	mw_fail "console: g showed no actions: $(pane)"
pane | grep -q "guard #[0-9]* \(close $CLI_IP:[0-9]*\|block $CLI_IP\|unblock $CLI_IP\) reason=" ||
	mw_fail "console: the pane lists none of the closes and blocks: $(pane)"
[ "$(pane | grep -c '^guard #')" = 10 ] || mw_fail "console: not the last 10 actions: $(pane)"
tmuxc send-keys -t con q
tmuxc kill-server >/dev/null 2>&1
mw_log "console: ok"

# --- reload: SIGHUP, then mwctl guard reload
mw_wait_for "grep -q 'shield_clear [^ ]*:$PORT reason=calm' '$GLOG'" 20 ||
	mw_fail "reload: the pressure levers were not cleared after calm_ms"
sed -i 's/mode = "enforce";/mode = "report";/' "$CONF"
kill -HUP "$(mw_pid guard)"
mw_wait_for "grep -q 'reloaded .*: mode report' '$GLOG'" 20 || mw_fail "reload: SIGHUP did not reload"
grep -q '^mode  *report$' <<<"$(ctl guard status)" || mw_fail "reload: mwctl still shows the old mode"
out=$(ctl guard reload) || mw_fail "reload: mwctl guard reload failed: $out"
[ "$(grep -c 'reloaded .*: mode report' "$GLOG")" -ge 2 ] || mw_fail "reload: mwctl guard reload did not reload"
# A file with an error is refused whole; the configuration in force stays.
cp "$CONF" "$MW_TMP/good.conf"
sed -i 's/mode = "report";/mode = "loud";/' "$CONF"
out=$(ctl guard reload 2>&1) && mw_fail "reload: a bad file was accepted: $out"
echo "$out" | grep -q 'guard.mode: "loud" is not one of: enforce, report' ||
	mw_fail "reload: the refusal does not name the problem: $out"
cp "$MW_TMP/good.conf" "$CONF"
grep -q '^mode  *report$' <<<"$(ctl guard status)" || mw_fail "reload: a refused reload changed the mode"
mw_log "reload: ok"

# --- report: the same burst is only reported.
sent=$(ctl --json guard status | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["requests"])')
mw_spawn idle2 in_cli "$PY" "$GP" idle "$INS_IP" "$PORT" "$N" 12
ILOG2=$(mw_logfile idle2)
mw_wait_for "grep -q '^open $N' '$ILOG2'" 20 || mw_fail "report: clients did not connect: $(cat "$ILOG2")"
mw_wait_for "[ \$(grep -c 'action [0-9]*: would_close $CLI_IP:' '$GLOG') -ge $N ]" 20 ||
	mw_fail "report: fewer than $N would_close lines"
mw_wait_for "grep -q '^survived ' '$ILOG2'" 30 || mw_fail "report: the client did not finish"
grep -q "^survived $N" "$ILOG2" || mw_fail "report: connections were cut: $(cat "$ILOG2")"
now=$(ctl --json guard status | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["requests"])')
[ "$now" = "$sent" ] || mw_fail "report: $((now - sent)) request(s) sent in report mode"
grep -q 'would_close .*result=report' <<<"$(ctl guard actions)" || mw_fail "report: actions not marked report"
mw_log "report: ok ($N connections survived, nothing sent)"

# --- reconnect: mw-pvm goes away and comes back; mw-guard subscribes again.
mw_stop app
mw_stop pvm
mw_wait_for "grep -q 'netflow: lost ' '$GLOG'" 20 || mw_fail "reconnect: the loss was not noticed"
grep -q '^netflow  *disconnected$' <<<"$(ctl guard status)" || mw_fail "reconnect: status still says connected"
mw_spawn pvm2 "$PVM" -c "$CONF"
mw_wait_for "[ \$(grep -c 'notice: ready: netflow ' '$GLOG') -ge 2 ]" 30 ||
	mw_fail "reconnect: mw-guard did not subscribe again: $(tail -5 "$GLOG")"
grep -q '^netflow  *connected$' <<<"$(ctl guard status)" || mw_fail "reconnect: status does not say connected"
mw_log "reconnect: ok"
