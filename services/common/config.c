/* config: environment + .env, typed getters. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct kv {
    char *name;
    char *value;
};

static struct kv *file_vars;
static size_t file_count;

static void add_var(const char *name, const char *value, void *arg)
{
    (void)arg;
    struct kv *grown = realloc(file_vars, (file_count + 1) * sizeof *grown);
    if (grown == NULL) {
        return;
    }
    file_vars = grown;
    char *n = strdup(name), *v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return;
    }
    file_vars[file_count].name = n;
    file_vars[file_count].value = v;
    file_count++;
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || isdigit((unsigned char)s[0])) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') {
            return false;
        }
    }
    return true;
}

/* Parses one line; 0 = ok (maybe nothing), -1 = malformed. */
static int parse_line(char *line, void (*fn)(const char *, const char *, void *), void *arg)
{
    char *p = line;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p == '\0' || *p == '#') {
        return 0;
    }
    if (strncmp(p, "export ", 7) == 0) {
        p += 7;
        while (*p == ' ') {
            p++;
        }
    }
    char *eq = strchr(p, '=');
    if (eq == NULL) {
        return -1;
    }
    char *name_end = eq;
    while (name_end > p && (name_end[-1] == ' ' || name_end[-1] == '\t')) {
        name_end--;
    }
    if (!valid_name(p, (size_t)(name_end - p))) {
        return -1;
    }
    *name_end = '\0';
    char *v = eq + 1;
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    if (*v == '"' || *v == '\'') {
        char q = *v++;
        char *end = strchr(v, q);
        if (end == NULL) {
            return -1;
        }
        *end = '\0';
        char *rest = end + 1;
        while (*rest == ' ' || *rest == '\t') {
            rest++;
        }
        if (*rest != '\0' && *rest != '#') {
            return -1;
        }
    } else {
        /* Unquoted: a ` #` starts a comment; trailing blanks go. */
        char *hash = strstr(v, " #");
        if (hash != NULL) {
            *hash = '\0';
        }
        size_t n = strlen(v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r')) {
            v[--n] = '\0';
        }
    }
    fn(p, v, arg);
    return 0;
}

int config_parse_env(const char *text, size_t len,
                     void (*fn)(const char *name, const char *value, void *arg), void *arg)
{
    char *buf = malloc(len + 1);
    if (buf == NULL) {
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    int lineno = 0, bad = 0;
    char *cur = buf;
    while (cur != NULL && bad == 0) {
        char *nl = strchr(cur, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        lineno++;
        size_t n = strlen(cur);
        if (n > 0 && cur[n - 1] == '\r') {
            cur[n - 1] = '\0';
        }
        /* A NUL inside the text ends the line early; the rest of it is ignored. */
        if (parse_line(cur, fn, arg) != 0) {
            bad = lineno;
        }
        cur = nl != NULL ? nl + 1 : NULL;
    }
    free(buf);
    return bad;
}

int config_load(const char *path, char err[CONFIG_ERR_MAX])
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return 0;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            char *grown = realloc(text, cap);
            if (grown == NULL) {
                free(text);
                fclose(f);
                snprintf(err, CONFIG_ERR_MAX, "%s: out of memory", path);
                return -1;
            }
            text = grown;
        }
        memcpy(text + len, chunk, n);
        len += n;
    }
    fclose(f);
    int bad = config_parse_env(text != NULL ? text : "", len, add_var, NULL);
    free(text);
    if (bad != 0) {
        snprintf(err, CONFIG_ERR_MAX, "%s line %d: expected NAME=value", path, bad);
        return -1;
    }
    return 0;
}

void config_free(void)
{
    for (size_t i = 0; i < file_count; i++) {
        free(file_vars[i].name);
        free(file_vars[i].value);
    }
    free(file_vars);
    file_vars = NULL;
    file_count = 0;
}

const char *config_raw(const char *name)
{
    const char *v = getenv(name);
    if (v != NULL && *v != '\0') {
        return v;
    }
    for (size_t i = file_count; i-- > 0;) {
        if (strcmp(file_vars[i].name, name) == 0) {
            return *file_vars[i].value != '\0' ? file_vars[i].value : NULL;
        }
    }
    return NULL;
}

const char *config_str(const char *name, const char *def)
{
    const char *v = config_raw(name);
    return v != NULL ? v : def;
}

int config_int(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
               char err[CONFIG_ERR_MAX])
{
    const char *v = config_raw(name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < min || x > max) {
        snprintf(err, CONFIG_ERR_MAX, "%s: expected an integer from %lld to %lld", name,
                 (long long)min, (long long)max);
        return -1;
    }
    *out = x;
    return 0;
}

int config_bool(const char *name, bool def, bool *out, char err[CONFIG_ERR_MAX])
{
    static const char *const choices[] = {"false", "true", "0",  "1", "no",
                                          "yes",   "off",  "on", NULL};
    int idx;
    if (config_enum(name, def ? "true" : "false", choices, &idx, err) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "%s: expected true or false", name);
        return -1;
    }
    *out = idx % 2 == 1;
    return 0;
}

int config_enum(const char *name, const char *def, const char *const *choices, int *out,
                char err[CONFIG_ERR_MAX])
{
    const char *v = config_str(name, def);
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcasecmp(v, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    int n = snprintf(err, CONFIG_ERR_MAX, "%s: expected one of", name);
    for (int i = 0; choices[i] != NULL && n > 0 && n < CONFIG_ERR_MAX; i++) {
        n += snprintf(err + n, (size_t)(CONFIG_ERR_MAX - n), "%s%s", i ? ", " : " ", choices[i]);
    }
    return -1;
}
