/* wake: wait for work, a deadline or the stop. */
#include "wake.h"
#include "clock.h"

#define DEFAULT_MAX_SLEEP_MS 60000

void wake_init(struct wake *w, int64_t max_sleep_ms)
{
    pthread_mutex_init(&w->lock, NULL);
    clock_cond_init(&w->cond);
    w->gen = 0;
    w->stopping = false;
    atomic_init(&w->dirty, false);
    w->max_sleep_ms = max_sleep_ms > 0 ? max_sleep_ms : DEFAULT_MAX_SLEEP_MS;
}

void wake_fini(struct wake *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

void wake_kick(struct wake *w)
{
    pthread_mutex_lock(&w->lock);
    w->gen++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void wake_mark(struct wake *w)
{
    atomic_store(&w->dirty, true);
}

void wake_on_commit(void *arg)
{
    struct wake *w = arg;
    if (atomic_exchange(&w->dirty, false)) {
        wake_kick(w);
    }
}

void wake_stop(struct wake *w)
{
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* One bounded sleep toward next_ms. Lock held. */
static void sleep_toward(struct wake *w, int64_t next_ms, int64_t now)
{
    int64_t ms = next_ms - now < w->max_sleep_ms ? next_ms - now : w->max_sleep_ms;
    struct timespec dl = clock_deadline_in(ms);
    pthread_cond_timedwait(&w->cond, &w->lock, &dl);
}

bool wake_wait(struct wake *w, uint64_t *seen, int64_t next_ms)
{
    pthread_mutex_lock(&w->lock);
    for (;;) {
        int64_t now = clock_now_ms();
        if (w->stopping || *seen != w->gen || now >= next_ms) {
            break;
        }
        sleep_toward(w, next_ms, now);
    }
    bool running = !w->stopping;
    *seen = w->gen;
    pthread_mutex_unlock(&w->lock);
    return running;
}

bool wake_sleep_until(struct wake *w, int64_t next_ms)
{
    pthread_mutex_lock(&w->lock);
    int64_t now = clock_now_ms();
    if (!w->stopping && now < next_ms) {
        sleep_toward(w, next_ms, now);
    }
    bool running = !w->stopping;
    pthread_mutex_unlock(&w->lock);
    return running;
}
