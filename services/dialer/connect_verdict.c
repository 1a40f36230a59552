/* connect_verdict: a connect answer -> the attempt's next state (see connect_verdict.h). */
#include "connect_verdict.h"

#include <stdio.h>
#include <string.h>

void connect_verdict(const struct exotel_connect_result *r, struct connect_verdict *v)
{
    memset(v, 0, sizeof *v);
    switch (r->outcome) {
    case EXOTEL_PLACED:
        v->next = ATTEMPT_INITIATED;
        /* Exotel answers in-progress, sometimes queued, and a status-less answer is queued */
        v->status = r->call.status[0] != '\0' ? r->call.status : "queued";
        return;
    case EXOTEL_THROTTLED:
        v->next = ATTEMPT_QUEUED;
        v->backoff = true;
        snprintf(v->detail, sizeof v->detail, "throttled by Exotel");
        return;
    case EXOTEL_DND:
        v->next = ATTEMPT_FINAL;
        v->status = "dnd";
        snprintf(v->detail, sizeof v->detail, "%s", r->message);
        return;
    case EXOTEL_REJECTED:
        v->next = ATTEMPT_FINAL;
        v->status = "rejected";
        v->bad_credentials = r->http_status == 401;
        snprintf(v->detail, sizeof v->detail, "HTTP %ld: %s", r->http_status, r->message);
        return;
    case EXOTEL_NOT_SENT:
        v->next = ATTEMPT_FINAL;
        v->status = "failed-api";
        snprintf(v->detail, sizeof v->detail, "%s", r->message);
        return;
    case EXOTEL_UNKNOWN:
        break;
    }
    /* 5xx, a timeout, a cut connection: Exotel may have placed it; reconcile, never redial */
    v->next = ATTEMPT_UNKNOWN;
    snprintf(v->detail, sizeof v->detail, "HTTP %ld: %s", r->http_status, r->message);
}
