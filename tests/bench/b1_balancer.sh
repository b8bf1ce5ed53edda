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
# Usage: MW_BUILD_DIR=build-rel ROUNDS=5 DURATION=5s bash tests/bench/b1_balancer.sh
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
: "${MW_BUILD_DIR:?set MW_BUILD_DIR to the build tree (e.g. build)}"
MW_BUILD_DIR=$(cd "$MW_BUILD_DIR" && pwd)
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../integration/balancer_lib.sh"
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
	-e "s|balancer.sock|balancer-k.sock|" "$CONF" >"$KCONF"
mw_spawn balancer-k "$BAL" -c "$KCONF"
kctl() { "$MWCTL" -s "$MW_RUNTIME_DIR/balancer-k.sock" "$@"; }
mw_wait_for "[ \$(kctl ins list 2>/dev/null | awk '\$2 == \"ready\"' | wc -l) = 1 ]" 30 ||
	mw_fail "kernel-mode balancer: no ready INS: $(tail -5 "$(mw_logfile balancer-k)")"
for u in "127.0.0.1:$PORT" "127.0.0.1:$P_DIRECT" "127.0.0.1:$P_HAP" "$KFRONT:$PORT"; do
	mw_wait_for "curl -sf -o /dev/null --max-time 2 http://$u/" 15 ||
		mw_fail "contender at $u does not answer"
done

run_wrk() { # [host:]port extra-args...
	local port=$1 out
	shift
	[[ $port == *:* ]] || port=127.0.0.1:$port
	out=$(wrk -t 2 -c 64 -d "$DURATION" "$@" "http://$port/index.html")
	# errors (non-2xx, socket errors) would make a rate meaningless: say so
	if echo "$out" | grep -qE 'Non-2xx|Socket errors'; then
		mw_log "wrk on port $port reported errors: $(echo "$out" | grep -E 'Non-2xx|Socket errors')"
	fi
	echo "$out" | awk '/Requests\/sec/ {print $2}'
}
scale_to() {
	ctl scale "$1" >/dev/null || mw_fail "scale $1 rejected"
	kctl scale "$1" >/dev/null || mw_fail "kernel mode: scale $1 rejected"
	mw_wait_for "[ \$(ctl ins list | awk 'NR > 1' | wc -l) = $1 ]" 30 || mw_fail "scale $1: $(ctl ins list)"
	bal_wait_ready "$1" 30 || mw_fail "scale $1: not ready"
	mw_wait_for "[ \$(kctl ins list | awk '\$2 == \"ready\"' | wc -l) = $1 ] && [ \$(kctl ins list | awk 'NR > 1' | wc -l) = $1 ]" 30 ||
		mw_fail "kernel mode: scale $1: $(kctl ins list)"
}
for ((r = 0; r < ROUNDS; r++)); do
	run_wrk "$P_HAP" >>"$MW_TMP/b1.haproxy"
	run_wrk "$P_HAP" -H 'Connection: close' >>"$MW_TMP/b2.haproxy"
	run_wrk "$PORT" >>"$MW_TMP/b1.mw1"
	run_wrk "$PORT" -H 'Connection: close' >>"$MW_TMP/b2.mw1"
	run_wrk "$KFRONT:$PORT" >>"$MW_TMP/b1.k1"
	run_wrk "$KFRONT:$PORT" -H 'Connection: close' >>"$MW_TMP/b2.k1"
	scale_to 4
	run_wrk "$PORT" >>"$MW_TMP/b1.mw4"
	run_wrk "$PORT" -H 'Connection: close' >>"$MW_TMP/b2.mw4"
	run_wrk "$KFRONT:$PORT" >>"$MW_TMP/b1.k4"
	run_wrk "$KFRONT:$PORT" -H 'Connection: close' >>"$MW_TMP/b2.k4"
	scale_to 1
	for b in b1 b2; do
		for m in mw1 mw4 k1 k4; do
			paste -d' ' "$MW_TMP/$b.$m" "$MW_TMP/$b.haproxy" | tail -1 |
				awk '{print ($2 > 0 ? $1 / $2 : 0)}' >>"$MW_TMP/$b.$m.ratio"
		done
	done
done
echo "b1_rounds: $ROUNDS"
for c in haproxy mw1 mw4 k1 k4; do
	echo "b1_rps_$c: $(median <"$MW_TMP/b1.$c")"
	echo "b2_cps_$c: $(median <"$MW_TMP/b2.$c")"
done
for m in mw1 mw4 k1 k4; do
	echo "b1_${m}_over_haproxy: $(median <"$MW_TMP/b1.$m.ratio")"
	echo "b2_${m}_over_haproxy: $(median <"$MW_TMP/b2.$m.ratio")"
done
