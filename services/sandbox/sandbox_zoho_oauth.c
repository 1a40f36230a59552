/*
 * sandbox_zoho_oauth: Zoho Accounts' refresh-token grant (shared/reference/zoho.md):
 * token errors with HTTP 200, the 10-per-10-minutes mint limit, at most 15
 * live tokens per refresh token.
 */
#include "api_key.h"
#include "clock.h"
#include "sandbox_zoho_int.h"

#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Zoho's docs put the fields in the query string, its SDK in the body: take either. */
static void token_fields(struct http_req *req, const char *body, char grant[32], char cid[160],
                         char secret[160], char refresh[256])
{
    const char *src[2] = {body, req->query ? req->query : ""};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(src[i]);
        if (!grant[0])
            mg_get_var(src[i], n, "grant_type", grant, 32);
        if (!cid[0])
            mg_get_var(src[i], n, "client_id", cid, 160);
        if (!secret[0])
            mg_get_var(src[i], n, "client_secret", secret, 160);
        if (!refresh[0])
            mg_get_var(src[i], n, "refresh_token", refresh, 256);
    }
}

/* A new access token into o, counted against the mint limit (lock held). */
static void mint_token(struct sandbox *sb, int64_t now, cJSON *o)
{
    struct sandbox_zoho *z = sb->zoho;
    if (z->nmints < z->mint_limit) {
        z->mints[(z->mint_head + z->nmints++) % z->mint_limit] = now;
    } else {
        z->mints[z->mint_head] = now;
        z->mint_head = (z->mint_head + 1) % z->mint_limit;
    }
    /* At most 15 live tokens: the 16th pushes out the oldest. */
    int slot = z->ntokens < LIVE_TOKENS ? z->ntokens++ : z->token_head;
    if (slot == z->token_head && z->ntokens == LIVE_TOKENS) {
        z->token_head = (z->token_head + 1) % LIVE_TOKENS;
    }
    snprintf(z->tokens[slot].token, sizeof z->tokens[slot].token, "1000.%016llx%016llx.%016llx",
             (unsigned long long)sandbox_rand(sb, 0), (unsigned long long)sandbox_rand(sb, 0),
             (unsigned long long)sandbox_rand(sb, 0));
    z->tokens[slot].expires = now + z->token_ttl_ms;
    cJSON_AddStringToObject(o, "access_token", z->tokens[slot].token);
}

void sbz_post_token(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    struct sandbox_zoho *z = sb->zoho;
    char *body;
    size_t len;
    if (http_read_body(req, 8192, &body, &len) != 0) {
        return;
    }
    char grant[32] = "", cid[160] = "", secret[160] = "", refresh[256] = "";
    token_fields(req, body, grant, cid, secret, refresh);
    free(body);
    char summary[256];
    snprintf(summary, sizeof summary,
             "grant_type=%s client_id=%.8s*** client_secret=*** refresh_token=***", grant, cid);
    sandbox_log_request(sb, SANDBOX_ZOHO, req->method, req->path, summary);
    if (sbz_faulted(sb, req)) {
        return;
    }
    cJSON *o = cJSON_CreateObject();
    const char *error = NULL;
    if (strcmp(grant, "refresh_token") != 0) {
        error = "unsupported_grant_type";
    } else if (!api_key_equal(cid, strlen(cid), z->client_id, strlen(z->client_id))) {
        error = "invalid_client";
    } else if (!api_key_equal(secret, strlen(secret), z->client_secret, strlen(z->client_secret))) {
        error = "invalid_client_secret";
    } else if (!api_key_equal(refresh, strlen(refresh), z->refresh_token,
                              strlen(z->refresh_token))) {
        error = "invalid_code";
    }
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&sb->lock);
    if (error == NULL && z->nmints == z->mint_limit &&
        now - z->mints[z->mint_head] < MINT_WINDOW_MS) {
        pthread_mutex_unlock(&sb->lock);
        cJSON_AddStringToObject(
            o, "error_description",
            "You have made too many requests continuously. Please try again after some time.");
        cJSON_AddStringToObject(o, "error", "Access Denied");
        cJSON_AddStringToObject(o, "status", "failure");
        http_reply_json(req, 200, o); /* Zoho answers its token errors with HTTP 200 */
        return;
    }
    if (error != NULL) {
        pthread_mutex_unlock(&sb->lock);
        cJSON_AddStringToObject(o, "error", error);
        http_reply_json(req, 200, o);
        return;
    }
    mint_token(sb, now, o);
    pthread_mutex_unlock(&sb->lock);
    cJSON_AddNumberToObject(o, "expires_in", (double)(z->token_ttl_ms / 1000));
    char domain[256];
    const char *host = http_header(req, "Host");
    snprintf(domain, sizeof domain, "http://%s/sandbox/zoho", host ? host : "127.0.0.1:3000");
    cJSON_AddStringToObject(o, "api_domain", domain);
    cJSON_AddStringToObject(o, "token_type", "Bearer");
    http_reply_json(req, 200, o);
}
