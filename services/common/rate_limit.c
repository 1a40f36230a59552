/* rate_limit: a sliding-window limiter over a ring of event times. */
#include "rate_limit.h"

#include <stdlib.h>

int rate_limit_init(struct rate_limit *rl, int limit, int64_t window_ms)
{
    rl->limit = limit;
    rl->window_ms = window_ms;
    rl->n = rl->head = 0;
    rl->ring = calloc((size_t)limit, sizeof *rl->ring);
    return rl->ring != NULL ? 0 : -1;
}

int rate_limit_init_exotel(struct rate_limit *rl, char err[CONFIG_ERR_MAX])
{
    int64_t limit, window;
    if (config_int("EXOTEL_RATE_LIMIT_CALLS", 200, 1, 100000, &limit, err) != 0 ||
        config_int("EXOTEL_RATE_LIMIT_WINDOW_MS", 60000, 100, 24LL * 3600 * 1000, &window, err) !=
            0) {
        return -1;
    }
    int64_t margin = window / 50 > 100 ? window / 50 : 100;
    return rate_limit_init(rl, (int)limit, window + margin);
}

void rate_limit_free(struct rate_limit *rl)
{
    free(rl->ring);
    rl->ring = NULL;
}

void rate_limit_record(struct rate_limit *rl, int64_t ts)
{
    if (rl->n < rl->limit) {
        rl->ring[(rl->head + rl->n++) % rl->limit] = ts;
    } else {
        rl->ring[rl->head] = ts;
        rl->head = (rl->head + 1) % rl->limit;
    }
}

int rate_limit_cancel(struct rate_limit *rl, int64_t ts)
{
    int i = rl->n - 1;
    while (i >= 0 && rl->ring[(rl->head + i) % rl->limit] != ts) {
        i--;
    }
    if (i < 0) {
        return -1;
    }
    /* Later records move one place back: the ring stays in time order, oldest at head. */
    for (; i + 1 < rl->n; i++) {
        rl->ring[(rl->head + i) % rl->limit] = rl->ring[(rl->head + i + 1) % rl->limit];
    }
    rl->n--;
    return 0;
}

int rate_limit_available(const struct rate_limit *rl, int64_t now)
{
    /* Events at or before now - window no longer count; the ring is in time order. */
    int inside = rl->n;
    for (int i = 0; i < rl->n && rl->ring[(rl->head + i) % rl->limit] + rl->window_ms <= now; i++) {
        inside--;
    }
    return rl->limit - inside;
}

int64_t rate_limit_next(const struct rate_limit *rl, int64_t now)
{
    if (rl->n < rl->limit) {
        return now;
    }
    int64_t at = rl->ring[rl->head] + rl->window_ms;
    return at > now ? at : now;
}
