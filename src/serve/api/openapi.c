/* GET /openapi.json: the OpenAPI 3.1 description of every route on :8000,
 * the kernels' behind the gateway's prefixes included. It is built with
 * Grace (scripts/openapi_build.py merges docs/openapi/ and each kernel's
 * src/kernels/NAME/openapi.json into a C source) and served as it is;
 * tests/blackbox/test_openapi.py holds it to `grace routes`. */
#include "serve/api/api.h"

#include <event2/buffer.h>
#include <stddef.h>

/* The document, from the generated openapi_doc.c: static, never freed. */
extern const unsigned char api_openapi_json[];
extern const size_t api_openapi_json_len;

static void api_openapi(sdk_req *req, void *ctx)
{
	(void)ctx;
	struct evbuffer *b = evbuffer_new();
	/* A reference, not a copy: the bytes live as long as the program. */
	if (!b || evbuffer_add_reference(b, api_openapi_json, api_openapi_json_len, NULL, NULL) < 0) {
		if (b)
			evbuffer_free(b);
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	sdk_reply_raw(req, 200, "application/json", b);
	evbuffer_free(b);
}

/* The API's own description, public like /health */
static const sdk_route routes[] = {
	API_PUBLIC("GET", "/openapi.json", api_openapi),
};
const api_family api_openapi_family = { "openapi", routes, sizeof routes / sizeof routes[0] };
