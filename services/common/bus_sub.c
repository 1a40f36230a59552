/* bus_sub: cursors, gap detection and replay on top of nng SUB and REQ sockets. */
#include "bus_sub.h"
#include "bus_sock.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SOURCES 16
#define MAX_CURSORS 128
#define MAX_TOPICS 16
#define BATCH_MAX 128
#define RECV_POLL_MS 100
#define REQ_TIMEOUT_MS 3000
#define RESYNC_MS 1000
#define CLOSE_TIMEOUT_MS 1000

static const char cursor_schema[] =
    "CREATE TABLE IF NOT EXISTS bus_cursors("
    "  src TEXT NOT NULL, topic TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  PRIMARY KEY(src, topic)) WITHOUT ROWID;";

struct cursor {
    char src[PROTO_SRC_MAX];
    char topic[PROTO_TOPIC_MAX];
    uint64_t seq;    /* applied and committed */
    uint64_t queued; /* applied, or waiting in the batch */
};

struct source {
    char *pub_url;
    char *replay_url;
    char name[PROTO_SRC_MAX]; /* learned from the replay endpoint or the first frame */
    nng_socket req;
    bool synced;
    atomic_bool ready; /* synced, as other threads may read it */
    int64_t next_sync;
};

struct bus_sub {
    char name[64];
    struct store *store;
    bus_handler handler;
    void *arg;
    struct source src[MAX_SOURCES];
    int nsrc;
    char topics[MAX_TOPICS][PROTO_TOPIC_MAX];
    int ntopics;
    bool from_now;
    nng_socket sub;
    pthread_t thread;
    atomic_bool stopping, ready;
    struct cursor cur[MAX_CURSORS];
    int ncur;
    struct proto_event *batch;
    int nbatch;
    sqlite3_stmt *upsert; /* prepared on the store's writer connection */
    sqlite3 *upsert_db;
    atomic_uint_fast64_t applied, duplicates, replayed, gaps;
    int64_t last_decode_warn;
};

static bool topic_wanted(const struct bus_sub *s, const char *topic)
{
    if (topic[0] == '_') {
        return false; /* control frames are never events */
    }
    if (s->ntopics == 0) {
        return true;
    }
    for (int i = 0; i < s->ntopics; i++) {
        if (strncmp(topic, s->topics[i], strlen(s->topics[i])) == 0) {
            return true;
        }
    }
    return false;
}

static struct cursor *cursor_find(struct bus_sub *s, const char *src, const char *topic,
                                  bool *created)
{
    *created = false;
    for (int i = 0; i < s->ncur; i++) {
        if (strcmp(s->cur[i].src, src) == 0 && strcmp(s->cur[i].topic, topic) == 0) {
            return &s->cur[i];
        }
    }
    if (s->ncur == MAX_CURSORS) {
        return NULL;
    }
    struct cursor *c = &s->cur[s->ncur++];
    memset(c, 0, sizeof *c);
    snprintf(c->src, sizeof c->src, "%s", src);
    snprintf(c->topic, sizeof c->topic, "%s", topic);
    *created = true;
    return c;
}

static struct source *source_named(struct bus_sub *s, const char *name)
{
    struct source *unnamed = NULL;
    int n_unnamed = 0;
    for (int i = 0; i < s->nsrc; i++) {
        if (strcmp(s->src[i].name, name) == 0) {
            return &s->src[i];
        }
        if (s->src[i].name[0] == '\0') {
            unnamed = &s->src[i];
            n_unnamed++;
        }
    }
    /* Without a replay endpoint a source is named by the first frame it sends;
     * that is only unambiguous when a single source is still unnamed. */
    if (n_unnamed == 1) {
        snprintf(unnamed->name, sizeof unnamed->name, "%s", name);
        return unnamed;
    }
    return NULL;
}

/* ---- applying ---- */

static int upsert_cursor(struct bus_sub *s, sqlite3 *db, const char *src, const char *topic,
                         uint64_t seq)
{
    if (s->upsert_db != db) {
        sqlite3_finalize(s->upsert);
        s->upsert = NULL;
        if (sqlite3_prepare_v3(db,
                               "INSERT INTO bus_cursors(src, topic, seq) VALUES(?1,?2,?3) "
                               "ON CONFLICT(src, topic) DO UPDATE SET seq = excluded.seq",
                               -1, SQLITE_PREPARE_PERSISTENT, &s->upsert, NULL) != SQLITE_OK) {
            return -1;
        }
        s->upsert_db = db;
    }
    sqlite3_bind_text(s->upsert, 1, src, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->upsert, 2, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->upsert, 3, (sqlite3_int64)seq);
    int rc = sqlite3_step(s->upsert);
    sqlite3_reset(s->upsert);
    return rc == SQLITE_DONE ? 0 : -1;
}

static const char *topic_of(const struct proto_event *ev)
{
    return proto_topic_name(ev->topic);
}

static int apply_job(sqlite3 *db, void *arg)
{
    struct bus_sub *s = arg;
    for (int i = 0; i < s->nbatch; i++) {
        const struct proto_event *ev = &s->batch[i];
        int rc = s->handler(db, ev, s->arg);
        if (rc < 0) {
            return rc;
        }
        /* One cursor write per run of the same stream, not per event. */
        const struct proto_event *next = i + 1 < s->nbatch ? &s->batch[i + 1] : NULL;
        if (db != NULL &&
            (next == NULL || next->topic != ev->topic || strcmp(next->src, ev->src))) {
            if (upsert_cursor(s, db, ev->src, topic_of(ev), ev->seq) != 0) {
                log_error("Cannot store cursor", LOG_FIELDS(LOG_S("error", sqlite3_errmsg(db))));
                return -1;
            }
        }
    }
    return 0;
}

static int flush(struct bus_sub *s)
{
    if (s->nbatch == 0) {
        return 0;
    }
    int rc = s->store != NULL ? store_run(s->store, apply_job, s) : apply_job(NULL, s);
    bool created;
    for (int i = 0; i < s->nbatch; i++) {
        struct cursor *c = cursor_find(s, s->batch[i].src, topic_of(&s->batch[i]), &created);
        if (rc == 0) {
            c->seq = s->batch[i].seq;
        } else {
            c->queued = c->seq; /* rolled back: the next heartbeat replays these */
        }
    }
    if (rc == 0) {
        atomic_fetch_add(&s->applied, (uint64_t)s->nbatch);
        for (int i = 0; i < s->nbatch; i++) {
            char labels[128];
            snprintf(labels, sizeof labels, "subscriber=\"%s\",topic=\"%s\"", s->name,
                     topic_of(&s->batch[i]));
            metrics_counter_add("leadbus_bus_events_applied_total",
                                "Bus events applied by a subscriber (exactly once)", labels, 1);
        }
    } else {
        log_warn("Applying events failed; will replay them",
                 LOG_FIELDS(LOG_S("subscriber", s->name), LOG_I("events", s->nbatch)));
    }
    s->nbatch = 0;
    return rc;
}

/* ---- replay ---- */

static int roundtrip(struct source *src, const struct proto_replay_req *req, void **rep,
                     size_t *rep_len)
{
    uint8_t *buf;
    size_t len;
    if (proto_replay_req_encode(req, &buf, &len) != PROTO_OK) {
        return -1;
    }
    int rc = nng_send(src->req, buf, len, 0);
    free(buf);
    if (rc == 0) {
        rc = nng_recv(src->req, rep, rep_len, NNG_FLAG_ALLOC);
    }
    return rc == 0 ? 0 : -1;
}

static void handle_frame(struct bus_sub *s, const uint8_t *buf, size_t len, bool from_replay);

static int replay_frame(const uint8_t *frame, size_t len, void *arg)
{
    struct bus_sub *s = arg;
    atomic_fetch_add(&s->replayed, 1);
    char labels[128], topic[PROTO_TOPIC_MAX];
    if (proto_frame_topic(frame, len, topic, sizeof topic) <= 0) {
        snprintf(topic, sizeof topic, "?");
    }
    snprintf(labels, sizeof labels, "subscriber=\"%s\",topic=\"%s\"", s->name, topic);
    metrics_counter_add("leadbus_bus_events_replayed_total",
                        "Bus events a subscriber obtained by replay rather than live", labels, 1);
    handle_frame(s, frame, len, true);
    return 0;
}

/* Bring stream (src, topic) up to `target` from the source's replay endpoint. */
static void catch_up(struct bus_sub *s, struct source *src, struct cursor *c, uint64_t target)
{
    if (src == NULL || src->replay_url == NULL) {
        return;
    }
    while (c->queued < target && !atomic_load(&s->stopping)) {
        uint64_t before = c->queued;
        struct proto_replay_req req = {
            .streams = false, .from = c->queued + 1, .max = PROTO_REPLAY_MAX_EVENTS};
        snprintf(req.topic, sizeof req.topic, "%s", c->topic);
        void *rep;
        size_t rep_len;
        if (roundtrip(src, &req, &rep, &rep_len) != 0) {
            src->synced = false; /* retried from the main loop */
            break;
        }
        bool is_streams;
        char name[PROTO_SRC_MAX];
        struct proto_heartbeat unused;
        int rc = proto_replay_rep_decode(rep, rep_len, &is_streams, name, &unused, replay_frame, s);
        nng_free(rep, rep_len);
        if (rc != PROTO_OK || is_streams || c->queued == before) {
            break;
        }
    }
    flush(s);
}

static void persist_start(struct bus_sub *s, struct cursor *c);

/*
 * A publisher says stream (src, topic) ends at last_seq (heartbeat or stream
 * list): start a "from now" cursor there, or replay what this subscriber lacks.
 */
static void stream_seen(struct bus_sub *s, struct source *src, const char *name,
                        const struct proto_hb_stream *stream, bool count_gap)
{
    if (!topic_wanted(s, stream->topic)) {
        return;
    }
    bool created;
    struct cursor *c = cursor_find(s, name, stream->topic, &created);
    if (c == NULL) {
        return;
    }
    char labels[160];
    snprintf(labels, sizeof labels, "subscriber=\"%s\",publisher=\"%s\",topic=\"%s\"", s->name,
             name, stream->topic);
    metrics_gauge_set(
        "leadbus_bus_subscriber_lag_events",
        "Events a publisher has that the subscriber has not applied (at its heartbeat)", labels,
        stream->last_seq > c->seq ? (double)(stream->last_seq - c->seq) : 0);
    if (created && s->from_now) {
        c->seq = c->queued = stream->last_seq;
        persist_start(s, c);
    } else if (stream->last_seq > c->queued) {
        if (count_gap) {
            atomic_fetch_add(&s->gaps, 1);
        }
        flush(s);
        catch_up(s, src, c, stream->last_seq);
    }
}

static void handle_heartbeat(struct bus_sub *s, const struct proto_event *ev)
{
    struct proto_heartbeat hb = ev->data.heartbeat;
    char from[PROTO_SRC_MAX];
    snprintf(from, sizeof from, "%s", ev->src);
    struct source *src = source_named(s, from);
    for (int i = 0; i < hb.count; i++) {
        stream_seen(s, src, from, &hb.streams[i], true);
    }
}

static void handle_frame(struct bus_sub *s, const uint8_t *buf, size_t len, bool from_replay)
{
    struct proto_event *ev = &s->batch[s->nbatch];
    int rc = proto_frame_decode(buf, len, ev);
    if (rc != PROTO_OK) {
        int64_t now = clock_mono_ms();
        if (now - s->last_decode_warn > 10000) {
            s->last_decode_warn = now;
            log_warn("Dropped an undecodable frame",
                     LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("error", proto_strerror(rc))));
        }
        return;
    }
    if (ev->topic == PROTO_HEARTBEAT) {
        if (!from_replay) {
            handle_heartbeat(s, ev);
        }
        return;
    }
    if (!topic_wanted(s, topic_of(ev))) {
        return;
    }
    bool created;
    struct cursor *c = cursor_find(s, ev->src, topic_of(ev), &created);
    if (c == NULL) {
        return;
    }
    if (created && s->from_now) {
        c->seq = c->queued = ev->seq - 1;
    }
    if (ev->seq <= c->queued) {
        atomic_fetch_add(&s->duplicates, 1);
        return;
    }
    if (ev->seq > c->queued + 1) {
        if (!from_replay) {
            /* Live gap: everything up to and including this event is in the outbox. */
            atomic_fetch_add(&s->gaps, 1);
            uint64_t target = ev->seq;
            flush(s);
            catch_up(s, source_named(s, ev->src), c, target);
            return;
        }
        log_warn("Events no longer retained by the publisher were skipped",
                 LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("src", ev->src),
                            LOG_S("topic", c->topic), LOG_I("from", (long long)c->queued + 1),
                            LOG_I("to", (long long)ev->seq - 1)));
    }
    c->queued = ev->seq;
    s->nbatch++;
    if (s->nbatch == BATCH_MAX) {
        flush(s);
    }
}

/* ---- cursors in the store ---- */

struct persist_args {
    struct bus_sub *s;
    const struct cursor *c;
};

static int persist_job(sqlite3 *db, void *arg)
{
    struct persist_args *a = arg;
    return upsert_cursor(a->s, db, a->c->src, a->c->topic, a->c->seq);
}

static void persist_start(struct bus_sub *s, struct cursor *c)
{
    if (s->store != NULL) {
        struct persist_args a = {s, c};
        store_run(s->store, persist_job, &a);
    }
}

static int load_job(sqlite3 *db, void *arg)
{
    struct bus_sub *s = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT src, topic, seq FROM bus_cursors", -1, &st, NULL) !=
        SQLITE_OK) {
        return -1;
    }
    while (sqlite3_step(st) == SQLITE_ROW && s->ncur < MAX_CURSORS) {
        struct cursor *c = &s->cur[s->ncur++];
        snprintf(c->src, sizeof c->src, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(c->topic, sizeof c->topic, "%s", (const char *)sqlite3_column_text(st, 1));
        c->seq = c->queued = (uint64_t)sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return 0;
}

static int finalize_job(sqlite3 *db, void *arg)
{
    (void)db;
    struct bus_sub *s = arg;
    sqlite3_finalize(s->upsert);
    s->upsert = NULL;
    return 0;
}

/* ---- the subscriber thread ---- */

static void sync_source(struct bus_sub *s, struct source *src)
{
    struct proto_replay_req req = {.streams = true};
    void *rep;
    size_t rep_len;
    if (roundtrip(src, &req, &rep, &rep_len) != 0) {
        src->next_sync = clock_mono_ms() + RESYNC_MS;
        return;
    }
    bool is_streams = false;
    struct proto_heartbeat hb;
    char name[PROTO_SRC_MAX];
    int rc = proto_replay_rep_decode(rep, rep_len, &is_streams, name, &hb, NULL, NULL);
    nng_free(rep, rep_len);
    if (rc != PROTO_OK || !is_streams || name[0] == '\0') {
        src->next_sync = clock_mono_ms() + RESYNC_MS;
        return;
    }
    snprintf(src->name, sizeof src->name, "%s", name);
    src->synced = true;
    for (int i = 0; i < hb.count && src->synced; i++) {
        stream_seen(s, src, name, &hb.streams[i], false);
    }
    if (!src->synced) {
        src->next_sync = clock_mono_ms() + RESYNC_MS;
    }
}

static void *sub_main(void *arg)
{
    struct bus_sub *s = arg;
    log_set_target(s->name);
    if (s->store != NULL && store_run(s->store, load_job, s) != 0) {
        log_error("Cannot load bus cursors", LOG_FIELDS(LOG_S("subscriber", s->name)));
    }
    while (!atomic_load(&s->stopping)) {
        bool all = true;
        int64_t now = clock_mono_ms();
        for (int i = 0; i < s->nsrc; i++) {
            struct source *src = &s->src[i];
            if (!src->synced && src->replay_url != NULL && now >= src->next_sync) {
                sync_source(s, src);
            }
            bool ok = src->synced || src->replay_url == NULL;
            atomic_store(&src->ready, ok);
            all = all && ok;
        }
        atomic_store(&s->ready, all);

        void *buf;
        size_t len;
        int rc = nng_recv(s->sub, &buf, &len, NNG_FLAG_ALLOC);
        if (rc != 0) {
            flush(s);
            continue;
        }
        handle_frame(s, buf, len, false);
        nng_free(buf, len);
        /* Drain what is already queued so a burst commits as one transaction. */
        while (s->nbatch < BATCH_MAX &&
               nng_recv(s->sub, &buf, &len, NNG_FLAG_ALLOC | NNG_FLAG_NONBLOCK) == 0) {
            handle_frame(s, buf, len, false);
            nng_free(buf, len);
        }
        flush(s);
    }
    flush(s);
    return NULL;
}

static void close_requesters(struct bus_sub *s)
{
    for (int i = 0; i < s->nsrc; i++) {
        if (s->src[i].replay_url != NULL) {
            bus_sock_close(s->src[i].req, CLOSE_TIMEOUT_MS);
        }
    }
}

static void free_sources(struct bus_sub *s)
{
    for (int i = 0; i < s->nsrc; i++) {
        free(s->src[i].pub_url);
        free(s->src[i].replay_url);
    }
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
        src->pub_url = strdup(o->sources[i].pub_url);
        src->replay_url = o->sources[i].replay_url ? strdup(o->sources[i].replay_url) : NULL;
        s->nsrc++;
        if (src->pub_url == NULL) {
            return -1;
        }
        /* Non-blocking dials keep retrying in the background until the peer is up. */
        int rc = nng_dial(s->sub, src->pub_url, NULL, NNG_FLAG_NONBLOCK);
        if (rc != 0) {
            log_error("Cannot dial publisher",
                      LOG_FIELDS(LOG_S("url", src->pub_url), LOG_S("error", nng_strerror(rc))));
            return -1;
        }
        if (src->replay_url == NULL) {
            continue;
        }
        if (nng_req0_open(&src->req) != 0) {
            free(src->replay_url);
            src->replay_url = NULL;
            return -1;
        }
        nng_socket_set_ms(src->req, NNG_OPT_RECVTIMEO, REQ_TIMEOUT_MS);
        nng_socket_set_ms(src->req, NNG_OPT_SENDTIMEO, REQ_TIMEOUT_MS);
        nng_socket_set_size(src->req, NNG_OPT_RECVMAXSZ,
                            2 * PROTO_REPLAY_MAX_BYTES + PROTO_FRAME_MAX);
        rc = nng_dial(src->req, src->replay_url, NULL, NNG_FLAG_NONBLOCK);
        if (rc != 0) {
            log_error("Cannot dial replay endpoint",
                      LOG_FIELDS(LOG_S("url", src->replay_url), LOG_S("error", nng_strerror(rc))));
            return -1;
        }
    }
    return 0;
}

int bus_sub_open(const struct bus_sub_opts *o, struct bus_sub **out)
{
    if (o->nsources > MAX_SOURCES || o->ntopics > MAX_TOPICS || o->handler == NULL) {
        return -1;
    }
    if (o->store != NULL && store_exec_schema(o->store, cursor_schema) != 0) {
        return -1;
    }
    struct bus_sub *s = calloc(1, sizeof *s);
    if (s == NULL || (s->batch = calloc(BATCH_MAX + 1, sizeof *s->batch)) == NULL) {
        free(s);
        return -1;
    }
    snprintf(s->name, sizeof s->name, "%s", o->name ? o->name : "subscriber");
    s->store = o->store;
    s->handler = o->handler;
    s->arg = o->arg;
    s->from_now = o->from_now;
    for (int i = 0; i < o->ntopics; i++) {
        snprintf(s->topics[s->ntopics++], PROTO_TOPIC_MAX, "%s", o->topics[i]);
    }
    if (open_sockets(s, o) != 0 || pthread_create(&s->thread, NULL, sub_main, s) != 0) {
        nng_close(s->sub);
        close_requesters(s);
        free_sources(s);
        free(s->batch);
        free(s);
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
    if (s->store != NULL && s->upsert != NULL) {
        store_run(s->store, finalize_job, s);
    }
    bus_sock_close(s->sub, CLOSE_TIMEOUT_MS);
    free_sources(s);
    free(s->batch);
    free(s);
}

bool bus_sub_ready(struct bus_sub *s)
{
    return atomic_load(&s->ready);
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
