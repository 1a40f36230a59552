/* bus_tls: bus endpoints with mutual TLS, the plain-tcp guard, and a watcher of refused peers. */
#include "bus_tls.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nng/supplemental/tls/tls.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define PEM_MAX (256 * 1024)
#define WATCH_MAX 128
#define WATCH_EVERY_MS 1000
#define WARN_EVERY_MS 30000

static struct {
    char *ca, *cert, *key; /* NUL-terminated PEM; NULL: no TLS */
    bool insecure;
    bool configured; /* bus_tls_setup() was called (else the environment is read once) */
} tls;

static pthread_once_t env_once = PTHREAD_ONCE_INIT;

/* ---- URLs ---- */

static bool scheme_is(const char *url, const char *const *schemes)
{
    for (int i = 0; schemes[i] != NULL; i++) {
        size_t n = strlen(schemes[i]);
        if (strncasecmp(url, schemes[i], n) == 0 && strncmp(url + n, "://", 3) == 0) {
            return true;
        }
    }
    return false;
}

static bool host_is_loopback(const char *host)
{
    char h[256];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') { /* some nng versions keep brackets */
        snprintf(h, sizeof h, "%.*s", (int)(n - 2), host + 1);
    } else {
        snprintf(h, sizeof h, "%s", host);
    }
    if (strcasecmp(h, "localhost") == 0) {
        return true;
    }
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, h, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    return inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

enum bus_url_kind bus_url_kind(const char *url)
{
    static const char *const local[] = {"inproc", "ipc", "abstract", NULL};
    static const char *const secure[] = {"tls+tcp", "tls+tcp4", "tls+tcp6", "wss",
                                         "wss4",    "wss6",     NULL};
    static const char *const plain[] = {"tcp", "tcp4", "tcp6", "ws", "ws4", "ws6", NULL};
    if (scheme_is(url, local)) {
        return BUS_URL_LOCAL;
    }
    if (scheme_is(url, secure)) {
        return BUS_URL_TLS;
    }
    if (!scheme_is(url, plain)) {
        return BUS_URL_OTHER;
    }
    nng_url *u = NULL;
    if (nng_url_parse(&u, url) != 0) {
        return BUS_URL_PLAIN; /* unparsable: not provably loopback */
    }
    bool loop = u->u_hostname != NULL && host_is_loopback(u->u_hostname);
    nng_url_free(u);
    return loop ? BUS_URL_LOOPBACK : BUS_URL_PLAIN;
}

int bus_url_check(const char *url, bool insecure, bool have_tls, char *err, size_t errlen)
{
    enum bus_url_kind k = bus_url_kind(url);
    if (k == BUS_URL_PLAIN && !insecure) {
        snprintf(err, errlen,
                 "%s is plain tcp off loopback: use tls+tcp:// with BUS_TLS_CA/CERT/KEY, or "
                 "set BUS_INSECURE=true",
                 url);
        return -1;
    }
    if (k == BUS_URL_TLS && !have_tls) {
        snprintf(err, errlen, "%s needs BUS_TLS_CA, BUS_TLS_CERT and BUS_TLS_KEY", url);
        return -1;
    }
    return 0;
}

/* ---- material ---- */

static char *read_pem(const char *var, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot read '%s': %s", var, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(PEM_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, PEM_MAX + 1, f) : 0;
    fclose(f);
    if (buf == NULL || n == 0 || n > PEM_MAX || strstr(buf, "-----BEGIN") == NULL) {
        if (buf != NULL) {
            buf[n > PEM_MAX ? PEM_MAX : n] = '\0';
        }
        snprintf(err, errlen, "%s: '%s' is not a PEM file (empty, too large or no BEGIN line)", var,
                 path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* A configuration with our material: CA, own certificate, the peer's certificate required. */
static int make_config(nng_tls_mode mode, const char *server_name, nng_tls_config **out,
                       const char **what)
{
    nng_tls_config *cfg;
    int rc = nng_tls_config_alloc(&cfg, mode);
    if (rc != 0) {
        *what = "TLS configuration";
        return rc;
    }
    *what = "BUS_TLS_CA";
    rc = nng_tls_config_ca_chain(cfg, tls.ca, NULL);
    if (rc == 0) {
        *what = "BUS_TLS_CERT/BUS_TLS_KEY";
        rc = nng_tls_config_own_cert(cfg, tls.cert, tls.key, NULL);
    }
    if (rc == 0) {
        *what = "TLS configuration";
        rc = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
    }
    if (rc == 0 && server_name != NULL) {
        *what = "TLS server name";
        rc = nng_tls_config_server_name(cfg, server_name);
    }
    if (rc != 0) {
        nng_tls_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

void bus_tls_cleanup(void)
{
    if (tls.key != NULL) {
        explicit_bzero(tls.key, strlen(tls.key));
    }
    free(tls.ca);
    free(tls.cert);
    free(tls.key);
    tls.ca = tls.cert = tls.key = NULL;
}

int bus_tls_setup(const char *ca_path, const char *cert_path, const char *key_path, bool insecure,
                  char *err, size_t errlen)
{
    bus_tls_cleanup();
    tls.configured = true;
    tls.insecure = insecure;
    if (ca_path == NULL && cert_path == NULL && key_path == NULL) {
        return 0;
    }
    if (ca_path == NULL || cert_path == NULL || key_path == NULL) {
        snprintf(err, errlen, "%s: BUS_TLS_CA, BUS_TLS_CERT and BUS_TLS_KEY go together",
                 ca_path == NULL     ? "BUS_TLS_CA"
                 : cert_path == NULL ? "BUS_TLS_CERT"
                                     : "BUS_TLS_KEY");
        return -1;
    }
    tls.ca = read_pem("BUS_TLS_CA", ca_path, err, errlen);
    tls.cert = tls.ca ? read_pem("BUS_TLS_CERT", cert_path, err, errlen) : NULL;
    tls.key = tls.cert ? read_pem("BUS_TLS_KEY", key_path, err, errlen) : NULL;
    if (tls.key == NULL) {
        bus_tls_cleanup();
        return -1;
    }
    nng_tls_config *cfg;
    const char *what;
    int rc = make_config(NNG_TLS_MODE_SERVER, NULL, &cfg, &what);
    if (rc != 0) {
        snprintf(err, errlen,
                 "%s: refused by the TLS library: %s (PEM files: CA %s, cert %s, key %s)", what,
                 nng_strerror(rc), ca_path, cert_path, key_path);
        bus_tls_cleanup();
        return -1;
    }
    nng_tls_config_free(cfg);
    return 0;
}

bool bus_tls_enabled(void)
{
    return tls.key != NULL;
}

static const char *env_or_null(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

/* A program that never called bus_tls_setup() (an outside subscriber, bus_peer) gets the same
 * settings from its environment, read once before its first endpoint opens. */
static void setup_from_env(void)
{
    if (tls.configured) {
        return;
    }
    char err[512];
    const char *insecure = env_or_null("BUS_INSECURE");
    if (bus_tls_setup(env_or_null("BUS_TLS_CA"), env_or_null("BUS_TLS_CERT"),
                      env_or_null("BUS_TLS_KEY"), insecure != NULL && strcmp(insecure, "true") == 0,
                      err, sizeof err) != 0) {
        log_error("Bus TLS settings refused", LOG_FIELDS(LOG_S("error", err)));
    }
}

/*
 * ---- the watcher: failed handshakes, which nng retries silently, and stuck dialers ----
 *
 * Stuck dialers: in nng 1.5.2 (Debian 12's) a TLS connection lost just after its handshake,
 * between the SP header sent and the peer's awaited, leaves the dialer waiting for good. The TLS
 * layer closed its TCP aios on the error; the header read then restarts a TCP receive on a closed
 * aio, which nng drops without a callback, so the negotiation never ends (its 10 s timeout only
 * aborts that same dead aio) and the dialer, waiting on it, never dials again. A subscriber then
 * never hears from that publisher (split_mode_tls hung so under ASan: the restarted stats never
 * caught up). tests/integration/bus_tls_redial.sh cuts connections there through a proxy.
 * Upstream reworked this after 1.5.2; here the watcher notices a dialer with no pipe whose
 * statistics (connects, refusals, timeouts, errors) have not moved for BUS_DIAL_STALL_MS, closes it
 * and dials again with the same settings: a WARN and leadbus_bus_dial_restarts_total{peer}.
 */

struct watched {
    bool dialer;
    nng_dialer d;
    nng_listener l;
    uint32_t first_id; /* the dialer's id as its owner knows it (bus_endpoint_dialer_close) */
    char url[256];
    char peer[64];
    char server_name[64]; /* the name the publisher's certificate must carry; "": any */
    uint64_t refused;     /* auth + proto failures counted so far */
    int64_t warned_ms;    /* the last WARN */
    uint64_t progress;    /* a dialer's attempts and failures counted so far */
    int64_t progress_ms;  /* when they last moved, or it had a pipe */
};

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct watched watch[WATCH_MAX];
static int nwatch;
static bool watcher_started;

static uint64_t stat_sum(nng_stat *ep)
{
    static const char *const names[] = {"auth", "proto", NULL};
    uint64_t n = 0;
    for (int i = 0; names[i] != NULL; i++) {
        nng_stat *st = nng_stat_find(ep, names[i]);
        n += st != NULL ? nng_stat_value(st) : 0;
    }
    return n;
}

static void report(struct watched *w, uint64_t more, int64_t now)
{
    char labels[160];
    snprintf(labels, sizeof labels, "side=\"%s\",peer=\"%s\"", w->dialer ? "dial" : "listen",
             w->peer);
    metrics_counter_add("leadbus_bus_tls_refused_total",
                        "Bus TLS handshakes refused (certificate missing, not the CA's, or for "
                        "another name)",
                        labels, (double)more);
    if (w->warned_ms != 0 && now - w->warned_ms < WARN_EVERY_MS) {
        return;
    }
    w->warned_ms = now;
    log_warn(w->dialer ? "Bus publisher refused: its TLS certificate is not the CA's for the "
                         "expected stream name (a squatter, or a wrong certificate)"
                       : "Bus subscriber refused: no TLS client certificate from the CA",
             LOG_FIELDS(LOG_S("url", w->url), LOG_S("expected", w->peer),
                        LOG_I("refused", (long long)w->refused)));
}

/* nng 1.5.2's nng_stat_find_dialer/_listener return the first endpoint whatever the id: find the
 * top-level "dialer"/"listener" scope whose "id" is `id`. */
static nng_stat *find_endpoint(nng_stat *all, const char *kind, int id)
{
    for (nng_stat *s = nng_stat_child(all); s != NULL; s = nng_stat_next(s)) {
        nng_stat *sid = strcmp(nng_stat_name(s), kind) == 0 ? nng_stat_find(s, "id") : NULL;
        if (sid != NULL && nng_stat_value(sid) == (uint64_t)id) {
            return s;
        }
    }
    return NULL;
}

static uint64_t stat_value(nng_stat *ep, const char *name)
{
    nng_stat *st = nng_stat_find(ep, name);
    return st != NULL ? nng_stat_value(st) : 0;
}

/* Everything a dialer's attempts move: a live dialer without a pipe moves one of them at least
 * once per attempt (nng re-dials every NNG_OPT_RECONNMINT, 100 ms by default). */
static uint64_t dial_progress(nng_stat *ep)
{
    static const char *const names[] = {"connect", "refused", "disconnect", "canceled",
                                        "other",   "timeout", "proto",      "auth",
                                        "oom",     "reject",  NULL};
    uint64_t n = 0;
    for (int i = 0; names[i] != NULL; i++) {
        n += stat_value(ep, names[i]);
    }
    return n;
}

static int dial_tls(nng_socket s, const char *url, const char *peer_name, int flags,
                    nng_dialer *out);

/* Close a stuck dialer and dial again with its settings (watch_lock held). */
static void dial_again(struct watched *w, nng_socket s, int64_t now)
{
    nng_dialer d;
    int rc = dial_tls(s, w->url, w->server_name[0] != '\0' ? w->server_name : NULL,
                      NNG_FLAG_NONBLOCK, &d);
    if (rc != 0) {
        w->progress_ms = now; /* try again after another stall period */
        log_error("Bus dialer stuck and cannot be replaced; its publisher is not followed",
                  LOG_FIELDS(LOG_S("url", w->url), LOG_S("expected", w->peer),
                             LOG_S("error", nng_strerror(rc))));
        return;
    }
    nng_dialer_close(w->d);
    w->d = d;
    w->progress = 0;
    w->progress_ms = now;
    char labels[96];
    snprintf(labels, sizeof labels, "peer=\"%s\"", w->peer);
    metrics_counter_add("leadbus_bus_dial_restarts_total",
                        "Bus TLS dialers found stuck after a connection lost mid-negotiation "
                        "(nng 1.5.2) and dialed again",
                        labels, 1);
    log_warn("Bus dialer stuck after a TLS connection was lost mid-negotiation; dialing again",
             LOG_FIELDS(LOG_S("url", w->url), LOG_S("expected", w->peer),
                        LOG_I("stalledMs", BUS_DIAL_STALL_MS)));
}

/* A dialer's stall check: false if its owner closed it (the entry is then dropped). */
static bool dial_check(struct watched *w, nng_stat *ep, int64_t now)
{
    if (ep == NULL) {
        return false;
    }
    uint64_t progress = dial_progress(ep);
    if (stat_value(ep, "pipes") > 0 || progress != w->progress || w->progress_ms == 0) {
        w->progress = progress;
        w->progress_ms = now;
        return true;
    }
    if (now - w->progress_ms >= BUS_DIAL_STALL_MS) {
        nng_socket s = {.id = (uint32_t)stat_value(ep, "socket")};
        dial_again(w, s, now);
    }
    return true;
}

static void watch_once(void)
{
    nng_stat *all;
    if (nng_stats_get(&all) != 0) {
        return;
    }
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&watch_lock);
    for (int i = 0; i < nwatch; i++) {
        struct watched *w = &watch[i];
        nng_stat *ep = w->dialer ? find_endpoint(all, "dialer", nng_dialer_id(w->d))
                                 : find_endpoint(all, "listener", nng_listener_id(w->l));
        uint64_t n = ep != NULL ? stat_sum(ep) : w->refused;
        if (n > w->refused) {
            uint64_t more = n - w->refused;
            w->refused = n;
            report(w, more, now);
        }
        if (w->dialer && !dial_check(w, ep, now)) {
            watch[i--] = watch[--nwatch]; /* closed by its owner (or its socket closed) */
        }
    }
    pthread_mutex_unlock(&watch_lock);
    nng_stats_free(all);
}

static void *watcher_main(void *arg)
{
    (void)arg;
    log_set_target("bus-tls");
    for (;;) {
        usleep(WATCH_EVERY_MS * 1000);
        watch_once();
    }
    return NULL;
}

static void watch_add(bool dialer, nng_dialer d, nng_listener l, const char *url, const char *peer)
{
    pthread_mutex_lock(&watch_lock);
    if (nwatch < WATCH_MAX) {
        struct watched *w = &watch[nwatch++];
        *w = (struct watched){.dialer = dialer, .d = d, .l = l, .first_id = d.id};
        snprintf(w->url, sizeof w->url, "%s", url);
        snprintf(w->peer, sizeof w->peer, "%s", peer != NULL ? peer : "any CA certificate");
        snprintf(w->server_name, sizeof w->server_name, "%s", dialer && peer != NULL ? peer : "");
    }
    if (!watcher_started) {
        pthread_t t;
        /* Process-lifetime and detached: it only reads statistics and logs. */
        if (pthread_create(&t, NULL, watcher_main, NULL) == 0) {
            pthread_detach(t);
            watcher_started = true;
        }
    }
    pthread_mutex_unlock(&watch_lock);
}

int bus_endpoint_dialer_peer(nng_dialer d, char *name, size_t len)
{
    int rc = -1;
    pthread_mutex_lock(&watch_lock);
    for (int i = 0; i < nwatch && rc != 0; i++) {
        if (watch[i].dialer && (watch[i].d.id == d.id || watch[i].first_id == d.id)) {
            snprintf(name, len, "%s", watch[i].server_name);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&watch_lock);
    return rc;
}

int bus_endpoint_dialer_close(nng_dialer d)
{
    pthread_mutex_lock(&watch_lock);
    for (int i = 0; i < nwatch; i++) {
        if (watch[i].dialer && watch[i].first_id == d.id) {
            d = watch[i].d; /* the watcher may have replaced it */
            watch[i] = watch[--nwatch];
            break;
        }
    }
    int rc = nng_dialer_close(d);
    pthread_mutex_unlock(&watch_lock);
    return rc;
}

/* ---- endpoints ---- */

/* A started TLS dialer verifying the server's certificate for `peer_name` (NULL: CA only). */
static int dial_tls(nng_socket s, const char *url, const char *peer_name, int flags,
                    nng_dialer *out)
{
    nng_dialer d;
    nng_tls_config *cfg;
    const char *what;
    int rc = nng_dialer_create(&d, s, url);
    if (rc != 0) {
        return rc;
    }
    rc = make_config(NNG_TLS_MODE_CLIENT, peer_name, &cfg, &what);
    if (rc == 0) {
        rc = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
        nng_tls_config_free(cfg);
    }
    if (rc == 0) {
        rc = nng_dialer_start(d, flags);
    }
    if (rc != 0) {
        nng_dialer_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

static int refuse(const char *url, const char *msg)
{
    log_error("Bus endpoint refused", LOG_FIELDS(LOG_S("url", url), LOG_S("error", msg)));
    return NNG_EINVAL;
}

int bus_endpoint_listen(nng_socket s, const char *url)
{
    char err[512];
    pthread_once(&env_once, setup_from_env);
    if (bus_url_check(url, tls.insecure, bus_tls_enabled(), err, sizeof err) != 0) {
        return refuse(url, err);
    }
    if (bus_url_kind(url) != BUS_URL_TLS) {
        return nng_listen(s, url, NULL, 0);
    }
    nng_listener l;
    nng_tls_config *cfg;
    const char *what;
    int rc = nng_listener_create(&l, s, url);
    if (rc != 0) {
        return rc;
    }
    rc = make_config(NNG_TLS_MODE_SERVER, NULL, &cfg, &what);
    if (rc == 0) {
        rc = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
        nng_tls_config_free(cfg); /* the listener holds its own reference */
    }
    if (rc == 0) {
        rc = nng_listener_start(l, 0);
    }
    if (rc != 0) {
        nng_listener_close(l);
        return rc;
    }
    watch_add(false, (nng_dialer){0}, l, url, "a CA-issued client certificate");
    return 0;
}

int bus_endpoint_dial(nng_socket s, const char *url, const char *peer_name, int flags)
{
    return bus_endpoint_dial_get(s, url, peer_name, flags, NULL);
}

int bus_endpoint_dial_get(nng_socket s, const char *url, const char *peer_name, int flags,
                          nng_dialer *out)
{
    char err[512];
    pthread_once(&env_once, setup_from_env);
    if (bus_url_check(url, tls.insecure, bus_tls_enabled(), err, sizeof err) != 0) {
        return refuse(url, err);
    }
    if (bus_url_kind(url) != BUS_URL_TLS) {
        return nng_dial(s, url, out, flags);
    }
    if (peer_name == NULL || peer_name[0] == '\0') {
        peer_name = NULL;
        log_warn("Bus publisher's stream name unknown: its certificate is checked against the CA "
                 "only, not for a name",
                 LOG_FIELDS(LOG_S("url", url)));
    }
    nng_dialer d;
    int rc = dial_tls(s, url, peer_name, flags, &d);
    if (rc != 0) {
        return rc;
    }
    watch_add(true, d, (nng_listener){0}, url, peer_name);
    if (out != NULL) {
        *out = d;
    }
    return 0;
}
