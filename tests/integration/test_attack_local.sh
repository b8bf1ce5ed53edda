#!/usr/bin/env bash
# test_attack_local.sh - a local unprivileged user against the app's sockets and mw-pvm
#
# The app runs as root under the shim; the attacker is user nobody (setpriv),
# and is even told the exact abstract name of the app's listener (the test
# reads it as root).  Each case says what the attacker tries and what must hold.
source "$(dirname "$0")/lib.sh"
mw_require_cmd python3 setpriv prlimit
# The sweep is slow here, so a name taken while the app still runs is met by
# the hand-over's SO_PEERCRED check, not by the sweep.  Quotas small for cases 5, 5b.
MW_PVM_CONF="liveness_interval_ms = 60000; max_sockets_per_user = 40; max_connections_per_user = 20;"
mw_appliance_up
cp "$MW_SOURCE_DIR/tests/integration/attack_probe.py" "$MW_TMP/" && chmod 0644 "$MW_TMP/attack_probe.py"
cp "$MW_SOURCE_DIR/tests/integration/tcp_probe.py" "$MW_TMP/" && chmod 0644 "$MW_TMP/tcp_probe.py"
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY (nobody cannot use root's)"
PROBE="$PY $MW_TMP/attack_probe.py"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
chmod 0755 "$MW_TMP"

# start_victim NAME PORT MODE: a shimmed root app listening on PORT (attack_probe victim).
start_victim() {
	rm -f "$MW_TMP/go-$1"
	mw_spawn "$1" shimmed $PROBE victim "$2" "$MW_TMP/go-$1" "$3"
	mw_wait_for "grep -q '^listening pid' '$(mw_logfile "$1")'" 10 ||
		mw_fail "$1: the app did not listen: $(cat "$(mw_logfile "$1")")"
	mw_wait_for "ins_listens $2" 10 || mw_fail "$1: the INS does not listen on $2"
	vpid=$(sed -n 's/^listening pid \([0-9]*\) .*/\1/p' "$(mw_logfile "$1")")
	vfd=$(sed -n 's/^listening pid [0-9]* fd \([0-9]*\)$/\1/p' "$(mw_logfile "$1")")
	vname=$($PROBE name "$vpid" "$vfd") || mw_fail "$1: cannot read the listener's name"
}

# no_pwn NAME PORT: a TCP client must not reach the attacker (NAME's log).
no_pwn() {
	got=$(in_cli $PROBE client "$INS_IP" "$2")
	case $got in *pwned*) mw_fail "$1: the client reached the attacker: $got" ;; esac
	! grep -q "secret" "$(mw_logfile "$1")" || mw_fail "$1: the attacker read the client's request"
	mw_log "$1: the client got '$got', not the attacker"
}

# --- 1a. take over a listener after its app was SIGKILLed (race for the name) -----
start_victim v1 7201 stay
mw_spawn thief1 as_nobody $PROBE takeover "$vname" 20
kill -KILL "$vpid"
mw_wait_for "! ins_listens 7201 || grep -q listening '$(mw_logfile thief1)'" 10
no_pwn thief1 7201
mw_wait_for "! ins_listens 7201" 10 || mw_fail "takeover: the dead app's port still listens"
mw_stop thief1
mw_stop v1
mw_log "case takeover after SIGKILL: OK"

# --- 1b. take over a name the app lost while it runs (dup2): SO_PEERCRED check -----
start_victim v2 7202 dup2
mw_spawn thief2 as_nobody $PROBE takeover "$vname" 20
touch "$MW_TMP/go-v2"
mw_wait_for "grep -q '^listening' '$(mw_logfile thief2)'" 10 || mw_fail "the attacker could not bind the freed name"
ins_listens 7202 || mw_fail "setup: the listener was released before the attacker bound its name"
no_pwn thief2 7202
mw_wait_for "! ins_listens 7202" 10 || mw_fail "hijacked listener not released"
grep -q "held by pid [0-9]* uid 65534" "$PVM_LOG" || mw_fail "mw-pvm did not report the hijack"
mw_stop thief2
mw_stop v2
mw_log "case name taken while the app runs: OK"

# --- 2. pre-bind future names: the victim's socket/bind/listen/accept/connect work --
mw_spawn pre as_nobody $PROBE prebind "$MW_RUNTIME_DIR/pvm.sock" 300
mw_wait_for "grep -q '^prebound' '$(mw_logfile pre)'" 20 || mw_fail "prebind: $(cat "$(mw_logfile pre)")"
grep -q '^prebound 1200 ' "$(mw_logfile pre)" || mw_fail "prebind: $(cat "$(mw_logfile pre)")"
mw_spawn cli_srv in_cli $PROBE serve 7299 cli
mw_wait_for "in_cli ss -Hltn 'sport = :7299' | grep -q LISTEN" 10 || mw_fail "cli server did not start"
out=$(shimmed python3 -c "
import socket
ok = 0
for i in range(20):
    s = socket.socket(); s.bind(('0.0.0.0', 7210 + i)); s.listen(4); ok += 1; s.close()
c = socket.create_connection(('$CLI_IP', 7299), timeout=5)
c.sendall(b'hi\\n')
print('made', ok, 'connect', c.recv(100))
" 2>&1) || true
[ "$out" = "made 20 connect b'hello cli\\n'" ] || mw_fail "the victim's sockets failed with names pre-bound: $out"
mw_spawn v3 shimmed $PROBE serve 7203 v3
mw_wait_for "ins_listens 7203" 10 || mw_fail "prebind: the victim could not listen"
[ "$(in_cli $PROBE client "$INS_IP" 7203)" = "got b'hello v3\\n'" ] || mw_fail "prebind: accept failed"
mw_stop pre
mw_log "case pre-bound names: OK"

# --- 3. connect to another user's listening name: the app never accepts it --------
mw_stop v3
mw_spawn v4b shimmed "$PY" "$MW_TMP/tcp_probe.py" echo-server 7204
mw_wait_for "ins_listens 7204" 10 || mw_fail "echo server does not listen"
lfd=$(sed -n 's/^listening fd \([0-9]*\)$/\1/p' "$(mw_logfile v4b)")
epid=$(pgrep -f "tcp_probe.py echo-server 7204" | head -1)
vname=$($PROBE name "$epid" "$lfd") || mw_fail "cannot read the echo server's name"
as_nobody $PROBE connect-name "$vname" >"$MW_TMP/cn.out" 2>&1
grep -q '^answered 0$' "$MW_TMP/cn.out" || mw_fail "direct connection answered: $(cat "$MW_TMP/cn.out")"
in_cli timeout 10 "$PY" "$MW_TMP/tcp_probe.py" many "$INS_IP" 7204 3 | grep -q '^ok 3/3$' ||
	mw_fail "the app stopped serving after the attempts"
n=$(grep -c '^accepted ' "$(mw_logfile v4b)" || true)
[ "$n" = 3 ] || mw_fail "the app accepted $n connections, want the 3 real ones"
mw_log "case direct connection to the listener's name: OK"

# --- 4. requests with another user's ids: ENOENT -----------------------------------
id=$("$PY" "$MW_TMP/tcp_probe.py" listener-id "$epid" "$lfd") || mw_fail "no listener id"
as_nobody "$PY" "$MW_TMP/tcp_probe.py" intrude "$MW_RUNTIME_DIR/pvm.sock" "$id" \
	>"$MW_TMP/intrude.out" 2>&1 || mw_fail "nobody got at root's socket: $(cat "$MW_TMP/intrude.out")"
[ "$(grep -c ' on the victim: -2$' "$MW_TMP/intrude.out")" = 4 ] ||
	mw_fail "intrude: $(cat "$MW_TMP/intrude.out")"
in_cli timeout 10 "$PY" "$MW_TMP/tcp_probe.py" many "$INS_IP" 7204 1 | grep -q '^ok 1/1$' ||
	mw_fail "the listener stopped serving after another user's requests"
mw_log "case another user's ids: OK"

# --- 5. socket quota: nobody is refused at 40, root is not, and it is freed -------
ins_pid=$(pgrep -f "mw-ins --id 1 -c $CONF" | head -1)
ins_fds() { ls "/proc/$ins_pid/fd" | wc -l; }
base=$(ins_fds)
nobody_sockets() { as_nobody env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" $PROBE sockets "$@"; }
# (nobody's sockets from the cases above are freed as their processes end)
mw_wait_for '[ "$(nobody_sockets 100)" = "made 40 errno EMFILE" ]' 2 ||
	mw_fail "quota as nobody: $(nobody_sockets 100)"
rm -f "$MW_TMP/go-quota"
mw_spawn quota bash -c "$(declare -f as_nobody nobody_sockets); PROBE='$PROBE' SHIM='$SHIM' \
	MW_RUNTIME_DIR='$MW_RUNTIME_DIR' nobody_sockets 100 '$MW_TMP/go-quota'"
mw_wait_for "grep -q '^made' '$(mw_logfile quota)'" 10 || mw_fail "quota: $(cat "$(mw_logfile quota)")"
grep -q '^made 40 errno EMFILE$' "$(mw_logfile quota)" || mw_fail "quota as nobody: $(cat "$(mw_logfile quota)")"
# While nobody sits at its quota, root (one listener open) makes 30 more.
out=$(shimmed $PROBE sockets 30)
[ "$out" = "made 30 errno 0" ] || mw_fail "root was limited by nobody's quota: $out"
in_cli timeout 10 "$PY" "$MW_TMP/tcp_probe.py" many "$INS_IP" 7204 2 | grep -q '^ok 2/2$' ||
	mw_fail "root's app stopped serving at nobody's quota"
touch "$MW_TMP/go-quota"
mw_stop quota
mw_wait_for "[ \$(ls /proc/$ins_pid/fd | wc -l) -le $base ]" 10 ||
	mw_fail "the exited apps' sockets were not freed on the INS: $(ins_fds) fds, was $base"
out=$(nobody_sockets 40)
[ "$out" = "made 40 errno 0" ] || mw_fail "nobody's quota was not given back: $out"
mw_log "case socket quota: OK"

# --- 5b. control connections: nobody holding 20 gets EMFILE, root does not ----------
rm -f "$MW_TMP/go-ctl"
mw_spawn holdctl as_nobody $PROBE hold-ctl "$MW_RUNTIME_DIR/pvm.sock" 20 "$MW_TMP/go-ctl"
mw_wait_for "grep -q '^holding 20' '$(mw_logfile holdctl)'" 10 || mw_fail "holdctl: $(cat "$(mw_logfile holdctl)")"
# (accepted in order: the probe's connection comes after the 20 held ones)
out=$(nobody_sockets 1)
[ "$out" = "made 0 errno EMFILE" ] || mw_fail "nobody's 21st control connection was not refused: $out"
mw_wait_for "grep -q 'shim connections, [0-9]* fds being closed: pvm.max_connections_per_user reached' '$PVM_LOG'" 5 ||
	mw_fail "mw-pvm did not log the refusal"
out=$(shimmed $PROBE sockets 1)
[ "$out" = "made 1 errno 0" ] || mw_fail "root was limited by nobody's connections: $out"
touch "$MW_TMP/go-ctl"
mw_wait_for "grep -q '^released' '$(mw_logfile holdctl)'" 10 || mw_fail "holdctl did not release"
mw_wait_for '[ "$(nobody_sockets 1)" = "made 1 errno 0" ]' 5 ||
	mw_fail "nobody's connections were not given back: $(nobody_sockets 1)"
mw_log "case control connections per user: OK"

# --- 6. EMFILE on mw-pvm: no spinning, and it recovers -----------------------------
pvm_pid=$(pgrep -f "mw-pvm -c $CONF" | head -1)
cpu() { awk '{print $14 + $15}' "/proc/$pvm_pid/stat"; }
nfd=$(ls "/proc/$pvm_pid/fd" | wc -l)
prlimit --pid "$pvm_pid" --nofile=$((nfd + 8)):$((nfd + 8)) || mw_fail "prlimit failed"
rm -f "$MW_TMP/go-hold"
mw_spawn hold as_nobody $PROBE hold-ctl "$MW_RUNTIME_DIR/pvm.sock" 100 "$MW_TMP/go-hold"
mw_wait_for "grep -q '^holding 100' '$(mw_logfile hold)'" 10 || mw_fail "hold: $(cat "$(mw_logfile hold)")"
mw_wait_for "grep -q 'Too many open files; retrying' '$PVM_LOG'" 10 || mw_fail "mw-pvm never ran out of fds"
# ... and Netflow consumers (its AF_UNIX listener) meet the same limit.
mw_spawn holdnf as_nobody $PROBE hold-unix "$MW_RUNTIME_DIR/netflow-0.sock" 20 "$MW_TMP/go-hold"
mw_wait_for "grep -q '^holding 20' '$(mw_logfile holdnf)'" 10 || mw_fail "holdnf: $(cat "$(mw_logfile holdnf)")"
mw_wait_for "grep -q 'netflow: accept: Too many open files; pausing' '$PVM_LOG'" 10 ||
	mw_fail "mw-pvm's Netflow server never ran out of fds"
c0=$(cpu)
sleep 2
c1=$(cpu)
tck=$(getconf CLK_TCK)
[ $((c1 - c0)) -le $((tck / 2)) ] || mw_fail "mw-pvm used $((c1 - c0)) ticks of CPU in 2 s at EMFILE (spinning)"
touch "$MW_TMP/go-hold"
mw_wait_for "grep -q '^released' '$(mw_logfile hold)'" 10 || mw_fail "hold did not release"
mw_wait_for "grep -q '^released' '$(mw_logfile holdnf)'" 10 || mw_fail "holdnf did not release"
# fds free up (the limit stays): mw-pvm accepts again by itself
got=$(shimmed $PROBE client "$CLI_IP" 7299)
[ "$got" = "got b'hello cli\\n'" ] || mw_fail "mw-pvm did not recover after EMFILE: $got"
mw_log "case EMFILE on mw-pvm: $((c1 - c0)) ticks in 2 s, recovered: OK"

# --- 7. descriptors passed where none belongs: refused by the kernel ----------------
# A descriptor passed to mw-pvm and not taken is closed in mw-pvm, and such a close may
# wait (a lingering TCP socket, a FUSE file): its sockets that never take one refuse
# them (SO_PASSRIGHTS 0): the app's connections, out and in, the Netflow and INS sockets.
got=$(shimmed $PROBE passfd-client "$CLI_IP" 7299)
[ "$got" = "passfd EPERM got b'hello cli\\n'" ] || mw_fail "passfd out: $got"
mw_spawn pfs shimmed $PROBE passfd-serve 7205
mw_wait_for "ins_listens 7205" 10 || mw_fail "passfd-serve does not listen"
got=$(in_cli $PROBE client "$INS_IP" 7205)
[ "$got" = "got b'hello passfd\\n'" ] || mw_fail "passfd in: the client got $got"
mw_wait_for "grep -q '^passfd ' '$(mw_logfile pfs)'" 10 || mw_fail "passfd in: no result"
grep -qx 'passfd EPERM' "$(mw_logfile pfs)" || mw_fail "passfd in: $(cat "$(mw_logfile pfs)")"
for sock in netflow-0.sock pvm-ins.sock; do
	got=$($PROBE passfd-unix "$MW_RUNTIME_DIR/$sock")
	[ "$got" = "passfd EPERM" ] || mw_fail "passfd to $sock: $got"
done
# The app's listening socket, by its name: its pending connections take none either
# (so mw-pvm may close an app socket on its loop: nothing passed can be in it).
start_victim v7 7206 stay
got=$(as_nobody $PROBE passfd-name "$vname")
[ "$got" = "passfd EPERM" ] || mw_fail "passfd to the app's listener: $got"
mw_stop v7
mw_log "case passed descriptors: refused on the app's connections and listener, Netflow and INS sockets: OK"
# --- 7b. SO_REUSEPORT across users: the port is not shared ----------------------
# The kernel shares a port through SO_REUSEPORT only between sockets of one uid; in
# the INS every socket is the INS's, so mw-pvm keeps the rule by each app socket's
# owner.  The victim (root) listens with SO_REUSEPORT, as nginx's reuseport does;
# a second root socket joins it; nobody's is refused, at bind and at listen.
REUSE_APP='
import errno, socket, sys, time
port, tag, late = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "late"
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    if not late:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", port))
    if late:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.listen(16)
except OSError as e:
    print("refused", errno.errorcode[e.errno], flush=True); sys.exit(0)
print("listening", flush=True)
s.settimeout(1); end = time.time() + 30
while time.time() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.recv(100); c.sendall(tag.encode() + b"\n"); c.close()'
mw_spawn rp_victim shimmed $PY -c "$REUSE_APP" 7207 victim early
mw_wait_for "grep -q '^listening' '$(mw_logfile rp_victim)'" 10 || mw_fail "reuseport victim: $(cat "$(mw_logfile rp_victim)")"
mw_spawn rp_same shimmed $PY -c "$REUSE_APP" 7207 victim early
mw_wait_for "grep -q '^listening' '$(mw_logfile rp_same)'" 10 ||
	mw_fail "a second socket of the same user could not share the port: $(cat "$(mw_logfile rp_same)")"
for when in early late; do
	# (on the old code it listens, and serves until the timeout ends it)
	as_nobody env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" \
		timeout 10 $PY -c "$REUSE_APP" 7207 pwned $when >"$MW_TMP/rp.out" 2>&1 || true
	got=$(head -1 "$MW_TMP/rp.out")
	[ "$got" = "refused EADDRINUSE" ] || mw_fail "nobody's SO_REUSEPORT ($when) on root's port: $got"
done
for i in 1 2 3 4 5 6 7 8; do
	got=$(in_cli $PROBE client "$INS_IP" 7207)
	[ "$got" = "got b'victim\\n'" ] || mw_fail "reuseport: client $i got $got"
done
mw_stop rp_same
mw_stop rp_victim
mw_log "case SO_REUSEPORT across users: refused at bind and at listen, clients reach the victim: OK"

# --- 8. a passed socket whose lock a thread of the attacker holds ------------------
# A thread sleeping in send() on a TCP socket holds its lock while the page it sends
# from faults (a user's own FUSE file; lock_probe's stand-in is userfaultfd, which
# needs root, so it runs as root here): a setsockopt() on that socket sleeps until the
# fault is answered.  Passed to mw-pvm, the socket must not put its loop to sleep:
# a client through the appliance is served meanwhile.
LP=$MW_BUILD_DIR/tests/integration/lock_probe
[ -x "$LP" ] || mw_fail "lock_probe is not built at $LP"
mw_spawn lockp "$LP" "$MW_RUNTIME_DIR/pvm.sock" 8
mw_wait_for "grep -q '^passed' '$(mw_logfile lockp)'" 10 || mw_fail "lock_probe: $(cat "$(mw_logfile lockp)")"
sleep 0.5
got=$(shimmed timeout 5 $PROBE client "$CLI_IP" 7299) ||
	mw_fail "mw-pvm did not serve while a passed socket's lock was held: '$got'"
[ "$got" = "got b'hello cli\\n'" ] || mw_fail "a client while a passed socket's lock was held: $got"
! grep -q '^released' "$(mw_logfile lockp)" || mw_fail "the lock was released before the client was served"
mw_wait_for "grep -q '^released' '$(mw_logfile lockp)'" 15 || mw_fail "lock_probe did not release"
mw_log "case passed socket with its lock held: mw-pvm served meanwhile: OK"
# --- 9. SO_LINGER with a time on a connection whose peer stops answering ----------
# close() of a TCP socket with SO_LINGER {1, N} waits up to N s for the FIN's ACK,
# blocking or not.  A local user's app sets it (mw-pvm passes it on to the INS, as
# the kernel would apply it), has its peer drop packets (here the peer's firewall
# in cli drops them), and closes: the INS must not wait in its loop.  Meanwhile an
# app's bind and listen (ops that go through the INS) are answered at once.
mw_spawn holder in_cli $PY -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7301)); s.listen(4); print("listening", flush=True)
c, _ = s.accept(); print("accepted", flush=True); time.sleep(120)'
mw_wait_for "grep -q '^listening' '$(mw_logfile holder)'" 10 || mw_fail "the cli holder did not listen"
mw_spawn lingerer as_nobody env LD_PRELOAD="$SHIM" MW_PVM_SOCKET="$MW_RUNTIME_DIR/pvm.sock" $PY -c '
import os, socket, struct, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 60))
s.connect((sys.argv[1], 7301)); s.sendall(b"x")
print("connected", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
t = time.monotonic(); s.close(); print("closed in %.2f s" % (time.monotonic() - t), flush=True)
time.sleep(30)' "$CLI_IP" "$MW_TMP/go-linger"
mw_wait_for "grep -q '^connected' '$(mw_logfile lingerer)'" 10 || mw_fail "lingerer: $(cat "$(mw_logfile lingerer)")"
mw_wait_for "grep -q '^accepted' '$(mw_logfile holder)'" 10 || mw_fail "the cli holder accepted nothing"
sleep 0.3 # the byte is acknowledged: the INS closes at once, and the FIN is dropped
in_cli nft -f - <<'NFT' || mw_fail "nft: cannot drop the holder's packets"
table inet mwdrop {
	chain in {
		type filter hook input priority -10;
		tcp dport 7301 drop
	}
}
NFT
touch "$MW_TMP/go-linger"
mw_wait_for "grep -q '^closed' '$(mw_logfile lingerer)'" 10 || mw_fail "the lingerer's close did not return"
sleep 0.5
got=$(shimmed timeout 5 $PY -c '
import socket
s = socket.socket(); s.bind(("0.0.0.0", 7302)); s.listen(1); print("listening")') ||
	mw_fail "bind/listen failed after a lingering close: '$got'; $(grep -E 'INS 1|silent' "$PVM_LOG" | tail -3)"
[ "$got" = listening ] || mw_fail "bind/listen after a lingering close: $got"
! grep -q "INS 1: channel ended" "$PVM_LOG" || mw_fail "the INS was cut after a lingering close: $(grep 'INS 1' "$PVM_LOG" | tail -2)"
mw_stop lingerer
mw_stop holder
mw_log "case SO_LINGER 60 s on a connection to a peer that drops packets: the INS answered meanwhile: OK"
mw_log "PASS"
