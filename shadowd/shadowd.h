/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadowd - the daemon's internal types: server, session, child, message
 * DESCRIPTION
 *	One ShadowServer listens. Each MTA connection is a ShadowSession; for
 *	it shadowd opens one ShadowChild per enabled [milter] and speaks the
 *	MTA side to it. Each message of the session is a ShadowMsg, shared by
 *	the session and the children until every child has finished its part
 *	and the records are written.
 *
 *	A child works through a queue of ShadowJobs in order: a packet to send
 *	(with or without a reply to wait for), a content gate (chained mode:
 *	the message's content, released when the children before it are
 *	done), or quit. The MTA never waits on a child in reply = immediate;
 *	in reply = wait it waits on a ShadowWait, which counts the children
 *	that still owe an answer and has a deadline of its own.
 */
#ifndef SHADOWD_H
#define SHADOWD_H

/* GLib. */
#include <glib.h>

/* Shadow libraries. */
#include "milter_decode.h"
#include "milter_encode.h"
#include "shadow_config.h"
#include "shadow_message.h"
#include "shadow_verdict.h"

/* Application-specific. */
#include "conn.h"
#include "deadline.h"

/*
 * Limits against the MTA's timeouts (milter-protocol notes §6). Sendmail's
 * per-read timeout is 10 s and its end-of-message total 5 min; Postfix's
 * command timeout 30 s and content timeout 300 s. shadowd answers well
 * inside the smaller of each.
 */
#define SHADOW_MTA_COMMAND_DEADLINE_MS 8000   /* any answer but end of message */
#define SHADOW_MTA_EOM_DEADLINE_MS     240000 /* end of message, wait mode */
#define SHADOW_PROGRESS_INTERVAL_MS    4000   /* SMFIR_PROGRESS while waiting at EOM */
/* Packets from the MTA may be larger than libmilter's: Postfix does not split headers. */
#define SHADOW_MTA_MAX_DATA (1024 * 1024)

typedef struct _ShadowServer ShadowServer;
typedef struct _ShadowSession ShadowSession;
typedef struct _ShadowChild ShadowChild;
typedef struct _ShadowMsg ShadowMsg;
typedef struct _ShadowWait ShadowWait;
typedef struct _ShadowEventLog ShadowEventLog;

/* ShadowWait - an MTA command waiting for children (reply = wait) */
struct _ShadowWait {
    guint refs;
    ShadowSession *session;  /* NULL once answered or the session is gone */
    guint pending;           /* children that still owe an answer */
    guint8 code;             /* the MTA command */
    ShadowDeadline deadline; /* the MTA's answer is due */
    ShadowDeadline progress; /* the next SMFIR_PROGRESS, end of message only */
};

/* ShadowJobKind - what a child's queue entry does */
typedef enum {
    JOB_PACKET,  /* send bytes; maybe wait for a reply */
    JOB_CONTENT, /* chained mode: the message content, once released */
    JOB_QUIT,    /* send SMFIC_QUIT and close */
} ShadowJobKind;

/* ShadowJob - one entry of a child's queue */
typedef struct {
    ShadowJobKind kind;
    guint8 code;          /* SMFIC_* of the packet (JOB_PACKET) */
    GBytes *bytes;        /* the packet(s) to send */
    ShadowMsg *msg;       /* the message it belongs to, or NULL (connection level) */
    ShadowWait *wait;     /* MTA waiting on this, or NULL */
    char *arg;            /* RCPT: the recipient, for per-recipient results */
    ShadowMessage *model; /* JOB_CONTENT: the message to show, once released */
    int phase;            /* JOB_CONTENT: 0 headers, 1 eoh, 2 body, 3 eom, 4 done */
    guint next_header;    /* JOB_CONTENT: next header to send */
    gsize next_body;      /* JOB_CONTENT: next body offset */
    gboolean held;        /* queued while the chain held the child: not its own lag */
} ShadowJob;

/* ShadowChildState - a child connection's life */
typedef enum {
    CHILD_CONNECTING,
    CHILD_NEGOTIATING,
    CHILD_READY,
    CHILD_CLOSING, /* SMFIC_QUIT sent, waiting for the child to close */
    CHILD_DEAD,    /* failed or closed: gets nothing more on this MTA connection */
} ShadowChildState;

/* ShadowChild - one child milter, for one MTA session */
struct _ShadowChild {
    ShadowSession *session;
    const ShadowMilterConfig *cfg; /* owned by the session's config reference */
    guint index;                   /* chain position */
    ShadowChildState state;
    ShadowConn *conn;
    MilterDecoder *decoder;
    guint32 version, actions, protocol; /* offered, then negotiated */
    guint32 offered_protocol;
    guint latency_negotiate_ms;
    GPtrArray *symlists;  /* MilterSymlist copies (macros owned) */
    GQueue jobs;          /* ShadowJob * waiting to be sent */
    ShadowJob *current;   /* sent, reply awaited */
    guint8 current_code;  /* the command awaiting its reply */
    gint64 sent_at;       /* monotonic us when current was sent */
    ShadowDeadline timer; /* reply timeout */
    gsize backlog;        /* bytes queued in jobs */
    gsize held;           /* of which queued while the chain held it up */

    /* Connection-level result: accept/refusal at CONNECT or HELO. */
    ShadowAction conn_action;
    ShadowStage conn_stage;
    char *conn_reply;
    gboolean done_conn;

    /* Death: why, for the verdicts of the messages it leaves. */
    ShadowAction dead_action;
    char *dead_reason;

    /* The message whose jobs the child is working through. */
    ShadowMsg *msg;
    gboolean done_msg;         /* its part in msg is over (verdict given) */
    gboolean skip_body;        /* SMFIR_SKIP received for this message */
    ShadowSpool *replbody;     /* SMFIR_REPLBODY chunks of this message, spooled */
    gboolean replbody_failed;  /* spooling them failed: the body stays as it was */
    ShadowEdit *replbody_edit; /* its entry in the verdict's edits */

    /* Chained content: the message with this child's edits so far. */
    ShadowMessage *edited;
};

/* ShadowMsg - one message of a session */
struct _ShadowMsg {
    guint refs;
    ShadowSession *session; /* NULL after the session ended */
    guint seq;              /* 1, 2, ... within the session */
    char *id;               /* session id "." seq */
    gint64 started;         /* real time, us */

    /* Envelope as the MTA gave it. */
    char *helo; /* the HELO in force at MAIL FROM */
    char *from;
    GPtrArray *from_args;
    GPtrArray *rcpts;
    char *queue_id;
    char *auth;
    char *message_id;
    gsize size;
    gsize header_bytes;

    GPtrArray *children;      /* ShadowChild *: the chain at MAIL FROM (owned by the session) */
    ShadowVerdict **verdicts; /* per child, chain order */
    gboolean *finished;       /* per child: its part is over */
    guint unfinished;
    guint n_children;
    gboolean mta_ended; /* EOB or abort seen from the MTA */
    gboolean aborted;   /* ended without EOB */
    gboolean finalized;

    /* Chained content: the original, then each child's edited copy. */
    ShadowMessage *content;    /* as the MTA sent it (chained mode) */
    ShadowMessage *chain;      /* current copy handed down the chain */
    guint chain_pos;           /* child whose turn it is */
    gboolean content_lost;     /* spool failed: content stages have no verdicts */
    GBytes *content_macros[4]; /* last D for L, N, B, E */
    ShadowWait *eom_wait;      /* reply = wait: the MTA waits for the whole chain */
};

/* ShadowSession - one MTA connection */
struct _ShadowSession {
    ShadowServer *server;
    ShadowConfig *config; /* reference-held copy pointer (server owns) */
    char *id;
    ShadowConn *mta;
    MilterDecoder *decoder;
    gboolean negotiated;
    gboolean mta_gone;
    guint32 mta_version, mta_actions, mta_protocol; /* the MTA's offer */
    guint32 up_protocol;                            /* what we asked the MTA for */
    gboolean leadspc;                               /* HDR_LEADSPC agreed upstream */
    ShadowDeadline negotiate_deadline; /* children not negotiated by then are given up */

    GPtrArray *children; /* ShadowChild * in chain order */
    GPtrArray *retired;  /* children of an earlier connection (SMFIC_QUIT_NC) */
    gboolean freeing;    /* free is scheduled */
    gboolean overloaded; /* over max_connections: no children */
    ShadowMsg *msg;      /* message in progress on the MTA side, or NULL */
    GList *inflight;     /* ShadowMsg * not yet finalized (the session's references) */
    guint msg_seq;
    guint msgs_in_flight;

    /* Connection facts for records. */
    char *client_addr;
    char *client_name;
    char *client_port;
    char *helo;
    GPtrArray *macros; /* last macros, name/value pairs (owned strings) */
    guint messages;
    guint errors;
    gint64 opened;
};

/* ShadowServer - listener, config, log, sessions */
struct _ShadowServer {
    ShadowConfig *config;   /* for new sessions */
    GPtrArray *old_configs; /* replaced by SIGHUP, still used by sessions */
    ShadowEventLog *log;
    int listen_fd;
    GSource *listen_source;         /* NULL while accepting pauses (out of fds) or stopped */
    ShadowDeadline accept_pause;    /* when accepting resumes */
    GHashTable *sessions;           /* ShadowSession * set */
    ShadowSpoolBudget spool_budget; /* memory of all sessions' spools: spool_memory_total */
    guint64 next_session;
    gboolean stopping;
    gboolean stopping_timer;
    GMainLoop *loop;
};

/* session.c */
ShadowSession *shadow_session_new(ShadowServer *server, int fd, const char *peer);
void shadow_session_free(ShadowSession *s);
void shadow_session_child_ready(ShadowSession *s, ShadowChild *c);
void shadow_session_child_finished(ShadowSession *s, ShadowChild *c, ShadowMsg *msg);
void shadow_session_child_content_done(ShadowSession *s, ShadowChild *c, ShadowMsg *msg,
                                       ShadowMessage *result);
void shadow_session_child_dead(ShadowSession *s, ShadowChild *c);
void shadow_session_maybe_free(ShadowSession *s);
ShadowVerdict *shadow_session_verdict(ShadowMsg *msg, ShadowChild *c);

/* child.c */
ShadowChild *shadow_child_new(ShadowSession *s, const ShadowMilterConfig *cfg, guint index);
void shadow_child_free(ShadowChild *c);
void shadow_child_start(ShadowChild *c, guint32 version, guint32 actions, guint32 protocol);
void shadow_child_enqueue(ShadowChild *c, ShadowJobKind kind, guint8 code, GBytes *bytes,
                          ShadowMsg *msg, ShadowWait *wait, const char *arg);
void shadow_child_release_content(ShadowChild *c, ShadowMsg *msg, ShadowMessage *model);
void shadow_child_kill(ShadowChild *c, ShadowAction why, const char *reason);
gboolean shadow_child_wants(const ShadowChild *c, guint8 code);

/* msg / wait helpers (session.c) */
ShadowMsg *shadow_msg_ref(ShadowMsg *m);
void shadow_msg_unref(ShadowMsg *m);
ShadowWait *shadow_wait_ref(ShadowWait *w);
void shadow_wait_unref(ShadowWait *w);
void shadow_wait_done(ShadowWait *w);

/* evlog.c */
ShadowEventLog *shadow_event_log_open(const char *path, GError **error);
gboolean shadow_event_log_reopen(ShadowEventLog *log, GError **error);
void shadow_event_log_close(ShadowEventLog *log);
void shadow_event_log_connection(ShadowEventLog *log, ShadowSession *s, gboolean open);
void shadow_event_log_message(ShadowEventLog *log, ShadowSession *s, ShadowMsg *msg,
                              const ShadowPrediction *p);

/* server.c */
ShadowServer *shadow_server_new(ShadowConfig *config, ShadowEventLog *log, GError **error);
void shadow_server_free(ShadowServer *server);
gboolean shadow_server_session_done(gpointer session);
void shadow_server_stop(ShadowServer *server);
void shadow_server_reload(ShadowServer *server, ShadowConfig *config);

#endif /* SHADOWD_H */
