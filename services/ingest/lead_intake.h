/*
 * lead_intake: what every way a lead comes in shares (POST /leads, the signed
 * webhooks, Meta Lead Ads): one lead id generator, the stamp of a parsed lead,
 * the answers to a parse's refusal and to an accepted lead.
 *
 * Memory: lead_intake_result_alloc() and lead_intake_accepted_json() return
 * what the caller frees (lead_parse_free + free; free). Threads: any; the id
 * generator keeps its state per thread.
 */
#ifndef LEADBUS_LEAD_INTAKE_H
#define LEADBUS_LEAD_INTAKE_H

#include "http.h"
#include "lead_parse.h"

#include <stdbool.h>
#include <stddef.h>

/* A new lead id: "ld_" + unix ms (11 hex digits) + 32 random bits (8 hex digits). */
void lead_intake_new_id(char *out, size_t size);

/* A zeroed result for a parser, or NULL after answering 503 (req may be NULL: no answer). */
struct lead_parse_result *lead_intake_result_alloc(struct http_req *req);

/*
 * A parse's refusal answered: 400 malformed_json (LEAD_MALFORMED) or 422
 * validation_failed naming the fields (LEAD_INVALID; r->fields is handed to
 * the answer). Returns false for LEAD_OK: nothing answered, the lead goes on.
 */
bool lead_intake_refused(struct http_req *req, enum lead_parse_status ps,
                         struct lead_parse_result *r);

/* A parsed lead gets its id, its received time, its source (NULL: as parsed) and `via`. */
void lead_intake_stamp(struct proto_lead_created *l, const char *source, const char *via);

/* {"success":true,"leadId":…,["duplicate":true,]"warnings":[…]} (r may be NULL: none). */
char *lead_intake_accepted_json(const char *lead_id, bool duplicate,
                                const struct lead_parse_result *r);

/* That answer sent with `status` (202 created, 200 duplicate), or 503 when out of memory. */
void lead_intake_reply(struct http_req *req, int status, const char *lead_id, bool duplicate,
                       const struct lead_parse_result *r);

#endif
