#!/usr/bin/env python3
# nf_probe.py - an independent Netflow consumer for the tests, written from
# /work/shared/spec/netflow.md with struct.pack (not from netflow/codec.c), so
# the C server is checked against a second reading of the wire format.
#
#   nf_probe.py obs ADDR OUT COUNT SECONDS   observations as lines into OUT
#                                            ("READY" first), until COUNT or SECONDS
#   nf_probe.py req ADDR NAME FLAGS SOCK|IP VAL0 [VAL1]
#                                            one request; prints "status=S val0=A val1=B"
#   nf_probe.py raw ADDR HEX                 send bytes; print the response or "closed"
#   nf_probe.py stall ADDR SECONDS [RELEASE] connect ("stalling lport=P"), read nothing, hold SECONDS or
#                                            until the file RELEASE exists, then
#                                            print "stalled read=N closed=0|1"
#   nf_probe.py probe ADDR                   MonitorOn and an IsOpen read; everything
#                                            that comes back in 3 s: "bytes=N closed=0|1"
#   nf_probe.py orphan PORT                  listen on PORT, fork; the child keeps the
#                                            socket 30 s ("child N", "got signal S" if
#                                            signalled), the parent exits at once
#   nf_probe.py fake-pvm PATH INDEX          a PVM's server on AF_UNIX PATH that sends,
#                                            to each consumer, an observation naming
#                                            PVM 3 (spoofed), then one naming INDEX,
#                                            and never answers a request (30 s)
# ADDR is "ip:port" (TCP) or "/path" (AF_UNIX). With $NF_TOKEN set, a TCP connection
# first sends the Auth request (mwcomms extension, docs/netflow.md) and expects its
# answer; $NF_TOKEN_NOCHECK=1 sends it without waiting.
#   nf_probe.py cut ADDR SOCK                mitigation close of SOCK; prints
#                                            "sent_at=T status=S" (T: just before the send)
# Peers for the scenarios (the app side runs under the shim):
#   nf_probe.py flood-server PORT TOTAL      accept one client, send TOTAL bytes; report
#                                            "EPIPE after N" and then what a read returns
#   nf_probe.py fetch HOST PORT PATH         HTTP/1.0 GET; "sent=N recv=M lport=P"
#   nf_probe.py slow-read HOST PORT SECONDS  read slowly; "got=N end=eof|reset|timeout"
#   nf_probe.py trickle HOST PORT SECONDS    read 1 KiB/s with a 4 KiB receive buffer,
#                                            watch TCP_INFO; "cut_at=T end=reset|eof|close
#                                            got=N" when the connection is lost
#   nf_probe.py hold HOST PORT SECONDS       connect, print "lport=P", hold the connection
#   nf_probe.py sig-wait PORT                listen on PORT; print "signal N" for each of
#                                            SIGUSR1 and SIGINT received (20 s at most)
import os
import signal
import socket
import struct
import sys
import time

SIG_INFO, SIG_REQ, SIG_RESP = 0xD310, 0xD320, 0xD32F
OBS = ["none", "create", "bind", "accept", "connect", "recv", "send", "close"]


def auth_request(token):
    t = token.encode().ljust(32, b"\0")
    return struct.pack(">HIHH16sI16s", SIG_REQ, 0x7FFF0001, 1, 0x2001, t[:16], 0, t[16:32])


def connect(addr, rcvbuf=None):
    if addr.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(addr)
        return s
    host, port = addr.rsplit(":", 1)
    host = host.strip("[]")
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect((host, int(port)))
    token = os.environ.get("NF_TOKEN")
    if token:
        s.sendall(auth_request(token))
        if os.environ.get("NF_TOKEN_NOCHECK") != "1":
            m = read_msg(s)
            if m is None or m[0] != "resp" or m[1][0] != 0x7FFF0001 or m[1][1] != 0:
                raise SystemExit("nf_probe: token refused: %r" % (m,))
    return s


def info(sock_id, obs=1):
    ep = struct.pack(">I16sH", 4, bytes([10, 9, 9, 9]) + bytes(12), 80)
    return struct.pack(">HIH4QQ", SIG_INFO, 0, obs, 1, 0, 2, 0, sock_id) + ep + ep + \
        struct.pack(">QQQ", 0, 0, sock_id)


def cmd_fake_pvm(path, index):
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(8)
    print("listening", flush=True)
    ls.settimeout(30)
    conns, deadline = [], time.time() + 30
    while time.time() < deadline:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            break
        c.sendall(info((3 << 32) | 0x51) + info((index << 32) | 0x52))
        print("served", flush=True)
        conns.append(c)  # requests are read by nobody: never answered


def cmd_orphan(port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(8)
    pid = os.fork()
    if pid:
        print("parent %d exits, child %d" % (os.getpid(), pid), flush=True)
        os._exit(0)
    for sig in (signal.SIGINT, signal.SIGUSR1, signal.SIGTERM):
        signal.signal(sig, lambda n, f: print("got signal %d" % n, flush=True))
    end = time.time() + 30
    while time.time() < end:
        time.sleep(0.1)


def cmd_probe(addr):
    s = connect(addr)
    total, closed, deadline = 0, False, time.time() + 3
    try:
        s.sendall(request(1, 0, 0x0001, sock=0) + request(2, 2, 0x0101, sock=1))
    except (BrokenPipeError, ConnectionResetError):
        deadline, closed = 0, True  # closed by the server: what it sent is still read
    s.settimeout(0.2)
    while True:
        try:
            b = s.recv(65536)
        except socket.timeout:
            if time.time() >= deadline:
                break
            continue
        except ConnectionResetError:
            closed = True
            break
        if not b:
            closed = True
            break
        total += len(b)
    print("bytes=%d closed=%d" % (total, int(closed)))


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def endpoint(b):
    af, addr, port = struct.unpack(">I16sH", b)
    if af == 4:
        return "%s:%d" % (socket.inet_ntop(socket.AF_INET, addr[:4]), port)
    if af == 6:
        return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, addr), port)
    return "none:%d/af%d" % (port, af)


def read_msg(s):
    """One message: ('info', dict) or ('resp', (id, status, v0, v1)); None on close."""
    head = recv_exact(s, 2)
    if head is None:
        return None
    sig = struct.unpack(">H", head)[0]
    if sig == SIG_INFO:
        body = recv_exact(s, 114)
        if body is None:
            return None
        m = head + body
        assert len(m) == 116
        (msg_id, obs, s0, n0, s1, n1, sock) = struct.unpack(">IHQQQQQ", m[2:48])
        local = endpoint(m[48:70])
        remote = endpoint(m[70:92])
        bin_, bout, extra = struct.unpack(">QQQ", m[92:116])
        return ("info", dict(id=msg_id, obs=OBS[obs] if obs < 8 else str(obs), start=s0,
                             start_ns=n0, now=s1, now_ns=n1, sock=sock, local=local,
                             remote=remote, bytes_in=bin_, bytes_out=bout, extra=extra))
    if sig == SIG_RESP:
        body = recv_exact(s, 24)
        if body is None:
            return None
        msg_id, status, v0, v1 = struct.unpack(">IiQQ", body)
        return ("resp", (msg_id, status, v0, v1))
    raise SystemExit("nf_probe: unexpected signature 0x%04x" % sig)


def request(msg_id, flags, name, val0=0, val1=0, sock=None, ip=None, af=2):
    if sock is not None:
        ident = struct.pack(">Q12x", sock)
    else:
        ident = struct.pack(">I16s", af, ip if isinstance(ip, bytes) else ip.encode())
    m = struct.pack(">HIHH", SIG_REQ, msg_id, flags, name) + struct.pack(">QQ", val0, val1)
    m += ident
    assert len(m) == 46
    return m


def cmd_obs(addr, out, count, seconds):
    s = connect(addr)
    deadline = time.time() + seconds
    n = 0
    # MonitorOn answered means registered: nothing after READY can be missed.
    s.sendall(request(1, 0, 0x0001, sock=0))
    while True:
        m = read_msg(s)
        if m is None:
            raise SystemExit("nf_probe: server closed before answering MonitorOn")
        if m[0] == "resp":
            assert m[1][:3] == (1, 0, 1), "MonitorOn answered %r" % (m[1],)
            break
    with open(out, "w", buffering=1) as f:
        f.write("READY\n")
        while n < count and time.time() < deadline:
            s.settimeout(max(0.05, deadline - time.time()))
            try:
                m = read_msg(s)
            except socket.timeout:
                break
            if m is None:
                f.write("CLOSED\n")
                break
            kind, v = m
            if kind == "info":
                n += 1
                f.write("obs=%(obs)s sock=%(sock)d extra=%(extra)d local=%(local)s "
                        "remote=%(remote)s in=%(bytes_in)d out=%(bytes_out)d id=%(id)d "
                        "start=%(start)d now=%(now)d\n" % v)
        f.write("END %d\n" % n)


def cmd_req(addr, name, flags, ident, val0, val1):
    s = connect(addr)
    kw = {}
    if ident.startswith("ip:"):
        kw["ip"] = ident[3:]
    elif ident.startswith("ip6:"):  # binary IPv6 (af 6)
        kw["ip"], kw["af"] = socket.inet_pton(socket.AF_INET6, ident[4:]), 6
    else:
        kw["sock"] = int(ident, 0)
    s.sendall(request(0x1234, int(flags, 0), int(name, 0), int(val0, 0), int(val1, 0), **kw))
    while True:
        m = read_msg(s)
        if m is None:
            print("closed")
            return
        if m[0] == "resp":
            msg_id, status, v0, v1 = m[1]
            assert msg_id == 0x1234, "response id %#x" % msg_id
            print("status=%d val0=%d val1=%d" % (status, v0, v1))
            return


def cmd_cut(addr, ident):
    s = connect(addr)
    m = request(0x1235, 3, 0x0101, 0, 0, sock=int(ident, 0))
    t = time.time()
    s.sendall(m)
    while True:
        r = read_msg(s)
        if r is None:
            print("sent_at=%.6f closed" % t)
            return
        if r[0] == "resp":
            print("sent_at=%.6f status=%d" % (t, r[1][1]), flush=True)
            return


def cmd_raw(addr, hexdata):
    s = connect(addr)
    s.sendall(bytes.fromhex(hexdata))
    s.settimeout(5)
    while True:
        try:
            m = read_msg(s)
        except (ConnectionResetError, socket.timeout) as e:
            print("closed (%s)" % type(e).__name__)
            return
        if m is None:
            print("closed")
            return
        if m[0] == "resp":
            print("resp id=%d status=%d val0=%d" % (m[1][0], m[1][1], m[1][2]))
            return


def cmd_stall(addr, seconds, release=None):
    s = connect(addr, rcvbuf=4096)
    print("stalling lport=%d" % s.getsockname()[1], flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if release and os.path.exists(release):
            break
        time.sleep(0.1 if release else max(0.0, deadline - time.monotonic()))
    # Did the server give up on us? A read returns EOF (or reset) if so.
    s.setblocking(False)
    total, closed = 0, False
    try:
        while True:
            b = s.recv(1 << 20)
            if not b:
                closed = True
                break
            total += len(b)
    except BlockingIOError:
        pass
    except ConnectionResetError:
        closed = True
    print("stalled read=%d closed=%d" % (total, int(closed)))


def cmd_flood_server(port, total):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(4)
    print("listening", flush=True)
    c, peer = ls.accept()
    chunk = b"x" * 65536
    sent = 0
    try:
        while sent < total:
            sent += c.send(chunk[: min(len(chunk), total - sent)])
        print("sent all %d" % sent, flush=True)
        return
    except BrokenPipeError:
        print("EPIPE after %d" % sent, flush=True)
    except ConnectionResetError:
        print("ECONNRESET after %d" % sent, flush=True)
    try:
        b = c.recv(4096)
        print("read EOF" if not b else "read %d bytes" % len(b), flush=True)
    except OSError as e:
        print("read error %s" % errno_name(e), flush=True)


def errno_name(e):
    import errno
    return errno.errorcode.get(e.errno, str(e.errno))


def cmd_fetch(host, port, path):
    s = socket.create_connection((host, port), timeout=10)
    req = ("GET %s HTTP/1.0\r\nHost: nf-test\r\n\r\n" % path).encode()
    s.sendall(req)
    got = 0
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += len(b)
    print("sent=%d recv=%d lport=%d" % (len(req), got, s.getsockname()[1]))


def cmd_slow_read(host, port, seconds):
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    print("lport=%d" % s.getsockname()[1], flush=True)
    deadline = time.time() + seconds
    got, end = 0, "timeout"
    while time.time() < deadline:
        try:
            b = s.recv(16384)
        except ConnectionResetError:
            end = "reset"
            break
        except socket.timeout:
            continue
        if not b:
            end = "eof"
            break
        got += len(b)
        time.sleep(0.01)
    print("got=%d end=%s" % (got, end), flush=True)


TCP_CLOSE = 7


def cmd_trickle(host, port, seconds):
    """A slow reader: 1 KiB a second, the connection's state checked every 5 ms."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect((host, port))
    s.setblocking(False)
    print("lport=%d" % s.getsockname()[1], flush=True)
    deadline = time.time() + seconds
    got, end, next_read = 0, "timeout", 0.0
    while time.time() < deadline:
        if s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == TCP_CLOSE:
            end = "close"
            break
        if time.time() >= next_read:
            next_read = time.time() + 1.0
            try:
                b = s.recv(1024)
            except BlockingIOError:
                b = None
            except ConnectionResetError:
                end = "reset"
                break
            if b == b"":
                end = "eof"
                break
            got += len(b) if b else 0
            print("got=%d" % got, flush=True)
        time.sleep(0.005)
    print("cut_at=%.6f end=%s got=%d" % (time.time(), end, got), flush=True)


def cmd_stuck(host, port, seconds):
    """A reader that takes nothing (tiny window, never reads); logs how it ended."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.settimeout(10)
    s.connect((host, port))
    print("lport=%d" % s.getsockname()[1], flush=True)
    deadline = time.time() + seconds
    end = "timeout"
    while time.time() < deadline:
        if s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == TCP_CLOSE:
            end = "close"
            break
        time.sleep(0.005)
    print("cut_at=%.6f end=%s" % (time.time(), end), flush=True)


def cmd_hold(host, port, seconds):
    s = socket.create_connection((host, port), timeout=10)
    print("lport=%d" % s.getsockname()[1], flush=True)
    time.sleep(seconds)


def cmd_sig_wait(port):
    got = []
    signal.signal(signal.SIGUSR1, lambda n, f: got.append(n))
    signal.signal(signal.SIGINT, lambda n, f: got.append(n))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("0.0.0.0", port))
    ls.listen(1)
    print("listening", flush=True)
    deadline = time.time() + 20
    while len(got) < 2 and time.time() < deadline:
        time.sleep(0.05)
        while got:
            print("signal %d" % got.pop(0), flush=True)


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__ if __doc__ else "usage: see the header")
    cmd, addr = argv[1], argv[2]
    if cmd == "obs":
        cmd_obs(addr, argv[3], int(argv[4]), float(argv[5]))
    elif cmd == "req":
        cmd_req(addr, argv[3], argv[4], argv[5], argv[6], argv[7] if len(argv) > 7 else "0")
    elif cmd == "raw":
        cmd_raw(addr, argv[3])
    elif cmd == "flood-server":
        cmd_flood_server(int(argv[2]), int(argv[3]))
    elif cmd == "fetch":
        cmd_fetch(argv[2], int(argv[3]), argv[4])
    elif cmd == "slow-read":
        cmd_slow_read(argv[2], int(argv[3]), float(argv[4]))
    elif cmd == "trickle":
        cmd_trickle(argv[2], int(argv[3]), float(argv[4]))
    elif cmd == "cut":
        cmd_cut(addr, argv[3])
    elif cmd == "stuck":
        cmd_stuck(argv[2], int(argv[3]), float(argv[4]))
    elif cmd == "hold":
        cmd_hold(argv[2], int(argv[3]), float(argv[4]))
    elif cmd == "sig-wait":
        cmd_sig_wait(int(argv[2]))
    elif cmd == "stall":
        cmd_stall(addr, float(argv[3]), argv[4] if len(argv) > 4 else None)
    elif cmd == "probe":
        cmd_probe(addr)
    elif cmd == "orphan":
        cmd_orphan(int(argv[2]))
    elif cmd == "fake-pvm":
        cmd_fake_pvm(addr, int(argv[3]))
    else:
        raise SystemExit("nf_probe: unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
