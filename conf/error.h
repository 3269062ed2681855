/*
 * conf/error.h: the bson_error_t domains of mongocache, one per folder or
 * concern, so an error says where it came from; and the codes of the
 * domains that have no list of their own nearer their code (conf/'s are
 * in conf/parse.h, the Redis tier's in cache/redis.h and redis_blob.h,
 * wire/'s in wire/frame.h). Each domain is four ASCII letters read as a
 * big-endian number, so it shows in a debugger. A code is never 0: callers
 * (proxy/main.c) read a zero code as "nothing failed, just not configured".
 * Owns nothing but these numbers.
 */
#ifndef MONGOCACHE_CONF_ERROR_H
#define MONGOCACHE_CONF_ERROR_H

enum conf_error_domain {
    /* wire/ parsers; wire/frame.h keeps its own WIRE_ERROR_DOMAIN of the same
     * value, since wire/ includes only wire/ (checked in conf/parse.c) */
    CONF_ERROR_DOMAIN_WIRE = 0x77697265,   /* "wire" */
    CONF_ERROR_DOMAIN_CONF = 0x636f6e66,   /* "conf": options (CONF_ERROR_DOMAIN) */
    CONF_ERROR_DOMAIN_CACHE = 0x63616368,  /* "cach": cache/ but the Redis tier */
    CONF_ERROR_DOMAIN_REDIS = 0x72656469,  /* "redi": the Redis tier (CACHE_REDIS_ERROR_DOMAIN) */
    CONF_ERROR_DOMAIN_ADVICE = 0x61647669, /* "advi": the advisor's own start-up */
    CONF_ERROR_DOMAIN_JUNK = 0x6a756e6b,   /* "junk": an answer the advisor refused as junk */
    CONF_ERROR_DOMAIN_PROXY = 0x70726f78,  /* "prox": the proxy's start-up and surroundings */
    /* "mong": an admin command's refusal; the code is mongod's ErrorCodes
     * number, sent to the client in the error reply */
    CONF_ERROR_DOMAIN_COMMAND = 0x6d6f6e67,
};

/* Codes of CONF_ERROR_DOMAIN_CACHE. */
enum conf_error_cache_code {
    CONF_ERROR_CACHE_RULE = 1, /* a cache_rules / exclusion entry that does not parse */
};

/* Codes of CONF_ERROR_DOMAIN_ADVICE (a failed system call's is its errno). */
enum conf_error_advice_code {
    CONF_ERROR_ADVICE_WATCH = 1, /* the loop cannot watch the advisor's pipe */
    CONF_ERROR_ADVICE_JUNK = 2,  /* CONF_ERROR_DOMAIN_JUNK: the answer was refused */
};

/* Codes of CONF_ERROR_DOMAIN_PROXY. */
enum conf_error_proxy_code {
    CONF_ERROR_PROXY_ADDRESS = 1,   /* an address, path or URI that cannot be used as given */
    CONF_ERROR_PROXY_SYSTEM = 2,    /* the system refused (listen, socket, send) */
    CONF_ERROR_PROXY_UNSAFE = 3,    /* a setting refused as unsafe (a public endpoint, no token) */
    CONF_ERROR_PROXY_MISSING = 4,   /* nothing configured where something must be */
    CONF_ERROR_PROXY_START = 5,     /* a part could not start (the index advisor) */
    CONF_ERROR_PROXY_DASHBOARD = 6, /* the built-in dashboard page is malformed (a build fault) */
    CONF_ERROR_PROXY_TLS = 7,       /* a TLS certificate, key or CA file that cannot be used */
};

#endif
