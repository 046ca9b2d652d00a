/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow_verdict - what one child would have done, and what the chain would
 * SYNOPSIS
 *	#include "shadow_verdict.h"
 *
 *	void shadow_predict(ShadowVerdict *const *chain, guint n,
 *	                    const char *const *rcpts, guint n_rcpts,
 *	                    ShadowPrediction *out);
 * DESCRIPTION
 *	A ShadowVerdict is one child's result for one message: its final action,
 *	the stage it decided at, its reply, per-recipient refusals, quarantine
 *	and edits. shadow_predict() folds the verdicts of a chain, in chain
 *	order, into what the MTA would have done had the chain been enforced:
 *
 *	- Stages run in SMTP order; at one stage the first child in chain order
 *	  that rejects, tempfails or discards decides (later children were
 *	  never asked in an enforced chain).
 *	- Reject or tempfail at RCPT refuses that recipient only; with no
 *	  recipient left the message is tempfailed if every refusal was a
 *	  tempfail, rejected otherwise. Discard at RCPT is message-level.
 *	- Accept ends that child's part: it blocks nothing.
 *	- The content stages are serial: the first child in chain order that
 *	  rejects, tempfails or discards in them ends the message, and the
 *	  children after it do not count. Quarantine holds the message unless a
 *	  later child rejects it.
 *	- A child with no verdict (error, timeout, unavailable, overflow) makes
 *	  the prediction incomplete: it is named, and the rest is folded as if
 *	  it had continued; recipients it refused before it failed stay
 *	  refused, but its edits and quarantine (which an MTA applies only with
 *	  a final answer) do not count.
 *	- A discard at RCPT counts only if the child could have seen a
 *	  recipient, that is one not refused by a child before it.
 *	- Edits of every child that took part and did not refuse are the
 *	  chain's edits, in chain order.
 */
#ifndef SHADOW_VERDICT_H
#define SHADOW_VERDICT_H

/* GLib. */
#include <glib.h>

G_BEGIN_DECLS

/* ShadowStage - milter stages in SMTP order */
typedef enum {
    SHADOW_STAGE_NONE,
    SHADOW_STAGE_CONNECT,
    SHADOW_STAGE_HELO,
    SHADOW_STAGE_MAIL,
    SHADOW_STAGE_RCPT,
    SHADOW_STAGE_DATA,
    SHADOW_STAGE_UNKNOWN,
    SHADOW_STAGE_HEADER,
    SHADOW_STAGE_EOH,
    SHADOW_STAGE_BODY,
    SHADOW_STAGE_EOM,
    SHADOW_STAGE_COUNT,
} ShadowStage;

/* ShadowAction - one child's final word on a message */
typedef enum {
    SHADOW_ACTION_CONTINUE,    /* continued to the end: would pass the message */
    SHADOW_ACTION_ACCEPT,      /* accepted early: no more events */
    SHADOW_ACTION_REJECT,      /* 5xx */
    SHADOW_ACTION_TEMPFAIL,    /* 4xx */
    SHADOW_ACTION_DISCARD,     /* accept, then drop silently */
    SHADOW_ACTION_ERROR,       /* broke the protocol; no verdict */
    SHADOW_ACTION_TIMEOUT,     /* did not answer in time; no verdict */
    SHADOW_ACTION_UNAVAILABLE, /* could not be reached or negotiated with */
    SHADOW_ACTION_OVERFLOW,    /* fell too far behind; its verdict was dropped */
    SHADOW_ACTION_COUNT,
} ShadowAction;

/* ShadowOutcome - what the enforced chain would have done to the message */
typedef enum {
    SHADOW_OUTCOME_DELIVERED, /* to every recipient, or to those not refused */
    SHADOW_OUTCOME_REJECTED,
    SHADOW_OUTCOME_TEMPFAILED,
    SHADOW_OUTCOME_DISCARDED,
    SHADOW_OUTCOME_QUARANTINED, /* accepted but held */
    SHADOW_OUTCOME_COUNT,
} ShadowOutcome;

/* ShadowRcptResult - a recipient a child refused at RCPT */
typedef struct {
    char *rcpt;          /* as sent, e.g. "<bob@example.net>" */
    ShadowAction action; /* REJECT or TEMPFAIL */
    char *reply;         /* the SMTP reply the MTA would have sent */
} ShadowRcptResult;

/* ShadowEdit - one modification a child asked for at end of message */
typedef struct {
    guint8 code;   /* SMFIR_ADDHEADER, SMFIR_INSHEADER, SMFIR_CHGHEADER, SMFIR_REPLBODY,
                     SMFIR_CHGFROM, SMFIR_ADDRCPT, SMFIR_ADDRCPT_PAR, SMFIR_DELRCPT */
    guint32 index; /* INSHEADER, CHGHEADER */
    char *name;    /* header name, or the address for envelope edits */
    char *value;   /* header value, ESMTP args, or for REPLBODY the new body size */
} ShadowEdit;

/* ShadowVerdict - one child's result for one message */
typedef struct {
    char *milter; /* child name */
    ShadowAction action;
    ShadowStage stage;   /* where it decided (for CONTINUE: the last stage it saw) */
    gboolean connection; /* decided at CONNECT/HELO: applies to the whole connection */
    char *reply;         /* REJECT/TEMPFAIL: the SMTP reply; NULL: the MTA's default */
    char *reason;        /* ERROR, TIMEOUT, UNAVAILABLE, OVERFLOW: why */
    char *quarantine;    /* quarantine reason, or NULL */
    GPtrArray *rcpts;    /* ShadowRcptResult *: recipients it refused */
    GPtrArray *edits;    /* ShadowEdit *, in the order sent */
    guint64 latency_us[SHADOW_STAGE_COUNT]; /* time to answer, summed per stage */
} ShadowVerdict;

/* ShadowPrediction - the enforced chain's outcome for one message */
typedef struct {
    ShadowOutcome outcome;
    const char *decided_by; /* child that decided a refusal or hold, or NULL */
    ShadowStage stage;      /* where it decided */
    const char *reply;      /* its reply, or NULL for the MTA's default */
    const char *quarantine; /* hold reason when QUARANTINED */
    GPtrArray *refused;     /* const ShadowRcptResult * (owned by the verdicts) */
    GPtrArray *edits;       /* const ShadowEdit * of the chain, in order (owned by verdicts) */
    GPtrArray *edits_by;    /* const char * child name per edit */
    GPtrArray *unknown;     /* const char * names of children with no verdict */
    guint rcpts_left;       /* recipients not refused */
} ShadowPrediction;

ShadowVerdict *shadow_verdict_new(const char *milter);
void shadow_verdict_free(ShadowVerdict *v);
void shadow_verdict_refuse_rcpt(ShadowVerdict *v, const char *rcpt, ShadowAction action,
                                const char *reply);
void shadow_verdict_add_edit(ShadowVerdict *v, guint8 code, guint32 index, const char *name,
                             const char *value);
gboolean shadow_action_is_refusal(ShadowAction action);
gboolean shadow_action_is_failure(ShadowAction action);

void shadow_predict(ShadowVerdict *const *chain, guint n, const char *const *rcpts, guint n_rcpts,
                    ShadowPrediction *out);
void shadow_prediction_clear(ShadowPrediction *p);

const char *shadow_stage_name(ShadowStage stage);
const char *shadow_action_name(ShadowAction action);
const char *shadow_outcome_name(ShadowOutcome outcome);
gboolean shadow_stage_is_content(ShadowStage stage);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ShadowVerdict, shadow_verdict_free)

G_END_DECLS

#endif /* SHADOW_VERDICT_H */
