/* Unit tests for proto: round trips of every topic, and every kind of rejection. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "proto.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

static void roundtrip(enum proto_topic t, const void *in, size_t size)
{
    uint8_t *frame;
    size_t len;
    assert_int_equal(
        proto_frame_encode(t, "ingest", 0x7edcba9876543210, 42, 1700000000123, in, &frame, &len),
        PROTO_OK);
    assert_string_equal((const char *)frame, proto_topic_name(t));
    struct proto_event *ev = malloc(sizeof *ev);
    assert_non_null(ev);
    assert_int_equal(proto_frame_decode(frame, len, ev), PROTO_OK);
    assert_int_equal(ev->topic, t);
    assert_int_equal(ev->seq, 42);
    assert_true(ev->epoch == 0x7edcba9876543210);
    assert_int_equal(ev->ts, 1700000000123);
    assert_int_equal(ev->v, PROTO_VERSION);
    assert_string_equal(ev->src, "ingest");
    assert_memory_equal(&ev->data, in, size);
    free(ev);
    free(frame);
}

static void test_roundtrip_lead_created(void **state)
{
    (void)state;
    struct proto_lead_created *l = calloc(1, sizeof *l);
    strcpy(l->lead_id, "ld_01");
    l->received_ms = 1700000000000;
    strcpy(l->first_name, "Zoë");
    strcpy(l->last_name, "Ångström-日本");
    strcpy(l->email, "zoe@example.com");
    strcpy(l->phone_raw, "98765 43210");
    strcpy(l->phone_e164, "+919876543210");
    strcpy(l->phone_dial, "09876543210");
    strcpy(l->phone_status, "valid");
    strcpy(l->extra, "{\"utm\":\"x\"}");
    roundtrip(PROTO_LEAD_CREATED, l, sizeof *l);
    free(l);
}

/* erased_ms: absent from frames and JSON while 0 (older frames stay the same), kept when set;
 * lead.erased round-trips. */
static void test_lead_erased(void **state)
{
    (void)state;
    struct proto_lead_created *l = calloc(1, sizeof *l);
    strcpy(l->lead_id, "ld_02");
    strcpy(l->last_name, "X");
    strcpy(l->phone_status, "none");
    uint8_t *frame;
    size_t len;
    assert_int_equal(proto_frame_encode(PROTO_LEAD_CREATED, "ingest", 1, 1, 1, l, &frame, &len),
                     PROTO_OK);
    assert_null(memmem(frame, len, "erased_ms", 9));
    free(frame);
    char *json = proto_data_to_json(PROTO_LEAD_CREATED, l);
    assert_null(strstr(json, "erased_ms"));
    free(json);
    l->erased_ms = 1700000000999;
    roundtrip(PROTO_LEAD_CREATED, l, sizeof *l);
    json = proto_data_to_json(PROTO_LEAD_CREATED, l);
    assert_non_null(strstr(json, "\"erased_ms\":1700000000999"));
    free(json);
    free(l);
    struct proto_lead_erased e = {.lead_id = "ld_02", .erased_ms = 1700000000999};
    roundtrip(PROTO_LEAD_ERASED, &e, sizeof e);
    assert_int_equal(proto_topic_from_name("lead.erased"), PROTO_LEAD_ERASED);
}

static void test_call_closed(void **state)
{
    (void)state;
    struct proto_call_closed c = {
        .call_id = "call_ld_03", .lead_id = "ld_03", .attempts = 3, .status = "no-answer"};
    roundtrip(PROTO_CALL_CLOSED, &c, sizeof c);
    assert_int_equal(proto_topic_from_name("call.closed"), PROTO_CALL_CLOSED);
    assert_string_equal(proto_topic_name(PROTO_CALL_CLOSED), "call.closed");
}

static void test_roundtrip_others(void **state)
{
    (void)state;
    struct proto_lead_synced s;
    memset(&s, 0, sizeof s);
    strcpy(s.lead_id, "ld_1");
    strcpy(s.zoho_id, "5725767000000524157");
    strcpy(s.action, "created");
    roundtrip(PROTO_LEAD_SYNCED, &s, sizeof s);

    struct proto_lead_sync_failed f;
    memset(&f, 0, sizeof f);
    strcpy(f.lead_id, "ld_1");
    strcpy(f.code, "INVALID_DATA");
    f.permanent = true;
    roundtrip(PROTO_LEAD_SYNC_FAILED, &f, sizeof f);

    struct proto_call_scheduled cs;
    memset(&cs, 0, sizeof cs);
    strcpy(cs.call_id, "call_1_1");
    strcpy(cs.lead_id, "ld_1");
    cs.attempt = 1;
    cs.due_ms = -5; /* negative values survive too */
    strcpy(cs.phone_e164, "+919876543210");
    strcpy(cs.phone_dial, "09876543210");
    roundtrip(PROTO_CALL_SCHEDULED, &cs, sizeof cs);

    struct proto_call_skipped sk;
    memset(&sk, 0, sizeof sk);
    strcpy(sk.lead_id, "ld_1");
    strcpy(sk.reason, "duplicate");
    roundtrip(PROTO_CALL_SKIPPED, &sk, sizeof sk);

    struct proto_call_due d;
    memset(&d, 0, sizeof d);
    strcpy(d.call_id, "c");
    strcpy(d.lead_id, "l");
    d.attempt = 3;
    strcpy(d.phone_e164, "+1");
    strcpy(d.phone_dial, "1");
    roundtrip(PROTO_CALL_DUE, &d, sizeof d);

    struct proto_call_status st;
    memset(&st, 0, sizeof st);
    strcpy(st.call_id, "c");
    strcpy(st.lead_id, "l");
    strcpy(st.status, "no-answer");
    st.duration_s = 17;
    st.final = true;
    roundtrip(PROTO_CALL_STATUS, &st, sizeof st);

    struct proto_heartbeat hb;
    memset(&hb, 0, sizeof hb);
    hb.count = 2;
    strcpy(hb.streams[0].topic, "lead.created");
    hb.streams[0].last_seq = 10;
    strcpy(hb.streams[1].topic, "call.due");
    hb.streams[1].last_seq = UINT64_MAX;
    roundtrip(PROTO_HEARTBEAT, &hb, sizeof hb);
}

/* Build a frame by hand: topic NUL envelope, with a data map packed by `fill`. */
static size_t handmade(uint8_t *out, const char *topic, const char *type, int v, bool with_data,
                       void (*fill)(msgpack_packer *))
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, topic, strlen(topic) + 1);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, with_data ? 8 : 6);
#define S(x) msgpack_pack_str_with_body(&pk, x, strlen(x))
    S("v");
    msgpack_pack_int(&pk, v);
    S("type");
    S(type);
    S("src");
    S("p");
    S("seq");
    msgpack_pack_uint64(&pk, 1);
    S("id");
    S("p:x:1");
    S("ts");
    msgpack_pack_int64(&pk, 5);
    if (with_data) {
        S("future_key"); /* unknown keys are ignored */
        msgpack_pack_array(&pk, 1);
        msgpack_pack_nil(&pk);
        S("data");
        fill(&pk);
    }
    memcpy(out, sb.data, sb.size);
    size_t n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static void synced_ok(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 4);
    msgpack_pack_str_with_body(pk, "lead_id", 7);
    msgpack_pack_str_with_body(pk, "L", 1);
    msgpack_pack_str_with_body(pk, "zoho_id", 7);
    msgpack_pack_str_with_body(pk, "Z", 1);
    msgpack_pack_str_with_body(pk, "action", 6);
    msgpack_pack_str_with_body(pk, "created", 7);
    msgpack_pack_str_with_body(pk, "new_field", 9);
    msgpack_pack_map(pk, 0);
}

static void synced_wrong_type(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    msgpack_pack_str_with_body(pk, "lead_id", 7);
    msgpack_pack_int(pk, 7);
    msgpack_pack_str_with_body(pk, "zoho_id", 7);
    msgpack_pack_str_with_body(pk, "Z", 1);
    msgpack_pack_str_with_body(pk, "action", 6);
    msgpack_pack_str_with_body(pk, "created", 7);
}

static void synced_missing(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "lead_id", 7);
    msgpack_pack_str_with_body(pk, "L", 1);
}

static void synced_oversize(msgpack_packer *pk)
{
    char big[100];
    memset(big, 'z', sizeof big);
    msgpack_pack_map(pk, 3);
    msgpack_pack_str_with_body(pk, "lead_id", 7);
    msgpack_pack_str_with_body(pk, big, sizeof big); /* lead_id holds 39 */
    msgpack_pack_str_with_body(pk, "zoho_id", 7);
    msgpack_pack_str_with_body(pk, "Z", 1);
    msgpack_pack_str_with_body(pk, "action", 6);
    msgpack_pack_str_with_body(pk, "created", 7);
}

static void synced_embedded_nul(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    msgpack_pack_str_with_body(pk, "lead_id", 7);
    msgpack_pack_str_with_body(pk, "a\0b", 3);
    msgpack_pack_str_with_body(pk, "zoho_id", 7);
    msgpack_pack_str_with_body(pk, "Z", 1);
    msgpack_pack_str_with_body(pk, "action", 6);
    msgpack_pack_str_with_body(pk, "created", 7);
}

static void synced_duplicate(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 4);
    msgpack_pack_str_with_body(pk, "lead_id", 7);
    msgpack_pack_str_with_body(pk, "L", 1);
    msgpack_pack_str_with_body(pk, "zoho_id", 7);
    msgpack_pack_str_with_body(pk, "Z", 1);
    msgpack_pack_str_with_body(pk, "action", 6);
    msgpack_pack_str_with_body(pk, "created", 7);
    msgpack_pack_str_with_body(pk, "lead_id", 7);
    msgpack_pack_str_with_body(pk, "M", 1);
}

static void not_a_map(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 0);
}

static void test_decode_accepts_unknown_keys(void **state)
{
    (void)state;
    uint8_t buf[1024];
    struct proto_event ev;
    size_t n = handmade(buf, "lead.synced", "lead.synced", 1, true, synced_ok);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_OK);
    assert_string_equal(ev.data.lead_synced.zoho_id, "Z");
}

static void test_decode_rejections(void **state)
{
    (void)state;
    uint8_t buf[1024];
    struct proto_event ev;
    size_t n;

    n = handmade(buf, "lead.synced", "lead.synced", 1, true, synced_wrong_type);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_ETYPE);
    n = handmade(buf, "lead.synced", "lead.synced", 1, true, synced_missing);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_EMISSING);
    n = handmade(buf, "lead.synced", "lead.synced", 1, true, synced_oversize);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_ESIZE);
    n = handmade(buf, "lead.synced", "lead.synced", 1, true, synced_embedded_nul);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_ETYPE);
    n = handmade(buf, "lead.synced", "lead.synced", 1, true, synced_duplicate);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_ETYPE);
    n = handmade(buf, "lead.synced", "lead.synced", 1, true, not_a_map);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_ETYPE);
    /* envelope without data */
    n = handmade(buf, "lead.synced", "lead.synced", 1, false, NULL);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_EMISSING);
    /* topic prefix and type disagree */
    n = handmade(buf, "lead.created", "lead.synced", 1, true, synced_ok);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_ETOPIC);
    /* unknown topic */
    n = handmade(buf, "lead.deleted", "lead.deleted", 1, true, synced_ok);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_ETOPIC);
    /* future version */
    n = handmade(buf, "lead.synced", "lead.synced", 2, true, synced_ok);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_EVERSION);
    /* every truncation of a good frame is rejected */
    n = handmade(buf, "lead.synced", "lead.synced", 1, true, synced_ok);
    for (size_t cut = 0; cut < n; cut++) {
        assert_int_not_equal(proto_frame_decode(buf, cut, &ev), PROTO_OK);
    }
    /* trailing bytes */
    buf[n] = 0xc0;
    assert_int_equal(proto_frame_decode(buf, n + 1, &ev), PROTO_ETRUNC);
    /* no NUL after the topic */
    assert_int_equal(proto_frame_decode((const uint8_t *)"lead.synced", 11, &ev), PROTO_ETRUNC);
}

static void test_encode_rejects_oversize_src(void **state)
{
    (void)state;
    struct proto_lead_synced s;
    memset(&s, 0, sizeof s);
    uint8_t *frame;
    size_t len;
    char src[PROTO_SRC_MAX + 5];
    memset(src, 'a', sizeof src - 1);
    src[sizeof src - 1] = '\0';
    assert_int_equal(proto_frame_encode(PROTO_LEAD_SYNCED, src, 0, 1, 1, &s, &frame, &len),
                     PROTO_ESIZE);
}

static int count_frame(const uint8_t *frame, size_t len, void *arg)
{
    struct proto_event ev;
    assert_int_equal(proto_frame_decode(frame, len, &ev), PROTO_OK);
    (*(int *)arg)++;
    return 0;
}

static void test_replay_messages(void **state)
{
    (void)state;
    struct proto_replay_req req = {.streams = false, .from = 7, .max = 100};
    strcpy(req.topic, "call.due");
    uint8_t *buf;
    size_t len;
    struct proto_replay_req back;
    assert_int_equal(proto_replay_req_encode(&req, &buf, &len), PROTO_OK);
    assert_int_equal(proto_replay_req_decode(buf, len, &back), PROTO_OK);
    assert_false(back.streams);
    assert_string_equal(back.topic, "call.due");
    assert_int_equal(back.from, 7);
    assert_int_equal(back.max, 100);
    free(buf);
    assert_int_not_equal(proto_replay_req_decode((const uint8_t *)"\x80", 1, &back), PROTO_OK);

    struct proto_heartbeat hb;
    memset(&hb, 0, sizeof hb);
    hb.count = 1;
    strcpy(hb.streams[0].topic, "lead.created");
    hb.streams[0].last_seq = 9;
    assert_int_equal(proto_replay_streams_encode("ingest", 77, &hb, &buf, &len), PROTO_OK);
    bool is_streams;
    char src[PROTO_SRC_MAX];
    uint64_t epoch = 0;
    struct proto_heartbeat got;
    assert_int_equal(proto_replay_rep_decode(buf, len, &is_streams, src, &epoch, &got, NULL, NULL),
                     PROTO_OK);
    assert_true(is_streams);
    assert_string_equal(src, "ingest");
    assert_int_equal(epoch, 77);
    assert_int_equal(got.count, 1);
    assert_int_equal(got.streams[0].last_seq, 9);
    free(buf);

    struct proto_lead_synced s;
    memset(&s, 0, sizeof s);
    strcpy(s.lead_id, "L");
    strcpy(s.zoho_id, "Z");
    strcpy(s.action, "updated");
    uint8_t *frames[3];
    size_t lens[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(proto_frame_encode(PROTO_LEAD_SYNCED, "zoho-sync", 77, (uint64_t)i + 1, 1,
                                            &s, &frames[i], &lens[i]),
                         PROTO_OK);
    }
    assert_int_equal(
        proto_replay_events_encode(77, (const uint8_t *const *)frames, lens, 3, &buf, &len),
        PROTO_OK);
    int n = 0;
    epoch = 0;
    assert_int_equal(
        proto_replay_rep_decode(buf, len, &is_streams, src, &epoch, &got, count_frame, &n),
        PROTO_OK);
    assert_false(is_streams);
    assert_int_equal(n, 3);
    assert_int_equal(epoch, 77);
    free(buf);
    /* An older publisher's reply has no epoch: 0, and still decodes. */
    assert_int_equal(
        proto_replay_events_encode(0, (const uint8_t *const *)frames, lens, 3, &buf, &len),
        PROTO_OK);
    n = 0;
    assert_int_equal(
        proto_replay_rep_decode(buf, len, &is_streams, src, &epoch, &got, count_frame, &n),
        PROTO_OK);
    assert_int_equal(n, 3);
    assert_int_equal(epoch, 0);
    free(buf);
    for (int i = 0; i < 3; i++) {
        free(frames[i]);
    }
}

/* An envelope with `nep` "epoch" keys, a uint 7 each (or a string, as_string). */
static size_t epoch_frame(uint8_t *out, int nep, bool as_string)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "lead.synced", 12);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7 + (size_t)nep);
#define S(x) msgpack_pack_str_with_body(&pk, x, strlen(x))
    S("v");
    msgpack_pack_int(&pk, 1);
    S("type");
    S("lead.synced");
    S("src");
    S("p");
    for (int i = 0; i < nep; i++) {
        S("epoch");
        if (as_string) {
            S("7");
        } else {
            msgpack_pack_uint64(&pk, 7);
        }
    }
    S("seq");
    msgpack_pack_uint64(&pk, 1);
    S("id");
    S("p:x:1");
    S("ts");
    msgpack_pack_int64(&pk, 5);
    S("data");
    synced_ok(&pk);
#undef S
    memcpy(out, sb.data, sb.size);
    size_t n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static void test_epoch(void **state)
{
    (void)state;
    struct proto_lead_synced s;
    memset(&s, 0, sizeof s);
    strcpy(s.lead_id, "L");
    strcpy(s.zoho_id, "Z");
    strcpy(s.action, "created");
    uint8_t *frame;
    size_t len;
    struct proto_event ev;
    /* Epoch 0 leaves the key out: the frame is what a publisher before epochs sent. */
    assert_int_equal(proto_frame_encode(PROTO_LEAD_SYNCED, "p", 0, 3, 1, &s, &frame, &len),
                     PROTO_OK);
    assert_null(memmem(frame, len, "epoch", 5));
    assert_int_equal(proto_frame_decode(frame, len, &ev), PROTO_OK);
    assert_int_equal(ev.epoch, 0);
    free(frame);
    /* The largest epoch survives (the decoder takes any uint64). */
    assert_int_equal(proto_frame_encode(PROTO_LEAD_SYNCED, "p", UINT64_MAX, 3, 1, &s, &frame, &len),
                     PROTO_OK);
    assert_int_equal(proto_frame_decode(frame, len, &ev), PROTO_OK);
    assert_true(ev.epoch == UINT64_MAX);
    free(frame);

    uint8_t buf[1024];
    size_t n = epoch_frame(buf, 1, false);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_OK);
    assert_int_equal(ev.epoch, 7);
    n = epoch_frame(buf, 0, false);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_OK);
    assert_int_equal(ev.epoch, 0);
    n = epoch_frame(buf, 1, true);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_ETYPE);
    n = epoch_frame(buf, 2, false);
    assert_int_equal(proto_frame_decode(buf, n, &ev), PROTO_ETYPE);

    /* A stream list without an epoch (an older publisher) decodes with epoch 0. */
    struct proto_heartbeat hb = {.count = 0};
    uint8_t *rep;
    assert_int_equal(proto_replay_streams_encode("p", 0, &hb, &rep, &len), PROTO_OK);
    bool is_streams;
    char src[PROTO_SRC_MAX];
    uint64_t epoch = 99;
    assert_int_equal(proto_replay_rep_decode(rep, len, &is_streams, src, &epoch, &hb, NULL, NULL),
                     PROTO_OK);
    assert_true(is_streams);
    assert_int_equal(epoch, 0);
    free(rep);
}

static void test_json_rendering(void **state)
{
    (void)state;
    struct proto_call_status st;
    memset(&st, 0, sizeof st);
    strcpy(st.call_id, "c\"1");
    strcpy(st.status, "busy");
    st.attempt = 2;
    char *j = proto_data_to_json(PROTO_CALL_STATUS, &st);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"call_id\":\"c\\\"1\""));
    assert_non_null(strstr(j, "\"attempt\":2"));
    assert_non_null(strstr(j, "\"final\":false"));
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_lead_created),
        cmocka_unit_test(test_lead_erased),
        cmocka_unit_test(test_call_closed),
        cmocka_unit_test(test_roundtrip_others),
        cmocka_unit_test(test_decode_accepts_unknown_keys),
        cmocka_unit_test(test_decode_rejections),
        cmocka_unit_test(test_encode_rejects_oversize_src),
        cmocka_unit_test(test_replay_messages),
        cmocka_unit_test(test_epoch),
        cmocka_unit_test(test_json_rendering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
