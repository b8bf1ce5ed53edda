#!/usr/bin/env bash
# test_balancer_pvm_view.sh - mw-balancer's health checks read mw-pvm's view of each INS channel
#
# The gap this carries (issue 11, item 4): the health checks looked at the INS from
# outside only (process state, TCP probe, accept); mw-pvm's own view of its channel
# to each INS (handshake, heartbeats, valid frames) was never read, so an INS that
# mw-pvm had given up on could stay in the rotation as long as it accepted.
#
# Cases: mw-pvm publishes "up PID" at /mw/pvms/<index>/ins/<id> for each INS and
# mwctl shows PVM up; the key goes when mw-pvm ends the channel (kill -9 of an INS);
# an INS whose key is gone while its process still accepts (as when mw-pvm has ended
# its channel) leaves the rotation at the next check and is replaced, with
# fail_health_pvm_lost counted and every request answered; mw-pvm's shutdown
# withdraws every key.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/balancer_lib.sh"
bal_up 2 3 "health_interval_ms = 300; health_timeout_ms = 1000; health_failures = 2;
	idle_timeout_ms = 6000;"
VIEW=$MW_RUNTIME_DIR/store/mw/pvms/0/ins

st() { ctl status | awk -v k="$1" '$1 == k {print $2}'; }
# insf ID COL: a column of `mwctl ins list` (4 pid, 8 health, 9 pvm).
insf() { ctl ins list | awk -v id="$1" -v c="$2" 'NR > 1 && $1 == id {print $c}'; }
ready_ids() { ctl ins list | awk 'NR > 1 && $2 == "ready" {print $1}'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

mw_log "case: mw-pvm publishes each INS channel, mwctl shows it"
for id in $(ready_ids); do
	pid=$(insf "$id" 4)
	mw_wait_for "[ \"\$(cat '$VIEW/$id' 2>/dev/null)\" = 'up $pid' ]" 10 ||
		mw_fail "INS $id (pid $pid): mw-pvm's key says '$(cat "$VIEW/$id" 2>&1)'"
	mw_wait_for "[ \"\$(insf $id 9)\" = up ]" 10 ||
		mw_fail "mwctl does not show mw-pvm's view of INS $id as up: $(ctl ins list)"
done
ctl --json ins list | python3 -c 'import json,sys; l=json.load(sys.stdin); assert all(x["health_pvm"] == "up" for x in l), l' ||
	mw_fail "health_pvm not up in mwctl --json: $(ctl --json ins list)"
mw_wait_for "[ \"\$(st in_rotation) \$(st accept_paused)\" = '2 no' ]" 10 ||
	mw_fail "status does not show 2 INS in the rotation, accept not paused: $(ctl status)"

mw_log "case: the key goes when mw-pvm ends the channel"
dead=$(ready_ids | head -1)
kill -9 "$(insf "$dead" 4)"
mw_wait_for "[ ! -e '$VIEW/$dead' ]" 5 || mw_fail "INS $dead's key outlived its channel: $(cat "$VIEW/$dead")"
bal_wait_ready 2 20 || mw_fail "the killed INS was not replaced"
replaced0=$(st replaced)

mw_log "case: an INS mw-pvm no longer has a channel to leaves the rotation and is replaced"
victim=$(ready_ids | head -1)
vpid=$(insf "$victim" 4)
mw_wait_for "[ \"\$(insf $victim 9)\" = up ]" 10 || mw_fail "INS $victim was never seen up"
rm -f "$MW_TMP/load"
load 400 4 "$MW_TMP/load" &
lpid=$!
sleep 0.3
T0=$(now_ms)
# What mw-pvm does when it ends a channel (pvm/pvm_view.c), while this mw-ins still
# accepts: only mw-pvm's view says it is gone.
rm -f "$VIEW/$victim"
mw_wait_for "[ \"\$(insf $victim 8)\" != ok ]" 10 || mw_fail "INS $victim stayed in the rotation: $(ctl ins list)"
took=$(($(now_ms) - T0))
# Until its replacement is ready (a spawn after it is down), one INS takes connections.
[ "$(st in_rotation)" = 1 ] || mw_fail "status does not count INS $victim out of the rotation: $(ctl status)"

mw_log "INS $victim out of the rotation $took ms after its key went"
[ "$took" -le 1500 ] || mw_fail "INS $victim left the rotation only after $took ms (interval 300 ms)"
mw_wait_for "! kill -0 $vpid 2>/dev/null" 10 || mw_fail "INS $victim was not taken down"
wait "$lpid"
bal_wait_ready 2 20 || mw_fail "INS $victim was not replaced"
[ -z "$(insf "$victim" 1)" ] || mw_fail "INS $victim still listed: $(ctl ins list)"
[ "$(st fail_health_pvm_lost)" -ge 1 ] && [ "$(st fail_health_down)" = 1 ] &&
	[ "$(st replaced)" = $((replaced0 + 1)) ] || mw_fail "counters are off: $(ctl status)"
grep -q "INS $victim failed a health check (mw-pvm no longer has a channel to the INS)" "$BAL_LOG" ||
	mw_fail "no log line for INS $victim's lost channel"
n=$(wc -l <"$MW_TMP/load")
ok=$(grep -c '^200$' "$MW_TMP/load" || true)
mw_log "during it: $ok of $n requests answered"
[ "$n" = 400 ] && [ "$ok" -ge 380 ] || mw_fail "$ok of $n requests answered around the lost channel"
load 200 4 "$MW_TMP/after"
[ "$(grep -c '^200$' "$MW_TMP/after")" = 200 ] || mw_fail "requests fail after the replacement"
for id in $(ready_ids); do
	mw_wait_for "[ \"\$(insf $id 9)\" = up ]" 10 || mw_fail "replacement INS $id is not up in mw-pvm's view"
done

mw_log "case: mw-pvm's shutdown withdraws every key"
mw_stop pvm
[ -z "$(ls -A "$VIEW" 2>/dev/null)" ] || mw_fail "keys left after mw-pvm stopped: $(ls "$VIEW")"
mw_log "ok"
