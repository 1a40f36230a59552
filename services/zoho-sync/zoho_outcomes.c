/*
 * zoho_outcomes: call outcomes written back to the lead in Zoho CRM.
 *
 * Each final attempt (call.status with final set) becomes a Note on the lead
 * and, when the call connected, a record in the Calls module linked to the
 * lead. Both carry a marker ("[leadbus call C attempt A]") so that a write
 * whose answer was lost (a crash, a 500 after Zoho wrote) is found, not
 * repeated. The lookups follow Zoho's documents, not our guesses
 * (docs/api-conformance.md):
 *
 *   Notes   GET  Leads/{id}/Notes?fields=Note_Title,Note_Content&per_page=200&page=N
 *                (`fields` is mandatory; 204 = none; info.more_records pages on)
 *   Calls   POST coql  select id, Subject from Calls where 'What_Id->Leads.id' = '{id}'
 *                (Calls is not a documented related list of Leads; COQL reaches Calls
 *                through What_Id, Kaizen #81; the marker is in Subject, a field COQL
 *                can select)
 *
 * The state machine of one outcome (zoho_outcomes.state):
 *
 *            write ok (note, call record, status field)
 *   pending ─────────────────────────────────────────────> done
 *     │ ^
 *     │ └─ transient failure (network, 429, 5xx, 401) or a refusal below the limit:
 *     │    next_try_ms = now + backoff
 *     └──> dead   Zoho refused the try that was the ZOHO_OUTCOME_MAX_TRIES-th (a 4xx
 *                 other than 401/429: the request is wrong, sending it again will not
 *                 help), or transient failures for ZOHO_MAX_RETRY_MS since the first try. Published
 * as call.sync_failed, listed in /zoho/failed, counted in /metrics; POST
 * /zoho/failed/{leadId}/retry makes it pending again.
 *
 * Invariants: an outcome is only tried once its lead is synced (it has a Zoho
 * id); note_id and call_rec_id, once set, are never written again, so a retry
 * resumes where the last try stopped; only worker 0 writes outcomes, which
 * keeps a lead's notes in attempt order.
 */
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "zoho_sync_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OUTCOME_BATCH 20
#define LIST_PAGES_MAX 10 /* 2,000 records on one lead: far beyond what attempts make */

const char zoho_outcomes_schema[] =
    "CREATE TABLE IF NOT EXISTS zoho_outcomes("
    "  call_id TEXT NOT NULL, attempt INTEGER NOT NULL, lead_id TEXT NOT NULL,"
    "  status TEXT NOT NULL, call_sid TEXT, duration_s INTEGER NOT NULL, recording TEXT,"
    "  ended_ms INTEGER NOT NULL, note_id TEXT, call_rec_id TEXT,"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),"
    "  tries INTEGER NOT NULL DEFAULT 0, next_try_ms INTEGER NOT NULL, code TEXT,"
    "  first_try_ms INTEGER, PRIMARY KEY(call_id, attempt));"
    "CREATE INDEX IF NOT EXISTS zoho_outcomes_lead ON zoho_outcomes(lead_id);";

enum outcome_state { OUTCOME_PENDING, OUTCOME_DONE, OUTCOME_DEAD };
static const char *const outcome_state_names[] = {"pending", "done", "dead"};

/* What one try at writing an outcome came to. */
enum write_result {
    WRITE_DONE,    /* everything the outcome needs is in Zoho */
    WRITE_RETRY,   /* a transient failure: try again later */
    WRITE_REFUSED, /* Zoho refused the request itself (4xx other than 401/429) */
};

struct outcome {
    char call_id[64], lead_id[40], status[24], call_sid[64], recording[512], zoho_id[32];
    char note_id[32], call_rec_id[32];
    char agent[32], agent_leg[24], detail[256]; /* the agent rung first (issue 20), or "" */
    int attempt, tries;
    int64_t duration_s, ended_ms, first_try_ms;
};

/* Columns added after zoho_outcomes was first released, each once (checked by name). */
static int add_column(sqlite3 *db, const char *name, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            db, "SELECT count(*) FROM pragma_table_info('zoho_outcomes') WHERE name = ?1", -1, &st,
            NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int has = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (has != 0) {
        return has > 0 ? 0 : -1;
    }
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int zoho_outcomes_migrate(sqlite3 *db, void *arg)
{
    (void)arg;
    /* first_try_ms: the retry limit; agent, agent_leg, detail: the agent pool (issue 20) */
    return add_column(db, "first_try_ms",
                      "ALTER TABLE zoho_outcomes ADD COLUMN first_try_ms INTEGER") != 0 ||
                   add_column(db, "agent", "ALTER TABLE zoho_outcomes ADD COLUMN agent TEXT") !=
                       0 ||
                   add_column(db, "agent_leg",
                              "ALTER TABLE zoho_outcomes ADD COLUMN agent_leg TEXT") != 0 ||
                   add_column(db, "detail", "ALTER TABLE zoho_outcomes ADD COLUMN detail TEXT") != 0
               ? -1
               : 0;
}

int zoho_outcomes_on_status(sqlite3 *db, const struct proto_event *ev)
{
    const struct proto_call_status *c = &ev->data.call_status;
    if (!c->final) {
        return 0; /* only an attempt's outcome goes to the CRM */
    }
    sqlite3_stmt *st;
    int rc =
        sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO zoho_outcomes(call_id, attempt, lead_id, status,"
                           " call_sid, duration_s, recording, ended_ms, state, next_try_ms, agent,"
                           " agent_leg, detail)"
                           " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,'pending',0,?9,?10,?11)",
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
        sqlite3_bind_text(st, 9, c->agent, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 10, c->agent_leg, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 11, c->detail, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- store jobs ---- */

struct load_args {
    struct outcome o[OUTCOME_BATCH];
    int n;
};

/* Outcomes whose lead is already in Zoho: the rest wait for it. */
static int load_job(sqlite3 *db, void *arg)
{
    struct load_args *a = arg;
    sqlite3_stmt *st;
    a->n = 0;
    if (sqlite3_prepare_v2(
            db,
            "SELECT o.call_id, o.attempt, o.lead_id, o.status, o.call_sid, o.duration_s,"
            " o.recording, o.ended_ms, o.note_id, o.call_rec_id, o.tries, l.zoho_id,"
            " coalesce(o.first_try_ms, 0), coalesce(o.agent, ''), coalesce(o.agent_leg, ''),"
            " coalesce(o.detail, '')"
            " FROM zoho_outcomes o JOIN zoho_leads l ON l.lead_id = o.lead_id"
            " WHERE o.state = 'pending' AND l.state = 'synced' AND o.next_try_ms <= ?1"
            " ORDER BY o.ended_ms LIMIT ?2",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, clock_now_ms());
    sqlite3_bind_int(st, 2, OUTCOME_BATCH);
    while (a->n < OUTCOME_BATCH && sqlite3_step(st) == SQLITE_ROW) {
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
        o->first_try_ms = sqlite3_column_int64(st, 12);
        store_text(st, 13, o->agent, sizeof o->agent);
        store_text(st, 14, o->agent_leg, sizeof o->agent_leg);
        store_text(st, 15, o->detail, sizeof o->detail);
    }
    sqlite3_finalize(st);
    return 0;
}

struct save_args {
    struct zsync *z;
    const struct outcome *o;
    enum outcome_state state;
    int64_t next_try_ms;
    const char *code;
    const char *message; /* for call.sync_failed when dead */
};

static int save_job(sqlite3 *db, void *arg)
{
    struct save_args *s = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE zoho_outcomes SET note_id = nullif(?3, ''),"
                           " call_rec_id = nullif(?4, ''), state = ?5, tries = ?6,"
                           " next_try_ms = ?7, code = ?8, first_try_ms = ?9"
                           " WHERE call_id = ?1 AND attempt = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, s->o->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, s->o->attempt);
    sqlite3_bind_text(st, 3, s->o->note_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, s->o->call_rec_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, outcome_state_names[s->state], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, s->o->tries);
    sqlite3_bind_int64(st, 7, s->next_try_ms);
    sqlite3_bind_text(st, 8, s->code, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, s->o->first_try_ms);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    if (rc == 0 && s->state == OUTCOME_DEAD) {
        struct proto_call_sync_failed ev;
        memset(&ev, 0, sizeof ev);
        snprintf(ev.lead_id, sizeof ev.lead_id, "%s", s->o->lead_id);
        snprintf(ev.call_id, sizeof ev.call_id, "%s", s->o->call_id);
        ev.attempt = s->o->attempt;
        snprintf(ev.code, sizeof ev.code, "%s", s->code);
        snprintf(ev.message, sizeof ev.message, "%s", s->message);
        ev.permanent = strcmp(s->code, "RETRY_LIMIT") != 0;
        rc = bus_pub_append(s->z->pub, db, PROTO_CALL_SYNC_FAILED, &ev, NULL);
    }
    return rc;
}

int zoho_outcomes_list_dead(sqlite3 *db, void *arg)
{
    cJSON *list = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            db,
            "SELECT lead_id, call_id, attempt, status, code, tries FROM zoho_outcomes"
            " WHERE state = 'dead' ORDER BY ended_ms LIMIT 1000",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        char lead[40], call[64], status[24], code[64];
        store_text(st, 0, lead, sizeof lead);
        store_text(st, 1, call, sizeof call);
        store_text(st, 3, status, sizeof status);
        store_text(st, 4, code, sizeof code);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "leadId", lead);
        cJSON_AddStringToObject(o, "callId", call);
        cJSON_AddNumberToObject(o, "attempt", sqlite3_column_int(st, 2));
        cJSON_AddStringToObject(o, "status", status);
        cJSON_AddStringToObject(o, "code", code);
        cJSON_AddNumberToObject(o, "tries", sqlite3_column_int(st, 5));
        cJSON_AddItemToArray(list, o);
    }
    sqlite3_finalize(st);
    return 0;
}

const char zoho_outcomes_revive_sql[] =
    "UPDATE zoho_outcomes SET state = 'pending', tries = 0, first_try_ms = NULL, next_try_ms = 0"
    " WHERE lead_id = ?1 AND state = 'dead'";

static int count_job(sqlite3 *db, void *arg)
{
    int64_t *n = arg; /* [pending, done, dead] */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT state, count(*) FROM zoho_outcomes GROUP BY state", -1, &st,
                           NULL) != SQLITE_OK) {
        return -1;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        for (int i = 0; i < 3; i++) {
            if (state != NULL && strcmp(state, outcome_state_names[i]) == 0) {
                n[i] = sqlite3_column_int64(st, 1);
            }
        }
    }
    sqlite3_finalize(st);
    return 0;
}

void zoho_outcomes_collect(void *arg)
{
    struct zsync *z = arg;
    sqlite3 *db;
    int64_t n[3] = {0, 0, 0};
    if (store_open_reader(z->store, &db) != 0) {
        return;
    }
    int rc = count_job(db, n);
    sqlite3_close(db);
    if (rc != 0) {
        return;
    }
    for (int i = 0; i < 3; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "state=\"%s\"", outcome_state_names[i]);
        metrics_gauge_set("leadbus_zoho_outcomes", "Call outcomes for Zoho by state", labels,
                          (double)n[i]);
    }
}

/* ---- lookups: has this outcome been written already? ---- */

static void iso_utc(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
}

/* One page of a list read; a transport failure is a transient one. */
static enum zoho_list_status list_page(struct worker *w, const char *method, const char *path,
                                       const char *json, const char *field, const char *marker,
                                       char id_out[32], bool *more, char code[64])
{
    struct httpc_response r;
    zsync_crm(w, method, path, json, &r);
    enum zoho_list_status st =
        zoho_parse_list(r.status, r.body, r.len, field, marker, id_out, more, code);
    if (r.status == 0) {
        snprintf(code, 64, "NETWORK");
        st = ZOHO_LIST_RETRY;
    }
    free(r.body);
    return st;
}

static enum zoho_list_status find_note(struct worker *w, const struct outcome *o,
                                       const char *marker, char id_out[32], char code[64])
{
    for (int page = 1; page <= LIST_PAGES_MAX; page++) {
        char path[160];
        bool more;
        snprintf(path, sizeof path,
                 "Leads/%s/Notes?fields=Note_Title,Note_Content&per_page=%d&page=%d", o->zoho_id,
                 ZOHO_LIST_PAGE, page);
        enum zoho_list_status st =
            list_page(w, "GET", path, NULL, "Note_Content", marker, id_out, &more, code);
        if (st != ZOHO_LIST_NONE || !more) {
            return st;
        }
    }
    snprintf(code, 64, "LIST_TOO_LONG");
    return ZOHO_LIST_REFUSED;
}

static enum zoho_list_status find_call(struct worker *w, const struct outcome *o,
                                       const char *marker, char id_out[32], char code[64])
{
    for (int page = 0; page < LIST_PAGES_MAX; page++) {
        char query[256];
        bool more;
        if (zoho_coql_calls_of_lead(o->zoho_id, page * ZOHO_LIST_PAGE, query, sizeof query) != 0) {
            snprintf(code, 64, "INVALID_ZOHO_ID");
            return ZOHO_LIST_REFUSED;
        }
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "select_query", query);
        char *json = cJSON_PrintUnformatted(body);
        cJSON_Delete(body);
        enum zoho_list_status st = list_page(w, "POST", "coql", json ? json : "{}", "Subject",
                                             marker, id_out, &more, code);
        free(json);
        if (st != ZOHO_LIST_NONE || !more) {
            return st;
        }
    }
    snprintf(code, 64, "LIST_TOO_LONG");
    return ZOHO_LIST_REFUSED;
}

/* ---- writes ---- */

/* POST (or PUT) one record under `path`; on success id_out holds its id. */
static enum write_result write_record(struct worker *w, const char *method, const char *path,
                                      cJSON *rec, char id_out[32], char code[64])
{
    cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data");
    cJSON_AddItemToArray(data, rec);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    struct httpc_response r;
    zsync_crm(w, method, path, body ? body : "{}", &r);
    free(body);
    struct zoho_result res;
    int got = r.status != 0 ? zoho_parse_records(r.body, r.len, &res, 1) : -1;
    free(r.body);
    if (got == 1 && res.ok) {
        snprintf(id_out, 32, "%s", res.id);
        snprintf(code, 64, "SUCCESS");
        return WRITE_DONE;
    }
    if (r.status == 0) {
        snprintf(code, 64, "NETWORK");
        return WRITE_RETRY;
    }
    snprintf(code, 64, "%s", res.code[0] != '\0' ? res.code : "HTTP");
    if (got == 1) {
        return res.permanent ? WRITE_REFUSED : WRITE_RETRY;
    }
    return zoho_refused(r.status) ? WRITE_REFUSED : WRITE_RETRY; /* a top-level error */
}

static enum write_result from_lookup(enum zoho_list_status st)
{
    return st == ZOHO_LIST_REFUSED ? WRITE_REFUSED : WRITE_RETRY;
}

/* "Agent: Asha (answered)\n", with which side missed the call when the dialer said, or "". */
static void agent_line(const struct outcome *o, char *out, size_t size)
{
    out[0] = '\0';
    if (o->agent[0] == '\0') {
        return;
    }
    const char *leg = o->agent_leg[0] ? o->agent_leg : "leg unknown";
    bool said = strncmp(o->detail, "the ", 4) == 0; /* "the agent did not answer (…)" */
    snprintf(out, size, "Agent: %s (%s)%s%s\n", o->agent, leg, said ? ": " : "",
             said ? o->detail : "");
}

static enum write_result write_note(struct worker *w, struct outcome *o, const char *marker,
                                    const char *title, char code[64])
{
    enum zoho_list_status found = find_note(w, o, marker, o->note_id, code);
    if (found == ZOHO_LIST_FOUND) {
        return WRITE_DONE;
    }
    if (found != ZOHO_LIST_NONE) {
        return from_lookup(found);
    }
    char when[32], content[1536], path[96];
    iso_utc(o->ended_ms, when);
    char agent[400] = "";
    agent_line(o, agent, sizeof agent);
    snprintf(content, sizeof content,
             "%s\n%sEnded: %s\nDuration: %lld s\nExotel Sid: %s\nRecording: %s\n%s", title, agent,
             when, (long long)o->duration_s, o->call_sid[0] ? o->call_sid : "-",
             o->recording[0] ? o->recording : "-", marker);
    cJSON *note = cJSON_CreateObject();
    cJSON_AddStringToObject(note, "Note_Title", title);
    cJSON_AddStringToObject(note, "Note_Content", content);
    cJSON *parent = cJSON_AddObjectToObject(note, "Parent_Id");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(parent, "module"), "api_name", "Leads");
    cJSON_AddStringToObject(parent, "id", o->zoho_id);
    snprintf(path, sizeof path, "Leads/%s/Notes", o->zoho_id);
    return write_record(w, "POST", path, note, o->note_id, code);
}

/* A Calls record, for a connected call only: Zoho refuses a zero duration. */
static enum write_result write_call(struct worker *w, struct outcome *o, const char *marker,
                                    const char *title, char code[64])
{
    enum zoho_list_status found = find_call(w, o, marker, o->call_rec_id, code);
    if (found == ZOHO_LIST_FOUND) {
        return WRITE_DONE;
    }
    if (found != ZOHO_LIST_NONE) {
        return from_lookup(found);
    }
    char start[32], dur[48], desc[1024], subject[256];
    iso_utc(o->ended_ms - o->duration_s * 1000, start);
    snprintf(dur, sizeof dur, "%02lld:%02lld", (long long)(o->duration_s / 60),
             (long long)(o->duration_s % 60));
    char agent[400];
    agent_line(o, agent, sizeof agent);
    snprintf(desc, sizeof desc, "%sExotel Sid: %s\nRecording: %s", agent, o->call_sid,
             o->recording[0] ? o->recording : "-");
    snprintf(subject, sizeof subject, "%s %s", title, marker);
    cJSON *call = cJSON_CreateObject();
    cJSON_AddStringToObject(call, "Subject", subject);
    cJSON_AddStringToObject(call, "Call_Type", "Outbound");
    cJSON_AddStringToObject(call, "Outbound_Call_Status", "Completed");
    cJSON_AddStringToObject(call, "Call_Start_Time", start);
    cJSON_AddStringToObject(call, "Call_Duration", dur);
    if (w->z->call_result[0] != '\0') {
        cJSON_AddStringToObject(call, "Call_Result", w->z->call_result);
    }
    cJSON_AddStringToObject(call, "Description", desc);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(call, "What_Id"), "id", o->zoho_id);
    cJSON_AddStringToObject(call, "$se_module", "Leads");
    return write_record(w, "POST", "Calls", call, o->call_rec_id, code);
}

/* The latest outcome on the lead itself; a PUT of the same value is harmless to repeat. */
static enum write_result write_status_field(struct worker *w, const struct outcome *o,
                                            char code[64])
{
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, "id", o->zoho_id);
    cJSON_AddStringToObject(rec, w->z->status_field, o->status);
    char updated_id[32];
    return write_record(w, "PUT", "Leads", rec, updated_id, code);
}

static enum write_result write_outcome(struct worker *w, struct outcome *o, char code[64])
{
    struct zsync *z = w->z;
    char marker[128], title[128];
    snprintf(marker, sizeof marker, "[leadbus call %s attempt %d]", o->call_id, o->attempt);
    snprintf(title, sizeof title, "Auto-call attempt %d/%lld: %s%s%s", o->attempt,
             (long long)z->max_attempts, o->status, o->agent[0] ? ", agent " : "", o->agent);
    enum write_result rc = WRITE_DONE;
    if (o->note_id[0] == '\0') {
        rc = write_note(w, o, marker, title, code);
    }
    bool connected = strcmp(o->status, "completed") == 0 && o->duration_s > 0;
    if (rc == WRITE_DONE && connected && o->call_rec_id[0] == '\0') {
        rc = write_call(w, o, marker, title, code);
    }
    if (rc == WRITE_DONE && z->status_field[0] != '\0') {
        rc = write_status_field(w, o, code);
    }
    return rc;
}

/* ---- the loop ---- */

/* Where one try leaves the outcome (the state machine at the top of this file). */
static void decide(struct zsync *z, struct outcome *o, enum write_result rc, int64_t now,
                   struct save_args *s)
{
    s->state = OUTCOME_PENDING;
    s->next_try_ms = 0;
    s->message = "";
    if (rc == WRITE_DONE) {
        s->state = OUTCOME_DONE;
    } else if (rc == WRITE_REFUSED && o->tries >= z->outcome_max_tries) {
        s->state = OUTCOME_DEAD;
        s->message = "Zoho refused the call outcome; fix the cause and retry it from /zoho/failed";
    } else if (rc == WRITE_RETRY && now - o->first_try_ms >= z->max_retry_ms) {
        s->state = OUTCOME_DEAD;
        s->code = "RETRY_LIMIT";
        s->message = "Zoho kept failing for ZOHO_MAX_RETRY_MS; retry it from /zoho/failed";
    } else {
        s->next_try_ms = now + zsync_backoff(z, o->tries, -1);
    }
}

static void report(struct zsync *z, const struct outcome *o, enum write_result rc,
                   const struct save_args *s)
{
    static const char *const results[] = {"written", "retry", "refused"};
    char labels[32];
    snprintf(labels, sizeof labels, "result=\"%s\"", results[rc]);
    metrics_counter_add("leadbus_zoho_outcome_writes_total",
                        "Tries at writing a call outcome to Zoho, by result", labels, 1);
    if (rc == WRITE_REFUSED) {
        atomic_fetch_add(&z->outcome_refusals_in_row, 1);
    } else if (rc == WRITE_DONE) {
        atomic_store(&z->outcome_refusals_in_row, 0);
    }
    if (s->state == OUTCOME_DONE) {
        log_info("Call outcome written to Zoho",
                 LOG_FIELDS(LOG_S("leadId", o->lead_id), LOG_S("callId", o->call_id),
                            LOG_I("attempt", o->attempt), LOG_S("status", o->status)));
    } else if (s->state == OUTCOME_DEAD) {
        log_error("A call outcome could not be written to Zoho; it is in the dead-letter list",
                  LOG_FIELDS(LOG_S("leadId", o->lead_id), LOG_S("callId", o->call_id),
                             LOG_I("attempt", o->attempt), LOG_S("code", s->code),
                             LOG_I("tries", o->tries)));
    } else if (rc == WRITE_REFUSED) {
        log_warn("Zoho refused a call outcome; will try again",
                 LOG_FIELDS(LOG_S("callId", o->call_id), LOG_I("attempt", o->attempt),
                            LOG_S("code", s->code), LOG_I("tries", o->tries)));
    }
}

void zoho_outcomes_sync(struct worker *w)
{
    struct zsync *z = w->z;
    struct load_args *a = calloc(1, sizeof *a);
    int64_t wait;
    if (a == NULL || store_run(z->store, load_job, a) != 0 || a->n == 0 ||
        zsync_token(w, NULL, &wait) != 0) {
        free(a);
        return;
    }
    for (int i = 0; i < a->n && !atomic_load(&z->fatal); i++) {
        struct outcome *o = &a->o[i];
        char code[64] = "";
        int64_t now = clock_now_ms();
        if (o->first_try_ms == 0) {
            o->first_try_ms = now;
        }
        enum write_result rc = write_outcome(w, o, code);
        o->tries++;
        struct save_args s = {.z = z, .o = o, .code = code};
        decide(z, o, rc, clock_now_ms(), &s);
        if (store_run(z->store, save_job, &s) != 0) {
            log_error("Cannot record a call outcome's progress; it will be looked up again",
                      LOG_FIELDS(LOG_S("callId", o->call_id), LOG_I("attempt", o->attempt)));
            continue;
        }
        report(z, o, rc, &s);
    }
    free(a);
}
