/* tap: print bus events as JSON lines. */
#include "tap.h"
#include "app.h"
#include "bus_sub.h"
#include "log.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ENDPOINTS 16

static atomic_long printed;

static int print_event(sqlite3 *db, const struct proto_event *ev, void *arg)
{
    (void)db;
    (void)arg;
    char *data = proto_data_to_json(ev->topic, &ev->data);
    /* The epoch as hex text: JSON numbers lose precision above 2^53. */
    printf("{\"src\":\"%s\",\"topic\":\"%s\",\"seq\":%llu,\"id\":\"%s\",\"ts\":%lld,"
           "\"epoch\":\"%016llx\",\"data\":%s}\n",
           ev->src, proto_topic_name(ev->topic), (unsigned long long)ev->seq, ev->id,
           (long long)ev->ts, (unsigned long long)ev->epoch, data != NULL ? data : "null");
    fflush(stdout);
    free(data);
    atomic_fetch_add(&printed, 1);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: leadbus tap [--topic=PREFIX]... [--from=start|now] [--count=N] ENDPOINT...\n"
            "  ENDPOINT is a publisher target name (ingest, zoho-sync, call-scheduler, dialer),\n"
            "  resolved through BUS_<NAME>_PUB/BUS_<NAME>_REPLAY, or PUB_URL[,REPLAY_URL].\n");
}

int tap_main(int argc, char **argv)
{
    const char *topics[16];
    int ntopics = 0;
    bool from_now = false;
    long count = 0;
    struct bus_source sources[MAX_ENDPOINTS];
    static char urls[MAX_ENDPOINTS][2][APP_URL_MAX];
    int nsources = 0;
    struct app app = {.all_in_one = false};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--topic=", 8) == 0 && ntopics < 16) {
            topics[ntopics++] = a + 8;
        } else if (strcmp(a, "--from=start") == 0) {
            from_now = false;
        } else if (strcmp(a, "--from=now") == 0) {
            from_now = true;
        } else if (strncmp(a, "--count=", 8) == 0) {
            count = strtol(a + 8, NULL, 10);
        } else if (a[0] == '-' || nsources == MAX_ENDPOINTS) {
            usage();
            return 2;
        } else if (strstr(a, "://") == NULL) {
            if (app_bus_endpoints(&app, a, urls[nsources][0], urls[nsources][1]) != 0) {
                fprintf(stderr, "tap: unknown publisher '%s'\n", a);
                return 2;
            }
            sources[nsources] =
                (struct bus_source){urls[nsources][0], urls[nsources][1], app_bus_name(a)};
            nsources++;
        } else {
            snprintf(urls[nsources][0], APP_URL_MAX, "%s", a);
            char *comma = strchr(urls[nsources][0], ',');
            if (comma != NULL) {
                *comma = '\0';
                snprintf(urls[nsources][1], APP_URL_MAX, "%s", comma + 1);
            }
            sources[nsources] =
                (struct bus_source){urls[nsources][0], comma != NULL ? urls[nsources][1] : NULL};
            nsources++;
        }
    }
    if (nsources == 0) {
        usage();
        return 2;
    }
    sigset_t set;
    app_block_stop_signals(&set);

    struct bus_sub_opts o = {.name = "tap",
                             .store = NULL,
                             .sources = sources,
                             .nsources = nsources,
                             .topics = topics,
                             .ntopics = ntopics,
                             .from_now = from_now,
                             .handler = print_event};
    struct bus_sub *sub;
    if (bus_sub_open(&o, &sub) != 0) {
        fprintf(stderr, "tap: cannot subscribe\n");
        return 1;
    }
    struct timespec poll = {0, 50 * 1000 * 1000};
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &poll);
        if (sig == SIGINT || sig == SIGTERM || (count > 0 && atomic_load(&printed) >= count)) {
            break;
        }
    }
    bus_sub_close(sub);
    return 0;
}
