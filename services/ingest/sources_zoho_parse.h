/*
 * sources_zoho_parse: a Zoho CRM Leads record as leadbus receives it, turned
 * into a lead without I/O (unit-tested in test_sources_zoho.c, fuzzed by
 * fuzz_zoho_source).
 *
 * A record is a JSON object keyed by Zoho's field API names, as the CRM's
 * record GET answers it and as the workflow-rule webhook's JSON body is
 * written (README, "Lead sources"): `id` (the record id, a string of digits:
 * Zoho's ids exceed a double's precision, so a number is refused), and
 * First_Name, Last_Name, Email, Phone (else Mobile), Company, City,
 * Description (the lead's notes), Lead_Source (kept in `extra` as
 * `zoho_lead_source`). Empty strings and nulls count as absent. The mapped
 * object goes through lead_parse(), so the lead obeys POST /leads's rules.
 *
 * A record whose external id field (ZOHO_EXTERNAL_ID_FIELD, `Leadbus_Id` in
 * the sandbox) holds a value was created by leadbus's own zoho-sync: it is
 * ZOHO_SRC_OURS and never becomes a lead (no loop).
 *
 * Memory: nothing kept; results go into the caller's structs.
 */
#ifndef LEADBUS_SOURCES_ZOHO_PARSE_H
#define LEADBUS_SOURCES_ZOHO_PARSE_H

#include "lead_parse.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#define ZOHO_RECORD_ID_MAX 32

enum zoho_src_status {
    ZOHO_SRC_LEAD = 0,  /* a lead to create: r->lead, and the record id in ref */
    ZOHO_SRC_OURS,      /* the record carries leadbus's external id: ignored */
    ZOHO_SRC_MALFORMED, /* not an object, or no usable record id: r->message */
    ZOHO_SRC_INVALID,   /* a lead POST /leads would refuse: r->fields, r->message */
};
const char *zoho_src_status_name(enum zoho_src_status s);

/* Digits only, 1 to ZOHO_RECORD_ID_MAX - 1 of them (it goes into CRM URL paths). */
bool zoho_record_id_ok(const char *id);

/* One record (see above); ext_field "" when none is configured. */
enum zoho_src_status zoho_src_record(const cJSON *rec, const char *ext_field, const char *region,
                                     struct lead_parse_result *r, char ref[ZOHO_RECORD_ID_MAX]);

/* The workflow-rule webhook's body: one record as a JSON object. */
enum zoho_src_status zoho_src_webhook(const char *body, size_t len, const char *ext_field,
                                      const char *region, struct lead_parse_result *r,
                                      char ref[ZOHO_RECORD_ID_MAX]);

/* The shared secret of a webhook body (`leadbus_secret`, for orgs whose webhook cannot send a
 * header), or NULL. */
const char *zoho_src_body_secret(const cJSON *rec);

#endif
