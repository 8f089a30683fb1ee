/* TensorBoard encoding against the reference bytes of REFERENCE.md section 2 (produced by
 * protoc-generated code): CRC-32C, record framing, the version event and a scalar event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "track/tb.h"
#include "util/util.h"

static void assert_bytes(const struct expt_buf *b, const unsigned char *want, size_t n)
{
	if (b->len != n)
		fail_msg("length %zu, want %zu", b->len, n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)b->buf[i] != want[i])
			fail_msg("byte %zu: %02x, want %02x", i, (unsigned char)b->buf[i], want[i]);
}

static void test_crc32c(void **state)
{
	assert_int_equal(expt_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(expt_crc32c(0, "", 0), 0);
	/* Continuing a CRC over a split buffer gives the same value. */
	assert_int_equal(expt_crc32c(expt_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
	/* Masking: ((c >> 15) | (c << 17)) + 0xa282ead8. */
	assert_int_equal(expt_crc32c_mask(0), 0xa282ead8u);
	assert_int_equal(expt_crc32c_mask(0x80000000u), 0x00010000u + 0xa282ead8u);
}

static const unsigned char wall_time[8] = {0x00, 0x00, 0x20, 0x40, 0xfc, 0x54, 0xd9, 0x41};

static void test_version_record(void **state)
{
	static const unsigned char want[] = {
	    0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa3, 0x7f, 0x4b, 0x22, 0x09, 0x00,
	    0x00, 0x20, 0x40, 0xfc, 0x54, 0xd9, 0x41, 0x1a, 0x0d, 'b',	'r',  'a',  'i',  'n',
	    '.',  'E',	'v',  'e',  'n',  't',	':',  '2',  0x2b, 0x35, 0x31, 0x10};
	struct expt_buf ev = EXPT_BUF_INIT, rec = EXPT_BUF_INIT;

	expt_tb_event_version(&ev, 1700000000.5);
	assert_int_equal(ev.len, 24);
	assert_memory_equal(ev.buf + 1, wall_time, 8);
	expt_tb_record(&rec, ev.buf, ev.len);
	assert_bytes(&rec, want, sizeof(want));
	expt_buf_release(&ev);
	expt_buf_release(&rec);
}

static void test_scalar_event(void **state)
{
	unsigned char want[] = {0x09, 0,    0,	  0,	0,    0,    0,	  0,	0,
				0x10, 0x07, 0x2a, 0x0d, 0x0a, 0x0b, 0x0a, 0x04, 'l',
				'o',  's',  's',  0x15, 0x00, 0x00, 0x80, 0x3e};
	struct expt_buf vals = EXPT_BUF_INIT, ev = EXPT_BUF_INIT;

	memcpy(want + 1, wall_time, 8);
	expt_tb_value_scalar(&vals, "loss", 0.25f);
	expt_tb_event_summary(&ev, 1700000000.5, 7, vals.buf, vals.len);
	assert_bytes(&ev, want, sizeof(want));
	expt_buf_release(&vals);
	expt_buf_release(&ev);
}

static void test_varint(void **state)
{
	static const unsigned char v300[] = {0xac, 0x02};
	static const unsigned char vneg[] = {0xff, 0xff, 0xff, 0xff, 0xff,
					     0xff, 0xff, 0xff, 0xff, 0x01};
	struct expt_buf b = EXPT_BUF_INIT;

	expt_pb_varint(&b, 300);
	assert_bytes(&b, v300, sizeof(v300));
	expt_buf_reset(&b);
	expt_pb_varint(&b, (uint64_t)(int64_t)-1);
	assert_bytes(&b, vneg, sizeof(vneg));
	expt_buf_reset(&b);
	expt_pb_varint(&b, 0);
	assert_int_equal(b.len, 1);
	assert_int_equal(b.buf[0], 0);
	expt_buf_release(&b);
}

/* Histogram value: tag, then HistogramProto with its doubles packed. */
static void test_histogram_value(void **state)
{
	const double limits[2] = {1.5, 3}, counts[2] = {2, 1};
	struct expt_buf b = EXPT_BUF_INIT;
	const unsigned char *p;

	expt_tb_value_histogram(&b, "w", 1, 3, 3, 5.5, 11.25, limits, counts, 2);
	p = (const unsigned char *)b.buf;
	/* Summary.value: field 1, length; Value.tag "w"; Value.histo field 5, length. */
	assert_int_equal(p[0], 0x0a);
	assert_int_equal(p[1], b.len - 2);
	assert_int_equal(p[2], 0x0a);
	assert_int_equal(p[3], 1);
	assert_int_equal(p[4], 'w');
	assert_int_equal(p[5], 0x2a);
	/* min, max, num, sum, sum_squares: 5 x (tag + 8 bytes); then two packed arrays. */
	assert_int_equal(p[6], 5 * 9 + 2 * (2 + 16));
	assert_int_equal(p[7], 0x09);
	assert_int_equal(p[7 + 45], 0x32);
	assert_int_equal(p[7 + 46], 16);
	assert_int_equal(p[7 + 63], 0x3a);
	expt_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c),	    cmocka_unit_test(test_version_record),
	    cmocka_unit_test(test_scalar_event),    cmocka_unit_test(test_varint),
	    cmocka_unit_test(test_histogram_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
