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

/*
 * The settings leadbus knows, as data: one table (config.c) that every name
 * read anywhere must appear in. A new setting is added there; the start-up
 * check warns about names with leadbus's prefixes that are not in it.
 */
bool config_known(const char *name);

/*
 * A known-settings entry may be a pattern with one `*` standing for a name in
 * upper case (letters, digits, `_`): "SOURCE_*_SECRET" knows SOURCE_TYPEFORM_SECRET.
 */
bool config_pattern_match(const char *pattern, const char *name);

/*
 * Call fn for every set, non-empty name starting with `prefix` (environment,
 * then the .env names the environment does not set): settings named after
 * something the operator chose (SOURCE_<NAME>_SECRET).
 */
void config_each_name(const char *prefix, void (*fn)(const char *name, void *arg), void *arg);

/* True for a name that looks like leadbus's (EXOTEL_, ZOHO_, BUS_, CALL_, SANDBOX_, LEAD, DB_,
 * META_, SOURCE_). */
bool config_has_prefix(const char *name);

/* The known name closest to `name` by edit distance, or NULL when none is close. */
const char *config_suggest(const char *name);

/* Edit distance (insert, delete, substitute one character) between two names. */
int config_distance(const char *a, const char *b);

/*
 * Call fn for every set name (environment, then .env) that has one of
 * leadbus's prefixes and is not known, with the closest known name or NULL.
 */
void config_each_unknown(void (*fn)(const char *name, const char *suggestion, void *arg),
                         void *arg);

#endif
