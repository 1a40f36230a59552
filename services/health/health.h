/*
 * health: small subcommands for images that carry no shell and no curl.
 *
 *   leadbus health [PATH]   GET PATH (default /healthz) from this container's own
 *                           leadbus (HTTP_BIND, or loopback when it binds every
 *                           address; PORT): exit 0 on 200, else 1 with one line.
 *                           The image's HEALTHCHECK and exec probes use it.
 *   leadbus sleep SECONDS   wait, then exit 0: a Kubernetes preStop pause, so
 *                           endpoints drain before SIGTERM arrives.
 */
#ifndef LEADBUS_HEALTH_H
#define LEADBUS_HEALTH_H

#include <stdbool.h>

/* True when argv[1] names one of these subcommands. */
bool health_is_command(const char *arg);

/* Run the subcommand in argv[0] (argc/argv start at the subcommand's name). */
int health_main(int argc, char **argv);

#endif
