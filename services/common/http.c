/* http: route table, JSON replies and health endpoints over civetweb. */
#include "http.h"
#include "clock.h"
#include "config.h"
#include "form_access.h"
#include "log.h"
#include "metrics.h"

#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTES 64
#define MAX_CHECKS 32

struct route {
    char method[8];
    char pattern[128];
    http_handler fn;
    void *arg;
    const char *target; /* the module that registered it, for its log lines */
    bool form;          /* a form route: form keys allowed, CORS for listed origins */
};

struct check {
    char name[64];
    bool (*fn)(void *);
    void *arg;
    bool degraded; /* listed, but does not fail /readyz */
};

struct http_server {
    struct mg_context *ctx;
    struct form_access access; /* FORM_KEYS, CORS_ALLOWED_ORIGINS */
    struct route routes[MAX_ROUTES];
    int nroutes;
    struct check checks[MAX_CHECKS];
    int nchecks;
};

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

void http_reply(struct http_req *req, int status, const char *content_type, const char *body,
                size_t len)
{
    http_reply_ex(req, status, content_type, NULL, body, len);
}

void http_reply_ex(struct http_req *req, int status, const char *content_type, const char *extra,
                   const char *body, size_t len)
{
    req->status = status;
    /* Head and body leave in one write: two small writes meet Nagle and delayed
     * ACKs and cost 40 ms a request on keep-alive connections. */
    char head[1024], cors[320] = "";
    if (req->cors_origin != NULL) { /* a listed origin on a form route: every answer says so */
        snprintf(cors, sizeof cors, "Access-Control-Allow-Origin: %.256s\r\nVary: Origin\r\n",
                 req->cors_origin);
    } else if (req->form_route) {
        snprintf(cors, sizeof cors, "Vary: Origin\r\n");
    }
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%s%s\r\n",
                     status, reason(status), content_type, len, cors, extra != NULL ? extra : "");
    if (n < 0 || (size_t)n >= sizeof head) {
        return;
    }
    if (strcmp(req->method, "HEAD") == 0) {
        len = 0;
    }
    char stackbuf[4096];
    char *buf = (size_t)n + len <= sizeof stackbuf ? stackbuf : malloc((size_t)n + len);
    if (buf == NULL) {
        mg_write(req->conn, head, (size_t)n);
        mg_write(req->conn, body, len);
        return;
    }
    memcpy(buf, head, (size_t)n);
    if (len > 0) {
        memcpy(buf + n, body, len);
    }
    mg_write(req->conn, buf, (size_t)n + len);
    if (buf != stackbuf) {
        free(buf);
    }
}

void http_reply_json(struct http_req *req, int status, cJSON *body)
{
    http_reply_json_ex(req, status, NULL, body);
}

void http_reply_json_ex(struct http_req *req, int status, const char *extra, cJSON *body)
{
    char *s = body != NULL ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (s == NULL) {
        static const char oom[] =
            "{\"success\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        http_reply(req, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    http_reply_ex(req, status, "application/json", extra, s, strlen(s));
    free(s);
}

void http_reply_error(struct http_req *req, int status, const char *code, const char *message,
                      cJSON *fields)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_CreateObject();
    if (o == NULL || e == NULL) {
        cJSON_Delete(o);
        cJSON_Delete(e);
        cJSON_Delete(fields);
        http_reply_json(req, 500, NULL);
        return;
    }
    cJSON_AddBoolToObject(o, "success", false);
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (fields != NULL) {
        cJSON_AddItemToObject(e, "fields", fields);
    }
    cJSON_AddItemToObject(o, "error", e);
    http_reply_json(req, status, o);
}

const char *http_peer(const struct http_req *req)
{
    return mg_get_request_info(req->conn)->remote_addr;
}

const char *http_header(struct http_req *req, const char *name)
{
    return mg_get_header(req->conn, name);
}

int http_query(struct http_req *req, const char *name, char *buf, size_t size)
{
    if (req->query == NULL) {
        return -1;
    }
    int n = mg_get_var(req->query, strlen(req->query), name, buf, size);
    return n < 0 ? -1 : n;
}

int http_read_body(struct http_req *req, size_t max, char **body, size_t *len)
{
    const struct mg_request_info *ri = mg_get_request_info(req->conn);
    if (ri->content_length > (long long)max) {
        http_reply_error(req, 413, "body_too_large", "request body is larger than the limit", NULL);
        return -1;
    }
    size_t cap = ri->content_length >= 0 ? (size_t)ri->content_length : 4096;
    char *buf = malloc(cap + 1);
    size_t n = 0;
    if (buf == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return -1;
    }
    for (;;) {
        if (n == cap) {
            if (ri->content_length >= 0) {
                break;
            }
            /* Chunked body: grow, but never past the cap. */
            if (cap >= max) {
                char probe;
                if (mg_read(req->conn, &probe, 1) > 0) {
                    free(buf);
                    http_reply_error(req, 413, "body_too_large",
                                     "request body is larger than the limit", NULL);
                    return -1;
                }
                break;
            }
            size_t ncap = cap * 2 > max ? max : cap * 2;
            char *grown = realloc(buf, ncap + 1);
            if (grown == NULL) {
                free(buf);
                http_reply_error(req, 500, "internal", "out of memory", NULL);
                return -1;
            }
            buf = grown;
            cap = ncap;
        }
        int r = mg_read(req->conn, buf + n, cap - n);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
    }
    if (ri->content_length >= 0 && n < (size_t)ri->content_length) {
        free(buf);
        http_reply_error(req, 400, "incomplete_body", "request body ended early", NULL);
        return -1;
    }
    buf[n] = '\0';
    *body = buf;
    *len = n;
    return 0;
}

/* Match "/a/{x}/b" against a path; fills params. */
static bool match(const char *pattern, const char *path, struct http_req *req)
{
    req->nparams = 0;
    const char *p = pattern, *s = path;
    while (*p != '\0') {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            size_t n = strcspn(s, "/");
            if (close == NULL || n == 0 || n >= sizeof req->params[0] ||
                req->nparams == HTTP_MAX_PARAMS) {
                return false;
            }
            memcpy(req->params[req->nparams], s, n);
            req->params[req->nparams][n] = '\0';
            req->nparams++;
            p = close + 1;
            s += n;
        } else if (*p++ != *s++) {
            return false;
        }
    }
    return *s == '\0';
}

/* docs/openapi.json, embedded at build time: the contract of every route. */
extern const unsigned char common_openapi_json[];
extern const unsigned int common_openapi_json_len;

static void openapi(struct http_req *req, void *arg)
{
    (void)arg;
    http_reply(req, 200, "application/json", (const char *)common_openapi_json,
               common_openapi_json_len);
}

static void healthz(struct http_req *req, void *arg)
{
    (void)arg;
    static const char ok[] = "{\"status\":\"ok\"}";
    http_reply(req, 200, "application/json", ok, sizeof ok - 1);
}

static void readyz(struct http_req *req, void *arg)
{
    struct http_server *h = arg;
    cJSON *o = cJSON_CreateObject();
    cJSON *failing = cJSON_CreateArray(), *degraded = cJSON_CreateArray();
    for (int i = 0; i < h->nchecks; i++) {
        if (!h->checks[i].fn(h->checks[i].arg)) {
            cJSON_AddItemToArray(h->checks[i].degraded ? degraded : failing,
                                 cJSON_CreateString(h->checks[i].name));
        }
    }
    bool ready = cJSON_GetArraySize(failing) == 0;
    cJSON_AddStringToObject(o, "status", ready ? "ready" : "not ready");
    cJSON_AddItemToObject(o, "failing", failing);
    cJSON_AddItemToObject(o, "degraded", degraded);
    http_reply_json(req, ready ? 200 : 503, o);
}

/* Before each /metrics render: every check's state, and the process's readiness. */
static void collect_checks(void *arg)
{
    struct http_server *h = arg;
    bool ready = true;
    for (int i = 0; i < h->nchecks; i++) {
        bool ok = h->checks[i].fn(h->checks[i].arg);
        char labels[160], name[96];
        metrics_label(h->checks[i].name, name, sizeof name);
        snprintf(labels, sizeof labels, "check=\"%s\",kind=\"%s\"", name,
                 h->checks[i].degraded ? "degraded" : "ready");
        metrics_gauge_set("leadbus_check_ok",
                          "1 while a /readyz check passes; kind=degraded checks do not fail /readyz",
                          labels, ok ? 1 : 0);
        ready = ready && (ok || h->checks[i].degraded);
    }
    metrics_gauge_set("leadbus_ready", "1 while /readyz answers 200", "", ready ? 1 : 0);
}

static void metrics_endpoint(struct http_req *req, void *arg)
{
    (void)arg;
    size_t len = 0;
    char *text = metrics_render(&len);
    if (text == NULL) {
        http_reply_error(req, 503, "unavailable", "metrics could not be rendered", NULL);
        return;
    }
    http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

/* Requests by route (the pattern, so ids do not explode the label set), method and status. */
static void count_request(const struct http_req *req, const char *route, int64_t start_ms)
{
    char labels[256], method[16];
    metrics_label(req->method, method, sizeof method);
    snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",code=\"%d\"", route, method,
             req->status);
    metrics_counter_add("leadbus_http_requests_total", "HTTP requests answered", labels, 1);
    snprintf(labels, sizeof labels, "route=\"%s\"", route);
    metrics_observe("leadbus_http_request_duration_seconds", "Time to answer an HTTP request",
                    labels, (double)(clock_mono_ms() - start_ms) / 1000.0);
}

/*
 * A CORS preflight for a form route: answered for a listed origin, refused
 * (no Allow-Origin, so the browser stops) for any other. False when the path
 * has no form route: the request goes on as any other.
 */
static bool preflight(struct http_server *h, struct http_req *req)
{
    char methods[64] = "";
    for (int i = 0; i < h->nroutes; i++) {
        struct route *r = &h->routes[i];
        if (r->form && match(r->pattern, req->path, req) &&
            strlen(methods) + strlen(r->method) + 3 < sizeof methods) {
            strcat(methods, r->method);
            strcat(methods, ", ");
        }
    }
    if (methods[0] == '\0') {
        return false;
    }
    req->form_route = true;
    const char *origin = http_header(req, "Origin");
    if (!form_access_origin_allowed(&h->access, origin)) {
        http_reply_error(req, 403, "origin_not_allowed",
                         "this origin is not in CORS_ALLOWED_ORIGINS", NULL);
        return true;
    }
    req->cors_origin = origin;
    strcat(methods, "OPTIONS");
    char extra[512];
    snprintf(extra, sizeof extra,
             "Access-Control-Allow-Methods: %s\r\n"
             "Access-Control-Allow-Headers: Content-Type, X-API-Key, Idempotency-Key\r\n"
             "Access-Control-Max-Age: 600\r\n",
             methods);
    http_reply_ex(req, 204, "text/plain", extra, "", 0);
    return true;
}

/* Before a route's handler: form keys open form routes only; CORS for form routes. */
static bool admit(struct http_server *h, const struct route *r, struct http_req *req)
{
    req->form_key = form_access_key(&h->access, http_header(req, "X-API-Key"));
    req->form_route = r->form;
    if (!r->form) {
        if (req->form_key != NULL) {
            http_reply_error(req, 403, "forbidden",
                             "a form key (FORM_KEYS) can only POST /leads; use an operator key",
                             NULL);
            return false;
        }
        return true;
    }
    const char *origin = http_header(req, "Origin");
    if (form_access_origin_allowed(&h->access, origin)) {
        req->cors_origin = origin;
    }
    return true;
}

static int dispatch(struct mg_connection *conn, void *cbdata)
{
    struct http_server *h = cbdata;
    int64_t start_ms = clock_mono_ms();
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct http_req req = {.conn = conn,
                           .method = ri->request_method,
                           .path = ri->local_uri,
                           .query = ri->query_string,
                           .status = 0};
    bool path_known = false;
    if (strcmp(req.method, "OPTIONS") == 0 && preflight(h, &req)) {
        count_request(&req, "preflight", start_ms);
        return req.status;
    }
    for (int i = 0; i < h->nroutes; i++) {
        struct route *r = &h->routes[i];
        if (!match(r->pattern, req.path, &req)) {
            continue;
        }
        path_known = true;
        bool head_as_get = strcmp(req.method, "HEAD") == 0 && strcmp(r->method, "GET") == 0;
        if (strcmp(r->method, req.method) == 0 || head_as_get) {
            log_set_target(r->target); /* civetweb's threads serve every module's routes */
            if (!admit(h, r, &req)) {
                count_request(&req, r->pattern, start_ms);
                return req.status;
            }
            r->fn(&req, r->arg);
            if (req.status == 0) {
                http_reply_error(&req, 500, "internal", "handler sent no answer", NULL);
            }
            count_request(&req, r->pattern, start_ms);
            return req.status;
        }
    }
    if (path_known) {
        http_reply_error(&req, 405, "method_not_allowed", "method not allowed for this path", NULL);
    } else {
        http_reply_error(&req, 404, "not_found", "no such route", NULL);
    }
    count_request(&req, "unmatched", start_ms);
    return req.status;
}

int http_create(struct http_server **out)
{
    struct http_server *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return -1;
    }
    http_route(h, "GET", "/healthz", healthz, h);
    http_route(h, "GET", "/readyz", readyz, h);
    http_route(h, "GET", "/metrics", metrics_endpoint, h);
    http_route(h, "GET", "/openapi.json", openapi, h);
    metrics_collector_add(collect_checks, h);
    *out = h;
    return 0;
}

int http_route_form(struct http_server *h, const char *method, const char *pattern,
                    http_handler fn, void *arg)
{
    int rc = http_route(h, method, pattern, fn, arg);
    if (rc == 0) {
        h->routes[h->nroutes - 1].form = true;
    }
    return rc;
}

int http_route(struct http_server *h, const char *method, const char *pattern, http_handler fn,
               void *arg)
{
    if (h->nroutes == MAX_ROUTES || strlen(pattern) >= sizeof h->routes[0].pattern) {
        return -1;
    }
    struct route *r = &h->routes[h->nroutes++];
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->pattern, sizeof r->pattern, "%s", pattern);
    r->fn = fn;
    r->arg = arg;
    r->target = log_target();
    r->form = false;
    log_debug("route", LOG_FIELDS(LOG_S("method", method), LOG_S("pattern", pattern)));
    return 0;
}

static int add_check(struct http_server *h, const char *name, bool (*fn)(void *), void *arg,
                     bool degraded)
{
    if (h->nchecks == MAX_CHECKS) {
        return -1;
    }
    struct check *c = &h->checks[h->nchecks++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->fn = fn;
    c->arg = arg;
    c->degraded = degraded;
    return 0;
}

int http_ready_check(struct http_server *h, const char *name, bool (*fn)(void *arg), void *arg)
{
    return add_check(h, name, fn, arg, false);
}

int http_degraded_check(struct http_server *h, const char *name, bool (*fn)(void *arg), void *arg)
{
    return add_check(h, name, fn, arg, true);
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn("HTTP server", LOG_FIELDS(LOG_S("message", message)));
    return 1;
}

int http_listen(struct http_server *h, const struct http_opts *o)
{
    char ports[96], threads[16];
    snprintf(ports, sizeof ports, "%s:%d", o->bind, o->port);
    snprintf(threads, sizeof threads, "%d", o->threads > 0 ? o->threads : 64);
    char err[CONFIG_ERR_MAX];
    if (form_access_parse(config_raw("FORM_KEYS"), config_raw("CORS_ALLOWED_ORIGINS"), &h->access,
                          err) != 0) {
        log_error("Invalid setting", LOG_FIELDS(LOG_S("error", err)));
        return -1;
    }
    const char *options[] = {"listening_ports",
                             ports,
                             "num_threads",
                             threads,
                             "enable_keep_alive",
                             "yes",
                             "request_timeout_ms",
                             "10000",
                             "keep_alive_timeout_ms",
                             "5000",
                             /* no blanket CORS: preflight() answers for listed origins only */
                             "access_control_allow_origin",
                             "",
                             NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = log_message;
    mg_init_library(0);
    h->ctx = mg_start(&cb, h, options);
    if (h->ctx == NULL) {
        log_error("Cannot start HTTP server", LOG_FIELDS(LOG_S("listen", ports)));
        return -1;
    }
    mg_set_request_handler(h->ctx, "/", dispatch, h);
    return 0;
}

void http_stop(struct http_server *h)
{
    if (h == NULL) {
        return;
    }
    metrics_collector_remove(collect_checks, h);
    if (h->ctx != NULL) {
        mg_stop(h->ctx);
        mg_exit_library();
    }
    free(h);
}
