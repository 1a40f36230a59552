/* outbox: append, replay and prune a publisher's events. */
#include "outbox.h"
#include "clock.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

const char outbox_schema[] =
    "CREATE TABLE IF NOT EXISTS bus_streams("
    "  topic TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS bus_outbox("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL, frame BLOB NOT NULL, UNIQUE(topic, seq));"
    "CREATE TABLE IF NOT EXISTS bus_epoch("
    "  id INTEGER PRIMARY KEY CHECK(id = 1), epoch INTEGER NOT NULL CHECK(epoch > 0));";

struct outbox {
    char src[PROTO_SRC_MAX];
    uint64_t epoch; /* read (or created) with the statements */
    sqlite3 *db;    /* the connection the statements belong to */
    sqlite3_stmt *next_seq, *insert;
};

struct outbox *outbox_new(const char *src)
{
    struct outbox *ob = calloc(1, sizeof *ob);
    if (ob != NULL) {
        snprintf(ob->src, sizeof ob->src, "%s", src);
    }
    return ob;
}

void outbox_free(struct outbox *ob)
{
    if (ob == NULL) {
        return;
    }
    sqlite3_finalize(ob->next_seq);
    sqlite3_finalize(ob->insert);
    free(ob);
}

uint64_t outbox_epoch_read(sqlite3 *db)
{
    sqlite3_stmt *st;
    uint64_t epoch = 0;
    if (sqlite3_prepare_v2(db, "SELECT epoch FROM bus_epoch WHERE id = 1", -1, &st, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            epoch = (uint64_t)sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    return epoch;
}

/* Random, non-zero, below 2^63 (SQLite's integers are signed). */
static uint64_t epoch_new(void)
{
    uint64_t e = 0;
    if (getrandom(&e, sizeof e, 0) != (ssize_t)sizeof e) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        e = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);
    }
    e &= (uint64_t)INT64_MAX;
    return e != 0 ? e : 1;
}

uint64_t outbox_epoch(sqlite3 *db)
{
    uint64_t epoch = outbox_epoch_read(db);
    if (epoch != 0) {
        return epoch;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO bus_epoch(id, epoch) VALUES(1, ?1)", -1, &st,
                           NULL) != SQLITE_OK) {
        return 0;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)epoch_new());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? outbox_epoch_read(db) : 0;
}

static int prepare(struct outbox *ob, sqlite3 *db)
{
    if (ob->db == db) {
        return 0;
    }
    ob->epoch = outbox_epoch(db);
    if (ob->epoch == 0) {
        log_error("Cannot read or create the stream epoch",
                  LOG_FIELDS(LOG_S("error", sqlite3_errmsg(db))));
        return -1;
    }
    sqlite3_finalize(ob->next_seq);
    sqlite3_finalize(ob->insert);
    ob->next_seq = ob->insert = NULL;
    ob->db = NULL;
    if (sqlite3_prepare_v3(db,
                           "INSERT INTO bus_streams(topic, last_seq) VALUES(?1, 1) "
                           "ON CONFLICT(topic) DO UPDATE SET last_seq = last_seq + 1 "
                           "RETURNING last_seq",
                           -1, SQLITE_PREPARE_PERSISTENT, &ob->next_seq, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(db, "INSERT INTO bus_outbox(topic, seq, ts, frame) VALUES(?1,?2,?3,?4)",
                           -1, SQLITE_PREPARE_PERSISTENT, &ob->insert, NULL) != SQLITE_OK) {
        log_error("Cannot prepare outbox statements",
                  LOG_FIELDS(LOG_S("error", sqlite3_errmsg(db))));
        return -1;
    }
    ob->db = db;
    return 0;
}

int outbox_append(struct outbox *ob, sqlite3 *db, enum proto_topic t, const void *data,
                  uint64_t *seq_out)
{
    if (prepare(ob, db) != 0) {
        return -1;
    }
    const char *topic = proto_topic_name(t);
    sqlite3_bind_text(ob->next_seq, 1, topic, -1, SQLITE_STATIC);
    int rc = sqlite3_step(ob->next_seq);
    uint64_t seq = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(ob->next_seq, 0) : 0;
    /* RETURNING finishes its write only when stepped to the end. */
    while (rc == SQLITE_ROW) {
        rc = sqlite3_step(ob->next_seq);
    }
    sqlite3_reset(ob->next_seq);
    if (rc != SQLITE_DONE || seq == 0) {
        log_error("Cannot advance stream",
                  LOG_FIELDS(LOG_S("topic", topic), LOG_S("error", sqlite3_errmsg(db))));
        return -1;
    }
    int64_t ts = clock_now_ms();
    uint8_t *frame = NULL;
    size_t len = 0;
    int prc = proto_frame_encode(t, ob->src, ob->epoch, seq, ts, data, &frame, &len);
    if (prc != PROTO_OK) {
        log_error("Cannot encode event",
                  LOG_FIELDS(LOG_S("topic", topic), LOG_S("error", proto_strerror(prc))));
        return -1;
    }
    sqlite3_bind_text(ob->insert, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ob->insert, 2, (sqlite3_int64)seq);
    sqlite3_bind_int64(ob->insert, 3, ts);
    sqlite3_bind_blob(ob->insert, 4, frame, (int)len, free);
    rc = sqlite3_step(ob->insert);
    sqlite3_reset(ob->insert);
    sqlite3_clear_bindings(ob->insert);
    if (rc != SQLITE_DONE) {
        log_error("Cannot append event",
                  LOG_FIELDS(LOG_S("topic", topic), LOG_S("error", sqlite3_errmsg(db))));
        return -1;
    }
    if (seq_out != NULL) {
        *seq_out = seq;
    }
    return 0;
}

int outbox_streams(sqlite3 *db, struct proto_heartbeat *hb)
{
    sqlite3_stmt *st;
    memset(hb, 0, sizeof *hb);
    if (sqlite3_prepare_v2(db, "SELECT topic, last_seq FROM bus_streams ORDER BY topic", -1, &st,
                           NULL) != SQLITE_OK) {
        return -1;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && hb->count < PROTO_HB_MAX_STREAMS) {
        struct proto_hb_stream *s = &hb->streams[hb->count++];
        snprintf(s->topic, sizeof s->topic, "%s", (const char *)sqlite3_column_text(st, 0));
        s->last_seq = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int outbox_replay(sqlite3 *db, uint64_t epoch, const char *topic, uint64_t from, uint64_t max,
                  uint8_t **reply, size_t *reply_len)
{
    if (max > PROTO_REPLAY_MAX_EVENTS) {
        max = PROTO_REPLAY_MAX_EVENTS;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT frame FROM bus_outbox WHERE topic = ?1 AND seq >= ?2 "
                           "ORDER BY seq LIMIT ?3",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)from);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    uint8_t **frames = calloc(max + 1, sizeof *frames);
    size_t *lens = calloc(max + 1, sizeof *lens);
    size_t n = 0, bytes = 0;
    int rc = frames != NULL && lens != NULL ? 0 : -1;
    while (rc == 0 && n < max && bytes < PROTO_REPLAY_MAX_BYTES) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) {
            break;
        }
        if (step != SQLITE_ROW) {
            rc = -1;
            break;
        }
        lens[n] = (size_t)sqlite3_column_bytes(st, 0);
        frames[n] = malloc(lens[n] ? lens[n] : 1);
        if (frames[n] == NULL) {
            rc = -1;
            break;
        }
        memcpy(frames[n], sqlite3_column_blob(st, 0), lens[n]);
        bytes += lens[n];
        n++;
    }
    sqlite3_finalize(st);
    if (rc == 0 && proto_replay_events_encode(epoch, (const uint8_t *const *)frames, lens, n, reply,
                                              reply_len) != PROTO_OK) {
        rc = -1;
    }
    for (size_t i = 0; frames != NULL && i < n; i++) {
        free(frames[i]);
    }
    free(frames);
    free(lens);
    return rc;
}

int outbox_prune(sqlite3 *db, int64_t before_ms)
{
    sqlite3_stmt *st;
    /* The newest event of each stream stays, so a stream's last seq can always be checked. */
    if (sqlite3_prepare_v2(db,
                           "DELETE FROM bus_outbox WHERE ts < ?1 AND seq < "
                           "(SELECT last_seq FROM bus_streams s WHERE s.topic = bus_outbox.topic)",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, before_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? sqlite3_changes(db) : -1;
}

int64_t outbox_count(sqlite3 *db)
{
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM bus_outbox", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            n = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    return n;
}

int outbox_rewrite(sqlite3 *db, const char *needle, uint64_t epoch, outbox_edit_fn fn, void *arg)
{
    sqlite3_stmt *sel = NULL, *upd = NULL;
    struct proto_event *ev = malloc(sizeof *ev);
    int n = 0;
    if (ev == NULL ||
        sqlite3_prepare_v2(db,
                           "SELECT id, frame FROM bus_outbox WHERE ?1 IS NULL OR "
                           "instr(frame, CAST(?1 AS BLOB)) > 0 ORDER BY id",
                           -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "UPDATE bus_outbox SET frame = ?2 WHERE id = ?1", -1, &upd, NULL) !=
            SQLITE_OK) {
        n = -1;
        goto out;
    }
    sqlite3_bind_text(sel, 1, needle, -1, SQLITE_STATIC);
    int step = SQLITE_DONE;
    while (n >= 0 && (step = sqlite3_step(sel)) == SQLITE_ROW) {
        int dec = proto_frame_decode(sqlite3_column_blob(sel, 1),
                                     (size_t)sqlite3_column_bytes(sel, 1), ev);
        int changed = dec != PROTO_OK ? -1 : fn != NULL ? fn(ev, arg) : 0;
        if (changed < 0) {
            log_error("Cannot rewrite a kept event",
                      LOG_FIELDS(LOG_I("outboxId", sqlite3_column_int64(sel, 0)),
                                 LOG_S("error", dec != PROTO_OK ? proto_strerror(dec) : "edit")));
            n = -1;
            break;
        }
        if (changed == 0 && epoch == 0) {
            continue;
        }
        uint8_t *frame = NULL;
        size_t len = 0;
        if (proto_frame_encode(ev->topic, ev->src, epoch != 0 ? epoch : ev->epoch, ev->seq, ev->ts,
                               &ev->data, &frame, &len) != PROTO_OK) {
            n = -1;
            break;
        }
        sqlite3_bind_int64(upd, 1, sqlite3_column_int64(sel, 0));
        sqlite3_bind_blob(upd, 2, frame, (int)len, free);
        n = sqlite3_step(upd) == SQLITE_DONE ? n + 1 : -1;
        sqlite3_reset(upd);
    }
    if (n >= 0 && step != SQLITE_DONE) {
        n = -1;
    }
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    free(ev);
    return n;
}

uint64_t outbox_renew_epoch(sqlite3 *db)
{
    if (sqlite3_exec(db, "DELETE FROM bus_epoch", NULL, NULL, NULL) != SQLITE_OK) {
        return 0;
    }
    uint64_t epoch = outbox_epoch(db);
    return epoch != 0 && outbox_rewrite(db, NULL, epoch, NULL, NULL) >= 0 ? epoch : 0;
}
