/*
 * ingest: POST /leads. Authenticates, parses and validates on the HTTP thread,
 * then commits the lead and its `lead.created` event together through the
 * store's writer (group commit), and answers 202 only once both are on disk.
 * An Idempotency-Key makes a retried POST return the first answer.
 */
#ifndef LEADBUS_INGEST_H
#define LEADBUS_INGEST_H

#include "app.h"

extern const struct module ingest_module;

#endif
