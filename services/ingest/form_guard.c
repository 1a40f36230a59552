/* form_guard: per-address and per-key token buckets, trusted proxies, the honeypot field. */
#include "form_guard.h"
#include "json_depth.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROXIES_MAX 16

struct bucket {
    char name[FORM_GUARD_ADDR_MAX + 8]; /* "ip:…" or "key:…"; "" when unused */
    double tokens;
    int64_t updated_ms;
};

struct form_guard {
    double burst; /* N of "N/PERIOD" */
    int64_t period_ms;
    char proxies[PROXIES_MAX][FORM_GUARD_ADDR_MAX];
    int nproxies;
    char honeypot[64];
    pthread_mutex_t lock;
    struct bucket slots[FORM_GUARD_SLOTS];
};

/* "20/60s", "100/1m", "5/1h": N requests per period. */
static int parse_rate(const char *s, double *n, int64_t *period_ms)
{
    char unit[4] = "";
    long count = 0, len = 0;
    if (sscanf(s, "%ld/%ld%3s", &count, &len, unit) != 3 || count < 1 || count > 1000000 ||
        len < 1 || len > 86400) {
        return -1;
    }
    int64_t mult = strcmp(unit, "s") == 0   ? 1000
                   : strcmp(unit, "m") == 0 ? 60000
                   : strcmp(unit, "h") == 0 ? 3600000
                                            : 0;
    *n = (double)count;
    *period_ms = len * mult;
    return mult > 0 ? 0 : -1;
}

static int parse_proxies(const char *list, struct form_guard *g)
{
    char copy[1024], *save = NULL;
    snprintf(copy, sizeof copy, "%s", list ? list : "");
    for (char *t = strtok_r(copy, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
        if (g->nproxies == PROXIES_MAX || strlen(t) >= FORM_GUARD_ADDR_MAX) {
            return -1;
        }
        snprintf(g->proxies[g->nproxies++], FORM_GUARD_ADDR_MAX, "%s", t);
    }
    return 0;
}

int form_guard_open_with(const char *rate, const char *proxies, const char *honeypot,
                         struct form_guard **out, char err[CONFIG_ERR_MAX])
{
    struct form_guard *g = calloc(1, sizeof *g);
    if (g == NULL) {
        snprintf(err, CONFIG_ERR_MAX, "out of memory");
        return -1;
    }
    if (parse_rate(rate, &g->burst, &g->period_ms) != 0) {
        snprintf(err, CONFIG_ERR_MAX,
                 "FORM_RATE_LIMIT: expected N/PERIOD such as 20/60s (s, m or h), got '%.40s'",
                 rate);
        free(g);
        return -1;
    }
    if (parse_proxies(proxies, g) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "TRUSTED_PROXIES: expected up to %d addresses", PROXIES_MAX);
        free(g);
        return -1;
    }
    if (honeypot != NULL && strlen(honeypot) >= sizeof g->honeypot) {
        snprintf(err, CONFIG_ERR_MAX, "FORM_HONEYPOT_FIELD: at most %zu characters",
                 sizeof g->honeypot - 1);
        free(g);
        return -1;
    }
    snprintf(g->honeypot, sizeof g->honeypot, "%s", honeypot ? honeypot : "");
    pthread_mutex_init(&g->lock, NULL);
    *out = g;
    return 0;
}

int form_guard_open(struct form_guard **out, char err[CONFIG_ERR_MAX])
{
    return form_guard_open_with(config_str("FORM_RATE_LIMIT", "20/60s"),
                                config_raw("TRUSTED_PROXIES"), config_raw("FORM_HONEYPOT_FIELD"),
                                out, err);
}

void form_guard_close(struct form_guard *g)
{
    if (g != NULL) {
        pthread_mutex_destroy(&g->lock);
        free(g);
    }
}

static bool trusted(const struct form_guard *g, const char *addr)
{
    for (int i = 0; i < g->nproxies; i++) {
        if (strcmp(g->proxies[i], addr) == 0) {
            return true;
        }
    }
    return false;
}

void form_guard_client(const struct form_guard *g, const char *peer, const char *forwarded_for,
                       char out[FORM_GUARD_ADDR_MAX])
{
    snprintf(out, FORM_GUARD_ADDR_MAX, "%s", peer ? peer : "");
    if (forwarded_for == NULL || !trusted(g, out)) {
        return; /* only a trusted proxy's word counts: anyone can send the header */
    }
    /* Walk from the right: the last hop not itself a trusted proxy is the client. */
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", forwarded_for);
    for (char *end = copy + strlen(copy); end > copy;) {
        char *comma = end - 1;
        while (comma > copy && *comma != ',') {
            comma--;
        }
        char *hop = *comma == ',' ? comma + 1 : comma;
        *end = '\0';
        while (*hop == ' ') {
            hop++;
        }
        size_t n = strcspn(hop, " ");
        hop[n] = '\0';
        if (n > 0 && n < FORM_GUARD_ADDR_MAX) {
            snprintf(out, FORM_GUARD_ADDR_MAX, "%s", hop);
            if (!trusted(g, hop)) {
                return;
            }
        }
        end = comma;
    }
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h;
}

/* The bucket for `name`, refilled to now. Lock held. */
static struct bucket *bucket_for(struct form_guard *g, const char *name, int64_t now)
{
    struct bucket *b = &g->slots[hash(name) % FORM_GUARD_SLOTS];
    if (strcmp(b->name, name) != 0) {
        double full = b->tokens + (double)(now - b->updated_ms) * g->burst / (double)g->period_ms;
        if (b->name[0] != '\0' && full < g->burst) {
            return b; /* a busy bucket under another name: share it (strict) */
        }
        snprintf(b->name, sizeof b->name, "%s", name);
        b->tokens = g->burst;
        b->updated_ms = now;
    }
    b->tokens += (double)(now - b->updated_ms) * g->burst / (double)g->period_ms;
    if (b->tokens > g->burst) {
        b->tokens = g->burst;
    }
    b->updated_ms = now;
    return b;
}

static int64_t wait_ms(const struct form_guard *g, const struct bucket *b)
{
    double missing = 1.0 - b->tokens;
    return missing <= 0 ? 0 : (int64_t)(missing * (double)g->period_ms / g->burst) + 1;
}

int64_t form_guard_admit(struct form_guard *g, const char *client, const char *key_id,
                         int64_t now_ms)
{
    char a[FORM_GUARD_ADDR_MAX + 8], k[FORM_GUARD_ADDR_MAX + 8];
    snprintf(a, sizeof a, "ip:%s", client);
    snprintf(k, sizeof k, "key:%s", key_id);
    pthread_mutex_lock(&g->lock);
    struct bucket *ba = bucket_for(g, a, now_ms), *bk = bucket_for(g, k, now_ms);
    int64_t wa = wait_ms(g, ba), wk = wait_ms(g, bk);
    int64_t wait = wa > wk ? wa : wk;
    if (wait == 0) {
        ba->tokens -= 1.0;
        if (bk != ba) {
            bk->tokens -= 1.0;
        }
    }
    pthread_mutex_unlock(&g->lock);
    return wait;
}

bool form_guard_honeypot(const struct form_guard *g, const char *body, size_t len)
{
    if (g->honeypot[0] == '\0') {
        return false;
    }
    /* civetweb's thread stacks are small: no recursive parse of deep nesting */
    cJSON *o = json_depth_ok(body, len, JSON_DEPTH_MAX) ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, g->honeypot);
    bool filled = v != NULL && !cJSON_IsNull(v) &&
                  !(cJSON_IsString(v) && v->valuestring[0] == '\0') && !cJSON_IsFalse(v);
    cJSON_Delete(o);
    return filled;
}
