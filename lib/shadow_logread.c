/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow_logread - read shadowd event logs: plain or gzip, several merged in time order
 * DESCRIPTION
 *	See shadow_logread.h. Three layers:
 *
 *	- a source per file: zlib's gzread into a large buffer, split at
 *	  newlines, each line copied into the source's arena;
 *	- a JSON scanner that decodes a line in place into a small tree of
 *	  nodes in the arena (strings unescaped where they lie and NUL
 *	  terminated), with the top-level keys of the record format looked up
 *	  once into slots;
 *	- records: the slots checked and turned into ShadowLog* structures,
 *	  verdicts gathered until their message record, and the sources merged
 *	  by the time of their next record.
 *
 *	The arena of a source is reset when the source moves to its next
 *	record, so memory is that of the largest record, whatever the log's
 *	length.
 */

/* Build configuration (_GNU_SOURCE for memmem). */
#include "config.h"

/* System library. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Library. */
#include "milter_proto.h"
#include "shadow_logread.h"

/* Read buffer of one source; lines longer than this grow it up to SHADOW_LOG_MAX_LINE. */
#define READ_BUFFER_SIZE (1024 * 1024)
/* The same for a file read on the consumer's thread (many files at once). */
#define SYNC_READ_BUFFER_SIZE (64 * 1024)
/* zlib's own buffer for a file. */
#define GZ_BUFFER_SIZE (256 * 1024)
/* Smallest arena chunk. */
#define ARENA_CHUNK (128 * 1024)
/* Nesting a record may use (records nest two levels: edits in an array). */
#define JSON_MAX_DEPTH 8
/* Lines a source reads while verdicts wait for their message record, before giving up on them. */
#define MAX_PENDING_LINES (2 * SHADOW_LOG_MAX_VERDICTS)
/* Longest damage message kept. */
#define DAMAGE_TEXT_MAX 256

G_DEFINE_QUARK(shadow - log - error - quark, shadow_log_error)

/* ---------------------------------------------------------------- arena */

/* Chunk - one block of an arena */
typedef struct {
    char *mem;
    gsize size;
    gsize used;
} Chunk;

/* Arena - bump allocator, reset as a whole */
typedef struct {
    GArray *chunks; /* Chunk */
    guint current;
} Arena;

/* arena_init - an empty arena */
static void
arena_init(Arena *a)
{
    a->chunks = g_array_new(FALSE, FALSE, sizeof(Chunk));
    a->current = 0;
}

/* arena_clear - free every chunk */
static void
arena_clear(Arena *a)
{
    for (guint i = 0; i < a->chunks->len; i++)
        g_free(g_array_index(a->chunks, Chunk, i).mem);
    g_array_free(a->chunks, TRUE);
}

/* arena_reset - forget every allocation, keep the chunks */
static void
arena_reset(Arena *a)
{
    for (guint i = 0; i < a->chunks->len; i++)
        g_array_index(a->chunks, Chunk, i).used = 0;
    a->current = 0;
}

/* arena_alloc - size bytes aligned for any record structure */
static void *
arena_alloc(Arena *a, gsize size)
{
    size = (size + 15) & ~(gsize)15;
    while (a->current < a->chunks->len) {
        Chunk *c = &g_array_index(a->chunks, Chunk, a->current);
        if (c->size - c->used >= size) {
            void *p = c->mem + c->used;
            c->used += size;
            return p;
        }
        a->current++;
    }
    Chunk c = { .size = MAX(size, ARENA_CHUNK), .used = size };
    c.mem = g_malloc(c.size);
    g_array_append_val(a->chunks, c);
    a->current = a->chunks->len - 1;
    return c.mem;
}

/* ---------------------------------------------------------------- JSON */

/* JType - kind of a JSON node */
typedef enum {
    J_NULL,
    J_FALSE,
    J_TRUE,
    J_INT,    /* a number without fraction or exponent that fits gint64 */
    J_NUMBER, /* any other number (value not kept) */
    J_STRING,
    J_ARRAY,
    J_OBJECT,
} JType;

/* JNode - one value; members of arrays and objects are chained by next */
typedef struct JNode JNode;
struct JNode {
    JType type;
    guint n;         /* children of an array or object */
    const char *key; /* member name, inside an object */
    JNode *next;
    JNode *child; /* first child of an array or object */
    char *s;      /* J_STRING: unescaped, NUL-terminated */
    gint64 i;     /* J_INT */
};

/* JParser - in-place decoding of one line */
typedef struct {
    char *p;
    char *end;
    char *start;
    Arena *arena;
    const char *error; /* static text */
    gsize error_at;    /* byte offset of the error in the line */
} JParser;

/* The record's top-level keys the reader knows, looked up once into slots. */
typedef enum {
    F_V,
    F_TYPE,
    F_TS,
    F_HOST,
    F_CONN,
    F_EVENT,
    F_CLIENT_ADDR,
    F_CLIENT_NAME,
    F_CLIENT_PORT,
    F_HELO,
    F_MESSAGES,
    F_ERRORS,
    F_DURATION_MS,
    F_MILTERS,
    F_MSG,
    F_QUEUE_ID,
    F_MESSAGE_ID,
    F_MILTER,
    F_ACTION,
    F_STAGE,
    F_CONNECTION,
    F_REPLY,
    F_REASON,
    F_QUARANTINE,
    F_RCPTS,
    F_EDITS,
    F_LATENCY_US,
    F_AUTH,
    F_FROM,
    F_SIZE,
    F_MTA,
    F_OUTCOME,
    F_DECIDED_BY,
    F_REFUSED,
    F_UNKNOWN,
    F_COUNT,
} Field;

static const char *const field_names[F_COUNT] = {
    "v",           "type",        "ts",          "host",     "conn",       "event",
    "client_addr", "client_name", "client_port", "helo",     "messages",   "errors",
    "duration_ms", "milters",     "msg",         "queue_id", "message_id", "milter",
    "action",      "stage",       "connection",  "reply",    "reason",     "quarantine",
    "rcpts",       "edits",       "latency_us",  "auth",     "from",       "size",
    "mta",         "outcome",     "decided_by",  "refused",  "unknown",
};

/* Buckets of a NameTable, and names per bucket at most. */
#define NAME_BUCKETS    128
#define NAME_PER_BUCKET 4

/* NameTable - names to their index, by a hash of length and three bytes */
typedef struct {
    gint8 bucket[NAME_BUCKETS][NAME_PER_BUCKET];
    const char *names[64];
    guint8 lengths[64];
    char padded[64][16] __attribute__((aligned(16))); /* names of under 16 bytes, zero-padded */
} NameTable;

static NameTable fields, stages, actions, outcomes;

/* name_hash - bucket of a name: its length, first two and last bytes */
static inline guint
name_hash(const char *s, gsize len)
{
    guint h = (guint)len * 31u + (guchar)s[0];
    if (len > 1)
        h = h * 131u + (guchar)s[1];
    if (len > 2)
        h = h * 7u + (guchar)s[len - 1];
    return h & (NAME_BUCKETS - 1);
}

/* name_table_init - index n names given by name(k) */
static void
name_table_init(NameTable *t, const char *(*name)(int), int n)
{
    g_assert(n <= (int)G_N_ELEMENTS(t->names));
    memset(t->bucket, -1, sizeof t->bucket);
    for (int k = 0; k < n; k++) {
        const char *s = name(k);
        gsize len = strlen(s);
        guint h = name_hash(s, len);
        int slot = 0;
        while (t->bucket[h][slot] >= 0)
            slot++;
        g_assert(slot < NAME_PER_BUCKET && len < 256);
        t->bucket[h][slot] = (gint8)k;
        t->names[k] = s;
        t->lengths[k] = (guint8)len;
        memset(t->padded[k], 0, sizeof t->padded[k]);
        if (len < sizeof t->padded[k])
            memcpy(t->padded[k], s, len);
    }
}

/* name_lookup - index of a name of len bytes, or -1 */
static inline int
name_lookup(const NameTable *t, const char *s, gsize len)
{
    if (len == 0 || len > 255)
        return -1;
    const gint8 *b = t->bucket[name_hash(s, len)];
    for (int k = 0; k < NAME_PER_BUCKET && b[k] >= 0; k++) {
        const char *name = t->names[b[k]];
        if (t->lengths[b[k]] != len)
            continue;
        gsize i = 0;
        while (i < len && name[i] == s[i])
            i++;
        if (i == len)
            return b[k];
    }
    return -1;
}

/* name_lookup_padded - name_lookup for s with at least 16 readable bytes, len < 16 */
static inline int
name_lookup_padded(const NameTable *t, const char *s, gsize len)
{
#ifdef __SSE2__
    const gint8 *b = t->bucket[name_hash(s, len)];
    __m128i key = _mm_loadu_si128((const __m128i *)(const void *)s);
    unsigned want = (1u << len) - 1;
    for (int k = 0; k < NAME_PER_BUCKET && b[k] >= 0; k++) {
        if (t->lengths[b[k]] != len)
            continue;
        __m128i name = _mm_load_si128((const __m128i *)(const void *)t->padded[b[k]]);
        if (((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(key, name)) & want) == want)
            return b[k];
    }
    return -1;
#else
    return name_lookup(t, s, len);
#endif
}

/* j_fail - note the first error and its offset */
static gboolean
j_fail(JParser *j, const char *what)
{
    if (j->error == NULL) {
        j->error = what;
        j->error_at = (gsize)(j->p - j->start);
    }
    return FALSE;
}

/* j_ws - skip JSON white space */
static inline void
j_ws(JParser *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n'))
        j->p++;
}

/* hex4 - value of four hex digits, or -1 */
static int
hex4(const char *p)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        int c = (guchar)p[k], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* put_utf8 - encode a code point at out; bytes written */
static int
put_utf8(char *out, guint32 c)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* scan_plain - first byte from q on that ends a run of plain string bytes: '"', '\\' or a control */
static inline char *
scan_plain(char *q, const char *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i control = _mm_set1_epi8(0x1f);
    while (end - q >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
        hit = _mm_or_si128(hit, _mm_cmpeq_epi8(_mm_max_epu8(v, control), control));
        int mask = _mm_movemask_epi8(hit);
        if (mask != 0)
            return q + __builtin_ctz((unsigned)mask);
        q += 16;
    }
#endif
    while (q < end && *q != '"' && *q != '\\' && (guchar)*q >= 0x20)
        q++;
    return q;
}

/* j_string - decode a string at p (on its opening quote) in place; *out its start */
static gboolean
j_string(JParser *j, char **out, gsize *len)
{
    char *p = j->p + 1, *end = j->end;
    /* Fast path: no escape. */
    char *q = scan_plain(p, end);
    if (q < end && *q == '"') {
        *q = '\0';
        *out = p;
        *len = (gsize)(q - p);
        j->p = q + 1;
        return TRUE;
    }
    /* Slow path: unescape from q on, writing at w (never ahead of the reading point). */
    char *w = q;
    while (q < end) {
        guchar c = (guchar)*q;
        if (c == '"') {
            *w = '\0';
            *out = p;
            *len = (gsize)(w - p);
            j->p = q + 1;
            return TRUE;
        }
        if (c < 0x20) {
            j->p = q;
            return j_fail(j, "control character in a string");
        }
        if (c != '\\') {
            *w++ = *q++;
            continue;
        }
        if (q + 1 >= end)
            break;
        char e = q[1];
        q += 2;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            *w++ = e;
            break;
        case 'b':
            *w++ = '\b';
            break;
        case 'f':
            *w++ = '\f';
            break;
        case 'n':
            *w++ = '\n';
            break;
        case 'r':
            *w++ = '\r';
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'u': {
            int u = end - q >= 4 ? hex4(q) : -1;
            if (u < 0) {
                j->p = q;
                return j_fail(j, "bad \\u escape in a string");
            }
            q += 4;
            guint32 cp = (guint32)u;
            if (u >= 0xD800 && u <= 0xDBFF && end - q >= 6 && q[0] == '\\' && q[1] == 'u') {
                int lo = hex4(q + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + (((guint32)u - 0xD800) << 10) + ((guint32)lo - 0xDC00);
                    q += 6;
                }
            }
            if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
                cp = 0xFFFD; /* no NUL inside C strings; lone surrogates are not text */
            w += put_utf8(w, cp);
            break;
        }
        default:
            j->p = q - 1;
            return j_fail(j, "bad escape in a string");
        }
    }
    j->p = end;
    return j_fail(j, "unterminated string");
}

/* j_number - a JSON number; an integer that fits is kept */
static gboolean
j_number(JParser *j, JNode *n)
{
    char *p = j->p, *end = j->end;
    gboolean neg = FALSE, integral = TRUE, overflow = FALSE;
    guint64 v = 0;
    if (p < end && *p == '-') {
        neg = TRUE;
        p++;
    }
    if (p >= end || !g_ascii_isdigit(*p))
        return j_fail(j, "bad number");
    if (*p == '0') {
        p++;
    } else {
        while (p < end && g_ascii_isdigit(*p)) {
            guint d = (guint)(*p - '0');
            if (v > (G_MAXUINT64 - d) / 10)
                overflow = TRUE;
            else
                v = v * 10 + d;
            p++;
        }
    }
    if (p < end && *p == '.') {
        integral = FALSE;
        p++;
        if (p >= end || !g_ascii_isdigit(*p)) {
            j->p = p;
            return j_fail(j, "bad number");
        }
        while (p < end && g_ascii_isdigit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integral = FALSE;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !g_ascii_isdigit(*p)) {
            j->p = p;
            return j_fail(j, "bad number");
        }
        while (p < end && g_ascii_isdigit(*p))
            p++;
    }
    j->p = p;
    if (integral && !overflow && v <= (guint64)G_MAXINT64) {
        n->type = J_INT;
        n->i = neg ? -(gint64)v : (gint64)v;
    } else {
        n->type = J_NUMBER;
    }
    return TRUE;
}

/* j_literal - true, false or null */
static gboolean
j_literal(JParser *j, const char *word, gsize len)
{
    if ((gsize)(j->end - j->p) < len || memcmp(j->p, word, len) != 0)
        return j_fail(j, "unexpected character");
    j->p += len;
    return TRUE;
}

static gboolean j_value(JParser *j, JNode *n, guint depth, JNode **slots);

/* j_container - the members of an array or object, after its opening bracket */
static gboolean
j_container(JParser *j, JNode *n, guint depth, JNode **slots)
{
    gboolean object = n->type == J_OBJECT;
    char close = object ? '}' : ']';
    JNode **tail = &n->child;
    j->p++;
    j_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return TRUE;
    }
    for (;;) {
        JNode *m = arena_alloc(j->arena, sizeof *m);
        m->n = 0;
        m->key = NULL;
        m->next = NULL;
        m->child = NULL;
        int slot = -1;
        if (object) {
            char *key;
            gsize klen;
            if (j->p >= j->end || *j->p != '"')
                return j_fail(j, "expected a member name");
            if (!j_string(j, &key, &klen))
                return FALSE;
            if (slots != NULL)
                slot = klen > 0 && klen < 16 ? name_lookup_padded(&fields, key, klen) : -1;
            m->key = key;
            j_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return j_fail(j, "expected ':'");
            j->p++;
            j_ws(j);
        }
        if (!j_value(j, m, depth + 1, NULL))
            return FALSE;
        if (slot >= 0)
            slots[slot] = m; /* the last of a repeated key wins, as in most readers */
        *tail = m;
        tail = &m->next;
        n->n++;
        j_ws(j);
        if (j->p >= j->end)
            return j_fail(j, object ? "unterminated object" : "unterminated array");
        if (*j->p == ',') {
            j->p++;
            j_ws(j);
            continue;
        }
        if (*j->p == close) {
            j->p++;
            return TRUE;
        }
        return j_fail(j, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

/* j_value - one JSON value at p; slots, for the top-level object only */
static gboolean
j_value(JParser *j, JNode *n, guint depth, JNode **slots)
{
    if (depth > JSON_MAX_DEPTH)
        return j_fail(j, "nested too deep");
    if (j->p >= j->end)
        return j_fail(j, "unexpected end of line");
    switch (*j->p) {
    case '"': {
        gsize len;
        n->type = J_STRING;
        return j_string(j, &n->s, &len);
    }
    case '{':
        n->type = J_OBJECT;
        return j_container(j, n, depth, slots);
    case '[':
        n->type = J_ARRAY;
        return j_container(j, n, depth, NULL);
    case 't':
        n->type = J_TRUE;
        return j_literal(j, "true", 4);
    case 'f':
        n->type = J_FALSE;
        return j_literal(j, "false", 5);
    case 'n':
        n->type = J_NULL;
        return j_literal(j, "null", 4);
    default:
        if (*j->p == '-' || g_ascii_isdigit(*j->p))
            return j_number(j, n);
        return j_fail(j, "unexpected character");
    }
}

/* j_member - a member of a nested object by name, or NULL */
static const JNode *
j_member(const JNode *obj, const char *name)
{
    for (const JNode *m = obj->child; m != NULL; m = m->next)
        if (m->key[0] == name[0] && strcmp(m->key, name) == 0)
            return m;
    return NULL;
}

/* ---------------------------------------------------------------- names and times */

/* field_name, stage_name, action_name, outcome_name - names by number, for NameTables */
static const char *
field_name(int k)
{
    return field_names[k];
}

static const char *
stage_name(int k)
{
    return shadow_stage_name((ShadowStage)k);
}

static const char *
action_name(int k)
{
    return shadow_action_name((ShadowAction)k);
}

static const char *
outcome_name(int k)
{
    return shadow_outcome_name((ShadowOutcome)k);
}

/* tables_init - the name tables, once */
static void
tables_init(void)
{
    static gsize done;
    if (!g_once_init_enter(&done))
        return;
    name_table_init(&fields, field_name, F_COUNT);
    name_table_init(&stages, stage_name, SHADOW_STAGE_COUNT);
    name_table_init(&actions, action_name, SHADOW_ACTION_COUNT);
    name_table_init(&outcomes, outcome_name, SHADOW_OUTCOME_COUNT);
    g_once_init_leave(&done, 1);
}

/* name_parse - index of the NUL-terminated s in an initialised table, or -1 */
static int
name_parse(const NameTable *t, const char *s)
{
    return name_lookup(t, s, strlen(s));
}

/* stage_parse, action_parse, outcome_parse - record names to enums (tables initialised) */
static gboolean
stage_parse(const char *s, ShadowStage *out)
{
    int k = name_parse(&stages, s);
    if (k < 0)
        return FALSE;
    *out = (ShadowStage)k;
    return TRUE;
}

static gboolean
action_parse(const char *s, ShadowAction *out)
{
    int k = name_parse(&actions, s);
    if (k < 0)
        return FALSE;
    *out = (ShadowAction)k;
    return TRUE;
}

static gboolean
outcome_parse(const char *s, ShadowOutcome *out)
{
    int k = name_parse(&outcomes, s);
    if (k < 0)
        return FALSE;
    *out = (ShadowOutcome)k;
    return TRUE;
}

/* shadow_log_stage_parse - a stage name as records write it */
gboolean
shadow_log_stage_parse(const char *s, ShadowStage *out)
{
    tables_init();
    return stage_parse(s, out);
}

/* shadow_log_action_parse - a verdict action name */
gboolean
shadow_log_action_parse(const char *s, ShadowAction *out)
{
    tables_init();
    return action_parse(s, out);
}

/* shadow_log_outcome_parse - a message outcome name */
gboolean
shadow_log_outcome_parse(const char *s, ShadowOutcome *out)
{
    tables_init();
    return outcome_parse(s, out);
}

/* digits - n decimal digits at s, or -1 */
static int
digits(const char *s, int n)
{
    int v = 0;
    for (int k = 0; k < n; k++) {
        if (!g_ascii_isdigit(s[k]))
            return -1;
        v = v * 10 + (s[k] - '0');
    }
    return v;
}

/* days_from_civil - days since 1970-01-01 of a proleptic Gregorian date */
static gint64
days_from_civil(gint64 y, int m, int d)
{
    y -= m <= 2;
    gint64 era = (y >= 0 ? y : y - 399) / 400;
    gint64 yoe = y - era * 400;
    gint64 doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    gint64 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* shadow_log_parse_time - RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm)) in ms */
gboolean
shadow_log_parse_time(const char *s, gsize len, gint64 *ms)
{
    static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':')
        return FALSE;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    gboolean leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || sec < 0 || sec > 60 || (mo == 2 && d == 29 && !leap))
        return FALSE;
    gsize k = 19;
    int frac = 0;
    if (k < len && s[k] == '.') {
        int scale = 100, nd = 0;
        k++;
        while (k < len && g_ascii_isdigit(s[k])) {
            frac += (s[k] - '0') * scale;
            scale /= 10;
            k++;
            nd++;
        }
        if (nd == 0)
            return FALSE;
    }
    gint64 offset = 0;
    if (k < len && (s[k] == 'Z' || s[k] == 'z')) {
        k++;
    } else if (k + 6 == len && (s[k] == '+' || s[k] == '-') && s[k + 3] == ':') {
        int oh = digits(s + k + 1, 2), om = digits(s + k + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return FALSE;
        offset = (gint64)(oh * 60 + om) * 60000;
        if (s[k] == '-')
            offset = -offset;
        k += 6;
    } else {
        return FALSE;
    }
    if (k != len)
        return FALSE;
    if (sec == 60)
        sec = 59; /* a leap second: close enough for a report */
    gint64 days = days_from_civil(y, mo, d);
    *ms = ((days * 24 + h) * 60 + mi) * 60000 + (gint64)sec * 1000 + frac - offset;
    return TRUE;
}

/* ---------------------------------------------------------------- records */

/* Build - turning slots into a record; what is the first problem */
typedef struct {
    JNode **slots;
    Arena *arena;
    char what[DAMAGE_TEXT_MAX];
} Build;

/* bad - note a field problem */
static gboolean
bad(Build *b, const char *field, const char *problem)
{
    if (b->what[0] == '\0')
        g_snprintf(b->what, sizeof b->what, "field \"%s\": %s", field, problem);
    return FALSE;
}

/* get_str - an optional string field (absent or null: NULL) */
static gboolean
get_str(Build *b, Field f, const char **out)
{
    const JNode *n = b->slots[f];
    *out = NULL;
    if (n == NULL || n->type == J_NULL)
        return TRUE;
    if (n->type != J_STRING)
        return bad(b, field_names[f], "expected a string");
    *out = n->s;
    return TRUE;
}

/* need_str - a required string field */
static gboolean
need_str(Build *b, Field f, const char **out)
{
    if (!get_str(b, f, out))
        return FALSE;
    if (*out == NULL)
        return bad(b, field_names[f], b->slots[f] ? "null" : "missing");
    return TRUE;
}

/* get_int - an optional integer field (absent or null: -1) */
static gboolean
get_int(Build *b, Field f, gint64 *out)
{
    const JNode *n = b->slots[f];
    *out = -1;
    if (n == NULL || n->type == J_NULL)
        return TRUE;
    if (n->type != J_INT)
        return bad(b, field_names[f], "expected an integer");
    *out = n->i;
    return TRUE;
}

/* get_bool - an optional boolean field (absent or null: FALSE) */
static gboolean
get_bool(Build *b, Field f, gboolean *out)
{
    const JNode *n = b->slots[f];
    *out = FALSE;
    if (n == NULL || n->type == J_NULL)
        return TRUE;
    if (n->type != J_TRUE && n->type != J_FALSE)
        return bad(b, field_names[f], "expected true or false");
    *out = n->type == J_TRUE;
    return TRUE;
}

/* get_array - an optional array field; NULL when absent or null */
static gboolean
get_array(Build *b, Field f, const JNode **out)
{
    const JNode *n = b->slots[f];
    *out = NULL;
    if (n == NULL || n->type == J_NULL)
        return TRUE;
    if (n->type != J_ARRAY)
        return bad(b, field_names[f], "expected an array");
    *out = n;
    return TRUE;
}

/* member_str - a string member of a nested object (absent or null: NULL) */
static gboolean
member_str(Build *b, const JNode *obj, const char *field, const char *name, const char **out)
{
    const JNode *m = j_member(obj, name);
    *out = NULL;
    if (m == NULL || m->type == J_NULL)
        return TRUE;
    if (m->type != J_STRING) {
        char what[64];
        g_snprintf(what, sizeof what, "\"%s\" is not a string", name);
        return bad(b, field, what);
    }
    *out = m->s;
    return TRUE;
}

/* member_int - an integer member of a nested object (absent or null: -1) */
static gboolean
member_int(Build *b, const JNode *obj, const char *field, const char *name, gint64 *out)
{
    const JNode *m = j_member(obj, name);
    *out = -1;
    if (m == NULL || m->type == J_NULL)
        return TRUE;
    if (m->type != J_INT) {
        char what[64];
        g_snprintf(what, sizeof what, "\"%s\" is not an integer", name);
        return bad(b, field, what);
    }
    *out = m->i;
    return TRUE;
}

/* get_strings - an array of strings */
static gboolean
get_strings(Build *b, Field f, const char *const **out, guint *n_out)
{
    const JNode *a;
    *out = NULL;
    *n_out = 0;
    if (!get_array(b, f, &a) || a == NULL)
        return b->what[0] == '\0';
    const char **v = arena_alloc(b->arena, (a->n + 1) * sizeof *v);
    guint k = 0;
    for (const JNode *e = a->child; e != NULL; e = e->next) {
        if (e->type != J_STRING)
            return bad(b, field_names[f], "expected strings");
        v[k++] = e->s;
    }
    v[k] = NULL;
    *out = v;
    *n_out = k;
    return TRUE;
}

/* get_rcpts - refused recipients: verdict "rcpts" or message "refused" */
static gboolean
get_rcpts(Build *b, Field f, const ShadowLogRcpt **out, guint *n_out)
{
    const JNode *a;
    const char *name = field_names[f];
    *out = NULL;
    *n_out = 0;
    if (!get_array(b, f, &a) || a == NULL)
        return b->what[0] == '\0';
    ShadowLogRcpt *v = arena_alloc(b->arena, MAX(a->n, 1) * sizeof *v);
    guint k = 0;
    for (const JNode *e = a->child; e != NULL; e = e->next, k++) {
        const char *action;
        if (e->type != J_OBJECT)
            return bad(b, name, "expected objects");
        if (!member_str(b, e, name, "rcpt", &v[k].rcpt) ||
            !member_str(b, e, name, "action", &action) ||
            !member_str(b, e, name, "reply", &v[k].reply) ||
            !member_str(b, e, name, "milter", &v[k].milter))
            return FALSE;
        if (v[k].rcpt == NULL)
            return bad(b, name, "a recipient without \"rcpt\"");
        if (action == NULL || !action_parse(action, &v[k].action) ||
            (v[k].action != SHADOW_ACTION_REJECT && v[k].action != SHADOW_ACTION_TEMPFAIL))
            return bad(b, name, "\"action\" is not reject or tempfail");
    }
    *out = v;
    *n_out = k;
    return TRUE;
}

/* get_edits - verdict or message "edits" */
static gboolean
get_edits(Build *b, const ShadowLogEdit **out, guint *n_out)
{
    const JNode *a;
    *out = NULL;
    *n_out = 0;
    if (!get_array(b, F_EDITS, &a) || a == NULL)
        return b->what[0] == '\0';
    ShadowLogEdit *v = arena_alloc(b->arena, MAX(a->n, 1) * sizeof *v);
    guint k = 0;
    for (const JNode *e = a->child; e != NULL; e = e->next, k++) {
        if (e->type != J_OBJECT)
            return bad(b, "edits", "expected objects");
        if (!member_str(b, e, "edits", "op", &v[k].op) ||
            !member_str(b, e, "edits", "milter", &v[k].milter) ||
            !member_str(b, e, "edits", "name", &v[k].name) ||
            !member_str(b, e, "edits", "value", &v[k].value) ||
            !member_str(b, e, "edits", "addr", &v[k].addr) ||
            !member_str(b, e, "edits", "args", &v[k].args) ||
            !member_int(b, e, "edits", "index", &v[k].index) ||
            !member_int(b, e, "edits", "size", &v[k].size))
            return FALSE;
        if (v[k].op == NULL)
            return bad(b, "edits", "an edit without \"op\"");
    }
    *out = v;
    *n_out = k;
    return TRUE;
}

/* get_stage - an optional stage field (absent, null or "none": NONE) */
static gboolean
get_stage(Build *b, ShadowStage *out)
{
    const char *s;
    *out = SHADOW_STAGE_NONE;
    if (!get_str(b, F_STAGE, &s))
        return FALSE;
    if (s != NULL && !stage_parse(s, out))
        return bad(b, "stage", "not a stage name");
    return TRUE;
}

/* build_verdict - a verdict record */
static gboolean
build_verdict(Build *b, ShadowLogVerdict *v)
{
    const char *action;
    const JNode *lat = b->slots[F_LATENCY_US];
    if (!need_str(b, F_MILTER, &v->milter) || !need_str(b, F_ACTION, &action))
        return FALSE;
    if (!action_parse(action, &v->action))
        return bad(b, "action", "not a verdict action");
    if (!get_stage(b, &v->stage) || !get_bool(b, F_CONNECTION, &v->connection) ||
        !get_str(b, F_REPLY, &v->reply) || !get_str(b, F_REASON, &v->reason) ||
        !get_str(b, F_QUARANTINE, &v->quarantine) ||
        !get_rcpts(b, F_RCPTS, &v->rcpts, &v->n_rcpts) || !get_edits(b, &v->edits, &v->n_edits))
        return FALSE;
    for (int s = 0; s < SHADOW_STAGE_COUNT; s++)
        v->latency_us[s] = -1;
    if (lat != NULL && lat->type != J_NULL) {
        if (lat->type != J_OBJECT)
            return bad(b, "latency_us", "expected an object");
        for (const JNode *m = lat->child; m != NULL; m = m->next) {
            if (m->type != J_INT || m->i < 0)
                return bad(b, "latency_us", "expected whole microseconds");
            gsize klen = strlen(m->key);
            int k = klen > 0 && klen < 16 ? name_lookup_padded(&stages, m->key, klen) : -1;
            if (k >= 0)
                v->latency_us[k] = m->i; /* a stage this reader does not know is ignored */
        }
    }
    return TRUE;
}

/* build_message - a message record, without its verdicts */
static gboolean
build_message(Build *b, ShadowLogMessage *m)
{
    const char *mta, *outcome;
    if (!need_str(b, F_MSG, &m->msg) || !get_str(b, F_QUEUE_ID, &m->queue_id) ||
        !get_str(b, F_MESSAGE_ID, &m->message_id) || !get_str(b, F_CLIENT_ADDR, &m->client_addr) ||
        !get_str(b, F_CLIENT_NAME, &m->client_name) || !get_str(b, F_HELO, &m->helo) ||
        !get_str(b, F_AUTH, &m->auth) || !get_str(b, F_FROM, &m->from) ||
        !get_strings(b, F_RCPTS, &m->rcpts, &m->n_rcpts) || !get_int(b, F_SIZE, &m->size) ||
        !get_str(b, F_MTA, &mta) || !need_str(b, F_OUTCOME, &outcome) ||
        !get_str(b, F_DECIDED_BY, &m->decided_by) || !get_stage(b, &m->stage) ||
        !get_str(b, F_REPLY, &m->reply) || !get_str(b, F_QUARANTINE, &m->quarantine) ||
        !get_rcpts(b, F_REFUSED, &m->refused, &m->n_refused) ||
        !get_edits(b, &m->edits, &m->n_edits) ||
        !get_strings(b, F_UNKNOWN, &m->unknown, &m->n_unknown) ||
        !get_int(b, F_DURATION_MS, &m->duration_ms))
        return FALSE;
    if (!outcome_parse(outcome, &m->outcome))
        return bad(b, "outcome", "not an outcome");
    if (mta != NULL && strcmp(mta, "ended") != 0 && strcmp(mta, "aborted") != 0)
        return bad(b, "mta", "not \"ended\" or \"aborted\"");
    m->mta_ended = mta != NULL && strcmp(mta, "ended") == 0;
    return TRUE;
}

/* build_connection - a connection record */
static gboolean
build_connection(Build *b, ShadowLogConnection *c)
{
    const char *event;
    const JNode *a;
    if (!need_str(b, F_EVENT, &event))
        return FALSE;
    if (strcmp(event, "open") != 0 && strcmp(event, "close") != 0)
        return bad(b, "event", "not \"open\" or \"close\"");
    c->open = strcmp(event, "open") == 0;
    if (!get_str(b, F_CLIENT_ADDR, &c->client_addr) ||
        !get_str(b, F_CLIENT_NAME, &c->client_name) ||
        !get_str(b, F_CLIENT_PORT, &c->client_port) || !get_str(b, F_HELO, &c->helo) ||
        !get_int(b, F_MESSAGES, &c->messages) || !get_int(b, F_ERRORS, &c->errors) ||
        !get_int(b, F_DURATION_MS, &c->duration_ms) || !get_array(b, F_MILTERS, &a))
        return FALSE;
    c->milters = NULL;
    c->n_milters = 0;
    if (a == NULL)
        return TRUE;
    ShadowLogConnMilter *v = arena_alloc(b->arena, MAX(a->n, 1) * sizeof *v);
    guint k = 0;
    for (const JNode *e = a->child; e != NULL; e = e->next, k++) {
        if (e->type != J_OBJECT)
            return bad(b, "milters", "expected objects");
        if (!member_str(b, e, "milters", "milter", &v[k].milter) ||
            !member_str(b, e, "milters", "state", &v[k].state) ||
            !member_str(b, e, "milters", "reason", &v[k].reason))
            return FALSE;
        if (v[k].milter == NULL)
            return bad(b, "milters", "a child without \"milter\"");
    }
    c->milters = v;
    c->n_milters = k;
    return TRUE;
}

/* ---------------------------------------------------------------- sources */

/* Raw bytes a batch holds before it may end (at the end of a record), and lines at most. */
#define BATCH_BYTES      (256 * 1024)
#define SYNC_BATCH_BYTES (32 * 1024)
/* Files read with threads of their own at most; with more, each is read on the consumer's
 * thread (a glob of a year of rotated logs must not start a thread and buffers per file). */
#define MAX_THREADED_SOURCES 4
#define BATCH_MAX_LINES      4096
/* Batches of one source read ahead of the consumer, at most: memory stays flat. */
#define BATCHES_AHEAD 6
/* Bytes after a line copy, so that 16-byte loads at its end stay inside the copy. */
#define LINE_PAD 16

/* LineKind - what a line of a batch is */
typedef enum {
    LINE_RAW,     /* not parsed yet */
    LINE_DAMAGED, /* parsed, and found damaged: what says why */
    LINE_NOTE,    /* not a line: damage the splitter found (gzip error, overlong line) */
    LINE_TORN,    /* the last line of the file, without its newline */
    LINE_CONNECTION,
    LINE_VERDICT,
    LINE_MESSAGE,
} LineKind;

/* Line - one line of a batch, raw, then parsed by a worker */
typedef struct {
    LineKind kind;
    char *text; /* in the batch's arena, NUL-terminated, LINE_PAD bytes to spare */
    gsize len;
    guint64 line;       /* its line number */
    guint64 start, end; /* uncompressed offsets: its first byte, and after its newline */
    gint64 ts;
    const char *host, *conn, *msg;
    const char *what; /* LINE_DAMAGED, LINE_NOTE */
    union {
        ShadowLogVerdict verdict;
        ShadowLogMessage message;
        ShadowLogConnection connection;
    };
} Line;

typedef struct _Source Source;

/* Batch - consecutive lines of one source, parsed together on a worker thread */
typedef struct {
    Source *source;
    Arena arena;
    GArray *lines; /* Line */
    gboolean parsed;
    gboolean last; /* nothing follows it in the file */
    GError *error; /* a read error after its lines */
} Batch;

/* Source - one file: a splitter thread cuts it into batches, workers parse them, the
 * consumer (shadow_log_reader_next) takes them in order */
struct _Source {
    char *path;
    gzFile gz;
    ShadowLogReader *reader;
    guint order; /* position among the sources, for ties */
    /* Splitter's own. */
    GThread *splitter;
    gboolean threaded; /* read ahead by a splitter thread; else on the consumer's thread */
    gsize batch_bytes; /* where a batch may end */
    gboolean broken;   /* a decompression error ended the file */
    gboolean eof;
    char *buf;
    gsize cap, len, pos; /* buffered bytes are buf[pos, len) */
    guint64 offset;      /* uncompressed offset of buf[pos] */
    guint64 line;        /* lines read before buf[pos] */
    /* Shared, under lock. */
    GMutex lock;
    GCond cond;
    GQueue batches; /* Batch *, in file order, not yet taken by the consumer */
    GQueue spare;   /* Batch *, done with, for the splitter to reuse (no page faults) */
    gboolean stop;
    /* Consumer's own. */
    Batch *cur;
    guint cur_pos;
    GPtrArray *held; /* earlier batches that pending verdicts point into */
    gboolean done;
    guint64 committed_offset, committed_line; /* resume point: before anything pending */
    gboolean has_head;
    gint64 head_ts;
    ShadowLogRecord head;
    ShadowLogVerdict *pending; /* verdicts waiting for their message record */
    guint n_pending;
    guint pending_lines; /* lines read since the first pending verdict */
    const char *pending_host, *pending_conn, *pending_msg;
    guint64 pending_line, pending_offset; /* of the first pending verdict */
};

struct _ShadowLogReader {
    GPtrArray *sources; /* Source * */
    GThreadPool *workers;
    gboolean started; /* the first shadow_log_reader_next() has started the sources */
    ShadowLogDamageFunc damage;
    gpointer damage_data;
    gint64 since, until;
    gboolean tail;
    guint64 damaged;
    Source *last; /* the source whose head was handed out last */
};

/* damage - count and report one damaged line */
static void
damage(ShadowLogReader *r, Source *s, guint64 line, const char *what)
{
    r->damaged++;
    if (r->damage)
        r->damage(s->path, line, what, r->damage_data);
}

/* batch_new - an empty batch of a source */
static Batch *
batch_new(Source *s)
{
    Batch *b = g_new0(Batch, 1);
    b->source = s;
    arena_init(&b->arena);
    b->lines = g_array_sized_new(FALSE, FALSE, sizeof(Line), 256);
    return b;
}

/* batch_free - free a batch and its lines */
static void
batch_free(gpointer p)
{
    Batch *b = p;
    if (b == NULL)
        return;
    arena_clear(&b->arena);
    g_array_free(b->lines, TRUE);
    g_clear_error(&b->error);
    g_free(b);
}

/* batch_recycle - give a batch the consumer is done with back to the splitter */
static void
batch_recycle(Source *s, Batch *b)
{
    arena_reset(&b->arena);
    g_array_set_size(b->lines, 0);
    g_clear_error(&b->error);
    b->parsed = b->last = FALSE;
    g_mutex_lock(&s->lock);
    if (s->spare.length < BATCHES_AHEAD)
        g_queue_push_tail(&s->spare, b);
    else
        batch_free(b);
    g_mutex_unlock(&s->lock);
}

/* batch_note - damage the splitter found, to be reported in its place */
static void
batch_note(Batch *b, Source *s, guint64 line, const char *what)
{
    Line l = { .kind = LINE_NOTE, .line = line, .start = s->offset, .end = s->offset };
    gsize n = strlen(what);
    char *copy = arena_alloc(&b->arena, n + 1);
    memcpy(copy, what, n + 1);
    l.what = copy;
    g_array_append_val(b->lines, l);
}

/* source_fill - read more into the splitter's buffer; FALSE on a read error */
static gboolean
source_fill(Source *s, Batch *b)
{
    if (s->pos > 0) {
        memmove(s->buf, s->buf + s->pos, s->len - s->pos);
        s->len -= s->pos;
        s->pos = 0;
    }
    if (s->len == s->cap) {
        if (s->cap >= SHADOW_LOG_MAX_LINE + 1)
            return TRUE; /* the caller sees a full buffer without a newline */
        s->cap = MIN(s->cap * 2, (gsize)SHADOW_LOG_MAX_LINE + 1);
        s->buf = g_realloc(s->buf, s->cap);
    }
    int n = gzread(s->gz, s->buf + s->len, (unsigned)(s->cap - s->len));
    if (n > 0) {
        s->len += (gsize)n;
        return TRUE;
    }
    int zerr = Z_OK;
    const char *msg = gzerror(s->gz, &zerr);
    s->eof = TRUE;
    if (n == 0 && zerr == Z_OK)
        return TRUE;
    if (zerr == Z_ERRNO) {
        g_set_error(&b->error, SHADOW_LOG_ERROR, SHADOW_LOG_ERROR_READ,
                    "%s: line %" G_GUINT64_FORMAT ": read: %s", s->path, s->line + 1,
                    g_strerror(errno));
        return FALSE;
    }
    /* Corrupt or truncated compressed data: what came before stands. */
    char what[DAMAGE_TEXT_MAX];
    g_snprintf(what, sizeof what, "gzip: %s; the rest of the file is unreadable",
               msg && *msg ? msg : "unexpected end of file");
    batch_note(b, s, s->line + 1, what);
    s->broken = TRUE;
    return TRUE;
}

/* batch_add_line - copy len bytes at p into the batch as a line of kind */
static void
batch_add_line(Batch *b, Source *s, LineKind kind, const char *p, gsize len, gsize used)
{
    Line l = { .kind = kind, .len = len, .start = s->offset, .end = s->offset + used };
    l.text = arena_alloc(&b->arena, len + 1 + LINE_PAD);
    memcpy(l.text, p, len);
    memset(l.text + len, 0, 1 + LINE_PAD);
    l.line = s->line + 1;
    g_array_append_val(b->lines, l);
}

/* is_verdict_line - a verdict record, going by shadowd's field order (a guess is enough:
 * it only decides where a batch may end) */
static gboolean
is_verdict_line(const char *p, gsize len)
{
    return memmem(p, MIN(len, 48), "\"type\":\"verdict\"", 16) != NULL;
}

/* split_batch - the splitter: fill a batch with lines, ending after a record that is not a
 * verdict once it is big enough; TRUE when the file has ended */
static gboolean
split_batch(Source *s, Batch *b)
{
    gsize bytes = 0;
    for (;;) {
        char *start = s->buf + s->pos;
        gsize avail = s->len - s->pos;
        char *nl = avail ? memchr(start, '\n', avail) : NULL;
        if (nl != NULL) {
            gsize len = (gsize)(nl - start);
            batch_add_line(b, s, LINE_RAW, start, len, len + 1);
            s->pos += len + 1;
            s->offset += len + 1;
            s->line++;
            bytes += len + 1;
            if ((bytes >= s->batch_bytes || b->lines->len >= BATCH_MAX_LINES) &&
                (!is_verdict_line(start, len) || bytes >= 2 * s->batch_bytes))
                return FALSE;
            continue;
        }
        if (avail > SHADOW_LOG_MAX_LINE) {
            /* Too long: drop what is buffered and everything up to the next newline. */
            guint64 line = s->line + 1;
            s->offset += avail;
            s->pos = s->len;
            gboolean found = FALSE;
            while (!found && !s->eof) {
                if (!source_fill(s, b)) {
                    b->last = TRUE;
                    return TRUE;
                }
                nl = memchr(s->buf + s->pos, '\n', s->len - s->pos);
                gsize skip = nl ? (gsize)(nl - (s->buf + s->pos)) + 1 : s->len - s->pos;
                s->pos += skip;
                s->offset += skip;
                found = nl != NULL;
            }
            s->line++;
            char what[DAMAGE_TEXT_MAX];
            g_snprintf(what, sizeof what, "line longer than %d bytes", SHADOW_LOG_MAX_LINE);
            batch_note(b, s, line, what);
            continue;
        }
        if (s->eof) {
            /* After a decompression error the piece of a line is part of what was reported. */
            if (avail > 0 && !s->broken)
                batch_add_line(b, s, LINE_TORN, start, avail, avail);
            b->last = TRUE;
            return TRUE;
        }
        if (!source_fill(s, b)) {
            b->last = TRUE;
            return TRUE;
        }
    }
}

/* splitter_main - a source's thread: cut the file into batches for the workers */
static gpointer
splitter_main(gpointer data)
{
    Source *s = data;
    gboolean end = FALSE;
    while (!end) {
        g_mutex_lock(&s->lock);
        while (s->batches.length >= BATCHES_AHEAD && !s->stop)
            g_cond_wait(&s->cond, &s->lock);
        gboolean stop = s->stop;
        g_mutex_unlock(&s->lock);
        if (stop)
            break;
        g_mutex_lock(&s->lock);
        Batch *b = g_queue_pop_head(&s->spare);
        g_mutex_unlock(&s->lock);
        if (b == NULL)
            b = batch_new(s);
        end = split_batch(s, b);
        g_mutex_lock(&s->lock);
        g_queue_push_tail(&s->batches, b);
        g_mutex_unlock(&s->lock);
        g_thread_pool_push(s->reader->workers, b, NULL);
    }
    return NULL;
}

/* parse_line - decode one line into slots and the common fields; LINE_DAMAGED with what */
static LineKind
parse_line(Arena *arena, char *line, gsize len, JNode **slots, gint64 *ts, Build *b)
{
    JParser j = { .p = line, .end = line + len, .start = line, .arena = arena };
    JNode root = { 0 };
    const char *type, *tstext;
    gint64 v;

    memset(slots, 0, F_COUNT * sizeof *slots);
    b->slots = slots;
    b->arena = arena;
    b->what[0] = '\0';
    j_ws(&j);
    if (j.p >= j.end) {
        g_strlcpy(b->what, "empty line", sizeof b->what);
        return LINE_DAMAGED;
    }
    if (*j.p != '{') {
        g_snprintf(b->what, sizeof b->what, "not a JSON object (column 1)");
        return LINE_DAMAGED;
    }
    gboolean ok = j_value(&j, &root, 0, slots);
    if (ok) {
        j_ws(&j);
        if (j.p < j.end)
            ok = j_fail(&j, "text after the object");
    }
    if (!ok) {
        g_snprintf(b->what, sizeof b->what, "not JSON: %s at column %" G_GSIZE_FORMAT, j.error,
                   j.error_at + 1);
        return LINE_DAMAGED;
    }
    if (!get_int(b, F_V, &v) || slots[F_V] == NULL || slots[F_V]->type == J_NULL) {
        if (b->what[0] == '\0')
            bad(b, "v", "missing");
        return LINE_DAMAGED;
    }
    if (v != SHADOW_LOG_VERSION) {
        g_snprintf(b->what, sizeof b->what,
                   "format version %" G_GINT64_FORMAT " (this reader knows version %d)", v,
                   SHADOW_LOG_VERSION);
        return LINE_DAMAGED;
    }
    if (!need_str(b, F_TYPE, &type) || !need_str(b, F_TS, &tstext))
        return LINE_DAMAGED;
    if (!shadow_log_parse_time(tstext, strlen(tstext), ts)) {
        bad(b, "ts", "not an RFC 3339 time");
        return LINE_DAMAGED;
    }
    if (strcmp(type, "verdict") == 0)
        return LINE_VERDICT;
    if (strcmp(type, "message") == 0)
        return LINE_MESSAGE;
    if (strcmp(type, "connection") == 0)
        return LINE_CONNECTION;
    g_snprintf(b->what, sizeof b->what, "unknown record type \"%.64s\"", type);
    return LINE_DAMAGED;
}

/* parse_one - parse and check one raw line of a batch in place */
static void
parse_one(Batch *batch, Line *l)
{
    JNode *slots[F_COUNT];
    Build b;
    LineKind kind = parse_line(&batch->arena, l->text, l->len, slots, &l->ts, &b);
    if (kind != LINE_DAMAGED &&
        (!need_str(&b, F_HOST, &l->host) || !need_str(&b, F_CONN, &l->conn)))
        kind = LINE_DAMAGED;
    if ((kind == LINE_VERDICT || kind == LINE_MESSAGE) && !need_str(&b, F_MSG, &l->msg))
        kind = LINE_DAMAGED;
    if (kind == LINE_VERDICT) {
        memset(&l->verdict, 0, sizeof l->verdict);
        l->verdict.ts_ms = l->ts;
        if (!build_verdict(&b, &l->verdict))
            kind = LINE_DAMAGED;
    } else if (kind == LINE_MESSAGE) {
        memset(&l->message, 0, sizeof l->message);
        l->message.ts_ms = l->ts;
        l->message.host = l->host;
        l->message.conn = l->conn;
        if (!build_message(&b, &l->message))
            kind = LINE_DAMAGED;
    } else if (kind == LINE_CONNECTION) {
        memset(&l->connection, 0, sizeof l->connection);
        l->connection.ts_ms = l->ts;
        l->connection.host = l->host;
        l->connection.conn = l->conn;
        if (!build_connection(&b, &l->connection))
            kind = LINE_DAMAGED;
    }
    if (kind == LINE_DAMAGED) {
        gsize n = strlen(b.what);
        char *copy = arena_alloc(&batch->arena, n + 1);
        memcpy(copy, b.what, n + 1);
        l->what = copy;
    }
    l->kind = kind;
}

/* parse_batch - a worker: parse every raw line of a batch */
static void
parse_batch(gpointer data, gpointer user_data)
{
    Batch *b = data;
    Source *s = b->source;
    (void)user_data;
    for (guint k = 0; k < b->lines->len; k++) {
        Line *l = &g_array_index(b->lines, Line, k);
        if (l->kind == LINE_RAW)
            parse_one(b, l);
    }
    g_mutex_lock(&s->lock);
    b->parsed = TRUE;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
}

/* source_free - stop the splitter, free a source and its batches */
static void
source_free(gpointer p)
{
    Source *s = p;
    g_mutex_lock(&s->lock);
    s->stop = TRUE;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    if (s->splitter)
        g_thread_join(s->splitter);
    /* Every batch pushed to the workers is parsed before the pool lets go (reader_free). */
    g_queue_clear_full(&s->batches, batch_free);
    g_queue_clear_full(&s->spare, batch_free);
    batch_free(s->cur);
    g_ptr_array_unref(s->held);
    if (s->gz)
        gzclose(s->gz);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
    g_free(s->pending);
    g_free(s->buf);
    g_free(s->path);
    g_free(s);
}

/* shadow_log_reader_new - a reader with no files */
ShadowLogReader *
shadow_log_reader_new(void)
{
    ShadowLogReader *r = g_new0(ShadowLogReader, 1);
    tables_init();
    r->sources = g_ptr_array_new();
    r->since = G_MININT64;
    r->until = G_MAXINT64;
    return r;
}

/* shadow_log_reader_free - stop reading, close every file */
void
shadow_log_reader_free(ShadowLogReader *r)
{
    if (r == NULL)
        return;
    for (guint i = 0; i < r->sources->len; i++) {
        Source *s = g_ptr_array_index(r->sources, i);
        g_mutex_lock(&s->lock);
        s->stop = TRUE;
        g_cond_broadcast(&s->cond);
        g_mutex_unlock(&s->lock);
        if (s->splitter)
            g_thread_join(s->splitter);
        s->splitter = NULL;
    }
    if (r->workers)
        g_thread_pool_free(r->workers, FALSE, TRUE);
    for (guint i = 0; i < r->sources->len; i++)
        source_free(g_ptr_array_index(r->sources, i));
    g_ptr_array_unref(r->sources);
    g_free(r);
}

/* shadow_log_reader_set_damage_func - who is told of damaged lines */
void
shadow_log_reader_set_damage_func(ShadowLogReader *r, ShadowLogDamageFunc func, gpointer data)
{
    r->damage = func;
    r->damage_data = data;
}

/* shadow_log_reader_set_range - hand out only records with since <= ts < until */
void
shadow_log_reader_set_range(ShadowLogReader *r, gint64 since_ms, gint64 until_ms)
{
    r->since = since_ms;
    r->until = until_ms;
}

/* shadow_log_reader_set_tail - leave a torn last line and unfinished verdicts for later */
void
shadow_log_reader_set_tail(ShadowLogReader *r, gboolean tail)
{
    r->tail = tail;
}

/* shadow_log_reader_damaged - damaged lines so far */
guint64
shadow_log_reader_damaged(const ShadowLogReader *r)
{
    return r->damaged;
}

/* shadow_log_reader_add - read a file from its start */
gboolean
shadow_log_reader_add(ShadowLogReader *r, const char *path, GError **error)
{
    return shadow_log_reader_add_at(r, path, 0, 0, error);
}

/* shadow_log_reader_add_at - read a file from an uncompressed offset, first_line lines in */
gboolean
shadow_log_reader_add_at(ShadowLogReader *r, const char *path, guint64 offset, guint64 first_line,
                         GError **error)
{
    gzFile gz;
    if (strcmp(path, "-") == 0) {
        int fd = dup(0);
        gz = fd < 0 ? NULL : gzdopen(fd, "rb");
        if (gz == NULL && fd >= 0)
            close(fd);
    } else {
        gz = gzopen(path, "rb");
    }
    if (gz == NULL) {
        int e = errno;
        g_set_error(error, SHADOW_LOG_ERROR, SHADOW_LOG_ERROR_OPEN, "cannot open %s: %s", path,
                    e ? g_strerror(e) : "out of memory");
        return FALSE;
    }
    gzbuffer(gz, GZ_BUFFER_SIZE);
    if (offset > 0 && gzseek(gz, (z_off_t)offset, SEEK_SET) != (z_off_t)offset) {
        int zerr;
        const char *msg = gzerror(gz, &zerr);
        g_set_error(error, SHADOW_LOG_ERROR, SHADOW_LOG_ERROR_OPEN,
                    "cannot seek %s to byte %" G_GUINT64_FORMAT ": %s", path, offset,
                    zerr == Z_ERRNO ? g_strerror(errno)
                    : zerr          ? msg
                                    : "file is shorter");
        gzclose(gz);
        return FALSE;
    }
    Source *s = g_new0(Source, 1);
    s->path = g_strdup(path);
    s->gz = gz;
    s->reader = r;
    s->offset = s->committed_offset = offset;
    s->line = s->committed_line = first_line;
    s->order = r->sources->len;
    s->held = g_ptr_array_new_with_free_func(batch_free);
    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    g_queue_init(&s->batches);
    g_queue_init(&s->spare);
    g_ptr_array_add(r->sources, s);
    return TRUE;
}

/* start_sources - the first read: a splitter thread and workers for a few files, or each
 * file read on the consumer's thread when there are many */
static void
start_sources(ShadowLogReader *r)
{
    gboolean threads = r->sources->len <= MAX_THREADED_SOURCES;

    r->started = TRUE;
    if (threads && r->sources->len > 0)
        r->workers =
            g_thread_pool_new(parse_batch, NULL, (gint)MAX(1, g_get_num_processors()), FALSE, NULL);
    for (guint i = 0; i < r->sources->len; i++) {
        Source *s = g_ptr_array_index(r->sources, i);
        s->threaded = threads;
        s->batch_bytes = threads ? BATCH_BYTES : SYNC_BATCH_BYTES;
        s->cap = threads ? READ_BUFFER_SIZE : SYNC_READ_BUFFER_SIZE;
        s->buf = g_malloc(s->cap);
        if (threads)
            s->splitter = g_thread_new("shadow-logread", splitter_main, s);
    }
}

/* drop_pending - report verdicts that never got their message record */
static void
drop_pending(ShadowLogReader *r, Source *s, const char *why)
{
    if (s->n_pending == 0)
        return;
    char what[DAMAGE_TEXT_MAX];
    g_snprintf(what, sizeof what, "%u verdict record%s for message %.64s %s", s->n_pending,
               s->n_pending == 1 ? "" : "s", s->pending_msg, why);
    damage(r, s, s->pending_line, what);
    s->n_pending = 0;
}

/* same_message - a verdict or message belongs with the pending verdicts */
static gboolean
same_message(const Source *s, const char *host, const char *conn, const char *msg)
{
    return g_strcmp0(s->pending_host, host) == 0 && g_strcmp0(s->pending_conn, conn) == 0 &&
           g_strcmp0(s->pending_msg, msg) == 0;
}

/* next_line - the consumer's next parsed line of a source, waiting for it; NULL at the end
 * of the file (or a read error, in *error) */
static Line *
next_line(Source *s, GError **error)
{
    for (;;) {
        if (s->cur != NULL && s->cur_pos < s->cur->lines->len)
            return &g_array_index(s->cur->lines, Line, s->cur_pos++);
        if (s->cur != NULL && (s->cur->last || s->cur->error)) {
            if (s->cur->error)
                g_propagate_error(error, g_steal_pointer(&s->cur->error));
            return NULL;
        }
        /* Move to the next batch; verdicts still waiting keep the one they point into. */
        if (s->cur != NULL) {
            if (s->n_pending > 0)
                g_ptr_array_add(s->held, s->cur);
            else
                batch_recycle(s, s->cur);
            s->cur = NULL;
        }
        Batch *b;
        if (!s->threaded) {
            g_mutex_lock(&s->lock);
            b = g_queue_pop_head(&s->spare);
            g_mutex_unlock(&s->lock);
            if (b == NULL)
                b = batch_new(s);
            split_batch(s, b);
            parse_batch(b, NULL);
        } else {
            g_mutex_lock(&s->lock);
            while ((b = g_queue_peek_head(&s->batches)) == NULL || !b->parsed)
                g_cond_wait(&s->cond, &s->lock);
            g_queue_pop_head(&s->batches);
            g_cond_broadcast(&s->cond); /* room for the splitter */
            g_mutex_unlock(&s->lock);
        }
        s->cur = b;
        s->cur_pos = 0;
    }
}

/* commit - the resume point moves past a line unless verdicts are waiting */
static void
commit(Source *s, const Line *l)
{
    if (s->n_pending == 0) {
        s->committed_offset = l->end;
        s->committed_line = l->line;
    }
}

/* source_end - the file has ended: what is pending waits (tail mode) or is damage */
static void
source_end(ShadowLogReader *r, Source *s)
{
    if (r->tail && s->n_pending > 0) {
        s->committed_offset = s->pending_offset;
        s->committed_line = s->pending_line - 1;
    } else {
        drop_pending(r, s, "with no message record before the end of the file");
    }
    s->done = TRUE;
}

/* source_advance - the next record of a source into its head */
static gboolean
source_advance(ShadowLogReader *r, Source *s, GError **error)
{
    s->has_head = FALSE;
    if (s->done)
        return TRUE;
    if (s->n_pending == 0 && s->held->len > 0)
        g_ptr_array_set_size(s->held, 0);
    for (;;) {
        Line *l = next_line(s, error);
        if (l == NULL) {
            if (error && *error) {
                s->done = TRUE;
                return FALSE;
            }
            source_end(r, s);
            return TRUE;
        }
        if (l->kind == LINE_TORN) {
            if (r->tail) {
                if (s->n_pending == 0) {
                    s->committed_offset = l->start;
                    s->committed_line = l->line - 1;
                }
                source_end(r, s);
                return TRUE;
            }
            damage(r, s, l->line, "torn line (no newline at the end of the file)");
            source_end(r, s);
            return TRUE;
        }
        if (s->n_pending > 0 && ++s->pending_lines > MAX_PENDING_LINES)
            drop_pending(r, s, "followed by too many lines without their message record");
        if (l->kind == LINE_NOTE || l->kind == LINE_DAMAGED) {
            damage(r, s, l->line, l->what);
            commit(s, l);
            continue;
        }
        if (l->kind == LINE_VERDICT || l->kind == LINE_MESSAGE) {
            if (s->n_pending > 0 && !same_message(s, l->host, l->conn, l->msg))
                drop_pending(r, s, "followed by another message's records");
        } else if (s->n_pending > 0) {
            drop_pending(r, s, "followed by a connection record");
        }
        if (l->kind == LINE_VERDICT) {
            if (s->n_pending >= SHADOW_LOG_MAX_VERDICTS) {
                drop_pending(r, s, "exceed the limit of verdicts per message");
                commit(s, l);
                continue;
            }
            if (s->pending == NULL)
                s->pending = g_new(ShadowLogVerdict, SHADOW_LOG_MAX_VERDICTS);
            if (s->n_pending == 0) {
                /* Nothing points into earlier batches any more (dropped verdicts did). */
                g_ptr_array_set_size(s->held, 0);
                s->pending_host = l->host;
                s->pending_conn = l->conn;
                s->pending_msg = l->msg;
                s->pending_line = l->line;
                s->pending_offset = l->start;
                s->pending_lines = 0;
            }
            s->pending[s->n_pending++] = l->verdict;
            continue;
        }
        ShadowLogRecord *rec = &s->head;
        rec->file = s->path;
        rec->line = l->line;
        if (l->kind == LINE_CONNECTION) {
            rec->kind = SHADOW_LOG_CONNECTION;
            rec->connection = l->connection;
        } else {
            rec->kind = SHADOW_LOG_MESSAGE;
            rec->message = l->message;
            rec->message.verdicts = s->pending;
            rec->message.n_verdicts = s->n_pending;
            s->n_pending = 0; /* the array is reused once the record has been handed out */
        }
        commit(s, l);
        s->has_head = TRUE;
        s->head_ts = l->ts;
        return TRUE;
    }
}

/* shadow_log_reader_next - the earliest record of all files, or NULL at the end */
const ShadowLogRecord *
shadow_log_reader_next(ShadowLogReader *r, GError **error)
{
    if (!r->started)
        start_sources(r);
    /* First call: every source offers its first record. */
    if (r->last == NULL) {
        for (guint i = 0; i < r->sources->len; i++) {
            Source *s = g_ptr_array_index(r->sources, i);
            if (!s->has_head && !s->done && !source_advance(r, s, error))
                return NULL;
        }
    } else {
        Source *last = r->last;
        r->last = NULL;
        if (!source_advance(r, last, error))
            return NULL;
    }
    for (;;) {
        Source *best = NULL;
        for (guint i = 0; i < r->sources->len; i++) {
            Source *s = g_ptr_array_index(r->sources, i);
            if (s->has_head && (best == NULL || s->head_ts < best->head_ts))
                best = s;
        }
        if (best == NULL) {
            r->last = NULL;
            return NULL;
        }
        if (best->head_ts >= r->since && best->head_ts < r->until) {
            r->last = best;
            return &best->head;
        }
        if (!source_advance(r, best, error))
            return NULL;
    }
}

/* shadow_log_reader_resume_offset - where to start reading path next time, and lines before it */
guint64
shadow_log_reader_resume_offset(const ShadowLogReader *r, const char *path, guint64 *line)
{
    for (guint i = 0; i < r->sources->len; i++) {
        const Source *s = g_ptr_array_index(r->sources, i);
        if (strcmp(s->path, path) == 0) {
            if (line)
                *line = s->committed_line;
            return s->committed_offset;
        }
    }
    if (line)
        *line = 0;
    return 0;
}

/* edit_code - the SMFIR_* code of an edit op */
static guint8
edit_code(const ShadowLogEdit *e)
{
    static const struct {
        const char *op;
        guint8 code;
    } ops[] = {
        { "add_header", SMFIR_ADDHEADER },    { "insert_header", SMFIR_INSHEADER },
        { "change_header", SMFIR_CHGHEADER }, { "delete_header", SMFIR_CHGHEADER },
        { "replace_body", SMFIR_REPLBODY },   { "change_from", SMFIR_CHGFROM },
        { "add_rcpt", SMFIR_ADDRCPT },        { "delete_rcpt", SMFIR_DELRCPT },
    };
    for (gsize k = 0; k < G_N_ELEMENTS(ops); k++)
        if (strcmp(ops[k].op, e->op) == 0)
            return e->args && ops[k].code == SMFIR_ADDRCPT ? SMFIR_ADDRCPT_PAR : ops[k].code;
    return 0;
}

/* shadow_log_verdict_to_verdict - a ShadowVerdict for shadow_predict(); free with shadow_verdict_free */
ShadowVerdict *
shadow_log_verdict_to_verdict(const ShadowLogVerdict *lv)
{
    ShadowVerdict *v = shadow_verdict_new(lv->milter);
    v->action = lv->action;
    v->stage = lv->stage;
    v->connection = lv->connection;
    v->reply = g_strdup(lv->reply);
    v->reason = g_strdup(lv->reason);
    v->quarantine = g_strdup(lv->quarantine);
    for (guint k = 0; k < lv->n_rcpts; k++)
        shadow_verdict_refuse_rcpt(v, lv->rcpts[k].rcpt, lv->rcpts[k].action, lv->rcpts[k].reply);
    for (guint k = 0; k < lv->n_edits; k++) {
        const ShadowLogEdit *e = &lv->edits[k];
        guint8 code = edit_code(e);
        char size[32];
        const char *name = e->name, *value = e->value;
        if (code == 0)
            continue; /* an edit op of a later format: not part of the fold */
        if (code == SMFIR_REPLBODY) {
            g_snprintf(size, sizeof size, "%" G_GINT64_FORMAT, MAX(e->size, 0));
            name = NULL;
            value = size;
        } else if (code == SMFIR_CHGFROM || code == SMFIR_ADDRCPT || code == SMFIR_ADDRCPT_PAR ||
                   code == SMFIR_DELRCPT) {
            name = e->addr;
            value = e->args;
        } else if (strcmp(e->op, "delete_header") == 0) {
            value = "";
        }
        shadow_verdict_add_edit(v, code, e->index > 0 ? (guint32)e->index : 0, name, value);
    }
    for (int s = 0; s < SHADOW_STAGE_COUNT; s++)
        v->latency_us[s] = lv->latency_us[s] > 0 ? (guint64)lv->latency_us[s] : 0;
    return v;
}
