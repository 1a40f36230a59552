/*
 * rate_limit: at most `limit` events in any sliding window of `window_ms`.
 * Exotel's limit (EXOTEL_RATE_LIMIT_CALLS per EXOTEL_RATE_LIMIT_WINDOW_MS) is
 * kept twice: the call-scheduler paces call.due, and the dialer paces the
 * requests it sends, so a dialer that was down cannot burst its backlog.
 * It remembers the times of the last `limit` events; the oldest of them
 * decides when the next one may happen. Times are unix ms and must not go
 * backwards between records. Only events that really happened count: a
 * slot taken ahead of an event that then did not happen is given back with
 * rate_limit_cancel(). Not thread-safe: the caller serialises access. Memory: the ring is malloc'd;
 * free with rate_limit_free().
 */
#ifndef LEADBUS_RATE_LIMIT_H
#define LEADBUS_RATE_LIMIT_H

#include "config.h"

#include <stdint.h>

struct rate_limit {
    int limit;
    int64_t window_ms;
    int64_t *ring; /* the last `n` event times, oldest at `head` */
    int n, head;
};

int rate_limit_init(struct rate_limit *rl, int limit, int64_t window_ms);
/*
 * Init from EXOTEL_RATE_LIMIT_CALLS (200) and EXOTEL_RATE_LIMIT_WINDOW_MS (60000), with the window
 * 2 % (at least 100 ms) longer, so that latency jitter between us and Exotel cannot squeeze one
 * call too many into Exotel's own window. -1 with err naming the variable.
 */
int rate_limit_init_exotel(struct rate_limit *rl, char err[CONFIG_ERR_MAX]);
void rate_limit_free(struct rate_limit *rl);

void rate_limit_record(struct rate_limit *rl, int64_t ts);
/*
 * Give back a slot recorded at `ts` for an event that did not happen after all
 * (a request that never left, a dispatch whose commit failed): the most recent
 * record at exactly `ts` is removed. 0 when one was found, -1 otherwise.
 */
int rate_limit_cancel(struct rate_limit *rl, int64_t ts);
/* How many events may happen at `now` without breaking the limit. */
int rate_limit_available(const struct rate_limit *rl, int64_t now);
/* The earliest time >= now at which one more event is allowed. */
int64_t rate_limit_next(const struct rate_limit *rl, int64_t now);

#endif
