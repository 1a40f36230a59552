/*
 * sources_meta_int.h: what the two files of Meta Lead Ads share. Not for use
 * outside services/ingest. sources_meta.c: the routes, settings, open and
 * close (and the state machine of meta_leads, drawn at its top);
 * meta_worker.c: the worker that fetches recorded leads from the Graph API.
 *
 * Threads: `struct sources_meta` is set before the worker and the routes
 * start; the worker thread, civetweb's threads and the store's writer share
 * it through the atomics and the wake below.
 */
#ifndef LEADBUS_SOURCES_META_INT_H
#define LEADBUS_SOURCES_META_INT_H

#include "sources.h"
#include "sources_parse.h"
#include "wake.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define META_FORMS_MAX 32

/* A leadgen id's states (meta_leads.state, CHECKed in the schema; drawn in sources_meta.c). */
enum meta_row_state { META_ROW_PENDING, META_ROW_DONE, META_ROW_DEAD, META_ROW_STATES };
extern const char *const meta_row_state_name[META_ROW_STATES];

struct sources_meta {
    struct sources_ctx ctx;
    bool enabled;
    bool sandbox;
    char verify_token[256];
    unsigned char app_secret[256];
    size_t app_secret_len;
    char auth_header[600]; /* "Authorization: Bearer <page token>" */
    char graph[APP_URL_MAX];
    char version[16];
    int64_t max_tries, base_ms, max_ms, timeout_ms;
    bool has_all_map;
    struct meta_field_map all_map; /* META_FIELD_MAP: every form */
    struct {
        char form_id[META_ID_MAX];
        struct meta_field_map map; /* META_FORM_<FORM_ID>_MAP */
    } forms[META_FORMS_MAX];
    int nforms;
    struct wake wake;
    pthread_t thread;
    bool thread_started;
    atomic_bool worker_ok;     /* false: the worker could not start (degraded check) */
    atomic_bool token_refused; /* Graph's last answer was code 190 (degraded check) */
};

/* ---- meta_worker.c ---- */

/* The worker's thread (arg: struct sources_meta): fetch due leads until the wake stops. */
void *meta_worker(void *arg);
/* Degraded checks: the worker started; Graph accepts the page token. */
bool meta_worker_ok(void *arg);
bool meta_token_ok(void *arg);
/* Run sql with ?1 = a, ?2 = b, ?3 = i3, ?4 = i4 (those it uses); the rows changed, or -1. */
int meta_exec_bound(sqlite3 *db, const char *sql, const char *a, const char *b, int64_t i3,
                    int64_t i4);

#endif
