#!/usr/bin/env python3
"""timed_load.py - requests, one connection each, timed against a line in a log

    timed_load.py HOST PORT PAR AFTER LOG REGEX STARTED

PAR threads send requests ("GET /index.html", "Connection: close"), one new
connection each, and note when each connection was started.  Meanwhile the log
file LOG is read every millisecond until REGEX matches a line: the moment that
line was seen.  A connection started after it was seen was started after what
the line reports had happened (a daemon logs an event once it is done).  Each
thread stops once it has started AFTER connections after that moment (or after
60 s without it).  The file STARTED is created once 100 connections are done
(the caller then knows connections are in flight).

Prints one line: "total=N failed=F after=A started_after=S seen=0|1 window_ms=W
errors=<kind:count,...>", A = the failed ones of the S connections started after
the line was seen, W = how long before it the first refused one started.
"""
import os
import re
import socket
import sys
import threading
import time

REQ = b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def one(host, port):
    try:
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(REQ)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return "ok" if data.startswith(b"HTTP/1.1 200") else "status"
    except OSError as e:
        return type(e).__name__


def main():
    host, port, par, n_after, log, rx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        int(sys.argv[4]), sys.argv[5], re.compile(sys.argv[6])
    started = sys.argv[7]
    count = [0]
    seen = [None]
    done = threading.Event()
    results = []
    lock = threading.Lock()

    def watch():
        with open(log, errors="replace") as f:
            buf = ""
            while not done.is_set():
                chunk = f.read()
                if not chunk:
                    time.sleep(0.001)
                    continue
                buf += chunk
                lines = buf.split("\n")
                buf = lines.pop()
                if any(rx.search(x) for x in lines):
                    seen[0] = time.monotonic()
                    return

    def worker():
        mine = []
        end = time.monotonic() + 60
        while time.monotonic() < end:
            t0 = time.monotonic()
            mine.append((t0, one(host, port)))
            with lock:
                count[0] += 1
                if count[0] == 100:
                    open(started, "w").close()
            if seen[0] is not None and sum(t > seen[0] for t, _ in mine[-n_after:]) >= n_after:
                break
        with lock:
            results.extend(mine)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    ts = [threading.Thread(target=worker) for _ in range(par)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    done.set()
    failed = [(t0, r) for t0, r in results if r != "ok"]
    started_after = [r for r in results if seen[0] is not None and r[0] > seen[0]]
    after = [f for f in failed if seen[0] is not None and f[0] > seen[0]]
    kinds = {}
    for _, r in failed:
        kinds[r] = kinds.get(r, 0) + 1
    # how long before the line was seen the first refused connection started (the kernel
    # front end's window between an INS's exit and its removal)
    refused = [t for t, r in failed if r == "ConnectionRefusedError"]
    span = (seen[0] - min(refused)) * 1000 if refused and seen[0] else 0
    if os.environ.get("TIMED_LOAD_DEBUG"):
        for t, r in sorted(failed):
            print("%.1f %s" % ((t - seen[0]) * 1000 if seen[0] else t, r), file=sys.stderr)
    print("total=%d failed=%d after=%d started_after=%d seen=%d window_ms=%.0f errors=%s" % (
        len(results), len(failed), len(after), len(started_after), seen[0] is not None, span,
        ",".join("%s:%d" % kv for kv in sorted(kinds.items())) or "-"))


if __name__ == "__main__":
    main()
