/*
 * bus_sub: the subscribing half of the reliable bus.
 *
 * A subscriber dials the PUB and replay endpoints of any number of
 * publishers. It keeps a cursor per stream (publisher, topic), stored in its
 * own SQLite and advanced in the same transaction as the handler's writes, so
 * every event is applied exactly once, in order, across crashes. A gap in the
 * live stream, a heartbeat that is ahead, or a (re)start makes it replay from
 * cursor+1; duplicates (seq <= cursor) are dropped.
 *
 * The handler runs on the store's writer thread inside the transaction (or on
 * the subscriber's own thread with db == NULL when no store is given: cursors
 * then live in memory, as for `leadbus tap`). It returns < 0 for a transient
 * failure: the batch rolls back and is applied again later. Permanent problems
 * are the handler's to record and return 0 for, or the stream stops.
 *
 * Memory: the subscriber copies the options' strings and arrays.
 */
#ifndef LEADBUS_BUS_SUB_H
#define LEADBUS_BUS_SUB_H

#include "proto.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct bus_source {
    const char *pub_url;
    const char *replay_url; /* NULL: live only (no catch-up); only sensible for taps */
};

typedef int (*bus_handler)(sqlite3 *db, const struct proto_event *ev, void *arg);

struct bus_sub_opts {
    const char *name;    /* for logs */
    struct store *store; /* NULL: cursors in memory */
    const struct bus_source *sources;
    int nsources;
    const char *const *topics; /* topic prefixes; NULL or empty: every topic */
    int ntopics;
    bool from_now; /* a stream with no cursor starts at its current end, not at seq 1 */
    int recv_buf;  /* SUB receive queue length in messages; 0: nng's default */
    bus_handler handler;
    void *arg;
};

struct bus_sub;

int bus_sub_open(const struct bus_sub_opts *opts, struct bus_sub **out);
void bus_sub_close(struct bus_sub *s);

/* True once every source's replay endpoint has answered (or it has none). */
bool bus_sub_ready(struct bus_sub *s);
/* The same for source `index` (in the order of opts.sources) alone. */
bool bus_sub_source_ready(struct bus_sub *s, int index);

struct bus_sub_stats {
    uint64_t applied;    /* events handed to the handler and committed */
    uint64_t duplicates; /* live events dropped as already applied */
    uint64_t replayed;   /* events obtained through replay */
    uint64_t gaps;       /* gaps noticed (live or heartbeat) */
};
void bus_sub_get_stats(struct bus_sub *s, struct bus_sub_stats *st);

#endif
