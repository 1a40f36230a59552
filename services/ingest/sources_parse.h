/*
 * sources_parse: the outside input of the lead sources beyond POST /leads,
 * parsed and checked without I/O (unit-tested in test_sources.c, fuzzed by
 * fuzz_source_map and fuzz_meta_delivery).
 *
 * Signatures. A signed webhook and a Meta delivery carry
 * `sha256=<64 hex digits>` (or the bare hex), the HMAC-SHA256 of the raw body
 * bytes keyed with the source's secret. source_sig_check() compares it in
 * constant time (CRYPTO_memcmp, as the dialer's callback tokens).
 *
 * Mappings (SOURCE_<NAME>_MAP). A comma-separated list of `field=path`:
 *
 *     name=$.contact.full_name,phone=$.contact.phone,email=$.contact.email,
 *     extra.campaign=$.meta.campaign,notes=$.answers[0].text
 *
 * `field` is a POST /leads field (name, firstName, lastName, phone, email,
 * company, city, notes; not source, which is the source's name) or `extra.<key>` (a key of the
 * lead's `extra` object). `path` starts at `$` (the body) and follows `.key` (letters, digits, `_`
 * and `-`) or `[index]` steps, at most 8. A value that is a string is taken as is, a number or a
 * boolean as its JSON text; a missing value leaves the field out (POST /leads's rules then decide).
 * The mapped object goes through lead_parse(), so a mapped lead is validated and normalised exactly
 * as a posted one.
 *
 * Meta Lead Ads. A delivery is {"object":"page","entry":[{"changes":[{"field":
 * "leadgen","value":{"leadgen_id":…}}]}]}; a lead from the Graph API is
 * {"id":…,"field_data":[{"name":…,"values":[…]}]} (shared/reference/
 * meta-lead-ads.md). full_name, first_name, last_name, phone_number, email,
 * city and company_name map to the lead's fields; every other question goes to
 * `extra` under its own name. A form's own questions can be mapped too
 * (META_FIELD_MAP for every form, META_FORM_<FORM_ID>_MAP for one):
 * `question=field,...`, e.g. `whatsapp_number=phone,preferred_city=city,
 * budget=extra.budget_inr`; `field` as in SOURCE_<NAME>_MAP.
 *
 * Memory: nothing kept; results are written into the caller's structs.
 */
#ifndef LEADBUS_SOURCES_PARSE_H
#define LEADBUS_SOURCES_PARSE_H

#include "lead_parse.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- signatures ---- */

enum source_sig {
    SOURCE_SIG_OK = 0,
    SOURCE_SIG_MISSING,   /* no header */
    SOURCE_SIG_MALFORMED, /* not sha256=<64 hex> */
    SOURCE_SIG_MISMATCH,  /* well-formed, wrong */
};
const char *source_sig_name(enum source_sig s);

enum source_sig source_sig_check(const unsigned char *key, size_t key_len, const char *body,
                                 size_t len, const char *header);

/* ---- JSON paths and mappings ---- */

#define SOURCE_PATH_SEGS 8
#define SOURCE_KEY_MAX 64
#define SOURCE_MAP_MAX 24

struct source_path {
    int nsegs;
    struct {
        int index; /* >= 0 for [index], -1 for .key */
        char key[SOURCE_KEY_MAX];
    } seg[SOURCE_PATH_SEGS];
};

struct source_map {
    int n;
    struct {
        char field[SOURCE_KEY_MAX + 8]; /* "phone", "extra.campaign" */
        struct source_path path;
    } e[SOURCE_MAP_MAX];
};

/* "$.a.b[2]" (len bytes) into p: 0, or -1 when it is not a path as above. */
int source_path_parse(const char *s, size_t len, struct source_path *p);
/* The item at p in root, or NULL. */
const cJSON *source_path_get(const cJSON *root, const struct source_path *p);
/* A string, number or boolean as text into out[size]: 0, or -1 for another type or too long. */
int source_scalar(const cJSON *it, char *out, size_t size);

/* Parse SOURCE_<NAME>_MAP: 0, or -1 with err naming the bad item. */
int source_map_parse(const char *spec, struct source_map *m, char *err, size_t err_size);

/*
 * Map `body` into a lead (lead_parse's rules and result) and its reference
 * (the scalar at `ref_path`, at most ref_size - 1 bytes) into ref. A missing
 * reference makes the lead LEAD_INVALID with the field "sourceRef" named.
 */
enum lead_parse_status source_map_lead(const struct source_map *m,
                                       const struct source_path *ref_path, const char *body,
                                       size_t len, const char *region, struct lead_parse_result *r,
                                       char *ref, size_t ref_size);

/* ---- Meta Lead Ads ---- */

#define META_ID_MAX 64
#define META_CHANGES_MAX 100

struct meta_change {
    char leadgen_id[META_ID_MAX]; /* digits only: it goes into a Graph URL */
    char page_id[META_ID_MAX];
    char form_id[META_ID_MAX];
};

enum meta_parse_status {
    META_PARSE_OK = 0,
    META_PARSE_MALFORMED = -1, /* not a delivery: see err */
};

/*
 * The leadgen changes of a delivery, at most `max` into out (*n); changes of
 * other fields are counted in *ignored. More than `max`, or a leadgen change
 * without a usable leadgen_id, is MALFORMED (nothing is taken from it).
 */
enum meta_parse_status meta_parse_delivery(const char *body, size_t len, struct meta_change *out,
                                           int max, int *n, int *ignored, char *err,
                                           size_t err_size);

/* The handshake: mode is "subscribe" and token equals expected (constant time). */
bool meta_verify_ok(const char *mode, const char *token, const char *expected);

/* Digits only, 1 to META_ID_MAX - 1 of them. */
bool meta_id_ok(const char *id);

enum meta_lead_status {
    META_LEAD_OK = 0,
    META_LEAD_MALFORMED,   /* not a Graph lead object (message in r->message) */
    META_LEAD_GRAPH_ERROR, /* {"error":{…}}: *graph_code and r->message */
    META_LEAD_INVALID,     /* a lead POST /leads would refuse: r->fields */
};

#define META_FIELD_MAP_MAX 24

struct meta_field_map {
    int n;
    struct {
        char question[SOURCE_KEY_MAX];
        char field[SOURCE_KEY_MAX + 8];
    } e[META_FIELD_MAP_MAX];
};

/* Parse `question=field,...`: 0, or -1 with err naming the bad item. */
int meta_field_map_parse(const char *spec, struct meta_field_map *m, char *err, size_t err_size);

/* `map` (may be NULL) is looked up first for every question, then the standard names. */
enum meta_lead_status meta_parse_lead(const char *body, size_t len, const char *region,
                                      const struct meta_field_map *map, struct lead_parse_result *r,
                                      int *graph_code);

#endif
