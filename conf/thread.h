/*
 * conf/thread.h: worker threads that leave signals to the event loop's
 * thread, and a bounded stop for them (the index advisor, advice/advisor.c;
 * the topology monitor, proxy/topology.c). libevent handles SIGTERM, SIGINT
 * and SIGHUP on the loop's thread, so a worker blocks every signal but
 * those a fault raises. A worker inside libmongoc may not stop in time
 * (1.23's client destroy can wait for ever on its own lock; a check waits
 * up to connectTimeoutMS for a server that does not answer): its owner
 * waits a bounded time, then leaves it behind, and the worker frees what it
 * shares with the owner when it ends.
 */
#ifndef MONGOCACHE_CONF_THREAD_H
#define MONGOCACHE_CONF_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * pthread_create(thread, NULL, fn, arg) with every signal blocked in the
 * new thread (SIGSEGV, SIGBUS, SIGFPE and SIGILL aside), named name (at
 * most 15 bytes). The caller's signal mask is unchanged. Returns
 * pthread_create's result: 0, or an errno value. The caller joins it
 * (pthread_join, or conf_thread_stop).
 */
int conf_thread_spawn(pthread_t *thread, void *(*fn)(void *), void *arg, const char *name)
    __attribute__((warn_unused_result));

/*
 * Who frees the object a worker shares with its owner: embedded in that
 * object, set up with conf_thread_end_init before the thread starts and
 * cleaned up (conf_thread_end_cleanup) by whichever side frees the object.
 */
struct conf_thread_end {
    pthread_mutex_t mu;
    bool exited;    /* the worker is past its last use of the object but this */
    bool abandoned; /* the owner stopped waiting: the worker frees the object */
};

void conf_thread_end_init(struct conf_thread_end *end);
void conf_thread_end_cleanup(struct conf_thread_end *end);

/*
 * The worker's last step, after its last use of the shared object: true
 * when its owner left it behind (conf_thread_stop returned false), and the
 * worker must then free the object (end with it) itself.
 */
bool conf_thread_exiting(struct conf_thread_end *end) __attribute__((warn_unused_result));

/*
 * The owner, having told the worker to stop: waits up to wait_ms (on the
 * monotonic clock) for thread to end. True: it ended and was joined; the
 * owner frees the object. False: it is still running; it is detached and
 * abandoned, and will free the object when it ends: the owner must not
 * touch the object (end included) again.
 */
bool conf_thread_stop(pthread_t thread, struct conf_thread_end *end, int64_t wait_ms)
    __attribute__((warn_unused_result));

#endif
