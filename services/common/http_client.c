/* http_client: one request over libcurl with the settings every upstream call needs. */
#include "http_client.h"
#include "clock.h"
#include "metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static _Atomic(httpc_observer) observer;

void httpc_observe(httpc_observer fn)
{
    atomic_store(&observer, fn);
}

struct buf {
    char *p;
    size_t len;
};

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t add = size * n;
    if (b->len + add > HTTPC_BODY_MAX) {
        return 0; /* an answer this large is not an API's */
    }
    char *grown = realloc(b->p, b->len + add + 1);
    if (grown == NULL) {
        return 0;
    }
    memcpy(grown + b->len, data, add);
    b->p = grown;
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

static size_t header(char *data, size_t size, size_t n, void *arg)
{
    struct httpc_response *r = arg;
    size_t len = size * n;
    if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
        long secs = strtol(data + 12, NULL, 10);
        if (secs >= 0 && secs < 86400) {
            r->retry_after_ms = secs * 1000;
        }
    }
    return len;
}

int httpc_perform(CURL *curl, const struct httpc_request *req, struct httpc_response *r)
{
    struct buf b = {NULL, 0};
    memset(r, 0, sizeof *r);
    r->retry_after_ms = -1;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    if (req->body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
    }
    if (strcmp(req->method, "POST") != 0 && strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
    }
    if (req->user != NULL) {
        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(curl, CURLOPT_USERNAME, req->user);
        curl_easy_setopt(curl, CURLOPT_PASSWORD, req->password ? req->password : "");
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, req->headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     req->timeout_ms < 10000 ? req->timeout_ms : 10000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    int64_t start = clock_mono_ms();
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    } else {
        if (r->error[0] == '\0') {
            snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(rc));
        }
        /* Failing to resolve or connect means nothing was sent; anything later may have been. */
        r->maybe_sent = rc != CURLE_COULDNT_RESOLVE_HOST && rc != CURLE_COULDNT_RESOLVE_PROXY &&
                        rc != CURLE_COULDNT_CONNECT && rc != CURLE_UNSUPPORTED_PROTOCOL &&
                        rc != CURLE_URL_MALFORMAT && rc != CURLE_SSL_CONNECT_ERROR;
    }
    r->body = b.p != NULL ? b.p : strdup("");
    r->len = b.len;
    char labels[96], result[16];
    if (r->status == 0) {
        snprintf(result, sizeof result, "error");
    } else if (r->status == 429) {
        snprintf(result, sizeof result, "429");
    } else {
        snprintf(result, sizeof result, "%ldxx", r->status / 100 % 10);
    }
    const char *api = req->api ? req->api : "other";
    httpc_observer obs = atomic_load(&observer);
    if (obs != NULL) {
        obs(api, req->url, r->status);
    }
    snprintf(labels, sizeof labels, "api=\"%s\",result=\"%s\"", api, result);
    metrics_counter_add("leadbus_upstream_requests_total",
                        "Requests to Exotel and Zoho by result (HTTP status class, 429, error)",
                        labels, 1);
    snprintf(labels, sizeof labels, "api=\"%s\"", api);
    metrics_observe("leadbus_upstream_request_duration_seconds",
                    "Time for Exotel and Zoho to answer", labels,
                    (double)(clock_mono_ms() - start) / 1000.0);
    return rc == CURLE_OK ? 0 : -1;
}
