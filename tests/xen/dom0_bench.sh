#!/bin/sh
# shellcheck disable=SC2154,SC2016,SC2317 # pass and fail: /mw/report.sh; the quoted conditions (and n_ready in them) are eval'd by wait_until
# dom0_bench.sh - /mw/run of tests/xen/test_xen_bench.sh (issue 15 item 5), run by busybox
# sh in the emulated dom0: one mw-pvm (pvm.xen_channel) and one app (xen_app) under the
# shim, served by two balancers at once, each with one INS:
#   xl     front end 10.77.0.1:8081, the INS in a domU (bridge mwbr0, as test_xen_e2e)
#   netns  front end 127.0.0.1:8081, the INS in a network namespace of dom0 (bridge mwbr1)
# so a request takes the same path (client, balancer, INS, mw-pvm, app) but for where
# the INS runs.  xen_client (sequential requests, one connection each) runs ROUNDS
# rounds of N requests per path, in chunks of CHUNK alternating between the paths.
# Reports (dom0_report.sh) a PASS per ready INS and per run with N of N answered, and
# figures:
#   MW-XEN: FIGURE spawn_to_ready_s PATH S          the balancer's own figure
#   MW-XEN: FIGURE run PATH ROUND ok=A fail=F secs=S rps=R   the round's chunks summed
#   MW-XEN: FIGURE total PATH rps=R
#   MW-XEN: FIGURE round_ratios_xl_netns X1 X2...   per round, xl req/s over netns req/s
#   MW-XEN: FIGURE ratio_xl_netns X                 the same over all rounds
# Reads /mw/bench.env (N, ROUNDS, CHUNK).
# shellcheck disable=SC1091 # installed by test_xen_bench.sh / xen_lib.sh
. /mw/bench.env
# shellcheck disable=SC1091
. /mw/report.sh # pass, fail, ok, ko, step, wait_until
PORT=8081
XL_FRONT=10.77.0.1
NS_FRONT=127.0.0.1
pids=
run_bg() { # run_bg LOG CMD...: CMD in the background, its pid remembered for end
	log=$1
	shift
	"$@" >"$log" 2>&1 &
	pids="$pids $!"
}
ctl_() { # ctl_ PATH ARGS...: mwctl on that path's balancer
	p=$1
	shift
	mwctl -s "/run/mwcomms/balancer-$p.sock" "$@"
}
n_ready() { ctl_ "$1" ins list 2>/dev/null | awk 'NR > 1 && $2 == "ready"' | wc -l; }
dump() {
	for f in /tmp/bal-xl.log /tmp/bal-netns.log /tmp/pvm.log /tmp/app.log /tmp/burn.log; do
		echo "MW-XEN-LOG: --- $f (last 30 lines, repeated ones left out)"
		grep -v 'no ready INS could\|similar messages' "$f" 2>&1 | uniq -c | tail -n 30 |
			sed 's/^/MW-XEN-LOG: /'
	done
	echo "MW-XEN-LOG: --- xl list"
	xl list 2>&1 | sed 's/^/MW-XEN-LOG: /'
	for f in /var/log/xen/console/guest-*.log; do
		echo "MW-XEN-LOG: --- $f (last 12 lines)"
		tail -n 12 "$f" 2>&1 | sed 's/^/MW-XEN-LOG: /'
	done
}
# dump_path PATH: after a failed run, one request by hand through the front end and one
# to the INS's own address (bypassing the balancer), the balancer's view, the logs.
dumped=
dump_path() {
	[ -z "$dumped" ] || return 0
	dumped=1
	addr=$(ctl_ "$1" ins list | awk 'NR == 2 { print $3 }')
	for to in "$(front "$1"):$PORT" "${addr%%:*}:$PORT"; do
		echo "MW-XEN-LOG: --- request to $to: $(echo "probe-$1" | timeout 10 nc "${to%:*}" "${to#*:}" 2>&1)"
	done
	{ ctl_ "$1" ins list; ctl_ "$1" status; } 2>&1 | sed 's/^/MW-XEN-LOG: /'
	dump
}
# No orderly stop (the balancer would shut its domain down, slowly under emulation):
# dom0 powers the machine off when this script ends.
end() {
	echo "MW-XEN: END pass=$pass fail=$fail"
	for p in $pids; do
		kill -9 "$p" 2>/dev/null
	done
	exit 0
}
stop() {
	ko "$@"
	dump
	end
}

# The sections both balancers share; each has its own balancer section and file.
common='common: { runtime_dir = "/run/mwcomms"; keystore = "xenstore"; };
pvm: { control_socket = "/run/mwcomms/pvm.sock"; ins_socket = "/run/mwcomms/pvm-ins.sock";
	xen_channel = true; ring_size = 262144; heartbeat_timeout_ms = 15000; };
ins: { user = ""; };'
health='health_interval_ms = 1000; health_timeout_ms = 5000; health_failures = 3;
	start_timeout_ms = 300000; min_ins = 1; max_ins = 1;'
cat >/run/mw-xl.conf <<CONF
$common
balancer: {
	backend = "xl"; subnet = "10.77.0.0/24"; bridge = "mwbr0"; tag = "xb";
	xl_kernel = "/var/lib/mw/xen/vmlinux"; xl_ramdisk = "/var/lib/mw/xen/ins.cpio.gz";
	xl_memory_mb = 128; xl_vcpus = 1;
	listen = [ "$XL_FRONT:$PORT" ]; control_socket = "/run/mwcomms/balancer-xl.sock";
	$health
};
CONF
cat >/run/mw-netns.conf <<CONF
$common
balancer: {
	backend = "netns"; subnet = "10.78.0.0/24"; bridge = "mwbr1"; tag = "nb";
	listen = [ "$NS_FRONT:$PORT" ]; control_socket = "/run/mwcomms/balancer-netns.sock";
	$health
};
CONF

run_bg /tmp/pvm.log mw-pvm -c /run/mw-xl.conf --log-level info
wait_until 30 "grep -qF 'Xen channel: accepting INS domUs' /tmp/pvm.log" ||
	stop "pvm: mw-pvm has no Xen channel"
# mw-pvm knows a domU's INS by its domid and a local INS by its balancer's id: the
# netns balancer's first INS is 1, the first domain would be domid 1 too.  A domain
# whose kernel cannot be loaded still takes a domid (created, then destroyed by libxl).
printf 'name = "mw-burn"\ntype = "pv"\nkernel = "/nonexistent"\nmemory = 32\n' >/tmp/burn.cfg
xl create /tmp/burn.cfg >/tmp/burn.log 2>&1 && xl destroy mw-burn >/dev/null 2>&1

run_bg /tmp/bal-xl.log mw-balancer -c /run/mw-xl.conf --log-level info
wait_until 300 "grep -qF 'joined over the xen channel' /tmp/pvm.log" ||
	stop "xl-joined: the INS domU did not join mw-pvm in 300 s"
domid=$(grep -m 1 -o 'INS [0-9]* joined over the xen channel' /tmp/pvm.log | cut -d' ' -f2)
[ "$domid" != 1 ] || stop "xl-joined: the domU's INS took id 1 (domid 1): the netns INS 1 would clash"
# The app listens once an INS is there to hold its socket; mw-pvm replicates the
# listener to the netns INS when that joins.
run_bg /tmp/app.log env LD_PRELOAD=/usr/local/lib/libmwshim.so \
	MW_PVM_SOCKET=/run/mwcomms/pvm.sock /mw/xen_app "$PORT"
wait_until 30 "grep -qF 'xen_app: listening' /tmp/app.log" || stop "app: xen_app does not listen"
run_bg /tmp/bal-netns.log mw-balancer -c /run/mw-netns.conf --log-level info
wait_until 60 '[ "$(n_ready netns)" -ge 1 ]' || stop "netns-ready: its INS not ready in 60 s"
ok "netns-ready: $(grep -m 1 -o 'INS [0-9]* ready ([0-9.]* s after spawn)' /tmp/bal-netns.log)"
wait_until 300 '[ "$(n_ready xl)" -ge 1 ]' || stop "xl-ready: the domU's INS not ready in 300 s"
ok "xl-ready: domid $domid, $(grep -m 1 -o 'INS [0-9]* ready ([0-9.]* s after spawn)' /tmp/bal-xl.log)"
step ready
for p in xl netns; do
	grep -m 1 -o 'ready ([0-9.]* s after spawn)' "/tmp/bal-$p.log" |
		awk -v p="$p" '{ print "MW-XEN: FIGURE spawn_to_ready_s " p " " substr($2, 2) }'
done

front() { if [ "$1" = xl ]; then echo "$XL_FRONT"; else echo "$NS_FRONT"; fi; }
# chunk PATH ROUND K: CHUNK requests through PATH, their tally kept in /tmp/chunks.
chunk() {
	out=$(/mw/xen_client "$(front "$1")" "$PORT" "$CHUNK" "$1$2-$3-" 60)
	echo "$1 $2 $out" >>/tmp/chunks
}
# tally PATH ROUND: the run of N requests PATH had in ROUND (its chunks summed), its
# figure line and its check.
tally() {
	out=$(tr '=' ' ' </tmp/chunks | awk -v p="$1" -v r="$2" '$1 == p && $2 == r {
		ok += $4; bad += $6; secs += $8 }
		END { printf "ok=%d fail=%d secs=%.3f rps=%.2f", ok, bad, secs, (secs > 0 ? ok / secs : 0) }')
	echo "MW-XEN: FIGURE run $1 $2 $out"
	echo "$1 $2 $out" >>/tmp/runs
	case $out in
	"ok=$N fail=0 "*) ok "run-$1-$2: $N of $N answered by the app ($out)" ;;
	*)
		ko "run-$1-$2: want $N of $N answered: $out"
		dump_path "$1"
		;;
	esac
}
/mw/xen_client "$XL_FRONT" "$PORT" 3 warm 60 >/dev/null
/mw/xen_client "$NS_FRONT" "$PORT" 3 warm 60 >/dev/null
# Rounds of N requests per path, in chunks of CHUNK alternating between the paths (the
# order swapped every round), so both see the same share of the host's cores: under
# emulation on a shared machine the rate moves tenfold within a minute.
r=0
while [ $r -lt "$ROUNDS" ]; do
	r=$((r + 1))
	if [ $((r % 2)) = 1 ]; then order="xl netns"; else order="netns xl"; fi
	k=0
	while [ $((k * CHUNK)) -lt "$N" ]; do
		k=$((k + 1))
		for p in $order; do
			chunk "$p" "$r" "$k"
		done
	done
	tally xl "$r"
	tally netns "$r"
done
step measured
# Totals per path (answered requests over the summed loop time) and the ratio.
tr '=' ' ' </tmp/runs | awk '
	{ ok[$1] += $4; secs[$1] += $8; rps[$1, $2] = $10; n = $2 }
	END {
		for (p in ok)
			printf "MW-XEN: FIGURE total %s rps=%.2f\n", p, ok[p] / secs[p]
		line = ""
		for (r = 1; r <= n; r++)
			line = line sprintf(" %.3f", rps["netns", r] > 0 ? rps["xl", r] / rps["netns", r] : 0)
		print "MW-XEN: FIGURE round_ratios_xl_netns" line
		if (secs["xl"] > 0 && secs["netns"] > 0 && ok["netns"] > 0)
			printf "MW-XEN: FIGURE ratio_xl_netns %.3f\n",
				(ok["xl"] / secs["xl"]) / (ok["netns"] / secs["netns"])
	}'
echo "MW-XEN: FIGURE bal_status xl $(ctl_ xl status | awk '$1 ~ /^(spawned|replaced|fail_no_ins)$/ { printf "%s=%s ", $1, $2 }') netns $(ctl_ netns status | awk '$1 ~ /^(spawned|replaced|fail_no_ins)$/ { printf "%s=%s ", $1, $2 }')"
end
