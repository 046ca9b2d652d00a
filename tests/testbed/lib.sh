# shellcheck shell=bash
# tests/testbed/lib.sh - shell helpers for tests that run a private Postfix on loopback.
#
# Source it from bash:  . "$(dirname "$0")/../testbed/lib.sh"
# Start daemons only inside tests/testbed/netns-run (private net/mount/PID
# namespaces, lo only); tb_require_netns refuses otherwise.  Every wait below
# is bounded in tries and time.  Recipe: shared/docs/testbed.md sections 3-5.
#
# A Postfix instance lives in one directory DIR (normally under a mktemp -d):
#   DIR/etc/{main.cf,master.cf}  DIR/spool  DIR/data  DIR/log/maillog
#   DIR/sink/  (smtp-sink dumps)  DIR/run/  (pid files, ports)

# tb_log - print a progress message on stderr
tb_log() {
    echo "[${TB_NAME:-testbed}] $*" >&2
}

# tb_die - print an error on stderr and exit 1
tb_die() {
    echo "${TB_NAME:-testbed}: error: $*" >&2
    exit 1
}

# tb_require_root - exit with an error unless running as root
tb_require_root() {
    [ "$(id -u)" = 0 ] || tb_die "must be run as root"
}

# tb_require_netns - exit with an error unless inside tests/testbed/netns-run
tb_require_netns() {
    [ "${TB_NETNS:-}" = 1 ] || tb_die "must run inside tests/testbed/netns-run (private network namespace)"
}

# tb_check_cmds - check "COMMAND:DEBIAN-PACKAGE" pairs; name every missing package, exit 1 if any
tb_check_cmds() {
    local pair cmd pkg
    local -a missing=()
    for pair in "$@"; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "$cmd" ]; then
            echo "${TB_NAME:-testbed}: missing command $cmd (Debian package $pkg)" >&2
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        tb_die "install with: apt-get install $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
    fi
}

# tb_port_in_use - true if a TCP socket on this host (netns) uses local PORT, any state
tb_port_in_use() {
    local hex
    hex=$(printf ':%04X ' "$1")
    grep -q -- "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# tb_port_listening - true if some TCP socket listens on PORT (state 0A in /proc/net/tcp*)
tb_port_listening() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v p=":$hex" 'FNR > 1 && substr($2, length($2) - 4) == p && $4 == "0A" {found = 1}
                      END {exit !found}' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# tb_free_port - print a TCP port in 20000-59999 that no socket uses (at most 200 tries)
tb_free_port() {
    local _i port
    for _i in $(seq 1 200); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if ! tb_port_in_use "$port"; then
            echo "$port"
            return 0
        fi
    done
    tb_die "no free TCP port found after 200 tries"
}

# tb_wait_listen - wait until PORT is listening; TIMEOUT seconds (default 10), polled every 0.1 s
tb_wait_listen() {
    local port=$1 timeout=${2:-10} _i
    for _i in $(seq 1 $((timeout * 10))); do
        tb_port_listening "$port" && return 0
        sleep 0.1
    done
    echo "${TB_NAME:-testbed}: nothing listens on TCP port $port after ${timeout}s" >&2
    return 1
}

# tb_wait_file - wait until FILE exists and is not empty; TIMEOUT seconds (default 10)
tb_wait_file() {
    local file=$1 timeout=${2:-10} _i
    for _i in $(seq 1 $((timeout * 10))); do
        [ -s "$file" ] && return 0
        sleep 0.1
    done
    echo "${TB_NAME:-testbed}: $file did not appear after ${timeout}s" >&2
    return 1
}

# tb_wait_grep - wait until extended regex PATTERN matches in FILE; TIMEOUT seconds (default 10)
tb_wait_grep() {
    local pattern=$1 file=$2 timeout=${3:-10} _i
    for _i in $(seq 1 $((timeout * 10))); do
        grep -Eq -- "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "${TB_NAME:-testbed}: /$pattern/ not found in $file after ${timeout}s" >&2
    return 1
}

# tb_wait_exit - wait until process PID has exited (or is a zombie); TIMEOUT seconds (default 10)
tb_wait_exit() {
    local pid=$1 timeout=${2:-10} _i
    for _i in $(seq 1 $((timeout * 10))); do
        [ -e "/proc/$pid" ] || return 0
        grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# tb_stop_pid - send TERM to PID, wait up to TIMEOUT seconds (default 5), then KILL it
tb_stop_pid() {
    local pid=$1 timeout=${2:-5}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    tb_wait_exit "$pid" "$timeout" && return 0
    kill -KILL "$pid" 2>/dev/null
    tb_wait_exit "$pid" 2
}

# tb_postfix_create - write a private Postfix instance into DIR (testbed.md section 4)
#   usage: tb_postfix_create DIR SMTPD_PORT SINK_PORT MILTERS [IPV6]
#   MILTERS is the smtpd_milters value ("" for none); non_smtpd_milters gets the same.
#   IPV6=1 also listens on [::1]:SMTPD_PORT (inet_protocols = all).
tb_postfix_create() {
    local dir=$1 smtpd_port=$2 sink_port=$3 milters=$4 ipv6=${5:-0}
    local protocols=ipv4 interfaces=127.0.0.1 networks=127.0.0.0/8
    if [ -z "$dir" ] || [ -z "$smtpd_port" ] || [ -z "$sink_port" ]; then
        tb_die "usage: tb_postfix_create DIR SMTPD_PORT SINK_PORT MILTERS [IPV6]"
    fi
    if [ "$ipv6" = 1 ]; then
        protocols=all
        interfaces='127.0.0.1, [::1]'
        networks='127.0.0.0/8, [::1]/128'
    fi
    mkdir -p "$dir/etc" "$dir/spool" "$dir/data" "$dir/log" "$dir/run" "$dir/sink" || return 1
    # Postfix daemons run as "postfix" and must be able to reach the queue below DIR.
    chmod 755 "$dir"
    chown postfix:postfix "$dir/data"   # else: master.lock "Permission denied"
    chown nobody "$dir/sink"            # smtp-sink -u nobody writes the dumps
    echo "$smtpd_port" >"$dir/run/smtpd_port"
    echo "$sink_port" >"$dir/run/sink_port"
    echo "$ipv6" >"$dir/run/ipv6"
    cat >"$dir/etc/main.cf" <<EOF
# private test instance written by tests/testbed/lib.sh (tb_postfix_create)
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-tb
maillog_file = $dir/log/maillog
maillog_file_prefixes = $dir/log
myhostname = mx.tb.test
mydomain = tb.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery disabled in test bed
alias_maps =
alias_database =
biff = no
inet_interfaces = $interfaces
inet_protocols = $protocols
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
mynetworks = $networks
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:$sink_port
queue_run_delay = 10s
minimal_backoff_time = 10s
maximal_backoff_time = 60s
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_process_limit = 100
smtpd_milters = $milters
non_smtpd_milters = \$smtpd_milters
milter_protocol = 6
milter_default_action = tempfail
milter_connect_timeout = 10s
milter_command_timeout = 10s
milter_content_timeout = 30s
milter_mail_macros = i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}
EOF
    {
        echo "127.0.0.1:$smtpd_port inet n - n - - smtpd"
        [ "$ipv6" = 1 ] && echo "[::1]:$smtpd_port inet n - n - - smtpd"
        cat <<'EOF'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    } >"$dir/etc/master.cf"
}

# tb_postconf - set main.cf parameters of the instance in DIR: tb_postconf DIR 'name = value'...
tb_postconf() {
    local dir=$1
    shift
    postconf -c "$dir/etc" -e "$@"
}

# tb_postfix_start - check and start the instance in DIR; wait (max 20 s) until smtpd listens
tb_postfix_start() {
    local dir=$1 port
    tb_require_netns
    port=$(cat "$dir/run/smtpd_port") || return 1
    postfix -c "$dir/etc" check || { echo "${TB_NAME:-testbed}: postfix check failed for $dir" >&2; return 1; }
    postfix -c "$dir/etc" start >>"$dir/log/postfix-start.out" 2>&1 ||
        { cat "$dir/log/postfix-start.out" >&2; return 1; }
    # Readiness without connecting (a connect would start an SMTP session and a
    # milter connection): master listens on the smtpd port.
    tb_wait_listen "$port" 20 || return 1
    if [ "$(cat "$dir/run/ipv6")" = 1 ]; then
        # the [::1] listener is set up by the same master; check it too
        awk -v p="$(printf ':%04X' "$port")" 'FNR > 1 && substr($2, length($2) - 4) == p && $4 == "0A" {f = 1}
            END {exit !f}' /proc/net/tcp6 || { echo "${TB_NAME:-testbed}: no [::1]:$port listener" >&2; return 1; }
    fi
    tb_log "postfix started in $dir (smtpd port $port)"
}

# tb_postfix_master_pid - print the master PID of the instance in DIR (empty if not running)
tb_postfix_master_pid() {
    local f="$1/spool/pid/master.pid"
    [ -s "$f" ] && tr -d ' \n' <"$f"
}

# tb_postfix_stop - stop the instance in DIR gracefully (max 15 s), then "postfix abort"
tb_postfix_stop() {
    local dir=$1 pid
    pid=$(tb_postfix_master_pid "$dir")
    [ -n "$pid" ] || return 0
    postfix -c "$dir/etc" stop >>"$dir/log/postfix-start.out" 2>&1
    if ! tb_wait_exit "$pid" 15; then
        postfix -c "$dir/etc" abort >>"$dir/log/postfix-start.out" 2>&1
        tb_wait_exit "$pid" 5 || kill -KILL "$pid" 2>/dev/null
    fi
}

# tb_postfix_maillog - print the path of the instance's log file
tb_postfix_maillog() {
    echo "$1/log/maillog"
}

# tb_sendmail - submit a message (stdin) through the pickup path: tb_sendmail DIR SENDER RCPT...
tb_sendmail() {
    local dir=$1 sender=$2
    shift 2
    sendmail -C "$dir/etc" -f "$sender" -- "$@"
}

# tb_sink_start - start smtp-sink on 127.0.0.1:SINK_PORT of the instance in DIR, dumps in DIR/sink
tb_sink_start() {
    local dir=$1 port
    tb_require_netns
    port=$(cat "$dir/run/sink_port") || return 1
    smtp-sink -u nobody -4 -h sink.tb.test -m 512 -d "$dir/sink/%Y%m%d%H%M%S." \
        "127.0.0.1:$port" 256 >>"$dir/log/smtp-sink.out" 2>&1 &
    echo $! >"$dir/run/sink.pid"
    tb_wait_listen "$port" 10 || return 1
    tb_log "smtp-sink listening on 127.0.0.1:$port"
}

# tb_sink_stop - stop the smtp-sink of the instance in DIR
tb_sink_stop() {
    local f="$1/run/sink.pid"
    [ -s "$f" ] || return 0
    tb_stop_pid "$(cat "$f")" 5
    rm -f "$f"
}
