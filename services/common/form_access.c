/* form_access: FORM_KEYS and CORS_ALLOWED_ORIGINS, parsed and checked. */
#include "form_access.h"
#include "api_key.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Copy the next comma-separated item of *p into out (trimmed); false at the end. */
static bool next_item(const char **p, char *out, size_t size, bool *too_long)
{
    while (**p == ',' || **p == ' ' || **p == '\t') {
        (*p)++;
    }
    if (**p == '\0') {
        return false;
    }
    size_t n = strcspn(*p, ",");
    size_t end = n;
    while (end > 0 && isspace((unsigned char)(*p)[end - 1])) {
        end--;
    }
    *too_long = end >= size;
    snprintf(out, size, "%.*s", (int)(end < size ? end : size - 1), *p);
    *p += n;
    return true;
}

int form_origin_normalize(const char *in, char out[FORM_ORIGIN_MAX])
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, *user = NULL;
    int rc = -1;
    if (u == NULL || curl_url_set(u, CURLUPART_URL, in, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        goto out;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    bool web = strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0;
    bool bare = (path == NULL || strcmp(path, "/") == 0) && query == NULL && user == NULL;
    bool default_port = port == NULL ||
                        (strcasecmp(scheme, "https") == 0 && strcmp(port, "443") == 0) ||
                        (strcasecmp(scheme, "http") == 0 && strcmp(port, "80") == 0);
    if (!web || !bare || host[0] == '\0') {
        goto out;
    }
    int n = snprintf(out, FORM_ORIGIN_MAX, "%s://%s%s%s", scheme, host, default_port ? "" : ":",
                     default_port ? "" : port);
    if (n > 0 && n < FORM_ORIGIN_MAX) {
        for (char *c = out; *c != '\0'; c++) {
            *c = (char)tolower((unsigned char)*c);
        }
        rc = 0;
    }
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

static int parse_origins(const char *list, struct form_access *fa, char err[CONFIG_ERR_MAX])
{
    char item[FORM_ORIGIN_MAX];
    bool too_long;
    for (const char *p = list ? list : ""; next_item(&p, item, sizeof item, &too_long);) {
        if (too_long || fa->norigins == FORM_ORIGINS_MAX ||
            form_origin_normalize(item, fa->origins[fa->norigins]) != 0) {
            snprintf(err, CONFIG_ERR_MAX,
                     "CORS_ALLOWED_ORIGINS: expected up to %d origins such as "
                     "https://shop.example (scheme, host, port; no path), got '%.60s'",
                     FORM_ORIGINS_MAX, item);
            return -1;
        }
        fa->norigins++;
    }
    return 0;
}

/* "key" or "key@https://origin": the origin starts at the last "@http". */
static int parse_key(const char *item, struct form_access *fa, char err[CONFIG_ERR_MAX])
{
    struct form_key *k = &fa->keys[fa->nkeys];
    const char *at = NULL;
    for (const char *s = strstr(item, "@http"); s != NULL; s = strstr(s + 1, "@http")) {
        at = s;
    }
    size_t len = at != NULL ? (size_t)(at - item) : strlen(item);
    if (len < 16 || len >= FORM_KEY_MAX) {
        snprintf(err, CONFIG_ERR_MAX,
                 "FORM_KEYS: key %d: expected 16 to %d characters, optionally @https://origin",
                 fa->nkeys + 1, FORM_KEY_MAX - 1);
        return -1;
    }
    memcpy(k->key, item, len);
    k->key[len] = '\0';
    k->len = len;
    snprintf(k->id, sizeof k->id, "form-%d", (fa->nkeys + 1) % 100);
    if (at != NULL && (form_origin_normalize(at + 1, k->origin) != 0 ||
                       !form_access_origin_allowed(fa, k->origin))) {
        snprintf(err, CONFIG_ERR_MAX,
                 "FORM_KEYS: key %d is bound to '%.80s', which is not an origin that "
                 "CORS_ALLOWED_ORIGINS lists",
                 fa->nkeys + 1, at + 1);
        return -1;
    }
    fa->nkeys++;
    return 0;
}

int form_access_parse(const char *keys, const char *origins, struct form_access *fa,
                      char err[CONFIG_ERR_MAX])
{
    memset(fa, 0, sizeof *fa);
    if (parse_origins(origins, fa, err) != 0) {
        return -1;
    }
    char item[FORM_KEY_MAX + FORM_ORIGIN_MAX + 2];
    bool too_long;
    for (const char *p = keys ? keys : ""; next_item(&p, item, sizeof item, &too_long);) {
        if (too_long || fa->nkeys == FORM_KEYS_MAX) {
            snprintf(err, CONFIG_ERR_MAX, "FORM_KEYS: expected up to %d comma-separated keys",
                     FORM_KEYS_MAX);
            return -1;
        }
        if (parse_key(item, fa, err) != 0) {
            return -1;
        }
    }
    return 0;
}

const struct form_key *form_access_key(const struct form_access *fa, const char *presented)
{
    if (presented == NULL) {
        return NULL;
    }
    size_t plen = strnlen(presented, FORM_KEY_MAX);
    const struct form_key *found = NULL;
    for (int i = 0; i < fa->nkeys; i++) {
        bool eq = api_key_equal(presented, plen, fa->keys[i].key, fa->keys[i].len);
        found = eq ? &fa->keys[i] : found;
    }
    return found;
}

bool form_access_origin_allowed(const struct form_access *fa, const char *origin)
{
    for (int i = 0; origin != NULL && i < fa->norigins; i++) {
        if (strcmp(origin, fa->origins[i]) == 0) {
            return true;
        }
    }
    return false;
}
