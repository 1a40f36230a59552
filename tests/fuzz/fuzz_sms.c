/*
 * libFuzzer target: what the SMS follow-up reads from outside — Exotel's Sms/send answer
 * (JSON or XML), a number's DND flag, a delivery callback's Status — and the template renderer
 * with outside text in its fields (a lead's name). The first byte picks what is fed.
 */
#include "sms_logic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char sid[64], text[2048], s[256];
    bool dnd;
    switch (data[0] % 4) {
    case 0:
        if (sms_parse_sent(body, len, sid, sizeof sid) == 0 &&
            (sid[0] == '\0' || strlen(sid) > 63)) {
            abort();
        }
        break;
    case 1:
        sms_parse_dnd(body, len, &dnd);
        break;
    case 2: {
        size_t n = len < sizeof s - 1 ? len : sizeof s - 1;
        memcpy(s, body, n);
        s[n] = '\0';
        int st = sms_callback_state(s);
        if (st >= SMS_NSTATES) {
            abort();
        }
        break;
    }
    default: {
        size_t n = len < sizeof s - 1 ? len : sizeof s - 1;
        memcpy(s, body, n);
        s[n] = '\0';
        struct sms_vars v = {s, s, s, s};
        if (sms_render("Hi {first_name} {last_name}, {agent_name} of {company}", &v, text,
                       sizeof text) == 0 &&
            strlen(text) > 2000) {
            abort();
        }
        break;
    }
    }
    return 0;
}
