/* POST /publish bodies of the message bus kernel, from the checks of
 * src/kernels/message_bus/bus.c (included, to reach its statics) through
 * the store (an in-memory SQLite) to the wire (wire.c), which splices the
 * stored JSON texts into every delivery without parsing them again.
 *
 * Input: the request body, read as sdk_req_json reads it.
 *
 * Properties (a failure aborts):
 *  - a body is refused as a whole, with a reason, or every message in it
 *    has the documented shape: only subject, payload, key and headers; a
 *    valid subject outside the bus's own '$' space; a key of at most 1024
 *    bytes; at most 64 headers, each a string;
 *  - accepted messages are stored in order, with offsets one after the
 *    other and timestamps that never decrease;
 *  - each stored message, as delivered on the wire (a poll's line, with
 *    its receipt, and a Server-Sent Event), is one line of JSON with no
 *    duplicate key that gives back its offset, timestamp, subject, key,
 *    headers and payload as published; the event has exactly its three
 *    lines and the blank line, whatever the message held. */
#include "../../src/kernels/message_bus/bus.c"

#include "fuzz.h"

#include <sqlite3.h>
#include <stdbool.h>

#define REOPEN_EVERY 2048 /* runs between fresh databases */

static sqlite3 *db;
static bus_store *st;
static unsigned runs;
static int64_t now_ms = 1000;

static void store_open(void)
{
	sdk_err err;
	FUZZ_CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK, "sqlite3_open");
	FUZZ_CHECK(bus_store_open(db, &st, &err) == 0, "bus_store_open: %s", err.msg);
}

static void store_close(void)
{
	bus_store_close(st);
	sqlite3_close(db);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	store_open();
	atexit(store_close);
	return 0;
}

static void check_shape(json_t *m)
{
	const char *k;
	json_t *v;
	json_object_foreach(m, k, v)
		FUZZ_CHECK(!strcmp(k, "subject") || !strcmp(k, "payload") || !strcmp(k, "key") ||
				   !strcmp(k, "headers"),
			   "field '%s' accepted", k);
	const char *subject = json_string_value(json_object_get(m, "subject"));
	FUZZ_CHECK(subject && !bus_subject_check(subject) && subject[0] != '$' &&
			   strlen(subject) == json_string_length(json_object_get(m, "subject")),
		   "subject accepted");
	FUZZ_CHECK(json_object_get(m, "payload"), "no payload accepted");
	json_t *key = json_object_get(m, "key");
	FUZZ_CHECK(!key || json_is_null(key) ||
			   (json_is_string(key) && json_string_length(key) <= BUS_KEY_MAX &&
			    strlen(json_string_value(key)) == json_string_length(key)),
		   "key accepted");
	json_t *h = json_object_get(m, "headers");
	if (h && !json_is_null(h)) {
		FUZZ_CHECK(json_is_object(h) && json_object_size(h) <= BUS_HEADERS_MAX, "headers");
		json_object_foreach(h, k, v)
			FUZZ_CHECK(*k && json_is_string(v), "header '%s' accepted", k);
	}
}

struct delivered {
	json_t *body; /* the messages as published */
	bool array;
	size_t n;
	int64_t first;
};

/* JSON of one wire line (or NULL), checked for the framing it must keep. */
static json_t *wire_json(struct evbuffer *b, const char *what)
{
	size_t len = evbuffer_get_length(b);
	const char *line = (const char *)evbuffer_pullup(b, -1);
	FUZZ_CHECK(line && !memchr(line, '\n', len) && !memchr(line, '\r', len),
		   "%s: a line break on the wire", what);
	json_error_t je;
	json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	FUZZ_CHECK(json_is_object(j), "%s: not a JSON object (%s): %.*s", what, je.text,
		   (int)(len < 300 ? len : 300), line);
	return j;
}

static bool same_or_null(json_t *sent, json_t *got)
{
	return (!sent || json_is_null(sent)) ? json_is_null(got) : json_equal(sent, got);
}

static int on_msg(const bus_msg *m, void *arg)
{
	struct delivered *d = arg;
	size_t i = (size_t)(m->seq - d->first);
	FUZZ_CHECK(m->seq >= d->first && i < d->n, "offset %lld delivered", (long long)m->seq);
	json_t *sent = d->array ? json_array_get(d->body, i) : d->body;

	struct evbuffer *b = evbuffer_new();
	FUZZ_CHECK(b && bus_wire_msg(b, m, 0) == 0, "bus_wire_msg");
	json_t *w = wire_json(b, "message");
	FUZZ_CHECK(json_integer_value(json_object_get(w, "offset")) == m->seq &&
			   json_integer_value(json_object_get(w, "timestamp")) == m->ts,
		   "offset or timestamp");
	FUZZ_CHECK(json_equal(json_object_get(w, "subject"), json_object_get(sent, "subject")),
		   "subject");
	FUZZ_CHECK(same_or_null(json_object_get(sent, "key"), json_object_get(w, "key")), "key");
	FUZZ_CHECK(same_or_null(json_object_get(sent, "headers"), json_object_get(w, "headers")),
		   "headers");
	FUZZ_CHECK(json_equal(json_object_get(w, "payload"), json_object_get(sent, "payload")),
		   "payload");
	FUZZ_CHECK(json_object_size(w) == 6, "%zu fields on the wire", json_object_size(w));
	json_decref(w);

	/* A group's delivery: the same and its receipt. */
	evbuffer_drain(b, evbuffer_get_length(b));
	FUZZ_CHECK(bus_wire_msg(b, m, 3) == 0, "bus_wire_msg with deliveries");
	w = wire_json(b, "delivery");
	int64_t seq = 0;
	int n = 0;
	FUZZ_CHECK(json_integer_value(json_object_get(w, "deliveries")) == 3 &&
			   bus_receipt_parse(json_string_value(json_object_get(w, "receipt")), &seq,
					     &n) == 0 &&
			   seq == m->seq && n == 3,
		   "receipt");
	json_decref(w);

	/* As a Server-Sent Event: three lines and a blank one. */
	evbuffer_drain(b, evbuffer_get_length(b));
	FUZZ_CHECK(bus_wire_event(b, m) == 0, "bus_wire_event");
	size_t len = evbuffer_get_length(b), lines = 0;
	const char *e = (const char *)evbuffer_pullup(b, -1);
	for (size_t k = 0; k < len; k++)
		lines += e[k] == '\n';
	FUZZ_CHECK(lines == 4 && !memchr(e, '\r', len) && len > 2 && e[len - 1] == '\n' &&
			   e[len - 2] == '\n',
		   "the event's framing");
	evbuffer_free(b);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 20)
		return 0;
	if (++runs % REOPEN_EVERY == 0) {
		store_close();
		store_open();
	}
	json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!body)
		return 0; /* sdk_req_json answers 400 */
	bool array = json_is_array(body);
	size_t n = array ? json_array_size(body) : 1;
	if (!json_is_object(body) && !array) {
		json_decref(body);
		return 0;
	}
	if (array && (n == 0 || n > BUS_PUBLISH_MAX)) {
		json_decref(body);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		const char *what = NULL, *why = bus_check_msg(array ? json_array_get(body, i) : body,
							      &what);
		if (why) {
			FUZZ_CHECK(*why && what, "a refusal without a reason");
			json_decref(body);
			return 0; /* one bad message refuses them all */
		}
		check_shape(array ? json_array_get(body, i) : body);
	}

	struct bus_batch bt = { 0 };
	FUZZ_CHECK(bus_batch_reserve(&bt, n) == 0, "reserve");
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(bus_batch_add(&bt, array ? json_array_get(body, i) : body) == 0, "add");
	int64_t first = bus_store_next_seq(st), last_ts = 0;
	sdk_err err;
	now_ms += (int64_t)(runs % 3) - 1; /* the clock may step back a little */
	FUZZ_CHECK(bus_store_append(st, bt.msgs, n, now_ms, &err) == 0, "append: %s", err.msg);
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(bt.msgs[i].seq == first + (int64_t)i, "offset %lld for message %zu",
			   (long long)bt.msgs[i].seq, i);
		FUZZ_CHECK(bt.msgs[i].ts >= last_ts, "a timestamp went back");
		last_ts = bt.msgs[i].ts;
	}
	struct delivered d = { body, array, n, first };
	int64_t next = 0;
	FUZZ_CHECK(bus_store_scan(st, ">", first, n, n, on_msg, &d, &next, &err) == 0, "scan: %s",
		   err.msg);
	FUZZ_CHECK(next == first + (int64_t)n, "the scan stopped at %lld of %lld", (long long)next,
		   (long long)(first + (int64_t)n));
	bus_batch_free_texts(&bt);
	free(bt.msgs);
	free(bt.texts);
	json_decref(body);
	return 0;
}
