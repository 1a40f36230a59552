/* callback_route: POST /exotel/callback, Exotel's StatusCallback for one attempt. */
#include "dialer_internal.h"
#include "api_key.h"
#include "exotel_callback.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define CALLBACK_BODY_MAX (64 * 1024)

/* A terminal callback against its attempt, in one transaction: who it may be, then the outcome. */
struct callback_job {
    struct outcome o;
    const char *callback_sid;
    bool legacy;             /* authenticated by the static token of before the upgrade */
    int64_t key_created_ms;  /* attempts dialed before this may use the legacy token */
    bool unauthorized;       /* out: a legacy token for an attempt dialed since */
    enum callback_verdict v; /* out */
    char state[16];          /* out */
};

static int callback_job(sqlite3 *db, void *arg)
{
    struct callback_job *j = arg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT state, coalesce(sid, ''), coalesce(dialed_ms, 0) FROM attempts"
                           " WHERE call_id = ?1 AND attempt = ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, j->o.call_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, j->o.attempt);
    char sid[64] = "";
    int64_t dialed_ms = 0;
    j->state[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW) {
        store_text(st, 0, j->state, sizeof j->state);
        store_text(st, 1, sid, sizeof sid);
        dialed_ms = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    j->o.found = j->state[0] != '\0';
    j->o.changed = false;
    j->unauthorized = j->legacy && j->o.found && dialed_ms >= j->key_created_ms;
    if (!j->o.found || j->unauthorized) {
        return 0;
    }
    j->v = callback_verdict(j->state, sid, j->callback_sid);
    return j->v == CALLBACK_APPLY ? attempts_finalize(db, &j->o) : 0;
}

/* The token is the attempt's HMAC; the static token of before only for attempts dialed then. */
static int callback_auth(struct http_req *req, struct dialer *d, const char *call_id, long attempt,
                         bool *legacy)
{
    char token[80] = "";
    http_query(req, "token", token, sizeof token);
    *legacy = false;
    if (callback_token_ok(d->cb_key, sizeof d->cb_key, call_id, (int)attempt, token)) {
        return 0;
    }
    if (d->legacy_token[0] != '\0' &&
        api_key_equal(token, strlen(token), d->legacy_token, strlen(d->legacy_token))) {
        *legacy = true;
        return 0;
    }
    return -1;
}

/* call and attempt from the query; -1 (400 answered) when missing or malformed. */
static int callback_target(struct http_req *req, char call_id[64], long *attempt)
{
    char attempt_s[16] = "", *end = NULL;
    if (http_query(req, "call", call_id, 64) > 0 &&
        http_query(req, "attempt", attempt_s, sizeof attempt_s) > 0) {
        *attempt = strtol(attempt_s, &end, 10);
    }
    if (end == NULL || *end != '\0' || *attempt < 1 || *attempt > 1000) {
        http_reply_error(req, 400, "bad_request", "call and attempt query parameters are required",
                         NULL);
        return -1;
    }
    return 0;
}

static void callback_answer(struct http_req *req, const struct callback_job *j)
{
    if (j->unauthorized) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong callback token", NULL);
    } else if (!j->o.found) {
        http_reply_error(req, 404, "not_found", "no such call attempt", NULL);
    } else if (j->v == CALLBACK_MISMATCH) {
        log_warn("Callback refused: its CallSid is not the one Exotel returned for the attempt",
                 LOG_FIELDS(LOG_S("callId", j->o.call_id), LOG_I("attempt", j->o.attempt),
                            LOG_S("callSid", j->callback_sid)));
        http_reply_error(req, 409, "callsid_mismatch",
                         "CallSid is not the call Exotel placed for this attempt", NULL);
    } else if (j->v == CALLBACK_DEFER) {
        log_warn("Callback for an attempt whose Sid is not known yet: Exotel's call details "
                 "will decide",
                 LOG_FIELDS(LOG_S("callId", j->o.call_id), LOG_I("attempt", j->o.attempt),
                            LOG_S("state", j->state), LOG_S("callSid", j->callback_sid)));
        static const char deferred[] =
            "{\"success\":true,\"deferred\":\"the attempt is looked up in Exotel's call details\"}";
        http_reply(req, 202, "application/json", deferred, sizeof deferred - 1);
    } else {
        if (j->o.changed) {
            log_info("Call status received",
                     LOG_FIELDS(LOG_S("callId", j->o.call_id), LOG_I("attempt", j->o.attempt),
                                LOG_S("callSid", j->callback_sid), LOG_S("status", j->o.status),
                                LOG_I("durationS", j->o.duration_s)));
        } else {
            log_info("Duplicate status callback ignored",
                     LOG_FIELDS(LOG_S("callId", j->o.call_id), LOG_I("attempt", j->o.attempt)));
        }
        cJSON *out = cJSON_CreateObject();
        cJSON_AddBoolToObject(out, "success", true);
        cJSON_AddBoolToObject(out, "duplicate", !j->o.changed);
        http_reply_json(req, 200, out);
    }
}

void dialer_post_callback(struct http_req *req, void *arg)
{
    struct dialer *d = arg;
    char call_id[64] = "";
    long attempt = 0;
    bool legacy = false;
    if (callback_target(req, call_id, &attempt) != 0) {
        return;
    }
    if (callback_auth(req, d, call_id, attempt, &legacy) != 0) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong callback token", NULL);
        return;
    }
    char *body;
    size_t len;
    if (http_read_body(req, CALLBACK_BODY_MAX, &body, &len) != 0) {
        return;
    }
    struct exotel_callback cb;
    int rc = exotel_callback_parse(http_header(req, "Content-Type"), body, len, &cb);
    free(body);
    if (rc != 0) {
        http_reply_error(req, 400, "malformed_callback",
                         "expected Exotel's StatusCallback with CallSid and Status (multipart, "
                         "urlencoded or JSON)",
                         NULL);
        return;
    }
    if (!exotel_status_terminal(cb.status)) {
        static const char ok[] = "{\"success\":true,\"ignored\":\"not a terminal status\"}";
        http_reply(req, 200, "application/json", ok, sizeof ok - 1);
        return;
    }
    struct callback_job j = {
        .o = {.d = d,
              .call_id = call_id,
              .attempt = (int)attempt,
              .status = cb.status,
              .sid = cb.call_sid,
              .duration_s = cb.duration_s,
              .recording = dialer_checked_recording(call_id, (int)attempt, cb.recording_url),
              .detail = "status callback",
              .leg1 = cb.leg1_status,
              .final = true},
        .callback_sid = cb.call_sid,
        .legacy = legacy,
        .key_created_ms = d->cb_key_created_ms};
    if (store_run(d->store, callback_job, &j) != 0) {
        http_reply_error(req, 503, "unavailable", "the store could not be written; retry", NULL);
        return;
    }
    callback_answer(req, &j);
}
