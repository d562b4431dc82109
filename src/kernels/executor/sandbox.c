#include "kernels/executor/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Refused with EPERM: tracing other processes, mounting and namespaces,
 * loading code into the kernel or rebooting it, BPF, changing the clock,
 * reaching other processes' memory or handles, keyrings. */
static const char *const refused[] = {
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
	"mount", "umount", "umount2", "pivot_root", "chroot", "mount_setattr", "fsopen",
	"fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "unshare", "setns",
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "bpf",
	"perf_event_open", "userfaultfd", "settimeofday", "clock_settime", "clock_adjtime",
	"adjtimex", "stime", "open_by_handle_at", "name_to_handle_at", "keyctl", "add_key",
	"request_key", "iopl", "ioperm", "lookup_dcookie", "syslog", "vhangup", "sethostname",
	"setdomainname", "uselib", "vm86", "vm86old", "nfsservctl",
	NULL,
};

static int build(scmp_filter_ctx ctx, int *count)
{
	*count = 0;
	/* The same rules for 32-bit and x32 calls: no way around by ABI. */
#if defined(__x86_64__)
	seccomp_arch_add(ctx, SCMP_ARCH_X86);
	seccomp_arch_add(ctx, SCMP_ARCH_X32);
#endif
	for (size_t i = 0; refused[i]; i++) {
		int nr = seccomp_syscall_resolve_name(refused[i]);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture */
		if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0) == 0)
			(*count)++;
	}
	/* clone() asking for new namespaces; clone3 cannot be filtered by
	 * flag (its flags are in memory): ENOSYS, and libc falls back to clone. */
	const scmp_datum_t ns = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID |
				CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
	/* One rule per flag: a call with any of them set is refused. */
	for (int bit = 0; bit < 64; bit++) {
		scmp_datum_t b = (scmp_datum_t)1 << bit;
		if ((ns & b) && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
						 SCMP_A0(SCMP_CMP_MASKED_EQ, b, b)) < 0)
			return -1;
	}
	(*count)++;
	int nr3 = seccomp_syscall_resolve_name("clone3");
	if (nr3 != __NR_SCMP_ERROR && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr3, 0) == 0)
		(*count)++;
	return 0;
}

int exe_seccomp_build(exe_seccomp *out, sdk_err *why)
{
	memset(out, 0, sizeof *out);
	out->memfd = -1;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return sdk_fail(why, SDK_EIO, "seccomp_init failed");
	int fd = -1;
	if (build(ctx, &out->refused) < 0) {
		sdk_fail(why, SDK_EIO, "a seccomp rule could not be added");
		goto fail;
	}
	fd = memfd_create("grace-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || seccomp_export_bpf(ctx, fd) < 0) {
		sdk_fail(why, SDK_EIO, "cannot export the seccomp filter: %s", strerror(errno));
		goto fail;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
	    st.st_size > (off_t)(BPF_MAXINSNS * sizeof(struct sock_filter))) {
		sdk_fail(why, SDK_EIO, "the exported seccomp filter is malformed");
		goto fail;
	}
	struct sock_filter *f = malloc((size_t)st.st_size);
	if (!f || pread(fd, f, (size_t)st.st_size, 0) != st.st_size) {
		free(f);
		sdk_fail(why, SDK_EIO, "cannot read the seccomp filter back");
		goto fail;
	}
	fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
	out->prog.len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	out->prog.filter = f;
	out->memfd = fd;
	seccomp_release(ctx);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return SDK_EIO;
}

void exe_seccomp_free(exe_seccomp *s)
{
	free(s->prog.filter);
	s->prog.filter = NULL;
	if (s->memfd >= 0)
		close(s->memfd);
	s->memfd = -1;
}

bool exe_bwrap_find(char *out, size_t n)
{
	static const char *const places[] = { "/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap",
					      NULL };
	for (size_t i = 0; places[i]; i++)
		if (access(places[i], X_OK) == 0) {
			snprintf(out, n, "%s", places[i]);
			return true;
		}
	out[0] = '\0';
	return false;
}

int exe_bwrap_args(const char *bwrap, const char *workdir, bool network, bool readonly_root,
		   bool seccomp, const char **a)
{
	int n = 0;
	a[n++] = bwrap;
	a[n++] = "--die-with-parent";
	a[n++] = "--unshare-pid";
	a[n++] = "--unshare-ipc";
	a[n++] = "--unshare-uts";
	a[n++] = "--unshare-cgroup-try";
	if (!network)
		a[n++] = "--unshare-net";
	a[n++] = readonly_root ? "--ro-bind" : "--bind";
	a[n++] = "/";
	a[n++] = "/";
	a[n++] = "--dev";
	a[n++] = "/dev";
	a[n++] = "--proc";
	a[n++] = "/proc";
	a[n++] = "--tmpfs";
	a[n++] = "/tmp";
	/* The job's directory, writable, at the same path as outside. */
	a[n++] = "--bind";
	a[n++] = workdir;
	a[n++] = workdir;
	a[n++] = "--chdir";
	a[n++] = workdir;
	if (seccomp) {
		a[n++] = "--seccomp";
		a[n++] = "3"; /* EXE_SECCOMP_FD */
	}
	a[n++] = "--";
	return n;
}
