/* The shape of a memory table: its declared columns, and the check every
 * row goes through before it is stored. A table without declared columns
 * takes any JSON object (within the size and depth limits). */
#ifndef GRACE_MEMORY_COLUMNS_H
#define GRACE_MEMORY_COLUMNS_H

#include "serve/layer.h"
#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define MEM_NAME_MAX 64            /* table and column names, in bytes */
#define MEM_COLUMNS_MAX 64         /* declared columns of one table */
#define MEM_INDEXED_MAX 8          /* columns with an index of their own */
#define MEM_ROW_BYTES_MAX (64 * 1024) /* one row's JSON, compact */
#define MEM_ROW_DEPTH_MAX 32       /* nesting of arrays and objects in a row */

enum mem_type {
	MEM_T_ANY = 0, /* an undeclared column */
	MEM_T_STRING,
	MEM_T_NUMBER,
	MEM_T_BOOLEAN,
	MEM_T_JSON,
	MEM_T_TEXT, /* a string that is full-text indexed */
};

typedef struct mem_column {
	char name[MEM_NAME_MAX + 1];
	enum mem_type type;
	bool required; /* present and not null in every row */
	bool indexed;  /* has an index on its value */
} mem_column;

typedef struct mem_columns {
	size_t n; /* 0: nothing declared */
	mem_column c[MEM_COLUMNS_MAX];
} mem_columns;

/* A table name: [a-z][a-z0-9_]{0,63}. */
bool mem_table_name_valid(const char *s);
/* A column name: [A-Za-z][A-Za-z0-9_]{0,63}. Only such names are ever
 * placed in SQL text (inside a JSON path literal); values never are. */
bool mem_column_name_valid(const char *s);

const char *mem_type_name(enum mem_type t);
/* MEM_T_ANY when `s` names no type. */
enum mem_type mem_type_parse(const char *s);

/* Parses a "columns" declaration (NULL or an array of {"name", "type",
 * "required"?, "index"?}). String and number columns are indexed by
 * default, up to MEM_INDEXED_MAX. Returns 0, or -1 with the reason. */
int mem_columns_parse(json_t *spec, mem_columns *out, sdk_err *err);
/* The declaration as JSON (a new reference), as stored and as shown. */
json_t *mem_columns_json(const mem_columns *cols);
const mem_column *mem_columns_find(const mem_columns *cols, const char *name);
bool mem_columns_has_text(const mem_columns *cols);

/* Checks a row against the columns: an object; with declared columns no
 * unknown key, every value of its column's type (or null), every required
 * column present; nesting at most MEM_ROW_DEPTH_MAX. 0, or -1 and why. */
int mem_row_check(const mem_columns *cols, json_t *row, sdk_err *err);
/* mem_row_check, then the row as compact JSON of at most MEM_ROW_BYTES_MAX
 * bytes. Returns a malloc'd string (length in *len) or NULL and why;
 * *too_large tells a size failure from the others. */
char *mem_row_encode(const mem_columns *cols, json_t *row, size_t *len, bool *too_large,
		     sdk_err *err);

#endif
