#!/usr/bin/python3
"""fake-milter - small scriptable milter on Debian's pymilter (so libmilter speaks the protocol).

usage: fake-milter.py --socket SPEC [--log FILE] [--protocol MASK] [--actions MASK]
                      [--symlist STAGE=NAMES]... [--timeout S]

Used by tests/driver/selftest.sh to check milter-driver against a real
libmilter.  --protocol is the SMFIP_* mask to request (ANDed with the offer,
default 0x400 = SKIP only, so every event comes and every event gets a reply);
callbacks whose SMFIP_NR_* bit was negotiated return NOREPLY.  --symlist
STAGE=NAMES (STAGE 0-6, the wire SMFIM_* numbers) asks for a macro list.
Verdicts come from the mail itself:

  client name reject.example / accept.example    CONNECT -> r / a
  HELO tempfail.example                          HELO    -> t
  sender <accept@...> / <reject@...>             MAIL    -> a / r
  recipient <reject@...> / <tempfail@...>        RCPT    -> r / t (that recipient only)
  recipient <replycode@...>                      RCPT    -> y "451 4.7.1 ..."
  recipient <discard@...>                        RCPT    -> d (the whole message)
  recipient <slow@...>                           RCPT    -> sleeps 3 s, then c
  header X-Test-Action: accept-header            HEADER  -> a
  header X-Test-Action: tempfail-eoh             EOH     -> t
  header X-Test-Action: edits                    EOM     -> h i m m e + 2 - b q, then c
  header X-Test-Action: progress                 EOM     -> p every 0.3 s for 1.5 s, then c
  header X-Test-Action: slow-eom                 EOM     -> sleeps 1.5 s, then c
  body with the GTUBE string                     EOM     -> y "550 5.7.1 ..."
  body with the EICAR string (raw or base64)     EOM     -> y "554 5.7.1 ..."

The log gets one line per callback with what libmilter decoded (repr of
header values, body chunk sizes, selected macros).  Run with /usr/bin/python3.
"""

import argparse
import base64
import re
import sys
import threading
import time

import Milter

LOG = None
LOG_LOCK = threading.Lock()
ARGS = None
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
NR = {
    "connect": Milter.P_NR_CONN, "hello": Milter.P_NR_HELO, "envfrom": Milter.P_NR_MAIL,
    "envrcpt": Milter.P_NR_RCPT, "data": Milter.P_NR_DATA, "header": Milter.P_NR_HDR,
    "eoh": Milter.P_NR_EOH, "body": Milter.P_NR_BODY, "unknown": Milter.P_NR_UNKN,
}


def log(*parts):
    """log - append one line to the log file (if any) and flush it"""
    if LOG is None:
        return
    with LOG_LOCK:
        LOG.write(" ".join(str(p) for p in parts) + "\n")
        LOG.flush()


def addr_of(s):
    """addr_of - lower-case address without angle brackets"""
    return s.strip().strip("<>").lower()


def has_eicar(body):
    """has_eicar - the EICAR string raw, or in a base64 part of the body"""
    if EICAR in body:
        return True
    for block in re.findall(rb"(?:^[A-Za-z0-9+/=]{8,}\r?\n)+", body, re.M):
        try:
            if EICAR in base64.b64decode(b"".join(block.split()), validate=False):
                return True
        except ValueError:
            pass
    return False


class FakeMilter(Milter.Base):
    """One instance per milter connection."""

    def __init__(self):
        self.id = Milter.uniqueID()
        self.action = None
        self.content = b""
        self._protocol = 0

    def reply(self, func, rc=Milter.CONTINUE):
        """reply - NOREPLY where the NR bit of this callback was negotiated and rc is CONTINUE"""
        if rc == Milter.CONTINUE and self._protocol & NR.get(func, 0):
            return Milter.NOREPLY
        return rc

    def negotiate(self, opts):
        """negotiate - take the actions and protocol bits asked for on the command line"""
        offered_actions, offered_protocol = opts[0], opts[1]
        for spec in ARGS.symlist:
            stage, names = spec.split("=", 1)
            self._ctx.setsymlist(int(stage), names)
        opts[0] = offered_actions & ARGS.actions
        opts[1] = self._protocol = offered_protocol & ARGS.protocol
        opts[2] = opts[3] = 0
        log(self.id, "negotiate offered=0x%x,0x%x took=0x%x,0x%x"
            % (offered_actions, offered_protocol, opts[0], opts[1]))
        return Milter.CONTINUE

    def connect(self, hostname, family, hostaddr):
        log(self.id, "connect", repr(hostname), repr(family), repr(hostaddr),
            "_=%r" % self.getsymval("_"), "j=%r" % self.getsymval("j"))
        if hostname == "reject.example":
            return Milter.REJECT
        if hostname == "accept.example":
            return Milter.ACCEPT
        return self.reply("connect")

    def hello(self, heloname):
        log(self.id, "helo", repr(heloname))
        if heloname == "tempfail.example":
            return Milter.TEMPFAIL
        return self.reply("hello")

    def unknown(self, cmd):
        log(self.id, "unknown", repr(cmd))
        return self.reply("unknown")

    def envfrom(self, mailfrom, *params):
        self.action = None
        self.content = b""
        a = addr_of(mailfrom)
        log(self.id, "mail", repr(mailfrom), repr(params), "i=%r" % self.getsymval("i"),
            "auth_authen=%r" % self.getsymval("{auth_authen}"),
            "auth_type=%r" % self.getsymval("{auth_type}"),
            "mail_addr=%r" % self.getsymval("{mail_addr}"))
        if a.startswith("accept@"):
            return Milter.ACCEPT
        if a.startswith("reject@"):
            return Milter.REJECT
        return self.reply("envfrom")

    def envrcpt(self, rcpt, *params):
        a = addr_of(rcpt)
        log(self.id, "rcpt", repr(rcpt), repr(params), "i=%r" % self.getsymval("i"))
        if a.startswith("reject@"):
            return Milter.REJECT
        if a.startswith("tempfail@"):
            return Milter.TEMPFAIL
        if a.startswith("replycode@"):
            self.setreply("451", "4.7.1", "Try %s later" % a)
            return Milter.TEMPFAIL
        if a.startswith("discard@"):
            return Milter.DISCARD
        if a.startswith("slow@"):
            time.sleep(3)
        return self.reply("envrcpt")

    def data(self):
        log(self.id, "data", "i=%r" % self.getsymval("i"))
        return self.reply("data")

    def header(self, name, value):
        log(self.id, "header", repr(name), repr(value))
        if name.lower() == "x-test-action":
            self.action = value.strip().lower()
            if self.action == "accept-header":
                return Milter.ACCEPT
        return self.reply("header")

    def eoh(self):
        log(self.id, "eoh")
        if self.action == "tempfail-eoh":
            return Milter.TEMPFAIL
        return self.reply("eoh")

    def body(self, chunk):
        log(self.id, "body", len(chunk))
        self.content += chunk
        return self.reply("body")

    def eom(self):
        log(self.id, "eom", "bytes=%d" % len(self.content), "action=%s" % self.action)
        if GTUBE in self.content:
            self.setreply("550", "5.7.1", "Spam message rejected (GTUBE)")
            return Milter.REJECT
        if has_eicar(self.content):
            self.setreply("554", "5.7.1", "Virus found: Eicar-Test-Signature")
            return Milter.REJECT
        if self.action == "edits":
            self.addheader("X-Fake-Added", "appended")
            self.addheader("X-Fake-Inserted", "inserted", 0)
            self.chgheader("Subject", 1, "changed")
            self.chgheader("X-Test-Action", 1, None)
            self.chgfrom("<changed@example.org>")
            self.addrcpt("<added@example.org>")
            self.addrcpt("<added-par@example.org>", "NOTIFY=NEVER")
            self.delrcpt("<recipient@example.org>")
            self.replacebody(b"replaced\r\n")
            self.quarantine("fake quarantine")
        elif self.action == "progress":
            for _ in range(5):
                time.sleep(0.3)
                self.progress()
        elif self.action == "slow-eom":
            time.sleep(1.5)
        return Milter.CONTINUE

    def abort(self):
        log(self.id, "abort")
        return Milter.CONTINUE

    def close(self):
        log(self.id, "close")
        return Milter.CONTINUE


def main():
    """main - parse the options and run libmilter until killed"""
    global LOG, ARGS
    ap = argparse.ArgumentParser(description="scriptable libmilter test milter")
    ap.add_argument("--socket", required=True, help="inet:PORT@HOST or unix:PATH")
    ap.add_argument("--log", help="append one line per callback to this file")
    ap.add_argument("--protocol", type=lambda s: int(s, 0), default=Milter.P_SKIP,
                    help="SMFIP_* bits to take from the offer (default 0x400)")
    ap.add_argument("--actions", type=lambda s: int(s, 0), default=Milter.CURR_ACTS,
                    help="SMFIF_* bits to take from the offer (default all)")
    ap.add_argument("--symlist", action="append", default=[], help="STAGE=NAMES (repeatable)")
    ap.add_argument("--timeout", type=int, default=30, help="libmilter I/O timeout (s)")
    ARGS = ap.parse_args()
    if ARGS.log:
        LOG = open(ARGS.log, "a", encoding="utf-8", errors="backslashreplace")
    Milter.factory = FakeMilter
    Milter.set_flags(Milter.CURR_ACTS)
    sys.stdout.flush()
    Milter.runmilter("fake-milter", ARGS.socket, ARGS.timeout)


if __name__ == "__main__":
    main()
