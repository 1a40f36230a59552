/* work: the dialer's workers: dial a batch, reconcile an unknown attempt, check a late one. */
#include "dialer_internal.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    bool unsent; /* the request never left: its try is not counted (see attempts_load_dialed) */
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

/* The attempt goes into the IVR flow: no agent was given to it and there is a flow. */
static bool attempt_in_flow(const struct dialer *d, const struct attempt *a)
{
    return a->agent_number[0] == '\0' && d->flow_url[0] != '\0';
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
    if (a->agent[0] != '\0') {
        log_info("Executing call",
                 LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt),
                            LOG_PHONE("phoneNumber", lead_number(a)), LOG_S("agent", a->agent)));
    } else { /* the original guide's line, unchanged */
        log_info("Executing call",
                 LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt),
                            LOG_PHONE("phoneNumber", lead_number(a))));
    }
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
    /* Agent first (From = the agent, To = the lead), else the flow (From = the lead). */
    bool flow = attempt_in_flow(d, a);
    const char *agent = a->agent_number[0] ? a->agent_number : d->agent;
    struct exotel_dial req = {.from = flow ? lead_number(a) : agent,
                              .to = flow ? NULL : lead_number(a),
                              .flow_url = flow ? d->flow_url : NULL,
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
        res->requeue =
            (struct requeue){a->call_id, a->attempt, ATTEMPT_DIALING, ATTEMPT_QUEUED, NULL, 0, d};
        return;
    }
    exotel_connect(w->curl, &d->acct, &req, r);
    explicit_bzero(callback, sizeof callback);
    if (r->outcome == EXOTEL_NOT_SENT) {
        rate_slot_return(d, slot);
        res->unsent = true;
    }
    struct connect_verdict v;
    connect_verdict(r, &v);
    int64_t now = clock_now_ms();
    snprintf(res->detail, sizeof res->detail, "%s", v.detail);
    if (v.bad_credentials) {
        log_error("Exotel rejected the credentials (EXOTEL_API_KEY / EXOTEL_API_TOKEN / "
                  "EXOTEL_ACCOUNT_SID, or the wrong EXOTEL_SUBDOMAIN)",
                  NULL);
    }
    if (v.next == ATTEMPT_INITIATED) {
        res->kind = RES_PLACED;
        res->placed = (struct placed){{.d = d,
                                       .call_id = a->call_id,
                                       .attempt = a->attempt,
                                       .status = v.status,
                                       .sid = r->call.sid,
                                       .final = false},
                                      now + d->grace_ms};
    } else if (v.next == ATTEMPT_FINAL) {
        final_result(res, d, a, v.status, v.detail);
    } else {
        res->kind = RES_REQUEUE;
        res->wait_ms = v.backoff ? backoff_ms(d, a->tries, r->retry_after_ms) : 0;
        int64_t next = v.next == ATTEMPT_QUEUED ? now + res->wait_ms : now + d->reconcile_delay_ms;
        res->requeue =
            (struct requeue){a->call_id, a->attempt, ATTEMPT_DIALING, v.next, res->detail, next, d};
    }
}

struct results {
    struct result *res;
    const struct attempt *a;
    int n;
};

static int results_job(sqlite3 *db, void *arg)
{
    struct results *b = arg;
    for (int i = 0; i < b->n; i++) {
        struct result *r = &b->res[i];
        int rc = r->kind == RES_PLACED    ? attempts_placed(db, &r->placed)
                 : r->kind == RES_REQUEUE ? attempts_requeue(db, &r->requeue)
                                          : attempts_finalize(db, &r->final);
        if (rc == 0 && r->unsent) {
            rc = attempts_unsent(db, &b->a[i]);
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
    } else if (r->requeue.to == ATTEMPT_QUEUED && r->requeue.detail == NULL) {
        return; /* never sent: the dialer is stopping */
    } else if (r->requeue.to == ATTEMPT_QUEUED) {
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
const char *dialer_checked_recording(const char *call_id, int attempt, const char *url)
{
    if (url == NULL || url[0] == '\0' || recording_url_allowed(url)) {
        return url;
    }
    log_warn("RecordingUrl dropped: not an https link on a host Exotel documents",
             LOG_FIELDS(LOG_S("callId", call_id), LOG_I("attempt", attempt)));
    return "";
}

static void finish(struct dialer *d, const struct attempt *a, const char *status, const char *sid,
                   int64_t duration, const char *recording, const char *detail, const char *leg1)
{
    recording = dialer_checked_recording(a->call_id, a->attempt, recording);
    struct outcome o = {.d = d,
                        .call_id = a->call_id,
                        .attempt = a->attempt,
                        .status = status,
                        .sid = sid,
                        .duration_s = duration,
                        .recording = recording,
                        .detail = detail,
                        .leg1 = leg1,
                        .final = true};
    if (store_run(d->store, attempts_finalize, &o) != 0) {
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
        .field = attempt_in_flow(d, a) ? "From" : "To", .numbers = numbers, .gte = gte, .lte = lte};
    struct exotel_call *calls = malloc(EXOTEL_PAGE_MAX * sizeof *calls);
    int rc = calls != NULL ? 0 : -1;
    while (rc == 0 && !q.done) {
        int n =
            q.pages < RECONCILE_PAGES ? exotel_find_calls_page(w->curl, &d->acct, &q, calls) : -1;
        struct adopt p = {calls, n >= 0 ? own_calls(calls, n, a, attempt_in_flow(d, a)) : 0, a, -1};
        if (n < 0 || store_run(d->store, attempts_adopt, &p) != 0) {
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
        finish(d, a, c.status, c.sid, c.duration_s, c.recording_url, "found by reconciliation",
               c.leg1_status);
        return;
    }
    if (found == 0 && now - a->dialed_ms >= d->reconcile_window_ms) {
        log_info("Reconciled: Exotel never placed the call",
                 LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt),
                            LOG_I("pages", pages)));
        finish(d, a, "failed-api", "", 0, "", "not placed (no such call at Exotel)", "");
        return;
    }
    if (found < 0) {
        log_warn("Cannot read Exotel's call details; the attempt stays unknown and is looked up "
                 "again",
                 LOG_FIELDS(LOG_S("callId", a->call_id), LOG_I("attempt", a->attempt),
                            LOG_I("pagesRead", pages)));
    }
    struct requeue q = {a->call_id,      a->attempt, ATTEMPT_UNKNOWN,
                        ATTEMPT_UNKNOWN, NULL,       now + d->reconcile_delay_ms};
    store_run(d->store, attempts_requeue, &q);
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
        finish(d, a, c.status, a->sid, c.duration_s, c.recording_url, "from call details",
               c.leg1_status);
        return;
    }
    int64_t again = d->grace_ms / 2 > 5000 ? d->grace_ms / 2 : 5000;
    struct requeue q = {a->call_id,        a->attempt, ATTEMPT_INITIATED,
                        ATTEMPT_INITIATED, NULL,       now + again};
    store_run(d->store, attempts_requeue, &q);
}

void *dialer_worker_main(void *arg)
{
    struct worker *w = arg;
    struct dialer *d = w->d;
    log_set_target("dialer");
    uint64_t seen = 0;
    int64_t wake = 0;
    while (wake_wait(&d->wake, &seen, wake)) {
        int64_t now = clock_now_ms();
        struct claim c = {.d = d};
        if (store_run(d->store, attempts_claim, &c) != 0) {
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
