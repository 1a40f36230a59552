/*
 * agent_pool: the agents the dialer connects leads to (AGENTS / AGENTS_FILE), and which of
 * them takes the next call. Pure: parsing and choosing, no I/O (unit-tested in
 * tests/unit/test_agent_pool.c). The store keeps each agent's state (dialer's `agents`
 * table, drawn in agents.c); the chooser only reads a snapshot of it.
 * Memory: the caller owns every struct; nothing is allocated here.
 */
#ifndef LEADBUS_AGENT_POOL_H
#define LEADBUS_AGENT_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_NAME_MAX 32
#define AGENT_NUMBER_MAX 24
#define AGENT_POOL_MAX 256

struct agent_def {
    char name[AGENT_NAME_MAX];     /* [A-Za-z0-9_.-], 1-31 characters */
    char number[AGENT_NUMBER_MAX]; /* as Exotel dials it: +E.164 or 0-prefixed */
};

enum agent_strategy { AGENT_ROUND_ROBIN, AGENT_LONGEST_IDLE };

extern const char *const agent_strategy_name[]; /* "round-robin", "longest-idle", NULL */

/* One agent as the chooser sees it, in the pool's (configuration) order. */
struct agent_view {
    bool busy;          /* on a call: never offered another */
    bool paused;        /* paused by an operator */
    int64_t idle_since; /* when its last call ended (0: never called) */
};

/*
 * Parse `Name:number,Name:number` (commas or newlines; blank lines and `#` comments skipped,
 * so a file reads the same). Names unique, numbers unique. The number of agents, or -1 with
 * one line in err naming `setting` and what is wrong.
 */
int agent_pool_parse(const char *spec, const char *setting, struct agent_def *out, int max,
                     char *err, size_t err_size);

/*
 * The agent for the next call: an index into v[0..n), or -1 when every agent is busy or
 * paused. Round-robin starts at *cursor (the agent after the last one chosen) and moves it
 * past the chosen one; longest-idle takes the agent whose last call ended first (never
 * called counts as idle since forever; ties go to pool order) and leaves *cursor alone.
 */
int agent_choose(const struct agent_view *v, int n, enum agent_strategy s, int *cursor);

/*
 * The agent's leg of an agent-first call, from Exotel's first-leg status (Legs[0].Status,
 * Leg1Status) and the overall status: "answered", "no-answer", "busy", "failed", or "" when
 * Exotel did not say. A `completed` call had both legs answered.
 */
const char *agent_leg_of(const char *leg1, const char *status);
/* Which side a final outcome belongs to, in words ("the agent did not answer", "the lead was
 * busy"), or NULL when there is nothing to say (completed, or the leg unknown). */
const char *agent_leg_detail(const char *agent_leg, const char *status);

#endif
