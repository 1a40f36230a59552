/* Unit tests for config: .env parsing, precedence, typed getters and their error lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct seen {
    char names[16][64];
    char values[16][64];
    int n;
};

static void collect(const char *name, const char *value, void *arg)
{
    struct seen *s = arg;
    snprintf(s->names[s->n], 64, "%s", name);
    snprintf(s->values[s->n], 64, "%s", value);
    s->n++;
}

static void test_parse_forms(void **state)
{
    (void)state;
    const char *text = "# comment\n"
                       "\n"
                       "A=1\n"
                       "export B = two words  \n"
                       "C=\"quoted # not a comment\"\n"
                       "D='single'  # trailing comment\n"
                       "E=value # comment\r\n"
                       "F=\n";
    struct seen s = {.n = 0};
    assert_int_equal(config_parse_env(text, strlen(text), collect, &s), 0);
    assert_int_equal(s.n, 6);
    assert_string_equal(s.names[0], "A");
    assert_string_equal(s.values[0], "1");
    assert_string_equal(s.names[1], "B");
    assert_string_equal(s.values[1], "two words");
    assert_string_equal(s.values[2], "quoted # not a comment");
    assert_string_equal(s.values[3], "single");
    assert_string_equal(s.values[4], "value");
    assert_string_equal(s.names[5], "F");
    assert_string_equal(s.values[5], "");
}

static void test_parse_rejects(void **state)
{
    (void)state;
    struct seen s = {.n = 0};
    assert_int_equal(config_parse_env("A=1\nno equals\n", 15, collect, &s), 2);
    assert_int_equal(config_parse_env("1A=x", 4, collect, &s), 1);
    assert_int_equal(config_parse_env("A-B=x", 5, collect, &s), 1);
    assert_int_equal(config_parse_env("A=\"open", 7, collect, &s), 1);
    assert_int_equal(config_parse_env("A='x' junk", 10, collect, &s), 1);
}

static void test_env_wins_and_getters(void **state)
{
    (void)state;
    char dir[] = "/tmp/leadbus-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/.env", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("LB_T_PORT=4000\nLB_T_BOTH=file\nLB_T_BOOL=yes\nLB_T_BAD=12x\nLB_T_MODE=json\n", f);
    fclose(f);
    setenv("LB_T_BOTH", "env", 1);

    char err[CONFIG_ERR_MAX] = "";
    assert_int_equal(config_load(path, err), 0);
    assert_string_equal(config_str("LB_T_BOTH", "d"), "env");
    assert_string_equal(config_str("LB_T_UNSET", "d"), "d");

    int64_t v;
    assert_int_equal(config_int("LB_T_PORT", 3000, 1, 65535, &v, err), 0);
    assert_int_equal(v, 4000);
    assert_int_equal(config_int("LB_T_UNSET", 3000, 1, 65535, &v, err), 0);
    assert_int_equal(v, 3000);
    assert_int_equal(config_int("LB_T_BAD", 1, 0, 100, &v, err), -1);
    assert_non_null(strstr(err, "LB_T_BAD"));
    assert_int_equal(config_int("LB_T_PORT", 1, 0, 100, &v, err), -1);
    assert_non_null(strstr(err, "from 0 to 100"));

    bool b = false;
    assert_int_equal(config_bool("LB_T_BOOL", false, &b, err), 0);
    assert_true(b);
    assert_int_equal(config_bool("LB_T_MODE", false, &b, err), -1);
    assert_non_null(strstr(err, "LB_T_MODE: expected true or false"));

    static const char *const modes[] = {"text", "json", NULL};
    int m;
    assert_int_equal(config_enum("LB_T_MODE", "text", modes, &m, err), 0);
    assert_int_equal(m, 1);
    assert_int_equal(config_enum("LB_T_PORT", "text", modes, &m, err), -1);
    assert_string_equal(err, "LB_T_PORT: expected one of text, json");

    config_free();
    unlink(path);
    rmdir(dir);
}

static void test_bad_file_names_line(void **state)
{
    (void)state;
    char dir[] = "/tmp/leadbus-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/.env", dir);
    FILE *f = fopen(path, "w");
    fputs("OK=1\nthis is wrong\n", f);
    fclose(f);
    char err[CONFIG_ERR_MAX] = "";
    assert_int_equal(config_load(path, err), -1);
    assert_non_null(strstr(err, "line 2"));
    config_free();
    unlink(path);
    rmdir(dir);
    /* a missing file is fine */
    assert_int_equal(config_load("/nonexistent/.env", err), 0);
}

static void test_distance_and_suggest(void **state)
{
    (void)state;
    assert_int_equal(config_distance("EXOTEL_APIKEY", "EXOTEL_API_KEY"), 1);
    assert_int_equal(config_distance("", "ABC"), 3);
    assert_int_equal(config_distance("CALL_HOURS", "CALL_HOURS"), 0);
    assert_int_equal(config_distance("ZOHO_DC", "ZOHO_CD"), 2);
    assert_string_equal(config_suggest("EXOTEL_APIKEY"), "EXOTEL_API_KEY");
    assert_string_equal(config_suggest("ZOHO_CLIENTSECRET"), "ZOHO_CLIENT_SECRET");
    assert_string_equal(config_suggest("CALL_HOUR"), "CALL_HOURS");
    assert_string_equal(config_suggest("EXOTEL_API_TOKENN"), "EXOTEL_API_TOKEN");
    assert_string_equal(config_suggest("SANDBOX_RING"), "SANDBOX_RING_MS");
    /* Nothing close: no guess. */
    assert_null(config_suggest("EXOTEL_SOMETHING_ELSE_ENTIRELY"));
    assert_null(config_suggest("BUS_X"));
}

static void test_known_and_prefixes(void **state)
{
    (void)state;
    assert_true(config_known("EXOTEL_API_TOKEN"));
    assert_true(config_known("SANDBOX"));
    assert_true(config_known("ALLOW_INSECURE_CALLBACKS"));
    assert_true(config_known("BUS_CALL_SCHEDULER_REPLAY"));
    assert_false(config_known("EXOTEL_APIKEY"));
    assert_true(config_has_prefix("EXOTEL_APIKEY"));
    assert_true(config_has_prefix("LEADBUS_TARGETS"));
    assert_true(config_has_prefix("DB_SYNC"));
    assert_false(config_has_prefix("PATH"));
    assert_false(config_has_prefix("HOME"));
}

struct unknowns {
    char names[8][64];
    char hints[8][64];
    int n;
};

static void collect_unknown(const char *name, const char *suggestion, void *arg)
{
    struct unknowns *u = arg;
    if (strncmp(name, "EXOTEL_", 7) != 0 && strncmp(name, "CALL_", 5) != 0) {
        return; /* the test runner's own environment */
    }
    snprintf(u->names[u->n], 64, "%s", name);
    snprintf(u->hints[u->n], 64, "%s", suggestion ? suggestion : "-");
    u->n++;
}

static void test_each_unknown(void **state)
{
    (void)state;
    char dir[] = "/tmp/leadbus-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/.env", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("CALL_HOUR=always\nCALL_HOURS=always\n", f);
    fclose(f);
    char err[CONFIG_ERR_MAX] = "";
    assert_int_equal(config_load(path, err), 0);
    setenv("EXOTEL_APIKEY", "k", 1);
    setenv("EXOTEL_ACCOUNT_SID", "s", 1);
    struct unknowns u = {.n = 0};
    config_each_unknown(collect_unknown, &u);
    assert_int_equal(u.n, 2);
    assert_string_equal(u.names[0], "EXOTEL_APIKEY");
    assert_string_equal(u.hints[0], "EXOTEL_API_KEY");
    assert_string_equal(u.names[1], "CALL_HOUR");
    assert_string_equal(u.hints[1], "CALL_HOURS");
    unsetenv("EXOTEL_APIKEY");
    unsetenv("EXOTEL_ACCOUNT_SID");
    config_free();
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),          cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_env_wins_and_getters), cmocka_unit_test(test_bad_file_names_line),
        cmocka_unit_test(test_distance_and_suggest), cmocka_unit_test(test_known_and_prefixes),
        cmocka_unit_test(test_each_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
