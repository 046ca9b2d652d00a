#!/bin/bash
# shellcheck shell=bash
# tests/testbed/sendmail.sh - a private Sendmail 8.17 instance for milter tests.
#
# Source it from bash after lib.sh:
#     . tests/testbed/lib.sh; . tests/testbed/sendmail.sh
# or run it to unpack Sendmail (as root, outside any private namespace, because
# it downloads from the Debian mirror):
#     tests/testbed/sendmail.sh unpack [ROOT]
#
# Recipe: shared/docs/testbed-sendmail.md. Installing sendmail-bin with apt
# would remove postfix (and smtp-sink/smtp-source with it), so the debs are only
# downloaded (apt-get download) and unpacked with dpkg-deb -x into SM_ROOT
# (default /opt/tb-sendmail). SM_ROOT=/ uses a real dpkg install instead.
#
# Every daemon is started only inside tests/testbed/netns-run (tb_require_netns)
# and every wait is bounded. An instance lives in one directory DIR:
#   DIR/tb.mc DIR/tb.cf  DIR/mqueue/  DIR/run/sendmail.pid  DIR/aliases ...
#   DIR/log/syslog.log   (what Sendmail and shadowd send to syslog)
#   DIR/dev/             (mount point used once while building the private /dev)
#
# Functions:
#   sm_unpack [ROOT]          download and unpack the debs (needs the network)
#   sm_require                fail naming the Debian packages if Sendmail or m4 is missing
#   sm_syslog_start DIR       private /dev with /dev/log -> a receiver appending to DIR/log/syslog.log
#   sm_syslog_stop DIR        stop that receiver
#   sm_create DIR SMTP_PORT SINK_PORT IPV6 [MILTER...]
#                             write DIR/tb.mc and build DIR/tb.cf; MILTER is "NAME|EQUATES", e.g.
#                             'shadowd|S=inet:8899@127.0.0.1, T=C:30s;S:10s;R:10s;E:5m'
#   sm_start DIR              start the daemon (private UTS namespace, hostname mx.tb.test);
#                             wait until it listens (on ::1 too with IPV6=1)
#   sm_stop DIR               TERM the daemon, then its leftover session/delivery children
#   sm_cmd DIR ARGS...        run sendmail -C DIR/tb.cf ARGS (e.g. -bp) the same way
#   sm_queue_files DIR        list the queue files (qf, hf, df, xf, tf, Qf) left in DIR/mqueue
#   sm_syslog DIR             print the path of the syslog file

SM_ROOT=${SM_ROOT:-/opt/tb-sendmail}
SM_HOSTNAME=${SM_HOSTNAME:-mx.tb.test}

# sm_paths - set SM_BIN, SM_CF_M4, SM_HELP, SM_LIBDIR from SM_ROOT
sm_paths() {
    local root=${SM_ROOT%/}
    SM_BIN=$root/usr/libexec/sendmail/sendmail
    SM_CF_M4=$root/usr/share/sendmail/cf/m4/cf.m4
    SM_HELP=$root/etc/mail/helpfile
    SM_LIBDIR=""
    local d
    for d in "$root"/usr/lib/*-linux-gnu; do
        [ -e "$d/libwrap.so.0" ] && SM_LIBDIR=$d
    done
}
sm_paths

# sm_unpack - apt-get download the Sendmail debs and unpack them into ROOT (default SM_ROOT)
sm_unpack() {
    local root=${1:-$SM_ROOT} tmp d
    [ "$(id -u)" = 0 ] || { echo "sendmail.sh: unpack must run as root" >&2; return 1; }
    [ "$root" != / ] || { echo "sendmail.sh: refusing to unpack into /" >&2; return 1; }
    tmp=$(mktemp -d /tmp/sm-debs.XXXXXX) || return 1
    chmod 755 "$tmp"
    chown _apt "$tmp" 2>/dev/null # apt-get download writes as _apt where it can
    # apt-get download writes into the current directory
    if ! (cd "$tmp" && apt-get download sendmail-bin sendmail-cf sendmail-base libwrap0); then
        rm -rf "$tmp"
        echo "sendmail.sh: apt-get download failed" >&2
        return 1
    fi
    mkdir -p "$root"
    for d in "$tmp"/*.deb; do
        dpkg-deb -x "$d" "$root" || { rm -rf "$tmp"; return 1; }
    done
    rm -rf "$tmp"
    # ld.so ignores LD_LIBRARY_PATH for setgid programs, and libwrap0 lives in ROOT
    chmod g-s "$root/usr/libexec/sendmail/sendmail"
    echo "sendmail.sh: Sendmail unpacked into $root" >&2
}

# sm_require - check that the unpacked (or installed) Sendmail and m4 are there
sm_require() {
    local why=""
    sm_paths
    [ -x "$SM_BIN" ] || why="$why no $SM_BIN (Debian package sendmail-bin);"
    [ -r "$SM_CF_M4" ] || why="$why no $SM_CF_M4 (Debian package sendmail-cf);"
    [ -r "$SM_HELP" ] || why="$why no $SM_HELP (Debian package sendmail-base);"
    if [ -x "$SM_BIN" ] && [ "${SM_ROOT%/}" != "" ] && [ -z "$SM_LIBDIR" ] &&
        ! ldconfig -p 2>/dev/null | grep -q 'libwrap\.so\.0'; then
        why="$why no libwrap.so.0 (Debian package libwrap0);"
    fi
    command -v m4 >/dev/null 2>&1 || why="$why no m4 (Debian package m4);"
    if [ -n "$why" ]; then
        echo "${TB_NAME:-testbed}: error: Sendmail 8.17 is missing:$why" >&2
        echo "${TB_NAME:-testbed}: do not 'apt-get install sendmail-bin' (it removes postfix); as root run" \
            "'tests/testbed/sendmail.sh unpack' (apt-get download sendmail-bin sendmail-cf sendmail-base" \
            "libwrap0, unpacked into $SM_ROOT), or set SM_ROOT=/ on a machine where they are installed" >&2
        return 1
    fi
}

# sm_syslog - print the path of DIR's syslog file
sm_syslog() {
    echo "$1/log/syslog.log"
}

# sm_syslog_start - give this mount namespace a /dev with a log socket; receive into DIR/log/syslog.log
#   Sendmail logs through syslog(3) only, and this machine has no syslog daemon and no
#   /dev/log. The new /dev is a tmpfs with copies of the usual device nodes, a fresh
#   /dev/shm, the old /dev/pts and log -> DIR/run/syslog.sock. It is moved over /dev, so
#   it exists only in the private mount namespace of netns-run.
sm_syslog_start() {
    local dir=$1 n sock
    tb_require_netns
    mkdir -p "$dir/log" "$dir/run" "$dir/dev" || return 1
    sock=$dir/run/syslog.sock
    : >"$dir/log/syslog.log"
    /usr/bin/python3 -c '
import socket, sys, os
path, out = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(out, "ab", buffering=0) as f:
    while True:
        data = s.recv(65536)
        f.write(data.rstrip(b"\0\n") + b"\n")
' "$sock" "$dir/log/syslog.log" >>"$dir/log/syslog-receiver.out" 2>&1 &
    echo $! >"$dir/run/syslog.pid"
    tb_wait_file "$sock" 5 2>/dev/null || [ -S "$sock" ] ||
        { echo "${TB_NAME:-testbed}: syslog receiver did not create $sock" >&2; return 1; }
    if [ ! -L /dev/log ] || [ "$(readlink /dev/log)" != "$sock" ]; then
        mount -t tmpfs -o mode=755 tb-dev "$dir/dev" || return 1
        for n in null zero full random urandom tty ptmx; do
            [ -e "/dev/$n" ] && cp -a "/dev/$n" "$dir/dev/$n"
        done
        ln -s /proc/self/fd "$dir/dev/fd"
        ln -s /proc/self/fd/0 "$dir/dev/stdin"
        ln -s /proc/self/fd/1 "$dir/dev/stdout"
        ln -s /proc/self/fd/2 "$dir/dev/stderr"
        mkdir "$dir/dev/shm" "$dir/dev/pts"
        mount -t tmpfs -o mode=1777 tb-shm "$dir/dev/shm" || return 1
        [ -d /dev/pts ] && mount --bind /dev/pts "$dir/dev/pts"
        ln -s "$sock" "$dir/dev/log"
        # move it (with its sub-mounts) over /dev: DIR/dev is an empty directory again
        mount --move "$dir/dev" /dev || { umount -R "$dir/dev"; return 1; }
    fi
    logger -t sm-syslog-probe "syslog receiver up" 2>/dev/null
    tb_wait_grep 'sm-syslog-probe' "$dir/log/syslog.log" 5 ||
        { echo "${TB_NAME:-testbed}: /dev/log does not reach $dir/log/syslog.log" >&2; return 1; }
}

# sm_syslog_stop - stop DIR's syslog receiver
sm_syslog_stop() {
    local f="$1/run/syslog.pid"
    [ -s "$f" ] || return 0
    tb_stop_pid "$(cat "$f")" 2
    rm -f "$f"
}

# sm_create - write DIR/tb.mc for a Sendmail listening on SMTP_PORT, relaying everything to
#   127.0.0.1:SINK_PORT, with the milters given as "NAME|EQUATES"; build DIR/tb.cf with m4
#   usage: sm_create DIR SMTP_PORT SINK_PORT IPV6 [MILTER...]
#   IPV6=1 also listens on [::1]:SMTP_PORT. SM_MACROS=default keeps the cfhead.m4 macro
#   lists; the default (full) sends every macro of testbed-sendmail.md section 2.
sm_create() {
    local dir=$1 port=$2 sink=$3 ipv6=$4 m name eq names=""
    shift 4
    if [ -z "$dir" ] || [ -z "$port" ] || [ -z "$sink" ]; then
        echo "usage: sm_create DIR SMTP_PORT SINK_PORT IPV6 [MILTER...]" >&2
        return 1
    fi
    sm_paths
    mkdir -p "$dir/mqueue" "$dir/run" "$dir/log" || return 1
    chmod 700 "$dir/mqueue"
    echo "$port" >"$dir/run/smtp_port"
    echo "$ipv6" >"$dir/run/ipv6"
    : >"$dir/statistics"
    : >"$dir/local-host-names"
    : >"$dir/relay-domains"
    printf 'postmaster: root\n' >"$dir/aliases"
    printf 'hosts files\naliases files\npasswd files\n' >"$dir/service.switch"
    {
        echo "divert(-1)dnl"
        echo "divert(0)dnl"
        echo "include(\`$SM_CF_M4')dnl"
        echo "VERSIONID(\`tb-sendmail test bed')dnl"
        echo "OSTYPE(\`linux')dnl"
        echo "define(\`confDOMAIN_NAME', \`$SM_HOSTNAME')dnl"
        echo "define(\`QUEUE_DIR', \`$dir/mqueue')dnl"
        echo "define(\`confPID_FILE', \`$dir/run/sendmail.pid')dnl"
        echo "define(\`STATUS_FILE', \`$dir/statistics')dnl"
        echo "define(\`ALIAS_FILE', \`$dir/aliases')dnl"
        echo "define(\`HELP_FILE', \`$SM_HELP')dnl"
        echo "define(\`confCW_FILE', \`-o $dir/local-host-names')dnl"
        echo "define(\`confCR_FILE', \`-o $dir/relay-domains')dnl"
        echo "define(\`confHOST_STATUS_DIRECTORY', \`')dnl"
        echo "define(\`confDONT_BLAME_SENDMAIL', \`TrustStickyBit')dnl"
        echo "define(\`confSERVICE_SWITCH_FILE', \`$dir/service.switch')dnl"
        echo "define(\`confHOSTS_FILE', \`/etc/hosts')dnl"
        echo "define(\`confDONT_PROBE_INTERFACES', \`True')dnl"
        echo "FEATURE(\`nocanonify')dnl"
        echo "FEATURE(\`accept_unresolvable_domains')dnl"
        echo "FEATURE(\`accept_unqualified_senders')dnl"
        echo "FEATURE(\`promiscuous_relay')dnl"
        echo "define(\`confTO_IDENT', \`0s')dnl"
        echo "define(\`confREFUSE_LA', \`0')dnl"
        echo "define(\`confQUEUE_LA', \`0')dnl"
        echo "define(\`confDELAY_LA', \`0')dnl"
        echo "define(\`confMAX_DAEMON_CHILDREN', \`0')dnl"
        echo "define(\`confCONNECTION_RATE_THROTTLE', \`0')dnl"
        echo "define(\`confMIN_QUEUE_AGE', \`0')dnl"
        echo "define(\`confTO_QUEUEWARN', \`1d')dnl"
        echo "define(\`confPRIVACY_FLAGS', \`authwarnings,noexpn,novrfy')dnl"
        echo "define(\`confLOG_LEVEL', \`14')dnl"
        echo "define(\`confMILTER_LOG_LEVEL', \`14')dnl"
        echo "define(\`SMART_HOST', \`relay:[127.0.0.1]')dnl"
        echo "define(\`RELAY_MAILER_ARGS', \`TCP \$h $sink')dnl"
        echo "define(\`ESMTP_MAILER_ARGS', \`TCP \$h $sink')dnl"
        echo "define(\`SMTP_MAILER_ARGS', \`TCP \$h $sink')dnl"
        echo "FEATURE(\`no_default_msa')dnl"
        echo "DAEMON_OPTIONS(\`Family=inet, Name=MTA-v4, Port=$port, Addr=127.0.0.1, M=A, Listen=256')dnl"
        [ "$ipv6" = 1 ] &&
            echo "DAEMON_OPTIONS(\`Family=inet6, Name=MTA-v6, Port=$port, Addr=::1, M=A, Listen=256')dnl"
        for m in "$@"; do
            name=${m%%|*}
            eq=${m#*|}
            echo "INPUT_MAIL_FILTER(\`$name', \`$eq')dnl"
            names="$names${names:+, }$name"
        done
        if [ "${SM_MACROS:-full}" = full ]; then
            # the DOUBLE quotes are needed (cfhead.m4 does the same)
            echo "define(\`confMILTER_MACROS_CONNECT', \`\`j, _, {daemon_name}, {daemon_addr}, {daemon_port}, {if_name}, {if_addr}, {client_addr}, {client_port}, {client_name}, {client_ptr}, {client_resolve}'')dnl"
            echo "define(\`confMILTER_MACROS_HELO', \`\`{tls_version}, {cipher}, {cipher_bits}, {cert_subject}, {cert_issuer}, {client_connections}'')dnl"
            echo "define(\`confMILTER_MACROS_ENVFROM', \`\`i, {auth_type}, {auth_authen}, {auth_ssf}, {auth_author}, {mail_mailer}, {mail_host}, {mail_addr}'')dnl"
            echo "define(\`confMILTER_MACROS_ENVRCPT', \`\`{rcpt_mailer}, {rcpt_host}, {rcpt_addr}, i'')dnl"
            echo "define(\`confMILTER_MACROS_DATA', \`\`i, {nrcpts}, {nbadrcpts}'')dnl"
            echo "define(\`confMILTER_MACROS_EOH', \`\`i'')dnl"
            echo "define(\`confMILTER_MACROS_EOM', \`\`{msg_id}, i, {msg_size}'')dnl"
        fi
        echo "MAILER(\`smtp')dnl"
    } >"$dir/tb.mc"
    if ! m4 "$dir/tb.mc" >"$dir/tb.cf" 2>"$dir/log/m4.err"; then
        cat "$dir/log/m4.err" >&2
        return 1
    fi
    # m4 always warns (two lines) about promiscuous_relay; anything else is shown
    grep -v -e 'promiscuous_relay' -e 'Do NOT use it on a server' "$dir/log/m4.err" >&2
    if [ -n "$names" ] && ! grep -q "^O InputMailFilters=$names\$" "$dir/tb.cf"; then
        echo "${TB_NAME:-testbed}: $dir/tb.cf lacks 'O InputMailFilters=$names'" >&2
        return 1
    fi
    # a broken macro list is not caught at start (testbed-sendmail.md section 10.6)
    if grep '^O Milter\.macros\.' "$dir/tb.cf" | grep -q '{[^}]*\(,\|$\)'; then
        echo "${TB_NAME:-testbed}: unbalanced { in the Milter.macros lines of $dir/tb.cf" >&2
        return 1
    fi
}

# sm_run - run the Sendmail binary in a private UTS namespace with a dotted host name
#   (else every invocation sleeps 60 s trying to qualify "vm"); exec in place, so the
#   pid of "sm_run ... &" is Sendmail's own
sm_run() {
    # shellcheck disable=SC2016 # $0 and $@ belong to the inner sh
    LD_LIBRARY_PATH=${SM_LIBDIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
        unshare -u sh -c 'hostname "$0" && exec "$@"' "$SM_HOSTNAME" "$SM_BIN" "$@"
}

# sm_cmd - run sendmail -C DIR/tb.cf ARGS... (inside the netns only: it does DNS lookups)
sm_cmd() {
    local dir=$1
    shift
    tb_require_netns
    sm_paths
    sm_run -C "$dir/tb.cf" "$@"
}

# sm_start - start the daemon of DIR; wait (max 10 s) until it listens on 127.0.0.1 (and ::1)
sm_start() {
    local dir=$1 port ipv6 hex _i
    tb_require_netns
    sm_paths
    port=$(cat "$dir/run/smtp_port") || return 1
    ipv6=$(cat "$dir/run/ipv6") || return 1
    if ! sm_run -C "$dir/tb.cf" -bd >>"$dir/log/sendmail-start.out" 2>&1; then
        cat "$dir/log/sendmail-start.out" >&2
        return 1
    fi
    tb_wait_file "$dir/run/sendmail.pid" 10 || return 1
    tb_wait_listen "$port" 10 || return 1
    if [ "$ipv6" = 1 ]; then
        hex=$(printf ':%04X' "$port")
        for _i in $(seq 1 50); do
            awk -v p="$hex" 'FNR > 1 && substr($2, length($2) - 4) == p && $4 == "0A" {f = 1}
                END {exit !f}' /proc/net/tcp6 && break
            sleep 0.1
        done
        awk -v p="$hex" 'FNR > 1 && substr($2, length($2) - 4) == p && $4 == "0A" {f = 1}
            END {exit !f}' /proc/net/tcp6 ||
            { echo "${TB_NAME:-testbed}: Sendmail does not listen on [::1]:$port" >&2; return 1; }
    fi
    tb_log "sendmail started in $dir (port $port, pid $(head -n 1 "$dir/run/sendmail.pid"))"
}

# sm_daemon_pid - the daemon's pid from DIR's pid file (empty if none)
sm_daemon_pid() {
    [ -s "$1/run/sendmail.pid" ] && head -n 1 "$1/run/sendmail.pid"
}

# sm_children - pids of Sendmail processes whose cwd is DIR/mqueue (sessions, deliveries)
sm_children() {
    local dir=$1 p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        [ "$exe" = "$SM_BIN" ] || continue
        [ "$(readlink "$p/cwd" 2>/dev/null)" = "$dir/mqueue" ] || continue
        grep -q '^State:.*Z' "$p/status" 2>/dev/null && continue
        echo "${p#/proc/}"
    done
}

# sm_stop - stop DIR's daemon (TERM), then TERM and after 2 s KILL its leftover children
sm_stop() {
    local dir=$1 pid p
    sm_paths
    pid=$(sm_daemon_pid "$dir")
    [ -n "$pid" ] && tb_stop_pid "$pid" 5
    for p in $(sm_children "$dir"); do
        kill -TERM "$p" 2>/dev/null
    done
    for p in $(sm_children "$dir"); do
        tb_wait_exit "$p" 2 || kill -KILL "$p" 2>/dev/null
    done
}

# sm_queue_files - list the queue files left in DIR/mqueue (empty output: empty queue)
sm_queue_files() {
    find "$1/mqueue" -type f \( -name 'qf*' -o -name 'hf*' -o -name 'df*' -o -name 'xf*' \
        -o -name 'tf*' -o -name 'Qf*' \) -printf '%f\n' 2>/dev/null | sort
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case ${1:-} in
    unpack)
        sm_unpack "${2:-$SM_ROOT}"
        ;;
    *)
        echo "usage: tests/testbed/sendmail.sh unpack [ROOT]   (or source it from bash)" >&2
        exit 64
        ;;
    esac
fi
