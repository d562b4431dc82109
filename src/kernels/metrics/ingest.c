#include "kernels/metrics/ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a set of label sets */

static int set_grow(ing_set *s)
{
	size_t n = s->n_slot ? s->n_slot * 2 : 64;
	lbl_set **t = calloc(n, sizeof *t);
	if (!t)
		return -1;
	for (size_t i = 0; i < s->n_slot; i++)
		if (s->slot[i]) {
			size_t h = s->slot[i]->hash & (n - 1);
			while (t[h])
				h = (h + 1) & (n - 1);
			t[h] = s->slot[i];
		}
	free(s->slot);
	s->slot = t;
	s->n_slot = n;
	return 0;
}

static bool set_has(const ing_set *s, const lbl_set *ls)
{
	if (!s->n_slot)
		return false;
	size_t h = ls->hash & (s->n_slot - 1);
	while (s->slot[h]) {
		if (lbl_eq(s->slot[h], ls))
			return true;
		h = (h + 1) & (s->n_slot - 1);
	}
	return false;
}

/* Adds a reference to ls; false when it was there already. */
static bool set_add(ing_set *s, lbl_set *ls)
{
	if ((s->n + 1) * 2 > s->n_slot && set_grow(s) < 0)
		return false;
	size_t h = ls->hash & (s->n_slot - 1);
	while (s->slot[h]) {
		if (lbl_eq(s->slot[h], ls))
			return false;
		h = (h + 1) & (s->n_slot - 1);
	}
	s->slot[h] = lbl_ref(ls);
	s->n++;
	return true;
}

void ing_set_free(ing_set *s)
{
	for (size_t i = 0; i < s->n_slot; i++)
		lbl_unref(s->slot[i]);
	free(s->slot);
	*s = (ing_set){ 0 };
}

/* ---- one scrape */

struct collect {
	const lbl_set *target;
	lbl_set **ls;
	int64_t *t;
	double *v;
	bool *own_ts;
	size_t n, cap;
	unsigned limit;
	bool over;
	int64_t ts;
	expo_type_fn on_type;
	void *type_arg;
};

static void on_type_cb(void *arg, const char *family, const char *type)
{
	struct collect *c = arg;
	if (c->on_type)
		c->on_type(c->type_arg, family, type);
}

static int on_sample(void *arg, const expo_sample *s)
{
	struct collect *c = arg;
	if (c->limit && c->n >= c->limit) {
		c->over = true;
		return SDK_ETOOLARGE;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		lbl_set **ls = realloc(c->ls, cap * sizeof *ls);
		if (ls)
			c->ls = ls;
		int64_t *t = realloc(c->t, cap * sizeof *t);
		if (t)
			c->t = t;
		double *v = realloc(c->v, cap * sizeof *v);
		if (v)
			c->v = v;
		bool *o = realloc(c->own_ts, cap * sizeof *o);
		if (o)
			c->own_ts = o;
		if (!ls || !t || !v || !o)
			return SDK_EIO;
		c->cap = cap;
	}
	/* honor_labels: false: a label the target sets wins, the target's
	 * own is kept as exported_NAME. */
	lbl_pair p[LBL_PAIRS_MAX + 8];
	char renamed[LBL_PAIRS_MAX][LBL_NAME_MAX + 16];
	size_t n = 0;
	p[n++] = (lbl_pair){ LBL_METRIC_NAME, s->name };
	for (size_t i = 0; i < s->n_labels && n < LBL_PAIRS_MAX; i++) {
		const char *name = s->labels[i].name;
		if (lbl_get(c->target, name)) {
			snprintf(renamed[i], sizeof renamed[i], "exported_%s", name);
			name = renamed[i];
		}
		p[n++] = (lbl_pair){ name, s->labels[i].value };
	}
	for (uint32_t i = 0; i < c->target->n && n < LBL_PAIRS_MAX; i++)
		p[n++] = c->target->p[i];
	bool dup;
	lbl_set *ls = lbl_new(p, n, &dup);
	if (!ls)
		return dup ? SDK_EINVAL : SDK_EIO;
	c->ls[c->n] = ls;
	c->own_ts[c->n] = s->has_ts;
	c->t[c->n] = s->has_ts ? s->ts_ms : c->ts;
	c->v[c->n] = s->value;
	c->n++;
	return 0;
}

enum expo_format ing_sniff(const char *body, size_t len)
{
	while (len && (body[len - 1] == '\n' || body[len - 1] == '\r'))
		len--;
	return len >= 5 && !memcmp(body + len - 5, "# EOF", 5) &&
			       (len == 5 || body[len - 6] == '\n')
		       ? EXPO_OPENMETRICS
		       : EXPO_TEXT;
}

static void collect_free(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++)
		lbl_unref(c->ls[i]);
	free(c->ls);
	free(c->t);
	free(c->v);
	free(c->own_ts);
}

int ing_scrape(tsdb *db, const char *body, size_t len, enum expo_format fmt,
	       const lbl_set *target, int64_t ts_ms, unsigned sample_limit, ing_set *prev,
	       expo_type_fn on_type, void *type_arg, ing_result *r, sdk_err *err)
{
	memset(r, 0, sizeof *r);
	struct collect c = { .target = target, .limit = sample_limit, .ts = ts_ms,
			     .on_type = on_type, .type_arg = type_arg };
	int rc = expo_parse(body, len, fmt, on_sample, on_type_cb, &c, err);
	if (c.over) {
		collect_free(&c);
		return sdk_fail(err, SDK_ETOOLARGE, "sample limit exceeded (%u)", sample_limit);
	}
	if (rc) {
		collect_free(&c);
		return rc == SDK_EINVAL ? rc : sdk_fail(err, rc, "out of memory");
	}
	r->scraped = c.n;
	int *res = calloc(c.n + 1, sizeof *res);
	if (!res) {
		collect_free(&c);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	tsdb_append_many(db, c.ls, c.t, c.v, c.n, res);
	ing_set now = { 0 };
	for (size_t i = 0; i < c.n; i++) {
		switch (res[i]) {
		case TSDB_APPENDED: r->appended++; break;
		case TSDB_OUT_OF_ORDER: r->out_of_order++; break;
		case TSDB_DUPLICATE_TS: r->duplicates++; break;
		case TSDB_SERIES_LIMIT: r->refused++; break;
		default: break;
		}
		/* Staleness follows series that take the scrape's time only. */
		if (!c.own_ts[i] && res[i] != TSDB_SERIES_LIMIT && set_add(&now, c.ls[i]) &&
		    !set_has(prev, c.ls[i]))
			r->added++;
	}
	free(res);
	/* What the last scrape had and this one lacks is stale now. */
	for (size_t i = 0; i < prev->n_slot; i++) {
		lbl_set *ls = prev->slot[i];
		if (ls && !set_has(&now, ls)) {
			tsdb_append(db, ls, ts_ms, tsdb_stale_nan());
			r->stale_marked++;
		}
	}
	ing_set_free(prev);
	*prev = now;
	collect_free(&c);
	return 0;
}

size_t ing_fail(tsdb *db, ing_set *prev, int64_t ts_ms)
{
	size_t n = 0;
	for (size_t i = 0; i < prev->n_slot; i++)
		if (prev->slot[i]) {
			tsdb_append(db, prev->slot[i], ts_ms, tsdb_stale_nan());
			n++;
		}
	ing_set_free(prev);
	return n;
}

void ing_report(tsdb *db, const lbl_set *target, int64_t ts_ms, bool up, double duration_s,
		const ing_result *r)
{
	static const char *const names[] = { "up", "scrape_duration_seconds",
					     "scrape_samples_scraped",
					     "scrape_samples_post_metric_relabeling",
					     "scrape_series_added" };
	double vals[] = { up ? 1 : 0, duration_s, (double)r->scraped, (double)r->scraped,
			  (double)r->added };
	lbl_set *ls[5];
	int64_t t[5];
	for (int i = 0; i < 5; i++) {
		lbl_builder b;
		lbl_b_init(&b, target);
		lbl_b_set(&b, LBL_METRIC_NAME, names[i]);
		ls[i] = lbl_b_finish(&b);
		t[i] = ts_ms;
		if (!ls[i]) {
			for (int j = 0; j < i; j++)
				lbl_unref(ls[j]);
			return;
		}
	}
	tsdb_append_many(db, ls, t, vals, 5, NULL);
	for (int i = 0; i < 5; i++)
		lbl_unref(ls[i]);
}
