# SPDX-License-Identifier: MIT
"""pkgtest - helpers shared by tests/package/privdrop and tests/package/package-test

Runs daemons only inside tests/testbed/netns-run (reexec_in_netns); every wait is
bounded in time (WAIT_SECONDS) and polls every POLL_SECONDS.
"""

import grp
import os
import pwd
import re
import signal
import stat
import subprocess
import sys
import time

SKIP = 77

# Bounds for every wait.
WAIT_SECONDS = 15
POLL_SECONDS = 0.05
# How long a driver run or a helper command may take before the test fails.
COMMAND_SECONDS = 120


class CaseFailure(Exception):
    """A check of a case did not hold."""


def check(cond, what):
    """check - raise CaseFailure with what unless cond"""
    if not cond:
        raise CaseFailure(what)


def log(name, msg):
    """log - a progress line on stderr"""
    print("[%s] %s" % (name, msg), file=sys.stderr, flush=True)


def require_root(name):
    """require_root - exit 77 (skip) unless root"""
    if os.geteuid() != 0:
        print("%s: skipped: must run as root (it starts shadowd as root in private "
              "namespaces)" % name, file=sys.stderr)
        sys.exit(SKIP)


def top_srcdir():
    """top_srcdir - the source tree, from the environment or this file's place"""
    return os.path.abspath(os.environ.get("top_srcdir")
                           or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def reexec_in_netns(argv, extra=()):
    """reexec_in_netns - run argv + extra inside tests/testbed/netns-run; return its status"""
    netns = os.path.join(top_srcdir(), "tests", "testbed", "netns-run")
    return subprocess.run([netns, sys.executable] + list(argv) + list(extra)).returncode


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
    """read - a file's text, or "" if it does not exist (yet)"""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def proc_ids(pid):
    """proc_ids - {Uid: [r,e,s,fs], Gid: [...], Groups: [...], CapEff: int, CapPrm: int}"""
    out = {}
    for line in read("/proc/%d/status" % pid).splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            out[key] = [int(v) for v in value.split()]
        elif key in ("CapEff", "CapPrm"):
            out[key] = int(value.strip(), 16)
    check("Uid" in out, "no /proc/%d/status (process gone?)" % pid)
    return out


def check_ids(pid, user, group):
    """check_ids - pid runs as user:group in every id, with user's groups and no capability"""
    pw = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid
    ids = proc_ids(pid)
    want_groups = sorted(set(os.getgrouplist(user, gid)))
    check(ids["Uid"] == [pw.pw_uid] * 4,
          "pid %d: Uid (real, effective, saved, fs) %s, want %d (%s) in all four"
          % (pid, ids["Uid"], pw.pw_uid, user))
    check(ids["Gid"] == [gid] * 4,
          "pid %d: Gid %s, want %d (%s) in all four" % (pid, ids["Gid"], gid, group))
    check(sorted(set(ids["Groups"])) == want_groups,
          "pid %d: supplementary groups %s, want %s (initgroups of %s)"
          % (pid, ids["Groups"], want_groups, user))
    check(ids["CapEff"] == 0 and ids["CapPrm"] == 0,
          "pid %d: capabilities CapEff %x CapPrm %x, want none" % (pid, ids["CapEff"],
                                                                 ids["CapPrm"]))


def check_owner_mode(path, user, group, mode, kind=None):
    """check_owner_mode - path is owned by user:group with permission bits mode"""
    st = os.lstat(path)
    got_user = pwd.getpwuid(st.st_uid).pw_name if _has_uid(st.st_uid) else str(st.st_uid)
    got_group = grp.getgrgid(st.st_gid).gr_name if _has_gid(st.st_gid) else str(st.st_gid)
    check((got_user, got_group) == (user, group),
          "%s: owner %s:%s, want %s:%s" % (path, got_user, got_group, user, group))
    check(stat.S_IMODE(st.st_mode) == mode,
          "%s: mode %04o, want %04o" % (path, stat.S_IMODE(st.st_mode), mode))
    if kind == "socket":
        check(stat.S_ISSOCK(st.st_mode), "%s: not a socket" % path)
    elif kind == "file":
        check(stat.S_ISREG(st.st_mode), "%s: not a regular file" % path)


def _has_uid(uid):
    """_has_uid - the password database knows uid"""
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def _has_gid(gid):
    """_has_gid - the group database knows gid"""
    try:
        grp.getgrgid(gid)
        return True
    except KeyError:
        return False


def records(path, kind):
    """records - the event log lines of one type ("connection", "message", ...)"""
    return [line for line in read(path).splitlines() if '"type":"%s"' % kind in line]


def play(driver, spec, eml, as_user=None, groups=None, expect_ok=True):
    """play - one message through the milter at spec with milter-driver; its result"""
    cmd = [driver, "--connect", spec, "--quiet", "--timeout", "9000", eml]
    if as_user is not None:
        pre = ["setpriv", "--reuid", as_user, "--regid", as_user]
        pre += ["--groups", groups] if groups else ["--init-groups"]
        cmd = pre + ["--"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_SECONDS)
    if expect_ok:
        check(r.returncode == 0, "milter-driver %s%s: exit %d: %s%s"
              % (spec, " as " + as_user if as_user else "", r.returncode, r.stdout, r.stderr))
        # What a passive milter may answer: continue, or accept at end of message.
        check(re.search(r"^message 1: (continue|accept) ", r.stdout, re.M),
              "milter-driver %s: want \"message 1: continue\" or accept, got: %s"
              % (spec, r.stdout))
    return r


def stop(pid, what="shadowd"):
    """stop - SIGTERM pid and wait until it is gone (bounded); SIGKILL if it will not go"""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not os.path.exists("/proc/%d" % pid) or "State:\tZ" in read(
                    "/proc/%d/status" % pid):
                return
        time.sleep(POLL_SECONDS)
    os.kill(pid, signal.SIGKILL)
    raise CaseFailure("%s (pid %d) did not stop within %ss of SIGTERM" % (what, pid,
                                                                       WAIT_SECONDS))


def run_cases(name, cases):
    """run_cases - run each (case name, function); print ok/not ok; exit status"""
    failed = 0
    for i, (case, fn) in enumerate(cases, 1):
        try:
            fn()
            print("ok %d - %s" % (i, case), flush=True)
        except Exception as e:  # every failure is reported, the other cases still run
            failed += 1
            print("not ok %d - %s: %s: %s" % (i, case, type(e).__name__, e), flush=True)
    print("%s: %d of %d cases passed" % (name, len(cases) - failed, len(cases)), flush=True)
    return 1 if failed else 0
