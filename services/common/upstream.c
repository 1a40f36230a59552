/* upstream: real or sandboxed Exotel and Zoho endpoints, the start-up refusals, auth state. */
#include "upstream.h"
#include "clock.h"
#include "log.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const cred_names[UPSTREAM_NAPIS][3] = {
    {"EXOTEL_ACCOUNT_SID", "EXOTEL_API_KEY", "EXOTEL_API_TOKEN"},
    {"ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN"},
};
static const char *const url_names[UPSTREAM_NAPIS] = {"EXOTEL_BASE_URL", "ZOHO_ACCOUNTS_URL"};
static const char *const api_names[UPSTREAM_NAPIS] = {"Exotel", "Zoho"};

enum upstream_creds upstream_creds(enum upstream_api api, const char **missing)
{
    int set = 0;
    *missing = NULL;
    for (int i = 0; i < 3; i++) {
        if (config_raw(cred_names[api][i]) != NULL) {
            set++;
        } else if (*missing == NULL) {
            *missing = cred_names[api][i];
        }
    }
    if (set == 3) {
        return UPSTREAM_CREDS_ALL;
    }
    return set == 0 ? UPSTREAM_CREDS_NONE : UPSTREAM_CREDS_PARTIAL;
}

static bool live(enum upstream_api api)
{
    const char *missing;
    return upstream_creds(api, &missing) == UPSTREAM_CREDS_ALL;
}

bool upstream_needs_sandbox(void)
{
    for (int api = 0; api < UPSTREAM_NAPIS; api++) {
        if (!live(api) && config_raw(url_names[api]) == NULL) {
            return true;
        }
    }
    return false;
}

int upstream_resolve(const struct app *app, struct upstream *up, char err[CONFIG_ERR_MAX])
{
    static const char *const dcs[] = {"com", "in", "eu",     "com.au", "jp",
                                      "ca",  "sa", "com.cn", NULL};
    static const char *const accounts[] = {
        "accounts.zoho.com", "accounts.zoho.in",      "accounts.zoho.eu", "accounts.zoho.com.au",
        "accounts.zoho.jp",  "accounts.zohocloud.ca", "accounts.zoho.sa", "accounts.zoho.com.cn"};
    int dc;
    if (config_enum("ZOHO_DC", "com", dcs, &dc, err) != 0) {
        return -1;
    }
    memset(up, 0, sizeof *up);
    const struct {
        char *dst;
        size_t size;
        const char *name, *fallback; /* the sandbox's, without credentials */
    } creds[] = {
        {up->exotel_sid, sizeof up->exotel_sid, "EXOTEL_ACCOUNT_SID", "sandbox"},
        {up->exotel_key, sizeof up->exotel_key, "EXOTEL_API_KEY", "sandbox-key"},
        {up->exotel_token, sizeof up->exotel_token, "EXOTEL_API_TOKEN", "sandbox-token"},
        {up->zoho_client_id, sizeof up->zoho_client_id, "ZOHO_CLIENT_ID", "sandbox-client"},
        {up->zoho_client_secret, sizeof up->zoho_client_secret, "ZOHO_CLIENT_SECRET",
         "sandbox-secret"},
        {up->zoho_refresh_token, sizeof up->zoho_refresh_token, "ZOHO_REFRESH_TOKEN",
         "sandbox-refresh"},
    };
    for (size_t i = 0; i < sizeof creds / sizeof creds[0]; i++) {
        snprintf(creds[i].dst, creds[i].size, "%s", config_str(creds[i].name, creds[i].fallback));
    }
    char local[64];
    snprintf(local, sizeof local, "http://127.0.0.1:%d/sandbox", app->port);

    up->exotel_sandbox = !live(UPSTREAM_EXOTEL);
    const char *v = config_raw("EXOTEL_BASE_URL");
    if (v != NULL) {
        snprintf(up->exotel_base, sizeof up->exotel_base, "%s", v);
    } else if (up->exotel_sandbox) {
        snprintf(up->exotel_base, sizeof up->exotel_base, "%s/exotel", local);
    } else {
        snprintf(up->exotel_base, sizeof up->exotel_base, "https://%s",
                 config_str("EXOTEL_SUBDOMAIN", "api.exotel.com"));
    }

    up->zoho_sandbox = !live(UPSTREAM_ZOHO);
    v = config_raw("ZOHO_ACCOUNTS_URL");
    if (v != NULL) {
        snprintf(up->zoho_accounts, sizeof up->zoho_accounts, "%s", v);
    } else if (up->zoho_sandbox) {
        snprintf(up->zoho_accounts, sizeof up->zoho_accounts, "%s/zoho", local);
    } else {
        snprintf(up->zoho_accounts, sizeof up->zoho_accounts, "https://%s", accounts[dc]);
    }
    v = config_raw("ZOHO_API_DOMAIN");
    if (v != NULL) {
        snprintf(up->zoho_api_domain, sizeof up->zoho_api_domain, "%s", v);
    } else if (up->zoho_sandbox) {
        snprintf(up->zoho_api_domain, sizeof up->zoho_api_domain, "%s/zoho", local);
    }
    for (const char *u = up->exotel_base;; u = up->zoho_accounts) {
        if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) {
            snprintf(err, CONFIG_ERR_MAX, "%s: expected an http:// or https:// URL",
                     u == up->exotel_base ? "EXOTEL_BASE_URL" : "ZOHO_ACCOUNTS_URL");
            return -1;
        }
        if (u == up->zoho_accounts) {
            break;
        }
    }
    return 0;
}

/* ---- start-up refusals ---- */

struct typo {
    const char *missing;
    char found[64]; /* an unknown name whose suggestion is the missing one */
};

static void find_typo(const char *name, const char *suggestion, void *arg)
{
    struct typo *t = arg;
    if (suggestion != NULL && strcmp(suggestion, t->missing) == 0 && t->found[0] == '\0') {
        snprintf(t->found, sizeof t->found, "%s", name);
    }
}

/* All three credentials of an API, or none: a partial set is a mistake, never a sandbox. */
static int check_complete(enum upstream_api api, char err[CONFIG_ERR_MAX])
{
    const char *missing;
    if (upstream_creds(api, &missing) != UPSTREAM_CREDS_PARTIAL) {
        return 0;
    }
    struct typo t = {missing, ""};
    config_each_unknown(find_typo, &t);
    char hint[96] = "";
    if (t.found[0] != '\0') {
        snprintf(hint, sizeof hint, "; %s is set: a typo?", t.found);
    }
    const char *const *n = cred_names[api];
    snprintf(err, CONFIG_ERR_MAX,
             "%s: missing or empty while other %s credentials are set (%s, %s, %s: all three or "
             "none)%s",
             missing, api_names[api], n[0], n[1], n[2], hint);
    return -1;
}

/* An API this process talks to with no credentials must reach a sandbox that exists. */
static int check_simulated(const struct upstream_plan *p, enum upstream_sandbox_mode mode,
                           enum upstream_api api, char err[CONFIG_ERR_MAX])
{
    if (!p->uses[api] || live(api)) {
        return 0;
    }
    const char *const *n = cred_names[api];
    if (mode == UPSTREAM_SANDBOX_OFF) {
        snprintf(err, CONFIG_ERR_MAX,
                 "%s: required with SANDBOX=off (%s is never simulated: set %s, %s, %s)", n[0],
                 api_names[api], n[0], n[1], n[2]);
        return -1;
    }
    if (config_raw(url_names[api]) == NULL && !p->runs_sandbox) {
        snprintf(err, CONFIG_ERR_MAX,
                 "%s: %s has no credentials and this process does not run the sandbox; set %s, "
                 "%s, %s, or point %s at a sandbox",
                 url_names[api], api_names[api], n[0], n[1], n[2], url_names[api]);
        return -1;
    }
    return 0;
}

/* The sandbox in a process that also talks to a live provider: only when SANDBOX=on says so. */
static int check_beside_live(const struct upstream_plan *p, enum upstream_sandbox_mode mode,
                             char err[CONFIG_ERR_MAX])
{
    if (!p->runs_sandbox) {
        return 0;
    }
    if (mode == UPSTREAM_SANDBOX_OFF) {
        snprintf(err, CONFIG_ERR_MAX, "SANDBOX: off, but the sandbox target is selected");
        return -1;
    }
    for (int api = 0; api < UPSTREAM_NAPIS && mode != UPSTREAM_SANDBOX_ON; api++) {
        if (!p->uses[api] || !live(api)) {
            continue;
        }
        int other = 1 - api;
        if (p->uses[other] && !live(other)) {
            snprintf(err, CONFIG_ERR_MAX,
                     "SANDBOX: %s is live but %s has no credentials and would be simulated beside "
                     "it; set %s's credentials, or SANDBOX=on to allow it",
                     api_names[api], api_names[other], api_names[other]);
        } else {
            snprintf(err, CONFIG_ERR_MAX,
                     "SANDBOX: the sandbox target runs beside live %s; set SANDBOX=on to allow it",
                     api_names[api]);
        }
        return -1;
    }
    return 0;
}

bool upstream_url_public_https(const char *url)
{
    if (strncasecmp(url, "https://", 8) != 0) {
        return false;
    }
    const char *host = url + 8;
    size_t end = strcspn(host, "/?#");
    const char *at = memchr(host, '@', end);
    if (at != NULL) {
        end -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    char h[256];
    size_t n = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":/?#");
    if (n > end) {
        n = end;
    }
    if (n == 0 || n >= sizeof h) {
        return false;
    }
    memcpy(h, host, n);
    h[n] = '\0';
    static const char *const loopback[] = {"localhost", "[::1]", "[::]", "0.0.0.0", NULL};
    for (int i = 0; loopback[i] != NULL; i++) {
        if (strcasecmp(h, loopback[i]) == 0) {
            return false;
        }
    }
    size_t hl = strlen(h);
    bool dot_localhost = hl > 10 && strcasecmp(h + hl - 10, ".localhost") == 0;
    return strncmp(h, "127.", 4) != 0 && !dot_localhost;
}

/* Live calls send Exotel a callback URL: it must be one Exotel can reach, over TLS. */
static int check_callbacks(const struct upstream_plan *p, char err[CONFIG_ERR_MAX])
{
    if (!p->uses[UPSTREAM_EXOTEL] || !live(UPSTREAM_EXOTEL)) {
        return 0;
    }
    bool enabled = true, insecure;
    if (p->schedules_calls || config_raw("EXOTEL_ENABLED") != NULL) {
        /* Without the scheduler here, only an explicit false says no calls will come. */
        if (config_bool("EXOTEL_ENABLED", !p->schedules_calls, &enabled, err) != 0) {
            return -1;
        }
    }
    if (!enabled) {
        return 0;
    }
    if (config_bool("ALLOW_INSECURE_CALLBACKS", false, &insecure, err) != 0) {
        return -1;
    }
    char def[64];
    snprintf(def, sizeof def, "http://127.0.0.1:%d", p->port);
    const char *url = config_str("PUBLIC_BASE_URL", def);
    if (insecure || upstream_url_public_https(url)) {
        return 0;
    }
    snprintf(err, CONFIG_ERR_MAX,
             "PUBLIC_BASE_URL: live Exotel calls need an https URL Exotel can reach (got '%.80s'); "
             "set ALLOW_INSECURE_CALLBACKS=true to use it anyway",
             url);
    return -1;
}

int upstream_check(const struct upstream_plan *p, char err[CONFIG_ERR_MAX])
{
    static const char *const modes[] = {"auto", "on", "off", NULL};
    int mode;
    if (config_enum("SANDBOX", "auto", modes, &mode, err) != 0) {
        return -1;
    }
    for (int api = 0; api < UPSTREAM_NAPIS; api++) {
        if (check_complete(api, err) != 0 || check_simulated(p, mode, api, err) != 0) {
            return -1;
        }
    }
    if (check_beside_live(p, mode, err) != 0 || check_callbacks(p, err) != 0) {
        return -1;
    }
    return 0;
}

/* ---- do the APIs accept our credentials? ---- */

#define ZOHO_AUTH_PERSIST_MS 10000

static pthread_mutex_t auth_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    bool failing;
    int64_t first_401_ms; /* first 401 since the last success; 0: none */
} auth[UPSTREAM_NAPIS];

void upstream_observe(const char *api_label, const char *url, long status)
{
    int api = -1;
    if (api_label != NULL && strcmp(api_label, "exotel") == 0) {
        api = UPSTREAM_EXOTEL;
    } else if (api_label != NULL && strcmp(api_label, "zoho") == 0) {
        api = UPSTREAM_ZOHO;
    }
    /* Zoho's token endpoint answers errors with 200; zoho-sync reads those itself. */
    bool token_url = url != NULL && strstr(url, "/oauth/") != NULL;
    if (api < 0 || token_url || (status != 401 && (status < 200 || status > 299))) {
        return;
    }
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&auth_lock);
    bool was = auth[api].failing;
    if (status == 401) {
        if (auth[api].first_401_ms == 0) {
            auth[api].first_401_ms = now;
        }
        /* Zoho answers 401 to an expired token too: only a lasting refusal counts. */
        auth[api].failing =
            api == UPSTREAM_EXOTEL || now - auth[api].first_401_ms >= ZOHO_AUTH_PERSIST_MS;
    } else {
        auth[api].first_401_ms = 0;
        auth[api].failing = false;
    }
    bool is = auth[api].failing;
    pthread_mutex_unlock(&auth_lock);
    const char *const *n = cred_names[api];
    char names[96];
    snprintf(names, sizeof names, "%s, %s, %s", n[0], n[1], n[2]);
    if (is && !was) {
        log_error(api == UPSTREAM_EXOTEL
                      ? "Exotel refuses our credentials (HTTP 401): not ready until it accepts them"
                      : "Zoho keeps refusing our access tokens (HTTP 401): not ready until it "
                        "accepts them",
                  LOG_FIELDS(LOG_S("settings", names)));
    } else if (was && !is) {
        log_info(api == UPSTREAM_EXOTEL ? "Exotel accepts our credentials again"
                                        : "Zoho accepts our credentials again",
                 NULL);
    }
}

bool upstream_auth_ok(enum upstream_api api)
{
    pthread_mutex_lock(&auth_lock);
    bool ok = !auth[api].failing;
    pthread_mutex_unlock(&auth_lock);
    return ok;
}

bool upstream_auth_ready(void *arg)
{
    return upstream_auth_ok((enum upstream_api)(intptr_t)arg);
}
