/*
 * form_access: what a web page may do with leadbus, and from where.
 *
 * FORM_KEYS are publishable keys: a page's JavaScript carries them, so they
 * open POST /leads and nothing else (every other route answers 403). A key
 * may be bound to one origin ("key@https://shop.example"): a browser request
 * carrying it from another origin is refused. CORS_ALLOWED_ORIGINS lists the
 * origins whose pages may call the form routes cross-origin; empty (the
 * default) means no CORS at all. Origins are parsed with libcurl's URL API
 * and kept as "scheme://host[:port]", the form browsers send.
 *
 * Pure data and parsing; the HTTP layer (http.c) applies it. API_KEYS remain
 * the operator keys (api_key.h). Keys are compared in constant time.
 */
#ifndef LEADBUS_FORM_ACCESS_H
#define LEADBUS_FORM_ACCESS_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

#define FORM_KEYS_MAX 16
#define FORM_ORIGINS_MAX 16
#define FORM_KEY_MAX 256
#define FORM_ORIGIN_MAX 256

struct form_key {
    char key[FORM_KEY_MAX];
    size_t len;
    char origin[FORM_ORIGIN_MAX]; /* "" when the key is not bound to an origin */
    char id[24];                  /* "form-1", "form-2": names the key in logs and events */
};

struct form_access {
    struct form_key keys[FORM_KEYS_MAX];
    int nkeys;
    char origins[FORM_ORIGINS_MAX][FORM_ORIGIN_MAX];
    int norigins;
};

/*
 * Parse FORM_KEYS and CORS_ALLOWED_ORIGINS (either may be NULL or empty).
 * Fails with `err` naming the variable for a key of the wrong length, an
 * origin that is not an http(s) origin, or a key bound to an origin that
 * CORS_ALLOWED_ORIGINS does not list (its page could never use it).
 */
int form_access_parse(const char *keys, const char *origins, struct form_access *fa,
                      char err[CONFIG_ERR_MAX]);

/* The form key `presented` is (NULL when none): every key is compared, in constant time. */
const struct form_key *form_access_key(const struct form_access *fa, const char *presented);

/* Is `origin` (the Origin header, may be NULL) one CORS_ALLOWED_ORIGINS lists? */
bool form_access_origin_allowed(const struct form_access *fa, const char *origin);

/* "HTTPS://Shop.Example:443/" -> "https://shop.example"; -1 if not an http(s) origin. */
int form_origin_normalize(const char *in, char out[FORM_ORIGIN_MAX]);

#endif
