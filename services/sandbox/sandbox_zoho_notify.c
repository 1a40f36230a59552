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

struct sandbox_zoho_notify {
    char webhook_secret[256];
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
    cJSON_Delete(in);
    http_reply_json(req, 200, o);
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
    return http_route(app->http, "POST", "/sandbox/zoho/ui/Leads", zn_post_ui_lead, sb);
}

void sandbox_zoho_notify_stop(struct sandbox *sb)
{
    if (sb->zoho_notify != NULL) {
        explicit_bzero(sb->zoho_notify, sizeof *sb->zoho_notify);
        free(sb->zoho_notify);
        sb->zoho_notify = NULL;
    }
}
