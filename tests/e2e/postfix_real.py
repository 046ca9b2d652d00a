#!/usr/bin/env python3
"""postfix_real - the checks of tests/e2e/postfix-real (issue 4, points 1-3).

tests/e2e/postfix-real starts the milters, four shadowd processes and nine
private Postfix instances inside tests/testbed/netns-run, writes their
description to STATE/e2e.json, and runs this program with that path. Here the
corpus of tests/fixtures/corpus is completed (Date set to now, DKIM signing
through the signer instance, a tampered copy, a 2 MB attachment; see its
README.md) and played through the passes, chain by chain:

  baseline   no milter: the reference copy of every message
  shadow-X   Postfix -> shadowd -> chain X: (b) passivity, (c) the verdicts in
             the event log, and the records' integrity
  enforce-X  chain X straight in smtpd_milters, same order: (d) every
             prediction of shadow-X against what enforcement did
  shadow-Bi  chain B with content = independent: a control that must mispredict

Chain A sends one message per SMTP connection, chains B and C the whole corpus
in one SMTP session; chain C's shadowd runs with reply = wait.

What is ignored, and nothing else:
  passivity  the queue id and date in Postfix's own Received header and the
             session id and date in smtp-sink's Received header (everything
             else of the sink file, its envelope lines included, must be
             byte-identical to the baseline's)
  fidelity   smtp-sink's Received header; Postfix's own Received header (its
             position is compared, its value is not); in the other header
             values, the message's queue id (rspamd's X-Rspamd-Queue-Id) and
             the MIME boundary SpamAssassin draws for a report_safe message;
             the blank between "Name:" and the value. Header order, names,
             values with their folding, the envelope and the body (or, for a
             replaced body, its size) are compared exactly.

Prints one "ok - ..." or "not ok - ..." line per check, "N of N predictions
matched" per chain, and a summary; exits 1 if any check failed. Python 3
standard library only.
"""

import base64
import codecs
import email.utils
import hashlib
import json
import os
import re
import smtplib
import subprocess
import sys
import time

CFG = json.load(open(sys.argv[1]))
STATE = CFG["state"]
TOP = CFG["top"]
CORPUS_DIR = os.path.join(TOP, "tests", "fixtures", "corpus")
CHAINS = {name: names.split() for name, names in CFG["chains"].items()}
INSTANCES = CFG["instances"]

# Bounds for every wait.
DELIVERY_SECONDS = 90
RECORD_SECONDS = 120
SMTP_TIMEOUT = 180
POLL = 0.1

# Postfix's replies when a milter refuses without a reply of its own.
POSTFIX_DEFAULT_REPLY = {
    "rejected": "550 5.7.1 Command rejected",
    "tempfailed": "451 4.7.1 Service unavailable - try again later",
}

# The lines smtp-sink writes before the message it received (smtp-sink -d).
SINK_PREAMBLE = (b"X-Client-Addr:", b"X-Client-Proto:", b"X-Helo-Args:", b"X-Mail-Args:",
                 b"X-Rcpt-Args:")

# What the passivity check ignores, and nothing else: the queue ID and the date
# in Postfix's own Received header, the session id and date in smtp-sink's.
POSTFIX_RECEIVED = re.compile(
    rb"^(Received: from client\.tb\.test \(unknown \[127\.0\.0\.1\]\)\n"
    rb"\tby mx\.tb\.test \(Postfix\) with ESMTP id )([0-9A-F]+)(;\n\t|\n\tfor <[^>]+>; )([^\n]+)$",
    re.M)
SINK_RECEIVED = re.compile(
    rb"^(Received: from mx\.tb\.test \(\[127\.0\.0\.1\]\)\n"
    rb"\tby sink\.tb\.test \(smtp-sink\) with E?SMTP id )([0-9a-f]+)(;\n\t)([^\n]+)$", re.M)


# The boundary of SpamAssassin's report_safe message: hex time and random (Mail::SpamAssassin::PerMsgStatus).
SA_BOUNDARY = re.compile(r"----------=_[0-9A-F]{8}\.[0-9A-F]{8}")


def latin1_fallback(err):
    """latin1_fallback - decode an invalid UTF-8 byte as its Latin-1 code point (as shadowd's log does)"""
    return (err.object[err.start:err.end].decode("latin-1"), err.end)


codecs.register_error("latin1fallback", latin1_fallback)


def text(b):
    """text - bytes as the event log writes them: UTF-8, other bytes as U+00XX"""
    return b.decode("utf-8", "latin1fallback")


def squash(s):
    """squash - a header value unfolded, runs of white space made one space, trimmed"""
    return " ".join(s.split())


# ---- reporting ---------------------------------------------------------------

class Report:
    """Report - the ok / not ok lines and the tally"""

    def __init__(self):
        self.n = 0
        self.failed = []

    def check(self, cond, what, detail=None):
        """check - print one ok / not ok line (detail, indented, after a failure)"""
        self.n += 1
        if cond:
            print("ok - %s" % what)
        else:
            self.failed.append(what)
            print("not ok - %s" % what)
            if detail:
                for line in str(detail).rstrip("\n").split("\n"):
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def note(self, line):
        """note - a comment line"""
        print("# " + line)
        sys.stdout.flush()


R = Report()


def wait_for(pred, seconds):
    """wait_for - poll pred until it returns a true value; None after seconds"""
    deadline = time.monotonic() + seconds
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL)


def run(*cmd):
    """run - a command's stdout (stderr folded in); never raises on exit status"""
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return r.stdout.decode("utf-8", "replace")


# ---- messages ----------------------------------------------------------------

class Msg:
    """Msg - one corpus message: its bytes and envelope"""

    def __init__(self, name, data, origin):
        self.name = name
        self.data = data
        self.origin = origin
        heads = split_message(data)[0]
        self.mid = header_value(heads, "Message-ID").strip()
        self.env_from = addresses(header_value(heads, "From"))[0]
        self.rcpts = addresses(header_value(heads, "To")) + addresses(header_value(heads, "Cc"))


def split_message(data):
    """split_message - (list of (name, raw header bytes incl. continuation lines), body bytes)"""
    head, sep, body = data.partition(b"\n\n")
    if not sep:
        head, body = data, b""
    heads = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and heads:
            heads[-1] = (heads[-1][0], heads[-1][1] + b"\n" + line)
        else:
            heads.append((line.split(b":", 1)[0].decode("ascii", "replace"), line))
    return heads, body


def header_value(heads, name):
    """header_value - value text of the first header called name, or "" """
    for n, raw in heads:
        if n.lower() == name.lower():
            return text(raw.split(b":", 1)[1])
    return ""


def addresses(value):
    """addresses - the addr-specs of an address header"""
    return [a for _, a in email.utils.getaddresses([value]) if a]


def stamp_date(data):
    """stamp_date - the message with its Date: set to now (date rules then score alike on every run)"""
    now = email.utils.formatdate(time.time(), localtime=False).replace("-0000", "+0000")
    return re.sub(rb"^Date: [^\n]*$", b"Date: " + now.encode(), data, count=1, flags=re.M)


def large_message():
    """large_message - a message with a 1.5 MB binary attachment (about 2 MB base64), made at run time"""
    block, blob = b"milter-shadow e2e", bytearray()
    while len(blob) < 1536 * 1024:
        block = hashlib.sha256(block).digest()
        blob += block
    att = base64.encodebytes(bytes(blob)).decode()
    return ("From: Bob Example <bob@example.net>\n"
            "To: Carol Example <carol@example.org>\n"
            "Subject: The big archive\n"
            "Date: Thu, 03 Dec 2026 12:08:00 +0000\n"
            "Message-ID: <corpus-large-attachment@example.net>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=\"=-corpus-large-boundary\"\n"
            "\n"
            "--=-corpus-large-boundary\n"
            "Content-Type: text/plain; charset=us-ascii\n"
            "\n"
            "The archive is attached.\n"
            "\n"
            "--=-corpus-large-boundary\n"
            "Content-Type: application/octet-stream; name=\"archive.bin\"\n"
            "Content-Disposition: attachment; filename=\"archive.bin\"\n"
            "Content-Transfer-Encoding: base64\n"
            "\n" + att + "\n--=-corpus-large-boundary--\n").encode()


# ---- SMTP --------------------------------------------------------------------

class Tx:
    """Tx - what the SMTP client saw for one message"""

    def __init__(self):
        self.stage = None      # where the transaction ended: connect, mail, rcpt, data, content
        self.code = None       # the final reply code of that stage
        self.reply = None      # ["550 5.7.1 text", ...] (one entry per reply line)
        self.refused = []      # (rcpt, code, reply lines) for refused recipients
        self.queue_id = None
        self.error = None

    def outcome(self):
        """outcome - accepted, rejected or tempfailed"""
        if self.code is None:
            return "error"
        if 200 <= self.code < 300:
            return "accepted"
        return "tempfailed" if 400 <= self.code < 500 else "rejected"


def reply_lines(code, msg):
    """reply_lines - an smtplib reply as "CODE text" lines"""
    return ["%d %s" % (code, l) for l in msg.decode("utf-8", "replace").split("\n")]


def smtp_connect(instance):
    """smtp_connect - an SMTP connection to an instance's smtpd after EHLO, or (None, Tx of the failure)"""
    s = smtplib.SMTP(timeout=SMTP_TIMEOUT)
    tx = Tx()
    try:
        s.connect("127.0.0.1", INSTANCES[instance]["port"])
        s.ehlo("client.tb.test")
        return s, None
    except smtplib.SMTPConnectError as e:
        tx.stage, tx.code, tx.reply = "connect", e.smtp_code, reply_lines(e.smtp_code, e.smtp_error)
    except (OSError, smtplib.SMTPException) as e:
        tx.error = "%s: %s" % (type(e).__name__, e)
    s.close()
    return None, tx


def transact(s, msg):
    """transact - one mail transaction (MAIL, RCPT..., DATA) on an open connection; the Tx"""
    tx = Tx()
    try:
        code, m = s.mail(msg.env_from, ["BODY=8BITMIME"])
        if code >= 300:
            tx.stage, tx.code, tx.reply = "mail", code, reply_lines(code, m)
            return tx
        accepted = 0
        last = None
        for r in msg.rcpts:
            code, m = s.rcpt(r)
            if code >= 300:
                tx.refused.append(("<%s>" % r, code, reply_lines(code, m)))
                last = (code, m)
            else:
                accepted += 1
        if accepted == 0:
            codes = [c for _, c, _ in tx.refused]
            tx.stage, tx.code = "rcpt", (451 if all(400 <= c < 500 for c in codes) else 550)
            tx.reply = reply_lines(*last)
            return tx
        try:
            # CRLF line ends, as an SMTP client must send them (smtplib sends bytes as they are)
            code, m = s.data(re.sub(rb"\r?\n", b"\r\n", msg.data))
        except smtplib.SMTPDataError as e:
            tx.stage, tx.code, tx.reply = "data", e.smtp_code, reply_lines(e.smtp_code, e.smtp_error)
            return tx
        tx.stage, tx.code, tx.reply = "content", code, reply_lines(code, m)
        q = re.search(r"queued as ([0-9A-F]+)", " ".join(tx.reply))
        tx.queue_id = q.group(1) if q else None
        return tx
    except (OSError, smtplib.SMTPException) as e:
        tx.error = "%s: %s" % (type(e).__name__, e)
        return tx


def smtp_quit(s):
    """smtp_quit - end a connection politely, or just close it"""
    try:
        s.quit()
    except (OSError, smtplib.SMTPException):
        s.close()


def smtp_send(instance, msg):
    """smtp_send - play one message on a connection of its own; return the Tx"""
    s, failed = smtp_connect(instance)
    if s is None:
        return failed
    tx = transact(s, msg)
    smtp_quit(s)
    return tx


def smtp_session(instance, corpus):
    """smtp_session - play every message in one SMTP session (RSET after a refusal); name -> Tx"""
    s, failed = smtp_connect(instance)
    if s is None:
        return {m.name: failed for m in corpus}
    txs = {}
    for m in corpus:
        txs[m.name] = tx = transact(s, m)
        if tx.error:
            smtp_quit(s)
            s, failed = smtp_connect(instance)
            if s is None:
                return dict(txs, **{x.name: failed for x in corpus if x.name not in txs})
        elif tx.outcome() != "accepted":
            try:
                s.rset()
            except (OSError, smtplib.SMTPException) as e:
                tx.error = "RSET: %s" % e
    smtp_quit(s)
    return txs


# ---- the sink and the queue --------------------------------------------------

class Delivered:
    """Delivered - one message as smtp-sink stored it"""

    def __init__(self, path):
        self.path = path
        self.raw = open(path, "rb").read()
        lines = self.raw.split(b"\n")
        i = 0
        self.preamble = []
        while i < len(lines) and lines[i].startswith(SINK_PREAMBLE):
            self.preamble.append(lines[i])
            i += 1
        self.env_from = None
        self.env_rcpts = []
        for p in self.preamble:
            if p.startswith(b"X-Mail-Args:"):
                self.env_from = p.split()[1].decode()
            elif p.startswith(b"X-Rcpt-Args:"):
                self.env_rcpts.append(p.split()[1].decode())
        heads, self.body = split_message(b"\n".join(lines[i:]))
        # heads[0] is smtp-sink's Received; what follows is the message as Postfix relayed it
        self.sink_received = heads[0][1] if heads else b""
        self.heads = heads[1:]
        self.mid = header_value(self.heads, "Message-ID").strip()

    def headers(self):
        """headers - [(name, value text)] as relayed"""
        return [(n, text(raw.split(b":", 1)[1])) for n, raw in self.heads]


def sink_messages(instance):
    """sink_messages - Message-ID -> [Delivered] for an instance's sink directory"""
    out = {}
    d = os.path.join(INSTANCES[instance]["dir"], "sink")
    for f in sorted(os.listdir(d)):
        p = os.path.join(d, f)
        try:
            if os.path.getsize(p) == 0:
                continue
            m = Delivered(p)
        except (OSError, IndexError):
            continue
        out.setdefault(m.mid, []).append(m)
    return out


def maillog(instance):
    """maillog - the instance's Postfix log"""
    try:
        return open(os.path.join(INSTANCES[instance]["dir"], "log", "maillog"),
                    encoding="utf-8", errors="replace").read()
    except FileNotFoundError:
        return ""


def postqueue(instance):
    """postqueue - postqueue -p output of an instance"""
    return run("postqueue", "-c", os.path.join(INSTANCES[instance]["dir"], "etc"), "-p")


def queue_empty(instance):
    """queue_empty - true when the instance's queue holds nothing"""
    return "Mail queue is empty" in postqueue(instance)


class Held:
    """Held - the headers of a message in the hold queue (postcat -h)"""

    def __init__(self, data):
        lines = [l for l in data.split(b"\n") if not l.startswith(b"*** ")]
        self.heads = split_message(b"\n".join(lines).strip(b"\n") + b"\n\n")[0]

    def headers(self):
        """headers - [(name, value text)]"""
        return [(n, text(raw.split(b":", 1)[1])) for n, raw in self.heads if b":" in raw]


def held_message(instance, qid):
    """held_message - a held message's headers, or None"""
    r = subprocess.run(["postcat", "-c", os.path.join(INSTANCES[instance]["dir"], "etc"), "-h", "-q", qid],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
    return Held(r.stdout) if r.returncode == 0 and r.stdout else None


def held_ids(instance):
    """held_ids - queue ids on hold ("!" after the id in postqueue -p)"""
    return set(re.findall(r"^([0-9A-F]+)!", postqueue(instance), re.M))


# ---- passes ------------------------------------------------------------------

def play(instance, corpus, session=False):
    """play - send every message, each on its own connection or all in one session; name -> Tx"""
    if session:
        return smtp_session(instance, corpus)
    return {m.name: smtp_send(instance, m) for m in corpus}


def settle(instance, txs, corpus):
    """settle - wait until every accepted message is delivered, held or discarded; name -> (state, Delivered)"""
    want = {m.name: m for m in corpus if txs[m.name].outcome() == "accepted"}

    def done():
        log = maillog(instance)
        sink = sink_messages(instance)
        held = held_ids(instance)
        states = {}
        for name, m in want.items():
            qid = txs[name].queue_id
            if m.mid in sink and qid and re.search(r"%s: removed" % qid, log):
                # qmgr removes the queue file after smtp-sink's 250: the dump is complete
                states[name] = ("delivered", sink[m.mid][-1])
            elif qid and qid in held:
                states[name] = ("quarantined", held_message(instance, qid))
            elif qid and re.search(r"%s: milter-discard" % qid, log):
                states[name] = ("discarded", None)
        return states if len(states) == len(want) else None

    states = wait_for(done, DELIVERY_SECONDS)
    if states is None:
        log = maillog(instance)
        missing = [n for n in want if n not in (done_states(instance, txs, want) or {})]
        R.check(False, "%s: every accepted message reached the sink, the hold queue or a discard"
                % instance, "still waiting for: %s\npostqueue -p:\n%s\nmaillog tail:\n%s"
                % (", ".join(missing), postqueue(instance), "\n".join(log.splitlines()[-25:])))
        states = done_states(instance, txs, want) or {}
    return states


def done_states(instance, txs, want):
    """done_states - what has become of the accepted messages so far (for a failure report)"""
    sink = sink_messages(instance)
    return {n: ("delivered", sink[m.mid][-1]) for n, m in want.items() if m.mid in sink}


def events(path):
    """events - the event log's records (a torn last line is skipped)"""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except FileNotFoundError:
        pass
    return out


def shadow_records(sd, corpus):
    """shadow_records - Message-ID -> (message record, {milter: verdict}) of shadowd sd, once all are logged"""
    path = os.path.join(STATE, "shadowd-%s" % sd, "events.log")
    mids = {m.mid for m in corpus}

    def ready():
        recs = events(path)
        got = {r["message_id"] for r in recs if r["type"] == "message"}
        return recs if mids <= got else None

    recs = wait_for(ready, RECORD_SECONDS)
    if recs is None:
        recs = events(path)
        got = {r["message_id"] for r in recs if r["type"] == "message"}
        R.check(False, "shadowd %s logged a message record for every message" % sd,
                "missing: %s" % ", ".join(sorted(mids - got)))
    out = {}
    for r in recs:
        if r["type"] == "message":
            v = {x["milter"]: x for x in recs if x["type"] == "verdict" and x["msg"] == r["msg"]}
            out[r["message_id"]] = (r, v)
    return out


def check_records(sd, chain, corpus, stx, shadow):
    """check_records - shadowd sd logged each message under Postfix's queue id and envelope, with a
    verdict from every child, and closed every connection with every child in state ok"""
    probs = []
    for m in corpus:
        rec, verdicts = shadow.get(m.mid, (None, {}))
        if rec is None:
            continue
        want = {"queue_id": stx[m.name].queue_id, "from": "<%s>" % m.env_from,
                "rcpts": ["<%s>" % r for r in m.rcpts], "mta": "ended", "unknown": []}
        for k, v in want.items():
            if rec[k] != v:
                probs.append("%s: %s is %r, want %r" % (m.name, k, rec[k], v))
        for child in CHAINS[chain]:
            v = verdicts.get(child)
            if v is None or v["action"] in ("error", "timeout", "unavailable", "overflow"):
                probs.append("%s: %s gave no verdict: %s" % (m.name, child,
                                                              "no record" if v is None else "%s (%s)" % (v["action"], v["reason"])))
    path = os.path.join(STATE, "shadowd-%s" % sd, "events.log")

    def conns():
        recs = events(path)
        opened = {r["conn"] for r in recs if r["type"] == "connection" and r["event"] == "open"}
        closed = [r for r in recs if r["type"] == "connection" and r["event"] == "close"]
        return recs, opened, closed

    # the close record follows the connection's last message record: wait for it (bounded)
    wait_for(lambda: (lambda c: c[1] == {r["conn"] for r in c[2]})(conns()), 30)
    recs, opened, closed = conns()
    counts = {}
    for r in recs:
        if r["type"] == "message":
            counts[r["message_id"]] = counts.get(r["message_id"], 0) + 1
    dup = {k: n for k, n in counts.items() if n != 1}
    if dup or len(counts) != len(corpus):
        probs.append("message records per Message-ID: %s (want %d messages once each)" % (counts, len(corpus)))
    if {r["conn"] for r in closed} != opened:
        probs.append("connections opened %s, closed %s" % (sorted(opened), sorted(r["conn"] for r in closed)))
    for r in closed:
        bad = ["%s=%s (%s)" % (x["milter"], x["state"], x["reason"]) for x in r["milters"] if x["state"] != "ok"]
        if bad or r["errors"]:
            probs.append("connection %s closed with errors=%d %s" % (r["conn"], r["errors"], " ".join(bad)))
    R.check(not probs, "shadowd %s: one message record per message, with Postfix's queue id, the envelope, "
            "mta=ended and a verdict from each of the %d children; %d connection(s) closed cleanly"
            % (sd, len(CHAINS[chain]), len(closed)), "\n".join(probs))


def record_lines(chain, mid):
    """record_lines - the event log lines of one message, for a failure report"""
    path = os.path.join(STATE, "shadowd-%s" % chain, "events.log")
    recs = events(path)
    msgs = {r["msg"] for r in recs if r.get("message_id") == mid}
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in recs if r.get("msg") in msgs)


# ---- passivity ---------------------------------------------------------------

def per_run_blanked(raw):
    """per_run_blanked - a sink file with the queue id and date of Postfix's Received and the
    id and date of smtp-sink's Received replaced by placeholders; (bytes, how many replaced)"""
    out, n1 = POSTFIX_RECEIVED.subn(rb"\1QUEUEID\3DATE", raw, count=1)
    out, n2 = SINK_RECEIVED.subn(rb"\1SINKID\3DATE", out, count=1)
    return out, n1 + n2


def check_passivity(instance, corpus, txs, baseline):
    """check_passivity - shadowd in front changed nothing: all accepted, delivered as in baseline"""
    bad = ["%s: %s%s" % (n, t.error or "", " ".join(t.reply or [])) for n, t in txs.items()
           if t.outcome() != "accepted"]
    R.check(not bad, "%s: Postfix accepted all %d messages (250 after DATA)" % (instance, len(txs)),
            "\n".join(bad))
    states = settle(instance, txs, corpus)
    sink = sink_messages(instance)
    for m in corpus:
        got = sink.get(m.mid, [])
        ref = baseline.get(m.name)
        if len(got) != 1 or ref is None:
            R.check(False, "%s: %s delivered once" % (instance, m.name),
                    "sink copies: %d; baseline copy: %s" % (len(got), ref is not None))
            continue
        a, na = per_run_blanked(ref.raw)
        b, nb = per_run_blanked(got[0].raw)
        detail = None
        if a != b or na != 2 or nb != 2:
            detail = first_difference(a, b) + "\n(placeholders: baseline %d, this pass %d; want 2)" % (na, nb)
        R.check(detail is None, "%s: %s delivered byte-identical to the baseline apart from per-run "
                "trace fields (%d bytes)" % (instance, m.name, len(got[0].raw)), detail)
    log = maillog(instance)
    trouble = [l for l in log.splitlines()
               if re.search(r"milter-(reject|discard|hold)|status=(deferred|bounced)|warning: milter", l)]
    R.check(not trouble, "%s: maillog has no milter-reject/discard/hold, deferral, bounce or milter "
            "warning" % instance, "\n".join(trouble))
    R.check(wait_for(lambda: queue_empty(instance), 10), "%s: queue empty afterwards (postqueue -p)"
            % instance, postqueue(instance))
    return states


def first_difference(a, b):
    """first_difference - the first differing line of two byte strings, with context"""
    la, lb = a.split(b"\n"), b.split(b"\n")
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else b"<end>"
        y = lb[i] if i < len(lb) else b"<end>"
        if x != y:
            return "line %d differs:\n  baseline: %r\n  this pass: %r" % (i + 1, x, y)
    return "same lines, different bytes"


# ---- the header model: Postfix applying milter edits --------------------------

def is_own_received(name, value):
    """is_own_received - whether a header is the Received header this Postfix instance added"""
    return name.lower() == "received" and "by mx.tb.test (Postfix) with ESMTP id" in squash(value)


def predict_headers(baseline_heads, edits):
    """predict_headers - the header list Postfix writes when it applies edits to baseline_heads.

    baseline_heads[0] is Postfix's own Received header, which Postfix never
    shows to milters. As Postfix 3.7 applies edits (cleanup_milter.c, and
    what the enforced passes show):
      insert_header i   goes in at position i of the list *with* Postfix's
                        Received (0: above it, 1: just below it while it is on
                        top); past the end it is appended
      change_header i   the i-th (1-based; 0 counts as 1) header of that name,
                        *not* counting Postfix's own Received; value "" deletes;
                        if there is none, the header is appended (unless deleting)
      delete_header     change_header with ""
      add_header        appended after the last header
    """
    heads = [list(h) for h in baseline_heads]
    for e in edits:
        op = e["op"]
        if op == "add_header":
            heads.append([e["name"], e["value"]])
        elif op == "insert_header":
            pos = min(max(e["index"], 0), len(heads))
            heads.insert(pos, [e["name"], e["value"]])
        elif op in ("change_header", "delete_header"):
            value = "" if op == "delete_header" else e["value"]
            want = max(e["index"], 1)
            seen = 0
            for k in range(len(heads)):
                if heads[k][0].lower() != e["name"].lower() or is_own_received(*heads[k]):
                    continue
                seen += 1
                if seen == want:
                    if value == "":
                        del heads[k]
                    else:
                        heads[k][1] = value
                    break
            else:
                if value != "":
                    heads.append([e["name"], value])
    return heads


def comparable(heads, queue_id):
    """comparable - headers as (lower-case name, value), for comparing a prediction with a delivery.

    The value is compared exactly as stored, folding included, except: the
    white space between the colon and the value is dropped (Postfix writes
    "Name: value", or "Name:value" for a milter that negotiated
    SMFIP_HDR_LEADSPC and supplied its own space); the message's queue id
    becomes QUEUEID (rspamd's X-Rspamd-Queue-Id carries it); the MIME boundary
    SpamAssassin makes for each report (report_safe 1: time and random hex, in
    the new Content-Type) becomes SA-BOUNDARY; and Postfix's own Received
    header (queue id, date) becomes a placeholder.
    """
    out = []
    for name, value in heads:
        v = value.replace("\r\n", "\n").lstrip(" \t")
        if queue_id:
            v = v.replace(queue_id, "QUEUEID")
        v = SA_BOUNDARY.sub("SA-BOUNDARY", v)
        if is_own_received(name, value):
            v = "<Postfix's own Received>"
        out.append((name.lower(), v))
    return out


def show_headers(heads):
    """show_headers - a header list, one per line (values as JSON strings, so folding shows)"""
    return "\n".join("    %s: %s" % (n, json.dumps(v, ensure_ascii=False)) for n, v in heads)


# ---- fidelity ----------------------------------------------------------------

def shadow_smtp_stage(stage):
    """shadow_smtp_stage - where Postfix shows a milter's refusal at stage (testbed.md section 4)"""
    return {"connect": "connect", "helo": "mail", "mail": "mail", "rcpt": "rcpt", "data": "data",
            "header": "content", "eoh": "content", "body": "content", "eom": "content",
            "unknown": "unknown"}.get(stage, stage)


def norm_reply(lines):
    """norm_reply - reply lines as "CODE text" with continuation dashes made spaces"""
    out = []
    for l in lines:
        m = re.match(r"^(\d{3})[- ](.*)$", l.strip())
        out.append("%s %s" % (m.group(1), m.group(2).strip()) if m else l.strip())
    return out


def check_fidelity(chain, corpus, shadow, txs, states, baseline):
    """check_fidelity - every prediction of shadowd (chain) against what enforcement did"""
    matched = 0
    for m in corpus:
        rec, verdicts = shadow.get(m.mid, (None, {}))
        tx = txs[m.name]
        problems = []
        if rec is None:
            problems.append("no shadowd message record")
        else:
            problems += compare_one(rec, tx, states.get(m.name), baseline[m.name], m)
        what = "fidelity %s %s: predicted %s%s, enforced %s" % (
            chain, m.name, rec["outcome"] if rec else "?",
            " by %s at %s" % (rec["decided_by"], rec["stage"]) if rec and rec["decided_by"] else "",
            enforced_summary(tx, states.get(m.name)))
        if rec and rec["outcome"] in ("delivered", "quarantined"):
            ops = [e["op"] for e in rec["edits"]]
            what += "; the baseline with shadowd's %d edits%s is what %s" % (
                len(ops), " (body replaced)" if "replace_body" in ops else "",
                "the sink got (headers, envelope, body)" if rec["outcome"] == "delivered" else "Postfix holds")
        if not problems:
            matched += 1
            R.check(True, what)
        else:
            R.check(False, what, "\n".join(problems) + "\nevent log lines:\n" + record_lines(chain, m.mid))
    R.check(matched == len(corpus), "chain %s: %d of %d predictions matched" % (chain, matched, len(corpus)))
    print("%d of %d predictions matched" % (matched, len(corpus)))
    return matched


def enforced_summary(tx, state):
    """enforced_summary - one phrase for what enforcement did"""
    if tx.error:
        return "client error %s" % tx.error
    if tx.outcome() == "accepted":
        return state[0] if state else "accepted (fate unknown)"
    return "%s at %s (%s)" % (tx.outcome(), tx.stage, " / ".join(tx.reply))


def compare_one(rec, tx, state, base, msg):
    """compare_one - the differences between one prediction and one enforcement"""
    p = []
    if tx.error:
        return ["the SMTP client failed: %s" % tx.error]
    outcome = rec["outcome"]
    if outcome in ("rejected", "tempfailed"):
        if tx.outcome() != outcome:
            p.append("outcome: predicted %s, enforced %s (%s)" % (outcome, tx.outcome(), " / ".join(tx.reply or [])))
        if shadow_smtp_stage(rec["stage"]) != tx.stage:
            p.append("stage: predicted %s (SMTP %s), enforced at SMTP %s"
                     % (rec["stage"], shadow_smtp_stage(rec["stage"]), tx.stage))
        want = norm_reply((rec["reply"] or POSTFIX_DEFAULT_REPLY[outcome]).split("\r\n"))
        if want != norm_reply(tx.reply or []):
            p.append("reply: predicted %r, enforced %r" % (want, norm_reply(tx.reply or [])))
        return p
    # delivered, quarantined or discarded: Postfix accepted with 250
    if tx.outcome() != "accepted":
        return ["outcome: predicted %s, enforced %s at %s (%s)"
                % (outcome, tx.outcome(), tx.stage, " / ".join(tx.reply or []))]
    refused_pred = sorted((r["rcpt"], r["action"]) for r in rec["refused"])
    refused_enf = sorted((r, "tempfail" if 400 <= c < 500 else "reject") for r, c, _ in tx.refused)
    if refused_pred != refused_enf:
        p.append("refused recipients: predicted %s, enforced %s" % (refused_pred, refused_enf))
    got = state[0] if state else None
    if got != outcome:
        p.append("fate: predicted %s, enforced %s" % (outcome, got))
        return p
    if outcome == "quarantined":
        if state[1] is None:
            return p + ["the held message could not be read with postcat"]
        pred = comparable(predict_headers(base.headers(), rec["edits"]), rec["queue_id"])
        enf = comparable(state[1].headers(), tx.queue_id)
        if pred != enf:
            p.append("held message headers differ.\n  predicted (baseline + shadowd's edits):\n%s\n"
                     "  enforced (postcat -h):\n%s" % (show_headers(pred), show_headers(enf)))
        return p
    if outcome != "delivered":
        return p
    d = state[1]
    # headers: the baseline's, edited as the prediction says, against the delivered ones
    pred = comparable(predict_headers(base.headers(), rec["edits"]), rec["queue_id"])
    enf = comparable(d.headers(), tx.queue_id)
    if pred != enf:
        p.append("headers differ.\n  predicted (baseline + shadowd's edits):\n%s\n  enforced (sink):\n%s"
                 % (show_headers(pred), show_headers(enf)))
    # envelope
    efrom, ercpts = base.env_from, list(base.env_rcpts)
    for e in rec["edits"]:
        if e["op"] == "change_from":
            efrom = e["addr"] if e["addr"].startswith("<") else "<%s>" % e["addr"]
        elif e["op"] == "add_rcpt":
            ercpts.append(e["addr"] if e["addr"].startswith("<") else "<%s>" % e["addr"])
        elif e["op"] == "delete_rcpt":
            ercpts = [r for r in ercpts if r.lower() != e["addr"].lower()
                      and r.lower() != "<%s>" % e["addr"].lower()]
    if (efrom, sorted(ercpts)) != (d.env_from, sorted(d.env_rcpts)):
        p.append("envelope: predicted %s -> %s, enforced %s -> %s"
                 % (efrom, sorted(ercpts), d.env_from, sorted(d.env_rcpts)))
    # body
    bodies = [e for e in rec["edits"] if e["op"] == "replace_body"]
    if bodies:
        # what the sink adds to a body, measured on the baseline copy of this message
        crlf = lambda b: len(b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        extra = crlf(base.body) - crlf(split_message(msg.data)[1])
        size = crlf(d.body) - extra
        if size != bodies[-1]["size"]:
            p.append("body: predicted a %d-byte new body (CRLF), enforced %d bytes" % (bodies[-1]["size"], size))
    elif d.body != base.body:
        p.append("body: predicted unchanged, enforced differs (%d vs %d bytes)" % (len(d.body), len(base.body)))
    return p


# ---- verdict expectations (what each child does wired straight into Postfix) --

PASS = ("accept", "continue")


def edit_named(v, name, op=None):
    """edit_named - the values of v's edits of header name (optionally of one op)"""
    return [squash(e.get("value", "")) for e in v["edits"]
            if e.get("name", "").lower() == name.lower() and (op is None or e["op"] == op)]


def expect(chain, name, milter, action=PASS, stage=None, reply=None, headers=(), quarantine=None, ops=()):
    """expect - one expectation row: child milter, for message name, in chain"""
    return dict(chain=chain, name=name, milter=milter, action=action, stage=stage, reply=reply,
                headers=headers, quarantine=quarantine, ops=ops)


EXPECT = [
    # chain A: opendkim-verifier opendmarc clamav-milter spamass-milter rspamd
    expect("A", "ham", "opendkim-verifier", headers=[("Authentication-Results", r"^verifier\.tb\.test; dkim=none")]),
    expect("A", "ham", "opendmarc", headers=[("Authentication-Results", r"^dmarc\.tb\.test; dmarc=none .*header\.from=example\.net")]),
    expect("A", "ham", "clamav-milter", headers=[("X-Virus-Scanned", r"clamav-milter .* at clamav\.tb\.test"), ("X-Virus-Status", r"^Clean$")]),
    expect("A", "ham", "spamass-milter", headers=[("X-Spam-Status", r"^No, score=")]),
    expect("A", "ham", "rspamd", headers=[("X-Spamd-Result", r"^default: False"), ("X-Rspamd-Action", r"^no action$")]),
    expect("A", "spam-gtube", "spamass-milter", ("reject",), "eom", r"^550 5\.7\.1 Blocked by SpamAssassin \(test bed\)$",
           [("X-Spam-Flag", r"^YES$"), ("X-Spam-Status", r"^Yes, score=\d{3,4}\.\d .*GTUBE")]),
    expect("A", "spam-gtube", "rspamd", ("reject",), "eom", r"^554 5\.7\.1 Gtube pattern$"),
    expect("A", "spam-gtube", "clamav-milter", headers=[("X-Virus-Status", r"^Clean$")]),
    expect("A", "virus-attachment", "clamav-milter", ("reject",), "eom", None,
           [("X-Virus-Status", r"^Infected \(TB\.Test\.CustomString")]),
    expect("A", "virus-attachment", "spamass-milter", headers=[("X-Spam-Status", r"^No, ")]),
    expect("A", "dkim-signed", "opendkim-verifier", headers=[("Authentication-Results", r"^verifier\.tb\.test; dkim=pass .*header\.d=example\.com")]),
    expect("A", "dkim-signed", "opendmarc", headers=[("Authentication-Results", r"^dmarc\.tb\.test; dmarc=pass .*header\.from=example\.com")]),
    expect("A", "dkim-tampered", "opendkim-verifier", headers=[("Authentication-Results", r"^verifier\.tb\.test; dkim=fail .*header\.d=example\.com")]),
    expect("A", "dkim-tampered", "opendmarc", ("reject",), "eom", r"^550 5\.7\.1 rejected by DMARC policy for example\.com$"),
    expect("A", "dmarc-evil", "opendkim-verifier", headers=[("Authentication-Results", r"dkim=none")]),
    expect("A", "dmarc-evil", "opendmarc", ("reject",), "eom", r"^550 5\.7\.1 rejected by DMARC policy for evil\.example$"),
    expect("A", "spammy-signed", "opendkim-verifier", headers=[("Authentication-Results", r"dkim=pass")]),
    expect("A", "spammy-signed", "spamass-milter", headers=[("X-Spam-Flag", r"^YES$"), ("X-Spam-Status", r"^Yes, score=[5-9]\.\d .*TB_NEAR_THRESHOLD"),
                                                           ("Subject", r"^\[SPAM\] Newsletter for December$"),
                                                           ("Content-Type", r"^multipart/mixed; boundary=")],
           ops=["replace_body"]),
    expect("A", "spammy-signed", "rspamd", headers=[("X-Spamd-Result", r"SPAM_FLAG\(5\.00\)")]),
    expect("A", "multi-rcpt", "spamass-milter", headers=[("X-Spam-Status", r"^No, ")]),
    expect("A", "large-attachment", "clamav-milter", headers=[("X-Virus-Status", r"^Clean$")]),
    # spamc hands spamd at most 500 KB (its -s default): spamass-milter lets the 2 MB message pass unmarked
    expect("A", "large-attachment", "spamass-milter"),
    expect("B", "large-attachment", "spamass-milter"),
    expect("A", "8bit-long-headers", "opendkim-verifier", headers=[("Authentication-Results", r"dkim=none")]),
    # chain B: spamass-milter opendkim-verifier opendmarc: the Subject rewrite breaks the signature
    expect("B", "spammy-signed", "spamass-milter", headers=[("Subject", r"^\[SPAM\] Newsletter for December$")]),
    expect("B", "spammy-signed", "opendkim-verifier", headers=[("Authentication-Results", r"^verifier\.tb\.test; dkim=fail .*header\.d=example\.com")]),
    expect("B", "spammy-signed", "opendmarc", ("reject",), "eom", r"^550 5\.7\.1 rejected by DMARC policy for example\.com$"),
    expect("B", "dkim-signed", "opendkim-verifier", headers=[("Authentication-Results", r"dkim=pass")]),
    expect("B", "spam-gtube", "spamass-milter", ("reject",), "eom", r"^550 5\.7\.1 Blocked by SpamAssassin \(test bed\)$"),
    expect("B", "virus-attachment", "clamav-milter-hold", quarantine=r".",
           headers=[("X-Virus-Status", r"^Infected \(TB\.Test\.CustomString")]),
    expect("B", "dkim-tampered", "opendkim-verifier", headers=[("Authentication-Results", r"dkim=fail")]),
    expect("B", "dkim-tampered", "opendmarc", ("reject",), "eom", r"^550 5\.7\.1 rejected by DMARC policy for example\.com$"),
    expect("B", "dmarc-evil", "opendmarc", ("reject",), "eom", r"^550 5\.7\.1 rejected by DMARC policy for evil\.example$"),
    expect("B", "ham", "clamav-milter-hold", headers=[("X-Virus-Status", r"^Clean$")]),
    # chain C: clamav-milter-discard rspamd
    expect("C", "virus-attachment", "clamav-milter-discard", ("discard",), "eom",
           headers=[("X-Virus-Status", r"^Infected \(TB\.Test\.CustomString")]),
    expect("C", "spam-gtube", "rspamd", ("reject",), "eom", r"^554 5\.7\.1 Gtube pattern$"),
    expect("C", "ham", "rspamd", headers=[("X-Rspamd-Action", r"^no action$")]),
    expect("C", "large-attachment", "rspamd", headers=[("X-Spamd-Result", r"^default: False")]),
]

# The message record each chain's prediction should be (outcome, decided_by).
EXPECT_OUTCOME = {
    "A": {"spam-gtube": ("rejected", "spamass-milter"), "virus-attachment": ("rejected", "clamav-milter"),
          "dkim-tampered": ("rejected", "opendmarc"), "dmarc-evil": ("rejected", "opendmarc")},
    "B": {"spam-gtube": ("rejected", "spamass-milter"), "dkim-tampered": ("rejected", "opendmarc"),
          "dmarc-evil": ("rejected", "opendmarc"), "spammy-signed": ("rejected", "opendmarc"),
          "virus-attachment": ("quarantined", "clamav-milter-hold")},
    "C": {"spam-gtube": ("rejected", "rspamd"), "virus-attachment": ("discarded", "clamav-milter-discard")},
}


# What each child does when no row above names the message: lets it through and
# adds its usual header.
DEFAULT_EXPECT = {
    "opendkim-verifier": [("Authentication-Results", r"^verifier\.tb\.test; dkim=")],
    "opendmarc": [("Authentication-Results", r"^dmarc\.tb\.test; dmarc=")],
    "clamav-milter": [("X-Virus-Status", r"^Clean$")],
    "clamav-milter-hold": [("X-Virus-Status", r"^Clean$")],
    "clamav-milter-discard": [("X-Virus-Status", r"^Clean$")],
    "spamass-milter": [("X-Spam-Status", r"^No, score=")],
    "rspamd": [("X-Spamd-Result", r"^default: False")],
}


def verdict_problems(x, v):
    """verdict_problems - how verdict record v differs from expectation x; (problems, what it showed)"""
    probs, shown = [], []
    if v["action"] not in x["action"]:
        probs.append("action %s, want %s" % (v["action"], "/".join(x["action"])))
    if x["stage"] and v["stage"] != x["stage"]:
        probs.append("stage %s, want %s" % (v["stage"], x["stage"]))
    if x["action"] != PASS and x["reply"] is None and v["reply"] is not None:
        probs.append("reply %r, want null (Postfix's default)" % v["reply"])
    if x["reply"] and not re.search(x["reply"], v["reply"] or ""):
        probs.append("reply %r, want /%s/" % (v["reply"], x["reply"]))
    if x["quarantine"] and not re.search(x["quarantine"], v["quarantine"] or ""):
        probs.append("quarantine %r, want /%s/" % (v["quarantine"], x["quarantine"]))
    elif not x["quarantine"] and v["quarantine"] is not None:
        probs.append("quarantine %r, want none" % v["quarantine"])
    for op in x["ops"]:
        got = [e for e in v["edits"] if e["op"] == op]
        if not got:
            probs.append("no %s edit" % op)
        else:
            shown.append("%s%s" % (op, " %d bytes" % got[-1]["size"] if "size" in got[-1] else ""))
    for hname, pattern in x["headers"]:
        vals = edit_named(v, hname)
        if not any(re.search(pattern, s) for s in vals):
            probs.append("no %s edit matching /%s/ (its %s edits: %s)" % (hname, pattern, hname, vals))
        else:
            shown.append("%s: %s" % (hname, next(s for s in vals if re.search(pattern, s))[:60]))
    return probs, shown


def check_verdicts(chain, corpus, shadow):
    """check_verdicts - per message, every child's verdict record is the one that child gives wired
    straight into Postfix (the table EXPECT, else DEFAULT_EXPECT); then the predicted outcome"""
    names = {m.name for m in corpus}
    rows = {(x["name"], x["milter"]): x for x in EXPECT if x["chain"] == chain}
    stray = [k for k in rows if k[0] not in names or k[1] not in CHAINS[chain]]
    if stray:
        R.check(False, "verdict table rows of chain %s name real messages and children" % chain, str(stray))
    for m in corpus:
        rec, verdicts = shadow.get(m.mid, (None, {}))
        probs, parts = [], []
        for child in CHAINS[chain]:
            x = rows.get((m.name, child)) or expect(chain, m.name, child, headers=DEFAULT_EXPECT[child])
            v = verdicts.get(child)
            if v is None:
                probs.append("%s: no verdict record" % child)
                continue
            p, shown = verdict_problems(x, v)
            probs += ["%s: %s" % (child, e) for e in p]
            if p:
                probs.append("%s's verdict record: %s" % (child, json.dumps(v, ensure_ascii=False)))
            part = "%s %s" % (child, v["action"])
            if v["action"] not in PASS:
                part += " at %s %s" % (v["stage"], json.dumps(v["reply"]))
            if v["quarantine"]:
                part += " quarantine %s" % json.dumps(v["quarantine"])
            if (m.name, child) in rows and shown:
                part += " [%s]" % "; ".join(shown)
            else:
                part += " [%s]" % ", ".join(sorted({e.get("name", e["op"]) for e in v["edits"]})) if v["edits"] else ""
            parts.append(part)
        R.check(not probs, "verdicts %s %s: %s" % (chain, m.name, "; ".join(parts)), "\n".join(probs))
    for m in corpus:
        rec, _ = shadow.get(m.mid, (None, {}))
        want = EXPECT_OUTCOME[chain].get(m.name, ("delivered", None))
        got = (rec["outcome"], rec["decided_by"]) if rec else None
        R.check(got == want, "prediction %s %s: %s%s" % (chain, m.name, want[0], " by %s" % want[1] if want[1] else ""),
                "message record says %s" % (got,))


# ---- the corpus --------------------------------------------------------------

def sign(msg_name, data):
    """sign - play data through the signer instance; the signed message as it left Postfix"""
    m = Msg(msg_name, data, "signed")
    tx = smtp_send("signer", m)
    if tx.outcome() != "accepted":
        R.check(False, "signer: Postfix with the opendkim signer accepted %s" % msg_name,
                tx.error or " ".join(tx.reply or []))
        return None
    got = wait_for(lambda: re.search(r"%s: removed" % tx.queue_id, maillog("signer"))
                   and sink_messages("signer").get(m.mid), DELIVERY_SECONDS)
    if not got:
        R.check(False, "signer: %s reached the sink" % msg_name, maillog("signer")[-3000:])
        return None
    d = got[-1]
    # Drop the trace the signing pass added: Postfix's Received and any
    # Authentication-Results of the signer; keep the DKIM-Signature.
    heads = [raw for n, raw in d.heads
             if not (n.lower() == "received" and b"by mx.tb.test (Postfix)" in raw)
             and not (n.lower() == "authentication-results" and b"signer.tb.test" in raw)]
    body = d.body.rstrip(b"\n") + b"\n"
    signed = b"\n".join(heads) + b"\n\n" + body
    ok = any(n.lower() == "dkim-signature" and b"d=example.com" in raw for n, raw in d.heads)
    R.check(ok, "signer: opendkim signed %s (DKIM-Signature d=example.com s=tb)" % msg_name,
            signed.decode("utf-8", "replace")[:1500])
    return signed if ok else None


def build_corpus():
    """build_corpus - the committed messages (Date set to now), the signed ones, the tampered and the large one"""
    corpus = []
    for f in sorted(os.listdir(CORPUS_DIR)):
        if not f.endswith(".eml"):
            continue
        data = stamp_date(open(os.path.join(CORPUS_DIR, f), "rb").read())
        if f.endswith("-source.eml"):
            signed = sign(f, data)
            if signed is None:
                continue
            if f == "dkim-source.eml":
                corpus.append(Msg("dkim-signed", signed, "dkim-source.eml signed"))
                tampered = signed.replace(b"revenue 100, costs 80, profit 20",
                                          b"revenue 900, costs 80, profit 820")
                tampered = tampered.replace(b"<corpus-dkim-signed@", b"<corpus-dkim-tampered@")
                R.check(tampered != signed and b"revenue 900" in tampered,
                        "corpus: dkim-tampered made from dkim-signed (body changed, signature kept)")
                corpus.append(Msg("dkim-tampered", tampered, "dkim-signed with a changed body"))
            elif f == "spammy-source.eml":
                corpus.append(Msg("spammy-signed", signed, "spammy-source.eml signed"))
        else:
            corpus.append(Msg(f[:-4], data, f))
    corpus.append(Msg("large-attachment", stamp_date(large_message()), "generated"))
    mids = [m.mid for m in corpus]
    R.check(len(set(mids)) == len(mids) and all(mids), "corpus: %d messages, each with its own Message-ID: %s"
            % (len(corpus), ", ".join(m.name for m in corpus)))
    return corpus


# ---- main --------------------------------------------------------------------

def main():
    t0 = time.monotonic()
    corpus = build_corpus()
    R.note("corpus ready (%.1f s)" % (time.monotonic() - t0))

    # a. baseline
    txs = play("baseline", corpus)
    bad = ["%s: %s" % (n, t.error or " ".join(t.reply or [])) for n, t in txs.items() if t.outcome() != "accepted"]
    R.check(not bad, "baseline: Postfix without milters accepted all %d messages" % len(corpus), "\n".join(bad))
    states = settle("baseline", txs, corpus)
    baseline = {n: s[1] for n, s in states.items() if s[0] == "delivered"}
    R.check(len(baseline) == len(corpus), "baseline: all %d messages in the sink (kept as the reference)"
            % len(corpus), "missing: %s" % [m.name for m in corpus if m.name not in baseline])
    R.check(wait_for(lambda: queue_empty("baseline"), 10), "baseline: queue empty", postqueue("baseline"))
    R.note("baseline done (%.1f s)" % (time.monotonic() - t0))
    if len(baseline) != len(corpus):
        return

    # Chain A plays one message per SMTP connection; chains B and C play the whole
    # corpus in one SMTP session, as a busy MTA does (shadowd then handles many
    # messages, and the refusals between them, on one milter connection).
    plan = [("A", ["A"], False), ("B", ["B", "Bi"], True), ("C", ["C"], True)]
    total_matched = total = 0
    for chain, shadowds, session in plan:
        R.note("chain %s: %s (%s)" % (chain, " -> ".join(CHAINS[chain]),
                                      "one SMTP session" if session else "one connection per message"))
        shadow = {}
        for sd in shadowds:
            # b. passivity
            stx = play("shadow-" + sd, corpus, session)
            check_passivity("shadow-" + sd, corpus, stx, baseline)
            shadow[sd] = shadow_records(sd, corpus)
            check_records(sd, chain, corpus, stx, shadow[sd])
            R.note("shadow-%s done (%.1f s)" % (sd, time.monotonic() - t0))
        # c. verdicts
        check_verdicts(chain, corpus, shadow[chain])
        # d. fidelity
        etx = play("enforce-" + chain, corpus, session)
        estates = settle("enforce-" + chain, etx, corpus)
        total_matched += check_fidelity(chain, corpus, shadow[chain], etx, estates, baseline)
        total += len(corpus)
        want_held = {etx[n].queue_id for n, st in estates.items() if st[0] == "quarantined"}
        R.check(wait_for(lambda: postqueue_only(chain, want_held), 10),
                "enforce-%s: afterwards the queue holds only the %d quarantined message(s)"
                % (chain, len(want_held)), postqueue("enforce-" + chain))
        if "Bi" in shadow:
            check_control(corpus, shadow["Bi"], etx, estates, baseline)
        R.note("enforce-%s done (%.1f s)" % (chain, time.monotonic() - t0))
    print("%d of %d predictions matched (all chains)" % (total_matched, total))


def postqueue_only(chain, want_held):
    """postqueue_only - true when enforce-CHAIN's queue holds exactly the held ids want_held"""
    q = postqueue("enforce-" + chain)
    ids = set(re.findall(r"^([0-9A-F]+)[*!]?\s", q, re.M))
    return ids == want_held and held_ids("enforce-" + chain) == want_held


def check_control(corpus, shadow, etx, estates, baseline):
    """check_control - content = independent shows every child of chain B the message as received, so
    opendmarc never sees the verifier's Authentication-Results: shadowd must then mispredict dkim-signed,
    and the fidelity check must report it (proof that the check can fail)"""
    by = {m.name: m for m in corpus}
    m = by["dkim-signed"]
    rec, verdicts = shadow.get(m.mid, (None, {}))
    if rec is None:
        R.check(False, "control (independent): a record for dkim-signed")
        return
    problems = compare_one(rec, etx[m.name], estates.get(m.name), baseline[m.name], m)
    R.check(bool(problems) and rec["outcome"] == "rejected" and rec["decided_by"] == "opendmarc",
            "control: with content = independent shadowd predicts dkim-signed %s by %s (%s); enforcement: %s; "
            "the fidelity check reports: %s" % (rec["outcome"], rec["decided_by"], rec["reply"],
                                                enforced_summary(etx[m.name], estates.get(m.name)),
                                                problems[0].split("\n")[0] if problems else "no difference"))
    sp = shadow.get(by["spammy-signed"].mid, (None, {}))[1].get("opendkim-verifier", {})
    ar = [squash(e["value"])[:45] for e in sp.get("edits", []) if e.get("name") == "Authentication-Results"]
    R.note("control: independent, the verifier saw spammy-signed unedited: %s" % ", ".join(ar))
    others = [x.name for x in corpus if x.mid in shadow
              and compare_one(shadow[x.mid][0], etx[x.name], estates.get(x.name), baseline[x.name], x)]
    R.note("control: content = independent mispredicts: %s" % (", ".join(others) or "nothing"))


if __name__ == "__main__":
    try:
        main()
    except Exception:  # a harness bug must fail the test, not pass it
        import traceback
        traceback.print_exc()
        R.check(False, "the harness ran to the end")
    print("# %d checks, %d failed" % (R.n, len(R.failed)))
    for f in R.failed:
        print("#   failed: %s" % f)
    sys.exit(1 if R.failed else 0)
