/*
 * zoho_notify_parse: what Zoho's Notifications API sends and answers, parsed
 * without I/O (unit-tested in test_zoho_notify.c, fuzzed by fuzz_zoho_notify).
 *
 * A notification (POSTed by Zoho to the channel's notify_url) is
 *   {"server_time":…, "module":"Leads", "operation":"insert", "channel_id":…,
 *    "token":"…", "ids":["5725767000000000001", …], "resource_uri":…, "query_params":{}}
 * (zoho.com/crm/developer/docs/api/v8/notifications/enable.html). channel_id
 * may come as a number or a string; ids are strings of digits (they go into
 * a CRM URL), at most ZOHO_NOTIFY_IDS_MAX per notification.
 *
 * The record GET (`GET Leads?ids=…&fields=…`) answers {"data":[{…},…],"info":…}
 * or 204 without a body; zoho_notify_records() hands out each record's JSON
 * text with its id.
 *
 * Memory: nothing kept, except the texts zoho_notify_records() allocates
 * (the caller frees each one).
 */
#ifndef LEADBUS_ZOHO_NOTIFY_PARSE_H
#define LEADBUS_ZOHO_NOTIFY_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define ZOHO_NOTIFY_IDS_MAX 100
#define ZOHO_NOTIFY_ID_MAX 32
#define ZOHO_NOTIFY_TOKEN_MAX 51 /* Zoho: "The maximum character length is 50" */

struct zoho_notification {
    char channel_id[ZOHO_NOTIFY_ID_MAX];
    char token[ZOHO_NOTIFY_TOKEN_MAX]; /* "" when absent */
    char module[32];
    char operation[16];
    int nids;
    char ids[ZOHO_NOTIFY_IDS_MAX][ZOHO_NOTIFY_ID_MAX];
};

enum zoho_notify_status {
    ZOHO_NOTIFY_OK = 0,
    ZOHO_NOTIFY_MALFORMED = -1, /* not a notification: err says why; nothing is taken */
};

/* Digits only, 1 to ZOHO_NOTIFY_ID_MAX - 1 of them. */
bool zoho_notify_id_ok(const char *id);

enum zoho_notify_status zoho_notify_parse(const char *body, size_t len, struct zoho_notification *n,
                                          char *err, size_t err_size);

/* One record of a record GET's answer: its id and its JSON text (malloc'd). */
struct zoho_notify_record {
    char id[ZOHO_NOTIFY_ID_MAX];
    char *json;
};

/* The records of a `GET Leads?ids=` answer into out (at most max); *n of them. -1 when the body
 * is not such an answer (nothing allocated). Records without a usable id are skipped. */
int zoho_notify_records(const char *body, size_t len, struct zoho_notify_record *out, int max,
                        int *n);

#endif
