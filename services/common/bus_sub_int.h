/*
 * bus_sub_int.h: the subscriber's internals, shared by its pieces; not for use outside them
 * (the public interface is bus_sub.h).
 *
 *   bus_sub.c            open and close, the sockets, the subscriber thread's loop
 *   bus_sub_apply.c      cursors (in memory and in the store), frames into batches, applying
 *                        a batch in one transaction, a stream reset
 *   bus_sub_ident.c      stream identity: the decision (pure), epochs and conflicts per
 *                        publisher name, frames checked against the certificate's name
 *   bus_sub_replay.c     the replay (REQ/REP) client: stream lists, heartbeats, catch-up
 *   bus_sub_discovery.c  publishers found by DNS: dialled, retired, drained, dropped
 *
 * Threads: everything here runs on the subscriber's thread (sub_main), except
 *   - the store jobs (bsub_load_job, bsub_finalize_job and the apply, persist and reset jobs),
 *     which run on the store's writer thread while the subscriber's thread waits for them in
 *     store_run(), so they may use its state (bsub_load_job adds cursors and identities;
 *     bsub_epoch_of() only reads);
 *   - the resolver thread (bus_sub_discovery.c), which touches only struct discovery's
 *     answer, under its lock;
 *   - bus_sub_close(), which closes the requesters under srclock while the thread may be
 *     dialling or dropping a discovered source (under srclock too);
 *   - the atomics (ready, stopping, counters, nconflicts, discovery ok), read by any thread.
 *
 * Memory: struct bus_sub owns its sources' URLs (strdup), its batch (BATCH_MAX + 1 events)
 * and its struct discovery; cursors, idents and sources are fixed arrays inside it.
 */
#ifndef LEADBUS_BUS_SUB_INT_H
#define LEADBUS_BUS_SUB_INT_H

#include "bus_sub.h"

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
    int64_t last_identity_error_ms; /* of the last bsub_identity_refused() ERROR */
    uint32_t peer_pipe;             /* the pipe whose verified name is in peer_name (0: none) */
    char peer_name[PROTO_SRC_MAX];
};

/* ---- bus_sub_apply.c: cursors, batches, applying ---- */

extern const char bsub_cursor_schema[]; /* the bus_cursors table, in the subscriber's store */

/*
 * Find-or-add in a fixed table of *n slots of `size` bytes (at most `max`): the slot that
 * match(slot, key) accepts, or a new zeroed one appended (*created true: the caller fills in
 * its key), or NULL when the table is full.
 */
void *bsub_slot_find(void *slots, size_t size, int *n, int max,
                     bool (*match)(const void *slot, const void *key), const void *key,
                     bool *created);
bool bsub_topic_wanted(const struct bus_sub *s, const char *topic);
/* The cursor of stream (src, topic), added if new (*created); NULL when the table is full. */
struct cursor *bsub_cursor_find(struct bus_sub *s, const char *src, const char *topic,
                                bool *created);
/* The source publishing `name`; with two of that name, the one whose epoch is `epoch`. */
struct source *bsub_source_for(struct bus_sub *s, const char *name, uint64_t epoch);
/* Apply the batch in one transaction (or on this thread without a store). */
int bsub_flush(struct bus_sub *s);
/* Decode a frame (live, or from a replay answer) and queue, apply or catch up as it says. */
void bsub_handle_frame(struct bus_sub *s, const uint8_t *buf, size_t len, bool from_replay,
                       const char *peer);
/* Forget publisher is->src's cursors and read its streams again from seq 1. */
void bsub_stream_reset(struct bus_sub *s, struct ident_slot *is, uint64_t old,
                       const struct proto_hb_stream *why, uint64_t cursor);
/* Store a "from now" cursor just started. */
void bsub_persist_start(struct bus_sub *s, struct cursor *c);
int bsub_load_job(sqlite3 *db, void *arg);     /* store job: read the cursors at start */
int bsub_finalize_job(sqlite3 *db, void *arg); /* store job: finalize the cursor statement */

/* ---- bus_sub_ident.c: stream identity ---- */

/* The identity of publisher name `src`, added if new; NULL when the table is full. */
struct ident_slot *bsub_ident_find(struct bus_sub *s, const char *src);
/* The epoch followed for `src`, 0 if none (never adds: also called on the writer thread). */
uint64_t bsub_epoch_of(const struct bus_sub *s, const char *src);
void bsub_hex64(uint64_t v, char out[24]);
/* The labels of a publisher's series: subscriber="…",publisher="…". */
void bsub_pub_labels(const struct bus_sub *s, const char *publisher, char *out, size_t size);
/* Once a second or so: forget rivals gone silent, end conflicts that are over. */
void bsub_idents_tick(struct bus_sub *s, int64_t now);
/* The identity half of a heartbeat or stream list: true if its streams may be read. */
bool bsub_ident_ok(struct bus_sub *s, struct ident_slot *is, uint64_t epoch);
/* An event's identity and position: what to do with it. */
enum bus_verdict bsub_frame_verdict(struct bus_sub *s, const struct proto_event *ev,
                                    const struct cursor *c);
/* True if stream `src` may come from a connection verified for `peer`. */
bool bsub_frame_identity_ok(struct bus_sub *s, const char *peer, const char *src);
/* Count and log (once a second at most) frames refused by bsub_frame_identity_ok. */
void bsub_identity_refused(struct bus_sub *s, const char *peer, const char *src);

/* ---- bus_sub_replay.c: the replay client ---- */

/* A publisher's stream list, read from its replay endpoint. */
struct stream_list {
    char name[PROTO_SRC_MAX];
    uint64_t epoch;
    struct proto_heartbeat heads;
};

/*
 * Ask `src` for its stream list. Returns the identity of the name it gave, or NULL: *reached
 * is then false if it did not answer, true if the answer was no named stream list (or no
 * identity slot is left).
 */
struct ident_slot *bsub_streams_fetch(struct bus_sub *s, struct source *src,
                                      struct stream_list *out, bool *reached);
/* Bring stream (src, topic) up to `target` from the source's replay endpoint. */
void bsub_catch_up(struct bus_sub *s, struct source *src, struct cursor *c, uint64_t target);
/* Resynchronise every source with a replay endpoint that publishes `name` (NULL: all). */
void bsub_resync_sources(struct bus_sub *s, const char *name);
/* A stream head from a heartbeat or stream list; false if the stream is behind the cursor. */
bool bsub_stream_seen(struct bus_sub *s, struct source *src, struct ident_slot *is,
                      const struct proto_hb_stream *stream, bool heartbeat);
void bsub_handle_heartbeat(struct bus_sub *s, const struct proto_event *ev);
/* Read the stream list of `src` and catch up with it. */
void bsub_sync_source(struct bus_sub *s, struct source *src);

/* ---- bus_sub_discovery.c: publishers found by DNS ---- */

int bsub_discovery_start(struct bus_sub *s, const struct bus_discover *d);
void bsub_discovery_stop(struct bus_sub *s);
/* Take the resolver's latest answer: dial new addresses, retire vanished ones. */
void bsub_discovery_take(struct bus_sub *s, int64_t now);
/* Drain and drop retiring sources; compute bus_sub_discovery_ok. */
void bsub_discovery_tick(struct bus_sub *s, int64_t now);

/* ---- bus_sub.c ---- */

/* Fill slot `src` and dial its PUB and replay endpoints (non-blocking: nng keeps retrying). */
int bsub_source_dial(struct bus_sub *s, struct source *src, const char *pub_url,
                     const char *replay_url, const char *peer);

#endif
