/*
 * json_depth: a guard run before cJSON parses anything that arrives over
 * HTTP. cJSON recurses once per nesting level and allows 1000 of them, while
 * civetweb's worker threads have small stacks: a 60 KB body of `[[[[…` crashed
 * the process. This scan (strings skipped, no allocation) refuses such input
 * first. Pure; keeps nothing.
 */
#ifndef LEADBUS_JSON_DEPTH_H
#define LEADBUS_JSON_DEPTH_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_DEPTH_MAX 32 /* deeper than any lead, callback or API answer needs */

/* False when arrays/objects in `text` nest deeper than `max`. */
bool json_depth_ok(const char *text, size_t len, int max);

#endif
