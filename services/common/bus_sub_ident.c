/* bus_sub_ident: stream identity. The decision is pure (bus_stream_decide, bus_sub.h); the
 * subscriber's side keeps an identity per publisher name, reports conflicts, and checks frames
 * against the name their connection's certificate was verified for (bus_sub_int.h). */
#include "bus_sub_int.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <string.h>

/* ---- stream identity: the decision (pure) ---- */

const char *bus_verdict_name(enum bus_verdict v)
{
    switch (v) {
    case BUS_APPLY:
        return "apply";
    case BUS_DUPLICATE:
        return "duplicate";
    case BUS_GAP:
        return "gap";
    case BUS_HOLD:
        return "hold";
    case BUS_RESET:
        return "reset";
    case BUS_CONFLICT:
        return "conflict";
    }
    return "?";
}

static enum bus_verdict seq_verdict(uint64_t cursor, uint64_t seq, bool head)
{
    if (head) { /* a publisher's last seq never goes back: one that does is a restored store */
        return seq < cursor ? BUS_RESET : seq == cursor ? BUS_DUPLICATE : BUS_GAP;
    }
    return seq <= cursor ? BUS_DUPLICATE : seq == cursor + 1 ? BUS_APPLY : BUS_GAP;
}

static void rival_forget(struct bus_ident *id)
{
    id->rival = 0;
    id->rival_first_ms = id->rival_seen_ms = 0;
    id->rival_heads = 0;
}

enum bus_verdict bus_stream_decide(struct bus_ident *id, uint64_t cursor, uint64_t epoch,
                                   uint64_t seq, bool head, int64_t now_ms)
{
    if (epoch == 0 || id->epoch == 0 || epoch == id->epoch) {
        if (epoch != 0) {
            id->epoch = epoch; /* adopted when none was known: a new or pre-epoch cursor */
            id->seen_ms = now_ms;
        }
        return seq_verdict(cursor, seq, head);
    }
    if (id->rival != epoch) {
        id->rival = epoch;
        id->rival_first_ms = now_ms;
        id->rival_heads = 0;
    }
    id->rival_seen_ms = now_ms;
    id->rival_heads += head ? 1 : 0;
    bool followed_since = id->seen_ms != 0 && id->seen_ms >= id->rival_first_ms;
    if (followed_since && now_ms - id->seen_ms < BUS_CONFLICT_WINDOW_MS) {
        return BUS_CONFLICT;
    }
    if (now_ms - id->rival_first_ms < BUS_RESET_SETTLE_MS || id->rival_heads < BUS_RESET_HEADS) {
        return BUS_HOLD;
    }
    id->epoch = epoch;
    id->seen_ms = now_ms;
    rival_forget(id);
    return BUS_RESET;
}

bool bus_ident_conflict(const struct bus_ident *id, int64_t now_ms)
{
    return id->rival != 0 && id->seen_ms != 0 && id->seen_ms >= id->rival_first_ms &&
           now_ms - id->seen_ms < BUS_CONFLICT_WINDOW_MS &&
           now_ms - id->rival_seen_ms < BUS_CONFLICT_WINDOW_MS;
}

bool bus_ident_expire(struct bus_ident *id, int64_t now_ms)
{
    if (id->rival == 0 || now_ms - id->rival_seen_ms < BUS_CONFLICT_WINDOW_MS) {
        return false;
    }
    rival_forget(id);
    return true;
}

/* ---- stream identity: the subscriber's side ---- */

static bool ident_match(const void *slot, const void *key)
{
    const struct ident_slot *is = slot;
    return strcmp(is->src, key) == 0;
}

struct ident_slot *bsub_ident_find(struct bus_sub *s, const char *src)
{
    bool created;
    struct ident_slot *is = bsub_slot_find(s->idents, sizeof s->idents[0], &s->nidents, MAX_IDENTS,
                                           ident_match, src, &created);
    if (is != NULL && created) {
        snprintf(is->src, sizeof is->src, "%s", src);
    }
    return is;
}

/* Also called on the writer thread while the sub thread waits in store_run: finds, never adds. */
uint64_t bsub_epoch_of(const struct bus_sub *s, const char *src)
{
    for (int i = 0; i < s->nidents; i++) {
        if (strcmp(s->idents[i].src, src) == 0) {
            return s->idents[i].id.epoch;
        }
    }
    return 0;
}

void bsub_hex64(uint64_t v, char out[24])
{
    snprintf(out, 24, "%016llx", (unsigned long long)v);
}

void bsub_pub_labels(const struct bus_sub *s, const char *publisher, char *out, size_t size)
{
    snprintf(out, size, "subscriber=\"%s\",publisher=\"%s\"", s->name, publisher);
}

static void conflict_gauge(const struct bus_sub *s, const struct ident_slot *is, double value)
{
    char labels[160];
    bsub_pub_labels(s, is->src, labels, sizeof labels);
    metrics_gauge_set("leadbus_bus_stream_conflict",
                      "1 while two live publishers share a stream name (one is refused)", labels,
                      value);
}

static void conflict_seen(struct bus_sub *s, struct ident_slot *is, int64_t now)
{
    if (!is->conflict) {
        is->conflict = true;
        atomic_fetch_add(&s->nconflicts, 1);
        conflict_gauge(s, is, 1);
    }
    if (now - is->last_error_ms < CONFLICT_LOG_MS) {
        return;
    }
    is->last_error_ms = now;
    char followed[24], other[24];
    bsub_hex64(is->id.epoch, followed);
    bsub_hex64(is->id.rival, other);
    log_error("Two live publishers share one stream name: following the first, refusing the "
              "other's events until one of them is renamed",
              LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("publisher", is->src),
                         LOG_S("epoch", followed), LOG_S("otherEpoch", other)));
}

/* Once a second or so: forget rivals gone silent, end conflicts that are over. */
void bsub_idents_tick(struct bus_sub *s, int64_t now)
{
    for (int i = 0; i < s->nidents; i++) {
        struct ident_slot *is = &s->idents[i];
        bus_ident_expire(&is->id, now);
        if (!is->conflict || bus_ident_conflict(&is->id, now)) {
            continue;
        }
        is->conflict = false;
        conflict_gauge(s, is, 0);
        atomic_fetch_sub(&s->nconflicts, 1); /* after the gauge: ready means the metric says 0 */
        log_warn("Only one publisher of the name is left alive",
                 LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("publisher", is->src)));
    }
}

/* bus_stream_decide() for publisher `is`, acting on its verdict: a reset is started, a conflict
 * reported. */
static enum bus_verdict ident_decide(struct bus_sub *s, struct ident_slot *is, uint64_t cursor,
                                     uint64_t epoch, uint64_t seq, bool head)
{
    uint64_t old = is->id.epoch;
    enum bus_verdict v = bus_stream_decide(&is->id, cursor, epoch, seq, head, clock_mono_ms());
    if (v == BUS_RESET) {
        bsub_stream_reset(s, is, old, NULL, 0);
    } else if (v == BUS_CONFLICT) {
        conflict_seen(s, is, clock_mono_ms());
    }
    return v;
}

/*
 * The identity half of a heartbeat or stream list: true if its streams may be read (the epoch
 * is the one followed), false if it was held back, refused, or a reset was started.
 */
bool bsub_ident_ok(struct bus_sub *s, struct ident_slot *is, uint64_t epoch)
{
    enum bus_verdict v = ident_decide(s, is, 0, epoch, 0, true);
    return v != BUS_RESET && v != BUS_CONFLICT && v != BUS_HOLD;
}

/* An event's identity and position: what to do with it. */
enum bus_verdict bsub_frame_verdict(struct bus_sub *s, const struct proto_event *ev,
                                    const struct cursor *c)
{
    struct ident_slot *is = bsub_ident_find(s, ev->src);
    if (is == NULL) {
        return seq_verdict(c->queued, ev->seq, false);
    }
    return ident_decide(s, is, c->queued, ev->epoch, ev->seq, false);
}

/*
 * Frames tied to certificate identity: a listed publisher's connection was verified for its
 * stream name (bus_tls.h), so its frames must carry that name. Discovered publishers are verified
 * for the discovery name only; their stream names are learned. True if `src` may come from a
 * connection verified for `peer` ("" or NULL: not verified for a name).
 */
bool bsub_frame_identity_ok(struct bus_sub *s, const char *peer, const char *src)
{
    if (peer == NULL || peer[0] == '\0' || strcmp(peer, src) == 0) {
        return true;
    }
    for (int i = 0; i < s->nsrc; i++) {
        if (s->src[i].used && s->src[i].discovered && strcmp(s->src[i].peer, peer) == 0) {
            return true;
        }
    }
    return false;
}

/* A publisher verified for `peer` sent frames or a stream list of stream `src`: refused, loudly. */
void bsub_identity_refused(struct bus_sub *s, const char *peer, const char *src)
{
    char labels[200];
    snprintf(labels, sizeof labels, "subscriber=\"%s\",peer=\"%s\"", s->name, peer);
    metrics_counter_add("leadbus_bus_frames_refused_total",
                        "Bus frames refused: they name another stream than the publisher's "
                        "certificate",
                        labels, 1);
    int64_t now = clock_mono_ms();
    if (now - s->last_identity_error_ms < CONFLICT_LOG_MS) {
        return;
    }
    s->last_identity_error_ms = now;
    log_error(
        "Bus frames refused: the publisher's certificate is for another stream than the "
        "frames name (a publisher with a stolen or misissued certificate, or a wrong "
        "BUS_*_NAME)",
        LOG_FIELDS(LOG_S("subscriber", s->name), LOG_S("certificate", peer), LOG_S("stream", src)));
}
