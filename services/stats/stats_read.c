/* stats_read: the read routes (series, leads, a lead's timeline, the dashboard, calling hours). */
#include "stats.h"
#include "stats_internal.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERIES_MAX_MINUTES (24 * 60)

/* Final outcomes per minute over the last `minutes` (aggregates only: as open as /exotel/stats). */
static void get_series(struct http_req *req, void *arg)
{
    struct stats *s = arg;
    if (!stats_allowed(s, req, false)) {
        return;
    }
    char buf[16];
    long minutes = 180;
    if (http_query(req, "minutes", buf, sizeof buf) >= 0) {
        char *end;
        minutes = strtol(buf, &end, 10);
        if (*end != '\0' || minutes < 1 || minutes > SERIES_MAX_MINUTES) {
            http_reply_error(req, 400, "bad_request", "minutes: expected 1 to 1440", NULL);
            return;
        }
    }
    sqlite3 *db = stats_reader(s, req);
    sqlite3_stmt *st;
    if (db == NULL) {
        return;
    }
    int64_t now_min = clock_now_ms() / 60000 * 60000, from = now_min - (minutes - 1) * 60000;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddNumberToObject(o, "from", (double)from);
    cJSON_AddNumberToObject(o, "stepMs", 60000);
    cJSON *points = cJSON_AddArrayToObject(o, "points");
    if (sqlite3_prepare_v2(db,
                           "SELECT minute, status, n FROM st_minutes WHERE minute >= ?1"
                           " ORDER BY minute",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, from);
        cJSON *point = NULL;
        int64_t at = -1;
        while (sqlite3_step(st) == SQLITE_ROW) {
            int64_t minute = sqlite3_column_int64(st, 0);
            if (minute != at) {
                point = cJSON_CreateObject();
                cJSON_AddNumberToObject(point, "t", (double)minute);
                cJSON_AddItemToArray(points, point);
                at = minute;
            }
            cJSON_AddNumberToObject(point, (const char *)sqlite3_column_text(st, 1),
                                    (double)sqlite3_column_int64(st, 2));
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    http_reply_json(req, 200, o);
}

static cJSON *lead_json(sqlite3_stmt *st)
{
    char buf[300];
    cJSON *l = cJSON_CreateObject();
    store_text(st, 0, buf, sizeof buf);
    cJSON_AddStringToObject(l, "leadId", buf);
    cJSON_AddNumberToObject(l, "receivedAt", (double)sqlite3_column_int64(st, 1));
    store_text(st, 2, buf, sizeof buf);
    cJSON_AddStringToObject(l, "name", buf);
    store_text(st, 3, buf, sizeof buf);
    cJSON_AddStringToObject(l, "phone", buf);
    store_text(st, 4, buf, sizeof buf);
    cJSON_AddStringToObject(l, "source", buf);
    store_text(st, 5, buf, sizeof buf);
    cJSON_AddStringToObject(l, "zoho", buf);
    store_text(st, 6, buf, sizeof buf);
    if (buf[0] != '\0') {
        cJSON_AddStringToObject(l, "zohoId", buf);
    }
    store_text(st, 7, buf, sizeof buf);
    cJSON_AddStringToObject(l, "call", buf[0] ? buf : "none");
    store_text(st, 8, buf, sizeof buf);
    if (buf[0] != '\0') {
        cJSON_AddStringToObject(l, "lastStatus", buf);
    }
    cJSON_AddNumberToObject(l, "attempts", sqlite3_column_int(st, 9));
    return l;
}

#define LEAD_QUERY                                                                                 \
    "SELECT l.lead_id, l.received_ms, l.name, l.phone, l.source, l.sync, l.zoho_id,"               \
    " c.category, c.last_status, coalesce(c.scheduled, 0) FROM st_leads l"                         \
    " LEFT JOIN st_calls c ON c.call_id = 'call_' || l.lead_id "

/* The latest leads with their state; personal data, so always behind the key. */
static void get_leads(struct http_req *req, void *arg)
{
    struct stats *s = arg;
    if (!stats_allowed(s, req, true)) {
        return;
    }
    char buf[16];
    long limit = 20;
    if (http_query(req, "limit", buf, sizeof buf) >= 0) {
        char *end;
        limit = strtol(buf, &end, 10);
        if (*end != '\0' || limit < 1 || limit > 500) {
            http_reply_error(req, 400, "bad_request", "limit: expected 1 to 500", NULL);
            return;
        }
    }
    sqlite3 *db = stats_reader(s, req);
    sqlite3_stmt *st;
    if (db == NULL) {
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON *list = cJSON_AddArrayToObject(o, "leads");
    if (sqlite3_prepare_v2(
            db, LEAD_QUERY "WHERE l.erased_ms IS NULL ORDER BY l.received_ms DESC LIMIT ?1", -1,
            &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int(st, 1, (int)limit);
        while (sqlite3_step(st) == SQLITE_ROW) {
            cJSON_AddItemToArray(list, lead_json(st));
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    http_reply_json(req, 200, o);
}

/* What happened to one lead, across every service. */
static void get_lead(struct http_req *req, void *arg)
{
    struct stats *s = arg;
    if (!stats_allowed(s, req, true)) {
        return;
    }
    sqlite3 *db = stats_reader(s, req);
    sqlite3_stmt *st;
    if (db == NULL) {
        return;
    }
    int64_t erased_ms = 0;
    if (sqlite3_prepare_v2(db, "SELECT erased_ms FROM st_leads WHERE lead_id = ?1", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, req->params[0], -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            erased_ms = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    if (erased_ms != 0) { /* erased on request: that it was, and nothing else */
        sqlite3_close(db);
        char at[32];
        stats_iso_time(erased_ms, at);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "success", true);
        cJSON_AddStringToObject(o, "leadId", req->params[0]);
        cJSON_AddBoolToObject(o, "erased", true);
        cJSON_AddStringToObject(o, "erasedAt", at);
        http_reply_json(req, 200, o);
        return;
    }
    cJSON *lead = NULL;
    if (sqlite3_prepare_v2(db, LEAD_QUERY "WHERE l.lead_id = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, req->params[0], -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            lead = lead_json(st);
        }
        sqlite3_finalize(st);
    }
    if (lead == NULL) {
        sqlite3_close(db);
        http_reply_error(req, 404, "not_found", "no lead with that id", NULL);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddItemToObject(o, "lead", lead);
    cJSON *timeline = cJSON_AddArrayToObject(o, "timeline");
    if (sqlite3_prepare_v2(db,
                           "SELECT ts, src, topic, data FROM st_timeline WHERE lead_id = ?1"
                           " ORDER BY ts, rowid",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, req->params[0], -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
            cJSON *e = cJSON_CreateObject();
            char at[32], buf[64];
            stats_iso_time(sqlite3_column_int64(st, 0), at);
            cJSON_AddStringToObject(e, "at", at);
            store_text(st, 1, buf, sizeof buf);
            cJSON_AddStringToObject(e, "service", buf);
            store_text(st, 2, buf, sizeof buf);
            cJSON_AddStringToObject(e, "event", buf);
            cJSON *data = cJSON_Parse((const char *)sqlite3_column_text(st, 3));
            cJSON_AddItemToObject(e, "data", data ? data : cJSON_CreateNull());
            cJSON_AddItemToArray(timeline, e);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    http_reply_json(req, 200, o);
}

static void get_dashboard(struct http_req *req, void *arg)
{
    (void)arg;
    http_reply(req, 200, "text/html; charset=utf-8", (const char *)stats_dashboard_html,
               stats_dashboard_html_len);
}

/* Whether leads are called now, else when calling resumes, in CALL_TIMEZONE. */
void stats_calling_json(struct stats *s, cJSON *st)
{
    int64_t now = clock_now_ms(), next = call_window_next(&s->window, now);
    cJSON *c = cJSON_AddObjectToObject(st, "callingHours");
    cJSON_AddStringToObject(c, "state", next == now ? "calling" : "paused");
    cJSON_AddStringToObject(c, "timeZone", s->tz_name);
    cJSON_AddNumberToObject(c, "nowMs", (double)now);
    if (next != now) {
        struct tz_fields f;
        char local[8];
        tz_split(s->window.tz, next, &f);
        snprintf(local, sizeof local, "%02d:%02d", f.hour % 100, f.minute % 100);
        cJSON_AddNumberToObject(c, "untilMs", (double)next);
        cJSON_AddStringToObject(c, "until", local);
    }
}

int stats_read_routes(struct stats *s, struct http_server *http)
{
    return http_route(http, "GET", "/exotel/stats/series", get_series, s) != 0 ||
                   http_route(http, "GET", "/leads", get_leads, s) != 0 ||
                   http_route(http, "GET", "/leads/{leadId}", get_lead, s) != 0 ||
                   http_route(http, "GET", "/", get_dashboard, s) != 0
               ? -1
               : 0;
}
