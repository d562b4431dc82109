/* The block codec of the librarian's index (block.h): round trips, the
 * bound covers every posting, damaged blobs are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/librarian/block.h"

#include "sdk/err.h"

#include <stdlib.h>
#include <string.h>

/* A block of n postings, docs 3, 7, 11, ... with varied counts. */
static void make(lib_blk *b, uint32_t n)
{
	assert_true(lib_blk_reserve(b, n));
	b->has_pos = true;
	b->n = 0;
	b->npos = 0;
	b->poff[0] = 0;
	for (uint32_t k = 0; k < n; k++) {
		b->doc[k] = 3 + 4 * (int64_t)k;
		b->dl[k] = 20 + (k * 37) % 300;
		b->tf[k][0] = k % 3 == 0 ? 1 : 0;
		b->tf[k][1] = 1 + k % 5;
		b->tf[k][2] = k % 7 == 0 ? 1 : 0;
		uint32_t total = b->tf[k][0] + b->tf[k][1] + b->tf[k][2];
		assert_true(lib_blk_pos_reserve(b, b->npos + total));
		for (unsigned f = 0; f < LIB_FIELDS; f++)
			for (uint32_t j = 0; j < b->tf[k][f]; j++)
				b->pos[b->npos++] = 2 * j + f;
		b->n++;
		b->poff[b->n] = b->npos;
	}
}

static void test_round_trip(void **state)
{
	(void)state;
	lib_blk a = { 0 }, b = { 0 };
	lib_buf docs = { 0 }, pos = { 0 }, bound = { 0 };
	make(&a, 200);
	assert_true(lib_blk_encode(&a, 0, a.n, 150.0, &docs, &pos, &bound));
	assert_int_equal(lib_blk_decode(&b, docs.p, docs.n, pos.p, pos.n), 0);
	assert_int_equal(b.n, a.n);
	for (uint32_t k = 0; k < a.n; k++) {
		assert_int_equal(b.doc[k], a.doc[k]);
		assert_int_equal(b.dl[k], a.dl[k]);
		assert_memory_equal(b.tf[k], a.tf[k], sizeof a.tf[k]);
	}
	assert_int_equal(b.npos, a.npos);
	assert_memory_equal(b.pos, a.pos, a.npos * sizeof *a.pos);
	/* Without positions: the same postings. */
	assert_int_equal(lib_blk_decode(&b, docs.p, docs.n, NULL, 0), 0);
	assert_int_equal(b.n, a.n);
	assert_false(b.has_pos);
	lib_blk_free(&a);
	lib_blk_free(&b);
	lib_buf_free(&docs);
	lib_buf_free(&pos);
	lib_buf_free(&bound);
}

/* The bound's score is at least every posting's, for any avgdl and idf. */
static void test_bound_covers(void **state)
{
	(void)state;
	lib_blk a = { 0 };
	lib_buf docs = { 0 }, pos = { 0 }, bound = { 0 };
	make(&a, 250);
	assert_true(lib_blk_encode(&a, 10, 230, 100.0, &docs, &pos, &bound));
	lib_bound bd;
	assert_int_equal(lib_bound_decode(bound.p, bound.n, &bd), 0);
	assert_true(bd.n >= 1 && bd.n <= LIB_BOUND_POINTS);
	const double avgdls[] = { 1.0, 50.0, 150.0, 1000.0 };
	const double idfs[] = { 1e-6, 0.3, 4.0 };
	for (unsigned i = 0; i < 4; i++)
		for (unsigned j = 0; j < 3; j++) {
			double ub = lib_bound_score(&bd, idfs[j], avgdls[i]);
			for (uint32_t k = 10; k < 240; k++) {
				double s = lib_bm25_term(idfs[j], lib_weighted(a.tf[k], LIB_FIELDS_MASK),
							 a.dl[k], avgdls[i]);
				assert_true(s <= ub);
			}
		}
	lib_blk_free(&a);
	lib_buf_free(&docs);
	lib_buf_free(&pos);
	lib_buf_free(&bound);
}

/* Every truncation and a few flipped bytes: refused or decoded, never a
 * read out of bounds (ASan watches). */
static void test_damage(void **state)
{
	(void)state;
	lib_blk a = { 0 }, b = { 0 };
	lib_buf docs = { 0 }, pos = { 0 }, bound = { 0 };
	make(&a, 64);
	assert_true(lib_blk_encode(&a, 0, a.n, 100.0, &docs, &pos, &bound));
	for (size_t cut = 0; cut < docs.n; cut++) {
		uint8_t *p = malloc(cut ? cut : 1);
		memcpy(p, docs.p, cut);
		int rc = lib_blk_decode(&b, p, cut, pos.p, pos.n);
		assert_true(rc == 0 || rc == SDK_ECORRUPT);
		free(p);
	}
	/* A short positions blob is always damage: every count needs them. */
	assert_int_equal(lib_blk_decode(&b, docs.p, docs.n, pos.p, pos.n - 1), SDK_ECORRUPT);
	for (size_t i = 0; i < docs.n; i += 7) {
		docs.p[i] ^= 0xff;
		int rc = lib_blk_decode(&b, docs.p, docs.n, pos.p, pos.n);
		assert_true(rc == 0 || rc == SDK_ECORRUPT);
		docs.p[i] ^= 0xff;
	}
	lib_bound bd;
	assert_int_equal(lib_bound_decode(bound.p, bound.n - 1, &bd), SDK_ECORRUPT);
	lib_blk_free(&a);
	lib_blk_free(&b);
	lib_buf_free(&docs);
	lib_buf_free(&pos);
	lib_buf_free(&bound);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_bound_covers),
		cmocka_unit_test(test_damage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
