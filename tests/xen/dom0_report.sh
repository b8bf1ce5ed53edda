#!/bin/sh
# dom0_report.sh - sourced by the /mw/run scripts in the emulated dom0 (installed as
# /mw/report.sh by xen_lib.sh): the lines the host parses from the console,
#   MW-XEN: PASS|FAIL CHECK detail    MW-XEN: STEP NAME    MW-XEN: END pass=N fail=M
# (end and MW-XEN-LOG diagnostics are each script's own).
pass=0
fail=0
ok() {
	pass=$((pass + 1))
	echo "MW-XEN: PASS $*"
}
ko() {
	fail=$((fail + 1))
	echo "MW-XEN: FAIL $*"
}
step() { echo "MW-XEN: STEP $* (dom0 uptime $(cut -d' ' -f1 /proc/uptime)s)"; }
