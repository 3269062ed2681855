/*
 * proxy/log.h: one line per event on stderr, key=value pairs after a
 * timestamp and level, with the connection id when there is one:
 *   2026-11-29T20:31:02.114Z level=info conn=7 event=client_accept peer=127.0.0.1:51234
 * Messages must never contain secrets: callers pass redacted values.
 *
 * Values cannot forge lines or pairs, whoever wrote them (a client's
 * appName, a user name, a namespace, an error text quoting peer data):
 * proxy_log escapes every string argument itself (see proxy_log), so a
 * call site cannot forget to, and no byte below 0x20 (nor DEL) is ever
 * written raw, wherever it came from.
 */
#ifndef MONGOCACHE_PROXY_LOG_H
#define MONGOCACHE_PROXY_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum proxy_log_level {
    PROXY_LOG_ERROR = 0,
    PROXY_LOG_WARN = 1,
    PROXY_LOG_INFO = 2,
    PROXY_LOG_DEBUG = 3,
};

/* Longest line written, newline excluded; a longer one is cut and ends with truncated=true. */
#define PROXY_LOG_LINE_MAX 2048

void proxy_log_set_level(int level);
bool proxy_log_enabled(int level);

/*
 * Logs event at level. conn is the connection id, 0 for none. fmt gives
 * further " key=value" pairs (without a leading space), printf-style.
 * Every string argument (%s, with any precision) is escaped as it is
 * written:
 *   - inside quotes of fmt (msg=\"%s\"): '"' and '\\' get a backslash,
 *     control characters and bytes that are not UTF-8 become \n, \r, \t,
 *     \xNN (C1 controls and U+2028/U+2029 become \uNNNN);
 *   - bare (peer=%s): written as is when it is made only of printable
 *     ASCII other than '"', '\\' and '='; otherwise quoted and escaped as
 *     above (an empty value is written "").
 * Everything else written (fmt's own text, numbers) has its control bytes
 * escaped too. A line longer than PROXY_LOG_LINE_MAX is cut between two
 * values or escapes, an open quote closed, and " truncated=true" added.
 */
void proxy_log(int level, uint64_t conn, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Formats fmt and its arguments as proxy_log does after "event=NAME "
 * into buf (len bytes, NUL-terminated). Returns the length written.
 * Exposed for the unit tests.
 */
size_t proxy_log_format(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t proxy_log_vformat(char *buf, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * Writes the n bytes of value to buf (len bytes, NUL-terminated) as one
 * quoted log value, escaped as described at proxy_log. Cut short when buf
 * is too small, between escapes, and still closed with its quote (len must
 * be at least 3). Returns the length written.
 */
size_t proxy_log_quote(char *buf, size_t len, const char *value, size_t n);

#endif
