/* callback_guard: per-attempt callback tokens, the CallSid check, recording links. */
#include "callback_guard.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int callback_token(const unsigned char *key, size_t key_len, const char *call_id, int attempt,
                   char out[CALLBACK_TOKEN_LEN + 1])
{
    char msg[160];
    int n = snprintf(msg, sizeof msg, "leadbus-callback:v1:%s:%d", call_id, attempt);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    out[0] = '\0';
    if (key_len == 0 || n < 0 || (size_t)n >= sizeof msg) {
        return -1;
    }
    if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, (size_t)n, mac,
             &mac_len) == NULL ||
        mac_len * 2 != CALLBACK_TOKEN_LEN) {
        return -1;
    }
    for (unsigned int i = 0; i < mac_len; i++) {
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    }
    return 0;
}

bool callback_token_ok(const unsigned char *key, size_t key_len, const char *call_id, int attempt,
                       const char *given)
{
    char want[CALLBACK_TOKEN_LEN + 1];
    if (given == NULL || strlen(given) != CALLBACK_TOKEN_LEN ||
        callback_token(key, key_len, call_id, attempt, want) != 0) {
        return false;
    }
    bool ok = CRYPTO_memcmp(want, given, CALLBACK_TOKEN_LEN) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}

enum callback_verdict callback_verdict(const char *state, const char *stored_sid,
                                       const char *callback_sid)
{
    if (strcmp(state, "final") == 0) {
        return CALLBACK_DUPLICATE;
    }
    if (stored_sid == NULL || stored_sid[0] == '\0') {
        return CALLBACK_DEFER;
    }
    return callback_sid != NULL && strcmp(stored_sid, callback_sid) == 0 ? CALLBACK_APPLY
                                                                         : CALLBACK_MISMATCH;
}

static const char *const recording_hosts[] = {"s3-ap-southeast-1.amazonaws.com"};

static bool recording_host_known(const char *host)
{
    for (size_t i = 0; i < sizeof recording_hosts / sizeof recording_hosts[0]; i++) {
        if (strcasecmp(host, recording_hosts[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool recording_url_allowed(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *user = NULL, *password = NULL, *host = NULL, *port = NULL;
    bool ok = false;
    if (u == NULL || url == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        goto done;
    }
    /* Each part read on its own line: a missing part is an error code, not a failure. */
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    curl_url_get(u, CURLUPART_PASSWORD, &password, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    ok = scheme != NULL && strcmp(scheme, "https") == 0 && user == NULL && password == NULL &&
         host != NULL && recording_host_known(host) && (port == NULL || strcmp(port, "443") == 0);
done:
    curl_free(scheme);
    curl_free(user);
    curl_free(password);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}
