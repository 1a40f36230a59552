/*
 * dial_guard: toll-fraud limits on whom leadbus dials, whoever posted the lead.
 *
 * A form key is public, so a lead's phone number is the attacker's choice:
 * DIAL_COUNTRIES (ISO 3166 codes, default IN; `any` lifts it) keeps premium and
 * international numbers from being dialled at the account owner's cost (the
 * lead is kept, its call skipped with reason `country`), and
 * MAX_CALLS_PER_NUMBER_PER_DAY (default 3; 0 lifts it) bounds the attempts one
 * number gets from all leads of the last 24 hours (reason `number_limit`).
 * Pure: the call-scheduler counts, this decides.
 */
#ifndef LEADBUS_DIAL_GUARD_H
#define LEADBUS_DIAL_GUARD_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>

#define DIAL_GUARD_COUNTRIES_MAX 32

struct dial_guard {
    bool any_country;
    char countries[DIAL_GUARD_COUNTRIES_MAX][3];
    int ncountries;
    int64_t max_per_number; /* attempts per number per 24 h; 0: no limit */
};

/* Parse DIAL_COUNTRIES and MAX_CALLS_PER_NUMBER_PER_DAY values; err names the variable. */
int dial_guard_parse(const char *countries, int64_t max_per_number, struct dial_guard *g,
                     char err[CONFIG_ERR_MAX]);

/* May a number of this ISO region ("IN"; "" when unknown) be dialled? */
bool dial_guard_country_ok(const struct dial_guard *g, const char *region);

/* May one more attempt go to a number that already had `attempts` in the last 24 hours? */
bool dial_guard_number_ok(const struct dial_guard *g, int64_t attempts);

#endif
