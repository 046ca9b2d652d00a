#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-errors.py - bad options, unreadable logs, bad state files, a bad shadowd.conf and an
unreachable rrdcached each give a clear message naming what and where, and change nothing."""
import os
import shutil

import graphs_lib as g

d = g.tmpdir("errors")
small = os.path.join(g.HERE, "fixtures", "small.log")
rrd = os.path.join(d, "rrd")
out = os.path.join(d, "out")
state = os.path.join(d, "state")
common = ["--rrd-dir", rrd, "--out", out, "--state", state, "--now", "2026-12-04T00:00:00Z"]


def expect(args, rc, *words):
    p = g.run(args, want_rc=rc)
    for w in words:
        g.check(w in p.stderr, "%s: stderr lacks %r:\n%s" % (" ".join(args), w, p.stderr))
    return p


expect([], 64, "--rrd-dir is required")
expect(["--rrd-dir", rrd], 64, "--out is required")
expect(["--bogus"] + common, 64, "--bogus")
expect(["--log", small, "--now", "yesterday-ish"] + common[:-2], 64, "--now yesterday-ish: not a time")
expect(["--log", small, "--settle", "-5"] + common, 64, "--settle must not be negative")
missing = os.path.join(d, "nope.log")
expect(["--log", missing] + common, 1, "log %s: cannot read: No such file or directory" % missing)
expect(["--log", d] + common, 1, "log %s: not a regular file" % d)
g.check(not os.path.exists(state), "a failed run wrote the state file")

with open(state, "w") as f:
    f.write("[shadow-graphs]\nversion=1\n[[broken\n")
expect(["--log", small] + common, 1, "state file %s:3: " % state)
with open(state, "w") as f:
    f.write("[shadow-graphs]\nversion=1\n\n[log %s]\ninode=1\noffset=12x\n" % small)
expect(["--log", small] + common, 1, '%s: [log %s] offset: bad value "12x"' % (state, small))
with open(state, "w") as f:
    f.write("[something-else]\nkey=1\n")
expect(["--log", small] + common, 1, "state file %s: [shadow-graphs] version: missing" % state)
with open(state, "w") as f:
    f.write("[shadow-graphs]\nversion=1\n\n[host mx]\nmilters=spamd;\npending_minute=60\nchain=1;2\n")
expect(["--log", small] + common, 1, '%s: [host mx] chain: bad value "1;2"' % state)
os.unlink(state)

conf = os.path.join(d, "shadowd.conf")
with open(conf, "w") as f:
    f.write("[shadowd]\nlisten = inet:8899@127.0.0.1\n\n[milter spamd]\nconnect = nowhere\n")
expect(["--log", small, "--config", conf] + common, 78, "--config", conf)
sock = os.path.join(d, "no-such.sock")
expect(["--log", small, "--daemon", "unix:" + sock] + common, 69, "unix:" + sock, "rrdcached")
g.check(not os.path.exists(state), "a failed run wrote the state file")

# Damaged lines do not stop the run: the torn line is named and the rest is counted.
p = expect(["--log", small] + common, 0, "%s:12:" % small, "1 damaged lines skipped")
exp = g.Expected().read(small)
g.check(exp.damaged == [(small, 12)], "fixture damage: %r" % exp.damaged)
g.check(g.compare_steps(rrd, exp, "mx") > 10, "small.log counts")
shutil.rmtree(d)
g.finish("test-errors")
