/*
 * sandbox_zoho_notify: leads made in Zoho CRM itself (typed in, imported,
 * Zoho's web-to-lead), and what Zoho then sends leadbus about them
 * (docs/api-conformance.md, rows ZS1–ZS2).
 *
 *   POST /sandbox/zoho/ui/Leads   (control) {"record":{"Last_Name":…,"Phone":…},
 *        "webhook":url, "deliveries":n, "secret":"valid"|"bad"|"none", "id":id}
 *        makes the Leads record in the simulated CRM (GET /sandbox/zoho/records shows it;
 *        Last_Name required as Zoho requires it), then sends the workflow rule's webhook
 *        `deliveries` times to `webhook` (loopback only): POST, JSON, the record's fields
 *        by API name with its `id`, the shared secret in X-Leadbus-Secret
 *        (ZOHO_WEBHOOK_SECRET, or the default leadbus's ingest uses without it). "id"
 *        instead of "record" sends an existing record's webhook again (a redelivery).
 *        Answers {"id":…, "statuses":[HTTP status per delivery, 0 when none came back]}.
 *        The record is also notified to every watch channel alive for Leads.create,
 *        `notify_deliveries` times (default 1), with the channel's token, a wrong one
 *        ("notify_token":"bad") or none ("none"): "notified":[statuses].
 *   POST|PUT /sandbox/zoho/crm/{v}/actions/watch   the Notifications API (rows ZN1, ZN2):
 *        {"watch":[{"channel_id","events":["Leads.create"],"channel_expiry","token",
 *        "notify_url"}]}; refused: no channel_id (digits), events, notify_url (http(s)),
 *        a token over 50 characters, an expiry not ISO 8601 with offset or over a day ahead
 *        (400 INVALID_DATA / REQUIRED_PARAM_MISSING). A channel past its expiry is silent.
 *   GET /sandbox/zoho/crm/{v}/Leads?ids=…&fields=…  the record GET (row ZN4): `fields`
 *        required (400 REQUIRED_PARAM_MISSING), at most 100 ids; 204 when none is found.
 */
#include "clock.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "sandbox.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ZN_CHANNELS 8
#define ZN_DAY_MS (24LL * 3600 * 1000)

struct zn_channel {
    char channel_id[32];
    char token[64];
    char notify_url[512];
    int64_t expiry_ms;
};

struct sandbox_zoho_notify {
    char webhook_secret[256];
    struct zn_channel channels[ZN_CHANNELS];
    int nchannels;
};

static size_t zn_discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* One POST of `body` to url with the given header line (or none); the HTTP status, 0 if none. */
static long zn_post(const char *url, const char *body, const char *header)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        return 0;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (header != NULL) {
        h = curl_slist_append(h, header);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, zn_discard);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(curl);
    return status;
}

static const char *zn_str(const cJSON *o, const char *name, const char *def)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(it) ? it->valuestring : def;
}

/* Make the record (or find the one named by "id"): its JSON as Zoho's GET answers it. */
static cJSON *zn_record(struct sandbox *sb, const cJSON *in, char id[24])
{
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(in, "record");
    const char *again = zn_str(in, "id", NULL);
    cJSON *out = NULL;
    pthread_mutex_lock(&sb->lock);
    if (again != NULL) {
        out = sandbox_zoho_lead_json(sb, again);
    } else if (cJSON_IsObject(rec)) {
        cJSON *fields = cJSON_Duplicate(rec, true);
        if (fields != NULL && sandbox_zoho_insert_lead(sb, fields, id) == 0) {
            out = sandbox_zoho_lead_json(sb, id);
        } else {
            cJSON_Delete(fields);
        }
    }
    pthread_mutex_unlock(&sb->lock);
    const char *got = zn_str(out, "id", "");
    snprintf(id, 24, "%s", got);
    return out;
}

static void zn_notify_all(struct sandbox *sb, const char *id, int deliveries, const char *mode,
                          cJSON *list);

static void zn_post_ui_lead(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!sandbox_admit(sb, req)) {
        return;
    }
    char *body;
    size_t len;
    if (http_read_body(req, 64 * 1024, &body, &len) != 0) {
        return;
    }
    cJSON *in = cJSON_ParseWithLength(body, len);
    free(body);
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(in, "record");
    const char *url = zn_str(in, "webhook", NULL), *secret = zn_str(in, "secret", "valid");
    const cJSON *nd = cJSON_GetObjectItemCaseSensitive(in, "deliveries");
    int deliveries = cJSON_IsNumber(nd) ? nd->valueint : (url != NULL ? 1 : 0);
    const char *last = cJSON_IsObject(rec) ? zn_str(rec, "Last_Name", "") : "x";
    if (!cJSON_IsObject(in) || (!cJSON_IsObject(rec) && zn_str(in, "id", NULL) == NULL) ||
        last[0] == '\0' || (url != NULL && !sandbox_callback_url_ok(url)) || deliveries < 0 ||
        deliveries > 10 ||
        (strcmp(secret, "valid") != 0 && strcmp(secret, "bad") != 0 &&
         strcmp(secret, "none") != 0)) {
        cJSON_Delete(in);
        http_reply_error(
            req, 400, "bad_request",
            "expected {\"record\":{\"Last_Name\":…} or \"id\", \"webhook\": a loopback "
            "URL, \"deliveries\": 0-10, \"secret\": valid|bad|none}",
            NULL);
        return;
    }
    char id[24] = "";
    cJSON *record = zn_record(sb, in, id);
    char *text = record != NULL ? cJSON_PrintUnformatted(record) : NULL;
    cJSON_Delete(record);
    if (text == NULL) {
        cJSON_Delete(in);
        http_reply_error(req, 404, "not_found", "no such Leads record (or out of memory)", NULL);
        return;
    }
    char header[300];
    snprintf(header, sizeof header, "X-Leadbus-Secret: %s",
             strcmp(secret, "bad") == 0 ? "not-the-webhook-secret"
                                        : sb->zoho_notify->webhook_secret);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON *statuses = cJSON_AddArrayToObject(o, "statuses");
    for (int i = 0; i < deliveries; i++) {
        long st = zn_post(url, text, strcmp(secret, "none") == 0 ? NULL : header);
        cJSON_AddItemToArray(statuses, cJSON_CreateNumber((double)st));
        sandbox_log_request(sb, SANDBOX_ZOHO, "POST", "(workflow webhook)", id);
    }
    free(text);
    const cJSON *nn = cJSON_GetObjectItemCaseSensitive(in, "notify_deliveries");
    int notify = cJSON_IsNumber(nn) && nn->valueint >= 0 && nn->valueint <= 10 ? nn->valueint : 1;
    zn_notify_all(sb, id, notify, zn_str(in, "notify_token", "valid"),
                  cJSON_AddArrayToObject(o, "notified"));
    cJSON_Delete(in);
    http_reply_json(req, 200, o);
}

/* ---- the Notifications API ---- */

static void zn_zoho_error(struct http_req *req, int status, const char *code, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "code", code);
    cJSON_AddObjectToObject(o, "details");
    cJSON_AddStringToObject(o, "message", message);
    cJSON_AddStringToObject(o, "status", "error");
    http_reply_json(req, status, o);
}

/* "2026-12-02T22:00:00+05:30" into unix ms; -1 when it is not that form. */
static int64_t zn_iso_ms(const char *s)
{
    int y, mo, d, h, mi, sec, oh, om;
    char sign;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c%2d:%2d", &y, &mo, &d, &h, &mi, &sec, &sign, &oh,
               &om) != 9 ||
        (sign != '+' && sign != '-') || strlen(s) != 25) {
        return -1;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    int64_t off = (oh * 3600LL + om * 60LL) * (sign == '+' ? 1 : -1);
    return ((int64_t)timegm(&tm) - off) * 1000;
}

/* One watch entry checked; NULL when good, else the refusal's message (code in *code). */
static const char *zn_check_watch(const cJSON *w, const char **code, struct zn_channel *out)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(w, "channel_id");
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(w, "events");
    const char *url = zn_str(w, "notify_url", NULL), *token = zn_str(w, "token", "");
    const char *expiry = zn_str(w, "channel_expiry", NULL);
    *code = "REQUIRED_PARAM_MISSING";
    if (id == NULL || !cJSON_IsArray(events) || cJSON_GetArraySize(events) == 0 || url == NULL) {
        return "channel_id, events and notify_url are mandatory";
    }
    *code = "INVALID_DATA";
    char cid[32] = "";
    if (cJSON_IsNumber(id)) {
        snprintf(cid, sizeof cid, "%.0f", id->valuedouble);
    } else if (cJSON_IsString(id) && strlen(id->valuestring) < sizeof cid &&
               strspn(id->valuestring, "0123456789") == strlen(id->valuestring)) {
        snprintf(cid, sizeof cid, "%s", id->valuestring);
    }
    int64_t now = clock_now_ms(), until = expiry != NULL ? zn_iso_ms(expiry) : now + 3600000;
    if (cid[0] == '\0' || strlen(token) > 50 || strlen(url) >= sizeof out->notify_url ||
        (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) || until <= now ||
        until > now + ZN_DAY_MS + 60000) {
        return "invalid data: channel_id (a number), token (at most 50 characters), notify_url "
               "(http or https), channel_expiry (ISO 8601 with offset, within a day)";
    }
    bool leads = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, events)
    {
        leads = leads || (cJSON_IsString(e) && (strcmp(e->valuestring, "Leads.create") == 0 ||
                                                strcmp(e->valuestring, "Leads.all") == 0));
    }
    snprintf(out->channel_id, sizeof out->channel_id, "%s", cid);
    snprintf(out->token, sizeof out->token, "%s", token);
    snprintf(out->notify_url, sizeof out->notify_url, "%s", leads ? url : "");
    out->expiry_ms = until;
    return NULL;
}

static void zn_put_channel(struct sandbox_zoho_notify *n, const struct zn_channel *c)
{
    int i = 0;
    while (i < n->nchannels && strcmp(n->channels[i].channel_id, c->channel_id) != 0) {
        i++;
    }
    if (i == ZN_CHANNELS) {
        i = 0; /* full: the oldest goes */
    }
    n->channels[i] = *c;
    n->nchannels = i == n->nchannels ? n->nchannels + 1 : n->nchannels;
}

static void zn_watch(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!sandbox_zoho_crm_prelude(sb, req)) {
        return;
    }
    char *body;
    size_t len;
    if (http_read_body(req, 64 * 1024, &body, &len) != 0) {
        return;
    }
    cJSON *in = cJSON_ParseWithLength(body, len);
    free(body);
    const cJSON *w = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(in, "watch"), 0);
    const char *code = "INVALID_DATA";
    struct zn_channel c;
    const char *refused = w == NULL ? "the watch array is mandatory" : zn_check_watch(w, &code, &c);
    cJSON_Delete(in);
    if (refused != NULL) {
        zn_zoho_error(req, 400, code, refused);
        return;
    }
    pthread_mutex_lock(&sb->lock);
    zn_put_channel(sb->zoho_notify, &c);
    pthread_mutex_unlock(&sb->lock);
    char expiry[26];
    sandbox_zoho_time(c.expiry_ms, expiry);
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "watch");
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToArray(list, e);
    cJSON_AddStringToObject(e, "code", "SUCCESS");
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(cJSON_AddObjectToObject(e, "details"), "events"),
                         ev);
    cJSON_AddStringToObject(ev, "channel_expiry", expiry);
    cJSON_AddStringToObject(ev, "resource_name", "Leads");
    cJSON_AddStringToObject(ev, "channel_id", c.channel_id);
    cJSON_AddStringToObject(e, "message",
                            "Successfully subscribed for actions-watch of the given module");
    cJSON_AddStringToObject(e, "status", "success");
    http_reply_json(req, 200, o);
}

/* Send the notification of record `id` to every live Leads.create channel; statuses into list. */
static void zn_notify_all(struct sandbox *sb, const char *id, int deliveries, const char *mode,
                          cJSON *list)
{
    struct zn_channel chans[ZN_CHANNELS];
    int nch = 0;
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&sb->lock);
    for (int i = 0; i < sb->zoho_notify->nchannels; i++) {
        const struct zn_channel *c = &sb->zoho_notify->channels[i];
        if (c->notify_url[0] != '\0' && c->expiry_ms > now &&
            sandbox_callback_url_ok(c->notify_url)) {
            chans[nch++] = *c;
        }
    }
    pthread_mutex_unlock(&sb->lock);
    for (int i = 0; i < nch; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "server_time", (double)now);
        cJSON_AddObjectToObject(o, "query_params");
        cJSON_AddStringToObject(o, "module", "Leads");
        cJSON_AddStringToObject(o, "resource_uri", "https://www.zohoapis.com/crm/v8/Leads");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "ids"), cJSON_CreateString(id));
        cJSON_AddArrayToObject(o, "affected_fields");
        cJSON_AddStringToObject(o, "operation", "insert");
        cJSON_AddStringToObject(o, "channel_id", chans[i].channel_id);
        if (strcmp(mode, "none") != 0) {
            cJSON_AddStringToObject(
                o, "token", strcmp(mode, "bad") == 0 ? "not-the-channel-token" : chans[i].token);
        }
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        for (int k = 0; text != NULL && k < deliveries; k++) {
            long st = zn_post(chans[i].notify_url, text, NULL);
            cJSON_AddItemToArray(list, cJSON_CreateNumber((double)st));
            sandbox_log_request(sb, SANDBOX_ZOHO, "POST", "(notification)", id);
        }
        free(text);
    }
}

/* GET Leads?ids=&fields=: the records, with the fields asked for (and id). */
static void zn_get_leads(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!sandbox_zoho_crm_prelude(sb, req)) {
        return;
    }
    char ids[4096] = "", fields[1024] = "";
    http_query(req, "ids", ids, sizeof ids);
    if (http_query(req, "fields", fields, sizeof fields) <= 0) {
        zn_zoho_error(req, 400, "REQUIRED_PARAM_MISSING",
                      "One of the expected parameter is missing");
        return;
    }
    cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data");
    int n = 0, asked = 0;
    char *save = NULL;
    pthread_mutex_lock(&sb->lock);
    for (char *id = strtok_r(ids, ",", &save); id != NULL; id = strtok_r(NULL, ",", &save)) {
        asked++;
        cJSON *full = sandbox_zoho_lead_json(sb, id);
        if (full == NULL) {
            continue;
        }
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddStringToObject(rec, "id", id);
        char copy[1024], *fs = NULL;
        snprintf(copy, sizeof copy, "%s", fields);
        for (char *f = strtok_r(copy, ",", &fs); f != NULL; f = strtok_r(NULL, ",", &fs)) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(full, f);
            cJSON_AddItemToObject(rec, f,
                                  v != NULL ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
        }
        cJSON_Delete(full);
        cJSON_AddItemToArray(data, rec);
        n++;
    }
    pthread_mutex_unlock(&sb->lock);
    if (asked > 100) {
        cJSON_Delete(o);
        zn_zoho_error(req, 400, "LIMIT_EXCEEDED", "the number of ids exceeds 100");
    } else if (n == 0) {
        cJSON_Delete(o);
        http_reply(req, 204, "application/json", "", 0);
    } else {
        http_reply_json(req, 200, o);
    }
}

int sandbox_zoho_notify_start(struct sandbox *sb, struct app *app, char err[CONFIG_ERR_MAX])
{
    (void)err;
    struct sandbox_zoho_notify *n = calloc(1, sizeof *n);
    if (n == NULL) {
        return -1;
    }
    snprintf(n->webhook_secret, sizeof n->webhook_secret, "%s",
             config_str("ZOHO_WEBHOOK_SECRET", "sandbox-zoho-webhook-secret"));
    sb->zoho_notify = n;
    if (http_route(app->http, "POST", "/sandbox/zoho/ui/Leads", zn_post_ui_lead, sb) != 0 ||
        http_route(app->http, "POST", "/sandbox/zoho/crm/{v}/actions/watch", zn_watch, sb) != 0 ||
        http_route(app->http, "PUT", "/sandbox/zoho/crm/{v}/actions/watch", zn_watch, sb) != 0 ||
        http_route(app->http, "GET", "/sandbox/zoho/crm/{v}/Leads", zn_get_leads, sb) != 0) {
        return -1;
    }
    return 0;
}

void sandbox_zoho_notify_stop(struct sandbox *sb)
{
    if (sb->zoho_notify != NULL) {
        explicit_bzero(sb->zoho_notify, sizeof *sb->zoho_notify);
        free(sb->zoho_notify);
        sb->zoho_notify = NULL;
    }
}
