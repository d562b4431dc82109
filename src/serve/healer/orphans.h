/* Asks to a kernel (learning, self_healing) whose incident ended before
 * the answer came. The call path owns a call's argument until the call
 * ends, so such an ask cannot be freed when its incident ends: it waits
 * on its client's list of orphans, and the call's end frees it. At
 * shutdown the call path ends the calls still out without calling back,
 * so the client frees what is left on its list. An ask begins with its
 * hl_orphan (free() of the link frees the ask). */
#ifndef GRACE_HEALER_ORPHANS_H
#define GRACE_HEALER_ORPHANS_H

#include "serve/layer.h"

typedef struct hl_orphan {
	struct hl_orphan *prev, *next;
	struct hl_orphans *list; /* the list it is on; NULL while its incident lives */
} hl_orphan;

typedef struct hl_orphans {
	hl_orphan *head;
} hl_orphans;

/* The incident ended: o waits on l for its call to end. */
void hl_orphan_adopt(hl_orphans *l, hl_orphan *o);
/* Its call ended: off its list and freed. */
void hl_orphan_release(hl_orphan *o);
/* Shutdown: frees every ask still on l. */
void hl_orphans_free(hl_orphans *l);

#endif
