/*
 * conf/random.c: random bytes from the kernel (see random.h). Owns the
 * getrandom -> /dev/urandom order and the pool's refill and fallback; what
 * a caller does when the kernel gives nothing is the caller's.
 */
#include "config.h"

#include "conf/random.h"

#include "conf/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* All of len bytes from /dev/urandom, or false. */
static bool
from_urandom(uint8_t *buf, size_t len)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t have = 0;

    if (fd < 0)
        return false;
    while (have < len) {
        ssize_t got = read(fd, buf + have, len - have);

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        have += (size_t)got;
    }
    close(fd);
    return have == len;
}

bool
conf_random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t have = 0;

    while (have < len) {
        ssize_t got = getrandom(p + have, len - have, 0);

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) /* ENOSYS, EPERM (a filter): the file may still answer */
            return from_urandom(p, len);
        have += (size_t)got;
    }
    return true;
}

void
conf_random_pool_init(struct conf_random_pool *pool)
{
    pool->at = sizeof pool->bytes; /* empty: the first draw fills it */
    pool->fallback = 0;
}

uint64_t
conf_random_pool_u64(struct conf_random_pool *pool)
{
    uint64_t r;

    if (pool->at + sizeof r > sizeof pool->bytes) {
        if (!conf_random_bytes(pool->bytes, sizeof pool->bytes)) {
            r = (pool->fallback += UINT64_C(0x9e3779b97f4a7c15)) ^
                (uint64_t)conf_clock_read(CLOCK_REALTIME, 1000000000);
            r = (r ^ (r >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
            r = (r ^ (r >> 27)) * UINT64_C(0x94d049bb133111eb);
            return r ^ (r >> 31);
        }
        pool->at = 0;
    }
    memcpy(&r, pool->bytes + pool->at, sizeof r);
    pool->at += sizeof r;
    return r;
}
