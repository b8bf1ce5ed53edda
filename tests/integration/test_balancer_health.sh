#!/usr/bin/env bash
# test_balancer_health.sh - mw-balancer's health checks, bounds and reload of restart-only keys
#
# The bug this carries (issue 11): a SIGSTOPped INS stayed "ready" (its kernel still
# completes handshakes), clients sent to it hung forever (idle_timeout_ms defaulted to 0),
# a drain never ended, draining INS did not count against max_ins, and reloading
# ins.proxy_protocol switched the balancer but not the running INS.
#
# Cases: health and counters shown by mwctl; balancer.max_conns closes the client beyond
# it; a drain ends at drain_timeout_ms and a draining INS counts against max_ins;
# kill -STOP of an INS under load: out of the rotation within 3 s, replaced, no request
# hangs; a frozen (wedged, not stopped) INS fails the accept step and is replaced;
# reload names the restart-only keys it did not apply (ins.proxy_protocol among them)
# and an INS spawned after it speaks what the file says.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/balancer_lib.sh"
bal_up 1 3 "health_interval_ms = 500; health_timeout_ms = 1000; health_failures = 2;
	idle_timeout_ms = 6000; drain_timeout_ms = 4000; max_conns = 1000;"
cp "$CONF" "$MW_TMP/good.conf"

# Helpers without python (it can take seconds to start on a loaded machine):
# st KEY: a status value; insf ID COL: a column of `mwctl ins list` for INS ID
# (2 state, 5 conns, 6 total, 8 health); ids_where COL VALUE: the INS whose COL is VALUE;
# now_ms / since_ms T0: milliseconds.
st() { ctl status | awk -v k="$1" '$1 == k {print $2}'; }
insf() { ctl ins list | awk -v id="$1" -v c="$2" 'NR > 1 && $1 == id {print $c}'; }
ids_where() { ctl ins list | awk -v c="$1" -v v="$2" 'NR > 1 && $c == v {print $1}'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
since_ms() { echo $(($(now_ms) - $1)); }

# holder N OUT: N client connections kept busy (a request whose header never ends, one
# header line every 0.3 s, so no idle timeout); "closed MS" (epoch milliseconds) appended
# to OUT per connection the other side ends.  Runs until killed, at most 60 s.
cat >"$MW_TMP/holder.py" <<'PY'
import os, socket, sys, time
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for _ in range(n):
    s = socket.create_connection((os.environ["MW_FRONT"], port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    s.setblocking(False)
    socks.append(s)
end = time.time() + 60
while socks and time.time() < end:
    time.sleep(0.3)
    for s in list(socks):
        try:
            if s.recv(4096) == b"":
                raise ConnectionError
        except BlockingIOError:
            pass
        except OSError:
            open(out, "a").write("closed %d\n" % (time.time() * 1000)); socks.remove(s); continue
        try:
            s.send(b"X-Hold: 1\r\n")
        except OSError:
            open(out, "a").write("closed %d\n" % (time.time() * 1000)); socks.remove(s)
PY
holder() { python3 "$MW_TMP/holder.py" "$PORT" "$1" "$2" & }

mw_log "case: health and counters in mwctl"
ctl ins list | awk 'NR == 1 {print $8}' | grep -qx HEALTH || mw_fail "ins list has no HEALTH column: $(ctl ins list)"
mw_wait_for "[ \"\$(insf 1 8)\" = ok ]" 10 || mw_fail "INS 1 not checked healthy: $(ctl ins list)"
ctl --json ins list | python3 -c 'import json,sys; l=json.load(sys.stdin); assert l[0]["health_checks"] > 0 and l[0]["health_failed"] == 0 and l[0]["health_last"] == "-", l' ||
	mw_fail "health counters of INS 1 are off: $(ctl --json ins list)"
for k in fail_no_ins fail_health_down fail_limit fail_drain_timeout replaced; do
	[ "$(st $k)" = 0 ] || mw_fail "$k is not 0 at start: $(ctl status)"
done

mw_log "case: balancer.max_conns closes the client beyond it"
ctl scale 2 >/dev/null || mw_fail "scale 2 refused"
bal_wait_ready 2 20 || mw_fail "2 INS not ready"
sed -i 's/max_conns = 1000;/max_conns = 3;/' "$CONF"
ctl reload >/dev/null || mw_fail "reload of max_conns refused"
[ "$(st max_conns)" = 3 ] || mw_fail "max_conns not reloaded: $(ctl status)"
holder 3 "$MW_TMP/limit.closed"
hpid=$!
mw_wait_for "[ \"\$(st fe_conns)\" = 3 ]" 10 || mw_fail "3 held connections not seen"
t0=$(now_ms)
curl -s --max-time 10 -o /dev/null "$URL/index.html" && mw_fail "a 4th connection was served beyond max_conns 3"
[ "$(since_ms "$t0")" -lt 3000 ] || mw_fail "the client beyond max_conns was not closed at once"
mw_wait_for "[ \"\$(st fail_limit)\" = 1 ]" 3 || mw_fail "fail_limit is not 1: $(ctl status)" # kernel mode: read each tick
kill "$hpid" || true
wait "$hpid" 2>/dev/null || true
mw_wait_for "[ \"\$(st fe_conns)\" = 0 ]" 10 || mw_fail "held connections not gone"
curl -sf --max-time 10 -o /dev/null "$URL/index.html" || mw_fail "no service under max_conns again"
cp "$MW_TMP/good.conf" "$CONF"
ctl reload >/dev/null || mw_fail "reload back refused"

mw_log "case: drain_timeout_ms ends a drain; a draining INS counts against max_ins"
holder 1 "$MW_TMP/drain.closed"
hpid=$!
mw_wait_for "[ \"\$(ids_where 5 1 | wc -l)\" = 1 ]" 10 || mw_fail "held connection not seen"
did=$(ids_where 5 1)
ctl ins retire "pvm:$did" --drain >/dev/null || mw_fail "retire --drain refused" # mw-pvm's id: here the same
t0=$(now_ms)
[ "$(insf "$did" 2)" = draining ] || mw_fail "INS $did not draining"
ctl scale 3 >/dev/null || mw_fail "scale 3 refused"
ctl ins spawn 2>"$MW_TMP/spawn.err" && mw_fail "spawn accepted with 2 live + 1 draining at max_ins 3"
grep -q '1 draining' "$MW_TMP/spawn.err" || mw_fail "spawn refusal does not name the draining INS: $(cat "$MW_TMP/spawn.err")"
[ "$(ctl ins list | awk 'NR > 1 && ($2 == "starting" || $2 == "ready" || $2 == "draining")' | wc -l)" = 3 ] ||
	mw_fail "not exactly 3 INS running at max_ins 3: $(ctl ins list)"
mw_wait_for "[ -z \"\$(insf $did 1)\" ]" 15 || mw_fail "the drain of INS $did never ended"
took=$(since_ms "$t0")
[ "$took" -ge 3500 ] && [ "$took" -le 15000 ] || mw_fail "drain ended after $took ms, want about drain_timeout_ms 4000"
[ "$(st fail_drain_timeout)" = 1 ] || mw_fail "fail_drain_timeout is not 1: $(ctl status)"
mw_wait_for "[ -s '$MW_TMP/drain.closed' ]" 5 || mw_fail "the held connection on the drained INS was not closed"
kill "$hpid" 2>/dev/null || true
wait "$hpid" 2>/dev/null || true
bal_wait_ready 3 20 || mw_fail "3 INS not ready after the drain"
ctl scale 2 >/dev/null || mw_fail "scale 2 refused"
bal_wait_ready 2 20 || mw_fail "not back to 2 INS"

# timed_load N PAR OUT: N requests, PAR curls, one connection each; "code seconds" per line.
timed_load() {
	local n=$1 par=$2 out=$3 c i pids=()
	for ((c = 0; c < par; c++)); do
		for ((i = 0; i < n / par; i++)); do
			curl -s -o /dev/null -H 'Connection: close' --max-time 15 \
				-w '%{http_code} %{time_total}\n' "$URL/index.html" || true
		done >"$out.$c" &
		pids+=($!)
	done
	wait "${pids[@]}" || true
	cat "$out".* >"$out" && rm -f "$out".*
}

mw_log "case: kill -STOP of an INS under load"
mw_wait_for "[ \"\$(ids_where 8 ok | wc -l)\" = 2 ]" 10 || mw_fail "not all healthy before STOP: $(ctl ins list)"
# One busy held connection on each INS (round-robin): the victim's must end, not hang.
holder 2 "$MW_TMP/held.closed"
hpid=$!
mw_wait_for "[ \"\$(ids_where 5 1 | wc -l)\" = 2 ]" 10 || mw_fail "held connections not one on each INS: $(ctl ins list)"
victim=$(ctl ins list | awk '$2 == "ready" {print $1, $4; exit}')
vid=${victim% *}
vpid=${victim#* }
timed_load 240 4 "$MW_TMP/stop" &
loadpid=$!
sleep 0.5 # the STOP must land while connections are in flight
kill -STOP "$vpid"
t0=$(now_ms)
# Out of the rotation: health failing or down, or gone from the list.
mw_wait_for "[ \"\$(insf $vid 8)\" != ok ]" 10 || mw_fail "STOPped INS $vid never left the rotation"
took=$(since_ms "$t0")
mw_log "STOPped INS $vid out of the rotation after $took ms"
[ "$took" -le 3000 ] || mw_fail "STOPped INS left the rotation after $took ms, want <= 3000"
mw_wait_for "! kill -0 $vpid 2>/dev/null" 10 || { kill -CONT "$vpid"; mw_fail "STOPped INS $vid was not killed"; }
mw_wait_for "[ -s '$MW_TMP/held.closed' ]" 10 || mw_fail "the held connection on the STOPped INS hangs"
took=$(($(awk '{print $2; exit}' "$MW_TMP/held.closed") - t0))
mw_log "held connection on the STOPped INS ended $took ms after the STOP"
[ "$took" -le 5000 ] || mw_fail "the held connection on the STOPped INS ended only after $took ms"
[ "$(wc -l <"$MW_TMP/held.closed")" = 1 ] || mw_fail "the held connection on the healthy INS was closed too"
kill "$hpid" || true
wait "$hpid" 2>/dev/null || true
wait "$loadpid" || true
bal_wait_ready 2 20 || mw_fail "STOPped INS $vid was not replaced"
[ -z "$(insf "$vid" 1)" ] || mw_fail "STOPped INS $vid still listed"
[ "$(st replaced)" = 1 ] && [ "$(st fail_health_down)" = 1 ] && [ "$(st fail_health_stopped)" -ge 1 ] ||
	mw_fail "counters after the STOP are off: $(ctl status)"
kill -0 "$(mw_pid nginx)" || mw_fail "nginx died"
n=$(wc -l <"$MW_TMP/stop")
slow=$(awk '$2 >= 6' "$MW_TMP/stop" | wc -l)
bad=$(awk '$1 != 200' "$MW_TMP/stop" | wc -l)
mw_log "during the STOP: $n requests, $bad failed, $slow took 6 s or more, slowest $(sort -k2 -n "$MW_TMP/stop" | tail -1)"
[ "$n" = 240 ] || mw_fail "the load ran $n of 240 requests"
[ "$slow" = 0 ] || mw_fail "$slow requests hung 6 s or more (idle_timeout_ms 6000)"
[ "$bad" -le 24 ] || mw_fail "$bad of 240 requests failed around the STOP"
load 100 4 "$MW_TMP/after-stop"
[ "$(grep -c '^200$' "$MW_TMP/after-stop")" = 100 ] || mw_fail "requests after the replacement failed"

mw_log "case: a frozen (wedged, not stopped) INS fails the accept step and is replaced"
FRZ=/sys/fs/cgroup/freezer/mw-test-$$
mkdir "$FRZ" || mw_fail "cannot create freezer cgroup $FRZ"
victim=$(ctl ins list | awk '$2 == "ready" {print $1, $4; exit}')
vid=${victim% *}
vpid=${victim#* }
echo "$vpid" >"$FRZ/cgroup.procs"
echo FROZEN >"$FRZ/freezer.state"
t0=$(now_ms)
mw_wait_for "[ \"\$(insf $vid 8)\" != ok ]" 10 || mw_fail "frozen INS $vid never failed a check"
took=$(since_ms "$t0")
mw_wait_for "[ \"\$(insf $vid 8)\" = down ] || [ -z \"\$(insf $vid 1)\" ]" 10 ||
	mw_fail "frozen INS $vid never taken down"
# A frozen task acts on its SIGKILL once thawed (cgroup v1 freezer).
echo THAWED >"$FRZ/freezer.state"
mw_wait_for "! kill -0 $vpid 2>/dev/null" 10 || mw_fail "frozen INS $vid was not killed"
rmdir "$FRZ"
mw_log "frozen INS $vid out of the rotation after $took ms"
[ "$took" -le 3000 ] || mw_fail "frozen INS left the rotation after $took ms, want <= 3000"
[ "$(st fail_health_not_accepted)" -ge 1 ] && [ "$(st fail_health_down)" = 2 ] && [ "$(st replaced)" = 2 ] ||
	mw_fail "counters after the freeze are off: $(ctl status)"
bal_wait_ready 2 20 || mw_fail "frozen INS $vid was not replaced"

mw_log "case: reload names the restart-only keys it did not apply"
# A restart-only key changed along with the policy: kernel mode has no PROXY v2, and
# balancer.mode itself is restart-only.
if [ "$BAL_MODE" = kernel ]; then
	edit='s/mode = "kernel";/mode = "splice";/' key=balancer.mode field=mode kept=kernel
else
	edit='s/proxy_protocol = true;/proxy_protocol = false;/' key=ins.proxy_protocol field=proxy_protocol kept=on
fi
sed -i "$edit; s/tag = \"$TAG\";/tag = \"x$TAG\"; policy = \"least-connections\";/" "$CONF"
ctl reload 2>"$MW_TMP/reload.err" && mw_fail "a reload with restart-only changes said ok"
for want in "$key" balancer.tag restart; do
	grep -q "$want" "$MW_TMP/reload.err" || mw_fail "reload error does not say $want: $(cat "$MW_TMP/reload.err")"
done
[ "$(st policy) $(st "$field")" = "least-connections $kept" ] ||
	mw_fail "reload: the policy not applied or $field switched: $(ctl status)"
kill -HUP "$(mw_pid balancer)"
mw_wait_for "grep -q 'SIGHUP: reload: not applied.*$key' '$BAL_LOG'" 5 ||
	mw_fail "SIGHUP reload did not name $key"
if [ "$BAL_MODE" = kernel ]; then
	load 150 3 "$MW_TMP/mixed"
	[ "$(grep -c '^200$' "$MW_TMP/mixed")" = 150 ] || mw_fail "after the reload: not every request answered"
	cp "$MW_TMP/good.conf" "$CONF"
	ctl reload >/dev/null || mw_fail "reload of the original file refused"
	exit 0
fi
# An INS spawned now reads proxy_protocol = false: the front end follows each INS.
nid=$(ctl --json ins spawn | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
bal_wait_ready 3 20 || mw_fail "INS $nid not ready"
ctl --json ins list | python3 -c '
import json, sys
got = sorted((i["id"] == int(sys.argv[1]), i["proxy_protocol"]) for i in json.load(sys.stdin))
assert got == [(False, "on"), (False, "on"), (True, "off")], got' "$nid" ||
	mw_fail "per-INS proxy_protocol is off: $(ctl --json ins list)"
load 150 3 "$MW_TMP/mixed"
[ "$(grep -c '^200$' "$MW_TMP/mixed")" = 150 ] || mw_fail "with mixed PROXY INS: not every request answered"
[ "$(insf "$nid" 6)" -gt 0 ] || mw_fail "INS $nid took no connection"
cp "$MW_TMP/good.conf" "$CONF"
ctl reload >/dev/null || mw_fail "reload of the original file refused"
