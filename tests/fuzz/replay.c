/*
 * tests/fuzz/replay.c: a main() for a fuzz target outside libFuzzer, so
 * that every input committed under tests/fuzz/corpus/<target>/ (the seeds
 * and each regression input of a fixed finding) runs in the normal
 * `make check`, with gcc and with the --enable-asan build. Built once per
 * target with FUZZ_TARGET="<target>".
 *
 * Usage: replay_<target> [FILE|DIR]...; with no argument it replays
 * $abs_top_srcdir/tests/fuzz/corpus/<target>. Prints TAP: one result for
 * the whole corpus, each input named in a comment before it runs, so that a
 * crash or a failed property (abort) leaves the result missing right after
 * the input that caused it.
 */
#include "config.h"

#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=\"name\""
#endif

/* Paths to replay, grown as directories are listed. */
struct list {
    char **paths;
    size_t n, cap;
};

static void
add(struct list *l, const char *path)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->paths = realloc(l->paths, l->cap * sizeof *l->paths);
        if (!l->paths)
            abort();
    }
    l->paths[l->n++] = strdup(path);
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds path, or every regular file in it when it is a directory; false when unreadable. */
static bool
collect(struct list *l, const char *path)
{
    struct stat st;
    struct dirent *e;
    DIR *d;

    if (stat(path, &st) != 0)
        return false;
    if (!S_ISDIR(st.st_mode)) {
        add(l, path);
        return true;
    }
    d = opendir(path);
    if (!d)
        return false;
    while ((e = readdir(d)) != NULL) {
        char sub[4096];

        if (e->d_name[0] == '.')
            continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (stat(sub, &st) == 0 && S_ISREG(st.st_mode))
            add(l, sub);
    }
    closedir(d);
    return true;
}

/* Reads a whole file into a buffer of exactly its size (malloc'd; 1 byte when empty). */
static uint8_t *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        if (f)
            fclose(f);
        return NULL;
    }
    buf = malloc(n ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int
main(int argc, char **argv)
{
    struct list l = {0};
    int failed = 0;

    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            if (!collect(&l, argv[i])) {
                fprintf(stderr, "replay: cannot read %s: %s\n", argv[i], strerror(errno));
                return 2;
            }
        }
    } else {
        const char *top = getenv("abs_top_srcdir");
        char dir[4096];

        snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", top ? top : ".", FUZZ_TARGET);
        if (!collect(&l, dir)) {
            printf("1..1\nnot ok 1 - corpus %s not found (set abs_top_srcdir)\n", dir);
            return 1;
        }
    }
    qsort(l.paths, l.n, sizeof *l.paths, by_name);
    /* One TAP result for the whole corpus: a crash leaves it missing (an error). */
    printf("1..1\n");
    for (size_t i = 0; i < l.n; i++) {
        size_t len = 0;
        uint8_t *data = slurp(l.paths[i], &len);

        if (!data) {
            printf("# cannot read %s\n", l.paths[i]);
            failed++;
        } else {
            printf("# %s\n", l.paths[i]);
            fflush(stdout);
            LLVMFuzzerTestOneInput(data, len);
            free(data);
        }
        free(l.paths[i]);
    }
    /* An empty corpus is a packaging mistake, not a pass. */
    printf("%s 1 - %s: %zu inputs replayed%s\n", failed || l.n == 0 ? "not ok" : "ok",
           FUZZ_TARGET, l.n - (size_t)failed, failed ? ", some unreadable" : "");
    free(l.paths);
    return failed || l.n == 0 ? 1 : 0;
}
