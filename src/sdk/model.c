#include "sdk/model.h"

#include "sdk/curl_dl.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL_KEY_MAX 4096
#define MODEL_CONNECT_TIMEOUT_MS 5000
/* Loopback never goes through a proxy, whatever http_proxy says. */
#define MODEL_NOPROXY_LOCAL "localhost,127.0.0.1,::1"

/* One socket libcurl asked us to watch. */
struct msock {
	sdk_model *m;
	struct msock *prev, *next;
	struct event *ev;
};

struct sdk_model_call {
	sdk_model *m;
	sdk_model_call *prev, *next;
	CURL *easy;
	char *request;
	bool stream;
	bool in_cb;     /* inside a libcurl callback: cancel only marks it */
	bool cancelled;
	bool saw_event; /* at least one "data:" line */
	/* The stream's own end: "data: [DONE]", or a choice with a
	 * finish_reason. Without either, the body ended early. */
	bool saw_done, saw_finish;
	char *raw;      /* every byte the server sent */
	size_t raw_len, raw_cap, parsed;
	char *text;     /* the answer so far */
	size_t text_len, text_cap;
	char problem[256]; /* found while reading the answer */
	char errbuf[CURL_ERROR_SIZE];
	sdk_model_delta_cb on_delta;
	sdk_model_done_cb on_done;
	void *arg;
};

struct sdk_model {
	struct event_base *base;
	sdk_curl_dl curl;
	CURLM *multi;
	struct event *timer;
	char url[sizeof ((grace_model *)0)->base_url + 32];
	char name[sizeof ((grace_model *)0)->model];
	char *noproxy;
	unsigned timeout_ms, max_tokens;
	struct curl_slist *hdr_stream, *hdr_whole;
	sdk_model_call *calls;
	struct msock *socks;
};

const char *sdk_model_name(const sdk_model *m) { return m->name; }

const char *sdk_model_failure_label(sdk_model_failure f)
{
	static const char *const labels[SDK_MODEL_FAILURE_KINDS] = {
		[SDK_MODEL_OK] = "none",
		[SDK_MODEL_FAIL_TIMEOUT] = "timeout",
		[SDK_MODEL_FAIL_UNREACHABLE] = "unreachable",
		[SDK_MODEL_FAIL_HTTP_STATUS] = "http_status",
		[SDK_MODEL_FAIL_BAD_ANSWER] = "bad_answer",
		[SDK_MODEL_FAIL_TRUNCATED] = "truncated_stream",
	};
	return (unsigned)f < SDK_MODEL_FAILURE_KINDS ? labels[f] : "unknown";
}

static int grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 1024;
	while (n < need)
		n *= 2;
	char *p = realloc(*buf, n);
	if (!p)
		return -1;
	*buf = p;
	*cap = n;
	return 0;
}

/* ---- calls ---- */

static void call_free(sdk_model_call *c)
{
	sdk_model *m = c->m;
	if (c->prev)
		c->prev->next = c->next;
	else
		m->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->easy) {
		m->curl.multi_remove_handle(m->multi, c->easy);
		m->curl.easy_cleanup(c->easy);
	}
	free(c->request);
	free(c->raw);
	free(c->text);
	free(c);
}

void sdk_model_call_cancel(sdk_model_call *c)
{
	if (!c)
		return;
	if (c->in_cb) { /* the write callback ends the transfer */
		c->cancelled = true;
		return;
	}
	call_free(c);
}

static int append_text(sdk_model_call *c, const char *s, size_t n)
{
	if (c->text_len + n > SDK_MODEL_ANSWER_MAX) {
		snprintf(c->problem, sizeof c->problem, "the answer is longer than %u bytes",
			 SDK_MODEL_ANSWER_MAX);
		return -1;
	}
	if (grow(&c->text, &c->text_cap, c->text_len + n + 1) < 0) {
		snprintf(c->problem, sizeof c->problem, "out of memory");
		return -1;
	}
	memcpy(c->text + c->text_len, s, n);
	c->text_len += n;
	c->text[c->text_len] = '\0';
	return 0;
}

/* The message of an {"error":...} answer (OpenAI's shape, or a bare string). */
static const char *error_message(json_t *j)
{
	json_t *e = json_object_get(j, "error");
	if (json_is_string(e))
		return json_string_value(e);
	json_t *msg = json_object_get(e, "message");
	return json_is_string(msg) ? json_string_value(msg) : NULL;
}

/* One line of a Server-Sent Events answer. */
static void stream_line(sdk_model_call *c, const char *line, size_t len)
{
	if (len < 5 || memcmp(line, "data:", 5))
		return; /* event:, id:, comments and blank lines */
	line += 5, len -= 5;
	if (len && *line == ' ')
		line++, len--;
	c->saw_event = true;
	if (len == 6 && !memcmp(line, "[DONE]", 6)) {
		c->saw_done = true;
		return;
	}
	json_t *j = json_loadb(line, len, 0, NULL);
	if (!j) {
		snprintf(c->problem, sizeof c->problem, "the model sent an event that is not JSON");
		return;
	}
	const char *why = error_message(j);
	if (why) {
		snprintf(c->problem, sizeof c->problem, "the model server reported: %.200s", why);
	} else {
		json_t *choices = json_object_get(j, "choices"), *choice;
		size_t i;
		json_array_foreach(choices, i, choice) {
			if (json_is_string(json_object_get(choice, "finish_reason")))
				c->saw_finish = true;
		}
		json_t *content = json_object_get(json_object_get(json_array_get(choices, 0), "delta"),
						  "content");
		size_t n = json_string_length(content);
		if (json_is_string(content) && n && append_text(c, json_string_value(content), n) == 0 &&
		    c->on_delta)
			c->on_delta(json_string_value(content), n, c->arg);
	}
	json_decref(j);
}

static void stream_parse(sdk_model_call *c, bool final)
{
	while (c->parsed < c->raw_len && !c->problem[0] && !c->cancelled) {
		const char *start = c->raw + c->parsed;
		const char *nl = memchr(start, '\n', c->raw_len - c->parsed);
		if (!nl && !final)
			return;
		size_t len = nl ? (size_t)(nl - start) : c->raw_len - c->parsed;
		c->parsed += len + (nl ? 1 : 0);
		if (len && start[len - 1] == '\r')
			len--;
		stream_line(c, start, len);
	}
}

static long response_code(sdk_model_call *c)
{
	long code = 0;
	c->m->curl.easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
	sdk_model_call *c = arg;
	size_t n = size * nmemb;
	if (c->cancelled || c->problem[0])
		return 0;
	if (c->raw_len + n > SDK_MODEL_RAW_MAX) {
		snprintf(c->problem, sizeof c->problem, "the model sent more than %u bytes",
			 SDK_MODEL_RAW_MAX);
		return 0;
	}
	if (grow(&c->raw, &c->raw_cap, c->raw_len + n + 1) < 0) {
		snprintf(c->problem, sizeof c->problem, "out of memory");
		return 0;
	}
	memcpy(c->raw + c->raw_len, data, n);
	c->raw_len += n;
	c->raw[c->raw_len] = '\0';
	long code = response_code(c);
	if (c->stream && code >= 200 && code < 300) {
		c->in_cb = true;
		stream_parse(c, false);
		c->in_cb = false;
	}
	return c->cancelled || c->problem[0] ? 0 : n;
}

/* A whole (not streamed) answer: choices[0].message.content. */
static void whole_parse(sdk_model_call *c)
{
	json_t *j = json_loadb(c->raw ? c->raw : "", c->raw_len, 0, NULL);
	json_t *content = json_object_get(
		json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"),
		"content");
	const char *why = j ? error_message(j) : NULL;
	if (why)
		snprintf(c->problem, sizeof c->problem, "the model server reported: %.200s", why);
	else if (!json_is_string(content))
		snprintf(c->problem, sizeof c->problem,
			 "the answer has no choices[0].message.content");
	else if (append_text(c, json_string_value(content), json_string_length(content)) == 0 &&
		 c->stream && c->on_delta && c->text_len)
		c->on_delta(c->text, c->text_len, c->arg); /* a server that ignored "stream" */
	json_decref(j);
}

static void call_finish(sdk_model_call *c, CURLcode result)
{
	sdk_model *m = c->m;
	char error[512] = "";
	sdk_model_failure failure = SDK_MODEL_OK;
	long code = response_code(c);
	/* Events are read only from a 2xx answer. Once the model has said it
	 * is done, a transfer that then breaks loses nothing. */
	bool began = c->stream && c->saw_event;
	bool ended = c->saw_done || c->saw_finish;
	const char *curl_why = c->errbuf[0] ? c->errbuf : m->curl.easy_strerror(result);
	if (c->problem[0]) {
		failure = SDK_MODEL_FAIL_BAD_ANSWER;
		snprintf(error, sizeof error, "%s", c->problem);
	} else if (result == CURLE_OPERATION_TIMEDOUT && !ended) {
		failure = SDK_MODEL_FAIL_TIMEOUT;
		snprintf(error, sizeof error, "the model did not answer within %u ms", m->timeout_ms);
	} else if (result != CURLE_OK && began && !ended) {
		failure = SDK_MODEL_FAIL_TRUNCATED;
		snprintf(error, sizeof error, "the model's answer was cut off: its stream broke off "
					      "without [DONE] or a finish_reason (%s)", curl_why);
	} else if (result != CURLE_OK && !(began && ended)) {
		failure = SDK_MODEL_FAIL_UNREACHABLE;
		snprintf(error, sizeof error, "cannot reach the model server: %s", curl_why);
	} else if (code < 200 || code >= 300) {
		failure = SDK_MODEL_FAIL_HTTP_STATUS;
		json_t *j = json_loadb(c->raw ? c->raw : "", c->raw_len, 0, NULL);
		const char *why = j ? error_message(j) : NULL;
		snprintf(error, sizeof error, "the model server answered HTTP %ld%s%.200s", code,
			 why ? ": " : "", why ? why : "");
		json_decref(j);
	} else {
		/* Both parsers may call the delta callback, which may cancel. */
		c->in_cb = true;
		if (c->stream)
			stream_parse(c, true);
		bool events = c->stream && c->saw_event;
		if (!c->problem[0] && !c->cancelled && !events)
			whole_parse(c);
		c->in_cb = false;
		if (c->cancelled) {
			call_free(c);
			return;
		}
		if (c->problem[0]) {
			failure = SDK_MODEL_FAIL_BAD_ANSWER;
			snprintf(error, sizeof error, "%s", c->problem);
		} else if (events && !c->saw_done && !c->saw_finish) {
			/* The body ended (a closed connection, or chunked framing
			 * ended early) before the model said it had finished. */
			failure = SDK_MODEL_FAIL_TRUNCATED;
			snprintf(error, sizeof error, "the model's answer was cut off: its stream ended "
						      "without [DONE] or a finish_reason");
		} else if (c->text_len == 0) {
			failure = SDK_MODEL_FAIL_BAD_ANSWER;
			snprintf(error, sizeof error, "the model answered with no text");
		}
	}
	sdk_model_done_cb done = c->on_done;
	void *arg = c->arg;
	/* The easy handle goes first; the text lives until the callback returns. */
	m->curl.multi_remove_handle(m->multi, c->easy);
	m->curl.easy_cleanup(c->easy);
	c->easy = NULL;
	done(c->text ? c->text : "", c->text_len, failure, failure ? error : NULL, arg);
	call_free(c);
}

static void check_done(sdk_model *m)
{
	CURLMsg *msg;
	int left;
	while ((msg = m->curl.multi_info_read(m->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		sdk_model_call *c = NULL;
		m->curl.easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		CURLcode result = msg->data.result;
		if (!c)
			continue;
		if (c->cancelled)
			call_free(c);
		else
			call_finish(c, result);
	}
}

/* ---- libcurl driven by libevent ---- */

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
	sdk_model *m = arg;
	int running;
	int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	m->curl.multi_socket_action(m->multi, fd, flags, &running);
	check_done(m);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sdk_model *m = arg;
	int running;
	m->curl.multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(m);
}

static void msock_free(struct msock *s)
{
	sdk_model *m = s->m;
	if (s->prev)
		s->prev->next = s->next;
	else
		m->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->ev)
		event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch `fd` for what libcurl wants now. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	sdk_model *m = userp;
	struct msock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s)
			msock_free(s);
		return 0;
	}
	if (!s) {
		if (!(s = calloc(1, sizeof *s)))
			return -1;
		s->m = m;
		s->next = m->socks;
		if (m->socks)
			m->socks->prev = s;
		m->socks = s;
		m->curl.multi_assign(m->multi, fd, s);
	} else if (s->ev) {
		event_free(s->ev);
	}
	short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
		     (what & CURL_POLL_OUT ? EV_WRITE : 0);
	s->ev = event_new(m->base, fd, kind, on_socket, m);
	if (!s->ev || event_add(s->ev, NULL) < 0)
		return -1;
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	sdk_model *m = userp;
	if (timeout_ms < 0) {
		evtimer_del(m->timer);
		return 0;
	}
	struct timeval tv = { (time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000 };
	return evtimer_add(m->timer, &tv) < 0 ? -1 : 0;
}

sdk_model_call *sdk_model_chat(sdk_model *m, const json_t *messages, bool stream, sdk_model_delta_cb on_delta,
		       sdk_model_done_cb on_done, void *arg)
{
	sdk_model_call *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->m = m;
	c->stream = stream;
	c->on_delta = on_delta;
	c->on_done = on_done;
	c->arg = arg;
	json_t *req = json_pack("{s:O, s:b}", "messages", messages, "stream", stream);
	if (req && m->name[0])
		json_object_set_new(req, "model", json_string(m->name));
	if (req && m->max_tokens)
		json_object_set_new(req, "max_tokens", json_integer(m->max_tokens));
	c->request = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	c->easy = c->request ? m->curl.easy_init() : NULL;
	if (!c->easy) {
		free(c->request);
		free(c);
		return NULL;
	}
	CURL *e = c->easy;
	const sdk_curl_dl *k = &m->curl;
	k->easy_setopt(e, CURLOPT_URL, m->url);
	k->easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	k->easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	k->easy_setopt(e, CURLOPT_NOPROXY, m->noproxy);
	k->easy_setopt(e, CURLOPT_HTTPHEADER, stream ? m->hdr_stream : m->hdr_whole);
	k->easy_setopt(e, CURLOPT_POSTFIELDS, c->request);
	k->easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(c->request));
	k->easy_setopt(e, CURLOPT_USERAGENT, "grace/" GRACE_VERSION);
	k->easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)m->timeout_ms);
	k->easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
		       (long)(m->timeout_ms < MODEL_CONNECT_TIMEOUT_MS ? m->timeout_ms
								: MODEL_CONNECT_TIMEOUT_MS));
	k->easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	k->easy_setopt(e, CURLOPT_WRITEDATA, c);
	k->easy_setopt(e, CURLOPT_PRIVATE, c);
	k->easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	if (k->multi_add_handle(m->multi, e) != CURLM_OK) {
		k->easy_cleanup(e);
		free(c->request);
		free(c);
		return NULL;
	}
	c->next = m->calls;
	if (m->calls)
		m->calls->prev = c;
	m->calls = c;
	return c;
}

/* ---- the model ---- */

/* Reads the API key: the file's first line, without surrounding blanks. */
static int read_key(const char *path, char *key, size_t len, sdk_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		return sdk_fail(err, SDK_EINVAL, "[model] key_file %s: %s", path, strerror(errno));
	}
	ssize_t n = read(fd, key, len - 1);
	close(fd);
	if (n < 0) {
		return sdk_fail(err, SDK_EINVAL, "[model] key_file %s: %s", path, strerror(errno));
	}
	key[n] = '\0';
	key[strcspn(key, "\r\n")] = '\0';
	char *p = key;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t k = strlen(p);
	while (k && (p[k - 1] == ' ' || p[k - 1] == '\t'))
		k--;
	memmove(key, p, k);
	key[k] = '\0';
	for (size_t i = 0; i < k; i++) {
		if ((unsigned char)key[i] < 0x21 || key[i] == 0x7f) {
			return sdk_fail(err, SDK_EINVAL,
					"[model] key_file %s: the key has a blank or control "
					"character in it",
					path);
		}
	}
	if (k == 0) {
		return sdk_fail(err, SDK_EINVAL, "[model] key_file %s: empty", path);
	}
	return 0;
}

static struct curl_slist *headers_new(const sdk_curl_dl *k, const char *accept, const char *auth)
{
	struct curl_slist *h = k->slist_append(NULL, "Content-Type: application/json");
	struct curl_slist *t = h ? k->slist_append(h, accept) : NULL;
	if (t && auth)
		t = k->slist_append(h, auth);
	if (!t) {
		k->slist_free_all(h);
		return NULL;
	}
	return h;
}

sdk_model *sdk_model_new(struct event_base *base, const grace_model *cfg, sdk_err *err)
{
	sdk_model *m = calloc(1, sizeof *m);
	if (!m) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	m->base = base;
	m->timeout_ms = cfg->timeout_ms;
	m->max_tokens = cfg->max_tokens;
	snprintf(m->name, sizeof m->name, "%s", cfg->model);
	size_t n = strlen(cfg->base_url);
	while (n && cfg->base_url[n - 1] == '/')
		n--;
	static const char endpoint[] = "/chat/completions";
	bool whole = n >= sizeof endpoint - 1 && !memcmp(cfg->base_url + n - (sizeof endpoint - 1),
							 endpoint, sizeof endpoint - 1);
	snprintf(m->url, sizeof m->url, "%.*s%s", (int)n, cfg->base_url, whole ? "" : endpoint);

	char key[MODEL_KEY_MAX], auth[MODEL_KEY_MAX + 32] = "";
	if (cfg->key_file[0]) {
		if (read_key(cfg->key_file, key, sizeof key, err) < 0) {
			explicit_bzero(key, sizeof key);
			free(m);
			return NULL;
		}
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
		explicit_bzero(key, sizeof key);
	}
	const char *np = getenv("no_proxy");
	if (!np || !*np)
		np = getenv("NO_PROXY");
	size_t nplen = (np ? strlen(np) : 0) + sizeof MODEL_NOPROXY_LOCAL + 1;
	if ((m->noproxy = malloc(nplen)))
		snprintf(m->noproxy, nplen, "%s%s" MODEL_NOPROXY_LOCAL, np && *np ? np : "",
			 np && *np ? "," : "");
	if (!m->noproxy || sdk_curl_open(&m->curl, err) < 0) {
		explicit_bzero(auth, sizeof auth);
		if (!m->noproxy)
			sdk_fail(err, SDK_EIO, "out of memory");
		free(m->noproxy);
		free(m);
		return NULL;
	}
	const sdk_curl_dl *k = &m->curl;
	m->hdr_stream = headers_new(k, "Accept: text/event-stream", auth[0] ? auth : NULL);
	m->hdr_whole = headers_new(k, "Accept: application/json", auth[0] ? auth : NULL);
	explicit_bzero(auth, sizeof auth);
	m->timer = evtimer_new(base, on_timer, m);
	m->multi = k->multi_init();
	if (!m->hdr_stream || !m->hdr_whole || !m->timer || !m->multi) {
		sdk_fail(err, SDK_EIO, "cannot set up libcurl");
		sdk_model_free(m);
		return NULL;
	}
	k->multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	k->multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
	k->multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	k->multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
	return m;
}

void sdk_model_free(sdk_model *m)
{
	if (!m)
		return;
	while (m->calls)
		call_free(m->calls);
	if (m->multi)
		m->curl.multi_cleanup(m->multi);
	while (m->socks)
		msock_free(m->socks);
	if (m->timer)
		event_free(m->timer);
	/* The lists hold the key: wiped before they go. */
	for (struct curl_slist *h = m->hdr_stream; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	for (struct curl_slist *h = m->hdr_whole; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	if (m->hdr_stream)
		m->curl.slist_free_all(m->hdr_stream);
	if (m->hdr_whole)
		m->curl.slist_free_all(m->hdr_whole);
	sdk_curl_close(&m->curl);
	free(m->noproxy);
	free(m);
}
