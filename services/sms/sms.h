/*
 * sms: the SMS follow-up (issue 20). When call-scheduler closes a call whose
 * last attempt missed the lead (call.closed with a status in SMS_ON), one SMS
 * goes to the lead through Exotel's Sms/send, with the DLT fields Indian
 * operators require, inside the calling hours, never to a number Exotel
 * reports on the DND register, at most once per lead (a row per lead in
 * DATA_DIR/sms.db, claimed before the request, so a SIGKILL never sends twice).
 * Off unless SMS_ON is set.
 */
#ifndef LEADBUS_SMS_H
#define LEADBUS_SMS_H

#include "app.h"

extern const struct module sms_module;

#endif
