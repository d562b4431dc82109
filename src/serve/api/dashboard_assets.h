/* The dashboard's files (web/), compiled into the binary by
 * scripts/web_embed.py: the main process serves them as they were built. */
#ifndef GRACE_API_DASHBOARD_ASSETS_H
#define GRACE_API_DASHBOARD_ASSETS_H

#include "serve/layer.h"

#include <stddef.h>

typedef struct dash_asset {
	const char *name;         /* "app.js": served as /ui/NAME ("index.html" as /) */
	const char *content_type; /* from its extension */
	const char *etag;         /* strong, quoted: a hash of its bytes */
	const unsigned char *data;
	size_t len;
} dash_asset;

extern const dash_asset dash_assets[];
extern const size_t dash_assets_count;

#endif
