#!/bin/bash
# test_flowd_mapi.sh - libmwmapi against a live mw-flowd: the tutorial's web counter, permissions
#
# mw-flowd watches the client's veth (flowd_lib.sh) and serves MAPI on a socket in
# the test's runtime dir; tcpdump captures the same veth. tshark reading the capture
# is the oracle for the counters (flowd_tshark.py), tcpdump's filters for the frames.
# (1) tools/mapi-webcount as root: BPF_FILTER "tcp port 80" then PKT_COUNTER and
#     BYTE_COUNTER equal tshark's count and byte sum for port 80; TOP by source
#     is the server, tshark's top sender; THRESHOLD at 100 packets fired with value 100;
#     DIST of destination ports is within 1 of tshark's distinct count; tools/mapi-capture
#     (BPF_FILTER on SYNs to or from port 80, TO_BUFFER, mapi_loop) prints exactly
#     the handshake frames tcpdump captured, none lost; with --anonymize (ANONYMIZE,
#     the tutorial's anonymised capture) the same frames' ports, flags and lengths,
#     neither real address, one consistent mapping, the two addresses' common
#     prefix kept (30 bits), and payloads cut after the TCP header; tools/mapi-anomaly
#     (FANOUT and PORTSCAN) flags the client for both, and nothing else, PORTSCAN's
#     attempts and closed-port RSTs (RST+ACK, sequence 0, to the client) equal
#     tcpdump's counts on the capture; tools/mapi-rates
#     (two flows, dst/src net SERVER/32): totals equal tshark's packets and bytes per
#     direction (endpoints,ip Rx/Tx of the server, and the ARP frames BPF's "net" matches); tools/mapi-sigsearch (STR_SEARCH "GET /blob"): matches and the frames
#     printed through TO_BUFFER are tcpdump's five GET requests, none at depth 60; tools/mw-top --batch
#     (connected before the traffic, stopped after a snapshot taken after it) shows
#     the server as the top source, and the five download's client ports (each
#     1 MB and headers) above port 80 among destination ports.
# (2) permissions (SO_PEERCRED): a user outside flowd.mapi_group is refused with
#     EACCES and the reason; the same user with the group creates and connects.
#     Per-sensor: with a group of flowd.mapi_sensor_groups allowed only the veth,
#     the same user creates a flow over the veth, and is refused (EACCES, the
#     sensor named) over a second watched interface (a veth) and over both.
# (3) a scope naming an interface mw-flowd does not watch fails with ENODEV; a client
#     passing a descriptor on the socket gets EPERM (SO_PASSRIGHTS).
# (4) log rotation: the report moved away, SIGHUP, per-second lines go to a new file.
# (5) the watched interface is deleted: mw-flowd says so, does not spin on the
#     dead socket (CPU time stays low), keeps serving, and stops cleanly.
# (6) the flow and client tables (allocated at start): one process (libmwmapi through
#     ctypes) holds flowd.mapi_client_flows = 3 flows; its 4th is refused with ENOSPC
#     and the reason, the refusal is counted in the "mapi" line at shutdown, and
#     a flow closed frees its slot for the next.
source "$(dirname "$0")/lib.sh"

mw_require_root
mw_require_cmd tcpdump tshark curl nc ip timeout setpriv
source "$(dirname "$0")/flowd_lib.sh"
TSHARK=$(dirname "$0")/flowd_tshark.py
WEBCOUNT=$MW_BUILD_DIR/tools/mapi-webcount
[ -x "$WEBCOUNT" ] || mw_fail "mapi-webcount is not built ($WEBCOUNT missing)"
CAPTURE=$MW_BUILD_DIR/tools/mapi-capture
[ -x "$CAPTURE" ] || mw_fail "mapi-capture is not built ($CAPTURE missing)"
ANOMALY=$MW_BUILD_DIR/tools/mapi-anomaly
[ -x "$ANOMALY" ] || mw_fail "mapi-anomaly is not built ($ANOMALY missing)"
RATES=$MW_BUILD_DIR/tools/mapi-rates
[ -x "$RATES" ] || mw_fail "mapi-rates is not built ($RATES missing)"
SIGSEARCH=$MW_BUILD_DIR/tools/mapi-sigsearch
[ -x "$SIGSEARCH" ] || mw_fail "mapi-sigsearch is not built ($SIGSEARCH missing)"
SYNS='tcp port 80 and tcp[tcpflags] & tcp-syn != 0'
GROUP=mwfl$$
mw_group_add "$GROUP"
GID=$(getent group "$GROUP" | cut -d: -f3)
VGROUP=mwflv$$
mw_group_add "$VGROUP"
VGID=$(getent group "$VGROUP" | cut -d: -f3)
flowd_topology
DUM=$MW_PREFIX-dm
ip -n "$NS_CLI" link add "$DUM" type veth peer name "$DUM"p || mw_fail "no second interface"
ip -n "$NS_CLI" link set "$DUM" up

SOCK=$MW_RUNTIME_DIR/flowd.sock
export MW_MAPI_SOCKET=$SOCK
mw_write_config "$MW_TMP/flowd.conf" "flowd: { interfaces = [ \"$VC\", \"$DUM\" ]; inside = [ \"$SRV_IP/32\" ];
	report_file = \"$MW_TMP/report.json\"; mapi_socket = \"$SOCK\"; mapi_group = \"$GROUP\";
	mapi_sensor_groups = [ \"$VGROUP:$VC\" ]; mapi_client_flows = 3;
	subuid_file = \"$MW_TMP/subuid\"; };"
# One owner's subordinate uids (a rootless container's): one MAPI user, section (6).
echo "mwsub$$:700000:10" >"$MW_TMP/subuid"
PCAP=$MW_TMP/traffic.pcap
mw_spawn tcpdump ip netns exec "$NS_CLI" tcpdump -i "$VC" -nn -U -B 32768 -w "$PCAP"
mw_wait_for "[ \$(packet_sockets) -ge 1 ]" || mw_fail "tcpdump did not start"
mw_spawn flowd ip netns exec "$NS_CLI" "$FLOWD" -c "$MW_TMP/flowd.conf"
mw_wait_for "grep -q 'MAPI on $SOCK' '$(mw_logfile flowd)'" || mw_fail "mw-flowd not serving MAPI"

# --- (1) the web counter ---------------------------------------------------------------
mw_spawn webcount "$WEBCOUNT" "$VC" 100
mw_wait_for "grep -qx connected '$(mw_logfile webcount)'" || mw_fail "mapi-webcount did not connect"
mw_spawn capture "$CAPTURE" "$VC" "$SYNS" 10
mw_wait_for "grep -qx connected '$(mw_logfile capture)'" || mw_fail "mapi-capture did not connect"
mw_spawn anomaly "$ANOMALY" "$VC" 30 3600
mw_wait_for "grep -qx connected '$(mw_logfile anomaly)'" || mw_fail "mapi-anomaly did not connect"
mw_spawn anoncap "$CAPTURE" --anonymize "a test key" "$VC" "$SYNS" 10
mw_spawn anonbig "$CAPTURE" --anonymize "a test key" "$VC" "tcp src port 80 and greater 1000" 5
mw_wait_for "grep -qx connected '$(mw_logfile anoncap)' && grep -qx connected '$(mw_logfile anonbig)'" ||
	mw_fail "mapi-capture --anonymize did not connect: $(cat "$(mw_logfile anoncap)")"
mw_spawn rates "$RATES" "$VC" "$SRV_IP/32" 1
mw_spawn sigsearch "$SIGSEARCH" "$VC" "tcp dst port 80" "GET /blob" 0 0 5
mw_spawn sigmiss "$SIGSEARCH" "$VC" "tcp dst port 80" "GET /blob" 0 60
mw_wait_for "grep -qx connected '$(mw_logfile rates)' && grep -qx connected '$(mw_logfile sigsearch)' &&
	grep -qx connected '$(mw_logfile sigmiss)'" || mw_fail "mapi-rates/mapi-sigsearch did not connect"
MWTOP=$MW_BUILD_DIR/tools/mw-top
[ -x "$MWTOP" ] || mw_fail "mw-top is not built ($MWTOP missing)"
# mw-top runs from before the traffic (connected) until a snapshot taken after it
# (TOP published by the 1 s clock), then is stopped: its last snapshot holds all of it.
mw_spawn top_src "$MWTOP" --batch 1000 --key src "$VC"
mw_spawn top_port "$MWTOP" --batch 1000 --key port --filter "tcp" "$VC"
mw_wait_for "grep -qx connected '$(mw_logfile top_src)' && grep -qx connected '$(mw_logfile top_port)'" ||
	mw_fail "mw-top did not connect: $(cat "$(mw_logfile top_src)" "$(mw_logfile top_port)")"
flowd_traffic
# The veth is silent now (flowd_lib.sh pins ARP): the capture stopped here holds
# every frame the tools will count. tshark on it is the oracle for the counters
# (flowd_tshark.py mapi: what the BPF filters "tcp port 80", "dst/src net
# SERVER/32" match, from its io,stat, endpoints,ip and ARP fields).
mw_stop tcpdump
flowd_capture_complete
"$PY" "$TSHARK" read "$PCAP" "$SRV_IP" >"$MW_TMP/tshark.txt" || mw_fail "tshark could not read the capture"
ts=$("$PY" "$TSHARK" "$MW_TMP/tshark.txt" mapi "$SRV_IP") || mw_fail "tshark's tables: $ts"
tval() { echo "$ts" | sed -n "s/^$1=//p"; }
web=$(tval web_pkts)
[ "$web" -gt 200 ] || mw_fail "too little web traffic captured ($web packets)"
# mw-flowd may still be working through its ring (a sanitizer build on a loaded
# machine): the tools are stopped once their per-second lines show tshark's
# totals (or after 30 s, and the checks below say what was missing).
mw_wait_for "grep '^web_pkts=' '$(mw_logfile webcount)' | tail -1 |
	grep -q '^web_pkts=$web web_bytes=$(tval web_bytes) ' &&
	grep '^in_Bps=' '$(mw_logfile rates)' | tail -1 |
	grep -q ' in_bytes=$(tval in_bytes) out_bytes=$(tval out_bytes)\$' &&
	[ \$(grep -c '^match ' '$(mw_logfile sigsearch)') -ge 5 ]" 30 ||
	mw_log "the tools' counts did not reach tshark's in 30 s"
sleep 1.1 # one more per-second read by mapi-sigsearch (sigmiss) and the TOP clock
top_snaps=$(grep -c '^--$' "$(mw_logfile top_port)")
mw_stop webcount
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mapi-webcount exited $MW_EXIT_STATUS"
for t in rates sigsearch sigmiss; do
	mw_stop $t
	[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "$t exited $MW_EXIT_STATUS: $(cat "$(mw_logfile $t)")"
done
last=$(grep '^web_pkts=' "$(mw_logfile webcount)" | tail -1)
mw_log "mapi-webcount: $last"
val() { echo "$last" | sed -n "s/.*\<$1=\([^ ]*\).*/\1/p"; }
[ "$(val web_pkts)" = "$web" ] || mw_fail "PKT_COUNTER $(val web_pkts) != tshark's $web"
[ "$(val web_bytes)" = "$(tval web_bytes)" ] || mw_fail "BYTE_COUNTER $(val web_bytes) != tshark's $(tval web_bytes)"
if [ "$(val top_src)" != "$SRV_IP" ] || [ "$(tval top_tx)" != "$SRV_IP" ]; then
	mw_fail "TOP source $(val top_src), tshark's top sender $(tval top_tx), not $SRV_IP"
fi
if [ "$(val threshold_fired)" != 1 ] || [ "$(val threshold_value)" != 100 ]; then
	mw_fail "THRESHOLD did not fire at 100: $last"
fi
d=$(val dist_dports) dports=$(tval web_dports)
if [ "$d" -lt $((dports - 1)) ] || [ "$d" -gt $((dports + 1)) ]; then
	mw_fail "DIST $d, tshark sees $dports ports"
fi
# mapi-rates: per direction, the totals equal tshark's for the same filter; the
# per-second rates add up to no more than the totals and show the traffic.
total=$(grep '^total ' "$(mw_logfile rates)")
mw_log "mapi-rates: $total"
for d in in out; do
	pk=$(tval "${d}_pkts") by=$(tval "${d}_bytes")
	echo "$total" | grep -q "\<${d}_pkts=$pk\>" || mw_fail "mapi-rates $d packets: $total, tshark $pk"
	echo "$total" | grep -q "\<${d}_bytes=$by\>" || mw_fail "mapi-rates $d bytes: $total, tshark $by"
	sum=$(sed -n "s/.*\<${d}_Bps=\([0-9]*\).*/\1/p" "$(mw_logfile rates)" | awk '{s += $1} END {print s + 0}')
	max=$(sed -n "s/.*\<${d}_Bps=\([0-9]*\).*/\1/p" "$(mw_logfile rates)" | sort -n | tail -1)
	[ "$sum" -le "$by" ] || mw_fail "mapi-rates: $d rates add up to $sum > the $by bytes"
	[ "${max:-0}" -gt 0 ] || mw_fail "mapi-rates: no $d rate above 0: $(cat "$(mw_logfile rates)")"
done
[ "$(echo "$total" | sed -n 's/.*out_bytes=\([0-9]*\).*/\1/p')" -gt 5242880 ] ||
	mw_fail "mapi-rates: the five 1 MB downloads are not in out: $total"
# mapi-sigsearch: "GET /blob" anywhere in a frame to port 80 = the five requests,
# tcpdump's frames to port 80 whose TCP payload starts "GET "; the first five
# printed are those frames; within the first 60 bytes (headers only): none.
getf='tcp dst port 80 and tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420'
gets=$(tcpdump -nn -r "$PCAP" "$getf" 2>/dev/null | wc -l)
[ "$gets" = 5 ] || mw_fail "tcpdump saw $gets GET requests, not 5"
m=$(grep '^matches=' "$(mw_logfile sigsearch)" | tail -1)
[ "$m" = "matches=$gets" ] || mw_fail "mapi-sigsearch: $m, tcpdump $gets: $(cat "$(mw_logfile sigsearch)")"
tcpdump -nn -r "$PCAP" "$getf" 2>/dev/null |
	sed -n 's/.* IP \([0-9.]*\)\.\([0-9]*\) > \([0-9.]*\)\.\([0-9]*\): .*/match \1:\2 > \3:\4 proto=6/p' >"$MW_TMP/get.tcpdump"
sed -n 's/^\(match .* proto=6\) len=[0-9]*$/\1/p' "$(mw_logfile sigsearch)" >"$MW_TMP/get.mapi"
diff "$MW_TMP/get.tcpdump" "$MW_TMP/get.mapi" >"$MW_TMP/get.diff" ||
	mw_fail "mapi-sigsearch's matching frames differ from tcpdump's: $(cat "$MW_TMP/get.diff")"
[ "$(grep '^matches=' "$(mw_logfile sigmiss)" | tail -1)" = matches=0 ] ||
	mw_fail "STR_SEARCH depth 60 found the request line: $(cat "$(mw_logfile sigmiss)")"
mw_wait_for "! kill -0 $(mw_pid capture)" 15 || mw_fail "mapi-capture did not get its 10 frames"
mw_wait_for "[ \$(grep -c '^--\$' '$(mw_logfile top_port)') -gt $top_snaps ]" 10 ||
	mw_fail "mw-top printed no snapshot after the traffic: $(tail -n 14 "$(mw_logfile top_port)")"
for t in top_src top_port; do
	mw_stop $t
	[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "$t exited $MW_EXIT_STATUS: $(tail -n 14 "$(mw_logfile $t)")"
done
grep -q "^ 1 $SRV_IP " "$(mw_logfile top_src)" || mw_fail "mw-top: $SRV_IP never the top source: $(cat "$(mw_logfile top_src)")"
sed -n '/^top port/,/^--/p' "$(mw_logfile top_port)" | tail -n 12 >"$MW_TMP/top_port"
[ "$(sed -n 's/^ 6 \([0-9]*\) .*/\1/p' "$MW_TMP/top_port")" = 80 ] ||
	mw_fail "mw-top: port 80 not sixth after the five downloads' ports: $(cat "$MW_TMP/top_port")"
[ "$(awk '$1 <= 5 && $3 > 1048576' "$MW_TMP/top_port" | wc -l)" = 5 ] ||
	mw_fail "mw-top: the five downloads are not the top five ports: $(cat "$MW_TMP/top_port")"
tcpdump -nn -r "$PCAP" "$SYNS" 2>/dev/null |
	sed -n 's/.* IP \([0-9.]*\)\.\([0-9]*\) > \([0-9.]*\)\.\([0-9]*\): .*/\1:\2 > \3:\4/p' >"$MW_TMP/syn.tcpdump"
sed -n 's/^\([0-9.:]* > [0-9.:]*\) flags=.* lost=0$/\1/p' "$(mw_logfile capture)" >"$MW_TMP/syn.mapi"
[ "$(wc -l <"$MW_TMP/syn.tcpdump")" = 10 ] || mw_fail "tcpdump saw $(wc -l <"$MW_TMP/syn.tcpdump") SYN frames, not 10"
diff "$MW_TMP/syn.tcpdump" "$MW_TMP/syn.mapi" >"$MW_TMP/syn.diff" ||
	mw_fail "TO_BUFFER frames differ from tcpdump's: $(cat "$MW_TMP/syn.diff")"
mw_wait_for "grep -q '^fanout $CLI_IP ' '$(mw_logfile anomaly)' && grep -q '^portscan $CLI_IP ' '$(mw_logfile anomaly)'" 15 ||
	mw_fail "FANOUT/PORTSCAN did not flag $CLI_IP: $(cat "$(mw_logfile anomaly)")"
mw_stop anomaly
awk -v c="$CLI_IP" '/^(fanout|portscan) / && $2 != c {bad = 1} END {exit bad}' "$(mw_logfile anomaly)" ||
	mw_fail "FANOUT/PORTSCAN flagged more than the client: $(cat "$(mw_logfile anomaly)")"
mw_log "anomalies: $(grep -v connected "$(mw_logfile anomaly)" | tr '\n' ';')"
# PORTSCAN's closed-port count: the RSTs answering a SYN (RST+ACK, sequence 0) to the
# client, as tcpdump saw them; attempts: its SYNs without ACK and UDP datagrams.
rsts=$(tcpdump -nn -r "$PCAP" "dst host $CLI_IP and tcp[tcpflags] & (tcp-rst|tcp-ack|tcp-syn) == (tcp-rst|tcp-ack) and tcp[4:4] = 0" 2>/dev/null | wc -l)
tries=$(tcpdump -nn -r "$PCAP" "src host $CLI_IP and ((tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn) or udp)" 2>/dev/null | wc -l)
got=$(awk -v c="$CLI_IP" '$1 == "final" && $2 == "portscan" && $3 == c {
	split($6, r, "="); split($5, a, "="); rej += r[2]; att += a[2]} END {print rej + 0, att + 0}' "$(mw_logfile anomaly)")
if [ "$rsts" -le 50 ] || [ "$got" != "$rsts $tries" ]; then
	mw_fail "PORTSCAN rejected/attempts: mapi $got, tcpdump $rsts $tries: $(grep final "$(mw_logfile anomaly)")"
fi
mw_log "portscan: $rsts closed-port RSTs and $tries attempts, as tcpdump"
mw_wait_for "! kill -0 $(mw_pid anoncap) && ! kill -0 $(mw_pid anonbig)" 15 ||
	mw_fail "mapi-capture --anonymize did not get its frames"
"$PY" - "$(mw_logfile capture)" "$(mw_logfile anoncap)" "$(mw_logfile anonbig)" "$CLI_IP" "$SRV_IP" <<'PYEOF' ||
import ipaddress, re, sys
plain, anon, big, cli, srv = sys.argv[1:]
pat = re.compile(r"^([0-9.]+):(\d+) > ([0-9.]+):(\d+) (flags=\S+ len=\d+ cap=\d+ lost=0)$")
rows = lambda f: [pat.match(l).groups() for l in open(f) if pat.match(l)]
p, a = rows(plain), rows(anon)
assert len(p) == 10 and len(a) == 10, (len(p), len(a))
mapping = {}
for (ps, psp, pd, pdp, rest), (as_, asp, ad, adp, arest) in zip(p, a):
    assert (psp, pdp, rest) == (asp, adp, arest), "ports, flags, lengths differ"
    for real, fake in ((ps, as_), (pd, ad)):
        assert mapping.setdefault(real, fake) == fake, "the mapping is not consistent"
fakes = set(mapping.values())
assert not fakes & {cli, srv}, f"a real address left: {mapping}"
common = lambda x, y: 32 - (int(ipaddress.ip_address(x)) ^ int(ipaddress.ip_address(y))).bit_length()
assert common(mapping[cli], mapping[srv]) == common(cli, srv) == 30, mapping
b = rows(big)
assert len(b) == 5, b
for r in b:
    ln, cap = map(int, re.search(r"len=(\d+) cap=(\d+)", r[4]).groups())
    assert ln > 1000 and cap <= 14 + 20 + 60 and cap >= 54, (ln, cap)
    assert r[0] == mapping[srv], "another mapping in another flow with the same key"
print(f"anonymised: {mapping}")
PYEOF
	mw_fail "mapi-capture --anonymize: $(cat "$(mw_logfile anoncap)" "$(mw_logfile anonbig)")"

# --- (2) permissions ---------------------------------------------------------------------
out=$(setpriv --reuid nobody --regid nogroup --clear-groups "$WEBCOUNT" "$VC" 2>&1) && mw_fail "nobody was let in: $out"
echo "$out" | grep -q "Permission denied (mw-flowd: not root nor in flowd.mapi_group)" ||
	mw_fail "refusal not explained: $out"
mw_spawn member setpriv --reuid nobody --regid nogroup --groups "$GID" "$WEBCOUNT" "$VC"
mw_wait_for "grep -qx connected '$(mw_logfile member)'" || mw_fail "a member of $GROUP could not connect"
mw_stop member
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "the member's mapi-webcount exited $MW_EXIT_STATUS"
mw_spawn vmember setpriv --reuid nobody --regid nogroup --groups "$VGID" "$WEBCOUNT" "$VC"
mw_wait_for "grep -qx connected '$(mw_logfile vmember)'" ||
	mw_fail "a member of $VGROUP could not use $VC: $(cat "$(mw_logfile vmember)")"
mw_stop vmember
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "the $VGROUP member's mapi-webcount exited $MW_EXIT_STATUS"
NOBODY=$(id -u nobody)
for scope in "$DUM" "$VC,$DUM"; do
	out=$(setpriv --reuid nobody --regid nogroup --groups "$VGID" "$WEBCOUNT" "$scope" 2>&1) &&
		mw_fail "a member of $VGROUP was let use $scope: $out"
	echo "$out" | grep -qF "Permission denied (sensor \"$DUM\" is not allowed to uid $NOBODY (flowd.mapi_sensor_groups))" ||
		mw_fail "per-sensor refusal over $scope not explained: $out"
done
grep -q "mapi: sensor \"$DUM\" is not allowed to uid $NOBODY" "$(mw_logfile flowd)" ||
	mw_fail "the per-sensor refusal was not logged"

# --- (3) scope -----------------------------------------------------------------------------
out=$("$WEBCOUNT" "lo,$VC" 2>&1) && mw_fail "a scope with an unwatched interface was accepted"
echo "$out" | grep -q 'No such device (no live sensor "lo")' || mw_fail "bad scope not explained: $out"
# A client may not pass mw-flowd a descriptor (one not taken is closed in mw-flowd,
# and that close may wait): the socket refuses them (SO_PASSRIGHTS 0).
out=$("$PY" - "$SOCK" <<'PYEOF'
import array, errno, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
r, w = os.pipe()
try:
    s.sendmsg([b"x" * 8], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]))])
    print("sent")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
PYEOF
)
[ "$out" = EPERM ] || mw_fail "a descriptor passed to the MAPI socket: $out, want EPERM"

# --- (6) the flow and client tables ----------------------------------------------------
MAPI_LIB=$MW_BUILD_DIR/mapi/libmwmapi.so MAPI_SCOPE=$VC python3 - <<'PYEOF' || mw_fail "flowd.mapi_client_flows not enforced"
import ctypes, os
lib = ctypes.CDLL(os.environ["MAPI_LIB"], use_errno=True)
lib.mapi_last_error.restype = ctypes.c_char_p
scope = os.environ["MAPI_SCOPE"].encode()
fds = [lib.mapi_create_flow(scope) for _ in range(3)]
assert all(fd >= 0 for fd in fds), f"3 flows within the limit: {fds} {lib.mapi_last_error()}"
assert all(lib.mapi_connect(fd) == 0 for fd in fds), lib.mapi_last_error()
fd = lib.mapi_create_flow(scope)
err, msg = ctypes.get_errno(), lib.mapi_last_error().decode()
assert fd < 0 and err == 28, f"4th flow: fd {fd} errno {err} {msg}"
assert msg == "mw-flowd: too many flows for this process (flowd.mapi_client_flows)", msg
lib.mapi_close_flow(fds[0])
fd = lib.mapi_create_flow(scope)
assert fd >= 0, f"a freed slot not reused: {lib.mapi_last_error()}"
print("client table: 3 flows held, the 4th refused, a freed slot reused")
PYEOF

# Two processes under two uids of one owner's subordinate range share that user's
# 3 flows: the second gets one, not three of its own.
cat >"$MW_TMP/flows.py" <<'PYEOF'
import ctypes, os, sys, time
lib = ctypes.CDLL(os.environ["MAPI_LIB"], use_errno=True)
lib.mapi_last_error.restype = ctypes.c_char_p
scope = os.environ["MAPI_SCOPE"].encode()
for i in range(int(sys.argv[1])):
    fd = lib.mapi_create_flow(scope)
    if fd < 0 or lib.mapi_connect(fd) != 0:
        print(f"refused {i}: {lib.mapi_last_error().decode()}", flush=True)
        break
    print(f"flow {i}", flush=True)
if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))  # holding them, until stopped
PYEOF
export MAPI_LIB=$MW_BUILD_DIR/mapi/libmwmapi.so MAPI_SCOPE=$VC
# (the script comes on stdin: those uids need read no path of ours)
mw_spawn sub1 sh -c "exec setpriv --reuid 700001 --regid nogroup --groups $GID $PY - 2 60 <'$MW_TMP/flows.py'"
mw_wait_for "grep -q '^flow 1' '$(mw_logfile sub1)'" || mw_fail "subordinate uid 700001: $(cat "$(mw_logfile sub1)")"
out=$(timeout 30 setpriv --reuid 700002 --regid nogroup --groups "$GID" "$PY" - 3 <"$MW_TMP/flows.py" 2>&1)
[ "$out" = "flow 0
refused 1: mw-flowd: too many flows for this user (flowd.mapi_client_flows)" ] ||
	mw_fail "uid 700002, of the same owner's range, was not held to that user's flows: $out"
mw_stop sub1
mw_log "subordinate uids of one owner: one MAPI user"

# --- (4) SIGHUP reopens the report ------------------------------------------------------
mw_wait_for "grep -q '\"type\":\"second\"' '$MW_TMP/report.json'" || mw_fail "no per-second lines in the report"
mv "$MW_TMP/report.json" "$MW_TMP/report.json.1"
kill -HUP "$(mw_pid flowd)"
mw_wait_for "grep -q '\"type\":\"second\"' '$MW_TMP/report.json'" || mw_fail "SIGHUP did not reopen the report"
grep -q 'report file reopened' "$(mw_logfile flowd)" || mw_fail "the reopen was not logged"

# --- (5) the sensor goes away -----------------------------------------------------------
ip -n "$NS_CLI" link del "$VC"
mw_wait_for "grep -q 'sensor $VC: interface removed; closed' '$(mw_logfile flowd)'" ||
	mw_fail "mw-flowd did not notice its interface going away"
cpu0=$(awk '{print $14 + $15}' "/proc/$(pgrep -f "mw-flowd -c $MW_TMP/flowd.conf")/stat")
sleep 1
cpu1=$(awk '{print $14 + $15}' "/proc/$(pgrep -f "mw-flowd -c $MW_TMP/flowd.conf")/stat")
[ $((cpu1 - cpu0)) -lt 20 ] || mw_fail "mw-flowd spins after losing its interface ($((cpu1 - cpu0)) ticks in 1 s)"
mw_stop flowd
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mw-flowd exited $MW_EXIT_STATUS"
mapi_line=$(grep '"type":"mapi"' "$MW_TMP/report.json" | tail -1)
echo "$mapi_line" | grep -Eq '"clients":\{"used":[0-9]+,"max":16,"drops":0\},"client_flows":\{"max":3,"drops":2\}' ||
	mw_fail "the refusal is not counted in the mapi line: $mapi_line"
echo "$mapi_line" | grep -Eq '"flows":\{"used":[0-9]+,"max":64,"drops":0\}' || mw_fail "flow table: $mapi_line"
mw_log "PASS"
