#include "serve/supervisor/unit.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int sup_unit_name(const char *pattern, const char *kernel, int port, char *out, size_t n)
{
	size_t o = 0;
	for (const char *p = pattern; *p; p++) {
		int w;
		if (p[0] == '%' && p[1] == 'p')
			w = snprintf(out + o, n - o, "%d", port), p++;
		else if (p[0] == '%' && p[1] == 'n')
			w = snprintf(out + o, n - o, "%s", kernel), p++;
		else
			w = snprintf(out + o, n - o, "%c", *p);
		if (w < 0 || (size_t)w >= n - o)
			return -1;
		o += (size_t)w;
	}
	if (!n)
		return -1;
	out[o] = '\0';
	return 0;
}

static void set_text(char *dst, size_t n, const char *v, size_t vlen)
{
	if (vlen < n) {
		memcpy(dst, v, vlen);
		dst[vlen] = '\0';
	}
}

static bool parse_u64(const char *v, size_t vlen, uint64_t *out)
{
	if (!vlen || vlen > 20)
		return false;
	uint64_t x = 0;
	for (size_t i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return true;
}

static void set_key(sup_unit_status *st, const char *k, size_t klen, const char *v, size_t vlen)
{
	uint64_t x = 0;
#define IS(name) (klen == sizeof name - 1 && !memcmp(k, name, klen))
	if (IS("Id"))
		set_text(st->id, sizeof st->id, v, vlen);
	else if (IS("LoadState"))
		set_text(st->load, sizeof st->load, v, vlen);
	else if (IS("ActiveState"))
		set_text(st->active, sizeof st->active, v, vlen);
	else if (IS("SubState"))
		set_text(st->sub, sizeof st->sub, v, vlen);
	else if (IS("Result"))
		set_text(st->result, sizeof st->result, v, vlen);
	else if (IS("MainPID") && parse_u64(v, vlen, &x) && x <= INT32_MAX)
		st->main_pid = (pid_t)x;
	else if (IS("NRestarts") && parse_u64(v, vlen, &x) && x <= UINT32_MAX)
		st->n_restarts = (unsigned)x;
	else if (IS("ExecMainCode") && parse_u64(v, vlen, &x) && x <= 255)
		st->exec_code = (int)x;
	else if (IS("ExecMainStatus") && parse_u64(v, vlen, &x) && x <= 255)
		st->exec_status = (int)x;
	else if (IS("ExecMainStartTimestampMonotonic") && parse_u64(v, vlen, &x))
		st->exec_start_mono_us = x;
#undef IS
}

int sup_unit_parse_show(const char *text, size_t len, sup_unit_status *out, size_t max)
{
	size_t n = 0;
	bool open = false;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if (le == p) { /* an empty line ends a block */
			if (open && !out[n - 1].id[0])
				return -1;
			open = false;
		} else if (n < max || open) {
			if (!open) {
				memset(&out[n++], 0, sizeof *out);
				open = true;
			}
			const char *eq = memchr(p, '=', (size_t)(le - p));
			if (eq)
				set_key(&out[n - 1], p, (size_t)(eq - p), eq + 1,
					(size_t)(le - eq - 1));
		}
		p = nl ? nl + 1 : end;
	}
	if (open && !out[n - 1].id[0])
		return -1;
	return (int)n;
}

/* systemd's unit states (systemd.unit(5), "ActiveState"; the services'
 * SubState values in systemd.service(5)) as the supervisor's: the first
 * row that matches. A NULL sub matches any. */
static const struct {
	const char *active, *sub;
	enum sup_state state;
} unit_states[] = {
	{ "active", NULL, SUP_READY },      /* Type=notify: after READY=1 */
	{ "reloading", NULL, SUP_READY },   /* still serving */
	{ "activating", "auto-restart", SUP_RESTARTING }, /* Restart= waits out RestartSec= */
	{ "activating", NULL, SUP_STARTING },
	{ "deactivating", NULL, SUP_STOPPING },
	{ "inactive", NULL, SUP_STOPPED },
	{ "failed", NULL, SUP_FAILED },
	{ "maintenance", NULL, SUP_STOPPED },
};

enum sup_state sup_unit_state(const sup_unit_status *st)
{
	/* A unit systemd cannot load cannot run, whatever else it says. */
	if (strcmp(st->load, "loaded"))
		return SUP_FAILED;
	for (size_t i = 0; i < sizeof unit_states / sizeof *unit_states; i++)
		if (!strcmp(unit_states[i].active, st->active) &&
		    (!unit_states[i].sub || !strcmp(unit_states[i].sub, st->sub)))
			return unit_states[i].state;
	return SUP_FAILED;
}

void sup_unit_describe_exit(const sup_unit_status *st, char *out, size_t n)
{
	int s = st->exec_status;
	if (st->exec_code == CLD_EXITED)
		snprintf(out, n, "exit %d", s);
	else if (st->exec_code == CLD_KILLED || st->exec_code == CLD_DUMPED)
		snprintf(out, n, "signal %d (%s)%s", s, s > 0 && s < NSIG ? strsignal(s) : "?",
			 st->exec_code == CLD_DUMPED ? ", core dumped" : "");
	else if (n)
		out[0] = '\0';
}
