/*
 * http: the one HTTP server of a leadbus process, over civetweb.
 *
 * Modules add routes ("GET /leads/{id}") between http_create() and
 * http_listen(); every target gets GET /healthz and GET /readyz (which asks
 * each registered readiness check). Unknown paths answer a JSON 404, a known
 * path with the wrong method a JSON 405. Handlers run on civetweb's worker
 * threads and hand writes to their service's store.
 *
 * Memory: http_reply_json() takes ownership of the cJSON it is given. A
 * request's strings live until its handler returns.
 */
#ifndef LEADBUS_HTTP_H
#define LEADBUS_HTTP_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

struct mg_connection;

#define HTTP_MAX_PARAMS 4

struct http_req {
    struct mg_connection *conn;
    const char *method;
    const char *path;
    const char *query;                 /* NULL when absent */
    char params[HTTP_MAX_PARAMS][128]; /* values of the pattern's {placeholders}, in order */
    int nparams;
    int status; /* set by the reply helpers */
    /* Set by the HTTP layer before the handler runs: */
    const struct form_key *form_key; /* the FORM_KEYS key presented in X-API-Key, or NULL */
    const char *cors_origin;         /* a listed Origin on a form route: answers carry CORS */
    bool form_route;
};

typedef void (*http_handler)(struct http_req *req, void *arg);

struct http_opts {
    const char *bind; /* address to listen on, e.g. "0.0.0.0" */
    int port;
    int threads;
};

struct http_server;

int http_create(struct http_server **out);
/* pattern: literal segments and {name} placeholders, e.g. "/leads/{id}". */
int http_route(struct http_server *h, const char *method, const char *pattern, http_handler fn,
               void *arg);
/*
 * A form route: a browser page may call it cross-origin (CORS for the origins
 * CORS_ALLOWED_ORIGINS lists, preflight included) with a form key (FORM_KEYS,
 * req->form_key). Every other route refuses form keys with 403.
 */
int http_route_form(struct http_server *h, const char *method, const char *pattern,
                    http_handler fn, void *arg);
/*
 * /readyz answers 200 while every readiness check passes, 503 otherwise, with
 * {"status":"ready"|"not ready","failing":[names],"degraded":[names]}.
 * A readiness check is what the process needs to do its job (its store
 * commits, its provider accepts the credentials); `name` (copied) appears in
 * "failing" while it fails. A degraded check is what it can work without for
 * a while (a bus peer that is down: events wait in the peer's outbox); it is
 * listed in "degraded" but leaves the status 200, so a missing peer never
 * takes a route out of service. /metrics shows both: leadbus_ready and
 * leadbus_check_ok{check,kind="ready"|"degraded"}. Checks run on HTTP
 * threads and must be cheap.
 */
int http_ready_check(struct http_server *h, const char *name, bool (*fn)(void *arg), void *arg);
int http_degraded_check(struct http_server *h, const char *name, bool (*fn)(void *arg), void *arg);
int http_listen(struct http_server *h, const struct http_opts *opts);
/* Stops accepting, waits for running handlers, frees everything. NULL is fine. */
void http_stop(struct http_server *h);

const char *http_header(struct http_req *req, const char *name);
/* The TCP peer's address ("127.0.0.1"), for limits; behind a proxy see form_guard. */
const char *http_peer(const struct http_req *req);
/* The value of query parameter `name` into buf; returns its length or -1 if absent. */
int http_query(struct http_req *req, const char *name, char *buf, size_t size);

/*
 * Read the whole body (at most max bytes). On a body that is too large, answers
 * 413 itself and returns -1; *body is malloc'd and NUL-terminated on success.
 */
int http_read_body(struct http_req *req, size_t max, char **body, size_t *len);

void http_reply_json(struct http_req *req, int status, cJSON *body);
void http_reply(struct http_req *req, int status, const char *content_type, const char *body,
                size_t len);
/* As http_reply, with extra header lines ("Retry-After: 1\r\n"); extra may be NULL. */
void http_reply_ex(struct http_req *req, int status, const char *content_type, const char *extra,
                   const char *body, size_t len);
/* As http_reply_json, with extra header lines. */
void http_reply_json_ex(struct http_req *req, int status, const char *extra, cJSON *body);
/* {"success":false,"error":{"code":…,"message":…,"fields":…}}; takes ownership of fields (may be
 * NULL). */
void http_reply_error(struct http_req *req, int status, const char *code, const char *message,
                      cJSON *fields);

#endif
