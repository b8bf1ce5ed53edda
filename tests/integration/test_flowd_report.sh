#!/bin/bash
# test_flowd_report.sh - mw-flowd's report, live and offline, against tshark as the oracle
#
# Two namespaces joined by a veth: a client (10.241.0.1) and a server
# (10.241.0.2, plus 10.241.1.1-80 where nothing listens). The server is "inside".
# Traffic: five curl downloads of 1 MB over HTTP, an nc port scan of 101 closed
# ports of the server, and one connection attempt to each of the 80 extra
# addresses (a fan-out). tcpdump captures it on the client's veth while a live
# mw-flowd (TPACKET_V3 ring, BPF "ip or arp") watches the same interface. tshark
# reads the capture once (flowd_tshark.py: -T fields, -z io,stat,0 with the
# classes as columns, -z endpoints,ip, -z conv,tcp, -z conv,udp); each report is
# compared with it (flowd_tshark.py says what each side counts):
# (1) offline: `mw-flowd --read` on the capture: the interval's IP packets, bytes,
#     frames and non-IP frames, the class packets and bytes (io,stat), the totals of
#     every epoch second, exactly; the talkers (endpoints,ip Tx Bytes), conversations
#     (tshark's streams, checked against conv,tcp) and applications, exactly (error
#     0 with 256 counters), and again with sketch_counters = 16 within Space-Saving's
#     bound (truth <= bytes <= truth + error <= truth + W/16, nothing bigger left out);
#     the client's port scan and fan-out: attempts and refused attempts exactly,
#     distinct ports and peers (HyperLogLog) within 3 standard errors; no table drops.
# (2) live: the same, except that a frame read after its second was reported counts
#     in a later second (never an earlier one), and frames are not compared (an ARP
#     after tcpdump stopped); no kernel drop; the BPF filter runs in the kernel ("not
#     tcp port 80" drops the web traffic before it reaches the ring) in a second live run.
# (3) IPFIX: the offline run exports every stream to nfcapd (Debian's nfdump);
#     nfdump's packet and byte totals equal tshark's IP packets and ip.len sum, its
#     top source by bytes is the server, and mw-flowd counted no send error.
source "$(dirname "$0")/lib.sh"

mw_require_root
mw_require_cmd tcpdump tshark curl nc ip timeout nfcapd nfdump ss
source "$(dirname "$0")/flowd_lib.sh"
ORACLE=$(dirname "$0")/flowd_oracle.py # reads mw-flowd's side: drops, classes of the filtered run
TSHARK=$(dirname "$0")/flowd_tshark.py
flowd_topology

# Interval lines span a day (flowd_one_day): one line holds all the traffic.
# flowd_conf FILE REPORT FILTER: a config for a live mw-flowd on the client's veth.
flowd_conf() {
	mw_write_config "$1" "flowd: { interfaces = [ \"$VC\" ]; inside = [ \"$SRV_IP/32\" ];
	filter = \"$3\"; report_file = \"$2\"; report_interval_s = 86400; mapi_socket = \"\"; };"
}
# offline NAME [KEYS]: mw-flowd --read on the capture into NAME.json
offline() {
	mw_write_config "$MW_TMP/$1.conf" "flowd: { inside = [ \"$SRV_IP/32\" ]; report_interval_s = 86400; ${2:-} };"
	"$FLOWD" -c "$MW_TMP/$1.conf" --read "$PCAP" >"$MW_TMP/$1.json" 2>"$MW_TMP/$1.err" ||
		mw_fail "mw-flowd --read ($1) failed: $(cat "$MW_TMP/$1.err")"
}
# check REPORT live|offline: the report against tshark's reading of the capture
check() {
	local out
	out=$("$PY" "$TSHARK" "$MW_TMP/tshark.txt" "$1" "$2" "$CLI_IP" 2>&1) ||
		mw_fail "$(basename "$1"): mw-flowd and tshark differ:"$'\n'"$out"
	mw_log "$(basename "$1"): $(echo "$out" | tr "\n" " ")"
	[ "$("$PY" "$ORACLE" "$1" x | sed -n 's/^drops=//p')" = 0 ] || mw_fail "$1: tables dropped entries"
}

# --- capture with tcpdump while a live mw-flowd watches -------------------------------
flowd_conf "$MW_TMP/live.conf" "$MW_TMP/live.json" "ip or arp"
PCAP=$MW_TMP/traffic.pcap
flowd_one_day
mw_spawn tcpdump ip netns exec "$NS_CLI" tcpdump -i "$VC" -nn -U -B 32768 -w "$PCAP"
mw_wait_for "[ \$(packet_sockets) -ge 1 ]" || mw_fail "tcpdump did not start"
mw_spawn flowd ip netns exec "$NS_CLI" "$FLOWD" -c "$MW_TMP/live.conf"
mw_wait_for "[ \$(packet_sockets) -ge 2 ]" || mw_fail "mw-flowd opened no packet socket"
mw_wait_for "grep -q 'watching 1 interface' '$(mw_logfile flowd)'" || mw_fail "mw-flowd not ready"
flowd_traffic
mw_stop tcpdump
flowd_capture_complete
mw_stop flowd
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mw-flowd exited with $MW_EXIT_STATUS on TERM"

# --- tshark reads the capture once ------------------------------------------------------
"$PY" "$TSHARK" read "$PCAP" "$SRV_IP" >"$MW_TMP/tshark.txt" || mw_fail "tshark could not read the capture"
read -r ip_pkts ip_bytes < <("$PY" "$TSHARK" "$MW_TMP/tshark.txt" totals)
[ "$ip_pkts" -gt 500 ] || mw_fail "capture too small ($ip_pkts IP packets)"

# --- (1) offline ------------------------------------------------------------------------
offline off
check "$MW_TMP/off.json" offline
! grep '"type":"interval"' "$MW_TMP/off.json" | grep -q '"error":[1-9]' ||
	mw_fail "offline: 256 counters are not exact: $(grep '"type":"interval"' "$MW_TMP/off.json")"
# 16 counters for 82 talkers, 186 conversations, 103 applications: the sketch's bound
offline off16 "sketch_counters = 16;"
grep '"type":"interval"' "$MW_TMP/off16.json" | grep -q '"talkers":\[[^]]*"error":[1-9]' ||
	mw_fail "offline, 16 counters: no talker's count has an error"
check "$MW_TMP/off16.json" offline

# --- (3) IPFIX to nfcapd ----------------------------------------------------------------
NF_PORT=$((20000 + $$ % 20000))
mkdir -p "$MW_TMP/nf"
mw_spawn nfcapd nfcapd -w "$MW_TMP/nf" -p "$NF_PORT" -b 127.0.0.1
mw_wait_for "ss -Hlun 'sport = :$NF_PORT' | grep -q ." || mw_fail "nfcapd did not listen on $NF_PORT"
offline ipfix "ipfix_collector = \"127.0.0.1:$NF_PORT\";"
grep -q '"ipfix":{"records":[1-9][0-9]*,"messages":[1-9][0-9]*,"send_errors":0}' "$MW_TMP/ipfix.json" ||
	mw_fail "IPFIX counters: $(grep -o '"ipfix":{[^}]*}' "$MW_TMP/ipfix.json")"
sleep 0.5 # the last datagram into nfcapd's socket
mw_stop nfcapd
nf_tot=$(nfdump -R "$MW_TMP/nf" -q -N -o "fmt:%pkt %byt" | awk '{p += $1; b += $2} END {print p + 0, b + 0}')
[ "$nf_tot" = "$ip_pkts $ip_bytes" ] || mw_fail "nfdump totals '$nf_tot' != tshark's '$ip_pkts $ip_bytes'"
nf_top=$(nfdump -R "$MW_TMP/nf" -q -N -s srcip/bytes -n 1 | awk 'NF > 4 {print $5; exit}')
[ "$nf_top" = "$SRV_IP" ] || mw_fail "nfdump's top source is '$nf_top', not $SRV_IP: $(nfdump -R "$MW_TMP/nf" -q -N -s srcip/bytes -n 3)"
mw_log "IPFIX: nfdump $nf_tot, top source $nf_top"

# --- (2) live ---------------------------------------------------------------------------
check "$MW_TMP/live.json" live
[ "$("$PY" "$ORACLE" "$MW_TMP/live.json" x | sed -n 's/^sensor_drops=//p')" = 0 ] ||
	mw_fail "live: the kernel dropped frames"

# The filter runs in the kernel: web traffic never reaches the ring.
flowd_conf "$MW_TMP/nweb.conf" "$MW_TMP/nweb.json" "not tcp port 80"
mw_spawn flowd2 ip netns exec "$NS_CLI" "$FLOWD" -c "$MW_TMP/nweb.conf"
mw_wait_for "grep -q 'watching 1 interface' '$(mw_logfile flowd2)'" || mw_fail "mw-flowd (filtered) not ready"
ip netns exec "$NS_CLI" curl -sf -o /dev/null "http://$SRV_IP/blob" || mw_fail "filtered run: download failed"
ip netns exec "$NS_CLI" nc -z -w 1 "$SRV_IP" 2000-2009 >/dev/null 2>&1 || true
sleep 1
mw_stop flowd2
out=$("$PY" "$ORACLE" "$MW_TMP/nweb.json" "$SRV_IP")
[ "$(echo "$out" | sed -n 's/^class_inweb_pkts=//p')" = 0 ] || mw_fail "filtered run counted web packets: $out"
[ "$(echo "$out" | sed -n 's/^class_in_pkts=//p')" -ge 20 ] || mw_fail "filtered run missed the scan: $out"
mw_log "PASS"
