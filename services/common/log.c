/* log: text or JSON lines on stderr. */
#include "log.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_TEXT;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local const char *thread_target;
static const char *default_target = "leadbus";

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_init(enum log_level min, enum log_format fmt)
{
    min_level = min;
    format = fmt;
}

void log_set_target(const char *target)
{
    thread_target = target;
}

const char *log_target(void)
{
    return thread_target;
}

void log_mask_phone(const char *in, char *out, size_t out_size)
{
    if (out_size == 0) {
        return;
    }
    size_t n = in != NULL ? strlen(in) : 0;
    if (n < 6) {
        snprintf(out, out_size, "***");
        return;
    }
    snprintf(out, out_size, "%.3s***%s", in, in + n - 2);
}

static void timestamp(char *buf, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Appends to a fixed line buffer, silently cutting at its end. */
struct line {
    char buf[4096];
    size_t len;
};

static void put(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct line *l, const char *fmt, ...)
{
    if (l->len >= sizeof l->buf) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        l->len += (size_t)n;
        if (l->len >= sizeof l->buf) {
            l->len = sizeof l->buf - 1;
        }
    }
}

size_t log_escape(const char *in, bool quoted, char *out, size_t out_size)
{
    size_t n = 0;
    if (out_size == 0) {
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)(in != NULL ? in : ""); *p != '\0'; p++) {
        char esc[5];
        if (*p == '\n' || *p == '\r' || *p == '\t') {
            snprintf(esc, sizeof esc, "\\%c", *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't');
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", *p);
        } else if (quoted && (*p == '\\' || *p == '\'')) {
            snprintf(esc, sizeof esc, "\\%c", *p);
        } else {
            esc[0] = (char)*p;
            esc[1] = '\0';
        }
        size_t k = strlen(esc);
        if (n + k >= out_size) {
            break; /* cut between escapes, never inside one */
        }
        memcpy(out + n, esc, k);
        n += k;
    }
    out[n] = '\0';
    return n;
}

/* Text as the text format shows it: control characters escaped everywhere, and in a quoted
 * value ' and \ too, so no field can end the line or forge another field. */
static void put_escaped(struct line *l, const char *s, bool quoted)
{
    if (l->len + 1 >= sizeof l->buf) {
        return;
    }
    l->len += log_escape(s, quoted, l->buf + l->len, sizeof l->buf - l->len);
}

static void write_text(struct line *l, const char *ts, const char *target, enum log_level lvl,
                       const char *msg, const struct log_field *fields)
{
    put(l, "%s [%s] ", ts, level_names[lvl]);
    put_escaped(l, target, false);
    put(l, ": ");
    put_escaped(l, msg, false);
    if (fields != NULL && fields[0].key != NULL) {
        put(l, " {");
        for (const struct log_field *f = fields; f->key != NULL; f++) {
            put(l, "%s ", f == fields ? "" : ",");
            put_escaped(l, f->key, false);
            put(l, ": ");
            if (f->type == LOG_FT_INT) {
                put(l, "%lld", f->i);
            } else {
                char masked[64];
                if (f->type == LOG_FT_PHONE) {
                    log_mask_phone(f->s, masked, sizeof masked);
                }
                put(l, "'");
                put_escaped(l, f->type == LOG_FT_PHONE ? masked : f->s, true);
                put(l, "'");
            }
        }
        put(l, " }");
    }
    put(l, "\n");
}

static void write_json(struct line *l, const char *ts, const char *target, enum log_level lvl,
                       const char *msg, const struct log_field *fields)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return;
    }
    cJSON_AddStringToObject(o, "ts", ts);
    cJSON_AddStringToObject(o, "level", level_names[lvl]);
    cJSON_AddStringToObject(o, "target", target);
    cJSON_AddStringToObject(o, "msg", msg);
    for (const struct log_field *f = fields; f != NULL && f->key != NULL; f++) {
        if (f->type == LOG_FT_INT) {
            cJSON_AddNumberToObject(o, f->key, (double)f->i);
        } else if (f->type == LOG_FT_PHONE) {
            char masked[64];
            log_mask_phone(f->s, masked, sizeof masked);
            cJSON_AddStringToObject(o, f->key, masked);
        } else {
            cJSON_AddStringToObject(o, f->key, f->s != NULL ? f->s : "");
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s != NULL) {
        put(l, "%s\n", s);
        free(s);
    }
}

void log_write(enum log_level lvl, const char *msg, const struct log_field *fields)
{
    if (lvl < min_level) {
        return;
    }
    char ts[40];
    timestamp(ts, sizeof ts);
    const char *target = thread_target != NULL ? thread_target : default_target;
    struct line l = {.len = 0};
    if (format == LOG_JSON) {
        write_json(&l, ts, target, lvl, msg, fields);
    } else {
        write_text(&l, ts, target, lvl, msg, fields);
    }
    if (l.len > 0 && l.buf[l.len - 1] != '\n') {
        l.buf[l.len - 1] = '\n';
    }
    pthread_mutex_lock(&out_lock);
    fwrite(l.buf, 1, l.len, stderr);
    fflush(stderr);
    pthread_mutex_unlock(&out_lock);
}
