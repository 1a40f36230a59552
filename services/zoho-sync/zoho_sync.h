/*
 * zoho-sync: every lead in Zoho CRM exactly once. Subscribes to ingest's
 * lead.created, keeps each lead in its store until Zoho has it (upsert keyed
 * by an External ID, so a retry after a crash updates instead of duplicating),
 * publishes lead.synced / lead.sync_failed, and keeps a dead-letter list that
 * an operator can read and retry. The OAuth access token lives in the store
 * too, so restarts do not mint new ones.
 */
#ifndef LEADBUS_ZOHO_SYNC_H
#define LEADBUS_ZOHO_SYNC_H

#include "app.h"

extern const struct module zoho_sync_module;

#endif
