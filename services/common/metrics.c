/* metrics: a small registry rendered in the Prometheus text exposition format. */
#include "metrics.h"

#include <math.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAMILIES 64
#define MAX_SERIES 256 /* per family; further label sets are dropped, never grown without bound */
#define MAX_COLLECTORS 16

static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,  0.5,    1,     2.5,  5,     10,   30};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])
/* Histograms set whole by a collector (metrics_histogram_set): minutes to a day. */
const double metrics_long_buckets[METRICS_LONG_NBUCKETS] = {1,   2.5, 5,    10,   30,    60,   120,
                                                            300, 600, 1800, 3600, 14400, 86400};

enum type { COUNTER, GAUGE, HISTOGRAM, LONG_HISTOGRAM };

struct series {
    char *labels;
    double value; /* counter, gauge; histogram: sum */
    unsigned long long count,
        bucket[NBUCKETS > METRICS_LONG_NBUCKETS ? NBUCKETS : METRICS_LONG_NBUCKETS];
};

struct family {
    char *name, *help;
    enum type type;
    struct series series[MAX_SERIES];
    int nseries;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct family families[MAX_FAMILIES];
static int nfamilies;
static struct {
    metrics_collector fn;
    void *arg;
} collectors[MAX_COLLECTORS];
static int ncollectors;

static struct series *find(const char *name, const char *help, enum type t, const char *labels)
{
    struct family *f = NULL;
    for (int i = 0; i < nfamilies && f == NULL; i++) {
        f = strcmp(families[i].name, name) == 0 ? &families[i] : NULL;
    }
    if (f == NULL) {
        if (nfamilies == MAX_FAMILIES) {
            return NULL;
        }
        f = &families[nfamilies];
        f->name = strdup(name);
        f->help = strdup(help);
        f->type = t;
        if (f->name == NULL || f->help == NULL) {
            free(f->name);
            free(f->help);
            return NULL;
        }
        nfamilies++;
    }
    if (f->type != t) {
        return NULL;
    }
    labels = labels ? labels : "";
    for (int i = 0; i < f->nseries; i++) {
        if (strcmp(f->series[i].labels, labels) == 0) {
            return &f->series[i];
        }
    }
    if (f->nseries == MAX_SERIES) {
        return NULL;
    }
    struct series *s = &f->series[f->nseries];
    memset(s, 0, sizeof *s);
    if ((s->labels = strdup(labels)) == NULL) {
        return NULL;
    }
    f->nseries++;
    return s;
}

void metrics_counter_add(const char *name, const char *help, const char *labels, double v)
{
    pthread_mutex_lock(&lock);
    struct series *s = find(name, help, COUNTER, labels);
    if (s != NULL) {
        s->value += v;
    }
    pthread_mutex_unlock(&lock);
}

void metrics_gauge_set(const char *name, const char *help, const char *labels, double v)
{
    pthread_mutex_lock(&lock);
    struct series *s = find(name, help, GAUGE, labels);
    if (s != NULL) {
        s->value = v;
    }
    pthread_mutex_unlock(&lock);
}

void metrics_observe(const char *name, const char *help, const char *labels, double seconds)
{
    pthread_mutex_lock(&lock);
    struct series *s = find(name, help, HISTOGRAM, labels);
    if (s != NULL) {
        s->value += seconds;
        s->count++;
        for (size_t i = 0; i < NBUCKETS; i++) {
            s->bucket[i] += seconds <= buckets[i];
        }
    }
    pthread_mutex_unlock(&lock);
}

void metrics_counter_set(const char *name, const char *help, const char *labels, double v)
{
    pthread_mutex_lock(&lock);
    struct series *s = find(name, help, COUNTER, labels);
    if (s != NULL) {
        s->value = v;
    }
    pthread_mutex_unlock(&lock);
}

void metrics_histogram_set(const char *name, const char *help, const char *labels,
                           const unsigned long long cumulative[METRICS_LONG_NBUCKETS], double sum,
                           unsigned long long count)
{
    pthread_mutex_lock(&lock);
    struct series *s = find(name, help, LONG_HISTOGRAM, labels);
    if (s != NULL) {
        s->value = sum;
        s->count = count;
        memcpy(s->bucket, cumulative, METRICS_LONG_NBUCKETS * sizeof cumulative[0]);
    }
    pthread_mutex_unlock(&lock);
}

int metrics_collector_add(metrics_collector fn, void *arg)
{
    pthread_mutex_lock(&lock);
    int rc = -1;
    if (ncollectors < MAX_COLLECTORS) {
        collectors[ncollectors].fn = fn;
        collectors[ncollectors++].arg = arg;
        rc = 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void metrics_collector_remove(metrics_collector fn, void *arg)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ncollectors; i++) {
        if (collectors[i].fn == fn && collectors[i].arg == arg) {
            collectors[i] = collectors[--ncollectors];
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

struct out {
    char *p;
    size_t len, cap;
    int failed;
};

static void put(struct out *o, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !o->failed; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)(n > 0 ? n : 0) + 1;
        char *grown = realloc(o->p, cap);
        if (grown == NULL) {
            o->failed = 1;
            return;
        }
        o->p = grown;
        o->cap = cap;
    }
}

/* `name{labels,extra}` with the braces only when there is a label. */
static void series_name(struct out *o, const char *name, const char *suffix, const char *labels,
                        const char *extra)
{
    bool any = labels[0] != '\0' || extra != NULL;
    put(o, "%s%s%s%s%s%s%s", name, suffix, any ? "{" : "", labels,
        labels[0] != '\0' && extra != NULL ? "," : "", extra ? extra : "", any ? "}" : "");
}

static void value(struct out *o, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) {
        put(o, " %.0f\n", v);
    } else {
        put(o, " %.9g\n", v);
    }
}

char *metrics_render(size_t *len)
{
    /* Collectors set gauges through the public functions, so they run without the lock. */
    pthread_mutex_lock(&lock);
    int n = ncollectors;
    struct {
        metrics_collector fn;
        void *arg;
    } copy[MAX_COLLECTORS];
    memcpy(copy, collectors, sizeof copy);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n; i++) {
        copy[i].fn(copy[i].arg);
    }
    struct out o = {malloc(16384), 0, 16384, 0};
    if (o.p == NULL) {
        return NULL;
    }
    static const char *const types[] = {"counter", "gauge", "histogram", "histogram"};
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nfamilies; i++) {
        const struct family *f = &families[i];
        put(&o, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, types[f->type]);
        for (int j = 0; j < f->nseries; j++) {
            const struct series *s = &f->series[j];
            if (f->type != HISTOGRAM && f->type != LONG_HISTOGRAM) {
                series_name(&o, f->name, "", s->labels, NULL);
                value(&o, s->value);
                continue;
            }
            char le[32];
            bool long_b = f->type == LONG_HISTOGRAM;
            for (size_t b = 0; b < (long_b ? METRICS_LONG_NBUCKETS : NBUCKETS); b++) {
                snprintf(le, sizeof le, "le=\"%g\"", long_b ? metrics_long_buckets[b] : buckets[b]);
                series_name(&o, f->name, "_bucket", s->labels, le);
                value(&o, (double)s->bucket[b]);
            }
            series_name(&o, f->name, "_bucket", s->labels, "le=\"+Inf\"");
            value(&o, (double)s->count);
            series_name(&o, f->name, "_sum", s->labels, NULL);
            value(&o, s->value);
            series_name(&o, f->name, "_count", s->labels, NULL);
            value(&o, (double)s->count);
        }
    }
    pthread_mutex_unlock(&lock);
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    *len = o.len;
    return o.p;
}

void metrics_label(const char *value, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = value; *p != '\0' && n + 3 < size; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = *p;
        } else if (*p == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

void metrics_reset(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nfamilies; i++) {
        for (int j = 0; j < families[i].nseries; j++) {
            free(families[i].series[j].labels);
        }
        free(families[i].name);
        free(families[i].help);
        families[i].nseries = 0;
    }
    nfamilies = 0;
    ncollectors = 0;
    pthread_mutex_unlock(&lock);
}
