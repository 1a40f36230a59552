/*
 * retention: personal data past its time, scrubbed or dropped in small transactions, off the
 * hot path (issue 19: LEAD_RETENTION_DAYS, STATS_RETENTION_DAYS).
 *
 * A store's rules are SQL statements that take ?1, the cutoff (unix ms: now - days), and ?2,
 * the batch size, and change at most ?2 rows (`... WHERE rowid IN (SELECT rowid ... LIMIT ?2)`).
 * A thread runs every rule 2 s after start and then every hour, one store_run() transaction per
 * batch, until a batch changes fewer rows than the batch size. A rule with days = 0 is off.
 * Rows changed: leadbus_retention_rows_total{store,rule}; a failed batch: an ERROR line naming
 * the store and the rule, and leadbus_retention_failures_total{store,rule} (the next round tries
 * again).
 *
 * Memory: the rules (and their strings) must outlive the retention. Threads: one of its own; the
 * rules run on the store's writer thread.
 */
#ifndef LEADBUS_RETENTION_H
#define LEADBUS_RETENTION_H

#include "config.h"
#include "store.h"

#include <stddef.h>

struct retention_rule {
    const char *name; /* metrics label: "leads", "timeline", ... */
    const char *sql;
    int days;
};

struct retention;

/* Days from setting `var` (LEAD_RETENTION_DAYS, STATS_RETENTION_DAYS): default 90, 0 = forever. */
int retention_days(const char *var, int *days, char err[CONFIG_ERR_MAX]);

int retention_start(struct store *s, const struct retention_rule *rules, size_t n,
                    struct retention **out);
/* Stops the thread (a batch under way finishes first). NULL is fine. */
void retention_stop(struct retention *r);

#endif
