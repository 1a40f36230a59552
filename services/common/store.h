/*
 * store: a service's SQLite database and the one writer thread that owns it.
 *
 * Every write goes through store_run(): the caller's function runs on the
 * writer thread inside a transaction, and store_run() returns only once that
 * transaction is durable. Calls that arrive together are committed together
 * (group commit): one fsync for many requests, each in its own savepoint so a
 * failing one rolls back alone. Readers that must not queue behind writes
 * open their own connection with store_open_reader() (WAL lets them run
 * alongside the writer).
 *
 * Memory: the store owns its connection; a function given to store_run() must
 * not keep the sqlite3 pointer. Commit hooks run on the writer thread after
 * every durable commit and must not block.
 */
#ifndef LEADBUS_STORE_H
#define LEADBUS_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

enum store_sync { STORE_SYNC_OFF, STORE_SYNC_NORMAL, STORE_SYNC_FULL };

/*
 * Schema versions. A store records its version in `PRAGMA user_version`. Version 1 is the
 * `schema` of store_opts, which therefore never changes (CREATE TABLE IF NOT EXISTS ...);
 * every later change is a step here: the SQL that takes a store from `version - 1` to
 * `version`. At open, in one transaction: the schema (a new store gets version 1's tables),
 * then every step above the store's version, then user_version = the last step's version.
 * A store without user_version but with tables (made by a release before versions) is
 * version 1. A store newer than the last step is refused: store_open() fails with an ERROR
 * naming the file and both versions, before anything is written.
 */
struct store_migration {
    int version; /* 2, 3, ... in order, no gaps */
    const char *sql;
};

struct store_opts {
    const char *path;   /* file path; created with its directory's permissions */
    const char *schema; /* version 1: SQL run at open (CREATE TABLE IF NOT EXISTS ...) */
    enum store_sync sync;
    const struct store_migration *migrations; /* steps after version 1, or NULL */
    size_t nmigrations;
};

/* The version a store opened with these opts ends at (1 without steps). */
int store_schema_version(const struct store_opts *opts);

struct store;

/* Runs on the writer thread inside a transaction. Return < 0 to roll back this call alone. */
typedef int (*store_fn)(sqlite3 *db, void *arg);

#define STORE_EIO (-1000) /* the commit itself failed: nothing of this call was kept */

int store_open(const struct store_opts *opts, struct store **out);
/* Stops the writer after the queued calls and closes the database. NULL is fine. */
void store_close(struct store *s);

/* Run fn in a transaction and wait until it is durable; returns fn's result or STORE_EIO. */
int store_run(struct store *s, store_fn fn, void *arg);

/* Add schema after open (each module of a service brings its tables). */
int store_exec_schema(struct store *s, const char *sql);

/* Register a hook called on the writer thread after each commit. At most 8. */
int store_on_commit(struct store *s, void (*fn)(void *arg), void *arg);

/* Open a read-only connection for one thread's use; close with sqlite3_close(). */
int store_open_reader(const struct store *s, sqlite3 **db);

const char *store_path(const struct store *s);
/* The store's name: its file name without directory and ".db" ("ingest"). */
const char *store_name(const struct store *s);

/*
 * One writer per store: an exclusive lock (flock) on `<path>.lock`, holding
 * the owner's pid, kept for the life of the process. Taking it again in the
 * same process is a no-op; store_open() takes it too. Returns 0, or -1 with
 * `err` naming the store and the pid of the process that holds it.
 */
int store_lock(const char *path, char *err, size_t size);

/*
 * Can the store commit? OK; FAILING while commits fail for a reason that may
 * pass (disk full, I/O error: a probe commit every second notices when it
 * does); CORRUPT (SQLite found corruption, or the start-up integrity check
 * failed) and LOST (the file at the path was deleted or replaced) stay until
 * a restart, and store_run() refuses every write with STORE_EIO. Each change
 * is logged (ERROR, or INFO on recovery) and shown in the gauge
 * leadbus_store_writable{store} and the counter
 * leadbus_store_commit_failures_total{store}.
 */
enum store_health { STORE_OK, STORE_FAILING, STORE_CORRUPT, STORE_LOST };

/* The current health; checks the file at the path first. Any thread. */
enum store_health store_health(struct store *s);
const char *store_health_name(enum store_health h);
/* For http_ready_check: true while store_health(arg) is STORE_OK. */
bool store_ready(void *arg);

/*
 * Online backup: a consistent copy of the store at `path` (which a running process may be
 * writing) into a new file `dest` (0600; an existing file is refused), with SQLite's backup
 * API in one step, so the copy is one committed state. On success *version is the copy's
 * schema version and *bytes its size. Returns 0, or -1 with `err` naming the file.
 */
int store_backup(const char *path, const char *dest, int *version, long long *bytes, char *err,
                 size_t size);

/* Column `i` of the current row as text into dst ("" for NULL), always terminated. */
void store_text(sqlite3_stmt *st, int i, char *dst, size_t size);

#endif
