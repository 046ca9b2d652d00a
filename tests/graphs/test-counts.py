#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-counts.py - counts per step and per period equal the log's; a duplicated run and a run
without state count nothing twice; a second instance is refused while one holds the lock;
damaged lines are reported with file:line and the run goes on."""
import fcntl
import glob
import os
import shutil

import graphs_lib as g

T0 = 1796256000  # 2026-12-02T00:00:00Z
MINUTES = 600
d = g.tmpdir("counts")
log = os.path.join(d, "events.log")
rrd = os.path.join(d, "rrd")
out = os.path.join(d, "out")
g.gen(log, start=T0, minutes=MINUTES, rate=6, seed=11, gap=["200-320", "450-452"], damage=3)
exp = g.Expected().read(log)
now = str(T0 + MINUTES * 60 + 300)
args = ["--log", log, "--rrd-dir", rrd, "--out", out, "--now", now, "--settle", "60"]

p = g.run(args)
for f, line in exp.damaged:
    g.check("%s:%d:" % (f, line) in p.stderr, "damaged line %s:%d not reported:\n%s" % (f, line, p.stderr))
g.check(len(exp.damaged) == 3, "fixture has %d damaged lines, want 3" % len(exp.damaged))
n = g.compare_steps(rrd, exp, "mx1")
g.check(n > 1000, "only %d rows compared" % n)
g.check(g.compare_summary(out, exp, "mx1", ["mx1"]) > 50, "summary compared too little")

# Totals over the coarser archives (56 minutes a row) equal the log's too.
first = min(exp.series[("mx1", "chain", None)])
res = 56 * 60
lo = first - first % res
hi = g.last_update(g.rrd_name(rrd, "mx1", "chain", None))
hi -= hi % res
rows = g.fetch(g.rrd_name(rrd, "mx1", "chain", None), res, lo, hi)
got = sum(v[0] * res for t, v in rows.items() if lo < t <= hi)
want = exp.total(("mx1", "chain", None), 7, lo, hi)[0]
g.check(g.close(got, want) and want > 100, "56-minute rows: %r messages, want %r" % (got, want))


def same(a, b):
    """Whether two snapshots are equal (NaN equal to NaN); print the first difference."""
    for k in sorted(set(a) | set(b)):
        ra, rb = a.get(k, {}), b.get(k, {})
        for t in sorted(set(ra) | set(rb)):
            va, vb = ra.get(t), rb.get(t)
            if va is None or vb is None or any(not (x == y or (x != x and y != y)) for x, y in zip(va, vb)):
                print("%s at %d: %r then %r" % (k, t, va, vb))
                return False
    return True


def snapshot():
    snap = {}
    for f in sorted(glob.glob(os.path.join(rrd, "*.rrd"))):
        snap[os.path.basename(f)] = g.fetch(f, 60, T0 - 3600, int(now))
    return snap


before = snapshot()
g.check(len(before) == 1 + 3 * 2 + 3, "RRD files: %s" % sorted(before))

# A duplicated run: nothing new, nothing changes.
g.run(args)
g.check(same(before, snapshot()), "a second run over the same log changed the RRD files")

# The same log again without the state file: every minute is already written.
os.unlink(os.path.join(rrd, "shadow-graphs.state"))
p = g.run(args)
g.check(same(before, snapshot()), "a run without state counted messages twice")
g.check("not counted: their minutes were already written" in p.stderr,
        "no warning about messages already written:\n" + p.stderr)

# A second instance while one holds the lock is refused, and changes nothing.
with open(os.path.join(rrd, "shadow-graphs.state.lock"), "a") as lk:
    fcntl.flock(lk, fcntl.LOCK_EX)
    p = g.run(args, want_rc=75)
    g.check("shadow-graphs.state.lock" in p.stderr and "another shadow-graphs" in p.stderr,
            "lock refusal does not name the lock:\n" + p.stderr)
g.check(same(before, snapshot()), "a refused run changed the RRD files")

# The same log given twice (once through a symbolic link) is read once.
link = os.path.join(d, "again.log")
os.symlink(log, link)
rrd2 = os.path.join(d, "rrd2")
p = g.run(["--log", log, "--log", link, "--rrd-dir", rrd2, "--no-graphs", "--now", now])
g.check("the same file as --log" in p.stderr, "a log given twice is not reported:\n" + p.stderr)
g.check(g.compare_steps(rrd2, exp, "mx1") > 1000, "a log given twice: counts differ")

shutil.rmtree(d)
g.finish("test-counts")
