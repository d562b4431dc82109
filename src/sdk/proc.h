/* Facts about processes read from /proc: memory, descriptors, and who holds a
 * TCP port. All return 0 or a negative errno; none of them print. */
#ifndef GRACE_SDK_PROC_H
#define GRACE_SDK_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/types.h>

/* Resident set size in bytes of `pid` (0 means this process). */
int proc_rss_bytes(pid_t pid, uint64_t *out);
/* posix_spawn of `exe` as a worker thread needs it: the child gets an
 * empty signal mask and every signal's default disposition (a worker
 * thread blocks every signal, which are the loop's, and our processes
 * ignore SIGPIPE: a tool must inherit neither), and with `own_group` a
 * process group of its own (a timeout then kills what it started too).
 * Returns posix_spawn's error number, 0 when it started. */
int proc_spawn(pid_t *pid, const char *exe, const posix_spawn_file_actions_t *fa, bool own_group,
	       char *const argv[], char *const envp[]);
/* Its RSS, and the part of it that is its own (resident minus resident
 * file-backed and shared pages, statm's second and third fields): what it
 * costs beyond the binary and libraries other processes map too. */
int proc_mem_bytes(pid_t pid, uint64_t *rss, uint64_t *own);
/* Number of open descriptors of `pid` (0 or getpid() for this process),
 * and its soft RLIMIT_NOFILE. */
int proc_open_fds(pid_t pid, unsigned *out);
int proc_max_fds(pid_t pid, uint64_t *out);
/* Its command line with NULs turned into spaces, truncated to `len`. */
int proc_cmdline(pid_t pid, char *buf, size_t len);
/* Its state letter (R, S, D, T, Z, ...) and start time in clock ticks since
 * boot: with the pid, the start time names one process for good. */
int proc_stat(pid_t pid, char *state, uint64_t *start_ticks);

/* A listening TCP socket as /proc/net/tcp shows it: for a listener the
 * receive-queue column is the accept queue's current length. (Its limit is
 * not there: only inet_diag has it.) */
typedef struct proc_listen_info {
	unsigned long inode;
	unsigned accept_queue;
} proc_listen_info;

/* The system-wide count of connections dropped because an accept queue was
 * full (TcpExt ListenOverflows): Linux keeps no per-port count. */
int proc_listen_overflows(uint64_t *out);

/* -ENOENT when nothing listens on `port` (IPv4 or IPv6). */
int proc_listen_info_get(int port, proc_listen_info *out);

/* The processes with socket `inode` open (the first `max`), lowest pid first. */
size_t proc_socket_holders(unsigned long inode, pid_t *pids, size_t max);

/* The process holding a socket that listens on 127.0.0.1/0.0.0.0/::
 * port `port`: *pid_out is 0 when the socket is found but not its owner
 * (another user's process). Returns -ENOENT when nobody listens there. */
int proc_port_holder(int port, pid_t *pid_out);

#endif
