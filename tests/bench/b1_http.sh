#!/usr/bin/env bash
# b1_http.sh - B1 (requests/s, keep-alive, 64 connections) and B2 (new connections/s):
# direct vs haproxy vs mwcomms, alternating, ROUNDS rounds, medians and ratios.
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
source "$(dirname "$0")/contenders.sh"
start_contenders

run_wrk() { # contender extra-args...
	local port
	port=$(port_of "$1")
	shift
	in_cli wrk -t 2 -c 64 -d "$DURATION" "$@" "http://$INS_IP:$port/index.html" |
		awk '/Requests\/sec/ {print $2}'
}
for r in $(seq "$ROUNDS"); do
	for c in direct haproxy mwcomms; do
		echo "$(run_wrk $c)" >>"$MW_TMP/b1.$c"
		echo "$(run_wrk $c -H 'Connection: close')" >>"$MW_TMP/b2.$c"
	done
	paste -d' ' "$MW_TMP/b1.mwcomms" "$MW_TMP/b1.haproxy" | tail -1 | awk '{print $1 / $2}' >>"$MW_TMP/b1.ratio"
	paste -d' ' "$MW_TMP/b2.mwcomms" "$MW_TMP/b2.haproxy" | tail -1 | awk '{print $1 / $2}' >>"$MW_TMP/b2.ratio"
done
for c in direct haproxy mwcomms; do
	echo "b1_rps_$c: $(median <"$MW_TMP/b1.$c")"
	echo "b2_cps_$c: $(median <"$MW_TMP/b2.$c")"
done
echo "b1_mwcomms_over_haproxy: $(median <"$MW_TMP/b1.ratio")"
echo "b2_mwcomms_over_haproxy: $(median <"$MW_TMP/b2.ratio")"
