#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-copytruncate.py - a log truncated in place (logrotate's copytruncate) after more was
written to it: the copy PATH.1 is read from where the last run stopped, then the log from the
start; a log truncated and written again past the old offset (with a newline just before it) is
found by its fingerprint, and the possible loss is reported."""
import json
import os
import re
import shutil

import graphs_lib as g

T0 = 1796342400  # 2026-12-03T00:00:00Z
d = g.tmpdir("copytruncate")
whole = os.path.join(d, "whole.log")
data = g.gen(whole, start=T0, minutes=120, rate=6, seed=21)
end_now = str(T0 + 130 * 60)
common = ["--no-graphs", "--settle", "0"]


def last_ts_before(buf, cut):
    """Seconds of the last complete message record before byte CUT of BUF."""
    ts = None
    for line in buf[:cut].split(b"\n")[:-1]:
        rec = json.loads(line)
        if rec["type"] == "message":
            ts = g.parse_ts(rec["ts"]) // 1000
    return ts


# The copy is there: nothing is lost.
a = len(data) // 3 + 5  # inside a line


def after_message(pos):
    """The end of the first message record's line after POS (no message spans the cut)."""
    start = data.index(b"\n", pos) + 1
    for line in data[start:].split(b"\n")[:-1]:
        start += len(line) + 1
        if json.loads(line)["type"] == "message":
            return start
    raise ValueError("no message record after byte %d" % pos)


b = after_message(len(data) * 2 // 3)
c = data.index(b"\n", len(data) * 5 // 6) + 1
log = os.path.join(d, "events.log")
rrd = os.path.join(d, "rrd")
with open(log, "wb") as f:
    f.write(data[:a])
g.run(["--log", log, "--rrd-dir", rrd, "--now", str(last_ts_before(data, a))] + common)
with open(log, "ab") as f:  # shadowd writes on; then logrotate copies the log and empties it
    f.write(data[a:b])
shutil.copy(log, log + ".1")
with open(log, "r+b") as f:
    f.truncate(0)
    f.write(data[b:c])
p = g.run(["--log", log, "--rrd-dir", rrd, "--now", str(last_ts_before(data, c))] + common)
g.check("reading its copy %s.1" % log in p.stderr, "the copy was not read:\n" + p.stderr)
g.check("LOST" not in p.stderr, "a loss reported with the copy there:\n" + p.stderr)
with open(log, "ab") as f:
    f.write(data[c:])
p = g.run(["--log", log, "--rrd-dir", rrd, "--now", end_now] + common)
g.check("truncated" not in p.stderr, "an append reported as truncation:\n" + p.stderr)
n = g.compare_steps(rrd, g.Expected().read(whole), "mx1")
g.check(n >= 120, "only %d rows compared" % n)

# No copy; the log was written again past the old offset, with a newline right before it.
rrd = os.path.join(d, "rrd2")
log = os.path.join(d, "regrown.log")
first = os.path.join(d, "first.log")
with open(first, "wb") as f:
    f.write(data[:a])
shutil.copy(first, log)
g.run(["--log", log, "--rrd-dir", rrd, "--now", str(last_ts_before(data, a))] + common)
state = open(os.path.join(rrd, "shadow-graphs.state")).read()
offset = int(re.search(r"^offset=(\d+)$", state, re.M).group(1))
later = g.gen(os.path.join(d, "later.log"), start=T0 + 200 * 60, minutes=60, rate=6, seed=22)
lines = [x + b"\n" for x in later.split(b"\n")[:-1]]
k, size = 0, 0
while size + len(lines[k]) <= offset:
    size += len(lines[k])
    k += 1
pad = offset - size  # lengthen a connection record's client name so a line ends at OFFSET
for i in range(k - 1, -1, -1):
    if b'"type": "connection"' in lines[i] or b'"type":"connection"' in lines[i]:
        lines[i] = lines[i].replace(b'"client_name": "', b'"client_name": "' + b"x" * pad, 1) \
            if b'"client_name": "' in lines[i] else \
            lines[i].replace(b'"client_name":"', b'"client_name":"' + b"x" * pad, 1)
        break
regrown = b"".join(lines)
g.check(regrown[offset - 1:offset] == b"\n" and len(regrown) > offset,
        "the regrown log does not end a line at byte %d" % offset)
regrown_path = os.path.join(d, "regrown-content.log")
with open(regrown_path, "wb") as f:
    f.write(regrown)
with open(log, "r+b") as f:
    f.truncate(0)
    f.write(regrown)
p = g.run(["--log", log, "--rrd-dir", rrd, "--now", str(T0 + 270 * 60)] + common)
g.check("truncated in place" in p.stderr and "MAY HAVE BEEN LOST" in p.stderr,
        "a truncation past the old offset not reported:\n" + p.stderr)
exp = g.Expected().read(first).read(regrown_path)
n = g.compare_steps(rrd, exp, "mx1")
g.check(n >= 250, "regrown: only %d rows compared" % n)

shutil.rmtree(d)
g.finish("test-copytruncate")
