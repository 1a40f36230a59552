/* bus_sub_replay: the replay (REQ/REP) client. A publisher's stream list or heartbeat gives its
 * streams' heads; what this subscriber lacks is read from its replay endpoint (bus_sub_int.h). */
#include "bus_sub_int.h"
#include "clock.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int roundtrip(struct source *src, const struct proto_replay_req *req, void **rep,
                     size_t *rep_len)
{
    uint8_t *buf;
    size_t len;
    if (proto_replay_req_encode(req, &buf, &len) != PROTO_OK) {
        return -1;
    }
    int rc = nng_send(src->req, buf, len, 0);
    free(buf);
    if (rc == 0) {
        rc = nng_recv(src->req, rep, rep_len, NNG_FLAG_ALLOC);
    }
    return rc == 0 ? 0 : -1;
}

static int replay_frame(const uint8_t *frame, size_t len, void *arg)
{
    struct bus_sub *s = arg;
    atomic_fetch_add(&s->replayed, 1);
    char labels[128], topic[PROTO_TOPIC_MAX];
    if (proto_frame_topic(frame, len, topic, sizeof topic) <= 0) {
        snprintf(topic, sizeof topic, "?");
    }
    snprintf(labels, sizeof labels, "subscriber=\"%s\",topic=\"%s\"", s->name, topic);
    metrics_counter_add("leadbus_bus_events_replayed_total",
                        "Bus events a subscriber obtained by replay rather than live", labels, 1);
    bsub_handle_frame(s, frame, len, true, NULL);
    return 0;
}

/* Bring stream (src, topic) up to `target` from the source's replay endpoint. */
void bsub_catch_up(struct bus_sub *s, struct source *src, struct cursor *c, uint64_t target)
{
    if (src == NULL || src->replay_url == NULL) {
        return;
    }
    s->replaying = src;
    while (c->queued < target && !atomic_load(&s->stopping)) {
        uint64_t before = c->queued;
        struct proto_replay_req req = {
            .streams = false, .from = c->queued + 1, .max = PROTO_REPLAY_MAX_EVENTS};
        snprintf(req.topic, sizeof req.topic, "%s", c->topic);
        void *rep;
        size_t rep_len;
        if (roundtrip(src, &req, &rep, &rep_len) != 0) {
            src->synced = false; /* retried from the main loop */
            break;
        }
        bool is_streams;
        char name[PROTO_SRC_MAX];
        struct proto_heartbeat unused;
        int rc = proto_replay_rep_decode(rep, rep_len, &is_streams, name, NULL, &unused,
                                         replay_frame, s);
        nng_free(rep, rep_len);
        if (rc != PROTO_OK || is_streams || c->queued == before) {
            break;
        }
    }
    s->replaying = NULL;
    bsub_flush(s);
}

/* Resynchronise every source with a replay endpoint that publishes `name` (NULL: all of them). */
void bsub_resync_sources(struct bus_sub *s, const char *name)
{
    for (int i = 0; i < s->nsrc; i++) {
        struct source *src = &s->src[i];
        if (src->replay_url != NULL && (name == NULL || strcmp(src->name, name) == 0)) {
            src->synced = false;
            src->next_sync = 0;
        }
    }
}

/* ---- stream heads: heartbeats and stream lists ---- */

/*
 * A publisher says stream (src, topic) ends at last_seq (heartbeat or stream
 * list): start a "from now" cursor there, or replay what this subscriber lacks.
 * Returns false if the stream is behind the cursor: a stream list then says
 * the publisher's streams were reset; a heartbeat may only be older than a
 * replay answer already applied, so the stream list is asked for.
 */
bool bsub_stream_seen(struct bus_sub *s, struct source *src, struct ident_slot *is,
                      const struct proto_hb_stream *stream, bool heartbeat)
{
    if (!bsub_topic_wanted(s, stream->topic)) {
        return true;
    }
    bool created;
    struct cursor *c = bsub_cursor_find(s, is->src, stream->topic, &created);
    if (c == NULL) {
        return true;
    }
    char labels[200];
    snprintf(labels, sizeof labels, "subscriber=\"%s\",publisher=\"%s\",topic=\"%s\"", s->name,
             is->src, stream->topic);
    metrics_gauge_set(
        "leadbus_bus_subscriber_lag_events",
        "Events a publisher has that the subscriber has not applied (at its heartbeat)", labels,
        stream->last_seq > c->seq ? (double)(stream->last_seq - c->seq) : 0);
    if (created && s->from_now) {
        c->seq = c->queued = stream->last_seq;
        bsub_persist_start(s, c);
        return true;
    }
    enum bus_verdict v = bus_stream_decide(&is->id, c->queued, is->id.epoch, stream->last_seq, true,
                                           clock_mono_ms());
    if (v == BUS_RESET && heartbeat) {
        if (src != NULL && src->replay_url != NULL) {
            bsub_sync_source(s, src);
        }
        return false;
    }
    if (v == BUS_RESET) {
        bsub_stream_reset(s, is, is->id.epoch, stream, c->queued);
        return false;
    }
    if (v == BUS_GAP) {
        if (heartbeat) {
            atomic_fetch_add(&s->gaps, 1);
        }
        bsub_flush(s);
        bsub_catch_up(s, src, c, stream->last_seq);
    }
    return true;
}

void bsub_handle_heartbeat(struct bus_sub *s, const struct proto_event *ev)
{
    struct proto_heartbeat hb = ev->data.heartbeat;
    char from[PROTO_SRC_MAX];
    snprintf(from, sizeof from, "%s", ev->src);
    struct ident_slot *is = bsub_ident_find(s, from);
    if (is == NULL || !bsub_ident_ok(s, is, ev->epoch)) {
        return;
    }
    struct source *src = bsub_source_for(s, from, is->id.epoch);
    int64_t now = clock_mono_ms();
    if (src == NULL && now >= s->next_resync_all) {
        /* A name no source has: a publisher was renamed. Ask every replay endpoint again. */
        s->next_resync_all = now + RESYNC_MS;
        bsub_resync_sources(s, NULL);
    }
    for (int i = 0; i < hb.count; i++) {
        if (!bsub_stream_seen(s, src, is, &hb.streams[i], true)) {
            return;
        }
    }
}

struct ident_slot *bsub_streams_fetch(struct bus_sub *s, struct source *src,
                                      struct stream_list *out, bool *reached)
{
    struct proto_replay_req req = {.streams = true};
    void *rep;
    size_t rep_len;
    *reached = roundtrip(src, &req, &rep, &rep_len) == 0;
    if (!*reached) {
        return NULL;
    }
    bool is_streams = false;
    out->epoch = 0;
    int rc = proto_replay_rep_decode(rep, rep_len, &is_streams, out->name, &out->epoch, &out->heads,
                                     NULL, NULL);
    nng_free(rep, rep_len);
    bool named = rc == PROTO_OK && is_streams && out->name[0] != '\0';
    return named ? bsub_ident_find(s, out->name) : NULL;
}

void bsub_sync_source(struct bus_sub *s, struct source *src)
{
    struct stream_list l;
    bool reached;
    struct ident_slot *is = bsub_streams_fetch(s, src, &l, &reached);
    if (is == NULL) {
        src->next_sync = clock_mono_ms() + RESYNC_MS;
        return;
    }
    if (!src->discovered && !bsub_frame_identity_ok(s, src->peer, l.name)) {
        bsub_identity_refused(s, src->peer, l.name);
        src->next_sync = clock_mono_ms() + RESYNC_MS;
        return;
    }
    snprintf(src->name, sizeof src->name, "%s", l.name);
    src->epoch = l.epoch;
    src->synced = true;
    if (!bsub_ident_ok(s, is, l.epoch)) {
        return; /* held back or refused (synced: heartbeats go on), or reset (resynced) */
    }
    for (int i = 0; i < l.heads.count && src->synced; i++) {
        if (!bsub_stream_seen(s, src, is, &l.heads.streams[i], false)) {
            return;
        }
    }
    if (!src->synced) {
        src->next_sync = clock_mono_ms() + RESYNC_MS;
    }
}
