#!/usr/bin/env bash
# test_xen_boot.sh - Xen and dom0 under QEMU (TCG); in dom0, xl create of the INS
# guest image with the domain mw-balancer's xl backend would create (xl_domcfg, from
# balancer/xlcfg.c); the guest must boot, take its address from the mw.* kernel
# arguments (read back from XenStore and pinged across the dom0 bridge) and start
# mw-ins (XenStore and its start-up line on the guest console).
#
# The images come from tools/xen/build.sh (Debian packages, cached in
# $MW_BUILD_DIR/xen); dom0 runs tests/xen/dom0_check.sh, which reports
# "MW-XEN: PASS|FAIL ..." lines on the serial console; xen_lib.sh parses them. The
# console of the last run (every line with seconds since QEMU started) is kept in
# $MW_BUILD_DIR/xen/last-console.log; everything else is in a temp dir, removed on
# exit. QEMU is bounded by timeout and killed with the script (its own process group).
# A missing prerequisite is a failure, never a skip.
# shellcheck source=tests/xen/xen_lib.sh
source "$(dirname "$0")/xen_lib.sh"
xen_setup test_xen_boot

# The domain the xl backend would create: INS 1 at slot 1.
id=1
xen_ins_domcfg "$id"
printf 'MW_NAME=%s\nMW_ID=%s\nMW_IP=%s\nMW_BRIDGE=%s\n' "$domname" "$id" "$ip" "$bridge" \
	>"$XEN_OV/mw/expect"
install -m 0755 "$XEN_SRC/tests/xen/dom0_check.sh" "$XEN_OV/mw/run"

xen_boot
report() {
	echo "[$XEN_NAME] timings (s from QEMU start): dom0 user space $(xen_at 'mw-dom0: ready'), xl create returned $(xen_at 'MW-XEN: STEP xl-create-returned'), guest up $(xen_at 'MW-XEN: STEP guest-up'), mw-ins seen $(xen_at 'MW-XEN: STEP mw-ins-checked'), whole run $XEN_T_TOTAL"
}
trap 'report; _xen_cleanup' EXIT
xen_verdict 6
echo "PASS [$XEN_NAME]: $(grep -o 'MW-XEN: END .*' "$XEN_TMP/console.log")"
