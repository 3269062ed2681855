/*
 * conf/log.h: one line per event on stderr: the timestamp, the level, the
 * connection id when there is one, the event, then the event's pairs, in
 * one of two formats (option log_format):
 *   logfmt: ts=2026-11-29T20:31:02.114Z level=info conn=7 event=client_accept peer=127.0.0.1:51234
 *   json:   {"ts":"2026-11-29T20:31:02.114Z","level":"info","conn":7,"event":"client_accept",
 *            "peer":"127.0.0.1:51234"}  (on one line)
 * The same keys in both, in the same order; numbers are JSON numbers.
 * Messages must never contain secrets: callers pass redacted values.
 *
 * Values cannot forge lines or pairs, whoever wrote them (a client's
 * appName, a user name, a namespace, an error text quoting peer data):
 * conf_log escapes every value itself (see conf_log), so a call site
 * cannot forget to, and no byte below 0x20 (nor DEL) is ever written raw,
 * wherever it came from.
 */
#ifndef MONGOCACHE_CONF_LOG_H
#define MONGOCACHE_CONF_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Levels, most severe first; also the values of a LOGLEVEL option (conf/conf.h). */
enum conf_log_level {
    CONF_LOG_ERROR = 0,
    CONF_LOG_WARN = 1,
    CONF_LOG_INFO = 2,
    CONF_LOG_DEBUG = 3,
};

/* log_format: the line format. */
enum conf_log_kind {
    CONF_LOG_KIND_LOGFMT = 0,
    CONF_LOG_KIND_JSON = 1,
};

/* Longest line written, newline excluded; a longer one is cut and ends with truncated=true. */
#define CONF_LOG_LINE_MAX 2048

void conf_log_set_level(int level);
bool conf_log_enabled(int level);

/* The format of the lines written from now on (any thread may be logging: atomic). */
void conf_log_set_kind(int kind);
int conf_log_kind(void);
/* "logfmt" or "json" into *kind; false for anything else. */
bool conf_log_kind_parse(const char *name, int *kind);

/*
 * Logs event at level. conn is the connection id, 0 for none. fmt gives
 * the event's pairs, printf-style: " "-separated key=value templates (no
 * leading blank), a value template being any mix of text, conversions and
 * "quoted" stretches (which may hold blanks: msg=\"a b %s\"). Each value
 * is assembled whole, then written:
 *   - logfmt: bare when it is made only of printable ASCII other than '"',
 *     '\\' and '=' (and is neither empty nor "null") and its template had
 *     no quotes; otherwise quoted and escaped;
 *   - json: a number when its template is one numeric conversion (d, i, u,
 *     e, f, g) giving a JSON number; otherwise a string.
 * A key without '=' is a key alone (logfmt: the bare key; json: true).
 * Escaping, the same in both formats: '"' and '\\' get a backslash;
 * \n, \r, \t; other control characters, DEL, C1 controls and U+2028 and
 * U+2029 become \uNNNN; a byte that is not valid UTF-8 becomes \ufffd.
 * Keys are the format's own text: a byte outside [A-Za-z0-9_.-] in one
 * becomes '_'. A line longer than CONF_LOG_LINE_MAX is cut between two
 * values or escapes, an open quote closed, and a truncated=true pair
 * added.
 */
void conf_log(int level, uint64_t conn, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Formats fmt and its arguments (logfmt) as conf_log does after
 * "event=NAME " into buf (len bytes, NUL-terminated). Returns the length written.
 * Exposed for the unit tests.
 */
size_t conf_log_format(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t conf_log_vformat(char *buf, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * The whole line conf_log would write (without its newline) into buf (len
 * bytes, at least 200, NUL-terminated), in format kind, with timestamp ts.
 * Returns the length written. Exposed for the unit tests.
 */
size_t conf_log_render(char *buf, size_t len, int kind, const char *ts, int level, uint64_t conn,
                       const char *event, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
size_t conf_log_vrender(char *buf, size_t len, int kind, const char *ts, int level, uint64_t conn,
                        const char *event, const char *fmt, va_list ap)
    __attribute__((format(printf, 8, 0)));

/*
 * Writes the n bytes of value to buf (len bytes, NUL-terminated) as one
 * quoted log value, escaped as described at conf_log. Cut short when buf
 * is too small, between escapes, and still closed with its quote (len must
 * be at least 3). Returns the length written.
 */
size_t conf_log_quote(char *buf, size_t len, const char *value, size_t n);

#endif
