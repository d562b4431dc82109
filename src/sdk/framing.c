#include "sdk/framing.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <strings.h>

static int is_decimal(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return 0;
	const char *p = s;
	while (*p >= '0' && *p <= '9')
		p++;
	while (*p == ' ' || *p == '\t')
		p++;
	return *p == '\0' && p - s <= 18;
}

const char *sdk_framing_check(const struct evkeyvalq *headers, unsigned max_headers)
{
	unsigned n = 0, cl = 0, te = 0;
	const char *te_value = NULL, *cl_value = NULL;
	const struct evkeyval *h;
	for (h = headers->tqh_first; h; h = h->next.tqe_next) {
		n++;
		if (!strcasecmp(h->key, "Content-Length"))
			cl++, cl_value = h->value;
		else if (!strcasecmp(h->key, "Transfer-Encoding"))
			te++, te_value = h->value;
	}
	if (n > max_headers)
		return "too many header fields";
	if (cl && te)
		return "both Content-Length and Transfer-Encoding";
	if (cl > 1)
		return "more than one Content-Length";
	if (cl && !is_decimal(cl_value))
		return "Content-Length is not a number";
	if (te > 1 || (te && strcasecmp(te_value, "chunked") != 0))
		return "Transfer-Encoding other than chunked";
	return NULL;
}
