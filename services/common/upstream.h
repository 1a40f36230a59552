/*
 * upstream: where the Exotel and Zoho APIs are, real or the sandbox, whether
 * that choice is safe, and whether the API accepts our credentials.
 *
 * An API with all three credentials (EXOTEL_ACCOUNT_SID, EXOTEL_API_KEY,
 * EXOTEL_API_TOKEN; ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN) is
 * live; with none it is simulated: the sandbox served by this process
 * (`--target=all` starts it), so a new user sees the whole flow with no
 * account. EXOTEL_BASE_URL, ZOHO_ACCOUNTS_URL and ZOHO_API_DOMAIN override
 * either choice (a proxy, a region, a sandbox in another process).
 *
 * upstream_check() refuses, at start, the configurations that would fall back
 * quietly: partial credentials, a sandbox URL no process serves, the sandbox
 * beside a live provider (unless SANDBOX=on), live calls whose callbacks would
 * go to a loopback or plain-http URL (unless ALLOW_INSECURE_CALLBACKS=true).
 *
 * The struct holds copies; nothing to free. The auth state is process-wide
 * and thread-safe.
 */
#ifndef LEADBUS_UPSTREAM_H
#define LEADBUS_UPSTREAM_H

#include "app.h"

#include <stdbool.h>

struct upstream {
    /* Credentials as configured, or the sandbox's defaults when absent. */
    char exotel_sid[64], exotel_key[128], exotel_token[128];
    char zoho_client_id[160], zoho_client_secret[160], zoho_refresh_token[256];
    bool exotel_sandbox;
    char exotel_base[APP_URL_MAX]; /* …/v1/Accounts/<sid>/… is appended by the client */
    bool zoho_sandbox;
    char zoho_accounts[APP_URL_MAX];   /* …/oauth/v2/token is appended */
    char zoho_api_domain[APP_URL_MAX]; /* "" = take api_domain from the token answer */
};

int upstream_resolve(const struct app *app, struct upstream *up, char err[CONFIG_ERR_MAX]);

enum upstream_api { UPSTREAM_EXOTEL, UPSTREAM_ZOHO, UPSTREAM_NAPIS };

/* SANDBOX: auto (default), on (simulate an API beside a live one), off (never simulate). */
enum upstream_sandbox_mode { UPSTREAM_SANDBOX_AUTO, UPSTREAM_SANDBOX_ON, UPSTREAM_SANDBOX_OFF };

enum upstream_creds { UPSTREAM_CREDS_NONE, UPSTREAM_CREDS_ALL, UPSTREAM_CREDS_PARTIAL };

/*
 * Are the credentials of `api` all set, none set, or only some? An empty
 * value counts as missing. For PARTIAL, *missing names the first absent one.
 */
enum upstream_creds upstream_creds(enum upstream_api api, const char **missing);

/* True when `--target=all` should start the sandbox: an API has neither credentials nor URL. */
bool upstream_needs_sandbox(void);

/* What this process runs, for upstream_check(). */
struct upstream_plan {
    bool uses[UPSTREAM_NAPIS]; /* a selected target talks to this API (dialer, zoho-sync) */
    bool runs_sandbox;         /* the sandbox target is selected */
    bool schedules_calls;      /* the call-scheduler is selected (it reads EXOTEL_ENABLED) */
    int port;                  /* the HTTP port (PUBLIC_BASE_URL's default) */
};

/* Refuse unsafe configurations: 0, or -1 with one line naming the variable. */
int upstream_check(const struct upstream_plan *plan, char err[CONFIG_ERR_MAX]);

/* Is `url` https:// to a host that is not loopback? (pure; for the callback URL check) */
bool upstream_url_public_https(const char *url);

/*
 * Answers from an API, by http_client after each request: a 401 from Exotel,
 * or 401s from Zoho's CRM API (not its token endpoint) for 10 s without a
 * success, mean the API refuses our credentials; a 2xx means it accepts them.
 * The change is logged (ERROR / INFO) once each way.
 */
void upstream_observe(const char *api, const char *url, long http_status);
/* False while `api` refuses our credentials (a /readyz check). */
bool upstream_auth_ok(enum upstream_api api);
/* For http_ready_check: arg is (void *)(intptr_t)api. */
bool upstream_auth_ready(void *arg);

#endif
