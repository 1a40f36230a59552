/*
 * ingest_int.h: what the files of ingest share. Not for use outside
 * services/ingest (the module's contract is ingest.h; the sources' is sources.h).
 *
 * ingest.c owns the module and POST /leads; erasure.c answers the erasure
 * requests (DELETE /leads/{leadId}, DELETE /leads?phone=…|email=…).
 *
 * Threads: `struct ingest` is set before the routes are added and read by
 * civetweb's threads; its writer-thread statements are used by store jobs only.
 */
#ifndef LEADBUS_INGEST_INT_H
#define LEADBUS_INGEST_INT_H

#include "api_key.h"
#include "bus_pub.h"
#include "http.h"
#include "retention.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

struct form_guard;
struct sources;

struct ingest {
    struct store *store;
    struct bus_pub *pub;
    struct api_keys *keys;
    struct form_guard *guard;      /* limits for form keys (FORM_KEYS) */
    struct sources *sources;       /* webhooks and Meta Lead Ads (sources.h) */
    struct retention *retention;   /* LEAD_RETENTION_DAYS */
    struct retention_rule keep[1]; /* its rules */
    size_t max_body;
    char region[8];
    /* Writer-thread state: statements on the store's connection. */
    sqlite3 *db;
    sqlite3_stmt *insert_lead, *find_idem, *insert_idem, *prune_idem;
    int64_t next_prune_ms;
};

/* ---- erasure.c (operator key) ---- */

/* DELETE /leads/{leadId}: the lead's personal fields blanked, its kept events rewritten. */
void erasure_delete_lead(struct http_req *req, void *arg);
/* DELETE /leads?phone=…|email=…: every lead of one person, at most 100 per request. */
void erasure_delete_person(struct http_req *req, void *arg);

#endif
