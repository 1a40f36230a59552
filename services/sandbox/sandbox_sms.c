/*
 * sandbox_sms: Exotel's Sms/send, simulated (docs/api-conformance.md S1-S3): the refusals a
 * client can cause (auth, missing fields, a body over 2000 characters, an Indian number without
 * the DLT fields, a sender that is no DLT header), an SMSMessage answer, and the delivery
 * callback (urlencoded, `sent`, or `failed_dnd` for SANDBOX_DND_NUMBERS) after
 * SANDBOX_SMS_DELIVER_MS. GET /sandbox/exotel/sms lists what was sent, for the tests.
 */
#include "sandbox.h"
#include "api_key.h"
#include "clock.h"
#include "http.h"
#include "log.h"
#include "upstream.h"

#include <civetweb.h>
#include <ctype.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMS_KEPT 10000

struct sandbox_sms_rec {
    char sid[40], from[64], to[32], body[2048], entity[64], tmpl[64], type[32];
    char callback[600], custom[160], status[24];
    int64_t created, deliver_at;
    bool delivered;
};

struct sandbox_sms {
    char sid[64];
    char auth_b64[400];
    char dnd[512];
    int64_t deliver_ms;
    struct sandbox_sms_rec *recs;
    int n, cap;
    int next_delivery; /* recs[0..next_delivery) have had their callback */
    pthread_t deliverer;
    pthread_cond_t cond;
    bool stopping;
};

static void sms_rest_exception(struct http_req *req, int status, const char *message)
{
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "RestException");
    cJSON_AddNumberToObject(e, "Status", status);
    cJSON_AddStringToObject(e, "Message", message);
    http_reply_json(req, status, o);
}

static bool sms_authorized(struct http_req *req, const struct sandbox_sms *s)
{
    const char *h = http_header(req, "Authorization");
    if (h == NULL || strncmp(h, "Basic ", 6) != 0) {
        return false;
    }
    h += 6;
    return api_key_equal(h, strlen(h), s->auth_b64, strlen(s->auth_b64)) &&
           strcmp(req->params[0], s->sid) == 0;
}

/* Indian: +91 and 10 digits, 91 and 10 digits, or 0 and 10 digits (Exotel's national form). */
static bool sms_indian(const char *to)
{
    size_t n = strlen(to);
    return (strncmp(to, "+91", 3) == 0 && n == 13) || (strncmp(to, "91", 2) == 0 && n == 12) ||
           (to[0] == '0' && n == 11);
}

/* A DLT header (6 letters, GUESS: the registered kind) or an ExoPhone (digits). */
static bool sms_sender_ok(const char *from)
{
    size_t n = strlen(from), alpha = 0, digit = 0;
    for (size_t i = 0; i < n; i++) {
        alpha += isupper((unsigned char)from[i]) ? 1 : 0;
        digit += isdigit((unsigned char)from[i]) ? 1 : 0;
    }
    return (n == 6 && alpha == 6) || (n >= 8 && n <= 15 && digit == n);
}

static bool sms_in_list(const char *list, const char *number)
{
    size_t n = strlen(number);
    for (const char *p = list; *p != '\0';) {
        size_t k = strcspn(p, ",");
        if (k >= 10 && n >= 10 && strncmp(p + k - 10, number + n - 10, 10) == 0) {
            return true;
        }
        p += k + (p[k] == ',' ? 1 : 0);
    }
    return false;
}

/* The refusal for a request, or NULL when Exotel would take it. */
static const char *sms_refusal(const struct sandbox_sms_rec *r, int body_len)
{
    if (r->from[0] == '\0' || r->to[0] == '\0' || r->body[0] == '\0') {
        return "Invalid Parameters: From, To and Body are mandatory";
    }
    if (body_len < 0) {
        return "Invalid Parameters: Body cannot exceed 2000 characters";
    }
    if (!sms_sender_ok(r->from)) {
        return "Invalid Parameters: From is not a registered Sender ID (header) or ExoPhone";
    }
    if (sms_indian(r->to) && (r->entity[0] == '\0' || r->tmpl[0] == '\0')) {
        return "Invalid Parameters: DltEntityId and DltTemplateId are mandatory for SMS to "
               "Indian numbers (TRAI DLT)";
    }
    return NULL;
}

static cJSON *sms_message_json(const struct sandbox_sms *s, const struct sandbox_sms_rec *r)
{
    char created[20], uri[160];
    sandbox_exotel_time(r->created, created);
    snprintf(uri, sizeof uri, "/v1/Accounts/%s/SMS/Messages/%s.json", s->sid, r->sid);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "Sid", r->sid);
    cJSON_AddStringToObject(m, "AccountSid", s->sid);
    cJSON_AddStringToObject(m, "From", r->from);
    cJSON_AddStringToObject(m, "To", r->to);
    cJSON_AddStringToObject(m, "DateCreated", created);
    cJSON_AddStringToObject(m, "DateUpdated", created);
    cJSON_AddNullToObject(m, "DateSent");
    cJSON_AddStringToObject(m, "Body", r->body);
    cJSON_AddStringToObject(m, "Direction", "outbound-api");
    cJSON_AddStringToObject(m, "Uri", uri);
    cJSON_AddNullToObject(m, "Price");
    cJSON_AddStringToObject(m, "Status", "queued");
    cJSON_AddNumberToObject(m, "DetailedStatusCode", 21010);
    cJSON_AddStringToObject(m, "DetailedStatus", "PENDING_TO_OPERATOR");
    return m;
}

static void sms_read_form(const char *body, size_t len, struct sandbox_sms_rec *r, int *body_len)
{
    mg_get_var(body, len, "From", r->from, sizeof r->from);
    mg_get_var(body, len, "To", r->to, sizeof r->to);
    *body_len = mg_get_var(body, len, "Body", r->body, 2001);
    mg_get_var(body, len, "DltEntityId", r->entity, sizeof r->entity);
    mg_get_var(body, len, "DltTemplateId", r->tmpl, sizeof r->tmpl);
    mg_get_var(body, len, "SmsType", r->type, sizeof r->type);
    mg_get_var(body, len, "StatusCallback", r->callback, sizeof r->callback);
    mg_get_var(body, len, "CustomField", r->custom, sizeof r->custom);
}

static void post_sms(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    struct sandbox_sms *s = sb->sms;
    if (!sms_authorized(req, s)) {
        sms_rest_exception(req, 401, "Authentication is required to view this page.");
        return;
    }
    char *body = NULL;
    size_t len = 0;
    struct sandbox_sms_rec r = {0};
    int body_len = 0;
    if (http_read_body(req, 64 * 1024, &body, &len) != 0) {
        sms_rest_exception(req, 400, "Invalid Parameters");
        return;
    }
    sms_read_form(body, len, &r, &body_len);
    free(body);
    const char *refusal = sms_refusal(&r, body_len);
    if (refusal != NULL) {
        sms_rest_exception(req, 400, refusal);
        return;
    }
    char masked[32];
    log_mask_phone(r.to, masked, sizeof masked);
    sandbox_log_request(sb, SANDBOX_EXOTEL, "POST", "Sms/send", masked);
    pthread_mutex_lock(&sb->lock);
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        struct sandbox_sms_rec *grown =
            cap <= SMS_KEPT ? realloc(s->recs, (size_t)cap * sizeof *grown) : NULL;
        if (grown == NULL) {
            pthread_mutex_unlock(&sb->lock);
            sandbox_dropped("sms");
            sms_rest_exception(req, 500, "Internal Server Error");
            return;
        }
        s->recs = grown;
        s->cap = cap;
    }
    snprintf(r.sid, sizeof r.sid, "sms%016llx%08x", (unsigned long long)sandbox_rand(sb, 0),
             (unsigned)s->n);
    r.created = clock_now_ms();
    r.deliver_at = r.created + s->deliver_ms;
    snprintf(r.status, sizeof r.status, "queued");
    s->recs[s->n++] = r;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "SMSMessage", sms_message_json(s, &r));
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&sb->lock);
    http_reply_json(req, 200, o);
}

static size_t sms_discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* Exotel's SMS callback: urlencoded SmsSid, To, Status, DetailedStatus(Code), DateSent,
 * SmsUnits, CustomField. */
static void sms_send_callback(const struct sandbox_sms_rec *r)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL || !sandbox_callback_url_ok(r->callback)) {
        curl_easy_cleanup(curl);
        return;
    }
    bool dnd = strcmp(r->status, "failed_dnd") == 0;
    char sent[20], form[1024];
    sandbox_exotel_time(clock_now_ms(), sent);
    char *to = curl_easy_escape(curl, r->to, 0), *date = curl_easy_escape(curl, sent, 0);
    char *custom = curl_easy_escape(curl, r->custom, 0);
    snprintf(form, sizeof form,
             "SmsSid=%s&To=%s&Status=%s&SmsUnits=1&DetailedStatus=%s&DetailedStatusCode=%s"
             "&DateSent=%s&CustomField=%s",
             r->sid, to ? to : "", r->status, dnd ? "FAILED_DND" : "DELIVERED_TO_HANDSET",
             dnd ? "23005" : "20005", date ? date : "", custom ? custom : "");
    curl_free(to);
    curl_free(date);
    curl_free(custom);
    curl_easy_setopt(curl, CURLOPT_URL, r->callback);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sms_discard);
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        log_warn("Sandbox SMS callback failed",
                 LOG_FIELDS(LOG_S("smsSid", r->sid), LOG_S("error", curl_easy_strerror(rc))));
    }
    curl_easy_cleanup(curl);
}

static void *sms_deliverer_main(void *arg)
{
    struct sandbox *sb = arg;
    struct sandbox_sms *s = sb->sms;
    log_set_target("sandbox");
    pthread_mutex_lock(&sb->lock);
    while (!s->stopping) {
        int64_t now = clock_now_ms();
        if (s->next_delivery >= s->n || s->recs[s->next_delivery].deliver_at > now) {
            int64_t wait =
                s->next_delivery < s->n ? s->recs[s->next_delivery].deliver_at - now : 1000;
            struct timespec dl = clock_deadline_in(wait);
            pthread_cond_timedwait(&s->cond, &sb->lock, &dl);
            continue;
        }
        struct sandbox_sms_rec *r = &s->recs[s->next_delivery++];
        snprintf(r->status, sizeof r->status, "%s",
                 s->dnd[0] != '\0' && sms_in_list(s->dnd, r->to) ? "failed_dnd" : "sent");
        r->delivered = true;
        struct sandbox_sms_rec copy = *r;
        pthread_mutex_unlock(&sb->lock);
        sms_send_callback(&copy);
        pthread_mutex_lock(&sb->lock);
    }
    pthread_mutex_unlock(&sb->lock);
    return NULL;
}

static void get_sms(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!sandbox_admit(sb, req)) {
        return;
    }
    struct sandbox_sms *s = sb->sms;
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "sms");
    pthread_mutex_lock(&sb->lock);
    for (int i = 0; i < s->n; i++) {
        const struct sandbox_sms_rec *r = &s->recs[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "sid", r->sid);
        cJSON_AddStringToObject(e, "from", r->from);
        cJSON_AddStringToObject(e, "to", r->to);
        cJSON_AddStringToObject(e, "body", r->body);
        cJSON_AddStringToObject(e, "dltEntityId", r->entity);
        cJSON_AddStringToObject(e, "dltTemplateId", r->tmpl);
        cJSON_AddStringToObject(e, "smsType", r->type);
        cJSON_AddStringToObject(e, "customField", r->custom);
        cJSON_AddStringToObject(e, "status", r->status);
        cJSON_AddBoolToObject(e, "callbackSent", r->delivered && r->callback[0] != '\0');
        cJSON_AddNumberToObject(e, "createdMs", (double)r->created);
        cJSON_AddItemToArray(list, e);
    }
    pthread_mutex_unlock(&sb->lock);
    http_reply_json(req, 200, o);
}

int sandbox_sms_start(struct sandbox *sb, struct app *app, char err[CONFIG_ERR_MAX])
{
    int64_t deliver;
    struct upstream up;
    if (config_int("SANDBOX_SMS_DELIVER_MS", 500, 0, 3600000, &deliver, err) != 0 ||
        upstream_resolve(app, &up, err) != 0) {
        return -1;
    }
    struct sandbox_sms *s = calloc(1, sizeof *s);
    if (s == NULL) {
        explicit_bzero(&up, sizeof up);
        return -1;
    }
    s->deliver_ms = deliver;
    snprintf(s->dnd, sizeof s->dnd, "%s", config_str("SANDBOX_DND_NUMBERS", ""));
    snprintf(s->sid, sizeof s->sid, "%s", up.exotel_sid);
    char pair[260];
    snprintf(pair, sizeof pair, "%s:%s", up.exotel_key, up.exotel_token);
    EVP_EncodeBlock((unsigned char *)s->auth_b64, (const unsigned char *)pair, (int)strlen(pair));
    explicit_bzero(pair, sizeof pair);
    explicit_bzero(&up, sizeof up);
    clock_cond_init(&s->cond);
    const char *p1 = "/sandbox/exotel/v1/Accounts/{sid}/Sms/send";
    const char *p2 = "/sandbox/exotel/v1/Accounts/{sid}/Sms/send.json";
    sb->sms = s;
    if (http_route(app->http, "POST", p1, post_sms, sb) != 0 ||
        http_route(app->http, "POST", p2, post_sms, sb) != 0 ||
        http_route(app->http, "GET", "/sandbox/exotel/sms", get_sms, sb) != 0 ||
        pthread_create(&s->deliverer, NULL, sms_deliverer_main, sb) != 0) {
        pthread_cond_destroy(&s->cond);
        free(s);
        sb->sms = NULL;
        return -1;
    }
    return 0;
}

void sandbox_sms_stop(struct sandbox *sb)
{
    struct sandbox_sms *s = sb->sms;
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&sb->lock);
    s->stopping = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&sb->lock);
    pthread_join(s->deliverer, NULL);
    pthread_cond_destroy(&s->cond);
    free(s->recs);
    free(s);
    sb->sms = NULL;
}
