# shellcheck shell=bash
# xen_lib.sh - sourced by the host side of the tests/xen scenarios: images, a temp dir
# and QEMU that are always cleaned up, the boot with an overlay, and the verdict from
# the "MW-XEN: ..." lines the dom0 script prints on the serial console.
#
#   xen_setup NAME    checks prerequisites, builds the images (cached), makes $XEN_TMP
#                     and $XEN_OV (the overlay directory: put mw/run and its files there)
#   xen_boot          boots the machine with $XEN_OV; the console, each line prefixed
#                     with seconds since QEMU start, in $XEN_TMP/console.log.  A boot
#                     whose dom0 never reaches user space ("mw-dom0: ready") within
#                     $MW_XEN_BOOT_TIMEOUT s (150; a normal one takes 10-15) is an
#                     emulated kernel's hang before any of mwcomms runs (seen once in
#                     CI: dom0's kernel silent after Xen's "PCI add device" lines): it
#                     is killed and booted once more, and said so; twice is a failure.
#   xen_verdict N     fails unless dom0 reported END with no FAIL and N PASS lines
#   xen_at TEXT       seconds of the first console line holding TEXT
set -euo pipefail

XEN_SRC=${MW_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
XEN_LIMIT=${MW_XEN_TIMEOUT:-540} # seconds for the whole emulated run
XEN_BOOT_LIMIT=${MW_XEN_BOOT_TIMEOUT:-150} # seconds until dom0's user space says ready
_xen_qpid=
_xen_wd=

xen_fail() {
	echo "FAIL [$XEN_NAME]: $*" >&2
	exit 1
}

_xen_cleanup() {
	# (set -e holds in a trap too: a failing kill or wait must not skip the rm)
	if [ -n "$_xen_wd" ]; then
		kill "$_xen_wd" 2>/dev/null || true
		wait "$_xen_wd" 2>/dev/null || true
	fi
	if [ -n "$_xen_qpid" ]; then
		kill -- -"$_xen_qpid" 2>/dev/null || true
		wait "$_xen_qpid" 2>/dev/null || true
	fi
	rm -rf "${XEN_TMP:-}"
}

_xen_us() { echo "${EPOCHREALTIME/./}"; } # microseconds, integer
_xen_secs() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }

xen_setup() {
	XEN_NAME=$1
	: "${MW_BUILD_DIR:?MW_BUILD_DIR is not set (run through ctest, or export it)}"
	XEN_BUILD=$(cd "$MW_BUILD_DIR" && pwd)
	command -v qemu-system-x86_64 >/dev/null ||
		xen_fail "qemu-system-x86_64 missing (tools/setup.sh installs qemu-system-x86)"
	[ -x "$XEN_BUILD/tests/xen/xl_domcfg" ] ||
		xen_fail "$XEN_BUILD/tests/xen/xl_domcfg missing: build mwcomms first"
	XEN_TMP=$(mktemp -d "/tmp/mw-xen-$XEN_NAME.XXXXXX")
	trap _xen_cleanup EXIT
	trap 'exit 1' INT TERM
	XEN_OV=$XEN_TMP/overlay
	mkdir -p "$XEN_OV/mw"
	install -m 0644 "$XEN_SRC/tests/xen/dom0_report.sh" "$XEN_OV/mw/report.sh"
	local t0
	t0=$(_xen_us)
	bash "$XEN_SRC/tools/xen/build.sh" "$XEN_BUILD" >"$XEN_TMP/build.log" 2>&1 ||
		{ cat "$XEN_TMP/build.log" >&2; xen_fail "tools/xen/build.sh failed"; }
	XEN_T_BUILD=$(_xen_secs $(($(_xen_us) - t0)))
}

# xen_ins_domcfg ID: $XEN_OV/mw/ins.cfg, the domain mw-balancer's xl backend would
# create for INS ID at slot 1 (balancer/xlcfg.c, through xl_domcfg); sets cfg, domname,
# ip ("addr/prefix") and bridge from it.
xen_ins_domcfg() {
	cat >"$XEN_TMP/mwcomms.conf" <<CONF
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
	cfg=$XEN_OV/mw/ins.cfg
	"$XEN_BUILD/tests/xen/xl_domcfg" "$XEN_TMP/mwcomms.conf" "$1" 1 >"$cfg" ||
		xen_fail "xl_domcfg could not build the domain configuration"
	domname=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$cfg")
	ip=$(sed -n 's/.*mw\.ip=\([^ "]*\).*/\1/p' "$cfg")
	bridge=$(sed -n 's/.*bridge=\([^,"]*\).*/\1/p' "$cfg")
	if [ -z "$domname" ] || [ -z "$ip" ] || [ -z "$bridge" ]; then
		xen_fail "no name, mw.ip or bridge in the domain configuration: $(cat "$cfg")"
	fi
}

# One boot; with $XEN_TMP/boot.hung left behind when dom0 never said ready in time.
# _xen_last_line: the console's last line before QEMU's own, for the message.
_xen_last_line() { grep -v 'qemu-system-x86_64: terminating' "$XEN_TMP/console.log" | tail -n 1; }
_xen_boot_once() {
	local start line now
	rm -f "$XEN_TMP/console.fifo" "$XEN_TMP/boot.hung"
	mkfifo "$XEN_TMP/console.fifo"
	start=$(_xen_us)
	# Its own process group (setsid), so cleanup stops QEMU with it on any exit.
	setsid bash "$XEN_SRC/tools/xen/run.sh" "$XEN_BUILD" "$XEN_TMP/overlay.cpio.gz" \
		"$XEN_LIMIT" </dev/null >"$XEN_TMP/console.fifo" 2>&1 &
	_xen_qpid=$!
	# The boot watchdog: no "mw-dom0: ready" in XEN_BOOT_LIMIT s stops this boot.
	(
		for ((i = 0; i < XEN_BOOT_LIMIT; i++)); do
			sleep 1
			grep -q 'mw-dom0: ready' "$XEN_TMP/console.log" 2>/dev/null && exit 0
		done
		touch "$XEN_TMP/boot.hung"
		kill -- -"$_xen_qpid" 2>/dev/null
	) &
	_xen_wd=$!
	while IFS= read -r line; do
		now=${EPOCHREALTIME/./}
		printf '%8s %s\n' "$(_xen_secs $((now - start)))" "${line%$'\r'}"
	done <"$XEN_TMP/console.fifo" >"$XEN_TMP/console.log"
	XEN_RC=0
	wait "$_xen_qpid" || XEN_RC=$?
	_xen_qpid=
	kill "$_xen_wd" 2>/dev/null || true
	wait "$_xen_wd" 2>/dev/null || true
	_xen_wd=
	# shellcheck disable=SC2034 # read by the scenario scripts
	XEN_T_TOTAL=$(_xen_secs $(($(_xen_us) - start)))
}

xen_boot() {
	echo "[$XEN_NAME] booting Xen + dom0 under QEMU (TCG), at most ${XEN_LIMIT}s; images built in ${XEN_T_BUILD}s"
	(cd "$XEN_OV" && find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0 | gzip) \
		>"$XEN_TMP/overlay.cpio.gz"
	_xen_boot_once
	if [ -e "$XEN_TMP/boot.hung" ]; then
		echo "[$XEN_NAME] dom0 did not reach user space within ${XEN_BOOT_LIMIT}s (last console line: $(_xen_last_line)); the emulated boot hung: booting once more" >&2
		cp "$XEN_TMP/console.log" "$XEN_BUILD/xen/hung-console.log"
		_xen_boot_once
		[ ! -e "$XEN_TMP/boot.hung" ] ||
			xen_fail "dom0 did not reach user space within ${XEN_BOOT_LIMIT}s, twice (last console line: $(_xen_last_line))"
	fi
	cp "$XEN_TMP/console.log" "$XEN_BUILD/xen/last-console.log" # for a look afterwards
}

xen_at() { awk -v p="$1" 'index($0, p) { printf "%.1f", $1; exit }' "$XEN_TMP/console.log"; }

xen_verdict() {
	local want=$1 log=$XEN_TMP/console.log endline n
	grep -o 'MW-XEN: \(PASS\|FAIL\) .*' "$log" | sed "s/^/[$XEN_NAME] /" || true
	endline=$(grep -o 'MW-XEN: END pass=[0-9]* fail=[0-9]*' "$log" || true)
	if [ -z "$endline" ] || grep -q 'MW-XEN: FAIL' "$log"; then
		echo "---- console (seconds since QEMU start; Xen lines left out) ----" >&2
		grep -v '^ *[0-9.]* (XEN)' "$log" | tail -n 150 >&2
		[ "$XEN_RC" != 124 ] ||
			xen_fail "QEMU killed after ${XEN_LIMIT}s (MW_XEN_TIMEOUT) before dom0 finished"
		[ -n "$endline" ] || xen_fail "dom0 never reported the end of its checks (QEMU exit status $XEN_RC)"
		xen_fail "$(grep -c 'MW-XEN: FAIL' "$log") check(s) failed in dom0: $endline"
	fi
	n=$(grep -c 'MW-XEN: PASS' "$log")
	[ "$n" -eq "$want" ] || xen_fail "$n checks passed, want $want"
}
