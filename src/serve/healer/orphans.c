/* Asks whose incidents ended (orphans.h). */
#include "serve/healer/orphans.h"

#include <stdlib.h>

void hl_orphan_adopt(hl_orphans *l, hl_orphan *o)
{
	o->list = l;
	o->prev = NULL;
	o->next = l->head;
	if (l->head)
		l->head->prev = o;
	l->head = o;
}

void hl_orphan_release(hl_orphan *o)
{
	if (o->list) {
		if (o->prev)
			o->prev->next = o->next;
		else
			o->list->head = o->next;
		if (o->next)
			o->next->prev = o->prev;
	}
	free(o);
}

void hl_orphans_free(hl_orphans *l)
{
	while (l->head) {
		hl_orphan *o = l->head;
		l->head = o->next;
		free(o);
	}
}
