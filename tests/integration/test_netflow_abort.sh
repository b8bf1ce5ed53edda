#!/bin/bash
# test_netflow_abort.sh - a Netflow mitigation close is abortive: the client is cut at once
#
# A client reads 1 KiB/s through a 4 KiB receive buffer while the shimmed app
# has megabytes queued for it (in its socket, mw-pvm, mw-ins and the INS
# kernel).  The mitigation close must reset the TCP connection at the INS, not
# drain it at the client's pace: the client sees the connection lost (TCP_INFO
# state CLOSE, or a reset/EOF) within 500 ms of the request, measured on its own
# clock against the time the request was sent (a few ms on a quiet machine, logged;
# the bound leaves room for three wake-ups on a loaded CI machine, while a drain of
# those megabytes at 1 KiB/s would take an hour).  Twice:
#   (a) the app is still writing: its write then fails (EPIPE or ECONNRESET);
#   (b) the app already wrote everything and closed (mw-pvm closing gracefully,
#       mw-ins draining): the close escalates to a reset.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
NFP=$(dirname "$0")/nf_probe.py
# Megabytes queued in the INS kernel where the host allows a 4 MiB send buffer
# (net.core.wmem_max); else the half megabyte the relay itself holds.
if [ "$(cat /proc/sys/net/core/wmem_max)" -ge 4194304 ]; then
	MW_INS_CONF="sndbuf = 4194304;"
	QUEUED=$((3 * 1024 * 1024))
else
	QUEUED=$((300 * 1024))
fi
mw_appliance_up
KEY=$MW_RUNTIME_DIR/store/mw/pvm/netflow
mw_wait_for "[ -s '$KEY' ]" || mw_fail "no Netflow address published at $KEY"
NF=$(cat "$KEY")
field() { sed -n "s/\(^\|.* \)$1=\([^ ]*\).*/\2/p"; }
mw_spawn_obs() {
	mw_spawn obs "$PY" "$NFP" obs "$NF" "$MW_TMP/obs" 10000 50
	mw_wait_for "grep -q READY '$MW_TMP/obs'" || mw_fail "observer did not connect"
}
mw_spawn_obs

# cut_case NAME PORT TOTAL WAIT_FOR: flood-server NAME on PORT sending TOTAL bytes;
# WAIT_FOR is the line in its log that says the app is where the case wants it.
cut_case() {
	local name=$1 port=$2 total=$3 want=$4 lport conn r sent cut end
	mw_spawn "$name" shimmed "$PY" "$NFP" flood-server "$port" "$total"
	mw_wait_for "ins_listens $port" 15 || mw_fail "$name: the app does not listen"
	mw_spawn "$name-cli" in_cli "$PY" "$NFP" trickle "$INS_IP" "$port" 40
	lport=$(mw_wait_for "grep -q lport '$(mw_logfile "$name-cli")'" && field lport <"$(mw_logfile "$name-cli")")
	[ -n "$lport" ] || mw_fail "$name: the client did not connect"
	mw_wait_for "grep -q 'obs=accept .*remote=$CLI_IP:$lport ' '$MW_TMP/obs'" || mw_fail "$name: not observed"
	conn=$(grep "obs=accept .*remote=$CLI_IP:$lport " "$MW_TMP/obs" | field extra)
	mw_wait_for "grep -q '$want' '$(mw_logfile "$name")'" 20 ||
		mw_fail "$name: the app never reached '$want': $(cat "$(mw_logfile "$name")")"
	# Megabytes (a) or everything (b) queued while the client took a few KiB.
	mw_wait_for "[ \$(grep -c '^got=' '$(mw_logfile "$name-cli")') -ge 3 ]" 20 ||
		mw_fail "$name: the client is not reading"
	grep -q '^cut_at' "$(mw_logfile "$name-cli")" && mw_fail "$name: cut before the request"
	r=$("$PY" "$NFP" cut "$NF" "$conn")
	[ "$(echo "$r" | field status)" = 0 ] || mw_fail "$name: mitigation close answered '$r'"
	sent=$(echo "$r" | field sent_at)
	mw_wait_for "grep -q '^cut_at' '$(mw_logfile "$name-cli")'" 10 ||
		mw_fail "$name: the client still has its connection 10 s after the close"
	cut=$(grep '^cut_at' "$(mw_logfile "$name-cli")" | field cut_at)
	end=$(grep '^cut_at' "$(mw_logfile "$name-cli")" | field end)
	[ "$end" = close ] || [ "$end" = reset ] || mw_fail "$name: the client saw '$end', not a reset"
	awk -v a="$sent" -v b="$cut" 'BEGIN { exit !(b - a < 0.500) }' ||
		mw_fail "$name: the client lost the connection $(awk -v a="$sent" -v b="$cut" 'BEGIN { print b - a }') s after the request (limit 0.5 s)"
	in_ins ss -Htn state established "sport = :$port" | grep -q . &&
		mw_fail "$name: the INS still has the connection: $(in_ins ss -Htn "sport = :$port")"
	mw_log "$name: cut $(awk -v a="$sent" -v b="$cut" 'BEGIN { printf "%.3f", b - a }') s after the request ($end)"
}

# (a) the app still writes 64 MiB: its next write fails.
cut_case writing 9301 $((64 * 1024 * 1024)) listening
mw_wait_for "grep -q 'EPIPE after\|ECONNRESET after' '$(mw_logfile writing)'" 10 ||
	mw_fail "the app's write did not fail after the close: $(cat "$(mw_logfile writing)")"

# (b) the app wrote everything and exited: mw-pvm and mw-ins hold the rest.
cut_case closed 9302 "$QUEUED" 'sent all'
mw_wait_for "! kill -0 $(mw_pid closed) 2>/dev/null" 10 || mw_fail "the app did not exit"
mw_wait_for "grep -q 'obs=close sock=.* local=$INS_IP:9302 ' '$MW_TMP/obs'" ||
	mw_fail "no close observation after the mitigation close of the closed app's connection"
