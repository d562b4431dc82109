/* Unit tests of the Cedar parser (src/kernels/policy/parser.c, lexer.c):
 * every grammar rule, Cedar's desugarings, the checks its CST-to-AST pass
 * makes, error positions (line and column), and the limits. The trees are
 * compared as S-expressions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/policy/cedar.h"
#include "kernels/policy/lexer.h"

#include <jansson.h>

/* ---- an S-expression of a tree */

typedef struct sbuf {
	char s[4096];
	size_t n;
} sbuf;

static void put(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(b->s + b->n, sizeof b->s - b->n, fmt, ap);
	va_end(ap);
	if (w > 0)
		b->n += (size_t)w < sizeof b->s - b->n ? (size_t)w : sizeof b->s - b->n - 1;
}

static void sexp(sbuf *b, const cedar_expr *e)
{
	static const char *const ops[] = {
		[OP_IF] = "if", [OP_AND] = "&&", [OP_OR] = "||", [OP_NOT] = "!", [OP_NEG] = "neg",
		[OP_EQ] = "==", [OP_LT] = "<", [OP_LE] = "<=", [OP_ADD] = "+", [OP_SUB] = "-",
		[OP_MUL] = "*", [OP_IN] = "in", [OP_CONTAINS] = "contains", [OP_CONTAINS_ALL] = "containsAll",
		[OP_CONTAINS_ANY] = "containsAny", [OP_IS_EMPTY] = "isEmpty", [OP_GET_TAG] = "getTag",
		[OP_HAS_TAG] = "hasTag",
	};
	static const char *const vars[] = { "principal", "action", "resource", "context" };
	char v[256];
	switch (e->op) {
	case OP_LIT:
		cedar_value_format(&e->lit, v, sizeof v);
		put(b, "%s", v);
		return;
	case OP_VAR: put(b, "%s", vars[e->var]); return;
	case OP_GET_ATTR:
	case OP_HAS_ATTR:
		put(b, "(%s ", e->op == OP_GET_ATTR ? "." : "has");
		sexp(b, e->a);
		put(b, " %.*s)", (int)e->n, e->str);
		return;
	case OP_IS:
		put(b, "(is ");
		sexp(b, e->a);
		put(b, " %.*s)", (int)e->n, e->str);
		return;
	case OP_LIKE:
		put(b, "(like ");
		sexp(b, e->a);
		put(b, " \"");
		for (uint32_t i = 0; i < e->pat->n; i++)
			if (e->pat->el[i].star)
				put(b, "*");
			else
				put(b, "%.*s", (int)e->pat->el[i].len, e->pat->el[i].s);
		put(b, "\")");
		return;
	case OP_SET:
		put(b, "[");
		for (uint32_t i = 0; i < e->n; i++) {
			put(b, i ? " " : "");
			sexp(b, e->items[i]);
		}
		put(b, "]");
		return;
	case OP_RECORD:
		put(b, "{");
		for (uint32_t i = 0; i < e->n; i++) {
			put(b, "%s%.*s:", i ? " " : "", (int)e->key_lens[i], e->keys[i]);
			sexp(b, e->items[i]);
		}
		put(b, "}");
		return;
	case OP_CALL:
		put(b, "(%s", e->fn->name);
		for (uint32_t i = 0; i < e->n; i++) {
			put(b, " ");
			sexp(b, e->items[i]);
		}
		put(b, ")");
		return;
	default:
		put(b, "(%s", ops[e->op]);
		if (e->a)
			put(b, " "), sexp(b, e->a);
		if (e->b)
			put(b, " "), sexp(b, e->b);
		if (e->c)
			put(b, " "), sexp(b, e->c);
		put(b, ")");
	}
}

/* The condition of `permit(principal, action, resource) when { src };`. */
static const char *cond(const char *src)
{
	static sbuf b;
	char text[2048];
	snprintf(text, sizeof text, "permit(principal, action, resource) when { %s };", src);
	cedar_policy_set *ps;
	cedar_parse_error err;
	b.n = 0;
	b.s[0] = 0;
	if (cedar_parse(text, strlen(text), &ps, &err) < 0) {
		snprintf(b.s, sizeof b.s, "ERROR %u:%u %s", err.line, err.column, err.msg);
		return b.s;
	}
	sexp(&b, ps->policies[0].cond);
	cedar_policy_set_free(ps);
	return b.s;
}

static bool parses(const char *text)
{
	cedar_policy_set *ps;
	cedar_parse_error err;
	if (cedar_parse(text, strlen(text), &ps, &err) < 0)
		return false;
	cedar_policy_set_free(ps);
	return true;
}

static bool cond_ok(const char *src)
{
	return strncmp(cond(src), "ERROR", 5) != 0;
}

/* Parses `text`, which must fail at line:column. */
static void fails_at(const char *text, unsigned line, unsigned column)
{
	cedar_policy_set *ps;
	cedar_parse_error err;
	int rc = cedar_parse(text, strlen(text), &ps, &err);
	if (rc == 0) {
		cedar_policy_set_free(ps);
		fail_msg("parsed, expected an error at %u:%u: %s", line, column, text);
	}
	if (err.line != line || err.column != column)
		fail_msg("error at %u:%u (%s), expected %u:%u: %s", err.line, err.column, err.msg, line,
			 column, text);
}

#define EXPECT_COND(src, want) assert_string_equal(cond(src), want)

/* ---- policies and scopes */

static void test_policy_shapes(void **state)
{
	(void)state;
	cedar_policy_set *ps;
	cedar_parse_error err;
	const char *text = "@id(\"first\") @note\npermit(principal, action, resource);\n"
			   "  forbid(principal == User::\"a\", action in [Action::\"r\", NS::Action::\"w\",],"
			   " resource is Doc in Folder::\"f\") when { true } unless { false };\n"
			   "permit(principal is User, action == Action::\"x\", resource in Folder::\"g\",);";
	assert_int_equal(cedar_parse(text, strlen(text), &ps, &err), 0);
	assert_int_equal(ps->n, 3);
	cedar_policy *p = ps->policies;
	assert_string_equal(p[0].id, "first");
	assert_false(p[0].forbid);
	assert_int_equal(p[0].n_annotations, 2);
	assert_string_equal(p[0].annotations[1].key, "note");
	assert_string_equal(p[0].annotations[1].value, "");
	assert_int_equal(p[0].principal.op, SCOPE_ANY);
	assert_null(p[0].cond);
	assert_int_equal(p[0].line, 1);
	assert_int_equal(p[0].column, 1);
	assert_string_equal(p[1].id, "policy1");
	assert_true(p[1].forbid);
	assert_int_equal(p[1].line, 3);
	assert_int_equal(p[1].column, 3);
	assert_int_equal(p[1].principal.op, SCOPE_EQ);
	assert_string_equal(p[1].principal.uid->type, "User");
	assert_string_equal(p[1].principal.uid->id, "a");
	assert_int_equal(p[1].action.op, SCOPE_IN);
	assert_int_equal(p[1].action.n_uids, 2);
	assert_string_equal(p[1].action.uids[1]->type, "NS::Action");
	assert_int_equal(p[1].resource.op, SCOPE_IS_IN);
	assert_string_equal(p[1].resource.type, "Doc");
	assert_string_equal(p[1].resource.uid->id, "f");
	sbuf b = { 0 };
	sexp(&b, p[1].cond);
	assert_string_equal(b.s, "(&& true (! false))");
	assert_int_equal(p[2].principal.op, SCOPE_IS);
	assert_int_equal(p[2].action.op, SCOPE_EQ);
	assert_int_equal(p[2].resource.op, SCOPE_IN);
	/* The text of each policy is kept by its offsets. */
	assert_memory_equal(ps->text + p[2].start, "permit(", 7);
	assert_int_equal(ps->text[p[2].end - 1], ';');
	cedar_policy_set_free(ps);
}

static void test_scope_errors(void **state)
{
	(void)state;
	assert_true(parses(""));
	assert_true(parses("// only a comment"));
	assert_true(parses("permit(principal, action in [], resource);"));
	assert_true(parses("permit(principal == (User::\"a\"), action in ([Action::\"x\"]), resource);"));
	fails_at("permit(principal, action);", 1, 25);
	fails_at("permit();", 1, 1);
	fails_at("permit(principal, action, resource, context);", 1, 37);
	fails_at("permit(action, principal, resource);", 1, 8);
	fails_at("permit(principal: User, action, resource);", 1, 17);
	fails_at("permit(principal is User == User::\"a\", action, resource);", 1, 26);
	fails_at("permit(principal in [User::\"a\"], action, resource);", 1, 21);
	fails_at("permit(principal, action == User::\"view\", resource);", 1, 26);
	fails_at("permit(principal, action is Action, resource);", 1, 26);
	fails_at("permit(principal = User::\"a\", action, resource);", 1, 18);
	fails_at("permit(principal < User::\"a\", action, resource);", 1, 18);
	fails_at("permit(principal == User, action, resource);", 1, 21);
	fails_at("permit(principal == \"a\", action, resource);", 1, 21);
	fails_at("permit(principal == ?principal, action, resource);", 1, 21);
	fails_at("permit(principal in Group::\"g\" is User, action, resource);", 1, 32);
	fails_at("permit(principal == User::\"a\" || true, action, resource);", 1, 31);
	fails_at("Permit(principal, action, resource);", 1, 1);
	fails_at("permit(principal, action, resource)", 1, 36);
	fails_at("permit(principal, action, resource) whenever { true };", 1, 37);
	fails_at("permit(principal, action, resource) when {};", 1, 37);
	fails_at("@a(\"1\") @a(\"2\") permit(principal, action, resource);", 1, 9);
	fails_at("@a(1) permit(principal, action, resource);", 1, 4);
	fails_at("@id(\"x\") permit(principal, action, resource);\n@id(\"x\") forbid(principal, action, resource);", 2, 1);
}

/* ---- expressions */

static void test_precedence(void **state)
{
	(void)state;
	EXPECT_COND("1 + 2 * 3 == 7", "(== (+ 1 (* 2 3)) 7)");
	EXPECT_COND("1 - 2 - 3 < 0", "(< (- (- 1 2) 3) 0)");
	EXPECT_COND("true || false && true", "(|| true (&& false true))");
	EXPECT_COND("a || b || c", "ERROR 1:44 `a` is not a valid variable or expression (variables are principal, action, resource and context)");
	EXPECT_COND("context.a || context.b || context.c", "(|| (|| (. context a) (. context b)) (. context c))");
	EXPECT_COND("context.a && context.b && context.c", "(&& (&& (. context a) (. context b)) (. context c))");
	EXPECT_COND("!context.a && -1 < 2", "(&& (! (. context a)) (< -1 2))");
	EXPECT_COND("if context.a then 1 else 2 == 2", "(if (. context a) 1 (== 2 2))");
	EXPECT_COND("(if context.a then 1 else 2) == 2", "(== (if (. context a) 1 2) 2)");
	EXPECT_COND("[if true then 1 else 2].contains(1)", "(contains [(if true 1 2)] 1)");
}

static void test_desugaring(void **state)
{
	(void)state;
	EXPECT_COND("1 != 2", "(! (== 1 2))");
	EXPECT_COND("1 > 2", "(! (<= 1 2))");
	EXPECT_COND("1 >= 2", "(! (< 1 2))");
	EXPECT_COND("1 <= 2", "(<= 1 2)");
	EXPECT_COND("principal is User in Group::\"g\"",
		    "(&& (is principal User) (in principal Group::\"g\"))");
	EXPECT_COND("principal has a.b.c",
		    "(&& (&& (has principal a) (has (. principal a) b)) (has (. (. principal a) b) c))");
	EXPECT_COND("principal has \"a b\"", "(has principal a b)");
	EXPECT_COND("principal has principal", "(has principal principal)");
	assert_string_equal(
		cond("true } unless { context.x"), "(&& true (! (. context x)))");
}

static void test_literals(void **state)
{
	(void)state;
	EXPECT_COND("-9223372036854775808 == 9223372036854775807",
		    "(== -9223372036854775808 9223372036854775807)");
	EXPECT_COND("--9223372036854775808 == 0", "(== (neg -9223372036854775808) 0)");
	EXPECT_COND("--1 == ----2", "(== (neg -1) (neg (neg (neg -2))))");
	EXPECT_COND("-(1) == -context.n", "(== (neg 1) (neg (. context n)))");
	EXPECT_COND("!!!!true", "(! (! (! (! true))))");
	EXPECT_COND("\"a\\n\\t\\\\\\\"\\'\\0\\x41\\u{e9}\\u{1_F600}\" == \"\"",
		    "(== \"a\\u{a}\\u{9}\\\\\\\"'\\u{0}Aé😀\" \"\")");
	EXPECT_COND("User::\"a\" == NS::Deep::Type::\"\\u{0}\"", "(== User::\"a\" NS::Deep::Type::\"\\u{0}\")");
	EXPECT_COND("principal == principal::\"x\"", "(== principal principal::\"x\")");
	EXPECT_COND("[1, [2, 3], \"x\", true,] == [true]", "(== [true, 1, \"x\", [2, 3]] [true])");
	EXPECT_COND("[context.a, 1] == []", "(== [(. context a) 1] [])");
	EXPECT_COND("{a: 1, \"b c\": true, principal: \"p\",} == {}",
		    "(== {\"a\": 1, \"b c\": true, \"principal\": \"p\"} {})");
	EXPECT_COND("{z: context.a, a: 1} == {}", "(== {a:1 z:(. context a)} {})");
	/* Extension calls on literals fold to values; failing ones stay calls. */
	EXPECT_COND("decimal(\"1.50\") == ip(\"10.0.0.1/8\")",
		    "(== decimal(\"1.5000\") ip(\"10.0.0.1/8\"))");
	EXPECT_COND("decimal(\"x\") == decimal(context.d)", "(== (decimal \"x\") (decimal (. context d)))");
	EXPECT_COND("datetime(\"1970-01-02\") == duration(\"1h\")",
		    "(== datetime(\"1970-01-02T00:00:00.000Z\") duration(\"3600000ms\"))");
}

static void test_members(void **state)
{
	(void)state;
	EXPECT_COND("principal.a.b[\"c d\"] == 1", "(== (. (. (. principal a) b) c d) 1)");
	EXPECT_COND("principal.permit == principal.context", "(== (. principal permit) (. principal context))");
	EXPECT_COND("[1].contains(1) && [].isEmpty() && [1].containsAll([]) && [1].containsAny([1])",
		    "(&& (&& (&& (contains [1] 1) (isEmpty [])) (containsAll [1] [])) (containsAny [1] [1]))");
	EXPECT_COND("principal.getTag(\"t\") == 1 && principal.hasTag(\"u\")",
		    "(&& (== (getTag principal \"t\") 1) (hasTag principal \"u\"))");
	EXPECT_COND("context.d.lessThan(decimal(\"1.0\"))", "(lessThan (. context d) decimal(\"1.0000\"))");
	EXPECT_COND("\"1.0\".lessThan(context.x)", "(lessThan \"1.0\" (. context x))");
	EXPECT_COND("context.ip.isInRange(ip(\"10.0.0.0/8\"))",
		    "(isInRange (. context ip) ip(\"10.0.0.0/8\"))");
	EXPECT_COND("ip(\"1.2.3.4\").isIpv4(1)", "(isIpv4 ip(\"1.2.3.4/32\") 1)");
	EXPECT_COND("1.a == 1", "(== (. 1 a) 1)");
	EXPECT_COND("\"abc\" like \"a*\\*c\\u{2a}\"", "(like \"abc\" \"a**c*\")");
	EXPECT_COND("principal is NS::User", "(is principal NS::User)");
	EXPECT_COND("principal is principal", "(is principal principal)");
}

static void test_expression_errors(void **state)
{
	(void)state;
	/* Each condition starts at column 45 of line 1. */
	assert_false(cond_ok("1 < 2 < 3"));
	assert_false(cond_ok("1 == 1 == true"));
	assert_false(cond_ok("!!!!!true"));
	assert_false(cond_ok("-----1 == 1"));
	assert_false(cond_ok("!-1"));
	assert_false(cond_ok("9223372036854775808 == 0"));
	assert_false(cond_ok("18446744073709551616 == 0"));
	assert_false(cond_ok("-9223372036854775809 == 0"));
	assert_false(cond_ok("4 / 2 == 2"));
	assert_false(cond_ok("4 % 2 == 0"));
	assert_false(cond_ok("principal.if"));
	assert_false(cond_ok("principal has if"));
	assert_false(cond_ok("principal has in"));
	assert_false(cond_ok("principal has true"));
	assert_false(cond_ok("principal has a::b"));
	assert_false(cond_ok("principal has a.b()"));
	assert_false(cond_ok("principal has \"a\".b"));
	assert_false(cond_ok("principal has (a)"));
	assert_false(cond_ok("{if: 1}.a"));
	assert_false(cond_ok("{true: 1}.a"));
	assert_false(cond_ok("{a::b: 1}.a"));
	assert_false(cond_ok("{1: 1}.a"));
	assert_false(cond_ok("{\"a\": 1, a: 2}.a"));
	assert_false(cond_ok("[,].isEmpty()"));
	assert_false(cond_ok("foo"));
	assert_false(cond_ok("foo::bar(1)"));
	assert_false(cond_ok("my::decimal(\"1.0\")"));
	assert_false(cond_ok("lessThan(1, 2)"));
	assert_false(cond_ok("contains([1], 1)"));
	assert_false(cond_ok("\"1.0\".decimal()"));
	assert_false(cond_ok("[1].contains()"));
	assert_false(cond_ok("[].isEmpty(1)"));
	assert_false(cond_ok("principal.getTag(\"a\", \"b\")"));
	assert_false(cond_ok("principal.foo()"));
	assert_false(cond_ok("principal()"));
	assert_false(cond_ok("(principal)(1)"));
	assert_false(cond_ok("User.foo"));
	assert_false(cond_ok("User[\"foo\"]"));
	assert_false(cond_ok("context[\"a\" + \"b\"]"));
	assert_false(cond_ok("context[(\"a\")]"));
	assert_false(cond_ok("\"abc\" like (\"a*\")"));
	assert_false(cond_ok("\"abc\" like principal"));
	assert_false(cond_ok("principal is User::\"a\""));
	assert_false(cond_ok("principal is __cedar::User"));
	assert_false(cond_ok("A::if::\"x\" == principal"));
	assert_false(cond_ok("__cedar::\"x\" == principal"));
	assert_false(cond_ok("User::{id: \"x\"} == principal"));
	assert_false(cond_ok("1 + if true then 1 else 2 == 2"));
	assert_false(cond_ok("principal in User::\"a\" is User"));
	assert_false(cond_ok("\"\\x80\" == \"\""));
	assert_false(cond_ok("\"\\u{D800}\" == \"\""));
	assert_false(cond_ok("\"\\u{110000}\" == \"\""));
	assert_false(cond_ok("\"\\u{_1}\" == \"\""));
	assert_false(cond_ok("\"\\u{}\" == \"\""));
	assert_false(cond_ok("\"\\u{0000041}\" == \"A\""));
	assert_false(cond_ok("\"\\q\" == \"q\""));
	assert_false(cond_ok("\"a\rb\" == \"\""));
	assert_false(cond_ok("\"a\\\nb\" == \"ab\""));
	assert_false(cond_ok("1 # 2"));
	assert_false(cond_ok("true | false"));
	assert_false(cond_ok("true & false"));
	assert_false(cond_ok("principal.é == 1"));
	assert_false(cond_ok("?principal == principal"));
}

static void test_lexing(void **state)
{
	(void)state;
	/* Unicode whitespace, comments anywhere, raw newlines in strings. */
	assert_true(cond_ok("true\xc2\xa0&&\xe2\x80\x83true"));
	assert_true(parses("permit(\tprincipal,\x0c" "action,\x0bresource); // end"));
	assert_true(cond_ok("true // yes\n && true"));
	EXPECT_COND("\"a\nb\" == \"\"", "(== \"a\\u{a}b\" \"\")");
	/* `trueish` is an identifier, not `true`. */
	assert_false(cond_ok("trueish"));
	cedar_lexer lx;
	cedar_token t;
	const char *src = "!= ! = == :: : <= < >= > || && ?principal 12 \"s\\\"\" id";
	static const int want[] = { TK_NE, TK_BANG, TK_EQ, TK_EQ2, TK_COLON2, TK_COLON, TK_LE, TK_LT,
				    TK_GE, TK_GT, TK_OR, TK_AND, TK_SLOT, TK_NUMBER, TK_STRING, TK_IDENT,
				    TK_EOF };
	cedar_lex_init(&lx, src, (uint32_t)strlen(src));
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		cedar_lex_next(&lx, &t);
		assert_int_equal(t.kind, want[i]);
	}
	assert_true(cedar_ident_reserved("has", 3, false));
	assert_false(cedar_ident_reserved("__cedar", 7, false));
	assert_true(cedar_ident_reserved("__cedar", 7, true));
	assert_false(cedar_ident_reserved("permit", 6, true));
}

static void test_error_positions(void **state)
{
	(void)state;
	fails_at("permit(principal, action, resource) when { 1 + };", 1, 48);
	fails_at("permit(principal, action, resource)\n  when {\n    context.a &&\n  };", 4, 3);
	fails_at("\n\n   forbid(principal, action, resource) when { \"unterminated };", 3, 47);
	/* Columns count characters, not bytes. */
	fails_at("permit(principal, action, resource) when { \"é\" == # };", 1, 51);
	fails_at("permit(principal, action, resource) when { 1 < 2 < 3 };", 1, 50);
	fails_at("permit(principal, action, resource) when { principal.if };", 1, 54);
	fails_at("permit(principal, action, resource);\nforbid(principal, action, resource) when { foo };", 2, 44);
	fails_at("permit(principal, action, resource) when { 1 / 2 };", 1, 46);
	fails_at("permit(principal, action, resource) when { 99999999999999999999 };", 1, 44);
	/* Invalid UTF-8 is refused where it is. */
	fails_at("permit(principal, action, resource) when { \"\xff\" };", 1, 45);
	fails_at("permit(principal, action, resource) when { \"\xc3\" };", 1, 45);
}

/* Messages quote the input and are cut to fit: never in the middle of a
 * character (they go into JSON). */
static void test_messages_are_utf8(void **state)
{
	(void)state;
	const char *text = "@a(\"x\"\"\")\nforbid(\n  principal is Use in User::\xc3\xa9\",\n  action, resource);";
	cedar_policy_set *ps;
	cedar_parse_error err;
	assert_int_equal(cedar_parse(text, strlen(text), &ps, &err), -1);
	json_t *j = json_string(err.msg);
	assert_non_null(j);
	json_decref(j);
	char bad[] = "a\xc3 \xe2\x82 ok \xc3\xa9 \xed\xa0\x80 \xff";
	cedar_utf8_sanitize(bad);
	assert_string_equal(bad, "a? ?? ok \xc3\xa9 ??? ?");
}

static void test_limits(void **state)
{
	(void)state;
	char *text = malloc(CEDAR_TEXT_MAX + 100);
	assert_non_null(text);
	/* Nesting: fine below the limit, a parse error past it. */
	int n = CEDAR_NEST_MAX - 2;
	int len = sprintf(text, "permit(principal, action, resource) when { ");
	for (int i = 0; i < n; i++)
		text[len++] = '(';
	len += sprintf(text + len, "true");
	for (int i = 0; i < n; i++)
		text[len++] = ')';
	len += sprintf(text + len, " };");
	assert_true(parses(text));
	len = sprintf(text, "permit(principal, action, resource) when { ");
	for (int i = 0; i < CEDAR_NEST_MAX + 5; i++)
		len += sprintf(text + len, "[");
	text[len] = 0;
	assert_false(parses(text));
	/* A long && chain is depth, not nesting: past CEDAR_DEPTH_MAX it fails. */
	len = sprintf(text, "permit(principal, action, resource) when { true");
	for (int i = 0; i < CEDAR_DEPTH_MAX + 5; i++)
		len += sprintf(text + len, " && true");
	len += sprintf(text + len, " };");
	assert_false(parses(text));
	/* Too much text. */
	memset(text, ' ', CEDAR_TEXT_MAX + 1);
	cedar_policy_set *ps;
	cedar_parse_error err;
	assert_int_equal(cedar_parse(text, CEDAR_TEXT_MAX + 1, &ps, &err), -1);
	assert_non_null(strstr(err.msg, "larger than"));
	free(text);
}

static void test_unescape(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(cedar_unescape("a\\u{41}\\x42", 11, out), 3);
	assert_memory_equal(out, "aAB", 3);
	assert_int_equal(cedar_unescape("\\0", 2, out), 1);
	assert_int_equal(out[0], 0);
	assert_int_equal(cedar_unescape("\\", 1, out), -1);
	assert_int_equal(cedar_unescape("\\x4", 3, out), -1);
	assert_int_equal(cedar_unescape("\\u{41", 5, out), -1);
	assert_int_equal(cedar_unescape("\\*", 2, out), -1); /* only in patterns */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_shapes),  cmocka_unit_test(test_scope_errors),
		cmocka_unit_test(test_precedence),     cmocka_unit_test(test_desugaring),
		cmocka_unit_test(test_literals),       cmocka_unit_test(test_members),
		cmocka_unit_test(test_expression_errors), cmocka_unit_test(test_lexing),
		cmocka_unit_test(test_error_positions), cmocka_unit_test(test_limits),
		cmocka_unit_test(test_unescape),      cmocka_unit_test(test_messages_are_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
