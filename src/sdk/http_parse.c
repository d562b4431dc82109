#include "sdk/http_parse.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#define LEADING_BLANK_LINES_MAX 1 /* RFC 9112 §2.2: ignore at least one; more is garbage */
#define CONTENT_LENGTH_DIGITS_MAX 18
#define CHUNK_SIZE_DIGITS_MAX 15   /* 2^60: no overflow, and far past any limit */
#define CHUNK_LINE_EXTRA_MAX 4096  /* extension bytes on one size line */
#define CHUNK_TRAILERS_MAX 8192    /* the whole trailer section */

/* tchar of RFC 9110 §5.6.2, as a table. */
static const unsigned char tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
	['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
	['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
	['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
	['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
	['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
	['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

static bool is_field_vchar(unsigned char c)
{
	/* VCHAR, obs-text, SP and HTAB; every other control is refused. */
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Where the field value at v ends: its line's CR LF (or bare LF), with
 * every byte before it checked as a value's in the same pass (VCHAR,
 * obs-text, SP, HTAB). NULL, with *why, at a control character, a CR not
 * followed by LF, or no line end before `end`. Eight bytes at a time: a
 * word with no byte below 0x20 and none 0x7f passes at once (the tests
 * have no false negatives); a word that may hold one is looked at a byte
 * at a time, where HTAB passes. One pass instead of three (the line's LF,
 * a CR inside it, the value's bytes): a gateway's forward (an SVID, a
 * traceparent) cost a kernel's parse 2,300 instructions more than
 * nginx's three headers did. */
static char *value_end(char *v, const char *end, const char **why)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	char *q = v;
	for (;;) {
		if (end - q >= 8) {
			uint64_t w, d;
			memcpy(&w, q, 8);
			d = w ^ (ones * 0x7f);
			if (!((((w - ones * 0x20) & ~w) | ((d - ones) & ~d)) & highs)) {
				q += 8;
				continue;
			}
		}
		const char *stop = end - q >= 8 ? q + 8 : end;
		for (; q < stop; q++) {
			unsigned char c = (unsigned char)*q;
			if (is_field_vchar(c))
				continue;
			if (c == '\n' || (c == '\r' && q + 1 < end && q[1] == '\n'))
				return q;
			*why = c == '\r' ? "a bare CR or an unterminated line in the head"
					 : "a control character in a header value";
			return NULL;
		}
		if (q == end) {
			*why = "a bare CR or an unterminated line in the head";
			return NULL;
		}
	}
}

static bool is_host_char(unsigned char c)
{
	/* reg-name, IP-literal and port characters (RFC 3986 §3.2.2). */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("-._~!$&'()*+,;=:[]%", c) != NULL;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t skip_blank_lines(const char *buf, size_t len)
{
	size_t p = 0;
	for (int n = 0; n < LEADING_BLANK_LINES_MAX; n++) {
		if (p < len && buf[p] == '\n')
			p++;
		else if (p + 1 < len && buf[p] == '\r' && buf[p + 1] == '\n')
			p += 2;
		else
			break;
	}
	return p;
}

size_t sdk_http_head_end(const char *buf, size_t len, size_t *scan)
{
	size_t start = skip_blank_lines(buf, len);
	/* A CR last may be the first half of the allowed blank line: wait for
	 * the next byte, or the head would depend on how the bytes arrived. */
	if (start + 1 == len && buf[start] == '\r')
		return 0;
	if (start < len && (buf[start] == '\r' || buf[start] == '\n'))
		return start + 1; /* blank lines past the allowance: the parser refuses it */
	size_t p = *scan > start ? *scan : start;
	while (p < len) {
		const char *nl = memchr(buf + p, '\n', len - p);
		if (!nl)
			break;
		size_t i = (size_t)(nl - buf);
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
		if (i + 2 >= len) { /* the blank line may still be on its way */
			*scan = i;
			return 0;
		}
		p = i + 1;
	}
	*scan = len;
	return 0;
}

/* The next line of [*p, end): NUL-terminated in place (its CRLF or LF
 * overwritten), *p moved past it. NULL when a bare CR is inside. */
static char *next_line(char **p, char *end, size_t *line_len)
{
	char *s = *p;
	char *nl = memchr(s, '\n', (size_t)(end - s));
	if (!nl)
		return NULL;
	char *e = nl;
	if (e > s && e[-1] == '\r')
		e--;
	if (memchr(s, '\r', (size_t)(e - s)))
		return NULL;
	*e = '\0';
	*line_len = (size_t)(e - s);
	*p = nl + 1;
	return s;
}

static int parse_version(const char *v, size_t n, int *minor)
{
	if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
	    v[7] < '0' || v[7] > '9')
		return -1;
	if (v[5] != '1')
		return 1; /* a major version we do not speak */
	*minor = v[7] == '0' ? 0 : 1;
	return 0;
}

/* Parses the field lines after the start line. Returns 0, or an HTTP status. */
static int parse_fields(char *p, char *end, unsigned max_fields, sdk_http_head *h,
			const char **why)
{
	unsigned limit = max_fields < SDK_HTTP_FIELDS_MAX ? max_fields : SDK_HTTP_FIELDS_MAX;
	h->n_fields = 0;
	for (;;) {
		/* The blank line that ends the head, or a head cut short. */
		if (p < end && *p == '\n')
			return 0;
		if (p == end || *p == '\r') {
			if (p + 1 < end && p[1] == '\n')
				return 0;
			*why = "a bare CR or an unterminated line in the head";
			return 400;
		}
		if (*p == ' ' || *p == '\t') {
			*why = "obsolete line folding";
			return 400;
		}
		char *line = p;
		size_t i = 0, room = (size_t)(end - p);
		while (i < room && tchar[(unsigned char)line[i]])
			i++;
		if (i == 0 || i == room || line[i] != ':') {
			*why = i < room && (line[i] == ' ' || line[i] == '\t')
				       ? "whitespace between a field name and its colon"
				       : "a malformed header field";
			return 400;
		}
		if (h->n_fields == limit) {
			*why = "too many header fields";
			return 431;
		}
		char *v = line + i + 1;
		char *e = value_end(v, end, why);
		if (!e)
			return 400;
		p = e + (*e == '\r' ? 2 : 1);
		line[i] = '\0';
		char *ve = e;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		*ve = '\0';
		sdk_http_field *f = &h->fields[h->n_fields++];
		*f = (sdk_http_field){ .name = line, .name_len = i, .value = v,
				       .value_len = (size_t)(ve - v) };
	}
}

bool sdk_http_list_has(const char *value, const char *token)
{
	size_t tl = strlen(token);
	const char *p = value;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *s = p;
		while (*p && *p != ',')
			p++;
		const char *e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0)
			return true;
	}
	return false;
}

const char *sdk_http_field_get(const sdk_http_head *h, const char *name)
{
	size_t n = strlen(name);
	int first = name[0] | 0x20; /* a field name is a token: this folds its letters */
	for (size_t i = 0; i < h->n_fields; i++)
		if (h->fields[i].name_len == n && (h->fields[i].name[0] | 0x20) == first &&
		    !strncasecmp(h->fields[i].name, name, n))
			return h->fields[i].value;
	return NULL;
}

/* Whether field f is `lower` (given in lower case, its length known). */
static inline bool field_is(const sdk_http_field *f, const char *lower, size_t n)
{
	return f->name_len == n && (f->name[0] | 0x20) == lower[0] &&
	       !strncasecmp(f->name, lower, n);
}
#define FIELD_IS(f, lit) field_is(f, lit, sizeof lit - 1)

static int parse_length(const char *v, uint64_t *out)
{
	size_t n = 0;
	uint64_t x = 0;
	for (; v[n]; n++) {
		if (v[n] < '0' || v[n] > '9' || n == CONTENT_LENGTH_DIGITS_MAX)
			return -1;
		x = x * 10 + (uint64_t)(v[n] - '0');
	}
	if (n == 0)
		return -1;
	*out = x;
	return 0;
}

/* Framing and connection fields common to requests and responses.
 * Returns 0 or an HTTP status (400, 417). */
static int derive_framing(sdk_http_head *h, bool request, const char **why)
{
	unsigned n_cl = 0, n_te = 0, n_host = 0;
	const char *cl = NULL, *te = NULL;
	bool close = false, keep = false;
	for (size_t i = 0; i < h->n_fields; i++) {
		const sdk_http_field *f = &h->fields[i];
		if (FIELD_IS(f, "content-length"))
			n_cl++, cl = f->value;
		else if (FIELD_IS(f, "transfer-encoding"))
			n_te++, te = f->value;
		else if (FIELD_IS(f, "connection")) {
			close |= sdk_http_list_has(f->value, "close");
			keep |= sdk_http_list_has(f->value, "keep-alive");
		} else if (request && FIELD_IS(f, "host")) {
			n_host++;
			if (!h->absolute_form)
				h->host = f->value;
		} else if (request && FIELD_IS(f, "expect")) {
			if (strcasecmp(f->value, "100-continue") != 0) {
				*why = "only the expectation 100-continue is supported";
				return 417;
			}
			h->expect_continue = true;
		}
	}
	if (request) {
		if (n_host > 1) {
			*why = "more than one Host";
			return 400;
		}
		if (n_host == 0 && h->minor == 1) {
			*why = "HTTP/1.1 without Host";
			return 400;
		}
		if (h->host)
			for (const char *c = h->host; *c; c++)
				if (!is_host_char((unsigned char)*c)) {
					*why = "an invalid Host";
					return 400;
				}
	}
	if (n_cl && n_te) {
		*why = "both Content-Length and Transfer-Encoding";
		return 400;
	}
	if (n_cl > 1) {
		*why = "more than one Content-Length";
		return 400;
	}
	if (n_te) {
		if (h->minor == 0) {
			*why = "Transfer-Encoding in an HTTP/1.0 message";
			return 400;
		}
		if (n_te > 1 || strcasecmp(te, "chunked") != 0) {
			*why = "a transfer coding other than a single chunked";
			return 400;
		}
		h->body = SDK_HTTP_BODY_CHUNKED;
	} else if (n_cl) {
		if (parse_length(cl, &h->content_length) < 0) {
			*why = "a Content-Length that is not a decimal number";
			return 400;
		}
		h->body = h->content_length ? SDK_HTTP_BODY_LENGTH : SDK_HTTP_BODY_NONE;
	} else {
		h->body = request ? SDK_HTTP_BODY_NONE : SDK_HTTP_BODY_CLOSE;
	}
	h->keep_alive = !close && (h->minor == 1 || keep);
	return 0;
}

/* Clears everything but the field array (which n_fields bounds). */
static void head_reset(sdk_http_head *h)
{
	h->method = h->target = h->reason = h->host = NULL;
	h->status = h->minor = 0;
	h->n_fields = 0;
	h->body = SDK_HTTP_BODY_NONE;
	h->content_length = 0;
	h->keep_alive = h->expect_continue = h->absolute_form = false;
}

/* Splits an absolute-form target "http://authority/path?query" in place:
 * the authority becomes h->host, the rest (at least "/") h->target. */
static int split_absolute(char *t, size_t n, sdk_http_head *h)
{
	size_t skip = !strncasecmp(t, "http://", 7) ? 7 : !strncasecmp(t, "https://", 8) ? 8 : 0;
	if (!skip)
		return -1;
	char *a = t + skip, *end = t + n;
	char *ae = a;
	while (ae < end && *ae != '/' && *ae != '?')
		ae++;
	size_t alen = (size_t)(ae - a);
	if (alen == 0 || memchr(a, '@', alen))
		return -1; /* no authority, or userinfo (RFC 9110 §4.2.4) */
	/* The scheme's bytes leave room for the authority and its NUL, with
	 * the byte before the path free for a "/" when the path is empty. */
	memmove(t, a, alen);
	t[alen] = '\0';
	h->host = t;
	if (ae < end && *ae == '/') {
		h->target = ae;
	} else {
		ae[-1] = '/';
		h->target = ae - 1;
	}
	h->absolute_form = true;
	return 0;
}

int sdk_http_parse_request(char *buf, size_t len, unsigned max_fields, sdk_http_head *h,
			   const char **why)
{
	head_reset(h);
	char *p = buf + skip_blank_lines(buf, len), *end = buf + len;
	size_t n;
	char *line = next_line(&p, end, &n);
	if (!line) {
		*why = "a bare CR or an unterminated request line";
		return 400;
	}
	char *sp1 = memchr(line, ' ', n);
	char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line)) : NULL;
	if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1) {
		*why = "a malformed request line";
		return 400;
	}
	for (char *c = line; c < sp1; c++)
		if (!tchar[(unsigned char)*c]) {
			*why = "a malformed method";
			return 400;
		}
	char *t = sp1 + 1;
	size_t tn = (size_t)(sp2 - t);
	for (size_t i = 0; i < tn; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f) {
			*why = "a request target with spaces, controls or raw non-ASCII bytes";
			return 400;
		}
	int v = parse_version(sp2 + 1, n - (size_t)(sp2 + 1 - line), &h->minor);
	if (v < 0) {
		*why = "a malformed HTTP version";
		return 400;
	}
	if (v > 0) {
		/* 505 would invite a retry in another version; none is spoken. */
		*why = "an HTTP version other than 1.0 and 1.1";
		return 400;
	}
	*sp1 = *sp2 = '\0';
	h->method = line;
	if (t[0] == '/') {
		h->target = t;
	} else if (tn == 1 && t[0] == '*') {
		if (strcmp(h->method, "OPTIONS") != 0) {
			*why = "the target * is for OPTIONS only";
			return 400;
		}
		h->target = t;
	} else if (split_absolute(t, tn, h) == 0) {
		/* h->host and h->target set */
	} else if (!strcmp(h->method, "CONNECT")) {
		h->target = t; /* authority-form: refused with 501 by the server */
	} else {
		*why = "a malformed request target";
		return 400;
	}
	int st = parse_fields(p, end, max_fields, h, why);
	if (st)
		return st;
	return derive_framing(h, true, why);
}

int sdk_http_parse_response(char *buf, size_t len, unsigned max_fields, bool to_head,
			    sdk_http_head *h, const char **why)
{
	head_reset(h);
	char *p = buf, *end = buf + len;
	size_t n;
	char *line = next_line(&p, end, &n);
	if (!line || n < 12 || line[8] != ' ' || parse_version(line, 8, &h->minor) != 0) {
		*why = "a malformed status line";
		return -1;
	}
	int st = 0;
	for (int i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9') {
			*why = "a malformed status code";
			return -1;
		}
		st = st * 10 + (line[i] - '0');
	}
	if (st < 100 || (n > 12 && line[12] != ' ')) {
		*why = "a malformed status line";
		return -1;
	}
	h->status = st;
	h->reason = n > 12 ? line + 13 : "";
	if (parse_fields(p, end, max_fields, h, why) != 0)
		return -1;
	if (derive_framing(h, false, why) != 0)
		return -1;
	/* These carry no body, whatever their fields say (RFC 9112 §6.3). */
	if (to_head || st < 200 || st == 204 || st == 304)
		h->body = SDK_HTTP_BODY_NONE;
	if (h->body == SDK_HTTP_BODY_CLOSE)
		h->keep_alive = false;
	return 0;
}

/* The decoder's states: a table of what each expects next. */
enum {
	CH_SIZE,      /* the first hex digit of a size */
	CH_SIZE_MORE, /* more hex digits, BWS, ";" or CR */
	CH_BWS,       /* whitespace after the size: only ";" may follow */
	CH_EXT,       /* a chunk extension, up to CR */
	CH_SIZE_LF,   /* the LF after a size line */
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER_START, /* CR (end) or the first byte of a trailer field */
	CH_TRAILER,       /* inside a trailer field, up to CR */
	CH_TRAILER_LF,
	CH_END_LF,
	CH_DONE,
};

int sdk_chunked_step(sdk_chunked *c, const char *in, size_t len, size_t *consumed,
		     const char **data, size_t *data_len, const char **why)
{
	size_t i = 0;
	*data = NULL;
	*data_len = 0;
	while (i < len) {
		unsigned char ch = (unsigned char)in[i];
		switch (c->state) {
		case CH_SIZE:
		case CH_SIZE_MORE: {
			int hv = hexval(ch);
			if (hv >= 0) {
				if (++c->digits > CHUNK_SIZE_DIGITS_MAX) {
					*why = "a chunk size too large";
					goto bad;
				}
				c->left = c->left * 16 + (uint64_t)hv;
				c->state = CH_SIZE_MORE;
			} else if (c->state == CH_SIZE) {
				*why = "a chunk size that is not hexadecimal";
				goto bad;
			} else if (ch == ';') {
				c->state = CH_EXT;
			} else if (ch == ' ' || ch == '\t') {
				c->state = CH_BWS;
			} else if (ch == '\r') {
				c->state = CH_SIZE_LF;
			} else {
				*why = "a chunk size that is not hexadecimal";
				goto bad;
			}
			i++;
			break;
		}
		case CH_BWS:
			if (ch == ';')
				c->state = CH_EXT;
			else if (ch != ' ' && ch != '\t') {
				*why = "a malformed chunk extension";
				goto bad;
			}
			i++;
			break;
		case CH_EXT:
			if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if ((ch < 0x20 && ch != '\t') || ch == 0x7f ||
				 ++c->line_bytes > CHUNK_LINE_EXTRA_MAX) {
				*why = "a malformed or overlong chunk extension";
				goto bad;
			}
			i++;
			break;
		case CH_SIZE_LF:
			if (ch != '\n') {
				*why = "a chunk size line not ended by CRLF";
				goto bad;
			}
			i++;
			c->line_bytes = 0;
			c->state = c->left ? CH_DATA : CH_TRAILER_START;
			break;
		case CH_DATA: {
			size_t n = len - i < c->left ? len - i : (size_t)c->left;
			*data = in + i;
			*data_len = n;
			c->left -= n;
			i += n;
			if (c->left == 0)
				c->state = CH_DATA_CR;
			*consumed = i;
			return SDK_CHUNKED_MORE;
		}
		case CH_DATA_CR:
		case CH_DATA_LF:
			if (ch != (c->state == CH_DATA_CR ? '\r' : '\n')) {
				*why = "chunk data not followed by CRLF";
				goto bad;
			}
			i++;
			if (c->state == CH_DATA_LF) {
				c->state = CH_SIZE;
				c->digits = 0;
				c->left = 0;
			} else {
				c->state = CH_DATA_LF;
			}
			break;
		case CH_TRAILER_START:
			if (ch == '\r') {
				c->state = CH_END_LF;
				i++;
				break;
			}
			c->state = CH_TRAILER;
			/* this byte begins a trailer field */
			__attribute__((fallthrough));
		case CH_TRAILER:
			if (ch == '\r')
				c->state = CH_TRAILER_LF;
			else if ((ch < 0x20 && ch != '\t') || ch == 0x7f ||
				 ++c->line_bytes > CHUNK_TRAILERS_MAX) {
				*why = "a malformed or overlong trailer section";
				goto bad;
			}
			i++;
			break;
		case CH_TRAILER_LF:
		case CH_END_LF:
			if (ch != '\n') {
				*why = "a trailer line not ended by CRLF";
				goto bad;
			}
			i++;
			if (c->state == CH_END_LF) {
				c->state = CH_DONE;
				*consumed = i;
				return SDK_CHUNKED_DONE;
			}
			c->state = CH_TRAILER_START;
			break;
		case CH_DONE:
			*consumed = i;
			return SDK_CHUNKED_DONE;
		}
	}
	*consumed = i;
	return c->state == CH_DONE ? SDK_CHUNKED_DONE : SDK_CHUNKED_MORE;
bad:
	*consumed = i;
	return SDK_CHUNKED_BAD;
}
