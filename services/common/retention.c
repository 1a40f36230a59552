/* retention: rules run in batches by a thread of their own (retention.h). */
#include "retention.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "wake.h"

#include <stdio.h>
#include <stdlib.h>

#define RETENTION_BATCH 500
#define RETENTION_FIRST_MS 2000
#define RETENTION_EVERY_MS (3600LL * 1000)

struct retention {
    struct store *store;
    const char *target; /* the starting module's: the thread logs as it */
    const struct retention_rule *rules;
    size_t n;
    struct wake wake;
    pthread_t thread;
};

struct batch {
    const struct retention_rule *rule;
    int64_t cutoff_ms;
    int changed;
};

static int batch_job(sqlite3 *db, void *arg)
{
    struct batch *b = arg;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, b->rule->sql, -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, b->cutoff_ms);
    sqlite3_bind_int(st, 2, RETENTION_BATCH);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    b->changed = rc == SQLITE_DONE ? sqlite3_changes(db) : 0;
    return rc == SQLITE_DONE ? 0 : -1;
}

static void run_rule(struct retention *r, const struct retention_rule *rule)
{
    char labels[160];
    snprintf(labels, sizeof labels, "store=\"%s\",rule=\"%s\"", store_name(r->store), rule->name);
    struct batch b = {.rule = rule, .cutoff_ms = clock_now_ms() - rule->days * 86400000LL};
    do {
        if (store_run(r->store, batch_job, &b) != 0) {
            log_error("Retention batch failed; retried next round",
                      LOG_FIELDS(LOG_S("store", store_name(r->store)), LOG_S("rule", rule->name)));
            metrics_counter_add("leadbus_retention_failures_total",
                                "Retention batches that could not be committed", labels, 1);
            return;
        }
        metrics_counter_add("leadbus_retention_rows_total",
                            "Rows scrubbed or dropped because they passed their retention", labels,
                            b.changed);
    } while (b.changed >= RETENTION_BATCH);
}

static void *retention_main(void *arg)
{
    struct retention *r = arg;
    log_set_target(r->target);
    uint64_t seen = 0;
    int64_t next = clock_now_ms() + RETENTION_FIRST_MS;
    while (wake_wait(&r->wake, &seen, next)) {
        if (clock_now_ms() < next) {
            continue;
        }
        for (size_t i = 0; i < r->n; i++) {
            if (r->rules[i].days > 0) {
                run_rule(r, &r->rules[i]);
            }
        }
        next = clock_now_ms() + RETENTION_EVERY_MS;
    }
    return NULL;
}

int retention_start(struct store *s, const struct retention_rule *rules, size_t n,
                    struct retention **out)
{
    struct retention *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return -1;
    }
    r->store = s;
    r->target = log_target();
    r->rules = rules;
    r->n = n;
    wake_init(&r->wake, 0);
    for (size_t i = 0; i < n; i++) { /* the series exist from the start, at 0 */
        char labels[160];
        snprintf(labels, sizeof labels, "store=\"%s\",rule=\"%s\"", store_name(s), rules[i].name);
        metrics_counter_add("leadbus_retention_rows_total",
                            "Rows scrubbed or dropped because they passed their retention", labels,
                            0);
    }
    if (pthread_create(&r->thread, NULL, retention_main, r) != 0) {
        wake_fini(&r->wake);
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

int retention_days(const char *var, int *days, char err[CONFIG_ERR_MAX])
{
    int64_t v;
    if (config_int(var, 90, 0, 36500, &v, err) != 0) {
        return -1;
    }
    *days = (int)v;
    return 0;
}

void retention_stop(struct retention *r)
{
    if (r == NULL) {
        return;
    }
    wake_stop(&r->wake);
    pthread_join(r->thread, NULL);
    wake_fini(&r->wake);
    free(r);
}
