/* config: environment + .env, typed getters. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct kv {
    char *name;
    char *value;
};

static struct kv *file_vars;
static size_t file_count;

static void add_var(const char *name, const char *value, void *arg)
{
    (void)arg;
    struct kv *grown = realloc(file_vars, (file_count + 1) * sizeof *grown);
    if (grown == NULL) {
        return;
    }
    file_vars = grown;
    char *n = strdup(name), *v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return;
    }
    file_vars[file_count].name = n;
    file_vars[file_count].value = v;
    file_count++;
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || isdigit((unsigned char)s[0])) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') {
            return false;
        }
    }
    return true;
}

/* Parses one line; 0 = ok (maybe nothing), -1 = malformed. */
static int parse_line(char *line, void (*fn)(const char *, const char *, void *), void *arg)
{
    char *p = line;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p == '\0' || *p == '#') {
        return 0;
    }
    if (strncmp(p, "export ", 7) == 0) {
        p += 7;
        while (*p == ' ') {
            p++;
        }
    }
    char *eq = strchr(p, '=');
    if (eq == NULL) {
        return -1;
    }
    char *name_end = eq;
    while (name_end > p && (name_end[-1] == ' ' || name_end[-1] == '\t')) {
        name_end--;
    }
    if (!valid_name(p, (size_t)(name_end - p))) {
        return -1;
    }
    *name_end = '\0';
    char *v = eq + 1;
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    if (*v == '"' || *v == '\'') {
        char q = *v++;
        char *end = strchr(v, q);
        if (end == NULL) {
            return -1;
        }
        *end = '\0';
        char *rest = end + 1;
        while (*rest == ' ' || *rest == '\t') {
            rest++;
        }
        if (*rest != '\0' && *rest != '#') {
            return -1;
        }
    } else {
        /* Unquoted: a ` #` starts a comment; trailing blanks go. */
        char *hash = strstr(v, " #");
        if (hash != NULL) {
            *hash = '\0';
        }
        size_t n = strlen(v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r')) {
            v[--n] = '\0';
        }
    }
    fn(p, v, arg);
    return 0;
}

int config_parse_env(const char *text, size_t len,
                     void (*fn)(const char *name, const char *value, void *arg), void *arg)
{
    char *buf = malloc(len + 1);
    if (buf == NULL) {
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    int lineno = 0, bad = 0;
    char *cur = buf;
    while (cur != NULL && bad == 0) {
        char *nl = strchr(cur, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        lineno++;
        size_t n = strlen(cur);
        if (n > 0 && cur[n - 1] == '\r') {
            cur[n - 1] = '\0';
        }
        /* A NUL inside the text ends the line early; the rest of it is ignored. */
        if (parse_line(cur, fn, arg) != 0) {
            bad = lineno;
        }
        cur = nl != NULL ? nl + 1 : NULL;
    }
    free(buf);
    return bad;
}

int config_load(const char *path, char err[CONFIG_ERR_MAX])
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return 0;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            char *grown = realloc(text, cap);
            if (grown == NULL) {
                free(text);
                fclose(f);
                snprintf(err, CONFIG_ERR_MAX, "%s: out of memory", path);
                return -1;
            }
            text = grown;
        }
        memcpy(text + len, chunk, n);
        len += n;
    }
    fclose(f);
    int bad = config_parse_env(text != NULL ? text : "", len, add_var, NULL);
    free(text);
    if (bad != 0) {
        snprintf(err, CONFIG_ERR_MAX, "%s line %d: expected NAME=value", path, bad);
        return -1;
    }
    return 0;
}

void config_free(void)
{
    for (size_t i = 0; i < file_count; i++) {
        free(file_vars[i].name);
        free(file_vars[i].value);
    }
    free(file_vars);
    file_vars = NULL;
    file_count = 0;
}

const char *config_raw(const char *name)
{
    const char *v = getenv(name);
    if (v != NULL && *v != '\0') {
        return v;
    }
    for (size_t i = file_count; i-- > 0;) {
        if (strcmp(file_vars[i].name, name) == 0) {
            return *file_vars[i].value != '\0' ? file_vars[i].value : NULL;
        }
    }
    return NULL;
}

const char *config_str(const char *name, const char *def)
{
    const char *v = config_raw(name);
    return v != NULL ? v : def;
}

int config_int(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
               char err[CONFIG_ERR_MAX])
{
    const char *v = config_raw(name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < min || x > max) {
        snprintf(err, CONFIG_ERR_MAX, "%s: expected an integer from %lld to %lld", name,
                 (long long)min, (long long)max);
        return -1;
    }
    *out = x;
    return 0;
}

int config_bool(const char *name, bool def, bool *out, char err[CONFIG_ERR_MAX])
{
    static const char *const choices[] = {"false", "true", "0",  "1", "no",
                                          "yes",   "off",  "on", NULL};
    int idx;
    if (config_enum(name, def ? "true" : "false", choices, &idx, err) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "%s: expected true or false", name);
        return -1;
    }
    *out = idx % 2 == 1;
    return 0;
}

int config_enum(const char *name, const char *def, const char *const *choices, int *out,
                char err[CONFIG_ERR_MAX])
{
    const char *v = config_str(name, def);
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcasecmp(v, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    int n = snprintf(err, CONFIG_ERR_MAX, "%s: expected one of", name);
    for (int i = 0; choices[i] != NULL && n > 0 && n < CONFIG_ERR_MAX; i++) {
        n += snprintf(err + n, (size_t)(CONFIG_ERR_MAX - n), "%s%s", i ? ", " : " ", choices[i]);
    }
    return -1;
}

/* ---- the settings leadbus knows ---- */

/*
 * Every setting any target reads, in one place (README's configuration table
 * describes each). A name read anywhere must be listed here, or the start-up
 * check calls it unknown.
 */
static const char *const known[] = {
    /* process */
    "PORT", "HTTP_BIND", "HTTP_THREADS", "DATA_DIR", "DB_SYNCHRONOUS", "LOG_LEVEL", "LOG_FORMAT",
    "LEADBUS_TARGET", "API_KEYS", "MAX_BODY_BYTES", "DEFAULT_COUNTRY", "STATS_REQUIRE_KEY",
    "SANDBOX", "ALLOW_INSECURE_CALLBACKS", "PUBLIC_BASE_URL",
    /* web forms */
    "FORM_KEYS", "CORS_ALLOWED_ORIGINS", "FORM_RATE_LIMIT", "FORM_HONEYPOT_FIELD",
    "TRUSTED_PROXIES",
    /* data lifecycle (issue 19) */
    "LEAD_RETENTION_DAYS", "STATS_RETENTION_DAYS",
    /* the bus */
    "BUS_RETENTION_DAYS", "BUS_INGEST_PUB", "BUS_INGEST_REPLAY", "BUS_INGEST_NAME",
    "BUS_ZOHO_SYNC_PUB", "BUS_ZOHO_SYNC_REPLAY", "BUS_ZOHO_SYNC_NAME", "BUS_CALL_SCHEDULER_PUB",
    "BUS_CALL_SCHEDULER_REPLAY", "BUS_CALL_SCHEDULER_NAME", "BUS_DIALER_PUB", "BUS_DIALER_REPLAY",
    "BUS_DIALER_NAME", "BUS_TLS_CA", "BUS_TLS_CERT", "BUS_TLS_KEY", "BUS_INSECURE",
    "BUS_INGEST_DISCOVER", "BUS_DISCOVER_INTERVAL_MS",
    /* Exotel */
    "EXOTEL_ACCOUNT_SID", "EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "EXOTEL_SUBDOMAIN",
    "EXOTEL_BASE_URL", "EXOTEL_ENABLED", "EXOTEL_EXOPHONE", "EXOTEL_APP_ID", "EXOTEL_AGENT_NUMBER",
    "EXOTEL_CALL_DELAY_MS", "EXOTEL_CALL_TYPE", "EXOTEL_MAX_RETRIES", "EXOTEL_RATE_LIMIT_CALLS",
    "EXOTEL_RATE_LIMIT_WINDOW_MS", "EXOTEL_RETRY_ON", "EXOTEL_RETRY_DELAYS_MS",
    "EXOTEL_RING_TIMEOUT_S", "EXOTEL_TIME_LIMIT_S", "EXOTEL_RECORD", "EXOTEL_HTTP_TIMEOUT_MS",
    "EXOTEL_CONCURRENCY", "EXOTEL_CALLBACK_TOKEN", "EXOTEL_CALLBACK_GRACE_MS",
    "EXOTEL_RECONCILE_DELAY_MS", "EXOTEL_RECONCILE_WINDOW_MS", "EXOTEL_TIMEZONE",
    "EXOTEL_DND_PRECHECK", "DIAL_COUNTRIES", "MAX_CALLS_PER_NUMBER_PER_DAY",
    /* SMS follow-up (services/sms) */
    "SMS_ON", "SMS_TEMPLATE", "SMS_AGENT_NAME", "EXOTEL_SMS_SENDER", "EXOTEL_DLT_ENTITY_ID",
    "EXOTEL_DLT_TEMPLATE_ID", "EXOTEL_SMS_TYPE",
    /* the agent pool (issue 20) */
    "AGENTS", "AGENTS_FILE", "AGENT_STRATEGY", "AGENT_WAIT_MAX_MS", "SANDBOX_AGENT_NO_ANSWER",
    /* calling hours */
    "CALL_HOURS", "CALL_DAYS", "CALL_TIMEZONE", "CALL_DEDUPE_WINDOW_MS",
    /* Zoho */
    "ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "ZOHO_DC", "ZOHO_ACCOUNTS_URL",
    "ZOHO_API_DOMAIN", "ZOHO_EXTERNAL_ID_FIELD", "ZOHO_DUPLICATE_CHECK_FIELDS",
    "ZOHO_DEFAULT_COMPANY", "ZOHO_MAX_RETRY_MS", "ZOHO_TIMEOUT_MS", "ZOHO_BACKOFF_MAX_MS",
    "ZOHO_CALL_RESULT", "ZOHO_CALL_STATUS_FIELD", "ZOHO_CONCURRENCY", "ZOHO_OUTCOME_MAX_TRIES",
    /* the sandbox */
    "SANDBOX_RING_MS", "SANDBOX_SEED", "SANDBOX_OUTCOMES", "SANDBOX_OUTCOME_MODE",
    "SANDBOX_EXOTEL_RATE_LIMIT", "SANDBOX_EXOTEL_RATE_WINDOW_MS", "SANDBOX_DND_NUMBERS",
    "SANDBOX_SMS_DELIVER_MS", "SANDBOX_INVALID_NUMBERS", "SANDBOX_FAULTS", "SANDBOX_HANG_MS",
    "SANDBOX_REQUEST_LOG", "SANDBOX_RECORDS_MAX", "SANDBOX_ZOHO_TOKEN_TTL_S",
    "SANDBOX_ZOHO_MINT_LIMIT", "SANDBOX_ZOHO_REQUIRED_FIELDS", "SANDBOX_ZOHO_CUSTOM_FIELDS",
    /* lead sources (issue 21): Meta Lead Ads, and signed webhooks by name (`*`: a name) */
    "META_VERIFY_TOKEN", "META_APP_SECRET", "META_PAGE_TOKEN", "META_GRAPH_URL",
    "META_GRAPH_VERSION", "META_MAX_TRIES", "META_RETRY_BASE_MS", "META_RETRY_MAX_MS",
    "META_HTTP_TIMEOUT_MS", "META_FIELD_MAP", "META_FORM_*_MAP", "SOURCE_*_SECRET", "SOURCE_*_MAP",
    "SOURCE_*_ID", "SOURCE_*_HEADER",
    /* leads created in Zoho CRM (issue 21) */
    "ZOHO_WEBHOOK_SECRET", "ZOHO_NOTIFY_URL", "ZOHO_NOTIFY_INGEST_URL", "ZOHO_NOTIFY_CHANNEL_ID",
    "ZOHO_NOTIFY_TTL_S", "ZOHO_NOTIFY_RENEW_S", "ZOHO_NOTIFY_MAX_TRIES", NULL};

static const char *const prefixes[] = {"EXOTEL_", "ZOHO_", "BUS_",  "CALL_",   "SANDBOX_",
                                       "LEAD",    "DB_",   "META_", "SOURCE_", NULL};

bool config_pattern_match(const char *pattern, const char *name)
{
    const char *star = strchr(pattern, '*');
    if (star == NULL) {
        return strcmp(pattern, name) == 0;
    }
    size_t pre = (size_t)(star - pattern), post = strlen(star + 1), n = strlen(name);
    if (n <= pre + post || strncmp(name, pattern, pre) != 0 ||
        strcmp(name + n - post, star + 1) != 0) {
        return false;
    }
    for (size_t i = pre; i < n - post; i++) { /* the `*` part: a name in upper case */
        if (!isupper((unsigned char)name[i]) && !isdigit((unsigned char)name[i]) &&
            name[i] != '_') {
            return false;
        }
    }
    return true;
}

bool config_known(const char *name)
{
    for (int i = 0; known[i] != NULL; i++) {
        if (config_pattern_match(known[i], name)) {
            return true;
        }
    }
    return false;
}

bool config_has_prefix(const char *name)
{
    for (int i = 0; prefixes[i] != NULL; i++) {
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) {
            return true;
        }
    }
    return false;
}

#define NAME_MAX_CMP 64

int config_distance(const char *a, const char *b)
{
    size_t la = strnlen(a, NAME_MAX_CMP), lb = strnlen(b, NAME_MAX_CMP);
    int prev[NAME_MAX_CMP + 1], cur[NAME_MAX_CMP + 1];
    for (size_t j = 0; j <= lb; j++) {
        prev[j] = (int)j;
    }
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            int best = sub < del ? sub : del;
            cur[j] = best < ins ? best : ins;
        }
        memcpy(prev, cur, sizeof prev);
    }
    return prev[lb];
}

const char *config_suggest(const char *name)
{
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; known[i] != NULL; i++) {
        if (strchr(known[i], '*') != NULL) {
            continue; /* a pattern is no spelling to suggest */
        }
        int d = config_distance(name, known[i]);
        if (d < best_d) {
            best_d = d;
            best = known[i];
        }
    }
    /* Close means a slip of the keyboard: at most 3 edits, and under a third of the name. */
    size_t n = strlen(name);
    return best_d <= 3 && (size_t)best_d * 3 <= n ? best : NULL;
}

struct unknown_walk {
    void (*fn)(const char *name, const char *suggestion, void *arg);
    void *arg;
};

static void report_unknown(const char *name, struct unknown_walk *w)
{
    if (config_has_prefix(name) && !config_known(name)) {
        w->fn(name, config_suggest(name), w->arg);
    }
}

extern char **environ;

void config_each_unknown(void (*fn)(const char *name, const char *suggestion, void *arg), void *arg)
{
    struct unknown_walk w = {fn, arg};
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        char name[NAME_MAX_CMP * 2];
        size_t n = strcspn(*e, "=");
        if (n >= sizeof name) {
            continue;
        }
        memcpy(name, *e, n);
        name[n] = '\0';
        report_unknown(name, &w);
    }
    for (size_t i = 0; i < file_count; i++) {
        if (getenv(file_vars[i].name) == NULL) { /* already reported from the environment */
            report_unknown(file_vars[i].name, &w);
        }
    }
}

void config_each_name(const char *prefix, void (*fn)(const char *name, void *arg), void *arg)
{
    size_t pl = strlen(prefix);
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        char name[NAME_MAX_CMP * 2];
        size_t n = strcspn(*e, "=");
        if (n >= sizeof name || strncmp(*e, prefix, pl) != 0 || (*e)[n] != '=' ||
            (*e)[n + 1] == '\0') {
            continue;
        }
        memcpy(name, *e, n);
        name[n] = '\0';
        fn(name, arg);
    }
    for (size_t i = 0; i < file_count; i++) {
        if (getenv(file_vars[i].name) == NULL && strncmp(file_vars[i].name, prefix, pl) == 0 &&
            file_vars[i].value[0] != '\0') {
            fn(file_vars[i].name, arg);
        }
    }
}
