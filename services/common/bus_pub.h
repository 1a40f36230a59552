/*
 * bus_pub: the publishing half of the reliable bus.
 *
 * A service appends events with bus_pub_append() inside its store_run()
 * function, so an event exists exactly when the state change that caused it
 * does. After every commit the sender thread sends the new outbox rows on the
 * PUB socket; every heartbeat interval it sends `_hb` with each stream's last
 * seq; a replay thread answers REQ/REP requests from the outbox. Events older
 * than the retention are pruned hourly. Every frame, heartbeat and replay
 * answer carries the store's epoch (see outbox.h), so subscribers notice a
 * store that was replaced, and two publishers that share a name.
 *
 * Memory: the publisher copies the options' strings; close it before its store.
 */
#ifndef LEADBUS_BUS_PUB_H
#define LEADBUS_BUS_PUB_H

#include "proto.h"
#include "store.h"

#include <stdint.h>

struct bus_pub_opts {
    const char *name;       /* publisher (stream) name, e.g. "ingest" */
    const char *pub_url;    /* where the PUB socket listens */
    const char *replay_url; /* where the REP socket listens */
    struct store *store;    /* the service's store; the outbox tables are added to it */
    int hb_interval_ms;     /* 0: 1000 */
    int retention_days;     /* 0: keep forever */
};

struct bus_pub;

int bus_pub_open(const struct bus_pub_opts *opts, struct bus_pub **out);
void bus_pub_close(struct bus_pub *p);

/* Only inside a store_run() function of p's store. */
int bus_pub_append(struct bus_pub *p, sqlite3 *db, enum proto_topic t, const void *data,
                   uint64_t *seq);

/* The stream epoch of p's store. */
uint64_t bus_pub_epoch(const struct bus_pub *p);

struct bus_pub_stats {
    uint64_t sent;     /* event frames sent live */
    uint64_t replayed; /* replay requests answered */
};
void bus_pub_get_stats(struct bus_pub *p, struct bus_pub_stats *st);

#endif
