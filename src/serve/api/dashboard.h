/* The dashboard's live feed (dashboard_stream.c): GET /dashboard/events,
 * Server-Sent Events of every kernel's state as it changes. The main
 * process calls the hooks below; the routes are in dashboard.c. */
#ifndef GRACE_API_DASHBOARD_H
#define GRACE_API_DASHBOARD_H

#include "serve/layer.h"

#include "serve/api/api.h"

#define DASH_STREAMS_MAX 64             /* open feeds; more are refused 503 */
#define DASH_BACKLOG_MAX (256 * 1024)   /* bytes a slow reader may hold up */
#define DASH_TICK_MS 1000               /* guardian states are compared this often */
#define DASH_PING_TICKS 15              /* a comment line every 15 ticks keeps proxies open */

/* GET /dashboard/events: opens a feed for this request. */
void api_dashboard_events(sdk_req *req, void *ctx);
/* After every supervisor state change (serve.c's observer). */
void api_dashboard_on_change(api_ctx *api, const sup_change *c);
/* Ends every feed and frees the rest: at shutdown, before the server is
 * freed. Safe to call twice. */
void api_dashboard_close(api_ctx *api);

#endif
