/*
 * config: settings from the environment, plus a `.env` file in the working
 * directory (a variable set in the environment wins over the file).
 *
 * config_load() reads the file once, at start-up, into process-owned storage;
 * the getters then return values that live until config_free(). A getter that
 * finds a bad value fills `err` with one line naming the variable and what is
 * expected, and returns -1: main prints it and stops.
 */
#ifndef LEADBUS_CONFIG_H
#define LEADBUS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_ERR_MAX 256

/* Load `path` (may be missing: not an error). Returns -1 with err filled on a malformed line. */
int config_load(const char *path, char err[CONFIG_ERR_MAX]);
void config_free(void);

/*
 * Parse a .env text into name/value pairs, calling `fn` for each. Accepts
 * `NAME=value`, `export NAME=value`, comments, blank lines, and single or double
 * quoted values. Returns 0, or the 1-based number of the first bad line.
 * Exposed for the fuzzer and the unit tests.
 */
int config_parse_env(const char *text, size_t len,
                     void (*fn)(const char *name, const char *value, void *arg), void *arg);

/* The raw value: environment first, then .env; NULL when unset or empty. */
const char *config_raw(const char *name);

const char *config_str(const char *name, const char *def);
int config_int(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
               char err[CONFIG_ERR_MAX]);
int config_bool(const char *name, bool def, bool *out, char err[CONFIG_ERR_MAX]);
/* One of `choices` (NULL-terminated); *out is the index. */
int config_enum(const char *name, const char *def, const char *const *choices, int *out,
                char err[CONFIG_ERR_MAX]);

#endif
