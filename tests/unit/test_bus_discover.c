/* Unit tests for bus_discover: the dns:<name>:<port>[:<port>] spec, the URLs it gives, and a
 * resolution that needs no DNS server (a numeric name and localhost). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "bus_discover.h"

#include <string.h>

static void test_parse(void **state)
{
    (void)state;
    struct bus_discover d;
    char err[160];
    assert_int_equal(bus_discover_parse("dns:leadbus-ingest:7401", &d, err, sizeof err), 0);
    assert_string_equal(d.host, "leadbus-ingest");
    assert_int_equal(d.pub_port, 7401);
    assert_int_equal(d.replay_port, 7402);
    assert_int_equal(bus_discover_parse("dns:leadbus-ingest.leadbus.svc.cluster.local:9000:9100",
                                        &d, err, sizeof err),
                     0);
    assert_string_equal(d.host, "leadbus-ingest.leadbus.svc.cluster.local");
    assert_int_equal(d.pub_port, 9000);
    assert_int_equal(d.replay_port, 9100);
    const char *bad[] = {NULL,
                         "",
                         "leadbus-ingest:7401",
                         "srv:leadbus-ingest:7401",
                         "dns:",
                         "dns:leadbus-ingest",
                         "dns::7401",
                         "dns:leadbus-ingest:",
                         "dns:leadbus-ingest:0",
                         "dns:leadbus-ingest:65536",
                         "dns:leadbus-ingest:65535",
                         "dns:leadbus-ingest:74o1",
                         "dns:leadbus-ingest:7401:7401",
                         "dns:leadbus-ingest:7401:",
                         "dns:leadbus ingest:7401",
                         "dns:a/b:7401",
                         "dns:leadbus-ingest:7401:7402:7403"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(bus_discover_parse(bad[i], &d, err, sizeof err), -1);
        assert_true(err[0] != '\0');
    }
}

static void test_url(void **state)
{
    (void)state;
    struct bus_discover d;
    char err[160], url[128];
    assert_int_equal(bus_discover_parse("dns:ingest:7401", &d, err, sizeof err), 0);
    bus_discover_url(&d, "10.1.2.3", false, url, sizeof url);
    assert_string_equal(url, "tcp://10.1.2.3:7401");
    bus_discover_url(&d, "10.1.2.3", true, url, sizeof url);
    assert_string_equal(url, "tcp://10.1.2.3:7402");
    d.tls = true;
    bus_discover_url(&d, "fd00::1", false, url, sizeof url);
    assert_string_equal(url, "tls+tcp://[fd00::1]:7401");
}

static void test_resolve_numeric(void **state)
{
    (void)state;
    struct bus_discover d;
    char err[160] = "", addrs[BUS_DISCOVER_MAX][BUS_DISCOVER_ADDR_MAX];
    assert_int_equal(bus_discover_parse("dns:127.0.0.9:7401", &d, err, sizeof err), 0);
    assert_int_equal(bus_discover_resolve(&d, addrs, err, sizeof err), 1);
    assert_string_equal(addrs[0], "127.0.0.9");
    assert_true(bus_discover_has(addrs, 1, "127.0.0.9"));
    assert_false(bus_discover_has(addrs, 1, "127.0.0.1"));
    assert_false(bus_discover_has(addrs, 0, "127.0.0.9"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_resolve_numeric),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
