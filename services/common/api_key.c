/* api_key: loading, generating and checking API keys. */
#include "api_key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define MAX_KEYS 16
#define KEY_MAX 256

struct api_keys {
    char keys[MAX_KEYS][KEY_MAX];
    size_t lens[MAX_KEYS];
    int n;
};

bool api_key_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Walk the stored key's length whatever is presented, folding every difference. */
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        diff |= x ^ (unsigned char)b[i];
    }
    return diff == 0;
}

bool api_keys_check(const struct api_keys *k, const char *presented)
{
    if (presented == NULL) {
        return false;
    }
    size_t plen = strnlen(presented, KEY_MAX);
    bool ok = false;
    for (int i = 0; i < k->n; i++) {
        ok |= api_key_equal(presented, plen, k->keys[i], k->lens[i]);
    }
    return ok;
}

static int add_key(struct api_keys *k, const char *s, size_t n)
{
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) {
        n--;
    }
    if (n == 0) {
        return 0;
    }
    if (n < 16 || n >= KEY_MAX || k->n == MAX_KEYS) {
        return -1;
    }
    memcpy(k->keys[k->n], s, n);
    k->keys[k->n][n] = '\0';
    k->lens[k->n++] = n;
    return 0;
}

static int generate(const char *path, struct api_keys *k, char err[CONFIG_ERR_MAX])
{
    unsigned char raw[24];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        snprintf(err, CONFIG_ERR_MAX, "API_KEYS: cannot generate a key: %s", strerror(errno));
        return -1;
    }
    char hex[2 * sizeof raw + 1];
    for (size_t i = 0; i < sizeof raw; i++) {
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex) || fsync(fd) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "API_KEYS: unset, and cannot write %.120s: %s", path,
                 strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    add_key(k, hex, strlen(hex));
    /* Printed once, at generation, so the operator can copy it; never logged again. */
    printf("Generated an API key (API_KEYS was unset); it is stored in %s:\n%s\n", path, hex);
    fflush(stdout);
    return 0;
}

int api_keys_load(const char *data_dir, struct api_keys **out, char err[CONFIG_ERR_MAX])
{
    struct api_keys *k = calloc(1, sizeof *k);
    if (k == NULL) {
        snprintf(err, CONFIG_ERR_MAX, "out of memory");
        return -1;
    }
    const char *list = config_raw("API_KEYS");
    if (list != NULL) {
        for (const char *p = list; *p != '\0';) {
            size_t n = strcspn(p, ",");
            if (add_key(k, p, n) != 0) {
                snprintf(err, CONFIG_ERR_MAX,
                         "API_KEYS: expected up to %d comma-separated keys of 16 to %d characters",
                         MAX_KEYS, KEY_MAX - 1);
                free(k);
                return -1;
            }
            p += n + (p[n] == ',');
        }
    } else {
        char path[1024];
        snprintf(path, sizeof path, "%s/api_key", data_dir);
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            char buf[KEY_MAX];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            if (add_key(k, buf, n) != 0) {
                snprintf(err, CONFIG_ERR_MAX, "API_KEYS: %.120s does not hold a usable key", path);
                free(k);
                return -1;
            }
        } else if (generate(path, k, err) != 0) {
            free(k);
            return -1;
        }
    }
    if (k->n == 0) {
        snprintf(err, CONFIG_ERR_MAX, "API_KEYS: no key given");
        free(k);
        return -1;
    }
    *out = k;
    return 0;
}

void api_keys_free(struct api_keys *k)
{
    free(k);
}
