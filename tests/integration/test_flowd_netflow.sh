#!/bin/bash
# test_flowd_netflow.sh - mw-flowd's Netflow sensor: the app's own byte counts, per socket, equal curl's
#
# mw-pvm + mw-ins + a shimmed HTTP server (python's http.server, one connection per
# request) on port 8490; mw-flowd consumes mw-pvm's AF_UNIX Netflow stream
# (flowd.netflow) with no live interface.  Three curl downloads of different sizes;
# for each, the report's socket (matched by curl's local port) must have
# bytes_in = curl's request bytes and bytes_out = curl's header + body bytes, kind
# "accepted", the app's address and port, the client's address, state closed; the
# socket talkers over the intervals add up to the three connections' bytes.
# The same connections elsewhere (the "app's own byte counts" as an independent
# sum of curl's numbers): the per-second lines of the Netflow sensor ("in": the
# app, inside, is the server on a non-web port) add up to them, nothing in the
# other classes; IPFIX (to a minimal collector, ipfix_collect.py) has per
# connection one record app -> client with header + body bytes and one
# client -> app with the request bytes; a MAPI flow over the Netflow sensor
# (tools/mapi-rates: BPF_FILTER dst/src net + PKT/BYTE_COUNTER) counts the requests'
# bytes in and the responses' out, and at least the three connections' records.
# Two streams (flowd.netflow and flowd.netflow_streams): a second mw-pvm (index 1,
# its own INS and app on port 8491) is a second sensor; a download from its app is
# a socket of that sensor only (the first sensor's socket lines do not have it, nor
# the second's the first's downloads), with curl's bytes, and in the second sensor's
# per-second "in" class.
# mw-pvm restarted: mw-flowd notices, retries, subscribes again and counts a new
# download.  SIGTERM: a partial last interval.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
mw_require_cmd curl
FLOWD=$MW_BUILD_DIR/flowd/mw-flowd
[ -x "$FLOWD" ] || mw_fail "mw-flowd is not built ($FLOWD missing)"
PORT=8490
# shimmed, and in a sanitizer build the shim carries ASan, which python does not link: let it load late.
app_shimmed() {
	env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" LD_PRELOAD="$SHIM" \
		MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" "$@"
}
REPORT=$MW_TMP/flowd.json
RATES=$MW_BUILD_DIR/tools/mapi-rates
[ -x "$RATES" ] || mw_fail "mapi-rates is not built ($RATES missing)"
IPFIX_OUT=$MW_TMP/ipfix.txt
mw_spawn ipfix "$PY" "$(dirname "$0")/ipfix_collect.py" "$MW_TMP/ipfix.port" "$IPFIX_OUT"
mw_wait_for "[ -s '$MW_TMP/ipfix.port' ]" || mw_fail "the IPFIX collector did not start"
export MW_MAPI_SOCKET=$MW_RUNTIME_DIR/flowd.sock
NF_SENSOR=netflow:$MW_RUNTIME_DIR/netflow-0.sock
NF_SENSOR2=netflow:$MW_RUNTIME_DIR/netflow-1.sock
PORT2=8491

mw_appliance_up "flowd: { netflow = \"$MW_RUNTIME_DIR/netflow-0.sock\"; report_file = \"$REPORT\";
	report_interval_s = 1; mapi_socket = \"$MW_MAPI_SOCKET\"; max_sockets = 64;
	inside = [ \"10.231.0.2/32\" ]; ipfix_collector = \"127.0.0.1:$(cat "$MW_TMP/ipfix.port")\";
	netflow_streams = [ \"$MW_RUNTIME_DIR/netflow-1.sock\" ]; };"
FLOG=$(mw_logfile flowd)

mkdir -p "$MW_TMP/www"
for n in 1000 250000 1048576; do head -c "$n" /dev/urandom >"$MW_TMP/www/f$n"; done
mw_spawn app app_shimmed "$PY" -m http.server "$PORT" --directory "$MW_TMP/www"
mw_wait_for "ins_listens $PORT" 20 || mw_fail "the app does not listen"

# The second mw-pvm: index 1 (netflow-1.sock), its own sockets; its INS shares the
# INS namespace, its app listens on PORT2.
CONF2=$MW_TMP/pvm2.conf
mw_write_config "$CONF2" "pvm: { index = 1; control_socket = \"$MW_RUNTIME_DIR/pvm2.sock\";
	ins_socket = \"$MW_RUNTIME_DIR/pvm2-ins.sock\"; heartbeat_timeout_ms = 1000; };
ins: { pvm_socket = \"$MW_RUNTIME_DIR/pvm2-ins.sock\"; heartbeat_ms = 200; };"
mw_spawn pvm_b "$PVM" -c "$CONF2"
mw_wait_for "[ -S '$MW_RUNTIME_DIR/pvm2-ins.sock' ]" || mw_fail "the second mw-pvm did not start"
mw_spawn ins_b ip netns exec "$NS_INS" "$INS" --id 2 -c "$CONF2"
mw_wait_for "grep -q 'INS 2 joined' '$(mw_logfile pvm_b)'" 20 || mw_fail "INS 2 did not join the second mw-pvm"
mw_spawn app_b env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm2.sock" \
	"$PY" -m http.server "$PORT2" --directory "$MW_TMP/www"
mw_wait_for "ins_listens $PORT2" 20 || mw_fail "the second app does not listen"

mw_spawn flowd "$FLOWD" -c "$CONF"
mw_wait_for "grep -q 'netflow sensor: $MW_RUNTIME_DIR/netflow-0.sock subscribed' '$FLOG' &&
	grep -q 'netflow sensor: $MW_RUNTIME_DIR/netflow-1.sock subscribed' '$FLOG'" 20 ||
	mw_fail "mw-flowd did not subscribe to both streams: $(cat "$FLOG")"
mw_spawn rates "$RATES" "$NF_SENSOR" "$INS_IP/32" 1
mw_wait_for "grep -qx connected '$(mw_logfile rates)'" || mw_fail "mapi-rates over $NF_SENSOR: $(cat "$(mw_logfile rates)")"

# fetch FILE [PORT]: curl's "local_port request_bytes header_bytes body_bytes"
fetch() {
	in_cli curl -sf -o /dev/null --max-time 20 \
		-w '%{local_port} %{size_request} %{size_header} %{size_download}\n' \
		"http://$INS_IP:${2:-$PORT}/$1" || mw_fail "curl $1 failed"
}

# check_socket LPORT REQ HDR BODY [APP_PORT SENSOR]: the report has this connection,
# closed, with the app's bytes, in SENSOR's lines only.
check_socket() {
	mw_wait_for "grep -q '\"remote_port\":$1,[^}]*\"state\":\"closed\"' '$REPORT'" 20 ||
		mw_fail "no closed socket for client port $1: $(tail -5 "$REPORT")"
	"$PY" - "$REPORT" "$1" "$2" "$3" "$4" "$INS_IP" "$CLI_IP" "${5:-$PORT}" "${6:-$NF_SENSOR}" <<'PYEOF' ||
import json, sys
report, lport, req, hdr, body, ins_ip, cli_ip, port, sensor = sys.argv[1:]
lines = [json.loads(l) for l in open(report)]
rows = [s for l in lines for s in l.get("sockets", [])
        if s["remote_port"] == int(lport) and s["state"] == "closed"]
assert len(rows) == 1, rows
assert [l["sensor"] for l in lines for s in l.get("sockets", []) if s["remote_port"] == int(lport)] \
    == [sensor] * len([1 for l in lines for s in l.get("sockets", []) if s["remote_port"] == int(lport)]), \
    f"client port {lport} in another sensor's lines than {sensor}"
s = rows[0]
want = {"kind": "accepted", "local": ins_ip, "local_port": int(port), "remote": cli_ip,
        "bytes_in": int(req), "bytes_out": int(hdr) + int(body)}
bad = {k: (s[k], v) for k, v in want.items() if s[k] != v}
if bad:
    sys.exit(f"client port {lport}: (report, curl) differ: {bad}")
print(f"client port {lport}: in {s['bytes_in']} out {s['bytes_out']} as curl ({sensor})")
PYEOF
		mw_fail "socket of client port $1 wrong"
}

total=0 total_in=0 total_out=0 conns=""
for n in 1000 250000 1048576; do
	r=$(fetch "f$n")
	read -r lp req hdr body <<<"$r"
	[ "$body" = "$n" ] || mw_fail "curl fetched $body bytes of f$n"
	check_socket "$lp" "$req" "$hdr" "$body"
	total=$((total + req + hdr + body))
	total_in=$((total_in + req))
	total_out=$((total_out + hdr + body))
	conns="$conns $lp:$req:$((hdr + body))"
done
mw_log "sockets: ok (three connections, the app's bytes equal curl's)"

# The talkers of every interval add up to what the three connections carried, once
# the last interval is reported.
cat >"$MW_TMP/talkers.py" <<'PYEOF'
import json, sys
report, cli, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = [json.loads(l) for l in open(report)]
socks = [l for l in lines if l["type"] == "sockets" and l["sensor"].endswith("netflow-0.sock")]
got = sum(t["bytes"] for l in socks for t in l["talkers"] if t["addr"] == cli)
others = [t for l in socks for t in l["talkers"] if t["addr"] != cli]
assert got == total, (got, total)
assert not others, others
assert all(l["table"]["drops"] == 0 for l in socks)
assert all(l["sensor"].startswith("netflow:") for l in socks)
print(f"talkers: {cli} {got} bytes over {len(socks)} intervals")
PYEOF
mw_wait_for "'$PY' '$MW_TMP/talkers.py' '$REPORT' '$CLI_IP' '$total' >'$MW_TMP/talkers.out' 2>&1" 10 ||
	mw_fail "talkers wrong: $(cat "$MW_TMP/talkers.out")"
cat "$MW_TMP/talkers.out"
mw_log "talkers: ok"

# Per-second classes from the app's bytes.
mw_wait_for "\"$PY\" - '$REPORT' '$NF_SENSOR' '$total' <<'PYEOF'
import json, sys
report, sensor, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
secs = [l for l in map(json.loads, open(report)) if l['type'] == 'second' and l['sensor'] == sensor]
got = sum(l['in']['bytes'] for l in secs)
others = sum(l[c]['bytes'] for l in secs for c in ('out', 'inweb', 'outweb', 'internal', 'other'))
sys.exit(0 if got == total and not others and all(l['total']['bytes'] == l['in']['bytes'] for l in secs) else 1)
PYEOF" 10 || mw_fail "per-second classes: $(grep '\"type\":\"second\"' "$REPORT" | tail -3)"
mw_log "per-second classes: ok (in = $total bytes)"

# IPFIX: one record per direction of each connection, the app's bytes.
for c in $conns; do
	IFS=: read -r lp req resp <<<"$c"
	mw_wait_for "grep -qx '$INS_IP $PORT $CLI_IP $lp 6 $resp 0' '$IPFIX_OUT' &&
		grep -qx '$CLI_IP $lp $INS_IP $PORT 6 $req 0' '$IPFIX_OUT'" 10 ||
		mw_fail "IPFIX: no records of client port $lp ($req in, $resp out): $(cat "$IPFIX_OUT")"
done
[ "$(wc -l <"$IPFIX_OUT")" = 6 ] || mw_fail "IPFIX: records other than the 3 connections': $(cat "$IPFIX_OUT")"
mw_log "ipfix: ok (6 records)"

# MAPI over the Netflow sensor.
mw_stop rates
total_line=$(grep '^total ' "$(mw_logfile rates)") || mw_fail "mapi-rates printed no totals"
read -r in_pkts in_bytes out_pkts out_bytes <<<"$(echo "$total_line" | sed 's/[a-z_]*=//g; s/^total //')"
if [ "$in_bytes" != "$total_in" ] || [ "$out_bytes" != "$total_out" ]; then
	mw_fail "MAPI over $NF_SENSOR: $total_line; curl: in $total_in out $total_out"
fi
if [ "$in_pkts" -lt 6 ] || [ "$out_pkts" -lt 6 ]; then
	mw_fail "MAPI over $NF_SENSOR: too few records: $total_line"
fi
mw_log "mapi: ok ($total_line)"

# The second stream: its own sensor.
r=$(fetch f1000 "$PORT2")
read -r lp req hdr body <<<"$r"
check_socket "$lp" "$req" "$hdr" "$body" "$PORT2" "$NF_SENSOR2"
mw_wait_for "grep -q '\"type\":\"second\",\"sensor\":\"$NF_SENSOR2\",[^}]*\"in\":{\"pkts\":[0-9]*,\"bytes\":$((req + hdr + body))}' '$REPORT'" 10 ||
	mw_fail "two streams: no per-second line of $NF_SENSOR2 with $((req + hdr + body)) bytes"
mw_log "two streams: ok (a download from the second mw-pvm is $NF_SENSOR2's only)"

# mw-pvm goes away and comes back (with a new INS: an INS exits when mw-pvm does).
mw_stop app
mw_stop ins1
mw_stop pvm
mw_wait_for "grep -q 'netflow sensor: lost' '$FLOG'" 20 || mw_fail "reconnect: the loss was not noticed"
mw_spawn pvm2 "$PVM" -c "$CONF"
mw_spawn ins2 ip netns exec "$NS_INS" "$INS" --id 1 -c "$CONF"
mw_wait_for "grep -q 'INS 1 joined' '$(mw_logfile pvm2)'" 30 || mw_fail "reconnect: the INS did not join the new mw-pvm"
mw_wait_for "[ \$(grep -c 'netflow sensor: $MW_RUNTIME_DIR/netflow-0.sock subscribed' '$FLOG') -ge 2 ]" 30 ||
	mw_fail "reconnect: mw-flowd did not subscribe again: $(tail -5 "$FLOG")"
mw_spawn app2 app_shimmed "$PY" -m http.server "$PORT" --directory "$MW_TMP/www"
mw_wait_for "ins_listens $PORT" 20 || mw_fail "reconnect: the app does not listen"
r=$(fetch f250000)
read -r lp req hdr body <<<"$r"
check_socket "$lp" "$req" "$hdr" "$body"
mw_log "reconnect: ok"

mw_stop flowd
grep '"type":"sockets"' "$REPORT" | tail -1 | grep -q '"partial":true' ||
	mw_fail "shutdown: no partial last interval: $(tail -2 "$REPORT")"
mw_log "shutdown: ok"
