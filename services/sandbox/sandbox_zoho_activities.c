/* sandbox_zoho_activities: Notes on a lead and records of the Calls module. */
#include "clock.h"
#include "sandbox_zoho_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* POST /Leads/{id}/Notes: one note on the lead of the path (lock held). */
static cJSON *add_note(struct sandbox *sb, struct http_req *req, const cJSON *rec, int i,
                       int64_t now, bool *kept)
{
    bool parent_exists = sbz_find_by_id(sb->zoho, "Leads", req->params[1]) != NULL;
    const char *content = sbz_str_field(rec, "Note_Content");
    const cJSON *parent = cJSON_GetObjectItemCaseSensitive(rec, "Parent_Id");
    if (!cJSON_IsObject(parent) || sbz_str_field(parent, "id") == NULL) {
        /* v7 create-notes: Parent_Id (an object with module and id) is mandatory */
        return sbz_record_error("MANDATORY_NOT_FOUND", "required field not found", "Parent_Id", i,
                                NULL, NULL);
    }
    if (!parent_exists || strcmp(sbz_str_field(parent, "id"), req->params[1]) != 0) {
        return sbz_record_error("INVALID_DATA", "the related id given seems to be invalid",
                                "Parent_Id", i, NULL, NULL);
    }
    if (content == NULL || content[0] == '\0') {
        return sbz_record_error("MANDATORY_NOT_FOUND", "required field not found", "Note_Content",
                                i, NULL, NULL);
    }
    struct zrecord *r = sbz_new_record(sb->zoho, "Notes", now);
    if (r == NULL) {
        return NULL;
    }
    r->fields = cJSON_Duplicate(rec, true);
    snprintf(r->parent, sizeof r->parent, "%.23s", req->params[1]);
    *kept = true;
    return sbz_record_success(r, "record added");
}

void sbz_post_notes(struct http_req *req, void *arg)
{
    if (sbz_crm_prelude(arg, req)) {
        sbz_write_records(req, arg, add_note, 201);
    }
}

static bool iso_time(const char *s)
{
    return s != NULL && strlen(s) >= 19 && s[4] == '-' && s[7] == '-' && s[10] == 'T' &&
           s[13] == ':' && s[16] == ':';
}

static cJSON *check_call(struct sandbox_zoho *z, const cJSON *rec, int i, char parent[24])
{
    const char *subject = sbz_str_field(rec, "Subject"), *type = sbz_str_field(rec, "Call_Type");
    const char *start = sbz_str_field(rec, "Call_Start_Time");
    const char *status = sbz_str_field(rec, "Outbound_Call_Status");
    const char *duration = sbz_str_field(rec, "Call_Duration");
    const char *se = sbz_str_field(rec, "$se_module");
    const cJSON *what = cJSON_GetObjectItemCaseSensitive(rec, "What_Id");
    const char *what_id = cJSON_IsObject(what) ? sbz_str_field(what, "id") : NULL;
    if (subject == NULL || subject[0] == '\0') {
        return sbz_record_error("MANDATORY_NOT_FOUND", "required field not found", "Subject", i,
                                NULL, NULL);
    }
    if (strlen(subject) > 255) {
        return sbz_record_error("INVALID_DATA", "invalid data", "Subject", i, "maximum_length",
                                cJSON_CreateNumber(255));
    }
    if (type == NULL ||
        (strcmp(type, "Inbound") && strcmp(type, "Outbound") && strcmp(type, "Missed"))) {
        return sbz_record_error("INVALID_DATA", "invalid data", "Call_Type", i, NULL, NULL);
    }
    if (!iso_time(start)) {
        return sbz_record_error("INVALID_DATA", "invalid data", "Call_Start_Time", i, NULL, NULL);
    }
    if (status != NULL && strcmp(status, "Completed") == 0 && strcmp(type, "Missed") != 0) {
        if (duration == NULL) {
            return sbz_record_error("MANDATORY_NOT_FOUND", "required field not found",
                                    "Call_Duration", i, NULL, NULL);
        }
        int a, b;
        if (sscanf(duration, "%d:%d", &a, &b) != 2 || a < 0 || b < 0 || b > 59) {
            return sbz_record_error("INVALID_DATA", "invalid data", "Call_Duration", i, NULL, NULL);
        }
        if (a == 0 && b == 0) {
            return sbz_record_error("DEPENDENT_MISMATCH", "Call Duration can not be zero.",
                                    "Call_Duration", i, NULL, NULL);
        }
    }
    if (what_id != NULL) {
        if (se == NULL || strcmp(se, "Leads") != 0 || sbz_find_by_id(z, "Leads", what_id) == NULL) {
            return sbz_record_error("INVALID_DATA", "the related id given seems to be invalid",
                                    "What_Id", i, NULL, NULL);
        }
        snprintf(parent, 24, "%s", what_id);
    }
    return NULL;
}

/* POST /Calls: one record of the Calls module (lock held). */
static cJSON *add_call(struct sandbox *sb, struct http_req *req, const cJSON *rec, int i,
                       int64_t now, bool *kept)
{
    (void)req;
    char parent[24] = "";
    cJSON *err = check_call(sb->zoho, rec, i, parent);
    struct zrecord *r = err ? NULL : sbz_new_record(sb->zoho, "Calls", now);
    if (r == NULL) {
        return err ? err
                   : sbz_record_error("INTERNAL_ERROR", "internal error", NULL, i, NULL, NULL);
    }
    r->fields = cJSON_Duplicate(rec, true);
    snprintf(r->parent, sizeof r->parent, "%s", parent);
    *kept = true;
    return sbz_record_success(r, "record added");
}

void sbz_post_calls(struct http_req *req, void *arg)
{
    if (sbz_crm_prelude(arg, req)) {
        sbz_write_records(req, arg, add_call, 201);
    }
}
