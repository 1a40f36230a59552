/* ingest: the lead intake service. */
#include "ingest.h"
#include "api_key.h"
#include "bus_pub.h"
#include "clock.h"
#include "form_access.h"
#include "form_guard.h"
#include "lead_parse.h"
#include "log.h"
#include "metrics.h"
#include "retention.h"
#include "phone.h"
#include "ingest_int.h"
#include "lead_intake.h"
#include "sources.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define IDEMPOTENCY_TTL_MS (24LL * 3600 * 1000)
#define IDEMPOTENCY_KEY_MAX 200

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS leads("
    "  id TEXT PRIMARY KEY, received_ms INTEGER NOT NULL, first_name TEXT, last_name TEXT NOT NULL,"
    "  email TEXT, phone_raw TEXT, phone_e164 TEXT, phone_dial TEXT, phone_status TEXT NOT NULL,"
    "  source TEXT, company TEXT, city TEXT, notes TEXT, extra TEXT);"
    "CREATE TABLE IF NOT EXISTS idempotency("
    "  key TEXT PRIMARY KEY, body_hash INTEGER NOT NULL, status INTEGER NOT NULL,"
    "  response TEXT NOT NULL, created_ms INTEGER NOT NULL);";

/* Schema steps after version 1 (store.h, "Schema versions"); never edit `schema` above. */
static const struct store_migration migrations[] = {
    /* 2: when a lead was erased on request (its personal fields are then NULL) */
    {2, "ALTER TABLE leads ADD COLUMN erased_ms INTEGER;"},
};

/* ---- writer thread ---- */

static int prepare(struct ingest *ing, sqlite3 *db)
{
    if (ing->db == db) {
        return 0;
    }
    const struct {
        sqlite3_stmt **st;
        const char *sql;
    } stmts[] = {
        {&ing->insert_lead,
         "INSERT INTO leads(id, received_ms, first_name, last_name, email, phone_raw, phone_e164,"
         " phone_dial, phone_status, source, company, city, notes, extra)"
         " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)"},
        {&ing->find_idem, "SELECT body_hash, status, response FROM idempotency"
                          " WHERE key = ?1 AND created_ms >= ?2"},
        {&ing->insert_idem, "INSERT OR REPLACE INTO idempotency(key, body_hash, status, response,"
                            " created_ms) VALUES(?1,?2,?3,?4,?5)"},
        {&ing->prune_idem, "DELETE FROM idempotency WHERE created_ms < ?1"},
    };
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        if (sqlite3_prepare_v3(db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, stmts[i].st,
                               NULL) != SQLITE_OK) {
            log_error("Cannot prepare ingest statement",
                      LOG_FIELDS(LOG_S("error", sqlite3_errmsg(db))));
            return -1;
        }
    }
    ing->db = db;
    return 0;
}

static int finalize_job(sqlite3 *db, void *arg)
{
    (void)db;
    struct ingest *ing = arg;
    sqlite3_finalize(ing->insert_lead);
    sqlite3_finalize(ing->find_idem);
    sqlite3_finalize(ing->insert_idem);
    sqlite3_finalize(ing->prune_idem);
    ing->db = NULL;
    return 0;
}

struct accept_job {
    struct ingest *ing;
    const struct proto_lead_created *lead;
    const char *idem_key; /* NULL without Idempotency-Key */
    int64_t body_hash;
    const char *response; /* the 202 answer for this lead */
    /* out: set when an earlier answer is returned instead */
    int replay_status;
    char *replay_response;
};

enum { ACCEPTED = 0, REPLAYED = 1, KEY_REUSED = 2 };

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The lead and its lead.created, inside the caller's transaction (POST /leads and the sources). */
static int store_lead(struct ingest *ing, sqlite3 *db, const struct proto_lead_created *l)
{
    sqlite3_stmt *st = ing->insert_lead;
    const char *text[] = {l->lead_id,   NULL,          l->first_name, l->last_name,    l->email,
                          l->phone_raw, l->phone_e164, l->phone_dial, l->phone_status, l->source,
                          l->company,   l->city,       l->notes,      l->extra};
    for (int i = 0; i < 14; i++) {
        if (i == 1) {
            sqlite3_bind_int64(st, 2, l->received_ms);
        } else {
            sqlite3_bind_text(st, i + 1, text[i], -1, SQLITE_STATIC);
        }
    }
    if (step_done(st) != 0) {
        log_error("Cannot store lead",
                  LOG_FIELDS(LOG_S("leadId", l->lead_id), LOG_S("error", sqlite3_errmsg(db))));
        return -1;
    }
    if (bus_pub_append(ing->pub, db, PROTO_LEAD_CREATED, l, NULL) != 0) {
        return -1;
    }
    return 0;
}

static int ingest_commit_lead(void *arg, sqlite3 *db, const struct proto_lead_created *l)
{
    struct ingest *ing = arg;
    return prepare(ing, db) != 0 ? -1 : store_lead(ing, db, l);
}

static int accept_job(sqlite3 *db, void *arg)
{
    struct accept_job *j = arg;
    struct ingest *ing = j->ing;
    if (prepare(ing, db) != 0) {
        return -1;
    }
    int64_t now = clock_now_ms();
    if (now >= ing->next_prune_ms) {
        sqlite3_bind_int64(ing->prune_idem, 1, now - IDEMPOTENCY_TTL_MS);
        step_done(ing->prune_idem);
        ing->next_prune_ms = now + 60 * 1000;
    }
    if (j->idem_key != NULL) {
        sqlite3_stmt *f = ing->find_idem;
        sqlite3_bind_text(f, 1, j->idem_key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(f, 2, now - IDEMPOTENCY_TTL_MS);
        int rc = ACCEPTED;
        if (sqlite3_step(f) == SQLITE_ROW) {
            if (sqlite3_column_int64(f, 0) != j->body_hash) {
                rc = KEY_REUSED;
            } else {
                j->replay_status = sqlite3_column_int(f, 1);
                j->replay_response = strdup((const char *)sqlite3_column_text(f, 2));
                rc = j->replay_response != NULL ? REPLAYED : -1;
            }
        }
        sqlite3_reset(f);
        sqlite3_clear_bindings(f);
        if (rc != ACCEPTED) {
            return rc;
        }
    }
    if (store_lead(ing, db, j->lead) != 0) {
        return -1;
    }
    if (j->idem_key != NULL) {
        sqlite3_stmt *ins = ing->insert_idem;
        sqlite3_bind_text(ins, 1, j->idem_key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, j->body_hash);
        sqlite3_bind_int(ins, 3, 202);
        sqlite3_bind_text(ins, 4, j->response, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, now);
        if (step_done(ins) != 0) {
            return -1;
        }
    }
    return ACCEPTED;
}

/* ---- HTTP thread ---- */

static int64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    }
    return (int64_t)(h >> 1);
}

static bool is_json(const char *ctype)
{
    if (ctype == NULL) {
        return false;
    }
    while (*ctype == ' ') {
        ctype++;
    }
    size_t n = strcspn(ctype, "; ");
    return n == 16 && strncasecmp(ctype, "application/json", 16) == 0;
}

static void count_form(const char *result)
{
    char labels[48];
    snprintf(labels, sizeof labels, "result=\"%s\"", result);
    metrics_counter_add("leadbus_form_posts_total",
                        "POST /leads with a form key, by result (accepted, rate_limited, "
                        "wrong_origin, honeypot)",
                        labels, 1);
}

/*
 * An operator key, or a form key from its origin within its limits. Answers the
 * refusal itself: 401 without a key, 403 for a form key bound to another
 * origin, 429 with Retry-After past FORM_RATE_LIMIT.
 */
static bool authorize(struct ingest *ing, struct http_req *req)
{
    if (api_keys_check(ing->keys, http_header(req, "X-API-Key"))) {
        return true;
    }
    const struct form_key *fk = req->form_key;
    if (fk == NULL) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
        return false;
    }
    const char *origin = http_header(req, "Origin");
    if (fk->origin[0] != '\0' && (origin == NULL || strcmp(origin, fk->origin) != 0)) {
        count_form("wrong_origin");
        http_reply_error(req, 403, "origin_not_allowed",
                         "this form key belongs to another website's origin", NULL);
        return false;
    }
    char client[FORM_GUARD_ADDR_MAX];
    form_guard_client(ing->guard, http_peer(req), http_header(req, "X-Forwarded-For"), client);
    int64_t wait = form_guard_admit(ing->guard, client, fk->id, clock_mono_ms());
    if (wait > 0) {
        count_form("rate_limited");
        char extra[48];
        snprintf(extra, sizeof extra, "Retry-After: %lld\r\n", (long long)((wait + 999) / 1000));
        cJSON *o = cJSON_CreateObject(), *e = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "success", false);
        cJSON_AddStringToObject(e, "code", "rate_limited");
        cJSON_AddStringToObject(e, "message",
                                "too many leads from this address or form key "
                                "(FORM_RATE_LIMIT); retry after Retry-After seconds");
        cJSON_AddItemToObject(o, "error", e);
        http_reply_json_ex(req, 429, extra, o);
        return false;
    }
    return true;
}

/* A bot filled the form's hidden field: it sees the usual answer, nothing is kept. */
static void reply_honeypot(struct http_req *req)
{
    count_form("honeypot");
    char id[40], answer[128];
    lead_intake_new_id(id, sizeof id);
    snprintf(answer, sizeof answer, "{\"success\":true,\"leadId\":\"%s\",\"warnings\":[]}", id);
    http_reply(req, 202, "application/json", answer, strlen(answer));
    log_info("Honeypot field filled; lead dropped", LOG_FIELDS(LOG_S("key", req->form_key->id)));
}

/* The lead stored with its event (or the first answer to its Idempotency-Key), and answered. */
static void accept_lead(struct ingest *ing, struct http_req *req, struct lead_parse_result *r,
                        const char *idem, int64_t body_hash)
{
    char *answer = lead_intake_accepted_json(r->lead.lead_id, false, r);
    struct accept_job j = {
        .ing = ing, .lead = &r->lead, .idem_key = idem, .body_hash = body_hash, .response = answer};
    int rc = answer != NULL ? store_run(ing->store, accept_job, &j) : -1;
    if (rc == ACCEPTED) {
        http_reply(req, 202, "application/json", answer, strlen(answer));
        if (req->form_key != NULL) {
            count_form("accepted");
        }
        log_info("Lead accepted",
                 LOG_FIELDS(LOG_S("leadId", r->lead.lead_id),
                            LOG_PHONE("phoneNumber", r->lead.phone_e164),
                            LOG_S("phoneStatus", r->lead.phone_status),
                            LOG_S("source", r->lead.source), LOG_S("via", r->lead.via)));
    } else if (rc == REPLAYED) {
        http_reply(req, j.replay_status, "application/json", j.replay_response,
                   strlen(j.replay_response));
    } else if (rc == KEY_REUSED) {
        http_reply_error(req, 422, "idempotency_key_reused",
                         "this Idempotency-Key was used with a different body", NULL);
    } else {
        http_reply_error(req, 503, "unavailable", "the lead could not be stored; retry", NULL);
    }
    free(j.replay_response);
    free(answer);
}

static void post_leads(struct http_req *req, void *arg)
{
    struct ingest *ing = arg;

    if (!authorize(ing, req)) {
        return;
    }
    const char *idem = http_header(req, "Idempotency-Key");
    if (idem != NULL && (idem[0] == '\0' || strlen(idem) > IDEMPOTENCY_KEY_MAX)) {
        http_reply_error(req, 400, "bad_idempotency_key",
                         "Idempotency-Key must be 1 to 200 characters", NULL);
        return;
    }
    if (!is_json(http_header(req, "Content-Type"))) {
        http_reply_error(req, 415, "unsupported_media_type",
                         "Content-Type must be application/json", NULL);
        return;
    }
    char *body;
    size_t len;
    if (http_read_body(req, ing->max_body, &body, &len) != 0) {
        return;
    }
    if (req->form_key != NULL && form_guard_honeypot(ing->guard, body, len)) {
        reply_honeypot(req);
        free(body);
        return;
    }
    struct lead_parse_result *r = lead_intake_result_alloc(req);
    if (r == NULL) {
        free(body);
        return;
    }
    enum lead_parse_status ps = lead_parse(body, len, ing->region, r);
    if (!lead_intake_refused(req, ps, r)) {
        lead_intake_stamp(&r->lead, NULL, req->form_key != NULL ? req->form_key->id : "api");
        snprintf(r->lead.origin, sizeof r->lead.origin, "%s",
                 req->form_key != NULL && req->cors_origin != NULL ? req->cors_origin : "");
        accept_lead(ing, req, r, idem, fnv1a(body, len));
    }
    lead_parse_free(r);
    free(r);
    free(body);
}

/* services/ingest/form.js, embedded at build time: the drop-in form script. */
extern const unsigned char ingest_form_js[];
extern const unsigned int ingest_form_js_len;

static void get_form_js(struct http_req *req, void *arg)
{
    (void)arg;
    http_reply(req, 200, "text/javascript; charset=utf-8", (const char *)ingest_form_js,
               ingest_form_js_len);
}

static bool ready(void *arg)
{
    struct ingest *ing = arg;
    return ing->store != NULL && ing->pub != NULL;
}

/* ---- module ---- */

/* LEAD_RETENTION_DAYS: a lead's personal fields, as erasure blanks them (it stays a lead). */
static const char retention_leads_sql[] =
    "UPDATE leads SET first_name = NULL, last_name = '', email = NULL, phone_raw = NULL,"
    " phone_e164 = NULL, phone_dial = NULL, notes = NULL, extra = NULL WHERE rowid IN (SELECT rowid"
    " FROM leads WHERE received_ms < ?1 AND last_name <> '' AND erased_ms IS NULL LIMIT ?2)";

static void ingest_stop(void *state)
{
    struct ingest *ing = state;
    if (ing == NULL) {
        return;
    }
    retention_stop(ing->retention);
    sources_close(ing->sources); /* its worker writes through the store: first */
    if (ing->store != NULL) {
        store_run(ing->store, finalize_job, ing);
    }
    bus_pub_close(ing->pub);
    store_close(ing->store);
    api_keys_free(ing->keys);
    form_guard_close(ing->guard);
    free(ing);
}

static int ingest_start(struct app *app, void **state, char err[CONFIG_ERR_MAX])
{
    int64_t max_body;
    if (config_int("MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024, &max_body, err) != 0) {
        return -1;
    }
    const char *region = config_str("DEFAULT_COUNTRY", "IN");
    if (strlen(region) != 2 || !phone_region_known(region)) {
        snprintf(err, CONFIG_ERR_MAX,
                 "DEFAULT_COUNTRY: expected a two-letter region code such as IN");
        return -1;
    }
    struct ingest *ing = calloc(1, sizeof *ing);
    if (ing == NULL) {
        return -1;
    }
    ing->max_body = (size_t)max_body;
    ing->keep[0] = (struct retention_rule){"leads", retention_leads_sql, 0};
    snprintf(ing->region, sizeof ing->region, "%s", region);
    char pub[APP_URL_MAX], replay[APP_URL_MAX];
    app_bus_endpoints(app, "ingest", pub, replay);
    if (strchr(pub, ',') != NULL || strchr(replay, ',') != NULL) {
        snprintf(err, CONFIG_ERR_MAX,
                 "BUS_INGEST_PUB, BUS_INGEST_REPLAY: a replica listens on one "
                 "URL each (lists are for the subscribers' side)");
        free(ing);
        return -1;
    }
    /* Each ingest replica publishes its own stream (BUS_INGEST_NAME: ingest-0, ingest-1, …). */
    struct bus_pub_opts po = {.name = app_bus_name("ingest"),
                              .pub_url = pub,
                              .replay_url = replay,
                              .retention_days = app->retention_days};
    if (api_keys_load(app->data_dir, &ing->keys, err) != 0 ||
        form_guard_open(&ing->guard, err) != 0 ||
        app_store_open_versioned(app, "ingest", schema, migrations,
                                 sizeof migrations / sizeof migrations[0], &ing->store) != 0 ||
        (po.store = ing->store, bus_pub_open(&po, &ing->pub)) != 0 ||
        retention_days("LEAD_RETENTION_DAYS", &ing->keep[0].days, err) != 0 ||
        retention_start(ing->store, ing->keep, 1, &ing->retention) != 0 ||
        http_route_form(app->http, "POST", "/leads", post_leads, ing) != 0 ||
        http_route(app->http, "GET", "/form.js", get_form_js, ing) != 0 ||
        http_route(app->http, "DELETE", "/leads/{leadId}", erasure_delete_lead, ing) != 0 ||
        http_route(app->http, "DELETE", "/leads", erasure_delete_person, ing) != 0 ||
        http_ready_check(app->http, "ingest", ready, ing) != 0) {
        ingest_stop(ing);
        return -1;
    }
    struct sources_ctx sc = {.app = app,
                             .store = ing->store,
                             .keys = ing->keys,
                             .region = ing->region,
                             .max_body = ing->max_body,
                             .commit_lead = ingest_commit_lead,
                             .ing = ing};
    if (sources_open(&sc, &ing->sources, err) != 0) {
        ingest_stop(ing);
        return -1;
    }
    *state = ing;
    return 0;
}

const struct module ingest_module = {"ingest", ingest_start, ingest_stop};
