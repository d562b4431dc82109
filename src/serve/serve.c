#include "serve/serve.h"
#include "serve/schema.h"
#include "sdk/tracer.h"
#include "sdk/clock.h"

#include "serve/api/api.h"
#include "serve/govern/govern.h"
#include "serve/api/dashboard.h"
#include "serve/api/decide.h"
#include "serve/directory.h"
#include "serve/backup/schedule.h"
#include "serve/healer/advise.h"
#include "serve/healer/learn.h"
#include "serve/healer/ports.h"
#include "serve/logfile.h"
#include "serve/reload/reload.h"
#include "serve/supervisor/attest.h"
#include "sdk/db.h"
#include "sdk/listen.h"
#include "sdk/log.h"
#include "sdk/notify.h"
#include "sdk/token.h"

#include <errno.h>
#include <sodium.h>
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

#define STATUS_MAX 400

struct serve {
	api_ctx api;
	char token[SDK_TOKEN_LEN + 1];
	/* The main process's attestation (random, in memory only) and its
	 * SHA-256, which the trust kernel is given at spawn (docs/trust.md). */
	char main_attestation[2 * crypto_hash_sha256_BYTES + 1];
	char main_hash[2 * crypto_hash_sha256_BYTES + 1];
	sqlite3 *db; /* DATA_DIR/grace.db: guardian events, incidents, moved ports */
	directory *dir; /* DATA_DIR/ports.json, for the kernels' call path */
	sdk_route *routes; /* every API route family's, in one table */
	size_t n_routes;
	struct event *sigterm, *sigint, *sighup, *deadline, *watchdog;
	sdk_tracer *tracer; /* Grace tracing itself; NULL: not (sdk/tracer.h) */
	struct timespec t0;
	bool notified_ready, stopping;
	char status[STATUS_MAX]; /* the last STATUS= told to systemd */
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

/* STATUS= for systemd: how many kernels are ready and which are not, told
 * again whenever it changes. `prefix` goes before it ("READY=1\n"). */
static void notify_status(struct serve *s, const char *prefix)
{
	char text[STATUS_MAX], names[STATUS_MAX - 100] = ""; /* room for the counts */
	size_t ready = 0, total = 0, used = 0;
	for (size_t i = 0; i < sup_count(s->api.sup); i++) {
		const sup_kernel *k = sup_at(s->api.sup, i);
		if (!k->cfg->enabled)
			continue;
		total++;
		if (k->state == SUP_READY) {
			ready++;
			continue;
		}
		if (used == SIZE_MAX)
			continue; /* already cut short */
		int n = snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "",
				 k->cfg->name);
		if (n > 0 && used + (size_t)n < sizeof names - 4) {
			used += (size_t)n;
		} else {
			snprintf(names + used, sizeof names - used, "...");
			used = SIZE_MAX;
		}
	}
	if (ready == total)
		snprintf(text, sizeof text, "all kernels ready (%zu of %zu)", ready, total);
	else
		snprintf(text, sizeof text, "degraded: %zu of %zu kernels ready; not ready: %s", ready,
			 total, names);
	if (!prefix[0] && !strcmp(text, s->status))
		return;
	snprintf(s->status, sizeof s->status, "%s", text);
	char msg[STATUS_MAX + 32];
	snprintf(msg, sizeof msg, "%sSTATUS=%s", prefix, text);
	sdk_notify(msg);
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
		notify_status(s, "READY=1\n");
		sdk_info("%s in %.1f ms", sup_all_ready(s->api.sup) ? "all kernels ready"
								       : "kernels settled, some not ready",
			 sdk_ms_since(&s->t0));
	} else if (s->notified_ready) {
		notify_status(s, ""); /* kept current: systemctl status shows it */
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
	api_dashboard_on_change(&s->api, c);
	rl_on_change(s->api.rl, c);
	api_user_roles_on_change(&s->api, c);
	if (c->to == SUP_READY && !strcmp(c->k->cfg->name, "trust"))
		sup_attest_kick();
	check_settled(s);
}

/* SIGHUP: the configuration file read again (serve/reload/reload.h). */
static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	struct serve *s = arg;
	if (s->stopping || !s->api.rl)
		return;
	json_t *status = NULL;
	sdk_err err = { "" };
	if (rl_reload(s->api.rl, "SIGHUP", &status, &err) < 0)
		sdk_warn("SIGHUP: %s", err.msg);
	json_decref(status);
}

static void on_unhealthy(sup_kernel *k, const char *reason, void *arg)
{
	struct serve *s = arg;
	hl_request hr = { .issue = -1, .trigger = "guardian" };
	(void)reason;
	hl_heal(s->api.hl, k, &hr, NULL, NULL, NULL);
}

/* The guardian's health states go to the bus (grace.guardian.NAME.state):
 * the trust kernel counts failing probes against a kernel's score. */
static void on_health_change(sup_kernel *k, const char *from, const char *to, const char *reason,
			     void *arg)
{
	struct serve *s = arg;
	char subject[96];
	snprintf(subject, sizeof subject, "grace.guardian.%s.state", k->cfg->name);
	ob_publish(s->api.ob, subject,
		   json_pack("{s:s, s:s, s:s, s:s, s:I}", "kernel", k->cfg->name, "from", from, "to",
			     to, "reason", reason, "ts_ms", (json_int_t)sdk_wall_ms()));
}

/* A kernel process was spawned with a join credential: registered with
 * the trust kernel in the background (serve/supervisor/attest.h). */
static void on_kernel_spawned(sup_kernel *k, pid_t pid, const char *hash_hex, void *arg)
{
	struct serve *s = arg;
	sup_attest_register(gw_caller(s->api.gw), s->api.cfg, k->cfg->name, pid, hash_hex);
}

/* The main process's identity (docs/trust.md): an attestation of 32
 * random bytes that only this process holds, whose hash each kernel is
 * handed at spawn, so the trust kernel tells the main process from a
 * kernel that holds the internal token; and, with a trust kernel
 * configured, SVIDs on every call it makes (every caller made from now on). */
static void main_identity(const grace_config *cfg, char *attestation, char *hash)
{
	unsigned char raw[crypto_hash_sha256_BYTES], h[crypto_hash_sha256_BYTES];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2hex(attestation, 2 * sizeof raw + 1, raw, sizeof raw);
	sodium_memzero(raw, sizeof raw);
	crypto_hash_sha256(h, (const unsigned char *)attestation, 2 * sizeof raw);
	sodium_bin2hex(hash, 2 * sizeof h + 1, h, sizeof h);
	unsigned ttl = cfg->trust.svid_ttl_s < cfg->trust.jwt_ttl_max_s ? cfg->trust.svid_ttl_s
									: cfg->trust.jwt_ttl_max_s;
	sdk_call_identity(attestation, grace_config_kernel(cfg, "trust") ? cfg->trust.domain : "",
			  ttl);
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
	api_dashboard_close(&s->api); /* the live feeds end, so the drain can */
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

static int serve_run(grace_config *cfg, const sigset_t *run_mask);

int grace_serve(grace_config *cfg)
{
	/* A SIGTERM during start-up waits (blocked) until the loop can take it,
	 * rather than killing us half-built; SIGHUP's default would end us too.
	 * First thing: threads made meanwhile (the log copier, the pools)
	 * inherit the mask, so the signal always comes to this thread. */
	sigset_t stop_signals, run_mask;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop_signals, &run_mask);
	/* Before anything opens a database (the backup check may): a failed
	 * statement's span says so (sdk/db.h). */
	sdk_db_no_memstatus();
	if (sdk_db_log_install() < 0)
		sdk_debug("SQLite started before its log was set: failed statements' spans are not errors");
	sdk_err bks_err;
	if (bks_check(&cfg->backup, &bks_err) < 0) {
		sdk_error("%s", bks_err.msg);
		return 2; /* the configuration's fault, as a load error is */
	}
	signal(SIGPIPE, SIG_IGN);
	if (mkdir_p(cfg->data_dir) < 0) {
		sdk_error("cannot create data directory %s: %s", cfg->data_dir, strerror(errno));
		return 1;
	}
	/* From here, our lines and every kernel's go to DATA_DIR/log/ too. */
	sdk_err lerr = { "" };
	logfile *lf = lf_start(cfg->data_dir, cfg->log_file_bytes, cfg->log_files, &lerr);
	if (!lf && lerr.msg[0])
		sdk_warn("no log files (standard error only): %s", lerr.msg);
	int rc = serve_run(cfg, &run_mask);
	lf_stop(lf); /* every kernel has exited: their lines are in */
	return rc;
}

/* run_mask: the signal mask to take once the loop handles the stop signals. */
static int serve_run(grace_config *cfg, const sigset_t *run_mask)
{
	struct serve s = { 0 };
	clock_gettime(CLOCK_MONOTONIC, &s.t0);
	s.api.cfg = cfg;

	char exe[PATH_MAX];
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
	sdk_err serr = { "" };
	/* One start, one token; several nodes share theirs (nodes.h). */
	int trc = cfg->nodes.n ? nodes_token(cfg, s.token, &serr) : sdk_token_create(cfg, s.token);
	if (trc < 0) {
		sdk_error("cannot write the internal token: %s",
			  serr.msg[0] ? serr.msg : strerror(-trc));
		close(api_fd);
		return 1;
	}
	/* Before anything opens them: a file from a newer Grace is refused
	 * here, with the reason, and nothing else starts. */
	sdk_err merr = { "" };
	if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
		sdk_error("cannot create %s: %s", cfg->data_dir, strerror(errno));
		close(api_fd);
		return 1;
	}
	if (schema_refuse_newer_main(cfg->data_dir, &merr) < 0) {
		sdk_error("cannot start: %s", merr.msg);
		close(api_fd);
		return 1;
	}
	if (sdk_db_open(cfg->data_dir, "grace", &s.db, &merr) < 0) {
		sdk_error("cannot open the main database: %s", merr.msg);
		close(api_fd);
		return 1;
	}
	if (schema_migrate_main(cfg->data_dir, &merr) < 0) {
		sdk_error("cannot start: %s", merr.msg);
		close(api_fd);
		sqlite3_close(s.db);
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
	main_identity(cfg, s.main_attestation, s.main_hash);
	sup_opts so = { .cfg = cfg,
			.self_exe = exe,
			.on_change = on_kernel_change,
			.arg = &s,
			.on_spawned = on_kernel_spawned,
			.main_hash = s.main_hash };
	ob_opts oo = { .base = s.api.base, .sup = NULL, .db = s.db, .token = s.token,
		       .audit = &cfg->audit };
	/* Each part in order; the first that cannot start is named. */
	const char *failed = NULL;
	serr.msg[0] = '\0';
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
	else if ((oo.sup = s.api.sup, !(s.api.ob = ob_new(&oo, &serr))))
		failed = "the outbox";
	else if (!(s.api.auth = auth_new(s.api.base, cfg, s.db)))
		failed = "authentication";
	else if (!(s.api.chat = chat_new(s.api.base, cfg, s.api.sup, s.token, &serr)))
		failed = "chat";
	else if (!(s.routes = api_routes_build(&s.n_routes)))
		failed = "the route table";
	else if (!(s.api.nodes = nodes_new(&(nodes_opts){ .base = s.api.base,
							  .cfg = cfg,
							  .sup = s.api.sup,
							  .caller = gw_caller(s.api.gw),
							  .main_hash = s.main_hash },
					   &serr)) &&
		 serr.msg[0])
		failed = "the node link";
	if (failed) {
		sdk_error("cannot start %s%s%s", failed, serr.msg[0] ? ": " : "", serr.msg);
		close(api_fd);
		goto out;
	}
	gw_set_delegation_key(s.api.gw, s.api.auth->deleg_key);
	/* A trust kernel run by systemd was given no hash of ours: the main
	 * process presents its enrolled credential instead (attest.h). */
	sup_attest_main(gw_caller(s.api.gw), cfg, s.main_hash);
	s.api.mem = api_memory_open(cfg, s.api.base); /* NULL: /memory answers 503 */
	user_data_new(&s.api, s.token); /* NULL (logged): deleted users' data stays */
	user_roles_new(&s.api, s.token); /* NULL (logged): roles do not change */
	s.api.gov = gv_new(&s.api, s.token); /* NULL without a governance kernel */
	if (!(s.api.backup = api_backup_open(&s.api)))
		sdk_warn("cannot start the backup worker: /backup answers 503");
	if (!(s.api.bks = bks_new(&s.api, exe, &serr)) && serr.msg[0]) {
		sdk_error("cannot start scheduled backups: %s", serr.msg);
		close(api_fd);
		goto out;
	}
	if (!(s.api.rl = rl_new(s.api.base, cfg, s.api.sup)))
		sdk_warn("cannot read %s again: SIGHUP and /reload do nothing", cfg->path);
	/* Grace traces itself (sdk/tracer.h): every request on :8000 is a
	 * span, a new trace unless it brings a valid traceparent. */
	if (grace_config_self_trace(cfg) && (s.tracer = sdk_tracer_new(s.api.base,
								       gw_caller(s.api.gw), "grace"))) {
		sdk_tracer_set_every_request(s.tracer, true);
		sdk_tracer_set_sample_percent(s.tracer, cfg->telemetry.sample_percent);
		sdk_tracer_set_sample_rate_max(s.tracer, cfg->telemetry.sample_rate_max);
		sdk_tracer_set_limits(s.tracer, cfg->telemetry.request_items_max,
				      grace_config_kernel(cfg, "telemetry")->max_body_bytes);
		gw_set_tracer(s.api.gw, s.tracer);
		s.api.tracer = s.tracer;
	}
	sdk_server_opts ho = { .component = "grace",
			       .routes = s.routes,
			       .n_routes = s.n_routes,
			       .ctx = &s.api,
			       .limits = cfg->limits,
			       .metrics_extra = api_metrics_extra,
			       .on_reply = api_on_reply,
			       .authorize = api_audit_authorize,
			       .body_limit = api_body_limit,
			       .trace_hooks = s.tracer ? &sdk_tracer_http_hooks : NULL,
			       .trace_ctx = s.tracer };
	s.api.server = sdk_server_new(s.api.base, &ho);
	if (!s.api.server || sdk_server_listen(s.api.server, api_fd) < 0) {
		if (!s.api.server)
			close(api_fd);
		sdk_error("cannot start the API server on 127.0.0.1:%d", api_port);
		goto out;
	}
	serr.msg[0] = '\0';
	if (!(s.api.door = door_new(s.api.base, cfg, s.api.server, &serr)) && serr.msg[0]) {
		sdk_error("cannot start the TLS door: %s", serr.msg);
		goto out;
	}
	s.sigterm = evsignal_new(s.api.base, SIGTERM, on_stop_signal, &s);
	s.sigint = evsignal_new(s.api.base, SIGINT, on_stop_signal, &s);
	s.deadline = evtimer_new(s.api.base, on_deadline, &s);
	s.sighup = evsignal_new(s.api.base, SIGHUP, on_reload_signal, &s);
	evsignal_add(s.sigterm, NULL);
	evsignal_add(s.sigint, NULL);
	evsignal_add(s.sighup, NULL);
	pthread_sigmask(SIG_SETMASK, run_mask, NULL);
	uint64_t wd = sdk_watchdog_usec();
	if (wd) {
		struct timeval tv = { (time_t)(wd / 2 / 1000000), (suseconds_t)(wd / 2 % 1000000) };
		s.watchdog = event_new(s.api.base, -1, EV_PERSIST, on_self_watchdog, &s);
		event_add(s.watchdog, &tv);
	}

	sdk_info("grace %s: API on 127.0.0.1:%d, %zu kernels, data in %s", GRACE_VERSION,
		 api_port, cfg->n_kernels, cfg->data_dir);
	gd_set_healer(s.api.gd, on_unhealthy, &s);
	gd_set_observer(s.api.gd, on_health_change, &s);
	hl_set_observer(s.api.hl, on_incident, &s);
	hl_learn_set_timeout(hl_learner(s.api.hl), cfg->learning.decide_timeout_ms);
	hl_advise_set_timeout(hl_adviser(s.api.hl), cfg->self_healing.advice_timeout_ms);
	hl_ports_apply(s.db, s.api.sup);
	dir_publish(s.dir); /* before any kernel starts: they read it */
	/* The relays before the kernels: a kernel's first calls to another
	 * node's kernels (the trust bundle) find them there. */
	nodes_start(s.api.nodes);
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
	bks_free(s.api.bks);            /* and a scheduled one (it audits: before the outbox) */
	user_data_free(s.api.ud); /* after the memory service answered its purges */
	user_roles_free(s.api.ur);
	api_decide_free(&s.api); /* answers requests waiting for a decision */
	gv_free(s.api.gov); /* after the healer: a clear_port it ran has reported */
	api_dashboard_close(&s.api); /* ends the live feeds still open */
	door_free(s.api.door); /* its connections' API ends go with the server */
	sdk_server_free(s.api.server);
	ob_free(s.api.ob);
	gd_free(s.api.gd);
	nodes_free(s.api.nodes); /* before the gateway's caller its calls use */
	gw_free(s.api.gw);
	sdk_tracer_free(s.tracer); /* after the gateway's caller: no export calls back */
	sup_free(s.api.sup); /* SIGKILLs and reaps whatever outlived the deadline */
	dir_free(s.dir);
	free(s.routes);
	rl_free(s.api.rl);
	struct event *evs[] = { s.sigterm, s.sigint, s.sighup, s.deadline, s.watchdog };
	for (size_t i = 0; i < sizeof evs / sizeof *evs; i++)
		if (evs[i])
			event_free(evs[i]);
	event_base_free(s.api.base);
	sqlite3_close(s.db);
	sdk_info("stopped");
	return rc;
}
