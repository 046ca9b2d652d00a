#!/usr/bin/env python3
"""smtp-dialogue - the scripted SMTP sessions that capture-postfix records.

usage: smtp-dialogue.py SESSION HOST PORT TRANSCRIPT
  SESSION  basic | session | ipv6
  HOST     127.0.0.1 or ::1
Each session is ONE SMTP connection (so one milter connection).  Every reply
is checked against what the capture milter is scripted to do; on a surprise
the script exits 1.  The transcript file gets every command and reply.
Standard library only (smtplib); any python3 works.
"""

import smtplib
import sys

DATE = "Thu, 03 Dec 2026 12:00:00 +0000"
CRLF = b"\r\n"


class Dialogue:
    """A thin wrapper over smtplib that logs and checks every step."""

    def __init__(self, host, port, transcript):
        self.t = open(transcript, "ab")
        self.note("connect %s port %d" % (host, port))
        self.s = smtplib.SMTP(timeout=60)
        code, msg = self.s.connect(host, port)
        self.reply("banner", code, msg, 220)

    def note(self, text):
        self.t.write(b"## " + text.encode() + b"\n")
        self.t.flush()

    def reply(self, what, code, msg, want):
        if isinstance(msg, str):
            msg = msg.encode()
        lines = msg.split(b"\n")
        for k, line in enumerate(lines):
            sep = b" " if k == len(lines) - 1 else b"-"
            self.t.write(b"<- %d%s%s\n" % (code, sep, line))
        self.t.flush()
        ok = code in want if isinstance(want, tuple) else code == want
        if not ok:
            sys.exit("smtp-dialogue: %s: expected %s, got %d %s" % (what, want, code, msg.decode(errors="replace")))
        return code

    def cmd(self, line, want):
        self.t.write(b"-> " + line.encode() + b"\n")
        code, msg = self.s.docmd(line)
        return self.reply(line, code, msg, want)

    def ehlo(self, name, helo=False):
        verb = "HELO" if helo else "EHLO"
        self.t.write(("-> %s %s\n" % (verb, name)).encode())
        code, msg = self.s.helo(name) if helo else self.s.ehlo(name)
        return self.reply(verb, code, msg, 250)

    def mail(self, sender, params=(), want=250):
        line = "MAIL FROM:<%s>" % sender + "".join(" " + p for p in params)
        return self.cmd(line, want)

    def rcpt(self, rcpt, params=(), want=250):
        line = "RCPT TO:<%s>" % rcpt + "".join(" " + p for p in params)
        return self.cmd(line, want)

    def data(self, message, want=250, want_data=354):
        """DATA, then the message (bytes, CRLF lines), dot-stuffed, then '.'"""
        if self.cmd("DATA", want_data) != 354:
            return None
        lines = message.split(CRLF)
        if lines and lines[-1] == b"":
            lines.pop()
        out = b"".join((b"." + l if l.startswith(b".") else l) + CRLF for l in lines) + b"." + CRLF
        self.t.write(b"-> (message: %d lines, %d bytes)\n-> .\n" % (len(lines), len(message)))
        self.s.send(out)
        code, msg = self.s.getreply()
        return self.reply("end of DATA", code, msg, want)

    def quit(self):
        self.cmd("QUIT", 221)
        self.s.close()
        self.t.close()


def message(headers, body):
    """Build a message from header lines (bytes) and body lines (bytes), CRLF endings."""
    return CRLF.join(headers) + CRLF + CRLF + CRLF.join(body) + CRLF


def std_headers(subject, action=None, to=b"Bob <bob@example.net>", msgid=b"capture"):
    h = [
        b"From: Alice Example <alice@example.com>",
        b"To: " + to,
        b"Subject: " + subject,
        b"Date: " + DATE.encode(),
        b"Message-ID: <" + msgid + b"@example.com>",
    ]
    if action:
        h.append(b"X-Capture-Action: " + action)
    return h


def basic(d):
    d.ehlo("client.tb.test")
    msg = message(
        [
            b"From: Alice Example <alice@example.com>",
            b"To: Bob <bob@example.net>, carol@example.net",
            b"Subject: capture basic message",
            b"Date: " + DATE.encode(),
            b"Message-ID: <capture-basic@example.com>",
            b"X-Folded: first line of a folded header",
            b"\tsecond line, indented with a tab",
            b"  third line, indented with two spaces",
            b"X-8bit: caf\xc3\xa9 na\xc3\xafve raw \xff byte",
            b"X-Delete-Me: this header is deleted by the milter",
            b"X-Capture-Action: edit-all",
            b"MIME-Version: 1.0",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: 8bit",
        ],
        [
            b"Hello Bob,",
            b".this line starts with a dot (dot-stuffed on the wire)",
            b"",
            b"caf\xc3\xa9 \xe2\x82\xac with trailing spaces   ",
            b"\ttab-indented line",
            b"-- ",
            b"Alice",
        ],
    )
    d.mail("alice@example.com", ["SIZE=%d" % len(msg), "BODY=8BITMIME"])
    d.rcpt("bob@example.net", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.net"])
    d.rcpt("carol@example.net")
    d.data(msg)
    d.quit()


def session(d):
    d.ehlo("client.tb.test")

    d.note("message 1: normal, milter continues everywhere")
    d.mail("alice@example.com")
    d.rcpt("bob@example.net")
    d.data(message(std_headers(b"session message 1 (normal)", msgid=b"capture-s1"),
                   [b"First message of the session."]))

    d.note("open a transaction, then RSET")
    d.mail("alice@example.com")
    d.rcpt("bob@example.net")
    d.cmd("RSET", 250)

    d.note("unknown command (Postfix passes it to the milter as SMFIC_UNKNOWN)")
    d.cmd("XCAPTURE unknown command with arguments", (500, 502))

    d.note("open a transaction, then HELO in the middle of it")
    d.mail("alice@example.com")
    d.ehlo("client2.tb.test", helo=True)

    d.note("message 2: two recipients rejected by the milter (multi-line and single-line reply), one accepted")
    d.mail("alice@example.com")
    d.rcpt("reject-ml@example.net", want=550)
    d.rcpt("reject-sl@example.net", want=550)
    d.rcpt("carol@example.net")
    d.data(message(std_headers(b"session message 2 (recipient rejects)", to=b"carol@example.net",
                               msgid=b"capture-s2"),
                   [b"Only carol gets this."]))

    d.note("message 3: tempfailed by the milter at end of headers")
    d.mail("alice@example.com")
    d.rcpt("bob@example.net")
    d.data(message(std_headers(b"session message 3 (tempfail at EOH)", action=b"tempfail-eoh",
                               msgid=b"capture-s3"),
                   [b"This message is tempfailed."]), want=451)

    d.note("message 4: discarded by the milter at end of message")
    d.mail("alice@example.com")
    d.rcpt("bob@example.net")
    d.data(message(std_headers(b"session message 4 (discard at EOM)", action=b"discard-eom",
                               msgid=b"capture-s4"),
                   [b"This message is discarded."]))

    d.note("message 5: body larger than 140000 bytes (split into 65535-byte chunks)")
    body = [(b"%05d " % i) + (b"abcdefghijklmnopqrstuvwxyz0123456789" * 2)[:70] + b"." for i in range(1, 1811)]
    d.mail("alice@example.com")
    d.rcpt("bob@example.net")
    d.data(message(std_headers(b"session message 5 (large body)", msgid=b"capture-s5"), body))

    d.note("message 6: accepted by the milter at MAIL (no further events for it)")
    d.mail("accept-early@example.com")
    d.rcpt("bob@example.net")
    d.data(message(std_headers(b"session message 6 (accept at MAIL)", msgid=b"capture-s6"),
                   [b"The milter accepted this one early."]))

    d.note("message 7: rejected by the milter at DATA")
    d.mail("reject-data@example.com")
    d.rcpt("bob@example.net")
    d.cmd("DATA", 550)
    d.cmd("RSET", 250)

    d.note("message 8: the milter answers SKIP to the first body chunk")
    d.mail("alice@example.com")
    d.rcpt("bob@example.net")
    d.data(message(std_headers(b"session message 8 (skip body)", action=b"skip-body", msgid=b"capture-s8"),
                   [b"The milter skips the rest of this body.", b"Second body line."]))
    d.quit()


def ipv6(d):
    d.ehlo("client6.tb.test")
    d.mail("alice@example.com")
    d.rcpt("bob@example.net")
    d.data(message(std_headers(b"capture message over IPv6", msgid=b"capture-ipv6"),
                   [b"Sent to [::1]."]))
    d.quit()


SESSIONS = {"basic": basic, "session": session, "ipv6": ipv6}


def main(argv):
    if len(argv) != 5 or argv[1] not in SESSIONS:
        sys.stderr.write("usage: smtp-dialogue.py basic|session|ipv6 HOST PORT TRANSCRIPT\n")
        return 64
    d = Dialogue(argv[2], int(argv[3]), argv[4])
    SESSIONS[argv[1]](d)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
