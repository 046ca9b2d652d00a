#!/bin/bash
# tests/report/summary.sh - shadow-report summary against counts jq works out from the fixtures
# (three logs: mx1 with damaged lines, mx2's rotated generation gzipped, and mx2's current log).
# jq reads the fixtures on its own: every line that is JSON of format version 1 is a record.
. "$(dirname "$0")/lib.sh"

ACTIONS='"accept","continue","reject","tempfail","discard","error","timeout","unavailable","overflow"'
OUTCOMES='"delivered","rejected","tempfailed","discarded","quarantined"'
FIELDS="\"seen\",$ACTIONS,\"quarantine\",\"edit\",\"rcpt_refusal\",\"decided\""

# want_lines FILTER - the expected key=value lines for records passing the jq FILTER
want_lines() {
    records | jq -sr "
      [.[] | select($1)] as \$r
      | (\$r | map(select(.type == \"message\"))) as \$m
      | (\$r | map(select(.type == \"verdict\"))) as \$v
      | def outcomes(\$ms): [$OUTCOMES] as \$os
          | \$os[] as \$o | [\$o, (\$ms | map(select(.outcome == \$o)) | length)];
      \"connections=\(\$r | map(select(.type == \"connection\" and .event == \"open\")) | length)\",
      \"messages=\(\$m | length)\",
      \"recipients=\(\$m | map(.rcpts | length) | add // 0)\",
      (outcomes(\$m) | \"outcome.\(.[0])=\(.[1])\"),
      \"partly_refused=\(\$m | map(select(.outcome == \"delivered\" and (.refused | length) > 0)) | length)\",
      \"incomplete=\(\$m | map(select((.unknown | length) > 0)) | length)\",
      \"aborted=\(\$m | map(select(.mta == \"aborted\")) | length)\",
      (\$v | group_by(.milter)[] | .[0].milter as \$n | . as \$vs
        | ([$ACTIONS][] as \$a | \"milter.\(\$n).\(\$a)=\(\$vs | map(select(.action == \$a)) | length)\"),
          \"milter.\(\$n).seen=\(\$vs | length)\",
          \"milter.\(\$n).quarantine=\(\$vs | map(select(.quarantine != null)) | length)\",
          \"milter.\(\$n).edit=\(\$vs | map(select((.edits | length) > 0)) | length)\",
          \"milter.\(\$n).rcpt_refusal=\(\$vs | map(select((.rcpts | length) > 0)) | length)\",
          \"milter.\(\$n).decided=\(\$m | map(select(.decided_by == \$n and .outcome != \"delivered\")) | length)\"),
      (range(24) as \$h | (if \$h < 10 then \"0\(\$h)\" else \"\(\$h)\" end) as \$hh
        | (\$m | map(select(.ts[11:13] == \$hh))) as \$hm
        | \"hour.\(\$hh).messages=\(\$hm | length)\", (outcomes(\$hm) | \"hour.\(\$hh).\(.[0])=\(.[1])\")),
      (\$m | group_by(.ts[0:10])[] | .[0].ts[0:10] as \$d | . as \$dm
        | \"day.\(\$d).messages=\(\$dm | length)\", (outcomes(\$dm) | \"day.\(\$d).\(.[0])=\(.[1])\"))
    " | sort
}

# json_lines - key=value lines of a summary --format json on stdin
json_lines() {
    jq -r "
      \"connections=\(.connections)\", \"messages=\(.messages)\", \"recipients=\(.recipients)\",
      (.outcomes | to_entries[] | \"outcome.\(.key)=\(.value)\"),
      \"partly_refused=\(.partly_refused)\", \"incomplete=\(.incomplete)\", \"aborted=\(.aborted)\",
      (.milters | to_entries[] | .key as \$n | .value | . as \$o
        | [$FIELDS][] as \$f | \"milter.\(\$n).\(\$f)=\(\$o[\$f])\"),
      (.hours[] | . as \$o | .hour as \$h | (\"messages\", $OUTCOMES) as \$f | \"hour.\(\$h).\(\$f)=\(\$o[\$f])\"),
      (.days[] | . as \$o | .day as \$d | (\"messages\", $OUTCOMES) as \$f | \"day.\(\$d).\(\$f)=\(\$o[\$f])\")
    " | sort
}

# csv_lines - the same key=value lines from summary --format csv on stdin
csv_lines() {
    tr -d '\r' | awk -F, 'NR > 1 {
        if ($1 == "totals" && $3 != "damaged") print $3 "=" $4
        else if ($1 == "outcome") print "outcome." $3 "=" $4
        else if ($1 == "milter" && $3 != "rcpts_refused") print "milter." $2 "." $3 "=" $4
        else if ($1 == "hour" || $1 == "day") print $1 "." $2 "." $3 "=" $4
    }' | sort
}

# text_lines - totals, outcomes and the per-milter table from the text summary on stdin
text_lines() {
    awk '
    /^Totals$/ { sect = "totals"; next }
    /^Enforced chain/ { sect = "outcomes"; next }
    /^Per milter/ { sect = "milters"; head = 1; next }
    /^$/ { sect = ""; next }
    sect == "totals" { print $1 "=" $2 }
    sect == "outcomes" && $2 ~ /^[0-9]+$/ { print "outcome." $1 "=" $2 }
    sect == "milters" && head { for (i = 1; i <= NF; i++) name[i] = $i; n = NF; head = 0; next }
    sect == "milters" {
        f = $1; k = 2
        if (f == "rcpt" || f == "decided") { f = (f == "rcpt") ? "rcpt_refusal" : "decided"; k = 3 }
        col = 1
        for (i = k; i <= NF; i++) if ($i ~ /^[0-9]+$/) print "milter." name[col++] "." f "=" $i
    }' | sort
}

# run_case NAME FILTER OPTIONS... - summary json, csv and text against want_lines FILTER
run_case() {
    name=$1 filter=$2
    shift 2
    want=$(want_lines "$filter")
    got=$("$SHADOW_REPORT" summary "$@" --format json 2>/dev/null | json_lines)
    check "summary $name: json" "$got" "$want"
    got=$("$SHADOW_REPORT" summary "$@" --format csv 2>/dev/null | csv_lines)
    check "summary $name: csv" "$got" "$want"
    got=$("$SHADOW_REPORT" summary "$@" 2>/dev/null | text_lines)
    check "summary $name: text" "$got" "$(grep -E '^(connections|messages|recipients|outcome\.|milter\.)' <<<"$want")"
}

run_case "all logs" 'true' $LOGS
run_case "--host mx2" '.host == "mx2"' $LOGS --host mx2
run_case "--since 2026-12-03" '.ts >= "2026-12-03"' $LOGS --since 2026-12-03
run_case "--since/--until with offset" \
    '.ts >= "2026-12-02T10:00:00" and .ts < "2026-12-02T14:30:00.500Z"' \
    $LOGS --since 2026-12-02T11:00:00+01:00 --until "2026-12-02 14:30:00.500Z"
run_case "empty range" 'false' $LOGS --since 2027-01-01

# --milter keeps only that milter's tables; totals stay.
got=$("$SHADOW_REPORT" summary $LOGS --milter spamd --format json 2>/dev/null |
    jq -c '[(.milters | keys), .messages]')
check "summary --milter spamd" "$got" "$(records | jq -sc '[["spamd"], (map(select(.type == "message")) | length)]')"

# Text shares of the outcomes: count / messages, one decimal.
got=$("$SHADOW_REPORT" summary $LOGS 2>/dev/null |
    awk '/^Enforced chain/ { s = 1; next } /^$/ { s = 0 } s && $3 ~ /%$/ { print $1, $3 }')
want=$(records | jq -sr 'map(select(.type == "message")) as $m
    | ["delivered","rejected","tempfailed","discarded","quarantined"][] as $o
    | "\($o) \($m | map(select(.outcome == $o)) | length) \($m | length)"' |
    awk '{ printf "%s %.1f%%\n", $1, 100 * $2 / $3 }')
check "summary text: outcome shares" "$got" "$want"

# Latency: answers and max exact, median/p95/p99 nearest rank within 1% (+1 us rounding),
# and the answers whose slowest stage took over half of a default MTA timeout.
got=$("$SHADOW_REPORT" summary $LOGS --format json 2>/dev/null | jq -c '.milters | map_values(.latency_us)')
want=$(records | jq -sc '
    def rank($xs; $q): $xs[(($q * ($xs | length)) | ceil) - 1];
    def over($l; $stages; $lim): [$l | to_entries[] | select(.key as $k | $stages | index($k)) | .value] | max // 0 | . > $lim;
    map(select(.type == "verdict" and (.latency_us | length) > 0))
    | group_by(.milter) | map({ key: .[0].milter, value: (
        (map(.latency_us | add) | sort) as $t
        | { answers: ($t | length), median: rank($t; 0.5), p95: rank($t; 0.95), p99: rank($t; 0.99),
            max: ($t | max),
            postfix_command_over_half: map(select(over(.latency_us; ["connect","helo","mail","rcpt","data","unknown"]; 15000000))) | length,
            postfix_content_over_half: map(select(over(.latency_us; ["header","eoh","body","eom"]; 150000000))) | length,
            sendmail_sr_over_half: map(select(over(.latency_us; ["connect","helo","mail","rcpt","data","unknown","header","eoh","body"]; 5000000))) | length,
            sendmail_e_over_half: map(select(over(.latency_us; ["eom"]; 150000000))) | length }) })
    | from_entries')
bad=$(jq -n --argjson got "$got" --argjson want "$want" -r '
    $want | to_entries[] | .key as $n | .value | to_entries[] | .key as $f | .value as $w
    | $got[$n][$f] as $g
    | select(if ($f | test("median|p95|p99")) then (($g - $w) | fabs) > ($w * 0.01 + 1) else $g != $w end)
    | "\($n).\($f): got \($g), want \($w)"')
check "summary latency (1% precision)" "$bad" ""
over=$(jq -n --argjson want "$want" '[$want[] | .postfix_command_over_half, .postfix_content_over_half, .sendmail_sr_over_half, .sendmail_e_over_half] | add')
check "summary latency: the fixtures have slow answers to count" "$([ "$over" -ge 3 ] && echo yes)" "yes"

# Damaged lines: each on stderr with file and line, and the count in the footer and JSON.
want=$( (damaged mx1.log mx1.log; damaged mx2.log.1.gz "$FIXTURES/mx2.log.1"; damaged mx2.log mx2.log) | sort)
"$SHADOW_REPORT" summary $LOGS >out 2>err
got=$(sed -n 's/^shadow-report: \([^:]*:[0-9]*\): .*/\1/p' err | sort)
check "summary: damaged lines on stderr with file:line" "$got" "$want"
check "summary: nothing else on stderr" "$(grep -vc '^shadow-report: [^:]*:[0-9]*: ' err || true)" "0"
check_grep "summary text footer: damaged count" "Damaged lines: $(wc -l <<<"$want")" out
check_grep "summary text footer: span covered" "Covered: 2026-12-02 09:15:00 to 2026-12-03 23:59:30" out
got=$("$SHADOW_REPORT" summary $LOGS --format json 2>/dev/null | jq -c '[.damaged, .span.first, .span.last]')
check "summary json: damaged and span" "$got" "[$(wc -l <<<"$want"),\"2026-12-02T09:15:00.000Z\",\"2026-12-03T23:59:30.000Z\"]"
"$SHADOW_REPORT" summary $LOGS --format csv >out 2>/dev/null
check_grep "summary csv: damaged count" "totals,,damaged,$(wc -l <<<"$want")" out
check "summary csv: CRLF line ends" "$(grep -vc $'\r$' out || true)" "0"

# Empty range: the report is still made, with zeros and no span.
check_rc "summary empty range" 0 "$SHADOW_REPORT" summary $LOGS --since 2027-01-01
check_grep "summary empty range: zero messages" "  messages     0" out
check_grep "summary empty range: no span" "Covered: - to -" out

# Positional files are logs too; the default log comes from --config's event_log.
got=$("$SHADOW_REPORT" summary mx1.log mx2.log.1.gz mx2.log --format json 2>/dev/null | jq .messages)
check "summary FILE arguments" "$got" "$(records | jq -s 'map(select(.type == "message")) | length')"
printf '[shadowd]\nevent_log = %s/mx2.log\n' "$work" >shadowd.conf
got=$("$SHADOW_REPORT" summary --config shadowd.conf --format json 2>/dev/null | jq .messages)
check "summary --config event_log" "$got" "$(jq -s 'map(select(.type == "message")) | length' mx2.log)"

# Several days: a per-day table in the text, and per hour summed over the days.
"$SHADOW_REPORT" summary $LOGS >out 2>/dev/null
check_grep "summary text: per-day table" "Per day" out
check_grep "summary text: per-hour over days" "Per hour of the day (totals over all days)" out
finish
