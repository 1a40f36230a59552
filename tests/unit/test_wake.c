/* Unit tests: wake, the one wait-for-work-or-deadline helper of the services. */
#include "clock.h"
#include "wake.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

struct later {
    struct wake *w;
    int what; /* 0 kick, 1 stop, 2 mark then commit, 3 commit without a mark */
    int delay_ms;
};

static void *act_later(void *arg)
{
    struct later *l = arg;
    usleep((useconds_t)l->delay_ms * 1000); /* the waiter must already be asleep */
    if (l->what == 0) {
        wake_kick(l->w);
    } else if (l->what == 1) {
        wake_stop(l->w);
    } else {
        if (l->what == 2) {
            wake_mark(l->w);
        }
        wake_on_commit(l->w);
    }
    return NULL;
}

/* How long wake_wait(next = now + wait_ms) took while another thread did `what` after 50 ms. */
static int64_t timed_wait(int what, int64_t wait_ms, bool *running)
{
    struct wake w;
    wake_init(&w, 0);
    uint64_t seen = 0;
    *running = wake_wait(&w, &seen, 0); /* the first wait returns at once: work first */
    assert_true(*running);
    struct later l = {&w, what, 50};
    pthread_t t;
    pthread_create(&t, NULL, act_later, &l);
    int64_t start = clock_mono_ms();
    *running = wake_wait(&w, &seen, clock_now_ms() + wait_ms);
    int64_t took = clock_mono_ms() - start;
    pthread_join(t, NULL);
    wake_fini(&w);
    return took;
}

static void test_deadline(void **state)
{
    (void)state;
    struct wake w;
    wake_init(&w, 0);
    uint64_t seen = 0;
    assert_true(wake_wait(&w, &seen, 0));
    int64_t start = clock_mono_ms();
    assert_true(wake_wait(&w, &seen, clock_now_ms() + 120));
    int64_t took = clock_mono_ms() - start;
    assert_true(took >= 100 && took < 2000);
    wake_fini(&w);
}

static void test_kick_and_commit(void **state)
{
    (void)state;
    bool running;
    assert_true(timed_wait(0, 10000, &running) < 5000); /* a kick ends a 10 s sleep */
    assert_true(running);
    assert_true(timed_wait(2, 10000, &running) < 5000); /* a marked commit too */
    assert_true(running);
    int64_t took = timed_wait(3, 400, &running); /* a commit that brought nothing does not */
    assert_true(took >= 350);
    assert_true(running);
}

static void test_kick_between_waits_is_kept(void **state)
{
    (void)state;
    struct wake w;
    wake_init(&w, 0);
    uint64_t seen = 0;
    assert_true(wake_wait(&w, &seen, 0));
    wake_kick(&w); /* while the worker was busy */
    int64_t start = clock_mono_ms();
    assert_true(wake_wait(&w, &seen, clock_now_ms() + 10000));
    assert_true(clock_mono_ms() - start < 1000);
    wake_fini(&w);
}

static void test_stop(void **state)
{
    (void)state;
    bool running;
    assert_true(timed_wait(1, 10000, &running) < 5000);
    assert_false(running);
    struct wake w;
    wake_init(&w, 0);
    wake_stop(&w);
    uint64_t seen = 0;
    assert_false(wake_wait(&w, &seen, clock_now_ms() + 10000));
    assert_false(wake_sleep_until(&w, clock_now_ms() + 10000));
    wake_fini(&w);
}

static void test_sleep_until(void **state)
{
    (void)state;
    struct wake w;
    wake_init(&w, 0);
    int64_t start = clock_mono_ms();
    assert_true(wake_sleep_until(&w, clock_now_ms() + 100));
    assert_true(clock_mono_ms() - start >= 80);
    assert_true(wake_sleep_until(&w, clock_now_ms() - 5)); /* past: at once */
    wake_fini(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_kick_and_commit),
        cmocka_unit_test(test_kick_between_waits_is_kept),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_sleep_until),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
