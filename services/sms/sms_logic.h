/*
 * sms_logic: the SMS follow-up's pure decisions, apart from its I/O (sms.c,
 * sms_send.c). Which missed calls get a text (SMS_ON), the text itself
 * (SMS_TEMPLATE with {first_name}, {last_name}, {agent_name}, {company}), the
 * Sms/send form with the DLT fields Indian operators require, and the readings
 * of Exotel's answers (the send's SMSMessage, the delivery callback, a number's
 * DND flag). No I/O, no globals: tests/unit/test_sms.c drives them.
 *
 * The follow-up's state machine (the `sms` table's `state`, CHECKed in the schema):
 *
 *      call.closed (status in SMS_ON, lead known)
 *                |
 *                v
 *   +-------- pending --(lead erased)--> skipped
 *   |            | (inside CALL_HOURS, Numbers/{n} says DND: no) claim, committed
 *   | DND: yes   v
 *   +------> sending --2xx with a Sid--> sent --callback delivered/sent--> delivered
 *   |            |                         \---callback failed/failed_dnd--> failed / dnd
 *   v            +--4xx refused----------> failed (403 naming DND: dnd)
 *  dnd           +--5xx, timeout, cut----> unknown  (never sent again: at most one per lead)
 *                +--no connection--------> pending  (nothing reached Exotel; later)
 *  A `sending` row found at start (killed mid-request) becomes `unknown`.
 * Invariants: one row per lead (its primary key), so at most one SMS per lead; a row
 * leaves `pending` only inside the calling window; `unknown` is never retried.
 */
#ifndef LEADBUS_SMS_LOGIC_H
#define LEADBUS_SMS_LOGIC_H

#include <stdbool.h>
#include <stddef.h>

enum sms_state {
    SMS_PENDING,
    SMS_SENDING,
    SMS_SENT,
    SMS_DELIVERED,
    SMS_FAILED,
    SMS_DND,
    SMS_UNKNOWN,
    SMS_SKIPPED,
    SMS_NSTATES
};

extern const char *const sms_state_names[SMS_NSTATES];

/* Statuses SMS_ON may name: the final call statuses that mean "the lead was not reached". */
#define SMS_ON_MAX 8
struct sms_on {
    char status[SMS_ON_MAX][24];
    int n;
};

/* "no-answer,busy" into `on`; "" is off. -1 with `err` for a status that is not a missed call
 * (`dnd` and `rejected` never get a text: the operator may not reach that number). */
int sms_on_parse(const char *list, struct sms_on *on, char *err, size_t err_size);
bool sms_on_match(const struct sms_on *on, const char *status);

/* What a template may name. NULL fields render as "". */
struct sms_vars {
    const char *first_name, *last_name, *agent_name, *company;
};

/* SMS_TEMPLATE with its {placeholders} filled; -1 for an unknown placeholder or an unclosed '{'
 * (checked at start with empty vars), -2 when the text does not fit `size` or exceeds 2000
 * characters (Exotel's Body limit). */
int sms_render(const char *tmpl, const struct sms_vars *v, char *out, size_t size);

/* An Sms/send answer's SMSMessage.Sid (JSON or XML); 0, or -1 without one. */
int sms_parse_sent(const char *body, size_t len, char *sid, size_t sid_size);

/* A delivery callback's Status into the state it leaves the SMS in: SENT for an interim one
 * (queued, sending, submitted), DELIVERED, FAILED or DND; -1 for a status Exotel does not
 * document. */
int sms_callback_state(const char *status);

/* A Numbers/{n} answer's DND flag: 0 with *dnd set, or -1 when the answer has none. */
int sms_parse_dnd(const char *body, size_t len, bool *dnd);

#endif
