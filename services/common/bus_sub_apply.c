/* bus_sub_apply: cursors in memory and in the store, frames into batches, a batch applied in one
 * transaction, and a publisher's stream reset (bus_sub_int.h). */
#include "bus_sub_int.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <string.h>

/* epoch: the publisher's stream epoch the cursor belongs to (0: not known; cursors from before
 * epochs existed get the column with 0 through bsub_load_job). */
const char bsub_cursor_schema[] =
    "CREATE TABLE IF NOT EXISTS bus_cursors("
    "  src TEXT NOT NULL, topic TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  epoch INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(src, topic)) WITHOUT ROWID;";

void *bsub_slot_find(void *slots, size_t size, int *n, int max,
                     bool (*match)(const void *slot, const void *key), const void *key,
                     bool *created)
{
    char *base = slots;
    *created = false;
    for (int i = 0; i < *n; i++) {
        if (match(base + (size_t)i * size, key)) {
            return base + (size_t)i * size;
        }
    }
    if (*n == max) {
        return NULL;
    }
    void *slot = base + (size_t)(*n)++ * size;
    memset(slot, 0, size);
    *created = true;
    return slot;
}

bool bsub_topic_wanted(const struct bus_sub *s, const char *topic)
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

struct stream_key {
    const char *src, *topic;
};

static bool cursor_match(const void *slot, const void *key)
{
    const struct cursor *c = slot;
    const struct stream_key *k = key;
    return strcmp(c->src, k->src) == 0 && strcmp(c->topic, k->topic) == 0;
}

struct cursor *bsub_cursor_find(struct bus_sub *s, const char *src, const char *topic,
                                bool *created)
{
    struct stream_key k = {src, topic};
    struct cursor *c =
        bsub_slot_find(s->cur, sizeof s->cur[0], &s->ncur, MAX_CURSORS, cursor_match, &k, created);
    if (c != NULL && *created) {
        snprintf(c->src, sizeof c->src, "%s", src);
        snprintf(c->topic, sizeof c->topic, "%s", topic);
    }
    return c;
}

struct source *bsub_source_for(struct bus_sub *s, const char *name, uint64_t epoch)
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
            if (upsert_cursor(s, db, ev->src, topic_of(ev), ev->seq, bsub_epoch_of(s, ev->src)) !=
                0) {
                log_error("Cannot store cursor", LOG_FIELDS(LOG_S("error", sqlite3_errmsg(db))));
                return -1;
            }
        }
    }
    return 0;
}

int bsub_flush(struct bus_sub *s)
{
    if (s->nbatch == 0) {
        return 0;
    }
    int rc = s->store != NULL ? store_run(s->store, apply_job, s) : apply_job(NULL, s);
    bool created;
    for (int i = 0; i < s->nbatch; i++) {
        struct cursor *c = bsub_cursor_find(s, s->batch[i].src, topic_of(&s->batch[i]), &created);
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

/* ---- a stream reset ---- */

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
void bsub_stream_reset(struct bus_sub *s, struct ident_slot *is, uint64_t old,
                       const struct proto_hb_stream *why, uint64_t cursor)
{
    bsub_flush(s);
    char was[24], now[24], labels[160];
    bsub_hex64(old, was);
    bsub_hex64(is->id.epoch, now);
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
    bsub_pub_labels(s, is->src, labels, sizeof labels);
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
    bsub_resync_sources(s, is->src);
}

/* ---- frames ---- */

void bsub_handle_frame(struct bus_sub *s, const uint8_t *buf, size_t len, bool from_replay,
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
    if (!bsub_frame_identity_ok(s, peer, ev->src)) {
        bsub_identity_refused(s, peer, ev->src);
        return;
    }
    if (ev->topic == PROTO_HEARTBEAT) {
        if (!from_replay) {
            bsub_handle_heartbeat(s, ev);
        }
        return;
    }
    if (!bsub_topic_wanted(s, topic_of(ev))) {
        return;
    }
    if (from_replay && s->replaying != NULL && s->replaying->name[0] != '\0') {
        /* A renamed publisher's older events carry its old name: they are its stream's. */
        snprintf(ev->src, sizeof ev->src, "%s", s->replaying->name);
    }
    bool created;
    struct cursor *c = bsub_cursor_find(s, ev->src, topic_of(ev), &created);
    if (c == NULL) {
        return;
    }
    if (created && s->from_now) {
        c->seq = c->queued = ev->seq - 1;
    }
    switch (bsub_frame_verdict(s, ev, c)) {
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
            bsub_flush(s);
            bsub_catch_up(s, bsub_source_for(s, ev->src, ev->epoch), c, target);
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
        bsub_flush(s);
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
    return upsert_cursor(a->s, db, a->c->src, a->c->topic, a->c->seq,
                         bsub_epoch_of(a->s, a->c->src));
}

void bsub_persist_start(struct bus_sub *s, struct cursor *c)
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

int bsub_load_job(sqlite3 *db, void *arg)
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
        struct ident_slot *is = bsub_ident_find(s, c->src);
        if (is != NULL && is->id.epoch == 0) {
            is->id.epoch = (uint64_t)sqlite3_column_int64(st, 3);
        }
    }
    sqlite3_finalize(st);
    return 0;
}

int bsub_finalize_job(sqlite3 *db, void *arg)
{
    (void)db;
    struct bus_sub *s = arg;
    sqlite3_finalize(s->upsert);
    s->upsert = NULL;
    return 0;
}
