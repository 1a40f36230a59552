/* dialer: attempts in SQLite, a pool of workers, the callback endpoint. */
#include "dialer.h"
#include "api_key.h"
#include "bus_pub.h"
#include "bus_sub.h"
#include "callback_guard.h"
#include "clock.h"
#include "exotel_callback.h"
#include "exotel_client.h"
#include "log.h"
#include "wake.h"
#include "metrics.h"
#include "rate_limit.h"
#include "tz.h"
#include "upstream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define CALLBACK_BODY_MAX (64 * 1024)
#define MAX_SLEEP_MS 60000

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS attempts("
    "  call_id TEXT NOT NULL, attempt INTEGER NOT NULL, lead_id TEXT NOT NULL,"
    "  phone_e164 TEXT NOT NULL, phone_dial TEXT NOT NULL, due_ms INTEGER NOT NULL,"
    "  state TEXT NOT NULL, sid TEXT, status TEXT, duration_s INTEGER NOT NULL DEFAULT 0,"
    "  recording TEXT, detail TEXT, tries INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL,"
    "  dialed_ms INTEGER, queued_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(call_id, attempt));"
    "CREATE INDEX IF NOT EXISTS attempts_work ON attempts(state, next_ms);"
    "CREATE UNIQUE INDEX IF NOT EXISTS attempts_sid ON attempts(sid) WHERE sid IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS attempts_dialed ON attempts(dialed_ms);"
    "CREATE TABLE IF NOT EXISTS dialer_secret("
    "  id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS callback_key("
    "  id INTEGER PRIMARY KEY CHECK (id = 1), key BLOB NOT NULL, created_ms INTEGER NOT NULL);";

struct dialer {
    struct store *store;
    struct bus_pub *pub;
    struct bus_sub *sub;
    struct exotel_account acct;
    bool sandbox;
    char exophone[32], agent[32], flow_url[256], call_type[16], public_base[APP_URL_MAX];
    unsigned char cb_key[CALLBACK_KEY_BYTES]; /* per-attempt callback tokens (HMAC key) */
    int64_t cb_key_created_ms;
    char legacy_token[65]; /* the static token of before; only for attempts dialed before the key */
    int ring_timeout_s, time_limit_s;
    bool record, dnd_precheck;
    int64_t grace_ms, reconcile_delay_ms, reconcile_window_ms;
    struct tz *exotel_tz;
    struct rate_limit rl;    /* connect requests sent, at the moment of sending */
    pthread_mutex_t rl_lock; /* rl is shared by the claims (admission) and the workers (sends) */
    struct worker *workers;
    int nworkers;
    struct wake wake; /* the workers': due calls (at their commit), callbacks, the stop */
    atomic_uint_fast64_t rng;
};

struct worker {
    struct dialer *d;
    CURL *curl;
    pthread_t thread;
    bool started;
};

/* One attempt as a worker handles it. */
struct attempt {
    char call_id[64], lead_id[40], e164[24], dial[24], sid[64];
    int attempt, tries;
    int64_t dialed_ms, due_ms;
};

enum job_kind { JOB_NONE, JOB_DIAL, JOB_RECONCILE, JOB_CHECK };

/* ---- bus handler: a due call becomes a queued attempt (writer thread) ---- */

static int on_event(sqlite3 *db, const struct proto_event *ev, void *arg)
{
    struct dialer *d = arg;
    if (ev->topic != PROTO_CALL_DUE) {
        return 0;
    }
    const struct proto_call_due *c = &ev->data.call_due;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO attempts(call_id, attempt, lead_id, phone_e164,"
                           " phone_dial, due_ms, state, next_ms, queued_ms, updated_ms)"
                           " VALUES(?1,?2,?3,?4,?5,?6,'queued',0,?7,?7)",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, c->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, c->attempt);
    sqlite3_bind_text(st, 3, c->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->phone_e164, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, c->phone_dial, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, c->due_ms);
    sqlite3_bind_int64(st, 7, clock_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    wake_mark(&d->wake);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- outcomes (writer thread) ---- */

struct outcome {
    struct dialer *d;
    const char *call_id;
    int attempt;
    const char *status; /* call.status status */
    const char *sid;    /* adopted when the attempt has none yet; may be "" */
    int64_t duration_s;
    const char *recording, *detail;
    bool final;
    bool found;   /* out: the attempt exists */
    bool changed; /* out: the attempt moved (false: it was already there) */
};

static int publish_status(sqlite3 *db, const struct outcome *o, const char *lead_id,
                          const char *sid)
{
    struct proto_call_status ev = {0};
    snprintf(ev.call_id, sizeof ev.call_id, "%s", o->call_id);
    snprintf(ev.lead_id, sizeof ev.lead_id, "%s", lead_id);
    ev.attempt = o->attempt;
    snprintf(ev.status, sizeof ev.status, "%s", o->status);
    snprintf(ev.call_sid, sizeof ev.call_sid, "%s", sid);
    ev.duration_s = o->duration_s;
    snprintf(ev.recording_url, sizeof ev.recording_url, "%s", o->recording ? o->recording : "");
    snprintf(ev.detail, sizeof ev.detail, "%s", o->detail ? o->detail : "");
    ev.final = o->final;
    return bus_pub_append(o->d->pub, db, PROTO_CALL_STATUS, &ev, NULL);
}

/*
 * Finish an attempt with its outcome, once: a second callback, a late lookup
 * or a worker's answer after a callback find it final and change nothing.
 */
static int finalize_job(sqlite3 *db, void *arg)
{
    struct outcome *o = arg;
    sqlite3_stmt *st;
    o->changed = false;
    if (sqlite3_prepare_v2(db,
                           "SELECT state, lead_id, coalesce(sid, '') FROM attempts"
                           " WHERE call_id = ?1 AND attempt = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, o->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, o->attempt);
    char state[16] = "", lead_id[40] = "", sid[64] = "";
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, state, sizeof state);
        store_text(st, 1, lead_id, sizeof lead_id);
        store_text(st, 2, sid, sizeof sid);
    }
    sqlite3_finalize(st);
    o->found = state[0] != '\0';
    if (!o->found || strcmp(state, "final") == 0) {
        return 0;
    }
    if (sid[0] == '\0' && o->sid != NULL && o->sid[0] != '\0') {
        snprintf(sid, sizeof sid, "%s", o->sid);
    }
    /* A Sid already adopted by another attempt stays with that one. */
    if (sqlite3_prepare_v2(
            db,
            "UPDATE attempts SET state = 'final', status = ?3, duration_s = ?4, recording = ?5,"
            " detail = ?6, updated_ms = ?7, sid = CASE WHEN ?8 = '' OR EXISTS(SELECT 1 FROM"
            " attempts a WHERE a.sid = ?8 AND NOT (a.call_id = ?1 AND a.attempt = ?2))"
            " THEN sid ELSE ?8 END WHERE call_id = ?1 AND attempt = ?2",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, o->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, o->attempt);
    sqlite3_bind_text(st, 3, o->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, o->duration_s);
    sqlite3_bind_text(st, 5, o->recording ? o->recording : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, o->detail ? o->detail : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, clock_now_ms());
    sqlite3_bind_text(st, 8, sid, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || publish_status(db, o, lead_id, sid) != 0) {
        return -1;
    }
    o->changed = true;
    return 0;
}

/* Exotel took the call: it is ringing; the callback (or a lookup after the grace) finishes it. */
struct placed {
    struct outcome o;
    int64_t check_at;
};

static int placed_job(sqlite3 *db, void *arg)
{
    struct placed *p = arg;
    struct outcome *o = &p->o;
    sqlite3_stmt *st;
    o->changed = false;
    if (sqlite3_prepare_v2(db,
                           "UPDATE attempts SET state = 'initiated', sid = ?3, next_ms = ?4,"
                           " updated_ms = ?5 WHERE call_id = ?1 AND attempt = ?2"
                           " AND state = 'dialing' RETURNING lead_id",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, o->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, o->attempt);
    sqlite3_bind_text(st, 3, o->sid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, p->check_at);
    sqlite3_bind_int64(st, 5, clock_now_ms());
    char lead_id[40] = "";
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        store_text(st, 0, lead_id, sizeof lead_id);
        rc = sqlite3_step(st);
        o->changed = true;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return -1;
    }
    return o->changed ? publish_status(db, o, lead_id, o->sid) : 0;
}

/* Put an attempt back in `state` to be looked at again at `next_ms`. */
struct requeue {
    const char *call_id;
    int attempt;
    const char *from_state, *to_state, *detail;
    int64_t next_ms;
};

static int requeue_job(sqlite3 *db, void *arg)
{
    struct requeue *r = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE attempts SET state = ?4, next_ms = ?5, updated_ms = ?6,"
                           " detail = coalesce(?7, detail)"
                           " WHERE call_id = ?1 AND attempt = ?2 AND state = ?3",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, r->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, r->attempt);
    sqlite3_bind_text(st, 3, r->from_state, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->to_state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, r->next_ms);
    sqlite3_bind_int64(st, 6, clock_now_ms());
    sqlite3_bind_text(st, 7, r->detail, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- claiming work (writer thread) ---- */

/*
 * A worker claims up to CLAIM_MAX due attempts in one transaction and records
 * their results in one more: two commits per batch instead of two per call,
 * which is what keeps a burst of due calls punctual. A crash can leave at
 * most CLAIM_MAX unsent attempts `dialing`; they are reconciled, never redialed.
 */
#define CLAIM_MAX 4

struct claim {
    struct dialer *d;
    enum job_kind kind;
    struct attempt a[CLAIM_MAX];
    int n;
    int64_t wake;
};

static void read_attempt(sqlite3_stmt *st, struct attempt *a)
{
    memset(a, 0, sizeof *a);
    store_text(st, 0, a->call_id, sizeof a->call_id);
    a->attempt = sqlite3_column_int(st, 1);
    store_text(st, 2, a->lead_id, sizeof a->lead_id);
    store_text(st, 3, a->e164, sizeof a->e164);
    store_text(st, 4, a->dial, sizeof a->dial);
    store_text(st, 5, a->sid, sizeof a->sid);
    a->tries = sqlite3_column_int(st, 6);
    a->dialed_ms = sqlite3_column_int64(st, 7);
    a->due_ms = sqlite3_column_int64(st, 9);
}

static int64_t min_next(sqlite3 *db, const char *states)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT min(next_ms) FROM attempts WHERE state IN (%s)", states);
    sqlite3_stmt *st;
    int64_t v = INT64_MAX;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            v = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    return v;
}

#define ATTEMPT_COLS                                                                               \
    "call_id, attempt, lead_id, phone_e164, phone_dial, coalesce(sid, ''), tries,"                 \
    " coalesce(dialed_ms, 0), state, due_ms"

static int claim_job(sqlite3 *db, void *arg)
{
    struct claim *c = arg;
    struct dialer *d = c->d;
    int64_t now = clock_now_ms();
    c->kind = JOB_NONE;
    c->n = 0;
    c->wake = now + MAX_SLEEP_MS;
    /* Exotel's limit, kept here too: after downtime the queue drains at the allowed rate. */
    pthread_mutex_lock(&d->rl_lock);
    int can_dial = rate_limit_available(&d->rl, now);
    int64_t rl_next = rate_limit_next(&d->rl, now);
    pthread_mutex_unlock(&d->rl_lock);
    can_dial = can_dial < CLAIM_MAX ? can_dial : CLAIM_MAX;
    if (can_dial == 0 && min_next(db, "'queued'") <= now) {
        metrics_counter_add("leadbus_rate_limit_waits_total",
                            "Times due calls waited for the Exotel rate limit",
                            "service=\"dialer\"", 1);
    }
    sqlite3_stmt *st;
    if (can_dial > 0) {
        /* Due calls first, oldest first: they are what the leads wait for. */
        if (sqlite3_prepare_v2(db,
                               "SELECT " ATTEMPT_COLS " FROM attempts WHERE state = 'queued'"
                               " AND next_ms <= ?1 ORDER BY due_ms LIMIT ?2",
                               -1, &st, NULL) != SQLITE_OK) {
            return -1;
        }
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int(st, 2, can_dial);
        while (sqlite3_step(st) == SQLITE_ROW && c->n < can_dial) {
            read_attempt(st, &c->a[c->n++]);
        }
        sqlite3_finalize(st);
        c->kind = c->n > 0 ? JOB_DIAL : JOB_NONE;
    }
    if (c->kind == JOB_NONE) {
        /* A lookup: an unknown outcome, a callback overdue, or a `dialing` whose result could not
         * be recorded (older than any request can take). */
        if (sqlite3_prepare_v2(db,
                               "SELECT " ATTEMPT_COLS " FROM attempts WHERE (state IN ('unknown',"
                               " 'initiated') AND next_ms <= ?1) OR (state = 'dialing' AND"
                               " dialed_ms < ?2) ORDER BY next_ms LIMIT 1",
                               -1, &st, NULL) != SQLITE_OK) {
            return -1;
        }
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int64(st, 2, now - 2 * d->acct.timeout_ms - 60000);
        if (sqlite3_step(st) == SQLITE_ROW) {
            read_attempt(st, &c->a[0]);
            c->n = 1;
            c->kind = strcmp((const char *)sqlite3_column_text(st, 8), "initiated") == 0
                          ? JOB_CHECK
                          : JOB_RECONCILE;
        }
        sqlite3_finalize(st);
    }
    if (c->kind == JOB_NONE) {
        int64_t queued = min_next(db, "'queued'"), other = min_next(db, "'unknown', 'initiated'");
        if (queued != INT64_MAX && queued < rl_next) {
            queued = rl_next;
        }
        int64_t next = queued < other ? queued : other;
        c->wake = next < c->wake ? next : c->wake;
        return 0;
    }
    /* The claim: `dialing` is committed before the request, so a crash cannot lead to a redial;
     * a lookup takes a lease (as `unknown`) so no other worker repeats it meanwhile. */
    const char *sql =
        c->kind == JOB_DIAL
            ? "UPDATE attempts SET state = 'dialing', dialed_ms = ?3,"
              " tries = tries + 1, updated_ms = ?3 WHERE call_id = ?1 AND attempt = ?2"
            : "UPDATE attempts SET next_ms = ?4, updated_ms = ?3, state = CASE state"
              " WHEN 'dialing' THEN 'unknown' ELSE state END"
              " WHERE call_id = ?1 AND attempt = ?2";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    int rc = SQLITE_DONE;
    for (int i = 0; i < c->n && rc == SQLITE_DONE; i++) {
        sqlite3_bind_text(st, 1, c->a[i].call_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, c->a[i].attempt);
        sqlite3_bind_int64(st, 3, now);
        sqlite3_bind_int64(st, 4, now + 2 * d->acct.timeout_ms + 5000);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (c->kind == JOB_DIAL) {
            if (c->a[i].tries == 0) { /* a first try, not a re-send after a 429 */
                metrics_observe("leadbus_dispatch_lateness_seconds",
                                "From a call's due time to its connect request", "",
                                (double)(now - c->a[i].due_ms) / 1000.0);
            }
            c->a[i].dialed_ms = now;
            c->a[i].tries++;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- the work ---- */

static int64_t backoff_ms(struct dialer *d, int tries, int64_t retry_after_ms)
{
    int64_t b = 1000;
    for (int i = 1; i < tries && b < 60000; i++) {
        b *= 2;
    }
    b = b > 60000 ? 60000 : b;
    uint64_t r = atomic_fetch_add(&d->rng, 0x9e3779b97f4a7c15ULL) * 6364136223846793005ULL;
    b = b / 2 + (int64_t)((r >> 33) % (uint64_t)(b / 2 + 1));
    return retry_after_ms > b ? retry_after_ms : b;
}

/* What became of one attempt, to be recorded with the rest of its batch. */
struct result {
    enum { RES_PLACED, RES_REQUEUE, RES_FINAL } kind;
    struct placed placed;
    struct requeue requeue;
    struct outcome final;
    struct exotel_connect_result r;
    char detail[300];
    int64_t wait_ms;
    bool unsent; /* the request never left: its try is not counted (see load_dialed_job) */
};

static void final_result(struct result *res, struct dialer *d, const struct attempt *a,
                         const char *status, const char *detail)
{
    res->kind = RES_FINAL;
    snprintf(res->detail, sizeof res->detail, "%s", detail);
    res->final = (struct outcome){.d = d,
                                  .call_id = a->call_id,
                                  .attempt = a->attempt,
                                  .status = status,
                                  .sid = "",
                                  .recording = "",
                                  .detail = res->detail,
                                  .final = true};
}

/*
 * Exotel's limit, kept at the moment of sending: a batch claimed together is
 * sent one request after another, and a slow request would otherwise bunch
 * the next ones up. The slot is taken before the request (so concurrent
 * workers cannot overshoot) at *slot; give it back with rate_slot_return()
 * when the request never left. False when the dialer is stopping (no slot).
 */
static bool rate_gate(struct dialer *d, int64_t *slot)
{
    for (;;) {
        pthread_mutex_lock(&d->rl_lock);
        int64_t now = clock_now_ms(), next = rate_limit_next(&d->rl, now);
        if (next <= now) {
            rate_limit_record(&d->rl, now);
            pthread_mutex_unlock(&d->rl_lock);
            *slot = now;
            return true;
        }
        pthread_mutex_unlock(&d->rl_lock);
        metrics_counter_add("leadbus_rate_limit_waits_total",
                            "Times due calls waited for the Exotel rate limit",
                            "service=\"dialer\"", 1);
        if (!wake_sleep_until(&d->wake, next)) {
            return false;
        }
    }
}

/* A request that never reached Exotel (no connection, no memory) takes no slot of its limit. */
static void rate_slot_return(struct dialer *d, int64_t slot)
{
    pthread_mutex_lock(&d->rl_lock);
    rate_limit_cancel(&d->rl, slot);
    pthread_mutex_unlock(&d->rl_lock);
    metrics_counter_add("leadbus_rate_limit_slots_returned_total",
                        "Rate-limit slots given back because the request never reached Exotel",
                        "service=\"dialer\"", 1);
}

static const char *lead_number(const struct attempt *a)
{
    return a->dial[0] != '\0' ? a->dial : a->e164;
}

/* One connect request; what it came to goes into *res (nothing is written here). */
static void dial(struct worker *w, const struct attempt *a, struct result *res)
{
    struct dialer *d = w->d;
    memset(res, 0, sizeof *res);
    log_info("Executing call", LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt),
                                          LOG_PHONE("phoneNumber", lead_number(a))));
    if (d->dnd_precheck) {
        bool dnd = false;
        if (exotel_number_dnd(w->curl, &d->acct, a->e164, &dnd) == 0 && dnd) {
            final_result(res, d, a, "dnd", "the number is on the DND register (pre-check)");
            return;
        }
    }
    char callback[APP_URL_MAX + 256], custom[96], token[CALLBACK_TOKEN_LEN + 1];
    if (callback_token(d->cb_key, sizeof d->cb_key, a->call_id, a->attempt, token) != 0) {
        final_result(res, d, a, "failed-api", "cannot make the callback token");
        return;
    }
    snprintf(callback, sizeof callback, "%s/exotel/callback?call=%s&attempt=%d&token=%s",
             d->public_base, a->call_id, a->attempt, token);
    explicit_bzero(token, sizeof token);
    snprintf(custom, sizeof custom, "%s:%d", a->call_id, a->attempt);
    struct exotel_dial req = {.from = d->flow_url[0] ? lead_number(a) : d->agent,
                              .to = d->flow_url[0] ? NULL : lead_number(a),
                              .flow_url = d->flow_url[0] ? d->flow_url : NULL,
                              .caller_id = d->exophone,
                              .call_type = d->call_type,
                              .ring_timeout_s = d->ring_timeout_s,
                              .time_limit_s = d->time_limit_s,
                              .record = d->record,
                              .status_callback = callback,
                              .custom_field = custom};
    struct exotel_connect_result *r = &res->r;
    int64_t slot = 0;
    if (!rate_gate(d, &slot)) { /* stopping: never sent, so it simply waits for the next start */
        res->kind = RES_REQUEUE;
        res->unsent = true;
        res->requeue = (struct requeue){a->call_id, a->attempt, "dialing", "queued", NULL, 0};
        return;
    }
    exotel_connect(w->curl, &d->acct, &req, r);
    explicit_bzero(callback, sizeof callback);
    if (r->outcome == EXOTEL_NOT_SENT) {
        rate_slot_return(d, slot);
        res->unsent = true;
    }
    int64_t now = clock_now_ms();
    char detail[300];
    snprintf(detail, sizeof detail, "HTTP %ld: %s", r->http_status, r->message);
    switch (r->outcome) {
    case EXOTEL_PLACED:
        res->kind = RES_PLACED;
        res->placed = (struct placed){{.d = d,
                                       .call_id = a->call_id,
                                       .attempt = a->attempt,
                                       .status = r->call.status[0] ? r->call.status : "queued",
                                       .sid = r->call.sid,
                                       .final = false},
                                      now + d->grace_ms};
        break;
    case EXOTEL_THROTTLED:
        res->kind = RES_REQUEUE;
        res->wait_ms = backoff_ms(d, a->tries, r->retry_after_ms);
        res->requeue = (struct requeue){
            a->call_id, a->attempt, "dialing", "queued", "throttled by Exotel", now + res->wait_ms};
        break;
    case EXOTEL_DND:
        final_result(res, d, a, "dnd", r->message);
        break;
    case EXOTEL_REJECTED:
        if (r->http_status == 401) {
            log_error("Exotel rejected the credentials (EXOTEL_API_KEY / EXOTEL_API_TOKEN / "
                      "EXOTEL_ACCOUNT_SID, or the wrong EXOTEL_SUBDOMAIN)",
                      NULL);
        }
        final_result(res, d, a, "rejected", detail);
        break;
    case EXOTEL_NOT_SENT:
        final_result(res, d, a, "failed-api", r->message);
        break;
    case EXOTEL_UNKNOWN:
        res->kind = RES_REQUEUE;
        snprintf(res->detail, sizeof res->detail, "%s", detail);
        res->requeue = (struct requeue){a->call_id, a->attempt,  "dialing",
                                        "unknown",  res->detail, now + d->reconcile_delay_ms};
        break;
    }
}

struct results {
    struct result *res;
    const struct attempt *a;
    int n;
};

/* An attempt whose request never left: the claim's try is taken back. */
static int unsent_job(sqlite3 *db, const struct attempt *a)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE attempts SET tries = tries - 1"
                           " WHERE call_id = ?1 AND attempt = ?2 AND tries > 0",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, a->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, a->attempt);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int results_job(sqlite3 *db, void *arg)
{
    struct results *b = arg;
    for (int i = 0; i < b->n; i++) {
        struct result *r = &b->res[i];
        int rc = r->kind == RES_PLACED    ? placed_job(db, &r->placed)
                 : r->kind == RES_REQUEUE ? requeue_job(db, &r->requeue)
                                          : finalize_job(db, &r->final);
        if (rc == 0 && r->unsent) {
            rc = unsent_job(db, &b->a[i]);
        }
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

static void log_result(const struct attempt *a, const struct result *r)
{
    if (r->kind == RES_PLACED) {
        if (r->placed.o.changed) {
            log_info(
                "Call initiated successfully",
                LOG_FIELDS(LOG_S("callSid", r->placed.o.sid), LOG_S("status", r->placed.o.status)));
        }
    } else if (r->kind == RES_FINAL) {
        if (r->final.changed) {
            log_info("Call finished",
                     LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt),
                                LOG_S("status", r->final.status), LOG_S("detail", r->detail)));
        }
    } else if (strcmp(r->requeue.to_state, "queued") == 0 && r->requeue.detail == NULL) {
        return; /* never sent: the dialer is stopping */
    } else if (strcmp(r->requeue.to_state, "queued") == 0) {
        log_warn("Exotel rate limit hit; the same attempt goes again",
                 LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("waitMs", r->wait_ms)));
    } else {
        log_warn("Exotel's answer leaves the call's fate unknown; reconciling before any redial",
                 LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt),
                            LOG_I("httpStatus", r->r.http_status)));
    }
}

static void dial_batch(struct worker *w, const struct claim *c)
{
    struct dialer *d = w->d;
    struct result res[CLAIM_MAX];
    for (int i = 0; i < c->n; i++) {
        dial(w, &c->a[i], &res[i]);
    }
    struct results b = {res, c->a, c->n};
    if (store_run(d->store, results_job, &b) != 0) {
        /* Still `dialing` in the store: they are reconciled once no request can be pending. */
        log_error("Cannot record call results; they will be reconciled with Exotel",
                  LOG_FIELDS(LOG_I("attempts", c->n)));
        return;
    }
    for (int i = 0; i < c->n; i++) {
        log_result(&c->a[i], &res[i]);
        if (res[i].kind == RES_REQUEUE) {
            wake_kick(&d->wake);
        }
    }
}

/* A recording link kept only as https on a host Exotel documents; otherwise "" and a WARN. */
static const char *checked_recording(const char *call_id, int attempt, const char *url)
{
    if (url == NULL || url[0] == '\0' || recording_url_allowed(url)) {
        return url;
    }
    log_warn("RecordingUrl dropped: not an https link on a host Exotel documents",
             LOG_FIELDS(LOG_S("callId", call_id), LOG_I("attempt", attempt)));
    return "";
}

static void finish(struct dialer *d, const struct attempt *a, const char *status, const char *sid,
                   int64_t duration, const char *recording, const char *detail)
{
    recording = checked_recording(a->call_id, a->attempt, recording);
    struct outcome o = {.d = d,
                        .call_id = a->call_id,
                        .attempt = a->attempt,
                        .status = status,
                        .sid = sid,
                        .duration_s = duration,
                        .recording = recording,
                        .detail = detail,
                        .final = true};
    if (store_run(d->store, finalize_job, &o) != 0) {
        log_error("Cannot record a call outcome; it will be looked up again",
                  LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt)));
    } else if (o.changed) {
        log_info("Call finished",
                 LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt),
                            LOG_S("status", status), LOG_S("detail", detail)));
    }
}

/* Bulk call details pages read per reconciliation at most: 10,000 calls of one number. */
#define RECONCILE_PAGES 100

/* Which call of a page a reconciliation may adopt: finished, the attempt's number, not yet any
 * attempt's (a Sid already adopted stays with its attempt). One transaction per page, which also
 * claims the Sid for the attempt: two workers reconciling two attempts of one number could
 * otherwise both pick the same free call (found in one transaction, recorded in another). */
struct adopt {
    const struct exotel_call *calls;
    int n;
    const struct attempt *a;
    int found; /* out: index into calls, or -1 */
};

/* Record the adopted Sid on the attempt, in the transaction that found it free. */
static int claim_sid(sqlite3 *db, const struct attempt *a, const char *sid)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE attempts SET sid = ?1 WHERE call_id = ?2 AND attempt = ?3"
                           " AND sid IS NULL",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, a->attempt);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int adopt_job(sqlite3 *db, void *arg)
{
    struct adopt *p = arg;
    sqlite3_stmt *st;
    p->found = -1;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM attempts WHERE sid = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        return -1;
    }
    int rc = SQLITE_DONE;
    for (int i = 0; i < p->n && p->found < 0; i++) {
        const struct exotel_call *c = &p->calls[i];
        if (!exotel_status_terminal(c->status)) {
            continue;
        }
        sqlite3_bind_text(st, 1, c->sid, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_DONE) {
            p->found = i;
        } else if (rc != SQLITE_ROW) {
            break;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return -1;
    }
    return p->found >= 0 ? claim_sid(db, p->a, p->calls[p->found].sid) : 0;
}

/* Keep a page's calls of the lead's number only (Exotel filters on it; the check costs nothing). */
static int own_calls(struct exotel_call *calls, int n, const struct attempt *a, bool flow)
{
    int kept = 0;
    for (int i = 0; i < n; i++) {
        const char *number = flow ? calls[i].from : calls[i].to;
        /* A call with no readable number stays: Exotel matched it, and dropping it could make
         * a placed call look absent. */
        if (number[0] == '\0' || exotel_same_number(number, a->e164) ||
            exotel_same_number(number, a->dial)) {
            calls[kept++] = calls[i];
        }
    }
    return kept;
}

/*
 * Every page of Exotel's bulk call details for the attempt's number and time: 1 with *call set
 * when one of them is a finished call no attempt has, 0 when the last page was read without one,
 * -1 when a page could not be read (nothing may be concluded then).
 */
static int search_calls(struct worker *w, const struct attempt *a, const char *gte, const char *lte,
                        struct exotel_call *call, int *pages)
{
    struct dialer *d = w->d;
    char numbers[64];
    /* Exotel may store the number 0-prefixed or in E.164: ask for both spellings. */
    snprintf(numbers, sizeof numbers, "%s%s%s", a->dial, a->dial[0] && a->e164[0] ? "," : "",
             a->e164);
    struct exotel_search q = {
        .field = d->flow_url[0] ? "From" : "To", .numbers = numbers, .gte = gte, .lte = lte};
    struct exotel_call *calls = malloc(EXOTEL_PAGE_MAX * sizeof *calls);
    int rc = calls != NULL ? 0 : -1;
    while (rc == 0 && !q.done) {
        int n =
            q.pages < RECONCILE_PAGES ? exotel_find_calls_page(w->curl, &d->acct, &q, calls) : -1;
        struct adopt p = {calls, n >= 0 ? own_calls(calls, n, a, d->flow_url[0]) : 0, a, -1};
        if (n < 0 || store_run(d->store, adopt_job, &p) != 0) {
            rc = -1;
        } else if (p.found >= 0) {
            *call = calls[p.found];
            rc = 1;
        }
    }
    *pages = q.pages;
    free(calls);
    return rc;
}

/* An attempt whose request may or may not have dialed: ask Exotel which calls exist. */
static void reconcile(struct worker *w, const struct attempt *a)
{
    struct dialer *d = w->d;
    int64_t now = clock_now_ms();
    char gte[20], lte[20];
    tz_format(d->exotel_tz, a->dialed_ms - 120000, gte);
    tz_format(d->exotel_tz, now + 60000, lte);
    struct exotel_call c;
    int pages = 0;
    int found = search_calls(w, a, gte, lte, &c, &pages);
    if (found == 1) {
        log_info("Reconciled: Exotel placed the call",
                 LOG_FIELDS(LOG_S("callId", a->call_id), LOG_S("callSid", c.sid),
                            LOG_I("pages", pages)));
        finish(d, a, c.status, c.sid, c.duration_s, c.recording_url, "found by reconciliation");
        return;
    }
    if (found == 0 && now - a->dialed_ms >= d->reconcile_window_ms) {
        log_info("Reconciled: Exotel never placed the call",
                 LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt),
                            LOG_I("pages", pages)));
        finish(d, a, "failed-api", "", 0, "", "not placed (no such call at Exotel)");
        return;
    }
    if (found < 0) {
        log_warn("Cannot read Exotel's call details; the attempt stays unknown and is looked up "
                 "again",
                 LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt),
                            LOG_I("pagesRead", pages)));
    }
    struct requeue q = {a->call_id, a->attempt, "unknown",
                        "unknown",  NULL,       now + d->reconcile_delay_ms};
    store_run(d->store, requeue_job, &q);
}

/* A placed call whose callback has not come within the grace time: look it up. */
static void check(struct worker *w, const struct attempt *a)
{
    struct dialer *d = w->d;
    struct exotel_call c;
    int found = exotel_get_call(w->curl, &d->acct, a->sid, &c);
    int64_t now = clock_now_ms();
    if (found == 1 && exotel_status_terminal(c.status)) {
        log_info("No callback came; call details give the outcome",
                 LOG_FIELDS(LOG_S("callId", a->call_id), LOG_S("callSid", a->sid)));
        finish(d, a, c.status, a->sid, c.duration_s, c.recording_url, "from call details");
        return;
    }
    int64_t again = d->grace_ms / 2 > 5000 ? d->grace_ms / 2 : 5000;
    struct requeue q = {a->call_id, a->attempt, "initiated", "initiated", NULL, now + again};
    store_run(d->store, requeue_job, &q);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct dialer *d = w->d;
    log_set_target("dialer");
    uint64_t seen = 0;
    int64_t wake = 0;
    while (wake_wait(&d->wake, &seen, wake)) {
        int64_t now = clock_now_ms();
        struct claim c = {.d = d};
        if (store_run(d->store, claim_job, &c) != 0) {
            log_error("Cannot claim dialer work; retrying in a second", NULL);
            wake = now + 1000;
        } else if (c.kind == JOB_NONE) {
            wake = c.wake;
        } else {
            wake = 0; /* there may be more right away */
            if (c.kind == JOB_DIAL) {
                dial_batch(w, &c);
            } else if (c.kind == JOB_RECONCILE) {
                reconcile(w, &c.a[0]);
            } else {
                check(w, &c.a[0]);
            }
        }
    }
    return NULL;
}

/* ---- POST /exotel/callback ---- */

/* A terminal callback against its attempt, in one transaction: who it may be, then the outcome. */
struct callback_job {
    struct outcome o;
    const char *callback_sid;
    bool legacy;             /* authenticated by the static token of before the upgrade */
    int64_t key_created_ms;  /* attempts dialed before this may use the legacy token */
    bool unauthorized;       /* out: a legacy token for an attempt dialed since */
    enum callback_verdict v; /* out */
    char state[16];          /* out */
};

static int callback_job(sqlite3 *db, void *arg)
{
    struct callback_job *j = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT state, coalesce(sid, ''), coalesce(dialed_ms, 0) FROM attempts"
                           " WHERE call_id = ?1 AND attempt = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, j->o.call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, j->o.attempt);
    char sid[64] = "";
    int64_t dialed_ms = 0;
    j->state[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, j->state, sizeof j->state);
        store_text(st, 1, sid, sizeof sid);
        dialed_ms = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    j->o.found = j->state[0] != '\0';
    j->o.changed = false;
    j->unauthorized = j->legacy && j->o.found && dialed_ms >= j->key_created_ms;
    if (!j->o.found || j->unauthorized) {
        return 0;
    }
    j->v = callback_verdict(j->state, sid, j->callback_sid);
    return j->v == CALLBACK_APPLY ? finalize_job(db, &j->o) : 0;
}

/* The token is the attempt's HMAC; the static token of before only for attempts dialed then. */
static int callback_auth(struct http_req *req, struct dialer *d, const char *call_id, long attempt,
                         bool *legacy)
{
    char token[80] = "";
    http_query(req, "token", token, sizeof token);
    *legacy = false;
    if (callback_token_ok(d->cb_key, sizeof d->cb_key, call_id, (int)attempt, token)) {
        return 0;
    }
    if (d->legacy_token[0] != '\0' &&
        api_key_equal(token, strlen(token), d->legacy_token, strlen(d->legacy_token))) {
        *legacy = true;
        return 0;
    }
    return -1;
}

/* call and attempt from the query; -1 (400 answered) when missing or malformed. */
static int callback_target(struct http_req *req, char call_id[64], long *attempt)
{
    char attempt_s[16] = "", *end = NULL;
    if (http_query(req, "call", call_id, 64) > 0 &&
        http_query(req, "attempt", attempt_s, sizeof attempt_s) > 0) {
        *attempt = strtol(attempt_s, &end, 10);
    }
    if (end == NULL || *end != '\0' || *attempt < 1 || *attempt > 1000) {
        http_reply_error(req, 400, "bad_request", "call and attempt query parameters are required",
                         NULL);
        return -1;
    }
    return 0;
}

static void callback_answer(struct http_req *req, const struct callback_job *j)
{
    if (j->unauthorized) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong callback token", NULL);
    } else if (!j->o.found) {
        http_reply_error(req, 404, "not_found", "no such call attempt", NULL);
    } else if (j->v == CALLBACK_MISMATCH) {
        log_warn("Callback refused: its CallSid is not the one Exotel returned for the attempt",
                 LOG_FIELDS(LOG_S("callId", j->o.call_id), LOG_I("attempt", j->o.attempt),
                            LOG_S("callSid", j->callback_sid)));
        http_reply_error(req, 409, "callsid_mismatch",
                         "CallSid is not the call Exotel placed for this attempt", NULL);
    } else if (j->v == CALLBACK_DEFER) {
        log_warn("Callback for an attempt whose Sid is not known yet: Exotel's call details "
                 "will decide",
                 LOG_FIELDS(LOG_S("callId", j->o.call_id), LOG_I("attempt", j->o.attempt),
                            LOG_S("state", j->state), LOG_S("callSid", j->callback_sid)));
        static const char deferred[] =
            "{\"success\":true,\"deferred\":\"the attempt is looked up in Exotel's call details\"}";
        http_reply(req, 202, "application/json", deferred, sizeof deferred - 1);
    } else {
        if (j->o.changed) {
            log_info("Call status received",
                     LOG_FIELDS(LOG_S("callId", j->o.call_id), LOG_I("attempt", j->o.attempt),
                                LOG_S("callSid", j->callback_sid), LOG_S("status", j->o.status),
                                LOG_I("durationS", j->o.duration_s)));
        } else {
            log_info("Duplicate status callback ignored",
                     LOG_FIELDS(LOG_S("callId", j->o.call_id), LOG_I("attempt", j->o.attempt)));
        }
        cJSON *out = cJSON_CreateObject();
        cJSON_AddBoolToObject(out, "success", true);
        cJSON_AddBoolToObject(out, "duplicate", !j->o.changed);
        http_reply_json(req, 200, out);
    }
}

static void post_callback(struct http_req *req, void *arg)
{
    struct dialer *d = arg;
    char call_id[64] = "";
    long attempt = 0;
    bool legacy = false;
    if (callback_target(req, call_id, &attempt) != 0) {
        return;
    }
    if (callback_auth(req, d, call_id, attempt, &legacy) != 0) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong callback token", NULL);
        return;
    }
    char *body;
    size_t len;
    if (http_read_body(req, CALLBACK_BODY_MAX, &body, &len) != 0) {
        return;
    }
    struct exotel_callback cb;
    int rc = exotel_callback_parse(http_header(req, "Content-Type"), body, len, &cb);
    free(body);
    if (rc != 0) {
        http_reply_error(req, 400, "malformed_callback",
                         "expected Exotel's StatusCallback with CallSid and Status (multipart, "
                         "urlencoded or JSON)",
                         NULL);
        return;
    }
    if (!exotel_status_terminal(cb.status)) {
        static const char ok[] = "{\"success\":true,\"ignored\":\"not a terminal status\"}";
        http_reply(req, 200, "application/json", ok, sizeof ok - 1);
        return;
    }
    struct callback_job j = {
        .o = {.d = d,
              .call_id = call_id,
              .attempt = (int)attempt,
              .status = cb.status,
              .sid = cb.call_sid,
              .duration_s = cb.duration_s,
              .recording = checked_recording(call_id, (int)attempt, cb.recording_url),
              .detail = "status callback",
              .final = true},
        .callback_sid = cb.call_sid,
        .legacy = legacy,
        .key_created_ms = d->cb_key_created_ms};
    if (store_run(d->store, callback_job, &j) != 0) {
        http_reply_error(req, 503, "unavailable", "the store could not be written; retry", NULL);
        return;
    }
    callback_answer(req, &j);
}

/* ---- start-up ---- */

/* The static token of before per-attempt tokens (EXOTEL_CALLBACK_TOKEN, else the stored one). */
static int legacy_token_job(sqlite3 *db, struct dialer *d)
{
    sqlite3_stmt *st;
    if (d->legacy_token[0] != '\0') {
        return 0;
    }
    if (sqlite3_prepare_v2(db, "SELECT token FROM dialer_secret", -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, d->legacy_token, sizeof d->legacy_token);
    }
    sqlite3_finalize(st);
    return 0;
}

/* The callback HMAC key: created once, random, kept in the store (0600). */
static int secret_job(sqlite3 *db, void *arg)
{
    struct dialer *d = arg;
    sqlite3_stmt *st;
    if (legacy_token_job(db, d) != 0 ||
        sqlite3_prepare_v2(db, "SELECT key, created_ms FROM callback_key", -1, &st, NULL) !=
            SQLITE_OK) {
        return -1;
    }
    bool have = false;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == (int)sizeof d->cb_key) {
        memcpy(d->cb_key, sqlite3_column_blob(st, 0), sizeof d->cb_key);
        d->cb_key_created_ms = sqlite3_column_int64(st, 1);
        have = true;
    }
    sqlite3_finalize(st);
    if (have) {
        return 0;
    }
    if (getrandom(d->cb_key, sizeof d->cb_key, 0) != (ssize_t)sizeof d->cb_key) {
        return -1;
    }
    d->cb_key_created_ms = clock_now_ms();
    if (sqlite3_prepare_v2(db, "INSERT INTO callback_key(id, key, created_ms) VALUES(1, ?1, ?2)",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_blob(st, 1, d->cb_key, sizeof d->cb_key, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, d->cb_key_created_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE && d->legacy_token[0] != '\0') {
        log_info("Callback URLs now carry per-attempt tokens; the static token is accepted only "
                 "for attempts dialed before now",
                 NULL);
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Attempts a crash left mid-request: their fate is unknown, so they are reconciled. */
static int recover_job(sqlite3 *db, void *arg)
{
    struct dialer *d = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE attempts SET state = 'unknown', next_ms = dialed_ms + ?1,"
                           " detail = 'the dialer stopped during the request'"
                           " WHERE state = 'dialing'",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, d->reconcile_delay_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    int n = sqlite3_changes(db);
    if (n > 0) {
        log_warn("Attempts were being dialed when the dialer stopped; reconciling them with Exotel",
                 LOG_FIELDS(LOG_I("attempts", n)));
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * The requests of the last window, so a restart keeps counting them. The store
 * knows when attempts were claimed, not when each was sent: a claimed attempt
 * may wait at the send gate up to a window, and behind the requests of its
 * batch (each up to the HTTP timeout); a re-send after a 429 overwrites the
 * time. So every send that may fall in the window counts as made now: a
 * restart can only wait longer than needed, never burst.
 */
static int load_dialed_job(sqlite3 *db, void *arg)
{
    struct dialer *d = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT coalesce(sum(tries), 0) FROM attempts WHERE dialed_ms > ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    int64_t now = clock_now_ms();
    sqlite3_bind_int64(st, 1, now - 2 * d->rl.window_ms - CLAIM_MAX * d->acct.timeout_ms);
    int64_t sends = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    for (int64_t i = 0; i < sends && i < d->rl.limit; i++) {
        rate_limit_record(&d->rl, now);
    }
    if (sends > 0) {
        log_info("Counting the requests of the last rate-limit window as made now",
                 LOG_FIELDS(LOG_I("requests", sends), LOG_I("windowMs", d->rl.window_ms)));
    }
    return 0;
}

/*
 * Degraded, not unready, while the call-scheduler's stream is unreachable:
 * callbacks still land and due calls wait in its outbox. (Readiness: the
 * store, and "exotel credentials", registered by main.)
 */
static bool ready(void *arg)
{
    struct dialer *d = arg;
    return bus_sub_source_ready(d->sub, 0);
}

static void dialer_stop(void *state)
{
    struct dialer *d = state;
    if (d == NULL) {
        return;
    }
    bus_sub_close(d->sub);
    wake_stop(&d->wake);
    for (int i = 0; i < d->nworkers; i++) {
        if (d->workers[i].started) {
            pthread_join(d->workers[i].thread, NULL);
        }
        if (d->workers[i].curl != NULL) {
            curl_easy_cleanup(d->workers[i].curl);
        }
    }
    free(d->workers);
    bus_pub_close(d->pub);
    store_close(d->store);
    tz_close(d->exotel_tz);
    rate_limit_free(&d->rl);
    pthread_mutex_destroy(&d->rl_lock);
    explicit_bzero(&d->acct, sizeof d->acct);
    explicit_bzero(d->cb_key, sizeof d->cb_key);
    explicit_bzero(d->legacy_token, sizeof d->legacy_token);
    wake_fini(&d->wake);
    free(d);
}

static int read_settings(struct app *app, struct dialer *d, char err[CONFIG_ERR_MAX])
{
    struct upstream up;
    int64_t ring, limit, http_timeout, workers;
    if (upstream_resolve(app, &up, err) != 0) {
        return -1;
    }
    d->sandbox = up.exotel_sandbox;
    snprintf(d->acct.base, sizeof d->acct.base, "%s", up.exotel_base);
    snprintf(d->acct.sid, sizeof d->acct.sid, "%s", up.exotel_sid);
    snprintf(d->acct.key, sizeof d->acct.key, "%s", up.exotel_key);
    snprintf(d->acct.token, sizeof d->acct.token, "%s", up.exotel_token);
    explicit_bzero(&up, sizeof up);
    /* The sandbox takes any well-formed numbers; a live account needs the operator's own. */
    snprintf(d->exophone, sizeof d->exophone, "%s",
             config_str("EXOTEL_EXOPHONE", d->sandbox ? "08047000000" : ""));
    snprintf(d->agent, sizeof d->agent, "%s",
             config_str("EXOTEL_AGENT_NUMBER", d->sandbox ? "08047000001" : ""));
    const char *app_id = config_str("EXOTEL_APP_ID", NULL);
    if (app_id != NULL) {
        snprintf(d->flow_url, sizeof d->flow_url, "http://my.exotel.com/%s/exoml/start_voice/%s",
                 d->acct.sid, app_id);
    }
    if (d->exophone[0] == '\0') {
        snprintf(err, CONFIG_ERR_MAX,
                 "EXOTEL_EXOPHONE: required with live Exotel credentials "
                 "(your ExoPhone, the caller id leads see)");
        return -1;
    }
    if (app_id == NULL && d->agent[0] == '\0') {
        snprintf(err, CONFIG_ERR_MAX,
                 "EXOTEL_AGENT_NUMBER: required when EXOTEL_APP_ID is not "
                 "set (the agent Exotel rings before the lead)");
        return -1;
    }
    snprintf(d->call_type, sizeof d->call_type, "%s", config_str("EXOTEL_CALL_TYPE", "trans"));
    char port_base[64];
    snprintf(port_base, sizeof port_base, "http://127.0.0.1:%d", app->port);
    snprintf(d->public_base, sizeof d->public_base, "%s", config_str("PUBLIC_BASE_URL", port_base));
    size_t n = strlen(d->public_base);
    if (n > 0 && d->public_base[n - 1] == '/') {
        d->public_base[n - 1] = '\0';
    }
    if (strncmp(d->public_base, "http://", 7) != 0 && strncmp(d->public_base, "https://", 8) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "PUBLIC_BASE_URL: expected an http:// or https:// URL");
        return -1;
    }
    const char *token = config_str("EXOTEL_CALLBACK_TOKEN", NULL);
    if (token != NULL && (strlen(token) < 16 || strlen(token) >= sizeof d->legacy_token ||
                          strspn(token, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                                        "TUVWXYZ-_") != strlen(token))) {
        snprintf(err, CONFIG_ERR_MAX,
                 "EXOTEL_CALLBACK_TOKEN: expected 16-64 characters of [A-Za-z0-9_-]");
        return -1;
    }
    snprintf(d->legacy_token, sizeof d->legacy_token, "%s", token ? token : "");
    if (config_int("EXOTEL_RING_TIMEOUT_S", 45, 5, 60, &ring, err) != 0 ||
        config_int("EXOTEL_TIME_LIMIT_S", 600, 10, 14400, &limit, err) != 0 ||
        config_int("EXOTEL_HTTP_TIMEOUT_MS", 30000, 100, 120000, &http_timeout, err) != 0 ||
        config_int("EXOTEL_CONCURRENCY", 8, 1, 64, &workers, err) != 0 ||
        config_int("EXOTEL_CALLBACK_GRACE_MS", 600000, 100, 24LL * 3600 * 1000, &d->grace_ms,
                   err) != 0 ||
        config_int("EXOTEL_RECONCILE_DELAY_MS", 60000, 100, 3600000, &d->reconcile_delay_ms, err) !=
            0 ||
        config_int("EXOTEL_RECONCILE_WINDOW_MS", (ring + limit) * 1000 + 120000, 100,
                   24LL * 3600 * 1000, &d->reconcile_window_ms, err) != 0 ||
        config_bool("EXOTEL_RECORD", false, &d->record, err) != 0 ||
        config_bool("EXOTEL_DND_PRECHECK", false, &d->dnd_precheck, err) != 0) {
        return -1;
    }
    if (rate_limit_init_exotel(&d->rl, err) != 0) {
        return -1;
    }
    if (tz_open(config_str("EXOTEL_TIMEZONE", "Asia/Kolkata"), &d->exotel_tz) != 0) {
        snprintf(err, CONFIG_ERR_MAX,
                 "EXOTEL_TIMEZONE: unknown time zone (Exotel writes IST: "
                 "Asia/Kolkata)");
        return -1;
    }
    d->ring_timeout_s = (int)ring;
    d->time_limit_s = (int)limit;
    d->acct.timeout_ms = (long)http_timeout;
    d->workers = calloc((size_t)workers, sizeof *d->workers);
    d->nworkers = d->workers != NULL ? (int)workers : 0;
    return d->workers != NULL ? 0 : -1;
}

static int start_workers(struct dialer *d)
{
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = &d->workers[i];
        w->d = d;
        if ((w->curl = curl_easy_init()) == NULL ||
            pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            return -1;
        }
        w->started = true;
    }
    return 0;
}

static int dialer_start(struct app *app, void **state, char err[CONFIG_ERR_MAX])
{
    struct dialer *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return -1;
    }
    wake_init(&d->wake, MAX_SLEEP_MS);
    pthread_mutex_init(&d->rl_lock, NULL);
    atomic_store(&d->rng, (uint64_t)clock_now_ms());
    if (read_settings(app, d, err) != 0) {
        dialer_stop(d);
        return -1;
    }
    char pub[APP_URL_MAX], replay[APP_URL_MAX], spub[APP_URL_MAX], sreplay[APP_URL_MAX];
    app_bus_endpoints(app, "dialer", pub, replay);
    app_bus_endpoints(app, "call-scheduler", spub, sreplay);
    struct bus_pub_opts po = {.name = "dialer",
                              .pub_url = pub,
                              .replay_url = replay,
                              .retention_days = app->retention_days};
    struct bus_source src[] = {{spub, sreplay, app_bus_name("call-scheduler")}};
    const char *topics[] = {"call.due"};
    struct bus_sub_opts so = {.name = "dialer",
                              .sources = src,
                              .nsources = 1,
                              .topics = topics,
                              .ntopics = 1,
                              .handler = on_event,
                              .arg = d};
    if (app_store_open(app, "dialer", schema, &d->store) != 0 ||
        store_run(d->store, secret_job, d) != 0 || store_run(d->store, recover_job, d) != 0 ||
        store_run(d->store, load_dialed_job, d) != 0 ||
        (po.store = d->store, bus_pub_open(&po, &d->pub)) != 0 ||
        store_on_commit(d->store, wake_on_commit, &d->wake) != 0 || start_workers(d) != 0 ||
        (so.store = d->store, bus_sub_open(&so, &d->sub)) != 0 ||
        http_route(app->http, "POST", "/exotel/callback", post_callback, d) != 0 ||
        http_degraded_check(app->http, "dialer: call-scheduler stream", ready, d) != 0 ||
        http_ready_check(app->http, bus_sub_streams_check(d->sub), bus_sub_streams_ok, d->sub) !=
            0) {
        dialer_stop(d);
        return -1;
    }
    log_info("Dialer ready",
             LOG_FIELDS(LOG_S("mode", d->flow_url[0] ? "IVR flow (EXOTEL_APP_ID)"
                                                     : "direct to agent (EXOTEL_AGENT_NUMBER)"),
                        LOG_I("workers", d->nworkers), LOG_S("callbackBase", d->public_base)));
    *state = d;
    return 0;
}

const struct module dialer_module = {"dialer", dialer_start, dialer_stop};
