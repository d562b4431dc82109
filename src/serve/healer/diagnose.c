#include "serve/healer/diagnose.h"
#include "sdk/clock.h"

#include "sdk/proc.h"
#include "serve/guardian/guardian.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 1000
#define HOLDERS_MAX 16

static const char *const issue_names[HL_ISSUE_COUNT] = {
	"healthy",
	"port_not_listening",
	"process_dead",
	"process_hung",
	"port_held_by_stale_kernel",
	"port_held_by_foreign_process",
	"slow_response",
	"storage_failed",
};

const char *hl_issue_name(enum hl_issue i)
{
	return (unsigned)i < HL_ISSUE_COUNT ? issue_names[i] : "unknown";
}

int hl_issue_parse(const char *s)
{
	for (int i = 0; i < HL_ISSUE_COUNT; i++)
		if (!strcmp(s, issue_names[i]))
			return i;
	return -1;
}

bool hl_is_grace_kernel_cmdline(const char *cmdline, const char *name)
{
	/* argv[0] ends in "grace", then "kernel", then the name. */
	const char *sp = strchr(cmdline, ' ');
	if (!sp)
		return false;
	size_t n0 = (size_t)(sp - cmdline);
	if (n0 < 5 || strncmp(sp - 5, "grace", 5) || (n0 > 5 && sp[-6] != '/'))
		return false;
	const char *rest = sp + 1;
	if (strncmp(rest, "kernel ", 7))
		return false;
	rest += 7;
	size_t nl = strlen(name);
	if (strncmp(rest, name, nl))
		return false;
	rest += nl;
	if (!strncmp(rest, "_kernel", 7))
		rest += 7;
	return *rest == '\0' || *rest == ' ';
}

enum hl_issue hl_classify(const hl_findings *f, double slow_ms)
{
	if (f->holder_kind == HL_HOLDER_STALE_KERNEL)
		return HL_PORT_HELD_BY_STALE_KERNEL;
	if (f->holder_kind == HL_HOLDER_FOREIGN)
		return HL_PORT_HELD_BY_FOREIGN_PROCESS;
	if (!f->listening)
		return HL_PORT_NOT_LISTENING;
	if (f->pid <= 0 || f->proc_state == '\0' || f->proc_state == 'Z' || f->proc_state == 'X')
		return HL_PROCESS_DEAD;
	/* It answers and says its database failed: not hung, and a restart
	 * would not help. */
	if (f->storage_failed)
		return HL_STORAGE_FAILED;
	if (f->proc_state == 'T' || f->proc_state == 't' || f->health_status != 200)
		return HL_PROCESS_HUNG;
	if (f->health_ms > slow_ms)
		return HL_SLOW_RESPONSE;
	return HL_HEALTHY;
}

struct hl_diag {
	hl_diag **running; /* the caller's pointer to this diagnosis */
	struct event_base *base;
	gateway *gw;
	sup_kernel *k;
	hl_diagnose_cb cb;
	void *arg;
	hl_findings f;
	json_t *health_answer;
	int fd;
	struct event *connect_ev;
	struct timespec t0;
};

static const char *proc_state_name(char st)
{
	switch (st) {
	case 'R': return "running";
	case 'S': return "sleeping";
	case 'D': return "disk_sleep";
	case 'T': case 't': return "stopped";
	case 'Z': return "zombie";
	case '\0': return "dead";
	default: return "other";
	}
}

static const char *holder_kind_name(enum hl_holder_kind k)
{
	static const char *const names[] = { "none", "ours", "stale_kernel", "foreign" };
	return names[k];
}

static json_t *num_or_null(double v) { return v >= 0 ? json_real(v) : json_null(); }

static unsigned long socket_inode(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

/* Reads everything /proc can tell without waiting. */
static void facts_from_proc(hl_diag *d)
{
	hl_findings *f = &d->f;
	sup_kernel *k = d->k;
	f->port = k->port;
	f->pid = k->pid;
	f->connect_ms = f->health_ms = -1;
	/* Another node's kernel: its pid is there, and what its node last
	 * reported is all that is known of the process. */
	if (sup_kernel_remote(k))
		f->proc_state = k->pid > 0 && (k->state == SUP_READY || k->state == SUP_STARTING)
					? 'R'
					: '\0';
	else if (k->pid > 0 && proc_stat(k->pid, &f->proc_state, NULL) < 0)
		f->proc_state = '\0';

	proc_listen_info li;
	if (proc_listen_info_get(k->port, &li) == 0) {
		f->listening = true;
		f->accept_queue = li.accept_queue;
		/* Our own bound socket is the listener: no need to walk every
		 * process's descriptors (slow on a busy machine, and on the loop). */
		if (k->fd >= 0 && socket_inode(k->fd) == li.inode) {
			f->holder_kind = HL_HOLDER_OURS;
			return;
		}
		/* An active socket unit means systemd itself bound the port for
		 * the kernel: its listener is the unit's, whichever process
		 * (systemd, the main process) the descriptor shows in. */
		if (sup_kernel_by_systemd(k) && k->socket_active) {
			f->holder_kind = HL_HOLDER_OURS;
			return;
		}
		pid_t pids[HOLDERS_MAX];
		size_t n = proc_socket_holders(li.inode, pids, HOLDERS_MAX);
		pid_t self = getpid();
		f->holder_kind = HL_HOLDER_FOREIGN;
		for (size_t i = 0; i < n; i++)
			if (pids[i] == self || (k->pid > 0 && pids[i] == k->pid))
				f->holder_kind = HL_HOLDER_OURS;
		if (f->holder_kind != HL_HOLDER_OURS && n > 0) {
			f->holder_pid = pids[0];
			proc_cmdline(f->holder_pid, f->holder_cmdline, sizeof f->holder_cmdline);
			proc_stat(f->holder_pid, NULL, &f->holder_start_ticks);
			if (hl_is_grace_kernel_cmdline(f->holder_cmdline, k->cfg->name))
				f->holder_kind = HL_HOLDER_STALE_KERNEL;
		} else if (n == 0 && f->holder_kind != HL_HOLDER_OURS) {
			/* Listening, but by a process we may not look into. */
			f->holder_kind = HL_HOLDER_FOREIGN;
		}
	}
}

static void diag_finish(hl_diag *d)
{
	hl_findings *f = &d->f;
	sup_kernel *k = d->k;
	double slow_ms = k->cfg->health_timeout_ms / 2.0;
	f->issue = hl_classify(f, slow_ms);

	uint64_t rss = 0, max_fds = 0;
	unsigned fds = 0;
	bool alive = f->pid > 0 && f->proc_state && f->proc_state != 'Z';
	if (alive && !sup_kernel_remote(k)) {
		proc_rss_bytes(f->pid, &rss);
		proc_open_fds(f->pid, &fds);
		proc_max_fds(f->pid, &max_fds);
	}
	json_t *holder = f->holder_kind == HL_HOLDER_NONE
				 ? json_null()
				 : json_pack("{s:s, s:o, s:s, s:b}", "kind", holder_kind_name(f->holder_kind),
					     "pid", f->holder_pid ? json_integer(f->holder_pid) : json_null(),
					     "cmdline", f->holder_cmdline, "ours",
					     f->holder_kind == HL_HOLDER_OURS);
	json_t *process = json_pack("{s:o, s:b, s:s, s:o, s:o, s:o}", "pid",
				    f->pid > 0 ? json_integer(f->pid) : json_null(), "alive", alive,
				    "state", proc_state_name(f->proc_state), "rss_bytes",
				    alive ? json_integer((json_int_t)rss) : json_null(), "open_fds",
				    alive ? json_integer(fds) : json_null(), "max_fds",
				    alive ? json_integer((json_int_t)max_fds) : json_null());
	uint64_t ov = 0;
	json_t *overflows = NULL;
	if (f->listening)
		overflows = proc_listen_overflows(&ov) == 0 ? json_integer((json_int_t)ov) : json_null();
	json_t *health = json_pack("{s:i, s:o, s:o, s:s*}", "status", f->health_status, "latency_ms",
				   num_or_null(f->health_ms), "answer",
				   d->health_answer ? json_incref(d->health_answer) : json_null(),
				   "error", f->health_error[0] ? f->health_error : NULL);
	f->json = json_pack("{s:s, s:s, s:i, s:s, s:b, s:o, s:o, s:o, s:o, s:o, s:f}", "component",
			    k->cfg->name, "issue_type", hl_issue_name(f->issue), "port", f->port,
			    "supervisor_state", sup_state_name(k->state), "listening", f->listening,
			    "port_holder", holder, "accept_queue",
			    f->listening ? json_pack("{s:i, s:o}", "length", (int)f->accept_queue,
						     "listen_overflows_system_wide", overflows)
					 : json_null(),
			    "process", process, "connect_ms", num_or_null(f->connect_ms), "health",
			    health, "slow_threshold_ms", slow_ms);
	*d->running = NULL;
	d->cb(f, d->arg);
	json_decref(f->json);
	json_decref(d->health_answer);
	free(d);
}

static void on_health(int status, const char *body, size_t len, double latency_ms,
		      const char *error, void *arg)
{
	hl_diag *d = arg;
	d->f.health_status = status;
	d->f.health_ms = latency_ms;
	if (error)
		snprintf(d->f.health_error, sizeof d->f.health_error, "%s", error);
	if (body)
		d->health_answer = json_loadb(body, len, 0, NULL);
	sdk_err why;
	d->f.storage_failed = gd_answer_storage_failed(status, body, len, &why);
	if (d->f.storage_failed)
		snprintf(d->f.storage_error, sizeof d->f.storage_error, "%s", why.msg);
	diag_finish(d);
}

static void probe_health(hl_diag *d)
{
	/* Probing a port that is not ours would talk to a stranger. */
	if (!d->f.listening || d->f.holder_kind != HL_HOLDER_OURS || d->k->pid <= 0 ||
	    gw_probe(d->gw, d->k->port, "/health", d->k->cfg->health_timeout_ms, on_health, d) < 0) {
		snprintf(d->f.health_error, sizeof d->f.health_error, "not probed");
		diag_finish(d);
	}
}

static void on_connect(evutil_socket_t fd, short what, void *arg)
{
	hl_diag *d = arg;
	int err = ETIMEDOUT;
	if (what & EV_WRITE) {
		socklen_t len = sizeof err;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
	}
	if (err == 0)
		d->f.connect_ms = sdk_ms_since(&d->t0);
	event_free(d->connect_ev);
	d->connect_ev = NULL;
	close(d->fd);
	probe_health(d);
}

static void measure_connect(hl_diag *d)
{
	if (!d->f.listening) {
		probe_health(d);
		return;
	}
	d->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)d->k->port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	clock_gettime(CLOCK_MONOTONIC, &d->t0);
	if (d->fd < 0 ||
	    (connect(d->fd, (struct sockaddr *)&sin, sizeof sin) < 0 && errno != EINPROGRESS)) {
		if (d->fd >= 0)
			close(d->fd);
		probe_health(d);
		return;
	}
	d->connect_ev = event_new(d->base, d->fd, EV_WRITE, on_connect, d);
	struct timeval tv = { CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000 };
	if (!d->connect_ev || event_add(d->connect_ev, &tv) < 0) {
		if (d->connect_ev)
			event_free(d->connect_ev);
		d->connect_ev = NULL;
		close(d->fd);
		probe_health(d);
	}
}

void hl_diag_discard(hl_diag *d)
{
	if (!d)
		return;
	*d->running = NULL;
	if (d->connect_ev) {
		event_free(d->connect_ev);
		close(d->fd);
	}
	json_decref(d->health_answer);
	free(d);
}

int hl_diagnose(struct event_base *base, gateway *gw, sup_kernel *k, hl_diagnose_cb cb,
		void *arg, hl_diag **running)
{
	hl_diag *d = calloc(1, sizeof *d);
	if (!d)
		return -1;
	*d = (hl_diag){ .running = running, .base = base, .gw = gw, .k = k, .cb = cb, .arg = arg,
			.fd = -1 };
	*running = d;
	facts_from_proc(d);
	measure_connect(d);
	return 0;
}
