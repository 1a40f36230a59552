/*
 * http_client: one outgoing HTTP request over libcurl, for the services that
 * talk to Exotel and Zoho. The caller owns the CURL handle (one per thread,
 * reused so connections stay open); this module resets it per request and
 * keeps nothing.
 *
 * Memory: httpc_perform() fills a httpc_response whose body is malloc'd and
 * NUL-terminated (an empty string when there was none); the caller frees it.
 */
#ifndef LEADBUS_HTTP_CLIENT_H
#define LEADBUS_HTTP_CLIENT_H

#include <curl/curl.h>
#include <stdint.h>
#include <stddef.h>

#define HTTPC_BODY_MAX (8 * 1024 * 1024)

struct httpc_request {
    const char *api;    /* "exotel", "zoho": the label of its metrics */
    const char *method; /* "GET", "POST", "PUT" */
    const char *url;
    const struct curl_slist *headers; /* may be NULL */
    const char *body;                 /* NULL: no body */
    const char *user, *password;      /* Basic auth when user is set */
    long timeout_ms;
};

struct httpc_response {
    long status; /* HTTP status; 0 on a transport error */
    char *body;
    size_t len;
    int64_t retry_after_ms; /* from Retry-After (seconds), or -1 */
    /* True when the request may have reached the server: the transport failed
     * after connecting (a timeout or a cut connection), so its effect is unknown. */
    int maybe_sent;
    char error[CURL_ERROR_SIZE];
};

/*
 * Called after every request with its api label, URL and status (0 on a
 * transport error): main hands answers to upstream_observe() this way, so a
 * refused credential shows in /readyz. Set once at start.
 */
typedef void (*httpc_observer)(const char *api, const char *url, long status);
void httpc_observe(httpc_observer fn);

/* Returns 0 when an HTTP answer arrived (any status), -1 on a transport error. */
int httpc_perform(CURL *curl, const struct httpc_request *req, struct httpc_response *r);

#endif
