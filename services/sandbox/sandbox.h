/*
 * sandbox: simulated Exotel, Zoho and Meta APIs, faithful to shared/reference, so
 * the whole flow runs on one machine with no account. Served under
 * /sandbox/exotel/..., /sandbox/zoho/... and /sandbox/meta/... on the process's HTTP port.
 *
 * This header is the sandbox's internal contract between its three files:
 * sandbox.c (module, settings, fault injection, request log), sandbox_exotel.c,
 * sandbox_zoho.c and sandbox_meta.c. State lives in memory behind one mutex: the sandbox is
 * a test double, not a service with records to keep.
 */
#ifndef LEADBUS_SANDBOX_H
#define LEADBUS_SANDBOX_H

#include "app.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

extern const struct module sandbox_module;

enum sandbox_api { SANDBOX_EXOTEL, SANDBOX_ZOHO, SANDBOX_META, SANDBOX_APIS };

/* Percentages of requests answered with a fault, per API, plus outages. */
struct sandbox_faults {
    int p429, p500, ptimeout;
    int p504_after_place;         /* Exotel: place the call, then answer 504 */
    int p500_after_write;         /* Zoho: keep the records, then answer 500 */
    int cb_dup, cb_late, cb_drop; /* Exotel callbacks: duplicated, late, never sent */
    int64_t down_until_ms;        /* answer 503 until then */
};

enum sandbox_fault { FAULT_NONE, FAULT_429, FAULT_500, FAULT_TIMEOUT, FAULT_DOWN };

struct sandbox_exotel;
struct sandbox_zoho;
struct sandbox_meta;
struct sandbox_sms;
struct sandbox_zoho_notify;
struct api_keys;
struct cJSON;
struct http_req;

struct sandbox {
    pthread_mutex_t lock;
    uint64_t rng;
    struct sandbox_faults faults[SANDBOX_APIS];
    int hang_ms;
    /* the request log: a ring of the last entries */
    struct sandbox_logged *log;
    int log_cap, log_len, log_head;
    struct sandbox_exotel *exotel;
    struct sandbox_zoho *zoho;
    struct sandbox_meta *meta; /* Meta Lead Ads: the Graph lead endpoint, signed deliveries */
    struct sandbox_sms *sms;   /* Exotel Sms/send with DLT checks and delivery callbacks */
    struct sandbox_zoho_notify *zoho_notify; /* leads made in Zoho itself, and their webhooks */
    int records_max;       /* SANDBOX_RECORDS_MAX: Zoho records and Exotel calls kept, each */
    struct api_keys *keys; /* the operator keys, for the inspection routes off loopback */
    bool key_required;     /* HTTP_BIND is not a loopback address */
};

/*
 * The inspection and control routes (/sandbox/requests, /sandbox/faults,
 * /sandbox/exotel/placed, /sandbox/zoho/records): true when the request may
 * go on; otherwise 401 has been answered. Off loopback they need X-API-Key.
 */
bool sandbox_admit(struct sandbox *sb, struct http_req *req);

/* Something dropped to keep memory bounded: leadbus_sandbox_dropped_total{what}. */
void sandbox_dropped(const char *what);

/* Whether the sandbox may send a StatusCallback to `url`: http(s), no userinfo, a loopback host
 * (127.0.0.0/8, ::1, localhost), parsed with libcurl's URL API. Pure. */
bool sandbox_callback_url_ok(const char *url);

/* Whether HTTP_BIND names a loopback address (127.x, ::1, localhost). Pure. */
bool sandbox_bind_loopback(const char *bind);

/* A random number in [0, n), from the sandbox's seeded generator. Lock held. */
uint64_t sandbox_rand(struct sandbox *sb, uint64_t n);

/*
 * Decide whether this request gets a fault (lock not held). FAULT_TIMEOUT has
 * already slept past the client's timeout when it returns; the caller then
 * answers 500 to a client that is normally gone.
 */
enum sandbox_fault sandbox_fault_roll(struct sandbox *sb, enum sandbox_api api);
/* True with probability pct/100 (lock not held). */
bool sandbox_chance(struct sandbox *sb, int pct);

/* Record a request for GET /sandbox/requests. `summary` must already be masked. */
void sandbox_log_request(struct sandbox *sb, enum sandbox_api api, const char *method,
                         const char *path, const char *summary);

/* Parse "exotel.429=5,zoho.500=10,exotel.down_ms=3000,..." into sb->faults. Lock held. */
int sandbox_faults_parse(struct sandbox *sb, const char *spec, char *err, size_t err_size);

/* Local time strings as each API writes them. */
void sandbox_exotel_time(int64_t ms, char out[20]); /* "2026-11-24 15:30:00" (IST) */
void sandbox_zoho_time(int64_t ms, char out[26]);   /* "2026-11-24T15:30:00+05:30" */

int sandbox_exotel_start(struct sandbox *sb, struct app *app, char err[CONFIG_ERR_MAX]);
void sandbox_exotel_stop(struct sandbox *sb);
int sandbox_zoho_start(struct sandbox *sb, struct app *app, char err[CONFIG_ERR_MAX]);
void sandbox_zoho_stop(struct sandbox *sb);
/* sandbox_zoho.c, for sandbox_zoho_notify.c (lock held): a Leads record made in Zoho itself
 * (takes `fields`; its id into id[24]; -1 without memory), and a record as GET answers it. */
int sandbox_zoho_insert_lead(struct sandbox *sb, struct cJSON *fields, char id[24]);
struct cJSON *sandbox_zoho_lead_json(struct sandbox *sb, const char *id);
/* The CRM's checks of sandbox_zoho.c for another file's CRM route (lock not held): logged,
 * faults, the version, the token; false when it has answered. */
bool sandbox_zoho_crm_prelude(struct sandbox *sb, struct http_req *req);
int sandbox_zoho_notify_start(struct sandbox *sb, struct app *app, char err[CONFIG_ERR_MAX]);
void sandbox_zoho_notify_stop(struct sandbox *sb);
int sandbox_meta_start(struct sandbox *sb, struct app *app, char err[CONFIG_ERR_MAX]);
void sandbox_meta_stop(struct sandbox *sb);
int sandbox_sms_start(struct sandbox *sb, struct app *app, char err[CONFIG_ERR_MAX]);
void sandbox_sms_stop(struct sandbox *sb);

#endif
