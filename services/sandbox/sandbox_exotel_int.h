/*
 * sandbox_exotel's insides, shared by its files (each one concern):
 *   sandbox_exotel.c          connect (the request as Exotel reads it), number metadata,
 *                             settings, start and stop
 *   sandbox_exotel_details.c  call details: one call, bulk pages, the placed-calls list
 *   sandbox_exotel_ring.c     the ringer: ends calls (both legs) and sends StatusCallbacks
 * Every struct here is guarded by sb->lock.
 */
#ifndef LEADBUS_SANDBOX_EXOTEL_INT_H
#define LEADBUS_SANDBOX_EXOTEL_INT_H

#include "http.h"
#include "sandbox.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define MAX_OUTCOMES 8

struct call {
    char sid[33];
    char from[32], to[32], caller_id[32], status[16];
    char custom[129];
    char callback[512];
    bool cb_json;
    char outcome[16]; /* what the ring will end in */
    char leg1[16];    /* how the first leg (From: the agent) ends; the second is `outcome` */
    int64_t created, updated, start, end;
    int64_t end_due; /* when the call ends, whatever happens to its callback */
    bool notified;   /* its first callback was taken by the ringer */
    int duration;
    char recording[96];
};

struct pending_cb {
    int64_t due;
    int call; /* index into calls */
    struct pending_cb *next;
};

struct sandbox_exotel {
    char sid[64];
    char auth_b64[400]; /* base64("key:token"), compared with the Authorization header */
    int ring_ms;
    int rate_limit;
    int64_t rate_window_ms;
    struct {
        char name[16];
        int weight;
    } mix[MAX_OUTCOMES];
    int nmix, mix_total;
    bool by_last_digit;
    char dnd[512];             /* SANDBOX_DND_NUMBERS: on the Do-Not-Disturb register */
    char invalid[512];         /* SANDBOX_INVALID_NUMBERS: numbers Exotel refuses to dial */
    char agent_no_answer[512]; /* SANDBOX_AGENT_NO_ANSWER: agents (From) who never pick up */
    struct call *calls;
    int ncalls, cap;
    int settled;     /* calls[0..settled) have ended */
    int64_t *placed; /* ring of the last rate_limit placement times */
    int nplaced, placed_head;
    struct pending_cb *pending; /* sorted by due */
    uint64_t cursor_key;        /* masks the call index in bulk page cursors */
    pthread_t ringer;
    pthread_cond_t cond;
    bool stopping;
};

/* Answers in Exotel's shapes, and the checks (sandbox_exotel.c). */
void sbx_add_legs(cJSON *o, const struct call *c, bool details);
bool sbx_wants_json(struct http_req *req);
void sbx_rest_exception(struct http_req *req, int status, const char *message);
cJSON *sbx_call_json(const struct sandbox_exotel *ex, const struct call *c);
void sbx_reply_call(struct http_req *req, const struct sandbox_exotel *ex, const struct call *c);
bool sbx_authorized(struct http_req *req, const struct sandbox_exotel *ex);
const char *sbx_last10(const char *s);
bool sbx_in_list(const char *list, const char *number);
bool sbx_int_in(const char *s, long lo, long hi);
void sbx_pick_outcome(struct sandbox *sb, struct sandbox_exotel *ex, const char *from,
                      const char *to, struct call *c);
/* sandbox_exotel_ring.c: how calls end */
void sbx_settle_calls(struct sandbox *sb, struct sandbox_exotel *ex, int64_t now);
void sbx_schedule_cb(struct sandbox_exotel *ex, int call, int64_t due);

/* sandbox_exotel_details.c: routes (arg: the sandbox) */
struct call *sbx_find_call(struct sandbox_exotel *ex, const char *sid);
void sbx_get_call(struct http_req *req, void *sandbox);
void sbx_get_calls(struct http_req *req, void *sandbox);
void sbx_get_placed(struct http_req *req, void *sandbox);

/* sandbox_exotel_ring.c: the ringer thread (arg: the sandbox) */
void *sbx_ringer_main(void *sandbox);

#endif
