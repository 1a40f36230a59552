/* app: bus endpoint defaults and store paths shared by every module. */
#include "app.h"

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
    char path[1024];
    app_store_path(app, name, path, sizeof path);
    struct store_opts o = {.path = path, .schema = schema, .sync = app->sync};
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
    snprintf(pub, sizeof pub, "%s", config_raw(pname) ? config_raw(pname) : one_pub);
    snprintf(replay, sizeof replay, "%s", config_raw(rname) ? config_raw(rname) : one_replay);
    int added = 0;
    char *ps = NULL, *rs = NULL;
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
