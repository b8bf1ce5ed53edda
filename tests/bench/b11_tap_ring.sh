#!/usr/bin/env bash
# b11_tap_ring.sh - B11's tap alone: what a packet tap's ring costs the sender, per frame
#
# A sender (python, one UDP socket, 200-byte datagrams as fast as it can for
# DURATION seconds) in namespace tx, over a veth pair to a socket in namespace
# rx that never reads.  The kernel runs every tap on the tx end in the sender's
# system call (the copy into the ring on transmit, and the peer's receive in the
# same softirq), so the sender's CPU per datagram is what a tap costs the process
# that sends: the appliance's mw-ins, in B11.  Set-ups, taken in turn each round
# (order rotated from round to round):
#   none      no tap
#   tcpdump   tcpdump -s 0 -w /dev/null (libpcap's ring: 2 MiB)
#   flowdN    mw-flowd on the tx end with a ring of N MiB (blocks of
#             B11_BLOCK bytes, default 256 KiB; N = 16 is 16 blocks of 1 MiB,
#             mw-flowd's default), no MAPI client
# Prints per set-up the median over ROUNDS of the sender's CPU nanoseconds per
# datagram (user + system, process_time) and of datagrams per second.
# B11_PERF_DIR=DIR: perf record -g of the sender in every run, to DIR/tap.SETUP.ROUND.
# Usage: MW_BUILD_DIR=build [ROUNDS=5] [DURATION=3] [B11_TAP_SETUPS='none tcpdump flowd2 flowd16 flowd64']
#        bash tests/bench/b11_tap_ring.sh
: "${MW_BUILD_DIR:?set MW_BUILD_DIR to the build tree (e.g. build)}"
MW_BUILD_DIR=$(cd "$MW_BUILD_DIR" && pwd)
source "$(dirname "$0")/../integration/lib.sh"
mw_require_root
mw_require_cmd ip tcpdump python3
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-3}
SETUPS=${B11_TAP_SETUPS:-none tcpdump flowd2 flowd16 flowd64}
BLOCK=${B11_BLOCK:-262144}
FLOWD=$MW_BUILD_DIR/flowd/mw-flowd
[ -x "$FLOWD" ] || mw_fail "build mw-flowd first"

mw_netns_add tx
mw_netns_add rx
NS_TX=$(mw_netns tx)
NS_RX=$(mw_netns rx)
mw_veth_add t r rx
T=$(mw_veth t)
ip link set "$T" netns "$NS_TX" || mw_fail "moving $T into $NS_TX failed"
ip -n "$NS_TX" addr add 10.233.0.1/24 dev "$T"
ip -n "$NS_TX" link set "$T" up
ip -n "$NS_RX" addr add 10.233.0.2/24 dev "$(mw_veth r)"
ip -n "$NS_RX" link set "$(mw_veth r)" up
mw_spawn sink ip netns exec "$NS_RX" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.233.0.2", 9999))
print("bound", flush=True)
time.sleep(86400)'
mw_wait_for "grep -q bound '$(mw_logfile sink)'" || mw_fail "the sink did not bind"

# send: "NS_PER_DATAGRAM DATAGRAMS_PER_S" of one run
send() {
	local perf=()
	[ -n "${B11_PERF_DIR:-}" ] && perf=(perf record -q -g -o "$B11_PERF_DIR/tap.$setup.$r" --)
	"${perf[@]}" ip netns exec "$NS_TX" python3 -c '
import socket, sys, time
d = float(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.233.0.2", 9999))
buf, n = b"x" * 200, 0
c0, t0 = time.process_time(), time.monotonic()
while time.monotonic() - t0 < d:
    for _ in range(1000):
        s.send(buf)
    n += 1000
c1, t1 = time.process_time(), time.monotonic()
print("%.0f %.0f" % (1e9 * (c1 - c0) / n, n / (t1 - t0)))' "$DURATION"
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

run() {
	local setup=$1 r=$2 out
	case $setup in
	none) out=$(send) ;;
	tcpdump)
		mw_spawn "tcpdump-$r" ip netns exec "$NS_TX" tcpdump -i "$T" -n -s 0 -w /dev/null
		mw_wait_for "grep -q 'listening on' '$(mw_logfile "tcpdump-$r")'" || mw_fail "tcpdump did not start"
		out=$(send)
		mw_stop "tcpdump-$r" ;;
	flowd*)
		local mib=${setup#flowd} blocks
		blocks=$((mib * 1048576 / BLOCK))
		mw_write_config "$MW_TMP/$setup.conf" "flowd: { interfaces = [ \"$T\" ];
	report_file = \"$MW_TMP/$setup.json\"; mapi_socket = \"\";
	ring_block_size = $BLOCK; ring_blocks = $blocks; };"
		mw_spawn "$setup-$r" ip netns exec "$NS_TX" "$FLOWD" -c "$MW_TMP/$setup.conf"
		mw_wait_for "grep -q 'watching 1 interface' '$(mw_logfile "$setup-$r")'" || mw_fail "mw-flowd ($setup) did not start"
		out=$(send)
		mw_stop "$setup-$r" ;;
	*) mw_fail "unknown set-up $setup" ;;
	esac
	echo "${out% *}" >>"$MW_TMP/tap.$setup.ns"
	echo "${out#* }" >>"$MW_TMP/tap.$setup.rate"
}

read -ra order <<<"$SETUPS"
n=${#order[@]}
for r in $(seq "$ROUNDS"); do
	line="round $r:"
	for i in $(seq 0 $((n - 1))); do
		setup=${order[$(((i + r - 1) % n))]}
		run "$setup" "$r"
		line="$line $setup $(tail -1 "$MW_TMP/tap.$setup.ns") ns"
	done
	echo "$line (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done
for setup in $SETUPS; do
	echo "b11_tap_ns_per_datagram_$setup: $(median <"$MW_TMP/tap.$setup.ns") ($(paste -sd' ' "$MW_TMP/tap.$setup.ns"))"
	echo "b11_tap_datagrams_per_s_$setup: $(median <"$MW_TMP/tap.$setup.rate")"
done
echo "b11_tap_rounds: $ROUNDS x ${DURATION}s, 200-byte datagrams, blocks of $BLOCK bytes; load $(cut -d' ' -f1-3 /proc/loadavg)"
