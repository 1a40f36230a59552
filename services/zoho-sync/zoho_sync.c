/*
 * zoho-sync: leads into Zoho CRM (zoho_leads.c), call outcomes written back
 * to them (zoho_outcomes.c). This file is the module: settings, start/stop,
 * the bus handler, the dead-letter routes and the readiness checks.
 */
#include "zoho_sync.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "zoho_sync_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- bus handler (writer thread) ---- */

static int on_event(sqlite3 *db, const struct proto_event *ev, void *arg)
{
    struct zsync *z = arg;
    wake_mark(&z->wake);
    if (ev->topic == PROTO_CALL_STATUS) {
        return zoho_outcomes_on_status(db, ev);
    }
    if (ev->topic == PROTO_LEAD_ERASED) {
        return zoho_leads_on_erased(db, z, ev->data.lead_erased.lead_id, ev->seq);
    }
    if (ev->topic != PROTO_LEAD_CREATED) {
        return 0;
    }
    if (ev->data.lead_created.erased_ms != 0) {
        return zoho_leads_on_erased(db, z, ev->data.lead_created.lead_id, ev->seq);
    }
    int linked = zoho_link_on_created(db, z, ev, clock_now_ms()); /* created in Zoho itself */
    if (linked != 0) {
        return linked < 0 ? -1 : 0;
    }
    return zoho_leads_on_created(db, ev);
}

/* ---- HTTP: the dead-letter list ---- */

static void get_failed(struct http_req *req, void *arg)
{
    struct zsync *z = arg;
    if (!api_keys_check(z->keys, http_header(req, "X-API-Key"))) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON *list = cJSON_AddArrayToObject(o, "failed");
    cJSON *outcomes = cJSON_AddArrayToObject(o, "outcomes");
    if (store_run(z->store, zoho_leads_list_dead, list) != 0 ||
        store_run(z->store, zoho_outcomes_list_dead, outcomes) != 0) {
        cJSON_Delete(o);
        http_reply_error(req, 503, "unavailable", "the store could not be read; retry", NULL);
        return;
    }
    http_reply_json(req, 200, o);
}

struct retry_args {
    const char *lead_id;
    int leads, outcomes; /* how many were dead and are pending again */
};

/* Run a revive statement for one lead; how many rows it changed, or -1. */
static int revive(sqlite3 *db, const char *sql, const char *lead_id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, lead_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? sqlite3_changes(db) : -1;
}

/* A dead lead and its dead outcomes, pending again in one transaction. */
static int retry_job(sqlite3 *db, void *arg)
{
    struct retry_args *a = arg;
    a->leads = revive(db, zoho_leads_revive_sql, a->lead_id);
    a->outcomes = revive(db, zoho_outcomes_revive_sql, a->lead_id);
    return a->leads >= 0 && a->outcomes >= 0 ? 0 : -1;
}

static void post_retry(struct http_req *req, void *arg)
{
    struct zsync *z = arg;
    if (!api_keys_check(z->keys, http_header(req, "X-API-Key"))) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
        return;
    }
    struct retry_args a = {.lead_id = req->params[0]};
    if (store_run(z->store, retry_job, &a) != 0) {
        http_reply_error(req, 503, "unavailable", "the store could not be written; retry", NULL);
        return;
    }
    if (a.leads == 0 && a.outcomes == 0) {
        http_reply_error(req, 404, "not_found", "no such lead in the dead-letter list", NULL);
        return;
    }
    wake_kick(&z->wake);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "leadId", req->params[0]);
    cJSON_AddBoolToObject(o, "lead", a.leads > 0);
    cJSON_AddNumberToObject(o, "outcomes", a.outcomes);
    http_reply_json(req, 202, o);
}

/* Ready while Zoho accepts our OAuth client (no invalid_client / invalid_code). */
static bool ready(void *arg)
{
    struct zsync *z = arg;
    return !atomic_load(&z->fatal);
}

/*
 * Degraded, not unready, while an ingest stream is unreachable: its leads
 * wait in its outbox. The dialer is not watched: its outcomes are replayed
 * when it comes.
 */
static bool peers(void *arg)
{
    struct zsync *z = arg;
    for (int i = 0; i < z->ningest; i++) { /* every ingest replica */
        if (!bus_sub_source_ready(z->sub, i)) {
            return false;
        }
    }
    return bus_sub_discovery_ok(z->sub); /* or ingest's replicas found by DNS */
}

/*
 * Not ready while Zoho refuses every call outcome (OUTCOME_REFUSALS_UNREADY
 * in a row, none written between): the requests are wrong for this org, and
 * only an operator can fix that. One outcome written makes it ready again.
 */
#define OUTCOME_REFUSALS_UNREADY 5
static bool outcomes_ready(void *arg)
{
    struct zsync *z = arg;
    return atomic_load(&z->outcome_refusals_in_row) < OUTCOME_REFUSALS_UNREADY;
}

/* ---- module ---- */

static void zsync_stop(void *state)
{
    struct zsync *z = state;
    if (z == NULL) {
        return;
    }
    zoho_notify_close(z->notify); /* its thread uses the store and the token */
    metrics_collector_remove(zoho_outcomes_collect, z);
    retention_stop(z->retention);
    bus_sub_close(z->sub);
    wake_stop(&z->wake);
    for (int i = 0; i < z->nworkers; i++) {
        struct worker *w = &z->workers[i];
        if (w->started) {
            pthread_join(w->thread, NULL);
        }
        if (w->curl != NULL) {
            curl_easy_cleanup(w->curl);
        }
        explicit_bzero(&w->tok, sizeof w->tok);
    }
    free(z->workers);
    bus_pub_close(z->pub);
    store_close(z->store);
    api_keys_free(z->keys);
    explicit_bzero(z->client_secret, sizeof z->client_secret);
    explicit_bzero(z->refresh_token, sizeof z->refresh_token);
    explicit_bzero(&z->token, sizeof z->token);
    wake_fini(&z->wake);
    pthread_mutex_destroy(&z->token_lock);
    free(z);
}

static int start_workers(struct zsync *z)
{
    for (int i = 0; i < z->nworkers; i++) {
        struct worker *w = &z->workers[i];
        w->z = z;
        w->index = i;
        w->curl = curl_easy_init();
        if (w->curl == NULL || pthread_create(&w->thread, NULL, zoho_leads_worker, w) != 0) {
            return -1;
        }
        w->started = true;
    }
    return 0;
}

static int read_settings(struct zsync *z, struct app *app, char err[CONFIG_ERR_MAX])
{
    int64_t concurrency;
    if (upstream_resolve(app, &z->up, err) != 0 ||
        config_int("ZOHO_MAX_RETRY_MS", 6 * 3600 * 1000, 1000, INT64_MAX / 2, &z->max_retry_ms,
                   err) != 0 ||
        config_int("ZOHO_TIMEOUT_MS", 30000, 100, 600000, &z->timeout_ms, err) != 0 ||
        config_int("ZOHO_BACKOFF_MAX_MS", 300000, 1000, 3600000, &z->backoff_max_ms, err) != 0 ||
        config_int("ZOHO_OUTCOME_MAX_TRIES", 5, 1, 1000, &z->outcome_max_tries, err) != 0 ||
        config_int("EXOTEL_MAX_RETRIES", 3, 1, 20, &z->max_attempts, err) != 0 ||
        config_int("ZOHO_CONCURRENCY", 4, 1, 16, &concurrency, err) != 0) {
        return -1;
    }
    z->workers = calloc((size_t)concurrency, sizeof *z->workers);
    if (z->workers == NULL) {
        return -1;
    }
    z->nworkers = (int)concurrency;
    /* Without credentials leadbus talks to the sandbox with the sandbox's defaults (upstream). */
    snprintf(z->client_id, sizeof z->client_id, "%s", z->up.zoho_client_id);
    snprintf(z->client_secret, sizeof z->client_secret, "%s", z->up.zoho_client_secret);
    snprintf(z->refresh_token, sizeof z->refresh_token, "%s", z->up.zoho_refresh_token);
    snprintf(z->ext_field, sizeof z->ext_field, "%s",
             config_str("ZOHO_EXTERNAL_ID_FIELD", z->up.zoho_sandbox ? "Leadbus_Id" : ""));
    snprintf(z->dup_fields, sizeof z->dup_fields, "%s",
             config_str("ZOHO_DUPLICATE_CHECK_FIELDS", "Email"));
    snprintf(z->default_company, sizeof z->default_company, "%s",
             config_str("ZOHO_DEFAULT_COMPANY", ""));
    snprintf(z->call_result, sizeof z->call_result, "%s", config_str("ZOHO_CALL_RESULT", ""));
    snprintf(z->status_field, sizeof z->status_field, "%s",
             config_str("ZOHO_CALL_STATUS_FIELD", ""));
    return 0;
}

/* The store, then the publisher, the workers and the subscriber, each needing the one before. */
static int open_store_and_bus(struct zsync *z, struct app *app, char err[CONFIG_ERR_MAX])
{
    char pub[APP_URL_MAX], replay[APP_URL_MAX];
    struct app_sources *src = calloc(1, sizeof *src);
    int rc = -1;
    if (src == NULL || app_bus_endpoints(app, "zoho-sync", pub, replay) != 0) {
        goto out;
    }
    z->ningest = app_sources_add(app, src, "ingest", err);
    z->keep[0] = (struct retention_rule){"leads", zoho_leads_retention_sql, 0};
    if (z->ningest < 0 || app_sources_add(app, src, "dialer", err) < 0 ||
        app_store_open(app, "zoho-sync", zoho_leads_schema, &z->store) != 0 ||
        store_exec_schema(z->store, zoho_outcomes_schema) != 0 ||
        store_run(z->store, zoho_outcomes_migrate, NULL) != 0 ||
        store_run(z->store, zsync_load_token_job, z) != 0 ||
        retention_days("LEAD_RETENTION_DAYS", &z->keep[0].days, err) != 0 ||
        retention_start(z->store, z->keep, 1, &z->retention) != 0) {
        goto out;
    }
    struct bus_pub_opts po = {.name = "zoho-sync",
                              .pub_url = pub,
                              .replay_url = replay,
                              .retention_days = app->retention_days,
                              .store = z->store};
    if (bus_pub_open(&po, &z->pub) != 0 ||
        store_on_commit(z->store, wake_on_commit, &z->wake) != 0 || start_workers(z) != 0) {
        goto out;
    }
    const char *topics[] = {proto_topic_name(PROTO_LEAD_CREATED),
                            proto_topic_name(PROTO_CALL_STATUS),
                            proto_topic_name(PROTO_LEAD_ERASED)};
    struct bus_sub_opts so = {.name = "zoho-sync",
                              .sources = src->src,
                              .nsources = src->n,
                              .topics = topics,
                              .ntopics = 3,
                              .handler = on_event,
                              .arg = z,
                              .store = z->store,
                              .discover = app_sources_discover(src)};
    rc = bus_sub_open(&so, &z->sub);
out:
    free(src);
    return rc;
}

static int zsync_start(struct app *app, void **state, char err[CONFIG_ERR_MAX])
{
    struct zsync *z = calloc(1, sizeof *z);
    if (z == NULL) {
        return -1;
    }
    wake_init(&z->wake, 0);
    pthread_mutex_init(&z->token_lock, NULL);
    atomic_store(&z->rng, (uint64_t)clock_now_ms());
    if (read_settings(z, app, err) != 0 || api_keys_load(app->data_dir, &z->keys, err) != 0 ||
        open_store_and_bus(z, app, err) != 0 || zoho_notify_open(z, app, &z->notify, err) != 0 ||
        metrics_collector_add(zoho_outcomes_collect, z) != 0 ||
        http_route(app->http, "GET", "/zoho/failed", get_failed, z) != 0 ||
        http_route(app->http, "POST", "/zoho/failed/{leadId}/retry", post_retry, z) != 0 ||
        http_ready_check(app->http, "zoho-sync", ready, z) != 0 ||
        http_degraded_check(app->http, "zoho-sync: ingest streams", peers, z) != 0 ||
        http_ready_check(app->http, bus_sub_streams_check(z->sub), bus_sub_streams_ok, z->sub) !=
            0 ||
        http_ready_check(app->http, "zoho-sync: Zoho refuses call outcomes", outcomes_ready, z) !=
            0) {
        zsync_stop(z);
        return -1;
    }
    *state = z;
    return 0;
}

const struct module zoho_sync_module = {"zoho-sync", zsync_start, zsync_stop};
