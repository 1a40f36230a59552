/*
 * log: one line per event on stderr, as text in the original guide's style
 *   2026-11-24T10:00:00.000Z [INFO] call-scheduler: Scheduling call { callId: 'c1', delayMs: 60000
 * } or, with LOG_FORMAT=json, one JSON object per line for log collectors.
 *
 * Fields are typed; a LOG_PHONE field is always masked (098***21), so a phone
 * number can never reach a log in the clear. Each thread names the target it
 * works for (log_set_target) so lines from `--target=all` stay attributable.
 * The module copies nothing it is given beyond the call.
 */
#ifndef LEADBUS_LOG_H
#define LEADBUS_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_TEXT, LOG_JSON };

enum log_field_type { LOG_FT_STR, LOG_FT_INT, LOG_FT_PHONE };

struct log_field {
    const char *key;
    enum log_field_type type;
    const char *s;
    long long i;
};

#define LOG_S(k, v)                                                                                \
    {                                                                                              \
        (k), LOG_FT_STR, (v), 0                                                                    \
    }
#define LOG_I(k, v)                                                                                \
    {                                                                                              \
        (k), LOG_FT_INT, NULL, (long long)(v)                                                      \
    }
#define LOG_PHONE(k, v)                                                                            \
    {                                                                                              \
        (k), LOG_FT_PHONE, (v), 0                                                                  \
    }
#define LOG_FIELDS(...) ((const struct log_field[]){__VA_ARGS__, {NULL, LOG_FT_STR, NULL, 0}})

void log_init(enum log_level min, enum log_format fmt);
/* The target name this thread logs as (a string literal or otherwise static). */
void log_set_target(const char *target);
/* This thread's target, or NULL: threads a module starts (store writer, HTTP routes) inherit it. */
const char *log_target(void);

void log_write(enum log_level lvl, const char *msg, const struct log_field *fields);

#define log_debug(msg, fields) log_write(LOG_DEBUG, (msg), (fields))
#define log_info(msg, fields) log_write(LOG_INFO, (msg), (fields))
#define log_warn(msg, fields) log_write(LOG_WARN, (msg), (fields))
#define log_error(msg, fields) log_write(LOG_ERROR, (msg), (fields))

/*
 * Mask a phone number for logs: the first three and last two characters stay,
 * the middle becomes "***" (09876543221 -> 098***21). Anything shorter than
 * six characters becomes "***". Always NUL-terminates `out`.
 */
void log_mask_phone(const char *in, char *out, size_t out_size);

/*
 * The text format's escaping: \n \r \t, other control characters as \xHH, and when `quoted`
 * (a field's value, shown in '') ' and \ backslashed, so a value (a CallSid with a newline)
 * cannot forge a line or a field. Writes at most out_size - 1 characters and a NUL (cut
 * between escapes); returns the length.
 */
size_t log_escape(const char *in, bool quoted, char *out, size_t out_size);

#endif
