#!/usr/bin/python3
"""bench.py - parts 1-3 of the shadowd benchmarks (issue 7); started by bench/run.

usage: bench/bench.py --build DIR --out DIR [--quick] [--part N]...

Runs inside tests/testbed/netns-run (bench/run takes care of that): every
daemon it starts (no-op milters, test milters, shadowd, Postfix, smtp-sink)
lives in private namespaces with only loopback.

  part 1  milter level: tests/driver/milter-driver -> no-op child directly,
          shadowd + 1 child, shadowd + 4 children (reply immediate|wait x
          content chained|independent), concurrency 1, 10, 100, 500
  part 2  end to end: smtp-source -> private Postfix -> smtp-sink with no
          milter, one and four no-op children straight in smtpd_milters, and
          the four behind shadowd; unix sockets and TCP
  part 3  scale: 1..8 children that sleep at RCPT (reply = wait), message
          sizes 1 KiB .. 20 MiB in chained mode, 500 concurrent MTA
          connections held open at once

Every figure that matters is a ratio of two cases measured in the same run
(the machine is shared and noisy); absolute figures are printed only as
context.  Ratio tables go to OUT/tables.txt, every raw figure to
OUT/results.json.  No figure is asserted: targets are reported as met or
missed with the figure.
"""

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
KIB = 1024
MIB = 1024 * 1024

# Bounds on every wait.
READY_TIMEOUT_S = 10.0
DRIVER_TIMEOUT_MS = 30000
STOP_TIMEOUT_S = 10.0
POLL_S = 0.01
FD_LIMIT = 65536
MAX_CONNECTIONS = 1024  # shadowd.conf max_connections for every case
SAMPLE_S = 0.005  # /proc sampler period (spool files, open fds)
DRAIN_POLL_S = 0.05  # after a run: idle means no CPU tick in DRAIN_IDLE_POLLS polls
DRAIN_IDLE_POLLS = 4
DRAIN_TIMEOUT_S = 120.0

# The no-op message: the driver's generated message (5 headers) with this body.
BODY_BYTES = 1024


# ---------------------------------------------------------------- helpers


def log(msg):
    """log - a progress line on stderr"""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """BenchError - a case could not be measured (daemon did not start, driver failed)"""


def proc_stat_ticks(pid, children=False):
    """proc_stat_ticks - utime+stime (+cutime+cstime) of PID in clock ticks, None if gone"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime is field 14, so index 11.
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t


def proc_ppid(pid):
    """proc_ppid - parent PID of PID, None if gone"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(")") + 2 :].split()[1])


def proc_status_kib(pid, key):
    """proc_status_kib - a kB field (VmHWM, VmRSS) of /proc/PID/status, None if gone"""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def tree_cpu_ticks(root):
    """tree_cpu_ticks - CPU ticks of ROOT and every live descendant, reaped children included"""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    parent = {p: proc_ppid(p) for p in pids}
    total = 0
    for p in pids:
        q, hops = p, 0
        while q is not None and q != root and q > 1 and hops < 64:
            q, hops = parent.get(q), hops + 1
        if q == root:
            total += proc_stat_ticks(p, children=True) or 0
    return total


def wait_until(pred, timeout, what):
    """wait_until - poll PRED every POLL_S until true; BenchError after TIMEOUT seconds"""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(POLL_S)
    raise BenchError(f"{what}: not after {timeout:.0f}s")


def tcp_listening(port):
    """tcp_listening - true if some socket listens on TCP PORT (reads /proc, never connects)"""
    hexport = f":{port:04X}"
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(hexport) and parts[3] == "0A":
                        return True
        except OSError:
            pass
    return False


def free_port():
    """free_port - a free TCP port chosen at run time (tests/testbed/lib.sh tb_free_port)"""
    out = subprocess.run(
        [os.path.join(HERE, "postfix.sh"), "free-port"], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


class Daemon:
    """Daemon - a process started by the bench, with its CPU time and peak RSS"""

    def __init__(self, name, argv, logdir):
        self.name = name
        self.logpath = os.path.join(logdir, f"{name}.log")
        self.rusage = None
        with open(self.logpath, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.umask(0),
            )
        self.pid = self.proc.pid

    def alive(self):
        """alive - true while the process runs"""
        return self.proc.poll() is None

    def log_has(self, text):
        """log_has - true when TEXT is in the daemon's output"""
        with open(self.logpath, "rb") as f:
            return text.encode() in f.read()

    def ticks(self):
        """ticks - CPU ticks so far"""
        return proc_stat_ticks(self.pid) or 0

    def hwm_kib(self):
        """hwm_kib - peak RSS so far (VmHWM)"""
        return proc_status_kib(self.pid, "VmHWM") or 0

    def stop(self, sig=signal.SIGTERM):
        """stop - send SIG (then KILL after STOP_TIMEOUT_S); keep the rusage of the whole life"""
        if self.rusage is not None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + STOP_TIMEOUT_S
        while True:
            pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.rusage = ru
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                return
            if time.monotonic() > end:
                os.kill(self.pid, signal.SIGKILL)
                end = time.monotonic() + STOP_TIMEOUT_S
            time.sleep(POLL_S)

    def cpu_s(self):
        """cpu_s - user+system seconds of the whole life (after stop)"""
        return self.rusage.ru_utime + self.rusage.ru_stime


def spec_listen(spec):
    """spec_listen - a predicate: the socket SPEC (unix:PATH or inet:PORT@HOST) is listening"""
    if spec.startswith("unix:"):
        path = spec[5:]
        return lambda: os.path.exists(path)
    port = int(spec.split(":")[1].split("@")[0])
    return lambda: tcp_listening(port)


def postfix_spec(spec):
    """postfix_spec - the smtpd_milters form of a libmilter SPEC"""
    if spec.startswith("unix:"):
        return spec
    port, host = spec[5:].split("@")
    return f"inet:{host}:{port}"


class Setup:
    """Setup - the milters of one case: children, optionally shadowd in front of them"""

    def __init__(self, ctx, tag, transport="unix", children=0, shadow=False, reply="immediate",
                 content="chained", child_argv=None, extra_conf=""):
        self.dir = tempfile.mkdtemp(prefix=f"{tag}-", dir=ctx.work)
        os.chmod(self.dir, 0o755)  # Postfix's smtpd (user postfix) reaches the sockets
        self.children = []
        self.shadowd = None
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool)
        try:
            for i in range(children):
                spec = self._spec(transport, f"c{i}")
                argv = (child_argv(spec, i) if child_argv
                        else [ctx.noop, spec])
                d = Daemon(f"child{i}", argv, self.dir)
                d.spec = spec
                self.children.append(d)
            for d in self.children:
                wait_until(lambda: spec_listen(d.spec)() or not d.alive(), READY_TIMEOUT_S,
                           f"{d.name} listening on {d.spec}")
                if not d.alive():
                    raise BenchError(f"{d.name} exited: {open(d.logpath).read()[-500:]}")
            if shadow:
                spec = self._spec(transport, "shadowd")
                conf = os.path.join(self.dir, "shadowd.conf")
                with open(conf, "w") as f:
                    f.write("[shadowd]\n")
                    f.write(f"listen = {spec}\n")
                    f.write(f"event_log = {self.dir}/events.log\n")
                    f.write(f"pid_file = {self.dir}/shadowd.pid\n")
                    f.write(f"spool_dir = {self.spool}\n")
                    f.write("socket_mode = 0666\n")
                    f.write("allow_root = true\n")  # the bench runs as root, in namespaces
                    f.write(f"max_connections = {MAX_CONNECTIONS}\n")
                    f.write(f"reply = {reply}\ncontent = {content}\nhost = bench\n")
                    f.write(extra_conf)
                    for i, c in enumerate(self.children):
                        f.write(f"\n[milter c{i}]\nconnect = {c.spec}\n")
                self.shadowd = Daemon("shadowd", [ctx.shadowd, "-c", conf, "-f"], self.dir)
                self.shadowd.spec = spec
                wait_until(lambda: self.shadowd.log_has("listening on") or not self.shadowd.alive(),
                           READY_TIMEOUT_S, "shadowd ready")
                if not self.shadowd.alive():
                    raise BenchError(f"shadowd exited: {open(self.shadowd.logpath).read()[-800:]}")
        except BaseException:
            self.stop()
            raise

    def _spec(self, transport, name):
        """_spec - a fresh listening address of TRANSPORT for NAME"""
        if transport == "unix":
            return f"unix:{self.dir}/{name}.sock"
        return f"inet:{free_port()}@127.0.0.1"

    def target(self):
        """target - where the MTA side connects: shadowd, else the children"""
        if self.shadowd:
            return [self.shadowd.spec]
        return [c.spec for c in self.children]

    def daemons(self):
        """daemons - every process of the setup"""
        return self.children + ([self.shadowd] if self.shadowd else [])

    def drain(self):
        """drain - wait until every process is idle (children behind shadowd catch up); seconds"""
        t0 = time.monotonic()
        end = t0 + DRAIN_TIMEOUT_S
        last, still = None, 0
        while time.monotonic() < end and still < DRAIN_IDLE_POLLS:
            now = [d.ticks() for d in self.daemons()]
            still = still + 1 if now == last else 0
            last = now
            time.sleep(DRAIN_POLL_S)
        return max(0.0, time.monotonic() - t0 - DRAIN_IDLE_POLLS * DRAIN_POLL_S)

    def unshadowed(self):
        """unshadowed - MTA connections shadowd served without children (over max_connections)"""
        if not self.shadowd:
            return 0
        with open(self.shadowd.logpath, "rb") as f:
            return f.read().count(b"served without children")

    def stop(self):
        """stop - stop shadowd (TERM), then the children (KILL: libmilter stops slowly)"""
        if self.shadowd:
            self.shadowd.stop(signal.SIGTERM)
        for c in self.children:
            c.stop(signal.SIGKILL)


class Sampler(threading.Thread):
    """Sampler - watch a process's open files: peak fd count, spool files seen"""

    def __init__(self, pid, spool):
        super().__init__(daemon=True)
        self.pid, self.spool = pid, spool
        self.peak_fds = 0
        self.spool_seen = 0
        self.stop_flag = threading.Event()

    def run(self):
        fddir = f"/proc/{self.pid}/fd"
        while not self.stop_flag.is_set():
            try:
                fds = os.listdir(fddir)
            except OSError:
                return
            self.peak_fds = max(self.peak_fds, len(fds))
            n = 0
            for fd in fds:
                try:
                    if os.readlink(f"{fddir}/{fd}").startswith(self.spool + "/"):
                        n += 1
                except OSError:
                    pass
            self.spool_seen = max(self.spool_seen, n)
            self.stop_flag.wait(SAMPLE_S)

    def finish(self):
        """finish - stop sampling"""
        self.stop_flag.set()
        self.join(timeout=5)


STATS_RE = re.compile(r"stats: messages=(\d+) connections=(\d+) elapsed=([\d.]+)s rate=([\d.]+)/s")
STAGE_RE = re.compile(r"stats: stage=(\w+) n=(\d+) median=([\d.]+)ms p99=([\d.]+)ms max=([\d.]+)ms")


def run_driver(ctx, target, n, conc, body=BODY_BYTES, script=None, expect=None):
    """run_driver - play N messages at concurrency CONC into TARGET; parsed --stats"""
    argv = [ctx.driver, "--connect", target, "--quiet", "--stats", "--concurrency", str(conc),
            "--connections", str(n), "--timeout", str(DRIVER_TIMEOUT_MS)]
    argv += ["--script", script] if script else ["--generate-body", str(body)]
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise BenchError(f"milter-driver exit {p.returncode}: {p.stderr.strip()[-600:]}")
    done = p.stdout.count("message ")
    if expect is not None and done != expect:
        raise BenchError(f"milter-driver: {done} messages completed, {expect} expected")
    m = STATS_RE.search(p.stderr)
    if not m:
        raise BenchError(f"milter-driver printed no stats: {p.stderr[-400:]}")
    res = {"messages": int(m.group(1)), "elapsed_s": float(m.group(3)),
           "rate": float(m.group(4)), "wall_s": wall, "stages": {},
           "verdicts": sorted(set(re.findall(r"message \d+: (\w+)", p.stdout)))}
    for s in STAGE_RE.finditer(p.stderr):
        res["stages"][s.group(1)] = {"n": int(s.group(2)), "median_ms": float(s.group(3)),
                                      "p99_ms": float(s.group(4)), "max_ms": float(s.group(5))}
    return res


def ratio(a, b):
    """ratio - a / b, None when either is missing or b is 0"""
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v, spec=".2f"):
    """fmt - a table cell"""
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return format(v, spec)


def table(title, header, rows):
    """table - a plain text table, columns aligned"""
    cells = [header] + [[fmt(c) if not isinstance(c, str) else c for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [title]
    for k, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------- part 1


def milter_case(ctx, label, n, conc, children, shadow, reply="immediate", content="chained"):
    """milter_case - one part-1 case: the driver into a setup; rate, latency, CPU, RSS"""
    s = Setup(ctx, "p1", "unix", children=children, shadow=shadow, reply=reply, content=content)
    try:
        d = run_driver(ctx, s.target()[0], n, conc, expect=n)
        # Let immediate-mode children catch up before reading CPU and RSS.
        drain = s.drain()
        hwm = s.shadowd.hwm_kib() if s.shadowd else s.children[0].hwm_kib()
        child_hwm = max(c.hwm_kib() for c in s.children)
        unshadowed = s.unshadowed()
    finally:
        s.stop()
    res = dict(label=label, n=n, conc=conc, children=children, shadow=shadow, reply=reply,
               content=content, driver=d, hwm_kib=hwm, child_hwm_kib=child_hwm,
               drain_s=drain, unshadowed=unshadowed,
               sustained=n / (d["elapsed_s"] + drain),
               child_cpu_us=statistics.mean(c.cpu_s() for c in s.children) / n * 1e6,
               shadowd_cpu_us=(s.shadowd.cpu_s() / n * 1e6) if s.shadowd else None)
    log(f"p1 {label} C={conc}: {d['rate']:.0f} msg/s, eom p50 "
        f"{d['stages'].get('eom', {}).get('median_ms')} ms, shadowd "
        f"{fmt(res['shadowd_cpu_us'], '.1f')} us/msg, child {res['child_cpu_us']:.1f} us/msg, "
        f"HWM {hwm / KIB:.1f} MiB, drain {drain:.2f} s, unshadowed {unshadowed}")
    return res


def part1(ctx):
    """part1 - milter level, no MTA"""
    concs = (10, 100) if ctx.quick else (1, 10, 100, 500)
    n = 200 if ctx.quick else 2000
    results = []
    for conc in concs:
        cases = [("direct child", 1, False, "immediate", "chained"),
                 ("shadowd+1 immediate/chained", 1, True, "immediate", "chained")]
        for reply in ("immediate", "wait"):
            for content in ("chained", "independent"):
                cases.append((f"shadowd+4 {reply}/{content}", 4, True, reply, content))
        for label, k, sh, reply, content in cases:
            try:
                results.append(milter_case(ctx, label, max(n, 2 * conc), conc, k, sh, reply,
                                           content))
            except BenchError as e:
                log(f"p1 {label} C={conc}: FAILED: {e}")
                ctx.failed = True
                results.append(dict(label=label, conc=conc, error=str(e)))
    ctx.results["part1"] = results

    rows, raw = [], []
    for conc in concs:
        base = next((r for r in results if r["conc"] == conc and r["label"] == "direct child"
                     and "error" not in r), None)
        for r in results:
            if r["conc"] != conc:
                continue
            if "error" in r:
                rows.append([r["label"], str(conc), "FAILED"] + [""] * 8)
                continue
            st = r["driver"]["stages"]
            b = base["driver"]["stages"] if base else {}
            bcpu = base["child_cpu_us"] if base else None
            g = lambda stg, k, src: src.get(stg, {}).get(k)  # noqa: E731
            rows.append([r["label"], str(conc),
                         fmt(ratio(r["driver"]["rate"], base and base["driver"]["rate"])),
                         fmt(ratio(r["sustained"], base and base["sustained"])),
                         fmt(ratio(g("rcpt", "median_ms", st), g("rcpt", "median_ms", b))),
                         fmt(ratio(g("eom", "median_ms", st), g("eom", "median_ms", b))),
                         fmt(ratio(g("eom", "p99_ms", st), g("eom", "p99_ms", b))),
                         fmt(ratio(r["shadowd_cpu_us"], bcpu)),
                         fmt(ratio(r["child_cpu_us"], bcpu)),
                         fmt(r["hwm_kib"] / KIB, ".1f"),
                         fmt(1 - r["unshadowed"] / r["n"])])
            raw.append([r["label"], str(conc), fmt(r["driver"]["rate"], ".0f"),
                        fmt(g("rcpt", "median_ms", st), ".3f"), fmt(g("rcpt", "p99_ms", st), ".3f"),
                        fmt(g("eom", "median_ms", st), ".3f"), fmt(g("eom", "p99_ms", st), ".3f"),
                        fmt(r["shadowd_cpu_us"], ".1f"), fmt(r["child_cpu_us"], ".1f"),
                        fmt(r["hwm_kib"] / KIB, ".1f"), fmt(r["drain_s"], ".2f"),
                        str(r["unshadowed"])])
    ctx.raw_tables.append(table(
        f"Part 1 raw figures (context only; N={n} messages of {BODY_BYTES} B body, unix sockets)",
        ["case", "C", "msg/s", "rcpt p50 ms", "rcpt p99 ms", "eom p50 ms", "eom p99 ms",
         "shadowd us/msg", "child us/msg", "HWM MiB", "drain s", "unshadowed"], raw))
    ctx.tables.append(table(
        "Part 1 - milter level (ratios to the no-op child driven directly at the same C)",
        ["case", "C", "MTA msg/s", "sustained", "rcpt p50", "eom p50", "eom p99",
         "shadowd CPU/msg", "each child CPU/msg", "shadowd HWM MiB", "shadowed"], rows))


# ---------------------------------------------------------------- part 2


def sink_count(pfdir):
    """sink_count - messages smtp-sink has dumped so far"""
    try:
        return len(os.listdir(os.path.join(pfdir, "sink")))
    except OSError:
        return 0


def pf(*args):
    """pf - bench/postfix.sh ARGS; BenchError with its output when it fails"""
    p = subprocess.run([os.path.join(HERE, "postfix.sh"), *args], capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        raise BenchError(f"postfix.sh {args[0]}: {(p.stdout + p.stderr).strip()[-600:]}")
    return p.stdout.strip()


def smtp_source(port, n, sessions, size):
    """smtp_source - send N messages of SIZE bytes over SESSIONS parallel sessions"""
    argv = ["smtp-source", "-4", "-s", str(sessions), "-m", str(n), "-l", str(size),
            "-f", "sender@example.org", "-t", "rcpt@example.net", "-M", "client.bench.test",
            f"127.0.0.1:{port}"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise BenchError(f"smtp-source exit {p.returncode}: {(p.stdout + p.stderr)[-400:]}")


def e2e_case(ctx, label, transport, children, shadow, n, sessions, size, reply="immediate"):
    """e2e_case - one part-2 case: smtp-source -> Postfix (+ milters) -> smtp-sink"""
    s = Setup(ctx, "p2", transport, children=children, shadow=shadow, reply=reply)
    pfdir = os.path.join(s.dir, "postfix")
    milters = ", ".join(postfix_spec(t) for t in s.target()) if children else ""
    smtpd_port, sink_port = free_port(), free_port()
    while sink_port == smtpd_port:
        sink_port = free_port()
    try:
        pf("create", pfdir, str(smtpd_port), str(sink_port), milters)
        pf("sink-start", pfdir)
        pf("start", pfdir)
        master = int(open(os.path.join(pfdir, "spool/pid/master.pid")).read().strip())
        # Warm up: Postfix forks its smtpd, cleanup and smtp processes.
        warm = max(sessions, n // 10)
        smtp_source(smtpd_port, warm, sessions, size)
        wait_until(lambda: sink_count(pfdir) >= warm, 60 + warm / 10,
                   f"{label}: warm-up messages at the sink (maillog {pfdir}/log/maillog)")
        base = sink_count(pfdir)
        pf0 = tree_cpu_ticks(master)
        m0 = sum(d.ticks() for d in s.daemons())
        sh0 = s.shadowd.ticks() if s.shadowd else 0
        t0 = time.monotonic()
        smtp_source(smtpd_port, n, sessions, size)
        wait_until(lambda: sink_count(pfdir) >= base + n, 120 + n / 10,
                   f"{label}: {n} messages at the sink (maillog {pfdir}/log/maillog)")
        elapsed = time.monotonic() - t0
        drain = s.drain()  # shadowd's children may still be behind (reply = immediate)
        unshadowed = s.unshadowed()
        pf1 = tree_cpu_ticks(master)
        m1 = sum(d.ticks() for d in s.daemons())
        sh1 = s.shadowd.ticks() if s.shadowd else 0
    finally:
        try:
            pf("stop", pfdir)
            pf("sink-stop", pfdir)
        except BenchError as e:
            log(str(e))
        s.stop()
    per = 1e6 / CLK_TCK / n
    res = dict(label=label, transport=transport, n=n, sessions=sessions, size=size,
               rate=n / elapsed, sustained=n / (elapsed + drain), drain_s=drain,
               unshadowed=unshadowed, postfix_cpu_us=(pf1 - pf0) * per,
               milters_cpu_us=(m1 - m0) * per, shadowd_cpu_us=(sh1 - sh0) * per)
    res["total_cpu_us"] = res["postfix_cpu_us"] + res["milters_cpu_us"]
    log(f"p2 {transport} {label}: {res['rate']:.0f} msg/s, CPU/msg postfix "
        f"{res['postfix_cpu_us']:.0f} us, milters+shadowd {res['milters_cpu_us']:.0f} us")
    return res


def part2(ctx):
    """part2 - end to end through a private Postfix"""
    pf("check")
    n = 100 if ctx.quick else 2000
    sessions = 10 if ctx.quick else 20
    size = BODY_BYTES
    cases = [("no milter", 0, False, "immediate"), ("1 child straight", 1, False, "immediate"),
             ("4 children straight", 4, False, "immediate"),
             ("shadowd+4 immediate", 4, True, "immediate")]
    if not ctx.quick:
        cases.append(("shadowd+4 wait", 4, True, "wait"))
    results = []
    for transport in ("unix", "tcp"):
        for label, k, sh, reply in cases:
            try:
                results.append(e2e_case(ctx, label, transport, k, sh, n, sessions, size, reply))
            except BenchError as e:
                log(f"p2 {transport} {label}: FAILED: {e}")
                ctx.failed = True
                results.append(dict(label=label, transport=transport, error=str(e)))
    ctx.results["part2"] = results
    rows, raw = [], []
    for transport in ("unix", "tcp"):
        base = next((r for r in results if r["transport"] == transport
                     and r["label"] == "no milter" and "error" not in r), None)
        one = next((r for r in results if r["transport"] == transport
                    and r["label"] == "1 child straight" and "error" not in r), None)
        for r in results:
            if r["transport"] != transport:
                continue
            if "error" in r:
                rows.append([r["label"], transport, "FAILED", "", "", "", "", ""])
                continue
            rows.append([r["label"], transport, fmt(ratio(r["rate"], base and base["rate"])),
                         fmt(ratio(r["rate"], one and one["rate"])),
                         fmt(ratio(r["sustained"], base and base["sustained"])),
                         fmt(ratio(r["total_cpu_us"], base and base["total_cpu_us"])),
                         fmt(ratio(r["shadowd_cpu_us"] or None, one and one["milters_cpu_us"])),
                         fmt(1 - r["unshadowed"] / r["n"]) if r["label"].startswith("shadowd")
                         else "-"])
            raw.append([r["label"], transport, fmt(r["rate"], ".0f"),
                        fmt(r["postfix_cpu_us"], ".0f"), fmt(r["milters_cpu_us"], ".0f"),
                        fmt(r["shadowd_cpu_us"], ".0f"), fmt(r["drain_s"], ".2f"),
                        str(r["unshadowed"])])
    ctx.raw_tables.append(table(
        f"Part 2 raw figures (context only; N={n} messages of {size} B, {sessions} smtp-source "
        "sessions, one message per session)",
        ["case", "sockets", "msg/s", "Postfix us/msg", "milters+shadowd us/msg",
         "shadowd us/msg", "drain s", "unshadowed"], raw))
    ctx.tables.append(table(
        "Part 2 - end to end, smtp-source -> Postfix -> smtp-sink (ratios in the same run)",
        ["case", "sockets", "msg/s / no milter", "msg/s / 1 child", "sustained / no milter",
         "CPU/msg / no milter", "shadowd CPU / child CPU", "shadowed"], rows))
    ctx.part2_results = results


# ---------------------------------------------------------------- part 3


def part3_latency(ctx):
    """part3_latency - 1..8 children sleeping at RCPT: latency follows the slowest, not the sum"""
    delay = 20
    counts = (1, 2, 8) if ctx.quick else (1, 2, 4, 8)
    n, conc = (40, 10) if ctx.quick else (200, 10)

    def child(spec, i):
        return [ctx.test_milter, "--socket", spec, "--name", f"s{i}", "--quiet",
                "--sleep", f"rcpt:{delay}", "--backlog", "1024"]

    out = {}
    for reply in ("wait", "immediate"):
        for k in counts:
            s = Setup(ctx, "p3l", "unix", children=k, shadow=True, reply=reply,
                      child_argv=child)
            try:
                d = run_driver(ctx, s.target()[0], n, conc, expect=n)
            finally:
                s.stop()
            # reply = immediate asks the MTA for no RCPT reply (SMFIP_NR_RCPT): the
            # MTA then first waits at EOM, so that is the latency it sees.
            stage = "rcpt" if reply == "wait" else "eom"
            out[(reply, k)] = dict(d["stages"][stage], stage=stage)
            log(f"p3 latency reply={reply} children={k}: {stage} p50 "
                f"{d['stages'][stage]['median_ms']} ms p99 {d['stages'][stage]['p99_ms']} ms")
    ctx.results["part3_latency"] = {f"{r}/{k}": v for (r, k), v in out.items()}
    rows = []
    for reply in ("wait", "immediate"):
        b = out[(reply, 1)]
        for k in counts:
            v = out[(reply, k)]
            rows.append([f"reply={reply}", v["stage"], str(k),
                         fmt(ratio(v["median_ms"], b["median_ms"])),
                         fmt(ratio(v["p99_ms"], b["p99_ms"])),
                         fmt(v["median_ms"] / delay), str(k)])
    ctx.tables.append(table(
        f"Part 3a - k children that each sleep {delay} ms at RCPT (chained; N={n}, C={conc}): "
        "MTA-side latency(k)/latency(1); following the sum would give k",
        ["mode", "MTA waits at", "children", "p50 / 1 child", "p99 / 1 child",
         "p50 / delay", "sum would be"], rows))


def part3_sizes(ctx):
    """part3_sizes - 1 KiB .. 20 MiB messages, chained, 4 children: memory bounded by the spool"""
    spool_memory = MIB  # the default of shadowd.conf
    default_total = 32 * MIB  # spool_memory_total's default
    conc = 4
    sizes = ([(KIB, 40), (MIB, 30), (4 * MIB, 8), (20 * MIB, 4)] if ctx.quick else
             [(KIB, 400), (64 * KIB, 200), (MIB, 60), (4 * MIB, 24), (20 * MIB, 8)])
    cases = [(size, n, reply, default_total) for size, n in sizes
             for reply in ("immediate", "wait")]
    # reply = immediate lets children fall behind by many messages: a smaller total bounds them.
    cases.insert(next(i for i, c in enumerate(cases) if c[0] == MIB) + 2,
                 (MIB, next(n for size, n in sizes if size == MIB), "immediate", 8 * MIB))
    res = []
    for size, n, reply, total in cases:
        s = Setup(ctx, "p3s", "unix", children=4, shadow=True, reply=reply,
                  content="chained",
                  extra_conf=f"spool_memory_total = {total // MIB}M\n")
        samp = Sampler(s.shadowd.pid, s.spool)
        samp.start()
        try:
            d = run_driver(ctx, s.target()[0], n, conc, body=size, expect=n)
            s.drain()
            hwm = s.shadowd.hwm_kib()
            child_hwm = max(c.hwm_kib() for c in s.children)
        finally:
            samp.finish()
            s.stop()
        r = dict(size=size, n=n, conc=conc, reply=reply, total=total, rate=d["rate"],
                 hwm_kib=hwm,
                 child_hwm_kib=child_hwm, spool_files=samp.spool_seen,
                 shadowd_cpu_us=s.shadowd.cpu_s() / n * 1e6,
                 verdicts=d["verdicts"])
        res.append(r)
        log(f"p3 size {size} reply={reply} total={total // MIB}M: {d['rate']:.1f} msg/s "
            f"HWM {hwm / KIB:.1f} MiB, "
            f"spool files seen {samp.spool_seen}")
    ctx.results["part3_sizes"] = res
    rows = []
    for r in res:
        b = next(x for x in res if x["size"] == sizes[0][0] and x["reply"] == r["reply"])
        rows.append([f"{r['size'] // KIB} KiB", r["reply"], str(r["n"]),
                     str(r["total"] // MIB), fmt(r["hwm_kib"] / KIB, ".1f"),
                     fmt(ratio(r["hwm_kib"], b["hwm_kib"])),
                     fmt((r["hwm_kib"] - b["hwm_kib"]) / KIB, ".1f"),
                     "yes" if r["spool_files"] else "no",
                     fmt(ratio(r["size"] * r["rate"], b["size"] * b["rate"]))])
    ctx.tables.append(table(
        f"Part 3b - message sizes, 4 children chained, C={conc}, spool_memory = "
        f"{spool_memory // MIB} MiB (HWM in MiB is the bound being checked: HWM over the 1 KiB "
        f"case stays under spool_memory_total plus the children's queues)",
        ["size", "reply", "N", "spool_memory_total MiB", "shadowd HWM MiB", "HWM / 1 KiB case",
         "HWM - 1 KiB case MiB", "spool file used", "bytes/s / 1 KiB case"], rows))


CONC_SCRIPT = """# part 3c: hold the transaction open so that every connection is open at once
connect
helo client.bench.test
mail <sender@example.org>
rcpt <rcpt@example.net>
data
header Subject: bench
header From: <sender@example.org>
eoh
sleep {hold}
body {body}
eom
abort
quit
"""


def part3_concurrency(ctx):
    """part3_concurrency - 500 MTA connections open at once in front of 4 children"""
    conc = 500
    hold = 1500 if ctx.quick else 3000
    rounds = 1 if ctx.quick else 4
    script = os.path.join(ctx.work, "conc.script")
    with open(script, "w") as f:
        f.write(CONC_SCRIPT.format(hold=hold, body="x" * 70 + "\\r\\n" + "y" * 900 + "\\r\\n"))
    res = []
    for reply, content in (("immediate", "chained"), ("wait", "chained"),
                           ("immediate", "independent")):
        s = Setup(ctx, "p3c", "unix", children=4, shadow=True, reply=reply, content=content)
        samp = Sampler(s.shadowd.pid, s.spool)
        samp.start()
        try:
            d = run_driver(ctx, s.target()[0], conc * rounds, conc, script=script)
            s.drain()
            hwm = s.shadowd.hwm_kib()
            unshadowed = s.unshadowed()
        finally:
            samp.finish()
            s.stop()
        r = dict(reply=reply, content=content, conc=conc, connections=conc * rounds,
                 unshadowed=unshadowed,
                 hwm_kib=hwm, peak_fds=samp.peak_fds, rate=d["rate"],
                 eom=d["stages"].get("eom"), shadowd_cpu_us=s.shadowd.cpu_s() / (conc * rounds)
                 * 1e6)
        res.append(r)
        log(f"p3 500 conns {reply}/{content}: HWM {hwm / KIB:.1f} MiB, peak fds {samp.peak_fds}")
    ctx.results["part3_concurrency"] = res
    rows = [[f"{r['reply']}/{r['content']}", str(r["conc"]), str(r["peak_fds"]),
             f"{r['connections'] - r['unshadowed']}/{r['connections']}",
             fmt(r["hwm_kib"] / KIB, ".1f"), fmt(r["hwm_kib"] / KIB / 64),
             "met" if r["hwm_kib"] < 64 * KIB else "MISSED"] for r in res]
    ctx.tables.append(table(
        f"Part 3c - {conc} MTA connections open at once (each holds its message {hold} ms), "
        "4 children",
        ["mode", "at once", "shadowd peak fds", "shadowed/total conns", "shadowd HWM MiB", "HWM / 64 MiB",
         "target < 64 MiB"], rows))


def part3(ctx):
    """part3 - scale"""
    for f in (part3_latency, part3_sizes, part3_concurrency):
        try:
            f(ctx)
        except BenchError as e:
            log(f"{f.__name__}: FAILED: {e}")
            ctx.failed = True
            ctx.tables.append(f"{f.__name__}: FAILED: {e}")


# ---------------------------------------------------------------- targets


def targets(ctx):
    """targets - the three targets of issue 7, each a ratio measured in this run"""
    lines = ["Targets (issue 7), from this run:"]
    p2 = ctx.results.get("part2") or []
    for transport in ("unix", "tcp"):
        get = lambda lab: next((r for r in p2 if r.get("transport") == transport  # noqa: E731
                                and r["label"] == lab and "error" not in r), None)
        none, one, sh = get("no milter"), get("1 child straight"), get("shadowd+4 immediate")
        if none and sh:
            q = sh["rate"] / none["rate"]
            qs = sh["sustained"] / none["sustained"]
            lines.append(f"  1a {transport}: Postfix + shadowd(4, immediate) / no milter = "
                         f"{q:.2f} (target >= 0.90): {'met' if q >= 0.9 else 'MISSED'}; "
                         f"sustained (children caught up) {qs:.2f}, "
                         f"shadowed {1 - sh['unshadowed'] / sh['n']:.2f}")
        if one and sh:
            q = sh["rate"] / one["rate"]
            lines.append(f"  1b {transport}: Postfix + shadowd(4, immediate) / 1 child straight = "
                         f"{q:.2f} (target > 1.00): {'met' if q > 1.0 else 'MISSED'}")
    p1 = ctx.results.get("part1") or []
    for r in p1:
        if r.get("label") == "shadowd+4 immediate/chained" and "error" not in r:
            base = next((b for b in p1 if b.get("conc") == r["conc"]
                         and b.get("label") == "direct child" and "error" not in b), None)
            if base:
                q = r["shadowd_cpu_us"] / base["child_cpu_us"]
                beside = r["shadowd_cpu_us"] / r["child_cpu_us"] if r["child_cpu_us"] else None
                lines.append(f"  2  C={r['conc']}: shadowd CPU/msg with 4 children / no-op child "
                             f"CPU/msg = {q:.2f} (target <= 1.00): "
                             f"{'met' if q <= 1.0 else 'MISSED'}; / each child beside it in "
                             f"this case {fmt(beside)}")
    for r in ctx.results.get("part3_concurrency") or []:
        mib = r["hwm_kib"] / KIB
        lines.append(f"  3  {r['conc']} connections {r['reply']}/{r['content']}: shadowd peak RSS "
                     f"{mib:.1f} MiB = {mib / 64:.2f} of 64 MiB: "
                     f"{'met' if mib < 64 else 'MISSED'}")
    ctx.tables.append("\n".join(lines))


# ---------------------------------------------------------------- main


class Ctx:
    """Ctx - paths, options and results of one run"""

    def __init__(self, args):
        b = os.path.abspath(args.build)
        self.shadowd = os.path.join(b, "shadowd/shadowd")
        self.driver = os.path.join(b, "tests/driver/milter-driver")
        self.test_milter = os.path.join(b, "tests/milter/test-milter")
        self.noop = os.path.join(b, "bench/noop-milter")
        for p in (self.shadowd, self.driver, self.test_milter, self.noop):
            if not os.access(p, os.X_OK):
                sys.exit(f"bench.py: {p}: not built (bench/run builds it; or pass --build DIR)")
        self.quick = args.quick
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix="shadow-bench-")
        os.chmod(self.work, 0o755)
        self.results = {}
        self.failed = False
        self.tables = []
        self.raw_tables = []


def main():
    ap = argparse.ArgumentParser(description="shadowd benchmarks, parts 1-3 (see bench/README.md)")
    ap.add_argument("--build", required=True, help="non-sanitizer build directory")
    ap.add_argument("--out", required=True, help="directory for tables.txt and results.json")
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--part", type=int, action="append", choices=(1, 2, 3),
                    help="run only this part (repeatable)")
    args = ap.parse_args()
    if os.environ.get("TB_NETNS") != "1":
        sys.exit("bench.py: must run inside tests/testbed/netns-run (bench/run does it)")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY:
        hard = min(hard, FD_LIMIT)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = Ctx(args)
    parts = args.part or [1, 2, 3]
    t0 = time.monotonic()
    for p in sorted(set(parts)):
        log(f"part {p} ...")
        try:
            {1: part1, 2: part2, 3: part3}[p](ctx)
        except Exception as e:  # a bug or a failed setup: report it, keep the other parts
            log(f"part {p}: FAILED: {type(e).__name__}: {e}")
            ctx.tables.append(f"Part {p}: FAILED: {type(e).__name__}: {e}")
            ctx.failed = True
    targets(ctx)
    with open(os.path.join(ctx.out, "results.json"), "w") as f:
        json.dump(ctx.results, f, indent=1)
    with open(os.path.join(ctx.out, "raw.txt"), "w") as f:
        f.write("\n\n".join(ctx.raw_tables) + "\n")
    with open(os.path.join(ctx.out, "tables.txt"), "w") as f:
        f.write("\n\n".join(ctx.tables) + "\n")
    log(f"parts {parts} done in {time.monotonic() - t0:.0f}s; tables in {ctx.out}/tables.txt")
    subprocess.run(["rm", "-rf", ctx.work])
    sys.exit(1 if ctx.failed else 0)


if __name__ == "__main__":
    main()
