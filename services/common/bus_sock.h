/*
 * bus_sock: closing nng sockets without hanging shutdown.
 *
 * nng 1.5.2 (Debian 12's) can deadlock in nng_close() while peers are still
 * sending (nanomsg/nng#1543, #1813; fixed upstream after 1.5.2). We saw it on
 * SUB sockets under load. A socket is therefore closed on a helper thread and
 * waited for at most `timeout_ms`; if nng is stuck we leave that thread behind
 * and carry on, so SIGTERM still stops the process in bounded time.
 */
#ifndef LEADBUS_BUS_SOCK_H
#define LEADBUS_BUS_SOCK_H

#include <nng/nng.h>
#include <stdbool.h>

/* Returns true if the socket closed within the time. */
bool bus_sock_close(nng_socket s, int timeout_ms);

#endif
