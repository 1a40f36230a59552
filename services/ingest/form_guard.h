/*
 * form_guard: abuse limits for leads posted with a form key (FORM_KEYS).
 *
 * A form key is public (it sits in a page's JavaScript), so what it can do is
 * bounded: FORM_RATE_LIMIT ("20/60s", the default) requests per client
 * address and, separately, per key, as token buckets (a burst of N, refilled
 * N per period); FORM_HONEYPOT_FIELD names a field real visitors leave empty
 * (a hidden input): a lead that fills it is answered as accepted and dropped.
 * The client address is the TCP peer, or the address a trusted proxy
 * (TRUSTED_PROXIES, exact addresses) put last in X-Forwarded-For.
 *
 * Threads: form_guard_admit() takes the guard's lock; the rest is read-only
 * after open. Buckets live in memory: a restart forgets them (a limit, not a
 * ledger). A table of FORM_GUARD_SLOTS buckets indexed by hash; two clients
 * that share a slot share a bucket, which errs on the strict side.
 */
#ifndef LEADBUS_FORM_GUARD_H
#define LEADBUS_FORM_GUARD_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FORM_GUARD_SLOTS 8192
#define FORM_GUARD_ADDR_MAX 64

struct form_guard;

int form_guard_open(struct form_guard **out, char err[CONFIG_ERR_MAX]);
void form_guard_close(struct form_guard *g);

/* The client's address: `peer`, or the last X-Forwarded-For hop when `peer` is a trusted proxy. */
void form_guard_client(const struct form_guard *g, const char *peer, const char *forwarded_for,
                       char out[FORM_GUARD_ADDR_MAX]);

/* 0: admitted (one token taken from the address's and the key's buckets); else ms to wait. */
int64_t form_guard_admit(struct form_guard *g, const char *client, const char *key_id,
                         int64_t now_ms);

/* Does this JSON body fill the honeypot field? False when FORM_HONEYPOT_FIELD is unset. */
bool form_guard_honeypot(const struct form_guard *g, const char *body, size_t len);

/* For tests: a guard with these settings instead of the environment's. */
int form_guard_open_with(const char *rate, const char *proxies, const char *honeypot,
                         struct form_guard **out, char err[CONFIG_ERR_MAX]);

#endif
