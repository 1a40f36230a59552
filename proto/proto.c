/* proto: envelope and topic codecs, driven by one field table per topic. */
#include "proto.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ftype { F_STR, F_I64, F_BOOL };

struct field {
    const char *key;
    enum ftype type;
    size_t off;
    size_t size; /* for F_STR: the array size, so at most size-1 bytes */
    bool required;
    bool omit_zero; /* F_I64 added later: left out of frames and JSON while 0 */
};

#define FSTR(st, m, req)                                                                           \
    {                                                                                              \
#m, F_STR, offsetof(st, m), sizeof(((st *)0)->m), req                                      \
    }
#define FI64(st, m, req)                                                                           \
    {                                                                                              \
#m, F_I64, offsetof(st, m), sizeof(int64_t), req                                           \
    }
#define FI64_OMIT_ZERO(st, m)                                                                      \
    {                                                                                              \
#m, F_I64, offsetof(st, m), sizeof(int64_t), false, true                                   \
    }
#define FBOOL(st, m, req)                                                                          \
    {                                                                                              \
#m, F_BOOL, offsetof(st, m), sizeof(bool), req                                             \
    }

static const struct field lead_created_fields[] = {
    FSTR(struct proto_lead_created, lead_id, true),
    FI64(struct proto_lead_created, received_ms, true),
    FSTR(struct proto_lead_created, first_name, false),
    FSTR(struct proto_lead_created, last_name, true),
    FSTR(struct proto_lead_created, email, false),
    FSTR(struct proto_lead_created, phone_raw, false),
    FSTR(struct proto_lead_created, phone_e164, false),
    FSTR(struct proto_lead_created, phone_dial, false),
    FSTR(struct proto_lead_created, phone_status, true),
    FSTR(struct proto_lead_created, source, false),
    FSTR(struct proto_lead_created, company, false),
    FSTR(struct proto_lead_created, city, false),
    FSTR(struct proto_lead_created, notes, false),
    FSTR(struct proto_lead_created, extra, false),
    FSTR(struct proto_lead_created, via, false),
    FSTR(struct proto_lead_created, origin, false),
    FSTR(struct proto_lead_created, source_ref, false),
    FI64_OMIT_ZERO(struct proto_lead_created, erased_ms),
};

static const struct field lead_erased_fields[] = {
    FSTR(struct proto_lead_erased, lead_id, true),
    FI64(struct proto_lead_erased, erased_ms, true),
};

/* A field left out while zero (omit_zero): older frames stay byte for byte the same. */
static bool omitted(const struct field *f, const void *st)
{
    int64_t v = 0;
    if (!f->omit_zero) {
        return false;
    }
    memcpy(&v, (const char *)st + f->off, sizeof v);
    return v == 0;
}

static const struct field lead_synced_fields[] = {
    FSTR(struct proto_lead_synced, lead_id, true),
    FSTR(struct proto_lead_synced, zoho_id, true),
    FSTR(struct proto_lead_synced, action, true),
};

static const struct field lead_sync_failed_fields[] = {
    FSTR(struct proto_lead_sync_failed, lead_id, true),
    FSTR(struct proto_lead_sync_failed, code, true),
    FSTR(struct proto_lead_sync_failed, message, false),
    FBOOL(struct proto_lead_sync_failed, permanent, true),
};

static const struct field call_scheduled_fields[] = {
    FSTR(struct proto_call_scheduled, call_id, true),
    FSTR(struct proto_call_scheduled, lead_id, true),
    FI64(struct proto_call_scheduled, attempt, true),
    FI64(struct proto_call_scheduled, due_ms, true),
    FSTR(struct proto_call_scheduled, phone_e164, true),
    FSTR(struct proto_call_scheduled, phone_dial, true),
};

static const struct field call_skipped_fields[] = {
    FSTR(struct proto_call_skipped, call_id, false),
    FSTR(struct proto_call_skipped, lead_id, true),
    FSTR(struct proto_call_skipped, reason, true),
};

static const struct field call_due_fields[] = {
    FSTR(struct proto_call_due, call_id, true),    FSTR(struct proto_call_due, lead_id, true),
    FI64(struct proto_call_due, attempt, true),    FI64(struct proto_call_due, due_ms, true),
    FSTR(struct proto_call_due, phone_e164, true), FSTR(struct proto_call_due, phone_dial, true),
};

static const struct field call_status_fields[] = {
    FSTR(struct proto_call_status, call_id, true),
    FSTR(struct proto_call_status, lead_id, true),
    FI64(struct proto_call_status, attempt, true),
    FSTR(struct proto_call_status, status, true),
    FSTR(struct proto_call_status, call_sid, false),
    FI64(struct proto_call_status, duration_s, false),
    FSTR(struct proto_call_status, recording_url, false),
    FSTR(struct proto_call_status, detail, false),
    FBOOL(struct proto_call_status, final, true),
    FSTR(struct proto_call_status, agent, false),
    FSTR(struct proto_call_status, agent_leg, false),
};

static const struct field call_sync_failed_fields[] = {
    FSTR(struct proto_call_sync_failed, lead_id, true),
    FSTR(struct proto_call_sync_failed, call_id, true),
    FI64(struct proto_call_sync_failed, attempt, true),
    FSTR(struct proto_call_sync_failed, code, true),
    FSTR(struct proto_call_sync_failed, message, false),
    FBOOL(struct proto_call_sync_failed, permanent, true),
};

static const struct field call_closed_fields[] = {
    FSTR(struct proto_call_closed, call_id, true),
    FSTR(struct proto_call_closed, lead_id, true),
    FI64(struct proto_call_closed, attempts, true),
    FSTR(struct proto_call_closed, status, true),
};

struct topic_desc {
    const char *name;
    const struct field *fields; /* NULL for the heartbeat, which has its own shape */
    size_t nfields;
};

#define TOPIC(name, f)                                                                             \
    {                                                                                              \
        name, f, sizeof(f) / sizeof(f[0])                                                          \
    }
static const struct topic_desc topics[PROTO_TOPIC_COUNT] = {
    [PROTO_LEAD_CREATED] = TOPIC("lead.created", lead_created_fields),
    [PROTO_LEAD_SYNCED] = TOPIC("lead.synced", lead_synced_fields),
    [PROTO_LEAD_SYNC_FAILED] = TOPIC("lead.sync_failed", lead_sync_failed_fields),
    [PROTO_CALL_SCHEDULED] = TOPIC("call.scheduled", call_scheduled_fields),
    [PROTO_CALL_SKIPPED] = TOPIC("call.skipped", call_skipped_fields),
    [PROTO_CALL_DUE] = TOPIC("call.due", call_due_fields),
    [PROTO_CALL_STATUS] = TOPIC("call.status", call_status_fields),
    [PROTO_CALL_SYNC_FAILED] = TOPIC("call.sync_failed", call_sync_failed_fields),
    [PROTO_LEAD_ERASED] = TOPIC("lead.erased", lead_erased_fields),
    [PROTO_CALL_CLOSED] = TOPIC("call.closed", call_closed_fields),
    [PROTO_HEARTBEAT] = {"_hb", NULL, 0},
};

const char *proto_strerror(int rc)
{
    switch (rc) {
    case PROTO_OK:
        return "ok";
    case PROTO_ETRUNC:
        return "truncated or trailing bytes";
    case PROTO_ETYPE:
        return "wrong type";
    case PROTO_ESIZE:
        return "too large";
    case PROTO_EMISSING:
        return "required key missing";
    case PROTO_EVERSION:
        return "unsupported version";
    case PROTO_ETOPIC:
        return "unknown topic";
    case PROTO_ENOMEM:
        return "out of memory";
    default:
        return "unknown error";
    }
}

const char *proto_topic_name(enum proto_topic t)
{
    return (unsigned)t < PROTO_TOPIC_COUNT ? topics[t].name : NULL;
}

int proto_topic_from_name(const char *name)
{
    for (int i = 0; i < PROTO_TOPIC_COUNT; i++) {
        if (strcmp(topics[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- encoding ---- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_data(msgpack_packer *pk, enum proto_topic t, const void *st)
{
    if (t == PROTO_HEARTBEAT) {
        const struct proto_heartbeat *hb = st;
        msgpack_pack_map(pk, 1);
        pack_str(pk, "streams");
        msgpack_pack_map(pk, (size_t)hb->count);
        for (int i = 0; i < hb->count; i++) {
            pack_str(pk, hb->streams[i].topic);
            msgpack_pack_uint64(pk, hb->streams[i].last_seq);
        }
        return;
    }
    const struct topic_desc *d = &topics[t];
    size_t n = 0;
    for (size_t i = 0; i < d->nfields; i++) {
        n += !omitted(&d->fields[i], st);
    }
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < d->nfields; i++) {
        const struct field *f = &d->fields[i];
        const char *p = (const char *)st + f->off;
        if (omitted(f, st)) {
            continue;
        }
        pack_str(pk, f->key);
        switch (f->type) {
        case F_STR:
            pack_str(pk, p);
            break;
        case F_I64: {
            int64_t v;
            memcpy(&v, p, sizeof v);
            msgpack_pack_int64(pk, v);
            break;
        }
        case F_BOOL:
            if (*(const bool *)p) {
                msgpack_pack_true(pk);
            } else {
                msgpack_pack_false(pk);
            }
            break;
        }
    }
}

int proto_frame_encode(enum proto_topic t, const char *src, uint64_t epoch, uint64_t seq,
                       int64_t ts, const void *topic_struct, uint8_t **out, size_t *out_len)
{
    if ((unsigned)t >= PROTO_TOPIC_COUNT) {
        return PROTO_ETOPIC;
    }
    if (strlen(src) >= PROTO_SRC_MAX) {
        return PROTO_ESIZE;
    }
    const char *name = topics[t].name;
    char id[PROTO_ID_MAX];
    snprintf(id, sizeof id, "%s:%s:%" PRIu64, src, name, seq);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, name, strlen(name) + 1);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, epoch != 0 ? 8 : 7);
    pack_str(&pk, "v");
    msgpack_pack_int(&pk, PROTO_VERSION);
    pack_str(&pk, "type");
    pack_str(&pk, name);
    pack_str(&pk, "src");
    pack_str(&pk, src);
    if (epoch != 0) {
        pack_str(&pk, "epoch");
        msgpack_pack_uint64(&pk, epoch);
    }
    pack_str(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    pack_str(&pk, "id");
    pack_str(&pk, id);
    pack_str(&pk, "ts");
    msgpack_pack_int64(&pk, ts);
    pack_str(&pk, "data");
    pack_data(&pk, t, topic_struct);

    if (sb.data == NULL) {
        return PROTO_ENOMEM;
    }
    if (sb.size > PROTO_FRAME_MAX) {
        msgpack_sbuffer_destroy(&sb);
        return PROTO_ESIZE;
    }
    *out_len = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    return PROTO_OK;
}

/* ---- decoding ---- */

static bool key_is(const msgpack_object *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, s, n) == 0;
}

static int get_str(const msgpack_object *o, char *dst, size_t size)
{
    if (o->type != MSGPACK_OBJECT_STR) {
        return PROTO_ETYPE;
    }
    if (o->via.str.size >= size) {
        return PROTO_ESIZE;
    }
    if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL) {
        return PROTO_ETYPE; /* an embedded NUL would silently cut the C string */
    }
    memcpy(dst, o->via.str.ptr, o->via.str.size);
    dst[o->via.str.size] = '\0';
    return PROTO_OK;
}

static int get_i64(const msgpack_object *o, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            return PROTO_ESIZE;
        }
        *v = (int64_t)o->via.u64;
        return PROTO_OK;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return PROTO_OK;
    }
    return PROTO_ETYPE;
}

static int get_u64(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return PROTO_ETYPE;
    }
    *v = o->via.u64;
    return PROTO_OK;
}

static int decode_heartbeat(const msgpack_object *data, struct proto_heartbeat *hb)
{
    const msgpack_object *streams = NULL;
    for (uint32_t i = 0; i < data->via.map.size; i++) {
        if (key_is(&data->via.map.ptr[i].key, "streams")) {
            streams = &data->via.map.ptr[i].val;
        }
    }
    if (streams == NULL) {
        return PROTO_EMISSING;
    }
    if (streams->type != MSGPACK_OBJECT_MAP) {
        return PROTO_ETYPE;
    }
    if (streams->via.map.size > PROTO_HB_MAX_STREAMS) {
        return PROTO_ESIZE;
    }
    hb->count = 0;
    for (uint32_t i = 0; i < streams->via.map.size; i++) {
        struct proto_hb_stream *s = &hb->streams[hb->count];
        int rc = get_str(&streams->via.map.ptr[i].key, s->topic, sizeof s->topic);
        if (rc == PROTO_OK) {
            rc = get_u64(&streams->via.map.ptr[i].val, &s->last_seq);
        }
        if (rc != PROTO_OK) {
            return rc;
        }
        hb->count++;
    }
    return PROTO_OK;
}

static int decode_data(enum proto_topic t, const msgpack_object *data, void *st)
{
    if (data->type != MSGPACK_OBJECT_MAP) {
        return PROTO_ETYPE;
    }
    if (t == PROTO_HEARTBEAT) {
        return decode_heartbeat(data, st);
    }
    const struct topic_desc *d = &topics[t];
    uint64_t seen = 0; /* bit i set once field i was read; every table has < 64 fields */
    for (uint32_t i = 0; i < data->via.map.size; i++) {
        const msgpack_object_kv *kv = &data->via.map.ptr[i];
        for (size_t j = 0; j < d->nfields; j++) {
            const struct field *f = &d->fields[j];
            if (!key_is(&kv->key, f->key)) {
                continue;
            }
            if (seen & ((uint64_t)1 << j)) {
                return PROTO_ETYPE; /* a repeated key: which value is meant is not ours to guess */
            }
            char *p = (char *)st + f->off;
            int rc = PROTO_OK;
            switch (f->type) {
            case F_STR:
                rc = get_str(&kv->val, p, f->size);
                break;
            case F_I64: {
                int64_t v = 0;
                rc = get_i64(&kv->val, &v);
                memcpy(p, &v, sizeof v);
                break;
            }
            case F_BOOL:
                if (kv->val.type != MSGPACK_OBJECT_BOOLEAN) {
                    rc = PROTO_ETYPE;
                } else {
                    *(bool *)p = kv->val.via.boolean;
                }
                break;
            }
            if (rc != PROTO_OK) {
                return rc;
            }
            seen |= (uint64_t)1 << j;
        }
    }
    for (size_t j = 0; j < d->nfields; j++) {
        if (d->fields[j].required && !(seen & ((uint64_t)1 << j))) {
            return PROTO_EMISSING;
        }
    }
    return PROTO_OK;
}

/*
 * msgpack-c allocates for a container's declared size before reading it, so a
 * 10-byte input declaring a map of 2^32 entries asks for tens of GiB. This walk
 * checks, before unpacking, that every declared count fits in the bytes that
 * remain (each element needs at least one), and that exactly one object fills
 * the buffer.
 */
static bool sizes_fit(const uint8_t *p, size_t len)
{
    size_t pos = 0;
    uint64_t pending = 1;
    while (pending > 0) {
        if (pos >= len) {
            return false;
        }
        uint8_t b = p[pos++];
        pending--;
        uint64_t skip = 0, items = 0;
        size_t lenbytes = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b <= 0x8f) {
            items = 2u * (b & 0x0f);
        } else if (b <= 0x9f) {
            items = b & 0x0f;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4:
            case 0xd9:
                lenbytes = 1;
                break; /* bin8, str8 */
            case 0xc5:
            case 0xda:
                lenbytes = 2;
                break; /* bin16, str16 */
            case 0xc6:
            case 0xdb:
                lenbytes = 4;
                break; /* bin32, str32 */
            case 0xc7:
                lenbytes = 1;
                skip = 1;
                break; /* ext8 (+type) */
            case 0xc8:
                lenbytes = 2;
                skip = 1;
                break;
            case 0xc9:
                lenbytes = 4;
                skip = 1;
                break;
            case 0xca:
                skip = 4;
                break;
            case 0xcb:
                skip = 8;
                break;
            case 0xcc:
            case 0xd0:
                skip = 1;
                break;
            case 0xcd:
            case 0xd1:
                skip = 2;
                break;
            case 0xce:
            case 0xd2:
                skip = 4;
                break;
            case 0xcf:
            case 0xd3:
                skip = 8;
                break;
            case 0xd4:
                skip = 2;
                break; /* fixext1..16 (+type) */
            case 0xd5:
                skip = 3;
                break;
            case 0xd6:
                skip = 5;
                break;
            case 0xd7:
                skip = 9;
                break;
            case 0xd8:
                skip = 17;
                break;
            case 0xdc:
            case 0xde:
                lenbytes = 2;
                break; /* array16, map16 */
            case 0xdd:
            case 0xdf:
                lenbytes = 4;
                break; /* array32, map32 */
            default:
                return false; /* 0xc1 is never used */
            }
        }
        if (lenbytes > 0) {
            if (len - pos < lenbytes) {
                return false;
            }
            uint64_t n = 0;
            for (size_t i = 0; i < lenbytes; i++) {
                n = (n << 8) | p[pos++];
            }
            if (b == 0xdc || b == 0xdd) {
                items = n;
            } else if (b == 0xde || b == 0xdf) {
                items = 2 * n;
            } else {
                skip += n;
            }
        }
        if (skip > len - pos) {
            return false;
        }
        pos += skip;
        pending += items;
        if (pending > len - pos) {
            return false;
        }
    }
    return pos == len;
}

int proto_frame_topic(const uint8_t *frame, size_t len, char *topic, size_t topic_size)
{
    const uint8_t *nul = memchr(frame, '\0', len < topic_size ? len : topic_size);
    if (nul == NULL) {
        return -1;
    }
    size_t n = (size_t)(nul - frame);
    memcpy(topic, frame, n);
    topic[n] = '\0';
    return (int)n;
}

static int decode_envelope(const msgpack_object *root, const char *topic, struct proto_event *ev)
{
    if (root->type != MSGPACK_OBJECT_MAP) {
        return PROTO_ETYPE;
    }
    const msgpack_object *data = NULL;
    char type[PROTO_TOPIC_MAX] = "";
    int64_t v = -1;
    unsigned seen = 0;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *k = &root->via.map.ptr[i].key;
        const msgpack_object *val = &root->via.map.ptr[i].val;
        int rc = PROTO_OK;
        unsigned bit = 0;
        if (key_is(k, "v")) {
            rc = get_i64(val, &v);
            bit = 1;
        } else if (key_is(k, "type")) {
            rc = get_str(val, type, sizeof type);
            bit = 2;
        } else if (key_is(k, "src")) {
            rc = get_str(val, ev->src, sizeof ev->src);
            bit = 4;
        } else if (key_is(k, "seq")) {
            rc = get_u64(val, &ev->seq);
            bit = 8;
        } else if (key_is(k, "id")) {
            rc = get_str(val, ev->id, sizeof ev->id);
            bit = 16;
        } else if (key_is(k, "ts")) {
            rc = get_i64(val, &ev->ts);
            bit = 32;
        } else if (key_is(k, "data")) {
            data = val;
            bit = 64;
        } else if (key_is(k, "epoch")) {
            rc = get_u64(val, &ev->epoch); /* optional: older publishers do not send it */
            bit = 128;
        }
        if (rc != PROTO_OK) {
            return rc;
        }
        if (seen & bit) {
            return PROTO_ETYPE; /* a repeated key */
        }
        seen |= bit;
    }
    if ((seen & 127) != 127) {
        return PROTO_EMISSING;
    }
    /* Version 1 decoders read any v1 envelope; a new major version may change meaning. */
    if (v != PROTO_VERSION) {
        return PROTO_EVERSION;
    }
    ev->v = (int)v;
    if (strcmp(type, topic) != 0) {
        return PROTO_ETOPIC;
    }
    int t = proto_topic_from_name(type);
    if (t < 0) {
        return PROTO_ETOPIC;
    }
    ev->topic = (enum proto_topic)t;
    return decode_data(ev->topic, data, &ev->data);
}

int proto_frame_decode(const uint8_t *frame, size_t len, struct proto_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (len > PROTO_FRAME_MAX) {
        return PROTO_ESIZE;
    }
    char topic[PROTO_TOPIC_MAX];
    int tlen = proto_frame_topic(frame, len, topic, sizeof topic);
    if (tlen < 0) {
        return PROTO_ETRUNC;
    }
    const char *body = (const char *)frame + tlen + 1;
    size_t body_len = len - (size_t)tlen - 1;

    if (!sizes_fit((const uint8_t *)body, body_len)) {
        return PROTO_ETRUNC;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc;
    msgpack_unpack_return ur = msgpack_unpack_next(&up, body, body_len, &off);
    if (ur == MSGPACK_UNPACK_SUCCESS && off == body_len) {
        rc = decode_envelope(&up.data, topic, ev);
    } else if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        rc = PROTO_ENOMEM;
    } else if (ur == MSGPACK_UNPACK_PARSE_ERROR) {
        rc = PROTO_ETYPE;
    } else {
        rc = PROTO_ETRUNC;
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}

/* ---- JSON rendering ---- */

char *proto_data_to_json(enum proto_topic t, const void *st)
{
    if ((unsigned)t >= PROTO_TOPIC_COUNT) {
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    if (t == PROTO_HEARTBEAT) {
        const struct proto_heartbeat *hb = st;
        cJSON *s = cJSON_AddObjectToObject(o, "streams");
        for (int i = 0; s != NULL && i < hb->count; i++) {
            cJSON_AddNumberToObject(s, hb->streams[i].topic, (double)hb->streams[i].last_seq);
        }
    } else {
        const struct topic_desc *d = &topics[t];
        for (size_t i = 0; i < d->nfields; i++) {
            const struct field *f = &d->fields[i];
            const char *p = (const char *)st + f->off;
            if (omitted(f, st)) {
                continue;
            }
            switch (f->type) {
            case F_STR:
                cJSON_AddStringToObject(o, f->key, p);
                break;
            case F_I64: {
                int64_t v;
                memcpy(&v, p, sizeof v);
                cJSON_AddNumberToObject(o, f->key, (double)v);
                break;
            }
            case F_BOOL:
                cJSON_AddBoolToObject(o, f->key, *(const bool *)p);
                break;
            }
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* ---- replay messages ---- */

static int finish(msgpack_sbuffer *sb, uint8_t **out, size_t *out_len)
{
    if (sb->data == NULL) {
        return PROTO_ENOMEM;
    }
    *out_len = sb->size;
    *out = (uint8_t *)msgpack_sbuffer_release(sb);
    return PROTO_OK;
}

int proto_replay_req_encode(const struct proto_replay_req *req, uint8_t **out, size_t *out_len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (req->streams) {
        msgpack_pack_map(&pk, 1);
        pack_str(&pk, "op");
        pack_str(&pk, "streams");
    } else {
        msgpack_pack_map(&pk, 4);
        pack_str(&pk, "op");
        pack_str(&pk, "events");
        pack_str(&pk, "topic");
        pack_str(&pk, req->topic);
        pack_str(&pk, "from");
        msgpack_pack_uint64(&pk, req->from);
        pack_str(&pk, "max");
        msgpack_pack_uint64(&pk, req->max);
    }
    return finish(&sb, out, out_len);
}

/* Unpack exactly one msgpack object covering all of buf. */
static int unpack_all(const uint8_t *buf, size_t len, msgpack_unpacked *up)
{
    if (!sizes_fit(buf, len)) {
        return PROTO_ETRUNC;
    }
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(up, (const char *)buf, len, &off);
    if (ur == MSGPACK_UNPACK_SUCCESS && off == len) {
        return up->data.type == MSGPACK_OBJECT_MAP ? PROTO_OK : PROTO_ETYPE;
    }
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        return PROTO_ENOMEM;
    }
    return ur == MSGPACK_UNPACK_PARSE_ERROR ? PROTO_ETYPE : PROTO_ETRUNC;
}

int proto_replay_req_decode(const uint8_t *buf, size_t len, struct proto_replay_req *req)
{
    memset(req, 0, sizeof *req);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = unpack_all(buf, len, &up);
    char op[16] = "";
    unsigned seen = 0;
    for (uint32_t i = 0; rc == PROTO_OK && i < up.data.via.map.size; i++) {
        const msgpack_object *k = &up.data.via.map.ptr[i].key;
        const msgpack_object *v = &up.data.via.map.ptr[i].val;
        if (key_is(k, "op")) {
            rc = get_str(v, op, sizeof op);
            seen |= 1;
        } else if (key_is(k, "topic")) {
            rc = get_str(v, req->topic, sizeof req->topic);
            seen |= 2;
        } else if (key_is(k, "from")) {
            rc = get_u64(v, &req->from);
            seen |= 4;
        } else if (key_is(k, "max")) {
            rc = get_u64(v, &req->max);
            seen |= 8;
        }
    }
    msgpack_unpacked_destroy(&up);
    if (rc != PROTO_OK) {
        return rc;
    }
    if (strcmp(op, "streams") == 0) {
        req->streams = true;
        return PROTO_OK;
    }
    if (strcmp(op, "events") != 0) {
        return (seen & 1) ? PROTO_ETYPE : PROTO_EMISSING;
    }
    return seen == 15 ? PROTO_OK : PROTO_EMISSING;
}

int proto_replay_streams_encode(const char *src, uint64_t epoch,
                                const struct proto_heartbeat *streams, uint8_t **out,
                                size_t *out_len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, epoch != 0 ? 3 : 2);
    pack_str(&pk, "src");
    pack_str(&pk, src);
    if (epoch != 0) {
        pack_str(&pk, "epoch");
        msgpack_pack_uint64(&pk, epoch);
    }
    pack_str(&pk, "streams"); /* the same map as a heartbeat's */
    msgpack_pack_map(&pk, (size_t)streams->count);
    for (int i = 0; i < streams->count; i++) {
        pack_str(&pk, streams->streams[i].topic);
        msgpack_pack_uint64(&pk, streams->streams[i].last_seq);
    }
    return finish(&sb, out, out_len);
}

int proto_replay_events_encode(uint64_t epoch, const uint8_t *const *frames, const size_t *lens,
                               size_t n, uint8_t **out, size_t *out_len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, epoch != 0 ? 2 : 1);
    if (epoch != 0) {
        pack_str(&pk, "epoch");
        msgpack_pack_uint64(&pk, epoch);
    }
    pack_str(&pk, "events");
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_bin(&pk, lens[i]);
        msgpack_pack_bin_body(&pk, frames[i], lens[i]);
    }
    return finish(&sb, out, out_len);
}

/* A reply's optional "epoch" (0 when absent). */
static int reply_epoch(const msgpack_object *map, uint64_t *epoch)
{
    *epoch = 0;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        if (key_is(&map->via.map.ptr[i].key, "epoch")) {
            return get_u64(&map->via.map.ptr[i].val, epoch);
        }
    }
    return PROTO_OK;
}

int proto_replay_rep_decode(const uint8_t *buf, size_t len, bool *is_streams,
                            char src[PROTO_SRC_MAX], uint64_t *epoch,
                            struct proto_heartbeat *streams,
                            int (*on_frame)(const uint8_t *frame, size_t len, void *arg), void *arg)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = unpack_all(buf, len, &up);
    *is_streams = false;
    uint64_t ep = 0;
    if (rc == PROTO_OK) {
        rc = reply_epoch(&up.data, &ep);
    }
    if (epoch != NULL) {
        *epoch = ep;
    }
    if (rc == PROTO_OK) {
        rc = PROTO_EMISSING;
        for (uint32_t i = 0; i < up.data.via.map.size; i++) {
            const msgpack_object *k = &up.data.via.map.ptr[i].key;
            const msgpack_object *v = &up.data.via.map.ptr[i].val;
            if (key_is(k, "streams")) {
                *is_streams = true;
                memset(streams, 0, sizeof *streams);
                src[0] = '\0';
                rc = decode_heartbeat(&up.data, streams);
                for (uint32_t j = 0; rc == PROTO_OK && j < up.data.via.map.size; j++) {
                    if (key_is(&up.data.via.map.ptr[j].key, "src")) {
                        rc = get_str(&up.data.via.map.ptr[j].val, src, PROTO_SRC_MAX);
                    }
                }
                break;
            }
            if (key_is(k, "events")) {
                if (v->type != MSGPACK_OBJECT_ARRAY) {
                    rc = PROTO_ETYPE;
                    break;
                }
                rc = PROTO_OK;
                for (uint32_t j = 0; rc == PROTO_OK && j < v->via.array.size; j++) {
                    const msgpack_object *f = &v->via.array.ptr[j];
                    if (f->type != MSGPACK_OBJECT_BIN) {
                        rc = PROTO_ETYPE;
                    } else {
                        rc = on_frame((const uint8_t *)f->via.bin.ptr, f->via.bin.size, arg);
                    }
                }
                break;
            }
        }
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}
