/*
 * milter-capture - transparent recording proxy for the milter protocol.
 *
 * Listens on an address, and for every accepted connection (from an MTA)
 * connects to an upstream milter and relays bytes both ways unchanged.
 * Every relayed packet is appended, framed by its 4-byte big-endian length
 * prefix, to OUTDIR/conn-N.packets (N = 1, 2, ... in accept order):
 *
 *     # comment lines
 *     > 0000000d4f00000006000001ff001fffff      (MTA -> milter)
 *     < 0000001d4f...                            (milter -> MTA)
 *
 * The proxy knows nothing about the protocol beyond that framing: it never
 * looks at the command byte or the data, so it stays independent of the
 * codec it is used to test.  A length prefix of 0 or above 16 MiB closes the
 * connection with an error; packets completed before that stay recorded.
 *
 * Build: gcc -Wall -Wextra -Werror -O2 -o milter-capture milter-capture.c
 * (plain POSIX; no library needed).  Run "milter-capture --help".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PROG               "milter-capture"
#define MAX_PACKET         (16u * 1024u * 1024u) /* largest accepted length prefix */
#define READ_CHUNK         65536
#define MAX_PENDING        (64u * 1024u * 1024u) /* stop reading a side while its peer lags this much */
#define CONNECT_TIMEOUT_MS 10000

/* ---------------------------------------------------------------- utilities */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void warnmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* die - print "milter-capture: MESSAGE" and exit 1 */
static void
die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* warnmsg - print "milter-capture: MESSAGE" and go on */
static void
warnmsg(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* xrealloc - realloc or die */
static void *
xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        die("out of memory (%zu bytes)", n);
    return q;
}

/* now_ms - monotonic clock in milliseconds */
static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* set_nonblock - put a descriptor in non-blocking, close-on-exec mode */
static int
set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* ---------------------------------------------------------------- addresses */

/* One parsed socket address: "HOST:PORT", "[V6]:PORT" or "unix:/path". */
struct address {
    char text[PATH_MAX + 16]; /* as given, for messages */
    struct sockaddr_storage ss;
    socklen_t len;
    int family;
};

/* parse_address - fill *a from text; returns 0 or -1 with a message in err */
static int
parse_address(const char *text, struct address *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->text, sizeof(a->text), "%s", text);
    if (strncmp(text, "unix:", 5) == 0) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;
        const char *path = text + 5;
        if (*path == '\0' || strlen(path) >= sizeof(sun->sun_path)) {
            snprintf(err, errlen, "bad unix socket path in \"%s\" (empty or too long)", text);
            return -1;
        }
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, path, strlen(path) + 1);
        a->len = sizeof(*sun);
        a->family = AF_UNIX;
        return 0;
    }
    char host[256];
    const char *port;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host)) {
            snprintf(err, errlen, "bad address \"%s\" (want [IPV6]:PORT)", text);
            return -1;
        }
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || (size_t)(colon - text) >= sizeof(host) || colon == text) {
            snprintf(err, errlen, "bad address \"%s\" (want HOST:PORT, [IPV6]:PORT or unix:PATH)",
                     text);
            return -1;
        }
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p < 0 || p > 65535) {
        snprintf(err, errlen, "bad port in \"%s\"", text);
        return -1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "bad address \"%s\": %s (numeric addresses only)", text,
                 gai_strerror(rc));
        return -1;
    }
    memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
    a->len = res->ai_addrlen;
    a->family = res->ai_family;
    freeaddrinfo(res);
    return 0;
}

/* address_port - the port of an inet address (host order), or -1 */
static int
address_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return -1;
}

/* set_nodelay - disable Nagle on TCP sockets (no-op for unix sockets) */
static void
set_nodelay(int fd, int family)
{
    int one = 1;
    if (family == AF_INET || family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---------------------------------------------------------------- buffers */

struct buf {
    unsigned char *data;
    size_t len, cap;
};

/* buf_append - append n bytes */
static void
buf_append(struct buf *b, const unsigned char *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* buf_consume - drop the first n bytes */
static void
buf_consume(struct buf *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* ---------------------------------------------------------------- connections */

enum { MTA = 0, MILTER = 1 };
static const char dir_char[2] = { '>', '<' }; /* packets read from side i */
static const char *side_name[2] = { "MTA", "milter" };

struct side {
    int fd;
    struct buf in;  /* bytes read, not yet a complete packet */
    struct buf out; /* bytes waiting to be written to this side */
    int eof;        /* read side saw EOF (or error) */
    int shut;       /* we did shutdown(SHUT_WR) on it */
};

struct conn {
    int id;
    int live;
    int connecting; /* upstream connect() in progress */
    long long connect_deadline;
    struct side s[2];
    FILE *log;
    char path[PATH_MAX];
    unsigned long packets[2];
};

static struct conn **conns;
static size_t nconns;
static int any_error;

/* log_comment - write a '#' comment line to the connection's file */
static void log_comment(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
log_comment(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    if (c->log == NULL)
        return;
    fputs("# ", c->log);
    va_start(ap, fmt);
    vfprintf(c->log, fmt, ap);
    va_end(ap);
    fputc('\n', c->log);
    fflush(c->log);
}

/* log_packet - write one packet line: DIR, space, lowercase hex, newline */
static void
log_packet(struct conn *c, int from, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char chunk[8192];
    size_t k = 0;
    fputc(dir_char[from], c->log);
    fputc(' ', c->log);
    for (size_t i = 0; i < n; i++) {
        chunk[k++] = hex[p[i] >> 4];
        chunk[k++] = hex[p[i] & 15];
        if (k == sizeof(chunk)) {
            fwrite(chunk, 1, k, c->log);
            k = 0;
        }
    }
    fwrite(chunk, 1, k, c->log);
    fputc('\n', c->log);
    fflush(c->log);
    if (ferror(c->log))
        die("write %s: %s", c->path, strerror(errno));
    c->packets[from]++;
}

/* conn_close - finish a connection: close sockets, write the trailer */
static void
conn_close(struct conn *c, const char *why)
{
    if (!c->live)
        return;
    for (int i = 0; i < 2; i++) {
        if (c->s[i].fd >= 0)
            close(c->s[i].fd);
        c->s[i].fd = -1;
        free(c->s[i].in.data);
        free(c->s[i].out.data);
        memset(&c->s[i].in, 0, sizeof(c->s[i].in));
        memset(&c->s[i].out, 0, sizeof(c->s[i].out));
    }
    if (why != NULL)
        log_comment(c, "end of connection %d (%s)", c->id, why);
    else
        log_comment(c, "end of connection %d", c->id);
    if (c->log != NULL && fclose(c->log) != 0)
        die("close %s: %s", c->path, strerror(errno));
    c->log = NULL;
    c->live = 0;
    fprintf(stderr, PROG ": connection %d closed%s%s (%lu packets from MTA, %lu from milter)\n",
            c->id, why ? ": " : "", why ? why : "", c->packets[MTA], c->packets[MILTER]);
}

/* conn_fail - report an error on a connection and close it */
static void conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
conn_fail(struct conn *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    warnmsg("connection %d: %s", c->id, msg);
    log_comment(c, "error: %s", msg);
    any_error = 1;
    conn_close(c, "error");
}

/* start_upstream - begin a non-blocking connect to the upstream milter */
static int
start_upstream(struct conn *c, const struct address *up)
{
    int fd = socket(up->family, SOCK_STREAM, 0);
    if (fd < 0) {
        conn_fail(c, "socket for upstream %s: %s", up->text, strerror(errno));
        return -1;
    }
    if (set_nonblock(fd) < 0) {
        close(fd);
        conn_fail(c, "fcntl on upstream socket: %s", strerror(errno));
        return -1;
    }
    set_nodelay(fd, up->family);
    c->s[MILTER].fd = fd;
    if (connect(fd, (const struct sockaddr *)&up->ss, up->len) == 0) {
        c->connecting = 0;
        return 0;
    }
    if (errno != EINPROGRESS) {
        conn_fail(c, "connect to upstream %s: %s", up->text, strerror(errno));
        return -1;
    }
    c->connecting = 1;
    c->connect_deadline = now_ms() + CONNECT_TIMEOUT_MS;
    return 0;
}

/* extract_packets - move complete packets from side FROM's input to its peer's
 * output, logging each one; returns -1 if the connection was closed */
static int
extract_packets(struct conn *c, int from)
{
    struct side *s = &c->s[from];
    struct side *peer = &c->s[1 - from];
    size_t off = 0;
    while (s->in.len - off >= 4) {
        const unsigned char *p = s->in.data + off;
        uint32_t len =
            ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
        if (len == 0 || len > MAX_PACKET) {
            buf_consume(&s->in, off);
            conn_fail(c,
                      "bad length prefix %lu (0x%08lx) in packet from %s (after %lu complete "
                      "packets from it);"
                      " allowed 1..%u",
                      (unsigned long)len, (unsigned long)len, side_name[from], c->packets[from],
                      MAX_PACKET);
            return -1;
        }
        if (s->in.len - off < 4 + (size_t)len)
            break;
        log_packet(c, from, p, 4 + (size_t)len);
        buf_append(&peer->out, p, 4 + (size_t)len);
        off += 4 + (size_t)len;
    }
    buf_consume(&s->in, off);
    return 0;
}

/* handle_read - read what is available from side FROM; -1 if closed */
static int
handle_read(struct conn *c, int from)
{
    struct side *s = &c->s[from];
    unsigned char tmp[READ_CHUNK];
    ssize_t n = read(s->fd, tmp, sizeof(tmp));
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        warnmsg("connection %d: read from %s: %s (treated as end of stream)", c->id,
                side_name[from], strerror(errno));
        log_comment(c, "read from %s failed: %s", side_name[from], strerror(errno));
        n = 0;
    }
    if (n == 0) {
        s->eof = 1;
        if (s->in.len > 0) {
            /* An incomplete packet: nothing is logged for it, but the bytes
             * are still passed on, so the peer sees what a direct link shows. */
            warnmsg("connection %d: %s closed in the middle of a packet (%zu bytes pending)", c->id,
                    side_name[from], s->in.len);
            log_comment(c, "%s closed in the middle of a packet (%zu bytes not recorded)",
                        side_name[from], s->in.len);
            buf_append(&c->s[1 - from].out, s->in.data, s->in.len);
            s->in.len = 0;
        }
        return 0;
    }
    buf_append(&s->in, tmp, (size_t)n);
    return extract_packets(c, from);
}

/* handle_write - flush pending output to side TO; -1 if closed */
static int
handle_write(struct conn *c, int to)
{
    struct side *s = &c->s[to];
    while (s->out.len > 0) {
        ssize_t n = write(s->fd, s->out.data, s->out.len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            warnmsg("connection %d: write to %s: %s", c->id, side_name[to], strerror(errno));
            log_comment(c, "write to %s failed: %s (%zu bytes not delivered)", side_name[to],
                        strerror(errno), s->out.len);
            conn_close(c, "write failed");
            return -1;
        }
        buf_consume(&s->out, (size_t)n);
    }
    return 0;
}

/* conn_progress - half-close and finish once both directions are done */
static void
conn_progress(struct conn *c)
{
    if (!c->live || c->connecting)
        return;
    for (int i = 0; i < 2; i++) {
        struct side *peer = &c->s[1 - i];
        /* side i said EOF and everything it sent reached the peer: pass the EOF on */
        if (c->s[i].eof && peer->out.len == 0 && !peer->shut) {
            (void)shutdown(peer->fd, SHUT_WR);
            peer->shut = 1;
        }
    }
    if (c->s[MTA].eof && c->s[MILTER].eof && c->s[MTA].out.len == 0 && c->s[MILTER].out.len == 0)
        conn_close(c, NULL);
}

/* ---------------------------------------------------------------- main */

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " --listen ADDR --upstream ADDR --outdir DIR [options]\n"
            "  --listen ADDR       where the MTA connects: HOST:PORT, [IPV6]:PORT or unix:PATH\n"
            "                      (port 0 = pick a free port; see --port-file)\n"
            "  --upstream ADDR     the real milter: HOST:PORT, [IPV6]:PORT or unix:PATH\n"
            "  --outdir DIR        write DIR/conn-N.packets (N = 1, 2, ... in accept order)\n"
            "  --connections N     accept N connections, exit when all are closed (default 0 = no "
            "limit)\n"
            "  --timeout SECONDS   overall time limit (default 600); exit status 2 when reached\n"
            "  --port-file FILE    write the listening port (decimal) to FILE once listening\n"
            "exit status: 0 ok, 1 error (bad packet framing, upstream unreachable, I/O), 2 time "
            "limit, 64 usage\n");
}

int
main(int argc, char **argv)
{
    const char *listen_s = NULL, *upstream_s = NULL, *outdir = NULL, *port_file = NULL;
    long max_conns = 0, timeout_s = 600;
    char err[512];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (v == NULL) {
            fprintf(stderr, PROG ": option %s needs a value (or is unknown)\n", a);
            usage(stderr);
            return 64;
        }
        char *end;
        if (strcmp(a, "--listen") == 0)
            listen_s = v;
        else if (strcmp(a, "--upstream") == 0)
            upstream_s = v;
        else if (strcmp(a, "--outdir") == 0)
            outdir = v;
        else if (strcmp(a, "--port-file") == 0)
            port_file = v;
        else if (strcmp(a, "--connections") == 0) {
            max_conns = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || max_conns < 0 || max_conns > 1000000) {
                fprintf(stderr, PROG ": bad --connections value \"%s\"\n", v);
                return 64;
            }
        } else if (strcmp(a, "--timeout") == 0) {
            timeout_s = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || timeout_s < 1 || timeout_s > 86400) {
                fprintf(stderr, PROG ": bad --timeout value \"%s\" (1..86400 seconds)\n", v);
                return 64;
            }
        } else {
            fprintf(stderr, PROG ": unknown option %s\n", a);
            usage(stderr);
            return 64;
        }
        i++;
    }
    if (listen_s == NULL || upstream_s == NULL || outdir == NULL) {
        fprintf(stderr, PROG ": --listen, --upstream and --outdir are required\n");
        usage(stderr);
        return 64;
    }

    struct address la, ua;
    if (parse_address(listen_s, &la, err, sizeof(err)) < 0)
        die("--listen: %s", err);
    if (parse_address(upstream_s, &ua, err, sizeof(err)) < 0)
        die("--upstream: %s", err);
    if (mkdir(outdir, 0755) < 0 && errno != EEXIST)
        die("mkdir %s: %s", outdir, strerror(errno));

    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(la.family, SOCK_STREAM, 0);
    if (lfd < 0)
        die("socket for %s: %s", la.text, strerror(errno));
    int one = 1;
    if (la.family != AF_UNIX)
        (void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (la.family == AF_INET6)
        (void)setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&la.ss, la.len) < 0)
        die("bind %s: %s", la.text, strerror(errno));
    if (listen(lfd, 64) < 0)
        die("listen %s: %s", la.text, strerror(errno));
    if (set_nonblock(lfd) < 0)
        die("fcntl on listening socket: %s", strerror(errno));

    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(lfd, (struct sockaddr *)&bound, &blen) < 0)
        die("getsockname %s: %s", la.text, strerror(errno));
    int lport = address_port(&bound);
    if (port_file != NULL) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        FILE *pf = fopen(tmp, "w");
        if (pf == NULL)
            die("open %s: %s", tmp, strerror(errno));
        fprintf(pf, "%d\n", lport);
        if (fclose(pf) != 0)
            die("write %s: %s", tmp, strerror(errno));
        if (rename(tmp, port_file) < 0)
            die("rename %s to %s: %s", tmp, port_file, strerror(errno));
    }
    fprintf(stderr, PROG ": listening on %s (port %d), upstream %s, writing %s/conn-N.packets\n",
            la.text, lport, ua.text, outdir);

    long long deadline = now_ms() + timeout_s * 1000LL;
    long accepted = 0;
    int timed_out = 0;
    struct pollfd *pfds = NULL;
    size_t pfcap = 0;

    for (;;) {
        int accepting = lfd >= 0;
        size_t live = 0;
        for (size_t i = 0; i < nconns; i++)
            live += conns[i]->live;
        if (!accepting && live == 0)
            break;
        long long now = now_ms();
        if (now >= deadline) {
            timed_out = 1;
            warnmsg("time limit of %ld s reached", timeout_s);
            for (size_t i = 0; i < nconns; i++)
                if (conns[i]->live)
                    conn_close(conns[i], "time limit reached");
            break;
        }

        /* Build the poll set: [0] listener, then two entries per connection. */
        size_t need = 1 + 2 * nconns;
        if (need > pfcap) {
            pfcap = need * 2;
            pfds = xrealloc(pfds, pfcap * sizeof(*pfds));
        }
        pfds[0].fd = accepting ? lfd : -1;
        pfds[0].events = POLLIN;
        pfds[0].revents = 0;
        long long wake = deadline;
        for (size_t i = 0; i < nconns; i++) {
            struct conn *c = conns[i];
            for (int k = 0; k < 2; k++) {
                struct pollfd *p = &pfds[1 + 2 * i + k];
                p->fd = -1;
                p->events = 0;
                p->revents = 0;
                if (!c->live)
                    continue;
                struct side *s = &c->s[k];
                p->fd = s->fd;
                if (k == MILTER && c->connecting) {
                    p->events = POLLOUT;
                    if (c->connect_deadline < wake)
                        wake = c->connect_deadline;
                    continue;
                }
                if (!s->eof && c->s[1 - k].out.len < MAX_PENDING)
                    p->events |= POLLIN;
                if (s->out.len > 0 && !(k == MILTER && c->connecting))
                    p->events |= POLLOUT;
                if (p->events == 0)
                    p->fd = -1;
            }
        }
        int tmo = (int)(wake - now);
        if (tmo < 0)
            tmo = 0;
        int rc = poll(pfds, need, tmo);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }

        if (accepting && (pfds[0].revents & POLLIN)) {
            struct sockaddr_storage peer;
            socklen_t plen = sizeof(peer);
            int fd = accept(lfd, (struct sockaddr *)&peer, &plen);
            if (fd < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                    errno != ECONNABORTED)
                    die("accept on %s: %s", la.text, strerror(errno));
            } else {
                struct conn *c = calloc(1, sizeof(*c));
                if (c == NULL)
                    die("out of memory");
                c->id = (int)++accepted;
                c->live = 1;
                c->s[MTA].fd = fd;
                c->s[MILTER].fd = -1;
                conns = xrealloc(conns, (nconns + 1) * sizeof(*conns));
                conns[nconns++] = c;
                snprintf(c->path, sizeof(c->path), "%s/conn-%d.packets", outdir, c->id);
                c->log = fopen(c->path, "w");
                if (c->log == NULL)
                    die("open %s: %s", c->path, strerror(errno));
                log_comment(c, "milter-capture connection %d", c->id);
                log_comment(c, "'>' = MTA to milter, '<' = milter to MTA; hex includes the 4-byte "
                               "length prefix");
                if (set_nonblock(fd) < 0)
                    die("fcntl on accepted socket: %s", strerror(errno));
                set_nodelay(fd, la.family);
                fprintf(stderr, PROG ": connection %d accepted\n", c->id);
                (void)start_upstream(c, &ua);
                if (max_conns > 0 && accepted >= max_conns) {
                    close(lfd);
                    lfd = -1;
                    if (la.family == AF_UNIX)
                        (void)unlink(((struct sockaddr_un *)&la.ss)->sun_path);
                }
            }
        }

        now = now_ms();
        for (size_t i = 0; i < nconns; i++) {
            struct conn *c = conns[i];
            if (!c->live)
                continue;
            struct pollfd *pm = &pfds[1 + 2 * i + MTA];
            struct pollfd *pu = &pfds[1 + 2 * i + MILTER];
            /* The poll entries were built before a new connection was added. */
            if (1 + 2 * i + MILTER >= need)
                continue;
            if (c->connecting) {
                if (pu->revents & (POLLOUT | POLLERR | POLLHUP)) {
                    int soerr = 0;
                    socklen_t sl = sizeof(soerr);
                    if (getsockopt(c->s[MILTER].fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                        soerr = errno;
                    if (soerr != 0) {
                        conn_fail(c, "connect to upstream %s: %s", ua.text, strerror(soerr));
                        continue;
                    }
                    c->connecting = 0;
                } else if (now >= c->connect_deadline) {
                    conn_fail(c, "connect to upstream %s: timed out after %d ms", ua.text,
                              CONNECT_TIMEOUT_MS);
                    continue;
                }
                pu->revents = 0; /* that POLLOUT was the connect completion */
            }
            for (int k = 0; k < 2 && c->live; k++) {
                struct pollfd *p = k == MTA ? pm : pu;
                if (p->revents & POLLOUT)
                    if (handle_write(c, k) < 0)
                        break;
                if (c->live && (p->revents & (POLLIN | POLLHUP | POLLERR)) && !c->s[k].eof)
                    if (handle_read(c, k) < 0)
                        break;
            }
            /* Try to flush what became pending in this round right away. */
            for (int k = 0; k < 2 && c->live && !c->connecting; k++)
                if (c->s[k].out.len > 0)
                    (void)handle_write(c, k);
            conn_progress(c);
        }
    }

    if (lfd >= 0) {
        close(lfd);
        if (la.family == AF_UNIX)
            (void)unlink(((struct sockaddr_un *)&la.ss)->sun_path);
    }
    fprintf(stderr, PROG ": done: %ld connection(s)%s%s\n", accepted,
            any_error ? ", with errors" : "", timed_out ? ", time limit reached" : "");
    if (timed_out)
        return 2;
    return any_error ? 1 : 0;
}
