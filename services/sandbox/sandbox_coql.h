/* sandbox_coql: the subset of Zoho's COQL the sandbox answers (see sandbox_coql.c). */
#ifndef LEADBUS_SANDBOX_COQL_H
#define LEADBUS_SANDBOX_COQL_H

#include <stdbool.h>

#define COQL_COLS_MAX 50       /* "up to 50 field API names in the SELECT column" */
#define COQL_LIMIT_DEFAULT 200 /* "The default value is 200 and the max value is 2000." */
#define COQL_LIMIT_MAX 2000
#define COQL_NAME_MAX 96
#define COQL_WHY_MAX 128

enum coql_status {
    COQL_OK = 0,
    COQL_SYNTAX = -1, /* Zoho's SYNTAX_ERROR */
    COQL_LIMIT = -2,  /* Zoho's LIMIT_EXCEEDED */
};

struct coql_query {
    char cols[COQL_COLS_MAX][COQL_NAME_MAX];
    int ncols;
    char module[COQL_NAME_MAX];
    char where_col[COQL_NAME_MAX], where_val[COQL_NAME_MAX];
    int limit, offset;
};

/* Parse `text`; on failure `why` says what is wrong, for the error's details. */
int sandbox_coql_parse(const char *text, struct coql_query *q, char why[COQL_WHY_MAX]);

#endif
