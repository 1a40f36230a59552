/*
 * libFuzzer target: Exotel StatusCallback bodies. The first byte picks the
 * encoding (JSON, urlencoded, multipart with a fixed boundary); the rest is
 * the body. A parse either fails cleanly (everything zeroed) or yields a
 * CallSid and a lower-case Status, with every string terminated.
 */
#include "exotel_callback.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {"application/json", "application/x-www-form-urlencoded",
                                        "multipart/form-data; boundary=XyZ",
                                        "multipart/form-data; boundary=\"q b\""};
    if (size < 1) {
        return 0;
    }
    const char *ct = types[data[0] % 4];
    struct exotel_callback cb;
    int rc = exotel_callback_parse(ct, (const char *)data + 1, size - 1, &cb);
    if (rc == 0) {
        if (cb.call_sid[0] == '\0' || cb.status[0] == '\0' || cb.duration_s < 0) {
            abort();
        }
        for (const char *s = cb.status; *s; s++) {
            if (*s >= 'A' && *s <= 'Z') {
                abort();
            }
        }
    } else if (cb.call_sid[0] != '\0' || cb.status[0] != '\0') {
        abort(); /* a refused body leaves nothing half-read */
    }
    if (memchr(cb.recording_url, '\0', sizeof cb.recording_url) == NULL ||
        memchr(cb.custom_field, '\0', sizeof cb.custom_field) == NULL) {
        abort();
    }
    return 0;
}
