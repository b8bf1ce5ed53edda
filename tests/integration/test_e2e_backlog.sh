#!/bin/bash
# test_e2e_backlog.sh - a burst of connections larger than the app's accept queue: none is reset
#
# The app listens with a backlog of 64 and does not accept for 2 s while 300
# clients connect at once, then serves each ("ok\n" for its "hi\n"). In the
# kernel the extra connections wait (SYN retries, a full accept queue); through
# mwcomms they wait in mw-pvm until the app's AF_UNIX accept queue has room.
# Regression: mw-pvm used to reset every connection that met a full queue.
# Then a listener that never accepts (backlog 64) meets 700 clients: 512 wait in mw-pvm
# (8 x the backlog, at least 512), the rest are reset at once, mw-pvm says why.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || mw_fail "python3 is not installed at $PY"
mw_appliance_up

cat >"$MW_TMP/slow_app.py" <<'PYEOF'
import socket, sys, time
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", 9300))
ls.listen(64)
print("listening", flush=True)
time.sleep(2)
served = 0
ls.settimeout(10)
try:
    while served < 300:
        c, _ = ls.accept()
        c.settimeout(5)
        got = c.recv(3)
        if got != b"hi\n":
            print("got %r" % got, flush=True)
        if got == b"hi\n":
            c.sendall(b"ok\n")
            served += 1
        c.close()
except socket.timeout:
    pass
print("served %d" % served, flush=True)
PYEOF
cat >"$MW_TMP/burst.py" <<'PYEOF'
import selectors, socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
sel = selectors.DefaultSelector()
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex((host, 9300))
    socks.append(s)
    sel.register(s, selectors.EVENT_WRITE, "connect")
ok = reset = other = 0  # other: EOF without an answer, or a failed connect
deadline = time.time() + 30
while ok + reset + other < n and time.time() < deadline:
    for key, ev in sel.select(timeout=1):
        s = key.fileobj
        try:
            if key.data == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    other += 1; sel.unregister(s); continue
                s.send(b"hi\n")
                sel.modify(s, selectors.EVENT_READ, "reply")
            else:
                r = s.recv(16)
                sel.unregister(s)
                if r == b"ok\n": ok += 1
                elif r == b"": other += 1
                else: reset += 1
        except ConnectionResetError:
            reset += 1; sel.unregister(s)
        except OSError:
            other += 1; sel.unregister(s)
print("ok=%d reset=%d other=%d" % (ok, reset, other))
PYEOF
mw_spawn slow shimmed "$PY" "$MW_TMP/slow_app.py"
mw_wait_for "grep -q listening '$(mw_logfile slow)'" || mw_fail "the slow app did not start"
mw_wait_for "ins_listens 9300" || mw_fail "the INS does not listen on 9300"
R=$(in_cli timeout 60 "$PY" "$MW_TMP/burst.py" "$INS_IP" 300) || mw_fail "burst client failed: $R"
mw_log "burst of 300 against a backlog of 64: $R"
[ "$R" = "ok=300 reset=0 other=0" ] || mw_fail "connections lost while the app's accept queue was full: $R"
mw_wait_for "grep -q 'served 300' '$(mw_logfile slow)'" || mw_fail "the app did not serve 300: $(cat "$(mw_logfile slow)")"
! grep -q "cannot hand over" "$PVM_LOG" || mw_fail "mw-pvm gave up on a connection: $(grep 'cannot hand over' "$PVM_LOG")"

# --- a listener nobody accepts from: at most 8 x its backlog (at least 512) wait -------
# The app listens with a backlog of 64 and never accepts; 700 clients connect and send.
# mw-pvm keeps 512 of them waiting for the app and resets the rest at once (a kernel
# would drop their SYNs), so one unread listener cannot take the whole hand-over queue.
cat >"$MW_TMP/deaf_app.py" <<'PYEOF'
import socket, time
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", 9301))
ls.listen(64)
print("listening", flush=True)
time.sleep(120)
PYEOF
cat >"$MW_TMP/flood.py" <<'PYEOF'
import selectors, socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
sel = selectors.DefaultSelector()
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex((host, 9301))
    sel.register(s, selectors.EVENT_WRITE, "connect")
    if i % 32 == 31:
        time.sleep(0.02)  # paced: the INS's own queue (the backlog, 64) never overflows
reset = waiting = failed = 0
deadline = time.time() + 20
pending = n
while pending and time.time() < deadline:  # connect, send "hi\n", watch for EOF or RST
    for key, ev in sel.select(timeout=0.5):
        s = key.fileobj
        try:
            if key.data == "connect":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    failed += 1; pending -= 1; sel.unregister(s); continue
                s.send(b"hi\n")
                sel.modify(s, selectors.EVENT_READ, "wait")
                pending -= 1
            else:
                s.recv(16)
                reset += 1; sel.unregister(s)
        except OSError:
            reset += 1; sel.unregister(s)
            if key.data == "connect":
                pending -= 1
end = time.time() + 3  # resets come at once; the rest keep waiting
while time.time() < end:
    for key, ev in sel.select(timeout=0.5):
        try:
            key.fileobj.recv(16)
        except OSError:
            pass
        reset += 1; sel.unregister(key.fileobj)
waiting = sum(1 for k in sel.get_map().values() if k.data == "wait")
print("reset=%d waiting=%d failed=%d unconnected=%d" % (reset, waiting, failed, pending), flush=True)
time.sleep(30)  # held while the test counts at the INS; stopped by it
PYEOF
mw_spawn deaf shimmed "$PY" "$MW_TMP/deaf_app.py"
mw_wait_for "grep -q listening '$(mw_logfile deaf)'" || mw_fail "the deaf app did not start"
mw_wait_for "ins_listens 9301" || mw_fail "the INS does not listen on 9301"
mw_spawn flood in_cli timeout 90 "$PY" "$MW_TMP/flood.py" "$INS_IP" 700
mw_wait_for "grep -q '^reset=' '$(mw_logfile flood)'" 60 ||
	mw_fail "the flood client did not finish: $(cat "$(mw_logfile flood)")"
R=$(cat "$(mw_logfile flood)")
mw_log "700 connections to a listener that never accepts (backlog 64): $R"
# Counted at the INS (a client may think itself connected while a full SYN queue
# still holds its handshake): what mw-pvm keeps, plus the app's own queue.
held() { in_ins ss -Htn state established "( sport = :9301 )" | wc -l; }
mw_wait_for "[ \$(held) -ge 512 ]" 20 ||
	mw_fail "the INS holds only $(held) of the 700 connections: $R"
sleep 1
held=$(held)
mw_log "the INS holds $held of them"
# 512 waiting in mw-pvm, and the app's own AF_UNIX queue (backlog + 1: 65).
[ "$held" -ge 512 ] && [ "$held" -le $((512 + 65 + 8)) ] ||
	mw_fail "want 512 waiting in mw-pvm (plus the app's queue of 65), the INS holds $held: $R"
grep -q "too many connections wait for this listener" "$PVM_LOG" ||
	mw_fail "mw-pvm did not say why it reset the rest"
kill -0 "$(mw_pid pvm)" || mw_fail "mw-pvm died"
mw_stop flood
mw_stop deaf
