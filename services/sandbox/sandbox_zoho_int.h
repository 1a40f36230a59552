/*
 * sandbox_zoho_int.h: what the files of the sandbox's Zoho share. Not for use
 * outside services/sandbox. sandbox_zoho.c: the records, the answers, the
 * checks every CRM call makes, Leads insert/upsert/update/get, start and stop;
 * sandbox_zoho_oauth.c: the token endpoint; sandbox_zoho_reads.c: related
 * lists and COQL; sandbox_zoho_activities.c: Notes and Calls
 * (sandbox_zoho_notify.c, Zoho as a lead source, goes through sandbox.h).
 *
 * Threads: civetweb's; the records and tokens are under sb->lock ("lock
 * held" below says which functions need it).
 */
#ifndef LEADBUS_SANDBOX_ZOHO_INT_H
#define LEADBUS_SANDBOX_ZOHO_INT_H

#include "http.h"
#include "sandbox.h"

#include <stdbool.h>
#include <stdint.h>

#define LIVE_TOKENS 15
#define MINTS_MAX 1000
#define MINT_WINDOW_MS (10 * 60 * 1000)
#define MAX_RECORDS_PER_CALL 100

struct zrecord {
    char id[24];
    char module[8]; /* Leads, Notes, Calls */
    char parent[24];
    int64_t created, modified;
    cJSON *fields;
};

struct sandbox_zoho {
    char client_id[160], client_secret[160], refresh_token[256];
    char external_field[64];
    /* Layout-mandatory fields beyond Last_Name (SANDBOX_ZOHO_REQUIRED_FIELDS). */
    char required[256];
    char custom[256]; /* the org's custom fields (SANDBOX_ZOHO_CUSTOM_FIELDS) */
    int64_t token_ttl_ms;
    struct {
        char token[80];
        int64_t expires;
    } tokens[LIVE_TOKENS];
    int ntokens, token_head;
    int64_t mints[MINTS_MAX];
    int mint_limit; /* tokens per refresh token per 10 minutes: Zoho's 10, or
                       SANDBOX_ZOHO_MINT_LIMIT */
    int nmints, mint_head;
    struct zrecord *recs;
    int nrecs, cap, records_max;
    uint64_t next_id;
};

/* ---- sandbox_zoho.c ---- */

/* Zoho's error answer: {"code","details","message","status":"error"} (429 with Retry-After). */
void sbz_zoho_error(struct http_req *req, int status, const char *code, const char *message);
/* One element of data[] in an answer: an error naming the field, or a success. */
cJSON *sbz_record_error(const char *code, const char *message, const char *api_name, int index,
                        const char *extra_key, cJSON *extra_val);
cJSON *sbz_record_success(const struct zrecord *r, const char *message);
/* A rolled fault answered (true), as Zoho answers it. */
bool sbz_faulted(struct sandbox *sb, struct http_req *req);
/* Every CRM call's checks: logged, faults, the API version, the token; false once answered. */
bool sbz_crm_prelude(struct sandbox *sb, struct http_req *req);
/* Records (lock held). */
struct zrecord *sbz_new_record(struct sandbox_zoho *z, const char *module, int64_t now);
struct zrecord *sbz_find_by_id(struct sandbox_zoho *z, const char *module, const char *id);
const char *sbz_str_field(const cJSON *rec, const char *name);
cJSON *sbz_record_json(const struct zrecord *r);

/*
 * A write of data[] records (after the prelude): each element through `one`
 * under the lock, which returns its answer and says if it was kept; then
 * all_ok_status, 207 or 400 (and the 500_after_write fault).
 */
typedef cJSON *(*sbz_write_fn)(struct sandbox *sb, struct http_req *req, const cJSON *rec, int i,
                               int64_t now, bool *kept);
void sbz_write_records(struct http_req *req, struct sandbox *sb, sbz_write_fn one,
                       int all_ok_status);

/* ---- the routes of the other files ---- */

void sbz_post_token(struct http_req *req, void *arg);  /* sandbox_zoho_oauth.c */
void sbz_get_related(struct http_req *req, void *arg); /* sandbox_zoho_reads.c */
void sbz_post_coql(struct http_req *req, void *arg);   /* sandbox_zoho_reads.c */
void sbz_post_notes(struct http_req *req, void *arg);  /* sandbox_zoho_activities.c */
void sbz_post_calls(struct http_req *req, void *arg);  /* sandbox_zoho_activities.c */

#endif
