#!/usr/bin/env python3
# attack_probe.py - apps and local attackers for test_attack_local.sh and test_listener_release.sh
"""Usage: attack_probe.py COMMAND ARGS...

Apps (run under the shim):
  victim PORT GOFILE MODE     listen on PORT, print "listening pid P fd F", wait for
                              GOFILE, then go: exit | segv | dup2 | exec | stay
  serve PORT TAG              listen on PORT; answer every connection "hello TAG"
  sockets N [GOFILE]          make TCP sockets until N or an error; print "made K errno E";
                              hold them until GOFILE exists
  client HOST PORT            connect, print the first line received (or the error)
  passfd-client HOST PORT     connect, try to pass a descriptor on the connection, then
                              send a request; print "passfd <errno or sent> got <line>"
  passfd-serve PORT           accept one connection, read its request, try to pass a
                              descriptor on it, answer; print "passfd <errno or sent>"
Helpers and attackers:
  name PID FD                 (root) print PID's FD's abstract name as hex
  takeover HEXNAME SECONDS    bind the name as soon as it is free, listen, answer "pwned"
  prebind CTL COUNT           register, then bind 'S' names of the next COUNT ids
  connect-name HEXNAME        connect to a listener's name (plain and with a forged 'A'
                              name) and send a request; print what came back
  hold-ctl CTL N GOFILE       open N control connections, hold them until GOFILE exists
  hold-tcp HOST PORT N GOFILE open N TCP connections, hold them until GOFILE exists
  hold-unix PATH N GOFILE     open N AF_UNIX stream connections, hold them until GOFILE exists
  passfd-unix PATH            connect to an AF_UNIX stream socket and try to pass it a
                              descriptor; print "passfd <errno or sent>"
  passfd-name HEXNAME         the same to a listener's abstract name
"""
import array
import ctypes
import errno
import os
import socket
import struct
import sys
import time


def out(*a):
    print(*a, flush=True)


def wait_file(path, limit=60):
    end = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.02)


def listener(port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(16)
    return ls


def victim(port, gofile, mode):
    ls = listener(port)
    out("listening pid %d fd %d" % (os.getpid(), ls.fileno()))
    wait_file(gofile)
    if mode == "exit":
        os._exit(0)  # no close(): the kernel closes the fds, as at any exit
    elif mode == "segv":
        ctypes.string_at(0)
    elif mode == "dup2":
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, ls.fileno())  # the socket is gone, the process lives on
        out("dup2 done")
        time.sleep(60)
    elif mode == "exec":
        os.execv("/bin/sleep", ["sleep", "60"])  # the socket is close-on-exec
    else:
        time.sleep(60)


def bound(port, gofile):
    """Two sockets bound to PORT and PORT + 1, never listening (no SO_REUSEADDR)."""
    keep = []
    for p in (port, port + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("0.0.0.0", p))
        keep.append(s)
    out("bound pid %d" % os.getpid())
    wait_file(gofile)


def serve(port, tag):
    ls = listener(port)
    out("listening pid %d" % os.getpid())
    ls.settimeout(None)  # the test stops it; it may wait long between its connections
    while True:
        c, peer = ls.accept()
        out("accepted %s" % (peer[0],))
        c.settimeout(5)
        try:
            c.recv(100)  # read the request first: closing on unread data resets
            c.sendall(b"hello %s\n" % tag.encode())
        except OSError as e:
            out("serve: %s" % e)
        c.close()


def sockets(n, gofile=None):
    keep, err = [], 0
    for _ in range(n):
        try:
            keep.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        except OSError as e:
            err = e.errno
            break
    out("made %d errno %s" % (len(keep), errno.errorcode.get(err, err) if err else 0))
    if gofile:
        wait_file(gofile)


def client(host, port):
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b"GET secret\n")
        got = s.recv(100)
        out("got %r" % got)
    except OSError as e:
        out("error %s" % errno.errorcode.get(e.errno, e.errno))


def name_of(pid, fd):
    libc = ctypes.CDLL(None, use_errno=True)
    lfd = libc.syscall(438, os.pidfd_open(pid), fd, 0)  # pidfd_getfd
    if lfd < 0:
        sys.exit("pidfd_getfd failed errno %d" % ctypes.get_errno())
    with socket.socket(fileno=lfd) as s:
        out(s.getsockname().hex())


def takeover(hexname, seconds):
    name = bytes.fromhex(hexname)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    end = time.monotonic() + seconds
    while True:
        try:
            s.bind(name)
            break
        except OSError:
            if time.monotonic() > end:
                out("never bound")
                return
    s.listen(16)
    out("listening")
    s.settimeout(seconds)
    try:
        while True:
            c, _ = s.accept()
            c.settimeout(1)
            try:
                got = c.recv(100)
                c.sendall(b"pwned\n")
            except OSError:
                got = b""
            out("attacker got %r" % got)
            c.close()
    except OSError:
        pass


# struct mw_shimctl_req / resp (common/shimctl.h): 128 and 224 bytes.
SHIMCTL_VERSION, OP_REGISTER, OP_SOCKET = 2, 1, 2


def shimctl(ctl, op, arg=0):
    req = struct.pack("=IIQiiII24s64s8s", op, 0, 0, arg, 0, 0, 0, b"", b"", b"")
    ctl.send(req)
    resp, fds, _, _ = socket.recv_fds(ctl, 224, 1)
    status, _, sock = struct.unpack_from("=iiQ", resp)
    return status, sock, fds


def prebind(ctl_path, count):
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ctl.settimeout(10)
    ctl.connect(ctl_path)
    status, tag, _ = shimctl(ctl, OP_REGISTER, SHIMCTL_VERSION)
    if status:
        sys.exit("register: %d" % status)
    status, mine, fds = shimctl(ctl, OP_SOCKET, 4)
    if status or not fds:
        sys.exit("socket: %d" % status)
    held, bound = [], 0
    for i in range(1, count + 1):
        sid = mine + i
        for name in [b"\0mwS" + struct.pack("=QQ", tag, sid)] + \
                [b"\0mwS" + struct.pack("=QQQ", tag, sid, nonce) for nonce in (0, 1, sid)]:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.bind(name)
                s.listen(1)
                held.append(s)
                bound += 1
            except OSError:
                s.close()
    out("prebound %d names after id %x" % (bound, mine))
    time.sleep(60)


def connect_name(hexname):
    name = bytes.fromhex(hexname)
    tag = name[4:12]
    peer = struct.pack("=BBHI16s", 4, 0, 666, 0, socket.inet_aton("6.6.6.6"))
    local = struct.pack("=BBHI16s", 4, 0, 80, 0, socket.inet_aton("10.231.0.2"))
    answered = 0
    for forged in (False, True):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if forged:
            s.bind(b"\0mwA" + tag + struct.pack("=QQ", 0x5300010080001234, 7) + peer + local)
        s.settimeout(3)
        try:
            s.connect(name)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            got = s.recv(100)
        except OSError as e:
            got = b""
            out("%s: %s" % ("forged" if forged else "plain", errno.errorcode.get(e.errno, e.errno)))
        if got:
            answered += 1
        out("%s: got %r" % ("forged" if forged else "plain", got))
    out("answered %d" % answered)


def hold_unix(path, n, gofile, kind=socket.SOCK_SEQPACKET):
    held = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, kind)
        s.connect(path)  # accepted by the kernel's backlog even if mw-pvm cannot
        held.append(s)
    out("holding %d" % len(held))
    wait_file(gofile)
    for s in held:
        s.close()
    out("released")


def hold_tcp(host, port, n, gofile):
    held = [socket.create_connection((host, port), timeout=5) for _ in range(n)]
    out("holding %d" % len(held))
    wait_file(gofile)
    for s in held:
        s.close()
    out("released")


def try_passfd(s):
    """Pass one end of a pipe on @s: "sent", or the errno name of the refusal."""
    r, w = os.pipe()
    try:
        s.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]))])
        return "sent"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        os.close(r)
        os.close(w)


def passfd_client(host, port):
    s = socket.create_connection((host, port), timeout=5)
    res = try_passfd(s)
    s.sendall(b"GET x\n")
    out("passfd %s got %r" % (res, s.recv(100)))


def passfd_serve(port):
    ls = listener(port)
    out("listening pid %d" % os.getpid())
    ls.settimeout(30)
    c, _ = ls.accept()
    c.settimeout(5)
    c.recv(100)
    res = try_passfd(c)
    c.sendall(b"hello passfd\n")
    c.close()
    out("passfd %s" % res)


def passfd_unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    out("passfd %s" % try_passfd(s))


def passfd_name(hexname):
    passfd_unix(bytes.fromhex(hexname))


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "victim":
        victim(int(a[0]), a[1], a[2])
    elif cmd == "bound":
        bound(int(a[0]), a[1])
    elif cmd == "serve":
        serve(int(a[0]), a[1])
    elif cmd == "sockets":
        sockets(int(a[0]), a[1] if len(a) > 1 else None)
    elif cmd == "client":
        client(a[0], int(a[1]))
    elif cmd == "name":
        name_of(int(a[0]), int(a[1]))
    elif cmd == "takeover":
        takeover(a[0], float(a[1]))
    elif cmd == "prebind":
        prebind(a[0], int(a[1]))
    elif cmd == "connect-name":
        connect_name(a[0])
    elif cmd == "hold-tcp":
        hold_tcp(a[0], int(a[1]), int(a[2]), a[3])
    elif cmd == "hold-ctl":
        hold_unix(a[0], int(a[1]), a[2])
    elif cmd == "hold-unix":
        hold_unix(a[0], int(a[1]), a[2], socket.SOCK_STREAM)
    elif cmd == "passfd-client":
        passfd_client(a[0], int(a[1]))
    elif cmd == "passfd-serve":
        passfd_serve(int(a[0]))
    elif cmd == "passfd-unix":
        passfd_unix(a[0])
    elif cmd == "passfd-name":
        passfd_name(a[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
