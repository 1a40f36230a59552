/* libFuzzer target: the .env parser. */
#include "config.h"

#include <string.h>

static void check(const char *name, const char *value, void *arg)
{
    (void)arg;
    /* Names are never empty; both are NUL-terminated strings we can measure. */
    if (strlen(name) == 0) {
        __builtin_trap();
    }
    (void)strlen(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    config_parse_env((const char *)data, size, check, NULL);
    return 0;
}
