/* libFuzzer target: Zoho's notifications (POST /sources/zoho/notify) and record GET answers. */
#include "zoho_notify_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct zoho_notification n;
    char err[128];
    enum zoho_notify_status st = zoho_notify_parse((const char *)data, size, &n, err, sizeof err);
    if (st != ZOHO_NOTIFY_OK && n.nids != 0) {
        abort();
    }
    for (int i = 0; i < n.nids; i++) {
        if (!zoho_notify_id_ok(n.ids[i])) {
            abort(); /* every id goes into a CRM URL: digits only */
        }
    }
    struct zoho_notify_record recs[8];
    int got = 0;
    if (zoho_notify_records((const char *)data, size, recs, 8, &got) == 0) {
        for (int i = 0; i < got; i++) {
            if (!zoho_notify_id_ok(recs[i].id)) {
                abort();
            }
            free(recs[i].json);
        }
    } else if (got != 0) {
        abort();
    }
    return 0;
}
