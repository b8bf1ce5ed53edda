#!/usr/bin/env bash
# test_xen_boot.sh - Xen and dom0 under QEMU (TCG); in dom0, xl create of the INS
# guest image with the domain mw-balancer's xl backend would create (xl_domcfg, from
# balancer/xlcfg.c); the guest must boot, take its address from the mw.* kernel
# arguments (read back from XenStore and pinged across the dom0 bridge) and start
# mw-ins (XenStore and its start-up line on the guest console).
#
# The images come from tools/xen/build.sh (Debian packages, cached in
# $MW_BUILD_DIR/xen); dom0 runs tests/xen/dom0_check.sh, which reports
# "MW-XEN: PASS|FAIL ..." lines on the serial console; this script parses them.
# The console of the last run (every line with seconds since QEMU started) is kept in
# $MW_BUILD_DIR/xen/last-console.log; everything else is in a temp dir, removed on
# exit. QEMU is bounded by timeout and killed with the script (its own process group).
# A missing prerequisite is a failure, never a skip.
set -euo pipefail

name=test_xen_boot
src=${MW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
: "${MW_BUILD_DIR:?MW_BUILD_DIR is not set (run through ctest, or export it)}"
build=$(cd "$MW_BUILD_DIR" && pwd)
limit=${MW_XEN_TIMEOUT:-540} # seconds for the whole emulated run (86-260 s seen)

fail() {
	echo "FAIL [$name]: $*" >&2
	exit 1
}
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing (tools/setup.sh installs qemu-system-x86)"
[ -x "$build/tests/xen/xl_domcfg" ] || fail "$build/tests/xen/xl_domcfg missing: build mwcomms first"

tmp=$(mktemp -d /tmp/mw-xen-boot.XXXXXX)
qpid=
cleanup() {
	# (set -e holds in a trap too: a failing kill or wait must not skip the rm)
	if [ -n "$qpid" ]; then
		kill -- -"$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

us() { echo "${EPOCHREALTIME/./}"; }                         # microseconds, integer
secs() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); } # us -> "s.cc"
t0=$(us)
bash "$src/tools/xen/build.sh" "$build" >"$tmp/build.log" 2>&1 ||
	{ cat "$tmp/build.log" >&2; fail "tools/xen/build.sh failed"; }
t_build=$(secs $(($(us) - t0)))

# The balancer configuration the xl backend would run with; INS 1 at slot 1.
id=1
cat >"$tmp/mwcomms.conf" <<CONF
balancer:
{
	backend = "xl";
	subnet = "10.77.0.0/24";
	bridge = "mwbr0";
	tag = "xb";
	xl_kernel = "/var/lib/mw/xen/vmlinux";
	xl_ramdisk = "/var/lib/mw/xen/ins.cpio.gz";
	xl_memory_mb = 128;
	xl_vcpus = 1;
};
CONF
ov=$tmp/overlay
mkdir -p "$ov/mw"
"$build/tests/xen/xl_domcfg" "$tmp/mwcomms.conf" "$id" 1 >"$ov/mw/ins.cfg" ||
	fail "xl_domcfg could not build the domain configuration"
domname=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$ov/mw/ins.cfg")
ip=$(sed -n 's/.*mw\.ip=\([^ "]*\).*/\1/p' "$ov/mw/ins.cfg")
bridge=$(sed -n 's/.*bridge=\([^,"]*\).*/\1/p' "$ov/mw/ins.cfg")
[ -n "$domname" ] && [ -n "$ip" ] && [ -n "$bridge" ] || fail "no name, mw.ip or bridge in the domain configuration: $(cat "$ov/mw/ins.cfg")"
printf 'MW_NAME=%s\nMW_ID=%s\nMW_IP=%s\nMW_BRIDGE=%s\n' "$domname" "$id" "$ip" "$bridge" \
	>"$ov/mw/expect"
install -m 0755 "$src/tests/xen/dom0_check.sh" "$ov/mw/run"
(cd "$ov" && find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0 | gzip) >"$tmp/overlay.cpio.gz"

# Every console line with the seconds since QEMU started, for the failure log and
# the timings.
echo "[$name] booting Xen + dom0 under QEMU (TCG), at most ${limit}s; images built in ${t_build}s"
start=$(us)
mkfifo "$tmp/console.fifo"
# Its own process group (setsid), so cleanup stops QEMU with it on any exit.
setsid bash "$src/tools/xen/run.sh" "$build" "$tmp/overlay.cpio.gz" "$limit" \
	</dev/null >"$tmp/console.fifo" 2>&1 &
qpid=$!
while IFS= read -r line; do
	now=${EPOCHREALTIME/./}
	printf '%8s %s\n' "$(secs $((now - start)))" "${line%$'\r'}"
done <"$tmp/console.fifo" >"$tmp/console.log"
rc=0
wait "$qpid" || rc=$?
qpid=
total=$(secs $(($(us) - start)))
cp "$tmp/console.log" "$build/xen/last-console.log" # for a look afterwards

at() { awk -v p="$1" 'index($0, p) { printf "%.1f", $1; exit }' "$tmp/console.log"; }
report() {
	echo "[$name] timings (s from QEMU start): dom0 user space $(at 'mw-dom0: ready'), xl create returned $(at 'MW-XEN: STEP xl-create-returned'), guest up $(at 'MW-XEN: STEP guest-up'), mw-ins seen $(at 'MW-XEN: STEP mw-ins-checked'), whole run $total"
}
grep -o 'MW-XEN: \(PASS\|FAIL\) .*' "$tmp/console.log" | sed "s/^/[$name] /" || true
endline=$(grep -o 'MW-XEN: END pass=[0-9]* fail=[0-9]*' "$tmp/console.log" || true)
if [ -z "$endline" ] || grep -q 'MW-XEN: FAIL' "$tmp/console.log"; then
	echo "---- console (seconds since QEMU start; Xen lines left out) ----" >&2
	grep -v '^ *[0-9.]* (XEN)' "$tmp/console.log" | tail -n 120 >&2
	report
	[ "$rc" != 124 ] || fail "QEMU killed after ${limit}s (MW_XEN_TIMEOUT) before dom0 finished"
	[ -n "$endline" ] || fail "dom0 never reported the end of its checks (QEMU exit status $rc)"
	fail "$(grep -c 'MW-XEN: FAIL' "$tmp/console.log") check(s) failed in dom0: $endline"
fi
case $endline in
*' fail=0') ;;
*) fail "dom0 says $endline" ;;
esac
n=$(grep -c 'MW-XEN: PASS' "$tmp/console.log")
[ "$n" -eq 6 ] || fail "$n checks passed, want 6"
report
echo "PASS [$name]: $endline"
