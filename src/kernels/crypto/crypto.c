/* The crypto kernel (8111): named, versioned keys sealed at rest; Ed25519
 * signatures, XChaCha20-Poly1305 and sealed-box encryption, hashes and
 * random bytes. No route ever returns a private key. See docs/crypto.md. */
#include "sdk/json_keys.h"
#include "sdk/keyfile.h"
#include "sdk/clock.h"
#include "kernels/crypto/ops.h"
#include "kernels/registry.h"
#include "sdk/log.h"
#include "sdk/call.h"
#include "sdk/token.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CRY_MASTER_FILE "crypto.master"
#define CRY_RANDOM_MAX 1024u
#define CRY_RANDOM_DEFAULT 32u
#define CRY_BLAKE2B_DEFAULT 32u

#define CRY_TICK_MS 1000       /* destruction of due keys, audit events out */
#define CRY_AUDIT_BATCH 100
#define CRY_AUDIT_TIMEOUT_MS 5000

typedef struct cry_kernel {
	cry_store *store;
	sdk_kernel *k;
	struct event *tick;
	bool have_audit, sending;
	int64_t sending_upto;
	/* Kept here so that the timer touches SQLite only when there is work:
	 * the earliest pending deletion (0: none), audit events waiting. */
	int64_t next_due;
	bool outbox;
	unsigned long long destroyed, audit_failures;
} cry_kernel;

static cry_store *cry_store_of(void *ctx)
{
	return ((cry_kernel *)((sdk_kernel *)ctx)->state)->store;
}

/* Crypto's own failures, then the convention's (sdk_reply_status). */
static void cry_reply_err(sdk_req *req, int rc, const sdk_err *e)
{
	switch (rc) {
	case CRY_EEXIST: sdk_reply_error(req, 409, "exists", "%s", e->msg); break;
	case CRY_EAUTH: sdk_reply_error(req, 400, "decrypt_failed", "%s", e->msg); break;
	case CRY_ESEALED: sdk_reply_error(req, 500, "sealed_key_damaged", "%s", e->msg); break;
	case CRY_EPENDING: sdk_reply_error(req, 409, "pending_deletion", "%s", e->msg); break;
	case CRY_EGONE: sdk_reply_error(req, 410, "key_deleted", "%s", e->msg); break;
	default: sdk_reply_status(req, rc, e); break;
	}
}

/* Answers a store call: its JSON with `status`, or its error. Steals out. */
static void cry_reply(sdk_req *req, int rc, const sdk_err *e, int status, json_t *out)
{
	if (rc < 0)
		cry_reply_err(req, rc, e);
	else
		sdk_reply_json(req, status, out);
}

static json_t *cry_b64_json(const unsigned char *data, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	sodium_bin2base64(buf, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
	json_t *j = json_string(buf);
	free(buf);
	return j;
}

/* ---- request fields */

static const char *cry_string_field(sdk_req *req, json_t *body, const char *name)
{
	json_t *v = json_object_get(body, name);
	if (!json_is_string(v)) {
		sdk_reply_error(req, 400, "invalid", "%s is a required string", name);
		return NULL;
	}
	return json_string_value(v);
}

/* Bytes from "<name>" (a UTF-8 string) or "<name>_b64" (base64). *owned is
 * what to free afterwards. Returns 1 when present, 0 when absent and not
 * required; answers 400 and returns -1 when bad. */
static int cry_bytes_field(sdk_req *req, json_t *body, const char *name, bool required,
			   const unsigned char **data, size_t *len, unsigned char **owned)
{
	char b64name[40];
	snprintf(b64name, sizeof b64name, "%s_b64", name);
	json_t *text = json_object_get(body, name);
	json_t *b64 = json_object_get(body, b64name);
	*owned = NULL;
	if (text && b64) {
		sdk_reply_error(req, 400, "invalid", "give %s or %s, not both", name, b64name);
		return -1;
	}
	if (!text && !b64) {
		if (!required)
			return 0;
		sdk_reply_error(req, 400, "invalid", "%s (a string) or %s (base64) is required", name,
				b64name);
		return -1;
	}
	if (!json_is_string(text ? text : b64)) {
		sdk_reply_error(req, 400, "invalid", "%s must be a string", text ? name : b64name);
		return -1;
	}
	if (text) {
		*data = (const unsigned char *)json_string_value(text);
		*len = json_string_length(text);
		return 1;
	}
	const char *s = json_string_value(b64);
	size_t slen = json_string_length(b64);
	unsigned char *buf = malloc(slen / 4 * 3 + 1);
	if (!buf || sodium_base642bin(buf, slen / 4 * 3 + 1, s, slen, NULL, len, NULL,
				      sodium_base64_VARIANT_ORIGINAL) < 0) {
		free(buf);
		sdk_reply_error(req, 400, "bad_base64",
				"%s must be base64 (standard alphabet, padded)", b64name);
		return -1;
	}
	*data = buf;
	*owned = buf;
	return 1;
}

/* The optional "import": base64 of exactly CRY_SECRET_BYTES. Returns 1 when
 * present (in `out`), 0 when absent; answers 400 and returns -1 when bad. */
static int cry_import_field(sdk_req *req, json_t *body, unsigned char out[CRY_SECRET_BYTES])
{
	json_t *v = body ? json_object_get(body, "import") : NULL;
	if (!v || json_is_null(v))
		return 0;
	const char *s = json_string_value(v);
	size_t len = 0;
	unsigned char buf[CRY_SECRET_BYTES + 3];
	if (!s || sodium_base642bin(buf, sizeof buf, s, json_string_length(v), NULL, &len, NULL,
				    sodium_base64_VARIANT_ORIGINAL) < 0 ||
	    len != CRY_SECRET_BYTES) {
		sodium_memzero(buf, sizeof buf);
		sdk_reply_error(req, 400, "bad_base64",
				"import must be base64 of exactly %d bytes (an Ed25519 seed, an"
				" X25519 secret key or a symmetric key)",
				CRY_SECRET_BYTES);
		return -1;
	}
	memcpy(out, buf, CRY_SECRET_BYTES);
	sodium_memzero(buf, sizeof buf);
	return 1;
}

/* ---- keys */

static void on_key_create(sdk_req *req, void *ctx)
{
	static const char *const fields[] = { "name", "type", "import", NULL };
	json_t *body = sdk_req_json(req, true);
	if (!body || sdk_req_fields_only(req, body, fields) < 0)
		return;
	const char *name = cry_string_field(req, body, "name");
	if (!name)
		return;
	const char *type_s = cry_string_field(req, body, "type");
	if (!type_s)
		return;
	enum cry_type type;
	if (cry_type_parse(type_s, &type) < 0) {
		sdk_reply_error(req, 400, "invalid",
				"type must be ed25519, x25519 or symmetric, not %s", type_s);
		return;
	}
	unsigned char secret[CRY_SECRET_BYTES];
	int imported = cry_import_field(req, body, secret);
	if (imported < 0)
		return;
	json_t *out = NULL;
	sdk_err e;
	int rc = cry_key_create(cry_store_of(ctx), name, type, imported ? secret : NULL,
				sdk_wall_ms(), &out, &e);
	sodium_memzero(secret, sizeof secret);
	cry_reply(req, rc, &e, 201, out);
}

static void on_key_list(sdk_req *req, void *ctx)
{
	json_t *out = NULL;
	sdk_err e;
	int rc = cry_key_list(cry_store_of(ctx), &out, &e);
	cry_reply(req, rc, &e, 200, out);
}

static void on_key_get(sdk_req *req, void *ctx)
{
	json_t *out = NULL;
	sdk_err e;
	int rc = cry_key_get(cry_store_of(ctx), sdk_req_param(req, "name"), &out, &e);
	cry_reply(req, rc, &e, 200, out);
}

static void on_key_rotate(sdk_req *req, void *ctx)
{
	static const char *const fields[] = { "import", NULL };
	json_t *body = NULL;
	/* The body is optional: only to import the new version's secret. */
	if (evbuffer_get_length(sdk_req_body(req))) {
		body = sdk_req_json(req, true);
		if (!body || sdk_req_fields_only(req, body, fields) < 0)
			return;
	}
	unsigned char secret[CRY_SECRET_BYTES];
	int imported = cry_import_field(req, body, secret);
	if (imported < 0)
		return;
	json_t *out = NULL;
	sdk_err e;
	int rc = cry_key_rotate(cry_store_of(ctx), sdk_req_param(req, "name"),
				imported ? secret : NULL, sdk_wall_ms(), &out, &e);
	sodium_memzero(secret, sizeof secret);
	cry_reply(req, rc, &e, 200, out);
}

/* Reads what the timer has to do after a step changed it. A failure
 * leaves the timer looking every tick until it reads again. */
static void cry_work_refresh(cry_kernel *ck)
{
	sdk_err e;
	if (cry_pending_work(ck->store, &ck->next_due, &ck->outbox, &e) < 0) {
		sdk_warn("crypto: %s", e.msg);
		ck->next_due = 1;
		ck->outbox = true;
	}
}

/* Who asks, for the audit trail: the user the gateway (or the governance
 * executor, for an approved request) named, and the calling process. */
static cry_actor cry_actor_of(sdk_req *req, sdk_kernel *k)
{
	int role;
	return (cry_actor){ .user = sdk_req_caller(req, k->token, &role),
			    .caller = sdk_req_header(req, SDK_CALLER_HEADER) };
}

/* DELETE /keys/NAME {"window_s"?}: the key is unusable at once and
 * destroyed when the window ends, unless the deletion is cancelled. */
static void on_key_delete(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	const grace_crypto *c = &k->cfg->crypto;
	static const char *const fields[] = { "window_s", NULL };
	unsigned window = c->deletion_window_s;
	if (evbuffer_get_length(sdk_req_body(req))) {
		json_t *body = sdk_req_json(req, true);
		if (!body || sdk_req_fields_only(req, body, fields) < 0)
			return;
		json_t *w = json_object_get(body, "window_s");
		if (w) {
			json_int_t n = json_is_integer(w) ? json_integer_value(w) : -1;
			if (n < c->deletion_window_min_s || n > c->deletion_window_max_s) {
				sdk_reply_error(req, 400, "invalid",
						"window_s is an integer from %u to %u ([crypto]"
						" deletion_window_min_s, deletion_window_max_s)",
						c->deletion_window_min_s, c->deletion_window_max_s);
				return;
			}
			window = (unsigned)n;
		}
	}
	cry_actor who = cry_actor_of(req, k);
	json_t *out = NULL;
	sdk_err e;
	int rc = cry_key_schedule_deletion(cry_store_of(ctx), sdk_req_param(req, "name"), window,
					   &who, sdk_wall_ms(), &out, &e);
	if (rc == 0)
		cry_work_refresh(k->state);
	cry_reply(req, rc, &e, 200, out);
}

static void on_key_cancel_deletion(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	if (evbuffer_get_length(sdk_req_body(req))) {
		static const char *const none[] = { NULL };
		json_t *body = sdk_req_json(req, true);
		if (!body || sdk_req_fields_only(req, body, none) < 0)
			return;
	}
	cry_actor who = cry_actor_of(req, k);
	json_t *out = NULL;
	sdk_err e;
	int rc = cry_key_cancel_deletion(cry_store_of(ctx), sdk_req_param(req, "name"), &who,
					 sdk_wall_ms(), &out, &e);
	if (rc == 0)
		cry_work_refresh(k->state);
	cry_reply(req, rc, &e, 200, out);
}

/* ---- sign and verify */

static void on_sign(sdk_req *req, void *ctx)
{
	static const char *const fields[] = { "key", "data", "data_b64", NULL };
	json_t *body = sdk_req_json(req, true);
	if (!body || sdk_req_fields_only(req, body, fields) < 0)
		return;
	const char *key = cry_string_field(req, body, "key");
	const unsigned char *data;
	size_t len;
	unsigned char *owned;
	if (!key || cry_bytes_field(req, body, "data", true, &data, &len, &owned) < 0)
		return;
	unsigned char sig[crypto_sign_BYTES];
	unsigned version;
	sdk_err e;
	int rc = cry_sign(cry_store_of(ctx), key, data, len, sig, &version, &e);
	free(owned);
	if (rc < 0) {
		cry_reply_err(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:s, s:I, s:s, s:o}", "key", key, "version",
					   (json_int_t)version, "algorithm", "ed25519",
					   "signature", cry_b64_json(sig, sizeof sig)));
}

static int cry_version_field(sdk_req *req, json_t *body, unsigned *out)
{
	json_t *v = json_object_get(body, "version");
	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
	if (n < 1 || n > UINT32_MAX) {
		sdk_reply_error(req, 400, "invalid", "version is an integer from 1");
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

static void on_verify(sdk_req *req, void *ctx)
{
	static const char *const fields[] = { "key", "data", "data_b64", "signature", "version",
					      NULL };
	json_t *body = sdk_req_json(req, true);
	if (!body || sdk_req_fields_only(req, body, fields) < 0)
		return;
	const char *key = cry_string_field(req, body, "key");
	if (!key)
		return;
	const char *sig_s = cry_string_field(req, body, "signature");
	if (!sig_s)
		return;
	unsigned version;
	if (cry_version_field(req, body, &version) < 0)
		return;
	unsigned char sig[crypto_sign_BYTES + 3];
	size_t sig_len = 0;
	if (sodium_base642bin(sig, sizeof sig, sig_s, strlen(sig_s), NULL, &sig_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) < 0) {
		sdk_reply_error(req, 400, "bad_base64",
				"signature must be base64 (standard alphabet, padded) of %u bytes",
				crypto_sign_BYTES);
		return;
	}
	const unsigned char *data;
	size_t len;
	unsigned char *owned;
	if (cry_bytes_field(req, body, "data", true, &data, &len, &owned) < 0)
		return;
	bool valid;
	unsigned matched;
	sdk_err e;
	int rc = cry_verify(cry_store_of(ctx), key, data, len, sig, sig_len, version, &valid,
			    &matched, &e);
	free(owned);
	if (rc < 0) {
		cry_reply_err(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:s, s:b, s:o}", "key", key, "valid", valid,
					   "version", matched ? json_integer(matched) : json_null()));
}

/* ---- encrypt and decrypt */

static void on_encrypt(sdk_req *req, void *ctx)
{
	static const char *const fields[] = { "key", "plaintext", "plaintext_b64", "aad",
					      "aad_b64", NULL };
	json_t *body = sdk_req_json(req, true);
	if (!body || sdk_req_fields_only(req, body, fields) < 0)
		return;
	const char *key = cry_string_field(req, body, "key");
	if (!key)
		return;
	const unsigned char *pt, *aad = NULL;
	size_t len, aad_len = 0;
	unsigned char *pt_owned, *aad_owned;
	if (cry_bytes_field(req, body, "plaintext", true, &pt, &len, &pt_owned) < 0)
		return;
	int has_aad = cry_bytes_field(req, body, "aad", false, &aad, &aad_len, &aad_owned);
	if (has_aad < 0) {
		free(pt_owned);
		return;
	}
	char *token = NULL;
	unsigned version;
	sdk_err e;
	/* An empty aad is still given (non-NULL): x25519 keys refuse it too. */
	int rc = cry_encrypt(cry_store_of(ctx), key, pt, len, has_aad ? aad : NULL,
			     aad_len, &token, &version, &e);
	if (pt_owned)
		sodium_memzero(pt_owned, len);
	free(pt_owned);
	free(aad_owned);
	if (rc < 0) {
		cry_reply_err(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:s, s:I, s:s}", "key", key, "version",
					   (json_int_t)version, "ciphertext", token));
	free(token);
}

static void on_decrypt(sdk_req *req, void *ctx)
{
	static const char *const fields[] = { "key", "ciphertext", "aad", "aad_b64", NULL };
	json_t *body = sdk_req_json(req, true);
	if (!body || sdk_req_fields_only(req, body, fields) < 0)
		return;
	const char *key = cry_string_field(req, body, "key");
	if (!key)
		return;
	const char *token = cry_string_field(req, body, "ciphertext");
	if (!token)
		return;
	const unsigned char *aad = NULL;
	size_t aad_len = 0;
	unsigned char *aad_owned;
	int has_aad = cry_bytes_field(req, body, "aad", false, &aad, &aad_len, &aad_owned);
	if (has_aad < 0)
		return;
	unsigned char *pt = NULL;
	size_t len = 0;
	unsigned version;
	sdk_err e;
	int rc = cry_decrypt(cry_store_of(ctx), key, token,
			     has_aad ? aad : NULL, aad_len, &pt, &len, &version,
			     &e);
	free(aad_owned);
	if (rc < 0) {
		cry_reply_err(req, rc, &e);
		return;
	}
	json_t *out = json_pack("{s:s, s:I, s:o}", "key", key, "version", (json_int_t)version,
				"plaintext_b64", cry_b64_json(pt, len));
	/* The text form only when the bytes are UTF-8 (json_stringn checks). */
	json_t *text = json_stringn((const char *)pt, len);
	if (text)
		json_object_set_new(out, "plaintext", text);
	sodium_memzero(pt, len);
	free(pt);
	sdk_reply_json(req, 200, out);
}

/* ---- hashes and random bytes */

static void on_hash(sdk_req *req, void *ctx)
{
	(void)ctx;
	static const char *const fields[] = { "algorithm", "data", "data_b64", "bytes", NULL };
	json_t *body = sdk_req_json(req, true);
	if (!body || sdk_req_fields_only(req, body, fields) < 0)
		return;
	const char *alg = cry_string_field(req, body, "algorithm");
	if (!alg)
		return;
	json_t *bytes = json_object_get(body, "bytes");
	if (bytes && (!json_is_integer(bytes) || strcmp(alg, "blake2b"))) {
		sdk_reply_error(req, 400, "invalid", "bytes (an integer) is for blake2b only");
		return;
	}
	json_int_t out_len = bytes ? json_integer_value(bytes) : CRY_BLAKE2B_DEFAULT;
	const unsigned char *data;
	size_t len;
	unsigned char *owned;
	if (cry_bytes_field(req, body, "data", true, &data, &len, &owned) < 0)
		return;
	unsigned char digest[64];
	size_t n = 0;
	sdk_err e;
	int rc = cry_hash(alg, data, len, out_len < 0 || out_len > 64 ? 0 : (size_t)out_len, digest,
			  &n, &e);
	free(owned);
	if (rc < 0) {
		cry_reply_err(req, rc, &e);
		return;
	}
	char hex[2 * sizeof digest + 1];
	sodium_bin2hex(hex, sizeof hex, digest, n);
	sdk_reply_json(req, 200, json_pack("{s:s, s:s, s:I}", "algorithm", alg, "hash", hex,
					   "bytes", (json_int_t)n));
}

static void on_random(sdk_req *req, void *ctx)
{
	(void)ctx;
	unsigned long long n;
	if (sdk_req_query_uint(req, "bytes", 1, CRY_RANDOM_MAX, CRY_RANDOM_DEFAULT, &n) < 0)
		return;
	unsigned char buf[CRY_RANDOM_MAX];
	randombytes_buf(buf, (size_t)n);
	sdk_reply_json(req, 200, json_pack("{s:I, s:o}", "bytes", (json_int_t)n, "data_b64",
					   cry_b64_json(buf, (size_t)n)));
	sodium_memzero(buf, (size_t)n);
}

/* ---- the timer: keys due for destruction, audit events out */

static void on_audit_sent(int status, const char *body, size_t len, double ms, const char *error,
			  void *arg)
{
	(void)body, (void)len, (void)ms;
	cry_kernel *ck = arg;
	ck->sending = false;
	sdk_err e;
	if (status >= 200 && status < 300) {
		if (cry_outbox_sent(ck->store, ck->sending_upto, &e) < 0)
			sdk_warn("crypto: cannot mark audit events sent: %s", e.msg);
	} else if (ck->audit_failures++ % 50 == 0) {
		sdk_warn("crypto: the audit trail refused events (%d %s); will retry", status,
			 error ? error : "");
	}
}

static void audit_send(cry_kernel *ck)
{
	json_t *batch;
	int64_t upto;
	sdk_err e;
	if (cry_outbox(ck->store, CRY_AUDIT_BATCH, &batch, &upto, &e) < 0) {
		sdk_warn("crypto: %s", e.msg);
		return;
	}
	if (upto == 0 || !ck->have_audit) { /* nothing, or no audit trail to keep it */
		if (upto)
			cry_outbox_sent(ck->store, upto, &e);
		else
			ck->outbox = false;
		json_decref(batch);
		return;
	}
	char *body = json_dumps(batch, JSON_COMPACT);
	json_decref(batch);
	if (body && sdk_call(ck->k->caller, "audit", "POST", "/events", body, strlen(body), NULL,
			     CRY_AUDIT_TIMEOUT_MS, on_audit_sent, ck) == 0) {
		ck->sending = true;
		ck->sending_upto = upto;
	}
	free(body);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	cry_kernel *ck = arg;
	if (!sdk_kernel_storage_ok(ck->k))
		return;
	int64_t now = sdk_wall_ms();
	if (ck->next_due && ck->next_due <= now) {
		sdk_err e;
		int n = cry_key_destroy_due(ck->store, now, &e);
		if (n < 0)
			sdk_warn("crypto: cannot destroy keys due: %s", e.msg);
		else if (n > 0) {
			ck->destroyed += (unsigned)n;
			sdk_info("crypto: destroyed %d key(s) whose deletion was due", n);
		}
		cry_work_refresh(ck);
	}
	if (ck->outbox && !ck->sending)
		audit_send(ck);
}

/* ---- life */

/* The master key: DATA_DIR/crypto.master, 32 random bytes with mode 0600,
 * created at first start. A master key that is missing while sealed keys
 * exist, or that has loose permissions, stops the kernel rather than
 * creating a new one (which would orphan every key) or using it. */
static int cry_master_load(sdk_kernel *k, unsigned char master[CRY_MASTER_BYTES], sdk_err *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s", k->cfg->data_dir, CRY_MASTER_FILE) >=
	    (int)sizeof path)
		return sdk_fail(err, SDK_EINVAL, "master key path too long");
	int rc = keyfile_read(path, master, CRY_MASTER_BYTES, err);
	if (rc != SDK_ENOTFOUND)
		return rc;
	bool in_use;
	if ((rc = cry_store_in_use(k->db, &in_use, err)) < 0)
		return rc;
	if (in_use)
		return sdk_fail(
			err, SDK_ENOTFOUND,
			"%s is missing but the database holds keys sealed with it; restore it",
			path);
	crypto_aead_xchacha20poly1305_ietf_keygen(master);
	if ((rc = keyfile_create(path, master, CRY_MASTER_BYTES, err)) < 0) {
		sodium_memzero(master, CRY_MASTER_BYTES);
		return rc;
	}
	sdk_info("created the master key %s", path);
	return 0;
}

static int cry_init(sdk_kernel *k, sdk_err *err)
{
	if (sodium_init() < 0) {
		return sdk_fail(err, SDK_EIO, "libsodium failed to initialise");
	}
	sdk_err e;
	if (cry_store_schema(k->db, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	unsigned char master[CRY_MASTER_BYTES];
	if (cry_master_load(k, master, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	cry_store *s = NULL;
	int rc = cry_store_open(k->db, master, &s, &e);
	sodium_memzero(master, sizeof master);
	if (rc < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	cry_kernel *ck = calloc(1, sizeof *ck);
	if (!ck) {
		cry_store_close(s);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	ck->store = s;
	ck->k = k;
	k->state = ck;
	const grace_kernel_cfg *audit = grace_config_kernel(k->cfg, "audit");
	ck->have_audit = audit && audit->enabled;
	cry_work_refresh(ck);
	/* Deletions that came due while the kernel was down are done on the
	 * first tick. */
	ck->tick = event_new(k->base, -1, EV_PERSIST, on_tick, ck);
	if (!ck->tick) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	struct timeval tv = { CRY_TICK_MS / 1000, (CRY_TICK_MS % 1000) * 1000 };
	event_add(ck->tick, &tv);
	return 0;
}

static void cry_close(sdk_kernel *k)
{
	cry_kernel *ck = k->state;
	if (!ck)
		return;
	if (ck->tick)
		event_free(ck->tick);
	cry_store_close(ck->store);
	free(ck);
	k->state = NULL;
}

static const sdk_route cry_routes[] = {
	SDK_ROUTE("POST", "/keys", on_key_create),
	SDK_ROUTE("GET", "/keys", on_key_list),
	SDK_ROUTE("GET", "/keys/:name", on_key_get),
	SDK_ROUTE("POST", "/keys/:name/rotate", on_key_rotate),
	SDK_ROUTE("DELETE", "/keys/:name", on_key_delete),
	SDK_ROUTE("POST", "/keys/:name/cancel-deletion", on_key_cancel_deletion),
	SDK_ROUTE("POST", "/sign", on_sign),
	SDK_ROUTE("POST", "/verify", on_verify),
	SDK_ROUTE("POST", "/encrypt", on_encrypt),
	SDK_ROUTE("POST", "/decrypt", on_decrypt),
	SDK_ROUTE("POST", "/hash", on_hash),
	SDK_ROUTE("GET", "/random", on_random),
};

const sdk_kernel_def crypto_kernel = {
	.name = "crypto",
	.port = 8111, .tier = "governance",
	.summary = "keys sealed at rest, Ed25519 signatures, encryption, hashes, random bytes",
	.complete = true,
	/* A change is a new step in cry_migrations and a new fixture
	 * directory (docs/upgrades.md). */
	.schema_version = CRY_SCHEMA_VERSION,
	.migrations = cry_migrations,
	.n_migrations = CRY_SCHEMA_VERSION,
	.routes = cry_routes,
	.n_routes = sizeof cry_routes / sizeof cry_routes[0],
	.init = cry_init,
	.close = cry_close,
};
