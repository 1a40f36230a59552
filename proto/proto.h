/*
 * proto: the event contract between leadbus publishers and every subscriber.
 *
 * A frame on the bus is the topic bytes, one NUL, then a msgpack map (the
 * envelope; see proto/README.md). This module encodes and strictly decodes
 * envelopes and the per-topic `data` maps. Every topic struct holds its strings
 * in fixed arrays, so a decoded event owns no heap memory and a string that
 * does not fit is a decode error, never a truncation.
 *
 * Memory: proto_frame_encode() returns a malloc'd buffer the caller frees.
 * Decoders write into caller-provided structs and keep no pointers to input.
 */
#ifndef LEADBUS_PROTO_H
#define LEADBUS_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define PROTO_VERSION 1
#define PROTO_TOPIC_MAX 32
#define PROTO_SRC_MAX 32
#define PROTO_ID_MAX 96
#define PROTO_FRAME_MAX (256 * 1024)
#define PROTO_HB_MAX_STREAMS 32

enum proto_topic {
    PROTO_LEAD_CREATED,
    PROTO_LEAD_SYNCED,
    PROTO_LEAD_SYNC_FAILED,
    PROTO_CALL_SCHEDULED,
    PROTO_CALL_SKIPPED,
    PROTO_CALL_DUE,
    PROTO_CALL_STATUS,
    PROTO_CALL_SYNC_FAILED,
    PROTO_LEAD_ERASED,
    PROTO_CALL_CLOSED,
    PROTO_HEARTBEAT,
    PROTO_TOPIC_COUNT
};

struct proto_lead_created {
    char lead_id[40];
    int64_t received_ms;
    char first_name[128];
    char last_name[128];
    char email[256];
    char phone_raw[64];
    char phone_e164[24];
    char phone_dial[24];
    char phone_status[16]; /* "valid", "invalid" or "none" */
    char source[128];
    char company[256];
    char city[128];
    char notes[2048];
    char extra[8192];     /* JSON text of the client's free `extra` object, or "" */
    char via[24];         /* how it came: "api" (an operator key) or the form key's id ("form-1") */
    char origin[256];     /* the page's Origin for a form key, or "" */
    char source_ref[128]; /* the source's own id (Meta leadgen_id, a webhook's id), or "" */
    int64_t erased_ms;    /* 0; in a kept event rewritten after lead.erased: when, and the
                             personal fields are "" */
};

/* An operator erased a lead's personal data (DELETE /leads/{id}): every store scrubs it. */
struct proto_lead_erased {
    char lead_id[40];
    int64_t erased_ms;
};

struct proto_lead_synced {
    char lead_id[40];
    char zoho_id[64];
    char action[16]; /* "created", "updated" or "linked" (a lead created in Zoho) */
};

struct proto_lead_sync_failed {
    char lead_id[40];
    char code[64];
    char message[512];
    bool permanent;
};

struct proto_call_scheduled {
    char call_id[64];
    char lead_id[40];
    int64_t attempt;
    int64_t due_ms;
    char phone_e164[24];
    char phone_dial[24];
};

struct proto_call_skipped {
    char call_id[64];
    char lead_id[40];
    char reason[32]; /* no_phone, invalid_phone, duplicate, disabled */
};

struct proto_call_due {
    char call_id[64];
    char lead_id[40];
    int64_t attempt;
    int64_t due_ms;
    char phone_e164[24];
    char phone_dial[24];
};

struct proto_call_status {
    char call_id[64];
    char lead_id[40];
    int64_t attempt;
    char status[24]; /* queued, completed, busy, no-answer, failed, failed-api, canceled, dnd */
    char call_sid[64];
    int64_t duration_s;
    char recording_url[512];
    char detail[256];
    bool final;
    char agent[32];     /* the agent rung first (AGENTS name); "" for an IVR-flow call */
    char agent_leg[24]; /* the agent's leg: answered, no-answer, busy, failed, or "" (unknown) */
};

/* call-scheduler closed a call: its last attempt ended and the retry policy gives it no other. */
struct proto_call_closed {
    char call_id[64];
    char lead_id[40];
    int64_t attempts; /* attempts made */
    char status[24];  /* the last attempt's final status (call.status) */
};

/* zoho-sync could not write a call's outcome to the CRM (the lead is synced; its note is not). */
struct proto_call_sync_failed {
    char lead_id[40];
    char call_id[64];
    int64_t attempt;
    char code[64];
    char message[512];
    bool permanent; /* Zoho refused the request (false: it kept failing until ZOHO_MAX_RETRY_MS) */
};

struct proto_hb_stream {
    char topic[PROTO_TOPIC_MAX];
    uint64_t last_seq;
};

struct proto_heartbeat {
    int count;
    struct proto_hb_stream streams[PROTO_HB_MAX_STREAMS];
};

union proto_data {
    struct proto_lead_created lead_created;
    struct proto_lead_synced lead_synced;
    struct proto_lead_sync_failed lead_sync_failed;
    struct proto_call_scheduled call_scheduled;
    struct proto_call_skipped call_skipped;
    struct proto_call_due call_due;
    struct proto_call_status call_status;
    struct proto_call_sync_failed call_sync_failed;
    struct proto_lead_erased lead_erased;
    struct proto_call_closed call_closed;
    struct proto_heartbeat heartbeat;
};

/* A decoded frame: the envelope's fields and its typed data. */
struct proto_event {
    int v;
    enum proto_topic topic;
    char src[PROTO_SRC_MAX];
    uint64_t epoch; /* the publisher's stream epoch; 0: the frame has none (an older publisher) */
    uint64_t seq;
    char id[PROTO_ID_MAX];
    int64_t ts;
    union proto_data data;
};

/* Status codes; proto_strerror() names them. */
enum {
    PROTO_OK = 0,
    PROTO_ETRUNC = -1,   /* input ends early or has trailing bytes */
    PROTO_ETYPE = -2,    /* a known key has the wrong msgpack type */
    PROTO_ESIZE = -3,    /* a string or frame is too long */
    PROTO_EMISSING = -4, /* a required key is absent */
    PROTO_EVERSION = -5, /* envelope version we do not understand */
    PROTO_ETOPIC = -6,   /* unknown topic or topic/type mismatch */
    PROTO_ENOMEM = -7,
};

const char *proto_strerror(int rc);

/* Topic name <-> enum. proto_topic_from_name returns -1 for an unknown name. */
const char *proto_topic_name(enum proto_topic t);
int proto_topic_from_name(const char *name);

/*
 * Encode a whole frame: topic, NUL, envelope whose data is `topic_struct`
 * (a struct proto_<topic> matching `t`). `epoch` is the publisher's stream
 * epoch (0 leaves the key out, as publishers before it did). On success *out
 * is malloc'd.
 */
int proto_frame_encode(enum proto_topic t, const char *src, uint64_t epoch, uint64_t seq,
                       int64_t ts, const void *topic_struct, uint8_t **out, size_t *out_len);

/*
 * Decode a whole frame strictly: the topic prefix must equal the envelope's
 * `type`, known keys must have the right types and fit, unknown keys are
 * skipped. `ev` is zeroed first and owns no memory afterwards.
 */
int proto_frame_decode(const uint8_t *frame, size_t len, struct proto_event *ev);

/* Length of the topic prefix of a frame (up to the NUL), or -1 if malformed. */
int proto_frame_topic(const uint8_t *frame, size_t len, char *topic, size_t topic_size);

/*
 * Render a decoded topic struct as a JSON object (used by `leadbus tap` and
 * for logs). Returns a malloc'd NUL-terminated string or NULL.
 */
char *proto_data_to_json(enum proto_topic t, const void *topic_struct);

/*
 * Replay: a publisher answers REQ/REP requests on its replay endpoint.
 * Request (msgpack map): {"op":"streams"} or {"op":"events","topic":T,"from":N,"max":M}.
 * Reply: {"src":name,"epoch":E,"streams":{topic:last_seq,...}} or
 * {"epoch":E,"events":[bin frame,...]}: frames of topic T with seq >= N in
 * order, at most M, possibly fewer (size cap). "epoch" is absent from older
 * publishers' replies (decoded as 0).
 */
#define PROTO_REPLAY_MAX_EVENTS 2000
#define PROTO_REPLAY_MAX_BYTES (2 * 1024 * 1024)

struct proto_replay_req {
    bool streams; /* true: ask for the stream list; false: ask for events */
    char topic[PROTO_TOPIC_MAX];
    uint64_t from;
    uint64_t max;
};

int proto_replay_req_encode(const struct proto_replay_req *req, uint8_t **out, size_t *out_len);
int proto_replay_req_decode(const uint8_t *buf, size_t len, struct proto_replay_req *req);

/* The streams reply also names the publisher ("src") and its epoch, so a subscriber learns them. */
int proto_replay_streams_encode(const char *src, uint64_t epoch,
                                const struct proto_heartbeat *streams, uint8_t **out,
                                size_t *out_len);
int proto_replay_events_encode(uint64_t epoch, const uint8_t *const *frames, const size_t *lens,
                               size_t n, uint8_t **out, size_t *out_len);
/*
 * Decode a reply: a streams reply fills *streams (and sets *is_streams); an
 * events reply calls on_frame for each frame in order, stopping at its first
 * non-zero return, which is returned. *epoch (may be NULL) receives the
 * reply's "epoch", 0 when absent; it is set before the first on_frame call.
 */
int proto_replay_rep_decode(const uint8_t *buf, size_t len, bool *is_streams,
                            char src[PROTO_SRC_MAX], uint64_t *epoch,
                            struct proto_heartbeat *streams,
                            int (*on_frame)(const uint8_t *frame, size_t len, void *arg),
                            void *arg);

#endif
