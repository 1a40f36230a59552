/* lead_parse: validation and normalisation of incoming leads. */
#include "lead_parse.h"
#include "json_depth.h"
#include "phone.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const known_fields[] = {"name",  "firstName", "lastName", "phone",
                                           "email", "source",    "company",  "city",
                                           "notes", "extra",     NULL};

static void warn(struct lead_parse_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void warn(struct lead_parse_result *r, const char *fmt, ...)
{
    if (r->nwarnings == LEAD_MAX_WARNINGS) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->warnings[r->nwarnings++], LEAD_WARNING_MAX, fmt, ap);
    va_end(ap);
}

static void field_error(struct lead_parse_result *r, const char *field, const char *msg)
{
    if (r->fields == NULL) {
        r->fields = cJSON_CreateObject();
    }
    if (r->fields != NULL && !cJSON_HasObjectItem(r->fields, field)) {
        cJSON_AddStringToObject(r->fields, field, msg);
    }
}

static bool valid_utf8(const unsigned char *s)
{
    while (*s) {
        int n;
        unsigned cp;
        if (*s < 0x80) {
            s++;
            continue;
        } else if ((*s & 0xe0) == 0xc0) {
            n = 1;
            cp = *s & 0x1f;
        } else if ((*s & 0xf0) == 0xe0) {
            n = 2;
            cp = *s & 0x0f;
        } else if ((*s & 0xf8) == 0xf0) {
            n = 3;
            cp = *s & 0x07;
        } else {
            return false;
        }
        s++;
        for (int i = 0; i < n; i++, s++) {
            if ((*s & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (*s & 0x3f);
        }
        /* overlong forms, surrogates and values past U+10FFFF */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
            return false;
        }
    }
    return true;
}

/*
 * Copy `src` into dst[size]: trim, and (when `collapse`) fold every run of
 * blanks and control characters into one space. Returns -1 when it does not fit.
 */
static int clean(const char *src, char *dst, size_t size, bool collapse)
{
    size_t n = 0;
    bool pending_space = false;
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        bool blank = collapse ? (isspace(*p) || *p < 0x20) : (*p == ' ' || *p == '\t');
        if (!collapse && *p < 0x20 && *p != '\n' && *p != '\t') {
            continue; /* control characters other than newline and tab go */
        }
        if (blank) {
            pending_space = n > 0;
            continue;
        }
        if (pending_space) {
            if (n + 1 >= size) {
                return -1;
            }
            dst[n++] = ' ';
            pending_space = false;
        }
        if (n + 1 >= size) {
            return -1;
        }
        dst[n++] = (char)*p;
    }
    dst[n] = '\0';
    return 0;
}

/* Read an optional string field; 1 = present and non-empty, 0 = absent/empty, -1 = error. */
static int get_string(const cJSON *root, const char *field, char *dst, size_t size, bool collapse,
                      struct lead_parse_result *r)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, field);
    dst[0] = '\0';
    if (it == NULL || cJSON_IsNull(it)) {
        return 0;
    }
    if (!cJSON_IsString(it)) {
        field_error(r, field, "must be a string");
        return -1;
    }
    if (!valid_utf8((const unsigned char *)it->valuestring)) {
        field_error(r, field, "must be valid UTF-8");
        return -1;
    }
    if (clean(it->valuestring, dst, size, collapse) != 0) {
        char msg[64];
        snprintf(msg, sizeof msg, "is too long (at most %zu bytes)", size - 1);
        field_error(r, field, msg);
        return -1;
    }
    return dst[0] != '\0';
}

static bool email_ok(const char *e)
{
    const char *at = strchr(e, '@');
    if (at == NULL || at == e || strchr(at + 1, '@') != NULL || strlen(e) > 254 || at - e > 64) {
        return false;
    }
    for (const char *p = e; *p; p++) {
        if (isspace((unsigned char)*p) || *p == '<' || *p == '>' || *p == ',' || *p == ';' ||
            *p == '"' || *p == '(' || *p == ')' || *p == '[' || *p == ']' || *p == '\\') {
            return false;
        }
    }
    const char *domain = at + 1;
    const char *dot = strrchr(domain, '.');
    if (dot == NULL || dot == domain || dot[1] == '\0' || strstr(domain, "..") != NULL ||
        domain[0] == '-' || e[0] == '.' || at[-1] == '.') {
        return false;
    }
    for (const char *p = domain; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && (unsigned char)*p < 0x80) {
            return false;
        }
    }
    return strlen(dot + 1) >= 2;
}

static void split_name(const char *full, struct proto_lead_created *l)
{
    const char *last_space = strrchr(full, ' ');
    if (last_space == NULL) {
        snprintf(l->last_name, sizeof l->last_name, "%s", full);
        return;
    }
    snprintf(l->first_name, sizeof l->first_name, "%.*s", (int)(last_space - full), full);
    snprintf(l->last_name, sizeof l->last_name, "%s", last_space + 1);
}

static void parse_names(const cJSON *root, struct lead_parse_result *r)
{
    struct proto_lead_created *l = &r->lead;
    char full[sizeof l->first_name + sizeof l->last_name];
    int has_full = get_string(root, "name", full, sizeof full, true, r);
    int has_first = get_string(root, "firstName", l->first_name, sizeof l->first_name, true, r);
    int has_last = get_string(root, "lastName", l->last_name, sizeof l->last_name, true, r);
    if (has_full < 0 || has_first < 0 || has_last < 0) {
        return;
    }
    if (has_first || has_last) {
        if (!has_last) { /* Zoho requires Last_Name: a lone first name takes its place */
            memcpy(l->last_name, l->first_name, sizeof l->last_name);
            l->first_name[0] = '\0';
        }
        return;
    }
    if (!has_full) {
        field_error(r, "name", "is required (or firstName/lastName)");
        return;
    }
    const char *last_space = strrchr(full, ' ');
    size_t first_len = last_space ? (size_t)(last_space - full) : 0;
    if (first_len >= sizeof l->first_name ||
        strlen(last_space ? last_space + 1 : full) >= sizeof l->last_name) {
        field_error(r, "name", "is too long");
        return;
    }
    split_name(full, l);
}

static void parse_contact(const cJSON *root, const char *region, struct lead_parse_result *r)
{
    struct proto_lead_created *l = &r->lead;
    int has_phone = get_string(root, "phone", l->phone_raw, sizeof l->phone_raw, true, r);
    int has_email = get_string(root, "email", l->email, sizeof l->email, true, r);
    bool phone_ok = false, email_valid = false;
    snprintf(l->phone_status, sizeof l->phone_status, "none");
    if (has_phone > 0) {
        phone_ok =
            phone_normalize(l->phone_raw, region, l->phone_e164, l->phone_dial) == PHONE_VALID;
        snprintf(l->phone_status, sizeof l->phone_status, phone_ok ? "valid" : "invalid");
    }
    if (has_email > 0) {
        for (char *p = l->email; *p; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
        email_valid = email_ok(l->email);
    }
    if (has_phone < 0 || has_email < 0) {
        return; /* already named */
    }
    if (!phone_ok && !email_valid) {
        if (has_phone == 0 && has_email == 0) {
            field_error(r, "phone", "phone or email is required");
            field_error(r, "email", "phone or email is required");
        }
        if (has_phone > 0) {
            field_error(r, "phone", "is not a valid phone number");
        }
        if (has_email > 0) {
            field_error(r, "email", "is not a valid email address");
        }
        return;
    }
    if (has_phone > 0 && !phone_ok) {
        warn(r, "phone: not a valid phone number; the lead is kept and will not be called");
    }
    if (has_email > 0 && !email_valid) {
        warn(r, "email: not a valid email address; it was dropped");
        l->email[0] = '\0';
    }
}

static void parse_extra(const cJSON *root, struct lead_parse_result *r)
{
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "extra");
    if (extra == NULL || cJSON_IsNull(extra)) {
        return;
    }
    if (!cJSON_IsObject(extra)) {
        field_error(r, "extra", "must be an object");
        return;
    }
    char *s = cJSON_PrintUnformatted(extra);
    if (s == NULL || strlen(s) >= sizeof r->lead.extra) {
        field_error(r, "extra", "is too large (at most 8191 bytes as JSON)");
    } else if (!valid_utf8((const unsigned char *)s)) {
        field_error(r, "extra", "must be valid UTF-8");
    } else {
        snprintf(r->lead.extra, sizeof r->lead.extra, "%s", s);
    }
    free(s);
}

enum lead_parse_status lead_parse(const char *body, size_t len, const char *region,
                                  struct lead_parse_result *r)
{
    memset(r, 0, sizeof *r);
    if (!json_depth_ok(body, len, JSON_DEPTH_MAX)) {
        snprintf(r->message, sizeof r->message, "JSON nested deeper than %d levels",
                 JSON_DEPTH_MAX);
        return LEAD_MALFORMED;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (root == NULL) {
        size_t at = end != NULL && end >= body ? (size_t)(end - body) : 0;
        snprintf(r->message, sizeof r->message, "malformed JSON near byte %zu", at);
        return LEAD_MALFORMED;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(r->message, sizeof r->message, "the body must be a JSON object");
        cJSON_Delete(root);
        return LEAD_MALFORMED;
    }
    struct proto_lead_created *l = &r->lead;
    parse_names(root, r);
    parse_contact(root, region, r);
    get_string(root, "source", l->source, sizeof l->source, true, r);
    get_string(root, "company", l->company, sizeof l->company, true, r);
    get_string(root, "city", l->city, sizeof l->city, true, r);
    get_string(root, "notes", l->notes, sizeof l->notes, false, r);
    parse_extra(root, r);
    for (const cJSON *it = root->child; it != NULL; it = it->next) {
        bool known = false;
        for (int i = 0; known_fields[i] != NULL; i++) {
            known = known || (it->string != NULL && strcmp(it->string, known_fields[i]) == 0);
        }
        if (!known && it->string != NULL && valid_utf8((const unsigned char *)it->string)) {
            warn(r, "%.60s: unknown field, ignored (put custom data in \"extra\")", it->string);
        }
    }
    cJSON_Delete(root);
    if (r->fields != NULL) {
        snprintf(r->message, sizeof r->message, "the lead has invalid fields");
        return LEAD_INVALID;
    }
    return LEAD_OK;
}

void lead_parse_free(struct lead_parse_result *r)
{
    cJSON_Delete(r->fields);
    r->fields = NULL;
}
