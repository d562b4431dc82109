/* The response side of src/sdk/http_parse.c, as the gateway's upstream
 * client reads a kernel's answers (src/sdk/upstream.c), fed any bytes.
 *
 * Properties (a failure aborts):
 *  - the head's end found as the bytes arrive is the one a single search
 *    finds;
 *  - an accepted status line has a three-digit status of at least 100;
 *  - the framing is RFC 9112 §6.3's: no body for HEAD, 1xx, 204 and 304;
 *    else chunked with exactly one "chunked" coding on HTTP/1.1, a length
 *    from exactly one decimal Content-Length, or until the close (and then
 *    the connection is not kept); never both framing fields;
 *  - an answer to HEAD is framed as the same answer to GET without a body;
 *  - an accepted head written out again parses to the same answer. */
#include "sdk/http_parse.h"

#include "fuzz.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_FIELDS 100 /* ANSWER_FIELDS_MAX in upstream.c */
#define HEAD_MAX 16384

static size_t head_end_once(const char *b, size_t n)
{
	size_t scan = 0;
	return sdk_http_head_end(b, n, &scan);
}

static void check_accepted(const sdk_http_head *h, bool to_head)
{
	FUZZ_CHECK(h->status >= 100 && h->status <= 999, "status %d", h->status);
	FUZZ_CHECK(h->minor == 0 || h->minor == 1, "minor %d", h->minor);
	FUZZ_CHECK(h->reason && !strpbrk(h->reason, "\r\n"), "reason");
	unsigned n_cl = 0, n_te = 0;
	for (size_t i = 0; i < h->n_fields; i++) {
		const sdk_http_field *f = &h->fields[i];
		FUZZ_CHECK(strlen(f->name) == f->name_len && strlen(f->value) == f->value_len,
			   "field %zu: lengths", i);
		FUZZ_CHECK(f->name_len > 0 && !strpbrk(f->name, " \t:\r\n"), "field name '%s'",
			   f->name);
		FUZZ_CHECK(!strpbrk(f->value, "\r\n"), "a line break in %s", f->name);
		n_cl += !strcasecmp(f->name, "content-length");
		n_te += !strcasecmp(f->name, "transfer-encoding");
	}
	FUZZ_CHECK(!(n_cl && n_te) && n_cl <= 1 && n_te <= 1, "%u Content-Length, %u Transfer-Encoding",
		   n_cl, n_te);
	bool bodiless = to_head || h->status < 200 || h->status == 204 || h->status == 304;
	if (bodiless)
		FUZZ_CHECK(h->body == SDK_HTTP_BODY_NONE, "a body on a %d (to HEAD: %d)", h->status,
			   to_head);
	else if (n_te)
		FUZZ_CHECK(h->body == SDK_HTTP_BODY_CHUNKED && h->minor == 1, "chunked framing");
	else if (n_cl)
		FUZZ_CHECK(h->body == (h->content_length ? SDK_HTTP_BODY_LENGTH : SDK_HTTP_BODY_NONE),
			   "length framing");
	else
		FUZZ_CHECK(h->body == SDK_HTTP_BODY_CLOSE && !h->keep_alive, "close framing");
}

static size_t serialize(const sdk_http_head *h, char *out)
{
	size_t o = (size_t)sprintf(out, "HTTP/1.%d %03d %s\r\n", h->minor, h->status, h->reason);
	for (size_t i = 0; i < h->n_fields; i++)
		o += (size_t)sprintf(out + o, "%s: %s\r\n", h->fields[i].name, h->fields[i].value);
	memcpy(out + o, "\r\n", 2);
	return o + 2;
}

static void check_same(const sdk_http_head *a, const sdk_http_head *b)
{
	FUZZ_CHECK(a->status == b->status && a->minor == b->minor && !strcmp(a->reason, b->reason),
		   "status line %d '%s' became %d '%s'", a->status, a->reason, b->status, b->reason);
	FUZZ_CHECK(a->n_fields == b->n_fields, "%zu fields became %zu", a->n_fields, b->n_fields);
	for (size_t i = 0; i < a->n_fields; i++)
		FUZZ_CHECK(!strcmp(a->fields[i].name, b->fields[i].name) &&
				   !strcmp(a->fields[i].value, b->fields[i].value),
			   "field %zu changed", i);
	FUZZ_CHECK(a->body == b->body && a->content_length == b->content_length &&
			   a->keep_alive == b->keep_alive,
		   "framing changed");
}

static sdk_http_head h_get, h_head, h_again;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > HEAD_MAX)
		return 0;
	const char *in = (const char *)data;
	uint64_t rng = fuzz_seed(data, size);
	size_t end = head_end_once(in, size);
	size_t scan = 0, found = 0;
	for (size_t k = 0; k < size && !found;) {
		k += fuzz_step(&rng, 16);
		found = sdk_http_head_end(in, k < size ? k : size, &scan);
	}
	FUZZ_CHECK(found == end, "in pieces: end %zu, at once: %zu", found, end);
	if (!end)
		end = size; /* the parser must also refuse a head cut short, safely */

	const char *why = NULL;
	char *a = fuzz_copy(data, end, 0), *b = fuzz_copy(data, end, 0);
	int st_get = sdk_http_parse_response(a, end, MAX_FIELDS, false, &h_get, &why);
	FUZZ_CHECK(st_get == 0 || (st_get == -1 && why), "status %d", st_get);
	why = NULL;
	int st_head = sdk_http_parse_response(b, end, MAX_FIELDS, true, &h_head, &why);
	FUZZ_CHECK(st_head == st_get, "to GET: %d, to HEAD: %d", st_get, st_head);
	if (st_get == 0) {
		check_accepted(&h_get, false);
		check_accepted(&h_head, true);
		FUZZ_CHECK(h_head.status == h_get.status && h_head.n_fields == h_get.n_fields &&
				   h_head.body == SDK_HTTP_BODY_NONE &&
				   h_get.keep_alive == (h_head.keep_alive && h_get.body != SDK_HTTP_BODY_CLOSE),
			   "HEAD and GET differ beyond the body");
		char *again = malloc(2 * end + 64);
		if (!again)
			abort();
		size_t n = serialize(&h_get, again);
		FUZZ_CHECK(head_end_once(again, n) == n, "the written head's end is not its length");
		why = NULL;
		int st = sdk_http_parse_response(again, n, MAX_FIELDS, false, &h_again, &why);
		FUZZ_CHECK(st == 0, "the written head is refused: %s: %.*s", why, (int)n, again);
		check_same(&h_get, &h_again);
		free(again);
	}
	free(a);
	free(b);
	return 0;
}
