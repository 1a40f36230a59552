/* Unit tests for bus_tls: which bus URLs are local, loopback, plain or TLS, and which are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "bus_tls.h"

#include <string.h>

static void test_kind(void **state)
{
    (void)state;
    assert_int_equal(bus_url_kind("inproc://ingest-pub"), BUS_URL_LOCAL);
    assert_int_equal(bus_url_kind("ipc:///tmp/p.ipc"), BUS_URL_LOCAL);
    assert_int_equal(bus_url_kind("tcp://127.0.0.1:7401"), BUS_URL_LOOPBACK);
    assert_int_equal(bus_url_kind("tcp://127.9.8.7:7401"), BUS_URL_LOOPBACK);
    assert_int_equal(bus_url_kind("tcp://localhost:7401"), BUS_URL_LOOPBACK);
    assert_int_equal(bus_url_kind("tcp://[::1]:7401"), BUS_URL_LOOPBACK);
    assert_int_equal(bus_url_kind("tcp4://127.0.0.1:7401"), BUS_URL_LOOPBACK);
    assert_int_equal(bus_url_kind("tcp://0.0.0.0:7401"), BUS_URL_PLAIN);
    assert_int_equal(bus_url_kind("tcp://*:7401"), BUS_URL_PLAIN);
    assert_int_equal(bus_url_kind("tcp://:7401"), BUS_URL_PLAIN);
    assert_int_equal(bus_url_kind("tcp://128.0.0.1:7401"), BUS_URL_PLAIN);
    assert_int_equal(bus_url_kind("tcp://localhost.evil.example:7401"), BUS_URL_PLAIN);
    assert_int_equal(bus_url_kind("tcp://leadbus-dialer:7431"), BUS_URL_PLAIN);
    assert_int_equal(bus_url_kind("ws://10.0.0.1:80/bus"), BUS_URL_PLAIN);
    assert_int_equal(bus_url_kind("tls+tcp://leadbus-dialer:7431"), BUS_URL_TLS);
    assert_int_equal(bus_url_kind("TLS+TCP://127.0.0.1:7431"), BUS_URL_TLS);
    assert_int_equal(bus_url_kind("wss://bus.example.com/x"), BUS_URL_TLS);
    assert_int_equal(bus_url_kind("zt://abc"), BUS_URL_OTHER);
}

static void test_check(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(bus_url_check("tcp://127.0.0.1:7401", false, false, err, sizeof err), 0);
    assert_int_equal(bus_url_check("ipc:///x", false, false, err, sizeof err), 0);
    assert_int_equal(bus_url_check("tcp://0.0.0.0:7401", false, true, err, sizeof err), -1);
    assert_non_null(strstr(err, "BUS_INSECURE=true"));
    assert_int_equal(bus_url_check("tcp://0.0.0.0:7401", true, false, err, sizeof err), 0);
    assert_int_equal(bus_url_check("tls+tcp://0.0.0.0:7401", false, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "BUS_TLS_CA"));
    assert_int_equal(bus_url_check("tls+tcp://0.0.0.0:7401", false, true, err, sizeof err), 0);
}

static void test_setup_refusals(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(bus_tls_setup(NULL, NULL, NULL, false, err, sizeof err), 0);
    assert_false(bus_tls_enabled());
    assert_int_equal(bus_tls_setup("/nonexistent/ca.crt", NULL, NULL, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "BUS_TLS_CERT"));
    assert_int_equal(bus_tls_setup("/nonexistent/ca.crt", "/nonexistent/c.crt",
                                   "/nonexistent/c.key", false, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "BUS_TLS_CA: cannot read"));
    assert_false(bus_tls_enabled());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_setup_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
