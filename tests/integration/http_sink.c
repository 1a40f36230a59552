/*
 * http_sink: a loopback HTTP server for tests that records every request it
 * receives as one JSON line {"method","uri","content_type","body"} in a file,
 * and answers 200. It stands in for webhooks' receivers (StatusCallbacks).
 * A request whose query has hold_ms=N (at most 10000) is recorded at once and
 * answered N ms later: a slow receiver.
 *   http_sink PORT OUTFILE      runs until SIGTERM
 */
#include <civetweb.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static FILE *out;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int record(struct mg_connection *conn, void *arg)
{
    (void)arg;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    enum { BODY_MAX = 65536 };
    char *body = malloc(BODY_MAX); /* not on the stack: civetweb's threads have small ones */
    size_t n = 0;
    int r;
    if (body == NULL) {
        return 500;
    }
    while (n < BODY_MAX - 1 && (r = mg_read(conn, body + n, BODY_MAX - 1 - n)) > 0) {
        n += (size_t)r;
    }
    body[n] = '\0';
    const char *ct = mg_get_header(conn, "Content-Type");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", ri->request_method);
    cJSON_AddStringToObject(o, "uri", ri->local_uri);
    cJSON_AddStringToObject(o, "query", ri->query_string ? ri->query_string : "");
    cJSON_AddStringToObject(o, "content_type", ct ? ct : "");
    cJSON_AddStringToObject(o, "body", body);
    free(body);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    pthread_mutex_lock(&lock);
    fprintf(out, "%s\n", line);
    fflush(out);
    pthread_mutex_unlock(&lock);
    free(line);
    const char *hold = ri->query_string ? strstr(ri->query_string, "hold_ms=") : NULL;
    long ms = hold != NULL ? strtol(hold + 8, NULL, 10) : 0;
    if (ms > 0 && ms <= 10000) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    mg_printf(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok");
    return 200;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: http_sink PORT OUTFILE\n");
        return 2;
    }
    out = fopen(argv[2], "a");
    if (out == NULL) {
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    char ports[32];
    snprintf(ports, sizeof ports, "127.0.0.1:%s", argv[1]);
    const char *opts[] = {"listening_ports", ports, "num_threads", "8", NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    struct mg_context *ctx = mg_start(&cb, NULL, opts);
    if (ctx == NULL) {
        return 1;
    }
    mg_set_request_handler(ctx, "/", record, NULL);
    int sig;
    sigwait(&set, &sig);
    mg_stop(ctx);
    fclose(out);
    return 0;
}
