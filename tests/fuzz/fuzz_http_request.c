/* The request side of src/sdk/http_parse.c: the search for a head's end
 * and the request parser, fed any bytes.
 *
 * Properties (a failure aborts):
 *  - the head's end found as the bytes arrive (a byte at a time, and in
 *    splits drawn from the input) is the one a single search finds: the
 *    same bytes are framed the same whatever their segmentation;
 *  - a request the parser accepts is what RFC 9112 allows: a token method,
 *    a target without spaces or controls, fields with token names and
 *    trimmed values free of controls, a Host on HTTP/1.1, and framing
 *    derived from exactly one Content-Length or one "chunked" coding,
 *    never both;
 *  - an accepted request, written out again (method, target, fields), is
 *    a head whose end is its length and that parses to the same request;
 *  - a refusal carries a status the server can send (400, 417, 431) and a
 *    reason. */
#include "sdk/http_parse.h"

#include "fuzz.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define MAX_FIELDS 100 /* the server's default max_headers */
#define HEAD_MAX 16384 /* the server's default max_header_bytes */

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool all_tchar(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return false;
	return n > 0;
}

static size_t head_end_once(const char *b, size_t n)
{
	size_t scan = 0;
	return sdk_http_head_end(b, n, &scan);
}

/* The end found while the bytes come in pieces (the server calls again
 * with the longer buffer after each read). */
static size_t head_end_pieces(const char *b, size_t n, uint64_t *rng, size_t max_piece)
{
	size_t scan = 0;
	for (size_t k = 0; k < n;) {
		k += fuzz_step(rng, max_piece);
		if (k > n)
			k = n;
		size_t end = sdk_http_head_end(b, k, &scan);
		if (end) {
			FUZZ_CHECK(end <= k, "end %zu past the %zu bytes searched", end, k);
			return end;
		}
		FUZZ_CHECK(scan <= k, "scan %zu past the %zu bytes searched", scan, k);
	}
	return 0;
}

static void check_accepted(const sdk_http_head *h)
{
	FUZZ_CHECK(all_tchar(h->method, strlen(h->method)), "method '%s'", h->method);
	size_t tn = strlen(h->target);
	FUZZ_CHECK(tn > 0, "an empty target");
	for (size_t i = 0; i < tn; i++)
		FUZZ_CHECK((unsigned char)h->target[i] > 0x20 && (unsigned char)h->target[i] < 0x7f,
			   "byte 0x%02x in the target", (unsigned char)h->target[i]);
	FUZZ_CHECK(h->target[0] == '/' || (!strcmp(h->target, "*") && !strcmp(h->method, "OPTIONS")) ||
			   !strcmp(h->method, "CONNECT"),
		   "target '%s' for %s", h->target, h->method);
	FUZZ_CHECK(h->minor == 0 || h->minor == 1, "minor %d", h->minor);
	FUZZ_CHECK(!h->absolute_form || (h->host && h->target[0] == '/'), "absolute form");
	FUZZ_CHECK(h->minor == 0 || h->host, "HTTP/1.1 without a host accepted");
	FUZZ_CHECK(h->n_fields <= MAX_FIELDS, "%zu fields", h->n_fields);

	unsigned n_cl = 0, n_te = 0, n_host = 0;
	const char *cl = NULL;
	bool expect = false;
	for (size_t i = 0; i < h->n_fields; i++) {
		const sdk_http_field *f = &h->fields[i];
		FUZZ_CHECK(strlen(f->name) == f->name_len && strlen(f->value) == f->value_len,
			   "field %zu: lengths", i);
		FUZZ_CHECK(all_tchar(f->name, f->name_len), "field name '%s'", f->name);
		for (size_t k = 0; k < f->value_len; k++) {
			unsigned char c = (unsigned char)f->value[k];
			FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f), "byte 0x%02x in %s", c,
				   f->name);
		}
		if (f->value_len)
			FUZZ_CHECK(!strchr(" \t", f->value[0]) && !strchr(" \t", f->value[f->value_len - 1]),
				   "%s: value not trimmed", f->name);
		if (!strcasecmp(f->name, "content-length"))
			n_cl++, cl = f->value;
		else if (!strcasecmp(f->name, "transfer-encoding"))
			n_te++;
		else if (!strcasecmp(f->name, "host"))
			n_host++;
		else if (!strcasecmp(f->name, "expect"))
			expect = true;
	}
	FUZZ_CHECK(n_host <= 1, "%u Host fields accepted", n_host);
	FUZZ_CHECK(!(n_cl && n_te), "both Content-Length and Transfer-Encoding accepted");
	FUZZ_CHECK(n_cl <= 1 && n_te <= 1, "%u Content-Length, %u Transfer-Encoding", n_cl, n_te);
	FUZZ_CHECK(h->expect_continue == expect, "expect_continue %d", h->expect_continue);
	if (n_te) {
		FUZZ_CHECK(h->body == SDK_HTTP_BODY_CHUNKED && h->minor == 1, "chunked framing");
	} else if (n_cl) {
		uint64_t v = 0;
		for (const char *c = cl; *c; c++) {
			FUZZ_CHECK(*c >= '0' && *c <= '9', "Content-Length '%s' accepted", cl);
			v = v * 10 + (uint64_t)(*c - '0');
		}
		FUZZ_CHECK(*cl && v == h->content_length, "Content-Length '%s' read as %llu", cl,
			   (unsigned long long)h->content_length);
		FUZZ_CHECK(h->body == (v ? SDK_HTTP_BODY_LENGTH : SDK_HTTP_BODY_NONE), "length framing");
	} else {
		FUZZ_CHECK(h->body == SDK_HTTP_BODY_NONE && h->content_length == 0,
			   "a body without framing fields");
	}
}

/* Writes `h` out as a head: start line, fields, blank line. */
static size_t serialize(const sdk_http_head *h, char *out)
{
	size_t o = 0;
#define PUT(s, n) (memcpy(out + o, (s), (n)), o += (n))
	PUT(h->method, strlen(h->method));
	PUT(" ", 1);
	if (h->absolute_form) {
		PUT("http://", 7);
		PUT(h->host, strlen(h->host));
	}
	PUT(h->target, strlen(h->target));
	PUT(h->minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n", 11);
	for (size_t i = 0; i < h->n_fields; i++) {
		PUT(h->fields[i].name, h->fields[i].name_len);
		PUT(": ", 2);
		PUT(h->fields[i].value, h->fields[i].value_len);
		PUT("\r\n", 2);
	}
	PUT("\r\n", 2);
#undef PUT
	return o;
}

static bool str_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void check_same(const sdk_http_head *a, const sdk_http_head *b)
{
	FUZZ_CHECK(!strcmp(a->method, b->method) && !strcmp(a->target, b->target) &&
			   str_same(a->host, b->host) && a->minor == b->minor &&
			   a->absolute_form == b->absolute_form,
		   "start line: '%s %s' host '%s' became '%s %s' host '%s'", a->method, a->target,
		   a->host ? a->host : "(none)", b->method, b->target, b->host ? b->host : "(none)");
	FUZZ_CHECK(a->n_fields == b->n_fields, "%zu fields became %zu", a->n_fields, b->n_fields);
	for (size_t i = 0; i < a->n_fields; i++)
		FUZZ_CHECK(!strcmp(a->fields[i].name, b->fields[i].name) &&
				   !strcmp(a->fields[i].value, b->fields[i].value),
			   "field %zu changed", i);
	FUZZ_CHECK(a->body == b->body && a->content_length == b->content_length &&
			   a->keep_alive == b->keep_alive && a->expect_continue == b->expect_continue,
		   "framing changed");
}

static sdk_http_head h1, h2;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > HEAD_MAX)
		return 0;
	const char *in = (const char *)data;
	uint64_t rng = fuzz_seed(data, size);

	size_t end = head_end_once(in, size);
	FUZZ_CHECK(end <= size, "end %zu of %zu bytes", end, size);
	size_t a = head_end_pieces(in, size, &rng, 1);
	FUZZ_CHECK(a == end, "a byte at a time: end %zu, at once: %zu", a, end);
	size_t b = head_end_pieces(in, size, &rng, 64);
	FUZZ_CHECK(b == end, "in pieces: end %zu, at once: %zu", b, end);

	/* Whatever the bytes, the parser answers without reading past them. */
	char *whole = fuzz_copy(data, size, 0);
	const char *why = NULL;
	int st = sdk_http_parse_request(whole, size, MAX_FIELDS, &h1, &why);
	FUZZ_CHECK(st == 0 || ((st == 400 || st == 417 || st == 431) && why), "status %d", st);
	free(whole);
	if (!end)
		return 0;

	char *head = fuzz_copy(data, end, 0);
	why = NULL;
	st = sdk_http_parse_request(head, end, MAX_FIELDS, &h1, &why);
	FUZZ_CHECK(st == 0 || ((st == 400 || st == 417 || st == 431) && why), "status %d", st);
	if (st == 0) {
		check_accepted(&h1);
		/* Its own end: a valid head is framed by its own bytes. */
		FUZZ_CHECK(head_end_once(in, end) == end, "the head's end moved");
		char *again = malloc(2 * end + 64);
		if (!again)
			abort();
		size_t n = serialize(&h1, again);
		FUZZ_CHECK(head_end_once(again, n) == n, "the written head's end is not its length");
		why = NULL;
		st = sdk_http_parse_request(again, n, MAX_FIELDS, &h2, &why);
		FUZZ_CHECK(st == 0, "the written head is refused (%d): %s: %.*s", st, why, (int)n,
			   again);
		check_same(&h1, &h2);
		free(again);
	}
	free(head);
	return 0;
}
