/* lead_intake: the parts every way a lead comes in shares (lead_intake.h). */
#include "lead_intake.h"
#include "clock.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void lead_intake_new_id(char *out, size_t size)
{
    static _Thread_local uint64_t state;
    if (state == 0 && getrandom(&state, sizeof state, 0) != (ssize_t)sizeof state) {
        state = (uint64_t)clock_mono_ms() | 1;
    }
    state ^= state << 13; /* xorshift64: ids need uniqueness, not secrecy */
    state ^= state >> 7;
    state ^= state << 17;
    snprintf(out, size, "ld_%011llx%08x", (unsigned long long)clock_now_ms(),
             (unsigned)(state & 0xffffffffu));
}

struct lead_parse_result *lead_intake_result_alloc(struct http_req *req)
{
    struct lead_parse_result *r = calloc(1, sizeof *r);
    if (r == NULL && req != NULL) {
        http_reply_error(req, 503, "unavailable", "out of memory; retry", NULL);
    }
    return r;
}

bool lead_intake_refused(struct http_req *req, enum lead_parse_status ps,
                         struct lead_parse_result *r)
{
    if (ps == LEAD_MALFORMED) {
        http_reply_error(req, 400, "malformed_json", r->message, NULL);
        return true;
    }
    if (ps == LEAD_INVALID) {
        http_reply_error(req, 422, "validation_failed", r->message, r->fields);
        r->fields = NULL;
        return true;
    }
    return false;
}

void lead_intake_stamp(struct proto_lead_created *l, const char *source, const char *via)
{
    lead_intake_new_id(l->lead_id, sizeof l->lead_id);
    l->received_ms = clock_now_ms();
    if (source != NULL) {
        snprintf(l->source, sizeof l->source, "%s", source);
    }
    snprintf(l->via, sizeof l->via, "%s", via);
}

char *lead_intake_accepted_json(const char *lead_id, bool duplicate,
                                const struct lead_parse_result *r)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "leadId", lead_id);
    if (duplicate) {
        cJSON_AddBoolToObject(o, "duplicate", true);
    }
    cJSON *w = cJSON_AddArrayToObject(o, "warnings");
    for (int i = 0; r != NULL && w != NULL && i < r->nwarnings; i++) {
        cJSON_AddItemToArray(w, cJSON_CreateString(r->warnings[i]));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void lead_intake_reply(struct http_req *req, int status, const char *lead_id, bool duplicate,
                       const struct lead_parse_result *r)
{
    char *answer = lead_intake_accepted_json(lead_id, duplicate, r);
    if (answer == NULL) {
        http_reply_error(req, 503, "unavailable", "out of memory; retry", NULL);
        return;
    }
    http_reply(req, status, "application/json", answer, strlen(answer));
    free(answer);
}
