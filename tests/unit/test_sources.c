/* Unit tests for sources_parse: signatures, JSON paths and mappings, Meta's payloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "sources_parse.h"

#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char key[] = "0123456789abcdef-secret";
#define KEYLEN (sizeof key - 1)

static void sign(const char *body, char out[72], bool prefix, bool upper)
{
    unsigned char mac[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, (int)KEYLEN, (const unsigned char *)body, strlen(body), mac, &n);
    int w = snprintf(out, 72, "%s", prefix ? "sha256=" : "");
    for (unsigned i = 0; i < n; i++) {
        w += snprintf(out + w, (size_t)(72 - w), upper ? "%02X" : "%02x", mac[i]);
    }
}

static void test_signature(void **state)
{
    (void)state;
    const char *body = "{\"id\":1}";
    char sig[72];
    sign(body, sig, true, false);
    assert_int_equal(source_sig_check(key, KEYLEN, body, strlen(body), sig), SOURCE_SIG_OK);
    sign(body, sig, false, true); /* bare hex, upper case */
    assert_int_equal(source_sig_check(key, KEYLEN, body, strlen(body), sig), SOURCE_SIG_OK);
    sign(body, sig, true, false);
    /* one byte of the body changed, the key changed, one digit of the signature changed */
    assert_int_equal(source_sig_check(key, KEYLEN, "{\"id\":2}", 8, sig), SOURCE_SIG_MISMATCH);
    assert_int_equal(
        source_sig_check((const unsigned char *)"other-key-0123456", 17, body, strlen(body), sig),
        SOURCE_SIG_MISMATCH);
    sig[10] = sig[10] == '0' ? '1' : '0';
    assert_int_equal(source_sig_check(key, KEYLEN, body, strlen(body), sig), SOURCE_SIG_MISMATCH);
    assert_int_equal(source_sig_check(key, KEYLEN, body, strlen(body), NULL), SOURCE_SIG_MISSING);
    assert_int_equal(source_sig_check(key, KEYLEN, body, strlen(body), ""), SOURCE_SIG_MISSING);
    assert_int_equal(source_sig_check(key, KEYLEN, body, strlen(body), "sha256=abc"),
                     SOURCE_SIG_MALFORMED);
    sign(body, sig, true, false);
    sig[20] = 'g';
    assert_int_equal(source_sig_check(key, KEYLEN, body, strlen(body), sig), SOURCE_SIG_MALFORMED);
    /* no key: never a match, even for the HMAC with an empty key */
    assert_int_equal(source_sig_check(key, 0, body, strlen(body), sig), SOURCE_SIG_MALFORMED);
}

static void test_paths(void **state)
{
    (void)state;
    struct source_path p;
    const char *good[] = {"$", "$.a", "$.contact.full_name", "$.items[0].id", "$[2]", "$.a-b_c.d9"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(source_path_parse(good[i], strlen(good[i]), &p), 0);
    }
    const char *bad[] = {
        "", "a.b", "$.", "$..a", "$[x]", "$[1", "$.a b", "$.a.b.c.d.e.f.g.h.i", "$[1234567]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(source_path_parse(bad[i], strlen(bad[i]), &p), -1);
    }
    cJSON *root = cJSON_Parse("{\"items\":[{\"id\":7},{\"id\":\"x\"}],\"t\":true}");
    assert_int_equal(source_path_parse("$.items[1].id", 13, &p), 0);
    char out[32];
    assert_int_equal(source_scalar(source_path_get(root, &p), out, sizeof out), 0);
    assert_string_equal(out, "x");
    assert_int_equal(source_path_parse("$.items[0].id", 13, &p), 0);
    assert_int_equal(source_scalar(source_path_get(root, &p), out, sizeof out), 0);
    assert_string_equal(out, "7");
    assert_int_equal(source_path_parse("$.items[5].id", 13, &p), 0);
    assert_null(source_path_get(root, &p));
    assert_int_equal(source_path_parse("$.items", 7, &p), 0);
    assert_int_equal(source_scalar(source_path_get(root, &p), out, sizeof out), -1);
    assert_int_equal(source_path_parse("$.t", 3, &p), 0);
    assert_int_equal(source_scalar(source_path_get(root, &p), out, sizeof out), 0);
    assert_string_equal(out, "true");
    cJSON_Delete(root);
}

static void test_map_parse(void **state)
{
    (void)state;
    struct source_map m;
    char err[160];
    assert_int_equal(
        source_map_parse("name=$.contact.full_name, phone=$.contact.phone,extra.campaign=$.c", &m,
                         err, sizeof err),
        0);
    assert_int_equal(m.n, 3);
    assert_string_equal(m.e[1].field, "phone");
    assert_string_equal(m.e[2].field, "extra.campaign");
    assert_int_equal(source_map_parse("", &m, err, sizeof err), -1);
    assert_int_equal(source_map_parse("name", &m, err, sizeof err), -1);
    assert_int_equal(source_map_parse("nickname=$.n", &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "nickname"));
    /* `source` is the source's own name (and keys its idempotency): not mappable */
    assert_int_equal(source_map_parse("source=$.utm", &m, err, sizeof err), -1);
    assert_int_equal(source_map_parse("name=$.a,name=$.b", &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(source_map_parse("name=contact.name", &m, err, sizeof err), -1);
    assert_int_equal(source_map_parse("extra.=$.a", &m, err, sizeof err), -1);
}

static void test_map_lead(void **state)
{
    (void)state;
    struct source_map m;
    struct source_path id;
    char err[160], ref[128];
    static struct lead_parse_result r;
    assert_int_equal(source_map_parse("name=$.contact.full_name,phone=$.contact.phone,"
                                      "email=$.contact.email,extra.campaign=$.campaign",
                                      &m, err, sizeof err),
                     0);
    assert_int_equal(source_path_parse("$.id", 4, &id), 0);
    const char *body =
        "{\"id\":12345,\"contact\":{\"full_name\":\"Asha  Rao\",\"phone\":9876543210,"
        "\"email\":\"A@X.io\"},\"campaign\":\"diwali\"}";
    assert_int_equal(source_map_lead(&m, &id, body, strlen(body), "IN", &r, ref, sizeof ref),
                     LEAD_OK);
    assert_string_equal(ref, "12345");
    assert_string_equal(r.lead.first_name, "Asha");
    assert_string_equal(r.lead.last_name, "Rao");
    assert_string_equal(r.lead.phone_e164, "+919876543210");
    assert_string_equal(r.lead.email, "a@x.io");
    assert_string_equal(r.lead.extra, "{\"campaign\":\"diwali\"}");
    lead_parse_free(&r);
    /* no reference: refused, named */
    const char *noref = "{\"contact\":{\"full_name\":\"A\",\"phone\":\"9876543210\"}}";
    assert_int_equal(source_map_lead(&m, &id, noref, strlen(noref), "IN", &r, ref, sizeof ref),
                     LEAD_INVALID);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(r.fields, "sourceRef"));
    lead_parse_free(&r);
    /* no name: POST /leads's own refusal */
    const char *noname = "{\"id\":\"e1\",\"contact\":{\"phone\":\"9876543210\"}}";
    assert_int_equal(source_map_lead(&m, &id, noname, strlen(noname), "IN", &r, ref, sizeof ref),
                     LEAD_INVALID);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(r.fields, "name"));
    lead_parse_free(&r);
    assert_int_equal(source_map_lead(&m, &id, "[1]", 3, "IN", &r, ref, sizeof ref), LEAD_MALFORMED);
    assert_int_equal(source_map_lead(&m, &id, "{", 1, "IN", &r, ref, sizeof ref), LEAD_MALFORMED);
}

static void test_meta_delivery(void **state)
{
    (void)state;
    struct meta_change c[4];
    int n, ignored;
    char err[160];
    const char *body =
        "{\"object\":\"page\",\"entry\":[{\"id\":\"1\",\"time\":1,\"changes\":["
        "{\"field\":\"leadgen\",\"value\":{\"leadgen_id\":\"444\",\"page_id\":\"1\",\"form_id\":"
        "\"9\"}},"
        "{\"field\":\"feed\",\"value\":{}}]},"
        "{\"id\":\"2\",\"changes\":[{\"field\":\"leadgen\",\"value\":{\"leadgen_id\":555}}]}]}";
    assert_int_equal(meta_parse_delivery(body, strlen(body), c, 4, &n, &ignored, err, sizeof err),
                     META_PARSE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ignored, 1);
    assert_string_equal(c[0].leadgen_id, "444");
    assert_string_equal(c[0].form_id, "9");
    assert_string_equal(c[1].leadgen_id, "555");
    assert_int_equal(meta_parse_delivery(body, strlen(body), c, 1, &n, &ignored, err, sizeof err),
                     META_PARSE_MALFORMED);
    assert_int_equal(n, 0);
    const char *bad_id = "{\"entry\":[{\"changes\":[{\"field\":\"leadgen\",\"value\":"
                         "{\"leadgen_id\":\"../me\"}}]}]}";
    assert_int_equal(
        meta_parse_delivery(bad_id, strlen(bad_id), c, 4, &n, &ignored, err, sizeof err),
        META_PARSE_MALFORMED);
    assert_int_equal(meta_parse_delivery("{}", 2, c, 4, &n, &ignored, err, sizeof err),
                     META_PARSE_MALFORMED);
    assert_int_equal(meta_parse_delivery("x", 1, c, 4, &n, &ignored, err, sizeof err),
                     META_PARSE_MALFORMED);
}

static void test_meta_lead(void **state)
{
    (void)state;
    static struct lead_parse_result r;
    int code;
    const char *lead =
        "{\"id\":\"444\",\"created_time\":\"2026-12-02T10:00:00+0000\",\"field_data\":["
        "{\"name\":\"full_name\",\"values\":[\"Ravi Kumar\"]},"
        "{\"name\":\"phone_number\",\"values\":[\"+919876543210\"]},"
        "{\"name\":\"email\",\"values\":[\"ravi@example.com\"]},"
        "{\"name\":\"budget\",\"values\":[\"10k\",\"20k\"]}]}";
    assert_int_equal(meta_parse_lead(lead, strlen(lead), "IN", NULL, &r, &code), META_LEAD_OK);
    assert_string_equal(r.lead.last_name, "Kumar");
    assert_string_equal(r.lead.phone_dial, "09876543210");
    assert_string_equal(r.lead.source, "meta");
    assert_string_equal(r.lead.extra, "{\"budget\":\"10k, 20k\"}");
    lead_parse_free(&r);
    const char *err = "{\"error\":{\"message\":\"Invalid OAuth access token\",\"type\":"
                      "\"OAuthException\",\"code\":190,\"fbtrace_id\":\"x\"}}";
    assert_int_equal(meta_parse_lead(err, strlen(err), "IN", NULL, &r, &code),
                     META_LEAD_GRAPH_ERROR);
    assert_int_equal(code, 190);
    const char *empty = "{\"id\":\"1\",\"field_data\":[{\"name\":\"budget\",\"values\":[\"1\"]}]}";
    assert_int_equal(meta_parse_lead(empty, strlen(empty), "IN", NULL, &r, &code),
                     META_LEAD_INVALID);
    lead_parse_free(&r);
    assert_int_equal(meta_parse_lead("{\"id\":\"1\"}", 10, "IN", NULL, &r, &code),
                     META_LEAD_MALFORMED);
}

static void test_meta_form_map(void **state)
{
    (void)state;
    static struct lead_parse_result r;
    struct meta_field_map map;
    char err[160];
    int code;
    assert_int_equal(meta_field_map_parse("whatsapp_number=phone, your_city=city,budget=extra.inr",
                                          &map, err, sizeof err),
                     0);
    assert_int_equal(map.n, 3);
    const char *lead = "{\"id\":\"5\",\"field_data\":["
                       "{\"name\":\"full_name\",\"values\":[\"Ravi Kumar\"]},"
                       "{\"name\":\"whatsapp_number\",\"values\":[\"9876543210\"]},"
                       "{\"name\":\"your_city\",\"values\":[\"Pune\"]},"
                       "{\"name\":\"budget\",\"values\":[\"10k\"]}]}";
    assert_int_equal(meta_parse_lead(lead, strlen(lead), "IN", &map, &r, &code), META_LEAD_OK);
    assert_string_equal(r.lead.phone_e164, "+919876543210");
    assert_string_equal(r.lead.city, "Pune");
    assert_string_equal(r.lead.extra, "{\"inr\":\"10k\"}");
    lead_parse_free(&r);
    /* without the form's map: no phone, so the lead is refused; the questions go to extra */
    assert_int_equal(meta_parse_lead(lead, strlen(lead), "IN", NULL, &r, &code), META_LEAD_INVALID);
    lead_parse_free(&r);
    assert_int_equal(meta_field_map_parse("q=nickname", &map, err, sizeof err), -1);
    assert_int_equal(meta_field_map_parse("q", &map, err, sizeof err), -1);
    assert_int_equal(meta_field_map_parse("", &map, err, sizeof err), -1);
    assert_int_equal(meta_field_map_parse("q=source", &map, err, sizeof err), -1);
}

static void test_meta_verify_and_ids(void **state)
{
    (void)state;
    assert_true(meta_verify_ok("subscribe", "tok-123", "tok-123"));
    assert_false(meta_verify_ok("subscribe", "tok-124", "tok-123"));
    assert_false(meta_verify_ok("subscribe", "tok-1234", "tok-123"));
    assert_false(meta_verify_ok("unsubscribe", "tok-123", "tok-123"));
    assert_false(meta_verify_ok(NULL, "tok-123", "tok-123"));
    assert_false(meta_verify_ok("subscribe", "", ""));
    assert_true(meta_id_ok("1234567890123456"));
    assert_false(meta_id_ok(""));
    assert_false(meta_id_ok("12a"));
}

static void test_config_patterns(void **state)
{
    (void)state;
    assert_true(config_known("SOURCE_TYPEFORM_SECRET"));
    assert_true(config_known("SOURCE_MY_TOOL_2_MAP"));
    assert_false(config_known("SOURCE__SECRET"));
    assert_false(config_known("SOURCE_typeform_SECRET"));
    assert_false(config_known("SOURCE_TYPEFORM_SECRT"));
    assert_true(config_has_prefix("SOURCE_X_SECRT"));
    assert_true(config_known("META_APP_SECRET"));
    assert_true(config_known("META_FORM_123456_MAP"));
    assert_true(config_has_prefix("META_APP_SECRT"));
    assert_string_equal(config_suggest("META_APP_SECRT"), "META_APP_SECRET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature),       cmocka_unit_test(test_paths),
        cmocka_unit_test(test_map_parse),       cmocka_unit_test(test_map_lead),
        cmocka_unit_test(test_meta_delivery),   cmocka_unit_test(test_meta_lead),
        cmocka_unit_test(test_meta_form_map),   cmocka_unit_test(test_meta_verify_and_ids),
        cmocka_unit_test(test_config_patterns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
