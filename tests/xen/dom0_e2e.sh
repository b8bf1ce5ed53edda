#!/bin/sh
# shellcheck disable=SC2154,SC2016 # pass and fail: /mw/report.sh; the quoted conditions are eval'd by wait_until
# dom0_e2e.sh - /mw/run of tests/xen/test_xen_e2e.sh (issue 15 item 4), run by busybox sh
# in the emulated dom0: mw-pvm (pvm.xen_channel), mw-balancer with the xl backend and the
# app (xen_app) under the shim.  The balancer spawns two INS domUs through libxl, admits
# them to /mw/ins/DOMID, and declares them ready only once their INS joined mw-pvm and the
# app's listener answers there; a client in dom0 is served through both; `xl destroy` of
# one is detected and replaced while the client keeps going (no failed request after the
# detection); one is retired and its domain and XenStore entries go.  Stale XenStore
# entries: one planted before the balancer starts is swept, the destroyed domain's goes.
# Reports on the serial console (dom0_report.sh): MW-XEN: PASS|FAIL|STEP|END, figures as
# "MW-XEN: FIGURE name value", diagnostics as MW-XEN-LOG.  Stops at the first failure
# that later checks depend on.
# shellcheck disable=SC1091 # installed by xen_lib.sh
. /mw/report.sh # pass, fail, ok, ko, step, wait_until
CONF=/run/mwcomms.conf
FRONT=10.77.0.1
PORT=8081
bal=
app=
pvm=
client=
ctl() { mwctl -s /run/mwcomms/balancer.sock "$@"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
dump() {
	for f in /tmp/bal.log /tmp/pvm.log /tmp/app.log /tmp/client.log; do
		echo "MW-XEN-LOG: --- $f (last 40 lines, repeated ones left out)"
		grep -v 'no ready INS could\|similar messages\|fin_timeout_ms: reset' "$f" 2>&1 |
			uniq -c | tail -n 40 | sed 's/^/MW-XEN-LOG: /'
	done
	echo "MW-XEN-LOG: --- xl list; mwctl ins list"
	{ xl list; ctl ins list; } 2>&1 | sed 's/^/MW-XEN-LOG: /'
	for f in /var/log/xen/console/guest-*.log; do
		echo "MW-XEN-LOG: --- $f (last 12 lines)"
		tail -n 12 "$f" 2>&1 | sed 's/^/MW-XEN-LOG: /'
	done
}
# The verdict first; then no orderly stop (the balancer would shut every domain down,
# tens of seconds under emulation): dom0 powers the machine off when this script ends.
end() {
	echo "MW-XEN: END pass=$pass fail=$fail"
	touch /tmp/client.stop
	for p in $client $bal $app $pvm; do
		kill -9 "$p" 2>/dev/null
	done
	exit 0
}
stop() { # a failed check later ones need: say why, dump, end
	ko "$@"
	dump
	end
}
# ask TAG: one request to the front end; true if the app's answer to it came back.
ask() {
	case $(echo "$1" | timeout 10 nc "$FRONT" "$PORT" 2>/dev/null) in
	"mwcomms-xen-app "*": $1") return 0 ;;
	esac
	return 1
}
# served N TAG: N requests, each answered by the app; prints the count.
served() {
	good=0
	i=0
	while [ $i -lt "$1" ]; do
		i=$((i + 1))
		ask "$2$i" && good=$((good + 1))
	done
	echo "$good"
}
# ins_col ID COL: a column of `mwctl ins list` (2 state, 6 total); n_state STATE: how many.
ins_col() { ctl ins list | awk -v id="$1" -v c="$2" 'NR > 1 && $1 == id { print $c }'; }
n_state() { ctl ins list | awk -v s="$1" 'NR > 1 && $2 == s' | wc -l; }
ids_state() { ctl ins list | awk -v s="$1" 'NR > 1 && $2 == s { printf "%s ", $1 }'; }
# joined: how many INS domUs joined mw-pvm so far.
joined() { grep -cF 'joined over the xen channel' /tmp/pvm.log; }

cat >"$CONF" <<CONF
common: { runtime_dir = "/run/mwcomms"; keystore = "xenstore"; };
pvm: { control_socket = "/run/mwcomms/pvm.sock"; ins_socket = "/run/mwcomms/pvm-ins.sock";
	xen_channel = true; ring_size = 262144; heartbeat_timeout_ms = 15000; };
ins: { user = ""; };
balancer: {
	backend = "xl"; subnet = "10.77.0.0/24"; bridge = "mwbr0"; tag = "xe";
	xl_kernel = "/var/lib/mw/xen/vmlinux"; xl_ramdisk = "/var/lib/mw/xen/ins.cpio.gz";
	xl_memory_mb = 128; xl_vcpus = 1; min_ins = 1; max_ins = 2;
	listen = [ "$FRONT:$PORT" ]; control_socket = "/run/mwcomms/balancer.sock";
	health_interval_ms = 1000; health_timeout_ms = 5000; health_failures = 3;
	start_timeout_ms = 300000; # emulated and shared: a domain can take minutes
};
CONF
mw-pvm -c "$CONF" --log-level info >/tmp/pvm.log 2>&1 &
pvm=$!
wait_until 30 "grep -qF 'Xen channel: accepting INS domUs' /tmp/pvm.log" ||
	stop "mw-pvm: no Xen channel"

# A leftover of a domain that no longer exists (domid 4000): the balancer sweeps it.
xenstore-write /mw/ins/4000/ins_hello stale
mw-balancer -c "$CONF" --log-level info >/tmp/bal.log 2>&1 &
bal=$!
wait_until 30 "ctl scale 2" || stop "balancer: no control socket (or scale 2 refused)"
step spawned
if xenstore-exists /mw/ins/4000; then
	ko "stale-swept: /mw/ins/4000 (no such domain) still there"
else
	ok "stale-swept: $(grep -m 1 -o 'removed /mw/ins of .*' /tmp/bal.log)"
fi

wait_until 240 '[ "$(joined)" -ge 2 ] || ! kill -0 $bal' || true
kill -0 "$bal" 2>/dev/null || stop "joined: mw-balancer exited"
[ "$(joined)" -ge 2 ] || stop "joined: $(joined) INS domU(s) joined mw-pvm, want 2"
ok "joined: $(grep -F 'joined over the xen channel' /tmp/pvm.log | sed 's/.*\(INS [0-9]*\).*/\1/' | tr '\n' ' ')"
step joined
# Not ready while the app does not listen: the listener is replicated only then.
sleep 1
if [ "$(n_state ready)" -eq 0 ]; then
	ok "not-ready-without-listener: $(n_state starting) starting"
else
	ko "ready-too-early: $(ids_state ready)"
fi
LD_PRELOAD=/usr/local/lib/libmwshim.so MW_PVM_SOCKET=/run/mwcomms/pvm.sock \
	/mw/xen_app "$PORT" >/tmp/app.log 2>&1 &
app=$!
wait_until 180 '[ "$(n_state ready)" -ge 2 ]' || stop "ready: $(n_state ready) INS ready, want 2"
ok "ready: INS $(ids_state ready)"
step ready
grep -o 'INS [0-9]* ready ([0-9.]* s after spawn)' /tmp/bal.log |
	awk '{ print "MW-XEN: FIGURE spawn_to_ready_s " substr($4, 2) }'

# Served through both domains, each answer the app's own to that request.
t0=$(uptime_s)
good=$(served 10 a)
t1=$(uptime_s)
ids=$(ids_state ready)
both=1
for id in $ids; do
	[ "$(ins_col "$id" 6)" -gt 0 ] || both=0
done
if [ "$good" -eq 10 ] && [ "$both" = 1 ]; then
	ok "requests: 10 of 10 answered by the app, through INS $(for id in $ids; do printf '%s(%s) ' "$id" "$(ins_col "$id" 6)"; done)"
else
	ko "requests: $good of 10 answered; connections per INS: $(for id in $ids; do printf '%s(%s) ' "$id" "$(ins_col "$id" 6)"; done)"
fi
echo "MW-XEN: FIGURE xl_requests_per_s $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", 10 / (b - a) }')"

# A client that keeps asking: each result tagged with whether the death was detected
# when the request began.
rm -f /tmp/client.stop /tmp/detected
(
	n=0
	while [ ! -e /tmp/client.stop ] && [ $n -lt 3000 ]; do
		n=$((n + 1))
		when=before
		[ -e /tmp/detected ] && when=after
		if ask "c$n"; then echo "ok $when"; else echo "fail $when"; fi
		sleep 1 # leaves dom0's emulated CPUs to the domains being created (hotplug scripts)
	done
) >/tmp/client.log 2>&1 &
client=$!
sleep 1
victim_id=${ids%% *}
victim=mw-xe-ins$victim_id
vdom=$(xl domid "$victim" 2>/dev/null)
xl destroy "$victim" || stop "destroy: xl destroy $victim failed"
step destroyed
# Detected: the worker saw the domain gone ("died"), or, first on a loaded machine,
# its health checks took it down ("down:"); either way it is out and replaced.
gone_re="INS $victim_id \\($victim\\) (died|down:)"
wait_until 30 "grep -qE '$gone_re' /tmp/bal.log" ||
	stop "detected: domain $vdom destroyed, the balancer did not notice in 30 s"
touch /tmp/detected
ok "detected: $(grep -m 1 -E "$gone_re" /tmp/bal.log)"
step detected
if wait_until 10 "! xenstore-exists /mw/ins/$vdom"; then
	ok "destroyed-entry-removed: /mw/ins/$vdom"
else
	ko "destroyed-entry-removed: /mw/ins/$vdom of the destroyed domain still there"
fi
wait_until 240 '[ "$(n_state ready)" -ge 2 ]' ||
	stop "replaced: $(n_state ready) INS ready 240 s after the death, want 2"
new_id=$(ctl ins list | awk -v a="$ids" 'NR > 1 && $2 == "ready" && index(" " a, " " $1 " ") == 0 { print $1; exit }')
ok "replaced: INS $new_id ($(grep -m 1 -o "INS $new_id ready ([0-9.]* s after spawn)" /tmp/bal.log))"
step replaced
# The client goes on until the replacement carried some of its requests.
wait_until 60 '[ "$(ins_col "$new_id" 6)" -ge 3 ]' || true
touch /tmp/client.stop
wait "$client"
client=
bad=$(grep -c 'fail after' /tmp/client.log)
good=$(grep -c 'ok after' /tmp/client.log)
before=$(grep -c 'fail before' /tmp/client.log)
if [ "$bad" -eq 0 ] && [ "$good" -ge 5 ] && [ "$(ins_col "$new_id" 6)" -ge 3 ]; then
	ok "no-failure-after-detection: $good answered, 0 failed after it ($before failed between destroy and detection); replacement carried $(ins_col "$new_id" 6)"
else
	ko "failures-after-detection: $bad failed, $good answered after it; replacement carried $(ins_col "$new_id" 6)"
	dump
fi
step client-done

# Retire the replacement: its domain and its XenStore entries go, the other serves on.
rdom=$(xl domid "mw-xe-ins$new_id" 2>/dev/null)
ctl ins retire "$new_id" --drain >/tmp/retire.out 2>&1 ||
	stop "retire: mwctl ins retire $new_id --drain: $(cat /tmp/retire.out)"
wait_until 60 "grep -qF 'INS $new_id (mw-xe-ins$new_id) stopped' /tmp/bal.log" ||
	stop "retire: INS $new_id not stopped in 60 s"
if wait_until 30 "! xl domid mw-xe-ins$new_id && ! xenstore-exists /mw/ins/$rdom && ! xenstore-exists /mw/pvms/0/ins/$rdom"; then
	ok "retired: INS $new_id, domain $rdom gone with /mw/ins/$rdom and /mw/pvms/0/ins/$rdom"
else
	ko "retired: domain $rdom: $(xl domid "mw-xe-ins$new_id" 2>&1), /mw/ins/$rdom $(xenstore-exists /mw/ins/"$rdom" && echo left), /mw/pvms/0/ins/$rdom $(xenstore-exists /mw/pvms/0/ins/"$rdom" && echo left)"
fi
step retired
good=$(served 10 r)
if [ "$good" -eq 10 ] && [ "$(n_state ready)" -eq 1 ]; then
	ok "after-retire: 10 of 10 through the one INS left ($(ids_state ready))"
else
	ko "after-retire: $good of 10 answered, ready: $(ids_state ready)"
fi
echo "MW-XEN: FIGURE bal_status $(ctl status | awk '$1 ~ /^(spawned|replaced|fail_start_timeout|fail_no_ins)$/ { printf "%s=%s ", $1, $2 }')"
end
