/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow_verdict - what one child would have done, and what the chain would
 * DESCRIPTION
 *	See shadow_verdict.h for the rules shadow_predict() applies. They are
 *	Postfix's and Sendmail's (milter-protocol notes, sections 5.3 and 7):
 *	both ask milters one after another and stop at the first answer that
 *	is not continue, and both run the content through the milters in
 *	order, each seeing the edits of those before it.
 */

/* System library. */
#include <string.h>

/* Shadow libraries. */
#include "milter_proto.h"
#include "shadow_verdict.h"

static const char *const stage_names[SHADOW_STAGE_COUNT] = {
    "none", "connect", "helo", "mail", "rcpt", "data", "unknown", "header", "eoh", "body", "eom",
};

static const char *const action_names[SHADOW_ACTION_COUNT] = {
    "continue", "accept",  "reject",      "tempfail", "discard",
    "error",    "timeout", "unavailable", "overflow",
};

static const char *const outcome_names[SHADOW_OUTCOME_COUNT] = {
    "delivered", "rejected", "tempfailed", "discarded", "quarantined",
};

/* shadow_stage_name - lower-case stage name for logs and records */
const char *
shadow_stage_name(ShadowStage stage)
{
    return stage < SHADOW_STAGE_COUNT ? stage_names[stage] : "?";
}

/* shadow_action_name - lower-case action name for logs and records */
const char *
shadow_action_name(ShadowAction action)
{
    return action < SHADOW_ACTION_COUNT ? action_names[action] : "?";
}

/* shadow_outcome_name - lower-case outcome name for logs and records */
const char *
shadow_outcome_name(ShadowOutcome outcome)
{
    return outcome < SHADOW_OUTCOME_COUNT ? outcome_names[outcome] : "?";
}

/* shadow_stage_is_content - header, end of header, body, end of message */
gboolean
shadow_stage_is_content(ShadowStage stage)
{
    return stage >= SHADOW_STAGE_HEADER && stage <= SHADOW_STAGE_EOM;
}

/* shadow_action_is_refusal - reject, tempfail or discard */
gboolean
shadow_action_is_refusal(ShadowAction action)
{
    return action == SHADOW_ACTION_REJECT || action == SHADOW_ACTION_TEMPFAIL ||
           action == SHADOW_ACTION_DISCARD;
}

/* shadow_action_is_failure - the child gave no verdict */
gboolean
shadow_action_is_failure(ShadowAction action)
{
    return action >= SHADOW_ACTION_ERROR && action < SHADOW_ACTION_COUNT;
}

/* rcpt_result_free - free a ShadowRcptResult */
static void
rcpt_result_free(gpointer p)
{
    ShadowRcptResult *r = p;

    g_free(r->rcpt);
    g_free(r->reply);
    g_free(r);
}

/* edit_free - free a ShadowEdit */
static void
edit_free(gpointer p)
{
    ShadowEdit *e = p;

    g_free(e->name);
    g_free(e->value);
    g_free(e);
}

/* shadow_verdict_new - a child's verdict, CONTINUE until told otherwise */
ShadowVerdict *
shadow_verdict_new(const char *milter)
{
    ShadowVerdict *v = g_new0(ShadowVerdict, 1);

    v->milter = g_strdup(milter);
    v->action = SHADOW_ACTION_CONTINUE;
    v->rcpts = g_ptr_array_new_with_free_func(rcpt_result_free);
    v->edits = g_ptr_array_new_with_free_func(edit_free);
    return v;
}

/* shadow_verdict_free - free a verdict; NULL is allowed */
void
shadow_verdict_free(ShadowVerdict *v)
{
    if (v == NULL)
        return;
    g_free(v->milter);
    g_free(v->reply);
    g_free(v->reason);
    g_free(v->quarantine);
    g_ptr_array_unref(v->rcpts);
    g_ptr_array_unref(v->edits);
    g_free(v);
}

/* shadow_verdict_refuse_rcpt - record a reject or tempfail of one recipient */
void
shadow_verdict_refuse_rcpt(ShadowVerdict *v, const char *rcpt, ShadowAction action,
                           const char *reply)
{
    ShadowRcptResult *r;

    g_return_if_fail(v != NULL && rcpt != NULL);
    g_return_if_fail(action == SHADOW_ACTION_REJECT || action == SHADOW_ACTION_TEMPFAIL);

    r = g_new0(ShadowRcptResult, 1);
    r->rcpt = g_strdup(rcpt);
    r->action = action;
    r->reply = g_strdup(reply);
    g_ptr_array_add(v->rcpts, r);
}

/* shadow_verdict_add_edit - record one modification request */
void
shadow_verdict_add_edit(ShadowVerdict *v, guint8 code, guint32 index, const char *name,
                        const char *value)
{
    ShadowEdit *e;

    g_return_if_fail(v != NULL);
    e = g_new0(ShadowEdit, 1);
    e->code = code;
    e->index = index;
    e->name = g_strdup(name);
    e->value = g_strdup(value);
    g_ptr_array_add(v->edits, e);
}

/* decide - the message ends here: a refusal by v at its stage */
static void
decide(ShadowPrediction *out, const ShadowVerdict *v)
{
    switch (v->action) {
    case SHADOW_ACTION_REJECT:
        out->outcome = SHADOW_OUTCOME_REJECTED;
        break;
    case SHADOW_ACTION_TEMPFAIL:
        out->outcome = SHADOW_OUTCOME_TEMPFAILED;
        break;
    default:
        out->outcome = SHADOW_OUTCOME_DISCARDED;
        break;
    }
    out->decided_by = v->milter;
    out->stage = v->stage;
    out->reply = v->reply;
    out->quarantine = NULL;
    g_ptr_array_set_size(out->edits, 0);
    g_ptr_array_set_size(out->edits_by, 0);
}

/*
 * find_refusal - the first refusal of rcpt in chain order among the first n, or NULL
 *
 * A child that failed later still refused the recipients it refused: those
 * refusals happened before it failed.
 */
static const ShadowRcptResult *
find_refusal(ShadowVerdict *const *chain, guint n, const char *rcpt, const char **by)
{
    for (guint i = 0; i < n; i++) {
        for (guint k = 0; k < chain[i]->rcpts->len; k++) {
            const ShadowRcptResult *r = g_ptr_array_index(chain[i]->rcpts, k);

            if (g_ascii_strcasecmp(r->rcpt, rcpt) == 0) {
                *by = chain[i]->milter;
                return r;
            }
        }
    }
    return NULL;
}

/* predict_rcpts - fold per-recipient refusals; TRUE if no recipient is left */
static gboolean
predict_rcpts(ShadowVerdict *const *chain, guint n, const char *const *rcpts, guint n_rcpts,
              ShadowPrediction *out)
{
    const ShadowRcptResult *first = NULL, *first_reject = NULL;
    const char *first_by = NULL, *first_reject_by = NULL;
    gboolean all_temp = TRUE;

    out->rcpts_left = n_rcpts;
    for (guint k = 0; k < n_rcpts; k++) {
        const char *by = NULL;
        const ShadowRcptResult *r = find_refusal(chain, n, rcpts[k], &by);

        if (r == NULL)
            continue;
        g_ptr_array_add(out->refused, (gpointer)r);
        out->rcpts_left--;
        if (r->action != SHADOW_ACTION_TEMPFAIL) {
            all_temp = FALSE;
            if (first_reject == NULL) {
                first_reject = r;
                first_reject_by = by;
            }
        }
        if (first == NULL) {
            first = r;
            first_by = by;
        }
    }
    if (n_rcpts == 0 || out->rcpts_left > 0)
        return FALSE;
    /* A rejected message is put down to a child that rejected, with its 5xx reply. */
    if (!all_temp) {
        first = first_reject;
        first_by = first_reject_by;
    }
    out->outcome = all_temp ? SHADOW_OUTCOME_TEMPFAILED : SHADOW_OUTCOME_REJECTED;
    out->decided_by = first_by;
    out->stage = SHADOW_STAGE_RCPT;
    out->reply = first->reply;
    return TRUE;
}

/*
 * rcpt_reachable - could child k have seen a RCPT at all in an enforced chain?
 *
 * A recipient refused by a child before k is never shown to k, so a child
 * whose every recipient was refused by earlier children cannot have
 * discarded at RCPT.
 */
static gboolean
rcpt_reachable(ShadowVerdict *const *chain, guint k, const char *const *rcpts, guint n_rcpts)
{
    if (n_rcpts == 0)
        return TRUE;
    for (guint r = 0; r < n_rcpts; r++) {
        const char *by = NULL;

        if (find_refusal(chain, k, rcpts[r], &by) == NULL)
            return TRUE;
    }
    return FALSE;
}

/* shadow_predict - what the enforced chain would have done (see the header) */
void
shadow_predict(ShadowVerdict *const *chain, guint n, const char *const *rcpts, guint n_rcpts,
               ShadowPrediction *out)
{
    static const ShadowStage envelope[] = {
        SHADOW_STAGE_CONNECT, SHADOW_STAGE_HELO, SHADOW_STAGE_MAIL,
        SHADOW_STAGE_RCPT,    SHADOW_STAGE_DATA,
    };

    g_return_if_fail(out != NULL && (chain != NULL || n == 0));
    g_return_if_fail(rcpts != NULL || n_rcpts == 0);

    memset(out, 0, sizeof(*out));
    out->outcome = SHADOW_OUTCOME_DELIVERED;
    out->refused = g_ptr_array_new();
    out->edits = g_ptr_array_new();
    out->edits_by = g_ptr_array_new();
    out->unknown = g_ptr_array_new();
    out->rcpts_left = n_rcpts;

    for (guint i = 0; i < n; i++)
        if (shadow_action_is_failure(chain[i]->action))
            g_ptr_array_add(out->unknown, chain[i]->milter);

    /* Envelope: stage by stage, first refusal in chain order decides. */
    for (gsize s = 0; s < G_N_ELEMENTS(envelope); s++) {
        for (guint i = 0; i < n; i++) {
            const ShadowVerdict *v = chain[i];

            /* At RCPT only a discard is message-level; refusals are per recipient. */
            if (v->stage == envelope[s] && shadow_action_is_refusal(v->action) &&
                (v->stage != SHADOW_STAGE_RCPT || (v->action == SHADOW_ACTION_DISCARD &&
                                                   rcpt_reachable(chain, i, rcpts, n_rcpts)))) {
                decide(out, v);
                return;
            }
        }
        if (envelope[s] == SHADOW_STAGE_RCPT && predict_rcpts(chain, n, rcpts, n_rcpts, out))
            return;
    }

    /* Content: serial, in chain order; the first refusal ends the message. */
    for (guint i = 0; i < n; i++) {
        const ShadowVerdict *v = chain[i];

        if (shadow_action_is_failure(v->action))
            continue;
        if (shadow_action_is_refusal(v->action)) {
            /* Envelope refusals returned above; an UNKNOWN one ends nothing. */
            if (shadow_stage_is_content(v->stage)) {
                decide(out, v);
                return;
            }
            continue;
        }
        for (guint k = 0; k < v->edits->len; k++) {
            g_ptr_array_add(out->edits, v->edits->pdata[k]);
            g_ptr_array_add(out->edits_by, v->milter);
        }
        if (v->quarantine != NULL) {
            out->outcome = SHADOW_OUTCOME_QUARANTINED;
            out->decided_by = v->milter;
            out->stage = SHADOW_STAGE_EOM;
            out->quarantine = v->quarantine;
        }
    }
}

/* shadow_prediction_clear - free what shadow_predict() allocated */
void
shadow_prediction_clear(ShadowPrediction *p)
{
    if (p == NULL)
        return;
    g_clear_pointer(&p->refused, g_ptr_array_unref);
    g_clear_pointer(&p->edits, g_ptr_array_unref);
    g_clear_pointer(&p->edits_by, g_ptr_array_unref);
    g_clear_pointer(&p->unknown, g_ptr_array_unref);
}
