/*
 * zoho_leads: every transaction that moves a lead on its way into Zoho, and
 * the workers that send them (the upsert batches).
 *
 * A lead's way into Zoho (zoho_leads.state, enum zoho_lead_state):
 *
 *   pending ──claimed by a worker──> sending ──upsert SUCCESS──> synced
 *     ^                                 │ │
 *     └── transient failure (backoff) ──┘ └──data error, or ZOHO_MAX_RETRY_MS──> dead
 *   dead ──POST /zoho/failed/{leadId}/retry──> pending
 *   pending ──lead.erased──> dead (code ERASED; synced and dead leads keep their state)
 *
 * A claim (sending) that was never resolved, because the process died or its
 * commit failed, is pending again at start and after 2 x timeout + 60 s.
 *
 * Invariants: a lead is in the table once (lead.created is applied with INSERT OR IGNORE);
 * only a worker's claim makes a lead sending, and only that claim's commit (zoho_lead_after
 * decides) or its going stale moves it on; synced and dead publish lead.synced and
 * lead.sync_failed in the transaction that sets them; a lead's zoho_id is set with synced.
 */
#include "clock.h"
#include "log.h"
#include "zoho_sync_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_BASE_MS 1000

const char *const zoho_lead_state_name[] = {"pending", "sending", "synced", "dead"};
_Static_assert(sizeof zoho_lead_state_name / sizeof zoho_lead_state_name[0] == ZOHO_LEAD_DEAD + 1,
               "one name per state");

const char zoho_leads_schema[] =
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

struct pending {
    char lead_id[40];
    char *lead_json;
    int attempts;
    int64_t first_try_ms;
    struct zoho_result result;
    enum zoho_sent sent;
};

/* ---- bus handler's part (writer thread) ---- */

/*
 * lead.erased (or a kept lead.created already rewritten so): the copy of the lead kept for
 * sending is scrubbed. A lead not yet in Zoho is never sent: dead with code ERASED, and
 * lead.sync_failed (permanent) closes it for stats. One in Zoho stays there: the CRM record is
 * not touched (ZOHO_ERASE is not built yet; README, "Privacy and retention").
 */
int zoho_leads_on_erased(sqlite3 *db, struct zsync *z, const char *lead_id, uint64_t seq)
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
    bool close = state[0] == '\0' || strcmp(state, zoho_lead_state_name[ZOHO_LEAD_PENDING]) == 0;
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
const char zoho_leads_retention_sql[] =
    "UPDATE zoho_leads SET lead_json = '{}' WHERE rowid IN (SELECT rowid FROM zoho_leads"
    " WHERE updated_ms < ?1 AND state IN ('synced', 'dead') AND lead_json <> '{}' LIMIT ?2)";
/* lead.created (not erased): a new lead, pending at once; a replayed one changes nothing. */
int zoho_leads_on_created(sqlite3 *db, const struct proto_event *ev)
{
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

/* ---- the workers ---- */

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

enum zoho_lead_state zoho_lead_after(enum zoho_sent sent, int64_t now_ms, int64_t first_try_ms,
                                     int64_t max_retry_ms)
{
    int64_t first = first_try_ms != 0 ? first_try_ms : now_ms;
    if (sent == ZOHO_SENT_SYNCED) {
        return ZOHO_LEAD_SYNCED;
    }
    if (sent == ZOHO_SENT_REFUSED || now_ms - first >= max_retry_ms) {
        return ZOHO_LEAD_DEAD;
    }
    return ZOHO_LEAD_PENDING;
}

/* The event that closes a lead's way (to synced or dead), in the commit that moves it. */
static int publish_end(struct zsync *z, sqlite3 *db, const struct pending *p,
                       enum zoho_lead_state to)
{
    const struct zoho_result *r = &p->result;
    if (to == ZOHO_LEAD_SYNCED) {
        struct proto_lead_synced ev;
        memset(&ev, 0, sizeof ev);
        snprintf(ev.lead_id, sizeof ev.lead_id, "%s", p->lead_id);
        snprintf(ev.zoho_id, sizeof ev.zoho_id, "%s", r->id);
        snprintf(ev.action, sizeof ev.action, "%s",
                 strcmp(r->action, "update") == 0 ? "updated" : "created");
        return bus_pub_append(z->pub, db, PROTO_LEAD_SYNCED, &ev, NULL);
    }
    if (to != ZOHO_LEAD_DEAD) {
        return 0;
    }
    bool gave_up = p->sent != ZOHO_SENT_REFUSED;
    struct proto_lead_sync_failed ev;
    memset(&ev, 0, sizeof ev);
    snprintf(ev.lead_id, sizeof ev.lead_id, "%s", p->lead_id);
    snprintf(ev.code, sizeof ev.code, "%s", gave_up ? "RETRY_LIMIT" : r->code);
    snprintf(ev.message, sizeof ev.message, "%s",
             gave_up ? "Zoho kept failing for ZOHO_MAX_RETRY_MS; retry it from /zoho/failed"
                     : r->message);
    ev.permanent = !gave_up;
    return bus_pub_append(z->pub, db, PROTO_LEAD_SYNC_FAILED, &ev, NULL);
}

/* A claimed batch's results: sending -> synced | dead | pending (with its next try). */
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
        enum zoho_lead_state to = zoho_lead_after(p->sent, now, p->first_try_ms, z->max_retry_ms);
        int64_t next = 0;
        if (to == ZOHO_LEAD_PENDING) {
            next = now + zsync_backoff(z, attempts, a->retry_after_ms);
        }
        rc = publish_end(z, db, p, to);
        sqlite3_bind_text(st, 1, p->lead_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, zoho_lead_state_name[to], -1, SQLITE_STATIC);
        if (to == ZOHO_LEAD_SYNCED) {
            sqlite3_bind_text(st, 3, r->id, -1, SQLITE_STATIC);
        }
        sqlite3_bind_int(st, 4, attempts);
        sqlite3_bind_int64(st, 5, p->first_try_ms != 0 ? p->first_try_ms : now);
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

static char *build_body(struct zsync *z, struct pending *p, int n)
{
    const char *json[ZOHO_BATCH_MAX], *ids[ZOHO_BATCH_MAX];
    for (int i = 0; i < n; i++) {
        json[i] = p[i].lead_json;
        ids[i] = p[i].lead_id;
    }
    struct zoho_lead_shape shape = {.ext_field = z->ext_field,
                                    .dup_fields = z->dup_fields,
                                    .default_company = z->default_company};
    return zoho_upsert_body(&shape, json, ids, n);
}

/* One upsert round for a batch; fills each pending's result. Returns Retry-After or -1. */
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
            p[i].sent = res->ok          ? ZOHO_SENT_SYNCED
                        : res->permanent ? ZOHO_SENT_REFUSED
                                         : ZOHO_SENT_RETRY;
        } else {
            memset(res, 0, sizeof *res);
            snprintf(res->code, sizeof res->code, "%s",
                     r.status == 0                   ? "NETWORK"
                     : got < 0 && results[0].code[0] ? results[0].code
                                                     : "HTTP");
            snprintf(res->message, sizeof res->message, "HTTP %ld %.200s", r.status,
                     r.status == 0 ? r.error : "");
            p[i].sent = ZOHO_SENT_RETRY;
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
        if (batch[i].sent == ZOHO_SENT_SYNCED) {
            log_info("Lead synced to Zoho", LOG_FIELDS(LOG_S("leadId", batch[i].lead_id),
                                                       LOG_S("zohoId", batch[i].result.id),
                                                       LOG_S("action", batch[i].result.action)));
        } else if (batch[i].sent == ZOHO_SENT_REFUSED) {
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
        batch[i].sent = ZOHO_SENT_RETRY;
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

void *zoho_leads_worker(void *arg)
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
/* ---- the dead-letter list ---- */

const char zoho_leads_revive_sql[] =
    "UPDATE zoho_leads SET state = 'pending', attempts = 0, first_try_ms = NULL,"
    " next_try_ms = 0 WHERE lead_id = ?1 AND state = 'dead'";

int zoho_leads_list_dead(sqlite3 *db, void *arg)
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