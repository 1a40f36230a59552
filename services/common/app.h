/*
 * app: what a leadbus process gives its modules, and the module contract.
 *
 * main builds one struct app (data directory, the shared HTTP server, store
 * and bus settings) and starts each selected module with it. A module keeps
 * its own state behind the void pointer its start() returns and frees it in
 * stop(). start() fills `err` with one line when it cannot start (a bad
 * setting names the variable).
 */
#ifndef LEADBUS_APP_H
#define LEADBUS_APP_H

#include "config.h"
#include "http.h"
#include "bus_sub.h"
#include "store.h"

#include <signal.h>
#include <stdbool.h>

#define APP_URL_MAX 256

struct app {
    const char *data_dir;
    struct http_server *http;
    bool all_in_one; /* --target=all: bus endpoints default to inproc:// */
    enum store_sync sync;
    int retention_days;
    int port; /* the HTTP port, for URLs that point back at this process */
};

struct module {
    const char *name;
    int (*start)(struct app *app, void **state, char err[CONFIG_ERR_MAX]);
    void (*stop)(void *state);
};

/* Names of the targets that publish on the bus, in a fixed order; NULL-terminated. */
extern const char *const app_publishers[];

/*
 * The PUB and replay endpoints of publisher `target`: BUS_<NAME>_PUB and
 * BUS_<NAME>_REPLAY when set, else inproc:// in all-in-one mode, else
 * tcp://127.0.0.1 on the target's default ports. Returns -1 for an unknown target.
 */
int app_bus_endpoints(const struct app *app, const char *target, char pub[APP_URL_MAX],
                      char replay[APP_URL_MAX]);

/*
 * The endpoints subscribers dial for publisher `target`, appended to `s`.
 * BUS_<NAME>_PUB and BUS_<NAME>_REPLAY may list several replicas
 * (comma-separated, in the same order): ingest scales out that way, each
 * replica publishing its own stream (BUS_INGEST_NAME). Or BUS_<NAME>_DISCOVER
 * (dns:<name>:<pub-port>[:<replay-port>], every BUS_DISCOVER_INTERVAL_MS) finds them
 * by DNS: no source is added, s->discover is filled instead. Returns how many
 * sources were added, or -1 with `err` naming the variable.
 */
#define APP_MAX_SOURCES 16
struct app_sources {
    int n;
    struct bus_source src[APP_MAX_SOURCES];
    char url[2 * APP_MAX_SOURCES][APP_URL_MAX]; /* storage src[] points into */
    char name[APP_MAX_SOURCES][64];             /* the peer names src[] points at */
    /* BUS_INGEST_DISCOVER: ingest's replicas found by DNS instead of listed (bus_discover.h);
     * pass app_sources_discover(s) as bus_sub_opts.discover. */
    bool has_discover;
    struct bus_discover discover;
};
int app_sources_add(const struct app *app, struct app_sources *s, const char *target,
                    char err[CONFIG_ERR_MAX]);
/* The discovery app_sources_add() found for `s` (bus_sub_opts.discover), or NULL. */
const struct bus_discover *app_sources_discover(const struct app_sources *s);

/*
 * Bus transport security, before any module starts (main exits 2 on -1, err naming the
 * variable): BUS_TLS_CA, BUS_TLS_CERT, BUS_TLS_KEY all or none (loaded into bus_tls), BUS_INSECURE,
 * every BUS_<NAME>_PUB/_REPLAY URL through bus_url_check(), and with TLS, one BUS_<NAME>_NAME
 * per URL when a publisher has several (subscribers check each replica's certificate for it).
 */
int app_bus_security(char err[CONFIG_ERR_MAX]);

/*
 * The stream name publisher `target` uses: BUS_<NAME>_NAME, default the target's name. In a
 * subscriber's process BUS_<NAME>_NAME may list one name per BUS_<NAME>_PUB URL (ingest replicas):
 * app_sources_add() gives each source its name, which its TLS certificate must carry.
 */
const char *app_bus_name(const char *target);

/* The path of store `name`: DATA_DIR/<name>.db. */
void app_store_path(const struct app *app, const char *name, char *out, size_t size);

/*
 * Open DATA_DIR/<name>.db with the app's sync setting and `schema`, and add
 * "store <name>" to /readyz: ready while the store commits (store_health).
 */
int app_store_open(const struct app *app, const char *name, const char *schema, struct store **out);
/* The same for a store whose schema has steps after version 1 (store.h, "Schema versions"). */
int app_store_open_versioned(const struct app *app, const char *name, const char *schema,
                             const struct store_migration *migrations, size_t nmigrations,
                             struct store **out);

/*
 * Block SIGINT and SIGTERM in the calling thread, and so in every thread it starts after, for
 * the process to take them with sigwait(set) or sigtimedwait(set) (main, `leadbus tap`).
 */
void app_block_stop_signals(sigset_t *set);

#endif
