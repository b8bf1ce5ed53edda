#!/bin/sh
# shellcheck disable=SC2154 # pass and fail are set by /mw/report.sh (dom0_report.sh)
# dom0_check.sh - /mw/run of tests/xen/test_xen_boot.sh, run by busybox sh in the
# emulated dom0: xl create of the INS guest with the configuration xlcfg.c writes, then
# checks that it booted, configured eth0 from its kernel arguments and started mw-ins.
#
# Reads /mw/expect (MW_NAME, MW_ID, MW_IP = "addr/prefix", MW_BRIDGE) and /mw/ins.cfg. Reports on
# the console, one line each, which the host parses:
#   MW-XEN: PASS|FAIL CHECK detail    MW-XEN: STEP NAME    MW-XEN: END pass=N fail=M
#   MW-XEN-LOG: ...                   (diagnostics after a failure)
# shellcheck disable=SC1091 # written by test_xen_boot.sh into the overlay
. /mw/expect
# shellcheck disable=SC1091 # installed by xen_lib.sh
. /mw/report.sh # pass, fail, ok, ko, step
dump() { # the guest console and what dom0 knows, for a failure message
	echo "MW-XEN-LOG: --- xl list"
	xl list 2>&1 | sed 's/^/MW-XEN-LOG: /'
	echo "MW-XEN-LOG: --- guest console (last 40 lines)"
	tail -n 40 "/var/log/xen/console/guest-$MW_NAME.log" 2>&1 | sed 's/^/MW-XEN-LOG: /'
	echo "MW-XEN-LOG: --- xl dmesg (last 10 lines)"
	xl dmesg 2>&1 | tail -n 10 | sed 's/^/MW-XEN-LOG: /'
}
end() {
	xl destroy "$MW_NAME" >/dev/null 2>&1
	echo "MW-XEN: END pass=$pass fail=$fail"
	exit 0
}
# xs_wait KEY SECONDS: print the value of XenStore KEY once it exists (polls 0.5 s);
# gives up early when the guest wrote data/mw/error or its domain is gone.
xs_wait() {
	n=0
	while [ $n -lt $(($2 * 2)) ]; do
		xenstore-read "$1" 2>/dev/null && return 0
		xenstore-exists "$base/error" 2>/dev/null && return 1
		xl domid "$MW_NAME" >/dev/null 2>&1 || return 1
		sleep 0.5
		n=$((n + 1))
	done
	return 1
}

if xl info >/tmp/xl-info 2>&1; then
	ok "xl-info xen $(awk -F': ' '/^xen_major/ { M = $2 } /^xen_minor/ { m = $2 } END { print M "." m }' /tmp/xl-info)"
else
	ko "xl-info: $(tail -n 2 /tmp/xl-info)"
	end
fi
step dom0-tools-up

if timeout 400 xl create /mw/ins.cfg >/tmp/xl-create 2>&1; then
	ok "xl-create $MW_NAME"
else
	ko "xl-create: $(tail -n 3 /tmp/xl-create | tr '\n' ' ')"
	sed 's/^/MW-XEN-LOG: /' /tmp/xl-create
	dump
	end
fi
step xl-create-returned
domid=$(xl domid "$MW_NAME" 2>/dev/null)
base=/local/domain/$domid/data/mw

# The guest's /init writes data/mw/ip once eth0 has the address from mw.ip (or
# data/mw/error if it gave up).
got=$(xs_wait "$base/ip" 400)
if [ "$got" = "$MW_IP" ]; then
	ok "guest-ip domain $domid eth0 $got from mw.ip"
else
	ko "guest-ip: XenStore $base/ip is '$got', want '$MW_IP'; error: '$(xenstore-read "$base/error" 2>/dev/null)'"
	dump
	end
fi
step guest-up

addr=${MW_IP%/*}
n=0
while ! ping -c 1 -W 1 "$addr" >/dev/null 2>&1 && [ $n -lt 30 ]; do
	n=$((n + 1))
done
ports=$(ls "/sys/class/net/$MW_BRIDGE/brif" 2>/dev/null | tr '\n' ' ')
case " $ports " in
*" vif$domid.0 "*) ;;
*) ko "guest-vif: vif$domid.0 is not a port of $MW_BRIDGE (ports: $ports)" ;;
esac
if [ $n -lt 30 ]; then
	ok "guest-ping $addr across $MW_BRIDGE (ports: $ports)"
else
	ko "guest-ping: $addr does not answer across $MW_BRIDGE"
	ip -o addr 2>&1 | sed 's/^/MW-XEN-LOG: /'
	dump
fi

# mw-ins: running a second after start (XenStore), and its own start-up line on the
# guest console.
st=$(xs_wait "$base/ins" 60)
log=/var/log/xen/console/guest-$MW_NAME.log
n=0
while ! grep -q "INS $MW_ID starting" "$log" 2>/dev/null && [ $n -lt 120 ]; do
	sleep 0.5
	n=$((n + 1))
done
case $st in
running*)
	if grep -q "INS $MW_ID starting" "$log"; then
		ok "mw-ins-started ($st): $(grep -m 1 "INS $MW_ID starting" "$log" | tr -d '\r')"
	else
		ko "mw-ins-started: XenStore says '$st' but no 'INS $MW_ID starting' on the guest console"
		dump
	fi
	;;
*)
	ko "mw-ins-started: XenStore $base/ins is '$st'"
	dump
	;;
esac
step mw-ins-checked

if xl destroy "$MW_NAME" >/tmp/xl-destroy 2>&1 && ! xl domid "$MW_NAME" >/dev/null 2>&1; then
	ok "xl-destroy"
else
	ko "xl-destroy: $(tail -n 2 /tmp/xl-destroy | tr '\n' ' ')"
fi
end
