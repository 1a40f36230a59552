/* tz: ICU calendars behind a small C interface. */
#include "tz.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/ucal.h>
#include <unicode/ustring.h>

struct tz {
    pthread_mutex_t lock;
    UCalendar *cal;
};

int tz_open(const char *name, struct tz **out)
{
    UChar id[128], canon[128];
    if (name == NULL || strlen(name) >= sizeof id / sizeof id[0]) {
        return -1;
    }
    u_uastrcpy(id, name);
    UErrorCode st = U_ZERO_ERROR;
    UBool system = 0;
    /* ICU silently falls back to GMT for an unknown id; ask first. */
    ucal_getCanonicalTimeZoneID(id, -1, canon, 128, &system, &st);
    if (U_FAILURE(st) || !system) {
        return -1;
    }
    struct tz *tz = calloc(1, sizeof *tz);
    if (tz == NULL) {
        return -1;
    }
    tz->cal = ucal_open(id, -1, "en_US", UCAL_GREGORIAN, &st);
    if (U_FAILURE(st)) {
        free(tz);
        return -1;
    }
    pthread_mutex_init(&tz->lock, NULL);
    *out = tz;
    return 0;
}

void tz_close(struct tz *tz)
{
    if (tz == NULL) {
        return;
    }
    ucal_close(tz->cal);
    pthread_mutex_destroy(&tz->lock);
    free(tz);
}

void tz_split(struct tz *tz, int64_t ms, struct tz_fields *f)
{
    UErrorCode st = U_ZERO_ERROR;
    pthread_mutex_lock(&tz->lock);
    ucal_setMillis(tz->cal, (UDate)ms, &st);
    f->year = ucal_get(tz->cal, UCAL_YEAR, &st);
    f->month = ucal_get(tz->cal, UCAL_MONTH, &st) + 1;
    f->day = ucal_get(tz->cal, UCAL_DATE, &st);
    f->hour = ucal_get(tz->cal, UCAL_HOUR_OF_DAY, &st);
    f->minute = ucal_get(tz->cal, UCAL_MINUTE, &st);
    f->second = ucal_get(tz->cal, UCAL_SECOND, &st);
    f->wday = ucal_get(tz->cal, UCAL_DAY_OF_WEEK, &st) - UCAL_SUNDAY;
    pthread_mutex_unlock(&tz->lock);
}

int64_t tz_join(struct tz *tz, const struct tz_fields *f)
{
    UErrorCode st = U_ZERO_ERROR;
    pthread_mutex_lock(&tz->lock);
    ucal_clear(tz->cal);
    ucal_setDateTime(tz->cal, f->year, f->month - 1, f->day, f->hour, f->minute, f->second, &st);
    UDate d = ucal_getMillis(tz->cal, &st);
    pthread_mutex_unlock(&tz->lock);
    return (int64_t)d;
}

void tz_format(struct tz *tz, int64_t ms, char out[20])
{
    struct tz_fields f;
    tz_split(tz, ms, &f);
    unsigned y = (unsigned)f.year % 10000u, mo = (unsigned)f.month % 100u,
             d = (unsigned)f.day % 100u;
    unsigned h = (unsigned)f.hour % 100u, mi = (unsigned)f.minute % 100u,
             s = (unsigned)f.second % 100u;
    snprintf(out, 20, "%04u-%02u-%02u %02u:%02u:%02u", y, mo, d, h, mi, s);
}
