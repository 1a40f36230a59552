/*
 * calls: call-scheduler's table of calls, and every transaction that moves one.
 *
 * The call state machine (calls.state, enum call_state, CHECKed in the schema):
 *
 *   lead.created ──a skip reason (disabled, no or invalid phone, country, duplicate,
 *     │             number limit, erased)──> skipped (call.skipped)
 *     v
 *   pending ──due, within the rate limit (call.due)──> dispatched
 *     ^  │                                                 │
 *     │  └──DELETE /calls/{id}, lead.erased──> canceled    │ final call.status of the
 *     │      (call.skipped, reason canceled)               │ attempt in flight
 *     └──── the retry policy allows another (call.scheduled, attempt + 1) ──┤
 *                                            no retry (or no number left) ──┴──> done (call.closed)
 *
 * Invariants: one call per lead (call_id = "call_" + lead id; a lead.created applied again
 * changes nothing); only a dispatched call moves on a call.status, and only on that of its
 * attempt in flight; done, canceled and skipped never move; every move publishes its event in
 * the transaction that makes it; a dispatch is recorded (dispatches) for the rate limit in the
 * same transaction.
 */
#include "call_scheduler_int.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "phone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DISPATCH_BATCH 256

const char *const call_state_name[] = {
    [CALL_PENDING] = "pending",   [CALL_DISPATCHED] = "dispatched", [CALL_DONE] = "done",
    [CALL_CANCELED] = "canceled", [CALL_SKIPPED] = "skipped",
};
_Static_assert(sizeof call_state_name / sizeof call_state_name[0] == CALL_SKIPPED + 1,
               "one name per state");

const char calls_schema[] =
    "CREATE TABLE IF NOT EXISTS calls("
    "  call_id TEXT PRIMARY KEY, lead_id TEXT NOT NULL, phone_e164 TEXT NOT NULL,"
    "  phone_dial TEXT NOT NULL, received_ms INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    "  state TEXT NOT NULL, due_ms INTEGER NOT NULL, status TEXT, detail TEXT,"
    "  updated_ms INTEGER NOT NULL);"
    /* (state, due_ms), not partial: the planner then never prefers calls_state and a sort */
    "DROP INDEX IF EXISTS calls_pending;"
    "CREATE INDEX IF NOT EXISTS calls_due ON calls(state, due_ms);"
    /* not partial: `phone_e164 = ?` with a bound value cannot use an index WHERE phone_e164 <> ''
     */
    "DROP INDEX IF EXISTS calls_phone;"
    "CREATE INDEX IF NOT EXISTS calls_phone_received ON calls(phone_e164, received_ms);"
    "CREATE INDEX IF NOT EXISTS calls_state ON calls(state, updated_ms);"
    "CREATE TABLE IF NOT EXISTS dispatches(ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS dispatches_ms ON dispatches(ms);";

/* LEAD_RETENTION_DAYS: a closed call's phone numbers (ids, states and outcomes stay). */
const char calls_retention_sql[] =
    "UPDATE calls SET phone_e164 = '', phone_dial = '' WHERE rowid IN (SELECT rowid FROM calls"
    " WHERE updated_ms < ?1 AND state IN ('done', 'canceled', 'skipped') AND phone_e164 <> ''"
    " LIMIT ?2)";

/* Schema steps after version 1 (store.h, "Schema versions"); never edit calls_schema above. */
const struct store_migration calls_migrations[] = {
    /* 2: the call state machine checked by the store: a table rebuild, as SQLite adds a CHECK
     * no other way (sqlite.org/lang_altertable.html, "other kinds of table schema changes") */
    {2, "CREATE TABLE calls_v2("
        "  call_id TEXT PRIMARY KEY, lead_id TEXT NOT NULL, phone_e164 TEXT NOT NULL,"
        "  phone_dial TEXT NOT NULL, received_ms INTEGER NOT NULL, attempt INTEGER NOT NULL,"
        "  state TEXT NOT NULL"
        "    CHECK (state IN ('pending', 'dispatched', 'done', 'canceled', 'skipped')),"
        "  due_ms INTEGER NOT NULL, status TEXT, detail TEXT, updated_ms INTEGER NOT NULL);"
        "INSERT INTO calls_v2 SELECT call_id, lead_id, phone_e164, phone_dial, received_ms,"
        "  attempt, state, due_ms, status, detail, updated_ms FROM calls;"
        "DROP TABLE calls;"
        "ALTER TABLE calls_v2 RENAME TO calls;"
        "CREATE INDEX calls_due ON calls(state, due_ms);"
        "CREATE INDEX calls_phone_received ON calls(phone_e164, received_ms);"
        "CREATE INDEX calls_state ON calls(state, updated_ms);"},
};
const size_t calls_nmigrations = sizeof calls_migrations / sizeof calls_migrations[0];

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- bus handler (writer thread, inside the subscriber's transaction) ---- */

static int insert_call(sqlite3 *db, const char *call_id, const struct proto_lead_created *l,
                       enum call_state state, int64_t due, const char *status)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO calls(call_id, lead_id, phone_e164, phone_dial, received_ms,"
            " attempt, state, due_ms, status, updated_ms)"
            " VALUES(?1,?2,?3,?4,?5,1,?6,?7,?8,?9)",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, call_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, l->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, l->phone_e164, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, l->phone_dial, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, l->received_ms);
    sqlite3_bind_text(st, 6, call_state_name[state], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, due);
    sqlite3_bind_text(st, 8, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, clock_now_ms());
    return step_done(st);
}

/* Is this phone already called or waiting for a call from a lead within the dedupe window? */
static int is_duplicate(sqlite3 *db, struct sched *s, const struct proto_lead_created *l)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM calls WHERE phone_e164 = ?1 AND received_ms > ?2"
                           " AND state IN ('pending', 'dispatched', 'done') LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, l->phone_e164, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, l->received_ms - s->dedupe_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

#define DAY_MS (24LL * 3600 * 1000)

/* Attempts made or planned to this phone for the leads of the 24 hours before `at`. */
static int attempts_to(sqlite3 *db, const char *phone, int64_t at, int64_t *n)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT coalesce(sum(attempt), 0) FROM calls WHERE phone_e164 = ?1"
                           " AND received_ms > ?2 AND state IN ('pending', 'dispatched', 'done')",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, phone, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, at - DAY_MS);
    int rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* Why this lead's phone is not called, or NULL to call it; -1 in *err on a store error. */
static const char *skip_reason(sqlite3 *db, struct sched *s, const struct proto_lead_created *l,
                               int *err)
{
    char region[3];
    int64_t attempts = 0;
    *err = 0;
    if (!s->enabled) {
        return "disabled";
    }
    if (strcmp(l->phone_status, "valid") != 0) {
        return strcmp(l->phone_status, "invalid") == 0 ? "invalid_phone" : "no_phone";
    }
    if (phone_region_of(l->phone_e164, region) != 0 || !dial_guard_country_ok(&s->guard, region)) {
        return "country";
    }
    int dup = is_duplicate(db, s, l);
    if (dup != 0) {
        *err = dup < 0 ? -1 : 0;
        return "duplicate";
    }
    if (attempts_to(db, l->phone_e164, l->received_ms, &attempts) != 0) {
        *err = -1;
        return NULL;
    }
    return dial_guard_number_ok(&s->guard, attempts) ? NULL : "number_limit";
}

/* Does the lead's call exist? A lead.created applied again (its stream reset) changes nothing. */
static int call_exists(sqlite3 *db, const char *call_id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM calls WHERE call_id = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, call_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* A call's state (and lead id if asked): 1, 0 with state "" when there is no such call, or -1. */
static int call_state_of(sqlite3 *db, const char *call_id, char state[16], char *lead_id,
                         size_t lead_size)
{
    sqlite3_stmt *st;
    state[0] = '\0';
    if (sqlite3_prepare_v2(db, "SELECT state, lead_id FROM calls WHERE call_id = ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, call_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        store_text(st, 0, state, 16);
        if (lead_id != NULL) {
            store_text(st, 1, lead_id, lead_size);
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int on_lead(sqlite3 *db, struct sched *s, const struct proto_lead_created *l)
{
    char call_id[64];
    snprintf(call_id, sizeof call_id, "call_%s", l->lead_id);
    int exists = call_exists(db, call_id);
    if (exists != 0) {
        return exists < 0 ? -1 : 0;
    }
    int err = 0;
    /* Erased (a kept event rewritten, read by a late or reset subscriber): never called. */
    const char *reason = l->erased_ms != 0 ? "canceled" : skip_reason(db, s, l, &err);
    if (err != 0) {
        return -1;
    }
    if (reason != NULL) {
        struct proto_call_skipped ev = {0};
        snprintf(ev.call_id, sizeof ev.call_id, "%s", call_id);
        snprintf(ev.lead_id, sizeof ev.lead_id, "%s", l->lead_id);
        snprintf(ev.reason, sizeof ev.reason, "%s", reason);
        if (insert_call(db, call_id, l, CALL_SKIPPED, 0, reason) != 0 ||
            bus_pub_append(s->pub, db, PROTO_CALL_SKIPPED, &ev, NULL) != 0) {
            return -1;
        }
        log_info("Call skipped", LOG_FIELDS(LOG_S("callId", call_id), LOG_S("leadId", l->lead_id),
                                            LOG_S("reason", reason)));
        return 0;
    }
    int64_t due = call_window_next(&s->window, l->received_ms + s->delay_ms);
    struct proto_call_scheduled ev = {0};
    snprintf(ev.call_id, sizeof ev.call_id, "%s", call_id);
    snprintf(ev.lead_id, sizeof ev.lead_id, "%s", l->lead_id);
    ev.attempt = 1;
    ev.due_ms = due;
    snprintf(ev.phone_e164, sizeof ev.phone_e164, "%s", l->phone_e164);
    snprintf(ev.phone_dial, sizeof ev.phone_dial, "%s", l->phone_dial);
    if (insert_call(db, call_id, l, CALL_PENDING, due, NULL) != 0 ||
        bus_pub_append(s->pub, db, PROTO_CALL_SCHEDULED, &ev, NULL) != 0) {
        return -1;
    }
    wake_mark(&s->wake);
    int64_t delay = due - clock_now_ms();
    log_info("Scheduling call",
             LOG_FIELDS(LOG_S("callId", call_id), LOG_PHONE("phoneNumber", l->phone_dial),
                        LOG_I("delayMs", delay > 0 ? delay : 0)));
    return 0;
}

/* outbox_rewrite's edit: the erased lead's kept call.scheduled and call.due lose the phone. */
static int scrub_call_event(struct proto_event *ev, void *arg)
{
    const char *lead_id = arg;
    char *e164 = NULL, *dial = NULL;
    if (ev->topic == PROTO_CALL_SCHEDULED &&
        strcmp(ev->data.call_scheduled.lead_id, lead_id) == 0) {
        e164 = ev->data.call_scheduled.phone_e164;
        dial = ev->data.call_scheduled.phone_dial;
    } else if (ev->topic == PROTO_CALL_DUE && strcmp(ev->data.call_due.lead_id, lead_id) == 0) {
        e164 = ev->data.call_due.phone_e164;
        dial = ev->data.call_due.phone_dial;
    }
    if (e164 == NULL || (e164[0] == '\0' && dial[0] == '\0')) {
        return 0;
    }
    e164[0] = dial[0] = '\0';
    return 1;
}

/*
 * lead.erased: the lead's phone numbers leave the calls table and the kept events; a pending
 * call is canceled (call.skipped, reason canceled); a call being dialed ends without a retry
 * (on_status: no number). Read before its lead.created (another stream), the call is recorded
 * as canceled, so that lead.created schedules nothing.
 */
static int on_erased(sqlite3 *db, struct sched *s, const struct proto_lead_erased *e)
{
    char call_id[64];
    snprintf(call_id, sizeof call_id, "call_%s", e->lead_id);
    char state[16];
    int found = call_state_of(db, call_id, state, NULL, 0);
    if (found < 0) {
        return -1;
    }
    if (found == 0) {
        struct proto_lead_created l = {.received_ms = e->erased_ms, .erased_ms = e->erased_ms};
        snprintf(l.lead_id, sizeof l.lead_id, "%s", e->lead_id);
        return on_lead(db, s, &l);
    }
    sqlite3_stmt *st;
    bool pending = strcmp(state, call_state_name[CALL_PENDING]) == 0;
    if (sqlite3_prepare_v2(db,
                           "UPDATE calls SET phone_e164 = '', phone_dial = '', updated_ms = ?2,"
                           " state = CASE WHEN state = 'pending' THEN 'canceled' ELSE state END,"
                           " status = CASE WHEN state = 'pending' THEN 'canceled' ELSE status END,"
                           " detail = CASE WHEN state = 'pending' THEN 'lead erased' ELSE detail"
                           " END WHERE call_id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, clock_now_ms());
    if (step_done(st) != 0 ||
        outbox_rewrite(db, e->lead_id, 0, scrub_call_event, (void *)e->lead_id) < 0) {
        return -1;
    }
    if (pending) {
        struct proto_call_skipped ev = {0};
        snprintf(ev.call_id, sizeof ev.call_id, "%s", call_id);
        snprintf(ev.lead_id, sizeof ev.lead_id, "%s", e->lead_id);
        snprintf(ev.reason, sizeof ev.reason, "canceled");
        if (bus_pub_append(s->pub, db, PROTO_CALL_SKIPPED, &ev, NULL) != 0) {
            return -1;
        }
        wake_mark(&s->wake);
    }
    log_info("Lead erased: phone numbers scrubbed",
             LOG_FIELDS(LOG_S("callId", call_id), LOG_S("canceled", pending ? "yes" : "no")));
    return 0;
}

/*
 * The delay before another attempt from `at`, or -1 for none: the retry policy's, unless the
 * lead was erased (no number) or the number had its calls today. -1 on a store error.
 */
static int retry_delay(sqlite3 *db, struct sched *s, const struct proto_call_status *c,
                       const char *phone, int64_t at, int attempt, int64_t *delay)
{
    *delay = retry_policy_next(&s->retry, c->status, attempt);
    if (phone[0] == '\0') {
        *delay = -1; /* the lead was erased while this attempt was dialed: no number to retry */
    }
    int64_t attempts = 0;
    if (*delay >= 0 && attempts_to(db, phone, at, &attempts) != 0) {
        return -1;
    }
    if (*delay >= 0 && !dial_guard_number_ok(&s->guard, attempts)) {
        *delay = -1; /* MAX_CALLS_PER_NUMBER_PER_DAY: this number had its calls today */
        log_warn("No retry: the number reached MAX_CALLS_PER_NUMBER_PER_DAY",
                 LOG_FIELDS(LOG_S("callId", c->call_id), LOG_I("attempts", attempts)));
    }
    return 0;
}

/* An attempt's final outcome: another attempt per the retry policy, or the call is closed. */
static int on_status(sqlite3 *db, struct sched *s, const struct proto_event *e)
{
    const struct proto_call_status *c = &e->data.call_status;
    if (!c->final) {
        return 0;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT attempt, state, lead_id, phone_e164, phone_dial FROM calls"
                           " WHERE call_id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, c->call_id, -1, SQLITE_STATIC);
    struct proto_call_scheduled next = {0};
    char state[16] = "";
    int attempt = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        attempt = sqlite3_column_int(st, 0);
        store_text(st, 1, state, sizeof state);
        store_text(st, 2, next.lead_id, sizeof next.lead_id);
        store_text(st, 3, next.phone_e164, sizeof next.phone_e164);
        store_text(st, 4, next.phone_dial, sizeof next.phone_dial);
    }
    sqlite3_finalize(st);
    if (strcmp(state, call_state_name[CALL_DISPATCHED]) != 0 || attempt != c->attempt) {
        return 0; /* not the attempt in flight: already handled, or canceled */
    }
    int64_t delay;
    if (retry_delay(db, s, c, next.phone_e164, e->ts, attempt, &delay) != 0) {
        return -1;
    }
    bool retry = delay >= 0;
    if (sqlite3_prepare_v2(db,
                           "UPDATE calls SET attempt = ?2, state = ?3, due_ms = ?4, status = ?5,"
                           " detail = ?6, updated_ms = ?7 WHERE call_id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    /* From the event's time, not now: a replay after downtime schedules the same. */
    int64_t due = retry ? call_window_next(&s->window, e->ts + delay) : 0;
    sqlite3_bind_text(st, 1, c->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, retry ? attempt + 1 : attempt);
    sqlite3_bind_text(st, 3, call_state_name[retry ? CALL_PENDING : CALL_DONE], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, due);
    sqlite3_bind_text(st, 5, c->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, c->detail, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, clock_now_ms());
    if (step_done(st) != 0) {
        return -1;
    }
    if (!retry) {
        /* call.closed: what a follow-up (the SMS module) waits for; same transaction */
        struct proto_call_closed closed = {.attempts = attempt};
        snprintf(closed.call_id, sizeof closed.call_id, "%s", c->call_id);
        snprintf(closed.lead_id, sizeof closed.lead_id, "%s", c->lead_id);
        snprintf(closed.status, sizeof closed.status, "%s", c->status);
        if (bus_pub_append(s->pub, db, PROTO_CALL_CLOSED, &closed, NULL) != 0) {
            return -1;
        }
        log_info("Call closed", LOG_FIELDS(LOG_S("callId", c->call_id), LOG_I("attempts", attempt),
                                           LOG_S("status", c->status)));
        return 0;
    }
    snprintf(next.call_id, sizeof next.call_id, "%s", c->call_id);
    next.attempt = attempt + 1;
    next.due_ms = due;
    if (bus_pub_append(s->pub, db, PROTO_CALL_SCHEDULED, &next, NULL) != 0) {
        return -1;
    }
    wake_mark(&s->wake);
    log_info("Scheduling retry",
             LOG_FIELDS(LOG_S("callId", c->call_id), LOG_I("attempt", attempt + 1),
                        LOG_S("after", c->status), LOG_I("delayMs", due - e->ts)));
    return 0;
}

int calls_on_event(sqlite3 *db, const struct proto_event *ev, void *arg)
{
    struct sched *s = arg;
    if (ev->topic == PROTO_LEAD_CREATED) {
        return on_lead(db, s, &ev->data.lead_created);
    }
    if (ev->topic == PROTO_CALL_STATUS) {
        return on_status(db, s, ev);
    }
    if (ev->topic == PROTO_LEAD_ERASED) {
        return on_erased(db, s, &ev->data.lead_erased);
    }
    return 0;
}

/* ---- the timer's dispatch (writer thread) ---- */

int calls_dispatch_job(sqlite3 *db, void *arg)
{
    struct dispatch_args *a = arg;
    struct sched *s = a->s;
    int64_t now = a->now;
    int want = rate_limit_available(&s->rl, now);
    want = want < DISPATCH_BATCH ? want : DISPATCH_BATCH;
    a->n = 0;
    sqlite3_stmt *sel = NULL, *upd = NULL, *log_st = NULL;
    int rc = 0;
    if (want > 0) {
        if (sqlite3_prepare_v2(db,
                               "SELECT call_id, lead_id, attempt, due_ms, phone_e164, phone_dial"
                               " FROM calls WHERE state = 'pending' AND due_ms <= ?1"
                               " ORDER BY due_ms LIMIT ?2",
                               -1, &sel, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db,
                               "UPDATE calls SET state = 'dispatched', updated_ms = ?2"
                               " WHERE call_id = ?1",
                               -1, &upd, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "INSERT INTO dispatches(ms) VALUES(?1)", -1, &log_st, NULL) !=
                SQLITE_OK) {
            rc = -1;
        }
        if (rc == 0) {
            sqlite3_bind_int64(sel, 1, now);
            sqlite3_bind_int(sel, 2, want);
        }
        while (rc == 0 && sqlite3_step(sel) == SQLITE_ROW) {
            struct proto_call_due ev = {0};
            store_text(sel, 0, ev.call_id, sizeof ev.call_id);
            store_text(sel, 1, ev.lead_id, sizeof ev.lead_id);
            ev.attempt = sqlite3_column_int(sel, 2);
            ev.due_ms = sqlite3_column_int64(sel, 3);
            store_text(sel, 4, ev.phone_e164, sizeof ev.phone_e164);
            store_text(sel, 5, ev.phone_dial, sizeof ev.phone_dial);
            sqlite3_bind_text(upd, 1, ev.call_id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(upd, 2, now);
            sqlite3_bind_int64(log_st, 1, now);
            if (sqlite3_step(upd) != SQLITE_DONE || sqlite3_step(log_st) != SQLITE_DONE ||
                bus_pub_append(s->pub, db, PROTO_CALL_DUE, &ev, NULL) != 0) {
                rc = -1;
            }
            sqlite3_reset(upd);
            sqlite3_reset(log_st);
            a->n++; /* counted by the timer once the transaction is durable, not before */
        }
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    sqlite3_finalize(log_st);
    if (rc != 0) {
        return -1;
    }
    if (now - s->pruned_ms > 60000) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "DELETE FROM dispatches WHERE ms <= ?1", -1, &st, NULL) ==
            SQLITE_OK) {
            sqlite3_bind_int64(st, 1, now - s->rl.window_ms);
            step_done(st);
            s->pruned_ms = now;
        }
    }
    /* Next: the earliest pending due time, or — while calls are already due — the rate limit. */
    a->wake = now + MAX_SLEEP_MS;
    if (sqlite3_prepare_v2(db, "SELECT min(due_ms) FROM calls WHERE state = 'pending'", -1, &sel,
                           NULL) == SQLITE_OK) {
        if (sqlite3_step(sel) == SQLITE_ROW && sqlite3_column_type(sel, 0) != SQLITE_NULL) {
            int64_t next = sqlite3_column_int64(sel, 0);
            a->wake = next <= now ? rate_limit_next(&s->rl, now) : next;
            if (next <= now && a->wake > now) {
                metrics_counter_add("leadbus_rate_limit_waits_total",
                                    "Times due calls waited for the Exotel rate limit",
                                    "service=\"call-scheduler\"", 1);
            }
        }
        sqlite3_finalize(sel);
    }
    return 0;
}

/* ---- the operator's cancel ---- */

int calls_cancel_job(sqlite3 *db, void *arg)
{
    struct cancel_args *a = arg;
    struct proto_call_skipped ev = {0};
    if (call_state_of(db, a->call_id, a->state, ev.lead_id, sizeof ev.lead_id) < 0) {
        return -1;
    }
    sqlite3_stmt *st;
    if (strcmp(a->state, call_state_name[CALL_PENDING]) != 0) {
        return 0;
    }
    if (sqlite3_prepare_v2(
            db,
            "UPDATE calls SET state = 'canceled', status = 'canceled',"
            " detail = 'canceled by an operator', updated_ms = ?2 WHERE call_id = ?1",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, a->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, clock_now_ms());
    snprintf(ev.call_id, sizeof ev.call_id, "%s", a->call_id);
    snprintf(ev.reason, sizeof ev.reason, "canceled");
    if (step_done(st) != 0 || bus_pub_append(a->s->pub, db, PROTO_CALL_SKIPPED, &ev, NULL) != 0) {
        return -1;
    }
    wake_mark(&a->s->wake);
    return 0;
}
