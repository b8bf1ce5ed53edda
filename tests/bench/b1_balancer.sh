#!/usr/bin/env bash
# b1_balancer.sh - B1 (requests/s, keep-alive, wrk -c 64) and B2 (new connections/s,
# "Connection: close") through mw-balancer with 1 and with 4 INS (netns backend), in both
# front-end modes (splice proxy, kernel nftables DNAT), next to HAProxy (TCP mode) in front
# of direct nginx; alternating rounds, medians and ratios.
#
# All on this host, client wrk in the root namespace:
#   haproxy  127.0.0.1:PORT+2 -> nginx (no shim) 127.0.0.1:PORT+1
#   mw1/mw4  127.0.0.1:PORT mw-balancer -> veth -> mw-ins (1 or 4) -> mw-pvm -> nginx
#            under libmwshim.so, PROXY v2 on
#   k1/k4    KFRONT:PORT (an address of this host) -> a second mw-balancer, mode kernel:
#            nftables DNAT -> veth -> its own mw-ins (1 or 4) -> the same mw-pvm and nginx
# Both nginx: one worker, access log off (the config of tests/bench/contenders.sh).
# Each round: haproxy, mw1, k1, scale both 4 (waits ready), mw4, k4, scale both 1.
# MODES="kernel" (or "splice") runs that front end's contenders only (the other balancer
# stays up with 1 INS).  Besides the rates, the CPU time (µs) and context switches per
# request (B1) or connection (B2) of each process group of each contender, medians over
# the rounds (tests/bench/proc_cost.sh; "all" is the host's busy time, every process).
# KERNEL_KEYS='key = value; ...': more balancer keys for the kernel-mode balancer.
# PERF_DIR=DIR: perf record -a -g of each contender's first B1 and B2 run, DIR/<b1|b2>.NAME.data
# (then perf report -i ... --comm mw-ins).
# TRACE_DIR=DIR: perf trace -s (system calls by count) of mw-ins, mw-pvm and nginx during each
# mwcomms contender's first B1 and B2 run, DIR/<b1|b2>.NAME.txt; tracing slows them, so rates
# from such a run are not figures (divide the counts by the connections nginx served).
# Usage: MW_BUILD_DIR=build-rel ROUNDS=5 DURATION=5s [MODES=kernel] [PERF_DIR=DIR] bash tests/bench/b1_balancer.sh
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
MODES=${MODES:-splice kernel}
: "${MW_BUILD_DIR:?set MW_BUILD_DIR to the build tree (e.g. build)}"
MW_BUILD_DIR=$(cd "$MW_BUILD_DIR" && pwd)
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../integration/balancer_lib.sh"
source "$(dirname "$0")/proc_cost.sh"
mw_require_cmd haproxy wrk
median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

bal_up 1 4
WWWB=$MW_TMP/wwwb
mkdir -p "$WWWB"
echo "hello from nginx" >"$WWWB/index.html"
source "$(dirname "$0")/nginx_conf.sh"
# The test app of bal_up logs every request: replace it by the benchmark's.
mw_stop nginx 10
mw_spawn nginx-mw env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" nginx -c "$(nginx_conf mw "$PORT" "$WWWB")"
P_DIRECT=$((PORT + 1))
P_HAP=$((PORT + 2))
mw_spawn nginx-direct nginx -c "$(nginx_conf direct "127.0.0.1:$P_DIRECT" "$WWWB")"
cat >"$MW_TMP/haproxy.cfg" <<HAP
global
	maxconn 8192
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend fe
	bind 127.0.0.1:$P_HAP
	default_backend be
backend be
	server nginx 127.0.0.1:$P_DIRECT
HAP
mw_spawn haproxy haproxy -db -f "$MW_TMP/haproxy.cfg"
# The kernel-mode balancer: its own tag, bridge, subnet, socket and front address; its INS
# join the same mw-pvm (nginx's listeners are replicated on them) without PROXY v2.
KFRONT=172.$((16 + ($$ + 1) % 16)).$(((($$ + 1) / 16) % 250)).1
KSUB=10.$((200 + ($$ + 25) % 50)).$((($$ + 125) % 250))
ip link add "$MW_PREFIX-kf" type veth peer name "$MW_PREFIX-kp" || mw_fail "veth $MW_PREFIX-kf"
_mw_veths+=("$MW_PREFIX-kf")
if ! ip addr add "$KFRONT/32" dev "$MW_PREFIX-kf" || ! ip link set "$MW_PREFIX-kf" up; then
	mw_fail "address $KFRONT"
fi
KCONF=$MW_TMP/kernel.conf
sed -e 's/proxy_protocol = true;//' -e 's/proxy_from = "[^"]*";//' -e 's/mode = "splice";/mode = "kernel";/' \
	-e "s|listen = \[[^]]*\]|listen = [ \"$KFRONT:$PORT\" ]|" -e "s|$SUBNET_PREFIX.0/24|$KSUB.0/24|" \
	-e "s|bridge = \"$BR\"|bridge = \"k$BR\"|" -e "s|tag = \"$TAG\"|tag = \"k$TAG\"|" \
	-e "s|balancer.sock|balancer-k.sock|" -e "s|tag = \"k$TAG\";|tag = \"k$TAG\"; ${KERNEL_KEYS:-}|" \
	"$CONF" >"$KCONF"
mw_spawn balancer-k "$BAL" -c "$KCONF"
kctl() { "$MWCTL" -s "$MW_RUNTIME_DIR/balancer-k.sock" "$@"; }
mw_wait_for "[ \$(kctl ins list 2>/dev/null | awk '\$2 == \"ready\"' | wc -l) = 1 ]" 30 ||
	mw_fail "kernel-mode balancer: no ready INS: $(tail -5 "$(mw_logfile balancer-k)")"
for u in "127.0.0.1:$PORT" "127.0.0.1:$P_DIRECT" "127.0.0.1:$P_HAP" "$KFRONT:$PORT"; do
	mw_wait_for "curl -sf -o /dev/null --max-time 2 http://$u/" 15 ||
		mw_fail "contender at $u does not answer"
done

# run_wrk NAME [host:]port extra-args...: the rate to stdout, the cost per request of
# NAME's process groups (groups_of) appended to $MW_TMP/cost.<b1|b2>.NAME.
run_wrk() {
	local name=$1 port=$2 out b=b1
	shift 2
	[[ $port == *:* ]] || port=127.0.0.1:$port
	[[ $* == *close* ]] && b=b2
	# shellcheck disable=SC2046 # one word per group
	cost_snap $(groups_of "$name") >"$MW_TMP/cost.before"
	local perf=()
	if [ -n "${PERF_DIR:-}" ] && [ ! -e "$PERF_DIR/$b.$name.data" ]; then
		perf=(perf record -q -a -g -o "$PERF_DIR/$b.$name.data" --)
	fi
	local tp=
	if [ -n "${TRACE_DIR:-}" ] && [ "$name" != haproxy ] && [ ! -e "$TRACE_DIR/$b.$name.txt" ]; then
		local tpids
		# shellcheck disable=SC2046 # one word per group
		tpids=$(printf '%s\n' $(groups_of "$name") | grep -E '^(ins|pvm|nginx)=' | cut -d= -f2 | paste -sd,)
		perf trace -s -p "$tpids" -o "$TRACE_DIR/$b.$name.txt" &
		tp=$!
		sleep 0.5 # attached before the load starts
	fi
	out=$("${perf[@]}" wrk -t 2 -c 64 -d "$DURATION" "$@" "http://$port/index.html")
	if [ -n "$tp" ]; then
		kill -INT "$tp"
		wait "$tp" || true
	fi
	# shellcheck disable=SC2046
	cost_snap $(groups_of "$name") >"$MW_TMP/cost.after"
	# errors (non-2xx, socket errors) would make a rate meaningless: say so
	if echo "$out" | grep -qE 'Non-2xx|Socket errors'; then
		mw_log "wrk on port $port reported errors: $(echo "$out" | grep -E 'Non-2xx|Socket errors')"
	fi
	cost_diff "$MW_TMP/cost.before" "$MW_TMP/cost.after" \
		"$(echo "$out" | awk '/requests in/ {print $1}')" >>"$MW_TMP/cost.$b.$name"
	echo "$out" | awk '/Requests\/sec/ {print $2}'
}
# groups_of NAME: GROUP=PIDS words for cost_snap.
workers() { pgrep -d, -P "$(mw_pid "$1")"; }
groups_of() {
	case $1 in
	haproxy) echo "haproxy=$(mw_pid haproxy) nginx=$(workers nginx-direct)" ;;
	mw*) echo "balancer=$(mw_pid balancer) ins=$(pgrep -d, -P "$(mw_pid balancer)" '^mw-ins')" \
		"pvm=$(mw_pid pvm) nginx=$(workers nginx-mw)" ;;
	k*) echo "balancer=$(mw_pid balancer-k) ins=$(pgrep -d, -P "$(mw_pid balancer-k)" '^mw-ins')" \
		"pvm=$(mw_pid pvm) nginx=$(workers nginx-mw)" ;;
	esac
}
want() { [[ " $MODES " == *" $1 "* ]]; }
scale_to() {
	if want splice; then
		ctl scale "$1" >/dev/null || mw_fail "scale $1 rejected"
	fi
	if want kernel; then
		kctl scale "$1" >/dev/null || mw_fail "kernel mode: scale $1 rejected"
	fi
	if want splice; then
		mw_wait_for "[ \$(ctl ins list | awk 'NR > 1' | wc -l) = $1 ]" 30 || mw_fail "scale $1: $(ctl ins list)"
		bal_wait_ready "$1" 30 || mw_fail "scale $1: not ready"
	fi
	if want kernel; then
		mw_wait_for "[ \$(kctl ins list | awk '\$2 == \"ready\"' | wc -l) = $1 ] && [ \$(kctl ins list | awk 'NR > 1' | wc -l) = $1 ]" 30 ||
			mw_fail "kernel mode: scale $1: $(kctl ins list)"
	fi
}
# one_round N: the contenders of the front ends in MODES with N INS.
one_round() {
	local m
	for m in mw k; do
		[ $m = mw ] && ! want splice && continue
		[ $m = k ] && ! want kernel && continue
		local at=$PORT
		[ $m = k ] && at=$KFRONT:$PORT
		run_wrk "$m$1" "$at" >>"$MW_TMP/b1.$m$1"
		run_wrk "$m$1" "$at" -H 'Connection: close' >>"$MW_TMP/b2.$m$1"
	done
}
CONTENDERS=
want splice && CONTENDERS+=" mw1 mw4"
want kernel && CONTENDERS+=" k1 k4"
for ((r = 0; r < ROUNDS; r++)); do
	run_wrk haproxy "$P_HAP" >>"$MW_TMP/b1.haproxy"
	run_wrk haproxy "$P_HAP" -H 'Connection: close' >>"$MW_TMP/b2.haproxy"
	one_round 1
	scale_to 4
	one_round 4
	scale_to 1
	for b in b1 b2; do
		for m in $CONTENDERS; do
			paste -d' ' "$MW_TMP/$b.$m" "$MW_TMP/$b.haproxy" | tail -1 |
				awk '{print ($2 > 0 ? $1 / $2 : 0)}' >>"$MW_TMP/$b.$m.ratio"
		done
	done
done
echo "b1_rounds: $ROUNDS"
echo "load_average: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in haproxy $CONTENDERS; do
	echo "b1_rps_$c: $(median <"$MW_TMP/b1.$c")"
	echo "b2_cps_$c: $(median <"$MW_TMP/b2.$c")"
done
for m in $CONTENDERS; do
	echo "b1_${m}_over_haproxy: $(median <"$MW_TMP/b1.$m.ratio")"
	echo "b2_${m}_over_haproxy: $(median <"$MW_TMP/b2.$m.ratio")"
done
# cost_<b>_<contender>_<group>: µs of CPU, voluntary and involuntary switches per request.
for b in b1 b2; do
	for c in haproxy $CONTENDERS; do
		awk '{print $1}' "$MW_TMP/cost.$b.$c" | sort -u | while read -r g; do
			printf 'cost_%s_%s_%s: us %s vol %s nonvol %s\n' "$b" "$c" "$g" \
				"$(awk -v g="$g" '$1 == g {print $2}' "$MW_TMP/cost.$b.$c" | median)" \
				"$(awk -v g="$g" '$1 == g {print $3}' "$MW_TMP/cost.$b.$c" | median)" \
				"$(awk -v g="$g" '$1 == g {print $4}' "$MW_TMP/cost.$b.$c" | median)"
		done
	done
done
