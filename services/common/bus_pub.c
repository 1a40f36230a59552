/* bus_pub: outbox sender, heartbeat and replay server. */
#include "bus_pub.h"
#include "bus_sock.h"
#include "bus_tls.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRUNE_EVERY_MS (3600 * 1000)

struct bus_pub {
    char name[PROTO_SRC_MAX];
    uint64_t epoch; /* the store's stream epoch (outbox_epoch), fixed for the publisher's life */
    struct store *store;
    struct outbox *ob;
    nng_socket pub, rep;
    pthread_t sender, replayer;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool kicked, stopping;
    int hb_interval_ms;
    int retention_days;
    atomic_uint_fast64_t sent, replayed;
    unsigned heartbeats; /* sender thread only */
};

static void on_commit(void *arg)
{
    struct bus_pub *p = arg;
    pthread_mutex_lock(&p->lock);
    p->kicked = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static int64_t max_id(sqlite3 *db)
{
    sqlite3_stmt *st;
    int64_t id = 0;
    if (sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM bus_outbox", -1, &st, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            id = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    return id;
}

/* Send every committed row after *last_id. */
static void send_new(struct bus_pub *p, sqlite3_stmt *st, int64_t *last_id)
{
    for (;;) {
        sqlite3_bind_int64(st, 1, *last_id);
        int n = 0, rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            *last_id = sqlite3_column_int64(st, 0);
            int len = sqlite3_column_bytes(st, 1);
            const void *frame = sqlite3_column_blob(st, 1);
            /* PUB never blocks: a slow subscriber loses frames and recovers them by replay. */
            if (nng_send(p->pub, (void *)frame, (size_t)len, 0) == 0) {
                atomic_fetch_add(&p->sent, 1);
                char topic[PROTO_TOPIC_MAX], labels[128];
                if (proto_frame_topic(frame, (size_t)len, topic, sizeof topic) > 0) {
                    snprintf(labels, sizeof labels, "publisher=\"%s\",topic=\"%s\"", p->name,
                             topic);
                    metrics_counter_add("leadbus_bus_events_published_total",
                                        "Bus events sent live by a publisher", labels, 1);
                }
            }
            n++;
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE || n == 0) {
            return;
        }
    }
}

static void send_heartbeat(struct bus_pub *p, sqlite3 *db)
{
    struct proto_heartbeat hb;
    if (outbox_streams(db, &hb) != 0) {
        return;
    }
    if (p->heartbeats++ % 10 == 0) { /* count(*) over a large outbox: not every second */
        char labels[96];
        snprintf(labels, sizeof labels, "publisher=\"%s\"", p->name);
        metrics_gauge_set("leadbus_bus_outbox_events", "Events a publisher keeps for replay",
                          labels, (double)outbox_count(db));
    }
    uint8_t *frame;
    size_t len;
    if (proto_frame_encode(PROTO_HEARTBEAT, p->name, p->epoch, 0, clock_now_ms(), &hb, &frame,
                           &len) == PROTO_OK) {
        nng_send(p->pub, frame, len, 0);
        free(frame);
    }
}

static int prune_job(sqlite3 *db, void *arg)
{
    const int64_t *before = arg;
    int n = outbox_prune(db, *before);
    if (n > 0) {
        log_info("Pruned outbox", LOG_FIELDS(LOG_I("events", n)));
    }
    return n < 0 ? -1 : 0;
}

static void *sender_main(void *arg)
{
    struct bus_pub *p = arg;
    log_set_target(p->name);
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    if (store_open_reader(p->store, &db) != 0) {
        return NULL;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT id, frame FROM bus_outbox WHERE id > ?1 ORDER BY id LIMIT 512",
                           -1, &st, NULL) != SQLITE_OK) {
        log_error("Cannot prepare sender query", LOG_FIELDS(LOG_S("error", sqlite3_errmsg(db))));
        sqlite3_close(db);
        return NULL;
    }
    /* Rows committed before a crash but never sent reach subscribers through the
     * first heartbeat, which makes them replay: no need to guess what was sent. */
    int64_t last_id = max_id(db);
    int64_t next_hb = clock_mono_ms();
    int64_t next_prune = clock_mono_ms() + 60 * 1000;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        int64_t now = clock_mono_ms();
        if (!p->kicked && now < next_hb) {
            struct timespec dl = clock_deadline_in(next_hb - now);
            pthread_cond_timedwait(&p->cond, &p->lock, &dl);
            continue;
        }
        p->kicked = false;
        pthread_mutex_unlock(&p->lock);

        send_new(p, st, &last_id);
        now = clock_mono_ms();
        if (now >= next_hb) {
            send_heartbeat(p, db);
            next_hb = now + p->hb_interval_ms;
        }
        if (p->retention_days > 0 && now >= next_prune) {
            int64_t before = clock_now_ms() - (int64_t)p->retention_days * 86400 * 1000;
            store_run(p->store, prune_job, &before);
            next_prune = now + PRUNE_EVERY_MS;
        }
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return NULL;
}

static void answer(struct bus_pub *p, sqlite3 *db, const uint8_t *buf, size_t len)
{
    struct proto_replay_req req;
    uint8_t *reply = NULL;
    size_t reply_len = 0;
    int rc = proto_replay_req_decode(buf, len, &req);
    if (rc == PROTO_OK && req.streams) {
        struct proto_heartbeat hb;
        rc = outbox_streams(db, &hb) == 0
                 ? proto_replay_streams_encode(p->name, p->epoch, &hb, &reply, &reply_len)
                 : -1;
    } else if (rc == PROTO_OK) {
        rc = outbox_replay(db, p->epoch, req.topic, req.from, req.max, &reply, &reply_len);
    }
    if (rc != 0) {
        /* An empty map: the requester's decoder reports it as an error and retries later. */
        static const uint8_t empty_map = 0x80;
        nng_send(p->rep, (void *)&empty_map, 1, 0);
        return;
    }
    atomic_fetch_add(&p->replayed, 1);
    nng_send(p->rep, reply, reply_len, 0);
    free(reply);
}

static void *replayer_main(void *arg)
{
    struct bus_pub *p = arg;
    log_set_target(p->name);
    sqlite3 *db;
    if (store_open_reader(p->store, &db) != 0) {
        return NULL;
    }
    for (;;) {
        void *buf = NULL;
        size_t len = 0;
        int rc = nng_recv(p->rep, &buf, &len, NNG_FLAG_ALLOC);
        if (rc == NNG_ECLOSED) {
            break;
        }
        if (rc != 0) {
            continue;
        }
        answer(p, db, buf, len);
        nng_free(buf, len);
    }
    sqlite3_close(db);
    return NULL;
}

static int listen_on(nng_socket s, const char *url, const char *what, const char *name)
{
    int rc = bus_endpoint_listen(s, url); /* TLS and the plain-tcp guard: bus_tls.h */
    if (rc != 0) {
        log_error("Cannot listen for the bus",
                  LOG_FIELDS(LOG_S("publisher", name), LOG_S("socket", what), LOG_S("url", url),
                             LOG_S("error", nng_strerror(rc))));
        return -1;
    }
    return 0;
}

static int epoch_job(sqlite3 *db, void *arg)
{
    uint64_t *epoch = arg;
    *epoch = outbox_epoch(db);
    return *epoch != 0 ? 0 : -1;
}

/*
 * A store found corrupt or lost refuses every job (store.h) while its process stays up, not
 * ready; the epoch it already has is still read, through a read-only connection, so the start
 * does not fail on which came first, the integrity check or this. 0 otherwise.
 */
static uint64_t epoch_of_bad_store(struct store *s)
{
    enum store_health h = store_health(s);
    sqlite3 *db = NULL;
    uint64_t epoch = 0;
    if ((h == STORE_CORRUPT || h == STORE_LOST) && store_open_reader(s, &db) == 0) {
        epoch = outbox_epoch_read(db);
    }
    sqlite3_close(db);
    return epoch;
}

int bus_pub_open(const struct bus_pub_opts *o, struct bus_pub **out)
{
    if (store_exec_schema(o->store, outbox_schema) != 0) {
        return -1;
    }
    struct bus_pub *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return -1;
    }
    snprintf(p->name, sizeof p->name, "%s", o->name);
    p->store = o->store;
    p->hb_interval_ms = o->hb_interval_ms > 0 ? o->hb_interval_ms : 1000;
    p->retention_days = o->retention_days;
    p->ob = outbox_new(o->name);
    pthread_mutex_init(&p->lock, NULL);
    clock_cond_init(&p->cond);

    bool pub_open = false, rep_open = false;
    if (p->ob != NULL && store_run(p->store, epoch_job, &p->epoch) != 0) {
        p->epoch = epoch_of_bad_store(p->store);
    }
    if (p->ob == NULL || p->epoch == 0) {
        log_error("Cannot read or create the stream epoch",
                  LOG_FIELDS(LOG_S("publisher", o->name)));
        goto fail;
    }
    char epoch_hex[24];
    snprintf(epoch_hex, sizeof epoch_hex, "%016llx", (unsigned long long)p->epoch);
    log_info("Publishing", LOG_FIELDS(LOG_S("publisher", o->name), LOG_S("epoch", epoch_hex)));
    if (nng_pub0_open(&p->pub) != 0) {
        goto fail;
    }
    pub_open = true;
    if (nng_rep0_open(&p->rep) != 0) {
        goto fail;
    }
    rep_open = true;
    nng_socket_set_size(p->rep, NNG_OPT_RECVMAXSZ, 64 * 1024);
    if (listen_on(p->pub, o->pub_url, "pub", o->name) != 0 ||
        listen_on(p->rep, o->replay_url, "replay", o->name) != 0) {
        goto fail;
    }
    if (store_on_commit(p->store, on_commit, p) != 0) {
        goto fail;
    }
    if (pthread_create(&p->sender, NULL, sender_main, p) != 0) {
        goto fail;
    }
    if (pthread_create(&p->replayer, NULL, replayer_main, p) != 0) {
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->sender, NULL);
        goto fail;
    }
    *out = p;
    return 0;
fail:
    if (rep_open) {
        nng_close(p->rep);
    }
    if (pub_open) {
        nng_close(p->pub);
    }
    outbox_free(p->ob);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
    return -1;
}

void bus_pub_close(struct bus_pub *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->sender, NULL);
    /* Closing wakes the replay thread's recv with NNG_ECLOSED. If nng's close is
     * stuck (see bus_sock.h), the replay thread is left blocked as well. */
    if (!bus_sock_close(p->rep, 1000)) {
        pthread_detach(p->replayer);
        bus_sock_close(p->pub, 1000);
        return; /* the replay thread may still touch p: it is left allocated */
    }
    pthread_join(p->replayer, NULL);
    bus_sock_close(p->pub, 1000);
    outbox_free(p->ob);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
}

int bus_pub_append(struct bus_pub *p, sqlite3 *db, enum proto_topic t, const void *data,
                   uint64_t *seq)
{
    return outbox_append(p->ob, db, t, data, seq);
}

uint64_t bus_pub_epoch(const struct bus_pub *p)
{
    return p->epoch;
}

void bus_pub_get_stats(struct bus_pub *p, struct bus_pub_stats *st)
{
    st->sent = atomic_load(&p->sent);
    st->replayed = atomic_load(&p->replayed);
}
