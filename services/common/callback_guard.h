/*
 * callback_guard: what makes a StatusCallback trustworthy. Exotel signs
 * nothing (exotel.md §5), so the callback URL carries a token: the
 * HMAC-SHA256 of (call id, attempt) under a key kept in the dialer's store,
 * so a leaked URL (a proxy log, Exotel's dashboard) opens that one attempt
 * only. A callback must also name the Sid Exotel returned for the attempt,
 * and a recording link is kept only as https on a host Exotel documents.
 * Pure functions: no I/O, no globals; the unit tests drive them.
 */
#ifndef LEADBUS_CALLBACK_GUARD_H
#define LEADBUS_CALLBACK_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#define CALLBACK_KEY_BYTES 32
#define CALLBACK_TOKEN_LEN 64 /* hex of the HMAC-SHA256 */

/* hex(HMAC-SHA256(key, "leadbus-callback:v1:" call_id ":" attempt)) into out; 0, or -1. */
int callback_token(const unsigned char *key, size_t key_len, const char *call_id, int attempt,
                   char out[CALLBACK_TOKEN_LEN + 1]);

/* Whether `given` is the attempt's token; compared in constant time. */
bool callback_token_ok(const unsigned char *key, size_t key_len, const char *call_id, int attempt,
                       const char *given);

/* What a terminal callback may do to its attempt. */
enum callback_verdict {
    CALLBACK_APPLY,     /* the Sid is the attempt's: it finishes the attempt */
    CALLBACK_DUPLICATE, /* the attempt is already final: nothing changes */
    CALLBACK_MISMATCH,  /* another Sid than Exotel returned for the attempt: refused */
    CALLBACK_DEFER,     /* the attempt's Sid is not known yet: call details decide, not this */
};

/* From the attempt's state and stored Sid ("" when none) and the callback's CallSid. */
enum callback_verdict callback_verdict(const char *state, const char *stored_sid,
                                       const char *callback_sid);

/*
 * Whether a RecordingUrl may be kept: https, no userinfo, port 443 if any, and a host Exotel
 * documents for recordings (GUESS, the strict side: only s3-ap-southeast-1.amazonaws.com, the
 * host of Exotel's own callback example; docs/api-conformance.md E7).
 */
bool recording_url_allowed(const char *url);

#endif
