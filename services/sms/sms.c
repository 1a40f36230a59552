/* sms: settings, the store and its bus handler, start and stop (the rest: sms_internal.h). */
#include "sms.h"
#include "sms_internal.h"
#include "bus_sub.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char sms_schema[] =
    "CREATE TABLE IF NOT EXISTS sms_leads("
    "  lead_id TEXT PRIMARY KEY, first_name TEXT NOT NULL, last_name TEXT NOT NULL,"
    "  company TEXT NOT NULL, phone_e164 TEXT NOT NULL, received_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS sms("
    "  lead_id TEXT PRIMARY KEY, call_id TEXT NOT NULL, after_status TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'delivered', 'failed',"
    "    'dnd', 'unknown', 'skipped')),"
    "  due_ms INTEGER NOT NULL, sid TEXT, status TEXT, detail TEXT, tries INTEGER NOT NULL"
    "  DEFAULT 0, created_ms INTEGER NOT NULL, sent_ms INTEGER, updated_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS sms_due ON sms(state, due_ms);"
    "CREATE UNIQUE INDEX IF NOT EXISTS sms_sid ON sms(sid) WHERE sid IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS sms_key("
    "  id INTEGER PRIMARY KEY CHECK (id = 1), key BLOB NOT NULL);";

/* LEAD_RETENTION_DAYS: a lead's name, company and number (ids, states and outcomes stay; a text
 * not sent by then never is: the sender needs the number). */
static const char sms_retention_sql[] =
    "UPDATE sms_leads SET first_name = '', last_name = '', company = '', phone_e164 = ''"
    " WHERE rowid IN (SELECT rowid FROM sms_leads WHERE received_ms < ?1 AND phone_e164 <> ''"
    " LIMIT ?2)";

/* Schema steps after version 1 (store.h, "Schema versions"); never edit `sms_schema` above. */
static const struct store_migration sms_migrations[] = {
    /* 2: the agent of the lead's last call with one, for {agent_name} (call.status `agent`) */
    {2, "ALTER TABLE sms_leads ADD COLUMN agent TEXT NOT NULL DEFAULT '';"},
};

static int sms_step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- bus handler (writer thread, inside the subscriber's transaction) ---- */

static int sms_on_lead(sqlite3 *db, const struct proto_lead_created *l)
{
    sqlite3_stmt *st;
    if (l->erased_ms != 0 || l->phone_e164[0] == '\0') {
        return 0; /* nothing to text */
    }
    if (sqlite3_prepare_v2(
            db,
            "INSERT OR IGNORE INTO sms_leads(lead_id, first_name, last_name, company,"
            " phone_e164, received_ms) VALUES(?1,?2,?3,?4,?5,?6)",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, l->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, l->first_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, l->last_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, l->company, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, l->phone_e164, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, l->received_ms);
    return sms_step_done(st);
}

/* A final attempt with an agent: {agent_name} of the lead's text. */
static int sms_on_status(sqlite3 *db, const struct proto_call_status *c)
{
    if (!c->final || c->agent[0] == '\0') {
        return 0; /* no agent (IVR flow, one agent number, or a dialer before agents) */
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO sms_leads(lead_id, first_name, last_name, company,"
                           " phone_e164, received_ms, agent) VALUES(?1, '', '', '', '', 0, ?2)"
                           " ON CONFLICT(lead_id) DO UPDATE SET agent = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, c->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->agent, -1, SQLITE_STATIC);
    return sms_step_done(st);
}

/* A closed call that missed the lead: one row per lead (INSERT OR IGNORE: at most one SMS). */
static int sms_on_closed(sqlite3 *db, struct sms *m, const struct proto_call_closed *c, int64_t ts)
{
    if (!sms_on_match(&m->on, c->status)) {
        return 0;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            db,
            "INSERT OR IGNORE INTO sms(lead_id, call_id, after_status, state, due_ms,"
            " created_ms, updated_ms) VALUES(?1,?2,?3,'pending',?4,?5,?5)",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, c->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, ts); /* not before; the sender applies the calling hours */
    sqlite3_bind_int64(st, 5, clock_now_ms());
    if (sms_step_done(st) != 0) {
        return -1;
    }
    if (sqlite3_changes(db) > 0) {
        wake_mark(&m->wake);
        log_info("SMS follow-up queued",
                 LOG_FIELDS(LOG_S("leadId", c->lead_id), LOG_S("after", c->status)));
    }
    return 0;
}

/* lead.erased: its personal data goes, and a text not yet sent is never sent. */
static int sms_on_erased(sqlite3 *db, const struct proto_lead_erased *e)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "DELETE FROM sms_leads WHERE lead_id = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, e->lead_id, -1, SQLITE_STATIC);
    if (sms_step_done(st) != 0 ||
        sqlite3_prepare_v2(
            db,
            "UPDATE sms SET state = 'skipped', detail = 'lead erased', updated_ms = ?2"
            " WHERE lead_id = ?1 AND state = 'pending'",
            -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, e->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, clock_now_ms());
    return sms_step_done(st);
}

static int sms_on_event(sqlite3 *db, const struct proto_event *ev, void *arg)
{
    struct sms *m = arg;
    switch (ev->topic) {
    case PROTO_LEAD_CREATED:
        return sms_on_lead(db, &ev->data.lead_created);
    case PROTO_CALL_CLOSED:
        return sms_on_closed(db, m, &ev->data.call_closed, ev->ts);
    case PROTO_LEAD_ERASED:
        return sms_on_erased(db, &ev->data.lead_erased);
    case PROTO_CALL_STATUS:
        return sms_on_status(db, &ev->data.call_status);
    default:
        return 0;
    }
}

/* The delivery callback's HMAC key: created once, random, kept in the store. */
static int sms_key_job(sqlite3 *db, void *arg)
{
    struct sms *m = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT key FROM sms_key", -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    bool have = false;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == (int)sizeof m->cb_key) {
        memcpy(m->cb_key, sqlite3_column_blob(st, 0), sizeof m->cb_key);
        have = true;
    }
    sqlite3_finalize(st);
    if (have) {
        return 0;
    }
    if (getrandom(m->cb_key, sizeof m->cb_key, 0) != (ssize_t)sizeof m->cb_key ||
        sqlite3_prepare_v2(db, "INSERT INTO sms_key(id, key) VALUES(1, ?1)", -1, &st, NULL) !=
            SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_blob(st, 1, m->cb_key, sizeof m->cb_key, SQLITE_STATIC);
    return sms_step_done(st);
}

static void sms_collect(void *arg)
{
    struct sms *m = arg;
    sqlite3 *db;
    if (store_open_reader(m->store, &db) != 0) {
        return;
    }
    for (int i = 0; i < SMS_NSTATES; i++) {
        sqlite3_stmt *st;
        char labels[48];
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sms WHERE state = ?1", -1, &st, NULL) !=
            SQLITE_OK) {
            break;
        }
        sqlite3_bind_text(st, 1, sms_state_names[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            snprintf(labels, sizeof labels, "state=\"%s\"", sms_state_names[i]);
            metrics_gauge_set("leadbus_sms", "SMS follow-ups by state", labels,
                              (double)sqlite3_column_int64(st, 0));
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

/* Degraded, not failing, while a send's outcome is unknown: someone should look (GET /sms). */
static bool sms_no_unknown(void *arg)
{
    struct sms *m = arg;
    return atomic_load(&m->unknown) == 0;
}

static void sms_stop(void *state)
{
    struct sms *m = state;
    if (m == NULL) {
        return;
    }
    if (m->store != NULL) {
        metrics_collector_remove(sms_collect, m);
    }
    retention_stop(m->retention);
    bus_sub_close(m->sub);
    wake_stop(&m->wake);
    if (m->started) {
        pthread_join(m->thread, NULL);
    }
    if (m->curl != NULL) {
        curl_easy_cleanup(m->curl);
    }
    store_close(m->store);
    call_window_free(&m->window);
    explicit_bzero(m->key, sizeof m->key);
    explicit_bzero(m->token, sizeof m->token);
    explicit_bzero(m->cb_key, sizeof m->cb_key);
    wake_fini(&m->wake);
    free(m);
}

/* A setting SMS_ON makes mandatory. */
static int sms_required(const char *name, char *out, size_t size, char err[CONFIG_ERR_MAX])
{
    const char *v = config_str(name, "");
    if (v[0] == '\0' || strlen(v) >= size) {
        snprintf(err, CONFIG_ERR_MAX, "%s: required (at most %zu characters) when SMS_ON is set",
                 name, size - 1);
        return -1;
    }
    snprintf(out, size, "%s", v);
    return 0;
}

static int sms_read_account(struct app *app, struct sms *m, char err[CONFIG_ERR_MAX])
{
    struct upstream up;
    int64_t timeout;
    if (upstream_resolve(app, &up, err) != 0) {
        return -1;
    }
    snprintf(m->base, sizeof m->base, "%s", up.exotel_base);
    snprintf(m->sid, sizeof m->sid, "%s", up.exotel_sid);
    snprintf(m->key, sizeof m->key, "%s", up.exotel_key);
    snprintf(m->token, sizeof m->token, "%s", up.exotel_token);
    explicit_bzero(&up, sizeof up);
    char port_base[64];
    snprintf(port_base, sizeof port_base, "http://127.0.0.1:%d", app->port);
    snprintf(m->public_base, sizeof m->public_base, "%s", config_str("PUBLIC_BASE_URL", port_base));
    size_t n = strlen(m->public_base);
    if (n > 0 && m->public_base[n - 1] == '/') {
        m->public_base[n - 1] = '\0';
    }
    if (config_int("EXOTEL_HTTP_TIMEOUT_MS", 30000, 100, 120000, &timeout, err) != 0) {
        return -1;
    }
    m->timeout_ms = (long)timeout;
    return 0;
}

static int sms_read_settings(struct app *app, struct sms *m, char err[CONFIG_ERR_MAX])
{
    static const char *const types[] = {"transactional", "transactional_opt_in", NULL};
    int type;
    char probe[2048];
    struct sms_vars none = {0};
    if (sms_required("SMS_TEMPLATE", m->tmpl, sizeof m->tmpl, err) != 0 ||
        sms_required("EXOTEL_SMS_SENDER", m->sender, sizeof m->sender, err) != 0 ||
        sms_required("EXOTEL_DLT_ENTITY_ID", m->dlt_entity, sizeof m->dlt_entity, err) != 0 ||
        sms_required("EXOTEL_DLT_TEMPLATE_ID", m->dlt_template, sizeof m->dlt_template, err) != 0 ||
        config_enum("EXOTEL_SMS_TYPE", "transactional", types, &type, err) != 0) {
        return -1;
    }
    if (sms_render(m->tmpl, &none, probe, sizeof probe) != 0) {
        snprintf(err, CONFIG_ERR_MAX,
                 "SMS_TEMPLATE: unknown {placeholder} or text over 2000 characters (known: "
                 "{first_name}, {last_name}, {agent_name}, {company})");
        return -1;
    }
    snprintf(m->sms_type, sizeof m->sms_type, "%s", types[type]);
    snprintf(m->agent_fallback, sizeof m->agent_fallback, "%s",
             config_str("SMS_AGENT_NAME", "our team"));
    if (call_window_parse(config_str("CALL_HOURS", "09:00-21:00"), config_str("CALL_DAYS", "all"),
                          config_str("CALL_TIMEZONE", "Asia/Kolkata"), &m->window, err) != 0) {
        return -1;
    }
    return sms_read_account(app, m, err);
}

static int sms_open(struct app *app, struct sms *m, char err[CONFIG_ERR_MAX])
{
    struct app_sources *src = calloc(1, sizeof *src);
    int rc = -1;
    m->keep[0] = (struct retention_rule){"sms_leads", sms_retention_sql, 0};
    if (src == NULL || app_sources_add(app, src, "ingest", err) < 0 ||
        app_sources_add(app, src, "call-scheduler", err) < 0 ||
        app_sources_add(app, src, "dialer", err) < 0) {
        goto out;
    }
    const char *topics[] = {"lead.created", "lead.erased", "call.closed", "call.status"};
    struct bus_sub_opts so = {.name = "sms",
                              .sources = src->src,
                              .nsources = src->n,
                              .topics = topics,
                              .ntopics = 4,
                              .handler = sms_on_event,
                              .arg = m,
                              .discover = app_sources_discover(src)};
    if (app_store_open_versioned(app, "sms", sms_schema, sms_migrations,
                                 sizeof sms_migrations / sizeof sms_migrations[0],
                                 &m->store) != 0 ||
        store_run(m->store, sms_key_job, m) != 0 || store_run(m->store, sms_recover, m) != 0 ||
        retention_days("LEAD_RETENTION_DAYS", &m->keep[0].days, err) != 0 ||
        retention_start(m->store, m->keep, 1, &m->retention) != 0 ||
        store_on_commit(m->store, wake_on_commit, &m->wake) != 0 ||
        (m->curl = curl_easy_init()) == NULL ||
        pthread_create(&m->thread, NULL, sms_sender_main, m) != 0) {
        goto out;
    }
    m->started = true;
    so.store = m->store;
    if (bus_sub_open(&so, &m->sub) != 0 ||
        http_route(app->http, "POST", "/exotel/sms/callback", sms_post_callback, m) != 0 ||
        http_ready_check(app->http, bus_sub_streams_check(m->sub), bus_sub_streams_ok, m->sub) !=
            0 ||
        http_degraded_check(app->http, "sms: a send's outcome is unknown", sms_no_unknown, m) !=
            0 ||
        metrics_collector_add(sms_collect, m) != 0) {
        goto out;
    }
    rc = 0;
out:
    free(src);
    return rc;
}

static int sms_start(struct app *app, void **state, char err[CONFIG_ERR_MAX])
{
    struct sms *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return -1;
    }
    wake_init(&m->wake, 60000);
    if (sms_on_parse(config_str("SMS_ON", ""), &m->on, err, CONFIG_ERR_MAX) != 0) {
        sms_stop(m);
        return -1;
    }
    if (m->on.n == 0) {
        *state = m; /* off: nothing opened */
        return 0;
    }
    if (sms_read_settings(app, m, err) != 0 || sms_open(app, m, err) != 0) {
        sms_stop(m);
        return -1;
    }
    log_info("SMS follow-up ENABLED",
             LOG_FIELDS(LOG_S("on", config_str("SMS_ON", "")), LOG_S("sender", m->sender)));
    *state = m;
    return 0;
}

const struct module sms_module = {"sms", sms_start, sms_stop};
