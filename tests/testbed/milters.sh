# shellcheck shell=bash
# tests/testbed/milters.sh - start and stop the real milters of the test bed, privately.
#
# Source it from bash after lib.sh:  . tests/testbed/lib.sh; . tests/testbed/milters.sh
# Recipe: shared/docs/testbed.md sections 3 and 7.  Every daemon runs inside
# tests/testbed/netns-run (private network, mount and PID namespaces, only lo),
# in a state directory STATE that the caller owns (normally a mktemp -d):
#
#   STATE/run/NAME.pid   STATE/run/NAME.spec (its milter address, shadowd.conf form)
#   STATE/log/           daemon logs; STATE/log/syslog.log for the syslog-only ones
#   STATE/dns/ dkim/ dmarc/ clamav/ spamass/ rspamd/   per-daemon configuration and data
#
# Every wait is bounded.  Daemons start in their own process group (setsid), so a
# stop kills the daemon and its workers; SIGKILL at once, because the libmilter
# daemons take 5 s to leave on SIGTERM.  Ports come from tb_port_alloc, which
# never hands out the same port twice in one run (lib.sh's tb_free_port may,
# if the first port is not bound yet when it is called again).

if ! declare -F tb_log >/dev/null; then
    # shellcheck source=tests/testbed/lib.sh
    . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

# The test bed's marker for a message that scores just over spamd's threshold.
TB_SA_NEAR_MARKER=TB-SPAMMY-NEAR-THRESHOLD-MARKER
# The custom clamav signature string and the EICAR test file.
TB_CLAM_CUSTOM=TB-MALWARE-TEST-STRING-0xDEADBEEF
TB_EICAR='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
# spamass-milter rejects at or above this score (GTUBE scores 1000); below it, spam is marked.
TB_SPAMASS_REJECT_SCORE=${TB_SPAMASS_REJECT_SCORE:-15}

# tb_milters_check_cmds - check every command the real-milter test bed needs; name the missing packages
tb_milters_check_cmds() {
    local pair cmd pkg
    local -a missing=()
    for pair in postfix:postfix smtp-sink:postfix postqueue:postfix postcat:postfix python3:python3 \
        dnsmasq:dnsmasq-base opendkim:opendkim opendkim-genkey:opendkim-tools \
        opendmarc:opendmarc clamd:clamav-daemon clamav-milter:clamav-milter \
        sigtool:clamav spamd:spamd spamc:spamc spamassassin:spamassassin \
        spamass-milter:spamass-milter rspamd:rspamd setsid:util-linux mountpoint:util-linux \
        /usr/share/publicsuffix/public_suffix_list.dat:publicsuffix; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -e "$cmd" ]; then
            echo "${TB_NAME:-testbed}: missing $cmd (Debian package $pkg)" >&2
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "${TB_NAME:-testbed}: install with: apt-get install --no-install-recommends" \
            "$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')" >&2
        return 1
    fi
}

# tb_wait_cond - run CMD... every 0.1 s until it succeeds; give up after TIMEOUT s: tb_wait_cond TIMEOUT WHAT CMD...
tb_wait_cond() {
    local timeout=$1 what=$2 end
    shift 2
    end=$((SECONDS + timeout))
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "$SECONDS" -lt "$end" ] || break
        sleep 0.1
    done
    echo "${TB_NAME:-testbed}: timed out after ${timeout}s waiting for $what" >&2
    return 1
}

# tb_port_alloc - print a free TCP port not handed out before in this STATE: tb_port_alloc STATE
tb_port_alloc() {
    local state=$1 port _i
    for _i in $(seq 1 200); do
        port=$(tb_free_port) || return 1
        if ! grep -qx "$port" "$state/run/ports" 2>/dev/null; then
            echo "$port" >>"$state/run/ports"
            echo "$port"
            return 0
        fi
    done
    echo "${TB_NAME:-testbed}: no unused port after 200 tries" >&2
    return 1
}

# tb_milter_probe - wait (max TIMEOUT s) until the milter at SPEC answers SMFIC_OPTNEG: tb_milter_probe SPEC TIMEOUT
tb_milter_probe() {
    python3 - "$1" "$2" <<'EOF'
import socket, struct, sys, time
spec, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
def attempt():
    if spec.startswith(("unix:", "local:")):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr = spec.split(":", 1)[1]
    else:
        port, host = spec.split(":", 1)[1].split("@")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        addr = (host, int(port))
    with s:
        s.settimeout(max(0.5, deadline - time.monotonic()))
        s.connect(addr)
        # SMFIC_OPTNEG, version 6, every action, every protocol bit Postfix 3.7 offers
        s.sendall(struct.pack(">IcIII", 13, b"O", 6, 0x1FF, 0x1FFFFF))
        got = b""
        while len(got) < 5:
            chunk = s.recv(5 - len(got))
            if not chunk:
                return False
            got += chunk
        s.sendall(struct.pack(">Ic", 1, b"Q"))
        return got[4:5] == b"O"
while True:
    try:
        if attempt():
            sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.2)
EOF
}

# tb_daemon_spawn - start CMD... in its own session with output to STATE/log/NAME.out; record its pid
tb_daemon_spawn() {
    local state=$1 name=$2
    shift 2
    setsid "$@" </dev/null >>"$state/log/$name.out" 2>&1 &
    echo $! >"$state/run/$name.pid"
    echo "$name" >>"$state/run/started"
    disown $! # no "Killed" job notice when it is stopped
}

# tb_daemon_alive - true if daemon NAME of STATE runs (not exited, not a zombie)
tb_daemon_alive() {
    local pid
    pid=$(cat "$1/run/$2.pid" 2>/dev/null) || return 1
    [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}

# tb_daemon_failed - print why daemon NAME of STATE did not come up (its output's tail) and return 1
tb_daemon_failed() {
    local state=$1 name=$2
    echo "${TB_NAME:-testbed}: $name did not start; last lines of $state/log/$name.out:" >&2
    tail -n 15 "$state/log/$name.out" >&2 2>/dev/null
    return 1
}

# tb_daemon_stop - SIGKILL daemon NAME of STATE and its process group; wait (max 5 s) until gone
tb_daemon_stop() {
    local state=$1 name=$2 pid pgid
    pid=$(cat "$state/run/$name.pid" 2>/dev/null) || return 0
    [ -n "$pid" ] || return 0
    pgid=$(awk '{print $5}' "/proc/$pid/stat" 2>/dev/null)
    if [ -n "$pgid" ] && [ "$pgid" = "$pid" ]; then
        kill -KILL -- "-$pid" 2>/dev/null
    else
        kill -KILL "$pid" 2>/dev/null
    fi
    tb_wait_exit "$pid" 5
    rm -f "$state/run/$name.pid"
}

# tb_milters_stop_all - stop every daemon of STATE that has a pid file (reverse start order), release /dev
tb_milters_stop_all() {
    local state=$1 name
    if [ -s "$state/run/started" ]; then
        tac "$state/run/started" | while read -r name; do
            tb_daemon_stop "$state" "$name"
        done
    fi
    tb_syslog_stop "$state"
}

# tb_state_init - create STATE's common directories, traversable by the daemons' users
tb_state_init() {
    local state=$1
    mkdir -p "$state/run" "$state/log" || return 1
    chmod 755 "$state" "$state/run" "$state/log"
}

# tb_syslog_start - give the namespace a /dev/log that appends to STATE/log/syslog.log
#   Rebuilds /dev in the private mount namespace (testbed.md section 3): the host's
#   /dev is a shared devtmpfs, so no socket may be created in it.  The new /dev
#   holds device nodes of its own (mknod, not bind mounts of the host's) and a
#   private tmpfs as /dev/shm, so that removing STATE can never touch the host's
#   devices or shared memory.  tb_syslog_stop undoes it.
tb_syslog_start() {
    local state=$1 d spec
    tb_require_netns
    d=$state/dev
    mkdir -p "$d/shm" "$d/pts" || return 1
    for spec in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
        mknod -m 666 "$d/${spec%%:*}" c "$(echo "$spec" | cut -d: -f2)" "${spec##*:}" || return 1
    done
    mount -t tmpfs -o mode=1777,size=256m tb-shm "$d/shm" || return 1
    ln -sf /proc/self/fd "$d/fd"
    ln -sf /proc/self/fd/0 "$d/stdin"
    ln -sf /proc/self/fd/1 "$d/stdout"
    ln -sf /proc/self/fd/2 "$d/stderr"
    ln -sf "$state/run/syslog.sock" "$d/log"
    cat >"$state/run/syslog-recv.py" <<'EOF'
# a unix-datagram syslog receiver: one line per datagram, appended to a file
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
if os.path.exists(path):
    os.unlink(path)
s.bind(path)
os.chmod(path, 0o666)
with open(log, "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
EOF
    tb_daemon_spawn "$state" syslog python3 "$state/run/syslog-recv.py" "$state/run/syslog.sock" \
        "$state/log/syslog.log"
    tb_wait_cond 10 "the syslog socket" test -S "$state/run/syslog.sock" ||
        tb_daemon_failed "$state" syslog || return 1
    mount --rbind "$d" /dev || return 1
    touch "$state/run/dev-mounted"
}

# tb_syslog_stop - stop the receiver and give the namespace its /dev back, so STATE can be removed
tb_syslog_stop() {
    local state=$1
    tb_daemon_stop "$state" syslog
    if [ -e "$state/run/dev-mounted" ]; then
        # the top two mounts only: the copy of the private /dev/shm, then the new /dev;
        # lazily, as processes on their way out may still hold /dev/null open
        umount -l /dev/shm && umount -l /dev && rm -f "$state/run/dev-mounted"
    fi
    if mountpoint -q "$state/dev/shm" 2>/dev/null; then
        umount -l "$state/dev/shm"
    fi
}

# tb_dkim_keygen - make the example.com DKIM key (selector tb, 1024 bit) in STATE/dkim/keys
tb_dkim_keygen() {
    local state=$1
    mkdir -p "$state/dkim/keys" || return 1
    opendkim-genkey -b 1024 -d example.com -s tb -D "$state/dkim/keys" ||
        { echo "${TB_NAME:-testbed}: opendkim-genkey failed" >&2; return 1; }
    chown -R opendkim:opendkim "$state/dkim"
}

# tb_dns_start - dnsmasq on 127.0.0.1:53 with the test zones (the DKIM record once the key exists)
tb_dns_start() {
    local state=$1 txt
    tb_require_netns
    mkdir -p "$state/dns" || return 1
    cat >"$state/dns/00-base.conf" <<'EOF'
host-record=mx.tb.test,127.0.0.1
host-record=client.tb.test,127.0.0.1
host-record=sink.tb.test,127.0.0.1
txt-record=example.com,"v=spf1 ip4:127.0.0.1 -all"
txt-record=_dmarc.example.com,"v=DMARC1; p=reject; adkim=r; aspf=r"
txt-record=evil.example,"v=spf1 ip4:192.0.2.1 -all"
txt-record=_dmarc.evil.example,"v=DMARC1; p=reject"
EOF
    if [ -s "$state/dkim/keys/tb.txt" ]; then
        # tb.txt holds the record as quoted strings; keep them as separate TXT strings
        txt=$(grep -o '"[^"]*"' "$state/dkim/keys/tb.txt" | tr '\n' ',' | sed 's/,$//')
        echo "txt-record=tb._domainkey.example.com,$txt" >"$state/dns/10-dkim.conf"
    fi
    tb_daemon_spawn "$state" dnsmasq dnsmasq -k --conf-file=/dev/null --conf-dir="$state/dns,*.conf" \
        --no-resolv --no-hosts --no-poll --local=/#/ --listen-address=127.0.0.1 --bind-interfaces \
        --port=53 --user=root --log-queries --log-facility="$state/log/dnsmasq.log" --pid-file=
    tb_wait_listen 53 10 || tb_daemon_failed "$state" dnsmasq
}

# tb_opendkim_start - opendkim as ROLE (signer: signs example.com; verifier: verifies all) on a free port
tb_opendkim_start() {
    local state=$1 role=$2 port d conf
    tb_require_netns
    d=$state/dkim
    port=$(tb_port_alloc "$state") || return 1
    conf=$d/$role.conf
    mkdir -p "$d" || return 1
    {
        echo "Syslog yes"
        echo "SyslogName opendkim-$role"
        echo "LogWhy yes"
        echo "SyslogSuccess yes"
        echo "Background no"
        echo "UserID opendkim:opendkim"
        echo "UMask 007"
        echo "Socket inet:$port@127.0.0.1"
        echo "PidFile $d/$role.pid"
        echo "Canonicalization relaxed/simple"
        echo "AuthservID $role.tb.test"
        echo "AlwaysAddARHeader yes"
        echo "Nameservers 127.0.0.1"
        echo "RequireSafeKeys no"   # the keys live under /tmp (world-writable)
        if [ "$role" = signer ]; then
            echo "Mode s"
            echo "Domain example.com"
            echo "Selector tb"
            echo "KeyFile $d/keys/tb.private"
            echo "InternalHosts $d/internal-signer"
        else
            echo "Mode v"
            echo "InternalHosts $d/internal-verifier" # without 127.0.0.1, else nothing is verified
        fi
    } >"$conf"
    echo 127.0.0.1 >"$d/internal-signer"
    echo 192.0.2.1 >"$d/internal-verifier"
    chown -R opendkim:opendkim "$d"
    tb_daemon_spawn "$state" "opendkim-$role" opendkim -f -x "$conf"
    echo "inet:$port@127.0.0.1" >"$state/run/opendkim-$role.spec"
}

# tb_opendmarc_start - opendmarc (RejectFailures, SPF off, DKIM results from verifier.tb.test) on a free port
tb_opendmarc_start() {
    local state=$1 port d
    tb_require_netns
    d=$state/dmarc
    port=$(tb_port_alloc "$state") || return 1
    mkdir -p "$d" || return 1
    echo 192.0.2.1 >"$d/ignore-hosts" # the default, 127.0.0.1, would ignore all our mail
    cat >"$d/opendmarc.conf" <<EOF
Syslog true
Background false
UserID opendmarc:opendmarc
UMask 007
Socket inet:$port@127.0.0.1
PidFile $d/opendmarc.pid
AuthservID dmarc.tb.test
TrustedAuthservIDs verifier.tb.test,dmarc.tb.test
IgnoreHosts $d/ignore-hosts
IgnoreAuthenticatedClients false
SPFSelfValidate false
SPFIgnoreResults false
RejectFailures true
RequiredHeaders false
FailureReports false
HistoryFile $d/history
PublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat
DNSTimeout 2
EOF
    chown -R opendmarc:opendmarc "$d"
    tb_daemon_spawn "$state" opendmarc opendmarc -f -c "$d/opendmarc.conf"
    echo "inet:$port@127.0.0.1" >"$state/run/opendmarc.spec"
}

# tb_clamav_start - clamd (local signatures only, no freshclam) and clamav-milter (OnInfected Reject); waits for clamd
tb_clamav_start() {
    local state=$1 d
    tb_require_netns
    d=$state/clamav
    mkdir -p "$d/db" "$d/tmp" || return 1
    printf 'TB.Test.EICAR:0:*:%s\nTB.Test.CustomString:0:*:%s\n' \
        "$(printf '%s' "$TB_EICAR" | sigtool --hex-dump | tr -d '\n')" \
        "$(printf '%s' "$TB_CLAM_CUSTOM" | sigtool --hex-dump | tr -d '\n')" >"$d/db/tb.ndb"
    cat >"$d/clamd.conf" <<EOF
LocalSocket $d/clamd.sock
FixStaleSocket yes
LocalSocketMode 666
Foreground yes
User clamav
LogFile $state/log/clamd.log
LogTime yes
DatabaseDirectory $d/db
TemporaryDirectory $d/tmp
SelfCheck 0
EOF
    touch "$state/log/clamd.log"
    chown clamav:clamav "$state/log/clamd.log"
    chown -R clamav:clamav "$d"
    tb_daemon_spawn "$state" clamd clamd -c "$d/clamd.conf"
    tb_wait_cond 60 "clamd's socket" test -S "$d/clamd.sock" || tb_daemon_failed "$state" clamd || return 1
    tb_clamav_milter_start "$state" clamav-milter Reject
}

# tb_clamav_milter_start - one more clamav-milter NAME on clamd, on a free port, OnInfected ACTION (Reject, Quarantine, Blackhole)
tb_clamav_milter_start() {
    local state=$1 name=$2 action=$3 port d
    tb_require_netns
    d=$state/clamav
    port=$(tb_port_alloc "$state") || return 1
    cat >"$d/$name.conf" <<EOF
MilterSocket inet:$port@127.0.0.1
ClamdSocket unix:$d/clamd.sock
User clamav
Foreground yes
LogFile $state/log/$name.log
LogTime yes
LogInfected Full
LogClean Basic
OnClean Accept
OnInfected $action
OnFail Defer
AddHeader Replace
ReportHostname clamav.tb.test
TemporaryDirectory $d/tmp
MaxFileSize 25M
ReadTimeout 60
EOF
    touch "$state/log/$name.log"
    chown clamav:clamav "$state/log/$name.log" "$d/$name.conf"
    tb_daemon_spawn "$state" "$name" clamav-milter -c "$d/$name.conf"
    echo "inet:$port@127.0.0.1" >"$state/run/$name.spec"
}

# tb_spamd_ready - true when spamd at 127.0.0.1:PORT answers a check (spamc -x: no safe fallback)
tb_spamd_ready() {
    printf 'Subject: probe\n\nprobe\n' | spamc -x -d 127.0.0.1 -p "$1" -c >/dev/null 2>&1
    [ $? -le 1 ]
}

# tb_spamass_start - spamd (shipped rules, no network tests) and spamass-milter on a unix socket; waits for spamd
#   spamass-milter rejects at or above TB_SPAMASS_REJECT_SCORE and marks the rest
#   (rewrite_header Subject [SPAM], X-Spam-* headers; with TB_SA_REPORT_SAFE=1, SpamAssassin's
#   default, the body becomes a report with the original attached).  Extra args go to spamass-milter.
tb_spamass_start() {
    local state=$1 port d
    shift
    tb_require_netns
    d=$state/spamass
    port=$(tb_port_alloc "$state") || return 1
    mkdir -p "$d/site" "$d/home" "$d/run" || return 1
    cp /etc/spamassassin/*.pre "$d/site/" # plugin loading lives in the .pre files
    cat >"$d/site/local.cf" <<EOF
dns_available no
skip_rbl_checks 1
use_razor2 0
use_pyzor 0
use_bayes 0
bayes_auto_learn 0
dns_server 127.0.0.1
trusted_networks 127.0.0.0/8
internal_networks 127.0.0.0/8
required_score 5.0
report_safe ${TB_SA_REPORT_SAFE:-0}
rewrite_header Subject [SPAM]
add_header all Status _YESNO_, score=_SCORE_ required=_REQD_ tests=_TESTS_ autolearn=_AUTOLEARN_ version=_VERSION_
body TB_NEAR_THRESHOLD /$TB_SA_NEAR_MARKER/
describe TB_NEAR_THRESHOLD test bed: a marker that makes a message score just over required_score
score TB_NEAR_THRESHOLD 6.5
EOF
    chown -R debian-spamd:debian-spamd "$d/home"
    tb_daemon_spawn "$state" spamd spamd --listen="127.0.0.1:$port" --allowed-ips=127.0.0.1 --local \
        --nouser-config --username=debian-spamd --groupname=debian-spamd --helper-home-dir="$d/home" \
        --siteconfigpath="$d/site" --syslog="$state/log/spamd.log" --pidfile="$d/run/spamd.pid" \
        --min-children=2 --max-children=4 --max-spare=2
    # spamd binds before its children can answer: wait for a real answer
    tb_wait_cond 60 "spamd on port $port" tb_spamd_ready "$port" || tb_daemon_failed "$state" spamd || return 1
    tb_daemon_spawn "$state" spamass-milter spamass-milter -p "$d/run/spamass.sock" \
        -r "$TB_SPAMASS_REJECT_SCORE" -R "Blocked by SpamAssassin (test bed)" \
        -P "$d/run/spamass-milter.pid" "$@" -- -d 127.0.0.1 -p "$port"
    tb_wait_cond 10 "spamass-milter's socket" test -S "$d/run/spamass.sock" ||
        tb_daemon_failed "$state" spamass-milter || return 1
    chmod 666 "$d/run/spamass.sock"
    echo "unix:$d/run/spamass.sock" >"$state/run/spamass-milter.spec"
}

# tb_rspamd_start - rspamd's proxy worker in milter mode, self_scan, no redis, on a free port (no wait)
#   DBDIR (hyperscan and map caches) is STATE/rspamd/db unless TB_RSPAMD_DBDIR names a kept one.
tb_rspamd_start() {
    local state=$1 port cport d e m dbdir
    tb_require_netns
    d=$state/rspamd
    e=$d/etc
    port=$(tb_port_alloc "$state") || return 1
    cport=$(tb_port_alloc "$state") || return 1
    dbdir=${TB_RSPAMD_DBDIR:-$d/db}
    mkdir -p "$e/local.d" "$e/override.d" "$dbdir" "$d/run" || return 1
    cat >"$e/override.d/worker-proxy.inc" <<EOF
bind_socket = "127.0.0.1:$port";
milter = yes;
timeout = 120s;
self_scan = yes;
count = 1;
upstream "local" { default = yes; self_scan = yes; }
spam_header = "X-Spam";
reject_message = "Spam message rejected (rspamd test bed)";
discard_on_reject = false;
quarantine_on_reject = false;
EOF
    echo 'enabled = false;' >"$e/override.d/worker-normal.inc"
    printf 'bind_socket = "127.0.0.1:%s";\npassword = "q1";\n' "$cport" >"$e/override.d/worker-controller.inc"
    cat >"$e/local.d/options.inc" <<'EOF'
dns { nameserver = ["127.0.0.1:53"]; timeout = 1s; retransmits = 1; }
local_addrs = [];
filters = "chartable,dkim,regexp";
gtube_patterns = "all";
EOF
    printf 'type = "file";\nfilename = "%s/log/rspamd.log";\nlevel = "info";\n' "$state" >"$e/local.d/logging.inc"
    cat >"$e/local.d/milter_headers.conf" <<'EOF'
use = ["x-spamd-result", "x-rspamd-server", "x-rspamd-queue-id", "authentication-results", "x-spam-status"];
extended_spam_headers = true;
skip_local = false;
skip_authenticated = false;
EOF
    for m in fuzzy_check rbl phishing asn emails url_redirector dcc external_services antivirus \
        metadata_exporter elastic clickhouse p0f replies neural reputation ratelimit greylist \
        history_redis dmarc spf arc; do
        echo 'enabled = false;' >"$e/local.d/$m.conf"
    done
    touch "$state/log/rspamd.log"
    chown _rspamd:_rspamd "$state/log/rspamd.log"
    chown -R _rspamd:_rspamd "$d" "$dbdir"
    # rspamd is a GLib program: the test suites' G_DEBUG=fatal-warnings is not meant for it
    tb_daemon_spawn "$state" rspamd env -u G_DEBUG rspamd -f -u _rspamd -g _rspamd -c /etc/rspamd/rspamd.conf \
        --var LOCAL_CONFDIR="$e" --var DBDIR="$dbdir" --var RUNDIR="$d/run" --var LOGDIR="$state/log"
    echo "inet:$port@127.0.0.1" >"$state/run/rspamd.spec"
}

# tb_milter_wait - wait (max TIMEOUT s, default 20) until milter NAME of STATE answers; say why not
tb_milter_wait() {
    local state=$1 name=$2 timeout=${3:-20} spec
    spec=$(cat "$state/run/$name.spec" 2>/dev/null) || { echo "${TB_NAME:-testbed}: $name has no address" >&2; return 1; }
    if ! tb_daemon_alive "$state" "$name"; then
        tb_daemon_failed "$state" "$name"
        return 1
    fi
    tb_milter_probe "$spec" "$timeout" && return 0
    tb_daemon_failed "$state" "$name"
}

# tb_milter_spec - print the milter address of NAME in shadowd.conf form (inet:PORT@HOST, unix:PATH)
tb_milter_spec() {
    cat "$1/run/$2.spec"
}

# tb_milter_postfix_spec - print the milter address of NAME in Postfix's form (inet:HOST:PORT, unix:PATH)
tb_milter_postfix_spec() {
    local spec
    spec=$(cat "$1/run/$2.spec") || return 1
    case $spec in
    inet:*@*)
        spec=${spec#inet:}
        echo "inet:${spec#*@}:${spec%@*}"
        ;;
    *) echo "$spec" ;;
    esac
}
