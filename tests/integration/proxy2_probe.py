#!/usr/bin/env python3
"""proxy2_probe.py - both ends of test_e2e_proxy2.sh (PROXY protocol v2 into mw-ins).

  app PORT
      The protected app (run under the shim), listening on PORT over IPv4 and on
      PORT+1 over IPv6 (dual stack): for every connection, read to EOF,
      then answer one line "peer=IP:PORT local=IP:PORT len=N sha=HEX" (what
      getpeername/getsockname said and what it received) and close. Prints
      "accepted IP:PORT" per connection, so the test can count what reached it.
  send HOST PORT KIND [BIND_IP]
      A client (in the cli namespace). KIND:
        proxy4   PROXY TCP4 192.0.2.7:4242 -> 198.51.100.1:80, then 200000 random
                 bytes in the same send(); checks the app's line: that peer and
                 local, byte-exact data
        proxy6   PROXY TCP6 [2001:db8::7]:4242 -> [2001:db8::1]:443 + data (to the
                 IPv6 listener)
        proxy4on6 as proxy4, to the IPv6 listener: the app sees ::ffff:192.0.2.7
        local    LOCAL header + data: the app sees the real client address
        tlv      PROXY TCP4 with TLVs, header and data sent byte by byte
        plain    data only, no header (option off: unchanged behaviour)
        rawhdr   the proxy4 header sent as data with the option off: the app
                 receives the header bytes themselves
      Prints "OK ..." and exits 0, or says what differed and exits 1.
  refused HOST PORT KIND [BIND_IP]
      The connection must be closed by the INS without an answer. KIND:
        garbage  an HTTP request instead of a header
        silent   nothing at all: closed after the INS's deadline (1.5..5 s)
        partial  the first 10 header bytes, then nothing: closed by the deadline
        proxy4   a valid header (for a sender that is not trusted)
        proxy6   a TCP6 header to an IPv4 listener (no IPv4 form for the app)
      Prints "OK closed after S s".
"""
import hashlib
import os
import socket
import struct
import sys
import threading
import time

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def out(*a):
    print(*a, flush=True)


def hdr_v4(src, sport, dst, dport, tlvs=b""):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport)
    return SIG + bytes([0x21, 0x11]) + struct.pack(">H", len(body) + len(tlvs)) + body + tlvs


def hdr_v6(src, sport, dst, dport):
    body = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack(">HH", sport, dport))
    return SIG + bytes([0x21, 0x21]) + struct.pack(">H", len(body)) + body


def name(a):
    return ("[%s]:%d" if ":" in a[0] else "%s:%d") % (a[0], a[1])


def app(port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    srv6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv6.bind(("::", port + 1))
    srv6.listen(64)
    out("listening")

    def handle(c):
        with c:
            peer, local = name(c.getpeername()), name(c.getsockname())
            out("accepted %s" % peer)
            h, n = hashlib.sha256(), 0
            while True:
                d = c.recv(65536)
                if not d:
                    break
                h.update(d)
                n += len(d)
            c.sendall(("peer=%s local=%s len=%d sha=%s\n" % (peer, local, n, h.hexdigest())).encode())

    def serve(ls):
        while True:
            c, _ = ls.accept()
            threading.Thread(target=handle, args=(c,), daemon=True).start()

    threading.Thread(target=serve, args=(srv6,), daemon=True).start()
    serve(srv)


def connect(host, port, bind_ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(15)
    if bind_ip:
        s.bind((bind_ip, 0))
    s.connect((host, port))
    return s


def send(host, port, kind, bind_ip):
    data = os.urandom(200000)
    s = connect(host, port, bind_ip)
    me = name(s.getsockname())
    want_peer, want_local = me, "%s:%d" % (host, port)
    if kind == "proxy4":
        s.sendall(hdr_v4("192.0.2.7", 4242, "198.51.100.1", 80) + data)
        want_peer, want_local = "192.0.2.7:4242", "198.51.100.1:80"
    elif kind == "proxy6":
        s.sendall(hdr_v6("2001:db8::7", 4242, "2001:db8::1", 443) + data)
        want_peer, want_local = "[2001:db8::7]:4242", "[2001:db8::1]:443"
    elif kind == "proxy4on6":
        s.sendall(hdr_v4("192.0.2.7", 4242, "198.51.100.1", 80) + data)
        want_peer, want_local = "[::ffff:192.0.2.7]:4242", "[::ffff:198.51.100.1]:80"
    elif kind == "local":
        s.sendall(SIG + bytes([0x20, 0x00, 0, 0]) + data)
    elif kind == "tlv":
        tlvs = bytes([0x04, 0, 3, 1, 2, 3, 0x02, 0, 4]) + b"host"
        for b in hdr_v4("192.0.2.9", 9, "198.51.100.2", 8080, tlvs):
            s.sendall(bytes([b]))
            time.sleep(0.002)  # pacing only: each byte its own segment, nothing waits on it
        s.sendall(data)
        want_peer, want_local = "192.0.2.9:9", "198.51.100.2:8080"
    elif kind == "plain":
        s.sendall(data)
    elif kind == "rawhdr":
        data = hdr_v4("192.0.2.7", 4242, "198.51.100.1", 80) + data
        s.sendall(data)
    else:
        out("unknown kind %s" % kind)
        return 1
    s.shutdown(socket.SHUT_WR)
    line = b""
    while not line.endswith(b"\n"):
        d = s.recv(4096)
        if not d:
            break
        line += d
    s.close()
    want = "peer=%s local=%s len=%d sha=%s" % (want_peer, want_local, len(data),
                                                hashlib.sha256(data).hexdigest())
    got = line.decode(errors="replace").strip()
    if got != want:
        out("MISMATCH\n got: %s\nwant: %s" % (got, want))
        return 1
    out("OK %s" % got)
    return 0


def refused(host, port, kind, bind_ip):
    t0 = time.monotonic()
    try:
        s = connect(host, port, bind_ip)
    except ConnectionResetError:
        # An untrusted sender is reset right after accept: the RST may beat connect()'s return.
        out("OK reset during connect")
        return 0
    msgs = {
        "garbage": b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
        "partial": hdr_v4("192.0.2.7", 4242, "198.51.100.1", 80)[:10],
        "proxy4": hdr_v4("192.0.2.7", 4242, "198.51.100.1", 80) + b"data",
        "proxy6": hdr_v6("2001:db8::7", 4242, "2001:db8::1", 443) + b"data",
        "silent": b"",
    }
    if kind not in msgs:
        s.close()
        out("unknown kind %s" % kind)
        return 1
    try:
        s.sendall(msgs[kind])
        d = s.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        d = b""
    except socket.timeout:
        out("still open after 15 s")
        return 1
    s.close()
    dt = time.monotonic() - t0
    if d:
        out("got an answer: %r" % d[:80])
        return 1
    if kind in ("silent", "partial") and not 1.5 <= dt <= 5:
        out("closed after %.2f s, want the 2 s deadline" % dt)
        return 1
    if kind in ("garbage", "proxy4", "proxy6") and dt > 1.5:
        out("closed only after %.2f s, want at once" % dt)
        return 1
    out("OK closed after %.2f s" % dt)
    return 0


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "app":
        app(int(a[1]))
        return 0
    if len(a) in (4, 5) and a[0] in ("send", "refused"):
        fn = send if a[0] == "send" else refused
        return fn(a[1], int(a[2]), a[3], a[4] if len(a) == 5 else None)
    out(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
