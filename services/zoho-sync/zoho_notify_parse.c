/* zoho_notify_parse: Zoho's notifications and record GET answers (pure; see the header). */
#include "zoho_notify_parse.h"
#include "json_depth.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZOHO_NOTIFY_DEPTH_MAX 16

bool zoho_notify_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= ZOHO_NOTIFY_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (id[i] < '0' || id[i] > '9') {
            return false;
        }
    }
    return true;
}

/* A string field into out[size]: 0, or -1 when absent, not a string or too long. */
static int zn_copy(const cJSON *o, const char *name, char *out, size_t size)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(it) || strlen(it->valuestring) >= size) {
        return -1;
    }
    snprintf(out, size, "%s", it->valuestring);
    return 0;
}

/* channel_id as a string of digits or a whole number below 2^53. */
static int zn_channel(const cJSON *o, char out[ZOHO_NOTIFY_ID_MAX])
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, "channel_id");
    if (cJSON_IsNumber(it) && it->valuedouble >= 0 && it->valuedouble < 9007199254740992.0 &&
        it->valuedouble == (double)(long long)it->valuedouble) {
        snprintf(out, ZOHO_NOTIFY_ID_MAX, "%lld", (long long)it->valuedouble);
        return 0;
    }
    return zn_copy(o, "channel_id", out, ZOHO_NOTIFY_ID_MAX) == 0 && zoho_notify_id_ok(out) ? 0
                                                                                            : -1;
}

static enum zoho_notify_status zn_fail(char *err, size_t err_size, const char *why)
{
    snprintf(err, err_size, "%s", why);
    return ZOHO_NOTIFY_MALFORMED;
}

enum zoho_notify_status zoho_notify_parse(const char *body, size_t len, struct zoho_notification *n,
                                          char *err, size_t err_size)
{
    memset(n, 0, sizeof *n);
    if (!json_depth_ok(body, len, ZOHO_NOTIFY_DEPTH_MAX)) {
        return zn_fail(err, err_size, "JSON nested too deep for a notification");
    }
    cJSON *o = cJSON_ParseWithLength(body, len);
    enum zoho_notify_status st = ZOHO_NOTIFY_MALFORMED;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "ids");
    if (!cJSON_IsObject(o)) {
        zn_fail(err, err_size, "not a JSON object");
    } else if (zn_channel(o, n->channel_id) != 0) {
        zn_fail(err, err_size, "channel_id: expected a number or a string of digits");
    } else if (cJSON_GetObjectItemCaseSensitive(o, "token") != NULL &&
               zn_copy(o, "token", n->token, sizeof n->token) != 0) {
        zn_fail(err, err_size, "token: expected a string of at most 50 characters");
    } else if (zn_copy(o, "module", n->module, sizeof n->module) != 0 ||
               zn_copy(o, "operation", n->operation, sizeof n->operation) != 0) {
        zn_fail(err, err_size, "module and operation: expected strings");
    } else if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) > ZOHO_NOTIFY_IDS_MAX) {
        zn_fail(err, err_size, "ids: expected an array of at most 100 record ids");
    } else {
        st = ZOHO_NOTIFY_OK;
        const cJSON *it;
        cJSON_ArrayForEach(it, ids)
        {
            if (!cJSON_IsString(it) || !zoho_notify_id_ok(it->valuestring)) {
                st = zn_fail(err, err_size, "ids: every id must be a string of digits");
                break;
            }
            snprintf(n->ids[n->nids++], ZOHO_NOTIFY_ID_MAX, "%s", it->valuestring);
        }
    }
    cJSON_Delete(o);
    if (st != ZOHO_NOTIFY_OK) {
        n->nids = 0;
    }
    return st;
}

int zoho_notify_records(const char *body, size_t len, struct zoho_notify_record *out, int max,
                        int *n)
{
    *n = 0;
    if (!json_depth_ok(body, len, ZOHO_NOTIFY_DEPTH_MAX)) {
        return -1;
    }
    cJSON *o = cJSON_ParseWithLength(body, len);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    if (!cJSON_IsArray(data)) {
        cJSON_Delete(o);
        return -1;
    }
    const cJSON *rec;
    cJSON_ArrayForEach(rec, data)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
        if (*n == max || !cJSON_IsString(id) || !zoho_notify_id_ok(id->valuestring)) {
            continue;
        }
        char *json = cJSON_PrintUnformatted(rec);
        if (json == NULL) {
            continue;
        }
        snprintf(out[*n].id, ZOHO_NOTIFY_ID_MAX, "%s", id->valuestring);
        out[(*n)++].json = json;
    }
    cJSON_Delete(o);
    return 0;
}
