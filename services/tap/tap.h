/*
 * tap: `leadbus tap`, a subscriber that is not a service. It prints every
 * event of the given publishers as one JSON line on stdout: the operator's
 * debugging tool, and the model of an outside subscriber.
 */
#ifndef LEADBUS_TAP_H
#define LEADBUS_TAP_H

/* argv[0] is "tap". Returns the process exit status. */
int tap_main(int argc, char **argv);

#endif
