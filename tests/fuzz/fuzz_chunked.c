/* The chunked decoder of src/sdk/http_parse.c (request bodies in
 * http_conn.c, kernels' answers in upstream.c), fed any bytes.
 *
 * Properties (a failure aborts):
 *  - the outcome is the same whatever the split of the input: at once, a
 *    byte at a time, and in pieces drawn from the input all give the same
 *    verdict (done, bad, or wanting more), the same body bytes, the same
 *    offset where the body ends (nothing after it is consumed: it is the
 *    next request) or where the framing went bad, and the same reason;
 *  - every call makes progress: it consumes input, gives body bytes from
 *    inside its input, or ends;
 *  - a body it decoded, framed again as chunks of any sizes (with an
 *    extension and a trailer), decodes to the same bytes. */
#include "sdk/http_parse.h"

#include "fuzz.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define INPUT_MAX 65536

struct outcome {
	int rc;          /* DONE, BAD, or MORE when the input ran out */
	size_t at;       /* bytes consumed in all: the end, or the bad byte */
	char *body;      /* malloc'd */
	size_t body_len;
	const char *why; /* for BAD */
};

/* Feeds in[0..n) in pieces of at most `max_piece` bytes (0: all at once),
 * each piece in a buffer of its own size so that a read past it shows. */
static struct outcome decode(const char *in, size_t n, uint64_t *rng, size_t max_piece)
{
	struct outcome o = { .rc = SDK_CHUNKED_MORE, .body = malloc(n + 1) };
	sdk_chunked c = { 0 };
	if (!o.body)
		abort();
	size_t off = 0;
	while (off < n && o.rc == SDK_CHUNKED_MORE) {
		size_t piece = max_piece ? fuzz_step(rng, max_piece) : n;
		if (piece > n - off)
			piece = n - off;
		char *buf = fuzz_copy((const uint8_t *)in + off, piece, 0);
		size_t pos = 0;
		while (pos < piece) {
			size_t used = (size_t)-1, dlen = (size_t)-1;
			const char *d = NULL, *why = NULL;
			int rc = sdk_chunked_step(&c, buf + pos, piece - pos, &used, &d, &dlen, &why);
			FUZZ_CHECK(used <= piece - pos, "consumed %zu of %zu", used, piece - pos);
			FUZZ_CHECK(dlen == 0 || (d >= buf + pos && d + dlen <= buf + pos + used),
				   "body bytes outside what was consumed");
			if (rc == SDK_CHUNKED_BAD) {
				FUZZ_CHECK(why, "a refusal without a reason");
				o.rc = rc, o.why = why, o.at = off + pos + used;
				break;
			}
			FUZZ_CHECK(rc == SDK_CHUNKED_MORE || rc == SDK_CHUNKED_DONE, "rc %d", rc);
			FUZZ_CHECK(used > 0 || rc == SDK_CHUNKED_DONE, "no progress");
			memcpy(o.body + o.body_len, d ? d : "", dlen);
			o.body_len += dlen;
			pos += used;
			if (rc == SDK_CHUNKED_DONE) {
				o.rc = rc, o.at = off + pos;
				break;
			}
		}
		free(buf);
		off += piece;
	}
	if (o.rc == SDK_CHUNKED_MORE)
		o.at = n;
	return o;
}

static void check_same(const struct outcome *a, const struct outcome *b, const char *how)
{
	FUZZ_CHECK(a->rc == b->rc, "%s: verdict %d, at once %d", how, b->rc, a->rc);
	FUZZ_CHECK(a->at == b->at, "%s: ends at %zu, at once at %zu", how, b->at, a->at);
	FUZZ_CHECK(a->body_len == b->body_len && !memcmp(a->body, b->body, a->body_len),
		   "%s: %zu body bytes, at once %zu", how, b->body_len, a->body_len);
	FUZZ_CHECK(a->rc != SDK_CHUNKED_BAD || !strcmp(a->why, b->why), "%s: '%s', at once '%s'",
		   how, b->why, a->why);
}

/* Frames body[0..n) as chunks of sizes drawn from rng, then decodes it. */
static void check_reframed(const struct outcome *a, uint64_t *rng)
{
	char *f = malloc(a->body_len * 2 + 256 + 40 * (a->body_len + 1));
	if (!f)
		abort();
	size_t o = 0;
	for (size_t i = 0; i < a->body_len;) {
		size_t n = fuzz_step(rng, 300);
		if (n > a->body_len - i)
			n = a->body_len - i;
		o += (size_t)sprintf(f + o, i ? "%zX\r\n" : "%zx;name=\"v\"\r\n", n);
		memcpy(f + o, a->body + i, n);
		o += n;
		memcpy(f + o, "\r\n", 2);
		o += 2;
		i += n;
	}
	o += (size_t)sprintf(f + o, "0\r\nX-Trailer: 1\r\n\r\nNEXT");
	uint64_t r2 = *rng;
	struct outcome b = decode(f, o, &r2, 7);
	FUZZ_CHECK(b.rc == SDK_CHUNKED_DONE && b.at == o - 4, "reframed body: verdict %d at %zu of %zu",
		   b.rc, b.at, o);
	FUZZ_CHECK(b.body_len == a->body_len && !memcmp(b.body, a->body, a->body_len),
		   "reframed body decodes to %zu bytes, not %zu", b.body_len, a->body_len);
	free(b.body);
	free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > INPUT_MAX)
		return 0;
	const char *in = (const char *)data;
	uint64_t rng = fuzz_seed(data, size);
	struct outcome whole = decode(in, size, &rng, 0);
	struct outcome bytes = decode(in, size, &rng, 1);
	check_same(&whole, &bytes, "a byte at a time");
	struct outcome pieces = decode(in, size, &rng, 32);
	check_same(&whole, &pieces, "in pieces");
	if (whole.rc == SDK_CHUNKED_DONE)
		check_reframed(&whole, &rng);
	free(whole.body);
	free(bytes.body);
	free(pieces.body);
	return 0;
}
