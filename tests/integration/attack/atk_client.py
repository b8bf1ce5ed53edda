#!/usr/bin/env python3
"""atk_client.py - benign and hostile clients of the attack tests (asyncio, stdlib only)

PROTO is http (GET PATH, HTTP/1.1, Content-Length framed) or resp (Redis).
Every command is bounded in time and ends with one RESULT line on stdout.

  benign PROTO HOST PORT SECS [PATH]
      a request every 0.2 s for SECS, each on a new connection; ok = answered
      within 3 s.  RESULT ok= total= p99_ms= last_fail_s= (time since start of
      the last failed request, -1 if none: when the attack stopped hurting)
  slowline HOST PORT CONNS RATE SECS
      CONNS connections opened at RATE/s, each trickling a RESP command one
      byte every 5 s and never finishing it; reopened when the server closes
  flood HOST PORT CONNS RATE SECS
      CONNS idle connections opened at RATE/s, reopened when the server closes
  slowreq PROTO HOST PORT CLIENTS
      CLIENTS legitimate clients each sending a 400-byte request over 4 s
  slowdl PROTO HOST PORT CLIENTS BYTES RATE [PATH]
      CLIENTS legitimate clients each downloading BYTES at RATE bytes/s
  keepalive PROTO HOST PORT CLIENTS IDLE [PATH]
      CLIENTS connections: a request, IDLE s idle, a request on the same connection
"""
import asyncio
import sys
import time

ANSWER_S = 3.0
INTERVAL_S = 0.2


def http_request(path, extra=b"", close=True):
    conn = b"close" if close else b"keep-alive"
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: atk\r\nUser-Agent: atk-benign\r\n" +
            extra + b"Connection: " + conn + b"\r\n\r\n")


def resp_command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


async def read_http(reader):
    """Status code and body length of one Content-Length framed response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status, length


async def read_resp(reader):
    """One RESP reply: simple string/error/integer line, or a bulk string."""
    line = await reader.readuntil(b"\r\n")
    if line[:1] == b"$":
        n = int(line[1:-2])
        if n >= 0:
            await reader.readexactly(n + 2)
    return line


async def one_exchange(proto, reader, writer, path, close):
    if proto == "http":
        writer.write(http_request(path, close=close))
        status, _ = await read_http(reader)
        return status == 200
    writer.write(resp_command(b"PING"))
    return await read_resp(reader) == b"+PONG\r\n"


async def benign_one(proto, host, port, path):
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
        return await one_exchange(proto, reader, writer, path, True)
    finally:
        if writer:
            writer.close()


async def benign(proto, host, port, secs, path="/index.html"):
    start = time.monotonic()
    results = []  # (offset_s, ok, latency_s)

    async def timed(offset):
        t0 = time.monotonic()
        try:
            ok = await asyncio.wait_for(benign_one(proto, host, port, path), ANSWER_S)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            ok = False
        results.append((offset, ok, time.monotonic() - t0))

    tasks = []
    n = int(secs / INTERVAL_S)
    for i in range(n):
        delay = start + i * INTERVAL_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(timed(i * INTERVAL_S)))
    await asyncio.gather(*tasks)
    ok = sum(1 for r in results if r[1])
    lat = sorted(r[2] if r[1] else ANSWER_S for r in results)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0
    fails = [r[0] for r in results if not r[1]]
    last = max(fails) if fails else -1
    print("RESULT ok=%d total=%d p99_ms=%d last_fail_s=%.1f" % (ok, len(results), p99 * 1000, last))


class Pacer:
    """At most RATE connection attempts per second, shared by all workers."""

    def __init__(self, rate, deadline):
        self.gap = 1.0 / rate
        self.next = time.monotonic()
        self.deadline = deadline

    async def wait(self):
        """False when the caller's turn would come after the deadline."""
        now = time.monotonic()
        at = max(now, self.next)
        if at >= self.deadline:
            return False
        self.next = at + self.gap
        if at > now:
            await asyncio.sleep(at - now)
        return True


async def holder(host, port, pacer, deadline, stats, trickle):
    """One attack slot: connect, hold (trickling or idle) until closed, again."""
    while await pacer.wait():
        writer = None
        try:
            left = max(0.05, min(3, deadline - time.monotonic()))
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), left)
            stats["opened"] += 1
            msg = resp_command(b"SET", b"k" * 16, b"v" * 64) if trickle else b""
            i = 0
            while time.monotonic() < deadline:
                if trickle and i < len(msg):
                    writer.write(msg[i:i + 1])
                    i += 1
                # wait for the server to close us, 5 s, or the end, whichever first
                left = max(0.05, min(5, deadline - time.monotonic()))
                try:
                    data = await asyncio.wait_for(reader.read(4096), left)
                    if not data:
                        stats["closed"] += 1
                        break
                except asyncio.TimeoutError:
                    pass
        except (OSError, asyncio.TimeoutError):
            stats["failed"] += 1
            await asyncio.sleep(0.2)
        finally:
            if writer:
                writer.close()


async def hold_many(host, port, conns, rate, secs, trickle):
    deadline = time.monotonic() + secs
    pacer = Pacer(rate, deadline)
    stats = {"opened": 0, "closed": 0, "failed": 0}
    await asyncio.gather(*(holder(host, port, pacer, deadline, stats, trickle) for _ in range(conns)))
    print("RESULT opened=%(opened)d closed_by_server=%(closed)d failed=%(failed)d" % stats)


async def slowreq_one(proto, host, port):
    if proto == "http":
        pad = b"X-Pad: "
        base = len(http_request("/index.html")) + len(pad) + 2
        msg = http_request("/index.html", pad + b"p" * (400 - base) + b"\r\n")
    else:
        val = b"v" * 360
        msg = resp_command(b"SET", b"slowreq", val)
        msg = resp_command(b"SET", b"slowreq", b"v" * (len(val) + 400 - len(msg)))
    assert len(msg) == 400, len(msg)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for i in range(10):  # 40 bytes every 0.4 s: 4 s
            writer.write(msg[i * 40:(i + 1) * 40])
            await writer.drain()
            await asyncio.sleep(0.4)
        if proto == "http":
            status, _ = await asyncio.wait_for(read_http(reader), ANSWER_S)
            return status == 200
        return await asyncio.wait_for(read_resp(reader), ANSWER_S) == b"+OK\r\n"
    finally:
        writer.close()


async def slowdl_one(proto, host, port, size, rate, path):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if proto == "http":
            writer.write(http_request(path))
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                return False
            want = size
        else:
            writer.write(resp_command(b"GET", b"bigvalue"))
            line = await reader.readuntil(b"\r\n")
            want = int(line[1:-2]) + 2
            if want - 2 != size:
                return False
        got, t0 = 0, time.monotonic()
        while got < want:
            chunk = await reader.read(min(4096, want - got))
            if not chunk:
                print("failed: EOF after %d of %d bytes" % (got, want), flush=True)
                return False
            got += len(chunk)
            ahead = t0 + got / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        return True
    finally:
        writer.close()


async def keepalive_one(proto, host, port, idle, path):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if not await one_exchange(proto, reader, writer, path, False):
            return False
        await asyncio.sleep(idle)
        return await asyncio.wait_for(one_exchange(proto, reader, writer, path, False), ANSWER_S)
    finally:
        writer.close()


async def legit_many(clients, make):
    async def guarded():
        try:
            return await asyncio.wait_for(make(), 60)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            print("failed: %s %s" % (type(e).__name__, e), flush=True)
            return False
    res = await asyncio.gather(*(guarded() for _ in range(clients)))
    print("RESULT ok=%d total=%d" % (sum(1 for r in res if r), len(res)))


async def set_big(host, port, size):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(resp_command(b"SET", b"bigvalue", b"b" * size))
    ok = await read_resp(reader) == b"+OK\r\n"
    writer.close()
    return ok


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "benign":
        proto, host, port, secs = args[0], args[1], int(args[2]), float(args[3])
        asyncio.run(benign(proto, host, port, secs, *args[4:5]))
    elif cmd in ("slowline", "flood"):
        host, port, conns, rate, secs = args[0], int(args[1]), int(args[2]), float(args[3]), float(args[4])
        asyncio.run(hold_many(host, port, conns, rate, secs, cmd == "slowline"))
    elif cmd == "slowreq":
        proto, host, port, n = args[0], args[1], int(args[2]), int(args[3])
        asyncio.run(legit_many(n, lambda: slowreq_one(proto, host, port)))
    elif cmd == "slowdl":
        proto, host, port, n, size, rate = args[0], args[1], int(args[2]), int(args[3]), int(args[4]), float(args[5])
        path = args[6] if len(args) > 6 else "/big.bin"
        if proto == "resp" and not asyncio.run(set_big(host, port, size)):
            sys.exit("slowdl: cannot SET the big value")
        asyncio.run(legit_many(n, lambda: slowdl_one(proto, host, port, size, rate, path)))
    elif cmd == "keepalive":
        proto, host, port, n, idle = args[0], args[1], int(args[2]), int(args[3]), float(args[4])
        path = args[5] if len(args) > 5 else "/index.html"
        asyncio.run(legit_many(n, lambda: keepalive_one(proto, host, port, idle, path)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
