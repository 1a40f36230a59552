/*
 * stats' insides, shared by its files (each has one reason to change):
 *   stats.c        the schema, folding events into counts and timelines, start and stop
 *   stats_speed.c  speed to lead, call outcomes and agents: folded per lead and per attempt,
 *                  read as /metrics histograms and counters and /exotel/stats quantiles
 *   stats_read.c   the read routes: /exotel/stats/series, /leads, /leads/{id}, the dashboard
 * Fold functions run on the store's writer thread inside the subscriber's transaction; read
 * functions on reader connections.
 */
#ifndef LEADBUS_STATS_INTERNAL_H
#define LEADBUS_STATS_INTERNAL_H

#include "api_key.h"
#include "bus_sub.h"
#include "call_window.h"
#include "http.h"
#include "proto.h"
#include "retention.h"
#include "store.h"
#include "tz.h"

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

struct stats {
    struct retention *retention;   /* LEAD_RETENTION_DAYS, STATS_RETENTION_DAYS */
    struct retention_rule keep[4]; /* its rules */
    struct store *store;
    struct bus_sub *sub;
    struct api_keys *keys;
    bool require_key;
    int ningest;               /* the first sources are ingest's replicas */
    struct call_window window; /* CALL_HOURS in CALL_TIMEZONE: "calling now" or "paused until" */
    char tz_name[64];          /* CALL_TIMEZONE: the one zone of the dashboard and of "today" */
};

/* Whether the request may read (an operator key when required); otherwise 401 was answered. */
bool stats_allowed(struct stats *s, struct http_req *req, bool always_key);
/* A reader connection, or NULL with 503 answered. */
sqlite3 *stats_reader(struct stats *s, struct http_req *req);
void stats_iso_time(int64_t ms, char out[32]);
int64_t stats_count_of(sqlite3 *db, const char *name);

/* stats_speed.c: folding (writer thread) */
int stats_speed_on_lead(sqlite3 *db, const struct proto_lead_created *l);
int stats_speed_on_status(sqlite3 *db, const struct proto_event *ev);
/* stats_speed.c: reading */
void stats_speed_collect(void *arg); /* a metrics collector; arg: struct stats */
/* speedToLead (median and p90 over the last window_ms, per stage and per source), connectRate,
 * agents (state, today's calls in CALL_TIMEZONE) into `st`. */
void stats_speed_json(struct stats *s, sqlite3 *db, cJSON *st, int64_t window_ms);

/* stats_read.c: the read routes */
int stats_read_routes(struct stats *s, struct http_server *http);
/* callingHours: "calling", or "paused" with when calling resumes (local HH:MM and unix ms). */
void stats_calling_json(struct stats *s, cJSON *st);

#endif
