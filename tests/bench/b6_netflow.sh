#!/usr/bin/env bash
# b6_netflow.sh - B6: Netflow observations/s delivered to one consumer (bench_netflow), and
# B1 through mwcomms with no consumer vs one stalled consumer, alternating, ROUNDS rounds.
# Usage: MW_BUILD_DIR=build-rel tests/bench/b6_netflow.sh   (as root; prints "name: value" lines)
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
source "$(dirname "$0")/contenders.sh"
echo "# B6 $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r), $(nproc) CPUs, rounds $ROUNDS, $DURATION" >&2
"$MW_BUILD_DIR/tests/bench/bench_netflow" "$ROUNDS" 2 2>/dev/null || mw_fail "bench_netflow failed"

start_contenders
NF=$(cat "$MW_RUNTIME_DIR/store/mw/pvm/netflow") || mw_fail "no Netflow address published"
NFP=$(dirname "$0")/../integration/nf_probe.py
run_wrk() {
	in_cli wrk -t 2 -c 64 -d "$DURATION" "http://$INS_IP:$(port_of mwcomms)/index.html" |
		awk '/Requests\/sec/ {print $2}'
}
for r in $(seq "$ROUNDS"); do
	run_wrk >>"$MW_TMP/b6.none"
	# A consumer that never reads, for the whole run (mw-pvm drops it after netflow_stall_ms).
	/usr/bin/python3 "$NFP" stall "$NF" 8 >/dev/null &
	stall=$!
	sleep 0.3
	run_wrk >>"$MW_TMP/b6.stalled"
	wait "$stall"
	paste -d' ' "$MW_TMP/b6.stalled" "$MW_TMP/b6.none" | tail -1 | awk '{print $1 / $2}' >>"$MW_TMP/b6.ratio"
	echo "# round $r: no consumer $(tail -1 "$MW_TMP/b6.none"), stalled $(tail -1 "$MW_TMP/b6.stalled")" >&2
done
echo "b6_b1_rps_no_consumer: $(median <"$MW_TMP/b6.none")"
echo "b6_b1_rps_stalled_consumer: $(median <"$MW_TMP/b6.stalled")"
echo "b6_stalled_over_none: $(median <"$MW_TMP/b6.ratio")"
grep -h 'dropped' "$PVM_LOG" | tail -2 >&2
