/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	conn - buffered non-blocking socket on the main loop
 * DESCRIPTION
 *	See conn.h. Every socket gets TCP_NODELAY where it is TCP: milter
 *	traffic is small request/reply packets, and Nagle plus delayed ACK
 *	costs tens of milliseconds per exchange (testbed notes §11).
 *
 *	Host names in inet addresses are resolved with getaddrinfo() when the
 *	connection is made; loopback literals, the usual case, resolve without
 *	any lookup.
 *
 *	Writes are queued and sent once per main loop iteration, from the
 *	prepare step of a flusher source that runs before the loop polls: a
 *	macro packet and its command, or the several packets one event makes
 *	for one peer, leave in one send(2), and nothing waits longer than the
 *	rest of the current iteration.
 *
 *	Every socket is watched by one epoll(7) set behind one GSource (the
 *	poller), not by a GSource each: GLib polls all its sources' fds with
 *	poll(2) and walks every source twice per iteration, and adding,
 *	changing or removing a source's fd signals the context's wakeup
 *	eventfd (a write, then an extra iteration to read it). With the
 *	poller, an iteration costs what is ready, and a watch change is one
 *	epoll_ctl(2).
 */

/* Build configuration. */
#include "config.h"

/* System library. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* GLib. */
#include <gio/gio.h>
#include <glib-unix.h>

/* Application-specific. */
#include "conn.h"
#include "deadline.h"

/* Bytes read per read(2). */
#define CONN_READ_SIZE 65536

/* Listen backlog: the MTA opens one connection per SMTP session. */
#define CONN_LISTEN_BACKLOG 512

/* Output buffer kept for reuse once empty; a larger one is freed. */
#define CONN_OUT_KEEP 16384

/* Ready sockets taken per poller dispatch; more wait for the next iteration. */
#define CONN_EPOLL_BATCH 256

struct _ShadowConn {
    guint refs;
    int fd;
    char *peer;
    ShadowConnFuncs funcs;
    gpointer user;
    ShadowDeadline timer; /* connect timeout */
    GByteArray *out;      /* queued output */
    gsize out_off;        /* bytes of out already written */
    gboolean connecting;
    gboolean closed;
    int deferred_errno;        /* a failure outside a dispatch, reported from the loop */
    const char *deferred_what; /* what failed so: "write", "epoll_ctl" */
    gboolean deferred;         /* inside shadow_conn_write: report failures later */
    GSource *report;           /* the idle source that reports it */
    GIOCondition watching;     /* what the epoll set watches for; 0: not in it */
    gboolean tcp;              /* TCP: quick ACKs after reads */
    gboolean dirty;            /* on the flusher's list */
};

/* Connections with output queued in this iteration, flushed before the loop polls. */
static GPtrArray *dirty_conns;
static GSource *flusher;

/* The poller: one epoll set for every socket, on one source. */
static int poll_fd = -1;
static GSource *poller;

static void conn_watch(ShadowConn *c, GIOCondition cond);

/* shadow_conn_ref - take a reference */
ShadowConn *
shadow_conn_ref(ShadowConn *c)
{
    c->refs++;
    return c;
}

/* shadow_conn_unref - drop a reference; the last one closes and frees */
void
shadow_conn_unref(ShadowConn *c)
{
    if (c == NULL || --c->refs > 0)
        return;
    shadow_conn_close(c);
    g_byte_array_unref(c->out);
    g_free(c->peer);
    g_free(c);
}

/* shadow_conn_peer - the peer's name, for messages */
const char *
shadow_conn_peer(const ShadowConn *c)
{
    return c->peer;
}

/* shadow_conn_pending - bytes queued but not yet written */
gsize
shadow_conn_pending(const ShadowConn *c)
{
    return c->out->len - c->out_off;
}

/* socket_is_tcp - a TCP socket (not unix) */
static gboolean
socket_is_tcp(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    return getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
           (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

/* shadow_socket_nodelay - TCP_NODELAY on a TCP socket; harmless elsewhere */
void
shadow_socket_nodelay(int fd)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/*
 * quickack - acknowledge at once what we read
 *
 * A libmilter child writes each reply packet separately and does not set
 * TCP_NODELAY, so its second packet (the final answer after an edit) waits
 * for our ACK of the first; a delayed ACK costs 40 ms there. Linux drops
 * out of quick-ACK mode by itself, so this is renewed after every read.
 */
static void
quickack(int fd)
{
#ifdef TCP_QUICKACK
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
#else
    (void)fd;
#endif
}

/* emit - call the event callback holding a reference */
static void
emit(ShadowConn *c, ShadowConnEvent ev, const GError *error)
{
    if (c->funcs.event)
        c->funcs.event(c, ev, error, c->user);
}

/* fail - close and report an I/O error */
static void
fail(ShadowConn *c, const char *what, int err)
{
    g_autoptr(GError) error = g_error_new(G_IO_ERROR, g_io_error_from_errno(err), "%s: %s: %s",
                                          c->peer, what, g_strerror(err));

    shadow_conn_close(c);
    emit(c, SHADOW_CONN_FAILED, error);
}

/* epoll_cond - epoll events as GLib conditions */
static GIOCondition
epoll_cond(guint32 ev)
{
    return (ev & EPOLLIN ? G_IO_IN : 0) | (ev & EPOLLOUT ? G_IO_OUT : 0) |
           (ev & EPOLLERR ? G_IO_ERR : 0) | (ev & EPOLLHUP ? G_IO_HUP : 0);
}

/*
 * poller_dispatch - the epoll set is readable: run the ready sockets
 *
 * Every socket in the set is alive (closing takes it out), so the batch is
 * referenced before any callback runs: a callback may close or drop any
 * other connection of the batch, which then sees its closed flag.
 */
static gboolean
poller_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    struct epoll_event ev[CONN_EPOLL_BATCH];
    int n;

    (void)source;
    (void)callback;
    (void)data;
    do
        n = epoll_wait(poll_fd, ev, CONN_EPOLL_BATCH, 0);
    while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; i++)
        shadow_conn_ref(ev[i].data.ptr);
    for (int i = 0; i < n; i++) {
        ShadowConn *c = ev[i].data.ptr;

        conn_watch(c, epoll_cond(ev[i].events));
        shadow_conn_unref(c);
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs poller_funcs = { NULL, NULL, poller_dispatch, NULL, NULL, NULL };

/* poller_start - the epoll set and its source, once; 0 or an errno */
static int
poller_start(void)
{
    if (poller)
        return 0;
    poll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (poll_fd < 0)
        return errno; /* out of fds or memory: this connection fails, the next tries again */
    poller = g_source_new(&poller_funcs, sizeof(GSource));
    g_source_set_name(poller, "shadowd sockets");
    g_source_add_unix_fd(poller, poll_fd, G_IO_IN);
    g_source_set_can_recurse(poller, TRUE);
    g_source_attach(poller, NULL);
    return 0;
}

/* epoll_events - GLib conditions as epoll events */
static guint32
epoll_events(GIOCondition want)
{
    return (want & G_IO_IN ? EPOLLIN : 0) | (want & G_IO_OUT ? EPOLLOUT : 0);
}

static gboolean flush(ShadowConn *c);
static void update_watch(ShadowConn *c);
static void defer_fail(ShadowConn *c, const char *what, int err);

/* flusher_prepare - before the loop polls: send what this iteration queued */
static gboolean
flusher_prepare(GSource *source, gint *timeout)
{
    (void)source;
    *timeout = -1;
    /* A flush may fail and defer its report; it never calls back into callers. */
    for (guint i = 0; i < dirty_conns->len; i++) {
        ShadowConn *c = g_ptr_array_index(dirty_conns, i);
        c->dirty = FALSE;
        if (!c->closed && !c->connecting) {
            c->deferred = TRUE;
            if (flush(c))
                update_watch(c);
            c->deferred = FALSE;
        }
    }
    g_ptr_array_set_size(dirty_conns, 0); /* drops the references */
    return FALSE;
}

/* flusher_dispatch - never ready */
static gboolean
flusher_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    (void)source;
    (void)callback;
    (void)data;
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs flusher_funcs = { flusher_prepare, NULL, flusher_dispatch, NULL, NULL, NULL };

/* mark_dirty - flush this connection before the loop next polls */
static void
mark_dirty(ShadowConn *c)
{
    if (c->dirty)
        return;
    if (flusher == NULL) {
        dirty_conns = g_ptr_array_new_with_free_func((GDestroyNotify)shadow_conn_unref);
        flusher = g_source_new(&flusher_funcs, sizeof(GSource));
        g_source_set_priority(flusher, G_PRIORITY_HIGH);
        g_source_attach(flusher, NULL);
    }
    c->dirty = TRUE;
    g_ptr_array_add(dirty_conns, shadow_conn_ref(c));
}

/* update_watch - watch for output only while some is queued */
static void
update_watch(ShadowConn *c)
{
    GIOCondition want = G_IO_IN;

    if (c->closed || c->watching == 0)
        return;
    if (c->connecting || shadow_conn_pending(c) > 0)
        want |= G_IO_OUT;
    if (want == c->watching)
        return;
    c->watching = want;
    struct epoll_event ev = { .events = epoll_events(want), .data.ptr = c };
    if (epoll_ctl(poll_fd, EPOLL_CTL_MOD, c->fd, &ev) < 0 && c->deferred_errno == 0)
        defer_fail(c, "epoll_ctl", errno);
}

/* report_deferred - from the loop: the deferred failure */
static gboolean
report_deferred(gpointer data)
{
    ShadowConn *c = shadow_conn_ref(data);

    g_clear_pointer(&c->report, g_source_unref);
    if (!c->closed)
        fail(c, c->deferred_what, c->deferred_errno);
    shadow_conn_unref(c);
    return G_SOURCE_REMOVE;
}

/* defer_fail - remember a failure of what and report it from the main loop */
static void
defer_fail(ShadowConn *c, const char *what, int err)
{
    c->deferred_errno = err;
    c->deferred_what = what;
    if (c->report == NULL) {
        c->report = g_idle_source_new();
        /* Not idle priority: that never runs while sockets are busy, and the peer would wait. */
        g_source_set_priority(c->report, G_PRIORITY_DEFAULT);
        g_source_set_callback(c->report, report_deferred, c, NULL);
        g_source_attach(c->report, NULL);
    }
}

/* flush - write what the socket takes now */
static gboolean
flush(ShadowConn *c)
{
    while (shadow_conn_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out->data + c->out_off, shadow_conn_pending(c), MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            if (c->deferred)
                defer_fail(c, "write", errno);
            else
                fail(c, "write", errno);
            return FALSE;
        }
        c->out_off += (gsize)n;
    }
    if (shadow_conn_pending(c) == 0) {
        if (c->out->len > CONN_OUT_KEEP) {
            /* A body chunk grew it: give the memory back, a lagging child may idle for long. */
            g_byte_array_unref(c->out);
            c->out = g_byte_array_new();
        } else {
            g_byte_array_set_size(c->out, 0);
        }
        c->out_off = 0;
    }
    return TRUE;
}

/* conn_watch - react to readiness */
static void
conn_watch(ShadowConn *c, GIOCondition cond)
{
    guint8 buf[CONN_READ_SIZE];

    if (c->closed)
        return;
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (!(cond & (G_IO_OUT | G_IO_ERR | G_IO_HUP)))
            return;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0) {
            fail(c, "connect", err);
            return;
        }
        c->connecting = FALSE;
        shadow_deadline_disarm(&c->timer);
        update_watch(c);
        emit(c, SHADOW_CONN_CONNECTED, NULL);
        if (c->closed)
            return;
    }
    if (cond & G_IO_OUT) {
        if (!flush(c))
            return;
        update_watch(c);
    }
    if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
        ssize_t n = read(c->fd, buf, sizeof(buf));

        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            fail(c, "read", errno);
            return;
        }
        if (n == 0) {
            shadow_conn_close(c);
            emit(c, SHADOW_CONN_CLOSED, NULL);
            return;
        }
        if (c->tcp)
            quickack(c->fd);
        if (c->funcs.data)
            c->funcs.data(c, buf, (gsize)n, c->user);
    }
}

/* attach - watch the fd in the poller's epoll set; 0 or an errno */
static int
attach(ShadowConn *c)
{
    GIOCondition want = G_IO_IN | (c->connecting ? G_IO_OUT : 0);
    struct epoll_event ev = { .events = epoll_events(want), .data.ptr = c };
    int err = poller_start();

    if (err != 0)
        return err;
    if (epoll_ctl(poll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        return errno;
    c->watching = want;
    return 0;
}

/* conn_alloc - a connection on fd (taken), not yet watched; TCP gets TCP_NODELAY */
static ShadowConn *
conn_alloc(int fd, const char *peer, gboolean tcp, const ShadowConnFuncs *funcs, gpointer user)
{
    ShadowConn *c = g_new0(ShadowConn, 1);

    c->refs = 1;
    c->fd = fd;
    c->peer = g_strdup(peer);
    c->funcs = *funcs;
    c->user = user;
    c->out = g_byte_array_new();
    c->tcp = tcp;
    if (tcp)
        shadow_socket_nodelay(fd);
    return c;
}

/* shadow_conn_new - wrap a connected socket (takes the fd) */
ShadowConn *
shadow_conn_new(int fd, const char *peer, const ShadowConnFuncs *funcs, gpointer user)
{
    ShadowConn *c = conn_alloc(fd, peer, socket_is_tcp(fd), funcs, user);

    if (!(fcntl(fd, F_GETFL) & O_NONBLOCK)) /* accept4(SOCK_NONBLOCK) made it so already */
        g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    int err = attach(c);
    if (err != 0)
        defer_fail(c, "epoll_ctl", err); /* FAILED from the loop, as a write error would be */
    return c;
}

/* connect_timeout - the connect took too long */
static void
connect_timeout(ShadowDeadline *d, gpointer data)
{
    ShadowConn *c = shadow_conn_ref(data);

    (void)d;
    if (c->connecting)
        fail(c, "connect", ETIMEDOUT);
    shadow_conn_unref(c);
}

/* resolve - socket address for an inet/inet6/unix ShadowAddress */
static gboolean
resolve(const ShadowAddress *a, struct sockaddr_storage *ss, socklen_t *len, GError **error)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    int rc;

    memset(ss, 0, sizeof(*ss));
    if (a->kind == SHADOW_ADDRESS_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;

        if (strlen(a->path) >= sizeof(un->sun_path)) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s: path too long",
                        a->spec);
            return FALSE;
        }
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, a->path);
        *len = sizeof(*un);
        return TRUE;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = a->kind == SHADOW_ADDRESS_INET6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    g_snprintf(port, sizeof(port), "%u", a->port);
    rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s: cannot resolve %s: %s", a->spec,
                    a->host, gai_strerror(rc));
        return FALSE;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return TRUE;
}

/* shadow_conn_connect - start a non-blocking connect; CONNECTED or FAILED follows */
ShadowConn *
shadow_conn_connect(const ShadowAddress *address, guint timeout_ms, const ShadowConnFuncs *funcs,
                    gpointer user, GError **error)
{
    struct sockaddr_storage ss;
    socklen_t len;
    ShadowConn *c;
    int fd;

    if (!resolve(address, &ss, &len, error))
        return NULL;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;

        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "%s: socket: %s", address->spec,
                    g_strerror(e));
        return NULL;
    }
    c = conn_alloc(fd, address->spec, address->kind != SHADOW_ADDRESS_UNIX, funcs, user);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        if (errno != EINPROGRESS) {
            int e = errno;

            g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "%s: connect: %s",
                        address->spec, g_strerror(e));
            c->closed = TRUE;
            close(fd);
            c->fd = -1;
            shadow_conn_unref(c);
            return NULL;
        }
        shadow_deadline_init(&c->timer, connect_timeout, c);
        shadow_deadline_arm(&c->timer, timeout_ms);
    }
    /* Connected at once (unix sockets) or not: CONNECTED comes from the loop, not from here. */
    c->connecting = TRUE;
    int err = attach(c);
    if (err != 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "%s: epoll_ctl: %s",
                    address->spec, g_strerror(err));
        c->connecting = FALSE;
        shadow_conn_close(c);
        shadow_conn_unref(c);
        return NULL;
    }
    return c;
}

/* shadow_conn_write - queue bytes and try to send them now */
void
shadow_conn_write(ShadowConn *c, const guint8 *data, gsize len)
{
    if (c->closed || c->deferred_errno || len == 0)
        return;
    g_byte_array_append(c->out, data, (guint)len);
    if (c->connecting)
        return;
    /* Sent before the loop next polls; a failure is reported from the loop. */
    mark_dirty(c);
}

/* shadow_conn_close - stop watching and close the socket; no more callbacks */
void
shadow_conn_close(ShadowConn *c)
{
    if (c->closed)
        return;
    /* What this iteration queued (a last SMFIC_QUIT, say) still goes out, if the socket takes it. */
    while (!c->connecting && c->deferred_errno == 0 && c->fd >= 0 && shadow_conn_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out->data + c->out_off, shadow_conn_pending(c),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        c->out_off += (gsize)n;
    }
    c->closed = TRUE;
    if (c->report) {
        g_source_destroy(c->report);
        g_clear_pointer(&c->report, g_source_unref);
    }
    shadow_deadline_disarm(&c->timer);
    if (c->watching != 0) {
        (void)epoll_ctl(poll_fd, EPOLL_CTL_DEL, c->fd, NULL);
        c->watching = 0;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* shadow_socket_listen - bind and listen; unix sockets get mode and replace a stale file */
gboolean
shadow_socket_listen(const ShadowAddress *address, guint mode, int *out_fd, GError **error)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, one = 1;

    if (!resolve(address, &ss, &len, error))
        return FALSE;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        goto fail;
    if (address->kind == SHADOW_ADDRESS_UNIX)
        (void)unlink(address->path);
    else
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, CONN_LISTEN_BACKLOG) < 0)
        goto fail;
    if (address->kind == SHADOW_ADDRESS_UNIX && chmod(address->path, mode) < 0)
        goto fail;
    *out_fd = fd;
    return TRUE;

fail : {
    int e = errno;

    if (fd >= 0)
        close(fd);
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "listen %s: %s", address->spec,
                g_strerror(e));
    return FALSE;
}
}
