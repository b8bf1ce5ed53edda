#!/usr/bin/env python3
# shield_probe.py - clients for the accept-filter tests (test_shield_accf.sh)
#
#   shield_probe.py silent HOST PORT SECONDS   connect, send nothing; print "lport=P",
#                                              then how the connection ended:
#                                              "end=reset|eof|timeout after=T" (reset
#                                              before connect() returned: "lport=0")
#   shield_probe.py send HOST PORT GAP PIECE...  send each PIECE (Python escapes: \r\n,
#                                              \x00) GAP seconds apart, printing "sent=I"
#                                              after each; then read until EOF (10 s):
#                                              "resp=FIRST_LINE bytes=N end=eof|reset|timeout";
#                                              reset while sending: "sendfail=reset after=T"
#   shield_probe.py setopt LEVEL NAME          (under the shim) setsockopt(LEVEL, NAME, u64 2)
#                                              and getsockopt; prints "set=ERRNO get=ERRNO"
import errno
import socket
import sys
import time


def connect(host, port):
    s = socket.create_connection((host, int(port)), timeout=10)
    print("lport=%d" % s.getsockname()[1], flush=True)
    return s


def cmd_silent(host, port, seconds):
    t0 = time.monotonic()
    try:
        s = connect(host, port)
    except ConnectionResetError:  # reset at once (admission): before connect() returned
        print("lport=0\nend=reset after=%.3f" % (time.monotonic() - t0), flush=True)
        return
    s.settimeout(float(seconds))
    try:
        end = "eof" if s.recv(1) == b"" else "data"
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        end = "timeout"
    print("end=%s after=%.3f" % (end, time.monotonic() - t0), flush=True)


def cmd_send(host, port, gap, pieces):
    s = connect(host, port)
    t0 = time.monotonic()
    for i, p in enumerate(pieces):
        if i:
            time.sleep(float(gap))
        try:
            s.sendall(p.encode("latin-1").decode("unicode_escape").encode("latin-1"))
        except (ConnectionResetError, BrokenPipeError):
            print("sendfail=reset after=%.3f" % (time.monotonic() - t0), flush=True)
            return
        print("sent=%d" % (i + 1), flush=True)
    s.settimeout(10)
    got, end = b"", "eof"
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        end = "timeout"
    first = got.split(b"\n", 1)[0].strip().decode("latin-1").replace(" ", "_")
    print("resp=%s bytes=%d end=%s" % (first or "-", len(got), end), flush=True)


def cmd_setopt(level, name):
    s = socket.socket()
    res = []
    try:
        s.setsockopt(int(level, 0), int(name, 0), (2).to_bytes(8, "little"))
        res.append("set=0")
    except OSError as e:
        res.append("set=%s" % errno.errorcode.get(e.errno, e.errno))
    try:
        s.getsockopt(int(level, 0), int(name, 0), 8)
        res.append("get=0")
    except OSError as e:
        res.append("get=%s" % errno.errorcode.get(e.errno, e.errno))
    print(" ".join(res), flush=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "silent":
        cmd_silent(*args)
    elif cmd == "send":
        cmd_send(args[0], args[1], args[2], args[3:])
    elif cmd == "setopt":
        cmd_setopt(*args)
    else:
        raise SystemExit("shield_probe: unknown command " + cmd)
