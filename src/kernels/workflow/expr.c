#include "kernels/workflow/expr.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool wfx_is_expr(const char *s, const char **expr, size_t *len)
{
	size_t n = strlen(s);
	size_t a = 0;
	while (a < n && isspace((unsigned char)s[a]))
		a++;
	while (n > a && isspace((unsigned char)s[n - 1]))
		n--;
	if (n - a < 3 || s[a] != '$' || s[a + 1] != '{' || s[n - 1] != '}')
		return false;
	*expr = s + a + 2;
	*len = n - a - 3;
	return true;
}

void wfx_field_expr(const char *s, const char **expr, size_t *len)
{
	if (!wfx_is_expr(s, expr, len)) {
		*expr = s;
		*len = strlen(s);
	}
}

bool wfx_good_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > WFX_NAME_MAX || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

void wfx_path(char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out, cap, fmt, ap);
	va_end(ap);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *wfx_program(const char *expr, size_t len, const json_t *vars)
{
	size_t n = json_object_size(vars), i = 0, bytes = len + 64;
	const char **names = calloc(n ? n : 1, sizeof *names);
	if (!names)
		return NULL;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)vars, key, v) {
		names[i++] = key;
		bytes += strlen(key) + 3;
	}
	qsort(names, n, sizeof *names, cmp_str);
	char *out = malloc(bytes);
	if (out) {
		size_t at = 0;
		at += (size_t)sprintf(out, ".v as {");
		for (i = 0; i < n; i++)
			at += (size_t)sprintf(out + at, "%s$%s", i ? ", " : "", names[i]);
		at += (size_t)sprintf(out + at, "} | .i | (");
		memcpy(out + at, expr, len);
		at += len;
		memcpy(out + at, "\n)", 3);
	}
	free(names);
	return out;
}

static void add(json_t *out, const char *expr, size_t len, const char *path, const json_t *vars)
{
	char *p = wfx_program(expr, len, vars);
	if (p)
		json_array_append_new(out, json_pack("[s, s]", p, path));
	free(p);
}

void wfx_collect(const json_t *tmpl, const char *path, const json_t *vars, json_t *out)
{
	char sub[1024];
	if (json_is_string(tmpl)) {
		const char *x;
		size_t n;
		if (wfx_is_expr(json_string_value(tmpl), &x, &n))
			add(out, x, n, path, vars);
	} else if (json_is_object(tmpl)) {
		const char *key;
		json_t *v;
		json_object_foreach((json_t *)tmpl, key, v) {
			wfx_path(sub, sizeof sub, "%s/%s", path, key);
			wfx_collect(v, sub, vars, out);
		}
	} else if (json_is_array(tmpl)) {
		size_t i;
		json_t *v;
		json_array_foreach(tmpl, i, v) {
			wfx_path(sub, sizeof sub, "%s/%zu", path, i);
			wfx_collect(v, sub, vars, out);
		}
	}
}

void wfx_collect_field(const char *s, const char *path, const json_t *vars, json_t *out)
{
	const char *x;
	size_t n;
	wfx_field_expr(s, &x, &n);
	add(out, x, n, path, vars);
}

static int eval_text(wfx_env *e, const char *x, size_t n, json_t *input, json_t *vars,
		     json_t **out, sdk_err *err)
{
	char *text = wfx_program(x, n, vars);
	if (!text)
		return sdk_fail(err, SDK_EBUSY, "out of memory");
	sdk_jq_prog *p = sdk_jq_cache_get(e->cache, text);
	free(text);
	if (!p)
		return sdk_fail(err, SDK_EINVAL, "the expression %.*s was not compiled", (int)n, x);
	json_t *in = json_pack("{s:O, s:O}", "i", input ? input : json_null(), "v", vars);
	json_t *r = NULL;
	int rc = in ? sdk_jq_eval(p, in, &r, err) : sdk_fail(err, SDK_EBUSY, "out of memory");
	json_decref(in);
	sdk_jq_cache_release(e->cache, p);
	if (rc < 0)
		return rc;
	*out = rc == 1 ? r : json_null();
	return 0;
}

int wfx_eval_value(wfx_env *e, const json_t *tmpl, json_t *input, json_t *vars, json_t **out,
		   sdk_err *err)
{
	int rc;
	if (json_is_string(tmpl)) {
		const char *x;
		size_t n;
		if (wfx_is_expr(json_string_value(tmpl), &x, &n))
			return eval_text(e, x, n, input, vars, out, err);
	} else if (json_is_object(tmpl)) {
		json_t *o = json_object();
		const char *key;
		json_t *v, *r;
		json_object_foreach((json_t *)tmpl, key, v) {
			if ((rc = wfx_eval_value(e, v, input, vars, &r, err)) < 0) {
				json_decref(o);
				return rc;
			}
			json_object_set_new(o, key, r);
		}
		*out = o;
		return 0;
	} else if (json_is_array(tmpl)) {
		json_t *a = json_array(), *v, *r;
		size_t i;
		json_array_foreach(tmpl, i, v) {
			if ((rc = wfx_eval_value(e, v, input, vars, &r, err)) < 0) {
				json_decref(a);
				return rc;
			}
			json_array_append_new(a, r);
		}
		*out = a;
		return 0;
	}
	*out = json_deep_copy(tmpl);
	return 0;
}

int wfx_eval_field(wfx_env *e, const json_t *field, json_t *input, json_t *vars, json_t **out,
		   sdk_err *err)
{
	if (json_is_string(field)) {
		const char *x;
		size_t n;
		wfx_field_expr(json_string_value(field), &x, &n);
		return eval_text(e, x, n, input, vars, out, err);
	}
	return wfx_eval_value(e, field, input, vars, out, err);
}
