#include "sdk/kernel.h"
#include "sdk/join.h"
#include "sdk/tracer.h"

#include "sdk/clock.h"
#include "sdk/db.h"
#include "sdk/listen.h"
#include "sdk/log.h"
#include "sdk/notify.h"
#include "sdk/pdp.h"
#include "sdk/standby.h"
#include "sdk/str.h"
#include "sdk/svid.h"

#include <jansson.h>
#include <sodium.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DRAIN_POLL_MS 10
/* After SIGTERM, a connection accepted just before it may not have sent its
 * request yet: exit only once nothing has arrived for this long. */
#define DRAIN_QUIET_MS 100
#define ACCESS_TOKEN 0 /* the default: a kernel's own routes */
#define ACCESS_OPEN 1
/* The join credential: its variable, its length in hex, and how long the
 * runtime keeps presenting it while the trust kernel has not yet heard of
 * it (its registration is on its way) or is not up. */
#define JOIN_ENV "GRACE_JOIN_CREDENTIAL"
#define JOIN_HEX SDK_JOIN_HEX
#define JOIN_RETRY_MS 500
#define JOIN_TRIES_MAX 240
/* The first tries come sooner: at start every kernel is launched at once,
 * and one that is up before the trust kernel listens would otherwise hold
 * its calls (and the requests that need them) half a second. */
#define JOIN_RETRY_FIRST_MS 10
/* How often the database file is checked when no request comes. */
#define STORAGE_WATCH_MS 1000
/* /health, and a route marked reads_only, answer with a verdict at most
 * this old. Every other route checks the file itself, so no write is
 * acknowledged into a file that is gone; /health is what load balancers
 * and the guardian ask many times a second, and its two path lookups
 * were a quarter of its CPU. */
#define STORAGE_FRESH_MS 100

/* What SQLite reported as damage, from its log callback (which may run on
 * any thread): written once by whoever moves `state` from 0 to 1, read
 * once it is 2. */
struct storage_report {
	atomic_int state;
	char msg[256];
};

struct runtime {
	sdk_kernel k; /* first: handlers get &k and storage code finds the runtime */
	sdk_route *routes; /* standard routes followed by the kernel's */
	struct event *sigterm, *sigint, *watchdog, *drain, *storage_watch;
	struct timeval watchdog_every;
	struct timespec drain_deadline;
	bool draining;
	bool init_ran;
	bool prepared; /* def->prepare ran: close owes it a call */
	bool refused; /* the schema cannot be used: exit SDK_EXIT_PERMANENT */
	/* Storage failure: set once, never cleared (a new process starts clean). */
	bool storage_failed;
	char storage_error[512];
	int64_t storage_checked_ms; /* monotonic; when storage_ok last looked */
	char db_path[PATH_MAX];
	sdk_db_watch db_watch;
	struct storage_report sqlite_report;
	sdk_pdp *pdp; /* decisions on calls from other processes; made at the first */
	/* Attestation (docs/trust.md): the join credential the supervisor
	 * handed this process, until the trust kernel took or refused it. */
	char join[JOIN_HEX + 1];
	bool join_enrolled; /* join holds the unit's enrolled credential (systemd) */
	unsigned join_tries;
	struct event *join_timer;
	sdk_tracer *tracer; /* NULL: not traced (sdk/tracer.h) */
	/* SVIDs (docs/trust.md, "Calls between kernels"): this kernel's SPIFFE
	 * ID, the audience its callers' SVIDs must name, and the trust bundle
	 * they are verified with (made at the first SVID received). */
	char spiffe_id[SDK_SPIFFE_ID_MAX];
	bool require_svid; /* calls without an SVID are refused (require_of) */
	sdk_bundle *bundle;
	bool stopping; /* runtime_stop has begun: a waiting call is not decided */
};

/* ---- storage: a kernel whose database is damaged, deleted or replaced
 * says so in /health (503 "storage_failed") and refuses every other route
 * with 503, and keeps running so it can be diagnosed; restarting it would
 * not repair the file (docs/healer.md: the storage_failed playbook). */

static struct runtime *runtime_of(sdk_kernel *k)
{
	return (struct runtime *)k;
}

static void storage_fail(struct runtime *rt, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void storage_fail(struct runtime *rt, const char *fmt, ...)
{
	if (rt->storage_failed)
		return;
	rt->storage_failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rt->storage_error, sizeof rt->storage_error, fmt, ap);
	va_end(ap);
	sdk_error("storage failed: %s; every route but /health and /metrics answers 503 "
		  "storage_failed until an operator acts (a restart does not repair a database "
		  "file; see docs/healer.md)",
		  rt->storage_error);
	char status[300];
	snprintf(status, sizeof status, "STATUS=storage failed: %.250s", rt->storage_error);
	sdk_notify(status);
}

/* SQLite's error log: the one place every SQLITE_CORRUPT and SQLITE_NOTADB
 * passes, whichever statement met it. */
static void on_sqlite_log(void *arg, int code, const char *msg)
{
	struct storage_report *r = arg;
	sdk_db_log_note(code, msg); /* a failed statement's span (sdk/db.h) */
	int primary = code & 0xff;
	if (primary != SQLITE_CORRUPT && primary != SQLITE_NOTADB)
		return;
	int expected = 0;
	if (!atomic_compare_exchange_strong(&r->state, &expected, 1))
		return;
	snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "database corruption");
	atomic_store(&r->state, 2);
}

/* Whether the store can still be trusted: not failed at start, no damage
 * reported by SQLite, and the file still the one the path names. */
static bool storage_ok(struct runtime *rt)
{
	if (rt->storage_failed)
		return false;
	if (atomic_load(&rt->sqlite_report.state) == 2)
		storage_fail(rt, "SQLite found %s damaged: %s", rt->db_path, rt->sqlite_report.msg);
	sdk_err e;
	if (!rt->storage_failed && rt->k.db && sdk_db_watch_check(&rt->db_watch, rt->k.db, &e) < 0)
		storage_fail(rt, "%s", e.msg);
	rt->storage_checked_ms = sdk_mono_ms();
	return !rt->storage_failed;
}

/* storage_ok, or its verdict when it looked less than STORAGE_FRESH_MS
 * ago (damage SQLite reported is taken at once either way). */
static bool storage_ok_fresh(struct runtime *rt)
{
	if (!rt->storage_failed && atomic_load(&rt->sqlite_report.state) != 2 &&
	    sdk_mono_ms() - rt->storage_checked_ms < STORAGE_FRESH_MS)
		return true;
	return storage_ok(rt);
}

bool sdk_kernel_storage_ok(sdk_kernel *k)
{
	return storage_ok(runtime_of(k));
}

static void on_storage_watch(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct runtime *rt = arg;
	if (!storage_ok(rt))
		event_del(rt->storage_watch); /* reported once; /health keeps saying it */
}

/* A healthy answer, written here: the guardian, the standby's first
 * client and every load balancer ask it, and jansson's pack and dump (a
 * double printed to 17 digits and read back) were 25,000 of its 36,000
 * instructions. The kernel's name is an identifier and the version a
 * constant: nothing to escape. Uptime in milliseconds' precision. */
static void health_ok(sdk_req *req, const sdk_kernel *k, double uptime_s)
{
	char pid[12], sec[12], ms[12], text[256];
	long long up_ms = uptime_s > 0 ? (long long)(uptime_s * 1e3) : 0;
	const char *frac = sdk_int_text((int)(up_ms % 1000) + 1000, ms) + 1; /* 3 digits */
	size_t n = SDK_STRJOIN(text, sizeof text, "{\"status\":\"ok\",\"kernel\":\"", k->def->name,
			       "\",\"pid\":", sdk_int_text((int)k->pid, pid),
			       ",\"uptime_s\":", sdk_int_text((int)(up_ms / 1000), sec), ".", frac,
			       ",\"version\":\"" GRACE_VERSION "\",\"complete\":",
			       k->def->complete ? "true" : "false", ",\"storage\":{\"ok\":true}}\n");
	sdk_reply_json_text(req, 200, text, n < sizeof text ? n : sizeof text - 1);
}

static void on_health(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct runtime *rt = runtime_of(k);
	if (storage_ok_fresh(rt)) {
		health_ok(req, k, sdk_server_uptime(k->server));
		return;
	}
	json_t *storage = json_pack("{s:b, s:s, s:s}", "ok", 0, "file", rt->db_path, "error",
				    rt->storage_error);
	sdk_reply_json(req, 503,
		       json_pack("{s:s, s:s, s:I, s:f, s:s, s:b, s:o}", "status", "storage_failed",
				 "kernel", k->def->name, "pid", (json_int_t)k->pid, "uptime_s",
				 sdk_server_uptime(k->server), "version", GRACE_VERSION, "complete",
				 k->def->complete, "storage", storage));
}

static void on_metrics(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	sdk_server_render_metrics(k->server, b);
	sdk_reply_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
	evbuffer_free(b);
}

/* ---- calls from other processes, decided by policy (docs/policy.md):
 * principal Kernel::"CALLER" (X-Grace-Caller, which the call path sends
 * with the internal token: the main process is "grace"), action
 * Action::"METHOD /pattern" of the route called, resource Kernel::"SELF",
 * context {user, role} when the call is made for a user. Not decided
 * again: what the gateway forwards for a user (caller "gateway" with
 * X-Grace-User), which :8000 decided for that user; and a request with the
 * token and no caller name, the operator's (whoever holds the token file).
 * A call that carries an SVID has had its caller name checked against the
 * SVID's verified subject before (svid_check): the name decided on is the
 * verified one; without an SVID it is what the caller says (refused
 * under [trust] require_svid when it names a kernel). */

#define CALLER_NAME_MAX 63

static bool caller_valid(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= CALLER_NAME_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static void call_refused(sdk_req *req, sdk_kernel *k, const sdk_call_decision *d)
{
	sdk_reply_error(req, 403, "call_forbidden",
			"policy does not let '%s' call %s of kernel %s", d->caller, d->action,
			k->def->name);
}

static void call_unavailable(sdk_req *req, const char *why)
{
	sdk_req_add_header(req, "Retry-After", "1");
	sdk_reply_error(req, 503, "policy_unavailable",
			"this call is decided by the policy kernel, and %s", why);
}

struct call_wait {
	sdk_req *req;
	sdk_kernel *k;
	sdk_call_decision d;
	char caller[CALLER_NAME_MAX + 1], action[SDK_PATH_MAX + 16];
};

static void on_call_decided(int result, const char *why, void *arg)
{
	struct call_wait *w = arg;
	if (result == SDK_PDP_ALLOW)
		sdk_req_resume(w->req);
	else if (result == SDK_PDP_DENY)
		call_refused(w->req, w->k, &w->d);
	else
		call_unavailable(w->req, why ? why : "it is not ready");
	free(w);
}

static sdk_pdp *runtime_pdp(struct runtime *rt)
{
	if (!rt->pdp) {
		const grace_policy *pol = &rt->k.cfg->policy;
		sdk_pdp_opts o = { .base = rt->k.base,
				   .caller = rt->k.caller,
				   .policy_set = pol->policy_set,
				   .timeout_ms = pol->decision_timeout_ms,
				   .cache_entries = pol->cache_entries };
		rt->pdp = sdk_pdp_new(&o);
	}
	return rt->pdp;
}

struct sdk_pdp *sdk_kernel_pdp(sdk_kernel *k)
{
	if (k->cfg->policy.authorizer != GRACE_AUTHORIZER_KERNEL)
		return NULL;
	return runtime_pdp(runtime_of(k));
}

/* True when the call may run now; else it has been answered, or is
 * waiting for its decision (then answered or resumed later). */
static bool decide_call(struct runtime *rt, sdk_req *req, const sdk_route *route)
{
	sdk_kernel *k = &rt->k;
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	if (k->cfg->policy.authorizer != GRACE_AUTHORIZER_KERNEL || !caller)
		return true;
	if (!caller_valid(caller)) {
		sdk_reply_error(req, 403, "call_forbidden", "%s names no caller", SDK_CALLER_HEADER);
		return false;
	}
	int role = SDK_CALLER_NONE;
	const char *user = sdk_req_caller(req, k->token, &role);
	if (user && !strcmp(caller, SDK_GATEWAY_CALLER))
		return true;
	char action[SDK_PATH_MAX + 16];
	snprintf(action, sizeof action, "%s %s",
		 route->pattern.method ? route->pattern.method : sdk_req_method(req),
		 route->pattern.path);
	sdk_call_decision d = { .caller = caller, .action = action, .user = user,
				.role = user ? (role == SDK_CALLER_ADMIN ? "admin" : "user") : NULL };
	int r = k->def->decide_call ? k->def->decide_call(k, &d) : SDK_DECIDE_ASK_POLICY;
	if (r == 1)
		return true;
	if (r != SDK_DECIDE_ASK_POLICY) {
		if (r == 0)
			call_refused(req, k, &d);
		else
			call_unavailable(req, "it cannot decide it now");
		return false;
	}
	sdk_pdp *pdp = runtime_pdp(rt);
	if (!pdp) {
		call_unavailable(req, "there is no memory to ask it");
		return false;
	}
	char key[CALLER_NAME_MAX + SDK_PATH_MAX + SDK_CALLER_NAME_MAX + 48];
	int n = snprintf(key, sizeof key, "%s%s%s%s", caller, action, user ? user : "",
			 d.role ? d.role : "");
	if (n < 0 || (size_t)n >= sizeof key) {
		call_unavailable(req, "the call's description is too long");
		return false;
	}
	switch (sdk_pdp_lookup(pdp, key, (size_t)n)) {
	case SDK_PDP_ALLOW: return true;
	case SDK_PDP_DENY: call_refused(req, k, &d); return false;
	case SDK_PDP_UNAVAILABLE: call_unavailable(req, sdk_pdp_why(pdp)); return false;
	default: break;
	}
	struct call_wait *w = calloc(1, sizeof *w);
	json_t *q = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:o}", "principal", "type",
			      "Kernel", "id", caller, "action", "type", "Action", "id", action,
			      "resource", "type", "Kernel", "id", k->def->name, "context",
			      user ? json_pack("{s:s, s:s}", "user", user, "role", d.role)
				   : json_object());
	if (!w || !q) {
		free(w);
		json_decref(q);
		call_unavailable(req, "there is no memory to ask it");
		return false;
	}
	w->req = req;
	w->k = k;
	snprintf(w->caller, sizeof w->caller, "%s", caller);
	snprintf(w->action, sizeof w->action, "%s", action);
	w->d = (sdk_call_decision){ .caller = w->caller, .action = w->action };
	sdk_pdp_ask(pdp, key, (size_t)n, q, NULL, on_call_decided, w);
	return false;
}

/* ---- SVIDs on calls between kernels (docs/trust.md): the caller's
 * JWT-SVID for this kernel (SDK_SVID_HEADER), verified here with the
 * trust bundle: its subject must be the workload X-Grace-Caller names
 * (the main process's SVID also speaks for its gateway). A call that
 * carries none is refused under [trust] require_svid (whoever it names);
 * calls to the trust kernel carry the attestation instead, and it checks
 * that itself. */

enum { SVID_GO, SVID_ANSWERED, SVID_WAITING };

struct svid_wait {
	struct runtime *rt;
	sdk_req *req;
	const sdk_route *route;
};

static int svid_check(struct runtime *rt, sdk_req *req, const sdk_route *route);

static void on_svid_bundle(void *arg)
{
	struct svid_wait *w = arg;
	struct runtime *rt = w->rt;
	sdk_req *req = w->req;
	const sdk_route *route = w->route;
	free(w);
	if (rt->stopping) {
		sdk_reply_error(req, 503, "stopping", "the kernel is stopping");
		return;
	}
	if (svid_check(rt, req, route) == SVID_GO && decide_call(rt, req, route))
		sdk_req_resume(req);
}

static void svid_refused(sdk_req *req, const char *code, const char *why)
{
	sdk_reply_error(req, 401, code, "%s", why);
}

static int svid_check(struct runtime *rt, sdk_req *req, const sdk_route *route)
{
	sdk_kernel *k = &rt->k;
	const char *svid = sdk_req_header(req, SDK_SVID_HEADER);
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	bool require = rt->require_svid && strcmp(k->def->name, "trust");
	if (!svid) {
		/* The main process carries SVIDs too (its gateway's forwards
		 * included), so under require_svid no name is believed on the
		 * token alone, nor a call that names no caller. */
		if (require) {
			sdk_reply_error(req, 401, "svid_required",
					"a call from '%.63s' must carry its SVID (%s)",
					caller ? caller : "(no caller named)", SDK_SVID_HEADER);
			return SVID_ANSWERED;
		}
		return SVID_GO;
	}
	struct svid_wait *w = malloc(sizeof *w);
	if (!rt->bundle)
		rt->bundle = sdk_bundle_new(k->caller);
	if (!w || !rt->bundle) {
		free(w);
		call_unavailable(req, "there is no memory to verify the caller's SVID");
		return SVID_ANSWERED;
	}
	*w = (struct svid_wait){ rt, req, route };
	char sub[SDK_SPIFFE_ID_MAX], name[CALLER_NAME_MAX + 1];
	sdk_err e = { "" };
	bool waiting;
	int rc = sdk_bundle_verify(rt->bundle, svid, rt->spiffe_id, sdk_wall_ms(), sub, sizeof sub,
				   &e, on_svid_bundle, w, &waiting);
	if (waiting)
		return SVID_WAITING;
	free(w);
	if (rc == SDK_EBUSY) {
		/* No bundle to be had (the trust kernel down since this kernel
		 * started): the SVID cannot be checked either way. */
		if (!require)
			return SVID_GO;
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "trust_unavailable",
				"the caller's SVID cannot be verified now: %s", e.msg);
		return SVID_ANSWERED;
	}
	if (rc < 0) {
		svid_refused(req, "invalid_svid", e.msg);
		return SVID_ANSWERED;
	}
	if (sdk_svid_name_of(k->cfg->trust.domain, sub, name, sizeof name) < 0) {
		svid_refused(req, "invalid_svid", "the SVID's subject is no workload of this Grace");
		return SVID_ANSWERED;
	}
	if (!caller ||
	    (strcmp(caller, name) && !(!strcmp(name, "grace") && !strcmp(caller, SDK_GATEWAY_CALLER)))) {
		sdk_reply_error(req, 401, "caller_mismatch",
				"%s names '%.63s' but the SVID is %s's", SDK_CALLER_HEADER,
				caller ? caller : "", name);
		return SVID_ANSWERED;
	}
	return SVID_GO;
}

/* The kernel's own series after the SDK's. */
static void kernel_metrics_extra(struct evbuffer *out, void *ctx)
{
	sdk_kernel *k = ctx;
	if (k->def->metrics && k->state)
		k->def->metrics(k, out);
	sdk_tracer_metrics(runtime_of(k)->tracer, k->def->name, out);
}

/* Whether req presents the kernel's internal token. */
static bool token_given(const sdk_kernel *k, sdk_req *req)
{
	const char *given = sdk_req_header(req, SDK_TOKEN_HEADER);
	return k->token[0] && given && sdk_secret_equal(given, k->token);
}

/* A body past the kernel's max_body_bytes: only to a route that takes
 * more (sdk_route.max_body), and only from a caller with the internal
 * token, so nobody else on the host can make the kernel hold it. */
static size_t body_limit(sdk_req *req, const sdk_route *route, const char *method,
			 const char *path, void *ctx)
{
	(void)method, (void)path;
	sdk_kernel *k = ctx;
	size_t max = k->kcfg->max_body_bytes;
	return route && route->max_body > max && token_given(k, req) ? route->max_body : max;
}

/* Every route but the standard ones needs the internal token. */
static bool authorize(sdk_req *req, const sdk_route *route, void *ctx)
{
	sdk_kernel *k = ctx;
	if (route && route->access == ACCESS_OPEN)
		return true;
	if (!k->token[0]) {
		sdk_reply_error(req, 401, "unauthorized",
				"this kernel has no internal token (see %s in the data directory)",
				SDK_TOKEN_FILE);
		return false;
	}
	if (!token_given(k, req)) {
		sdk_reply_error(req, 401, "unauthorized",
				"kernel routes are reached through the Grace API");
		return false;
	}
	/* Checked before every route, so no write is acknowledged into a file
	 * that is already gone; a route that only reads takes a verdict up to
	 * STORAGE_FRESH_MS old (its two path lookups were a sixth of a
	 * librarian search's system time). */
	if (route && !(route->reads_only ? storage_ok_fresh(runtime_of(k)) : storage_ok(runtime_of(k)))) {
		sdk_reply_error(req, 503, "storage_failed", "%s", runtime_of(k)->storage_error);
		return false;
	}
	if (!route)
		return true;
	if (svid_check(runtime_of(k), req, route) != SVID_GO)
		return false;
	return decide_call(runtime_of(k), req, route);
}

static const sdk_route standard_routes[] = {
	SDK_ROUTE_ACCESS("GET", "/health", on_health, ACCESS_OPEN),
	SDK_ROUTE_ACCESS("GET", "/metrics", on_metrics, ACCESS_OPEN),
};
#define N_STANDARD (sizeof standard_routes / sizeof standard_routes[0])

const sdk_route *sdk_kernel_standard_routes(size_t *n)
{
	*n = N_STANDARD;
	return standard_routes;
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	/* Sent from the event loop itself: a loop that is stuck stops sending. */
	sdk_notify("WATCHDOG=1");
}

static bool past(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct runtime *rt = arg;
	unsigned left = sdk_server_inflight(rt->k.server);
	bool quiet = sdk_server_quiet_ms(rt->k.server) >= DRAIN_QUIET_MS;
	if ((left == 0 && quiet) || past(&rt->drain_deadline)) {
		if (left)
			sdk_warn("drain time over with %u requests unanswered", left);
		event_base_loopexit(rt->k.base, NULL);
		return;
	}
	struct timeval tv = { 0, DRAIN_POLL_MS * 1000 };
	evtimer_add(rt->drain, &tv);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct runtime *rt = arg;
	if (rt->draining)
		return;
	rt->draining = true;
	sdk_info("signal %d: draining", (int)sig);
	sdk_notify("STOPPING=1");
	sdk_server_stop_accepting(rt->k.server);
	if (rt->k.def->drain)
		rt->k.def->drain(&rt->k);
	clock_gettime(CLOCK_MONOTONIC, &rt->drain_deadline);
	unsigned ms = rt->k.cfg->limits.drain_ms;
	rt->drain_deadline.tv_sec += ms / 1000;
	rt->drain_deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (rt->drain_deadline.tv_nsec >= 1000000000L) {
		rt->drain_deadline.tv_sec++;
		rt->drain_deadline.tv_nsec -= 1000000000L;
	}
	on_drain_tick(-1, 0, rt);
}

/* Returns a listening socket: fd 3 when handed one, else our own bind. */
static int kernel_socket(const sdk_kernel *k)
{
	int n = sdk_listen_fds();
	if (n >= 1) {
		for (int fd = SDK_LISTEN_FDS_START + 1; fd < SDK_LISTEN_FDS_START + n; fd++)
			close(fd);
		return SDK_LISTEN_FDS_START;
	}
	int port = grace_kernel_port(k->cfg, k->kcfg);
	int fd = sdk_listen_tcp(port);
	if (fd < 0)
		sdk_error("cannot listen on 127.0.0.1:%d: %s", port, strerror(-fd));
	else
		sdk_info("listening on 127.0.0.1:%d", port);
	return fd;
}

/* Opens the kernel's database. A damaged one is not an error that ends
 * the process: the kernel comes up with its storage failed. */
static int storage_open(struct runtime *rt, sdk_err *err)
{
	sdk_kernel *k = &rt->k;
	if (snprintf(rt->db_path, sizeof rt->db_path, "%s/%s.db", k->cfg->data_dir,
		     k->def->name) >= (int)sizeof rt->db_path) {
		return sdk_fail(err, SDK_EINVAL, "database path too long");
	}
	/* A file from a newer Grace is refused before the open below changes
	 * anything in it (its journal mode). */
	int rc;
	if (k->def->schema_version &&
	    (rc = sdk_mig_refuse_if_newer(rt->db_path, k->def->schema_version, err)) < 0) {
		rt->refused = true;
		return rc;
	}
	/* Half the ready timeout at most, so a large file never makes the
	 * supervisor kill the kernel over and over before it is ready. */
	sdk_db_check check = { .budget_ms = k->kcfg->ready_timeout_ms / 2 };
	sdk_err e = { "" };
	rc = sdk_db_open_checked(k->cfg->data_dir, k->def->name, &check, &k->db, &e);
	if (rc == SDK_ECORRUPT) {
		storage_fail(rt, "%s", e.msg);
		return 0;
	}
	if (rc < 0)
		return sdk_fail(err, rc, "%s", e.msg);
	if (!check.complete)
		sdk_warn("%s: quick_check did not finish within %u ms (half of ready_timeout_ms): "
			 "the file was not checked; raise ready_timeout_ms to check it",
			 rt->db_path, check.budget_ms);
	else
		sdk_debug("%s: quick_check ok in %.0f ms", rt->db_path, check.ms);
	sdk_db_watch_init(&rt->db_watch, k->db);
	return 0;
}

/* Brings the database to the kernel's schema version before its init. A
 * file from a newer Grace, or a step that fails, is not something a
 * restart repairs: the kernel refuses to start (SDK_EXIT_PERMANENT, the
 * supervisor gives up and logs it) with the reason in the log. Damage met
 * on the way fails the storage, as at open. */
static int schema_migrate(struct runtime *rt, sdk_err *err)
{
	sdk_kernel *k = &rt->k;
	if (!k->def->schema_version)
		return 0;
	sdk_mig_def def = { .store = k->def->name,
			    .version = k->def->schema_version,
			    .steps = k->def->migrations,
			    .n_steps = k->def->n_migrations };
	sdk_mig_report r;
	sdk_err e = { "" };
	int rc = sdk_mig_run(k->db, &def, &r, &e);
	if (rc == SDK_ECORRUPT) {
		storage_fail(rt, "%s", e.msg); /* up, with its storage failed */
		return 0;
	}
	if (rc < 0) {
		/* Locked by another process: worth a restart with backoff. */
		rt->refused = rc != SDK_EBUSY;
		return sdk_fail(err, rc, "%s", e.msg);
	}
	if (r.steps)
		sdk_info("%s: schema migrated from version %d to %d", rt->db_path, r.from, r.to);
	return 0;
}

/* The kernel's prepare, once (kernel.h says what it may do). */
static int prepare(struct runtime *rt, sdk_err *err)
{
	sdk_kernel *k = &rt->k;
	if (rt->prepared || !k->def->prepare)
		return 0;
	rt->prepared = true;
	sdk_err why = { "" };
	int rc = k->def->prepare(k, &why);
	return rc < 0 ? sdk_fail(err, rc, "%s", why.msg) : 0;
}

/* Undoes prepare when init will not run on that state. */
static void unprepare(struct runtime *rt)
{
	sdk_kernel *k = &rt->k;
	if (rt->prepared && !rt->init_ran && k->def->close)
		k->def->close(k);
	k->state = NULL;
	rt->prepared = false;
}

/* Runs the kernel's init unless its storage failed already. An init that
 * fails on a damaged file leaves the kernel up with its storage failed. */
static int storage_init(struct runtime *rt, sdk_err *err)
{
	sdk_kernel *k = &rt->k;
	if (rt->storage_failed)
		return 0;
	if (schema_migrate(rt, err) < 0)
		return -1;
	if (rt->storage_failed)
		return 0;
	if (prepare(rt, err) < 0)
		return -1;
	if (!k->def->init)
		return 0;
	rt->init_ran = true;
	sdk_err why = { "" };
	int rc = k->def->init(k, &why);
	if (rc >= 0)
		return 0;
	int primary = sqlite3_extended_errcode(k->db) & 0xff;
	if (atomic_load(&rt->sqlite_report.state) == 2 || primary == SQLITE_CORRUPT ||
	    primary == SQLITE_NOTADB) {
		storage_fail(rt, "%s: %s", rt->db_path, why.msg);
		return 0;
	}
	return sdk_fail(err, rc, "%s", why.msg);
}

static void svids_start(struct runtime *rt);

/* [trust] require_svid as the file says; unless it says, on where SVIDs
 * are sure to be had: a trust kernel configured, and this process either
 * spawned by grace serve (which attests it, and hands every kernel the
 * hash of its own attestation) or a systemd unit holding an enrolled
 * credential (where the main process attests with one of its own:
 * docs/trust.md); off for a kernel run alone by hand, whose callers hold
 * the token only. */
static bool require_of(const struct runtime *rt)
{
	const sdk_kernel *k = &rt->k;
	const grace_trust *t = &k->cfg->trust;
	if (t->require_svid_set)
		return t->require_svid;
	const char *main_hash = getenv(SDK_MAIN_ATTEST_ENV);
	return ((main_hash && *main_hash) || rt->join_enrolled) &&
	       grace_config_kernel(k->cfg, "trust");
}

/* What reads none of the kernel's state and starts nothing (no socket, no
 * call): the token, the SPIFFE ID, the port table, the caller, the routes,
 * the tracer and the HTTP server. A standby does it while it waits, so the
 * path from a crash to answering again starts at the store. */
static int runtime_setup(struct runtime *rt, sdk_err *err)
{
	sdk_kernel *k = &rt->k;
	if (mkdir(k->cfg->data_dir, 0700) < 0 && errno != EEXIST) {
		return sdk_fail(err, SDK_EIO, "cannot create %.200s: %s", k->cfg->data_dir,
				strerror(errno));
	}
	/* libsodium's set-up (CPU features, its random source) is a tenth of
	 * a takeover when the first SVID does it after the word. */
	if (sodium_init() < 0)
		sdk_warn("libsodium did not initialise: calls to other kernels carry no SVID");
	/* The token is grace serve's for its whole life, and a standby dies
	 * with it (PR_SET_PDEATHSIG): read once, it stays true. */
	int trc = sdk_token_load(k->cfg, k->token);
	if (trc < 0) {
		k->token[0] = '\0';
		sdk_warn("no internal token (%s): every route but /health and /metrics will "
			 "answer 401", strerror(-trc));
	}
	if (sdk_svid_id(k->cfg->trust.domain, k->def->name, rt->spiffe_id, sizeof rt->spiffe_id) < 0) {
		return sdk_fail(err, SDK_EINVAL, "the SPIFFE ID of kernel %s does not fit",
				k->def->name);
	}
	k->ports = sdk_ports_open(k->cfg);
	k->caller = k->ports ? sdk_caller_new(k->base, k->def->name, k->token, sdk_ports_resolve,
					      k->ports)
			     : NULL;
	if (!k->caller) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	size_t n = N_STANDARD + k->def->n_routes;
	rt->routes = calloc(n, sizeof *rt->routes);
	if (!rt->routes) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	memcpy(rt->routes, standard_routes, sizeof standard_routes);
	for (size_t i = 0; i < k->def->n_routes; i++) {
		rt->routes[N_STANDARD + i] = k->def->routes[i];
		rt->routes[N_STANDARD + i].access = ACCESS_TOKEN;
	}
	/* Requests that come with a traceparent are traced; the telemetry
	 * kernel's own are not (its exports would be traced in turn). */
	if (grace_config_self_trace(k->cfg) && strcmp(k->def->name, "telemetry")) {
		char service[64];
		snprintf(service, sizeof service, "grace.%s", k->def->name);
		rt->tracer = sdk_tracer_new(k->base, k->caller, service);
		if (rt->tracer)
			sdk_tracer_set_limits(rt->tracer, k->cfg->telemetry.request_items_max,
					      grace_config_kernel(k->cfg, "telemetry")->max_body_bytes);
	}
	grace_limits limits = k->cfg->limits;
	limits.max_body_bytes = k->kcfg->max_body_bytes;
	sdk_server_opts opts = { .component = k->def->name,
				 .routes = rt->routes,
				 .n_routes = n,
				 .ctx = k,
				 .limits = limits,
				 .metrics_extra = kernel_metrics_extra,
				 .authorize = authorize,
				 .body_limit = body_limit,
				 .trace_hooks = rt->tracer ? &sdk_tracer_http_hooks : NULL,
				 .trace_ctx = rt->tracer };
	k->server = sdk_server_new(k->base, &opts);
	if (!k->server) {
		return sdk_fail(err, SDK_EIO, "cannot create the HTTP server");
	}
	return 0;
}

/* After runtime_setup (and, in a standby, after the word): the store, the
 * kernel's init, the SVIDs, and the listening socket. */
static int runtime_start(struct runtime *rt, sdk_err *err)
{
	sdk_kernel *k = &rt->k;
	/* A standby opened (and checked) it while it waited. */
	if (!k->db && !rt->storage_failed && storage_open(rt, err) < 0)
		return -1;
	rt->require_svid = require_of(rt); /* before init: the trust kernel takes the hash */
	svids_start(rt);
	if (storage_init(rt, err) < 0)
		return -1;
	int fd = kernel_socket(k);
	if (fd < 0 || sdk_server_listen(k->server, fd) < 0) {
		return sdk_fail(err, SDK_EIO, "no listening socket");
	}
	return 0;
}

/* ---- attestation: the join credential, presented once to the trust
 * kernel, which checks it against this process (pid, start time,
 * executable) and burns it; the answer is this process's attestation,
 * sent with every later call to the trust kernel (sdk/call.h). */

/* Without a supervisor (a systemd unit): the long-lived credential that
 * LoadCredential=join:… put in the unit's private credentials directory,
 * enrolled with the trust kernel beforehand (docs/trust.md). */
static void join_take_credential(struct runtime *rt)
{
	rt->join_enrolled = sdk_join_credential(rt->join) == 0;
}

/* Takes the credential out of the environment at once: copied, then
 * overwritten where it lies (so /proc/PID/environ no longer shows it) and
 * removed. */
static void join_take(struct runtime *rt)
{
	char *v = getenv(JOIN_ENV);
	if (!v) {
		join_take_credential(rt);
		return;
	}
	if (strlen(v) == JOIN_HEX && strspn(v, "0123456789abcdef") == JOIN_HEX)
		memcpy(rt->join, v, JOIN_HEX + 1);
	memset(v, 'x', strlen(v));
	unsetenv(JOIN_ENV);
}

static void join_present(struct runtime *rt);

/* Calls to other kernels carry this process's SVIDs; while it attests
 * (the trust kernel refuses a restarted kernel's new process its identity
 * until it has) they wait for it, a little. */
static void svids_start(struct runtime *rt)
{
	sdk_kernel *k = &rt->k;
	if (!grace_config_kernel(k->cfg, "trust"))
		return;
	/* Never more than the trust kernel hands out. */
	unsigned ttl = k->cfg->trust.svid_ttl_s < k->cfg->trust.jwt_ttl_max_s
			       ? k->cfg->trust.svid_ttl_s
			       : k->cfg->trust.jwt_ttl_max_s;
	if (sdk_caller_use_svids(k->caller, k->cfg->trust.domain, ttl, rt->join[0] != '\0') < 0)
		sdk_warn("no memory for SVIDs: calls to other kernels carry none");
}

static void join_forget(struct runtime *rt)
{
	explicit_bzero(rt->join, sizeof rt->join);
	if (rt->join_timer)
		evtimer_del(rt->join_timer);
	sdk_caller_svids_release(rt->k.caller);
}

static void on_joined(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	struct runtime *rt = arg;
	if (status == 200) {
		json_t *j = json_loadb(body, len, 0, NULL);
		const char *a = json_string_value(json_object_get(j, "attestation"));
		if (a) {
			sdk_caller_set_attestation(rt->k.caller, a);
			sdk_info("attested by the trust kernel");
		}
		json_decref(j);
		join_forget(rt);
		return;
	}
	/* Not yet registered (404), or trust not up (0, 503): again soon;
	 * anything else is a refusal, and final. */
	if ((status == 404 || status == 503 || status == 0) && ++rt->join_tries < JOIN_TRIES_MAX &&
	    rt->join_timer) {
		/* 10, 20, 40 ... ms, then every JOIN_RETRY_MS. */
		unsigned shift = rt->join_tries - 1 < 6 ? rt->join_tries - 1 : 6;
		unsigned ms = JOIN_RETRY_FIRST_MS << shift;
		struct timeval tv = sdk_ms_tv(ms < JOIN_RETRY_MS ? ms : JOIN_RETRY_MS);
		evtimer_add(rt->join_timer, &tv);
		return;
	}
	sdk_warn("the trust kernel did not attest this process (%d%s%s: %.*s)", status,
		 error ? " " : "", error ? error : "", (int)(len > 200 ? 200 : len), body ? body : "");
	join_forget(rt);
}

static void join_present(struct runtime *rt)
{
	sdk_kernel *k = &rt->k;
	if (!rt->join[0] || rt->draining)
		return;
	char body[160];
	snprintf(body, sizeof body, "{\"credential\":\"%s\",\"pid\":%d}", rt->join, (int)getpid());
	if (sdk_call(k->caller, "trust", "POST", "/attest/join", body, strlen(body), NULL, 5000,
		     on_joined, rt) < 0)
		on_joined(0, NULL, 0, 0, "cannot call", rt);
	explicit_bzero(body, sizeof body);
}

static void on_join_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	join_present(arg);
}

static void join_start(struct runtime *rt)
{
	if (!rt->join[0])
		return;
	if (!grace_config_kernel(rt->k.cfg, "trust")) {
		join_forget(rt); /* nobody to attest it */
		return;
	}
	/* From the loop, after its first poll: a standby that has just taken
	 * over answers the clients waiting in its socket's queue before it
	 * resolves and calls the trust kernel. */
	rt->join_timer = evtimer_new(rt->k.base, on_join_timer, rt);
	struct timeval now = { 0, 0 };
	if (!rt->join_timer || evtimer_add(rt->join_timer, &now) < 0)
		join_present(rt);
}

static void runtime_stop(struct runtime *rt)
{
	sdk_kernel *k = &rt->k;
	rt->stopping = true;
	sdk_pdp_free(rt->pdp); /* answers the calls waiting for a decision */
	rt->pdp = NULL;
	if (k->def->close && (rt->init_ran || rt->prepared))
		k->def->close(k);
	sdk_caller_free(k->caller);
	/* After the caller (a fetch in flight is dropped), before the server:
	 * the requests waiting for it are answered. */
	sdk_bundle_free(rt->bundle);
	sdk_ports_close(k->ports);
	sdk_server_free(k->server);
	sdk_tracer_free(rt->tracer); /* after the caller: no export calls back */
	if (k->db)
		sqlite3_close(k->db);
	struct event *evs[] = { rt->sigterm, rt->sigint, rt->watchdog, rt->drain,
				rt->storage_watch, rt->join_timer };
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
		if (evs[i])
			event_free(evs[i]);
	free(rt->routes);
	if (k->base)
		event_base_free(k->base);
}

/* After the hand-over: the file the standby opened may have been replaced,
 * deleted or found damaged while it waited (an operator restoring a backup
 * between a stop and a restart). A new process would open what the path
 * names now, so the standby does too instead of serving the old file. */
static void standby_store_recheck(struct runtime *rt)
{
	sdk_kernel *k = &rt->k;
	sdk_err e = { "" };
	if (!rt->storage_failed && atomic_load(&rt->sqlite_report.state) == 0 &&
	    (!k->db || sdk_db_watch_check(&rt->db_watch, k->db, &e) == 0))
		return;
	sdk_info("standby: %s: opening it again", rt->storage_failed ? rt->storage_error
					 : e.msg[0]	     ? e.msg
								     : "damage reported");
	unprepare(rt); /* its connections are to the old file */
	sqlite3_close(k->db);
	k->db = NULL;
	rt->storage_failed = false;
	rt->storage_error[0] = '\0';
	rt->storage_checked_ms = 0; /* the reopened file: /health looks at it first */
	atomic_store(&rt->sqlite_report.state, 0);
}

/* Every connection is closed: SQLite's log lets go of the runtime. */
static void sqlite_log_release(void)
{
	sqlite3_shutdown();
	sqlite3_config(SQLITE_CONFIG_LOG, NULL, NULL);
}

int sdk_kernel_run(const sdk_kernel_def *def, const grace_config *cfg)
{
	struct runtime rt = { 0 };
	sdk_kernel *k = &rt.k;
	k->def = def;
	k->cfg = cfg;
	k->pid = getpid();
	k->kcfg = grace_config_kernel(cfg, def->name);
	if (!k->kcfg) {
		sdk_error("kernel %s is not in the configuration %s", def->name,
			  cfg->path[0] ? cfg->path : "(built-in)");
		return SDK_EXIT_PERMANENT;
	}
	signal(SIGPIPE, SIG_IGN);
	join_take(&rt); /* before anything else: the environment forgets it */
	/* Before the first open, which initialises SQLite (the log cannot be
	 * set after that). */
	sdk_db_no_memstatus();
	if (sqlite3_config(SQLITE_CONFIG_LOG, on_sqlite_log, &rt.sqlite_report) != SQLITE_OK)
		sdk_debug("SQLite's error log is not ours: damage is found at open only");
	k->base = event_base_new();
	if (!k->base)
		return SDK_EXIT_TEMPORARY;
	/* A standby waits here until the kernel it stands in for is dead, with
	 * the kernel's SQLite file open but idle (sdk/standby.h says why that
	 * is safe); the kernel's init and its state come after the word. */
	bool standby = sdk_standby_requested();
	if (standby) {
		/* Its quick_check too runs now, off the recovery path; a kill -9
		 * cannot damage a WAL database, and damage found later is caught
		 * by SQLite's log and the watch like any other. */
		sdk_err err = { "" };
		if (storage_open(&rt, &err) < 0)
			sdk_warn("standby: %s: opened after the hand-over instead", err.msg);
		else if (k->db && !rt.storage_failed && prepare(&rt, &err) < 0) {
			sdk_warn("standby: prepare: %s: done after the hand-over instead", err.msg);
			unprepare(&rt);
		}
	}
	sdk_err err = { "" };
	if (runtime_setup(&rt, &err) < 0) {
		sdk_error("cannot start: %s", err.msg);
		runtime_stop(&rt);
		sqlite_log_release();
		return SDK_EXIT_TEMPORARY;
	}
	int sb = sdk_standby_wait();
	if (sb <= 0) {
		if (sb < 0)
			sdk_error("standby: %s", strerror(-sb));
		runtime_stop(&rt);
		sqlite_log_release();
		return sb == 0 ? SDK_EXIT_OK : SDK_EXIT_TEMPORARY;
	}
	struct timespec word = sdk_mono_now();
	if (standby)
		standby_store_recheck(&rt);

	if (runtime_start(&rt, &err) < 0) {
		sdk_error("cannot start: %s", err.msg);
		bool refused = rt.refused;
		runtime_stop(&rt);
		sqlite_log_release();
		return refused ? SDK_EXIT_PERMANENT : SDK_EXIT_TEMPORARY;
	}
	rt.sigterm = evsignal_new(k->base, SIGTERM, on_stop_signal, &rt);
	rt.sigint = evsignal_new(k->base, SIGINT, on_stop_signal, &rt);
	rt.drain = evtimer_new(k->base, on_drain_tick, &rt);
	evsignal_add(rt.sigterm, NULL);
	evsignal_add(rt.sigint, NULL);
	if (!rt.storage_failed) {
		struct timeval every = sdk_ms_tv(STORAGE_WATCH_MS);
		rt.storage_watch = event_new(k->base, -1, EV_PERSIST, on_storage_watch, &rt);
		if (rt.storage_watch)
			event_add(rt.storage_watch, &every);
	}

	uint64_t wd = sdk_watchdog_usec();
	if (wd) {
		/* Twice per interval, as sd_watchdog_enabled(3) advises. */
		uint64_t half = wd / 2;
		rt.watchdog_every = (struct timeval){ .tv_sec = (time_t)(half / 1000000),
						      .tv_usec = (suseconds_t)(half % 1000000) };
		rt.watchdog = event_new(k->base, -1, EV_PERSIST, on_watchdog, &rt);
		event_add(rt.watchdog, &rt.watchdog_every);
	}
	sdk_notify("READY=1");
	if (standby) /* the part of a crash-to-answer that is the kernel's */
		sdk_info("ready: took over %.2f ms after the hand-over", sdk_ms_since(&word));
	else
		sdk_info("ready");
	join_start(&rt);
	event_base_dispatch(k->base);
	runtime_stop(&rt);
	sqlite_log_release();
	sdk_info("stopped");
	return SDK_EXIT_OK;
}
