/*
 * bench/relay.c: the zero-logic relay, an anchor of bench/run.sh (see
 * bench/README.md): what any proxy with one upstream socket per client pays
 * for the hop alone. It accepts clients, opens one upstream connection for
 * each, and copies bytes both ways; nothing is parsed, nothing buffered
 * beyond what a peer has not taken yet.
 *
 *   relay --listen PORT --upstream PORT [--host 127.0.0.1]
 *
 * One process, one epoll loop, level-triggered, write first: the bytes of
 * one read go straight to the peer's socket (read, write: with the wait,
 * three system calls a direction when the peer keeps up). Only a short
 * write keeps the rest in a buffer of its direction, stops reading the
 * source and waits for the peer to be writable. The relay owns both
 * sockets of a pair and closes both when either side ends.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

/* One direction of a pair: bytes read from src wait here for dst. */
struct side {
    int fd;
    struct side *peer;
    struct pair *pair;
    uint8_t *pending; /* malloc'ed on a short write, freed when drained */
    size_t pending_len, pending_off;
    bool reading; /* EPOLLIN wanted on fd */
    bool writing; /* EPOLLOUT wanted on fd */
};

struct pair {
    struct side client, upstream;
    struct pair *next_dead; /* closed in this batch of events, freed after it */
};

static int epfd;
static uint8_t chunk[CHUNK];
static struct pair *dead;

static void
die(const char *what)
{
    fprintf(stderr, "relay: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void
side_update(struct side *s)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof ev);
    ev.events = (s->reading ? EPOLLIN : 0) | (s->writing ? EPOLLOUT : 0);
    ev.data.ptr = s;
    epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

/* Closes both sockets; the pair is freed after the current batch of events
 * (another event of the batch may still point at it). */
static void
pair_close(struct pair *p)
{
    close(p->client.fd);
    close(p->upstream.fd);
    p->client.fd = p->upstream.fd = -1;
    p->next_dead = dead;
    dead = p;
}

static void
free_dead(void)
{
    while (dead) {
        struct pair *p = dead;

        dead = p->next_dead;
        free(p->client.pending);
        free(p->upstream.pending);
        free(p);
    }
}

/* Writes what is pending towards dst; false when dst failed. */
static bool
side_flush(struct side *dst)
{
    while (dst->pending_off < dst->pending_len) {
        ssize_t n = send(dst->fd, dst->pending + dst->pending_off,
                         dst->pending_len - dst->pending_off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true; /* still writing */
        if (n <= 0)
            return false;
        dst->pending_off += (size_t)n;
    }
    free(dst->pending);
    dst->pending = NULL;
    dst->pending_len = dst->pending_off = 0;
    dst->writing = false;
    side_update(dst);
    dst->peer->reading = true; /* the source may go on */
    side_update(dst->peer);
    return true;
}

/* src is readable: one read, written straight to the peer. False: close. */
static bool
side_readable(struct side *src)
{
    struct side *dst = src->peer;
    ssize_t n, w = 0;

    do
        n = recv(src->fd, chunk, sizeof chunk, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return true;
    if (n <= 0)
        return false;
    while (w < n) {
        ssize_t k = send(dst->fd, chunk + w, (size_t)(n - w), MSG_NOSIGNAL);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (k <= 0)
            return false;
        w += k;
    }
    if (w < n) { /* the peer is full: keep the rest, stop reading src */
        dst->pending = malloc((size_t)(n - w));
        if (!dst->pending)
            return false;
        memcpy(dst->pending, chunk + w, (size_t)(n - w));
        dst->pending_len = (size_t)(n - w);
        dst->pending_off = 0;
        dst->writing = true;
        side_update(dst);
        src->reading = false;
        side_update(src);
    }
    return true;
}

static int
connect_upstream(const char *host, int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void
add(struct pair *p, struct side *s, int fd, struct side *peer)
{
    struct epoll_event ev;

    s->fd = fd;
    s->peer = peer;
    s->pair = p;
    s->reading = true;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = s;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl");
}

static void
accept_all(int lfd, const char *host, int up_port)
{
    for (;;) {
        int one = 1, cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), ufd;
        struct pair *p;

        if (cfd < 0)
            return;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ufd = connect_upstream(host, up_port); /* blocking: loopback */
        p = ufd >= 0 ? calloc(1, sizeof *p) : NULL;
        if (!p || fcntl(ufd, F_SETFL, fcntl(ufd, F_GETFL) | O_NONBLOCK) != 0) {
            fprintf(stderr, "relay: no upstream connection for a client: %s\n", strerror(errno));
            close(cfd);
            if (ufd >= 0)
                close(ufd);
            free(p);
            continue;
        }
        add(p, &p->client, cfd, &p->upstream);
        add(p, &p->upstream, ufd, &p->client);
    }
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"upstream", required_argument, NULL, 'u'},
        {"host", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *host = "127.0.0.1";
    int port = 0, up_port = 0, ch, one = 1, lfd;
    struct sockaddr_in sa;
    struct epoll_event ev, evs[256];

    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l': port = atoi(optarg); break;
        case 'u': up_port = atoi(optarg); break;
        case 'H': host = optarg; break;
        default:
            fprintf(ch == 'h' ? stdout : stderr,
                    "usage: relay --listen PORT --upstream PORT [--host 127.0.0.1]\n");
            return ch == 'h' ? 0 : 2;
        }
    }
    if (port <= 0 || port > 65535 || up_port <= 0 || up_port > 65535) {
        fprintf(stderr, "usage: relay --listen PORT --upstream PORT [--host 127.0.0.1]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        die("--host is an IPv4 address");
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 4096) != 0)
        die("bind/listen");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL; /* the listener */
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) != 0)
        die("epoll_ctl");
    fprintf(stderr, "relay: %s:%d -> %s:%d\n", host, port, host, up_port);
    for (;;) {
        int nev = epoll_wait(epfd, evs, 256, -1);

        if (nev < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < nev; i++) {
            struct side *s = evs[i].data.ptr;
            struct pair *p;
            bool ok = true;

            if (!s) {
                accept_all(lfd, host, up_port);
                continue;
            }
            p = s->pair;
            if (p->client.fd < 0)
                continue; /* closed earlier in this batch */
            if (evs[i].events & EPOLLOUT)
                ok = side_flush(s);
            if (ok && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                ok = s->reading ? side_readable(s) : !(evs[i].events & (EPOLLHUP | EPOLLERR));
            if (!ok)
                pair_close(p);
        }
        free_dead();
    }
}
