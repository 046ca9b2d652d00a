/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	log - shadowd's diagnostics: syslog, and stderr in the foreground
 * DESCRIPTION
 *	Postfix's wording: subject first, lower case, no full stop. Warnings
 *	are about peers and files, never fatal; shadow_log_fatal() is for
 *	main() only, before the loop runs.
 */
#ifndef SHADOWD_LOG_H
#define SHADOWD_LOG_H

/* GLib. */
#include <glib.h>

void shadow_log_open(const char *ident, int facility, gboolean to_stderr);
void shadow_log_info(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void shadow_log_warning(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void shadow_log_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void shadow_log_debug(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void shadow_log_set_debug(gboolean on);

#endif /* SHADOWD_LOG_H */
