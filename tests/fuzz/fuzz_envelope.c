/* libFuzzer target: the frame/envelope decoder, and re-encoding what it accepts. */
#include "proto.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct proto_event ev;
    if (proto_frame_decode(data, size, &ev) != PROTO_OK) {
        return 0;
    }
    /* Anything accepted must encode again and decode to the same data. */
    uint8_t *frame;
    size_t len;
    if (proto_frame_encode(ev.topic, ev.src, ev.epoch, ev.seq, ev.ts, &ev.data, &frame, &len) !=
        PROTO_OK) {
        return 0; /* e.g. a heartbeat src at the size limit */
    }
    static struct proto_event again;
    if (proto_frame_decode(frame, len, &again) != PROTO_OK || again.epoch != ev.epoch ||
        again.seq != ev.seq || memcmp(&again.data, &ev.data, sizeof ev.data) != 0) {
        abort();
    }
    free(frame);
    char *json = proto_data_to_json(ev.topic, &ev.data);
    free(json);
    return 0;
}
