/* sms_send: the sender thread (claim, DND check, Sms/send, record) and the delivery callback. */
#include "sms_internal.h"
#include "clock.h"
#include "http.h"
#include "http_client.h"
#include "log.h"
#include "metrics.h"

#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMS_RETRY_MS 30000 /* nothing reached Exotel (no connection, 429): try again then */

/* One claimed SMS as the sender handles it. */
struct sms_job {
    struct sms *m;
    int64_t now, next; /* in: now; out: when to look again */
    bool claimed;
    char lead_id[40], phone[24], first[128], last[128], company[256], agent[32];
    /* the outcome to record */
    enum sms_state state;
    char sid[64], status[32], detail[256];
    int64_t due; /* SMS_PENDING: when to try again */
};

static void sms_count(const char *what)
{
    char labels[64];
    snprintf(labels, sizeof labels, "result=\"%s\"", what);
    metrics_counter_add("leadbus_sms_sends_total", "Sms/send requests by result", labels, 1);
}

/* A `sending` row at start was cut mid-request: its outcome is unknown, and it is not resent. */
int sms_recover(sqlite3 *db, void *arg)
{
    struct sms *m = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE sms SET state = 'unknown', detail = 'interrupted mid-request',"
                           " updated_ms = ?1 WHERE state = 'sending' RETURNING lead_id",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, clock_now_ms());
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        atomic_fetch_add(&m->unknown, 1);
        log_error("SMS outcome unknown: the process stopped while sending it; not sent again",
                  LOG_FIELDS(LOG_S("leadId", (const char *)sqlite3_column_text(st, 0))));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void sms_read_row(sqlite3_stmt *st, struct sms_job *j)
{
    store_text(st, 0, j->lead_id, sizeof j->lead_id);
    store_text(st, 1, j->phone, sizeof j->phone);
    store_text(st, 2, j->first, sizeof j->first);
    store_text(st, 3, j->last, sizeof j->last);
    store_text(st, 4, j->company, sizeof j->company);
    store_text(st, 5, j->agent, sizeof j->agent);
}

/* The next due SMS whose lead is known, claimed (`sending`) only inside the calling window. */
static int sms_claim_job(sqlite3 *db, void *arg)
{
    struct sms_job *j = arg;
    sqlite3_stmt *st;
    j->claimed = false;
    j->next = j->now + 60000;
    if (sqlite3_prepare_v2(db,
                           "SELECT s.lead_id, l.phone_e164, l.first_name, l.last_name, l.company,"
                           " l.agent, s.due_ms FROM sms s JOIN sms_leads l ON l.lead_id = s.lead_id"
                           " WHERE s.state = 'pending' AND l.phone_e164 <> '' ORDER BY s.due_ms"
                           " LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    int64_t due = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        sms_read_row(st, j);
        due = sqlite3_column_int64(st, 6);
    }
    sqlite3_finalize(st);
    if (due < 0 || due > j->now) {
        j->next = due < 0 ? j->next : due;
        return 0;
    }
    int64_t open = call_window_next(&j->m->window, j->now);
    bool inside = open == j->now;
    /* Outside the hours nothing is claimed; the row says why it waits (the window is read
     * now, not when the row was queued, so new CALL_HOURS apply at once). */
    if (sqlite3_prepare_v2(db,
                           inside ? "UPDATE sms SET state = 'sending', tries = tries + 1,"
                                    " detail = NULL, updated_ms = ?2 WHERE lead_id = ?1"
                                  : "UPDATE sms SET detail = 'waits for the calling hours',"
                                    " updated_ms = ?2 WHERE lead_id = ?1 AND detail IS NOT"
                                    " 'waits for the calling hours'",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, j->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->now);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (!inside && sqlite3_changes(db) > 0) {
        log_info("SMS waits for the calling hours",
                 LOG_FIELDS(LOG_S("leadId", j->lead_id), LOG_I("inMs", open - j->now)));
    }
    j->claimed = inside;
    j->next = inside ? j->now : open;
    return rc == SQLITE_DONE ? 0 : -1;
}

static int sms_record_job(sqlite3 *db, void *arg)
{
    struct sms_job *j = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE sms SET state = ?2, sid = NULLIF(?3, ''), status = ?4,"
                           " detail = ?5, due_ms = ?6, updated_ms = ?7,"
                           " sent_ms = CASE WHEN ?2 = 'sent' THEN ?7 ELSE sent_ms END"
                           " WHERE lead_id = ?1 AND state = 'sending'",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, j->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sms_state_names[j->state], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, j->sid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, j->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, j->detail, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, j->due);
    sqlite3_bind_int64(st, 7, clock_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void sms_form_add(CURL *curl, char *form, size_t size, const char *name, const char *value)
{
    char *v = curl_easy_escape(curl, value, 0);
    size_t n = strlen(form);
    snprintf(form + n, size - n, "%s%s=%s", n > 0 ? "&" : "", name, v != NULL ? v : "");
    curl_free(v);
}

/* GET Numbers/{e164}.json: 0 with *dnd, or -1 when Exotel did not say (nothing concluded). */
static int sms_dnd_check(struct sms *m, const char *phone, bool *dnd)
{
    char url[APP_URL_MAX + 160];
    char *num = curl_easy_escape(m->curl, phone, 0);
    snprintf(url, sizeof url, "%s/v1/Accounts/%s/Numbers/%s.json", m->base, m->sid,
             num != NULL ? num : "");
    curl_free(num);
    struct httpc_request rq = {.api = "exotel",
                               .method = "GET",
                               .url = url,
                               .user = m->key,
                               .password = m->token,
                               .timeout_ms = m->timeout_ms};
    struct httpc_response r = {0};
    int rc = httpc_perform(m->curl, &rq, &r) == 0 && r.status == 200
                 ? sms_parse_dnd(r.body, r.len, dnd)
                 : -1;
    free(r.body);
    return rc;
}

/* The Sms/send form: sender, number, the rendered text, DLT fields, delivery callback. */
static int sms_build_form(struct sms_job *j, char *form, size_t size)
{
    struct sms *m = j->m;
    char body[2048], token[CALLBACK_TOKEN_LEN + 1], cb[APP_URL_MAX + 200];
    struct sms_vars v = {j->first, j->last, j->agent[0] ? j->agent : m->agent_fallback, j->company};
    if (sms_render(m->tmpl, &v, body, sizeof body) != 0 ||
        callback_token(m->cb_key, sizeof m->cb_key, j->lead_id, 1, token) != 0) {
        return -1;
    }
    snprintf(cb, sizeof cb, "%s/exotel/sms/callback?lead=%s&token=%s", m->public_base, j->lead_id,
             token);
    form[0] = '\0';
    sms_form_add(m->curl, form, size, "From", m->sender);
    sms_form_add(m->curl, form, size, "To", j->phone);
    sms_form_add(m->curl, form, size, "Body", body);
    sms_form_add(m->curl, form, size, "DltEntityId", m->dlt_entity);
    sms_form_add(m->curl, form, size, "DltTemplateId", m->dlt_template);
    sms_form_add(m->curl, form, size, "SmsType", m->sms_type);
    sms_form_add(m->curl, form, size, "StatusCallback", cb);
    sms_form_add(m->curl, form, size, "CustomField", j->lead_id);
    explicit_bzero(token, sizeof token);
    return 0;
}

/* An Sms/send answer into the job's outcome (see the diagram in sms_logic.h). */
static void sms_classify(struct sms_job *j, int transport, const struct httpc_response *r)
{
    j->due = 0;
    snprintf(j->status, sizeof j->status, "%ld", r->status);
    if (transport != 0 && !r->maybe_sent) {
        j->state = SMS_PENDING; /* never reached Exotel */
        j->due = clock_now_ms() + SMS_RETRY_MS;
        snprintf(j->detail, sizeof j->detail, "not sent: %.200s", r->error);
    } else if (r->status == 429) {
        j->state = SMS_PENDING;
        j->due = clock_now_ms() + (r->retry_after_ms > 0 ? r->retry_after_ms : SMS_RETRY_MS);
        snprintf(j->detail, sizeof j->detail, "rate limited");
    } else if (r->status >= 200 && r->status < 300) {
        j->state =
            sms_parse_sent(r->body, r->len, j->sid, sizeof j->sid) == 0 ? SMS_SENT : SMS_UNKNOWN;
        snprintf(j->detail, sizeof j->detail, "%s",
                 j->state == SMS_SENT ? "" : "accepted without a Sid");
    } else if (r->status >= 400 && r->status < 500) {
        bool dnd = r->body != NULL && (strstr(r->body, "DND") || strstr(r->body, "NDNC"));
        j->state = r->status == 403 && dnd ? SMS_DND : SMS_FAILED;
        snprintf(j->detail, sizeof j->detail, "%.200s", r->body != NULL ? r->body : "");
    } else {
        j->state = SMS_UNKNOWN; /* 5xx, timeout, cut: it may have gone; never sent twice */
        snprintf(j->detail, sizeof j->detail, "%.200s", transport != 0 ? r->error : "server error");
    }
}

static void sms_send_one(struct sms_job *j)
{
    struct sms *m = j->m;
    bool dnd = false;
    char form[8192], url[APP_URL_MAX + 96];
    memset(j->sid, 0, sizeof j->sid);
    if (sms_dnd_check(m, j->phone, &dnd) != 0) {
        j->state = SMS_PENDING; /* nothing sent; look again */
        j->due = clock_now_ms() + SMS_RETRY_MS;
        snprintf(j->detail, sizeof j->detail, "DND lookup failed");
        log_warn("SMS waits: Exotel's DND lookup failed", LOG_FIELDS(LOG_S("leadId", j->lead_id)));
        return;
    }
    if (dnd) {
        j->state = SMS_DND;
        snprintf(j->detail, sizeof j->detail, "number on the DND register (Numbers API)");
        return;
    }
    if (sms_build_form(j, form, sizeof form) != 0) {
        j->state = SMS_FAILED;
        snprintf(j->detail, sizeof j->detail, "the text does not fit (2000 characters)");
        return;
    }
    snprintf(url, sizeof url, "%s/v1/Accounts/%s/Sms/send.json", m->base, m->sid);
    struct curl_slist *h =
        curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    struct httpc_request rq = {.api = "exotel",
                               .method = "POST",
                               .url = url,
                               .headers = h,
                               .body = form,
                               .user = m->key,
                               .password = m->token,
                               .timeout_ms = m->timeout_ms};
    struct httpc_response r = {0};
    int transport = httpc_perform(m->curl, &rq, &r);
    explicit_bzero(form, sizeof form);
    curl_slist_free_all(h);
    sms_classify(j, transport, &r);
    free(r.body);
}

static void sms_log_outcome(struct sms *m, const struct sms_job *j)
{
    char masked[32];
    log_mask_phone(j->phone, masked, sizeof masked);
    sms_count(sms_state_names[j->state]);
    if (j->state == SMS_UNKNOWN) {
        atomic_fetch_add(&m->unknown, 1);
        log_error("SMS outcome unknown: Exotel may have it; not sent again",
                  LOG_FIELDS(LOG_S("leadId", j->lead_id), LOG_S("to", masked),
                             LOG_S("detail", j->detail)));
    } else if (j->state == SMS_FAILED) {
        log_error("SMS refused by Exotel",
                  LOG_FIELDS(LOG_S("leadId", j->lead_id), LOG_S("to", masked),
                             LOG_S("status", j->status)));
    } else {
        log_info("SMS follow-up",
                 LOG_FIELDS(LOG_S("leadId", j->lead_id), LOG_S("to", masked),
                            LOG_S("state", sms_state_names[j->state]), LOG_S("sid", j->sid)));
    }
}

void *sms_sender_main(void *arg)
{
    struct sms *m = arg;
    log_set_target("sms");
    uint64_t seen = 0;
    int64_t next = 0;
    while (wake_wait(&m->wake, &seen, next)) {
        struct sms_job j = {.m = m, .now = clock_now_ms()};
        if (store_run(m->store, sms_claim_job, &j) != 0) {
            next = clock_now_ms() + 1000; /* the store refuses: its /readyz check says so */
            continue;
        }
        next = j.next;
        if (!j.claimed) {
            continue;
        }
        sms_send_one(&j);
        if (store_run(m->store, sms_record_job, &j) != 0) {
            log_error("SMS outcome not recorded (store); it shows as unknown after a restart",
                      LOG_FIELDS(LOG_S("leadId", j.lead_id)));
        }
        sms_log_outcome(m, &j);
        next = 0;
    }
    return NULL;
}

/* ---- POST /exotel/sms/callback?lead=&token= ---- */

struct sms_cb {
    const char *lead_id, *sid, *status, *detail;
    int state; /* enum sms_state */
    int found; /* out: 0 unknown lead, 1 applied, 2 Sid mismatch */
};

static int sms_callback_job(sqlite3 *db, void *arg)
{
    struct sms_cb *c = arg;
    sqlite3_stmt *st;
    c->found = 0;
    if (sqlite3_prepare_v2(db, "SELECT sid FROM sms WHERE lead_id = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, c->lead_id, -1, SQLITE_STATIC);
    char sid[64] = "";
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, sid, sizeof sid);
        c->found = strcmp(sid, c->sid) == 0 ? 1 : 2;
    }
    sqlite3_finalize(st);
    if (c->found != 1) {
        return 0;
    }
    if (sqlite3_prepare_v2(
            db,
            "UPDATE sms SET state = ?2, status = ?3, detail = ?4, updated_ms = ?5"
            " WHERE lead_id = ?1 AND state IN ('sent', 'delivered', 'failed', 'dnd')",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, c->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sms_state_names[c->state], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->detail, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, clock_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Exotel posts the SMS callback urlencoded (docs/api-conformance.md S3). */
void sms_post_callback(struct http_req *req, void *arg)
{
    struct sms *m = arg;
    char lead[48] = "", token[80] = "", sid[64] = "", status[32] = "", detail[128] = "";
    http_query(req, "lead", lead, sizeof lead);
    http_query(req, "token", token, sizeof token);
    if (!callback_token_ok(m->cb_key, sizeof m->cb_key, lead, 1, token)) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong callback token", NULL);
        return;
    }
    char *body = NULL;
    size_t len = 0;
    if (http_read_body(req, 64 * 1024, &body, &len) != 0 ||
        mg_get_var(body, len, "SmsSid", sid, sizeof sid) <= 0 ||
        mg_get_var(body, len, "Status", status, sizeof status) <= 0) {
        free(body);
        http_reply_error(req, 400, "malformed_callback", "SmsSid and Status are required", NULL);
        return;
    }
    mg_get_var(body, len, "DetailedStatus", detail, sizeof detail);
    free(body);
    struct sms_cb c = {lead, sid, status, detail, sms_callback_state(status), 0};
    if (c.state < 0) {
        http_reply_error(req, 400, "unknown_status", "Status is not one Exotel documents", NULL);
        return;
    }
    if (store_run(m->store, sms_callback_job, &c) != 0) {
        http_reply_error(req, 503, "store_unavailable", "cannot record the callback now", NULL);
        return;
    }
    if (c.found != 1) {
        http_reply_error(req, c.found == 0 ? 404 : 409,
                         c.found == 0 ? "unknown_sms" : "sid_mismatch", "no such SMS for this lead",
                         NULL);
        return;
    }
    metrics_counter_add("leadbus_sms_callbacks_total", "SMS delivery callbacks by state",
                        c.state == SMS_DELIVERED ? "state=\"delivered\""
                        : c.state == SMS_SENT    ? "state=\"sent\""
                        : c.state == SMS_DND     ? "state=\"dnd\""
                                                 : "state=\"failed\"",
                        1);
    log_info("SMS delivery report", LOG_FIELDS(LOG_S("leadId", lead), LOG_S("status", status)));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    http_reply_json(req, 200, o);
}
