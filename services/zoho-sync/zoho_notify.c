/*
 * zoho_notify: leads created in Zoho CRM, told by Zoho's Notifications API
 * (README, "Lead sources"; docs/api-conformance.md rows ZN1–ZN4).
 *
 * Who does what. zoho-sync owns the channel and the record GET: it holds the
 * OAuth token (Zoho mints 10 per 10 minutes per refresh token; a second
 * holder in every ingest replica would spend that twice or more). ingest owns
 * lead intake and the lead.created stream: each fetched record is handed to
 * ingest's POST /sources/zoho, the workflow webhook's door, with the shared
 * secret, so it is stored once per record id, ignored when leadbus made it,
 * and linked back here (zoho_link.c) like a webhook's record.
 *
 * The channel (zoho_channel, one row): `POST actions/watch` for Leads.create
 * with channel_id ZOHO_NOTIFY_CHANNEL_ID, notify_url ZOHO_NOTIFY_URL, a random
 * token of 32 characters made once and kept, channel_expiry now +
 * ZOHO_NOTIFY_TTL_S; renewed with `PUT actions/watch` once less than
 * ZOHO_NOTIFY_RENEW_S is left. A refusal is an ERROR line, a retry in a
 * minute, and the degraded /readyz check "zoho-sync: Zoho notification channel".
 *
 * One row per notified record id (zoho_notified):
 *
 *   POST /sources/zoho/notify ──► pending ──(GET Leads?ids=&fields=, then ingest answers
 *   (token checked, constant     │   ▲      202 or 200)───────────────────────────────► done
 *    time; INSERT OR IGNORE:     │   └── Zoho or ingest fails: tries + 1, backoff
 *    a redelivery adds nothing)  └──(ZOHO_NOTIFY_MAX_TRIES, the record is gone, or ingest
 *                                    refuses it: 400/422)───────────────────────────► dead
 *
 * Invariants: the 200 to Zoho comes after the row is committed; a row is done
 * only after ingest stored (or recognised) the lead, so a SIGKILL anywhere
 * fetches and hands it again, and ingest's source_refs keeps it one lead. A
 * dead row is an ERROR line and leadbus_zoho_notified{state="dead"}.
 */
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "zoho_notify_parse.h"
#include "zoho_sync_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define ZN_BATCH 50

static const char zn_schema[] =
    "CREATE TABLE IF NOT EXISTS zoho_channel("
    "  id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL, expiry_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS zoho_notified("
    "  zoho_id TEXT PRIMARY KEY,"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),"
    "  tries INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL, last_error TEXT,"
    "  received_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS zoho_notified_due ON zoho_notified(state, next_ms);";

enum zn_state { ZN_PENDING, ZN_DONE, ZN_DEAD };
static const char *const zn_state_names[] = {"pending", "done", "dead"};

struct zoho_notify {
    struct zsync *z;
    struct worker w; /* its own CRM requests, with the shared token */
    char notify_url[APP_URL_MAX], ingest_url[APP_URL_MAX], channel_id[ZOHO_NOTIFY_ID_MAX];
    char secret_header[300]; /* "X-Leadbus-Secret: …" for ingest */
    int64_t ttl_ms, renew_ms, max_tries;
    pthread_mutex_t lock; /* token and expiry: the route reads them */
    char token[ZOHO_NOTIFY_TOKEN_MAX];
    int64_t expiry_ms;
    struct wake wake;
    bool started;
    pthread_t thread;
    atomic_bool channel_ok;
};

static void zn_count(const char *result)
{
    char labels[96];
    snprintf(labels, sizeof labels, "source=\"zoho-notify\",result=\"%s\"", result);
    metrics_counter_add("leadbus_source_requests_total",
                        "Leads offered by a source (webhook name or meta), by result (created, "
                        "duplicate, bad_signature, invalid, malformed, unavailable, fetch_retry, "
                        "dead)",
                        labels, 1);
}

/* ---- store jobs ---- */

/* Run sql with ?1 = a, ?2 = b (may be NULL), ?3 = i3, ?4 = i4; rows changed, or -1. */
static int zn_exec(sqlite3 *db, const char *sql, const char *a, const char *b, int64_t i3,
                   int64_t i4)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b != NULL) {
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 3, i3);
    sqlite3_bind_int64(st, 4, i4);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? sqlite3_changes(db) : -1;
}

/* The channel's token and expiry, made (a new random token) the first time. */
static int zn_load_channel_job(sqlite3 *db, void *arg)
{
    struct zoho_notify *n = arg;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT token, expiry_ms FROM zoho_channel", -1, &st, NULL) !=
        SQLITE_OK) {
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, n->token, sizeof n->token);
        n->expiry_ms = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (n->token[0] != '\0') {
        return 0;
    }
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        return -1;
    }
    for (size_t i = 0; i < sizeof r; i++) {
        snprintf(n->token + 2 * i, 3, "%02x", r[i]);
    }
    return zn_exec(db, "INSERT INTO zoho_channel(id, token, expiry_ms) VALUES(1, ?1, ?3)", n->token,
                   NULL, 0, 0) == 1
               ? 0
               : -1;
}

static int zn_save_expiry_job(sqlite3 *db, void *arg)
{
    struct zoho_notify *n = arg;
    return zn_exec(db, "UPDATE zoho_channel SET expiry_ms = ?3 WHERE token = ?1", n->token, NULL,
                   n->expiry_ms, 0) == 1
               ? 0
               : -1;
}

struct zn_record_job {
    const struct zoho_notification *note;
    int added; /* out */
};

static int zn_record_job(sqlite3 *db, void *arg)
{
    struct zn_record_job *j = arg;
    int64_t now = clock_now_ms();
    for (int i = 0; i < j->note->nids; i++) {
        int rc = zn_exec(db,
                         "INSERT OR IGNORE INTO zoho_notified(zoho_id, state, next_ms, received_ms)"
                         " VALUES(?1, 'pending', ?3, ?3)",
                         j->note->ids[i], NULL, now, 0);
        if (rc < 0) {
            return -1;
        }
        j->added += rc;
    }
    return 0;
}

struct zn_result_job {
    struct zoho_notify *n;
    const char *id;
    enum zn_state state; /* ZN_DONE, ZN_DEAD, or ZN_PENDING for a retry */
    const char *error;
    bool dead; /* out: a retry that used up ZOHO_NOTIFY_MAX_TRIES */
};

static int zn_result_job(sqlite3 *db, void *arg)
{
    struct zn_result_job *j = arg;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT tries FROM zoho_notified WHERE zoho_id = ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
    int tries = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) + 1 : 1;
    sqlite3_finalize(st);
    if (j->state == ZN_PENDING && tries >= j->n->max_tries) {
        j->state = ZN_DEAD;
        j->dead = true;
    }
    int64_t delay = 1000;
    for (int i = 1; i < tries && delay < 300000; i++) {
        delay *= 2;
    }
    if (sqlite3_prepare_v2(db,
                           "UPDATE zoho_notified SET state = ?2, tries = ?3, next_ms = ?4,"
                           " last_error = ?5 WHERE zoho_id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, zn_state_names[j->state], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, tries);
    sqlite3_bind_int64(st, 4, clock_now_ms() + delay);
    sqlite3_bind_text(st, 5, j->error, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- the channel ---- */

static void zn_iso_utc(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
}

/* Enable (first time) or renew the channel; true when Zoho answered SUCCESS. */
static bool zn_watch(struct zoho_notify *n)
{
    int64_t expiry = clock_now_ms() + n->ttl_ms, wait = 0;
    char when[32];
    zn_iso_utc(expiry, when);
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "watch");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(list, ch);
    cJSON_AddStringToObject(ch, "channel_id", n->channel_id);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(ch, "events"), cJSON_CreateString("Leads.create"));
    cJSON_AddStringToObject(ch, "channel_expiry", when);
    cJSON_AddStringToObject(ch, "token", n->token);
    cJSON_AddStringToObject(ch, "notify_url", n->notify_url);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    struct httpc_response r = {.status = 0, .retry_after_ms = -1};
    bool renew = n->expiry_ms != 0;
    if (body != NULL && zsync_token(&n->w, NULL, &wait) == 0) {
        zsync_crm(&n->w, renew ? "PUT" : "POST", "actions/watch", body, &r);
    }
    free(body);
    cJSON *ans = r.body != NULL ? cJSON_ParseWithLength(r.body, r.len) : NULL;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ans, "watch"), 0);
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(first, "code");
    bool ok = r.status == 200 && cJSON_IsString(code) && strcmp(code->valuestring, "SUCCESS") == 0;
    if (ok) {
        pthread_mutex_lock(&n->lock);
        n->expiry_ms = expiry;
        pthread_mutex_unlock(&n->lock);
        store_run(n->z->store, zn_save_expiry_job, n);
        log_info(renew ? "Zoho notification channel renewed" : "Zoho notification channel enabled",
                 LOG_FIELDS(LOG_S("channelId", n->channel_id), LOG_S("expiry", when)));
    } else if (atomic_exchange(&n->channel_ok, false) || !renew) {
        log_error("Zoho refused the notification channel (actions/watch): leads created in Zoho "
                  "wait for the workflow webhook or the next try",
                  LOG_FIELDS(LOG_I("httpStatus", r.status),
                             LOG_S("code", cJSON_IsString(code) ? code->valuestring : "")));
    }
    if (ok && !atomic_exchange(&n->channel_ok, true)) {
        log_info("Zoho notification channel is up", NULL);
    }
    cJSON_Delete(ans);
    free(r.body);
    return ok;
}

/* When the channel needs a request next (unix ms). */
static int64_t zn_channel_due(struct zoho_notify *n)
{
    int64_t now = clock_now_ms();
    if (n->expiry_ms - n->renew_ms > now) {
        return n->expiry_ms - n->renew_ms;
    }
    return zn_watch(n) ? n->expiry_ms - n->renew_ms : now + 60000;
}

static bool zn_channel_ready(void *arg)
{
    struct zoho_notify *n = arg;
    return atomic_load(&n->channel_ok);
}

/* ---- fetch and hand to ingest ---- */

static void zn_result(struct zoho_notify *n, const char *id, enum zn_state state, const char *error)
{
    struct zn_result_job j = {n, id, state, error, false};
    if (store_run(n->z->store, zn_result_job, &j) != 0) {
        log_error("Cannot record a Zoho notification's progress; it is tried again",
                  LOG_FIELDS(LOG_S("zohoId", id)));
        return;
    }
    if (j.state == ZN_DEAD) {
        zn_count("dead");
        log_error("Lead created in Zoho given up: add it by hand or resend it (zoho_notified)",
                  LOG_FIELDS(LOG_S("zohoId", id), LOG_S("error", error)));
    } else if (j.state == ZN_PENDING) {
        zn_count("fetch_retry");
        log_warn("Lead created in Zoho not taken yet; retrying with backoff",
                 LOG_FIELDS(LOG_S("zohoId", id), LOG_S("error", error)));
    }
}

/* Hand one record to ingest's /sources/zoho; the row's next state. */
static enum zn_state zn_hand(struct zoho_notify *n, const struct zoho_notify_record *rec,
                             char error[160])
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, n->secret_header);
    struct httpc_request req = {.api = "ingest",
                                .method = "POST",
                                .url = n->ingest_url,
                                .headers = h,
                                .body = rec->json,
                                .timeout_ms = (long)n->z->timeout_ms};
    struct httpc_response r = {0};
    int rc = httpc_perform(n->w.curl, &req, &r);
    curl_slist_free_all(h);
    free(r.body);
    snprintf(error, 160, "ingest: HTTP %ld %.100s", r.status, rc != 0 ? r.error : "");
    if (rc == 0 && (r.status == 200 || r.status == 202)) {
        return ZN_DONE;
    }
    return rc == 0 && (r.status == 400 || r.status == 422) ? ZN_DEAD : ZN_PENDING;
}

/* GET the records of ids (comma-separated, n of them) and hand each to ingest. */
static void zn_fetch(struct zoho_notify *n, char ids[][ZOHO_NOTIFY_ID_MAX], int count)
{
    char path[ZN_BATCH * ZOHO_NOTIFY_ID_MAX + 256];
    int w = snprintf(path, sizeof path, "Leads?ids=");
    for (int i = 0; i < count; i++) {
        w += snprintf(path + w, sizeof path - (size_t)w, "%s%s", i ? "," : "", ids[i]);
    }
    snprintf(path + w, sizeof path - (size_t)w,
             "&fields=First_Name,Last_Name,Email,Phone,Mobile,Company,City,Description,"
             "Lead_Source%s%s",
             n->z->ext_field[0] ? "," : "", n->z->ext_field);
    int64_t wait = 0;
    struct httpc_response r = {.status = 0, .retry_after_ms = -1};
    if (zsync_token(&n->w, NULL, &wait) == 0) {
        zsync_crm(&n->w, "GET", path, NULL, &r);
    }
    struct zoho_notify_record recs[ZN_BATCH];
    int got = 0;
    bool read = r.status == 204 ||
                (r.status == 200 && zoho_notify_records(r.body, r.len, recs, ZN_BATCH, &got) == 0);
    char error[160];
    snprintf(error, sizeof error, "Zoho record GET: HTTP %ld", r.status);
    free(r.body);
    for (int i = 0; i < count; i++) {
        int k = 0;
        while (k < got && strcmp(recs[k].id, ids[i]) != 0) {
            k++;
        }
        if (!read) {
            zn_result(n, ids[i], ZN_PENDING, error);
        } else if (k == got) {
            zn_result(n, ids[i], ZN_DEAD, "Zoho has no such Leads record (deleted?)");
        } else {
            enum zn_state st = zn_hand(n, &recs[k], error);
            zn_result(n, ids[i], st, st == ZN_DONE ? NULL : error);
        }
    }
    for (int k = 0; k < got; k++) {
        free(recs[k].json);
    }
}

static void zn_gauges(sqlite3 *rdb)
{
    int64_t count[3] = {0, 0, 0};
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(rdb, "SELECT state, count(*) FROM zoho_notified GROUP BY state", -1, &st,
                           NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *s = (const char *)sqlite3_column_text(st, 0);
            for (int i = 0; s != NULL && i < 3; i++) {
                count[i] =
                    strcmp(s, zn_state_names[i]) == 0 ? sqlite3_column_int64(st, 1) : count[i];
            }
        }
    }
    sqlite3_finalize(st);
    for (int i = 0; i < 3; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "state=\"%s\"", zn_state_names[i]);
        metrics_gauge_set("leadbus_zoho_notified",
                          "Zoho records notified as created, by state: pending (to fetch and hand "
                          "to ingest), done, dead",
                          labels, (double)count[i]);
    }
}

/* One round: the due rows; the unix ms of the next due row (or a minute). */
static int64_t zn_round(struct zoho_notify *n, sqlite3 *rdb)
{
    char ids[ZN_BATCH][ZOHO_NOTIFY_ID_MAX];
    int count = 0;
    int64_t now = clock_now_ms(), next = now + 60000;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(rdb,
                           "SELECT zoho_id FROM zoho_notified WHERE state = 'pending'"
                           " AND next_ms <= ?1 ORDER BY next_ms LIMIT ?2",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int(st, 2, ZN_BATCH);
        while (count < ZN_BATCH && sqlite3_step(st) == SQLITE_ROW) {
            store_text(st, 0, ids[count++], ZOHO_NOTIFY_ID_MAX);
        }
    }
    sqlite3_finalize(st);
    if (count > 0) {
        zn_fetch(n, ids, count);
    }
    if (count == ZN_BATCH) {
        return now;
    }
    if (sqlite3_prepare_v2(rdb, "SELECT min(next_ms) FROM zoho_notified WHERE state = 'pending'",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        next = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    zn_gauges(rdb);
    return next;
}

static void *zn_main(void *arg)
{
    struct zoho_notify *n = arg;
    log_set_target("zoho-sync");
    sqlite3 *rdb = NULL;
    if (store_open_reader(n->z->store, &rdb) != 0) {
        log_error("Zoho notification worker cannot start: notified leads wait until a restart",
                  NULL);
        return NULL;
    }
    uint64_t seen = 0;
    int64_t next = 0;
    while (wake_wait(&n->wake, &seen, next)) {
        int64_t channel = atomic_load(&n->z->fatal) ? clock_now_ms() + 60000 : zn_channel_due(n);
        int64_t due = atomic_load(&n->z->fatal) ? channel : zn_round(n, rdb);
        next = channel < due ? channel : due;
    }
    sqlite3_close(rdb);
    return NULL;
}

/* ---- HTTP: Zoho's notifications ---- */

static void zn_post_notify(struct http_req *req, void *arg)
{
    struct zoho_notify *n = arg;
    char *body, err[128], token[ZOHO_NOTIFY_TOKEN_MAX];
    size_t len;
    if (http_read_body(req, 256 * 1024, &body, &len) != 0) {
        return;
    }
    struct zoho_notification *note = calloc(1, sizeof *note);
    enum zoho_notify_status ps =
        note == NULL ? ZOHO_NOTIFY_MALFORMED : zoho_notify_parse(body, len, note, err, sizeof err);
    free(body);
    pthread_mutex_lock(&n->lock);
    snprintf(token, sizeof token, "%s", n->token);
    pthread_mutex_unlock(&n->lock);
    if (ps != ZOHO_NOTIFY_OK) {
        free(note);
        zn_count("malformed");
        http_reply_error(req, 400, "malformed_notification", err, NULL);
        return;
    }
    if (note->token[0] == '\0' ||
        !api_key_equal(note->token, strlen(note->token), token, strlen(token)) ||
        strcmp(note->channel_id, n->channel_id) != 0) {
        free(note);
        zn_count("bad_token");
        log_warn("Zoho notification refused: token or channel_id is not this channel's", NULL);
        http_reply_error(req, 401, "bad_token",
                         "token and channel_id must be those of leadbus's watch channel", NULL);
        return;
    }
    struct zn_record_job j = {note, 0};
    bool take = strcmp(note->module, "Leads") == 0 && strcmp(note->operation, "insert") == 0;
    if (take && store_run(n->z->store, zn_record_job, &j) != 0) {
        free(note);
        zn_count("unavailable");
        http_reply_error(req, 503, "unavailable", "the notification could not be stored", NULL);
        return;
    }
    zn_count(!take ? "ignored" : j.added < note->nids ? "duplicate" : "recorded");
    for (int i = 0; take && i < note->nids; i++) {
        log_info("Zoho notified a lead created there", LOG_FIELDS(LOG_S("zohoId", note->ids[i])));
    }
    wake_kick(&n->wake);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddNumberToObject(o, "ids", take ? note->nids : 0);
    cJSON_AddNumberToObject(o, "new", j.added);
    free(note);
    http_reply_json(req, 200, o);
}

/* ---- settings, open, close ---- */

static int zn_settings(struct zoho_notify *n, struct app *app, char err[CONFIG_ERR_MAX])
{
    const char *url = config_raw("ZOHO_NOTIFY_URL");
    snprintf(n->notify_url, sizeof n->notify_url, "%s", url != NULL ? url : "");
    char ingest[APP_URL_MAX];
    snprintf(ingest, sizeof ingest, "http://127.0.0.1:%d/sources/zoho", app->port);
    snprintf(n->ingest_url, sizeof n->ingest_url, "%s",
             config_str("ZOHO_NOTIFY_INGEST_URL", ingest));
    snprintf(n->channel_id, sizeof n->channel_id, "%s",
             config_str("ZOHO_NOTIFY_CHANNEL_ID", "1000000068001"));
    const char *secret = config_str("ZOHO_WEBHOOK_SECRET",
                                    n->z->up.zoho_sandbox ? "sandbox-zoho-webhook-secret" : "");
    int64_t ttl_s, renew_s;
    if (config_int("ZOHO_NOTIFY_TTL_S", 86400, 2, 86400, &ttl_s, err) != 0 ||
        config_int("ZOHO_NOTIFY_RENEW_S", 3600, 1, 86399, &renew_s, err) != 0 ||
        config_int("ZOHO_NOTIFY_MAX_TRIES", 8, 1, 1000, &n->max_tries, err) != 0) {
        return -1;
    }
    n->ttl_ms = ttl_s * 1000;
    n->renew_ms = renew_s * 1000;
    if (url == NULL) {
        return 0;
    }
    if ((strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) ||
        strlen(url) >= sizeof n->notify_url || !zoho_notify_id_ok(n->channel_id) ||
        renew_s >= ttl_s || strlen(secret) < 16 || strlen(secret) > 255) {
        snprintf(err, CONFIG_ERR_MAX,
                 "ZOHO_NOTIFY_URL: needs an http(s) URL, ZOHO_NOTIFY_CHANNEL_ID digits, "
                 "ZOHO_NOTIFY_RENEW_S below ZOHO_NOTIFY_TTL_S and ZOHO_WEBHOOK_SECRET (16-255 "
                 "characters: records are handed to ingest's /sources/zoho with it)");
        return -1;
    }
    snprintf(n->secret_header, sizeof n->secret_header, "X-Leadbus-Secret: %s", secret);
    return 0;
}

void zoho_notify_close(struct zoho_notify *n)
{
    if (n == NULL) {
        return;
    }
    if (n->started) {
        wake_stop(&n->wake);
        pthread_join(n->thread, NULL);
    }
    if (n->w.curl != NULL) {
        curl_easy_cleanup(n->w.curl);
    }
    wake_fini(&n->wake);
    pthread_mutex_destroy(&n->lock);
    explicit_bzero(n, sizeof *n);
    free(n);
}

int zoho_notify_open(struct zsync *z, struct app *app, struct zoho_notify **out,
                     char err[CONFIG_ERR_MAX])
{
    *out = NULL;
    struct zoho_notify *n = calloc(1, sizeof *n);
    if (n == NULL) {
        return -1;
    }
    n->z = z;
    n->w.z = z;
    n->w.index = -1;
    pthread_mutex_init(&n->lock, NULL);
    wake_init(&n->wake, 0);
    atomic_init(&n->channel_ok, false);
    if (zn_settings(n, app, err) != 0 || store_exec_schema(z->store, zn_schema) != 0 ||
        http_route(app->http, "POST", "/sources/zoho/notify", zn_post_notify, n) != 0) {
        goto fail;
    }
    if (n->notify_url[0] != '\0') {
        n->w.curl = curl_easy_init();
        if (n->w.curl == NULL || store_run(z->store, zn_load_channel_job, n) != 0 ||
            http_degraded_check(app->http, "zoho-sync: Zoho notification channel", zn_channel_ready,
                                n) != 0 ||
            pthread_create(&n->thread, NULL, zn_main, n) != 0) {
            snprintf(err, CONFIG_ERR_MAX, "zoho-sync: cannot start the Zoho notification channel");
            goto fail;
        }
        n->started = true;
    }
    *out = n;
    return 0;
fail:
    zoho_notify_close(n);
    return -1;
}
