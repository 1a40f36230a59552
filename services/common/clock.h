/* clock: wall-clock and monotonic milliseconds, and absolute deadlines for timed waits. */
#ifndef LEADBUS_CLOCK_H
#define LEADBUS_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

int64_t clock_now_ms(void);  /* unix time in ms (event timestamps, due times) */
int64_t clock_mono_ms(void); /* monotonic ms (intervals, timeouts) */
/* A CLOCK_MONOTONIC absolute time `ms` from now, for condvars set to that clock. */
struct timespec clock_deadline_in(int64_t ms);
/* Init a condition variable whose timed waits use CLOCK_MONOTONIC (clock_deadline_in's clock). */
int clock_cond_init(pthread_cond_t *cond);

#endif
