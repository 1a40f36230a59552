/*
 * tz: local time in a named IANA zone (Asia/Kolkata, Europe/London…), for
 * calling hours and for the timestamps Exotel writes and filters on. Backed
 * by ICU's calendar, so DST and zone history are ICU's, not ours.
 *
 * Memory: a struct tz owns its ICU calendar; one tz may be shared by threads
 * (calls are serialised inside). Free it with tz_close().
 */
#ifndef LEADBUS_TZ_H
#define LEADBUS_TZ_H

#include <stdint.h>

struct tz;

struct tz_fields {
    int year, month, day; /* month 1-12; day may overflow in tz_join (Nov 31 = Dec 1) */
    int hour, minute, second;
    int wday; /* 0 = Sunday … 6 = Saturday (tz_split only) */
};

/* -1 when ICU does not know the zone. */
int tz_open(const char *name, struct tz **out);
void tz_close(struct tz *tz);

void tz_split(struct tz *tz, int64_t ms, struct tz_fields *f);
/* Local fields to unix ms; a time skipped by a DST change moves forward. */
int64_t tz_join(struct tz *tz, const struct tz_fields *f);
/* "YYYY-MM-DD HH:MM:SS" in the zone (Exotel's format). */
void tz_format(struct tz *tz, int64_t ms, char out[20]);

#endif
