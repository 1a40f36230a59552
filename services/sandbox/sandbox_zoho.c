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
#include "sandbox_zoho_int.h"
#include "upstream.h"

#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void sbz_zoho_error(struct http_req *req, int status, const char *code, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "code", code);
    cJSON_AddObjectToObject(o, "details");
    cJSON_AddStringToObject(o, "message", message);
    cJSON_AddStringToObject(o, "status", "error");
    http_reply_json_ex(req, status, status == 429 ? "Retry-After: 1\r\n" : NULL, o);
}

cJSON *sbz_record_error(const char *code, const char *message, const char *api_name, int index,
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

cJSON *sbz_record_success(const struct zrecord *r, const char *message)
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

bool sbz_faulted(struct sandbox *sb, struct http_req *req)
{
    enum sandbox_fault f = sandbox_fault_roll(sb, SANDBOX_ZOHO);
    if (f == FAULT_429) {
        sbz_zoho_error(
            req, 429, "TOO_MANY_REQUESTS",
            "Number of API requests for the 24 hour period is exceeded or the concurrency "
            "limit of the user for the app is exceeded.");
    } else if (f == FAULT_500 || f == FAULT_TIMEOUT) {
        sbz_zoho_error(req, 500, "INTERNAL_ERROR", "Internal Server Error");
    } else if (f == FAULT_DOWN) {
        sbz_zoho_error(req, 503, "INTERNAL_ERROR", "Service Unavailable");
    }
    return f != FAULT_NONE;
}

/* Checks the Authorization header; answers 401 itself. Lock not held. */
static bool sbz_token_ok(struct sandbox *sb, struct http_req *req)
{
    const char *h = http_header(req, "Authorization");
    if (h == NULL || strncmp(h, "Zoho-oauthtoken ", 16) != 0) {
        sbz_zoho_error(req, 401, "AUTHENTICATION_FAILURE", "Authentication failed");
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
        sbz_zoho_error(req, 401, "INVALID_TOKEN", "invalid oauth token");
    }
    return ok;
}

static bool sbz_version_ok(struct http_req *req)
{
    const char *v = req->params[0];
    bool ok = v[0] == 'v' && v[1] >= '2' && v[1] <= '8' &&
              (v[2] == '\0' || (v[2] == '.' && v[3] >= '0' && v[3] <= '9' && v[4] == '\0'));
    if (!ok) {
        sbz_zoho_error(req, 404, "INVALID_URL_PATTERN",
                       "Please check if the URL trying to access is a correct one");
    }
    return ok;
}

/* ---- token endpoint ---- */

/* ---- records (lock held) ---- */

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

struct zrecord *sbz_new_record(struct sandbox_zoho *z, const char *module, int64_t now)
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

struct zrecord *sbz_find_by_id(struct sandbox_zoho *z, const char *module, const char *id)
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
    struct zrecord *r = sbz_new_record(sb->zoho, "Leads", clock_now_ms());
    if (r == NULL) {
        return -1;
    }
    r->fields = fields;
    memcpy(id, r->id, sizeof r->id);
    return 0;
}

cJSON *sandbox_zoho_lead_json(struct sandbox *sb, const char *id)
{
    struct zrecord *r = sbz_find_by_id(sb->zoho, "Leads", id);
    return r != NULL ? sbz_record_json(r) : NULL;
}

const char *sbz_str_field(const cJSON *rec, const char *name)
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
        return sbz_record_error("INVALID_DATA", "invalid data", NULL, i, NULL, NULL);
    }
    for (const cJSON *f = rec->child; f != NULL; f = f->next) {
        bool known = strcmp(f->string, z->external_field) == 0 || f->string[0] == '$' ||
                     strcmp(f->string, "id") == 0 || custom_field(z, f->string);
        for (int k = 0; !known && lead_fields[k]; k++) {
            known = strcmp(f->string, lead_fields[k]) == 0;
        }
        if (!known) {
            return sbz_record_error("INVALID_DATA", "the field api name given seems to be invalid",
                                    f->string, i, NULL, NULL);
        }
        if (strcmp(f->string, "Owner") == 0 || strcmp(f->string, "Layout") == 0 ||
            strcmp(f->string, "Tag") == 0 || strcmp(f->string, "Email_Opt_Out") == 0 ||
            f->string[0] == '$' || cJSON_IsNull(f)) {
            continue;
        }
        if (!cJSON_IsString(f)) {
            return sbz_record_error("INVALID_DATA", "invalid data", f->string, i,
                                    "expected_data_type", cJSON_CreateString("text"));
        }
        size_t max = strcmp(f->string, "Description") == 0 ? 32000 : 255;
        if (strlen(f->valuestring) > max) {
            return sbz_record_error("INVALID_DATA", "invalid data", f->string, i, "maximum_length",
                                    cJSON_CreateNumber((double)max));
        }
    }
    const char *last = sbz_str_field(rec, "Last_Name");
    if (update) {
        return last != NULL && last[0] == '\0'
                   ? sbz_record_error("MANDATORY_NOT_FOUND", "required field not found",
                                      "Last_Name", i, NULL, NULL)
                   : NULL;
    }
    if (last == NULL || last[0] == '\0') {
        return sbz_record_error("MANDATORY_NOT_FOUND", "required field not found", "Last_Name", i,
                                NULL, NULL);
    }
    char req[256], *save = NULL;
    snprintf(req, sizeof req, "%s", z->required);
    for (char *f = strtok_r(req, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save)) {
        const char *v = sbz_str_field(rec, f);
        if (v == NULL || v[0] == '\0') {
            return sbz_record_error("MANDATORY_NOT_FOUND", "required field not found", f, i, NULL,
                                    NULL);
        }
    }
    const char *email = sbz_str_field(rec, "Email");
    if (email != NULL && email[0] && (strchr(email, '@') == NULL || strchr(email, ' ') != NULL)) {
        return sbz_record_error("INVALID_DATA", "invalid data", "Email", i, NULL, NULL);
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
    return sbz_record_error("DUPLICATE_DATA", "duplicate data", field, i, "duplicate_record", d);
}

/* Parse {"data":[...]} with 1..100 elements; answers the error itself and returns NULL. */
static cJSON *sbz_parse_data(struct http_req *req, cJSON **root)
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
        sbz_zoho_error(req, 400, "INVALID_DATA", "invalid data");
        cJSON_Delete(*root);
        *root = NULL;
        return NULL;
    }
    if (cJSON_GetArraySize(data) > MAX_RECORDS_PER_CALL) {
        sbz_zoho_error(req, 400, "LIMIT_EXCEEDED",
                       "the number of records exceeds the limit of 100");
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
static void sbz_reply_results(struct http_req *req, struct sandbox *sb, cJSON *results, int ok,
                              int total, int all_ok_status)
{
    pthread_mutex_lock(&sb->lock);
    bool fail = ok > 0 && (int)sandbox_rand(sb, 100) < sb->faults[SANDBOX_ZOHO].p500_after_write;
    pthread_mutex_unlock(&sb->lock);
    if (fail) {
        cJSON_Delete(results);
        sbz_zoho_error(req, 500, "INTERNAL_ERROR", "Internal Server Error");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "data", results);
    http_reply_json(req, ok == total ? all_ok_status : ok == 0 ? 400 : 207, o);
}

static void write_leads(struct http_req *req, struct sandbox *sb, bool upsert)
{
    struct sandbox_zoho *z = sb->zoho;
    cJSON *root, *data = sbz_parse_data(req, &root);
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
        const char *ext = err ? NULL : sbz_str_field(rec, z->external_field);
        if (err == NULL && ext != NULL) {
            match = find_by_field(z, z->external_field, ext);
            match_field = z->external_field;
        }
        for (int k = 0; err == NULL && match == NULL && k < (upsert ? ndup : 1); k++) {
            match = find_by_field(z, dup_fields[k], sbz_str_field(rec, dup_fields[k]));
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
            el = sbz_record_success(match, "record updated");
            cJSON_AddStringToObject(el, "action", "update");
            cJSON_AddStringToObject(el, "duplicate_field", match_field);
        } else {
            struct zrecord *r = sbz_new_record(z, "Leads", now);
            if (r == NULL) {
                cJSON_AddItemToArray(results, sbz_record_error("INTERNAL_ERROR", "internal error",
                                                               NULL, total, NULL, NULL));
                continue;
            }
            r->fields = cJSON_Duplicate(rec, true);
            el = sbz_record_success(r, "record added");
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
    sbz_reply_results(req, sb, results, ok, total, upsert ? 200 : 201);
}

static void sbz_crm_log(struct sandbox *sb, struct http_req *req)
{
    sandbox_log_request(sb, SANDBOX_ZOHO, req->method, req->path,
                        "Authorization: Zoho-oauthtoken ***");
}

bool sbz_crm_prelude(struct sandbox *sb, struct http_req *req)
{
    sbz_crm_log(sb, req);
    return !sbz_faulted(sb, req) && sbz_version_ok(req) && sbz_token_ok(sb, req);
}

bool sandbox_zoho_crm_prelude(struct sandbox *sb, struct http_req *req)
{
    return sbz_crm_prelude(sb, req);
}

static void post_leads(struct http_req *req, void *arg)
{
    if (sbz_crm_prelude(arg, req)) {
        write_leads(req, arg, false);
    }
}

static void post_upsert(struct http_req *req, void *arg)
{
    if (sbz_crm_prelude(arg, req)) {
        write_leads(req, arg, true);
    }
}

void sbz_write_records(struct http_req *req, struct sandbox *sb, sbz_write_fn one,
                       int all_ok_status)
{
    cJSON *root, *data = sbz_parse_data(req, &root);
    if (data == NULL) {
        return;
    }
    cJSON *results = cJSON_CreateArray();
    int ok = 0, total = 0;
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&sb->lock);
    for (cJSON *rec = data->child; rec != NULL; rec = rec->next, total++) {
        bool kept = false;
        cJSON_AddItemToArray(results, one(sb, req, rec, total, now, &kept));
        ok += kept ? 1 : 0;
    }
    pthread_mutex_unlock(&sb->lock);
    cJSON_Delete(root);
    sbz_reply_results(req, sb, results, ok, total, all_ok_status);
}

/* PUT /Leads: one record updated by its data[i].id (lock held). */
static cJSON *update_lead(struct sandbox *sb, struct http_req *req, const cJSON *rec, int i,
                          int64_t now, bool *kept)
{
    (void)req;
    const char *id = sbz_str_field(rec, "id");
    struct zrecord *r = id ? sbz_find_by_id(sb->zoho, "Leads", id) : NULL;
    cJSON *err = r == NULL ? sbz_record_error(id ? "INVALID_DATA" : "MANDATORY_NOT_FOUND",
                                              id ? "the id given seems to be invalid"
                                                 : "required field not found",
                                              "id", i, NULL, NULL)
                           : check_lead(sb->zoho, rec, i, true);
    if (err != NULL) {
        return err;
    }
    for (cJSON *f = rec->child; f != NULL; f = f->next) {
        if (strcmp(f->string, "id") != 0) {
            cJSON_DeleteItemFromObjectCaseSensitive(r->fields, f->string);
            cJSON_AddItemToObject(r->fields, f->string, cJSON_Duplicate(f, true));
        }
    }
    r->modified = now;
    *kept = true;
    return sbz_record_success(r, "record updated");
}

static void put_leads(struct http_req *req, void *arg)
{
    if (sbz_crm_prelude(arg, req)) {
        sbz_write_records(req, arg, update_lead, 200);
    }
}

cJSON *sbz_record_json(const struct zrecord *r)
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
    if (!sbz_crm_prelude(sb, req)) {
        return;
    }
    pthread_mutex_lock(&sb->lock);
    struct zrecord *r = sbz_find_by_id(sb->zoho, "Leads", req->params[1]);
    cJSON *rec = r ? sbz_record_json(r) : NULL;
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
            cJSON *rec = sbz_record_json(r);
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
    if (http_route(app->http, "POST", "/sandbox/zoho/oauth/v2/token", sbz_post_token, sb) != 0 ||
        http_route(app->http, "POST", p1, post_leads, sb) != 0 ||
        http_route(app->http, "PUT", p1, put_leads, sb) != 0 ||
        http_route(app->http, "POST", p2, post_upsert, sb) != 0 ||
        http_route(app->http, "GET", p3, get_lead, sb) != 0 ||
        http_route(app->http, "POST", p4, sbz_post_notes, sb) != 0 ||
        http_route(app->http, "GET", p6, sbz_get_related, sb) != 0 ||
        http_route(app->http, "POST", p7, sbz_post_coql, sb) != 0 ||
        http_route(app->http, "POST", p5, sbz_post_calls, sb) != 0 ||
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
