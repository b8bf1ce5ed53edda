#!/bin/sh
# shellcheck disable=SC2154 # pass and fail are set by /mw/report.sh (dom0_report.sh)
# dom0_channel.sh - /mw/run of tests/xen/test_xen_channel.sh, run by busybox sh in the
# emulated dom0: mw-pvm with pvm.xen_channel in dom0, the INS guest admitted to
# /mw/ins/DOMID (as mw-balancer's xl backend does), then: mw-ins in the domU joins
# mw-pvm over the Xen channel, mw-pvm publishes it, an app under the shim in dom0
# listens (on the INS), and requests from dom0 to the guest's address are served by
# the app through the domU.
#
# Reads /mw/expect (MW_NAME, MW_IP = "addr/prefix") and /mw/ins.cfg. Reports on the
# console as dom0_check.sh does: "MW-XEN: PASS|FAIL ...", "MW-XEN: STEP ...",
# "MW-XEN: END pass=N fail=M", "MW-XEN-LOG: ..." after a failure.
. /mw/expect
# shellcheck disable=SC1091 # installed by xen_lib.sh
. /mw/report.sh # pass, fail, ok, ko, step
dump() {
	echo "MW-XEN-LOG: --- mw-pvm"
	tail -n 30 /tmp/pvm.log 2>&1 | sed 's/^/MW-XEN-LOG: /'
	echo "MW-XEN-LOG: --- app"
	tail -n 10 /tmp/app.log 2>&1 | sed 's/^/MW-XEN-LOG: /'
	echo "MW-XEN-LOG: --- xenstore /mw"
	xenstore-ls -p /mw 2>&1 | head -n 30 | sed 's/^/MW-XEN-LOG: /'
	echo "MW-XEN-LOG: --- guest console (last 30 lines)"
	tail -n 30 "/var/log/xen/console/guest-$MW_NAME.log" 2>&1 | sed 's/^/MW-XEN-LOG: /'
}
end() {
	xl destroy "$MW_NAME" >/dev/null 2>&1
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

# The channel's rings are granted pages: 1 MiB rings are 513 pages, within gntalloc's
# default limit of 1024 (docs/xen.md).
cat >/run/mwcomms.conf <<CONF
common: { runtime_dir = "/run/mwcomms"; keystore = "xenstore"; };
pvm: { control_socket = "/run/mwcomms/pvm.sock"; ins_socket = "/run/mwcomms/pvm-ins.sock";
	xen_channel = true; ring_size = 1048576; heartbeat_timeout_ms = 10000; };
CONF
mw-pvm -c /run/mwcomms.conf --log-level info >/tmp/pvm.log 2>&1 &
pvm=$!
if wait_log /tmp/pvm.log "Xen channel: accepting INS domUs" 20; then
	ok "mw-pvm-xen: $(grep -m 1 -F 'Xen channel: accepting' /tmp/pvm.log)"
else
	ko "mw-pvm-xen: mw-pvm did not start its Xen channel"
	dump
	end
fi
step dom0-ready

# Created paused, admitted to /mw/ins/DOMID (owned by the domain), then run: what
# mw-balancer's xl backend does (balancer/xl_libxl.c).
if timeout 150 xl create -p /mw/ins.cfg >/tmp/xl-create 2>&1; then
	domid=$(xl domid "$MW_NAME")
	xenstore-write "/mw/ins/$domid" "" && xenstore-chmod "/mw/ins/$domid" "n$domid" &&
		xl unpause "$MW_NAME" && ok "xl-create $MW_NAME domain $domid admitted to /mw/ins/$domid" ||
		{ ko "admit domain $domid"; dump; end; }
else
	ko "xl-create: $(tail -n 3 /tmp/xl-create | tr '\n' ' ')"
	dump
	end
fi
step xl-create-returned

# The guest boots for a while under TCG: its console, as it comes, tells where it is.
seen=0
n=0
while [ $n -lt 600 ] && ! grep -qF "INS $domid joined over the xen channel" /tmp/pvm.log &&
	! grep -qF "mw-ins exited" "/var/log/xen/console/guest-$MW_NAME.log" 2>/dev/null; do
	log=/var/log/xen/console/guest-$MW_NAME.log
	lines=$(wc -l <"$log" 2>/dev/null || echo 0)
	if [ $((n % 20)) -eq 0 ] && [ "$lines" -gt "$seen" ]; then
		tail -n +$((seen + 1)) "$log" | grep -v '^\[' | tail -n 5 | sed 's/^/MW-XEN-LOG: guest: /'
		seen=$lines
	fi
	sleep 0.5
	n=$((n + 1))
done
if grep -qF "INS $domid joined over the xen channel" /tmp/pvm.log; then
	ok "join: $(grep -m 1 -F "INS $domid joined" /tmp/pvm.log)"
else
	ko "join: no 'INS $domid joined over the xen channel' in mw-pvm's log"
	dump
	end
fi
step joined
view=$(xenstore-read "/mw/pvms/0/ins/$domid" 2>/dev/null)
case $view in
"up "*) ok "pvm-view /mw/pvms/0/ins/$domid = $view" ;;
*) ko "pvm-view: /mw/pvms/0/ins/$domid is '$view'" ;;
esac

# The app under the shim once an INS is there (its sockets live on the INS).
LD_PRELOAD=/usr/local/lib/libmwshim.so MW_PVM_SOCKET=/run/mwcomms/pvm.sock \
	/mw/xen_app 8080 >/tmp/app.log 2>&1 &
app=$!
wait_log /tmp/app.log "listening on 8080" 30 || { ko "app: not listening under the shim"; dump; end; }

# Requests from dom0 to the guest's address: mw-ins there accepts on the listener
# mw-pvm replicated, the bytes cross the granted rings to the app in dom0.
addr=${MW_IP%/*}
n=0
while [ $n -lt 60 ]; do
	got=$(echo first | timeout 10 nc "$addr" 8080 2>/dev/null)
	case $got in mwcomms-xen-app*) break ;; esac
	sleep 0.5
	n=$((n + 1))
done
case $got in
"mwcomms-xen-app 1: first") ok "first-request through domain $domid: '$got'" ;;
*) ko "first-request: got '$got' from $addr:8080"; dump; end ;;
esac
step first-request
good=0
i=0
while [ $i -lt 20 ]; do
	i=$((i + 1))
	got=$(echo "req$i" | timeout 10 nc "$addr" 8080 2>/dev/null)
	case $got in "mwcomms-xen-app "*": req$i") good=$((good + 1)) ;; esac
done
if [ $good -eq 20 ]; then
	ok "requests: 20 of 20 served through the domU"
else
	ko "requests: $good of 20 served through the domU"
	dump
fi
step requests-done
end
