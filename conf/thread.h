/*
 * conf/thread.h: starting a worker thread that leaves signals to the event
 * loop's thread (the index advisor, advice/advisor.c; the topology monitor,
 * proxy/topology.c): libevent handles SIGTERM, SIGINT and SIGHUP on the
 * loop's thread, so a worker blocks every signal but those a fault raises.
 */
#ifndef MONGOCACHE_CONF_THREAD_H
#define MONGOCACHE_CONF_THREAD_H

#include <pthread.h>

/*
 * pthread_create(thread, NULL, fn, arg) with every signal blocked in the
 * new thread (SIGSEGV, SIGBUS, SIGFPE and SIGILL aside), named name (at
 * most 15 bytes). The caller's signal mask is unchanged. Returns
 * pthread_create's result: 0, or an errno value. The caller joins it.
 */
int conf_thread_spawn(pthread_t *thread, void *(*fn)(void *), void *arg, const char *name)
    __attribute__((warn_unused_result));

#endif
