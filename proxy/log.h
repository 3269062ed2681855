/*
 * proxy/log.h: one line per event on stderr, key=value pairs after a
 * timestamp and level, with the connection id when there is one:
 *   2026-11-29T20:31:02.114Z level=info conn=7 event=client_accept peer=127.0.0.1:51234
 * Messages must never contain secrets: callers pass redacted values.
 */
#ifndef MONGOCACHE_PROXY_LOG_H
#define MONGOCACHE_PROXY_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum proxy_log_level {
    PROXY_LOG_ERROR = 0,
    PROXY_LOG_WARN = 1,
    PROXY_LOG_INFO = 2,
    PROXY_LOG_DEBUG = 3,
};

void proxy_log_set_level(int level);
bool proxy_log_enabled(int level);

/*
 * Logs event at level. conn is the connection id, 0 for none. fmt gives
 * further " key=value" pairs (without a leading space); values that may
 * hold spaces should be quoted by the caller with %s and proxy_log_quote.
 */
void proxy_log(int level, uint64_t conn, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
