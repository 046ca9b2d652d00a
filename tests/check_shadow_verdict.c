/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	check_shadow_verdict - Check suite for one child's verdict and the chain prediction
 * DESCRIPTION
 *	Written from the contract in shadow_verdict.h and the chaining rules
 *	(milter-protocol notes §5.3, §7), not from the implementation.
 *
 *	verdict: the constructor, refuse_rcpt and add_edit copy their strings
 *	and start with empty arrays. helpers: is_refusal, is_failure and
 *	is_content over every value. names: the stage, action and outcome
 *	names. rules: a table of chains, each built in chain order from
 *	shadow_verdict_new(), refuse_rcpt() and add_edit(), folded by
 *	shadow_predict() and compared field by field with the prediction an
 *	enforced chain would make. A failure lists every field that differs as
 *	"got X, want Y".
 *
 *	Where the contract leaves a field open (who "decided" a message that
 *	lost all its recipients to refusals by several children, its reply,
 *	rcpts_left of a message refused as a whole), the table either accepts
 *	each defensible answer ("a|b", "(null)" for NULL) or does not look.
 */

/* System library. */
#include <stdlib.h>
#include <string.h>

/* Check. */
#include <check.h>

/* Shadow libraries. */
#include "milter_proto.h"
#include "shadow_verdict.h"

#define MAX_CHAIN 6
#define MAX_RCPTS 3
#define MAX_EDITS 4

/* Do not look at rcpts_left: the contract leaves it open for this outcome. */
#define ANY_LEFT G_MAXUINT

#define RCPT_A "<alice@example.net>"
#define RCPT_B "<bob@example.net>"

/* RcptSpec - a recipient refusal: in a child, or wanted in the prediction */
typedef struct {
    const char *rcpt;
    ShadowAction action;
    const char *reply;
} RcptSpec;

/* EditSpec - one edit a child asks for */
typedef struct {
    guint8 code; /* 0 ends the list */
    guint32 index;
    const char *name;
    const char *value;
} EditSpec;

/* ChildSpec - one child's verdict, as the table gives it */
typedef struct {
    const char *milter; /* NULL ends the chain */
    ShadowAction action;
    ShadowStage stage;
    gboolean connection;
    const char *reply;
    const char *quarantine;
    RcptSpec rcpts[MAX_RCPTS];
    EditSpec edits[MAX_EDITS];
} ChildSpec;

/* WantEdit - a wanted chain edit: edit k of child `by` */
typedef struct {
    const char *by; /* NULL ends the list */
    guint k;
} WantEdit;

/* RuleCase - a chain, its recipients, and the prediction it must give */
typedef struct {
    const char *id;
    ChildSpec chain[MAX_CHAIN];
    const char *rcpts[MAX_RCPTS];
    ShadowOutcome outcome;
    const char *decided_by; /* NULL: want NULL; "a|b": either */
    ShadowStage stage;
    const char *reply; /* NULL: want NULL; "x|(null)": x or NULL */
    const char *quarantine;
    RcptSpec refused[MAX_RCPTS]; /* as a set */
    gboolean any_refused;        /* TRUE: refused is not checked */
    WantEdit edits[MAX_EDITS];   /* in chain order */
    const char *unknown[MAX_CHAIN];
    guint rcpts_left; /* ANY_LEFT: not checked */
} RuleCase;

static const RuleCase rule_cases[] = {
    {
        .id = "all_continue",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_DELIVERED,
        .stage = SHADOW_STAGE_NONE,
        .rcpts_left = 2,
    },
    {
        .id = "empty_chain",
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_DELIVERED,
        .stage = SHADOW_STAGE_NONE,
        .rcpts_left = 1,
    },
    {
        /* Earliest stage wins: MAIL comes before RCPT, whatever the chain order. */
        .id = "mail_reject_beats_earlier_child_rcpt_reject",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 c1: no such user" } } },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_MAIL,
                     .reply = "550 5.7.1 c2: sender refused" } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_MAIL,
        .reply = "550 5.7.1 c2: sender refused",
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "same_envelope_stage_first_in_chain",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_MAIL, .reply = "550 5.7.1 c2" },
                   { "c3", SHADOW_ACTION_REJECT, SHADOW_STAGE_MAIL, .reply = "550 5.7.1 c3" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_MAIL,
        .reply = "550 5.7.1 c2",
        .rcpts_left = ANY_LEFT,
    },
    {
        /* First in chain order, not the "strongest" (milter-manager's rule). */
        .id = "same_envelope_stage_first_not_strongest",
        .chain = { { "c1", SHADOW_ACTION_TEMPFAIL, SHADOW_STAGE_HELO, .reply = "451 4.7.1 c1" },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_HELO, .reply = "550 5.7.1 c2" },
                   { "c3", SHADOW_ACTION_DISCARD, SHADOW_STAGE_HELO } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_TEMPFAILED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_HELO,
        .reply = "451 4.7.1 c1",
        .rcpts_left = ANY_LEFT,
    },
    {
        /* DATA reaches every milter; EOH is content, so DATA comes first. */
        .id = "envelope_data_beats_earlier_child_content",
        .chain = { { "c1", SHADOW_ACTION_REJECT, SHADOW_STAGE_EOH, .reply = "550 5.7.1 c1" },
                   { "c2", SHADOW_ACTION_TEMPFAIL, SHADOW_STAGE_DATA, .reply = "451 4.3.0 c2" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_TEMPFAILED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_DATA,
        .reply = "451 4.3.0 c2",
        .rcpts_left = ANY_LEFT,
    },
    {
        /* Content is serial: c2 never sees the headers c1 rejected the body of. */
        .id = "content_serial_first_child_wins",
        .chain = { { "c1", SHADOW_ACTION_REJECT, SHADOW_STAGE_BODY, .reply = "550 5.7.1 c1 body" },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_HEADER,
                     .reply = "550 5.7.1 c2 header" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_BODY,
        .reply = "550 5.7.1 c1 body",
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "one_rcpt_of_two_tempfailed",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1: later" } } },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_DELIVERED,
        .stage = SHADOW_STAGE_NONE,
        .refused = { { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1: later" } },
        .rcpts_left = 1,
    },
    {
        .id = "all_rcpts_tempfailed_by_two_children",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1" } } },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c2" } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_TEMPFAILED,
        .decided_by = "c1|c2",
        .stage = SHADOW_STAGE_RCPT,
        .reply = "451 4.7.1 c1|451 4.7.1 c2|(null)",
        .refused = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1" },
                     { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c2" } },
        .rcpts_left = 0,
    },
    {
        /* The decider of a rejected message is a child that rejected. */
        .id = "all_rcpts_refused_one_reject_one_tempfail",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 c1" } } },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c2" } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_RCPT,
        .reply = "550 5.1.1 c1|(null)",
        .refused = { { RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 c1" },
                     { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c2" } },
        .rcpts_left = 0,
    },
    {
        /* The same with the tempfail first in RCPT order: still a child that rejected. */
        .id = "all_rcpts_refused_tempfail_first_then_reject",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1" } } },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_B, SHADOW_ACTION_REJECT, "550 5.1.1 c2" } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_RCPT,
        .reply = "550 5.1.1 c2|(null)",
        .refused = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1" },
                     { RCPT_B, SHADOW_ACTION_REJECT, "550 5.1.1 c2" } },
        .rcpts_left = 0,
    },
    {
        /* c1 refused every RCPT first, so c2 was never asked at RCPT: no discard. */
        .id = "all_rcpts_refused_before_later_child_rcpt_discard",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1 a" },
                                { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1 b" } } },
                   { "c2", SHADOW_ACTION_DISCARD, SHADOW_STAGE_RCPT } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_TEMPFAILED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_RCPT,
        .reply = "451 4.7.1 c1 a|451 4.7.1 c1 b|(null)",
        .refused = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1 a" },
                     { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1 b" } },
        .rcpts_left = 0,
    },
    {
        /* c1 sees every RCPT first: its discard comes before c2's refusals. */
        .id = "rcpt_discard_before_later_child_refusals",
        .chain = { { "c1", SHADOW_ACTION_DISCARD, SHADOW_STAGE_RCPT },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c2 a" },
                                { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c2 b" } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_DISCARDED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_RCPT,
        .any_refused = TRUE, /* depends on which RCPT c1 discarded at */
        .rcpts_left = ANY_LEFT,
    },
    {
        /* Folded as if it had continued: a refusal given at RCPT, before the
         * timeout at EOM, still refused that recipient. */
        .id = "no_verdict_child_rcpt_refusal_counts",
        .chain = { { "c1", SHADOW_ACTION_TIMEOUT, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 c1" } } },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_DELIVERED,
        .stage = SHADOW_STAGE_NONE,
        .refused = { { RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 c1" } },
        .unknown = { "c1" },
        .rcpts_left = 1,
    },
    {
        /* At RCPT the first child in chain order decides for that recipient. */
        .id = "same_rcpt_refused_by_two_children",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1" } } },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 c2" } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_DELIVERED,
        .stage = SHADOW_STAGE_NONE,
        .refused = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1" } },
        .rcpts_left = 1,
    },
    {
        /* c2 never sees a recipient c1 already tempfailed, so nothing is rejected. */
        .id = "all_rcpts_first_refusal_decides_class",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1 a" },
                                { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1 b" } } },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 c2 a" },
                                { RCPT_B, SHADOW_ACTION_REJECT, "550 5.1.1 c2 b" } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_TEMPFAILED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_RCPT,
        .reply = "451 4.7.1 c1 a|451 4.7.1 c1 b|(null)",
        .refused = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1 a" },
                     { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1 b" } },
        .rcpts_left = 0,
    },
    {
        /* Losing every recipient at RCPT comes before a refusal at DATA. */
        .id = "all_rcpts_tempfailed_before_data_reject",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1" } } },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_DATA, .reply = "550 5.7.1 c2" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_TEMPFAILED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_RCPT,
        .reply = "451 4.7.1 c1|(null)",
        .refused = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c1" } },
        .rcpts_left = 0,
    },
    {
        /* A hold at EOM means nothing for a message that never got past RCPT. */
        .id = "quarantine_but_all_rcpts_tempfailed",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM, .quarantine = "c1: suspect" },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c2 a" },
                                { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c2 b" } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_TEMPFAILED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_RCPT,
        .reply = "451 4.7.1 c2 a|451 4.7.1 c2 b|(null)",
        .refused = { { RCPT_A, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c2 a" },
                     { RCPT_B, SHADOW_ACTION_TEMPFAIL, "451 4.7.1 c2 b" } },
        .rcpts_left = 0,
    },
    {
        .id = "discard_at_rcpt",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM },
                   { "c2", SHADOW_ACTION_DISCARD, SHADOW_STAGE_RCPT } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_DISCARDED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_RCPT,
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "accept_at_mail_then_content_reject",
        .chain = { { "c1", SHADOW_ACTION_ACCEPT, SHADOW_STAGE_MAIL },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_EOM,
                     .reply = "550 5.7.0 c2: content refused" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_EOM,
        .reply = "550 5.7.0 c2: content refused",
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "accept_connection_then_mail_tempfail",
        .chain = { { "c1", SHADOW_ACTION_ACCEPT, SHADOW_STAGE_CONNECT, .connection = TRUE },
                   { "c2", SHADOW_ACTION_TEMPFAIL, SHADOW_STAGE_MAIL } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_TEMPFAILED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_MAIL,
        .reply = NULL, /* the MTA's default */
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "quarantine_then_continue",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM, .quarantine = "c1: suspect" },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_QUARANTINED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_EOM,
        .quarantine = "c1: suspect",
        .rcpts_left = 2,
    },
    {
        .id = "quarantine_then_content_reject",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM, .quarantine = "c1: suspect" },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_EOM, .reply = "550 5.7.1 c2" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_EOM,
        .reply = "550 5.7.1 c2",
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "quarantine_then_content_tempfail",
        .chain = { { "c1", SHADOW_ACTION_ACCEPT, SHADOW_STAGE_EOM, .quarantine = "c1: suspect" },
                   { "c2", SHADOW_ACTION_TEMPFAIL, SHADOW_STAGE_BODY, .reply = "451 4.3.0 c2" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_TEMPFAILED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_BODY,
        .reply = "451 4.3.0 c2",
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "quarantine_then_content_discard",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM, .quarantine = "c1: suspect" },
                   { "c2", SHADOW_ACTION_DISCARD, SHADOW_STAGE_EOM } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_DISCARDED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_EOM,
        .rcpts_left = ANY_LEFT,
    },
    {
        /* A hold at EOM does not survive a refusal at an earlier stage. */
        .id = "quarantine_then_envelope_reject",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM, .quarantine = "c1: suspect" },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_MAIL, .reply = "550 5.7.1 c2" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_MAIL,
        .reply = "550 5.7.1 c2",
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "quarantine_with_one_rcpt_refused",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM, .quarantine = "c1: suspect" },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 c2" } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_QUARANTINED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_EOM,
        .quarantine = "c1: suspect",
        .refused = { { RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 c2" } },
        .rcpts_left = 1,
    },
    {
        .id = "content_discard_first_in_chain",
        .chain = { { "c1", SHADOW_ACTION_DISCARD, SHADOW_STAGE_EOM },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_HEADER, .reply = "550 5.7.1 c2" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_DISCARDED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_EOM,
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "content_reject_then_quarantine",
        .chain = { { "c1", SHADOW_ACTION_REJECT, SHADOW_STAGE_EOH, .reply = "550 5.7.1 c1" },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .quarantine = "c2: suspect" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_EOH,
        .reply = "550 5.7.1 c1",
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "content_reject_cuts_off_edits",
        .chain = { { "c1", SHADOW_ACTION_REJECT, SHADOW_STAGE_EOM, .reply = "550 5.7.1 c1",
                     .edits = { { SMFIR_ADDHEADER, 0, "X-C1", "one" } } },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .edits = { { SMFIR_ADDHEADER, 0, "X-C2", "two" },
                                { SMFIR_CHGHEADER, 1, "Subject", "new" } } } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_EOM,
        .reply = "550 5.7.1 c1",
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "content_reject_at_header_cuts_off_edits",
        .chain = { { "c1", SHADOW_ACTION_TEMPFAIL, SHADOW_STAGE_HEADER, .reply = "451 4.7.1 c1" },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .edits = { { SMFIR_ADDHEADER, 0, "X-C2", "two" } } } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_TEMPFAILED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_HEADER,
        .reply = "451 4.7.1 c1",
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "edits_in_chain_order",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .edits = { { SMFIR_ADDHEADER, 0, "X-C1", "one" },
                                { SMFIR_CHGHEADER, 1, "Subject", "new" } } },
                   { "c2", SHADOW_ACTION_ACCEPT, SHADOW_STAGE_EOM,
                     .edits = { { SMFIR_INSHEADER, 0, "X-C2", "two" } } },
                   { "c3", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM },
                   { "c4", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .edits = { { SMFIR_ADDRCPT, 0, "<carol@example.net>", NULL } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_DELIVERED,
        .stage = SHADOW_STAGE_NONE,
        .edits = { { "c1", 0 }, { "c1", 1 }, { "c2", 0 }, { "c4", 0 } },
        .rcpts_left = 2,
    },
    {
        /* Refusing a recipient is not refusing the message: the edits stay. */
        .id = "rcpt_refusal_keeps_edits",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .rcpts = { { RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 c1" } },
                     .edits = { { SMFIR_ADDHEADER, 0, "X-C1", "one" } } },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .edits = { { SMFIR_DELRCPT, 0, RCPT_B, NULL } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_DELIVERED,
        .stage = SHADOW_STAGE_NONE,
        .refused = { { RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 c1" } },
        .edits = { { "c1", 0 }, { "c2", 0 } },
        .rcpts_left = 1,
    },
    {
        .id = "quarantine_keeps_edits",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM, .quarantine = "c1: held",
                     .edits = { { SMFIR_ADDHEADER, 0, "X-C1", "one" } } },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .edits = { { SMFIR_ADDHEADER, 0, "X-C2", "two" } } } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_QUARANTINED,
        .decided_by = "c1",
        .stage = SHADOW_STAGE_EOM,
        .quarantine = "c1: held",
        .edits = { { "c1", 0 }, { "c2", 0 } },
        .rcpts_left = 1,
    },
    {
        .id = "no_verdict_does_not_block",
        .chain = { { "c1", SHADOW_ACTION_TIMEOUT, SHADOW_STAGE_EOM },
                   { "c2", SHADOW_ACTION_ERROR, SHADOW_STAGE_MAIL },
                   { "c3", SHADOW_ACTION_UNAVAILABLE, SHADOW_STAGE_CONNECT },
                   { "c4", SHADOW_ACTION_OVERFLOW, SHADOW_STAGE_BODY },
                   { "c5", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .edits = { { SMFIR_ADDHEADER, 0, "X-C5", "five" } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_DELIVERED,
        .stage = SHADOW_STAGE_NONE,
        .edits = { { "c5", 0 } },
        .unknown = { "c1", "c2", "c3", "c4" },
        .rcpts_left = 2,
    },
    {
        .id = "no_verdict_then_reject",
        .chain = { { "c1", SHADOW_ACTION_TIMEOUT, SHADOW_STAGE_HELO },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_DATA, .reply = "550 5.7.1 c2" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_DATA,
        .reply = "550 5.7.1 c2",
        .unknown = { "c1" },
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "connect_reject",
        .chain = { { "c1", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_CONNECT, .connection = TRUE,
                     .reply = "554 5.7.1 c2: go away" },
                   { "c3", SHADOW_ACTION_REJECT, SHADOW_STAGE_MAIL, .reply = "550 5.7.1 c3" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_CONNECT,
        .reply = "554 5.7.1 c2: go away",
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "connect_reject_beats_earlier_child_helo",
        .chain = { { "c1", SHADOW_ACTION_TEMPFAIL, SHADOW_STAGE_HELO, .connection = TRUE,
                     .reply = "421 4.7.0 c1" },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_CONNECT, .connection = TRUE,
                     .reply = "554 5.7.1 c2" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_CONNECT,
        .reply = "554 5.7.1 c2",
        .rcpts_left = ANY_LEFT,
    },
    {
        .id = "unknown_reject_ends_nothing",
        .chain = { { "c1", SHADOW_ACTION_REJECT, SHADOW_STAGE_UNKNOWN,
                     .reply = "500 5.5.1 c1: no such command" },
                   { "c2", SHADOW_ACTION_CONTINUE, SHADOW_STAGE_EOM,
                     .edits = { { SMFIR_ADDHEADER, 0, "X-C2", "two" } } } },
        .rcpts = { RCPT_A, RCPT_B },
        .outcome = SHADOW_OUTCOME_DELIVERED,
        .stage = SHADOW_STAGE_NONE,
        .edits = { { "c2", 0 } },
        .rcpts_left = 2,
    },
    {
        .id = "unknown_tempfail_then_content_reject",
        .chain = { { "c1", SHADOW_ACTION_TEMPFAIL, SHADOW_STAGE_UNKNOWN, .reply = "421 4.7.0 c1" },
                   { "c2", SHADOW_ACTION_REJECT, SHADOW_STAGE_EOM, .reply = "550 5.7.1 c2" } },
        .rcpts = { RCPT_A },
        .outcome = SHADOW_OUTCOME_REJECTED,
        .decided_by = "c2",
        .stage = SHADOW_STAGE_EOM,
        .reply = "550 5.7.1 c2",
        .rcpts_left = ANY_LEFT,
    },
};

/* sname - a stage name for messages, never NULL */
static const char *
sname(ShadowStage stage)
{
    const char *n = shadow_stage_name(stage);

    return n ? n : "(no name)";
}

/* oname - an outcome name for messages, never NULL */
static const char *
oname(ShadowOutcome outcome)
{
    const char *n = shadow_outcome_name(outcome);

    return n ? n : "(no name)";
}

/* aname - an action name for messages, never NULL */
static const char *
aname(ShadowAction action)
{
    const char *n = shadow_action_name(action);

    return n ? n : "(no name)";
}

/* str_or_null - a string for messages, "(null)" for NULL */
static const char *
str_or_null(const char *s)
{
    return s ? s : "(null)";
}

/* want_matches - got against "a|b|(null)" alternatives; NULL wants NULL */
static gboolean
want_matches(const char *got, const char *want)
{
    g_auto(GStrv) alts = NULL;

    if (want == NULL)
        return got == NULL;
    alts = g_strsplit(want, "|", -1);
    for (guint i = 0; alts[i]; i++) {
        if (strcmp(alts[i], "(null)") == 0 ? got == NULL : got && strcmp(got, alts[i]) == 0)
            return TRUE;
    }
    return FALSE;
}

/* is_failure_action - the four actions that carry no verdict (test's own list) */
static gboolean
is_failure_action(ShadowAction a)
{
    return a == SHADOW_ACTION_ERROR || a == SHADOW_ACTION_TIMEOUT ||
           a == SHADOW_ACTION_UNAVAILABLE || a == SHADOW_ACTION_OVERFLOW;
}

/* build_child - one ShadowVerdict from its spec, through the public constructors */
static ShadowVerdict *
build_child(const ChildSpec *c)
{
    ShadowVerdict *v = shadow_verdict_new(c->milter);

    v->action = c->action;
    v->stage = c->stage;
    v->connection = c->connection;
    v->reply = g_strdup(c->reply);
    v->quarantine = g_strdup(c->quarantine);
    if (is_failure_action(c->action))
        v->reason = g_strdup_printf("%s at %s", aname(c->action), sname(c->stage));
    for (guint i = 0; i < MAX_RCPTS && c->rcpts[i].rcpt; i++)
        shadow_verdict_refuse_rcpt(v, c->rcpts[i].rcpt, c->rcpts[i].action, c->rcpts[i].reply);
    for (guint i = 0; i < MAX_EDITS && c->edits[i].code; i++)
        shadow_verdict_add_edit(v, c->edits[i].code, c->edits[i].index, c->edits[i].name,
                                c->edits[i].value);
    return v;
}

/* find_child - the verdict of the named child in a built chain */
static ShadowVerdict *
find_child(GPtrArray *chain, const char *name)
{
    for (guint i = 0; i < chain->len; i++) {
        ShadowVerdict *v = chain->pdata[i];

        if (strcmp(v->milter, name) == 0)
            return v;
    }
    return NULL;
}

/* plen - length of a prediction array; NULL counts as empty */
static guint
plen(const GPtrArray *a)
{
    return a ? a->len : 0;
}

/* check_refused - the refused recipients as a set, each with action and reply */
static void
check_refused(GString *errs, const RuleCase *rc, const ShadowPrediction *p)
{
    guint want_n = 0;

    while (want_n < MAX_RCPTS && rc->refused[want_n].rcpt)
        want_n++;
    if (plen(p->refused) != want_n)
        g_string_append_printf(errs, "\n  refused: got %u entries, want %u", plen(p->refused),
                               want_n);
    for (guint w = 0; w < want_n; w++) {
        const RcptSpec *want = &rc->refused[w];
        const ShadowRcptResult *got = NULL;

        for (guint g = 0; g < plen(p->refused); g++) {
            const ShadowRcptResult *r = p->refused->pdata[g];

            if (r && r->rcpt && strcmp(r->rcpt, want->rcpt) == 0) {
                got = r;
                break;
            }
        }
        if (got == NULL) {
            g_string_append_printf(errs, "\n  refused: got no %s, want %s %s", want->rcpt,
                                   aname(want->action), want->reply);
            continue;
        }
        if (got->action != want->action || !want_matches(got->reply, want->reply))
            g_string_append_printf(errs, "\n  refused %s: got %s \"%s\", want %s \"%s\"",
                                   want->rcpt, aname(got->action), str_or_null(got->reply),
                                   aname(want->action), want->reply);
    }
}

/* check_edits - the chain's edits in order, each the child's own edit, with its name */
static void
check_edits(GString *errs, const RuleCase *rc, GPtrArray *chain, const ShadowPrediction *p)
{
    guint want_n = 0;

    while (want_n < MAX_EDITS && rc->edits[want_n].by)
        want_n++;
    if (plen(p->edits) != want_n)
        g_string_append_printf(errs, "\n  edits: got %u, want %u", plen(p->edits), want_n);
    if (plen(p->edits_by) != plen(p->edits))
        g_string_append_printf(errs, "\n  edits_by: got %u names for %u edits", plen(p->edits_by),
                               plen(p->edits));
    for (guint i = 0; i < want_n && i < plen(p->edits); i++) {
        const WantEdit *w = &rc->edits[i];
        ShadowVerdict *v = find_child(chain, w->by);
        const ShadowEdit *want = v->edits->pdata[w->k];
        const ShadowEdit *got = p->edits->pdata[i];
        const char *by = i < plen(p->edits_by) ? p->edits_by->pdata[i] : NULL;

        if (got != want)
            g_string_append_printf(errs, "\n  edit %u: got '%c' %s, want '%c' %s of %s", i,
                                   got ? got->code : '?', got ? str_or_null(got->name) : "(null)",
                                   want->code, want->name, w->by);
        if (by == NULL || strcmp(by, w->by) != 0)
            g_string_append_printf(errs, "\n  edits_by %u: got %s, want %s", i, str_or_null(by),
                                   w->by);
    }
}

/* check_unknown - the children with no verdict, in chain order */
static void
check_unknown(GString *errs, const RuleCase *rc, const ShadowPrediction *p)
{
    guint want_n = 0;
    g_autoptr(GString) got = g_string_new(NULL);
    g_autoptr(GString) want = g_string_new(NULL);

    while (want_n < MAX_CHAIN && rc->unknown[want_n])
        want_n++;
    for (guint i = 0; i < plen(p->unknown); i++)
        g_string_append_printf(got, "%s%s", i ? "," : "",
                               str_or_null((const char *)p->unknown->pdata[i]));
    for (guint i = 0; i < want_n; i++)
        g_string_append_printf(want, "%s%s", i ? "," : "", rc->unknown[i]);
    if (strcmp(got->str, want->str) != 0)
        g_string_append_printf(errs, "\n  unknown: got [%s], want [%s]", got->str, want->str);
}

/* test_rule - one chain of the table, folded and compared field by field */
START_TEST(test_rule)
{
    const RuleCase *rc = &rule_cases[_i];
    g_autoptr(GPtrArray) chain =
        g_ptr_array_new_with_free_func((GDestroyNotify)shadow_verdict_free);
    g_autoptr(GString) errs = g_string_new(NULL);
    ShadowPrediction p;
    guint n_rcpts = 0;

    for (guint i = 0; i < MAX_CHAIN && rc->chain[i].milter; i++)
        g_ptr_array_add(chain, build_child(&rc->chain[i]));
    while (n_rcpts < MAX_RCPTS && rc->rcpts[n_rcpts])
        n_rcpts++;

    memset(&p, 0, sizeof(p));
    shadow_predict((ShadowVerdict *const *)chain->pdata, chain->len, rc->rcpts, n_rcpts, &p);

    if (p.outcome != rc->outcome)
        g_string_append_printf(errs, "\n  outcome: got %s, want %s", oname(p.outcome),
                               oname(rc->outcome));
    if (!want_matches(p.decided_by, rc->decided_by))
        g_string_append_printf(errs, "\n  decided_by: got %s, want %s", str_or_null(p.decided_by),
                               str_or_null(rc->decided_by));
    if (p.stage != rc->stage)
        g_string_append_printf(errs, "\n  stage: got %s, want %s", sname(p.stage),
                               sname(rc->stage));
    if (!want_matches(p.reply, rc->reply))
        g_string_append_printf(errs, "\n  reply: got %s, want %s", str_or_null(p.reply),
                               str_or_null(rc->reply));
    if (!want_matches(p.quarantine, rc->quarantine))
        g_string_append_printf(errs, "\n  quarantine: got %s, want %s", str_or_null(p.quarantine),
                               str_or_null(rc->quarantine));
    if (!rc->any_refused)
        check_refused(errs, rc, &p);
    check_edits(errs, rc, chain, &p);
    check_unknown(errs, rc, &p);
    if (rc->rcpts_left != ANY_LEFT && p.rcpts_left != rc->rcpts_left)
        g_string_append_printf(errs, "\n  rcpts_left: got %u, want %u", p.rcpts_left,
                               rc->rcpts_left);

    shadow_prediction_clear(&p);
    ck_assert_msg(errs->len == 0, "%s:%s", rc->id, errs->str);
}
END_TEST

/* test_predict_pointers - refused and edits point into the verdicts, not copies */
START_TEST(test_predict_pointers)
{
    g_autoptr(ShadowVerdict) c1 = shadow_verdict_new("c1");
    g_autoptr(ShadowVerdict) c2 = shadow_verdict_new("c2");
    ShadowVerdict *chain[2];
    const char *rcpts[] = { RCPT_A, RCPT_B };
    ShadowPrediction p;

    c1->stage = c2->stage = SHADOW_STAGE_EOM;
    shadow_verdict_refuse_rcpt(c1, RCPT_A, SHADOW_ACTION_REJECT, "550 5.1.1 no");
    shadow_verdict_add_edit(c2, SMFIR_ADDHEADER, 0, "X-C2", "two");
    chain[0] = c1;
    chain[1] = c2;
    memset(&p, 0, sizeof(p));
    shadow_predict(chain, 2, rcpts, 2, &p);

    ck_assert_ptr_nonnull(p.refused);
    ck_assert_uint_eq(p.refused->len, 1);
    ck_assert_ptr_eq(p.refused->pdata[0], c1->rcpts->pdata[0]);
    ck_assert_ptr_nonnull(p.edits);
    ck_assert_uint_eq(p.edits->len, 1);
    ck_assert_ptr_eq(p.edits->pdata[0], c2->edits->pdata[0]);
    ck_assert_uint_eq(p.rcpts_left, 1);
    shadow_prediction_clear(&p);

    /* The verdicts are unchanged by the fold and can be folded again. */
    ck_assert_uint_eq(c1->rcpts->len, 1);
    ck_assert_uint_eq(c2->edits->len, 1);
    memset(&p, 0, sizeof(p));
    shadow_predict(chain, 2, rcpts, 2, &p);
    ck_assert_int_eq(p.outcome, SHADOW_OUTCOME_DELIVERED);
    ck_assert_uint_eq(plen(p.edits), 1);
    shadow_prediction_clear(&p);
}
END_TEST

/* test_verdict_new - the constructor copies the name and starts empty */
START_TEST(test_verdict_new)
{
    char name[] = "spamd";
    g_autoptr(ShadowVerdict) v = shadow_verdict_new(name);

    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_ne(v->milter, name);
    name[0] = 'X';
    ck_assert_str_eq(v->milter, "spamd");
    ck_assert_ptr_null(v->reply);
    ck_assert_ptr_null(v->reason);
    ck_assert_ptr_null(v->quarantine);
    ck_assert(!v->connection);
    ck_assert_ptr_nonnull(v->rcpts);
    ck_assert_uint_eq(v->rcpts->len, 0);
    ck_assert_ptr_nonnull(v->edits);
    ck_assert_uint_eq(v->edits->len, 0);
}
END_TEST

/* test_refuse_rcpt - each refusal is appended, in order, with copied strings */
START_TEST(test_refuse_rcpt)
{
    g_autoptr(ShadowVerdict) v = shadow_verdict_new("c1");
    char rcpt[] = RCPT_A;
    char reply[] = "550 5.1.1 no such user";
    const ShadowRcptResult *r;

    shadow_verdict_refuse_rcpt(v, rcpt, SHADOW_ACTION_REJECT, reply);
    shadow_verdict_refuse_rcpt(v, RCPT_B, SHADOW_ACTION_TEMPFAIL, NULL);
    rcpt[1] = 'X';
    reply[0] = 'X';

    ck_assert_uint_eq(v->rcpts->len, 2);
    r = v->rcpts->pdata[0];
    ck_assert_str_eq(r->rcpt, RCPT_A);
    ck_assert_int_eq(r->action, SHADOW_ACTION_REJECT);
    ck_assert_str_eq(r->reply, "550 5.1.1 no such user");
    r = v->rcpts->pdata[1];
    ck_assert_str_eq(r->rcpt, RCPT_B);
    ck_assert_int_eq(r->action, SHADOW_ACTION_TEMPFAIL);
    ck_assert_ptr_null(r->reply);
}
END_TEST

/* test_add_edit - each edit is appended in the order sent, with copied strings */
START_TEST(test_add_edit)
{
    g_autoptr(ShadowVerdict) v = shadow_verdict_new("c1");
    char hname[] = "Subject";
    char hvalue[] = "new subject";
    const ShadowEdit *e;

    shadow_verdict_add_edit(v, SMFIR_CHGHEADER, 2, hname, hvalue);
    shadow_verdict_add_edit(v, SMFIR_DELRCPT, 0, RCPT_B, NULL);
    shadow_verdict_add_edit(v, SMFIR_REPLBODY, 0, NULL, "1234");
    hname[0] = 'X';
    hvalue[0] = 'X';

    ck_assert_uint_eq(v->edits->len, 3);
    e = v->edits->pdata[0];
    ck_assert_uint_eq(e->code, SMFIR_CHGHEADER);
    ck_assert_uint_eq(e->index, 2);
    ck_assert_str_eq(e->name, "Subject");
    ck_assert_str_eq(e->value, "new subject");
    e = v->edits->pdata[1];
    ck_assert_uint_eq(e->code, SMFIR_DELRCPT);
    ck_assert_str_eq(e->name, RCPT_B);
    ck_assert_ptr_null(e->value);
    e = v->edits->pdata[2];
    ck_assert_uint_eq(e->code, SMFIR_REPLBODY);
    ck_assert_ptr_null(e->name);
    ck_assert_str_eq(e->value, "1234");
}
END_TEST

/* test_verdict_free_null - free accepts NULL, and frees fields the caller set */
START_TEST(test_verdict_free_null)
{
    ShadowVerdict *v = shadow_verdict_new("c1");

    shadow_verdict_free(NULL);
    v->reply = g_strdup("550 5.7.1 no");
    v->reason = g_strdup("timeout");
    v->quarantine = g_strdup("held");
    shadow_verdict_refuse_rcpt(v, RCPT_A, SHADOW_ACTION_REJECT, "550 x");
    shadow_verdict_add_edit(v, SMFIR_ADDHEADER, 0, "X-A", "b");
    shadow_verdict_free(v); /* ASan reports any leak */
}
END_TEST

/* test_is_refusal - reject and tempfail refuse; continue, accept and failures do not */
START_TEST(test_is_refusal)
{
    static const struct {
        ShadowAction action;
        gboolean want;
    } cases[] = {
        { SHADOW_ACTION_CONTINUE, FALSE },    { SHADOW_ACTION_ACCEPT, FALSE },
        { SHADOW_ACTION_REJECT, TRUE },       { SHADOW_ACTION_TEMPFAIL, TRUE },
        { SHADOW_ACTION_ERROR, FALSE },       { SHADOW_ACTION_TIMEOUT, FALSE },
        { SHADOW_ACTION_UNAVAILABLE, FALSE }, { SHADOW_ACTION_OVERFLOW, FALSE },
    };

    /* DISCARD is left out: the header does not say whether it is a refusal. */
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        gboolean got = shadow_action_is_refusal(cases[i].action);

        ck_assert_msg(!got == !cases[i].want, "is_refusal(%s): got %d, want %d",
                      aname(cases[i].action), got, cases[i].want);
    }
}
END_TEST

/* test_is_failure - exactly the four actions with no verdict */
START_TEST(test_is_failure)
{
    for (guint a = 0; a < SHADOW_ACTION_COUNT; a++) {
        gboolean got = shadow_action_is_failure(a);
        gboolean want = is_failure_action(a);

        ck_assert_msg(!got == !want, "is_failure(%s): got %d, want %d", aname(a), got, want);
    }
}
END_TEST

/* test_is_content - headers, eoh, body and eom are content, nothing else */
START_TEST(test_is_content)
{
    for (guint s = 0; s < SHADOW_STAGE_COUNT; s++) {
        gboolean got = shadow_stage_is_content(s);
        gboolean want = s == SHADOW_STAGE_HEADER || s == SHADOW_STAGE_EOH ||
                        s == SHADOW_STAGE_BODY || s == SHADOW_STAGE_EOM;

        ck_assert_msg(!got == !want, "is_content(%s): got %d, want %d", sname(s), got, want);
    }
}
END_TEST

/* check_names - every value has its own name; the count, if named, is none of them */
static void
check_names(const char *what, const char *(*name)(int), const char *const *want, guint n)
{
    const char *past;

    for (guint i = 0; i < n; i++) {
        const char *got = name((int)i);

        ck_assert_msg(got != NULL, "%s %u: got NULL, want \"%s\"", what, i, want[i]);
        ck_assert_msg(strcmp(got, want[i]) == 0, "%s %u: got \"%s\", want \"%s\"", what, i, got,
                      want[i]);
    }
    /* Out of range: the header does not say; a name must at least not pose as a real one. */
    past = name((int)n);
    for (guint i = 0; past && i < n; i++)
        ck_assert_msg(strcmp(past, want[i]) != 0, "%s %u (out of range): got \"%s\", a real name",
                      what, n, past);
}

/* stage_name_int - shadow_stage_name over an int, for check_names */
static const char *
stage_name_int(int v)
{
    return shadow_stage_name((ShadowStage)v);
}

/* action_name_int - shadow_action_name over an int, for check_names */
static const char *
action_name_int(int v)
{
    return shadow_action_name((ShadowAction)v);
}

/* outcome_name_int - shadow_outcome_name over an int, for check_names */
static const char *
outcome_name_int(int v)
{
    return shadow_outcome_name((ShadowOutcome)v);
}

/* test_stage_names - lower-case stage names in SMTP order */
START_TEST(test_stage_names)
{
    static const char *const want[SHADOW_STAGE_COUNT] = {
        "none",    "connect", "helo", "mail", "rcpt", "data",
        "unknown", "header",  "eoh",  "body", "eom",
    };

    check_names("stage", stage_name_int, want, SHADOW_STAGE_COUNT);
}
END_TEST

/* test_action_names - lower-case action names */
START_TEST(test_action_names)
{
    static const char *const want[SHADOW_ACTION_COUNT] = {
        "continue", "accept",  "reject",      "tempfail", "discard",
        "error",    "timeout", "unavailable", "overflow",
    };

    check_names("action", action_name_int, want, SHADOW_ACTION_COUNT);
}
END_TEST

/* test_outcome_names - lower-case outcome names */
START_TEST(test_outcome_names)
{
    static const char *const want[SHADOW_OUTCOME_COUNT] = {
        "delivered", "rejected", "tempfailed", "discarded", "quarantined",
    };

    check_names("outcome", outcome_name_int, want, SHADOW_OUTCOME_COUNT);
}
END_TEST

/* shadow_verdict_suite - verdict, helpers, names, rules */
static Suite *
shadow_verdict_suite(void)
{
    Suite *s = suite_create("shadow_verdict");
    TCase *tc;

    tc = tcase_create("verdict");
    tcase_add_test(tc, test_verdict_new);
    tcase_add_test(tc, test_refuse_rcpt);
    tcase_add_test(tc, test_add_edit);
    tcase_add_test(tc, test_verdict_free_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("helpers");
    tcase_add_test(tc, test_is_refusal);
    tcase_add_test(tc, test_is_failure);
    tcase_add_test(tc, test_is_content);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, test_stage_names);
    tcase_add_test(tc, test_action_names);
    tcase_add_test(tc, test_outcome_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("rules");
    tcase_add_loop_test(tc, test_rule, 0, (int)G_N_ELEMENTS(rule_cases));
    tcase_add_test(tc, test_predict_pointers);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(shadow_verdict_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
