/*
 * dialer: places each due call through Exotel and reports what became of it.
 * Subscribes to the call-scheduler's call.due; publishes call.status (a
 * non-final one when Exotel accepts the call, a final one with the outcome).
 *
 * Exotel has no idempotency key, so an attempt is committed as `dialing`
 * before its request. An answer that leaves the call's fate unknown (5xx, a
 * timeout, a cut connection, or a crash mid-request) is reconciled through
 * Exotel's call-details API; the attempt is never blindly redialed. Status
 * callbacks (POST /exotel/callback, token-checked, idempotent) finish an
 * attempt; a call whose callback never comes is looked up after a grace time.
 */
#ifndef LEADBUS_DIALER_H
#define LEADBUS_DIALER_H

#include "app.h"

extern const struct module dialer_module;

#endif
