/* Unit tests for api_key: constant-time equality and key loading/generation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "api_key.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_equal(void **state)
{
    (void)state;
    assert_true(api_key_equal("abcdef", 6, "abcdef", 6));
    assert_false(api_key_equal("abcdeg", 6, "abcdef", 6));
    assert_false(api_key_equal("abcde", 5, "abcdef", 6));
    assert_false(api_key_equal("abcdefg", 7, "abcdef", 6));
    assert_false(api_key_equal("", 0, "abcdef", 6));
}

static void test_from_env(void **state)
{
    (void)state;
    char err[CONFIG_ERR_MAX];
    struct api_keys *k;
    setenv("API_KEYS", " first-key-0123456789 ,second-key-0123456789", 1);
    assert_int_equal(api_keys_load("/nonexistent", &k, err), 0);
    assert_true(api_keys_check(k, "first-key-0123456789"));
    assert_true(api_keys_check(k, "second-key-0123456789"));
    assert_false(api_keys_check(k, "first-key-012345678"));
    assert_false(api_keys_check(k, NULL));
    api_keys_free(k);
    setenv("API_KEYS", "short", 1);
    assert_int_equal(api_keys_load("/nonexistent", &k, err), -1);
    assert_non_null(strstr(err, "API_KEYS"));
    unsetenv("API_KEYS");
}

static void test_generated_once(void **state)
{
    (void)state;
    char dir[] = "/tmp/leadbus-key-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[CONFIG_ERR_MAX];
    struct api_keys *k1, *k2;
    assert_int_equal(api_keys_load(dir, &k1, err), 0);
    char path[128], key[128] = "";
    snprintf(path, sizeof path, "%s/api_key", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    FILE *f = fopen(path, "r");
    assert_non_null(fgets(key, sizeof key, f));
    fclose(f);
    assert_true(api_keys_check(k1, key));
    assert_int_equal(api_keys_load(dir, &k2, err), 0); /* read back, not regenerated */
    assert_true(api_keys_check(k2, key));
    api_keys_free(k1);
    api_keys_free(k2);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_from_env),
        cmocka_unit_test(test_generated_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
