/*
 * tests/unit/tap.h: a header-only TAP producer for the unit tests: plan,
 * ok, is_int, is_str, diag, done_testing. It owns only the TAP output and
 * the pass/fail count of one test program; it knows nothing of mongocache.
 * Output goes to stdout, read by build-aux/tap-driver.sh.
 */
#ifndef MONGOCACHE_TESTS_TAP_H
#define MONGOCACHE_TESTS_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define TAP_PRINTF(f, a) __attribute__((format(printf, f, a)))

static struct {
    int planned; /* -1: no plan yet */
    int run;
    int failed;
} tap_state __attribute__((unused)) = {-1, 0, 0};

/* Announces how many tests will run. */
static inline void
plan(int n)
{
    tap_state.planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static inline void diag(const char *fmt, ...) TAP_PRINTF(1, 2);

/* Prints a "# " comment line. */
static inline void
diag(const char *fmt, ...)
{
    va_list ap;

    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static inline bool tap_vok(bool cond, const char *fmt, va_list ap) TAP_PRINTF(2, 0);

static inline bool
tap_vok(bool cond, const char *fmt, va_list ap)
{
    tap_state.run++;
    if (!cond)
        tap_state.failed++;
    printf("%sok %d - ", cond ? "" : "not ", tap_state.run);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    return cond;
}

static inline bool ok(bool cond, const char *fmt, ...) TAP_PRINTF(2, 3);

/* One test: passes when cond is true. Returns cond. */
static inline bool
ok(bool cond, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tap_vok(cond, fmt, ap);
    va_end(ap);
    return cond;
}

static inline bool is_int(long long got, long long want, const char *fmt, ...) TAP_PRINTF(3, 4);

/* One test: passes when got == want; prints both otherwise. */
static inline bool
is_int(long long got, long long want, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tap_vok(got == want, fmt, ap);
    va_end(ap);
    if (got != want)
        diag("got %lld, expected %lld", got, want);
    return got == want;
}

static inline bool is_str(const char *got, const char *want, const char *fmt, ...)
    TAP_PRINTF(3, 4);

/* One test: passes when both strings are non-NULL and equal. */
static inline bool
is_str(const char *got, const char *want, const char *fmt, ...)
{
    bool same = got != NULL && want != NULL && strcmp(got, want) == 0;
    va_list ap;

    va_start(ap, fmt);
    tap_vok(same, fmt, ap);
    va_end(ap);
    if (!same)
        diag("got \"%s\", expected \"%s\"", got ? got : "(null)", want ? want : "(null)");
    return same;
}

/*
 * Ends the program's tests: prints the plan if none was given, reports a
 * plan mismatch, and returns the exit status (0 when all passed).
 */
static inline int
done_testing(void)
{
    if (tap_state.planned < 0) {
        printf("1..%d\n", tap_state.run);
    } else if (tap_state.planned != tap_state.run) {
        diag("planned %d tests but ran %d", tap_state.planned, tap_state.run);
        return 1;
    }
    if (tap_state.failed > 0)
        diag("failed %d of %d tests", tap_state.failed, tap_state.run);
    fflush(stdout);
    return tap_state.failed > 0 ? 1 : 0;
}

#endif
