/*
 * sandbox_exotel: Exotel's v1 Calls API as shared/reference/exotel.md
 * describes it: connect (JSON or XML), call details (single and bulk), the
 * 200/minute rate limit, and StatusCallbacks after a simulated ring.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include "api_key.h"
#include "clock.h"
#include "log.h"
#include "sandbox.h"
#include "upstream.h"

#include <civetweb.h>
#include <ctype.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sandbox_exotel_int.h"

/* ---- answers in Exotel's shapes ---- */

bool sbx_wants_json(struct http_req *req)
{
    size_t n = strlen(req->path);
    return n > 5 && strcmp(req->path + n - 5, ".json") == 0;
}

void sbx_rest_exception(struct http_req *req, int status, const char *message)
{
    char body[768];
    /* A 429 says when to come back, as a client should be ready to honour. */
    const char *extra = status == 429 ? "Retry-After: 1\r\n" : NULL;
    if (sbx_wants_json(req)) {
        cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "RestException");
        cJSON_AddNumberToObject(e, "Status", status);
        cJSON_AddStringToObject(e, "Message", message);
        http_reply_json_ex(req, status, extra, o);
        return;
    }
    snprintf(
        body, sizeof body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TwilioResponse>\n <RestException>\n"
        "  <Status>%d</Status>\n  <Message>%s</Message>\n </RestException>\n</TwilioResponse>\n",
        status, message);
    http_reply_ex(req, status, "application/xml", extra, body, strlen(body));
}

cJSON *sbx_call_json(const struct sandbox_exotel *ex, const struct call *c)
{
    char created[20], updated[20], start[20], end[20];
    sandbox_exotel_time(c->created, created);
    sandbox_exotel_time(c->updated, updated);
    sandbox_exotel_time(c->start, start);
    sandbox_exotel_time(c->end, end);
    bool done = c->end != 0;
    cJSON *o = cJSON_CreateObject();
    char uri[160];
    snprintf(uri, sizeof uri, "/v1/Accounts/%s/Calls/%s", ex->sid, c->sid);
    cJSON_AddStringToObject(o, "Sid", c->sid);
    cJSON_AddNullToObject(o, "ParentCallSid");
    cJSON_AddStringToObject(o, "DateCreated", created);
    cJSON_AddStringToObject(o, "DateUpdated", updated);
    cJSON_AddStringToObject(o, "AccountSid", ex->sid);
    cJSON_AddStringToObject(o, "To", c->to);
    cJSON_AddStringToObject(o, "From", c->from);
    cJSON_AddStringToObject(o, "PhoneNumberSid", c->caller_id);
    cJSON_AddStringToObject(o, "Status", c->status);
    cJSON_AddStringToObject(o, "StartTime", start);
    if (done) {
        cJSON_AddStringToObject(o, "EndTime", end);
        cJSON_AddNumberToObject(o, "Duration", c->duration);
        cJSON_AddStringToObject(o, "Price", c->duration > 0 ? "0.750" : "0.000");
        sbx_add_legs(o, c, true);
    } else {
        cJSON_AddNullToObject(o, "EndTime");
        cJSON_AddNullToObject(o, "Duration");
        cJSON_AddNullToObject(o, "Price");
    }
    cJSON_AddStringToObject(o, "Direction", "outbound-api");
    cJSON_AddNullToObject(o, "AnsweredBy");
    cJSON_AddNullToObject(o, "ForwardedFrom");
    cJSON_AddNullToObject(o, "CallerName");
    cJSON_AddStringToObject(o, "Uri", uri);
    if (c->recording[0]) {
        cJSON_AddStringToObject(o, "RecordingUrl", c->recording);
    } else {
        cJSON_AddNullToObject(o, "RecordingUrl");
    }
    return o;
}

void sbx_reply_call(struct http_req *req, const struct sandbox_exotel *ex, const struct call *c)
{
    cJSON *call = sbx_call_json(ex, c);
    if (sbx_wants_json(req)) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "Call", call);
        http_reply_json(req, 200, o);
        return;
    }
    /* XML: the same fields, empties as <X />, rooted at <TwilioResponse>. */
    char body[4096];
    size_t n =
        (size_t)snprintf(body, sizeof body,
                         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TwilioResponse>\n <Call>\n");
    for (cJSON *f = call->child; f != NULL && n < sizeof body; f = f->next) {
        if (cJSON_IsString(f)) {
            n += (size_t)snprintf(body + n, sizeof body - n, "  <%s>%s</%s>\n", f->string,
                                  f->valuestring, f->string);
        } else if (cJSON_IsNumber(f)) {
            n += (size_t)snprintf(body + n, sizeof body - n, "  <%s>%d</%s>\n", f->string,
                                  f->valueint, f->string);
        } else {
            n += (size_t)snprintf(body + n, sizeof body - n, "  <%s />\n", f->string);
        }
    }
    if (n < sizeof body) {
        n += (size_t)snprintf(body + n, sizeof body - n, " </Call>\n</TwilioResponse>\n");
    }
    cJSON_Delete(call);
    http_reply(req, 200, "application/xml", body, n < sizeof body ? n : sizeof body - 1);
}

/* ---- checks ---- */

bool sbx_authorized(struct http_req *req, const struct sandbox_exotel *ex)
{
    const char *h = http_header(req, "Authorization");
    if (h == NULL || strncmp(h, "Basic ", 6) != 0) {
        return false;
    }
    h += 6;
    return api_key_equal(h, strlen(h), ex->auth_b64, strlen(ex->auth_b64)) &&
           strcmp(req->params[0], ex->sid) == 0;
}

static bool valid_number(const char *s)
{
    size_t digits = 0;
    if (*s == '+') {
        s++;
    }
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s)) {
            return false;
        }
        digits++;
    }
    return digits >= 8 && digits <= 15;
}

/* Last ten digits, the way numbers are compared across 0-prefixed and E.164 forms. */
const char *sbx_last10(const char *s)
{
    size_t n = strlen(s);
    return n > 10 ? s + n - 10 : s;
}

/*
 * At SANDBOX_RECORDS_MAX calls, the oldest tenth goes (those before the oldest callback still
 * due: pending callbacks name calls by index). Lock held. A bulk-details cursor taken before a
 * drop may then skip calls: the sandbox's memory is bounded, its paging across a drop is not exact.
 */
static void drop_oldest_calls(struct sandbox *sb, struct sandbox_exotel *ex)
{
    int k = sb->records_max / 10 > 0 ? sb->records_max / 10 : 1;
    for (const struct pending_cb *p = ex->pending; p != NULL; p = p->next) {
        k = p->call < k ? p->call : k;
    }
    if (k <= 0 || ex->ncalls < sb->records_max) {
        return;
    }
    memmove(ex->calls, ex->calls + k, (size_t)(ex->ncalls - k) * sizeof *ex->calls);
    ex->ncalls -= k;
    for (struct pending_cb *p = ex->pending; p != NULL; p = p->next) {
        p->call -= k;
    }
    for (int i = 0; i < k; i++) {
        sandbox_dropped("exotel_calls");
    }
}

static bool rate_limited(struct sandbox_exotel *ex, int64_t now)
{
    if (ex->nplaced < ex->rate_limit) {
        return false;
    }
    int64_t oldest = ex->placed[ex->placed_head];
    return now - oldest < ex->rate_window_ms;
}

static void note_placed(struct sandbox_exotel *ex, int64_t now)
{
    if (ex->nplaced < ex->rate_limit) {
        ex->placed[(ex->placed_head + ex->nplaced++) % ex->rate_limit] = now;
    } else {
        ex->placed[ex->placed_head] = now;
        ex->placed_head = (ex->placed_head + 1) % ex->rate_limit;
    }
}

void sbx_schedule_cb(struct sandbox_exotel *ex, int call, int64_t due)
{
    struct pending_cb *p = malloc(sizeof *p);
    if (p == NULL) {
        return;
    }
    p->due = due;
    p->call = call;
    struct pending_cb **at = &ex->pending;
    while (*at != NULL && (*at)->due <= due) {
        at = &(*at)->next;
    }
    p->next = *at;
    *at = p;
    pthread_cond_signal(&ex->cond);
}

/* ---- handlers ---- */

/* ---- connect: the request as Exotel reads it ---- */

/* A connect body: urlencoded, or multipart/form-data (exotel.md §1: both are used against
 * production). */
struct form {
    const char *body;
    size_t len;
    bool multipart;
    char delim[80]; /* "\r\n--<boundary>" */
};

static int form_open(struct form *f, const char *ctype, const char *body, size_t len)
{
    memset(f, 0, sizeof *f);
    f->body = body;
    f->len = len;
    if (ctype != NULL && strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0) {
        return 0;
    }
    const char *b = ctype != NULL && strncasecmp(ctype, "multipart/form-data", 19) == 0
                        ? strcasestr(ctype, "boundary=")
                        : NULL;
    if (b == NULL) {
        return -1;
    }
    b += 9;
    size_t n = *b == '"' ? strcspn(b + 1, "\"") : strcspn(b, "; \t");
    const char *start = *b == '"' ? b + 1 : b;
    if (n == 0 || n > 70) {
        return -1;
    }
    f->multipart = true;
    snprintf(f->delim, sizeof f->delim, "\r\n--%.*s", (int)n, start);
    return 0;
}

/* A field's value into out: its length, -1 when absent, -2 when longer than out. */
static int form_get(const struct form *f, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    if (!f->multipart) {
        return mg_get_var(f->body, f->len, name, out, size);
    }
    char needle[96];
    snprintf(needle, sizeof needle, "name=\"%s\"", name);
    const char *end = f->body + f->len;
    const char *p = memmem(f->body, f->len, needle, strlen(needle));
    const char *v = p ? memmem(p, (size_t)(end - p), "\r\n\r\n", 4) : NULL;
    const char *e = v ? memmem(v + 4, (size_t)(end - v - 4), f->delim, strlen(f->delim)) : NULL;
    if (e == NULL) {
        return -1;
    }
    size_t n = (size_t)(e - v - 4);
    if (n >= size) {
        return -2;
    }
    memcpy(out, v + 4, n);
    out[n] = '\0';
    return (int)n;
}

struct connect_req {
    char from[64], to[64], caller[64], url[512], cb[512], ctype[64], custom[160];
    char call_type[16], time_limit[16], time_out[16], events[4][24];
};

static void read_connect(const struct form *f, struct connect_req *c)
{
    static const char *const ev_names[] = {"StatusCallbackEvents[0]", "StatusCallbackEvents[1]",
                                           "StatusCallbackEvents[]", "StatusCallbackEvents"};
    memset(c, 0, sizeof *c);
    form_get(f, "From", c->from, sizeof c->from);
    form_get(f, "To", c->to, sizeof c->to);
    form_get(f, "CallerId", c->caller, sizeof c->caller);
    form_get(f, "Url", c->url, sizeof c->url);
    form_get(f, "StatusCallback", c->cb, sizeof c->cb);
    form_get(f, "StatusCallbackContentType", c->ctype, sizeof c->ctype);
    form_get(f, "CustomField", c->custom, sizeof c->custom);
    form_get(f, "CallType", c->call_type, sizeof c->call_type);
    form_get(f, "TimeLimit", c->time_limit, sizeof c->time_limit);
    form_get(f, "TimeOut", c->time_out, sizeof c->time_out);
    for (int i = 0; i < 4; i++) {
        form_get(f, ev_names[i], c->events[i], sizeof c->events[i]);
    }
}

/* "" or a whole number in [lo, hi]. */
bool sbx_int_in(const char *s, long lo, long hi)
{
    char *end;
    long v = s[0] ? strtol(s, &end, 10) : lo;
    return s[0] == '\0' || (*end == '\0' && v >= lo && v <= hi);
}

static bool http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* Why Exotel would refuse these parameters (HTTP 400), or NULL. See docs/api-conformance.md. */
static const char *connect_refusal(const struct connect_req *c, char *msg, size_t size)
{
    const char *missing = c->from[0] == '\0'                        ? "From"
                          : c->caller[0] == '\0'                    ? "CallerId"
                          : (c->to[0] == '\0' && c->url[0] == '\0') ? "To or Url"
                                                                    : NULL;
    if (missing != NULL) {
        snprintf(msg, size, "Missing parameter: %s", missing);
        return msg;
    }
    if (!valid_number(c->from) || !valid_number(c->caller) || (c->to[0] && !valid_number(c->to))) {
        return "Invalid phone number: use E.164 (+919876543210) or 0 + 10 digits";
    }
    if (c->url[0] && !http_url(c->url)) {
        return "Url: expected http://my.exotel.com/<sid>/exoml/start_voice/<app_id>";
    }
    if (c->call_type[0] && strcmp(c->call_type, "trans") != 0) {
        return "CallType: only trans is supported (promotional calls are not)";
    }
    if (!sbx_int_in(c->time_limit, 1, 14400) || !sbx_int_in(c->time_out, 1, 60)) {
        return "TimeLimit is 1 to 14400 seconds, TimeOut 1 to 60";
    }
    if (c->cb[0] && !http_url(c->cb)) {
        return "StatusCallback: expected an http:// or https:// URL";
    }
    if (c->ctype[0] && strcmp(c->ctype, "multipart/form-data") != 0 &&
        strcmp(c->ctype, "application/json") != 0) {
        return "StatusCallbackContentType: expected multipart/form-data or application/json";
    }
    for (int i = 0; i < 4; i++) {
        if (c->events[i][0] && strcmp(c->events[i], "terminal") != 0 &&
            strcmp(c->events[i], "answered") != 0) {
            return "StatusCallbackEvents: expected terminal or answered";
        }
    }
    return strlen(c->custom) > 128 ? "CustomField is longer than 128 characters" : NULL;
}

/* Under the lock: the call, ringing; *fail_after when the client is to see a 504 anyway. */
static int place_call(struct sandbox *sb, const struct connect_req *r, int64_t now,
                      struct call *copy, bool *fail_after)
{
    struct sandbox_exotel *ex = sb->exotel;
    drop_oldest_calls(sb, ex);
    if (ex->ncalls == ex->cap) {
        int ncap = ex->cap ? ex->cap * 2 : 256;
        struct call *grown = realloc(ex->calls, (size_t)ncap * sizeof *grown);
        if (grown == NULL) {
            return -1;
        }
        ex->calls = grown;
        ex->cap = ncap;
    }
    note_placed(ex, now);
    int idx = ex->ncalls++;
    struct call *c = &ex->calls[idx];
    memset(c, 0, sizeof *c);
    snprintf(c->sid, sizeof c->sid, "%016llx%016llx", (unsigned long long)sandbox_rand(sb, 0),
             (unsigned long long)sandbox_rand(sb, 0));
    snprintf(c->from, sizeof c->from, "%.31s", r->from);
    snprintf(c->to, sizeof c->to, "%.31s", r->to);
    snprintf(c->caller_id, sizeof c->caller_id, "%.31s", r->caller);
    snprintf(c->custom, sizeof c->custom, "%.128s", r->custom);
    snprintf(c->status, sizeof c->status, "in-progress");
    c->created = c->updated = c->start = now;
    c->end_due = now + ex->ring_ms;
    sbx_pick_outcome(sb, ex, r->from, r->to, c);
    c->cb_json = strcmp(r->ctype, "application/json") == 0;
    if (r->cb[0] != '\0' && sandbox_callback_url_ok(r->cb)) {
        snprintf(c->callback, sizeof c->callback, "%s", r->cb);
    } else if (r->cb[0] != '\0') {
        log_warn("Sandbox sends callbacks to loopback addresses only (no userinfo): this one is "
                 "not sent",
                 NULL);
    }
    /* The call always ends; its callback may be late, doubled or lost (faults). */
    sbx_schedule_cb(ex, idx, now + ex->ring_ms);
    *copy = *c;
    *fail_after = (int)sandbox_rand(sb, 100) < sb->faults[SANDBOX_EXOTEL].p504_after_place;
    return 0;
}

static void log_connect(struct sandbox *sb, struct http_req *req, const struct connect_req *r)
{
    char summary[512], mf[16], mt[16];
    log_mask_phone(r->from, mf, sizeof mf);
    log_mask_phone(r->to, mt, sizeof mt);
    snprintf(summary, sizeof summary,
             "From=%s To=%s CallerId=%s%s StatusCallback=%s CustomField=%s", mf, mt, r->caller,
             r->url[0] ? " Url=(flow)" : "", r->cb[0] ? "(set)" : "", r->custom);
    sandbox_log_request(sb, SANDBOX_EXOTEL, req->method, req->path, summary);
}

/* Faults, auth and the request's form (the refusals a client can cause); 0 when it may go on. */
static int connect_checks(struct sandbox *sb, struct http_req *req, bool form_ok)
{
    enum sandbox_fault fault = sandbox_fault_roll(sb, SANDBOX_EXOTEL);
    int status = fault == FAULT_DOWN                ? 503
                 : fault == FAULT_429               ? 429
                 : fault == FAULT_500               ? 500
                 : fault != FAULT_NONE              ? 504
                 : !sbx_authorized(req, sb->exotel) ? 401
                 : !form_ok                         ? 400
                                                    : 0;
    const char *msg = status == 503   ? "Service Unavailable"
                      : status == 429 ? "Too Many Requests"
                      : status == 401 ? "Authentication is required to view this page."
                      : status == 400 ? "Content-Type: expected application/x-www-form-urlencoded "
                                        "or multipart/form-data"
                                      : "Internal Server Error";
    if (status != 0) {
        sbx_rest_exception(req, status, msg);
    }
    return status;
}

static void post_connect(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    struct sandbox_exotel *ex = sb->exotel;
    char *body = NULL, msg[96];
    size_t len = 0;
    if (http_read_body(req, 16 * 1024, &body, &len) != 0) {
        return;
    }
    struct form f;
    struct connect_req r;
    bool form_ok = form_open(&f, http_header(req, "Content-Type"), body, len) == 0;
    read_connect(&f, &r);
    free(body);
    /* Logged first: the request's arrival time is the one that counts, even if it then hangs. */
    log_connect(sb, req, &r);
    if (connect_checks(sb, req, form_ok) != 0) {
        return;
    }
    const char *refusal = connect_refusal(&r, msg, sizeof msg);
    const char *callee = r.to[0] ? r.to : r.from;
    if (refusal == NULL && ex->dnd[0] != '\0' && sbx_in_list(ex->dnd, callee)) {
        char masked[16], dnd[128];
        log_mask_phone(callee, masked, sizeof masked);
        snprintf(dnd, sizeof dnd, "Call to [%s] cannot be made because of TRAI NDNC regulations",
                 masked);
        sbx_rest_exception(req, 403, dnd);
        return;
    }
    if (refusal == NULL && ex->invalid[0] != '\0' && sbx_in_list(ex->invalid, callee)) {
        refusal = "Invalid 'To' number: the number does not exist";
    }
    if (refusal != NULL) {
        sbx_rest_exception(req, 400, refusal);
        return;
    }
    int64_t now = clock_now_ms();
    struct call copy;
    bool fail_after = false;
    pthread_mutex_lock(&sb->lock);
    int rc = rate_limited(ex, now) ? 429 : place_call(sb, &r, now, &copy, &fail_after);
    pthread_mutex_unlock(&sb->lock);
    if (rc != 0) {
        sbx_rest_exception(req, rc == 429 ? 429 : 500,
                           rc == 429 ? "Too Many Requests" : "Internal Server Error");
    } else if (fail_after) {
        /* The nasty case: the call rings, yet the client sees an error. */
        sbx_rest_exception(req, 504, "Gateway Timeout");
    } else {
        sbx_reply_call(req, ex, &copy);
    }
}

bool sbx_in_list(const char *list, const char *number)
{
    if (list[0] == '\0') {
        return true;
    }
    char copy[256], *save = NULL;
    snprintf(copy, sizeof copy, "%s", list);
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(sbx_last10(t), sbx_last10(number)) == 0) {
            return true;
        }
    }
    return false;
}

/* Number metadata: what a DND pre-check asks. */
static void get_number(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    struct sandbox_exotel *ex = sb->exotel;
    sandbox_log_request(sb, SANDBOX_EXOTEL, req->method, "/Numbers/{number}", "");
    if (!sbx_authorized(req, ex)) {
        sbx_rest_exception(req, 401, "Authentication is required to view this page.");
        return;
    }
    char number[64];
    snprintf(number, sizeof number, "%.63s", req->params[1]);
    size_t n = strlen(number);
    if (n > 5 && strcmp(number + n - 5, ".json") == 0) {
        number[n - 5] = '\0';
    }
    if (!valid_number(number)) {
        sbx_rest_exception(req, 400, "Invalid phone number");
        return;
    }
    cJSON *o = cJSON_CreateObject(), *num = cJSON_AddObjectToObject(o, "Numbers");
    cJSON_AddStringToObject(num, "PhoneNumber", number);
    cJSON_AddStringToObject(num, "Circle", "KA");
    cJSON_AddStringToObject(num, "Type", "Mobile");
    cJSON_AddStringToObject(num, "DND", ex->dnd[0] && sbx_in_list(ex->dnd, number) ? "Yes" : "No");
    http_reply_json(req, 200, o);
}

/* ---- start/stop ---- */

static int parse_outcomes(struct sandbox_exotel *ex, const char *spec, char err[CONFIG_ERR_MAX])
{
    static const char *const known[] = {"completed", "busy", "no-answer", "failed", NULL};
    char copy[256], *save = NULL;
    snprintf(copy, sizeof copy, "%s", spec);
    ex->nmix = ex->mix_total = 0;
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        char name[16];
        int w;
        bool ok = sscanf(t, "%15[a-z-]:%d", name, &w) == 2 && w >= 0 && ex->nmix < MAX_OUTCOMES;
        bool is_known = false;
        for (int i = 0; ok && known[i]; i++) {
            is_known = is_known || strcmp(name, known[i]) == 0;
        }
        if (!ok || !is_known) {
            snprintf(err, CONFIG_ERR_MAX,
                     "SANDBOX_OUTCOMES: expected outcome:weight,... with completed, busy, "
                     "no-answer, failed");
            return -1;
        }
        snprintf(ex->mix[ex->nmix].name, sizeof ex->mix[0].name, "%s", name);
        ex->mix[ex->nmix++].weight = w;
        ex->mix_total += w;
    }
    if (ex->mix_total == 0) {
        snprintf(err, CONFIG_ERR_MAX, "SANDBOX_OUTCOMES: the weights add up to 0");
        return -1;
    }
    return 0;
}

int sandbox_exotel_start(struct sandbox *sb, struct app *app, char err[CONFIG_ERR_MAX])
{
    static const char *const modes[] = {"random", "last-digit", NULL};
    int64_t ring, limit, window;
    int mode;
    if (config_int("SANDBOX_RING_MS", 3000, 0, 3600000, &ring, err) != 0 ||
        config_int("SANDBOX_EXOTEL_RATE_LIMIT", 200, 1, 100000, &limit, err) != 0 ||
        config_int("SANDBOX_EXOTEL_RATE_WINDOW_MS", 60000, 1, 3600000, &window, err) != 0 ||
        config_enum("SANDBOX_OUTCOME_MODE", "random", modes, &mode, err) != 0) {
        return -1;
    }
    struct sandbox_exotel *ex = calloc(1, sizeof *ex);
    if (ex == NULL || (ex->placed = calloc((size_t)limit, sizeof *ex->placed)) == NULL ||
        parse_outcomes(ex,
                       config_str("SANDBOX_OUTCOMES", "completed:70,busy:10,no-answer:15,failed:5"),
                       err) != 0) {
        if (ex != NULL) {
            free(ex->placed);
        }
        free(ex);
        return -1;
    }
    ex->ring_ms = (int)ring;
    ex->rate_limit = (int)limit;
    ex->rate_window_ms = window;
    ex->by_last_digit = mode == 1;
    pthread_mutex_lock(&sb->lock);
    ex->cursor_key = sandbox_rand(sb, 0);
    pthread_mutex_unlock(&sb->lock);
    snprintf(ex->dnd, sizeof ex->dnd, "%s", config_str("SANDBOX_DND_NUMBERS", ""));
    snprintf(ex->invalid, sizeof ex->invalid, "%s", config_str("SANDBOX_INVALID_NUMBERS", ""));
    snprintf(ex->agent_no_answer, sizeof ex->agent_no_answer, "%s",
             config_str("SANDBOX_AGENT_NO_ANSWER", ""));
    /* The sandbox accepts the credentials leadbus is configured with, or the sandbox defaults. */
    struct upstream up;
    if (upstream_resolve(app, &up, err) != 0) {
        free(ex->placed);
        free(ex);
        return -1;
    }
    snprintf(ex->sid, sizeof ex->sid, "%s", up.exotel_sid);
    char pair[260];
    snprintf(pair, sizeof pair, "%s:%s", up.exotel_key, up.exotel_token);
    EVP_EncodeBlock((unsigned char *)ex->auth_b64, (const unsigned char *)pair, (int)strlen(pair));
    explicit_bzero(pair, sizeof pair);
    explicit_bzero(&up, sizeof up);
    clock_cond_init(&ex->cond);
    const char *base = "/sandbox/exotel/v1/Accounts/{sid}";
    char p1[128], p2[128], p3[128], p4[128], p5[128], p6[128];
    snprintf(p1, sizeof p1, "%s/Calls/connect", base);
    snprintf(p2, sizeof p2, "%s/Calls/connect.json", base);
    snprintf(p3, sizeof p3, "%s/Calls/{callsid}", base);
    snprintf(p4, sizeof p4, "%s/Calls", base);
    snprintf(p5, sizeof p5, "%s/Calls.json", base);
    snprintf(p6, sizeof p6, "%s/Numbers/{number}", base);
    if (http_route(app->http, "POST", p1, post_connect, sb) != 0 ||
        http_route(app->http, "POST", p2, post_connect, sb) != 0 ||
        http_route(app->http, "GET", p3, sbx_get_call, sb) != 0 ||
        http_route(app->http, "GET", p4, sbx_get_calls, sb) != 0 ||
        http_route(app->http, "GET", p5, sbx_get_calls, sb) != 0 ||
        http_route(app->http, "GET", p6, get_number, sb) != 0 ||
        http_route(app->http, "GET", "/sandbox/exotel/placed", sbx_get_placed, sb) != 0 ||
        (sb->exotel = ex, pthread_create(&ex->ringer, NULL, sbx_ringer_main, sb)) != 0) {
        pthread_cond_destroy(&ex->cond);
        free(ex->placed);
        free(ex);
        sb->exotel = NULL;
        return -1;
    }
    return 0;
}

void sandbox_exotel_stop(struct sandbox *sb)
{
    struct sandbox_exotel *ex = sb->exotel;
    if (ex == NULL) {
        return;
    }
    pthread_mutex_lock(&sb->lock);
    ex->stopping = true;
    pthread_cond_signal(&ex->cond);
    pthread_mutex_unlock(&sb->lock);
    pthread_join(ex->ringer, NULL);
    while (ex->pending != NULL) {
        struct pending_cb *next = ex->pending->next;
        free(ex->pending);
        ex->pending = next;
    }
    pthread_cond_destroy(&ex->cond);
    free(ex->calls);
    free(ex->placed);
    free(ex);
    sb->exotel = NULL;
}
