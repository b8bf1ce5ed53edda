#!/bin/sh
# dom0_report.sh - sourced by the /mw/run scripts in the emulated dom0 (installed as
# /mw/report.sh by xen_lib.sh): the lines the host parses from the console,
#   MW-XEN: PASS|FAIL CHECK detail    MW-XEN: STEP NAME    MW-XEN: END pass=N fail=M
# (end and MW-XEN-LOG diagnostics are each script's own), and wait_until.
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
# wait_until SECONDS CMD: true once the shell command CMD succeeds within SECONDS of
# dom0's clock (polls every second; under emulation a poll itself takes a while).
wait_until() {
	until_s=$(($(cut -d. -f1 /proc/uptime) + $1))
	while [ "$(cut -d. -f1 /proc/uptime)" -lt "$until_s" ]; do
		eval "$2" >/dev/null 2>&1 && return 0
		sleep 1
	done
	eval "$2" >/dev/null 2>&1
}
