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

int app_store_open(const struct app *app, const char *name, const char *schema, struct store **out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.db", app->data_dir, name);
    struct store_opts o = {.path = path, .schema = schema, .sync = app->sync};
    return store_open(&o, out);
}
