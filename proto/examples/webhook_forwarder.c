/*
 * webhook_forwarder: an example of adding a subscriber to leadbus in C. It
 * POSTs every lead.created to WEBHOOK_URL as JSON, retrying until the
 * receiver answers 2xx. No publisher knows it exists.
 *
 *   BUS_INGEST_PUB=tcp://… BUS_INGEST_REPLAY=tcp://… WEBHOOK_URL=http://… \
 *   WEBHOOK_DB=./forwarder.db webhook_forwarder
 *
 * How it stays reliable with little code: bus_sub applies each event exactly
 * once, in order, and its handler runs inside the transaction that advances
 * the cursor, so queueing the delivery in the same SQLite database loses
 * nothing across crashes. Delivery to the webhook is at least once (a crash
 * after the POST and before recording it sends it again), so each POST
 * carries `Idempotency-Key: <leadId>` for the receiver to drop repeats.
 *
 * Stream identity (proto/README.md, "Epochs"): bus_sub stores each
 * publisher's epoch with the cursors. If ingest's store is replaced, the new
 * stream is applied from seq 1 instead of being dropped as duplicates, and
 * if it was restored from an old copy, events already seen come again. So
 * the handler must be idempotent per entity, not per seq: deliveries are
 * keyed by lead id (INSERT OR IGNORE). Two live publishers with one name are
 * refused with an ERROR line; this program also exits non-zero after
 * CONFLICT_EXIT_S seconds of it, so a supervisor shows the problem.
 */
#include "bus_sub.h"
#include "clock.h"
#include "http_client.h"
#include "log.h"
#include "store.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stopping;

#define CONFLICT_EXIT_S 60

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static const char schema[] = "CREATE TABLE IF NOT EXISTS deliveries("
                             "  lead_id TEXT PRIMARY KEY, body TEXT NOT NULL, tries INTEGER NOT "
                             "NULL DEFAULT 0, next_ms INTEGER NOT NULL DEFAULT 0, done INTEGER NOT "
                             "NULL DEFAULT 0);";

/* Runs in the subscriber's transaction: the delivery is queued exactly when the event is applied.
 */
static int on_event(sqlite3 *db, const struct proto_event *ev, void *arg)
{
    (void)arg;
    if (ev->topic != PROTO_LEAD_CREATED) {
        return 0;
    }
    char *body = proto_data_to_json(ev->topic, &ev->data);
    sqlite3_stmt *st;
    int rc = SQLITE_ERROR;
    if (body != NULL && sqlite3_prepare_v2(db,
                                           "INSERT OR IGNORE INTO deliveries(lead_id, body)"
                                           " VALUES(?1, ?2)",
                                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, ev->data.lead_created.lead_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, body, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    free(body);
    return rc == SQLITE_DONE ? 0 : -1;
}

struct delivery {
    char lead_id[40];
    char *body;
    int tries;
    int sent; /* out: 1 delivered */
};

static int next_job(sqlite3 *db, void *arg)
{
    struct delivery *d = arg;
    sqlite3_stmt *st;
    d->body = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT lead_id, body, tries FROM deliveries WHERE done = 0"
                           " AND next_ms <= ?1 ORDER BY rowid LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, clock_now_ms());
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, d->lead_id, sizeof d->lead_id);
        d->body = strdup((const char *)sqlite3_column_text(st, 1));
        d->tries = sqlite3_column_int(st, 2);
    }
    sqlite3_finalize(st);
    return 0;
}

static int record_job(sqlite3 *db, void *arg)
{
    struct delivery *d = arg;
    int64_t backoff = 500;
    for (int i = 0; i < d->tries && backoff < 60000; i++) {
        backoff *= 2; /* 0.5 s, 1 s, 2 s … up to a minute */
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE deliveries SET done = ?2, tries = tries + 1, next_ms = ?3"
                           " WHERE lead_id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, d->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, d->sent);
    sqlite3_bind_int64(st, 3, clock_now_ms() + (backoff < 60000 ? backoff : 60000));
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int deliver(CURL *curl, const char *url, struct delivery *d)
{
    char idem[64];
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", d->lead_id);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, idem);
    struct httpc_request req = {.api = "webhook",
                                .method = "POST",
                                .url = url,
                                .headers = h,
                                .body = d->body,
                                .timeout_ms = 5000};
    struct httpc_response r;
    httpc_perform(curl, &req, &r);
    curl_slist_free_all(h);
    free(r.body);
    d->sent = r.status >= 200 && r.status < 300;
    if (!d->sent) {
        log_warn("Webhook refused a lead; will retry",
                 LOG_FIELDS(LOG_S("leadId", d->lead_id), LOG_I("httpStatus", r.status)));
    }
    return d->sent;
}

int main(void)
{
    const char *url = getenv("WEBHOOK_URL");
    const char *pub = getenv("BUS_INGEST_PUB"), *replay = getenv("BUS_INGEST_REPLAY");
    const char *path = getenv("WEBHOOK_DB") ? getenv("WEBHOOK_DB") : "forwarder.db";
    if (url == NULL || pub == NULL || replay == NULL) {
        fprintf(stderr,
                "webhook_forwarder: set WEBHOOK_URL, BUS_INGEST_PUB and BUS_INGEST_REPLAY\n");
        return 2;
    }
    log_init(LOG_INFO, LOG_TEXT);
    log_set_target("webhook-forwarder");
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    struct store *store;
    struct store_opts so = {.path = path, .schema = schema, .sync = STORE_SYNC_FULL};
    if (store_open(&so, &store) != 0) {
        return 1;
    }
    struct bus_source src = {pub, replay};
    const char *topics[] = {"lead.created"};
    struct bus_sub_opts o = {.name = "webhook-forwarder",
                             .store = store,
                             .sources = &src,
                             .nsources = 1,
                             .topics = topics,
                             .ntopics = 1,
                             .handler = on_event};
    struct bus_sub *sub;
    CURL *curl = curl_easy_init();
    if (curl == NULL || bus_sub_open(&o, &sub) != 0) {
        store_close(store);
        return 1;
    }
    log_info("Forwarding lead.created", NULL);
    int64_t conflict_since = 0;
    int rc = 0;
    while (!stopping) {
        /* Two publishers named alike: bus_sub refuses one and logs it; after a minute, give up. */
        int64_t now = clock_mono_ms();
        if (bus_sub_streams_ok(sub)) {
            conflict_since = 0;
        } else if (conflict_since == 0) {
            conflict_since = now;
        }
        if (conflict_since != 0 && now - conflict_since > CONFLICT_EXIT_S * 1000) {
            log_error("Two live publishers share a stream name; rename one (BUS_INGEST_NAME)",
                      NULL);
            rc = 3;
            break;
        }
        struct delivery d;
        if (store_run(store, next_job, &d) != 0 || d.body == NULL) {
            struct timespec ts = {0, 100 * 1000 * 1000}; /* nothing due: look again shortly */
            nanosleep(&ts, NULL);
            continue;
        }
        if (deliver(curl, url, &d)) {
            log_info("Lead forwarded", LOG_FIELDS(LOG_S("leadId", d.lead_id)));
        }
        store_run(store, record_job, &d);
        free(d.body);
    }
    bus_sub_close(sub);
    curl_easy_cleanup(curl);
    store_close(store);
    return rc;
}
