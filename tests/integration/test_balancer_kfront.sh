#!/usr/bin/env bash
# test_balancer_kfront.sh - what only the kernel front end (balancer.mode = "kernel") has
#
# The nftables table mwbal_<tag> with a chain per INS; the client's own address is the
# peer mw-ins reports in the merged Netflow stream and the one nginx logs (no PROXY v2);
# a drained INS keeps its established connection (conntrack) while new ones go elsewhere;
# a forged SYN's half-open conntrack entry (what balancer.max_conns counts) lives 5 s,
# not 60; kill -9 of the balancer leaves the table, and the next balancer replaces it; bad
# kernel-mode configurations are refused with one clear line; SIGTERM deletes the table;
# a splice-mode start after a killed kernel-mode run removes its stale table.
export MW_BALANCER_MODE=kernel
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/balancer_lib.sh"
mw_require_cmd nft python3
bal_up 1 3 "policy = \"least-connections\";"
ctl scale 2 >/dev/null || mw_fail "scale 2 refused"
bal_wait_ready 2 20 || mw_fail "2 INS not ready"
TABLE=mwbal_$TAG
NFP=$MW_SOURCE_DIR/tests/integration/nf_probe.py

# The table: the hooks, steer and one chain per INS, each a DNAT to its address.  A
# ready INS joins steering after its first passed health check (docs/balancer.md), a
# moment later with slow (ASan) daemons: wait for it.
nft list table ip "$TABLE" >"$MW_TMP/table" || mw_fail "no nftables table $TABLE"
for id in $(ins_field 1); do
	addr=$(ctl ins list | awk -v i="$id" '$1 == i {print $3}')
	mw_wait_for "nft list table ip '$TABLE' | grep -q 'dnat to $addr\$'" 10 ||
		mw_fail "no DNAT to INS $id ($addr): $(nft list table ip "$TABLE")"
done
nft list table ip "$TABLE" >"$MW_TMP/table" || mw_fail "no nftables table $TABLE"
grep -q "ip daddr $MW_FRONT tcp dport $PORT jump front" "$MW_TMP/table" ||
	mw_fail "no hook for $MW_FRONT:$PORT: $(cat "$MW_TMP/table")"
[ "$(ctl --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["mode"])')" = kernel ] ||
	mw_fail "status does not say mode kernel"

# Each INS namespace has a TCP hash table of its own (balancer.netns_tcp_ehash, 65536 by
# default; the kernel shows a negative size for a namespace sharing the host's) and the
# host's TIME_WAIT and SYN backlog limits, not the ones the kernel derives from the size.
for id in $(ins_field 1); do
	own=$(ip netns exec "mw-$TAG-ins$id" sysctl -n net.ipv4.tcp_ehash_entries \
		net.ipv4.tcp_max_tw_buckets net.ipv4.tcp_max_syn_backlog | tr '\n' ' ')
	host=$(sysctl -n net.ipv4.tcp_max_tw_buckets net.ipv4.tcp_max_syn_backlog | tr '\n' ' ')
	[ "$own" = "65536 $host" ] || mw_fail "INS $id: hash size, TIME_WAIT, SYN limits '$own', want '65536 $host'"
done

# Under round-robin nothing acts on the connection counts at each tick (they are taken
# once a second then), but status counts afresh: a connection answered is counted at once.
ctl policy round-robin >/dev/null || mw_fail "policy round-robin refused"
bal_hold "$MW_TMP/fresh"
freshpid=$!
mw_wait_for "[ -s '$MW_TMP/fresh.1' ]" 10 || mw_fail "fresh connection: no first answer"
st_conns() { ctl status | awk '$1 == "conns" {print $2}'; }
[ "$(st_conns)" = 1 ] || mw_fail "status right after a connection's answer: conns $(st_conns), want 1"
touch "$MW_TMP/fresh.go"
wait "$freshpid"
ctl policy least-connections >/dev/null || mw_fail "policy least-connections refused"
mw_wait_for "[ \"\$(st_conns)\" = 0 ]" 10 ||
	mw_fail "the fresh connection is still counted after its close"

# The client's own address, as mw-ins reports it in the merged Netflow stream.
KEY=$MW_RUNTIME_DIR/store/mw/balancers/$TAG/netflow
mw_wait_for "[ -s '$KEY' ]" 10 || mw_fail "no merged Netflow stream at $KEY"
mw_spawn watch python3 "$NFP" obs "$(cat "$KEY")" "$MW_TMP/watch.obs" 1000 60
mw_wait_for "grep -q READY '$MW_TMP/watch.obs'" 10 || mw_fail "Netflow consumer did not connect"
r=$(python3 "$NFP" fetch "$MW_FRONT" "$PORT" /index.html) || mw_fail "fetch failed"
lport=$(echo "$r" | sed -n 's/.*lport=\([0-9]*\).*/\1/p')
mw_wait_for "grep -q 'remote=$PEER:$lport ' '$MW_TMP/watch.obs'" 10 ||
	mw_fail "Netflow does not report the client $PEER:$lport: $(head -5 "$MW_TMP/watch.obs")"
[ "$(sort -u "$NGX/access.log")" = "$PEER" ] || mw_fail "nginx saw '$(sort -u "$NGX/access.log")', want $PEER"
mw_log "mw-ins reports the client as $PEER:$lport (Netflow), nginx logs $PEER"

# Drain: a held keep-alive connection lives on; new connections go to the other INS.
bal_hold "$MW_TMP/held"
heldpid=$!
mw_wait_for "[ -s '$MW_TMP/held.1' ]" 10 || mw_fail "held connection: no first answer"
[ "$(cat "$MW_TMP/held.1")" = ok ] || mw_fail "held connection: first request failed"
# The balancer counts it (sock_diag in the INS's namespace) on the INS it went to.
mw_wait_for "ctl ins list | awk 'NR > 1 && \$5 == 1' | grep -q ." 5 ||
	mw_fail "the held connection is not counted on any INS: $(ctl ins list)"
held_on=$(ctl ins list | awk 'NR > 1 && $5 == 1 {print $1; exit}')
# New connections steered to an INS: its chain's counter, read from the kernel.
before=$(bal_ins_total "$held_on")
[ -n "$before" ] || mw_fail "no counter in chain ins_$held_on: $(nft list table ip "$TABLE")"
ctl ins retire "$held_on" --drain >/dev/null || mw_fail "retire --drain refused"
ctl ins list | awk -v i="$held_on" '$1 == i {print $2}' | grep -q draining ||
	mw_fail "INS $held_on is not draining"
nft list chain ip "$TABLE" steer | grep -q "ins_$held_on\b" &&
	mw_fail "INS $held_on is still in steering: $(nft list chain ip "$TABLE" steer)"
load 60 4 "$MW_TMP/drain"
[ "$(grep -c '^200$' "$MW_TMP/drain")" = 60 ] || mw_fail "while draining: not all 60 requests answered"
after=$(bal_ins_total "$held_on")
[ "$after" = "$before" ] || mw_fail "draining INS $held_on took new connections ($before -> $after)"
ctl ins list | awk -v i="$held_on" '$1 == i {print $2}' | grep -q draining ||
	mw_fail "INS $held_on stopped while its connection lives"
touch "$MW_TMP/held.go"
wait "$heldpid"
[ "$(cat "$MW_TMP/held.2")" = ok ] || mw_fail "the held connection did not survive the drain"
mw_wait_for "grep -q 'INS $held_on drained' '$BAL_LOG'" 10 || mw_fail "INS $held_on did not finish draining"
mw_log "drain: INS $held_on kept its connection, took none of 60 new ones, then stopped"
bal_wait_ready 1 20 || mw_fail "not 1 INS after the drain"
ctl status | awk '$1 == "kf_update_us_max" {print "steering update max " $2 " us"}' >&2
us=$(ctl --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["kf_update_us_max"])')
[ "$us" -lt 1000000 ] || mw_fail "a steering update took $us us" # ms-scale; seconds would stall the loop

# A SYN from a forged source (198.51.100.77, a documentation address nobody answers
# from): the INS answers, nobody completes the handshake, and the conntrack entry that
# balancer.max_conns's "ct count" sees lives 5 s at a time, not the kernel's 60 s of
# SYN_RECV: forged SYNs cannot hold the front end's places for long.  Last before the
# kill -9 below: its half-open connection would hold a drain of its INS until then.
python3 - "$MW_FRONT" "$PORT" <<'PYEOF' || mw_fail "cannot send a forged SYN"
import socket, struct, sys
dst, dport, src, sport = sys.argv[1], int(sys.argv[2]), "198.51.100.77", 40777
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
tcp = struct.pack("!HHIIBBHHH", sport, dport, 12345, 0, 5 << 4, 0x02, 64240, 0, 0)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(ip + tcp, (dst, 0))
PYEOF
ct_forged() { conntrack -L -p tcp --orig-src 198.51.100.77 --orig-port-src 40777 2>/dev/null; }
mw_wait_for "ct_forged | grep -q SYN_RECV" 5 || mw_fail "no half-open conntrack entry for the forged SYN: $(ct_forged)"
left=$(ct_forged | awk '{print $3; exit}')
[ -n "$left" ] && [ "$left" -le 5 ] ||
	mw_fail "the forged SYN's conntrack entry has $left s left (want at most 5): $(ct_forged)"
mw_log "a forged SYN's half-open conntrack entry: ${left} s left"

# kill -9: the table stays; the next balancer with the tag replaces it (a marker goes).
kill -9 "$(mw_pid balancer)"
sleep 0.5
nft list table ip "$TABLE" >/dev/null 2>&1 || mw_fail "the table went with a killed balancer?"
nft add chain ip "$TABLE" stale_marker || mw_fail "cannot mark the stale table"
mw_spawn balancer2 "$BAL" -c "$CONF"
BAL_LOG=$(mw_logfile balancer2)
bal_wait_ready 1 30 || mw_fail "the restarted balancer has no ready INS"
nft list table ip "$TABLE" >"$MW_TMP/table2" || mw_fail "no table after the restart"
grep -q stale_marker "$MW_TMP/table2" && mw_fail "the stale table was not replaced"
mw_wait_for "curl -sf --max-time 3 '$URL/index.html' | grep -q 'balancer test $$'" 15 ||
	mw_fail "no answer through the restarted balancer"
mw_log "kill -9: stale table replaced at restart, requests answered"

# Bad kernel-mode configurations: one clear line, exit 1, the table untouched.
bad() {
	sed -e "$1" "$CONF" >"$MW_TMP/bad.conf"
	if timeout 20 "$BAL" -c "$MW_TMP/bad.conf" >"$MW_TMP/bad.out" 2>&1; then
		mw_fail "balancer started with: $1"
	fi
	grep -q "$2" "$MW_TMP/bad.out" || mw_fail "with '$1', want '$2' in: $(cat "$MW_TMP/bad.out")"
}
bad "s|listen = \[[^]]*\]|listen = [ \"127.0.0.1:$PORT\" ]|" "loopback address"
bad 's|heartbeat_ms = 200;|heartbeat_ms = 200; proxy_protocol = true;|' "ins.proxy_protocol must be false"
bad 's|backend = "netns";|backend = "process";|' "needs backend netns"
bad "s|tag = \"$TAG\";|tag = \"a.b\";|" "may hold only letters"
bad 's|mode = "kernel";|mode = "nat";|' "balancer.mode"
nft list table ip "$TABLE" >/dev/null || mw_fail "a refused balancer touched the table"

# SIGTERM: the table goes.
mw_stop balancer2 10
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mw-balancer exited $MW_EXIT_STATUS on SIGTERM"
nft list table ip "$TABLE" >/dev/null 2>&1 && mw_fail "table $TABLE left after SIGTERM"
mw_log "SIGTERM removed $TABLE"

# kill -9 of a kernel-mode run, then a splice-mode balancer of the same tag: the stale
# table goes at its start (it would go on steering the port past the proxy), and so
# does a stale fence table (made here as a splice run with PROXY v2 would have).
mw_spawn balancer3 "$BAL" -c "$CONF"
BAL_LOG=$(mw_logfile balancer3)
bal_wait_ready 1 30 || mw_fail "the third balancer has no ready INS"
kill -9 "$(mw_pid balancer3)"
sleep 0.5
nft list table ip "$TABLE" >/dev/null 2>&1 || mw_fail "the table went with a killed balancer?"
nft add table inet "${TABLE}_fence" || mw_fail "cannot make a stale fence table"
sed 's|mode = "kernel";|mode = "splice";|' "$CONF" >"$MW_TMP/splice.conf"
grep -q 'mode = "splice";' "$MW_TMP/splice.conf" || mw_fail "no mode line to switch in $CONF"
mw_spawn balancer4 "$BAL" -c "$MW_TMP/splice.conf"
BAL_LOG=$(mw_logfile balancer4)
mw_wait_for "grep -q 'ready: backend' '$BAL_LOG'" 30 || mw_fail "the splice-mode balancer did not start"
nft list table ip "$TABLE" >/dev/null 2>&1 &&
	mw_fail "the killed kernel-mode run's table outlived a splice-mode start: $(nft list table ip "$TABLE")"
nft list table inet "${TABLE}_fence" >/dev/null 2>&1 && mw_fail "a stale fence table outlived a start without PROXY v2"
mw_wait_for "curl -sf --max-time 3 '$URL/index.html' | grep -q 'balancer test $$'" 30 ||
	mw_fail "no answer through the splice-mode balancer"
mw_stop balancer4 10
mw_log "a splice-mode start removed the killed kernel-mode run's table and a stale fence"
