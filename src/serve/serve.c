#include "serve/serve.h"
#include "sdk/clock.h"

#include "serve/api/api.h"
#include "serve/directory.h"
#include "serve/healer/ports.h"
#include "sdk/db.h"
#include "sdk/listen.h"
#include "sdk/log.h"
#include "sdk/notify.h"
#include "sdk/token.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SHUTDOWN_SLACK_MS 2000

struct serve {
	api_ctx api;
	char token[SDK_TOKEN_LEN + 1];
	sqlite3 *db; /* DATA_DIR/grace.db: guardian events, incidents, moved ports */
	directory *dir; /* DATA_DIR/ports.json, for the kernels' call path */
	sdk_route *routes; /* every API route family's, in one table */
	size_t n_routes;
	struct event *sigterm, *sigint, *deadline, *watchdog;
	struct timespec t0;
	bool notified_ready, stopping;
};

/* Every state change goes to the bus (grace.kernel.NAME.state) and the
 * audit trail, through the outbox: never waited for. `c` is the change as it
 * was when it happened. */
static void announce_state(struct serve *s, const sup_change *c)
{
	const char *from = sup_state_name(c->from), *to = sup_state_name(c->to);
	if (!strcmp(from, to))
		return; /* stopping, now with a start to follow: the same to clients */
	const char *name = c->k->cfg->name;
	char subject[96];
	snprintf(subject, sizeof subject, "grace.kernel.%s.state", name);
	json_t *ev = json_pack("{s:s, s:s, s:s, s:i, s:o, s:s, s:I}", "kernel", name, "from", from,
			       "to", to, "port", c->port,
			       "pid", c->pid > 0 ? json_integer(c->pid) : json_null(), "last_exit",
			       c->last_exit, "ts_ms", (json_int_t)c->at_ms);
	char resource[64];
	snprintf(resource, sizeof resource, "kernel/%s", name);
	ob_audit_system(s->api.ob, "kernel.state", resource, to, json_incref(ev));
	ob_publish(s->api.ob, subject, ev);
}

static void on_incident(json_t *incident, void *arg)
{
	struct serve *s = arg;
	char resource[64];
	snprintf(resource, sizeof resource, "kernel/%s",
		 json_string_value(json_object_get(incident, "component")));
	const char *outcome = json_string_value(json_object_get(incident, "outcome"));
	ob_audit_system(s->api.ob, "heal", resource, outcome ? outcome : "unknown",
			json_deep_copy(incident));
	ob_publish(s->api.ob, "grace.healer.incident", json_deep_copy(incident));
}

/* After every change of a kernel's state, and once at launch: systemd's
 * readiness, and the end of the loop once every kernel is down. */
static void check_settled(struct serve *s)
{
	if (s->stopping) {
		if (sup_all_down(s->api.sup))
			event_base_loopexit(s->api.base, NULL);
		return;
	}
	/* Ready for systemd once nothing is still coming up: a kernel whose port
	 * is taken or that keeps crashing must not hold the whole service back. */
	if (!s->notified_ready && sup_all_settled(s->api.sup)) {
		s->notified_ready = true;
		char status[128];
		snprintf(status, sizeof status, "READY=1\nSTATUS=%s",
			 sup_all_ready(s->api.sup) ? "all kernels ready" : "degraded");
		sdk_notify(status);
		sdk_info("%s in %.1f ms", sup_all_ready(s->api.sup) ? "all kernels ready"
								       : "kernels settled, some not ready",
			 sdk_ms_since(&s->t0));
	}
}

/* The supervisor calls this from the event loop, after each transition and
 * in order; the observers see the kernel as it is now and learn where it
 * came from. */
static void on_kernel_change(const sup_change *c, void *arg)
{
	struct serve *s = arg;
	dir_publish(s->dir);
	gd_on_sup_change(s->api.gd, c->k, c->from);
	hl_on_sup_change(s->api.hl, c->k, c->from);
	announce_state(s, c);
	check_settled(s);
}

static void on_unhealthy(sup_kernel *k, const char *reason, void *arg)
{
	struct serve *s = arg;
	hl_request hr = { .issue = -1, .trigger = "guardian" };
	(void)reason;
	hl_heal(s->api.hl, k, &hr, NULL, NULL, NULL);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct serve *s = arg;
	if (s->stopping)
		return;
	s->stopping = true;
	sdk_info("signal %d: stopping every kernel", (int)sig);
	sdk_notify("STOPPING=1");
	sdk_server_stop_accepting(s->api.server);
	chat_stop(s->api.chat); /* answers waiting on a model: from their sources, now */
	sup_shutdown(s->api.sup);
	unsigned longest = 0;
	for (size_t i = 0; i < s->api.cfg->n_kernels; i++)
		if (s->api.cfg->kernels[i].stop_timeout_ms > longest)
			longest = s->api.cfg->kernels[i].stop_timeout_ms;
	/* Past every stop timeout and the SIGKILLs they lead to, leave anyway. */
	uint64_t ms = (uint64_t)longest + SHUTDOWN_SLACK_MS;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(s->deadline, &tv);
	if (sup_all_down(s->api.sup))
		event_base_loopexit(s->api.base, NULL);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct serve *s = arg;
	sdk_warn("kernels still running after the stop timeout; killing them");
	event_base_loopexit(s->api.base, NULL);
}

static void on_self_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	sdk_notify("WATCHDOG=1");
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static int self_exe(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

int grace_serve(const grace_config *cfg)
{
	struct serve s = { 0 };
	clock_gettime(CLOCK_MONOTONIC, &s.t0);
	/* A SIGTERM during start-up waits (blocked) until the loop can take it,
	 * rather than killing us half-built. Threads made meanwhile inherit the
	 * mask, so the signal always comes to this thread. */
	sigset_t stop_signals, old_mask;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
	s.api.cfg = cfg;
	signal(SIGPIPE, SIG_IGN);

	char exe[PATH_MAX];
	if (mkdir_p(cfg->data_dir) < 0) {
		sdk_error("cannot create data directory %s: %s", cfg->data_dir, strerror(errno));
		return 1;
	}
	if (self_exe(exe, sizeof exe) < 0) {
		sdk_error("cannot find this program's path: %s", strerror(errno));
		return 1;
	}
	int api_port = cfg->api_port + cfg->port_offset;
	int api_fd = sdk_listen_tcp(api_port);
	if (api_fd < 0) {
		sdk_error("cannot listen on 127.0.0.1:%d: %s", api_port, strerror(-api_fd));
		return 1;
	}

	int rc = 1;
	char err[512];
	int trc = sdk_token_create(cfg, s.token);
	if (trc < 0) {
		sdk_error("cannot write the internal token: %s", strerror(-trc));
		close(api_fd);
		return 1;
	}
	if (sdk_db_open(cfg->data_dir, "grace", &s.db, err, sizeof err) < 0) {
		sdk_error("cannot open the main database: %s", err);
		close(api_fd);
		return 1;
	}
	s.api.base = event_base_new();
	/* Two priorities: 0 for the supervisor's notifications, so observers
	 * run right after the callback that changed a state; 1 for the rest. */
	if (s.api.base && event_base_priority_init(s.api.base, 2) < 0) {
		event_base_free(s.api.base);
		s.api.base = NULL;
	}
	if (!s.api.base) {
		close(api_fd);
		sqlite3_close(s.db);
		return 1;
	}
	sup_opts so = { .cfg = cfg, .self_exe = exe, .on_change = on_kernel_change, .arg = &s };
	sdk_err oerr = { { 0 } };
	ob_opts oo = { .base = s.api.base, .sup = NULL, .db = s.db, .token = s.token,
		       .audit = &cfg->audit };
	/* Each part in order; the first that cannot start is named. */
	const char *failed = NULL;
	err[0] = '\0';
	if (!(s.api.sup = sup_new(s.api.base, &so)))
		failed = "the supervisor";
	else if (!(s.dir = dir_new(cfg, s.api.sup)))
		failed = "the kernel directory";
	else if (!(s.api.gw = gw_new(s.api.base, s.api.sup, s.token)))
		failed = "the gateway";
	else if (!(s.api.gd = gd_new(s.api.base, s.api.sup, s.api.gw, s.db)))
		failed = "the guardian";
	else if (!(s.api.hl = hl_new(s.api.base, s.api.sup, s.api.gw, s.api.gd, s.db)))
		failed = "the healer";
	else if ((oo.sup = s.api.sup, !(s.api.ob = ob_new(&oo, &oerr))))
		failed = "the outbox", snprintf(err, sizeof err, "%s", oerr.msg);
	else if (!(s.api.auth = auth_new(s.api.base, cfg, s.db)))
		failed = "authentication";
	else if (!(s.api.chat = chat_new(s.api.base, cfg, s.api.sup, s.token, err, sizeof err)))
		failed = "chat";
	else if (!(s.routes = api_routes_build(&s.n_routes)))
		failed = "the route table";
	if (failed) {
		sdk_error("cannot start %s%s%s", failed, err[0] ? ": " : "", err);
		close(api_fd);
		goto out;
	}
	s.api.mem = api_memory_open(cfg, s.api.base); /* NULL: /memory answers 503 */
	user_data_new(&s.api, s.token); /* NULL (logged): deleted users' data stays */
	if (!(s.api.backup = api_backup_open(&s.api)))
		sdk_warn("cannot start the backup worker: /backup answers 503");
	sdk_server_opts ho = { .component = "grace",
			       .routes = s.routes,
			       .n_routes = s.n_routes,
			       .ctx = &s.api,
			       .limits = cfg->limits,
			       .metrics_extra = api_metrics_extra,
			       .on_reply = api_on_reply,
			       .authorize = api_audit_authorize };
	s.api.server = sdk_server_new(s.api.base, &ho);
	if (!s.api.server || sdk_server_listen(s.api.server, api_fd) < 0) {
		if (!s.api.server)
			close(api_fd);
		sdk_error("cannot start the API server on 127.0.0.1:%d", api_port);
		goto out;
	}
	s.sigterm = evsignal_new(s.api.base, SIGTERM, on_stop_signal, &s);
	s.sigint = evsignal_new(s.api.base, SIGINT, on_stop_signal, &s);
	s.deadline = evtimer_new(s.api.base, on_deadline, &s);
	evsignal_add(s.sigterm, NULL);
	evsignal_add(s.sigint, NULL);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	uint64_t wd = sdk_watchdog_usec();
	if (wd) {
		struct timeval tv = { (time_t)(wd / 2 / 1000000), (suseconds_t)(wd / 2 % 1000000) };
		s.watchdog = event_new(s.api.base, -1, EV_PERSIST, on_self_watchdog, &s);
		event_add(s.watchdog, &tv);
	}

	sdk_info("grace %s: API on 127.0.0.1:%d, %zu kernels, data in %s", GRACE_VERSION,
		 api_port, cfg->n_kernels, cfg->data_dir);
	gd_set_healer(s.api.gd, on_unhealthy, &s);
	hl_set_observer(s.api.hl, on_incident, &s);
	hl_ports_apply(s.db, s.api.sup);
	dir_publish(s.dir); /* before any kernel starts: they read it */
	sup_start_all(s.api.sup);
	gd_start(s.api.gd);
	check_settled(&s); /* every kernel may have settled already */
	event_base_dispatch(s.api.base);
	rc = 0;
out:
	hl_free(s.api.hl); /* answers heals still running, so before the server */
	auth_free(s.api.auth); /* likewise for password jobs */
	chat_free(s.api.chat); /* and for answers being written */
	api_memory_close(s.api.mem); /* and for memory requests queued */
	api_backup_close(s.api.backup); /* and for a backup being made or sent */
	user_data_free(s.api.ud); /* after the memory service answered its purges */
	sdk_server_free(s.api.server);
	ob_free(s.api.ob);
	gd_free(s.api.gd);
	gw_free(s.api.gw);
	sup_free(s.api.sup); /* SIGKILLs and reaps whatever outlived the deadline */
	dir_free(s.dir);
	free(s.routes);
	struct event *evs[] = { s.sigterm, s.sigint, s.deadline, s.watchdog };
	for (size_t i = 0; i < sizeof evs / sizeof *evs; i++)
		if (evs[i])
			event_free(evs[i]);
	event_base_free(s.api.base);
	sqlite3_close(s.db);
	sdk_info("stopped");
	return rc;
}
