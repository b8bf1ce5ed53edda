# shellcheck shell=bash
# flowd_lib.sh - the flow tests' topology and traffic (sourced after lib.sh)
#
# flowd_topology: namespaces cli (10.241.0.1) and srv (10.241.0.2, plus
#   10.241.1.1-80 where nothing listens) joined by one veth, IPv6 off (no
#   stray ND frames); an HTTP server on 10.241.0.2:80 serving a 1 MB blob.
#   Sets NS_CLI, NS_SRV, VC (the client's veth), VS (the server's), CLI_IP, SRV_IP,
#   PY, FLOWD.
# flowd_traffic: five downloads, a scan of ports 1000-1100 of the server, one
#   attempt at port 9 of each extra address (fan-out); returns when done. The
#   client and the server resolve each other by ARP once, in the first download
#   (flushed before it), and the entries are then pinned: no ARP probe between
#   the two can follow the traffic, so once it is over the veth stays silent and
#   a capture stopped before or after a MAPI tool holds the same frames.
# packet_sockets: AF_PACKET sockets open in the client namespace.
# flowd_capture_complete: fails unless the stopped tcpdump (mw_spawn'ed as "tcpdump",
#   with -B 32768: a 32 MiB buffer holds all of flowd_traffic when tcpdump is starved
#   of CPU) reported no frame dropped by the kernel: the capture is the oracle's input.
# flowd_one_day: returns once at least 120 s are left before midnight UTC, so that
#   a report_interval_s of 86400 (intervals aligned to days) puts all of a test's
#   traffic in one interval line (flowd_tshark.py compares one).

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
FLOWD=$MW_BUILD_DIR/flowd/mw-flowd
[ -x "$FLOWD" ] || mw_fail "mw-flowd is not built ($FLOWD missing)"
CLI_IP=10.241.0.1
SRV_IP=10.241.0.2

flowd_topology() {
	local ns i
	mw_netns_add cli
	mw_netns_add srv
	NS_CLI=$(mw_netns cli)
	NS_SRV=$(mw_netns srv)
	mw_veth_add fc fs srv
	VC=$(mw_veth fc)
	VS=$(mw_veth fs)
	ip link set "$VC" netns "$NS_CLI"
	for ns in "$NS_CLI" "$NS_SRV"; do
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	done
	ip -n "$NS_CLI" addr add "$CLI_IP/24" dev "$VC"
	ip -n "$NS_CLI" link set "$VC" up
	ip -n "$NS_CLI" route add 10.241.1.0/24 dev "$VC"
	ip -n "$NS_SRV" addr add "$SRV_IP/24" dev "$VS"
	for i in $(seq 1 80); do echo "addr add 10.241.1.$i/32 dev $VS"; done | ip -n "$NS_SRV" -batch -
	ip -n "$NS_SRV" link set "$VS" up
	mkdir -p "$MW_TMP/www"
	head -c 1048576 /dev/urandom >"$MW_TMP/www/blob"
	mw_spawn httpd ip netns exec "$NS_SRV" "$PY" -m http.server 80 --bind "$SRV_IP" --directory "$MW_TMP/www"
	mw_wait_for "ip netns exec $NS_CLI curl -sf -o /dev/null http://$SRV_IP/blob" || mw_fail "http server not up"
}

flowd_traffic() {
	local i
	ip -n "$NS_CLI" neigh flush dev "$VC"
	ip -n "$NS_SRV" neigh flush dev "$VS"
	for i in 1 2 3 4 5; do
		ip netns exec "$NS_CLI" curl -sf -o /dev/null "http://$SRV_IP/blob" || mw_fail "download $i failed"
		[ "$i" != 1 ] || flowd_pin_neighbours
	done
	ip netns exec "$NS_CLI" nc -z -w 1 "$SRV_IP" 1000-1100 >/dev/null 2>&1 || true
	for i in $(seq 1 80); do
		ip netns exec "$NS_CLI" nc -z -w 1 "10.241.1.$i" 9 >/dev/null 2>&1 || true
	done
	sleep 1 # the last RSTs and FIN-ACKs
}

# flowd_pin_neighbours: each side's entry for the other made permanent (same address).
flowd_pin_neighbours() {
	local mac_c mac_s
	mac_c=$(ip -n "$NS_CLI" -br link show dev "$VC" | awk '{print $3}')
	mac_s=$(ip -n "$NS_SRV" -br link show dev "$VS" | awk '{print $3}')
	[ -n "$mac_c" ] && [ -n "$mac_s" ] || mw_fail "no MAC address on $VC or $VS"
	ip -n "$NS_CLI" neigh replace "$SRV_IP" lladdr "$mac_s" dev "$VC" nud permanent &&
		ip -n "$NS_SRV" neigh replace "$CLI_IP" lladdr "$mac_c" dev "$VS" nud permanent ||
		mw_fail "could not pin the neighbour entries"
}

flowd_capture_complete() {
	grep -q '^0 packets dropped by kernel$' "$(mw_logfile tcpdump)" ||
		mw_fail "tcpdump's capture is incomplete: $(tail -n 3 "$(mw_logfile tcpdump)" | tr '\n' ' ')"
}

flowd_one_day() {
	local left=$((86400 - $(date +%s) % 86400))
	if [ "$left" -lt 120 ]; then
		mw_log "waiting ${left}s for the next day's report interval"
		sleep "$((left + 1))"
	fi
}

packet_sockets() { ip netns exec "$NS_CLI" tail -n +2 /proc/net/packet | wc -l; }
