/* One node among others (nodes.h). */
#include "serve/node/nodes.h"

#include "sdk/clock.h"
#include "sdk/err.h"
#include "sdk/keyfile.h"
#include "sdk/log.h"
#include "sdk/token.h"
#include "serve/node/link.h"
#include "serve/node/tls.h"

#include <sodium.h>

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A certificate is asked for again no sooner than this after a failure. */
#define CERT_RETRY_MS 5000
/* "no certificate yet" is logged this often at most. */
#define CERT_NAG_MS 60000

typedef struct peer {
	nodes *n;
	const grace_node_cfg *cfg;
	bool up, ever_up, polling, vouching, vouched;
	int64_t last_ok_ms;  /* monotonic */
	int64_t since_ms;    /* wall clock, of the last change of `up` */
	int64_t vouched_mono_ms;
	char last_error[200];
} peer;

struct nodes {
	nodes_opts o;
	const grace_node_cfg *self;
	const grace_kernel_cfg *trust; /* NULL: no trust kernel configured */
	node_tls *tls;
	node_link *link;
	bool listening;
	struct event *tick;
	int64_t started_mono_ms;
	peer peers[GRACE_NODES_MAX];
	size_t n_peers;
	/* the node's certificate */
	bool cert_fetching;
	int64_t cert_next_try_ms, cert_nag_ms, renew_nag_ms; /* monotonic */
	int64_t relay_nag_ms[GRACE_KERNELS_MAX]; /* monotonic: a relay's port taken, said at most this often */
	char cert_error[256];
	bool closing; /* nodes_free: the link tells its calls; nothing is done with them */
	struct vouch_req *vouches; /* peers' vouch requests waiting for the trust kernel */
};

static bool trust_here(const nodes *n)
{
	return n->trust && grace_kernel_local(n->o.cfg, n->trust);
}

/* ---- this node's certificate ---- */

static void cert_dir(const nodes *n, char *out, size_t len)
{
	if (snprintf(out, len, "%s/%s", n->o.cfg->data_dir, NODES_DIR) >= (int)len)
		out[0] = '\0'; /* a data directory that long is refused at start */
}

static int write_pem(const char *dir, const char *name, const char *text, sdk_err *err)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return keyfile_replace(path, (const unsigned char *)text, strlen(text), err) < 0 ? -1 : 0;
}

static void on_cert(int status, const char *body, size_t len, double ms, const char *error,
		    void *arg)
{
	(void)ms;
	nodes *n = arg;
	n->cert_fetching = false;
	json_error_t je;
	json_t *doc = status == 200 ? json_loadb(body, len, 0, &je) : NULL;
	json_t *svid = json_array_get(json_object_get(doc, "svids"), 0);
	const char *cert = json_string_value(json_object_get(svid, "x509_svid"));
	const char *key = json_string_value(json_object_get(svid, "x509_svid_key"));
	const char *bundle = json_string_value(json_object_get(svid, "bundle"));
	char dir[PATH_MAX + 8];
	sdk_err err = { "" };
	cert_dir(n, dir, sizeof dir);
	if (!cert || !key || !bundle) {
		snprintf(n->cert_error, sizeof n->cert_error, "the trust kernel: %d %.120s", status,
			 error ? error : body ? body : "");
	} else if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(n->cert_error, sizeof n->cert_error, "%.120s: %s", dir, strerror(errno));
	} else if (write_pem(dir, NODE_TLS_KEY, key, &err) < 0 ||
		   write_pem(dir, NODE_TLS_CERT, cert, &err) < 0 ||
		   write_pem(dir, NODE_TLS_BUNDLE, bundle, &err) < 0) {
		snprintf(n->cert_error, sizeof n->cert_error, "%s", err.msg);
	} else if (node_tls_reload(n->tls, true, &err) < 0) {
		snprintf(n->cert_error, sizeof n->cert_error, "%s", err.msg);
	} else {
		n->cert_error[0] = '\0';
		sdk_info("node %s: a new X.509-SVID from the trust kernel, until %lld", n->self->name,
			 (long long)node_tls_expires_ms(n->tls));
	}
	if (n->cert_error[0]) {
		/* Tried again every CERT_RETRY_MS; said once a CERT_NAG_MS. */
		int64_t now = sdk_mono_ms();
		if (now >= n->renew_nag_ms) {
			n->renew_nag_ms = now + CERT_NAG_MS;
			sdk_warn("node %s: cannot renew its X.509-SVID (tried again every %d s): %s",
				 n->self->name, CERT_RETRY_MS / 1000, n->cert_error);
		}
		n->cert_next_try_ms = now + CERT_RETRY_MS;
	}
	json_decref(doc);
}

/* Asks the trust kernel for this node's certificate: on its own node at
 * once when there are no files yet, everywhere at half its life. Another
 * node reaches trust only through the link, so only with a certificate in
 * hand (the one its operator enrolled), and once vouched for. */
static void cert_check(nodes *n)
{
	sdk_err err = { "" };
	int rc = node_tls_reload(n->tls, false, &err);
	if (rc == 1)
		sdk_info("node %s: X.509-SVID loaded from %s", n->self->name,
			 node_tls_cert_path(n->tls));
	int64_t now = sdk_mono_ms(), wall = sdk_wall_ms();
	int64_t expires = node_tls_expires_ms(n->tls);
	if (rc < 0 && !expires && now >= n->cert_nag_ms) {
		n->cert_nag_ms = now + CERT_NAG_MS;
		sdk_warn("node %s: no X.509-SVID yet: %s%s", n->self->name, err.msg,
			 trust_here(n)
				 ? " (asking the trust kernel)"
				 : " (grace node enroll, on the trust kernel's node, makes it)");
	}
	if (!n->trust || n->cert_fetching || now < n->cert_next_try_ms)
		return;
	bool want;
	if (!expires)
		want = trust_here(n);
	else /* half its life left, from when we got it (or the files' age unknown: the TTL asked) */
		want = expires - wall < (int64_t)n->o.cfg->trust.x509_ttl_max_s * 1000 / 2;
	if (!want)
		return;
	char body[128];
	snprintf(body, sizeof body, "{\"for\":\"node/%s\",\"ttl_s\":%u}", n->self->name,
		 n->o.cfg->trust.x509_ttl_max_s);
	n->cert_next_try_ms = now + CERT_RETRY_MS;
	if (sdk_call(n->o.caller, "trust", "POST", "/x509-svid", body, strlen(body), NULL,
		     NODES_CALL_MS, on_cert, n) == 0)
		n->cert_fetching = true;
}

/* ---- the shared internal token ---- */

int nodes_token(const grace_config *cfg, char *out, sdk_err *err)
{
	char dir[PATH_MAX + 8], path[PATH_MAX + 32];
	sdk_err why = { "" };
	snprintf(dir, sizeof dir, "%s/%s", cfg->data_dir, NODES_DIR);
	snprintf(path, sizeof path, "%s/%s", dir, NODES_TOKEN_FILE);
	int rc = keyfile_read(path, (unsigned char *)out, SDK_TOKEN_LEN, &why);
	if (rc == SDK_ENOTFOUND) {
		/* Made once, by the node that runs the trust kernel (or the first
		 * node): every other node gets it from there with its certificate. */
		const grace_kernel_cfg *t = grace_config_kernel(cfg, "trust");
		const char *maker = t ? t->node : cfg->nodes.at[0].name;
		if (strcmp(maker, cfg->nodes.self)) {
			return sdk_fail(err, SDK_ENOTFOUND,
					"%s: missing: node %s made it; `grace node enroll %s DIR` "
					"there copies it with this node's certificate",
					path, maker, cfg->nodes.self);
		}
		unsigned char raw[SDK_TOKEN_LEN / 2];
		randombytes_buf(raw, sizeof raw);
		sodium_bin2hex(out, SDK_TOKEN_LEN + 1, raw, sizeof raw);
		sodium_memzero(raw, sizeof raw);
		if ((mkdir(dir, 0700) < 0 && errno != EEXIST) ||
		    keyfile_create(path, (const unsigned char *)out, SDK_TOKEN_LEN, &why) < 0) {
			return sdk_fail(err, SDK_EIO, "%s: %s", path, why.msg);
		}
	} else if (rc < 0) {
		return sdk_fail(err, rc, "%s", why.msg);
	}
	out[SDK_TOKEN_LEN] = '\0';
	if (strspn(out, "0123456789abcdef") != SDK_TOKEN_LEN) {
		return sdk_fail(err, SDK_EINVAL, "%s: not %d hex digits", path, SDK_TOKEN_LEN);
	}
	rc = sdk_token_write(cfg, out);
	if (rc < 0) {
		return sdk_fail(err, SDK_EIO, "cannot write the kernels' token: %s", strerror(-rc));
	}
	return 0;
}

/* ---- the peers ---- */

static void peer_set(peer *p, bool up, const char *why)
{
	if (p->up == up && p->ever_up)
		return;
	bool was = p->up;
	p->up = up;
	if (up)
		p->ever_up = true;
	p->since_ms = sdk_wall_ms();
	if (up)
		sdk_info("node %s: reached", p->cfg->name);
	else if (was || !p->ever_up)
		sdk_warn("node %s: unreachable: %s", p->cfg->name, why);
	if (up)
		return;
	/* Its kernels are unreachable, not failed: nothing here knows more. */
	supervisor *s = p->n->o.sup;
	for (size_t i = 0; i < sup_count(s); i++) {
		sup_kernel *k = sup_at(s, i);
		if (!strcmp(k->cfg->node, p->cfg->name))
			sup_kernel_remote_report(k, "unreachable", 0, k->restarts, why);
	}
}

static void apply_status(peer *p, json_t *doc)
{
	supervisor *s = p->n->o.sup;
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(doc, "kernels"), i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *state = json_string_value(json_object_get(e, "state"));
		sup_kernel *k = name ? sup_find(s, name) : NULL;
		/* Only what that node runs: a peer cannot speak for another's. */
		if (!k || !state || strcmp(k->cfg->node, p->cfg->name) || !sup_kernel_remote(k))
			continue;
		json_int_t pid = json_integer_value(json_object_get(e, "pid"));
		json_int_t restarts = json_integer_value(json_object_get(e, "restarts"));
		if (sup_kernel_remote_report(k, state, (pid_t)pid, (unsigned)restarts,
					     json_string_value(json_object_get(e, "last_exit"))) < 0)
			sdk_warn("node %s: kernel %s: unknown state '%.32s'", p->cfg->name, name, state);
	}
}

static void on_status(json_t *answer, const char *why, void *arg)
{
	peer *p = arg;
	p->polling = false;
	if (p->n->closing)
		return;
	int64_t now = sdk_mono_ms();
	if (answer && json_is_array(json_object_get(answer, "kernels"))) {
		p->last_ok_ms = now;
		p->last_error[0] = '\0';
		apply_status(p, answer);
		peer_set(p, true, NULL);
		return;
	}
	snprintf(p->last_error, sizeof p->last_error, "%s",
		 why ? why : "the answer has no kernels");
	int64_t since = p->ever_up ? p->last_ok_ms : p->n->started_mono_ms;
	if (now - since >= p->n->o.cfg->nodes.down_ms)
		peer_set(p, false, p->last_error);
}

static void on_vouched(json_t *answer, const char *why, void *arg)
{
	peer *p = arg;
	p->vouching = false;
	if (p->n->closing)
		return;
	if (answer && json_is_true(json_object_get(answer, "ok"))) {
		if (!p->vouched)
			sdk_info("node %s: vouched for this node's main process to the trust kernel",
				 p->cfg->name);
		p->vouched = true;
		p->vouched_mono_ms = sdk_mono_ms();
		return;
	}
	json_t *e = json_object_get(answer, "error");
	sdk_warn("node %s: cannot vouch for this node's main process: %s", p->cfg->name,
		 why ? why : json_string_value(json_object_get(e, "message")) ?: "refused");
}

/* On the node that runs the trust kernel: this main process's attestation
 * hash, so the trust kernel believes this node's main process (and the
 * kernels it registers) as it believes its own node's. */
static void vouch(peer *p)
{
	nodes *n = p->n;
	if (!n->trust || strcmp(n->trust->node, p->cfg->name) || !p->up || p->vouching ||
	    !n->o.main_hash || !n->o.main_hash[0])
		return;
	if (p->vouched && sdk_mono_ms() - p->vouched_mono_ms < NODES_VOUCH_EVERY_MS)
		return;
	json_t *req = json_pack("{s:s, s:s}", "op", "vouch", "main_sha256", n->o.main_hash);
	if (req && node_link_call(n->link, p->cfg->name, req, NODES_CALL_MS, on_vouched, p) == 0)
		p->vouching = true;
	json_decref(req);
}

static void poll_peer(peer *p)
{
	nodes *n = p->n;
	if (p->polling)
		return;
	json_t *req = json_pack("{s:s}", "op", "status");
	unsigned timeout = n->o.cfg->nodes.down_ms < NODES_CALL_MS ? n->o.cfg->nodes.down_ms
								   : NODES_CALL_MS;
	if (req && node_link_call(n->link, p->cfg->name, req, timeout, on_status, p) == 0)
		p->polling = true;
	else
		on_status(NULL, "no certificate to connect with", p);
	json_decref(req);
}

/* ---- a peer's control requests ---- */

static json_t *error_json(const char *code, const char *fmt, const char *a, const char *b)
{
	char msg[256];
	snprintf(msg, sizeof msg, fmt, a, b);
	return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

static json_t *status_json(nodes *n)
{
	json_t *list = json_array();
	supervisor *s = n->o.sup;
	for (size_t i = 0; list && i < sup_count(s); i++) {
		sup_kernel *k = sup_at(s, i);
		if (sup_kernel_remote(k))
			continue;
		json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:i, s:s}", "name",
						      k->cfg->name, "state", sup_state_key(k->state),
						      "pid", (int)k->pid, "restarts", (int)k->restarts,
						      "last_exit", k->last_exit));
	}
	return json_pack("{s:s, s:o}", "node", n->self->name, "kernels", list);
}

typedef struct vouch_req {
	nodes *n;
	node_link_ctl *ctl;
	char peer[GRACE_NAME_MAX];
	struct vouch_req *next;
} vouch_req;

static void vouch_unlink(vouch_req *v)
{
	for (vouch_req **pp = &v->n->vouches; *pp; pp = &(*pp)->next)
		if (*pp == v) {
			*pp = v->next;
			return;
		}
}

static void on_trust_vouch(int status, const char *body, size_t len, double ms,
			   const char *error, void *arg)
{
	(void)ms;
	vouch_req *v = arg;
	json_t *answer;
	if (status == 200) {
		answer = json_pack("{s:b}", "ok", 1);
	} else {
		char why[200];
		snprintf(why, sizeof why, "%d %.*s", status, status ? (int)(len > 150 ? 150 : len) : 0,
			 status ? body : error ? error : "");
		answer = error_json("trust_refused", "the trust kernel: %s%s", why, "");
		sdk_warn("node %s: the trust kernel refused to vouch for its main process: %s",
			 v->peer, why);
	}
	node_link_ctl_reply(v->ctl, answer);
	vouch_unlink(v);
	free(v);
}

static void on_control(node_link_ctl *ctl, const char *peer, json_t *req, void *arg)
{
	nodes *n = arg;
	const char *op = json_string_value(json_object_get(req, "op"));
	const char *kname = json_string_value(json_object_get(req, "kernel"));
	if (!op) {
		node_link_ctl_reply(ctl, error_json("invalid", "\"op\" is missing%s%s", "", ""));
		return;
	}
	if (!strcmp(op, "status")) {
		node_link_ctl_reply(ctl, status_json(n));
		return;
	}
	if (!strcmp(op, "start") || !strcmp(op, "stop") || !strcmp(op, "restart")) {
		sup_kernel *k = kname ? sup_find(n->o.sup, kname) : NULL;
		if (!k || sup_kernel_remote(k)) {
			node_link_ctl_reply(ctl, error_json("not_found", "no kernel %s runs on node %s",
							    kname ? kname : "(none)", n->self->name));
			return;
		}
		sdk_info("node %s asks to %s kernel %s", peer, op, k->cfg->name);
		int rc = op[2] == 'a'   ? sup_kernel_start(k)
			 : op[2] == 'o' ? sup_kernel_stop(k)
					: sup_kernel_restart(k);
		node_link_ctl_reply(ctl, rc == 0 || rc == -EALREADY
						 ? json_pack("{s:b, s:b}", "ok", 1, "already", rc != 0)
						 : error_json("failed", "%s: %s", op, strerror(-rc)));
		return;
	}
	if (!strcmp(op, "vouch")) {
		const char *hash = json_string_value(json_object_get(req, "main_sha256"));
		vouch_req *v = trust_here(n) && hash ? calloc(1, sizeof *v) : NULL;
		json_t *body = v ? json_pack("{s:s, s:s}", "node", peer, "main_sha256", hash) : NULL;
		char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
		json_decref(body);
		if (!text) {
			free(v);
			node_link_ctl_reply(ctl, error_json("invalid",
							    "vouching needs main_sha256, on the trust "
							    "kernel's node%s%s", "", ""));
			return;
		}
		v->n = n;
		v->ctl = ctl;
		v->next = n->vouches;
		n->vouches = v;
		snprintf(v->peer, sizeof v->peer, "%s", peer);
		if (sdk_call(n->o.caller, "trust", "POST", "/attest/node", text, strlen(text), NULL,
			     NODES_CALL_MS, on_trust_vouch, v) < 0)
			on_trust_vouch(0, NULL, 0, 0, "the call could not start", v);
		free(text);
		return;
	}
	node_link_ctl_reply(ctl, error_json("invalid", "unknown op '%.32s'%s", op, ""));
}

/* ---- actions on remote kernels ---- */

typedef struct act_req {
	char kernel[GRACE_NAME_MAX], node[GRACE_NAME_MAX], verb[16];
} act_req;

static void on_acted(json_t *answer, const char *why, void *arg)
{
	act_req *a = arg;
	if (!answer || !json_is_true(json_object_get(answer, "ok"))) {
		json_t *e = json_object_get(answer, "error");
		sdk_warn("node %s: %s kernel %s: %s", a->node, a->verb, a->kernel,
			 why ? why : json_string_value(json_object_get(e, "message")) ?: "refused");
	}
	free(a);
}

int nodes_remote_act(sup_kernel *k, const char *verb, void *arg)
{
	nodes *n = arg;
	peer *p = NULL;
	for (size_t i = 0; i < n->n_peers && !p; i++)
		if (!strcmp(n->peers[i].cfg->name, k->cfg->node))
			p = &n->peers[i];
	if (!p || !p->up)
		return -EHOSTUNREACH;
	act_req *a = calloc(1, sizeof *a);
	json_t *req = a ? json_pack("{s:s, s:s}", "op", verb, "kernel", k->cfg->name) : NULL;
	int rc = req ? node_link_call(n->link, p->cfg->name, req, NODES_CALL_MS, on_acted, a) : -1;
	json_decref(req);
	if (rc < 0) {
		free(a);
		return -EHOSTUNREACH;
	}
	snprintf(a->kernel, sizeof a->kernel, "%s", k->cfg->name);
	snprintf(a->node, sizeof a->node, "%s", p->cfg->name);
	snprintf(a->verb, sizeof a->verb, "%s", verb);
	return 0;
}

/* ---- the tick ---- */

static int local_resolve(const char *name, void *arg)
{
	nodes *n = arg;
	sup_kernel *k = sup_find(n->o.sup, name);
	if (!k || sup_kernel_remote(k))
		return SDK_ENOTFOUND;
	return sup_resolve(name, n->o.sup);
}

static void relays_open(nodes *n)
{
	supervisor *s = n->o.sup;
	for (size_t i = 0; i < sup_count(s); i++) {
		sup_kernel *k = sup_at(s, i);
		if (!sup_kernel_remote(k) || node_link_relaying(n->link, k->cfg->name))
			continue;
		sdk_err err;
		int64_t now = sdk_mono_ms();
		if (node_link_relay(n->link, k->cfg->name, k->cfg->node, k->port, &err) < 0 &&
		    now >= n->relay_nag_ms[i]) {
			n->relay_nag_ms[i] = now + CERT_NAG_MS;
			sdk_warn("node %s: no relay for kernel %s yet (tried again every tick): %s",
				 n->self->name, k->cfg->name, err.msg);
		}
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	nodes *n = arg;
	cert_check(n);
	if (!n->listening && node_tls_expires_ms(n->tls)) {
		sdk_err err;
		if (node_link_listen(n->link, &err) == 0) {
			n->listening = true;
			sdk_info("node %s: link listening on %s (mutual TLS)", n->self->name,
				 n->self->address);
		} else {
			sdk_warn("node %s: %s", n->self->name, err.msg);
		}
	}
	relays_open(n);
	for (size_t i = 0; i < n->n_peers; i++) {
		poll_peer(&n->peers[i]);
		vouch(&n->peers[i]);
	}
}

nodes *nodes_new(const nodes_opts *o, sdk_err *err)
{
	err->msg[0] = '\0';
	const grace_config *cfg = o->cfg;
	if (!cfg->nodes.n)
		return NULL;
	const grace_node_cfg *self = grace_config_node(cfg, cfg->nodes.self);
	if (!self) {
		sdk_fail(err, SDK_EINVAL,
			 "nodes are configured: name this one with [grace] node or "
			 "GRACE_NODE");
		return NULL;
	}
	nodes *n = calloc(1, sizeof *n);
	if (!n) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	n->o = *o;
	n->self = self;
	n->trust = grace_config_kernel(cfg, "trust");
	n->started_mono_ms = sdk_mono_ms();
	char dir[PATH_MAX + 8];
	cert_dir(n, dir, sizeof dir);
	char cert[PATH_MAX + 32], key[PATH_MAX + 32], bundle[PATH_MAX + 32];
	snprintf(cert, sizeof cert, "%s/%s", dir, NODE_TLS_CERT);
	snprintf(key, sizeof key, "%s/%s", dir, NODE_TLS_KEY);
	snprintf(bundle, sizeof bundle, "%s/%s", dir, NODE_TLS_BUNDLE);
	if (!(n->tls = node_tls_new(cert, key, bundle, cfg->trust.domain, err)))
		goto fail;
	node_link_opts lo = { .cfg = cfg, .tls = n->tls, .resolve = local_resolve,
			      .control = on_control, .arg = n };
	if (!(n->link = node_link_new(o->base, &lo))) {
		sdk_fail(err, SDK_EIO, "cannot start the node link");
		goto fail;
	}
	for (size_t i = 0; i < cfg->nodes.n; i++) {
		if (&cfg->nodes.at[i] == self)
			continue;
		peer *p = &n->peers[n->n_peers++];
		p->n = n;
		p->cfg = &cfg->nodes.at[i];
		p->since_ms = sdk_wall_ms();
		snprintf(p->last_error, sizeof p->last_error, "not reached yet");
	}
	n->tick = event_new(o->base, -1, EV_PERSIST, on_tick, n);
	if (!n->tick) {
		sdk_fail(err, SDK_EIO, "out of memory");
		goto fail;
	}
	sup_set_remote_act(o->sup, nodes_remote_act, n);
	return n;
fail:
	nodes_free(n);
	return NULL;
}

void nodes_start(nodes *n)
{
	if (!n)
		return;
	struct timeval tv = sdk_ms_tv(n->o.cfg->nodes.poll_ms);
	event_add(n->tick, &tv);
	on_tick(-1, 0, n);
}

void nodes_free(nodes *n)
{
	if (!n)
		return;
	n->closing = true;
	sup_set_remote_act(n->o.sup, NULL, NULL);
	if (n->tick)
		event_free(n->tick);
	/* Vouches waiting for the trust kernel: the caller's free (after
	 * this) drops their calls without calling back. */
	while (n->vouches) {
		vouch_req *v = n->vouches;
		n->vouches = v->next;
		node_link_ctl_reply(v->ctl, NULL);
		free(v);
	}
	node_link_free(n->link); /* tells its calls; closing: nothing is done with them */
	node_tls_free(n->tls);
	free(n);
}

json_t *nodes_json(const nodes *n)
{
	json_t *list = json_array();
	const grace_config *cfg = n->o.cfg;
	for (size_t i = 0; list && i < cfg->nodes.n; i++) {
		const grace_node_cfg *c = &cfg->nodes.at[i];
		json_t *o = json_pack("{s:s, s:s, s:b}", "name", c->name, "address", c->address,
				      "self", c == n->self);
		if (!o)
			continue;
		if (c == n->self) {
			int64_t exp = node_tls_expires_ms(n->tls);
			json_object_set_new(o, "state", json_string(n->listening ? "up" : "starting"));
			json_object_set_new(o, "certificate_expires_at",
					    exp ? json_integer(exp) : json_null());
			if (n->cert_error[0])
				json_object_set_new(o, "certificate_error", json_string(n->cert_error));
		}
		for (size_t j = 0; j < n->n_peers; j++) {
			const peer *p = &n->peers[j];
			if (p->cfg != c)
				continue;
			json_object_set_new(o, "state", json_string(p->up ? "up" : "unreachable"));
			json_object_set_new(o, "since_ms", json_integer(p->since_ms));
			json_object_set_new(o, "last_error",
					    p->last_error[0] ? json_string(p->last_error) : json_null());
		}
		json_array_append_new(list, o);
	}
	node_link_stats st = node_link_get_stats(n->link);
	return json_pack("{s:s, s:o, s:{s:i, s:I, s:I, s:I, s:I}}", "self", n->self->name,
			 "nodes", list, "link", "connections", (int)st.conns, "accepted",
			 (json_int_t)st.accepted, "refused", (json_int_t)st.refused, "relayed",
			 (json_int_t)st.relayed, "unreachable", (json_int_t)st.unreachable);
}
