/* sources: signed webhooks (POST /sources/webhook/{name}) and what the sources share. */
#include "sources.h"
#include "lead_intake.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "sources_parse.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEBHOOKS_MAX 16
#define NAME_MAX_LEN 32

static const char sources_schema[] =
    "CREATE TABLE IF NOT EXISTS source_refs("
    "  source TEXT NOT NULL, ref TEXT NOT NULL, lead_id TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL, PRIMARY KEY(source, ref));";

struct webhook {
    char name[NAME_MAX_LEN];  /* lower case, as in the URL and the lead's `source` */
    char upper[NAME_MAX_LEN]; /* as in SOURCE_<NAME>_* */
    unsigned char secret[256];
    size_t secret_len;
    char header[64];
    struct source_map map;
    struct source_path ref_path;
};

struct sources {
    struct sources_ctx ctx;
    struct webhook hooks[WEBHOOKS_MAX];
    int nhooks;
    struct sources_meta *meta;
    struct sources_zoho *zoho;
};

void sources_count(const char *source, const char *result)
{
    char labels[128], esc[64];
    metrics_label(source, esc, sizeof esc);
    snprintf(labels, sizeof labels, "source=\"%s\",result=\"%s\"", esc, result);
    metrics_counter_add("leadbus_source_requests_total",
                        "Leads offered by a source (webhook name or meta), by result (created, "
                        "duplicate, bad_signature, invalid, malformed, unavailable, fetch_retry, "
                        "dead)",
                        labels, 1);
}

/* ---- writer thread ---- */

static int sources_step_ok(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

int sources_commit(const struct sources_ctx *ctx, sqlite3 *db, struct proto_lead_created *lead)
{
    sqlite3_stmt *find = NULL, *ins = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(db, "SELECT lead_id FROM source_refs WHERE source = ?1 AND ref = ?2", -1,
                           &find, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO source_refs(source, ref, lead_id, created_ms)"
                           " VALUES(?1, ?2, ?3, ?4)",
                           -1, &ins, NULL) != SQLITE_OK) {
        log_error("Cannot prepare source statement",
                  LOG_FIELDS(LOG_S("error", sqlite3_errmsg(db))));
        goto out;
    }
    sqlite3_bind_text(find, 1, lead->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(find, 2, lead->source_ref, -1, SQLITE_STATIC);
    int step = sqlite3_step(find);
    if (step == SQLITE_ROW) {
        store_text(find, 0, lead->lead_id, sizeof lead->lead_id);
        rc = SOURCE_DUPLICATE;
        goto out;
    }
    if (step != SQLITE_DONE || ctx->commit_lead(ctx->ing, db, lead) != 0) {
        goto out;
    }
    sqlite3_bind_text(ins, 1, lead->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, lead->source_ref, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, lead->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 4, clock_now_ms());
    rc = sources_step_ok(ins) == 0 ? SOURCE_CREATED : -1;
out:
    sqlite3_finalize(find);
    sqlite3_finalize(ins);
    return rc;
}

struct webhook_job {
    struct sources *s;
    struct proto_lead_created *lead;
};

static int webhook_job(sqlite3 *db, void *arg)
{
    struct webhook_job *j = arg;
    return sources_commit(&j->s->ctx, db, j->lead);
}

/* ---- HTTP ---- */

static struct webhook *find_hook(struct sources *s, const char *name)
{
    for (int i = 0; i < s->nhooks; i++) {
        if (strcmp(s->hooks[i].name, name) == 0) {
            return &s->hooks[i];
        }
    }
    return NULL;
}

/* The body's HMAC-SHA256 checked against the source's secret; a refusal answered (401). */
static bool signature_ok(const struct webhook *h, struct http_req *req, const char *body,
                         size_t len)
{
    enum source_sig sig =
        source_sig_check(h->secret, h->secret_len, body, len, http_header(req, h->header));
    if (sig == SOURCE_SIG_OK) {
        return true;
    }
    sources_count(h->name, "bad_signature");
    log_warn("Webhook source refused: signature",
             LOG_FIELDS(LOG_S("source", h->name), LOG_S("signature", source_sig_name(sig))));
    char msg[160];
    snprintf(msg, sizeof msg, "%s: the HMAC-SHA256 of the body (sha256=<hex>) is %s", h->header,
             sig == SOURCE_SIG_MISSING ? "missing" : "wrong");
    http_reply_error(req, 401, "bad_signature", msg, NULL);
    return false;
}

static void post_webhook(struct http_req *req, void *arg)
{
    struct sources *s = arg;
    struct webhook *h = find_hook(s, req->params[0]);
    if (h == NULL) {
        http_reply_error(req, 404, "unknown_source",
                         "no webhook source by this name (SOURCE_<NAME>_SECRET, _MAP, _ID)", NULL);
        return;
    }
    char *body;
    size_t len;
    if (http_read_body(req, s->ctx.max_body, &body, &len) != 0) {
        return;
    }
    struct lead_parse_result *r = NULL;
    if (signature_ok(h, req, body, len)) {
        r = lead_intake_result_alloc(req);
    }
    if (r == NULL) {
        free(body);
        return;
    }
    char ref[sizeof r->lead.source_ref];
    enum lead_parse_status ps =
        source_map_lead(&h->map, &h->ref_path, body, len, s->ctx.region, r, ref, sizeof ref);
    free(body);
    if (ps != LEAD_OK) {
        sources_count(h->name, ps == LEAD_MALFORMED ? "malformed" : "invalid");
        lead_intake_refused(req, ps, r);
    } else {
        struct proto_lead_created *l = &r->lead;
        lead_intake_stamp(l, h->name, "webhook");
        snprintf(l->source_ref, sizeof l->source_ref, "%s", ref);
        struct webhook_job j = {s, l};
        int rc = store_run(s->ctx.store, webhook_job, &j);
        if (rc == SOURCE_CREATED) {
            sources_count(h->name, "created");
            lead_intake_reply(req, 202, l->lead_id, false, r);
            log_info("Lead accepted", LOG_FIELDS(LOG_S("leadId", l->lead_id),
                                                 LOG_PHONE("phoneNumber", l->phone_e164),
                                                 LOG_S("phoneStatus", l->phone_status),
                                                 LOG_S("source", l->source), LOG_S("via", l->via)));
        } else if (rc == SOURCE_DUPLICATE) {
            sources_count(h->name, "duplicate");
            lead_intake_reply(req, 200, l->lead_id, true, NULL);
        } else {
            sources_count(h->name, "unavailable");
            http_reply_error(req, 503, "unavailable", "the lead could not be stored; retry", NULL);
        }
    }
    lead_parse_free(r);
    free(r);
}

/* ---- settings ---- */

static const char *const suffixes[] = {"_SECRET", "_MAP", "_ID", "_HEADER", NULL};

struct name_scan {
    struct sources *s;
    char err[CONFIG_ERR_MAX];
};

/* SOURCE_<NAME>_<SUFFIX>: remember NAME. */
static void scan_name(const char *var, void *arg)
{
    struct name_scan *ns = arg;
    struct sources *s = ns->s;
    size_t n = strlen(var);
    for (int i = 0; suffixes[i] != NULL && ns->err[0] == '\0'; i++) {
        size_t sl = strlen(suffixes[i]);
        if (n <= 7 + sl || strcmp(var + n - sl, suffixes[i]) != 0) {
            continue;
        }
        size_t nl = n - 7 - sl;
        char upper[NAME_MAX_LEN];
        if (nl >= sizeof upper) {
            snprintf(ns->err, CONFIG_ERR_MAX, "%s: the source name is longer than %d characters",
                     var, NAME_MAX_LEN - 1);
            return;
        }
        memcpy(upper, var + 7, nl);
        upper[nl] = '\0';
        for (int k = 0; k < s->nhooks; k++) {
            if (strcmp(s->hooks[k].upper, upper) == 0) {
                return;
            }
        }
        if (s->nhooks == WEBHOOKS_MAX) {
            snprintf(ns->err, CONFIG_ERR_MAX, "%s: more than %d webhook sources", var,
                     WEBHOOKS_MAX);
            return;
        }
        struct webhook *h = &s->hooks[s->nhooks++];
        snprintf(h->upper, sizeof h->upper, "%s", upper);
        for (size_t k = 0; k <= nl; k++) {
            h->name[k] = upper[k] == '_' ? '-' : (char)tolower((unsigned char)upper[k]);
        }
        return;
    }
}

static int hook_settings(struct webhook *h, char err[CONFIG_ERR_MAX])
{
    char var[NAME_MAX_LEN + 16], ebuf[160];
    const char *v;
    snprintf(var, sizeof var, "SOURCE_%s_SECRET", h->upper);
    v = config_raw(var);
    if (v == NULL || strlen(v) < 16 || strlen(v) >= sizeof h->secret) {
        snprintf(err, CONFIG_ERR_MAX,
                 "%s: required for the webhook source '%s', 16 to 255 characters", var, h->name);
        return -1;
    }
    h->secret_len = strlen(v);
    memcpy(h->secret, v, h->secret_len);
    snprintf(var, sizeof var, "SOURCE_%s_MAP", h->upper);
    v = config_raw(var);
    if (v == NULL || source_map_parse(v, &h->map, ebuf, sizeof ebuf) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "%s: %s", var,
                 v == NULL ? "required (field=$.path,... e.g. name=$.name,phone=$.phone)" : ebuf);
        return -1;
    }
    snprintf(var, sizeof var, "SOURCE_%s_ID", h->upper);
    v = config_raw(var);
    if (v == NULL || source_path_parse(v, strlen(v), &h->ref_path) != 0 || h->ref_path.nsegs == 0) {
        snprintf(err, CONFIG_ERR_MAX,
                 "%s: required, the path of the source's own id in the body (e.g. $.id): "
                 "a redelivery is recognised by it",
                 var);
        return -1;
    }
    snprintf(var, sizeof var, "SOURCE_%s_HEADER", h->upper);
    v = config_str(var, "X-Signature-256");
    if (strlen(v) == 0 || strlen(v) >= sizeof h->header || strpbrk(v, " :\r\n") != NULL) {
        snprintf(err, CONFIG_ERR_MAX, "%s: expected an HTTP header name", var);
        return -1;
    }
    snprintf(h->header, sizeof h->header, "%s", v);
    return 0;
}

/* ---- open / close ---- */

void sources_close(struct sources *s)
{
    if (s == NULL) {
        return;
    }
    sources_meta_close(s->meta);
    sources_zoho_close(s->zoho);
    for (int i = 0; i < s->nhooks; i++) {
        memset(s->hooks[i].secret, 0, sizeof s->hooks[i].secret);
    }
    free(s);
}

int sources_open(const struct sources_ctx *ctx, struct sources **out, char err[CONFIG_ERR_MAX])
{
    struct sources *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, CONFIG_ERR_MAX, "sources: out of memory");
        return -1;
    }
    s->ctx = *ctx;
    struct name_scan ns = {.s = s};
    config_each_name("SOURCE_", scan_name, &ns);
    if (ns.err[0] != '\0') {
        snprintf(err, CONFIG_ERR_MAX, "%s", ns.err);
        goto fail;
    }
    for (int i = 0; i < s->nhooks; i++) {
        if (hook_settings(&s->hooks[i], err) != 0) {
            goto fail;
        }
    }
    if (store_exec_schema(ctx->store, sources_schema) != 0) {
        snprintf(err, CONFIG_ERR_MAX, "ingest store: cannot add the source_refs table");
        goto fail;
    }
    if (http_route(ctx->app->http, "POST", "/sources/webhook/{name}", post_webhook, s) != 0 ||
        sources_meta_open(ctx, &s->meta, err) != 0 || sources_zoho_open(ctx, &s->zoho, err) != 0) {
        goto fail;
    }
    for (int i = 0; i < s->nhooks; i++) {
        log_info("Webhook source ready", LOG_FIELDS(LOG_S("source", s->hooks[i].name),
                                                    LOG_S("header", s->hooks[i].header)));
    }
    *out = s;
    return 0;
fail:
    sources_close(s);
    return -1;
}
