#!/usr/bin/env bash
# b9_attacks.sh - B9: low-volume attacks on a worker-pool web server (Apache httpd,
# mpm_worker, 150 request slots), side by side in one run:
#   alone    the server in namespace ins, no shim                          (port 8101)
#   haproxy  HAProxy, http mode, `timeout http-request 10s` -> that server (port 8102)
#   mwcomms  the same server under libmwshim.so behind mw-ins, with mw-guard
#            when it is built (ATK_GUARD=1)                                (port 8103)
# Each attack (tests/integration/attack/attack_lib.sh: slowhttptest -H, -B, -X and an
# idle connection flood; ATK_CONNS connections at ATK_RATE/s from a namespace of their
# own) runs ATK_SECS + 3 s against each contender in turn while the benign client fetches a
# small page every 0.2 s; reported: benign requests answered within 3 s, their p99
# latency, and the last failure's time since the attack started (-1: none).
# Usage: MW_BUILD_DIR=build bash tests/bench/b9_attacks.sh
: "${MW_BUILD_DIR:?set MW_BUILD_DIR to the build tree (e.g. build)}"
MW_BUILD_DIR=$(cd "$MW_BUILD_DIR" && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../integration/attack/attack_lib.sh"
mw_require_cmd apache2 haproxy
atk_appliance_up "8103:http"
atk_www

atk_server apache in_ins alone 8101
cat >"$MW_TMP/haproxy.cfg" <<HAP
global
	maxconn 8000
defaults
	mode http
	maxconn 8000
	timeout connect 5s
	timeout client 30s
	timeout server 30s
	timeout http-request 10s
frontend fe
	bind 0.0.0.0:8102
	default_backend be
backend be
	server apache 127.0.0.1:8101
HAP
mw_spawn haproxy in_ins haproxy -db -f "$MW_TMP/haproxy.cfg"
atk_healthy http 8102 15 || mw_fail "haproxy does not answer on port 8102"
atk_server apache shimmed mwcomms 8103

for attack in ${ATK_ATTACKS:-slowh slowb slowr flood}; do
	atk_row alone 8101 "$attack" separate
	atk_row haproxy 8102 "$attack" separate
	atk_row mwcomms 8103 "$attack" separate
done
atk_report "B9 rows" nofail

# attack x contender: benign success (p99 ms, last failure s)
{
	echo
	echo "B9: benign requests answered within 3 s (p99 ms; last failure, s after the attack started)"
	echo "| attack | server alone | HAProxy (http, timeout http-request 10s) | behind mwcomms$([ "$ATK_GUARD_ON" = 1 ] && echo " + mw-guard") |"
	echo "|---|---|---|---|"
	awk '{cell[$2, $1] = $4 " % (" $5 " ms; " $6 " s)"; if (!seen[$2]++) order[++n] = $2}
	     END {for (i = 1; i <= n; i++) {a = order[i]
	          printf "| %s | %s | %s | %s |\n", a, cell[a, "alone"], cell[a, "haproxy"], cell[a, "mwcomms"]}}' \
		"$MW_TMP/atk-data"
} | tee "$MW_TMP/b9-table"
