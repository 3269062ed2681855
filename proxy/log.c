/*
 * proxy/log.c: the log line writer. Owns the current level and the line
 * format (timestamp, level, connection id, event, key=value pairs). It
 * knows nothing of what is logged: callers redact secrets before passing
 * values. Writes go to stderr in one fprintf per line so lines never
 * interleave.
 */
#include "proxy/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static int current_level = PROXY_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
proxy_log_set_level(int level)
{
    if (level < PROXY_LOG_ERROR)
        level = PROXY_LOG_ERROR;
    if (level > PROXY_LOG_DEBUG)
        level = PROXY_LOG_DEBUG;
    current_level = level;
}

bool
proxy_log_enabled(int level)
{
    return level <= current_level;
}

void
proxy_log(int level, uint64_t conn, const char *event, const char *fmt, ...)
{
    char stamp[32];
    char rest[1024];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    if (!proxy_log_enabled(level))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    rest[0] = '\0';
    if (fmt && fmt[0]) {
        va_start(ap, fmt);
        vsnprintf(rest, sizeof rest, fmt, ap);
        va_end(ap);
    }
    if (conn)
        fprintf(stderr, "%s.%03dZ level=%s conn=%llu event=%s%s%s\n", stamp,
                (int)(tv.tv_usec / 1000), level_names[level], (unsigned long long)conn, event,
                rest[0] ? " " : "", rest);
    else
        fprintf(stderr, "%s.%03dZ level=%s event=%s%s%s\n", stamp, (int)(tv.tv_usec / 1000),
                level_names[level], event, rest[0] ? " " : "", rest);
}
