/* bus_sub: open and close, the sockets, and the subscriber thread's loop. The pieces are listed
 * in bus_sub_int.h; cursors, gap detection and replay sit on nng SUB and REQ sockets. */
#include "bus_sub_int.h"
#include "bus_sock.h"
#include "bus_tls.h"
#include "clock.h"
#include "log.h"

#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A live frame, with the name its connection was verified for (cached per pipe). */
static void handle_live(struct bus_sub *s, nng_msg *msg)
{
    nng_pipe p = nng_msg_get_pipe(msg);
    if (p.id != s->peer_pipe) {
        s->peer_pipe = p.id;
        if (bus_endpoint_dialer_peer(nng_pipe_dialer(p), s->peer_name, sizeof s->peer_name) != 0) {
            s->peer_name[0] = '\0';
        }
    }
    bsub_handle_frame(s, nng_msg_body(msg), nng_msg_len(msg), false, s->peer_name);
    nng_msg_free(msg);
}

static void *sub_main(void *arg)
{
    struct bus_sub *s = arg;
    log_set_target(s->name);
    if (s->store != NULL && store_run(s->store, bsub_load_job, s) != 0) {
        log_error("Cannot load bus cursors", LOG_FIELDS(LOG_S("subscriber", s->name)));
    }
    while (!atomic_load(&s->stopping)) {
        bool all = true;
        int64_t now = clock_mono_ms();
        if (s->disc != NULL) {
            bsub_discovery_take(s, now);
        }
        for (int i = 0; i < s->nsrc; i++) {
            struct source *src = &s->src[i];
            if (!src->used) {
                continue;
            }
            if (!src->synced && src->replay_url != NULL && now >= src->next_sync) {
                bsub_sync_source(s, src);
            }
            bool ok = src->synced || src->replay_url == NULL;
            atomic_store(&src->ready, ok);
            all = all && (ok || src->retiring);
        }
        atomic_store(&s->ready, all);
        if (now >= s->next_tick) {
            s->next_tick = now + RECV_POLL_MS;
            bsub_idents_tick(s, now);
            if (s->disc != NULL) {
                bsub_discovery_tick(s, now);
            }
        }

        nng_msg *msg;
        int rc = nng_recvmsg(s->sub, &msg, 0);
        if (rc != 0) {
            bsub_flush(s);
            continue;
        }
        handle_live(s, msg);
        /* Drain what is already queued so a burst commits as one transaction. */
        while (s->nbatch < BATCH_MAX && nng_recvmsg(s->sub, &msg, NNG_FLAG_NONBLOCK) == 0) {
            handle_live(s, msg);
        }
        bsub_flush(s);
    }
    bsub_flush(s);
    return NULL;
}

static void close_requesters(struct bus_sub *s)
{
    pthread_mutex_lock(&s->srclock);
    for (int i = 0; i < s->nsrc; i++) {
        if (s->src[i].replay_url != NULL) {
            bus_sock_close(s->src[i].req, CLOSE_TIMEOUT_MS);
        }
    }
    pthread_mutex_unlock(&s->srclock);
}

/* Free what the subscriber owns, once its thread and sockets are gone. */
static void sub_free(struct bus_sub *s)
{
    for (int i = 0; i < s->nsrc; i++) {
        free(s->src[i].pub_url);
        free(s->src[i].replay_url);
    }
    pthread_mutex_destroy(&s->srclock);
    free(s->batch);
    free(s);
}

int bsub_source_dial(struct bus_sub *s, struct source *src, const char *pub_url,
                     const char *replay_url, const char *peer)
{
    src->used = true;
    src->pub_url = strdup(pub_url);
    src->replay_url = replay_url ? strdup(replay_url) : NULL;
    /* A name is verified only over TLS: on plain tcp:// nothing ties frames to a name. */
    bool tls = strncmp(pub_url, "tls+", 4) == 0;
    snprintf(src->peer, sizeof src->peer, "%s", tls && peer ? peer : "");
    if (src->pub_url == NULL) {
        return -1;
    }
    int rc =
        bus_endpoint_dial_get(s->sub, src->pub_url, src->peer, NNG_FLAG_NONBLOCK, &src->pub_dialer);
    if (rc != 0) {
        log_error("Cannot dial publisher",
                  LOG_FIELDS(LOG_S("url", src->pub_url), LOG_S("error", nng_strerror(rc))));
        return -1;
    }
    if (src->replay_url == NULL) {
        return 0;
    }
    if (nng_req0_open(&src->req) != 0) {
        free(src->replay_url);
        src->replay_url = NULL;
        return -1;
    }
    nng_socket_set_ms(src->req, NNG_OPT_RECVTIMEO, REQ_TIMEOUT_MS);
    /* A request waits this long for the publisher to be connected: not the whole answer
     * time, since the thread also applies the other publishers' live events meanwhile. */
    nng_socket_set_ms(src->req, NNG_OPT_SENDTIMEO, REQ_SEND_TIMEOUT_MS);
    nng_socket_set_size(src->req, NNG_OPT_RECVMAXSZ, 2 * PROTO_REPLAY_MAX_BYTES + PROTO_FRAME_MAX);
    rc = bus_endpoint_dial(src->req, src->replay_url, src->peer, NNG_FLAG_NONBLOCK);
    if (rc != 0) {
        log_error("Cannot dial replay endpoint",
                  LOG_FIELDS(LOG_S("url", src->replay_url), LOG_S("error", nng_strerror(rc))));
        return -1;
    }
    return 0;
}

static int open_sockets(struct bus_sub *s, const struct bus_sub_opts *o)
{
    if (nng_sub0_open(&s->sub) != 0) {
        return -1;
    }
    nng_socket_set_ms(s->sub, NNG_OPT_RECVTIMEO, RECV_POLL_MS);
    nng_socket_set_size(s->sub, NNG_OPT_RECVMAXSZ, PROTO_FRAME_MAX + 1024);
    if (o->recv_buf > 0) {
        nng_socket_set_int(s->sub, NNG_OPT_RECVBUF, o->recv_buf);
    }
    if (s->ntopics == 0) {
        nng_socket_set(s->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0);
    } else {
        for (int i = 0; i < s->ntopics; i++) {
            nng_socket_set(s->sub, NNG_OPT_SUB_SUBSCRIBE, s->topics[i], strlen(s->topics[i]));
        }
        nng_socket_set(s->sub, NNG_OPT_SUB_SUBSCRIBE, "_hb", 3);
    }
    for (int i = 0; i < o->nsources; i++) {
        struct source *src = &s->src[i];
        s->nsrc++;
        if (bsub_source_dial(s, src, o->sources[i].pub_url, o->sources[i].replay_url,
                             o->sources[i].peer_name) != 0) {
            return -1;
        }
    }
    return 0;
}

int bus_sub_open(const struct bus_sub_opts *o, struct bus_sub **out)
{
    if (o->nsources > MAX_SOURCES - BUS_DISCOVER_MAX || o->ntopics > MAX_TOPICS ||
        o->handler == NULL) {
        return -1;
    }
    if (o->store != NULL && store_exec_schema(o->store, bsub_cursor_schema) != 0) {
        return -1;
    }
    struct bus_sub *s = calloc(1, sizeof *s);
    if (s == NULL || (s->batch = calloc(BATCH_MAX + 1, sizeof *s->batch)) == NULL) {
        free(s);
        return -1;
    }
    snprintf(s->name, sizeof s->name, "%s", o->name ? o->name : "subscriber");
    pthread_mutex_init(&s->srclock, NULL);
    snprintf(s->check_name, sizeof s->check_name, "%s: two live publishers share a bus stream name",
             s->name);
    s->store = o->store;
    s->handler = o->handler;
    s->arg = o->arg;
    s->from_now = o->from_now;
    for (int i = 0; i < o->ntopics; i++) {
        snprintf(s->topics[s->ntopics++], PROTO_TOPIC_MAX, "%s", o->topics[i]);
    }
    if (open_sockets(s, o) != 0 ||
        (o->discover != NULL && bsub_discovery_start(s, o->discover) != 0) ||
        pthread_create(&s->thread, NULL, sub_main, s) != 0) {
        atomic_store(&s->stopping, true);
        bsub_discovery_stop(s);
        nng_close(s->sub);
        close_requesters(s);
        sub_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void bus_sub_close(struct bus_sub *s)
{
    if (s == NULL) {
        return;
    }
    atomic_store(&s->stopping, true);
    /* A replay request to an absent publisher blocks for its timeout; closing
     * the REQ sockets ends it now, so shutdown does not wait for it. */
    close_requesters(s);
    pthread_join(s->thread, NULL);
    bsub_discovery_stop(s);
    if (s->store != NULL && s->upsert != NULL) {
        store_run(s->store, bsub_finalize_job, s);
    }
    bus_sock_close(s->sub, CLOSE_TIMEOUT_MS);
    sub_free(s);
}

bool bus_sub_ready(struct bus_sub *s)
{
    return atomic_load(&s->ready);
}

bool bus_sub_streams_ok(void *sub)
{
    struct bus_sub *s = sub;
    return atomic_load(&s->nconflicts) == 0;
}

const char *bus_sub_streams_check(struct bus_sub *s)
{
    return s->check_name;
}

bool bus_sub_source_ready(struct bus_sub *s, int index)
{
    return index >= 0 && index < s->nsrc && atomic_load(&s->src[index].ready);
}

void bus_sub_get_stats(struct bus_sub *s, struct bus_sub_stats *st)
{
    st->applied = atomic_load(&s->applied);
    st->duplicates = atomic_load(&s->duplicates);
    st->replayed = atomic_load(&s->replayed);
    st->gaps = atomic_load(&s->gaps);
}
