/* zoho-sync: the lead.created -> Zoho CRM worker. */
#include "zoho_sync.h"
#include "api_key.h"
#include "bus_pub.h"
#include "bus_sub.h"
#include "clock.h"
#include "log.h"
#include "upstream.h"
#include "zoho_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_BASE_MS 1000

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS zoho_token("
    "  id INTEGER PRIMARY KEY CHECK (id = 1), access TEXT NOT NULL, obtained_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL, api_domain TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS zoho_leads("
    "  lead_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, lead_json TEXT NOT NULL,"
    "  state TEXT NOT NULL, zoho_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
    "  first_try_ms INTEGER, next_try_ms INTEGER NOT NULL, code TEXT, message TEXT,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS zoho_leads_due ON zoho_leads(state, next_try_ms, seq);"
    "UPDATE zoho_leads SET state = 'pending' WHERE state = 'sending';"
    "CREATE TABLE IF NOT EXISTS zoho_outcomes("
    "  call_id TEXT NOT NULL, attempt INTEGER NOT NULL, lead_id TEXT NOT NULL, status TEXT NOT "
    "NULL,"
    "  call_sid TEXT, duration_s INTEGER NOT NULL, recording TEXT, ended_ms INTEGER NOT NULL,"
    "  note_id TEXT, call_rec_id TEXT, state TEXT NOT NULL, tries INTEGER NOT NULL DEFAULT 0,"
    "  next_try_ms INTEGER NOT NULL, code TEXT, PRIMARY KEY(call_id, attempt));";

struct zsync {
    struct store *store;
    struct bus_pub *pub;
    struct bus_sub *sub;
    struct api_keys *keys;
    struct upstream up;
    char client_id[160], client_secret[160], refresh_token[256];
    char ext_field[64], dup_fields[128], default_company[256], call_result[64], status_field[64];
    int64_t max_attempts;
    int64_t max_retry_ms, timeout_ms, backoff_max_ms;
    struct worker *workers;
    int nworkers;
    int ningest; /* the first sources are ingest's replicas */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t gen; /* bumped by every kick; a worker that has not seen it looks for work */
    bool stopping;
    atomic_bool fatal;
    atomic_bool dirty; /* the bus handler added work; the next commit wakes the workers */
    /* One token for all workers, refreshed by one of them at a time. */
    pthread_mutex_t token_lock;
    struct zoho_token token;
    int64_t token_obtained_ms;
    atomic_uint_fast64_t rng;
};

/* A worker sends its own batches (ZOHO_CONCURRENCY of them at once); worker 0 also writes call
 * outcomes. */
struct worker {
    struct zsync *z;
    int index;
    CURL *curl;
    struct zoho_token tok; /* this worker's copy of the shared token */
    pthread_t thread;
    bool started;
};

struct pending {
    char lead_id[40];
    char *lead_json;
    int attempts;
    int64_t first_try_ms;
    struct zoho_result result;
    int outcome; /* 0 retry, 1 synced, 2 dead */
};

static void kick(void *arg)
{
    struct zsync *z = arg;
    pthread_mutex_lock(&z->lock);
    z->gen++;
    pthread_cond_broadcast(&z->cond);
    pthread_mutex_unlock(&z->lock);
}

/* Commit hook: wake the worker only for commits that brought work, not for its own. */
static void on_commit(void *arg)
{
    struct zsync *z = arg;
    if (atomic_exchange(&z->dirty, false)) {
        kick(z);
    }
}

/* ---- bus handler (writer thread) ---- */

static int on_call_status(sqlite3 *db, const struct proto_event *ev)
{
    const struct proto_call_status *c = &ev->data.call_status;
    if (!c->final) {
        return 0; /* only an attempt's outcome goes to the CRM */
    }
    sqlite3_stmt *st;
    int rc =
        sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO zoho_outcomes(call_id, attempt, lead_id, status,"
                           " call_sid, duration_s, recording, ended_ms, state, next_try_ms)"
                           " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,'pending',0)",
                           -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, c->call_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, c->attempt);
        sqlite3_bind_text(st, 3, c->lead_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, c->status, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, c->call_sid, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, c->duration_s);
        sqlite3_bind_text(st, 7, c->recording_url, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, ev->ts);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

static int on_event(sqlite3 *db, const struct proto_event *ev, void *arg)
{
    struct zsync *z = arg;
    atomic_store(&z->dirty, true);
    if (ev->topic == PROTO_CALL_STATUS) {
        return on_call_status(db, ev);
    }
    if (ev->topic != PROTO_LEAD_CREATED) {
        return 0;
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

static int64_t backoff(struct zsync *z, int attempts, int64_t retry_after_ms)
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
        if (p->outcome == 1) {
            state = "synced";
            struct proto_lead_synced ev;
            memset(&ev, 0, sizeof ev);
            snprintf(ev.lead_id, sizeof ev.lead_id, "%s", p->lead_id);
            snprintf(ev.zoho_id, sizeof ev.zoho_id, "%s", r->id);
            snprintf(ev.action, sizeof ev.action, "%s",
                     strcmp(r->action, "update") == 0 ? "updated" : "created");
            rc = bus_pub_append(z->pub, db, PROTO_LEAD_SYNCED, &ev, NULL);
        } else if (p->outcome == 2 || now - first >= z->max_retry_ms) {
            bool gave_up = p->outcome != 2;
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
            next = now + backoff(z, attempts, a->retry_after_ms);
        }
        sqlite3_bind_text(st, 1, p->lead_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
        if (p->outcome == 1) {
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
static int ensure_token(struct worker *w, const char *refused, int64_t *wait_ms)
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

/* One upsert round for a batch; fills each pending's outcome. Returns Retry-After or -1. */
static int64_t sync_batch(struct worker *w, struct pending *p, int n)
{
    struct zsync *z = w->z;
    char *body = build_body(z, p, n);
    const char *domain = z->up.zoho_api_domain[0] ? z->up.zoho_api_domain : w->tok.api_domain;
    char url[APP_URL_MAX + 64];
    snprintf(url, sizeof url, "%s/crm/v8/Leads/upsert", domain);
    struct httpc_response r = {0};
    struct zoho_result results[ZOHO_BATCH_MAX];
    int got = -1;
    for (int round = 0; round < 2 && body != NULL; round++) {
        zoho_post_json(w->curl, url, w->tok.access, body, (long)z->timeout_ms, &r);
        got = r.status != 0 ? zoho_parse_records(r.body, r.len, results, n) : -1;
        bool expired = r.status == 401 && got < 0 && strcmp(results[0].code, "INVALID_TOKEN") == 0;
        if (!expired || round == 1) {
            break;
        }
        /* Refresh once on INVALID_TOKEN, then try once more. */
        free(r.body);
        r.body = NULL;
        int64_t wait;
        char refused[sizeof w->tok.access];
        snprintf(refused, sizeof refused, "%s", w->tok.access);
        if (ensure_token(w, refused, &wait) != 0) {
            got = -1;
            r.status = 0;
            snprintf(r.error, sizeof r.error, "token refresh failed");
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        struct zoho_result *res = &p[i].result;
        if (i < got) {
            *res = results[i];
            p[i].outcome = res->ok ? 1 : res->permanent ? 2 : 0;
        } else {
            memset(res, 0, sizeof *res);
            snprintf(res->code, sizeof res->code, "%s",
                     r.status == 0                   ? "NETWORK"
                     : got < 0 && results[0].code[0] ? results[0].code
                                                     : "HTTP");
            snprintf(res->message, sizeof res->message, "HTTP %ld %.200s", r.status,
                     r.status == 0 ? r.error : "");
            p[i].outcome = 0;
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

/* ---- call outcomes ---- */

struct outcome {
    char call_id[64], lead_id[40], status[24], call_sid[64], recording[512], zoho_id[32];
    char note_id[32], call_rec_id[32];
    int attempt, tries;
    int64_t duration_s, ended_ms;
};

struct outcome_args {
    struct outcome o[20];
    int n;
};

/* Outcomes whose lead is already in Zoho: the rest wait for it. */
static int load_outcomes_job(sqlite3 *db, void *arg)
{
    struct outcome_args *a = arg;
    sqlite3_stmt *st;
    a->n = 0;
    if (sqlite3_prepare_v2(
            db,
            "SELECT o.call_id, o.attempt, o.lead_id, o.status, o.call_sid, o.duration_s,"
            " o.recording, o.ended_ms, o.note_id, o.call_rec_id, o.tries, l.zoho_id"
            " FROM zoho_outcomes o JOIN zoho_leads l ON l.lead_id = o.lead_id"
            " WHERE o.state = 'pending' AND l.state = 'synced' AND o.next_try_ms <= ?1"
            " ORDER BY o.ended_ms LIMIT 20",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, clock_now_ms());
    while (sqlite3_step(st) == SQLITE_ROW && a->n < 20) {
        struct outcome *o = &a->o[a->n++];
        store_text(st, 0, o->call_id, sizeof o->call_id);
        o->attempt = sqlite3_column_int(st, 1);
        store_text(st, 2, o->lead_id, sizeof o->lead_id);
        store_text(st, 3, o->status, sizeof o->status);
        store_text(st, 4, o->call_sid, sizeof o->call_sid);
        o->duration_s = sqlite3_column_int64(st, 5);
        store_text(st, 6, o->recording, sizeof o->recording);
        o->ended_ms = sqlite3_column_int64(st, 7);
        store_text(st, 8, o->note_id, sizeof o->note_id);
        store_text(st, 9, o->call_rec_id, sizeof o->call_rec_id);
        o->tries = sqlite3_column_int(st, 10);
        store_text(st, 11, o->zoho_id, sizeof o->zoho_id);
    }
    sqlite3_finalize(st);
    return 0;
}

struct outcome_save {
    const struct outcome *o;
    const char *state;
    int64_t next_try_ms;
    const char *code;
};

static int save_outcome_job(sqlite3 *db, void *arg)
{
    struct outcome_save *s = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            db,
            "UPDATE zoho_outcomes SET note_id = nullif(?3, ''), call_rec_id = nullif(?4, ''),"
            " state = ?5, tries = ?6, next_try_ms = ?7, code = ?8"
            " WHERE call_id = ?1 AND attempt = ?2",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, s->o->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, s->o->attempt);
    sqlite3_bind_text(st, 3, s->o->note_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, s->o->call_rec_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, s->state, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, s->o->tries);
    sqlite3_bind_int64(st, 7, s->next_try_ms);
    sqlite3_bind_text(st, 8, s->code, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void iso_utc(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
}

static const char *api_domain(const struct worker *w)
{
    return w->z->up.zoho_api_domain[0] ? w->z->up.zoho_api_domain : w->tok.api_domain;
}

/*
 * Has this outcome already been written to the lead's related list? Each note
 * and call record carries a marker, so a write whose answer was lost (a crash,
 * a 500 after the write) is found instead of repeated. -1: could not tell.
 */
static int find_marked(struct worker *w, const struct outcome *o, const char *list,
                       const char *marker, char id_out[32])
{
    char url[APP_URL_MAX + 128];
    snprintf(url, sizeof url, "%s/crm/v8/Leads/%s/%s", api_domain(w), o->zoho_id, list);
    struct httpc_response r;
    zoho_get(w->curl, url, w->tok.access, (long)w->z->timeout_ms, &r);
    int found = -1;
    if (r.status == 204) {
        found = 0;
    } else if (r.status == 200) {
        found = 0;
        cJSON *root = cJSON_ParseWithLength(r.body, r.len);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
        for (const cJSON *rec = cJSON_IsArray(data) ? data->child : NULL; rec != NULL;
             rec = rec->next) {
            char *text = cJSON_PrintUnformatted(rec);
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
            if (text != NULL && strstr(text, marker) != NULL && cJSON_IsString(id)) {
                snprintf(id_out, 32, "%s", id->valuestring);
                found = 1;
            }
            free(text);
        }
        cJSON_Delete(root);
    }
    free(r.body);
    return found;
}

/* POST (or PUT) one record; 1 written (id_out set), 0 transient failure, -1 refused for good. */
static int write_record(struct worker *w, bool put, const char *path, cJSON *rec, char id_out[32],
                        char code[64])
{
    cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data");
    cJSON_AddItemToArray(data, rec);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char url[APP_URL_MAX + 128];
    snprintf(url, sizeof url, "%s/crm/v8/%s", api_domain(w), path);
    struct httpc_response r;
    (put ? zoho_put_json : zoho_post_json)(w->curl, url, w->tok.access, body ? body : "{}",
                                           (long)w->z->timeout_ms, &r);
    free(body);
    struct zoho_result res;
    int got = r.status != 0 ? zoho_parse_records(r.body, r.len, &res, 1) : -1;
    free(r.body);
    snprintf(code, 64, "%s", got == 1 ? res.code : r.status == 0 ? "NETWORK" : "HTTP");
    if (got == 1 && res.ok) {
        snprintf(id_out, 32, "%s", res.id);
        return 1;
    }
    return got == 1 && res.permanent ? -1 : 0;
}

static int write_outcome(struct worker *w, struct outcome *o, char code[64])
{
    struct zsync *z = w->z;
    char marker[128], title[128], when[32];
    snprintf(marker, sizeof marker, "[leadbus call %s attempt %d]", o->call_id, o->attempt);
    snprintf(title, sizeof title, "Auto-call attempt %d/%lld: %s", o->attempt,
             (long long)z->max_attempts, o->status);
    iso_utc(o->ended_ms, when);
    if (o->note_id[0] == '\0') {
        int found = find_marked(w, o, "Notes", marker, o->note_id);
        if (found < 0) {
            snprintf(code, 64, "LOOKUP");
            return 0;
        }
        if (found == 0) {
            char content[1024];
            snprintf(content, sizeof content,
                     "%s\nEnded: %s\nDuration: %lld s\nExotel Sid: %s\nRecording: %s\n%s", title,
                     when, (long long)o->duration_s, o->call_sid[0] ? o->call_sid : "-",
                     o->recording[0] ? o->recording : "-", marker);
            cJSON *note = cJSON_CreateObject();
            cJSON_AddStringToObject(note, "Note_Title", title);
            cJSON_AddStringToObject(note, "Note_Content", content);
            cJSON *parent = cJSON_AddObjectToObject(note, "Parent_Id");
            cJSON_AddStringToObject(cJSON_AddObjectToObject(parent, "module"), "api_name", "Leads");
            cJSON_AddStringToObject(parent, "id", o->zoho_id);
            char path[96];
            snprintf(path, sizeof path, "Leads/%s/Notes", o->zoho_id);
            int rc = write_record(w, false, path, note, o->note_id, code);
            if (rc != 1) {
                return rc;
            }
        }
    }
    /* A Calls record only for a connected call: Zoho refuses a zero duration. */
    bool connected = strcmp(o->status, "completed") == 0 && o->duration_s > 0;
    if (connected && o->call_rec_id[0] == '\0') {
        int found = find_marked(w, o, "Calls", marker, o->call_rec_id);
        if (found < 0) {
            snprintf(code, 64, "LOOKUP");
            return 0;
        }
        if (found == 0) {
            char start[32], dur[48], desc[768];
            iso_utc(o->ended_ms - o->duration_s * 1000, start);
            snprintf(dur, sizeof dur, "%02lld:%02lld", (long long)(o->duration_s / 60),
                     (long long)(o->duration_s % 60));
            snprintf(desc, sizeof desc, "Exotel Sid: %s\nRecording: %s\n%s", o->call_sid,
                     o->recording[0] ? o->recording : "-", marker);
            cJSON *call = cJSON_CreateObject();
            cJSON_AddStringToObject(call, "Subject", title);
            cJSON_AddStringToObject(call, "Call_Type", "Outbound");
            cJSON_AddStringToObject(call, "Outbound_Call_Status", "Completed");
            cJSON_AddStringToObject(call, "Call_Start_Time", start);
            cJSON_AddStringToObject(call, "Call_Duration", dur);
            if (z->call_result[0] != '\0') {
                cJSON_AddStringToObject(call, "Call_Result", z->call_result);
            }
            cJSON_AddStringToObject(call, "Description", desc);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(call, "What_Id"), "id", o->zoho_id);
            cJSON_AddStringToObject(call, "$se_module", "Leads");
            int rc = write_record(w, false, "Calls", call, o->call_rec_id, code);
            if (rc != 1) {
                return rc;
            }
        }
    }
    if (z->status_field[0] != '\0') {
        /* The latest outcome on the lead itself; a PUT of the same value is harmless to repeat. */
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddStringToObject(rec, "id", o->zoho_id);
        cJSON_AddStringToObject(rec, z->status_field, o->status);
        char updated_id[32];
        int rc = write_record(w, true, "Leads", rec, updated_id, code);
        if (rc != 1) {
            return rc;
        }
    }
    return 1;
}

static void sync_outcomes(struct worker *w)
{
    struct zsync *z = w->z;
    struct outcome_args *a = calloc(1, sizeof *a);
    int64_t wait;
    if (a == NULL || store_run(z->store, load_outcomes_job, a) != 0 || a->n == 0 ||
        ensure_token(w, NULL, &wait) != 0) {
        free(a);
        return;
    }
    for (int i = 0; i < a->n; i++) {
        struct outcome *o = &a->o[i];
        char code[64] = "";
        int rc = write_outcome(w, o, code);
        o->tries++;
        struct outcome_save s = {o, rc == 1 ? "done" : rc < 0 ? "dead" : "pending", 0, code};
        if (rc == 0) {
            s.next_try_ms = clock_now_ms() + backoff(z, o->tries, -1);
        }
        store_run(z->store, save_outcome_job, &s);
        if (rc == 1) {
            log_info("Call outcome written to Zoho",
                     LOG_FIELDS(LOG_S("leadId", o->lead_id), LOG_S("callId", o->call_id),
                                LOG_I("attempt", o->attempt), LOG_S("status", o->status)));
        } else if (rc < 0) {
            log_warn("Zoho refused a call outcome",
                     LOG_FIELDS(LOG_S("callId", o->call_id), LOG_S("code", code)));
        }
    }
    free(a);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct zsync *z = w->z;
    log_set_target("zoho-sync");
    int64_t wake = 0;
    uint64_t seen = 0;
    struct pending *batch = calloc(ZOHO_BATCH_MAX, sizeof *batch);
    pthread_mutex_lock(&z->lock);
    while (!z->stopping && batch != NULL) {
        int64_t now = clock_now_ms();
        if (seen == z->gen && now < wake) {
            struct timespec dl = clock_deadline_in(wake - now);
            pthread_cond_timedwait(&z->cond, &z->lock, &dl);
            continue;
        }
        seen = z->gen;
        pthread_mutex_unlock(&z->lock);

        struct due_args due = {.p = batch, .stale_before = now - 2 * z->timeout_ms - 60000};
        wake = now + 5000;
        if (!atomic_load(&z->fatal) && store_run(z->store, load_due_job, &due) == 0 && due.n > 0) {
            int64_t wait = 0;
            struct commit_args c = {.z = z, .p = batch, .n = due.n};
            if (ensure_token(w, NULL, &wait) == 0) {
                c.retry_after_ms = sync_batch(w, batch, due.n);
                wake = 0; /* there may be more due right away */
            } else {
                /* No token: the claimed leads go back, to be tried again after the wait. */
                for (int i = 0; i < due.n; i++) {
                    memset(&batch[i].result, 0, sizeof batch[i].result);
                    snprintf(batch[i].result.code, sizeof batch[i].result.code, "NO_TOKEN");
                    batch[i].outcome = 0;
                    batch[i].attempts--; /* not an attempt at Zoho */
                }
                c.retry_after_ms = wait;
                wake = now + wait;
            }
            if (store_run(z->store, commit_job, &c) != 0) {
                log_error("Cannot record Zoho results; the leads will be sent again (upsert keeps "
                          "that harmless)",
                          NULL);
            }
            for (int i = 0; i < due.n; i++) {
                if (batch[i].outcome == 1) {
                    log_info("Lead synced to Zoho",
                             LOG_FIELDS(LOG_S("leadId", batch[i].lead_id),
                                        LOG_S("zohoId", batch[i].result.id),
                                        LOG_S("action", batch[i].result.action)));
                } else if (batch[i].outcome == 2) {
                    log_warn("Zoho refused a lead; it is in the dead-letter list",
                             LOG_FIELDS(LOG_S("leadId", batch[i].lead_id),
                                        LOG_S("code", batch[i].result.code),
                                        LOG_S("message", batch[i].result.message)));
                }
            }
        } else if (due.next_due > 0) {
            wake = due.next_due;
        }
        for (int i = 0; i < due.n; i++) {
            free(batch[i].lead_json);
        }
        if (w->index == 0 && !atomic_load(&z->fatal)) {
            sync_outcomes(w); /* one writer of outcomes keeps each lead's notes in order */
        }
        pthread_mutex_lock(&z->lock);
    }
    pthread_mutex_unlock(&z->lock);
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
    if (store_run(z->store, list_failed_job, list) != 0) {
        cJSON_Delete(o);
        http_reply_error(req, 503, "unavailable", "the store could not be read; retry", NULL);
        return;
    }
    http_reply_json(req, 200, o);
}

struct retry_args {
    const char *lead_id;
    int changed;
};

static int retry_job(sqlite3 *db, void *arg)
{
    struct retry_args *a = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            db,
            "UPDATE zoho_leads SET state = 'pending', attempts = 0, first_try_ms = NULL,"
            " next_try_ms = 0 WHERE lead_id = ?1 AND state = 'dead'",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, a->lead_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    a->changed = sqlite3_changes(db);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void post_retry(struct http_req *req, void *arg)
{
    struct zsync *z = arg;
    if (!api_keys_check(z->keys, http_header(req, "X-API-Key"))) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
        return;
    }
    struct retry_args a = {req->params[0], 0};
    if (store_run(z->store, retry_job, &a) != 0) {
        http_reply_error(req, 503, "unavailable", "the store could not be written; retry", NULL);
        return;
    }
    if (a.changed == 0) {
        http_reply_error(req, 404, "not_found", "no such lead in the dead-letter list", NULL);
        return;
    }
    kick(z);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "leadId", req->params[0]);
    http_reply_json(req, 202, o);
}

/*
 * Ready when Zoho accepts our credentials and ingest's stream is reachable.
 * The dialer is not required: leads still sync while it is down (or, until
 * it exists, absent), and its outcomes are replayed when it comes.
 */
static bool ready(void *arg)
{
    struct zsync *z = arg;
    for (int i = 0; i < z->ningest; i++) { /* every ingest replica */
        if (!bus_sub_source_ready(z->sub, i)) {
            return false;
        }
    }
    return !atomic_load(&z->fatal);
}

/* ---- module ---- */

static void zsync_stop(void *state)
{
    struct zsync *z = state;
    if (z == NULL) {
        return;
    }
    bus_sub_close(z->sub);
    pthread_mutex_lock(&z->lock);
    z->stopping = true;
    pthread_cond_broadcast(&z->cond);
    pthread_mutex_unlock(&z->lock);
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
    pthread_mutex_destroy(&z->lock);
    pthread_mutex_destroy(&z->token_lock);
    pthread_cond_destroy(&z->cond);
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

static int zsync_start(struct app *app, void **state, char err[CONFIG_ERR_MAX])
{
    struct zsync *z = calloc(1, sizeof *z);
    if (z == NULL) {
        return -1;
    }
    pthread_mutex_init(&z->lock, NULL);
    pthread_mutex_init(&z->token_lock, NULL);
    clock_cond_init(&z->cond);
    if (upstream_resolve(app, &z->up, err) != 0 ||
        config_int("ZOHO_MAX_RETRY_MS", 6 * 3600 * 1000, 1000, INT64_MAX / 2, &z->max_retry_ms,
                   err) != 0 ||
        config_int("ZOHO_TIMEOUT_MS", 30000, 100, 600000, &z->timeout_ms, err) != 0 ||
        config_int("ZOHO_BACKOFF_MAX_MS", 300000, 1000, 3600000, &z->backoff_max_ms, err) != 0) {
        zsync_stop(z);
        return -1;
    }
    int64_t concurrency;
    if (config_int("ZOHO_CONCURRENCY", 4, 1, 16, &concurrency, err) != 0 ||
        (z->workers = calloc((size_t)concurrency, sizeof *z->workers)) == NULL) {
        zsync_stop(z);
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
    if (config_int("EXOTEL_MAX_RETRIES", 3, 1, 20, &z->max_attempts, err) != 0) {
        zsync_stop(z);
        return -1;
    }
    atomic_store(&z->rng, (uint64_t)clock_now_ms());
    char pub[APP_URL_MAX], replay[APP_URL_MAX];
    app_bus_endpoints(app, "zoho-sync", pub, replay);
    struct app_sources *src = calloc(1, sizeof *src);
    if (src == NULL || (z->ningest = app_sources_add(app, src, "ingest", err)) < 0 ||
        app_sources_add(app, src, "dialer", err) < 0) {
        free(src);
        zsync_stop(z);
        return -1;
    }
    struct bus_pub_opts po = {.name = "zoho-sync",
                              .pub_url = pub,
                              .replay_url = replay,
                              .retention_days = app->retention_days};
    const char *topics[] = {"lead.created", "call.status"};
    struct bus_sub_opts so = {.name = "zoho-sync",
                              .sources = src->src,
                              .nsources = src->n,
                              .topics = topics,
                              .ntopics = 2,
                              .handler = on_event,
                              .arg = z};
    if (api_keys_load(app->data_dir, &z->keys, err) != 0 ||
        app_store_open(app, "zoho-sync", schema, &z->store) != 0 ||
        store_run(z->store, load_token_job, z) != 0 ||
        (po.store = z->store, bus_pub_open(&po, &z->pub)) != 0 ||
        store_on_commit(z->store, on_commit, z) != 0 || start_workers(z) != 0 ||
        (so.store = z->store, bus_sub_open(&so, &z->sub)) != 0 ||
        http_route(app->http, "GET", "/zoho/failed", get_failed, z) != 0 ||
        http_route(app->http, "POST", "/zoho/failed/{leadId}/retry", post_retry, z) != 0 ||
        http_ready_check(app->http, "zoho-sync", ready, z) != 0) {
        free(src);
        zsync_stop(z);
        return -1;
    }
    free(src);
    *state = z;
    return 0;
}

const struct module zoho_sync_module = {"zoho-sync", zsync_start, zsync_stop};
