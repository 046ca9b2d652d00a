#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gen-log.py - write a shadowd event log (docs/event-log.md) for shadow-graphs' tests.

Deterministic for a seed. Each minute gets 0..RATE messages, each with one verdict per milter
(chain t1, t2, t3; t4 joins at --new-milter-at), a message record and connection records.
--gap A-B leaves minutes A..B empty; --damage N adds N damaged lines.
"""
import argparse
import json
import random
import sys
from datetime import datetime, timezone

ACTIONS = ["continue", "accept", "reject", "tempfail", "discard", "error", "timeout"]
WEIGHTS = {
    "t1": [60, 5, 20, 8, 2, 3, 2],
    "t2": [50, 10, 25, 5, 3, 4, 3],
    "t3": [70, 0, 10, 12, 3, 2, 3],
    "t4": [40, 10, 40, 5, 2, 2, 1],
}


def rfc3339(ms):
    d = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", type=int, required=True, help="first minute, seconds since epoch")
    ap.add_argument("--minutes", type=int, required=True)
    ap.add_argument("--rate", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--host", default="mx1")
    ap.add_argument("--new-milter-at", type=int, default=-1)
    ap.add_argument("--gap", action="append", default=[])
    ap.add_argument("--damage", type=int, default=0)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    gaps = [tuple(int(x) for x in g.split("-")) for g in a.gap]
    out = sys.stdout
    conn = 0
    lines = []
    for minute in range(a.minutes):
        if any(lo <= minute <= hi for lo, hi in gaps):
            continue
        n = rnd.randint(0, a.rate)
        stamps = sorted(rnd.randint(0, 59999) for _ in range(n))
        chain = ["t1", "t2", "t3"] + (["t4"] if 0 <= a.new_milter_at <= minute else [])
        for off in stamps:
            conn += 1
            ms = (a.start + minute * 60) * 1000 + off
            ts = rfc3339(ms)
            cid = "%06d" % conn
            base = {"v": 1, "ts": ts, "host": a.host, "conn": cid}
            lines.append(dict(base, type="connection", event="open", client_addr="192.0.2.%d" % (conn % 250 + 1),
                              client_name="[192.0.2.1]", client_port="25%03d" % (conn % 1000)))
            msg = cid + ".1"
            verdicts = {}
            decided = None
            quarantine = None
            unknown = []
            for m in chain:
                act = rnd.choices(ACTIONS, WEIGHTS[m])[0]
                q = "held by %s" % m if act in ("continue", "accept") and rnd.random() < 0.05 else None
                verdicts[m] = act
                if act in ("error", "timeout"):
                    unknown.append(m)
                if decided is None and act in ("reject", "tempfail", "discard"):
                    decided = (m, act)
                if q and quarantine is None:
                    quarantine = q
                lat = {s: rnd.randint(1, 3000) for s in ("mail", "rcpt", "eom") if rnd.random() < 0.9}
                lines.append(dict(base, type="verdict", msg=msg, queue_id="Q%06d" % conn,
                                  message_id="<m%d@example.com>" % conn, milter=m, action=act,
                                  stage="eom", connection=False, reply=None,
                                  reason="broke" if act in ("error", "timeout") else None,
                                  quarantine=q, rcpts=[], edits=[], latency_us=lat))
            if decided:
                outcome = {"reject": "rejected", "tempfail": "tempfailed", "discard": "discarded"}[decided[1]]
            elif quarantine:
                outcome = "quarantined"
            else:
                outcome = "delivered"
            lines.append(dict(base, type="message", msg=msg, queue_id="Q%06d" % conn,
                              message_id="<m%d@example.com>" % conn, client_addr="192.0.2.1",
                              client_name="[192.0.2.1]", helo="client.example", auth=None,
                              **{"from": "<a@example.com>"}, rcpts=["<b@example.net>"], size=1234,
                              mta="ended", outcome=outcome, decided_by=decided[0] if decided else None,
                              stage="eom" if decided else None, reply=None,
                              quarantine=quarantine if outcome == "quarantined" else None,
                              refused=[], edits=[], unknown=unknown, milters=verdicts, duration_ms=12))
            lines.append(dict(base, type="connection", event="close", client_addr="192.0.2.1",
                              client_name="[192.0.2.1]", client_port="25000", helo="client.example",
                              messages=1, errors=len(unknown), duration_ms=20, milters=[]))
    text = [json.dumps(x, separators=(",", ":")) for x in lines]
    for i in range(a.damage):
        pos = rnd.randint(1, max(1, len(text) - 1))
        text.insert(pos, ['{"v":1,"type":"message","ts":"broken', "not json at all",
                          '{"v":2,"type":"message"}'][i % 3])
    for t in text:
        out.write(t + "\n")


if __name__ == "__main__":
    main()
