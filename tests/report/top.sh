#!/bin/bash
# tests/report/top.sh - shadow-report top: every list jq works out from the fixtures, and a
# text report checked by hand (expected/top-mx1-greylist.txt).
. "$(dirname "$0")/lib.sh"

# want_top FILTER [LOG] - the "chain" and "milters" members of top --format json, every key,
# worked out by jq from the fixtures' records (or LOG's) that pass FILTER
want_top() {
    if [ $# -gt 1 ]; then jq -c . "$2"; else records; fi | jq -sc "[.[] | select($1)] as \$r | "'
      def bare: if . == null then "-" elif . == "<>" then "<>"
                elif startswith("<") and endswith(">") then .[1:-1] | ascii_downcase
                else ascii_downcase end;
      def domain: bare as $b | if $b == "<>" then "<>"
                  elif ($b | index("@")) then ($b | split("@") | last) else "-" end;
      def reply_key($a; $r): $r // (if $a == "reject" then "(default reject)"
                  elif $a == "tempfail" then "(default tempfail)" else "(discard)" end);
      def hit($m; $whole; $action; $reply; $refused):
          { sender: ($m.from | bare), domain: ($m.from | domain), client: ($m.client_addr // "-"),
            rcpts: (((if $whole then $m.rcpts else [] end) + ($refused | map(.rcpt))) | map(bare) | unique),
            replies: (((if $whole then [reply_key($action; $reply)] else [] end)
                       + ($refused | map(reply_key(.action; .reply)))) | unique) };
      def top($keys): $keys | group_by(.) | map({ key: .[0], count: length })
          | sort_by(-.count, .key);
      def lists($hits): { hit: ($hits | length),
          senders: top($hits | map(.sender)), sender_domains: top($hits | map(.domain)),
          clients: top($hits | map(.client)), recipients: top([$hits[].rcpts[]]),
          replies: top([$hits[].replies[]]) };
      ($r | map(select(.type == "message"))) as $m
      | ($m | map({ key: "\(.host) \(.msg) \(.ts)", value: . }) | from_entries) as $by
      | { chain: lists([$m[]
            | select((.outcome | IN("rejected", "tempfailed", "discarded")) or (.refused | length) > 0)
            | hit(.; (.outcome | IN("rejected", "tempfailed", "discarded"));
                  ({ rejected: "reject", tempfailed: "tempfail" }[.outcome] // "discard");
                  .reply; .refused)]),
          milters: ($r | map(select(.type == "verdict")) | group_by(.milter)
           | map({ key: .[0].milter, value: lists([.[]
               | select((.action | IN("reject", "tempfail", "discard")) or (.rcpts | length) > 0)
               | hit($by["\(.host) \(.msg) \(.ts)"]; (.action | IN("reject", "tempfail", "discard"));
                     .action; .reply; .rcpts)]) }) | from_entries) }' | jq -S .
}

# got_top OPTIONS... - the "chain" and "milters" members of top --format json
got_top() {
    "$SHADOW_REPORT" top -n 1000 "$@" --format json 2>/dev/null | jq -S '{ chain, milters }'
}

check "top: every list, all logs" "$(got_top $LOGS)" "$(want_top 'true')"
check "top: every list, mx2 on 2026-12-03" "$(got_top $LOGS --host mx2 --since 2026-12-03)" \
    "$(want_top '.host == "mx2" and .ts >= "2026-12-03"')"

# -n cuts each list; ties go in key order.
got=$("$SHADOW_REPORT" top -n 2 $LOGS --format json 2>/dev/null |
    jq -c '[.chain, .milters[] | .senders, .sender_domains, .clients, .recipients, .replies | length] | max')
check "top -n 2: at most 2 rows" "$got" "2"

# The text report, worked out by hand from mx1's records.
"$SHADOW_REPORT" top -n 2 --milter greylist --host mx1 $LOGS >out 2>/dev/null
check "top text (hand-checked)" "$(cat out)" "$(cat "$EXPECTED/top-mx1-greylist.txt")"

# csv_rows - each record of the CSV on stdin after its header as a JSON array, fields as
# written (CR and LF inside quoted fields kept), parsed as RFC 4180 by Python's csv module
csv_rows() {
    python3 -c '
import csv, io, json, sys
rows = list(csv.reader(io.TextIOWrapper(sys.stdin.buffer, newline=""), strict=True))
for r in rows[1:]:
    print(json.dumps(r, separators=(",", ":")))'
}

# json_rows - top --format json on stdin as the CSV rows it should give: scope ("chain" or
# "milter:NAME"), kind, rank, key, messages, share of all messages (4 decimals)
json_rows() {
    jq -c '.messages as $n | (["chain", .chain], (.milters | to_entries[] | ["milter:\(.key)", .value]))
        | .[0] as $scope | .[1] as $s
        | ("senders", "sender_domains", "clients", "recipients", "replies") as $kind
        | $s[$kind] | to_entries[]
        | [$scope, $kind, "\(.key + 1)", .value.key, "\(.value.count)", "\(.value.count) \($n)"]' |
        python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    count, total = map(int, r[5].split())
    r[5] = "%.4f" % (count / total)
    print(json.dumps(r, separators=(",", ":")))'
}

# CSV carries the same rows as JSON.
got=$("$SHADOW_REPORT" top -n 1000 $LOGS --format csv 2>/dev/null | csv_rows)
want=$("$SHADOW_REPORT" top -n 1000 $LOGS --format json 2>/dev/null | json_rows)
check "top csv: every row as in json" "$got" "$want"
check "top csv: the chain has rows" "$(grep -c '^\["chain",' <<<"$got")" \
    "$(want_top 'true' | jq '[.chain[] | arrays | length] | add')"

# A milter named "chain" is not the chain (fixtures/hostile.log, worked out by hand): the chain
# hit both messages (one rejected by the milter "chain", one by spamd), the milter "chain" one.
cp "$FIXTURES/hostile.log" .
check "top milter named chain: json" "$(got_top --log hostile.log | jq -c '[.chain.hit, .milters.chain.hit, .milters.spamd.hit]')" "[2,1,2]"
check "top milter named chain: every list" "$(got_top --log hostile.log)" "$(want_top 'true' hostile.log)"
got=$("$SHADOW_REPORT" top -n 1000 --log hostile.log --format csv 2>/dev/null | csv_rows)
check "top milter named chain: csv scopes" "$(jq -r '.[0]' <<<"$got" | sort -u)" \
    "$(printf 'chain\nmilter:chain\nmilter:spamd')"
check "top milter named chain: csv as json" "$got" \
    "$("$SHADOW_REPORT" top -n 1000 --log hostile.log --format json 2>/dev/null | json_rows)"
"$SHADOW_REPORT" top --log hostile.log >out 2>/dev/null
check "top milter named chain: text" "$(grep ' hit$' out)" \
    "$(printf 'Enforced chain: 2 messages hit\nMilter chain: 1 message hit\nMilter spamd: 2 messages hit')"

# Empty range: no hits, still a report.
check_rc "top empty range" 0 "$SHADOW_REPORT" top $LOGS --since 2027-01-01 --format json
check "top empty range: no hits" "$(jq -c '[.messages, .chain.hit, .milters]' out)" '[0,0,{}]'
check_rc "top -n 0" 2 "$SHADOW_REPORT" top -n 0 $LOGS
check_grep "top -n 0: says why" "-n: want a positive number" err
finish
