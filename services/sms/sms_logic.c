/* sms_logic: SMS_ON, the template, and Exotel's SMS answers (pure; sms_logic.h). */
#include "sms_logic.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SMS_BODY_MAX 2000 /* Exotel: "Max Length of the body cannot exceed 2000 characters" */

const char *const sms_state_names[SMS_NSTATES] = {
    [SMS_PENDING] = "pending",     [SMS_SENDING] = "sending", [SMS_SENT] = "sent",
    [SMS_DELIVERED] = "delivered", [SMS_FAILED] = "failed",   [SMS_DND] = "dnd",
    [SMS_UNKNOWN] = "unknown",     [SMS_SKIPPED] = "skipped",
};

static const char *const sms_missed[] = {"no-answer", "busy", "failed", "failed-api", "canceled"};

int sms_on_parse(const char *list, struct sms_on *on, char *err, size_t err_size)
{
    memset(on, 0, sizeof *on);
    for (const char *p = list; *p != '\0';) {
        size_t n = strcspn(p, ",");
        bool known = false;
        for (size_t i = 0; i < sizeof sms_missed / sizeof sms_missed[0]; i++) {
            known = known || (strlen(sms_missed[i]) == n && strncmp(p, sms_missed[i], n) == 0);
        }
        if (!known || on->n == SMS_ON_MAX) {
            snprintf(err, err_size,
                     "SMS_ON: '%.*s' is not a missed call (expected no-answer, busy, failed, "
                     "failed-api, canceled)",
                     (int)(n > 24 ? 24 : n), p);
            return -1;
        }
        snprintf(on->status[on->n++], sizeof on->status[0], "%.*s", (int)n, p);
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    return 0;
}

bool sms_on_match(const struct sms_on *on, const char *status)
{
    for (int i = 0; i < on->n; i++) {
        if (strcmp(on->status[i], status) == 0) {
            return true;
        }
    }
    return false;
}

static const char *sms_var(const struct sms_vars *v, const char *name, size_t n)
{
    static const char *const names[] = {"first_name", "last_name", "agent_name", "company"};
    const char *vals[] = {v->first_name, v->last_name, v->agent_name, v->company};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i]) == n && strncmp(name, names[i], n) == 0) {
            return vals[i] != NULL ? vals[i] : "";
        }
    }
    return NULL;
}

int sms_render(const char *tmpl, const struct sms_vars *v, char *out, size_t size)
{
    size_t o = 0;
    for (const char *p = tmpl; *p != '\0';) {
        const char *piece = p;
        size_t n = 1;
        if (*p == '{') {
            const char *end = strchr(p, '}');
            if (end == NULL) {
                return -1;
            }
            piece = sms_var(v, p + 1, (size_t)(end - p - 1));
            if (piece == NULL) {
                return -1;
            }
            n = strlen(piece);
            p = end + 1;
        } else {
            p++;
        }
        if (o + n >= size || o + n > SMS_BODY_MAX) {
            return -2;
        }
        memcpy(out + o, piece, n);
        o += n;
    }
    out[o] = '\0';
    return 0;
}

static int sms_xml_sid(const char *body, char *sid, size_t sid_size)
{
    const char *m = strstr(body, "<SMSMessage>");
    const char *s = m != NULL ? strstr(m, "<Sid>") : NULL;
    const char *e = s != NULL ? strstr(s, "</Sid>") : NULL;
    if (e == NULL || e - s - 5 <= 0 || (size_t)(e - s - 5) >= sid_size) {
        return -1;
    }
    snprintf(sid, sid_size, "%.*s", (int)(e - s - 5), s + 5);
    return 0;
}

int sms_parse_sent(const char *body, size_t len, char *sid, size_t sid_size)
{
    sid[0] = '\0';
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (o == NULL) {
        char copy[4096];
        snprintf(copy, sizeof copy, "%.*s", (int)(len < sizeof copy ? len : sizeof copy - 1), body);
        return sms_xml_sid(copy, sid, sid_size);
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "SMSMessage");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(m, "Sid");
    int rc = -1;
    if (cJSON_IsString(s) && s->valuestring[0] != '\0' && strlen(s->valuestring) < sid_size) {
        snprintf(sid, sid_size, "%s", s->valuestring);
        rc = 0;
    }
    cJSON_Delete(o);
    return rc;
}

int sms_callback_state(const char *status)
{
    static const struct {
        const char *name;
        enum sms_state state;
    } map[] = {{"queued", SMS_SENT},    {"sending", SMS_SENT},        {"submitted", SMS_SENT},
               {"sent", SMS_DELIVERED}, {"delivered", SMS_DELIVERED}, {"failed", SMS_FAILED},
               {"expired", SMS_FAILED}, {"undelivered", SMS_FAILED},  {"failed_dnd", SMS_DND},
               {"failed-dnd", SMS_DND}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcasecmp(status, map[i].name) == 0) {
            return (int)map[i].state;
        }
    }
    return -1;
}

int sms_parse_dnd(const char *body, size_t len, bool *dnd)
{
    cJSON *o = cJSON_ParseWithLength(body, len);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "Numbers");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(n, "DND");
    int rc = -1;
    if (cJSON_IsString(d)) {
        *dnd = strcasecmp(d->valuestring, "yes") == 0;
        rc = 0;
    }
    cJSON_Delete(o);
    return rc;
}
