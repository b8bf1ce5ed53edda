#!/usr/bin/env bash
# test_shield_accf.sh - accept filters: the app's accept() returns only complete requests
#
# A shielded listener's INS holds each new connection until its first request is
# complete (docs/ins.md, "Shield"); the shield is set at run time through Netflow
# (ShieldFilter 0x2011, ShieldDeadlineMs 0x2012) on the app's listener.  Whether the
# app saw a connection is read from Netflow's accept observations, which mw-pvm emits
# when it announces one to the app.
#   nginx, filter http, deadline 2 s:
#     (a) a client that sends nothing is never accepted and is reset after ~2 s;
#     (b) a request head sent in pieces over 1 s is answered;
#     (c) curl works;
#     (d) a POST whose body comes in two parts is held until the body is complete;
#   redis, filter line, deadline 2 s: redis-cli works; a RESP array cut in the middle
#   is held until complete; a silent connection is reset;
#   an INS that joins later applies the shield to the replayed listener;
#   redis, hold_max 2: a third held connection evicts (resets) the oldest;
#   nginx, deadline 20 s: SrcMaxConns counts passed connections, not held ones; MinInRate 100 resets a
#   10 B/s head and a silent client after one 5 s window, a 200 B/s head is answered;
#   the attributes themselves: read back, refused on a connection and out of range,
#   refused to the app (the shim) at its own setsockopt; and mw-ins's counters in its
#   STATUS= line (a notify socket stands in for systemd).
source "$(dirname "$0")/lib.sh"
mw_require_cmd nginx curl redis-server redis-cli
PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
NFP=$(dirname "$0")/nf_probe.py
SP=$(dirname "$0")/shield_probe.py
HTTP_PORT=8461
REDIS_PORT=6461
mw_notify_up
mw_appliance_up
KEY=$MW_RUNTIME_DIR/store/mw/pvm/netflow
mw_wait_for "[ -s '$KEY' ]" || mw_fail "no Netflow address published at $KEY"
NF=$(cat "$KEY")
OBS=$MW_TMP/watch.obs
field() { sed -n "s/\(^\|.* \)$1=\([^ ]*\).*/\2/p"; }
req() { "$PY" "$NFP" req "$NF" "$@"; } # req NAME FLAGS SOCK VAL0 -> "status=S val0=V val1=0"
expect() { [ "$2" = "$3" ] || mw_fail "$1: got '$2', want '$3'"; }
mw_spawn watch "$PY" "$NFP" obs "$NF" "$OBS" 100000 300
mw_wait_for "grep -q READY '$OBS'" || mw_fail "the Netflow observer did not connect"

# accepted LPORT: the app was handed the client connection from local port LPORT
accepted() { grep -q "obs=accept .*remote=$CLI_IP:$1 " "$OBS"; }
# listener PORT: the app's listener id on PORT, from its bind observation
listener() {
	mw_wait_for "grep -q 'obs=bind .*local=0.0.0.0:$1 ' '$OBS'" >/dev/null || return 1
	grep -m1 "obs=bind .*local=0.0.0.0:$1 " "$OBS" | field sock
}
# shield SOCK FILTER DEADLINE_MS: set both through Netflow (flags 3: WRITE|BY_SOCK)
shield() {
	expect "set ShieldFilter $2 on $1" "$(req 0x2011 3 "$1" "$2")" "status=0 val0=0 val1=0"
	expect "set ShieldDeadlineMs $3 on $1" "$(req 0x2012 3 "$1" "$3")" "status=0 val0=0 val1=0"
	expect "read ShieldFilter on $1" "$(req 0x2011 2 "$1" 0)" "status=0 val0=$2 val1=0"
}
# silent_reset NAME PORT: a client that sends nothing is reset after the 2 s deadline, unseen
silent_reset() {
	local log lport end after
	mw_spawn "$1" in_cli "$PY" "$SP" silent "$INS_IP" "$2" 10
	log=$(mw_logfile "$1")
	mw_wait_for "grep -q '^end=' '$log'" 15 || mw_fail "$1: the silent client never ended"
	lport=$(field lport <"$log")
	end=$(grep '^end=' "$log" | field end)
	after=$(grep '^end=' "$log" | field after)
	[ "$end" = reset ] || mw_fail "$1: the silent client's connection ended with $end, want reset"
	awk -v t="$after" 'BEGIN { exit !(t >= 1.8 && t <= 5) }' ||
		mw_fail "$1: reset after ${after}s, want the 2 s deadline"
	! accepted "$lport" || mw_fail "$1: the app accepted the silent connection"
	mw_log "$1: silent client reset after ${after}s, never accepted"
}
# held_then_done NAME PORT GAP WANT PIECES...: sent in pieces GAP s apart; not accepted
# before the last piece, and answered with a first line matching WANT.
held_then_done() {
	local name=$1 port=$2 gap=$3 want=$4 log lport pieces resp
	shift 4
	pieces=$#
	mw_spawn "$name" in_cli "$PY" "$SP" send "$INS_IP" "$port" "$gap" "$@"
	log=$(mw_logfile "$name")
	mw_wait_for "grep -q '^sent=$((pieces - 1))$' '$log'" 10 || mw_fail "$name: client stuck"
	lport=$(field lport <"$log")
	sleep "$(awk -v g="$gap" 'BEGIN { print g / 2 }')"
	if ! grep -q "^sent=$pieces$" "$log"; then
		! accepted "$lport" || mw_fail "$name: accepted before its request was complete"
	else
		mw_log "$name: too slow to check the hold (all pieces sent)"
	fi
	mw_wait_for "grep -q '^resp=' '$log'" 20 || mw_fail "$name: no answer"
	resp=$(grep '^resp=' "$log" | field resp)
	[[ "$resp" =~ $want ]] || mw_fail "$name: answered '$resp', want $want"
	accepted "$lport" || mw_fail "$name: answered but never observed as accepted"
	mw_log "$name: held until complete, then answered $resp"
}

# --- the app cannot touch the level ------------------------------------------------------
out=$(shimmed "$PY" "$SP" setopt 0x4d57 1)
expect "the app's own setsockopt/getsockopt at MW_SOL_SHIELD" "$out" "set=ENOPROTOOPT get=ENOPROTOOPT"

# --- nginx, filter http --------------------------------------------------------------------
WWW=$MW_TMP/www
NGX=$MW_TMP/nginx
mkdir -p "$WWW" "$NGX"
echo "shielded $$" >"$WWW/index.html"
cat >"$NGX/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 1024; }
http {
	access_log $NGX/access.log;
	client_body_temp_path $NGX/body;
	proxy_temp_path $NGX/proxy;
	fastcgi_temp_path $NGX/fastcgi;
	uwsgi_temp_path $NGX/uwsgi;
	scgi_temp_path $NGX/scgi;
	server {
		listen $HTTP_PORT;
		root $WWW;
		error_page 405 =200 \$uri;
	}
}
NGINX
mw_spawn nginx shimmed nginx -c "$NGX/nginx.conf"
mw_wait_for "ins_listens $HTTP_PORT" 10 || mw_fail "nginx does not listen on the INS"
LSN=$(listener "$HTTP_PORT") || mw_fail "no bind observation for nginx's listener"
shield "$LSN" 2 2000
expect "ShieldFilter out of range" "$(req 0x2011 3 "$LSN" 5)" "status=-22 val0=0 val1=0"
expect "ShieldFilter unchanged" "$(req 0x2011 2 "$LSN" 0)" "status=0 val0=2 val1=0"

# (c) a plain curl
body=$(in_cli curl -sf --max-time 10 "http://$INS_IP:$HTTP_PORT/index.html") || mw_fail "curl failed"
expect "curl through the filter" "$body" "shielded $$"
# A connection's shield is its listener's, not settable on its own (kept alive 10 s).
mw_spawn keep in_cli "$PY" "$SP" send "$INS_IP" "$HTTP_PORT" 0 \
	'GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n'
mw_wait_for "grep -q '^sent=1' '$(mw_logfile keep)'" || mw_fail "keep-alive client did not send"
lport=$(field lport <"$(mw_logfile keep)")
mw_wait_for "accepted $lport" 5 || mw_fail "keep-alive connection not accepted"
conn=$(grep "obs=accept .*remote=$CLI_IP:$lport " "$OBS" | field extra)
expect "ShieldFilter on a connection" "$(req 0x2011 3 "$conn" 1)" "status=-95 val0=0 val1=0"
# (a) silent
silent_reset nginx-silent "$HTTP_PORT"
# (b) a head in four pieces over ~1.2 s
held_then_done nginx-slow-head "$HTTP_PORT" 0.4 '^HTTP/1.1_200' \
	'GET /index.html HTTP/1.1\r\n' 'Host: a\r\n' 'Connection: close\r\n' '\r\n'
# (d) a POST whose body comes in two parts, 1.5 s apart (405 is answered as the file: 200)
held_then_done nginx-post "$HTTP_PORT" 1.5 '^HTTP/1.1_200' \
	'POST /index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 10\r\n\r\nhello' \
	'world'
grep -q '"POST /index.html HTTP/1.1" 200' "$NGX/access.log" ||
	mw_fail "nginx did not log the POST: $(cat "$NGX/access.log")"

# --- redis, filter line --------------------------------------------------------------------
mw_spawn redis shimmed redis-server --port "$REDIS_PORT" --bind 0.0.0.0 --protected-mode no \
	--save '' --appendonly no --dir "$MW_TMP"
mw_wait_for "ins_listens $REDIS_PORT" 10 || mw_fail "redis does not listen on the INS"
RLSN=$(listener "$REDIS_PORT") || mw_fail "no bind observation for redis's listener"
shield "$RLSN" 3 2000
[ "$(in_cli redis-cli -h "$INS_IP" -p "$REDIS_PORT" set k shielded)" = OK ] || mw_fail "redis-cli SET failed"
[ "$(in_cli redis-cli -h "$INS_IP" -p "$REDIS_PORT" get k)" = shielded ] || mw_fail "redis-cli GET failed"
# shellcheck disable=SC2016 # RESP's '$' is literal
held_then_done redis-split "$REDIS_PORT" 1.5 '^\$8' '*2\r\n$3\r\nGET\r\n$1\r\n' 'k\r\n*1\r\n$4\r\nQUIT\r\n'
silent_reset redis-silent "$REDIS_PORT"

# hold_max 2 (deadline 20 s): the third silent connection evicts the first at once.
expect "set ShieldHoldMax" "$(req 0x2013 3 "$RLSN" 2)" "status=0 val0=0 val1=0"
expect "set ShieldDeadlineMs" "$(req 0x2012 3 "$RLSN" 20000)" "status=0 val0=0 val1=0"
for i in 1 2 3; do
	mw_spawn "ev$i" in_cli "$PY" "$SP" silent "$INS_IP" "$REDIS_PORT" 30
	mw_wait_for "grep -q lport '$(mw_logfile "ev$i")'" || mw_fail "ev$i did not connect"
done
mw_wait_for "grep -q '^end=' '$(mw_logfile ev1)'" 5 || mw_fail "hold_max 2: the oldest was not evicted"
expect "the evicted connection's end" "$(grep '^end=' "$(mw_logfile ev1)" | field end)" reset
sleep 0.5
! grep -q '^end=' "$(mw_logfile ev2)" "$(mw_logfile ev3)" || mw_fail "hold_max 2: more than the oldest went"
mw_stop ev3
mw_stop ev2 # the held ones see their clients go
mw_log "hold_max 2: the oldest evicted, the other two held"

# The counters: 7 connections passed (curl, keep-alive, slow head, POST, SET, GET, split),
# 2 deadline resets, 1 eviction, 2 gone, none held now.
want="shield: 0 held, 7 passed, 2 deadline resets, 1 evicted, 2 gone"
mw_wait_for "grep -q 'STATUS=ins 1: .*$want' '$(mw_logfile notify)'" 10 ||
	mw_fail "mw-ins's STATUS= line never said '$want': $(grep 'ins 1' "$(mw_logfile notify)" | tail -1)"
mw_log "counters: $want"

# --- held connections and the rates (docs/ins.md "Shield: rates and limits") ----------------
# nginx, filter http, deadline 20 s.  SrcMaxConns 2 guards the app's slots: three silent
# connections from one source are all held (they hold no slot); two keep-alive clients
# pass and stay open in nginx; a third one from the same source is reset when its
# request is complete (at admission to the app), unseen by nginx.
expect "set ShieldDeadlineMs 20 s" "$(req 0x2012 3 "$LSN" 20000)" "status=0 val0=0 val1=0"
expect "set ShieldSrcMaxConns 2" "$(req 0x2017 3 "$LSN" 2)" "status=0 val0=0 val1=0"
for i in 1 2 3; do
	mw_spawn "src$i" in_cli "$PY" "$SP" silent "$INS_IP" "$HTTP_PORT" 30
	mw_wait_for "grep -q lport '$(mw_logfile "src$i")'" || mw_fail "src$i did not connect"
done
for i in 1 2; do
	mw_spawn "ka$i" in_cli "$PY" "$SP" send "$INS_IP" "$HTTP_PORT" 0 \
		'GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n'
	mw_wait_for "grep -q '^sent=1' '$(mw_logfile "ka$i")'" || mw_fail "keep-alive client $i did not send"
	mw_wait_for "accepted $(field lport <"$(mw_logfile "ka$i")")" 5 ||
		mw_fail "SrcMaxConns 2: keep-alive client $i was not accepted"
done
mw_spawn ka3 in_cli "$PY" "$SP" send "$INS_IP" "$HTTP_PORT" 0 \
	'GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n'
mw_wait_for "grep -q '^resp=\|^sendfail=' '$(mw_logfile ka3)'" 15 || mw_fail "SrcMaxConns 2: the third client got no end"
grep -q '^resp=-.*end=reset\|^sendfail=reset' "$(mw_logfile ka3)" ||
	mw_fail "SrcMaxConns 2: the third passed connection was not reset: $(cat "$(mw_logfile ka3)")"
! accepted "$(field lport <"$(mw_logfile ka3)")" || mw_fail "SrcMaxConns 2: the third one reached nginx"
! grep -q '^end=' "$(mw_logfile src1)" "$(mw_logfile src2)" "$(mw_logfile src3)" ||
	mw_fail "SrcMaxConns 2: a held connection went (held ones must not count)"
mw_stop src1
mw_stop src2
mw_stop src3
mw_stop ka1
mw_stop ka2 # their entries are released: a new one is admitted again
mw_wait_for "grep -q 'STATUS=ins 1: .*shield: 0 held' '$(mw_logfile notify)'" 5 ||
	mw_fail "the src clients' held connections did not go"
ok=0
for _ in 1 2 3 4 5 6 7 8 9 10; do
	body=$(in_cli curl -sf --max-time 10 "http://$INS_IP:$HTTP_PORT/index.html") && { ok=1; break; }
	sleep 0.5 # nginx closes the keep-alive connections it still has a moment later
done
[ $ok = 1 ] || mw_fail "curl after SrcMaxConns failed"
expect "curl after the held ones went" "$body" "shielded $$"
expect "ShieldSrcMaxConns off" "$(req 0x2017 3 "$LSN" 0)" "status=0 val0=0 val1=0"
mw_log "SrcMaxConns 2: held ones not counted, two passed, the third reset at admission, released when they went"

# MinInRate 100 B/s (5 s windows): a head trickled at 10 B/s, and a silent client (only the
# timer judges it), are reset after one window, long before the 20 s deadline, unseen by
# nginx; a head sent at 200 B/s over ~8 s (longer than a window) is held, then answered.
expect "set ShieldMinInRate 100" "$(req 0x2014 3 "$LSN" 100)" "status=0 val0=0 val1=0"
slow=('GET /index.html HTTP/1.1\r\nX-Slow: ')
for i in $(seq 40); do slow+=(aaaaa); done
mw_spawn trickle in_cli "$PY" "$SP" send "$INS_IP" "$HTTP_PORT" 0.5 "${slow[@]}"
mw_spawn mute in_cli "$PY" "$SP" silent "$INS_IP" "$HTTP_PORT" 30
pad=$(printf 'a%.0s' $(seq 91))
legit=('GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n')
for i in $(seq 16); do legit+=("X-Pad: $pad\r\n"); done
legit+=('\r\n')
mw_spawn legit in_cli "$PY" "$SP" send "$INS_IP" "$HTTP_PORT" 0.5 "${legit[@]}"
# in_window NAME T: reset after one 5 s window (and its checks), well before the deadline
in_window() {
	awk -v t="$2" 'BEGIN { exit !(t >= 4.5 && t <= 9) }' ||
		mw_fail "$1: reset after ${2}s, want one 5 s window (MinInRate), not the 20 s deadline"
}
log=$(mw_logfile trickle)
mw_wait_for "grep -q '^sendfail=' '$log'" 15 || mw_fail "the 10 B/s client was not reset: $(tail -1 "$log")"
after=$(grep '^sendfail=' "$log" | field after)
in_window trickle "$after"
! accepted "$(field lport <"$log")" || mw_fail "nginx accepted the 10 B/s client"
log=$(mw_logfile mute)
mw_wait_for "grep -q '^end=' '$log'" 15 || mw_fail "the silent client was not reset"
expect "the silent client's end" "$(grep '^end=' "$log" | field end)" reset
in_window mute "$(grep '^end=' "$log" | field after)"
! accepted "$(field lport <"$log")" || mw_fail "nginx accepted the silent client"
log=$(mw_logfile legit)
mw_wait_for "grep -q '^sent=12$' '$log'" 20 || mw_fail "the 200 B/s client stuck: $(tail -1 "$log")"
! accepted "$(field lport <"$log")" || mw_fail "the 200 B/s client was accepted before its head was complete"
mw_wait_for "grep -q '^resp=' '$log'" 30 || mw_fail "the 200 B/s client got no answer: $(tail -1 "$log")"
resp=$(grep '^resp=' "$log" | field resp)
[[ "$resp" =~ ^HTTP/1.1_200 ]] || mw_fail "the 200 B/s client was answered '$resp', want 200"
accepted "$(field lport <"$log")" || mw_fail "the 200 B/s client answered but never observed as accepted"
want="limits: 1 src conns, 0 src rate, 0 pfx conns, 0 pfx rate, 0 untracked; 0 slow readers, 0 cut for buffer, 2 slow senders"
mw_wait_for "grep -q 'STATUS=ins 1: .*$want' '$(mw_logfile notify)'" 10 ||
	mw_fail "mw-ins's STATUS= line never said '$want': $(grep 'ins 1' "$(mw_logfile notify)" | tail -1)"
expect "ShieldMinInRate off" "$(req 0x2014 3 "$LSN" 0)" "status=0 val0=0 val1=0"
expect "ShieldDeadlineMs back to 2 s" "$(req 0x2012 3 "$LSN" 2000)" "status=0 val0=0 val1=0"
mw_log "MinInRate 100: the 10 B/s client reset after ${after}s, the silent one too, 200 B/s answered"

# Off again: a silent connection is accepted at once.
expect "ShieldFilter off" "$(req 0x2011 3 "$RLSN" 0)" "status=0 val0=0 val1=0"
mw_spawn redis-open in_cli "$PY" "$SP" silent "$INS_IP" "$REDIS_PORT" 3
mw_wait_for "grep -q lport '$(mw_logfile redis-open)'" || mw_fail "redis-open did not connect"
lport=$(field lport <"$(mw_logfile redis-open)")
mw_wait_for "accepted $lport" 5 || mw_fail "with the filter off, a silent connection is not accepted"
mw_log "filter off: accepted at once"
kill -0 "$(mw_pid ins1)" || mw_fail "mw-ins died"

# An INS that joins later gets the shield with the listener (recorded by mw-pvm).
kill -KILL "$(mw_pid ins1)"
mw_stop ins1 1
mw_wait_for "grep -q 'INS 1: channel ended' '$PVM_LOG'" 10 || mw_fail "mw-pvm did not notice the INS died"
mw_spawn ins1b ip netns exec "$NS_INS" "$INS" --id 1 -c "$CONF"
mw_wait_for "[ \$(grep -c 'INS 1 joined' '$PVM_LOG') -ge 2 ]" 10 || mw_fail "INS 1 did not join again"
mw_wait_for "ins_listens $HTTP_PORT" 10 || mw_fail "nginx's listener was not replayed"
expect "ShieldFilter on the new INS" "$(req 0x2011 2 "$LSN" 0)" "status=0 val0=2 val1=0"
silent_reset nginx-silent-rejoined "$HTTP_PORT"
body=$(in_cli curl -sf --max-time 10 "http://$INS_IP:$HTTP_PORT/index.html") || mw_fail "curl after the rejoin failed"
expect "curl after the rejoin" "$body" "shielded $$"
kill -0 "$(mw_pid ins1b)" || mw_fail "the new mw-ins died"
kill -0 "$(mw_pid pvm)" || mw_fail "mw-pvm died"
