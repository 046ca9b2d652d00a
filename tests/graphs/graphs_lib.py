# SPDX-License-Identifier: MIT
"""graphs_lib.py - shared helpers for shadow-graphs' tests.

Counts are worked out here from the log with Python's json module, independently of the C
reader, and compared with what `rrdtool fetch` reads back from the RRD files.
"""
import fcntl  # noqa: F401  (used by tests)
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
SG = os.environ.get("SHADOW_GRAPHS", os.path.join(HERE, "../../graphs/shadow-graphs"))
GEN = os.path.join(HERE, "gen-log.py")
STEP = 60

MILTER_DS = ["seen", "continue", "accept", "reject", "tempfail", "discard", "quarantine", "error",
             "timeout"]
CHAIN_DS = ["seen", "delivered", "rejected", "tempfailed", "discarded", "quarantined", "incomplete"]
LATENCY_DS = ["n", "sum_ms", "max_ms"]
PAIR_DS = ["both_seen", "both_block", "either_block"]
REFUSALS = ("reject", "tempfail", "discard")

FAILED = []


def env():
    """The environment for shadow-graphs: leaks inside librrd/fontconfig are not ours."""
    e = dict(os.environ)
    e["ASAN_OPTIONS"] = "fast_unwind_on_malloc=0:" + e.get("ASAN_OPTIONS", "")
    e["LSAN_OPTIONS"] = "suppressions=%s/lsan.supp:print_suppressions=0" % HERE
    return e


def check(cond, what):
    """Record a failed check (got/want in WHAT) and go on."""
    if not cond:
        FAILED.append(what)
        print("FAIL: " + what, file=sys.stderr)
    return cond


def finish(name):
    """Exit 0 when every check passed."""
    if FAILED:
        print("%s: %d checks failed" % (name, len(FAILED)), file=sys.stderr)
        sys.exit(1)
    print("%s: ok" % name)
    sys.exit(0)


def in_netns():
    """Re-run this test inside tests/testbed/netns-run (root only; else skip, exit 77)."""
    if os.environ.get("TB_NETNS") == "1":
        return
    if os.geteuid() != 0:
        print("SKIP: needs root for private namespaces (tests/testbed/netns-run)")
        sys.exit(77)
    netns = os.path.join(HERE, "..", "testbed", "netns-run")
    os.execv(netns, [netns, sys.executable, os.path.abspath(sys.argv[0])] + sys.argv[1:])


def need(cmd, package):
    """Fail, naming the Debian package, when a command is missing."""
    import shutil
    if shutil.which(cmd) is None:
        print("FAIL: %s not found (install the Debian package %s)" % (cmd, package), file=sys.stderr)
        sys.exit(1)


def tmpdir(name):
    return tempfile.mkdtemp(prefix="sg-%s." % name)


def gen(path, mode="w", **kw):
    """Write a generated log (gen-log.py options as keywords)."""
    args = [sys.executable, GEN]
    for k, v in kw.items():
        for x in (v if isinstance(v, list) else [v]):
            args += ["--" + k.replace("_", "-"), str(x)]
    out = subprocess.run(args, check=True, capture_output=True).stdout
    with open(path, mode + "b") as f:
        f.write(out)
    return out


def run(args, want_rc=0):
    """Run shadow-graphs; check its exit status; return the CompletedProcess."""
    p = subprocess.run([SG] + args, capture_output=True, text=True, env=env())
    check(p.returncode == want_rc, "shadow-graphs %s: exit %d, want %d\nstderr: %s" %
          (" ".join(args), p.returncode, want_rc, p.stderr[-3000:]))
    return p


def parse_ts(s):
    d = datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(round(d.timestamp() * 1000))


class Expected:
    """Counts per series and minute end, from the log's lines."""

    def __init__(self):
        self.series = {}  # (host, kind, name) -> {minute_end: [values]}
        self.damaged = []  # (file, line)
        self.hosts = set()
        self.milters = {}  # host -> set

    def vec(self, key, t, n):
        return self.series.setdefault(key, {}).setdefault(t, [0.0] * n)

    def add_message(self, rec, verdicts):
        host = rec["host"]
        self.hosts.add(host)
        t = parse_ts(rec["ts"]) // 1000
        t = t - t % STEP + STEP
        c = self.vec((host, "chain", None), t, len(CHAIN_DS))
        c[0] += 1
        c[1 + ["delivered", "rejected", "tempfailed", "discarded", "quarantined"].index(rec["outcome"])] += 1
        if rec["unknown"]:
            c[6] += 1
        blocked = {}
        for v in verdicts:
            m = v["milter"]
            self.milters.setdefault(host, set()).add(m)
            a = v["action"]
            if a in REFUSALS or a == "timeout":
                cls = a
            elif a in ("error", "unavailable", "overflow"):
                cls = "error"
            else:
                cls = "quarantine" if v["quarantine"] is not None else a
            x = self.vec((host, "milter", m), t, len(MILTER_DS))
            x[0] += 1
            x[MILTER_DS.index(cls)] += 1
            blocked[m] = a in REFUSALS
            lat = v["latency_us"]
            if lat:
                ms = sum(lat.values()) / 1000.0
                y = self.vec((host, "latency", m), t, len(LATENCY_DS))
                y[0] += 1
                y[1] += ms
                y[2] = max(y[2], ms)
        names = sorted(blocked)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                p = self.vec((host, "pair", a + "+" + b), t, len(PAIR_DS))
                p[0] += 1
                p[1] += blocked[a] and blocked[b]
                p[2] += blocked[a] or blocked[b]

    def read(self, path, label=None):
        """Read a log as a tail-mode reader would: a last line without newline is left."""
        data = open(path, "rb").read()
        lines = data.split(b"\n")
        lines = lines[:-1]  # the part after the last newline (empty, or incomplete)
        pending = {}
        for no, raw in enumerate(lines, 1):
            try:
                rec = json.loads(raw)
                ok = isinstance(rec, dict) and rec.get("v") == 1
            except ValueError:
                ok = False
            if not ok:
                self.damaged.append((label or path, no))
                continue
            key = (rec["host"], rec.get("msg"))
            if rec["type"] == "verdict":
                pending.setdefault(key, []).append(rec)
            elif rec["type"] == "message":
                self.add_message(rec, pending.pop(key, []))
        return self

    def total(self, key, n, start, end):
        """Events per data source with minute end in (start, end]."""
        out = [0.0] * n
        for t, v in self.series.get(key, {}).items():
            if start < t <= end:
                for i in range(n):
                    out[i] += v[i]
        return out


def rrd_name(rrd_dir, host, kind, name):
    if kind == "chain":
        return os.path.join(rrd_dir, "chain@%s.rrd" % host)
    return os.path.join(rrd_dir, "%s-%s@%s.rrd" % (kind, name, host))


def fetch(path, res, start, end, daemon=None, cf="AVERAGE"):
    """rrdtool fetch: {row end time: [values]} (NaN for unknown)."""
    args = ["rrdtool", "fetch", path, cf, "-r", str(res), "-s", str(start), "-e", str(end)]
    if daemon:
        args += ["--daemon", daemon]
    p = subprocess.run(args, capture_output=True, text=True)
    if not check(p.returncode == 0, "rrdtool fetch %s: %s" % (path, p.stderr)):
        return {}
    rows = {}
    for line in p.stdout.splitlines():
        if ":" not in line:
            continue
        t, vals = line.split(":", 1)
        rows[int(t)] = [float(x) for x in vals.split()]
    return rows


def last_update(path, daemon=None):
    args = ["rrdtool", "last", path] + (["--daemon", daemon] if daemon else [])
    return int(subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip())


def close(a, b):
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def compare_steps(rrd_dir, exp, host, kinds=("chain", "milter", "latency", "pair"), daemon=None,
                  until=None):
    """Every 1-minute row from the first event to the last update equals the log's counts."""
    n_checked = 0
    ds = {"chain": CHAIN_DS, "milter": MILTER_DS, "latency": LATENCY_DS, "pair": PAIR_DS}
    for (h, kind, name), rows in sorted(exp.series.items(), key=lambda x: str(x[0])):
        if h != host or kind not in kinds:
            continue
        path = rrd_name(rrd_dir, host, kind, name)
        if not check(daemon is not None or os.path.exists(path), "missing %s" % path):
            continue
        first = min(rows)
        end = until or last_update(path, daemon)
        got = fetch(path, STEP, first - STEP, end, daemon)
        for t in range(first, end + 1, STEP):
            want = rows.get(t, [0.0] * len(ds[kind]))
            g = got.get(t)
            if g is None:
                check(False, "%s: no row at %d" % (path, t))
                continue
            for i, d in enumerate(ds[kind]):
                if kind == "latency" and d == "max_ms":
                    if want[0] == 0:
                        check(math.isnan(g[i]), "%s %s at %d: got %r, want unknown" % (path, d, t, g[i]))
                    else:
                        check(close(g[i], want[i]), "%s %s at %d: got %r, want %r" % (path, d, t, g[i], want[i]))
                    continue
                v = g[i] * STEP
                check(not math.isnan(v) and close(v, want[i]),
                      "%s %s at %d: got %r, want %r" % (path, d, t, v, want[i]))
            n_checked += 1
    return n_checked


def compare_summary(out_dir, exp, scope, hosts):
    """summary.json's totals per period equal the log's counts in the period's (start, end]."""
    s = json.load(open(os.path.join(out_dir, "summary.json")))["scopes"][scope]
    n = 0
    for pname, p in s["periods"].items():
        keys = [("chain", None, "chain", CHAIN_DS)]
        for m in sorted(set().union(*[exp.milters.get(h, set()) for h in hosts])):
            keys.append(("milter", m, "milter-" + m, MILTER_DS))
        for kind, name, label, ds in keys:
            want = [0.0] * len(ds)
            for h in hosts:
                w = exp.total((h, kind, name), len(ds), p["start"], p["end"])
                want = [a + b for a, b in zip(want, w)]
            got = p.get(label)
            if not check(got is not None, "summary %s %s: %s missing" % (scope, pname, label)):
                continue
            for i, d in enumerate(ds):
                g = got[d]
                if all(x == 0 for x in want) and g is None:
                    continue  # nothing in the period yet: no complete archive row
                check(g is not None and close(g, want[i]),
                      "summary %s %s %s %s: got %r, want %r (period %d..%d)" %
                      (scope, pname, label, d, g, want[i], p["start"], p["end"]))
                n += 1
    return n


def png_read(path):
    """(width, height, pixels as rows of RGB tuples) of an 8-bit RGB/RGBA PNG, via zlib."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s: not a PNG" % path)
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if typ == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif typ == b"IDAT":
            idat += body
        pos += 12 + n
    if depth != 8 or ctype not in (2, 6):
        return w, h, None
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, (rows, bpp)


def png_stats(path):
    """(width, height, grey variance, distinct colours) of a PNG."""
    w, h, px = png_read(path)
    if px is None:
        return w, h, 0.0, 0
    rows, bpp = px
    n, s, s2, colours = 0, 0.0, 0.0, set()
    for r in rows[::2]:
        for x in range(0, len(r), bpp * 2):
            g = (r[x] + r[x + 1] + r[x + 2]) / 3.0
            n += 1
            s += g
            s2 += g * g
            colours.add(r[x:x + 3])
    mean = s / n
    return w, h, s2 / n - mean * mean, len(colours)
