#!/bin/bash
# tests/report/top.sh - shadow-report top: every list jq works out from the fixtures, and a
# text report checked by hand (expected/top-mx1-greylist.txt).
. "$(dirname "$0")/lib.sh"

# want_scopes FILTER - the "scopes" object of top --format json, every key, from jq
want_scopes() {
    records | jq -sc "[.[] | select($1)] as \$r | "'
      def bare: if . == null then "-" elif . == "<>" then "<>"
                else (ltrimstr("<") | rtrimstr(">") | ascii_downcase) end;
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
                  .reply; .refused)]) }
        + ($r | map(select(.type == "verdict")) | group_by(.milter)
           | map({ key: .[0].milter, value: lists([.[]
               | select((.action | IN("reject", "tempfail", "discard")) or (.rcpts | length) > 0)
               | hit($by["\(.host) \(.msg) \(.ts)"]; (.action | IN("reject", "tempfail", "discard"));
                     .action; .reply; .rcpts)]) }) | from_entries)' | jq -S .
}

want=$(want_scopes 'true')
got=$("$SHADOW_REPORT" top -n 1000 $LOGS --format json 2>/dev/null | jq -S .scopes)
check "top: every list, all logs" "$got" "$want"
want=$(want_scopes '.host == "mx2" and .ts >= "2026-12-03"')
got=$("$SHADOW_REPORT" top -n 1000 $LOGS --host mx2 --since 2026-12-03 --format json 2>/dev/null |
    jq -S .scopes)
check "top: every list, mx2 on 2026-12-03" "$got" "$want"

# -n cuts each list; ties go in key order.
got=$("$SHADOW_REPORT" top -n 2 $LOGS --format json 2>/dev/null |
    jq -c '[.scopes[] | .senders, .sender_domains, .clients, .recipients, .replies | length] | max')
check "top -n 2: at most 2 rows" "$got" "2"

# The text report, worked out by hand from mx1's records.
"$SHADOW_REPORT" top -n 2 --milter greylist --host mx1 $LOGS >out 2>/dev/null
check "top text (hand-checked)" "$(cat out)" "$(cat "$EXPECTED/top-mx1-greylist.txt")"

# CSV carries the same counts as JSON.
got=$("$SHADOW_REPORT" top -n 1000 $LOGS --format csv 2>/dev/null | tr -d '\r' |
    awk -F, 'NR > 1 && $1 == "chain" && $2 == "senders" { print $4 "=" $5 }')
want=$("$SHADOW_REPORT" top -n 1000 $LOGS --format json 2>/dev/null |
    jq -r '.scopes.chain.senders[] | "\(.key)=\(.count)"')
check "top csv: chain senders as in json" "$got" "$want"

# Empty range: no hits, still a report.
check_rc "top empty range" 0 "$SHADOW_REPORT" top $LOGS --since 2027-01-01 --format json
check "top empty range: no hits" "$(jq -c '[.messages, .scopes.chain.hit]' out)" "[0,0]"
check_rc "top -n 0" 2 "$SHADOW_REPORT" top -n 0 $LOGS
check_grep "top -n 0: says why" "-n: want a positive number" err
finish
