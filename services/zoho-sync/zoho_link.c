/*
 * zoho_link: a lead that came from Zoho CRM itself (ingest's Zoho source:
 * `via` "zoho", `source_ref` the Leads record id) is already in Zoho. It is
 * linked to that record, never upserted: its zoho_leads row is written
 * straight as `synced` with the record id, and lead.synced (action `linked`)
 * is published in the same transaction, so call outcomes wait for nothing
 * and land on that record (zoho_outcomes.c), and no second record is made.
 *
 *   lead.created (via zoho) ──INSERT OR IGNORE──> synced (zoho_id = source_ref)
 *
 * Idempotent per lead: a replayed lead.created finds the row and changes nothing.
 */
#include "log.h"
#include "zoho_sync_int.h"

#include <stdio.h>
#include <string.h>

static bool zoho_link_ref_ok(const char *ref)
{
    size_t n = strlen(ref);
    if (n == 0 || n > 31) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (ref[i] < '0' || ref[i] > '9') {
            return false;
        }
    }
    return true;
}

int zoho_link_on_created(sqlite3 *db, struct zsync *z, const struct proto_event *ev, int64_t now_ms)
{
    const struct proto_lead_created *l = &ev->data.lead_created;
    if (strcmp(l->via, "zoho") != 0) {
        return 0;
    }
    if (!zoho_link_ref_ok(l->source_ref)) {
        log_error("A lead from Zoho has no usable record id: it is upserted like any lead",
                  LOG_FIELDS(LOG_S("leadId", l->lead_id)));
        return 0;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO zoho_leads(lead_id, seq, lead_json, state,"
                           " zoho_id, next_try_ms, updated_ms, code, message)"
                           " VALUES(?1, ?2, '{}', 'synced', ?3, 0, ?4, 'LINKED',"
                           " 'created in Zoho: linked to its record')",
                           -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_text(st, 1, l->lead_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)ev->seq);
    sqlite3_bind_text(st, 3, l->source_ref, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return -1;
    }
    if (sqlite3_changes(db) == 0) {
        return 1; /* linked before: a replay */
    }
    struct proto_lead_synced syn;
    memset(&syn, 0, sizeof syn);
    snprintf(syn.lead_id, sizeof syn.lead_id, "%s", l->lead_id);
    snprintf(syn.zoho_id, sizeof syn.zoho_id, "%s", l->source_ref);
    snprintf(syn.action, sizeof syn.action, "linked");
    if (bus_pub_append(z->pub, db, PROTO_LEAD_SYNCED, &syn, NULL) != 0) {
        return -1;
    }
    log_info("Lead from Zoho linked to its record",
             LOG_FIELDS(LOG_S("leadId", l->lead_id), LOG_S("zohoId", l->source_ref)));
    return 1;
}
