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
 * Streams have identity: a publisher's frames, heartbeats and replay answers
 * carry its store's epoch, stored with the cursors. A new epoch under a known
 * name that stays alone for BUS_RESET_SETTLE_MS and BUS_RESET_HEADS of its
 * heartbeats (time alone is no proof: a stalled subscriber may still hold the
 * old epoch's heartbeats in its queue), or a stream list behind the
 * cursor (a heartbeat behind it makes the subscriber ask for the list), is a reset: an ERROR,
 * leadbus_bus_stream_resets_total, and the stream is applied again from seq 1 (handlers must be
 * idempotent per entity, which they are anyway for at-least-once replay). Two epochs alive under
 * one name within BUS_CONFLICT_WINDOW_MS are two publishers sharing a name: the epoch followed
 * first is kept, the other is refused (an ERROR per second, leadbus_bus_stream_conflict = 1,
 * bus_sub_streams_ok() false) until one of them has been silent for the window.
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

#include "bus_discover.h"
#include "proto.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct bus_source {
    const char *pub_url;
    const char *replay_url; /* NULL: live only (no catch-up); only sensible for taps */
    /* The publisher's stream name, which its tls+tcp:// certificate must carry (bus_tls.h);
     * NULL: any certificate from the CA (tools such as taps). */
    const char *peer_name;
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
    /* Publishers found by DNS (bus_discover.h) besides `sources`; NULL: none. Addresses that
     * appear are dialled (without restart); one that leaves the answer is still followed while
     * it answers (a terminating pod), and dropped once it has stopped with its streams applied
     * to their end, once its stream is followed at another address, or once it has been
     * unreachable for BUS_DISCOVER_RETIRE_MS without being drained (a WARN: its events wait
     * in its store until it comes back). */
    const struct bus_discover *discover;
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

/*
 * Stream identity, for /readyz: bus_sub_streams_ok(sub) is false while two live
 * publishers share a name; bus_sub_streams_check(sub) is a name for that check,
 * "<subscriber>: two live publishers share a bus stream name" (the ERROR lines
 * and leadbus_bus_stream_conflict{publisher} name the stream). Register both
 * with http_ready_check().
 */
bool bus_sub_streams_ok(void *sub);
const char *bus_sub_streams_check(struct bus_sub *s);

/*
 * Discovery, for /readyz (a degraded check: events wait in the publishers' outboxes): false while
 * the last resolution failed or found no address, or a publisher found is not synchronised yet.
 * True without discovery. Each resolution sets leadbus_bus_discovered_publishers{subscriber,name};
 * a failed or empty one is also a WARN and leadbus_bus_discover_failures_total.
 */
bool bus_sub_discovery_ok(void *sub);

#define BUS_DISCOVER_RETIRE_MS 60000 /* a retired, undrained address unreachable this long */

/* ---- the decision, as a pure function (no I/O, no clock) ---- */

#define BUS_RESET_SETTLE_MS 3000     /* a new epoch alone this long is a reset, */
#define BUS_RESET_HEADS 3            /* after this many of its heartbeats or stream lists */
#define BUS_CONFLICT_WINDOW_MS 10000 /* two epochs seen within this are two publishers */

/* What a subscriber knows of one publisher name. */
struct bus_ident {
    uint64_t epoch;         /* the epoch the cursors follow; 0: none known yet */
    int64_t seen_ms;        /* when `epoch` last showed itself; 0: not since start */
    uint64_t rival;         /* another epoch seen under the name; 0: none */
    int64_t rival_first_ms; /* when the rival first showed itself */
    int64_t rival_seen_ms;  /* and last */
    unsigned rival_heads;   /* heartbeats and stream lists of the rival seen since */
};

enum bus_verdict {
    BUS_APPLY,     /* the stream's next event */
    BUS_DUPLICATE, /* already applied (a heartbeat: nothing new) */
    BUS_GAP,       /* ahead of the cursor: replay from cursor + 1 first */
    BUS_HOLD,     /* an unknown epoch under a known name: wait to see whether the old one is gone */
    BUS_RESET,    /* the stream was reset: forget the cursors, apply again from seq 1 */
    BUS_CONFLICT, /* two live publishers share the name: refuse this one */
};

/*
 * Decide about an event (head = false, seq = its seq) or a stream head from a
 * heartbeat or stream list (head = true, seq = the stream's last seq) of
 * `epoch` (0: an older publisher's frame, taken as the followed epoch), given
 * the cursor of its stream. Updates *id: adopts the first epoch seen, tracks a
 * rival, and on BUS_RESET follows the new epoch (the caller zeroes the
 * cursors). bus_verdict_name() names a verdict for logs and tests.
 */
enum bus_verdict bus_stream_decide(struct bus_ident *id, uint64_t cursor, uint64_t epoch,
                                   uint64_t seq, bool head, int64_t now_ms);
/* True while the followed epoch and a rival were both seen within the window. */
bool bus_ident_conflict(const struct bus_ident *id, int64_t now_ms);
/* Forget a rival silent for the window. Returns true if one was forgotten. */
bool bus_ident_expire(struct bus_ident *id, int64_t now_ms);
const char *bus_verdict_name(enum bus_verdict v);

#endif
