/* call_window: calling hours and days in a time zone. */
#include "call_window.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const wdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int wday_index(const char *s, size_t n)
{
    for (int i = 0; i < 7; i++) {
        if (n == 3 && strncasecmp(s, wdays[i], 3) == 0) {
            return i;
        }
    }
    return -1;
}

static int parse_days(const char *spec, unsigned *out)
{
    if (spec == NULL || spec[0] == '\0' || strcasecmp(spec, "all") == 0) {
        *out = 0x7f;
        return 0;
    }
    unsigned days = 0;
    for (const char *p = spec; *p != '\0';) {
        size_t n = strcspn(p, ",");
        const char *dash = memchr(p, '-', n);
        int a = wday_index(p, dash ? (size_t)(dash - p) : n);
        int b = dash ? wday_index(dash + 1, n - (size_t)(dash - p) - 1) : a;
        if (a < 0 || b < 0) {
            return -1;
        }
        for (int d = a;; d = (d + 1) % 7) { /* "fri-mon" wraps over the weekend */
            days |= 1u << d;
            if (d == b) {
                break;
            }
        }
        p += n;
        p += *p == ',';
    }
    *out = days;
    return 0;
}

static int parse_hhmm(const char *s, int *min)
{
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4])) {
        return -1;
    }
    int h = (s[0] - '0') * 10 + s[1] - '0', m = (s[3] - '0') * 10 + s[4] - '0';
    if (h > 24 || m > 59 || (h == 24 && m != 0)) {
        return -1;
    }
    *min = h * 60 + m;
    return 0;
}

int call_window_parse(const char *hours, const char *days, const char *zone, struct call_window *w,
                      char err[CONFIG_ERR_MAX])
{
    memset(w, 0, sizeof *w);
    if (strcasecmp(hours, "always") == 0) {
        w->always = true;
    } else if (strlen(hours) != 11 || hours[5] != '-' || parse_hhmm(hours, &w->open_min) != 0 ||
               parse_hhmm(hours + 6, &w->close_min) != 0 || w->open_min == w->close_min) {
        snprintf(err, CONFIG_ERR_MAX,
                 "CALL_HOURS: expected HH:MM-HH:MM (e.g. 09:00-21:00) or always");
        return -1;
    }
    if (parse_days(days, &w->days) != 0 || w->days == 0) {
        snprintf(err, CONFIG_ERR_MAX,
                 "CALL_DAYS: expected days like mon-fri or mon,wed,sat or all");
        return -1;
    }
    if (tz_open(zone, &w->tz) != 0) {
        snprintf(err, CONFIG_ERR_MAX,
                 "CALL_TIMEZONE: unknown time zone (use an IANA name such as "
                 "Asia/Kolkata)");
        return -1;
    }
    return 0;
}

void call_window_free(struct call_window *w)
{
    tz_close(w->tz);
    w->tz = NULL;
}

int64_t call_window_next(const struct call_window *w, int64_t t)
{
    if (w->always) {
        return t;
    }
    struct tz_fields now;
    tz_split(w->tz, t, &now);
    /* From yesterday (whose window may run past midnight) to a week ahead. */
    for (int i = -1; i <= 8; i++) {
        struct tz_fields day = {now.year, now.month, now.day + i, 0, 0, 0, 0};
        struct tz_fields check;
        tz_split(w->tz, tz_join(w->tz, &day) + 12 * 3600 * 1000, &check); /* noon: its weekday */
        if ((w->days & (1u << check.wday)) == 0) {
            continue;
        }
        struct tz_fields o = {now.year, now.month, now.day + i, w->open_min / 60, w->open_min % 60,
                              0,        0};
        int close_day = now.day + i + (w->close_min <= w->open_min);
        struct tz_fields c = {now.year,          now.month, close_day, w->close_min / 60,
                              w->close_min % 60, 0,         0};
        int64_t open = tz_join(w->tz, &o), close = tz_join(w->tz, &c);
        if (t >= open && t < close) {
            return t;
        }
        if (open > t) {
            return open;
        }
    }
    return t; /* unreachable with at least one allowed day */
}
