#!/bin/bash
# postfix.sh - private Postfix and smtp-sink for bench/bench.py, through tests/testbed/lib.sh
#
# usage: bench/postfix.sh create DIR SMTPD_PORT SINK_PORT MILTERS
#        bench/postfix.sh start DIR | stop DIR | sink-start DIR | sink-stop DIR
#        bench/postfix.sh free-port | check
#
# A thin dispatcher so that the Python runner uses the project's own Postfix
# helpers (tb_postfix_create, tb_postfix_start, tb_sink_start, ...) instead of
# a copy of them.  Must run inside tests/testbed/netns-run, as lib.sh demands
# for everything that starts a daemon.  Every wait is bounded (lib.sh).
set -u
here=$(cd "$(dirname "$0")" && pwd)
export TB_NAME=bench
# shellcheck source=tests/testbed/lib.sh
. "$here/../tests/testbed/lib.sh"

[ $# -ge 1 ] || tb_die "usage: postfix.sh create|start|stop|sink-start|sink-stop|free-port|check ..."
cmd=$1
shift
case $cmd in
check)
    tb_check_cmds postfix:postfix smtp-source:postfix smtp-sink:postfix postconf:postfix
    ;;
free-port)
    tb_free_port
    ;;
create)
    [ $# -eq 4 ] || tb_die "usage: postfix.sh create DIR SMTPD_PORT SINK_PORT MILTERS"
    tb_postfix_create "$1" "$2" "$3" "$4" || exit 1
    # Benchmark settings: no size limit below the largest test message, no
    # slow-down of fast clients, and the milter timeouts of a production box.
    tb_postconf "$1" 'message_size_limit = 52428800' 'smtpd_error_sleep_time = 0' \
        'in_flow_delay = 0' 'smtpd_soft_error_limit = 1000' 'smtpd_hard_error_limit = 1000'
    ;;
start)
    tb_require_netns
    tb_postfix_start "$1" >/dev/null
    ;;
stop)
    tb_postfix_stop "$1"
    ;;
sink-start)
    tb_require_netns
    tb_sink_start "$1" >/dev/null 2>&1 || tb_die "smtp-sink did not start for $1"
    ;;
sink-stop)
    tb_sink_stop "$1"
    ;;
*)
    tb_die "unknown command '$cmd' (create, start, stop, sink-start, sink-stop, free-port, check)"
    ;;
esac
