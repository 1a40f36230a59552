/* dialer: settings, the callback secret, start and stop (the rest: dialer_internal.h). */
#include "dialer.h"
#include "dialer_internal.h"
#include "clock.h"
#include "api_key.h"
#include "log.h"
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

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

/* Schema steps after version 1 (store.h, "Schema versions"); never edit `schema` above. */
static const struct store_migration migrations[] = {
    /* 2: the attempt state machine (attempts.c) checked by the store: a table rebuild, as
     * SQLite adds a CHECK no other way (sqlite.org/lang_altertable.html, "other kinds of
     * table schema changes") */
    {2, "CREATE TABLE attempts_v2("
        "  call_id TEXT NOT NULL, attempt INTEGER NOT NULL, lead_id TEXT NOT NULL,"
        "  phone_e164 TEXT NOT NULL, phone_dial TEXT NOT NULL, due_ms INTEGER NOT NULL,"
        "  state TEXT NOT NULL"
        "    CHECK (state IN ('queued', 'dialing', 'initiated', 'unknown', 'final')),"
        "  sid TEXT, status TEXT, duration_s INTEGER NOT NULL DEFAULT 0,"
        "  recording TEXT, detail TEXT, tries INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL,"
        "  dialed_ms INTEGER, queued_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
        "  PRIMARY KEY(call_id, attempt));"
        "INSERT INTO attempts_v2 SELECT call_id, attempt, lead_id, phone_e164, phone_dial, due_ms,"
        "  state, sid, status, duration_s, recording, detail, tries, next_ms, dialed_ms, queued_ms,"
        "  updated_ms FROM attempts;"
        "DROP TABLE attempts;"
        "ALTER TABLE attempts_v2 RENAME TO attempts;"
        "CREATE INDEX attempts_work ON attempts(state, next_ms);"
        "CREATE UNIQUE INDEX attempts_sid ON attempts(sid) WHERE sid IS NOT NULL;"
        "CREATE INDEX attempts_dialed ON attempts(dialed_ms);"},
    /* 3: the agent pool (agents.c draws its state machine): who each attempt rang first, how
     * that leg ended, and each agent's state, kept so a kill -9 neither frees nor double-books
     * an agent */
    {3, "ALTER TABLE attempts ADD COLUMN agent TEXT;"
        "ALTER TABLE attempts ADD COLUMN agent_number TEXT;"
        "ALTER TABLE attempts ADD COLUMN agent_leg TEXT;"
        "CREATE INDEX attempts_agent ON attempts(agent, dialed_ms) WHERE agent IS NOT NULL;"
        "CREATE TABLE agents("
        "  name TEXT PRIMARY KEY, number TEXT NOT NULL,"
        "  state TEXT NOT NULL DEFAULT 'free' CHECK (state IN ('free', 'busy')),"
        "  paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),"
        "  call_id TEXT, attempt INTEGER, since_ms INTEGER NOT NULL DEFAULT 0,"
        "  idle_since_ms INTEGER NOT NULL DEFAULT 0,"
        "  CHECK ((state = 'busy') = (call_id IS NOT NULL)));"
        "CREATE UNIQUE INDEX agents_call ON agents(call_id, attempt) WHERE call_id IS NOT NULL;"
        "CREATE TABLE agent_cursor(id INTEGER PRIMARY KEY CHECK (id = 1), next INTEGER NOT NULL);"},
};

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
    tz_close(d->call_tz);
    api_keys_free(d->keys);
    free(d->agents);
    rate_limit_free(&d->rl);
    pthread_mutex_destroy(&d->rl_lock);
    explicit_bzero(&d->acct, sizeof d->acct);
    explicit_bzero(d->cb_key, sizeof d->cb_key);
    explicit_bzero(d->legacy_token, sizeof d->legacy_token);
    wake_fini(&d->wake);
    free(d);
}

/* Integer settings, read through one table (redis config.c style): name, default, range. */
struct int_setting {
    const char *name;
    int64_t def, min, max; /* def < 0: computed (EXOTEL_RECONCILE_WINDOW_MS) */
};

enum {
    SET_RING,
    SET_LIMIT,
    SET_HTTP_TIMEOUT,
    SET_WORKERS,
    SET_GRACE,
    SET_RECONCILE_DELAY,
    SET_RECONCILE_WINDOW,
    SET_AGENT_WAIT,
    SET_INTS
};

static const struct int_setting int_settings[SET_INTS] = {
    [SET_RING] = {"EXOTEL_RING_TIMEOUT_S", 45, 5, 60},
    [SET_LIMIT] = {"EXOTEL_TIME_LIMIT_S", 600, 10, 14400},
    [SET_HTTP_TIMEOUT] = {"EXOTEL_HTTP_TIMEOUT_MS", 30000, 100, 120000},
    [SET_WORKERS] = {"EXOTEL_CONCURRENCY", 8, 1, 64},
    [SET_GRACE] = {"EXOTEL_CALLBACK_GRACE_MS", 600000, 100, 24LL * 3600 * 1000},
    [SET_RECONCILE_DELAY] = {"EXOTEL_RECONCILE_DELAY_MS", 60000, 100, 3600000},
    [SET_RECONCILE_WINDOW] = {"EXOTEL_RECONCILE_WINDOW_MS", -1, 100, 24LL * 3600 * 1000},
    [SET_AGENT_WAIT] = {"AGENT_WAIT_MAX_MS", 120000, 0, 24LL * 3600 * 1000},
};

static int read_ints(int64_t v[SET_INTS], char err[CONFIG_ERR_MAX])
{
    for (int i = 0; i < SET_INTS; i++) {
        const struct int_setting *s = &int_settings[i];
        int64_t def = s->def >= 0 ? s->def : (v[SET_RING] + v[SET_LIMIT]) * 1000 + 120000;
        if (config_int(s->name, def, s->min, s->max, &v[i], err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Numbers and the flow: the sandbox takes any well-formed numbers; live needs the operator's. */
static int read_numbers(struct dialer *d, char err[CONFIG_ERR_MAX])
{
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
    if (app_id == NULL && d->agent[0] == '\0' && d->nagents == 0) {
        snprintf(err, CONFIG_ERR_MAX,
                 "EXOTEL_AGENT_NUMBER: required when EXOTEL_APP_ID is not "
                 "set (the agent Exotel rings before the lead)");
        return -1;
    }
    snprintf(d->call_type, sizeof d->call_type, "%s", config_str("EXOTEL_CALL_TYPE", "trans"));
    return 0;
}

/* PUBLIC_BASE_URL and the static callback token of before. */
static int read_callback(struct app *app, struct dialer *d, char err[CONFIG_ERR_MAX])
{
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
    return 0;
}

/* A whole small file into *out (malloc'd, terminated); -1 if unreadable or over max bytes. */
static int read_small_file(const char *path, long max, char **out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    char *buf = malloc((size_t)max + 1);
    size_t n = buf != NULL ? fread(buf, 1, (size_t)max + 1, f) : 0;
    bool bad = buf == NULL || ferror(f) || n > (size_t)max;
    fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* AGENTS, or AGENTS_FILE (one Name:number a line), and AGENT_STRATEGY. */
static int read_agents(struct dialer *d, char err[CONFIG_ERR_MAX])
{
    const char *spec = config_str("AGENTS", NULL), *file = config_str("AGENTS_FILE", NULL);
    int strategy = 0;
    if (config_enum("AGENT_STRATEGY", "round-robin", agent_strategy_name, &strategy, err) != 0) {
        return -1;
    }
    d->strategy = (enum agent_strategy)strategy;
    if (spec != NULL && file != NULL) {
        snprintf(err, CONFIG_ERR_MAX, "AGENTS_FILE: set AGENTS or AGENTS_FILE, not both");
        return -1;
    }
    char *text = NULL;
    if (file != NULL && read_small_file(file, 1 << 20, &text) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "AGENTS_FILE: cannot read %s", file);
        return -1;
    }
    if (spec == NULL && text == NULL) {
        return 0;
    }
    d->agents = calloc(AGENT_POOL_MAX, sizeof *d->agents);
    int n = d->agents == NULL
                ? -1
                : agent_pool_parse(text ? text : spec, text ? "AGENTS_FILE" : "AGENTS", d->agents,
                                   AGENT_POOL_MAX, err, CONFIG_ERR_MAX);
    free(text);
    d->nagents = n > 0 ? n : 0;
    return n > 0 ? 0 : -1;
}

static int read_settings(struct app *app, struct dialer *d, char err[CONFIG_ERR_MAX])
{
    struct upstream up;
    int64_t v[SET_INTS];
    if (upstream_resolve(app, &up, err) != 0) {
        return -1;
    }
    d->sandbox = up.exotel_sandbox;
    snprintf(d->acct.base, sizeof d->acct.base, "%s", up.exotel_base);
    snprintf(d->acct.sid, sizeof d->acct.sid, "%s", up.exotel_sid);
    snprintf(d->acct.key, sizeof d->acct.key, "%s", up.exotel_key);
    snprintf(d->acct.token, sizeof d->acct.token, "%s", up.exotel_token);
    explicit_bzero(&up, sizeof up);
    if (read_agents(d, err) != 0 || read_numbers(d, err) != 0 || read_callback(app, d, err) != 0 ||
        read_ints(v, err) != 0 || config_bool("EXOTEL_RECORD", false, &d->record, err) != 0 ||
        config_bool("EXOTEL_DND_PRECHECK", false, &d->dnd_precheck, err) != 0 ||
        rate_limit_init_exotel(&d->rl, err) != 0) {
        return -1;
    }
    if (tz_open(config_str("EXOTEL_TIMEZONE", "Asia/Kolkata"), &d->exotel_tz) != 0) {
        snprintf(err, CONFIG_ERR_MAX,
                 "EXOTEL_TIMEZONE: unknown time zone (Exotel writes IST: Asia/Kolkata)");
        return -1;
    }
    if (tz_open(config_str("CALL_TIMEZONE", "Asia/Kolkata"), &d->call_tz) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "CALL_TIMEZONE: unknown time zone (an IANA name)");
        return -1;
    }
    d->ring_timeout_s = (int)v[SET_RING];
    d->time_limit_s = (int)v[SET_LIMIT];
    d->acct.timeout_ms = (long)v[SET_HTTP_TIMEOUT];
    d->grace_ms = v[SET_GRACE];
    d->reconcile_delay_ms = v[SET_RECONCILE_DELAY];
    d->reconcile_window_ms = v[SET_RECONCILE_WINDOW];
    d->agent_wait_ms = v[SET_AGENT_WAIT];
    d->workers = calloc((size_t)v[SET_WORKERS], sizeof *d->workers);
    d->nworkers = d->workers != NULL ? (int)v[SET_WORKERS] : 0;
    return d->workers != NULL ? 0 : -1;
}

static int start_workers(struct dialer *d)
{
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = &d->workers[i];
        w->d = d;
        if ((w->curl = curl_easy_init()) == NULL ||
            pthread_create(&w->thread, NULL, dialer_worker_main, w) != 0) {
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
                              .handler = attempts_on_event,
                              .arg = d};
    if (app_store_open_versioned(app, "dialer", schema, migrations,
                                 sizeof migrations / sizeof migrations[0], &d->store) != 0 ||
        store_run(d->store, secret_job, d) != 0 || store_run(d->store, attempts_recover, d) != 0 ||
        store_run(d->store, attempts_load_dialed, d) != 0 ||
        store_run(d->store, agents_sync, d) != 0 ||
        api_keys_load(app->data_dir, &d->keys, err) != 0 ||
        (po.store = d->store, bus_pub_open(&po, &d->pub)) != 0 ||
        store_on_commit(d->store, wake_on_commit, &d->wake) != 0 || start_workers(d) != 0 ||
        (so.store = d->store, bus_sub_open(&so, &d->sub)) != 0 ||
        http_route(app->http, "POST", "/exotel/callback", dialer_post_callback, d) != 0 ||
        http_route(app->http, "GET", "/agents", agents_get, d) != 0 ||
        http_route(app->http, "POST", "/agents/{name}/pause", agents_post_pause, d) != 0 ||
        http_route(app->http, "POST", "/agents/{name}/resume", agents_post_resume, d) != 0 ||
        http_degraded_check(app->http, "dialer: call-scheduler stream", ready, d) != 0 ||
        http_ready_check(app->http, bus_sub_streams_check(d->sub), bus_sub_streams_ok, d->sub) !=
            0) {
        dialer_stop(d);
        return -1;
    }
    const char *mode = d->nagents > 0   ? (d->flow_url[0] ? "agent pool (AGENTS), then the IVR flow"
                                                          : "agent pool (AGENTS)")
                       : d->flow_url[0] ? "IVR flow (EXOTEL_APP_ID)"
                                        : "direct to agent (EXOTEL_AGENT_NUMBER)";
    log_info("Dialer ready",
             LOG_FIELDS(LOG_S("mode", mode), LOG_I("agents", d->nagents),
                        LOG_S("strategy", agent_strategy_name[d->strategy]),
                        LOG_I("workers", d->nworkers), LOG_S("callbackBase", d->public_base)));
    *state = d;
    return 0;
}

const struct module dialer_module = {"dialer", dialer_start, dialer_stop};
