/* A kernel is a table of routes plus init/close callbacks. The runtime here
 * gives each one the same life: a listening socket (handed over or bound),
 * its SQLite file, /health and /metrics, readiness and watchdog pings, and
 * a drain on SIGTERM. */
#ifndef GRACE_SDK_KERNEL_H
#define GRACE_SDK_KERNEL_H

#include "sdk/call.h"
#include "sdk/config.h"
#include "sdk/http.h"
#include "sdk/migrate.h"
#include "sdk/ports.h"
#include "sdk/token.h"

struct evbuffer;

#include <sqlite3.h>
#include <stdbool.h>
#include <sys/types.h>

/* Exit codes the supervisor understands (see STYLE.md). */
#define SDK_EXIT_OK 0
#define SDK_EXIT_PERMANENT 100 /* bad configuration: restarting will not help */
#define SDK_EXIT_TEMPORARY 111 /* try again later, with backoff */

typedef struct sdk_kernel sdk_kernel;

/* A call to one of a kernel's routes from another process that names
 * itself (X-Grace-Caller, sent by the call path with the internal token):
 * what the policy decides (docs/policy.md, "Calls between kernels"). */
#define SDK_DECIDE_ASK_POLICY 2 /* see decide_call below */

typedef struct sdk_call_decision {
	const char *caller; /* Kernel::"CALLER": a kernel's name, or "grace" */
	const char *action; /* Action::"METHOD /pattern" of the called route */
	const char *user, *role; /* the user it is made for, or NULL */
} sdk_call_decision;

/* A kernel's definition is also its identity: name, default port, tier
 * and completeness live here and nowhere else. The configuration's
 * defaults, `grace kernels-list`, /kernel-ports and the README's kernel
 * table are derived from these (docs/kernels.md). */
typedef struct sdk_kernel_def {
	const char *name;
	const char *summary;
	int port;         /* default, GRACE_KERNEL_PORT_MIN..MAX, before port_offset */
	const char *tier; /* core, governance, execution, agentic or services */
	bool complete;    /* true only when everything its issue asks works */
	/* The longest a route of this kernel holds a long poll (its `wait_ms`
	 * query), so a proxy in front waits that long plus a margin; 0: none. */
	unsigned long_poll_max_ms;
	/* The schema version of DATA_DIR/NAME.db this build writes, and the
	 * steps from each older one (sdk/migrate.h: migrations[N] goes from N
	 * to N+1; NULL when each only stamps). The runtime brings the file up
	 * to date before init, and refuses to start (exit SDK_EXIT_PERMANENT,
	 * the reason logged) on a file from a newer Grace or a failed step.
	 * 0: the kernel manages its version itself (none is checked). */
	int schema_version;
	const sdk_mig_step *migrations;
	size_t n_migrations;
	const sdk_route *routes; /* handlers get the sdk_kernel * as ctx */
	size_t n_routes;
	/* Runs after the database is open and before READY=1; returns 0, or a
	 * negative sdk_status with the reason in err (the kernel then exits
	 * SDK_EXIT_TEMPORARY, unless the database is damaged: then it stays up
	 * with its storage failed). Not called when the database failed its
	 * check at open. */
	int (*init)(sdk_kernel *k, sdk_err *err);
	/* Setup that reads none of the kernel's state (a second connection to
	 * its database, worker threads, compiled tables) and may set k->state
	 * for init to finish (may be NULL). A standby runs it while it waits,
	 * with the kernel it stands in for still running, so it must not
	 * write the database or read what the running kernel may change; that
	 * takes it off the path from a crash to answering again. Otherwise it
	 * runs just before init. After it, close is called even when init
	 * never runs (a standby not needed, a store opened again), so close
	 * must handle a state that only prepare made. 0, or a negative
	 * sdk_status with the reason in err (as init). */
	int (*prepare)(sdk_kernel *k, sdk_err *err);
	/* SIGTERM arrived: end streams and long polls so the drain can finish
	 * (may be NULL). Requests are still answered after this. */
	void (*drain)(sdk_kernel *k);
	void (*close)(sdk_kernel *k);
	/* Decides a call from another process itself instead of asking the
	 * policy kernel (the policy kernel's own: asking itself over HTTP
	 * would wait on itself). 1 allowed, 0 refused, or a negative
	 * sdk_status when it cannot decide (answered 503), or
	 * SDK_DECIDE_ASK_POLICY for the runtime to ask the policy kernel as
	 * usual. NULL: the runtime asks the policy kernel. */
	int (*decide_call)(sdk_kernel *k, const sdk_call_decision *d);
	/* Appends the kernel's own series to its /metrics answer, in the text
	 * format, each labelled kernel="NAME" (sdk_metrics_escape the values);
	 * may be NULL. Runs on the loop: keep it cheap. */
	void (*metrics)(sdk_kernel *k, struct evbuffer *out);
} sdk_kernel_def;

struct sdk_kernel {
	const sdk_kernel_def *def;
	const grace_config *cfg;
	const grace_kernel_cfg *kcfg;
	struct event_base *base;
	sqlite3 *db; /* DATA_DIR/NAME.db, owned by the runtime */
	void *state; /* the kernel's own, owned by its init/close */
	sdk_server *server;
	char token[SDK_TOKEN_LEN + 1]; /* "" when none could be read: fail closed */
	/* The call path to other kernels, by name (sdk/call.h), following them
	 * wherever they move; owned by the runtime. */
	sdk_caller *caller;
	sdk_ports *ports;
	pid_t pid; /* this process's, read once: /health answers it per request */
};

/* False once the kernel's storage has failed: its database was damaged at
 * open, SQLite has met damage since, or the file was deleted or replaced
 * while open. The runtime checks before every route; a write acknowledged
 * later than its request arrived (a group commit) checks again before
 * answering. */
bool sdk_kernel_storage_ok(sdk_kernel *k);

/* The routes every kernel answers besides its own (GET /health, GET
 * /metrics: open, no token needed), in the order it matches them; *n gets
 * their count. For `grace routes` and the API's description. */
const sdk_route *sdk_kernel_standard_routes(size_t *n);

/* The runtime's policy client (sdk/pdp.h: one cache and one version watch
 * per process, shared with the decisions on calls), for a kernel's own
 * questions (an event to an instance, a job run for a user). NULL when
 * [policy] authorizer = table (the role table decides; nothing is asked)
 * or out of memory: the caller tells them apart with the configuration. */
struct sdk_pdp;
struct sdk_pdp *sdk_kernel_pdp(sdk_kernel *k);

/* Runs the kernel until SIGTERM/SIGINT; returns the process exit code. */
int sdk_kernel_run(const sdk_kernel_def *def, const grace_config *cfg);

#endif
