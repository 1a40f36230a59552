/* sources_parse: signatures, JSON-path mappings and Meta's payloads, without I/O. */
#include "sources_parse.h"
#include "api_key.h"
#include "json_depth.h"

#include <ctype.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- signatures ---- */

const char *source_sig_name(enum source_sig s)
{
    static const char *const names[] = {"ok", "missing", "malformed", "mismatch"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

enum source_sig source_sig_check(const unsigned char *key, size_t key_len, const char *body,
                                 size_t len, const char *header)
{
    if (header == NULL || header[0] == '\0') {
        return SOURCE_SIG_MISSING;
    }
    const char *hex = strncmp(header, "sha256=", 7) == 0 ? header + 7 : header;
    unsigned char given[32], want[EVP_MAX_MD_SIZE];
    if (strlen(hex) != 2 * sizeof given) {
        return SOURCE_SIG_MALFORMED;
    }
    for (size_t i = 0; i < sizeof given; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return SOURCE_SIG_MALFORMED;
        }
        given[i] = (unsigned char)(hi << 4 | lo);
    }
    unsigned int want_len = 0;
    if (key_len == 0 ||
        HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)body, len, want, &want_len) ==
            NULL ||
        want_len != sizeof given) {
        return SOURCE_SIG_MISMATCH;
    }
    bool ok = CRYPTO_memcmp(want, given, sizeof given) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok ? SOURCE_SIG_OK : SOURCE_SIG_MISMATCH;
}

/* ---- JSON paths and mappings ---- */

static bool key_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

int source_path_parse(const char *s, size_t len, struct source_path *p)
{
    memset(p, 0, sizeof *p);
    if (len == 0 || s[0] != '$') {
        return -1;
    }
    size_t i = 1;
    while (i < len) {
        if (p->nsegs == SOURCE_PATH_SEGS) {
            return -1;
        }
        if (s[i] == '.') {
            size_t start = ++i;
            while (i < len && key_char(s[i])) {
                i++;
            }
            size_t n = i - start;
            if (n == 0 || n >= SOURCE_KEY_MAX) {
                return -1;
            }
            memcpy(p->seg[p->nsegs].key, s + start, n);
            p->seg[p->nsegs].index = -1;
        } else if (s[i] == '[') {
            long v = 0;
            size_t start = ++i;
            while (i < len && isdigit((unsigned char)s[i]) && i - start < 6) {
                v = v * 10 + (s[i] - '0');
                i++;
            }
            if (i == start || i >= len || s[i] != ']') {
                return -1;
            }
            i++;
            p->seg[p->nsegs].index = (int)v;
        } else {
            return -1;
        }
        p->nsegs++;
    }
    return 0;
}

const cJSON *source_path_get(const cJSON *root, const struct source_path *p)
{
    const cJSON *it = root;
    for (int i = 0; it != NULL && i < p->nsegs; i++) {
        if (p->seg[i].index >= 0) {
            it = cJSON_IsArray(it) ? cJSON_GetArrayItem(it, p->seg[i].index) : NULL;
        } else {
            it = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, p->seg[i].key) : NULL;
        }
    }
    return it;
}

int source_scalar(const cJSON *it, char *out, size_t size)
{
    int n;
    if (cJSON_IsString(it)) {
        n = snprintf(out, size, "%s", it->valuestring);
    } else if (cJSON_IsBool(it)) {
        n = snprintf(out, size, "%s", cJSON_IsTrue(it) ? "true" : "false");
    } else if (cJSON_IsNumber(it) && isfinite(it->valuedouble)) {
        double d = it->valuedouble;
        /* Phone numbers and ids sent as numbers: whole numbers without exponent or ".0". */
        n = d == floor(d) && fabs(d) < 1e17 ? snprintf(out, size, "%.0f", d)
                                            : snprintf(out, size, "%.17g", d);
    } else {
        return -1;
    }
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Not `source`: a webhook's leads carry its name there, and it keys their idempotency. */
static const char *const map_fields[] = {"name",    "firstName", "lastName", "phone", "email",
                                         "company", "city",      "notes",    NULL};

static bool map_field_ok(const char *f)
{
    if (strncmp(f, "extra.", 6) == 0) {
        const char *k = f + 6;
        if (*k == '\0') {
            return false;
        }
        for (; *k; k++) {
            if (!key_char(*k)) {
                return false;
            }
        }
        return true;
    }
    for (int i = 0; map_fields[i] != NULL; i++) {
        if (strcmp(f, map_fields[i]) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * The next non-empty item of a comma-separated list, blanks trimmed: *item and
 * *n; *p moves past it. False at the end.
 */
static bool next_item(const char **p, const char **item, size_t *n)
{
    while (**p != '\0') {
        size_t len = strcspn(*p, ",");
        const char *start = *p;
        *p += len;
        if (**p == ',') {
            (*p)++;
        }
        while (len > 0 && (*start == ' ' || *start == '\t')) {
            start++;
            len--;
        }
        while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t')) {
            len--;
        }
        if (len > 0) {
            *item = start;
            *n = len;
            return true;
        }
    }
    return false;
}

static void field_refused(const char *field, char *err, size_t err_size)
{
    snprintf(err, err_size,
             "'%s' is not a lead field (name, firstName, lastName, phone, email, company, city, "
             "notes, extra.<key>)",
             field);
}

int source_map_parse(const char *spec, struct source_map *m, char *err, size_t err_size)
{
    memset(m, 0, sizeof *m);
    const char *p = spec, *item;
    size_t n;
    while (next_item(&p, &item, &n)) {
        const char *eq = memchr(item, '=', n);
        size_t flen = eq != NULL ? (size_t)(eq - item) : 0;
        if (m->n == SOURCE_MAP_MAX) {
            snprintf(err, err_size, "more than %d mappings", SOURCE_MAP_MAX);
            return -1;
        }
        if (eq == NULL || flen == 0 || flen >= sizeof m->e[0].field) {
            snprintf(err, err_size, "'%.*s' is not field=$.path", (int)(n > 60 ? 60 : n), item);
            return -1;
        }
        memcpy(m->e[m->n].field, item, flen);
        m->e[m->n].field[flen] = '\0';
        if (!map_field_ok(m->e[m->n].field)) {
            field_refused(m->e[m->n].field, err, err_size);
            return -1;
        }
        for (int i = 0; i < m->n; i++) {
            if (strcmp(m->e[i].field, m->e[m->n].field) == 0) {
                snprintf(err, err_size, "'%s' is mapped twice", m->e[i].field);
                return -1;
            }
        }
        if (source_path_parse(eq + 1, n - flen - 1, &m->e[m->n].path) != 0) {
            snprintf(err, err_size, "'%.*s' is not a path such as $.contact.phone or $.items[0].id",
                     (int)(n - flen - 1 > 60 ? 60 : n - flen - 1), eq + 1);
            return -1;
        }
        m->n++;
    }
    if (m->n == 0) {
        snprintf(err, err_size, "no mapping (expected field=$.path,...)");
        return -1;
    }
    return 0;
}

static cJSON *parse_object(const char *body, size_t len, struct lead_parse_result *r)
{
    if (!json_depth_ok(body, len, JSON_DEPTH_MAX)) {
        snprintf(r->message, sizeof r->message, "JSON nested deeper than %d levels",
                 JSON_DEPTH_MAX);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (root == NULL) {
        size_t at = end != NULL && end >= body ? (size_t)(end - body) : 0;
        snprintf(r->message, sizeof r->message, "malformed JSON near byte %zu", at);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(r->message, sizeof r->message, "the body must be a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* The mapped object, printed, through lead_parse: a mapped lead obeys POST /leads's rules. */
static enum lead_parse_status parse_mapped(cJSON *lead, const char *region,
                                           struct lead_parse_result *r)
{
    char *text = cJSON_PrintUnformatted(lead);
    if (text == NULL) {
        memset(r, 0, sizeof *r);
        snprintf(r->message, sizeof r->message, "out of memory");
        return LEAD_MALFORMED;
    }
    enum lead_parse_status st = lead_parse(text, strlen(text), region, r);
    free(text);
    return st;
}

enum lead_parse_status source_map_lead(const struct source_map *m,
                                       const struct source_path *ref_path, const char *body,
                                       size_t len, const char *region, struct lead_parse_result *r,
                                       char *ref, size_t ref_size)
{
    memset(r, 0, sizeof *r);
    ref[0] = '\0';
    cJSON *root = parse_object(body, len, r);
    if (root == NULL) {
        return LEAD_MALFORMED;
    }
    cJSON *lead = cJSON_CreateObject();
    cJSON *extra = NULL;
    char value[8192];
    for (int i = 0; lead != NULL && i < m->n; i++) {
        const cJSON *it = source_path_get(root, &m->e[i].path);
        if (it == NULL || cJSON_IsNull(it) || source_scalar(it, value, sizeof value) != 0) {
            continue; /* absent (or not a scalar): lead_parse names what is then missing */
        }
        if (strncmp(m->e[i].field, "extra.", 6) == 0) {
            if (extra == NULL) {
                extra = cJSON_AddObjectToObject(lead, "extra");
            }
            cJSON_AddStringToObject(extra, m->e[i].field + 6, value);
        } else {
            cJSON_AddStringToObject(lead, m->e[i].field, value);
        }
    }
    const cJSON *ref_item = source_path_get(root, ref_path);
    bool ref_ok = ref_item != NULL && source_scalar(ref_item, ref, ref_size) == 0 && ref[0] != '\0';
    cJSON_Delete(root);
    if (lead == NULL) {
        snprintf(r->message, sizeof r->message, "out of memory");
        return LEAD_MALFORMED;
    }
    enum lead_parse_status st = parse_mapped(lead, region, r);
    cJSON_Delete(lead);
    if (st == LEAD_MALFORMED) {
        return st;
    }
    if (!ref_ok) {
        ref[0] = '\0';
        if (r->fields == NULL) {
            r->fields = cJSON_CreateObject();
        }
        cJSON_AddStringToObject(r->fields, "sourceRef",
                                "missing, empty or too long at the source's SOURCE_<NAME>_ID path");
        snprintf(r->message, sizeof r->message, "the lead has invalid fields");
        return LEAD_INVALID;
    }
    return st;
}

/* ---- Meta Lead Ads ---- */

bool meta_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= META_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)id[i])) {
            return false;
        }
    }
    return true;
}

bool meta_verify_ok(const char *mode, const char *token, const char *expected)
{
    if (mode == NULL || token == NULL || expected == NULL || expected[0] == '\0') {
        return false;
    }
    bool token_ok = api_key_equal(token, strlen(token), expected, strlen(expected));
    return strcmp(mode, "subscribe") == 0 && token_ok;
}

static void id_of(const cJSON *obj, const char *name, char out[META_ID_MAX])
{
    out[0] = '\0';
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (it != NULL && (cJSON_IsString(it) || cJSON_IsNumber(it)) &&
        source_scalar(it, out, META_ID_MAX) != 0) {
        out[0] = '\0';
    }
}

enum meta_parse_status meta_parse_delivery(const char *body, size_t len, struct meta_change *out,
                                           int max, int *n, int *ignored, char *err,
                                           size_t err_size)
{
    *n = 0;
    *ignored = 0;
    struct lead_parse_result *scratch = calloc(1, sizeof *scratch);
    if (scratch == NULL) {
        snprintf(err, err_size, "out of memory");
        return META_PARSE_MALFORMED;
    }
    cJSON *root = parse_object(body, len, scratch);
    snprintf(err, err_size, "%s", scratch->message);
    free(scratch);
    if (root == NULL) {
        return META_PARSE_MALFORMED;
    }
    enum meta_parse_status rc = META_PARSE_OK;
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(root, "entry");
    if (!cJSON_IsArray(entries)) {
        snprintf(err, err_size, "no \"entry\" array");
        rc = META_PARSE_MALFORMED;
        goto out;
    }
    const cJSON *entry;
    cJSON_ArrayForEach(entry, entries)
    {
        const cJSON *changes = cJSON_GetObjectItemCaseSensitive(entry, "changes");
        if (!cJSON_IsObject(entry) || !cJSON_IsArray(changes)) {
            (*ignored)++; /* an entry of another kind (messaging, …) */
            continue;
        }
        const cJSON *ch;
        cJSON_ArrayForEach(ch, changes)
        {
            const cJSON *field = cJSON_GetObjectItemCaseSensitive(ch, "field");
            const cJSON *value = cJSON_GetObjectItemCaseSensitive(ch, "value");
            if (!cJSON_IsString(field) || strcmp(field->valuestring, "leadgen") != 0) {
                (*ignored)++;
                continue;
            }
            if (*n == max) {
                snprintf(err, err_size, "more than %d leadgen changes in one delivery", max);
                rc = META_PARSE_MALFORMED;
                goto out;
            }
            struct meta_change *c = &out[*n];
            memset(c, 0, sizeof *c);
            if (cJSON_IsObject(value)) {
                id_of(value, "leadgen_id", c->leadgen_id);
                id_of(value, "page_id", c->page_id);
                id_of(value, "form_id", c->form_id);
            }
            if (!meta_id_ok(c->leadgen_id)) {
                snprintf(err, err_size, "a leadgen change without a numeric leadgen_id");
                rc = META_PARSE_MALFORMED;
                goto out;
            }
            (*n)++;
        }
    }
out:
    cJSON_Delete(root);
    if (rc != META_PARSE_OK) {
        *n = 0;
    }
    return rc;
}

/* Meta's standard questions and the POST /leads field each fills. */
static const struct {
    const char *meta, *lead;
} meta_fields[] = {
    {"full_name", "name"},       {"first_name", "firstName"}, {"last_name", "lastName"},
    {"phone_number", "phone"},   {"email", "email"},          {"city", "city"},
    {"company_name", "company"},
};

/* values[] as one string: the values joined with ", ". */
static int join_values(const cJSON *values, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    const cJSON *v;
    cJSON_ArrayForEach(v, values)
    {
        char one[2048];
        if (source_scalar(v, one, sizeof one) != 0) {
            continue;
        }
        int w = snprintf(out + n, size - n, "%s%s", n > 0 ? ", " : "", one);
        if (w < 0 || (size_t)w >= size - n) {
            return -1;
        }
        n += (size_t)w;
    }
    return 0;
}

int meta_field_map_parse(const char *spec, struct meta_field_map *m, char *err, size_t err_size)
{
    memset(m, 0, sizeof *m);
    const char *p = spec, *item;
    size_t n;
    while (next_item(&p, &item, &n)) {
        const char *eq = memchr(item, '=', n);
        size_t qlen = eq != NULL ? (size_t)(eq - item) : 0, flen = eq != NULL ? n - qlen - 1 : 0;
        if (m->n == META_FIELD_MAP_MAX) {
            snprintf(err, err_size, "more than %d mappings", META_FIELD_MAP_MAX);
            return -1;
        }
        if (eq == NULL || qlen == 0 || qlen >= sizeof m->e[0].question || flen == 0 ||
            flen >= sizeof m->e[0].field) {
            snprintf(err, err_size, "'%.*s' is not question=field", (int)(n > 60 ? 60 : n), item);
            return -1;
        }
        memcpy(m->e[m->n].question, item, qlen);
        memcpy(m->e[m->n].field, eq + 1, flen);
        if (!map_field_ok(m->e[m->n].field)) {
            field_refused(m->e[m->n].field, err, err_size);
            return -1;
        }
        m->n++;
    }
    if (m->n == 0) {
        snprintf(err, err_size, "no mapping (expected question=field,...)");
        return -1;
    }
    return 0;
}

/* The lead field question `q` fills: the form's map, then Meta's standard names; NULL: extra. */
static const char *meta_field_of(const struct meta_field_map *map, const char *q)
{
    for (int i = 0; map != NULL && i < map->n; i++) {
        if (strcmp(map->e[i].question, q) == 0) {
            return map->e[i].field;
        }
    }
    for (size_t i = 0; i < sizeof meta_fields / sizeof meta_fields[0]; i++) {
        if (strcmp(q, meta_fields[i].meta) == 0) {
            return meta_fields[i].lead;
        }
    }
    return NULL;
}

enum meta_lead_status meta_parse_lead(const char *body, size_t len, const char *region,
                                      const struct meta_field_map *map, struct lead_parse_result *r,
                                      int *graph_code)
{
    memset(r, 0, sizeof *r);
    *graph_code = 0;
    cJSON *root = parse_object(body, len, r);
    if (root == NULL) {
        return META_LEAD_MALFORMED;
    }
    enum meta_lead_status rc = META_LEAD_OK;
    cJSON *lead = NULL;
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(error)) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(error, "message");
        *graph_code = cJSON_IsNumber(code) ? code->valueint : 0;
        snprintf(r->message, sizeof r->message, "%.150s",
                 cJSON_IsString(msg) ? msg->valuestring : "(no message)");
        rc = META_LEAD_GRAPH_ERROR;
        goto out;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "field_data");
    if (!cJSON_IsArray(data)) {
        snprintf(r->message, sizeof r->message, "no \"field_data\" array");
        rc = META_LEAD_MALFORMED;
        goto out;
    }
    lead = cJSON_CreateObject();
    cJSON *extra = NULL;
    const cJSON *q;
    char value[4096];
    cJSON_ArrayForEach(q, data)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(q, "name");
        const cJSON *values = cJSON_GetObjectItemCaseSensitive(q, "values");
        if (lead == NULL || !cJSON_IsString(name) || !cJSON_IsArray(values) ||
            join_values(values, value, sizeof value) != 0 || value[0] == '\0') {
            continue;
        }
        const char *field = meta_field_of(map, name->valuestring);
        /* The key in extra: the question's own name, or the map's extra.<key>. */
        const char *key = field == NULL                      ? name->valuestring
                          : strncmp(field, "extra.", 6) == 0 ? field + 6
                                                             : NULL;
        if (key == NULL && !cJSON_HasObjectItem(lead, field)) {
            cJSON_AddStringToObject(lead, field, value);
        } else if (key != NULL) {
            if (extra == NULL) {
                extra = cJSON_AddObjectToObject(lead, "extra");
            }
            if (extra != NULL && !cJSON_HasObjectItem(extra, key)) {
                cJSON_AddStringToObject(extra, key, value);
            }
        }
    }
    if (lead == NULL) {
        snprintf(r->message, sizeof r->message, "out of memory");
        rc = META_LEAD_MALFORMED;
        goto out;
    }
    cJSON_AddStringToObject(lead, "source", "meta");
    enum lead_parse_status st = parse_mapped(lead, region, r);
    rc = st == LEAD_OK        ? META_LEAD_OK
         : st == LEAD_INVALID ? META_LEAD_INVALID
                              : META_LEAD_MALFORMED;
out:
    cJSON_Delete(lead);
    cJSON_Delete(root);
    return rc;
}
