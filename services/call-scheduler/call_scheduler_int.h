/*
 * call_scheduler_int.h: what the files of call-scheduler share. Not for use
 * outside services/call-scheduler (the module's contract is call_scheduler.h).
 *
 * call_scheduler.c owns the module: settings, start/stop, the timer thread,
 * the operator's routes and /metrics. calls.c owns the calls table: the call
 * state machine (drawn at its top) and every transaction that moves a call.
 *
 * Threads: `struct sched` is shared by the bus handler and the store jobs
 * (store writer thread), the timer thread and civetweb's threads; what each
 * may touch is said at the field, the rest is set before the threads start.
 */
#ifndef LEADBUS_CALL_SCHEDULER_INT_H
#define LEADBUS_CALL_SCHEDULER_INT_H

#include "api_key.h"
#include "bus_pub.h"
#include "bus_sub.h"
#include "call_window.h"
#include "dial_guard.h"
#include "proto.h"
#include "rate_limit.h"
#include "retention.h"
#include "retry_policy.h"
#include "store.h"
#include "wake.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define MAX_SLEEP_MS 60000

struct sched {
    struct retention *retention;   /* LEAD_RETENTION_DAYS */
    struct retention_rule keep[1]; /* its rules */
    struct store *store;
    struct bus_pub *pub;
    struct bus_sub *sub;
    struct api_keys *keys;
    bool enabled;
    int64_t delay_ms, dedupe_ms;
    struct dial_guard guard; /* DIAL_COUNTRIES, MAX_CALLS_PER_NUMBER_PER_DAY */
    struct call_window window;
    struct retry_policy retry;
    /* Dispatches counted for Exotel's limit: read by dispatch_job on the writer thread while the
     * timer thread waits in store_run; recorded by the timer thread only after that commit
     * succeeded (a dispatch whose commit failed never reaches the dialer, so takes no slot). */
    struct rate_limit rl;
    int64_t pruned_ms;
    int ningest; /* the first sources are ingest's replicas */
    pthread_t thread;
    bool started;
    struct wake wake; /* the timer's: new pending calls (at their commit), cancels, the stop */
};

/* ---- calls.c ---- */

/* A call's states (calls.state, CHECKed in the schema from version 2; drawn in calls.c). */
enum call_state { CALL_PENDING, CALL_DISPATCHED, CALL_DONE, CALL_CANCELED, CALL_SKIPPED };
extern const char *const call_state_name[];

/* The store's version-1 schema (never changed) and its later steps (store.h, "Schema versions"). */
extern const char calls_schema[];
extern const struct store_migration calls_migrations[];
extern const size_t calls_nmigrations;
/* LEAD_RETENTION_DAYS' rule: a closed call's phone numbers. */
extern const char calls_retention_sql[];

/* The bus handler (store writer thread, inside the subscriber's transaction). */
int calls_on_event(sqlite3 *db, const struct proto_event *ev, void *arg);

/* The timer's store job: due pending calls become dispatched (call.due) within the rate limit. */
struct dispatch_args {
    struct sched *s;
    int64_t now;
    int n;        /* out: calls dispatched, counted by the timer once this commit is durable */
    int64_t wake; /* out: when to look again */
};
int calls_dispatch_job(sqlite3 *db, void *arg);

/* The operator's cancel: a pending call becomes canceled (call.skipped). */
struct cancel_args {
    struct sched *s;
    const char *call_id;
    char state[16]; /* out: the state found; "" when there is no such call */
};
int calls_cancel_job(sqlite3 *db, void *arg);

#endif
