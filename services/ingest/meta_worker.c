/*
 * meta_worker: Meta Lead Ads' worker. Each recorded leadgen_id (meta_leads,
 * pending) is fetched from the Graph API and stored with its lead.created, or
 * tried again later, or given up (dead); the state machine is drawn in
 * sources_meta.c.
 */
#include "clock.h"
#include "http_client.h"
#include "lead_intake.h"
#include "log.h"
#include "metrics.h"
#include "sources_meta_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_BATCH 16

/* ---- writer thread ---- */

struct meta_done_job {
    struct sources_meta *m;
    const char *leadgen_id;
    struct proto_lead_created *lead;
    int created; /* out: SOURCE_CREATED, SOURCE_DUPLICATE, or -2 when no longer pending */
};

int meta_exec_bound(sqlite3 *db, const char *sql, const char *a, const char *b, int64_t i3,
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

static int meta_done_job(sqlite3 *db, void *arg)
{
    struct meta_done_job *j = arg;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM meta_leads WHERE leadgen_id = ?1 AND state = 'pending'",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, j->leadgen_id, -1, SQLITE_STATIC);
    bool pending = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!pending) {
        j->created = -2;
        return 0;
    }
    j->created = sources_commit(&j->m->ctx, db, j->lead);
    if (j->created < 0) {
        return -1;
    }
    return meta_exec_bound(db,
                           "UPDATE meta_leads SET state = 'done', lead_id = ?2, tries = tries + 1,"
                           " last_error = NULL, next_ms = ?3 WHERE leadgen_id = ?1",
                           j->leadgen_id, j->lead->lead_id, clock_now_ms(), 0) == 1
               ? 0
               : -1;
}

struct meta_fail_job {
    struct sources_meta *m;
    const char *leadgen_id;
    const char *error;
    bool permanent;
    bool dead; /* out */
    int tries; /* out */
};

static int meta_fail_job(sqlite3 *db, void *arg)
{
    struct meta_fail_job *j = arg;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            db, "SELECT tries FROM meta_leads WHERE leadgen_id = ?1 AND state = 'pending'", -1, &st,
            NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, j->leadgen_id, -1, SQLITE_STATIC);
    int tries = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) + 1 : -1;
    sqlite3_finalize(st);
    if (tries < 0) {
        return 0;
    }
    j->tries = tries;
    j->dead = j->permanent || tries >= j->m->max_tries;
    int64_t delay = j->m->base_ms;
    for (int i = 1; i < tries && delay < j->m->max_ms; i++) {
        delay *= 2;
    }
    delay = delay < j->m->max_ms ? delay : j->m->max_ms;
    return meta_exec_bound(
               db,
               j->dead ? "UPDATE meta_leads SET state = 'dead', last_error = ?2, tries = ?4,"
                         " next_ms = ?3 WHERE leadgen_id = ?1"
                       : "UPDATE meta_leads SET last_error = ?2, tries = ?4, next_ms = ?3"
                         " WHERE leadgen_id = ?1",
               j->leadgen_id, j->error, clock_now_ms() + delay, tries) == 1
               ? 0
               : -1;
}

/* ---- the worker ---- */

static void meta_gauges(sqlite3 *rdb)
{
    int64_t count[META_ROW_STATES] = {0, 0, 0};
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(rdb, "SELECT state, count(*) FROM meta_leads GROUP BY state", -1, &st,
                           NULL) != SQLITE_OK) {
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        for (int i = 0; s != NULL && i < META_ROW_STATES; i++) {
            count[i] =
                strcmp(s, meta_row_state_name[i]) == 0 ? sqlite3_column_int64(st, 1) : count[i];
        }
    }
    sqlite3_finalize(st);
    for (int i = 0; i < META_ROW_STATES; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "state=\"%s\"", meta_row_state_name[i]);
        metrics_gauge_set("leadbus_meta_leads",
                          "Meta leadgen ids by state: pending (to fetch from the Graph API), done, "
                          "dead (GET /sources/meta/failed)",
                          labels, (double)count[i]);
    }
}

static bool meta_failed(struct sources_meta *m, const char *id, const char *error, bool permanent)
{
    struct meta_fail_job j = {m, id, error, permanent, false, 0};
    if (store_run(m->ctx.store, meta_fail_job, &j) != 0) {
        log_error("Cannot record a Graph API failure; the fetch is retried",
                  LOG_FIELDS(LOG_S("leadgenId", id)));
        return false;
    }
    sources_count("meta", j.dead ? "dead" : "fetch_retry");
    if (j.dead) {
        log_error(
            "Meta lead dead-lettered: fetch it by hand or retry it (GET /sources/meta/failed)",
            LOG_FIELDS(LOG_S("leadgenId", id), LOG_I("tries", j.tries), LOG_S("error", error)));
    } else {
        log_warn(
            "Graph API fetch failed; retrying with backoff",
            LOG_FIELDS(LOG_S("leadgenId", id), LOG_I("tries", j.tries), LOG_S("error", error)));
    }
    return true;
}

/* Fetch one lead and record what came of it; false when the store refused the record. */
/*
 * Graph's code 190 is a page token it no longer takes (expired, revoked, the password changed):
 * every fetch will fail until META_PAGE_TOKEN is replaced. Said once each way (ERROR, INFO) and
 * shown as the degraded check "ingest: Meta page token" (degraded, not failing: ingest still
 * takes every other lead, and the Meta leads wait in meta_leads).
 */
static void meta_token_state(struct sources_meta *m, bool fetched, int code)
{
    bool refused = code == 190;
    if (!fetched && !refused) {
        return; /* another failure says nothing about the token */
    }
    bool was = atomic_exchange(&m->token_refused, refused);
    if (refused && !was) {
        log_error("Graph API refuses META_PAGE_TOKEN (code 190): Meta leads wait until it is "
                  "replaced",
                  NULL);
    } else if (!refused && was) {
        log_info("Graph API takes META_PAGE_TOKEN again", NULL);
    }
}

bool meta_token_ok(void *arg)
{
    struct sources_meta *m = arg;
    return !atomic_load(&m->token_refused);
}

bool meta_worker_ok(void *arg)
{
    struct sources_meta *m = arg;
    return atomic_load(&m->worker_ok);
}

static const struct meta_field_map *meta_map_of(const struct sources_meta *m, const char *form_id)
{
    for (int i = 0; i < m->nforms; i++) {
        if (strcmp(m->forms[i].form_id, form_id) == 0) {
            return &m->forms[i].map;
        }
    }
    return m->has_all_map ? &m->all_map : NULL;
}

static bool meta_fetch(struct sources_meta *m, CURL *curl, const char *id, const char *form_id)
{
    bool stored = true;
    char url[APP_URL_MAX + 96], error[256];
    snprintf(url, sizeof url, "%s/%s/%.*s", m->graph, m->version, META_ID_MAX - 1, id);
    struct curl_slist *h = curl_slist_append(NULL, m->auth_header);
    struct httpc_request req = {.api = "meta",
                                .method = "GET",
                                .url = url,
                                .headers = h,
                                .timeout_ms = (long)m->timeout_ms};
    struct httpc_response resp = {0};
    int rc = httpc_perform(curl, &req, &resp);
    curl_slist_free_all(h);
    struct lead_parse_result *r = lead_intake_result_alloc(NULL);
    if (r == NULL) {
        free(resp.body);
        return false; /* tried again next round */
    }
    int code = 0;
    enum meta_lead_status st = META_LEAD_MALFORMED;
    if (rc == 0) {
        st = meta_parse_lead(resp.body, resp.len, m->ctx.region, meta_map_of(m, form_id), r, &code);
    }
    meta_token_state(m, rc == 0 && resp.status == 200 && st == META_LEAD_OK, code);
    if (rc != 0) {
        snprintf(error, sizeof error, "transport: %.200s", resp.error);
        stored = meta_failed(m, id, error, false);
    } else if (resp.status == 200 && st == META_LEAD_OK) {
        struct proto_lead_created *l = &r->lead;
        lead_intake_stamp(l, "meta", "meta");
        snprintf(l->source_ref, sizeof l->source_ref, "%.*s", META_ID_MAX - 1, id);
        struct meta_done_job j = {m, id, l, 0};
        if (store_run(m->ctx.store, meta_done_job, &j) != 0) {
            stored = false;
            log_error("Cannot store the Meta lead; the fetch is retried",
                      LOG_FIELDS(LOG_S("leadgenId", id)));
        } else if (j.created == SOURCE_CREATED) {
            sources_count("meta", "created");
            log_info("Lead accepted", LOG_FIELDS(LOG_S("leadId", l->lead_id),
                                                 LOG_PHONE("phoneNumber", l->phone_e164),
                                                 LOG_S("phoneStatus", l->phone_status),
                                                 LOG_S("source", "meta"), LOG_S("leadgenId", id)));
        } else if (j.created == SOURCE_DUPLICATE) {
            sources_count("meta", "duplicate");
        }
    } else if (resp.status == 200 && st == META_LEAD_INVALID) {
        sources_count("meta", "invalid");
        snprintf(error, sizeof error, "the lead has no usable name or contact: %s", r->message);
        stored = meta_failed(m, id, error, true);
    } else {
        snprintf(error, sizeof error, "Graph API HTTP %ld, code %d: %.150s", resp.status, code,
                 r->message[0] != '\0' ? r->message : "(no error object)");
        stored = meta_failed(m, id, error, false);
    }
    lead_parse_free(r);
    free(r);
    free(resp.body);
    return stored;
}

/* One round: fetch what is due; returns the unix ms of the next due row. */
static int64_t meta_round(struct sources_meta *m, sqlite3 *rdb, CURL *curl)
{
    char ids[META_BATCH][META_ID_MAX], forms[META_BATCH][META_ID_MAX];
    int n = 0;
    int64_t now = clock_now_ms(), next = now + 60000;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(rdb,
                           "SELECT leadgen_id, form_id FROM meta_leads WHERE state = 'pending'"
                           " AND next_ms <= ?1 ORDER BY next_ms LIMIT ?2",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int(st, 2, META_BATCH);
        while (n < META_BATCH && sqlite3_step(st) == SQLITE_ROW) {
            store_text(st, 0, ids[n], META_ID_MAX);
            store_text(st, 1, forms[n++], META_ID_MAX);
        }
    }
    sqlite3_finalize(st);
    bool stored = true;
    for (int i = 0; i < n; i++) {
        stored = meta_fetch(m, curl, ids[i], forms[i]) && stored;
    }
    if (!stored) {
        return now + 1000; /* the store refuses (its health is in /readyz): no loop against Graph */
    }
    if (n == META_BATCH) {
        return 0; /* more may be due */
    }
    if (sqlite3_prepare_v2(rdb, "SELECT min(next_ms) FROM meta_leads WHERE state = 'pending'", -1,
                           &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        next = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    meta_gauges(rdb);
    return next;
}

void *meta_worker(void *arg)
{
    struct sources_meta *m = arg;
    log_set_target("ingest");
    sqlite3 *rdb = NULL;
    CURL *curl = curl_easy_init();
    if (store_open_reader(m->ctx.store, &rdb) != 0 || curl == NULL) {
        log_error("Meta worker cannot start: Meta leads wait in meta_leads until a restart", NULL);
        atomic_store(&m->worker_ok, false);
        goto out;
    }
    uint64_t seen = 0;
    int64_t next = 0;
    while (wake_wait(&m->wake, &seen, next)) {
        next = meta_round(m, rdb, curl);
    }
out:
    sqlite3_close(rdb);
    curl_easy_cleanup(curl);
    return NULL;
}
