/* sandbox: module, settings, fault injection and the request log. */
#include "sandbox.h"
#include "api_key.h"
#include "clock.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_CAP 2000 /* requests kept for GET /sandbox/requests (SANDBOX_REQUEST_LOG) */

struct sandbox_logged {
    enum sandbox_api api;
    int64_t ts;
    char method[8];
    char path[160];
    char summary[512];
};

static const char *const api_names[SANDBOX_APIS] = {"exotel", "zoho", "meta"};

uint64_t sandbox_rand(struct sandbox *sb, uint64_t n)
{
    /* splitmix64: small, seedable, good enough for a simulator's dice */
    uint64_t z = (sb->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return n ? z % n : z;
}

bool sandbox_chance(struct sandbox *sb, int pct)
{
    if (pct <= 0) {
        return false;
    }
    pthread_mutex_lock(&sb->lock);
    bool hit = (int)sandbox_rand(sb, 100) < pct;
    pthread_mutex_unlock(&sb->lock);
    return hit;
}

enum sandbox_fault sandbox_fault_roll(struct sandbox *sb, enum sandbox_api api)
{
    pthread_mutex_lock(&sb->lock);
    const struct sandbox_faults *f = &sb->faults[api];
    enum sandbox_fault out = FAULT_NONE;
    if (clock_now_ms() < f->down_until_ms) {
        out = FAULT_DOWN;
    } else {
        int r = (int)sandbox_rand(sb, 100);
        if (r < f->p429) {
            out = FAULT_429;
        } else if (r < f->p429 + f->p500) {
            out = FAULT_500;
        } else if (r < f->p429 + f->p500 + f->ptimeout) {
            out = FAULT_TIMEOUT;
        }
    }
    int hang = sb->hang_ms;
    pthread_mutex_unlock(&sb->lock);
    if (out == FAULT_TIMEOUT) {
        usleep((useconds_t)hang * 1000);
    }
    return out;
}

void sandbox_log_request(struct sandbox *sb, enum sandbox_api api, const char *method,
                         const char *path, const char *summary)
{
    pthread_mutex_lock(&sb->lock);
    struct sandbox_logged *e = &sb->log[(sb->log_head + sb->log_len) % sb->log_cap];
    if (sb->log_len == sb->log_cap) {
        sandbox_dropped("request_log");
        sb->log_head = (sb->log_head + 1) % sb->log_cap;
    } else {
        sb->log_len++;
    }
    e->api = api;
    e->ts = clock_now_ms();
    snprintf(e->method, sizeof e->method, "%s", method);
    snprintf(e->path, sizeof e->path, "%s", path);
    snprintf(e->summary, sizeof e->summary, "%s", summary ? summary : "");
    pthread_mutex_unlock(&sb->lock);
}

int sandbox_faults_parse(struct sandbox *sb, const char *spec, char *err, size_t err_size)
{
    struct sandbox_faults next[SANDBOX_APIS];
    memcpy(next, sb->faults, sizeof next);
    char *copy = strdup(spec), *save = NULL;
    if (copy == NULL) {
        return -1;
    }
    int rc = 0;
    for (char *item = strtok_r(copy, ", ", &save); item != NULL && rc == 0;
         item = strtok_r(NULL, ", ", &save)) {
        char api[16], key[32];
        long long v;
        if (sscanf(item, "%15[a-z].%31[a-z0-9_]=%lld", api, key, &v) != 3 || v < 0) {
            snprintf(err, err_size, "SANDBOX_FAULTS: '%s' is not api.fault=number", item);
            rc = -1;
            break;
        }
        int a = strcmp(api, "exotel") == 0 ? SANDBOX_EXOTEL
                : strcmp(api, "zoho") == 0 ? SANDBOX_ZOHO
                : strcmp(api, "meta") == 0 ? SANDBOX_META
                                           : -1;
        struct sandbox_faults *f = a >= 0 ? &next[a] : NULL;
        int *pct = NULL;
        if (f != NULL) {
            if (!strcmp(key, "429"))
                pct = &f->p429;
            else if (!strcmp(key, "500"))
                pct = &f->p500;
            else if (!strcmp(key, "timeout"))
                pct = &f->ptimeout;
            else if (!strcmp(key, "504_after_place") && a == SANDBOX_EXOTEL)
                pct = &f->p504_after_place;
            else if (!strcmp(key, "500_after_write") && a == SANDBOX_ZOHO)
                pct = &f->p500_after_write;
            else if (!strcmp(key, "cb_dup") && a == SANDBOX_EXOTEL)
                pct = &f->cb_dup;
            else if (!strcmp(key, "cb_late") && a == SANDBOX_EXOTEL)
                pct = &f->cb_late;
            else if (!strcmp(key, "cb_drop") && a == SANDBOX_EXOTEL)
                pct = &f->cb_drop;
            else if (!strcmp(key, "down_ms")) {
                f->down_until_ms = v > 0 ? clock_now_ms() + v : 0;
                continue;
            }
        }
        if (pct == NULL || v > 100) {
            snprintf(err, err_size, "SANDBOX_FAULTS: unknown fault or percentage over 100 in '%s'",
                     item);
            rc = -1;
            break;
        }
        *pct = (int)v;
    }
    free(copy);
    if (rc == 0) {
        for (int a = 0; a < SANDBOX_APIS; a++) {
            if (next[a].p429 + next[a].p500 + next[a].ptimeout > 100) {
                snprintf(err, err_size, "SANDBOX_FAULTS: %s faults add up to more than 100%%",
                         api_names[a]);
                return -1;
            }
        }
        memcpy(sb->faults, next, sizeof next);
    }
    return rc;
}

static void local_time(int64_t ms, struct tm *tm)
{
    /* Both APIs write Indian Standard Time here (UTC+05:30, no DST). */
    time_t t = (time_t)(ms / 1000) + 5 * 3600 + 30 * 60;
    gmtime_r(&t, tm);
}

void sandbox_exotel_time(int64_t ms, char out[20])
{
    struct tm tm;
    local_time(ms, &tm);
    strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
}

void sandbox_zoho_time(int64_t ms, char out[26])
{
    struct tm tm;
    local_time(ms, &tm);
    strftime(out, 26, "%Y-%m-%dT%H:%M:%S+05:30", &tm);
}

/* ---- HTTP: inspection and fault admin ---- */

static void get_requests(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    char want[16] = "";
    if (!sandbox_admit(sb, req)) {
        return;
    }
    http_query(req, "api", want, sizeof want);
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "requests");
    pthread_mutex_lock(&sb->lock);
    for (int i = 0; i < sb->log_len; i++) {
        const struct sandbox_logged *e = &sb->log[(sb->log_head + i) % sb->log_cap];
        if (want[0] != '\0' && strcmp(want, api_names[e->api]) != 0) {
            continue;
        }
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "api", api_names[e->api]);
        cJSON_AddNumberToObject(r, "ts", (double)e->ts);
        cJSON_AddStringToObject(r, "method", e->method);
        cJSON_AddStringToObject(r, "path", e->path);
        cJSON_AddStringToObject(r, "summary", e->summary);
        cJSON_AddItemToArray(list, r);
    }
    pthread_mutex_unlock(&sb->lock);
    http_reply_json(req, 200, o);
}

static void post_faults(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!sandbox_admit(sb, req)) {
        return;
    }
    char *body;
    size_t len;
    if (http_read_body(req, 4096, &body, &len) != 0) {
        return;
    }
    char err[256] = "";
    pthread_mutex_lock(&sb->lock);
    if (strcmp(body, "reset") == 0 || len == 0) {
        memset(sb->faults, 0, sizeof sb->faults);
    }
    int rc = len == 0 || strcmp(body, "reset") == 0
                 ? 0
                 : sandbox_faults_parse(sb, body, err, sizeof err);
    pthread_mutex_unlock(&sb->lock);
    free(body);
    if (rc != 0) {
        http_reply_error(req, 400, "bad_faults", err, NULL);
        return;
    }
    static const char ok[] = "{\"success\":true}";
    http_reply(req, 200, "application/json", ok, sizeof ok - 1);
}

/* ---- module ---- */

static void sandbox_stop(void *state)
{
    struct sandbox *sb = state;
    if (sb == NULL) {
        return;
    }
    sandbox_exotel_stop(sb);
    sandbox_zoho_stop(sb);
    sandbox_meta_stop(sb);
    sandbox_sms_stop(sb);
    sandbox_zoho_notify_stop(sb);
    pthread_mutex_destroy(&sb->lock);
    free(sb->log);
    api_keys_free(sb->keys);
    free(sb);
}

bool sandbox_bind_loopback(const char *bind)
{
    return bind != NULL && (strncmp(bind, "127.", 4) == 0 || strcmp(bind, "::1") == 0 ||
                            strcmp(bind, "[::1]") == 0 || strcmp(bind, "localhost") == 0);
}

static bool loopback_host(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcasecmp(host, "localhost") == 0) {
        return true;
    }
    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    char bare[64];
    size_t n = strlen(host);
    if (n >= 2 && n < sizeof bare && host[0] == '[' && host[n - 1] == ']') {
        memcpy(bare, host + 1, n - 2);
        bare[n - 2] = '\0';
        return inet_pton(AF_INET6, bare, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return false;
}

bool sandbox_callback_url_ok(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *user = NULL, *password = NULL, *options = NULL, *host = NULL;
    bool ok = false;
    if (u == NULL || url == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        goto done;
    }
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    curl_url_get(u, CURLUPART_PASSWORD, &password, 0);
    curl_url_get(u, CURLUPART_OPTIONS, &options, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    ok = scheme != NULL && (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
         user == NULL && password == NULL && options == NULL && host != NULL && loopback_host(host);
done:
    curl_free(scheme);
    curl_free(user);
    curl_free(password);
    curl_free(options);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

bool sandbox_admit(struct sandbox *sb, struct http_req *req)
{
    if (!sb->key_required || api_keys_check(sb->keys, http_header(req, "X-API-Key"))) {
        return true;
    }
    http_reply_error(req, 401, "unauthorized",
                     "the sandbox is bound off loopback: X-API-Key (an operator key) is required",
                     NULL);
    return false;
}

void sandbox_dropped(const char *what)
{
    char labels[64];
    snprintf(labels, sizeof labels, "what=\"%s\"", what);
    metrics_counter_add("leadbus_sandbox_dropped_total",
                        "Sandbox entries dropped, oldest first, to keep memory bounded", labels, 1);
}

static int sandbox_guard_init(struct sandbox *sb, struct app *app, char err[CONFIG_ERR_MAX])
{
    int64_t records_max;
    if (config_int("SANDBOX_RECORDS_MAX", 20000, 10, 1000000, &records_max, err) != 0) {
        return -1;
    }
    sb->records_max = (int)records_max;
    sb->key_required = !sandbox_bind_loopback(config_str("HTTP_BIND", "0.0.0.0"));
    if (sb->key_required && api_keys_load(app->data_dir, &sb->keys, err) != 0) {
        return -1;
    }
    if (sb->key_required) {
        log_warn("Sandbox bound off loopback: its inspection routes need X-API-Key", NULL);
    }
    return 0;
}

static int sandbox_start(struct app *app, void **state, char err[CONFIG_ERR_MAX])
{
    int64_t seed, hang, log_cap;
    if (config_int("SANDBOX_SEED", 0, 0, INT64_MAX, &seed, err) != 0 ||
        config_int("SANDBOX_HANG_MS", 35000, 0, 600000, &hang, err) != 0 ||
        config_int("SANDBOX_REQUEST_LOG", LOG_CAP, 10, 1000000, &log_cap, err) != 0) {
        return -1;
    }
    struct sandbox *sb = calloc(1, sizeof *sb);
    if (sb == NULL || (sb->log = calloc((size_t)log_cap, sizeof *sb->log)) == NULL) {
        free(sb);
        return -1;
    }
    pthread_mutex_init(&sb->lock, NULL);
    sb->log_cap = (int)log_cap;
    sb->rng = seed != 0 ? (uint64_t)seed : (uint64_t)clock_now_ms();
    sb->hang_ms = (int)hang;
    const char *faults = config_str("SANDBOX_FAULTS", NULL);
    if (faults != NULL && sandbox_faults_parse(sb, faults, err, CONFIG_ERR_MAX) != 0) {
        sandbox_stop(sb);
        return -1;
    }
    if (sandbox_guard_init(sb, app, err) != 0 || sandbox_exotel_start(sb, app, err) != 0 ||
        sandbox_zoho_start(sb, app, err) != 0 || sandbox_meta_start(sb, app, err) != 0 ||
        sandbox_sms_start(sb, app, err) != 0 || sandbox_zoho_notify_start(sb, app, err) != 0 ||
        http_route(app->http, "GET", "/sandbox/requests", get_requests, sb) != 0 ||
        http_route(app->http, "POST", "/sandbox/faults", post_faults, sb) != 0) {
        sandbox_stop(sb);
        return -1;
    }
    log_info("Sandbox serving simulated Exotel, Zoho and Meta APIs",
             LOG_FIELDS(LOG_S("exotel", "/sandbox/exotel/v1/Accounts/{sid}/..."),
                        LOG_S("zoho", "/sandbox/zoho/..."), LOG_S("meta", "/sandbox/meta/...")));
    *state = sb;
    return 0;
}

const struct module sandbox_module = {"sandbox", sandbox_start, sandbox_stop};
