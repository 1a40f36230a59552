/* Unit tests: form keys and CORS origins, the form guard's limits, and the toll-fraud guard. */
#include "dial_guard.h"
#include "form_access.h"
#include "form_guard.h"
#include "phone.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_origins(void **state)
{
    (void)state;
    char o[FORM_ORIGIN_MAX];
    assert_int_equal(form_origin_normalize("HTTPS://Shop.Example:443/", o), 0);
    assert_string_equal(o, "https://shop.example");
    assert_int_equal(form_origin_normalize("http://127.0.0.1:8080", o), 0);
    assert_string_equal(o, "http://127.0.0.1:8080");
    assert_int_equal(form_origin_normalize("https://shop.example/path", o), -1);
    assert_int_equal(form_origin_normalize("https://user@shop.example", o), -1);
    assert_int_equal(form_origin_normalize("ftp://shop.example", o), -1);
    assert_int_equal(form_origin_normalize("*", o), -1);
    assert_int_equal(form_origin_normalize("https://shop.example?x=1", o), -1);
}

static void test_form_keys(void **state)
{
    (void)state;
    struct form_access fa;
    char err[CONFIG_ERR_MAX];
    assert_int_equal(
        form_access_parse("pub-0123456789abcdef, bound-0123456789abcdef@https://Shop.example",
                          "https://shop.example, http://localhost:3000", &fa, err),
        0);
    assert_int_equal(fa.nkeys, 2);
    assert_int_equal(fa.norigins, 2);
    const struct form_key *k = form_access_key(&fa, "bound-0123456789abcdef");
    assert_non_null(k);
    assert_string_equal(k->origin, "https://shop.example");
    assert_string_equal(k->id, "form-2");
    assert_null(form_access_key(&fa, "bound-0123456789abcdeX"));
    assert_null(form_access_key(&fa, "bound-0123456789abcde")); /* a prefix is not the key */
    assert_null(form_access_key(&fa, NULL));
    assert_true(form_access_origin_allowed(&fa, "https://shop.example"));
    assert_false(form_access_origin_allowed(&fa, "https://shop.example.evil"));
    assert_false(form_access_origin_allowed(&fa, NULL));
    /* refused loudly: short keys, bad origins, a key bound to an origin CORS does not list */
    assert_int_equal(form_access_parse("short", "", &fa, err), -1);
    assert_non_null(strstr(err, "FORM_KEYS"));
    assert_int_equal(form_access_parse("", "https://a.example/x", &fa, err), -1);
    assert_non_null(strstr(err, "CORS_ALLOWED_ORIGINS"));
    assert_int_equal(form_access_parse("k-0123456789abcdef@https://other.example",
                                       "https://a.example", &fa, err),
                     -1);
    assert_non_null(strstr(err, "not an origin that CORS_ALLOWED_ORIGINS lists"));
    /* nothing set: no keys, no CORS */
    assert_int_equal(form_access_parse(NULL, NULL, &fa, err), 0);
    assert_int_equal(fa.nkeys + fa.norigins, 0);
}

static void test_rate_buckets(void **state)
{
    (void)state;
    struct form_guard *g;
    char err[CONFIG_ERR_MAX];
    assert_int_equal(form_guard_open_with("3/60s", "10.0.0.1", "website_url", &g, err), 0);
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(form_guard_admit(g, "1.2.3.4", "form-1", t), 0);
    }
    int64_t wait = form_guard_admit(g, "1.2.3.4", "form-1", t);
    assert_true(wait > 0 && wait <= 20001); /* one token comes back every 20 s */
    /* another address still hits the key's limit: per key too */
    assert_true(form_guard_admit(g, "5.6.7.8", "form-1", t) > 0);
    /* another key from a fresh address is fine */
    assert_int_equal(form_guard_admit(g, "5.6.7.8", "form-2", t), 0);
    /* refilled after the wait */
    assert_int_equal(form_guard_admit(g, "1.2.3.4", "form-1", t + wait), 0);
    form_guard_close(g);
    assert_int_equal(form_guard_open_with("20 per minute", NULL, NULL, &g, err), -1);
    assert_non_null(strstr(err, "FORM_RATE_LIMIT"));
}

static void test_client_address(void **state)
{
    (void)state;
    struct form_guard *g;
    char err[CONFIG_ERR_MAX], ip[FORM_GUARD_ADDR_MAX];
    assert_int_equal(form_guard_open_with("20/60s", "10.0.0.1,10.0.0.2", NULL, &g, err), 0);
    /* anyone can send X-Forwarded-For: only a trusted proxy's counts */
    form_guard_client(g, "9.9.9.9", "1.1.1.1", ip);
    assert_string_equal(ip, "9.9.9.9");
    form_guard_client(g, "10.0.0.1", "6.6.6.6, 1.1.1.1", ip);
    assert_string_equal(ip, "1.1.1.1"); /* the hop the proxy added, not what the client claimed */
    form_guard_client(g, "10.0.0.1", "6.6.6.6, 2.2.2.2, 10.0.0.2", ip);
    assert_string_equal(ip, "2.2.2.2"); /* through two trusted proxies */
    form_guard_client(g, "10.0.0.1", NULL, ip);
    assert_string_equal(ip, "10.0.0.1");
    form_guard_close(g);
}

static void test_honeypot(void **state)
{
    (void)state;
    struct form_guard *g;
    char err[CONFIG_ERR_MAX];
    assert_int_equal(form_guard_open_with("20/60s", NULL, "website_url", &g, err), 0);
    const char *bot = "{\"name\":\"x\",\"website_url\":\"http://spam\"}";
    const char *human = "{\"name\":\"x\",\"website_url\":\"\"}";
    assert_true(form_guard_honeypot(g, bot, strlen(bot)));
    assert_false(form_guard_honeypot(g, human, strlen(human)));
    assert_false(form_guard_honeypot(g, "{", 1));
    char deep[4096];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = '\0';
    assert_false(form_guard_honeypot(g, deep, strlen(deep))); /* refused before a recursive parse */
    form_guard_close(g);
}

static void test_dial_guard(void **state)
{
    (void)state;
    struct dial_guard d;
    char err[CONFIG_ERR_MAX], region[3];
    assert_int_equal(dial_guard_parse("in, ae", 3, &d, err), 0);
    assert_true(dial_guard_country_ok(&d, "IN"));
    assert_true(dial_guard_country_ok(&d, "AE"));
    assert_false(dial_guard_country_ok(&d, "US"));
    assert_false(dial_guard_country_ok(&d, ""));
    assert_true(dial_guard_number_ok(&d, 2));
    assert_false(dial_guard_number_ok(&d, 3));
    assert_int_equal(dial_guard_parse("any", 0, &d, err), 0);
    assert_true(dial_guard_country_ok(&d, "US"));
    assert_true(dial_guard_number_ok(&d, 1000)); /* 0: no limit */
    assert_int_equal(dial_guard_parse("India", 3, &d, err), -1);
    assert_non_null(strstr(err, "DIAL_COUNTRIES"));
    assert_int_equal(dial_guard_parse("", 3, &d, err), -1);
    /* the regions the call-scheduler asks about */
    assert_int_equal(phone_region_of("+919876543210", region), 0);
    assert_string_equal(region, "IN");
    assert_int_equal(phone_region_of("+14155550123", region), 0);
    assert_string_equal(region, "US");
    assert_int_equal(phone_region_of("+442079460000", region), 0);
    assert_string_equal(region, "GB");
    assert_int_equal(phone_region_of("garbage", region), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origins),      cmocka_unit_test(test_form_keys),
        cmocka_unit_test(test_rate_buckets), cmocka_unit_test(test_client_address),
        cmocka_unit_test(test_honeypot),     cmocka_unit_test(test_dial_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
