/*
 * cut_proxy: a TCP proxy for the bus TLS tests that loses connections where nng 1.5.2's TLS
 * dialer is fragile: right after the TLS handshake, before the SP headers are exchanged.
 *
 *   cut_proxy LISTEN_PORT TARGET_PORT CUTS
 *
 * Forwards 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT. Each of the first CUTS connections is
 * reset both ways (SO_LINGER 0) within 0.3 ms of forwarding the server's second flight (a TLS 1.2
 * ServerHello...Done, then ChangeCipherSpec + Finished); later ones are forwarded untouched.
 * The delay matters: reset at once, the client's kernel drops the Finished unread (a clean
 * handshake failure); a few ms later, the client has sent its SP header and reads the reset as
 * an error of the negotiation. In between, its header write fails while nng 1.5.2's negotiation
 * is between its send and its receive: the stuck dialer (measured: hit in 2 of 5 runs of
 * bus_tls_redial; without the watcher such a run hangs). Prints "cut N" per reset connection and
 * "ready" once listening; runs until killed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct pair {
    int client, server, n;
    bool cut; /* this connection is one of the first CUTS */
};

static void reset_close(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static int connect_local(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Copy what is readable from `from` to `to`. Returns bytes moved, 0 at EOF, -1 on error. */
static ssize_t forward(int from, int to)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof buf);
    for (ssize_t off = 0; n > 0 && off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w <= 0) {
            return -1;
        }
        off += w;
    }
    return n;
}

static void *pump(void *arg)
{
    struct pair *p = arg;
    int flights = 0;
    struct pollfd fds[2] = {{.fd = p->client, .events = POLLIN},
                            {.fd = p->server, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, 30000) <= 0) {
            break;
        }
        if (fds[0].revents != 0 && forward(p->client, p->server) <= 0) {
            break;
        }
        if (fds[1].revents == 0) {
            continue;
        }
        if (forward(p->server, p->client) <= 0) {
            break;
        }
        if (p->cut && ++flights == 2) {
            usleep((useconds_t)(rand() % 300));
            reset_close(p->client);
            reset_close(p->server);
            printf("cut %d\n", p->n);
            fflush(stdout);
            free(p);
            return NULL;
        }
    }
    close(p->client);
    close(p->server);
    free(p);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: cut_proxy LISTEN_PORT TARGET_PORT CUTS\n");
        return 2;
    }
    int target = atoi(argv[2]), cuts = atoi(argv[3]);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 64) != 0) {
        perror("cut_proxy: listen");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (int n = 0;; n++) {
        int c = accept(ls, NULL, NULL);
        if (c < 0) {
            continue;
        }
        int s = connect_local(target);
        if (s < 0) {
            reset_close(c);
            continue;
        }
        struct pair *p = malloc(sizeof *p);
        if (p == NULL) {
            reset_close(c);
            reset_close(s);
            continue;
        }
        *p = (struct pair){.client = c, .server = s, .n = n, .cut = n < cuts};
        pthread_t t;
        if (pthread_create(&t, NULL, pump, p) != 0) {
            reset_close(c);
            reset_close(s);
            free(p);
            continue;
        }
        pthread_detach(t);
    }
}
