#!/bin/bash
# selftest.sh - milter-driver against real libmilter (pymilter) and a byte-level fake milter
#
# usage: tests/driver/selftest.sh [DRIVER]
#
# DRIVER is the milter-driver binary: the argument, else $MILTER_DRIVER, else
# ./milter-driver.  Needs root: it re-runs itself inside tests/testbed/netns-run
# (private network, mount and PID namespaces, only lo), picks free ports at run
# time, and bounds every wait (each driver run by timeout(1), every daemon
# start by tb_wait_listen).  The milters are
#   tests/capture/capture-milter.py  the pymilter milter the Postfix 3.7 fixtures
#                                    were recorded with: the driver must send what
#                                    Postfix sent (tests/fixtures/postfix-3.7/*.expect)
#   tests/driver/fake-milter.py      pymilter: verdicts, NO/NR flags, symlists,
#                                    HDR_LEADSPC, edits, progress, timeouts
#   tests/driver/raw-milter.py       byte-level: replies libmilter never sends
# Prints one "ok - NAME" or "not ok - NAME" line per check and, last,
# "N passed, N failed".  Exit 0 if none failed, 1 otherwise, 77 (skip) when
# not root or when python3-milter is missing.  KEEP=1 keeps the work directory
# (driver output, milter logs) and prints its name.
set -u

export TB_NAME=driver-selftest
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/testbed/lib.sh
. "$ROOT/tests/testbed/lib.sh"
PY=/usr/bin/python3
MAIL=$ROOT/tests/fixtures/mail
FIXTURES=$ROOT/tests/fixtures/postfix-3.7
RUN_LIMIT=60 # seconds any one driver run may take

# ---------------------------------------------------------------- outer stage
if [ "${TB_NETNS:-}" != 1 ]; then
    DRIVER=${1:-${MILTER_DRIVER:-./milter-driver}}
    [ -x "$DRIVER" ] || { echo "selftest.sh: no executable milter-driver at $DRIVER" >&2; exit 1; }
    DRIVER=$(cd "$(dirname "$DRIVER")" && pwd)/$(basename "$DRIVER")
    if [ "$(id -u)" != 0 ]; then
        echo "selftest.sh: SKIP: needs root for tests/testbed/netns-run"
        exit 77
    fi
    if ! "$PY" -c 'import Milter' 2>/dev/null; then
        echo "selftest.sh: SKIP: $PY cannot import Milter (Debian package python3-milter)"
        exit 77
    fi
    exec "$ROOT/tests/testbed/netns-run" "$0" "$DRIVER"
fi

# ---------------------------------------------------------------- inner stage
DRIVER=$1
WORK=$(mktemp -d /tmp/driver-selftest.XXXXXX) || tb_die "mktemp failed"
PIDS=()
PASS=0
FAIL=0

# cleanup - stop every milter started here, remove the work directory
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do tb_wait_exit "$p" 3 || kill -KILL "$p" 2>/dev/null; done
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# pass - count and print a passed check
pass() {
    PASS=$((PASS + 1))
    echo "ok - $1"
}

# fail - count and print a failed check with its details
fail() {
    local name=$1 line
    shift
    FAIL=$((FAIL + 1))
    echo "not ok - $name"
    for line in "$@"; do echo "#   $line"; done
    if [ -s "$WORK/$name.err" ]; then sed 's/^/#   stderr: /' "$WORK/$name.err" | head -5; fi
}

# result - pass NAME if STATUS is 0, else fail it with DETAIL: result STATUS NAME DETAIL
result() {
    if [ "$1" = 0 ]; then pass "$2"; else fail "${2%%:*}" "$3"; fi
}

# drv - run the driver: drv NAME ARGS...; sets RC, output in $WORK/NAME.out and .err
drv() {
    local name=$1
    shift
    timeout "$RUN_LIMIT" "$DRIVER" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
    RC=$?
}

# want_rc - check the exit status of the last drv: want_rc NAME STATUS
want_rc() {
    [ "$RC" = "$2" ] && return 0
    fail "$1" "exit status $RC, want $2"
    return 1
}

# has - the file contains this exact line: has FILE LINE
has() {
    grep -qxF -- "$2" "$1"
}

# count - how many lines of FILE match the extended regex
count() {
    grep -cE -- "$2" "$1"
}

# check_lines - NAME passes if RC is WANT and every LINE is in NAME.out: check_lines NAME WANT LINE...
check_lines() {
    local name=$1 want=$2 line
    shift 2
    want_rc "$name" "$want" || return
    for line in "$@"; do
        has "$WORK/$name.out" "$line" || { fail "$name" "missing line: $line"; return; }
    done
    pass "$name"
}

# check_err - NAME passes if RC is WANT and stderr contains TEXT: check_err NAME WANT TEXT
check_err() {
    want_rc "$1" "$2" || return
    grep -qF -- "$3" "$WORK/$1.err" || { fail "$1" "stderr lacks: $3"; return; }
    pass "$1"
}

# start_fake - start fake-milter.py: start_fake NAME SPEC [OPTIONS...]; waits until it listens
start_fake() {
    local name=$1 spec=$2 port _i
    shift 2
    "$PY" "$HERE/fake-milter.py" --socket "$spec" --log "$WORK/$name.log" "$@" \
        >"$WORK/$name.stdout" 2>&1 &
    PIDS+=($!)
    disown $!
    case $spec in
    inet:*)
        port=${spec#inet:}
        tb_wait_listen "${port%@*}" 10 || tb_die "fake milter $name did not start"
        ;;
    unix:*)
        for _i in $(seq 1 100); do
            [ -S "${spec#unix:}" ] && return 0
            sleep 0.1
        done
        tb_die "fake milter $name did not create ${spec#unix:}"
        ;;
    esac
}

# start_raw - start raw-milter.py for one connection: start_raw NAME RULE...; sets RAW_SPEC
start_raw() {
    local name=$1 port
    shift
    port=$(tb_free_port)
    "$PY" "$HERE/raw-milter.py" --listen "$port" --log "$WORK/$name.raw" "$@" \
        >"$WORK/$name.rawout" 2>&1 &
    RAW_PID=$!
    PIDS+=("$RAW_PID")
    disown "$RAW_PID"
    tb_wait_listen "$port" 10 || tb_die "raw milter $name did not start"
    RAW_SPEC=inet:$port@127.0.0.1
}

# raw_done - wait (bounded) until the raw milter of the last start_raw has exited
raw_done() {
    tb_wait_exit "$RAW_PID" 10 || kill "$RAW_PID" 2>/dev/null
}

# mask - hide what changes between runs: queue IDs and the CONNECT port
mask() {
    sed -E 's/"i" "[0-9A-F]{10,12}"/"i" "QID"/g; s/ port=[0-9]+ / port=PORT /'
}

# message - write a small test message with extra headers to $WORK/NAME.eml: message NAME HEADER...
message() {
    local name=$1 h
    shift
    {
        echo "From: <sender@example.org>"
        echo "To: <recipient@example.org>"
        echo "Subject: test $name"
        for h in "$@"; do echo "$h"; done
        echo
        echo "Body of $name."
    } >"$WORK/$name.eml"
}

tb_check_cmds timeout:coreutils sed:sed grep:grep awk:mawk

# ------------------------------------------- the Postfix 3.7 fixtures, replayed
CAP_PORT=$(tb_free_port)
"$PY" "$ROOT/tests/capture/capture-milter.py" --socket "inet:$CAP_PORT@127.0.0.1" \
    --log "$WORK/capture.log" >"$WORK/capture.stdout" 2>&1 &
PIDS+=($!)
disown $!
tb_wait_listen "$CAP_PORT" 10 || tb_die "capture-milter.py did not start"
CAP=inet:$CAP_PORT@127.0.0.1
# What Postfix's configuration put into macros the driver cannot know.
PFMAC=(--macro connect:j=mx.tb.test --macro 'connect:{daemon_name}=mx.tb.test'
    --macro 'mail:{mail_host}=[127.0.0.1]:52677' --macro 'rcpt:{rcpt_host}=[127.0.0.1]:52677')

# Postfix ends every SMTP session with ABORT ABORT QUIT; file mode sends one ABORT.
awk '!(prev == "> SMFIC_ABORT" && $0 == "> SMFIC_ABORT") {print} {prev = $0}' \
    "$FIXTURES/basic.expect" >"$WORK/basic.want"
drv postfix-basic --connect "$CAP" "${PFMAC[@]}" --client-port 58488 --helo client.tb.test \
    --from alice@example.com --from-arg SIZE=659 --from-arg BODY=8BITMIME \
    --rcpt bob@example.net --rcpt-arg NOTIFY=SUCCESS,FAILURE \
    --rcpt-arg 'ORCPT=rfc822;bob@example.net' --rcpt carol@example.net \
    --queue-id 22F23A72578 "$HERE/postfix-basic.eml"
if want_rc postfix-basic 0; then
    if diff -u "$WORK/basic.want" "$WORK/postfix-basic.out" >"$WORK/basic.diff"; then
        pass "postfix-basic: file mode sends byte for byte what Postfix 3.7 sent"
    else
        fail postfix-basic "listing differs from $FIXTURES/basic.expect:" \
            "$(head -20 "$WORK/basic.diff")"
    fi
fi

for s in session ipv6; do
    "$PY" "$HERE/postfix-session.py" "$s" >"$WORK/$s.script"
    addr=127.0.0.1
    [ "$s" = ipv6 ] && addr=::1
    drv "postfix-$s" --connect "$CAP" "${PFMAC[@]}" --client-addr "$addr" --script "$WORK/$s.script"
    if want_rc "postfix-$s" 0; then
        mask <"$FIXTURES/$s.expect" >"$WORK/$s.want"
        mask <"$WORK/postfix-$s.out" >"$WORK/$s.got"
        if diff -u "$WORK/$s.want" "$WORK/$s.got" >"$WORK/$s.diff"; then
            pass "postfix-$s: script mode sends what Postfix 3.7 sent (queue IDs, ports masked)"
        else
            fail "postfix-$s" "listing differs from $FIXTURES/$s.expect:" "$(head -20 "$WORK/$s.diff")"
        fi
    fi
done

# ------------------------------------------------- fake-milter.py: libmilter
F1_PORT=$(tb_free_port)
F1=inet:$F1_PORT@127.0.0.1
start_fake f1 "$F1"

drv samples --connect "$F1" --quiet "$MAIL/ham.eml" "$MAIL/spam-gtube.eml" \
    "$MAIL/virus-eicar.eml" "$MAIL/folded-headers.eml" --generate-body 200000
check_lines samples 0 "message 1: accept stage=eom" \
    'message 2: reject stage=eom reply="550 5.7.1 Spam message rejected (GTUBE)"' \
    'message 3: reject stage=eom reply="554 5.7.1 Virus found: Eicar-Test-Signature"' \
    "message 4: accept stage=eom" "message 5: accept stage=eom"
if [ "$(count "$WORK/f1.log" ' body 65535$')" = 3 ] && grep -q ' body 3395$' "$WORK/f1.log"; then
    pass "generate-body: 200000 bytes reach libmilter as 65535+65535+65535+3395"
else
    fail generate-body "libmilter body chunks: $(grep -E ' body [0-9]+$' "$WORK/f1.log" | awk '{print $3}' | tr '\n' ' ')"
fi

drv folded --connect "$F1" "$MAIL/folded-headers.eml"
check_lines folded 0 \
    '> SMFIC_HEADER "To" "Bob <bob@example.net>,\n\tCarol <carol@example.net>,\n  Dave <dave@example.net>"' \
    '> SMFIC_HEADER "X-Folded" "first line of a folded header\n\tsecond line, indented with a tab\n  third line, indented with two spaces"' \
    '> SMFIC_HEADER "X-8bit" "caf\xc3\xa9 na\xc3\xafve raw \xff byte"' \
    '> SMFIC_HEADER "X-No-Space" "value right after the colon"' \
    '> SMFIC_HEADER "X-Two-Spaces" " two spaces after the colon"' \
    '> SMFIC_HEADER "X-Tab" "\ta tab after the colon"' '> SMFIC_HEADER "X-Empty" ""'
if grep -qF "header 'X-Folded' 'first line of a folded header\\n\\tsecond line, indented with a tab\\n  third line, indented with two spaces'" "$WORK/f1.log"; then
    pass "folded-libmilter: libmilter decodes the folded header with its bare LFs"
else
    fail folded-libmilter "fake-milter log lacks the folded X-Folded value"
fi

sed 's/$/\r/' "$MAIL/ham.eml" >"$WORK/ham-crlf.eml"
drv lf --connect "$F1" "$MAIL/ham.eml"
drv crlf --connect "$F1" "$WORK/ham-crlf.eml"
if cmp -s "$WORK/lf.out" "$WORK/crlf.out" && has "$WORK/lf.out" '> SMFIC_HEADER "Subject" "Lunch on Thursday?"'; then
    pass "crlf: LF and CRLF files give the same packets"
else
    fail crlf "listings differ between LF and CRLF input"
fi

drv stdin --connect "$F1" --quiet - <"$MAIL/ham.eml"
check_lines stdin 0 "message 1: accept stage=eom"

drv queue-id --connect "$F1" "$MAIL/ham.eml" "$MAIL/ham.eml"
check_lines queue-id 0 '> SMFIC_MACRO cmd=T "i" "A0001000001"' '> SMFIC_MACRO cmd=T "i" "A0001000002"' \
    '> SMFIC_MACRO cmd=C "j" "localhost" "{daemon_name}" "localhost" "{daemon_addr}" "127.0.0.1" "v" "Postfix 3.7.11" "_" "unknown [127.0.0.1]"' \
    '> SMFIC_CONNECT "[127.0.0.1]" family=4 port=0 "127.0.0.1"' \
    '> SMFIC_MACRO cmd=M "{mail_addr}" "sender@example.org" "{mail_host}" "example.org" "{mail_mailer}" "smtp"'

drv macros --connect "$F1" --auth alice --macro connect:j=mx.example.org \
    --macro 'connect:{client_ptr}=ptr.example' --macro 'eom:{x_test}=1' "$MAIL/ham.eml"
check_lines macros 0 \
    '> SMFIC_MACRO cmd=C "j" "mx.example.org" "{daemon_name}" "localhost" "{daemon_addr}" "127.0.0.1" "v" "Postfix 3.7.11" "_" "unknown [127.0.0.1]" "{client_ptr}" "ptr.example"' \
    '> SMFIC_MACRO cmd=M "{auth_type}" "PLAIN" "{auth_authen}" "alice" "{mail_addr}" "sender@example.org" "{mail_host}" "example.org" "{mail_mailer}" "smtp"' \
    '> SMFIC_MACRO cmd=E "i" "A0001000001" "{x_test}" "1"'
grep -q "auth_authen='alice' auth_type='PLAIN'" "$WORK/f1.log"
result $? "macros-libmilter: libmilter sees {auth_authen} and {auth_type}" \
    "fake-milter log lacks auth_authen='alice' auth_type='PLAIN'"

drv rcpt-some --connect "$F1" --quiet --rcpt a@example.org --rcpt reject@example.org \
    --rcpt replycode@example.org --rcpt b@example.org "$MAIL/ham.eml"
check_lines rcpt-some 0 "message 1: accept stage=eom rcpt-rejected=2"
drv rcpt-all --connect "$F1" --rcpt reject@example.org --rcpt replycode@example.org "$MAIL/ham.eml"
if want_rc rcpt-all 0; then
    if ! grep -q SMFIC_DATA "$WORK/rcpt-all.out" && has "$WORK/rcpt-all.out" '< SMFIR_REPLYCODE "451 4.7.1 Try replycode@example.org later"' &&
        [ "$(tail -2 "$WORK/rcpt-all.out" | tr '\n' ' ')" = "> SMFIC_ABORT > SMFIC_QUIT " ]; then
        pass "rcpt-all: no recipient left: no DATA, then ABORT"
    else
        fail rcpt-all "unexpected listing"
    fi
fi
drv rcpt-all-q --connect "$F1" --quiet --rcpt reject@example.org --rcpt replycode@example.org "$MAIL/ham.eml"
check_lines rcpt-all-q 0 'message 1: tempfail stage=rcpt reply="451 4.7.1 Try replycode@example.org later" rcpt-rejected=2'
drv rcpt-i --connect "$F1" --rcpt reject@example.org --rcpt a@example.org --rcpt b@example.org "$MAIL/ham.eml"
check_lines rcpt-i 0 \
    '> SMFIC_MACRO cmd=R "{rcpt_addr}" "a@example.org" "{rcpt_host}" "example.org" "{rcpt_mailer}" "smtp"' \
    '> SMFIC_MACRO cmd=R "i" "A0001000001" "{rcpt_addr}" "b@example.org" "{rcpt_host}" "example.org" "{rcpt_mailer}" "smtp"'

drv discard-rcpt --connect "$F1" --quiet --rcpt discard@example.org --rcpt b@example.org "$MAIL/ham.eml"
check_lines discard-rcpt 0 "message 1: discard stage=rcpt"
drv accept-mail --connect "$F1" --from accept@example.org "$MAIL/ham.eml"
if want_rc accept-mail 0; then
    if ! grep -q SMFIC_RCPT "$WORK/accept-mail.out" &&
        [ "$(tail -3 "$WORK/accept-mail.out" | tr '\n' ' ')" = "< SMFIR_ACCEPT > SMFIC_ABORT > SMFIC_QUIT " ]; then
        pass "accept-mail: accept at MAIL stops the message's events, ABORT follows"
    else
        fail accept-mail "unexpected listing"
    fi
fi
drv reject-mail --connect "$F1" --quiet --from reject@example.org "$MAIL/ham.eml" "$MAIL/ham.eml"
check_lines reject-mail 0 "message 1: reject stage=mail" "message 2: reject stage=mail"

drv reject-connect --connect "$F1" --client-name reject.example "$MAIL/ham.eml" "$MAIL/ham.eml"
if want_rc reject-connect 0; then
    if [ "$(tail -1 "$WORK/reject-connect.out")" = "< SMFIR_REJECT" ] && ! grep -q SMFIC_HELO "$WORK/reject-connect.out"; then
        pass "reject-connect: reject at CONNECT closes the socket, no HELO, no QUIT"
    else
        fail reject-connect "unexpected listing"
    fi
fi
drv reject-connect-q --connect "$F1" --quiet --client-name reject.example "$MAIL/ham.eml" "$MAIL/ham.eml"
check_lines reject-connect-q 0 "message 1: reject stage=connect" "message 2: reject stage=connect"
drv accept-connect --connect "$F1" --quiet --client-name accept.example "$MAIL/ham.eml"
check_lines accept-connect 0 "message 1: accept stage=connect"
drv tempfail-helo --connect "$F1" --quiet --helo tempfail.example "$MAIL/ham.eml"
check_lines tempfail-helo 0 "message 1: tempfail stage=helo"

message accept-header "X-Test-Action: accept-header" "X-After: not sent"
drv accept-header --connect "$F1" "$WORK/accept-header.eml"
if want_rc accept-header 0; then
    if ! grep -qE 'X-After|SMFIC_EOH|SMFIC_BODY' "$WORK/accept-header.out" &&
        [ "$(tail -3 "$WORK/accept-header.out" | tr '\n' ' ')" = "< SMFIR_ACCEPT > SMFIC_ABORT > SMFIC_QUIT " ]; then
        pass "accept-header: accept at a header stops the content"
    else
        fail accept-header "unexpected listing"
    fi
fi
message tempfail-eoh "X-Test-Action: tempfail-eoh"
drv tempfail-eoh --connect "$F1" --quiet "$WORK/tempfail-eoh.eml"
check_lines tempfail-eoh 0 "message 1: tempfail stage=eoh"
message edits "X-Test-Action: edits"
drv edits --connect "$F1" --quiet "$WORK/edits.eml"
check_lines edits 0 'message 1: accept stage=eom edits=9 quarantine="fake quarantine"'
drv edits-list --connect "$F1" "$WORK/edits.eml"
check_lines edits-list 0 '< SMFIR_INSHEADER index=0 "X-Fake-Inserted" "inserted"' \
    '< SMFIR_CHGHEADER index=1 "X-Test-Action" ""' '< SMFIR_REPLBODY data="replaced\r\n"' \
    '< SMFIR_QUARANTINE "fake quarantine"'

message progress "X-Test-Action: progress"
drv progress --connect "$F1" --eom-timeout 1000 "$WORK/progress.eml"
if want_rc progress 0; then
    [ "$(count "$WORK/progress.out" '^< SMFIR_PROGRESS$')" = 5 ]
    result $? "progress: each SMFIR_PROGRESS restarts the EOM timer (5 x 0.3 s, --eom-timeout 1000)" \
        "want 5 SMFIR_PROGRESS lines"
fi
message slow-eom "X-Test-Action: slow-eom"
drv slow-eom --connect "$F1" --eom-timeout 1000 "$WORK/slow-eom.eml"
check_err slow-eom 1 "milter-driver: $F1: read SMFIC_BODYEOB reply: timed out after 1000 ms"
drv slow-rcpt --connect "$F1" --timeout 500 --rcpt slow@example.org "$MAIL/ham.eml"
check_err slow-rcpt 1 "milter-driver: $F1: read SMFIC_RCPT reply: timed out after 500 ms"

drv per-conn --connect "$F1" --quiet --messages-per-connection 2 --connections 2 \
    "$MAIL/ham.eml" "$MAIL/folded-headers.eml" "$MAIL/ham.eml"
if want_rc per-conn 0; then
    if [ "$(count "$WORK/per-conn.out" '^message [1-6]: accept stage=eom$')" = 6 ] &&
        [ "$(grep -c ' negotiate ' "$WORK/f1.log")" -ge 4 ]; then
        pass "per-conn: 3 messages x 2 rounds over 2-message connections"
    else
        fail per-conn "want messages 1-6 accepted"
    fi
fi
before=$(grep -c ' negotiate ' "$WORK/f1.log")
drv concurrency --connect "$F1" --quiet --stats --connections 12 --concurrency 4 "$MAIL/ham.eml"
if want_rc concurrency 0; then
    after=$(grep -c ' negotiate ' "$WORK/f1.log")
    if [ "$(count "$WORK/concurrency.out" '^message ([1-9]|1[0-2]): accept stage=eom$')" = 12 ] &&
        [ $((after - before)) = 12 ] &&
        grep -qE '^milter-driver: stats: messages=12 connections=12 elapsed=[0-9.]+s rate=[0-9.]+/s$' "$WORK/concurrency.err" &&
        grep -qE '^milter-driver: stats: stage=eom n=12 median=[0-9.]+ms p99=[0-9.]+ms max=[0-9.]+ms$' "$WORK/concurrency.err"; then
        pass "concurrency: 12 connections, 4 at a time, with --stats"
    else
        fail concurrency "unexpected output or stats" "$(head -3 "$WORK/concurrency.err")"
    fi
fi

drv family-u --connect "$F1" --family U "$MAIL/ham.eml"
check_lines family-u 0 '> SMFIC_CONNECT "[127.0.0.1]" family=U'
drv family-6 --connect "$F1" --client-addr 2001:db8::25 --client-port 4242 "$MAIL/ham.eml"
check_lines family-6 0 '> SMFIC_CONNECT "[2001:db8::25]" family=6 port=4242 "2001:db8::25"'

cat >"$WORK/script-ok.script" <<'EOF'
# a scripted session with odd flows
connect
expect c
helo client.example.org
mail <a@example.org> SIZE=10
rcpt <reject@example.org>
expect r
rcpt <b@example.org>
expect continue
data
header Subject: scripted
header X-Folded: one\n\ttwo
eoh
body line one\r\nline two\r\n
eom
expect c
abort
expect none
unknown XFOO bar
expect c
mail <replycode@example.org>
rcpt <replycode@example.org>
expect y 451 4.7.1 Try * later
abort
quit
helo again.example.org
expect c
quit
EOF
drv script-ok --connect "$F1" --script "$WORK/script-ok.script"
check_lines script-ok 0 '> SMFIC_MAIL "<a@example.org>" "SIZE=10"' \
    '> SMFIC_HEADER "X-Folded" "one\n\ttwo"' '> SMFIC_BODY data="line one\r\nline two\r\n"' \
    '> SMFIC_UNKNOWN "XFOO bar"'
[ "$(count "$WORK/script-ok.out" '^> SMFIC_OPTNEG ')" = 2 ]
result $? "script-reconnect: a step after quit opens a new connection (new OPTNEG)" \
    "want 2 SMFIC_OPTNEG"

printf 'connect\nexpect r\n' >"$WORK/script-bad.script"
drv script-bad --connect "$F1" --script "$WORK/script-bad.script"
check_err script-bad 1 "$WORK/script-bad.script:2: expect SMFIR_REJECT: got SMFIR_CONTINUE"

# ---------------------------------------- fake-milter.py with other negotiations
F2=inet:$(tb_free_port)@127.0.0.1
start_fake nr "$F2" --protocol 0xff480
drv nr --connect "$F2" "$MAIL/ham.eml"
if want_rc nr 0; then
    if [ "$(count "$WORK/nr.out" '^< ')" = 2 ] && has "$WORK/nr.out" "< SMFIR_CONTINUE" &&
        has "$WORK/nr.out" '> SMFIC_HEADER "Subject" "Lunch on Thursday?"'; then
        pass "nr: with every SMFIP_NR_* only OPTNEG and BODYEOB are answered"
    else
        fail nr "want exactly 2 replies"
    fi
fi

F3=inet:$(tb_free_port)@127.0.0.1
start_fake no "$F3" --protocol 0x473
drv no --connect "$F3" "$MAIL/ham.eml"
if want_rc no 0; then
    if has "$WORK/no.out" "> SMFIC_MACRO cmd=C \"j\" \"localhost\" \"{daemon_name}\" \"localhost\" \"{daemon_addr}\" \"127.0.0.1\" \"v\" \"Postfix 3.7.11\" \"_\" \"unknown [127.0.0.1]\"" &&
        has "$WORK/no.out" "> SMFIC_MACRO cmd=H" && ! grep -qE 'SMFIC_(CONNECT|HELO|HEADER|EOH|BODY) |cmd=[LNB]|SMFIC_EOH$' "$WORK/no.out" &&
        has "$WORK/no.out" "> SMFIC_BODYEOB"; then
        pass "no: SMFIP_NO* events are not sent; envelope ones keep their SMFIC_MACRO, content ones do not"
    else
        fail no "unexpected listing"
    fi
fi

F4=inet:$(tb_free_port)@127.0.0.1
start_fake leadspc "$F4" --protocol 0x100400
drv leadspc --connect "$F4" "$MAIL/ham.eml"
check_lines leadspc 0 '> SMFIC_HEADER "Subject" " Lunch on Thursday?"'
grep -qF "header 'Subject' ' Lunch on Thursday?'" "$WORK/leadspc.log"
result $? "leadspc-libmilter: with SMFIP_HDR_LEADSPC libmilter gets the leading space" \
    "fake-milter log lacks the leading space"

F5=inet:$(tb_free_port)@127.0.0.1
start_fake symlist "$F5" --symlist '0={client_addr} j' --symlist '2=i {mail_addr} {auth_type}' --symlist '5='
drv symlist --connect "$F5" --macro connect:v=ignored "$MAIL/ham.eml"
check_lines symlist 0 '> SMFIC_MACRO cmd=C "{client_addr}" "127.0.0.1" "j" "localhost"' \
    '> SMFIC_MACRO cmd=M "{mail_addr}" "sender@example.org"' '> SMFIC_MACRO cmd=B' '> SMFIC_MACRO cmd=E' \
    '> SMFIC_MACRO cmd=R "{rcpt_addr}" "recipient@example.org" "{rcpt_host}" "example.org" "{rcpt_mailer}" "smtp"'

UNIXSOCK=$WORK/fake.sock
start_fake unix "unix:$UNIXSOCK"
drv unix --connect "unix:$UNIXSOCK" --quiet "$MAIL/ham.eml"
check_lines unix 0 "message 1: accept stage=eom"

# ------------------------------------------- raw-milter.py: odd and illegal replies
start_raw edit-rcpt 'R=h:X-Bad:1'
drv edit-rcpt --connect "$RAW_SPEC" "$MAIL/ham.eml"
check_err edit-rcpt 1 "unexpected filter response SMFIR_ADDHEADER after event SMFIC_RCPT"
raw_done

start_raw bad-y 'E=y:250 2.0.0 fine'
drv bad-y --connect "$RAW_SPEC" "$MAIL/ham.eml"
check_err bad-y 1 'malformed SMFIR_REPLYCODE "250 2.0.0 fine"'
raw_done

start_raw sloppy-y --connections 2 'E=y:550-5.7.1 one\r\n551 5.7.1 two'
drv sloppy-y --connect "$RAW_SPEC" --quiet "$MAIL/ham.eml"
check_err sloppy-y 0 'warning: SMFIR_REPLYCODE line 2 "551 5.7.1 two"'
drv sloppy-y-strict --connect "$RAW_SPEC" --strict "$MAIL/ham.eml"
check_err sloppy-y-strict 1 "(--strict)"
raw_done

start_raw shutdown 'M=4'
drv shutdown --connect "$RAW_SPEC" --quiet "$MAIL/ham.eml" "$MAIL/ham.eml"
raw_done
check_lines shutdown 0 "message 1: shutdown stage=mail" "message 2: shutdown stage=mail"
! grep -qxE 'Q|A' "$WORK/shutdown.raw"
result $? "shutdown-close: after SMFIR_SHUTDOWN the socket is closed without ABORT or QUIT" \
    "ABORT or QUIT sent after SMFIR_SHUTDOWN"

start_raw version7 'O=O:7:0x1ff:0'
drv version7 --connect "$RAW_SPEC" "$MAIL/ham.eml"
check_err version7 1 "protocol version 7 conflicts with the offered version 6"
raw_done

start_raw actions 'O=O:6:0x3ff:0'
drv actions --connect "$RAW_SPEC" "$MAIL/ham.eml"
check_err actions 1 "action mask 0x3ff is not a subset of the offered 0x1ff"
raw_done

start_raw not-optneg 'O=c'
drv not-optneg --connect "$RAW_SPEC" "$MAIL/ham.eml"
check_err not-optneg 1 "unexpected reply SMFIR_CONTINUE in initial handshake"
raw_done

start_raw version2 'O=O:2:0x1ff:0'
drv version2 --connect "$RAW_SPEC" "$MAIL/ham.eml"
raw_done
if want_rc version2 0; then
    ! grep -qE 'SMFIC_DATA|cmd=T' "$WORK/version2.out" && has "$WORK/version2.out" "> SMFIC_BODYEOB"
    result $? "version2: a version 2 milter gets no DATA (nor its macros)" "DATA was sent"
fi

start_raw not-offered 'O=O:6:0x1ff:0x80' 'L=none'
drv not-offered --connect "$RAW_SPEC" --offer-protocol 0x400 "$MAIL/ham.eml"
check_err not-offered 0 "has bits that were not offered (NR_HDR); honoured, as Postfix does"
raw_done

start_raw progress-rcpt --connections 2 'R=p,c'
drv progress-rcpt --connect "$RAW_SPEC" "$MAIL/ham.eml"
check_err progress-rcpt 0 "warning: SMFIR_PROGRESS after SMFIC_RCPT"
drv progress-rcpt-strict --connect "$RAW_SPEC" --strict "$MAIL/ham.eml"
check_err progress-rcpt-strict 1 "SMFIR_PROGRESS after SMFIC_RCPT"
raw_done

start_raw quarantine-mail 'M=q:held early,c'
drv quarantine-mail --connect "$RAW_SPEC" --quiet "$MAIL/ham.eml"
check_lines quarantine-mail 0 'message 1: accept stage=eom quarantine="held early"'
raw_done

start_raw discard-connect 'C=d'
drv discard-connect --connect "$RAW_SPEC" --quiet "$MAIL/ham.eml"
check_err discard-connect 0 "SMFIR_DISCARD after SMFIC_CONNECT is not allowed; ignored"
has "$WORK/discard-connect.out" "message 1: accept stage=eom"
result $? "discard-connect-ignored: the message is played to the end" "message not played to the end"
raw_done

start_raw body-mixed 'E=b:one,h:X:y,b:two,c'
drv body-mixed --connect "$RAW_SPEC" "$MAIL/ham.eml"
check_err body-mixed 1 "SMFIR_REPLBODY after other requests that followed SMFIR_REPLBODY"
raw_done

start_raw skip 'B@1=s'
drv skip --connect "$RAW_SPEC" --generate-body 200000
raw_done
if want_rc skip 0; then
    [ "$(count "$WORK/skip.out" '^> SMFIC_BODY ')" = 1 ] && [ "$(grep -cx B "$WORK/skip.raw")" = 1 ] &&
        has "$WORK/skip.out" "> SMFIC_BODYEOB"
    result $? "skip: after SMFIR_SKIP no more body chunks (and no SMFIC_MACRO for them), then BODYEOB" \
        "want one SMFIC_BODY"
fi

# Debian 12's libmilter 8.17.1.9 answers no SMFIC_CONNECT after SMFIC_QUIT_NC (the connect
# callback is not even called; a plain C milter behaves the same), so QUIT_NC is checked
# against the byte-level fake.
printf 'connect\nhelo a.example\nquit-nc\nexpect none\nconnect\nexpect c\nquit\n' >"$WORK/quit-nc.script"
start_raw quit-nc
drv quit-nc --connect "$RAW_SPEC" --script "$WORK/quit-nc.script"
raw_done
if want_rc quit-nc 0; then
    [ "$(tr '\n' ' ' <"$WORK/quit-nc.raw")" = "O D:C C D:H H K D:C C Q # end " ]
    result $? "quit-nc: CONNECT again after SMFIC_QUIT_NC on the same socket, no new OPTNEG" \
        "raw milter saw: $(tr '\n' ' ' <"$WORK/quit-nc.raw")"
fi

start_raw close-data 'T=close'
drv close-data --connect "$RAW_SPEC" "$MAIL/ham.eml"
check_err close-data 1 "read SMFIC_DATA reply: connection closed by the milter"
raw_done

start_raw unknown-code 'R=raw:000000015a'
drv unknown-code --connect "$RAW_SPEC" "$MAIL/ham.eml"
check_err unknown-code 1 "read SMFIC_RCPT reply: packet 5 at byte 32: unknown reply code 'Z' (0x5a)"
raw_done

start_raw trailing 'H=raw:0000000263ff'
drv trailing --connect "$RAW_SPEC" "$MAIL/ham.eml"
check_err trailing 1 "trailing byte"
raw_done

start_raw silent 'H=none'
drv silent --connect "$RAW_SPEC" --timeout 300 "$MAIL/ham.eml"
check_err silent 1 "milter-driver: $RAW_SPEC: read SMFIC_HELO reply: timed out after 300 ms"
raw_done

# ----------------------------------------------------------------- bad usage
drv usage-none
check_err usage-none 2 "--connect SPEC is required"
drv usage-rcpt-arg --connect "$F1" --rcpt-arg NOTIFY=NEVER "$MAIL/ham.eml"
check_err usage-rcpt-arg 2 "no --rcpt before it"
drv usage-spec --connect tcp:1@localhost "$MAIL/ham.eml"
check_err usage-spec 2 "want inet:PORT@HOST"
drv usage-file --connect "$F1" "$WORK/no-such.eml"
check_err usage-file 2 "no-such.eml"
drv usage-nothing --connect "$F1"
check_err usage-nothing 2 "nothing to send"
printf 'connect\nfrobnicate\n' >"$WORK/usage.script"
drv usage-script --connect "$F1" --script "$WORK/usage.script"
check_err usage-script 2 "$WORK/usage.script:2: unknown step \"frobnicate\""
drv usage-macro --connect "$F1" --macro 'nowhere:j=x' "$MAIL/ham.eml"
check_err usage-macro 2 'unknown stage "nowhere"'
REFUSED=inet:$(tb_free_port)@127.0.0.1
drv refused --connect "$REFUSED" "$MAIL/ham.eml"
check_err refused 1 "milter-driver: $REFUSED: connect: "

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
