/*
 * agents: the dialer's agent pool in its store (the `agents` table), and the operator routes
 * GET /agents, POST /agents/{name}/pause, POST /agents/{name}/resume.
 *
 * An agent's state machine (agents.state, CHECKed in the schema, with call_id set exactly
 * while busy):
 *
 *              claim: chosen for a due attempt (same transaction as the attempt's `dialing`)
 *     free ─────────────────────────────────────────────────────────────────────> busy
 *      ^                                                                           │
 *      └── the attempt final (callback, call details, reconciliation), or put back ┘
 *          `queued` because its request never reached Exotel (429, not sent)
 *
 * `paused` is apart from it: a paused agent is never chosen; a call it is on goes on.
 * Invariants: an agent is on at most one attempt (it is chosen only while free, and the
 * choice and the attempt's claim commit together, so a kill -9 keeps or loses both); an
 * agent stays busy while its attempt may still be ringing (`dialing`, `initiated`,
 * `unknown` all keep it), so a crash mid-request never frees an agent Exotel may be ringing.
 */
#include "dialer_internal.h"
#include "api_key.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const agent_state_name[] = {[AGENT_FREE] = "free", [AGENT_BUSY] = "busy"};

/* The configured agents into the store: new ones free, numbers updated, free ones no longer
 * configured dropped (a busy one stays until its call ends; it is never chosen again). */
int agents_sync(sqlite3 *db, void *arg)
{
    struct dialer *d = arg;
    sqlite3_stmt *st;
    if (sqlite3_exec(db,
                     "CREATE TEMP TABLE IF NOT EXISTS agents_conf(name TEXT PRIMARY KEY);"
                     "DELETE FROM agents_conf;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO agents(name, number) VALUES(?1, ?2) ON CONFLICT(name)"
                           " DO UPDATE SET number = excluded.number",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    int rc = SQLITE_DONE;
    for (int i = 0; i < d->nagents && rc == SQLITE_DONE; i++) {
        sqlite3_bind_text(st, 1, d->agents[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, d->agents[i].number, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || sqlite3_prepare_v2(db, "INSERT INTO agents_conf(name) VALUES(?1)", -1,
                                                &st, NULL) != SQLITE_OK) {
        return -1;
    }
    for (int i = 0; i < d->nagents && rc == SQLITE_DONE; i++) {
        sqlite3_bind_text(st, 1, d->agents[i].name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return -1;
    }
    return sqlite3_exec(db,
                        "DELETE FROM agents WHERE state = 'free' AND name NOT IN"
                        " (SELECT name FROM agents_conf)",
                        NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : -1;
}

/* The pool as the chooser sees it, in configuration order, and the round-robin cursor. */
int agents_view(sqlite3 *db, const struct dialer *d, struct agent_view *v, int *cursor)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT state, paused, idle_since_ms FROM agents WHERE name = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    for (int i = 0; i < d->nagents; i++) {
        sqlite3_bind_text(st, 1, d->agents[i].name, -1, SQLITE_STATIC);
        v[i] = (struct agent_view){.busy = true}; /* unknown to the store: never offered */
        if (sqlite3_step(st) == SQLITE_ROW) {
            v[i].busy =
                strcmp((const char *)sqlite3_column_text(st, 0), agent_state_name[AGENT_BUSY]) == 0;
            v[i].paused = sqlite3_column_int(st, 1) != 0;
            v[i].idle_since = sqlite3_column_int64(st, 2);
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    *cursor = 0;
    if (sqlite3_prepare_v2(db, "SELECT next FROM agent_cursor WHERE id = 1", -1, &st, NULL) !=
        SQLITE_OK) {
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        *cursor = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return 0;
}

/* Agent i takes the attempt: busy, and the attempt records who (one transaction with the claim). */
int agents_take(sqlite3 *db, const struct dialer *d, int i, int cursor, struct attempt *a,
                int64_t now)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE agents SET state = 'busy', call_id = ?2, attempt = ?3,"
                           " since_ms = ?4 WHERE name = ?1 AND state = 'free'",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, d->agents[i].name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, a->attempt);
    sqlite3_bind_int64(st, 4, now);
    int rc = sqlite3_step(st);
    int changed = sqlite3_changes(db);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || changed != 1) {
        return -1;
    }
    if (sqlite3_prepare_v2(db,
                           "UPDATE attempts SET agent = ?3, agent_number = ?4"
                           " WHERE call_id = ?1 AND attempt = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, a->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, a->attempt);
    sqlite3_bind_text(st, 3, d->agents[i].name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, d->agents[i].number, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    snprintf(a->agent, sizeof a->agent, "%s", d->agents[i].name);
    snprintf(a->agent_number, sizeof a->agent_number, "%s", d->agents[i].number);
    char sql[96];
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO agent_cursor(id, next) VALUES(1, %d)",
             cursor);
    return rc == SQLITE_DONE && sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* The attempt no longer holds its agent (final, or back to `queued`): free again. */
int agents_release(sqlite3 *db, struct dialer *d, const char *call_id, int attempt)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE agents SET state = 'free', call_id = NULL, attempt = NULL,"
                           " idle_since_ms = ?3 WHERE call_id = ?1 AND attempt = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_int64(st, 3, clock_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (sqlite3_changes(db) > 0 && d != NULL) {
        wake_mark(&d->wake); /* an attempt may be waiting for a free agent */
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- operator routes (HTTP threads; each change is one store job) ---- */

struct pause_job {
    const char *name;
    bool paused;
    bool found;
};

static int pause_job(sqlite3 *db, void *arg)
{
    struct pause_job *j = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "UPDATE agents SET paused = ?2 WHERE name = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, j->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, j->paused ? 1 : 0);
    int rc = sqlite3_step(st);
    j->found = sqlite3_changes(db) == 1;
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static bool operator_ok(struct http_req *req, const struct dialer *d)
{
    if (api_keys_check(d->keys, http_header(req, "X-API-Key"))) {
        return true;
    }
    http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
    return false;
}

static const struct agent_def *configured(const struct dialer *d, const char *name)
{
    for (int i = 0; i < d->nagents; i++) {
        if (strcmp(d->agents[i].name, name) == 0) {
            return &d->agents[i];
        }
    }
    return NULL;
}

static void set_paused(struct http_req *req, struct dialer *d, bool paused)
{
    if (!operator_ok(req, d)) {
        return;
    }
    struct pause_job j = {.name = req->params[0], .paused = paused};
    if (configured(d, j.name) == NULL) {
        http_reply_error(req, 404, "not_found", "no agent of that name (AGENTS)", NULL);
        return;
    }
    if (store_run(d->store, pause_job, &j) != 0 || !j.found) {
        log_error("Cannot pause or resume an agent: the store could not be written",
                  LOG_FIELDS(LOG_S("agent", j.name)));
        http_reply_error(req, 503, "unavailable", "the store could not be written; retry", NULL);
        return;
    }
    log_info(paused ? "Agent paused" : "Agent resumed", LOG_FIELDS(LOG_S("agent", j.name)));
    metrics_counter_add("leadbus_agent_pauses_total", "Operator pauses and resumes of agents",
                        paused ? "action=\"pause\"" : "action=\"resume\"", 1);
    if (!paused) {
        wake_kick(&d->wake);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "agent", j.name);
    cJSON_AddBoolToObject(o, "paused", paused);
    http_reply_json(req, 200, o);
}

void agents_post_pause(struct http_req *req, void *arg)
{
    set_paused(req, arg, true);
}

void agents_post_resume(struct http_req *req, void *arg)
{
    set_paused(req, arg, false);
}

/* Midnight today in CALL_TIMEZONE, as unix ms. */
static int64_t today_start(struct dialer *d, int64_t now)
{
    struct tz_fields f;
    tz_split(d->call_tz, now, &f);
    f.hour = f.minute = f.second = 0;
    return tz_join(d->call_tz, &f);
}

static cJSON *agent_json(sqlite3_stmt *st, const struct agent_def *a)
{
    cJSON *e = cJSON_CreateObject();
    char masked[32];
    log_mask_phone(a->number, masked, sizeof masked);
    cJSON_AddStringToObject(e, "name", a->name);
    cJSON_AddStringToObject(e, "number", masked);
    cJSON_AddStringToObject(e, "state", (const char *)sqlite3_column_text(st, 0));
    cJSON_AddBoolToObject(e, "paused", sqlite3_column_int(st, 1) != 0);
    if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
        cJSON *c = cJSON_AddObjectToObject(e, "currentCall");
        cJSON_AddStringToObject(c, "callId", (const char *)sqlite3_column_text(st, 2));
        cJSON_AddNumberToObject(c, "attempt", sqlite3_column_int(st, 3));
        cJSON_AddNumberToObject(c, "sinceMs", (double)sqlite3_column_int64(st, 4));
    } else {
        cJSON_AddNullToObject(e, "currentCall");
    }
    cJSON_AddNumberToObject(e, "idleSinceMs", (double)sqlite3_column_int64(st, 5));
    cJSON_AddNumberToObject(e, "callsToday", sqlite3_column_int(st, 6));
    cJSON_AddNumberToObject(e, "answeredToday", sqlite3_column_int(st, 7));
    return e;
}

struct list_job {
    struct dialer *d;
    int64_t since;
    cJSON *list;
};

static int list_job(sqlite3 *db, void *arg)
{
    struct list_job *j = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            db,
            "SELECT g.state, g.paused, g.call_id, g.attempt, g.since_ms, g.idle_since_ms,"
            " (SELECT count(*) FROM attempts a WHERE a.agent = g.name AND a.dialed_ms >= ?2),"
            " (SELECT count(*) FROM attempts a WHERE a.agent = g.name AND a.dialed_ms >= ?2"
            "  AND a.agent_leg = 'answered')"
            " FROM agents g WHERE g.name = ?1",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    for (int i = 0; i < j->d->nagents; i++) {
        sqlite3_bind_text(st, 1, j->d->agents[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, j->since);
        if (sqlite3_step(st) == SQLITE_ROW) {
            cJSON_AddItemToArray(j->list, agent_json(st, &j->d->agents[i]));
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return 0;
}

void agents_get(struct http_req *req, void *arg)
{
    struct dialer *d = arg;
    if (!operator_ok(req, d)) {
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "strategy", agent_strategy_name[d->strategy]);
    struct list_job j = {d, today_start(d, clock_now_ms()), cJSON_AddArrayToObject(o, "agents")};
    if (store_run(d->store, list_job, &j) != 0) {
        cJSON_Delete(o);
        http_reply_error(req, 503, "unavailable", "the store could not be read; retry", NULL);
        return;
    }
    http_reply_json(req, 200, o);
}
