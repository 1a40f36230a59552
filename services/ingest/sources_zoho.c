/*
 * sources_zoho: leads created directly in Zoho CRM (typed, imported, Zoho's
 * web-to-lead forms) at POST /sources/zoho, sent by a workflow rule's
 * webhook (README, "Lead sources": the rule, its JSON body and its secret).
 *
 * The body is the record itself (sources_zoho_parse.h). The shared secret
 * ZOHO_WEBHOOK_SECRET comes in the header X-Leadbus-Secret, or as the body's
 * `leadbus_secret` for a webhook that cannot send headers; it is compared in
 * constant time before anything is stored, and never logged. Then:
 *
 *   wrong or missing secret          401, nothing stored
 *   a record leadbus created         200 {"ignored":true} (it carries ZOHO_EXTERNAL_ID_FIELD)
 *   a new record                     202: the lead, its lead.created (source and via `zoho`,
 *                                    source_ref the record id) and source_refs('zoho', id) in
 *                                    one transaction (sources_commit)
 *   the same record again            200 with the first lead's id, nothing new
 *
 * zoho-sync links such a lead to its record instead of upserting it
 * (services/zoho-sync/zoho_link.c), so call outcomes land on that record.
 *
 * Settings: ZOHO_WEBHOOK_SECRET (16–255 characters). Without it, the sandbox's
 * secret is used while Zoho is simulated (no ZOHO_REFRESH_TOKEN) and SANDBOX
 * is not off; otherwise the route answers 404. Live Zoho with the webhook on
 * needs ZOHO_EXTERNAL_ID_FIELD (else leadbus's own records would come back as
 * new leads): start-up stops without it.
 */
#include "api_key.h"
#include "clock.h"
#include "json_depth.h"
#include "lead_intake.h"
#include "log.h"
#include "sources.h"
#include "sources_zoho_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ZOHO_SANDBOX_SECRET "sandbox-zoho-webhook-secret"

struct sources_zoho {
    struct sources_ctx ctx;
    bool enabled;
    bool sandbox;
    char secret[256];
    size_t secret_len;
    char ext_field[64];
};

struct zoho_src_job {
    struct sources_zoho *z;
    struct proto_lead_created *lead;
};

static int zoho_src_job(sqlite3 *db, void *arg)
{
    struct zoho_src_job *j = arg;
    return sources_commit(&j->z->ctx, db, j->lead);
}

/* The secret from the header, else from the body; true when it is ZOHO_WEBHOOK_SECRET. */
static bool zoho_src_secret_ok(const struct sources_zoho *z, struct http_req *req, const char *body,
                               size_t len)
{
    const char *given = http_header(req, "X-Leadbus-Secret");
    cJSON *rec = NULL;
    if (given == NULL && json_depth_ok(body, len, 16)) {
        rec = cJSON_ParseWithLength(body, len);
        given = zoho_src_body_secret(rec);
    }
    bool ok = given != NULL && api_key_equal(given, strlen(given), z->secret, z->secret_len);
    cJSON_Delete(rec);
    return ok;
}

/* A record that maps to a lead: store it once per record id. */
static void zoho_src_store(struct sources_zoho *z, struct http_req *req,
                           struct lead_parse_result *r, const char *ref)
{
    struct proto_lead_created *l = &r->lead;
    lead_intake_stamp(l, "zoho", "zoho");
    snprintf(l->source_ref, sizeof l->source_ref, "%s", ref);
    struct zoho_src_job j = {z, l};
    int rc = store_run(z->ctx.store, zoho_src_job, &j);
    if (rc == SOURCE_CREATED) {
        sources_count("zoho", "created");
        lead_intake_reply(req, 202, l->lead_id, false, r);
        log_info("Lead accepted",
                 LOG_FIELDS(LOG_S("leadId", l->lead_id), LOG_PHONE("phoneNumber", l->phone_e164),
                            LOG_S("phoneStatus", l->phone_status), LOG_S("source", "zoho"),
                            LOG_S("zohoId", ref)));
    } else if (rc == SOURCE_DUPLICATE) {
        sources_count("zoho", "duplicate");
        lead_intake_reply(req, 200, l->lead_id, true, NULL);
    } else {
        sources_count("zoho", "unavailable");
        log_error("Cannot store a lead from Zoho; Zoho's webhook gets 503",
                  LOG_FIELDS(LOG_S("zohoId", ref)));
        http_reply_error(req, 503, "unavailable", "the lead could not be stored; retry", NULL);
    }
}

static void post_zoho(struct http_req *req, void *arg)
{
    struct sources_zoho *z = arg;
    if (!z->enabled) {
        http_reply_error(req, 404, "source_not_configured",
                         "leads from Zoho CRM are off: set ZOHO_WEBHOOK_SECRET", NULL);
        return;
    }
    char *body;
    size_t len;
    if (http_read_body(req, z->ctx.max_body, &body, &len) != 0) {
        return;
    }
    if (!zoho_src_secret_ok(z, req, body, len)) {
        free(body);
        sources_count("zoho", "bad_secret");
        log_warn("Zoho webhook refused: X-Leadbus-Secret missing or wrong", NULL);
        http_reply_error(req, 401, "bad_secret",
                         "X-Leadbus-Secret (or the body's leadbus_secret) is missing or is not "
                         "ZOHO_WEBHOOK_SECRET",
                         NULL);
        return;
    }
    struct lead_parse_result *r = calloc(1, sizeof *r);
    char ref[ZOHO_RECORD_ID_MAX];
    enum zoho_src_status st =
        r == NULL ? ZOHO_SRC_MALFORMED
                  : zoho_src_webhook(body, len, z->ext_field, z->ctx.region, r, ref);
    free(body);
    if (r == NULL) {
        http_reply_error(req, 503, "unavailable", "out of memory; retry", NULL);
        return;
    }
    if (st == ZOHO_SRC_OURS) {
        sources_count("zoho", "ignored");
        log_info("Zoho record ignored: leadbus created it",
                 LOG_FIELDS(LOG_S("zohoId", ref), LOG_S("field", z->ext_field)));
        static const char ok[] = "{\"success\":true,\"ignored\":true}";
        http_reply(req, 200, "application/json", ok, sizeof ok - 1);
    } else if (st == ZOHO_SRC_MALFORMED) {
        sources_count("zoho", "malformed");
        http_reply_error(req, 400, "malformed_record", r->message, NULL);
    } else if (st == ZOHO_SRC_INVALID) {
        sources_count("zoho", "invalid");
        http_reply_error(req, 422, "validation_failed", r->message, r->fields);
        r->fields = NULL;
    } else {
        zoho_src_store(z, req, r, ref);
    }
    lead_parse_free(r);
    free(r);
}

static int zoho_src_settings(struct sources_zoho *z, char err[CONFIG_ERR_MAX])
{
    const char *secret = config_raw("ZOHO_WEBHOOK_SECRET");
    bool zoho_live = config_raw("ZOHO_REFRESH_TOKEN") != NULL;
    bool sandbox_off = strcasecmp(config_str("SANDBOX", "auto"), "off") == 0;
    z->sandbox = secret == NULL && !zoho_live && !sandbox_off;
    z->enabled = secret != NULL || z->sandbox;
    secret = secret != NULL ? secret : ZOHO_SANDBOX_SECRET;
    if (strlen(secret) < 16 || strlen(secret) >= sizeof z->secret) {
        snprintf(err, CONFIG_ERR_MAX, "ZOHO_WEBHOOK_SECRET: 16 to 255 characters");
        return -1;
    }
    z->secret_len = strlen(secret);
    memcpy(z->secret, secret, z->secret_len);
    snprintf(z->ext_field, sizeof z->ext_field, "%s",
             config_str("ZOHO_EXTERNAL_ID_FIELD", zoho_live ? "" : "Leadbus_Id"));
    if (z->enabled && z->ext_field[0] == '\0') {
        snprintf(err, CONFIG_ERR_MAX,
                 "ZOHO_EXTERNAL_ID_FIELD: required with ZOHO_WEBHOOK_SECRET (the field that marks "
                 "the records leadbus created; without it they would come back as new leads)");
        return -1;
    }
    return 0;
}

void sources_zoho_close(struct sources_zoho *z)
{
    if (z == NULL) {
        return;
    }
    explicit_bzero(z->secret, sizeof z->secret);
    free(z);
}

int sources_zoho_open(const struct sources_ctx *ctx, struct sources_zoho **out,
                      char err[CONFIG_ERR_MAX])
{
    struct sources_zoho *z = calloc(1, sizeof *z);
    if (z == NULL) {
        snprintf(err, CONFIG_ERR_MAX, "sources: out of memory");
        return -1;
    }
    z->ctx = *ctx;
    if (zoho_src_settings(z, err) != 0) {
        goto fail;
    }
    if (http_route(ctx->app->http, "POST", "/sources/zoho", post_zoho, z) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "sources: cannot add the Zoho route");
        goto fail;
    }
    if (z->enabled) {
        log_info("Zoho CRM source ready (workflow-rule webhook at /sources/zoho)",
                 LOG_FIELDS(LOG_S("secret", z->sandbox ? "sandbox" : "ZOHO_WEBHOOK_SECRET"),
                            LOG_S("externalIdField", z->ext_field)));
    }
    *out = z;
    return 0;
fail:
    sources_zoho_close(z);
    return -1;
}
