/*
 * conf/thread.c: a worker thread started with signals blocked (see
 * thread.h). Owns nothing after the call: the thread is the caller's.
 */
#include "config.h"

#include "conf/thread.h"

#include <signal.h>

int
conf_thread_spawn(pthread_t *thread, void *(*fn)(void *), void *arg, const char *name)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        pthread_setname_np(*thread, name);
    return rc;
}
