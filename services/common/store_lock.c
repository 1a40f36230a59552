/* store_lock: one writer per store, an flock on `<path>.lock` held for the life of the process. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define MAX_LOCKS 32

static pthread_mutex_t locks_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char path[1024];
    int fd;
} locks[MAX_LOCKS];
static int nlocks;

/* The pid written in a lock file by the process that holds it, or 0. */
static long lock_holder(int fd)
{
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

int store_lock(const char *path, char *err, size_t size)
{
    char lock_path[1100];
    snprintf(lock_path, sizeof lock_path, "%s.lock", path);
    int rc = -1;
    pthread_mutex_lock(&locks_lock);
    for (int i = 0; i < nlocks; i++) {
        if (strcmp(locks[i].path, path) == 0) {
            pthread_mutex_unlock(&locks_lock);
            return 0;
        }
    }
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, size, "%s: cannot open its lock file %s: %s", path, lock_path,
                 strerror(errno));
        goto done;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        long pid = lock_holder(fd);
        close(fd);
        if (e != EWOULDBLOCK) {
            snprintf(err, size, "%s: cannot lock %s: %s", path, lock_path, strerror(e));
            goto done;
        }
        snprintf(err, size,
                 "%s: in use by another process (pid %ld holds %s); one process per store: give "
                 "this one its own DATA_DIR",
                 path, pid, lock_path);
        goto done;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n || nlocks == MAX_LOCKS) {
        snprintf(err, size, "%s: cannot write %s", path, lock_path);
        close(fd);
        goto done;
    }
    snprintf(locks[nlocks].path, sizeof locks[nlocks].path, "%s", path);
    locks[nlocks].fd = fd;
    nlocks++;
    rc = 0;
done:
    pthread_mutex_unlock(&locks_lock);
    return rc;
}
