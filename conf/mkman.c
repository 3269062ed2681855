/*
 * conf/mkman.c: the build-time generator of the man pages mongocache(8) and
 * mongocache.conf(5). It copies a hand-written roff template (the prose:
 * docs/man/mongocache.8.in, docs/man/mongocache.conf.5.in) to standard output and
 * replaces each marker line with text generated from conf/options.def, the
 * one list of options, so the pages cannot drift from the options the
 * binary has:
 *
 *   @VERSION@              (anywhere in a line) the package version
 *   @NAME@                 (anywhere) VALUE, for each NAME=VALUE argument
 *                          (the installation directories, from make)
 *   .\" @FLAGS@            a line per option flag: --name VALUE, its help, env
 *   .\" @ENVIRONMENT@      a line per MONGOCACHE_* variable and its option
 *   .\" @OPTIONS@          every option in full: type, default, flag, env,
 *                          reloadable or not, help
 *
 * Usage: mkman TEMPLATE [NAME=VALUE]... > PAGE. It runs on the build machine only, is never
 * installed, and links nothing but libc. It does not own the prose: edit
 * the templates for that.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* One option as options.def declares it (strings borrowed from the static table). */
struct conf_mkman_opt {
    const char *name;
    const char *type;
    const char *def;
    const char *env;
    int reloadable;
    const char *help;
};

static const struct conf_mkman_opt opts[] = {
#define CONF_OPT(name, type, def, env, reload, help) {#name, #type, def, env, reload, help},
#include "conf/options.def"
#undef CONF_OPT
};

#define N_OPTS (sizeof opts / sizeof opts[0])
#define LINE_MAX_BYTES 4096

/* The placeholder a flag takes, as --help writes it (conf/conf.c). */
static const char *
metavar(const char *type)
{
    static const struct {
        const char *type;
        const char *var;
    } vars[] = {
        {"STRING", "TEXT"},       {"SECRET", "SECRET"}, {"ADDR", "HOST:PORT"},
        {"URI", "URI"},           {"INT", "N"},         {"SIZE", "SIZE"},
        {"DURATION", "DURATION"}, {"BOOL", "BOOL"},     {"LOGLEVEL", "LEVEL"},
    };

    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        if (strcmp(vars[i].type, type) == 0)
            return vars[i].var;
    }
    return "VALUE";
}

/*
 * Writes s as roff text: a backslash as \e, a leading '.' or '\'' behind \&
 * so it is never read as a request. literal: '-' as \- (flags, names and
 * values, which must render as ASCII hyphen-minus); prose keeps its hyphens.
 */
static void
put_text(const char *s, bool literal)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", stdout);
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\e", stdout);
        else if (*s == '-' && literal)
            fputs("\\-", stdout);
        else
            putchar(*s);
    }
}

/*
 * Writes a value of make's (a version, a directory) as literal text that may
 * break after each '/' (\:, no hyphen): a long prefix would otherwise leave
 * groff a line it cannot break.
 */
static void
put_path(const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", stdout);
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\e", stdout);
        else if (*s == '-')
            fputs("\\-", stdout);
        else if (*s == '/' && s[1] != '\0')
            fputs("/\\:", stdout);
        else
            putchar(*s);
    }
}

/* The flag of an option: --name with '_' written '-' (conf/cli.c). */
static void
put_flag(const char *name)
{
    fputs("\\-\\-", stdout);
    for (; *name != '\0'; name++) {
        if (*name == '_')
            fputs("\\-", stdout);
        else
            putchar(*name);
    }
}

/* mongocache(8) OPTIONS: one tagged paragraph per flag. */
static void
put_flags(void)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct conf_mkman_opt *o = &opts[i];

        fputs(".TP\n\\fB", stdout);
        put_flag(o->name);
        printf("\\fR \\fI%s\\fR\n", metavar(o->type));
        put_text(o->help, false);
        fputs(".\n", stdout);
        fputs("Option \\fB", stdout);
        put_text(o->name, true);
        fputs("\\fR, environment \\fB", stdout);
        put_text(o->env, true);
        fputs("\\fR.\n", stdout);
    }
}

/* mongocache(8) ENVIRONMENT: one tagged paragraph per variable. */
static void
put_environment(void)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct conf_mkman_opt *o = &opts[i];

        fputs(".TP\n.B ", stdout);
        put_text(o->env, true);
        fputs("\nSets \\fB", stdout);
        put_text(o->name, true);
        fputs("\\fR (see\n.BR mongocache.conf (5)).\n", stdout);
    }
}

/* mongocache.conf(5) OPTIONS: every option in full. */
static void
put_options(void)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct conf_mkman_opt *o = &opts[i];

        fputs(".TP\n\\fB", stdout);
        put_text(o->name, true);
        printf("\\fR = \\fI%s\\fR\n", metavar(o->type));
        put_text(o->help, false);
        fputs(".\n.br\nType: ", stdout);
        put_text(o->type, true);
        fputs("; default: ", stdout);
        if (o->def[0] != '\0') {
            fputs("\\fB", stdout);
            put_text(o->def, true);
            fputs("\\fR", stdout);
        } else {
            fputs("\\fB\"\"\\fR (empty)", stdout);
        }
        fputs(".\n.br\nFlag: \\fB", stdout);
        put_flag(o->name);
        fputs("\\fR; environment: \\fB", stdout);
        put_text(o->env, true);
        fputs("\\fR.\n.br\n", stdout);
        fputs(o->reloadable ? "Reloadable: yes (SIGHUP applies a new value).\n"
                            : "Reloadable: no (a change needs a restart).\n",
              stdout);
    }
}

/* A NAME=VALUE argument: "@NAME@" in a template line is replaced by VALUE. */
struct conf_mkman_subst {
    char marker[64];
    const char *value;
};

#define MAX_SUBST 16

/*
 * Writes line with every marker of substs (n of them) replaced by its value,
 * written by put_path.
 */
static void
put_line(const char *line, const struct conf_mkman_subst *substs, size_t n)
{
    while (*line != '\0') {
        const struct conf_mkman_subst *hit = NULL;

        if (*line == '@') {
            for (size_t i = 0; i < n && hit == NULL; i++) {
                if (strncmp(line, substs[i].marker, strlen(substs[i].marker)) == 0)
                    hit = &substs[i];
            }
        }
        if (hit != NULL) {
            put_path(hit->value);
            line += strlen(hit->marker);
        } else {
            putchar(*line++);
        }
    }
}

int
main(int argc, char **argv)
{
    char line[LINE_MAX_BYTES];
    struct conf_mkman_subst substs[MAX_SUBST];
    size_t n_substs = 0;
    FILE *in;
    unsigned lineno = 0;
    int status = 0;

    if (argc < 2 || argc - 2 >= MAX_SUBST) {
        fprintf(stderr, "usage: mkman TEMPLATE [NAME=VALUE]... > PAGE (at most %d)\n",
                MAX_SUBST - 1);
        return 2;
    }
    snprintf(substs[0].marker, sizeof substs[0].marker, "@VERSION@");
    substs[0].value = PACKAGE_VERSION;
    n_substs = 1;
    for (int i = 2; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');

        if (eq == NULL || eq == argv[i] || (size_t)(eq - argv[i]) + 3 > sizeof substs[0].marker) {
            fprintf(stderr, "mkman: bad argument \"%s\" (want NAME=VALUE)\n", argv[i]);
            return 2;
        }
        snprintf(substs[n_substs].marker, sizeof substs[n_substs].marker, "@%.*s@",
                 (int)(eq - argv[i]), argv[i]);
        substs[n_substs].value = eq + 1;
        n_substs++;
    }
    in = fopen(argv[1], "r");
    if (in == NULL) {
        perror(argv[1]);
        return 1;
    }
    while (fgets(line, sizeof line, in) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(in)) {
            fprintf(stderr, "%s:%u: line longer than %d bytes\n", argv[1], lineno,
                    LINE_MAX_BYTES - 2);
            status = 1;
            break;
        }
        if (strcmp(line, ".\\\" @FLAGS@\n") == 0)
            put_flags();
        else if (strcmp(line, ".\\\" @ENVIRONMENT@\n") == 0)
            put_environment();
        else if (strcmp(line, ".\\\" @OPTIONS@\n") == 0)
            put_options();
        else
            put_line(line, substs, n_substs);
    }
    if (ferror(in)) {
        perror(argv[1]);
        status = 1;
    }
    fclose(in);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("mkman: stdout");
        status = 1;
    }
    return status;
}
