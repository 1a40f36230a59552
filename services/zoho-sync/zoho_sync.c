/* zoho-sync: the lead.created -> Zoho CRM worker. */
#include "zoho_sync.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "zoho_sync_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_BASE_MS 1000

/*
 * A lead's way into Zoho (zoho_leads.state):
 *
 *   pending ──claimed by a worker──> sending ──upsert SUCCESS──> synced
 *     ^                                 │ │
 *     └── transient failure (backoff) ──┘ └──data error, or ZOHO_MAX_RETRY_MS──> dead
 *   dead ──POST /zoho/failed/{leadId}/retry──> pending
 *
 * A claim (sending) that was never resolved, because the process died or its
 * commit failed, is pending again at start and after 2 x timeout + 60 s.
 */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS zoho_token("
    "  id INTEGER PRIMARY KEY CHECK (id = 1), access TEXT NOT NULL, obtained_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL, api_domain TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS zoho_leads("
    "  lead_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, lead_json TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'synced', 'dead')),"
    "  zoho_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
    "  first_try_ms INTEGER, next_try_ms INTEGER NOT NULL, code TEXT, message TEXT,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS zoho_leads_due ON zoho_leads(state, next_try_ms, seq);"
    "UPDATE zoho_leads SET state = 'pending' WHERE state = 'sending';";

enum lead_result { LEAD_RETRY, LEAD_SYNCED, LEAD_DEAD };

struct pending {
    char lead_id[40];
    char *lead_json;
    int attempts;
    int64_t first_try_ms;
    struct zoho_result result;
    enum lead_result outcome;
};

/* ---- bus handler (writer thread) ---- */

/*
 * lead.erased (or a kept lead.created already rewritten so): the copy of the lead kept for
 * sending is scrubbed. A lead not yet in Zoho is never sent: dead with code ERASED, and
 * lead.sync_failed (permanent) closes it for stats. One in Zoho stays there: the CRM record is
 * not touched (ZOHO_ERASE is not built yet; README, "Privacy and retention").
 */
static int on_erased(sqlite3 *db, struct zsync *z, const char *lead_id, uint64_t seq)
{
    sqlite3_stmt *st;
    char state[16] = "";
    if (sqlite3_prepare_v2(db, "SELECT state FROM zoho_leads WHERE lead_id = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lead_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, state, sizeof state);
    }
    sqlite3_finalize(st);
    bool close = state[0] == '\0' || strcmp(state, "pending") == 0;
    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO zoho_leads(lead_id, seq, lead_json, state, next_try_ms, updated_ms, code,"
            " message) VALUES(?1, ?2, '{}', 'dead', 0, ?3, 'ERASED', 'erased on request')"
            " ON CONFLICT(lead_id) DO UPDATE SET lead_json = '{}', updated_ms = ?3,"
            " code = CASE WHEN state = 'pending' THEN 'ERASED' ELSE code END,"
            " message = CASE WHEN state = 'pending' THEN 'erased on request' ELSE message END,"
            " state = CASE WHEN state = 'pending' THEN 'dead' ELSE state END",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    sqlite3_bind_int64(st, 3, clock_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return -1;
    }
    if (!close) {
        return 0;
    }
    struct proto_lead_sync_failed ev;
    memset(&ev, 0, sizeof ev);
    snprintf(ev.lead_id, sizeof ev.lead_id, "%s", lead_id);
    snprintf(ev.code, sizeof ev.code, "ERASED");
    snprintf(ev.message, sizeof ev.message, "erased on request before it reached Zoho");
    ev.permanent = true;
    return bus_pub_append(z->pub, db, PROTO_LEAD_SYNC_FAILED, &ev, NULL);
}

/* LEAD_RETENTION_DAYS: the copy of a lead kept for sending, once it is in Zoho or given up. */
static const char retention_zoho_sql[] =
    "UPDATE zoho_leads SET lead_json = '{}' WHERE rowid IN (SELECT rowid FROM zoho_leads"
    " WHERE updated_ms < ?1 AND state IN ('synced', 'dead') AND lead_json <> '{}' LIMIT ?2)";

static int on_event(sqlite3 *db, const struct proto_event *ev, void *arg)
{
    struct zsync *z = arg;
    wake_mark(&z->wake);
    if (ev->topic == PROTO_CALL_STATUS) {
        return zoho_outcomes_on_status(db, ev);
    }
    if (ev->topic == PROTO_LEAD_ERASED) {
        return on_erased(db, z, ev->data.lead_erased.lead_id, ev->seq);
    }
    if (ev->topic != PROTO_LEAD_CREATED) {
        return 0;
    }
    if (ev->data.lead_created.erased_ms != 0) {
        return on_erased(db, z, ev->data.lead_created.lead_id, ev->seq);
    }
    char *json = proto_data_to_json(ev->topic, &ev->data);
    if (json == NULL) {
        return -1;
    }
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "INSERT OR IGNORE INTO zoho_leads(lead_id, seq, lead_json, state,"
                                " next_try_ms, updated_ms) VALUES(?1, ?2, ?3, 'pending', 0, ?4)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, ev->data.lead_created.lead_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)ev->seq);
        sqlite3_bind_text(st, 3, json, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, clock_now_ms());
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    free(json);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- store jobs ---- */

static int load_token_job(sqlite3 *db, void *arg)
{
    struct zsync *z = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT access, obtained_ms, expires_ms, api_domain FROM zoho_token",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(z->token.access, sizeof z->token.access, "%s", sqlite3_column_text(st, 0));
        z->token_obtained_ms = sqlite3_column_int64(st, 1);
        z->token.expires_ms = sqlite3_column_int64(st, 2);
        snprintf(z->token.api_domain, sizeof z->token.api_domain, "%s", sqlite3_column_text(st, 3));
    }
    sqlite3_finalize(st);
    return 0;
}

static int save_token_job(sqlite3 *db, void *arg)
{
    struct zsync *z = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO zoho_token(id, access, obtained_ms, expires_ms,"
                           " api_domain) VALUES(1, ?1, ?2, ?3, ?4)",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, z->token.access, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, z->token_obtained_ms);
    sqlite3_bind_int64(st, 3, z->token.expires_ms);
    sqlite3_bind_text(st, 4, z->token.api_domain, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

struct due_args {
    struct pending *p;
    int64_t stale_before; /* a claim older than this was lost (its commit failed): take it again */
    int n;
    int64_t next_due; /* earliest next_try_ms among waiting leads, or 0 */
};

static int load_due_job(sqlite3 *db, void *arg)
{
    struct due_args *a = arg;
    int64_t now = clock_now_ms();
    sqlite3_stmt *st;
    a->n = 0;
    a->next_due = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT lead_id, lead_json, attempts, coalesce(first_try_ms, 0)"
                           " FROM zoho_leads WHERE (state = 'pending' AND next_try_ms <= ?1)"
                           " OR (state = 'sending' AND updated_ms < ?3) ORDER BY seq LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, ZOHO_BATCH_MAX);
    sqlite3_bind_int64(st, 3, a->stale_before);
    while (sqlite3_step(st) == SQLITE_ROW && a->n < ZOHO_BATCH_MAX) {
        struct pending *p = &a->p[a->n++];
        memset(p, 0, sizeof *p);
        snprintf(p->lead_id, sizeof p->lead_id, "%s", sqlite3_column_text(st, 0));
        p->lead_json = strdup((const char *)sqlite3_column_text(st, 1));
        p->attempts = sqlite3_column_int(st, 2);
        p->first_try_ms = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    /* Claimed: other workers skip them. A restart, or a claim gone stale because
     * its results could not be committed, makes them due again. */
    if (a->n > 0) {
        if (sqlite3_prepare_v2(db,
                               "UPDATE zoho_leads SET state = 'sending', updated_ms = ?2"
                               " WHERE lead_id = ?1",
                               -1, &st, NULL) != SQLITE_OK) {
            return -1;
        }
        int rc = SQLITE_DONE;
        for (int i = 0; i < a->n && rc == SQLITE_DONE; i++) {
            sqlite3_bind_text(st, 1, a->p[i].lead_id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, now);
            rc = sqlite3_step(st);
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            return -1; /* rolled back: nothing claimed; the caller frees what was read */
        }
    }
    if (a->n == 0 &&
        sqlite3_prepare_v2(db, "SELECT min(next_try_ms) FROM zoho_leads WHERE state = 'pending'",
                           -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            a->next_due = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    return 0;
}

struct commit_args {
    struct zsync *z;
    struct pending *p;
    int n;
    int64_t retry_after_ms;
};

int64_t zsync_backoff(struct zsync *z, int attempts, int64_t retry_after_ms)
{
    int64_t d = BACKOFF_BASE_MS;
    for (int i = 1; i < attempts && d < z->backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > z->backoff_max_ms) {
        d = z->backoff_max_ms;
    }
    uint64_t r = atomic_fetch_add(&z->rng, 0x9e3779b97f4a7c15ULL) * 6364136223846793005ULL;
    d = d / 2 + (int64_t)((r >> 33) % (uint64_t)(d / 2 + 1)); /* jitter: spread retries */
    return retry_after_ms > d ? retry_after_ms : d;
}

static int commit_job(sqlite3 *db, void *arg)
{
    struct commit_args *a = arg;
    struct zsync *z = a->z;
    int64_t now = clock_now_ms();
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE zoho_leads SET state = ?2, zoho_id = ?3, attempts = ?4,"
                           " first_try_ms = ?5, next_try_ms = ?6, code = ?7, message = ?8,"
                           " updated_ms = ?9 WHERE lead_id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < a->n && rc == 0; i++) {
        struct pending *p = &a->p[i];
        const struct zoho_result *r = &p->result;
        int attempts = p->attempts + 1;
        int64_t first = p->first_try_ms ? p->first_try_ms : now;
        const char *state = "pending";
        int64_t next = 0;
        if (p->outcome == LEAD_SYNCED) {
            state = "synced";
            struct proto_lead_synced ev;
            memset(&ev, 0, sizeof ev);
            snprintf(ev.lead_id, sizeof ev.lead_id, "%s", p->lead_id);
            snprintf(ev.zoho_id, sizeof ev.zoho_id, "%s", r->id);
            snprintf(ev.action, sizeof ev.action, "%s",
                     strcmp(r->action, "update") == 0 ? "updated" : "created");
            rc = bus_pub_append(z->pub, db, PROTO_LEAD_SYNCED, &ev, NULL);
        } else if (p->outcome == LEAD_DEAD || now - first >= z->max_retry_ms) {
            bool gave_up = p->outcome != LEAD_DEAD;
            state = "dead";
            struct proto_lead_sync_failed ev;
            memset(&ev, 0, sizeof ev);
            snprintf(ev.lead_id, sizeof ev.lead_id, "%s", p->lead_id);
            snprintf(ev.code, sizeof ev.code, "%s", gave_up ? "RETRY_LIMIT" : r->code);
            snprintf(ev.message, sizeof ev.message, "%s",
                     gave_up ? "Zoho kept failing for ZOHO_MAX_RETRY_MS; retry it from /zoho/failed"
                             : r->message);
            ev.permanent = !gave_up;
            rc = bus_pub_append(z->pub, db, PROTO_LEAD_SYNC_FAILED, &ev, NULL);
        } else {
            next = now + zsync_backoff(z, attempts, a->retry_after_ms);
        }
        sqlite3_bind_text(st, 1, p->lead_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
        if (p->outcome == LEAD_SYNCED) {
            sqlite3_bind_text(st, 3, r->id, -1, SQLITE_STATIC);
        }
        sqlite3_bind_int(st, 4, attempts);
        sqlite3_bind_int64(st, 5, first);
        sqlite3_bind_int64(st, 6, next);
        sqlite3_bind_text(st, 7, r->code, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, r->message, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, now);
        if (rc == 0 && sqlite3_step(st) != SQLITE_DONE) {
            rc = -1;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- worker ---- */

/* Mint a new access token into the shared one. z->token_lock is held. */
static int refresh_locked(struct worker *w, int64_t *wait_ms)
{
    struct zsync *z = w->z;
    char *cid = curl_easy_escape(w->curl, z->client_id, 0);
    char *sec = curl_easy_escape(w->curl, z->client_secret, 0);
    char *ref = curl_easy_escape(w->curl, z->refresh_token, 0);
    char form[1024];
    snprintf(form, sizeof form,
             "grant_type=refresh_token&client_id=%s&client_secret=%s&refresh_token=%s",
             cid ? cid : "", sec ? sec : "", ref ? ref : "");
    curl_free(cid);
    curl_free(sec);
    curl_free(ref);
    char url[APP_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/oauth/v2/token", z->up.zoho_accounts);
    struct httpc_response r;
    zoho_post_form(w->curl, url, form, (long)z->timeout_ms, &r);
    char error[128];
    int64_t now = clock_now_ms();
    enum zoho_token_status st =
        r.status == 0 ? ZOHO_TOKEN_RETRY : zoho_parse_token(r.body, r.len, now, &z->token, error);
    if (r.status == 0) {
        snprintf(error, sizeof error, "%.120s", r.error);
    }
    free(r.body);
    explicit_bzero(form, sizeof form);
    switch (st) {
    case ZOHO_TOKEN_OK:
        z->token_obtained_ms = now;
        store_run(z->store, save_token_job, z);
        log_info("Zoho access token refreshed",
                 LOG_FIELDS(LOG_I("validSeconds", (z->token.expires_ms - now) / 1000)));
        return 0;
    case ZOHO_TOKEN_THROTTLED:
        log_warn("Zoho refused to mint a token (too many); waiting",
                 LOG_FIELDS(LOG_S("error", error)));
        *wait_ms = 5 * 60 * 1000;
        return -1;
    case ZOHO_TOKEN_FATAL:
        atomic_store(&z->fatal, true);
        log_error("Zoho rejected the OAuth credentials; syncing stopped until they are fixed",
                  LOG_FIELDS(LOG_S("error", error)));
        *wait_ms = 60 * 1000;
        return -1;
    default:
        log_warn("Zoho token refresh failed; will retry", LOG_FIELDS(LOG_S("error", error)));
        *wait_ms = 5000;
        return -1;
    }
}

/* A token stays until a quarter of its life (at most a minute) is left. */
static bool token_fresh(const struct zsync *z, int64_t now)
{
    int64_t life = z->token.expires_ms - z->token_obtained_ms;
    int64_t margin = life / 4 < 60000 ? life / 4 : 60000;
    return z->token.access[0] != '\0' && now < z->token.expires_ms - margin;
}

/*
 * Give w a usable token: the shared one while it is fresh, else one refresh
 * for everyone (single flight under the lock). `refused` is a token Zoho just
 * answered INVALID_TOKEN to: refresh unless another worker already has.
 */
int zsync_token(struct worker *w, const char *refused, int64_t *wait_ms)
{
    struct zsync *z = w->z;
    int rc = 0;
    pthread_mutex_lock(&z->token_lock);
    if (atomic_load(&z->fatal)) {
        *wait_ms = 60 * 1000;
        rc = -1;
    } else if (!token_fresh(z, clock_now_ms()) ||
               (refused != NULL && strcmp(refused, z->token.access) == 0)) {
        rc = refresh_locked(w, wait_ms);
    }
    if (rc == 0) {
        w->tok = z->token;
    }
    pthread_mutex_unlock(&z->token_lock);
    return rc;
}

static char *build_body(struct zsync *z, struct pending *p, int n)
{
    cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < n; i++) {
        cJSON *lead = cJSON_Parse(p[i].lead_json);
        cJSON *rec = cJSON_CreateObject();
        const struct {
            const char *from, *to;
        } map[] = {{"first_name", "First_Name"},
                   {"last_name", "Last_Name"},
                   {"email", "Email"},
                   {"source", "Lead_Source"},
                   {"company", "Company"},
                   {"notes", "Description"},
                   {"city", "City"}};
        for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(lead, map[k].from);
            if (cJSON_IsString(v) && v->valuestring[0] != '\0') {
                cJSON_AddStringToObject(rec, map[k].to, v->valuestring);
            }
        }
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(lead, "phone_status");
        const cJSON *phone = cJSON_GetObjectItemCaseSensitive(
            lead, cJSON_IsString(status) && strcmp(status->valuestring, "valid") == 0
                      ? "phone_e164"
                      : "phone_raw");
        if (cJSON_IsString(phone) && phone->valuestring[0] != '\0') {
            cJSON_AddStringToObject(rec, "Phone", phone->valuestring);
        }
        if (!cJSON_HasObjectItem(rec, "Company") && z->default_company[0] != '\0') {
            cJSON_AddStringToObject(rec, "Company", z->default_company);
        }
        if (z->ext_field[0] != '\0') {
            cJSON_AddStringToObject(rec, z->ext_field, p[i].lead_id);
        }
        cJSON_AddItemToArray(data, rec);
        cJSON_Delete(lead);
    }
    if (z->ext_field[0] == '\0') {
        cJSON *fields = cJSON_AddArrayToObject(o, "duplicate_check_fields");
        char copy[128], *save = NULL;
        snprintf(copy, sizeof copy, "%s", z->dup_fields);
        for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
            cJSON_AddItemToArray(fields, cJSON_CreateString(t));
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static const char *api_domain(const struct worker *w)
{
    return w->z->up.zoho_api_domain[0] ? w->z->up.zoho_api_domain : w->tok.api_domain;
}

static bool token_refused(const struct httpc_response *r)
{
    struct zoho_result top;
    return r->status == 401 && zoho_parse_records(r->body, r->len, &top, 1) < 0 &&
           strcmp(top.code, "INVALID_TOKEN") == 0;
}

void zsync_crm(struct worker *w, const char *method, const char *path, const char *json,
               struct httpc_response *r)
{
    struct zsync *z = w->z;
    for (int round = 0; round < 2; round++) {
        char url[APP_URL_MAX + 256];
        snprintf(url, sizeof url, "%s/crm/v8/%s", api_domain(w), path);
        if (json != NULL) {
            zoho_send_json(w->curl, method, url, w->tok.access, json, (long)z->timeout_ms, r);
        } else {
            zoho_get(w->curl, url, w->tok.access, (long)z->timeout_ms, r);
        }
        if (round == 1 || !token_refused(r)) {
            return;
        }
        /* Refresh once on INVALID_TOKEN (unless another worker already has), then send again. */
        int64_t wait;
        char refused[sizeof w->tok.access];
        snprintf(refused, sizeof refused, "%s", w->tok.access);
        if (zsync_token(w, refused, &wait) != 0) {
            return; /* the 401 stands: a transient failure for the caller */
        }
        free(r->body);
        r->body = NULL;
    }
}

/* One upsert round for a batch; fills each pending's outcome. Returns Retry-After or -1. */
static int64_t sync_batch(struct worker *w, struct pending *p, int n)
{
    struct zsync *z = w->z;
    char *body = build_body(z, p, n);
    struct httpc_response r = {.status = 0, .retry_after_ms = -1};
    struct zoho_result results[ZOHO_BATCH_MAX];
    results[0].code[0] = '\0';
    int got = -1;
    if (body != NULL) {
        zsync_crm(w, "POST", "Leads/upsert", body, &r);
        got = r.status != 0 ? zoho_parse_records(r.body, r.len, results, n) : -1;
    } else {
        snprintf(r.error, sizeof r.error, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        struct zoho_result *res = &p[i].result;
        if (i < got) {
            *res = results[i];
            p[i].outcome = res->ok ? LEAD_SYNCED : res->permanent ? LEAD_DEAD : LEAD_RETRY;
        } else {
            memset(res, 0, sizeof *res);
            snprintf(res->code, sizeof res->code, "%s",
                     r.status == 0                   ? "NETWORK"
                     : got < 0 && results[0].code[0] ? results[0].code
                                                     : "HTTP");
            snprintf(res->message, sizeof res->message, "HTTP %ld %.200s", r.status,
                     r.status == 0 ? r.error : "");
            p[i].outcome = LEAD_RETRY;
        }
    }
    if (got < 0) {
        log_warn("Zoho upsert failed; will retry",
                 LOG_FIELDS(LOG_I("leads", n), LOG_I("httpStatus", r.status),
                            LOG_S("code", p[0].result.code)));
    }
    free(r.body);
    free(body);
    return r.retry_after_ms;
}

static void log_batch(const struct pending *batch, int n)
{
    for (int i = 0; i < n; i++) {
        if (batch[i].outcome == LEAD_SYNCED) {
            log_info("Lead synced to Zoho", LOG_FIELDS(LOG_S("leadId", batch[i].lead_id),
                                                       LOG_S("zohoId", batch[i].result.id),
                                                       LOG_S("action", batch[i].result.action)));
        } else if (batch[i].outcome == LEAD_DEAD) {
            log_warn("Zoho refused a lead; it is in the dead-letter list",
                     LOG_FIELDS(LOG_S("leadId", batch[i].lead_id),
                                LOG_S("code", batch[i].result.code),
                                LOG_S("message", batch[i].result.message)));
        }
    }
}

/* No token: the claimed leads go back, to be tried again after the wait. */
static void give_back(struct pending *batch, int n)
{
    for (int i = 0; i < n; i++) {
        memset(&batch[i].result, 0, sizeof batch[i].result);
        snprintf(batch[i].result.code, sizeof batch[i].result.code, "NO_TOKEN");
        batch[i].outcome = LEAD_RETRY;
        batch[i].attempts--; /* not an attempt at Zoho */
    }
}

/* One round: claim due leads, send them, record the results. Returns when to look again. */
static int64_t sync_round(struct worker *w, struct pending *batch)
{
    struct zsync *z = w->z;
    int64_t now = clock_now_ms(), next = now + 5000;
    struct due_args due = {.p = batch, .stale_before = now - 2 * z->timeout_ms - 60000};
    if (atomic_load(&z->fatal) || store_run(z->store, load_due_job, &due) != 0) {
        return next;
    }
    if (due.n == 0) {
        return due.next_due > 0 ? due.next_due : next;
    }
    int64_t wait = 0;
    struct commit_args c = {.z = z, .p = batch, .n = due.n};
    if (zsync_token(w, NULL, &wait) == 0) {
        c.retry_after_ms = sync_batch(w, batch, due.n);
        next = 0; /* there may be more due right away */
    } else {
        give_back(batch, due.n);
        c.retry_after_ms = wait;
        next = now + wait;
    }
    if (store_run(z->store, commit_job, &c) != 0) {
        log_error("Cannot record Zoho results; the leads will be sent again (upsert keeps that "
                  "harmless)",
                  NULL);
    }
    log_batch(batch, due.n);
    for (int i = 0; i < due.n; i++) {
        free(batch[i].lead_json);
    }
    return next;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct zsync *z = w->z;
    log_set_target("zoho-sync");
    struct pending *batch = calloc(ZOHO_BATCH_MAX, sizeof *batch);
    uint64_t seen = 0;
    int64_t next = 0;
    while (batch != NULL && wake_wait(&z->wake, &seen, next)) {
        next = sync_round(w, batch);
        if (w->index == 0 && !atomic_load(&z->fatal)) {
            zoho_outcomes_sync(w); /* one writer of outcomes keeps each lead's notes in order */
        }
    }
    free(batch);
    return NULL;
}

/* ---- HTTP: the dead-letter list ---- */

static int list_failed_job(sqlite3 *db, void *arg)
{
    cJSON *list = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT lead_id, code, message, attempts, updated_ms FROM zoho_leads"
                           " WHERE state = 'dead' ORDER BY updated_ms LIMIT 1000",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "leadId", (const char *)sqlite3_column_text(st, 0));
        cJSON_AddStringToObject(
            o, "code", sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
        cJSON_AddStringToObject(
            o, "message",
            sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "");
        cJSON_AddNumberToObject(o, "attempts", sqlite3_column_int(st, 3));
        cJSON_AddNumberToObject(o, "updatedAt", (double)sqlite3_column_int64(st, 4));
        cJSON_AddItemToArray(list, o);
    }
    sqlite3_finalize(st);
    return 0;
}

static void get_failed(struct http_req *req, void *arg)
{
    struct zsync *z = arg;
    if (!api_keys_check(z->keys, http_header(req, "X-API-Key"))) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON *list = cJSON_AddArrayToObject(o, "failed");
    cJSON *outcomes = cJSON_AddArrayToObject(o, "outcomes");
    if (store_run(z->store, list_failed_job, list) != 0 ||
        store_run(z->store, zoho_outcomes_list_dead, outcomes) != 0) {
        cJSON_Delete(o);
        http_reply_error(req, 503, "unavailable", "the store could not be read; retry", NULL);
        return;
    }
    http_reply_json(req, 200, o);
}

struct retry_args {
    const char *lead_id;
    int leads, outcomes; /* how many were dead and are pending again */
};

/* Run a revive statement for one lead; how many rows it changed, or -1. */
static int revive(sqlite3 *db, const char *sql, const char *lead_id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lead_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? sqlite3_changes(db) : -1;
}

/* A dead lead and its dead outcomes, pending again in one transaction. */
static int retry_job(sqlite3 *db, void *arg)
{
    struct retry_args *a = arg;
    a->leads = revive(db,
                      "UPDATE zoho_leads SET state = 'pending', attempts = 0, first_try_ms = NULL,"
                      " next_try_ms = 0 WHERE lead_id = ?1 AND state = 'dead'",
                      a->lead_id);
    a->outcomes = revive(db, zoho_outcomes_revive_sql, a->lead_id);
    return a->leads >= 0 && a->outcomes >= 0 ? 0 : -1;
}

static void post_retry(struct http_req *req, void *arg)
{
    struct zsync *z = arg;
    if (!api_keys_check(z->keys, http_header(req, "X-API-Key"))) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
        return;
    }
    struct retry_args a = {.lead_id = req->params[0]};
    if (store_run(z->store, retry_job, &a) != 0) {
        http_reply_error(req, 503, "unavailable", "the store could not be written; retry", NULL);
        return;
    }
    if (a.leads == 0 && a.outcomes == 0) {
        http_reply_error(req, 404, "not_found", "no such lead in the dead-letter list", NULL);
        return;
    }
    wake_kick(&z->wake);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "leadId", req->params[0]);
    cJSON_AddBoolToObject(o, "lead", a.leads > 0);
    cJSON_AddNumberToObject(o, "outcomes", a.outcomes);
    http_reply_json(req, 202, o);
}

/* Ready while Zoho accepts our OAuth client (no invalid_client / invalid_code). */
static bool ready(void *arg)
{
    struct zsync *z = arg;
    return !atomic_load(&z->fatal);
}

/*
 * Degraded, not unready, while an ingest stream is unreachable: its leads
 * wait in its outbox. The dialer is not watched: its outcomes are replayed
 * when it comes.
 */
static bool peers(void *arg)
{
    struct zsync *z = arg;
    for (int i = 0; i < z->ningest; i++) { /* every ingest replica */
        if (!bus_sub_source_ready(z->sub, i)) {
            return false;
        }
    }
    return bus_sub_discovery_ok(z->sub); /* or ingest's replicas found by DNS */
}

/*
 * Not ready while Zoho refuses every call outcome (OUTCOME_REFUSALS_UNREADY
 * in a row, none written between): the requests are wrong for this org, and
 * only an operator can fix that. One outcome written makes it ready again.
 */
#define OUTCOME_REFUSALS_UNREADY 5
static bool outcomes_ready(void *arg)
{
    struct zsync *z = arg;
    return atomic_load(&z->outcome_refusals_in_row) < OUTCOME_REFUSALS_UNREADY;
}

/* ---- module ---- */

static void zsync_stop(void *state)
{
    struct zsync *z = state;
    if (z == NULL) {
        return;
    }
    metrics_collector_remove(zoho_outcomes_collect, z);
    retention_stop(z->retention);
    bus_sub_close(z->sub);
    wake_stop(&z->wake);
    for (int i = 0; i < z->nworkers; i++) {
        struct worker *w = &z->workers[i];
        if (w->started) {
            pthread_join(w->thread, NULL);
        }
        if (w->curl != NULL) {
            curl_easy_cleanup(w->curl);
        }
        explicit_bzero(&w->tok, sizeof w->tok);
    }
    free(z->workers);
    bus_pub_close(z->pub);
    store_close(z->store);
    api_keys_free(z->keys);
    explicit_bzero(z->client_secret, sizeof z->client_secret);
    explicit_bzero(z->refresh_token, sizeof z->refresh_token);
    explicit_bzero(&z->token, sizeof z->token);
    wake_fini(&z->wake);
    pthread_mutex_destroy(&z->token_lock);
    free(z);
}

static int start_workers(struct zsync *z)
{
    for (int i = 0; i < z->nworkers; i++) {
        struct worker *w = &z->workers[i];
        w->z = z;
        w->index = i;
        if ((w->curl = curl_easy_init()) == NULL ||
            pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            return -1;
        }
        w->started = true;
    }
    return 0;
}

static int read_settings(struct zsync *z, struct app *app, char err[CONFIG_ERR_MAX])
{
    int64_t concurrency;
    if (upstream_resolve(app, &z->up, err) != 0 ||
        config_int("ZOHO_MAX_RETRY_MS", 6 * 3600 * 1000, 1000, INT64_MAX / 2, &z->max_retry_ms,
                   err) != 0 ||
        config_int("ZOHO_TIMEOUT_MS", 30000, 100, 600000, &z->timeout_ms, err) != 0 ||
        config_int("ZOHO_BACKOFF_MAX_MS", 300000, 1000, 3600000, &z->backoff_max_ms, err) != 0 ||
        config_int("ZOHO_OUTCOME_MAX_TRIES", 5, 1, 1000, &z->outcome_max_tries, err) != 0 ||
        config_int("EXOTEL_MAX_RETRIES", 3, 1, 20, &z->max_attempts, err) != 0 ||
        config_int("ZOHO_CONCURRENCY", 4, 1, 16, &concurrency, err) != 0) {
        return -1;
    }
    z->workers = calloc((size_t)concurrency, sizeof *z->workers);
    if (z->workers == NULL) {
        return -1;
    }
    z->nworkers = (int)concurrency;
    /* Without credentials leadbus talks to the sandbox with the sandbox's defaults (upstream). */
    snprintf(z->client_id, sizeof z->client_id, "%s", z->up.zoho_client_id);
    snprintf(z->client_secret, sizeof z->client_secret, "%s", z->up.zoho_client_secret);
    snprintf(z->refresh_token, sizeof z->refresh_token, "%s", z->up.zoho_refresh_token);
    snprintf(z->ext_field, sizeof z->ext_field, "%s",
             config_str("ZOHO_EXTERNAL_ID_FIELD", z->up.zoho_sandbox ? "Leadbus_Id" : ""));
    snprintf(z->dup_fields, sizeof z->dup_fields, "%s",
             config_str("ZOHO_DUPLICATE_CHECK_FIELDS", "Email"));
    snprintf(z->default_company, sizeof z->default_company, "%s",
             config_str("ZOHO_DEFAULT_COMPANY", ""));
    snprintf(z->call_result, sizeof z->call_result, "%s", config_str("ZOHO_CALL_RESULT", ""));
    snprintf(z->status_field, sizeof z->status_field, "%s",
             config_str("ZOHO_CALL_STATUS_FIELD", ""));
    return 0;
}

/* The store, then the publisher, the workers and the subscriber, each needing the one before. */
static int open_store_and_bus(struct zsync *z, struct app *app, char err[CONFIG_ERR_MAX])
{
    char pub[APP_URL_MAX], replay[APP_URL_MAX];
    struct app_sources *src = calloc(1, sizeof *src);
    int rc = -1;
    if (src == NULL || app_bus_endpoints(app, "zoho-sync", pub, replay) != 0) {
        goto out;
    }
    z->ningest = app_sources_add(app, src, "ingest", err);
    if (z->ningest < 0 || app_sources_add(app, src, "dialer", err) < 0 ||
        app_store_open(app, "zoho-sync", schema, &z->store) != 0 ||
        store_exec_schema(z->store, zoho_outcomes_schema) != 0 ||
        store_run(z->store, zoho_outcomes_migrate, NULL) != 0 ||
        store_run(z->store, load_token_job, z) != 0 ||
        (z->keep[0] = (struct retention_rule){"leads", retention_zoho_sql, 0},
         retention_days("LEAD_RETENTION_DAYS", &z->keep[0].days, err)) != 0 ||
        retention_start(z->store, z->keep, 1, &z->retention) != 0) {
        goto out;
    }
    struct bus_pub_opts po = {.name = "zoho-sync",
                              .pub_url = pub,
                              .replay_url = replay,
                              .retention_days = app->retention_days,
                              .store = z->store};
    if (bus_pub_open(&po, &z->pub) != 0 ||
        store_on_commit(z->store, wake_on_commit, &z->wake) != 0 || start_workers(z) != 0) {
        goto out;
    }
    const char *topics[] = {proto_topic_name(PROTO_LEAD_CREATED),
                            proto_topic_name(PROTO_CALL_STATUS),
                            proto_topic_name(PROTO_LEAD_ERASED)};
    struct bus_sub_opts so = {.name = "zoho-sync",
                              .sources = src->src,
                              .nsources = src->n,
                              .topics = topics,
                              .ntopics = 3,
                              .handler = on_event,
                              .arg = z,
                              .store = z->store,
                              .discover = app_sources_discover(src)};
    rc = bus_sub_open(&so, &z->sub);
out:
    free(src);
    return rc;
}

static int zsync_start(struct app *app, void **state, char err[CONFIG_ERR_MAX])
{
    struct zsync *z = calloc(1, sizeof *z);
    if (z == NULL) {
        return -1;
    }
    wake_init(&z->wake, 0);
    pthread_mutex_init(&z->token_lock, NULL);
    atomic_store(&z->rng, (uint64_t)clock_now_ms());
    if (read_settings(z, app, err) != 0 || api_keys_load(app->data_dir, &z->keys, err) != 0 ||
        open_store_and_bus(z, app, err) != 0 ||
        metrics_collector_add(zoho_outcomes_collect, z) != 0 ||
        http_route(app->http, "GET", "/zoho/failed", get_failed, z) != 0 ||
        http_route(app->http, "POST", "/zoho/failed/{leadId}/retry", post_retry, z) != 0 ||
        http_ready_check(app->http, "zoho-sync", ready, z) != 0 ||
        http_degraded_check(app->http, "zoho-sync: ingest streams", peers, z) != 0 ||
        http_ready_check(app->http, bus_sub_streams_check(z->sub), bus_sub_streams_ok, z->sub) !=
            0 ||
        http_ready_check(app->http, "zoho-sync: Zoho refuses call outcomes", outcomes_ready, z) !=
            0) {
        zsync_stop(z);
        return -1;
    }
    *state = z;
    return 0;
}

const struct module zoho_sync_module = {"zoho-sync", zsync_start, zsync_stop};
