/* store: the writer thread with group commit, and the store's health (the lock: store_lock.c). */
#include "store.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HOOKS 8
#define MAX_BATCH 1024
#define TICK_MS 1000 /* an idle writer checks the file (and probes a failing store) this often */

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
    char name[64];      /* file name without ".db": the metrics label */
    dev_t dev;          /* identity of the file opened, to notice it deleted or replaced */
    ino_t ino;
    atomic_int health;      /* enum store_health */
    sqlite3 *check_db;      /* the start-up integrity check's reader (interrupted on close) */
    pthread_t check_thread; /* that check */
    bool checking;
};

/* Returns SQLite's result code: 0 (SQLITE_OK) or the error, which is logged. */
static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        log_error("SQLite statement failed",
                  LOG_FIELDS(LOG_S("sql", sql), LOG_S("error", msg ? msg : sqlite3_errstr(rc))));
        sqlite3_free(msg);
    }
    return rc;
}

/* ---- health ---- */

const char *store_health_name(enum store_health h)
{
    static const char *const names[] = {"ok", "failing", "corrupt", "lost"};
    return h >= STORE_OK && h <= STORE_LOST ? names[h] : "unknown";
}

static void health_metrics(struct store *s, enum store_health h)
{
    char labels[96];
    snprintf(labels, sizeof labels, "store=\"%s\"", s->name);
    metrics_gauge_set("leadbus_store_writable",
                      "1 while the store commits, 0 while it cannot (disk full, corrupt, deleted)",
                      labels, h == STORE_OK ? 1 : 0);
}

/*
 * Move to `to`. CORRUPT and LOST are final; FAILING and OK alternate. The
 * change is logged once, naming the file.
 */
static void set_health(struct store *s, enum store_health to, const char *why)
{
    int from = atomic_load(&s->health);
    for (;;) {
        if (from == (int)to || from == STORE_CORRUPT || from == STORE_LOST) {
            return;
        }
        if (atomic_compare_exchange_weak(&s->health, &from, (int)to)) {
            break;
        }
    }
    health_metrics(s, to);
    const char *caller = log_target(); /* an HTTP thread may notice it: log as the store's own */
    log_set_target(s->target);
    const struct log_field *f =
        LOG_FIELDS(LOG_S("path", s->path), LOG_S("state", store_health_name(to)),
                   LOG_S("cause", why != NULL ? why : ""));
    if (to == STORE_OK) {
        log_info("Store commits again; ready", f);
    } else if (to == STORE_FAILING) {
        log_error("Store cannot commit; not ready until it can (writes answer 503)", f);
    } else if (to == STORE_CORRUPT) {
        log_error("Store is corrupt; refusing writes and not ready (restore it from a backup)", f);
    } else {
        log_error("Store file was deleted or replaced while open; refusing writes and not ready "
                  "(what was written since is not in any file: restart and restore)",
                  f);
    }
    log_set_target(caller);
}

static void count_failure(struct store *s)
{
    char labels[96];
    snprintf(labels, sizeof labels, "store=\"%s\"", s->name);
    metrics_counter_add("leadbus_store_commit_failures_total",
                        "Transactions the store could not commit", labels, 1);
}

/* Is the file at the path still the one we opened? */
static void check_identity(struct store *s)
{
    struct stat st;
    if (stat(s->path, &st) != 0) {
        set_health(s, STORE_LOST, strerror(errno));
    } else if (st.st_dev != s->dev || st.st_ino != s->ino) {
        set_health(s, STORE_LOST, "another file is at the path");
    }
}

/* After a failed statement: corruption is final, anything else may pass. */
static void classify(struct store *s, int rc)
{
    int primary = rc & 0xff;
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
        set_health(s, STORE_CORRUPT, sqlite3_errstr(rc));
    } else {
        set_health(s, STORE_FAILING, sqlite3_errstr(rc));
    }
}

enum store_health store_health(struct store *s)
{
    check_identity(s);
    return (enum store_health)atomic_load(&s->health);
}

bool store_ready(void *arg)
{
    return store_health(arg) == STORE_OK;
}

static bool refusing(struct store *s)
{
    int h = atomic_load(&s->health);
    return h == STORE_CORRUPT || h == STORE_LOST;
}

/* Is a failed job's error the store's (disk, corruption) rather than the job's own? */
static bool store_error(int rc)
{
    int primary = rc & 0xff;
    return primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_CORRUPT ||
           primary == SQLITE_NOTADB || primary == SQLITE_CANTOPEN || primary == SQLITE_READONLY;
}

static void fail_all(struct job *batch)
{
    for (struct job *j = batch; j != NULL; j = j->next) {
        j->rc = STORE_EIO;
    }
}

static void run_batch(struct store *s, struct job *batch, const struct hook *hooks, int nhooks)
{
    check_identity(s);
    if (refusing(s)) {
        fail_all(batch);
        return;
    }
    sqlite3_int64 changes = sqlite3_total_changes64(s->db);
    int rc = exec(s->db, "BEGIN IMMEDIATE");
    int job_error = SQLITE_OK;
    for (struct job *j = batch; j != NULL; j = j->next) {
        if (rc != SQLITE_OK) {
            break;
        }
        if (exec(s->db, "SAVEPOINT job") != SQLITE_OK) {
            j->rc = STORE_EIO;
            continue;
        }
        j->rc = j->fn(s->db, j->arg);
        if (j->rc < 0) {
            int ec = sqlite3_extended_errcode(s->db);
            job_error = store_error(ec) ? ec : job_error;
            exec(s->db, "ROLLBACK TO job");
        }
        exec(s->db, "RELEASE job");
    }
    if (rc == SQLITE_OK) {
        rc = exec(s->db, "COMMIT");
        if (rc != SQLITE_OK) {
            exec(s->db, "ROLLBACK");
        }
    }
    if (rc != SQLITE_OK || job_error != SQLITE_OK) {
        count_failure(s);
        classify(s, rc != SQLITE_OK ? rc : job_error);
    }
    if (rc != SQLITE_OK) {
        fail_all(batch);
        return;
    }
    /* Only a commit that wrote proves the store writable: a transaction that changed nothing
     * (a prune with nothing to prune) commits even on a full disk. The probe decides then. */
    if (job_error == SQLITE_OK && sqlite3_total_changes64(s->db) > changes) {
        set_health(s, STORE_OK, NULL);
    }
    for (int i = 0; i < nhooks; i++) {
        hooks[i].fn(hooks[i].arg);
    }
}

/* A failing store tries a one-row commit each tick, so it turns ready again once it can. */
static void probe(struct store *s)
{
    if (atomic_load(&s->health) != STORE_FAILING) {
        return;
    }
    char sql[160];
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO store_probe(id, ms) VALUES(1, %lld)",
             (long long)clock_now_ms());
    int rc = exec(s->db, "BEGIN IMMEDIATE");
    if (rc == SQLITE_OK) {
        rc = exec(s->db, sql);
    }
    if (rc == SQLITE_OK) {
        rc = exec(s->db, "COMMIT");
    }
    if (rc != SQLITE_OK) {
        exec(s->db, "ROLLBACK");
        classify(s, rc);
        return;
    }
    set_health(s, STORE_OK, NULL);
}

static void tick(struct store *s)
{
    check_identity(s);
    probe(s);
}

static void *writer_main(void *arg)
{
    struct store *s = arg;
    log_set_target(s->target);
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->head == NULL && !s->stopping) {
            struct timespec deadline = clock_deadline_in(TICK_MS);
            if (pthread_cond_timedwait(&s->work, &s->lock, &deadline) == ETIMEDOUT) {
                pthread_mutex_unlock(&s->lock);
                tick(s);
                pthread_mutex_lock(&s->lock);
            }
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

/* A store and its -wal/-shm are the owner's alone (0600), also when an older leadbus or another
 * umask made them wider: SQLite gives a new -wal/-shm the db file's mode. */
static void restrict_files(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char p[1100];
        struct stat sb;
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        if (stat(p, &sb) == 0 && (sb.st_mode & 077) != 0 && chmod(p, 0600) != 0) {
            log_warn("Cannot make a store file private (0600)",
                     LOG_FIELDS(LOG_S("path", p), LOG_S("error", strerror(errno))));
        }
    }
}

static int open_conn(const char *path, int flags, sqlite3 **db)
{
    restrict_files(path);
    int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        log_error("Cannot open database",
                  LOG_FIELDS(LOG_S("path", path), LOG_S("error", sqlite3_errstr(rc))));
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    restrict_files(path); /* created just now by a process with a wider umask (a library user) */
    sqlite3_busy_timeout(*db, 5000);
    return 0;
}

/* ---- open and close ---- */

/* Runs at open on a reader connection: corruption found later in a quiet table still counts. */
static void *integrity_main(void *arg)
{
    struct store *s = arg;
    log_set_target(s->target);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->check_db, "PRAGMA quick_check(1)", -1, &st, NULL) == SQLITE_OK) {
        int rc = sqlite3_step(st);
        const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
        if (rc == SQLITE_ROW && t != NULL && strcmp((const char *)t, "ok") != 0) {
            set_health(s, STORE_CORRUPT, (const char *)t);
        } else if (rc != SQLITE_ROW && rc != SQLITE_INTERRUPT) {
            classify(s, rc);
        }
    }
    sqlite3_finalize(st);
    return NULL;
}

static void set_name(struct store *s)
{
    const char *base = strrchr(s->path, '/');
    snprintf(s->name, sizeof s->name, "%s", base != NULL ? base + 1 : s->path);
    size_t n = strlen(s->name);
    if (n > 3 && strcmp(s->name + n - 3, ".db") == 0) {
        s->name[n - 3] = '\0';
    }
}

/* ---- schema versions ---- */

int store_schema_version(const struct store_opts *opts)
{
    return opts->nmigrations > 0 ? opts->migrations[opts->nmigrations - 1].version : 1;
}

/* One integer from a one-row query (PRAGMA user_version, a count), or -1. */
static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

/*
 * Bring the store to store_schema_version(opts) in one transaction, or refuse a newer one.
 * Returns 0, or -1 after an ERROR naming the file (nothing written).
 */
static int migrate(struct store *s, const struct store_opts *opts)
{
    int known = store_schema_version(opts);
    if (exec(s->db, "BEGIN IMMEDIATE") != SQLITE_OK) {
        return -1;
    }
    int64_t found = query_int(s->db, "PRAGMA user_version");
    int64_t tables = query_int(s->db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'");
    if (found < 0 || tables < 0) {
        log_error("Cannot read the store's schema version", LOG_FIELDS(LOG_S("path", s->path)));
        goto fail;
    }
    if (found > known) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "Store was written by a newer leadbus (schema version %lld; this one knows up to "
                 "%d): refusing to start. Run the newer release, or restore a backup made by this "
                 "one",
                 (long long)found, known);
        log_error(msg, LOG_FIELDS(LOG_S("path", s->path), LOG_I("storeVersion", found),
                                  LOG_I("knownVersion", known)));
        goto fail;
    }
    if (exec(s->db, "CREATE TABLE IF NOT EXISTS store_probe(id INTEGER PRIMARY KEY, ms INTEGER)") !=
            SQLITE_OK ||
        (opts->schema != NULL && exec(s->db, opts->schema) != SQLITE_OK)) {
        goto fail;
    }
    int64_t from = found > 0 ? found : 1; /* new, or made before versions: version 1's tables */
    for (size_t i = 0; i < opts->nmigrations; i++) {
        if (opts->migrations[i].version > from &&
            exec(s->db, opts->migrations[i].sql) != SQLITE_OK) {
            log_error("Store migration failed; the store is left as it was",
                      LOG_FIELDS(LOG_S("path", s->path), LOG_I("fromVersion", from),
                                 LOG_I("step", opts->migrations[i].version)));
            goto fail;
        }
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", known);
    if ((found != known && exec(s->db, sql) != SQLITE_OK) || exec(s->db, "COMMIT") != SQLITE_OK) {
        goto fail;
    }
    if (tables > 0 && found < known) {
        log_info("Store schema upgraded",
                 LOG_FIELDS(LOG_S("path", s->path), LOG_I("fromVersion", found == 0 ? 1 : found),
                            LOG_I("toVersion", known),
                            LOG_S("adopted", found == 0 ? "yes" : "no")));
    }
    return 0;
fail:
    exec(s->db, "ROLLBACK");
    return -1;
}

static int open_db(struct store *s, const struct store_opts *opts)
{
    static const char *const sync_sql[] = {"PRAGMA synchronous=OFF", "PRAGMA synchronous=NORMAL",
                                           "PRAGMA synchronous=FULL"};
    if (open_conn(s->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s->db) != 0 ||
        exec(s->db, "PRAGMA journal_mode=WAL") != 0 || exec(s->db, sync_sql[opts->sync]) != 0 ||
        /* erased or expired personal data is zeroed where it was, not left in freed space
         * (FAST: only where that costs no extra I/O) */
        exec(s->db, "PRAGMA secure_delete=FAST") != 0 || migrate(s, opts) != 0) {
        return -1;
    }
    struct stat st;
    if (stat(s->path, &st) != 0) {
        log_error("Cannot stat database", LOG_FIELDS(LOG_S("path", s->path)));
        return -1;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    return 0;
}

int store_open(const struct store_opts *opts, struct store **out)
{
    char err[1400];
    if (store_lock(opts->path, err, sizeof err) != 0) {
        log_error("Cannot open store", LOG_FIELDS(LOG_S("error", err)));
        return -1;
    }
    struct store *s = calloc(1, sizeof *s);
    if (s == NULL || (s->path = strdup(opts->path)) == NULL) {
        free(s);
        return -1;
    }
    set_name(s);
    atomic_init(&s->health, STORE_OK);
    if (open_db(s, opts) != 0) {
        sqlite3_close(s->db);
        free(s->path);
        free(s);
        return -1;
    }
    health_metrics(s, STORE_OK);
    pthread_mutex_init(&s->lock, NULL);
    clock_cond_init(&s->work);
    pthread_cond_init(&s->done, NULL);
    s->target = log_target();
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        sqlite3_close(s->db);
        free(s->path);
        free(s);
        return -1;
    }
    s->checking = open_conn(s->path, SQLITE_OPEN_READONLY, &s->check_db) == 0 &&
                  pthread_create(&s->check_thread, NULL, integrity_main, s) == 0;
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (s == NULL) {
        return;
    }
    if (s->checking) {
        sqlite3_interrupt(s->check_db);
        pthread_join(s->check_thread, NULL);
    }
    sqlite3_close(s->check_db);
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
    if (s->stopping || refusing(s)) {
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
    return exec(db, arg) == SQLITE_OK ? 0 : -1;
}

/*
 * A corrupt or lost store refuses writes until a restart, and its process stays up, not ready
 * (its health says why): a schema it cannot add then does not stop the start-up. Any other
 * failure does.
 */
int store_exec_schema(struct store *s, const char *sql)
{
    if (store_run(s, schema_job, (void *)sql) == 0) {
        return 0;
    }
    enum store_health h = store_health(s);
    return h == STORE_CORRUPT || h == STORE_LOST ? 0 : -1;
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

const char *store_name(const struct store *s)
{
    return s->name;
}

void store_text(sqlite3_stmt *st, int i, char *dst, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

/* ---- backup ---- */

int store_backup(const char *path, const char *dest, int *version, long long *bytes, char *err,
                 size_t size)
{
    sqlite3 *src = NULL, *dst = NULL;
    sqlite3_backup *b = NULL;
    int rc = -1;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(err, size, "%s: %s", path, strerror(errno));
        return -1;
    }
    int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, size, "%s: cannot create the copy: %s", dest, strerror(errno));
        return -1;
    }
    close(fd);
    if (sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_open_v2(dest, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK) {
        snprintf(err, size, "%s: cannot open: %s", src == NULL ? path : dest,
                 sqlite3_errmsg(dst != NULL ? dst : src));
        goto out;
    }
    sqlite3_busy_timeout(src, 5000);
    b = sqlite3_backup_init(dst, "main", src, "main");
    if (b == NULL) {
        snprintf(err, size, "%s: cannot start the backup: %s", dest, sqlite3_errmsg(dst));
        goto out;
    }
    /* All pages in one step: one read transaction on the source, so one committed state. */
    int step = sqlite3_backup_step(b, -1);
    for (int tries = 0; (step == SQLITE_BUSY || step == SQLITE_LOCKED) && tries < 50; tries++) {
        sqlite3_sleep(100);
        step = sqlite3_backup_step(b, -1);
    }
    int fin = sqlite3_backup_finish(b);
    if (step != SQLITE_DONE || fin != SQLITE_OK) {
        snprintf(err, size, "%s: backup failed: %s", path,
                 sqlite3_errstr(step != SQLITE_DONE ? step : fin));
        goto out;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(dst, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        *version = sqlite3_column_int(st, 0);
        rc = 0;
    } else {
        snprintf(err, size, "%s: cannot read the copy: %s", dest, sqlite3_errmsg(dst));
    }
    sqlite3_finalize(st);
out:
    sqlite3_close(src);
    if (dst != NULL && sqlite3_close(dst) != SQLITE_OK) {
        rc = -1;
    }
    if (rc == 0 && stat(dest, &sb) == 0) {
        *bytes = (long long)sb.st_size;
    } else if (rc != 0) {
        unlink(dest);
    }
    return rc;
}
