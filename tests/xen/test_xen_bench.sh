#!/usr/bin/env bash
# test_xen_bench.sh - issue 15 item 5 (ctest labels xen and xen_bench, by hand: not in
# CI): in one QEMU boot (Xen and dom0 under TCG) the same app under the shim is served
# through mw-balancer's xl backend (its INS in a domU) and through a second balancer
# with the netns backend (its INS in a namespace of dom0); xen_client runs ROUNDS
# rounds of N sequential requests per path, alternating between them every CHUNK
# requests (tests/xen/dom0_bench.sh).
# Fails unless every run had N of N answered; prints requests/s per path, their ratio
# xl/netns and each INS's spawn-to-ready (docs/xen.md,
# "Measured under QEMU").
#   MW_XEN_BENCH_N (default 100), MW_XEN_BENCH_ROUNDS (default 3), MW_XEN_BENCH_CHUNK
#   (default 10: the paths alternate every CHUNK requests; N a multiple of it)
# shellcheck source=tests/xen/xen_lib.sh
source "$(dirname "$0")/xen_lib.sh"
N=${MW_XEN_BENCH_N:-100}
ROUNDS=${MW_XEN_BENCH_ROUNDS:-3}
CHUNK=${MW_XEN_BENCH_CHUNK:-10}
if ! [[ $N =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]?$ && $CHUNK =~ ^[1-9][0-9]*$ ]] ||
	((N % CHUNK != 0)); then
	echo "MW_XEN_BENCH_N, _ROUNDS, _CHUNK: positive integers, N a multiple of CHUNK" >&2
	exit 2
fi
xen_setup test_xen_bench
for b in xen_app xen_client; do
	[ -x "$XEN_BUILD/tests/xen/$b" ] || xen_fail "$XEN_BUILD/tests/xen/$b missing: build mwcomms first"
	install -m 0755 "$XEN_BUILD/tests/xen/$b" "$XEN_OV/mw/$b"
done
install -m 0755 "$XEN_SRC/tests/xen/dom0_bench.sh" "$XEN_OV/mw/run"
printf 'N=%s\nROUNDS=%s\nCHUNK=%s\n' "$N" "$ROUNDS" "$CHUNK" >"$XEN_OV/mw/bench.env"

load0=$(cut -d' ' -f1-3 /proc/loadavg)
xen_boot
load1=$(cut -d' ' -f1-3 /proc/loadavg)
report() {
	echo "[$XEN_NAME] timings (s from QEMU start): images built in ${XEN_T_BUILD}s; dom0 user space $(xen_at 'mw-dom0: ready'), $(awk '/MW-XEN: STEP/ { printf "%s %.1f, ", $4, $1 }' "$XEN_TMP/console.log")whole run $XEN_T_TOTAL; load average $load0 before, $load1 after"
	grep -o 'MW-XEN: FIGURE .*' "$XEN_TMP/console.log" | sed "s/^MW-XEN: FIGURE /[$XEN_NAME] figure: /" || true
}
trap 'report; _xen_cleanup' EXIT
# 2 ready INS + one check per run.
xen_verdict $((2 + 2 * ROUNDS))
# The figures must be there and make sense: a run line per path and round, totals, ratio.
log=$XEN_TMP/console.log
for p in xl netns; do
	n=$(grep -c "MW-XEN: FIGURE run $p [0-9]* ok=$N fail=0 secs=[0-9.]* rps=[0-9.]*" "$log" || true)
	[ "$n" -eq "$ROUNDS" ] || xen_fail "$n run figures for $p, want $ROUNDS"
	grep -q "MW-XEN: FIGURE spawn_to_ready_s $p [0-9.]*" "$log" || xen_fail "no spawn_to_ready_s figure for $p"
	rps=$(sed -n "s/.*MW-XEN: FIGURE total $p rps=\([0-9.]*\).*/\1/p" "$log")
	awk -v r="$rps" 'BEGIN { exit !(r + 0 > 0) }' || xen_fail "no positive total rps for $p: '$rps'"
	eval "rps_$p=\$rps"
done
n=$(grep -o 'MW-XEN: FIGURE round_ratios_xl_netns\( [0-9.]*\)*' "$log" | wc -w)
[ "$n" -eq $((3 + ROUNDS)) ] || xen_fail "no ratio per round (round_ratios_xl_netns)"
ratio=$(sed -n 's/.*MW-XEN: FIGURE ratio_xl_netns \([0-9.]*\).*/\1/p' "$log")
# shellcheck disable=SC2154 # rps_xl, rps_netns: set by the eval above
awk -v r="$ratio" -v x="$rps_xl" -v n="$rps_netns" \
	'BEGIN { exit !(r > 0 && (r - x / n) ^ 2 < 0.0001 + (r / 100) ^ 2) }' ||
	xen_fail "ratio_xl_netns '$ratio' is not xl/netns = $rps_xl/$rps_netns"
echo "PASS [$XEN_NAME]: $ROUNDS rounds of $N requests per path, xl $rps_xl req/s, netns $rps_netns req/s, ratio xl/netns $ratio"
