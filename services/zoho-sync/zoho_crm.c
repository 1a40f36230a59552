/*
 * zoho_crm: the access token and the one way zoho-sync sends a CRM request.
 *
 * One OAuth token for every worker (struct zsync.token under token_lock),
 * minted with the refresh-token grant when a quarter of its life (at most a
 * minute) is left or when Zoho answers INVALID_TOKEN, one refresh at a time,
 * and kept in the store (zoho_token) so that a restart does not mint another.
 */
#include "clock.h"
#include "log.h"
#include "zoho_sync_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int zsync_load_token_job(sqlite3 *db, void *arg)
{
    struct zsync *z = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT access, obtained_ms, expires_ms, api_domain FROM zoho_token",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(z->token.access, sizeof z->token.access, "%s", sqlite3_column_text(st, 0));
        z->token_obtained_ms = sqlite3_column_int64(st, 1);
        z->token.expires_ms = sqlite3_column_int64(st, 2);
        snprintf(z->token.api_domain, sizeof z->token.api_domain, "%s", sqlite3_column_text(st, 3));
    }
    sqlite3_finalize(st);
    return 0;
}

static int save_token_job(sqlite3 *db, void *arg)
{
    struct zsync *z = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO zoho_token(id, access, obtained_ms, expires_ms,"
                           " api_domain) VALUES(1, ?1, ?2, ?3, ?4)",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, z->token.access, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, z->token_obtained_ms);
    sqlite3_bind_int64(st, 3, z->token.expires_ms);
    sqlite3_bind_text(st, 4, z->token.api_domain, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Mint a new access token into the shared one. z->token_lock is held. */
static int refresh_locked(struct worker *w, int64_t *wait_ms)
{
    struct zsync *z = w->z;
    char form[2048]; /* each value URL-encoded fits: 3 x (160 + 160 + 256) + the names */
    if (zoho_token_form(z->client_id, z->client_secret, z->refresh_token, form, sizeof form) != 0) {
        explicit_bzero(form, sizeof form);
        log_error("The Zoho OAuth credentials do not fit in a token request", NULL);
        *wait_ms = 60 * 1000;
        return -1;
    }
    char url[APP_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/oauth/v2/token", z->up.zoho_accounts);
    struct httpc_response r;
    zoho_post_form(w->curl, url, form, (long)z->timeout_ms, &r);
    char error[128];
    int64_t now = clock_now_ms();
    enum zoho_token_status st =
        r.status == 0 ? ZOHO_TOKEN_RETRY : zoho_parse_token(r.body, r.len, now, &z->token, error);
    if (r.status == 0) {
        snprintf(error, sizeof error, "%.120s", r.error);
    }
    free(r.body);
    explicit_bzero(form, sizeof form);
    switch (st) {
    case ZOHO_TOKEN_OK:
        z->token_obtained_ms = now;
        store_run(z->store, save_token_job, z);
        log_info("Zoho access token refreshed",
                 LOG_FIELDS(LOG_I("validSeconds", (z->token.expires_ms - now) / 1000)));
        return 0;
    case ZOHO_TOKEN_THROTTLED:
        log_warn("Zoho refused to mint a token (too many); waiting",
                 LOG_FIELDS(LOG_S("error", error)));
        *wait_ms = 5 * 60 * 1000;
        return -1;
    case ZOHO_TOKEN_FATAL:
        atomic_store(&z->fatal, true);
        log_error("Zoho rejected the OAuth credentials; syncing stopped until they are fixed",
                  LOG_FIELDS(LOG_S("error", error)));
        *wait_ms = 60 * 1000;
        return -1;
    default:
        log_warn("Zoho token refresh failed; will retry", LOG_FIELDS(LOG_S("error", error)));
        *wait_ms = 5000;
        return -1;
    }
}

/* A token stays until a quarter of its life (at most a minute) is left. */
static bool token_fresh(const struct zsync *z, int64_t now)
{
    int64_t life = z->token.expires_ms - z->token_obtained_ms;
    int64_t margin = life / 4 < 60000 ? life / 4 : 60000;
    return z->token.access[0] != '\0' && now < z->token.expires_ms - margin;
}

/*
 * Give w a usable token: the shared one while it is fresh, else one refresh
 * for everyone (single flight under the lock). `refused` is a token Zoho just
 * answered INVALID_TOKEN to: refresh unless another worker already has.
 */
int zsync_token(struct worker *w, const char *refused, int64_t *wait_ms)
{
    struct zsync *z = w->z;
    int rc = 0;
    pthread_mutex_lock(&z->token_lock);
    if (atomic_load(&z->fatal)) {
        *wait_ms = 60 * 1000;
        rc = -1;
    } else if (!token_fresh(z, clock_now_ms()) ||
               (refused != NULL && strcmp(refused, z->token.access) == 0)) {
        rc = refresh_locked(w, wait_ms);
    }
    if (rc == 0) {
        w->tok = z->token;
    }
    pthread_mutex_unlock(&z->token_lock);
    return rc;
}

static const char *api_domain(const struct worker *w)
{
    return w->z->up.zoho_api_domain[0] ? w->z->up.zoho_api_domain : w->tok.api_domain;
}

static bool token_refused(const struct httpc_response *r)
{
    struct zoho_result top;
    return r->status == 401 && zoho_parse_records(r->body, r->len, &top, 1) < 0 &&
           strcmp(top.code, "INVALID_TOKEN") == 0;
}

void zsync_crm(struct worker *w, const char *method, const char *path, const char *json,
               struct httpc_response *r)
{
    struct zsync *z = w->z;
    for (int round = 0; round < 2; round++) {
        char url[APP_URL_MAX + 256];
        snprintf(url, sizeof url, "%s/crm/v8/%s", api_domain(w), path);
        if (json != NULL) {
            zoho_send_json(w->curl, method, url, w->tok.access, json, (long)z->timeout_ms, r);
        } else {
            zoho_get(w->curl, url, w->tok.access, (long)z->timeout_ms, r);
        }
        if (round == 1 || !token_refused(r)) {
            return;
        }
        /* Refresh once on INVALID_TOKEN (unless another worker already has), then send again. */
        int64_t wait;
        char refused[sizeof w->tok.access];
        snprintf(refused, sizeof refused, "%s", w->tok.access);
        if (zsync_token(w, refused, &wait) != 0) {
            return; /* the 401 stands: a transient failure for the caller */
        }
        free(r->body);
        r->body = NULL;
    }
}
