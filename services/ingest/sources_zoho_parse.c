/* sources_zoho_parse: Zoho CRM records into leads (pure; see the header). */
#include "sources_zoho_parse.h"
#include "json_depth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZOHO_SRC_DEPTH_MAX 16

const char *zoho_src_status_name(enum zoho_src_status s)
{
    static const char *const names[] = {"lead", "ours", "malformed", "invalid"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

bool zoho_record_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= ZOHO_RECORD_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (id[i] < '0' || id[i] > '9') {
            return false;
        }
    }
    return true;
}

/* A non-empty string at `name`, or NULL. */
static const char *zs_text(const cJSON *rec, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(rec, name);
    return cJSON_IsString(it) && it->valuestring[0] != '\0' ? it->valuestring : NULL;
}

const char *zoho_src_body_secret(const cJSON *rec)
{
    return zs_text(rec, "leadbus_secret");
}

static void zs_refuse(struct lead_parse_result *r, const char *message)
{
    snprintf(r->message, sizeof r->message, "%s", message);
}

/* The record's fields as a POST /leads object. */
static cJSON *zs_lead_object(const cJSON *rec)
{
    static const struct {
        const char *zoho, *lead;
    } map[] = {{"First_Name", "firstName"}, {"Last_Name", "lastName"}, {"Email", "email"},
               {"Company", "company"},      {"City", "city"},          {"Description", "notes"}};
    cJSON *lead = cJSON_CreateObject();
    for (size_t i = 0; lead != NULL && i < sizeof map / sizeof map[0]; i++) {
        const char *v = zs_text(rec, map[i].zoho);
        if (v != NULL) {
            cJSON_AddStringToObject(lead, map[i].lead, v);
        }
    }
    const char *phone = zs_text(rec, "Phone");
    phone = phone != NULL ? phone : zs_text(rec, "Mobile");
    if (lead != NULL && phone != NULL) {
        cJSON_AddStringToObject(lead, "phone", phone);
    }
    const char *src = zs_text(rec, "Lead_Source");
    if (lead != NULL && src != NULL) {
        cJSON_AddStringToObject(cJSON_AddObjectToObject(lead, "extra"), "zoho_lead_source", src);
    }
    return lead;
}

enum zoho_src_status zoho_src_record(const cJSON *rec, const char *ext_field, const char *region,
                                     struct lead_parse_result *r, char ref[ZOHO_RECORD_ID_MAX])
{
    memset(r, 0, sizeof *r);
    ref[0] = '\0';
    if (!cJSON_IsObject(rec)) {
        zs_refuse(r, "a Zoho record must be a JSON object");
        return ZOHO_SRC_MALFORMED;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    if (!cJSON_IsString(id) || !zoho_record_id_ok(id->valuestring)) {
        zs_refuse(r, "id: expected the record id as a string of 1 to 31 digits "
                     "(a JSON number loses Zoho's 19-digit ids)");
        return ZOHO_SRC_MALFORMED;
    }
    if (ext_field != NULL && ext_field[0] != '\0') {
        const cJSON *ext = cJSON_GetObjectItemCaseSensitive(rec, ext_field);
        bool set = ext != NULL && !cJSON_IsNull(ext) &&
                   !(cJSON_IsString(ext) && ext->valuestring[0] == '\0');
        if (set) {
            snprintf(ref, ZOHO_RECORD_ID_MAX, "%s", id->valuestring);
            return ZOHO_SRC_OURS;
        }
    }
    cJSON *lead = zs_lead_object(rec);
    char *text = lead != NULL ? cJSON_PrintUnformatted(lead) : NULL;
    cJSON_Delete(lead);
    if (text == NULL) {
        zs_refuse(r, "out of memory");
        return ZOHO_SRC_MALFORMED;
    }
    enum lead_parse_status st = lead_parse(text, strlen(text), region, r);
    free(text);
    if (st != LEAD_OK) {
        return st == LEAD_INVALID ? ZOHO_SRC_INVALID : ZOHO_SRC_MALFORMED;
    }
    snprintf(ref, ZOHO_RECORD_ID_MAX, "%s", id->valuestring);
    return ZOHO_SRC_LEAD;
}

enum zoho_src_status zoho_src_webhook(const char *body, size_t len, const char *ext_field,
                                      const char *region, struct lead_parse_result *r,
                                      char ref[ZOHO_RECORD_ID_MAX])
{
    if (!json_depth_ok(body, len, ZOHO_SRC_DEPTH_MAX)) {
        memset(r, 0, sizeof *r);
        ref[0] = '\0';
        zs_refuse(r, "JSON nested too deep for a Zoho record");
        return ZOHO_SRC_MALFORMED;
    }
    cJSON *rec = cJSON_ParseWithLength(body, len);
    enum zoho_src_status st = zoho_src_record(rec, ext_field, region, r, ref);
    cJSON_Delete(rec);
    return st;
}
