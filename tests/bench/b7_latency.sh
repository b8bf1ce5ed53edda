#!/usr/bin/env bash
# b7_latency.sh - B7: 1-byte ping-pong round trip, p50/p99, direct vs haproxy vs mwcomms;
# prints the latency mwcomms adds over direct.
ROUNDS=${ROUNDS:-3}
N=${N:-20000}
source "$(dirname "$0")/contenders.sh"
PP=$MW_BUILD_DIR/tests/bench/bench_pingpong
[ -x "$PP" ] || mw_fail "bench_pingpong is not built"
mw_spawn pp-direct in_ins "$PP" server 0.0.0.0:7101
mw_spawn pp-mw shimmed "$PP" server 0.0.0.0:7103
cat >"$MW_TMP/haproxy.cfg" <<HAP
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend fe
	bind 0.0.0.0:7102
	default_backend be
backend be
	server pp 127.0.0.1:7101
HAP
mw_spawn haproxy in_ins haproxy -db -f "$MW_TMP/haproxy.cfg"
mw_wait_for "ins_listens 7101 && ins_listens 7102 && ins_listens 7103" 10 || mw_fail "servers not up"
pp_port() { case "$1" in direct) echo 7101 ;; haproxy) echo 7102 ;; mwcomms) echo 7103 ;; esac; }
for r in $(seq "$ROUNDS"); do
	for c in direct haproxy mwcomms; do
		in_cli "$PP" client "$INS_IP:$(pp_port $c)" "$N" >"$MW_TMP/pp.out" || mw_fail "$c ping-pong failed"
		awk '/p50_us/ {print $2}' "$MW_TMP/pp.out" >>"$MW_TMP/p50.$c"
		awk '/p99_us/ {print $2}' "$MW_TMP/pp.out" >>"$MW_TMP/p99.$c"
	done
done
for c in direct haproxy mwcomms; do
	echo "b7_p50_us_$c: $(median <"$MW_TMP/p50.$c")"
	echo "b7_p99_us_$c: $(median <"$MW_TMP/p99.$c")"
done
echo "b7_added_p50_us: $(echo "$(median <"$MW_TMP/p50.mwcomms") $(median <"$MW_TMP/p50.direct")" | awk '{print $1 - $2}')"
echo "b7_added_p99_us: $(echo "$(median <"$MW_TMP/p99.mwcomms") $(median <"$MW_TMP/p99.direct")" | awk '{print $1 - $2}')"
