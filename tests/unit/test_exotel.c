/* Unit tests for the dialer's Exotel parsing: connect answers, call details, number metadata,
 * the connect form, and StatusCallbacks in their three encodings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "callback_guard.h"
#include "connect_verdict.h"
#include "dialer_internal.h"
#include "exotel_callback.h"
#include "exotel_client.h"

#include <stdlib.h>
#include <string.h>

static void classify(long status, const char *body, struct exotel_connect_result *r)
{
    exotel_classify_connect(status, true, -1, body, strlen(body), r);
}

static void test_connect_placed(void **state)
{
    (void)state;
    struct exotel_connect_result r;
    classify(200,
             "{\"Call\":{\"Sid\":\"c5797dcbaaeed7678c4062a4a3ed2f8a\",\"ParentCallSid\":null,"
             "\"Status\":\"in-progress\",\"Duration\":null,\"Price\":null,\"RecordingUrl\":null}}",
             &r);
    assert_int_equal(r.outcome, EXOTEL_PLACED);
    assert_string_equal(r.call.sid, "c5797dcbaaeed7678c4062a4a3ed2f8a");
    assert_string_equal(r.call.status, "in-progress");
    assert_int_equal(r.call.duration_s, 0);
    /* XML, as Exotel answers without .json; a non-hex Sid is real too. */
    classify(200,
             "<?xml version=\"1.0\"?>\n<TwilioResponse>\n <Call>\n  "
             "<Sid>55cd271a8e90cf3f3d9d85e06f56189g</Sid>\n  <ParentCallSid />\n  "
             "<Status>queued</Status>\n  <EndTime />\n </Call>\n</TwilioResponse>",
             &r);
    assert_int_equal(r.outcome, EXOTEL_PLACED);
    assert_string_equal(r.call.sid, "55cd271a8e90cf3f3d9d85e06f56189g");
    assert_string_equal(r.call.status, "queued");
}

static void test_connect_not_placed_or_unknown(void **state)
{
    (void)state;
    struct exotel_connect_result r;
    /* A 200 that is really an error, or has no Sid, may still have dialed: unknown. */
    classify(200, "{\"RestException\":{\"Status\":500,\"Message\":\"oops\"}}", &r);
    assert_int_equal(r.outcome, EXOTEL_UNKNOWN);
    classify(200, "{\"Call\":{\"Status\":\"queued\"}}", &r);
    assert_int_equal(r.outcome, EXOTEL_UNKNOWN);
    exotel_classify_connect(429, true, 3000, "{\"RestException\":{\"Status\":429}}", 33, &r);
    assert_int_equal(r.outcome, EXOTEL_THROTTLED);
    assert_int_equal(r.retry_after_ms, 3000);
    classify(403,
             "<TwilioResponse><RestException><Status>403</Status><Message>Call to [01234] cannot "
             "be made because of TRAI NDNC regulations</Message></RestException></TwilioResponse>",
             &r);
    assert_int_equal(r.outcome, EXOTEL_DND);
    assert_non_null(strstr(r.message, "NDNC"));
    classify(403, "{\"RestException\":{\"Status\":403,\"Message\":\"Forbidden\"}}", &r);
    assert_int_equal(r.outcome, EXOTEL_REJECTED);
    classify(401, "Authentication is required to view this page.\n", &r);
    assert_int_equal(r.outcome, EXOTEL_REJECTED);
    assert_string_equal(r.message, "Authentication is required to view this page.");
    classify(400, "{\"RestException\":{\"Status\":\"400\",\"Message\":\"Invalid To\"}}", &r);
    assert_int_equal(r.outcome, EXOTEL_REJECTED);
    assert_string_equal(r.message, "Invalid To");
    classify(402, "", &r);
    assert_int_equal(r.outcome, EXOTEL_REJECTED);
    classify(500, "{\"RestException\":{\"Status\":500,\"Message\":\"x\"}}", &r);
    assert_int_equal(r.outcome, EXOTEL_UNKNOWN);
    classify(504, "<html>gateway</html>", &r);
    assert_int_equal(r.outcome, EXOTEL_UNKNOWN);
    classify(409, "", &r);
    assert_int_equal(r.outcome, EXOTEL_UNKNOWN);
    exotel_classify_connect(0, true, -1, "", 0, &r); /* timeout after sending */
    assert_int_equal(r.outcome, EXOTEL_UNKNOWN);
    exotel_classify_connect(0, false, -1, "", 0, &r); /* connection refused */
    assert_int_equal(r.outcome, EXOTEL_NOT_SENT);
}

static void test_call_details(void **state)
{
    (void)state;
    struct exotel_call c;
    const char *one =
        "{\"Call\":{\"Sid\":\"b6cfaf5f5cef3ca0fc937749ef96d245\",\"Status\":"
        "\"completed\",\"Duration\":\"17\",\"Price\":\"1.500\",\"RecordingUrl\":"
        "\"https://example.invalid/r.mp3\",\"Details\":{\"ConversationDuration\":8}}}";
    assert_int_equal(exotel_parse_call(one, strlen(one), &c), 0);
    assert_int_equal(c.duration_s, 8); /* the conversation, not the whole call */
    assert_string_equal(c.recording_url, "https://example.invalid/r.mp3");
    const char *numeric = "{\"Call\":{\"Sid\":\"fe9e9bb3bc5e27386f6c6368a79a189g\",\"Status\":"
                          "\"busy\",\"Duration\":11,\"Price\":0.75,\"RecordingUrl\":\"\"}}";
    assert_int_equal(exotel_parse_call(numeric, strlen(numeric), &c), 0);
    assert_int_equal(c.duration_s, 11);
    assert_string_equal(c.recording_url, "");
    assert_int_equal(exotel_parse_call("{}", 2, &c), -1);
    const char *bad_sid = "{\"Call\":{\"Sid\":\"../etc/passwd\"}}";
    assert_int_equal(exotel_parse_call(bad_sid, strlen(bad_sid), &c), -1);

    const char *bulk = "{\"Metadata\":{\"Total\":2},\"Calls\":[{\"Sid\":\"aaaaaaaaaaaaaaaa\","
                       "\"Status\":\"no-answer\",\"To\":\"09876543210\",\"DateCreated\":"
                       "\"2026-11-24 10:00:00\"},{\"Sid\":null},{\"Sid\":\"bbbbbbbbbbbbbbbb\","
                       "\"Status\":\"completed\",\"Duration\":\"40\"}]}";
    struct exotel_call calls[4];
    assert_int_equal(exotel_parse_calls(bulk, strlen(bulk), calls, 4), 2);
    assert_string_equal(calls[0].to, "09876543210");
    assert_string_equal(calls[0].date_created, "2026-11-24 10:00:00");
    assert_string_equal(calls[1].sid, "bbbbbbbbbbbbbbbb");
    assert_int_equal(calls[1].duration_s, 40);
    assert_int_equal(exotel_parse_calls("{\"Calls\":[]}", 12, calls, 4), 0);
    assert_int_equal(exotel_parse_calls("[]", 2, calls, 4), -1);

    bool dnd = false;
    const char *yes = "{\"Numbers\":{\"DND\":\"Yes\"}}", *no = "{\"Numbers\":{\"DND\":\"No\"}}";
    assert_int_equal(exotel_parse_number(yes, strlen(yes), &dnd), 0);
    assert_true(dnd);
    assert_int_equal(exotel_parse_number(no, strlen(no), &dnd), 0);
    assert_false(dnd);
    assert_int_equal(exotel_parse_number("{\"Numbers\":{}}", 14, &dnd), -1);
}

static void test_bulk_pages(void **state)
{
    (void)state;
    struct exotel_call calls[4];
    struct exotel_page page;
    /* Exotel's documented page (call-details.mdx): a NextPageUri whose After is the cursor. */
    const char *first =
        "{\"Metadata\":{\"Total\":1027,\"PageSize\":2,\"FirstPageUri\":\"/v1/Accounts/a/"
        "Calls.json?To=0987\",\"PrevPageUri\":null,\"NextPageUri\":\"/v1/Accounts/a/"
        "Calls.json?To=0987&PageSize=2&After=xyz%2B1%3D\"},\"Calls\":[{\"Sid\":"
        "\"aaaaaaaaaaaaaaaa\",\"Status\":\"busy\"},{\"Sid\":\"bbbbbbbbbbbbbbbb\"}]}";
    assert_int_equal(exotel_parse_calls_page(first, strlen(first), calls, 4, &page), 2);
    assert_string_equal(page.after, "xyz+1="); /* decoded: it is escaped again when sent */
    assert_int_equal(page.total, 1027);
    /* The last page: NextPageUri null, "" or absent. */
    const char *last = "{\"Metadata\":{\"Total\":3,\"NextPageUri\":null},\"Calls\":[{\"Sid\":"
                       "\"cccccccccccccccc\",\"Status\":\"completed\"}]}";
    assert_int_equal(exotel_parse_calls_page(last, strlen(last), calls, 4, &page), 1);
    assert_string_equal(page.after, "");
    assert_string_equal(calls[0].sid, "cccccccccccccccc");
    const char *empty = "{\"Metadata\":{\"NextPageUri\":\"\"},\"Calls\":[]}";
    assert_int_equal(exotel_parse_calls_page(empty, strlen(empty), calls, 4, &page), 0);
    assert_string_equal(page.after, "");
    assert_int_equal(page.total, -1);
    assert_int_equal(exotel_parse_calls_page("{\"Calls\":[]}", 12, calls, 4, &page), 0);
    /* A next page we cannot ask for: the answer is unusable, not "no more calls". */
    const char *no_cursor = "{\"Metadata\":{\"NextPageUri\":\"/v1/Accounts/a/Calls.json?Page=2\"},"
                            "\"Calls\":[]}";
    assert_int_equal(exotel_parse_calls_page(no_cursor, strlen(no_cursor), calls, 4, &page), -1);
    const char *bad_escape = "{\"Metadata\":{\"NextPageUri\":\"/v1/Calls.json?After=%zz\"},"
                             "\"Calls\":[]}";
    assert_int_equal(exotel_parse_calls_page(bad_escape, strlen(bad_escape), calls, 4, &page), -1);
    const char *ctrl = "{\"Metadata\":{\"NextPageUri\":\"/v1/Calls.json?After=a%0Ab\"},"
                       "\"Calls\":[]}";
    assert_int_equal(exotel_parse_calls_page(ctrl, strlen(ctrl), calls, 4, &page), -1);
    /* "After=" must be a parameter of its own, not the tail of another one. */
    const char *tail = "{\"Metadata\":{\"NextPageUri\":\"/v1/Calls.json?NotAfter=x\"},"
                       "\"Calls\":[]}";
    assert_int_equal(exotel_parse_calls_page(tail, strlen(tail), calls, 4, &page), -1);
    const char *second = "{\"Metadata\":{\"NextPageUri\":\"/v1/Calls.json?a=1&After=c2&b=2\"},"
                         "\"Calls\":[]}";
    assert_int_equal(exotel_parse_calls_page(second, strlen(second), calls, 4, &page), 0);
    assert_string_equal(page.after, "c2");
    assert_int_equal(exotel_parse_calls_page("[]", 2, calls, 4, &page), -1);
}

static void test_same_number(void **state)
{
    (void)state;
    assert_true(exotel_same_number("09876543210", "+919876543210"));
    assert_true(exotel_same_number("919876543210", "+91 98765-43210"));
    assert_true(exotel_same_number("9876543210", "09876543210"));
    assert_false(exotel_same_number("09876543211", "+919876543210"));
    assert_false(exotel_same_number("", "+919876543210"));
    assert_false(exotel_same_number("1234", "1234")); /* too short to be a phone number */
}

static void test_connect_form(void **state)
{
    (void)state;
    CURL *curl = curl_easy_init();
    struct exotel_dial d = {.from = "08047000001",
                            .to = "+919876543210",
                            .caller_id = "08047000000",
                            .call_type = "trans",
                            .ring_timeout_s = 45,
                            .time_limit_s = 600,
                            .status_callback = "http://127.0.0.1:3000/exotel/callback?call=c1&x=1",
                            .custom_field = "c1"};
    char *form = exotel_connect_form(curl, &d);
    assert_non_null(form);
    assert_non_null(strstr(form, "From=08047000001&To=%2B919876543210&CallerId=08047000000"));
    assert_non_null(strstr(form,
                           "&CallType=trans&TimeOut=45&TimeLimit=600&StatusCallback="
                           "http%3A%2F%2F127.0.0.1%3A3000%2Fexotel%2Fcallback%3Fcall%3Dc1%26x%"
                           "3D1&StatusCallbackEvents%5B0%5D=terminal&"
                           "StatusCallbackContentType=application%2Fjson&CustomField=c1"));
    assert_null(strstr(form, "Record="));
    free(form);
    /* Into a flow: the lead is From, there is no To. */
    d.from = "09876543210";
    d.flow_url = "http://my.exotel.com/acme/exoml/start_voice/1234";
    d.record = true;
    form = exotel_connect_form(curl, &d);
    assert_non_null(strstr(form, "From=09876543210&Url=http%3A%2F%2Fmy.exotel.com"));
    assert_null(strstr(form, "To="));
    assert_non_null(strstr(form, "Record=true"));
    free(form);
    curl_easy_cleanup(curl);
}

static void test_callback_json(void **state)
{
    (void)state;
    const char *body =
        "{\"CallSid\":\"80bfbec2d78bbbf10fb851f4fa165211\",\"EventType\":\"terminal\","
        "\"Status\":\"completed\",\"ConversationDuration\":320,\"CustomField\":\"order_12345\","
        "\"RecordingUrl\":\"https://example.invalid/abc123.mp3\",\"Legs\":[{\"OnCallDuration\":"
        "335,\"Status\":\"completed\"},{\"OnCallDuration\":320,\"Status\":\"completed\"}]}";
    struct exotel_callback cb;
    assert_int_equal(
        exotel_callback_parse("application/json; charset=utf-8", body, strlen(body), &cb), 0);
    assert_string_equal(cb.call_sid, "80bfbec2d78bbbf10fb851f4fa165211");
    assert_string_equal(cb.status, "completed");
    assert_string_equal(cb.event_type, "terminal");
    assert_string_equal(cb.custom_field, "order_12345");
    assert_int_equal(cb.duration_s, 320);
    /* No ConversationDuration: the longest leg. Status case does not matter. */
    const char *legs = "{\"CallSid\":\"x1\",\"Status\":\"COMPLETED\",\"Legs\":[{\"Leg\":{"
                       "\"OnCallDuration\":21}},{\"Leg\":{\"OnCallDuration\":8}}]}";
    assert_int_equal(exotel_callback_parse("application/json", legs, strlen(legs), &cb), 0);
    assert_int_equal(cb.duration_s, 21);
    assert_string_equal(cb.status, "completed");
    assert_int_equal(exotel_callback_parse("application/json", "{\"Status\":\"busy\"}", 17, &cb),
                     -1);
    assert_int_equal(exotel_callback_parse("application/json", "[1]", 3, &cb), -1);
}

/* Both legs of an agent-first call: leg 1 is the agent (From). */
static void test_callback_legs(void **state)
{
    (void)state;
    struct exotel_callback cb;
    const char *agent_missed = "{\"CallSid\":\"s1\",\"Status\":\"no-answer\",\"Legs\":["
                               "{\"OnCallDuration\":0,\"Status\":\"no-answer\"},"
                               "{\"OnCallDuration\":0,\"Status\":null}]}";
    assert_int_equal(
        exotel_callback_parse("application/json", agent_missed, strlen(agent_missed), &cb), 0);
    assert_string_equal(cb.leg1_status, "no-answer");
    assert_string_equal(cb.leg2_status, "");
    const char *lead_missed = "{\"CallSid\":\"s2\",\"Status\":\"no-answer\",\"Legs\":["
                              "{\"Leg\":{\"Id\":1,\"Status\":\"completed\"}},"
                              "{\"Leg\":{\"Id\":2,\"Status\":\"no-answer\"}}]}";
    assert_int_equal(
        exotel_callback_parse("application/json", lead_missed, strlen(lead_missed), &cb), 0);
    assert_string_equal(cb.leg1_status, "completed");
    assert_string_equal(cb.leg2_status, "no-answer");
    const char *form = "CallSid=s3&Status=busy&Leg1Status=completed&Legs%5B1%5D%5BStatus%5D=busy";
    assert_int_equal(
        exotel_callback_parse("application/x-www-form-urlencoded", form, strlen(form), &cb), 0);
    assert_string_equal(cb.leg1_status, "completed");
    assert_string_equal(cb.leg2_status, "busy");
}

static void test_callback_forms(void **state)
{
    (void)state;
    struct exotel_callback cb;
    const char *url = "CallSid=abc123&Status=no-answer&RecordingUrl=&ConversationDuration=0"
                      "&DateUpdated=2026-11-24+10%3A00%3A00&CustomField=call_ld_1";
    assert_int_equal(
        exotel_callback_parse("application/x-www-form-urlencoded", url, strlen(url), &cb), 0);
    assert_string_equal(cb.status, "no-answer");
    assert_string_equal(cb.custom_field, "call_ld_1");
    /* multipart, as curl and Exotel send it (quoted boundary, opening delimiter first). */
    const char *mp = "--b-1 2\r\nContent-Disposition: form-data; name=\"CallSid\"\r\n\r\nsid9\r\n"
                     "--b-1 2\r\nContent-Disposition: form-data; name=\"Status\"\r\n"
                     "Content-Type: text/plain\r\n\r\nbusy\r\n"
                     "--b-1 2\r\nContent-Disposition: form-data; name=\"Duration\"\r\n\r\n7\r\n"
                     "--b-1 2--\r\n";
    assert_int_equal(
        exotel_callback_parse("multipart/form-data; boundary=\"b-1 2\"", mp, strlen(mp), &cb), 0);
    assert_string_equal(cb.call_sid, "sid9");
    assert_string_equal(cb.status, "busy");
    assert_int_equal(cb.duration_s, 7);
    /* Truncated before the closing delimiter: refused whole. */
    assert_int_equal(
        exotel_callback_parse("multipart/form-data; boundary=\"b-1 2\"", mp, strlen(mp) - 30, &cb),
        -1);
    assert_string_equal(cb.call_sid, "");
    assert_int_equal(exotel_callback_parse("multipart/form-data", mp, strlen(mp), &cb), -1);
    assert_int_equal(exotel_callback_parse("text/plain", url, strlen(url), &cb), -1);
    assert_int_equal(exotel_callback_parse(NULL, url, strlen(url), &cb), -1);
}

/* A token opens its own attempt only, under its own key. */
static void test_callback_tokens(void **state)
{
    (void)state;
    const unsigned char key[] = "Jefe";
    char t[CALLBACK_TOKEN_LEN + 1], u[CALLBACK_TOKEN_LEN + 1];
    assert_int_equal(callback_token(key, 4, "call_ld_1", 1, t), 0);
    assert_int_equal(strlen(t), CALLBACK_TOKEN_LEN);
    assert_true(callback_token_ok(key, 4, "call_ld_1", 1, t));
    assert_false(callback_token_ok(key, 4, "call_ld_1", 2, t));  /* another attempt */
    assert_false(callback_token_ok(key, 4, "call_ld_2", 1, t));  /* another call */
    assert_false(callback_token_ok(key, 3, "call_ld_1", 1, t));  /* another key */
    assert_false(callback_token_ok(key, 4, "call_ld_1", 1, "")); /* none */
    assert_false(callback_token_ok(key, 4, "call_ld_1", 1, NULL));
    t[63] = t[63] == '0' ? '1' : '0';
    assert_false(callback_token_ok(key, 4, "call_ld_1", 1, t)); /* one character off */
    assert_int_equal(callback_token(key, 4, "call_ld_1", 12, u), 0);
    assert_int_equal(callback_token(key, 4, "call_ld_11", 2, t), 0);
    assert_string_not_equal(t, u); /* "call_ld_1:12" vs "call_ld_11:2" */
    assert_int_equal(callback_token(key, 0, "call_ld_1", 1, t), -1);
    /* HMAC-SHA256(key, "leadbus-callback:v1:<call>:<attempt>"), as `openssl dgst -mac HMAC` makes
     * it */
    assert_int_equal(callback_token(key, 4, "x", 1, t), 0);
    assert_string_equal(t, "478549e57df0c060123055d2abb129fa886dd208ad36bc0c2ed97c4c17400b33");
}

static void test_callback_verdicts(void **state)
{
    (void)state;
    const char *sid = "0123456789abcdef0123456789abcdef";
    assert_int_equal(callback_verdict("initiated", sid, sid), CALLBACK_APPLY);
    assert_int_equal(callback_verdict("initiated", sid, "ffff456789abcdef0123456789abcdef"),
                     CALLBACK_MISMATCH);
    assert_int_equal(callback_verdict("initiated", sid, ""), CALLBACK_MISMATCH);
    assert_int_equal(callback_verdict("final", sid, "other"), CALLBACK_DUPLICATE);
    assert_int_equal(callback_verdict("final", "", sid), CALLBACK_DUPLICATE);
    /* the Sid is not known yet (the connect answer in flight or lost): never trusted */
    assert_int_equal(callback_verdict("dialing", "", sid), CALLBACK_DEFER);
    assert_int_equal(callback_verdict("unknown", "", sid), CALLBACK_DEFER);
    assert_int_equal(callback_verdict("queued", "", sid), CALLBACK_DEFER);
}

static void test_recording_urls(void **state)
{
    (void)state;
    assert_true(recording_url_allowed("https://s3-ap-southeast-1.amazonaws.com/recordings/a.mp3"));
    assert_true(recording_url_allowed("HTTPS://S3-AP-SOUTHEAST-1.AMAZONAWS.COM:443/r/a.mp3?X=1"));
    assert_false(recording_url_allowed("http://s3-ap-southeast-1.amazonaws.com/recordings/a.mp3"));
    assert_false(recording_url_allowed("https://evil.example/recordings/a.mp3"));
    assert_false(
        recording_url_allowed("https://s3-ap-southeast-1.amazonaws.com@evil.example/a.mp3"));
    assert_false(recording_url_allowed("https://u:p@s3-ap-southeast-1.amazonaws.com/a.mp3"));
    assert_false(recording_url_allowed("https://s3-ap-southeast-1.amazonaws.com:8443/a.mp3"));
    assert_false(recording_url_allowed("https://s3-ap-southeast-1.amazonaws.com.evil.example/a"));
    assert_false(recording_url_allowed("javascript:alert(1)"));
    assert_false(recording_url_allowed("s3-ap-southeast-1.amazonaws.com/a.mp3"));
    assert_false(recording_url_allowed(""));
    assert_false(recording_url_allowed(NULL));
}

/* Every connect answer to the attempt's next state: the dial path's one decision. */
static void verdict_of(long status, bool maybe_sent, int64_t retry_after_ms, const char *body,
                       struct connect_verdict *v)
{
    static struct exotel_connect_result r; /* v->status may point into it, as into a result */
    exotel_classify_connect(status, maybe_sent, retry_after_ms, body, strlen(body), &r);
    connect_verdict(&r, v);
}

static void test_connect_verdicts(void **state)
{
    (void)state;
    struct connect_verdict v;
    verdict_of(
        200, true, -1,
        "{\"Call\":{\"Sid\":\"c5797dcbaaeed7678c4062a4a3ed2f8a\",\"Status\":\"in-progress\"}}", &v);
    assert_int_equal(v.next, ATTEMPT_INITIATED);
    assert_string_equal(v.status, "in-progress");
    verdict_of(200, true, -1, "{\"Call\":{\"Sid\":\"c5797dcbaaeed7678c4062a4a3ed2f8a\"}}", &v);
    assert_int_equal(v.next, ATTEMPT_INITIATED);
    assert_string_equal(v.status, "queued"); /* no Status: Exotel's "waiting in line" */
    verdict_of(429, true, 3000, "{\"RestException\":{\"Status\":429}}", &v);
    assert_int_equal(v.next, ATTEMPT_QUEUED);
    assert_true(v.backoff);
    verdict_of(403, true, -1,
               "<TwilioResponse><RestException><Status>403</Status><Message>Call to [98***10] "
               "cannot be made because of TRAI NDNC regulations</Message></RestException>"
               "</TwilioResponse>",
               &v);
    assert_int_equal(v.next, ATTEMPT_FINAL);
    assert_string_equal(v.status, "dnd");
    assert_non_null(strstr(v.detail, "NDNC"));
    verdict_of(401, true, -1, "{\"RestException\":{\"Status\":401,\"Message\":\"Auth\"}}", &v);
    assert_int_equal(v.next, ATTEMPT_FINAL);
    assert_string_equal(v.status, "rejected");
    assert_true(v.bad_credentials);
    assert_string_equal(v.detail, "HTTP 401: Auth");
    verdict_of(400, true, -1, "{\"RestException\":{\"Status\":400,\"Message\":\"Bad To\"}}", &v);
    assert_int_equal(v.next, ATTEMPT_FINAL);
    assert_string_equal(v.status, "rejected");
    assert_false(v.bad_credentials);
    /* Exotel may have placed it: reconciled, never redialed, never final here */
    const long unknown[] = {500, 502, 503, 504};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        verdict_of(unknown[i], true, -1, "", &v);
        assert_int_equal(v.next, ATTEMPT_UNKNOWN);
        assert_false(v.backoff);
    }
    verdict_of(0, true, -1, "", &v); /* timeout or cut after the request may have left */
    assert_int_equal(v.next, ATTEMPT_UNKNOWN);
    verdict_of(0, false, -1, "", &v); /* no connection: nothing reached Exotel */
    assert_int_equal(v.next, ATTEMPT_FINAL);
    assert_string_equal(v.status, "failed-api");
}

/* Reconciliation adopts a free finished call of the number, never another attempt's; an
 * attempt that claimed a Sid before a crash (its outcome not yet recorded) takes that one. */
static void test_adopt(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE attempts(call_id TEXT, attempt INTEGER, sid TEXT);"
                                  "INSERT INTO attempts VALUES('c1', 1, 'S_OTHER');"
                                  "INSERT INTO attempts VALUES('c2', 1, NULL);"
                                  "INSERT INTO attempts VALUES('c3', 1, 'S_MINE');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    struct exotel_call calls[3];
    memset(calls, 0, sizeof calls);
    const char *sids[] = {"S_OTHER", "S_FREE", "S_MINE"};
    for (int i = 0; i < 3; i++) {
        snprintf(calls[i].sid, sizeof calls[i].sid, "%s", sids[i]);
        snprintf(calls[i].status, sizeof calls[i].status, "completed");
    }
    struct attempt fresh = {.call_id = "c2", .attempt = 1};
    struct adopt p = {calls, 3, &fresh, -1};
    assert_int_equal(attempts_adopt(db, &p), 0);
    assert_int_equal(p.found, 1); /* S_OTHER is c1's */
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT sid FROM attempts WHERE call_id = 'c2'", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "S_FREE"); /* claimed */
    sqlite3_finalize(st);
    struct attempt claimed = {.call_id = "c3", .attempt = 1, .sid = "S_MINE"};
    p = (struct adopt){calls, 3, &claimed, -1};
    assert_int_equal(attempts_adopt(db, &p), 0);
    assert_int_equal(p.found, 2); /* its own, though held by an attempt (itself) */
    struct attempt late = {.call_id = "c4", .attempt = 1};
    p = (struct adopt){calls, 3, &late, -1};
    assert_int_equal(attempts_adopt(db, &p), 0);
    assert_int_equal(p.found, -1); /* every call is some attempt's */
    snprintf(calls[1].status, sizeof calls[1].status, "in-progress");
    struct attempt early = {.call_id = "c5", .attempt = 1, .sid = "S_FREE"};
    p = (struct adopt){calls, 3, &early, -1};
    assert_int_equal(attempts_adopt(db, &p), 0);
    assert_int_equal(p.found, -1); /* its call is not over yet */
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_placed),
        cmocka_unit_test(test_connect_not_placed_or_unknown),
        cmocka_unit_test(test_call_details),
        cmocka_unit_test(test_connect_form),
        cmocka_unit_test(test_callback_json),
        cmocka_unit_test(test_callback_forms),
        cmocka_unit_test(test_callback_legs),
        cmocka_unit_test(test_callback_tokens),
        cmocka_unit_test(test_callback_verdicts),
        cmocka_unit_test(test_recording_urls),
        cmocka_unit_test(test_bulk_pages),
        cmocka_unit_test(test_same_number),
        cmocka_unit_test(test_connect_verdicts),
        cmocka_unit_test(test_adopt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
