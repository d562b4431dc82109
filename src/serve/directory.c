#include "serve/directory.h"

#include "sdk/log.h"
#include "sdk/ports.h"

#include <stdlib.h>
#include <string.h>

struct directory {
	const grace_config *cfg;
	supervisor *sup;
	sdk_ports_entry last[GRACE_KERNELS_MAX];
	size_t n_last;
	bool written;
};

directory *dir_new(const grace_config *cfg, supervisor *sup)
{
	directory *d = calloc(1, sizeof *d);
	if (d) {
		d->cfg = cfg;
		d->sup = sup;
	}
	return d;
}

void dir_free(directory *d) { free(d); }

void dir_publish(directory *d)
{
	sdk_ports_entry now[GRACE_KERNELS_MAX];
	size_t n = sup_count(d->sup);
	for (size_t i = 0; i < n; i++) {
		const sup_kernel *k = sup_at(d->sup, i);
		now[i] = (sdk_ports_entry){ .name = k->cfg->name,
					    .port = k->port,
					    .running = sup_resolve(k->cfg->name, d->sup) > 0 };
	}
	if (d->written && n == d->n_last && !memcmp(now, d->last, n * sizeof *now))
		return;
	int rc = sdk_ports_write(d->cfg->data_dir, now, n);
	if (rc < 0) {
		sdk_warn("cannot write %s/%s: %s", d->cfg->data_dir, SDK_PORTS_FILE, strerror(-rc));
		return;
	}
	memcpy(d->last, now, n * sizeof *now);
	d->n_last = n;
	d->written = true;
}
