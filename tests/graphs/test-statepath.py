#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-statepath.py - a log keeps its place whatever its path holds ('[', ']', control
characters) and however it is spelled (relative, absolute, through a symlink); a log the state has
no position for does not count the restored pending minute twice."""
import json
import os
import shutil

import graphs_lib as g

T0 = 1796256000  # 2026-12-02T00:00:00Z
MINUTES = 90
d = g.tmpdir("statepath")
whole = os.path.join(d, "whole.log")
data = g.gen(whole, start=T0, minutes=MINUTES, rate=8, seed=11)
end_now = str(T0 + MINUTES * 60 + 600)
cuts = [len(data) * k // 3 + 17 for k in (1, 2)] + [len(data)]


def last_ts_before(cut):
    """Seconds of the last complete message record before byte CUT (its minute stays pending)."""
    ts = None
    for line in data[:cut].split(b"\n")[:-1]:
        rec = json.loads(line)
        if rec["type"] == "message":
            ts = g.parse_ts(rec["ts"]) // 1000
    return ts


def now_for(cut):
    return end_now if cut == len(data) else str(last_ts_before(cut))


def pieces(rrd, logs, label):
    """Append each piece to the log and run once per piece, the log named as LOGS[i]."""
    prev = 0
    pending = 0
    for cut, name in zip(cuts, logs):
        with open(logs[-1], "ab") as f:
            f.write(data[prev:cut])
        prev = cut
        p = g.run(["--log", name, "--rrd-dir", rrd, "--no-graphs", "--now", now_for(cut),
                   "--settle", "0" if cut < len(data) else "60"])
        g.check("no saved position" not in p.stderr and "rotated" not in p.stderr,
                "%s: %s lost its place:\n%s" % (label, name, p.stderr))
        state = open(os.path.join(rrd, "shadow-graphs.state")).read()
        pending += cut < len(data) and "pending_minute=-1" not in state
    g.check(pending == 2, "%s: %d runs left a minute pending, want 2" % (label, pending))
    n = g.compare_steps(rrd, g.Expected().read(whole), "mx1")
    g.check(n >= MINUTES, "%s: only %d rows compared" % (label, n))


# A path GKeyFile cannot have in a group name.
odd = os.path.join(d, "we[ir]d\tdir\x01\nname]")
os.mkdir(odd)
log = os.path.join(odd, "events.log")
pieces(os.path.join(d, "rrd-odd"), [log, log, log], "odd path")

# One log spelled three ways.
sub = os.path.join(d, "spelled")
os.mkdir(sub)
log = os.path.join(sub, "events.log")
os.symlink("events.log", os.path.join(sub, "link.log"))
here = os.getcwd()
os.chdir(sub)
pieces(os.path.join(d, "rrd-spelled"), ["events.log", os.path.join(sub, "link.log"), log],
       "relative, symlink, absolute")
os.chdir(here)

# A log the state does not know (a copy under another name) repeats the pending minute's
# messages: that minute is counted once.
rrd = os.path.join(d, "rrd-copy")
first = os.path.join(d, "first.log")
with open(first, "wb") as f:
    f.write(data[:cuts[0]])
g.run(["--log", first, "--rrd-dir", rrd, "--no-graphs", "--now", now_for(cuts[0]), "--settle", "0"])
state = open(os.path.join(rrd, "shadow-graphs.state")).read()
g.check("pending_minute=-1" not in state, "the first run left no minute pending")
p = g.run(["--log", whole, "--rrd-dir", rrd, "--no-graphs", "--now", end_now])
g.check("no saved position" in p.stderr, "the restored pending minute's drop not reported:\n" +
        p.stderr)
n = g.compare_steps(rrd, g.Expected().read(whole), "mx1")
g.check(n >= MINUTES, "copy: only %d rows compared" % n)

shutil.rmtree(d)
g.finish("test-statepath")
