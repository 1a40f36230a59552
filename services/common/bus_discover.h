/*
 * bus_discover: the publishers of one stream family found by DNS, not listed.
 *
 * BUS_INGEST_DISCOVER=dns:<name>:<pub-port>[:<replay-port>] (replay port default pub-port + 1):
 * a subscriber resolves <name> every BUS_DISCOVER_INTERVAL_MS through the system resolver
 * (getaddrinfo: A and AAAA records, as a Kubernetes headless Service answers one per ready pod)
 * and dials every address as a publisher of that family. Stream names are not in DNS: each
 * publisher says its own (its replay endpoint's stream list and every frame carry name and
 * epoch), so a pod named by the Downward API is followed under its pod name.
 *
 * With bus TLS the URLs are tls+tcp:// and each publisher's certificate must carry <name> (the
 * name dialled, as HTTPS checks a load-balanced host): all replicas of the family share one
 * certificate; the stream name inside is not bound to it.
 *
 * The pure half (parse, URL, set difference) is unit-tested; resolution is a thin getaddrinfo.
 * Memory: plain structs, no allocation kept. Threads: any.
 */
#ifndef LEADBUS_BUS_DISCOVER_H
#define LEADBUS_BUS_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>

#define BUS_DISCOVER_HOST_MAX 254
#define BUS_DISCOVER_ADDR_MAX 48 /* a numeric IPv6 address with a zone fits */
#define BUS_DISCOVER_MAX 32      /* addresses taken from one answer */

struct bus_discover {
    char host[BUS_DISCOVER_HOST_MAX];
    int pub_port, replay_port;
    int interval_ms;
    bool tls; /* dial tls+tcp:// (set from bus_tls_enabled() by the caller) */
};

/* Parse "dns:<name>:<pub-port>[:<replay-port>]". Returns 0, or -1 with one line in err. */
int bus_discover_parse(const char *spec, struct bus_discover *d, char *err, size_t errlen);

/* The PUB (replay = false) or replay URL of publisher address `addr`. */
void bus_discover_url(const struct bus_discover *d, const char *addr, bool replay, char *out,
                      size_t size);

/*
 * Resolve d->host: the distinct numeric addresses, sorted, at most BUS_DISCOVER_MAX. Returns how
 * many (0: the name exists with no address, or does not exist), or -1 when the resolver failed
 * (err says why: a resolver that cannot be reached is not "no replicas").
 */
int bus_discover_resolve(const struct bus_discover *d, char addrs[][BUS_DISCOVER_ADDR_MAX],
                         char *err, size_t errlen);

/* Whether `addr` is one of the `n` in `set`. */
bool bus_discover_has(char set[][BUS_DISCOVER_ADDR_MAX], int n, const char *addr);

#endif
