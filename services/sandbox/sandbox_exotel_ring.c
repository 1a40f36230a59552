/* sandbox_exotel_ring: the simulated ring of both legs, and the StatusCallbacks after it. */
#define _GNU_SOURCE /* strptime, timegm */
#include "sandbox_exotel_int.h"
#include "clock.h"
#include "log.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- how calls end ---- */

static void pick_outcome(struct sandbox *sb, struct sandbox_exotel *ex, const char *number,
                         char out[16])
{
    if (ex->by_last_digit) {
        char d = number[0] ? number[strlen(number) - 1] : '0';
        const char *o = d == '1'   ? "busy"
                        : d == '2' ? "no-answer"
                        : d == '3' ? "failed"
                                   : "completed";
        snprintf(out, 16, "%s", o);
        return;
    }
    int r = (int)sandbox_rand(sb, (uint64_t)ex->mix_total);
    for (int i = 0; i < ex->nmix; i++) {
        if (r < ex->mix[i].weight) {
            snprintf(out, 16, "%s", ex->mix[i].name);
            return;
        }
        r -= ex->mix[i].weight;
    }
    snprintf(out, 16, "completed");
}

/* End a call: its outcome, duration and recording. Lock held. */
static void call_end(struct sandbox *sb, struct call *c, int64_t now)
{
    snprintf(c->status, sizeof c->status, "%s", c->outcome);
    c->end = c->updated = c->end_due < now ? c->end_due : now; /* when it ended, not when seen */
    if (strcmp(c->outcome, "completed") == 0) {
        c->duration = 20 + (int)sandbox_rand(sb, 100);
        snprintf(c->recording, sizeof c->recording,
                 "https://s3-ap-southeast-1.amazonaws.com/sandbox-recordings/%s.mp3", c->sid);
    }
}

/*
 * End every call whose ring time is over. A call ends on time as a real one does, whether or
 * not the ringer has sent its callback yet: one slow callback receiver must not keep other
 * calls "in progress" (and so out of bulk call details) past their end. Lock held.
 */
void sbx_settle_calls(struct sandbox *sb, struct sandbox_exotel *ex, int64_t now)
{
    for (int i = ex->settled; i < ex->ncalls; i++) {
        struct call *c = &ex->calls[i];
        if (c->end == 0 && c->end_due <= now) {
            call_end(sb, c, now);
        }
    }
    while (ex->settled < ex->ncalls && ex->calls[ex->settled].end != 0) {
        ex->settled++;
    }
}

/*
 * What the ring will end in, leg by leg. An agent-first call (To set) rings From first: an
 * agent number in SANDBOX_AGENT_NO_ANSWER does not pick up (overall no-answer, the lead never
 * rung); otherwise the agent answers and the lead's leg ends as the outcome rules say. A call
 * into a flow has the one leg. (Legs: developer.exotel.com/docs/voice-v1/api-reference/
 * status-callback; docs/api-conformance.md.)
 */
void sbx_pick_outcome(struct sandbox *sb, struct sandbox_exotel *ex, const char *from,
                      const char *to, struct call *c)
{
    bool agent_first = to[0] != '\0';
    if (agent_first && ex->agent_no_answer[0] != '\0' && sbx_in_list(ex->agent_no_answer, from)) {
        snprintf(c->outcome, sizeof c->outcome, "no-answer");
        snprintf(c->leg1, sizeof c->leg1, "no-answer");
        return;
    }
    pick_outcome(sb, ex, agent_first ? to : from, c->outcome);
    snprintf(c->leg1, sizeof c->leg1, "%s", agent_first ? "completed" : c->outcome);
}

/* Both legs: `Legs` of a StatusCallback, or the `Details` of call details (details=true). */
void sbx_add_legs(cJSON *o, const struct call *c, bool details)
{
    bool agent_first = c->to[0] != '\0';
    const char *status[2] = {c->leg1,
                             agent_first && strcmp(c->leg1, "completed") == 0 ? c->outcome : NULL};
    int on_call[2] = {strcmp(c->leg1, "completed") == 0 ? c->duration : 0, c->duration};
    cJSON *parent = o;
    if (details) {
        parent = cJSON_AddObjectToObject(o, "Details");
        cJSON_AddNumberToObject(parent, "ConversationDuration", c->duration);
        cJSON_AddStringToObject(parent, "Leg1Status", c->leg1);
        if (status[1] != NULL) {
            cJSON_AddStringToObject(parent, "Leg2Status", status[1]);
        } else {
            cJSON_AddNullToObject(parent, "Leg2Status");
        }
    }
    cJSON *legs = cJSON_AddArrayToObject(parent, "Legs");
    for (int i = 0; i < (agent_first ? 2 : 1); i++) {
        cJSON *leg = cJSON_CreateObject(), *fields = leg;
        if (details) {
            fields = cJSON_AddObjectToObject(leg, "Leg");
            cJSON_AddNumberToObject(fields, "Id", i + 1);
        }
        cJSON_AddNumberToObject(fields, "OnCallDuration", status[i] ? on_call[i] : 0);
        if (status[i] != NULL) {
            cJSON_AddStringToObject(fields, "Status", status[i]);
        } else {
            cJSON_AddNullToObject(fields, "Status"); /* not attempted */
        }
        cJSON_AddStringToObject(fields, "AnsweredBy", on_call[i] > 0 ? "Human" : "NA");
        cJSON_AddItemToArray(legs, leg);
    }
}

/* ---- the ringer: ends calls and sends their StatusCallbacks ---- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static void send_callback(const struct call *c)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        return;
    }
    char updated[20], created[20], start[20], end[20], dur[16];
    sandbox_exotel_time(c->updated, updated);
    sandbox_exotel_time(c->created, created);
    sandbox_exotel_time(c->start, start);
    sandbox_exotel_time(c->end, end);
    snprintf(dur, sizeof dur, "%d", c->duration);
    const char *fields[][2] = {{"CallSid", c->sid},
                               {"Status", c->status},
                               {"DateUpdated", updated},
                               {"RecordingUrl", c->recording},
                               {"EventType", "terminal"},
                               {"DateCreated", created},
                               {"To", c->to},
                               {"From", c->from},
                               {"PhoneNumberSid", c->caller_id},
                               {"StartTime", start},
                               {"EndTime", end},
                               {"ConversationDuration", dur},
                               {"Direction", "outbound-api"},
                               {"CustomField", c->custom}};
    size_t nf = sizeof fields / sizeof fields[0];
    curl_mime *mime = NULL;
    struct curl_slist *headers = NULL;
    char *json = NULL;
    if (c->cb_json) {
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; i < nf; i++) {
            if (strcmp(fields[i][0], "ConversationDuration") == 0) {
                cJSON_AddNumberToObject(o, fields[i][0], c->duration);
            } else {
                cJSON_AddStringToObject(o, fields[i][0], fields[i][1]);
            }
        }
        sbx_add_legs(o, c, false);
        json = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json);
    } else {
        mime = curl_mime_init(curl);
        for (size_t i = 0; i < nf; i++) {
            curl_mimepart *part = curl_mime_addpart(mime);
            curl_mime_name(part, fields[i][0]);
            curl_mime_data(part, fields[i][1], CURL_ZERO_TERMINATED);
        }
        /* Exotel does not document Legs in a form body: PHP-style names are the guess. */
        const char *legs[][2] = {
            {"Legs[0][Status]", c->leg1},
            {"Legs[1][Status]", strcmp(c->leg1, "completed") == 0 && c->to[0] ? c->status : ""}};
        for (size_t i = 0; i < 2; i++) {
            curl_mimepart *part = curl_mime_addpart(mime);
            curl_mime_name(part, legs[i][0]);
            curl_mime_data(part, legs[i][1], CURL_ZERO_TERMINATED);
        }
        curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
    }
    curl_easy_setopt(curl, CURLOPT_URL, c->callback);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        log_warn("Sandbox StatusCallback failed",
                 LOG_FIELDS(LOG_S("callSid", c->sid), LOG_S("error", curl_easy_strerror(rc))));
    }
    curl_mime_free(mime);
    curl_slist_free_all(headers);
    free(json);
    curl_easy_cleanup(curl);
}

void *sbx_ringer_main(void *arg)
{
    struct sandbox *sb = arg;
    struct sandbox_exotel *ex = sb->exotel;
    log_set_target("sandbox");
    pthread_mutex_lock(&sb->lock);
    while (!ex->stopping) {
        int64_t now = clock_now_ms();
        if (ex->pending == NULL || ex->pending->due > now) {
            int64_t wait = ex->pending ? ex->pending->due - now : 1000;
            struct timespec dl = clock_deadline_in(wait);
            pthread_cond_timedwait(&ex->cond, &sb->lock, &dl);
            continue;
        }
        struct pending_cb *p = ex->pending;
        ex->pending = p->next;
        struct call *c = &ex->calls[p->call];
        sbx_settle_calls(sb, ex, now);
        bool first = !c->notified;
        c->notified = true;
        struct call copy = *c;
        const struct sandbox_faults *f = &sb->faults[SANDBOX_EXOTEL];
        int r = (int)sandbox_rand(sb, 100);
        bool drop = first && r < f->cb_drop;
        bool late = first && !drop && (int)sandbox_rand(sb, 100) < f->cb_late;
        bool dup = first && !drop && (int)sandbox_rand(sb, 100) < f->cb_dup;
        if (late) {
            sbx_schedule_cb(ex, p->call, now + 5 * ex->ring_ms); /* sent later instead of now */
        }
        if (dup) {
            sbx_schedule_cb(ex, p->call, now + 200);
        }
        free(p);
        if (copy.callback[0] == '\0' || drop || late) {
            continue;
        }
        pthread_mutex_unlock(&sb->lock);
        send_callback(&copy);
        pthread_mutex_lock(&sb->lock);
    }
    pthread_mutex_unlock(&sb->lock);
    return NULL;
}
