/* Correlation of what the main process reports about kernels into
 * incidents (docs/self_healing.md "Correlation"). Pure: no I/O, the time
 * passed in as now_ms.
 *
 * - Deduplicated: one open incident per kernel and fault family; a new
 *   event of that kernel and family attaches to it.
 * - Flapping (CrashLoopBackOff's rule: restarts in a window): a kernel
 *   that crashed flap_threshold times within flap_window_ms is flapping;
 *   its incident says so from then on.
 * - Dependency-aware: a failure of kernel K while a kernel K depends on
 *   (the dependency table) has an open availability incident and is down
 *   or failed within stable_ms attaches to that incident, with the
 *   dependency as its cause and K among its kernels. And the other way
 *   round, for a dependency that fails after its dependent: the incident
 *   the dependency opens absorbs the dependent's own open availability
 *   incident while the dependent is still down or failed within stable_ms
 *   (the dependent's incident closes, merged into the cause's).
 * - Resolved once every kernel in it has been up, with no bad event, for
 *   stable_ms. */
#ifndef GRACE_SELF_HEALING_CORRELATE_H
#define GRACE_SELF_HEALING_CORRELATE_H

#include "kernels/layer.h"
#include "sdk/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SH_NAME_MAX 48
#define SH_INC_KERNELS_MAX 8
#define SH_OPEN_MAX 128    /* open incidents held; past it the oldest is resolved */
#define SH_TRACK_MAX 128   /* kernels followed */
#define SH_FLAP_RING 32    /* crash times remembered per kernel */
#define SH_DEPS_MAX 64
#define SH_TITLE_MAX 160

enum sh_ev_kind {
	SH_EV_CRASH,       /* the process ended on its own (supervisor) */
	SH_EV_UP,          /* ready again (supervisor) */
	SH_EV_PROBE_BAD,   /* the guardian's probes fail (degraded, unhealthy) */
	SH_EV_PROBE_OK,    /* the guardian's probes pass again */
	SH_EV_HEAL_FAILED, /* a heal that did not end healed */
	SH_EV_HEALED,      /* a heal whose verification passed */
	SH_EV_STORAGE,     /* its storage failed */
	SH_EV_ALERT,       /* an alert firing for it */
	SH_EV_HEAL_ASKED,  /* a heal was asked for it (the healer's advice) */
	SH_EV_STOPPED,     /* the ladder's last step stopped it: down until a person starts it */
	SH_EV_METRIC,      /* a watched metrics condition holds for it (watch.c) */
	SH_EV_COUNT
};

enum sh_family { SH_FAM_AVAILABILITY, SH_FAM_STORAGE, SH_FAM_ALERT, SH_FAM_COUNT };

typedef struct sh_event {
	const char *kernel;
	enum sh_ev_kind kind;
	int64_t ts_ms;
} sh_event;

/* kernel depends on (cannot do its work without) on. */
typedef struct sh_dep {
	char kernel[SH_NAME_MAX], on[SH_NAME_MAX];
} sh_dep;

typedef struct sh_incident {
	int64_t id;
	char kernel[SH_NAME_MAX]; /* the cause */
	enum sh_family family;
	char kernels[SH_INC_KERNELS_MAX][SH_NAME_MAX]; /* [0] is the cause */
	size_t n_kernels;
	int64_t opened_at, updated_at, resolved_at; /* resolved_at 0: open */
	unsigned events, crashes;
	bool flapping;
	char title[SH_TITLE_MAX];
} sh_incident;

typedef struct sh_track {
	char name[SH_NAME_MAX];
	bool down;
	int64_t last_bad_ms, last_up_ms;
	int64_t crashes[SH_FLAP_RING];
	unsigned head, n;
} sh_track;

typedef struct sh_corr_cfg {
	int64_t flap_window_ms;
	unsigned flap_threshold;
	int64_t stable_ms;
	sh_dep deps[SH_DEPS_MAX];
	size_t n_deps;
} sh_corr_cfg;

typedef struct sh_corr {
	sh_corr_cfg cfg;
	sh_incident open[SH_OPEN_MAX];
	size_t n_open;
	sh_track track[SH_TRACK_MAX];
	size_t n_track;
	int64_t next_id; /* the id the next incident gets */
} sh_corr;

typedef struct sh_corr_result {
	sh_incident *inc;     /* the incident the event went to (in c->open), or NULL */
	bool opened;          /* it was opened by this event */
	bool folded;          /* the event's kernel joined a dependency's incident */
	bool became_flapping; /* the incident turned flapping on this event */
	/* Dependents' incidents the new one absorbed (no longer open): the
	 * caller closes them in its store as merged into inc. */
	int64_t merged[SH_INC_KERNELS_MAX];
	size_t n_merged;
} sh_corr_result;

/* `next_id`: the first id to hand out (the store's max + 1). */
void sh_corr_init(sh_corr *c, const sh_corr_cfg *cfg, int64_t next_id);
/* Puts back an incident still open (read from the store at start). */
int sh_corr_restore(sh_corr *c, const sh_incident *inc);

/* "audit:immutable_log,governance:audit": each KERNEL:ON pair a
 * dependency. 0, or -1 with the reason in err. */
int sh_deps_parse(const char *spec, sh_corr_cfg *cfg, sdk_err *err);

/* Applies one event: *out says where it went. Good events never open an
 * incident. 0, or -1 when the event is malformed (no kernel, a kind out of
 * range, a name too long). */
int sh_corr_apply(sh_corr *c, const sh_event *ev, int64_t now_ms, sh_corr_result *out);

/* Resolves what has been stable long enough: copies each resolved incident
 * to resolved[] (at most max) and removes it from the open ones; returns
 * how many. */
size_t sh_corr_tick(sh_corr *c, int64_t now_ms, sh_incident *resolved, size_t max);

/* The open incident of `kernel` (as its cause or a folded kernel) of
 * `family`, or of any family when family is SH_FAM_COUNT; NULL if none. */
sh_incident *sh_corr_find(sh_corr *c, const char *kernel, enum sh_family family);

/* Crashes of `kernel` within the flap window before now_ms. */
unsigned sh_corr_crashes_in_window(const sh_corr *c, const char *kernel, int64_t now_ms);

const char *sh_family_name(enum sh_family f);
const char *sh_ev_kind_name(enum sh_ev_kind k);

#endif
