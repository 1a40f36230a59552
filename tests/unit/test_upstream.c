/* Unit tests for upstream: credential completeness, the start-up refusals, callback URLs, auth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const all_vars[] = {"EXOTEL_ACCOUNT_SID",
                                       "EXOTEL_API_KEY",
                                       "EXOTEL_API_TOKEN",
                                       "EXOTEL_BASE_URL",
                                       "ZOHO_CLIENT_ID",
                                       "ZOHO_CLIENT_SECRET",
                                       "ZOHO_REFRESH_TOKEN",
                                       "ZOHO_ACCOUNTS_URL",
                                       "SANDBOX",
                                       "EXOTEL_ENABLED",
                                       "PUBLIC_BASE_URL",
                                       "ALLOW_INSECURE_CALLBACKS",
                                       "EXOTEL_APIKEY",
                                       NULL};

static int clean(void **state)
{
    (void)state;
    for (int i = 0; all_vars[i] != NULL; i++) {
        unsetenv(all_vars[i]);
    }
    return 0;
}

static void live_exotel(void)
{
    setenv("EXOTEL_ACCOUNT_SID", "sid", 1);
    setenv("EXOTEL_API_KEY", "key", 1);
    setenv("EXOTEL_API_TOKEN", "token", 1);
}

static void live_zoho(void)
{
    setenv("ZOHO_CLIENT_ID", "id", 1);
    setenv("ZOHO_CLIENT_SECRET", "secret", 1);
    setenv("ZOHO_REFRESH_TOKEN", "refresh", 1);
}

static void test_creds_completeness(void **state)
{
    (void)state;
    const char *missing = "x";
    assert_int_equal(upstream_creds(UPSTREAM_EXOTEL, &missing), UPSTREAM_CREDS_NONE);
    live_exotel();
    assert_int_equal(upstream_creds(UPSTREAM_EXOTEL, &missing), UPSTREAM_CREDS_ALL);
    assert_null(missing);
    setenv("EXOTEL_API_TOKEN", "", 1); /* empty counts as missing */
    assert_int_equal(upstream_creds(UPSTREAM_EXOTEL, &missing), UPSTREAM_CREDS_PARTIAL);
    assert_string_equal(missing, "EXOTEL_API_TOKEN");
    setenv("ZOHO_CLIENT_SECRET", "s", 1);
    assert_int_equal(upstream_creds(UPSTREAM_ZOHO, &missing), UPSTREAM_CREDS_PARTIAL);
    assert_string_equal(missing, "ZOHO_CLIENT_ID");
}

static int check(bool exotel, bool zoho, bool sandbox, bool scheduler, char err[CONFIG_ERR_MAX])
{
    struct upstream_plan p = {.uses = {exotel, zoho},
                              .runs_sandbox = sandbox,
                              .schedules_calls = scheduler,
                              .port = 3000};
    err[0] = '\0';
    return upstream_check(&p, err);
}

static void test_partial_is_refused_and_named(void **state)
{
    (void)state;
    char err[CONFIG_ERR_MAX];
    setenv("EXOTEL_ACCOUNT_SID", "sid", 1);
    setenv("EXOTEL_APIKEY", "key", 1); /* a typo: EXOTEL_API_KEY stays missing */
    setenv("EXOTEL_API_TOKEN", "token", 1);
    assert_int_equal(check(true, true, true, true, err), -1);
    assert_non_null(strstr(err, "EXOTEL_API_KEY: missing or empty"));
    assert_non_null(strstr(err, "EXOTEL_APIKEY is set: a typo?"));
    /* A partial set is refused even by a process that does not use that API. */
    assert_int_equal(check(false, true, false, false, err), -1);
    assert_int_equal(strncmp(err, "EXOTEL_API_KEY:", 15), 0);
}

static void test_no_sandbox_to_fall_back_to(void **state)
{
    (void)state;
    char err[CONFIG_ERR_MAX];
    /* make run: nothing configured, the sandbox in this process. */
    assert_int_equal(check(true, true, true, true, err), 0);
    assert_true(upstream_needs_sandbox());
    /* A split dialer with neither credentials nor a URL: nobody serves its /sandbox. */
    assert_int_equal(check(true, false, false, false, err), -1);
    assert_int_equal(strncmp(err, "EXOTEL_BASE_URL: Exotel has no credentials", 42), 0);
    assert_int_equal(check(false, true, false, false, err), -1);
    assert_int_equal(strncmp(err, "ZOHO_ACCOUNTS_URL:", 18), 0);
    /* Explicit URLs (a sandbox in another process) are fine. */
    setenv("EXOTEL_BASE_URL", "http://127.0.0.1:9/sandbox/exotel", 1);
    assert_int_equal(check(true, false, false, false, err), 0);
    /* SANDBOX=off: an API without credentials is refused, whatever the URL. */
    setenv("SANDBOX", "off", 1);
    assert_int_equal(check(true, false, false, false, err), -1);
    assert_int_equal(strncmp(err, "EXOTEL_ACCOUNT_SID: required with SANDBOX=off", 45), 0);
    setenv("SANDBOX", "maybe", 1);
    assert_int_equal(check(true, false, false, false, err), -1);
    assert_int_equal(strncmp(err, "SANDBOX: expected one of auto, on, off", 38), 0);
}

static void test_sandbox_beside_live(void **state)
{
    (void)state;
    char err[CONFIG_ERR_MAX];
    live_exotel();
    assert_true(upstream_needs_sandbox()); /* Zoho has nothing */
    assert_int_equal(check(true, true, true, true, err), -1);
    assert_int_equal(strncmp(err, "SANDBOX: Exotel is live but Zoho has no credentials", 51), 0);
    setenv("SANDBOX", "on", 1);
    assert_int_equal(check(true, true, true, true, err), 0);
    /* Both live: no sandbox is needed, and one selected by hand needs SANDBOX=on too. */
    live_zoho();
    assert_false(upstream_needs_sandbox());
    unsetenv("SANDBOX");
    assert_int_equal(check(true, true, true, true, err), -1);
    assert_non_null(strstr(err, "the sandbox target runs beside live"));
    assert_int_equal(check(true, true, false, true, err), 0);
}

static void test_live_callbacks(void **state)
{
    (void)state;
    char err[CONFIG_ERR_MAX];
    live_exotel();
    /* The scheduler here and EXOTEL_ENABLED unset: live calls are off, nothing to check. */
    assert_int_equal(check(true, false, false, true, err), 0);
    setenv("EXOTEL_ENABLED", "true", 1);
    assert_int_equal(check(true, false, false, true, err), -1);
    assert_non_null(strstr(err, "PUBLIC_BASE_URL: live Exotel calls need an https URL"));
    assert_non_null(strstr(err, "http://127.0.0.1:3000"));
    setenv("PUBLIC_BASE_URL", "https://leads.example.com", 1);
    assert_int_equal(check(true, false, false, true, err), 0);
    setenv("PUBLIC_BASE_URL", "http://leads.example.com", 1);
    assert_int_equal(check(true, false, false, true, err), -1);
    setenv("ALLOW_INSECURE_CALLBACKS", "true", 1);
    assert_int_equal(check(true, false, false, true, err), 0);
    unsetenv("ALLOW_INSECURE_CALLBACKS");
    /* A dialer without the scheduler: only an explicit false means no calls will come. */
    unsetenv("EXOTEL_ENABLED");
    assert_int_equal(check(true, false, false, false, err), -1);
    setenv("EXOTEL_ENABLED", "false", 1);
    assert_int_equal(check(true, false, false, false, err), 0);
}

static void test_public_https(void **state)
{
    (void)state;
    assert_true(upstream_url_public_https("https://leads.example.com"));
    assert_true(upstream_url_public_https("https://leads.example.com:8443/x"));
    assert_true(upstream_url_public_https("HTTPS://user@leads.example.com/"));
    assert_true(upstream_url_public_https("https://[2001:db8::1]:443/"));
    assert_false(upstream_url_public_https("http://leads.example.com"));
    assert_false(upstream_url_public_https("https://127.0.0.1:3000"));
    assert_false(upstream_url_public_https("https://127.1.2.3"));
    assert_false(upstream_url_public_https("https://localhost/"));
    assert_false(upstream_url_public_https("https://app.localhost"));
    assert_false(upstream_url_public_https("https://[::1]:3000"));
    assert_false(upstream_url_public_https("https://0.0.0.0"));
    assert_false(upstream_url_public_https("https://"));
}

static void test_auth_state(void **state)
{
    (void)state;
    assert_true(upstream_auth_ok(UPSTREAM_EXOTEL));
    upstream_observe("exotel", "http://x/v1/Accounts/s/Calls/connect.json", 500);
    assert_true(upstream_auth_ok(UPSTREAM_EXOTEL));
    upstream_observe("exotel", "http://x/v1/Accounts/s/Calls/connect.json", 401);
    assert_false(upstream_auth_ok(UPSTREAM_EXOTEL));
    assert_true(upstream_auth_ok(UPSTREAM_ZOHO));
    upstream_observe("exotel", "http://x/v1/Accounts/s/Calls.json", 200);
    assert_true(upstream_auth_ok(UPSTREAM_EXOTEL));
    /* Zoho: one 401 is an expired token, not a refused credential; its token URL never counts. */
    upstream_observe("zoho", "http://z/crm/v8/Leads/upsert", 401);
    assert_true(upstream_auth_ok(UPSTREAM_ZOHO));
    upstream_observe("zoho", "http://z/oauth/v2/token", 200);
    upstream_observe("zoho", "http://z/crm/v8/Leads/upsert", 401);
    assert_true(upstream_auth_ok(UPSTREAM_ZOHO));
    upstream_observe("other", "http://o/", 401);
    assert_true(upstream_auth_ok(UPSTREAM_ZOHO) && upstream_auth_ok(UPSTREAM_EXOTEL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_creds_completeness, clean),
        cmocka_unit_test_setup(test_partial_is_refused_and_named, clean),
        cmocka_unit_test_setup(test_no_sandbox_to_fall_back_to, clean),
        cmocka_unit_test_setup(test_sandbox_beside_live, clean),
        cmocka_unit_test_setup(test_live_callbacks, clean),
        cmocka_unit_test_setup(test_public_https, clean),
        cmocka_unit_test_setup(test_auth_state, clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
