/*
 * retry_policy: whether a call attempt that ended with a status gets another
 * attempt, and after how long. EXOTEL_RETRY_ON lists the statuses that retry
 * (default failed-api,busy,no-answer), EXOTEL_RETRY_DELAYS_MS the waits before
 * attempt 2, 3, … (the last repeats), EXOTEL_MAX_RETRIES the attempts in all.
 * `dnd` and `rejected` (Exotel refused the number) never retry: no setting can
 * make leadbus redial a number the operator may not call.
 */
#ifndef LEADBUS_RETRY_POLICY_H
#define LEADBUS_RETRY_POLICY_H

#include "config.h"

#include <stdint.h>

#define RETRY_POLICY_MAX 16

struct retry_policy {
    char on[RETRY_POLICY_MAX][24];
    int non;
    int64_t delays_ms[RETRY_POLICY_MAX];
    int ndelays;
    int max_attempts;
};

int retry_policy_parse(const char *on, const char *delays, int max_attempts, struct retry_policy *p,
                       char err[CONFIG_ERR_MAX]);

/* After attempt `attempt` (1-based) ended with `status`: the delay before the next, or -1 to close.
 */
int64_t retry_policy_next(const struct retry_policy *p, const char *status, int attempt);

#endif
