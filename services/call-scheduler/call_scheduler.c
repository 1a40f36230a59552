/*
 * call-scheduler: the module (settings, start/stop), the timer thread that
 * dispatches due calls, the operator's routes and /metrics. The calls and
 * their state machine are calls.c's.
 */
#include "call_scheduler.h"
#include "call_scheduler_int.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the timer: dispatch due calls within the rate limit ---- */

static void *timer_main(void *arg)
{
    struct sched *s = arg;
    log_set_target("call-scheduler");
    uint64_t seen = 0;
    int64_t next = 0;
    while (wake_wait(&s->wake, &seen, next)) {
        int64_t now = clock_now_ms();
        struct dispatch_args a = {.s = s, .now = now};
        if (store_run(s->store, calls_dispatch_job, &a) != 0) {
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

/* ?state=pending|done&limit=N: the states listed and their order; false (answered) if wrong. */
static bool calls_query(struct http_req *req, const enum call_state **states, int *nstates,
                        const char **order, long *limit)
{
    static const enum call_state pending[] = {CALL_PENDING, CALL_DISPATCHED};
    static const enum call_state done[] = {CALL_DONE, CALL_CANCELED, CALL_SKIPPED};
    char state[16] = "pending", limit_s[16] = "";
    http_query(req, "state", state, sizeof state);
    *limit = 100;
    if (http_query(req, "limit", limit_s, sizeof limit_s) >= 0) {
        char *end;
        *limit = strtol(limit_s, &end, 10);
        if (*end != '\0' || *limit < 1 || *limit > 10000) {
            http_reply_error(req, 400, "bad_request", "limit: expected 1 to 10000", NULL);
            return false;
        }
    }
    if (strcmp(state, "pending") == 0) {
        *states = pending;
        *nstates = 2;
        *order = "due_ms";
    } else if (strcmp(state, "done") == 0) {
        *states = done;
        *nstates = 3;
        *order = "updated_ms DESC";
    } else {
        http_reply_error(req, 400, "bad_request", "state: expected pending or done", NULL);
        return false;
    }
    return true;
}

/* One row of the list below as the API shows it (the phone number masked). */
static cJSON *call_json(sqlite3_stmt *st)
{
    char buf[256], masked[32];
    cJSON *c = cJSON_CreateObject();
    store_text(st, 0, buf, sizeof buf);
    cJSON_AddStringToObject(c, "callId", buf);
    store_text(st, 1, buf, sizeof buf);
    cJSON_AddStringToObject(c, "leadId", buf);
    cJSON_AddNumberToObject(c, "attempt", sqlite3_column_int(st, 2));
    store_text(st, 3, buf, sizeof buf);
    cJSON_AddStringToObject(c, "state", buf);
    if (strcmp(buf, call_state_name[CALL_PENDING]) == 0 ||
        strcmp(buf, call_state_name[CALL_DISPATCHED]) == 0) {
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
    return c;
}

static void get_calls(struct http_req *req, void *arg)
{
    struct sched *s = arg;
    const enum call_state *states;
    int nstates;
    const char *order;
    long limit;
    if (!authorized(s, req) || !calls_query(req, &states, &nstates, &order, &limit)) {
        return;
    }
    /* Each state through its own index, merged under the limit: no sort of a million rows. */
    sqlite3 *db;
    char sql[1024];
    size_t n = (size_t)snprintf(sql, sizeof sql, "SELECT * FROM (");
    for (int i = 0; i < nstates; i++) {
        n += (size_t)snprintf(sql + n, sizeof sql - n,
                              "%sSELECT * FROM (SELECT call_id, lead_id, attempt, state, due_ms,"
                              " status, detail, phone_dial, updated_ms FROM calls"
                              " WHERE state = '%s' ORDER BY %s LIMIT ?1)",
                              i ? " UNION ALL " : "", call_state_name[states[i]], order);
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
        cJSON_AddItemToArray(list, call_json(st));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    http_reply_json(req, 200, o);
}

static void delete_call(struct http_req *req, void *arg)
{
    struct sched *s = arg;
    if (!authorized(s, req)) {
        return;
    }
    struct cancel_args a = {.s = s, .call_id = req->params[0]};
    if (store_run(s->store, calls_cancel_job, &a) != 0) {
        http_reply_error(req, 503, "unavailable", "the store could not be written; retry", NULL);
        return;
    }
    if (a.state[0] == '\0') {
        http_reply_error(req, 404, "not_found", "no call with that id", NULL);
        return;
    }
    if (strcmp(a.state, call_state_name[CALL_PENDING]) != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "only a pending call can be canceled; this one is %s",
                 strcmp(a.state, call_state_name[CALL_DISPATCHED]) == 0 ? "being dialed" : a.state);
        http_reply_error(req, 409, "not_pending", msg, NULL);
        return;
    }
    log_info("Call canceled", LOG_FIELDS(LOG_S("callId", a.call_id)));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "callId", a.call_id);
    cJSON_AddStringToObject(o, "state", call_state_name[CALL_CANCELED]);
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
    static const enum call_state states[] = {CALL_PENDING, CALL_DISPATCHED};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        sqlite3_stmt *st;
        char labels[48];
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM calls WHERE state = ?1", -1, &st, NULL) !=
            SQLITE_OK) {
            break;
        }
        sqlite3_bind_text(st, 1, call_state_name[states[i]], -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            snprintf(labels, sizeof labels, "state=\"%s\"", call_state_name[states[i]]);
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

static int start_timer(struct sched *s)
{
    if (pthread_create(&s->thread, NULL, timer_main, s) != 0) {
        return -1;
    }
    s->started = true;
    return 0;
}

/* The store, then the publisher, the timer and the subscriber, each needing the one before. */
static int open_store_and_bus(struct sched *s, struct app *app, char err[CONFIG_ERR_MAX])
{
    char pub[APP_URL_MAX], replay[APP_URL_MAX];
    struct app_sources *src = calloc(1, sizeof *src);
    int rc = -1;
    if (src == NULL || app_bus_endpoints(app, "call-scheduler", pub, replay) != 0) {
        goto out;
    }
    s->ningest = app_sources_add(app, src, "ingest", err);
    s->keep[0] = (struct retention_rule){"calls", calls_retention_sql, 0};
    if (s->ningest < 0 || app_sources_add(app, src, "dialer", err) < 0 ||
        app_store_open_versioned(app, "call-scheduler", calls_schema, calls_migrations,
                                 calls_nmigrations, &s->store) != 0 ||
        store_run(s->store, load_dispatches_job, s) != 0) {
        goto out;
    }
    struct bus_pub_opts po = {.name = "call-scheduler",
                              .pub_url = pub,
                              .replay_url = replay,
                              .retention_days = app->retention_days,
                              .store = s->store};
    if (bus_pub_open(&po, &s->pub) != 0 ||
        retention_days("LEAD_RETENTION_DAYS", &s->keep[0].days, err) != 0 ||
        retention_start(s->store, s->keep, 1, &s->retention) != 0 ||
        store_on_commit(s->store, wake_on_commit, &s->wake) != 0 || start_timer(s) != 0) {
        goto out;
    }
    const char *topics[] = {proto_topic_name(PROTO_LEAD_CREATED),
                            proto_topic_name(PROTO_CALL_STATUS),
                            proto_topic_name(PROTO_LEAD_ERASED)};
    struct bus_sub_opts so = {.name = "call-scheduler",
                              .sources = src->src,
                              .nsources = src->n,
                              .topics = topics,
                              .ntopics = 3,
                              .handler = calls_on_event,
                              .arg = s,
                              .store = s->store,
                              .discover = app_sources_discover(src)};
    rc = bus_sub_open(&so, &s->sub);
out:
    free(src);
    return rc;
}

static int sched_start(struct app *app, void **state, char err[CONFIG_ERR_MAX])
{
    struct sched *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return -1;
    }
    wake_init(&s->wake, MAX_SLEEP_MS);
    if (read_settings(app, s, err) != 0 || api_keys_load(app->data_dir, &s->keys, err) != 0 ||
        open_store_and_bus(s, app, err) != 0 ||
        http_route(app->http, "GET", "/calls", get_calls, s) != 0 ||
        http_route(app->http, "DELETE", "/calls/{callId}", delete_call, s) != 0 ||
        http_degraded_check(app->http, "call-scheduler: ingest streams", ready, s) != 0 ||
        http_ready_check(app->http, bus_sub_streams_check(s->sub), bus_sub_streams_ok, s->sub) !=
            0 ||
        metrics_collector_add(collect, s) != 0) {
        sched_stop(s);
        return -1;
    }
    log_banner(s);
    *state = s;
    return 0;
}

const struct module call_scheduler_module = {"call-scheduler", sched_start, sched_stop};
