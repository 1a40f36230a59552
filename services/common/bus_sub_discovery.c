/* bus_sub_discovery: publishers found by DNS (bus_discover.h). A resolver thread answers; the
 * subscriber's thread dials new addresses, and follows one that left the answer until it has
 * stopped with its streams applied (bus_sub_int.h). */
#include "bus_sub_int.h"
#include "bus_sock.h"
#include "bus_tls.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *disc_main(void *arg)
{
    struct bus_sub *s = arg;
    struct discovery *dc = s->disc;
    log_set_target(s->name);
    pthread_mutex_lock(&dc->lock);
    while (!atomic_load(&s->stopping)) {
        pthread_mutex_unlock(&dc->lock);
        char addrs[BUS_DISCOVER_MAX][BUS_DISCOVER_ADDR_MAX], err[128] = "";
        int n = bus_discover_resolve(&dc->d, addrs, err, sizeof err);
        pthread_mutex_lock(&dc->lock);
        dc->n = n;
        if (n > 0) {
            memcpy(dc->addrs, addrs, (size_t)n * sizeof addrs[0]);
        }
        snprintf(dc->err, sizeof dc->err, "%s", err);
        dc->gen++;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + (int64_t)dc->d.interval_ms * 1000000;
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        while (!atomic_load(&s->stopping) &&
               pthread_cond_timedwait(&dc->wake, &dc->lock, &until) == 0) {
        }
    }
    pthread_mutex_unlock(&dc->lock);
    return NULL;
}

/* The labels of the discovery name's series: subscriber="…",name="…". */
static void disc_labels(const struct bus_sub *s, char *out, size_t size)
{
    snprintf(out, size, "subscriber=\"%s\",name=\"%s\"", s->name, s->disc->d.host);
}

static void source_log(const struct source *src, const char *msg, bool warn)
{
    log_write(warn ? LOG_WARN : LOG_INFO, msg,
              LOG_FIELDS(LOG_S("address", src->addr), LOG_S("url", src->pub_url),
                         LOG_S("stream", src->name[0] ? src->name : "(not known yet)")));
}

/* Close and forget discovered source `src` (sub thread). */
static void source_drop(struct bus_sub *s, struct source *src, const char *why, bool warn)
{
    source_log(src, why, warn);
    pthread_mutex_lock(&s->srclock);
    bus_endpoint_dialer_close(src->pub_dialer);
    if (src->replay_url != NULL) {
        bus_sock_close(src->req, CLOSE_TIMEOUT_MS);
    }
    free(src->pub_url);
    free(src->replay_url);
    memset(src, 0, sizeof *src);
    while (s->nsrc > 0 && !s->src[s->nsrc - 1].used) {
        s->nsrc--;
    }
    pthread_mutex_unlock(&s->srclock);
}

static void source_add_discovered(struct bus_sub *s, const char *addr)
{
    struct discovery *dc = s->disc;
    struct source *src = NULL;
    for (int i = 0; i < MAX_SOURCES && src == NULL; i++) {
        src = s->src[i].used ? NULL : &s->src[i];
    }
    if (src == NULL) {
        log_error("Too many bus publishers: one found by DNS is not dialled",
                  LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("address", addr),
                             LOG_I("max", MAX_SOURCES)));
        return;
    }
    char pub[128], replay[128];
    bus_discover_url(&dc->d, addr, false, pub, sizeof pub);
    bus_discover_url(&dc->d, addr, true, replay, sizeof replay);
    int idx = (int)(src - s->src);
    pthread_mutex_lock(&s->srclock); /* bus_sub_close may be closing requesters meanwhile */
    if (idx >= s->nsrc) {
        s->nsrc = idx + 1;
    }
    src->discovered = true;
    snprintf(src->addr, sizeof src->addr, "%.*s", BUS_DISCOVER_ADDR_MAX - 1, addr);
    /* The certificate must carry the name dialled (bus_discover.h), not the stream's name. */
    int rc = bsub_source_dial(s, src, pub, replay, dc->d.host);
    pthread_mutex_unlock(&s->srclock);
    if (rc != 0) {
        source_drop(s, src, "Cannot dial a bus publisher found by DNS", true);
        return;
    }
    source_log(src, "Bus publisher found by DNS: dialling it", false);
}

/* Take the resolver's latest answer (sub thread): dial new addresses, retire vanished ones. */
void bsub_discovery_take(struct bus_sub *s, int64_t now)
{
    struct discovery *dc = s->disc;
    char addrs[BUS_DISCOVER_MAX][BUS_DISCOVER_ADDR_MAX], err[128];
    pthread_mutex_lock(&dc->lock);
    bool fresh = dc->gen != dc->taken;
    int n = dc->n;
    dc->taken = dc->gen;
    if (n > 0) {
        memcpy(addrs, dc->addrs, (size_t)n * sizeof addrs[0]);
    }
    snprintf(err, sizeof err, "%s", dc->err);
    pthread_mutex_unlock(&dc->lock);
    if (!fresh || atomic_load(&s->stopping)) {
        return;
    }
    char labels[400];
    disc_labels(s, labels, sizeof labels);
    dc->nfound = n;
    if (n <= 0) {
        metrics_counter_add("leadbus_bus_discover_failures_total",
                            "Resolutions of a bus discovery name that failed or found no address",
                            labels, 1);
        if (now - dc->last_warn >= 30000 || dc->last_warn == 0) {
            dc->last_warn = now;
            log_warn(n < 0 ? "Cannot resolve the bus publishers' name; keeping those known"
                           : "The bus publishers' name has no address: no publisher to dial",
                     LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("name", dc->d.host),
                                LOG_S("error", n < 0 ? err : "no A/AAAA record")));
        }
        if (n < 0) {
            return; /* a resolver outage says nothing about the publishers */
        }
    }
    metrics_gauge_set("leadbus_bus_discovered_publishers",
                      "Addresses the last resolution of a bus discovery name found", labels, n);
    for (int i = 0; i < s->nsrc; i++) {
        struct source *src = &s->src[i];
        if (!src->used || !src->discovered) {
            continue;
        }
        bool present = bus_discover_has(addrs, n, src->addr);
        if (!present && !src->retiring) {
            src->retiring = true;
            src->drained = false;
            src->heads_known = false;
            src->unreachable_ms = 0;
            src->next_drain = 0;
            source_log(src, "Bus publisher left the DNS answer: following it until it stops",
                       false);
        } else if (present && src->retiring) {
            src->retiring = false;
            source_log(src, "Bus publisher is back in the DNS answer", false);
        }
    }
    for (int i = 0; i < n; i++) {
        bool known = false;
        for (int j = 0; j < s->nsrc && !known; j++) {
            known = s->src[j].used && s->src[j].discovered && !strcmp(s->src[j].addr, addrs[i]);
        }
        if (!known) {
            source_add_discovered(s, addrs[i]);
        }
    }
}

enum drain_state { DRAIN_UNREACHABLE, DRAIN_BEHIND, DRAIN_DONE };

/* Whether every wanted stream of `src` is applied up to where its last answer said it ended
 * (events that came live since then count too: the cursors only move forward). */
static bool heads_applied(struct bus_sub *s, const struct source *src)
{
    if (!src->heads_known || src->name[0] == '\0') {
        return false;
    }
    for (int i = 0; i < src->heads.count; i++) {
        const struct proto_hb_stream *h = &src->heads.streams[i];
        bool created;
        struct cursor *c = bsub_topic_wanted(s, h->topic)
                               ? bsub_cursor_find(s, src->name, h->topic, &created)
                               : NULL;
        if (c != NULL && c->seq < h->last_seq && !s->from_now) {
            return false;
        }
    }
    return true;
}

/*
 * Whether retiring source `src` has anything left for this subscriber: its stream list read now,
 * every wanted stream caught up to its end (replaying what is missing on the way).
 */
static enum drain_state source_drain(struct bus_sub *s, struct source *src)
{
    struct stream_list l;
    bool reached;
    struct ident_slot *is = bsub_streams_fetch(s, src, &l, &reached);
    if (!reached) {
        return DRAIN_UNREACHABLE;
    }
    if (is == NULL || !bsub_ident_ok(s, is, l.epoch)) {
        return DRAIN_BEHIND;
    }
    snprintf(src->name, sizeof src->name, "%s", l.name);
    src->epoch = l.epoch;
    src->heads = l.heads;
    src->heads_known = true;
    for (int i = 0; i < l.heads.count; i++) {
        if (!bsub_stream_seen(s, src, is, &l.heads.streams[i], false)) {
            return DRAIN_BEHIND;
        }
    }
    bsub_flush(s);
    return heads_applied(s, src) ? DRAIN_DONE : DRAIN_BEHIND;
}

/* Drain and drop retiring sources; compute bus_sub_discovery_ok (sub thread). */
void bsub_discovery_tick(struct bus_sub *s, int64_t now)
{
    struct discovery *dc = s->disc;
    bool ok = dc->nfound > 0;
    for (int i = 0; i < s->nsrc; i++) {
        struct source *src = &s->src[i];
        if (!src->used || !src->discovered) {
            continue;
        }
        if (!src->retiring) {
            ok = ok && src->synced;
            continue;
        }
        if (now < src->next_drain) {
            continue;
        }
        src->next_drain = now + RESYNC_MS;
        bool elsewhere = false;
        for (int j = 0; j < s->nsrc && src->name[0] != '\0' && !elsewhere; j++) {
            const struct source *o = &s->src[j];
            elsewhere =
                j != i && o->used && !o->retiring && o->synced && strcmp(o->name, src->name) == 0;
        }
        if (elsewhere) {
            source_drop(s, src, "Retired bus address dropped: its stream is followed at another",
                        false);
            continue;
        }
        /* A publisher that left DNS may still be running (a terminating pod in its preStop
         * pause still takes requests): follow it while it answers; drop it once it has stopped,
         * if its last answer was applied to its end. */
        enum drain_state ds = source_drain(s, src);
        if (ds != DRAIN_UNREACHABLE) {
            src->drained = ds == DRAIN_DONE;
            src->unreachable_ms = 0;
            continue;
        }
        src->unreachable_ms = src->unreachable_ms != 0 ? src->unreachable_ms : now;
        if (src->drained || heads_applied(s, src)) {
            source_drop(s, src, "Retired bus publisher stopped after it was drained: dropped",
                        false);
        } else if (now - src->unreachable_ms >= BUS_DISCOVER_RETIRE_MS) {
            char labels[400];
            disc_labels(s, labels, sizeof labels);
            metrics_counter_add("leadbus_bus_discover_abandoned_total",
                                "Retired bus publishers dropped before they were drained", labels,
                                1);
            source_drop(s, src,
                        "Retired bus publisher unreachable: dropped before it was drained. Events "
                        "it has that were not applied (leadbus_bus_subscriber_lag_events) wait in "
                        "its store: start it again (kubectl scale up) to deliver them",
                        true);
        }
    }
    atomic_store(&dc->ok, ok);
}

int bsub_discovery_start(struct bus_sub *s, const struct bus_discover *d)
{
    struct discovery *dc = calloc(1, sizeof *dc);
    if (dc == NULL) {
        return -1;
    }
    dc->d = *d;
    if (dc->d.interval_ms <= 0) {
        dc->d.interval_ms = 5000;
    }
    pthread_mutex_init(&dc->lock, NULL);
    pthread_cond_init(&dc->wake, NULL);
    s->disc = dc;
    if (pthread_create(&dc->thread, NULL, disc_main, s) != 0) {
        return -1;
    }
    dc->started = true;
    return 0;
}

void bsub_discovery_stop(struct bus_sub *s)
{
    struct discovery *dc = s->disc;
    if (dc == NULL) {
        return;
    }
    if (dc->started) {
        pthread_mutex_lock(&dc->lock);
        pthread_cond_broadcast(&dc->wake);
        pthread_mutex_unlock(&dc->lock);
        pthread_join(dc->thread, NULL); /* after a getaddrinfo under way: the resolver's timeout */
    }
    pthread_mutex_destroy(&dc->lock);
    pthread_cond_destroy(&dc->wake);
    free(dc);
    s->disc = NULL;
}

bool bus_sub_discovery_ok(void *sub)
{
    struct bus_sub *s = sub;
    return s->disc == NULL || atomic_load(&s->disc->ok);
}
