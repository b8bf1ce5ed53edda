#!/usr/bin/env python3
"""ipfix_collect.py PORTFILE OUT - a minimal IPFIX (RFC 7011) collector for mw-flowd's templates.

Binds 127.0.0.1 on a free UDP port (written to PORTFILE), and for every data record
of template 256 (IPv4: src, dst, sport, dport, proto, flags, octets, packets,
start ms, end ms) appends "src sport dst dport proto octets packets" to OUT.  The
template set is checked against the layout it decodes; anything else fails loudly.
"""
import socket
import struct
import sys

TPL_256 = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (1, 8), (2, 8), (152, 8), (153, 8)]


def main():
    portfile, out = sys.argv[1], sys.argv[2]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    with open(portfile + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    import os
    os.rename(portfile + ".tmp", portfile)
    while True:
        msg = s.recv(65535)
        version, length = struct.unpack("!HH", msg[:4])
        assert version == 10 and length == len(msg), (version, length, len(msg))
        off, lines = 16, []
        while off < length:
            set_id, set_len = struct.unpack("!HH", msg[off:off + 4])
            body = msg[off + 4:off + set_len]
            if set_id == 2:
                t = 0
                while t < len(body):
                    tid, n = struct.unpack("!HH", body[t:t + 4])
                    ies = [struct.unpack("!HH", body[t + 4 + 4 * i:t + 8 + 4 * i]) for i in range(n)]
                    if tid == 256:
                        assert ies == TPL_256, ies
                    t += 4 + 4 * n
            elif set_id == 256:
                for r in range(0, len(body) - len(body) % 46, 46):
                    src, dst = socket.inet_ntoa(body[r:r + 4]), socket.inet_ntoa(body[r + 4:r + 8])
                    sport, dport, proto, _flags, octets, pkts = struct.unpack("!HHBBQQ", body[r + 8:r + 30])
                    lines.append(f"{src} {sport} {dst} {dport} {proto} {octets} {pkts}\n")
            off += set_len
        with open(out, "a") as f:
            f.writelines(lines)


if __name__ == "__main__":
    main()
