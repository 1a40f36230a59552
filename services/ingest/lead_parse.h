/*
 * lead_parse: turns a POST /leads body into a normalised lead, or into the
 * errors that name what is wrong. Pure: no I/O, no shared state, so the HTTP
 * threads run it in parallel and the fuzzer runs it alone.
 *
 * Rules: `name` (or `firstName`/`lastName`) and one of `phone`/`email` are
 * required; strings are trimmed and inner runs of blanks collapsed; a one-word
 * name is the last name (Zoho requires one); email is lower-cased and its
 * syntax checked; phone is parsed in `region` into E.164 and the dial form.
 * An unusable phone or email beside a usable other contact is dropped with a
 * warning (the lead is still worth a CRM record), not refused.
 *
 * Memory: the result owns `fields` (a cJSON object, NULL when there are no
 * field errors); free it with lead_parse_free().
 */
#ifndef LEADBUS_LEAD_PARSE_H
#define LEADBUS_LEAD_PARSE_H

#include "proto.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define LEAD_MAX_WARNINGS 16
#define LEAD_WARNING_MAX 160

enum lead_parse_status {
    LEAD_OK = 0,
    LEAD_MALFORMED = 400, /* not JSON, or not an object: see message */
    LEAD_INVALID = 422,   /* see fields */
};

struct lead_parse_result {
    struct proto_lead_created lead; /* lead_id and received_ms are the caller's */
    char warnings[LEAD_MAX_WARNINGS][LEAD_WARNING_MAX];
    int nwarnings;
    char message[160];
    cJSON *fields; /* field name -> what is wrong with it */
};

enum lead_parse_status lead_parse(const char *body, size_t len, const char *region,
                                  struct lead_parse_result *r);
void lead_parse_free(struct lead_parse_result *r);

#endif
