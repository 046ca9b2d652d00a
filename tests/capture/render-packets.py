#!/usr/bin/env python3
"""render-packets - print a .packets capture as a "packet listing v1".

Reads one .packets file (written by milter-capture) and prints one line per
packet:  DIR NAME FIELD FIELD ...  where DIR is '>' (MTA to milter) or '<'
(milter to MTA) and NAME the Sendmail constant of the command or reply.
The format is defined in tests/capture/README.md; the C decoder test of the
project reproduces it, so this renderer is written independently from the
protocol description only (standard library, no shared code).

Anything malformed or unknown is an error: the program prints
"FILE:LINE: problem" on stderr and exits 1.  It never guesses.

usage: render-packets.py FILE.packets [> FILE.expect]
"""

import hashlib
import sys

MAX_INLINE = 256  # raw data up to this many bytes is shown inline

# MTA -> milter commands: byte -> (name, field layout)
COMMANDS = {
    ord("O"): ("SMFIC_OPTNEG", "optneg"),
    ord("D"): ("SMFIC_MACRO", "macro"),
    ord("C"): ("SMFIC_CONNECT", "connect"),
    ord("H"): ("SMFIC_HELO", "str1"),
    ord("M"): ("SMFIC_MAIL", "argv"),
    ord("R"): ("SMFIC_RCPT", "argv"),
    ord("T"): ("SMFIC_DATA", "empty"),
    ord("L"): ("SMFIC_HEADER", "str2"),
    ord("N"): ("SMFIC_EOH", "empty"),
    ord("B"): ("SMFIC_BODY", "raw"),
    ord("E"): ("SMFIC_BODYEOB", "rawopt"),
    ord("U"): ("SMFIC_UNKNOWN", "str1"),
    ord("A"): ("SMFIC_ABORT", "empty"),
    ord("Q"): ("SMFIC_QUIT", "empty"),
    ord("K"): ("SMFIC_QUIT_NC", "empty"),
}

# milter -> MTA replies
REPLIES = {
    ord("O"): ("SMFIR_OPTNEG", "optneg_reply"),
    ord("c"): ("SMFIR_CONTINUE", "empty"),
    ord("a"): ("SMFIR_ACCEPT", "empty"),
    ord("r"): ("SMFIR_REJECT", "empty"),
    ord("t"): ("SMFIR_TEMPFAIL", "empty"),
    ord("d"): ("SMFIR_DISCARD", "empty"),
    ord("y"): ("SMFIR_REPLYCODE", "str1"),
    ord("s"): ("SMFIR_SKIP", "empty"),
    ord("p"): ("SMFIR_PROGRESS", "empty"),
    ord("h"): ("SMFIR_ADDHEADER", "str2"),
    ord("i"): ("SMFIR_INSHEADER", "index_str2"),
    ord("m"): ("SMFIR_CHGHEADER", "index_str2"),
    ord("b"): ("SMFIR_REPLBODY", "raw"),
    ord("e"): ("SMFIR_CHGFROM", "str1or2"),
    ord("+"): ("SMFIR_ADDRCPT", "str1"),
    ord("2"): ("SMFIR_ADDRCPT_PAR", "str1or2"),
    ord("-"): ("SMFIR_DELRCPT", "str1"),
    ord("q"): ("SMFIR_QUARANTINE", "str1"),
    ord("4"): ("SMFIR_SHUTDOWN", "empty"),
}

FAMILIES = {ord("4"): "4", ord("6"): "6", ord("L"): "L", ord("U"): "U"}


class Malformed(Exception):
    """A problem with one packet or line; the message names it."""


def quote(data):
    """Render bytes as a double-quoted string with the v1 escapes."""
    out = ['"']
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x22:
            out.append('\\"')
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif b < 0x20 or b >= 0x7F:
            out.append("\\x%02x" % b)
        else:
            out.append(chr(b))
    out.append('"')
    return "".join(out)


def raw_field(data):
    """Inline data="..." for short data, else len=N sha256=HEX."""
    if len(data) <= MAX_INLINE:
        return "data=" + quote(data)
    return "len=%d sha256=%s" % (len(data), hashlib.sha256(data).hexdigest())


def u32(data, pos, what):
    """Read a big-endian 32-bit integer at pos."""
    if len(data) - pos < 4:
        raise Malformed("%s: need 4 bytes at data offset %d, have %d" % (what, pos, len(data) - pos))
    return int.from_bytes(data[pos:pos + 4], "big"), pos + 4


def cstring(data, pos, what):
    """Read one NUL-terminated string at pos; returns (bytes, next pos)."""
    end = data.find(b"\x00", pos)
    if end < 0:
        raise Malformed("%s: string at data offset %d has no terminating NUL" % (what, pos))
    return data[pos:end], end + 1


def strings(data, pos, what):
    """Split data[pos:] into NUL-terminated strings; all bytes must be used."""
    out = []
    while pos < len(data):
        s, pos = cstring(data, pos, what)
        out.append(s)
    return out


def render_fields(name, layout, data):
    """Return the list of rendered fields for one packet's data."""
    if layout == "empty":
        if data:
            raise Malformed("%s must carry no data, has %d bytes" % (name, len(data)))
        return []
    if layout == "optneg" or layout == "optneg_reply":
        if len(data) < 12:
            raise Malformed("%s needs at least 12 data bytes, has %d" % (name, len(data)))
        version, pos = u32(data, 0, name)
        actions, pos = u32(data, pos, name)
        protocol, pos = u32(data, pos, name)
        fields = ["version=%d" % version, "actions=0x%x" % actions, "protocol=0x%x" % protocol]
        if layout == "optneg":
            if pos != len(data):
                raise Malformed("%s must have exactly 12 data bytes, has %d" % (name, len(data)))
            return fields
        while pos < len(data):
            stage, pos = u32(data, pos, name + " macro list stage")
            names, pos = cstring(data, pos, name + " macro list")
            fields.append("stage=%d" % stage)
            fields.append(quote(names))
        return fields
    if layout == "macro":
        if not data:
            raise Malformed("%s has no command byte" % name)
        c = data[0]
        cmd = chr(c) if 0x21 <= c <= 0x7E else "\\x%02x" % c
        parts = strings(data, 1, name)
        if len(parts) % 2:
            raise Malformed("%s has an odd number of strings (%d): a name without value" % (name, len(parts)))
        return ["cmd=" + cmd] + [quote(p) for p in parts]
    if layout == "connect":
        host, pos = cstring(data, 0, name + " hostname")
        if pos >= len(data):
            raise Malformed("%s has no family byte" % name)
        fam = data[pos]
        pos += 1
        if fam not in FAMILIES:
            raise Malformed("%s has unknown family byte 0x%02x" % (name, fam))
        fields = [quote(host), "family=" + FAMILIES[fam]]
        if FAMILIES[fam] == "U":
            if pos != len(data):
                raise Malformed("%s family U must end after the family byte, %d bytes follow" % (name, len(data) - pos))
            return fields
        if len(data) - pos < 2:
            raise Malformed("%s has no 2-byte port" % name)
        port = int.from_bytes(data[pos:pos + 2], "big")
        pos += 2
        addr, pos = cstring(data, pos, name + " address")
        if pos != len(data):
            raise Malformed("%s has %d bytes after the address" % (name, len(data) - pos))
        return fields + ["port=%d" % port, quote(addr)]
    if layout in ("str1", "str2", "str1or2", "argv"):
        if not data:
            raise Malformed("%s has no data (needs a NUL-terminated string)" % name)
        parts = strings(data, 0, name)
        want = {"str1": (1, 1), "str2": (2, 2), "str1or2": (1, 2), "argv": (1, None)}[layout]
        if len(parts) < want[0] or (want[1] is not None and len(parts) > want[1]):
            if want[1] is None:
                expect = "at least %d" % want[0]
            elif want[0] == want[1]:
                expect = "exactly %d" % want[0]
            else:
                expect = "%d or %d" % want
            raise Malformed("%s needs %s NUL-terminated string(s), has %d" % (name, expect, len(parts)))
        return [quote(p) for p in parts]
    if layout == "index_str2":
        index, pos = u32(data, 0, name + " index")
        parts = strings(data, pos, name)
        if len(parts) != 2:
            raise Malformed("%s needs index plus exactly 2 NUL-terminated strings, has %d strings" % (name, len(parts)))
        return ["index=%d" % index] + [quote(p) for p in parts]
    if layout == "raw":
        return [raw_field(data)]
    if layout == "rawopt":
        return [raw_field(data)] if data else []
    raise AssertionError(layout)


def render_packet(direction, packet):
    """Render one whole packet (length prefix included) as a listing line."""
    if len(packet) < 5:
        raise Malformed("packet of %d bytes is shorter than length prefix plus command" % len(packet))
    length = int.from_bytes(packet[:4], "big")
    if length != len(packet) - 4:
        raise Malformed("length prefix says %d but %d bytes follow it" % (length, len(packet) - 4))
    table = COMMANDS if direction == ">" else REPLIES
    cmd = packet[4]
    if cmd not in table:
        kind = "MTA command" if direction == ">" else "milter reply"
        shown = chr(cmd) if 0x21 <= cmd <= 0x7E else "\\x%02x" % cmd
        raise Malformed("unknown %s byte 0x%02x (%s)" % (kind, cmd, shown))
    name, layout = table[cmd]
    fields = render_fields(name, layout, packet[5:])
    return " ".join([direction, name] + fields)


HEXDIGITS = frozenset(b"0123456789abcdef")


def parse_line(raw):
    """Split one non-comment line into (direction, packet bytes)."""
    if len(raw) < 3 or raw[0:1] not in (b">", b"<") or raw[1:2] != b" ":
        raise Malformed("expected '> HEX', '< HEX' or a '#' comment")
    hexpart = raw[2:]
    bad = [b for b in hexpart if b not in HEXDIGITS]
    if bad:
        b = bad[0]
        if b == 0x20:
            raise Malformed("space in packet hex (trailing space?)")
        raise Malformed("byte 0x%02x in packet hex (only lowercase 0-9a-f allowed)" % b)
    if len(hexpart) % 2:
        raise Malformed("odd number of hex digits (%d)" % len(hexpart))
    return raw[0:1].decode(), bytes.fromhex(hexpart.decode())


def render_file(path, out):
    """Render every packet line of path to out; raises SystemExit on error."""
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as e:
        sys.exit("%s: cannot read: %s" % (path, e.strerror))
    if not content:
        sys.exit("%s: empty file" % path)
    if not content.endswith(b"\n"):
        sys.exit("%s: last line has no newline" % path)
    lines = content[:-1].split(b"\n")
    result = []
    for number, raw in enumerate(lines, 1):
        try:
            if raw == b"":
                raise Malformed("blank line")
            if b"\r" in raw:
                raise Malformed("carriage return in line")
            if raw[0:1] == b"#":
                continue
            direction, packet = parse_line(raw)
            result.append(render_packet(direction, packet))
        except Malformed as e:
            sys.exit("%s:%d: %s" % (path, number, e))
    out.write("".join(line + "\n" for line in result))


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: render-packets.py FILE.packets\n")
        return 2 if len(argv) != 2 else 0
    render_file(argv[1], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
