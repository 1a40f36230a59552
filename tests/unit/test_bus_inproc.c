/*
 * The bus inside one process over inproc:// (as under --target=all): every
 * event applied once and in order, and a "from now" subscriber that starts at
 * the stream's end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "bus_pub.h"
#include "bus_sub.h"
#include "clock.h"
#include "outbox.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 5000

static char dir[64];

struct seen {
    atomic_int n;
    uint64_t last;
    int out_of_order;
    uint64_t first;
};

static int record(sqlite3 *db, const struct proto_event *ev, void *arg)
{
    (void)db;
    struct seen *s = arg;
    if (s->first == 0) {
        s->first = ev->seq;
    }
    if (ev->seq != s->last + 1 && s->last != 0) {
        s->out_of_order++;
    }
    s->last = ev->seq;
    atomic_fetch_add(&s->n, 1);
    return 0;
}

struct publish {
    struct bus_pub *pub;
    int n;
};

static int publish_job(sqlite3 *db, void *arg)
{
    struct publish *p = arg;
    struct proto_lead_synced ev;
    memset(&ev, 0, sizeof ev);
    strcpy(ev.lead_id, "L");
    strcpy(ev.zoho_id, "Z");
    strcpy(ev.action, "created");
    for (int i = 0; i < p->n; i++) {
        if (bus_pub_append(p->pub, db, PROTO_LEAD_SYNCED, &ev, NULL) != 0) {
            return -1;
        }
    }
    return 0;
}

static void wait_count(struct seen *s, int want)
{
    int64_t deadline = clock_mono_ms() + 30000;
    while (atomic_load(&s->n) < want && clock_mono_ms() < deadline) {
        usleep(5000);
    }
    assert_int_equal(atomic_load(&s->n), want);
}

static struct store *open_store(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    struct store_opts o = {.path = path, .sync = STORE_SYNC_NORMAL};
    struct store *s;
    assert_int_equal(store_open(&o, &s), 0);
    return s;
}

static void test_inproc(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/leadbus-inproc-XXXXXX");
    assert_non_null(mkdtemp(dir));
    struct store *ps = open_store("pub"), *ss = open_store("sub");
    struct bus_pub_opts po = {.name = "zoho-sync",
                              .pub_url = "inproc://t-pub",
                              .replay_url = "inproc://t-replay",
                              .store = ps};
    struct bus_pub *pub;
    assert_int_equal(bus_pub_open(&po, &pub), 0);

    struct seen all = {0}, late = {0};
    struct bus_source src = {"inproc://t-pub", "inproc://t-replay"};
    const char *topics[] = {"lead."};
    struct bus_sub_opts so = {.name = "all",
                              .store = ss,
                              .sources = &src,
                              .nsources = 1,
                              .topics = topics,
                              .ntopics = 1,
                              .handler = record,
                              .arg = &all};
    struct bus_sub *sub;
    assert_int_equal(bus_sub_open(&so, &sub), 0);

    struct publish p = {pub, 50};
    for (int i = 0; i < N / 50; i++) {
        assert_int_equal(store_run(ps, publish_job, &p), 0);
    }
    wait_count(&all, N);
    assert_int_equal(all.out_of_order, 0);
    assert_int_equal(all.first, 1);
    assert_int_equal(all.last, N);

    /* A subscriber starting "from now" sees only what comes after it is ready. */
    struct bus_sub_opts lo = so;
    lo.name = "late";
    lo.store = NULL;
    lo.from_now = true;
    lo.arg = &late;
    struct bus_sub *lsub;
    assert_int_equal(bus_sub_open(&lo, &lsub), 0);
    int64_t deadline = clock_mono_ms() + 10000;
    while (!bus_sub_ready(lsub) && clock_mono_ms() < deadline) {
        usleep(5000);
    }
    assert_true(bus_sub_ready(lsub));
    p.n = 100;
    assert_int_equal(store_run(ps, publish_job, &p), 0);
    wait_count(&late, 100);
    wait_count(&all, N + 100);
    assert_int_equal(late.first, N + 1);
    assert_int_equal(late.last, N + 100);

    bus_sub_close(lsub);
    bus_sub_close(sub);
    bus_pub_close(pub);
    store_close(ss);
    store_close(ps);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_inproc)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
