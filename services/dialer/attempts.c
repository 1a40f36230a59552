/*
 * attempts: the dialer's table of call attempts, and every transaction that moves one.
 *
 * The attempt state machine (attempts.state, CHECKed in the schema):
 *
 *   call.due ──> queued ──claim (tries+1, dialed_ms)──> dialing ──Exotel: placed, Sid──> initiated
 *                  ^                                    │  │  │                            │   ^
 *                  └── 429 / never sent (tries back) ───┘  │  │                 callback │   │
 * looked up, │  │        or lookup past grace │   │ not over 5xx, timeout, cut, crash (restart) ─┘
 * │                            v   │ v                         │ refused (4xx), DND  ┌─> final <┘
 *                               unknown ──reconciled: adopted─┼─────────────────────┤
 *                                 │  ^     or never placed    └─────────────────────┘
 *                                 └──┘ not concluded (a page unreadable, within the window)
 *
 * With an agent pool (AGENTS), the claim also takes a free agent (agents.c) in the same
 * transaction; an attempt with no free agent stays `queued` for up to AGENT_WAIT_MAX_MS, then
 * goes to the IVR flow (EXOTEL_APP_ID) or straight to `final` as `failed-api` (not placed;
 * the scheduler retries it): queued ──no agent within AGENT_WAIT_MAX_MS──> final.
 *
 * Invariants: an attempt is dialed at most once (a request only from `dialing`, entered only
 * by a claim from `queued`; `unknown` is reconciled with Exotel, never redialed); a Sid
 * belongs to one attempt (unique index; adopted in the transaction that found it free);
 * `final` never moves and publishes exactly one final call.status (in the same transaction).
 */
#include "dialer_internal.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const attempt_state_name[] = {
    [ATTEMPT_QUEUED] = "queued",   [ATTEMPT_DIALING] = "dialing", [ATTEMPT_INITIATED] = "initiated",
    [ATTEMPT_UNKNOWN] = "unknown", [ATTEMPT_FINAL] = "final",
};

/* ---- bus handler: a due call becomes a queued attempt (writer thread) ---- */

int attempts_on_event(sqlite3 *db, const struct proto_event *ev, void *arg)
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

static int publish_status(sqlite3 *db, const struct outcome *o, const char *lead_id,
                          const char *sid, const char *agent, const char *agent_leg)
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
    snprintf(ev.agent, sizeof ev.agent, "%s", agent);
    snprintf(ev.agent_leg, sizeof ev.agent_leg, "%s", agent_leg);
    return bus_pub_append(o->d->pub, db, PROTO_CALL_STATUS, &ev, NULL);
}

/*
 * Finish an attempt with its outcome, once: a second callback, a late lookup
 * or a worker's answer after a callback find it final and change nothing.
 */
int attempts_finalize(sqlite3 *db, void *arg)
{
    struct outcome *o = arg;
    sqlite3_stmt *st;
    o->changed = false;
    if (sqlite3_prepare_v2(db,
                           "SELECT state, lead_id, coalesce(sid, ''), coalesce(agent, '')"
                           " FROM attempts WHERE call_id = ?1 AND attempt = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, o->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, o->attempt);
    char state[16] = "", lead_id[40] = "", sid[64] = "", agent[AGENT_NAME_MAX] = "";
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, state, sizeof state);
        store_text(st, 1, lead_id, sizeof lead_id);
        store_text(st, 2, sid, sizeof sid);
        store_text(st, 3, agent, sizeof agent);
    }
    sqlite3_finalize(st);
    o->found = state[0] != '\0';
    if (!o->found || strcmp(state, "final") == 0) {
        return 0;
    }
    if (sid[0] == '\0' && o->sid != NULL && o->sid[0] != '\0') {
        snprintf(sid, sizeof sid, "%s", o->sid);
    }
    /* Whose leg the outcome is: an agent who did not pick up is not a lead who did not. */
    const char *leg = agent[0] != '\0' ? agent_leg_of(o->leg1, o->status) : "";
    const char *words = agent_leg_detail(leg, o->status);
    char detail[256];
    snprintf(detail, sizeof detail, "%s%s%s", words ? words : "", words && o->detail ? " (" : "",
             o->detail ? o->detail : "");
    if (words != NULL && o->detail != NULL) {
        snprintf(detail + strlen(detail), sizeof detail - strlen(detail), ")");
    }
    /* A Sid already adopted by another attempt stays with that one. */
    if (sqlite3_prepare_v2(
            db,
            "UPDATE attempts SET state = 'final', status = ?3, duration_s = ?4, recording = ?5,"
            " detail = ?6, updated_ms = ?7, agent_leg = ?9, sid = CASE WHEN ?8 = '' OR "
            "EXISTS(SELECT 1 FROM"
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
    sqlite3_bind_text(st, 6, detail, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, clock_now_ms());
    sqlite3_bind_text(st, 8, sid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, leg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    struct outcome said = *o;
    said.detail = detail;
    if (rc != SQLITE_DONE || publish_status(db, &said, lead_id, sid, agent, leg) != 0 ||
        agents_release(db, o->d, o->call_id, o->attempt) != 0) {
        return -1;
    }
    if (leg[0] != '\0') {
        char labels[96];
        snprintf(labels, sizeof labels, "leg=\"%s\"", leg);
        metrics_counter_add("leadbus_agent_legs_total",
                            "Final agent-first calls by how the agent's leg ended", labels, 1);
    }
    o->changed = true;
    return 0;
}

int attempts_placed(sqlite3 *db, void *arg)
{
    struct placed *p = arg;
    struct outcome *o = &p->o;
    sqlite3_stmt *st;
    o->changed = false;
    if (sqlite3_prepare_v2(db,
                           "UPDATE attempts SET state = 'initiated', sid = ?3, next_ms = ?4,"
                           " updated_ms = ?5 WHERE call_id = ?1 AND attempt = ?2"
                           " AND state = 'dialing' RETURNING lead_id, coalesce(agent, '')",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, o->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, o->attempt);
    sqlite3_bind_text(st, 3, o->sid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, p->check_at);
    sqlite3_bind_int64(st, 5, clock_now_ms());
    char lead_id[40] = "", agent[AGENT_NAME_MAX] = "";
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        store_text(st, 0, lead_id, sizeof lead_id);
        store_text(st, 1, agent, sizeof agent);
        rc = sqlite3_step(st);
        o->changed = true;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return -1;
    }
    return o->changed ? publish_status(db, o, lead_id, o->sid, agent, "") : 0;
}

static int unassign(sqlite3 *db, struct dialer *d, const char *call_id, int attempt)
{
    sqlite3_stmt *st;
    if (agents_release(db, d, call_id, attempt) != 0 ||
        sqlite3_prepare_v2(db,
                           "UPDATE attempts SET agent = NULL, agent_number = NULL"
                           " WHERE call_id = ?1 AND attempt = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, attempt);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int attempts_requeue(sqlite3 *db, void *arg)
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
    sqlite3_bind_text(st, 3, attempt_state_name[r->from], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, attempt_state_name[r->to], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, r->next_ms);
    sqlite3_bind_int64(st, 6, clock_now_ms());
    sqlite3_bind_text(st, 7, r->detail, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    bool moved = sqlite3_changes(db) == 1;
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return -1;
    }
    /* Never sent (429, no connection): nobody was rung, so the agent is free and the next
     * claim chooses again. */
    return moved && r->to == ATTEMPT_QUEUED ? unassign(db, r->d, r->call_id, r->attempt) : 0;
}

/* ---- claiming work (writer thread) ---- */

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
    a->queued_ms = sqlite3_column_int64(st, 10);
    store_text(st, 11, a->agent, sizeof a->agent);
    store_text(st, 12, a->agent_number, sizeof a->agent_number);
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
    " coalesce(dialed_ms, 0), state, due_ms, queued_ms, coalesce(agent, ''),"                      \
    " coalesce(agent_number, '')"

/*
 * No agent was free for `a` within AGENT_WAIT_MAX_MS: the IVR flow takes it when there is one
 * (agent ""), else it ends as not placed (`failed-api`), which the scheduler retries. True when
 * the attempt is still to be dialed (by the flow).
 */
static int agent_wait_over(sqlite3 *db, struct dialer *d, struct attempt *a, bool *dial)
{
    metrics_counter_add("leadbus_agent_wait_timeouts_total",
                        "Due calls that found no free agent within AGENT_WAIT_MAX_MS",
                        d->flow_url[0] ? "then=\"flow\"" : "then=\"retry\"", 1);
    log_warn("No agent free within AGENT_WAIT_MAX_MS",
             LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt),
                        LOG_S("then", d->flow_url[0] ? "IVR flow (EXOTEL_APP_ID)" : "retry")));
    *dial = d->flow_url[0] != '\0';
    if (*dial) {
        a->agent[0] = a->agent_number[0] = '\0';
        return 0;
    }
    struct outcome o = {.d = d,
                        .call_id = a->call_id,
                        .attempt = a->attempt,
                        .status = "failed-api",
                        .sid = "",
                        .recording = "",
                        .detail = "not placed: no agent free within AGENT_WAIT_MAX_MS",
                        .final = true};
    return attempts_finalize(db, &o);
}

/* An agent for each candidate (pool mode): the ones that got one, or whose wait is over and
 * the flow takes them, stay in c; the others wait (c->agent_wait_until). */
static int assign_agents(sqlite3 *db, struct claim *c, int64_t now)
{
    struct dialer *d = c->d;
    struct agent_view v[AGENT_POOL_MAX];
    int cursor = 0, kept = 0;
    if (agents_view(db, d, v, &cursor) != 0) {
        return -1;
    }
    for (int k = 0; k < c->n; k++) {
        struct attempt *a = &c->a[k];
        int64_t waited_from = a->queued_ms > a->due_ms ? a->queued_ms : a->due_ms;
        int i = agent_choose(v, d->nagents, d->strategy, &cursor);
        bool dial = i >= 0;
        if (dial) {
            v[i].busy = true;
            if (agents_take(db, d, i, cursor, a, now) != 0) {
                return -1;
            }
        } else if (now - waited_from >= d->agent_wait_ms) {
            if (agent_wait_over(db, d, a, &dial) != 0) {
                return -1;
            }
        } else if (c->agent_wait_until == 0) {
            c->agent_wait_until = waited_from + d->agent_wait_ms;
        }
        if (dial) {
            c->a[kept++] = *a;
        }
    }
    c->n = kept;
    return 0;
}

/* Due calls first, oldest first (what the leads wait for): up to `max` into c. */
static int find_dials(sqlite3 *db, struct claim *c, int64_t now, int max)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT " ATTEMPT_COLS " FROM attempts WHERE state = 'queued'"
                           " AND next_ms <= ?1 ORDER BY due_ms LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, max);
    while (c->n < max && sqlite3_step(st) == SQLITE_ROW) {
        read_attempt(st, &c->a[c->n++]);
    }
    sqlite3_finalize(st);
    if (c->d->nagents > 0 && assign_agents(db, c, now) != 0) {
        return -1;
    }
    c->kind = c->n > 0 ? JOB_DIAL : JOB_NONE;
    return 0;
}

/* A lookup: an unknown outcome, a callback overdue, or a `dialing` whose result could not be
 * recorded (older than any request can take). */
static int find_lookup(sqlite3 *db, struct claim *c, int64_t now)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT " ATTEMPT_COLS " FROM attempts WHERE (state IN ('unknown',"
                           " 'initiated') AND next_ms <= ?1) OR (state = 'dialing' AND"
                           " dialed_ms < ?2) ORDER BY next_ms LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, now - 2 * c->d->acct.timeout_ms - 60000);
    if (sqlite3_step(st) == SQLITE_ROW) {
        read_attempt(st, &c->a[0]);
        c->n = 1;
        c->kind = strcmp((const char *)sqlite3_column_text(st, 8),
                         attempt_state_name[ATTEMPT_INITIATED]) == 0
                      ? JOB_CHECK
                      : JOB_RECONCILE;
    }
    sqlite3_finalize(st);
    return 0;
}

/* The claim: `dialing` is committed before the request, so a crash cannot lead to a redial;
 * a lookup takes a lease (as `unknown`) so no other worker repeats it meanwhile. */
static int take(sqlite3 *db, struct claim *c, int64_t now)
{
    const char *sql =
        c->kind == JOB_DIAL
            ? "UPDATE attempts SET state = 'dialing', dialed_ms = ?3,"
              " tries = tries + 1, updated_ms = ?3 WHERE call_id = ?1 AND attempt = ?2"
            : "UPDATE attempts SET next_ms = ?4, updated_ms = ?3, state = CASE state"
              " WHEN 'dialing' THEN 'unknown' ELSE state END"
              " WHERE call_id = ?1 AND attempt = ?2";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    int rc = SQLITE_DONE;
    for (int i = 0; i < c->n && rc == SQLITE_DONE; i++) {
        sqlite3_bind_text(st, 1, c->a[i].call_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, c->a[i].attempt);
        sqlite3_bind_int64(st, 3, now);
        sqlite3_bind_int64(st, 4, now + 2 * c->d->acct.timeout_ms + 5000);
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

int attempts_claim(sqlite3 *db, void *arg)
{
    struct claim *c = arg;
    struct dialer *d = c->d;
    int64_t now = clock_now_ms();
    c->kind = JOB_NONE;
    c->n = 0;
    c->agent_wait_until = 0;
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
    if (can_dial > 0 && find_dials(db, c, now, can_dial) != 0) {
        return -1;
    }
    if (c->kind == JOB_NONE && find_lookup(db, c, now) != 0) {
        return -1;
    }
    if (c->kind != JOB_NONE) {
        return take(db, c, now);
    }
    int64_t queued = min_next(db, "'queued'"), other = min_next(db, "'unknown', 'initiated'");
    if (c->agent_wait_until != 0 && queued <= now) {
        /* Waiting for an agent: woken when one is freed (agents_release), or at the wait's end. */
        queued = c->agent_wait_until;
    }
    if (queued != INT64_MAX && queued < rl_next) {
        queued = rl_next;
    }
    int64_t next = queued < other ? queued : other;
    c->wake = next < c->wake ? next : c->wake;
    return 0;
}

/* An attempt whose request never left: the claim's try is taken back. */
int attempts_unsent(sqlite3 *db, const struct attempt *a)
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

int attempts_adopt(sqlite3 *db, void *arg)
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
        if (p->a->sid[0] != '\0') {
            /* Adopted already (the Sid was claimed, then the dialer stopped before the
             * outcome was recorded): that call and no other. */
            p->found = strcmp(c->sid, p->a->sid) == 0 ? i : -1;
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

/* Attempts a crash left mid-request: their fate is unknown, so they are reconciled. */
int attempts_recover(sqlite3 *db, void *arg)
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
int attempts_load_dialed(sqlite3 *db, void *arg)
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
