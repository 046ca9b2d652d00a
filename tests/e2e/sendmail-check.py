#!/usr/bin/python3
"""sendmail-check.py - SMTP client and checks for tests/e2e/sendmail.

usage: sendmail-check.py send PHASE PORT IPV6 OUTFILE
       sendmail-check.py count OUTFILE
       sendmail-check.py check DIR PHASE...

send: plays the sessions of the message plan for PHASE (IPv4 to 127.0.0.1:PORT and,
with IPV6=1, IPv6 to [::1]:PORT) and appends one JSON line per session to OUTFILE:
the client's local port, every SMTP reply, and per message its queue id.
count: prints how many messages OUTFILE records.

check: reads what send recorded, the sink dumps (DIR/sink), the event log
(DIR/events.log), the children's logs (DIR/CHILD.log), Sendmail's syslog
(DIR/log/syslog.log) and shadowd's stderr (DIR/shadowd.err), and prints one
"ok - ..." or "not ok - ... detail" line per check (lines starting with "#" are
notes). Exits 0; the caller counts the lines.

Python standard library only (/usr/bin/python3).
"""

import difflib
import ipaddress
import json
import os
import re
import smtplib
import sys

CHILDREN = ("rj", "hdr", "subj")  # chain order, as in shadowd.conf
BOB = "<bob@example.net>"
CAROL = "<carol@example.net>"
MALLORY = "<mallory@example.net>"  # rj rejects this recipient
SPAM_WORD = "BUY NOW"  # subj rejects at eom when the Subject holds it
ADDED = ("X-Shadow-Child", "added by hdr")  # hdr adds this header at eom

# name: (recipients, subject, expected verdicts and outcome)
#   rj: recipients it refuses; outcome, decided_by, stage: the message record
KINDS = {
    "plain": ([BOB], "weekly notes", {"rj": [], "outcome": "delivered",
                                      "decided_by": None, "stage": None}),
    "badrcpt": ([BOB, MALLORY], "minutes", {"rj": [MALLORY], "outcome": "delivered",
                                            "decided_by": None, "stage": None}),
    "onlybad": ([MALLORY], "for mallory", {"rj": [MALLORY], "outcome": "rejected",
                                           "decided_by": "rj", "stage": "rcpt"}),
    "spam": ([BOB, CAROL], SPAM_WORD + " cheap watches", {"rj": [], "outcome": "rejected",
                                                        "decided_by": "subj", "stage": "eom"}),
    "both": ([BOB, MALLORY], SPAM_WORD + " and more", {"rj": [MALLORY], "outcome": "rejected",
                                                      "decided_by": "subj", "stage": "eom"}),
}

# sessions per phase: (family, [kinds]); two messages share one SMTP session
SESSIONS = [
    ("4", ["plain", "badrcpt"]),
    ("4", ["onlybad"]),
    ("4", ["spam"]),
    ("6", ["plain", "both"]),
    ("6", ["onlybad", "spam"]),
]


def message_text(key, rcpts, subject):
    """message_text - the RFC 5322 text of one test message (CRLF line ends)"""
    lines = [
        "From: Alice <alice@example.com>",
        "To: " + ", ".join(r.strip("<>") for r in rcpts),
        "Subject: " + subject,
        "Date: Thu, 03 Dec 2026 21:00:00 +0000",
        "Message-ID: <%s@e2e.example.com>" % key,
        "X-E2E-Key: " + key,
        "",
        "Hello,",
        "this is message %s." % key,
        "A line with trailing blanks   ",
        "..a line that starts with a dot",
        "",
        "-- ",
        "Alice",
    ]
    return "\r\n".join(lines) + "\r\n"


def plan(phase, ipv6):
    """plan - the sessions of PHASE: (family, [(key, kind, rcpts, subject, text)])"""
    out = []
    for si, (family, kinds) in enumerate(SESSIONS):
        if family == "6" and not ipv6:
            continue
        msgs = []
        for mi, kind in enumerate(kinds):
            rcpts, subject, _ = KINDS[kind]
            key = "%s.s%d.m%d.%s" % (phase, si + 1, mi + 1, kind)
            msgs.append((key, kind, rcpts, subject, message_text(key, rcpts, subject)))
        out.append((family, msgs))
    return out


# ---------------------------------------------------------------- send


def send(phase, port, ipv6, outfile):
    """send - play PHASE's sessions; record every reply"""
    for family, msgs in plan(phase, ipv6):
        host = "::1" if family == "6" else "127.0.0.1"
        rec = {"phase": phase, "family": family, "host": host, "replies": [], "msgs": []}
        try:
            s = smtplib.SMTP(timeout=60, local_hostname="client.tb.test")
            code, text = s.connect(host, port)
            rec["local_port"] = s.sock.getsockname()[1]
            rec["replies"].append(["connect", code, text.decode(errors="replace")])
            code, text = s.ehlo("client.tb.test")
            rec["replies"].append(["ehlo", code, text.decode(errors="replace").split("\n")[0]])
            for key, kind, rcpts, _subject, text_ in msgs:
                m = {"key": key, "kind": kind, "rcpts": rcpts, "queue_id": None}
                code, text = s.mail("<alice@example.com>")
                rec["replies"].append(["mail " + key, code, text.decode(errors="replace")])
                for r in rcpts:
                    code, text = s.rcpt(r)
                    rec["replies"].append(["rcpt " + r + " " + key, code,
                                           text.decode(errors="replace")])
                code, text = s.data(text_.encode())
                text = text.decode(errors="replace")
                rec["replies"].append(["data " + key, code, text])
                q = re.match(r"2\.0\.0 (\S+) Message accepted", text)
                m["queue_id"] = q.group(1) if q else None
                rec["msgs"].append(m)
            code, text = s.quit()
            rec["replies"].append(["quit", code, text.decode(errors="replace")])
        except (OSError, smtplib.SMTPException) as e:
            rec["error"] = "%s: %s" % (type(e).__name__, e)
        with open(outfile, "a") as f:
            f.write(json.dumps(rec) + "\n")


# ---------------------------------------------------------------- check

RESULTS = []


def ok(cond, what, detail=""):
    """ok - print one check line"""
    if cond:
        print("ok - " + what)
    else:
        lines = str(detail).splitlines() or [""]
        print("not ok - %s: %s" % (what, lines[0]))
        for line in lines[1:60]:
            print("#   " + line)
    RESULTS.append(bool(cond))
    return cond


def note(text):
    """note - a comment line"""
    for line in str(text).splitlines():
        print("# " + line)


def read(path):
    """read - a file's text, or '' if it does not exist"""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def load_sessions(d, phases):
    """load_sessions - what send recorded for the phases"""
    out = []
    for line in read(os.path.join(d, "sent.jsonl")).splitlines():
        rec = json.loads(line)
        if rec["phase"] in phases:
            out.append(rec)
    return out


def sink_messages(d):
    """sink_messages - X-E2E-Key -> list of (file name, raw bytes) of the sink dumps"""
    out = {}
    sink = os.path.join(d, "sink")
    for name in sorted(os.listdir(sink)):
        with open(os.path.join(sink, name), "rb") as f:
            raw = f.read()
        m = re.search(rb"^X-E2E-Key: (\S+)", raw, re.M)
        out.setdefault(m.group(1).decode() if m else None, []).append((name, raw))
    return out


def split_dump(raw):
    """split_dump - smtp-sink's X-* lines, the Received headers, and the rest as sent on"""
    text = raw.replace(b"\r\n", b"\n")
    lines = text.split(b"\n")
    sink_hdrs = []
    i = 0
    while i < len(lines) and re.match(rb"X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args):",
                                      lines[i]):
        sink_hdrs.append(lines[i].decode(errors="replace"))
        i += 1
    received = 0
    while i < len(lines) and lines[i].startswith(b"Received:"):
        received += 1
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    return sink_hdrs, received, b"\n".join(lines[i:])


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


def check_smtp(sessions):
    """check_smtp - every SMTP reply was a success: Sendmail refused nothing"""
    for s in sessions:
        p = Probs()
        p.want("error" not in s, s.get("error"))
        bad = [r for r in s["replies"] if not 200 <= r[1] < 400 and r[0] != "quit"]
        bad += [r for r in s["replies"] if r[0] == "quit" and r[1] != 221]
        p.want(not bad, "refused: %s" % bad)
        for m in s["msgs"]:
            p.want(m["queue_id"], "%s: no queue id in the reply to DATA" % m["key"])
        p.report("smtp %s session to %s (port %s): %d messages, all %d replies 2xx/3xx, queue ids %s"
                 % (s["phase"], s["host"], s.get("local_port"), len(s["msgs"]), len(s["replies"]),
                    " ".join(str(m["queue_id"]) for m in s["msgs"])))


def check_sink(d, sessions):
    """check_sink - each message reached the sink once, exactly as the client sent it"""
    sink = sink_messages(d)
    keys = {m["key"] for s in sessions for m in s["msgs"]}
    for s in sessions:
        for m in s["msgs"]:
            key = m["key"]
            rcpts, subject, _ = KINDS[m["kind"]]
            got = sink.get(key, [])
            p = Probs()
            if p.want(len(got) == 1, "%d dumps in the sink" % len(got)):
                sink_hdrs, received, rest = split_dump(got[0][1])
                want = message_text(key, rcpts, subject).replace("\r\n", "\n").encode()
                # Sendmail adds its Received header, the sink its own; nothing else may change
                p.want(received == 2, "%d Received headers, want Sendmail's and the sink's" % received)
                p.want(("\n" + ADDED[0] + ":").encode() not in b"\n" + rest,
                       "the child's %s header reached the sink" % ADDED[0])
                p.want(rest.rstrip(b"\n") == want.rstrip(b"\n"),
                       "headers or body differ from what was sent:\n" + "\n".join(difflib.unified_diff(
                           want.decode(errors="replace").rstrip("\n").splitlines(),
                           rest.decode(errors="replace").rstrip("\n").splitlines(), "sent", "sink",
                           lineterm="")))
                got_rcpts = sorted(h.split(":", 1)[1].split()[0] for h in sink_hdrs
                                   if h.startswith("X-Rcpt-Args:"))
                p.want(got_rcpts == sorted(rcpts), "recipients %s, sent %s" % (got_rcpts, rcpts))
            p.report("sink %s: delivered once, unchanged (no %s), to %s"
                     % (key, ADDED[0], " ".join(rcpts)))
    stray = sorted(str(k) for k in sink if k not in keys)
    ok(not stray, "sink: no message that was not sent", stray)


def parse_events(d):
    """parse_events - the event log's records; (records, unparsable lines)"""
    recs, bad = [], []
    for n, line in enumerate(read(os.path.join(d, "events.log")).splitlines(), 1):
        try:
            recs.append(json.loads(line))
        except ValueError:
            bad.append((n, line))
    return recs, bad


def child_connects(d, child):
    """child_connects - client port -> (family, addr, {client_addr} macro) as CHILD logged them"""
    conns, out = {}, {}
    for line in read(os.path.join(d, child + ".log")).splitlines():
        m = re.match(r'\S+ conn=(\d+) msg=0 connect host="[^"]*" family=(\S+) addr="([^"]*)" port=(\d+)',
                     line)
        if m:
            conns[m.group(1)] = [m.group(2), m.group(3), int(m.group(4)), None]
            continue
        m = re.match(r'\S+ conn=(\d+) msg=0 macro stage=connect name="\{client_addr\}" value="([^"]*)"',
                     line)
        if m and m.group(1) in conns:
            conns[m.group(1)][3] = m.group(2)
    for fam, addr, port, macro in conns.values():
        out[port] = (fam, addr, macro)
    return out


def same_ip(a, b):
    """same_ip - a and b are the same IP address (False if either is not one)"""
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def check_events(d, sessions):
    """check_events - connection, verdict and message records for every session and message"""
    recs, bad = parse_events(d)
    ok(not bad, "event log: every line is JSON", bad[:3])
    ok(all(r.get("v") == 1 for r in recs), "event log: every record has v=1")
    opens = {r["client_port"]: r for r in recs if r["type"] == "connection" and r["event"] == "open"}
    closes = {r["conn"]: r for r in recs if r["type"] == "connection" and r["event"] == "close"}
    msgs = {}
    for r in recs:
        if r["type"] == "message":
            msgs.setdefault(r["message_id"], []).append(r)
    verdicts = {}
    for r in recs:
        if r["type"] == "verdict":
            verdicts.setdefault((r["message_id"], r["milter"]), []).append(r)
    seen = {c: child_connects(d, c) for c in CHILDREN}
    for s in sessions:
        port = str(s.get("local_port"))
        o = opens.get(port)
        tag = "%s session from %s port %s" % (s["phase"], s["host"], port)
        if not ok(o is not None, "events %s: connection open record" % tag,
                  "no open record with client_port %s" % port):
            continue
        addr = o["client_addr"] or ""
        p = Probs()
        if s["family"] == "6":
            p.want(addr.startswith("IPv6:") and same_ip(addr[5:], "::1"),
                   "client_addr %r is not IPv6:<::1>" % addr)
        else:
            p.want(addr == "127.0.0.1", "client_addr %r" % addr)
        cl = closes.get(o["conn"])
        if p.want(cl is not None, "no close record"):
            states = {m["milter"]: (m["state"], m["reason"]) for m in cl["milters"]}
            p.want(all(states.get(c, ("absent",))[0] == "ok" for c in CHILDREN),
                   "child states %s" % states)
            p.want(cl["errors"] == 0, "errors %s" % cl["errors"])
            p.want(cl["messages"] == len(s["msgs"]), "messages %s" % cl["messages"])
            p.want(cl["helo"] == "client.tb.test", "helo %r" % cl["helo"])
        p.report("events %s: conn %s, client_addr %r as Sendmail sends it; closed with "
                 "every child ok" % (tag, o["conn"], addr))
        p = Probs()
        want_fam = "inet6" if s["family"] == "6" else "inet"
        want_addr = "::1" if s["family"] == "6" else "127.0.0.1"
        for c in CHILDREN:
            got = seen[c].get(int(port))
            if p.want(got is not None, "%s logged no connect from port %s" % (c, port)):
                p.want(got[0] == want_fam and same_ip(got[1], want_addr),
                       "%s saw family %s addr %s" % (c, got[0], got[1]))
                p.want(got[2] == addr, "%s saw {client_addr} %r" % (c, got[2]))
        p.report("children, %s: connect family %s addr %s (libmilter parsed what shadowd passed "
                 "on), {client_addr} macro == client_addr" % (tag, want_fam, want_addr))
        for m in s["msgs"]:
            check_message(m, o, msgs, verdicts)


def check_message(m, o, msgs, verdicts):
    """check_message - one message's record and the three children's verdicts"""
    key = m["key"]
    rcpts, _subject, exp = KINDS[m["kind"]]
    mid = "<%s@e2e.example.com>" % key
    got = msgs.get(mid, [])
    want_actions = {"rj": "continue", "hdr": "continue",
                    "subj": "reject" if exp["decided_by"] == "subj" else "continue"}
    p = Probs()
    if p.want(len(got) == 1, "%d message records" % len(got)):
        r = got[0]
        p.want(r["conn"] == o["conn"], "conn %s" % r["conn"])
        p.want(r["client_addr"] == o["client_addr"], "client_addr %r" % r["client_addr"])
        p.want(r["queue_id"] == m["queue_id"], "queue_id %s" % r["queue_id"])
        p.want(r["mta"] == "ended", "mta %s" % r["mta"])
        p.want(r["from"] == "<alice@example.com>" and r["rcpts"] == rcpts,
               "envelope %s %s" % (r["from"], r["rcpts"]))
        p.want((r["outcome"], r["decided_by"], r["stage"])
               == (exp["outcome"], exp["decided_by"], exp["stage"]),
               "predicted %s by %s at %s" % (r["outcome"], r["decided_by"], r["stage"]))
        p.want(sorted((x["rcpt"], x["milter"], x["action"]) for x in r["refused"])
               == sorted((x, "rj", "reject") for x in exp["rj"]), "refused %s" % r["refused"])
        p.want(r["unknown"] == [], "unknown %s" % r["unknown"])
        if exp["outcome"] == "delivered":
            p.want(r["edits"] == [{"milter": "hdr", "op": "add_header", "name": ADDED[0],
                                   "value": ADDED[1]}], "edits %s" % r["edits"])
        p.want(r["milters"] == want_actions, "milters %s" % r["milters"])
    p.report("events %s: message record: %s%s%s, refused %s, every child with a verdict"
             % (key, exp["outcome"], " by %s" % exp["decided_by"] if exp["decided_by"] else "",
                " at %s" % exp["stage"] if exp["stage"] else "", exp["rj"] or "none"))
    rec = got[0] if len(got) == 1 else {}
    for c in CHILDREN:
        vs = verdicts.get((mid, c), [])
        p = Probs()
        want = want_actions[c]
        if p.want(len(vs) == 1, "%d verdict records" % len(vs)):
            v = vs[0]
            p.want(v["msg"] == rec.get("msg") and v["queue_id"] == m["queue_id"],
                   "belongs to %s/%s" % (v["msg"], v["queue_id"]))
            p.want(v["action"] == want, "action %s at %s (reason %s)"
                   % (v["action"], v["stage"], v["reason"]))
            if c == "subj" and want == "reject":
                want += " at eom, default reply"
                p.want(v["stage"] == "eom" and v["reply"] is None,
                       "stage %s reply %s" % (v["stage"], v["reply"]))
            if c == "rj":
                want += ", refused %s at RCPT" % (exp["rj"] or "nobody")
                p.want([(x["rcpt"], x["action"]) for x in v["rcpts"]] == [(x, "reject") for x in exp["rj"]],
                       "rcpts %s" % v["rcpts"])
            if c == "hdr":
                want += ", add_header %s" % ADDED[0]
                p.want(v["edits"] == [{"op": "add_header", "name": ADDED[0], "value": ADDED[1]}],
                       "edits %s" % v["edits"])
        p.report("events %s: verdict of %s: %s" % (key, c, want))


MILTER_BAD = re.compile(r"lied about|bogus|negotiate:|to error state|timeout|initialization failed"
                        r"|Milter.*(error|fail|reject|tempfail|discard|quarantin)"
                        r"|milter=.*(reject|tempfail|discard|quarantin)|reject=|SYSERR"
                        r"|Unbalanced|stat=quarantined|stat=discarded", re.I)


def check_sendmail_log(d, sessions):
    """check_sendmail_log - Sendmail found nothing wrong with shadowd, and sent every message"""
    sm = [l for l in read(os.path.join(d, "log", "syslog.log")).splitlines() if " sendmail[" in l]
    bad = [l for l in sm if MILTER_BAD.search(l)]
    ok(not bad, "sendmail log: no lied about/bogus/negotiate error/timeout/error state/refusal",
       "\n" + "\n".join(bad[:20]))
    n_sess = len(sessions)
    inits = sum("Milter (shadowd): init success to negotiate" in l for l in sm)
    ok(inits == n_sess, "sendmail log: 'Milter (shadowd): init success to negotiate' for each of the "
       "%d SMTP sessions" % n_sess, inits)
    for s in sessions:
        for m in s["msgs"]:
            q = m["queue_id"]
            sent = [l for l in sm if q and (q + ": to=") in l and "stat=Sent" in l]
            ok(sent, "sendmail log: %s (%s) stat=Sent" % (q, m["key"]))
    # what Sendmail said about its milter, with queue ids and pids folded
    shapes = {}
    for l in sm:
        if "ilter" not in l:
            continue
        t = re.sub(r"^.*? sendmail\[\d+\]: ", "", l)
        t = re.sub(r"^[0-9A-Za-z]{14}: ", "QID: ", t)
        shapes[t] = shapes.get(t, 0) + 1
    note("Sendmail's milter log lines (count, text):")
    for t, n in sorted(shapes.items(), key=lambda x: -x[1]):
        note("  %4d  %s" % (n, t))


def check_shadowd(d):
    """check_shadowd - nothing went wrong in shadowd itself"""
    err = read(os.path.join(d, "shadowd.err"))
    bad = [l for l in err.splitlines() if re.search(r"warning:|error:|critical|Sanitizer|runtime error"
                                                    r"|GLib-|assertion", l)]
    ok(not bad, "shadowd stderr: no warning, error or sanitizer report", "\n" + "\n".join(bad[:20]))
    for c in CHILDREN:
        e = read(os.path.join(d, c + ".log.err")).strip()
        ok(not e, "child %s stderr empty" % c, e[:500])


def main():
    """main - send or check"""
    if len(sys.argv) >= 6 and sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5])
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "count":
        print(sum(len(json.loads(l)["msgs"]) for l in read(sys.argv[2]).splitlines()))
        return 0
    if len(sys.argv) >= 4 and sys.argv[1] == "check":
        d, phases = sys.argv[2], sys.argv[3:]
        sessions = load_sessions(d, phases)
        ok(sessions, "sessions were recorded")
        check_smtp(sessions)
        check_sink(d, sessions)
        check_events(d, sessions)
        check_sendmail_log(d, sessions)
        check_shadowd(d)
        return 0
    sys.stderr.write(__doc__)
    return 64


if __name__ == "__main__":
    sys.exit(main())
