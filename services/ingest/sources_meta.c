/*
 * sources_meta: Meta (Facebook/Instagram) Lead Ads at /sources/meta.
 *
 * A delivery names leads (leadgen_id) without their contents. Each one is
 * recorded durably before Meta gets its 200, then a worker fetches the lead
 * from the Graph API and stores it with its lead.created event. One row per
 * leadgen_id in meta_leads (enum meta_row_state):
 *
 *     POST /sources/meta ──► pending ──(Graph answers the lead)──────────────► done
 *     (INSERT OR IGNORE:      │   ▲
 *      a redelivery adds      │   └── Graph or the network fails: tries + 1,
 *      nothing)               │       next_ms = now + META_RETRY_BASE_MS · 2^(tries-1)
 *                             │       (at most META_RETRY_MAX_MS)
 *                             └──(META_MAX_TRIES failures, or a lead leadbus refuses)──► dead
 *     dead ──(POST /sources/meta/failed/{leadgenId}/retry)──► pending (tries 0)
 *
 * Invariants: only pending rows are fetched; a row becomes done in the
 * transaction that stores its lead, its event and source_refs('meta', id), so
 * a SIGKILL anywhere fetches again (a GET, safe to repeat) and never creates a
 * second lead. A dead row is an ERROR line, leadbus_source_requests_total
 * {source="meta",result="dead"}, the gauge leadbus_meta_leads{state="dead"} and
 * an entry of GET /sources/meta/failed.
 *
 * Credentials: META_VERIFY_TOKEN, META_APP_SECRET and META_PAGE_TOKEN, all
 * or none. With none, the Graph API is the sandbox's (served by --target=all
 * or --target=sandbox; META_GRAPH_URL points elsewhere) and the sandbox's
 * secrets are used; with SANDBOX=off and none, the routes answer 404. The
 * page token travels in an Authorization header, never in a URL.
 */
#include "clock.h"
#include "http_client.h"
#include "log.h"
#include "metrics.h"
#include "sources_meta_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const meta_row_state_name[META_ROW_STATES] = {
    [META_ROW_PENDING] = "pending", [META_ROW_DONE] = "done", [META_ROW_DEAD] = "dead"};

static const char meta_schema[] =
    "CREATE TABLE IF NOT EXISTS meta_leads("
    "  leadgen_id TEXT PRIMARY KEY, page_id TEXT NOT NULL, form_id TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK(state IN ('pending', 'done', 'dead')),"
    "  tries INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL, last_error TEXT,"
    "  lead_id TEXT, received_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS meta_leads_due ON meta_leads(state, next_ms);";

/* ---- writer thread ---- */

struct meta_record_job {
    const struct meta_change *changes;
    int n;
    int added; /* out */
};

static int meta_record_job(sqlite3 *db, void *arg)
{
    struct meta_record_job *j = arg;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO meta_leads(leadgen_id, page_id, form_id, state,"
                           " next_ms, received_ms) VALUES(?1, ?2, ?3, 'pending', ?4, ?4)",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    int64_t now = clock_now_ms();
    int rc = 0;
    for (int i = 0; i < j->n && rc == 0; i++) {
        sqlite3_bind_text(st, 1, j->changes[i].leadgen_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, j->changes[i].page_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, j->changes[i].form_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
        j->added += sqlite3_changes(db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

struct meta_retry_job {
    const char *leadgen_id;
    int changed; /* out */
};

static int meta_retry_job(sqlite3 *db, void *arg)
{
    struct meta_retry_job *j = arg;
    j->changed = meta_exec_bound(db,
                                 "UPDATE meta_leads SET state = 'pending', tries = 0, next_ms = ?3"
                                 " WHERE leadgen_id = ?1 AND state = 'dead'",
                                 j->leadgen_id, NULL, clock_now_ms(), 0);
    return j->changed < 0 ? -1 : 0;
}

/* ---- HTTP ---- */

static bool meta_enabled(struct sources_meta *m, struct http_req *req)
{
    if (!m->enabled) {
        http_reply_error(req, 404, "source_not_configured",
                         "Meta Lead Ads are off: set META_VERIFY_TOKEN, META_APP_SECRET and "
                         "META_PAGE_TOKEN (or let the sandbox simulate Meta)",
                         NULL);
    }
    return m->enabled;
}

static void get_meta(struct http_req *req, void *arg)
{
    struct sources_meta *m = arg;
    char mode[32] = "", token[256] = "", challenge[256] = "";
    if (!meta_enabled(m, req)) {
        return;
    }
    http_query(req, "hub.mode", mode, sizeof mode);
    http_query(req, "hub.verify_token", token, sizeof token);
    int n = http_query(req, "hub.challenge", challenge, sizeof challenge);
    if (!meta_verify_ok(mode, token, m->verify_token) || n <= 0) {
        sources_count("meta", "bad_verify_token");
        log_warn("Meta verification refused (hub.mode, hub.verify_token or hub.challenge)", NULL);
        http_reply_error(req, 403, "verification_refused",
                         "hub.mode must be subscribe and hub.verify_token META_VERIFY_TOKEN", NULL);
        return;
    }
    log_info("Meta webhook verified", NULL);
    http_reply(req, 200, "text/plain", challenge, (size_t)n);
}

static void post_meta(struct http_req *req, void *arg)
{
    struct sources_meta *m = arg;
    if (!meta_enabled(m, req)) {
        return;
    }
    char *body;
    size_t len;
    if (http_read_body(req, m->ctx.max_body, &body, &len) != 0) {
        return;
    }
    enum source_sig sig = source_sig_check(m->app_secret, m->app_secret_len, body, len,
                                           http_header(req, "X-Hub-Signature-256"));
    if (sig != SOURCE_SIG_OK) {
        free(body);
        sources_count("meta", "bad_signature");
        log_warn("Meta delivery refused: X-Hub-Signature-256",
                 LOG_FIELDS(LOG_S("signature", source_sig_name(sig))));
        http_reply_error(req, 401, "bad_signature",
                         "X-Hub-Signature-256 is missing or is not the body's HMAC-SHA256 with "
                         "the app secret",
                         NULL);
        return;
    }
    struct meta_change *changes = calloc(META_CHANGES_MAX, sizeof *changes);
    int n = 0, ignored = 0;
    char err[160];
    enum meta_parse_status ps = changes == NULL
                                    ? META_PARSE_MALFORMED
                                    : meta_parse_delivery(body, len, changes, META_CHANGES_MAX, &n,
                                                          &ignored, err, sizeof err);
    free(body);
    if (ps != META_PARSE_OK) {
        free(changes);
        sources_count("meta", "malformed");
        log_warn("Meta delivery refused: not a delivery", LOG_FIELDS(LOG_S("error", err)));
        http_reply_error(req, 400, "malformed_delivery", err, NULL);
        return;
    }
    struct meta_record_job j = {changes, n, 0};
    int rc = n > 0 ? store_run(m->ctx.store, meta_record_job, &j) : 0;
    if (rc != 0) {
        free(changes);
        sources_count("meta", "unavailable");
        http_reply_error(req, 503, "unavailable", "the delivery could not be stored; retry", NULL);
        return;
    }
    for (int i = 0; i < n; i++) {
        log_info("Meta lead recorded", LOG_FIELDS(LOG_S("leadgenId", changes[i].leadgen_id),
                                                  LOG_S("formId", changes[i].form_id)));
    }
    if (n > j.added) {
        sources_count("meta", "duplicate");
    }
    free(changes);
    wake_kick(&m->wake);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddNumberToObject(o, "leadgen", n);
    cJSON_AddNumberToObject(o, "new", j.added);
    cJSON_AddNumberToObject(o, "ignored", ignored);
    http_reply_json(req, 200, o);
}

static bool operator(struct sources_meta *m, struct http_req *req)
{
    if (api_keys_check(m->ctx.keys, http_header(req, "X-API-Key"))) {
        return true;
    }
    http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
    return false;
}

static void meta_get_failed(struct http_req *req, void *arg)
{
    struct sources_meta *m = arg;
    if (!operator(m, req)) {
        return;
    }
    sqlite3 *rdb = NULL;
    sqlite3_stmt *st = NULL;
    if (store_open_reader(m->ctx.store, &rdb) != 0 ||
        sqlite3_prepare_v2(rdb,
                           "SELECT leadgen_id, page_id, form_id, tries, coalesce(last_error, ''),"
                           " received_ms, next_ms FROM meta_leads WHERE state = 'dead'"
                           " ORDER BY received_ms LIMIT 1000",
                           -1, &st, NULL) != SQLITE_OK) {
        sqlite3_close(rdb);
        http_reply_error(req, 503, "unavailable", "the store cannot be read; retry", NULL);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "failed");
    while (sqlite3_step(st) == SQLITE_ROW) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "leadgenId", (const char *)sqlite3_column_text(st, 0));
        cJSON_AddStringToObject(e, "pageId", (const char *)sqlite3_column_text(st, 1));
        cJSON_AddStringToObject(e, "formId", (const char *)sqlite3_column_text(st, 2));
        cJSON_AddNumberToObject(e, "tries", sqlite3_column_int(st, 3));
        cJSON_AddStringToObject(e, "lastError", (const char *)sqlite3_column_text(st, 4));
        cJSON_AddNumberToObject(e, "receivedMs", (double)sqlite3_column_int64(st, 5));
        cJSON_AddNumberToObject(e, "failedMs", (double)sqlite3_column_int64(st, 6));
        cJSON_AddItemToArray(list, e);
    }
    sqlite3_finalize(st);
    sqlite3_close(rdb);
    http_reply_json(req, 200, o);
}

static void meta_post_retry(struct http_req *req, void *arg)
{
    struct sources_meta *m = arg;
    if (!operator(m, req)) {
        return;
    }
    struct meta_retry_job j = {req->params[0], 0};
    if (!meta_id_ok(j.leadgen_id) || store_run(m->ctx.store, meta_retry_job, &j) != 0) {
        http_reply_error(req, 503, "unavailable", "the retry could not be stored; retry", NULL);
        return;
    }
    if (j.changed != 1) {
        http_reply_error(req, 404, "not_found", "no dead-lettered Meta lead with this leadgen id",
                         NULL);
        return;
    }
    wake_kick(&m->wake);
    log_info("Meta lead put back to fetch", LOG_FIELDS(LOG_S("leadgenId", j.leadgen_id)));
    static const char ok[] = "{\"success\":true}";
    http_reply(req, 202, "application/json", ok, sizeof ok - 1);
}

/* ---- settings, open, close ---- */

struct form_scan {
    struct sources_meta *m;
    char *err;
};

/* META_FORM_<FORM_ID>_MAP: a form's own questions. */
static void meta_scan_form(const char *var, void *arg)
{
    struct form_scan *fs = arg;
    struct sources_meta *m = fs->m;
    size_t n = strlen(var), pre = strlen("META_FORM_"), post = strlen("_MAP");
    if (fs->err[0] != '\0' || n <= pre + post || strcmp(var + n - post, "_MAP") != 0) {
        return;
    }
    char id[META_ID_MAX] = "", ebuf[160];
    if (n - pre - post < sizeof id) {
        memcpy(id, var + pre, n - pre - post);
    }
    if (!meta_id_ok(id) || m->nforms == META_FORMS_MAX) {
        snprintf(fs->err, CONFIG_ERR_MAX,
                 "%s: expected META_FORM_<numeric form id>_MAP (at most %d)", var, META_FORMS_MAX);
        return;
    }
    if (meta_field_map_parse(config_raw(var), &m->forms[m->nforms].map, ebuf, sizeof ebuf) != 0) {
        snprintf(fs->err, CONFIG_ERR_MAX, "%s: %s", var, ebuf);
        return;
    }
    snprintf(m->forms[m->nforms++].form_id, META_ID_MAX, "%s", id);
}

static int meta_maps(struct sources_meta *m, char err[CONFIG_ERR_MAX])
{
    char ebuf[160];
    const char *all = config_raw("META_FIELD_MAP");
    if (all != NULL && meta_field_map_parse(all, &m->all_map, ebuf, sizeof ebuf) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "META_FIELD_MAP: %s", ebuf);
        return -1;
    }
    m->has_all_map = all != NULL;
    err[0] = '\0';
    struct form_scan fs = {m, err};
    config_each_name("META_FORM_", meta_scan_form, &fs);
    return err[0] != '\0' ? -1 : 0;
}

static int meta_settings(struct sources_meta *m, char err[CONFIG_ERR_MAX])
{
    static const char *const creds[] = {"META_VERIFY_TOKEN", "META_APP_SECRET", "META_PAGE_TOKEN"};
    int set = 0;
    const char *missing = NULL;
    for (int i = 0; i < 3; i++) {
        if (config_raw(creds[i]) != NULL) {
            set++;
        } else if (missing == NULL) {
            missing = creds[i];
        }
    }
    if (set != 0 && set != 3) {
        snprintf(err, CONFIG_ERR_MAX,
                 "%s: missing while other Meta settings are set (META_VERIFY_TOKEN, "
                 "META_APP_SECRET, META_PAGE_TOKEN: all three or none)",
                 missing);
        return -1;
    }
    m->sandbox = set == 0;
    m->enabled = set == 3 || strcasecmp(config_str("SANDBOX", "auto"), "off") != 0;
    const char *verify = config_str("META_VERIFY_TOKEN", "sandbox-verify-token");
    const char *secret = config_str("META_APP_SECRET", "sandbox-app-secret");
    const char *page = config_str("META_PAGE_TOKEN", "sandbox-page-token");
    if (strlen(verify) >= sizeof m->verify_token || strlen(secret) >= sizeof m->app_secret ||
        strlen(page) > 500 || strpbrk(page, "\r\n") != NULL) {
        snprintf(err, CONFIG_ERR_MAX,
                 "META_VERIFY_TOKEN, META_APP_SECRET, META_PAGE_TOKEN: too long (255, 255 and 500 "
                 "characters at most) or a line break in the token");
        return -1;
    }
    snprintf(m->verify_token, sizeof m->verify_token, "%s", verify);
    m->app_secret_len = strlen(secret);
    memcpy(m->app_secret, secret, m->app_secret_len);
    snprintf(m->auth_header, sizeof m->auth_header, "Authorization: Bearer %s", page);
    char local[APP_URL_MAX];
    snprintf(local, sizeof local, "http://127.0.0.1:%d/sandbox/meta", m->ctx.app->port);
    snprintf(m->graph, sizeof m->graph, "%s",
             config_str("META_GRAPH_URL", m->sandbox ? local : "https://graph.facebook.com"));
    if (strncmp(m->graph, "http://", 7) != 0 && strncmp(m->graph, "https://", 8) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "META_GRAPH_URL: expected an http:// or https:// URL");
        return -1;
    }
    const char *ver = config_str("META_GRAPH_VERSION", "v21.0");
    unsigned major, minor;
    char tail;
    if (strlen(ver) >= sizeof m->version || sscanf(ver, "v%u.%u%c", &major, &minor, &tail) != 2) {
        snprintf(err, CONFIG_ERR_MAX, "META_GRAPH_VERSION: expected a Graph version such as v21.0");
        return -1;
    }
    snprintf(m->version, sizeof m->version, "%s", ver);
    if (config_int("META_MAX_TRIES", 8, 1, 1000, &m->max_tries, err) != 0 ||
        config_int("META_RETRY_BASE_MS", 2000, 10, 3600000, &m->base_ms, err) != 0 ||
        config_int("META_RETRY_MAX_MS", 600000, 10, 86400000, &m->max_ms, err) != 0 ||
        config_int("META_HTTP_TIMEOUT_MS", 10000, 100, 120000, &m->timeout_ms, err) != 0) {
        return -1;
    }
    return meta_maps(m, err);
}

void sources_meta_close(struct sources_meta *m)
{
    if (m == NULL) {
        return;
    }
    if (m->thread_started) {
        wake_stop(&m->wake);
        pthread_join(m->thread, NULL);
    }
    wake_fini(&m->wake);
    memset(m->app_secret, 0, sizeof m->app_secret);
    memset(m->auth_header, 0, sizeof m->auth_header);
    free(m);
}

int sources_meta_open(const struct sources_ctx *ctx, struct sources_meta **out,
                      char err[CONFIG_ERR_MAX])
{
    struct sources_meta *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, CONFIG_ERR_MAX, "sources: out of memory");
        return -1;
    }
    m->ctx = *ctx;
    atomic_init(&m->worker_ok, true);
    atomic_init(&m->token_refused, false);
    wake_init(&m->wake, 0);
    if (meta_settings(m, err) != 0) {
        goto fail;
    }
    if (store_exec_schema(ctx->store, meta_schema) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "ingest store: cannot add the meta_leads table");
        goto fail;
    }
    if (http_route(ctx->app->http, "GET", "/sources/meta", get_meta, m) != 0 ||
        http_route(ctx->app->http, "POST", "/sources/meta", post_meta, m) != 0 ||
        http_route(ctx->app->http, "GET", "/sources/meta/failed", meta_get_failed, m) != 0 ||
        http_route(ctx->app->http, "POST", "/sources/meta/failed/{leadgenId}/retry",
                   meta_post_retry, m) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "sources: cannot add the Meta routes");
        goto fail;
    }
    if (m->enabled) {
        if (pthread_create(&m->thread, NULL, meta_worker, m) != 0) {
            snprintf(err, CONFIG_ERR_MAX, "sources: cannot start the Meta worker");
            goto fail;
        }
        m->thread_started = true;
        if (http_degraded_check(ctx->app->http, "ingest: Meta worker", meta_worker_ok, m) != 0 ||
            http_degraded_check(ctx->app->http, "ingest: Meta page token", meta_token_ok, m) != 0) {
            snprintf(err, CONFIG_ERR_MAX, "sources: cannot add the Meta checks");
            goto fail;
        }
        log_info("Meta Lead Ads source ready",
                 LOG_FIELDS(LOG_S("graph", m->sandbox ? "sandbox" : "live"),
                            LOG_S("version", m->version)));
    }
    *out = m;
    return 0;
fail:
    sources_meta_close(m);
    return -1;
}
