#!/bin/bash
# test_netflow_server.sh - mw-pvm's Netflow server, checked by an independent consumer (nf_probe.py)
#
# (1) discovery: the address is published at keystore key /mw/pvm/netflow;
# (2) observations: create, bind, accept, recv, send, close for one HTTP request,
#     with the real endpoints, ids and byte counts the client itself measured;
# (3) attributes: set and get on the live connection's INS socket, real values;
# (4) mitigation close mid-transfer: the client stops early, the app reads EOF
#     after EPIPE, a close observation follows;
# (5) AddrBlock (text and binary forms, and a /24 prefix): a blocked client cannot
# connect, then can;
# (6) ten consumers at once see the same stream;
# (7) a stalled consumer while the app serves load: no request fails, the
#     consumer is disconnected;
# (8) malformed input: an error response or a disconnect, the server unharmed;
# (9) access control: over AF_UNIX a stranger gets nothing, a member of the
#     observe group observes but cannot write, of the control group controls;
#     over TCP nothing without the token, observe token cannot write; a token
#     file readable by others stops mw-pvm from starting.
# Everything above (1)-(8) runs over TCP with the control token (NF_TOKEN).
source "$(dirname "$0")/lib.sh"

mw_require_cmd curl timeout setpriv groupadd
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
NFP=$(dirname "$0")/nf_probe.py
OBS_GROUP=mwo$$
CTL_GROUP=mwc$$
mw_group_add "$OBS_GROUP"
mw_group_add "$CTL_GROUP"
OBS_GID=$(getent group "$OBS_GROUP" | cut -d: -f3)
CTL_GID=$(getent group "$CTL_GROUP" | cut -d: -f3)
TOKENS=$MW_TMP/netflow.tokens
CONTROL_TOKEN=$(head -c 12 /dev/urandom | base64 | tr '+/' '-_')
OBSERVE_TOKEN=$(head -c 12 /dev/urandom | base64 | tr '+/' '-_')
printf '# test tokens\ncontrol %s\nobserve %s\n' "$CONTROL_TOKEN" "$OBSERVE_TOKEN" >"$TOKENS"
chmod 0600 "$TOKENS"
export NF_TOKEN=$CONTROL_TOKEN
MW_PVM_CONF="netflow_stall_ms = 1000; netflow_queue = 64; netflow_listen = \"127.0.0.1:0\";
	netflow_token_file = \"$TOKENS\"; netflow_group = \"$OBS_GROUP\";
	netflow_control_group = \"$CTL_GROUP\"; netflow_max_per_user = 16;
	netflow_signals = [ \"SIGUSR1\" ]; netflow_block_max = 2; netflow_block_ttl_s = 3;" mw_appliance_up

# --- (1) discovery ------------------------------------------------------------------
KEY=$MW_RUNTIME_DIR/store/mw/pvm/netflow
mw_wait_for "[ -s '$KEY' ]" || mw_fail "no address published at $KEY"
NF=$(cat "$KEY")
[[ $NF =~ ^127\.0\.0\.1:[0-9]+$ ]] || mw_fail "published address '$NF' is not loopback ip:port"
[ "$(cat "$MW_RUNTIME_DIR/store/mw/pvms/0/netflow")" = "$NF" ] || mw_fail "not published per index at /mw/pvms/0/netflow"
UNIX=$MW_RUNTIME_DIR/netflow-0.sock
[ "$(cat "$MW_RUNTIME_DIR/store/mw/pvms/0/netflow_unix")" = "$UNIX" ] || mw_fail "AF_UNIX path not published at /mw/pvms/0/netflow_unix"
[ -S "$UNIX" ] || mw_fail "no AF_UNIX socket at $UNIX"
grep -q "netflow: serving on $UNIX and TCP $NF, .*/mw/pvms/0/netflow" "$PVM_LOG" || mw_fail "mw-pvm does not log the addresses it serves"
nfp() { "$PY" "$NFP" "$@"; }
# obs_start NAME COUNT SECONDS: a consumer writing observations to $MW_TMP/NAME.obs
obs_start() {
	mw_spawn "$1" "$PY" "$NFP" obs "$NF" "$MW_TMP/$1.obs" "$2" "$3"
	mw_wait_for "grep -q READY '$MW_TMP/$1.obs'" || mw_fail "consumer $1 did not connect"
}
field() { sed -n "s/\(^\|.* \)$1=\([^ ]*\).*/\2/p"; }

# --- (2) observations for one request -------------------------------------------------
obs_start watch 100000 600
WWW=$MW_TMP/www
mkdir -p "$WWW"
head -c 100000 /dev/urandom >"$WWW/f"
mw_spawn http shimmed "$PY" -m http.server 8080 --bind 0.0.0.0 --directory "$WWW"
mw_wait_for "ins_listens 8080" 15 || mw_fail "the shimmed HTTP server does not listen"
R=$(in_cli "$PY" "$NFP" fetch "$INS_IP" 8080 /f) || mw_fail "fetch failed"
SENT=$(echo "$R" | field sent)
RECV=$(echo "$R" | field recv)
LPORT=$(echo "$R" | field lport)
[ "$RECV" -gt 100000 ] || mw_fail "fetched only $RECV bytes"
W=$MW_TMP/watch.obs
mw_wait_for "grep -q 'obs=close .*remote=$CLI_IP:$LPORT ' '$W'" ||
	mw_fail "no close observation for the client's connection: $(cat "$W")"
LSN=$(grep -m1 'obs=bind .*local=0.0.0.0:8080 ' "$W" | field sock)
[ -n "$LSN" ] || mw_fail "no bind observation of 0.0.0.0:8080: $(cat "$W")"
grep -q "obs=create sock=$LSN " "$W" || mw_fail "no create observation for listener $LSN"
ACC=$(grep "obs=accept sock=$LSN .*remote=$CLI_IP:$LPORT " "$W")
[ -n "$ACC" ] || mw_fail "no accept on $LSN from $CLI_IP:$LPORT: $(cat "$W")"
echo "$ACC" | grep -q "local=$INS_IP:8080 " || mw_fail "accept local endpoint is not $INS_IP:8080: $ACC"
CONN=$(echo "$ACC" | field extra)
[ "$CONN" != "$LSN" ] && [ "$CONN" -gt 0 ] || mw_fail "accept extra is not the new connection id: $ACC"
grep -q "obs=recv sock=$CONN .* in=$SENT " "$W" || mw_fail "no recv observation with in=$SENT"
grep -q "obs=send sock=$CONN .* out=$RECV " "$W" || mw_fail "no send observation reaching out=$RECV"
CLOSE=$(grep "obs=close sock=$CONN " "$W")
echo "$CLOSE" | grep -q " in=$SENT out=$RECV " ||
	mw_fail "close counters are not the client's ($SENT in, $RECV out): $CLOSE"
echo "$CLOSE" | grep -q "local=$INS_IP:8080 remote=$CLI_IP:$LPORT " ||
	mw_fail "close endpoints wrong: $CLOSE"
# Per-connection ordering: accept, recv, send ..., close; counters never go back.
grep "sock=$CONN \|extra=$CONN " "$W" | awk -v c="$CONN" '
	{ split($1, o, "="); kind[NR] = o[2]; for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	  if (v["in"] < lastin || v["out"] < lastout) bad = "counters went back at " NR
	  lastin = v["in"]; lastout = v["out"] }
	END { if (kind[1] != "accept") bad = bad " first is " kind[1]
	      if (kind[NR] != "close") bad = bad " last is " kind[NR]
	      if (bad) { print bad; exit 1 } }' || mw_fail "observations of $CONN out of order: $(grep "$CONN" "$W")"
grep -q ' id=0 ' "$W" && ! grep -v '^READY\|^END' "$W" | grep -vq ' id=0 ' ||
	mw_fail "an observation carries a non-zero id"
mw_log "observations ok: listener $LSN, connection $CONN, $SENT in, $RECV out"

# --- (3) attributes on a live connection -----------------------------------------------
mw_spawn hold in_cli "$PY" "$NFP" hold "$INS_IP" 8080 30
HOLD_PORT=$(mw_wait_for "grep -q lport '$(mw_logfile hold)'" && field lport <"$(mw_logfile hold)")
[ -n "$HOLD_PORT" ] || mw_fail "the held connection did not start"
mw_wait_for "grep -q 'obs=accept .*remote=$CLI_IP:$HOLD_PORT ' '$W'" || mw_fail "held connection not observed"
HC=$(grep "obs=accept .*remote=$CLI_IP:$HOLD_PORT " "$W" | field extra)
req() { # req NAME FLAGS IDENT VAL0 [VAL1] -> "status=.. val0=.. val1=.."
	nfp req "$NF" "$@"
}
expect() { # expect WHAT GOT WANT
	[ "$2" = "$3" ] || mw_fail "$1: got '$2', want '$3'"
}
# flags: 1 WRITE, 2 BY_SOCK
expect "set SndBuf" "$(req 0x0109 3 "$HC" 65536)" "status=0 val0=0 val1=0"
expect "get SndBuf" "$(req 0x0109 2 "$HC" 0)" "status=0 val0=131072 val1=0" # Linux doubles it
expect "set Nodelay 0" "$(req 0x0008 3 "$HC" 0)" "status=0 val0=0 val1=0"
expect "get Nodelay" "$(req 0x0008 2 "$HC" 0)" "status=0 val0=0 val1=0"
expect "set Keepalive" "$(req 0x0006 3 "$HC" 1)" "status=0 val0=0 val1=0"
expect "get Keepalive" "$(req 0x0006 2 "$HC" 0)" "status=0 val0=1 val1=0"
expect "set SndTimeo" "$(req 0x010b 3 "$HC" 3 500000)" "status=0 val0=0 val1=0"
expect "get SndTimeo" "$(req 0x010b 2 "$HC" 0)" "status=0 val0=3 val1=500000"
expect "get Error" "$(req 0x010f 2 "$HC" 0)" "status=0 val0=0 val1=0"
expect "set Error" "$(req 0x010f 3 "$HC" 1)" "status=-1 val0=0 val1=0"
expect "get IsOpen" "$(req 0x0101 2 "$HC" 0)" "status=0 val0=1 val1=0"
expect "get OwnerRunning" "$(req 0x0102 2 "$HC" 0)" "status=0 val0=1 val1=0"
expect "Nonblock" "$(req 0x0003 2 "$HC" 0)" "status=-95 val0=0 val1=0"
expect "unknown id" "$(req 0x0109 2 0x7777 0)" "status=-9 val0=0 val1=0"
expect "unknown name" "$(req 0x0999 2 "$HC" 0)" "status=-22 val0=0 val1=0"
expect "set on the listener" "$(req 0x0109 3 "$LSN" 32768)" "status=0 val0=0 val1=0"
expect "get on the listener" "$(req 0x0109 2 "$LSN" 0)" "status=0 val0=65536 val1=0"
expect "congctl cubic" "$(req 0x1101 1 0 0x92)" "status=0 val0=1 val1=0"
expect "congctl read back" "$(req 0x1101 0 0 0)" "status=0 val0=146 val1=0"
expect "delack" "$(req 0x1102 1 0 0)" "status=0 val0=1 val1=0"
mw_log "attributes ok on $HC"

# --- owner signal: the process that created the socket gets it --------------------------------
mw_spawn sigapp shimmed "$PY" "$NFP" sig-wait 9191
mw_wait_for "grep -q listening '$(mw_logfile sigapp)'" || mw_fail "sig-wait app did not start"
mw_wait_for "grep -q 'obs=bind .*local=0.0.0.0:9191 ' '$W'" || mw_fail "no bind observation for 9191"
SL=$(grep 'obs=bind .*local=0.0.0.0:9191 ' "$W" | field sock)
# SIGKILL and SIGTERM are not in netflow_signals: refused, the app unharmed.
expect "signal SIGKILL" "$(req 0x0102 3 "$SL" 9)" "status=-1 val0=0 val1=0"
expect "signal SIGTERM" "$(req 0x0102 3 "$SL" 15)" "status=-1 val0=0 val1=0"
expect "signal out of range" "$(req 0x0102 3 "$SL" 999)" "status=-1 val0=0 val1=0"
kill -0 "$(mw_pid sigapp)" || mw_fail "a refused signal reached the app"
expect "signal SIGUSR1 (listed)" "$(req 0x0102 3 "$SL" 10)" "status=0 val0=0 val1=0"
mw_wait_for "grep -q 'signal 10' '$(mw_logfile sigapp)'" || mw_fail "the owner did not get SIGUSR1"
expect "signal default (SIGINT)" "$(req 0x0102 3 "$SL" 0)" "status=0 val0=0 val1=0"
mw_wait_for "grep -q 'signal 2' '$(mw_logfile sigapp)'" || mw_fail "the owner did not get SIGINT"
# The owner is gone (its child holds the socket now): no signal reaches anybody.
mw_spawn orphan shimmed "$PY" "$NFP" orphan 9192
mw_wait_for "grep -q 'obs=bind .*local=0.0.0.0:9192 ' '$W'" || mw_fail "no bind observation for 9192"
OL=$(grep 'obs=bind .*local=0.0.0.0:9192 ' "$W" | field sock)
mw_wait_for "grep -q 'parent .* exits' '$(mw_logfile orphan)'" || mw_fail "the orphan's parent did not exit"
OPARENT=$(sed -n 's/^parent \([0-9]*\) exits.*/\1/p' "$(mw_logfile orphan)")
mw_wait_for "[ ! -d /proc/$OPARENT ]" || mw_fail "the orphan's parent $OPARENT is still there"
# Either the socket went with its owner (-EBADF) or it is the child's now and its
# owner is gone (-ESRCH): never a signal to the child or to a process reusing the pid.
r=$(req 0x0102 2 "$OL" 0)
[ "$r" = "status=0 val0=0 val1=0" ] || [ "$r" = "status=-9 val0=0 val1=0" ] || mw_fail "owner gone: running? $r"
r=$(req 0x0102 3 "$OL" 0)
[ "$r" = "status=-3 val0=0 val1=0" ] || [ "$r" = "status=-9 val0=0 val1=0" ] || mw_fail "owner gone: signal: $r"
sleep 0.5 # a signal, had one been sent, is printed by now
! grep -q 'got signal' "$(mw_logfile orphan)" || mw_fail "a process that does not own the socket got a signal"
mw_log "owner signal ok"

# --- (4) mitigation close mid-transfer --------------------------------------------------
TOTAL=$((512 * 1024 * 1024))
mw_spawn flood shimmed "$PY" "$NFP" flood-server 9090 "$TOTAL"
mw_wait_for "ins_listens 9090" 15 || mw_fail "flood server does not listen"
mw_spawn slow in_cli "$PY" "$NFP" slow-read "$INS_IP" 9090 40
SLOW_PORT=$(mw_wait_for "grep -q lport '$(mw_logfile slow)'" && field lport <"$(mw_logfile slow)")
mw_wait_for "grep -q 'obs=accept .*remote=$CLI_IP:$SLOW_PORT ' '$W'" || mw_fail "flood connection not observed"
FC=$(grep "obs=accept .*remote=$CLI_IP:$SLOW_PORT " "$W" | field extra)
sleep 1 # let some data flow: the point is a close in the middle of a transfer
expect "mitigation close" "$(req 0x0101 3 "$FC" 0)" "status=0 val0=1 val1=0"
mw_wait_for "grep -q '^got=' '$(mw_logfile slow)'" 15 || mw_fail "the client did not stop after the close"
GOT=$(field got <<<" $(grep '^got=' "$(mw_logfile slow)")")
END=$(grep '^got=' "$(mw_logfile slow)" | sed 's/.*end=//')
[ "$GOT" -gt 0 ] && [ "$GOT" -lt "$TOTAL" ] || mw_fail "client got $GOT of $TOTAL bytes"
[ "$END" = reset ] || [ "$END" = eof ] || mw_fail "client ended with '$END'"
mw_wait_for "grep -q 'EPIPE after' '$(mw_logfile flood)'" 15 || mw_fail "the app's write did not fail with EPIPE: $(cat "$(mw_logfile flood)")"
mw_wait_for "grep -q 'read EOF' '$(mw_logfile flood)'" || mw_fail "the app's read after the close was not EOF: $(cat "$(mw_logfile flood)")"
mw_wait_for "grep -q 'obs=close sock=$FC ' '$W'" || mw_fail "no close observation after the mitigation close"
expect "IsOpen after close" "$(req 0x0101 2 "$FC" 0)" "status=-9 val0=0 val1=0"
mw_log "mitigation close ok: client got $GOT bytes ($END)"

# --- (5) AddrBlock ----------------------------------------------------------------------
fetch_ok() { in_cli curl -sf -o /dev/null --max-time 3 "http://$INS_IP:8080/f"; }
fetch_ok || mw_fail "fetch before the block failed"
expect "block (text)" "$(req 0x1103 1 "ip:$CLI_IP" 1)" "status=0 val0=1 val1=0"
! fetch_ok || mw_fail "a blocked client could still fetch"
expect "unblock (text)" "$(req 0x1103 1 "ip:$CLI_IP" 0)" "status=0 val0=1 val1=0"
fetch_ok || mw_fail "fetch after the unblock failed"
# A prefix (val0 bits 32-39): the client's /24, lifted as it was placed.
expect "block of a /24" "$(req 0x1103 1 "ip:$CLI_IP" $(((24 << 32) | 1)))" "status=0 val0=1 val1=0"
! fetch_ok || mw_fail "a client in a blocked /24 could still fetch"
grep -q "netflow: block ${CLI_IP%.*}.0/24 on every INS" "$PVM_LOG" || mw_fail "the /24 block is not logged"
expect "unblock of the address alone" "$(req 0x1103 1 "ip:$CLI_IP" 0)" "status=-2 val0=0 val1=0"
! fetch_ok || mw_fail "unblocking the address lifted the /24"
expect "unblock of the /24" "$(req 0x1103 1 "ip:$CLI_IP" $((24 << 32)))" "status=0 val0=1 val1=0"
fetch_ok || mw_fail "fetch after the /24's unblock failed"
# ::ffff:a.b.c.d is a.b.c.d to mw-ins (a dual-stack listener's IPv4 client): one block.
# Lifting the mapped form's block on one INS must leave the IPv4 block of every INS.
M6="ip6:::ffff:$CLI_IP"
expect "block" "$(req 0x1103 1 "ip:$CLI_IP" 1)" "status=0 val0=1 val1=0"
expect "scoped block, mapped form" "$(req 0x1103 1 "$M6" 1 "$FC")" "status=0 val0=1 val1=0"
expect "scoped unblock, mapped form" "$(req 0x1103 1 "$M6" 0 "$FC")" "status=0 val0=1 val1=0"
! fetch_ok || mw_fail "unblocking ::ffff:$CLI_IP on one INS lifted the block of $CLI_IP there"
expect "unblock, mapped form" "$(req 0x1103 1 "$M6" 0)" "status=0 val0=1 val1=0"
fetch_ok || mw_fail "fetch after the mapped form's unblock failed"
! grep -q "netflow: .*::ffff:$CLI_IP" "$PVM_LOG" ||
	mw_fail "the mapped form is recorded apart from $CLI_IP: $(grep 'netflow: .*block' "$PVM_LOG" | tail -3)"
expect "prefix longer than IPv4" "$(req 0x1103 1 "ip:$CLI_IP" $(((33 << 32) | 1)))" "status=-22 val0=0 val1=0"
expect "block without WRITE" "$(req 0x1103 0 "ip:$CLI_IP" 1)" "status=-22 val0=0 val1=0"
expect "block of garbage" "$(req 0x1103 1 "ip:not-an-ip" 1)" "status=-22 val0=0 val1=0"
# Bounded: netflow_block_max = 2, and each block expires after netflow_block_ttl_s = 3.
expect "block 1 of 2" "$(req 0x1103 1 "ip:192.0.2.1" 1)" "status=0 val0=1 val1=0"
expect "block 2 of 2" "$(req 0x1103 1 "ip:$CLI_IP" 1)" "status=0 val0=1 val1=0"
expect "a third block" "$(req 0x1103 1 "ip:192.0.2.3" 1)" "status=-28 val0=0 val1=0"
! fetch_ok || mw_fail "a blocked client could still fetch"
mw_wait_for fetch_ok 15 || mw_fail "the block did not expire after netflow_block_ttl_s"
grep -q "block of $CLI_IP:0 expired" "$PVM_LOG" || mw_fail "the expiry is not logged"
expect "room again after expiry" "$(req 0x1103 1 "ip:192.0.2.3" 1)" "status=0 val0=1 val1=0"
expect "unblock" "$(req 0x1103 1 "ip:192.0.2.3" 0)" "status=0 val0=1 val1=0"
mw_log "AddrBlock ok"

# --- (6) ten consumers at once ------------------------------------------------------------
for i in $(seq 1 10); do obs_start "c$i" 1000 30; done
R=$(in_cli "$PY" "$NFP" fetch "$INS_IP" 8080 /f) || mw_fail "fetch with ten consumers failed"
LP=$(echo "$R" | field lport)
for i in $(seq 1 10); do
	mw_wait_for "grep -q 'obs=close .*remote=$CLI_IP:$LP ' '$MW_TMP/c$i.obs'" ||
		mw_fail "consumer c$i missed the request from port $LP"
done
mw_log "ten consumers ok"

# --- (7) a stalled consumer under load ---------------------------------------------------
# The consumer holds until released (120 s at most): how long the cut takes
# depends on the machine's load, and the check must come after it.
mw_spawn stall "$PY" "$NFP" stall "$NF" 120 "$MW_TMP/stall.release"
mw_wait_for "grep -q stalling '$(mw_logfile stall)'" || mw_fail "stalled consumer did not connect"
# Large downloads: one send observation per relay batch fills the stalled consumer's
# kernel buffers and queue fast, whatever the machine's load.
head -c 8000000 /dev/urandom >"$WWW/big"
fails=0 n=0
stall_cut() { grep -q 'disconnected: read .* below netflow_min_rate' "$PVM_LOG"; }
while [ "$n" -lt 60 ] && ! stall_cut; do
	in_cli curl -sf -o /dev/null --max-time 10 "http://$INS_IP:8080/big" || fails=$((fails + 1))
	in_cli curl -sf -o /dev/null --max-time 5 "http://$INS_IP:8080/f" || fails=$((fails + 1))
	n=$((n + 1))
done
[ "$fails" = 0 ] || mw_fail "$fails of $((2 * n)) requests failed while a consumer stalled"
mw_wait_for stall_cut 15 || mw_fail "the stalled consumer was not disconnected"
# Cut with a reset: nothing left in mw-pvm's kernel retrying what the consumer will
# never read (a plain close leaves a FIN-WAIT-1 socket behind its zero window).
SPORT=$(sed -n 's/^stalling lport=//p' "$(mw_logfile stall)")
[ -n "$SPORT" ] || mw_fail "the stall probe printed no port"
left=$(ss -Htn "( dport = :$SPORT )")
[ -z "$left" ] || mw_fail "mw-pvm still holds the stalled consumer's connection: $left"
touch "$MW_TMP/stall.release"
mw_wait_for "grep -q 'stalled read=' '$(mw_logfile stall)'" 20 || mw_fail "stall probe did not finish"
grep -q 'closed=1' "$(mw_logfile stall)" || mw_fail "the stalled consumer's connection stayed open"
mw_log "stalled consumer ok: $((2 * n)) requests, consumer dropped"

# --- (8) malformed input -------------------------------------------------------------------
# A request with an unknown flag bit: answered -EINVAL with its id.
BAD=$(printf 'd320%08x%04x%04x%072x' 77 8 0x0109 0)
expect "unknown flag" "$(nfp raw "$NF" "$BAD")" "resp id=77 status=-22 val0=0"
# BY_SOCK and BY_PEER together.
BAD=$(printf 'd320%08x%04x%04x%072x' 78 6 0x0109 0)
expect "BY_SOCK|BY_PEER" "$(nfp raw "$NF" "$BAD")" "resp id=78 status=-22 val0=0"
# Unknown signature, a server-only message, a truncated request: disconnect or wait, never harm.
[[ $(nfp raw "$NF" "beef00000001") == closed* ]] || mw_fail "unknown signature not disconnected"
[[ $(nfp raw "$NF" "d310$(printf '%0228x' 0)") == closed* ]] || mw_fail "an INFO from a consumer was not refused"
timeout 10 "$PY" -c "
import socket; s = socket.socket(socket.AF_UNIX); s.connect('$UNIX'); s.sendall(bytes.fromhex('d3200000000100')); s.close()" ||
	mw_fail "truncated request client failed"
expect "server unharmed" "$(req 0x0109 2 "$LSN" 0)" "status=0 val0=65536 val1=0"
kill -0 "$(mw_pid pvm)" || mw_fail "mw-pvm died"
mw_log "malformed input ok"

# --- (9) access control ---------------------------------------------------------------------
as_user() { setpriv --reuid=nobody --regid=nogroup "$@"; }
expect "stranger over AF_UNIX" "$(as_user --clear-groups "$PY" "$NFP" probe "$UNIX")" "bytes=0 closed=1"
expect "no token over TCP" "$(NF_TOKEN= "$PY" "$NFP" probe "$NF")" "bytes=0 closed=1"
expect "wrong token over TCP" "$(NF_TOKEN=not-the-token-0123456 NF_TOKEN_NOCHECK=1 "$PY" "$NFP" probe "$NF")" \
	"bytes=0 closed=1"
grep -q "refused consumer uid 65534 .*: not root nor in netflow_group" "$PVM_LOG" ||
	mw_fail "the stranger's refusal is not logged"
# An observe member: the stream and reads, no writes (-EPERM), connection kept.
P=$(as_user --groups "$OBS_GID" "$PY" "$NFP" probe "$UNIX")
[[ $P =~ ^bytes=([0-9]+)\ closed=0$ ]] && [ "${BASH_REMATCH[1]}" -ge 52 ] ||
	mw_fail "observe member over AF_UNIX: $P"
expect "observe member: read" "$(as_user --groups "$OBS_GID" "$PY" "$NFP" req "$UNIX" 0x0109 2 "$LSN" 0)" \
	"status=0 val0=65536 val1=0"
for w in "0x0101 3 $LSN 0" "0x0102 3 $SL 0" "0x0109 3 $LSN 4096" "0x1103 1 ip:$CLI_IP 1"; do
	expect "observe member: write $w" "$(as_user --groups "$OBS_GID" "$PY" "$NFP" req "$UNIX" $w)" \
		"status=-1 val0=0 val1=0"
done
expect "observe token: write" "$(NF_TOKEN=$OBSERVE_TOKEN "$PY" "$NFP" req "$NF" 0x0109 3 "$LSN" 4096)" \
	"status=-1 val0=0 val1=0"
expect "listener untouched" "$(req 0x0101 2 "$LSN" 0)" "status=0 val0=1 val1=0"
fetch_ok || mw_fail "the app stopped serving after refused writes"
# A control member may write.
expect "control member: set" "$(as_user --groups "$CTL_GID" "$PY" "$NFP" req "$UNIX" 0x0109 3 "$LSN" 32768)" \
	"status=0 val0=0 val1=0"
mw_log "access control ok"

# A token file others can read: mw-pvm refuses to start, and says why.
BADTOK=$MW_TMP/bad.tokens
cp "$TOKENS" "$BADTOK"
chmod 0644 "$BADTOK"
CONF2=$MW_TMP/bad.conf
mw_write_config "$CONF2" "pvm: { control_socket = \"$MW_RUNTIME_DIR/pvm2.sock\"; index = 7;
	ins_socket = \"$MW_RUNTIME_DIR/pvm2-ins.sock\"; netflow_listen = \"127.0.0.1:0\";
	netflow_token_file = \"$BADTOK\"; };"
out=$(timeout 10 "$PVM" -c "$CONF2" 2>&1) && mw_fail "mw-pvm started with a token file readable by others"
echo "$out" | grep -q "token file $BADTOK must be .* mode 0600" || mw_fail "no clear error for the bad token file: $out"
mw_write_config "$CONF2" "pvm: { control_socket = \"$MW_RUNTIME_DIR/pvm2.sock\"; index = 7;
	ins_socket = \"$MW_RUNTIME_DIR/pvm2-ins.sock\"; netflow_listen = \"127.0.0.1:0\"; };"
out=$(timeout 10 "$PVM" -c "$CONF2" 2>&1) && mw_fail "mw-pvm listened on TCP without a token file"
echo "$out" | grep -q "needs pvm.netflow_token_file" || mw_fail "no clear error without a token file: $out"
mw_log "token file checks ok"
