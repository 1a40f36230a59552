/* Unit tests for the call-scheduler's policies: calling hours, the sliding-window rate limit,
 * and retries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "call_window.h"
#include "rate_limit.h"
#include "retry_policy.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Unix ms of a UTC wall time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}

/* IST is UTC+05:30, without DST. */
static int64_t ist(int y, int mo, int d, int h, int mi)
{
    return utc(y, mo, d, h, mi) - (5 * 60 + 30) * 60000LL;
}

static void test_window_default_hours(void **state)
{
    (void)state;
    struct call_window w;
    char err[CONFIG_ERR_MAX];
    assert_int_equal(call_window_parse("09:00-21:00", "all", "Asia/Kolkata", &w, err), 0);
    /* 2026-11-25 is a Wednesday. Inside: unchanged. */
    assert_int_equal(call_window_next(&w, ist(2026, 11, 25, 10, 0)), ist(2026, 11, 25, 10, 0));
    /* Before opening: that morning; after closing: the next morning; closing time itself is out. */
    assert_int_equal(call_window_next(&w, ist(2026, 11, 25, 7, 15)), ist(2026, 11, 25, 9, 0));
    assert_int_equal(call_window_next(&w, ist(2026, 11, 25, 22, 0)), ist(2026, 11, 26, 9, 0));
    assert_int_equal(call_window_next(&w, ist(2026, 11, 25, 21, 0)), ist(2026, 11, 26, 9, 0));
    assert_int_equal(call_window_next(&w, ist(2026, 11, 25, 20, 59)), ist(2026, 11, 25, 20, 59));
    /* Month end rolls over. */
    assert_int_equal(call_window_next(&w, ist(2026, 11, 30, 23, 0)), ist(2026, 12, 1, 9, 0));
    call_window_free(&w);
}

static void test_window_days(void **state)
{
    (void)state;
    struct call_window w;
    char err[CONFIG_ERR_MAX];
    assert_int_equal(call_window_parse("09:00-21:00", "mon-fri", "Asia/Kolkata", &w, err), 0);
    /* Friday evening -> Monday morning; Saturday noon -> Monday morning. */
    assert_int_equal(call_window_next(&w, ist(2026, 11, 27, 22, 0)), ist(2026, 11, 30, 9, 0));
    assert_int_equal(call_window_next(&w, ist(2026, 11, 28, 12, 0)), ist(2026, 11, 30, 9, 0));
    call_window_free(&w);
    assert_int_equal(call_window_parse("10:00-12:00", "sat,sun", "Asia/Kolkata", &w, err), 0);
    assert_int_equal(call_window_next(&w, ist(2026, 11, 25, 11, 0)), ist(2026, 11, 28, 10, 0));
    call_window_free(&w);
    /* A range that wraps over the weekend. */
    assert_int_equal(call_window_parse("10:00-12:00", "fri-mon", "Asia/Kolkata", &w, err), 0);
    assert_int_equal(call_window_next(&w, ist(2026, 11, 24, 11, 0)), ist(2026, 11, 27, 10, 0));
    call_window_free(&w);
}

static void test_window_overnight_and_always(void **state)
{
    (void)state;
    struct call_window w;
    char err[CONFIG_ERR_MAX];
    assert_int_equal(call_window_parse("21:00-06:00", "all", "Asia/Kolkata", &w, err), 0);
    assert_int_equal(call_window_next(&w, ist(2026, 11, 25, 23, 0)), ist(2026, 11, 25, 23, 0));
    assert_int_equal(call_window_next(&w, ist(2026, 11, 25, 3, 0)), ist(2026, 11, 25, 3, 0));
    assert_int_equal(call_window_next(&w, ist(2026, 11, 25, 12, 0)), ist(2026, 11, 25, 21, 0));
    call_window_free(&w);
    assert_int_equal(call_window_parse("always", "", "Asia/Kolkata", &w, err), 0);
    assert_int_equal(call_window_next(&w, ist(2026, 11, 25, 3, 0)), ist(2026, 11, 25, 3, 0));
    call_window_free(&w);
}

static void test_window_dst(void **state)
{
    (void)state;
    struct call_window w;
    char err[CONFIG_ERR_MAX];
    /* London moves to BST (UTC+1) at 01:00 UTC on Sunday 2026-03-29. */
    assert_int_equal(call_window_parse("09:00-17:00", "all", "Europe/London", &w, err), 0);
    assert_int_equal(call_window_next(&w, utc(2026, 3, 28, 18, 0)), utc(2026, 3, 29, 8, 0));
    assert_int_equal(call_window_next(&w, utc(2026, 3, 27, 18, 0)), utc(2026, 3, 28, 9, 0));
    call_window_free(&w);
}

static void test_window_errors(void **state)
{
    (void)state;
    struct call_window w;
    char err[CONFIG_ERR_MAX];
    const char *bad_hours[] = {"9-5", "25:00-26:00", "09:00-09:00", "09:00-21:60", "09:00_21:00"};
    for (size_t i = 0; i < sizeof bad_hours / sizeof bad_hours[0]; i++) {
        assert_int_equal(call_window_parse(bad_hours[i], "all", "Asia/Kolkata", &w, err), -1);
        assert_non_null(strstr(err, "CALL_HOURS"));
    }
    assert_int_equal(call_window_parse("09:00-21:00", "funday", "Asia/Kolkata", &w, err), -1);
    assert_non_null(strstr(err, "CALL_DAYS"));
    assert_int_equal(call_window_parse("09:00-21:00", "all", "Mars/Olympus_Mons", &w, err), -1);
    assert_non_null(strstr(err, "CALL_TIMEZONE"));
}

static void test_rate_limit_basics(void **state)
{
    (void)state;
    struct rate_limit rl;
    assert_int_equal(rate_limit_init(&rl, 3, 1000), 0);
    assert_int_equal(rate_limit_available(&rl, 0), 3);
    rate_limit_record(&rl, 0);
    rate_limit_record(&rl, 10);
    rate_limit_record(&rl, 20);
    assert_int_equal(rate_limit_available(&rl, 20), 0);
    assert_int_equal(rate_limit_next(&rl, 20), 1000);
    assert_int_equal(rate_limit_available(&rl, 999), 0);
    assert_int_equal(rate_limit_available(&rl, 1000), 1);
    assert_int_equal(rate_limit_available(&rl, 1020), 3);
    rate_limit_record(&rl, 1000);
    assert_int_equal(rate_limit_next(&rl, 1000), 1010);
    rate_limit_free(&rl);
}

/* Dispatch greedily for a while with random arrivals: no window ever holds more than the limit,
 * and the limiter never holds back when the window allows more. */
static void test_rate_limit_never_exceeded(void **state)
{
    (void)state;
    enum { LIMIT = 7, WINDOW = 500, STEPS = 20000 };
    struct rate_limit rl;
    assert_int_equal(rate_limit_init(&rl, LIMIT, WINDOW), 0);
    int64_t *times = calloc(STEPS * 2, sizeof *times);
    int n = 0;
    srand(42);
    int64_t now = 0;
    for (int step = 0; step < STEPS; step++) {
        now += rand() % 40;
        int want = rand() % 4;
        while (want-- > 0 && rate_limit_available(&rl, now) > 0) {
            rate_limit_record(&rl, now);
            times[n++] = now;
        }
    }
    assert_true(n > 1000);
    for (int i = 0; i + LIMIT < n; i++) {
        assert_true(times[i + LIMIT] - times[i] >= WINDOW);
    }
    free(times);
    rate_limit_free(&rl);
}

static void test_retry_defaults(void **state)
{
    (void)state;
    struct retry_policy p;
    char err[CONFIG_ERR_MAX];
    assert_int_equal(
        retry_policy_parse("failed-api,busy,no-answer", "60000,300000,900000", 3, &p, err), 0);
    assert_int_equal(retry_policy_next(&p, "busy", 1), 60000);
    assert_int_equal(retry_policy_next(&p, "no-answer", 2), 300000);
    assert_int_equal(retry_policy_next(&p, "failed-api", 1), 60000);
    assert_int_equal(retry_policy_next(&p, "busy", 3), -1); /* three attempts in all */
    assert_int_equal(retry_policy_next(&p, "completed", 1), -1);
    assert_int_equal(retry_policy_next(&p, "failed", 1), -1);
    assert_int_equal(retry_policy_next(&p, "dnd", 1), -1);
    assert_int_equal(retry_policy_next(&p, "rejected", 1), -1);
}

static void test_retry_custom(void **state)
{
    (void)state;
    struct retry_policy p;
    char err[CONFIG_ERR_MAX];
    /* Fewer delays than attempts: the last repeats. */
    assert_int_equal(retry_policy_parse("busy, failed", "1000", 5, &p, err), 0);
    assert_int_equal(retry_policy_next(&p, "failed", 1), 1000);
    assert_int_equal(retry_policy_next(&p, "busy", 4), 1000);
    assert_int_equal(retry_policy_next(&p, "busy", 5), -1);
    assert_int_equal(retry_policy_next(&p, "no-answer", 1), -1);
    /* dnd and rejected can never be made to retry. */
    assert_int_equal(retry_policy_parse("busy,dnd", "1000", 3, &p, err), -1);
    assert_non_null(strstr(err, "EXOTEL_RETRY_ON"));
    assert_int_equal(retry_policy_parse("rejected", "1000", 3, &p, err), -1);
    assert_int_equal(retry_policy_parse("busy", "60000,soon", 3, &p, err), -1);
    assert_non_null(strstr(err, "EXOTEL_RETRY_DELAYS_MS"));
    assert_int_equal(retry_policy_parse("busy", "", 3, &p, err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_default_hours),
        cmocka_unit_test(test_window_days),
        cmocka_unit_test(test_window_overnight_and_always),
        cmocka_unit_test(test_window_dst),
        cmocka_unit_test(test_window_errors),
        cmocka_unit_test(test_rate_limit_basics),
        cmocka_unit_test(test_rate_limit_never_exceeded),
        cmocka_unit_test(test_retry_defaults),
        cmocka_unit_test(test_retry_custom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
