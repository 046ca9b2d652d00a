/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	probe - shadowd --probe: negotiate with each child and say what it wants
 */
#ifndef SHADOWD_PROBE_H
#define SHADOWD_PROBE_H

/* Shadow libraries. */
#include "shadow_config.h"

gboolean shadow_probe(const ShadowConfig *config);

#endif /* SHADOWD_PROBE_H */
