/* upstream: real or sandboxed Exotel and Zoho endpoints. */
#include "upstream.h"

#include <stdio.h>
#include <string.h>

static bool exotel_creds(void)
{
    return config_raw("EXOTEL_ACCOUNT_SID") && config_raw("EXOTEL_API_KEY") &&
           config_raw("EXOTEL_API_TOKEN");
}

static bool zoho_creds(void)
{
    return config_raw("ZOHO_CLIENT_ID") && config_raw("ZOHO_CLIENT_SECRET") &&
           config_raw("ZOHO_REFRESH_TOKEN");
}

bool upstream_needs_sandbox(void)
{
    return !exotel_creds() || !zoho_creds();
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
    snprintf(up->exotel_sid, sizeof up->exotel_sid, "%s",
             config_str("EXOTEL_ACCOUNT_SID", "sandbox"));
    snprintf(up->exotel_key, sizeof up->exotel_key, "%s",
             config_str("EXOTEL_API_KEY", "sandbox-key"));
    snprintf(up->exotel_token, sizeof up->exotel_token, "%s",
             config_str("EXOTEL_API_TOKEN", "sandbox-token"));
    snprintf(up->zoho_client_id, sizeof up->zoho_client_id, "%s",
             config_str("ZOHO_CLIENT_ID", "sandbox-client"));
    snprintf(up->zoho_client_secret, sizeof up->zoho_client_secret, "%s",
             config_str("ZOHO_CLIENT_SECRET", "sandbox-secret"));
    snprintf(up->zoho_refresh_token, sizeof up->zoho_refresh_token, "%s",
             config_str("ZOHO_REFRESH_TOKEN", "sandbox-refresh"));
    char local[64];
    snprintf(local, sizeof local, "http://127.0.0.1:%d/sandbox", app->port);

    up->exotel_sandbox = !exotel_creds();
    const char *v = config_raw("EXOTEL_BASE_URL");
    if (v != NULL) {
        snprintf(up->exotel_base, sizeof up->exotel_base, "%s", v);
    } else if (up->exotel_sandbox) {
        snprintf(up->exotel_base, sizeof up->exotel_base, "%s/exotel", local);
    } else {
        snprintf(up->exotel_base, sizeof up->exotel_base, "https://%s",
                 config_str("EXOTEL_SUBDOMAIN", "api.exotel.com"));
    }

    up->zoho_sandbox = !zoho_creds();
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
