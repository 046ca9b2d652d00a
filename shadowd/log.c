/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	log - shadowd's diagnostics: syslog, and stderr in the foreground
 */

/* Build configuration. */
#include "config.h"

/* System library. */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

/* Application-specific. */
#include "log.h"

static gboolean log_stderr;
static gboolean log_debug;
static gboolean log_syslog;

/* shadow_log_open - start logging to syslog (and stderr) */
void
shadow_log_open(const char *ident, int facility, gboolean to_stderr)
{
    static char saved_ident[64];

    g_strlcpy(saved_ident, ident, sizeof(saved_ident));
    openlog(saved_ident, LOG_PID | LOG_NDELAY, facility);
    log_syslog = TRUE;
    log_stderr = to_stderr;
}

/* shadow_log_set_debug - also log debug lines */
void
shadow_log_set_debug(gboolean on)
{
    log_debug = on;
}

/* vlog - one line to each sink */
static void
vlog(int priority, const char *tag, const char *fmt, va_list ap)
{
    g_autofree char *line = g_strdup_vprintf(fmt, ap);

    if (log_syslog)
        syslog(priority, "%s%s", tag, line);
    if (log_stderr || !log_syslog) {
        g_autoptr(GDateTime) now = g_date_time_new_now_utc();
        g_autofree char *ts = g_date_time_format(now, "%H:%M:%S.%f");

        fprintf(stderr, "shadowd %.12s %s%s\n", ts, tag, line);
        fflush(stderr);
    }
}

/* shadow_log_info - an ordinary event */
void
shadow_log_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(LOG_INFO, "", fmt, ap);
    va_end(ap);
}

/* shadow_log_warning - a peer or a file misbehaved; shadowd carries on */
void
shadow_log_warning(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(LOG_WARNING, "warning: ", fmt, ap);
    va_end(ap);
}

/* shadow_log_error - something shadowd itself could not do */
void
shadow_log_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(LOG_ERR, "error: ", fmt, ap);
    va_end(ap);
}

/* shadow_log_debug - detail for -v */
void
shadow_log_debug(const char *fmt, ...)
{
    va_list ap;

    if (!log_debug)
        return;
    va_start(ap, fmt);
    vlog(LOG_DEBUG, "debug: ", fmt, ap);
    va_end(ap);
}
