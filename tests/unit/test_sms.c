/* Unit tests for the SMS follow-up's pure decisions (services/sms/sms_logic.c): SMS_ON, the
 * template, Exotel's Sms/send answers (JSON and XML), delivery callback statuses, DND. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "sms_logic.h"

#include <string.h>

static void test_sms_on(void **state)
{
    (void)state;
    struct sms_on on;
    char err[256];
    assert_int_equal(sms_on_parse("no-answer,busy", &on, err, sizeof err), 0);
    assert_int_equal(on.n, 2);
    assert_true(sms_on_match(&on, "busy"));
    assert_true(sms_on_match(&on, "no-answer"));
    assert_false(sms_on_match(&on, "completed"));
    assert_false(sms_on_match(&on, "dnd"));
    assert_int_equal(sms_on_parse("", &on, err, sizeof err), 0);
    assert_int_equal(on.n, 0);
    /* a number Exotel refused or reports DND never gets a text, whatever the setting says */
    assert_int_equal(sms_on_parse("no-answer,dnd", &on, err, sizeof err), -1);
    assert_non_null(strstr(err, "SMS_ON: 'dnd'"));
    assert_int_equal(sms_on_parse("rejected", &on, err, sizeof err), -1);
    assert_int_equal(sms_on_parse("completed", &on, err, sizeof err), -1);
}

static void test_sms_render(void **state)
{
    (void)state;
    char out[2048];
    struct sms_vars v = {"Asha", "Rao", "Ravi", NULL};
    assert_int_equal(sms_render("Hi {first_name} {last_name}, {agent_name} from {company}.", &v,
                                out, sizeof out),
                     0);
    assert_string_equal(out, "Hi Asha Rao, Ravi from .");
    assert_int_equal(sms_render("Hi {name}", &v, out, sizeof out), -1);
    assert_int_equal(sms_render("Hi {first_name", &v, out, sizeof out), -1);
    assert_int_equal(sms_render("no placeholders", &v, out, sizeof out), 0);
    assert_string_equal(out, "no placeholders");
    char small[8];
    assert_int_equal(sms_render("Hi {first_name}!", &v, small, sizeof small), -2);
    char big[2100];
    memset(big, 'x', 2001);
    big[2001] = '\0';
    assert_int_equal(sms_render(big, &v, out, sizeof out), -2); /* Exotel's 2000 */
}

static void test_sms_parse_sent(void **state)
{
    (void)state;
    char sid[64];
    const char *json = "{\"SMSMessage\":{\"Sid\":\"0b6c6a98f32682862ce6edf1bdab3526\","
                       "\"Status\":\"queued\",\"DetailedStatusCode\":21010}}";
    assert_int_equal(sms_parse_sent(json, strlen(json), sid, sizeof sid), 0);
    assert_string_equal(sid, "0b6c6a98f32682862ce6edf1bdab3526");
    const char *xml = "<?xml version=\"1.0\"?><TwilioResponse><SMSMessage><Sid>abc123</Sid>"
                      "<Status>queued</Status></SMSMessage></TwilioResponse>";
    assert_int_equal(sms_parse_sent(xml, strlen(xml), sid, sizeof sid), 0);
    assert_string_equal(sid, "abc123");
    const char *none[] = {"{}", "{\"SMSMessage\":{\"Sid\":\"\"}}", "{\"SMSMessage\":{\"Sid\":3}}",
                          "<TwilioResponse><RestException><Status>400</Status></RestException>",
                          ""};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        assert_int_equal(sms_parse_sent(none[i], strlen(none[i]), sid, sizeof sid), -1);
    }
}

static void test_sms_callback_state(void **state)
{
    (void)state;
    assert_int_equal(sms_callback_state("sent"), SMS_DELIVERED);
    assert_int_equal(sms_callback_state("delivered"), SMS_DELIVERED);
    assert_int_equal(sms_callback_state("submitted"), SMS_SENT);
    assert_int_equal(sms_callback_state("failed"), SMS_FAILED);
    assert_int_equal(sms_callback_state("failed_dnd"), SMS_DND);
    assert_int_equal(sms_callback_state("FAILED-DND"), SMS_DND);
    assert_int_equal(sms_callback_state("bogus"), -1);
    assert_string_equal(sms_state_names[SMS_UNKNOWN], "unknown");
}

static void test_sms_dnd(void **state)
{
    (void)state;
    bool dnd = false;
    const char *yes = "{\"Numbers\":{\"PhoneNumber\":\"+919800000262\",\"DND\":\"Yes\"}}";
    const char *no = "{\"Numbers\":{\"DND\":\"No\"}}";
    assert_int_equal(sms_parse_dnd(yes, strlen(yes), &dnd), 0);
    assert_true(dnd);
    assert_int_equal(sms_parse_dnd(no, strlen(no), &dnd), 0);
    assert_false(dnd);
    assert_int_equal(sms_parse_dnd("{}", 2, &dnd), -1);
    assert_int_equal(sms_parse_dnd("nope", 4, &dnd), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sms_on),         cmocka_unit_test(test_sms_render),
        cmocka_unit_test(test_sms_parse_sent), cmocka_unit_test(test_sms_callback_state),
        cmocka_unit_test(test_sms_dnd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
