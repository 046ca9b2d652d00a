#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-newmilter.py - a milter that appears later gets its files (no dump/restore), zeros before
it appeared, and the right counts after; the page and the summary show it."""
import json
import os
import shutil

import graphs_lib as g

T0 = 1795996800  # 2026-11-29T00:00:00Z
d = g.tmpdir("newmilter")
whole = os.path.join(d, "whole.log")
data = g.gen(whole, start=T0, minutes=200, rate=5, seed=3, new_milter_at=100)
cut = 0
for line in data.split(b"\n")[:-1]:
    if g.parse_ts(json.loads(line)["ts"]) >= (T0 + 100 * 60) * 1000:
        break
    cut += len(line) + 1
log = os.path.join(d, "events.log")
rrd = os.path.join(d, "rrd")
out = os.path.join(d, "out")
with open(log, "wb") as f:
    f.write(data[:cut])
g.run(["--log", log, "--rrd-dir", rrd, "--out", out, "--now", str(T0 + 100 * 60), "--settle", "0"])
t4 = g.rrd_name(rrd, "mx1", "milter", "t4")
g.check(not os.path.exists(t4), "milter-t4 exists before t4 appears")
with open(log, "ab") as f:
    f.write(data[cut:])
g.run(["--log", log, "--rrd-dir", rrd, "--out", out, "--now", str(T0 + 210 * 60), "--settle", "0"])
exp = g.Expected().read(whole)
g.check(os.path.exists(t4), "milter-t4 not created")
for other in ("t1", "t2", "t3"):
    g.check(os.path.exists(g.rrd_name(rrd, "mx1", "pair", other + "+t4")), "pair %s+t4 missing" % other)
g.check(g.compare_steps(rrd, exp, "mx1") > 300, "too few rows compared")
first = min(exp.series[("mx1", "milter", "t4")])
rows = g.fetch(t4, 60, T0, first - 60)
g.check(rows and all(v[0] == 0 for t, v in rows.items() if T0 < t < first),
        "t4 before it appeared is not all zeros")
g.check(g.compare_summary(out, exp, "mx1", ["mx1"]) > 0, "summary")
page = open(os.path.join(out, "index.html")).read()
g.check("mx1/milter-t4-day.png" in page, "the page does not show t4")
shutil.rmtree(d)
g.finish("test-newmilter")
