#!/usr/bin/env python3
"""shadowd_protocol - shadowd against the pitfalls of the milter protocol notes.

The cases of shadowd_cases.py check the everyday flows. These check what
/work/shared/docs/milter-protocol.md section 8 ("Pitfalls") lists, and the
protocol behaviour around it: empty and odd SMFIC_MACRO packets, NO and NR
flags, macro requests and the two stage numberings, SMFIP_HDR_LEADSPC,
folded and 8-bit header values, body chunking and body replacement, several
messages, aborts, HELO and unknown commands on one connection, connection
level verdicts, discard where it is not allowed, multi-line reply codes,
QUIT_NC, the command line (--check, --probe), signals, overflow and
max_connections.

Each case checks three things: what the MTA side received (only
SMFIR_OPTNEG, SMFIR_CONTINUE, SMFIR_ACCEPT and SMFIR_PROGRESS, each reply
answering a command that was due one), what each child received (its own
log), and the event log's records. After each case shadowd's stderr must hold
no sanitizer report.

The harness (class Bed, test milters, the driver) comes from shadowd_cases.py;
the small helpers it lacks are here: more shadowd.conf keys, the driver's
script mode and background runs, a raw MTA for byte-exact packets, and a
tiny scripted child milter for replies libmilter never sends.

Runs inside tests/testbed/netns-run (private network, mount and PID
namespaces, only lo). Every wait is bounded; ports are found free at run
time; every process a case starts is killed when it ends.
Environment: SHADOWD, TEST_MILTER, DRIVER (paths of the built programs).
Prints TAP-like "ok N - name" lines and "N passed, N failed"; exits 1 if any
case failed. Arguments: names of cases to run (default: all).
"""

import hashlib
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from shadowd_cases import (  # noqa: E402 - the harness lives next to this file
    ALLOWED_TO_MTA, DRIVER, MESSAGE, MTA_TIMEOUT_MS, SHADOWD, WAIT_SECONDS, Bed, CaseFailure,
    check, free_port, read, wait_for)

# What shadowd's stderr must never hold (it runs under ASan and UBSan).
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

# SMFIP_NR_* bit of each command that gets a reply (listing names and letters).
NR_BITS = {
    "SMFIC_CONNECT": 0x1000, "SMFIC_HELO": 0x2000, "SMFIC_MAIL": 0x4000,
    "SMFIC_RCPT": 0x8000, "SMFIC_DATA": 0x10000, "SMFIC_UNKNOWN": 0x20000,
    "SMFIC_EOH": 0x40000, "SMFIC_BODY": 0x80000, "SMFIC_HEADER": 0x80,
    "SMFIC_BODYEOB": 0,
}
NR_LETTER = {b"C": "SMFIC_CONNECT", b"H": "SMFIC_HELO", b"M": "SMFIC_MAIL", b"R": "SMFIC_RCPT",
             b"T": "SMFIC_DATA", b"U": "SMFIC_UNKNOWN", b"N": "SMFIC_EOH", b"B": "SMFIC_BODY",
             b"L": "SMFIC_HEADER", b"E": "SMFIC_BODYEOB"}
NR_ALL = 0x1ff080
SMFIP_HDR_LEADSPC = 0x100000
SMFIF_SETSYMLIST = 0x100

# Events of a test milter that belong to the SMTP dialogue (not bookkeeping).
DIALOGUE = {"connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom", "unknown"}


# ---- driver listings --------------------------------------------------------


def check_listing(lines):
    """check_listing - the MTA side got only allowed replies, each for a command that was due one

    Walks the driver's packet listing: every reply but SMFIR_OPTNEG answers
    the oldest command still owed an answer under the negotiated NR bits;
    SMFIR_PROGRESS only while SMFIC_BODYEOB waits.
    """
    protocol = None
    owed = []
    for line in lines:
        parts = line.split()
        if len(parts) < 2 or parts[0] not in ("<", ">"):
            continue
        name = parts[1]
        if parts[0] == ">":
            if name in NR_BITS and protocol is not None:
                if name == "SMFIC_BODYEOB" or not protocol & NR_BITS[name]:
                    owed.append(name)
            continue
        check(name in ALLOWED_TO_MTA, "the MTA side received %s" % name)
        if name == "SMFIR_OPTNEG":
            check(protocol is None, "a second SMFIR_OPTNEG reached the MTA side")
            protocol = int(re.search(r"protocol=(0x[0-9a-f]+)", line).group(1), 16)
            continue
        check(owed, "the MTA side received %s when no answer was due: %s" % (name, line))
        if name == "SMFIR_PROGRESS":
            check(owed[0] == "SMFIC_BODYEOB", "SMFIR_PROGRESS in answer to %s" % owed[0])
            continue
        owed.pop(0)
    check(protocol is not None, "no SMFIR_OPTNEG reached the MTA side")
    check(not owed, "the MTA side got no answer to %s" % ", ".join(owed))


def optneg(lines):
    """optneg - (version, actions, protocol, {stage: [names]}) of shadowd's SMFIR_OPTNEG"""
    for line in lines:
        if line.startswith("< SMFIR_OPTNEG"):
            def get(k):
                return int(re.search(k + r"=(0x[0-9a-f]+|\d+)", line).group(1), 0)
            syms = {int(st): names.split() for st, names in
                    re.findall(r'stage=(\d+) "([^"]*)"', line)}
            return get("version"), get("actions"), get("protocol"), syms
    raise CaseFailure("no SMFIR_OPTNEG in the listing")


# ---- test milter logs ---------------------------------------------------------

LOG_LINE = re.compile(r"^(\S+) conn=(\d+) msg=(\d+) (\S+)(.*)$")
LOG_KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def unescape(v):
    """unescape - a quoted test milter value back to its bytes (as a latin-1 str)"""
    if not v.startswith('"'):
        return v
    v = v[1:-1]
    out, i = [], 0
    while i < len(v):
        ch = v[i]
        if ch == "\\" and i + 1 < len(v):
            n = v[i + 1]
            if n == "x":
                out.append(chr(int(v[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append({"r": "\r", "n": "\n", "t": "\t"}.get(n, n))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def child_log(log):
    """child_log - the events of a test milter log: dicts conn, msg, event, kv (bytes as latin-1)"""
    try:
        with open(log, "rb") as f:
            text = f.read().decode("latin-1")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        kv = {k: unescape(v) for k, v in LOG_KV.findall(m.group(5))}
        out.append({"conn": int(m.group(2)), "msg": int(m.group(3)), "event": m.group(4),
                    "kv": kv, "line": line})
    return out


def evs(log, event=None, conn=None, msg=None, **match):
    """evs - the events of a log, filtered by event name, conn, msg and key values"""
    out = []
    for e in child_log(log):
        if event is not None and e["event"] != event:
            continue
        if conn is not None and e["conn"] != conn:
            continue
        if msg is not None and e["msg"] != msg:
            continue
        if any(e["kv"].get(k) != v for k, v in match.items()):
            continue
        out.append(e)
    return out


def names(log, conn=None, msg=None):
    """names - the dialogue event names a test milter logged, in order

    With msg, only the message's own events: a test milter keeps counting a
    HELO or an unknown command after a message as part of that message.
    """
    keep = DIALOGUE if msg is None or msg == 0 else DIALOGUE - {"connect", "helo", "unknown"}
    return [e["event"] for e in evs(log, conn=conn, msg=msg) if e["event"] in keep]


def macro_seen(log, stage, name, conn=None, msg=None):
    """macro_seen - the value of macro name a test milter saw at stage, or None"""
    for e in evs(log, "macro", conn=conn, msg=msg, stage=stage, name=name):
        return e["kv"]["value"]
    return None


def headers_seen(log, conn=None, msg=None):
    """headers_seen - (name, value) of each header a test milter got, in order"""
    return [(e["kv"]["name"], e["kv"]["value"]) for e in evs(log, "header", conn=conn, msg=msg)]


def eom_of(log, conn=None, msg=None):
    """eom_of - the kv of the (only) eom event, failing if there is none"""
    e = evs(log, "eom", conn=conn, msg=msg)
    check(len(e) == 1, "%s: %d eom events for conn=%s msg=%s, want 1"
          % (os.path.basename(log), len(e), conn, msg))
    return e[0]["kv"]


def sha(data):
    """sha - hex SHA-256 of bytes"""
    return hashlib.sha256(data).hexdigest()


# ---- the bed ------------------------------------------------------------------


class PBed(Bed):
    """PBed - Bed with more shadowd.conf keys, scripts, background drivers and raw peers"""

    def __init__(self, name):
        super().__init__(name)
        self.errs = []
        self.shadowd_proc = None
        self.fakes = []
        self.nfile = 0

    def shadowd(self, reply="immediate", content="chained", timeouts=None, extra=None,
                wait_listen=True):
        """shadowd - write a config for the milters so far (plus extra [shadowd] keys), start it"""
        self.shadowd_port = free_port()
        self.conf = os.path.join(self.dir, "shadowd.conf")
        with open(self.conf, "w") as f:
            f.write("[shadowd]\nallow_root = true\nlisten = inet:%d@127.0.0.1\nevent_log = %s\n"
                    "reply = %s\ncontent = %s\nhost = tb\n"
                    % (self.shadowd_port, self.events, reply, content))
            for k, v in (extra or {}).items():
                f.write("%s = %s\n" % (k, v))
            for name, port, _ in self.milters:
                f.write("\n[milter %s]\nconnect = inet:%d@127.0.0.1\n" % (name, port))
                for k, v in (timeouts or {}).get(name, {}).items():
                    f.write("%s = %s\n" % (k, v))
        err = os.path.join(self.dir, "shadowd%s.err" % (len(self.errs) or ""))
        self.errs.append(err)
        p = subprocess.Popen([SHADOWD, "-c", self.conf, "-f"], stdout=subprocess.DEVNULL,
                             stderr=open(err, "w"))
        self.procs.append(p)
        self.shadowd_proc = p
        if wait_listen:
            wait_for(lambda: "listening on" in read(err) or p.poll() is not None,
                     "shadowd listening")
            check(p.poll() is None, "shadowd exited %s: %s" % (p.returncode, read(err)))
        return err

    def fake(self, name, replies=None, protocol=0, actions=0):
        """fake - a scripted child milter (FakeChild) in this process"""
        f = FakeChild(name, replies or {}, protocol, actions, os.path.join(self.dir, name + ".log"))
        self.fakes.append(f)
        self.milters.append((name, f.port, f.log))
        return f

    def file(self, content, name=None):
        """file - write str or bytes content to a new file of the case; its path"""
        self.nfile += 1
        path = os.path.join(self.dir, name or "file%d" % self.nfile)
        with open(path, "wb") as f:
            f.write(content.encode("latin-1") if isinstance(content, str) else content)
        return path

    def driver_cmd(self, args, files, timeout_ms, eom_timeout_ms):
        """driver_cmd - the driver's command line"""
        return [DRIVER, "--connect", "inet:%d@127.0.0.1" % self.shadowd_port,
                "--timeout", str(timeout_ms),
                "--eom-timeout", str(eom_timeout_ms or timeout_ms)] + list(args) + list(files)

    def driver(self, *args, files=(), timeout_ms=MTA_TIMEOUT_MS, eom_timeout_ms=None):
        """driver - run the driver to the end; check the MTA side; its listing lines"""
        cmd = self.driver_cmd(args, files, timeout_ms, eom_timeout_ms)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT_SECONDS * 4,
                           errors="replace")
        check(r.returncode == 0, "driver exited %d: %s" % (r.returncode, r.stderr.strip()))
        lines = r.stdout.splitlines()
        check_listing(lines)
        return lines

    def driver_bg(self, *args, files=(), timeout_ms=MTA_TIMEOUT_MS, eom_timeout_ms=None):
        """driver_bg - start the driver in the background; finish it with driver_end()"""
        self.nfile += 1
        out = os.path.join(self.dir, "driver%d.out" % self.nfile)
        p = subprocess.Popen(self.driver_cmd(args, files, timeout_ms, eom_timeout_ms),
                             stdout=open(out, "w"), stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p, out

    def driver_end(self, bg):
        """driver_end - wait (bounded) for a background driver; check it like driver()"""
        p, out = bg
        try:
            p.wait(timeout=WAIT_SECONDS * 4)
        except subprocess.TimeoutExpired:
            raise CaseFailure("background driver still running after %ss" % (WAIT_SECONDS * 4))
        lines = read(out).splitlines()
        check(p.returncode == 0, "driver exited %d: %s" % (p.returncode, lines[-3:]))
        check_listing(lines)
        return lines

    def script(self, text, *args, **kw):
        """script - run a driver script (one step per line)"""
        return self.driver("--script", self.file(text, "script%d" % (self.nfile + 1)), *args, **kw)

    def message_files(self, *texts):
        """message_files - write messages (str or bytes) to .eml files"""
        return [self.file(t, "msg%d.eml" % (self.nfile + 1)) for t in texts]

    def raw_mta(self, **kw):
        """raw_mta - a RawMTA connected to shadowd"""
        return RawMTA(self.shadowd_port, **kw)

    def all_records(self, path=None):
        """all_records - every record of an event log file now; every line must be JSON in UTF-8"""
        try:
            with open(path or self.events, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for n, raw in enumerate(data.split(b"\n"), 1):
            if not raw:
                continue
            try:
                out.append(json.loads(raw.decode("utf-8")))
            except (UnicodeDecodeError, ValueError) as e:
                raise CaseFailure("event log line %d is not JSON in UTF-8 (%s): %r" % (n, e, raw))
        return out

    def raw_lines(self, path=None):
        """raw_lines - the event log's lines as bytes"""
        with open(path or self.events, "rb") as f:
            return f.read().split(b"\n")

    def records(self, want_messages):
        """records - the event log once it holds want_messages message records"""
        return wait_for(lambda: (lambda r: r if sum(x["type"] == "message" for x in r)
                                 >= want_messages else None)(self.all_records()),
                        "%d message records in the event log" % want_messages)

    def closed(self, want):
        """closed - the event log once it holds want connection close records"""
        return wait_for(lambda: (lambda r: r if sum(x["type"] == "connection" and
                                                    x["event"] == "close" for x in r)
                                 >= want else None)(self.all_records()),
                        "%d connection close records" % want)

    def settle(self):
        """settle - give shadowd a bounded moment to close what it opened (no failure)"""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                r = self.all_records()
            except CaseFailure:
                return
            opened = sum(x["type"] == "connection" and x["event"] == "open" for x in r)
            closed = sum(x["type"] == "connection" and x["event"] == "close" for x in r)
            if closed >= opened:
                time.sleep(0.1)
                return
            time.sleep(0.05)

    def sanitizer_reports(self):
        """sanitizer_reports - sanitizer lines in every shadowd stderr of the case"""
        bad = []
        for err in self.errs:
            for line in read(err).splitlines():
                if any(m in line for m in SANITIZER_MARKS):
                    bad.append("%s: %s" % (os.path.basename(err), line.strip()))
        return bad

    def stop(self):
        """stop - kill every process and thread of the case"""
        for f in self.fakes:
            f.stop()
        super().stop()


def by_type(recs, t, **match):
    """by_type - the records of a type whose fields equal match"""
    return [r for r in recs if r["type"] == t and all(r.get(k) == v for k, v in match.items())]


def messages(recs):
    """messages - the message records in log order"""
    return by_type(recs, "message")


def verdicts_of(recs, msg_id):
    """verdicts_of - milter -> verdict record of a message id"""
    return {r["milter"]: r for r in by_type(recs, "verdict", msg=msg_id)}


def check_verdict(v, name, action, stage=None, **fields):
    """check_verdict - a verdict record has this action (stage, fields)"""
    check(v is not None, "%s: no verdict record" % name)
    check(v["action"] == action, "%s: action %s (stage %s, reason %r), want %s"
          % (name, v["action"], v["stage"], v["reason"], action))
    if stage is not None:
        check(v["stage"] == stage, "%s: stage %s, want %s" % (name, v["stage"], stage))
    for k, want in fields.items():
        check(v.get(k) == want, "%s: %s = %r, want %r" % (name, k, v.get(k), want))


def shadowd_err(bed):
    """shadowd_err - the text of the case's last shadowd stderr"""
    return read(bed.errs[-1])


# ---- a raw MTA ----------------------------------------------------------------


def packet(cmd, data=b""):
    """packet - one milter packet"""
    return struct.pack(">I", len(data) + 1) + cmd + data


def macro_data(letter, pairs):
    """macro_data - SMFIC_MACRO data: the command letter, then name/value pairs"""
    return letter + b"".join(n + b"\0" + v + b"\0" for n, v in pairs)


class RawMTA:
    """RawMTA - the MTA side byte by byte: waits for exactly the replies that are due"""

    def __init__(self, port, timeout=8.0):
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.protocol = 0
        self.replies = []  # (reply code, data, the command it answered or None)

    def _read_exact(self, n, timeout):
        buf = b""
        deadline = time.monotonic() + timeout
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("read timed out")
            self.sock.settimeout(left)
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def read_packet(self, timeout=None):
        """read_packet - (code, data), or None at EOF"""
        head = self._read_exact(4, timeout or self.timeout)
        if head is None:
            return None
        (length,) = struct.unpack(">I", head)
        check(1 <= length <= 1 << 20, "the MTA side read a packet length %d" % length)
        body = self._read_exact(length, timeout or self.timeout)
        check(body is not None, "shadowd closed mid-packet")
        return body[:1], body[1:]

    def send(self, cmd, data=b""):
        """send - one packet"""
        self.sock.sendall(packet(cmd, data))

    def optneg(self, version=6, actions=0x1ff, protocol=0x1fffff):
        """optneg - offer and read shadowd's answer: (version, actions, protocol)"""
        self.send(b"O", struct.pack(">III", version, actions, protocol))
        p = self.read_packet()
        check(p is not None and p[0] == b"O", "shadowd answered SMFIC_OPTNEG with %r" % (p,))
        v, a, pr = struct.unpack(">III", p[1][:12])
        self.protocol = pr
        self.replies.append((b"O", p[1], b"O"))
        return v, a, pr

    def command(self, cmd, data=b""):
        """command - send; if a reply is due, read it (progress too); the final code or None"""
        self.send(cmd, data)
        name = NR_LETTER.get(cmd)
        if name is None or (name != "SMFIC_BODYEOB" and self.protocol & NR_BITS[name]):
            return None
        while True:
            p = self.read_packet()
            check(p is not None, "shadowd closed instead of answering %s" % name)
            self.replies.append((p[0], p[1], cmd))
            check(p[0] in (b"c", b"a", b"p"), "the MTA side received %r in answer to %s"
                  % (p[0], name))
            if p[0] == b"p":
                check(cmd == b"E", "SMFIR_PROGRESS in answer to %s" % name)
                continue
            return p[0]

    def macro(self, letter, pairs):
        """macro - an SMFIC_MACRO (no reply)"""
        self.send(b"D", macro_data(letter, pairs))

    def no_strays(self, seconds=0.5):
        """no_strays - nothing arrives that was not asked for"""
        r, _, _ = select.select([self.sock], [], [], seconds)
        if r:
            p = self.read_packet(timeout=1)
            check(p is None, "the MTA side received an unasked-for %r" % (p,))

    def quit(self):
        """quit - SMFIC_QUIT, then nothing more may arrive before shadowd closes"""
        self.send(b"Q")
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                p = self.read_packet(timeout=max(0.1, deadline - time.monotonic()))
            except (socket.timeout, ConnectionResetError):
                break
            if p is None:
                break
            raise CaseFailure("the MTA side received %r after SMFIC_QUIT" % (p,))
        self.sock.close()

    def close(self):
        """close - drop the connection without QUIT"""
        self.sock.close()


# ---- a scripted child ---------------------------------------------------------


class FakeChild:
    """FakeChild - a child milter speaking raw packets: replies per command letter

    replies maps a command letter (b"M") to the list of reply packets (whole
    packets, see packet()) sent for it; commands that need a reply and are not
    listed get SMFIR_CONTINUE. It logs each command it receives to self.got
    and to its log file. Sessions are served one after another.
    """

    def __init__(self, name, replies, protocol, actions, log):
        self.name = name
        self.replies = replies
        self.protocol = protocol
        self.actions = actions
        self.log = log
        self.got = []
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _note(self, what):
        self.got.append(what)
        with open(self.log, "a") as f:
            f.write("%s %r\n" % (self.name, what))

    def _run(self):
        while not self.stopping:
            try:
                s, _ = self.srv.accept()
            except (socket.timeout, OSError):
                continue
            try:
                self._session(s)
            except (OSError, struct.error):
                pass
            finally:
                s.close()
                self._note((b"closed", b""))

    def _session(self, s):
        s.settimeout(0.2)
        buf = b""
        while not self.stopping:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 4:
                (length,) = struct.unpack(">I", buf[:4])
                if len(buf) < 4 + length:
                    break
                cmd, data = buf[4:5], buf[5:4 + length]
                buf = buf[4 + length:]
                self._note((cmd, data))
                if cmd == b"O":
                    s.sendall(packet(b"O", struct.pack(">III", 6, self.actions, self.protocol)))
                elif cmd == b"Q":
                    return
                elif cmd in NR_LETTER:
                    for p in self.replies.get(cmd, [packet(b"c")]):
                        s.sendall(p)

    def cmds(self):
        """cmds - the command letters received, in order"""
        return [c for c, _ in self.got]

    def stop(self):
        """stop - end the thread (bounded)"""
        self.stopping = True
        self.thread.join(timeout=2)
        self.srv.close()


# ---- (1) macros: empty, odd and per-command SMFIC_MACRO ---------------------------

def raw_session_with_macros(bed, qid):
    """raw_session_with_macros - one message with a D before every command, as Postfix sends them"""
    mta = bed.raw_mta()
    mta.optneg()
    mta.macro(b"C", [(b"j", b"mx.tb.test"), (b"{daemon_name}", b"mx"), (b"_", b"c [127.0.0.1]"),
                     (b"{client_ptr}", b"")])
    mta.command(b"C", b"[127.0.0.1]\0" + b"4" + struct.pack(">H", 2525) + b"127.0.0.1\0")
    mta.macro(b"H", [])  # Postfix: an empty list is still sent
    mta.command(b"H", b"client.tb.test\0")
    mta.macro(b"U", [])
    mta.command(b"U", b"NOOP\0")
    mta.macro(b"M", [(b"{mail_addr}", b""), (b"{mail_mailer}", b"smtp")])
    mta.command(b"M", b"<>\0")
    mta.macro(b"R", [(b"i", qid), (b"{rcpt_addr}", b"bob@example.net")])
    mta.command(b"R", b"<bob@example.net>\0")
    mta.macro(b"T", [(b"i", qid)])
    mta.command(b"T")
    for name, value in ((b"From", b"<>"), (b"Subject", b"macros"),
                        (b"Message-ID", b"<" + qid + b"@tb.test>")):
        mta.macro(b"L", [(b"i", qid)])
        mta.command(b"L", name + b"\0" + value + b"\0")
    mta.macro(b"N", [(b"i", qid)])
    mta.command(b"N")
    for chunk in (b"first chunk\r\n", b"second chunk\r\n"):
        mta.macro(b"B", [(b"i", qid)])
        mta.command(b"B", chunk)
    mta.macro(b"E", [(b"i", qid), (b"{msg_id}", b"<" + qid + b"@tb.test>")])
    code = mta.command(b"E")
    check(code == b"c", "end of message answered %r" % code)
    mta.send(b"A")
    mta.send(b"A")  # Postfix sometimes sends two (pitfall 6)
    mta.macro(b"M", [])  # an empty D before the next MAIL
    return mta


def case_macros(bed, reply, content):
    """(1) D before every command, empty D and values: children get each command and its macros"""
    a = bed.milter("a")
    b = bed.milter("b", "--macro", "{client_ptr}")
    bed.shadowd(reply=reply, content=content)
    mta = raw_session_with_macros(bed, b"QID1")
    mta.command(b"M", b"<alice@example.com>\0")
    mta.macro(b"R", [(b"i", b"QID2")])
    mta.command(b"R", b"<carol@example.net>\0")
    mta.macro(b"T", [(b"i", b"QID2")])
    mta.command(b"T")
    mta.macro(b"N", [(b"i", b"QID2")])
    mta.command(b"N")
    mta.macro(b"E", [(b"i", b"QID2")])
    mta.command(b"E")
    mta.send(b"A")
    mta.no_strays()
    mta.quit()
    recs = bed.records(2)
    # Content is replayed from shadowd's copy in both modes, re-chunked as Postfix chunks
    # (up to 65535 bytes): the two small chunks arrive as one.
    want = ["connect", "helo", "unknown", "mail", "rcpt", "data", "header", "header", "header",
            "eoh", "body", "eom"]
    for log in (a, b):
        n = os.path.basename(log)
        check(names(log, conn=1, msg=0) + names(log, conn=1, msg=1) == want,
              "%s got %s, want %s" % (n, names(log, conn=1, msg=0) + names(log, conn=1, msg=1),
                                      want))
        check(names(log, conn=1, msg=2) == ["mail", "rcpt", "data", "eoh", "eom"],
              "%s, message 2: %s" % (n, names(log, conn=1, msg=2)))
        for stage, name, value in (
                ("connect", "j", "mx.tb.test"), ("connect", "_", "c [127.0.0.1]"),
                ("mail", "{mail_addr}", ""), ("mail", "{mail_mailer}", "smtp"),
                ("rcpt", "{rcpt_addr}", "bob@example.net"), ("rcpt", "i", "QID1"),
                ("data", "i", "QID1"), ("eoh", "i", "QID1"), ("eom", "i", "QID1"),
                ("eom", "{msg_id}", "<QID1@tb.test>"), ("eom", "j", "mx.tb.test")):
            got = macro_seen(log, stage, name, conn=1)
            check(got == value, "%s saw %s=%r at %s, want %r" % (n, name, got, stage, value))
        check(macro_seen(log, "rcpt", "i", msg=2) == "QID2",
              "%s: message 2 i=%r at rcpt" % (n, macro_seen(log, "rcpt", "i", msg=2)))
        check(macro_seen(log, "eom", "i", msg=2) == "QID2",
              "%s: message 2 i=%r at eom" % (n, macro_seen(log, "eom", "i", msg=2)))
        check(evs(log, "unknown", cmd="NOOP"), "%s did not get the unknown command" % n)
        check(eom_of(log, msg=1)["body_sha256"] == sha(b"first chunk\r\nsecond chunk\r\n"),
              "%s got another body" % n)
    check(macro_seen(b, "connect", "{client_ptr}") == "",
          "b saw {client_ptr}=%r, want the empty value" % macro_seen(b, "connect", "{client_ptr}"))
    m1, m2 = messages(recs)[:2]
    check(m1["from"] == "<>" and m1["rcpts"] == ["<bob@example.net>"],
          "message 1: from %r rcpts %r" % (m1["from"], m1["rcpts"]))
    check(m1["queue_id"] == "QID1" and m2["queue_id"] == "QID2",
          "queue ids %r %r, want QID1 QID2 (macro i)" % (m1["queue_id"], m2["queue_id"]))
    check(m1["message_id"] == "<QID1@tb.test>", "message_id %r" % m1["message_id"])
    check(m1["size"] == len("first chunk\r\nsecond chunk\r\n") + sum(
        len(n) + len(v) + 3 for n, v in (("From", "<>"), ("Subject", "macros"),
                                         ("Message-ID", "<QID1@tb.test>"))),
          "message 1 size %s" % m1["size"])
    for m in (m1, m2):
        check(m["mta"] == "ended" and m["outcome"] == "delivered", "%s: %s %s"
              % (m["msg"], m["mta"], m["outcome"]))
        for name, v in verdicts_of(recs, m["msg"]).items():
            check_verdict(v, name, "continue", "eom")
    conn = by_type(recs, "connection", event="open")[0]
    check(conn["client_port"] == "2525" and conn["client_addr"] == "127.0.0.1",
          "connection open %s" % conn)


# ---- (2) NO and NR flags --------------------------------------------------------


def case_no_nr(bed, reply, content):
    """(2) --no header gets no headers but eom; --nr rcpt is never waited for"""
    a = bed.milter("a", "--no", "header")
    b = bed.milter("b", "--nr", "rcpt")
    c = bed.milter("c", "--no", "rcpt,body", "--nr", "header,eoh")
    bed.shadowd(reply=reply, content=content, timeouts={"b": {"command_timeout": "5s"}})
    # The MTA's patience is shorter than b's command_timeout: shadowd must not wait on b.
    lines = bed.driver("--rcpt", "<bob@example.net>", "--rcpt", "<carol@example.net>",
                       files=bed.message_files(MESSAGE.format(n=1)), timeout_ms=3000)
    recs = bed.records(1)
    m = messages(recs)[0]
    v = verdicts_of(recs, m["msg"])
    check("header" not in names(a), "a (SMFIP_NOHDRS) got headers: %s" % names(a))
    ea = eom_of(a, msg=1)
    check(ea["headers"] == "0" and ea["body_len"] == "37", "a's eom %s" % ea)
    check(names(b).count("rcpt") == 2, "b got %d RCPTs" % names(b).count("rcpt"))
    check(len(evs(b, "reply", stage="rcpt", verdict="noreply")) == 2, "b replied to RCPT")
    eom_of(b, msg=1)
    check("rcpt" not in names(c) and "body" not in names(c),
          "c (NORCPT, NOBODY) got %s" % names(c))
    ec = eom_of(c, msg=1)
    check(ec["headers"] == "4" and ec["body_len"] == "0", "c's eom %s" % ec)
    for name in "abc":
        check_verdict(v.get(name), name, "continue", "eom", reason=None)
    check(m["unknown"] == [] and m["outcome"] == "delivered", "message %s %s"
          % (m["unknown"], m["outcome"]))
    if reply == "wait":
        # Every command got its own answer (check_listing), two of them for RCPT.
        check(sum(l.startswith("> SMFIC_RCPT") for l in lines) == 2, "RCPTs not sent")


# ---- (3) macro requests ---------------------------------------------------------


def case_symlist(bed):
    """(3) symlists: shadowd asks the MTA for the children's macros plus the defaults, per stage"""
    a = bed.milter("a", "--symlist", "mail:{auth_type} {mail_addr} j")
    b = bed.milter("b", "--symlist", "eoh:{eoh_only}", "--symlist", "eom:{eom_only}")
    bed.shadowd()
    lines = bed.driver("--auth", "alice", "--macro", "eoh:{eoh_only}=H1",
                       "--macro", "eom:{eom_only}=E1",
                       files=bed.message_files(MESSAGE.format(n=1)))
    recs = bed.records(1)
    version, actions, protocol, syms = optneg(lines)
    check(actions & SMFIF_SETSYMLIST, "SMFIF_SETSYMLIST not asked for: actions 0x%x" % actions)
    mail = syms.get(2, [])
    for n in ("{auth_type}", "{mail_addr}", "j", "i", "{auth_authen}", "{auth_author}",
              "{mail_host}", "{mail_mailer}"):
        check(n in mail, "stage 2 (envfrom) macro list %s lacks %s" % (mail, n))
    # Wire numbering: 5 is end of message, 6 end of header (pitfall 15).
    check("{eom_only}" in syms.get(5, []) and "{eoh_only}" not in syms.get(5, []),
          "stage 5 (eom) list %s" % syms.get(5))
    check("{eoh_only}" in syms.get(6, []) and "{eom_only}" not in syms.get(6, []),
          "stage 6 (eoh) list %s" % syms.get(6))
    check("i" in syms.get(5, []) and "i" in syms.get(6, []),
          "the MTA's default i is missing from eom/eoh lists %s" % syms)
    for name, value in (("{auth_type}", "PLAIN"), ("{mail_addr}", "sender@example.org"),
                        ("j", "localhost"), ("{auth_authen}", "alice")):
        got = macro_seen(a, "mail", name)
        check(got == value, "a saw %s=%r at mail, want %r" % (name, got, value))
    check(macro_seen(b, "eoh", "{eoh_only}") == "H1", "b saw {eoh_only}=%r at eoh"
          % macro_seen(b, "eoh", "{eoh_only}"))
    check(macro_seen(b, "eom", "{eom_only}") == "E1", "b saw {eom_only}=%r at eom"
          % macro_seen(b, "eom", "{eom_only}"))
    m = messages(recs)[0]
    check(m["auth"] == "alice", "auth %r" % m["auth"])
    for name, v in verdicts_of(recs, m["msg"]).items():
        check_verdict(v, name, "continue", "eom")


# ---- (4) HDR_LEADSPC ------------------------------------------------------------


def case_leadspace_chained(bed):
    """(4) leading space: each child sees values in its own form; edits converted both ways"""
    a = bed.milter("a", "--leadspace", "--add-header", "X-A: from a")
    b = bed.milter("b", "--add-header", "X-B:from b")
    c = bed.milter("c", "--leadspace")
    bed.shadowd(content="chained")
    lines = bed.driver(files=bed.message_files(MESSAGE.format(n=1)))
    recs = bed.records(1)
    _, _, protocol, _ = optneg(lines)
    check(protocol & SMFIP_HDR_LEADSPC, "shadowd did not ask the MTA for SMFIP_HDR_LEADSPC")
    check(any(l.startswith('> SMFIC_HEADER "Subject" " quarterly report"') for l in lines),
          "the driver did not send the leading space")
    ha, hb, hc = dict(headers_seen(a)), dict(headers_seen(b)), dict(headers_seen(c))
    check(ha.get("Subject") == " quarterly report", "a (leadspace) saw %r" % ha.get("Subject"))
    check(hb.get("Subject") == "quarterly report", "b saw %r" % hb.get("Subject"))
    check(hb.get("X-A") == "from a", "b saw X-A %r, want 'from a'" % hb.get("X-A"))
    check(hc.get("Subject") == " quarterly report", "c (leadspace) saw %r" % hc.get("Subject"))
    check(hc.get("X-A") == " from a", "c (leadspace) saw X-A %r" % hc.get("X-A"))
    check(hc.get("X-B") == " from b",
          "c (leadspace) saw b's X-B as %r, want ' from b' (space added for the MTA)"
          % hc.get("X-B"))
    m = messages(recs)[0]
    check([e["name"] for e in m["edits"]] == ["X-A", "X-B"], "edits %s" % m["edits"])


def case_leadspace_independent(bed):
    """(4) leading space, independent content: a with, b without"""
    a = bed.milter("a", "--leadspace")
    b = bed.milter("b")
    bed.shadowd(content="independent")
    lines = bed.driver(files=bed.message_files(MESSAGE.format(n=1)))
    recs = bed.records(1)
    check(optneg(lines)[2] & SMFIP_HDR_LEADSPC, "SMFIP_HDR_LEADSPC not asked for")
    ha, hb = headers_seen(a), headers_seen(b)
    check([v for _, v in ha] == [" Alice <alice@example.com>", " Bob <bob@example.net>",
                                 " quarterly report", " <case-1@example.com>"],
          "a (leadspace) saw %s" % ha)
    check([v for _, v in hb] == ["Alice <alice@example.com>", "Bob <bob@example.net>",
                                 "quarterly report", "<case-1@example.com>"], "b saw %s" % hb)
    check(messages(recs)[0]["message_id"] == "<case-1@example.com>",
          "message_id %r" % messages(recs)[0]["message_id"])


# ---- (5) folded and 8-bit header values -----------------------------------------

EIGHT_BIT = (b"From: Alice <alice@example.com>\r\n"
             b"To: Bob <bob@example.net>\r\n"
             b"Subject: first line\r\n"
             b"\tsecond line\r\n"
             b"  third line\r\n"
             b"X-Latin1: caf\xe9 cr\xe8me\r\n"
             b"X-Utf8: caf\xc3\xa9\r\n"
             b"Message-ID: <caf\xe9-\xc3\xa9@example.com>\r\n"
             b"\r\n"
             b"body\r\n")


def case_folded_8bit(bed, content):
    """(5) folded values keep their bare LF; 8-bit bytes reach children and the JSON intact"""
    # test-milter takes UTF-8 arguments only: the 8-bit edit comes from a scripted child.
    bed.fake("f", {b"E": [packet(b"h", b"X-Tag\0caf\xe9\0"), packet(b"c")]}, actions=0x1)
    a = bed.milter("a")
    b = bed.milter("b")
    bed.shadowd(content=content)
    lines = bed.driver(files=bed.message_files(EIGHT_BIT))
    recs = bed.records(1)  # every line must be valid UTF-8 JSON (all_records)
    check(any("first line\\n\\tsecond line\\n  third line" in l for l in lines),
          "the driver did not send the folded Subject with bare LF")
    for log in (a, b):
        h = dict(headers_seen(log))
        n = os.path.basename(log)
        check(h.get("Subject") == "first line\n\tsecond line\n  third line",
              "%s saw Subject %r" % (n, h.get("Subject")))
        check(h.get("X-Latin1") == "caf\xe9 cr\xe8me",
              "%s saw X-Latin1 %r" % (n, h.get("X-Latin1")))
        check(h.get("X-Utf8") == "caf\xc3\xa9", "%s saw X-Utf8 %r" % (n, h.get("X-Utf8")))
        check(h.get("Message-ID") == "<caf\xe9-\xc3\xa9@example.com>",
              "%s saw Message-ID %r" % (n, h.get("Message-ID")))
    if content == "chained":
        for log in (a, b):
            check(dict(headers_seen(log)).get("X-Tag") == "caf\xe9",
                  "%s saw f's X-Tag as %r" % (os.path.basename(log),
                                              dict(headers_seen(log)).get("X-Tag")))
    m = messages(recs)[0]
    check(m["message_id"] == "<caf\u00e9-\u00e9@example.com>", "message_id %r" % m["message_id"])
    raw = [l for l in bed.raw_lines() if b'"type":"message"' in l][0]
    check(re.search(rb'"message_id":"<caf\\u00[eE]9-(\xc3\xa9|\\u00[eE]9)@example\.com>"', raw),
          "message_id in the JSON: %r" % re.search(rb'"message_id":"[^"]*"', raw).group(0))
    vraw = [l for l in bed.raw_lines() if b'"type":"verdict"' in l and b'"milter":"f"' in l][0]
    check(re.search(rb'"value":"caf\\u00[eE]9"', vraw), "f's X-Tag edit in the JSON: %r" % vraw)


# ---- (6) body chunks and replacement --------------------------------------------


def body_lens(log, msg=1):
    """body_lens - the length of each body chunk a test milter got"""
    return [int(e["kv"]["len"]) for e in evs(log, "body", msg=msg)]


def case_body_replace(bed):
    """(6) a 140000-byte body reaches a child in chunks <= 65535; b sees a's replacement"""
    a = bed.milter("a", "--replace-body", "replaced by a\n")
    b = bed.milter("b")
    c = bed.milter("c")
    bed.shadowd(content="chained", extra={"spool_memory": "64k", "spool_dir": bed.dir})
    lines = bed.driver("--generate-body", "140000")
    recs = bed.records(1)
    sent = [l for l in lines if l.startswith("> SMFIC_BODY ")]
    check(len(sent) == 3, "the driver sent %d body chunks" % len(sent))
    la = body_lens(a)
    check(sum(la) == 140000 and max(la) <= 65535, "a got chunks %s" % la)
    check(eom_of(a)["body_len"] == "140000", "a's eom %s" % eom_of(a))
    new = b"replaced by a\r\n"
    for log in (b, c):
        e = eom_of(log)
        check(e["body_len"] == str(len(new)) and e["body_sha256"] == sha(new),
              "%s saw body_len=%s sha=%s, not a's replacement" % (os.path.basename(log),
                                                                  e["body_len"], e["body_sha256"]))
    m = messages(recs)[0]
    v = verdicts_of(recs, m["msg"])
    check(v["a"]["edits"] == [{"op": "replace_body", "size": len(new)}], "a's edits %s"
          % v["a"]["edits"])
    check(m["edits"] == [{"milter": "a", "op": "replace_body", "size": len(new)}],
          "message edits %s" % m["edits"])
    check(m["size"] > 140000, "message size %s" % m["size"])


def case_body_replace_big(bed):
    """(6, pitfall 11) a 100000-byte replacement is split at 65535 for the next child"""
    body = b"".join(b"%06d" % i + b"x" * 72 + b"\r\n" for i in range(1250))
    a = bed.milter("a", "--replace-body-file", bed.file(body, "newbody"))
    b = bed.milter("b")
    bed.shadowd(content="chained")
    bed.driver("--generate-body", "1000")
    recs = bed.records(1)
    lb = body_lens(b)
    check(lb == [65535, len(body) - 65535], "b got chunks %s" % lb)
    e = eom_of(b)
    check(e["body_sha256"] == sha(body), "b's body is not a's replacement: %s" % e)
    check(eom_of(a)["body_len"] == "1000", "a's eom %s" % eom_of(a))
    v = verdicts_of(recs, messages(recs)[0]["msg"])
    check(v["a"]["edits"] == [{"op": "replace_body", "size": len(body)}], "a's edits %s"
          % v["a"]["edits"])


def case_body_replace_spooled(bed):
    """(6) spool_memory_total = 0: the message and a's replacement body go to spool files
    (made and unlinked in spool_dir, so its mtime moves), though both are far below
    spool_memory, and b still gets exactly the replacement; no spool file is left"""
    body = b"".join(b"%06d" % i + b"y" * 72 + b"\r\n" for i in range(1250))
    a = bed.milter("a", "--replace-body-file", bed.file(body, "newbody"))
    b = bed.milter("b")
    spool = os.path.join(bed.dir, "spool")
    os.mkdir(spool)
    os.utime(spool, ns=(0, 0))
    bed.shadowd(content="chained", extra={"spool_memory_total": "0", "spool_dir": spool})
    bed.driver("--generate-body", "5000")
    recs = bed.records(1)
    e = eom_of(b)
    check(e["body_sha256"] == sha(body), "b's body is not a's spooled replacement: %s" % e)
    check(eom_of(a)["body_len"] == "5000", "a's eom %s" % eom_of(a))
    v = verdicts_of(recs, messages(recs)[0]["msg"])
    check(v["a"]["edits"] == [{"op": "replace_body", "size": len(body)}], "a's edits %s"
          % v["a"]["edits"])
    check(os.stat(spool).st_mtime_ns != 0, "no spool file was made in %s" % spool)
    check(os.listdir(spool) == [], "spool files left behind: %s" % os.listdir(spool))


def case_body_replace_empty(bed):
    """(pitfall 11) an empty replacement body: the next child gets no body at all"""
    bed.milter("a", "--replace-body", "")
    b = bed.milter("b")
    bed.shadowd(content="chained")
    bed.driver(files=bed.message_files(MESSAGE.format(n=1)))
    recs = bed.records(1)
    e = eom_of(b)
    check(e["body_len"] == "0", "b got body_len=%s after a emptied the body" % e["body_len"])
    v = verdicts_of(recs, messages(recs)[0]["msg"])
    check(v["a"]["edits"] == [{"op": "replace_body", "size": 0}], "a's edits %s" % v["a"]["edits"])


def case_body_independent(bed):
    """(6) independent: every child gets the MTA's chunks unchanged"""
    a = bed.milter("a", "--replace-body", "ignored\n")
    b = bed.milter("b")
    bed.shadowd(content="independent")
    lines = bed.driver("--generate-body", "140000")
    bed.records(1)
    sent = [int(re.search(r"len=(\d+)", l).group(1)) if "len=" in l else None
            for l in lines if l.startswith("> SMFIC_BODY ")]
    la, lb = body_lens(a), body_lens(b)
    check(sum(la) == 140000 and max(la) <= 65535, "a got chunks %s" % la)
    check(la == lb, "a got %s, b got %s" % (la, lb))
    if all(s is not None for s in sent):
        check(la == sent, "children got chunks %s, the MTA sent %s" % (la, sent))
    check(eom_of(a)["body_sha256"] == eom_of(b)["body_sha256"], "a and b saw different bodies")


def case_body_skip(bed, content):
    """(6) SMFIR_SKIP at the first body chunk: no more chunks for that child, but its eom"""
    a = bed.milter("a", "--action", "body:skip")
    b = bed.milter("b")
    bed.shadowd(content=content)
    lines = bed.driver("--generate-body", "140000")
    recs = bed.records(1)
    check(len(body_lens(a)) == 1, "a got %d body chunks after skipping at the first"
          % len(body_lens(a)))
    check(eom_of(a)["body_len"] == "65535", "a's eom %s" % eom_of(a))
    check(sum(body_lens(b)) == 140000, "b got chunks %s" % body_lens(b))
    v = verdicts_of(recs, messages(recs)[0]["msg"])
    check_verdict(v["a"], "a", "continue", "eom")
    check_verdict(v["b"], "b", "continue", "eom")
    check(not any(l.startswith("< SMFIR_SKIP") for l in lines), "SMFIR_SKIP reached the MTA")


def case_abort_in_content(bed, content):
    """(7) ABORT between headers: the message is aborted, the next one is whole"""
    a = bed.milter("a")
    b = bed.milter("b")
    bed.shadowd(content=content)
    bed.script("connect\nhelo client.example.org\nmail <a1@example.com>\nrcpt <b1@example.net>\n"
               "data\nheader Subject: cut\nheader Message-ID: <cut@example.com>\nabort\n"
               "mail <a2@example.com>\nrcpt <b2@example.net>\ndata\nheader Subject: whole\n"
               "header Message-ID: <whole@example.com>\neoh\nbody whole\\r\\n\neom\n"
               "expect continue\nabort\nquit\n")
    recs = bed.records(2)
    m1, m2 = messages(recs)[:2]
    check(m1["mta"] == "aborted" and m1["message_id"] == "<cut@example.com>",
          "message 1: %s %s" % (m1["mta"], m1["message_id"]))
    check(m2["mta"] == "ended" and m2["message_id"] == "<whole@example.com>",
          "message 2: %s %s" % (m2["mta"], m2["message_id"]))
    for m in (m1, m2):
        for name, v in verdicts_of(recs, m["msg"]).items():
            check(v["action"] == "continue", "%s (%s): %s %s" % (name, m["msg"], v["action"],
                                                                 v["reason"]))
    for log in (a, b):
        check("eom" not in names(log, msg=1), "%s got eom for the aborted message"
              % os.path.basename(log))
        check(names(log, msg=2)[-1:] == ["eom"], "%s, message 2: %s" % (os.path.basename(log),
                                                                       names(log, msg=2)))
        check(dict(headers_seen(log, msg=2)).get("Subject") == "whole",
              "%s, message 2 headers %s" % (os.path.basename(log), headers_seen(log, msg=2)))


# ---- (pitfall 5) data in EOB, CR LF across chunks -------------------------------


def case_eob_data(bed, content):
    """(pitfall 5) data in SMFIC_BODYEOB is a last body chunk; children get B, then an empty E"""
    a = bed.milter("a")
    b = bed.milter("b")
    bed.shadowd(content=content)
    mta = bed.raw_mta()
    mta.optneg()
    mta.command(b"C", b"[127.0.0.1]\0U")  # family U: nothing after it (pitfall 2)
    mta.command(b"H", b"client.tb.test\0")
    mta.command(b"M", b"<alice@example.com>\0")
    mta.command(b"R", b"<bob@example.net>\0")
    mta.command(b"T")
    mta.command(b"L", b"Subject\0eob\0")
    mta.command(b"N")
    mta.command(b"B", b"line one\r")  # the CR here, its LF in the next chunk
    mta.command(b"B", b"\nline two\r\n")
    mta.command(b"E", b"tail\r\n")
    mta.send(b"A")
    mta.no_strays()
    mta.quit()
    recs = bed.records(1)
    whole = b"line one\r\nline two\r\ntail\r\n"
    for log in (a, b):
        e = eom_of(log)
        check(e["body_len"] == str(len(whole)) and e["body_sha256"] == sha(whole),
              "%s got body_len=%s, want %d (the EOB data as a last chunk)"
              % (os.path.basename(log), e["body_len"], len(whole)))
        con = evs(log, "connect")[0]["kv"]
        check(con.get("family") == "unknown" and "addr" not in con, "%s connect %s"
              % (os.path.basename(log), con))
    m = messages(recs)[0]
    check(m["size"] == len(whole) + len("Subject") + len("eob") + 3, "size %s" % m["size"])
    conn = by_type(recs, "connection", event="open")[0]
    check(conn["client_port"] is None and conn["client_addr"] is None,
          "family U: client_addr %r client_port %r, want null" % (conn["client_addr"],
                                                                   conn["client_port"]))


# ---- (pitfall 2) CONNECT variants ------------------------------------------------


def case_connect_variants(bed):
    """(pitfall 2) families 4, 6 (bare and Sendmail's IPv6: prefix), L and U; port byte order"""
    a = bed.milter("a")
    bed.shadowd()
    bed.driver("--family", "6", "--client-addr", "::1", "--client-port", "2525",
               files=bed.message_files(MESSAGE.format(n=1)))
    bed.driver("--family", "L", "--client-addr", "/run/client.sock",
               files=bed.message_files(MESSAGE.format(n=2)))
    bed.driver("--family", "U", files=bed.message_files(MESSAGE.format(n=3)))
    mta = bed.raw_mta()
    mta.optneg()
    mta.command(b"C", b"client.tb.test\0" + b"6" + struct.pack(">H", 40000) + b"IPv6:::1\0")
    mta.command(b"H", b"client.tb.test\0")
    mta.quit()
    recs = bed.closed(4)
    got = [evs(a, "connect", conn=n)[0]["kv"] for n in (1, 2, 3, 4)]
    check(got[0].get("family") == "inet6" and got[0].get("addr") == "::1" and
          got[0].get("port") == "2525", "IPv6 connect seen as %s" % got[0])
    check(got[1].get("family") == "unix" and got[1].get("addr") == "/run/client.sock",
          "unix connect seen as %s" % got[1])
    check(got[2].get("family") == "unknown" and "addr" not in got[2], "U seen as %s" % got[2])
    check(got[3].get("family") == "inet6" and got[3].get("addr") == "::1" and
          got[3].get("port") == "40000", "Sendmail IPv6 connect seen as %s" % got[3])
    opens = by_type(recs, "connection", event="open")
    check([(o["client_addr"], o["client_port"]) for o in opens] ==
          [("::1", "2525"), ("/run/client.sock", "0"), (None, None), ("IPv6:::1", "40000")],
          "connection records %s" % [(o["client_addr"], o["client_port"]) for o in opens])


# ---- (7) several messages, abort, second HELO, unknown --------------------------

SCRIPT_FLOW = """\
connect
helo first.example.org
abort
mail <a1@example.com>
rcpt <b1@example.net>
abort
mail <a2@example.com>
rcpt <b2@example.net>
data
header Subject: second
header Message-ID: <m2@example.com>
eoh
body two\\r\\n
eom
expect continue
abort
abort
helo second.example.org
unknown VRFY bob
mail <a3@example.com>
rcpt <b3@example.net>
data
header Subject: third
header Message-ID: <m3@example.com>
eoh
body three\\r\\n
eom
expect continue
abort
quit
"""


def case_flow(bed, reply, content):
    """(7) three messages: one aborted mid-transaction, stray and double aborts, HELO and unknown"""
    a = bed.milter("a", "--action", "eom:reject@header:Subject~third")
    b = bed.milter("b")
    bed.shadowd(reply=reply, content=content)
    bed.script(SCRIPT_FLOW)
    recs = bed.records(3)
    m1, m2, m3 = messages(recs)[:3]
    check(len({m1["msg"], m2["msg"], m3["msg"]}) == 3, "message ids repeat")
    check(m1["mta"] == "aborted" and m1["from"] == "<a1@example.com>" and
          m1["rcpts"] == ["<b1@example.net>"], "message 1: %s %s %s" % (m1["mta"], m1["from"],
                                                                       m1["rcpts"]))
    for name, v in verdicts_of(recs, m1["msg"]).items():
        check_verdict(v, name, "continue", "rcpt")
    check(m2["mta"] == "ended" and m2["outcome"] == "delivered" and
          m2["message_id"] == "<m2@example.com>", "message 2: %s %s %s"
          % (m2["mta"], m2["outcome"], m2["message_id"]))
    check(m3["mta"] == "ended" and m3["outcome"] == "rejected" and m3["decided_by"] == "a" and
          m3["stage"] == "eom", "message 3: %s %s by %s at %s" % (m3["mta"], m3["outcome"],
                                                                m3["decided_by"], m3["stage"]))
    v3 = verdicts_of(recs, m3["msg"])
    check_verdict(v3["a"], "a", "reject", "eom")
    check_verdict(v3["b"], "b", "continue", "eom")
    for log in (a, b):
        n = os.path.basename(log)
        check(names(log, msg=1) == ["mail", "rcpt"], "%s, message 1: %s" % (n, names(log, msg=1)))
        check(evs(log, "abort", msg=1), "%s did not get message 1's abort" % n)
        check(names(log, msg=2) == ["mail", "rcpt", "data", "header", "header", "eoh", "body",
                                    "eom"], "%s, message 2: %s" % (n, names(log, msg=2)))
        check([e["kv"]["name"] for e in evs(log, "helo")] ==
              ["first.example.org", "second.example.org"], "%s helos %s" % (n, evs(log, "helo")))
        check(evs(log, "unknown", cmd="VRFY bob"), "%s did not get the unknown command" % n)
        check(names(log, msg=3) == ["mail", "rcpt", "data", "header", "header", "eoh", "body",
                                    "eom"], "%s, message 3: %s" % (n, names(log, msg=3)))
    close = bed.closed(1)
    close = by_type(close, "connection", event="close")[0]
    check(close["messages"] == 3 and close["helo"] == "second.example.org" and
          close["errors"] == 0, "close record %s" % close)


def case_helo_per_message(bed):
    """(7) each message record carries the HELO in force for it, even when a child is slow"""
    bed.milter("a", "--sleep", "eom:600")
    bed.milter("b")
    bed.shadowd(reply="immediate")
    bed.script("connect\nhelo first.example.org\nmail <a1@example.com>\nrcpt <b1@example.net>\n"
               "data\nheader Subject: one\neoh\nbody one\\r\\n\neom\nabort\n"
               "helo second.example.org\nmail <a2@example.com>\nrcpt <b2@example.net>\n"
               "data\nheader Subject: two\neoh\nbody two\\r\\n\neom\nabort\nquit\n")
    recs = bed.records(2)
    m1, m2 = messages(recs)[:2]
    check(m1["from"] == "<a1@example.com>", "message order %s" % m1["from"])
    check(m1["helo"] == "first.example.org",
          "message 1 (sent after HELO first.example.org) recorded helo %r" % m1["helo"])
    check(m2["helo"] == "second.example.org", "message 2 recorded helo %r" % m2["helo"])


# ---- (pitfall 7) nothing after a message-level verdict --------------------------


def case_silent_drops(bed):
    """(pitfall 7) after a child's verdict it gets only ABORT, and is fine at the next message"""
    a = bed.milter("a", "--action", "data:reject@msg:1", "--action", "header:reject@Subject~two")
    b = bed.milter("b")
    bed.shadowd(reply="wait", content="chained")
    msgs = [MESSAGE.format(n=i).replace("quarterly report", s)
            for i, s in ((1, "one"), (2, "two"), (3, "three"))]
    bed.driver(files=bed.message_files(*msgs))
    recs = bed.records(3)
    ms = messages(recs)[:3]
    v = [verdicts_of(recs, m["msg"]) for m in ms]
    check_verdict(v[0]["a"], "a (message 1)", "reject", "data")
    check_verdict(v[1]["a"], "a (message 2)", "reject", "header")
    check_verdict(v[2]["a"], "a (message 3)", "continue", "eom")
    for i in range(3):
        check_verdict(v[i]["b"], "b (message %d)" % (i + 1), "continue", "eom")
    check([m["outcome"] for m in ms] == ["rejected", "rejected", "delivered"],
          "outcomes %s" % [m["outcome"] for m in ms])
    check(names(a, msg=1) == ["mail", "rcpt", "data"], "a, message 1: %s" % names(a, msg=1))
    check(names(a, msg=2) == ["mail", "rcpt", "data", "header", "header", "header"],
          "a, message 2: %s" % names(a, msg=2))
    check(names(a, msg=3)[-1:] == ["eom"], "a, message 3: %s" % names(a, msg=3))
    for i in (1, 2, 3):
        eom_of(b, msg=i)


# ---- (8) connection-level verdicts ----------------------------------------------


def case_connect_accept(bed):
    """(8) accept at connect: no more events for the connection"""
    a = bed.milter("a", "--action", "connect:accept")
    b = bed.milter("b")
    bed.shadowd()
    bed.driver(files=bed.message_files(MESSAGE.format(n=1), MESSAGE.format(n=2)))
    recs = bed.records(2)
    check(names(a) == ["connect"], "a got %s after accepting at connect" % names(a))
    check(names(b).count("eom") == 2, "b: %s" % names(b))
    for m in messages(recs)[:2]:
        v = verdicts_of(recs, m["msg"])
        check_verdict(v["a"], "a", "accept", "connect")
        check_verdict(v["b"], "b", "continue", "eom")
        check(m["outcome"] == "delivered", "outcome %s" % m["outcome"])


def case_connect_reject(bed):
    """(8) reject at connect: every message of the connection predicted rejected at connect"""
    a = bed.milter("a", "--action", "connect:reject")
    b = bed.milter("b")
    bed.shadowd()
    bed.driver(files=bed.message_files(MESSAGE.format(n=1), MESSAGE.format(n=2)))
    recs = bed.records(2)
    check(names(a) == ["connect"], "a got %s after rejecting at connect" % names(a))
    check(evs(a, "close"), "a was never closed")
    check(names(b).count("eom") == 2, "b: %s" % names(b))
    for m in messages(recs)[:2]:
        v = verdicts_of(recs, m["msg"])
        check_verdict(v["a"], "a", "reject", "connect", connection=True, reply=None)
        check_verdict(v["b"], "b", "continue", "eom", connection=False)
        check(m["outcome"] == "rejected" and m["decided_by"] == "a" and m["stage"] == "connect",
              "%s: %s by %s at %s" % (m["msg"], m["outcome"], m["decided_by"], m["stage"]))


def case_helo_tempfail(bed):
    """(8) a 421 reply at HELO tempfails the whole connection, with its text"""
    a = bed.milter("a", "--action", "helo:reply:421 4.7.0 go away")
    bed.milter("b")
    bed.shadowd(reply="wait")
    bed.driver(files=bed.message_files(MESSAGE.format(n=1), MESSAGE.format(n=2)))
    recs = bed.records(2)
    check(names(a) == ["connect", "helo"], "a got %s after its HELO verdict" % names(a))
    for m in messages(recs)[:2]:
        v = verdicts_of(recs, m["msg"])
        check_verdict(v["a"], "a", "tempfail", "helo", connection=True,
                      reply="421 4.7.0 go away")
        check(m["outcome"] == "tempfailed" and m["stage"] == "helo" and
              m["reply"] == "421 4.7.0 go away", "%s: %s at %s %r" % (m["msg"], m["outcome"],
                                                                      m["stage"], m["reply"]))


# ---- (9) discard ----------------------------------------------------------------


def case_discard_rcpt(bed):
    """(9) discard at RCPT discards the message; the child gets nothing more of it"""
    a = bed.milter("a", "--action", "rcpt:discard@msg:1")
    b = bed.milter("b")
    bed.shadowd(reply="wait")
    bed.driver("--rcpt", "<bob@example.net>", "--rcpt", "<carol@example.net>",
               files=bed.message_files(MESSAGE.format(n=1), MESSAGE.format(n=2)))
    recs = bed.records(2)
    m1, m2 = messages(recs)[:2]
    v1, v2 = verdicts_of(recs, m1["msg"]), verdicts_of(recs, m2["msg"])
    check_verdict(v1["a"], "a", "discard", "rcpt")
    check(m1["outcome"] == "discarded" and m1["decided_by"] == "a" and m1["stage"] == "rcpt",
          "message 1: %s by %s at %s" % (m1["outcome"], m1["decided_by"], m1["stage"]))
    check(names(a, msg=1) == ["mail", "rcpt"], "a got %s after discarding" % names(a, msg=1))
    check_verdict(v2["a"], "a", "continue", "eom")
    check(m2["outcome"] == "delivered", "message 2: %s" % m2["outcome"])
    check(names(b, msg=1)[-1:] == ["eom"], "b: %s" % names(b, msg=1))


def case_discard_connect(bed):
    """(9, pitfall 18) discard at CONNECT or HELO is ignored"""
    a = bed.milter("a", "--action", "connect:discard")
    b = bed.milter("b", "--action", "helo:discard")
    bed.shadowd()
    bed.driver(files=bed.message_files(MESSAGE.format(n=1)))
    recs = bed.records(1)
    m = messages(recs)[0]
    v = verdicts_of(recs, m["msg"])
    check_verdict(v["a"], "a", "continue", connection=False)
    check_verdict(v["b"], "b", "continue", connection=False)
    check(m["outcome"] == "delivered", "outcome %s by %s at %s" % (m["outcome"], m["decided_by"],
                                                                   m["stage"]))
    for log in (a, b):
        check(names(log)[-1:] == ["eom"], "%s: %s" % (os.path.basename(log), names(log)))


# ---- (10) multi-line reply codes --------------------------------------------------


def case_replycode(bed):
    """(10) SMFIR_REPLYCODE texts, multi-line and with %%, recorded byte for byte"""
    bed.milter("a", "--action",
               "rcpt:reply:550 5.1.1 no such user|ask postmaster@@example.net@<bob@example.net>")
    bed.milter("b", "--action", "eom:reply:451 4.7.1 try later|100%% busy|really")
    bed.shadowd(reply="wait")
    bed.driver("--rcpt", "<bob@example.net>", "--rcpt", "<carol@example.net>",
               files=bed.message_files(MESSAGE.format(n=1)))
    recs = bed.records(1)
    m = messages(recs)[0]
    v = verdicts_of(recs, m["msg"])
    ra = "550-5.1.1 no such user\r\n550 5.1.1 ask postmaster@example.net"
    rb = "451-4.7.1 try later\r\n451-4.7.1 100%% busy\r\n451 4.7.1 really"
    check(v["a"]["rcpts"] == [{"rcpt": "<bob@example.net>", "action": "reject", "reply": ra}],
          "a's rcpts %s" % v["a"]["rcpts"])
    check_verdict(v["b"], "b", "tempfail", "eom", reply=rb)
    check(m["outcome"] == "tempfailed" and m["reply"] == rb and m["decided_by"] == "b",
          "message %s %r by %s" % (m["outcome"], m["reply"], m["decided_by"]))
    check(m["refused"] == [{"rcpt": "<bob@example.net>", "action": "reject", "reply": ra,
                            "milter": "a"}], "refused %s" % m["refused"])
    raw = [l for l in bed.raw_lines() if b'"type":"message"' in l][0]
    check(b'"reply":"451-4.7.1 try later\\r\\n451-4.7.1 100%% busy\\r\\n451 4.7.1 really"' in raw,
          "reply bytes in the JSON: %r" % raw)


# ---- (11) QUIT_NC -----------------------------------------------------------------

SCRIPT_QUIT_NC = """\
connect
helo one.example.org
mail <a1@example.com>
rcpt <b1@example.net>
data
header Subject: one
header Message-ID: <q1@example.com>
eoh
body one\\r\\n
eom
expect continue
abort
quit-nc
connect
helo two.example.org
mail <a2@example.com>
rcpt <b2@example.net>
data
header Subject: two
header Message-ID: <q2@example.com>
eoh
body two\\r\\n
eom
expect continue
abort
quit
"""


def case_quit_nc(bed, reply, content="chained"):
    """(11) QUIT_NC: fresh children for the next connection on the socket; both get verdicts"""
    a = bed.milter("a", "--action", "eom:reject@header:Subject~two")
    b = bed.milter("b")
    bed.shadowd(reply=reply, content=content)
    # Healthy children answer in milliseconds: a 4 s patience is plenty.
    bed.script(SCRIPT_QUIT_NC, timeout_ms=4000)
    recs = bed.records(2)
    # Records are written as messages finish: across connections in either order.
    m1, m2 = sorted(messages(recs)[:2], key=lambda m: m["message_id"])
    check(m1["message_id"] == "<q1@example.com>" and m2["message_id"] == "<q2@example.com>",
          "messages %s %s" % (m1["message_id"], m2["message_id"]))
    check(m1["helo"] == "one.example.org" and m2["helo"] == "two.example.org",
          "helos %s %s" % (m1["helo"], m2["helo"]))
    v1, v2 = verdicts_of(recs, m1["msg"]), verdicts_of(recs, m2["msg"])
    check_verdict(v1["a"], "a", "continue", "eom")
    check_verdict(v1["b"], "b", "continue", "eom")
    check_verdict(v2["a"], "a (second connection)", "reject", "eom")
    check_verdict(v2["b"], "b (second connection)", "continue", "eom")
    check(m2["outcome"] == "rejected", "message 2 outcome %s" % m2["outcome"])
    for log in (a, b):
        n = os.path.basename(log)
        check(names(log, conn=1) == ["connect", "helo", "mail", "rcpt", "data", "header",
                                     "header", "eoh", "body", "eom"],
              "%s, first connection: %s" % (n, names(log, conn=1)))
        check(names(log, conn=2) == ["connect", "helo", "mail", "rcpt", "data", "header",
                                     "header", "eoh", "body", "eom"],
              "%s, second connection (fresh child session): %s" % (n, names(log, conn=2)))
    recs = wait_for(lambda: (lambda r: r if len(by_type(r, "connection", event="close")) >= 1
                             else None)(bed.all_records()), "a close record")
    time.sleep(0.3)
    recs = bed.all_records()
    opens = by_type(recs, "connection", event="open")
    closes = by_type(recs, "connection", event="close")
    check(len(opens) == 2, "%d connection open records, want 2" % len(opens))
    check(len({o["conn"] for o in opens}) == 2,
          "both connections have conn %s: (host, conn) must identify a connection"
          % [o["conn"] for o in opens])
    check(len(closes) == 2, "%d connection close records for 2 connections" % len(closes))


# ---- (12) the command line --------------------------------------------------------


def run_shadowd(*args, timeout=WAIT_SECONDS):
    """run_shadowd - run shadowd to its end (bounded); CompletedProcess"""
    return subprocess.run([SHADOWD] + list(args), capture_output=True, text=True,
                          timeout=timeout, errors="replace")


def case_cli_check(bed):
    """(12) --check: 78 and FILE:LINE: [group] key: for bad values; 0 for a good file"""
    bad = [("[shadowd]\nreply = wait\nbacklog = lots\n", 3, "shadowd", "backlog"),
           ("[shadowd]\n\n[milter a]\nconnect = inet:99999@127.0.0.1\n", 4, "milter a", "connect"),
           ("# comment\n[shadowd]\nmax_connections = 0\n", 3, "shadowd", "max_connections"),
           ("[shadowd]\n[milter a]\nconnect = inet:1@127.0.0.1\ncommand_timeout = 11s\n", 4,
            "milter a", "command_timeout")]
    for text, line, group, key in bad:
        path = bed.file(text, "bad%d.conf" % (bed.nfile + 1))
        r = run_shadowd("-c", path, "--check")
        check(r.returncode == 78, "%s: --check exited %d, want 78 (%s)" % (key, r.returncode,
                                                                         r.stderr.strip()))
        want = "%s:%d: [%s] %s: " % (path, line, group, key)
        check(want in r.stderr, "%s: stderr %r lacks %r" % (key, r.stderr.strip(), want))
    good = bed.file("[shadowd]\nreply = wait\nbacklog = 1M\n\n[milter a]\n"
                    "connect = inet:8891@127.0.0.1\n\n[milter b]\nconnect = unix:/run/b.sock\n",
                    "good.conf")
    r = run_shadowd("-c", good, "--check")
    check(r.returncode == 0, "good file: --check exited %d: %s" % (r.returncode, r.stderr))
    check("2 milters" in r.stdout, "good file: stdout %r" % r.stdout)


def case_cli_probe(bed):
    """(12) --probe prints what each child asks for; names a down child and fails"""
    bed.milter("a", "--no", "header", "--nr", "rcpt", "--symlist", "mail:{auth_type} j")
    bed.milter("b", "--leadspace")
    bed.milter("c", down=True)
    conf = bed.file("[shadowd]\nevent_log = %s\n" % bed.events + "".join(
        "[milter %s]\nconnect = inet:%d@127.0.0.1\nconnect_timeout = 1s\n" % (n, p)
        for n, p, _ in bed.milters), "probe.conf")
    r = run_shadowd("-c", conf, "--probe")
    out = r.stdout
    check(r.returncode != 0, "--probe exited 0 with child c down")
    blocks = re.split(r"(?m)^(?=milter )", out)
    pa = [x for x in blocks if x.startswith("milter a ")]
    pb = [x for x in blocks if x.startswith("milter b ")]
    pc = [x for x in blocks if x.startswith("milter c ")]
    check(pa and ": ok" in pa[0], "no ok line for a: %r" % out)
    ev = re.search(r"(?m)^\s+events\s+(.*)$", pa[0])
    check(ev and "header" not in ev.group(1).split() and "rcpt" in ev.group(1).split(),
          "a's events line: %r" % (ev and ev.group(0)))
    nr = re.search(r"(?m)^\s+no reply\s+(.*)$", pa[0])
    check(nr and nr.group(1).split() == ["rcpt"], "a's no reply line: %r" % (nr and nr.group(0)))
    check(re.search(r"(?m)^\s+macros\s+.*\{auth_type\} j", pa[0]), "a's macros: %r" % pa[0])
    check(pb and re.search(r"(?m)^\s+leadspace\s+yes", pb[0]), "b's leadspace: %r" % pb)
    check(pc and "failed" in pc[0] and len(pc[0].split("failed:", 1)[-1].strip()) > 3,
          "c (down) not named with a reason: %r" % out)
    # All up: exit 0.
    conf2 = bed.file("[shadowd]\n" + "".join(
        "[milter %s]\nconnect = inet:%d@127.0.0.1\n" % (n, p) for n, p, _ in bed.milters[:2]),
        "probe2.conf")
    r2 = run_shadowd("-c", conf2, "--probe")
    check(r2.returncode == 0, "--probe with both up exited %d: %s" % (r2.returncode, r2.stdout))
    check(evs(os.path.join(bed.dir, "a.log"), "negotiate"), "a was never negotiated with")


# ---- (13) signals -------------------------------------------------------------------


def case_sighup(bed):
    """(13) rename the log, SIGHUP: new records in a new file at the path, none lost"""
    bed.milter("a", "--sleep", "eom:700")
    bed.milter("b")
    bed.shadowd(reply="immediate")
    bed.driver(files=bed.message_files(MESSAGE.format(n=1), MESSAGE.format(n=2)))
    # Rotate while a's verdicts are still due: those records come after the reopen.
    rotated = bed.events + ".1"
    os.rename(bed.events, rotated)
    bed.shadowd_proc.send_signal(signal.SIGHUP)
    wait_for(lambda: os.path.exists(bed.events), "a new event log at %s after SIGHUP" % bed.events)
    bed.driver(files=bed.message_files(MESSAGE.format(n=3), MESSAGE.format(n=4)))

    def both():
        r = bed.all_records(rotated) + bed.all_records()
        done = len(by_type(r, "message")) >= 4 and len(by_type(r, "connection",
                                                                event="close")) >= 2
        return r if done else None
    recs = wait_for(both, "4 messages and 2 closes across both files")
    time.sleep(0.3)
    old, new = bed.all_records(rotated), bed.all_records()
    recs = old + new
    ids = [m["message_id"] for m in messages(recs)]
    check(sorted(ids) == ["<case-%d@example.com>" % i for i in (1, 2, 3, 4)],
          "message records across both files: %s" % ids)
    check(len(by_type(recs, "verdict")) == 8, "%d verdict records, want 8"
          % len(by_type(recs, "verdict")))
    check(by_type(new, "message"), "no message record in the new file")
    check(any(m["message_id"] in ("<case-3@example.com>", "<case-4@example.com>")
              for m in messages(new)), "later messages not in the new file")
    check(len(by_type(recs, "connection", event="open")) == 2, "open records lost")
    for m in messages(recs):
        for name, v in verdicts_of(recs, m["msg"]).items():
            check_verdict(v, "%s (%s)" % (name, m["message_id"]), "continue", "eom")
    check("reloaded" in shadowd_err(bed), "no reload logged")


def case_sigterm(bed):
    """(13) SIGTERM: no new connections; the in-flight message finishes; exit 0"""
    a = bed.milter("a", "--sleep", "eom:1500")
    bed.milter("b")
    bed.shadowd(reply="immediate")
    bed.driver(files=bed.message_files(MESSAGE.format(n=1)))
    wait_for(lambda: evs(a, "sleep"), "a busy at end of message")
    check(not by_type(bed.all_records(), "message"), "the message finished before SIGTERM")
    p = bed.shadowd_proc
    p.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping" in shadowd_err(bed) or p.poll() is not None, "shadowd stopping")
    try:
        socket.create_connection(("127.0.0.1", bed.shadowd_port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    check(refused, "shadowd still accepts connections after SIGTERM")
    try:
        status = p.wait(timeout=14)
    except subprocess.TimeoutExpired:
        raise CaseFailure("shadowd still running 14 s after SIGTERM")
    check(status == 0, "shadowd exited %d after SIGTERM: %s" % (status, shadowd_err(bed)[-600:]))
    recs = bed.all_records()
    check(len(messages(recs)) == 1, "the in-flight message has no record after SIGTERM")
    v = verdicts_of(recs, messages(recs)[0]["msg"])
    check_verdict(v["a"], "a", "continue", "eom")
    check(evs(a, "reply", stage="eom"), "a never answered end of message")
    check(by_type(recs, "connection", event="close"), "no close record")


def case_sigterm_hung(bed):
    """(13) SIGTERM with a child hung at end of message: exits 0 within the grace period"""
    bed.milter("a", "--sleep", "eom:60000")
    bed.milter("b")
    bed.shadowd(reply="immediate", timeouts={"a": {"eom_timeout": "120s"}})
    bed.driver(files=bed.message_files(MESSAGE.format(n=1)))
    wait_for(lambda: evs(os.path.join(bed.dir, "a.log"), "sleep"), "a busy at end of message")
    p = bed.shadowd_proc
    p.send_signal(signal.SIGTERM)
    try:
        status = p.wait(timeout=16)
    except subprocess.TimeoutExpired:
        raise CaseFailure("shadowd still running 16 s after SIGTERM (grace is 10 s)")
    check(status == 0, "shadowd exited %d after SIGTERM: %s" % (status, shadowd_err(bed)[-800:]))


# ---- (14) overflow --------------------------------------------------------------------


def paced_script(count, pause_ms, body=0):
    """paced_script - count small messages on one connection, pause_ms apart"""
    out = ["connect", "helo client.example.org", "sleep %d" % pause_ms]
    for i in range(1, count + 1):
        out += ["mail <a%d@example.com>" % i, "rcpt <b%d@example.net>" % i, "data",
                "header From: <a%d@example.com>" % i, "header Subject: paced %d" % i,
                "header Message-ID: <p%d@example.com>" % i, "eoh",
                "body text %d %s\\r\\n" % (i, "b" * body),
                "eom", "expect continue", "abort", "sleep %d" % pause_ms]
    return "\n".join(out + ["quit", ""])


def case_overflow(bed, content):
    """(14) a slow child overflows a tiny backlog; the other child and the MTA are untouched

    The MTA sends a small message every 400 ms: a child that answers at once
    empties its queue in between, the one that sleeps 300 ms at every header
    cannot, and what shadowd holds for it passes 1k within a few messages (in
    chained mode: the 2000-byte bodies of the messages it has not had yet).
    """
    a = bed.milter("a", "--sleep", "header:300")
    bed.milter("b", "--add-header", "X-B:fine")
    bed.shadowd(reply="immediate", content=content, extra={"backlog": "1k"})
    count = 10
    # The MTA is answered at once: well inside 2 s, though a needs about 1 s per message.
    bed.script(paced_script(count, 400, body=2000 if content == "chained" else 0),
               timeout_ms=2000)
    recs = bed.records(count)
    over = []
    for m in messages(recs):
        v = verdicts_of(recs, m["msg"])
        check_verdict(v["b"], "b (%s)" % m["msg"], "continue", "eom")
        check(v["b"]["edits"] and v["b"]["edits"][0]["name"] == "X-B", "b's edits %s"
              % v["b"]["edits"])
        if v["a"]["action"] == "overflow":
            over.append(m["msg"])
            check(v["a"]["reason"] and "behind" in v["a"]["reason"], "a's reason %r"
                  % v["a"]["reason"])
            check(m["unknown"] == ["a"], "unknown %s" % m["unknown"])
        else:
            check_verdict(v["a"], "a (%s)" % m["msg"], "continue")
        check(m["outcome"] == "delivered", "outcome %s" % m["outcome"])
    check(over, "a never overflowed: %s" % [verdicts_of(recs, m["msg"])["a"]["action"]
                                            for m in messages(recs)])
    close = by_type(bed.closed(1), "connection", event="close")[0]
    st = {x["milter"]: x["state"] for x in close["milters"]}
    check(st.get("a") == "overflow" and st.get("b") == "ok", "close record milters %s"
          % close["milters"])
    check("overflow" in shadowd_err(bed), "no overflow warning on stderr")
    check(evs(a, "sleep"), "a never got a header")


def case_big_body(bed, content):
    """(14, max_message) an 8 MB message is shadowed: fast children stay in the default backlog"""
    a = bed.milter("a", "--log-body", "0")
    b = bed.milter("b", "--log-body", "0")
    bed.shadowd(reply="immediate", content=content, extra={"spool_dir": bed.dir})
    bed.driver("--generate-body", str(8 * 1024 * 1024), timeout_ms=5000)
    recs = bed.records(1)
    m = messages(recs)[0]
    v = verdicts_of(recs, m["msg"])
    for name, log in (("a", a), ("b", b)):
        check_verdict(v[name], name, "continue", "eom")
        check(eom_of(log)["body_len"] == str(8 * 1024 * 1024), "%s's eom %s" % (name, eom_of(log)))


# ---- (15) max_connections ------------------------------------------------------------


def case_max_connections(bed):
    """(15) over max_connections a connection is served without children"""
    a = bed.milter("a")
    b = bed.milter("b")
    bed.shadowd(extra={"max_connections": "1"})
    first = bed.file("connect\nhelo first.example.org\nmail <a1@example.com>\n"
                     "rcpt <b1@example.net>\ndata\nheader Subject: first\n"
                     "header Message-ID: <mc1@example.com>\neoh\nbody one\\r\\n\neom\n"
                     "expect continue\nabort\nsleep 2000\nquit\n", "first.script")
    bg = bed.driver_bg("--script", first)
    wait_for(lambda: by_type(bed.all_records(), "message"), "the first connection's message")
    check(bg[0].poll() is None, "the first driver ended too soon")
    bed.driver(files=bed.message_files(MESSAGE.format(n=2)))
    bed.driver_end(bg)
    recs = bed.closed(2)
    bed.driver(files=bed.message_files(MESSAGE.format(n=3)))
    recs = bed.records(3)
    ms = {m["message_id"]: m for m in messages(recs)}
    check(set(ms) == {"<mc1@example.com>", "<case-2@example.com>", "<case-3@example.com>"},
          "messages %s" % list(ms))
    m1, m2, m3 = ms["<mc1@example.com>"], ms["<case-2@example.com>"], ms["<case-3@example.com>"]
    check(set(verdicts_of(recs, m1["msg"])) == {"a", "b"}, "first connection verdicts %s"
          % list(verdicts_of(recs, m1["msg"])))
    check(verdicts_of(recs, m2["msg"]) == {} and m2["milters"] == {},
          "the connection over the limit had children: %s" % m2["milters"])
    check(m2["outcome"] == "delivered", "outcome %s" % m2["outcome"])
    check(set(verdicts_of(recs, m3["msg"])) == {"a", "b"},
          "a later connection did not get its children back: %s" % m3["milters"])
    check("over max_connections (1): served without children" in shadowd_err(bed),
          "no warning on stderr")
    for log in (a, b):
        check(sorted({e["conn"] for e in evs(log, "connect")}) == [1, 2],
              "%s sessions %s, want 2 (none for the overloaded connection)"
              % (os.path.basename(log), sorted({e["conn"] for e in evs(log, "connect")})))


# ---- more pitfalls --------------------------------------------------------------------


def case_progress(bed):
    """(pitfall 9) reply = wait: SMFIR_PROGRESS keeps the MTA waiting at EOM, and only there"""
    a = bed.milter("a", "--sleep", "eom:9000")
    bed.milter("b")
    bed.shadowd(reply="wait")
    # The MTA's patience is 6 s per packet; a needs 9 s: progress packets must come.
    lines = bed.driver(files=bed.message_files(MESSAGE.format(n=1)), timeout_ms=6000)
    prog = [i for i, l in enumerate(lines) if l.startswith("< SMFIR_PROGRESS")]
    check(prog, "no SMFIR_PROGRESS while a worked 9 s")
    eob = [i for i, l in enumerate(lines) if l.startswith("> SMFIC_BODYEOB")][0]
    check(min(prog) > eob, "SMFIR_PROGRESS before end of message")
    recs = bed.records(1)
    v = verdicts_of(recs, messages(recs)[0]["msg"])
    check_verdict(v["a"], "a", "continue", "eom")
    check(evs(a, "reply", stage="eom"), "a never answered")


def case_header_edits(bed):
    """(pitfall 12) insert at 0, change the 1st Subject, delete To: what the next child sees"""
    bed.milter("a", "--insert-header", "0:X-Top:top", "--change-header", "Subject:1:changed",
               "--delete-header", "To")
    b = bed.milter("b")
    bed.shadowd(content="chained")
    bed.driver(files=bed.message_files(MESSAGE.format(n=1)))
    recs = bed.records(1)
    hb = headers_seen(b)
    check(hb == [("X-Top", "top"), ("From", "Alice <alice@example.com>"),
                 ("Subject", "changed"), ("Message-ID", "<case-1@example.com>")],
          "b saw %s" % hb)
    m = messages(recs)[0]
    ops = [(e["op"], e.get("index"), e["name"], e["value"]) for e in m["edits"]]
    check(ops == [("insert_header", 0, "X-Top", "top"), ("change_header", 1, "Subject", "changed"),
                  ("delete_header", 1, "To", "")], "edits %s" % ops)


def case_big_header(bed, content):
    """(pitfall 13) a header over 64 KB (Postfix sends it whole) must not kill libmilter children"""
    a = bed.milter("a")
    b = bed.milter("b")
    bed.shadowd(content=content)
    big = MESSAGE.format(n=1).replace("Subject:", "X-Big: " + "a" * 70000 + "\r\nSubject:")
    bed.driver(files=bed.message_files(big))
    recs = bed.records(1)
    m = messages(recs)[0]
    v = verdicts_of(recs, m["msg"])
    for name, log in (("a", a), ("b", b)):
        check_verdict(v[name], name, "continue", "eom")
        for hn, hv in headers_seen(log):
            check(len(hn) + len(hv) + 2 <= 65535, "%s got a %d-byte header packet"
                  % (name, len(hn) + len(hv) + 2))
        check(("Subject", "quarterly report") in headers_seen(log),
              "%s lost the headers after the big one" % name)
    check(m["unknown"] == [], "unknown %s" % m["unknown"])


def case_offer_subset(bed):
    """(pitfall 14) a small offer: shadowd's answer and its offers to children stay inside it"""
    a = bed.milter("a", "--add-header", "X-A:1", "--quarantine", "q", "--symlist", "mail:j")
    b = bed.milter("b", "--leadspace", "--nr", "rcpt")
    bed.shadowd(reply="immediate")
    offer_a, offer_p = 0x0f, 0x7f
    lines = bed.driver("--strict", "--offer-actions", hex(offer_a), "--offer-protocol",
                       hex(offer_p), files=bed.message_files(MESSAGE.format(n=1)))
    bed.records(1)
    version, actions, protocol, syms = optneg(lines)
    check(version <= 6 and actions & ~offer_a == 0 and protocol & ~offer_p == 0,
          "shadowd answered actions 0x%x protocol 0x%x to an offer of 0x%x 0x%x"
          % (actions, protocol, offer_a, offer_p))
    check(not syms, "symlists %s sent although SMFIF_SETSYMLIST was not offered" % syms)
    for log in (a, b):
        n = evs(log, "negotiate")[0]["kv"]
        oa, op = int(n["offer_actions"], 16), int(n["offer_protocol"], 16) & ~NR_ALL
        check(oa & ~offer_a == 0 and op & ~offer_p == 0, "%s was offered actions %s protocol %s"
              % (os.path.basename(log), n["offer_actions"], n["offer_protocol"]))
    lines2 = bed.driver("--strict", "--offer-version", "2",
                        files=bed.message_files(MESSAGE.format(n=2)))
    check(2 <= optneg(lines2)[0] <= 2, "version %d answered to an offer of 2" % optneg(lines2)[0])
    recs = bed.records(2)
    for m in messages(recs)[:2]:
        for name, v in verdicts_of(recs, m["msg"]).items():
            check(v["action"] in ("continue", "accept"), "%s: %s %s" % (name, v["action"],
                                                                      v["reason"]))


def case_mta_vanishes(bed):
    """(pitfall 16) the MTA closes without QUIT mid-message: aborted, children closed"""
    a = bed.milter("a")
    b = bed.milter("b")
    bed.shadowd(reply="wait")
    mta = bed.raw_mta()
    mta.optneg()
    mta.command(b"C", b"[127.0.0.1]\0" + b"4" + struct.pack(">H", 25) + b"127.0.0.1\0")
    mta.command(b"H", b"client.tb.test\0")
    mta.command(b"M", b"<alice@example.com>\0")
    mta.command(b"R", b"<bob@example.net>\0")
    mta.close()
    recs = bed.records(1)
    m = messages(recs)[0]
    check(m["mta"] == "aborted", "mta %s" % m["mta"])
    for name, v in verdicts_of(recs, m["msg"]).items():
        check_verdict(v, name, "continue", "rcpt")
    recs = bed.closed(1)
    close = by_type(recs, "connection", event="close")[0]
    check(close["errors"] == 0 and all(x["state"] == "ok" for x in close["milters"]),
          "close record %s" % close)
    for log in (a, b):
        wait_for(lambda: evs(log, "close"), "%s closed" % os.path.basename(log))


def case_child_opcodes(bed):
    """(pitfalls 17, 19) a child's shutdown, SETSYMLIST, CONN_FAIL, early quarantine, progress"""
    f1 = bed.fake("f1", {b"M": [packet(b"4")]})
    f2 = bed.fake("f2", {b"H": [packet(b"l")]})
    f3 = bed.fake("f3", {b"R": [packet(b"f")]})
    f4 = bed.fake("f4", {b"R": [packet(b"q", b"held at rcpt\0"), packet(b"p"), packet(b"c")]})
    b = bed.milter("b")
    bed.shadowd(reply="wait")
    lines = bed.driver(files=bed.message_files(MESSAGE.format(n=1), MESSAGE.format(n=2)))
    check(not any(l.startswith("< SMFIR_PROGRESS") for l in lines), "progress reached the MTA")
    recs = bed.records(2)
    m1, m2 = messages(recs)[:2]
    v1, v2 = verdicts_of(recs, m1["msg"]), verdicts_of(recs, m2["msg"])
    check_verdict(v1["f1"], "f1 (SMFIR_SHUTDOWN at MAIL)", "tempfail", "mail")
    check_verdict(v2["f1"], "f1, message 2 (421 ends the connection)", "tempfail")
    check(b"M" not in [c for c in f1.cmds()][f1.cmds().index(b"M") + 1:],
          "f1 got another MAIL after its shutdown")
    check_verdict(v1["f2"], "f2 (SMFIR_SETSYMLIST at HELO)", "error")
    check_verdict(v1["f3"], "f3 (SMFIR_CONN_FAIL at RCPT)", "error")
    check_verdict(v1["f4"], "f4 (quarantine at RCPT)", "continue", "eom",
                  quarantine="held at rcpt")
    check_verdict(v1["b"], "b", "continue", "eom")
    check(m1["outcome"] == "tempfailed" and m1["decided_by"] == "f1",
          "message 1 outcome %s by %s" % (m1["outcome"], m1["decided_by"]))
    check(sorted(m1["unknown"]) == ["f2", "f3"], "unknown %s" % m1["unknown"])
    check(names(b).count("eom") == 2, "b: %s" % names(b))


# ---- the cases ----------------------------------------------------------------------

CASES = [
    ("macros_chained_immediate", lambda bed: case_macros(bed, "immediate", "chained")),
    ("macros_independent_wait", lambda bed: case_macros(bed, "wait", "independent")),
    ("no_nr_wait_chained", lambda bed: case_no_nr(bed, "wait", "chained")),
    ("no_nr_immediate_independent", lambda bed: case_no_nr(bed, "immediate", "independent")),
    ("symlist", case_symlist),
    ("leadspace_chained", case_leadspace_chained),
    ("leadspace_independent", case_leadspace_independent),
    ("folded_8bit_chained", lambda bed: case_folded_8bit(bed, "chained")),
    ("folded_8bit_independent", lambda bed: case_folded_8bit(bed, "independent")),
    ("body_replace", case_body_replace),
    ("body_replace_big", case_body_replace_big),
    ("body_replace_spooled", case_body_replace_spooled),
    ("body_replace_empty", case_body_replace_empty),
    ("body_independent", case_body_independent),
    ("body_skip_chained", lambda bed: case_body_skip(bed, "chained")),
    ("body_skip_independent", lambda bed: case_body_skip(bed, "independent")),
    ("abort_in_content_chained", lambda bed: case_abort_in_content(bed, "chained")),
    ("abort_in_content_independent", lambda bed: case_abort_in_content(bed, "independent")),
    ("eob_data_chained", lambda bed: case_eob_data(bed, "chained")),
    ("eob_data_independent", lambda bed: case_eob_data(bed, "independent")),
    ("connect_variants", case_connect_variants),
    ("flow_wait_chained", lambda bed: case_flow(bed, "wait", "chained")),
    ("flow_immediate_independent", lambda bed: case_flow(bed, "immediate", "independent")),
    ("helo_per_message", case_helo_per_message),
    ("silent_drops", case_silent_drops),
    ("connect_accept", case_connect_accept),
    ("connect_reject", case_connect_reject),
    ("helo_tempfail", case_helo_tempfail),
    ("discard_rcpt", case_discard_rcpt),
    ("discard_connect", case_discard_connect),
    ("replycode", case_replycode),
    ("quit_nc_immediate", lambda bed: case_quit_nc(bed, "immediate")),
    ("quit_nc_wait", lambda bed: case_quit_nc(bed, "wait")),
    ("quit_nc_immediate_independent", lambda bed: case_quit_nc(bed, "immediate", "independent")),
    ("cli_check", case_cli_check),
    ("cli_probe", case_cli_probe),
    ("sighup", case_sighup),
    ("sigterm", case_sigterm),
    ("sigterm_hung", case_sigterm_hung),
    ("overflow_independent", lambda bed: case_overflow(bed, "independent")),
    ("overflow_chained", lambda bed: case_overflow(bed, "chained")),
    ("big_body_chained", lambda bed: case_big_body(bed, "chained")),
    ("big_body_independent", lambda bed: case_big_body(bed, "independent")),
    ("max_connections", case_max_connections),
    ("progress", case_progress),
    ("header_edits", case_header_edits),
    ("big_header_chained", lambda bed: case_big_header(bed, "chained")),
    ("big_header_independent", lambda bed: case_big_header(bed, "independent")),
    ("offer_subset", case_offer_subset),
    ("mta_vanishes", case_mta_vanishes),
    ("child_opcodes", case_child_opcodes),
]


def main():
    """main - run the cases named on the command line, or all"""
    want = set(sys.argv[1:])
    unknown = want - {name for name, _ in CASES}
    if unknown:
        print("unknown cases: %s" % " ".join(sorted(unknown)))
        return 2
    failed = 0
    n = 0
    for name, fn in CASES:
        if want and name not in want:
            continue
        n += 1
        bed = PBed(name)
        try:
            try:
                fn(bed)
            finally:
                bed.settle()
            bad = bed.sanitizer_reports()
            check(not bad, "sanitizer report on shadowd's stderr: %s" % "; ".join(bad[:3]))
            print("ok %d - %s" % (n, name))
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            failed += 1
            print("not ok %d - %s: %s" % (n, name, e))
            if not isinstance(e, CaseFailure):
                traceback.print_exc(file=sys.stdout)
            bad = bed.sanitizer_reports()
            if bad and "sanitizer" not in str(e):
                print("#   also: sanitizer report on shadowd's stderr: %s" % "; ".join(bad[:3]))
            print("#   files in %s" % bed.dir)
            for f in sorted(os.listdir(bed.dir)):
                if f.endswith((".log", ".err", ".out")):
                    print("#   --- %s" % f)
                    for line in read(os.path.join(bed.dir, f)).splitlines()[-12:]:
                        print("#   " + line[:300])
        finally:
            bed.stop()
        sys.stdout.flush()
    print("%d passed, %d failed" % (n - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
