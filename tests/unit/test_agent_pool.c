/* Unit tests for the agent pool's pure logic: AGENTS parsing, the choice of the next agent
 * (round-robin, longest-idle, busy and paused agents never offered) and whose leg an outcome
 * belongs to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent_pool.h"

#include <string.h>

static void test_parse(void **state)
{
    (void)state;
    struct agent_def a[8];
    char err[256];
    int n = agent_pool_parse("Asha:+919800000001, Ravi:+919800000002,Meera:09800000003", "AGENTS",
                             a, 8, err, sizeof err);
    assert_int_equal(n, 3);
    assert_string_equal(a[0].name, "Asha");
    assert_string_equal(a[1].number, "+919800000002");
    assert_string_equal(a[2].number, "09800000003");
    /* a file: one a line, comments and blank lines skipped */
    n = agent_pool_parse("# team\nAsha:+919800000001\n\n  Ravi:+919800000002\r\n", "AGENTS_FILE", a,
                         8, err, sizeof err);
    assert_int_equal(n, 2);
    assert_string_equal(a[1].name, "Ravi");
}

static void test_parse_errors(void **state)
{
    (void)state;
    struct agent_def a[2];
    char err[256];
    const char *bad[] = {"Asha",
                         "Asha:",
                         ":+919800000001",
                         "As ha:+919800000001",
                         "Asha:+91980000000x",
                         "Asha:98000000",
                         "Asha:+919800000001,Asha:+919800000002",
                         "Asha:+919800000001,Ravi:+919800000001",
                         "A:+919800000001,B:+919800000002,C:+919800000003",
                         "",
                         " , "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(agent_pool_parse(bad[i], "AGENTS", a, 2, err, sizeof err), -1);
        assert_non_null(strstr(err, "AGENTS:"));
    }
}

static void test_round_robin(void **state)
{
    (void)state;
    struct agent_view v[3] = {{0}};
    int cursor = 0, count[3] = {0};
    /* every agent free between calls: strictly in turn */
    for (int k = 0; k < 30; k++) {
        int i = agent_choose(v, 3, AGENT_ROUND_ROBIN, &cursor);
        assert_int_equal(i, k % 3);
        count[i]++;
    }
    assert_int_equal(count[0], 10);
    assert_int_equal(count[1], 10);
    assert_int_equal(count[2], 10);
    /* busy and paused agents are skipped; the turn goes on after the chosen one */
    cursor = 0;
    v[0].busy = true;
    v[1].paused = true;
    assert_int_equal(agent_choose(v, 3, AGENT_ROUND_ROBIN, &cursor), 2);
    assert_int_equal(cursor, 0);
    v[2].busy = true;
    assert_int_equal(agent_choose(v, 3, AGENT_ROUND_ROBIN, &cursor), -1);
    assert_int_equal(cursor, 0); /* nobody free: the turn stays */
    v[0].busy = false;
    assert_int_equal(agent_choose(v, 3, AGENT_ROUND_ROBIN, &cursor), 0);
    assert_int_equal(cursor, 1);
    /* a cursor out of range (the pool shrank) starts again at the first */
    cursor = 7;
    assert_int_equal(agent_choose(v, 3, AGENT_ROUND_ROBIN, &cursor), 0);
    assert_int_equal(agent_choose(v, 0, AGENT_ROUND_ROBIN, &cursor), -1);
}

static void test_longest_idle(void **state)
{
    (void)state;
    struct agent_view v[3] = {{.idle_since = 500}, {.idle_since = 100}, {.idle_since = 300}};
    int cursor = 2;
    assert_int_equal(agent_choose(v, 3, AGENT_LONGEST_IDLE, &cursor), 1);
    assert_int_equal(cursor, 2); /* untouched */
    v[1].busy = true;
    assert_int_equal(agent_choose(v, 3, AGENT_LONGEST_IDLE, &cursor), 2);
    v[2].paused = true;
    assert_int_equal(agent_choose(v, 3, AGENT_LONGEST_IDLE, &cursor), 0);
    v[0].busy = true;
    assert_int_equal(agent_choose(v, 3, AGENT_LONGEST_IDLE, &cursor), -1);
    /* never called (0) is the longest idle; ties go to pool order */
    struct agent_view w[3] = {{.idle_since = 9}, {.idle_since = 0}, {.idle_since = 0}};
    assert_int_equal(agent_choose(w, 3, AGENT_LONGEST_IDLE, &cursor), 1);
}

static void test_legs(void **state)
{
    (void)state;
    assert_string_equal(agent_leg_of("no-answer", "no-answer"), "no-answer");
    assert_string_equal(agent_leg_of("completed", "no-answer"), "answered");
    assert_string_equal(agent_leg_of("busy", "busy"), "busy");
    assert_string_equal(agent_leg_of("canceled", "no-answer"), "no-answer");
    assert_string_equal(agent_leg_of("", "completed"), "answered");
    assert_string_equal(agent_leg_of(NULL, "no-answer"), "");
    assert_string_equal(agent_leg_of("weird", "failed"), "");
    assert_string_equal(agent_leg_detail("no-answer", "no-answer"), "the agent did not answer");
    assert_string_equal(agent_leg_detail("answered", "no-answer"), "the lead did not answer");
    assert_string_equal(agent_leg_detail("answered", "busy"), "the lead was busy");
    assert_string_equal(agent_leg_detail("busy", "busy"), "the agent was busy");
    assert_null(agent_leg_detail("answered", "completed"));
    assert_null(agent_leg_detail("", "no-answer"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),       cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_round_robin), cmocka_unit_test(test_longest_idle),
        cmocka_unit_test(test_legs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
