#!/usr/bin/python3
"""miltertest-check.py - checks of the event log for tests/e2e/miltertest.

usage: miltertest-check.py DIR MODE...

Each MODE ran every case of CASES below through miltertest, with queue ids (macro i)
MODE.CASE.N. For every message this checks the event log (DIR/events.log) against two
things: what the case expects shadowd to predict (outcome, refused recipients,
quarantine, edits) and what each child really answered, as its own log shows
(DIR/CHILD.log: its replies at RCPT and EOM, its edits and quarantine). It also checks
the connection records and what shadowd negotiated with miltertest (DIR/MODE.CASE.out,
the "negotiated:" line the Lua prints). Prints "ok - ..." / "not ok - ..." lines.

Python standard library only (/usr/bin/python3).
"""

import json
import os
import re
import sys

CHILDREN = ("rcptrej", "quar", "addh")  # chain order, as in shadowd.conf
BOB, CAROL, MALLORY = "<bob@example.net>", "<carol@example.net>", "<mallory@example.net>"
REJECT_TEXT = "550 5.7.1 no mallory here"
HOLD = "held by quar"

# case -> message number -> expectation
Q = {"outcome": "quarantined", "decided_by": "quar", "stage": "eom", "quarantine": HOLD, "edits": True}
CASES = {
    "basic": {1: dict(Q, rcpts=[BOB, MALLORY], refused=[MALLORY], addr="192.0.2.1", family="inet",
                      mta="ended")},
    "rcpt-only": {1: dict(rcpts=[MALLORY], refused=[MALLORY], addr="192.0.2.2", family="inet",
                          mta="ended", outcome="rejected", decided_by="rcptrej", stage="rcpt",
                          quarantine=None, edits=False, reply=REJECT_TEXT)},
    "two-messages": {
        1: dict(Q, rcpts=[BOB], refused=[], addr="192.0.2.4", family="inet", mta="ended"),
        2: dict(rcpts=[BOB, MALLORY], refused=[MALLORY], addr="192.0.2.4", family="inet",
                mta="aborted", outcome="delivered", decided_by=None, stage=None, quarantine=None,
                edits=False),
        3: dict(Q, rcpts=[CAROL], refused=[], addr="192.0.2.4", family="inet", mta="ended",
                min_size=150000),
    },
    "families": {
        1: dict(Q, rcpts=[BOB], refused=[], addr="2001:db8::25", family="inet6", mta="ended"),
        2: dict(Q, rcpts=[BOB], refused=[], addr=None, family="unknown", mta="ended"),
        3: dict(Q, rcpts=[BOB], refused=[], addr="192.0.2.3", family="inet", mta="ended"),
    },
}

NR_NAMES = ("NR_CONN", "NR_HELO", "NR_MAIL", "NR_RCPT", "NR_DATA", "NR_UNKN", "NR_EOH", "NR_BODY",
            "NR_HDR")

RESULTS = []


def ok(cond, what, detail=""):
    """ok - print one check line"""
    if cond:
        print("ok - " + what)
    else:
        lines = str(detail).splitlines() or [""]
        print("not ok - %s: %s" % (what, lines[0]))
        for line in lines[1:40]:
            print("#   " + line)
    RESULTS.append(bool(cond))
    return cond


class Probs:
    """Probs - the problems found for one check line"""

    def __init__(self):
        self.items = []

    def want(self, cond, text):
        """want - note text unless cond"""
        if not cond:
            self.items.append(str(text))
        return cond

    def report(self, what):
        """report - one ok / not ok line for all of them"""
        return ok(not self.items, what, "; ".join(self.items))


def read(path):
    """read - a file's text, or '' if it does not exist"""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def unquote(v):
    """unquote - a test-milter log value without its quotes and escapes"""
    if v.startswith('"') and v.endswith('"'):
        v = v[1:-1]
        v = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), v)
        v = v.replace('\\"', '"').replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")
        v = v.replace("\\\\", "\\")
    return v


KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def child_truth(d, child):
    """child_truth - queue id -> what CHILD saw and answered for that message (its log)"""
    conns = {}  # conn -> connect fields
    msgs = {}  # (conn, msg) -> facts
    for line in read(os.path.join(d, child + ".log")).splitlines():
        m = re.match(r"\S+ conn=(\d+) msg=(\d+) (\S+)(.*)$", line)
        if not m:
            continue
        conn, msg, event, rest = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        kv = {k: unquote(v) for k, v in KV.findall(rest)}
        if event == "connect":
            conns[conn] = kv
            continue
        if msg == 0:
            continue
        f = msgs.setdefault((conn, msg), {"qid": None, "conn": conn, "rcpt_seen": [], "refused": [],
                                          "edits": [], "quarantine": None, "eom": None,
                                          "abort": False, "last_rcpt": None})
        if event == "macro" and kv.get("stage") == "mail" and kv.get("name") == "i":
            f["qid"] = kv["value"]
        elif event == "rcpt":
            f["last_rcpt"] = kv["addr"]
            f["rcpt_seen"].append(kv["addr"])
        elif event == "reply" and kv.get("stage") == "rcpt":
            v = kv["verdict"]
            if v in ("reject", "tempfail"):
                f["refused"].append((f["last_rcpt"], v, None))
            elif v == "reply":
                act = "tempfail" if kv["text"].startswith("4") else "reject"
                f["refused"].append((f["last_rcpt"], act, kv["text"]))
        elif event == "reply" and kv.get("stage") == "eom":
            f["eom"] = kv["verdict"]
        elif event == "abort":
            f["abort"] = True
        elif event == "edit" and kv.get("status") == "ok":
            op = kv["op"]
            if op == "quarantine":
                f["quarantine"] = kv["reason"]
            elif op == "add-header":
                f["edits"].append({"op": "add_header", "name": kv["name"], "value": kv["value"]})
            elif op == "insert-header":
                f["edits"].append({"op": "insert_header", "index": int(kv["index"]),
                                   "name": kv["name"], "value": kv["value"]})
            elif op == "subject-prefix" and kv.get("how") == "change":
                f["edits"].append({"op": "change_header", "index": 1, "name": "Subject",
                                   "value": kv["value"]})
            elif op == "subject-prefix":
                f["edits"].append({"op": "add_header", "name": "Subject", "value": kv["value"]})
            elif op == "replace-body":
                f["edits"].append({"op": "replace_body", "size": int(kv["len"])})
            elif op == "add-rcpt":
                f["edits"].append({"op": "add_rcpt", "addr": kv["addr"]})
            elif op == "del-rcpt":
                f["edits"].append({"op": "delete_rcpt", "addr": kv["addr"]})
            else:
                f["edits"].append({"op": "unmapped:" + op})
    out = {}
    for f in msgs.values():
        if f["qid"]:
            f["connect"] = conns.get(f["conn"], {})
            out.setdefault(f["qid"], []).append(f)
    return out


def check_negotiation(d, mode, case):
    """check_negotiation - the protocol bits shadowd asked miltertest for"""
    out = read(os.path.join(d, "%s.%s.out" % (mode, case)))
    m = re.search(r"^negotiated: (.*)$", out, re.M)
    if not ok(m, "%s.%s: miltertest printed what shadowd negotiated" % (mode, case)):
        return
    bits = set(m.group(1).split())
    no = sorted(b for b in bits if b.startswith("NO"))
    nr = sorted(b for b in bits if b.startswith("NR_"))
    if mode == "immediate":
        want_nr = sorted(NR_NAMES)  # miltertest offers every NR bit; immediate asks for all
    else:
        want_nr = []
    ok(not no and nr == want_nr,
       "%s.%s: shadowd negotiated no NO* step and %s" % (mode, case,
                                                         "every NR_* bit offered" if want_nr else "no NR_* bit"),
       "got %s" % sorted(bits))


def check_mode(d, mode, recs, truth):
    """check_mode - every message of every case run in MODE"""
    msgs, verdicts, opens, closes = {}, {}, {}, {}
    for r in recs:
        if r["type"] == "message":
            msgs.setdefault(r["queue_id"], []).append(r)
        elif r["type"] == "verdict":
            verdicts.setdefault((r["queue_id"], r["milter"]), []).append(r)
        elif r["type"] == "connection":
            (opens if r["event"] == "open" else closes)[r["conn"]] = r
    for case, expect in CASES.items():
        check_negotiation(d, mode, case)
        for n, e in expect.items():
            qid = "%s.%s.%d" % (mode, case, n)
            check_message(qid, e, msgs.get(qid, []), verdicts, opens, closes, truth)


def check_message(qid, e, got, verdicts, opens, closes, truth):
    """check_message - one message record, its connection and its three verdicts"""
    p = Probs()
    r = got[0] if len(got) == 1 else None
    if p.want(r is not None, "%d message records" % len(got)):
        o, c = opens.get(r["conn"]), closes.get(r["conn"])
        p.want(r["mta"] == e["mta"], "mta %s" % r["mta"])
        p.want(r["from"] == "<alice@example.com>" and r["rcpts"] == e["rcpts"],
               "envelope %s %s" % (r["from"], r["rcpts"]))
        p.want(r["client_addr"] == e["addr"], "client_addr %r, want %r" % (r["client_addr"], e["addr"]))
        p.want((r["outcome"], r["decided_by"], r["stage"]) == (e["outcome"], e["decided_by"], e["stage"]),
               "predicted %s by %s at %s" % (r["outcome"], r["decided_by"], r["stage"]))
        p.want(r["quarantine"] == e["quarantine"], "quarantine %r" % r["quarantine"])
        if "reply" in e:
            p.want(r["reply"] == e["reply"], "reply %r" % r["reply"])
        p.want(sorted((x["rcpt"], x["action"], x["reply"], x["milter"]) for x in r["refused"])
               == sorted((x, "reject", REJECT_TEXT, "rcptrej") for x in e["refused"]),
               "refused %s" % r["refused"])
        p.want(r["unknown"] == [], "unknown %s" % r["unknown"])
        if e["edits"]:
            p.want(r["edits"] and all(x["milter"] == "addh" for x in r["edits"]),
                   "edits %s" % r["edits"])
        else:
            p.want(r["edits"] == [], "edits %s" % r["edits"])
        if "min_size" in e:
            p.want(r["size"] >= e["min_size"], "size %s" % r["size"])
        if p.want(o is not None and c is not None, "connection records missing"):
            p.want(o["client_addr"] == e["addr"], "open client_addr %r" % o["client_addr"])
            p.want((o["client_port"] is None) == (e["family"] == "unknown"),
                   "client_port %r" % o["client_port"])
            states = {m["milter"]: m["state"] for m in c["milters"]}
            p.want(all(states.get(ch) == "ok" for ch in CHILDREN) and c["errors"] == 0,
                   "close: states %s errors %s" % (states, c["errors"]))
    p.report("events %s: %s%s%s, refused %s, mta %s, client_addr %r" % (
        qid, e["outcome"], " by %s" % e["decided_by"] if e["decided_by"] else "",
        " at %s" % e["stage"] if e["stage"] else "", e["refused"] or "none", e["mta"], e["addr"]))
    for ch in CHILDREN:
        check_verdict(qid, ch, e, verdicts.get((qid, ch), []), truth[ch].get(qid, []), r)


def check_verdict(qid, ch, e, vs, facts, msg):
    """check_verdict - CHILD's verdict record equals what CHILD's own log says it did"""
    p = Probs()
    summary = "?"
    if p.want(len(vs) == 1, "%d verdict records" % len(vs)) and \
            p.want(len(facts) == 1, "%d messages with this queue id in %s.log" % (len(facts), ch)):
        v, f = vs[0], facts[0]
        p.want(msg is None or v["msg"] == msg["msg"], "msg %s" % v["msg"])
        want_action = {"continue": "continue", "accept": "accept", "reject": "reject",
                       "tempfail": "tempfail", "discard": "discard", None: "continue"}[f["eom"]]
        p.want(v["action"] == want_action, "action %s (stage %s, reason %s); the child answered %s at eom%s"
               % (v["action"], v["stage"], v["reason"], f["eom"], ", aborted" if f["abort"] else ""))
        want_stage = "eom" if f["eom"] else "rcpt"
        p.want(v["stage"] == want_stage, "stage %s, want %s" % (v["stage"], want_stage))
        got_rcpts = [(x["rcpt"], x["action"], x["reply"]) for x in v["rcpts"]]
        p.want(got_rcpts == f["refused"], "rcpts %s, the child refused %s" % (got_rcpts, f["refused"]))
        p.want(v["quarantine"] == f["quarantine"],
               "quarantine %r, the child asked %r" % (v["quarantine"], f["quarantine"]))
        p.want(v["edits"] == f["edits"],
               "edits %s, the child made %s" % (v["edits"], f["edits"]))
        p.want(f["connect"].get("family") == e["family"] and
               (e["addr"] is None or f["connect"].get("addr") == e["addr"]),
               "the child saw connect %s" % f["connect"])
        p.want(f["rcpt_seen"] == e["rcpts"], "the child saw rcpts %s" % f["rcpt_seen"])
        bits = [v["action"]]
        if f["refused"]:
            bits.append("refused %s" % " ".join(x[0] for x in f["refused"]))
        if f["quarantine"]:
            bits.append("quarantine %r" % f["quarantine"])
        if f["edits"]:
            bits.append("%d edits" % len(f["edits"]))
        summary = ", ".join(bits)
    p.report("events %s: verdict of %s is what it did (%s)" % (qid, ch, summary))


def main():
    """main - check every mode"""
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 64
    d, modes = sys.argv[1], sys.argv[2:]
    recs, bad = [], []
    for n, line in enumerate(read(os.path.join(d, "events.log")).splitlines(), 1):
        try:
            recs.append(json.loads(line))
        except ValueError:
            bad.append("line %d: %s" % (n, line[:200]))
    ok(not bad, "event log: every line is JSON", bad[:3])
    ok(recs and all(r.get("v") == 1 for r in recs), "event log: %d records, every one v=1" % len(recs))
    truth = {ch: child_truth(d, ch) for ch in CHILDREN}
    want = sum(len(x) for x in CASES.values()) * len(modes)
    n_msgs = sum(r["type"] == "message" for r in recs)
    ok(n_msgs == want, "event log: %d message records for %d messages" % (n_msgs, want), n_msgs)
    for mode in modes:
        check_mode(d, mode, recs, truth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
