/*
 * metrics: the process's counters, gauges and histograms, served as
 * Prometheus text on every target's GET /metrics.
 *
 * A family is named and typed where it is first used; a series is a family
 * plus a rendered label set ("route=\"/leads\",code=\"202\""), created on first
 * use. Updates take one process-wide lock: fine at the rates leadbus sees
 * (tens of thousands a second), and it keeps rendering consistent. Collectors
 * registered by modules run just before each render to set gauges that are
 * cheaper to read on demand (pending calls, queue sizes).
 *
 * Memory: the registry copies names and labels; metrics_render() returns a
 * malloc'd string the caller frees.
 */
#ifndef LEADBUS_METRICS_H
#define LEADBUS_METRICS_H

#include <stddef.h>

/* Label values are escaped by the caller with metrics_label() when they come from outside. */
void metrics_counter_add(const char *name, const char *help, const char *labels, double v);
void metrics_gauge_set(const char *name, const char *help, const char *labels, double v);
/* Histogram of seconds, buckets from 1 ms to 30 s. */
void metrics_observe(const char *name, const char *help, const char *labels, double seconds);

/* A counter whose total is kept elsewhere (a store): set, by a collector, never lowered. */
void metrics_counter_set(const char *name, const char *help, const char *labels, double v);

/* A histogram a collector computes whole from a store (durable across restarts), on buckets
 * from 1 s to a day: cumulative[i] counts the values <= metrics_long_buckets[i]. */
#define METRICS_LONG_NBUCKETS 13
extern const double metrics_long_buckets[METRICS_LONG_NBUCKETS];
void metrics_histogram_set(const char *name, const char *help, const char *labels,
                           const unsigned long long cumulative[METRICS_LONG_NBUCKETS], double sum,
                           unsigned long long count);

typedef void (*metrics_collector)(void *arg);
int metrics_collector_add(metrics_collector fn, void *arg);
void metrics_collector_remove(metrics_collector fn, void *arg);

/* Run the collectors, then render every family. */
char *metrics_render(size_t *len);

/* Copy `value` into out as a label value: quotes, backslashes and newlines escaped. */
void metrics_label(const char *value, char *out, size_t size);

/* Forget everything (tests). */
void metrics_reset(void);

#endif
