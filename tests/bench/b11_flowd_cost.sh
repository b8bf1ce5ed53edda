#!/usr/bin/env bash
# b11_flowd_cost.sh - B11: mw-flowd's cost on B1 while it watches the appliance (issue 13)
#
# B1 (wrk, keep-alive, 2 threads, 64 connections, DURATION) against nginx under
# libmwshim.so (contenders.sh's "mwcomms", port 8003), in three set-ups taken in
# turn within each round, so a slow spell of the shared machine hits all three:
#   none     no mw-flowd
#   live     mw-flowd sensing the INS's veth (AF_PACKET TPACKET_V3 ring, default
#            filter and tables), a MAPI client (mapi-rates: two flows with
#            BPF_FILTER + PKT/BYTE_COUNTER) attached
#   netflow  as live, and mw-flowd also consumes mw-pvm's Netflow stream (MonitorOn:
#            mw-pvm emits an observation per accept/recv/send/close)
#   tcpdump  the peer, no mw-flowd: tcpdump (libpcap's AF_PACKET ring, full frames)
#            on the same veth writing to /dev/null: what a packet tap costs B1
#            whoever reads it (the kernel copies each frame in the sender's softirq)
# Prints per set-up the median req/s over ROUNDS rounds, the median ratio to
# "none" of the same round, mw-flowd's CPU (user + system) over the run as a
# share of one core, and CPU time per request in microseconds: of the appliance
# (mw-pvm, mw-ins, nginx), of mw-pvm alone (its Netflow emission: netflow against
# live) and of mw-flowd.  On a shared machine req/s swings with
# the neighbours' load; CPU per request much less, so it is the cost to read.
# Usage: MW_BUILD_DIR=build [ROUNDS=5] [DURATION=5s] [B11_FLOWD_EXTRA='ring_blocks = 2;']
#        bash tests/bench/b11_flowd_cost.sh   (B11_FLOWD_EXTRA: more flowd keys for live and netflow)
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
source "$(dirname "$0")/contenders.sh"
FLOWD=$(cd "$MW_BUILD_DIR" && pwd)/flowd/mw-flowd
RATES=$(cd "$MW_BUILD_DIR" && pwd)/tools/mapi-rates
if [ ! -x "$FLOWD" ] || [ ! -x "$RATES" ]; then
	mw_fail "build mw-flowd and tools/mapi-rates first"
fi
VETH=$(mw_veth i)
export MW_MAPI_SOCKET=$MW_RUNTIME_DIR/flowd.sock
mw_write_config "$MW_TMP/live.conf" "flowd: { interfaces = [ \"$VETH\" ]; inside = [ \"$INS_IP/32\" ];
	report_file = \"$MW_TMP/flowd.json\"; mapi_socket = \"$MW_MAPI_SOCKET\"; ${B11_FLOWD_EXTRA:-} };"
mw_write_config "$MW_TMP/netflow.conf" "flowd: { interfaces = [ \"$VETH\" ]; inside = [ \"$INS_IP/32\" ];
	report_file = \"$MW_TMP/flowd.json\"; mapi_socket = \"$MW_MAPI_SOCKET\";
	netflow = \"$MW_RUNTIME_DIR/netflow-0.sock\"; };"

mw_spawn nginx-mw shimmed nginx -c "$(nginx_conf mw 8003)"
mw_wait_for "in_cli curl -sf -o /dev/null --max-time 2 http://$INS_IP:8003/" 15 ||
	mw_fail "nginx under the shim does not answer"

b1() { in_cli wrk -t 2 -c 64 -d "$DURATION" "http://$INS_IP:8003/index.html" | awk '/Requests\/sec/ {print $2}'; }
# ticks PID...: their user + system CPU ticks (all threads)
ticks() {
	local p
	for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done | sed 's/^[0-9]* (.*) //' | awk '{t += $12 + $13} END {print t + 0}'
}
HZ=$(getconf CLK_TCK)
# run_b1 SETUP [FLOWD_PID]: one B1 run; its req/s, and the CPU figures to SETUP's files
run_b1() {
	local setup=$1 fpid=${2:-} app pvm a0 a1 p0 p1 f0=0 f1=0 s0 s1 rps
	pvm=$(pgrep -f "mw-pvm -c $CONF" | head -1)
	# shellcheck disable=SC2207
	app=("$pvm" $(pgrep -f "mw-ins --id") $(pgrep -f "nginx -c $MW_TMP"))
	a0=$(ticks "${app[@]}")
	p0=$(ticks "$pvm")
	[ -n "$fpid" ] && f0=$(ticks "$fpid")
	s0=$(date +%s.%N)
	rps=$(b1)
	s1=$(date +%s.%N)
	a1=$(ticks "${app[@]}")
	p1=$(ticks "$pvm")
	[ -n "$fpid" ] && f1=$(ticks "$fpid")
	echo "$rps" >>"$MW_TMP/b11.$setup"
	awk -v a="$((a1 - a0))" -v p="$((p1 - p0))" -v f="$((f1 - f0))" -v hz="$HZ" -v s="$s0" \
		-v e="$s1" -v rps="$rps" 'BEGIN {
		n = rps * (e - s)
		printf "%.1f\n", 1e6 * a / hz / n >>"'"$MW_TMP/b11.$setup.app_us"'"
		printf "%.2f\n", 1e6 * p / hz / n >>"'"$MW_TMP/b11.$setup.pvm_us"'"
		printf "%.2f\n", 1e6 * f / hz / n >>"'"$MW_TMP/b11.$setup.flowd_us"'"
		printf "%.1f\n", 100 * f / hz / (e - s) >>"'"$MW_TMP/b11.$setup.cpu"'"
	}'
}

for r in $(seq "$ROUNDS"); do
	run_b1 none
	mw_spawn "tcpdump-$r" in_ins tcpdump -i "$VETH" -n -s 0 -w /dev/null
	mw_wait_for "grep -q 'listening on' '$(mw_logfile "tcpdump-$r")'" 10 || mw_fail "tcpdump did not start"
	run_b1 tcpdump "$(pgrep -f "tcpdump -i $VETH -n -s 0" | head -1)"
	mw_stop "tcpdump-$r"
	paste -d' ' "$MW_TMP/b11.tcpdump" "$MW_TMP/b11.none" | tail -1 | awk '{print $1 / $2}' >>"$MW_TMP/b11.tcpdump.ratio"
	for setup in live netflow; do
		name=flowd-$setup-$r
		mw_spawn "$name" in_ins "$FLOWD" -c "$MW_TMP/$setup.conf"
		mw_wait_for "grep -q 'MAPI on' '$(mw_logfile "$name")'" 10 || mw_fail "mw-flowd ($setup) did not start"
		if [ "$setup" = netflow ]; then
			mw_wait_for "grep -q 'netflow sensor: .* subscribed' '$(mw_logfile "$name")'" 10 ||
				mw_fail "mw-flowd did not subscribe to the Netflow stream"
		fi
		mw_spawn "rates-$setup-$r" "$RATES" "$VETH" "$INS_IP/32" 1
		mw_wait_for "grep -qx connected '$(mw_logfile "rates-$setup-$r")'" 10 || mw_fail "mapi-rates did not connect"
		run_b1 "$setup" "$(pgrep -f "mw-flowd -c $MW_TMP/$setup.conf" | head -1)"
		mw_stop "rates-$setup-$r"
		mw_stop "$name"
		grep -ho 'netflow sensor: .* drains, .* recv' "$(mw_logfile "$name")" >&2 || true
		if [ "$setup" = netflow ]; then
			# mw-pvm says how many observations it dropped for the consumer that left
			# (one such line per round, when mw-pvm has seen the consumer go)
			mw_wait_for "[ \$(grep -c 'observation(s) dropped)' '$PVM_LOG') -ge $r ]" 5 || true
			grep -o '[0-9]* observation(s) dropped' "$PVM_LOG" | tail -1 | awk '{print $1}' >>"$MW_TMP/b11.dropped"
		fi
		paste -d' ' "$MW_TMP/b11.$setup" "$MW_TMP/b11.none" | tail -1 | awk '{print $1 / $2}' >>"$MW_TMP/b11.$setup.ratio"
	done
	echo "round $r: none $(tail -1 "$MW_TMP/b11.none") tcpdump $(tail -1 "$MW_TMP/b11.tcpdump") live $(tail -1 "$MW_TMP/b11.live") netflow $(tail -1 "$MW_TMP/b11.netflow")" >&2
done
echo "b11_rps_none: $(median <"$MW_TMP/b11.none")"
echo "b11_app_us_per_req_none: $(median <"$MW_TMP/b11.none.app_us")"
echo "b11_pvm_us_per_req_none: $(median <"$MW_TMP/b11.none.pvm_us")"
for setup in tcpdump live netflow; do
	echo "b11_rps_$setup: $(median <"$MW_TMP/b11.$setup")"
	echo "b11_${setup}_over_none: $(median <"$MW_TMP/b11.$setup.ratio")"
	echo "b11_flowd_cpu_pct_$setup: $(median <"$MW_TMP/b11.$setup.cpu")"
	echo "b11_app_us_per_req_$setup: $(median <"$MW_TMP/b11.$setup.app_us")"
	echo "b11_pvm_us_per_req_$setup: $(median <"$MW_TMP/b11.$setup.pvm_us")"
	echo "b11_flowd_us_per_req_$setup: $(median <"$MW_TMP/b11.$setup.flowd_us")"
done
echo "b11_netflow_dropped_by_pvm: $(paste -sd+ "$MW_TMP/b11.dropped" | bc) (per round: $(paste -sd' ' "$MW_TMP/b11.dropped"))"
echo "b11_rounds: $ROUNDS x $DURATION"
