/* Unit tests for the sliding-window limiter, and for giving back a slot taken for a request that
 * never reached Exotel (issue 14: failed sends must not use up the window). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "rate_limit.h"

static void test_window(void **state)
{
    (void)state;
    struct rate_limit rl;
    assert_int_equal(rate_limit_init(&rl, 3, 1000), 0);
    assert_int_equal(rate_limit_available(&rl, 0), 3);
    rate_limit_record(&rl, 100);
    rate_limit_record(&rl, 200);
    rate_limit_record(&rl, 300);
    assert_int_equal(rate_limit_available(&rl, 300), 0);
    assert_int_equal(rate_limit_next(&rl, 300), 1100); /* the oldest leaves the window */
    assert_int_equal(rate_limit_available(&rl, 1100), 1);
    rate_limit_record(&rl, 1100); /* overwrites the oldest */
    assert_int_equal(rate_limit_next(&rl, 1100), 1200);
    rate_limit_free(&rl);
}

static void test_cancel_gives_the_slot_back(void **state)
{
    (void)state;
    struct rate_limit rl;
    assert_int_equal(rate_limit_init(&rl, 3, 1000), 0);
    rate_limit_record(&rl, 100);
    rate_limit_record(&rl, 200); /* a request that then fails before sending */
    rate_limit_record(&rl, 300);
    assert_int_equal(rate_limit_available(&rl, 300), 0);
    assert_int_equal(rate_limit_cancel(&rl, 200), 0);
    assert_int_equal(rate_limit_available(&rl, 300), 1);
    assert_int_equal(rate_limit_next(&rl, 300), 300); /* at once, not 35 s later */
    /* The ring keeps its order: the oldest (100) still decides once it is full again. */
    rate_limit_record(&rl, 400);
    assert_int_equal(rate_limit_next(&rl, 400), 1100);
    assert_int_equal(rate_limit_available(&rl, 1100), 1);
    assert_int_equal(rate_limit_available(&rl, 1300), 2);
    /* Nothing at that time: nothing changes. */
    assert_int_equal(rate_limit_cancel(&rl, 250), -1);
    assert_int_equal(rate_limit_available(&rl, 400), 0);
    rate_limit_free(&rl);
}

static void test_cancel_across_the_ring_end(void **state)
{
    (void)state;
    struct rate_limit rl;
    assert_int_equal(rate_limit_init(&rl, 3, 10000), 0);
    for (int64_t t = 1; t <= 5; t++) { /* head has wrapped: the ring holds 3, 4, 5 */
        rate_limit_record(&rl, t * 1000);
    }
    assert_int_equal(rate_limit_cancel(&rl, 4000), 0);
    assert_int_equal(rate_limit_available(&rl, 5000), 1);
    assert_int_equal(rate_limit_cancel(&rl, 5000), 0);
    assert_int_equal(rate_limit_cancel(&rl, 3000), 0);
    assert_int_equal(rate_limit_available(&rl, 5000), 3);
    assert_int_equal(rate_limit_cancel(&rl, 3000), -1);
    /* Equal times (a batch recorded in one millisecond): one cancel gives back one slot. */
    rate_limit_record(&rl, 6000);
    rate_limit_record(&rl, 6000);
    assert_int_equal(rate_limit_cancel(&rl, 6000), 0);
    assert_int_equal(rate_limit_available(&rl, 6000), 2);
    rate_limit_free(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_cancel_gives_the_slot_back),
        cmocka_unit_test(test_cancel_across_the_ring_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
