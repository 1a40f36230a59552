/*
 * stats: the operator's view. Subscribes to every topic of every publisher
 * (the model of adding a subscriber: no publisher knows it exists), folds
 * each event exactly once into its own store, and serves the original guide's
 * GET /exotel/stats (plus richer counts), a per-lead timeline (GET
 * /leads/{id}), the latest leads (GET /leads), per-minute outcomes (GET
 * /exotel/stats/series) and the dashboard page (GET /).
 */
#ifndef LEADBUS_STATS_H
#define LEADBUS_STATS_H

#include "app.h"

extern const struct module stats_module;

/* The dashboard page, embedded at build time from dashboard.html. */
extern const unsigned char stats_dashboard_html[];
extern const unsigned int stats_dashboard_html_len;

#endif
