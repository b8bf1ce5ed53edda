#!/usr/bin/env bash
# test_e2e_semantics.sh - TCP semantics through the INS, and the injection guard
#
# 1,000 concurrent connections to a shimmed asyncio echo server; half-close both
# ways; a peer reset; connection refused; and a local process that tries to
# inject a connection into the app (plain, and with a forged peer address):
# the app must never see it.
source "$(dirname "$0")/lib.sh"
mw_require_cmd python3
mw_appliance_up
PROBE="python3 $MW_SOURCE_DIR/tests/integration/tcp_probe.py"

# --- 1,000 concurrent connections ------------------------------------------------
mw_spawn echo shimmed $PROBE echo-server 7000
mw_wait_for "ins_listens 7000" 10 || mw_fail "echo server does not listen on the INS"
in_cli bash -c "ulimit -n 8192; exec timeout 120 $PROBE many $INS_IP 7000 1000" >"$MW_TMP/many.out" 2>&1 ||
	mw_fail "1,000 concurrent connections failed: $(tail -5 "$MW_TMP/many.out")"
grep -q '^ok 1000/1000$' "$MW_TMP/many.out" || mw_fail "concurrent echo: $(cat "$MW_TMP/many.out")"
n=$(grep -c "^accepted $CLI_IP:" "$(mw_logfile echo)" || true)
[ "$n" = 1000 ] || mw_fail "the app accepted $n connections from $CLI_IP, want 1000 (real peer addresses)"
mw_log "1,000 concurrent connections OK, peers reported as $CLI_IP"

# --- injection: another local process connects to the app's listener -------------
lfd=$(sed -n 's/^listening fd \([0-9]*\)$/\1/p' "$(mw_logfile echo)")
[ -n "$lfd" ] || mw_fail "echo server did not report its listening fd"
pid=$(pgrep -f "tcp_probe.py echo-server 7000" | head -1)
$PROBE inject "$pid" "$lfd" 6.6.6.6 >"$MW_TMP/inject.out" 2>&1 ||
	mw_fail "injected connections were served: $(cat "$MW_TMP/inject.out")"
in_cli timeout 10 $PROBE many "$INS_IP" 7000 1 >/dev/null || mw_fail "legit client after injection failed"
! grep -q "accepted 6.6.6.6" "$(mw_logfile echo)" || mw_fail "the app accepted a spoofed peer 6.6.6.6"
n=$(grep -c '^accepted ' "$(mw_logfile echo)" || true)
[ "$n" = 1001 ] || mw_fail "the app accepted $n connections, want 1001 (injections must not count)"
mw_log "injection and spoofing rejected"

# --- another user: the fd is the authority, not the socket id ---------------------
# nobody may register and make sockets of its own, but cannot act on the app's
# listener without holding its fd, nor close it by a false hint, nor bind port 80.
id=$($PROBE listener-id "$pid" "$lfd") || mw_fail "cannot read the listener's socket id"
# (Debian's python3 and a copy of the probe: nobody may not read the source tree.)
cp "$MW_SOURCE_DIR/tests/integration/tcp_probe.py" "$MW_TMP/" && chmod 0644 "$MW_TMP/tcp_probe.py"
setpriv --reuid=nobody --regid=nogroup --clear-groups \
	/usr/bin/python3 "$MW_TMP/tcp_probe.py" intrude "$MW_RUNTIME_DIR/pvm.sock" "$id" \
	>"$MW_TMP/intrude.out" 2>&1 || mw_fail "another user got at the app's socket: $(cat "$MW_TMP/intrude.out")"
grep -q '^register: 0$' "$MW_TMP/intrude.out" || mw_fail "intrude: $(cat "$MW_TMP/intrude.out")"
in_cli timeout 10 $PROBE many "$INS_IP" 7000 1 >/dev/null || mw_fail "the listener stopped serving after a false close hint"
mw_log "another user cannot act on the app's sockets: $(tr '\n' ';' <"$MW_TMP/intrude.out")"

# --- on/off options on an accepted connection (sent without waiting) -------------
# The app reads back what it set (TCP_NODELAY is its own view: the INS keeps
# Nagle off underneath); a short value is refused as the kernel does; a corked
# reply is delivered once uncorked, with the connection still open.
mw_spawn opts shimmed $PROBE opts-server 7004
mw_wait_for "ins_listens 7004" 10 || mw_fail "opts server does not listen"
got=$(in_cli timeout 10 python3 -c "
import socket; s = socket.create_connection(('$INS_IP', 7004), timeout=8)
print(s.makefile().readline().strip()); s.close()") || mw_fail "no corked reply"
[ "$got" = "corked reply" ] || mw_fail "corked reply: got '$got'"
mw_wait_for "grep -q 'short cork' '$(mw_logfile opts)'" 10 || mw_fail "opts server did not finish"
o=$(mw_logfile opts)
grep -q '^default nodelay 0 cork 0 keepalive 0$' "$o" || mw_fail "option defaults: $(cat "$o")"
grep -q '^set 1: nodelay 1 cork 1 keepalive 1$' "$o" || mw_fail "options set to 1: $(cat "$o")"
grep -q '^set 0: nodelay 0 cork 0 keepalive 0$' "$o" || mw_fail "options set to 0: $(cat "$o")"
grep -q "^short cork value: errno $(python3 -c 'import errno; print(errno.EINVAL)')$" "$o" ||
	mw_fail "a 2-byte TCP_CORK value: $(grep short "$o")"
mw_log "on/off options on an accepted connection OK"

# --- half-close: client shuts down writing, server answers after EOF -------------
mw_spawn hcs shimmed $PROBE halfclose-server 7001
mw_wait_for "ins_listens 7001" 10 || mw_fail "half-close server does not listen"
in_cli timeout 30 $PROBE halfclose-client "$INS_IP" 7001 3000000 >"$MW_TMP/hc.out" 2>&1 ||
	mw_fail "half-close (client side) failed: $(cat "$MW_TMP/hc.out")"
mw_wait_for "grep -q '^served 3000000' '$(mw_logfile hcs)'" 10 || mw_fail "server did not see 3000000 bytes then EOF"

# ... and the shimmed app as the half-closing client, to a server in cli.
mw_spawn hcs2 ip netns exec "$NS_CLI" $PROBE halfclose-server 7002
mw_wait_for "in_cli ss -Hltn 'sport = :7002' | grep -q LISTEN" 10 || mw_fail "cli server did not start"
shimmed timeout 30 $PROBE halfclose-client "$CLI_IP" 7002 2000000 >"$MW_TMP/hc2.out" 2>&1 ||
	mw_fail "half-close (shimmed client) failed: $(cat "$MW_TMP/hc2.out")"
mw_log "half-close both ways OK"

# --- peer reset: the app's server keeps working ----------------------------------
in_cli timeout 10 $PROBE reset-client "$INS_IP" 7000 >/dev/null || mw_fail "reset client failed"
in_cli timeout 10 $PROBE many "$INS_IP" 7000 5 | grep -q '^ok 5/5$' || mw_fail "echo server broken after a peer reset"
mw_log "peer reset OK"

# --- connection refused, blocking and non-blocking -------------------------------
out=$(shimmed python3 -c "
import socket, errno, select
s = socket.socket()
try:
    s.connect(('$CLI_IP', 7999)); print('connected?!')
except ConnectionRefusedError: print('blocking ECONNREFUSED')
s = socket.socket(); s.setblocking(False)
rc = s.connect_ex(('$CLI_IP', 7999))
if rc == errno.EINPROGRESS:
    select.select([], [s], [], 10)
    rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
print('nonblocking', errno.errorcode.get(rc, rc))
")
echo "$out" | grep -q '^blocking ECONNREFUSED$' || mw_fail "blocking connect to a closed port: $out"
echo "$out" | grep -q '^nonblocking ECONNREFUSED$' || mw_fail "non-blocking connect to a closed port: $out"
mw_log "connection refused OK"
