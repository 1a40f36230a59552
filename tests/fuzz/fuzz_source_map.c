/* libFuzzer target: a signed webhook's body through a mapping, and the mapping parser itself. */
#include "sources_parse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct lead_parse_result r;
    static struct source_map fixed;
    static struct source_path id;
    static int ready;
    char err[160], ref[128];
    if (!ready) {
        ready = source_map_parse("name=$.contact.full_name,phone=$.contact.phone,email=$.c.e,"
                                 "extra.k=$.items[0].k,notes=$.n",
                                 &fixed, err, sizeof err) == 0 &&
                source_path_parse("$.id", 4, &id) == 0;
        if (!ready) {
            abort();
        }
    }
    /* The first line, as a mapping spec (SOURCE_<NAME>_MAP); the whole input, as a body. */
    const char *nl = memchr(data, '\n', size);
    size_t spec_len = nl != NULL ? (size_t)(nl - (const char *)data) : size;
    char *spec = malloc(spec_len + 1);
    if (spec == NULL) {
        return 0;
    }
    memcpy(spec, data, spec_len);
    spec[spec_len] = '\0';
    struct source_map m;
    if (source_map_parse(spec, &m, err, sizeof err) == 0 && (m.n < 1 || m.n > SOURCE_MAP_MAX)) {
        abort();
    }
    free(spec);
    enum lead_parse_status st =
        source_map_lead(&fixed, &id, (const char *)data, size, "IN", &r, ref, sizeof ref);
    if (st == LEAD_OK && (ref[0] == '\0' || r.lead.last_name[0] == '\0')) {
        abort(); /* an accepted lead has its reference and a name */
    }
    if (st == LEAD_INVALID && r.fields == NULL) {
        abort();
    }
    lead_parse_free(&r);
    return 0;
}
