#!/bin/bash
# tests/report/whatif.sh - shadow-report whatif: the numbers below were worked out by hand from
# the fixtures' verdicts with the rules of docs/event-log.md ("How the outcome is predicted");
# the full chain is checked against the outcomes shadowd itself logged (jq).
. "$(dirname "$0")/lib.sh"

# summary_of SUBSET OPTIONS... - the whatif numbers as one line
summary_of() {
    "$SHADOW_REPORT" whatif "$@" $LOGS --format json 2>/dev/null | jq -c '[.outcomes, .blocked,
        .newly_blocked, .newly_passed, .changed, .partly_refused,
        (.milters | map_values([.decided, .blocks_alone, .unique, .no_verdict, .overlap]))]'
}

# The full chain in its own order gives back what shadowd logged.
got=$("$SHADOW_REPORT" whatif greylist,spamd,dkim,clamav $LOGS --format json 2>/dev/null |
    jq -c '[.outcomes, .newly_blocked, .newly_passed, .changed]')
want=$(records | jq -sc 'map(select(.type == "message")) as $m
    | [(["delivered","rejected","tempfailed","discarded","quarantined"]
        | map({ key: ., value: (. as $o | $m | map(select(.outcome == $o)) | length) }) | from_entries),
       0, 0, 0]')
check "whatif full chain = logged outcomes" "$got" "$want"

# spamd alone.
check "whatif spamd" "$(summary_of spamd)" \
    '[{"delivered":7,"rejected":4,"tempfailed":1,"discarded":0,"quarantined":1},5,0,3,4,1,{"spamd":[6,5,5,0,{"spamd":5}]}]'

# greylist, clamav: RCPT refusals, a MAIL tempfail and a discard; clamav's timeout,
# unavailable and overflow count as continue.
check "whatif greylist,clamav" "$(summary_of greylist,clamav)" \
    '[{"delivered":10,"rejected":0,"tempfailed":2,"discarded":1,"quarantined":0},3,0,5,6,1,{"greylist":[2,2,2,0,{"greylist":2,"clamav":0}],"clamav":[1,1,1,0,{"greylist":0,"clamav":1}]}]'
"$SHADOW_REPORT" whatif greylist,clamav $LOGS >out 2>/dev/null
check "whatif greylist,clamav text (hand-checked)" "$(cat out)" "$(cat "$EXPECTED/whatif-greylist-clamav.txt")"

# Order matters: with dkim first, dkim decides the message both reject at end of message.
check "whatif dkim,spamd" "$(summary_of dkim,spamd)" \
    '[{"delivered":6,"rejected":4,"tempfailed":2,"discarded":0,"quarantined":1},6,0,2,3,1,{"dkim":[2,2,1,0,{"dkim":2,"spamd":1}],"spamd":[5,5,4,0,{"dkim":1,"spamd":5}]}]'
check "whatif spamd,dkim" "$("$SHADOW_REPORT" whatif spamd,dkim $LOGS --format json 2>/dev/null |
    jq -c '.milters | map_values(.decided)')" '{"spamd":6,"dkim":1}'

# A milter with no verdicts takes no part.
check "whatif spamd,nosuch" "$(summary_of spamd,nosuch)" \
    '[{"delivered":7,"rejected":4,"tempfailed":1,"discarded":0,"quarantined":1},5,0,3,4,1,{"spamd":[6,5,5,0,{"spamd":5,"nosuch":0}],"nosuch":[0,0,0,13,{"spamd":0,"nosuch":0}]}]'

# CSV carries the JSON numbers.
got=$("$SHADOW_REPORT" whatif greylist,clamav $LOGS --format csv 2>/dev/null | csv_cols 1 2 3 4 |
    awk '$1 == "totals" { print $3 "=" $4 }')
check "whatif csv totals" "$got" "$(printf 'messages=13\nblocked=3\nfull_blocked=8\nnewly_blocked=0\nnewly_passed=5\nchanged=6\npartly_refused=1')"

# Range and usage errors.
check "whatif empty range" "$(summary_of spamd --since 2027-01-01)" \
    '[{"delivered":0,"rejected":0,"tempfailed":0,"discarded":0,"quarantined":0},0,0,0,0,0,{"spamd":[0,0,0,0,{"spamd":0}]}]'
check_rc "whatif without milters" 2 "$SHADOW_REPORT" whatif $LOGS
check_grep "whatif without milters: says so" "missing MILTER" err
check_rc "whatif twice" 2 "$SHADOW_REPORT" whatif spamd,spamd $LOGS
check_grep "whatif twice: names it" 'milter "spamd" named twice' err
check_rc "whatif empty name" 2 "$SHADOW_REPORT" whatif spamd,,dkim $LOGS
finish
