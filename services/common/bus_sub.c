/* bus_sub: cursors, gap detection and replay on top of nng SUB and REQ sockets. */
#include "bus_sub.h"
#include "bus_sock.h"
#include "bus_tls.h"
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
#include <time.h>

#define MAX_SOURCES (16 + BUS_DISCOVER_MAX) /* listed, then discovered */
#define MAX_IDENTS 32
#define MAX_CURSORS 128
#define MAX_TOPICS 16
#define BATCH_MAX 128
#define RECV_POLL_MS 100
#define REQ_TIMEOUT_MS 3000
#define REQ_SEND_TIMEOUT_MS 250
#define RESYNC_MS 1000
#define CLOSE_TIMEOUT_MS 1000
#define CONFLICT_LOG_MS 1000

/* epoch: the publisher's stream epoch the cursor belongs to (0: not known; cursors from before
 * epochs existed get the column with 0 through load_job). */
static const char cursor_schema[] =
    "CREATE TABLE IF NOT EXISTS bus_cursors("
    "  src TEXT NOT NULL, topic TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  epoch INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(src, topic)) WITHOUT ROWID;";

struct cursor {
    char src[PROTO_SRC_MAX];
    char topic[PROTO_TOPIC_MAX];
    uint64_t seq;    /* applied and committed */
    uint64_t queued; /* applied, or waiting in the batch */
};

/* A publisher name's stream identity (sub thread only). */
struct ident_slot {
    char src[PROTO_SRC_MAX];
    struct bus_ident id;
    bool conflict;         /* reported as a conflict (counted in nconflicts) */
    int64_t last_error_ms; /* the last conflict ERROR line */
};

struct source {
    char *pub_url;
    char *replay_url;
    char peer[PROTO_SRC_MAX]; /* the name its TLS certificate must carry; "": any from the CA */
    char name[PROTO_SRC_MAX]; /* learned from the replay endpoint or the first frame */
    uint64_t epoch;           /* learned from the replay endpoint; 0: not known */
    nng_socket req;
    bool synced;
    atomic_bool ready; /* synced, as other threads may read it */
    int64_t next_sync;
    bool used;                          /* a slot of a dropped discovered source is not */
    bool discovered;                    /* found by DNS: may retire */
    char addr[BUS_DISCOVER_ADDR_MAX];   /* its address, when discovered */
    nng_dialer pub_dialer;              /* its dialer on the SUB socket, to close it alone */
    bool retiring;                      /* left the DNS answer: followed until it stops */
    bool drained;                       /* retiring: its last stream list was applied to its end */
    int64_t unreachable_ms, next_drain; /* retiring: since when it has not answered (0: it has) */
    struct proto_heartbeat heads;       /* retiring: its stream ends at its last answer, */
    bool heads_known;                   /* if it answered since it left DNS */
};

/* Discovery: the resolver thread's latest answer, read by the sub thread (under `lock`). */
struct discovery {
    struct bus_discover d;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    char addrs[BUS_DISCOVER_MAX][BUS_DISCOVER_ADDR_MAX];
    int n;               /* -1: the resolver failed */
    char err[128];       /* why */
    uint64_t gen, taken; /* answers given, and taken by the sub thread */
    int nfound;          /* addresses in the answer taken (-1: failed) */
    atomic_bool ok;      /* for bus_sub_discovery_ok() */
    int64_t last_warn;
};

struct bus_sub {
    char name[64];
    struct store *store;
    bus_handler handler;
    void *arg;
    struct source src[MAX_SOURCES];
    int nsrc;
    pthread_mutex_t srclock; /* discovered sources' sockets opened or closed vs bus_sub_close */
    struct discovery *disc;  /* NULL: no discovery */
    char topics[MAX_TOPICS][PROTO_TOPIC_MAX];
    int ntopics;
    bool from_now;
    nng_socket sub;
    pthread_t thread;
    atomic_bool stopping, ready;
    struct cursor cur[MAX_CURSORS];
    int ncur;
    struct ident_slot idents[MAX_IDENTS];
    int nidents;
    const struct source *replaying; /* the source catch_up is reading from, or NULL */
    int64_t next_resync_all;        /* rate limit of resyncs for a name no source has */
    int64_t next_tick;              /* of idents_tick */
    atomic_int nconflicts;          /* idents in conflict */
    char check_name[128];           /* of the /readyz check, fixed at open */
    struct proto_event *batch;
    int nbatch;
    sqlite3_stmt *upsert; /* prepared on the store's writer connection */
    sqlite3 *upsert_db;
    atomic_uint_fast64_t applied, duplicates, replayed, gaps;
    int64_t last_decode_warn;
    int64_t last_identity_error_ms; /* of the last identity_refused() ERROR */
    uint32_t peer_pipe;             /* the pipe whose verified name is in peer_name (0: none) */
    char peer_name[PROTO_SRC_MAX];
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

/* The source publishing `name`; with two of that name, the one whose epoch is `epoch`. */
static struct source *source_for(struct bus_sub *s, const char *name, uint64_t epoch)
{
    struct source *unnamed = NULL, *named = NULL;
    int n_unnamed = 0;
    struct source *match = NULL;
    for (int i = 0; i < s->nsrc; i++) {
        if (!s->src[i].used) {
            continue;
        }
        if (strcmp(s->src[i].name, name) == 0) {
            if (epoch == 0 || s->src[i].epoch == epoch) {
                /* A replica found again at a new address: its retiring old one may be dead. */
                if (s->src[i].synced && !s->src[i].retiring) {
                    return &s->src[i];
                }
                match = match != NULL ? match : &s->src[i];
                continue;
            }
            named = named != NULL ? named : &s->src[i];
            continue;
        }
        if (s->src[i].name[0] == '\0' && s->src[i].replay_url == NULL) {
            unnamed = &s->src[i]; /* a source with a replay endpoint learns its name from it */
            n_unnamed++;
        }
    }
    if (match != NULL) {
        return match;
    }
    if (named != NULL) {
        return named;
    }
    /* Without a replay endpoint a source is named by the first frame it sends;
     * that is only unambiguous when a single source is still unnamed. */
    if (n_unnamed == 1) {
        snprintf(unnamed->name, sizeof unnamed->name, "%s", name);
        return unnamed;
    }
    return NULL;
}

/* ---- stream identity: the decision (pure) ---- */

const char *bus_verdict_name(enum bus_verdict v)
{
    switch (v) {
    case BUS_APPLY:
        return "apply";
    case BUS_DUPLICATE:
        return "duplicate";
    case BUS_GAP:
        return "gap";
    case BUS_HOLD:
        return "hold";
    case BUS_RESET:
        return "reset";
    case BUS_CONFLICT:
        return "conflict";
    }
    return "?";
}

static enum bus_verdict seq_verdict(uint64_t cursor, uint64_t seq, bool head)
{
    if (head) { /* a publisher's last seq never goes back: one that does is a restored store */
        return seq < cursor ? BUS_RESET : seq == cursor ? BUS_DUPLICATE : BUS_GAP;
    }
    return seq <= cursor ? BUS_DUPLICATE : seq == cursor + 1 ? BUS_APPLY : BUS_GAP;
}

enum bus_verdict bus_stream_decide(struct bus_ident *id, uint64_t cursor, uint64_t epoch,
                                   uint64_t seq, bool head, int64_t now_ms)
{
    if (epoch == 0 || id->epoch == 0 || epoch == id->epoch) {
        if (epoch != 0) {
            id->epoch = epoch; /* adopted when none was known: a new or pre-epoch cursor */
            id->seen_ms = now_ms;
        }
        return seq_verdict(cursor, seq, head);
    }
    if (id->rival != epoch) {
        id->rival = epoch;
        id->rival_first_ms = now_ms;
        id->rival_heads = 0;
    }
    id->rival_seen_ms = now_ms;
    id->rival_heads += head ? 1 : 0;
    bool followed_since = id->seen_ms != 0 && id->seen_ms >= id->rival_first_ms;
    if (followed_since && now_ms - id->seen_ms < BUS_CONFLICT_WINDOW_MS) {
        return BUS_CONFLICT;
    }
    if (now_ms - id->rival_first_ms < BUS_RESET_SETTLE_MS || id->rival_heads < BUS_RESET_HEADS) {
        return BUS_HOLD;
    }
    id->epoch = epoch;
    id->seen_ms = now_ms;
    id->rival = 0;
    id->rival_first_ms = id->rival_seen_ms = 0;
    id->rival_heads = 0;
    return BUS_RESET;
}

bool bus_ident_conflict(const struct bus_ident *id, int64_t now_ms)
{
    return id->rival != 0 && id->seen_ms != 0 && id->seen_ms >= id->rival_first_ms &&
           now_ms - id->seen_ms < BUS_CONFLICT_WINDOW_MS &&
           now_ms - id->rival_seen_ms < BUS_CONFLICT_WINDOW_MS;
}

bool bus_ident_expire(struct bus_ident *id, int64_t now_ms)
{
    if (id->rival == 0 || now_ms - id->rival_seen_ms < BUS_CONFLICT_WINDOW_MS) {
        return false;
    }
    id->rival = 0;
    id->rival_first_ms = id->rival_seen_ms = 0;
    id->rival_heads = 0;
    return true;
}

/* ---- stream identity: the subscriber's side ---- */

static struct ident_slot *ident_find(struct bus_sub *s, const char *src)
{
    for (int i = 0; i < s->nidents; i++) {
        if (strcmp(s->idents[i].src, src) == 0) {
            return &s->idents[i];
        }
    }
    if (s->nidents == MAX_IDENTS) {
        return NULL;
    }
    struct ident_slot *is = &s->idents[s->nidents++];
    memset(is, 0, sizeof *is);
    snprintf(is->src, sizeof is->src, "%s", src);
    return is;
}

/* Also called on the writer thread while the sub thread waits in store_run: finds, never adds. */
static uint64_t epoch_of(const struct bus_sub *s, const char *src)
{
    for (int i = 0; i < s->nidents; i++) {
        if (strcmp(s->idents[i].src, src) == 0) {
            return s->idents[i].id.epoch;
        }
    }
    return 0;
}

static void hex64(uint64_t v, char out[24])
{
    snprintf(out, 24, "%016llx", (unsigned long long)v);
}

static void conflict_seen(struct bus_sub *s, struct ident_slot *is, int64_t now)
{
    char labels[160];
    snprintf(labels, sizeof labels, "subscriber=\"%s\",publisher=\"%s\"", s->name, is->src);
    if (!is->conflict) {
        is->conflict = true;
        atomic_fetch_add(&s->nconflicts, 1);
        metrics_gauge_set("leadbus_bus_stream_conflict",
                          "1 while two live publishers share a stream name (one is refused)",
                          labels, 1);
    }
    if (now - is->last_error_ms < CONFLICT_LOG_MS) {
        return;
    }
    is->last_error_ms = now;
    char followed[24], other[24];
    hex64(is->id.epoch, followed);
    hex64(is->id.rival, other);
    log_error("Two live publishers share one stream name: following the first, refusing the "
              "other's events until one of them is renamed",
              LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("publisher", is->src),
                         LOG_S("epoch", followed), LOG_S("otherEpoch", other)));
}

/* Once a second or so: forget rivals gone silent, end conflicts that are over. */
static void idents_tick(struct bus_sub *s, int64_t now)
{
    for (int i = 0; i < s->nidents; i++) {
        struct ident_slot *is = &s->idents[i];
        bus_ident_expire(&is->id, now);
        if (!is->conflict || bus_ident_conflict(&is->id, now)) {
            continue;
        }
        is->conflict = false;
        char labels[160];
        snprintf(labels, sizeof labels, "subscriber=\"%s\",publisher=\"%s\"", s->name, is->src);
        metrics_gauge_set("leadbus_bus_stream_conflict",
                          "1 while two live publishers share a stream name (one is refused)",
                          labels, 0);
        atomic_fetch_sub(&s->nconflicts, 1); /* after the gauge: ready means the metric says 0 */
        log_warn("Only one publisher of the name is left alive",
                 LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("publisher", is->src)));
    }
}

/* ---- applying ---- */

static int upsert_cursor(struct bus_sub *s, sqlite3 *db, const char *src, const char *topic,
                         uint64_t seq, uint64_t epoch)
{
    if (s->upsert_db != db) {
        sqlite3_finalize(s->upsert);
        s->upsert = NULL;
        if (sqlite3_prepare_v3(
                db,
                "INSERT INTO bus_cursors(src, topic, seq, epoch) VALUES(?1,?2,?3,?4) "
                "ON CONFLICT(src, topic) DO UPDATE SET seq = excluded.seq,"
                " epoch = excluded.epoch",
                -1, SQLITE_PREPARE_PERSISTENT, &s->upsert, NULL) != SQLITE_OK) {
            return -1;
        }
        s->upsert_db = db;
    }
    sqlite3_bind_text(s->upsert, 1, src, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->upsert, 2, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->upsert, 3, (sqlite3_int64)seq);
    sqlite3_bind_int64(s->upsert, 4, (sqlite3_int64)epoch);
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
            if (upsert_cursor(s, db, ev->src, topic_of(ev), ev->seq, epoch_of(s, ev->src)) != 0) {
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

static void handle_frame(struct bus_sub *s, const uint8_t *buf, size_t len, bool from_replay,
                         const char *peer);

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
    handle_frame(s, frame, len, true, NULL);
    return 0;
}

/* Bring stream (src, topic) up to `target` from the source's replay endpoint. */
static void catch_up(struct bus_sub *s, struct source *src, struct cursor *c, uint64_t target)
{
    if (src == NULL || src->replay_url == NULL) {
        return;
    }
    s->replaying = src;
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
        int rc = proto_replay_rep_decode(rep, rep_len, &is_streams, name, NULL, &unused,
                                         replay_frame, s);
        nng_free(rep, rep_len);
        if (rc != PROTO_OK || is_streams || c->queued == before) {
            break;
        }
    }
    s->replaying = NULL;
    flush(s);
}

/* Resynchronise every source with a replay endpoint that publishes `name` (NULL: all of them). */
static void resync_sources(struct bus_sub *s, const char *name)
{
    for (int i = 0; i < s->nsrc; i++) {
        struct source *src = &s->src[i];
        if (src->replay_url != NULL && (name == NULL || strcmp(src->name, name) == 0)) {
            src->synced = false;
            src->next_sync = 0;
        }
    }
}

struct reset_args {
    struct bus_sub *s;
    const char *src;
    uint64_t epoch;
};

static int reset_job(sqlite3 *db, void *arg)
{
    struct reset_args *a = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "UPDATE bus_cursors SET seq = 0, epoch = ?2 WHERE src = ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, a->src, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)a->epoch);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Publisher `is->src` was reset (its epoch is now is->id.epoch; it was `old`): say so, forget its
 * cursors and read its streams again from seq 1. `why` is the stream head that went back, if any.
 */
static void stream_reset(struct bus_sub *s, struct ident_slot *is, uint64_t old,
                         const struct proto_hb_stream *why, uint64_t cursor)
{
    flush(s);
    char was[24], now[24], labels[160];
    hex64(old, was);
    hex64(is->id.epoch, now);
    if (why == NULL) {
        log_error("Publisher stream reset: a new epoch under a known name (its store was replaced "
                  "or deleted); applying its events from seq 1",
                  LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("publisher", is->src),
                             LOG_S("oldEpoch", was), LOG_S("newEpoch", now)));
    } else {
        log_error("Publisher stream went back (its store was restored from an older copy?); "
                  "applying its events again from seq 1",
                  LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("publisher", is->src),
                             LOG_S("oldEpoch", was), LOG_S("newEpoch", now),
                             LOG_S("topic", why->topic), LOG_I("cursor", (long long)cursor),
                             LOG_I("lastSeq", (long long)why->last_seq)));
    }
    snprintf(labels, sizeof labels, "subscriber=\"%s\",publisher=\"%s\"", s->name, is->src);
    metrics_counter_add("leadbus_bus_stream_resets_total",
                        "Publisher streams found reset (new epoch, or a stream gone back)", labels,
                        1);
    for (int i = 0; i < s->ncur; i++) {
        if (strcmp(s->cur[i].src, is->src) == 0) {
            s->cur[i].seq = s->cur[i].queued = 0;
        }
    }
    struct reset_args a = {s, is->src, is->id.epoch};
    if (s->store != NULL && store_run(s->store, reset_job, &a) != 0) {
        log_error("Cannot store reset cursors; they are kept in memory",
                  LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("publisher", is->src)));
    }
    resync_sources(s, is->src);
}

/*
 * The identity half of a heartbeat or stream list: true if its streams may be read (the epoch
 * is the one followed), false if it was held back, refused, or a reset was started.
 */
static bool ident_ok(struct bus_sub *s, struct ident_slot *is, uint64_t epoch)
{
    uint64_t old = is->id.epoch;
    switch (bus_stream_decide(&is->id, 0, epoch, 0, true, clock_mono_ms())) {
    case BUS_RESET:
        stream_reset(s, is, old, NULL, 0);
        return false;
    case BUS_CONFLICT:
        conflict_seen(s, is, clock_mono_ms());
        return false;
    case BUS_HOLD:
        return false;
    default:
        return true;
    }
}

static void persist_start(struct bus_sub *s, struct cursor *c);
static void sync_source(struct bus_sub *s, struct source *src);

/*
 * A publisher says stream (src, topic) ends at last_seq (heartbeat or stream
 * list): start a "from now" cursor there, or replay what this subscriber lacks.
 * Returns false if the stream is behind the cursor: a stream list then says
 * the publisher's streams were reset; a heartbeat may only be older than a
 * replay answer already applied, so the stream list is asked for.
 */
static bool stream_seen(struct bus_sub *s, struct source *src, struct ident_slot *is,
                        const struct proto_hb_stream *stream, bool heartbeat)
{
    if (!topic_wanted(s, stream->topic)) {
        return true;
    }
    bool created;
    struct cursor *c = cursor_find(s, is->src, stream->topic, &created);
    if (c == NULL) {
        return true;
    }
    char labels[200];
    snprintf(labels, sizeof labels, "subscriber=\"%s\",publisher=\"%s\",topic=\"%s\"", s->name,
             is->src, stream->topic);
    metrics_gauge_set(
        "leadbus_bus_subscriber_lag_events",
        "Events a publisher has that the subscriber has not applied (at its heartbeat)", labels,
        stream->last_seq > c->seq ? (double)(stream->last_seq - c->seq) : 0);
    if (created && s->from_now) {
        c->seq = c->queued = stream->last_seq;
        persist_start(s, c);
        return true;
    }
    enum bus_verdict v = bus_stream_decide(&is->id, c->queued, is->id.epoch, stream->last_seq, true,
                                           clock_mono_ms());
    if (v == BUS_RESET && heartbeat) {
        if (src != NULL && src->replay_url != NULL) {
            sync_source(s, src);
        }
        return false;
    }
    if (v == BUS_RESET) {
        stream_reset(s, is, is->id.epoch, stream, c->queued);
        return false;
    }
    if (v == BUS_GAP) {
        if (heartbeat) {
            atomic_fetch_add(&s->gaps, 1);
        }
        flush(s);
        catch_up(s, src, c, stream->last_seq);
    }
    return true;
}

static void handle_heartbeat(struct bus_sub *s, const struct proto_event *ev)
{
    struct proto_heartbeat hb = ev->data.heartbeat;
    char from[PROTO_SRC_MAX];
    snprintf(from, sizeof from, "%s", ev->src);
    struct ident_slot *is = ident_find(s, from);
    if (is == NULL || !ident_ok(s, is, ev->epoch)) {
        return;
    }
    struct source *src = source_for(s, from, is->id.epoch);
    int64_t now = clock_mono_ms();
    if (src == NULL && now >= s->next_resync_all) {
        /* A name no source has: a publisher was renamed. Ask every replay endpoint again. */
        s->next_resync_all = now + RESYNC_MS;
        resync_sources(s, NULL);
    }
    for (int i = 0; i < hb.count; i++) {
        if (!stream_seen(s, src, is, &hb.streams[i], true)) {
            return;
        }
    }
}

/* An event's identity and position: what to do with it. */
static enum bus_verdict frame_verdict(struct bus_sub *s, const struct proto_event *ev,
                                      const struct cursor *c)
{
    struct ident_slot *is = ident_find(s, ev->src);
    if (is == NULL) {
        return seq_verdict(c->queued, ev->seq, false);
    }
    uint64_t old = is->id.epoch;
    enum bus_verdict v =
        bus_stream_decide(&is->id, c->queued, ev->epoch, ev->seq, false, clock_mono_ms());
    if (v == BUS_RESET) {
        stream_reset(s, is, old, NULL, 0);
    } else if (v == BUS_CONFLICT) {
        conflict_seen(s, is, clock_mono_ms());
    }
    return v;
}

/*
 * Frames tied to certificate identity: a listed publisher's connection was verified for its
 * stream name (bus_tls.h), so its frames must carry that name. Discovered publishers are verified
 * for the discovery name only; their stream names are learned. True if `src` may come from a
 * connection verified for `peer` ("" or NULL: not verified for a name).
 */
static bool frame_identity_ok(struct bus_sub *s, const char *peer, const char *src)
{
    if (peer == NULL || peer[0] == '\0' || strcmp(peer, src) == 0) {
        return true;
    }
    for (int i = 0; i < s->nsrc; i++) {
        if (s->src[i].used && s->src[i].discovered && strcmp(s->src[i].peer, peer) == 0) {
            return true;
        }
    }
    return false;
}

/* A publisher verified for `peer` sent frames or a stream list of stream `src`: refused, loudly. */
static void identity_refused(struct bus_sub *s, const char *peer, const char *src)
{
    char labels[200];
    snprintf(labels, sizeof labels, "subscriber=\"%s\",peer=\"%s\"", s->name, peer);
    metrics_counter_add("leadbus_bus_frames_refused_total",
                        "Bus frames refused: they name another stream than the publisher's "
                        "certificate",
                        labels, 1);
    int64_t now = clock_mono_ms();
    if (now - s->last_identity_error_ms < CONFLICT_LOG_MS) {
        return;
    }
    s->last_identity_error_ms = now;
    log_error(
        "Bus frames refused: the publisher's certificate is for another stream than the "
        "frames name (a publisher with a stolen or misissued certificate, or a wrong "
        "BUS_*_NAME)",
        LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("certificate", peer), LOG_S("stream", src)));
}

static void handle_frame(struct bus_sub *s, const uint8_t *buf, size_t len, bool from_replay,
                         const char *peer)
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
    if (!frame_identity_ok(s, peer, ev->src)) {
        identity_refused(s, peer, ev->src);
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
    if (from_replay && s->replaying != NULL && s->replaying->name[0] != '\0') {
        /* A renamed publisher's older events carry its old name: they are its stream's. */
        snprintf(ev->src, sizeof ev->src, "%s", s->replaying->name);
    }
    bool created;
    struct cursor *c = cursor_find(s, ev->src, topic_of(ev), &created);
    if (c == NULL) {
        return;
    }
    if (created && s->from_now) {
        c->seq = c->queued = ev->seq - 1;
    }
    switch (frame_verdict(s, ev, c)) {
    case BUS_DUPLICATE:
        atomic_fetch_add(&s->duplicates, 1);
        return;
    case BUS_HOLD:
    case BUS_CONFLICT:
    case BUS_RESET: /* the reset replays the stream from seq 1, this event included */
        return;
    case BUS_GAP:
        if (!from_replay) {
            /* Live gap: everything up to and including this event is in the outbox. */
            atomic_fetch_add(&s->gaps, 1);
            uint64_t target = ev->seq;
            flush(s);
            catch_up(s, source_for(s, ev->src, ev->epoch), c, target);
            return;
        }
        log_warn("Events no longer retained by the publisher were skipped",
                 LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("src", ev->src),
                            LOG_S("topic", c->topic), LOG_I("from", (long long)c->queued + 1),
                            LOG_I("to", (long long)ev->seq - 1)));
        break;
    case BUS_APPLY:
        break;
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
    return upsert_cursor(a->s, db, a->c->src, a->c->topic, a->c->seq, epoch_of(a->s, a->c->src));
}

static void persist_start(struct bus_sub *s, struct cursor *c)
{
    if (s->store != NULL) {
        struct persist_args a = {s, c};
        store_run(s->store, persist_job, &a);
    }
}

/* Cursors stored before epochs existed lack the column: add it (their epoch is then unknown). */
static int migrate(sqlite3 *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT epoch FROM bus_cursors LIMIT 0", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_finalize(st);
        return 0;
    }
    return sqlite3_exec(db, "ALTER TABLE bus_cursors ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0",
                        NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : -1;
}

static int load_job(sqlite3 *db, void *arg)
{
    struct bus_sub *s = arg;
    sqlite3_stmt *st;
    if (migrate(db) != 0 || sqlite3_prepare_v2(db, "SELECT src, topic, seq, epoch FROM bus_cursors",
                                               -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    while (sqlite3_step(st) == SQLITE_ROW && s->ncur < MAX_CURSORS) {
        struct cursor *c = &s->cur[s->ncur++];
        snprintf(c->src, sizeof c->src, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(c->topic, sizeof c->topic, "%s", (const char *)sqlite3_column_text(st, 1));
        c->seq = c->queued = (uint64_t)sqlite3_column_int64(st, 2);
        struct ident_slot *is = ident_find(s, c->src);
        if (is != NULL && is->id.epoch == 0) {
            is->id.epoch = (uint64_t)sqlite3_column_int64(st, 3);
        }
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
    uint64_t epoch = 0;
    int rc = proto_replay_rep_decode(rep, rep_len, &is_streams, name, &epoch, &hb, NULL, NULL);
    nng_free(rep, rep_len);
    bool named = rc == PROTO_OK && is_streams && name[0] != '\0';
    struct ident_slot *is = named ? ident_find(s, name) : NULL;
    if (is == NULL) {
        src->next_sync = clock_mono_ms() + RESYNC_MS;
        return;
    }
    if (!src->discovered && !frame_identity_ok(s, src->peer, name)) {
        identity_refused(s, src->peer, name);
        src->next_sync = clock_mono_ms() + RESYNC_MS;
        return;
    }
    snprintf(src->name, sizeof src->name, "%s", name);
    src->epoch = epoch;
    src->synced = true;
    if (!ident_ok(s, is, epoch)) {
        return; /* held back or refused (synced: heartbeats go on), or reset (resynced) */
    }
    for (int i = 0; i < hb.count && src->synced; i++) {
        if (!stream_seen(s, src, is, &hb.streams[i], false)) {
            return;
        }
    }
    if (!src->synced) {
        src->next_sync = clock_mono_ms() + RESYNC_MS;
    }
}

/* ---- discovery: publishers found by DNS ---- */

static int source_dial(struct bus_sub *s, struct source *src, const char *pub_url,
                       const char *replay_url, const char *peer);

static void *disc_main(void *arg)
{
    struct bus_sub *s = arg;
    struct discovery *dc = s->disc;
    log_set_target(s->name);
    pthread_mutex_lock(&dc->lock);
    while (!atomic_load(&s->stopping)) {
        pthread_mutex_unlock(&dc->lock);
        char addrs[BUS_DISCOVER_MAX][BUS_DISCOVER_ADDR_MAX], err[128] = "";
        int n = bus_discover_resolve(&dc->d, addrs, err, sizeof err);
        pthread_mutex_lock(&dc->lock);
        dc->n = n;
        if (n > 0) {
            memcpy(dc->addrs, addrs, (size_t)n * sizeof addrs[0]);
        }
        snprintf(dc->err, sizeof dc->err, "%s", err);
        dc->gen++;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + (int64_t)dc->d.interval_ms * 1000000;
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        while (!atomic_load(&s->stopping) &&
               pthread_cond_timedwait(&dc->wake, &dc->lock, &until) == 0) {
        }
    }
    pthread_mutex_unlock(&dc->lock);
    return NULL;
}

static void source_log(const struct source *src, const char *msg, bool warn)
{
    log_write(warn ? LOG_WARN : LOG_INFO, msg,
              LOG_FIELDS(LOG_S("address", src->addr), LOG_S("url", src->pub_url),
                         LOG_S("stream", src->name[0] ? src->name : "(not known yet)")));
}

/* Close and forget discovered source `src` (sub thread). */
static void source_drop(struct bus_sub *s, struct source *src, const char *why, bool warn)
{
    source_log(src, why, warn);
    pthread_mutex_lock(&s->srclock);
    bus_endpoint_dialer_close(src->pub_dialer);
    if (src->replay_url != NULL) {
        bus_sock_close(src->req, CLOSE_TIMEOUT_MS);
    }
    free(src->pub_url);
    free(src->replay_url);
    memset(src, 0, sizeof *src);
    while (s->nsrc > 0 && !s->src[s->nsrc - 1].used) {
        s->nsrc--;
    }
    pthread_mutex_unlock(&s->srclock);
}

static void source_add_discovered(struct bus_sub *s, const char *addr)
{
    struct discovery *dc = s->disc;
    struct source *src = NULL;
    for (int i = 0; i < MAX_SOURCES && src == NULL; i++) {
        src = s->src[i].used ? NULL : &s->src[i];
    }
    if (src == NULL) {
        log_error("Too many bus publishers: one found by DNS is not dialled",
                  LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("address", addr),
                             LOG_I("max", MAX_SOURCES)));
        return;
    }
    char pub[128], replay[128];
    bus_discover_url(&dc->d, addr, false, pub, sizeof pub);
    bus_discover_url(&dc->d, addr, true, replay, sizeof replay);
    int idx = (int)(src - s->src);
    pthread_mutex_lock(&s->srclock); /* bus_sub_close may be closing requesters meanwhile */
    if (idx >= s->nsrc) {
        s->nsrc = idx + 1;
    }
    src->discovered = true;
    snprintf(src->addr, sizeof src->addr, "%.*s", BUS_DISCOVER_ADDR_MAX - 1, addr);
    /* The certificate must carry the name dialled (bus_discover.h), not the stream's name. */
    int rc = source_dial(s, src, pub, replay, dc->d.host);
    pthread_mutex_unlock(&s->srclock);
    if (rc != 0) {
        source_drop(s, src, "Cannot dial a bus publisher found by DNS", true);
        return;
    }
    source_log(src, "Bus publisher found by DNS: dialling it", false);
}

/* Take the resolver's latest answer (sub thread): dial new addresses, retire vanished ones. */
static void discovery_take(struct bus_sub *s, int64_t now)
{
    struct discovery *dc = s->disc;
    char addrs[BUS_DISCOVER_MAX][BUS_DISCOVER_ADDR_MAX], err[128];
    pthread_mutex_lock(&dc->lock);
    bool fresh = dc->gen != dc->taken;
    int n = dc->n;
    dc->taken = dc->gen;
    if (n > 0) {
        memcpy(addrs, dc->addrs, (size_t)n * sizeof addrs[0]);
    }
    snprintf(err, sizeof err, "%s", dc->err);
    pthread_mutex_unlock(&dc->lock);
    if (!fresh || atomic_load(&s->stopping)) {
        return;
    }
    char labels[400];
    snprintf(labels, sizeof labels, "subscriber=\"%s\",name=\"%s\"", s->name, dc->d.host);
    dc->nfound = n;
    if (n <= 0) {
        metrics_counter_add("leadbus_bus_discover_failures_total",
                            "Resolutions of a bus discovery name that failed or found no address",
                            labels, 1);
        if (now - dc->last_warn >= 30000 || dc->last_warn == 0) {
            dc->last_warn = now;
            log_warn(n < 0 ? "Cannot resolve the bus publishers' name; keeping those known"
                           : "The bus publishers' name has no address: no publisher to dial",
                     LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("name", dc->d.host),
                                LOG_S("error", n < 0 ? err : "no A/AAAA record")));
        }
        if (n < 0) {
            return; /* a resolver outage says nothing about the publishers */
        }
    }
    metrics_gauge_set("leadbus_bus_discovered_publishers",
                      "Addresses the last resolution of a bus discovery name found", labels, n);
    for (int i = 0; i < s->nsrc; i++) {
        struct source *src = &s->src[i];
        if (!src->used || !src->discovered) {
            continue;
        }
        bool present = bus_discover_has(addrs, n, src->addr);
        if (!present && !src->retiring) {
            src->retiring = true;
            src->drained = false;
            src->heads_known = false;
            src->unreachable_ms = 0;
            src->next_drain = 0;
            source_log(src, "Bus publisher left the DNS answer: following it until it stops",
                       false);
        } else if (present && src->retiring) {
            src->retiring = false;
            source_log(src, "Bus publisher is back in the DNS answer", false);
        }
    }
    for (int i = 0; i < n; i++) {
        bool known = false;
        for (int j = 0; j < s->nsrc && !known; j++) {
            known = s->src[j].used && s->src[j].discovered && !strcmp(s->src[j].addr, addrs[i]);
        }
        if (!known) {
            source_add_discovered(s, addrs[i]);
        }
    }
}

enum drain_state { DRAIN_UNREACHABLE, DRAIN_BEHIND, DRAIN_DONE };

/*
 * Whether retiring source `src` has anything left for this subscriber: its stream list read now,
 * every wanted stream caught up to its end (replaying what is missing on the way).
 */
static enum drain_state source_drain(struct bus_sub *s, struct source *src)
{
    struct proto_replay_req req = {.streams = true};
    void *rep;
    size_t rep_len;
    if (roundtrip(src, &req, &rep, &rep_len) != 0) {
        return DRAIN_UNREACHABLE;
    }
    bool is_streams = false;
    struct proto_heartbeat hb;
    char name[PROTO_SRC_MAX];
    uint64_t epoch = 0;
    int rc = proto_replay_rep_decode(rep, rep_len, &is_streams, name, &epoch, &hb, NULL, NULL);
    nng_free(rep, rep_len);
    struct ident_slot *is = rc == PROTO_OK && is_streams && name[0] ? ident_find(s, name) : NULL;
    if (is == NULL || !ident_ok(s, is, epoch)) {
        return DRAIN_BEHIND;
    }
    snprintf(src->name, sizeof src->name, "%s", name);
    src->epoch = epoch;
    src->heads = hb;
    src->heads_known = true;
    for (int i = 0; i < hb.count; i++) {
        if (!stream_seen(s, src, is, &hb.streams[i], false)) {
            return DRAIN_BEHIND;
        }
    }
    flush(s);
    for (int i = 0; i < hb.count; i++) {
        bool created;
        struct cursor *c = topic_wanted(s, hb.streams[i].topic)
                               ? cursor_find(s, is->src, hb.streams[i].topic, &created)
                               : NULL;
        if (c != NULL && c->seq < hb.streams[i].last_seq && !s->from_now) {
            return DRAIN_BEHIND;
        }
    }
    return DRAIN_DONE;
}

/* Whether every wanted stream of `src` is applied up to where its last answer said it ended
 * (events that came live since then count too: the cursors only move forward). */
static bool heads_applied(struct bus_sub *s, const struct source *src)
{
    if (!src->heads_known || src->name[0] == '\0') {
        return false;
    }
    for (int i = 0; i < src->heads.count; i++) {
        const struct proto_hb_stream *h = &src->heads.streams[i];
        bool created;
        struct cursor *c =
            topic_wanted(s, h->topic) ? cursor_find(s, src->name, h->topic, &created) : NULL;
        if (c != NULL && c->seq < h->last_seq && !s->from_now) {
            return false;
        }
    }
    return true;
}

/* Drain and drop retiring sources; compute bus_sub_discovery_ok (sub thread). */
static void discovery_tick(struct bus_sub *s, int64_t now)
{
    struct discovery *dc = s->disc;
    bool ok = dc->nfound > 0;
    for (int i = 0; i < s->nsrc; i++) {
        struct source *src = &s->src[i];
        if (!src->used || !src->discovered) {
            continue;
        }
        if (!src->retiring) {
            ok = ok && src->synced;
            continue;
        }
        if (now < src->next_drain) {
            continue;
        }
        src->next_drain = now + RESYNC_MS;
        bool elsewhere = false;
        for (int j = 0; j < s->nsrc && src->name[0] != '\0' && !elsewhere; j++) {
            const struct source *o = &s->src[j];
            elsewhere =
                j != i && o->used && !o->retiring && o->synced && strcmp(o->name, src->name) == 0;
        }
        if (elsewhere) {
            source_drop(s, src, "Retired bus address dropped: its stream is followed at another",
                        false);
            continue;
        }
        /* A publisher that left DNS may still be running (a terminating pod in its preStop
         * pause still takes requests): follow it while it answers; drop it once it has stopped,
         * if its last answer was applied to its end. */
        enum drain_state ds = source_drain(s, src);
        if (ds != DRAIN_UNREACHABLE) {
            src->drained = ds == DRAIN_DONE;
            src->unreachable_ms = 0;
            continue;
        }
        src->unreachable_ms = src->unreachable_ms != 0 ? src->unreachable_ms : now;
        if (src->drained || heads_applied(s, src)) {
            source_drop(s, src, "Retired bus publisher stopped after it was drained: dropped",
                        false);
        } else if (now - src->unreachable_ms >= BUS_DISCOVER_RETIRE_MS) {
            char labels[400];
            snprintf(labels, sizeof labels, "subscriber=\"%s\",name=\"%s\"", s->name, dc->d.host);
            metrics_counter_add("leadbus_bus_discover_abandoned_total",
                                "Retired bus publishers dropped before they were drained", labels,
                                1);
            source_drop(s, src,
                        "Retired bus publisher unreachable: dropped before it was drained. Events "
                        "it has that were not applied (leadbus_bus_subscriber_lag_events) wait in "
                        "its store: start it again (kubectl scale up) to deliver them",
                        true);
        }
    }
    atomic_store(&dc->ok, ok);
}

static int discovery_start(struct bus_sub *s, const struct bus_discover *d)
{
    struct discovery *dc = calloc(1, sizeof *dc);
    if (dc == NULL) {
        return -1;
    }
    dc->d = *d;
    if (dc->d.interval_ms <= 0) {
        dc->d.interval_ms = 5000;
    }
    pthread_mutex_init(&dc->lock, NULL);
    pthread_cond_init(&dc->wake, NULL);
    s->disc = dc;
    if (pthread_create(&dc->thread, NULL, disc_main, s) != 0) {
        return -1;
    }
    dc->started = true;
    return 0;
}

static void discovery_stop(struct bus_sub *s)
{
    struct discovery *dc = s->disc;
    if (dc == NULL) {
        return;
    }
    if (dc->started) {
        pthread_mutex_lock(&dc->lock);
        pthread_cond_broadcast(&dc->wake);
        pthread_mutex_unlock(&dc->lock);
        pthread_join(dc->thread, NULL); /* after a getaddrinfo under way: the resolver's timeout */
    }
    pthread_mutex_destroy(&dc->lock);
    pthread_cond_destroy(&dc->wake);
    free(dc);
    s->disc = NULL;
}

bool bus_sub_discovery_ok(void *sub)
{
    struct bus_sub *s = sub;
    return s->disc == NULL || atomic_load(&s->disc->ok);
}

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
    handle_frame(s, nng_msg_body(msg), nng_msg_len(msg), false, s->peer_name);
    nng_msg_free(msg);
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
        if (s->disc != NULL) {
            discovery_take(s, now);
        }
        for (int i = 0; i < s->nsrc; i++) {
            struct source *src = &s->src[i];
            if (!src->used) {
                continue;
            }
            if (!src->synced && src->replay_url != NULL && now >= src->next_sync) {
                sync_source(s, src);
            }
            bool ok = src->synced || src->replay_url == NULL;
            atomic_store(&src->ready, ok);
            all = all && (ok || src->retiring);
        }
        atomic_store(&s->ready, all);
        if (now >= s->next_tick) {
            s->next_tick = now + RECV_POLL_MS;
            idents_tick(s, now);
            if (s->disc != NULL) {
                discovery_tick(s, now);
            }
        }

        nng_msg *msg;
        int rc = nng_recvmsg(s->sub, &msg, 0);
        if (rc != 0) {
            flush(s);
            continue;
        }
        handle_live(s, msg);
        /* Drain what is already queued so a burst commits as one transaction. */
        while (s->nbatch < BATCH_MAX && nng_recvmsg(s->sub, &msg, NNG_FLAG_NONBLOCK) == 0) {
            handle_live(s, msg);
        }
        flush(s);
    }
    flush(s);
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

static void free_sources(struct bus_sub *s)
{
    for (int i = 0; i < s->nsrc; i++) {
        free(s->src[i].pub_url);
        free(s->src[i].replay_url);
    }
}

/* Fill slot `src` and dial its PUB and replay endpoints (non-blocking: nng keeps retrying). */
static int source_dial(struct bus_sub *s, struct source *src, const char *pub_url,
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
        if (source_dial(s, src, o->sources[i].pub_url, o->sources[i].replay_url,
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
    if (o->store != NULL && store_exec_schema(o->store, cursor_schema) != 0) {
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
    if (open_sockets(s, o) != 0 || (o->discover != NULL && discovery_start(s, o->discover) != 0) ||
        pthread_create(&s->thread, NULL, sub_main, s) != 0) {
        atomic_store(&s->stopping, true);
        discovery_stop(s);
        nng_close(s->sub);
        close_requesters(s);
        free_sources(s);
        pthread_mutex_destroy(&s->srclock);
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
    discovery_stop(s);
    if (s->store != NULL && s->upsert != NULL) {
        store_run(s->store, finalize_job, s);
    }
    bus_sock_close(s->sub, CLOSE_TIMEOUT_MS);
    free_sources(s);
    pthread_mutex_destroy(&s->srclock);
    free(s->batch);
    free(s);
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
