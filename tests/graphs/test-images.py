#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-images.py - every PNG has its documented size, sampled ones are not blank and show the
stacked actions; SVGs are SVG; index.html refers to every graph, refreshes itself, has no script
and no external asset, and shows the update time, the data's time span and a summary table."""
import glob
import os
import re
import shutil
import xml.etree.ElementTree as ET

import graphs_lib as g

T0 = 1796342400  # 2026-12-04T00:00:00Z
d = g.tmpdir("images")
log = os.path.join(d, "events.log")
rrd = os.path.join(d, "rrd")
out = os.path.join(d, "out")
g.gen(log, start=T0, minutes=900, rate=8, seed=31, gap=["300-360"])
now = T0 + 900 * 60 + 120
g.run(["--log", log, "--rrd-dir", rrd, "--out", out, "--now", str(now), "--settle", "60"])

SIZES = {"chain": (720, 330), "milter": (720, 330), "latency": (720, 250), "share": (720, 480),
         "agreement": (720, 480)}
pngs = sorted(glob.glob(os.path.join(out, "mx1", "*.png")))
g.check(len(pngs) == 4 * (3 + 3 * 2), "%d PNGs, want %d" % (len(pngs), 4 * 9))
for p in pngs:
    kind = os.path.basename(p).split("-")[0]
    with open(p, "rb") as f:
        head = f.read(24)
    w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    g.check((w, h) == SIZES[kind], "%s: %dx%d, want %dx%d" % (p, w, h, *SIZES[kind]))
    svg = p[:-4] + ".svg"
    root = ET.parse(svg).getroot() if os.path.exists(svg) else None
    g.check(root is not None and root.tag.endswith("svg"), "%s: not an SVG" % svg)

REJECT = bytes.fromhex("D8443C")
for name in ("chain-day", "milter-t1-day", "milter-t2-week", "latency-t1-day", "share-day",
             "agreement-day"):
    p = os.path.join(out, "mx1", name + ".png")
    w, h, var, colours = g.png_stats(p)
    g.check(var > 50 and colours >= 6, "%s looks blank: variance %.1f, %d colours" % (p, var, colours))
    if name.startswith(("milter", "chain", "share")):
        _, _, (rows, bpp) = g.png_read(p)
        hits = sum(1 for r in rows for x in range(0, len(r), bpp) if r[x:x + 3] == REJECT)
        g.check(hits > 200, "%s: %d pixels of the reject colour" % (p, hits))

page = open(os.path.join(out, "index.html")).read()
g.check('<meta http-equiv="refresh" content="300">' in page, "no refresh")
g.check("<script" not in page.lower(), "the page has a script")
g.check(not re.search(r'(src|href)="(https?:)?//', page), "the page refers to an external asset")
srcs = re.findall(r'<img src="([^"]+)" width="(\d+)" height="(\d+)"', page)
g.check(len(srcs) == len(pngs), "%d images on the page, %d PNGs" % (len(srcs), len(pngs)))
for src, w, h in srcs:
    kind = os.path.basename(src).split("-")[0]
    g.check(os.path.exists(os.path.join(out, src)), "%s missing" % src)
    g.check((int(w), int(h)) == SIZES[kind], "%s: page says %sx%s" % (src, w, h))
for period in ("day", "week", "month", "year"):
    g.check('id="mx1-%s"' % period in page, "no %s section" % period)
g.check("Updated 2026-12-04 15:02 UTC" in page, "no update time")
g.check("Data from 2026-12-04 00:0" in page and " to 2026-12-04 14:5" in page, "no data span")
g.check("<table>" in page and "<td>t1</td>" in page, "no summary table")
shutil.rmtree(d)
g.finish("test-images")
