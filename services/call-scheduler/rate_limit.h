/*
 * rate_limit: at most `limit` events in any sliding window of `window_ms`.
 * It remembers the times of the last `limit` events; the oldest of them
 * decides when the next one may happen. Times are unix ms and must not go
 * backwards between records. Not thread-safe: the scheduler's writer thread
 * owns it. Memory: the ring is malloc'd; free with rate_limit_free().
 */
#ifndef LEADBUS_RATE_LIMIT_H
#define LEADBUS_RATE_LIMIT_H

#include <stdint.h>

struct rate_limit {
    int limit;
    int64_t window_ms;
    int64_t *ring; /* the last `n` event times, oldest at `head` */
    int n, head;
};

int rate_limit_init(struct rate_limit *rl, int limit, int64_t window_ms);
void rate_limit_free(struct rate_limit *rl);

void rate_limit_record(struct rate_limit *rl, int64_t ts);
/* How many events may happen at `now` without breaking the limit. */
int rate_limit_available(const struct rate_limit *rl, int64_t now);
/* The earliest time >= now at which one more event is allowed. */
int64_t rate_limit_next(const struct rate_limit *rl, int64_t now);

#endif
