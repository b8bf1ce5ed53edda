#!/usr/bin/env python3
"""guard_probe.py - the app and the clients of test_guard.sh

  app PORT                    a worker-per-connection HTTP server: reads a request head,
                              answers 200, closes; prints "listening" once bound
  idle HOST PORT N SECONDS    N connections that send half a request head and nothing
                              more; prints "open N" once all are connected, "closed I T"
                              as each is cut (reset or EOF), "survived K" at the end
  fetch HOST PORT             one request; prints "ok" or "fail REASON"
  fetches HOST PORT SECONDS   one request every 0.2 s for SECONDS, a line each as fetch;
                              then "done ok=K fail=F"
"""
import socket
import sys
import threading
import time


def serve_one(c):
    try:
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(4096)
            if not d:
                return
            buf += d
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
    except OSError:
        pass
    finally:
        c.close()


def cmd_app(port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(256)
    print("listening", flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve_one, args=(c,), daemon=True).start()


def cmd_idle(host, port, n, seconds):
    conns = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\n")  # 16 bytes, never the end of the head
        s.setblocking(False)
        conns.append(s)
    print("open %d" % len(conns), flush=True)
    alive = set(range(n))
    t0 = time.time()
    while alive and time.time() - t0 < seconds:
        for i in list(alive):
            try:
                if conns[i].recv(4096) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                continue
            except OSError:
                pass
            alive.discard(i)
            print("closed %d %.3f" % (i, time.time() - t0), flush=True)
        time.sleep(0.05)
    print("survived %d" % len(alive), flush=True)


def fetch_one(host, port):
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.settimeout(5)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        return "ok" if data.startswith(b"HTTP/1.0 200") else "fail %r" % data[:40]
    except OSError as e:
        return "fail %s" % e


def cmd_fetch(host, port):
    print(fetch_one(host, port))


def cmd_fetches(host, port, seconds):
    ok = fail = 0
    end = time.time() + seconds
    while time.time() < end:
        r = fetch_one(host, port)
        print(r, flush=True)
        if r == "ok":
            ok += 1
        else:
            fail += 1
        time.sleep(0.2)
    print("done ok=%d fail=%d" % (ok, fail), flush=True)


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    if argv[1] == "app":
        cmd_app(int(argv[2]))
    elif argv[1] == "idle":
        cmd_idle(argv[2], int(argv[3]), int(argv[4]), float(argv[5]))
    elif argv[1] == "fetch":
        cmd_fetch(argv[2], int(argv[3]))
    elif argv[1] == "fetches":
        cmd_fetches(argv[2], int(argv[3]), float(argv[4]))
    else:
        raise SystemExit("guard_probe: unknown command " + argv[1])


if __name__ == "__main__":
    main(sys.argv)
