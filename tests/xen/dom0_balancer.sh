#!/bin/sh
# shellcheck disable=SC2154 # pass and fail are set by /mw/report.sh (dom0_report.sh)
# dom0_balancer.sh - /mw/run of tests/xen/test_xen_balancer.sh, run by busybox sh in the
# emulated dom0: mw-pvm (pvm.xen_channel) and mw-balancer with the xl backend in dom0;
# the balancer creates the INS domU through libxl, admits it to /mw/ins/DOMID, and
# declares it ready once its INS joined mw-pvm and the app's listener answers there;
# requests to the front end are served by the app in dom0 through the domU; after
# `xl destroy` of the domain the balancer sees it gone, creates a new one, and serves
# again. Reports as dom0_check.sh does (MW-XEN: PASS|FAIL|STEP|END, MW-XEN-LOG).
. /mw/expect
# shellcheck disable=SC1091 # installed by xen_lib.sh
. /mw/report.sh # pass, fail, ok, ko, step
dump() {
	echo "MW-XEN-LOG: --- mw-balancer"
	tail -n 30 /tmp/bal.log 2>&1 | sed 's/^/MW-XEN-LOG: /'
	echo "MW-XEN-LOG: --- mw-pvm"
	tail -n 20 /tmp/pvm.log 2>&1 | sed 's/^/MW-XEN-LOG: /'
	echo "MW-XEN-LOG: --- app"
	tail -n 5 /tmp/app.log 2>&1 | sed 's/^/MW-XEN-LOG: /'
	echo "MW-XEN-LOG: --- xl list"
	xl list 2>&1 | sed 's/^/MW-XEN-LOG: /'
	for f in /var/log/xen/console/guest-*.log; do
		echo "MW-XEN-LOG: --- $f (last 15 lines)"
		tail -n 15 "$f" 2>&1 | sed 's/^/MW-XEN-LOG: /'
	done
}
end() {
	[ -n "$bal" ] && kill "$bal" 2>/dev/null
	n=0
	while [ -n "$bal" ] && kill -0 "$bal" 2>/dev/null && [ $n -lt 60 ]; do
		sleep 0.5
		n=$((n + 1))
	done
	[ -n "$app" ] && kill "$app" 2>/dev/null
	[ -n "$pvm" ] && kill "$pvm" 2>/dev/null
	echo "MW-XEN: END pass=$pass fail=$fail"
	exit 0
}
# wait_log FILE STRING SECONDS: true once FILE contains STRING (polls 0.5 s).
wait_log() {
	n=0
	while [ $n -lt $(($3 * 2)) ]; do
		grep -qF "$2" "$1" 2>/dev/null && return 0
		sleep 0.5
		n=$((n + 1))
	done
	return 1
}
# served N TAG: N requests to the front end, each answered by the app; prints the count.
served() {
	good=0
	i=0
	while [ $i -lt "$1" ]; do
		i=$((i + 1))
		got=$(echo "$2$i" | timeout 10 nc 10.77.0.1 8081 2>/dev/null)
		case $got in "mwcomms-xen-app "*": $2$i") good=$((good + 1)) ;; esac
	done
	echo "$good"
}

cat >/run/mwcomms.conf <<CONF
common: { runtime_dir = "/run/mwcomms"; keystore = "xenstore"; };
pvm: { control_socket = "/run/mwcomms/pvm.sock"; ins_socket = "/run/mwcomms/pvm-ins.sock";
	xen_channel = true; ring_size = 1048576; heartbeat_timeout_ms = 10000; };
ins: { user = ""; };
balancer: {
	backend = "xl"; subnet = "10.77.0.0/24"; bridge = "mwbr0"; tag = "xb";
	xl_kernel = "/var/lib/mw/xen/vmlinux"; xl_ramdisk = "/var/lib/mw/xen/ins.cpio.gz";
	xl_memory_mb = 128; xl_vcpus = 1; min_ins = 1; max_ins = 2;
	listen = [ "10.77.0.1:8081" ]; control_socket = "/run/mwcomms/balancer.sock";
	health_interval_ms = 2000; health_timeout_ms = 5000; health_failures = 5;
};
CONF
mw-pvm -c /run/mwcomms.conf --log-level info >/tmp/pvm.log 2>&1 &
pvm=$!
wait_log /tmp/pvm.log "Xen channel: accepting INS domUs" 30 || { ko "mw-pvm: no Xen channel"; dump; end; }
mw-balancer -c /run/mwcomms.conf --log-level info >/tmp/bal.log 2>&1 &
bal=$!
step dom0-ready

if wait_log /tmp/pvm.log "joined over the xen channel" 300; then
	ok "join: $(grep -m 1 -F 'joined over the xen channel' /tmp/pvm.log)"
else
	ko "join: no INS joined mw-pvm over the Xen channel"
	dump
	end
fi
step joined
# Not ready before the app listens: the balancer waits for the replicated listener.
sleep 2
if grep -qF " ready (" /tmp/bal.log; then
	ko "ready-too-early: $(grep -m 1 -F ' ready (' /tmp/bal.log)"
else
	ok "not-ready-without-listener"
fi
LD_PRELOAD=/usr/local/lib/libmwshim.so MW_PVM_SOCKET=/run/mwcomms/pvm.sock \
	/mw/xen_app 8081 >/tmp/app.log 2>&1 &
app=$!
wait_log /tmp/app.log "listening on 8081" 30 || { ko "app: not listening under the shim"; dump; end; }
if wait_log /tmp/bal.log "INS 1 ready" 120; then
	ok "ready: $(grep -m 1 -F 'INS 1 ready' /tmp/bal.log)"
else
	ko "ready: INS 1 never ready"
	dump
	end
fi
step ready
good=$(served 10 a)
[ "$good" -eq 10 ] && ok "requests: 10 of 10 through the balancer and domU" ||
	{ ko "requests: $good of 10 served"; dump; }
step requests-done

dom=$(xl domid mw-xb-ins1 2>/dev/null)
xl destroy mw-xb-ins1 >/dev/null 2>&1
if wait_log /tmp/bal.log "INS 1 (mw-xb-ins1) died" 30; then
	ok "death-detected: $(grep -m 1 -F 'INS 1 (mw-xb-ins1) died' /tmp/bal.log)"
else
	ko "death-detected: domain $dom destroyed, the balancer did not notice"
	dump
	end
fi
step death-detected
if wait_log /tmp/bal.log "INS 2 ready" 300; then
	ok "replaced: $(grep -m 1 -F 'INS 2 ready' /tmp/bal.log)"
else
	ko "replaced: INS 2 never ready"
	dump
	end
fi
step replaced
good=$(served 10 b)
[ "$good" -eq 10 ] && ok "requests-after-replacement: 10 of 10" ||
	{ ko "requests-after-replacement: $good of 10 served"; dump; }
step finished
end
