/* What http.c (requests and replies) and http_conn.c (connections) share.
 * Nothing outside those two files includes this. */
#ifndef GRACE_SDK_HTTP_INTERNAL_H
#define GRACE_SDK_HTTP_INTERNAL_H

#include "sdk/http.h"
#include "sdk/http_parse.h"
#include "sdk/tracer.h"

#include <event2/util.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#define REQUEST_ID_MAX 64
#define REQ_HEAD_INLINE 1024 /* heads up to this size live in the request itself */
#define REQ_SPARE_MAX 64     /* finished requests kept for reuse, per server */
#define PEER_MAX 48 /* INET6_ADDRSTRLEN and a NUL */

typedef struct sdk_conn sdk_conn;

/* A connection's life, one state at a time (the timer means what the state
 * says it means). */
enum conn_state {
	CONN_IDLE,   /* between requests: the keep-alive timeout runs */
	CONN_HEAD,   /* part of a head has come: the whole head has a deadline */
	CONN_BODY,   /* reading a body: each read must come within the I/O timeout */
	CONN_BUSY,   /* a handler has the request; its reply is being written */
	CONN_LINGER, /* the last answer is out and our side shut: draining theirs */
};

struct addr_slot {
	struct in6_addr addr; /* IPv4 as ::ffff:a.b.c.d */
	unsigned count;       /* 0: free */
};

struct sdk_server {
	struct event_base *base;
	sdk_server_opts opts;
	sdk_metrics *metrics;
	const char **labels; /* route patterns, for metrics */

	int lfd; /* the listening socket, -1 when not listening */
	struct event *accept_ev, *accept_retry;
	int reserve_fd; /* given up to accept and shed one connection at EMFILE */
	bool draining;

	TAILQ_HEAD(, sdk_conn) idle; /* keep-alive connections, longest idle first */
	TAILQ_HEAD(, sdk_conn) busy; /* every other connection */
	unsigned n_conns, max_conns, per_addr_max;
	struct addr_slot *addrs; /* open addressing, capacity addr_cap (a power of 2) */
	size_t addr_cap;
	const struct timeval *tmo_head, *tmo_io, *tmo_idle, *tmo_linger; /* common timeouts */

	unsigned inflight;
	size_t large_bodies; /* reserved by requests' body_reserved, <= SDK_LARGE_BODIES_MAX */
	sdk_req *spare; /* finished requests for reuse (a list through ->spare_next) */
	unsigned n_spare;
	struct timespec started, last_request;
	uint64_t shed_total; /* connections refused at a cap or at EMFILE */
	int64_t shed_logged_ms;
	uint64_t shed_since_log;

	time_t date_sec; /* the cached Date header's second */
	char date[40];
};

/* Added response headers: "Name: value\r\n" lines, inline until they grow. */
struct hdr_buf {
	char *p;
	size_t len, cap;
	bool has_type, has_connection; /* Content-Type, Connection among them */
	char inline_[384];
};

struct sdk_req {
	/* Scalars first: req_new clears everything before `h`. */
	sdk_conn *conn; /* referenced while the request lives; closed: replies are dropped */
	sdk_server *srv; /* NULL once the server is freed */
	char *head;      /* this request's copy of its head: head_inline, or owned */
	sdk_req *spare_next;
	struct evbuffer *body; /* owned; NULL until a body arrives or is asked for */
	int route;
	int matched; /* the router's answer (an index, or SDK_ROUTE_*), for a resumed request */
	char method[8];
	char *path; /* decoded, owned (NUL inside refused) */
	char id[REQUEST_ID_MAX + 1];
	char *query_copy; /* parsed query pairs point into it, owned */
	size_t n_query;
	bool query_parsed, head_only;
	json_t *json;
	struct timespec start;
	struct hdr_buf hdrs;
	char user[64];
	int role;
	/* A body past the server's max_body_bytes: its allowance, once
	 * decided (0: not asked), and the bytes reserved for it from the
	 * server's large_bodies. */
	size_t body_max, body_reserved;
	bool body_asked;
	/* A reply in progress: streaming (its framing) or finished. */
	bool started, chunked, finished, closed;
	int status;
	sdk_close_fn on_close;
	void *close_arg;
	sdk_close_fn on_drain;
	void *drain_arg;
	sdk_span span; /* when the server traces (sdk/tracer.h) */
	/* Large and bounded by counts: not cleared. */
	char head_inline[REQ_HEAD_INLINE];
	sdk_http_head h; /* fields point into `head` */
	sdk_route_params params;
	struct { const char *name, *value; } query[SDK_QUERY_MAX];
};

struct sdk_conn {
	sdk_server *srv;
	int fd; /* -1 once closed (the struct may outlive it while a request does) */
	enum conn_state state;
	struct event *rev, *wev, *tmo;
	struct evbuffer *in, *out;
	sdk_req *req;   /* being read or handled; NULL between requests */
	size_t scan;    /* how far the search for the head's end got */
	sdk_chunked chunk;
	uint64_t body_left; /* Content-Length bytes still to read */
	unsigned refs;  /* the open connection's, a request's, a running loop's */
	bool close_after; /* answer with Connection: close, then close */
	bool reading;     /* rev is added */
	bool in_loop;     /* conn_process is on the stack */
	struct in6_addr addr; /* the peer's, for the count per address */
	char peer[PEER_MAX];
	TAILQ_ENTRY(sdk_conn) link;
};

/* http_conn.c: the connection side, for http.c. */
void conn_reply_queued(sdk_conn *c);   /* the whole answer is in c->out */
void conn_flush(sdk_conn *c);          /* writes what it can now */
void conn_release(sdk_conn *c);        /* drops a request's reference */
void conn_close_after(sdk_conn *c);    /* this answer is the last */
void conn_abort(sdk_conn *c);          /* close now, whatever is unsent */
size_t conn_backlog(const sdk_conn *c);
const char *conn_date(sdk_server *s);

/* http.c: the request side, for http_conn.c. */
sdk_req *req_new(sdk_conn *c, const char *head, size_t len);
void req_free(sdk_req *r);
void req_dispatch(sdk_req *r);
/* The route r's target matches, read from its head alone (its decoded
 * path into `path`, SDK_PATH_MAX bytes), or NULL: for body_limit, before
 * the body is read and dispatch decodes the path for good. *ok false: the
 * path is not valid (dispatch will refuse it). */
const sdk_route *req_route_early(const sdk_req *r, char *path, bool *ok);
/* Answers a request refused before it reached a route (framing, sizes,
 * time): JSON error, Connection: close. r may be a fresh request with no
 * parsed head. */
void req_refuse(sdk_req *r, int status, const char *code, const char *msg);
void req_peer_gone(sdk_req *r);
void req_drained(sdk_req *r);

#endif
