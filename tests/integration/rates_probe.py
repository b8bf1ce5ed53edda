#!/usr/bin/env python3
# rates_probe.py - peers for test_shield_rates.sh (shield rates and limits, docs/ins.md)
#
#   rates_probe.py server PORT SIZE      (under the shim) accept forever; each connection
#                                        gets SIZE bytes (SIZE 0: "hi\n") in one sendall(),
#                                        then is held until the client closes (60 s);
#                                        prints "wrote lport=P secs=S" when the write
#                                        completed, "failed lport=P errno=E" if it failed
#   rates_probe.py conns HOST PORT N SRC HOLD
#                                        open N connections from address SRC at once, then
#                                        wait (3 s each) for the greeting or a reset;
#                                        prints "ok=K reset=R", holds them HOLD s, "done";
#                                        N and SRC may be lists ("8,3" "A,B"): the groups
#                                        connect one after the other at once, a line each
#   rates_probe.py drain HOST PORT SIZE  read SIZE bytes as fast as possible;
#                                        prints "got=N end=done|eof|reset secs=S"
#   rates_probe.py notify PATH           a systemd notify socket at PATH: prints each
#                                        STATUS= it receives, one a line (120 s)
import errno
import socket
import sys
import threading
import time


def serve_one(c, peer, size):
    lport = peer[1]
    data = b"hi\n" if size == 0 else b"x" * size
    t0 = time.monotonic()
    try:
        c.sendall(data)
        print("wrote lport=%d secs=%.3f" % (lport, time.monotonic() - t0), flush=True)
        c.settimeout(60)
        while c.recv(65536):
            pass
    except OSError as e:
        print("failed lport=%d errno=%s" % (lport, errno.errorcode.get(e.errno, e.errno)),
              flush=True)
    finally:
        c.close()


def cmd_server(port, size):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(128)
    print("listening", flush=True)
    while True:
        c, peer = ls.accept()
        threading.Thread(target=serve_one, args=(c, peer, size), daemon=True).start()


def outcome(s):
    """'ok' once the greeting arrived, 'reset' if the connection was cut, within 3 s."""
    if s is None:
        return "reset"  # cut before connect() returned
    s.settimeout(3)
    try:
        b = s.recv(16)
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"
    return "ok" if b.startswith(b"hi") else "reset"


def cmd_conns(host, port, ns, srcs, hold):
    groups = []
    for n, src in zip(ns, srcs):
        socks = []
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((src, 0))
            s.settimeout(10)
            try:
                s.connect((host, port))
            except ConnectionResetError:
                s.close()
                s = None
            socks.append(s)
        groups.append(socks)
    for socks in groups:
        res = [outcome(s) for s in socks]
        print("ok=%d reset=%d timeout=%d" % (res.count("ok"), res.count("reset"),
                                             res.count("timeout")), flush=True)
    time.sleep(hold)
    for socks in groups:
        for s in socks:
            if s is not None:
                s.close()
    print("done", flush=True)


def cmd_drain(host, port, size):
    s = socket.create_connection((host, port), timeout=10)
    t0 = time.monotonic()
    got, end = 0, "done"
    while got < size:
        try:
            b = s.recv(1 << 20)
        except ConnectionResetError:
            end = "reset"
            break
        if not b:
            end = "eof"
            break
        got += len(b)
    print("got=%d end=%s secs=%.3f" % (got, end, time.monotonic() - t0), flush=True)
    s.close()


def cmd_notify(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    print("ready", flush=True)
    s.settimeout(120)
    try:
        while True:
            for line in s.recv(4096).decode("latin-1").split("\n"):
                if line.startswith("STATUS="):
                    print(line, flush=True)
    except socket.timeout:
        pass


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "server":
        cmd_server(int(argv[2]), int(argv[3]))
    elif cmd == "conns":
        ns = [int(n) for n in argv[4].split(",")]
        srcs = argv[5].split(",")
        if len(ns) != len(srcs):
            sys.exit("conns: N and SRC lists differ in length")
        cmd_conns(argv[2], int(argv[3]), ns, srcs, float(argv[6]))
    elif cmd == "drain":
        cmd_drain(argv[2], int(argv[3]), int(argv[4]))
    elif cmd == "notify":
        cmd_notify(argv[2])
    else:
        sys.exit("usage: see the head of rates_probe.py")


if __name__ == "__main__":
    main(sys.argv)
