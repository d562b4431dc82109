#include "sdk/pool.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct job {
	sdk_pool_work_fn work;
	sdk_pool_done_fn done;
	void *arg;
	struct job *next;
	bool has_caller;
	char caller[SDK_POOL_CALLER_MAX + 1];
	/* The submitting span's, when there was one (sdk_pool_trace_hooks). */
	const sdk_pool_trace_hooks *th;
	void *trace;
};

/* Set on the loop by the tracer; read on the loop at submit. */
static const sdk_pool_trace_hooks *trace_hooks;

void sdk_pool_set_trace_hooks(const sdk_pool_trace_hooks *hooks) { trace_hooks = hooks; }

/* A caller with jobs queued or running. Only the loop touches these: jobs
 * are counted at submit and uncounted before their done, both on the loop.
 * There are never more entries than jobs, so a linear search is bounded
 * by queue_max. */
struct caller {
	char name[SDK_POOL_CALLER_MAX + 1];
	size_t jobs;
};

/* What the workers remember of a caller, under the mutex, to take turns:
 * the next job is one of the caller with the fewest jobs running, and of
 * those the one served longest ago. A bounded table: the entry of an idle
 * caller served longest ago is reused, which only puts it first in line. */
#define POOL_SERVED_MAX 64
struct served {
	char name[SDK_POOL_CALLER_MAX + 1];
	unsigned running;
	uint64_t last; /* when its last job started, in dequeues */
};

struct sdk_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *todo, *todo_tail, *finished;
	size_t pending, queue_max;
	size_t caller_max; /* 0: no per-caller limit */
	struct caller *callers;
	size_t n_callers, cap_callers;
	struct served served[POOL_SERVED_MAX];
	size_t n_served;
	uint64_t dequeues;
	bool stopping;
	pthread_t *threads;
	unsigned n_threads;
	int wake; /* eventfd, worker -> loop: "something finished" */
	struct event *wake_ev;
};

/* Under the mutex. A job with no caller counts as the caller "". */
static struct served *served_find(sdk_pool *p, const char *name, bool add)
{
	struct served *idle = NULL;
	for (size_t i = 0; i < p->n_served; i++) {
		struct served *s = &p->served[i];
		if (!strncmp(s->name, name, SDK_POOL_CALLER_MAX))
			return s;
		if (!s->running && (!idle || s->last < idle->last))
			idle = s;
	}
	if (!add)
		return NULL;
	struct served *s = p->n_served < POOL_SERVED_MAX ? &p->served[p->n_served++] : idle;
	if (!s)
		return NULL; /* every entry running: more callers than that are not told apart */
	*s = (struct served){ .running = 0, .last = 0 };
	snprintf(s->name, sizeof s->name, "%s", name);
	return s;
}

/* Under the mutex: takes the job to run next out of the queue. One
 * caller's burst does not keep the others waiting behind it; a single
 * caller's jobs (and jobs of no caller) run in order. */
static struct job *job_next(sdk_pool *p)
{
	struct job *best = NULL, *best_prev = NULL, *prev = NULL;
	unsigned best_running = 0;
	uint64_t best_last = 0;
	for (struct job *j = p->todo; j; prev = j, j = j->next) {
		const struct served *s = served_find(p, j->caller, false);
		unsigned running = s ? s->running : 0;
		uint64_t last = s ? s->last : 0;
		if (!best || running < best_running || (running == best_running && last < best_last)) {
			best = j, best_prev = prev;
			best_running = running, best_last = last;
		}
	}
	if (best_prev)
		best_prev->next = best->next;
	else
		p->todo = best->next;
	if (p->todo_tail == best)
		p->todo_tail = best_prev;
	best->next = NULL;
	return best;
}

static void *worker(void *arg)
{
	sdk_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->todo && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stopping)
			break;
		struct job *j = job_next(p);
		struct served *s = served_find(p, j->caller, true);
		if (s) {
			s->running++;
			s->last = ++p->dequeues;
		}
		pthread_mutex_unlock(&p->mu);
		if (j->trace)
			j->th->enter(j->trace);
		j->work(j->arg);
		if (j->trace)
			j->th->leave(j->trace);
		pthread_mutex_lock(&p->mu);
		if (s && !strncmp(s->name, j->caller, SDK_POOL_CALLER_MAX) && s->running)
			s->running--;
		/* Only the first job of a list the loop has not taken yet
		 * wakes it: it takes the whole list (run_finished), so a
		 * second word would wake it for nothing, a system call each
		 * way under load. */
		bool first = !p->finished;
		j->next = p->finished;
		p->finished = j;
		if (first) {
			uint64_t one = 1;
			ssize_t w = write(p->wake, &one, sizeof one);
			(void)w; /* fails only when the counter is full: it says "wake up" already */
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static struct caller *caller_find(const sdk_pool *p, const char *name)
{
	for (size_t i = 0; i < p->n_callers; i++)
		if (!strncmp(p->callers[i].name, name, SDK_POOL_CALLER_MAX))
			return &p->callers[i];
	return NULL;
}

/* A job of this caller is gone: forget the caller with its last job. */
static void caller_release(sdk_pool *p, const char *name)
{
	struct caller *c = caller_find(p, name);
	if (!c)
		return;
	if (--c->jobs == 0)
		*c = p->callers[--p->n_callers];
}

static void job_finish(sdk_pool *p, struct job *j)
{
	p->pending--;
	if (j->has_caller)
		caller_release(p, j->caller);
	const void *resumed = j->trace ? j->th->resume(j->trace) : NULL;
	j->done(j->arg);
	if (j->trace)
		j->th->finish(j->trace, resumed);
	free(j);
}

static void run_finished(sdk_pool *p)
{
	pthread_mutex_lock(&p->mu);
	struct job *done = p->finished;
	p->finished = NULL;
	pthread_mutex_unlock(&p->mu);
	/* Oldest first: the list was built by pushing. */
	struct job *rev = NULL;
	while (done) {
		struct job *n = done->next;
		done->next = rev;
		rev = done;
		done = n;
	}
	while (rev) {
		struct job *n = rev->next;
		job_finish(p, rev);
		rev = n;
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	uint64_t n;
	ssize_t r = read(fd, &n, sizeof n); /* an eventfd's read empties it */
	(void)r;
	run_finished(arg);
}

sdk_pool *sdk_pool_new(struct event_base *base, unsigned threads, size_t queue_max)
{
	sdk_pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->queue_max = queue_max;
	p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake < 0)
		goto fail;
	p->wake_ev = event_new(base, p->wake, EV_READ | EV_PERSIST, on_wake, p);
	p->threads = calloc(threads, sizeof *p->threads);
	if (!p->wake_ev || !p->threads)
		goto fail;
	event_add(p->wake_ev, NULL);
	for (; p->n_threads < threads; p->n_threads++)
		if (pthread_create(&p->threads[p->n_threads], NULL, worker, p) != 0)
			break;
	if (p->n_threads == 0)
		goto fail;
	return p;
fail:
	sdk_pool_free(p);
	return NULL;
}

void sdk_pool_name(sdk_pool *p, const char *name)
{
	char comm[16];
	snprintf(comm, sizeof comm, "%s", name); /* longer: cut, not refused */
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_setname_np(p->threads[i], comm);
}

void sdk_pool_free(sdk_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	run_finished(p);
	while (p->todo) { /* never ran: let the owner clean up */
		struct job *j = p->todo;
		p->todo = j->next;
		job_finish(p, j);
	}
	if (p->wake_ev)
		event_free(p->wake_ev);
	if (p->wake >= 0)
		close(p->wake);
	free(p->threads);
	free(p->callers);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

void sdk_pool_set_caller_max(sdk_pool *p, size_t caller_max) { p->caller_max = caller_max; }

int sdk_pool_submit(sdk_pool *p, sdk_pool_work_fn work, sdk_pool_done_fn done, void *arg)
{
	return sdk_pool_submit_as(p, NULL, work, done, arg);
}

int sdk_pool_submit_as(sdk_pool *p, const char *caller, sdk_pool_work_fn work,
		       sdk_pool_done_fn done, void *arg)
{
	if (p->pending >= p->queue_max)
		return SDK_EBUSY;
	struct caller *c = caller ? caller_find(p, caller) : NULL;
	if (c && p->caller_max && c->jobs >= p->caller_max)
		return SDK_POOL_ECALLER;
	if (caller && !c) {
		if (p->n_callers == p->cap_callers) {
			size_t cap = p->cap_callers ? p->cap_callers * 2 : 8;
			struct caller *more = realloc(p->callers, cap * sizeof *more);
			if (!more)
				return SDK_EBUSY;
			p->callers = more;
			p->cap_callers = cap;
		}
		c = &p->callers[p->n_callers++];
		*c = (struct caller){ .jobs = 0 };
		snprintf(c->name, sizeof c->name, "%s", caller);
	}
	struct job *j = malloc(sizeof *j);
	if (!j) {
		if (c && c->jobs == 0)
			*c = p->callers[--p->n_callers];
		return SDK_EBUSY;
	}
	*j = (struct job){ .work = work, .done = done, .arg = arg, .has_caller = caller != NULL };
	if (trace_hooks && (j->trace = trace_hooks->capture()) != NULL)
		j->th = trace_hooks;
	if (caller) {
		snprintf(j->caller, sizeof j->caller, "%s", caller);
		c->jobs++;
	}
	p->pending++;
	pthread_mutex_lock(&p->mu);
	if (p->todo_tail)
		p->todo_tail->next = j;
	else
		p->todo = j;
	p->todo_tail = j;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

size_t sdk_pool_pending(const sdk_pool *p) { return p->pending; }

size_t sdk_pool_caller_pending(const sdk_pool *p, const char *caller)
{
	const struct caller *c = caller ? caller_find(p, caller) : NULL;
	return c ? c->jobs : 0;
}
