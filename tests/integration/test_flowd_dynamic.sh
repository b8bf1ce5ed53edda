#!/bin/bash
# test_flowd_dynamic.sh - mw-flowd picks up interfaces matching a pattern as they come and go
#
# mw-flowd runs in namespace "mon" with flowd.interfaces = [ "<prefix>-da*" ] (a
# pattern, as the INS veths of the balancer would be named) and nothing else.
# (1) it starts with no matching interface and stays up;
# (2) a veth <prefix>-da1 created in "mon" (peer in "peer") is picked up, and
#     five refused connection attempts across it (SYN, RST: ten IP packets)
#     are counted in the per-second report;
# (3) deleting it closes the sensor, by name;
# (4) <prefix>-da2 created later is picked up again and counted; an interface
#     that does not match (<prefix>-x1) is not; a MAPI flow (tools/mapi-rates)
#     made over <prefix>-da1 counted the attempts over it and sees nothing of
#     <prefix>-da2, which took its sensor slot (no sensor reaches a flow, nor a
#     user, that did not name it);
# (5) mw-flowd stops cleanly.
source "$(dirname "$0")/lib.sh"

mw_require_root
mw_require_cmd ip nc
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
FLOWD=$MW_BUILD_DIR/flowd/mw-flowd
[ -x "$FLOWD" ] || mw_fail "mw-flowd is not built ($FLOWD missing)"
ORACLE=$(dirname "$0")/flowd_oracle.py

mw_netns_add mon
mw_netns_add peer
NS_MON=$(mw_netns mon)
NS_PEER=$(mw_netns peer)
for ns in "$NS_MON" "$NS_PEER"; do
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
DA1=$MW_PREFIX-da1
DA2=$MW_PREFIX-da2
X1=$MW_PREFIX-x1
[ ${#DA1} -le 15 ] || mw_fail "interface name $DA1 too long"

REPORT=$MW_TMP/report.json
mw_write_config "$MW_TMP/flowd.conf" "flowd: { interfaces = [ \"$MW_PREFIX-da*\" ];
	report_file = \"$REPORT\"; mapi_socket = \"$MW_RUNTIME_DIR/flowd.sock\"; };"
export MW_MAPI_SOCKET=$MW_RUNTIME_DIR/flowd.sock
RATES=$MW_BUILD_DIR/tools/mapi-rates
[ -x "$RATES" ] || mw_fail "mapi-rates is not built ($RATES missing)"
mw_spawn flowd ip netns exec "$NS_MON" "$FLOWD" -c "$MW_TMP/flowd.conf"
LOG=$(mw_logfile flowd)
# packets: IP packets counted in the per-second lines so far
packets() { "$PY" "$ORACLE" "$REPORT" x 2>/dev/null | sed -n 's/^seconds_pkts=//p'; }

# --- (1) nothing to watch yet ----------------------------------------------------------
mw_wait_for "grep -q 'watching 0 interface' '$LOG'" || mw_fail "mw-flowd not up with only a pattern"
# flowd.sched_policy's default: SCHED_BATCH, its wake-ups never preempt the relay's processes
FPID=$(pgrep -f "mw-flowd -c $MW_TMP/flowd.conf" | head -1)
chrt -p "$FPID" | grep -q 'policy: SCHED_BATCH$' ||
	mw_fail "mw-flowd does not run SCHED_BATCH: $(chrt -p "$FPID")"

# link IF NET: a veth IF in mon (NET.1/24) to IFp in peer (NET.2/24)
link() {
	ip -n "$NS_MON" link add "$1" type veth peer name "$1p" netns "$NS_PEER"
	ip -n "$NS_MON" addr add "$2.1/24" dev "$1"
	ip -n "$NS_PEER" addr add "$2.2/24" dev "$1p"
	ip -n "$NS_MON" link set "$1" up
	ip -n "$NS_PEER" link set "$1p" up
}
# attempts: five connections to closed ports of 10.242.0.2, each a SYN and a RST
attempts() {
	local p
	for p in 1 2 3 4 5; do
		ip netns exec "$NS_MON" nc -z -w 1 10.242.0.2 "$p" >/dev/null 2>&1 || true
	done
}

# --- (2) an interface appears ------------------------------------------------------------
link "$DA1" 10.242.0
mw_wait_for "grep -q 'sensor $DA1: picked up' '$LOG'" || mw_fail "$DA1 not picked up"
mw_spawn rates "$RATES" "$DA1" 10.242.0.2/32 1
mw_wait_for "grep -qx connected '$(mw_logfile rates)'" || mw_fail "mapi-rates over $DA1 did not connect"
attempts
mw_wait_for "[ \"\$(packets)\" -ge 10 ]" 5 || mw_fail "attempts over $DA1 not counted ($(packets) packets)"
before=$(packets)
# in_bytes: what the flow over DA1 counted so far (its last per-second line)
in_bytes() { sed -n 's/.* in_bytes=\([0-9]*\) .*/\1/p' "$(mw_logfile rates)" | tail -1; }
mw_wait_for "[ \"\$(in_bytes)\" -ge 5 ]" 10 || mw_fail "mapi-rates over $DA1 counted nothing: $(tail -3 "$(mw_logfile rates)")"

# --- (3) it goes away --------------------------------------------------------------------
ip -n "$NS_MON" link del "$DA1"
mw_wait_for "grep -q 'sensor $DA1: .*closed' '$LOG'" || mw_fail "$DA1's sensor not closed"
mw_wait_for "grep -q 'mapi: sensor 0 closed: 2 flow(s) no longer see it' '$LOG'" 5 || # mapi-rates' in and out
	mw_fail "the MAPI flow over $DA1 was not told of its close: $(grep mapi "$LOG")"
sleep 1.1 # a per-second line of mapi-rates after the close
seen=$(in_bytes)

# --- (4) another appears; a non-matching one is ignored ---------------------------------
link "$X1" 10.243.0
link "$DA2" 10.242.0
mw_wait_for "grep -q 'sensor $DA2: picked up' '$LOG'" || mw_fail "$DA2 not picked up"
! grep -q "sensor $X1" "$LOG" || mw_fail "$X1 does not match the pattern but was opened"
attempts
mw_wait_for "[ \"\$(packets)\" -ge $((before + 10)) ]" 5 ||
	mw_fail "attempts over $DA2 not counted ($(packets) packets, $before before)"
sleep 2.1 # two more per-second lines of mapi-rates
[ "$(in_bytes)" = "$seen" ] ||
	mw_fail "the flow over $DA1 counted $DA2's traffic: in_bytes $seen, then $(in_bytes)"
mw_stop rates
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mapi-rates exited $MW_EXIT_STATUS: $(cat "$(mw_logfile rates)")"

# --- (5) clean stop -------------------------------------------------------------------------
mw_stop flowd
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mw-flowd exited $MW_EXIT_STATUS"
mw_log "PASS"
