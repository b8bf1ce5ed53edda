#!/usr/bin/env python3
# bp_probe.py - peers for test_e2e_backpressure.sh: one stalled connection among fast ones
#
#   bp_probe.py server PORT RELEASE
#       threaded server (run under the shim); the client's first line says what to do:
#       "get N SEED"  send N bytes of SEED's pattern, then close
#       "put"   read to EOF, answer "ok N"
#       "hold"  read nothing until the file RELEASE exists, then as "put"
#   bp_probe.py get HOST PORT N         download N bytes; print "get N SECONDS"
#                                       (or "reset N": the connection was reset after N;
#                                       "corrupt N": byte N is not the pattern's)
# A download's bytes are a pattern of its own (a seed per connection, a prime period), so
# bytes lost, repeated, reordered or from another connection are caught at once.
#   bp_probe.py put HOST PORT N         upload N bytes; print "put N SECONDS" once acknowledged
#   bp_probe.py stall HOST PORT MODE N RELEASE
#       MODE get: ask for N bytes through a 4 KiB receive buffer and read nothing;
#       MODE put: send "hold", then write until blocked;
#       print "stalled"; once RELEASE exists finish the transfer as get/put do
import os
import random
import socket
import sys
import threading
import time

CHUNK = b"\x5a" * 65536
RELEASE = None
PERIOD = 131071  # prime, and more than a chunk: a slip of any length shows


def pattern(seed):
    """Two periods of SEED's bytes: any chunk starting within a period can be sliced."""
    p = random.Random(seed).randbytes(PERIOD)
    return p + p


def seed_of():
    return os.getpid() * 7919 + int(time.time() * 1000) % 7919


def wait_release(seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline and not os.path.exists(RELEASE):
        time.sleep(0.1)


def serve_one(c):
    f = c.makefile("rb")
    line = f.readline().decode().split()
    if line[0] == "get":
        left, off, pat = int(line[1]), 0, pattern(int(line[2]))
        while left > 0:
            o = off % PERIOD
            n = c.send(pat[o : o + min(left, len(CHUNK))])
            left -= n
            off += n
    elif line[0] in ("put", "hold"):
        if line[0] == "hold":
            wait_release()
        n = 0
        while True:
            b = f.read1(1 << 20)
            if not b:
                break
            n += len(b)
        c.sendall(b"ok %d\n" % n)
    c.close()


def server(port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(64)
    print("listening", flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve_one, args=(c,), daemon=True).start()


def ask(s, n):
    seed = seed_of()
    s.sendall(b"get %d %d\n" % (n, seed))
    return pattern(seed)


def get(host, port, n, s=None, pat=None):
    t0 = time.time()
    if s is None:
        s = socket.create_connection((host, port), timeout=60)
        pat = ask(s, n)
    got = 0
    while True:
        try:
            b = memoryview(s.recv(1 << 20))
        except ConnectionResetError:
            print("reset %d" % got, flush=True)
            return
        if not b:
            break
        for i in range(0, len(b), len(CHUNK)):
            piece, o = b[i : i + len(CHUNK)], (got + i) % PERIOD
            if piece != pat[o : o + len(piece)]:
                print("corrupt %d" % (got + i), flush=True)
                sys.exit(1)
        got += len(b)
    print("get %d %.3f" % (got, time.time() - t0), flush=True)


def put(host, port, n, s=None):
    t0 = time.time()
    if s is None:
        s = socket.create_connection((host, port), timeout=60)
        s.sendall(b"put\n")
    left = n
    while left > 0:
        left -= s.send(CHUNK[: min(left, len(CHUNK))])
    s.shutdown(socket.SHUT_WR)
    ack = s.makefile("rb").readline().decode().split()
    got = int(ack[1]) if len(ack) == 2 and ack[0] == "ok" else -1
    print("put %d %.3f" % (got, time.time() - t0), flush=True)


def stall(host, port, mode, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(60)
    s.connect((host, port))
    if mode == "get":
        pat = ask(s, n)
        time.sleep(2)  # reading nothing: the server's sends back up through the relay
        print("stalled", flush=True)
        wait_release()
        get(host, port, n, s, pat)
        return
    s.sendall(b"hold\n")
    s.setblocking(False)
    sent, quiet = 0, 0
    while sent < n and quiet < 5:
        try:
            sent += s.send(CHUNK[: min(len(CHUNK), n - sent)])
            quiet = 0
        except BlockingIOError:
            quiet += 1  # blocked for 0.5 s running: everything in between is full
            time.sleep(0.1)
    print("stalled after %d" % sent, flush=True)
    wait_release()
    s.settimeout(60)
    put(host, port, n - sent, s)


def main(a):
    global RELEASE
    if a[1] == "server":
        RELEASE = a[3]
        server(int(a[2]))
    elif a[1] == "get":
        get(a[2], int(a[3]), int(a[4]))
    elif a[1] == "put":
        put(a[2], int(a[3]), int(a[4]))
    elif a[1] == "stall":
        RELEASE = a[6]
        stall(a[2], int(a[3]), a[4], int(a[5]))
    else:
        raise SystemExit("bp_probe: unknown command " + a[1])


if __name__ == "__main__":
    main(sys.argv)
