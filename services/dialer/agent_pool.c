/* agent_pool: AGENTS parsing and the choice of the next agent (pure; see agent_pool.h). */
#include "agent_pool.h"

#include <stdio.h>
#include <string.h>

const char *const agent_strategy_name[] = {
    [AGENT_ROUND_ROBIN] = "round-robin", [AGENT_LONGEST_IDLE] = "longest-idle", NULL};

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= AGENT_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* +E.164 (8-15 digits) or a national 0-prefixed number (10-12 digits). */
static bool number_ok(const char *s, size_t n)
{
    size_t start = s[0] == '+' ? 1 : 0;
    size_t digits = n - start;
    if (n >= AGENT_NUMBER_MAX || digits < 8 || digits > 15 || (start == 0 && s[0] != '0')) {
        return false;
    }
    for (size_t i = start; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t' || **s == '\r')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r')) {
        (*n)--;
    }
}

/* One `Name:number` entry into d; a message on error. */
static const char *parse_entry(const char *s, size_t n, struct agent_def *d)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL) {
        return "expected Name:number";
    }
    const char *name = s, *num = colon + 1;
    size_t nlen = (size_t)(colon - s), numlen = n - nlen - 1;
    trim(&name, &nlen);
    trim(&num, &numlen);
    if (!name_ok(name, nlen)) {
        return "a name is 1-31 characters of [A-Za-z0-9_.-]";
    }
    if (!number_ok(num, numlen)) {
        return "a number is +E.164 or 0-prefixed, digits only";
    }
    memcpy(d->name, name, nlen);
    d->name[nlen] = '\0';
    memcpy(d->number, num, numlen);
    d->number[numlen] = '\0';
    return NULL;
}

static const char *duplicate_of(const struct agent_def *out, int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(out[i].name, out[n].name) == 0) {
            return "a name is listed twice";
        }
        if (strcmp(out[i].number, out[n].number) == 0) {
            return "a number is listed twice";
        }
    }
    return NULL;
}

int agent_pool_parse(const char *spec, const char *setting, struct agent_def *out, int max,
                     char *err, size_t err_size)
{
    int n = 0;
    const char *p = spec;
    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, ",\n");
        const char *s = p;
        size_t sl = len;
        p = p[len] != '\0' ? p + len + 1 : NULL;
        trim(&s, &sl);
        if (sl == 0 || s[0] == '#') {
            continue;
        }
        const char *why = n >= max ? "too many agents" : parse_entry(s, sl, &out[n]);
        if (why == NULL) {
            why = duplicate_of(out, n);
        }
        if (why != NULL) {
            snprintf(err, err_size, "%s: %s (entry %d; expected Name:+919800000001,...)", setting,
                     why, n + 1);
            return -1;
        }
        n++;
    }
    if (n == 0) {
        snprintf(err, err_size, "%s: no agents (expected Name:+919800000001,...)", setting);
        return -1;
    }
    return n;
}

static bool free_agent(const struct agent_view *a)
{
    return !a->busy && !a->paused;
}

int agent_choose(const struct agent_view *v, int n, enum agent_strategy s, int *cursor)
{
    if (n <= 0) {
        return -1;
    }
    if (s == AGENT_LONGEST_IDLE) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            if (free_agent(&v[i]) && (best < 0 || v[i].idle_since < v[best].idle_since)) {
                best = i;
            }
        }
        return best;
    }
    int start = *cursor >= 0 && *cursor < n ? *cursor : 0;
    for (int k = 0; k < n; k++) {
        int i = (start + k) % n;
        if (free_agent(&v[i])) {
            *cursor = (i + 1) % n;
            return i;
        }
    }
    return -1;
}

const char *agent_leg_of(const char *leg1, const char *status)
{
    if (status != NULL && strcmp(status, "completed") == 0) {
        return "answered";
    }
    if (leg1 == NULL || leg1[0] == '\0') {
        return "";
    }
    static const char *const map[][2] = {
        {"completed", "answered"},  {"in-progress", "answered"}, {"answered", "answered"},
        {"no-answer", "no-answer"}, {"canceled", "no-answer"},   {"busy", "busy"},
        {"failed", "failed"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(leg1, map[i][0]) == 0) {
            return map[i][1];
        }
    }
    return "";
}

const char *agent_leg_detail(const char *agent_leg, const char *status)
{
    if (agent_leg == NULL || agent_leg[0] == '\0' || strcmp(status, "completed") == 0) {
        return NULL;
    }
    if (strcmp(agent_leg, "answered") == 0) {
        return strcmp(status, "busy") == 0     ? "the lead was busy"
               : strcmp(status, "failed") == 0 ? "the call to the lead failed"
                                               : "the lead did not answer";
    }
    return strcmp(agent_leg, "busy") == 0     ? "the agent was busy"
           : strcmp(agent_leg, "failed") == 0 ? "the call to the agent failed"
                                              : "the agent did not answer";
}
