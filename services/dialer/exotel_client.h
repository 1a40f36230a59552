/*
 * exotel_client: the Exotel v1 Calls API as the dialer uses it — connect,
 * call details (one call, or a bulk search for reconciliation) and number
 * metadata (DND) — and the loose parsing its answers need: scalars that are
 * strings, numbers, null or "", XML when JSON was not asked for, plain-text
 * 401 bodies. The parsers are pure (the fuzzer drives them); the request
 * functions use the caller's CURL handle and keep nothing.
 */
#ifndef LEADBUS_EXOTEL_CLIENT_H
#define LEADBUS_EXOTEL_CLIENT_H

#include "http_client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct exotel_account {
    char base[256]; /* up to, not including, /v1/Accounts/<sid> */
    char sid[64], key[128], token[128];
    long timeout_ms;
};

/* What a connect request came to, judged for the question "was the lead dialed?". */
enum exotel_outcome {
    EXOTEL_PLACED,    /* 200 with a Call.Sid */
    EXOTEL_THROTTLED, /* 429: nothing placed; try the same attempt again later */
    EXOTEL_REJECTED,  /* 400/401/402/403/404: refused for good (number, auth, balance…) */
    EXOTEL_DND,       /* 403 for a number on the Do-Not-Disturb register */
    EXOTEL_UNKNOWN,   /* 5xx, 409, timeout, cut connection, 200 without a Sid: may have dialed */
    EXOTEL_NOT_SENT,  /* never reached Exotel (no connection) */
};

const char *exotel_outcome_name(enum exotel_outcome o);

struct exotel_call {
    char sid[64];
    char status[24];
    char from[32], to[32];
    char date_created[24]; /* "YYYY-MM-DD HH:MM:SS", Exotel's zone */
    char recording_url[512];
    int64_t duration_s; /* conversation seconds when known, else Duration, else 0 */
};

struct exotel_connect_result {
    enum exotel_outcome outcome;
    long http_status;
    int64_t retry_after_ms;
    struct exotel_call call; /* when placed */
    char message[256];       /* Exotel's RestException message, or the transport error */
};

/* Judge a connect answer. `maybe_sent` is httpc_response.maybe_sent for a transport error. */
void exotel_classify_connect(long status, bool maybe_sent, int64_t retry_after_ms, const char *body,
                             size_t len, struct exotel_connect_result *r);

/* {"Call":{…}} or <TwilioResponse><Call>…; 0 when a Sid was read. */
int exotel_parse_call(const char *body, size_t len, struct exotel_call *c);
/* {"Calls":[…]}: fills up to max calls; the number read, or -1 when the body is not that. */
int exotel_parse_calls(const char *body, size_t len, struct exotel_call *calls, int max);
/* {"Numbers":{"DND":"Yes"|"No",…}}: 0 with *dnd set, -1 when unreadable. */
int exotel_parse_number(const char *body, size_t len, bool *dnd);

/* completed, busy, no-answer, failed, canceled */
bool exotel_status_terminal(const char *status);

struct exotel_dial {
    const char *from, *to; /* to = NULL for a call into a flow */
    const char *flow_url;  /* Url=…/exoml/start_voice/<app id>, or NULL */
    const char *caller_id, *call_type;
    int ring_timeout_s, time_limit_s;
    bool record;
    const char *status_callback, *custom_field;
};

/* Build the urlencoded connect body (malloc'd; NULL on failure). */
char *exotel_connect_form(CURL *curl, const struct exotel_dial *d);

void exotel_connect(CURL *curl, const struct exotel_account *a, const struct exotel_dial *d,
                    struct exotel_connect_result *r);
/* 1 found (c filled), 0 Exotel does not know the Sid, -1 could not ask. */
int exotel_get_call(CURL *curl, const struct exotel_account *a, const char *sid,
                    struct exotel_call *c);
/*
 * Bulk call details: calls whose `field` (To or From) is one of `numbers`
 * (comma-separated) created between the two local times. Finished calls only,
 * as Exotel leaves out ongoing ones. Returns the number read, or -1.
 */
int exotel_find_calls(CURL *curl, const struct exotel_account *a, const char *field,
                      const char *numbers, const char *gte, const char *lte,
                      struct exotel_call *calls, int max);
/* 0 with *dnd set, -1 could not tell. */
int exotel_number_dnd(CURL *curl, const struct exotel_account *a, const char *number, bool *dnd);

#endif
