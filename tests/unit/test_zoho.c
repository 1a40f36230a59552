/* Unit tests: reading Zoho's list answers (related records, COQL) and the sandbox's COQL subset. */
#include "sandbox_coql.h"
#include "zoho_client.h"
#include "zoho_sync_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static enum zoho_list_status list(long status, const char *body, char id[32], bool *more,
                                  char code[64])
{
    return zoho_parse_list(status, body, strlen(body), "Note_Content",
                           "[leadbus call c1 attempt 2]", id, more, code);
}

static void test_list_found_on_a_page(void **state)
{
    (void)state;
    char id[32] = "", code[64];
    bool more;
    const char *body =
        "{\"data\":[{\"Note_Content\":\"x [leadbus call c1 attempt 1]\",\"id\":\"11\"},"
        "{\"Note_Content\":\"y\\n[leadbus call c1 attempt 2]\",\"id\":\"12\"}],"
        "\"info\":{\"per_page\":200,\"count\":2,\"page\":1,\"more_records\":true}}";
    assert_int_equal(list(200, body, id, &more, code), ZOHO_LIST_FOUND);
    assert_string_equal(id, "12");
    assert_true(more);
}

static void test_list_none_and_paging(void **state)
{
    (void)state;
    char id[32] = "", code[64];
    bool more = true;
    /* 204: an empty list, nothing more */
    assert_int_equal(list(204, "", id, &more, code), ZOHO_LIST_NONE);
    assert_false(more);
    const char *page = "{\"data\":[{\"Note_Content\":\"other\",\"id\":\"1\"}],"
                       "\"info\":{\"more_records\":true}}";
    assert_int_equal(list(200, page, id, &more, code), ZOHO_LIST_NONE);
    assert_true(more); /* the caller reads the next page */
    const char *last = "{\"data\":[],\"info\":{\"more_records\":false}}";
    assert_int_equal(list(200, last, id, &more, code), ZOHO_LIST_NONE);
    assert_false(more);
    /* a marker without the record's id does not count as found */
    const char *noid = "{\"data\":[{\"Note_Content\":\"[leadbus call c1 attempt 2]\"}]}";
    assert_int_equal(list(200, noid, id, &more, code), ZOHO_LIST_NONE);
    /* the marker must be in the searched field, not anywhere in the record */
    const char *elsewhere =
        "{\"data\":[{\"Note_Title\":\"[leadbus call c1 attempt 2]\",\"id\":\"9\"}]}";
    assert_int_equal(list(200, elsewhere, id, &more, code), ZOHO_LIST_NONE);
}

static void test_list_refusals_and_retries(void **state)
{
    (void)state;
    char id[32], code[64];
    bool more;
    const char *missing = "{\"code\":\"REQUIRED_PARAM_MISSING\",\"details\":{\"param_name\":"
                          "\"fields\"},\"message\":\"One of the expected parameter is missing\","
                          "\"status\":\"error\"}";
    assert_int_equal(list(400, missing, id, &more, code), ZOHO_LIST_REFUSED);
    assert_string_equal(code, "REQUIRED_PARAM_MISSING");
    assert_int_equal(list(404, "<html>", id, &more, code), ZOHO_LIST_REFUSED);
    assert_string_equal(code, "HTTP_404");
    const char *expired = "{\"code\":\"INVALID_TOKEN\",\"details\":{},\"message\":\"invalid oauth "
                          "token\",\"status\":\"error\"}";
    assert_int_equal(list(401, expired, id, &more, code), ZOHO_LIST_RETRY);
    assert_string_equal(code, "INVALID_TOKEN");
    assert_int_equal(list(429, "{}", id, &more, code), ZOHO_LIST_RETRY);
    assert_int_equal(list(500, "", id, &more, code), ZOHO_LIST_RETRY);
    assert_int_equal(list(200, "not json", id, &more, code), ZOHO_LIST_REFUSED);
    assert_string_equal(code, "UNREADABLE_LIST");
}

static void test_refused_statuses(void **state)
{
    (void)state;
    assert_true(zoho_refused(400));
    assert_true(zoho_refused(404));
    assert_true(zoho_refused(413));
    assert_false(zoho_refused(401)); /* a token to refresh */
    assert_false(zoho_refused(429)); /* limits: wait */
    assert_false(zoho_refused(500));
    assert_false(zoho_refused(200));
    assert_false(zoho_refused(0)); /* no answer at all */
}

static void test_coql_query_for_a_lead(void **state)
{
    (void)state;
    char q[256];
    assert_int_equal(zoho_coql_calls_of_lead("5725767000000000001", 400, q, sizeof q), 0);
    assert_string_equal(q, "select id, Subject from Calls where 'What_Id->Leads.id' = "
                           "'5725767000000000001' limit 200 offset 400");
    /* only a record id goes into the query: nothing to escape, nothing to inject */
    assert_int_equal(zoho_coql_calls_of_lead("1' or id is not null or '", 0, q, sizeof q), -1);
    assert_int_equal(zoho_coql_calls_of_lead("", 0, q, sizeof q), -1);
    assert_int_equal(zoho_coql_calls_of_lead("123", 0, q, 20), -1); /* does not fit */
    /* what the client asks, the sandbox parses */
    struct coql_query parsed;
    char why[COQL_WHY_MAX];
    assert_int_equal(zoho_coql_calls_of_lead("42", 200, q, sizeof q), 0);
    assert_int_equal(sandbox_coql_parse(q, &parsed, why), COQL_OK);
    assert_string_equal(parsed.module, "Calls");
    assert_int_equal(parsed.ncols, 2);
    assert_string_equal(parsed.where_col, "What_Id->Leads.id");
    assert_string_equal(parsed.where_val, "42");
    assert_int_equal(parsed.limit, 200);
    assert_int_equal(parsed.offset, 200);
}

static void test_coql_subset(void **state)
{
    (void)state;
    struct coql_query q;
    char why[COQL_WHY_MAX];
    assert_int_equal(sandbox_coql_parse("SELECT Subject FROM Calls WHERE (id = '7')", &q, why),
                     COQL_OK);
    assert_int_equal(q.limit, COQL_LIMIT_DEFAULT);
    assert_int_equal(sandbox_coql_parse("select a from Calls where b = 'it''s'", &q, why), COQL_OK);
    assert_string_equal(q.where_val, "it's");
    assert_int_equal(sandbox_coql_parse("select a from Calls", &q, why), COQL_SYNTAX);
    assert_int_equal(sandbox_coql_parse("select a from Calls where b > '1'", &q, why), COQL_SYNTAX);
    assert_int_equal(sandbox_coql_parse("select a from Calls where b = 1", &q, why), COQL_SYNTAX);
    assert_int_equal(sandbox_coql_parse("select a from Calls where b = '1' limit 2001", &q, why),
                     COQL_LIMIT);
    assert_int_equal(sandbox_coql_parse("select a from Calls where b = '1' limit 0", &q, why),
                     COQL_LIMIT);
    assert_int_equal(sandbox_coql_parse("select a from Calls where b = '1' junk", &q, why),
                     COQL_SYNTAX);
    assert_int_equal(sandbox_coql_parse("select a from Calls where b = 'unterminated", &q, why),
                     COQL_SYNTAX);
    assert_int_equal(sandbox_coql_parse("", &q, why), COQL_SYNTAX);
    char many[2048] = "select ";
    for (int i = 0; i < 51; i++) {
        strcat(many, i ? ", c" : "c");
    }
    strcat(many, " from Calls where a = 'b'");
    assert_int_equal(sandbox_coql_parse(many, &q, why), COQL_LIMIT);
}

/* Where a lead goes after a send: the decision commit_job writes. */
static void test_lead_after_a_send(void **state)
{
    (void)state;
    const int64_t hour = 3600 * 1000;
    assert_int_equal(zoho_lead_after(ZOHO_SENT_SYNCED, 10 * hour, 1, hour), ZOHO_LEAD_SYNCED);
    assert_int_equal(zoho_lead_after(ZOHO_SENT_REFUSED, 10, 0, hour), ZOHO_LEAD_DEAD);
    /* transient: pending again until ZOHO_MAX_RETRY_MS since the first try, then dead */
    assert_int_equal(zoho_lead_after(ZOHO_SENT_RETRY, hour, 0, hour), ZOHO_LEAD_PENDING);
    assert_int_equal(zoho_lead_after(ZOHO_SENT_RETRY, hour + 5, 6, hour), ZOHO_LEAD_PENDING);
    assert_int_equal(zoho_lead_after(ZOHO_SENT_RETRY, hour + 5, 5, hour), ZOHO_LEAD_DEAD);
    assert_string_equal(zoho_lead_state_name[ZOHO_LEAD_SENDING], "sending");
    assert_string_equal(zoho_lead_state_name[ZOHO_LEAD_DEAD], "dead");
}

/* A lead.created map becomes a Leads record; an external id field replaces duplicate checks. */
static void test_upsert_body(void **state)
{
    (void)state;
    const char *json[] = {"{\"first_name\":\"Asha\",\"last_name\":\"Rao\",\"email\":\"a@x.in\","
                          "\"phone_status\":\"valid\",\"phone_e164\":\"+919310000000\","
                          "\"phone_raw\":\"9310000000\",\"city\":\"\"}",
                          "{\"last_name\":\"B\",\"phone_status\":\"invalid\",\"phone_raw\":\"12\","
                          "\"company\":\"Acme\"}"};
    const char *ids[] = {"l1", "l2"};
    struct zoho_lead_shape by_email = {
        .ext_field = "", .dup_fields = "Email,Phone", .default_company = "Self"};
    char *s = zoho_upsert_body(&by_email, json, ids, 2);
    assert_non_null(s);
    assert_string_equal(
        s, "{\"data\":[{\"First_Name\":\"Asha\",\"Last_Name\":\"Rao\",\"Email\":\"a@x.in\","
           "\"Phone\":\"+919310000000\",\"Company\":\"Self\"},{\"Last_Name\":\"B\","
           "\"Company\":\"Acme\",\"Phone\":\"12\"}],\"duplicate_check_fields\":[\"Email\","
           "\"Phone\"]}");
    free(s);
    struct zoho_lead_shape by_id = {
        .ext_field = "Leadbus_Id", .dup_fields = "Email", .default_company = ""};
    s = zoho_upsert_body(&by_id, json + 1, ids + 1, 1);
    assert_string_equal(s, "{\"data\":[{\"Last_Name\":\"B\",\"Company\":\"Acme\",\"Phone\":"
                           "\"12\",\"Leadbus_Id\":\"l2\"}]}");
    free(s);
}

static void test_token_form(void **state)
{
    (void)state;
    char form[128];
    assert_int_equal(zoho_token_form("id 1", "s&=", "r/t", form, sizeof form), 0);
    assert_string_equal(form, "grant_type=refresh_token&client_id=id%201&client_secret=s%26%3D"
                              "&refresh_token=r%2Ft");
    assert_int_equal(zoho_token_form("id", "s", "r", form, 40), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_found_on_a_page),
        cmocka_unit_test(test_list_none_and_paging),
        cmocka_unit_test(test_list_refusals_and_retries),
        cmocka_unit_test(test_refused_statuses),
        cmocka_unit_test(test_coql_query_for_a_lead),
        cmocka_unit_test(test_coql_subset),
        cmocka_unit_test(test_lead_after_a_send),
        cmocka_unit_test(test_upsert_body),
        cmocka_unit_test(test_token_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
