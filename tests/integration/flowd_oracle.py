#!/usr/bin/env python3
# flowd_oracle.py - sums over mw-flowd's JSON lines, printed as KEY=VALUE for the shell tests
#
# It reads mw-flowd's side only.  The independent oracle for the traffic is tshark
# (flowd_tshark.py, test_flowd_report); this stays for what tshark has no say in:
# table and kernel drops, the classes of a run whose kernel filter hid traffic, and
# test_flowd_dynamic's packet counts (no capture there).
#
#   flowd_oracle.py REPORT ADDR      (REPORT: mw-flowd's JSON lines; ADDR: the expected talker)
#
# Prints: seconds_pkts (sum of "total" over per-second lines), interval_pkts,
# interval_bytes, class_<name>_pkts per class, top_talker (by bytes summed over
# intervals), talker_bytes (ADDR's bytes), talker_error (sum of its errors),
# scan_<addr>=distinct_ports/attempts/rejected, fanout_<addr>=distinct_peers,
# drops (table drops summed over the last interval line), sensor_drops.
import json
import sys
from collections import defaultdict

report, addr = sys.argv[1], sys.argv[2]
seconds_pkts = 0
classes = defaultdict(int)
ipkts = ibytes = 0
talkers = defaultdict(int)
talker_error = 0
scans, fanouts = {}, {}
last = None
with open(report) as f:
    for line in f:
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r["type"] == "second":
            seconds_pkts += r["total"]["pkts"]
            for c in ("in", "out", "inweb", "outweb", "internal", "other"):
                classes[c] += r[c]["pkts"]
        elif r["type"] == "interval":
            last = r
            ipkts += r["pkts"]
            ibytes += r["bytes"]
            for t in r["talkers"]:
                talkers[t["addr"]] += t["bytes"]
                if t["addr"] == addr:
                    talker_error += t["error"]
            for a in r["anomalies"]:
                if a["kind"] == "portscan":
                    scans[a["addr"]] = "%d/%d/%d" % (a["distinct_ports"], a["attempts"], a["rejected"])
                else:
                    fanouts[a["addr"]] = a["distinct_peers"]
print("seconds_pkts=%d" % seconds_pkts)
print("interval_pkts=%d" % ipkts)
print("interval_bytes=%d" % ibytes)
for c, n in sorted(classes.items()):
    print("class_%s_pkts=%d" % (c, n))
print("top_talker=%s" % (max(talkers, key=talkers.get) if talkers else ""))
print("talker_bytes=%d" % talkers.get(addr, 0))
print("talker_error=%d" % talker_error)
for a, v in scans.items():
    print("scan_%s=%s" % (a, v))
for a, v in fanouts.items():
    print("fanout_%s=%d" % (a, v))
if last:
    print("drops=%d" % sum(t["drops"] for t in last["tables"].values()))
    print("sensor_drops=%d" % last["sensor_drops"])
