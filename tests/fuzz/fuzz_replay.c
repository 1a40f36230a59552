/* libFuzzer target: replay requests and replies as a publisher/subscriber receives them. */
#include "proto.h"

static int on_frame(const uint8_t *frame, size_t len, void *arg)
{
    static struct proto_event ev;
    (void)arg;
    proto_frame_decode(frame, len, &ev);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_replay_req req;
    proto_replay_req_decode(data, size, &req);
    bool is_streams;
    char src[PROTO_SRC_MAX];
    uint64_t epoch;
    static struct proto_heartbeat hb;
    proto_replay_rep_decode(data, size, &is_streams, src, &epoch, &hb, on_frame, NULL);
    return 0;
}
