/* exotel_callback: StatusCallback bodies in their three encodings. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include "exotel_callback.h"
#include "json_depth.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BOUNDARY_MAX 70 /* RFC 2046 */

/* Copy one field into the struct if it is one we keep. */
static void take(struct exotel_callback *cb, const char *name, const char *v, size_t n,
                 int64_t *conversation, int64_t *duration)
{
    static const struct {
        const char *name;
        size_t off, size;
    } fields[] = {
        {"CallSid", offsetof(struct exotel_callback, call_sid), sizeof cb->call_sid},
        {"Status", offsetof(struct exotel_callback, status), sizeof cb->status},
        {"EventType", offsetof(struct exotel_callback, event_type), sizeof cb->event_type},
        {"RecordingUrl", offsetof(struct exotel_callback, recording_url), sizeof cb->recording_url},
        {"CustomField", offsetof(struct exotel_callback, custom_field), sizeof cb->custom_field},
        {"Leg1Status", offsetof(struct exotel_callback, leg1_status), sizeof cb->leg1_status},
        {"Leg2Status", offsetof(struct exotel_callback, leg2_status), sizeof cb->leg2_status},
        {"Legs[0][Status]", offsetof(struct exotel_callback, leg1_status), sizeof cb->leg1_status},
        {"Legs[1][Status]", offsetof(struct exotel_callback, leg2_status), sizeof cb->leg2_status},
        /* urlencoded names as encoders write them (the brackets escaped) */
        {"Legs%5B0%5D%5BStatus%5D", offsetof(struct exotel_callback, leg1_status),
         sizeof cb->leg1_status},
        {"Legs%5B1%5D%5BStatus%5D", offsetof(struct exotel_callback, leg2_status),
         sizeof cb->leg2_status},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(name, fields[i].name) == 0) {
            char *dst = (char *)cb + fields[i].off;
            size_t m = n < fields[i].size ? n : fields[i].size - 1;
            memcpy(dst, v, m);
            dst[m] = '\0';
            return;
        }
    }
    int64_t *target = strcmp(name, "ConversationDuration") == 0 ? conversation
                      : strcmp(name, "Duration") == 0           ? duration
                                                                : NULL;
    if (target != NULL && n > 0 && n < 12) {
        char num[12];
        memcpy(num, v, n);
        num[n] = '\0';
        char *end;
        double d = strtod(num, &end);
        if (end != num && d >= 0 && d < 1e9) {
            *target = (int64_t)d;
        }
    }
}

/* Legs[i].Status (or Legs[i].Leg.Status, the call-details shape) into leg1/leg2_status. */
static void legs_status(const cJSON *legs, struct exotel_callback *cb)
{
    char *dst[2] = {cb->leg1_status, cb->leg2_status};
    int i = 0;
    for (const cJSON *l = cJSON_IsArray(legs) ? legs->child : NULL; l != NULL && i < 2;
         l = l->next) {
        const cJSON *leg = cJSON_GetObjectItemCaseSensitive(l, "Leg");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(leg ? leg : l, "Status");
        if (cJSON_IsString(st) && st->valuestring != NULL) {
            snprintf(dst[i], sizeof cb->leg1_status, "%s", st->valuestring);
        }
        i++;
    }
}

static int parse_json(const char *body, size_t len, struct exotel_callback *cb, int64_t *conv,
                      int64_t *dur)
{
    cJSON *o = json_depth_ok(body, len, JSON_DEPTH_MAX) ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return -1;
    }
    for (const cJSON *f = o->child; f != NULL; f = f->next) {
        char num[32];
        if (cJSON_IsString(f) && f->valuestring != NULL) {
            take(cb, f->string, f->valuestring, strlen(f->valuestring), conv, dur);
        } else if (cJSON_IsNumber(f)) {
            snprintf(num, sizeof num, "%.0f", f->valuedouble);
            take(cb, f->string, num, strlen(num), conv, dur);
        }
    }
    /* Without ConversationDuration, the longest leg's OnCallDuration is the best figure. */
    const cJSON *legs = cJSON_GetObjectItemCaseSensitive(o, "Legs");
    legs_status(legs, cb);
    for (const cJSON *l = cJSON_IsArray(legs) ? legs->child : NULL; l != NULL && *conv < 0;
         l = l->next) {
        const cJSON *leg = cJSON_GetObjectItemCaseSensitive(l, "Leg");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(leg ? leg : l, "OnCallDuration");
        if (cJSON_IsNumber(d) && d->valuedouble >= 0 && d->valuedouble < 1e9 &&
            (int64_t)d->valuedouble > *dur) {
            *dur = (int64_t)d->valuedouble;
        }
    }
    cJSON_Delete(o);
    return 0;
}

static int parse_urlencoded(const char *body, size_t len, struct exotel_callback *cb, int64_t *conv,
                            int64_t *dur)
{
    static const char *const names[] = {"CallSid",
                                        "Status",
                                        "EventType",
                                        "RecordingUrl",
                                        "CustomField",
                                        "ConversationDuration",
                                        "Duration",
                                        "Leg1Status",
                                        "Leg2Status",
                                        "Legs[0][Status]",
                                        "Legs[1][Status]",
                                        "Legs%5B0%5D%5BStatus%5D",
                                        "Legs%5B1%5D%5BStatus%5D",
                                        NULL};
    char v[600];
    for (int i = 0; names[i] != NULL; i++) {
        int n = mg_get_var(body, len, names[i], v, sizeof v);
        if (n == -2) {
            return -1; /* a value longer than any Exotel sends */
        }
        if (n >= 0) {
            take(cb, names[i], v, (size_t)n, conv, dur);
        }
    }
    return 0;
}

/* The boundary parameter of a multipart Content-Type, unquoted. */
static int boundary_of(const char *ct, char out[BOUNDARY_MAX + 1])
{
    const char *b = strcasestr(ct, "boundary=");
    if (b == NULL) {
        return -1;
    }
    b += 9;
    bool quoted = *b == '"';
    b += quoted;
    size_t n = 0;
    while (b[n] != '\0' && (quoted ? b[n] != '"' : b[n] != ';' && !isspace((unsigned char)b[n]))) {
        n++;
    }
    if (n == 0 || n > BOUNDARY_MAX || (quoted && b[n] != '"')) {
        return -1;
    }
    memcpy(out, b, n);
    out[n] = '\0';
    return 0;
}

/* The name="…" of a part's Content-Disposition, within the part's header block. */
static int part_name(const char *h, size_t hlen, char *out, size_t size)
{
    const char *cd = NULL;
    for (const char *line = h; line < h + hlen;) {
        const char *eol = memmem(line, (size_t)(h + hlen - line), "\r\n", 2);
        size_t n = eol ? (size_t)(eol - line) : (size_t)(h + hlen - line);
        if (n > 20 && strncasecmp(line, "Content-Disposition:", 20) == 0) {
            cd = line;
            const char *name = memmem(cd, n, "name=\"", 6);
            if (name == NULL) {
                return -1;
            }
            name += 6;
            const char *q = memchr(name, '"', n - (size_t)(name - cd));
            if (q == NULL || (size_t)(q - name) >= size) {
                return -1;
            }
            memcpy(out, name, (size_t)(q - name));
            out[q - name] = '\0';
            return 0;
        }
        line += n + 2;
    }
    return -1;
}

static int parse_multipart(const char *ct, const char *body, size_t len, struct exotel_callback *cb,
                           int64_t *conv, int64_t *dur)
{
    char boundary[BOUNDARY_MAX + 1], delim[BOUNDARY_MAX + 5];
    if (boundary_of(ct, boundary) != 0) {
        return -1;
    }
    int dlen = snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    /* The first delimiter may open the body without the CRLF before it. */
    const char *p = body, *end = body + len;
    if (len >= (size_t)dlen - 2 && memcmp(body, delim + 2, (size_t)dlen - 2) == 0) {
        p = body + dlen - 2;
    } else {
        const char *first = memmem(body, len, delim, (size_t)dlen);
        if (first == NULL) {
            return -1;
        }
        p = first + dlen;
    }
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            return 0; /* the closing delimiter */
        }
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            return -1;
        }
        p += 2;
        const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (hend == NULL) {
            return -1;
        }
        char name[64];
        if (part_name(p, (size_t)(hend - p), name, sizeof name) != 0) {
            return -1;
        }
        const char *v = hend + 4;
        const char *next = memmem(v, (size_t)(end - v), delim, (size_t)dlen);
        if (next == NULL) {
            return -1;
        }
        take(cb, name, v, (size_t)(next - v), conv, dur);
        p = next + dlen;
    }
}

int exotel_callback_parse(const char *content_type, const char *body, size_t len,
                          struct exotel_callback *cb)
{
    memset(cb, 0, sizeof *cb);
    int64_t conv = -1, dur = 0;
    const char *ct = content_type ? content_type : "";
    int rc;
    if (strncasecmp(ct, "application/json", 16) == 0) {
        rc = parse_json(body, len, cb, &conv, &dur);
    } else if (strncasecmp(ct, "multipart/form-data", 19) == 0) {
        rc = parse_multipart(ct, body, len, cb, &conv, &dur);
    } else if (strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) {
        rc = parse_urlencoded(body, len, cb, &conv, &dur);
    } else {
        rc = -1;
    }
    cb->duration_s = conv >= 0 ? conv : dur;
    if (rc != 0 || cb->call_sid[0] == '\0' || cb->status[0] == '\0') {
        memset(cb, 0, sizeof *cb);
        return -1;
    }
    for (char *s = cb->status; *s; s++) {
        *s = (char)tolower((unsigned char)*s);
    }
    return 0;
}
