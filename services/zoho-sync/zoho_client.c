/* zoho_client: requests to Zoho and the parsing of its answers. */
#include "zoho_client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void copy_str(const cJSON *o, const char *key, char *dst, size_t size)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    dst[0] = '\0';
    if (cJSON_IsString(v)) {
        snprintf(dst, size, "%s", v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        snprintf(dst, size, "%.0f", v->valuedouble);
    }
}

enum zoho_token_status zoho_parse_token(const char *body, size_t len, int64_t now_ms,
                                        struct zoho_token *tok, char error[128])
{
    error[0] = '\0';
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        snprintf(error, 128, "unreadable token answer");
        return ZOHO_TOKEN_RETRY;
    }
    enum zoho_token_status st;
    const cJSON *access = cJSON_GetObjectItemCaseSensitive(o, "access_token");
    if (cJSON_IsString(access) && access->valuestring[0] != '\0' &&
        strlen(access->valuestring) < sizeof tok->access) {
        memset(tok, 0, sizeof *tok);
        snprintf(tok->access, sizeof tok->access, "%s", access->valuestring);
        copy_str(o, "api_domain", tok->api_domain, sizeof tok->api_domain);
        /* Older answers carry expires_in_sec, and then expires_in is in milliseconds. */
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(o, "expires_in_sec");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "expires_in");
        double life_ms = 3600.0 * 1000;
        if (cJSON_IsNumber(sec)) {
            life_ms = sec->valuedouble * 1000;
        } else if (cJSON_IsNumber(in)) {
            life_ms = in->valuedouble * 1000;
        }
        if (life_ms < 0 || life_ms > 86400.0 * 1000) {
            life_ms = 3600.0 * 1000;
        }
        tok->expires_ms = now_ms + (int64_t)life_ms;
        st = ZOHO_TOKEN_OK;
    } else {
        copy_str(o, "error", error, 128);
        if (strcasecmp(error, "Access Denied") == 0) {
            st = ZOHO_TOKEN_THROTTLED;
        } else if (error[0] != '\0') {
            st = ZOHO_TOKEN_FATAL; /* invalid_client, invalid_code, invalid_client_secret, ... */
        } else {
            snprintf(error, 128, "no access_token in the answer");
            st = ZOHO_TOKEN_RETRY;
        }
    }
    cJSON_Delete(o);
    return st;
}

static bool permanent_code(const char *code)
{
    static const char *const transient[] = {"INTERNAL_ERROR",         "TOO_MANY_REQUESTS",
                                            "RECORD_LOCKED",          "INVALID_TOKEN",
                                            "AUTHENTICATION_FAILURE", NULL};
    for (int i = 0; transient[i]; i++) {
        if (strcmp(code, transient[i]) == 0) {
            return false;
        }
    }
    return true;
}

static void read_result(const cJSON *el, struct zoho_result *r)
{
    memset(r, 0, sizeof *r);
    copy_str(el, "code", r->code, sizeof r->code);
    copy_str(el, "message", r->message, sizeof r->message);
    copy_str(el, "action", r->action, sizeof r->action);
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(el, "details");
    if (cJSON_IsObject(details)) {
        copy_str(details, "id", r->id, sizeof r->id);
        char api_name[64];
        copy_str(details, "api_name", api_name, sizeof api_name);
        if (api_name[0] != '\0' && strlen(r->message) + strlen(api_name) + 3 < sizeof r->message) {
            strcat(r->message, " (");
            strcat(r->message, api_name);
            strcat(r->message, ")");
        }
    }
    char status[16];
    copy_str(el, "status", status, sizeof status);
    r->ok = strcmp(status, "success") == 0 && strcmp(r->code, "SUCCESS") == 0 && r->id[0] != '\0';
    r->permanent = !r->ok && r->code[0] != '\0' && permanent_code(r->code);
}

int zoho_parse_records(const char *body, size_t len, struct zoho_result *results, int n)
{
    cJSON *o = cJSON_ParseWithLength(body, len);
    const cJSON *data = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "data") : NULL;
    int count = -1;
    if (cJSON_IsArray(data)) {
        count = 0;
        for (const cJSON *el = data->child; el != NULL && count < n; el = el->next) {
            read_result(el, &results[count++]);
        }
    } else if (n > 0) {
        if (cJSON_IsObject(o)) {
            read_result(o, &results[0]);
        } else {
            memset(&results[0], 0, sizeof results[0]);
        }
    }
    cJSON_Delete(o);
    return count;
}

bool zoho_refused(long http_status)
{
    return http_status >= 400 && http_status < 500 && http_status != 401 && http_status != 429;
}

/* Does record `rec` carry `marker` in its string `field`? */
static bool carries(const cJSON *rec, const char *field, const char *marker)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, field);
    return cJSON_IsString(v) && strstr(v->valuestring, marker) != NULL;
}

enum zoho_list_status zoho_parse_list(long http_status, const char *body, size_t len,
                                      const char *field, const char *marker, char id_out[32],
                                      bool *more, char code[64])
{
    *more = false;
    code[0] = '\0';
    if (http_status == 204) {
        return ZOHO_LIST_NONE;
    }
    cJSON *o = cJSON_ParseWithLength(body, len);
    enum zoho_list_status st;
    if (http_status != 200) {
        copy_str(o, "code", code, 64);
        if (code[0] == '\0') {
            snprintf(code, 64, "HTTP_%ld", http_status);
        }
        st = zoho_refused(http_status) ? ZOHO_LIST_REFUSED : ZOHO_LIST_RETRY;
        cJSON_Delete(o);
        return st;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    if (!cJSON_IsArray(data)) {
        snprintf(code, 64, "UNREADABLE_LIST");
        cJSON_Delete(o);
        return ZOHO_LIST_REFUSED;
    }
    st = ZOHO_LIST_NONE;
    for (const cJSON *rec = data->child; rec != NULL && st == ZOHO_LIST_NONE; rec = rec->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
        if (carries(rec, field, marker) && cJSON_IsString(id) && id->valuestring[0] != '\0') {
            snprintf(id_out, 32, "%s", id->valuestring);
            st = ZOHO_LIST_FOUND;
        }
    }
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(o, "info");
    *more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(info, "more_records"));
    cJSON_Delete(o);
    return st;
}

int zoho_coql_calls_of_lead(const char *lead_id, int offset, char *out, size_t size)
{
    size_t n = strlen(lead_id);
    if (n == 0 || n > 24 || strspn(lead_id, "0123456789") != n || offset < 0) {
        return -1;
    }
    int w = snprintf(out, size,
                     "select id, Subject from Calls where 'What_Id->Leads.id' = '%s'"
                     " limit %d offset %d",
                     lead_id, ZOHO_LIST_PAGE, offset);
    return w > 0 && (size_t)w < size ? 0 : -1;
}

/* ---- HTTP ---- */

static cJSON *lead_record(const struct zoho_lead_shape *shape, const char *lead_json,
                          const char *lead_id)
{
    cJSON *lead = cJSON_Parse(lead_json);
    cJSON *rec = cJSON_CreateObject();
    const struct {
        const char *from, *to;
    } map[] = {{"first_name", "First_Name"},
               {"last_name", "Last_Name"},
               {"email", "Email"},
               {"source", "Lead_Source"},
               {"company", "Company"},
               {"notes", "Description"},
               {"city", "City"}};
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(lead, map[k].from);
        if (cJSON_IsString(v) && v->valuestring[0] != '\0') {
            cJSON_AddStringToObject(rec, map[k].to, v->valuestring);
        }
    }
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(lead, "phone_status");
    const cJSON *phone = cJSON_GetObjectItemCaseSensitive(
        lead, cJSON_IsString(status) && strcmp(status->valuestring, "valid") == 0 ? "phone_e164"
                                                                                  : "phone_raw");
    if (cJSON_IsString(phone) && phone->valuestring[0] != '\0') {
        cJSON_AddStringToObject(rec, "Phone", phone->valuestring);
    }
    if (!cJSON_HasObjectItem(rec, "Company") && shape->default_company[0] != '\0') {
        cJSON_AddStringToObject(rec, "Company", shape->default_company);
    }
    if (shape->ext_field[0] != '\0') {
        cJSON_AddStringToObject(rec, shape->ext_field, lead_id);
    }
    cJSON_Delete(lead);
    return rec;
}

char *zoho_upsert_body(const struct zoho_lead_shape *shape, const char *const lead_json[],
                       const char *const lead_id[], int n)
{
    cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(data, lead_record(shape, lead_json[i], lead_id[i]));
    }
    if (shape->ext_field[0] == '\0') {
        cJSON *fields = cJSON_AddArrayToObject(o, "duplicate_check_fields");
        char copy[128], *save = NULL;
        snprintf(copy, sizeof copy, "%s", shape->dup_fields);
        for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
            cJSON_AddItemToArray(fields, cJSON_CreateString(t));
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int zoho_token_form(const char *client_id, const char *client_secret, const char *refresh_token,
                    char *out, size_t size)
{
    char *cid = curl_easy_escape(NULL, client_id, 0);
    char *sec = curl_easy_escape(NULL, client_secret, 0);
    char *ref = curl_easy_escape(NULL, refresh_token, 0);
    int len = snprintf(out, size,
                       "grant_type=refresh_token&client_id=%s&client_secret=%s&refresh_token=%s",
                       cid ? cid : "", sec ? sec : "", ref ? ref : "");
    curl_free(cid);
    curl_free(sec);
    curl_free(ref);
    return len >= 0 && (size_t)len < size ? 0 : -1;
}

static int zoho_send(CURL *curl, const char *method, const char *url, const char *token,
                     const char *content_type, const char *body, long timeout_ms,
                     struct httpc_response *r)
{
    char auth[300], ctype[96];
    struct curl_slist *h = NULL;
    if (content_type != NULL) {
        snprintf(ctype, sizeof ctype, "Content-Type: %s", content_type);
        h = curl_slist_append(h, ctype);
    }
    if (token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Zoho-oauthtoken %s", token);
        h = curl_slist_append(h, auth);
    }
    struct httpc_request req = {.api = "zoho",
                                .method = method,
                                .url = url,
                                .headers = h,
                                .body = body,
                                .timeout_ms = timeout_ms};
    int rc = httpc_perform(curl, &req, r);
    curl_slist_free_all(h);
    explicit_bzero(auth, sizeof auth);
    return rc;
}

int zoho_post_form(CURL *curl, const char *url, const char *form, long timeout_ms,
                   struct httpc_response *r)
{
    return zoho_send(curl, "POST", url, NULL, "application/x-www-form-urlencoded", form, timeout_ms,
                     r);
}

int zoho_send_json(CURL *curl, const char *method, const char *url, const char *token,
                   const char *json, long timeout_ms, struct httpc_response *r)
{
    return zoho_send(curl, method, url, token, "application/json", json, timeout_ms, r);
}

int zoho_get(CURL *curl, const char *url, const char *token, long timeout_ms,
             struct httpc_response *r)
{
    return zoho_send(curl, "GET", url, token, NULL, NULL, timeout_ms, r);
}
