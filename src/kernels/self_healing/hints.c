/* Root-cause hints (hints.h). */
#include "kernels/self_healing/hints.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sh_signal_name(int sig)
{
	static const char *const names[] = { [1] = "SIGHUP",   [2] = "SIGINT",   [3] = "SIGQUIT",
					     [4] = "SIGILL",   [6] = "SIGABRT",  [7] = "SIGBUS",
					     [8] = "SIGFPE",   [9] = "SIGKILL",  [11] = "SIGSEGV",
					     [13] = "SIGPIPE", [14] = "SIGALRM", [15] = "SIGTERM" };
	if (sig > 0 && sig < (int)(sizeof names / sizeof *names) && names[sig])
		return names[sig];
	return "SIG?";
}

static void add(json_t *out, json_t *hint) { json_array_append_new(out, hint); }

/* "exit N" / "signal N (...)" anywhere in the supervisor's last exit. */
static size_t from_exit(const sh_facts *f, json_t *out, int *sig)
{
	const char *le = f->last_exit;
	*sig = 0;
	if (!le || !le[0])
		return 0;
	size_t n = 0;
	const char *s = strstr(le, "signal ");
	const char *e = strstr(le, "exit ");
	if (strstr(le, "watchdog")) {
		add(out, json_pack("{s:s, s:s}", "kind", "watchdog_timeout", "detail",
				   "the kernel stopped sending WATCHDOG=1 in time and was killed"));
		n++;
	}
	if (s && (*sig = atoi(s + 7)) > 0) {
		char d[96];
		snprintf(d, sizeof d, "ended by signal %d (%s)", *sig, sh_signal_name(*sig));
		add(out, json_pack("{s:s, s:i, s:s, s:s}", "kind", "signal", "signal", *sig, "name",
				   sh_signal_name(*sig), "detail", d));
		n++;
	} else if (e) {
		int code = atoi(e + 5);
		char d[96];
		snprintf(d, sizeof d, "exited with code %d%s", code,
			 code == 100   ? " (permanent: bad configuration)"
			 : code == 111 ? " (temporary: try again later)"
				       : "");
		add(out, json_pack("{s:s, s:i, s:s}", "kind", "exit_code", "code", code, "detail", d));
		n++;
	}
	return n;
}

size_t sh_hints_classify(const sh_facts *f, json_t *out)
{
	int sig = 0;
	size_t n = from_exit(f, out, &sig);
	if (f->oom_kills > 0) {
		char d[128];
		snprintf(d, sizeof d, "%lld OOM kill(s) in the cgroup%s", (long long)f->oom_kills,
			 sig == 9 ? ", and the kernel ended by SIGKILL" : "");
		add(out, json_pack("{s:s, s:I, s:s, s:s}", "kind", "oom_kill", "count",
				   (json_int_t)f->oom_kills, "confidence", sig == 9 ? "high" : "low",
				   "detail", d));
		n++;
	}
	if (f->holder_kind && strcmp(f->holder_kind, "ours") && strcmp(f->holder_kind, "none") &&
	    f->holder_kind[0]) {
		char d[300];
		snprintf(d, sizeof d, "the port is held by %s process %lld (%s)", f->holder_kind,
			 (long long)f->holder_pid, f->holder_cmdline ? f->holder_cmdline : "");
		add(out, json_pack("{s:s, s:s, s:I, s:s}", "kind", "port_held", "holder",
				   f->holder_kind, "pid", (json_int_t)f->holder_pid, "detail", d));
		n++;
	}
	if (f->storage_error && f->storage_error[0]) {
		add(out, json_pack("{s:s, s:s}", "kind", "database_corrupt", "detail",
				   f->storage_error));
		n++;
	}
	if (f->disk_total > 0 && (f->disk_free < SH_DISK_FULL_BYTES ||
				  f->disk_free * 100 < f->disk_total * SH_DISK_FULL_PERCENT)) {
		char d[128];
		snprintf(d, sizeof d, "DATA_DIR's file system has %lld of %lld bytes free",
			 (long long)f->disk_free, (long long)f->disk_total);
		add(out, json_pack("{s:s, s:I, s:I, s:s}", "kind", "disk_full", "free_bytes",
				   (json_int_t)f->disk_free, "total_bytes", (json_int_t)f->disk_total,
				   "detail", d));
		n++;
	}
	if ((f->guardian_reason && strstr(f->guardian_reason, "timeout")) ||
	    (f->issue_type && !strcmp(f->issue_type, "process_hung"))) {
		add(out, json_pack("{s:s, s:s}", "kind", "probe_timeout", "detail",
				   f->guardian_reason && f->guardian_reason[0]
					   ? f->guardian_reason
					   : "the process is hung: /health did not answer"));
		n++;
	}
	return n;
}
