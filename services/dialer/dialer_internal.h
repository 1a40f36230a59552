/*
 * The dialer's insides, shared by its files (each has one reason to change):
 *   attempts.c        the attempts table and its state machine (drawn there): every
 *                     transaction that moves an attempt
 *   work.c            the workers: dial a batch, reconcile an unknown attempt, look up a
 *                     placed call whose callback is late
 *   callback_route.c  POST /exotel/callback
 *   agents.c          the agent pool in the store (its state machine is drawn there) and
 *                     GET /agents, POST /agents/{name}/pause|resume
 *   agent_pool.c      AGENTS parsing and the choice of an agent (pure)
 *   dialer.c          settings, secrets, start and stop
 * Store jobs (attempts_*) run on the store's writer thread inside a transaction.
 */
#ifndef LEADBUS_DIALER_INTERNAL_H
#define LEADBUS_DIALER_INTERNAL_H

#include "agent_pool.h"
#include "app.h"
#include "bus_pub.h"
#include "bus_sub.h"
#include "attempt_state.h"
#include "callback_guard.h"
#include "connect_verdict.h"
#include "exotel_client.h"
#include "http.h"
#include "proto.h"
#include "rate_limit.h"
#include "store.h"
#include "tz.h"
#include "wake.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define MAX_SLEEP_MS 60000

struct dialer {
    struct store *store;
    struct bus_pub *pub;
    struct bus_sub *sub;
    struct exotel_account acct;
    bool sandbox;
    char exophone[32], agent[32], flow_url[256], call_type[16], public_base[APP_URL_MAX];
    struct agent_def *agents; /* AGENTS / AGENTS_FILE; NULL: the flow, or the one agent line */
    int nagents;
    enum agent_strategy strategy;
    int64_t agent_wait_ms; /* AGENT_WAIT_MAX_MS: a due call waits this long for a free agent */
    struct tz *call_tz;    /* CALL_TIMEZONE: what "today" means in GET /agents */
    struct api_keys *keys; /* operator keys for /agents */
    unsigned char cb_key[CALLBACK_KEY_BYTES]; /* per-attempt callback tokens (HMAC key) */
    int64_t cb_key_created_ms;
    char legacy_token[65]; /* the static token of before; only for attempts dialed before the key */
    int ring_timeout_s, time_limit_s;
    bool record, dnd_precheck;
    int64_t grace_ms, reconcile_delay_ms, reconcile_window_ms;
    struct tz *exotel_tz;
    struct rate_limit rl;    /* connect requests sent, at the moment of sending */
    pthread_mutex_t rl_lock; /* rl is shared by the claims (admission) and the workers (sends) */
    struct worker *workers;
    int nworkers;
    struct wake wake; /* the workers': due calls (at their commit), callbacks, the stop */
    atomic_uint_fast64_t rng;
};

struct worker {
    struct dialer *d;
    CURL *curl;
    pthread_t thread;
    bool started;
};

/* One attempt as a worker handles it. */
struct attempt {
    char call_id[64], lead_id[40], e164[24], dial[24], sid[64];
    char agent[AGENT_NAME_MAX], agent_number[AGENT_NUMBER_MAX]; /* "": the flow or the line */
    int attempt, tries;
    int64_t dialed_ms, due_ms, queued_ms;
};

/* The states of an agent (agents.state; the machine is drawn in agents.c). */
enum agent_state { AGENT_FREE, AGENT_BUSY };
extern const char *const agent_state_name[];

enum job_kind { JOB_NONE, JOB_DIAL, JOB_RECONCILE, JOB_CHECK };

struct outcome {
    struct dialer *d;
    const char *call_id;
    int attempt;
    const char *status; /* call.status status */
    const char *sid;    /* adopted when the attempt has none yet; may be "" */
    int64_t duration_s;
    const char *recording, *detail;
    const char *leg1; /* Exotel's status of the first leg (the agent's), or NULL/"" unknown */
    bool final;
    bool found;   /* out: the attempt exists */
    bool changed; /* out: the attempt moved (false: it was already there) */
};

/* Exotel took the call: it is ringing; the callback (or a lookup after the grace) finishes it. */
struct placed {
    struct outcome o;
    int64_t check_at;
};

/* Put an attempt back in `state` to be looked at again at `next_ms`. */
struct requeue {
    const char *call_id;
    int attempt;
    enum attempt_state from, to;
    const char *detail;
    int64_t next_ms;
    struct dialer *d; /* needed when `to` is queued: the attempt's agent is freed */
};

/*
 * A worker claims up to CLAIM_MAX due attempts in one transaction and records
 * their results in one more: two commits per batch instead of two per call,
 * which is what keeps a burst of due calls punctual. A crash can leave at
 * most CLAIM_MAX unsent attempts `dialing`; they are reconciled, never redialed.
 */
#define CLAIM_MAX 4

struct claim {
    struct dialer *d;
    enum job_kind kind;
    struct attempt a[CLAIM_MAX];
    int n;
    int64_t wake;
    int64_t agent_wait_until; /* the first attempt waiting for a free agent gives up then; 0 */
};

/* Which call of a page a reconciliation may adopt: finished, the attempt's number, not yet any
 * attempt's (a Sid already adopted stays with its attempt; an attempt that claimed one before a
 * crash takes that one only). One transaction per page, which also
 * claims the Sid for the attempt: two workers reconciling two attempts of one number could
 * otherwise both pick the same free call (found in one transaction, recorded in another). */
struct adopt {
    const struct exotel_call *calls;
    int n;
    const struct attempt *a;
    int found; /* out: index into calls, or -1 */
};

/* attempts.c: store jobs (arg as named) */
int attempts_on_event(sqlite3 *db, const struct proto_event *ev, void *dialer);
int attempts_finalize(sqlite3 *db, void *outcome);
int attempts_placed(sqlite3 *db, void *placed);
int attempts_requeue(sqlite3 *db, void *requeue);
int attempts_claim(sqlite3 *db, void *claim);
int attempts_unsent(sqlite3 *db, const struct attempt *a);
int attempts_adopt(sqlite3 *db, void *adopt);
int attempts_recover(sqlite3 *db, void *dialer);
int attempts_load_dialed(sqlite3 *db, void *dialer);

/* agents.c: store jobs and helpers (writer thread) */
int agents_sync(sqlite3 *db, void *dialer);
int agents_view(sqlite3 *db, const struct dialer *d, struct agent_view *v, int *cursor);
int agents_take(sqlite3 *db, const struct dialer *d, int i, int cursor, struct attempt *a,
                int64_t now);
int agents_release(sqlite3 *db, struct dialer *d, const char *call_id, int attempt);
/* HTTP (arg: the dialer) */
void agents_get(struct http_req *req, void *dialer);
void agents_post_pause(struct http_req *req, void *dialer);
void agents_post_resume(struct http_req *req, void *dialer);

/* work.c */
void *dialer_worker_main(void *worker);
/* A recording link kept only as https on a host Exotel documents; otherwise "" and a WARN. */
const char *dialer_checked_recording(const char *call_id, int attempt, const char *url);

/* callback_route.c: POST /exotel/callback (arg: the dialer) */
void dialer_post_callback(struct http_req *req, void *dialer);

#endif
