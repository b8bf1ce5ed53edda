#!/usr/bin/env bash
# test_netflow_console.sh - mw-console against mw-pvm's Netflow server: JSON stream, mitigation close, AddrBlock, get/set, and the interactive console under tmux
#
# Topology: mw_appliance_up (mw-pvm, mw-ins in ns ins 10.231.0.2, clients in ns cli 10.231.0.1).
# Checks:
#  (1) `mw-console --json` sees create, bind, accept, recv, send and close for one curl
#      request, with the byte counts curl itself reports and the real endpoints;
#  (2) the seed's mitigation scenario: a shimmed `nc -l` sends a large file to a slow
#      client in cli; `mw-console close ID` mid-way ends the client early with fewer
#      bytes, a close observation follows, a second close of the id is EBADF;
#  (3) `mw-console block` of the client address: curl cannot connect; unblock: it can;
#  (4) get/set round trips of sndbuf and nodelay on the app's listener; unknown id fails;
#      the server found by -c CONFIG and by --server; congctl; bad command lines;
#  (5) the interactive console in a detached tmux session: o, f, s, p, c + id, q; the
#      table shows the connection (state estab), f filters by state, the close reaches it, the terminal settings are restored;
#      SIGTERM restores them too.
source "$(dirname "$0")/lib.sh"

mw_require_root
mw_require_cmd ip curl nc tmux ss timeout stty head setpriv groupadd
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
# MW_CONSOLE: another mw-console (an ASan build's) against this build's appliance.
CON=${MW_CONSOLE:-$MW_BUILD_DIR/tools/mw-console}
[ -x "$CON" ] || mw_fail "mw-console is not built ($CON missing)"

# tmux runs its own server, outside lib.sh's process bookkeeping: end it first.
TMUX_SOCK=mwcon$$
tmuxc() { tmux -L "$TMUX_SOCK" -f /dev/null "$@"; }
trap 'rc=$?; tmux -L "$TMUX_SOCK" kill-server >/dev/null 2>&1; _mw_cleanup $rc' EXIT

OBS_GROUP=mwo$$
CTL_GROUP=mwc$$
mw_group_add "$OBS_GROUP"
mw_group_add "$CTL_GROUP"
OBS_GID=$(getent group "$OBS_GROUP" | cut -d: -f3)
CTL_GID=$(getent group "$CTL_GROUP" | cut -d: -f3)
MW_PVM_CONF="netflow_group = \"$OBS_GROUP\"; netflow_control_group = \"$CTL_GROUP\";" mw_appliance_up
KS=$MW_RUNTIME_DIR/store
mw_wait_for "[ -s '$KS/mw/pvm/netflow' ]" 10 ||
	mw_fail "mw-pvm did not publish its Netflow address at $KS/mw/pvm/netflow"
mw_log "Netflow server at $(cat "$KS/mw/pvm/netflow")"
con() { "$CON" -k "$KS" "$@"; }

# Helpers over the JSON stream (one object per line).
NF=$MW_TMP/nf.py
cat >"$NF" <<'EOF'
import json, sys

def load(path):
    out = []
    with open(path) as f:
        for line in f:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out

def port(ep):
    return int(ep.rsplit(":", 1)[1]) if ep else None

cmd, path = sys.argv[1], sys.argv[2]
obs = load(path)
if cmd == "conn":  # the newest connection accepted on local port P: its id
    ids = [o["extra"] for o in obs if o["obs"] == "accept" and port(o["local"]) == int(sys.argv[3])]
    if not ids:
        sys.exit(1)
    print(ids[-1])
elif cmd == "listener":  # the socket bound to local port P: its id
    ids = [o["sock"] for o in obs if o["obs"] == "bind" and port(o["local"]) == int(sys.argv[3])]
    if not ids:
        sys.exit(1)
    print(ids[-1])
elif cmd == "closed":  # a close observation of socket ID exists
    sys.exit(0 if any(o["obs"] == "close" and o["sock"] == sys.argv[3] for o in obs) else 1)
elif cmd == "curl":  # one curl request: P local port, CP curl's port, IN, OUT bytes
    lport, cport, want_in, want_out = map(int, sys.argv[3:7])
    def fail(msg):
        print("FAIL: " + msg)
        sys.exit(1)
    lid = [o["sock"] for o in obs if o["obs"] == "bind" and port(o["local"]) == lport]
    if not lid:
        fail("no bind observation on port %d" % lport)
    if not any(o["obs"] == "create" and o["sock"] == lid[-1] for o in obs):
        fail("no create observation of the listener %s" % lid[-1])
    acc = [o for o in obs if o["obs"] == "accept" and port(o["peer"]) == cport]
    if len(acc) != 1:
        fail("%d accept observations with peer port %d" % (len(acc), cport))
    a = acc[0]
    conn = a["extra"]
    if a["sock"] != lid[-1]:
        fail("accept on socket %s, the listener is %s" % (a["sock"], lid[-1]))
    if a["local"] != "10.231.0.2:%d" % lport or a["peer"] != "10.231.0.1:%d" % cport:
        fail("accept endpoints %s <- %s" % (a["local"], a["peer"]))
    mine = [o for o in obs if o["sock"] == conn]
    kinds = [o["obs"] for o in mine]
    for k in ("recv", "send", "close"):
        if k not in kinds:
            fail("no %s observation of connection %s (saw %s)" % (k, conn, kinds))
    if kinds[-1] != "close":
        fail("connection %s: last observation %s, not close" % (conn, kinds[-1]))
    for o in mine:
        if o["local"] != "10.231.0.2:%d" % lport or o["peer"] != "10.231.0.1:%d" % cport:
            fail("%s of %s has endpoints %s <-> %s" % (o["obs"], conn, o["local"], o["peer"]))
    last = mine[-1]
    if last["bytes_in"] != want_in or last["bytes_out"] != want_out:
        fail("at close: in %d out %d, curl says in %d out %d"
             % (last["bytes_in"], last["bytes_out"], want_in, want_out))
    prev = 0
    for o in mine:
        if o["bytes_out"] < prev:
            fail("bytes_out went down: %s" % [m["bytes_out"] for m in mine])
        prev = o["bytes_out"]
    recv = [o for o in mine if o["obs"] == "recv"]
    if recv[-1]["bytes_in"] != want_in:
        fail("last recv: bytes_in %d, want %d" % (recv[-1]["bytes_in"], want_in))
    print(conn)
EOF

# A client that reads slowly (64 KiB every 20 ms) until EOF, a reset or 60 s; it
# writes "BYTES END" to its output file when it stops.
SLOW=$MW_TMP/slow.py
cat >"$SLOW" <<'EOF'
import socket, sys, time
host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=10)
total, end, deadline = 0, "timeout", time.time() + 60
while time.time() < deadline:
    try:
        b = s.recv(65536)
    except (ConnectionResetError, socket.timeout) as e:
        end = type(e).__name__
        break
    if not b:
        end = "eof"
        break
    total += len(b)
    time.sleep(0.02)
with open(out, "w") as f:
    f.write("%d %s\n" % (total, end))
EOF

# --- (1) one curl request, observed -----------------------------------------------
mw_spawn json "$CON" -k "$KS" --json
mw_wait_for "grep -q 'netflow: consumer .* connected' '$PVM_LOG'" 10 ||
	mw_fail "mw-console --json did not connect to the Netflow server"
JSONLOG=$(mw_logfile json)
WWW=$MW_TMP/www
mkdir -p "$WWW"
head -c 300000 /dev/urandom >"$WWW/file"
mw_spawn http shimmed "$PY" -m http.server 8080 --bind 0.0.0.0 --directory "$WWW"
mw_wait_for "ins_listens 8080" 15 || mw_fail "the shimmed HTTP server does not listen"
W=$(in_cli curl -sf --max-time 20 -o "$MW_TMP/got" \
	-w '%{local_port} %{size_request} %{size_header} %{size_download}' \
	http://10.231.0.2:8080/file) || mw_fail "curl through the appliance failed"
cmp -s "$MW_TMP/got" "$WWW/file" || mw_fail "downloaded file differs"
read -r CPORT REQ HDR BODY <<<"$W"
mw_log "curl: port $CPORT, request $REQ bytes, response $HDR + $BODY bytes"
mw_wait_for "grep -q '\"obs\":\"close\"' '$JSONLOG' && $PY '$NF' curl '$JSONLOG' 8080 $CPORT $REQ $((HDR + BODY))" 10 ||
	mw_fail "$($PY "$NF" curl "$JSONLOG" 8080 "$CPORT" "$REQ" $((HDR + BODY)))"
CONN=$($PY "$NF" curl "$JSONLOG" 8080 "$CPORT" "$REQ" $((HDR + BODY)))
LISTENER=$($PY "$NF" listener "$JSONLOG" 8080)
mw_log "(1) JSON stream: create, bind, accept, recv, send, close of connection $CONN OK"

# --count N stops after N lines, each a JSON object.
rc=0
timeout 20 "$CON" -k "$KS" --json --count 3 >"$MW_TMP/three.json" &
cpid=$!
mw_wait_for "[ \$(grep -c 'netflow: consumer .* connected' '$PVM_LOG') -ge 2 ]" 10 ||
	mw_fail "the second consumer did not connect"
in_cli curl -sf --max-time 10 -o /dev/null http://10.231.0.2:8080/file || mw_fail "curl 2 failed"
wait "$cpid" || rc=$?
[ "$rc" = 0 ] || mw_fail "mw-console --json --count 3: exit $rc"
[ "$(wc -l <"$MW_TMP/three.json")" = 3 ] || mw_fail "--count 3 printed $(wc -l <"$MW_TMP/three.json") lines"
"$PY" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$MW_TMP/three.json" ||
	mw_fail "--count 3 output is not JSON lines"
mw_log "(1) --count OK"

# --- (2) mitigation close mid-transfer -------------------------------------------
BIG=$MW_TMP/big
head -c 100000000 /dev/zero >"$BIG"
mw_spawn ncbig shimmed timeout 90 sh -c "exec nc -N -l 9100 <'$BIG' >/dev/null"
mw_wait_for "ins_listens 9100" 10 || mw_fail "shimmed nc -l 9100 does not listen"
mw_spawn slow ip netns exec "$NS_CLI" "$PY" "$SLOW" 10.231.0.2 9100 "$MW_TMP/slow.out"
mw_wait_for "$PY '$NF' conn '$JSONLOG' 9100" 10 || mw_fail "no accept observation on port 9100"
BIGCONN=$($PY "$NF" conn "$JSONLOG" 9100)
mw_wait_for "grep -q '\"sock\":\"$BIGCONN\".*\"bytes_out\":[1-9]' '$JSONLOG'" 10 ||
	mw_fail "no send observation of connection $BIGCONN"
con close "$BIGCONN" || mw_fail "mw-console close $BIGCONN failed"
mw_wait_for "[ -s '$MW_TMP/slow.out' ]" 20 || mw_fail "the client did not end after the mitigation close"
read -r GOT END <"$MW_TMP/slow.out"
[ "$GOT" -lt 100000000 ] || mw_fail "the client got the whole file ($GOT bytes, $END)"
[ "$END" = eof ] || [ "$END" = ConnectionResetError ] || mw_fail "the client ended by $END"
mw_wait_for "$PY '$NF' closed '$JSONLOG' $BIGCONN" 10 || mw_fail "no close observation of $BIGCONN"
mw_wait_for "! kill -0 $(mw_pid ncbig) 2>/dev/null" 20 || mw_fail "the app (nc -l) did not end after the close"
out=$(con close "$BIGCONN" 2>&1) && mw_fail "a second close of $BIGCONN succeeded"
[ "$out" = "mw-console: close $BIGCONN: Bad file descriptor (no such socket)" ] || mw_fail "second close said: $out"
mw_log "(2) mitigation close: client ended after $GOT of 100000000 bytes ($END) OK"

# --- (3) AddrBlock of the client address ------------------------------------------
con block 10.231.0.1 || mw_fail "mw-console block 10.231.0.1 failed"
in_cli curl -sf --max-time 3 -o /dev/null http://10.231.0.2:8080/file &&
	mw_fail "a blocked client could still fetch"
con unblock 10.231.0.1 || mw_fail "mw-console unblock 10.231.0.1 failed"
mw_wait_for "in_cli curl -sf --max-time 3 -o /dev/null http://10.231.0.2:8080/file" 10 ||
	mw_fail "an unblocked client cannot fetch"
out=$(con block 10.231.0 2>&1) && mw_fail "block of a bad address succeeded"
[ "$out" = "mw-console: block: '10.231.0' is not an IPv4 address (dotted quad)" ] ||
	mw_fail "bad address said: $out"
mw_log "(3) block/unblock OK"

# --- (4) get/set round trips on the listener --------------------------------------
v=$(con get "$LISTENER" sndbuf) || mw_fail "get sndbuf failed"
[ "$v" -gt 0 ] || mw_fail "get sndbuf: '$v'"
con set "$LISTENER" sndbuf 65536 || mw_fail "set sndbuf failed"
v=$(con get "$LISTENER" SndBuf) || mw_fail "get sndbuf failed"
# Linux doubles what is set (socket(7)).
[ "$v" = 131072 ] || mw_fail "sndbuf after set 65536: $v, want 131072"
for want in 1 0 1; do
	con set "$LISTENER" nodelay "$want" || mw_fail "set nodelay $want failed"
	v=$(con get "$LISTENER" nodelay) || mw_fail "get nodelay failed"
	[ "$v" = "$want" ] || mw_fail "nodelay after set $want: $v"
done
out=$(con get 999999 sndbuf 2>&1) && mw_fail "get on an unknown socket succeeded"
[ "$out" = "mw-console: get 999999 SndBuf: Bad file descriptor (no such socket)" ] || mw_fail "unknown socket said: $out"
# The same server found through the daemons' configuration, and given directly.
v=$("$CON" -c "$CONF" get "$LISTENER" sndbuf) || mw_fail "get with -c $CONF failed"
[ "$v" = 131072 ] || mw_fail "get with -c: $v"
v=$("$CON" --server "$(cat "$KS/mw/pvm/netflow")" get "$LISTENER" sndbuf) ||
	mw_fail "get with --server failed"
[ "$v" = 131072 ] || mw_fail "get with --server: $v"
v=$(con get "$LISTENER" error) || mw_fail "get error failed"
[ "$v" = 0 ] || mw_fail "SO_ERROR of the listener: $v"
# INS-wide congestion control: a known algorithm, then one the kernel lacks.
con congctl cubic || mw_fail "congctl cubic failed"
out=$(con congctl nosuchalgo 2>&1) && mw_fail "congctl of an unknown algorithm succeeded"
case $out in "mw-console: congctl nosuchalgo: "*) ;; *) mw_fail "congctl nosuchalgo said: $out" ;; esac
mw_log "congctl nosuchalgo: $out"
# Bad command lines: one line, exit 1, nothing sent.
out=$(con frob 2>&1) && mw_fail "an unknown command succeeded"
[ "$out" = "mw-console: unknown command 'frob' (try --help)" ] || mw_fail "frob said: $out"
out=$(con set "$LISTENER" sndbuf lots 2>&1) && mw_fail "set of a bad value succeeded"
[ "$out" = "mw-console: set: invalid value 'lots' for SndBuf" ] || mw_fail "bad value said: $out"
out=$("$CON" -k "$MW_TMP/nowhere" close 1 2>&1) && mw_fail "close without a keystore succeeded"
[ ! -e "$MW_TMP/nowhere" ] || mw_fail "mw-console created the keystore root it was pointed at"
mw_log "(4) get/set sndbuf and nodelay, -c, --server, congctl, bad arguments OK"

# --- (4b) without root: members of the Netflow groups, through -c alone ---------------
# The keystore is root's: mw-console finds the AF_UNIX socket from the configuration.
as_user() { setpriv --reuid=nobody --regid=nogroup "$@"; }
v=$(as_user --groups "$OBS_GID" "$CON" -c "$CONF" get "$LISTENER" sndbuf) ||
	mw_fail "an observe member cannot read"
[ "$v" = "$(con get "$LISTENER" sndbuf)" ] || mw_fail "observe member read $v"
out=$(as_user --groups "$OBS_GID" "$CON" -c "$CONF" set "$LISTENER" sndbuf 65536 2>&1) &&
	mw_fail "an observe member could set an attribute"
case $out in "mw-console: set $LISTENER SndBuf: Operation not permitted (an observe consumer may not write"*) ;;
*) mw_fail "observe member's set said: $out" ;; esac
out=$(as_user --groups "$OBS_GID" "$CON" -c "$CONF" close "$LISTENER" 2>&1) &&
	mw_fail "an observe member could close a socket"
[ "$(con get "$LISTENER" isopen)" = 1 ] || mw_fail "the listener was closed by an observe member"
# (the member's earlier commands connected too: wait for one more observe consumer)
N0=$(grep -c 'consumer uid 65534 .* role observe' "$PVM_LOG")
timeout 20 setpriv --reuid=nobody --regid=nogroup --groups "$OBS_GID" "$CON" -c "$CONF" --json --count 1 \
	>"$MW_TMP/member.json" &
MEMBER=$!
mw_wait_for "[ \$(grep -c 'consumer uid 65534 .* role observe' '$PVM_LOG') -gt $N0 ]" 10 ||
	mw_fail "the member's --json did not connect"
in_cli curl -sf --max-time 10 -o /dev/null http://10.231.0.2:8080/file || mw_fail "curl for the member failed"
wait "$MEMBER" || mw_fail "the observe member's --json failed"
"$PY" -c 'import json,sys; assert json.loads(open(sys.argv[1]).readline())["obs"]' "$MW_TMP/member.json" ||
	mw_fail "the observe member's --json printed: $(cat "$MW_TMP/member.json")"
as_user --groups "$CTL_GID" "$CON" -c "$CONF" set "$LISTENER" nodelay on || mw_fail "a control member cannot set"
out=$(as_user --clear-groups "$CON" -c "$CONF" get "$LISTENER" sndbuf 2>&1) && mw_fail "a stranger could read: $out"
case $out in "mw-console: get $LISTENER SndBuf: the server closed the connection without answering"*) ;;
*) mw_fail "the stranger was told: $out" ;; esac
[ "$(echo "$out" | wc -l)" = 1 ] || mw_fail "the stranger's error is not one line: $out"
mw_log "(4b) without root: observe member reads and watches, cannot write; control member writes; stranger refused ($out)"

# --- (5) the interactive console under tmux ---------------------------------------
mw_spawn ncbig2 shimmed timeout 90 sh -c "exec nc -N -l 9101 <'$BIG' >/dev/null"
mw_wait_for "ins_listens 9101" 10 || mw_fail "shimmed nc -l 9101 does not listen"
TT=$MW_TMP/tty
mkdir -p "$TT"
tmuxc new-session -d -s con -x 160 -y 48 \
	"stty -g >'$TT/before'; '$CON' -k '$KS'; echo \$? >'$TT/rc'; stty -g >'$TT/after'; sleep 600" ||
	mw_fail "tmux new-session failed"
pane() { tmuxc capture-pane -p -t con; }
mw_wait_for "pane | grep -q 'mw-console  monitor'" 10 || mw_fail "the console did not draw: $(pane)"
rm -f "$MW_TMP/slow.out"
mw_spawn slow2 ip netns exec "$NS_CLI" "$PY" "$SLOW" 10.231.0.2 9101 "$MW_TMP/slow.out"
mw_wait_for "$PY '$NF' conn '$JSONLOG' 9101" 10 || mw_fail "no accept observation on port 9101"
C2=$($PY "$NF" conn "$JSONLOG" 9101)
tmuxc send-keys -t con o
mw_wait_for "pane | grep -q 'monitor on: ok'" 10 || mw_fail "o got no answer: $(pane)"
# The live table: the connection's row with its endpoints and growing bytes_out.
C2X=$(printf '%#x' "$C2") # the table shows ids in hex, as the original console
mw_wait_for "pane | grep -Eq '^$C2X +10\.231\.0\.2:9101 +10\.231\.0\.1:[0-9]+ +estab +[0-9]+ +[1-9][0-9]* '" 10 ||
	mw_fail "the table has no row for connection $C2: $(pane)"
# f: filter by state (the connection's row goes, only listeners stay), then every row;
# s: the next order.
tmuxc send-keys -t con f
mw_wait_for "pane | grep -q 'Filter (address text'" 5 || mw_fail "f did not prompt: $(pane)"
tmuxc send-keys -t con listen Enter
mw_wait_for "pane | grep -Eq 'sockets match --filter listen\)'" 5 || mw_fail "f listen: $(pane)"
! pane | grep -Eq '^0x[0-9a-f]+ .* (estab|bound|new) ' || mw_fail "f listen kept other states: $(pane)"
! pane | grep -Eq '^$C2X ' || mw_fail "f listen kept the connection's row: $(pane)"
tmuxc send-keys -t con f Enter
mw_wait_for "pane | grep -q 'filter: off, every row'" 5 || mw_fail "an empty filter did not show all: $(pane)"
mw_wait_for "pane | grep -Eq '^$C2X +'" 5 || mw_fail "the connection's row did not come back: $(pane)"
tmuxc send-keys -t con s
mw_wait_for "pane | grep -q 'table order: rate'" 5 || mw_fail "s did not change the order: $(pane)"
tmuxc send-keys -t con p
mw_wait_for "pane | grep -q '^socket 0x[0-9a-f]*/$C2 10.231.0.2:9101 --> remote 10.231.0.1:'" 10 ||
	mw_fail "p did not list connection $C2: $(pane)"
tmuxc send-keys -t con c
mw_wait_for "pane | grep -q 'Socket id to close:'" 5 || mw_fail "c did not prompt: $(pane)"
tmuxc send-keys -t con "$C2" Enter
mw_wait_for "pane | grep -q 'close $C2: ok'" 10 || mw_fail "the close got no ok: $(pane)"
mw_wait_for "[ -s '$MW_TMP/slow.out' ]" 20 || mw_fail "the client did not end after the console's close"
read -r GOT END <"$MW_TMP/slow.out"
[ "$GOT" -lt 100000000 ] || mw_fail "the client got the whole file after the console's close"
mw_wait_for "! pane | grep -Eq '^$C2X '" 5 || mw_fail "the closed socket is still in the table: $(pane)"
tmuxc send-keys -t con h
mw_wait_for "pane | grep -q '^keys: h help'" 5 || mw_fail "h showed no help: $(pane)"
# m: observations printed as they come; M: no more.
tmuxc send-keys -t con m
mw_wait_for "pane | grep -q '^unmuted'" 5 || mw_fail "m did not unmute: $(pane)"
W=$(in_cli curl -sf --max-time 10 -o /dev/null -w '%{local_port}' http://10.231.0.2:8080/file) ||
	mw_fail "curl (unmuted) failed"
mw_wait_for "pane | grep -Eq '^accept +sock [0-9]+ new [0-9]+ 10\.231\.0\.2:8080 <- 10\.231\.0\.1:$W\$'" 5 ||
	mw_fail "the unmuted console did not print the accept from port $W: $(pane)"
tmuxc send-keys -t con M
mw_wait_for "pane | grep -q '^muted: '" 5 || mw_fail "M did not mute: $(pane)"
# b / u with the address typed at the prompt.
tmuxc send-keys -t con b
mw_wait_for "pane | grep -q 'Address to block:'" 5 || mw_fail "b did not prompt: $(pane)"
tmuxc send-keys -t con 10.231.0.1 Enter
mw_wait_for "pane | grep -q '^block 10.231.0.1: ok'" 10 || mw_fail "b: no ok: $(pane)"
in_cli curl -sf --max-time 3 -o /dev/null http://10.231.0.2:8080/file &&
	mw_fail "a client blocked from the console could still fetch"
tmuxc send-keys -t con u
mw_wait_for "pane | grep -q 'Address to unblock:'" 5 || mw_fail "u did not prompt: $(pane)"
tmuxc send-keys -t con 10.231.0.1 Enter
mw_wait_for "pane | grep -q '^unblock 10.231.0.1: ok'" 10 || mw_fail "u: no ok: $(pane)"
mw_wait_for "in_cli curl -sf --max-time 3 -o /dev/null http://10.231.0.2:8080/file" 10 ||
	mw_fail "a client unblocked from the console cannot fetch"
# c with an unknown id: the error is shown, the console goes on.
tmuxc send-keys -t con c 999999 Enter
mw_wait_for "pane | grep -q '^close 999999: Bad file descriptor'" 10 ||
	mw_fail "closing an unknown id showed no error: $(pane)"
# O: monitoring off, the table emptied.
tmuxc send-keys -t con O
mw_wait_for "pane | grep -q '^monitor off: ok'" 10 || mw_fail "O got no answer: $(pane)"
mw_wait_for "pane | grep -q 'monitor off  muted  0 open sockets'" 5 || mw_fail "O: $(pane)"
tmuxc send-keys -t con q
mw_wait_for "[ -s '$TT/rc' ]" 5 || mw_fail "q did not end the console: $(pane)"
[ "$(cat "$TT/rc")" = 0 ] || mw_fail "the console exited $(cat "$TT/rc") after q"
# The pane's shell writes rc before it runs stty -g for after: wait for that too.
mw_wait_for "[ -s '$TT/after' ]" 5 || mw_fail "the pane's shell did not record the settings after q"
cmp -s "$TT/before" "$TT/after" || mw_fail "terminal settings not restored after q"
mw_log "(5) interactive: table with states, f filter, s order, p, c + id, h, m/M, b/u, O, q OK (client ended after $GOT bytes)"

# SIGTERM: the same restoration.
rm -f "$TT/rc" "$TT/before" "$TT/after"
tmuxc new-session -d -s term -x 120 -y 40 \
	"stty -g >'$TT/before'; '$CON' -k '$KS'; echo \$? >'$TT/rc'; stty -g >'$TT/after'; sleep 600" ||
	mw_fail "tmux new-session failed"
mw_wait_for "tmuxc capture-pane -p -t term | grep -q 'mw-console  monitor'" 10 ||
	mw_fail "the second console did not draw"
SHPID=$(tmuxc display-message -p -t term '#{pane_pid}')
CPID=$(pgrep -P "$SHPID" -x mw-console) || mw_fail "no mw-console under the pane's shell $SHPID"
kill -TERM "$CPID"
mw_wait_for "[ -s '$TT/after' ]" 5 || mw_fail "SIGTERM did not end the console"
cmp -s "$TT/before" "$TT/after" || mw_fail "terminal settings not restored after SIGTERM"
mw_log "(5) SIGTERM restores the terminal OK"

# The server going away ends --json with status 0.
mw_stop pvm 5
mw_wait_for "! kill -0 $(mw_pid json) 2>/dev/null" 10 || mw_fail "--json did not end with the server"
mw_stop json 1
[ "$MW_EXIT_STATUS" = 0 ] || mw_fail "mw-console --json exit $MW_EXIT_STATUS when the server went away"
mw_log "--json ends with status 0 when the server goes away OK"
