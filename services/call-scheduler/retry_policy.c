/* retry_policy: which outcomes earn another attempt, and when. */
#include "retry_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const retryable[] = {"failed-api", "busy",     "no-answer",
                                        "failed",     "canceled", NULL};

int retry_policy_parse(const char *on, const char *delays, int max_attempts, struct retry_policy *p,
                       char err[CONFIG_ERR_MAX])
{
    memset(p, 0, sizeof *p);
    p->max_attempts = max_attempts;
    char copy[512], *save = NULL;
    snprintf(copy, sizeof copy, "%s", on);
    for (char *t = strtok_r(copy, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
        bool known = false;
        for (int i = 0; retryable[i] != NULL; i++) {
            known = known || strcmp(t, retryable[i]) == 0;
        }
        if (!known || p->non == RETRY_POLICY_MAX) {
            snprintf(err, CONFIG_ERR_MAX,
                     "EXOTEL_RETRY_ON: expected a list of failed-api, busy, no-answer, failed, "
                     "canceled (dnd and rejected never retry)");
            return -1;
        }
        snprintf(p->on[p->non++], sizeof p->on[0], "%s", t);
    }
    snprintf(copy, sizeof copy, "%s", delays);
    for (char *t = strtok_r(copy, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
        char *end;
        errno = 0;
        long long v = strtoll(t, &end, 10);
        if (errno != 0 || *end != '\0' || v < 0 || v > 7LL * 24 * 3600 * 1000 ||
            p->ndelays == RETRY_POLICY_MAX) {
            snprintf(err, CONFIG_ERR_MAX,
                     "EXOTEL_RETRY_DELAYS_MS: expected milliseconds like 60000,300000,900000");
            return -1;
        }
        p->delays_ms[p->ndelays++] = v;
    }
    if (p->ndelays == 0) {
        snprintf(err, CONFIG_ERR_MAX, "EXOTEL_RETRY_DELAYS_MS: needs at least one delay");
        return -1;
    }
    return 0;
}

int64_t retry_policy_next(const struct retry_policy *p, const char *status, int attempt)
{
    if (attempt >= p->max_attempts) {
        return -1;
    }
    for (int i = 0; i < p->non; i++) {
        if (strcmp(status, p->on[i]) == 0) {
            int k = attempt - 1 < p->ndelays ? attempt - 1 : p->ndelays - 1;
            return p->delays_ms[k < 0 ? 0 : k];
        }
    }
    return -1;
}
