#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-rrdcached.py - updates sent to an rrdcached started by the test (on a unix socket, inside
netns-run) for two hosts: each host's series apart, both merged on the page, counts right."""
import os
import shutil
import signal
import socket
import subprocess
import time

import graphs_lib as g

g.in_netns()
g.need("rrdcached", "rrdcached")
g.need("rrdtool", "rrdtool")
T0 = 1795910400  # 2026-11-28T00:00:00Z
d = g.tmpdir("rrdcached")
base = os.path.join(d, "rrd")
os.mkdir(base)
sock = os.path.join(d, "rrdcached.sock")
daemon = "unix:" + sock
# Writes held for an hour: what the test reads back comes through the daemon.
cached = subprocess.Popen(["rrdcached", "-g", "-l", daemon, "-b", base, "-w", "3600", "-z", "1",
                           "-f", "7200", "-p", os.path.join(d, "rrdcached.pid"), "-O"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
for _ in range(200):
    if os.path.exists(sock) or cached.poll() is not None:
        break
    time.sleep(0.05)
if not g.check(os.path.exists(sock), "rrdcached did not start: %s" % (cached.stderr.read1() if cached.poll() is not None else "")):
    g.finish("test-rrdcached")


def stats():
    """rrdcached's STATS counters."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock)
    s.sendall(b"STATS\n")
    buf = b""
    for _ in range(100):
        buf += s.recv(4096)
        lines = buf.decode().splitlines()
        if lines and len(lines) > int(lines[0].split()[0]):
            break
    s.close()
    return {k.strip(): int(v) for k, v in (x.split(":") for x in lines[1:])}


log1, log2 = os.path.join(d, "mx1.log"), os.path.join(d, "mx2.log")
out = os.path.join(d, "out")
data1 = g.gen(log1 + ".all", start=T0, minutes=150, rate=5, seed=21, host="mx1")
data2 = g.gen(log2 + ".all", start=T0, minutes=150, rate=4, seed=22, host="mx2", new_milter_at=60)
half1, half2 = data1.index(b"\n", len(data1) // 2) + 1, data2.index(b"\n", len(data2) // 2) + 1
for piece, now in (((data1[:half1], data2[:half2]), T0 + 60 * 60), ((data1[half1:], data2[half2:]), T0 + 160 * 60)):
    for path, part in zip((log1, log2), piece):
        with open(path, "ab") as f:
            f.write(part)
    g.run(["--daemon", daemon, "--log", log1, "--log", log2, "--rrd-dir", base, "--out", out,
           "--state", os.path.join(d, "state"), "--now", str(now), "--settle", "0"])
exp = g.Expected().read(log1).read(log2)
st = stats()
g.check(st.get("UpdatesReceived", 0) >= 20, "rrdcached received %r updates" % st.get("UpdatesReceived"))
g.check(st.get("DataSetsWritten", 0) > 100, "rrdcached wrote %r data sets" % st.get("DataSetsWritten"))
for host in ("mx1", "mx2"):
    g.check(g.compare_steps(base, exp, host, daemon=daemon) > 100, "%s: too few rows compared" % host)
    g.check(g.compare_summary(out, exp, host, [host]) > 0, "%s: summary" % host)
g.check(g.compare_summary(out, exp, "_all", ["mx1", "mx2"]) > 0, "merged summary")
page = open(os.path.join(out, "index.html")).read()
for img in ("_all/chain-day.png", "_all/milter-t4-day.png", "mx1/chain-day.png", "mx2/milter-t4-week.png"):
    g.check(('src="%s"' % img) in page and os.path.exists(os.path.join(out, img)), "page lacks %s" % img)
g.check(not os.path.exists(os.path.join(base, "milter-t4@mx1.rrd")), "mx1 got t4's file")

cached.send_signal(signal.SIGTERM)
cached.wait(timeout=30)
shutil.rmtree(d)
g.finish("test-rrdcached")
