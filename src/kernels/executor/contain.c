#include "kernels/executor/contain.h"

#include <stdio.h>
#include <string.h>

void exe_plan_select(const exe_host *h, const exe_spec *s, exe_plan *out)
{
	memset(out, 0, sizeof *out);
	const exe_limits *l = &s->limits;
	out->drop = h->root;
	out->uid = h->uid;
	out->gid = h->gid;
	if (h->root && !h->uid)
		snprintf(out->refuse, sizeof out->refuse,
			 "no unprivileged user to run jobs as (create %s: scripts/bootstrap.sh)",
			 h->user[0] ? h->user : "grace-jobs");
	out->cg_v2 = h->cg.v2;
	if (l->memory_bytes) {
		if (h->cg.v2 && h->cg.v2_memory)
			out->v2_memory = true;
		else if (h->cg.v1_memory)
			out->v1_memory = true;
		else
			out->rl_as = true;
	}
	if (l->pids) {
		if (h->cg.v2 && h->cg.v2_pids)
			out->v2_pids = true;
		else if (h->cg.v1_pids)
			out->v1_pids = true;
		else if (h->root ? out->drop && out->uid != 0 : true)
			out->rl_nproc = true;
	}
	/* Without a v2 group, a v1 pids group still lists the whole tree. */
	if (!out->cg_v2 && h->cg.v1_pids && !out->v1_pids)
		out->v1_pids = true;
	out->rl_cpu = l->cpu_s > 0;
	out->cpu_watch = l->cpu_s > 0 && out->cg_v2;
	out->rl_nofile = true;
	if (s->sandbox) {
		if (h->bwrap[0])
			out->bwrap = true;
		else if (!out->refuse[0])
			snprintf(out->refuse, sizeof out->refuse,
				 "sandbox: bubblewrap (bwrap) is not installed on this machine");
	}
	if (s->seccomp) {
		if (!h->seccomp) {
			if (!out->refuse[0])
				snprintf(out->refuse, sizeof out->refuse,
					 "seccomp: the filter cannot be built here (send "
					 "\"seccomp\": false to run without it)");
		} else if (out->bwrap) {
			out->seccomp_bwrap = true;
		} else {
			out->seccomp_inproc = true;
		}
	}
}

json_t *exe_plan_json(const exe_plan *p, const exe_spec *s, const exe_host *h)
{
	json_t *o = json_object();
	json_object_set_new(o, "user", json_string(p->drop ? h->user : h->user[0] ? h->user : "?"));
	json_object_set_new(o, "uid", json_integer(p->drop ? (json_int_t)p->uid : (json_int_t)h->uid));
	json_object_set_new(o, "privileges",
			    json_string(p->drop ? "switched to the jobs user before exec"
						: "the executor's own user (it does not run as root)"));
	json_object_set_new(o, "process_group", json_true());
	json_object_set_new(o, "subreaper", json_true());
	const char *track = p->cg_v2    ? "cgroup2"
			    : p->v1_pids ? "cgroup1 pids group"
					 : "process group and subreaper";
	json_object_set_new(o, "tracking", json_string(track));
	json_object_set_new(o, "kill",
			    json_string(p->cg_v2 && h->cg.v2_kill ? "cgroup.kill, then the subreaper's tree"
					: p->cg_v2 || p->v1_pids ? "each process of the cgroup, then the subreaper's tree"
								 : "the process group, then the subreaper's tree"));
	const exe_limits *l = &s->limits;
	json_object_set_new(o, "memory",
			    !l->memory_bytes ? json_null()
			    : p->v2_memory   ? json_string("cgroup2 memory.max")
			    : p->v1_memory   ? json_string("cgroup1 memory.limit_in_bytes")
					     : json_string("RLIMIT_AS (address space, per process)"));
	json_object_set_new(o, "pids",
			    !l->pids	   ? json_null()
			    : p->v2_pids   ? json_string("cgroup2 pids.max")
			    : p->v1_pids   ? json_string("cgroup1 pids.max")
			    : p->rl_nproc  ? json_string("RLIMIT_NPROC (per user)")
					   : json_string("none: RLIMIT_NPROC does not bind root"));
	json_object_set_new(o, "cpu_time",
			    !l->cpu_s ? json_null()
			    : p->cpu_watch
				    ? json_string("RLIMIT_CPU per process, and the tree's from cgroup2 cpu.stat")
				    : json_string("RLIMIT_CPU per process"));
	json_object_set_new(o, "nofile", json_string("RLIMIT_NOFILE"));
	if (p->bwrap)
		json_object_set_new(o, "namespaces",
				    json_pack("{s:s, s:s, s:s, s:b}", "tool", "bubblewrap", "network",
					      s->net ? "shared" : "none (own namespace)", "pid",
					      "own namespace", "readonly_root", s->readonly_root));
	else
		json_object_set_new(o, "namespaces", json_null());
	if (p->seccomp_inproc || p->seccomp_bwrap) {
		char d[120];
		snprintf(d, sizeof d, "refuses %d system calls (ptrace, mount, kexec_load, bpf, ...)%s",
			 h->seccomp_refused, p->seccomp_bwrap ? ", loaded by bubblewrap" : "");
		json_object_set_new(o, "seccomp", json_string(d));
	} else {
		json_object_set_new(o, "seccomp", json_null());
	}
	json_object_set_new(o, "no_new_privs", json_boolean(p->seccomp_inproc || p->drop));
	return o;
}

json_t *exe_host_json(const exe_host *h)
{
	const exe_cg_host *c = &h->cg;
	return json_pack("{s:{s:b, s:b, s:b, s:b, s:b, s:s}, s:{s:b, s:b}, s:b, s:s, s:i, s:s?, s:b, "
			 "s:b, s:s}",
			 "cgroup2", "usable", c->v2, "kill", c->v2_kill, "memory", c->v2_memory,
			 "pids", c->v2_pids, "cpu", c->v2_cpu, "base", c->v2_base, "cgroup1",
			 "memory", c->v1_memory, "pids", c->v1_pids, "root", h->root, "jobs_user",
			 h->user, "jobs_uid", (int)h->uid, "bubblewrap", h->bwrap[0] ? h->bwrap : NULL,
			 "seccomp", h->seccomp, "subreaper", 1, "notes", c->notes);
}
