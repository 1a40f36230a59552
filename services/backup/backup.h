/*
 * backup: copies of a deployment's stores, taken while it runs, and putting them back.
 *
 *   leadbus backup DIR            every store in DATA_DIR (and its generated api_key) copied
 *                                 into DIR with SQLite's online backup API: one line per
 *                                 store, files 0600. The process keeps running.
 *   leadbus restore DIR [NAME...] DIR's copies (or only NAME's) put in DATA_DIR while no
 *                                 process runs on them, each publisher's stream given a new
 *                                 epoch so every subscriber re-reads it (README, "Backups").
 *
 * Stores are copied downstream first (stats, dialer, call-scheduler, zoho-sync, ingest): a
 * subscriber's copy is then no newer than what its publishers kept, so a restored set catches
 * up by replay; the one loop (call-scheduler and dialer read each other) is closed by the new
 * epochs.
 *
 * Memory: nothing is kept. Threads: runs on main's thread before anything starts.
 */
#ifndef LEADBUS_BACKUP_H
#define LEADBUS_BACKUP_H

#include <stdbool.h>

/* True when argv[1] names one of these subcommands. */
bool backup_is_command(const char *arg);

/* Run the subcommand in argv[0] (argc/argv start at its name): 0, 1 (a copy failed) or 2. */
int backup_main(int argc, char **argv);

#endif
