#!/usr/bin/python3
"""raw-milter - byte-level scripted fake milter, for replies libmilter would never send.

usage: raw-milter.py --listen PORT --log FILE [--connections N] [RULE...]

Serves one milter connection at a time on 127.0.0.1:PORT, N connections
(default 1), then exits; it also exits after 60 s.  Every packet it receives
is logged as one line: the command letter, and for SMFIC_MACRO the letter it
belongs to ("D:R").  Replies follow the RULEs; an event without a rule gets
"c", and A, D, K and Q get nothing.  A RULE is

  CMD=REPLY[,REPLY...]   CMD is the command letter (O C H M R T L N B E U),
                         optionally with @K to apply only to its K-th
                         occurrence (1-based) in the connection

and a REPLY is one of

  c a r t d s p 4 ...    that reply code, no data
  y:TEXT                 SMFIR_REPLYCODE with TEXT (\\r\\n escapes)
  h:NAME:VALUE           SMFIR_ADDHEADER
  q:REASON               SMFIR_QUARANTINE
  b:TEXT                 SMFIR_REPLBODY
  O:VERSION:ACTIONS:PROTOCOL   SMFIR_OPTNEG (numbers, 0x allowed)
  raw:HEX                these bytes as they are (length word included)
  sleep:MS               wait before the next reply
  none                   no reply at all
  close                  close the connection

The default SMFIR_OPTNEG reply is version 6, actions 0x1ff, protocol 0 (all
events, all replies).  Standard library only.
"""

import argparse
import socket
import struct
import sys
import time


def packet(code, data=b""):
    """packet - one milter packet: length word, code, data"""
    return struct.pack(">I", len(data) + 1) + code + data


def unesc(text):
    """unesc - \\r \\n escapes of a rule as bytes"""
    return text.replace("\\r", "\r").replace("\\n", "\n").encode("utf-8", "surrogateescape")


def encode(reply):
    """encode - the bytes of one REPLY, b"" for none, None for close; sleeps for sleep:MS"""
    kind, _, arg = reply.partition(":")
    if kind == "none":
        return b""
    if kind == "close":
        return None
    if kind == "sleep":
        time.sleep(int(arg) / 1000.0)
        return b""
    if kind == "raw":
        return bytes.fromhex(arg)
    if kind == "y":
        return packet(b"y", unesc(arg) + b"\0")
    if kind == "h":
        name, _, value = arg.partition(":")
        return packet(b"h", unesc(name) + b"\0" + unesc(value) + b"\0")
    if kind == "q":
        return packet(b"q", unesc(arg) + b"\0")
    if kind == "b":
        return packet(b"b", unesc(arg))
    if kind == "O":
        v, a, p = (int(x, 0) for x in arg.split(":"))
        return packet(b"O", struct.pack(">III", v, a, p))
    return packet(kind.encode())


def recv_exact(conn, n):
    """recv_exact - n bytes, or None at end of stream"""
    buf = b""
    while len(buf) < n:
        part = conn.recv(n - len(buf))
        if not part:
            return None
        buf += part
    return buf


def serve(conn, rules, logf):
    """serve - one milter connection"""
    seen = {}
    while True:
        head = recv_exact(conn, 5)
        if head is None:
            return
        length = struct.unpack(">I", head[:4])[0]
        cmd = head[4:5].decode("latin-1")
        data = recv_exact(conn, length - 1) if length > 1 else b""
        if data is None:
            return
        logf.write(("D:" + data[:1].decode("latin-1") if cmd == "D" else cmd) + "\n")
        logf.flush()
        if cmd in "ADKQ":
            if cmd == "Q":
                return
            continue
        seen[cmd] = seen.get(cmd, 0) + 1
        replies = rules.get("%s@%d" % (cmd, seen[cmd]), rules.get(cmd))
        if replies is None:
            replies = ["O:6:0x1ff:0"] if cmd == "O" else ["c"]
        for r in replies:
            out = encode(r)
            if out is None:
                return
            conn.sendall(out)


def main():
    """main - parse the rules, serve the connections"""
    ap = argparse.ArgumentParser(description="byte-level scripted fake milter")
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("rules", nargs="*")
    args = ap.parse_args()
    rules = {}
    for rule in args.rules:
        key, _, replies = rule.partition("=")
        rules[key] = replies.split(",") if replies else ["none"]
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.listen))
    srv.listen(4)
    srv.settimeout(60)
    with open(args.log, "a") as logf:
        for _ in range(args.connections):
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                sys.exit("raw-milter: no connection within 60 s")
            conn.settimeout(60)
            with conn:
                try:
                    serve(conn, rules, logf)
                except (socket.timeout, ConnectionError) as e:
                    logf.write("# %s\n" % e)
            logf.write("# end\n")
            logf.flush()


if __name__ == "__main__":
    main()
