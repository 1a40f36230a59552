/*
 * sandbox_zoho: Zoho Accounts' refresh-token grant and the CRM calls leadbus
 * makes (Leads insert/upsert/get, Notes, Calls), as shared/reference/zoho.md
 * describes them: token errors with HTTP 200, the 10-per-10-minutes mint
 * limit, INVALID_TOKEN for expired tokens, per-record codes inside data[].
 */
#include "api_key.h"
#include "clock.h"
#include "log.h"
#include "json_depth.h"
#include "sandbox.h"
#include "sandbox_coql.h"
#include "upstream.h"

#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE_TOKENS 15
#define MINTS_MAX 1000
#define MINT_WINDOW_MS (10 * 60 * 1000)
#define MAX_RECORDS_PER_CALL 100

struct zrecord {
    char id[24];
    char module[8]; /* Leads, Notes, Calls */
    char parent[24];
    int64_t created, modified;
    cJSON *fields;
};

struct sandbox_zoho {
    char client_id[160], client_secret[160], refresh_token[256];
    char external_field[64];
    /* Layout-mandatory fields beyond Last_Name (SANDBOX_ZOHO_REQUIRED_FIELDS). */
    char required[256];
    char custom[256]; /* the org's custom fields (SANDBOX_ZOHO_CUSTOM_FIELDS) */
    int64_t token_ttl_ms;
    struct {
        char token[80];
        int64_t expires;
    } tokens[LIVE_TOKENS];
    int ntokens, token_head;
    int64_t mints[MINTS_MAX];
    int mint_limit; /* tokens per refresh token per 10 minutes: Zoho's 10, or
                       SANDBOX_ZOHO_MINT_LIMIT */
    int nmints, mint_head;
    struct zrecord *recs;
    int nrecs, cap, records_max;
    uint64_t next_id;
};

static const char *const lead_fields[] = {"First_Name",
                                          "Last_Name",
                                          "Salutation",
                                          "Email",
                                          "Secondary_Email",
                                          "Phone",
                                          "Mobile",
                                          "Fax",
                                          "Company",
                                          "Designation",
                                          "Lead_Source",
                                          "Lead_Status",
                                          "Description",
                                          "Website",
                                          "Street",
                                          "City",
                                          "State",
                                          "Zip_Code",
                                          "Country",
                                          "Industry",
                                          "No_of_Employees",
                                          "Annual_Revenue",
                                          "Rating",
                                          "Email_Opt_Out",
                                          "Owner",
                                          "Layout",
                                          "Tag",
                                          "Skype_ID",
                                          "Twitter",
                                          NULL};

/* ---- answers ---- */

static void zoho_error(struct http_req *req, int status, const char *code, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "code", code);
    cJSON_AddObjectToObject(o, "details");
    cJSON_AddStringToObject(o, "message", message);
    cJSON_AddStringToObject(o, "status", "error");
    http_reply_json_ex(req, status, status == 429 ? "Retry-After: 1\r\n" : NULL, o);
}

static cJSON *record_error(const char *code, const char *message, const char *api_name, int index,
                           const char *extra_key, cJSON *extra_val)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "code", code);
    cJSON *d = cJSON_AddObjectToObject(e, "details");
    if (api_name != NULL) {
        char path[96];
        snprintf(path, sizeof path, "$.data[%d].%s", index, api_name);
        cJSON_AddStringToObject(d, "api_name", api_name);
        cJSON_AddStringToObject(d, "json_path", path);
    }
    if (extra_key != NULL) {
        cJSON_AddItemToObject(d, extra_key, extra_val);
    }
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "status", "error");
    return e;
}

static cJSON *record_success(const struct zrecord *r, const char *message)
{
    char created[26], modified[26];
    sandbox_zoho_time(r->created, created);
    sandbox_zoho_time(r->modified, modified);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "code", "SUCCESS");
    cJSON *d = cJSON_AddObjectToObject(e, "details");
    cJSON_AddStringToObject(d, "Modified_Time", modified);
    cJSON_AddStringToObject(d, "Created_Time", created);
    cJSON_AddStringToObject(d, "id", r->id);
    cJSON *by = cJSON_AddObjectToObject(d, "Created_By");
    cJSON_AddStringToObject(by, "name", "Sandbox User");
    cJSON_AddStringToObject(by, "id", "5725767000000411001");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "status", "success");
    return e;
}

/* ---- faults and auth ---- */

static bool faulted(struct sandbox *sb, struct http_req *req)
{
    enum sandbox_fault f = sandbox_fault_roll(sb, SANDBOX_ZOHO);
    if (f == FAULT_429) {
        zoho_error(req, 429, "TOO_MANY_REQUESTS",
                   "Number of API requests for the 24 hour period is exceeded or the concurrency "
                   "limit of the user for the app is exceeded.");
    } else if (f == FAULT_500 || f == FAULT_TIMEOUT) {
        zoho_error(req, 500, "INTERNAL_ERROR", "Internal Server Error");
    } else if (f == FAULT_DOWN) {
        zoho_error(req, 503, "INTERNAL_ERROR", "Service Unavailable");
    }
    return f != FAULT_NONE;
}

/* Checks the Authorization header; answers 401 itself. Lock not held. */
static bool token_ok(struct sandbox *sb, struct http_req *req)
{
    const char *h = http_header(req, "Authorization");
    if (h == NULL || strncmp(h, "Zoho-oauthtoken ", 16) != 0) {
        zoho_error(req, 401, "AUTHENTICATION_FAILURE", "Authentication failed");
        return false;
    }
    h += 16;
    struct sandbox_zoho *z = sb->zoho;
    int64_t now = clock_now_ms();
    bool ok = false;
    pthread_mutex_lock(&sb->lock);
    for (int i = 0; i < z->ntokens; i++) {
        const char *t = z->tokens[i].token;
        if (api_key_equal(h, strlen(h), t, strlen(t)) && z->tokens[i].expires > now) {
            ok = true;
        }
    }
    pthread_mutex_unlock(&sb->lock);
    if (!ok) {
        zoho_error(req, 401, "INVALID_TOKEN", "invalid oauth token");
    }
    return ok;
}

static bool version_ok(struct http_req *req)
{
    const char *v = req->params[0];
    bool ok = v[0] == 'v' && v[1] >= '2' && v[1] <= '8' &&
              (v[2] == '\0' || (v[2] == '.' && v[3] >= '0' && v[3] <= '9' && v[4] == '\0'));
    if (!ok) {
        zoho_error(req, 404, "INVALID_URL_PATTERN",
                   "Please check if the URL trying to access is a correct one");
    }
    return ok;
}

/* ---- token endpoint ---- */

static void post_token(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    struct sandbox_zoho *z = sb->zoho;
    char *body;
    size_t len;
    if (http_read_body(req, 8192, &body, &len) != 0) {
        return;
    }
    /* Zoho's docs put the fields in the query string, its SDK in the body: take either. */
    char grant[32] = "", cid[160] = "", secret[160] = "", refresh[256] = "";
    const char *src[2] = {body, req->query ? req->query : ""};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(src[i]);
        if (!grant[0])
            mg_get_var(src[i], n, "grant_type", grant, sizeof grant);
        if (!cid[0])
            mg_get_var(src[i], n, "client_id", cid, sizeof cid);
        if (!secret[0])
            mg_get_var(src[i], n, "client_secret", secret, sizeof secret);
        if (!refresh[0])
            mg_get_var(src[i], n, "refresh_token", refresh, sizeof refresh);
    }
    free(body);
    char summary[256];
    snprintf(summary, sizeof summary,
             "grant_type=%s client_id=%.8s*** client_secret=*** refresh_token=***", grant, cid);
    sandbox_log_request(sb, SANDBOX_ZOHO, req->method, req->path, summary);
    if (faulted(sb, req)) {
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
    pthread_mutex_unlock(&sb->lock);
    cJSON_AddNumberToObject(o, "expires_in", (double)(z->token_ttl_ms / 1000));
    char domain[256];
    const char *host = http_header(req, "Host");
    snprintf(domain, sizeof domain, "http://%s/sandbox/zoho", host ? host : "127.0.0.1:3000");
    cJSON_AddStringToObject(o, "api_domain", domain);
    cJSON_AddStringToObject(o, "token_type", "Bearer");
    http_reply_json(req, 200, o);
}

/* ---- records (lock held) ---- */

static cJSON *record_json(const struct zrecord *r);

/* At SANDBOX_RECORDS_MAX records, the oldest tenth goes (and is counted). */
static void drop_oldest_records(struct sandbox_zoho *z)
{
    if (z->nrecs < z->records_max) {
        return;
    }
    int k = z->records_max / 10 > 0 ? z->records_max / 10 : 1;
    for (int i = 0; i < k; i++) {
        cJSON_Delete(z->recs[i].fields);
        sandbox_dropped("zoho_records");
    }
    memmove(z->recs, z->recs + k, (size_t)(z->nrecs - k) * sizeof *z->recs);
    z->nrecs -= k;
}

static struct zrecord *new_record(struct sandbox_zoho *z, const char *module, int64_t now)
{
    drop_oldest_records(z);
    if (z->nrecs == z->cap) {
        int ncap = z->cap ? z->cap * 2 : 256;
        struct zrecord *grown = realloc(z->recs, (size_t)ncap * sizeof *grown);
        if (grown == NULL) {
            return NULL;
        }
        z->recs = grown;
        z->cap = ncap;
    }
    struct zrecord *r = &z->recs[z->nrecs++];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "5725767%012llu", (unsigned long long)++z->next_id);
    snprintf(r->module, sizeof r->module, "%s", module);
    r->created = r->modified = now;
    return r;
}

static struct zrecord *find_by_id(struct sandbox_zoho *z, const char *module, const char *id)
{
    for (int i = 0; i < z->nrecs; i++) {
        if (strcmp(z->recs[i].module, module) == 0 && strcmp(z->recs[i].id, id) == 0) {
            return &z->recs[i];
        }
    }
    return NULL;
}

static struct zrecord *find_by_field(struct sandbox_zoho *z, const char *field, const char *value)
{
    for (int i = 0; i < z->nrecs && value != NULL && value[0]; i++) {
        if (strcmp(z->recs[i].module, "Leads") != 0) {
            continue;
        }
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(z->recs[i].fields, field);
        if (cJSON_IsString(v) && strcasecmp(v->valuestring, value) == 0) {
            return &z->recs[i];
        }
    }
    return NULL;
}

int sandbox_zoho_insert_lead(struct sandbox *sb, cJSON *fields, char id[24])
{
    struct zrecord *r = new_record(sb->zoho, "Leads", clock_now_ms());
    if (r == NULL) {
        return -1;
    }
    r->fields = fields;
    memcpy(id, r->id, sizeof r->id);
    return 0;
}

cJSON *sandbox_zoho_lead_json(struct sandbox *sb, const char *id)
{
    struct zrecord *r = find_by_id(sb->zoho, "Leads", id);
    return r != NULL ? record_json(r) : NULL;
}

static const char *str_field(const cJSON *rec, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Validate a Leads record; returns an error element or NULL. */
static bool custom_field(const struct sandbox_zoho *z, const char *name)
{
    char list[256], *save = NULL;
    snprintf(list, sizeof list, "%s", z->custom);
    for (char *f = strtok_r(list, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save)) {
        if (strcmp(f, name) == 0) {
            return true;
        }
    }
    return false;
}

/* Validate a Leads record for insert/upsert, or (update) only the fields it carries. */
static cJSON *check_lead(const struct sandbox_zoho *z, const cJSON *rec, int i, bool update)
{
    if (!cJSON_IsObject(rec)) {
        return record_error("INVALID_DATA", "invalid data", NULL, i, NULL, NULL);
    }
    for (const cJSON *f = rec->child; f != NULL; f = f->next) {
        bool known = strcmp(f->string, z->external_field) == 0 || f->string[0] == '$' ||
                     strcmp(f->string, "id") == 0 || custom_field(z, f->string);
        for (int k = 0; !known && lead_fields[k]; k++) {
            known = strcmp(f->string, lead_fields[k]) == 0;
        }
        if (!known) {
            return record_error("INVALID_DATA", "the field api name given seems to be invalid",
                                f->string, i, NULL, NULL);
        }
        if (strcmp(f->string, "Owner") == 0 || strcmp(f->string, "Layout") == 0 ||
            strcmp(f->string, "Tag") == 0 || strcmp(f->string, "Email_Opt_Out") == 0 ||
            f->string[0] == '$' || cJSON_IsNull(f)) {
            continue;
        }
        if (!cJSON_IsString(f)) {
            return record_error("INVALID_DATA", "invalid data", f->string, i, "expected_data_type",
                                cJSON_CreateString("text"));
        }
        size_t max = strcmp(f->string, "Description") == 0 ? 32000 : 255;
        if (strlen(f->valuestring) > max) {
            return record_error("INVALID_DATA", "invalid data", f->string, i, "maximum_length",
                                cJSON_CreateNumber((double)max));
        }
    }
    const char *last = str_field(rec, "Last_Name");
    if (update) {
        return last != NULL && last[0] == '\0'
                   ? record_error("MANDATORY_NOT_FOUND", "required field not found", "Last_Name", i,
                                  NULL, NULL)
                   : NULL;
    }
    if (last == NULL || last[0] == '\0') {
        return record_error("MANDATORY_NOT_FOUND", "required field not found", "Last_Name", i, NULL,
                            NULL);
    }
    char req[256], *save = NULL;
    snprintf(req, sizeof req, "%s", z->required);
    for (char *f = strtok_r(req, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save)) {
        const char *v = str_field(rec, f);
        if (v == NULL || v[0] == '\0') {
            return record_error("MANDATORY_NOT_FOUND", "required field not found", f, i, NULL,
                                NULL);
        }
    }
    const char *email = str_field(rec, "Email");
    if (email != NULL && email[0] && (strchr(email, '@') == NULL || strchr(email, ' ') != NULL)) {
        return record_error("INVALID_DATA", "invalid data", "Email", i, NULL, NULL);
    }
    return NULL;
}

static cJSON *duplicate_error(const struct zrecord *dup, const char *field, int i)
{
    cJSON *d = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(d, "module");
    cJSON_AddStringToObject(m, "api_name", "Leads");
    cJSON_AddStringToObject(m, "id", dup->id);
    cJSON_AddStringToObject(d, "id", dup->id);
    return record_error("DUPLICATE_DATA", "duplicate data", field, i, "duplicate_record", d);
}

/* Parse {"data":[...]} with 1..100 elements; answers the error itself and returns NULL. */
static cJSON *parse_data(struct http_req *req, cJSON **root)
{
    char *body;
    size_t len;
    *root = NULL;
    if (http_read_body(req, 1024 * 1024, &body, &len) != 0) {
        return NULL;
    }
    *root = json_depth_ok(body, len, JSON_DEPTH_MAX) ? cJSON_ParseWithLength(body, len) : NULL;
    free(body);
    cJSON *data = *root ? cJSON_GetObjectItemCaseSensitive(*root, "data") : NULL;
    if (!cJSON_IsArray(data) || cJSON_GetArraySize(data) == 0) {
        zoho_error(req, 400, "INVALID_DATA", "invalid data");
        cJSON_Delete(*root);
        *root = NULL;
        return NULL;
    }
    if (cJSON_GetArraySize(data) > MAX_RECORDS_PER_CALL) {
        zoho_error(req, 400, "LIMIT_EXCEEDED", "the number of records exceeds the limit of 100");
        cJSON_Delete(*root);
        *root = NULL;
        return NULL;
    }
    return data;
}

/*
 * 201/200 when all succeeded, 400 when none did, 207 when mixed; or, with the
 * 500_after_write fault, a 500 although the records were kept (only a client
 * that looks before writing again avoids a duplicate).
 */
static void reply_results(struct http_req *req, struct sandbox *sb, cJSON *results, int ok,
                          int total, int all_ok_status)
{
    pthread_mutex_lock(&sb->lock);
    bool fail = ok > 0 && (int)sandbox_rand(sb, 100) < sb->faults[SANDBOX_ZOHO].p500_after_write;
    pthread_mutex_unlock(&sb->lock);
    if (fail) {
        cJSON_Delete(results);
        zoho_error(req, 500, "INTERNAL_ERROR", "Internal Server Error");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "data", results);
    http_reply_json(req, ok == total ? all_ok_status : ok == 0 ? 400 : 207, o);
}

static void write_leads(struct http_req *req, struct sandbox *sb, bool upsert)
{
    struct sandbox_zoho *z = sb->zoho;
    cJSON *root, *data = parse_data(req, &root);
    if (data == NULL) {
        return;
    }
    /* Upsert matches on the External ID field when the record has one, else on
     * duplicate_check_fields (default: Email, the Leads system field). */
    const char *dup_fields[8] = {"Email"};
    int ndup = 1;
    const cJSON *dcf = cJSON_GetObjectItemCaseSensitive(root, "duplicate_check_fields");
    if (cJSON_IsArray(dcf) && cJSON_GetArraySize(dcf) > 0) {
        ndup = 0;
        for (const cJSON *f = dcf->child; f != NULL && ndup < 8; f = f->next) {
            if (cJSON_IsString(f)) {
                dup_fields[ndup++] = f->valuestring;
            }
        }
    }
    cJSON *results = cJSON_CreateArray();
    int ok = 0, total = 0;
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&sb->lock);
    for (cJSON *rec = data->child; rec != NULL; rec = rec->next, total++) {
        cJSON *err = check_lead(z, rec, total, false);
        struct zrecord *match = NULL;
        const char *match_field = NULL;
        const char *ext = err ? NULL : str_field(rec, z->external_field);
        if (err == NULL && ext != NULL) {
            match = find_by_field(z, z->external_field, ext);
            match_field = z->external_field;
        }
        for (int k = 0; err == NULL && match == NULL && k < (upsert ? ndup : 1); k++) {
            match = find_by_field(z, dup_fields[k], str_field(rec, dup_fields[k]));
            match_field = dup_fields[k];
        }
        if (err == NULL && match != NULL && !upsert) {
            err = duplicate_error(match, match_field, total);
        }
        if (err != NULL) {
            cJSON_AddItemToArray(results, err);
            continue;
        }
        cJSON *el;
        if (match != NULL) {
            for (cJSON *f = rec->child; f != NULL; f = f->next) {
                cJSON_DeleteItemFromObjectCaseSensitive(match->fields, f->string);
                cJSON_AddItemToObject(match->fields, f->string, cJSON_Duplicate(f, true));
            }
            match->modified = now;
            el = record_success(match, "record updated");
            cJSON_AddStringToObject(el, "action", "update");
            cJSON_AddStringToObject(el, "duplicate_field", match_field);
        } else {
            struct zrecord *r = new_record(z, "Leads", now);
            if (r == NULL) {
                cJSON_AddItemToArray(results, record_error("INTERNAL_ERROR", "internal error", NULL,
                                                           total, NULL, NULL));
                continue;
            }
            r->fields = cJSON_Duplicate(rec, true);
            el = record_success(r, "record added");
            if (upsert) {
                cJSON_AddStringToObject(el, "action", "insert");
                cJSON_AddNullToObject(el, "duplicate_field");
            }
        }
        cJSON_AddItemToArray(results, el);
        ok++;
    }
    pthread_mutex_unlock(&sb->lock);
    cJSON_Delete(root);
    reply_results(req, sb, results, ok, total, upsert ? 200 : 201);
}

static void crm_log(struct sandbox *sb, struct http_req *req)
{
    sandbox_log_request(sb, SANDBOX_ZOHO, req->method, req->path,
                        "Authorization: Zoho-oauthtoken ***");
}

static bool crm_prelude(struct sandbox *sb, struct http_req *req)
{
    crm_log(sb, req);
    return !faulted(sb, req) && version_ok(req) && token_ok(sb, req);
}

static void post_leads(struct http_req *req, void *arg)
{
    if (crm_prelude(arg, req)) {
        write_leads(req, arg, false);
    }
}

static void post_upsert(struct http_req *req, void *arg)
{
    if (crm_prelude(arg, req)) {
        write_leads(req, arg, true);
    }
}

/* PUT /Leads: update records by their data[i].id. */
static void put_leads(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!crm_prelude(sb, req)) {
        return;
    }
    cJSON *root, *data = parse_data(req, &root);
    if (data == NULL) {
        return;
    }
    cJSON *results = cJSON_CreateArray();
    int ok = 0, total = 0;
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&sb->lock);
    for (cJSON *rec = data->child; rec != NULL; rec = rec->next, total++) {
        const char *id = str_field(rec, "id");
        struct zrecord *r = id ? find_by_id(sb->zoho, "Leads", id) : NULL;
        cJSON *err = r == NULL ? record_error(id ? "INVALID_DATA" : "MANDATORY_NOT_FOUND",
                                              id ? "the id given seems to be invalid"
                                                 : "required field not found",
                                              "id", total, NULL, NULL)
                               : check_lead(sb->zoho, rec, total, true);
        if (err != NULL) {
            cJSON_AddItemToArray(results, err);
            continue;
        }
        for (cJSON *f = rec->child; f != NULL; f = f->next) {
            if (strcmp(f->string, "id") != 0) {
                cJSON_DeleteItemFromObjectCaseSensitive(r->fields, f->string);
                cJSON_AddItemToObject(r->fields, f->string, cJSON_Duplicate(f, true));
            }
        }
        r->modified = now;
        cJSON_AddItemToArray(results, record_success(r, "record updated"));
        ok++;
    }
    pthread_mutex_unlock(&sb->lock);
    cJSON_Delete(root);
    reply_results(req, sb, results, ok, total, 200);
}

static cJSON *record_json(const struct zrecord *r)
{
    cJSON *o = cJSON_Duplicate(r->fields, true);
    char created[26], modified[26];
    sandbox_zoho_time(r->created, created);
    sandbox_zoho_time(r->modified, modified);
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "Created_Time", created);
    cJSON_AddStringToObject(o, "Modified_Time", modified);
    if (r->parent[0]) {
        cJSON_AddStringToObject(o, "Parent_Record_Id", r->parent);
    }
    return o;
}

static void get_lead(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!crm_prelude(sb, req)) {
        return;
    }
    pthread_mutex_lock(&sb->lock);
    struct zrecord *r = find_by_id(sb->zoho, "Leads", req->params[1]);
    cJSON *rec = r ? record_json(r) : NULL;
    pthread_mutex_unlock(&sb->lock);
    if (rec == NULL) {
        http_reply(req, 204, "application/json", "", 0);
        return;
    }
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "data");
    cJSON_AddItemToArray(list, rec);
    http_reply_json(req, 200, o);
}

/* ---- reads: related records and COQL (docs/api-conformance.md) ---- */

static const char *const note_fields[] = {
    "id",           "Note_Title",    "Note_Content", "Parent_Id",   "Owner",
    "Created_Time", "Modified_Time", "Created_By",   "Modified_By", NULL};
static const char *const call_fields[] = {"id",
                                          "Subject",
                                          "Call_Type",
                                          "Call_Start_Time",
                                          "Call_Duration",
                                          "Call_Purpose",
                                          "Call_Result",
                                          "Call_Agenda",
                                          "Description",
                                          "Who_Id",
                                          "What_Id",
                                          "Owner",
                                          "Caller_ID",
                                          "Dialled_Number",
                                          "Outbound_Call_Status",
                                          "Created_Time",
                                          "Modified_Time",
                                          "Call_Duration_in_seconds",
                                          NULL};

static bool listed(const char *const *names, const char *name)
{
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* Zoho's error with one detail, e.g. {"param_name":"fields"}. */
static void zoho_error_detail(struct http_req *req, int status, const char *code,
                              const char *message, const char *key, const char *value)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "code", code);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "details"), key, value);
    cJSON_AddStringToObject(o, "message", message);
    cJSON_AddStringToObject(o, "status", "error");
    http_reply_json(req, status, o);
}

/* A positive integer query parameter no larger than max (default dflt); answers 400 itself. */
static bool int_param(struct http_req *req, const char *name, int dflt, int max, int *out)
{
    char v[16];
    *out = dflt;
    if (http_query(req, name, v, sizeof v) < 0) {
        return true;
    }
    char *end;
    long n = strtol(v, &end, 10);
    if (v[0] == '\0' || *end != '\0' || n < 1 || n > max) {
        zoho_error_detail(req, 400, "INVALID_DATA", "invalid data", "param_name", name);
        return false;
    }
    *out = (int)n;
    return true;
}

/* Only the requested fields, and the id, as Zoho answers a read with `fields`. */
static cJSON *project(const struct zrecord *r, char fields[][COQL_NAME_MAX], int nfields)
{
    cJSON *full = record_json(r), *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    for (int i = 0; i < nfields; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(full, fields[i]);
        if (strcmp(fields[i], "id") != 0) {
            cJSON_AddItemToObject(o, fields[i], v ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
        }
    }
    cJSON_Delete(full);
    return o;
}

/* One page of `matches` (records in order); 204 when the page is empty. */
static void reply_page(struct http_req *req, struct zrecord **matches, int n, int offset,
                       int per_page, int page, char fields[][COQL_NAME_MAX], int nfields)
{
    if (offset >= n) {
        http_reply(req, 204, "application/json", "", 0);
        return;
    }
    int end = offset + per_page < n ? offset + per_page : n;
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "data");
    for (int i = offset; i < end; i++) {
        cJSON_AddItemToArray(list, project(matches[i], fields, nfields));
    }
    cJSON *info = cJSON_AddObjectToObject(o, "info");
    if (page > 0) { /* related records page by page; COQL by offset, and says only count */
        cJSON_AddNumberToObject(info, "per_page", per_page);
        cJSON_AddNumberToObject(info, "page", page);
    }
    cJSON_AddNumberToObject(info, "count", end - offset);
    cJSON_AddBoolToObject(info, "more_records", end < n);
    http_reply_json(req, 200, o);
}

/* Split `fields` (comma-separated) into names; answers 400 for a name the list does not have. */
static int split_fields(struct http_req *req, const char *csv, const char *const *known,
                        char out[][COQL_NAME_MAX], int max)
{
    char copy[1024], *save = NULL;
    int n = 0;
    snprintf(copy, sizeof copy, "%s", csv);
    for (char *f = strtok_r(copy, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save)) {
        if (!listed(known, f) || n == max) {
            zoho_error_detail(req, 400, "INVALID_DATA",
                              "the field api name given seems to be invalid", "api_name", f);
            return -1;
        }
        snprintf(out[n++], COQL_NAME_MAX, "%s", f);
    }
    return n;
}

/*
 * GET /crm/{v}/Leads/{id}/{related_list}: Notes is the related list leadbus
 * reads. `fields` is mandatory (v5–v8), per_page at most 200, 204 when empty.
 */
static void get_related(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!crm_prelude(sb, req)) {
        return;
    }
    if (strcmp(req->params[2], "Notes") != 0) {
        zoho_error(req, 400, "INVALID_DATA", "the relation name given seems to be invalid");
        return;
    }
    char csv[1024];
    char fields[COQL_COLS_MAX][COQL_NAME_MAX];
    int per_page, page;
    if (http_query(req, "fields", csv, sizeof csv) <= 0) {
        zoho_error_detail(req, 400, "REQUIRED_PARAM_MISSING",
                          "One of the expected parameter is missing", "param_name", "fields");
        return;
    }
    int nfields = split_fields(req, csv, note_fields, fields, COQL_COLS_MAX);
    if (nfields < 0 || !int_param(req, "per_page", 200, 200, &per_page) ||
        !int_param(req, "page", 1, 1000000, &page)) {
        return;
    }
    pthread_mutex_lock(&sb->lock);
    struct sandbox_zoho *z = sb->zoho;
    struct zrecord **matches = calloc((size_t)z->nrecs + 1, sizeof *matches);
    int n = 0;
    bool parent = find_by_id(z, "Leads", req->params[1]) != NULL;
    for (int i = 0; matches != NULL && i < z->nrecs; i++) {
        if (strcmp(z->recs[i].module, "Notes") == 0 &&
            strcmp(z->recs[i].parent, req->params[1]) == 0) {
            matches[n++] = &z->recs[i];
        }
    }
    if (!parent || matches == NULL) {
        pthread_mutex_unlock(&sb->lock);
        free(matches);
        zoho_error(req, parent ? 500 : 400, parent ? "INTERNAL_ERROR" : "INVALID_DATA",
                   parent ? "Internal Server Error" : "the id given seems to be invalid");
        return;
    }
    reply_page(req, matches, n, (page - 1) * per_page, per_page, page, fields, nfields);
    pthread_mutex_unlock(&sb->lock);
    free(matches);
}

/* Does record r match the query's one condition? Lock held. */
static bool coql_match(const struct zrecord *r, const struct coql_query *q)
{
    if (strcmp(q->where_col, "id") == 0) {
        return strcmp(r->id, q->where_val) == 0;
    }
    if (strcmp(q->where_col, "What_Id->Leads.id") == 0) {
        return strcmp(r->parent, q->where_val) == 0;
    }
    const char *v = str_field(r->fields, q->where_col);
    return v != NULL && strcmp(v, q->where_val) == 0;
}

/* Is the query's where column one the sandbox can check for this module? Answers 400 itself. */
static bool coql_where_ok(struct http_req *req, const struct coql_query *q, const char *const *cols)
{
    if (strcmp(q->where_col, "What_Id") == 0) {
        /* Kaizen #81: What_Id of Calls may be a lead or a contact; name the module. */
        zoho_error_detail(req, 400, "INVALID_QUERY", "invalid query formed", "reason",
                          "What_Id refers to multiple modules; use 'What_Id->Leads.id'");
        return false;
    }
    bool ok = listed(cols, q->where_col) ||
              (cols == call_fields && strcmp(q->where_col, "What_Id->Leads.id") == 0);
    if (!ok) {
        zoho_error_detail(req, 400, "INVALID_QUERY", "invalid query formed", "column_name",
                          q->where_col);
    }
    return ok;
}

/* POST /crm/{v}/coql {"select_query": …}: the subset sandbox_coql parses, on Calls. */
static void post_coql(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!crm_prelude(sb, req)) {
        return;
    }
    char *body;
    size_t len;
    if (http_read_body(req, 64 * 1024, &body, &len) != 0) {
        return;
    }
    cJSON *root =
        json_depth_ok(body, len, JSON_DEPTH_MAX) ? cJSON_ParseWithLength(body, len) : NULL;
    free(body);
    const char *text = str_field(root, "select_query");
    struct coql_query *q = calloc(1, sizeof *q);
    char why[COQL_WHY_MAX];
    int rc = q != NULL && text != NULL ? sandbox_coql_parse(text, q, why) : COQL_SYNTAX;
    if (q == NULL || text == NULL) {
        zoho_error_detail(req, 400, "REQUIRED_PARAM_MISSING",
                          "One of the expected parameter is missing", "param_name", "select_query");
    } else if (rc != COQL_OK) {
        zoho_error_detail(req, 400, rc == COQL_LIMIT ? "LIMIT_EXCEEDED" : "SYNTAX_ERROR",
                          rc == COQL_LIMIT ? "limit exceeded" : "error in query", "reason", why);
    } else if (strcmp(q->module, "Calls") != 0) {
        zoho_error_detail(req, 400, "INVALID_QUERY", "invalid query formed", "reason",
                          "the sandbox answers COQL on Calls only");
    } else if (coql_where_ok(req, q, call_fields)) {
        int bad = -1;
        for (int i = 0; i < q->ncols && bad < 0; i++) {
            bad = listed(call_fields, q->cols[i]) ? -1 : i;
        }
        if (bad >= 0) {
            zoho_error_detail(req, 400, "INVALID_QUERY", "invalid query formed", "column_name",
                              q->cols[bad]);
        } else {
            pthread_mutex_lock(&sb->lock);
            struct sandbox_zoho *z = sb->zoho;
            struct zrecord **matches = calloc((size_t)z->nrecs + 1, sizeof *matches);
            int n = 0;
            for (int i = 0; matches != NULL && i < z->nrecs; i++) {
                if (strcmp(z->recs[i].module, "Calls") == 0 && coql_match(&z->recs[i], q)) {
                    matches[n++] = &z->recs[i];
                }
            }
            reply_page(req, matches, matches ? n : 0, q->offset, q->limit, 0, q->cols, q->ncols);
            pthread_mutex_unlock(&sb->lock);
            free(matches);
        }
    }
    free(q);
    cJSON_Delete(root);
}

static void post_notes(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!crm_prelude(sb, req)) {
        return;
    }
    cJSON *root, *data = parse_data(req, &root);
    if (data == NULL) {
        return;
    }
    cJSON *results = cJSON_CreateArray();
    int ok = 0, total = 0;
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&sb->lock);
    bool parent_exists = find_by_id(sb->zoho, "Leads", req->params[1]) != NULL;
    for (cJSON *rec = data->child; rec != NULL; rec = rec->next, total++) {
        const char *content = str_field(rec, "Note_Content");
        const cJSON *parent = cJSON_GetObjectItemCaseSensitive(rec, "Parent_Id");
        struct zrecord *r = NULL;
        if (!cJSON_IsObject(parent) || str_field(parent, "id") == NULL) {
            /* v7 create-notes: Parent_Id (an object with module and id) is mandatory */
            cJSON_AddItemToArray(results,
                                 record_error("MANDATORY_NOT_FOUND", "required field not found",
                                              "Parent_Id", total, NULL, NULL));
        } else if (!parent_exists || strcmp(str_field(parent, "id"), req->params[1]) != 0) {
            cJSON_AddItemToArray(results, record_error("INVALID_DATA",
                                                       "the related id given seems to be invalid",
                                                       "Parent_Id", total, NULL, NULL));
        } else if (content == NULL || content[0] == '\0') {
            cJSON_AddItemToArray(results,
                                 record_error("MANDATORY_NOT_FOUND", "required field not found",
                                              "Note_Content", total, NULL, NULL));
        } else if ((r = new_record(sb->zoho, "Notes", now)) != NULL) {
            r->fields = cJSON_Duplicate(rec, true);
            snprintf(r->parent, sizeof r->parent, "%.23s", req->params[1]);
            cJSON_AddItemToArray(results, record_success(r, "record added"));
            ok++;
        }
    }
    pthread_mutex_unlock(&sb->lock);
    cJSON_Delete(root);
    reply_results(req, sb, results, ok, total, 201);
}

static bool iso_time(const char *s)
{
    return s != NULL && strlen(s) >= 19 && s[4] == '-' && s[7] == '-' && s[10] == 'T' &&
           s[13] == ':' && s[16] == ':';
}

static cJSON *check_call(struct sandbox_zoho *z, const cJSON *rec, int i, char parent[24])
{
    const char *subject = str_field(rec, "Subject"), *type = str_field(rec, "Call_Type");
    const char *start = str_field(rec, "Call_Start_Time");
    const char *status = str_field(rec, "Outbound_Call_Status");
    const char *duration = str_field(rec, "Call_Duration");
    const char *se = str_field(rec, "$se_module");
    const cJSON *what = cJSON_GetObjectItemCaseSensitive(rec, "What_Id");
    const char *what_id = cJSON_IsObject(what) ? str_field(what, "id") : NULL;
    if (subject == NULL || subject[0] == '\0') {
        return record_error("MANDATORY_NOT_FOUND", "required field not found", "Subject", i, NULL,
                            NULL);
    }
    if (strlen(subject) > 255) {
        return record_error("INVALID_DATA", "invalid data", "Subject", i, "maximum_length",
                            cJSON_CreateNumber(255));
    }
    if (type == NULL ||
        (strcmp(type, "Inbound") && strcmp(type, "Outbound") && strcmp(type, "Missed"))) {
        return record_error("INVALID_DATA", "invalid data", "Call_Type", i, NULL, NULL);
    }
    if (!iso_time(start)) {
        return record_error("INVALID_DATA", "invalid data", "Call_Start_Time", i, NULL, NULL);
    }
    if (status != NULL && strcmp(status, "Completed") == 0 && strcmp(type, "Missed") != 0) {
        if (duration == NULL) {
            return record_error("MANDATORY_NOT_FOUND", "required field not found", "Call_Duration",
                                i, NULL, NULL);
        }
        int a, b;
        if (sscanf(duration, "%d:%d", &a, &b) != 2 || a < 0 || b < 0 || b > 59) {
            return record_error("INVALID_DATA", "invalid data", "Call_Duration", i, NULL, NULL);
        }
        if (a == 0 && b == 0) {
            return record_error("DEPENDENT_MISMATCH", "Call Duration can not be zero.",
                                "Call_Duration", i, NULL, NULL);
        }
    }
    if (what_id != NULL) {
        if (se == NULL || strcmp(se, "Leads") != 0 || find_by_id(z, "Leads", what_id) == NULL) {
            return record_error("INVALID_DATA", "the related id given seems to be invalid",
                                "What_Id", i, NULL, NULL);
        }
        snprintf(parent, 24, "%s", what_id);
    }
    return NULL;
}

static void post_calls(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!crm_prelude(sb, req)) {
        return;
    }
    cJSON *root, *data = parse_data(req, &root);
    if (data == NULL) {
        return;
    }
    cJSON *results = cJSON_CreateArray();
    int ok = 0, total = 0;
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&sb->lock);
    for (cJSON *rec = data->child; rec != NULL; rec = rec->next, total++) {
        char parent[24] = "";
        cJSON *err = check_call(sb->zoho, rec, total, parent);
        struct zrecord *r = err ? NULL : new_record(sb->zoho, "Calls", now);
        if (r == NULL) {
            cJSON_AddItemToArray(results, err ? err
                                              : record_error("INTERNAL_ERROR", "internal error",
                                                             NULL, total, NULL, NULL));
            continue;
        }
        r->fields = cJSON_Duplicate(rec, true);
        snprintf(r->parent, sizeof r->parent, "%s", parent);
        cJSON_AddItemToArray(results, record_success(r, "record added"));
        ok++;
    }
    pthread_mutex_unlock(&sb->lock);
    cJSON_Delete(root);
    reply_results(req, sb, results, ok, total, 201);
}

/* GET /sandbox/zoho/records?module=Leads: everything the CRM holds, for tests and the curious. */
static void get_records(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!sandbox_admit(sb, req)) {
        return;
    }
    char module[16] = "";
    http_query(req, "module", module, sizeof module);
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "data");
    pthread_mutex_lock(&sb->lock);
    for (int i = 0; i < sb->zoho->nrecs; i++) {
        const struct zrecord *r = &sb->zoho->recs[i];
        if (module[0] == '\0' || strcmp(module, r->module) == 0) {
            cJSON *rec = record_json(r);
            cJSON_AddStringToObject(rec, "$module", r->module);
            cJSON_AddItemToArray(list, rec);
        }
    }
    pthread_mutex_unlock(&sb->lock);
    http_reply_json(req, 200, o);
}

int sandbox_zoho_start(struct sandbox *sb, struct app *app, char err[CONFIG_ERR_MAX])
{
    int64_t ttl, mint_limit;
    if (config_int("SANDBOX_ZOHO_TOKEN_TTL_S", 3600, 1, 86400, &ttl, err) != 0 ||
        config_int("SANDBOX_ZOHO_MINT_LIMIT", 10, 1, MINTS_MAX, &mint_limit, err) != 0) {
        return -1;
    }
    struct sandbox_zoho *z = calloc(1, sizeof *z);
    if (z == NULL) {
        return -1;
    }
    z->records_max = sb->records_max;
    z->token_ttl_ms = ttl * 1000;
    z->mint_limit = (int)mint_limit;
    /* The sandbox accepts the credentials leadbus is configured with, or their defaults. */
    struct upstream up;
    if (upstream_resolve(app, &up, err) != 0) {
        free(z);
        return -1;
    }
    snprintf(z->client_id, sizeof z->client_id, "%s", up.zoho_client_id);
    snprintf(z->client_secret, sizeof z->client_secret, "%s", up.zoho_client_secret);
    snprintf(z->refresh_token, sizeof z->refresh_token, "%s", up.zoho_refresh_token);
    explicit_bzero(&up, sizeof up);
    snprintf(z->external_field, sizeof z->external_field, "%s",
             config_str("ZOHO_EXTERNAL_ID_FIELD", "Leadbus_Id"));
    snprintf(z->required, sizeof z->required, "%s", config_str("SANDBOX_ZOHO_REQUIRED_FIELDS", ""));
    snprintf(z->custom, sizeof z->custom, "%s", config_str("SANDBOX_ZOHO_CUSTOM_FIELDS", ""));
    sb->zoho = z;
    const char *crm = "/sandbox/zoho/crm/{v}";
    char p1[96], p2[96], p3[96], p4[96], p5[96], p6[96], p7[96];
    snprintf(p1, sizeof p1, "%s/Leads", crm);
    snprintf(p2, sizeof p2, "%s/Leads/upsert", crm);
    snprintf(p3, sizeof p3, "%s/Leads/{id}", crm);
    snprintf(p4, sizeof p4, "%s/Leads/{id}/Notes", crm);
    snprintf(p6, sizeof p6, "%s/Leads/{id}/{list}", crm);
    snprintf(p7, sizeof p7, "%s/coql", crm);
    snprintf(p5, sizeof p5, "%s/Calls", crm);
    if (http_route(app->http, "POST", "/sandbox/zoho/oauth/v2/token", post_token, sb) != 0 ||
        http_route(app->http, "POST", p1, post_leads, sb) != 0 ||
        http_route(app->http, "PUT", p1, put_leads, sb) != 0 ||
        http_route(app->http, "POST", p2, post_upsert, sb) != 0 ||
        http_route(app->http, "GET", p3, get_lead, sb) != 0 ||
        http_route(app->http, "POST", p4, post_notes, sb) != 0 ||
        http_route(app->http, "GET", p6, get_related, sb) != 0 ||
        http_route(app->http, "POST", p7, post_coql, sb) != 0 ||
        http_route(app->http, "POST", p5, post_calls, sb) != 0 ||
        http_route(app->http, "GET", "/sandbox/zoho/records", get_records, sb) != 0) {
        return -1;
    }
    return 0;
}

void sandbox_zoho_stop(struct sandbox *sb)
{
    struct sandbox_zoho *z = sb->zoho;
    if (z == NULL) {
        return;
    }
    for (int i = 0; i < z->nrecs; i++) {
        cJSON_Delete(z->recs[i].fields);
    }
    free(z->recs);
    free(z);
    sb->zoho = NULL;
}
