/*
 * zoho_sync_int.h: what the files of zoho-sync share. Not for use outside
 * services/zoho-sync (the module's contract is zoho_sync.h).
 *
 * zoho_sync.c owns the module: settings, start/stop, the bus handler's
 * dispatch, the dead-letter routes and the readiness checks. zoho_leads.c
 * moves leads into Zoho (their state machine, the workers' upsert batches).
 * zoho_crm.c keeps the OAuth token and sends every CRM request.
 * zoho_outcomes.c writes call outcomes back to the lead (a Note per attempt,
 * a Calls record per connected call) with its own state machine.
 *
 * Threads: `struct zsync` is shared by the bus handler (store writer thread),
 * the workers and civetweb's threads; the fields under `lock` and
 * `token_lock` say so, the rest is set before the workers start.
 */
#ifndef LEADBUS_ZOHO_SYNC_INT_H
#define LEADBUS_ZOHO_SYNC_INT_H

#include "api_key.h"
#include "bus_pub.h"
#include "retention.h"
#include "bus_sub.h"
#include "http_client.h"
#include "proto.h"
#include "store.h"
#include "upstream.h"
#include "wake.h"
#include "zoho_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct worker;

struct zsync {
    struct retention *retention;   /* LEAD_RETENTION_DAYS */
    struct retention_rule keep[1]; /* its rules */
    struct store *store;
    struct bus_pub *pub;
    struct bus_sub *sub;
    struct api_keys *keys;
    struct upstream up;
    char client_id[160], client_secret[160], refresh_token[256];
    char ext_field[64], dup_fields[128], default_company[256], call_result[64], status_field[64];
    int64_t max_attempts;
    int64_t max_retry_ms, timeout_ms, backoff_max_ms;
    int64_t outcome_max_tries; /* ZOHO_OUTCOME_MAX_TRIES: a refused outcome dies on this try */
    struct worker *workers;
    int nworkers;
    int ningest;      /* the first sources are ingest's replicas */
    struct wake wake; /* the workers': new leads and outcomes (at their commit), retries, stop */
    atomic_bool fatal;
    /* Outcome writes Zoho refused in a row: a systemic refusal (every write wrong) is not ready. */
    atomic_int outcome_refusals_in_row;
    /* One token for all workers, refreshed by one of them at a time. */
    pthread_mutex_t token_lock;
    struct zoho_token token;
    int64_t token_obtained_ms;
    atomic_uint_fast64_t rng;
    struct zoho_notify *notify; /* Zoho's Notifications API channel (zoho_notify.c) */
};

/* A worker sends its own batches (ZOHO_CONCURRENCY of them at once); worker 0 also writes call
 * outcomes. */
struct worker {
    struct zsync *z;
    int index;
    CURL *curl;
    struct zoho_token tok; /* this worker's copy of the shared token */
    pthread_t thread;
    bool started;
};

/* ---- zoho_leads.c ---- */

/* A lead's states (zoho_leads.state, CHECKed in the schema; the machine is drawn in zoho_leads.c).
 */
enum zoho_lead_state { ZOHO_LEAD_PENDING, ZOHO_LEAD_SENDING, ZOHO_LEAD_SYNCED, ZOHO_LEAD_DEAD };
extern const char *const zoho_lead_state_name[];

/* What one upsert did to a lead. */
enum zoho_sent {
    ZOHO_SENT_RETRY,   /* network, 429, 5xx, no token, a transient record error */
    ZOHO_SENT_SYNCED,  /* the record is in Zoho */
    ZOHO_SENT_REFUSED, /* a data error: sending it again cannot help */
};

/*
 * Where a sent lead goes (pure): synced, dead when refused or when its first
 * try (0: this one) is ZOHO_MAX_RETRY_MS ago, else pending again.
 */
enum zoho_lead_state zoho_lead_after(enum zoho_sent sent, int64_t now_ms, int64_t first_try_ms,
                                     int64_t max_retry_ms);

/* The store's version-1 schema (never changed: a change is a migration step): the kept token
 * and the leads. */
extern const char zoho_leads_schema[];
/* LEAD_RETENTION_DAYS' rule: the kept copy of a lead in Zoho or given up. */
extern const char zoho_leads_retention_sql[];

/* The bus handler's parts (store writer thread). */
int zoho_leads_on_created(sqlite3 *db, const struct proto_event *ev);
int zoho_leads_on_erased(sqlite3 *db, struct zsync *z, const char *lead_id, uint64_t seq);

/* A worker's thread (arg: struct worker): send due leads until the wake stops. */
void *zoho_leads_worker(void *arg);

/* For the dead-letter routes: a store job listing dead leads (arg: cJSON array), and the
 * statement that makes a lead (?1) pending again if it is dead. */
int zoho_leads_list_dead(sqlite3 *db, void *arg);
extern const char zoho_leads_revive_sql[];

/* Exponential backoff with jitter, at least retry_after_ms (-1: none). */
int64_t zsync_backoff(struct zsync *z, int attempts, int64_t retry_after_ms);

/* ---- zoho_crm.c ---- */

/* A store job: the token kept by the last run into z->token (at start). */
int zsync_load_token_job(sqlite3 *db, void *arg);

/*
 * One CRM request: `path` below {api_domain}/crm/v8/ (with its query string),
 * `json` the body or NULL. An INVALID_TOKEN answer refreshes the shared token
 * once and sends again. The caller frees r->body.
 */
void zsync_crm(struct worker *w, const char *method, const char *path, const char *json,
               struct httpc_response *r);

/*
 * Give w a usable token: the shared one while it is fresh, else one refresh
 * for everyone. `refused` is a token Zoho just answered INVALID_TOKEN to (or
 * NULL). Returns -1 with *wait_ms when there is none to be had now.
 */
int zsync_token(struct worker *w, const char *refused, int64_t *wait_ms);

/* ---- zoho_link.c ---- */

/* The bus handler's part for a lead.created that came from Zoho (via "zoho"): its row written
 * as synced with the record id, lead.synced (linked) appended. 1 when it was such a lead (linked
 * now or before), 0 when it is to be upserted as usual, -1 on a database error. */
int zoho_link_on_created(sqlite3 *db, struct zsync *z, const struct proto_event *ev,
                         int64_t now_ms);

/* ---- zoho_notify.c ---- */

/* The Notifications API channel and POST /sources/zoho/notify (ZOHO_NOTIFY_URL; off without
 * it, the route then refuses every notification's token). After the store opened. */
struct zoho_notify;
int zoho_notify_open(struct zsync *z, struct app *app, struct zoho_notify **out,
                     char err[CONFIG_ERR_MAX]);
/* Stops its thread. NULL is fine. Before the store closes. */
void zoho_notify_close(struct zoho_notify *n);

/* ---- zoho_outcomes.c ---- */

extern const char zoho_outcomes_schema[];

/* Bring an older store's outcome table up to date (store writer thread). */
int zoho_outcomes_migrate(sqlite3 *db, void *arg);

/* The bus handler's part for call.status: remember a final attempt's outcome. */
int zoho_outcomes_on_status(sqlite3 *db, const struct proto_event *ev);

/* Write the due outcomes of leads already in Zoho (worker 0). */
void zoho_outcomes_sync(struct worker *w);

/* For the dead-letter routes: a store job listing dead outcomes (arg: cJSON array), and the
 * statement that makes a lead's (?1) dead outcomes pending again. */
int zoho_outcomes_list_dead(sqlite3 *db, void *arg);
extern const char zoho_outcomes_revive_sql[];

/* /metrics: outcomes by state. */
void zoho_outcomes_collect(void *arg);

#endif
