#!/usr/bin/python3
"""capture-milter - scriptable test milter (Debian python3-milter, libmilter).

Used by capture-postfix to make a real libmilter encode as many reply kinds
as possible.  It negotiates every action offered, asks for its own macro list
at every stage (so the SMFIR_OPTNEG reply carries symlists), registers every
callback (so the MTA sends every event), and replies "continue" to everything
except where the message asks for something else:

  sender <accept-early@...>           MAIL  -> SMFIR_ACCEPT   (a)
  sender <reject-data@...>            DATA  -> SMFIR_REJECT   (r)
  recipient <reject-ml@...>           RCPT  -> 550 multi-line reply   (y)
  recipient <reject-sl@...>           RCPT  -> 550 single-line reply  (y)
  header X-Capture-Action: tempfail-eoh   EOH  -> SMFIR_TEMPFAIL (t)
  header X-Capture-Action: skip-body      BODY -> SMFIR_SKIP (s) on the first chunk
  header X-Capture-Action: discard-eom    EOM  -> SMFIR_DISCARD (d)
  header X-Capture-Action: edit-all       EOM  -> p, h, i, m (change), m (delete),
                                                  e (with ESMTP args), +, 2, -, b, q, then c

Run with /usr/bin/python3 (the Milter module is Debian's):
  capture-milter.py --socket inet:PORT@127.0.0.1 [--log FILE]
"""

import argparse
import sys
import threading
import time

import Milter

LOG = None
LOG_LOCK = threading.Lock()


def log(*parts):
    """log - append one line to the log file (if any) and flush it"""
    if LOG is None:
        return
    with LOG_LOCK:
        LOG.write("%.3f %s\n" % (time.time(), " ".join(str(p) for p in parts)))
        LOG.flush()


def addr_of(s):
    """addr_of - lower-case address without angle brackets"""
    return s.strip().strip("<>").lower()


class CaptureMilter(Milter.Base):
    """One instance per milter connection (= per SMTP session)."""

    def __init__(self):
        self.id = Milter.uniqueID()
        self.action = None
        self.sender = ""
        self.rcpts = []
        self.body_chunks = 0

    # --- negotiation ------------------------------------------------------

    def negotiate(self, opts):
        """Take every offered action; request every event; send the symlists.

        Milter.Base.negotiate does the same, but in pymilter 1.0.5 on Python 3
        its setsymlist() passes bytes to the C function, which wants str; the
        TypeError is swallowed and it falls back to ALL_OPTS, so no macro list
        reaches the MTA.  Hence this copy that passes str."""
        try:
            self._actions, p, _f1, _f2 = opts
            for func, stage in Milter.MACRO_CALLBACKS.items():
                syms = getattr(getattr(self, func), "_symlist", None)
                if syms is not None:
                    self._ctx.setsymlist(stage, " ".join(syms))
            opts[1] = self._protocol = p & ~self.protocol_mask()
            opts[2] = 0
            opts[3] = 0
            log(self.id, "negotiate actions=0x%x protocol=0x%x" % (opts[0], opts[1]))
        except Exception as e:  # report it; the driver checks the O reply
            log(self.id, "negotiate FAILED: %r" % (e,))
            return Milter.ALL_OPTS
        return Milter.CONTINUE

    # --- connection level -------------------------------------------------

    @Milter.symlist("j", "_", "{daemon_name}", "{client_addr}", "{client_name}")
    def connect(self, hostname, family, hostaddr):
        log(self.id, "connect", hostname, family, hostaddr)
        return Milter.CONTINUE

    @Milter.symlist("{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}", "{cert_issuer}")
    def hello(self, heloname):
        log(self.id, "helo", heloname)
        return Milter.CONTINUE

    def unknown(self, cmd):
        log(self.id, "unknown", cmd)
        return Milter.CONTINUE

    # --- envelope ---------------------------------------------------------

    @Milter.symlist("i", "{mail_addr}", "{mail_host}", "{mail_mailer}", "{auth_type}")
    def envfrom(self, mailfrom, *params):
        self.action = None
        self.sender = addr_of(mailfrom)
        self.rcpts = []
        self.body_chunks = 0
        log(self.id, "mail", mailfrom, params, "i=%s" % self.getsymval("i"))
        if self.sender.startswith("accept-early@"):
            log(self.id, "-> ACCEPT at MAIL")
            return Milter.ACCEPT
        return Milter.CONTINUE

    @Milter.symlist("i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}")
    def envrcpt(self, rcpt, *params):
        a = addr_of(rcpt)
        log(self.id, "rcpt", rcpt, params)
        if a.startswith("reject-ml@"):
            self.setreply("550", "5.7.1", "Recipient rejected by capture milter",
                          "second line of a multi-line reply",
                          "third and last line")
            log(self.id, "-> REJECT (multi-line reply) at RCPT")
            return Milter.REJECT
        if a.startswith("reject-sl@"):
            self.setreply("550", "5.7.1", "Single-line reject by capture milter")
            log(self.id, "-> REJECT (single-line reply) at RCPT")
            return Milter.REJECT
        self.rcpts.append(rcpt)
        return Milter.CONTINUE

    @Milter.symlist("i")
    def data(self):
        log(self.id, "data")
        if self.sender.startswith("reject-data@"):
            log(self.id, "-> REJECT at DATA")
            return Milter.REJECT
        return Milter.CONTINUE

    # --- content ----------------------------------------------------------

    def header(self, name, value):
        log(self.id, "header", repr(name), repr(value))
        if name.lower() == "x-capture-action":
            self.action = value.strip().lower()
        return Milter.CONTINUE

    @Milter.symlist("i", "{mail_addr}")
    def eoh(self):
        log(self.id, "eoh action=%s" % self.action)
        if self.action == "tempfail-eoh":
            log(self.id, "-> TEMPFAIL at EOH")
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def body(self, chunk):
        self.body_chunks += 1
        log(self.id, "body chunk", self.body_chunks, len(chunk))
        if self.action == "skip-body":
            log(self.id, "-> SKIP at BODY")
            return Milter.SKIP
        return Milter.CONTINUE

    @Milter.symlist("i", "{rcpt_addr}")
    def eom(self):
        log(self.id, "eom action=%s chunks=%d" % (self.action, self.body_chunks))
        if self.action == "discard-eom":
            log(self.id, "-> DISCARD at EOM")
            return Milter.DISCARD
        if self.action == "edit-all":
            # Every modification libmilter can send, in an order Postfix accepts:
            # all body replacement packets in one block (Postfix refuses other
            # requests between them), quarantine last.
            self.progress()                                              # p
            self.addheader("X-Capture-Added", "appended by capture-milter")  # h
            self.addheader("X-Capture-Inserted", "inserted at index 1", 1)   # i
            self.chgheader("Subject", 1, "subject changed by capture-milter")  # m
            self.chgheader("X-Delete-Me", 1, None)                        # m, empty value
            self.chgfrom("<changed-sender@example.com>", "BODY=8BITMIME")  # e
            self.addrcpt("<added@example.net>")                           # +
            self.addrcpt("<added-par@example.net>", "NOTIFY=NEVER")        # 2
            self.delrcpt("<carol@example.net>")                           # -
            self.replacebody(b"Body replaced by capture-milter.\r\n"
                             b"Second line.\r\n")                          # b
            self.quarantine("capture-milter quarantine test")             # q
            log(self.id, "-> all edits, then CONTINUE at EOM")
        return Milter.CONTINUE

    def abort(self):
        log(self.id, "abort")
        return Milter.CONTINUE

    def close(self):
        log(self.id, "close")
        return Milter.CONTINUE


def main():
    global LOG
    ap = argparse.ArgumentParser(description="scriptable test milter for capture-postfix")
    ap.add_argument("--socket", required=True, help="libmilter socket, e.g. inet:8890@127.0.0.1")
    ap.add_argument("--log", help="append what the milter saw and did to this file")
    ap.add_argument("--timeout", type=int, default=60, help="libmilter I/O timeout in seconds")
    args = ap.parse_args()
    if args.log:
        LOG = open(args.log, "a", encoding="utf-8", errors="backslashreplace")
    Milter.factory = CaptureMilter
    # Ask for every action (the default flags of the milter module are all of them).
    Milter.set_flags(Milter.CURR_ACTS)
    log("capture-milter starting on", args.socket, "pymilter", Milter.__version__,
        "libmilter", Milter.getversion())
    sys.stdout.flush()
    Milter.runmilter("capture-milter", args.socket, args.timeout)
    log("capture-milter stopped")


if __name__ == "__main__":
    main()
