#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-names.py - host names that clean to the same file name ("a/b" and "a-b", names sharing
their first 64 bytes) keep separate series; a host named like a page file (index.html) does not
take the page's place."""
import os
import shutil

import graphs_lib as g

T0 = 1796083200  # 2026-11-30T00:00:00Z
NAME_MAX = 64
HASH_LEN = 9  # "-" and 8 hex digits


def fnv1a32(raw):
    h = 2166136261
    for c in raw.encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def clean(raw):
    """The file name shadow-graphs(1) gives a host: changed names get a hash of the raw one."""
    s = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in raw[:NAME_MAX])
    if s[:1] in (".", "_"):
        s = "-" + s[1:]
    if s != raw or raw in ("index.html", "summary.json"):
        s = s[:NAME_MAX - HASH_LEN] + "-%08x" % fnv1a32(raw)
    return s


def renamed(exp, host, name):
    """EXP's series of HOST under the file name NAME."""
    out = g.Expected()
    out.series = {(name, k, n): v for (h, k, n), v in exp.series.items() if h == host}
    return out


d = g.tmpdir("names")
rrd = os.path.join(d, "rrd")
hosts = ["a/b", "a-b", "x" * 70 + "1", "x" * 70 + "2", "_all"]
logs = []
for i, h in enumerate(hosts):
    log = os.path.join(d, "%d.log" % i)
    g.gen(log, start=T0, minutes=20, rate=5, seed=300 + i, host=h)
    logs.append(log)
g.run(sum((["--log", x] for x in logs), []) +
      ["--rrd-dir", rrd, "--no-graphs", "--now", str(T0 + 30 * 60)])
chains = sorted(x for x in os.listdir(rrd) if x.startswith("chain@"))
g.check(len(chains) == len(hosts), "%d hosts' series, want %d: %r" % (len(chains), len(hosts), chains))
g.check("chain@a-b.rrd" in chains, "a clean name was changed: %r" % chains)
for h, log in zip(hosts, logs):
    name = clean(h)
    g.check(len(name) <= NAME_MAX, "%s: file name %s longer than %d" % (h, name, NAME_MAX))
    n = g.compare_steps(rrd, renamed(g.Expected().read(log), h, name), name)
    g.check(n >= 20, "%s (%s): only %d rows compared" % (h, name, n))

# A host named index.html: the page and its summary are still written.
rrd = os.path.join(d, "rrd2")
out = os.path.join(d, "out")
log = os.path.join(d, "page.log")
g.gen(log, start=T0, minutes=20, rate=5, seed=310, host="index.html")
g.run(["--log", log, "--rrd-dir", rrd, "--out", out, "--now", str(T0 + 30 * 60)])
for f in ("index.html", "summary.json"):
    g.check(os.path.isfile(os.path.join(out, f)), "%s is not the page's file" % f)
g.check(os.path.isdir(os.path.join(out, clean("index.html"))), "no graphs for host index.html")
n = g.compare_steps(rrd, renamed(g.Expected().read(log), "index.html", clean("index.html")),
                    clean("index.html"))
g.check(n >= 20, "index.html: only %d rows compared" % n)

shutil.rmtree(d)
g.finish("test-names")
