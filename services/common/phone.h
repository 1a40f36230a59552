/*
 * phone: phone number parsing and the two forms leadbus stores, through a
 * small C++ shim over libphonenumber (Debian's libphonenumber-dev).
 *
 * E.164 (+919876543210) is the canonical form; the dial form is what Exotel
 * dials: for an Indian number, 0 followed by the national number (the
 * original guide's rule: 9876543210 -> 09876543210), otherwise E.164.
 * Thread-safe; writes only into the caller's buffers.
 */
#ifndef LEADBUS_PHONE_H
#define LEADBUS_PHONE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PHONE_MAX 24

enum phone_result { PHONE_VALID = 0, PHONE_INVALID = 1 };

/* `region` is an ISO 3166 code such as "IN", used when `raw` has no country code. */
enum phone_result phone_normalize(const char *raw, const char *region, char e164[PHONE_MAX],
                                  char dial[PHONE_MAX]);

/* True if libphonenumber knows `region` (for validating DEFAULT_COUNTRY). */
int phone_region_known(const char *region);

/* The ISO region of an E.164 number ("IN" for +919876543210) into region; -1 when unknown. */
int phone_region_of(const char *e164, char region[3]);

#ifdef __cplusplus
}
#endif

#endif
