#!/bin/bash
# test_flowd_report.sh - mw-flowd's report, live and offline, against tcpdump as the oracle
#
# Two namespaces joined by a veth: a client (10.241.0.1) and a server
# (10.241.0.2, plus 10.241.1.1-80 where nothing listens). The server is "inside".
# Traffic: five curl downloads of 1 MB over HTTP, an nc port scan of 101 closed
# ports of the server, and one connection attempt to each of the 80 extra
# addresses (a fan-out). tcpdump captures it on the client's veth while a live
# mw-flowd (TPACKET_V3 ring, BPF "ip or arp") watches the same interface.
# (1) offline: `mw-flowd --read` on the capture: per-second totals and the interval
#     totals equal tcpdump's IP packet count, the class counts equal tcpdump's
#     counts for port 80 (inweb), the scan (in) and the fan-out (other); the top
#     talker is the server, with exactly tcpdump's byte sum and error 0; the port
#     scan (>= 64 distinct ports, every attempt refused) and the fan-out (>= 64
#     peers) are reported; no table dropped anything.
# (2) live: the same counts, top talker and anomalies from the live sensor, no
#     kernel drop; the BPF filter runs in the kernel ("not tcp port 80" drops the
#     web traffic before it reaches the ring) in a second live run.
# (3) IPFIX: the offline run exports every stream to nfcapd (Debian's nfdump);
#     nfdump's packet and byte totals equal tcpdump's (IP bytes: frame lengths
#     minus the 14-byte Ethernet header), its top source by bytes is the server,
#     and mw-flowd counted no send error.
# tshark is not in the image; tcpdump's filters are the oracle.
source "$(dirname "$0")/lib.sh"

mw_require_root
mw_require_cmd tcpdump curl nc ip timeout nfcapd nfdump ss
source "$(dirname "$0")/flowd_lib.sh"
ORACLE=$(dirname "$0")/flowd_oracle.py
flowd_topology

# flowd_conf FILE REPORT FILTER: a config for a live mw-flowd on the client's veth.
flowd_conf() {
	mw_write_config "$1" "flowd: { interfaces = [ \"$VC\" ]; inside = [ \"$SRV_IP/32\" ];
	filter = \"$3\"; report_file = \"$2\"; report_interval_s = 3600; mapi_socket = \"\"; };"
}
# check REPORT PCAP WHAT: the report's sums against tcpdump's counts on PCAP
check() {
	local report=$1 pcap=$2 what=$3 out ip web scan fan src_bytes
	out=$("$PY" "$ORACLE" "$report" "$SRV_IP") || mw_fail "$what: report is not JSON lines"
	mw_log "$what: $(echo "$out" | tr '\n' ' ')"
	val() { echo "$out" | sed -n "s/^$1=//p"; }
	ip=$(tcpdump -nn -r "$pcap" ip 2>/dev/null | wc -l)
	web=$(tcpdump -nn -r "$pcap" 'ip and tcp port 80' 2>/dev/null | wc -l)
	scan=$(tcpdump -nn -r "$pcap" "ip and host $SRV_IP and not tcp port 80" 2>/dev/null | wc -l)
	fan=$(tcpdump -nn -r "$pcap" 'ip and net 10.241.1.0/24' 2>/dev/null | wc -l)
	src_bytes=$(tcpdump -nn -e -r "$pcap" "ip src $SRV_IP" 2>/dev/null |
		sed -n 's/^[^,]*, ethertype IPv4 (0x0800), length \([0-9]*\): .*/\1/p' | awk '{s += $1} END {print s + 0}')
	[ "$ip" -gt 500 ] || mw_fail "$what: capture too small ($ip IP packets)"
	[ "$(val interval_pkts)" = "$ip" ] || mw_fail "$what: interval packets $(val interval_pkts) != tcpdump's $ip"
	[ "$(val seconds_pkts)" = "$ip" ] || mw_fail "$what: per-second packets $(val seconds_pkts) != tcpdump's $ip"
	[ "$(val class_inweb_pkts)" = "$web" ] || mw_fail "$what: inweb $(val class_inweb_pkts) != tcpdump's $web"
	[ "$(val class_in_pkts)" = "$scan" ] || mw_fail "$what: in $(val class_in_pkts) != tcpdump's $scan"
	[ "$(val class_other_pkts)" = "$fan" ] || mw_fail "$what: other $(val class_other_pkts) != tcpdump's $fan"
	[ "$(val top_talker)" = "$SRV_IP" ] || mw_fail "$what: top talker $(val top_talker), not $SRV_IP"
	[ "$(val talker_bytes)" = "$src_bytes" ] || mw_fail "$what: talker bytes $(val talker_bytes) != tcpdump's $src_bytes"
	[ "$(val talker_error)" = 0 ] || mw_fail "$what: talker error $(val talker_error) with few keys"
	[[ "$(val "scan_$CLI_IP")" =~ ^([0-9]+)/([0-9]+)/([0-9]+)$ ]] || mw_fail "$what: no port scan by $CLI_IP"
	[ "${BASH_REMATCH[1]}" -ge 64 ] || mw_fail "$what: scan distinct ports ${BASH_REMATCH[1]} < 64"
	[ "${BASH_REMATCH[3]}" -ge 100 ] || mw_fail "$what: scan refused attempts ${BASH_REMATCH[3]} < 100"
	[ "$(val "fanout_$CLI_IP")" -ge 64 ] || mw_fail "$what: no fan-out by $CLI_IP"
	[ -z "$(val "scan_$SRV_IP")" ] || mw_fail "$what: the server reported as a scanner"
	[ "$(val drops)" = 0 ] || mw_fail "$what: tables dropped $(val drops) entries"
}

# --- capture with tcpdump while a live mw-flowd watches -------------------------------
flowd_conf "$MW_TMP/live.conf" "$MW_TMP/live.json" "ip or arp"
PCAP=$MW_TMP/traffic.pcap
mw_spawn tcpdump ip netns exec "$NS_CLI" tcpdump -i "$VC" -nn -U -w "$PCAP"
mw_wait_for "[ \$(packet_sockets) -ge 1 ]" || mw_fail "tcpdump did not start"
mw_spawn flowd ip netns exec "$NS_CLI" "$FLOWD" -c "$MW_TMP/live.conf"
mw_wait_for "[ \$(packet_sockets) -ge 2 ]" || mw_fail "mw-flowd opened no packet socket"
mw_wait_for "grep -q 'watching 1 interface' '$(mw_logfile flowd)'" || mw_fail "mw-flowd not ready"
flowd_traffic
mw_stop tcpdump
mw_stop flowd
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mw-flowd exited with $MW_EXIT_STATUS on TERM"

# --- (1) offline ------------------------------------------------------------------------
mw_write_config "$MW_TMP/off.conf" "flowd: { inside = [ \"$SRV_IP/32\" ]; report_interval_s = 3600; };"
"$FLOWD" -c "$MW_TMP/off.conf" --read "$PCAP" >"$MW_TMP/off.json" 2>"$MW_TMP/off.err" ||
	mw_fail "mw-flowd --read failed: $(cat "$MW_TMP/off.err")"
check "$MW_TMP/off.json" "$PCAP" offline

# --- (3) IPFIX to nfcapd ----------------------------------------------------------------
NF_PORT=$((20000 + $$ % 20000))
mkdir -p "$MW_TMP/nf"
mw_spawn nfcapd nfcapd -w "$MW_TMP/nf" -p "$NF_PORT" -b 127.0.0.1
mw_wait_for "ss -Hlun 'sport = :$NF_PORT' | grep -q ." || mw_fail "nfcapd did not listen on $NF_PORT"
mw_write_config "$MW_TMP/ipfix.conf" "flowd: { inside = [ \"$SRV_IP/32\" ]; report_interval_s = 3600;
	ipfix_collector = \"127.0.0.1:$NF_PORT\"; };"
"$FLOWD" -c "$MW_TMP/ipfix.conf" --read "$PCAP" >"$MW_TMP/ipfix.json" 2>"$MW_TMP/ipfix.err" ||
	mw_fail "mw-flowd --read with IPFIX failed: $(cat "$MW_TMP/ipfix.err")"
grep -q '"ipfix":{"records":[1-9][0-9]*,"messages":[1-9][0-9]*,"send_errors":0}' "$MW_TMP/ipfix.json" ||
	mw_fail "IPFIX counters: $(grep -o '"ipfix":{[^}]*}' "$MW_TMP/ipfix.json")"
sleep 0.5 # the last datagram into nfcapd's socket
mw_stop nfcapd
nf_tot=$(nfdump -R "$MW_TMP/nf" -q -N -o "fmt:%pkt %byt" | awk '{p += $1; b += $2} END {print p + 0, b + 0}')
ip_pkts=$(tcpdump -nn -r "$PCAP" ip 2>/dev/null | wc -l)
ip_bytes=$(tcpdump -nn -e -r "$PCAP" ip 2>/dev/null |
	sed -n 's/^[^,]*, ethertype IPv4 (0x0800), length \([0-9]*\): .*/\1/p' | awk '{s += $1 - 14} END {print s + 0}')
[ "$nf_tot" = "$ip_pkts $ip_bytes" ] || mw_fail "nfdump totals '$nf_tot' != tcpdump's '$ip_pkts $ip_bytes'"
nf_top=$(nfdump -R "$MW_TMP/nf" -q -N -s srcip/bytes -n 1 | awk 'NF > 4 {print $5; exit}')
[ "$nf_top" = "$SRV_IP" ] || mw_fail "nfdump's top source is '$nf_top', not $SRV_IP: $(nfdump -R "$MW_TMP/nf" -q -N -s srcip/bytes -n 3)"
mw_log "IPFIX: nfdump $nf_tot, top source $nf_top"

# --- (2) live ---------------------------------------------------------------------------
check "$MW_TMP/live.json" "$PCAP" live
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
