/*
 * tests/unit/conf_test.h: what the conf/ unit tests (test_conf_*.c, test_proxy_check.c)
 * share: the string assertions, a mkdtemp directory of fixture files removed at the end,
 * a clean MONGOCACHE_* environment, conf_load on a list of flags (LOAD, KEEP, with stderr
 * captured), conf_file_load with its first error, and conf_print's output as strings.
 * Header-only like tap.h (every program counts its own TAP lines): include it once, call
 * conf_test_begin() first and return conf_test_end().
 */
#ifndef MONGOCACHE_TESTS_CONF_TEST_H
#define MONGOCACHE_TESTS_CONF_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "conf/conf.h"
#include "conf/file.h"
#include "tests/unit/tap.h"

/* The cases name themselves with a plain string. */
#define t_is_str(got, want, what) is_str((got), (want), "%s", (what))
#define t_is_int(got, want, what) is_int((got), (want), "%s", (what))

static inline bool
t_contains(const char *hay, const char *needle, const char *what)
{
    bool found = hay != NULL && strstr(hay, needle) != NULL;

    if (!ok(found, "%s", what)) {
        diag("  \"%s\" not in: %s", needle, hay ? hay : "(null)");
    }
    return found;
}

static inline bool
t_lacks(const char *hay, const char *needle, const char *what)
{
    bool absent = hay != NULL && strstr(hay, needle) == NULL;

    if (!ok(absent, "%s", what)) {
        diag("  \"%s\" must not be in: %s", needle, hay ? hay : "(null)");
    }
    return absent;
}

/* ---- fixtures ------------------------------------------------------------ */

static char tmpdir[64] __attribute__((unused));
static int n_tmpfiles __attribute__((unused));
static char *tmpfiles[64] __attribute__((unused));

/* Writes text to a new file in tmpdir with mode; returns its path (owned here). */
static inline const char *
write_file(const char *name, const char *text, mode_t mode)
{
    char *path = bson_strdup_printf("%s/%s", tmpdir, name);
    int fd;
    size_t len = strlen(text);
    bool known = false;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || fchmod(fd, mode) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    close(fd);
    for (int i = 0; i < n_tmpfiles; i++) {
        if (strcmp(tmpfiles[i], path) == 0) {
            known = true;
            bson_free(path);
            path = tmpfiles[i];
        }
    }
    if (!known) {
        BSON_ASSERT(n_tmpfiles < 64);
        tmpfiles[n_tmpfiles++] = path;
    }
    return path;
}

static inline void
clear_env(void)
{
    extern char **environ;
    char name[256];
    bool again = true;

    /* Every MONGOCACHE_* variable, the harness's own (MONGOCACHE_REQUIRE_INTEGRATION) too. */
    while (again) {
        again = false;
        for (char **e = environ; e && *e; e++) {
            const char *eq = strchr(*e, '=');

            if (strncmp(*e, "MONGOCACHE_", 11) == 0 && eq && (size_t)(eq - *e) < sizeof name) {
                snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
                unsetenv(name);
                again = true;
                break;
            }
        }
    }
}

/*
 * Runs conf_load on a NULL-terminated list of flags (argv[0] added), with writable copies as
 * a real argv has, and check installed (NULL: none). Returns the conf whether it loaded or
 * not (*good says, *action the action when it did), so that its errors and warnings can be
 * read. Free with conf_destroy.
 */
static inline struct conf *
load_flags(conf_check_fn check, enum conf_action *action, bool *good, bson_error_t *err,
           const char *const *flags)
{
    char *argv[32];
    int argc = 0;
    struct conf *conf = conf_new();

    conf_set_check(conf, check);
    argv[argc++] = bson_strdup("mongocache");
    for (; *flags != NULL; flags++) {
        BSON_ASSERT(argc < 31);
        argv[argc++] = bson_strdup(*flags);
    }
    argv[argc] = NULL;
    memset(err, 0, sizeof *err);
    *good = conf_load(conf, argc, argv, action, err);
    for (int i = 0; i < argc; i++) {
        bson_free(argv[i]);
    }
    return conf;
}

/* load_flags without a check: the conf, or NULL with err set. */
static inline struct conf *
load_argv(enum conf_action *action, bson_error_t *err, const char *const *flags)
{
    enum conf_action dummy;
    bool good;
    struct conf *conf = load_flags(NULL, action != NULL ? action : &dummy, &good, err, flags);

    if (!good) {
        conf_destroy(conf);
        return NULL;
    }
    return conf;
}

#define LOAD(action, err, ...) load_argv((action), (err), (const char *const[]){__VA_ARGS__, NULL})

/* conf_print's output as a string (bson_free). */
static inline char *
print_to_string(const struct conf *conf)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    char *copy;

    conf_print(conf, out);
    fclose(out);
    copy = bson_strdup(buf);
    free(buf);
    return copy;
}

/* Every line of notes, each ended by '\n' (bson_free). */
static inline char *
join_notes(const struct conf_notes *notes)
{
    char *all = bson_strdup("");

    for (size_t i = 0; i < notes->n; i++) {
        char *next = bson_strdup_printf("%s%s\n", all, notes->lines[i]);

        bson_free(all);
        all = next;
    }
    return all;
}

/* The line of conf_print output for option name. */
static inline char *
print_line(const struct conf *conf, const char *name)
{
    char *printed = print_to_string(conf);
    char *all = bson_strdup_printf("\n%s", printed);
    char *prefix = bson_strdup_printf("\n%s = ", name);
    char *at = strstr(all, prefix);
    char *line = NULL;

    if (at != NULL) {
        at++;
        line = bson_strndup(at, strcspn(at, "\n"));
    }
    bson_free(prefix);
    bson_free(all);
    bson_free(printed);
    return line != NULL ? line : bson_strdup("(missing)");
}

/* conf_file_load, with err set to the first error it recorded. */
static inline bool
file_load(struct conf *conf, const char *path, const char *origin, bson_error_t *err)
{
    size_t before = conf->errors.n;
    bool good = conf_file_load(conf, path, origin);

    memset(err, 0, sizeof *err);
    if (conf->errors.n > before) {
        bson_strncpy(err->message, conf->errors.lines[before], sizeof err->message);
    }
    return good;
}

/* Runs conf_load with stderr captured into *stderr_text (bson_free). */
static inline struct conf *
load_capturing_stderr(char **stderr_text, bson_error_t *err, const char *const *flags)
{
    const char *cap = write_file("stderr.txt", "", 0600);
    int saved = dup(2);
    int fd = open(cap, O_WRONLY | O_TRUNC);
    struct conf *conf;
    FILE *in;
    char buf[4096];
    size_t n;

    fflush(stderr);
    dup2(fd, 2);
    close(fd);
    conf = load_argv(NULL, err, flags);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    in = fopen(cap, "r");
    n = fread(buf, 1, sizeof buf - 1, in);
    buf[n] = '\0';
    fclose(in);
    *stderr_text = bson_strdup(buf);
    return conf;
}


/* load_flags, the action left out. */
static inline struct conf *
load_keep(conf_check_fn check, bool *good, bson_error_t *err, const char *const *flags)
{
    enum conf_action action;

    return load_flags(check, &action, good, err, flags);
}

#define KEEP(check, good, err, ...)                                                               \
    load_keep((check), (good), (err), (const char *const[]){__VA_ARGS__, NULL})

/* Makes the fixture directory and clears the environment; exits when it cannot. */
static inline void
conf_test_begin(void)
{
    strcpy(tmpdir, "/tmp/test_conf_XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    clear_env();
    mongoc_log_set_handler(NULL, NULL); /* refused URIs make libmongoc log; keep TAP output clean */
}

/* Removes the fixture files and directory; the program's exit status. */
static inline int
conf_test_end(void)
{
    for (int i = 0; i < n_tmpfiles; i++) {
        if (tmpfiles[i] != NULL) { /* always set; gcc's -Wnonnull cannot see it */
            unlink(tmpfiles[i]);
            bson_free(tmpfiles[i]);
        }
    }
    n_tmpfiles = 0;
    rmdir(tmpdir);
    return done_testing();
}

#endif
