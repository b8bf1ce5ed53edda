#!/usr/bin/env bash
# test_balancer_shared_keystore.sh - several mw-balancers share one keystore without overwriting
#
# Issue 11, item 5: "several balancers do not overwrite each other's keys".  Two
# balancers (tags A and B, process backend, one INS each) in front of two mw-pvm
# (index 0 and 1) share one keystore.  Cases: each publishes its merged stream at
# /mw/balancers/<tag>/netflow, the first also at /mw/balancer/netflow, which the
# second leaves alone; each merges both PVMs and serves its own stream; a third
# balancer with a tag that is taken is refused before it touches anything, with a
# message naming the tag; a reload names every key it could not apply (the merged
# stream's socket and bounds) and applies the rest; stopping one withdraws its keys only.
source "$(dirname "$0")/lib.sh"

mw_require_root
mw_require_cmd timeout
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
NFP=$(dirname "$0")/nf_probe.py
PVM=$(mw_need_bin mw-pvm)
BAL=$(mw_need_bin mw-balancer)
mw_ins_user >/dev/null
STORE=$MW_RUNTIME_DIR/store/mw
A=a$(($$ % 100000)) # balancer.tag: at most 7 bytes
B=b$(($$ % 100000))

# conf FILE INDEX TAG: mw-pvm INDEX and a balancer TAG in front of it.
conf() {
	mw_write_config "$1" "pvm: { index = $2; control_socket = \"$MW_RUNTIME_DIR/pvm$2.sock\";
	ins_socket = \"$MW_RUNTIME_DIR/pvm$2-ins.sock\"; heartbeat_timeout_ms = 1000; };
ins: { pvm_socket = \"$MW_RUNTIME_DIR/pvm$2-ins.sock\"; heartbeat_ms = 200; };
balancer: { control_socket = \"$MW_RUNTIME_DIR/bal-$3.sock\"; backend = \"process\";
	min_ins = 1; max_ins = 1; tag = \"$3\"; };"
}
conf "$MW_TMP/a.conf" 0 "$A"
conf "$MW_TMP/b.conf" 1 "$B"
for i in 0 1; do
	mw_spawn "pvm$i" "$PVM" -c "$MW_TMP/$([ $i = 0 ] && echo a || echo b).conf"
	mw_wait_for "[ -S '$MW_RUNTIME_DIR/pvm$i-ins.sock' ] && [ -s '$STORE/pvms/$i/netflow' ]" ||
		mw_fail "mw-pvm $i did not start: $(tail -3 "$(mw_logfile "pvm$i")")"
done

mw_log "case: the first balancer publishes at its tag's key and the untagged key"
mw_spawn balA "$BAL" -c "$MW_TMP/a.conf"
mw_wait_for "[ -s '$STORE/balancers/$A/netflow' ] && [ -s '$STORE/balancer/netflow' ]" ||
	mw_fail "balancer A published nothing: $(tail -5 "$(mw_logfile balA)")"
ADDR_A=$(cat "$STORE/balancers/$A/netflow")
[ "$(cat "$STORE/balancer/netflow")" = "$ADDR_A" ] || mw_fail "the untagged key is not A's"
mw_wait_for "grep -q 'INS 1 joined' '$(mw_logfile pvm0)'" 20 || mw_fail "A's INS did not join mw-pvm 0"
INS_A=$(pgrep -P "$(mw_pid balA)" -x mw-ins | head -1)
[ -n "$INS_A" ] || mw_fail "A's mw-ins is not running"

mw_log "case: the second balancer publishes at its own key and leaves the untagged one"
mw_spawn balB "$BAL" -c "$MW_TMP/b.conf"
mw_wait_for "[ -s '$STORE/balancers/$B/netflow' ]" || mw_fail "balancer B published nothing: $(tail -5 "$(mw_logfile balB)")"
ADDR_B=$(cat "$STORE/balancers/$B/netflow")
[ "$ADDR_B" != "$ADDR_A" ] || mw_fail "both balancers serve at $ADDR_A"
[ "$(cat "$STORE/balancer/netflow")" = "$ADDR_A" ] || mw_fail "B overwrote the untagged key: $(cat "$STORE/balancer/netflow")"
[ "$(cat "$STORE/balancers/$A/netflow")" = "$ADDR_A" ] || mw_fail "B overwrote A's key"
grep -q "belongs to another balancer" "$(mw_logfile balB)" || mw_fail "B does not say why it left the untagged key"
mw_wait_for "grep -q 'INS 1 joined' '$(mw_logfile pvm1)'" 20 || mw_fail "B's INS did not join mw-pvm 1"

mw_log "case: each merges both PVMs and serves its own stream"
for n in balA balB; do
	mw_wait_for "grep -q 'merging PVM 0 stream' '$(mw_logfile $n)' && grep -q 'merging PVM 1 stream' '$(mw_logfile $n)'" ||
		mw_fail "$n does not merge both PVMs: $(grep -i netflow "$(mw_logfile $n)")"
done
for addr in "$ADDR_A" "$ADDR_B"; do
	p=$("$PY" "$NFP" probe "$addr")
	[[ $p =~ ^bytes=([0-9]+)\ closed=0$ ]] && [ "${BASH_REMATCH[1]}" -ge 52 ] ||
		mw_fail "the stream at $addr does not serve root: $p"
done

mw_log "case: a third balancer with a taken tag is refused before it touches anything"
sed -e "s|bal-$A.sock|bal-c.sock|" -e "s/pvm0-ins/pvm1-ins/g" "$MW_TMP/a.conf" >"$MW_TMP/c.conf"
out=$(timeout 20 "$BAL" -c "$MW_TMP/c.conf" 2>&1) && mw_fail "a balancer with A's tag started"
echo "$out" | grep -q "balancer.tag \"$A\" is already used by another mw-balancer" ||
	mw_fail "no clear error for a taken tag: $out"
! echo "$out" | grep -q "INS 1" || mw_fail "the refused balancer spawned an INS: $out"
[ "$(cat "$STORE/balancers/$A/netflow")" = "$ADDR_A" ] || mw_fail "the refused balancer touched A's key"
[ "$(cat "$STORE/balancer/netflow")" = "$ADDR_A" ] || mw_fail "the refused balancer touched the untagged key"
kill -0 "$INS_A" || mw_fail "A's INS is gone after the refused start"

mw_log "case: reload names every key it could not apply"
# The merged stream's socket and its consumers' bounds were read once, at start:
# a reload that changes them must say so, and apply what it can.
MWCTL=$MW_BUILD_DIR/tools/mwctl
[ -x "$MWCTL" ] || mw_fail "mwctl is not built"
cp "$MW_TMP/a.conf" "$MW_TMP/a.good"
sed -i -e "s|tag = \"$A\";|tag = \"$A\"; netflow_unix = \"$MW_RUNTIME_DIR/other.sock\"; netflow_request_timeout_ms = 2000; policy = \"hash\";|" \
	-e "s|index = 0;|index = 0; netflow_queue = 1024; netflow_group = \"nogroup\";|" "$MW_TMP/a.conf"
out=$("$MWCTL" -s "$MW_RUNTIME_DIR/bal-$A.sock" reload 2>&1) && mw_fail "a reload with restart-only changes said ok: $out"
for want in balancer.netflow_unix pvm.netflow_queue pvm.netflow_group "restart mw-balancer"; do
	echo "$out" | grep -q "$want" || mw_fail "reload did not name $want: $out"
done
! echo "$out" | grep -q "netflow_request_timeout_ms" || mw_fail "reload named a key it applies: $out"
[ "$("$MWCTL" -s "$MW_RUNTIME_DIR/bal-$A.sock" status | awk '$1 == "policy" {print $2}')" = hash ] ||
	mw_fail "the keys a reload can apply were not applied"
[ ! -e "$MW_RUNTIME_DIR/other.sock" ] && [ "$(cat "$STORE/balancers/$A/netflow")" = "$ADDR_A" ] ||
	mw_fail "the reload moved the merged stream"
cp "$MW_TMP/a.good" "$MW_TMP/a.conf"
sed -i "s|tag = \"$A\";|tag = \"$A\"; netflow_request_timeout_ms = 2000;|" "$MW_TMP/a.conf"
out=$("$MWCTL" -s "$MW_RUNTIME_DIR/bal-$A.sock" reload 2>&1) || mw_fail "reload of netflow_request_timeout_ms refused: $out"

mw_log "case: stopping one balancer withdraws its keys only"
mw_stop balB
[ ! -e "$STORE/balancers/$B/netflow" ] || mw_fail "B's key outlived B"
[ "$(cat "$STORE/balancers/$A/netflow")" = "$ADDR_A" ] && [ "$(cat "$STORE/balancer/netflow")" = "$ADDR_A" ] ||
	mw_fail "stopping B removed A's keys"
kill -0 "$INS_A" || mw_fail "A's INS went with B"
mw_stop balA
[ ! -e "$STORE/balancers/$A/netflow" ] && [ ! -e "$STORE/balancer/netflow" ] ||
	mw_fail "A's keys outlived A: $(ls -R "$STORE")"
mw_log "ok"
