/* Attestation at spawn: the credential and the registration (attest.h). */
#include "serve/supervisor/attest.h"

#include "sdk/join.h"
#include "sdk/log.h"
#include "sdk/proc.h"

#include "sdk/clock.h"

#include <event2/event.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sup_join_make(char *cred_hex, char *hash_hex)
{
	unsigned char cred[SUP_JOIN_HEX / 2], hash[crypto_hash_sha256_BYTES];
	randombytes_buf(cred, sizeof cred);
	sodium_bin2hex(cred_hex, SUP_JOIN_HEX + 1, cred, sizeof cred);
	/* The hash of the hex text: what the kernel presents. */
	crypto_hash_sha256(hash, (const unsigned char *)cred_hex, SUP_JOIN_HEX);
	sodium_bin2hex(hash_hex, SUP_JOIN_HEX + 1, hash, sizeof hash);
	sodium_memzero(cred, sizeof cred);
}

/* A registration on its way: tried again with backoff while the trust
 * kernel does not answer (down, or starting: status 0 or 503), until it
 * answers or the process is gone (another pid, or the same pid with
 * another start time). Pending ones are listed (reg_pending) so none is
 * lost memory at exit. */
#define REG_RETRY_MIN_MS 250
#define REG_RETRY_MAX_MS 5000
#define REG_TIMEOUT_MS 5000

struct reg {
	struct reg *next, **prev;
	sdk_caller *c;
	struct event *timer;
	char name[64];
	pid_t pid;
	uint64_t start;
	char *text; /* the body, malloc'd */
	unsigned backoff_ms, tries;
	/* The trust kernel runs on another node: until that node has vouched
	 * for this main process (serve/node/nodes.h) it answers 403, which
	 * is then "not yet", not "no". */
	bool trust_remote;
};

static struct reg *reg_pending;

static void reg_free(struct reg *r)
{
	if (r->next)
		r->next->prev = r->prev;
	*r->prev = r->next;
	if (r->timer)
		event_free(r->timer);
	free(r->text);
	free(r);
}

unsigned sup_attest_backoff_ms(unsigned prev_ms)
{
	if (!prev_ms)
		return REG_RETRY_MIN_MS;
	return prev_ms >= REG_RETRY_MAX_MS / 2 ? REG_RETRY_MAX_MS : prev_ms * 2;
}

static void reg_send(struct reg *r);

static void on_reg_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct reg *r = arg;
	char state;
	uint64_t start;
	if (proc_stat(r->pid, &state, &start) < 0 || start != r->start || state == 'Z') {
		sdk_info("kernel %s: pid %d is gone before the trust kernel answered its "
			 "registration",
			 r->name, (int)r->pid);
		reg_free(r);
		return;
	}
	reg_send(r);
}

static void on_registered(int status, const char *body, size_t len, double ms,
			  const char *error, void *arg)
{
	(void)ms;
	struct reg *r = arg;
	if (status == 201) {
		if (r->tries > 1)
			sdk_info("kernel %s: registered with the trust kernel after %u tries", r->name,
				 r->tries);
		reg_free(r);
		return;
	}
	if ((status == 0 || status == 503 || (status == 403 && r->trust_remote)) && r->timer) {
		r->backoff_ms = sup_attest_backoff_ms(r->backoff_ms);
		if (r->tries == 1)
			sdk_info("kernel %s: the trust kernel does not answer its registration (%s): "
				 "trying again with backoff while pid %d lives",
				 r->name, error ? error : "503", (int)r->pid);
		struct timeval tv = sdk_ms_tv(r->backoff_ms);
		evtimer_add(r->timer, &tv);
		return;
	}
	sdk_warn("kernel %s: not registered with the trust kernel (%d %s%.*s): it stays "
		 "unattested until its next start",
		 r->name, status, error ? error : "", status ? (int)(len > 160 ? 160 : len) : 0,
		 body ? body : "");
	reg_free(r);
}

static void reg_send(struct reg *r)
{
	r->tries++;
	if (sdk_call(r->c, "trust", "POST", "/attest/register", r->text, strlen(r->text), NULL,
		     REG_TIMEOUT_MS, on_registered, r) < 0)
		on_registered(0, NULL, 0, 0, "the call could not start", r);
}

/* The main process's join (sup_attest_main): one per process. */
static struct {
	sdk_caller *c;
	struct event *timer;
	char *text; /* the body, malloc'd: the credential is in it */
	unsigned backoff_ms;
	bool sent;  /* a call on its way */
	bool done;  /* attested, or refused for good */
} main_join;

static void main_join_send(void);

static void main_join_end(void)
{
	main_join.done = true;
	if (main_join.text) {
		sodium_memzero(main_join.text, strlen(main_join.text));
		free(main_join.text);
		main_join.text = NULL;
	}
	if (main_join.timer)
		event_free(main_join.timer);
	main_join.timer = NULL;
}

static void on_main_joined(int status, const char *body, size_t len, double ms,
			   const char *error, void *arg)
{
	(void)ms, (void)arg;
	main_join.sent = false;
	if (status == 200) {
		sdk_info("the main process attested with the trust kernel (its enrolled credential)");
		main_join_end();
		return;
	}
	/* Not answering (0, 503), or not enrolled yet (404): again later. */
	if (status == 0 || status == 503 || status == 404) {
		if (!main_join.backoff_ms)
			sdk_info("the trust kernel does not attest the main process yet (%d%s%s): "
				 "trying again with backoff",
				 status, error ? " " : "", error ? error : "");
		main_join.backoff_ms = sup_attest_backoff_ms(main_join.backoff_ms);
		struct timeval tv = sdk_ms_tv(main_join.backoff_ms);
		evtimer_add(main_join.timer, &tv);
		return;
	}
	sdk_warn("the trust kernel refused the main process's enrolled credential (%d: %.*s): "
		 "the main process has no identity of its own until its next start",
		 status, (int)(len > 200 ? 200 : len), body ? body : "");
	main_join_end();
}

static void main_join_send(void)
{
	if (main_join.done || main_join.sent || !main_join.text)
		return;
	main_join.sent = true;
	if (sdk_call(main_join.c, "trust", "POST", "/attest/join", main_join.text,
		     strlen(main_join.text), NULL, REG_TIMEOUT_MS, on_main_joined, NULL) < 0)
		on_main_joined(0, NULL, 0, 0, "the call could not start", NULL);
}

static void on_main_join_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	main_join_send();
}

void sup_attest_main(sdk_caller *c, const grace_config *cfg, const char *main_hash)
{
	const grace_kernel_cfg *trust = grace_config_kernel(cfg, "trust");
	if (!c || !trust || trust->manager != GRACE_MANAGER_SYSTEMD ||
	    !grace_kernel_local(cfg, trust) || main_join.timer || main_join.done)
		return;
	char cred[SDK_JOIN_HEX + 1];
	if (sdk_join_credential(cred) < 0)
		return;
	/* Written here, not by jansson: every copy of the credential is one
	 * this file zeroes. Both strings are hex. */
	size_t n = SDK_JOIN_HEX + strlen(main_hash) + 96;
	if ((main_join.text = malloc(n)))
		snprintf(main_join.text, n,
			 "{\"credential\":\"%s\",\"pid\":%d,\"attestation_sha256\":\"%s\"}", cred,
			 (int)getpid(), main_hash);
	sodium_memzero(cred, sizeof cred);
	main_join.timer = evtimer_new(sdk_caller_base(c), on_main_join_timer, NULL);
	if (!main_join.text || !main_join.timer) {
		sdk_warn("cannot attest the main process with the trust kernel: out of memory");
		main_join_end();
		return;
	}
	main_join.c = c;
	main_join_send();
}

void sup_attest_kick(void)
{
	if (main_join.timer && evtimer_pending(main_join.timer, NULL)) {
		evtimer_del(main_join.timer);
		main_join.backoff_ms = 0;
		main_join_send();
	}
	for (struct reg *r = reg_pending, *next; r; r = next) {
		next = r->next; /* reg_send may answer, and free r, at once */
		if (!evtimer_pending(r->timer, NULL))
			continue; /* its call is on its way */
		evtimer_del(r->timer);
		r->backoff_ms = 0;
		on_reg_timer(-1, 0, r);
	}
}

void sup_attest_register(sdk_caller *c, const grace_config *cfg, const char *name, pid_t pid,
			 const char *hash_hex)
{
	if (!c || !grace_config_kernel(cfg, "trust") || pid <= 0)
		return;
	char state, link[32], exe[PATH_MAX];
	uint64_t start;
	snprintf(link, sizeof link, "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(link, exe, sizeof exe - 1);
	if (proc_stat(pid, &state, &start) < 0 || n <= 0) {
		sdk_warn("kernel %s: pid %d is gone before its registration", name, (int)pid);
		return;
	}
	exe[n] = '\0';
	json_t *j = json_pack("{s:s, s:i, s:I, s:s, s:s}", "kernel", name, "pid", (int)pid,
			      "start_time", (json_int_t)start, "exe", exe, "credential_sha256",
			      hash_hex);
	struct reg *r = calloc(1, sizeof *r);
	if (r) {
		r->prev = &reg_pending; /* listed first: reg_free unlinks it */
		r->next = reg_pending;
		if (reg_pending)
			reg_pending->prev = &r->next;
		reg_pending = r;
		r->text = j ? json_dumps(j, JSON_COMPACT) : NULL;
		r->timer = evtimer_new(sdk_caller_base(c), on_reg_timer, r);
	}
	json_decref(j);
	if (!r || !r->text || !r->timer) {
		sdk_warn("kernel %s: cannot register it with the trust kernel: out of memory", name);
		if (r)
			reg_free(r);
		return;
	}
	r->c = c;
	r->trust_remote = !grace_kernel_local(cfg, grace_config_kernel(cfg, "trust"));
	snprintf(r->name, sizeof r->name, "%s", name);
	r->pid = pid;
	r->start = start;
	reg_send(r);
}
