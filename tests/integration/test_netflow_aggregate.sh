#!/bin/bash
# test_netflow_aggregate.sh - mw-balancer merges the Netflow streams of two PVMs
#
# Two mw-pvm (index 0 and 1), each with its own mw-ins and its own shimmed HTTP
# server; mw-balancer follows /mw/pvms/<index>/netflow and re-serves the union
# at /mw/balancer/netflow. A consumer of the merged stream sees both apps'
# connections with ids carrying their PVM index; a request by id reaches the
# right PVM; AddrBlock is fanned out to both; a PVM that stops leaves the
# merged stream serving the other.
source "$(dirname "$0")/lib.sh"

mw_require_cmd curl timeout
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
NFP=$(dirname "$0")/nf_probe.py
BAL=$(mw_need_bin mw-balancer)
# INS ids 1.. are the balancer's own: the hand-started INS takes 9.
MW_INS_ID=9 mw_appliance_up

# The second PVM: same runtime dir and keystore, its own sockets, index 1; its INS
# shares the INS namespace (its app uses another port).
CONF2=$MW_TMP/pvm2.conf
mw_write_config "$CONF2" "pvm: { index = 1; control_socket = \"$MW_RUNTIME_DIR/pvm2.sock\";
	ins_socket = \"$MW_RUNTIME_DIR/pvm2-ins.sock\"; heartbeat_timeout_ms = 1000; };
ins: { pvm_socket = \"$MW_RUNTIME_DIR/pvm2-ins.sock\"; heartbeat_ms = 200; };"
mw_spawn pvm2 "$PVM" -c "$CONF2"
mw_wait_for "[ -S '$MW_RUNTIME_DIR/pvm2-ins.sock' ]" || mw_fail "the second mw-pvm did not start"
mw_spawn ins2 ip netns exec "$NS_INS" "$INS" --id 2 -c "$CONF2"
mw_wait_for "grep -q 'INS 2 joined' '$(mw_logfile pvm2)'" || mw_fail "INS 2 did not join the second mw-pvm"

# mw-balancer runs as in production, in front of PVM 0 (it adds one INS of its own
# there, in its own namespace); per-run names and subnet (TAG, BR, SUBNET_PREFIX)
# come from balancer_lib.sh.
source "$(dirname "$0")/balancer_lib.sh"
CONF3=$MW_TMP/balancer.conf
mw_write_config "$CONF3" "pvm: { control_socket = \"$MW_RUNTIME_DIR/pvm.sock\";
	ins_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; };
ins: { pvm_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; heartbeat_ms = 200; };
balancer: { control_socket = \"$MW_RUNTIME_DIR/balancer.sock\"; backend = \"netns\";
	min_ins = 1; max_ins = 1; subnet = \"$SUBNET_PREFIX.0/24\"; bridge = \"$BR\";
	tag = \"$TAG\"; };"
mw_spawn balancer "$BAL" -c "$CONF3"
KEY=$MW_RUNTIME_DIR/store/mw/balancer/netflow
mw_wait_for "[ -s '$KEY' ]" || mw_fail "the merged stream is not published at $KEY"
AGG=$(cat "$KEY")
BLOG=$(mw_logfile balancer)
mw_wait_for "grep -q 'merging PVM 0 stream' '$BLOG' && grep -q 'merging PVM 1 stream' '$BLOG'" ||
	mw_fail "mw-balancer does not merge both PVMs"

WWW=$MW_TMP/www
mkdir -p "$WWW"
head -c 20000 /dev/urandom >"$WWW/f"
mw_spawn app0 shimmed "$PY" -m http.server 8080 --bind 0.0.0.0 --directory "$WWW"
mw_spawn app1 env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm2.sock" \
	"$PY" -m http.server 8081 --bind 0.0.0.0 --directory "$WWW"
mw_wait_for "ins_listens 8080 && ins_listens 8081" 15 || mw_fail "the two apps do not listen"

mw_spawn watch "$PY" "$NFP" obs "$AGG" "$MW_TMP/watch.obs" 1000 60
W=$MW_TMP/watch.obs
mw_wait_for "grep -q READY '$W'" || mw_fail "consumer of the merged stream did not connect"
field() { sed -n "s/\(^\|.* \)$1=\([^ ]*\).*/\2/p"; }
pvm_of() { echo $((($1 >> 32) & 255)); }

# --- both PVMs' connections in one stream, ids carrying their PVM index ----------------------
R0=$(in_cli "$PY" "$NFP" fetch "$INS_IP" 8080 /f) || mw_fail "fetch from app 0 failed"
R1=$(in_cli "$PY" "$NFP" fetch "$INS_IP" 8081 /f) || mw_fail "fetch from app 1 failed"
for r in "0 8080 $R0" "1 8081 $R1"; do
	set -- $r
	idx=$1 port=$2
	lport=$(echo "$5" | field lport)
	recv=$(echo "$4" | field recv)
	mw_wait_for "grep -q 'obs=close .*local=$INS_IP:$port remote=$CLI_IP:$lport ' '$W'" ||
		mw_fail "no close observation for app $idx's connection: $(cat "$W")"
	line=$(grep "obs=close .*local=$INS_IP:$port remote=$CLI_IP:$lport " "$W")
	id=$(echo "$line" | field sock)
	[ "$(pvm_of "$id")" = "$idx" ] || mw_fail "connection id $id of app $idx carries PVM $(pvm_of "$id")"
	echo "$line" | grep -q " out=$recv " || mw_fail "app $idx close counters wrong ($recv expected): $line"
done
mw_log "merged stream carries both PVMs"

# --- a request by id reaches the right PVM ---------------------------------------------------
mw_spawn hold in_cli "$PY" "$NFP" hold "$INS_IP" 8081 30
HOLD_PORT=$(mw_wait_for "grep -q lport '$(mw_logfile hold)'" && field lport <"$(mw_logfile hold)")
mw_wait_for "grep -q 'obs=accept .*remote=$CLI_IP:$HOLD_PORT ' '$W'" || mw_fail "held connection not observed"
HC=$(grep "obs=accept .*remote=$CLI_IP:$HOLD_PORT " "$W" | field extra)
[ "$(pvm_of "$HC")" = 1 ] || mw_fail "held connection $HC is not on PVM 1"
req() { "$PY" "$NFP" req "$AGG" "$@"; }
expect() { [ "$2" = "$3" ] || mw_fail "$1: got '$2', want '$3'"; }
expect "set SndBuf via the balancer" "$(req 0x0109 3 "$HC" 32768)" "status=0 val0=0 val1=0"
expect "get SndBuf via the balancer" "$(req 0x0109 2 "$HC" 0)" "status=0 val0=65536 val1=0"
# The PVM itself agrees: the request really went there.
N1=$(cat "$MW_RUNTIME_DIR/store/mw/pvms/1/netflow")
expect "get SndBuf at PVM 1" "$("$PY" "$NFP" req "$N1" 0x0109 2 "$HC" 0)" "status=0 val0=65536 val1=0"
BOGUS=$(((HC & ~(255 << 32)) | (7 << 32)))
expect "an id of no PVM" "$(req 0x0109 2 "$BOGUS" 0)" "status=-9 val0=0 val1=0"
mw_log "requests routed by PVM index"

# --- AddrBlock fanned out to both PVMs ----------------------------------------------------------
ok() { in_cli curl -sf -o /dev/null --max-time 3 "http://$INS_IP:$1/f"; }
expect "block" "$(req 0x1103 1 "ip:$CLI_IP" 1)" "status=0 val0=1 val1=0"
! ok 8080 || mw_fail "blocked client reached app 0"
! ok 8081 || mw_fail "blocked client reached app 1"
expect "unblock" "$(req 0x1103 1 "ip:$CLI_IP" 0)" "status=0 val0=1 val1=0"
ok 8080 && ok 8081 || mw_fail "unblocked client cannot reach both apps"
mw_log "AddrBlock fanned out"

# --- a PVM that stops: the other keeps streaming -------------------------------------------------
mw_stop pvm2
mw_wait_for "grep -q 'PVM 1 stream .* lost' '$BLOG'" || mw_fail "mw-balancer did not notice PVM 1 stopping"
expect "PVM 1 gone" "$(req 0x0109 2 "$HC" 0)" "status=-9 val0=0 val1=0"
R0=$(in_cli "$PY" "$NFP" fetch "$INS_IP" 8080 /f) || mw_fail "fetch from app 0 failed after PVM 1 stopped"
LP=$(echo "$R0" | field lport)
mw_wait_for "grep -q 'obs=close .*remote=$CLI_IP:$LP ' '$W'" || mw_fail "merged stream stopped after PVM 1 left"
kill -0 "$(mw_pid balancer)" || mw_fail "mw-balancer died"
mw_log "one PVM gone, the merged stream goes on"

# --- mw-balancer stops cleanly: its namespace, veth and bridge go, the key is withdrawn ----------
grep -q "INS 1 ready" "$BLOG" || mw_fail "the balancer's own INS never became ready: $(cat "$BLOG")"
! grep -q "died" "$BLOG" || mw_fail "an INS of the balancer died: $(grep died "$BLOG")"
mw_stop balancer
! ip netns list | grep -q "^mw-$TAG-" || mw_fail "namespaces left: $(ip netns list | grep "mw-$TAG-")"
! ip link show "$BR" >/dev/null 2>&1 || mw_fail "bridge $BR left"
[ ! -e "$KEY" ] || mw_fail "$KEY still published after mw-balancer stopped"
