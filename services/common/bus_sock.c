/* bus_sock: nng_close with a deadline. */
#include "bus_sock.h"
#include "clock.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>

struct closer {
    nng_socket s;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    bool abandoned; /* the waiter gave up; the closer frees this */
};

static void *close_main(void *arg)
{
    struct closer *c = arg;
    nng_close(c->s);
    pthread_mutex_lock(&c->lock);
    c->done = true;
    bool abandoned = c->abandoned;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (abandoned) {
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        free(c);
    }
    return NULL;
}

bool bus_sock_close(nng_socket s, int timeout_ms)
{
    struct closer *c = calloc(1, sizeof *c);
    if (c == NULL) {
        nng_close(s);
        return true;
    }
    c->s = s;
    pthread_mutex_init(&c->lock, NULL);
    clock_cond_init(&c->cond);
    pthread_t th;
    if (pthread_create(&th, NULL, close_main, c) != 0) {
        nng_close(s);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        free(c);
        return true;
    }
    pthread_detach(th);
    struct timespec dl = clock_deadline_in(timeout_ms);
    pthread_mutex_lock(&c->lock);
    while (!c->done) {
        if (pthread_cond_timedwait(&c->cond, &c->lock, &dl) != 0) {
            break;
        }
    }
    bool done = c->done;
    c->abandoned = !done;
    pthread_mutex_unlock(&c->lock);
    if (done) {
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        free(c);
    } else {
        log_warn("nng socket close is stuck; leaving it behind (nng 1.5.2 bug)", NULL);
    }
    return done;
}
