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
    char leg1_status[24], leg2_status[24]; /* Details.Leg1Status/Leg2Status (details=true), or "" */
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

/*
 * Bulk call details come in pages (exotel.md §7; developer.exotel.com/docs/voice-v1/api-reference/
 * call-details): `PageSize` (default 50, max 100), and `Metadata.NextPageUri`, null on the last
 * page, whose `After` query parameter is the cursor of the next page.
 */
#define EXOTEL_PAGE_MAX 100
#define EXOTEL_CURSOR_MAX 256

struct exotel_page {
    char after[EXOTEL_CURSOR_MAX]; /* the next page's After cursor, decoded; "" on the last page */
    int64_t total;                 /* Metadata.Total, or -1 when absent */
};

/*
 * One page: its calls (as exotel_parse_calls) and the cursor of the next one. -1 when the body is
 * not a page, or when NextPageUri is set but carries no usable After cursor (the rest of the
 * answer cannot be read, so no caller may conclude a call is absent).
 */
int exotel_parse_calls_page(const char *body, size_t len, struct exotel_call *calls, int max,
                            struct exotel_page *page);

/* The same phone number in Exotel's spellings (0-prefixed, E.164, bare): the last 10 digits. */
bool exotel_same_number(const char *a, const char *b);
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
 * (comma-separated, at most 5) created between the two local times, oldest
 * first, EXOTEL_PAGE_MAX a page. Finished calls only, as Exotel leaves out
 * ongoing ones. Call exotel_find_calls_page() until `done`: each call reads
 * the next page (the same filters again, plus After=<cursor>).
 */
struct exotel_search {
    const char *field, *numbers, *gte, *lte;
    char after[EXOTEL_CURSOR_MAX]; /* "" for the first page */
    int pages;                     /* pages read so far */
    bool done;                     /* the last page has been read */
};

/* The next page into calls (room for EXOTEL_PAGE_MAX): the number read, or -1 (nothing learnt). */
int exotel_find_calls_page(CURL *curl, const struct exotel_account *a, struct exotel_search *q,
                           struct exotel_call *calls);
/* 0 with *dnd set, -1 could not tell. */
int exotel_number_dnd(CURL *curl, const struct exotel_account *a, const char *number, bool *dnd);

#endif
