/* sandbox_exotel_details: Exotel's call details, one call and bulk pages (exotel.md §7), and
 * the placed-calls list the tests read. */
#define _GNU_SOURCE /* strptime, timegm */
#include "sandbox_exotel_int.h"
#include "clock.h"
#include "log.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct call *sbx_find_call(struct sandbox_exotel *ex, const char *sid)
{
    for (int i = 0; i < ex->ncalls; i++) {
        if (strcmp(ex->calls[i].sid, sid) == 0) {
            return &ex->calls[i];
        }
    }
    return NULL;
}

void sbx_get_call(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    struct sandbox_exotel *ex = sb->exotel;
    sandbox_log_request(sb, SANDBOX_EXOTEL, req->method, req->path, "");
    enum sandbox_fault fault = sandbox_fault_roll(sb, SANDBOX_EXOTEL);
    if (fault != FAULT_NONE) {
        sbx_rest_exception(req,
                           fault == FAULT_429    ? 429
                           : fault == FAULT_DOWN ? 503
                                                 : 500,
                           "Service temporarily unavailable");
        return;
    }
    if (!sbx_authorized(req, ex)) {
        sbx_rest_exception(req, 401, "Authentication is required to view this page.");
        return;
    }
    char validity[16] = "";
    if (http_query(req, "RecordingUrlValidity", validity, sizeof validity) >= 0 &&
        (validity[0] == '\0' || !sbx_int_in(validity, 5, 60))) {
        sbx_rest_exception(req, 400, "RecordingUrlValidity must be from 5 to 60 (minutes)");
        return;
    }
    char sid[64];
    snprintf(sid, sizeof sid, "%.63s", req->params[1]);
    size_t n = strlen(sid);
    if (n > 5 && strcmp(sid + n - 5, ".json") == 0) {
        sid[n - 5] = '\0';
    }
    pthread_mutex_lock(&sb->lock);
    sbx_settle_calls(sb, ex, clock_now_ms());
    struct call *c = sbx_find_call(ex, sid);
    struct call copy;
    if (c != NULL) {
        copy = *c;
    }
    pthread_mutex_unlock(&sb->lock);
    if (c == NULL) {
        sbx_rest_exception(req, 404, "Not Found");
        return;
    }
    sbx_reply_call(req, ex, &copy);
}

/*
 * Bulk call details as developer.exotel.com/api/call-details-bulk and
 * …/docs/voice-v1/api-reference/call-details describe them (exotel.md §7): filters To/From
 * (at most 5 numbers each), Status, DateCreated (gte/lte, at most a month; the last 31 days
 * when absent), PageSize (default 50, at most 100), SortBy (DateCreated:asc, default desc),
 * and Before/After cursors taken from Metadata.PrevPageUri/NextPageUri. Ongoing calls are
 * left out.
 */
#define BULK_PAGE_DEFAULT 50
#define BULK_PAGE_MAX 100
#define BULK_NUMBERS_MAX 5
#define BULK_RANGE_MAX_S (31LL * 86400)

struct bulk_query {
    char from[256], to[256], status[32], gte[20], lte[20];
    int page_size;
    int dir;            /* +1 DateCreated:asc, -1 desc */
    long after, before; /* the call index a cursor names, or -1 */
    char filters[768];  /* the query without After/Before, for the page URIs */
};

/* "2026-11-24 10:00:00" -> seconds (as if UTC: only differences matter); -1 when malformed. */
static int64_t exotel_date_s(const char *s)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
    return end != NULL && *end == '\0' ? (int64_t)timegm(&tm) : -1;
}

static int count_numbers(const char *list)
{
    int n = list[0] != '\0';
    for (; *list; list++) {
        n += *list == ',';
    }
    return n;
}

/* A cursor: the call's index, masked with a per-sandbox key so clients cannot build one. */
static void cursor_format(const struct sandbox_exotel *ex, long idx, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)((uint64_t)idx ^ ex->cursor_key));
}

/* The call index a cursor names; -2 when it is not one of ours. */
static long cursor_parse(const struct sandbox_exotel *ex, const char *s)
{
    if (strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16) {
        return -2;
    }
    uint64_t idx = (uint64_t)strtoull(s, NULL, 16) ^ ex->cursor_key;
    return idx < (uint64_t)ex->ncalls ? (long)idx : -2;
}

/* DateCreated "gte:…;lte:…" into q; NULL when fine, else why not. */
static const char *bulk_dates(struct bulk_query *q, const char *spec)
{
    static const char bad[] =
        "DateCreated: expected gte:YYYY-MM-DD HH:MM:SS;lte:YYYY-MM-DD HH:MM:SS";
    int64_t now = clock_now_ms();
    sandbox_exotel_time(now - BULK_RANGE_MAX_S * 1000, q->gte);
    sandbox_exotel_time(now, q->lte);
    if (spec[0] == '\0') {
        return NULL; /* the last 31 days */
    }
    const char *g = strstr(spec, "gte:"), *l = strstr(spec, "lte:");
    if (g == NULL && l == NULL) {
        return bad;
    }
    if (g != NULL) {
        snprintf(q->gte, sizeof q->gte, "%.19s", g + 4);
    }
    if (l != NULL) {
        snprintf(q->lte, sizeof q->lte, "%.19s", l + 4);
    }
    int64_t a = exotel_date_s(q->gte), b = exotel_date_s(q->lte);
    if (a < 0 || b < 0) {
        return bad;
    }
    return b - a > BULK_RANGE_MAX_S ? "DateCreated: the range can be at most 1 month" : NULL;
}

/* The raw query without After and Before: what the page URIs repeat. */
static void bulk_filters(const char *query, char *out, size_t size)
{
    char copy[768], *save = NULL;
    size_t n = 0;
    out[0] = '\0';
    snprintf(copy, sizeof copy, "%s", query ? query : "");
    for (char *t = strtok_r(copy, "&", &save); t != NULL; t = strtok_r(NULL, "&", &save)) {
        if (strncmp(t, "After=", 6) != 0 && strncmp(t, "Before=", 7) != 0 && n < size) {
            n += (size_t)snprintf(out + n, size - n, "%s%s", n ? "&" : "", t);
        }
    }
}

/* Read and check the query (lock held: cursors name calls); NULL when fine, else why not. */
static const char *bulk_parse(struct http_req *req, const struct sandbox_exotel *ex,
                              struct bulk_query *q)
{
    char date[96] = "", size[16] = "", sort[32] = "", after[64] = "", before[64] = "";
    memset(q, 0, sizeof *q);
    http_query(req, "From", q->from, sizeof q->from);
    http_query(req, "To", q->to, sizeof q->to);
    http_query(req, "Status", q->status, sizeof q->status);
    http_query(req, "DateCreated", date, sizeof date);
    bool has_size = http_query(req, "PageSize", size, sizeof size) >= 0;
    http_query(req, "SortBy", sort, sizeof sort);
    bool has_after = http_query(req, "After", after, sizeof after) >= 0;
    bool has_before = http_query(req, "Before", before, sizeof before) >= 0;
    char *end = NULL;
    long ps = has_size ? strtol(size, &end, 10) : BULK_PAGE_DEFAULT;
    if (has_size && (size[0] == '\0' || *end != '\0' || ps < 1 || ps > BULK_PAGE_MAX)) {
        return "PageSize must be a number from 1 to 100";
    }
    q->page_size = (int)ps;
    if (sort[0] != '\0' && strcmp(sort, "DateCreated:asc") != 0 &&
        strcmp(sort, "DateCreated:desc") != 0) {
        return "SortBy: expected DateCreated:asc or DateCreated:desc";
    }
    q->dir = strcmp(sort, "DateCreated:asc") == 0 ? 1 : -1;
    if (count_numbers(q->to) > BULK_NUMBERS_MAX || count_numbers(q->from) > BULK_NUMBERS_MAX) {
        return "To and From take at most 5 numbers each";
    }
    const char *bad_date = bulk_dates(q, date);
    if (bad_date != NULL) {
        return bad_date;
    }
    q->after = has_after ? cursor_parse(ex, after) : -1;
    q->before = has_before ? cursor_parse(ex, before) : -1;
    if ((has_after && has_before) || q->after == -2 || q->before == -2) {
        return "Invalid page cursor: use After or Before as given in NextPageUri or PrevPageUri";
    }
    bulk_filters(req->query, q->filters, sizeof q->filters);
    return NULL;
}

static bool bulk_match(const struct bulk_query *q, const struct call *c)
{
    char created[20];
    sandbox_exotel_time(c->created, created);
    /* Bulk call details leave out calls still in progress, as Exotel's does. */
    return c->end != 0 && sbx_in_list(q->from, c->from) && sbx_in_list(q->to, c->to) &&
           strcmp(created, q->gte) >= 0 && strcmp(created, q->lte) <= 0 &&
           (q->status[0] == '\0' || strcmp(q->status, c->status) == 0);
}

/* The first match from index i on, stepping dir; -1 when none. Lock held. */
static long bulk_next(const struct sandbox_exotel *ex, const struct bulk_query *q, long i, int dir)
{
    for (; i >= 0 && i < ex->ncalls; i += dir) {
        if (bulk_match(q, &ex->calls[i])) {
            return i;
        }
    }
    return -1;
}

/* A page URI as Exotel writes them (no host); null for a page that does not exist. */
static void page_uri(cJSON *meta, const char *key, const struct sandbox_exotel *ex,
                     const struct bulk_query *q, const char *cursor_name, long idx)
{
    char uri[1024], cur[17] = "";
    if (cursor_name != NULL && idx < 0) {
        cJSON_AddNullToObject(meta, key);
        return;
    }
    if (cursor_name != NULL) {
        cursor_format(ex, idx, cur);
    }
    snprintf(uri, sizeof uri, "/v1/Accounts/%s/Calls.json?%s%s%s%s%s", ex->sid, q->filters,
             q->filters[0] && cursor_name ? "&" : "", cursor_name ? cursor_name : "",
             cursor_name ? "=" : "", cur);
    cJSON_AddStringToObject(meta, key, uri);
}

/* The calls of the page q asks for, in its sort order, into idx; how many. Lock held. */
static int bulk_select(const struct sandbox_exotel *ex, const struct bulk_query *q,
                       long idx[BULK_PAGE_MAX])
{
    /* Before walks back from its cursor; the page then reads in the sort order again. */
    int step = q->before >= 0 ? -q->dir : q->dir, n = 0;
    long from = q->after >= 0    ? q->after + q->dir
                : q->before >= 0 ? q->before - q->dir
                : q->dir > 0     ? 0
                                 : ex->ncalls - 1;
    for (long i = bulk_next(ex, q, from, step); i >= 0 && n < q->page_size;
         i = bulk_next(ex, q, i + step, step)) {
        idx[n++] = i;
    }
    for (int a = 0, b = n - 1; step != q->dir && a < b; a++, b--) {
        long t = idx[a];
        idx[a] = idx[b];
        idx[b] = t;
    }
    return n;
}

/* One page of calls and its Metadata into o. Lock held. */
static void bulk_page(const struct sandbox_exotel *ex, const struct bulk_query *q, cJSON *o)
{
    long idx[BULK_PAGE_MAX];
    int total = 0;
    for (long i = bulk_next(ex, q, 0, 1); i >= 0; i = bulk_next(ex, q, i + 1, 1)) {
        total++;
    }
    int n = bulk_select(ex, q, idx);
    cJSON *meta = cJSON_AddObjectToObject(o, "Metadata");
    cJSON *list = cJSON_AddArrayToObject(o, "Calls");
    for (int k = 0; k < n; k++) {
        cJSON_AddItemToArray(list, sbx_call_json(ex, &ex->calls[idx[k]]));
    }
    long first = n ? idx[0] : -1, last = n ? idx[n - 1] : -1;
    cJSON_AddNumberToObject(meta, "Total", total);
    cJSON_AddNumberToObject(meta, "PageSize", q->page_size);
    page_uri(meta, "FirstPageUri", ex, q, NULL, 0);
    page_uri(meta, "PrevPageUri", ex, q, "Before",
             n && bulk_next(ex, q, first - q->dir, -q->dir) >= 0 ? first : -1);
    page_uri(meta, "NextPageUri", ex, q, "After",
             n && bulk_next(ex, q, last + q->dir, q->dir) >= 0 ? last : -1);
}

void sbx_get_calls(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    struct sandbox_exotel *ex = sb->exotel;
    char to[256] = "", from[256] = "", size[16] = "", mt[16] = "", mf[16] = "", summary[256];
    http_query(req, "To", to, sizeof to);
    http_query(req, "From", from, sizeof from);
    http_query(req, "PageSize", size, sizeof size);
    log_mask_phone(to, mt, sizeof mt);
    log_mask_phone(from, mf, sizeof mf);
    snprintf(summary, sizeof summary, "To=%s From=%s PageSize=%s%s", to[0] ? mt : "",
             from[0] ? mf : "", size,
             req->query != NULL && strstr(req->query, "After=") != NULL ? " After=(set)" : "");
    sandbox_log_request(sb, SANDBOX_EXOTEL, req->method, req->path, summary);
    if (!sbx_authorized(req, ex)) {
        sbx_rest_exception(req, 401, "Authentication is required to view this page.");
        return;
    }
    struct bulk_query q;
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&sb->lock);
    sbx_settle_calls(sb, ex, clock_now_ms());
    const char *refusal = bulk_parse(req, ex, &q);
    if (refusal == NULL) {
        bulk_page(ex, &q, o);
    }
    pthread_mutex_unlock(&sb->lock);
    if (refusal != NULL) {
        cJSON_Delete(o);
        sbx_rest_exception(req, 400, refusal);
        return;
    }
    http_reply_json(req, 200, o);
}

/* The calls the simulated Exotel placed (not part of Exotel's API: what tests count). */
void sbx_get_placed(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!sandbox_admit(sb, req)) {
        return;
    }
    struct sandbox_exotel *ex = sb->exotel;
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "calls");
    pthread_mutex_lock(&sb->lock);
    sbx_settle_calls(sb, ex, clock_now_ms());
    for (int i = 0; i < ex->ncalls; i++) {
        const struct call *c = &ex->calls[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "sid", c->sid);
        cJSON_AddStringToObject(e, "customField", c->custom);
        cJSON_AddStringToObject(e, "status", c->end ? c->status : "in-progress");
        cJSON_AddNumberToObject(e, "createdMs", (double)c->created);
        /* Who was rung first and until when: tests check no agent is on two calls at once. */
        char from[32];
        log_mask_phone(c->from, from, sizeof from);
        cJSON_AddStringToObject(e, "from", from);
        cJSON_AddNumberToObject(e, "endMs", (double)c->end);
        cJSON_AddStringToObject(e, "leg1", c->leg1);
        cJSON_AddItemToArray(list, e);
    }
    pthread_mutex_unlock(&sb->lock);
    http_reply_json(req, 200, o);
}
