/* backup: `leadbus backup DIR` and `leadbus restore DIR [NAME...]` (backup.h). */
#include "backup.h"
#include "config.h"
#include "outbox.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Downstream first; see backup.h. */
static const char *const backup_stores[] = {"stats",     "dialer", "call-scheduler",
                                            "zoho-sync", "ingest", NULL};

bool backup_is_command(const char *arg)
{
    return arg != NULL && (strcmp(arg, "backup") == 0 || strcmp(arg, "restore") == 0);
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A small file (the generated api_key) copied to a new file, 0600. */
static int copy_file(const char *from, const char *to, char *err, size_t size)
{
    char buf[4096];
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ssize_t n = 0;
    int rc = in < 0 || out < 0 ? -1 : 0;
    while (rc == 0 && (n = read(in, buf, sizeof buf)) > 0) {
        rc = write(out, buf, (size_t)n) == n ? 0 : -1;
    }
    if (n < 0 || (out >= 0 && fsync(out) != 0)) {
        rc = -1;
    }
    if (rc != 0) {
        snprintf(err, size, "%s -> %s: %s", from, to, strerror(errno));
    }
    if (in >= 0) {
        close(in);
    }
    if (out >= 0) {
        close(out);
    }
    return rc;
}

static int make_dir(const char *dir, char *err, size_t size)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, size, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int backup_run(const char *data_dir, const char *dir)
{
    char err[1400], from[1100], to[1100];
    int copied = 0, failed = 0;
    if (make_dir(dir, err, sizeof err) != 0) {
        fprintf(stderr, "leadbus: backup: %s\n", err);
        return 2;
    }
    for (int i = 0; backup_stores[i] != NULL; i++) {
        snprintf(from, sizeof from, "%s/%s.db", data_dir, backup_stores[i]);
        snprintf(to, sizeof to, "%s/%s.db", dir, backup_stores[i]);
        if (!exists(from)) {
            continue;
        }
        int version = 0;
        long long bytes = 0;
        if (store_backup(from, to, &version, &bytes, err, sizeof err) != 0) {
            fprintf(stderr, "leadbus: backup: %s\n", err);
            failed++;
            continue;
        }
        printf("%s: %s (%lld bytes, schema version %d)\n", backup_stores[i], to, bytes, version);
        copied++;
    }
    snprintf(from, sizeof from, "%s/api_key", data_dir);
    snprintf(to, sizeof to, "%s/api_key", dir);
    if (exists(from)) {
        if (copy_file(from, to, err, sizeof err) != 0) {
            fprintf(stderr, "leadbus: backup: %s\n", err);
            failed++;
        } else {
            printf("api_key: %s\n", to);
        }
    }
    if (copied == 0 && failed == 0) {
        fprintf(stderr, "leadbus: backup: no store in DATA_DIR (%s)\n", data_dir);
        return 1;
    }
    return failed > 0 ? 1 : 0;
}

/* A new stream epoch for the copy, its kept frames rewritten with it: 1 if it publishes, 0, or
 * -1. (Only deleting bus_epoch would leave replayed frames under the old epoch: subscribers
 * would take them for a second live publisher.) */
static int new_epoch(const char *path, char *err, size_t size)
{
    sqlite3 *db = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        int has = sqlite3_prepare_v2(db,
                                     "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                                     "'bus_epoch'",
                                     -1, &st, NULL) == SQLITE_OK &&
                  sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        rc = !has ? 0 : outbox_renew_epoch(db) != 0 ? 1 : -1;
        if (sqlite3_exec(db, rc >= 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK) {
            rc = -1;
        }
    }
    if (rc < 0) {
        snprintf(err, size, "%s: cannot give its stream a new epoch: %s", path, sqlite3_errmsg(db));
    }
    if (sqlite3_close(db) != SQLITE_OK) {
        rc = -1;
    }
    return rc;
}

/* One store: lock it (no process may run on it), copy, new epoch, replace. */
static int restore_one(const char *data_dir, const char *dir, const char *name, bool named)
{
    char err[1400], from[1100], to[1100], tmp[1200], side[1200];
    snprintf(from, sizeof from, "%s/%s.db", dir, name);
    snprintf(to, sizeof to, "%s/%s.db", data_dir, name);
    if (!exists(from)) {
        if (named) {
            fprintf(stderr, "leadbus: restore: %s: no such copy\n", from);
            return -1;
        }
        return 0;
    }
    if (store_lock(to, err, sizeof err) != 0) {
        fprintf(stderr, "leadbus: restore: %s (stop it first)\n", err);
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.restoring", to);
    unlink(tmp);
    int version = 0, epoch = 0;
    long long bytes = 0;
    if (store_backup(from, tmp, &version, &bytes, err, sizeof err) != 0 ||
        (epoch = new_epoch(tmp, err, sizeof err)) < 0) {
        fprintf(stderr, "leadbus: restore: %s\n", err);
        unlink(tmp);
        return -1;
    }
    /* The replaced store's -wal must not be applied to the copy. */
    static const char *const sides[] = {"-wal", "-shm"};
    for (int i = 0; i < 2; i++) {
        snprintf(side, sizeof side, "%s%s", to, sides[i]);
        if (unlink(side) != 0 && errno != ENOENT) {
            fprintf(stderr, "leadbus: restore: cannot remove %s: %s\n", side, strerror(errno));
            unlink(tmp);
            return -1;
        }
    }
    if (rename(tmp, to) != 0) {
        fprintf(stderr, "leadbus: restore: %s -> %s: %s\n", tmp, to, strerror(errno));
        unlink(tmp);
        return -1;
    }
    printf("%s: %s -> %s (%lld bytes, schema version %d%s)\n", name, from, to, bytes, version,
           epoch == 1 ? ", new stream epoch" : "");
    return 1;
}

static int restore_run(const char *data_dir, const char *dir, int n, char **names)
{
    char err[1400];
    if (make_dir(data_dir, err, sizeof err) != 0) {
        fprintf(stderr, "leadbus: restore: DATA_DIR: %s\n", err);
        return 2;
    }
    int restored = 0;
    for (int i = 0; i < n; i++) {
        bool known = false;
        for (int j = 0; backup_stores[j] != NULL; j++) {
            known = known || strcmp(names[i], backup_stores[j]) == 0;
        }
        if (!known) {
            fprintf(stderr, "leadbus: restore: unknown store '%s'\n", names[i]);
            return 2;
        }
    }
    for (int j = 0; backup_stores[j] != NULL; j++) {
        bool wanted = n == 0;
        for (int i = 0; i < n; i++) {
            wanted = wanted || strcmp(names[i], backup_stores[j]) == 0;
        }
        int rc = wanted ? restore_one(data_dir, dir, backup_stores[j], n > 0) : 0;
        if (rc < 0) {
            return 1;
        }
        restored += rc;
    }
    char from[1100], to[1100];
    snprintf(from, sizeof from, "%s/api_key", dir);
    snprintf(to, sizeof to, "%s/api_key", data_dir);
    if (n == 0 && exists(from)) {
        if (copy_file(from, to, err, sizeof err) != 0) {
            fprintf(stderr, "leadbus: restore: %s\n", err);
            return 1;
        }
        printf("api_key: %s -> %s\n", from, to);
    }
    if (restored == 0) {
        fprintf(stderr, "leadbus: restore: no store copy in %s\n", dir);
        return 1;
    }
    return 0;
}

int backup_main(int argc, char **argv)
{
    char err[CONFIG_ERR_MAX];
    bool restore = strcmp(argv[0], "restore") == 0;
    if (argc < 2 || (!restore && argc != 2) || argv[1][0] == '-') {
        fprintf(stderr, "usage: leadbus backup DIR | leadbus restore DIR [STORE...]\n"
                        "  DATA_DIR (environment or ./.env) names the stores' directory.\n");
        return 2;
    }
    if (config_load(".env", err) != 0) {
        fprintf(stderr, "leadbus: %s\n", err);
        return 2;
    }
    const char *data_dir = config_str("DATA_DIR", "./data");
    int rc = restore ? restore_run(data_dir, argv[1], argc - 2, argv + 2)
                     : backup_run(data_dir, argv[1]);
    config_free();
    return rc;
}
