/* Unit tests for store: group commit keeps each call's savepoint separate, hooks fire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "outbox.h"
#include "store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/leadbus-store-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    snprintf(path, sizeof path, "%s/t.db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int insert(sqlite3 *db, void *arg)
{
    long v = (long)(intptr_t)arg;
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO t(v) VALUES(%ld)", v);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return -1;
    }
    return v < 0 ? -1 : 0; /* negative values ask to be rolled back after writing */
}

struct worker {
    struct store *s;
    int base;
    int failures;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 200; i++) {
        long v = w->base + i;
        if (i % 10 == 0) {
            v = -v - 1;
        }
        int rc = store_run(w->s, insert, (void *)(intptr_t)v);
        if ((v < 0) != (rc < 0)) {
            w->failures++;
        }
    }
    return NULL;
}

static int hook_calls;
static void count_hook(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&hook_calls, 1, __ATOMIC_SEQ_CST);
}

static int count_rows(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*), sum(v < 0) FROM t", -1, &st, NULL);
    sqlite3_step(st);
    int *out = arg;
    out[0] = sqlite3_column_int(st, 0);
    out[1] = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    return 0;
}

static void test_group_commit_savepoints(void **state)
{
    (void)state;
    struct store_opts o = {
        .path = path, .schema = "CREATE TABLE IF NOT EXISTS t(v INTEGER)", .sync = STORE_SYNC_FULL};
    struct store *s;
    assert_int_equal(store_open(&o, &s), 0);
    assert_int_equal(store_on_commit(s, count_hook, NULL), 0);
    struct worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){s, i * 1000, 0};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    int counts[2];
    assert_int_equal(store_run(s, count_rows, counts), 0);
    assert_int_equal(counts[0], 4 * 180); /* every 10th call rolled back alone */
    assert_int_equal(counts[1], 0);
    assert_true(hook_calls > 0);
    store_close(s);

    /* Durable: a new store on the same file sees them. */
    assert_int_equal(store_open(&o, &s), 0);
    assert_int_equal(store_run(s, count_rows, counts), 0);
    assert_int_equal(counts[0], 4 * 180);
    store_close(s);
}

struct append_args {
    struct outbox *ob;
    int n;
};

static int append_n(sqlite3 *db, void *arg)
{
    struct append_args *a = arg;
    struct proto_lead_synced ev;
    memset(&ev, 0, sizeof ev);
    strcpy(ev.lead_id, "L");
    strcpy(ev.zoho_id, "Z");
    strcpy(ev.action, "created");
    for (int i = 0; i < a->n; i++) {
        if (outbox_append(a->ob, db, PROTO_LEAD_SYNCED, &ev, NULL) != 0) {
            return -1;
        }
    }
    return 0;
}

static int fail_after_append(sqlite3 *db, void *arg)
{
    append_n(db, arg);
    return -1;
}

static void test_outbox_seq_and_prune(void **state)
{
    (void)state;
    struct store_opts o = {.path = path, .schema = outbox_schema, .sync = STORE_SYNC_OFF};
    struct store *s;
    assert_int_equal(store_open(&o, &s), 0);
    struct append_args a = {outbox_new("zoho-sync"), 5};
    assert_int_equal(store_run(s, append_n, &a), 0);
    /* A rolled-back call leaves no hole in the sequence. */
    assert_true(store_run(s, fail_after_append, &a) < 0);
    assert_int_equal(store_run(s, append_n, &a), 0);

    sqlite3 *r;
    assert_int_equal(store_open_reader(s, &r), 0);
    struct proto_heartbeat hb;
    assert_int_equal(outbox_streams(r, &hb), 0);
    assert_int_equal(hb.count, 1);
    assert_string_equal(hb.streams[0].topic, "lead.synced");
    assert_int_equal(hb.streams[0].last_seq, 10);
    assert_int_equal(outbox_count(r), 10);

    /* Pruning everything keeps the newest of the stream. */
    assert_int_equal(outbox_prune(r, INT64_MAX), -1); /* readers cannot write */
    sqlite3_close(r);
    outbox_free(a.ob);
    store_close(s);
}

/* One writer per store: the lock is the process's; another process is refused and told who. */
static void test_lock_one_writer(void **state)
{
    (void)state;
    char err[1400];
    assert_int_equal(store_lock(path, err, sizeof err), 0);
    assert_int_equal(store_lock(path, err, sizeof err), 0); /* again in this process: fine */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* The child inherited the parent's registry: another spelling of the same file
         * reaches the lock itself, as a fresh process would. */
        char e[1400] = "", other[160], want[64];
        snprintf(other, sizeof other, "%s/./t.db", dir);
        snprintf(want, sizeof want, "(pid %ld holds", (long)getppid());
        int ok = store_lock(other, e, sizeof e) == -1 && strstr(e, other) != NULL &&
                 strstr(e, want) != NULL && strstr(e, "one process per store") != NULL;
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The file deleted under a running store: noticed, and every write refused from then on. */
static void test_deleted_file_refuses_writes(void **state)
{
    (void)state;
    struct store_opts o = {
        .path = path, .schema = "CREATE TABLE IF NOT EXISTS t(v INTEGER)", .sync = STORE_SYNC_FULL};
    struct store *s;
    assert_int_equal(store_open(&o, &s), 0);
    assert_string_equal(store_name(s), "t");
    assert_int_equal(store_run(s, insert, (void *)(intptr_t)1), 0);
    assert_int_equal(store_health(s), STORE_OK);
    assert_true(store_ready(s));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(store_health(s), STORE_LOST);
    assert_false(store_ready(s));
    assert_int_equal(store_run(s, insert, (void *)(intptr_t)2), STORE_EIO);
    /* A new file at the same path does not bring it back: it is not the file we wrote. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(store_health(s), STORE_LOST);
    assert_string_equal(store_health_name(store_health(s)), "lost");
    store_close(s);
}

/* PRAGMA user_version of the file at `path` (a fresh connection). */
static int file_version(void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int count_b(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT count(b) FROM t", -1, &st, NULL) == SQLITE_OK &&
                     sqlite3_step(st) == SQLITE_ROW
                 ? 0
                 : -1;
    *(int *)arg = rc == 0 ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return rc;
}

/* Version 1 is the schema; steps run forward once; a newer store and a failing step are
 * refused and leave the file as it was. */
static void test_schema_versions(void **state)
{
    (void)state;
    static const struct store_migration steps[] = {
        {2, "ALTER TABLE t ADD COLUMN b INTEGER;"},
        {3, "UPDATE t SET b = v * 10;"},
    };
    static const struct store_migration bad[] = {{4, "ALTER TABLE nope ADD COLUMN c;"}};
    struct store *s = NULL;
    struct store_opts o = {.path = path, .schema = "CREATE TABLE IF NOT EXISTS t(v INTEGER);"};
    assert_int_equal(store_schema_version(&o), 1);
    assert_int_equal(store_open(&o, &s), 0);
    assert_int_equal(store_run(s, insert, (void *)(intptr_t)7), 0);
    store_close(s);
    assert_int_equal(file_version(), 1);

    o.migrations = steps;
    o.nmigrations = 2;
    assert_int_equal(store_schema_version(&o), 3);
    assert_int_equal(store_open(&o, &s), 0);
    int n = 0;
    assert_int_equal(store_run(s, count_b, &n), 0);
    assert_int_equal(n, 1); /* step 3 ran over the row version 1 kept */
    store_close(s);
    assert_int_equal(file_version(), 3);
    assert_int_equal(store_open(&o, &s), 0); /* again: nothing to do */
    store_close(s);

    o.migrations = bad; /* a step that fails: refused, still version 3 */
    o.nmigrations = 1;
    assert_int_not_equal(store_open(&o, &s), 0);
    assert_int_equal(file_version(), 3);

    o.migrations = NULL; /* a binary that knows only version 1: the store is newer */
    o.nmigrations = 0;
    assert_int_not_equal(store_open(&o, &s), 0);
    assert_int_equal(file_version(), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit_savepoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_seq_and_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_one_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_file_refuses_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_versions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
