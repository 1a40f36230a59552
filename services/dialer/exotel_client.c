/* exotel_client: Exotel requests and the loose reading of their answers. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include "exotel_client.h"
#include "json_depth.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *exotel_outcome_name(enum exotel_outcome o)
{
    static const char *const names[] = {"placed", "throttled", "rejected",
                                        "dnd",    "unknown",   "not-sent"};
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "?";
}

bool exotel_status_terminal(const char *s)
{
    return strcmp(s, "completed") == 0 || strcmp(s, "busy") == 0 || strcmp(s, "no-answer") == 0 ||
           strcmp(s, "failed") == 0 || strcmp(s, "canceled") == 0;
}

/* ---- JSON: any scalar as text ---- */

static cJSON *parse(const char *body, size_t len)
{
    return json_depth_ok(body, len, JSON_DEPTH_MAX) ? cJSON_ParseWithLength(body, len) : NULL;
}

static void scalar(const cJSON *o, const char *key, char *dst, size_t size)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    dst[0] = '\0';
    if (cJSON_IsString(v) && v->valuestring != NULL) {
        snprintf(dst, size, "%s", v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        snprintf(dst, size, "%.0f", v->valuedouble);
    }
}

static int64_t seconds(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    return end != s && v >= 0 && v < 1e9 ? (int64_t)v : 0;
}

static void read_call(const cJSON *o, struct exotel_call *c)
{
    char dur[32];
    memset(c, 0, sizeof *c);
    scalar(o, "Sid", c->sid, sizeof c->sid);
    scalar(o, "Status", c->status, sizeof c->status);
    scalar(o, "From", c->from, sizeof c->from);
    scalar(o, "To", c->to, sizeof c->to);
    scalar(o, "DateCreated", c->date_created, sizeof c->date_created);
    scalar(o, "RecordingUrl", c->recording_url, sizeof c->recording_url);
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(o, "Details");
    scalar(details, "ConversationDuration", dur, sizeof dur);
    scalar(details, "Leg1Status", c->leg1_status, sizeof c->leg1_status);
    scalar(details, "Leg2Status", c->leg2_status, sizeof c->leg2_status);
    if (dur[0] == '\0') {
        scalar(o, "Duration", dur, sizeof dur);
    }
    c->duration_s = seconds(dur);
}

/* ---- XML: the few tags we read, from Exotel's flat <TwilioResponse> ---- */

/* Text of the first <tag>…</tag> after `from`; "" for <tag/> or when absent. */
static void xml_tag(const char *body, size_t len, const char *tag, char *dst, size_t size)
{
    char open[40], close[40];
    dst[0] = '\0';
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = memmem(body, len, open, strlen(open));
    if (a == NULL) {
        return;
    }
    a += strlen(open);
    const char *b = memmem(a, len - (size_t)(a - body), close, strlen(close));
    if (b == NULL) {
        return;
    }
    size_t n = (size_t)(b - a);
    snprintf(dst, size, "%.*s", (int)(n < size ? n : size - 1), a);
}

static bool looks_xml(const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)body[i])) {
        i++;
    }
    return i < len && body[i] == '<';
}

static void read_xml_call(const char *body, size_t len, struct exotel_call *c)
{
    char dur[32];
    memset(c, 0, sizeof *c);
    xml_tag(body, len, "Sid", c->sid, sizeof c->sid);
    xml_tag(body, len, "Status", c->status, sizeof c->status);
    xml_tag(body, len, "From", c->from, sizeof c->from);
    xml_tag(body, len, "To", c->to, sizeof c->to);
    xml_tag(body, len, "DateCreated", c->date_created, sizeof c->date_created);
    xml_tag(body, len, "RecordingUrl", c->recording_url, sizeof c->recording_url);
    xml_tag(body, len, "Duration", dur, sizeof dur);
    c->duration_s = seconds(dur);
}

static bool valid_sid(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i])) {
            return false;
        }
    }
    return n >= 8 && n < 64;
}

int exotel_parse_call(const char *body, size_t len, struct exotel_call *c)
{
    memset(c, 0, sizeof *c);
    if (looks_xml(body, len)) {
        if (memmem(body, len, "<Call>", 6) == NULL) {
            return -1;
        }
        read_xml_call(body, len, c);
    } else {
        cJSON *o = parse(body, len);
        const cJSON *call = cJSON_GetObjectItemCaseSensitive(o, "Call");
        if (cJSON_IsObject(call)) {
            read_call(call, c);
        }
        cJSON_Delete(o);
    }
    return valid_sid(c->sid) ? 0 : -1;
}

static int read_calls(const cJSON *o, struct exotel_call *calls, int max)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "Calls");
    if (!cJSON_IsArray(list)) {
        return -1;
    }
    int n = 0;
    for (const cJSON *el = list->child; el != NULL && n < max; el = el->next) {
        if (cJSON_IsObject(el)) {
            read_call(el, &calls[n]);
            n += valid_sid(calls[n].sid);
        }
    }
    return n;
}

int exotel_parse_calls(const char *body, size_t len, struct exotel_call *calls, int max)
{
    cJSON *o = parse(body, len);
    int n = read_calls(o, calls, max);
    cJSON_Delete(o);
    return n;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The After parameter of a page URI, percent-decoded; -1 when absent, empty, odd or too long. */
static int after_cursor(const char *uri, char out[EXOTEL_CURSOR_MAX])
{
    const char *q = strchr(uri, '?');
    const char *p = q;
    while (p != NULL && strncmp(p + 1, "After=", 6) != 0) {
        p = strchr(p + 1, '&');
    }
    if (p == NULL) {
        return -1;
    }
    p += 7;
    size_t n = 0;
    for (; *p != '\0' && *p != '&' && *p != '#'; p++) {
        int c = (unsigned char)*p;
        if (c == '%') {
            int hi = hex_digit(p[1]), lo = hi < 0 ? -1 : hex_digit(p[2]);
            if (lo < 0) {
                return -1;
            }
            c = hi * 16 + lo;
            p += 2;
        }
        if (n + 1 >= EXOTEL_CURSOR_MAX || c < 0x21 || c > 0x7e) {
            return -1; /* a cursor is printable ASCII; anything else is not one we can send back */
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return n > 0 ? 0 : -1;
}

int exotel_parse_calls_page(const char *body, size_t len, struct exotel_call *calls, int max,
                            struct exotel_page *page)
{
    memset(page, 0, sizeof *page);
    page->total = -1;
    cJSON *o = parse(body, len);
    int n = read_calls(o, calls, max);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "Metadata");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(meta, "NextPageUri");
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(meta, "Total");
    if (cJSON_IsNumber(total) && total->valuedouble >= 0 && total->valuedouble < 1e12) {
        page->total = (int64_t)total->valuedouble;
    }
    bool more = cJSON_IsString(next) && next->valuestring != NULL && next->valuestring[0] != '\0';
    if (n >= 0 && more && after_cursor(next->valuestring, page->after) != 0) {
        n = -1;
    }
    cJSON_Delete(o);
    return n;
}

/* The last (up to) 10 digits of a number; how many. */
static size_t last_digits(const char *s, char out[10])
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        if (isdigit((unsigned char)*s)) {
            out[n % 10] = *s;
            n++;
        }
    }
    if (n > 10) { /* the ring wrapped: rotate the oldest kept digit to the front */
        char tmp[10];
        for (size_t i = 0; i < 10; i++) {
            tmp[i] = out[(n + i) % 10];
        }
        memcpy(out, tmp, 10);
    }
    return n < 10 ? n : 10;
}

bool exotel_same_number(const char *a, const char *b)
{
    char da[10], db[10];
    size_t na = last_digits(a, da), nb = last_digits(b, db);
    return na >= 8 && na == nb && memcmp(da, db, na) == 0;
}

int exotel_parse_number(const char *body, size_t len, bool *dnd)
{
    cJSON *o = parse(body, len);
    const cJSON *num = cJSON_GetObjectItemCaseSensitive(o, "Numbers");
    char v[16];
    scalar(num, "DND", v, sizeof v);
    cJSON_Delete(o);
    if (strcasecmp(v, "Yes") == 0 || strcasecmp(v, "No") == 0) {
        *dnd = strcasecmp(v, "Yes") == 0;
        return 0;
    }
    return -1;
}

static void error_message(const char *body, size_t len, char *dst, size_t size)
{
    dst[0] = '\0';
    if (looks_xml(body, len)) {
        xml_tag(body, len, "Message", dst, size);
    } else {
        cJSON *o = parse(body, len);
        scalar(cJSON_GetObjectItemCaseSensitive(o, "RestException"), "Message", dst, size);
        cJSON_Delete(o);
    }
    if (dst[0] == '\0' && len > 0) {
        /* A plain-text body (Exotel's 401 is one): keep its first line, printable bytes only. */
        size_t n = 0;
        for (size_t i = 0; i < len && n + 1 < size && body[i] != '\n'; i++) {
            dst[n++] = isprint((unsigned char)body[i]) ? body[i] : '?';
        }
        dst[n] = '\0';
    }
}

void exotel_classify_connect(long status, bool maybe_sent, int64_t retry_after_ms, const char *body,
                             size_t len, struct exotel_connect_result *r)
{
    memset(r, 0, sizeof *r);
    r->http_status = status;
    r->retry_after_ms = retry_after_ms;
    if (status == 0) {
        r->outcome = maybe_sent ? EXOTEL_UNKNOWN : EXOTEL_NOT_SENT;
        return;
    }
    error_message(body, len, r->message, sizeof r->message);
    if (status == 200) {
        bool exception = memmem(body, len, "RestException", 13) != NULL;
        r->outcome = !exception && exotel_parse_call(body, len, &r->call) == 0 ? EXOTEL_PLACED
                                                                               : EXOTEL_UNKNOWN;
        if (r->outcome == EXOTEL_PLACED) {
            r->message[0] = '\0';
        }
    } else if (status == 429) {
        r->outcome = EXOTEL_THROTTLED;
    } else if (status == 403 && (strcasestr(r->message, "NDNC") || strcasestr(r->message, "DND"))) {
        r->outcome = EXOTEL_DND;
    } else if (status == 400 || status == 401 || status == 402 || status == 403 || status == 404) {
        r->outcome = EXOTEL_REJECTED;
    } else {
        r->outcome =
            EXOTEL_UNKNOWN; /* 5xx: Exotel retried origination itself and may have dialed */
    }
}

/* ---- requests ---- */

static void add(CURL *curl, char **buf, size_t *len, const char *key, const char *value)
{
    if (*buf == NULL || value == NULL || value[0] == '\0') {
        return;
    }
    char *k = curl_easy_escape(curl, key, 0), *v = curl_easy_escape(curl, value, 0);
    size_t need = *len + (k ? strlen(k) : 0) + (v ? strlen(v) : 0) + 3;
    char *grown = k && v ? realloc(*buf, need) : NULL;
    if (grown == NULL) {
        free(*buf);
        *buf = NULL;
    } else {
        *len += (size_t)sprintf(grown + *len, "%s%s=%s", *len ? "&" : "", k, v);
        *buf = grown;
    }
    curl_free(k);
    curl_free(v);
}

char *exotel_connect_form(CURL *curl, const struct exotel_dial *d)
{
    char *buf = calloc(1, 1), num[16], limit[16];
    size_t len = 0;
    snprintf(num, sizeof num, "%d", d->ring_timeout_s);
    snprintf(limit, sizeof limit, "%d", d->time_limit_s);
    add(curl, &buf, &len, "From", d->from);
    add(curl, &buf, &len, "To", d->flow_url ? NULL : d->to);
    add(curl, &buf, &len, "Url", d->flow_url);
    add(curl, &buf, &len, "CallerId", d->caller_id);
    add(curl, &buf, &len, "CallType", d->call_type);
    add(curl, &buf, &len, "TimeOut", num);
    add(curl, &buf, &len, "TimeLimit", limit);
    add(curl, &buf, &len, "Record", d->record ? "true" : NULL);
    add(curl, &buf, &len, "StatusCallback", d->status_callback);
    add(curl, &buf, &len, "StatusCallbackEvents[0]", "terminal");
    add(curl, &buf, &len, "StatusCallbackContentType", "application/json");
    add(curl, &buf, &len, "CustomField", d->custom_field);
    return buf;
}

static int request(CURL *curl, const struct exotel_account *a, const char *method, const char *path,
                   const char *form, struct httpc_response *r)
{
    char url[2048];
    snprintf(url, sizeof url, "%s/v1/Accounts/%s/%s", a->base, a->sid, path);
    struct curl_slist *h =
        form ? curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded") : NULL;
    struct httpc_request req = {.api = "exotel",
                                .method = method,
                                .url = url,
                                .headers = h,
                                .body = form,
                                .user = a->key,
                                .password = a->token,
                                .timeout_ms = a->timeout_ms};
    int rc = httpc_perform(curl, &req, r);
    curl_slist_free_all(h);
    return rc;
}

void exotel_connect(CURL *curl, const struct exotel_account *a, const struct exotel_dial *d,
                    struct exotel_connect_result *r)
{
    char *form = exotel_connect_form(curl, d);
    struct httpc_response resp = {0};
    if (form == NULL) {
        memset(r, 0, sizeof *r);
        r->outcome = EXOTEL_NOT_SENT;
        snprintf(r->message, sizeof r->message, "out of memory");
        return;
    }
    request(curl, a, "POST", "Calls/connect.json", form, &resp);
    exotel_classify_connect(resp.status, resp.maybe_sent, resp.retry_after_ms, resp.body, resp.len,
                            r);
    if (resp.status == 0) {
        snprintf(r->message, sizeof r->message, "%s", resp.error);
    }
    free(resp.body);
    free(form);
}

int exotel_get_call(CURL *curl, const struct exotel_account *a, const char *sid,
                    struct exotel_call *c)
{
    char *esc = curl_easy_escape(curl, sid, 0);
    char path[160];
    snprintf(path, sizeof path, "Calls/%s.json?details=true", esc ? esc : "");
    curl_free(esc);
    struct httpc_response r;
    request(curl, a, "GET", path, NULL, &r);
    int rc = r.status == 404                                               ? 0
             : r.status == 200 && exotel_parse_call(r.body, r.len, c) == 0 ? 1
                                                                           : -1;
    free(r.body);
    return rc;
}

int exotel_find_calls_page(CURL *curl, const struct exotel_account *a, struct exotel_search *q,
                           struct exotel_call *calls)
{
    char range[96];
    snprintf(range, sizeof range, "gte:%s;lte:%s", q->gte, q->lte);
    char *n = curl_easy_escape(curl, q->numbers, 0), *d = curl_easy_escape(curl, range, 0);
    char *c = q->after[0] ? curl_easy_escape(curl, q->after, 0) : NULL;
    char path[1400];
    int len = snprintf(
        path, sizeof path, "Calls.json?%s=%s&DateCreated=%s&PageSize=%d&SortBy=%s%s%s", q->field,
        n ? n : "", d ? d : "", EXOTEL_PAGE_MAX, "DateCreated:asc", c ? "&After=" : "", c ? c : "");
    bool escaped = n != NULL && d != NULL && (q->after[0] == '\0' || c != NULL);
    curl_free(n);
    curl_free(d);
    curl_free(c);
    if (!escaped || len < 0 || (size_t)len >= sizeof path) {
        return -1;
    }
    struct httpc_response r;
    request(curl, a, "GET", path, NULL, &r);
    struct exotel_page page;
    int got = r.status == 200
                  ? exotel_parse_calls_page(r.body, r.len, calls, EXOTEL_PAGE_MAX, &page)
                  : -1;
    free(r.body);
    if (got < 0 || (page.after[0] != '\0' && strcmp(page.after, q->after) == 0)) {
        return -1; /* unreadable, or the same page again: nothing can be concluded */
    }
    q->pages++;
    snprintf(q->after, sizeof q->after, "%s", page.after);
    q->done = page.after[0] == '\0';
    return got;
}

int exotel_number_dnd(CURL *curl, const struct exotel_account *a, const char *number, bool *dnd)
{
    char *esc = curl_easy_escape(curl, number, 0);
    char path[128];
    snprintf(path, sizeof path, "Numbers/%s.json", esc ? esc : "");
    curl_free(esc);
    struct httpc_response r;
    request(curl, a, "GET", path, NULL, &r);
    int rc = r.status == 200 ? exotel_parse_number(r.body, r.len, dnd) : -1;
    free(r.body);
    return rc;
}
