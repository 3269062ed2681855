/*
 * advice/secret.c: owns finding advice_uri's secrets and scrubbing them
 * from texts (see secret.h). It does not parse URIs itself beyond finding
 * the user-info between "://" and the last '@' before the host list ends:
 * libmongoc parses (on the advisor's thread), and whatever it decoded is
 * taken from the mongoc_uri_t. It does not decide what is shown: the
 * advisor (advice/advisor.c) scrubs every error text it keeps.
 */
#include "config.h"

#include "advice/secret.h"

#include <string.h>

static void
add(struct advice_secrets *secrets, const char *s, size_t len)
{
    uint32_t at;

    if (s == NULL || len == 0 || secrets->n >= ADVICE_SECRET_MAX)
        return;
    /* kept longest first, so that a secret holding another is replaced whole */
    at = secrets->n;
    while (at > 0 && strlen(secrets->s[at - 1]) < len) {
        secrets->s[at] = secrets->s[at - 1];
        at--;
    }
    secrets->s[at] = bson_strndup(s, len);
    secrets->n++;
}

void
advice_secrets_init(struct advice_secrets *secrets, const char *uri_text,
                    const mongoc_uri_t *uri)
{
    const char *start = uri_text ? strstr(uri_text, "://") : NULL;

    memset(secrets, 0, sizeof *secrets);
    if (uri_text != NULL)
        add(secrets, uri_text, strlen(uri_text));
    if (start != NULL) {
        const char *end, *at = NULL, *colon;

        start += 3;
        end = start + strcspn(start, "/?");
        for (const char *p = start; p < end; p++)
            if (*p == '@')
                at = p;
        if (at != NULL) {
            add(secrets, start, (size_t)(at - start));
            colon = memchr(start, ':', (size_t)(at - start));
            if (colon != NULL) {
                add(secrets, colon + 1, (size_t)(at - colon - 1));
                add(secrets, start, (size_t)(colon - start));
            }
        }
    }
    if (uri != NULL) {
        const char *pw = mongoc_uri_get_password(uri);
        const char *user = mongoc_uri_get_username(uri);
        const char *keypw =
            mongoc_uri_get_option_as_utf8(uri, MONGOC_URI_TLSCERTIFICATEKEYFILEPASSWORD, NULL);

        if (pw != NULL)
            add(secrets, pw, strlen(pw));
        if (keypw != NULL)
            add(secrets, keypw, strlen(keypw));
        bson_t props;
        bson_iter_t it;

        if (user != NULL)
            add(secrets, user, strlen(user));
        /* The one secret among the mechanism's properties (MONGODB-AWS); the
         * others (SERVICE_NAME=mongodb...) are names, not secrets. */
        if (mongoc_uri_get_mechanism_properties(uri, &props) &&
            bson_iter_init_find_case(&it, &props, "AWS_SESSION_TOKEN") &&
            BSON_ITER_HOLDS_UTF8(&it)) {
            uint32_t len;
            const char *token = bson_iter_utf8(&it, &len);

            add(secrets, token, len);
        }
    }
}

void
advice_secrets_cleanup(struct advice_secrets *secrets)
{
    for (uint32_t i = 0; i < secrets->n; i++)
        bson_free(secrets->s[i]);
    memset(secrets, 0, sizeof *secrets);
}

/* out with every occurrence of secret replaced by "***" (out is freed; the result returned). */
static char *
replace(char *out, const char *secret)
{
    size_t slen = strlen(secret);
    bson_string_t *b;
    const char *p = out, *hit;

    if (slen == 0 || strstr(out, secret) == NULL)
        return out;
    b = bson_string_new(NULL);
    while ((hit = strstr(p, secret)) != NULL) {
        char *part = bson_strndup(p, (size_t)(hit - p));

        bson_string_append(b, part);
        bson_string_append(b, "***");
        bson_free(part);
        p = hit + slen;
    }
    bson_string_append(b, p);
    bson_free(out);
    return bson_string_free(b, false);
}

char *
advice_secrets_scrub(const struct advice_secrets *secrets, const char *text, size_t max_len)
{
    char *out = bson_strdup(text ? text : "");
    size_t len;

    for (uint32_t i = 0; i < secrets->n; i++)
        out = replace(out, secrets->s[i]);
    for (char *c = out; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    len = strlen(out);
    if (len > max_len) {
        len = max_len;
        while (len > 0 && ((unsigned char)out[len] & 0xc0) == 0x80)
            len--;
        out[len] = '\0';
    }
    return out;
}
