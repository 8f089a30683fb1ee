/* TensorBoard event files written by expt itself: CRC-32C, record framing and the few protobuf
 * messages TensorBoard reads (Event, Summary, Image, HistogramProto, HParams plugin data).
 * Wire format: ../shared/REFERENCE.md section 2. Owner: track/. */
#ifndef EXPT_TRACK_TB_H
#define EXPT_TRACK_TB_H

#include <stddef.h>
#include <stdint.h>

#include "../util/buf.h"

/* CRC-32C (Castagnoli) of data, continuing from crc (0 to start). */
uint32_t expt_crc32c(uint32_t crc, const void *data, size_t len);
/* TensorFlow's masked CRC stored in records. */
uint32_t expt_crc32c_mask(uint32_t crc);

/* Appends one record (length, masked CRCs) holding data to out. */
void expt_tb_record(struct expt_buf *out, const void *data, size_t len);

/* Protobuf pieces, appended to b. */
void expt_pb_varint(struct expt_buf *b, uint64_t v);
void expt_pb_tag(struct expt_buf *b, unsigned field, unsigned wire);
void expt_pb_double(struct expt_buf *b, unsigned field, double v);
void expt_pb_float(struct expt_buf *b, unsigned field, float v);
void expt_pb_int(struct expt_buf *b, unsigned field, int64_t v);
void expt_pb_bytes(struct expt_buf *b, unsigned field, const void *data, size_t len);
/* Packed repeated double. */
void expt_pb_doubles(struct expt_buf *b, unsigned field, const double *v, size_t n);

/* Event messages (the serialized Event, not framed). */
void expt_tb_event_version(struct expt_buf *b, double wall_time);
/* An event holding a summary whose serialized Summary.value entries are in values. */
void expt_tb_event_summary(struct expt_buf *b, double wall_time, int64_t step, const void *values,
			   size_t len);

/* Serialized Summary.value entries (field 1 of Summary, tag included), appended to b. */
void expt_tb_value_scalar(struct expt_buf *b, const char *tag, float v);
void expt_tb_value_image(struct expt_buf *b, const char *tag, uint32_t width, uint32_t height,
			 uint32_t channels, const void *png, size_t len);
void expt_tb_value_histogram(struct expt_buf *b, const char *tag, double min, double max,
			     double num, double sum, double sum_squares, const double *limits,
			     const double *counts, size_t nb);

/* HParams plugin: session start (params typed as number, bool or string) and session end. */
struct expt_tb_hparam {
	const char *key;
	int type; /* 0 string, 1 number, 2 bool */
	const char *str;
	double num;
};
void expt_tb_value_hparams_start(struct expt_buf *b, const struct expt_tb_hparam *hp, size_t n,
				 double start_time_secs);
/* status: 1 success, 2 failure (TensorBoard's api.proto Status). */
void expt_tb_value_hparams_end(struct expt_buf *b, int status, double end_time_secs);

#endif
