#!/bin/bash
# test_e2e_backlog.sh - a burst of connections larger than the app's accept queue: none is reset
#
# The app listens with a backlog of 64 and does not accept for 2 s while 300
# clients connect at once, then serves each ("ok\n" for its "hi\n"). In the
# kernel the extra connections wait (SYN retries, a full accept queue); through
# mwcomms they wait in mw-pvm until the app's AF_UNIX accept queue has room.
# Regression: mw-pvm used to reset every connection that met a full queue.
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
