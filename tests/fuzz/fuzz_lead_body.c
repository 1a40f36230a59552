/* libFuzzer target: the POST /leads body parser and validator. */
#include "lead_parse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct lead_parse_result r;
    enum lead_parse_status st = lead_parse((const char *)data, size, "IN", &r);
    if (st == LEAD_OK) {
        /* An accepted lead always has a last name and a usable contact. */
        if (r.lead.last_name[0] == '\0' ||
            (strcmp(r.lead.phone_status, "valid") != 0 && r.lead.email[0] == '\0')) {
            abort();
        }
    } else if (st == LEAD_INVALID && r.fields == NULL) {
        abort(); /* a 422 must name its fields */
    }
    lead_parse_free(&r);
    return 0;
}
