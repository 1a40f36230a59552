/* Unit tests for zoho_notify_parse: Zoho's notifications and the record GET's answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "zoho_notify_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum zoho_notify_status parse(const char *body, struct zoho_notification *n)
{
    char err[128];
    return zoho_notify_parse(body, strlen(body), n, err, sizeof err);
}

static void test_notification(void **state)
{
    (void)state;
    struct zoho_notification *n = calloc(1, sizeof *n);
    /* the documented shape, channel_id as a number */
    assert_int_equal(
        parse("{\"server_time\":1560508296640,\"query_params\":{},\"module\":\"Leads\","
              "\"resource_uri\":\"https://www.zohoapis.com/crm/v8/Leads\",\"ids\":["
              "\"5725767000000000001\",\"5725767000000000002\"],\"affected_fields\":[],"
              "\"operation\":\"insert\",\"channel_id\":1000000068001,\"token\":\"t0k\"}",
              n),
        ZOHO_NOTIFY_OK);
    assert_string_equal(n->channel_id, "1000000068001");
    assert_string_equal(n->token, "t0k");
    assert_string_equal(n->module, "Leads");
    assert_string_equal(n->operation, "insert");
    assert_int_equal(n->nids, 2);
    assert_string_equal(n->ids[1], "5725767000000000002");
    /* channel_id as a string; no token (checked by the caller as missing) */
    assert_int_equal(parse("{\"module\":\"Leads\",\"operation\":\"insert\",\"channel_id\":\"7\","
                           "\"ids\":[]}",
                           n),
                     ZOHO_NOTIFY_OK);
    assert_string_equal(n->token, "");
    assert_int_equal(n->nids, 0);
    free(n);
}

static void test_notification_refused(void **state)
{
    (void)state;
    struct zoho_notification *n = calloc(1, sizeof *n);
    const char *bad[] = {
        "",
        "[]",
        "{\"module\":\"Leads\",\"operation\":\"insert\",\"ids\":[\"1\"]}", /* no channel */
        "{\"module\":\"Leads\",\"operation\":\"insert\",\"channel_id\":\"1a\",\"ids\":[\"1\"]}",
        "{\"module\":\"Leads\",\"operation\":\"insert\",\"channel_id\":1.5,\"ids\":[\"1\"]}",
        "{\"module\":\"Leads\",\"operation\":\"insert\",\"channel_id\":1,\"ids\":[1]}",
        "{\"module\":\"Leads\",\"operation\":\"insert\",\"channel_id\":1,\"ids\":[\"../1\"]}",
        "{\"module\":\"Leads\",\"operation\":\"insert\",\"channel_id\":1,\"ids\":\"1\"}",
        "{\"module\":\"Leads\",\"channel_id\":1,\"ids\":[\"1\"]}", /* no operation */
        "{\"module\":\"Leads\",\"operation\":\"insert\",\"channel_id\":1,\"ids\":[\"1\"],"
        "\"token\":\"012345678901234567890123456789012345678901234567890\"}", /* 51 characters */
        "{\"module\":\"Leads\",\"operation\":\"insert\",\"channel_id\":1,\"ids\":[\"1\"],\"token\":"
        "5}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(bad[i], n), ZOHO_NOTIFY_MALFORMED);
        assert_int_equal(n->nids, 0);
    }
    /* more than 100 ids */
    char big[4096];
    int w = snprintf(big, sizeof big,
                     "{\"module\":\"Leads\",\"operation\":\"insert\",\"channel_id\":1,\"ids\":[");
    for (int i = 0; i < 101; i++) {
        w += snprintf(big + w, sizeof big - (size_t)w, "%s\"%d\"", i ? "," : "", i + 1);
    }
    snprintf(big + w, sizeof big - (size_t)w, "]}");
    assert_int_equal(parse(big, n), ZOHO_NOTIFY_MALFORMED);
    free(n);
}

static void test_records(void **state)
{
    (void)state;
    struct zoho_notify_record recs[4];
    int n = 0;
    const char *body = "{\"data\":[{\"id\":\"11\",\"Last_Name\":\"A\"},{\"id\":12},{\"Last_Name\":"
                       "\"B\"},{\"id\":\"13\",\"Phone\":null}],\"info\":{\"count\":4}}";
    assert_int_equal(zoho_notify_records(body, strlen(body), recs, 4, &n), 0);
    assert_int_equal(n, 2); /* ids that are not digit strings are skipped */
    assert_string_equal(recs[0].id, "11");
    assert_string_equal(recs[0].json, "{\"id\":\"11\",\"Last_Name\":\"A\"}");
    assert_string_equal(recs[1].id, "13");
    for (int i = 0; i < n; i++) {
        free(recs[i].json);
    }
    assert_int_equal(zoho_notify_records("{\"code\":\"INVALID_TOKEN\"}", 24, recs, 4, &n), -1);
    assert_int_equal(n, 0);
    assert_int_equal(zoho_notify_records("", 0, recs, 4, &n), -1);
    assert_true(zoho_notify_id_ok("5725767000000000001"));
    assert_false(zoho_notify_id_ok("1 2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notification),
        cmocka_unit_test(test_notification_refused),
        cmocka_unit_test(test_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
