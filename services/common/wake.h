/*
 * wake: a worker's wait for work, a deadline or the stop, written once.
 *
 * A service's worker threads sleep until the next thing is due (a timer
 * deadline: redis's ae.c timers return the ms to their next run) or until
 * someone says there is new work (nng's nni_cv_until). The usual source of
 * new work is the service's own bus handler, which runs inside a store
 * transaction: it calls wake_mark(), and wake_on_commit(), registered as the
 * store's commit hook, kicks the workers once that transaction is durable
 * (never for commits that brought nothing). HTTP handlers kick directly.
 *
 *   uint64_t seen = 0;
 *   int64_t next = 0;                        (0: work at once)
 *   while (wake_wait(&w, &seen, next)) {
 *       next = do_work();                    (unix ms of the next deadline)
 *   }
 *
 * Threads: every function is safe from any thread. wake_wait() returns false
 * once wake_stop() was called; a kick between two waits is never lost (the
 * generation counter remembers it).
 */
#ifndef LEADBUS_WAKE_H
#define LEADBUS_WAKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct wake {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t gen; /* bumped by every kick */
    bool stopping;
    atomic_bool dirty; /* marked inside a transaction; kicked at its commit */
    int64_t max_sleep_ms;
};

/* max_sleep_ms bounds one sleep (a safety net against a missed deadline); 0: 60 s. */
void wake_init(struct wake *w, int64_t max_sleep_ms);
void wake_fini(struct wake *w);

/* Wake every waiter now. */
void wake_kick(struct wake *w);
/* New work was written in the current transaction: kick once it commits. */
void wake_mark(struct wake *w);
/* A store commit hook (store_on_commit(store, wake_on_commit, &w)). */
void wake_on_commit(void *arg);
/* Wake every waiter for good: wake_wait() returns false from now on. */
void wake_stop(struct wake *w);

/*
 * Return when kicked since *seen, when the clock reaches next_ms (unix ms;
 * <= now returns at once), or false when stopping. *seen becomes the current
 * generation, so a kick during the work that follows makes the next wait
 * return at once.
 */
bool wake_wait(struct wake *w, uint64_t *seen, int64_t next_ms);

/* Sleep until next_ms or any kick, whichever first; false when stopping. */
bool wake_sleep_until(struct wake *w, int64_t next_ms);

#endif
