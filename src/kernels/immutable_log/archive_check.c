/* Checking an archive file with nothing but the file (see archive.h): the
 * manifest's SHA-256 over the contents, the tree head's Ed25519 signature
 * under the public key it names, and every entry's leaf hash and inclusion
 * proof against that head. Whoever checks also compares the key_id with
 * the log's (GET /key): the file cannot vouch for its own key. */
#include "archive.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ILOG_CHECK_LINE_MAX (16u << 20) /* an entry's line: 1 MiB of data, base64'd, and more */

struct ilog_check {
	json_t *report;
	uint64_t first, end, next;
	ilog_sth head;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	bool have_header;
};

__attribute__((format(printf, 2, 3)))
static int ilog_check_bad(struct ilog_check *c, const char *fmt, ...)
{
	char msg[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_object_set_new(c->report, "ok", json_false());
	json_object_set_new(c->report, "reason", json_string(msg));
	return 1;
}

static bool ilog_unhex(json_t *j, unsigned char out[ILOG_HASH_BYTES])
{
	size_t n = 0;
	return json_is_string(j) && json_string_length(j) == 2 * ILOG_HASH_BYTES &&
	       sodium_hex2bin(out, ILOG_HASH_BYTES, json_string_value(j), json_string_length(j), NULL,
			      &n, NULL) == 0 &&
	       n == ILOG_HASH_BYTES;
}

/* Base64 into a new buffer (*out, for free()), *len its length. */
static bool ilog_unb64(json_t *j, unsigned char **out, size_t *len)
{
	if (!json_is_string(j))
		return false;
	size_t tlen = json_string_length(j);
	*out = malloc(tlen / 4 * 3 + 1);
	if (!*out ||
	    sodium_base642bin(*out, tlen / 4 * 3 + 1, json_string_value(j), tlen, NULL, len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(*out);
		*out = NULL;
		return false;
	}
	return true;
}

static bool ilog_unb64_exact(json_t *j, unsigned char *out, size_t want)
{
	unsigned char *buf;
	size_t len = 0;
	if (!ilog_unb64(j, &buf, &len))
		return false;
	bool ok = len == want;
	if (ok)
		memcpy(out, buf, want);
	free(buf);
	return ok;
}

static int ilog_check_header(struct ilog_check *c, json_t *h)
{
	json_t *t = json_object_get(h, "tree_head");
	json_int_t first = json_integer_value(json_object_get(h, "first"));
	json_int_t end = json_integer_value(json_object_get(h, "end"));
	json_int_t size = json_integer_value(json_object_get(t, "tree_size"));
	json_int_t ts = json_integer_value(json_object_get(t, "timestamp"));
	const char *format = json_string_value(json_object_get(h, "format"));
	if (!format || strcmp(format, ILOG_ARCHIVE_FORMAT))
		return ilog_check_bad(c, "not an archive of this log (format %s expected)",
				      ILOG_ARCHIVE_FORMAT);
	if (first < 0 || end <= first || size < end || ts < 0 ||
	    !ilog_unhex(json_object_get(t, "root_hash"), c->head.root) ||
	    !ilog_unb64_exact(json_object_get(t, "signature"), c->head.signature,
			      crypto_sign_BYTES) ||
	    !ilog_unb64_exact(json_object_get(t, "public_key"), c->pk, sizeof c->pk))
		return ilog_check_bad(c, "the header is malformed");
	c->first = c->next = (uint64_t)first;
	c->end = (uint64_t)end;
	c->head.tree_size = (uint64_t)size;
	c->head.timestamp_ms = (uint64_t)ts;
	unsigned char msg[ILOG_STH_MESSAGE_BYTES];
	ilog_sth_message(&c->head, msg);
	if (crypto_sign_verify_detached(c->head.signature, msg, sizeof msg, c->pk))
		return ilog_check_bad(c, "the tree head's signature does not verify under the"
				      " public key the archive names");
	ilog_hash key_id;
	char hex[2 * ILOG_HASH_BYTES + 1];
	crypto_hash_sha256(key_id, c->pk, sizeof c->pk);
	ilog_hash_hex(key_id, hex);
	json_object_set_new(c->report, "key_id", json_string(hex));
	json_object_set_new(c->report, "first", json_integer(first));
	json_object_set_new(c->report, "end", json_integer(end));
	json_object_set_new(c->report, "tree_size", json_integer(size));
	ilog_hash_hex(c->head.root, hex);
	json_object_set_new(c->report, "root_hash", json_string(hex));
	c->have_header = true;
	return 0;
}

static int ilog_check_entry(struct ilog_check *c, json_t *e)
{
	json_int_t idx = json_integer_value(json_object_get(e, "index"));
	if (c->next >= c->end || idx < 0 || (uint64_t)idx != c->next)
		return ilog_check_bad(c, "entry %llu is missing or out of place",
				      (unsigned long long)c->next);
	unsigned char *data = NULL;
	size_t len = 0;
	ilog_hash leaf, kept;
	if (!ilog_unb64(json_object_get(e, "data_b64"), &data, &len) ||
	    !ilog_unhex(json_object_get(e, "leaf_hash"), kept)) {
		free(data);
		return ilog_check_bad(c, "entry %lld is malformed", (long long)idx);
	}
	ilog_hash_leaf(data, len, leaf);
	free(data);
	if (sodium_memcmp(leaf, kept, ILOG_HASH_BYTES))
		return ilog_check_bad(c, "entry %lld's bytes do not hash to its leaf hash",
				      (long long)idx);
	json_t *path = json_object_get(e, "audit_path");
	size_t n = json_array_size(path);
	ilog_hash proof[ILOG_PROOF_MAX];
	if (!json_is_array(path) || n > ILOG_PROOF_MAX)
		return ilog_check_bad(c, "entry %lld's proof is malformed", (long long)idx);
	for (size_t i = 0; i < n; i++)
		if (!ilog_unhex(json_array_get(path, i), proof[i]))
			return ilog_check_bad(c, "entry %lld's proof is malformed", (long long)idx);
	if (!ilog_inclusion_verify((uint64_t)idx, c->head.tree_size, leaf, proof, n, c->head.root))
		return ilog_check_bad(c, "entry %lld's inclusion proof does not verify against the"
				      " tree head", (long long)idx);
	c->next++;
	return 0;
}

/* The manifest must be exactly the line the writer makes for these
 * contents, so not one byte of the file goes unchecked. */
static int ilog_check_manifest(struct ilog_check *c, const char *line, size_t len,
			       uint64_t bytes, const ilog_hash content)
{
	if (c->next != c->end)
		return ilog_check_bad(c, "entries from %llu are missing",
				      (unsigned long long)c->next);
	char hex[2 * ILOG_HASH_BYTES + 1];
	ilog_hash_hex(content, hex);
	json_t *m = json_pack("{s:{s:s, s:I, s:I, s:I, s:I, s:I, s:s}}", "manifest", "format",
			      ILOG_ARCHIVE_FORMAT, "first", (json_int_t)c->first, "end",
			      (json_int_t)c->end, "entries", (json_int_t)(c->end - c->first),
			      "tree_size", (json_int_t)c->head.tree_size, "content_bytes",
			      (json_int_t)bytes, "content_sha256", hex);
	char *want = m ? json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(m);
	bool same = want && len == strlen(want) + 1 && !memcmp(line, want, len - 1);
	free(want);
	if (!same)
		return ilog_check_bad(c, "the manifest does not match the contents (their SHA-256,"
				      " size or range): a truncated or altered archive");
	return 0;
}

/* The line before the manifest: the header, or an entry. */
static int ilog_check_line(struct ilog_check *c, json_t *line)
{
	if (!json_is_object(line))
		return ilog_check_bad(c, "a line is not a JSON object");
	return c->have_header ? ilog_check_entry(c, line) : ilog_check_header(c, line);
}

int ilog_archive_check(const char *path, json_t **report, sdk_err *err)
{
	FILE *f = fopen(path, "rbe");
	if (!f)
		return sdk_fail(err, SDK_ENOTFOUND, "%s: %s", path, strerror(errno));
	struct ilog_check c = { .report = json_pack("{s:s, s:b}", "file", path, "ok", 1) };
	crypto_hash_sha256_state whole, content;
	crypto_hash_sha256_init(&whole);
	crypto_hash_sha256_init(&content);
	char *line = NULL, *prev = NULL;
	size_t cap = 0, prev_len = 0;
	uint64_t content_bytes = 0;
	ssize_t n;
	int bad = 0;
	/* Each line is checked once the next has come: the last is the
	 * manifest, and the contents it covers are every line before it. */
	while (!bad && (n = getline(&line, &cap, f)) > 0) {
		crypto_hash_sha256_update(&whole, (unsigned char *)line, (size_t)n);
		if ((size_t)n > ILOG_CHECK_LINE_MAX || line[n - 1] != '\n') {
			bad = ilog_check_bad(&c, "a line is too long or the file is truncated");
			break;
		}
		if (prev) {
			crypto_hash_sha256_update(&content, (unsigned char *)prev, prev_len);
			content_bytes += prev_len;
			json_t *j = json_loadb(prev, prev_len, 0, NULL);
			bad = ilog_check_line(&c, j);
			json_decref(j);
			free(prev);
		}
		prev = line;
		prev_len = (size_t)n;
		line = NULL;
		cap = 0;
	}
	int io = ferror(f);
	fclose(f);
	free(line);
	if (!bad && io)
		bad = ilog_check_bad(&c, "%s could not be read", path);
	if (!bad && (!prev || !c.have_header))
		bad = ilog_check_bad(&c, "the archive is empty or has no header");
	if (!bad) {
		ilog_hash sum;
		crypto_hash_sha256_final(&content, sum);
		bad = ilog_check_manifest(&c, prev, prev_len, content_bytes, sum);
	}
	free(prev);
	if (!bad) {
		ilog_hash sum;
		char hex[2 * ILOG_HASH_BYTES + 1];
		crypto_hash_sha256_final(&whole, sum);
		ilog_hash_hex(sum, hex);
		json_object_set_new(c.report, "sha256", json_string(hex));
		json_object_set_new(c.report, "entries", json_integer((json_int_t)(c.end - c.first)));
	}
	*report = c.report;
	return 0;
}
