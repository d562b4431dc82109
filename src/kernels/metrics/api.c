/* The Prometheus HTTP API (web/api/v1/api.go of Prometheus 2.42), so any
 * Prometheus client (Grafana, promtool, scripts) can use Grace as a data
 * source: /api/v1/query, query_range, series, labels, label/NAME/values,
 * targets, metadata, status/buildinfo, status/tsdb, query_exemplars, and
 * /federate; plus /write, Grace's own way in for rule results and
 * imports. Parameters come from the query string and, for POST, from an
 * application/x-www-form-urlencoded body, as Prometheus reads them.
 * Answers and errors have Prometheus's shapes:
 *   {"status":"success","data":...}
 *   {"status":"error","errorType":"bad_data","error":"..."}
 * Queries, series and label lookups run on the worker pool; the loop only
 * parses and answers. */
#include "kernels/metrics/metrics.h"

#include "kernels/metrics/expo.h"
#include "kernels/metrics/promql/eval.h"
#include "sdk/rfc3339.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PARAMS_MAX 256
#define MATCHES_MAX 64
#define RANGE_POINTS_MAX 11000
#define WRITE_SAMPLES_MAX 200000
#define FEDERATE_LOOKBACK_MS (5 * 60 * 1000)
/* Prometheus's minimum and maximum times, as strings clients send. */
#define MIN_TIME_STR "-292273086-05-16T16:47:06Z"
#define MAX_TIME_STR "292277025-08-18T07:12:54.999999999Z"
#define MIN_TIME_MS (INT64_MIN / 1000 / 2)
#define MAX_TIME_MS (INT64_MAX / 1000 / 2)

/* ---- parameters */

typedef struct params {
	char *name[PARAMS_MAX];
	char *value[PARAMS_MAX];
	size_t n;
	char *buf; /* every name and value, decoded */
} params;

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes [s, s+n) in place into d (which may be s): %XX and '+'. */
static size_t url_decode(const char *s, size_t n, char *d)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			d[o++] = ' ';
		} else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
			   hexval(s[i + 2]) >= 0) {
			d[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			d[o++] = s[i];
		}
	}
	d[o] = '\0';
	return o;
}

static int params_add(params *p, char **cur, const char *s, size_t n)
{
	if (p->n == PARAMS_MAX)
		return -1;
	const char *eq = memchr(s, '=', n);
	size_t kn = eq ? (size_t)(eq - s) : n;
	p->name[p->n] = *cur;
	*cur += url_decode(s, kn, *cur) + 1;
	p->value[p->n] = *cur;
	*cur += (eq ? url_decode(eq + 1, n - kn - 1, *cur) : (**cur = '\0', 0)) + 1;
	p->n++;
	return 0;
}

static int params_parse_into(params *p, char **cur, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *amp = memchr(s + i, '&', n - i);
		size_t len = amp ? (size_t)(amp - (s + i)) : n - i;
		if (len && params_add(p, cur, s + i, len) < 0)
			return -1;
		i += len + 1;
	}
	return 0;
}

/* The form: the body's pairs first (POST), then the query string's, so
 * param() finds the body's as Go's FormValue does. */
static int params_read(sdk_req *req, params *p)
{
	memset(p, 0, sizeof *p);
	const char *qs = sdk_req_query_string(req);
	size_t qn = qs ? strlen(qs) : 0;
	size_t bn = 0;
	const char *body = NULL;
	const char *ct = sdk_req_header(req, "Content-Type");
	if (!strcmp(sdk_req_method(req), "POST") && ct &&
	    !strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
		struct evbuffer *b = sdk_req_body(req);
		bn = evbuffer_get_length(b);
		body = bn ? (const char *)evbuffer_pullup(b, -1) : NULL;
	}
	p->buf = malloc(2 * (qn + bn) + 16);
	if (!p->buf)
		return -1;
	char *cur = p->buf;
	if (body && params_parse_into(p, &cur, body, bn) < 0)
		return -1;
	if (qs && params_parse_into(p, &cur, qs, qn) < 0)
		return -1;
	return 0;
}

static void params_free(params *p) { free(p->buf); }

static const char *param(const params *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->name[i], name))
			return p->value[i];
	return NULL;
}

/* ---- JSON out */

static void json_str(struct evbuffer *b, const char *s)
{
	evbuffer_add(b, "\"", 1);
	const char *run = s;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		evbuffer_add(b, run, (size_t)(s - run));
		switch (c) {
		case '"': evbuffer_add(b, "\\\"", 2); break;
		case '\\': evbuffer_add(b, "\\\\", 2); break;
		case '\n': evbuffer_add(b, "\\n", 2); break;
		case '\r': evbuffer_add(b, "\\r", 2); break;
		case '\t': evbuffer_add(b, "\\t", 2); break;
		default: evbuffer_add_printf(b, "\\u%04x", c); break;
		}
		run = s + 1;
	}
	evbuffer_add(b, run, (size_t)(s - run));
	evbuffer_add(b, "\"", 1);
}

static void json_labels(struct evbuffer *b, const lbl_set *ls)
{
	evbuffer_add(b, "{", 1);
	for (uint32_t i = 0; i < ls->n; i++) {
		if (i)
			evbuffer_add(b, ",", 1);
		json_str(b, ls->p[i].name);
		evbuffer_add(b, ":", 1);
		json_str(b, ls->p[i].value);
	}
	evbuffer_add(b, "}", 1);
}

/* [1435781451.781,"1"] */
static void json_point(struct evbuffer *b, int64_t t, double v)
{
	char ts[48], val[400];
	pq_format_value((double)t / 1000.0, ts, sizeof ts);
	pq_format_value(v, val, sizeof val);
	evbuffer_add_printf(b, "[%s,\"%s\"]", ts, val);
}

static const char *error_type(int status)
{
	switch (status) {
	case 400: return "bad_data";
	case 404: return "not_found";
	case 422: return "execution";
	case 503: return "unavailable";
	default: return "internal";
	}
}

static void reply_buf(sdk_req *req, int http, struct evbuffer *b)
{
	sdk_reply_raw(req, http, "application/json", b);
}

/* An error in Prometheus's shape; errorType from the HTTP status unless
 * given ("timeout" and "canceled" share 503 with "unavailable"). */
static void api_error(sdk_req *req, int http, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void api_error(sdk_req *req, int http, const char *type, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	evbuffer_add_printf(b, "{\"status\":\"error\",\"errorType\":\"%s\",\"error\":",
			    type ? type : error_type(http));
	json_str(b, msg);
	evbuffer_add(b, "}", 1);
	reply_buf(req, http, b);
	evbuffer_free(b);
}

/* ---- times and durations as Prometheus reads them */

static bool parse_time(const char *s, int64_t *ms)
{
	if (!s || !*s)
		return false;
	char *end;
	double f = strtod(s, &end);
	if (!*end && end != s && isfinite(f)) {
		double sec = trunc(f);
		double frac = round((f - sec) * 1000) / 1000;
		*ms = (int64_t)sec * 1000 + (int64_t)llround(frac * 1000);
		return true;
	}
	if (!strcmp(s, MIN_TIME_STR) || !strcmp(s, "-292273086-05-16T16:47:06-00:00")) {
		*ms = MIN_TIME_MS;
		return true;
	}
	if (!strcmp(s, MAX_TIME_STR)) {
		*ms = MAX_TIME_MS;
		return true;
	}
	return sdk_rfc3339_parse_ms(s, ms);
}

static bool parse_duration(const char *s, int64_t *ms)
{
	if (!s || !*s)
		return false;
	char *end;
	double f = strtod(s, &end);
	if (!*end && end != s) {
		if (!isfinite(f) || fabs(f) > 9.2e15)
			return false;
		*ms = (int64_t)llround(f * 1000);
		return true;
	}
	return pq_parse_duration(s, strlen(s), ms);
}

/* ---- jobs on the pool */

typedef struct job job;

struct job {
	mkernel *m;
	sdk_req *req;
	void (*work)(job *j);
	/* in */
	pq_expr *expr;
	pq_opts opts;
	pq_expr *match[MATCHES_MAX];
	size_t n_match;
	int64_t start, end;
	char label[LBL_NAME_MAX + 1];
	bool is_query, is_write;
	char *body; /* /write: the request's body (owned) */
	size_t body_len;
	/* out */
	size_t appended;
	int http;
	const char *ctype;
	struct evbuffer *out;
	int64_t t0;
	int status;
};

static void job_free(job *j)
{
	free(j->body);
	pq_expr_free(j->expr);
	for (size_t i = 0; i < j->n_match; i++)
		pq_expr_free(j->match[i]);
	if (j->out)
		evbuffer_free(j->out);
	free(j);
}

static void job_work(void *arg)
{
	job *j = arg;
	j->work(j);
}

static void job_done(void *arg)
{
	job *j = arg;
	mkernel *m = j->m;
	if (j->is_query) {
		m->st.queries++;
		m->st.query_seconds += (double)(sdk_mono_ms() - j->t0) / 1e3;
		if (j->http != 200)
			m->st.query_failures++;
		if (j->status == SDK_ETIMEOUT)
			m->st.query_timeouts++;
	}
	if (j->is_write && j->http == 200) {
		m->st.writes++;
		m->st.written_samples += j->appended;
	}
	if (!j->out) {
		/* The pool dropped it (shutdown) before it ran. */
		api_error(j->req, 503, "unavailable", "the metrics kernel is shutting down");
	} else {
		sdk_reply_raw(j->req, j->http, j->ctype ? j->ctype : "application/json", j->out);
	}
	job_free(j);
}

static void job_submit(mkernel *m, job *j)
{
	j->m = m;
	j->t0 = sdk_mono_ms();
	int rc = sdk_pool_submit(m->queries, job_work, job_done, j);
	if (rc < 0) {
		m->st.queries_refused++;
		sdk_req_add_header(j->req, "Retry-After", "1");
		api_error(j->req, 503, "unavailable", "too many queries are waiting; try again");
		job_free(j);
	}
}

static job *job_new(sdk_req *req)
{
	job *j = calloc(1, sizeof *j);
	if (!j)
		sdk_reply_error(req, 500, "internal", "out of memory");
	else
		j->req = req;
	return j;
}

/* Writes a failure into the job's answer (worker side). */
static void job_error(job *j, int http, const char *type, const char *msg)
{
	evbuffer_drain(j->out, evbuffer_get_length(j->out));
	evbuffer_add_printf(j->out, "{\"status\":\"error\",\"errorType\":\"%s\",\"error\":", type);
	json_str(j->out, msg);
	evbuffer_add(j->out, "}", 1);
	j->http = http;
}

static void job_errorf(job *j, int http, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void job_errorf(job *j, int http, const char *type, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	job_error(j, http, type ? type : error_type(http), msg);
}

/* A success answer of Prometheus's shape (worker side); takes data. */
static void job_data(job *j, json_t *data)
{
	json_t *doc = json_pack("{s:s, s:o}", "status", "success", "data", data);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text) {
		job_error(j, 500, "internal", "out of memory");
		return;
	}
	evbuffer_add(j->out, text, strlen(text));
	free(text);
	j->http = 200;
}

static void render_result(struct evbuffer *b, const pq_result *r)
{
	evbuffer_add_printf(b, "{\"status\":\"success\",\"data\":{\"resultType\":");
	switch (r->type) {
	case PQ_SCALAR:
		evbuffer_add_printf(b, "\"scalar\",\"result\":");
		json_point(b, r->t, r->m.n ? r->m.s[0].p[0].v : NAN);
		break;
	case PQ_STRING: {
		char ts[48];
		pq_format_value((double)r->t / 1000.0, ts, sizeof ts);
		evbuffer_add_printf(b, "\"string\",\"result\":[%s,", ts);
		json_str(b, r->str);
		evbuffer_add(b, "]", 1);
		break;
	}
	case PQ_VECTOR:
		evbuffer_add_printf(b, "\"vector\",\"result\":[");
		for (size_t i = 0; i < r->m.n; i++) {
			evbuffer_add_printf(b, "%s{\"metric\":", i ? "," : "");
			json_labels(b, r->m.s[i].ls);
			evbuffer_add_printf(b, ",\"value\":");
			json_point(b, r->m.s[i].p[0].t, r->m.s[i].p[0].v);
			evbuffer_add(b, "}", 1);
		}
		evbuffer_add(b, "]", 1);
		break;
	default:
		evbuffer_add_printf(b, "\"matrix\",\"result\":[");
		for (size_t i = 0; i < r->m.n; i++) {
			evbuffer_add_printf(b, "%s{\"metric\":", i ? "," : "");
			json_labels(b, r->m.s[i].ls);
			evbuffer_add_printf(b, ",\"values\":[");
			for (size_t k = 0; k < r->m.s[i].n; k++) {
				if (k)
					evbuffer_add(b, ",", 1);
				json_point(b, r->m.s[i].p[k].t, r->m.s[i].p[k].v);
			}
			evbuffer_add(b, "]}", 2);
		}
		evbuffer_add(b, "]", 1);
		break;
	}
	evbuffer_add(b, "}}", 2);
}

static void work_query(job *j)
{
	j->out = evbuffer_new();
	if (!j->out)
		return;
	pq_result r;
	sdk_err e = { "" };
	int rc = pq_eval(j->expr, &j->opts, &r, &e);
	j->status = rc;
	if (rc == 0) {
		j->http = 200;
		render_result(j->out, &r);
		pq_result_free(&r);
		return;
	}
	if (rc == PQ_EBADTYPE) {
		char msg[300];
		snprintf(msg, sizeof msg, "invalid parameter \"query\": %s", e.msg);
		job_error(j, 400, "bad_data", msg);
	} else if (rc == SDK_ETIMEOUT) {
		job_error(j, 503, "timeout", e.msg);
	} else if (rc == PQ_EEXEC) {
		job_error(j, 422, "execution", e.msg);
	} else {
		job_error(j, 500, "internal", e.msg);
	}
}

/* The query parameter, parsed; answers 400 and returns NULL when bad. */
static pq_expr *parse_query(sdk_req *req, const params *p)
{
	const char *q = param(p, "query");
	pq_expr *x;
	sdk_err e;
	if (pq_parse(q ? q : "", &x, &e)) {
		api_error(req, 400, NULL, "invalid parameter \"query\": %s", e.msg);
		return NULL;
	}
	return x;
}

/* The timeout parameter, bounded by query_timeout_ms. */
static int query_deadline(sdk_req *req, const params *p, const mkernel *m, int64_t *deadline)
{
	int64_t limit = m->k->cfg->metrics.query_timeout_ms, t = limit;
	const char *ts = param(p, "timeout");
	if (ts && *ts) {
		if (!parse_duration(ts, &t)) {
			api_error(req, 400, NULL, "invalid parameter \"timeout\": cannot parse \"%s\" to a valid duration", ts);
			return -1;
		}
		if (t <= 0 || t > limit)
			t = limit;
	}
	*deadline = sdk_mono_ms() + t;
	return 0;
}

static void opts_init(pq_opts *o, const mkernel *m)
{
	memset(o, 0, sizeof *o);
	o->db = m->db;
	o->max_samples = m->k->cfg->metrics.query_max_samples;
	pq_opts_defaults(o);
}

void mk_on_query(sdk_req *req, void *ctx)
{
	mkernel *m = ((sdk_kernel *)ctx)->state;
	params p;
	if (params_read(req, &p) < 0) {
		params_free(&p);
		api_error(req, 400, NULL, "too many parameters");
		return;
	}
	int64_t t = sdk_wall_ms();
	const char *ts = param(&p, "time");
	if (ts && *ts && !parse_time(ts, &t)) {
		api_error(req, 400, NULL, "invalid parameter \"time\": cannot parse \"%s\" to a valid timestamp", ts);
		params_free(&p);
		return;
	}
	int64_t deadline;
	if (query_deadline(req, &p, m, &deadline) < 0) {
		params_free(&p);
		return;
	}
	pq_expr *x = parse_query(req, &p);
	params_free(&p);
	if (!x)
		return;
	job *j = job_new(req);
	if (!j) {
		pq_expr_free(x);
		return;
	}
	j->expr = x;
	j->is_query = true;
	opts_init(&j->opts, m);
	j->opts.start = j->opts.end = t;
	j->opts.deadline_ms = deadline;
	j->work = work_query;
	job_submit(m, j);
}

void mk_on_query_range(sdk_req *req, void *ctx)
{
	mkernel *m = ((sdk_kernel *)ctx)->state;
	params p;
	if (params_read(req, &p) < 0) {
		params_free(&p);
		api_error(req, 400, NULL, "too many parameters");
		return;
	}
	const char *names[] = { "start", "end" };
	int64_t se[2];
	for (int i = 0; i < 2; i++) {
		const char *v = param(&p, names[i]);
		if (!parse_time(v, &se[i])) {
			api_error(req, 400, NULL, "invalid parameter \"%s\": cannot parse \"%s\" to a valid timestamp",
				  names[i], v ? v : "");
			params_free(&p);
			return;
		}
	}
	if (se[1] < se[0]) {
		api_error(req, 400, NULL, "end timestamp must not be before start time");
		params_free(&p);
		return;
	}
	int64_t step;
	const char *sv = param(&p, "step");
	if (!parse_duration(sv, &step)) {
		api_error(req, 400, NULL, "invalid parameter \"step\": cannot parse \"%s\" to a valid duration",
			  sv ? sv : "");
		params_free(&p);
		return;
	}
	if (step <= 0) {
		api_error(req, 400, NULL, "zero or negative query resolution step widths are not accepted. Try a positive integer");
		params_free(&p);
		return;
	}
	if ((se[1] - se[0]) / step > RANGE_POINTS_MAX) {
		api_error(req, 400, NULL, "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)");
		params_free(&p);
		return;
	}
	int64_t deadline;
	if (query_deadline(req, &p, m, &deadline) < 0) {
		params_free(&p);
		return;
	}
	pq_expr *x = parse_query(req, &p);
	params_free(&p);
	if (!x)
		return;
	const pq_node *root = pq_expr_root(x);
	if (root->type != PQ_SCALAR && root->type != PQ_VECTOR) {
		api_error(req, 400, NULL, "invalid parameter \"query\": invalid expression type \"%s\" for range query, must be Scalar or instant Vector",
			  root->type == PQ_MATRIX ? "range vector" : "string");
		pq_expr_free(x);
		return;
	}
	job *j = job_new(req);
	if (!j) {
		pq_expr_free(x);
		return;
	}
	j->expr = x;
	j->is_query = true;
	opts_init(&j->opts, m);
	j->opts.start = se[0];
	j->opts.end = se[1];
	j->opts.step = step;
	j->opts.deadline_ms = deadline;
	j->work = work_query;
	job_submit(m, j);
}

/* match[] parameters, each a vector selector. -1 after answering. */
static int read_matches(sdk_req *req, const params *p, job *j, bool required)
{
	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->name[i], "match[]"))
			continue;
		if (j->n_match == MATCHES_MAX) {
			api_error(req, 400, NULL, "more than %d match[] parameters", MATCHES_MAX);
			return -1;
		}
		pq_expr *x;
		sdk_err e;
		if (pq_parse(p->value[i], &x, &e)) {
			api_error(req, 400, NULL, "invalid parameter \"match[]\": %s", e.msg);
			return -1;
		}
		if (pq_expr_root(x)->kind != PQ_VSEL) {
			pq_expr_free(x);
			api_error(req, 400, NULL, "invalid parameter \"match[]\": \"%s\" is not a series selector",
				  p->value[i]);
			return -1;
		}
		j->match[j->n_match++] = x;
	}
	if (required && !j->n_match) {
		api_error(req, 400, NULL, "no match[] parameter provided");
		return -1;
	}
	return 0;
}

static int read_range(sdk_req *req, const params *p, job *j)
{
	j->start = MIN_TIME_MS;
	j->end = MAX_TIME_MS;
	const char *s = param(p, "start"), *e = param(p, "end");
	if (s && *s && !parse_time(s, &j->start)) {
		api_error(req, 400, NULL, "invalid parameter \"start\": cannot parse \"%s\" to a valid timestamp", s);
		return -1;
	}
	if (e && *e && !parse_time(e, &j->end)) {
		api_error(req, 400, NULL, "invalid parameter \"end\": cannot parse \"%s\" to a valid timestamp", e);
		return -1;
	}
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The label sets every match[] selects, without repeats, sorted. */
static int select_union(job *j, lbl_set ***out, size_t *n, sdk_err *e)
{
	*out = NULL;
	*n = 0;
	size_t cap = 0;
	for (size_t i = 0; i < j->n_match; i++) {
		const pq_node *vs = pq_expr_root(j->match[i]);
		tsdb_selection sel;
		int rc = tsdb_select(j->m->db, vs->vs.m, vs->vs.nm, j->start, j->end, true, &sel, e);
		if (rc)
			return rc;
		for (size_t k = 0; k < sel.n; k++) {
			bool dup = false;
			/* match[]s seldom overlap; a linear check per selector
			 * beyond the first keeps it simple. */
			if (i > 0)
				for (size_t q = 0; q < *n && !dup; q++)
					dup = lbl_eq((*out)[q], sel.s[k].ls);
			if (dup)
				continue;
			if (*n == cap) {
				cap = cap ? cap * 2 : 64;
				lbl_set **nn = realloc(*out, cap * sizeof *nn);
				if (!nn) {
					tsdb_selection_free(&sel);
					return sdk_fail(e, SDK_EIO, "out of memory");
				}
				*out = nn;
			}
			(*out)[(*n)++] = lbl_ref(sel.s[k].ls);
		}
		tsdb_selection_free(&sel);
	}
	return 0;
}

static int ls_cmp(const void *a, const void *b)
{
	return lbl_cmp(*(lbl_set *const *)a, *(lbl_set *const *)b);
}

static void work_series(job *j)
{
	j->out = evbuffer_new();
	if (!j->out)
		return;
	lbl_set **ls;
	size_t n;
	sdk_err e;
	if (select_union(j, &ls, &n, &e)) {
		job_error(j, 500, "internal", e.msg);
		return;
	}
	qsort(ls, n, sizeof *ls, ls_cmp);
	evbuffer_add_printf(j->out, "{\"status\":\"success\",\"data\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			evbuffer_add(j->out, ",", 1);
		json_labels(j->out, ls[i]);
		lbl_unref(ls[i]);
	}
	free(ls);
	evbuffer_add(j->out, "]}", 2);
	j->http = 200;
}

static void render_strings(job *j, char **s, size_t n)
{
	evbuffer_add_printf(j->out, "{\"status\":\"success\",\"data\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			evbuffer_add(j->out, ",", 1);
		json_str(j->out, s[i]);
	}
	evbuffer_add(j->out, "]}", 2);
	j->http = 200;
}

/* Label names (label[0] == '\0') or one label's values. */
static void work_labels(job *j)
{
	j->out = evbuffer_new();
	if (!j->out)
		return;
	char **s = NULL;
	size_t n = 0;
	sdk_err e = { "out of memory" };
	int rc = 0;
	if (!j->n_match) {
		rc = j->label[0] ? tsdb_label_values(j->m->db, j->label, &s, &n)
				 : tsdb_label_names(j->m->db, &s, &n);
	} else {
		lbl_set **ls;
		size_t nl;
		rc = select_union(j, &ls, &nl, &e);
		if (!rc) {
			size_t cap = 0;
			for (size_t i = 0; i < nl; i++) {
				for (uint32_t k = 0; k < ls[i]->n && !rc; k++) {
					const char *v = j->label[0] ? (strcmp(ls[i]->p[k].name, j->label)
									  ? NULL
									  : ls[i]->p[k].value)
								    : ls[i]->p[k].name;
					if (!v)
						continue;
					if (n == cap) {
						cap = cap ? cap * 2 : 64;
						char **ns = realloc(s, cap * sizeof *ns);
						if (!ns) {
							rc = -1;
							break;
						}
						s = ns;
					}
					if (!(s[n] = strdup(v)))
						rc = -1;
					else
						n++;
				}
				lbl_unref(ls[i]);
			}
			free(ls);
			qsort(s, n, sizeof *s, str_cmp);
			size_t k = 0;
			for (size_t i = 0; i < n; i++) {
				if (k && !strcmp(s[k - 1], s[i])) {
					free(s[i]);
					continue;
				}
				s[k++] = s[i];
			}
			n = k;
		}
	}
	if (rc) {
		job_error(j, 500, "internal", e.msg);
	} else {
		render_strings(j, s, n);
	}
	tsdb_strings_free(s, n);
}

static void labels_common(sdk_req *req, void *ctx, const char *label)
{
	mkernel *m = ((sdk_kernel *)ctx)->state;
	params p;
	if (params_read(req, &p) < 0) {
		params_free(&p);
		api_error(req, 400, NULL, "too many parameters");
		return;
	}
	job *j = job_new(req);
	if (!j) {
		params_free(&p);
		return;
	}
	if (read_range(req, &p, j) < 0 || read_matches(req, &p, j, false) < 0) {
		params_free(&p);
		job_free(j);
		return;
	}
	params_free(&p);
	snprintf(j->label, sizeof j->label, "%s", label ? label : "");
	j->work = work_labels;
	job_submit(m, j);
}

void mk_on_labels(sdk_req *req, void *ctx) { labels_common(req, ctx, NULL); }

void mk_on_label_values(sdk_req *req, void *ctx)
{
	const char *name = sdk_req_param(req, "name");
	if (!name || !lbl_valid_name(name, strlen(name)) || strlen(name) > LBL_NAME_MAX) {
		api_error(req, 400, NULL, "invalid label name: \"%s\"", name ? name : "");
		return;
	}
	labels_common(req, ctx, name);
}

void mk_on_series(sdk_req *req, void *ctx)
{
	mkernel *m = ((sdk_kernel *)ctx)->state;
	params p;
	if (params_read(req, &p) < 0) {
		params_free(&p);
		api_error(req, 400, NULL, "too many parameters");
		return;
	}
	job *j = job_new(req);
	if (!j) {
		params_free(&p);
		return;
	}
	if (read_range(req, &p, j) < 0 || read_matches(req, &p, j, true) < 0) {
		params_free(&p);
		job_free(j);
		return;
	}
	params_free(&p);
	j->work = work_series;
	job_submit(m, j);
}

static void reply_data(sdk_req *req, json_t *data)
{
	sdk_reply_json(req, 200, json_pack("{s:s, s:o}", "status", "success", "data", data));
}

void mk_on_targets(sdk_req *req, void *ctx)
{
	mkernel *m = ((sdk_kernel *)ctx)->state;
	const char *state = sdk_req_query(req, "state");
	reply_data(req, scr_targets_json(m->scraper, state));
}

void mk_on_metadata(sdk_req *req, void *ctx)
{
	mkernel *m = ((sdk_kernel *)ctx)->state;
	unsigned long long limit;
	if (sdk_req_query_uint(req, "limit", 0, 1000000, 0, &limit) < 0)
		return;
	reply_data(req, scr_metadata_json(m->scraper, sdk_req_query(req, "metric"), (size_t)limit));
}

void mk_on_buildinfo(sdk_req *req, void *ctx)
{
	(void)ctx;
	reply_data(req, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "version", GRACE_VERSION,
				  "revision", "", "branch", "", "buildUser", "", "buildDate", "",
				  "goVersion", ""));
}

void mk_on_tsdb_status(sdk_req *req, void *ctx)
{
	mkernel *m = ((sdk_kernel *)ctx)->state;
	tsdb_stats st;
	tsdb_get_stats(m->db, &st);
	uint64_t samples = st.disk_samples + st.head_samples;
	uint64_t bytes = st.disk_bytes + st.head_bytes;
	json_t *grace = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f}", "headSamples",
		(json_int_t)st.head_samples, "headBytes", (json_int_t)st.head_bytes, "diskSamples",
		(json_int_t)st.disk_samples, "diskBytes", (json_int_t)st.disk_bytes, "diskChunks",
		(json_int_t)st.disk_chunks, "storeBytes", (json_int_t)st.store_bytes, "seriesLimit",
		(json_int_t)m->k->cfg->metrics.max_series, "bytesPerSample",
		samples ? (double)bytes / (double)samples : 0.0, "storeBytesPerSample",
		st.disk_samples ? (double)st.store_bytes / (double)st.disk_samples : 0.0);
	reply_data(req, json_pack("{s:{s:I, s:I, s:I, s:I}, s:[], s:[], s:[], s:[], s:o}",
				  "headStats", "numSeries", (json_int_t)st.series, "chunkCount",
				  (json_int_t)(st.head_chunks + st.disk_chunks), "minTime",
				  (json_int_t)(st.min_t == INT64_MAX ? 0 : st.min_t), "maxTime",
				  (json_int_t)(st.max_t == INT64_MIN ? 0 : st.max_t),
				  "seriesCountByMetricName", "labelValueCountByLabelName",
				  "memoryInBytesByLabelName", "seriesCountByLabelValuePair",
				  "graceStorage", grace));
}

void mk_on_exemplars(sdk_req *req, void *ctx)
{
	(void)ctx;
	/* Grace keeps no exemplars: the answer Prometheus gives without any. */
	reply_data(req, json_array());
}

/* ---- /federate */

static void federate_value(struct evbuffer *b, double v)
{
	if (isnan(v))
		evbuffer_add_printf(b, "NaN");
	else if (isinf(v))
		evbuffer_add_printf(b, v > 0 ? "+Inf" : "-Inf");
	else {
		char buf[64];
		for (int p = 1; p <= 17; p++) {
			snprintf(buf, sizeof buf, "%.*g", p, v);
			if (strtod(buf, NULL) == v)
				break;
		}
		evbuffer_add_printf(b, "%s", buf);
	}
}

static void federate_label_value(struct evbuffer *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			evbuffer_add(b, "\\\\", 2);
		else if (*s == '"')
			evbuffer_add(b, "\\\"", 2);
		else if (*s == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, s, 1);
	}
}

static int name_cmp(const void *a, const void *b)
{
	const tsdb_series_copy *x = a, *y = b;
	const char *nx = lbl_get(x->ls, LBL_METRIC_NAME), *ny = lbl_get(y->ls, LBL_METRIC_NAME);
	int c = strcmp(nx ? nx : "", ny ? ny : "");
	return c ? c : lbl_cmp(x->ls, y->ls);
}

static void work_federate(job *j)
{
	j->out = evbuffer_new();
	if (!j->out)
		return;
	int64_t now = sdk_wall_ms();
	const char *last_name = NULL;
	char last_buf[LBL_NAME_MAX + 1] = "";
	tsdb_point *pts = NULL;
	size_t np = 0, cap = 0;
	for (size_t i = 0; i < j->n_match; i++) {
		const pq_node *vs = pq_expr_root(j->match[i]);
		tsdb_selection sel;
		sdk_err e;
		if (tsdb_select(j->m->db, vs->vs.m, vs->vs.nm, now - FEDERATE_LOOKBACK_MS, now, false,
				&sel, &e)) {
			job_error(j, 500, "internal", e.msg);
			free(pts);
			return;
		}
		qsort(sel.s, sel.n, sizeof *sel.s, name_cmp);
		for (size_t k = 0; k < sel.n; k++) {
			if (tsdb_series_points(&sel.s[k], now - FEDERATE_LOOKBACK_MS, now, &pts, &np, &cap) ||
			    !np || tsdb_is_stale(pts[np - 1].v))
				continue;
			const lbl_set *ls = sel.s[k].ls;
			const char *name = lbl_get(ls, LBL_METRIC_NAME);
			if (!name)
				continue;
			if (!last_name || strcmp(last_buf, name)) {
				evbuffer_add_printf(j->out, "# TYPE %s untyped\n", name);
				snprintf(last_buf, sizeof last_buf, "%s", name);
				last_name = last_buf;
			}
			evbuffer_add_printf(j->out, "%s{", name);
			bool first = true;
			for (uint32_t q = 0; q < ls->n; q++) {
				if (!strcmp(ls->p[q].name, LBL_METRIC_NAME))
					continue;
				evbuffer_add_printf(j->out, "%s%s=\"", first ? "" : ",", ls->p[q].name);
				federate_label_value(j->out, ls->p[q].value);
				evbuffer_add(j->out, "\"", 1);
				first = false;
			}
			evbuffer_add(j->out, "} ", 2);
			federate_value(j->out, pts[np - 1].v);
			evbuffer_add_printf(j->out, " %lld\n", (long long)pts[np - 1].t);
		}
		tsdb_selection_free(&sel);
	}
	free(pts);
	j->http = 200;
	j->ctype = "text/plain; version=0.0.4; charset=utf-8";
}

void mk_on_federate(sdk_req *req, void *ctx)
{
	mkernel *m = ((sdk_kernel *)ctx)->state;
	params p;
	if (params_read(req, &p) < 0) {
		params_free(&p);
		api_error(req, 400, NULL, "too many parameters");
		return;
	}
	job *j = job_new(req);
	if (!j) {
		params_free(&p);
		return;
	}
	int rc = read_matches(req, &p, j, true);
	params_free(&p);
	if (rc < 0) {
		job_free(j);
		return;
	}
	j->work = work_federate;
	job_submit(m, j);
}

/* ---- /write: {"series":[{"labels":{...},"samples":[[ms, value], ...]}]}
 * A value is a number or "NaN", "+Inf", "-Inf", or "stale" (a staleness
 * marker, so a recording rule's series can end as a scraped one does). */

static bool sample_value(json_t *v, double *out)
{
	if (json_is_number(v)) {
		*out = json_number_value(v);
		return true;
	}
	const char *s = json_string_value(v);
	if (!s)
		return false;
	if (!strcmp(s, "stale")) {
		*out = tsdb_stale_nan();
		return true;
	}
	return expo_parse_float(s, strlen(s), out);
}

static void work_write(job *wj)
{
	mkernel *m = wj->m;
	wj->out = evbuffer_new();
	if (!wj->out)
		return;
	wj->http = 200;
	json_error_t je;
	json_t *body = json_loadb(wj->body, wj->body_len, 0, &je);
	if (!json_is_object(body)) {
		json_decref(body);
		job_errorf(wj, 400, NULL, "the body is not a JSON object: %s", je.text);
		return;
	}
	json_t *series = json_object_get(body, "series");
	if (!json_is_array(series)) {
		job_errorf(wj, 400, NULL, "expected {\"series\": [{\"labels\": {...}, \"samples\": [[ms, value], ...]}]}");
		json_decref(body);
		return;
	}
	size_t total = 0, i;
	json_t *s;
	json_array_foreach(series, i, s)
		total += json_array_size(json_object_get(s, "samples"));
	if (total > WRITE_SAMPLES_MAX) {
		job_errorf(wj, 400, NULL, "more than %d samples in one write", WRITE_SAMPLES_MAX);
		json_decref(body);
		return;
	}
	/* Every series is checked before any sample goes in. */
	lbl_set **ls = calloc(json_array_size(series) + 1, sizeof *ls);
	if (!ls) {
		job_errorf(wj, 500, NULL, "out of memory");
		json_decref(body);
		return;
	}
	size_t n = json_array_size(series);
	for (i = 0; i < n; i++) {
		s = json_array_get(series, i);
		json_t *labels = json_object_get(s, "labels"), *samples = json_object_get(s, "samples");
		const char *why = NULL;
		if (!json_is_object(labels) || !json_is_array(samples) ||
		    json_object_size(labels) > LBL_PAIRS_MAX)
			why = "a series needs \"labels\" (an object) and \"samples\" (an array)";
		lbl_pair p[LBL_PAIRS_MAX];
		size_t np = 0;
		const char *k;
		json_t *v;
		if (!why)
			json_object_foreach(labels, k, v) {
				const char *val = json_string_value(v);
				bool name_ok = !strcmp(k, LBL_METRIC_NAME) || lbl_valid_name(k, strlen(k));
				if (!val || !name_ok || strlen(k) > LBL_NAME_MAX ||
				    strlen(val) > LBL_VALUE_MAX || !lbl_valid_utf8(val, strlen(val))) {
					why = "a label needs a valid name and a string value";
					break;
				}
				p[np++] = (lbl_pair){ k, val };
			}
		const char *name = json_string_value(json_object_get(labels, LBL_METRIC_NAME));
		if (!why && (!name || !lbl_valid_metric_name(name, strlen(name))))
			why = "a series needs a valid __name__";
		size_t j;
		json_t *smp;
		if (!why)
			json_array_foreach(samples, j, smp) {
				double dv;
				if (!json_is_array(smp) || json_array_size(smp) != 2 ||
				    !json_is_integer(json_array_get(smp, 0)) ||
				    !sample_value(json_array_get(smp, 1), &dv)) {
					why = "a sample is [milliseconds, value]";
					break;
				}
			}
		if (!why && !(ls[i] = lbl_new(p, np, NULL)))
			why = "labels repeat a name";
		if (why) {
			for (size_t q = 0; q < n; q++)
				lbl_unref(ls[q]);
			free(ls);
			job_errorf(wj, 400, NULL, "series %zu: %s", i, why);
			json_decref(body);
			return;
		}
	}
	size_t appended = 0, ooo = 0, dupts = 0, limited = 0;
	for (i = 0; i < n; i++) {
		json_t *samples = json_object_get(json_array_get(series, i), "samples");
		size_t j;
		json_t *smp;
		json_array_foreach(samples, j, smp) {
			double dv = 0;
			sample_value(json_array_get(smp, 1), &dv);
			int rc = tsdb_append(m->db, ls[i], json_integer_value(json_array_get(smp, 0)), dv);
			appended += rc == TSDB_APPENDED;
			ooo += rc == TSDB_OUT_OF_ORDER;
			dupts += rc == TSDB_DUPLICATE_TS;
			limited += rc == TSDB_SERIES_LIMIT;
		}
		lbl_unref(ls[i]);
	}
	free(ls);
	wj->appended = appended;
	if (limited)
		job_errorf(wj, 422, "execution",
			  "%zu samples refused: the store holds its max_series (%u) series; %zu appended",
			  limited, m->k->cfg->metrics.max_series, appended);
	else
		job_data(wj, json_pack("{s:I, s:I, s:I}", "appended", (json_int_t)appended,
					  "out_of_order", (json_int_t)ooo, "duplicate_timestamp",
					  (json_int_t)dupts));
	json_decref(body);
}

/* POST /write: the body is parsed and appended on a query worker, not
 * on the loop (a 1 MiB body is tens of thousands of samples). */
void mk_on_write(sdk_req *req, void *ctx)
{
	mkernel *m = ((sdk_kernel *)ctx)->state;
	struct evbuffer *b = sdk_req_body(req);
	size_t len = evbuffer_get_length(b);
	job *j = job_new(req);
	if (!j)
		return;
	j->body = malloc(len + 1);
	if (!j->body) {
		job_free(j);
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	evbuffer_copyout(b, j->body, len);
	j->body[len] = '\0';
	j->body_len = len;
	j->is_write = true;
	j->work = work_write;
	job_submit(m, j);
}

/* ---- /api/v1/rules and /api/v1/alerts: the alerts kernel's, so that a
 * client pointed at the Prometheus API (Grafana's alerting view) finds
 * them where Prometheus serves them. The request stays valid until it is
 * answered, even if the client goes first. */

#define ALERTS_CALL_TIMEOUT_MS 10000

static void on_alerts_answer(int status, const char *body, size_t len, double ms,
			     const char *error, void *arg)
{
	(void)ms;
	sdk_req *req = arg;
	if (!status || !body) {
		api_error(req, 503, "unavailable", "the alerts kernel did not answer: %s",
			  error ? error : "no body");
		return;
	}
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	evbuffer_add(b, body, len);
	reply_buf(req, status, b);
	evbuffer_free(b);
}

static void to_alerts(sdk_req *req, void *ctx, const char *path)
{
	sdk_kernel *k = ctx;
	const char *qs = sdk_req_query_string(req);
	char target[SDK_PATH_MAX + 1];
	if (snprintf(target, sizeof target, "%s%s%s", path, qs ? "?" : "", qs ? qs : "") >=
	    (int)sizeof target) {
		api_error(req, 400, NULL, "the query string is too long");
		return;
	}
	if (sdk_call(k->caller, "alerts", "GET", target, NULL, 0, NULL, ALERTS_CALL_TIMEOUT_MS,
		     on_alerts_answer, req) < 0)
		api_error(req, 503, "unavailable", "cannot reach the alerts kernel");
}

void mk_on_rules(sdk_req *req, void *ctx) { to_alerts(req, ctx, "/api/v1/rules"); }
void mk_on_alerts(sdk_req *req, void *ctx) { to_alerts(req, ctx, "/api/v1/alerts"); }
