#!/usr/bin/python3
"""faults-check.py - checks of the event log and logs for tests/e2e/postfix-faults.

usage: faults-check.py DIR MODE N

DIR holds one run of MODE (immediate or wait) with N messages sent: events.log,
log/maillog (Postfix), steady.log (the intact child's log), times (the fault times
the driver wrote: "kill", "ready", "stop", "cont" lines of epoch seconds).

Children, in chain order: "killed" (SIGKILLed, restarted on the same port; adds a
header when intact), "stopped" (SIGSTOPped for longer than its command_timeout of 3s,
then SIGCONTed; quarantines when intact), "steady" (never touched; rejects every
message at eom). Prints "ok - ..." / "not ok - ..." lines and "#" notes with the counts
per child and action.

Python standard library only (/usr/bin/python3).
"""

import datetime
import json
import os
import re
import sys

CHILDREN = ("killed", "stopped", "steady")
INTACT = {
    "killed": lambda v: v["action"] == "continue" and v["edits"] == [
        {"op": "add_header", "name": "X-Killed-Child", "value": "seen"}],
    "stopped": lambda v: v["action"] == "continue" and v["quarantine"] == "held by stopped",
    "steady": lambda v: v["action"] == "reject" and v["stage"] == "eom",
}
LOST_OK = {"killed": ("unavailable", "error"), "stopped": ("timeout",), "steady": ()}
# after SIGCONT the stopped child first works off the connections queued while it was
# stopped: connections opened within this many seconds of SIGCONT may still time out
CONT_GRACE = 2.0


def ok(cond, what, detail=""):
    """ok - print one check line"""
    if cond:
        print("ok - " + what)
    else:
        lines = str(detail).splitlines() or [""]
        print("not ok - %s: %s" % (what, lines[0]))
        for line in lines[1:40]:
            print("#   " + line)
    return cond


def read(path):
    """read - a file's text, or '' if it does not exist"""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def ts(s):
    """ts - an event log time stamp as epoch seconds"""
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def main():
    """main - all checks of one run"""
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 64
    d, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    times = {}
    for line in read(os.path.join(d, "times")).splitlines():
        k, v = line.split()
        times[k] = float(v)
    ok(all(k in times for k in ("kill", "ready", "stop", "cont")),
       "%s: the driver recorded the fault times (kill, restart, stop, cont)" % mode, times)

    # ---- Postfix: every message sent to the sink, no milter trouble
    maillog = read(os.path.join(d, "log", "maillog"))
    sent = set(re.findall(r"\]: ([0-9A-F]{6,}): to=<[^>]*>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*"
                          r"status=sent", maillog))
    ok(len(sent) == n, "%s: maillog: %d messages status=sent to the sink" % (mode, n), len(sent))
    bad = [l for l in maillog.splitlines()
           if re.search(r"milter-reject|milter-discard|milter-hold|status=deferred|status=bounced"
                        r"|warning: milter|milter .*(timeout|timed out)|4\.7\.1|Service unavailable"
                        r"|can't read|lost connection .*milter", l)]
    ok(not bad, "%s: maillog: no milter-reject/-discard/-hold, deferral, tempfail or milter "
       "timeout/error" % mode, "\n".join(bad[:15]))

    # ---- event log
    recs, torn = [], []
    for i, line in enumerate(read(os.path.join(d, "events.log")).splitlines(), 1):
        try:
            recs.append(json.loads(line))
        except ValueError:
            torn.append("line %d: %s" % (i, line[:200]))
    ok(not torn, "%s: event log: every line is JSON" % mode, torn[:3])
    opens = {r["conn"]: r for r in recs if r["type"] == "connection" and r["event"] == "open"}
    closes = {r["conn"]: r for r in recs if r["type"] == "connection" and r["event"] == "close"}
    msgs = [r for r in recs if r["type"] == "message"]
    by_qid = {}
    for r in msgs:
        by_qid.setdefault(r["queue_id"], []).append(r)
    dup = sorted(q for q, rs in by_qid.items() if len(rs) != 1)
    ok(len(msgs) == n and not dup, "%s: event log: exactly one message record per message (%d)"
       % (mode, n), "%d records, repeated queue ids %s" % (len(msgs), dup[:10]))
    ok(set(by_qid) == sent, "%s: event log queue ids == the queue ids Postfix sent" % mode,
       "only in the event log %s; only in maillog %s"
       % (sorted(set(by_qid) - sent)[:10], sorted(sent - set(by_qid))[:10]))
    verdicts = {}
    for r in recs:
        if r["type"] == "verdict":
            verdicts.setdefault((r["msg"], r["milter"]), []).append(r)

    # ---- per message and child: intact, or lost with the right action and a reason
    counts = {c: {} for c in CHILDREN}
    reasons = {c: {} for c in CHILDREN}
    problems = {c: [] for c in CHILDREN}
    lost_n = {c: 0 for c in CHILDREN}
    inflight = {c: 0 for c in CHILDREN}  # lost in a session that was already running
    other = []
    untrue = []  # timeout reasons that cannot be true
    for m in msgs:
        o = opens.get(m["conn"])
        t_open = ts(o["ts"]) if o else None
        t_rec = ts(m["ts"])
        lost = []
        for c in CHILDREN:
            vs = verdicts.get((m["msg"], c), [])
            if len(vs) != 1:
                problems[c].append("%s: %d verdicts" % (m["queue_id"], len(vs)))
                continue
            v = vs[0]
            counts[c][v["action"]] = counts[c].get(v["action"], 0) + 1
            if INTACT[c](v):
                continue
            lost.append(c)
            lost_n[c] += 1
            if v["action"] == "error" or (v["action"] == "timeout" and "SMFIC_OPTNEG" not in
                                          (v["reason"] or "")):
                inflight[c] += 1
            # "no reply to CMD within N ms": N must be the timeout configured for CMD
            # (stopped: command_timeout 3s, eom_timeout the default 60s), and shadowd cannot
            # have waited N ms in a connection it records as shorter than N ms
            tm = re.match(r"no reply to (SMFIC_\w+) within (\d+) ms", v["reason"] or "")
            if v["action"] == "timeout" and tm:
                want_ms = 60000 if tm.group(1) == "SMFIC_BODYEOB" else 3000
                cl = closes.get(m["conn"])
                if int(tm.group(2)) != want_ms:
                    untrue.append("%s: %r, but %s's timeout is %d ms" % (m["queue_id"], v["reason"],
                                                                        tm.group(1), want_ms))
                elif cl and cl["duration_ms"] < int(tm.group(2)):
                    untrue.append("%s (conn %s): verdict stage %s, reason %r, but the connection "
                                  "lasted %d ms" % (m["queue_id"], m["conn"], v["stage"], v["reason"],
                                                    cl["duration_ms"]))
            reasons[c][re.sub(r"\d+", "N", v["reason"] or "(none)")] = \
                reasons[c].get(re.sub(r"\d+", "N", v["reason"] or "(none)"), 0) + 1
            why = "%s (conn %s): %s at %s, reason %r" % (m["queue_id"], m["conn"], v["action"],
                                                         v["stage"], v["reason"])
            if v["action"] not in LOST_OK[c] or not v["reason"]:
                problems[c].append("not intact and not an expected loss: " + why)
            elif c == "killed" and (t_rec < times.get("kill", 0) or
                                    (t_open and t_open > times.get("ready", 1e18))):
                problems[c].append("lost outside the outage (kill %.3f, back %.3f, opened %.3f, "
                                   "record %.3f): %s" % (times["kill"], times["ready"], t_open,
                                                         t_rec, why))
            elif c == "stopped" and (t_rec < times.get("stop", 0) or
                                     (t_open and t_open > times.get("cont", 1e18) + CONT_GRACE)):
                problems[c].append("lost outside the stop (stop %.3f, cont %.3f, opened %.3f, "
                                   "record %.3f): %s" % (times["stop"], times["cont"], t_open,
                                                         t_rec, why))
        if m["unknown"] != lost:
            other.append("%s: unknown %s, lost %s" % (m["queue_id"], m["unknown"], lost))
        if (m["outcome"], m["decided_by"], m["stage"]) != ("rejected", "steady", "eom"):
            other.append("%s: predicted %s by %s at %s" % (m["queue_id"], m["outcome"],
                                                            m["decided_by"], m["stage"]))
        if m["mta"] != "ended":
            other.append("%s: mta %s" % (m["queue_id"], m["mta"]))
    ok(not problems["killed"] and lost_n["killed"] > 0,
       "%s: killed child: %d verdicts lost, all during its outage, each unavailable/error with "
       "a reason; the rest intact" % (mode, lost_n["killed"]),
       "\n".join(problems["killed"][:15]) or "no verdict was lost: the kill had no effect")
    ok(not problems["stopped"] and lost_n["stopped"] > 0,
       "%s: stopped child: %d verdicts lost, all while it was stopped, each timeout with a "
       "reason; the rest intact" % (mode, lost_n["stopped"]),
       "\n".join(problems["stopped"][:15]) or "no verdict was lost: the stop had no effect")
    ok(inflight["killed"] > 0 and inflight["stopped"] > 0,
       "%s: the faults hit sessions in flight too: killed lost %d verdicts as error, stopped %d "
       "as a timeout after negotiation" % (mode, inflight["killed"], inflight["stopped"]),
       "the driver faulted the children while they were in a body / a RCPT")
    ok(not untrue, "%s: every timeout reason is possible: the timeout it names is the one "
       "configured for that command and not longer than the connection lasted" % mode,
       "%d impossible:\n%s" % (len(untrue), "\n".join(untrue[:10])))
    ok(not problems["steady"] and lost_n["steady"] == 0,
       "%s: steady child: all %d verdicts intact (reject at eom)" % (mode, len(msgs)),
       "\n".join(problems["steady"][:15]))
    ok(not other, "%s: every message record: predicted rejected by steady at eom, unknown == "
       "the children whose verdict was lost, mta ended" % mode, "\n".join(other[:15]))

    # the steady child's own log shows every message, to the end
    seen, eoms = {}, set()
    for line in read(os.path.join(d, "steady.log")).splitlines():
        # Postfix sends i at MAIL when it already has a queue id, else first at DATA
        mm = re.match(r'steady conn=(\d+) msg=(\d+) macro stage=\w+ name="i" value="([^"]+)"', line)
        if mm:
            seen[(mm.group(1), mm.group(2))] = mm.group(3)
            continue
        mm = re.match(r"steady conn=(\d+) msg=(\d+) reply stage=eom verdict=reject", line)
        if mm and (mm.group(1), mm.group(2)) in seen:
            eoms.add(seen[(mm.group(1), mm.group(2))])
    ok(eoms == sent, "%s: steady child's log: every one of the %d messages reached its eom "
       "reject" % (mode, n), "missing %s; extra %s" % (sorted(sent - eoms)[:10],
                                                         sorted(eoms - sent)[:10]))

    # connection records agree with the verdicts
    bad_close = []
    for conn, cl in closes.items():
        st = {x["milter"]: x["state"] for x in cl["milters"]}
        if st.get("steady") != "ok":
            bad_close.append("%s: steady %s" % (conn, st.get("steady")))
    ok(len(closes) == len(opens) and not bad_close,
       "%s: every connection closed (%d), the steady child ok in each" % (mode, len(opens)),
       "%d open, %d close records; %s" % (len(opens), len(closes), bad_close[:10]))

    # ---- the counts, for the report
    acts = sorted({a for c in CHILDREN for a in counts[c]})
    print("# %s: verdicts per child and action (%d messages):" % (mode, len(msgs)))
    print("#   %-8s %s" % ("child", " ".join("%11s" % a for a in acts)))
    for c in CHILDREN:
        print("#   %-8s %s" % (c, " ".join("%11d" % counts[c].get(a, 0) for a in acts)))
    for c in CHILDREN:
        for r, k in sorted(reasons[c].items(), key=lambda x: -x[1]):
            print("#   %s lost %d: %s" % (c, k, r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
