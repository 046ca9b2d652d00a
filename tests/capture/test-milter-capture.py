#!/usr/bin/env python3
"""test-milter-capture - self-test of milter-capture (framing, errors, limits).

usage: tests/testbed/netns-run tests/capture/test-milter-capture.py PATH/TO/milter-capture
Runs milter-capture against a fake upstream milter on loopback (ephemeral
ports, unix sockets in a temporary directory) and checks what it relays and
records.  Every socket operation has a timeout; every loop is bounded.
Prints "N passed, N failed" and exits 1 if anything failed.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = None
TMP = None
RESULTS = {"passed": 0, "failed": 0}
OFFER = bytes.fromhex("0000000d4f00000006000001ff001fffff")
REPLY = bytes.fromhex("0000000d4f00000006000001ff00000400")
CONT = bytes.fromhex("0000000163")


def check(name, cond, detail=""):
    if cond:
        RESULTS["passed"] += 1
        print("ok   %s" % name)
    else:
        RESULTS["failed"] += 1
        print("FAIL %s %s" % (name, detail))


class Upstream(threading.Thread):
    """Fake milter: accepts one connection, records what it gets, answers
    each complete 'O' packet with REPLY and every other packet except D, A and Q
    with CONT."""

    def __init__(self, family=socket.AF_INET, path=None):
        super().__init__(daemon=True)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_UNIX:
            self.sock.bind(path)
            self.addr = "unix:" + path
        else:
            self.sock.bind(("127.0.0.1", 0))
            self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.received = b""
        self.start()

    def run(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        c.settimeout(10)
        buf = b""
        try:
            for _ in range(10000):
                d = c.recv(65536)
                if not d:
                    break
                self.received += d
                buf += d
                while len(buf) >= 4:
                    n = int.from_bytes(buf[:4], "big")
                    if len(buf) < 4 + n:
                        break
                    pkt, buf = buf[:4 + n], buf[4 + n:]
                    if pkt[4:5] == b"O":
                        c.sendall(REPLY)
                    elif pkt[4:5] not in (b"D", b"A", b"Q"):
                        c.sendall(CONT)
        except OSError:
            pass
        c.close()
        self.sock.close()


def start_capture(upstream, outdir, extra=()):
    portfile = os.path.join(outdir, "port")
    p = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", "--port-file", portfile, "--upstream", upstream,
                          "--outdir", outdir] + list(extra), stderr=subprocess.PIPE)
    for _ in range(100):
        if os.path.exists(portfile):
            break
        time.sleep(0.05)
    with open(portfile) as f:
        return p, int(f.read())


def mta(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    out = b""
    for _ in range(1000):
        if len(out) >= n:
            break
        try:
            d = s.recv(n - len(out))
        except ConnectionResetError:
            break
        if not d:
            break
        out += d
    return out


def finish(p):
    try:
        _, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return p.returncode, err.decode(errors="replace")


def lines(outdir, n=1):
    with open(os.path.join(outdir, "conn-%d.packets" % n)) as f:
        return f.read().splitlines()


def newdir(name):
    d = os.path.join(TMP, name)
    os.mkdir(d)
    return d


def test_relay():
    d = newdir("relay")
    up = Upstream()
    p, port = start_capture(up.addr, d, ["--connections", "1"])
    s = mta(port)
    # the offer split into single bytes, then two packets in one write
    for b in OFFER:
        s.send(bytes([b]))
        time.sleep(0.002)
    check("relay: reply to O passed back unchanged", recv_exact(s, len(REPLY)) == REPLY)
    two = bytes.fromhex("0000000244480000001048636c69656e742e74622e7465737400")
    s.sendall(two)
    check("relay: reply to H", recv_exact(s, 5) == CONT)
    s.sendall(bytes.fromhex("0000000151"))
    s.shutdown(socket.SHUT_WR)
    rest = recv_exact(s, 100)
    s.close()
    rc, err = finish(p)
    up.join(5)
    want = ["> " + OFFER.hex(), "< " + REPLY.hex(), "> 000000024448",
            "> 0000001048636c69656e742e74622e7465737400", "< 0000000163", "> 0000000151"]
    got = [l for l in lines(d) if not l.startswith("#")]
    check("relay: exit status 0", rc == 0, "rc=%s %s" % (rc, err))
    check("relay: packets recorded in relay order", got == want, "got %r" % got)
    check("relay: upstream got the bytes unchanged", up.received == OFFER + two + bytes.fromhex("0000000151"))
    check("relay: trailer written", lines(d)[-1] == "# end of connection 1", lines(d)[-1])
    check("relay: nothing extra to MTA after EOF", rest == b"", repr(rest))


def test_bad_length(value, label):
    d = newdir("badlen-" + label)
    up = Upstream()
    p, port = start_capture(up.addr, d, ["--connections", "1"])
    s = mta(port)
    s.sendall(OFFER)
    recv_exact(s, len(REPLY))
    s.sendall(value.to_bytes(4, "big") + b"X")
    closed = recv_exact(s, 10) == b""
    s.close()
    rc, err = finish(p)
    ls = lines(d)
    check("bad length %s: connection closed" % label, closed)
    check("bad length %s: exit status 1" % label, rc == 1, "rc=%s" % rc)
    check("bad length %s: error comment" % label, any(l.startswith("# error: bad length prefix") for l in ls), ls)
    check("bad length %s: complete packets kept" % label, ("> " + OFFER.hex()) in ls and ("< " + REPLY.hex()) in ls)
    check("bad length %s: message names it on stderr" % label, "bad length prefix %d" % value in err, err)
    check("bad length %s: no packet line for it" % label, not any(l.startswith("> " + value.to_bytes(4, "big").hex()) for l in ls))


def test_refused():
    d = newdir("refused")
    s0 = socket.socket()
    s0.bind(("127.0.0.1", 0))
    dead = "127.0.0.1:%d" % s0.getsockname()[1]
    s0.close()
    p, port = start_capture(dead, d, ["--connections", "1"])
    s = mta(port)
    s.sendall(OFFER)
    closed = recv_exact(s, 10) == b""
    s.close()
    rc, err = finish(p)
    check("refused upstream: MTA connection closed", closed)
    check("refused upstream: exit 1 and message names address and errno text",
          rc == 1 and ("connect to upstream %s: Connection refused" % dead) in err, err)


def test_partial_unix():
    d = newdir("partial")
    up = Upstream(socket.AF_UNIX, os.path.join(TMP, "up.sock"))
    p, port = start_capture(up.addr, d, ["--connections", "1"])
    s = mta(port)
    s.sendall(OFFER[:7])
    time.sleep(0.1)
    s.shutdown(socket.SHUT_WR)
    rest = recv_exact(s, 10)
    s.close()
    rc, err = finish(p)
    up.join(5)
    ls = lines(d)
    check("partial packet over unix upstream: exit 0", rc == 0, "rc=%s %s" % (rc, err))
    check("partial packet: not recorded as a packet", not any(l.startswith(">") for l in ls), ls)
    check("partial packet: comment says so", any("middle of a packet" in l for l in ls), ls)
    check("partial packet: bytes still passed on", up.received == OFFER[:7], repr(up.received))
    check("partial packet: MTA sees EOF", rest == b"")


def test_time_limit():
    d = newdir("timeout")
    up = Upstream()
    t0 = time.time()
    p, _ = start_capture(up.addr, d, ["--timeout", "1"])
    rc, err = finish(p)
    check("time limit: exit 2 after about 1 s", rc == 2 and time.time() - t0 < 5, "rc=%s %s" % (rc, err))
    check("time limit: says so", "time limit of 1 s reached" in err, err)


def test_usage():
    r = subprocess.run([BIN, "--listen", "nonsense", "--upstream", "127.0.0.1:1", "--outdir", TMP],
                       stderr=subprocess.PIPE, timeout=10)
    check("bad address: clear error", r.returncode == 1 and b"--listen: bad address" in r.stderr, r.stderr)
    r = subprocess.run([BIN, "--bogus", "x"], stderr=subprocess.PIPE, timeout=10)
    check("unknown option: exit 64", r.returncode == 64, r.stderr)


def main(argv):
    global BIN, TMP
    if len(argv) != 2:
        sys.stderr.write("usage: test-milter-capture.py PATH/TO/milter-capture\n")
        return 64
    BIN = os.path.abspath(argv[1])
    TMP = tempfile.mkdtemp(prefix="test-milter-capture.")
    try:
        test_relay()
        test_bad_length(0, "0")
        test_bad_length(16 * 1024 * 1024 + 1, "16MiB+1")
        test_refused()
        test_partial_unix()
        test_time_limit()
        test_usage()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (RESULTS["passed"], RESULTS["failed"]))
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
