/*
 * bus_tls: the one place that opens bus endpoints, and the bus's transport security.
 *
 * bus_endpoint_listen() and bus_endpoint_dial() replace nng_listen()/nng_dial() for every bus
 * socket (PUB, SUB, replay REQ/REP). For a `tls+tcp://` URL (also tls+tcp4/6, wss) the endpoint
 * gets its own TLS configuration from the material given to bus_tls_setup():
 *  - a listener (publisher) presents its certificate and requires a client certificate issued
 *    by the CA (mutual authentication: no certificate, no events, no replay);
 *  - a dialer (subscriber) presents its certificate and verifies the publisher's against the CA
 *    for the publisher's stream name (SAN/CN = e.g. `ingest-0`, `zoho-sync`): a process listening
 *    at the address without that certificate is refused.
 * Plain `tcp://` (and ws://) endpoints off loopback are refused unless bus_tls_setup() was told
 * `insecure` (BUS_INSECURE=true); inproc:// and ipc:// never leave the host and are always fine.
 *
 * TLS handshakes that fail are retried by nng in the background without telling anyone, so a
 * watcher thread (started with the first TLS endpoint) reads nng's per-endpoint statistics every
 * second and turns refused peers into a WARN (first one, then at most one per 30 s per endpoint)
 * and leadbus_bus_tls_refused_total{side,peer}.
 * The same watcher replaces a TLS dialer that nng 1.5.2 left stuck after a connection lost
 * mid-negotiation (no pipe, no attempt for BUS_DIAL_STALL_MS): a WARN and
 * leadbus_bus_dial_restarts_total{peer} (bus_tls.c, "Stuck dialers").
 *
 * A program that never calls bus_tls_setup() (an outside subscriber such as
 * proto/examples/webhook_forwarder.c) reads BUS_TLS_CA, BUS_TLS_CERT, BUS_TLS_KEY and BUS_INSECURE
 * from its environment before its first endpoint opens.
 *
 * Memory: bus_tls_setup() copies the PEM files into process-wide buffers, kept until
 * bus_tls_cleanup() (which wipes the key). Each endpoint's nng_tls_config is held by nng.
 * Threads: call bus_tls_setup() once, before any endpoint opens and before other threads use the
 * bus; the endpoint functions are then safe from any thread (the watcher's list has a lock).
 */
#ifndef LEADBUS_BUS_TLS_H
#define LEADBUS_BUS_TLS_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Load the CA, certificate and key (PEM file paths; all NULL: no TLS) and remember `insecure`.
 * Returns -1 with one line in err naming what is wrong (unreadable file, a PEM nng refuses).
 */
int bus_tls_setup(const char *ca_path, const char *cert_path, const char *key_path, bool insecure,
                  char *err, size_t errlen);
bool bus_tls_enabled(void);
void bus_tls_cleanup(void);

/* A TLS dialer with no pipe whose attempts have not moved for this long is stuck and replaced
 * (nng's negotiation timeout is 10 s: a live attempt moves within it). */
#define BUS_DIAL_STALL_MS 15000

enum bus_url_kind {
    BUS_URL_LOCAL,    /* inproc://, ipc://, abstract:// */
    BUS_URL_LOOPBACK, /* plain tcp:// or ws:// to 127.0.0.0/8, ::1 or localhost */
    BUS_URL_PLAIN,    /* plain tcp:// or ws:// anywhere else */
    BUS_URL_TLS,      /* tls+tcp://, wss:// */
    BUS_URL_OTHER,    /* a scheme nng will judge */
};
enum bus_url_kind bus_url_kind(const char *url);

/*
 * Whether `url` may be used as a bus endpoint: 0, or -1 with one line in err (plain off
 * loopback without `insecure`; TLS without material when `have_tls` is false).
 */
int bus_url_check(const char *url, bool insecure, bool have_tls, char *err, size_t errlen);

/* nng_listen(s, url, NULL, 0), with TLS and the check above. Returns an nng error code. */
int bus_endpoint_listen(nng_socket s, const char *url);
/*
 * nng_dial(s, url, NULL, flags), with TLS verifying the server's certificate for `peer_name`
 * (NULL: only that the CA issued it, with a WARN). Returns an nng error code.
 */
int bus_endpoint_dial(nng_socket s, const char *url, const char *peer_name, int flags);
/* The same, giving the dialer in *out (to close it alone: a discovered publisher that left). */
int bus_endpoint_dial_get(nng_socket s, const char *url, const char *peer_name, int flags,
                          nng_dialer *out);
/*
 * Close a dialer from bus_endpoint_dial_get(). Use this, not nng_dialer_close(): a TLS dialer
 * that nng 1.5.2 left stuck (a connection lost mid-negotiation) is replaced by the watcher after
 * BUS_DIAL_STALL_MS without progress, and this closes whichever dialer is current.
 */
int bus_endpoint_dialer_close(nng_dialer d);
/*
 * The publisher name a TLS dialer verified its server's certificate for, into name: 0, or -1 if
 * `d` is no TLS dialer of ours (plain tcp://, a listener's pipe). "" when it verified the CA only.
 */
int bus_endpoint_dialer_peer(nng_dialer d, char *name, size_t len);

#endif
