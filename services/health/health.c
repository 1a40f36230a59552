/* health: `leadbus health` and `leadbus sleep`, for images with no shell and no curl. */
#include "health.h"

#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEALTH_TIMEOUT_MS 3000

bool health_is_command(const char *arg)
{
    return arg != NULL && (strcmp(arg, "health") == 0 || strcmp(arg, "sleep") == 0);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd to be ready for `events` until the deadline; 0 when ready. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, (int)left);
        if (rc > 0) {
            return 0;
        }
        if (rc < 0 && errno != EINTR) {
            return -1;
        }
    }
}

static int connect_to(const char *host, const char *port, long long deadline)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "leadbus health: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 &&
            (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) != 0)) {
            close(fd);
            fd = -1;
            continue;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            errno = err;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "leadbus health: cannot connect to %s:%s: %s\n", host, port,
                strerror(errno));
    }
    return fd;
}

static int health(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/healthz";
    if (path[0] != '/' || strpbrk(path, " \r\n") != NULL || argc > 2) {
        fprintf(stderr, "usage: leadbus health [PATH]   (PATH starts with /; default /healthz)\n");
        return 2;
    }
    char err[CONFIG_ERR_MAX];
    if (config_load(".env", err) != 0) {
        fprintf(stderr, "leadbus health: %s\n", err);
        return 2;
    }
    const char *port = config_str("PORT", "3000");
    const char *bind = config_str("HTTP_BIND", "0.0.0.0");
    /* Every address: ask over loopback, as a process inside the container can. */
    const char *host = strcmp(bind, "0.0.0.0") == 0 ? "127.0.0.1"
                       : strcmp(bind, "::") == 0 || strcmp(bind, "[::]") == 0 ? "::1"
                                                                              : bind;
    char h[256];
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']' && hl - 2 < sizeof h) {
        memcpy(h, host + 1, hl - 2); /* [::1] -> ::1 for getaddrinfo */
        h[hl - 2] = '\0';
        host = h;
    }
    long long deadline = now_ms() + HEALTH_TIMEOUT_MS;
    int fd = connect_to(host, port, deadline);
    if (fd < 0) {
        config_free();
        return 1;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\nUser-Agent: leadbus-health\r\n\r\n", path);
    char resp[64] = "";
    size_t got = 0;
    int status = -1;
    if (n > 0 && (size_t)n < sizeof req && send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
        while (got < sizeof resp - 1 && memchr(resp, '\n', got) == NULL &&
               wait_fd(fd, POLLIN, deadline) == 0) {
            ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
            if (r <= 0) {
                break;
            }
            got += (size_t)r;
            resp[got] = '\0';
        }
        if (sscanf(resp, "HTTP/%*d.%*d %d", &status) != 1) {
            status = -1;
        }
    }
    close(fd);
    config_free();
    if (status == 200) {
        return 0;
    }
    if (status < 0) {
        fprintf(stderr, "leadbus health: no HTTP answer from %s:%s%s within %d ms\n", host, port,
                path, HEALTH_TIMEOUT_MS);
    } else {
        fprintf(stderr, "leadbus health: %s:%s%s answered %d\n", host, port, path, status);
    }
    return 1;
}

static int sleep_cmd(int argc, char **argv)
{
    char *end = NULL;
    double s = argc == 2 ? strtod(argv[1], &end) : -1;
    if (argc != 2 || end == argv[1] || *end != '\0' || !(s >= 0 && s <= 3600)) {
        fprintf(stderr, "usage: leadbus sleep SECONDS   (0 to 3600)\n");
        return 2;
    }
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return 0;
}

int health_main(int argc, char **argv)
{
    return strcmp(argv[0], "sleep") == 0 ? sleep_cmd(argc, argv) : health(argc, argv);
}
