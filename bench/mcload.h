/*
 * bench/mcload.h: what the load generator (bench/mcload.c) and the canned
 * upstream (bench/mcload_server.c) share: the wire constants, the options,
 * the small socket and message helpers and the find reply's shape
 * (bench/mcload_common.c). Not installed; see bench/README.md.
 */
#ifndef MCLOAD_H
#define MCLOAD_H

#include <bson/bson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HDR 16
#define OP_REPLY 1
#define OP_QUERY 2004
#define OP_MSG 2013
#define MAX_MSG (48 * 1000 * 1000)

/* The command line of every mode (client, --server, --populate). */
struct opts {
    const char *host;
    int port;
    int connections;
    bool open_loop;
    double rate;
    uint64_t n;
    double seconds;
    uint64_t warmup;
    double warmup_seconds;
    uint32_t keys;
    uint32_t size;
    const char *scenario;
    const char *db;
    const char *coll;
    const char *stats_url;
    const char *read_pref;
    bool cluster_time;
    bool resp; /* client: Redis GETs (RESP) instead of MongoDB finds */
    bool server;
    bool raw;
    bool populate;
    uint64_t delay_us;
    double stall_seconds;
};

/* Fills o from the command line; prints the usage and exits on a mistake. */
void mcload_parse_opts(int argc, char **argv, struct opts *o);

/* Monotonic clock in nanoseconds. */
uint64_t mcload_now_ns(void);
/* Little-endian int32 read / write. */
int32_t mcload_rd32(const uint8_t *p);
void mcload_wr32(uint8_t *p, int32_t v);
/* Print what failed (with errno) or a message and exit(2). */
void mcload_die(const char *what);
void mcload_fatal(const char *msg);
/* malloc or exit: never NULL; free() it. */
void *mcload_xmalloc(size_t n);
void mcload_set_nonblock(int fd);
void mcload_set_nodelay(int fd);
/* An OP_MSG with one body section (kind 0); malloc'ed, the caller frees it. */
uint8_t *mcload_encode_msg(const bson_t *body, int32_t request_id, int32_t response_to,
                           uint32_t *len_out);
/* The body document of an OP_MSG message of len bytes (points into m), or NULL. */
const uint8_t *mcload_msg_body(const uint8_t *m, size_t len, uint32_t *body_len);
/* ok: 1 in a reply body (double, int32, int64 or bool). */
bool mcload_body_ok(const uint8_t *doc, uint32_t len);
/* Blocking: writes all of buf. */
bool mcload_write_all(int fd, const uint8_t *buf, size_t len);
/* Blocking: reads one whole message; malloc'ed (the caller frees it), NULL on error. */
uint8_t *mcload_read_msg(int fd, uint32_t *len_out);
/* Blocking TCP connection with send/receive timeouts, TCP_NODELAY; -1 on error. */
int mcload_tcp_connect(const char *host, int port, int timeout_s);

/* A socket's input: whole messages are taken from the front as they arrive. */
struct mcload_inbuf {
    uint8_t *data; /* malloc'ed by mcload_inbuf_init, freed by mcload_inbuf_free */
    size_t len, cap;
    size_t off; /* bytes of data already taken by mcload_inbuf_next */
};
void mcload_inbuf_init(struct mcload_inbuf *b, size_t cap);
void mcload_inbuf_free(struct mcload_inbuf *b);
/* One recv from fd (non-blocking) into b: 1 bytes came, 0 none yet (EAGAIN),
 * -1 the peer closed (errno 0) or recv failed (errno set). */
int mcload_inbuf_recv(struct mcload_inbuf *b, int fd);
/* The next whole message in b (it stays valid until the next call on b),
 * or NULL: none complete yet (b grown to hold the next one whole), or, with
 * *bad set, a header whose length is out of range. */
const uint8_t *mcload_inbuf_next(struct mcload_inbuf *b, uint32_t *len_out, bool *bad);
/* RESP (mcload --resp): the next whole reply in b, as mcload_inbuf_next.
 * *bulk_len is a bulk string's length, -1 for the nil bulk ($-1), -2 for a
 * simple string, error or integer reply (one line); any other type, a line
 * longer than 4 KB, a malformed length or a bulk not ended by CRLF sets *bad. */
const uint8_t *mcload_inbuf_next_resp(struct mcload_inbuf *b, uint32_t *len_out,
                                      int64_t *bulk_len, bool *bad);
/* Drops the messages taken, keeping the start of a partial one. */
void mcload_inbuf_compact(struct mcload_inbuf *b);
/* Non-blocking: sends buf[*off, len) until all is sent (1), the socket is
 * full (0: wait for EPOLLOUT) or send failed (-1); *off advances. */
int mcload_send_pending(int fd, const uint8_t *buf, size_t len, size_t *off);

/* The find reply's body {cursor: {firstBatch: [{_id: id, v: pad}], id: 0, ns}, ok: 1}. */
void mcload_build_find_reply_body(bson_t *b, int32_t id, const char *pad, const struct opts *o);
/* Padding length so that the server's find reply is `size` bytes in all. */
uint32_t mcload_pad_for_size(uint32_t size, const struct opts *o);
/* size letters a..z and a NUL; malloc'ed, the caller frees it. */
char *mcload_make_pad(uint32_t n);

/* --server: serves until killed (bench/mcload_server.c). */
int mcload_server_run(struct opts *o);

#endif
