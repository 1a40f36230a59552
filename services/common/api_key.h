/*
 * api_key: the keys that open leadbus's protected endpoints (X-API-Key).
 *
 * Keys come from API_KEYS (comma-separated). When it is unset, the first
 * start generates a random key, stores it in DATA_DIR/api_key (mode 0600) and
 * prints it once on stdout; later starts read it back. An endpoint is never
 * open without a key. Comparison takes the same time wherever the keys differ.
 * The key set owns its strings; free it with api_keys_free().
 */
#ifndef LEADBUS_API_KEY_H
#define LEADBUS_API_KEY_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

struct api_keys;

int api_keys_load(const char *data_dir, struct api_keys **out, char err[CONFIG_ERR_MAX]);
void api_keys_free(struct api_keys *k);

/* True if `presented` (may be NULL) equals one of the keys. */
bool api_keys_check(const struct api_keys *k, const char *presented);

/* Constant-time in the contents: time depends only on the lengths. */
bool api_key_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
