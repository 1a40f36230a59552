/*
 * Unit tests for stream identity: bus_stream_decide(), given what a subscriber
 * knows of a publisher name (followed epoch, rival) and a stream's cursor, and
 * an incoming (epoch, seq) from an event or a stream head (heartbeat, stream
 * list): apply, drop as duplicate, replay a gap, hold, reset or refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "bus_sub.h"

#include <string.h>

#define E1 0x1111111111111111ULL
#define E2 0x2222222222222222ULL
#define T0 1000000 /* a monotonic clock reading, ms */

static void test_same_epoch_sequence(void **state)
{
    (void)state;
    struct bus_ident id = {.epoch = E1};
    assert_int_equal(bus_stream_decide(&id, 5, E1, 6, false, T0), BUS_APPLY);
    assert_int_equal(bus_stream_decide(&id, 5, E1, 5, false, T0), BUS_DUPLICATE);
    assert_int_equal(bus_stream_decide(&id, 5, E1, 1, false, T0), BUS_DUPLICATE);
    assert_int_equal(bus_stream_decide(&id, 5, E1, 9, false, T0), BUS_GAP);
    /* stream heads: level, ahead, and behind the cursor (a store restored from an old copy) */
    assert_int_equal(bus_stream_decide(&id, 5, E1, 5, true, T0), BUS_DUPLICATE);
    assert_int_equal(bus_stream_decide(&id, 5, E1, 7, true, T0), BUS_GAP);
    assert_int_equal(bus_stream_decide(&id, 5, E1, 4, true, T0), BUS_RESET);
    assert_true(id.epoch == E1);
    assert_int_equal(id.seen_ms, T0);
}

static void test_first_epoch_is_adopted(void **state)
{
    (void)state;
    /* A new cursor, or one stored before epochs existed: the first epoch seen is followed. */
    struct bus_ident id = {0};
    assert_int_equal(bus_stream_decide(&id, 0, E1, 1, false, T0), BUS_APPLY);
    assert_true(id.epoch == E1);
    /* A pre-epoch cursor at 40 whose publisher was reset at the upgrade: its head went back. */
    struct bus_ident old = {0};
    assert_int_equal(bus_stream_decide(&old, 40, E2, 3, true, T0), BUS_RESET);
    assert_true(old.epoch == E2);
}

static void test_frame_without_epoch(void **state)
{
    (void)state;
    /* An older publisher sends no epoch: its frames are taken as the followed stream's. */
    struct bus_ident id = {.epoch = E1, .seen_ms = T0};
    assert_int_equal(bus_stream_decide(&id, 5, 0, 6, false, T0 + 50000), BUS_APPLY);
    assert_int_equal(bus_stream_decide(&id, 5, 0, 5, false, T0 + 50000), BUS_DUPLICATE);
    assert_int_equal(bus_stream_decide(&id, 5, 0, 2, true, T0 + 50000), BUS_RESET);
    assert_true(id.epoch == E1);
    assert_int_equal(id.seen_ms, T0); /* no epoch: no proof of which publisher is alive */
    struct bus_ident none = {0};
    assert_int_equal(bus_stream_decide(&none, 0, 0, 1, false, T0), BUS_APPLY);
    assert_int_equal(none.epoch, 0);
}

static void test_reset_after_settling(void **state)
{
    (void)state;
    /* Case 1: the publisher's store was replaced; the old epoch was last seen at T0. */
    struct bus_ident id = {.epoch = E1, .seen_ms = T0};
    int64_t t = T0 + 2000; /* restarted two seconds later */
    /* Its events, even those with seqs above the cursor, are neither applied nor dropped. */
    assert_int_equal(bus_stream_decide(&id, 100, E2, 1, false, t), BUS_HOLD);
    assert_int_equal(bus_stream_decide(&id, 100, E2, 101, false, t + 10), BUS_HOLD);
    assert_int_equal(bus_stream_decide(&id, 0, E2, 0, true, t + 1000), BUS_HOLD);
    assert_int_equal(bus_stream_decide(&id, 0, E2, 0, true, t + 2000), BUS_HOLD);
    assert_int_equal(bus_stream_decide(&id, 0, E2, 0, true, t + BUS_RESET_SETTLE_MS - 1), BUS_HOLD);
    assert_false(bus_ident_conflict(&id, t + BUS_RESET_SETTLE_MS - 1));
    assert_int_equal(bus_stream_decide(&id, 0, E2, 0, true, t + BUS_RESET_SETTLE_MS), BUS_RESET);
    assert_true(id.epoch == E2);
    assert_int_equal(id.rival, 0);
    /* Then the new stream from seq 1, with the cursor the caller zeroed. */
    assert_int_equal(bus_stream_decide(&id, 0, E2, 1, false, t + 4000), BUS_APPLY);
    assert_int_equal(bus_stream_decide(&id, 1, E2, 2, false, t + 4000), BUS_APPLY);
    assert_int_equal(bus_stream_decide(&id, 2, E2, 2, false, t + 4000), BUS_DUPLICATE);
}

static void test_reset_found_at_start(void **state)
{
    (void)state;
    /* The subscriber restarts after the reset: the stored epoch was never seen in this run. */
    struct bus_ident id = {.epoch = E1};
    assert_int_equal(bus_stream_decide(&id, 0, E2, 0, true, T0), BUS_HOLD);
    assert_int_equal(bus_stream_decide(&id, 0, E2, 0, true, T0 + 1000), BUS_HOLD);
    assert_int_equal(bus_stream_decide(&id, 0, E2, 0, true, T0 + BUS_RESET_SETTLE_MS), BUS_RESET);
    assert_true(id.epoch == E2);
}

static void test_stalled_subscriber_is_no_reset(void **state)
{
    (void)state;
    /* Two live publishers, and a subscriber that was stalled for 5 s (a replay request timing
     * out): time alone has passed, but its queue still holds both heartbeats, interleaved. */
    struct bus_ident id = {.epoch = E1, .seen_ms = T0};
    assert_int_equal(bus_stream_decide(&id, 4, E2, 0, true, T0 + 10), BUS_HOLD);
    int64_t t = T0 + 5000;
    assert_int_equal(bus_stream_decide(&id, 4, E2, 0, true, t), BUS_HOLD); /* 2 heads only */
    assert_int_equal(bus_stream_decide(&id, 4, E1, 4, true, t + 1), BUS_DUPLICATE);
    assert_int_equal(bus_stream_decide(&id, 4, E2, 0, true, t + 2), BUS_CONFLICT);
    assert_true(id.epoch == E1);
}

static void test_two_live_publishers(void **state)
{
    (void)state;
    /* Case 2: two processes named alike, frames and heartbeats alternating. */
    struct bus_ident id = {0};
    uint64_t cursor = 0;
    int64_t t = T0;
    assert_int_equal(bus_stream_decide(&id, cursor, E1, 1, false, t), BUS_APPLY);
    cursor = 1;
    assert_int_equal(bus_stream_decide(&id, cursor, E2, 1, false, t + 100), BUS_HOLD);
    assert_false(bus_ident_conflict(&id, t + 100));
    assert_int_equal(bus_stream_decide(&id, cursor, E1, 2, false, t + 200), BUS_APPLY);
    cursor = 2;
    /* The first epoch alive after the second appeared: a conflict, not a reset. */
    assert_int_equal(bus_stream_decide(&id, cursor, E2, 2, false, t + 300), BUS_CONFLICT);
    assert_true(bus_ident_conflict(&id, t + 300));
    /* For a minute of alternation: the followed stream goes on in order, the other is refused,
     * the cursor never flips to the other epoch. */
    for (int i = 0; i < 60; i++) {
        t += 1000;
        assert_int_equal(bus_stream_decide(&id, cursor, E1, cursor + 1, false, t), BUS_APPLY);
        cursor++;
        assert_int_equal(bus_stream_decide(&id, cursor, E1, cursor, true, t), BUS_DUPLICATE);
        assert_int_equal(bus_stream_decide(&id, cursor, E2, 3 + (uint64_t)i, false, t + 500),
                         BUS_CONFLICT);
        assert_int_equal(bus_stream_decide(&id, 0, E2, 0, true, t + 500), BUS_CONFLICT);
        assert_true(id.epoch == E1);
        assert_true(bus_ident_conflict(&id, t + 500));
    }
    /* The other one is renamed (goes silent): the conflict ends after the window. */
    t += 1000;
    assert_int_equal(bus_stream_decide(&id, cursor, E1, cursor + 1, false, t), BUS_APPLY);
    assert_false(bus_ident_expire(&id, t));
    assert_true(bus_ident_conflict(&id, t));
    t += BUS_CONFLICT_WINDOW_MS;
    id.seen_ms = t; /* the followed one still beats */
    assert_false(bus_ident_conflict(&id, t));
    assert_true(bus_ident_expire(&id, t));
    assert_int_equal(id.rival, 0);
    assert_true(id.epoch == E1);
}

static void test_conflict_then_followed_leaves(void **state)
{
    (void)state;
    /* In a conflict, the followed publisher is the one renamed: the other takes the name over
     * once the followed epoch has been silent for the window, as a reset (its events were
     * refused so far, so it is read from seq 1). */
    struct bus_ident id = {.epoch = E1, .seen_ms = T0};
    assert_int_equal(bus_stream_decide(&id, 9, E2, 0, true, T0 + 100), BUS_HOLD);
    assert_int_equal(bus_stream_decide(&id, 9, E1, 9, true, T0 + 200), BUS_DUPLICATE);
    assert_int_equal(bus_stream_decide(&id, 9, E2, 0, true, T0 + 300), BUS_CONFLICT);
    int64_t t = T0 + 200 + BUS_CONFLICT_WINDOW_MS - 1;
    assert_int_equal(bus_stream_decide(&id, 9, E2, 0, true, t), BUS_CONFLICT);
    assert_false(bus_ident_conflict(&id, t + 1));
    assert_int_equal(bus_stream_decide(&id, 9, E2, 0, true, t + 1), BUS_RESET);
    assert_true(id.epoch == E2);
}

static void test_verdict_names(void **state)
{
    (void)state;
    assert_string_equal(bus_verdict_name(BUS_APPLY), "apply");
    assert_string_equal(bus_verdict_name(BUS_DUPLICATE), "duplicate");
    assert_string_equal(bus_verdict_name(BUS_GAP), "gap");
    assert_string_equal(bus_verdict_name(BUS_HOLD), "hold");
    assert_string_equal(bus_verdict_name(BUS_RESET), "reset");
    assert_string_equal(bus_verdict_name(BUS_CONFLICT), "conflict");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_epoch_sequence),
        cmocka_unit_test(test_first_epoch_is_adopted),
        cmocka_unit_test(test_frame_without_epoch),
        cmocka_unit_test(test_reset_after_settling),
        cmocka_unit_test(test_reset_found_at_start),
        cmocka_unit_test(test_stalled_subscriber_is_no_reset),
        cmocka_unit_test(test_two_live_publishers),
        cmocka_unit_test(test_conflict_then_followed_leaves),
        cmocka_unit_test(test_verdict_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
