/* A small YAML tree that remembers where every node came from (file:line:col), built from
 * libfyaml's event stream with anchors, aliases and merge keys resolved under hard size limits;
 * YAML 1.2 core-schema scalar typing. Used by the spec and by every other YAML a user writes
 * (kubeconfig). Owner: util/. */
#ifndef EXPT_UTIL_YAML_H
#define EXPT_UTIL_YAML_H

#include <stddef.h>

#include "buf.h"
#include "diag.h"

/* Hard limits on one document, so that no input can make parsing slow or big. */
#define EXPT_YAML_MAX_NODES 100000 /* nodes in one tree, aliases expanded */
#define EXPT_YAML_MAX_DEPTH 48	   /* nesting of maps and lists */
#define EXPT_YAML_MAX_MAP 4096	   /* entries in one map */

/* A typed scalar (a param value): a list or map value is kept as JSON text (EXPT_VT_JSON). */
enum expt_vtype {
	EXPT_VT_NULL,
	EXPT_VT_BOOL,
	EXPT_VT_INT,
	EXPT_VT_FLOAT,
	EXPT_VT_STR,
	EXPT_VT_JSON
};

struct expt_value {
	enum expt_vtype type;
	char *text; /* canonical text: "0.01", "true", "adam", "[1,2]"; never NULL ("" for null) */
};

enum expt_ykind { EXPT_Y_SCALAR, EXPT_Y_MAP, EXPT_Y_SEQ };

struct expt_ynode {
	enum expt_ykind kind;
	const char *file;     /* borrowed: a string that outlives the tree (the loader's path) */
	int line, col;	      /* 1-based; line 0 = command line, col = argument index */
	char *text;	      /* scalars: the text as written (quotes removed); owned */
	enum expt_vtype type; /* scalars: resolved YAML 1.2 core type (quoted → EXPT_VT_STR) */
	int quoted;	      /* scalars: written quoted or as a block (so never a merge key) */
	/* maps: keys[i] → vals[i] (keys are scalars); lists: vals[i]. Owned. */
	struct expt_ynode **keys, **vals;
	size_t n, cap;
};

/* Parses one YAML document. On success returns 0 and *out (free with expt_ynode_free); on a
 * syntax error adds problems to diags (as file:line:col) and returns EXPT_EUSAGE. file is
 * borrowed by every node and must outlive the tree. An empty document gives *out = NULL. */
int expt_ynode_parse(const char *data, size_t len, const char *file, struct expt_ynode **out,
		     struct expt_diags *diags);
void expt_ynode_free(struct expt_ynode *n); /* NULL is a no-op */

struct expt_ynode *expt_ynode_new(enum expt_ykind kind, const char *file, int line, int col);
/* A scalar typed like a YAML plain scalar (int, float, bool, null, else string). */
struct expt_ynode *expt_ynode_plain(const char *text, const char *file, int line, int col);
/* A scalar that is always a string. */
struct expt_ynode *expt_ynode_str(const char *text, const char *file, int line, int col);
struct expt_ynode *expt_ynode_copy(const struct expt_ynode *n);

/* Map access. get returns a borrowed node or NULL; set replaces the value of key (freeing the old
 * one) or appends the pair, taking ownership of val; del removes and frees. */
const struct expt_ynode *expt_ynode_get(const struct expt_ynode *map, const char *key);
struct expt_ynode *expt_ynode_getw(struct expt_ynode *map, const char *key);
long expt_ynode_find(const struct expt_ynode *map, const char *key);
void expt_ynode_set(struct expt_ynode *map, const char *key, struct expt_ynode *val);
/* Like set, but the new key node takes its position from key_at (NULL: from val). */
void expt_ynode_set_at(struct expt_ynode *map, const char *key, struct expt_ynode *val,
		       const struct expt_ynode *key_at);
void expt_ynode_del(struct expt_ynode *map, const char *key);
/* Detaches and returns the value of key (caller owns it), or NULL. */
struct expt_ynode *expt_ynode_take(struct expt_ynode *map, const char *key);
void expt_ynode_push(struct expt_ynode *seq, struct expt_ynode *val);

/* Deep merge of over into base (over is only read): maps merge recursively, everything else
 * replaces, and a null in over removes the key from base. */
void expt_ynode_merge(struct expt_ynode *base, const struct expt_ynode *over);

/* Is this the null scalar? */
int expt_ynode_is_null(const struct expt_ynode *n);
/* "a map", "a list", or "'text'" (quoted, shortened, control characters escaped): for messages. */
void expt_ynode_describe(const struct expt_ynode *n, char *out, size_t size);

/* Appends n as compact JSON; scalars in canonical form (see expt_scalar_canon). */
void expt_ynode_json(struct expt_buf *b, const struct expt_ynode *n);
/* The param value of n: scalars canonical, lists and maps as JSON text. Caller releases text. */
void expt_ynode_value(const struct expt_ynode *n, struct expt_value *out);

/* Resolves a YAML 1.2 core-schema plain scalar: returns its type; *canon (caller frees) gets the
 * canonical text: ints in decimal, floats in their shortest round-trip form with a '.' or an
 * exponent ("0.1", "1.0", "1e-05", "inf", "nan"), bools "true"/"false", null "". */
enum expt_vtype expt_scalar_type(const char *text, char **canon);

#endif
