#!/bin/bash
# SPDX-License-Identifier: MIT
# selftest.sh - self-check of tests/milter/test-milter, driven by Debian's miltertest
#
# usage: tests/milter/selftest.sh [--asan] [--keep] [CASE...]
#
# Builds test-milter with the project's warning flags (--asan adds
# -fsanitize=address,undefined) into a temporary directory, unless
# TEST_MILTER=/path/to/test-milter names a binary to test instead. Then, inside
# tests/testbed/netns-run (it re-executes itself there, so it needs root), it
# runs each case: start test-milter on a port chosen free at run time, drive it
# with miltertest (mta-probe.py where the bytes themselves matter), check the
# replies and the milter's log, stop it with SIGTERM and check that it exits 0
# with nothing on stderr. Prints PASS or FAIL per case, then "N passed, N failed";
# exits 1 if a case failed. Every wait is bounded in tries and seconds.
# --keep keeps the work directory (logs, Lua scripts, outputs) and prints its path.
# CASE... runs only the named cases (see "cases=" below).
set -u

here=$(cd "$(dirname "$0")" && pwd) || exit 1
top=$(cd "$here/../.." && pwd) || exit 1

if [ "${TB_NETNS:-}" != 1 ]; then
    exec "$top/tests/testbed/netns-run" "$here/selftest.sh" "$@"
fi

export TB_NAME=milter-selftest # used by lib.sh in messages
# shellcheck source=tests/testbed/lib.sh
. "$top/tests/testbed/lib.sh"

cases="rcpt_tempfail raw_engine add_header subject_prefix quarantine auth_accept
       crash_body sleep progress eom_reject_header reply_multiline negotiate_flags
       edits log_escape garbage exit_after unix_socket port_zero usage"

asan=0
keep=0
only=()
for arg in "$@"; do
    case $arg in
    --asan) asan=1 ;;
    --keep) keep=1 ;;
    -h | --help)
        sed -n '2,18s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    -*) tb_die "unknown option $arg (try --help)" ;;
    *) only+=("$arg") ;;
    esac
done

tb_require_netns
tb_check_cmds gcc:gcc pkg-config:pkg-config miltertest:miltertest timeout:coreutils \
    /usr/bin/python3:python3
[ -r /usr/include/libmilter/mfapi.h ] ||
    tb_die "missing /usr/include/libmilter/mfapi.h (Debian package libmilter-dev)"
pkg-config --exists glib-2.0 || tb_die "missing glib-2.0 for pkg-config (Debian package libglib2.0-dev)"

W=$(mktemp -d /tmp/milter-selftest.XXXXXX) || tb_die "mktemp failed"
PIDS=()

# cleanup - stop every milter still running, remove the work directory
cleanup() {
    kill_started
    if [ "$keep" = 1 ]; then
        echo "work directory kept: $W" >&2
    else
        rm -rf "$W"
    fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- build

CFLAGS_WARN="-Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes
             -Wno-unused-parameter -Werror -O2 -g"
if [ -n "${TEST_MILTER:-}" ]; then
    M=$TEST_MILTER
    [ -x "$M" ] || tb_die "TEST_MILTER=$M is not an executable"
else
    M=$W/test-milter
    san=""
    [ "$asan" = 1 ] && san="-fsanitize=address,undefined"
    # shellcheck disable=SC2086,SC2046  # word splitting of the flag lists is meant
    gcc $CFLAGS_WARN $san -o "$M" "$here/test-milter.c" $(pkg-config --cflags --libs glib-2.0) \
        -lmilter -pthread >"$W/build.out" 2>&1 || { cat "$W/build.out" >&2; tb_die "build failed"; }
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
PROBE="/usr/bin/python3 $here/mta-probe.py"

# ---------------------------------------------------------------- helpers

FAIL_WHY=""

# note - record why the current case fails
note() {
    FAIL_WHY="$FAIL_WHY$*; "
}

# kill_started - KILL whatever this script started that still runs, and reap it
kill_started() {
    local pid
    for pid in "${PIDS[@]}"; do
        if [ -e "/proc/$pid" ]; then
            kill -KILL "$pid" 2>/dev/null
            tb_wait_exit "$pid" 2
        fi
        wait "$pid" 2>/dev/null
    done
    PIDS=()
}

# start_milter NAME SPEC ARGS... - start test-milter, wait (max 10 s) for "ready"; sets MPID MPORT
start_milter() {
    local name=$1 spec=$2
    shift 2
    "$M" --socket "$spec" --name "$name" --log "$W/$name.log" "$@" 2>>"$W/$name.stderr" &
    MPID=$!
    PIDS+=("$MPID")
    if ! tb_wait_grep "^$name conn=0 msg=0 ready " "$W/$name.log" 10 2>>"$W/$name.stderr"; then
        note "$name: no ready line in 10 s: $(tail -c 300 "$W/$name.stderr" 2>/dev/null)"
        return 1
    fi
    MPORT=$(sed -n "s/^$name conn=0 msg=0 ready .* port=\([0-9]*\) .*/\1/p" "$W/$name.log" | head -n 1)
}

# inet_spec - a libmilter socket spec on a port no socket uses now
inet_spec() {
    echo "inet:$(tb_free_port)@127.0.0.1"
}

# wait_milter_exit NAME SECONDS - wait for MPID to end by itself; sets MRC
wait_milter_exit() {
    if ! tb_wait_exit "$MPID" "$2"; then
        note "$1: still running after $2 s"
        kill -KILL "$MPID" 2>/dev/null
        tb_wait_exit "$MPID" 2
        wait "$MPID" 2>/dev/null
        MRC=137
        return 1
    fi
    wait "$MPID"
    MRC=$?
}

# clean_stderr NAME - nothing on the milter's stderr (sanitizer reports land there)
clean_stderr() {
    if [ -s "$W/$1.stderr" ]; then
        note "$1: stderr: $(head -c 400 "$W/$1.stderr")"
        return 1
    fi
}

# stop_milter NAME - SIGTERM; it must exit 0 within 5 s and log "exit reason=signal"
stop_milter() {
    kill -TERM "$MPID" 2>/dev/null
    wait_milter_exit "$1" 5 || return 1
    [ "$MRC" = 0 ] || { note "$1: exit status $MRC after SIGTERM"; return 1; }
    log_has "$1" "exit reason=signal" || return 1
    clean_stderr "$1"
}

# log_has NAME TEXT - the milter's log has a line containing TEXT
log_has() {
    grep -qF -- "$2" "$W/$1.log" 2>/dev/null || { note "log $1 lacks: $2"; return 1; }
}

# log_lacks NAME TEXT - no line of the milter's log contains TEXT
log_lacks() {
    ! grep -qF -- "$2" "$W/$1.log" 2>/dev/null || { note "log $1 has: $2"; return 1; }
}

# log_count NAME TEXT N - exactly N lines contain TEXT
log_count() {
    local n
    n=$(grep -cF -- "$2" "$W/$1.log" 2>/dev/null)
    [ "$n" = "$3" ] || { note "log $1: $n lines with '$2', want $3"; return 1; }
}

# lua_case NAME - the case's Lua body from stdin (it defines main())
lua_case() {
    cat >"$W/$1.body.lua"
}

# run_mt NAME SOCK - run the case's Lua under miltertest, max 30 s; output in NAME.mt.out
run_mt() {
    cat "$W/prelude.lua" "$W/$1.body.lua" "$W/footer.lua" >"$W/$1.lua"
    if ! timeout 30 miltertest -D sock="$2" -s "$W/$1.lua" >"$W/$1.mt.out" 2>&1; then
        note "miltertest: $(tr '\n' ' ' <"$W/$1.mt.out" | tail -c 400)"
        return 1
    fi
}

# now_ms - monotonic-enough wall clock in milliseconds
now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# ---------------------------------------------------------------- Lua prelude and footer

cat >"$W/prelude.lua" <<'EOF'
-- prelude.lua: helpers for the selftest cases; each case defines main()
reply_names = {}
for _, n in ipairs({ "CONTINUE", "ACCEPT", "REJECT", "TEMPFAIL", "DISCARD", "REPLYCODE",
                     "SKIP", "PROGRESS" }) do
  if _G["SMFIR_" .. n] ~= nil then reply_names[_G["SMFIR_" .. n]] = n end
end
function rname(code) return reply_names[code] or tostring(code) end
-- ok: miltertest's calls return nil on success or an error string
function ok(err, what)
  if err ~= nil then error(what .. ": " .. tostring(err), 2) end
end
function check(cond, what)
  if not cond then error(what, 2) end
end
function expect(conn, want, what)
  local got = mt.getreply(conn)
  if got ~= want then error(what .. ": expected " .. rname(want) .. ", got " .. rname(got), 2) end
end
function open(spec)
  local conn = mt.connect(spec or sock, 50, 0.1)
  check(conn ~= nil, "mt.connect(" .. (spec or sock) .. ") failed")
  return conn
end
-- start: connect info and HELO (unless negotiated away), each answered continue
function start(conn)
  ok(mt.conninfo(conn, "client.example", "192.0.2.1"), "conninfo")
  expect(conn, SMFIR_CONTINUE, "connect")
  if not mt.test_option(conn, SMFIP_NOHELO) then
    ok(mt.helo(conn, "client.example"), "helo")
    expect(conn, SMFIR_CONTINUE, "helo")
  end
end
-- message: MAIL, RCPTs, headers, EOH, body each answered continue, then EOM; returns its reply
function message(conn, m)
  m = m or {}
  ok(mt.mailfrom(conn, m.from or "<alice@example.org>"), "mailfrom")
  expect(conn, SMFIR_CONTINUE, "mail")
  for _, r in ipairs(m.rcpts or { "<bob@example.net>" }) do
    ok(mt.rcptto(conn, r), "rcptto " .. r)
    expect(conn, SMFIR_CONTINUE, "rcpt " .. r)
  end
  for _, h in ipairs(m.headers or { { "Subject", "hello" } }) do
    ok(mt.header(conn, h[1], h[2]), "header " .. h[1])
    expect(conn, SMFIR_CONTINUE, "header " .. h[1])
  end
  ok(mt.eoh(conn), "eoh")
  expect(conn, SMFIR_CONTINUE, "eoh")
  ok(mt.bodystring(conn, m.body or "hello body\r\n"), "body")
  expect(conn, SMFIR_CONTINUE, "body")
  ok(mt.eom(conn), "eom")
  return mt.getreply(conn)
end
EOF

# miltertest 1.5 exits 1 without printing a Lua error(): report it ourselves.
cat >"$W/footer.lua" <<'EOF'
local fine, err = pcall(main)
if not fine then
  io.stderr:write("FAIL " .. tostring(err) .. "\n")
  os.exit(1)
end
print("lua ok")
EOF

# ---------------------------------------------------------------- cases

# rcpt_tempfail - one recipient tempfailed, the others and the message go on
lua_case rcpt_tempfail <<'EOF'
function main()
  local conn = open()
  mt.macro(conn, SMFIC_CONNECT, "j", "mx.example", "{daemon_name}", "smtpd")
  start(conn)
  ok(mt.mailfrom(conn, "<alice@example.org>"), "mailfrom")
  expect(conn, SMFIR_CONTINUE, "mail")
  ok(mt.rcptto(conn, "<carol@example.net>"), "rcpt carol")
  expect(conn, SMFIR_CONTINUE, "rcpt carol")
  ok(mt.rcptto(conn, "<Bob@Example.NET>"), "rcpt bob")
  expect(conn, SMFIR_TEMPFAIL, "rcpt bob")
  ok(mt.rcptto(conn, "<dave@example.net>"), "rcpt dave")
  expect(conn, SMFIR_CONTINUE, "rcpt dave")
  ok(mt.header(conn, "Subject", "hi"), "header")
  expect(conn, SMFIR_CONTINUE, "header")
  ok(mt.eom(conn), "eom")
  expect(conn, SMFIR_CONTINUE, "eom")
  mt.disconnect(conn)
end
EOF
case_rcpt_tempfail() {
    local n=t1 spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" --action 'rcpt:tempfail@<bob@example.net>' || return 1
    run_mt rcpt_tempfail "$spec" || r=1
    log_has $n 'rcpt addr="<Bob@Example.NET>" args=""' || r=1
    log_count $n 'reply stage=rcpt verdict=tempfail' 1 || r=1
    log_count $n 'reply stage=rcpt verdict=continue' 2 || r=1
    log_has $n 't1 conn=1 msg=1 reply stage=eom verdict=continue' || r=1
    log_has $n 'negotiate actions=0x0 protocol=0x0 offer_actions=0x1ff' || r=1
    log_has $n 't1 conn=1 msg=0 macro stage=connect name="j" value="mx.example"' || r=1
    stop_milter $n || r=1
    return $r
}

# raw_engine - the same session against the raw engine (no libmilter)
case_raw_engine() {
    local n=t1raw spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" --raw --action 'rcpt:tempfail@<bob@example.net>' || return 1
    log_has $n 'mode=raw' || r=1
    cp "$W/rcpt_tempfail.body.lua" "$W/raw_engine.body.lua"
    run_mt raw_engine "$spec" || r=1
    log_count $n 'reply stage=rcpt verdict=tempfail' 1 || r=1
    log_has $n 'negotiate version=6 actions=0x0 protocol=0x0' || r=1
    log_has $n 'conn=1 msg=0 macro stage=connect name="j" value="mx.example"' || r=1
    log_has $n 'conn=1 msg=1 macro stage=rcpt name="j" value="mx.example"' || r=1
    stop_milter $n || r=1
    return $r
}

# add_header - an EOM header addition with %n %c %m expanded
lua_case add_header <<'EOF'
function main()
  local conn = open()
  start(conn)
  check(message(conn) == SMFIR_CONTINUE, "eom: expected CONTINUE")
  check(mt.eom_check(conn, MT_HDRADD, "X-Test-Milter", "t2 conn=1 msg=1"), "no X-Test-Milter added")
  mt.disconnect(conn)
end
EOF
case_add_header() {
    local n=t2 spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" --add-header 'X-Test-Milter:%n conn=%c msg=%m' || return 1
    run_mt add_header "$spec" || r=1
    log_has $n 'negotiate actions=0x1 protocol=0x0' || r=1
    log_has $n 'edit op=add-header name="X-Test-Milter" value="t2 conn=1 msg=1" status=ok' || r=1
    stop_milter $n || r=1
    return $r
}

# subject_prefix - change the Subject, or add one when the message has none
lua_case subject_prefix <<'EOF'
function main()
  local conn = open()
  start(conn)
  check(message(conn, { headers = { { "From", "a@example.org" }, { "Subject", "hello world" } } })
        == SMFIR_CONTINUE, "eom 1: expected CONTINUE")
  check(mt.eom_check(conn, MT_HDRCHANGE, "Subject", "[SPAM] hello world"), "Subject not changed")
  check(message(conn, { headers = { { "From", "a@example.org" } } }) == SMFIR_CONTINUE,
        "eom 2: expected CONTINUE")
  check(mt.eom_check(conn, MT_HDRADD, "Subject", "[SPAM]"), "Subject not added")
  mt.disconnect(conn)
end
EOF
case_subject_prefix() {
    local n=t3 spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" --subject-prefix '[SPAM]' || return 1
    run_mt subject_prefix "$spec" || r=1
    log_has $n 'negotiate actions=0x11 ' || r=1
    log_has $n 'msg=1 edit op=subject-prefix how=change value="[SPAM] hello world" status=ok' || r=1
    log_has $n 'msg=2 edit op=subject-prefix how=add value="[SPAM]" status=ok' || r=1
    stop_milter $n || r=1
    return $r
}

# quarantine - smfi_quarantine with the milter's name in the reason
lua_case quarantine <<'EOF'
function main()
  local conn = open()
  start(conn)
  check(message(conn) == SMFIR_CONTINUE, "eom: expected CONTINUE")
  check(mt.eom_check(conn, MT_QUARANTINE, "held by t4"), "not quarantined")
  mt.disconnect(conn)
end
EOF
case_quarantine() {
    local n=t4 spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" --quarantine 'held by %n' || return 1
    run_mt quarantine "$spec" || r=1
    log_has $n 'negotiate actions=0x20 ' || r=1
    log_has $n 'edit op=quarantine reason="held by t4" status=ok' || r=1
    stop_milter $n || r=1
    return $r
}

# auth_accept - accept at MAIL only when {auth_authen} is set
lua_case auth_accept <<'EOF'
function main()
  local conn = open()
  start(conn)
  mt.macro(conn, SMFIC_MAIL, "i", "QID1", "{mail_addr}", "alice@example.org")
  check(message(conn) == SMFIR_CONTINUE, "eom 1: expected CONTINUE")
  mt.macro(conn, SMFIC_MAIL, "i", "QID2", "{auth_authen}", "bob", "{mail_addr}", "bob@example.org")
  ok(mt.mailfrom(conn, "<bob@example.org>"), "mailfrom 2")
  expect(conn, SMFIR_ACCEPT, "mail 2")
  mt.disconnect(conn)
end
EOF
case_auth_accept() {
    local n=t5 spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" --action 'mail:accept@auth' || return 1
    run_mt auth_accept "$spec" || r=1
    log_has $n 'msg=1 macro stage=mail name="i" value="QID1"' || r=1
    log_has $n 'msg=1 macro stage=mail name="{mail_addr}" value="alice@example.org"' || r=1
    log_lacks $n 'msg=1 macro stage=mail name="{auth_authen}"' || r=1
    log_has $n 'msg=1 reply stage=mail verdict=continue' || r=1
    log_has $n 'msg=2 macro stage=mail name="{auth_authen}" value="bob"' || r=1
    log_has $n 'msg=2 reply stage=mail verdict=accept' || r=1
    stop_milter $n || r=1
    return $r
}

# crash_body - the process dies in the body callback; the MTA sees the connection drop
lua_case crash_body <<'EOF'
function main()
  local conn = open()
  start(conn)
  ok(mt.mailfrom(conn, "<alice@example.org>"), "mailfrom")
  expect(conn, SMFIR_CONTINUE, "mail")
  ok(mt.header(conn, "Subject", "doomed"), "header")
  expect(conn, SMFIR_CONTINUE, "header")
  ok(mt.eoh(conn), "eoh")
  expect(conn, SMFIR_CONTINUE, "eoh")
  local err = mt.bodystring(conn, "last words\r\n")
  check(err ~= nil, "body: expected the connection to drop, got " .. rname(mt.getreply(conn)))
end
EOF
case_crash_body() {
    local n=t6 spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" --crash body || return 1
    run_mt crash_body "$spec" || r=1
    wait_milter_exit $n 5 || return 1
    [ "$MRC" = 70 ] || { note "exit status $MRC, want 70"; r=1; }
    log_has $n 'body len=12 data="last words\r\n"' || r=1
    log_has $n 'crash stage=body kind=exit' || r=1
    log_lacks $n 'reply stage=body' || r=1
    clean_stderr $n || r=1
    return $r
}

# sleep - a slow recipient: the reply comes after the sleep, only for that recipient
lua_case sleep <<'EOF'
function main()
  local conn = open()
  start(conn)
  ok(mt.mailfrom(conn, "<alice@example.org>"), "mailfrom")
  expect(conn, SMFIR_CONTINUE, "mail")
  ok(mt.rcptto(conn, "<fast@example.net>"), "rcpt fast")
  expect(conn, SMFIR_CONTINUE, "rcpt fast")
  ok(mt.rcptto(conn, "<slow@example.net>"), "rcpt slow")
  expect(conn, SMFIR_CONTINUE, "rcpt slow")
  mt.disconnect(conn)
end
EOF
case_sleep() {
    local n=t7 spec r=0 t0 ms
    spec=$(inet_spec)
    start_milter $n "$spec" --sleep 'rcpt:1500@<slow@example.net>' || return 1
    t0=$(now_ms)
    run_mt sleep "$spec" || r=1
    ms=$(($(now_ms) - t0))
    if [ "$ms" -lt 1450 ] || [ "$ms" -gt 9000 ]; then
        note "session took $ms ms, want about 1500"
        r=1
    fi
    log_count $n 'sleep stage=rcpt ms=1500' 1 || r=1
    log_count $n 'reply stage=rcpt verdict=continue' 2 || r=1
    stop_milter $n || r=1
    return $r
}

# progress - a slow EOM that keeps the MTA alive with two progress packets
case_progress() {
    local n=t8 spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" --sleep eom:600 --progress 2 || return 1
    cp "$W/quarantine.body.lua" "$W/progress.body.lua"
    sed -i 's/^  check(mt.eom_check.*$//' "$W/progress.body.lua"
    run_mt progress "$spec" || r=1
    log_has $n 'sleep stage=eom ms=600' || r=1
    log_has $n 'progress n=1 status=ok' || r=1
    log_has $n 'progress n=2 status=ok' || r=1
    log_has $n 'reply stage=eom verdict=continue' || r=1
    stop_milter $n || r=1
    return $r
}

# eom_reject_header - eom:reject@header:Subject~[SPAM] and header:reject@X-Spam-Flag~YES
lua_case eom_reject_header <<'EOF'
function main()
  local conn = open()
  start(conn)
  check(message(conn, { headers = { { "Subject", "[SPAM] buy now" } } }) == SMFIR_REJECT,
        "eom 1: expected REJECT")
  check(message(conn, { headers = { { "Subject", "lunch?" } } }) == SMFIR_CONTINUE,
        "eom 2: expected CONTINUE")
  ok(mt.mailfrom(conn, "<alice@example.org>"), "mailfrom 3")
  expect(conn, SMFIR_CONTINUE, "mail 3")
  ok(mt.header(conn, "X-Spam-Flag", "YES"), "header 3")
  expect(conn, SMFIR_REJECT, "header 3")
  mt.disconnect(conn)
end
EOF
case_eom_reject_header() {
    local n=t9 spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" --action 'eom:reject@header:Subject~[SPAM]' \
        --action 'header:reject@X-Spam-Flag~YES' || return 1
    run_mt eom_reject_header "$spec" || r=1
    log_has $n 'msg=1 reply stage=eom verdict=reject' || r=1
    log_has $n 'msg=2 reply stage=eom verdict=continue' || r=1
    log_has $n 'msg=3 header name="X-Spam-Flag" value="YES"' || r=1
    log_has $n 'msg=3 reply stage=header verdict=reject' || r=1
    stop_milter $n || r=1
    return $r
}

# reply_multiline - the exact bytes of a multi-line REPLYCODE, "@@" as a literal "@"
case_reply_multiline() {
    local n=t10 spec r=0 out
    spec=$(inet_spec)
    start_milter $n "$spec" \
        --action 'rcpt:reply:550 5.7.1 no such user|ask postmaster@@probe.test@<to@probe.test>' ||
        return 1
    out=$W/reply_multiline.probe.out
    $PROBE 127.0.0.1 "$MPORT" >"$out" 2>&1 || { note "mta-probe: $(cat "$out")"; r=1; }
    grep -qF 'rcpt code=y len=61 data="550-5.7.1 no such user\r\n550 5.7.1 ask postmaster@probe.test\x00"' \
        "$out" || { note "probe output: $(tr '\n' ' ' <"$out")"; r=1; }
    log_has $n 'reply stage=rcpt verdict=reply text="550 5.7.1 no such user|ask postmaster@probe.test"' || r=1
    stop_milter $n || r=1
    return $r
}

# negotiate_flags - --no, --nr, --symlist, --leadspace reach the MTA and are honoured
lua_case negotiate_flags <<'EOF'
function main()
  local conn = open()
  check(mt.test_option(conn, SMFIP_NOHELO), "SMFIP_NOHELO not negotiated")
  check(mt.test_option(conn, SMFIP_NR_HDR), "SMFIP_NR_HDR not negotiated")
  check(mt.test_option(conn, SMFIP_HDR_LEADSPC), "SMFIP_HDR_LEADSPC not negotiated")
  check(not mt.test_option(conn, SMFIP_NOBODY), "SMFIP_NOBODY negotiated")
  start(conn)
  ok(mt.mailfrom(conn, "<alice@example.org>"), "mailfrom")
  expect(conn, SMFIR_CONTINUE, "mail")
  ok(mt.header(conn, "Subject", "spaced"), "header")
  ok(mt.eoh(conn), "eoh")
  expect(conn, SMFIR_CONTINUE, "eoh")
  mt.disconnect(conn)
end
EOF
case_negotiate_flags() {
    local n=t11 spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" --no helo --nr header --symlist 'mail:{auth_authen} i' --leadspace \
        --action 'header:reject' || return 1
    run_mt negotiate_flags "$spec" || r=1
    log_has $n 'negotiate actions=0x100 protocol=0x100082 ' || r=1
    log_has $n 'warning what="action ignored: --nr for its stage" stage=header' || r=1
    log_lacks $n ' helo ' || r=1
    log_has $n 'header name="Subject" value=" spaced"' || r=1
    log_has $n 'reply stage=header verdict=noreply' || r=1
    stop_milter $n || r=1
    return $r
}

# edits - every other EOM edit, in one message
lua_case edits <<'EOF'
function main()
  local conn = open()
  start(conn)
  check(message(conn, { rcpts = { "<old@example.net>", "<bob@example.net>" },
                        headers = { { "X-Drop", "a" }, { "Subject", "hello" }, { "X-Drop", "b" } } })
        == SMFIR_CONTINUE, "eom: expected CONTINUE")
  check(mt.eom_check(conn, MT_HDRDELETE, "X-Drop"), "X-Drop not deleted")
  check(mt.eom_check(conn, MT_HDRCHANGE, "Subject", "changed by t12"), "Subject not changed")
  check(mt.eom_check(conn, MT_HDRINSERT, "X-First", "one"), "X-First not inserted")
  check(mt.eom_check(conn, MT_BODYCHANGE, "new body\r\n"), "body not replaced")
  check(mt.eom_check(conn, MT_RCPTADD, "<new@example.net>"), "recipient not added")
  check(mt.eom_check(conn, MT_RCPTDELETE, "<old@example.net>"), "recipient not deleted")
  mt.disconnect(conn)
end
EOF
case_edits() {
    local n=t12 spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" --delete-header X-Drop --change-header 'Subject:1:changed by %n' \
        --insert-header '0:X-First:one' --replace-body $'new body\n' \
        --add-rcpt '<new@example.net>' --del-rcpt '<old@example.net>' \
        --chgfrom '<bounce@example.org>:SIZE=10' --add-rcpt-par '<p@example.net>:NOTIFY=NEVER' ||
        return 1
    run_mt edits "$spec" || r=1
    log_has $n 'negotiate actions=0xdf ' || r=1
    log_has $n 'edit op=delete-header name="X-Drop" index=2 status=ok' || r=1
    log_has $n 'edit op=delete-header name="X-Drop" index=1 status=ok' || r=1
    log_has $n 'edit op=replace-body len=10 status=ok' || r=1
    log_has $n 'edit op=chgfrom addr="<bounce@example.org>" args="SIZE=10" status=ok' || r=1
    log_has $n 'edit op=add-rcpt-par addr="<p@example.net>" args="NOTIFY=NEVER" status=ok' || r=1
    log_count $n ' edit op=' 9 || r=1
    log_lacks $n 'status=fail' || r=1
    stop_milter $n || r=1
    return $r
}

# log_escape - control bytes, quotes and backslashes in a logged value
lua_case log_escape <<'EOF'
function main()
  local conn = open()
  start(conn)
  ok(mt.mailfrom(conn, "<alice@example.org>"), "mailfrom")
  expect(conn, SMFIR_CONTINUE, "mail")
  ok(mt.header(conn, "X-Odd", "a\"b\\c\td\1e\127f\r\ng"), "header")
  expect(conn, SMFIR_CONTINUE, "header")
  mt.disconnect(conn)
end
EOF
case_log_escape() {
    local n=t13 spec r=0
    spec=$(inet_spec)
    start_milter $n "$spec" || return 1
    run_mt log_escape "$spec" || r=1
    log_has $n 'header name="X-Odd" value="a\"b\\c\td\x01e\x7ff\r\ng"' || r=1
    stop_milter $n || r=1
    return $r
}

# garbage - raw engine: each kind of invalid reply, and garbage instead of the OPTNEG reply
case_garbage() {
    local r=0 kind want n spec out
    for kind in zero huge code negotiate; do
        n=g-$kind
        spec=$(inet_spec)
        case $kind in
        zero) want='rcpt badlen=0' ;;
        huge) want='rcpt badlen=16777216' ;;
        code) want='rcpt badcode=0x5a len=1' ;;
        negotiate) want='negotiate badlen=0' ;;
        esac
        if [ "$kind" = negotiate ]; then
            start_milter $n "$spec" --garbage negotiate || return 1
        else
            start_milter $n "$spec" --garbage rcpt --garbage-kind $kind || return 1
        fi
        out=$W/garbage-$kind.probe.out
        if $PROBE 127.0.0.1 "$MPORT" >"$out" 2>&1; then
            note "$kind: mta-probe ran to the end"
            r=1
        fi
        grep -qxF -- "$want" "$out" || { note "$kind: probe output: $(tr '\n' ' ' <"$out")"; r=1; }
        if [ "$kind" = negotiate ]; then
            log_has $n 'garbage stage=negotiate kind=zero bytes=4 status=ok' || r=1
        else
            grep -qF 'mail code=c' "$out" || { note "$kind: no normal reply before the garbage"; r=1; }
            log_has $n "garbage stage=rcpt kind=$kind" || r=1
        fi
        stop_milter $n || r=1
    done
    return $r
}

# exit_after - the process stops by itself after two sessions, in both engines
lua_case exit_after <<'EOF'
function main()
  for i = 1, 2 do
    local conn = open()
    start(conn)
    mt.disconnect(conn)
  end
end
EOF
case_exit_after() {
    local r=0 n spec mode
    for mode in libmilter raw; do
        n=t14-$mode
        spec=$(inet_spec)
        if [ $mode = raw ]; then
            start_milter $n "$spec" --exit-after 2 --raw || return 1
        else
            start_milter $n "$spec" --exit-after 2 || return 1
        fi
        run_mt exit_after "$spec" || r=1
        wait_milter_exit $n 5 || { r=1; continue; }
        [ "$MRC" = 0 ] || { note "$mode: exit status $MRC"; r=1; }
        log_count $n ' close' 2 || r=1
        log_has $n 'stopping what="exit-after"' || r=1
        log_has $n 'exit reason=exit-after connections=2 status=0' || r=1
        clean_stderr $n || r=1
    done
    return $r
}

# unix_socket - a unix socket, removed again at exit
case_unix_socket() {
    local n=t15 r=0 sockfile=$W/t15.sock
    start_milter $n "unix:$sockfile" || return 1
    [ -S "$sockfile" ] || { note "no socket $sockfile"; r=1; }
    cp "$W/add_header.body.lua" "$W/unix_socket.body.lua"
    sed -i 's/^  check(mt.eom_check.*$//' "$W/unix_socket.body.lua"
    run_mt unix_socket "unix:$sockfile" || r=1
    log_has $n 'ready socket="unix:' || r=1
    log_has $n 'port=0 ' || r=1
    stop_milter $n || r=1
    [ ! -e "$sockfile" ] || { note "socket file left behind"; r=1; }
    return $r
}

# port_zero - inet:0@127.0.0.1: the kernel picks the port, the ready line tells it
case_port_zero() {
    local n=t16 r=0
    start_milter $n "inet:0@127.0.0.1" || return 1
    if [ -z "$MPORT" ] || [ "$MPORT" = 0 ]; then
        note "no port in the ready line"
        stop_milter $n
        return 1
    fi
    tb_port_listening "$MPORT" || { note "nothing listens on $MPORT"; r=1; }
    cp "$W/unix_socket.body.lua" "$W/port_zero.body.lua"
    run_mt port_zero "inet:$MPORT@127.0.0.1" || r=1
    log_has $n 'reply stage=eom verdict=continue' || r=1
    stop_milter $n || r=1
    return $r
}

# bad_usage ARGS... - test-milter with these arguments must exit 64 with a message
bad_usage() {
    local out=$W/usage.out rc
    "$M" --socket inet:1@127.0.0.1 "$@" >"$out" 2>&1
    rc=$?
    if [ $rc != 64 ] || ! grep -q '^test-milter: ' "$out"; then
        note "$*: exit $rc: $(head -c 200 "$out")"
        return 1
    fi
}

# usage - --help, and bad command lines exit 64 with a message
case_usage() {
    local r=0 out=$W/usage.out
    "$M" --help >"$out" 2>&1 || { note "--help failed"; r=1; }
    grep -qF -- '--action=STAGE:VERDICT[:ARG][@MATCH]' "$out" || { note "--help lacks --action"; r=1; }
    bad_usage --action 'rcpt:bogus' || r=1
    bad_usage --action 'connect:accept@header:Subject~x' || r=1
    bad_usage --action 'helo:reject@somewhere' || r=1
    bad_usage --action 'mail:skip' || r=1
    bad_usage --action 'rcpt:reply:250 2.0.0 fine' || r=1
    bad_usage --action 'rcpt:tempfail:now' || r=1
    bad_usage --sleep 'rcpt:soon' || r=1
    bad_usage --garbage 'abort' || r=1
    bad_usage --no 'eom' || r=1
    bad_usage --change-header 'Subject:x:y' || r=1
    bad_usage --raw --add-header 'X-A:1' || r=1
    bad_usage --name 'two words' || r=1
    return $r
}

# ---------------------------------------------------------------- run

pass=0
fail=0
[ "${#only[@]}" -gt 0 ] && cases="${only[*]}"
for c in $cases; do
    if ! declare -F "case_$c" >/dev/null; then
        echo "FAIL $c: no such case"
        fail=$((fail + 1))
        continue
    fi
    FAIL_WHY=""
    if "case_$c"; then
        echo "PASS $c"
        pass=$((pass + 1))
    else
        echo "FAIL $c: $FAIL_WHY"
        fail=$((fail + 1))
    fi
    kill_started
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
