/* call-scheduler: pending calls in SQLite, a timer thread, and the rate limit. */
#include "call_scheduler.h"
#include "api_key.h"
#include "bus_pub.h"
#include "bus_sub.h"
#include "call_window.h"
#include "clock.h"
#include "dial_guard.h"
#include "wake.h"
#include "phone.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "retention.h"
#include "rate_limit.h"
#include "retry_policy.h"
#include "upstream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DISPATCH_BATCH 256
#define MAX_SLEEP_MS 60000

static const char schema[] =
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
static const char retention_calls_sql[] =
    "UPDATE calls SET phone_e164 = '', phone_dial = '' WHERE rowid IN (SELECT rowid FROM calls"
    " WHERE updated_ms < ?1 AND state IN ('done', 'canceled', 'skipped') AND phone_e164 <> ''"
    " LIMIT ?2)";

struct sched {
    struct retention *retention;   /* LEAD_RETENTION_DAYS */
    struct retention_rule keep[1]; /* its rules */
    struct store *store;
    struct bus_pub *pub;
    struct bus_sub *sub;
    struct api_keys *keys;
    bool enabled;
    int64_t delay_ms, dedupe_ms;
    struct dial_guard guard; /* DIAL_COUNTRIES, MAX_CALLS_PER_NUMBER_PER_DAY */
    struct call_window window;
    struct retry_policy retry;
    /* Dispatches counted for Exotel's limit: read by dispatch_job on the writer thread while the
     * timer thread waits in store_run; recorded by the timer thread only after that commit
     * succeeded (a dispatch whose commit failed never reaches the dialer, so takes no slot). */
    struct rate_limit rl;
    int64_t pruned_ms;
    int ningest; /* the first sources are ingest's replicas */
    pthread_t thread;
    bool started;
    struct wake wake; /* the timer's: new pending calls (at their commit), cancels, the stop */
};

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- bus handler (writer thread, inside the subscriber's transaction) ---- */

static int insert_call(sqlite3 *db, const char *call_id, const struct proto_lead_created *l,
                       const char *state, int64_t due, const char *status)
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
    sqlite3_bind_text(st, 6, state, -1, SQLITE_STATIC);
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
        if (insert_call(db, call_id, l, "skipped", 0, reason) != 0 ||
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
    if (insert_call(db, call_id, l, "pending", due, NULL) != 0 ||
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
    int exists = call_exists(db, call_id);
    if (exists < 0) {
        return -1;
    }
    if (exists == 0) {
        struct proto_lead_created l = {.received_ms = e->erased_ms, .erased_ms = e->erased_ms};
        snprintf(l.lead_id, sizeof l.lead_id, "%s", e->lead_id);
        return on_lead(db, s, &l);
    }
    char state[16] = "";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT state FROM calls WHERE call_id = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, call_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, state, sizeof state);
    }
    sqlite3_finalize(st);
    bool pending = strcmp(state, "pending") == 0;
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
    if (strcmp(state, "dispatched") != 0 || attempt != c->attempt) {
        return 0; /* not the attempt in flight: already handled, or canceled */
    }
    int64_t delay = retry_policy_next(&s->retry, c->status, attempt);
    if (next.phone_e164[0] == '\0') {
        delay = -1; /* the lead was erased while this attempt was dialed: no number to retry */
    }
    int64_t attempts = 0;
    if (delay >= 0 && attempts_to(db, next.phone_e164, e->ts, &attempts) != 0) {
        return -1;
    }
    if (delay >= 0 && !dial_guard_number_ok(&s->guard, attempts)) {
        delay = -1; /* MAX_CALLS_PER_NUMBER_PER_DAY: this number had its calls today */
        log_warn("No retry: the number reached MAX_CALLS_PER_NUMBER_PER_DAY",
                 LOG_FIELDS(LOG_S("callId", c->call_id), LOG_I("attempts", attempts)));
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
    sqlite3_bind_text(st, 3, retry ? "pending" : "done", -1, SQLITE_STATIC);
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

static int on_event(sqlite3 *db, const struct proto_event *ev, void *arg)
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

/* ---- the timer: dispatch due calls within the rate limit ---- */

struct dispatch_args {
    struct sched *s;
    int64_t now;
    int n;
    int64_t wake; /* when to look again */
};

static int dispatch_job(sqlite3 *db, void *arg)
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

static void *timer_main(void *arg)
{
    struct sched *s = arg;
    log_set_target("call-scheduler");
    uint64_t seen = 0;
    int64_t next = 0;
    while (wake_wait(&s->wake, &seen, next)) {
        int64_t now = clock_now_ms();
        struct dispatch_args a = {.s = s, .now = now};
        if (store_run(s->store, dispatch_job, &a) != 0) {
            log_error("Cannot dispatch due calls; retrying in a second", NULL);
            a.wake = now + 1000;
        } else if (a.n > 0) {
            for (int i = 0; i < a.n; i++) {
                rate_limit_record(&s->rl, now);
            }
            a.wake = 0; /* look again at once: the wake above did not count these yet */
            log_debug("Calls due", LOG_FIELDS(LOG_I("count", a.n)));
        }
        next = a.wake;
    }
    return NULL;
}

/* The dispatches of the last window, so a restart keeps counting them. */
static int load_dispatches_job(sqlite3 *db, void *arg)
{
    struct sched *s = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT ms FROM (SELECT ms FROM dispatches WHERE ms > ?1"
                           " ORDER BY ms DESC LIMIT ?2) ORDER BY ms",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, clock_now_ms() - s->rl.window_ms);
    sqlite3_bind_int(st, 2, s->rl.limit);
    while (sqlite3_step(st) == SQLITE_ROW) {
        rate_limit_record(&s->rl, sqlite3_column_int64(st, 0));
    }
    sqlite3_finalize(st);
    return 0;
}

/* ---- HTTP: the operator's view ---- */

static bool authorized(struct sched *s, struct http_req *req)
{
    if (api_keys_check(s->keys, http_header(req, "X-API-Key"))) {
        return true;
    }
    http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
    return false;
}

static void get_calls(struct http_req *req, void *arg)
{
    struct sched *s = arg;
    if (!authorized(s, req)) {
        return;
    }
    char state[16] = "pending", limit_s[16] = "";
    http_query(req, "state", state, sizeof state);
    long limit = 100;
    if (http_query(req, "limit", limit_s, sizeof limit_s) >= 0) {
        char *end;
        limit = strtol(limit_s, &end, 10);
        if (*end != '\0' || limit < 1 || limit > 10000) {
            http_reply_error(req, 400, "bad_request", "limit: expected 1 to 10000", NULL);
            return;
        }
    }
    /* Each state through its own index, merged under the limit: no sort of a million rows. */
    const char *const pending[] = {"pending", "dispatched", NULL};
    const char *const done[] = {"done", "canceled", "skipped", NULL};
    const char *const *states;
    const char *order;
    if (strcmp(state, "pending") == 0) {
        states = pending;
        order = "due_ms";
    } else if (strcmp(state, "done") == 0) {
        states = done;
        order = "updated_ms DESC";
    } else {
        http_reply_error(req, 400, "bad_request", "state: expected pending or done", NULL);
        return;
    }
    sqlite3 *db;
    char sql[1024];
    size_t n = (size_t)snprintf(sql, sizeof sql, "SELECT * FROM (");
    for (int i = 0; states[i] != NULL; i++) {
        n += (size_t)snprintf(sql + n, sizeof sql - n,
                              "%sSELECT * FROM (SELECT call_id, lead_id, attempt, state, due_ms,"
                              " status, detail, phone_dial, updated_ms FROM calls"
                              " WHERE state = '%s' ORDER BY %s LIMIT ?1)",
                              i ? " UNION ALL " : "", states[i], order);
    }
    snprintf(sql + n, sizeof sql - n, ") ORDER BY %s LIMIT ?1", order);
    sqlite3_stmt *st = NULL;
    if (store_open_reader(s->store, &db) != 0) {
        http_reply_error(req, 503, "unavailable", "the store could not be read; retry", NULL);
        return;
    }
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        http_reply_error(req, 503, "unavailable", "the store could not be read; retry", NULL);
        return;
    }
    sqlite3_bind_int(st, 1, (int)limit);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON *list = cJSON_AddArrayToObject(o, "calls");
    while (sqlite3_step(st) == SQLITE_ROW) {
        char buf[256], masked[32];
        cJSON *c = cJSON_CreateObject();
        store_text(st, 0, buf, sizeof buf);
        cJSON_AddStringToObject(c, "callId", buf);
        store_text(st, 1, buf, sizeof buf);
        cJSON_AddStringToObject(c, "leadId", buf);
        cJSON_AddNumberToObject(c, "attempt", sqlite3_column_int(st, 2));
        store_text(st, 3, buf, sizeof buf);
        cJSON_AddStringToObject(c, "state", buf);
        if (strcmp(buf, "pending") == 0 || strcmp(buf, "dispatched") == 0) {
            cJSON_AddNumberToObject(c, "dueAt", (double)sqlite3_column_int64(st, 4));
        }
        store_text(st, 5, buf, sizeof buf);
        if (buf[0] != '\0') {
            cJSON_AddStringToObject(c, "status", buf);
        }
        store_text(st, 6, buf, sizeof buf);
        if (buf[0] != '\0') {
            cJSON_AddStringToObject(c, "detail", buf);
        }
        store_text(st, 7, buf, sizeof buf);
        log_mask_phone(buf, masked, sizeof masked);
        cJSON_AddStringToObject(c, "phoneNumber", buf[0] ? masked : "");
        cJSON_AddNumberToObject(c, "updatedAt", (double)sqlite3_column_int64(st, 8));
        cJSON_AddItemToArray(list, c);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    http_reply_json(req, 200, o);
}

struct cancel_args {
    struct sched *s;
    const char *call_id;
    char state[16]; /* the state found; "" when there is no such call */
};

static int cancel_job(sqlite3 *db, void *arg)
{
    struct cancel_args *a = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT state, lead_id FROM calls WHERE call_id = ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, a->call_id, -1, SQLITE_STATIC);
    struct proto_call_skipped ev = {0};
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, a->state, sizeof a->state);
        store_text(st, 1, ev.lead_id, sizeof ev.lead_id);
    }
    sqlite3_finalize(st);
    if (strcmp(a->state, "pending") != 0) {
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

static void delete_call(struct http_req *req, void *arg)
{
    struct sched *s = arg;
    if (!authorized(s, req)) {
        return;
    }
    struct cancel_args a = {.s = s, .call_id = req->params[0]};
    if (store_run(s->store, cancel_job, &a) != 0) {
        http_reply_error(req, 503, "unavailable", "the store could not be written; retry", NULL);
        return;
    }
    if (a.state[0] == '\0') {
        http_reply_error(req, 404, "not_found", "no call with that id", NULL);
        return;
    }
    if (strcmp(a.state, "pending") != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "only a pending call can be canceled; this one is %s",
                 strcmp(a.state, "dispatched") == 0 ? "being dialed" : a.state);
        http_reply_error(req, 409, "not_pending", msg, NULL);
        return;
    }
    log_info("Call canceled", LOG_FIELDS(LOG_S("callId", a.call_id)));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "callId", a.call_id);
    cJSON_AddStringToObject(o, "state", "canceled");
    http_reply_json(req, 200, o);
}

/* Calls by state, read when /metrics is scraped (a reader connection: the writer is not held). */
static void collect(void *arg)
{
    struct sched *s = arg;
    sqlite3 *db;
    if (store_open_reader(s->store, &db) != 0) {
        return;
    }
    static const char *const states[] = {"pending", "dispatched"};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        sqlite3_stmt *st;
        char labels[48];
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM calls WHERE state = ?1", -1, &st, NULL) !=
            SQLITE_OK) {
            break;
        }
        sqlite3_bind_text(st, 1, states[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            snprintf(labels, sizeof labels, "state=\"%s\"", states[i]);
            metrics_gauge_set("leadbus_calls", "Calls waiting for their due time or being dialed",
                              labels, (double)sqlite3_column_int64(st, 0));
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

/* Degraded, not unready, while an ingest stream is unreachable: its leads wait in its outbox. */
static bool ready(void *arg)
{
    struct sched *s = arg;
    for (int i = 0; i < s->ningest; i++) { /* ingest's replicas; the dialer may come later */
        if (!bus_sub_source_ready(s->sub, i)) {
            return false;
        }
    }
    return bus_sub_discovery_ok(s->sub); /* or ingest's replicas found by DNS */
}

/* ---- module ---- */

static void sched_stop(void *state)
{
    struct sched *s = state;
    if (s == NULL) {
        return;
    }
    metrics_collector_remove(collect, s);
    retention_stop(s->retention);
    bus_sub_close(s->sub);
    wake_stop(&s->wake);
    if (s->started) {
        pthread_join(s->thread, NULL);
    }
    bus_pub_close(s->pub);
    store_close(s->store);
    api_keys_free(s->keys);
    call_window_free(&s->window);
    rate_limit_free(&s->rl);
    wake_fini(&s->wake);
    free(s);
}

static int read_settings(struct app *app, struct sched *s, char err[CONFIG_ERR_MAX])
{
    struct upstream up;
    int64_t max_attempts, max_per_number;
    if (upstream_resolve(app, &up, err) != 0 ||
        /* A live account dials only when asked to, as in the original; the sandbox always can. */
        config_bool("EXOTEL_ENABLED", up.exotel_sandbox, &s->enabled, err) != 0 ||
        config_int("EXOTEL_CALL_DELAY_MS", 60000, 0, 30LL * 24 * 3600 * 1000, &s->delay_ms, err) !=
            0 ||
        config_int("CALL_DEDUPE_WINDOW_MS", 24LL * 3600 * 1000, 0, 365LL * 24 * 3600 * 1000,
                   &s->dedupe_ms, err) != 0 ||
        config_int("EXOTEL_MAX_RETRIES", 3, 1, 20, &max_attempts, err) != 0 ||
        retry_policy_parse(config_str("EXOTEL_RETRY_ON", "failed-api,busy,no-answer"),
                           config_str("EXOTEL_RETRY_DELAYS_MS", "60000,300000,900000"),
                           (int)max_attempts, &s->retry, err) != 0 ||
        call_window_parse(config_str("CALL_HOURS", "09:00-21:00"), config_str("CALL_DAYS", "all"),
                          config_str("CALL_TIMEZONE", "Asia/Kolkata"), &s->window, err) != 0 ||
        config_int("MAX_CALLS_PER_NUMBER_PER_DAY", 3, 0, 1000, &max_per_number, err) != 0 ||
        dial_guard_parse(config_str("DIAL_COUNTRIES", "IN"), max_per_number, &s->guard, err) != 0) {
        explicit_bzero(&up, sizeof up);
        return -1;
    }
    explicit_bzero(&up, sizeof up);
    return rate_limit_init_exotel(&s->rl, err);
}

static void log_banner(const struct sched *s)
{
    if (s->enabled) {
        char delay[64];
        snprintf(delay, sizeof delay, "   Call delay: %lldms (%llds)", (long long)s->delay_ms,
                 (long long)(s->delay_ms / 1000));
        log_info("📞 Exotel IVR calling is ENABLED", NULL);
        log_info(delay, NULL);
    } else {
        log_info("📞 Exotel IVR calling is DISABLED",
                 LOG_FIELDS(LOG_S("reason", "EXOTEL_ENABLED is not true; leads are not called")));
    }
}

static int sched_start(struct app *app, void **state, char err[CONFIG_ERR_MAX])
{
    struct sched *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return -1;
    }
    wake_init(&s->wake, MAX_SLEEP_MS);
    if (read_settings(app, s, err) != 0) {
        sched_stop(s);
        return -1;
    }
    char pub[APP_URL_MAX], replay[APP_URL_MAX];
    app_bus_endpoints(app, "call-scheduler", pub, replay);
    struct app_sources *src = calloc(1, sizeof *src);
    if (src == NULL || (s->ningest = app_sources_add(app, src, "ingest", err)) < 0 ||
        app_sources_add(app, src, "dialer", err) < 0) {
        free(src);
        sched_stop(s);
        return -1;
    }
    struct bus_pub_opts po = {.name = "call-scheduler",
                              .pub_url = pub,
                              .replay_url = replay,
                              .retention_days = app->retention_days};
    const char *topics[] = {"lead.created", "call.status", "lead.erased"};
    struct bus_sub_opts so = {.name = "call-scheduler",
                              .sources = src->src,
                              .nsources = src->n,
                              .topics = topics,
                              .ntopics = 3,
                              .handler = on_event,
                              .arg = s,
                              .discover = app_sources_discover(src)};
    if (api_keys_load(app->data_dir, &s->keys, err) != 0 ||
        app_store_open(app, "call-scheduler", schema, &s->store) != 0 ||
        store_run(s->store, load_dispatches_job, s) != 0 ||
        (po.store = s->store, bus_pub_open(&po, &s->pub)) != 0 ||
        (s->keep[0] = (struct retention_rule){"calls", retention_calls_sql, 0},
         retention_days("LEAD_RETENTION_DAYS", &s->keep[0].days, err)) != 0 ||
        retention_start(s->store, s->keep, 1, &s->retention) != 0 ||
        store_on_commit(s->store, wake_on_commit, &s->wake) != 0 ||
        pthread_create(&s->thread, NULL, timer_main, s) != 0 ||
        (s->started = true, so.store = s->store, bus_sub_open(&so, &s->sub)) != 0 ||
        http_route(app->http, "GET", "/calls", get_calls, s) != 0 ||
        http_route(app->http, "DELETE", "/calls/{callId}", delete_call, s) != 0 ||
        http_degraded_check(app->http, "call-scheduler: ingest streams", ready, s) != 0 ||
        http_ready_check(app->http, bus_sub_streams_check(s->sub), bus_sub_streams_ok, s->sub) !=
            0 ||
        metrics_collector_add(collect, s) != 0) {
        free(src);
        sched_stop(s);
        return -1;
    }
    free(src);
    log_banner(s);
    *state = s;
    return 0;
}

const struct module call_scheduler_module = {"call-scheduler", sched_start, sched_stop};
