#!/usr/bin/env python3
"""pend_probe.py - clients and an app for test_pvm_pend.sh (pvm.pending_total)

  app PORT FLAG          listen (backlog 1), accept nothing until FLAG exists, then
                         answer each connection's first 1 KiB with "ok " + its first
                         8 bytes, for 20 s
  benign HOST PORT I     send 1 KiB starting "benign-I", wait up to 90 s for the
                         answer; print "reply ..." or "reset"
  notify PATH OUT        stand in for systemd's notify socket at PATH: keep the
                         largest and the last "N byte(s) pending for apps" of
                         mw-pvm's STATUS lines in OUT ("max M last L resets R")
  attack HOST PORT N KB SECS
                         N connections each sending KB KiB, then held until reset
                         or for SECS s; print "resets R of N"
"""
import os
import re
import socket
import sys
import threading
import time


def app(port, flag):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    print("listening", flush=True)
    while not os.path.exists(flag):
        time.sleep(0.1)
    print("accepting", flush=True)

    def serve(c):
        c.settimeout(2)
        data = b""
        try:
            while len(data) < 1024:
                b = c.recv(1024 - len(data))
                if not b:
                    break
                data += b
            if data.startswith(b"benign"):
                c.sendall(b"ok " + data[:8])
        except OSError:
            pass
        c.close()

    s.settimeout(0.5)
    end = time.time() + 20
    while time.time() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def benign(host, port, i):
    s = socket.create_connection((host, port), timeout=10)
    msg = ("benign-%d" % i).encode()
    s.sendall(msg + b"." * (1024 - len(msg)))
    s.settimeout(90)
    try:
        r = s.recv(64)
    except OSError:
        r = b""
    print("reply %s" % r.decode(errors="replace") if r else "reset", flush=True)


def attack(host, port, n, kb, secs):
    conns = []
    blob = b"x" * (kb * 1024)
    for _ in range(n):
        c = socket.create_connection((host, port), timeout=10)
        c.setblocking(False)
        conns.append([c, 0])
    # Push every connection's bytes without blocking on any one of them.
    end = time.time() + 30
    while time.time() < end and any(sent < len(blob) for _, sent in conns):
        for e in conns:
            if e[1] < len(blob):
                try:
                    e[1] += e[0].send(blob[e[1]:])
                except BlockingIOError:
                    pass
                except OSError:
                    e[1] = len(blob)
        time.sleep(0.01)
    print("sent", flush=True)
    alive = set(range(n))
    end = time.time() + secs
    while alive and time.time() < end:
        for i in list(alive):
            try:
                if conns[i][0].recv(4096) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                continue
            except OSError:
                pass
            alive.discard(i)
        time.sleep(0.05)
    print("resets %d of %d" % (n - len(alive), n), flush=True)


def notify(path, out):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    pat = re.compile(rb"STATUS=.* (\d+) byte\(s\) pending for apps, (\d+) reset")
    top = 0
    while True:
        m = pat.search(s.recv(4096))
        if not m:
            continue
        last, resets = int(m.group(1)), int(m.group(2))
        top = max(top, last)
        with open(out + ".tmp", "w") as f:
            f.write("max %d last %d resets %d\n" % (top, last, resets))
        os.replace(out + ".tmp", out)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "app":
        app(int(sys.argv[2]), sys.argv[3])
    elif cmd == "benign":
        benign(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "notify":
        notify(sys.argv[2], sys.argv[3])
    elif cmd == "attack":
        attack(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
               int(sys.argv[6]))
    else:
        raise SystemExit("pend_probe: unknown command %s" % cmd)
