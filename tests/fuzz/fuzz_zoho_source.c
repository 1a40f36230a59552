/* libFuzzer target: Zoho CRM records as the workflow webhook (and the record GET) sends them. */
#include "sources_zoho_parse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct lead_parse_result r;
    char ref[ZOHO_RECORD_ID_MAX];
    enum zoho_src_status st =
        zoho_src_webhook((const char *)data, size, "Leadbus_Id", "IN", &r, ref);
    if ((st == ZOHO_SRC_LEAD || st == ZOHO_SRC_OURS) && !zoho_record_id_ok(ref)) {
        abort(); /* the record id goes into CRM URL paths: digits only */
    }
    if (st == ZOHO_SRC_LEAD && r.lead.last_name[0] == '\0') {
        abort();
    }
    lead_parse_free(&r);
    return 0;
}
