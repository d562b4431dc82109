#include "kernels/workflow/interp.h"
#include "kernels/workflow/dsl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frame fields: k kind ("task"|"seq"), p position, r JSON pointer of the
 * task (or list) in the definition, n the task's name, ph phase, in the
 * raw input, x the input (task: after input.from; list: the data flowing
 * through it), ch the child frame, br a fork's branch frames, i an index,
 * c the tasks a list started, vars the variables a frame declares, a a
 * try's attempt, ts a try's state, due a timer, eff an effect, res its
 * result, out the output, then a switch's decision, err the error of a
 * fault, fl on the frame that failed itself, ra the times the run was
 * retried from this frame. */

/* The scope: variables declared by enclosing frames. */
typedef struct scope {
	const json_t *vars;
	const struct scope *up;
} scope;

enum { ST_DONE, ST_BLOCKED, ST_FAULT, ST_END, ST_YIELD };

json_t *wf_error(const char *type, int status, const char *title, const char *detail,
		 const char *instance)
{
	json_t *e = json_pack("{s:s+, s:i, s:s}", "type", WF_ERR_BASE, type, "status", status, "title",
			      title);
	if (detail)
		json_object_set_new(e, "detail", json_string(detail));
	if (instance)
		json_object_set_new(e, "instance", json_string(instance));
	return e;
}

static const char *sget(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int64_t iget(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void iset(json_t *o, const char *k, int64_t v)
{
	json_object_set_new(o, k, json_integer((json_int_t)v));
}

static void event(wf_rt *rt, const char *type, const json_t *f, const char *key, json_t *data)
{
	json_t *e = json_pack("{s:s, s:s, s:I}", "type", type, "pos", sget(f, "p"), "at_ms",
			      (json_int_t)rt->now_ms);
	if (sget(f, "n"))
		json_object_set_new(e, "name", json_string(sget(f, "n")));
	if (key)
		json_object_set_new(e, key, data ? data : json_null());
	else if (json_is_object(data))
		json_object_update(e, data);
	json_decref(key ? NULL : data);
	json_array_append_new(rt->events, e);
}

/* The variables an expression of frame f sees. */
static json_t *vars_of(wf_rt *rt, const scope *s, const json_t *f)
{
	json_t *v = json_pack("{s:O, s:O, s:O, s:{s:s, s:s}, s:{s:s, s:s}, s:{}}", "context",
			      rt->context ? rt->context : json_null(), "input",
			      rt->input ? rt->input : json_null(), "workflow",
			      rt->workflow ? rt->workflow : json_null(), "task", "name",
			      sget(f, "n") ? sget(f, "n") : "", "reference", sget(f, "p") ? sget(f, "p") : "",
			      "runtime", "name", "grace", "version", "1.0", "secrets");
	const scope *chain[WF_DEPTH_MAX * 2 + 8];
	size_t n = 0;
	for (; s && n < sizeof chain / sizeof chain[0]; s = s->up)
		chain[n++] = s;
	while (n-- > 0) /* inner declarations shadow outer ones */
		json_object_update(v, (json_t *)chain[n]->vars);
	return v;
}

static int fault(json_t *f, json_t *err)
{
	json_object_set_new(f, "err", err);
	json_object_set_new(f, "fl", json_true());
	return ST_FAULT;
}

static int expr_fault(json_t *f, const sdk_err *e)
{
	return fault(f, wf_error("expression", 400, "an expression failed", e->msg, sget(f, "p")));
}

/* Evaluates tmpl (args: "${}" strings; field: an expression by definition). */
static int eval(wf_rt *rt, const scope *s, json_t *f, const json_t *tmpl, bool field,
		json_t *input, json_t **out)
{
	sdk_err e;
	json_t *v = vars_of(rt, s, f);
	int rc = field ? wfx_eval_field(&rt->x, tmpl, input, v, out, &e)
		       : wfx_eval_value(&rt->x, tmpl, input, v, out, &e);
	json_decref(v);
	if (rc < 0)
		return expr_fault(f, &e);
	return ST_DONE;
}

static json_t *new_frame(const char *kind, const char *pos, const char *ref, const char *name,
			 json_t *x)
{
	json_t *f = json_pack("{s:s, s:s, s:s, s:i}", "k", kind, "p", pos, "r", ref, "ph", 0);
	if (name)
		json_object_set_new(f, "n", json_string(name));
	json_object_set(f, kind[0] == 's' ? "x" : "in", x ? x : json_null());
	return f;
}

static int task_step(wf_rt *rt, json_t *f, const scope *s);
static int seq_step(wf_rt *rt, json_t *f, const scope *s);

/* Steps child frame ch (a list) in the scope its vars declare. */
static int child_step(wf_rt *rt, json_t *ch, const scope *s)
{
	json_t *vars = json_object_get(ch, "vars");
	scope in = { vars, s };
	const char *k = sget(ch, "k");
	if (!strcmp(k, "seq"))
		return seq_step(rt, ch, vars ? &in : s);
	return task_step(rt, ch, vars ? &in : s);
}

static void copy_err(json_t *f, json_t *ch)
{
	json_object_set(f, "err", json_object_get(ch, "err"));
}

static int seq_step(wf_rt *rt, json_t *f, const scope *s)
{
	json_t *list = wf_ref(rt->doc, sget(f, "r"));
	for (;;) {
		json_t *ch = json_object_get(f, "ch");
		if (!ch) {
			size_t i = (size_t)iget(f, "i");
			if (i >= json_array_size(list)) {
				json_object_set(f, "out", json_object_get(f, "x"));
				return ST_DONE;
			}
			if (rt->budget == 0)
				return ST_YIELD;
			rt->budget--;
			const char *name = NULL;
			json_t *t;
			json_object_foreach(json_array_get(list, i), name, t) break;
			int64_t c = iget(f, "c");
			char pos[4096], ref[4096];
			if (c == (int64_t)i)
				wfx_path(pos, sizeof pos, "%s/%s", sget(f, "p"), name);
			else
				wfx_path(pos, sizeof pos, "%s/%s~%lld", sget(f, "p"), name, (long long)c);
			wfx_path(ref, sizeof ref, "%s/%zu/%s", sget(f, "r"), i, name);
			ch = new_frame("task", pos, ref, name, json_object_get(f, "x"));
			json_object_set_new(f, "ch", ch);
			iset(f, "c", c + 1);
		}
		int st = task_step(rt, ch, s);
		if (st == ST_FAULT) {
			copy_err(f, ch);
			return st;
		}
		if (st == ST_END) {
			json_object_set(f, "out", json_object_get(ch, "out"));
			return ST_END;
		}
		if (st != ST_DONE)
			return st;
		json_object_set(f, "x", json_object_get(ch, "out"));
		const json_t *body = wf_ref(rt->doc, sget(ch, "r"));
		const char *then = sget(ch, "then");
		if (!then)
			then = sget(body, "then");
		json_object_del(f, "ch");
		if (!then || !strcmp(then, "continue")) {
			iset(f, "i", iget(f, "i") + 1);
		} else if (!strcmp(then, "exit")) {
			json_object_set(f, "out", json_object_get(f, "x"));
			return ST_DONE;
		} else if (!strcmp(then, "end")) {
			json_object_set(f, "out", json_object_get(f, "x"));
			return ST_END;
		} else {
			size_t j;
			json_t *item;
			json_array_foreach(list, j, item) if (json_object_get(item, then)) break;
			iset(f, "i", (int64_t)j);
		}
	}
}

/* ---- the task types: one function each, a state table over "ph" ---- */

typedef int (*kind_fn)(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw);

static int k_do(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	(void)body;
	json_t *ch = json_object_get(f, "ch");
	if (!ch) {
		char ref[4096];
		wfx_path(ref, sizeof ref, "%s/do", sget(f, "r"));
		ch = new_frame("seq", sget(f, "p"), ref, NULL, json_object_get(f, "x"));
		json_object_set_new(f, "ch", ch);
	}
	int st = seq_step(rt, ch, s);
	if (st == ST_DONE || st == ST_END)
		*raw = json_incref(json_object_get(ch, "out"));
	if (st == ST_FAULT)
		copy_err(f, ch);
	return st;
}

static int k_set(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	return eval(rt, s, f, json_object_get(body, "set"), false, json_object_get(f, "x"), raw);
}

static int k_switch(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	size_t i;
	json_t *cs;
	json_array_foreach(json_object_get(body, "switch"), i, cs) {
		const char *name;
		json_t *c;
		json_object_foreach(cs, name, c) {
			json_t *w = json_object_get(c, "when"), *v = NULL;
			if (w) {
				if (eval(rt, s, f, w, true, json_object_get(f, "x"), &v) == ST_FAULT)
					return ST_FAULT;
				bool yes = sdk_jq_truthy(v);
				json_decref(v);
				if (!yes)
					continue;
			}
			json_object_set(f, "then", json_object_get(c, "then"));
			*raw = json_incref(json_object_get(f, "x"));
			return ST_DONE;
		}
	}
	*raw = json_incref(json_object_get(f, "x"));
	return ST_DONE;
}

static int k_for(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	json_t *spec = json_object_get(body, "for");
	const char *each = sget(spec, "each") ? sget(spec, "each") : "item";
	const char *at = sget(spec, "at") ? sget(spec, "at") : "index";
	if (!json_object_get(f, "items")) {
		json_t *items;
		if (eval(rt, s, f, json_object_get(spec, "in"), true, json_object_get(f, "x"), &items) ==
		    ST_FAULT)
			return ST_FAULT;
		if (json_is_null(items)) {
			json_decref(items);
			items = json_array();
		}
		if (!json_is_array(items)) {
			json_decref(items);
			return fault(f, wf_error("expression", 400, "for.in is not an array", NULL,
						 sget(f, "p")));
		}
		json_object_set_new(f, "items", items);
		json_object_set(f, "d", json_object_get(f, "x"));
		iset(f, "i", 0);
	}
	json_t *items = json_object_get(f, "items");
	for (;;) {
		json_t *ch = json_object_get(f, "ch");
		size_t i = (size_t)iget(f, "i");
		if (!ch) {
			if (i >= json_array_size(items)) {
				*raw = json_incref(json_object_get(f, "d"));
				return ST_DONE;
			}
			json_t *vars = json_pack("{s:O, s:I}", each, json_array_get(items, i), at,
						 (json_int_t)i);
			json_t *w = json_object_get(body, "while");
			if (w) {
				scope in = { vars, s };
				json_t *v;
				if (eval(rt, &in, f, w, true, json_object_get(f, "d"), &v) == ST_FAULT) {
					json_decref(vars);
					return ST_FAULT;
				}
				bool go = sdk_jq_truthy(v);
				json_decref(v);
				if (!go) {
					json_decref(vars);
					*raw = json_incref(json_object_get(f, "d"));
					return ST_DONE;
				}
			}
			char pos[4096], ref[4096];
			wfx_path(pos, sizeof pos, "%s/%zu", sget(f, "p"), i);
			wfx_path(ref, sizeof ref, "%s/do", sget(f, "r"));
			ch = new_frame("seq", pos, ref, NULL, json_object_get(f, "d"));
			json_object_set_new(ch, "vars", vars);
			json_object_set_new(f, "ch", ch);
		}
		int st = child_step(rt, ch, s);
		if (st == ST_FAULT)
			copy_err(f, ch);
		if (st == ST_END)
			*raw = json_incref(json_object_get(ch, "out"));
		if (st != ST_DONE)
			return st;
		json_object_set(f, "d", json_object_get(ch, "out"));
		json_object_del(f, "ch");
		iset(f, "i", (int64_t)i + 1);
	}
}

static int k_fork(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	json_t *spec = json_object_get(body, "fork");
	json_t *branches = json_object_get(spec, "branches");
	bool compete = json_is_true(json_object_get(spec, "compete"));
	json_t *br = json_object_get(f, "br");
	if (!br) {
		br = json_array();
		size_t i;
		json_t *item;
		json_array_foreach(branches, i, item) {
			const char *name;
			json_t *t;
			json_object_foreach(item, name, t) {
				char pos[4096], ref[4096];
				wfx_path(pos, sizeof pos, "%s/%s", sget(f, "p"), name);
				wfx_path(ref, sizeof ref, "%s/fork/branches/%zu/%s", sget(f, "r"), i, name);
				json_array_append_new(br, new_frame("task", pos, ref, name, json_object_get(f, "x")));
			}
		}
		json_object_set_new(f, "br", br);
	}
	int agg = ST_DONE;
	size_t i;
	json_t *b;
	json_array_foreach(br, i, b) {
		if (json_is_true(json_object_get(b, "done")))
			continue;
		int st = task_step(rt, b, s);
		if (st == ST_FAULT) {
			copy_err(f, b);
			return ST_FAULT;
		}
		if (st == ST_DONE || st == ST_END) {
			if (compete) {
				*raw = json_incref(json_object_get(b, "out"));
				json_object_set_new(f, "won", json_string(sget(b, "n")));
				json_object_del(f, "br"); /* the others' effects are dropped */
				return ST_DONE;
			}
			json_array_set_new(br, i, json_pack("{s:b, s:O}", "done", 1, "out",
							    json_object_get(b, "out")));
			continue;
		}
		if (agg == ST_DONE || st == ST_YIELD)
			agg = st;
	}
	if (agg != ST_DONE)
		return agg;
	json_t *outs = json_array();
	json_array_foreach(br, i, b) json_array_append(outs, json_object_get(b, "out"));
	*raw = outs;
	return ST_DONE;
}

static bool error_matches(const json_t *with, const json_t *err)
{
	const char *key;
	json_t *want;
	json_object_foreach((json_t *)with, key, want) {
		json_t *have = json_object_get(err, key);
		if (!strcmp(key, "type") && json_is_string(want) && json_is_string(have)) {
			const char *w = json_string_value(want), *h = json_string_value(have);
			const char *tail = strrchr(h, '/');
			if (strcmp(w, h) != 0 && !(tail && !strcmp(w, tail + 1)))
				return false;
		} else if (!json_equal(want, have)) {
			return false;
		}
	}
	return true;
}

static int64_t retry_delay(wf_rt *rt, const json_t *retry, int64_t attempt)
{
	int64_t d = json_object_get(retry, "delay") ? wf_duration_ms(json_object_get(retry, "delay")) : 0;
	json_t *bo = json_object_get(retry, "backoff");
	if (json_object_get(bo, "exponential")) {
		for (int64_t i = 1; i < attempt && d < 86400000LL * 365; i++)
			d *= 2;
	} else if (json_object_get(bo, "linear")) {
		d *= attempt;
	}
	json_t *j = json_object_get(retry, "jitter");
	if (j) {
		int64_t lo = wf_duration_ms(json_object_get(j, "from"));
		int64_t hi = wf_duration_ms(json_object_get(j, "to"));
		if (hi > lo && rt->random)
			d += lo + (int64_t)(rt->random() % (uint64_t)(hi - lo + 1));
		else
			d += lo;
	}
	return d;
}

static void try_body(json_t *f)
{
	char pos[4096], ref[4096];
	wfx_path(pos, sizeof pos, "%s/try%lld", sget(f, "p"), (long long)iget(f, "a"));
	wfx_path(ref, sizeof ref, "%s/try", sget(f, "r"));
	json_object_set_new(f, "ch", new_frame("seq", pos, ref, NULL, json_object_get(f, "x")));
	iset(f, "ts", 0);
}

static int k_try(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	json_t *cat = json_object_get(body, "catch");
	if (!json_object_get(f, "a")) {
		iset(f, "a", 1);
		iset(f, "t0", rt->now_ms);
		try_body(f);
	}
	for (;;) {
		int64_t ts = iget(f, "ts");
		json_t *ch = json_object_get(f, "ch");
		if (ts == 1) { /* waiting out a retry's delay */
			int64_t due = iget(f, "due");
			if (rt->now_ms < due) {
				if (!rt->next_due || due < rt->next_due)
					rt->next_due = due;
				return ST_BLOCKED;
			}
			json_object_del(f, "due");
			iset(f, "a", iget(f, "a") + 1);
			try_body(f);
			continue;
		}
		int st = child_step(rt, ch, s);
		if (st == ST_DONE || st == ST_END) {
			*raw = json_incref(json_object_get(ch, "out"));
			return st;
		}
		if (st != ST_FAULT)
			return st;
		json_t *err = json_object_get(ch, "err");
		if (ts == 2) { /* the catch's own tasks failed */
			copy_err(f, ch);
			return ST_FAULT;
		}
		/* is it caught? */
		bool caught = error_matches(json_object_get(json_object_get(cat, "errors"), "with"), err);
		const char *as = sget(cat, "as") ? sget(cat, "as") : "error";
		json_t *vars = json_pack("{s:O}", as, err);
		scope in = { vars, s };
		static const char *const wh[] = { "when", "exceptWhen" };
		for (int w = 0; w < 2 && caught; w++) {
			json_t *x = json_object_get(cat, wh[w]), *v;
			if (!x)
				continue;
			if (eval(rt, &in, f, x, true, json_object_get(f, "x"), &v) == ST_FAULT) {
				json_decref(vars);
				return ST_FAULT;
			}
			caught = sdk_jq_truthy(v) == (w == 0);
			json_decref(v);
		}
		if (!caught) {
			json_decref(vars);
			copy_err(f, ch);
			return ST_FAULT;
		}
		json_t *retry = json_object_get(cat, "retry");
		json_t *lim = json_object_get(retry, "limit");
		json_t *count = json_object_get(json_object_get(lim, "attempt"), "count");
		int64_t a = iget(f, "a");
		int64_t delay = retry ? retry_delay(rt, retry, a) : 0;
		bool again = retry != NULL;
		if (count && a - 1 >= json_integer_value(count))
			again = false;
		if (json_object_get(lim, "duration") &&
		    rt->now_ms + delay - iget(f, "t0") > wf_duration_ms(json_object_get(lim, "duration")))
			again = false;
		if (again) {
			event(rt, "task.retrying", f, NULL, json_pack("{s:O, s:I, s:I}", "error", err,
								       "attempt", (json_int_t)(a + 1),
								       "delay_ms", (json_int_t)delay));
			iset(f, "ts", 1);
			iset(f, "due", rt->now_ms + delay);
			json_object_del(f, "ch");
			json_decref(vars);
			continue;
		}
		json_t *d = json_object_get(cat, "do");
		if (!d) {
			json_decref(vars);
			*raw = json_incref(json_object_get(f, "x"));
			return ST_DONE;
		}
		char pos[4096], ref[4096];
		wfx_path(pos, sizeof pos, "%s/catch", sget(f, "p"));
		wfx_path(ref, sizeof ref, "%s/catch/do", sget(f, "r"));
		json_t *c = new_frame("seq", pos, ref, NULL, json_object_get(f, "x"));
		json_object_set_new(c, "vars", vars);
		json_object_set_new(f, "ch", c);
		iset(f, "ts", 2);
	}
}

static int k_wait(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	(void)s;
	if (!json_object_get(f, "due"))
		iset(f, "due", rt->now_ms + wf_duration_ms(json_object_get(body, "wait")));
	int64_t due = iget(f, "due");
	if (rt->now_ms < due) {
		if (!rt->next_due || due < rt->next_due)
			rt->next_due = due;
		return ST_BLOCKED;
	}
	*raw = json_incref(json_object_get(f, "x"));
	return ST_DONE;
}

static int k_raise(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	(void)raw;
	json_t *err;
	if (eval(rt, s, f, json_object_get(json_object_get(body, "raise"), "error"), false,
		 json_object_get(f, "x"), &err) == ST_FAULT)
		return ST_FAULT;
	if (!json_object_get(err, "instance"))
		json_object_set_new(err, "instance", json_string(sget(f, "p")));
	return fault(f, err);
}

/* The idempotency key of an effect: run, position, attempt (a retry of
 * the run from this task counts one more). */
static json_t *effect(json_t *f, const char *kind)
{
	char attempt[32];
	snprintf(attempt, sizeof attempt, "%lld", (long long)iget(f, "ra") + 1);
	return json_pack("{s:s, s:s, s:s}", "kind", kind, "pos", sget(f, "p"), "attempt", attempt);
}

static int k_call(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	json_t *res = json_object_get(f, "res");
	if (!json_object_get(f, "eff")) {
		json_t *with;
		if (eval(rt, s, f, json_object_get(body, "with"), false, json_object_get(f, "x"), &with) ==
		    ST_FAULT)
			return ST_FAULT;
		json_t *ep = json_object_get(with, "endpoint");
		if (json_is_object(ep))
			ep = json_object_get(ep, "uri");
		if (!json_is_string(ep)) {
			json_decref(with);
			return fault(f, wf_error("validation", 400, "call: the endpoint is not a string", NULL,
						 sget(f, "p")));
		}
		json_t *e = effect(f, "http");
		json_object_set(e, "endpoint", ep);
		json_object_set(e, "method", json_object_get(with, "method"));
		if (json_object_get(with, "headers"))
			json_object_set(e, "headers", json_object_get(with, "headers"));
		if (json_object_get(with, "query"))
			json_object_set(e, "query", json_object_get(with, "query"));
		if (json_object_get(with, "body"))
			json_object_set(e, "body", json_object_get(with, "body"));
		json_decref(with);
		json_object_set_new(f, "eff", e);
		return ST_BLOCKED;
	}
	if (!res)
		return ST_BLOCKED;
	int status = (int)iget(res, "status");
	json_t *content = json_object_get(res, "content");
	if (status < 200 || status >= 300) {
		char title[96];
		snprintf(title, sizeof title, "the call answered %d", status);
		json_t *err = wf_error("communication", status ? status : 503,
				       status ? title : "the call had no answer", sget(res, "error"),
				       sget(f, "p"));
		json_object_set(err, "response", content ? content : json_null());
		json_object_del(f, "eff");
		json_object_del(f, "res");
		return fault(f, err);
	}
	const char *out = sget(json_object_get(wf_ref(rt->doc, sget(f, "r")), "with"), "output");
	(void)body;
	if (out && !strcmp(out, "response"))
		*raw = json_pack("{s:i, s:O}", "statusCode", status, "content", content ? content : json_null());
	else
		*raw = json_incref(content ? content : json_null());
	return ST_DONE;
}

static int k_run(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	json_t *res = json_object_get(f, "res");
	json_t *spec = json_object_get(body, "run");
	if (!json_object_get(f, "eff")) {
		json_t *sh;
		if (eval(rt, s, f, json_object_get(spec, "shell"), false, json_object_get(f, "x"), &sh) ==
		    ST_FAULT)
			return ST_FAULT;
		json_t *argv = json_pack("[s, s, s, s]", "/bin/sh", "-c", sget(sh, "command") ?: "", "sh");
		json_t *args = json_object_get(sh, "arguments");
		size_t i;
		json_t *a;
		json_array_foreach(args, i, a) {
			if (json_is_string(a))
				json_array_append(argv, a);
			else
				json_array_append_new(argv, json_string(""));
		}
		json_t *e = effect(f, "run");
		json_object_set_new(e, "argv", argv);
		json_decref(sh);
		json_object_set_new(f, "eff", e);
		return ST_BLOCKED;
	}
	if (!res)
		return ST_BLOCKED;
	json_t *job = json_object_get(res, "job");
	const char *state = sget(job, "state");
	if (!job || !state || strcmp(state, "succeeded") != 0 || iget(job, "exit_code") != 0) {
		json_t *err = wf_error("runtime", 500, "the process failed",
				       sget(res, "error") ? sget(res, "error") : state, sget(f, "p"));
		json_object_set(err, "job", job ? job : json_null());
		json_object_del(f, "eff");
		json_object_del(f, "res");
		return fault(f, err);
	}
	const char *ret = sget(spec, "return") ? sget(spec, "return") : "stdout";
	if (!strcmp(ret, "code"))
		*raw = json_integer(iget(job, "exit_code"));
	else if (!strcmp(ret, "none"))
		*raw = json_null();
	else if (!strcmp(ret, "all"))
		*raw = json_pack("{s:I, s:O}", "code", (json_int_t)iget(job, "exit_code"), "stdout",
				 json_object_get(res, "stdout") ?: json_null());
	else
		*raw = json_incref(json_object_get(res, "stdout") ?: json_null());
	return ST_DONE;
}

static int k_emit(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	json_t *res = json_object_get(f, "res");
	if (!json_object_get(f, "eff")) {
		json_t *with;
		if (eval(rt, s, f, json_object_get(json_object_get(json_object_get(body, "emit"), "event"), "with"),
			 false, json_object_get(f, "x"), &with) == ST_FAULT)
			return ST_FAULT;
		json_t *e = effect(f, "emit");
		json_object_set_new(e, "event", with);
		json_object_set_new(f, "eff", e);
		return ST_BLOCKED;
	}
	if (!res)
		return ST_BLOCKED;
	int status = (int)iget(res, "status");
	if (status < 200 || status >= 300) {
		json_object_del(f, "eff");
		json_object_del(f, "res");
		return fault(f, wf_error("communication", status ? status : 503,
					 "the event could not be published", sget(res, "error"),
					 sget(f, "p")));
	}
	*raw = json_incref(json_object_get(f, "x"));
	return ST_DONE;
}

static int k_listen(wf_rt *rt, json_t *f, const json_t *body, const scope *s, json_t **raw)
{
	(void)rt, (void)s;
	json_t *res = json_object_get(f, "res");
	if (!json_object_get(f, "eff")) {
		json_t *e = effect(f, "listen");
		json_object_set(e, "type", json_object_get(json_object_get(json_object_get(
							   json_object_get(body, "listen"), "to"), "one"), "with") ?
						   json_object_get(json_object_get(json_object_get(json_object_get(
							   json_object_get(body, "listen"), "to"), "one"), "with"), "type")
						   : json_null());
		json_object_set_new(f, "eff", e);
		return ST_BLOCKED;
	}
	if (!res)
		return ST_BLOCKED;
	*raw = json_pack("[O]", json_object_get(res, "event") ?: json_null());
	return ST_DONE;
}

static const kind_fn kinds[WF_KIND_N] = {
	[WF_DO] = k_do,       [WF_SET] = k_set,   [WF_SWITCH] = k_switch, [WF_FOR] = k_for,
	[WF_FORK] = k_fork,   [WF_TRY] = k_try,   [WF_WAIT] = k_wait,     [WF_RAISE] = k_raise,
	[WF_CALL] = k_call,   [WF_RUN] = k_run,   [WF_EMIT] = k_emit,     [WF_LISTEN] = k_listen,
};

/* A task: phase 0 enters it (if, input.from), 1 runs its body, 2 is done. */
static int task_step(wf_rt *rt, json_t *f, const scope *s)
{
	const json_t *body = wf_ref(rt->doc, sget(f, "r"));
	int kind = wf_kind_of(body);
	if (kind < 0)
		return fault(f, wf_error("runtime", 500, "the definition lost a task", NULL, sget(f, "p")));
	if (json_object_get(f, "err"))
		return ST_FAULT; /* a faulted frame stays faulted until the run is retried */
	json_t *in = json_object_get(f, "in");
	if (iget(f, "ph") == 2)
		return ST_DONE;
	if (iget(f, "ph") == 0) {
		json_t *cond = json_object_get(body, "if"), *v;
		if (cond) {
			if (eval(rt, s, f, cond, true, in, &v) == ST_FAULT)
				return ST_FAULT;
			bool go = sdk_jq_truthy(v);
			json_decref(v);
			if (!go) {
				json_object_set(f, "out", in);
				iset(f, "ph", 2);
				event(rt, "task.skipped", f, NULL, NULL);
				return ST_DONE;
			}
		}
		json_t *from = json_object_get(json_object_get(body, "input"), "from");
		if (from) {
			if (eval(rt, s, f, from, true, in, &v) == ST_FAULT)
				return ST_FAULT;
			json_object_set_new(f, "x", v);
		} else {
			json_object_set(f, "x", in);
		}
		event(rt, "task.started", f, "kind", json_string(wf_kind_name(kind)));
		iset(f, "ph", 1);
	}
	json_t *raw = NULL;
	int st = kinds[kind](rt, f, body, s, &raw);
	if (st == ST_FAULT) {
		event(rt, "task.faulted", f, "error", json_incref(json_object_get(f, "err")));
		return st;
	}
	if (st != ST_DONE && st != ST_END)
		return st;
	json_t *out = raw, *v;
	json_t *as = json_object_get(json_object_get(body, "output"), "as");
	if (as) {
		int r = eval(rt, s, f, as, true, raw, &out);
		json_decref(raw);
		if (r == ST_FAULT)
			return ST_FAULT;
	}
	json_t *ex = json_object_get(json_object_get(body, "export"), "as");
	if (ex) {
		if (eval(rt, s, f, ex, true, out, &v) == ST_FAULT) {
			json_decref(out);
			return ST_FAULT;
		}
		json_decref(rt->context);
		rt->context = v;
	}
	/* done: only what the parent reads is kept */
	json_t *keep = json_pack("{s:s, s:s, s:s, s:i, s:o}", "k", "task", "p", sget(f, "p"), "r",
				 sget(f, "r"), "ph", 2, "out", out);
	if (sget(f, "then"))
		json_object_set(keep, "then", json_object_get(f, "then"));
	json_object_set(keep, "n", json_object_get(f, "n"));
	json_object_update(f, keep);
	const char *k;
	void *tmp;
	json_t *val;
	json_object_foreach_safe(f, tmp, k, val) if (!json_object_get(keep, k)) json_object_del(f, k);
	json_decref(keep);
	event(rt, "task.completed", f, "output", json_incref(out));
	return st;
}

json_t *wf_state_new(wf_rt *rt, json_t *input, json_t **error)
{
	json_t *x = json_incref(input);
	json_t *from = json_object_get(json_object_get(rt->doc, "input"), "from");
	json_t *root = new_frame("seq", "", "/do", NULL, NULL);
	if (from) {
		json_t *v = NULL;
		if (eval(rt, NULL, root, from, true, input, &v) == ST_FAULT) {
			*error = json_incref(json_object_get(root, "err"));
			json_decref(root);
			json_decref(x);
			return NULL;
		}
		json_decref(x);
		x = v;
	}
	json_object_set_new(root, "x", x);
	return json_pack("{s:o, s:{}}", "root", root, "context");
}

wf_step wf_pump(wf_rt *rt, json_t *state, json_t **result)
{
	json_t *root = json_object_get(state, "root");
	rt->context = json_incref(json_object_get(state, "context"));
	rt->next_due = 0;
	int st = json_object_get(root, "err") ? ST_FAULT : seq_step(rt, root, NULL);
	json_object_set_new(state, "context", rt->context ? rt->context : json_object());
	rt->context = NULL;
	if (st == ST_FAULT) {
		*result = json_incref(json_object_get(root, "err"));
		return WF_ST_FAULT;
	}
	if (st == ST_DONE || st == ST_END) {
		json_t *out = json_object_get(root, "out");
		json_t *as = json_object_get(json_object_get(rt->doc, "output"), "as");
		if (as) {
			json_t *v;
			rt->context = json_incref(json_object_get(state, "context"));
			int r = eval(rt, NULL, root, as, true, out, &v);
			json_decref(rt->context);
			rt->context = NULL;
			if (r == ST_FAULT) {
				*result = json_incref(json_object_get(root, "err"));
				return WF_ST_FAULT;
			}
			*result = v;
		} else {
			*result = json_incref(out);
		}
		return WF_ST_DONE;
	}
	return st == ST_YIELD ? WF_ST_YIELD : WF_ST_BLOCKED;
}

static void walk(json_t *f, void (*fn)(json_t *f, void *arg), void *arg)
{
	if (!json_is_object(f))
		return;
	fn(f, arg);
	walk(json_object_get(f, "ch"), fn, arg);
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(f, "br"), i, b) walk(b, fn, arg);
}

static void add_pending(json_t *f, void *arg)
{
	if (json_object_get(f, "eff") && !json_object_get(f, "res") && !json_object_get(f, "err"))
		json_array_append(arg, f);
}

void wf_pending(json_t *state, json_t *out)
{
	walk(json_object_get(state, "root"), add_pending, out);
}

struct find {
	const char *pos;
	json_t *found;
};

static void find_one(json_t *f, void *arg)
{
	struct find *q = arg;
	const char *p = sget(f, "p");
	if (!q->found && p && !strcmp(p, q->pos) && !strcmp(sget(f, "k"), "task"))
		q->found = f;
}

json_t *wf_frame(json_t *state, const char *pos)
{
	struct find q = { pos, NULL };
	walk(json_object_get(state, "root"), find_one, &q);
	return q.found;
}

static void reset_failed(json_t *f, void *arg)
{
	int *n = arg;
	if (!json_object_get(f, "err"))
		return;
	if (json_is_true(json_object_get(f, "fl"))) {
		/* the failed task starts again from its beginning */
		json_t *keep = json_pack("{s:O, s:O, s:O, s:i, s:O, s:I}", "k", json_object_get(f, "k"),
					 "p", json_object_get(f, "p"), "r", json_object_get(f, "r"),
					 "ph", 0, "in", json_object_get(f, "in") ?: json_null(), "ra",
					 (json_int_t)(iget(f, "ra") + 1));
		if (json_object_get(f, "n"))
			json_object_set(keep, "n", json_object_get(f, "n"));
		json_object_clear(f);
		json_object_update(f, keep);
		json_decref(keep);
		(*n)++;
		return;
	}
	json_object_del(f, "err");
}

int wf_state_retry(json_t *state)
{
	int n = 0;
	walk(json_object_get(state, "root"), reset_failed, &n);
	return n > 0 ? 0 : -1;
}
