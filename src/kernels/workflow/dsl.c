#include "kernels/workflow/dsl.h"
#include "kernels/workflow/expr.h"
#include "sdk/json_keys.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static const char *const kind_names[WF_KIND_N] = { "do",    "set",  "switch", "for",
						   "fork",  "try",  "wait",   "raise",
						   "call",  "run",  "emit",   "listen" };

const char *wf_kind_name(int kind)
{
	return kind >= 0 && kind < WF_KIND_N ? kind_names[kind] : "?";
}

int wf_kind_of(const json_t *task)
{
	/* `do` is also the body of `for`: the loop's key decides */
	if (json_object_get(task, "for"))
		return WF_FOR;
	for (int k = 0; k < WF_KIND_N; k++)
		if (json_object_get(task, kind_names[k]))
			return k;
	return -1;
}

json_t *wf_base_vars(void)
{
	return json_pack("{s:n, s:n, s:n, s:n, s:n, s:n}", "context", "input", "workflow", "task",
			 "runtime", "secrets");
}

json_t *wf_ref(const json_t *doc, const char *p)
{
	const json_t *cur = doc;
	char tok[256];
	while (cur && *p == '/') {
		p++;
		size_t n = strcspn(p, "/");
		if (n >= sizeof tok)
			return NULL;
		size_t o = 0;
		for (size_t i = 0; i < n; i++) {
			if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
				tok[o++] = p[i + 1] == '0' ? '~' : '/';
				i++;
			} else {
				tok[o++] = p[i];
			}
		}
		tok[o] = '\0';
		p += n;
		if (json_is_array(cur)) {
			char *end;
			unsigned long idx = strtoul(tok, &end, 10);
			cur = *end || !*tok ? NULL : json_array_get(cur, idx);
		} else {
			cur = json_object_get(cur, tok);
		}
	}
	return *p ? NULL : (json_t *)cur;
}

int64_t wf_duration_ms(const json_t *d)
{
	if (json_is_object(d)) {
		static const struct { const char *k; int64_t ms; } parts[] = {
			{ "days", 86400000 }, { "hours", 3600000 }, { "minutes", 60000 },
			{ "seconds", 1000 }, { "milliseconds", 1 }
		};
		int64_t total = 0;
		size_t seen = 0;
		for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
			json_t *v = json_object_get(d, parts[i].k);
			if (!v)
				continue;
			seen++;
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > 365LL * 86400000)
				return -1;
			total += json_integer_value(v) * parts[i].ms;
		}
		return seen == json_object_size(d) && seen > 0 ? total : -1;
	}
	/* ISO 8601: PnDTnHnMnS (seconds may have a fraction) */
	const char *s = json_string_value(d);
	if (!s || *s != 'P')
		return -1;
	s++;
	int64_t total = 0;
	bool time = false, any = false;
	while (*s) {
		if (*s == 'T') {
			if (time)
				return -1;
			time = true;
			s++;
			continue;
		}
		char *end;
		double v = strtod(s, &end);
		if (end == s || v < 0 || v > 1e10 || !*end)
			return -1;
		char u = *end;
		double ms = u == 'D' && !time ? 86400000.0 : u == 'H' && time ? 3600000.0
			  : u == 'M' && time ? 60000.0 : u == 'S' && time ? 1000.0 : -1;
		if (ms < 0)
			return -1;
		total += (int64_t)(v * ms);
		any = true;
		s = end + 1;
	}
	return any ? total : -1;
}

/* ---- the validator ---- */

typedef struct vctx {
	json_t *programs;
	unsigned tasks, tasks_max;
	sdk_err *err;
} vctx;

static int bad(vctx *c, const char *path, const char *why)
{
	return sdk_fail(c->err, SDK_EINVAL, "%s: %s", *path ? path : "/", why);
}

static bool good_task_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > WF_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return false;
	return true;
}

/* Only `allowed` (NULL-terminated) keys in obj. */
static int only(vctx *c, const json_t *obj, const char *path, const char *const *allowed)
{
	const char *key = sdk_json_unknown_key((json_t *)obj, allowed);
	char p[1024];
	if (key) {
		wfx_path(p, sizeof p, "%s/%s", path, key);
		return bad(c, p, "unknown field");
	}
	return 0;
}

static int expr_field(vctx *c, const json_t *v, const char *path, const json_t *vars, bool obj_ok)
{
	if (json_is_string(v)) {
		wfx_collect_field(json_string_value(v), path, vars, c->programs);
		return 0;
	}
	if (obj_ok && json_is_object(v)) {
		wfx_collect(v, path, vars, c->programs);
		return 0;
	}
	return bad(c, path, obj_ok ? "a runtime expression or an object" : "a runtime expression");
}

/* input/output/export: {from|as: expression or object, schema: ignored} */
static int filter(vctx *c, const json_t *task, const char *key, const char *field,
		  const char *path, const json_t *vars)
{
	json_t *f = json_object_get(task, key);
	if (!f)
		return 0;
	char p[1024];
	wfx_path(p, sizeof p, "%s/%s", path, key);
	if (!json_is_object(f))
		return bad(c, p, "an object");
	if (json_object_get(f, "schema")) {
		wfx_path(p, sizeof p, "%s/%s/schema", path, key);
		return bad(c, p, "schema validation is not implemented");
	}
	const char *allowed[] = { field, NULL };
	int rc = only(c, f, p, allowed);
	json_t *x = json_object_get(f, field);
	if (rc == 0 && x) {
		wfx_path(p, sizeof p, "%s/%s/%s", path, key, field);
		rc = expr_field(c, x, p, vars, true);
	}
	return rc;
}

static int duration(vctx *c, const json_t *d, const char *path)
{
	return wf_duration_ms(d) < 0 ? bad(c, path, "a duration (ISO 8601 like PT5S, or an object "
					      "of days, hours, minutes, seconds, milliseconds)")
				     : 0;
}

static int task_list(vctx *c, const json_t *list, const char *path, const json_t *vars, int depth);

static json_t *with_var(const json_t *vars, const char *name)
{
	json_t *v = json_deep_copy(vars);
	json_object_set_new(v, name, json_null());
	return v;
}

static bool endpoint_ok(const char *s)
{
	static const char *const ok[] = { "http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:",
					  "http://localhost/", "http://[::1]:",     "grace://" };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (!strncmp(s, ok[i], strlen(ok[i])))
			return true;
	return false;
}

static int retry_policy(vctx *c, const json_t *r, const char *path)
{
	char p[1024];
	if (!json_is_object(r))
		return bad(c, path, "an object");
	static const char *const keys[] = { "delay", "backoff", "limit", "jitter", NULL };
	int rc = only(c, r, path, keys);
	json_t *v;
	if (rc == 0 && (v = json_object_get(r, "delay"))) {
		wfx_path(p, sizeof p, "%s/delay", path);
		rc = duration(c, v, p);
	}
	if (rc == 0 && (v = json_object_get(r, "backoff"))) {
		wfx_path(p, sizeof p, "%s/backoff", path);
		if (!json_is_object(v) || json_object_size(v) != 1 ||
		    !(json_object_get(v, "constant") || json_object_get(v, "exponential") ||
		      json_object_get(v, "linear")))
			rc = bad(c, p, "one of constant, exponential, linear");
	}
	if (rc == 0 && (v = json_object_get(r, "limit"))) {
		wfx_path(p, sizeof p, "%s/limit", path);
		static const char *const lk[] = { "attempt", "duration", NULL };
		static const char *const ak[] = { "count", NULL }; /* an attempt's duration: not implemented */
		json_t *a = json_object_get(v, "attempt"), *d = json_object_get(v, "duration");
		if (!json_is_object(v))
			rc = bad(c, p, "an object");
		else if ((rc = only(c, v, p, lk)) == 0 && d) {
			wfx_path(p, sizeof p, "%s/limit/duration", path);
			rc = duration(c, d, p);
		}
		if (rc == 0 && a) {
			wfx_path(p, sizeof p, "%s/limit/attempt", path);
			json_t *n = json_object_get(a, "count"), *ad = NULL;
			if (!json_is_object(a))
				rc = bad(c, p, "an object");
			else if ((rc = only(c, a, p, ak)) == 0 && n &&
				 (!json_is_integer(n) || json_integer_value(n) < 0 ||
				  json_integer_value(n) > 1000000)) {
				wfx_path(p, sizeof p, "%s/limit/attempt/count", path);
				rc = bad(c, p, "an integer from 0 to 1000000");
			} else if (rc == 0 && ad) {
				wfx_path(p, sizeof p, "%s/limit/attempt/duration", path);
				rc = duration(c, ad, p);
			}
		}
	}
	if (rc == 0 && (v = json_object_get(r, "jitter"))) {
		wfx_path(p, sizeof p, "%s/jitter", path);
		static const char *const jk[] = { "from", "to", NULL };
		if (!json_is_object(v) || only(c, v, p, jk) < 0 ||
		    wf_duration_ms(json_object_get(v, "from")) < 0 ||
		    wf_duration_ms(json_object_get(v, "to")) < 0 ||
		    wf_duration_ms(json_object_get(v, "to")) < wf_duration_ms(json_object_get(v, "from")))
			rc = bad(c, p, "{from, to}: two durations, from <= to");
	}
	return rc;
}

static int task_body(vctx *c, const json_t *t, int kind, const char *path, const json_t *vars,
		     int depth)
{
	char p[1024];
	json_t *b = json_object_get(t, wf_kind_name(kind));
	wfx_path(p, sizeof p, "%s/%s", path, wf_kind_name(kind));
	int rc = 0;
	switch (kind) {
	case WF_DO:
		return task_list(c, b, p, vars, depth + 1);
	case WF_SET: /* an object of arguments, or one "${...}" string */
		if (!json_is_object(b) && !json_is_string(b))
			return bad(c, p, "an object, or a runtime expression");
		wfx_collect(b, p, vars, c->programs);
		return 0;
	case WF_SWITCH: {
		if (!json_is_array(b) || json_array_size(b) == 0)
			return bad(c, p, "an array of cases");
		size_t i;
		json_t *cs;
		json_array_foreach(b, i, cs) {
			char q[1024];
			wfx_path(q, sizeof q, "%s/%zu", p, i);
			const char *name;
			json_t *body;
			if (!json_is_object(cs) || json_object_size(cs) != 1)
				return bad(c, q, "a case: an object of one named case");
			json_object_foreach(cs, name, body) {
				wfx_path(q, sizeof q, "%s/%zu/%s", p, i, name);
				static const char *const keys[] = { "when", "then", NULL };
				if (!json_is_object(body))
					return bad(c, q, "an object with when and then");
				if ((rc = only(c, body, q, keys)) < 0)
					return rc;
				json_t *w = json_object_get(body, "when");
				if (w) {
					wfx_path(q, sizeof q, "%s/%zu/%s/when", p, i, name);
					if ((rc = expr_field(c, w, q, vars, false)) < 0)
						return rc;
				}
				if (!json_is_string(json_object_get(body, "then"))) {
					wfx_path(q, sizeof q, "%s/%zu/%s/then", p, i, name);
					return bad(c, q, "required: continue, exit, end or a task's name");
				}
			}
		}
		return 0;
	}
	case WF_FOR: {
		static const char *const keys[] = { "each", "in", "at", NULL };
		if (!json_is_object(b))
			return bad(c, p, "an object with each, in, at");
		if ((rc = only(c, b, p, keys)) < 0)
			return rc;
		const char *each = json_string_value(json_object_get(b, "each"));
		const char *at = json_string_value(json_object_get(b, "at"));
		if (json_object_get(b, "each") && !wfx_good_name(each))
			return wfx_path(p, sizeof p, "%s/for/each", path), bad(c, p, "a variable name");
		if (json_object_get(b, "at") && !wfx_good_name(at))
			return wfx_path(p, sizeof p, "%s/for/at", path), bad(c, p, "a variable name");
		json_t *in = json_object_get(b, "in");
		wfx_path(p, sizeof p, "%s/for/in", path);
		if (!in)
			return bad(c, p, "required: a runtime expression");
		json_t *v1 = with_var(vars, each ? each : "item");
		json_t *v2 = with_var(v1, at ? at : "index");
		json_decref(v1);
		rc = expr_field(c, in, p, vars, false);
		json_t *w = json_object_get(t, "while");
		if (rc == 0 && w) {
			wfx_path(p, sizeof p, "%s/while", path);
			rc = expr_field(c, w, p, v2, false);
		}
		wfx_path(p, sizeof p, "%s/do", path);
		if (rc == 0)
			rc = task_list(c, json_object_get(t, "do"), p, v2, depth + 1);
		json_decref(v2);
		return rc;
	}
	case WF_FORK: {
		static const char *const keys[] = { "branches", "compete", NULL };
		if (!json_is_object(b))
			return bad(c, p, "an object with branches");
		if ((rc = only(c, b, p, keys)) < 0)
			return rc;
		json_t *cm = json_object_get(b, "compete");
		if (cm && !json_is_boolean(cm))
			return wfx_path(p, sizeof p, "%s/fork/compete", path), bad(c, p, "a boolean");
		wfx_path(p, sizeof p, "%s/fork/branches", path);
		return task_list(c, json_object_get(b, "branches"), p, vars, depth + 1);
	}
	case WF_TRY: {
		if ((rc = task_list(c, b, p, vars, depth + 1)) < 0)
			return rc;
		json_t *cat = json_object_get(t, "catch");
		wfx_path(p, sizeof p, "%s/catch", path);
		if (!json_is_object(cat))
			return bad(c, p, "required: an object");
		static const char *const keys[] = { "errors", "as", "when", "exceptWhen", "retry", "do", NULL };
		if ((rc = only(c, cat, p, keys)) < 0)
			return rc;
		json_t *errs = json_object_get(cat, "errors");
		if (errs) {
			static const char *const ek[] = { "with", NULL };
			static const char *const wk[] = { "type", "status", "instance", "title", "detail", NULL };
			wfx_path(p, sizeof p, "%s/catch/errors", path);
			json_t *w = json_object_get(errs, "with");
			if (!json_is_object(errs) || (rc = only(c, errs, p, ek)) < 0)
				return rc < 0 ? rc : bad(c, p, "an object");
			wfx_path(p, sizeof p, "%s/catch/errors/with", path);
			if (w && (!json_is_object(w) || (rc = only(c, w, p, wk)) < 0))
				return rc < 0 ? rc : bad(c, p, "an object");
		}
		const char *as = json_string_value(json_object_get(cat, "as"));
		if (json_object_get(cat, "as") && !wfx_good_name(as))
			return wfx_path(p, sizeof p, "%s/catch/as", path), bad(c, p, "a variable name");
		json_t *ev = with_var(vars, as ? as : "error");
		static const char *const wh[] = { "when", "exceptWhen" };
		for (int i = 0; i < 2 && rc == 0; i++) {
			json_t *w = json_object_get(cat, wh[i]);
			wfx_path(p, sizeof p, "%s/catch/%s", path, wh[i]);
			if (w)
				rc = expr_field(c, w, p, ev, false);
		}
		json_t *r = json_object_get(cat, "retry");
		wfx_path(p, sizeof p, "%s/catch/retry", path);
		if (rc == 0 && r)
			rc = retry_policy(c, r, p);
		json_t *d = json_object_get(cat, "do");
		wfx_path(p, sizeof p, "%s/catch/do", path);
		if (rc == 0 && d)
			rc = task_list(c, d, p, ev, depth + 1);
		json_decref(ev);
		return rc;
	}
	case WF_WAIT:
		return duration(c, b, p);
	case WF_RAISE: {
		static const char *const keys[] = { "error", NULL };
		static const char *const ek[] = { "type", "status", "title", "detail", "instance", NULL };
		json_t *e = json_object_get(b, "error");
		if (!json_is_object(b) || (rc = only(c, b, p, keys)) < 0)
			return rc < 0 ? rc : bad(c, p, "an object with error");
		wfx_path(p, sizeof p, "%s/raise/error", path);
		if (!json_is_object(e) || (rc = only(c, e, p, ek)) < 0)
			return rc < 0 ? rc : bad(c, p, "an object with type and status");
		if (!json_is_string(json_object_get(e, "type")) || !json_object_get(e, "status"))
			return bad(c, p, "type and status are required");
		wfx_collect(e, p, vars, c->programs);
		return 0;
	}
	case WF_CALL: {
		const char *fn = json_string_value(b);
		if (!fn || strcmp(fn, "http") != 0)
			return bad(c, p, "only http calls are implemented (call: http)");
		json_t *w = json_object_get(t, "with");
		wfx_path(p, sizeof p, "%s/with", path);
		static const char *const keys[] = { "method", "endpoint", "headers", "body", "query", "output", NULL };
		if (!json_is_object(w) || (rc = only(c, w, p, keys)) < 0)
			return rc < 0 ? rc : bad(c, p, "required: an object with method and endpoint");
		const char *m = json_string_value(json_object_get(w, "method"));
		if (!m || strlen(m) > 16)
			return wfx_path(p, sizeof p, "%s/with/method", path), bad(c, p, "required: an HTTP method");
		json_t *ep = json_object_get(w, "endpoint");
		if (json_is_object(ep))
			ep = json_object_get(ep, "uri");
		const char *x;
		size_t n;
		wfx_path(p, sizeof p, "%s/with/endpoint", path);
		if (!json_is_string(ep))
			return bad(c, p, "required: a URI or {uri}");
		if (!wfx_is_expr(json_string_value(ep), &x, &n) && !endpoint_ok(json_string_value(ep)))
			return bad(c, p, "a loopback URL (http://127.0.0.1:PORT/..., http://localhost:PORT/...) "
					 "or a kernel route (grace://KERNEL/path)");
		const char *o = json_string_value(json_object_get(w, "output"));
		if (json_object_get(w, "output") && (!o || (strcmp(o, "content") && strcmp(o, "response") &&
							    strcmp(o, "raw"))))
			return wfx_path(p, sizeof p, "%s/with/output", path), bad(c, p, "content, response or raw");
		wfx_path(p, sizeof p, "%s/with", path);
		wfx_collect(w, p, vars, c->programs);
		return 0;
	}
	case WF_RUN: {
		static const char *const keys[] = { "shell", "await", "return", NULL };
		if (!json_is_object(b) || (rc = only(c, b, p, keys)) < 0)
			return rc < 0 ? rc : bad(c, p, "an object with shell");
		json_t *sh = json_object_get(b, "shell");
		wfx_path(p, sizeof p, "%s/run/shell", path);
		static const char *const sk[] = { "command", "arguments", "environment", NULL };
		if (!json_is_object(sh) || (rc = only(c, sh, p, sk)) < 0)
			return rc < 0 ? rc : bad(c, p, "required (run.shell is the process implemented)");
		if (!json_is_string(json_object_get(sh, "command")))
			return wfx_path(p, sizeof p, "%s/run/shell/command", path), bad(c, p, "required: a string");
		const char *r = json_string_value(json_object_get(b, "return"));
		if (json_object_get(b, "return") &&
		    (!r || (strcmp(r, "stdout") && strcmp(r, "code") && strcmp(r, "all") && strcmp(r, "none"))))
			return wfx_path(p, sizeof p, "%s/run/return", path), bad(c, p, "stdout, code, all or none");
		json_t *aw = json_object_get(b, "await");
		if (aw && !json_is_true(aw))
			return wfx_path(p, sizeof p, "%s/run/await", path), bad(c, p, "only true is implemented");
		wfx_collect(sh, p, vars, c->programs);
		return 0;
	}
	case WF_EMIT: {
		json_t *w = json_object_get(json_object_get(b, "event"), "with");
		wfx_path(p, sizeof p, "%s/emit/event/with", path);
		if (!json_is_object(w) || !json_is_string(json_object_get(w, "type")))
			return bad(c, p, "required: an object with type");
		wfx_collect(w, p, vars, c->programs);
		return 0;
	}
	case WF_LISTEN: {
		json_t *w = json_object_get(json_object_get(json_object_get(b, "to"), "one"), "with");
		wfx_path(p, sizeof p, "%s/listen/to/one/with", path);
		const char *ty = json_string_value(json_object_get(w, "type"));
		if (!ty || !*ty || strlen(ty) > 200 || strpbrk(ty, " *>$"))
			return bad(c, p, "required: {type: a literal event type} (listen.to.one is implemented)");
		return 0;
	}
	}
	return bad(c, path, "unknown task");
}

static int task(vctx *c, const json_t *t, const char *path, const json_t *vars, int depth,
		const json_t *names)
{
	if (++c->tasks > c->tasks_max)
		return bad(c, path, "too many tasks in the definition");
	if (depth > WF_DEPTH_MAX)
		return bad(c, path, "tasks nested too deep");
	if (!json_is_object(t))
		return bad(c, path, "a task: an object");
	int kind = wf_kind_of(t);
	if (kind < 0) {
		const char *key;
		json_t *v;
		static const char *const common[] = { "if", "input", "output", "export", "then", "metadata", NULL };
		json_object_foreach((json_t *)t, key, v) {
			bool is_common = false;
			for (const char *const *k = common; *k; k++)
				is_common |= !strcmp(*k, key);
			if (!is_common) {
				char p[1024];
				wfx_path(p, sizeof p, "%s/%s", path, key);
				return bad(c, p, "unknown task type");
			}
		}
		return bad(c, path, "no task type (do, set, switch, for, fork, try, wait, raise, call, "
				    "run, emit, listen)");
	}
	const char *allowed[12] = { "if", "input", "output", "export", "then", "metadata",
				    wf_kind_name(kind) };
	size_t na = 7;
	if (kind == WF_FOR)
		allowed[na++] = "while", allowed[na++] = "do";
	if (kind == WF_TRY)
		allowed[na++] = "catch";
	if (kind == WF_CALL)
		allowed[na++] = "with";
	allowed[na] = NULL;
	int rc = only(c, t, path, allowed);
	char p[1024];
	json_t *v;
	if (rc == 0 && (v = json_object_get(t, "if"))) {
		wfx_path(p, sizeof p, "%s/if", path);
		rc = expr_field(c, v, p, vars, false);
	}
	if (rc == 0)
		rc = filter(c, t, "input", "from", path, vars);
	if (rc == 0)
		rc = filter(c, t, "output", "as", path, vars);
	if (rc == 0)
		rc = filter(c, t, "export", "as", path, vars);
	const char *then = json_string_value(json_object_get(t, "then"));
	if (rc == 0 && json_object_get(t, "then") &&
	    (!then || (strcmp(then, "continue") && strcmp(then, "exit") && strcmp(then, "end") &&
		       !json_object_get(names, then)))) {
		wfx_path(p, sizeof p, "%s/then", path);
		rc = bad(c, p, "continue, exit, end or the name of a task in the same list");
	}
	if (rc == 0)
		rc = task_body(c, t, kind, path, vars, depth);
	/* a switch case's then names a task of the list holding the switch */
	json_t *sw = kind == WF_SWITCH ? json_object_get(t, "switch") : NULL;
	size_t i;
	json_t *cs;
	json_array_foreach(sw, i, cs) {
		const char *name;
		json_t *body;
		json_object_foreach(cs, name, body) {
			const char *th = json_string_value(json_object_get(body, "then"));
			if (rc == 0 && th && strcmp(th, "continue") && strcmp(th, "exit") &&
			    strcmp(th, "end") && !json_object_get(names, th)) {
				wfx_path(p, sizeof p, "%s/switch/%zu/%s/then", path, i, name);
				rc = bad(c, p, "continue, exit, end or the name of a task in the same list");
			}
		}
	}
	return rc;
}

static int task_list(vctx *c, const json_t *list, const char *path, const json_t *vars, int depth)
{
	if (!json_is_array(list) || json_array_size(list) == 0)
		return bad(c, path, "a non-empty array of named tasks");
	json_t *names = json_object();
	size_t i;
	json_t *item;
	char p[1024];
	int rc = 0;
	json_array_foreach(list, i, item) {
		wfx_path(p, sizeof p, "%s/%zu", path, i);
		const char *name;
		json_t *t;
		if (!json_is_object(item) || json_object_size(item) != 1) {
			rc = bad(c, p, "a named task: an object of one key");
			break;
		}
		json_object_foreach(item, name, t) {
			if (!good_task_name(name))
				rc = bad(c, p, "a task's name: 1 to 64 of A-Z a-z 0-9 - _ .");
			else if (json_object_get(names, name))
				rc = bad(c, p, "a task's name is used twice in this list");
			else
				json_object_set_new(names, name, json_integer((json_int_t)i));
		}
		if (rc < 0)
			break;
	}
	json_array_foreach(list, i, item) {
		if (rc < 0)
			break;
		const char *name;
		json_t *t;
		json_object_foreach(item, name, t) {
			wfx_path(p, sizeof p, "%s/%zu/%s", path, i, name);
			rc = task(c, t, p, vars, depth, names);
		}
	}
	json_decref(names);
	return rc;
}

int wf_validate(const json_t *doc, unsigned tasks_max, json_t **programs, unsigned *tasks,
		sdk_err *err)
{
	vctx c = { .programs = json_array(), .tasks_max = tasks_max, .err = err };
	int rc;
	if (!json_is_object(doc)) {
		rc = bad(&c, "", "a workflow definition: an object");
		goto out;
	}
	static const char *const top[] = { "document", "input", "output", "do", "use", "evaluate", NULL };
	if ((rc = only(&c, doc, "", top)) < 0)
		goto out;
	json_t *d = json_object_get(doc, "document");
	static const char *const dk[] = { "dsl", "namespace", "name", "version", "title", "summary",
					  "tags", "metadata", NULL };
	if (!json_is_object(d) && (rc = bad(&c, "/document", "required: an object")) < 0)
		goto out;
	if ((rc = only(&c, d, "/document", dk)) < 0)
		goto out;
	static const char *const req[] = { "dsl", "namespace", "name", "version" };
	for (size_t i = 0; i < 4; i++) {
		const char *s = json_string_value(json_object_get(d, req[i]));
		char p[64];
		wfx_path(p, sizeof p, "/document/%s", req[i]);
		if (!s || !good_task_name(s)) {
			rc = bad(&c, p, "required: 1 to 64 of A-Z a-z 0-9 - _ .");
			goto out;
		}
	}
	if (strncmp(json_string_value(json_object_get(d, "dsl")), "1.", 2) != 0) {
		rc = bad(&c, "/document/dsl", "this kernel reads DSL 1.x");
		goto out;
	}
	json_t *ev = json_object_get(doc, "evaluate");
	if (ev && strcmp(json_string_value(json_object_get(ev, "language")) ?: "", "jq") != 0) {
		rc = bad(&c, "/evaluate/language", "only jq is implemented");
		goto out;
	}
	if (json_object_get(doc, "use") && json_object_size(json_object_get(doc, "use")) > 0) {
		rc = bad(&c, "/use", "reusable components are not implemented");
		goto out;
	}
	json_t *vars = wf_base_vars();
	rc = filter(&c, doc, "input", "from", "", vars);
	if (rc == 0)
		rc = filter(&c, doc, "output", "as", "", vars);
	if (rc == 0)
		rc = task_list(&c, json_object_get(doc, "do"), "/do", vars, 0);
	json_decref(vars);
out:
	if (rc < 0) {
		json_decref(c.programs);
		return rc;
	}
	*programs = c.programs;
	*tasks = c.tasks;
	return 0;
}

/* ---- YAML ---- */

#define YAML_NODES_MAX 200000
#define YAML_DEPTH_MAX 64

static json_t *scalar(const yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_stringn(s, len);
	if (len == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
		return json_null();
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_true();
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_false();
	char *end;
	const char *q = s + (*s == '-' || *s == '+');
	if (isdigit((unsigned char)*q)) {
		long long i = strtoll(s, &end, 10);
		if (!*end && strspn(q, "0123456789") == strlen(q))
			return json_integer(i);
		double d = strtod(s, &end);
		if (!*end && strspn(q, "0123456789.eE+-") == strlen(q))
			return json_real(d);
	}
	return json_stringn(s, len);
}

static json_t *node(yaml_document_t *doc, yaml_node_t *n, int depth, size_t *count, sdk_err *err)
{
	if (!n || depth > YAML_DEPTH_MAX || ++*count > YAML_NODES_MAX) {
		sdk_fail(err, SDK_EINVAL, "the document is nested too deep or too large");
		return NULL;
	}
	if (n->type == YAML_SCALAR_NODE)
		return scalar(n);
	if (n->type == YAML_SEQUENCE_NODE) {
		json_t *a = json_array();
		for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
			json_t *v = node(doc, yaml_document_get_node(doc, *i), depth + 1, count, err);
			if (!v) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, v);
		}
		return a;
	}
	json_t *o = json_object();
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		if (!k || k->type != YAML_SCALAR_NODE) {
			sdk_fail(err, SDK_EINVAL, "line %zu: a mapping's key must be a scalar",
				 k ? k->start_mark.line + 1 : 0);
			json_decref(o);
			return NULL;
		}
		json_t *v = node(doc, yaml_document_get_node(doc, p->value), depth + 1, count, err);
		if (!v) {
			json_decref(o);
			return NULL;
		}
		json_object_setn_new(o, (const char *)k->data.scalar.value, k->data.scalar.length, v);
	}
	return o;
}

json_t *wf_yaml_parse(const char *text, size_t len, sdk_err *err)
{
	yaml_parser_t p;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&p)) {
		sdk_fail(err, SDK_EBUSY, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	json_t *out = NULL;
	if (!yaml_parser_load(&p, &doc)) {
		sdk_fail(err, SDK_EINVAL, "line %zu, column %zu: %s", p.problem_mark.line + 1,
			 p.problem_mark.column + 1, p.problem ? p.problem : "malformed YAML");
	} else {
		size_t count = 0;
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		out = root ? node(&doc, root, 0, &count, err) : json_object();
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&p);
	return out;
}
