/*
 * sandbox_meta: Meta Lead Ads as leadbus meets it (shared/reference/meta-lead-ads.md,
 * docs/api-conformance.md rows M1–M6), so /sources/meta runs without a Meta app.
 *
 *   GET  /sandbox/meta/{version}/{leadgenId}   the Graph API's lead: {"id","created_time",
 *        "field_data"}; the page token in `Authorization: Bearer` (or `access_token`);
 *        Graph's error shape {"error":{"message","type","code","fbtrace_id"}} otherwise
 *   POST /sandbox/meta/leads                   (control) a lead filled in on a form, and its
 *        signed delivery sent to `deliver_to` (loopback only): {"lead":{"full_name":…},
 *        "deliver_to":url, "deliveries":n, "signature":"valid"|"bad"|"none",
 *        "leadgen_id":id (deliver an existing lead again)}
 *
 * Deliveries are signed as Meta signs them: X-Hub-Signature-256 = sha256=<hex HMAC-SHA256 of
 * the body with the app secret>. The secret and token are META_APP_SECRET and META_PAGE_TOKEN,
 * with the defaults leadbus's ingest uses without Meta credentials. Faults: SANDBOX_FAULTS
 * meta.429 (Graph's rate limit, code 4), meta.500, meta.timeout, meta.down_ms.
 */
#include "clock.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "sandbox.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mlead {
    char id[24];
    char page_id[24];
    char form_id[24];
    int64_t created_ms;
    char *field_data; /* JSON text of the field_data array */
};

struct sandbox_meta {
    struct mlead *leads;
    int n, cap;
    uint64_t next_id;
    char app_secret[256];
    char page_token[512];
};

static void graph_error(struct http_req *req, int status, int code, const char *type,
                        const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "fbtrace_id", "AsandboxTraceId");
    http_reply_json(req, status, o);
}

static bool graph_version_ok(const char *v)
{
    unsigned major, minor;
    char tail;
    return sscanf(v, "v%u.%u%c", &major, &minor, &tail) == 2 && v[0] == 'v';
}

/* The page token from `Authorization: Bearer|OAuth <t>` or ?access_token=; "" when absent. */
static void token_of(struct http_req *req, char *out, size_t size)
{
    out[0] = '\0';
    const char *auth = http_header(req, "Authorization");
    if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0) {
        snprintf(out, size, "%s", auth + 7);
    } else if (auth != NULL && strncasecmp(auth, "OAuth ", 6) == 0) {
        snprintf(out, size, "%s", auth + 6);
    } else {
        http_query(req, "access_token", out, size);
    }
}

static void meta_graph_get_lead(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    struct sandbox_meta *m = sb->meta;
    const char *version = req->params[0], *id = req->params[1];
    char summary[96];
    snprintf(summary, sizeof summary, "leadgen_id=%.60s", id);
    sandbox_log_request(sb, SANDBOX_META, "GET", req->path, summary);
    enum sandbox_fault f = sandbox_fault_roll(sb, SANDBOX_META);
    if (f == FAULT_DOWN) {
        graph_error(req, 503, 2, "OAuthException", "Service temporarily unavailable");
        return;
    }
    if (f == FAULT_429) {
        graph_error(req, 400, 4, "OAuthException", "Application request limit reached");
        return;
    }
    if (f == FAULT_500 || f == FAULT_TIMEOUT) {
        graph_error(req, 500, 1, "OAuthException", "An unknown error occurred");
        return;
    }
    if (!graph_version_ok(version)) {
        graph_error(req, 400, 2500, "OAuthException", "Unknown path components");
        return;
    }
    char token[512];
    token_of(req, token, sizeof token);
    if (token[0] == '\0') {
        graph_error(req, 400, 104, "OAuthException",
                    "An access token is required to request this resource.");
        return;
    }
    if (strcmp(token, m->page_token) != 0) {
        graph_error(req, 400, 190, "OAuthException",
                    "Invalid OAuth access token - Cannot parse access token");
        return;
    }
    cJSON *o = NULL;
    pthread_mutex_lock(&sb->lock);
    for (int i = 0; i < m->n && o == NULL; i++) {
        if (strcmp(m->leads[i].id, id) == 0) {
            char created[32];
            time_t t = (time_t)(m->leads[i].created_ms / 1000);
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%S+0000", &tm);
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "created_time", created);
            cJSON_AddStringToObject(o, "id", m->leads[i].id);
            cJSON_AddItemToObject(o, "field_data", cJSON_Parse(m->leads[i].field_data));
        }
    }
    pthread_mutex_unlock(&sb->lock);
    if (o == NULL) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "Unsupported get request. Object with ID '%.60s' does not exist, cannot be loaded "
                 "due to missing permissions, or does not support this operation.",
                 id);
        graph_error(req, 400, 100, "GraphMethodException", msg);
        return;
    }
    http_reply_json(req, 200, o);
}

/* {"full_name":"…","phone_number":"…"} or [{"name","values"}] as Meta's field_data text. */
static char *field_data_of(const cJSON *lead)
{
    cJSON *fd = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, lead)
    {
        if (it->string == NULL || !cJSON_IsString(it)) {
            continue;
        }
        cJSON *q = cJSON_CreateObject();
        cJSON_AddStringToObject(q, "name", it->string);
        cJSON *values = cJSON_AddArrayToObject(q, "values");
        cJSON_AddItemToArray(values, cJSON_CreateString(it->valuestring));
        cJSON_AddItemToArray(fd, q);
    }
    char *s = cJSON_PrintUnformatted(fd);
    cJSON_Delete(fd);
    return s;
}

static size_t meta_discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* One delivery to url; returns the HTTP status (0 when it did not arrive). */
static long deliver(struct sandbox_meta *m, const char *url, const char *body, const char *sig_mode)
{
    char header[128] = "";
    if (strcmp(sig_mode, "none") != 0) {
        const char *key = strcmp(sig_mode, "bad") == 0 ? "not-the-app-secret" : m->app_secret;
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)body, strlen(body), mac,
             &n);
        int w = snprintf(header, sizeof header, "X-Hub-Signature-256: sha256=");
        for (unsigned i = 0; i < n && w > 0 && (size_t)w < sizeof header; i++) {
            w += snprintf(header + w, sizeof header - (size_t)w, "%02x", mac[i]);
        }
    }
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        return 0;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (header[0] != '\0') {
        h = curl_slist_append(h, header);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, meta_discard);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(curl);
    return status;
}

static void drop_oldest(struct sandbox *sb, struct sandbox_meta *m)
{
    free(m->leads[0].field_data);
    memmove(m->leads, m->leads + 1, (size_t)(m->n - 1) * sizeof *m->leads);
    m->n--;
    sandbox_dropped("meta_lead");
    (void)sb;
}

/* Add a lead (lock held); its id into id[24]. -1 without memory. */
static int add_lead(struct sandbox *sb, struct sandbox_meta *m, char *fd, const char *page_id,
                    const char *form_id, char id[24])
{
    if (m->n == sb->records_max) {
        drop_oldest(sb, m);
    }
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 64;
        struct mlead *grown = realloc(m->leads, (size_t)cap * sizeof *grown);
        if (grown == NULL) {
            return -1;
        }
        m->leads = grown;
        m->cap = cap;
    }
    struct mlead *l = &m->leads[m->n++];
    memset(l, 0, sizeof *l);
    snprintf(l->id, sizeof l->id, "%llu", (unsigned long long)m->next_id++);
    snprintf(l->page_id, sizeof l->page_id, "%s", page_id);
    snprintf(l->form_id, sizeof l->form_id, "%s", form_id);
    l->created_ms = clock_now_ms();
    l->field_data = fd;
    memcpy(id, l->id, sizeof l->id);
    return 0;
}

static const char *str_or(const cJSON *o, const char *name, const char *def)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(it) && strlen(it->valuestring) < 24 ? it->valuestring : def;
}

static void meta_post_leads(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    struct sandbox_meta *m = sb->meta;
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
    const cJSON *lead = cJSON_GetObjectItemCaseSensitive(in, "lead");
    const cJSON *again = cJSON_GetObjectItemCaseSensitive(in, "leadgen_id");
    const cJSON *dest = cJSON_GetObjectItemCaseSensitive(in, "deliver_to");
    const char *url = cJSON_IsString(dest) ? dest->valuestring : NULL;
    const char *sig = str_or(in, "signature", "valid");
    const cJSON *nd = cJSON_GetObjectItemCaseSensitive(in, "deliveries");
    int deliveries = cJSON_IsNumber(nd) ? nd->valueint : (url != NULL ? 1 : 0);
    if (!cJSON_IsObject(in) || (!cJSON_IsObject(lead) && !cJSON_IsString(again)) ||
        (url != NULL && !sandbox_callback_url_ok(url)) || deliveries < 0 || deliveries > 10 ||
        (strcmp(sig, "valid") != 0 && strcmp(sig, "bad") != 0 && strcmp(sig, "none") != 0)) {
        cJSON_Delete(in);
        http_reply_error(
            req, 400, "bad_request",
            "expected {\"lead\":{…} or \"leadgen_id\", \"deliver_to\": a loopback URL, "
            "\"deliveries\": 0-10, \"signature\": valid|bad|none}",
            NULL);
        return;
    }
    char id[24] = "", page_id[24], form_id[24];
    snprintf(page_id, sizeof page_id, "%s", str_or(in, "page_id", "100000000000001"));
    snprintf(form_id, sizeof form_id, "%s", str_or(in, "form_id", "200000000000001"));
    int rc = 0;
    pthread_mutex_lock(&sb->lock);
    if (cJSON_IsString(again)) {
        for (int i = 0; i < m->n; i++) {
            if (strcmp(m->leads[i].id, again->valuestring) == 0) {
                memcpy(id, m->leads[i].id, sizeof id);
                memcpy(page_id, m->leads[i].page_id, sizeof page_id);
                memcpy(form_id, m->leads[i].form_id, sizeof form_id);
            }
        }
    } else {
        char *fd = field_data_of(lead);
        rc = fd != NULL ? add_lead(sb, m, fd, page_id, form_id, id) : -1;
        if (rc != 0) {
            free(fd);
        }
    }
    pthread_mutex_unlock(&sb->lock);
    if (rc != 0 || id[0] == '\0') {
        cJSON_Delete(in);
        http_reply_error(req, rc != 0 ? 503 : 404, rc != 0 ? "unavailable" : "not_found",
                         rc != 0 ? "out of memory" : "no such leadgen_id", NULL);
        return;
    }
    char delivery[512];
    long now_s = (long)(clock_now_ms() / 1000);
    snprintf(delivery, sizeof delivery,
             "{\"object\":\"page\",\"entry\":[{\"id\":\"%s\",\"time\":%ld,\"changes\":[{\"field\":"
             "\"leadgen\",\"value\":{\"leadgen_id\":\"%s\",\"page_id\":\"%s\",\"form_id\":\"%s\","
             "\"ad_id\":\"300000000000001\",\"created_time\":%ld}}]}]}",
             page_id, now_s, id, page_id, form_id, now_s);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "leadgen_id", id);
    cJSON *statuses = cJSON_AddArrayToObject(o, "statuses");
    for (int i = 0; i < deliveries; i++) {
        long st = deliver(m, url, delivery, sig);
        cJSON_AddItemToArray(statuses, cJSON_CreateNumber((double)st));
        sandbox_log_request(sb, SANDBOX_META, "POST", "(delivery)", id);
    }
    cJSON_Delete(in);
    http_reply_json(req, 200, o);
}

int sandbox_meta_start(struct sandbox *sb, struct app *app, char err[CONFIG_ERR_MAX])
{
    (void)err;
    struct sandbox_meta *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return -1;
    }
    /* Meta's ids are long decimal numbers; start from one that looks like them. */
    m->next_id = 900000000000000ULL + (uint64_t)(clock_now_ms() % 1000000) * 1000;
    snprintf(m->app_secret, sizeof m->app_secret, "%s",
             config_str("META_APP_SECRET", "sandbox-app-secret"));
    snprintf(m->page_token, sizeof m->page_token, "%s",
             config_str("META_PAGE_TOKEN", "sandbox-page-token"));
    sb->meta = m;
    if (http_route(app->http, "GET", "/sandbox/meta/{version}/{leadgenId}", meta_graph_get_lead,
                   sb) != 0 ||
        http_route(app->http, "POST", "/sandbox/meta/leads", meta_post_leads, sb) != 0) {
        return -1;
    }
    return 0;
}

void sandbox_meta_stop(struct sandbox *sb)
{
    struct sandbox_meta *m = sb->meta;
    if (m == NULL) {
        return;
    }
    for (int i = 0; i < m->n; i++) {
        free(m->leads[i].field_data);
    }
    free(m->leads);
    memset(m->app_secret, 0, sizeof m->app_secret);
    free(m);
    sb->meta = NULL;
}
