/* libFuzzer target: Meta's webhook deliveries and Graph API lead answers. */
#include "sources_parse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct meta_change changes[META_CHANGES_MAX];
    static struct lead_parse_result r;
    int n = 0, ignored = 0, code = 0;
    char err[160];
    enum meta_parse_status st = meta_parse_delivery(
        (const char *)data, size, changes, META_CHANGES_MAX, &n, &ignored, err, sizeof err);
    if (st != META_PARSE_OK && n != 0) {
        abort();
    }
    for (int i = 0; i < n; i++) {
        if (!meta_id_ok(changes[i].leadgen_id)) {
            abort(); /* every id taken goes into a URL path: digits only */
        }
    }
    if (meta_parse_lead((const char *)data, size, "IN", NULL, &r, &code) == META_LEAD_OK &&
        strcmp(r.lead.source, "meta") != 0) {
        abort();
    }
    lead_parse_free(&r);
    return 0;
}
