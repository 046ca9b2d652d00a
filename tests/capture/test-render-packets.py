#!/usr/bin/env python3
"""test-render-packets - self-test of render-packets.py on hand-built packets.

usage: tests/capture/test-render-packets.py
Builds small .packets files in a temporary directory, runs the renderer on
each, and compares its output (or its error message) with what the listing
format v1 requires.  Prints "N passed, N failed"; exits 1 if anything failed.
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RENDER = os.path.join(HERE, "render-packets.py")
RESULTS = {"passed": 0, "failed": 0}


def pkt(direction, cmd, data=b""):
    """One .packets line for command byte cmd (str) and data (bytes)."""
    body = cmd.encode("latin-1") + data
    return "%s %s" % (direction, (len(body).to_bytes(4, "big") + body).hex())


def u32(n):
    return n.to_bytes(4, "big")


def run(text):
    with tempfile.NamedTemporaryFile("wb", suffix=".packets", delete=False) as f:
        f.write(text if isinstance(text, bytes) else text.encode())
        path = f.name
    try:
        r = subprocess.run([sys.executable, RENDER, path], capture_output=True, timeout=30)
    finally:
        os.unlink(path)
    return r.returncode, r.stdout.decode(), r.stderr.decode().replace(path, "FILE")


def ok(name, line, want):
    rc, out, err = run(line + "\n")
    good = rc == 0 and out == want + "\n"
    RESULTS["passed" if good else "failed"] += 1
    print("%s %s" % ("ok  " if good else "FAIL", name))
    if not good:
        print("     want %r\n     got  rc=%d %r %r" % (want, rc, out, err))


def bad(name, text, fragment):
    rc, out, err = run(text)
    good = rc != 0 and fragment in err and out == ""
    RESULTS["passed" if good else "failed"] += 1
    print("%s %s" % ("ok  " if good else "FAIL", name))
    if not good:
        print("     want error containing %r\n     got  rc=%d %r %r" % (fragment, rc, out, err))


def main():
    offer = u32(6) + u32(0x1FF) + u32(0x1FFFFF)
    ok("optneg offer", pkt(">", "O", offer), "> SMFIC_OPTNEG version=6 actions=0x1ff protocol=0x1fffff")
    ok("optneg reply with symlists", pkt("<", "O", u32(6) + u32(0) + u32(0x400) + u32(0) + b"j _\0" + u32(5) + b"\0"),
       '< SMFIR_OPTNEG version=6 actions=0x0 protocol=0x400 stage=0 "j _" stage=5 ""')
    ok("macro pairs", pkt(">", "D", b"C" + b"j\0mx\0{x}\0\0"), '> SMFIC_MACRO cmd=C "j" "mx" "{x}" ""')
    ok("empty macro", pkt(">", "D", b"H"), "> SMFIC_MACRO cmd=H")
    ok("macro odd cmd byte", pkt(">", "D", b"\x1f"), "> SMFIC_MACRO cmd=\\x1f")
    ok("connect inet", pkt(">", "C", b"[127.0.0.1]\x004" + (2525).to_bytes(2, "big") + b"127.0.0.1\0"),
       '> SMFIC_CONNECT "[127.0.0.1]" family=4 port=2525 "127.0.0.1"')
    ok("connect unknown family", pkt(">", "C", b"h\0U"), '> SMFIC_CONNECT "h" family=U')
    ok("mail argv", pkt(">", "M", b"<>\0SIZE=1\0"), '> SMFIC_MAIL "<>" "SIZE=1"')
    ok("escapes", pkt(">", "L", b'X\0a\\b"c\r\n\td\x01\x7f\xff \0'),
       '> SMFIC_HEADER "X" "a\\\\b\\"c\\r\\n\\td\\x01\\x7f\\xff "')
    ok("body inline 256", pkt(">", "B", b"a" * 256), '> SMFIC_BODY data="%s"' % ("a" * 256))
    ok("body hashed 257", pkt(">", "B", b"a" * 257),
       "> SMFIC_BODY len=257 sha256=" + __import__("hashlib").sha256(b"a" * 257).hexdigest())
    ok("empty body chunk", pkt(">", "B"), '> SMFIC_BODY data=""')
    ok("eob without data", pkt(">", "E"), "> SMFIC_BODYEOB")
    ok("eob with data", pkt(">", "E", b"x\0y"), '> SMFIC_BODYEOB data="x\\x00y"')
    ok("insheader", pkt("<", "i", u32(1) + b"X-A\0v\0"), '< SMFIR_INSHEADER index=1 "X-A" "v"')
    ok("chgheader delete", pkt("<", "m", u32(2) + b"X-A\0\0"), '< SMFIR_CHGHEADER index=2 "X-A" ""')
    ok("chgfrom 1 string", pkt("<", "e", b"<a@b>\0"), '< SMFIR_CHGFROM "<a@b>"')
    ok("addrcpt_par 2 strings", pkt("<", "2", b"<a@b>\0N=1\0"), '< SMFIR_ADDRCPT_PAR "<a@b>" "N=1"')
    ok("replbody", pkt("<", "b", b"hi\r\n"), '< SMFIR_REPLBODY data="hi\\r\\n"')
    ok("shutdown", pkt("<", "4"), "< SMFIR_SHUTDOWN")
    ok("quit_nc", pkt(">", "K"), "> SMFIC_QUIT_NC")

    bad("blank line", "\n" + pkt(">", "Q") + "\n", "FILE:1: blank line")
    bad("trailing space", pkt(">", "Q") + " \n", "FILE:1: space in packet hex")
    bad("uppercase hex", pkt(">", "O", offer).upper().replace("> ", "> ", 1) + "\n", "only lowercase")
    bad("no newline at end", pkt(">", "Q"), "last line has no newline")
    bad("carriage return", pkt(">", "Q") + "\r\n", "carriage return")
    bad("bad direction", "x 0000000151\n", "expected '> HEX'")
    bad("length mismatch", "> 0000000251\n", "length prefix says 2 but 1 bytes follow it")
    bad("unknown command", pkt(">", "X") + "\n", "unknown MTA command byte 0x58")
    bad("reply byte as command", pkt(">", "c") + "\n", "unknown MTA command byte 0x63")
    bad("data on continue", pkt("<", "c", b"\0") + "\n", "SMFIR_CONTINUE must carry no data")
    bad("short optneg", pkt(">", "O", u32(6)) + "\n", "needs at least 12 data bytes")
    bad("long optneg offer", pkt(">", "O", offer + b"\0") + "\n", "exactly 12 data bytes")
    bad("symlist without NUL", pkt("<", "O", offer + u32(1) + b"j") + "\n", "no terminating NUL")
    bad("symlist short stage", pkt("<", "O", offer + b"\0\0") + "\n", "need 4 bytes")
    bad("macro odd strings", pkt(">", "D", b"C" + b"j\0") + "\n", "odd number of strings")
    bad("macro no cmd", pkt(">", "D") + "\n", "has no command byte")
    bad("connect bad family", pkt(">", "C", b"h\0X") + "\n", "unknown family byte 0x58")
    bad("connect U with data", pkt(">", "C", b"h\0U\0") + "\n", "must end after the family byte")
    bad("connect no port", pkt(">", "C", b"h\x004\x01") + "\n", "no 2-byte port")
    bad("connect trailing", pkt(">", "C", b"h\x004\0\x19a\0b") + "\n", "bytes after the address")
    bad("helo without NUL", pkt(">", "H", b"x") + "\n", "no terminating NUL")
    bad("helo two strings", pkt(">", "H", b"x\0y\0") + "\n", "exactly 1")
    bad("header one string", pkt(">", "L", b"x\0") + "\n", "exactly 2")
    bad("mail empty", pkt(">", "M") + "\n", "has no data")
    bad("chgfrom three strings", pkt("<", "e", b"a\0b\0c\0") + "\n", "1 or 2")
    bad("insheader short index", pkt("<", "i", b"\0\0") + "\n", "need 4 bytes")
    bad("error names the line", "# c\n" + pkt(">", "Q") + "\n" + pkt(">", "Z") + "\n", "FILE:3:")
    print("%d passed, %d failed" % (RESULTS["passed"], RESULTS["failed"]))
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
