/*
 * tests/fuzz/fuzz.h: what every fuzz target in tests/fuzz shares. Each
 * fuzz_<name>.c defines LLVMFuzzerTestOneInput; it is linked either with
 * libFuzzer (clang -fsanitize=fuzzer, in a --enable-fuzzing build) or with
 * tests/fuzz/replay.c, a main() that feeds it the committed corpus so that
 * every input found so far is replayed by `make check` in every build.
 *
 * A target calls the proxy's own functions on the input the way the proxy
 * does, and checks properties that must hold whatever the bytes are with
 * FUZZ_CHECK: a failed check prints where and aborts, which libFuzzer
 * reports as a crash and saves the input.
 */
#ifndef MONGOCACHE_TESTS_FUZZ_H
#define MONGOCACHE_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* libFuzzer's entry point: called once per input; must not keep state across calls. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

#endif
