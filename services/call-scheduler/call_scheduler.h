/*
 * call-scheduler: decides whether and when each lead is called, and hands due
 * calls to the dialer. Subscribes to ingest's lead.created and the dialer's
 * call.status; publishes call.scheduled, call.skipped and call.due. Pending
 * calls are rows in its store, so a restart loses none; a timer thread wakes
 * at the next due time and dispatches within the sliding-window rate limit,
 * whose recent dispatches are stored too, so a restart cannot burst past it.
 * Operators list and cancel calls over HTTP (GET /calls, DELETE /calls/{id}).
 */
#ifndef LEADBUS_CALL_SCHEDULER_H
#define LEADBUS_CALL_SCHEDULER_H

#include "app.h"

extern const struct module call_scheduler_module;

#endif
