/*
 * upstream: where the Exotel and Zoho APIs are, real or the sandbox.
 *
 * With no Exotel credentials (EXOTEL_ACCOUNT_SID, EXOTEL_API_KEY,
 * EXOTEL_API_TOKEN) or no Zoho credentials (ZOHO_CLIENT_ID,
 * ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN), that API is the sandbox served by
 * this process (`--target=all` starts it), so a new user sees the whole flow
 * with no account. EXOTEL_BASE_URL, ZOHO_ACCOUNTS_URL and ZOHO_API_DOMAIN
 * override either choice (a proxy, a region, a split-mode sandbox).
 * The struct holds copies; nothing to free.
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

/* True when the credentials of an API are absent, so `--target=all` needs the sandbox. */
bool upstream_needs_sandbox(void);

#endif
