/* attempt_state: the states of a call attempt (the machine is drawn in attempts.c). */
#ifndef LEADBUS_ATTEMPT_STATE_H
#define LEADBUS_ATTEMPT_STATE_H

enum attempt_state {
    ATTEMPT_QUEUED,
    ATTEMPT_DIALING,
    ATTEMPT_INITIATED,
    ATTEMPT_UNKNOWN,
    ATTEMPT_FINAL,
};

/* The names the store keeps (attempts.state, CHECKed in the schema). */
extern const char *const attempt_state_name[];

#endif
