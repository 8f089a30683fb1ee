/* TensorBoard event files: CRC-32C, TFRecord framing and hand-written protobuf encoding of the
 * messages TensorBoard reads. Field numbers: ../shared/REFERENCE.md section 2 and TensorBoard's
 * event.proto, summary.proto, tensor.proto and plugins/hparams/plugin_data.proto. */
#include "tb.h"

#include <string.h>

#include "util/util.h"

/* CRC-32C lookup table for the reflected polynomial 0x82F63B78 (generated, not hand-typed). */
static const uint32_t crc32c_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu, 0x26a1e7e8u,
    0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu, 0x4d43cfd0u, 0xbf284cd3u,
    0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu, 0xd7c45070u,
    0x25afd373u, 0x36ff2087u, 0xc494a384u, 0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u,
    0x5d1d08bfu, 0xaf768bbcu, 0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u,
    0x33ed7d2au, 0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
    0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau, 0x30e349b1u,
    0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu, 0x1642ae59u, 0xe4292d5au,
    0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au, 0x7da08661u, 0x8fcb0562u, 0x9c9bf696u,
    0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu, 0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u,
    0x67dafa54u, 0x95b17957u, 0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu,
    0xfe53516fu, 0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
    0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu, 0x3ac7f2ebu,
    0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u, 0x61c69362u, 0x93ad1061u,
    0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u, 0xeb1fcbadu,
    0x197448aeu, 0x0a24bb5au, 0xf84f3859u, 0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u,
    0x7198540du, 0x83f3d70eu, 0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u,
    0xa55230e6u, 0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
    0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu, 0x456cac67u,
    0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u,
    0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu, 0x92a8fc17u, 0x60c37f14u, 0x73938ce0u,
    0x81f80fe3u, 0x55326b08u, 0xa759e80bu, 0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu,
    0xf94ad42fu, 0x0b21572cu, 0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u,
    0x502036a5u, 0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u, 0x0e330a81u,
    0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du, 0x758fe5d6u, 0x87e466d5u,
    0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u,
    0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu, 0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u,
    0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu,
    0x5a048dffu, 0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u, 0x590ab964u,
    0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu,
    0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu, 0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u,
    0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u,
    0x4f48173du, 0xbd23943eu, 0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au,
    0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
    0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

uint32_t expt_crc32c(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	crc = ~crc;
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

uint32_t expt_crc32c_mask(uint32_t crc)
{
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static void put_le(struct expt_buf *b, uint64_t v, int nbytes)
{
	unsigned char tmp[8];

	for (int i = 0; i < nbytes; i++)
		tmp[i] = (unsigned char)(v >> (8 * i));
	expt_buf_add(b, tmp, (size_t)nbytes);
}

void expt_tb_record(struct expt_buf *out, const void *data, size_t len)
{
	unsigned char hdr[8];

	for (int i = 0; i < 8; i++)
		hdr[i] = (unsigned char)((uint64_t)len >> (8 * i));
	expt_buf_add(out, hdr, 8);
	put_le(out, expt_crc32c_mask(expt_crc32c(0, hdr, 8)), 4);
	expt_buf_add(out, data, len);
	put_le(out, expt_crc32c_mask(expt_crc32c(0, data, len)), 4);
}

void expt_pb_varint(struct expt_buf *b, uint64_t v)
{
	unsigned char tmp[10];
	int n = 0;

	do {
		tmp[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	expt_buf_add(b, tmp, (size_t)n);
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

void expt_pb_tag(struct expt_buf *b, unsigned field, unsigned wire)
{
	expt_pb_varint(b, (uint64_t)field << 3 | wire);
}

void expt_pb_double(struct expt_buf *b, unsigned field, double v)
{
	uint64_t u;

	memcpy(&u, &v, 8);
	expt_pb_tag(b, field, 1);
	put_le(b, u, 8);
}

void expt_pb_float(struct expt_buf *b, unsigned field, float v)
{
	uint32_t u;

	memcpy(&u, &v, 4);
	expt_pb_tag(b, field, 5);
	put_le(b, u, 4);
}

void expt_pb_int(struct expt_buf *b, unsigned field, int64_t v)
{
	expt_pb_tag(b, field, 0);
	expt_pb_varint(b, (uint64_t)v);
}

void expt_pb_bytes(struct expt_buf *b, unsigned field, const void *data, size_t len)
{
	expt_pb_tag(b, field, 2);
	expt_pb_varint(b, len);
	expt_buf_add(b, data, len);
}

void expt_pb_doubles(struct expt_buf *b, unsigned field, const double *v, size_t n)
{
	expt_pb_tag(b, field, 2);
	expt_pb_varint(b, n * 8);
	for (size_t i = 0; i < n; i++) {
		uint64_t u;
		memcpy(&u, &v[i], 8);
		put_le(b, u, 8);
	}
}

/* Event fields: wall_time 1, step 2, file_version 3, summary 5. */
void expt_tb_event_version(struct expt_buf *b, double wall_time)
{
	static const char version[] = "brain.Event:2";

	expt_pb_double(b, 1, wall_time);
	expt_pb_bytes(b, 3, version, sizeof(version) - 1);
}

void expt_tb_event_summary(struct expt_buf *b, double wall_time, int64_t step, const void *values,
			   size_t len)
{
	expt_pb_double(b, 1, wall_time);
	if (step)
		expt_pb_int(b, 2, step);
	expt_pb_bytes(b, 5, values, len);
}

/* Summary.value is field 1; Value: tag 1, simple_value 2, image 4, histo 5, tensor 8,
 * metadata 9. */
void expt_tb_value_scalar(struct expt_buf *b, const char *tag, float v)
{
	size_t tlen = strlen(tag);
	size_t vlen = 1 + varint_size(tlen) + tlen + 5;

	expt_pb_tag(b, 1, 2);
	expt_pb_varint(b, vlen);
	expt_pb_bytes(b, 1, tag, tlen);
	expt_pb_float(b, 2, v);
}

/* Appends field `field` holding the message in m. */
static void put_msg(struct expt_buf *b, unsigned field, const struct expt_buf *m)
{
	expt_pb_bytes(b, field, m->buf, m->len);
}

void expt_tb_value_image(struct expt_buf *b, const char *tag, uint32_t width, uint32_t height,
			 uint32_t channels, const void *png, size_t len)
{
	struct expt_buf img = EXPT_BUF_INIT, val = EXPT_BUF_INIT;

	/* Summary.Image: height 1, width 2, colorspace 3, encoded_image_string 4. */
	expt_pb_int(&img, 1, height);
	expt_pb_int(&img, 2, width);
	expt_pb_int(&img, 3, channels);
	expt_pb_bytes(&img, 4, png, len);
	expt_pb_bytes(&val, 1, tag, strlen(tag));
	put_msg(&val, 4, &img);
	put_msg(b, 1, &val);
	expt_buf_release(&img);
	expt_buf_release(&val);
}

void expt_tb_value_histogram(struct expt_buf *b, const char *tag, double min, double max,
			     double num, double sum, double sum_squares, const double *limits,
			     const double *counts, size_t nb)
{
	struct expt_buf h = EXPT_BUF_INIT, val = EXPT_BUF_INIT;

	/* HistogramProto: min 1, max 2, num 3, sum 4, sum_squares 5, bucket_limit 6, bucket 7. */
	expt_pb_double(&h, 1, min);
	expt_pb_double(&h, 2, max);
	expt_pb_double(&h, 3, num);
	expt_pb_double(&h, 4, sum);
	expt_pb_double(&h, 5, sum_squares);
	if (nb) {
		expt_pb_doubles(&h, 6, limits, nb);
		expt_pb_doubles(&h, 7, counts, nb);
	}
	expt_pb_bytes(&val, 1, tag, strlen(tag));
	put_msg(&val, 5, &h);
	put_msg(b, 1, &val);
	expt_buf_release(&h);
	expt_buf_release(&val);
}

/* A Summary.value with the hparams plugin's metadata around plugin_data (an HParamsPluginData)
 * and the empty float tensor the plugin's own writer attaches. */
static void hparams_value(struct expt_buf *b, const char *tag, const struct expt_buf *plugin_data)
{
	static const unsigned char null_tensor[] = {0x08, 0x01, 0x12, 0x02, 0x12, 0x00};
	static const char plugin[] = "hparams";
	struct expt_buf pd = EXPT_BUF_INIT, md = EXPT_BUF_INIT, val = EXPT_BUF_INIT;

	/* SummaryMetadata.plugin_data 1 = PluginData{plugin_name 1, content 2}. */
	expt_pb_bytes(&pd, 1, plugin, sizeof(plugin) - 1);
	put_msg(&pd, 2, plugin_data);
	put_msg(&md, 1, &pd);
	expt_pb_bytes(&val, 1, tag, strlen(tag));
	expt_pb_bytes(&val, 8, null_tensor, sizeof(null_tensor));
	put_msg(&val, 9, &md);
	put_msg(b, 1, &val);
	expt_buf_release(&pd);
	expt_buf_release(&md);
	expt_buf_release(&val);
}

void expt_tb_value_hparams_start(struct expt_buf *b, const struct expt_tb_hparam *hp, size_t n,
				 double start_time_secs)
{
	struct expt_buf ssi = EXPT_BUF_INIT, entry = EXPT_BUF_INIT, v = EXPT_BUF_INIT;
	struct expt_buf data = EXPT_BUF_INIT;

	/* SessionStartInfo: hparams 1 (map<string, google.protobuf.Value>: key 1, value 2),
	 * start_time_secs 5. Value: number_value 2, string_value 3, bool_value 4. */
	for (size_t i = 0; i < n; i++) {
		expt_buf_reset(&entry);
		expt_buf_reset(&v);
		if (hp[i].type == 1)
			expt_pb_double(&v, 2, hp[i].num);
		else if (hp[i].type == 2)
			expt_pb_int(&v, 4, hp[i].num != 0);
		else
			expt_pb_bytes(&v, 3, hp[i].str, strlen(hp[i].str));
		expt_pb_bytes(&entry, 1, hp[i].key, strlen(hp[i].key));
		put_msg(&entry, 2, &v);
		put_msg(&ssi, 1, &entry);
	}
	expt_pb_double(&ssi, 5, start_time_secs);
	/* HParamsPluginData: version 1 (0, omitted), session_start_info 3. */
	put_msg(&data, 3, &ssi);
	hparams_value(b, "_hparams_/session_start_info", &data);
	expt_buf_release(&ssi);
	expt_buf_release(&entry);
	expt_buf_release(&v);
	expt_buf_release(&data);
}

void expt_tb_value_hparams_end(struct expt_buf *b, int status, double end_time_secs)
{
	struct expt_buf sei = EXPT_BUF_INIT, data = EXPT_BUF_INIT;

	/* SessionEndInfo: status 1, end_time_secs 2; HParamsPluginData.session_end_info 4. */
	expt_pb_int(&sei, 1, status);
	expt_pb_double(&sei, 2, end_time_secs);
	put_msg(&data, 4, &sei);
	hparams_value(b, "_hparams_/session_end_info", &data);
	expt_buf_release(&sei);
	expt_buf_release(&data);
}
