#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test-chromium.py - the page from the hand-written fixture (and a second host) opened in
headless Chromium inside netns-run: a screenshot is taken, and a copy of the page with a small
check script added reports whether every image loaded, and whether the page fits a narrow
window (500 CSS pixels, the narrowest headless Chromium makes) without scrolling sideways. Deleting one PNG must make it fail."""
import os
import re
import shutil
import subprocess

import graphs_lib as g

g.in_netns()
g.need("chromium", "chromium")
d = g.tmpdir("chromium")
rrd = os.path.join(d, "rrd")
out = os.path.join(d, "out")
small = os.path.join(g.HERE, "fixtures", "small.log")
log = os.path.join(d, "small.log")
shutil.copy(small, log)
mx2 = os.path.join(d, "mx2.log")
g.gen(mx2, start=1796335200, minutes=240, rate=6, seed=41, host="mx2")  # 2026-12-03T22:00Z
p = g.run(["--log", log, "--log", mx2, "--rrd-dir", rrd, "--out", out,
           "--now", "2026-12-04T02:05:00Z", "--settle", "60"])
g.check("small.log:12:" in p.stderr, "the torn line 12 of the fixture is not reported:\n" + p.stderr)
page = open(os.path.join(out, "index.html")).read()
n_img = len(re.findall(r"<img ", page))
# Per scope and period: chain, share, agreement, and per milter actions and latency. Scopes: all
# hosts (spamd, dkim, t1, t2, t3), mx (spamd, dkim), mx2 (t1, t2, t3).
g.check(n_img == 4 * ((3 + 2 * 5) + (3 + 2 * 2) + (3 + 2 * 3)), "%d images on the page" % n_img)

CHECK = """<script>
window.addEventListener('load', function () {
  var bad = [], imgs = document.images;
  for (var i = 0; i < imgs.length; i++)
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) bad.push(imgs[i].getAttribute('src'));
  var r = document.createElement('pre');
  r.id = 'img-check';
  r.textContent = (bad.length ? 'IMAGES-BAD ' + bad.join(' ') : 'IMAGES-OK') + ' total=' + imgs.length +
    ' width=' + document.documentElement.scrollWidth + '/' + window.innerWidth;
  document.body.appendChild(r);
});
</script>
"""
with open(os.path.join(out, "check.html"), "w") as f:
    f.write(page.replace("</body>", CHECK + "</body>"))
home = os.path.join(d, "home")
os.mkdir(home)
cenv = dict(os.environ, HOME=home)
base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--user-data-dir=" + os.path.join(d, "profile"), "--disable-dev-shm-usage"]


def check_page(size="1280,2000"):
    """check_page - (images result, scroll width, window width) of check.html at size"""
    r = subprocess.run(base + ["--virtual-time-budget=20000", "--dump-dom", "--window-size=" + size,
                               "file://" + os.path.join(out, "check.html")],
                       capture_output=True, text=True, env=cenv, timeout=180)
    m = re.search(r'<pre id="img-check">([^<]*) width=(\d+)/(\d+)</pre>', r.stdout)
    g.check(m is not None, "no check result in the DOM (chromium exit %d): %s" % (r.returncode, r.stderr[-2000:]))
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else ("", 0, 0)


res, _, _ = check_page()
g.check(res == "IMAGES-OK total=%d" % n_img, "images did not all load: %s" % res)
# A narrow window (a phone turned sideways): the summary tables and the graphs must not push
# the page wider than the window.
res, scroll, window = check_page("500,844")
g.check(res == "IMAGES-OK total=%d" % n_img, "images did not all load at 500 px: %s" % res)
g.check(0 < window <= 520 and scroll <= window,
        "at a 500 px window the page is %d px wide (window %d): it scrolls sideways" % (scroll, window))

shot = os.path.join(d, "shot.png")
r = subprocess.run(base + ["--screenshot=" + shot, "--window-size=1280,2000", "--hide-scrollbars",
                           "file://" + os.path.join(out, "index.html")],
                   capture_output=True, text=True, env=cenv, timeout=180)
g.check(os.path.exists(shot), "no screenshot: %s" % r.stderr[-2000:])
if os.path.exists(shot):
    w, h, var, colours = g.png_stats(shot)
    g.check((w, h) == (1280, 2000), "screenshot %dx%d" % (w, h))
    g.check(var > 50 and colours > 20, "screenshot looks blank (variance %.1f, %d colours)" % (var, colours))
    if os.environ.get("GRAPHS_SAMPLE_DIR"):
        os.makedirs(os.environ["GRAPHS_SAMPLE_DIR"], exist_ok=True)
        shutil.copy(shot, os.path.join(os.environ["GRAPHS_SAMPLE_DIR"], "page.png"))
        for f in ("chain-day.png", "milter-t1-day.png"):
            shutil.copy(os.path.join(out, "mx2", f), os.path.join(os.environ["GRAPHS_SAMPLE_DIR"], f))

# The check can fail: without one PNG it names the missing image.
os.unlink(os.path.join(out, "mx", "chain-week.png"))
res, _, _ = check_page()
g.check(res.startswith("IMAGES-BAD mx/chain-week.png ") and res.endswith("total=%d" % n_img),
        "a missing PNG was not noticed: %s" % res)
shutil.rmtree(d)
g.finish("test-chromium")
