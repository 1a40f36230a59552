/*
 * call_window: when leads may be called. CALL_HOURS ("09:00-21:00", or
 * "always"; an end before the start spans midnight) on CALL_DAYS ("mon-fri",
 * "mon,wed,sat", "all") in CALL_TIMEZONE. A call due outside the window moves
 * to the next opening.
 *
 * Memory: the window owns its tz; free it with call_window_free().
 */
#ifndef LEADBUS_CALL_WINDOW_H
#define LEADBUS_CALL_WINDOW_H

#include "config.h"
#include "tz.h"

#include <stdbool.h>
#include <stdint.h>

struct call_window {
    bool always;
    int open_min, close_min; /* minutes after local midnight */
    unsigned days;           /* bit d set: weekday d allowed (0 = Sunday) */
    struct tz *tz;
};

/* `err` names the variable at fault (CALL_HOURS, CALL_DAYS, CALL_TIMEZONE). */
int call_window_parse(const char *hours, const char *days, const char *zone, struct call_window *w,
                      char err[CONFIG_ERR_MAX]);
void call_window_free(struct call_window *w);

/* `t` itself when it is inside the window, else the next opening after it. */
int64_t call_window_next(const struct call_window *w, int64_t t);

#endif
