#!/usr/bin/env bash
# test_xen_e2e.sh - issue 15 item 4 in one QEMU boot (ctest labels xen and xen_ci): Xen
# and dom0 under QEMU (TCG); in dom0 mw-pvm, the app under the shim and mw-balancer with
# the xl backend, which spawns two INS domUs; a client in dom0 is served through both;
# `xl destroy` of one is detected and the domain replaced with no failed request after
# the detection; one is retired and its domain and XenStore /mw entries go; stale /mw/ins
# entries of dead domains are removed (tests/xen/dom0_e2e.sh has the checks).  The
# images are built first from Debian packages (tools/xen/build.sh, cached in
# $MW_BUILD_DIR/xen).  Prints the figures docs/xen.md quotes (spawn to ready, requests/s).
# shellcheck source=tests/xen/xen_lib.sh
source "$(dirname "$0")/xen_lib.sh"
xen_setup test_xen_e2e
[ -x "$XEN_BUILD/tests/xen/xen_app" ] || xen_fail "$XEN_BUILD/tests/xen/xen_app missing: build mwcomms first"
install -m 0755 "$XEN_SRC/tests/xen/dom0_e2e.sh" "$XEN_OV/mw/run"
install -m 0755 "$XEN_BUILD/tests/xen/xen_app" "$XEN_OV/mw/xen_app"

xen_boot
report() {
	echo "[$XEN_NAME] timings (s from QEMU start): images built in ${XEN_T_BUILD}s; dom0 user space $(xen_at 'mw-dom0: ready'), $(awk '/MW-XEN: STEP/ { printf "%s %.1f, ", $4, $1 }' "$XEN_TMP/console.log")whole run $XEN_T_TOTAL"
	grep -o 'MW-XEN: FIGURE .*' "$XEN_TMP/console.log" | sed "s/^MW-XEN: FIGURE /[$XEN_NAME] figure: /" || true
}
trap 'report; _xen_cleanup' EXIT
xen_verdict 11
echo "PASS [$XEN_NAME]: $(grep -o 'MW-XEN: END .*' "$XEN_TMP/console.log")"
