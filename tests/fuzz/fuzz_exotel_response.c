/*
 * libFuzzer target: Exotel's answers as the dialer reads them — connect (any
 * HTTP status), call details, bulk call details, number metadata. The first
 * two bytes pick the HTTP status the connect answer came with.
 */
#include "exotel_client.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 400, 401, 402, 403, 404, 409, 429, 500, 503, 504, 0};
    if (size < 2) {
        return 0;
    }
    long status = statuses[data[0] % (sizeof statuses / sizeof statuses[0])];
    const char *body = (const char *)data + 2;
    size_t len = size - 2;
    struct exotel_connect_result r;
    exotel_classify_connect(status, data[1] & 1, -1, body, len, &r);
    if (r.outcome == EXOTEL_PLACED && (status != 200 || r.call.sid[0] == '\0')) {
        abort(); /* only a 200 with a Sid counts as placed */
    }
    if (status >= 500 && r.outcome != EXOTEL_UNKNOWN) {
        abort(); /* a 5xx never lets a caller think the call was not made */
    }
    struct exotel_call c;
    if (exotel_parse_call(body, len, &c) == 0 && (c.sid[0] == '\0' || c.duration_s < 0)) {
        abort();
    }
    static struct exotel_call calls[100];
    int n = exotel_parse_calls(body, len, calls, 100);
    for (int i = 0; i < n; i++) {
        if (calls[i].sid[0] == '\0') {
            abort();
        }
    }
    struct exotel_page page;
    n = exotel_parse_calls_page(body, len, calls, 100, &page);
    if (n > 100 || (n >= 0 && strlen(page.after) >= sizeof page.after)) {
        abort();
    }
    for (size_t i = 0; page.after[i] != '\0'; i++) {
        if (page.after[i] < 0x21 || page.after[i] > 0x7e) {
            abort(); /* a cursor goes back into a URL: printable ASCII only */
        }
    }
    bool dnd;
    exotel_parse_number(body, len, &dnd);
    return 0;
}
