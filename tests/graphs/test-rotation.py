#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-rotation.py - a log rotated (renamed to .1, new file) after more was written to it: the
rest of the old file is read, then the new one; copytruncate and a missing .1 are reported."""
import json
import os
import shutil

import graphs_lib as g

T0 = 1796083200  # 2026-11-30T00:00:00Z
d = g.tmpdir("rotation")
whole = os.path.join(d, "whole.log")
data = g.gen(whole, start=T0, minutes=180, rate=6, seed=7)
a_end = len(data) * 2 // 5 + 7  # inside a line
b_end = data.index(b"\n", len(data) * 7 // 10) + 1
log = os.path.join(d, "events.log")
rrd = os.path.join(d, "rrd")
common = ["--rrd-dir", rrd, "--no-graphs", "--settle", "0"]

with open(log, "wb") as f:
    f.write(data[:a_end])
g.run(["--log", log, "--now", str(T0 + 60 * 60)] + common)
with open(log, "ab") as f:  # shadowd writes on until logrotate renames and HUPs it
    f.write(data[a_end:b_end])
os.rename(log, log + ".1")
with open(log, "wb") as f:
    f.write(data[b_end:])
p = g.run(["--log", log, "--now", str(T0 + 200 * 60)] + common)
g.check("rotated" not in p.stderr, "rotation found .1 yet warned:\n" + p.stderr)
exp = g.Expected().read(whole)
g.check(g.compare_steps(rrd, exp, "mx1") > 150, "too few rows compared after rotation")

# copytruncate: the file is emptied in place and written again.
more = os.path.join(d, "more.log")
g.gen(more, start=T0 + 200 * 60, minutes=60, rate=6, seed=8)
mdata = open(more, "rb").read()
half = mdata.index(b"\n", len(mdata) // 3) + 1
first_now = g.parse_ts(json.loads(mdata[:half].split(b"\n")[-2])["ts"]) // 1000
with open(log, "r+b") as f:  # logrotate copies it away, then empties it
    f.truncate(0)
    f.write(mdata[:half])
p = g.run(["--log", log, "--now", str(first_now)] + common)
g.check("truncated in place" in p.stderr, "copytruncate not reported:\n" + p.stderr)
with open(log, "ab") as f:
    f.write(mdata[half:])
p = g.run(["--log", log, "--now", str(T0 + 270 * 60)] + common)
g.check("truncated" not in p.stderr, "an append reported as truncation:\n" + p.stderr)
exp.read(more)
g.check(g.compare_steps(rrd, exp, "mx1") > 200, "too few rows compared after copytruncate")

# Rotated under another name: the run says what it cannot read, and counts the new file.
os.rename(log, log + ".old")
late = os.path.join(d, "late.log")
g.gen(late, start=T0 + 280 * 60, minutes=30, rate=6, seed=9)
shutil.copy(late, log)
p = g.run(["--log", log, "--now", str(T0 + 320 * 60)] + common)
g.check("is not the old file" in p.stderr and log + ".1" in p.stderr,
        "a rotation without .1 is not reported:\n" + p.stderr)
exp.read(late)
g.check(g.compare_steps(rrd, exp, "mx1") > 250, "too few rows compared after the last rotation")

shutil.rmtree(d)
g.finish("test-rotation")
