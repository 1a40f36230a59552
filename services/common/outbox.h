/*
 * outbox: a publisher's events, stored in its own SQLite in the same
 * transaction as the state change that caused them.
 *
 * bus_streams holds the last seq of each topic (seq 1, 2, 3... without gaps);
 * bus_outbox holds each event's encoded frame, which is what the publisher
 * sends live and what replay answers with; bus_epoch holds the store's
 * stream epoch, a random non-zero 63-bit number created with the store, so a
 * subscriber can tell this store's streams from those of a replaced one. outbox_append() must run
 * inside a store_run() function (the writer thread's transaction); the read helpers take any
 * connection. The outbox owns its prepared statements.
 */
#ifndef LEADBUS_OUTBOX_H
#define LEADBUS_OUTBOX_H

#include "proto.h"

#include <sqlite3.h>
#include <stdint.h>

extern const char outbox_schema[];

struct outbox;

struct outbox *outbox_new(const char *src);
void outbox_free(struct outbox *ob);

/* Append one event of topic t; *seq receives its sequence number (may be NULL). */
int outbox_append(struct outbox *ob, sqlite3 *db, enum proto_topic t, const void *data,
                  uint64_t *seq);

/*
 * The store's epoch, created (at random) on first use: inside a store_run()
 * function, or on any connection once it exists. 0 on error.
 */
uint64_t outbox_epoch(sqlite3 *db);
/* The stream epoch if the store has one, else 0 (reads only). */
uint64_t outbox_epoch_read(sqlite3 *db);

/* The last seq of every stream. */
int outbox_streams(sqlite3 *db, struct proto_heartbeat *hb);

/* Frames of `topic` from seq `from` on, in order, at most `max` and about PROTO_REPLAY_MAX_BYTES.
 */
int outbox_replay(sqlite3 *db, uint64_t epoch, const char *topic, uint64_t from, uint64_t max,
                  uint8_t **reply, size_t *reply_len);

/* Delete events older than `before_ms`, keeping each stream's newest. Returns rows deleted. */
int outbox_prune(sqlite3 *db, int64_t before_ms);

/* Number of events in the outbox. */
int64_t outbox_count(sqlite3 *db);

/*
 * Rewrite kept events in place (same topic, seq, ts and src). Each frame holding the bytes of
 * `needle` (every frame for NULL) is decoded and given to `fn` (NULL: none), which may change
 * its data and returns 1 if it did, 0 if not, < 0 to fail. A changed frame, and every frame
 * when `epoch` is not 0, is encoded again with `epoch` (0: its own). Erasure scrubs a lead's
 * personal fields this way, so a replay never sends them again; a restore gives a stream a new
 * epoch. Runs in the caller's transaction; returns the frames rewritten, or -1.
 */
typedef int (*outbox_edit_fn)(struct proto_event *ev, void *arg);
int outbox_rewrite(sqlite3 *db, const char *needle, uint64_t epoch, outbox_edit_fn fn, void *arg);

/* A new stream epoch for a restored store, every kept frame rewritten with it (in the caller's
 * transaction): subscribers then see a reset, not a second publisher. Returns it, or 0. */
uint64_t outbox_renew_epoch(sqlite3 *db);

#endif
