/* libFuzzer target: Zoho's token, records and list answers as zoho-sync parses them. */
#include "zoho_client.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct zoho_token tok;
    char error[128];
    enum zoho_token_status st = zoho_parse_token((const char *)data, size, 0, &tok, error);
    if (st == ZOHO_TOKEN_OK && tok.access[0] == '\0') {
        abort(); /* success always yields a token */
    }
    static struct zoho_result results[ZOHO_BATCH_MAX];
    int n = zoho_parse_records((const char *)data, size, results, ZOHO_BATCH_MAX);
    for (int i = 0; i < n; i++) {
        if (results[i].ok && (results[i].permanent || results[i].id[0] == '\0')) {
            abort(); /* a success has an id and is never a permanent failure */
        }
    }
    char id[32], code[64];
    bool more;
    static const long statuses[] = {200, 204, 400, 401, 429, 500};
    long status = statuses[size % (sizeof statuses / sizeof statuses[0])];
    enum zoho_list_status ls = zoho_parse_list(status, (const char *)data, size, "Note_Content",
                                               "[leadbus", id, &more, code);
    if (ls == ZOHO_LIST_FOUND && (status != 200 || id[0] == '\0')) {
        abort(); /* a record is found only in a 200 answer, and always with its id */
    }
    if (status != 200 && status != 204 && code[0] == '\0') {
        abort(); /* a failed read always names its code */
    }
    return 0;
}
