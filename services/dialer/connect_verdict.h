/*
 * connect_verdict: what one connect answer means for the attempt that sent it. Pure (no
 * clock, store or I/O), so every answer Exotel can give is unit-tested (test_exotel.c);
 * work.c turns the verdict into the attempt's next transaction.
 */
#ifndef LEADBUS_CONNECT_VERDICT_H
#define LEADBUS_CONNECT_VERDICT_H

#include "attempt_state.h"
#include "exotel_client.h"

#include <stdbool.h>

struct connect_verdict {
    enum attempt_state next; /* initiated, queued (again), unknown or final */
    const char *status; /* call.status: Exotel's for initiated (points into r), else the outcome */
    bool backoff;       /* queued again after a jittered backoff, at least Retry-After */
    bool bad_credentials; /* a 401: the credentials or the subdomain are wrong */
    char detail[300];     /* why, for the attempt's record ("" for initiated) */
};

void connect_verdict(const struct exotel_connect_result *r, struct connect_verdict *v);

#endif
