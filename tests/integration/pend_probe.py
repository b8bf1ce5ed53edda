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
  slowread PORT KB PAUSE SECS
                         listen (backlog 1), accept one connection and no other: an
                         8-byte length, then that many bytes, read with a PAUSE s
                         pause after each KB KiB ("read N" then); answer "got N SHA256"
                         and keep listening without accepting until SECS s
  upload HOST PORT MB    send MB MiB of seeded random bytes after their length; print
                         "upload ok N" if the answer has their count and SHA-256,
                         else "upload bad ..." or "upload reset ..."
  flood HOST PORT N KB SECS
                         keep N connections up for SECS s, each sending KB KiB and
                         made again when reset; print "flood resets R"
"""
import hashlib
import os
import random
import re
import socket
import struct
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


def slowread(port, kb, pause, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    print("listening", flush=True)
    end = time.time() + secs
    c, _ = s.accept()
    hdr = b""
    while len(hdr) < 8:
        b = c.recv(8 - len(hdr))
        if not b:
            raise SystemExit("slowread: no length")
        hdr += b
    total = struct.unpack("!Q", hdr)[0]
    h = hashlib.sha256()
    got = since = 0
    while got < total:
        b = c.recv(min(65536, total - got))
        if not b:
            break
        h.update(b)
        got += len(b)
        since += len(b)
        if since >= kb * 1024:
            since = 0
            print("read %d" % got, flush=True)
            time.sleep(pause)
    try:
        c.sendall(("got %d %s\n" % (got, h.hexdigest())).encode())
    except OSError as e:
        print("answer: %s" % e, flush=True)
    print("done %d" % got, flush=True)
    time.sleep(max(0, end - time.time()))


def upload(host, port, mb):
    data = random.Random(7).randbytes(mb << 20)
    want = "got %d %s" % (len(data), hashlib.sha256(data).hexdigest())
    try:
        s = socket.create_connection((host, port), timeout=60)
        s.sendall(struct.pack("!Q", len(data)) + data)
        r = b""
        while not r.endswith(b"\n"):
            b = s.recv(256)
            if not b:
                break
            r += b
    except OSError as e:
        print("upload reset: %s" % e, flush=True)
        return
    r = r.decode(errors="replace").strip()
    print("upload ok %d" % len(data) if r == want else "upload bad: %r" % r, flush=True)


def flood(host, port, n, kb, secs):
    blob = b"f" * (kb * 1024)
    conns = [None] * n
    resets = 0
    end = time.time() + secs
    while time.time() < end:
        for i in range(n):
            if conns[i] is None:
                try:
                    c = socket.create_connection((host, port), timeout=5)
                except OSError:
                    continue
                c.setblocking(False)
                conns[i] = [c, 0]
            c, sent = conns[i]
            try:
                if sent < len(blob):
                    conns[i][1] += c.send(blob[sent:])
                elif c.recv(4096) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                continue
            except OSError:
                c.close()
                conns[i] = None
                resets += 1
        time.sleep(0.01)
    print("flood resets %d" % resets, flush=True)


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
    elif cmd == "slowread":
        slowread(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "upload":
        upload(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "flood":
        flood(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
              int(sys.argv[6]))
    else:
        raise SystemExit("pend_probe: unknown command %s" % cmd)
