/*
 * sources: leads that come from somewhere other than POST /leads, each
 * turned into the same `lead.created` event (with `source`, `via` and the
 * source's own reference in `source_ref`), so every subscriber works
 * unchanged. Idempotent on (source, reference): a redelivery creates nothing
 * and answers with the first lead's id.
 *
 *   POST /sources/webhook/{name}  any tool that signs its webhooks
 *                                 (SOURCE_<NAME>_SECRET/_MAP/_ID/_HEADER; sources.c)
 *   GET  /sources/meta            Meta's verification handshake (sources_meta.c)
 *   POST /sources/meta            Meta Lead Ads deliveries: each leadgen_id is recorded
 *                                 (meta_leads), then fetched from the Graph API by a worker
 *   GET  /sources/meta/failed     the dead-letter list (operator key)
 *   POST /sources/zoho            leads created in Zoho CRM, from a workflow rule's webhook
 *                                 (ZOHO_WEBHOOK_SECRET; sources_zoho.c)
 *
 * Tables, in ingest's store (added after open: store_exec_schema):
 *   source_refs(source, ref) -> lead_id: written in the transaction that
 *     stores the lead and appends its event, so a lead exists once per reference.
 *   meta_leads: one row per leadgen_id, with its state machine in sources_meta.c.
 *
 * Threads: the routes run on HTTP threads; Meta's worker is one thread of
 * its own; every write goes through the store's writer.
 */
#ifndef LEADBUS_SOURCES_H
#define LEADBUS_SOURCES_H

#include "api_key.h"
#include "app.h"
#include "proto.h"

#include <sqlite3.h>

/* What ingest lends its sources. */
struct sources_ctx {
    struct app *app;
    struct store *store;
    const struct api_keys *keys; /* operator keys, for the dead-letter list */
    const char *region;          /* DEFAULT_COUNTRY */
    size_t max_body;
    /* Store a lead and append its lead.created, on the writer thread inside a transaction. */
    int (*commit_lead)(void *ing, sqlite3 *db, const struct proto_lead_created *lead);
    void *ing;
};

struct sources;

/* Reads the SOURCE_* and META_* settings (err names a bad one), adds the tables and routes. */
int sources_open(const struct sources_ctx *ctx, struct sources **out, char err[CONFIG_ERR_MAX]);
/* Stops Meta's worker. NULL is fine. Call before the store closes. */
void sources_close(struct sources *s);

/* ---- shared between sources.c and sources_meta.c ---- */

enum source_commit {
    SOURCE_CREATED = 0,  /* the lead and its event are durable */
    SOURCE_DUPLICATE = 1 /* (source, ref) has a lead already: lead_id says which */
};

/*
 * Inside a store job: the lead for (source, ref) if there is one
 * (SOURCE_DUPLICATE, its id copied into lead->lead_id), else store `lead`,
 * its event and the reference (SOURCE_CREATED); < 0 on a database error.
 */
int sources_commit(const struct sources_ctx *ctx, sqlite3 *db, struct proto_lead_created *lead);

/* leadbus_source_requests_total{source,result}. */
void sources_count(const char *source, const char *result);

struct sources_meta;
int sources_meta_open(const struct sources_ctx *ctx, struct sources_meta **out,
                      char err[CONFIG_ERR_MAX]);
void sources_meta_close(struct sources_meta *m);

/* Zoho CRM's workflow-rule webhook, POST /sources/zoho (sources_zoho.c). */
struct sources_zoho;
int sources_zoho_open(const struct sources_ctx *ctx, struct sources_zoho **out,
                      char err[CONFIG_ERR_MAX]);
void sources_zoho_close(struct sources_zoho *z);

#endif
