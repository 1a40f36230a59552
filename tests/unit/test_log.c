/* Unit tests for log: phone masking, the text and JSON line formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_mask(void **state)
{
    (void)state;
    char out[32];
    log_mask_phone("09876543221", out, sizeof out);
    assert_string_equal(out, "098***21");
    log_mask_phone("+919876543210", out, sizeof out);
    assert_string_equal(out, "+91***10");
    log_mask_phone("12345", out, sizeof out);
    assert_string_equal(out, "***");
    log_mask_phone(NULL, out, sizeof out);
    assert_string_equal(out, "***");
    char tiny[4];
    log_mask_phone("09876543221", tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), 3);
}

/* Capture what one log_write puts on stderr. */
static void capture(enum log_format fmt, char *buf, size_t size, const char *msg,
                    const struct log_field *fields)
{
    char path[] = "/tmp/leadbus-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    log_init(LOG_DEBUG, fmt);
    log_set_target("call-scheduler");
    log_write(LOG_INFO, msg, fields);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, size - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    close(fd);
    unlink(path);
}

static void test_text_line(void **state)
{
    (void)state;
    char buf[1024];
    capture(LOG_TEXT, buf, sizeof buf, "Scheduling call",
            LOG_FIELDS(LOG_S("callId", "call_123_1234567890"),
                       LOG_PHONE("phoneNumber", "09876543221"), LOG_I("delayMs", 60000)));
    assert_non_null(strstr(buf,
                           "[INFO] call-scheduler: Scheduling call { callId: "
                           "'call_123_1234567890', phoneNumber: '098***21', delayMs: 60000 }\n"));
    assert_null(strstr(buf, "9876543221"));
}

static void test_json_line(void **state)
{
    (void)state;
    char buf[1024];
    capture(LOG_JSON, buf, sizeof buf, "Executing call",
            LOG_FIELDS(LOG_I("attempt", 1), LOG_PHONE("phoneNumber", "09876543221"),
                       LOG_S("note", "a \"quoted\" word")));
    assert_non_null(strstr(buf, "\"level\":\"INFO\""));
    assert_non_null(strstr(buf, "\"target\":\"call-scheduler\""));
    assert_non_null(strstr(buf, "\"msg\":\"Executing call\""));
    assert_non_null(strstr(buf, "\"attempt\":1"));
    assert_non_null(strstr(buf, "\"phoneNumber\":\"098***21\""));
    assert_non_null(strstr(buf, "\"note\":\"a \\\"quoted\\\" word\""));
    assert_int_equal(buf[strlen(buf) - 1], '\n');
    assert_null(strchr(buf, '\n') + 1 == buf + strlen(buf) ? NULL : "more than one line");
}

/* A CallSid with a newline must not forge a log line, nor a quote a field. */
static void test_text_escapes(void **state)
{
    (void)state;
    char buf[1024];
    capture(LOG_TEXT, buf, sizeof buf, "Call status\nreceived",
            LOG_FIELDS(LOG_S("callSid", "abc\n2026-01-01T00:00:00.000Z [INFO] dialer: forged"),
                       LOG_S("status", "x', status: 'completed\r\x1b[2J\\"), LOG_I("attempt", 1)));
    assert_non_null(strstr(buf, "Call status\\nreceived { callSid: 'abc\\n2026-01-01T00:00:00.000Z "
                                "[INFO] dialer: forged', status: 'x\\', status: \\'completed\\r"
                                "\\x1b[2J\\\\', attempt: 1 }\n"));
    assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1); /* one line */
    assert_null(strchr(buf, '\r'));
    assert_null(strchr(buf, 0x1b));
}

static void test_escape_cuts(void **state)
{
    (void)state;
    char out[6];
    /* never half an escape: "ab\\n" needs 4, "\\x01" would need 4 more */
    assert_int_equal(log_escape("ab\n\x01", true, out, sizeof out), 4);
    assert_string_equal(out, "ab\\n");
    assert_int_equal(log_escape("it's", false, out, sizeof out), 4);
    assert_string_equal(out, "it's");
    assert_int_equal(log_escape(NULL, true, out, sizeof out), 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask),        cmocka_unit_test(test_text_line),
        cmocka_unit_test(test_json_line),   cmocka_unit_test(test_text_escapes),
        cmocka_unit_test(test_escape_cuts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
