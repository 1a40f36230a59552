/* dial_guard: DIAL_COUNTRIES and MAX_CALLS_PER_NUMBER_PER_DAY. */
#include "dial_guard.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int dial_guard_parse(const char *countries, int64_t max_per_number, struct dial_guard *g,
                     char err[CONFIG_ERR_MAX])
{
    memset(g, 0, sizeof *g);
    g->max_per_number = max_per_number;
    if (strcasecmp(countries, "any") == 0) {
        g->any_country = true;
        return 0;
    }
    char copy[256], *save = NULL;
    snprintf(copy, sizeof copy, "%s", countries);
    for (char *t = strtok_r(copy, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
        if (strlen(t) != 2 || !isalpha((unsigned char)t[0]) || !isalpha((unsigned char)t[1]) ||
            g->ncountries == DIAL_GUARD_COUNTRIES_MAX) {
            snprintf(err, CONFIG_ERR_MAX,
                     "DIAL_COUNTRIES: expected up to %d two-letter ISO codes (IN,AE) or any, got "
                     "'%.20s'",
                     DIAL_GUARD_COUNTRIES_MAX, t);
            return -1;
        }
        g->countries[g->ncountries][0] = (char)toupper((unsigned char)t[0]);
        g->countries[g->ncountries][1] = (char)toupper((unsigned char)t[1]);
        g->ncountries++;
    }
    if (g->ncountries == 0) {
        snprintf(err, CONFIG_ERR_MAX, "DIAL_COUNTRIES: empty; name the countries to call, or any");
        return -1;
    }
    return 0;
}

bool dial_guard_country_ok(const struct dial_guard *g, const char *region)
{
    if (g->any_country) {
        return true;
    }
    for (int i = 0; region != NULL && i < g->ncountries; i++) {
        if (strcmp(g->countries[i], region) == 0) {
            return true;
        }
    }
    return false;
}

bool dial_guard_number_ok(const struct dial_guard *g, int64_t attempts)
{
    return g->max_per_number == 0 || attempts < g->max_per_number;
}
