/*
 * zoho_client: the Zoho calls zoho-sync makes, and the parsing of Zoho's
 * answers, which are judged by their bodies: token errors come with HTTP 200
 * and an `error` key; record results come one per element of data[], mixed in
 * a 207. It also shapes what zoho-sync sends (a lead's record, the token
 * form). The parsers and shapers are pure (the fuzzer drives the parsers); the
 * request functions use the caller's CURL handle and keep nothing.
 */
#ifndef LEADBUS_ZOHO_CLIENT_H
#define LEADBUS_ZOHO_CLIENT_H

#include "http_client.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZOHO_BATCH_MAX 100
/* Records per page of a list read: the documented maximum of related records (and COQL's default).
 */
#define ZOHO_LIST_PAGE 200

struct zoho_token {
    char access[256];
    int64_t expires_ms; /* unix ms */
    char api_domain[256];
};

enum zoho_token_status {
    ZOHO_TOKEN_OK,
    ZOHO_TOKEN_RETRY,     /* network, 5xx, 429: try again later */
    ZOHO_TOKEN_THROTTLED, /* "Access Denied": too many mints; wait minutes */
    ZOHO_TOKEN_FATAL,     /* invalid_client, invalid_code...: an operator must act */
};

/* Parse a token endpoint answer (any HTTP status). `error` receives Zoho's error value. */
enum zoho_token_status zoho_parse_token(const char *body, size_t len, int64_t now_ms,
                                        struct zoho_token *tok, char error[128]);

struct zoho_result {
    bool ok;
    bool permanent; /* a data error: retrying the same record cannot help */
    char code[64];  /* SUCCESS, DUPLICATE_DATA, ... */
    char message[256];
    char id[32];     /* details.id on success */
    char action[16]; /* insert / update (upsert) */
};

/*
 * Parse a records answer into results[0..n). Returns the number of elements
 * read (n when the answer covers the whole batch), or -1 when the body has no
 * data[] (a top-level error; its code goes to results[0]).
 */
int zoho_parse_records(const char *body, size_t len, struct zoho_result *results, int n);

/*
 * Is an answer's failure ours to fix? 4xx other than 401 (token) and 429
 * (limits) means the request itself is wrong: sending it again cannot help.
 */
bool zoho_refused(long http_status);

/*
 * A list read, judged as Zoho documents it (docs/api-conformance.md, rows
 * "related records" and "COQL"): 204 is an empty list, 200 carries data[] and
 * info.more_records. `field` is the record field searched for `marker`.
 */
enum zoho_list_status {
    ZOHO_LIST_NONE,    /* no record on this page carries the marker; *more says if pages follow */
    ZOHO_LIST_FOUND,   /* id_out holds the record's id */
    ZOHO_LIST_RETRY,   /* network, 429, 5xx, 401: try later */
    ZOHO_LIST_REFUSED, /* any other 4xx, or a 200 we cannot read: code says why */
};
enum zoho_list_status zoho_parse_list(long http_status, const char *body, size_t len,
                                      const char *field, const char *marker, char id_out[32],
                                      bool *more, char code[64]);

/*
 * The COQL query that lists a lead's Calls records (Kaizen #81: What_Id lookups
 * in COQL, only through 'What_Id->Leads.id' on Calls). `lead_id` must be a Zoho
 * record id (digits only); returns -1 otherwise, or when `out` is too small.
 */
int zoho_coql_calls_of_lead(const char *lead_id, int offset, char *out, size_t size);

/* How a lead becomes a record of the Leads module (ZOHO_EXTERNAL_ID_FIELD,
 * ZOHO_DUPLICATE_CHECK_FIELDS, ZOHO_DEFAULT_COMPANY; "" for none). */
struct zoho_lead_shape {
    const char *ext_field;       /* our lead id goes there; "" upserts by dup_fields */
    const char *dup_fields;      /* comma-separated duplicate_check_fields */
    const char *default_company; /* Company when the lead has none */
};

/*
 * The Leads/upsert body for n leads (n <= ZOHO_BATCH_MAX): lead_json[i] is a
 * lead.created data map as JSON, lead_id[i] its id. Pure; the caller frees the
 * string (NULL when out of memory).
 */
char *zoho_upsert_body(const struct zoho_lead_shape *shape, const char *const lead_json[],
                       const char *const lead_id[], int n);

/*
 * The refresh-token grant's form (grant_type=refresh_token...), each value
 * URL-encoded. Returns -1 when it does not fit in `size`. The caller wipes it.
 */
int zoho_token_form(const char *client_id, const char *client_secret, const char *refresh_token,
                    char *out, size_t size);

/* POST form fields (already encoded) to url. */
int zoho_post_form(CURL *curl, const char *url, const char *form, long timeout_ms,
                   struct httpc_response *r);
/* POST or PUT JSON with the Zoho-oauthtoken header. */
int zoho_send_json(CURL *curl, const char *method, const char *url, const char *token,
                   const char *json, long timeout_ms, struct httpc_response *r);
/* GET with the Zoho-oauthtoken header. */
int zoho_get(CURL *curl, const char *url, const char *token, long timeout_ms,
             struct httpc_response *r);

#endif
