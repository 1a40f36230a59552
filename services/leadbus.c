/* leadbus: the one main. Runs the modules named by --target in this process. */
#include "app.h"
#include "config.h"
#include "http.h"
#include "http_client.h"
#include "log.h"
#include "backup/backup.h"
#include "call-scheduler/call_scheduler.h"
#include "dialer/dialer.h"
#include "health/health.h"
#include "ingest/ingest.h"
#include "sandbox/sandbox.h"
#include "sms/sms.h"
#include "stats/stats.h"
#include "tap/tap.h"
#include "zoho-sync/zoho_sync.h"
#include "upstream.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#ifndef LEADBUS_VERSION
#define LEADBUS_VERSION "0.0.0"
#endif

/* Modules in start order: publishers before their subscribers. */
static const struct module *const modules[] = {
    &sandbox_module, &ingest_module, &zoho_sync_module, &call_scheduler_module,
    &dialer_module,  &sms_module,    &stats_module,     NULL,
};

/*
 * What each target needs from the process, checked before any starts: the
 * store it writes (DATA_DIR/<target>.db, one process each) and the API it
 * talks to (its credentials or sandbox must make sense).
 */
static const struct role {
    const struct module *module;
    bool store;
    int api; /* enum upstream_api, or -1 */
} roles[] = {
    {&ingest_module, true, -1},
    {&zoho_sync_module, true, UPSTREAM_ZOHO},
    {&call_scheduler_module, true, -1},
    {&dialer_module, true, UPSTREAM_EXOTEL},
    {&stats_module, true, -1},
    {&sandbox_module, false, -1},
    {&sms_module, true, -1},
};
/* sms talks to Exotel too, but only with SMS_ON; the dialer's role carries the credential check. */

static const struct role *role_of(const struct module *m)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        if (roles[i].module == m) {
            return &roles[i];
        }
    }
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: leadbus --target=NAME[,NAME...]   run these targets in one process\n"
            "       leadbus tap [options] ENDPOINT...   print bus events as JSON lines\n"
            "       leadbus health [PATH] | sleep SECONDS   probe this container; preStop pause\n"
            "       leadbus backup DIR | restore DIR [STORE...]   copy the stores; put back\n"
            "       leadbus --help | --version\n"
            "targets: all");
    for (int i = 0; modules[i] != NULL; i++) {
        fprintf(f, ", %s", modules[i]->name);
    }
    fprintf(f, "\nSettings come from the environment and ./.env; see README.md.\n");
}

static const struct module *find_module(const char *name, size_t len)
{
    for (int i = 0; modules[i] != NULL; i++) {
        if (strlen(modules[i]->name) == len && strncmp(modules[i]->name, name, len) == 0) {
            return modules[i];
        }
    }
    return NULL;
}

/*
 * Parse "a,b,c" into `selected` (flags by module index). "all" is every module,
 * but the sandbox only while some API has neither credentials nor a URL (and
 * never with SANDBOX=off).
 */
static int select_targets(const char *list, bool *selected, bool *all)
{
    *all = false;
    for (const char *p = list; *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (n == 3 && strncmp(p, "all", 3) == 0) {
            *all = true;
            bool sandbox =
                upstream_needs_sandbox() && strcasecmp(config_str("SANDBOX", "auto"), "off") != 0;
            for (int i = 0; modules[i] != NULL; i++) {
                selected[i] = selected[i] || modules[i] != &sandbox_module || sandbox;
            }
        } else {
            const struct module *m = find_module(p, n);
            if (m == NULL) {
                fprintf(stderr, "leadbus: unknown target '%.*s' (see leadbus --help)\n", (int)n, p);
                return -1;
            }
            for (int i = 0; modules[i] != NULL; i++) {
                selected[i] = selected[i] || modules[i] == m;
            }
        }
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    return 0;
}

static int read_settings(struct app *app, struct http_opts *http, char err[CONFIG_ERR_MAX])
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    static const char *const formats[] = {"text", "json", NULL};
    static const char *const syncs[] = {"OFF", "NORMAL", "FULL", NULL};
    int level, format, sync;
    int64_t port, threads, retention;
    if (config_enum("LOG_LEVEL", "info", levels, &level, err) != 0 ||
        config_enum("LOG_FORMAT", "text", formats, &format, err) != 0 ||
        config_enum("DB_SYNCHRONOUS", "FULL", syncs, &sync, err) != 0 ||
        config_int("PORT", 3000, 1, 65535, &port, err) != 0 ||
        config_int("HTTP_THREADS", 128, 2, 1024, &threads, err) != 0 ||
        config_int("BUS_RETENTION_DAYS", 7, 0, 3650, &retention, err) != 0) {
        return -1;
    }
    log_init((enum log_level)level, (enum log_format)format);
    app->data_dir = config_str("DATA_DIR", "./data");
    app->sync = (enum store_sync)sync;
    app->retention_days = (int)retention;
    app->port = (int)port;
    http->bind = config_str("HTTP_BIND", "0.0.0.0");
    http->port = (int)port;
    http->threads = (int)threads;
    if (mkdir(app->data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, CONFIG_ERR_MAX, "DATA_DIR: cannot create '%s': %s", app->data_dir,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static void warn_unknown(const char *name, const char *suggestion, void *arg)
{
    (void)arg;
    char msg[200];
    if (suggestion != NULL) {
        snprintf(msg, sizeof msg, "Unknown setting %.64s ignored: did you mean %s?", name,
                 suggestion);
    } else {
        snprintf(msg, sizeof msg, "Unknown setting %.64s ignored (not a leadbus setting)", name);
    }
    log_warn(msg,
             LOG_FIELDS(LOG_S("setting", name), LOG_S("didYouMean", suggestion ? suggestion : "")));
}

/*
 * Before any target starts: warn about unknown settings, refuse unsafe
 * upstream configurations, and take every selected store's lock (one process
 * per store). Returns -1 with one line in err: main exits 2.
 */
static int preflight(const struct app *app, const bool *selected, char err[CONFIG_ERR_MAX])
{
    config_each_unknown(warn_unknown, NULL);
    struct upstream_plan plan = {.port = app->port};
    for (int i = 0; modules[i] != NULL; i++) {
        const struct role *r = role_of(modules[i]);
        if (!selected[i] || r == NULL) {
            continue;
        }
        plan.runs_sandbox = plan.runs_sandbox || modules[i] == &sandbox_module;
        plan.schedules_calls = plan.schedules_calls || modules[i] == &call_scheduler_module;
        if (r->api >= 0) {
            plan.uses[r->api] = true;
        }
    }
    if (upstream_check(&plan, err) != 0 || app_bus_security(err) != 0) {
        return -1;
    }
    for (int i = 0; modules[i] != NULL; i++) {
        const struct role *r = role_of(modules[i]);
        char path[1024];
        if (!selected[i] || r == NULL || !r->store) {
            continue;
        }
        app_store_path(app, modules[i]->name, path, sizeof path);
        if (store_lock(path, err, CONFIG_ERR_MAX) != 0) {
            return -1;
        }
    }
    return 0;
}

/* /readyz fails while a provider this process talks to refuses our credentials. */
static int credential_checks(struct app *app, const bool *selected)
{
    static const char *const names[UPSTREAM_NAPIS] = {"exotel credentials", "zoho credentials"};
    for (int i = 0; modules[i] != NULL; i++) {
        const struct role *r = role_of(modules[i]);
        if (selected[i] && r != NULL && r->api >= 0 &&
            http_ready_check(app->http, names[r->api], upstream_auth_ready,
                             (void *)(intptr_t)r->api) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Say plainly, at start, which Exotel and Zoho this process talks to (only those it uses). */
static void log_banner(const struct app *app, const bool *selected)
{
    bool uses[UPSTREAM_NAPIS] = {false};
    for (int i = 0; modules[i] != NULL; i++) {
        const struct role *r = role_of(modules[i]);
        if (selected[i] && r != NULL && r->api >= 0) {
            uses[r->api] = true;
        }
    }
    struct upstream up;
    char err[CONFIG_ERR_MAX];
    if (upstream_resolve(app, &up, err) != 0) {
        log_warn("Upstream settings", LOG_FIELDS(LOG_S("error", err)));
        return;
    }
    if (uses[UPSTREAM_EXOTEL]) {
        log_info(up.exotel_sandbox
                     ? "Exotel: SANDBOX (no EXOTEL_ACCOUNT_SID/EXOTEL_API_KEY/EXOTEL_API_TOKEN)"
                     : "Exotel: live account",
                 LOG_FIELDS(LOG_S("baseUrl", up.exotel_base)));
    }
    if (uses[UPSTREAM_ZOHO]) {
        log_info(up.zoho_sandbox
                     ? "Zoho: SANDBOX (no ZOHO_CLIENT_ID/ZOHO_CLIENT_SECRET/ZOHO_REFRESH_TOKEN)"
                     : "Zoho: live account",
                 LOG_FIELDS(LOG_S("accountsUrl", up.zoho_accounts)));
    }
    explicit_bzero(&up, sizeof up);
}

#define NMODULES (sizeof modules / sizeof modules[0])
#define GO_ON (-1) /* a step of main's that did not end the process */

/* What main's steps hand on to each other. */
struct run {
    const char *target;
    bool selected[NMODULES]; /* by module index */
    struct app app;
    struct http_opts http;
    void *states[NMODULES];
    bool started[NMODULES];
    sigset_t stop_signals; /* taken by sigwait */
    char err[CONFIG_ERR_MAX];
};

/* `leadbus tap`: it reads ./.env and BUS_TLS_* (for tls+tcp:// taps) first. */
static int tap_command(int argc, char **argv)
{
    char err[CONFIG_ERR_MAX];
    if (config_load(".env", err) != 0 || app_bus_security(err) != 0) {
        fprintf(stderr, "leadbus: %s\n", err);
        return 2;
    }
    int rc = tap_main(argc - 1, argv + 1);
    config_free();
    return rc;
}

/* The commands other than running targets: true, with *status, if argv names one. */
static bool subcommand(int argc, char **argv, int *status)
{
    if (argc > 1 && health_is_command(argv[1])) {
        *status = health_main(argc - 1, argv + 1);
    } else if (argc > 1 && backup_is_command(argv[1])) {
        *status = backup_main(argc - 1, argv + 1);
    } else if (argc > 1 && strcmp(argv[1], "tap") == 0) {
        *status = tap_command(argc, argv);
    } else {
        return false;
    }
    return true;
}

/* --help, --version and --target: GO_ON, or the exit status. */
static int parse_args(int argc, char **argv, struct run *r)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("leadbus %s\n", LEADBUS_VERSION);
            return 0;
        }
        if (strncmp(argv[i], "--target=", 9) == 0) {
            r->target = argv[i] + 9;
        } else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
            r->target = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    return GO_ON;
}

/* ./.env, the targets, the settings and the preflight checks: GO_ON, or the exit status. */
static int configure(struct run *r)
{
    if (config_load(".env", r->err) != 0) {
        fprintf(stderr, "leadbus: %s\n", r->err);
        return 2;
    }
    if (r->target == NULL) {
        r->target = config_str("LEADBUS_TARGET", NULL);
    }
    if (r->target == NULL) {
        usage(stderr);
        return 2;
    }
    if (select_targets(r->target, r->selected, &r->app.all_in_one) != 0) {
        return 2;
    }
    if (read_settings(&r->app, &r->http, r->err) != 0 ||
        preflight(&r->app, r->selected, r->err) != 0) {
        fprintf(stderr, "leadbus: %s\n", r->err);
        return 2;
    }
    return GO_ON;
}

/* Start the selected modules in order, then listen: 0, or 1 if one of them failed. */
static int start_modules(struct run *r)
{
    int status = 0;
    for (int i = 0; modules[i] != NULL && status == 0; i++) {
        if (!r->selected[i]) {
            continue;
        }
        log_set_target(modules[i]->name);
        if (modules[i]->start(&r->app, &r->states[i], r->err) != 0) {
            fprintf(stderr, "leadbus: %s: %s\n", modules[i]->name,
                    r->err[0] ? r->err : "cannot start (see the log above)");
            status = 1;
        } else {
            r->started[i] = true;
        }
    }
    log_set_target("leadbus");
    if (status == 0 && http_listen(r->app.http, &r->http) != 0) {
        status = 1;
    }
    return status;
}

/* Serve until SIGINT or SIGTERM. */
static void serve(struct run *r)
{
    log_info("leadbus started", LOG_FIELDS(LOG_S("target", r->target), LOG_I("port", r->http.port),
                                           LOG_S("dataDir", r->app.data_dir)));
    log_banner(&r->app, r->selected);
    int sig = 0;
    sigwait(&r->stop_signals, &sig);
    log_info("Stopping", LOG_FIELDS(LOG_S("signal", sig == SIGINT ? "SIGINT" : "SIGTERM")));
}

/* HTTP first, so nothing new arrives while the modules wind down; then the modules in reverse. */
static void stop_modules(struct run *r)
{
    http_stop(r->app.http);
    for (int i = (int)NMODULES - 1; i >= 0; i--) {
        if (r->started[i]) {
            modules[i]->stop(r->states[i]);
        }
    }
    config_free();
}

int main(int argc, char **argv)
{
    /* Stores (and their -wal/-shm, which SQLite creates with the db's mode), keys and lock files
     * are the owner's alone, whatever the inherited umask or the directory's mode (SECURITY.md). */
    umask(077);
    int status;
    if (subcommand(argc, argv, &status)) {
        return status;
    }
    struct run r = {0};
    status = parse_args(argc, argv, &r);
    if (status == GO_ON) {
        status = configure(&r);
    }
    if (status != GO_ON) {
        return status;
    }
    /* Signals are taken by sigwait in serve(); every thread started from here inherits the mask. */
    app_block_stop_signals(&r.stop_signals);
    signal(SIGPIPE, SIG_IGN);
    httpc_observe(upstream_observe);
    if (http_create(&r.app.http) != 0 || credential_checks(&r.app, r.selected) != 0) {
        return 1;
    }
    status = start_modules(&r);
    if (status == 0) {
        serve(&r);
    }
    stop_modules(&r);
    if (status == 0) {
        log_info("Stopped", NULL);
    }
    return status;
}
