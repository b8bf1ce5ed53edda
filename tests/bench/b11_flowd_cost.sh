#!/usr/bin/env bash
# b11_flowd_cost.sh - B11: mw-flowd's cost on B1 while it watches the appliance (issue 13)
#
# B1 (wrk, keep-alive, 2 threads, 64 connections, DURATION) against nginx under
# libmwshim.so (contenders.sh's "mwcomms", port 8003), in set-ups taken in turn
# within each round, so a slow spell of the shared machine hits all of them
# (in an order rotated from round to round):
#   none     no mw-flowd
#   tcpdump  the peer, no mw-flowd: tcpdump (libpcap's AF_PACKET ring, full frames)
#            on the same veth writing to /dev/null: what a packet tap costs B1
#            whoever reads it (the kernel copies each frame in the sender's softirq)
#   live     mw-flowd sensing the INS's veth (AF_PACKET TPACKET_V3 ring, default
#            filter and tables), a MAPI client (mapi-rates: two flows with
#            BPF_FILTER + PKT/BYTE_COUNTER) attached
#   netflow  as live, and mw-flowd also consumes mw-pvm's Netflow stream (MonitorOn:
#            mw-pvm emits an observation per accept/recv/send/close)
# A live or netflow set-up may carry variants after a "+", to tell causes apart:
#   +norates       no MAPI client
#   +keys=K=V,...  more flowd keys (e.g. +keys=ring_block_size=1048576,ring_blocks=16;
#                  a value that is not a number is quoted: +keys=filter=arp)
#   +chrt=ARGS     mw-flowd under chrt ARGS (e.g. +chrt=-o:0, the old SCHED_OTHER default)
# e.g. B11_SETUPS='none tcpdump live live+norates'.
# Prints per set-up the median req/s over ROUNDS rounds, the median ratio to
# "none" of the same round, mw-flowd's CPU (user + system) over the run as a
# share of one core, CPU time per request in microseconds: of the appliance
# (mw-pvm, mw-ins, nginx), of mw-pvm alone (its Netflow emission: netflow against
# live) and of mw-flowd, and the appliance's context switches per request
# (voluntary and involuntary, all threads: a reader's wake-ups that preempt the
# relay's ping-pong show as involuntary ones).  On a shared machine req/s swings
# with the neighbours' load; CPU per request much less, so it is the cost to read.
# B11_PERF=1: perf record -g on the appliance's processes in every run, and per
# set-up the share of their samples under the packet tap's kernel functions.
# B11_SCHED=1: perf sched record -a for 2 s in every run (B11_PERF_DIR/sched.SETUP.ROUND).
# Usage: MW_BUILD_DIR=build [ROUNDS=5] [DURATION=5s] [B11_SETUPS='none tcpdump live netflow']
#        [B11_FLOWD_EXTRA='ring_blocks = 2;'] bash tests/bench/b11_flowd_cost.sh
#        (B11_FLOWD_EXTRA: more flowd keys for every live and netflow set-up)
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
SETUPS=${B11_SETUPS:-none tcpdump live netflow}
source "$(dirname "$0")/contenders.sh"
FLOWD=$(cd "$MW_BUILD_DIR" && pwd)/flowd/mw-flowd
RATES=$(cd "$MW_BUILD_DIR" && pwd)/tools/mapi-rates
if [ ! -x "$FLOWD" ] || [ ! -x "$RATES" ]; then
	mw_fail "build mw-flowd and tools/mapi-rates first"
fi
VETH=$(mw_veth i)
export MW_MAPI_SOCKET=$MW_RUNTIME_DIR/flowd.sock

mw_spawn nginx-mw shimmed nginx -c "$(nginx_conf mw 8003)"
mw_wait_for "in_cli curl -sf -o /dev/null --max-time 2 http://$INS_IP:8003/" 15 ||
	mw_fail "nginx under the shim does not answer"

b1() { in_cli wrk -t 2 -c 64 -d "$DURATION" "http://$INS_IP:8003/index.html" | awk '/Requests\/sec/ {print $2}'; }
# ticks PID...: their user + system CPU ticks (all threads)
ticks() {
	local p
	for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done | sed 's/^[0-9]* (.*) //' | awk '{t += $12 + $13} END {print t + 0}'
}
# ctxsw PID...: their voluntary and involuntary context switches and their
# migrations between CPUs (all threads)
ctxsw() {
	local p
	for p in "$@"; do cat /proc/"$p"/task/*/status /proc/"$p"/task/*/sched 2>/dev/null; done |
		awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2}
			/^se.nr_migrations/ {m += $3} END {print v + 0, n + 0, m + 0}'
}
HZ=$(getconf CLK_TCK)
# run_b1 SETUP [FLOWD_PID]: one B1 run; its req/s, and the CPU figures to SETUP's files
run_b1() {
	local setup=$1 fpid=${2:-} app pvm a0 a1 p0 p1 f0=0 f1=0 c0 c1 fc0="0 0 0" fc1="0 0 0" s0 s1 rps perf_pid
	pvm=$(pgrep -f "mw-pvm -c $CONF" | head -1)
	# shellcheck disable=SC2207
	app=("$pvm" $(pgrep -f "mw-ins --id [0-9]* -c $CONF") $(pgrep -f "nginx -c $MW_TMP"))
	a0=$(ticks "${app[@]}")
	p0=$(ticks "$pvm")
	c0=$(ctxsw "${app[@]}")
	[ -n "$fpid" ] && f0=$(ticks "$fpid") && fc0=$(ctxsw "$fpid")
	if [ -n "${B11_PERF:-}" ]; then
		perf record -q -g -o "${B11_PERF_DIR:-$MW_TMP}/perf.$setup.$r" -p "$(echo "${app[@]}" | tr ' ' ,)" \
			>/dev/null 2>&1 &
		perf_pid=$!
		sleep 0.5
	fi
	if [ -n "${B11_SCHED:-}" ]; then
		(sleep 1 && perf sched record -a -o "${B11_PERF_DIR:-$MW_TMP}/sched.$setup.$r" -- sleep 2 \
			>/dev/null 2>&1) &
	fi
	s0=$(date +%s.%N)
	rps=$(b1)
	s1=$(date +%s.%N)
	if [ -n "${B11_PERF:-}" ]; then
		kill -INT "$perf_pid"; wait "$perf_pid" || true
	fi
	a1=$(ticks "${app[@]}")
	p1=$(ticks "$pvm")
	c1=$(ctxsw "${app[@]}")
	[ -n "$fpid" ] && f1=$(ticks "$fpid") && fc1=$(ctxsw "$fpid")
	echo "$rps" >>"$MW_TMP/b11.$setup"
	awk -v a="$((a1 - a0))" -v p="$((p1 - p0))" -v f="$((f1 - f0))" -v hz="$HZ" -v s="$s0" \
		-v e="$s1" -v rps="$rps" -v c0="$c0" -v c1="$c1" \
		-v fc0="$fc0" -v fc1="$fc1" 'BEGIN {
		n = rps * (e - s)
		split(c0, x, " "); split(c1, y, " "); split(fc0, u, " "); split(fc1, w, " ")
		printf "%.1f\n", 1e6 * a / hz / n >>"'"$MW_TMP/b11.$setup.app_us"'"
		printf "%.2f\n", 1e6 * p / hz / n >>"'"$MW_TMP/b11.$setup.pvm_us"'"
		printf "%.2f\n", 1e6 * f / hz / n >>"'"$MW_TMP/b11.$setup.flowd_us"'"
		printf "%.1f\n", 100 * f / hz / (e - s) >>"'"$MW_TMP/b11.$setup.cpu"'"
		printf "%.3f\n", (y[1] - x[1]) / n >>"'"$MW_TMP/b11.$setup.vcs"'"
		printf "%.4f\n", (y[2] - x[2]) / n >>"'"$MW_TMP/b11.$setup.ics"'"
		printf "%.4f\n", (y[3] - x[3]) / n >>"'"$MW_TMP/b11.$setup.mig"'"
		printf "%.0f\n", (w[1] + w[2] - u[1] - u[2]) / (e - s) >>"'"$MW_TMP/b11.$setup.fcs"'"
	}'
}

# flowd_conf SETUP: its config file (the flowd keys of its +keys= variant added)
flowd_conf() {
	local setup=$1 keys="" v netflow="" conf
	for v in ${setup//+/ }; do
		# k=v,k=v: a value that is not a number is quoted
		case $v in keys=*) keys="$keys $(echo "${v#keys=}" | tr , '\n' |
			awk -F= '{printf "%s = %s; ", $1, ($2 ~ /^[0-9]+$/) ? $2 : "\"" $2 "\""}')" ;; esac
	done
	case $setup in netflow*) netflow="netflow = \"$MW_RUNTIME_DIR/netflow-0.sock\";" ;; esac
	conf=$MW_TMP/flowd-${setup//[^a-z0-9]/_}.conf
	mw_write_config "$conf" "flowd: { interfaces = [ \"$VETH\" ]; inside = [ \"$INS_IP/32\" ];
	report_file = \"$MW_TMP/flowd.json\"; mapi_socket = \"$MW_MAPI_SOCKET\"; $netflow
	${B11_FLOWD_EXTRA:-} $keys };"
	echo "$conf"
}

# flowd_round SETUP ROUND: mw-flowd (and mapi-rates) as SETUP says, one B1 run
flowd_round() {
	local setup=$1 r=$2 name=flowd-${1//[^a-z0-9]/_}-$2 conf rates=1 chrt=() v a
	conf=$(flowd_conf "$setup")
	for v in ${setup//+/ }; do
		case $v in
		norates) rates= ;;
		chrt=*) a=${v#chrt=} && read -ra chrt <<<"chrt ${a//:/ }" ;;
		esac
	done
	mw_spawn "$name" in_ins "${chrt[@]}" "$FLOWD" -c "$conf"
	mw_wait_for "grep -q 'MAPI on' '$(mw_logfile "$name")'" 10 || mw_fail "mw-flowd ($setup) did not start"
	case $setup in netflow*)
		mw_wait_for "grep -q 'netflow sensor: .* subscribed' '$(mw_logfile "$name")'" 10 ||
			mw_fail "mw-flowd did not subscribe to the Netflow stream" ;;
	esac
	if [ -n "$rates" ]; then
		mw_spawn "rates-$name" "$RATES" "$VETH" "$INS_IP/32" 1
		mw_wait_for "grep -qx connected '$(mw_logfile "rates-$name")'" 10 || mw_fail "mapi-rates did not connect"
	fi
	run_b1 "$setup" "$(pgrep -f "mw-flowd -c $conf" | head -1)"
	[ -n "$rates" ] && mw_stop "rates-$name"
	mw_stop "$name"
	grep -ho 'netflow sensor: .* drains, .* recv' "$(mw_logfile "$name")" >&2 || true
	case $setup in netflow*)
		# mw-pvm says how many observations it dropped for the consumer that left
		# (one such line per netflow run, when mw-pvm has seen the consumer go)
		nf_runs=$((nf_runs + 1))
		mw_wait_for "[ \$(grep -c 'observation(s) dropped)' '$PVM_LOG') -ge $nf_runs ]" 5 || true
		grep -o '[0-9]* observation(s) dropped' "$PVM_LOG" | tail -1 | awk '{print $1}' >>"$MW_TMP/b11.dropped" ;;
	esac
}

tcpdump_round() {
	local r=$1
	mw_spawn "tcpdump-$r" in_ins tcpdump -i "$VETH" -n -s 0 -w /dev/null
	mw_wait_for "grep -q 'listening on' '$(mw_logfile "tcpdump-$r")'" 10 || mw_fail "tcpdump did not start"
	run_b1 tcpdump "$(pgrep -f "tcpdump -i $VETH -n -s 0" | head -1)"
	mw_stop "tcpdump-$r"
}

# Round r takes the set-ups starting from the r-th: a set-up's place in the
# round (what ran before it, a drift within the round) is spread over the rounds
# instead of always the same (with "none" always first, a second "none" later in
# the round, none+2, ran at 0.78-1.42 of its req/s on a shared machine).
read -ra order <<<"$SETUPS"
nf_runs=0
for r in $(seq "$ROUNDS"); do
	line="round $r:"
	n=${#order[@]}
	round=()
	for i in $(seq 0 $((n - 1))); do round+=("${order[$(((i + r - 1) % n))]}"); done
	for setup in "${round[@]}"; do
		case $setup in
		none*) run_b1 "$setup" ;;
		tcpdump) tcpdump_round "$r" ;;
		live* | netflow*) flowd_round "$setup" "$r" ;;
		*) mw_fail "unknown set-up $setup" ;;
		esac
		line="$line $setup $(tail -1 "$MW_TMP/b11.$setup")"
	done
	echo "$line (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done
for setup in $SETUPS; do
	echo "b11_rps_$setup: $(median <"$MW_TMP/b11.$setup")"
	if [ "$setup" != none ] && [ -f "$MW_TMP/b11.none" ]; then
		# the ratio to "none" of the same round
		paste -d' ' "$MW_TMP/b11.$setup" "$MW_TMP/b11.none" | awk '{print $1 / $2}' >"$MW_TMP/b11.$setup.ratio"
		paste -d' ' "$MW_TMP/b11.$setup.app_us" "$MW_TMP/b11.none.app_us" | awk '{print $1 / $2}' >"$MW_TMP/b11.$setup.app_ratio"
		echo "b11_${setup}_over_none: $(median <"$MW_TMP/b11.$setup.ratio")"
		echo "b11_app_us_${setup}_over_none: $(median <"$MW_TMP/b11.$setup.app_ratio")"
	fi
	echo "b11_app_us_per_req_$setup: $(median <"$MW_TMP/b11.$setup.app_us")"
	echo "b11_app_ctxsw_per_req_$setup: voluntary $(median <"$MW_TMP/b11.$setup.vcs") involuntary $(median <"$MW_TMP/b11.$setup.ics") migrations $(median <"$MW_TMP/b11.$setup.mig")"
	echo "b11_pvm_us_per_req_$setup: $(median <"$MW_TMP/b11.$setup.pvm_us")"
	case $setup in none*) continue ;; esac
	echo "b11_flowd_cpu_pct_$setup: $(median <"$MW_TMP/b11.$setup.cpu")"
	echo "b11_flowd_us_per_req_$setup: $(median <"$MW_TMP/b11.$setup.flowd_us")"
	echo "b11_reader_ctxsw_per_s_$setup: $(median <"$MW_TMP/b11.$setup.fcs")"
done
# perf_share SETUP: inclusive share of the appliance's samples per tap function
perf_share() {
	local f
	for f in "${B11_PERF_DIR:-$MW_TMP}"/perf."$1".*; do
		perf report -i "$f" --children --sort sym --stdio 2>/dev/null |
			awk '/\[k\] (tpacket_rcv|packet_rcv|dev_queue_xmit_nit|skb_copy_bits|prb_retire_current_block|sock_def_readable|try_to_wake_up|__wake_up_sync_key|run_filter|bpf_prog_run|ep_poll_callback|skb_clone|kfree_skb|consume_skb)$/ {printf "%s=%s ", $NF, $1}'
		echo
	done
}
if [ -n "${B11_PERF:-}" ]; then
	for setup in $SETUPS; do
		echo "b11_perf_$setup:"
		perf_share "$setup"
	done
fi
if [ -f "$MW_TMP/b11.dropped" ]; then
	echo "b11_netflow_dropped_by_pvm: $(paste -sd+ "$MW_TMP/b11.dropped" | bc) (per round: $(paste -sd' ' "$MW_TMP/b11.dropped"))"
fi
echo "b11_rounds: $ROUNDS x $DURATION; load $(cut -d' ' -f1-3 /proc/loadavg)"
