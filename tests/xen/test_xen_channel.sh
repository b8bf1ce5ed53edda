#!/usr/bin/env bash
# test_xen_channel.sh - mw-ins in a domU joins mw-pvm in dom0 over the Xen channel
# (XenStore /mw/ins, granted pages, an event channel), and requests from dom0 to the
# guest's address reach the app under the shim in dom0 through it.  Xen and dom0 run
# under QEMU (TCG) through xen_lib.sh; dom0 runs tests/xen/dom0_channel.sh.
# By hand (ctest -L xen); test_xen_e2e.sh has mw-balancer's xl backend do what
# dom0_channel.sh does by hand.
# shellcheck source=tests/xen/xen_lib.sh
source "$(dirname "$0")/xen_lib.sh"
xen_setup test_xen_channel
[ -x "$XEN_BUILD/tests/xen/xen_app" ] || xen_fail "$XEN_BUILD/tests/xen/xen_app missing: build mwcomms first"

# The domain the xl backend would create: INS 1 at slot 1.
xen_ins_domcfg 1
printf 'MW_NAME=%s\nMW_IP=%s\n' "$domname" "$ip" >"$XEN_OV/mw/expect"
install -m 0755 "$XEN_SRC/tests/xen/dom0_channel.sh" "$XEN_OV/mw/run"
install -m 0755 "$XEN_BUILD/tests/xen/xen_app" "$XEN_OV/mw/xen_app"

xen_boot
report() {
	echo "[$XEN_NAME] timings (s from QEMU start): dom0 user space $(xen_at 'mw-dom0: ready'), $(awk '/MW-XEN: STEP/ { printf "%s %.1f, ", $NF, $1 }' "$XEN_TMP/console.log")whole run $XEN_T_TOTAL"
}
trap 'report; _xen_cleanup' EXIT
xen_verdict 6
echo "PASS [$XEN_NAME]: $(grep -o 'MW-XEN: END .*' "$XEN_TMP/console.log")"
