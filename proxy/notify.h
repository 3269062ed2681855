/*
 * proxy/notify.h: tells a service manager (systemd, Type=notify) what the
 * proxy is doing, with the sd_notify datagram protocol, without libsystemd.
 */
#ifndef MONGOCACHE_PROXY_NOTIFY_H
#define MONGOCACHE_PROXY_NOTIFY_H

#include <bson/bson.h>
#include <stdbool.h>

/*
 * Sends state, newline-separated VARIABLE=VALUE assignments such as
 * "READY=1" or "STOPPING=1", in one datagram to the AF_UNIX socket that
 * $NOTIFY_SOCKET names (a path, or "@name" for an abstract socket). With no
 * NOTIFY_SOCKET (not started by systemd) it does nothing and returns true.
 * False with error when the variable is unusable or the send fails: the
 * caller logs it; the proxy runs on either way. state is borrowed.
 */
bool proxy_notify_send(const char *state, bson_error_t *error) __attribute__((warn_unused_result));

/*
 * Sends "RELOADING=1" with "MONOTONIC_USEC=" the current CLOCK_MONOTONIC
 * time (which systemd 253 and later require with it). The reload's end is
 * a proxy_notify_send("READY=1"), whether the reload was applied or refused.
 */
bool proxy_notify_reloading(bson_error_t *error) __attribute__((warn_unused_result));

#endif
