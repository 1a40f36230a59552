/*
 * bus_peer: a test process for the bus tests and the bus benchmark.
 *
 *   bus_peer pub --name N --db F --pub URL --replay URL --topics T[,T] --count N
 *                [--batch B] [--pause-us U] [--start-file F] [--append-only]
 *       Appends events until each topic's stream holds N (so a restarted
 *       publisher continues where it stopped), B per transaction (after file F
 *       exists, when given), then serves
 *       live and replay until SIGTERM. --append-only commits without opening
 *       sockets and then SIGKILLs itself: a crash after commit, before send.
 *   bus_peer sub --name N --db F --source PUB[,REPLAY[,PEER]] ... [--topics P[,P]]
 *                --expect K [--recvbuf R] [--slow-us U] [--timeout S]
 *       Applies events into table `applied` (one row per apply, in apply
 *       order) and exits 0 once K rows exist; 3 on timeout. PEER: the publisher's stream
 *       name, which its TLS certificate and its frames must carry (PUB,,PEER: no replay).
 *   bus_peer emit --name N --db F --pub URL --replay URL --lines FILE
 *       Publishes one call.status per line of FILE ("lead_id call_id
 *       attempt status duration_s [agent]"; final unless the status is
 *       in-progress), watching FILE for new lines until SIGTERM: a stand-in
 *       dialer for the services that consume its events.
 *   bus_peer verify --db F SRC:TOPIC:N ...
 *       Checks that each stream was applied exactly once for seq 1..N, in
 *       order, with the right payload; prints the figures; exits 1 if not.
 */
#include "bus_pub.h"
#include "bus_sub.h"
#include "clock.h"
#include "log.h"
#include "outbox.h"
#include "store.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXV 16

struct args {
    const char *mode, *name, *db, *pub, *replay, *start_file, *lines;
    const char *sources[MAXV];
    int nsources;
    char *topics[MAXV];
    int ntopics;
    long count, batch, expect, recvbuf, slow_us, timeout_s, pause_us;
    bool append_only;
    char **rest;
    int nrest;
};

static void split_topics(struct args *a, char *list)
{
    for (char *t = strtok(list, ","); t != NULL && a->ntopics < MAXV; t = strtok(NULL, ",")) {
        a->topics[a->ntopics++] = t;
    }
}

static int parse(int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof *a);
    a->batch = 20;
    a->timeout_s = 120;
    if (argc < 2) {
        return -1;
    }
    a->mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "--append-only") == 0) {
            a->append_only = true;
            continue;
        }
        if (k[0] != '-') {
            a->rest = &argv[i];
            a->nrest = argc - i;
            break;
        }
        if (v == NULL) {
            return -1;
        }
        i++;
        if (!strcmp(k, "--name")) {
            a->name = v;
        } else if (!strcmp(k, "--db")) {
            a->db = v;
        } else if (!strcmp(k, "--pub")) {
            a->pub = v;
        } else if (!strcmp(k, "--replay")) {
            a->replay = v;
        } else if (!strcmp(k, "--source") && a->nsources < MAXV) {
            a->sources[a->nsources++] = v;
        } else if (!strcmp(k, "--topics")) {
            split_topics(a, strdup(v));
        } else if (!strcmp(k, "--count")) {
            a->count = atol(v);
        } else if (!strcmp(k, "--batch")) {
            a->batch = atol(v);
        } else if (!strcmp(k, "--expect")) {
            a->expect = atol(v);
        } else if (!strcmp(k, "--recvbuf")) {
            a->recvbuf = atol(v);
        } else if (!strcmp(k, "--slow-us")) {
            a->slow_us = atol(v);
        } else if (!strcmp(k, "--lines")) {
            a->lines = v;
        } else if (!strcmp(k, "--start-file")) {
            a->start_file = v;
        } else if (!strcmp(k, "--pause-us")) {
            a->pause_us = atol(v);
        } else if (!strcmp(k, "--timeout")) {
            a->timeout_s = atol(v);
        } else {
            return -1;
        }
    }
    return 0;
}

/* ---- publisher ---- */

static void fill(enum proto_topic t, uint64_t seq, union proto_data *d)
{
    memset(d, 0, sizeof *d);
    char id[40];
    snprintf(id, sizeof id, "L%llu", (unsigned long long)seq);
    switch (t) {
    case PROTO_LEAD_CREATED:
        strcpy(d->lead_created.lead_id, id);
        strcpy(d->lead_created.last_name, "Peer");
        strcpy(d->lead_created.phone_status, "none");
        d->lead_created.received_ms = clock_now_ms();
        break;
    case PROTO_CALL_DUE:
        strcpy(d->call_due.call_id, id);
        strcpy(d->call_due.lead_id, id);
        strcpy(d->call_due.phone_e164, "+919876543210");
        strcpy(d->call_due.phone_dial, "09876543210");
        d->call_due.attempt = 1;
        break;
    default:
        strcpy(d->lead_synced.lead_id, id);
        strcpy(d->lead_synced.zoho_id, "Z");
        strcpy(d->lead_synced.action, "created");
        break;
    }
}

static const char *payload_id(const struct proto_event *ev)
{
    switch (ev->topic) {
    case PROTO_LEAD_CREATED:
        return ev->data.lead_created.lead_id;
    case PROTO_CALL_DUE:
        return ev->data.call_due.lead_id;
    default:
        return ev->data.lead_synced.lead_id;
    }
}

struct pub_batch {
    struct outbox *ob;
    enum proto_topic topic;
    long n;
    uint64_t last;
};

static int last_seq_job(sqlite3 *db, void *arg)
{
    struct pub_batch *b = arg;
    sqlite3_stmt *st;
    b->last = 0;
    if (sqlite3_prepare_v2(db, "SELECT last_seq FROM bus_streams WHERE topic = ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, proto_topic_name(b->topic), -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        b->last = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return 0;
}

static int append_job(sqlite3 *db, void *arg)
{
    struct pub_batch *b = arg;
    union proto_data d;
    for (long i = 0; i < b->n; i++) {
        fill(b->topic, b->last + 1 + (uint64_t)i, &d);
        if (outbox_append(b->ob, db, b->topic, &d, NULL) != 0) {
            return -1;
        }
    }
    return 0;
}

static int run_pub(struct args *a)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct store_opts so = {.path = a->db, .schema = outbox_schema, .sync = STORE_SYNC_FULL};
    struct store *store;
    if (store_open(&so, &store) != 0) {
        return 1;
    }
    struct bus_pub *pub = NULL;
    struct outbox *ob = outbox_new(a->name);
    if (!a->append_only) {
        struct bus_pub_opts po = {.name = a->name,
                                  .pub_url = a->pub,
                                  .replay_url = a->replay,
                                  .store = store,
                                  .hb_interval_ms = 200};
        if (bus_pub_open(&po, &pub) != 0) {
            return 1;
        }
    }
    if (a->start_file != NULL) {
        printf("pub %s: waiting for %s\n", a->name, a->start_file);
        while (access(a->start_file, F_OK) != 0) {
            usleep(10000);
        }
    }
    int64_t t0 = clock_mono_ms();
    long appended = 0;
    for (int t = 0; t < a->ntopics; t++) {
        struct pub_batch b = {.ob = ob, .topic = proto_topic_from_name(a->topics[t])};
        if ((int)b.topic < 0) {
            fprintf(stderr, "bus_peer: unknown topic %s\n", a->topics[t]);
            return 2;
        }
        store_run(store, last_seq_job, &b);
        while ((long)b.last < a->count) {
            b.n = a->count - (long)b.last < a->batch ? a->count - (long)b.last : a->batch;
            if (store_run(store, append_job, &b) != 0) {
                return 1;
            }
            b.last += (uint64_t)b.n;
            appended += b.n;
            if (a->pause_us > 0) {
                usleep((useconds_t)a->pause_us); /* pace the stream so tests can act mid-flow */
            }
        }
    }
    int64_t ms = clock_mono_ms() - t0;
    printf("pub %s: appended %ld events in %lld ms\n", a->name, appended, (long long)ms);
    fflush(stdout);
    if (a->append_only) {
        raise(SIGKILL); /* committed, never sent */
    }
    int sig;
    sigwait(&set, &sig);
    bus_pub_close(pub);
    outbox_free(ob);
    store_close(store);
    return 0;
}

/* ---- stand-in dialer ---- */

struct emit_job {
    struct outbox *ob;
    char (*lines)[256];
    int n;
};

static int emit_job(sqlite3 *db, void *arg)
{
    struct emit_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        struct proto_call_status st;
        memset(&st, 0, sizeof st);
        long long attempt = 0, duration = 0;
        int got = sscanf(j->lines[i], "%39s %63s %lld %23s %lld %31s", st.lead_id, st.call_id,
                         &attempt, st.status, &duration, st.agent);
        if (got != 5 && got != 6) {
            fprintf(stderr, "emit: bad line: %s\n", j->lines[i]);
            return -1;
        }
        st.attempt = attempt;
        st.duration_s = duration;
        st.final = strcmp(st.status, "in-progress") != 0;
        snprintf(st.call_sid, sizeof st.call_sid, "sid%.40s%lld", st.call_id, attempt);
        if (strcmp(st.status, "completed") == 0) {
            snprintf(st.recording_url, sizeof st.recording_url, "http://sandbox.invalid/%s.mp3",
                     st.call_sid);
        }
        if (outbox_append(j->ob, db, PROTO_CALL_STATUS, &st, NULL) != 0) {
            return -1;
        }
    }
    return 0;
}

static int run_emit(struct args *a)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct store_opts so = {.path = a->db, .schema = outbox_schema, .sync = STORE_SYNC_FULL};
    struct store *store;
    struct bus_pub *pub;
    if (store_open(&so, &store) != 0) {
        return 1;
    }
    struct bus_pub_opts po = {.name = a->name,
                              .pub_url = a->pub,
                              .replay_url = a->replay,
                              .store = store,
                              .hb_interval_ms = 200};
    if (bus_pub_open(&po, &pub) != 0) {
        return 1;
    }
    struct outbox *ob = outbox_new(a->name);
    struct pub_batch last = {.topic = PROTO_CALL_STATUS};
    store_run(store, last_seq_job, &last);
    long done = (long)last.last;
    static char lines[1024][256];
    struct timespec poll = {0, 50 * 1000 * 1000};
    while (sigtimedwait(&set, NULL, &poll) < 0) {
        FILE *f = fopen(a->lines, "r");
        if (f == NULL) {
            continue;
        }
        char line[256];
        long seen = 0;
        int n = 0;
        while (fgets(line, sizeof line, f) != NULL && n < 1024) {
            if (strchr(line, '\n') == NULL) {
                break; /* a line still being written */
            }
            if (++seen > done) {
                snprintf(lines[n++], sizeof lines[0], "%s", line);
            }
        }
        fclose(f);
        struct emit_job j = {ob, lines, n};
        if (n > 0 && store_run(store, emit_job, &j) == 0) {
            done += n;
            printf("emit %s: %ld call.status events\n", a->name, done);
        }
    }
    bus_pub_close(pub);
    outbox_free(ob);
    store_close(store);
    return 0;
}

/* ---- subscriber ---- */

static atomic_long applied_rows;
static long slow_us;
static sqlite3_stmt *ins; /* used on the store's writer thread only */
static sqlite3 *ins_db;

static int finalize_job(sqlite3 *db, void *arg)
{
    (void)db;
    (void)arg;
    sqlite3_finalize(ins);
    ins = NULL;
    return 0;
}

static int apply(sqlite3 *db, const struct proto_event *ev, void *arg)
{
    (void)arg;
    if (ins_db != db) {
        if (sqlite3_prepare_v2(db,
                               "INSERT INTO applied(src, topic, seq, payload) VALUES(?1,?2,?3,?4)",
                               -1, &ins, NULL) != SQLITE_OK) {
            return -1;
        }
        ins_db = db;
    }
    sqlite3_bind_text(ins, 1, ev->src, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(ins, 2, proto_topic_name(ev->topic), -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 3, (sqlite3_int64)ev->seq);
    sqlite3_bind_text(ins, 4, payload_id(ev), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    if (slow_us > 0) {
        usleep((useconds_t)slow_us);
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

static int count_job(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM applied", -1, &st, NULL);
    sqlite3_step(st);
    *(long *)arg = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int run_sub(struct args *a)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    slow_us = a->slow_us;

    struct store_opts so = {.path = a->db,
                            .schema = "CREATE TABLE IF NOT EXISTS applied("
                                      "src TEXT, topic TEXT, seq INTEGER, payload TEXT)",
                            .sync = STORE_SYNC_FULL};
    struct store *store;
    if (store_open(&so, &store) != 0) {
        return 1;
    }
    static char urls[MAXV][3][256];
    struct bus_source src[MAXV];
    for (int i = 0; i < a->nsources; i++) {
        snprintf(urls[i][0], sizeof urls[i][0], "%s", a->sources[i]);
        char *comma = strchr(urls[i][0], ',');
        char *peer = NULL;
        if (comma != NULL) {
            *comma = '\0';
            snprintf(urls[i][1], sizeof urls[i][1], "%s", comma + 1);
            peer = strchr(urls[i][1], ',');
        }
        if (peer != NULL) { /* the publisher's stream name, which its certificate must carry */
            *peer = '\0';
            snprintf(urls[i][2], sizeof urls[i][2], "%s", peer + 1);
        }
        bool replay = comma != NULL && urls[i][1][0] != '\0'; /* PUB,,PEER: live only */
        src[i] =
            (struct bus_source){urls[i][0], replay ? urls[i][1] : NULL, peer ? urls[i][2] : NULL};
    }
    long have = 0;
    store_run(store, count_job, &have);
    atomic_store(&applied_rows, have);
    struct bus_sub_opts o = {.name = a->name,
                             .store = store,
                             .sources = src,
                             .nsources = a->nsources,
                             .topics = (const char *const *)a->topics,
                             .ntopics = a->ntopics,
                             .recv_buf = (int)a->recvbuf,
                             .handler = apply};
    struct bus_sub *sub;
    if (bus_sub_open(&o, &sub) != 0) {
        return 1;
    }
    int64_t t0 = clock_mono_ms(), first = 0;
    int status = 3;
    bool said_ready = false;
    struct timespec poll = {0, 10 * 1000 * 1000};
    while (clock_mono_ms() - t0 < a->timeout_s * 1000) {
        if (sigtimedwait(&set, NULL, &poll) == SIGTERM) {
            status = 0;
            break;
        }
        if (!said_ready && bus_sub_ready(sub)) {
            printf("sub %s: ready\n", a->name);
            said_ready = true;
        }
        struct bus_sub_stats st;
        bus_sub_get_stats(sub, &st);
        if (first == 0 && st.applied > 0) {
            first = clock_mono_ms();
        }
        if (a->expect > 0 && have + (long)st.applied >= a->expect) {
            status = 0;
            break;
        }
    }
    int64_t end = clock_mono_ms();
    struct bus_sub_stats st;
    bus_sub_get_stats(sub, &st);
    bus_sub_close(sub);
    store_run(store, finalize_job, NULL);
    store_close(store);
    double secs = first ? (double)(end - first) / 1000.0 : 0;
    printf("sub %s: applied=%llu replayed=%llu gaps=%llu duplicates_dropped=%llu in %.3f s",
           a->name, (unsigned long long)st.applied, (unsigned long long)st.replayed,
           (unsigned long long)st.gaps, (unsigned long long)st.duplicates, secs);
    if (secs > 0) {
        printf(" (%.0f events/s)", (double)st.applied / secs);
    }
    printf("%s\n", status == 3 ? " TIMEOUT" : "");
    return status;
}

/* ---- verify ---- */

static int run_verify(struct args *a)
{
    sqlite3 *db;
    if (sqlite3_open_v2(a->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "verify: cannot open %s\n", a->db);
        return 1;
    }
    int bad = 0;
    long total = 0;
    for (int i = 0; i < a->nrest; i++) {
        char src[64], topic[64];
        long n;
        if (sscanf(a->rest[i], "%63[^:]:%63[^:]:%ld", src, topic, &n) != 3) {
            fprintf(stderr, "verify: bad stream spec %s\n", a->rest[i]);
            return 2;
        }
        sqlite3_stmt *st;
        sqlite3_prepare_v2(db,
                           "SELECT seq, payload FROM applied WHERE src=?1 AND topic=?2 "
                           "ORDER BY rowid",
                           -1, &st, NULL);
        sqlite3_bind_text(st, 1, src, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, topic, -1, SQLITE_STATIC);
        char *seen = calloc((size_t)n + 2, 1);
        long rows = 0, dup = 0, out_of_order = 0, wrong_payload = 0, out_of_range = 0, prev = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            long seq = (long)sqlite3_column_int64(st, 0);
            char want[40];
            snprintf(want, sizeof want, "L%ld", seq);
            rows++;
            if (seq < 1 || seq > n) {
                out_of_range++;
                continue;
            }
            dup += seen[seq];
            seen[seq] = 1;
            out_of_order += seq <= prev;
            prev = seq;
            wrong_payload += strcmp((const char *)sqlite3_column_text(st, 1), want) != 0;
        }
        sqlite3_finalize(st);
        long missing = 0;
        for (long s = 1; s <= n; s++) {
            missing += !seen[s];
        }
        free(seen);
        printf("%s %s: %ld applied, %ld missing, %ld applied twice, %ld out of order, "
               "%ld wrong payload, %ld unexpected\n",
               src, topic, rows, missing, dup, out_of_order, wrong_payload, out_of_range);
        bad += missing || dup || out_of_order || wrong_payload || out_of_range;
        total += rows;
    }
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM applied", -1, &st, NULL);
    sqlite3_step(st);
    long all = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (all != total) {
        printf("%ld rows belong to no expected stream\n", all - total);
        bad++;
    }
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct args a;
    if (parse(argc, argv, &a) != 0) {
        fprintf(stderr, "usage: see the comment at the top of bus_peer.c\n");
        return 2;
    }
    log_init(LOG_WARN, LOG_TEXT);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(a.mode, "pub") == 0) {
        return run_pub(&a);
    }
    if (strcmp(a.mode, "sub") == 0) {
        return run_sub(&a);
    }
    if (strcmp(a.mode, "emit") == 0) {
        return run_emit(&a);
    }
    if (strcmp(a.mode, "verify") == 0) {
        return run_verify(&a);
    }
    return 2;
}
