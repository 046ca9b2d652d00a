#!/bin/bash
# tests/report/review.sh - shadow-report review: which would-be-blocked messages carry signs of
# wanted mail. The lists below were worked out by hand from the fixtures (see fixtures/allow.txt).
. "$(dirname "$0")/lib.sh"

# listed OPTIONS... - "QUEUE_ID SIGNS" per listed message, from --format json
listed() {
    "$SHADOW_REPORT" review $LOGS "$@" --format json 2>/dev/null |
        jq -r '.messages[] | "\(.queue_id // "-") \(.signs | join(","))"'
}

got=$(listed --allow "$FIXTURES/allow.txt" --trusted 2001:db8:1::/48 --trusted 10.0.0.0/8)
want='4QA1B2C3D2 allowed
4QA1B2C3D3 disagree
- disagree
8F2E1D0C01 allowed
8F2E1D0C02 disagree
4QA1B2C3D5 auth,disagree
4QB9C8D7E1 allowed
4QB9C8D7E2 allowed,disagree
9A8B7C6D01 allowed,disagree
9A8B7C6D02 allowed,disagree
9A8B7C6D03 trusted,disagree'
check "review --allow --trusted (IPv6 /48)" "$got" "$want"
got=$("$SHADOW_REPORT" review $LOGS --allow "$FIXTURES/allow.txt" --trusted 2001:db8:1::/48 \
    --format json 2>/dev/null | jq -c '[.messages_total, .blocked, .listed, .signs]')
check "review json totals" "$got" '[13,11,11,{"auth":1,"trusted":1,"allowed":6,"disagree":8}]'

# No allow list or networks: only authenticated senders and disagreements.
got=$(listed)
want='4QA1B2C3D3 disagree
- disagree
8F2E1D0C02 disagree
4QA1B2C3D5 auth,disagree
4QB9C8D7E2 disagree
9A8B7C6D01 disagree
9A8B7C6D02 disagree
9A8B7C6D03 disagree'
check "review: auth and disagreement only" "$got" "$want"

# IPv4 and IPv6 networks; Sendmail's IPv6: prefix is understood.
got=$(listed --trusted 192.0.2.0/24 --trusted 2001:db8::/32)
want='4QA1B2C3D2 trusted
4QA1B2C3D3 disagree
- disagree
8F2E1D0C01 trusted
8F2E1D0C02 trusted,disagree
4QA1B2C3D5 auth,trusted,disagree
4QB9C8D7E2 disagree
9A8B7C6D01 trusted,disagree
9A8B7C6D02 trusted,disagree
9A8B7C6D03 trusted,disagree'
check "review --trusted IPv4 and IPv6" "$got" "$want"

# --all lists the blocked messages without a sign too (the quarantined newsletter here).
got=$(listed --all | grep -c .)
check "review --all: every blocked message" "$got" "11"

# --milter: only what that milter refused; the text checked by hand.
"$SHADOW_REPORT" review $LOGS --milter greylist --allow "$FIXTURES/allow.txt" \
    --trusted 2001:db8:1::/48 >out 2>/dev/null
check "review --milter greylist text (hand-checked)" "$(cat out)" "$(cat "$EXPECTED/review-greylist.txt")"

# CSV: a row per listed message, signs last.
got=$("$SHADOW_REPORT" review $LOGS --format csv 2>/dev/null | csv_cols 3 12)
check "review csv" "$got" "$(listed)"

# Bad input: named, with the right exit code.
check_rc "review --trusted bad" 2 "$SHADOW_REPORT" review $LOGS --trusted 300.1.2.3/8
check_grep "review --trusted bad: names it" '--trusted: bad network "300.1.2.3/8"' err
check_rc "review --allow missing" 1 "$SHADOW_REPORT" review $LOGS --allow no-such-file
check_grep "review --allow missing: names it" "no-such-file" err
printf '@ok.example\nnot-an-address\n' >bad-allow.txt
check_rc "review --allow bad line" 1 "$SHADOW_REPORT" review $LOGS --allow bad-allow.txt
check_grep "review --allow bad line: file and line" 'bad-allow.txt:2: not an address or @domain: "not-an-address"' err
check_rc "review empty range" 0 "$SHADOW_REPORT" review $LOGS --since 2027-01-01
check_grep "review empty range: nothing listed" "review: 0 of 0 would-be-blocked messages (of 0)" out
finish
