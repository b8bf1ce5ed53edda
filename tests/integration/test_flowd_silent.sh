#!/usr/bin/env bash
# test_flowd_silent.sh - a Netflow server that never answers holds no part of mw-flowd's loop
#
# mw-flowd alone; its one sensor is a TCP Netflow stream (flowd.netflow, with a token
# file) served by a stand-in that accepts every connection and never answers.  The
# handshake's Auth then waits for nothing, once a second: it must not wait in the loop
# that serves MAPI, the report clock and every other sensor.  Five runs of
# tools/mapi-rates over that sensor (two flows made and connected, one 1 s interval)
# each end within 1.9 s (on the old code, whose handshake waited in the loop, each
# took 30-40 s); the log says what is missing ("no answer to Auth within 2000 ms"),
# once, and mw-flowd keeps trying (the stand-in sees new connections).
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
FLOWD=$MW_BUILD_DIR/flowd/mw-flowd
[ -x "$FLOWD" ] || mw_fail "mw-flowd is not built ($FLOWD missing)"
RATES=$MW_BUILD_DIR/tools/mapi-rates
[ -x "$RATES" ] || mw_fail "mapi-rates is not built ($RATES missing)"

mw_spawn silent "$PY" -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
held = []
while True:
    c, _ = s.accept(); held.append(c); print("accepted %d" % len(held), flush=True)' "$MW_TMP/port"
mw_wait_for "[ -s '$MW_TMP/port' ]" 10 || mw_fail "the silent server did not start"
PORT=$(cat "$MW_TMP/port")
(umask 077 && echo "0123456789abcdef0123456789abcdef" >"$MW_TMP/token")
export MW_MAPI_SOCKET=$MW_RUNTIME_DIR/flowd.sock
mw_write_config "$MW_TMP/flowd.conf" "flowd: { netflow = \"127.0.0.1:$PORT\";
	netflow_token_file = \"$MW_TMP/token\"; mapi_socket = \"$MW_MAPI_SOCKET\";
	report_file = \"$MW_TMP/report.json\"; report_interval_s = 1; };"
mw_spawn flowd "$FLOWD" -c "$MW_TMP/flowd.conf"
FLOG=$(mw_logfile flowd)
mw_wait_for "[ -S '$MW_MAPI_SOCKET' ]" 10 || mw_fail "mw-flowd does not serve MAPI: $(cat "$FLOG")"
mw_wait_for "grep -q '^accepted' '$(mw_logfile silent)'" 10 ||
	mw_fail "mw-flowd did not connect to the silent server: $(cat "$FLOG")"

slow=0
for i in $(seq 1 5); do
	t0=$(date +%s%N)
	"$RATES" "netflow:127.0.0.1:$PORT" 10.0.0.0/8 1 1 >"$MW_TMP/rates.out" 2>&1 ||
		mw_fail "mapi-rates failed: $(cat "$MW_TMP/rates.out")"
	ms=$((($(date +%s%N) - t0) / 1000000))
	grep -q '^total in_pkts=0 ' "$MW_TMP/rates.out" || mw_fail "mapi-rates: $(cat "$MW_TMP/rates.out")"
	mw_log "run $i: ${ms} ms"
	[ "$ms" -lt 1900 ] || slow=$((slow + 1))
done
[ "$slow" = 0 ] || mw_fail "$slow of 5 MAPI runs waited for the silent server's handshake"
grep -q 'no answer to Auth within 2000 ms' "$FLOG" ||
	mw_fail "mw-flowd did not say the server is silent: $(cat "$FLOG")"
n=$(grep -c 'no answer to Auth within 2000 ms' "$FLOG")
[ "$n" = 1 ] || mw_fail "the same reason was logged $n times"
tries=$(grep -c '^accepted' "$(mw_logfile silent)")
[ "$tries" -ge 2 ] || mw_fail "mw-flowd tried $tries time(s) in over 5 s"
mw_log "a silent Netflow server: 5 MAPI runs answered at once, $tries handshakes tried"
