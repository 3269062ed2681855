/*
 * advice/secret.h: keeping advice_uri's secrets out of every text the
 * advisor shows (its last_error, its start-up error): the URI itself, its
 * user-info as written (percent-encoded) and each part, what libmongoc
 * decoded from them, and the TLS key file's password. A text is scrubbed by
 * replacing each of them, the longest first, with "***".
 *
 * The user name counts as a secret too; a very short one (a letter) makes
 * scrubbed texts hard to read, never leaky. Pure functions: no I/O.
 */
#ifndef MONGOCACHE_ADVICE_SECRET_H
#define MONGOCACHE_ADVICE_SECRET_H

#include <mongoc/mongoc.h>
#include <stddef.h>
#include <stdint.h>

#define ADVICE_SECRET_MAX 8

/* The secrets of one URI, longest first (owned; advice_secrets_cleanup). */
struct advice_secrets {
    char *s[ADVICE_SECRET_MAX];
    uint32_t n;
};

/*
 * Collects the secrets of uri_text (as configured; parsed or not) and, when
 * not NULL, of uri (what libmongoc parsed from it) into secrets.
 */
void advice_secrets_init(struct advice_secrets *secrets, const char *uri_text,
                         const mongoc_uri_t *uri);
void advice_secrets_cleanup(struct advice_secrets *secrets);

/*
 * text with every secret replaced by "***", control bytes by '?', cut to at
 * most max_len bytes at a UTF-8 character boundary. Freed with bson_free.
 */
char *advice_secrets_scrub(const struct advice_secrets *secrets, const char *text,
                           size_t max_len);

#endif
