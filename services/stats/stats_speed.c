/*
 * stats_speed: speed to lead, call outcomes and agents (issue 20).
 *
 * Per lead (st_speed), the moments that matter, each the earliest seen (so an event applied
 * again changes nothing): `received_ms` (ingest accepted it), `attempt_ms` (its first attempt
 * reached Exotel: the first call.status), `connected_ms` (the start of its first attempt that
 * ended `completed`), `agent_ms` (the same, for an attempt with an agent). An attempt's start
 * is the first call.status of that attempt (st_attempt_start). Speed = moment - received_ms.
 *
 * Agents (st_agents), from the `agent` field of call.status (absent: no agent, nothing here):
 *
 *     idle --call.status, not final--> on-call --call.status, final--> idle
 *
 * A status older than the agent's last change is ignored (two calls' events interleave).
 * Invariant: state IN ('idle', 'on-call') (CHECK in the schema). Each final attempt with an
 * agent is one st_agent_calls row (call id, attempt): the per-agent counts.
 */
#include "stats_internal.h"
#include "clock.h"
#include "metrics.h"

#include <stdio.h>
#include <string.h>

#define AGENT_LABELS_MAX 50 /* agents named in /metrics; the rest add up under agent="other" */
#define SOURCES_MAX 20

static const char *const stage_names[] = {"first_attempt", "first_connected", "first_agent"};
static const char *const stage_cols[] = {"attempt_ms", "connected_ms", "agent_ms"};
#define NSTAGES 3

static const char *const outcome_statuses[] = {"completed", "busy", "no-answer", "failed",
                                               "canceled",  "dnd",  "rejected",  "failed-api"};

static int speed_exec(sqlite3 *db, const char *sql, const char *a, const char *b, int64_t n)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b != NULL) {
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 3, n);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

int stats_speed_on_lead(sqlite3 *db, const struct proto_lead_created *l)
{
    return speed_exec(db,
                      "INSERT INTO st_speed(lead_id, source, received_ms) VALUES(?1, ?2, ?3)"
                      " ON CONFLICT(lead_id) DO UPDATE SET source = ?2, received_ms = ?3",
                      l->lead_id, l->source, l->received_ms);
}

/* The start of attempt `attempt` of `call_id` (its first status), or -1. */
static int64_t speed_attempt_start(sqlite3 *db, const char *call_id, int64_t attempt)
{
    sqlite3_stmt *st;
    int64_t at = -1;
    if (sqlite3_prepare_v2(db,
                           "SELECT first_ms FROM st_attempt_start WHERE call_id = ?1"
                           " AND attempt = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, attempt);
    if (sqlite3_step(st) == SQLITE_ROW) {
        at = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return at;
}

/* SET col = the earlier of col and ms (NULL: ms); the row exists. */
static int speed_earliest(sqlite3 *db, const char *lead_id, const char *col, int64_t ms)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "UPDATE st_speed SET %s = min(coalesce(%s, ?3), ?3)"
             " WHERE lead_id = ?1",
             col, col);
    return speed_exec(db, sql, lead_id, NULL, ms);
}

static int speed_agent(sqlite3 *db, const struct proto_call_status *c, int64_t ts)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO st_agents(agent, state, updated_ms) VALUES(?1, ?2, ?3)"
                           " ON CONFLICT(agent) DO UPDATE SET state = ?2, updated_ms = ?3"
                           " WHERE ?3 >= updated_ms",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, c->agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->final ? "idle" : "on-call", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ts);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || !c->final) {
        return rc == SQLITE_DONE ? 0 : -1;
    }
    if (sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO st_agent_calls(call_id, attempt, agent, status,"
                           " ts) VALUES(?1, ?2, ?3, ?4, ?5)",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, c->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, c->attempt);
    sqlite3_bind_text(st, 3, c->agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, ts);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int stats_speed_on_status(sqlite3 *db, const struct proto_event *ev)
{
    const struct proto_call_status *c = &ev->data.call_status;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO st_attempt_start(call_id, attempt, first_ms)"
                           " VALUES(?1, ?2, ?3) ON CONFLICT(call_id, attempt)"
                           " DO UPDATE SET first_ms = min(first_ms, ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, c->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, c->attempt);
    sqlite3_bind_int64(st, 3, ev->ts);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE ||
        speed_exec(db, "INSERT OR IGNORE INTO st_speed(lead_id, source) VALUES(?1, '')", c->lead_id,
                   NULL, 0) != 0 ||
        speed_earliest(db, c->lead_id, "attempt_ms", ev->ts) != 0) {
        return -1;
    }
    if (c->agent[0] != '\0' && speed_agent(db, c, ev->ts) != 0) {
        return -1;
    }
    if (!c->final || strcmp(c->status, "completed") != 0) {
        return 0;
    }
    int64_t start = speed_attempt_start(db, c->call_id, c->attempt);
    if (start < 0 || speed_earliest(db, c->lead_id, "connected_ms", start) != 0) {
        return -1;
    }
    return c->agent[0] != '\0' ? speed_earliest(db, c->lead_id, "agent_ms", start) : 0;
}

/* ---- reading ---- */

/* Bucket counts, sum and count of one stage over every lead. */
static void speed_histogram(sqlite3 *db, int stage)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT (%s - received_ms) / 1000.0 FROM st_speed WHERE %s IS NOT NULL"
             " AND received_ms IS NOT NULL",
             stage_cols[stage], stage_cols[stage]);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return;
    }
    unsigned long long cum[METRICS_LONG_NBUCKETS] = {0}, count = 0;
    double sum = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        double v = sqlite3_column_double(st, 0);
        v = v < 0 ? 0 : v;
        sum += v;
        count++;
        for (int i = 0; i < METRICS_LONG_NBUCKETS; i++) {
            cum[i] += v <= metrics_long_buckets[i];
        }
    }
    sqlite3_finalize(st);
    char labels[48];
    snprintf(labels, sizeof labels, "stage=\"%s\"", stage_names[stage]);
    metrics_histogram_set("leadbus_speed_to_lead_seconds",
                          "Seconds from a lead's arrival to its first attempt, first connected "
                          "call, first call with an agent",
                          labels, cum, sum, count);
}

/* Per agent and final status, the first AGENT_LABELS_MAX agents by name, the rest "other". */
static void speed_agent_counters(sqlite3 *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "WITH named AS (SELECT agent FROM st_agents ORDER BY agent LIMIT ?1)"
                           " SELECT CASE WHEN agent IN named THEN agent ELSE 'other' END AS a,"
                           " status, count(*) FROM st_agent_calls GROUP BY a, status",
                           -1, &st, NULL) != SQLITE_OK) {
        return;
    }
    sqlite3_bind_int(st, 1, AGENT_LABELS_MAX);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char agent[80], status[32], labels[160];
        metrics_label((const char *)sqlite3_column_text(st, 0), agent, sizeof agent);
        metrics_label((const char *)sqlite3_column_text(st, 1), status, sizeof status);
        snprintf(labels, sizeof labels, "agent=\"%s\",status=\"%s\"", agent, status);
        metrics_counter_set("leadbus_agent_calls_total", "Final call attempts per agent and status",
                            labels, (double)sqlite3_column_int64(st, 2));
    }
    sqlite3_finalize(st);
}

void stats_speed_collect(void *arg)
{
    struct stats *s = arg;
    sqlite3 *db;
    if (store_open_reader(s->store, &db) != 0) {
        return;
    }
    for (int i = 0; i < NSTAGES; i++) {
        speed_histogram(db, i);
    }
    for (size_t i = 0; i < sizeof outcome_statuses / sizeof outcome_statuses[0]; i++) {
        char name[48], labels[48];
        snprintf(name, sizeof name, "outcome.%s", outcome_statuses[i]);
        snprintf(labels, sizeof labels, "status=\"%s\"", outcome_statuses[i]);
        metrics_counter_set("leadbus_call_outcomes_total", "Final call attempts by status", labels,
                            (double)stats_count_of(db, name));
    }
    speed_agent_counters(db);
    sqlite3_close(db);
}

/* The value at quantile q (nearest rank) of a stage over leads received since `from`. */
static double speed_quantile(sqlite3 *db, int stage, const char *source, int64_t from, double q,
                             int64_t n)
{
    char sql[320];
    snprintf(sql, sizeof sql,
             "SELECT (%s - received_ms) / 1000.0 AS v FROM st_speed WHERE %s IS NOT NULL"
             " AND received_ms >= ?1 AND (?2 IS NULL OR source = ?2) ORDER BY v LIMIT 1 OFFSET ?3",
             stage_cols[stage], stage_cols[stage]);
    sqlite3_stmt *st;
    double v = 0;
    int64_t rank = (int64_t)(q * (double)n + 0.999999) - 1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return 0;
    }
    sqlite3_bind_int64(st, 1, from);
    if (source != NULL) {
        sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 3, rank < 0 ? 0 : rank);
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_double(st, 0);
    }
    sqlite3_finalize(st);
    return v < 0 ? 0 : v;
}

static cJSON *speed_stages(sqlite3 *db, const char *source, int64_t from)
{
    cJSON *o = cJSON_CreateObject();
    static const char *const keys[] = {"firstAttempt", "firstConnected", "firstAgent"};
    for (int i = 0; i < NSTAGES; i++) {
        char sql[200];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM st_speed WHERE %s IS NOT NULL AND received_ms >= ?1"
                 " AND (?2 IS NULL OR source = ?2)",
                 stage_cols[i]);
        sqlite3_stmt *st;
        int64_t n = 0;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, from);
            if (source != NULL) {
                sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
            }
            n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
            sqlite3_finalize(st);
        }
        cJSON *e = cJSON_AddObjectToObject(o, keys[i]);
        cJSON_AddNumberToObject(e, "n", (double)n);
        if (n > 0) {
            cJSON_AddNumberToObject(e, "medianS", speed_quantile(db, i, source, from, 0.5, n));
            cJSON_AddNumberToObject(e, "p90S", speed_quantile(db, i, source, from, 0.9, n));
        } else {
            cJSON_AddNullToObject(e, "medianS");
            cJSON_AddNullToObject(e, "p90S");
        }
    }
    return o;
}

static void speed_agents_json(struct stats *s, sqlite3 *db, cJSON *st)
{
    struct tz_fields f;
    int64_t now = clock_now_ms();
    tz_split(s->window.tz, now, &f);
    f.hour = f.minute = f.second = 0;
    int64_t today = tz_join(s->window.tz, &f);
    cJSON *list = cJSON_AddArrayToObject(st, "agents");
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db,
                           "SELECT a.agent, a.state, a.updated_ms,"
                           " (SELECT count(*) FROM st_agent_calls c WHERE c.agent = a.agent"
                           "  AND c.ts >= ?1),"
                           " (SELECT count(*) FROM st_agent_calls c WHERE c.agent = a.agent"
                           "  AND c.ts >= ?1 AND c.status = 'completed')"
                           " FROM st_agents a ORDER BY a.agent LIMIT 200",
                           -1, &q, NULL) != SQLITE_OK) {
        return;
    }
    sqlite3_bind_int64(q, 1, today);
    while (sqlite3_step(q) == SQLITE_ROW) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "name", (const char *)sqlite3_column_text(q, 0));
        cJSON_AddStringToObject(a, "state", (const char *)sqlite3_column_text(q, 1));
        cJSON_AddNumberToObject(a, "sinceMs", (double)sqlite3_column_int64(q, 2));
        cJSON_AddNumberToObject(a, "callsToday", (double)sqlite3_column_int64(q, 3));
        cJSON_AddNumberToObject(a, "connectedToday", (double)sqlite3_column_int64(q, 4));
        cJSON_AddItemToArray(list, a);
    }
    sqlite3_finalize(q);
}

void stats_speed_json(struct stats *s, sqlite3 *db, cJSON *st, int64_t window_ms)
{
    int64_t from = clock_now_ms() - window_ms;
    cJSON *speed = cJSON_AddObjectToObject(st, "speedToLead");
    cJSON_AddNumberToObject(speed, "windowMs", (double)window_ms);
    cJSON_AddItemToObject(speed, "all", speed_stages(db, NULL, from));
    cJSON *by = cJSON_AddObjectToObject(speed, "bySource");
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db,
                           "SELECT DISTINCT source FROM st_speed WHERE received_ms >= ?1"
                           " ORDER BY source LIMIT ?2",
                           -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, from);
        sqlite3_bind_int(q, 2, SOURCES_MAX);
        while (sqlite3_step(q) == SQLITE_ROW) {
            const char *src = (const char *)sqlite3_column_text(q, 0);
            cJSON_AddItemToObject(by, src[0] ? src : "(none)", speed_stages(db, src, from));
        }
        sqlite3_finalize(q);
    }
    int64_t done = stats_count_of(db, "attempts.finished");
    int64_t connected = stats_count_of(db, "outcome.completed");
    if (done > 0) {
        cJSON_AddNumberToObject(st, "connectRate", (double)connected / (double)done);
    } else {
        cJSON_AddNullToObject(st, "connectRate");
    }
    speed_agents_json(s, db, st);
}
