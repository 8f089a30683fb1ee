/* Errors as values: filled where a failure is found, passed up untouched, printed once by cli/. */
#ifndef EXPT_UTIL_ERR_H
#define EXPT_UTIL_ERR_H

#include <stddef.h>

/* Error codes double as process exit codes (docs/cli.md lists them). */
enum expt_errcode {
	EXPT_OK = 0,
	EXPT_EFAIL = 1,	    /* generic failure, or a run that failed */
	EXPT_EUSAGE = 2,    /* bad command line or bad spec */
	EXPT_ENOTFOUND = 3, /* no such experiment, run, file */
	EXPT_ESTORE = 4,    /* the store cannot be opened or is from a newer expt */
	EXPT_EBACKEND = 5,  /* the backend could not do what was asked */
	EXPT_ECONFLICT = 6, /* a run is not in the state the change needs (it moved meanwhile) */
	EXPT_ENOMEM = 7,    /* out of memory (the library and the store report it; cli/ aborts) */
	EXPT_EDENIED = 8,   /* a server refused: not authenticated (401) or not allowed (403) */
	EXPT_EINTR = 130,   /* interrupted by the user */
};

struct expt_err {
	int code;	 /* enum expt_errcode, 0 when no error */
	char msg[1024];	 /* what went wrong, without the location prefix */
	char file[512];	 /* file the error is about, "" if none */
	int line, col;	 /* 1-based position in file, 0 if unknown */
	char field[256]; /* dotted field path (spec.sweep.lr), "" if none */
};

#define EXPT_ERR_INIT                                                                              \
	{                                                                                          \
		0                                                                                  \
	}

/* Sets code and message (printf-style); clears location. Returns code. */
int expt_err_set(struct expt_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like expt_err_set, with strerror(errno) appended as ": <text>". */
int expt_err_errno(struct expt_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets the location of an already-filled error. */
void expt_err_at(struct expt_err *err, const char *file, int line, int col, const char *field);
void expt_err_clear(struct expt_err *err);
/* Formats "file:line:col: field: msg" into out (size n). */
void expt_err_format(const struct expt_err *err, char *out, size_t n);

#endif
