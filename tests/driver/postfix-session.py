#!/usr/bin/python3
"""postfix-session - write the milter-driver script that replays a captured Postfix session.

usage: postfix-session.py session|ipv6 > FILE.script

The output makes milter-driver send what Debian's Postfix 3.7 sent to the
capture milter in tests/fixtures/postfix-3.7/NAME.expect, step by step: the
same SMTP dialogue as tests/capture/smtp-dialogue.py, seen from the milter
side (RSET and the end of a transaction are SMFIC_ABORT, a mid-transaction
HELO is HELO then two ABORTs, the session ends with ABORT ABORT QUIT).
selftest.sh runs it against tests/capture/capture-milter.py and diffs the
listing with the fixture, queue IDs and ports masked.  Standard library only.
"""

import sys

DATE = "Thu, 03 Dec 2026 12:00:00 +0000"


def esc(b):
    """esc - bytes as a milter-driver script TEXT (\\r \\n \\t \\\\ \\xHH)"""
    out = []
    for c in b:
        if c == 0x5C:
            out.append("\\\\")
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x0A:
            out.append("\\n")
        elif c == 0x09:
            out.append("\\t")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def std_headers(subject, action=None, to="Bob <bob@example.net>", msgid="capture"):
    """std_headers - the headers smtp-dialogue.py puts on every session message"""
    h = [
        ("From", "Alice Example <alice@example.com>"),
        ("To", to),
        ("Subject", subject),
        ("Date", DATE),
        ("Message-ID", "<%s@example.com>" % msgid),
    ]
    if action:
        h.append(("X-Capture-Action", action))
    return h


def message(out, headers, body_lines, stop_after=None):
    """message - DATA, the headers, EOH, one BODY with every line, EOM"""
    out.append("data")
    if stop_after == "data":
        return
    for name, value in headers:
        out.append("header %s: %s" % (name, esc(value.encode())))
    out.append("eoh")
    if stop_after == "eoh":
        return
    out.append("body " + esc(b"".join(l + b"\r\n" for l in body_lines)))
    out.append("eom")


def envelope(out, sender="alice@example.com", rcpts=("bob@example.net",)):
    """envelope - MAIL and RCPT steps"""
    out.append("mail <%s>" % sender)
    for r in rcpts:
        out.append("rcpt <%s>" % r)


def session():
    """session - the steps of smtp-dialogue.py's "session" dialogue"""
    out = ["connect", "helo client.tb.test"]
    envelope(out)
    message(out, std_headers("session message 1 (normal)", msgid="capture-s1"),
            [b"First message of the session."])
    out.append("abort")
    envelope(out)                               # RSET
    out.append("abort")
    out.append("unknown XCAPTURE")
    out.append("mail <alice@example.com>")      # HELO in the middle of a transaction
    out.append("helo client2.tb.test")
    out += ["abort", "abort"]
    envelope(out, rcpts=())
    out.append("rcpt <reject-ml@example.net>")
    out.append("expect y 550-5.7.1 Recipient rejected*")
    out.append("rcpt <reject-sl@example.net>")
    out.append("expect y 550 5.7.1 Single-line*")
    out.append("rcpt <carol@example.net>")
    out.append("expect c")
    message(out, std_headers("session message 2 (recipient rejects)", to="carol@example.net",
                             msgid="capture-s2"), [b"Only carol gets this."])
    out.append("abort")
    envelope(out)
    message(out, std_headers("session message 3 (tempfail at EOH)", action="tempfail-eoh",
                             msgid="capture-s3"), [], stop_after="eoh")
    out.append("expect t")
    out.append("abort")
    envelope(out)
    message(out, std_headers("session message 4 (discard at EOM)", action="discard-eom",
                             msgid="capture-s4"), [b"This message is discarded."])
    out.append("expect d")
    out.append("abort")
    body = [(b"%05d " % i) + (b"abcdefghijklmnopqrstuvwxyz0123456789" * 2)[:70] + b"."
            for i in range(1, 1811)]
    envelope(out)
    message(out, std_headers("session message 5 (large body)", msgid="capture-s5"), body)
    out.append("abort")
    out.append("mail <accept-early@example.com>")
    out.append("expect a")
    out.append("abort")
    envelope(out, sender="reject-data@example.com")
    message(out, [], [], stop_after="data")
    out.append("expect r")
    out.append("abort")
    envelope(out)
    out.append("data")
    for name, value in std_headers("session message 8 (skip body)", action="skip-body",
                                   msgid="capture-s8"):
        out.append("header %s: %s" % (name, esc(value.encode())))
    out.append("eoh")
    out.append("body " + esc(b"The milter skips the rest of this body.\r\nSecond body line.\r\n"))
    out.append("expect s")
    out.append("eom")
    out.append("expect c")
    out += ["abort", "abort", "quit"]
    return out


def ipv6():
    """ipv6 - the steps of smtp-dialogue.py's "ipv6" dialogue"""
    out = ["connect", "helo client6.tb.test"]
    envelope(out)
    message(out, std_headers("capture message over IPv6", msgid="capture-ipv6"),
            [b"Sent to [::1]."])
    out += ["abort", "abort", "quit"]
    return out


def main(argv):
    """main - print the script of the named session"""
    sessions = {"session": session, "ipv6": ipv6}
    if len(argv) != 2 or argv[1] not in sessions:
        sys.stderr.write("usage: postfix-session.py session|ipv6\n")
        return 64
    sys.stdout.write("# generated by tests/driver/postfix-session.py %s\n" % argv[1])
    sys.stdout.write("\n".join(sessions[argv[1]]()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
