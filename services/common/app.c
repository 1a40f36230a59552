/* app: bus endpoint defaults and store paths shared by every module. */
#include "app.h"
#include "bus_tls.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

const char *const app_publishers[] = {"ingest", "zoho-sync", "call-scheduler", "dialer", NULL};

/* Default tcp ports: publisher i listens on 7401+10i (PUB) and 7402+10i (replay). */
static int publisher_index(const char *target)
{
    for (int i = 0; app_publishers[i] != NULL; i++) {
        if (strcmp(app_publishers[i], target) == 0) {
            return i;
        }
    }
    return -1;
}

static void env_name(const char *target, const char *suffix, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "BUS_");
    for (const char *p = target; *p != '\0' && n + 1 < size; p++) {
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    }
    out[n] = '\0';
    snprintf(out + n, size - n, "_%s", suffix);
}

int app_bus_endpoints(const struct app *app, const char *target, char pub[APP_URL_MAX],
                      char replay[APP_URL_MAX])
{
    int idx = publisher_index(target);
    if (idx < 0) {
        return -1;
    }
    char name[64];
    env_name(target, "PUB", name, sizeof name);
    const char *v = config_raw(name);
    if (v != NULL) {
        snprintf(pub, APP_URL_MAX, "%s", v);
    } else if (app->all_in_one) {
        snprintf(pub, APP_URL_MAX, "inproc://%s-pub", target);
    } else {
        snprintf(pub, APP_URL_MAX, "tcp://127.0.0.1:%d", 7401 + 10 * idx);
    }
    env_name(target, "REPLAY", name, sizeof name);
    v = config_raw(name);
    if (v != NULL) {
        snprintf(replay, APP_URL_MAX, "%s", v);
    } else if (app->all_in_one) {
        snprintf(replay, APP_URL_MAX, "inproc://%s-replay", target);
    } else {
        snprintf(replay, APP_URL_MAX, "tcp://127.0.0.1:%d", 7402 + 10 * idx);
    }
    return 0;
}

void app_store_path(const struct app *app, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s.db", app->data_dir, name);
}

int app_store_open(const struct app *app, const char *name, const char *schema, struct store **out)
{
    return app_store_open_versioned(app, name, schema, NULL, 0, out);
}

int app_store_open_versioned(const struct app *app, const char *name, const char *schema,
                             const struct store_migration *migrations, size_t nmigrations,
                             struct store **out)
{
    char path[1024];
    app_store_path(app, name, path, sizeof path);
    struct store_opts o = {.path = path,
                           .schema = schema,
                           .sync = app->sync,
                           .migrations = migrations,
                           .nmigrations = nmigrations};
    if (store_open(&o, out) != 0) {
        return -1;
    }
    char check[80];
    snprintf(check, sizeof check, "store %s", name);
    if (app->http != NULL && http_ready_check(app->http, check, store_ready, *out) != 0) {
        store_close(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* BUS_<NAME>_DISCOVER of `target` into s->discover: 1 if set, 0 if not, -1 with err. */
static int sources_discover(struct app_sources *s, const char *target, const char *pname,
                            const char *rname, char err[CONFIG_ERR_MAX])
{
    char dname[64], msg[160];
    env_name(target, "DISCOVER", dname, sizeof dname);
    const char *spec = config_raw(dname);
    if (spec == NULL || spec[0] == '\0') {
        return 0;
    }
    if (config_raw(pname) != NULL || config_raw(rname) != NULL) {
        snprintf(err, CONFIG_ERR_MAX, "%.40s: set it or %.40s/%.40s, not both", dname, pname,
                 rname);
        return -1;
    }
    if (bus_discover_parse(spec, &s->discover, msg, sizeof msg) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "%.40s: %.160s", dname, msg);
        return -1;
    }
    int64_t ms;
    if (config_int("BUS_DISCOVER_INTERVAL_MS", 5000, 100, 600000, &ms, err) != 0) {
        return -1;
    }
    s->discover.interval_ms = (int)ms;
    s->discover.tls = bus_tls_enabled();
    s->has_discover = true;
    return 1;
}

const struct bus_discover *app_sources_discover(const struct app_sources *s)
{
    return s->has_discover ? &s->discover : NULL;
}

int app_sources_add(const struct app *app, struct app_sources *s, const char *target,
                    char err[CONFIG_ERR_MAX])
{
    char pub[APP_URL_MAX * 4], replay[APP_URL_MAX * 4], pname[64], rname[64];
    char one_pub[APP_URL_MAX], one_replay[APP_URL_MAX];
    if (app_bus_endpoints(app, target, one_pub, one_replay) != 0) {
        return -1;
    }
    env_name(target, "PUB", pname, sizeof pname);
    env_name(target, "REPLAY", rname, sizeof rname);
    int disc = s->has_discover ? 0 : sources_discover(s, target, pname, rname, err);
    if (disc != 0) {
        return disc < 0 ? -1 : 0;
    }
    snprintf(pub, sizeof pub, "%s", config_raw(pname) ? config_raw(pname) : one_pub);
    snprintf(replay, sizeof replay, "%s", config_raw(rname) ? config_raw(rname) : one_replay);
    int added = 0;
    char names[APP_URL_MAX * 4];
    char *ps = NULL, *rs = NULL, *ns = NULL;
    env_name(target, "NAME", names, sizeof names);
    snprintf(names, sizeof names, "%s", config_str(names, target));
    char *nm = strtok_r(names, ",", &ns), *last_name = nm;
    char *p = strtok_r(pub, ",", &ps), *r = strtok_r(replay, ",", &rs);
    for (; p != NULL || r != NULL; p = strtok_r(NULL, ",", &ps), r = strtok_r(NULL, ",", &rs)) {
        if (p == NULL || r == NULL || s->n == APP_MAX_SOURCES) {
            snprintf(err, CONFIG_ERR_MAX,
                     "%s, %s: expected as many replay URLs as PUB URLs (at most %d)", pname, rname,
                     APP_MAX_SOURCES);
            return -1;
        }
        char *u = s->url[2 * s->n], *v = s->url[2 * s->n + 1];
        snprintf(u, APP_URL_MAX, "%s", p);
        snprintf(v, APP_URL_MAX, "%s", r);
        s->src[s->n].pub_url = u;
        s->src[s->n].replay_url = v;
        /* One name per URL; fewer: the last repeats (app_bus_security refuses that with TLS). */
        last_name = nm != NULL ? nm : last_name;
        snprintf(s->name[s->n], sizeof s->name[s->n], "%s", last_name ? last_name : target);
        s->src[s->n].peer_name = s->name[s->n];
        nm = nm != NULL ? strtok_r(NULL, ",", &ns) : NULL;
        s->n++;
        added++;
    }
    return added;
}

const char *app_bus_name(const char *target)
{
    char name[64];
    env_name(target, "NAME", name, sizeof name);
    return config_str(name, target);
}

/* How many comma-separated items `v` has (0 for NULL). */
static int count_items(const char *v)
{
    int n = v != NULL && *v != '\0';
    for (const char *p = v; p != NULL && *p != '\0'; p++) {
        n += *p == ',';
    }
    return n;
}

/* Every URL of variable `var` through bus_url_check(); counts them and the TLS ones. */
static int check_urls(const char *var, bool insecure, int *n, int *ntls, char err[CONFIG_ERR_MAX])
{
    char list[APP_URL_MAX * 4], msg[CONFIG_ERR_MAX];
    const char *v = config_raw(var);
    *n = *ntls = 0;
    snprintf(list, sizeof list, "%s", v != NULL ? v : "");
    char *save = NULL;
    for (char *u = strtok_r(list, ",", &save); u != NULL; u = strtok_r(NULL, ",", &save)) {
        if (bus_url_check(u, insecure, bus_tls_enabled(), msg, sizeof msg) != 0) {
            snprintf(err, CONFIG_ERR_MAX, "%.40s: %.200s", var, msg);
            return -1;
        }
        (*n)++;
        *ntls += bus_url_kind(u) == BUS_URL_TLS;
    }
    return 0;
}

int app_bus_security(char err[CONFIG_ERR_MAX])
{
    bool insecure;
    if (config_bool("BUS_INSECURE", false, &insecure, err) != 0 ||
        bus_tls_setup(config_raw("BUS_TLS_CA"), config_raw("BUS_TLS_CERT"),
                      config_raw("BUS_TLS_KEY"), insecure, err, CONFIG_ERR_MAX) != 0) {
        return -1;
    }
    for (int i = 0; app_publishers[i] != NULL; i++) {
        char pub[64], replay[64], name[64];
        int npub, ntls, nrep, nrtls;
        env_name(app_publishers[i], "PUB", pub, sizeof pub);
        env_name(app_publishers[i], "REPLAY", replay, sizeof replay);
        env_name(app_publishers[i], "NAME", name, sizeof name);
        if (check_urls(pub, insecure, &npub, &ntls, err) != 0 ||
            check_urls(replay, insecure, &nrep, &nrtls, err) != 0) {
            return -1;
        }
        int nnames = count_items(config_raw(name));
        if (npub > 1 && ntls + nrtls > 0 && nnames != npub) {
            snprintf(err, CONFIG_ERR_MAX,
                     "%.40s: with tls+tcp:// list one stream name per %.40s URL, in order (%d), "
                     "so each replica's certificate is checked for its name",
                     name, pub, npub);
            return -1;
        }
    }
    return 0;
}

void app_block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}
