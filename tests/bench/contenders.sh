# shellcheck shell=bash
# contenders.sh - sourced by the app benchmarks: one topology, three contenders
#
# Every contender is reached by the client (namespace cli) over the same veth:
#   direct   nginx in namespace ins, no shim                      (port 8001)
#   haproxy  HAProxy (TCP mode) in namespace ins -> the same nginx (port 8002)
#   mwcomms  nginx under libmwshim.so, its sockets in mw-ins        (port 8003)
# Usage: MW_BUILD_DIR=build bash tests/bench/b1_http.sh
: "${MW_BUILD_DIR:?set MW_BUILD_DIR to the build tree (e.g. build)}"
MW_BUILD_DIR=$(cd "$MW_BUILD_DIR" && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
mw_require_cmd nginx haproxy wrk curl
mw_appliance_up

WWW=$MW_TMP/www
mkdir -p "$WWW"
echo "hello from nginx" >"$WWW/index.html"

source "$(dirname "${BASH_SOURCE[0]}")/nginx_conf.sh"

start_contenders() {
	mw_spawn nginx-direct in_ins nginx -c "$(nginx_conf direct 8001)"
	cat >"$MW_TMP/haproxy.cfg" <<HAP
global
	maxconn 8192
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend fe
	bind 0.0.0.0:8002
	default_backend be
backend be
	server nginx 127.0.0.1:8001
HAP
	mw_spawn haproxy in_ins haproxy -db -f "$MW_TMP/haproxy.cfg"
	mw_spawn nginx-mw shimmed nginx -c "$(nginx_conf mw 8003)"
	local p
	for p in 8001 8002 8003; do
		mw_wait_for "in_cli curl -sf -o /dev/null --max-time 2 http://$INS_IP:$p/" 15 ||
			mw_fail "contender on port $p does not answer"
	done
}
port_of() { case "$1" in direct) echo 8001 ;; haproxy) echo 8002 ;; mwcomms) echo 8003 ;; esac; }

# median of the numbers on stdin
median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# pp_servers [direct]: bench_pingpong's server under the shim on port 7103 and, with
# "direct", another in the INS's namespace without it on 7101, both answering;
# sets PP (the binary)
pp_servers() {
	PP=$MW_BUILD_DIR/tests/bench/bench_pingpong
	[ -x "$PP" ] || mw_fail "bench_pingpong is not built"
	if [ "${1:-}" = direct ]; then
		mw_spawn pp-direct in_ins "$PP" server 0.0.0.0:7101
	fi
	mw_spawn pp-mw shimmed "$PP" server 0.0.0.0:7103
	mw_wait_for "ins_listens 7103${1:+ && ins_listens 7101}" 10 || mw_fail "bench_pingpong servers not up"
}
