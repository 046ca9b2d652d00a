#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""mta-probe - a tiny scripted MTA side that shows every milter reply byte for byte.

Used by tests/milter/selftest.sh where miltertest cannot look: the exact text of a
multi-line SMFIR_REPLYCODE, and the invalid replies of test-milter --garbage.

usage: mta-probe.py HOST PORT [--until STAGE] [--protocol MASK] [--timeout S]

It offers version 6, actions 0x1ff and the given protocol mask (default 0x1fffff,
all bits but the MDS ones), then sends one SMTP session: D+C connect, H helo,
D+M mail, D+R rcpt, T data, L Subject header, N eoh, B body, E eom, Q quit.
Steps the milter switched off with SMFIP_NO* are not sent; steps it promised not
to answer (SMFIP_NR_*) are not waited for. After STAGE (default eom) it quits.

Output, one line per reply packet read:
  STAGE code=C len=N data="..."      a well-formed reply (data with Python escapes)
  STAGE badlen=N                      length word 0 or above 65535: stops
  STAGE badcode=0xHH len=N            a code no milter may send at STAGE: stops
  STAGE eof | STAGE timeout           the milter closed the connection / went quiet: stops
Exit status: 0 if the session ran to the end, 1 if it stopped early, 2 on usage errors.
"""

import argparse
import socket
import struct
import sys

MAX_DATA = 65535
ENVELOPE_CODES = set(b"cartdys")  # reply codes allowed after C H M R T L N B U
EOM_CODES = ENVELOPE_CODES | set(b"pqhime+2-b")  # and after E
NO_FLAG = {"connect": 0x1, "helo": 0x2, "mail": 0x4, "rcpt": 0x8, "body": 0x10,
           "header": 0x20, "eoh": 0x40, "data": 0x200}
NR_FLAG = {"connect": 0x1000, "helo": 0x2000, "mail": 0x4000, "rcpt": 0x8000,
           "data": 0x10000, "header": 0x80, "eoh": 0x40000, "body": 0x80000}
ORDER = ["negotiate", "connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom"]


class Stop(Exception):
    """The session cannot go on (the reason was printed)."""


def packet(code, data=b""):
    return struct.pack(">I", len(data) + 1) + code + data


def read_exact(sock, n, stage):
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except socket.timeout:
            print(f"{stage} timeout", flush=True)
            raise Stop() from None
        if not chunk:
            print(f"{stage} eof", flush=True)
            raise Stop()
        buf += chunk
    return buf


def read_reply(sock, stage, allowed):
    (length,) = struct.unpack(">I", read_exact(sock, 4, stage))
    if length == 0 or length > MAX_DATA + 1:
        print(f"{stage} badlen={length}", flush=True)
        raise Stop()
    body = read_exact(sock, length, stage)
    code, data = body[0], body[1:]
    if code not in allowed:
        print(f"{stage} badcode=0x{code:02x} len={length}", flush=True)
        raise Stop()
    text = data.decode("latin-1").encode("unicode_escape").decode("ascii").replace('"', '\\"')
    print(f'{stage} code={chr(code)} len={length} data="{text}"', flush=True)
    return code, data


def session(sock, until, protocol):
    sock.sendall(packet(b"O", struct.pack(">III", 6, 0x1FF, protocol)))
    (length,) = struct.unpack(">I", read_exact(sock, 4, "negotiate"))
    if length == 0 or length > MAX_DATA + 1:
        print(f"negotiate badlen={length}", flush=True)
        raise Stop()
    body = read_exact(sock, length, "negotiate")
    if body[0:1] != b"O" or len(body) < 13:
        print(f"negotiate badcode=0x{body[0]:02x} len={length}", flush=True)
        raise Stop()
    version, actions, proto = struct.unpack(">III", body[1:13])
    print(f"negotiate code=O version={version} actions=0x{actions:x} protocol=0x{proto:x}",
          flush=True)
    if until == "negotiate":
        return

    steps = [
        ("connect", b"C", b"localhost\x004" + struct.pack(">H", 4321) + b"192.0.2.9\x00",
         b"C" + b"j\x00mx.probe.test\x00"),
        ("helo", b"H", b"client.probe.test\x00", None),
        ("mail", b"M", b"<from@probe.test>\x00", b"M" + b"i\x00PROBE1\x00"),
        ("rcpt", b"R", b"<to@probe.test>\x00", b"R" + b"{rcpt_addr}\x00to@probe.test\x00"),
        ("data", b"T", b"", None),
        ("header", b"L", b"Subject\x00probe\x00", None),
        ("eoh", b"N", b"", None),
        ("body", b"B", b"probe body\r\n", None),
    ]
    for stage, code, data, macros in steps:
        if proto & NO_FLAG[stage]:
            continue
        if macros is not None:
            sock.sendall(packet(b"D", macros))
        sock.sendall(packet(code, data))
        if not proto & NR_FLAG[stage]:
            read_reply(sock, stage, ENVELOPE_CODES)
        if stage == until:
            return
    sock.sendall(packet(b"E"))
    while True:
        rcode, _ = read_reply(sock, "eom", EOM_CODES)
        if rcode in ENVELOPE_CODES:
            break


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--until", default="eom", choices=ORDER)
    ap.add_argument("--protocol", default="0x1fffff", type=lambda s: int(s, 0))
    ap.add_argument("--timeout", default=5.0, type=float)
    args = ap.parse_args()
    try:
        sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    except OSError as e:
        print(f"connect failed: {e}", flush=True)
        return 1
    try:
        session(sock, args.until, args.protocol)
        sock.sendall(packet(b"Q"))
    except Stop:
        return 1
    except OSError as e:
        print(f"socket error: {e}", flush=True)
        return 1
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
