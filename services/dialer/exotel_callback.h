/*
 * exotel_callback: reading Exotel's StatusCallback, which arrives as
 * multipart/form-data (Exotel's default), urlencoded, or JSON (when the
 * connect request asked for it). No library here parses multipart from a
 * buffer, so this module does, strictly: a malformed body is refused, never
 * half-read. Pure: the fuzzer drives it. Writes only into the caller's struct.
 */
#ifndef LEADBUS_EXOTEL_CALLBACK_H
#define LEADBUS_EXOTEL_CALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct exotel_callback {
    char call_sid[64];
    char status[24];
    char event_type[16]; /* terminal, answered, or "" */
    char recording_url[512];
    char custom_field[129];
    int64_t duration_s; /* ConversationDuration, else the longest leg, else Duration; 0 if none */
    /* Each leg's status: Legs[0]/Legs[1] (JSON; `Leg1Status`/`Leg2Status` or `Legs[0][Status]`
     * in form bodies, whose encoding Exotel does not document). Leg 1 is `From`: the agent in
     * an agent-first call. "" when absent. */
    char leg1_status[24], leg2_status[24];
};

/* 0 when the body was read and has a CallSid and a Status; -1 otherwise. */
int exotel_callback_parse(const char *content_type, const char *body, size_t len,
                          struct exotel_callback *cb);

#endif
