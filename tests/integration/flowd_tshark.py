#!/usr/bin/env python3
# flowd_tshark.py - mw-flowd's report against tshark's reading of the same capture
#
#   flowd_tshark.py read PCAP SERVER >TSHARK_OUT    run tshark once on the capture
#   flowd_tshark.py TSHARK_OUT totals                IP packets and IP bytes (ip.len)
#   flowd_tshark.py TSHARK_OUT mapi SERVER           KEY=VALUE for test_flowd_mapi's
#                                   counters (see mapi_truth)
#   flowd_tshark.py TSHARK_OUT REPORT live|offline CLIENT
#                                   compare; prints a summary, or MISMATCH lines and exits 1
#
# TSHARK_OUT is one tshark run on the test's pcap: one line per frame (-T fields,
# FIELDS below, tab-separated), then the tables of -z io,stat,0 (columns IO_COLS),
# -z endpoints,ip, -z conv,tcp and -z conv,udp.  tshark dissects, tells the streams
# apart and counts; this script reads its numbers, and sums its per-frame fields
# where tshark has no exact table:
# per second on epoch-aligned seconds (io,stat's intervals start at the first frame),
# a conversation's bytes (conv prints them rounded, "1054 kB": the sum must round to
# it), attempts and the distinct ports and peers they reach.
#
# What each side counts (docs/flowd.md, "Checked against tshark"):
#   bytes          mw-flowd's are frame bytes (frame.len, tshark's "Bytes" columns);
#                  IPFIX's octetDeltaCount is IP bytes (ip.len): "totals" sums those.
#   interval       pkts/bytes: IP frames = io,stat column "ip"; frames: every frame
#                  (column "frame"); not_ip: column "!ip".
#   classes        over the capture, io,stat columns inweb, in, other (the server, SERVER below, is
#                  the only inside address and never opens a connection): inweb = to or
#                  from it on port 80/443/8080, in = to or from it on other ports,
#                  other = neither end it; out, outweb, internal = nothing.
#   seconds        offline: floor(frame.time_epoch) of each IP frame, exactly (a line
#                  only for seconds with traffic); live: the same frames, but a frame
#                  the sensor reads after the report clock (wall clock - 0.3 s) left its
#                  second counts in a later one, never an earlier one: cumulative
#                  counts never run ahead of tshark's and end equal.
#   talkers        bytes sent by an address = endpoints,ip "Tx Bytes".
#   conversations  mw-flowd's stream = tshark's tcp.stream/udp.stream, bytes both ways:
#                  the sum of its frame.len, whose frames equal conv,tcp/udp's for the
#                  endpoint pair and whose bytes round to conv's (nc reuses a client
#                  port towards other servers: endpoints,tcp cannot tell streams apart).
#   applications   (proto, server port): the sum over the conversations whose server
#                  (the receiver of the first SYN, else the lower port) has that port.
#   top-N          Space-Saving: a listed row's truth t has t <= bytes <= t + error,
#                  error <= topn_error_bound (interval bytes / sketch_counters), and no
#                  unlisted key has more than the smallest listed row (exact: error 0).
#   anomalies      attempts (SYN without ACK, or a UDP stream's first datagram from its
#                  client) by CLIENT counted from the fields exactly; rejected: streams
#                  whose server answered the client's SYN with a RST before any SYN of
#                  its own, exactly; distinct ports and peers of those attempts:
#                  HyperLogLog, within 3 standard errors (3 x 6.5 %) and at most the
#                  attempts.
import json
import subprocess
import sys
from collections import defaultdict

FIELDS = ["frame.time_epoch", "frame.len", "ip.src", "ip.dst", "ip.len", "ip.proto",
          "tcp.stream", "tcp.srcport", "tcp.dstport", "tcp.flags", "udp.stream", "udp.srcport",
          "udp.dstport", "arp.src.proto_ipv4", "arp.dst.proto_ipv4"]
IO_COLS = ["frame", "ip", "!ip", "inweb", "in", "other", "web80"]
WEB = "(tcp.port == 80 || tcp.port == 443 || tcp.port == 8080)"
HLL_BOUND = 3 * 0.065  # HyperLogLog with 256 registers: 3 standard errors
SI = {"bytes": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}  # the units of conv's rounded bytes
errors = []


def tshark(pcap, server):
    """One pass: the fields of every frame, then the tables (io,stat's column filters
    are the classes when SERVER is the only inside address and never a client)."""
    cols = ["frame", "ip", "!ip", "ip.addr == %s && %s" % (server, WEB),
            "ip.addr == %s && !%s" % (server, WEB), "ip && !(ip.addr == %s)" % server,
            "tcp.port == 80"]
    argv = ["tshark", "-n", "-r", pcap, "-T", "fields", "-E", "separator=/t"]
    for f in FIELDS:
        argv += ["-e", f]
    for z in ("io,stat,0," + ",".join(cols), "endpoints,ip", "conv,tcp", "conv,udp"):
        argv += ["-z", z]
    r = subprocess.run(argv, stdout=sys.stdout, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        raise SystemExit("tshark failed (%d): %s" % (r.returncode, r.stderr))


def fail(msg):
    errors.append(msg)


def parse_tshark(path):
    """Frames (dicts of FIELDS) and the tables: io [(frames, bytes)] per IO_COLS column,
    endpoints {addr: row}, convs {(kind, {endpoint a, endpoint b}): [(frames, bytes, unit)]}."""
    frames, io, eps, convs = [], None, {}, defaultdict(list)
    section = None  # the field lines, until the first table's "===" rule
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("="):
            section = section or "tables"
        if section is None:
            v = line.split("\t")
            if len(v) != len(FIELDS):
                raise SystemExit("tshark: unexpected field line: %r" % line)
            # ip.src etc. repeat for an ICMP error's inner header: the outer one is first
            frames.append({k: x.split(",")[0] for k, x in zip(FIELDS, v)})
            continue
        if line.startswith("| IO Statistics"):
            section = "io"
        elif line.endswith(" Endpoints") or line.endswith(" Conversations"):
            kind = line.split()[0].lower()  # ipv4, tcp, udp
            section = ("ep" if line.endswith("Endpoints") else "conv", kind)
        elif section == "io" and line.startswith("|") and "<>" in line:
            cells = [int(c) for c in line.strip("|").split("|")[1:]]  # frames, bytes per column
            io = list(zip(cells[0::2], cells[1::2]))
        elif isinstance(section, tuple) and line and line[0].isdigit():
            c = line.split()
            if section == ("ep", "ipv4"):
                eps[c[0]] = dict(pkts=int(c[1]), bytes=int(c[2]), tx_pkts=int(c[3]),
                                 tx_bytes=int(c[4]), rx_pkts=int(c[5]), rx_bytes=int(c[6]))
            elif section[0] == "conv":
                # "A:pa <-> B:pb" then frames, bytes, unit for <-, -> and the total,
                # then start and duration; tshark 4.0 rounds bytes ("1051 kB")
                (a, pa), (b, pb) = c[0].rsplit(":", 1), c[2].rsplit(":", 1)
                n = int(c[9])
                if c[1] != "<->" or int(c[3]) + int(c[6]) != n:
                    raise SystemExit("tshark: unexpected conversation line: %r" % line)
                key = (section[1], frozenset(((a, int(pa)), (b, int(pb)))))
                convs[key].append((n, int(c[10]), c[11]))
    if io is None or len(io) != len(IO_COLS):
        raise SystemExit("tshark: no io,stat table with %d columns" % len(IO_COLS))
    return frames, dict(zip(IO_COLS, io)), eps, convs


def ip_frames(frames):
    return [f for f in frames if f["ip.src"]]


def report_lines(path):
    secs, intervals = [], []
    for line in open(path):
        if line.startswith("{"):
            r = json.loads(line)
            if r["type"] == "second":
                secs.append(r)
            elif r["type"] == "interval":
                intervals.append(r)
    return secs, intervals


def truth_streams(frames):
    """Per stream (proto, tshark's stream index): client and server endpoints, the
    client's attempts, whether its server refused before any SYN of its own."""
    st = {}
    for f in ip_frames(frames):
        # (an ICMP error would show its quoted header's ports: ip.proto decides)
        if f["ip.proto"] == "6":
            proto, key, sp, dp = 6, ("tcp", f["tcp.stream"]), f["tcp.srcport"], f["tcp.dstport"]
            flags = int(f["tcp.flags"], 16)
        elif f["ip.proto"] == "17":
            proto, key, sp, dp = 17, ("udp", f["udp.stream"]), f["udp.srcport"], f["udp.dstport"]
            flags = 0
        else:
            continue
        src, dst = (f["ip.src"], int(sp)), (f["ip.dst"], int(dp))
        s = st.get(key)
        if s is None:
            # mw-flowd's rule: a SYN's (not SYN+ACK's) sender is the client, a
            # SYN+ACK's receiver is; otherwise the higher port
            if proto == 6 and flags & 0x12 == 0x02:
                client = src
            elif proto == 6 and flags & 0x12 == 0x12:
                client = dst
            else:
                client = src if src[1] >= dst[1] else dst
            server = dst if client == src else src
            s = st[key] = dict(proto=proto, client=client, server=server, attempts=0, frames=0, bytes=0,
                               server_syn=False, client_syn=False, rejected=False)
            if proto == 17 and client == src:
                s["attempts"] += 1
        from_client = src == s["client"]
        s["frames"] += 1
        s["bytes"] += int(f["frame.len"])
        if proto == 6 and from_client and flags & 0x12 == 0x02:
            s["attempts"] += 1
        if proto == 6 and from_client and flags & 0x02:
            s["client_syn"] = True
        if proto == 6 and not from_client:
            if flags & 0x04 and not s["server_syn"] and s["client_syn"]:
                s["rejected"] = True
            if flags & 0x02:
                s["server_syn"] = True
    return st


def check_topn(what, rows, truth, keyf, bound):
    """Space-Saving's guarantees for one list; exact where a row's error is 0."""
    if not rows:
        fail("%s: empty list" % what)
        return
    listed = set()
    for r in rows:
        k = keyf(r)
        t = truth.get(k)
        if t is None:
            fail("%s: %s is not in tshark's table" % (what, k))
            continue
        listed.add(k)
        if not t <= r["bytes"] <= t + r["error"]:
            fail("%s: %s has %d bytes (error %d), tshark %d" % (what, k, r["bytes"], r["error"], t))
        if r["error"] > bound:
            fail("%s: %s error %d above the bound %d" % (what, k, r["error"], bound))
    floor = min(r["bytes"] for r in rows)
    for k, t in truth.items():
        if k not in listed and t > floor:
            fail("%s: %s (%d bytes in tshark) missing, the list ends at %d" % (what, k, t, floor))


def check(tshark_out, report, mode, client):
    frames, io, eps, convs = parse_tshark(tshark_out)
    secs, intervals = report_lines(report)
    if len(intervals) != 1:
        fail("%d interval lines, expected one (report_interval_s spans the traffic)" % len(intervals))
        return
    iv = intervals[0]
    # totals and classes (io,stat)
    want = dict(pkts=io["ip"][0], bytes=io["ip"][1])
    if mode == "offline":  # live, an ARP after tcpdump stopped would count
        want.update(frames=io["frame"][0], not_ip=io["!ip"][0])
    for k, v in want.items():
        if iv[k] != v:
            fail("interval %s %d, tshark %d" % (k, iv[k], v))
    cls = defaultdict(lambda: [0, 0])
    for s in secs:
        for c in ("in", "out", "inweb", "outweb", "internal", "other"):
            cls[c][0] += s[c]["pkts"]
            cls[c][1] += s[c]["bytes"]
    for c in ("inweb", "in", "other"):
        if tuple(cls[c]) != io[c]:
            fail("class %s packets/bytes %s, tshark %s" % (c, tuple(cls[c]), io[c]))
    for c in ("out", "outweb", "internal"):
        if cls[c] != [0, 0]:
            fail("class %s counted %s, tshark nothing" % (c, cls[c]))
    # per second, on epoch-aligned seconds
    per = defaultdict(lambda: [0, 0])
    for f in ip_frames(frames):
        sec = int(f["frame.time_epoch"].split(".")[0])
        per[sec][0] += 1
        per[sec][1] += int(f["frame.len"])
    got = {s["ts"]: [s["total"]["pkts"], s["total"]["bytes"]] for s in secs if s["total"]["pkts"]}
    if mode == "offline":
        if got != dict(per):
            fail("per-second totals %s, tshark %s" % (sorted(got.items()), sorted(per.items())))
    else:
        late = 0
        cg, ct = [0, 0], [0, 0]
        for sec in sorted(set(got) | set(per)):
            for i in (0, 1):
                cg[i] += got.get(sec, [0, 0])[i]
                ct[i] += per.get(sec, [0, 0])[i]
            if cg[0] > ct[0] or cg[1] > ct[1]:
                fail("second %d: %s counted by then, tshark %s: a frame counted early" % (sec, cg, ct))
            late = max(late, ct[0] - cg[0])
        if cg != ct:
            fail("per-second totals add up to %s, tshark %s" % (cg, ct))
        print("%s: at most %d frames counted in a later second" % (mode, late))
    # top-N
    bound = iv["topn_error_bound"]
    talk = {a: e["tx_bytes"] for a, e in eps.items() if e["tx_bytes"]}
    check_topn("talkers", iv["talkers"], talk, lambda r: r["addr"], bound)
    # a conversation is tshark's stream (tcp.stream, udp.stream): its frames and bytes
    # as conv,tcp/udp counts them (bytes to the table's rounding), then summed exactly
    streams = truth_streams(frames)
    conv, app, pair = {}, defaultdict(int), defaultdict(lambda: [0, 0])
    for s in streams.values():
        kind = "tcp" if s["proto"] == 6 else "udp"
        p = pair[(kind, frozenset((s["client"], s["server"])))]
        p[0] += s["frames"]
        p[1] += s["bytes"]
        conv[(s["proto"], s["client"], s["server"])] = s["bytes"]
        app[(s["proto"], s["server"][1])] += s["bytes"]
    if set(pair) != set(convs):
        fail("streams %d, tshark's conversations %d" % (len(pair), len(convs)))
    for k, (n, b) in pair.items():
        rows = convs.get(k, [])
        shown = [(f, x, SI[u]) for f, x, u in rows]
        if sum(f for f, _, _ in shown) != n or (len(rows) == 1 and abs(b / shown[0][2] - shown[0][1]) >= 1):
            fail("conversation %s: %d frames, %d bytes; conv table %s" % (sorted(k[1]), n, b, rows))
    check_topn("conversations", iv["conversations"], conv,
               lambda r: (r["proto"], (r["client"], r["client_port"]), (r["server"], r["server_port"])), bound)
    check_topn("applications", iv["applications"], app, lambda r: (r["proto"], r["port"]), bound)
    # anomalies of the client (the server opens nothing)
    att = [s for s in streams.values() if s["client"][0] == client and s["attempts"]]
    tries = sum(s["attempts"] for s in att)
    ports = len({s["server"][1] for s in att})
    peers = len({s["server"][0] for s in att})
    rejected = sum(s["rejected"] for s in streams.values() if s["client"][0] == client)
    an = {a["kind"]: a for a in iv["anomalies"] if a["addr"] == client}
    if set(an) != {"portscan", "fanout"} or len(iv["anomalies"]) != 2:
        fail("anomalies %s: expected the client's portscan and fanout only" % iv["anomalies"])
        return
    for kind, key, truth in (("portscan", "distinct_ports", ports), ("fanout", "distinct_peers", peers)):
        est = an[kind][key]
        if abs(est - truth) > HLL_BOUND * truth or est > tries:
            fail("%s %s %d, tshark %d (bound %.0f %%, attempts %d)" % (kind, key, est, truth, 100 * HLL_BOUND, tries))
        if an[kind]["attempts"] != tries:
            fail("%s attempts %d, tshark %d" % (kind, an[kind]["attempts"], tries))
    if an["portscan"]["rejected"] != rejected:
        fail("portscan rejected %d, tshark %d" % (an["portscan"]["rejected"], rejected))
    print("%s: %d IP frames, %d bytes, %d talkers, %d conversations, %d applications; client: "
          "%d attempts, %d ports (reported %d), %d peers (reported %d), %d refused; bound %d" %
          (mode, io["ip"][0], io["ip"][1], len(talk), len(conv), len(app), tries, ports,
           an["portscan"]["distinct_ports"], peers, an["fanout"]["distinct_peers"], rejected, bound))


def mapi_truth(tshark_out, server):
    """What the MAPI tools count with BPF filters, from tshark: "tcp port 80" frames
    (io,stat column) and their distinct destination ports; "dst net SERVER/32" and
    "src net SERVER/32" frames (BPF's "net" matches an ARP's target and sender too):
    endpoints,ip Rx and Tx of SERVER plus those ARP frames; the top sender by bytes."""
    frames, io, eps, _ = parse_tshark(tshark_out)
    web = [f for f in ip_frames(frames)
           if f["ip.proto"] == "6" and "80" in (f["tcp.srcport"], f["tcp.dstport"])]
    print("web_pkts=%d\nweb_bytes=%d" % io["web80"])
    print("web_dports=%d" % len({f["tcp.dstport"] for f in web}))
    ep = eps.get(server, dict(rx_pkts=0, rx_bytes=0, tx_pkts=0, tx_bytes=0))
    for d, field, pre in (("in", "arp.dst.proto_ipv4", "rx"), ("out", "arp.src.proto_ipv4", "tx")):
        arp = [int(f["frame.len"]) for f in frames if f[field] == server]
        print("%s_pkts=%d\n%s_bytes=%d" % (d, ep[pre + "_pkts"] + len(arp), d, ep[pre + "_bytes"] + sum(arp)))
    print("top_tx=%s" % max(eps, key=lambda a: eps[a]["tx_bytes"]))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "read":
        tshark(sys.argv[2], sys.argv[3])
        return 0
    if len(sys.argv) == 4 and sys.argv[2] == "mapi":
        mapi_truth(sys.argv[1], sys.argv[3])
        return 0
    if len(sys.argv) == 3 and sys.argv[2] == "totals":
        frames = ip_frames(parse_tshark(sys.argv[1])[0])
        print(len(frames), sum(int(f["ip.len"]) for f in frames))
        return 0
    if len(sys.argv) != 5 or sys.argv[3] not in ("live", "offline"):
        print("usage: flowd_tshark.py read PCAP SERVER | TSHARK_OUT totals | "
              "TSHARK_OUT mapi SERVER | TSHARK_OUT REPORT live|offline CLIENT", file=sys.stderr)
        return 2
    check(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])
    for e in errors:
        print("MISMATCH: " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
