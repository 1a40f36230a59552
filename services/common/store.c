/* store: writer thread with group commit. */
#include "store.h"
#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HOOKS 8
#define MAX_BATCH 1024

struct job {
    store_fn fn;
    void *arg;
    int rc;
    bool done;
    struct job *next;
};

struct hook {
    void (*fn)(void *);
    void *arg;
};

struct store {
    char *path;
    sqlite3 *db;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work; /* writer waits for jobs */
    pthread_cond_t done; /* callers wait for their job */
    struct job *head, *tail;
    bool stopping;
    struct hook hooks[MAX_HOOKS];
    int nhooks;
    const char *target; /* the opening module: the writer logs (and runs its handlers) as it */
};

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        log_error("SQLite statement failed",
                  LOG_FIELDS(LOG_S("sql", sql), LOG_S("error", msg ? msg : sqlite3_errstr(rc))));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void run_batch(struct store *s, struct job *batch, const struct hook *hooks, int nhooks)
{
    bool ok = exec(s->db, "BEGIN IMMEDIATE") == 0;
    for (struct job *j = batch; j != NULL; j = j->next) {
        if (!ok) {
            j->rc = STORE_EIO;
            continue;
        }
        if (exec(s->db, "SAVEPOINT job") != 0) {
            j->rc = STORE_EIO;
            continue;
        }
        j->rc = j->fn(s->db, j->arg);
        if (j->rc < 0) {
            exec(s->db, "ROLLBACK TO job");
        }
        exec(s->db, "RELEASE job");
    }
    if (ok && exec(s->db, "COMMIT") != 0) {
        exec(s->db, "ROLLBACK");
        ok = false;
    }
    if (!ok) {
        for (struct job *j = batch; j != NULL; j = j->next) {
            j->rc = STORE_EIO;
        }
        return;
    }
    for (int i = 0; i < nhooks; i++) {
        hooks[i].fn(hooks[i].arg);
    }
}

static void *writer_main(void *arg)
{
    struct store *s = arg;
    log_set_target(s->target);
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->head == NULL && !s->stopping) {
            pthread_cond_wait(&s->work, &s->lock);
        }
        if (s->head == NULL) {
            break;
        }
        /* Take up to MAX_BATCH queued calls: they share one transaction and one fsync. */
        struct job *batch = s->head, *last = s->head;
        int n = 1;
        while (last->next != NULL && n < MAX_BATCH) {
            last = last->next;
            n++;
        }
        s->head = last->next;
        if (s->head == NULL) {
            s->tail = NULL;
        }
        last->next = NULL;
        struct hook hooks[MAX_HOOKS];
        int nhooks = s->nhooks;
        memcpy(hooks, s->hooks, sizeof hooks);
        pthread_mutex_unlock(&s->lock);

        run_batch(s, batch, hooks, nhooks);

        pthread_mutex_lock(&s->lock);
        for (struct job *j = batch; j != NULL;) {
            struct job *next = j->next; /* j lives on its caller's stack: read before done */
            j->done = true;
            j = next;
        }
        pthread_cond_broadcast(&s->done);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static int open_conn(const char *path, int flags, sqlite3 **db)
{
    int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        log_error("Cannot open database",
                  LOG_FIELDS(LOG_S("path", path), LOG_S("error", sqlite3_errstr(rc))));
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(*db, 5000);
    return 0;
}

int store_open(const struct store_opts *opts, struct store **out)
{
    struct store *s = calloc(1, sizeof *s);
    if (s == NULL || (s->path = strdup(opts->path)) == NULL) {
        free(s);
        return -1;
    }
    static const char *const sync_sql[] = {"PRAGMA synchronous=OFF", "PRAGMA synchronous=NORMAL",
                                           "PRAGMA synchronous=FULL"};
    if (open_conn(s->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s->db) != 0 ||
        exec(s->db, "PRAGMA journal_mode=WAL") != 0 || exec(s->db, sync_sql[opts->sync]) != 0 ||
        (opts->schema != NULL && exec(s->db, opts->schema) != 0)) {
        sqlite3_close(s->db);
        free(s->path);
        free(s);
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->done, NULL);
    s->target = log_target();
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        sqlite3_close(s->db);
        free(s->path);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    if (sqlite3_close(s->db) != SQLITE_OK) {
        log_error("Database left open: statements not finalized",
                  LOG_FIELDS(LOG_S("path", s->path)));
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->done);
    free(s->path);
    free(s);
}

int store_run(struct store *s, store_fn fn, void *arg)
{
    struct job j = {.fn = fn, .arg = arg, .rc = 0, .done = false, .next = NULL};
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return STORE_EIO;
    }
    if (s->tail != NULL) {
        s->tail->next = &j;
    } else {
        s->head = &j;
    }
    s->tail = &j;
    pthread_cond_signal(&s->work);
    while (!j.done) {
        pthread_cond_wait(&s->done, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return j.rc;
}

static int schema_job(sqlite3 *db, void *arg)
{
    return exec(db, arg);
}

int store_exec_schema(struct store *s, const char *sql)
{
    return store_run(s, schema_job, (void *)sql) == 0 ? 0 : -1;
}

int store_on_commit(struct store *s, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&s->lock);
    int rc = -1;
    if (s->nhooks < MAX_HOOKS) {
        s->hooks[s->nhooks++] = (struct hook){fn, arg};
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int store_open_reader(const struct store *s, sqlite3 **db)
{
    return open_conn(s->path, SQLITE_OPEN_READONLY, db);
}

const char *store_path(const struct store *s)
{
    return s->path;
}

void store_text(sqlite3_stmt *st, int i, char *dst, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, size, "%s", t ? (const char *)t : "");
}
