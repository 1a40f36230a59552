/* stats: counters, timelines and the dashboard, folded from the bus. */
#include "stats.h"
#include "stats_internal.h"
#include "api_key.h"
#include "bus_sub.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS st_leads("
    "  lead_id TEXT PRIMARY KEY, received_ms INTEGER NOT NULL, name TEXT NOT NULL,"
    "  phone TEXT NOT NULL, source TEXT NOT NULL, zoho_id TEXT, sync TEXT NOT NULL,"
    "  sync_code TEXT);"
    "CREATE INDEX IF NOT EXISTS st_leads_recent ON st_leads(received_ms);"
    "CREATE TABLE IF NOT EXISTS st_calls("
    "  call_id TEXT PRIMARY KEY, lead_id TEXT NOT NULL, scheduled INTEGER NOT NULL DEFAULT 0,"
    "  finished INTEGER NOT NULL DEFAULT 0, placed INTEGER NOT NULL DEFAULT 0, skipped TEXT,"
    "  last_status TEXT, category TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS st_counts(name TEXT PRIMARY KEY, n INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS st_minutes("
    "  minute INTEGER NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,"
    "  PRIMARY KEY(minute, status));"
    "CREATE TABLE IF NOT EXISTS st_timeline("
    "  lead_id TEXT NOT NULL, ts INTEGER NOT NULL, src TEXT NOT NULL, topic TEXT NOT NULL,"
    "  data TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS st_timeline_lead ON st_timeline(lead_id, ts);"
    /* what was counted per attempt ('due', 'final'): an event applied again counts nothing */
    "CREATE TABLE IF NOT EXISTS st_once("
    "  call_id TEXT NOT NULL, attempt INTEGER NOT NULL, kind TEXT NOT NULL,"
    "  PRIMARY KEY(call_id, attempt, kind)) WITHOUT ROWID;";

/* Schema steps after version 1 (store.h, "Schema versions"); never edit `schema` above. */
static const struct store_migration migrations[] = {
    /* 2: when a lead was erased on request (name and phone are then "", its timeline gone) */
    {2, "ALTER TABLE st_leads ADD COLUMN erased_ms INTEGER;"},
    /* 3: speed to lead and agents (stats_speed.c, its diagram) */
    {3, "CREATE TABLE st_speed(lead_id TEXT PRIMARY KEY, source TEXT NOT NULL DEFAULT '',"
        "  received_ms INTEGER, attempt_ms INTEGER, connected_ms INTEGER, agent_ms INTEGER);"
        "CREATE INDEX st_speed_received ON st_speed(received_ms);"
        "CREATE TABLE st_attempt_start(call_id TEXT NOT NULL, attempt INTEGER NOT NULL,"
        "  first_ms INTEGER NOT NULL, PRIMARY KEY(call_id, attempt)) WITHOUT ROWID;"
        "CREATE TABLE st_agents(agent TEXT PRIMARY KEY,"
        "  state TEXT NOT NULL CHECK (state IN ('idle', 'on-call')), updated_ms INTEGER NOT NULL);"
        "CREATE TABLE st_agent_calls(call_id TEXT NOT NULL, attempt INTEGER NOT NULL,"
        "  agent TEXT NOT NULL, status TEXT NOT NULL, ts INTEGER NOT NULL,"
        "  PRIMARY KEY(call_id, attempt));"
        "CREATE INDEX st_agent_calls_agent ON st_agent_calls(agent, ts);"},
};

/* LEAD_RETENTION_DAYS: names and phones, and the timeline's lead.created (it holds the lead's
 * fields); STATS_RETENTION_DAYS: timelines and per-minute rows. Counters stay. */
static const char retention_names_sql[] =
    "UPDATE st_leads SET name = '', phone = '' WHERE rowid IN (SELECT rowid FROM st_leads"
    " WHERE received_ms < ?1 AND (name <> '' OR phone <> '') LIMIT ?2)";
static const char retention_lead_events_sql[] =
    "DELETE FROM st_timeline WHERE rowid IN (SELECT rowid FROM st_timeline"
    " WHERE ts < ?1 AND topic = 'lead.created' LIMIT ?2)";
static const char retention_timeline_sql[] =
    "DELETE FROM st_timeline WHERE rowid IN (SELECT rowid FROM st_timeline WHERE ts < ?1"
    " LIMIT ?2)";
static const char retention_minutes_sql[] =
    "DELETE FROM st_minutes WHERE rowid IN (SELECT rowid FROM st_minutes WHERE minute < ?1"
    " LIMIT ?2)";

/* ---- folding events (writer thread, inside the subscriber's transaction) ---- */

static int count_add(sqlite3 *db, const char *name, int64_t by)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO st_counts(name, n) VALUES(?1, ?2)"
                           " ON CONFLICT(name) DO UPDATE SET n = n + ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, by);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Events are applied again when their publisher's stream is reset (bus_sub.h): 1 the first time
 * (call, attempt, kind) is seen, 0 after, -1 on error.
 */
static int first_time(sqlite3 *db, const char *call_id, int64_t attempt, const char *kind)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO st_once(call_id, attempt, kind) VALUES(?1,?2,?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, attempt);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? sqlite3_changes(db) : -1;
}

/* Phones in a timeline are masked like in logs: the timeline says what happened, not who. */
static void mask_phones(cJSON *o)
{
    for (cJSON *f = o ? o->child : NULL; f != NULL; f = f->next) {
        if (strncmp(f->string, "phone_", 6) == 0 && strcmp(f->string, "phone_status") != 0 &&
            cJSON_IsString(f)) {
            char masked[32];
            log_mask_phone(f->valuestring, masked, sizeof masked);
            cJSON_SetValuestring(f, f->valuestring[0] ? masked : "");
        }
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "extra");
}

static int add_timeline(sqlite3 *db, const struct proto_event *ev, const char *lead_id)
{
    char *raw = proto_data_to_json(ev->topic, &ev->data);
    cJSON *o = raw ? cJSON_Parse(raw) : NULL;
    free(raw);
    mask_phones(o);
    char *data = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (data == NULL) {
        return -1;
    }
    sqlite3_stmt *st;
    int rc = SQLITE_ERROR;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO st_timeline(lead_id, ts, src, topic, data)"
                           " SELECT ?1,?2,?3,?4,?5 WHERE NOT EXISTS (SELECT 1 FROM st_timeline"
                           " WHERE lead_id = ?1 AND ts = ?2 AND src = ?3 AND topic = ?4"
                           " AND data = ?5)", /* the same event applied again */
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, lead_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, ev->ts);
        sqlite3_bind_text(st, 3, ev->src, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, proto_topic_name(ev->topic), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, data, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    free(data);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int on_lead(sqlite3 *db, const struct proto_lead_created *l)
{
    char name[260], masked[32];
    snprintf(name, sizeof name, "%s%s%s", l->first_name, l->first_name[0] ? " " : "", l->last_name);
    log_mask_phone(l->phone_e164[0] ? l->phone_e164 : l->phone_raw, masked, sizeof masked);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO st_leads(lead_id, received_ms, name, phone,"
                           " source, sync, erased_ms) VALUES(?1,?2,?3,?4,?5,'pending',"
                           " nullif(?6, 0))",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, l->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, l->received_ms);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, l->phone_raw[0] ? masked : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, l->source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, l->erased_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return -1;
    }
    return sqlite3_changes(db) > 0 ? count_add(db, "leads.received", 1) : 0;
}

/* A lead's Zoho state: pending -> synced, or failed (which a later sync clears). */
static int on_sync(sqlite3 *db, const char *lead_id, const char *zoho_id, const char *code)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT sync FROM st_leads WHERE lead_id = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lead_id, -1, SQLITE_STATIC);
    char before[16] = "pending";
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, before, sizeof before);
    }
    sqlite3_finalize(st);
    const char *after = zoho_id != NULL ? "synced" : "failed";
    if (strcmp(before, "synced") == 0 || strcmp(before, after) == 0) {
        return 0; /* a lead once in Zoho stays synced */
    }
    if (sqlite3_prepare_v2(db,
                           "UPDATE st_leads SET sync = ?2, zoho_id = coalesce(?3, zoho_id),"
                           " sync_code = ?4 WHERE lead_id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, after, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, zoho_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, code, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return -1;
    }
    if (strcmp(before, "failed") == 0 && count_add(db, "leads.sync_failed", -1) != 0) {
        return -1;
    }
    return count_add(db, zoho_id != NULL ? "leads.synced" : "leads.sync_failed", 1);
}

/*
 * The original guide's categories, derived from what is known of a call so
 * the result does not depend on the order its streams arrive in: skipped;
 * success once any attempt was placed; pending while an attempt scheduled has
 * no final outcome yet; failed otherwise.
 */
static const char *category(const char *skipped, int scheduled, int finished, int placed)
{
    return skipped[0] != '\0'     ? "skipped"
           : placed               ? "success"
           : scheduled > finished ? "pending"
                                  : "failed";
}

struct call_change {
    const char *call_id, *lead_id;
    int scheduled, finished; /* raise to at least these */
    bool placed;
    const char *skipped, *last_status; /* NULL: unchanged */
};

static int update_call(sqlite3 *db, const struct call_change *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT scheduled, finished, placed, coalesce(skipped, ''), category"
                           " FROM st_calls WHERE call_id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, c->call_id, -1, SQLITE_STATIC);
    int scheduled = 0, finished = 0, placed = 0;
    char skipped[32] = "", before[16] = "";
    bool exists = sqlite3_step(st) == SQLITE_ROW;
    if (exists) {
        scheduled = sqlite3_column_int(st, 0);
        finished = sqlite3_column_int(st, 1);
        placed = sqlite3_column_int(st, 2);
        store_text(st, 3, skipped, sizeof skipped);
        store_text(st, 4, before, sizeof before);
    }
    sqlite3_finalize(st);
    scheduled = c->scheduled > scheduled ? c->scheduled : scheduled;
    finished = c->finished > finished ? c->finished : finished;
    placed = placed || c->placed;
    if (c->skipped != NULL) {
        snprintf(skipped, sizeof skipped, "%s", c->skipped);
    }
    const char *after = category(skipped, scheduled, finished, placed);
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO st_calls(call_id, lead_id, scheduled, finished, placed,"
                           " skipped, last_status, category) VALUES(?1,?2,?3,?4,?5,nullif(?6,''),"
                           "?7,?8) ON CONFLICT(call_id) DO UPDATE SET scheduled = ?3,"
                           " finished = ?4, placed = ?5, skipped = nullif(?6, ''),"
                           " last_status = coalesce(?7, last_status), category = ?8",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, c->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, scheduled);
    sqlite3_bind_int(st, 4, finished);
    sqlite3_bind_int(st, 5, placed);
    sqlite3_bind_text(st, 6, skipped, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, c->last_status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, after, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return -1;
    }
    char name[32];
    if (!exists && count_add(db, "calls.total", 1) != 0) {
        return -1;
    }
    if (strcmp(before, after) != 0) {
        if (before[0] != '\0') {
            snprintf(name, sizeof name, "cat.%s", before);
            if (count_add(db, name, -1) != 0) {
                return -1;
            }
        }
        snprintf(name, sizeof name, "cat.%s", after);
        return count_add(db, name, 1);
    }
    return 0;
}

/* Statuses that mean Exotel placed the call (an attempt that rang, whatever came of it). */
static bool placed_status(const struct proto_call_status *c)
{
    return c->call_sid[0] != '\0' || strcmp(c->status, "completed") == 0 ||
           strcmp(c->status, "busy") == 0 || strcmp(c->status, "no-answer") == 0 ||
           strcmp(c->status, "failed") == 0 || strcmp(c->status, "canceled") == 0;
}

static int on_status(sqlite3 *db, const struct proto_event *ev)
{
    const struct proto_call_status *c = &ev->data.call_status;
    struct call_change ch = {.call_id = c->call_id,
                             .lead_id = c->lead_id,
                             .finished = c->final ? (int)c->attempt : 0,
                             .placed = placed_status(c),
                             .last_status = c->final ? c->status : NULL};
    if (update_call(db, &ch) != 0) {
        return -1;
    }
    int first = c->final ? first_time(db, c->call_id, c->attempt, "final") : 0;
    if (first <= 0) {
        return first;
    }
    char name[48];
    snprintf(name, sizeof name, "outcome.%s", c->status);
    sqlite3_stmt *st;
    if (count_add(db, name, 1) != 0 || count_add(db, "attempts.finished", 1) != 0 ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO st_minutes(minute, status, n) VALUES(?1, ?2, 1)"
                           " ON CONFLICT(minute, status) DO UPDATE SET n = n + 1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, ev->ts / 60000 * 60000);
    sqlite3_bind_text(st, 2, c->status, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* 1 if the lead was erased on request, 0 if not (or unknown), -1 on error. */
static int lead_erased(sqlite3 *db, const char *lead_id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM st_leads WHERE lead_id = ?1 AND erased_ms IS NOT NULL",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lead_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/*
 * lead.erased: name and phone scrubbed, the timeline dropped (it held the lead's fields); ids,
 * times, the Zoho state and call outcomes stay, so every count stays right. Read before its
 * lead.created (another stream), the lead is recorded (and counted) here already erased.
 */
static int on_erased(sqlite3 *db, const struct proto_lead_erased *e)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE st_leads SET name = '', phone = '', erased_ms = ?2"
                           " WHERE lead_id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, e->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, e->erased_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE && sqlite3_changes(db) == 0) {
        struct proto_lead_created l = {.received_ms = e->erased_ms};
        snprintf(l.lead_id, sizeof l.lead_id, "%s", e->lead_id);
        if (on_lead(db, &l) != 0) { /* counted as received: its lead.created will find it */
            return -1;
        }
        return on_erased(db, e);
    }
    if (rc != SQLITE_DONE || sqlite3_prepare_v2(db, "DELETE FROM st_timeline WHERE lead_id = ?1",
                                                -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, e->lead_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int on_event(sqlite3 *db, const struct proto_event *ev, void *arg)
{
    (void)arg;
    const union proto_data *d = &ev->data;
    const char *lead_id = NULL;
    int rc = 0;
    if (count_add(db, "events", 1) != 0) {
        return -1;
    }
    switch (ev->topic) {
    case PROTO_LEAD_CREATED:
        lead_id = d->lead_created.lead_id;
        rc = on_lead(db, &d->lead_created);
        rc = rc == 0 ? stats_speed_on_lead(db, &d->lead_created) : rc;
        break;
    case PROTO_LEAD_SYNCED:
        lead_id = d->lead_synced.lead_id;
        rc = on_sync(db, lead_id, d->lead_synced.zoho_id, NULL);
        break;
    case PROTO_LEAD_SYNC_FAILED:
        lead_id = d->lead_sync_failed.lead_id;
        rc = on_sync(db, lead_id, NULL, d->lead_sync_failed.code);
        break;
    case PROTO_CALL_SCHEDULED: {
        lead_id = d->call_scheduled.lead_id;
        struct call_change ch = {.call_id = d->call_scheduled.call_id,
                                 .lead_id = lead_id,
                                 .scheduled = (int)d->call_scheduled.attempt};
        rc = update_call(db, &ch);
        break;
    }
    case PROTO_CALL_SKIPPED: {
        lead_id = d->call_skipped.lead_id;
        struct call_change ch = {.call_id = d->call_skipped.call_id,
                                 .lead_id = lead_id,
                                 .skipped = d->call_skipped.reason,
                                 .last_status = d->call_skipped.reason};
        rc = update_call(db, &ch);
        break;
    }
    case PROTO_CALL_DUE:
        lead_id = d->call_due.lead_id;
        rc = first_time(db, d->call_due.call_id, d->call_due.attempt, "due");
        rc = rc > 0 ? count_add(db, "attempts", 1) : rc;
        break;
    case PROTO_CALL_STATUS:
        lead_id = d->call_status.lead_id;
        rc = on_status(db, ev);
        rc = rc == 0 ? stats_speed_on_status(db, ev) : rc;
        break;
    case PROTO_CALL_SYNC_FAILED:
        lead_id = d->call_sync_failed.lead_id;
        rc = count_add(db, "outcomes.sync_failed", 1);
        break;
    case PROTO_LEAD_ERASED:
        return on_erased(db, &d->lead_erased);
    default:
        return 0;
    }
    if (rc != 0) {
        return -1;
    }
    int erased = lead_erased(db, lead_id); /* an erased lead's timeline stays empty */
    return erased < 0 ? -1 : erased ? 0 : add_timeline(db, ev, lead_id);
}

/* ---- reading (reader connections: the HTTP side never waits on the writer) ---- */

int64_t stats_count_of(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st;
    int64_t n = 0;
    if (sqlite3_prepare_v2(db, "SELECT n FROM st_counts WHERE name = ?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            n = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    return n;
}

bool stats_allowed(struct stats *s, struct http_req *req, bool always_key)
{
    if ((!always_key && !s->require_key) ||
        api_keys_check(s->keys, http_header(req, "X-API-Key"))) {
        return true;
    }
    http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
    return false;
}

sqlite3 *stats_reader(struct stats *s, struct http_req *req)
{
    sqlite3 *db;
    if (store_open_reader(s->store, &db) != 0) {
        http_reply_error(req, 503, "unavailable", "the store could not be read; retry", NULL);
        return NULL;
    }
    return db;
}

void stats_iso_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void get_stats(struct http_req *req, void *arg)
{
    struct stats *s = arg;
    if (!stats_allowed(s, req, false)) {
        return;
    }
    char buf[24];
    long long window_ms = 24LL * 3600 * 1000;
    if (http_query(req, "windowMs", buf, sizeof buf) >= 0) {
        char *end;
        window_ms = strtoll(buf, &end, 10);
        if (*end != '\0' || window_ms < 1000 || window_ms > 90LL * 24 * 3600 * 1000) {
            http_reply_error(req, 400, "bad_request", "windowMs: expected 1000 to 90 days", NULL);
            return;
        }
    }
    sqlite3 *db = stats_reader(s, req);
    if (db == NULL) {
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON *st = cJSON_AddObjectToObject(o, "stats");
    stats_speed_json(s, db, st, window_ms);
    stats_calling_json(s, st);
    int64_t pending = stats_count_of(db, "cat.pending");
    cJSON_AddNumberToObject(st, "pending", (double)pending);
    cJSON_AddNumberToObject(st, "total", (double)stats_count_of(db, "calls.total"));
    cJSON *by = cJSON_AddObjectToObject(st, "byStatus");
    static const char *const cats[] = {"pending", "success", "failed", "skipped"};
    char name[48];
    for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++) {
        snprintf(name, sizeof name, "cat.%s", cats[i]);
        cJSON_AddNumberToObject(by, cats[i], (double)stats_count_of(db, name));
    }
    cJSON *out = cJSON_AddObjectToObject(st, "outcomes");
    static const char *const statuses[] = {"completed", "busy", "no-answer", "failed",
                                           "canceled",  "dnd",  "rejected",  "failed-api"};
    int64_t finished = stats_count_of(db, "attempts.finished"),
            attempts = stats_count_of(db, "attempts");
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        snprintf(name, sizeof name, "outcome.%s", statuses[i]);
        cJSON_AddNumberToObject(out, statuses[i], (double)stats_count_of(db, name));
    }
    /* attempts handed to the dialer whose outcome is not known yet */
    cJSON_AddNumberToObject(out, "unknown",
                            (double)(attempts > finished ? attempts - finished : 0));
    cJSON_AddNumberToObject(st, "attempts", (double)attempts);
    cJSON *leads = cJSON_AddObjectToObject(st, "leads");
    int64_t received = stats_count_of(db, "leads.received"),
            synced = stats_count_of(db, "leads.synced"),
            failed = stats_count_of(db, "leads.sync_failed");
    cJSON_AddNumberToObject(leads, "received", (double)received);
    cJSON_AddNumberToObject(leads, "synced", (double)synced);
    cJSON_AddNumberToObject(leads, "syncFailed", (double)failed);
    cJSON_AddNumberToObject(leads, "syncBacklog",
                            (double)(received > synced + failed ? received - synced - failed : 0));
    /* call outcomes zoho-sync gave up writing to the CRM (each in its dead-letter list) */
    cJSON_AddNumberToObject(leads, "outcomeSyncFailed",
                            (double)stats_count_of(db, "outcomes.sync_failed"));
    int64_t since = stats_count_of(db, "since");
    if (since > 0) {
        char iso[32];
        stats_iso_time(since, iso);
        cJSON_AddStringToObject(st, "since", iso);
    } else {
        cJSON_AddNullToObject(st, "since");
    }
    sqlite3_close(db);
    http_reply_json(req, 200, o);
}

/* ---- module ---- */

static int since_job(sqlite3 *db, void *arg)
{
    (void)arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO st_counts(name, n) VALUES('since', ?1)", -1,
                           &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, clock_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Degraded, not unready, while an ingest stream is unreachable: the figures catch up by replay. */
static bool ready(void *arg)
{
    struct stats *s = arg;
    for (int i = 0; i < s->ningest; i++) { /* ingest's replicas; the others may come later */
        if (!bus_sub_source_ready(s->sub, i)) {
            return false;
        }
    }
    return bus_sub_discovery_ok(s->sub); /* or ingest's replicas found by DNS */
}

static void stats_stop(void *state)
{
    struct stats *s = state;
    if (s == NULL) {
        return;
    }
    metrics_collector_remove(stats_speed_collect, s);
    retention_stop(s->retention);
    bus_sub_close(s->sub);
    store_close(s->store);
    api_keys_free(s->keys);
    call_window_free(&s->window);
    free(s);
}

static int stats_start(struct app *app, void **state, char err[CONFIG_ERR_MAX])
{
    struct stats *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return -1;
    }
    s->keep[0] = (struct retention_rule){"names", retention_names_sql, 0};
    s->keep[1] = (struct retention_rule){"lead_events", retention_lead_events_sql, 0};
    s->keep[2] = (struct retention_rule){"timeline", retention_timeline_sql, 0};
    s->keep[3] = (struct retention_rule){"minutes", retention_minutes_sql, 0};
    snprintf(s->tz_name, sizeof s->tz_name, "%s", config_str("CALL_TIMEZONE", "Asia/Kolkata"));
    if (config_bool("STATS_REQUIRE_KEY", false, &s->require_key, err) != 0 ||
        call_window_parse(config_str("CALL_HOURS", "09:00-21:00"), config_str("CALL_DAYS", "all"),
                          s->tz_name, &s->window, err) != 0) {
        stats_stop(s);
        return -1;
    }
    /* Every publisher (every ingest replica), every topic. */
    struct app_sources *src = calloc(1, sizeof *src);
    if (src == NULL || (s->ningest = app_sources_add(app, src, "ingest", err)) < 0) {
        free(src);
        free(s);
        return -1;
    }
    for (int i = 1; app_publishers[i] != NULL; i++) {
        if (app_sources_add(app, src, app_publishers[i], err) < 0) {
            free(src);
            free(s);
            return -1;
        }
    }
    struct bus_sub_opts so = {.name = "stats",
                              .sources = src->src,
                              .nsources = src->n,
                              .handler = on_event,
                              .arg = s,
                              .discover = app_sources_discover(src)};
    if (api_keys_load(app->data_dir, &s->keys, err) != 0 ||
        app_store_open_versioned(app, "stats", schema, migrations,
                                 sizeof migrations / sizeof migrations[0], &s->store) != 0 ||
        store_run(s->store, since_job, NULL) != 0 ||
        retention_days("LEAD_RETENTION_DAYS", &s->keep[0].days, err) != 0 ||
        retention_days("STATS_RETENTION_DAYS", &s->keep[2].days, err) != 0 ||
        (s->keep[1].days = s->keep[0].days, s->keep[3].days = s->keep[2].days,
         retention_start(s->store, s->keep, 4, &s->retention)) != 0 ||
        (so.store = s->store, bus_sub_open(&so, &s->sub)) != 0 ||
        http_route(app->http, "GET", "/exotel/stats", get_stats, s) != 0 ||
        stats_read_routes(s, app->http) != 0 ||
        metrics_collector_add(stats_speed_collect, s) != 0 ||
        http_degraded_check(app->http, "stats: ingest streams", ready, s) != 0 ||
        http_ready_check(app->http, bus_sub_streams_check(s->sub), bus_sub_streams_ok, s->sub) !=
            0) {
        free(src);
        stats_stop(s);
        return -1;
    }
    free(src);
    *state = s;
    return 0;
}

const struct module stats_module = {"stats", stats_start, stats_stop};
