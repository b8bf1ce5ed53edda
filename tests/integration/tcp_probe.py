#!/usr/bin/env python3
"""tcp_probe.py - small TCP peers for the integration tests (run under the shim or not).

  echo-server PORT              asyncio echo; prints "accepted IP:PORT" per connection
  many HOST PORT N              N concurrent connections, each echoes its own payload
  halfclose-server PORT         read to EOF, then answer "<bytes> <sha256>" and close
  halfclose-client HOST PORT N  send N random bytes, shut down writing, check the answer
  reset-client HOST PORT        connect, send, abort with RST (SO_LINGER 0)
  inject PID FD FORGED_IP       as another local process: take the app's listener name
                                from PID's FD and connect to it, with a forged 'A' name
  opts-server PORT              accept one connection; set and read back on-off options
                                on it (the shim sends those without waiting), answer
  listener-id PID FD            print the socket id in the 'S' name of PID's FD (hex)
  intrude CTL ID                as another user: register with mw-pvm at CTL and try
                                to act on socket ID without holding its fd (all refused),
                                and bind ports 80 (refused) and 0 (allowed) on its own
"""
import asyncio
import ctypes
import errno
import hashlib
import os
import socket
import struct
import sys


def out(*a):
    print(*a, flush=True)


async def echo_server(port):
    async def handle(r, w):
        peer = w.get_extra_info("peername")
        out("accepted %s:%d" % (peer[0], peer[1]))
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except ConnectionError:
            pass
        w.close()

    srv = await asyncio.start_server(handle, "0.0.0.0", port, backlog=4096)
    out("listening fd %d" % srv.sockets[0].fileno())
    await srv.serve_forever()


async def many(host, port, n):
    async def one(i):
        r, w = await asyncio.open_connection(host, port)
        msg = (b"%08d:" % i) + os.urandom(100)
        w.write(msg)
        await w.drain()
        got = await r.readexactly(len(msg))
        return (r, w, got == msg)

    conns = await asyncio.gather(*(one(i) for i in range(n)))
    # All N are open at the same time here; then a second exchange on each.
    good = 0
    for r, w, ok in conns:
        w.write(b"again")
        await w.drain()
        if ok and await r.readexactly(5) == b"again":
            good += 1
    for r, w, ok in conns:
        w.close()
    out("ok %d/%d" % (good, n))
    return good == n


def halfclose_server(port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(8)
    out("listening")
    c, peer = ls.accept()
    h = hashlib.sha256()
    n = 0
    while data := c.recv(65536):
        h.update(data)
        n += len(data)
    c.sendall(b"%d %s" % (n, h.hexdigest().encode()))
    c.close()
    out("served %d" % n)


def halfclose_client(host, port, n):
    data = os.urandom(n)
    s = socket.create_connection((host, port), timeout=30)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
    want = b"%d %s" % (n, hashlib.sha256(data).hexdigest().encode())
    out("reply ok" if reply == want else "reply BAD %r" % reply)
    return reply == want


def reset_client(host, port):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"hello before reset")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    out("reset sent")


def inject(pid, fd, forged_ip):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    lfd = libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd
    if lfd < 0:
        out("pidfd_getfd failed errno %d" % ctypes.get_errno())
        return False
    name = socket.socket(fileno=lfd).getsockname()  # abstract name of the app's listener
    if not isinstance(name, bytes) or not name.startswith(b"\0mwS"):
        out("listener name not recognised: %r" % (name,))
        return False
    tag = name[4:12]
    peer = struct.pack("=BBHI16s", 4, 0, 666, 0, socket.inet_aton(forged_ip))
    local = struct.pack("=BBHI16s", 4, 0, 80, 0, socket.inet_aton("10.231.0.2"))
    results = []
    for forged in (True, False):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if forged:
            s.bind(b"\0mwA" + tag + struct.pack("=QQ", 0x5300010000001234, 7) + peer + local)
        s.settimeout(5)
        s.connect(name)
        try:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            got = s.recv(100)
        except OSError:
            got = b""
        results.append(got)
        out("injection %s: got %r" % ("forged" if forged else "plain", got))
    return all(r == b"" for r in results)


def opts_server(port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(8)
    out("listening")
    c, _ = srv.accept()
    tcp = socket.IPPROTO_TCP
    out("default nodelay %d cork %d keepalive %d" % (
        c.getsockopt(tcp, socket.TCP_NODELAY), c.getsockopt(tcp, socket.TCP_CORK),
        c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)))
    for v in (1, 0, 1):
        c.setsockopt(tcp, socket.TCP_NODELAY, v)
        c.setsockopt(tcp, socket.TCP_CORK, v)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, v)
        out("set %d: nodelay %d cork %d keepalive %d" % (
            v, c.getsockopt(tcp, socket.TCP_NODELAY), c.getsockopt(tcp, socket.TCP_CORK),
            c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)))
    try:
        c.setsockopt(tcp, socket.TCP_CORK, b"\1\0")
        out("short cork value: accepted")
    except OSError as e:
        out("short cork value: errno %d" % e.errno)
    # corked reply, then uncorked: the bytes must follow the uncork out
    c.setsockopt(tcp, socket.TCP_CORK, 1)
    c.sendall(b"corked reply\n")
    c.setsockopt(tcp, socket.TCP_CORK, 0)
    c.recv(1)  # hold the connection open until the client is done
    c.close()


def steal_name(pid, fd):
    libc = ctypes.CDLL(None, use_errno=True)
    lfd = libc.syscall(438, os.pidfd_open(pid), fd, 0)  # pidfd_getfd
    if lfd < 0:
        sys.exit("pidfd_getfd failed errno %d" % ctypes.get_errno())
    with socket.socket(fileno=lfd) as s:
        return s.getsockname()


# struct mw_shimctl_req / resp (common/shimctl.h): 128 and 224 bytes.
SHIMCTL_VERSION = 2
OP_REGISTER, OP_SOCKET, OP_BIND, OP_LISTEN, OP_GETOPT, OP_GETNAME, OP_CLOSE_HINT = 1, 2, 3, 4, 8, 9, 10


def shimctl_req(op, sock=0, arg=0, arg2=0, length=0, port=0):
    addr = struct.pack("=BBHI16s", 4 if op == OP_BIND else 0, 0, port, 0, b"")
    return struct.pack("=IIQiiII24s64s8s", op, 0, sock, arg, arg2, length, 0, addr, b"", b"")


def shimctl(ctl, op, fd=None, **kw):
    fds = [fd] if fd is not None else []
    socket.send_fds(ctl, [shimctl_req(op, **kw)], fds)
    if op == OP_CLOSE_HINT:
        return None
    resp, fds, _, _ = socket.recv_fds(ctl, 224, 1)
    status, arg, sock = struct.unpack_from("=iiQ", resp)
    if op == OP_SOCKET:  # the app's socket comes with the answer
        return status, arg, sock, (socket.socket(fileno=fds[0]) if fds else None)
    for f in fds:
        os.close(f)
    return status, arg, sock


def intrude(ctl_path, victim):
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ctl.settimeout(10)
    ctl.connect(ctl_path)
    status, _, tag = shimctl(ctl, OP_REGISTER, arg=SHIMCTL_VERSION)
    out("register: %d" % status)
    if status:
        return False
    ok = True
    decoy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    decoy.bind(b"\0mwS" + struct.pack("=QQQ", tag, victim ^ 1, 1))  # ours, not the victim's
    for name, op, fd, kw in (("getname, no fd", OP_GETNAME, None, {}),
                             ("getname, another fd", OP_GETNAME, decoy.fileno(), {}),
                             ("getopt, no fd", OP_GETOPT, None, {"arg": 1, "arg2": 3, "length": 4}),
                             ("listen, another fd", OP_LISTEN, decoy.fileno(), {"arg": 5})):
        status = shimctl(ctl, op, fd, sock=victim, **kw)[0]
        out("%s on the victim: %d" % (name, status))
        ok = ok and status == -errno.ENOENT
    shimctl(ctl, OP_CLOSE_HINT, sock=victim)  # its fd is alive: must be ignored
    for port, want in ((80, -errno.EACCES), (0, 0)):
        status, _, sock, mine = shimctl(ctl, OP_SOCKET, arg=4)
        if status or mine is None:
            out("socket: %d, fd %r" % (status, mine))
            return False
        status = shimctl(ctl, OP_BIND, mine.fileno(), sock=sock, port=port)[0]
        out("bind own socket to port %d: %d" % (port, status))
        ok = ok and status == want
    return ok


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "echo-server":
        asyncio.run(echo_server(int(args[0])))
    elif cmd == "many":
        sys.exit(0 if asyncio.run(many(args[0], int(args[1]), int(args[2]))) else 1)
    elif cmd == "halfclose-server":
        halfclose_server(int(args[0]))
    elif cmd == "halfclose-client":
        sys.exit(0 if halfclose_client(args[0], int(args[1]), int(args[2])) else 1)
    elif cmd == "reset-client":
        reset_client(args[0], int(args[1]))
    elif cmd == "opts-server":
        opts_server(int(args[0]))
    elif cmd == "listener-id":
        print("%x" % struct.unpack_from("=Q", steal_name(int(args[0]), int(args[1])), 12)[0])
    elif cmd == "intrude":
        sys.exit(0 if intrude(args[0], int(args[1], 16)) else 1)
    elif cmd == "inject":
        sys.exit(0 if inject(int(args[0]), int(args[1]), args[2]) else 1)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
