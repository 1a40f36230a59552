/* Unit tests for sources_zoho_parse: Zoho CRM records (the workflow webhook's body, the record
 * GET's data[i]) into leads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "sources_zoho_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum zoho_src_status run(const char *body, struct lead_parse_result *r,
                                char ref[ZOHO_RECORD_ID_MAX])
{
    return zoho_src_webhook(body, strlen(body), "Leadbus_Id", "IN", r, ref);
}

static void test_record_to_lead(void **state)
{
    (void)state;
    struct lead_parse_result r;
    char ref[ZOHO_RECORD_ID_MAX];
    const char *body = "{\"id\":\"5725767000000000001\",\"First_Name\":\"Ravi\",\"Last_Name\":"
                       "\"Kumar\",\"Email\":\"Ravi@Example.com\",\"Phone\":\"\",\"Mobile\":"
                       "\"98000 00210\",\"Company\":\"Acme\",\"City\":\"Pune\",\"Description\":"
                       "\"call after 5\",\"Lead_Source\":\"Trade Show\",\"Leadbus_Id\":null,"
                       "\"Owner\":{\"id\":\"1\"}}";
    assert_int_equal(run(body, &r, ref), ZOHO_SRC_LEAD);
    assert_string_equal(ref, "5725767000000000001");
    assert_string_equal(r.lead.first_name, "Ravi");
    assert_string_equal(r.lead.last_name, "Kumar");
    assert_string_equal(r.lead.email, "ravi@example.com");
    assert_string_equal(r.lead.phone_e164, "+919800000210"); /* empty Phone: Mobile */
    assert_string_equal(r.lead.company, "Acme");
    assert_string_equal(r.lead.city, "Pune");
    assert_string_equal(r.lead.notes, "call after 5");
    assert_string_equal(r.lead.extra, "{\"zoho_lead_source\":\"Trade Show\"}");
    lead_parse_free(&r);
}

static void test_ours_ignored(void **state)
{
    (void)state;
    struct lead_parse_result r;
    char ref[ZOHO_RECORD_ID_MAX];
    assert_int_equal(run("{\"id\":\"12\",\"Last_Name\":\"K\",\"Leadbus_Id\":\"ld_1\"}", &r, ref),
                     ZOHO_SRC_OURS);
    assert_string_equal(ref, "12");
    /* no external id field configured: never "ours" */
    const char *b = "{\"id\":\"12\",\"Last_Name\":\"K\",\"Email\":\"k@example.com\","
                    "\"Leadbus_Id\":\"ld_1\"}";
    assert_int_equal(zoho_src_webhook(b, strlen(b), "", "IN", &r, ref), ZOHO_SRC_LEAD);
    lead_parse_free(&r);
    /* an empty external id is a record someone else made */
    assert_int_equal(
        run("{\"id\":\"12\",\"Last_Name\":\"K\",\"Email\":\"k@example.com\",\"Leadbus_Id\":\"\"}",
            &r, ref),
        ZOHO_SRC_LEAD);
    lead_parse_free(&r);
}

static void test_refusals(void **state)
{
    (void)state;
    struct lead_parse_result r;
    char ref[ZOHO_RECORD_ID_MAX];
    const char *malformed[] = {
        "",
        "[]",
        "{\"Last_Name\":\"K\",\"Email\":\"k@example.com\"}",                      /* no id */
        "{\"id\":5725767000000000001,\"Last_Name\":\"K\",\"Email\":\"k@e.com\"}", /* a number */
        "{\"id\":\"57257/../1\",\"Last_Name\":\"K\",\"Email\":\"k@example.com\"}",
        "{\"id\":\"\",\"Last_Name\":\"K\",\"Email\":\"k@example.com\"}",
        "{\"id\":\"12345678901234567890123456789012\",\"Last_Name\":\"K\",\"Email\":\"k@e.com\"}",
        "{\"id\":\"1\",\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        assert_int_equal(run(malformed[i], &r, ref), ZOHO_SRC_MALFORMED);
        assert_string_equal(ref, "");
        lead_parse_free(&r);
    }
    /* a record without a contact, or without a name, is refused as POST /leads refuses it */
    assert_int_equal(run("{\"id\":\"1\",\"Last_Name\":\"K\"}", &r, ref), ZOHO_SRC_INVALID);
    assert_non_null(r.fields);
    lead_parse_free(&r);
    assert_int_equal(run("{\"id\":\"1\",\"Email\":\"k@example.com\"}", &r, ref), ZOHO_SRC_INVALID);
    lead_parse_free(&r);
}

static void test_ids_and_secret(void **state)
{
    (void)state;
    assert_true(zoho_record_id_ok("5725767000000000001"));
    assert_false(zoho_record_id_ok(""));
    assert_false(zoho_record_id_ok("12a"));
    assert_false(zoho_record_id_ok("-1"));
    cJSON *o = cJSON_Parse("{\"leadbus_secret\":\"s3cret\",\"id\":\"1\"}");
    assert_string_equal(zoho_src_body_secret(o), "s3cret");
    cJSON_Delete(o);
    assert_null(zoho_src_body_secret(NULL));
    assert_string_equal(zoho_src_status_name(ZOHO_SRC_OURS), "ours");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_to_lead),
        cmocka_unit_test(test_ours_ignored),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_ids_and_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
