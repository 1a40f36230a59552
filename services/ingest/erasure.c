/*
 * erasure: erasure on request (issue 19). A lead's personal fields are blanked
 * in ingest's store and in its kept lead.created (outbox_rewrite), and
 * lead.erased tells every subscriber to scrub its copy, in one transaction.
 */
#include "clock.h"
#include "ingest_int.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "phone.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct erase_job {
    struct ingest *ing;
    const char *lead_id;
    /* out */
    bool found;
    bool already;      /* erased by an earlier request */
    int64_t erased_ms; /* when */
    int events;        /* kept events rewritten */
};

/* outbox_rewrite's edit: this lead's kept lead.created loses its personal fields. */
static int scrub_lead_event(struct proto_event *ev, void *arg)
{
    const struct erase_job *j = arg;
    struct proto_lead_created *l = &ev->data.lead_created;
    if (ev->topic != PROTO_LEAD_CREATED || strcmp(l->lead_id, j->lead_id) != 0) {
        return 0;
    }
    char *const fields[] = {l->first_name, l->last_name, l->email, l->phone_raw, l->phone_e164,
                            l->phone_dial, l->notes,     l->extra, l->origin};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        fields[i][0] = '\0';
    }
    l->erased_ms = j->erased_ms;
    return 1;
}

/* The row scrubbed, the kept lead.created rewritten and lead.erased published, together. */
static int erase_job(sqlite3 *db, void *arg)
{
    struct erase_job *j = arg;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT coalesce(erased_ms, 0) FROM leads WHERE id = ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, j->lead_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        j->found = true;
        j->erased_ms = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    j->already = j->erased_ms != 0;
    if (!j->found || j->already) {
        return 0;
    }
    j->erased_ms = clock_now_ms();
    if (sqlite3_prepare_v2(db,
                           "UPDATE leads SET first_name = NULL, last_name = '', email = NULL,"
                           " phone_raw = NULL, phone_e164 = NULL, phone_dial = NULL, notes = NULL,"
                           " extra = NULL, erased_ms = ?2 WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, j->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->erased_ms);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    j->events = rc == 0 ? outbox_rewrite(db, j->lead_id, 0, scrub_lead_event, j) : -1;
    struct proto_lead_erased ev = {.erased_ms = j->erased_ms};
    snprintf(ev.lead_id, sizeof ev.lead_id, "%s", j->lead_id);
    if (j->events < 0 || bus_pub_append(j->ing->pub, db, PROTO_LEAD_ERASED, &ev, NULL) != 0) {
        return -1;
    }
    return 0;
}

/* What was erased where: ingest's part is done, the subscribers' follows lead.erased. */
static void add_erased_from(cJSON *o, int events)
{
    cJSON *where = cJSON_AddObjectToObject(o, "erasedFrom");
    cJSON *in = cJSON_AddObjectToObject(where, "ingest");
    cJSON *f = cJSON_AddArrayToObject(in, "fields");
    static const char *const names[] = {"first_name", "last_name", "email", "phone",
                                        "notes",      "extra",     "origin"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cJSON_AddItemToArray(f, cJSON_CreateString(names[i]));
    }
    cJSON_AddNumberToObject(in, "keptEventsRewritten", events);
    cJSON_AddStringToObject(
        where, "subscribers",
        "lead.erased published: zoho-sync (its copy of the lead; a pending sync is dropped), "
        "call-scheduler (phone numbers; a pending call is canceled; its kept events) and stats "
        "(name, phone, timeline) scrub theirs when they read it; the CRM record is not touched "
        "(ZOHO_ERASE is not built yet)");
}

void erasure_delete_lead(struct http_req *req, void *arg)
{
    struct ingest *ing = arg;
    if (!api_keys_check(ing->keys, http_header(req, "X-API-Key"))) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
        return;
    }
    struct erase_job j = {.ing = ing, .lead_id = req->params[0]};
    if (strlen(j.lead_id) >= sizeof((struct proto_lead_erased *)0)->lead_id) {
        http_reply_error(req, 404, "not_found", "no lead with that id", NULL);
        return;
    }
    if (store_run(ing->store, erase_job, &j) != 0) {
        metrics_counter_add("leadbus_leads_erased_total", "Leads erased on request (DELETE /leads)",
                            "result=\"error\"", 1);
        log_error("Cannot erase a lead: its store could not be written",
                  LOG_FIELDS(LOG_S("leadId", j.lead_id)));
        http_reply_error(req, 503, "unavailable", "the store could not be written; retry", NULL);
        return;
    }
    if (!j.found) {
        http_reply_error(req, 404, "not_found", "no lead with that id", NULL);
        return;
    }
    if (!j.already) {
        metrics_counter_add("leadbus_leads_erased_total", "Leads erased on request (DELETE /leads)",
                            "result=\"erased\"", 1);
        log_info("Lead erased on request",
                 LOG_FIELDS(LOG_S("leadId", j.lead_id), LOG_I("keptEventsRewritten", j.events)));
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "leadId", j.lead_id);
    cJSON_AddBoolToObject(o, "erased", true);
    cJSON_AddBoolToObject(o, "alreadyErased", j.already);
    cJSON_AddNumberToObject(o, "erasedMs", (double)j.erased_ms);
    add_erased_from(o, j.already ? 0 : j.events);
    http_reply_json(req, 200, o);
}

/* DELETE /leads?phone=…|email=…: every lead of one person, at most ERASE_MAX per request. */
#define ERASE_MAX 100

struct erase_person {
    struct ingest *ing;
    const char *e164, *email; /* one of them; the other NULL */
    char ids[ERASE_MAX][40];
    int n;
    bool more; /* more than ERASE_MAX matched: ask again */
    int events;
};

static int erase_person_job(sqlite3 *db, void *arg)
{
    struct erase_person *p = arg;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id FROM leads WHERE erased_ms IS NULL AND (phone_e164 = ?1"
                           " OR email = ?2) ORDER BY received_ms LIMIT ?3",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, p->e164, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->email, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, ERASE_MAX + 1);
    p->n = 0;
    p->more = false;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (p->n == ERASE_MAX) {
            p->more = true;
            break;
        }
        store_text(st, 0, p->ids[p->n], sizeof p->ids[p->n]);
        p->n++;
    }
    sqlite3_finalize(st);
    p->events = 0;
    for (int i = 0; i < p->n; i++) {
        struct erase_job j = {.ing = p->ing, .lead_id = p->ids[i]};
        if (erase_job(db, &j) != 0) {
            return -1;
        }
        p->events += j.events;
    }
    return 0;
}

void erasure_delete_person(struct http_req *req, void *arg)
{
    struct ingest *ing = arg;
    if (!api_keys_check(ing->keys, http_header(req, "X-API-Key"))) {
        http_reply_error(req, 401, "unauthorized", "missing or wrong X-API-Key header", NULL);
        return;
    }
    char raw[256], e164[PHONE_MAX], dial[PHONE_MAX], email[256];
    bool by_phone = http_query(req, "phone", raw, sizeof raw) > 0;
    bool by_email = http_query(req, "email", email, sizeof email) > 0;
    if (by_phone == by_email) {
        http_reply_error(req, 400, "bad_request", "give exactly one of phone and email", NULL);
        return;
    }
    if (by_phone && phone_normalize(raw, ing->region, e164, dial) != PHONE_VALID) {
        http_reply_error(req, 400, "bad_request", "phone: not a phone number we can read", NULL);
        return;
    }
    for (char *c = email; by_email && *c != '\0'; c++) {
        *c = (char)tolower((unsigned char)*c);
    }
    struct erase_person *p = calloc(1, sizeof *p);
    if (p == NULL) {
        http_reply_error(req, 503, "unavailable", "out of memory; retry", NULL);
        return;
    }
    p->ing = ing;
    p->e164 = by_phone ? e164 : NULL;
    p->email = by_email ? email : NULL;
    if (store_run(ing->store, erase_person_job, p) != 0) {
        metrics_counter_add("leadbus_leads_erased_total", "Leads erased on request (DELETE /leads)",
                            "result=\"error\"", 1);
        log_error("Cannot erase a person's leads: the store could not be written", NULL);
        http_reply_error(req, 503, "unavailable", "the store could not be written; retry", NULL);
        free(p);
        return;
    }
    metrics_counter_add("leadbus_leads_erased_total", "Leads erased on request (DELETE /leads)",
                        "result=\"erased\"", p->n);
    log_info("Leads of one person erased on request",
             LOG_FIELDS(LOG_S("by", by_phone ? "phone" : "email"),
                        LOG_PHONE("phoneNumber", by_phone ? e164 : ""), LOG_I("leads", p->n)));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON *ids = cJSON_AddArrayToObject(o, "leadIds");
    for (int i = 0; i < p->n; i++) {
        cJSON_AddItemToArray(ids, cJSON_CreateString(p->ids[i]));
    }
    cJSON_AddBoolToObject(o, "more", p->more);
    add_erased_from(o, p->events);
    free(p);
    http_reply_json(req, 200, o);
}
