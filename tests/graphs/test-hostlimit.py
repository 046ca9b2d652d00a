#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-hostlimit.py - hosts past the limit (64) are named once and skipped; the run succeeds,
saves its positions, and later runs go on counting the other hosts."""
import os
import re
import shutil

import graphs_lib as g

T0 = 1796083200  # 2026-11-30T00:00:00Z
LIMIT = 64
HOSTS = LIMIT + 2
d = g.tmpdir("hostlimit")
rrd = os.path.join(d, "rrd")
logs, whole = [], []
for i in range(HOSTS):
    log = os.path.join(d, "h%02d.log" % i)
    g.gen(log, start=T0, minutes=3, rate=4, seed=100 + i, host="h%02d" % i)
    logs.append(log)
args = sum((["--log", x] for x in logs), []) + ["--rrd-dir", rrd, "--no-graphs", "--settle", "0"]

seen = set().union(*[g.Expected().read(x).hosts for x in logs])
g.check(len(seen) > LIMIT, "only %d hosts have messages" % len(seen))
p = g.run(args + ["--now", str(T0 + 3 * 60)])
skipped = re.findall(r"host (h\d\d): more than %d hosts" % LIMIT, p.stderr)
g.check(len(skipped) == len(seen) - LIMIT and len(set(skipped)) == len(skipped),
        "want each of %d hosts named once, got %r:\n%s" % (len(seen) - LIMIT, skipped, p.stderr))
chains = sorted(x for x in os.listdir(rrd) if x.startswith("chain@"))
g.check(len(chains) == LIMIT, "%d hosts have files, want %d" % (len(chains), LIMIT))
for h in skipped:
    g.check("chain@%s.rrd" % h not in chains, "skipped host %s has files" % h)

# The next run reads on from the saved positions (no message counted twice), still skipping.
for i, log in enumerate(logs):
    g.gen(log, mode="a", start=T0 + 3 * 60, minutes=3, rate=2, seed=200 + i, host="h%02d" % i)
p = g.run(args + ["--now", str(T0 + 10 * 60)])
again = re.findall(r"host (h\d\d): more than %d hosts" % LIMIT, p.stderr)
g.check(sorted(again) == sorted(skipped), "second run skipped %r, first %r" % (again, skipped))
graphed = [x[len("chain@"):-len(".rrd")] for x in chains]
for h in graphed[:2] + graphed[-2:]:
    exp = g.Expected().read(os.path.join(d, h + ".log"))
    g.check(g.compare_steps(rrd, exp, h) >= 6, "%s: too few rows compared" % h)

shutil.rmtree(d)
g.finish("test-hostlimit")
