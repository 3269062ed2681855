/*
 * conf/thread.c: worker threads started with signals blocked, and their
 * bounded stop (see thread.h). Owns nothing after the calls: the thread
 * and the object it shares are the caller's, or the worker's once
 * conf_thread_stop gave it up.
 */
#include "config.h"

#include "conf/thread.h"

#include <signal.h>
#include <time.h>

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

void
conf_thread_end_init(struct conf_thread_end *end)
{
    pthread_mutex_init(&end->mu, NULL);
    end->exited = false;
    end->abandoned = false;
}

void
conf_thread_end_cleanup(struct conf_thread_end *end)
{
    pthread_mutex_destroy(&end->mu);
}

bool
conf_thread_exiting(struct conf_thread_end *end)
{
    bool abandoned;

    pthread_mutex_lock(&end->mu);
    end->exited = true;
    abandoned = end->abandoned;
    pthread_mutex_unlock(&end->mu);
    return abandoned;
}

bool
conf_thread_stop(pthread_t thread, struct conf_thread_end *end, int64_t wait_ms)
{
    struct timespec until;
    bool exited;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    if (pthread_clockjoin_np(thread, NULL, CLOCK_MONOTONIC, &until) == 0)
        return true;
    pthread_mutex_lock(&end->mu);
    exited = end->exited;
    end->abandoned = !exited;
    pthread_mutex_unlock(&end->mu);
    /* Once abandoned is set the worker may free end at any time: only the
     * local thread id is used from here on. */
    if (!exited) {
        pthread_detach(thread);
        return false;
    }
    pthread_join(thread, NULL); /* it ended just now */
    return true;
}
