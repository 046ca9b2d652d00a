#!/usr/bin/env python3
"""shadowd_cases - shadowd between the project's MTA driver and real libmilter children.

Each case starts its own test milters (tests/milter/test-milter, on Sendmail's
libmilter), its own shadowd, plays mail with tests/driver/milter-driver, and
checks three things: what the MTA side received (only option negotiation,
continue, accept and progress: never a refusal or an edit), what each child
saw (its own log), and the event log's verdict and message records.

Runs inside tests/testbed/netns-run (private network, mount and PID
namespaces, only lo): see tests/integration/run. Every wait is bounded.
Environment: SHADOWD, TEST_MILTER, DRIVER (paths of the built programs).
Prints TAP-like "ok N - name" lines; exits 1 if any case failed.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SHADOWD = os.environ["SHADOWD"]
TEST_MILTER = os.environ["TEST_MILTER"]
DRIVER = os.environ["DRIVER"]

# What a passive milter may say to the MTA (packet listing names).
ALLOWED_TO_MTA = {"SMFIR_OPTNEG", "SMFIR_CONTINUE", "SMFIR_ACCEPT", "SMFIR_PROGRESS"}

# Bounds for every wait.
WAIT_SECONDS = 15
POLL_SECONDS = 0.05

# The MTA's patience: Sendmail's milter read timeout is 10 s.
MTA_TIMEOUT_MS = 9000

MESSAGE = (
    "From: Alice <alice@example.com>\r\n"
    "To: Bob <bob@example.net>\r\n"
    "Subject: quarterly report\r\n"
    "Message-ID: <case-{n}@example.com>\r\n"
    "\r\n"
    "Hello Bob,\r\nthe report is attached.\r\n"
)


class CaseFailure(Exception):
    """A check of a case did not hold."""


def check(cond, what):
    """check - raise CaseFailure with what unless cond"""
    if not cond:
        raise CaseFailure(what)


def free_port():
    """free_port - a TCP port nobody listens on now"""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, what, seconds=WAIT_SECONDS):
    """wait_for - poll pred until true; fail naming what after seconds"""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    raise CaseFailure("timed out after %ss waiting for %s" % (seconds, what))


def read(path):
    """read - a file's text, or "" if it does not exist yet"""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Bed:
    """Bed - one case's processes and files; stop() kills everything it started."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="shadowd-%s-" % name)
        self.procs = []
        self.milters = []  # (name, port or None, log path)
        self.shadowd_port = None
        self.events = os.path.join(self.dir, "events.log")

    def milter(self, name, *args, down=False):
        """milter - start a test milter (or, down=True, reserve a dead port)"""
        port = free_port()
        log = os.path.join(self.dir, name + ".log")
        if not down:
            p = subprocess.Popen(
                [TEST_MILTER, "-s", "inet:%d@127.0.0.1" % port, "-n", name, "-l", log] + list(args),
                stdout=subprocess.DEVNULL, stderr=open(log + ".err", "w"))
            self.procs.append(p)
            wait_for(lambda: " ready " in read(log), "milter %s ready" % name)
        self.milters.append((name, port, log))
        return log

    def shadowd(self, reply="immediate", content="chained", timeouts=None, extra=""):
        """shadowd - write a config for the milters so far and start shadowd"""
        self.shadowd_port = free_port()
        conf = os.path.join(self.dir, "shadowd.conf")
        with open(conf, "w") as f:
            f.write("[shadowd]\nallow_root = true\nlisten = inet:%d@127.0.0.1\nevent_log = %s\n"
                    "reply = %s\ncontent = %s\n%s" % (self.shadowd_port, self.events, reply, content,
                                                     extra))
            for name, port, _ in self.milters:
                f.write("\n[milter %s]\nconnect = inet:%d@127.0.0.1\n" % (name, port))
                for k, v in (timeouts or {}).get(name, {}).items():
                    f.write("%s = %s\n" % (k, v))
        err = os.path.join(self.dir, "shadowd.err")
        p = subprocess.Popen([SHADOWD, "-c", conf, "-f"], stdout=subprocess.DEVNULL,
                             stderr=open(err, "w"))
        self.procs.append(p)
        wait_for(lambda: "listening on" in read(err), "shadowd listening")
        return err

    def drive(self, *args, messages=None, timeout_ms=MTA_TIMEOUT_MS):
        """drive - play messages through shadowd with the driver; return its listing lines"""
        files = []
        for i, text in enumerate(messages or [MESSAGE.format(n=1)]):
            path = os.path.join(self.dir, "msg%d.eml" % i)
            with open(path, "w", newline="") as f:
                f.write(text)
            files.append(path)
        cmd = [DRIVER, "--connect", "inet:%d@127.0.0.1" % self.shadowd_port,
               "--timeout", str(timeout_ms), "--eom-timeout", str(timeout_ms)] + list(args) + files
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT_SECONDS * 4)
        check(r.returncode == 0, "driver exited %d: %s" % (r.returncode, r.stderr.strip()))
        lines = r.stdout.splitlines()
        to_mta = [l.split()[1] for l in lines if l.startswith("< ")]
        bad = [c for c in to_mta if c not in ALLOWED_TO_MTA]
        check(not bad, "the MTA side received %s" % ", ".join(sorted(set(bad))))
        check("SMFIR_OPTNEG" in to_mta, "no SMFIR_OPTNEG reached the MTA side")
        return lines

    def records(self, want_messages):
        """records - the event log once it holds want_messages message records"""
        def parse():
            recs = [json.loads(l) for l in read(self.events).splitlines() if l.strip()]
            return recs if sum(r["type"] == "message" for r in recs) >= want_messages else None
        return wait_for(parse, "%d message records in the event log" % want_messages)

    def stop(self):
        """stop - kill every process of the case"""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in self.procs:
            try:
                p.wait(timeout=WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                pass


def verdicts(recs, msg_index=0):
    """verdicts - milter name -> verdict record for the nth message"""
    msgs = [r for r in recs if r["type"] == "message"]
    mid = msgs[msg_index]["msg"]
    return {r["milter"]: r for r in recs if r["type"] == "verdict" and r["msg"] == mid}


def message(recs, msg_index=0):
    """message - the nth message record"""
    return [r for r in recs if r["type"] == "message"][msg_index]


def events_of(log, msg=1):
    """events_of - the EVENT words a test milter logged for message msg"""
    out = []
    for line in read(log).splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "msg=%d" % msg:
            out.append(parts[3])
    return out


# ---- the five cases of issue 3 --------------------------------------------


def case_accept_at_mail(bed):
    """(1) a child accepts at MAIL FROM for an authenticated client"""
    a = bed.milter("a", "--action", "mail:accept@auth")
    b = bed.milter("b")
    bed.shadowd()
    bed.drive("--auth", "alice", "--from", "<alice@example.com>", "--rcpt", "<bob@example.net>")
    recs = bed.records(1)
    v = verdicts(recs)
    check(v["a"]["action"] == "accept" and v["a"]["stage"] == "mail",
          "a: got %s at %s, want accept at mail" % (v["a"]["action"], v["a"]["stage"]))
    check(v["b"]["action"] == "continue", "b: got %s, want continue" % v["b"]["action"])
    check(message(recs)["outcome"] == "delivered", "outcome %s" % message(recs)["outcome"])
    check(message(recs)["auth"] == "alice", "auth %r" % message(recs)["auth"])
    seen_a = events_of(a)
    check("rcpt" not in seen_a and "header" not in seen_a and "eom" not in seen_a,
          "a received events after accepting: %s" % seen_a)
    seen_b = events_of(b)
    check("rcpt" in seen_b and "header" in seen_b and "eom" in seen_b,
          "b did not get the whole message: %s" % seen_b)


def case_rcpt_tempfail_one(bed):
    """(2a) a child tempfails one recipient of two at RCPT"""
    bed.milter("a", "--action", "rcpt:tempfail@<bob@example.net>")
    bed.milter("b")
    bed.shadowd()
    bed.drive("--rcpt", "<bob@example.net>", "--rcpt", "<carol@example.net>")
    recs = bed.records(1)
    v, m = verdicts(recs), message(recs)
    check([r["rcpt"] for r in v["a"]["rcpts"]] == ["<bob@example.net>"],
          "a refused %s, want only bob" % v["a"]["rcpts"])
    check(v["a"]["rcpts"][0]["action"] == "tempfail", "bob's action %s" % v["a"]["rcpts"][0])
    check(v["b"]["rcpts"] == [], "b refused %s" % v["b"]["rcpts"])
    check(m["outcome"] == "delivered", "outcome %s, want delivered (to carol)" % m["outcome"])
    check([r["rcpt"] for r in m["refused"]] == ["<bob@example.net>"], "refused %s" % m["refused"])


def case_rcpt_tempfail_all(bed):
    """(2b) with both recipients tempfailed the predicted outcome is tempfailed"""
    bed.milter("a", "--action", "rcpt:tempfail")
    bed.milter("b")
    bed.shadowd()
    bed.drive("--rcpt", "<bob@example.net>", "--rcpt", "<carol@example.net>")
    m = message(bed.records(1))
    check(m["outcome"] == "tempfailed" and m["stage"] == "rcpt" and m["decided_by"] == "a",
          "got %s at %s by %s, want tempfailed at rcpt by a"
          % (m["outcome"], m["stage"], m["decided_by"]))


def case_quarantine(bed):
    """(3) a child quarantines at end of message"""
    bed.milter("a")
    bed.milter("b", "--quarantine", "held by b for review")
    bed.shadowd()
    bed.drive()
    recs = bed.records(1)
    m = message(recs)
    check(m["outcome"] == "quarantined", "outcome %s" % m["outcome"])
    check(m["quarantine"] == "held by b for review", "reason %r" % m["quarantine"])
    check(verdicts(recs)["b"]["quarantine"] == "held by b for review", "b's verdict lacks it")


def case_add_header(bed):
    """(4) a child adds a header and continues at end of message"""
    bed.milter("a", "--add-header", "X-Shadow-Test:added by a")
    bed.milter("b")
    bed.shadowd()
    lines = bed.drive()
    recs = bed.records(1)
    m = message(recs)
    check(m["outcome"] == "delivered", "outcome %s" % m["outcome"])
    check(m["edits"] == [{"milter": "a", "op": "add_header", "name": "X-Shadow-Test",
                          "value": "added by a"}], "edits %s" % m["edits"])
    check(not any("SMFIR_ADDHEADER" in l for l in lines), "the MTA side got the header")


def subject_seen(log):
    """subject_seen - the Subject header value a test milter logged"""
    for line in read(log).splitlines():
        if ' header name="Subject" ' in line:
            return line.split(' value="', 1)[1].rstrip('"')
    return None


def case_chained_subject(bed):
    """(5a) chained: child 2 sees the Subject child 1 rewrote"""
    bed.milter("a", "--subject-prefix", "[A]")
    b = bed.milter("b", "--action", "eom:reject@header:Subject~[A]")
    bed.shadowd(content="chained")
    bed.drive()
    recs = bed.records(1)
    check(subject_seen(b) == "[A] quarterly report", "b saw Subject %r" % subject_seen(b))
    check(verdicts(recs)["b"]["action"] == "reject", "b did not reject the tagged message")
    m = message(recs)
    check(m["outcome"] == "rejected" and m["decided_by"] == "b", "outcome %s by %s"
          % (m["outcome"], m["decided_by"]))


def case_independent_subject(bed):
    """(5b) independent: child 2 sees the original Subject"""
    bed.milter("a", "--subject-prefix", "[A]")
    b = bed.milter("b", "--action", "eom:reject@header:Subject~[A]")
    bed.shadowd(content="independent")
    bed.drive()
    recs = bed.records(1)
    check(subject_seen(b) == "quarterly report", "b saw Subject %r" % subject_seen(b))
    check(verdicts(recs)["b"]["action"] == "continue", "b: %s" % verdicts(recs)["b"]["action"])
    m = message(recs)
    check(m["outcome"] == "delivered", "outcome %s" % m["outcome"])
    check(m["edits"][0]["op"] == "change_header", "edits %s" % m["edits"])


def case_wait_mode(bed):
    """reply = wait: the same verdicts, and the MTA still sees only continue"""
    bed.milter("a", "--action", "rcpt:reply:550 5.7.1 not here@<bob@example.net>")
    bed.milter("b", "--progress", "2", "--add-header", "X-B:yes")
    bed.shadowd(reply="wait")
    bed.drive("--rcpt", "<bob@example.net>", "--rcpt", "<carol@example.net>")
    recs = bed.records(1)
    v = verdicts(recs)
    check(v["a"]["rcpts"][0]["reply"] == "550 5.7.1 not here", "a: %s" % v["a"]["rcpts"])
    check(v["b"]["edits"][0]["name"] == "X-B", "b: %s" % v["b"]["edits"])


def case_two_messages(bed):
    """two messages on one connection get separate verdicts"""
    bed.milter("a", "--action", "eom:reject@header:Subject~spam")
    bed.milter("b")
    bed.shadowd()
    spam = MESSAGE.format(n=2).replace("quarterly report", "cheap spam")
    bed.drive(messages=[MESSAGE.format(n=1), spam])
    recs = bed.records(2)
    check(message(recs, 0)["outcome"] == "delivered", "first: %s" % message(recs, 0)["outcome"])
    check(message(recs, 1)["outcome"] == "rejected", "second: %s" % message(recs, 1)["outcome"])


def case_max_message(bed):
    """chained: a message over max_message is not shown; verdicts say overflow, mail is untouched"""
    a = bed.milter("a")
    bed.milter("b")
    bed.shadowd(extra="max_message = 1k\n")
    big = MESSAGE.format(n=1).replace("the report is attached.", "x" * 4000)
    bed.drive(messages=[big])
    recs = bed.records(1)
    v = verdicts(recs)
    for name in ("a", "b"):
        check(v[name]["action"] == "overflow" and "max_message" in (v[name]["reason"] or ""),
              "%s: %s (%s)" % (name, v[name]["action"], v[name]["reason"]))
    m = message(recs)
    check(m["outcome"] == "delivered" and sorted(m["unknown"]) == ["a", "b"],
          "outcome %s unknown %s" % (m["outcome"], m["unknown"]))
    check("header" not in events_of(a) and "eom" not in events_of(a),
          "a was shown content: %s" % events_of(a))


def case_unix_socket(bed):
    """listen on a unix socket with socket_mode and socket_owner; the MTA reaches it there"""
    import pwd
    import grp
    import stat
    bed.milter("a", "--add-header", "X-A:yes")
    sock = os.path.join(bed.dir, "shadowd.sock")
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    conf = os.path.join(bed.dir, "shadowd.conf")
    with open(conf, "w") as f:
        f.write("[shadowd]\nallow_root = true\nlisten = unix:%s\nevent_log = %s\nsocket_mode = 0640\n"
                "socket_owner = nobody:%s\n\n[milter a]\nconnect = inet:%d@127.0.0.1\n"
                % (sock, bed.events, group, bed.milters[0][1]))
    err = os.path.join(bed.dir, "shadowd.err")
    bed.procs.append(subprocess.Popen([SHADOWD, "-c", conf, "-f"], stdout=subprocess.DEVNULL,
                                      stderr=open(err, "w")))
    wait_for(lambda: "listening on" in read(err), "shadowd listening")
    st = os.stat(sock)
    check(stat.S_ISSOCK(st.st_mode), "%s is not a socket" % sock)
    check(stat.S_IMODE(st.st_mode) == 0o640, "mode %o, want 640" % stat.S_IMODE(st.st_mode))
    check(st.st_uid == nobody.pw_uid and st.st_gid == nobody.pw_gid,
          "owner %d:%d, want nobody" % (st.st_uid, st.st_gid))
    path = os.path.join(bed.dir, "m.eml")
    with open(path, "w") as f:
        f.write(MESSAGE.format(n=1))
    r = subprocess.run([DRIVER, "--connect", "unix:" + sock, "--timeout", str(MTA_TIMEOUT_MS),
                        path], capture_output=True, text=True, timeout=WAIT_SECONDS * 4)
    check(r.returncode == 0, "driver: %s" % r.stderr.strip())
    check(not [l for l in r.stdout.splitlines() if l.startswith("< ")
               and l.split()[1] not in ALLOWED_TO_MTA], "the MTA side got more than continue")
    v = verdicts(bed.records(1))
    check(v["a"]["edits"][0]["name"] == "X-A", "a: %s" % v["a"])


def case_daemon_pid_file(bed):
    """without -f shadowd detaches and writes its pid file; SIGTERM stops it"""
    conf = os.path.join(bed.dir, "shadowd.conf")
    pid_file = os.path.join(bed.dir, "shadowd.pid")
    port = free_port()
    with open(conf, "w") as f:
        f.write("[shadowd]\nallow_root = true\nlisten = inet:%d@127.0.0.1\nevent_log = %s\npid_file = %s\n"
                % (port, bed.events, pid_file))
    r = subprocess.run([SHADOWD, "-c", conf], capture_output=True, text=True,
                       timeout=WAIT_SECONDS)
    check(r.returncode == 0, "shadowd exited %d: %s" % (r.returncode, r.stderr))
    pid = int(wait_for(lambda: read(pid_file).strip(), "the pid file"))
    check(os.path.exists("/proc/%d" % pid), "no process %d" % pid)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not os.path.exists("/proc/%d/status" % pid)
             or "zombie" in read("/proc/%d/status" % pid), "shadowd %d to stop" % pid)


# ---- faults ---------------------------------------------------------------


def fault_case(bed, reply, args_a, want_action, want_reason, timeouts=None, down=False):
    """fault_case - child a misbehaves; b's verdict and the MTA must be untouched"""
    bed.milter("a", *args_a, down=down)
    bed.milter("b", "--add-header", "X-B:fine")
    bed.shadowd(reply=reply, timeouts=timeouts)
    bed.drive("--rcpt", "<bob@example.net>")
    recs = bed.records(1)
    v = verdicts(recs)
    check(v["a"]["action"] == want_action, "a: got %s (%s), want %s"
          % (v["a"]["action"], v["a"]["reason"], want_action))
    check(want_reason in (v["a"]["reason"] or ""), "a's reason %r lacks %r"
          % (v["a"]["reason"], want_reason))
    check(v["b"]["action"] == "continue" and v["b"]["edits"][0]["name"] == "X-B",
          "b's verdict was disturbed: %s %s" % (v["b"]["action"], v["b"]["edits"]))
    m = message(recs)
    check(m["unknown"] == ["a"], "unknown %s" % m["unknown"])
    check(m["outcome"] == "delivered", "outcome %s" % m["outcome"])


def make_faults():
    """make_faults - each fault in both reply modes"""
    cases = []
    for reply in ("immediate", "wait"):
        cases += [
            ("fault_down_" + reply, lambda bed, r=reply: fault_case(
                bed, r, [], "unavailable", "connect", down=True)),
            ("fault_hang_" + reply, lambda bed, r=reply: fault_case(
                bed, r, ["--sleep", "body:30000"], "timeout", "no reply to SMFIC_BODY",
                timeouts={"a": {"command_timeout": "1s"}})),
            ("fault_crash_" + reply, lambda bed, r=reply: fault_case(
                bed, r, ["--crash", "body"], "error", "closed the connection")),
            ("fault_garbage_" + reply, lambda bed, r=reply: fault_case(
                bed, r, ["--garbage", "eoh"], "error", "packet")),
        ]
    return cases


CASES = [
    ("accept_at_mail", case_accept_at_mail),
    ("rcpt_tempfail_one", case_rcpt_tempfail_one),
    ("rcpt_tempfail_all", case_rcpt_tempfail_all),
    ("quarantine", case_quarantine),
    ("add_header", case_add_header),
    ("chained_subject", case_chained_subject),
    ("independent_subject", case_independent_subject),
    ("wait_mode", case_wait_mode),
    ("two_messages", case_two_messages),
    ("max_message", case_max_message),
    ("unix_socket", case_unix_socket),
    ("daemon_pid_file", case_daemon_pid_file),
] + make_faults()


def main():
    """main - run the cases named on the command line, or all"""
    want = set(sys.argv[1:])
    failed = 0
    n = 0
    for name, fn in CASES:
        if want and name not in want:
            continue
        n += 1
        bed = Bed(name)
        try:
            fn(bed)
            print("ok %d - %s" % (n, name))
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            failed += 1
            print("not ok %d - %s: %s" % (n, name, e))
            if not isinstance(e, CaseFailure):
                traceback.print_exc()
            print("#   files in %s" % bed.dir)
            for f in sorted(os.listdir(bed.dir)):
                if f.endswith((".log", ".err")):
                    print("#   --- %s" % f)
                    for line in read(os.path.join(bed.dir, f)).splitlines()[-15:]:
                        print("#   " + line)
        finally:
            bed.stop()
    print("%d passed, %d failed" % (n - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
