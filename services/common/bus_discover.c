/* bus_discover: parse a discovery spec and resolve it with the system resolver. */
#include "bus_discover.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int parse_port(const char *s, size_t len, int *out)
{
    if (len == 0 || len > 5) {
        return -1;
    }
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535) {
        return -1;
    }
    *out = v;
    return 0;
}

int bus_discover_parse(const char *spec, struct bus_discover *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    if (spec == NULL || strncmp(spec, "dns:", 4) != 0) {
        snprintf(err, errlen, "expected dns:<name>:<pub-port>[:<replay-port>]");
        return -1;
    }
    const char *host = spec + 4, *c1 = strchr(host, ':');
    size_t hlen = c1 != NULL ? (size_t)(c1 - host) : 0;
    if (c1 == NULL || hlen == 0 || hlen >= sizeof d->host) {
        snprintf(err, errlen,
                 "expected dns:<name>:<pub-port>[:<replay-port>] (a name, then a port)");
        return -1;
    }
    for (size_t i = 0; i < hlen; i++) {
        char ch = host[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
        if (!ok) {
            snprintf(err, errlen, "the name may hold letters, digits, '-', '.' and '_' only");
            return -1;
        }
    }
    memcpy(d->host, host, hlen);
    d->host[hlen] = '\0';
    const char *p = c1 + 1, *c2 = strchr(p, ':');
    size_t plen = c2 != NULL ? (size_t)(c2 - p) : strlen(p);
    if (parse_port(p, plen, &d->pub_port) != 0) {
        snprintf(err, errlen, "the PUB port must be 1..65535");
        return -1;
    }
    if (c2 == NULL) {
        d->replay_port = d->pub_port + 1;
        if (d->replay_port > 65535) {
            snprintf(err, errlen,
                     "the PUB port must be below 65535 when the replay port is implied");
            return -1;
        }
    } else if (parse_port(c2 + 1, strlen(c2 + 1), &d->replay_port) != 0) {
        snprintf(err, errlen, "the replay port must be 1..65535");
        return -1;
    }
    if (d->replay_port == d->pub_port) {
        snprintf(err, errlen, "the PUB and replay ports must differ");
        return -1;
    }
    return 0;
}

void bus_discover_url(const struct bus_discover *d, const char *addr, bool replay, char *out,
                      size_t size)
{
    bool v6 = strchr(addr, ':') != NULL;
    snprintf(out, size, "%s://%s%s%s:%d", d->tls ? "tls+tcp" : "tcp", v6 ? "[" : "", addr,
             v6 ? "]" : "", replay ? d->replay_port : d->pub_port);
}

bool bus_discover_has(char set[][BUS_DISCOVER_ADDR_MAX], int n, const char *addr)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(set[i], addr) == 0) {
            return true;
        }
    }
    return false;
}

static int cmp_addr(const void *a, const void *b)
{
    return strcmp(a, b);
}

int bus_discover_resolve(const struct bus_discover *d, char addrs[][BUS_DISCOVER_ADDR_MAX],
                         char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(d->host, NULL, &hints, &res);
#ifdef EAI_NODATA
    bool none = rc == EAI_NONAME || rc == EAI_NODATA;
#else
    bool none = rc == EAI_NONAME;
#endif
    if (none) {
        return 0; /* NXDOMAIN or no record: a headless Service with no ready pod answers so */
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s", gai_strerror(rc));
        return -1;
    }
    int n = 0;
    for (struct addrinfo *ai = res; ai != NULL && n < BUS_DISCOVER_MAX; ai = ai->ai_next) {
        char host[NI_MAXHOST];
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, NULL, 0, NI_NUMERICHOST) !=
                0 ||
            strlen(host) >= BUS_DISCOVER_ADDR_MAX || bus_discover_has(addrs, n, host)) {
            continue;
        }
        snprintf(addrs[n++], BUS_DISCOVER_ADDR_MAX, "%s", host);
    }
    freeaddrinfo(res);
    qsort(addrs, (size_t)n, BUS_DISCOVER_ADDR_MAX, cmp_addr);
    return n;
}
