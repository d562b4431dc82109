/* The bus's JetStream stream put back by `grace restore`: restore_js.h. */
#include "cli/restore_js.h"

#include "kernels/registry.h"
#include "sdk/clock.h"
#include "sdk/err.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JS_CHUNK (128 * 1024) /* under NATS's default max_payload, 1 MiB */
#define JS_API_WAIT_MS 10000
/* The last (empty) chunk is answered once the stream is rebuilt from the
 * snapshot, on every replica in a cluster. */
#define JS_FINISH_WAIT_MS 300000
/* A restored stream in a cluster elects its leader, and its consumers are
 * assigned, a moment after the restore answers. */
#define JS_SETTLE_MS 30000
#define JS_REPLY_MAX (1u << 20)

static void fail(restore_js *p, const char *what, const char *detail)
{
	p->check(p->ctx, what, false, detail);
}

/* The manifest's facts go together: a stream name NATS allows, its config
 * naming it, a state with the counts the check compares. */
static bool info_ok(const json_t *info, const char *listed)
{
	const char *stream = json_string_value(json_object_get(info, "stream"));
	const json_t *cfg = json_object_get(info, "config"), *st = json_object_get(info, "state");
	char want[128];
	if (!stream || !*stream || strlen(stream) > 60 ||
	    strspn(stream, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
		    strlen(stream))
		return false;
	snprintf(want, sizeof want, "jetstream/%s.tar.s2", stream);
	const char *name = json_string_value(json_object_get(cfg, "name"));
	const char *file = json_string_value(json_object_get(info, "file"));
	return listed && !strcmp(listed, want) && file && !strcmp(file, want) &&
	       name && !strcmp(name, stream) && json_is_integer(json_object_get(st, "messages")) &&
	       json_is_integer(json_object_get(st, "first_seq")) &&
	       json_is_integer(json_object_get(st, "last_seq")) &&
	       json_is_array(json_object_get(info, "consumers"));
}

/* libnats loaded and connected to the configured servers. */
static int js_connect(restore_js *p, sdk_err *e)
{
	if (sdk_nats_open(&p->N, e) < 0)
		return SDK_EIO;
	char why[256];
	const grace_message_bus *c = &p->cfg->message_bus;
	const char *urls[GRACE_BUS_NATS_URLS_MAX];
	for (unsigned i = 0; i < c->n_nats_urls; i++)
		urls[i] = c->nats_urls[i];
	natsOptions *o = NULL;
	natsStatus s = p->N.natsOptions_Create(&o);
	if (s == NATS_OK)
		s = p->N.natsOptions_SetServers(o, urls, (int)c->n_nats_urls);
	if (s == NATS_OK)
		s = p->N.natsOptions_SetTimeout(o, c->connect_timeout_ms);
	if (s == NATS_OK)
		s = p->N.natsOptions_SetName(o, "grace restore");
	/* A node may go away during a long restore: another takes over. */
	if (s == NATS_OK)
		s = p->N.natsOptions_SetMaxReconnect(o, 60);
	if (s == NATS_OK)
		s = p->N.natsOptions_SetReconnectWait(o, 250);
	if (s == NATS_OK)
		s = p->N.natsConnection_Connect(&p->nc, o);
	if (o)
		p->N.natsOptions_Destroy(o);
	if (s != NATS_OK)
		return sdk_fail(e, SDK_EBUSY, "cannot connect to NATS (%s...): %s", urls[0],
				sdk_nats_why(&p->N, s, 0, why, sizeof why));
	jsOptions jo;
	p->N.jsOptions_Init(&jo);
	jo.Wait = JS_API_WAIT_MS;
	s = p->N.natsConnection_JetStream(&p->js, p->nc, &jo);
	if (s != NATS_OK)
		return sdk_fail(e, SDK_EBUSY, "JetStream: %s",
				sdk_nats_why(&p->N, s, 0, why, sizeof why));
	return 0;
}

/* Whether the stream exists now: 1, 0, or a negative status. Its message
 * count in *msgs. */
static int stream_exists(restore_js *p, uint64_t *msgs, sdk_err *e)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	char why[256];
	natsStatus s = p->N.js_GetStreamInfo(&si, p->js, p->stream, NULL, &jerr);
	if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
		return 0;
	if (s != NATS_OK)
		return sdk_fail(e, SDK_EBUSY, "stream %s: %s", p->stream,
				sdk_nats_why(&p->N, s, jerr, why, sizeof why));
	*msgs = si->State.Msgs;
	p->N.jsStreamInfo_Destroy(si);
	return 1;
}

int restore_js_prepare(restore_js *p, const json_t *manifest, const char *listed)
{
	p->info = json_object_get(manifest, "jetstream");
	if (!listed && !p->info)
		return 0;
	if (!info_ok(p->info, listed)) {
		fail(p, "jetstream manifest",
		     "the manifest's JetStream snapshot and its facts (stream, config, state, "
		     "consumers) do not go together: not an archive Grace wrote");
		return -1;
	}
	snprintf(p->stream, sizeof p->stream, "%s",
		 json_string_value(json_object_get(p->info, "stream")));
	if (p->skip)
		return 0;
	char what[96], detail[PATH_MAX + 512];
	snprintf(what, sizeof what, "jetstream stream %s", p->stream);
	p->cfg = calloc(1, sizeof *p->cfg);
	grace_config_overrides ov = { p->config, NULL, NULL };
	sdk_err err;
	if (!p->cfg || grace_config_read(p->cfg, kernel_registry_all(), kernel_registry_count(), &ov,
					 &err) < 0) {
		fail(p, "jetstream configuration", p->cfg ? err.msg : "out of memory");
		return -1;
	}
	const grace_message_bus *mb = &p->cfg->message_bus;
	const char *cfg_path = p->cfg->path[0] ? p->cfg->path : "built-in defaults";
	if (!mb->jetstream) {
		snprintf(detail, sizeof detail,
			 "the archive holds the bus's JetStream stream %s and the configuration (%s) "
			 "names no JetStream: give --config FILE whose [message_bus] has engine = "
			 "jetstream, or --no-jetstream to restore the files only",
			 p->stream, cfg_path);
		fail(p, "jetstream configured", detail);
		return -1;
	}
	char mine[sizeof mb->stream_prefix + 8];
	snprintf(mine, sizeof mine, "%s_BUS", mb->stream_prefix);
	if (strcmp(mine, p->stream)) {
		snprintf(detail, sizeof detail,
			 "the archive's stream is %s and the configuration's (%s) is %s: give "
			 "[message_bus] stream_prefix = the prefix of the archive's",
			 p->stream, cfg_path, mine);
		fail(p, "jetstream configured", detail);
		return -1;
	}
	sdk_err e = { "" };
	uint64_t msgs = 0;
	int r = js_connect(p, &e);
	if (!r && (r = stream_exists(p, &msgs, &e)) >= 0) {
		p->exists = r == 1;
		r = 0;
	}
	if (r < 0) {
		fail(p, what, e.msg);
		return -1;
	}
	if (p->exists && !p->force) {
		snprintf(detail, sizeof detail,
			 "the stream exists in JetStream (%" PRIu64 " messages): restore where it "
			 "does not, or --force deletes it first and restores the archive's",
			 msgs);
		fail(p, what, detail);
		return -1;
	}
	return 0;
}

/* A JetStream API reply: its JSON, or NULL after an error in e. */
static json_t *api_json(restore_js *p, natsMsg *m, const char *what, sdk_err *e)
{
	int len = p->N.natsMsg_GetDataLength(m);
	json_t *j = len > 0 && (unsigned)len <= JS_REPLY_MAX
			    ? json_loadb(p->N.natsMsg_GetData(m), (size_t)len, 0, NULL)
			    : NULL;
	json_t *err = json_object_get(j, "error");
	if (!json_is_object(j) || err) {
		const char *d = json_string_value(json_object_get(err, "description"));
		sdk_fail(e, SDK_EIO, "%s: JetStream answered %s (%" JSON_INTEGER_FORMAT ")", what,
			 d ? d : "no JSON", json_integer_value(json_object_get(err, "err_code")));
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The snapshot's bytes as requests to `subject`, each acknowledged (an
 * empty reply; an error is JSON), then the empty one that ends it. */
static int send_chunks(restore_js *p, const char *path, const char *subject, long long *sent,
		       sdk_err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sdk_fail(e, SDK_EIO, "cannot read %s: %s", path, strerror(errno));
	char *buf = malloc(JS_CHUNK), why[256];
	int r = buf ? 0 : sdk_fail(e, SDK_EIO, "out of memory");
	*sent = 0;
	while (!r) {
		ssize_t n = read(fd, buf, JS_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = sdk_fail(e, SDK_EIO, "cannot read %s: %s", path, strerror(errno));
			break;
		}
		natsMsg *reply = NULL;
		natsStatus s = p->N.natsConnection_Request(&reply, p->nc, subject, n ? buf : NULL,
							   (int)n,
							   n ? JS_API_WAIT_MS : JS_FINISH_WAIT_MS);
		if (s != NATS_OK) {
			r = sdk_fail(e, SDK_EBUSY, "sending the snapshot (%lld bytes sent): %s", *sent,
				     sdk_nats_why(&p->N, s, 0, why, sizeof why));
			break;
		}
		if (n == 0) { /* the end: the stream's info, or why it failed */
			json_t *j = api_json(p, reply, "restoring", e);
			r = j ? 0 : SDK_EIO;
			json_decref(j);
		} else if (p->N.natsMsg_GetDataLength(reply) > 0) {
			json_t *j = api_json(p, reply, "a chunk of the snapshot", e);
			r = j ? 0 : SDK_EIO;
			json_decref(j);
		}
		p->N.natsMsg_Destroy(reply);
		*sent += n;
		if (n == 0)
			break;
	}
	free(buf);
	close(fd);
	return r;
}

/* $JS.API.STREAM.RESTORE with the manifest's config and state, then the
 * chunks. */
static int restore_stream(restore_js *p, const char *path, long long *sent, sdk_err *e)
{
	char subj[128], why[256];
	snprintf(subj, sizeof subj, "$JS.API.STREAM.RESTORE.%s", p->stream);
	json_t *req = json_pack("{s:O, s:O}", "config", json_object_get(p->info, "config"), "state",
				json_object_get(p->info, "state"));
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text)
		return sdk_fail(e, SDK_EIO, "out of memory");
	natsMsg *reply = NULL;
	natsStatus s = p->N.natsConnection_Request(&reply, p->nc, subj, text, (int)strlen(text),
						   JS_API_WAIT_MS);
	free(text);
	if (s != NATS_OK)
		return sdk_fail(e, SDK_EBUSY, "asking JetStream to restore %s: %s", p->stream,
				sdk_nats_why(&p->N, s, 0, why, sizeof why));
	json_t *j = api_json(p, reply, "the restore request", e);
	p->N.natsMsg_Destroy(reply);
	const char *deliver = json_string_value(json_object_get(j, "deliver_subject"));
	int r = 0;
	if (j && !deliver)
		r = sdk_fail(e, SDK_EIO, "the restore request: JetStream named no subject for it");
	else if (!j)
		r = SDK_EIO;
	if (!r)
		r = send_chunks(p, path, deliver, sent, e);
	json_decref(j);
	return r;
}

/* The restored stream and its consumers against the manifest; what was
 * found goes to p->report. Waits (JS_SETTLE_MS at most) for a cluster to
 * elect the stream's leader and assign its consumers. */
static int verify(restore_js *p, sdk_err *e)
{
	const json_t *st = json_object_get(p->info, "state");
	uint64_t w_msgs = (uint64_t)json_integer_value(json_object_get(st, "messages")),
		 w_first = (uint64_t)json_integer_value(json_object_get(st, "first_seq")),
		 w_last = (uint64_t)json_integer_value(json_object_get(st, "last_seq"));
	int64_t until = sdk_mono_ms() + JS_SETTLE_MS;
	char why[256];
	for (;;) {
		jsStreamInfo *si = NULL;
		jsConsumerInfoList *list = NULL;
		jsErrCode jerr = 0;
		/* A Grace already on the cluster may publish the moment the stream
		 * is back: messages after the archive's last are not the restore's,
		 * and the restored range is checked exactly beneath them. */
		uint64_t since = 0;
		natsStatus s = p->N.js_GetStreamInfo(&si, p->js, p->stream, NULL, &jerr);
		if (s == NATS_OK && si->State.LastSeq > w_last)
			since = si->State.LastSeq - w_last;
		int r = 0;
		if (s != NATS_OK) {
			r = sdk_fail(e, SDK_EBUSY, "the restored stream: %s",
				     sdk_nats_why(&p->N, s, jerr, why, sizeof why));
		} else if ((w_msgs && si->State.FirstSeq != w_first) || si->State.LastSeq < w_last ||
			   si->State.Msgs < since || si->State.Msgs - since != w_msgs) {
			r = sdk_fail(e, SDK_ECORRUPT,
				     "the restored stream holds %" PRIu64 " messages (%" PRIu64
				     "..%" PRIu64 "), the archive's %" PRIu64 " (%" PRIu64 "..%" PRIu64 ")",
				     si->State.Msgs, si->State.FirstSeq, si->State.LastSeq, w_msgs,
				     w_first, w_last);
		}
		json_t *consumers = json_array();
		if (!r) {
			s = p->N.js_Consumers(&list, p->js, p->stream, NULL, &jerr);
			if (s != NATS_OK && s != NATS_NOT_FOUND)
				r = sdk_fail(e, SDK_EBUSY, "the restored stream's consumers: %s",
					     sdk_nats_why(&p->N, s, jerr, why, sizeof why));
		}
		/* Every consumer of the manifest, at least where it stood (acks
		 * only move forward, and they were read before the snapshot). */
		const json_t *c;
		size_t i;
		json_array_foreach(json_object_get(p->info, "consumers"), i, c) {
			if (r)
				break;
			const char *name = json_string_value(json_object_get(c, "name"));
			uint64_t floor = (uint64_t)json_integer_value(json_object_get(c, "ack_floor"));
			const jsConsumerInfo *found = NULL;
			for (int k = 0; list && name && k < list->Count; k++)
				if (list->List[k]->Name && !strcmp(list->List[k]->Name, name))
					found = list->List[k];
			if (!found)
				r = sdk_fail(e, SDK_ECORRUPT, "consumer %s is not in the restored stream",
					     name ? name : "?");
			else if (found->AckFloor.Stream < floor)
				r = sdk_fail(e, SDK_ECORRUPT,
					     "consumer %s acknowledged through %" PRIu64
					     ", the archive's through %" PRIu64,
					     name, found->AckFloor.Stream, floor);
			else
				json_array_append_new(consumers,
						      json_pack("{s:s, s:I}", "name", name, "ack_floor",
								(json_int_t)found->AckFloor.Stream));
		}
		if (!r) {
			json_decref(p->report);
			p->report = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:b}",
					      "restored", 1, "stream", p->stream, "messages",
					      (json_int_t)(si->State.Msgs - since), "first_seq",
					      (json_int_t)w_first, "last_seq", (json_int_t)w_last,
					      "published_since", (json_int_t)since, "bytes",
					      (json_int_t)si->State.Bytes, "consumers", consumers,
					      "replaced", p->exists);
			consumers = NULL;
		}
		json_decref(consumers);
		if (si)
			p->N.jsStreamInfo_Destroy(si);
		if (list)
			p->N.jsConsumerInfoList_Destroy(list);
		if (!r || sdk_mono_ms() > until)
			return r;
		struct timespec pause = { 0, 250 * 1000000L };
		nanosleep(&pause, NULL);
	}
}

int restore_js_load(restore_js *p, const char *path)
{
	if (!p->info)
		return 0;
	char what[96], detail[600];
	snprintf(what, sizeof what, "jetstream stream %s", p->stream);
	if (p->skip) {
		p->check(p->ctx, what, true,
			 "not restored (--no-jetstream): the snapshot's SHA-256 matches the manifest");
		return 0;
	}
	sdk_err e = { "" };
	jsErrCode jerr = 0;
	char why[256];
	if (p->exists) {
		natsStatus s = p->N.js_DeleteStream(p->js, p->stream, NULL, &jerr);
		if (s != NATS_OK && s != NATS_NOT_FOUND) {
			snprintf(detail, sizeof detail, "--force: cannot delete the existing stream: %s",
				 sdk_nats_why(&p->N, s, jerr, why, sizeof why));
			fail(p, what, detail);
			return -1;
		}
	}
	long long sent = 0;
	int r = restore_stream(p, path, &sent, &e);
	if (!r)
		r = verify(p, &e);
	if (r) {
		fail(p, what, e.msg);
		return -1;
	}
	snprintf(detail, sizeof detail,
		 "restored%s from %lld bytes: %" JSON_INTEGER_FORMAT " messages (%" JSON_INTEGER_FORMAT
		 "..%" JSON_INTEGER_FORMAT "), %zu consumers at or past their archived positions, as "
		 "the manifest says",
		 p->exists ? " (the existing stream deleted first: --force)" : "", sent,
		 json_integer_value(json_object_get(p->report, "messages")),
		 json_integer_value(json_object_get(p->report, "first_seq")),
		 json_integer_value(json_object_get(p->report, "last_seq")),
		 json_array_size(json_object_get(p->report, "consumers")));
	p->check(p->ctx, what, true, detail);
	return 0;
}

void restore_js_free(restore_js *p)
{
	if (p->js)
		p->N.jsCtx_Destroy(p->js);
	if (p->nc) {
		p->N.natsConnection_Close(p->nc);
		p->N.natsConnection_Destroy(p->nc);
	}
	p->js = NULL;
	p->nc = NULL;
	sdk_nats_close(&p->N);
	free(p->cfg);
	p->cfg = NULL;
	json_decref(p->report);
	p->report = NULL;
}
