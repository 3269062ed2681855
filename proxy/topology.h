/*
 * proxy/topology.h: where new upstream connections go. A monitoring thread
 * follows the deployment named by the upstream URI with libmongoc's own
 * server discovery and monitoring (standalone, replica set, sharded
 * cluster; for mongodb+srv:// the hosts of its SRV records, looked up again
 * while sharded) and tells the event loop, by message, what it found, with
 * each target's address resolved on its thread; the loop picks each new
 * connection's server from the latest view and never looks up a name:
 *
 *   topology (libmongoc)      new connections go to
 *   Single                    the one server
 *   ReplicaSetWithPrimary     the primary
 *   Sharded                   a mongos that answers, chosen at random
 *   LoadBalanced              the load balancer (loadBalanced=true: the one
 *                             host, whatever answers behind it; each hello
 *                             sent upstream says loadBalanced: true)
 *   ReplicaSetNoPrimary       none yet: they wait for a primary, up to
 *                             connect_timeout (proxy/upstream.c), then
 *                             their requests get HostUnreachable
 *   anything else, or no view yet: the URI's first host (proxy/server.c);
 *                             mongodb+srv:// has none: the connection fails
 *                             with proxy_topology_error's reason
 *
 * When the servers new connections go to change (a failover), or the
 * primary steps down before a new one is elected, the loop is told through
 * server->hooks.upstream_moved: connections to a server that is no longer
 * among them are ended (proxy/client.c: each finishes what it has in
 * flight and closes, so drivers reconnect, or, holding nothing of its
 * own, gets a new upstream connection at its next request), and those
 * that waited for a primary connect.
 *
 * The monitor is a single-threaded mongoc_client_t on its own thread, every
 * server message checked by advice/guard.h before libmongoc reads it (a
 * mongoc_client_pool_t's monitors cannot be guarded: see advice/guard.h).
 * Server selection drives its checks (its one command of its own is a
 * ping, to check the URI's credentials when it has some), every
 * heartbeatFrequencyMS (10 s unless the URI sets it; 500 ms while no
 * server fits), and at once when the loop asks (proxy_topology_recheck).
 * The loop never calls libmongoc and never waits for the thread, but at
 * start and stop (a bounded wait: proxy_topology_destroy).
 *
 * Spec: source/server-discovery-and-monitoring/server-discovery-and-monitoring.md
 * and server-monitoring.md ("single-threaded" monitoring), source/server-selection/
 * server-selection.md ("Topology type: Sharded": any available mongos).
 */
#ifndef MONGOCACHE_PROXY_TOPOLOGY_H
#define MONGOCACHE_PROXY_TOPOLOGY_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct proxy_server;
struct proxy_topology;

/*
 * Starts the monitor on server->conf->upstream (copied; it may hold
 * credentials: never shown) and a libevent event on server->base for its
 * views. Waits for the thread to parse the URI, never for I/O. NULL with
 * error set (free of credentials) when the URI does not parse or the
 * thread cannot start. Free with proxy_topology_destroy.
 */
struct proxy_topology *proxy_topology_new(struct proxy_server *server, bson_error_t *error);

/* How long proxy_topology_destroy waits for the monitor's thread (ms). */
#define PROXY_TOPOLOGY_STOP_WAIT_MS 3000

/*
 * Stops the monitor and frees it (NULL: nothing, true). Waits up to
 * PROXY_TOPOLOGY_STOP_WAIT_MS for its thread (a check under way lasts up
 * to connectTimeoutMS): false when it did not end in time, and was left
 * behind to free the topology when it ends (conf_thread_stop; logged
 * topology_abandoned). Either way the caller must not use it again.
 */
bool proxy_topology_destroy(struct proxy_topology *topology);

/*
 * The server a new upstream connection should go to: false when the
 * monitor knows none (no view yet, or no primary), and the caller uses
 * the URI's first host (a mongodb+srv:// URI has none). host and address
 * ("host:port", or the socket path) stay valid until control returns to
 * the loop; port is 0 for a unix socket. *sa (sa_len bytes) is host's
 * address as the monitor's thread resolved it, to connect to without a
 * lookup on the loop; NULL (sa_len 0) when it has none (a unix socket, a
 * failed lookup): the caller resolves host. Among mongos servers, one is chosen at random for each
 * connection (a driver's clients, each opening a monitoring connection and
 * then pooled ones, would alias with a strict rotation).
 */
bool proxy_topology_pick(struct proxy_topology *topology, const char **host, uint16_t *port,
                         const char **address, const struct sockaddr **sa, socklen_t *sa_len);

/* Why the monitor knows no server to use (scrubbed of secrets), or NULL. */
const char *proxy_topology_error(const struct proxy_topology *topology);

/*
 * Whether the monitor found a load balancer (loadBalanced=true in the URI
 * or in a mongodb+srv:// name's TXT record): each hello sent upstream
 * then says loadBalanced: true, as a service behind a load balancer
 * requires of a connection's first one (source/load-balancers/).
 */
bool proxy_topology_load_balanced(const struct proxy_topology *topology);

/*
 * Whether a replica set has no primary while a member answers (an
 * election, or a primary the monitor cannot reach): new connections wait
 * (proxy/upstream.c) rather than go to a member known not to be primary.
 */
bool proxy_topology_electing(const struct proxy_topology *topology);

/*
 * Whether a connection made to address may go on serving: true when it is
 * among the servers new connections go to, or when none is known and
 * address is not known as a member that is not primary (no view yet, the
 * servers unreachable: its server answers for itself). In an election, a
 * member that answered as a secondary is not one. NULL topology: true.
 */
bool proxy_topology_is_target(const struct proxy_topology *topology, const char *address);

/*
 * A server new connections go to (address) said it is not primary, is
 * recovering or shutting down (wire/sdam.h; or a hello of a member that is
 * not primary: proxy/handshake.c), or a connection to it was lost (why
 * says which): the monitor checks every server at once (not
 * sooner than 500 ms after its last check, minHeartbeatFrequencyMS) instead
 * of at its next heartbeat, so new connections follow a failover sooner.
 * Ignored for a server that is not a target (already known), for a
 * single-server topology, and while a re-check is pending. Logs
 * upstream_recheck once per re-check asked.
 */
void proxy_topology_recheck(struct proxy_topology *topology, const char *address,
                            const char *why);

/* Appends "topology" (type, targets, primary, servers, changes, rechecks, error) to doc. */
void proxy_topology_stats_bson(const struct proxy_topology *topology, bson_t *doc);

#endif
