/* sandbox_zoho_reads: a lead's related lists and COQL, as docs/api-conformance.md describes them.
 */
#include "clock.h"
#include "json_depth.h"
#include "sandbox_coql.h"
#include "sandbox_zoho_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    cJSON *full = sbz_record_json(r), *o = cJSON_CreateObject();
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
void sbz_get_related(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!sbz_crm_prelude(sb, req)) {
        return;
    }
    if (strcmp(req->params[2], "Notes") != 0) {
        sbz_zoho_error(req, 400, "INVALID_DATA", "the relation name given seems to be invalid");
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
    bool parent = sbz_find_by_id(z, "Leads", req->params[1]) != NULL;
    for (int i = 0; matches != NULL && i < z->nrecs; i++) {
        if (strcmp(z->recs[i].module, "Notes") == 0 &&
            strcmp(z->recs[i].parent, req->params[1]) == 0) {
            matches[n++] = &z->recs[i];
        }
    }
    if (!parent || matches == NULL) {
        pthread_mutex_unlock(&sb->lock);
        free(matches);
        sbz_zoho_error(req, parent ? 500 : 400, parent ? "INTERNAL_ERROR" : "INVALID_DATA",
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
    const char *v = sbz_str_field(r->fields, q->where_col);
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
void sbz_post_coql(struct http_req *req, void *arg)
{
    struct sandbox *sb = arg;
    if (!sbz_crm_prelude(sb, req)) {
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
    const char *text = sbz_str_field(root, "select_query");
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
