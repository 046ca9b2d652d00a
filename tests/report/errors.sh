#!/bin/bash
# tests/report/errors.sh - shadow-report's command line: --help, exit codes (0 ok, 1 runtime
# error, 2 usage error), and messages that name the option or file and the bad value.
. "$(dirname "$0")/lib.sh"

check_rc "no subcommand" 2 "$SHADOW_REPORT"
check_grep "no subcommand: usage" "Usage: shadow-report SUBCOMMAND" err
check_rc "unknown subcommand" 2 "$SHADOW_REPORT" frobnicate
check_grep "unknown subcommand: named" 'unknown subcommand "frobnicate"' err
check_rc "--help" 0 "$SHADOW_REPORT" --help
for cmd in summary top explain review whatif; do
    check_rc "$cmd --help" 0 "$SHADOW_REPORT" "$cmd" --help-all
    check_grep "$cmd --help: common options" "--log=FILE" out
    check_grep "$cmd --help: range" "--since=TIME" out
    check_rc "$cmd --help (short)" 0 "$SHADOW_REPORT" "$cmd" --help
    check_rc "$cmd unknown option" 2 "$SHADOW_REPORT" "$cmd" --no-such-option
done
check_grep "review --help: its own options" "--trusted=CIDR" <("$SHADOW_REPORT" review --help)
check_grep "top --help: its own options" "--number=N" <("$SHADOW_REPORT" top --help)

# Times: every documented form parses; bad ones name the option and the value.
for t in today yesterday now -24h -7d -90m -30s -2w 2026-12-03 2026-12-03T10:00 \
    2026-12-03T10:00:00Z "2026-12-03 10:00:00" 2026-12-03T10:00:00.250+02:00; do
    check_rc "--since $t" 0 "$SHADOW_REPORT" summary $LOGS --since "$t"
done
for t in 2026-13-45 -24x tomorrow "" 12/03/2026 -h; do
    check_rc "--since '$t'" 2 "$SHADOW_REPORT" summary $LOGS --since "$t"
    check_grep "--since '$t': named" "--since: bad time \"$t\"" err
done
check_rc "--until bad" 2 "$SHADOW_REPORT" top $LOGS --until 2026-02-30
check_grep "--until bad: named" '--until: bad time "2026-02-30"' err
# yesterday..today is one day: the fixtures' days hold what they hold, no more.
check_rc "--since yesterday --until today" 0 "$SHADOW_REPORT" summary $LOGS --since yesterday --until today

check_rc "--format bad" 2 "$SHADOW_REPORT" summary $LOGS --format xml
check_grep "--format bad: named" '--format: unknown format "xml"' err

# Files: an unreadable log is a runtime error naming it; so is a missing --config.
check_rc "missing log" 1 "$SHADOW_REPORT" summary --log mx1.log --log no-such.log
check_grep "missing log: named" "no-such.log" err
check_rc "missing --config" 1 "$SHADOW_REPORT" summary --config no-such.conf
check_grep "missing --config: named" "no-such.conf" err
printf '[shadowd]\nno_such_key = 1\n' >bad.conf
check_rc "bad --config" 1 "$SHADOW_REPORT" summary --config bad.conf
check_grep "bad --config: file and line" "bad.conf:2" err

# Standard input is a log too ("-").
got=$("$SHADOW_REPORT" summary --log - --format json <mx2.log 2>/dev/null | jq .messages)
check "--log - reads standard input" "$got" "$(jq -s 'map(select(.type == "message")) | length' mx2.log)"

# A log with nothing but damage still gives a report, and says so.
printf 'garbage\n{"v":1,"type":"message"}\n{"v":1,"type":"verdict","ts":"2026-12-03T10:00:00.000Z"' >damaged.log
check_rc "only damage" 0 "$SHADOW_REPORT" summary --log damaged.log
check_grep "only damage: footer" "Damaged lines: 3" out
check "only damage: each line on stderr" "$(sed -n 's/^shadow-report: \(damaged.log:[0-9]*\): .*/\1/p' err)" \
    "$(printf 'damaged.log:1\ndamaged.log:2\ndamaged.log:3')"

# A peer's escape sequences never reach the terminal: text shows them as '?'; JSON keeps them.
printf '%s\n' '{"v":1,"type":"message","ts":"2026-12-03T10:00:00.000Z","host":"mx","conn":"000001","msg":"000001.1","queue_id":"Q1","message_id":null,"client_addr":"192.0.2.1","client_name":"[192.0.2.1]","helo":"evil\u001b]0;owned\u0007","auth":null,"from":"<a@b.example>","rcpts":["<c@d.example>"],"size":10,"mta":"ended","outcome":"delivered","decided_by":null,"stage":null,"reply":null,"quarantine":null,"refused":[],"edits":[],"unknown":[],"milters":{},"duration_ms":1}' >esc.log
check_rc "escapes in text" 0 "$SHADOW_REPORT" explain Q1 --log esc.log
check "escapes in text: no control characters" "$(tr -d '\n' <out | LC_ALL=C grep -c '[[:cntrl:]]' || true)" "0"
check_grep "escapes in text: shown as ?" "HELO evil?]0;owned?" out
check "escapes in json: kept" "$("$SHADOW_REPORT" explain Q1 --log esc.log --format json | jq -r '.messages[0].helo')" \
    "$(printf 'evil\033]0;owned\007')"

# A CR or LF inside a value (reply, Message-ID, from, client name, AUTH, reason, an edit) cannot
# start a line of its own: fixtures/hostile.log tries to forge lines such as "  signs: auth".
cp "$FIXTURES/hostile.log" .
check_rc "newlines in explain" 0 "$SHADOW_REPORT" explain HQ1 --log hostile.log
check "newlines in explain: one line per field (hand-checked)" "$(cat out)" \
    "$(cat "$EXPECTED/explain-hostile.txt")"
check "newlines in explain: no CR" "$(grep -c $'\r' out || true)" "0"
check "newlines in explain json: kept" \
    "$("$SHADOW_REPORT" explain HQ1 --log hostile.log --format json | jq -c '.messages[0] | [.verdicts[0].reply, .from]')" \
    "$(jq -sc 'map(select(.type == "message"))[0] | [.reply, .from]' hostile.log)"
check_rc "newlines in review" 0 "$SHADOW_REPORT" review --all --log hostile.log
# Each listed message is 5 lines: when and IDs, from, client, outcome, signs.
check "newlines in review: 5 lines a message" \
    "$(awk '/^$/ { n = 0; next } /^20/ { n = 1; next } n { n++ } n == 5 && /^  signs: / { s++ }
        END { print s + 0 }' out) $(grep -c '^  signs: ' out)" "2 2"
check "newlines in review: no forged line" \
    "$(grep -vcE '^(|shadow-report review: .*|signs: auth [0-9]+, .*|20[0-9-]{8} [0-9:]{8}  .*|  from .*|  client .*|  (rejected|tempfailed|discarded|quarantined|partly refused)( by .*)?; refused by .*|  signs: [a-z,]+|Covered: .*|Damaged lines: .*)$' out || true)" "0"
check "newlines in review: no CR" "$(grep -c $'\r' out || true)" "0"

# Numbers in JSON and CSV do not follow the locale: with de_DE's decimal comma (generated here,
# as the machine may have none installed) every report is byte for byte what it is in C.UTF-8.
mkdir -p "$work/locale"
if localedef -i de_DE -f UTF-8 "$work/locale/de_DE.UTF-8" >/dev/null 2>&1 &&
    [ "$(LOCPATH=$work/locale LC_ALL=de_DE.UTF-8 /usr/bin/printf '%.1f' 0,5)" = "0,5" ]; then
    for args in "summary $LOGS" "top $LOGS" "explain 9A8B7C6D02 $LOGS" "review --all $LOGS" \
        "whatif spamd,greylist $LOGS" "top --log hostile.log"; do
        for fmt in json csv text; do
            # shellcheck disable=SC2086 # $args is a word list
            want=$("$SHADOW_REPORT" $args --format $fmt 2>/dev/null | od -c)
            # shellcheck disable=SC2086
            got=$(LOCPATH=$work/locale LC_ALL=de_DE.UTF-8 "$SHADOW_REPORT" $args --format $fmt 2>/dev/null | od -c)
            check "de_DE locale: ${args%% *} --format $fmt as in C.UTF-8" "$got" "$want"
        done
    done
    check_grep "de_DE locale: top csv shares with a decimal point" ",0.5000"$'\r' \
        <(LOCPATH=$work/locale LC_ALL=de_DE.UTF-8 "$SHADOW_REPORT" top --log hostile.log --format csv)
else
    echo "skip de_DE locale: localedef -i de_DE failed (Debian package locales missing?)"
fi
finish
