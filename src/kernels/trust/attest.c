/* Attestation of kernel processes (attest.h). */
#include "kernels/trust/attest.h"

#include "sdk/db.h"

#include <errno.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tr_proc_read(pid_t pid, tr_proc *out, sdk_err *err)
{
	char path[64], buf[1024];
	if (pid <= 0)
		return sdk_fail(err, SDK_EINVAL, "not a pid");
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	if (!n)
		return sdk_fail(err, SDK_ENOTFOUND, "process %d is not running", (int)pid);
	buf[n] = '\0';
	/* After the command's closing parenthesis: state is field 3, start
	 * time field 22. */
	char *p = strrchr(buf, ')');
	unsigned long long start = 0;
	int field = 2;
	for (char *t = p ? strtok(p + 1, " ") : NULL; t; t = strtok(NULL, " "))
		if (++field == 22) {
			start = strtoull(t, NULL, 10);
			break;
		}
	if (field != 22)
		return sdk_fail(err, SDK_ENOTFOUND, "process %d: unreadable stat", (int)pid);
	snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
	ssize_t m = readlink(path, out->exe, sizeof out->exe - 1);
	if (m <= 0)
		return sdk_fail(err, SDK_ENOTFOUND, "process %d: no executable to read (%s)",
				(int)pid, strerror(errno));
	out->exe[m] = '\0';
	out->pid = pid;
	out->start_time = (int64_t)start;
	return 0;
}

static void sha256_hex(const char *text, size_t len, char *out)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)text, len);
	sodium_bin2hex(out, TR_JOIN_HEX + 1, h, sizeof h);
}

static int hex_ok(const char *s)
{
	return s && strlen(s) == TR_JOIN_HEX && strspn(s, "0123456789abcdef") == TR_JOIN_HEX;
}

/* A registration's or workload's node is this one's: "" is (rows from
 * before nodes, or with none configured). */
static bool node_local(const char *node, const char *local_node)
{
	return !*node || !strcmp(node, local_node);
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, sdk_err *err)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sdk_db_fail(db, err, what);
	sqlite3_finalize(st);
	return rc;
}

/* Whether `hash` is registered already for exactly this process. */
static bool same_registration(sqlite3 *db, const char *kernel, const char *node,
			      const tr_proc *p, const char *hash)
{
	sqlite3_stmt *st;
	sdk_err e;
	if (sdk_db_prepare(db,
			   "SELECT 1 FROM trust_joins WHERE hash = ? AND kernel = ? AND pid = ?"
			   " AND start_time = ? AND exe = ? AND node = ?",
			   &st, &e) < 0)
		return false;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kernel, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)p->pid);
	sqlite3_bind_int64(st, 4, p->start_time);
	sqlite3_bind_text(st, 5, p->exe, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, node, -1, SQLITE_STATIC);
	bool same = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return same;
}

int tr_join_register(sqlite3 *db, const char *kernel, const char *node, const tr_proc *p,
		     const char *hash_hex, int64_t now_ms, sdk_err *err)
{
	if (!hex_ok(hash_hex))
		return sdk_fail(err, SDK_EINVAL, "credential_sha256 must be 64 lower-case hex digits");
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"DELETE FROM trust_joins WHERE hash IN (SELECT hash FROM trust_joins"
				" ORDER BY registered_ms DESC LIMIT -1 OFFSET ?)",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, TR_JOINS_MAX - 1);
	if ((rc = step_done(db, st, "dropping old registrations", err)) < 0)
		return rc;
	if ((rc = sdk_db_prepare(db,
				 "INSERT INTO trust_joins(hash, kernel, pid, start_time, exe,"
				 " registered_ms, node) VALUES (?, ?, ?, ?, ?, ?, ?)",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash_hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kernel, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)p->pid);
	sqlite3_bind_int64(st, 4, p->start_time);
	sqlite3_bind_text(st, 5, p->exe, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, now_ms);
	sqlite3_bind_text(st, 7, node, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if ((step & 0xff) == SQLITE_CONSTRAINT) {
		sqlite3_finalize(st);
		/* The same registration again: the supervisor's first try was
		 * stored but its answer lost (a timeout on a loaded machine).
		 * Anything else under that hash is a conflict. */
		return same_registration(db, kernel, node, p, hash_hex)
			       ? 0
			       : sdk_fail(err, SDK_ECONFLICT, "that credential is registered already");
	}
	return step == SQLITE_DONE ? (sqlite3_finalize(st), 0)
				   : step_done(db, st, "registering a credential", err);
}

static int workload_record(sqlite3 *db, const char *kernel, const char *node, const tr_proc *p,
			   int64_t now_ms, const char *given, char *attestation, sdk_err *err);
static int accept_enrolled(sqlite3 *db, const char *kernel, const char *hash, pid_t pid,
			   const char *local_node, int64_t now_ms, const char *given,
			   char *attestation, sdk_err *err);

static int accept_locked(sqlite3 *db, const char *kernel, const char *hash, pid_t pid,
			 const char *local_node, int64_t now_ms, const char *given, char *attestation,
			 sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT kernel, pid, start_time, exe, used_ms, node FROM trust_joins"
				" WHERE hash = ?",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step != SQLITE_ROW) {
		sqlite3_finalize(st);
		return step == SQLITE_DONE
			       ? accept_enrolled(db, kernel, hash, pid, local_node, now_ms, given,
						 attestation, err)
			       : sdk_db_fail(db, err, "reading registrations");
	}
	if (given) { /* the main process is never registered by a supervisor */
		sqlite3_finalize(st);
		return sdk_fail(err, SDK_EDENIED, "a supervisor's credential is a kernel's");
	}
	tr_proc want = { .pid = (pid_t)sqlite3_column_int(st, 1),
			 .start_time = sqlite3_column_int64(st, 2) };
	char who[65], node[65];
	snprintf(who, sizeof who, "%s", sdk_db_text(st, 0));
	snprintf(want.exe, sizeof want.exe, "%s", sdk_db_text(st, 3));
	int64_t used = sqlite3_column_int64(st, 4);
	snprintf(node, sizeof node, "%s", sdk_db_text(st, 5));
	sqlite3_finalize(st);
	if (strcmp(who, kernel))
		return sdk_fail(err, SDK_EDENIED, "this join credential is not kernel %s's", kernel);
	if (pid != want.pid)
		return sdk_fail(err, SDK_EDENIED, "this join credential was given to another process");
	/* Used: once, but for the answer that was lost. The same live process
	 * (checked below) presenting it again soon after gets a new
	 * attestation, which replaces the first: its first try was accepted
	 * while its answer timed out on a loaded machine, and without this the
	 * kernel would stay without an identity until its next start. */
	if (used && now_ms - used > TR_REJOIN_MS)
		return sdk_fail(err, SDK_ECONFLICT, "this join credential was used already");
	/* Registered by another node's main: its process is not in this
	 * host's /proc, and that node's supervisor, which made the process
	 * and handed it the credential, checked it. */
	tr_proc now = want;
	sdk_err pe;
	if (node_local(node, local_node) &&
	    (tr_proc_read(pid, &now, &pe) < 0 || now.start_time != want.start_time))
		return sdk_fail(err, SDK_EDENIED,
				"the process this join credential was given to is gone (restarted?)");
	if (strcmp(now.exe, want.exe))
		return sdk_fail(err, SDK_EDENIED, "process %d runs another executable now", (int)pid);
	/* Burnt, and the workload recorded, in one transaction. */
	if ((rc = sdk_db_prepare(db, "UPDATE trust_joins SET used_ms = ? WHERE hash = ?", &st,
				 err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	if ((rc = step_done(db, st, "burning the credential", err)) < 0)
		return rc;
	return workload_record(db, kernel, *node ? node : local_node, &now, now_ms, NULL,
			       attestation, err);
}

/* The workload `kernel` is process `p` of node `node` from now on, holding
 * a fresh attestation (TR_JOIN_HEX + 1 bytes; only its hash is kept). */
static int workload_record(sqlite3 *db, const char *kernel, const char *node, const tr_proc *p,
			   int64_t now_ms, const char *given, char *attestation, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc;
	char ahash[TR_JOIN_HEX + 1];
	if (given) { /* the process chose its attestation: only its hash comes here */
		snprintf(ahash, sizeof ahash, "%s", given);
		attestation[0] = '\0';
	} else {
		unsigned char raw[TR_JOIN_HEX / 2];
		randombytes_buf(raw, sizeof raw);
		sodium_bin2hex(attestation, TR_JOIN_HEX + 1, raw, sizeof raw);
		sha256_hex(attestation, TR_JOIN_HEX, ahash);
	}
	if ((rc = sdk_db_prepare(db,
				 "INSERT OR REPLACE INTO trust_workloads(kernel, pid, start_time, exe,"
				 " attested_ms, attestation_sha256, svid_expires_ms, node)"
				 " VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, kernel, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)p->pid);
	sqlite3_bind_int64(st, 3, p->start_time);
	sqlite3_bind_text(st, 4, p->exe, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now_ms);
	sqlite3_bind_text(st, 6, ahash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, node, -1, SQLITE_STATIC);
	return step_done(db, st, "recording the workload", err);
}

/* An enrolled credential (systemd's LoadCredential=): kept, not burnt, as
 * every process of that unit presents the same file; accepted from the
 * kernel it is enrolled for, for a live process running this very
 * executable (a grace binary, not any program the credential leaked to):
 * a process of this host, so of this node. */
static int accept_enrolled(sqlite3 *db, const char *kernel, const char *hash, pid_t pid,
			   const char *local_node, int64_t now_ms, const char *given,
			   char *attestation, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT kernel FROM trust_enrolled WHERE hash = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	char who[65] = "";
	if (step == SQLITE_ROW)
		snprintf(who, sizeof who, "%s", sdk_db_text(st, 0));
	sqlite3_finalize(st);
	if (step != SQLITE_ROW)
		return step == SQLITE_DONE
			       ? sdk_fail(err, SDK_ENOTFOUND, "no such join credential (yet)")
			       : sdk_db_fail(db, err, "reading enrolled credentials");
	if (strcmp(who, kernel))
		return sdk_fail(err, SDK_EDENIED, "this join credential is not kernel %s's", kernel);
	tr_proc now;
	sdk_err pe;
	if (tr_proc_read(pid, &now, &pe) < 0)
		return sdk_fail(err, SDK_EDENIED, "process %d is not running", (int)pid);
	char self[TR_EXE_MAX];
	ssize_t m = readlink("/proc/self/exe", self, sizeof self - 1);
	if (m <= 0)
		return sdk_fail(err, SDK_EIO, "cannot read this process's executable");
	self[m] = '\0';
	if (strcmp(now.exe, self))
		return sdk_fail(err, SDK_EDENIED, "process %d does not run %s", (int)pid, self);
	if ((rc = sdk_db_prepare(db,
				 "UPDATE trust_enrolled SET last_pid = ?, last_used_ms = ?"
				 " WHERE hash = ?",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int(st, 1, (int)pid);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
	if ((rc = step_done(db, st, "using an enrolled credential", err)) < 0)
		return rc;
	return workload_record(db, kernel, local_node, &now, now_ms, given, attestation, err);
}

int tr_enroll(sqlite3 *db, const char *kernel, const char *hash_hex, int64_t now_ms, sdk_err *err)
{
	if (!hex_ok(hash_hex))
		return sdk_fail(err, SDK_EINVAL, "credential_sha256 must be 64 lower-case hex digits");
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"INSERT INTO trust_enrolled (kernel, hash, enrolled_ms) VALUES (?, ?, ?)"
				" ON CONFLICT (kernel) DO UPDATE SET hash = excluded.hash,"
				" enrolled_ms = excluded.enrolled_ms, last_pid = NULL,"
				" last_used_ms = NULL",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, kernel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash_hex, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step == SQLITE_CONSTRAINT)
		return sdk_fail(err, SDK_ECONFLICT, "that credential is enrolled for another kernel");
	return step == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "enrolling a credential");
}

int tr_unenroll(sqlite3 *db, const char *kernel, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "DELETE FROM trust_enrolled WHERE kernel = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, kernel, -1, SQLITE_STATIC);
	if ((rc = step_done(db, st, "removing an enrolled credential", err)) < 0)
		return rc;
	return sqlite3_changes(db) ? 0 : sdk_fail(err, SDK_ENOTFOUND, "kernel %s has none", kernel);
}

int tr_join_accept(sqlite3 *db, const char *kernel, const char *credential, pid_t pid,
		   const char *local_node, int64_t now_ms, const char *given, char *attestation,
		   sdk_err *err)
{
	if (!hex_ok(credential))
		return sdk_fail(err, SDK_EINVAL, "credential must be 64 lower-case hex digits");
	if (given && !hex_ok(given))
		return sdk_fail(err, SDK_EINVAL,
				"attestation_sha256 must be 64 lower-case hex digits");
	char hash[TR_JOIN_HEX + 1];
	sha256_hex(credential, TR_JOIN_HEX, hash);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL))
		return sdk_db_fail(db, err, "starting a join");
	int rc = accept_locked(db, kernel, hash, pid, local_node, now_ms, given, attestation, err);
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL))
		rc = sdk_db_fail(db, err, "committing a join");
	if (rc < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		sodium_memzero(attestation, TR_JOIN_HEX + 1);
	}
	return rc;
}

int tr_workload_check(sqlite3 *db, const char *kernel, const char *attestation,
		      const char *local_node, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT pid, start_time, attestation_sha256, node FROM trust_workloads"
				" WHERE kernel = ?",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, kernel, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_DONE) {
		sqlite3_finalize(st);
		return 0; /* never attested: the internal token's word, as before */
	}
	if (step != SQLITE_ROW) {
		sqlite3_finalize(st);
		return sdk_db_fail(db, err, "reading workloads");
	}
	pid_t pid = (pid_t)sqlite3_column_int(st, 0);
	int64_t start = sqlite3_column_int64(st, 1);
	char want[TR_JOIN_HEX + 1], got[TR_JOIN_HEX + 1];
	snprintf(want, sizeof want, "%s", sdk_db_text(st, 2));
	bool local = node_local(sdk_db_text(st, 3), local_node);
	sqlite3_finalize(st);
	if (!hex_ok(attestation))
		return sdk_fail(err, SDK_EDENIED,
				"kernel %s is attested: only its attested process gets its identity",
				kernel);
	sha256_hex(attestation, TR_JOIN_HEX, got);
	if (sodium_memcmp(got, want, TR_JOIN_HEX) != 0)
		return sdk_fail(err, SDK_EDENIED, "not kernel %s's attested process", kernel);
	/* A process of another node: not in this host's /proc; its
	 * attestation is the proof (a restart there attests anew). */
	tr_proc now;
	sdk_err pe;
	if (local && (tr_proc_read(pid, &now, &pe) < 0 || now.start_time != start))
		return sdk_fail(err, SDK_EDENIED,
				"kernel %s's attested process is gone: a new one attests anew", kernel);
	return 0;
}

void tr_workload_svid(sqlite3 *db, const char *kernel, int64_t expires_ms)
{
	sqlite3_stmt *st;
	sdk_err e;
	if (sdk_db_prepare(db,
			   "UPDATE trust_workloads SET svid_expires_ms = max(svid_expires_ms, ?)"
			   " WHERE kernel = ?",
			   &st, &e) < 0)
		return;
	sqlite3_bind_int64(st, 1, expires_ms);
	sqlite3_bind_text(st, 2, kernel, -1, SQLITE_STATIC);
	step_done(db, st, "recording an SVID", &e);
}

int tr_workloads_json(sqlite3 *db, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT kernel, pid, exe, attested_ms, svid_expires_ms, node"
				" FROM trust_workloads ORDER BY kernel",
				&st, err);
	if (rc < 0)
		return rc;
	json_t *list = json_array();
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t exp = sqlite3_column_int64(st, 4);
		const char *node = sdk_db_text(st, 5);
		json_array_append_new(
			list, json_pack("{s:s, s:o, s:i, s:s, s:I, s:o}", "name", sdk_db_text(st, 0),
					"node", *node ? json_string(node) : json_null(), "pid",
					sqlite3_column_int(st, 1), "exe", sdk_db_text(st, 2),
					"attested_at", (json_int_t)sqlite3_column_int64(st, 3),
					"svid_expires_at", exp ? json_integer(exp) : json_null()));
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE) {
		json_decref(list);
		return sdk_db_fail(db, err, "reading workloads");
	}
	*out = json_pack("{s:o}", "workloads", list);
	return 0;
}

int tr_node_vouch(sqlite3 *db, const char *node, const char *main_sha256, int64_t now_ms,
		  sdk_err *err)
{
	if (!hex_ok(main_sha256))
		return sdk_fail(err, SDK_EINVAL, "main_sha256 must be 64 lower-case hex digits");
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"INSERT INTO trust_node_mains (node, main_sha256, vouched_ms)"
				" VALUES (?, ?, ?) ON CONFLICT (node) DO UPDATE SET"
				" main_sha256 = excluded.main_sha256, vouched_ms = excluded.vouched_ms",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, main_sha256, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	/* One process is the main of one node only. */
	if (step == SQLITE_CONSTRAINT)
		return sdk_fail(err, SDK_ECONFLICT, "that attestation is another node's main's");
	return step == SQLITE_DONE ? 0 : sdk_db_fail(db, err, "vouching for a node");
}

int tr_node_of_main(sqlite3 *db, const char *attestation, char *node, size_t len, sdk_err *err)
{
	if (!hex_ok(attestation))
		return sdk_fail(err, SDK_ENOTFOUND, "no attestation");
	char hash[TR_JOIN_HEX + 1];
	sha256_hex(attestation, TR_JOIN_HEX, hash);
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "SELECT node FROM trust_node_mains WHERE main_sha256 = ?", &st,
				err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		snprintf(node, len, "%s", sdk_db_text(st, 0));
	sqlite3_finalize(st);
	if (step == SQLITE_ROW)
		return 0;
	return step == SQLITE_DONE ? sdk_fail(err, SDK_ENOTFOUND, "no vouched main process holds it")
				   : sdk_db_fail(db, err, "reading vouched nodes");
}

int tr_main_enrolled_hash(sqlite3 *db, char *out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db,
				"SELECT attestation_sha256 FROM trust_workloads WHERE kernel = ?",
				&st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, TR_MAIN_WORKLOAD, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW && hex_ok(sdk_db_text(st, 0)))
		snprintf(out, TR_JOIN_HEX + 1, "%s", sdk_db_text(st, 0));
	else if (step == SQLITE_ROW || step == SQLITE_DONE)
		rc = sdk_fail(err, SDK_ENOTFOUND, "the main process never attested here");
	else
		rc = sdk_db_fail(db, err, "reading workloads");
	sqlite3_finalize(st);
	return rc;
}
