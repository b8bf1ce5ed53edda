#!/bin/sh
# shellcheck disable=SC2154 # pass and fail are set by /mw/report.sh (dom0_report.sh)
# dom0_e2e.sh - /mw/run of tests/xen/e2e_balancer.sh (issue 15 item 4, run by hand):
# in the emulated dom0, mw-pvm, nginx under the shim and mw-balancer with the xl
# backend spawning two INS domUs; requests from dom0 through the balancer's front end;
# xl destroy of one domU and its replacement. Stops at the first failed step (each
# later one needs it). Same console protocol as dom0_check.sh:
#   MW-XEN: PASS|FAIL CHECK detail    MW-XEN: STEP NAME    MW-XEN: END pass=N fail=M
CONF=/mw/mwcomms.conf
CTL="mwctl -s /run/mwcomms/balancer.sock"
URL=http://127.0.0.1:8080/index.html
# shellcheck disable=SC1091 # installed by xen_lib.sh
. /mw/report.sh # pass, fail, ok, ko, step
end() {
	[ -n "$bal" ] && kill "$bal" 2>/dev/null
	sleep 2
	for d in $(xl list | awk 'NR > 1 && $1 ~ /^mw-/ { print $1 }'); do
		xl destroy "$d" >/dev/null 2>&1
	done
	echo "MW-XEN: END pass=$pass fail=$fail"
	exit 0
}
ko() { # the step failed: say why, show the daemons' logs and the guest consoles, stop
	fail=$((fail + 1))
	echo "MW-XEN: FAIL $*"
	for f in /tmp/pvm.log /tmp/bal.log /tmp/nginx.log /var/log/xen/console/guest-*.log; do
		[ -e "$f" ] || continue
		echo "MW-XEN-LOG: --- $f (last 30 lines)"
		tail -n 30 "$f" | sed 's/^/MW-XEN-LOG: /'
	done
	xl list 2>&1 | sed 's/^/MW-XEN-LOG: /'
	end
}
# wait_for SECONDS CMD: until the shell command CMD succeeds (polls 1 s).
wait_for() {
	n=0
	while ! eval "$2" >/dev/null 2>&1; do
		n=$((n + 1))
		[ $n -ge "$1" ] && return 1
		sleep 1
	done
}
ndom() { xl list | awk 'NR > 1 && $1 ~ /^mw-xe-ins/' | wc -l; }
nready() { $CTL ins list 2>/dev/null | awk '$2 == "ready"' | wc -l; }
# requests N: N GETs through the front end; prints how many carried the page.
requests() {
	good=0
	i=0
	while [ $i -lt "$1" ]; do
		wget -q -T 10 -O - "$URL" 2>/dev/null | grep -q "mwcomms xen e2e" && good=$((good + 1))
		i=$((i + 1))
	done
	echo $good
}
bal=

mw-pvm -c "$CONF" >/tmp/pvm.log 2>&1 &
wait_for 30 "[ -S /run/mwcomms/pvm.sock ] && [ -S /run/mwcomms/pvm-ins.sock ]" ||
	ko "pvm-up: mw-pvm made no sockets in 30 s"
ok "pvm-up"

mw-balancer -c "$CONF" >/tmp/bal.log 2>&1 &
bal=$!
wait_for 400 "[ \$(ndom) -ge 2 ] || ! kill -0 $bal" || true
kill -0 "$bal" 2>/dev/null || ko "domains: mw-balancer exited: $(tail -n 1 /tmp/bal.log)"
[ "$(ndom)" -ge 2 ] || ko "domains: $(ndom) INS domains after 400 s, want 2"
ok "domains: $(xl list | awk 'NR > 1 && $1 ~ /^mw-xe-ins/ { printf "%s(%s) ", $1, $2 }')"
step domains-created

wait_for 300 "[ \$(grep -c 'INS [0-9]* joined' /tmp/pvm.log) -ge 2 ]" ||
	ko "ins-joined: $(grep -c 'INS [0-9]* joined' /tmp/pvm.log) INS joined mw-pvm, want 2"
ok "ins-joined"
step ins-joined

mkdir -p /tmp/www /var/lib/nginx
echo "<h1>mwcomms xen e2e</h1>" >/tmp/www/index.html
LD_PRELOAD=/usr/local/lib/libmwshim.so MW_PVM_SOCKET=/run/mwcomms/pvm.sock \
	nginx -c /mw/nginx.conf >/tmp/nginx.log 2>&1 &
wait_for 60 "[ \$(nready) -ge 2 ]" || ko "ready: $(nready) INS ready, want 2"
ok "ready: $($CTL ins list | awk '$2 == "ready" { printf "%s ", $1 }')"
step ins-ready

got=$(requests 20)
[ "$got" = 20 ] || ko "requests: $got of 20 answered with the page"
ok "requests: 20 of 20"

victim=$(xl list | awk 'NR > 1 && $1 ~ /^mw-xe-ins/ { print $1; exit }')
xl destroy "$victim" || ko "destroy: xl destroy $victim failed"
step destroyed
wait_for 60 "grep -q 'died' /tmp/bal.log" || ko "detected: the balancer did not see $victim die in 60 s"
ok "detected: $(grep -m 1 died /tmp/bal.log)"
wait_for 400 "[ \$(nready) -ge 2 ]" || ko "replaced: $(nready) INS ready 400 s after the destroy, want 2"
ok "replaced: $($CTL ins list | awk '$2 == "ready" { printf "%s ", $1 }')"
step replaced
got=$(requests 20)
[ "$got" = 20 ] || ko "requests-after: $got of 20 answered with the page"
ok "requests-after: 20 of 20"
end
