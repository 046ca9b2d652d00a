#!/bin/bash
# tests/report/explain.sh - shadow-report explain: text checked by hand (expected/explain-*.txt),
# JSON against the fixture's own records, and the ways of naming a message.
. "$(dirname "$0")/lib.sh"

"$SHADOW_REPORT" explain 4QB9C8D7E2 --log mx1.log >out 2>/dev/null
check "explain by queue ID: discard, error (hand-checked)" "$(cat out)" "$(cat "$EXPECTED/explain-discard.txt")"
"$SHADOW_REPORT" explain lucky-2@lottery.example --log mx1.log >out 2>/dev/null
check "explain by Message-ID without brackets: rcpt tempfails (hand-checked)" "$(cat out)" \
    "$(cat "$EXPECTED/explain-greylisted.txt")"

# JSON: the verdicts, outcome and refused recipients as the fixture has them.
for id in 4QA1B2C3D2 9A8B7C6D01 8F2E1D0C01 '<f2@corp.example>'; do
    got=$("$SHADOW_REPORT" explain "$id" $LOGS --format json 2>/dev/null |
        jq -c '.messages[] | [(.verdicts | map([.milter, .action, .stage, .reply, .reason, .quarantine,
            (.rcpts | map(.rcpt)), (.edits | length), .latency_us])), .outcome, .decided_by,
            (.refused | map([.rcpt, .action, .milter])), .unknown, .from, .rcpts, .auth]')
    want=$(records | jq -sc --arg id "$id" '
        (map(select(.type == "message" and (.queue_id == $id or .message_id == $id)))[0]) as $m
        | [(map(select(.type == "verdict" and .msg == $m.msg and .host == $m.host and .ts == $m.ts))
            | map([.milter, .action, .stage, .reply, .reason, .quarantine, (.rcpts | map(.rcpt)),
                   (.edits | length), .latency_us])),
           $m.outcome, $m.decided_by, ($m.refused | map([.rcpt, .action, .milter])), $m.unknown,
           $m.from, $m.rcpts, $m.auth]')
    check "explain $id --format json" "$got" "$want"
done

# shadowd's own id is unique only within one run of one host: every match is shown.
got=$("$SHADOW_REPORT" explain 000001.1 $LOGS --format json 2>/dev/null | jq -c '[.messages[] | [.host, .queue_id]]')
want=$(records | jq -sc 'map(select(.type == "message" and .msg == "000001.1") | [.host, .queue_id]) | sort_by(.[1])')
check "explain shadowd id: all matches" "$(jq -c 'sort_by(.[1])' <<<"$got")" "$want"
got=$("$SHADOW_REPORT" explain 000001.1 $LOGS 2>/dev/null | grep -c '^Message ')
check "explain shadowd id: text lists all" "$got" "3"

# CSV: one row per verdict.
got=$("$SHADOW_REPORT" explain 9A8B7C6D02 $LOGS --format csv 2>/dev/null | tr -d '\r' | awk -F, 'NR > 1 { print $5 ":" $6 }')
check "explain csv: a row per verdict" "$got" "$(printf 'greylist:continue\nspamd:reject\ndkim:continue\nclamav:overflow')"

# Not found (or outside the range) is exit 1; no ID is a usage error.
check_rc "explain unknown ID" 1 "$SHADOW_REPORT" explain NOSUCHID $LOGS
check_grep "explain unknown ID: says so" 'no message with ID "NOSUCHID"' err
check_rc "explain outside the range" 1 "$SHADOW_REPORT" explain 4QB9C8D7E2 $LOGS --until 2026-12-03
check_rc "explain without ID" 2 "$SHADOW_REPORT" explain $LOGS
check_grep "explain without ID: says so" "missing ID" err
finish
