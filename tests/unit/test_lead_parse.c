/* Unit tests for lead_parse: normalisation, warnings, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "json_depth.h"
#include "lead_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct lead_parse_result r;

static enum lead_parse_status parse(const char *json)
{
    lead_parse_free(&r);
    return lead_parse(json, strlen(json), "IN", &r);
}

static const char *field(const char *name)
{
    const cJSON *it = r.fields ? cJSON_GetObjectItemCaseSensitive(r.fields, name) : NULL;
    return it ? it->valuestring : NULL;
}

static void test_original_guide_lead(void **state)
{
    (void)state;
    assert_int_equal(
        parse("{\"source\":\"Website\",\"name\":\"Test Lead\",\"phone\":\"9876543210\","
              "\"email\":\"Test@Example.COM\"}"),
        LEAD_OK);
    assert_string_equal(r.lead.first_name, "Test");
    assert_string_equal(r.lead.last_name, "Lead");
    assert_string_equal(r.lead.email, "test@example.com");
    assert_string_equal(r.lead.phone_e164, "+919876543210");
    assert_string_equal(r.lead.phone_dial, "09876543210");
    assert_string_equal(r.lead.phone_status, "valid");
    assert_string_equal(r.lead.source, "Website");
    assert_int_equal(r.nwarnings, 0);
}

static void test_phone_forms_agree(void **state)
{
    (void)state;
    const char *forms[] = {"9876543210", "+91 98765-43210", "919876543210", "09876543210",
                           " 98765 43210 "};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"name\":\"A\",\"phone\":\"%s\"}", forms[i]);
        assert_int_equal(parse(json), LEAD_OK);
        assert_string_equal(r.lead.phone_e164, "+919876543210");
        assert_string_equal(r.lead.phone_dial, "09876543210");
    }
    assert_int_equal(parse("{\"name\":\"A\",\"phone\":\"+1 415 555 2671\"}"), LEAD_OK);
    assert_string_equal(r.lead.phone_dial, "+14155552671");
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"name\":\"  Mary   Ann\\t Smith \",\"email\":\"m@x.io\"}"), LEAD_OK);
    assert_string_equal(r.lead.first_name, "Mary Ann");
    assert_string_equal(r.lead.last_name, "Smith");
    assert_int_equal(parse("{\"name\":\"Cher\",\"email\":\"c@x.io\"}"), LEAD_OK);
    assert_string_equal(r.lead.first_name, "");
    assert_string_equal(r.lead.last_name, "Cher");
    assert_int_equal(
        parse("{\"firstName\":\"Ada\",\"lastName\":\"Lovelace\",\"email\":\"a@x.io\"}"), LEAD_OK);
    assert_string_equal(r.lead.first_name, "Ada");
    assert_string_equal(r.lead.last_name, "Lovelace");
    assert_int_equal(parse("{\"firstName\":\"Ada\",\"email\":\"a@x.io\"}"), LEAD_OK);
    assert_string_equal(r.lead.last_name, "Ada");
    /* Unicode survives intact */
    assert_int_equal(parse("{\"name\":\"Zoë 日本 Ångström\",\"email\":\"z@x.io\"}"), LEAD_OK);
    assert_string_equal(r.lead.first_name, "Zoë 日本");
    assert_string_equal(r.lead.last_name, "Ångström");
}

static void test_warnings_keep_the_lead(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"name\":\"A B\",\"phone\":\"12345\",\"email\":\"a@b.co\",\"utm\":1}"),
                     LEAD_OK);
    assert_string_equal(r.lead.phone_status, "invalid");
    assert_string_equal(r.lead.phone_e164, "");
    assert_int_equal(r.nwarnings, 2);
    assert_non_null(strstr(r.warnings[0], "phone"));
    assert_non_null(strstr(r.warnings[1], "utm: unknown field"));
    assert_int_equal(parse("{\"name\":\"A B\",\"phone\":\"9876543210\",\"email\":\"nope\"}"),
                     LEAD_OK);
    assert_string_equal(r.lead.email, "");
    assert_non_null(strstr(r.warnings[0], "email"));
}

static void test_refusals_name_the_field(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"phone\":\"9876543210\"}"), LEAD_INVALID);
    assert_non_null(field("name"));
    assert_int_equal(parse("{\"name\":\"A\"}"), LEAD_INVALID);
    assert_string_equal(field("phone"), "phone or email is required");
    assert_string_equal(field("email"), "phone or email is required");
    assert_int_equal(parse("{\"name\":\"A\",\"phone\":\"1\",\"email\":\"x@\"}"), LEAD_INVALID);
    assert_string_equal(field("phone"), "is not a valid phone number");
    assert_string_equal(field("email"), "is not a valid email address");
    assert_int_equal(parse("{\"name\":7,\"email\":\"a@b.co\"}"), LEAD_INVALID);
    assert_string_equal(field("name"), "must be a string");
    assert_int_equal(parse("{\"name\":\"A\",\"email\":\"a@b.co\",\"extra\":[1]}"), LEAD_INVALID);
    assert_string_equal(field("extra"), "must be an object");
    assert_int_equal(parse("{\"name\":\"\\u00e9\xff\",\"email\":\"a@b.co\"}"), LEAD_INVALID);
    assert_string_equal(field("name"), "must be valid UTF-8");
    char big[400];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\0';
    char *json = malloc(1024);
    snprintf(json, 1024, "{\"name\":\"A\",\"email\":\"a@b.co\",\"city\":\"%s\"}", big);
    assert_int_equal(parse(json), LEAD_INVALID);
    assert_non_null(strstr(field("city"), "too long"));
    free(json);
}

static void test_malformed(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"name\":"), LEAD_MALFORMED);
    assert_non_null(strstr(r.message, "malformed JSON near byte"));
    assert_int_equal(parse("[1,2]"), LEAD_MALFORMED);
    assert_string_equal(r.message, "the body must be a JSON object");
    assert_int_equal(parse(""), LEAD_MALFORMED);
    /* nesting deeper than cJSON's limit is refused, not a crash */
    char *deep = malloc(5000);
    size_t n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"extra\":", 8);
    n += 8;
    for (int i = 0; i < 2000; i++) {
        deep[n++] = '[';
    }
    deep[n] = '\0';
    assert_int_equal(parse(deep), LEAD_MALFORMED);
    free(deep);
}

static void test_extra_kept_as_json(void **state)
{
    (void)state;
    assert_int_equal(
        parse("{\"name\":\"A\",\"email\":\"a@b.co\",\"extra\":{\"utm\":\"ads\",\"n\":2},"
              "\"notes\":\"line one\\n  line two  \"}"),
        LEAD_OK);
    assert_string_equal(r.lead.extra, "{\"utm\":\"ads\",\"n\":2}");
    assert_string_equal(r.lead.notes, "line one\n line two");
}

static int teardown(void **state)
{
    (void)state;
    lead_parse_free(&r);
    return 0;
}

/* cJSON would recurse once per level on a small civetweb stack: refused before parsing. */
static void test_deep_nesting(void **state)
{
    (void)state;
    char body[4096];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"name\":\"Deep\",\"extra\":");
    for (int i = 0; i < 40; i++) {
        body[n++] = '[';
    }
    for (int i = 0; i < 40; i++) {
        body[n++] = ']';
    }
    body[n++] = '}';
    struct lead_parse_result r;
    assert_int_equal(lead_parse(body, n, "IN", &r), LEAD_MALFORMED);
    assert_non_null(strstr(r.message, "nested deeper than 32"));
    lead_parse_free(&r);
    /* brackets inside strings do not count */
    const char *ok = "{\"name\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\",\"email\":\"a@b.co\"}";
    assert_true(json_depth_ok(ok, strlen(ok), JSON_DEPTH_MAX));
    assert_false(json_depth_ok("[[[", 3, 2));
    assert_true(json_depth_ok("[[]]", 4, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_original_guide_lead),
        cmocka_unit_test(test_phone_forms_agree),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_warnings_keep_the_lead),
        cmocka_unit_test(test_refusals_name_the_field),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_extra_kept_as_json),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
