/*
 * sandbox_coql: the part of Zoho's COQL (CRM Object Query Language) the
 * sandbox answers, parsed strictly. Zoho's documents (COQL overview, v2–v8;
 * Kaizen #80/#81) give the shape:
 *
 *   select COL[, COL…] from MODULE where COND [limit N [offset M]]
 *
 * with at most 50 columns and a limit of at most 2000 (default 200). Of the
 * conditions the sandbox knows one: `COL = 'value'` (the column quoted or
 * not, the condition in parentheses or not). Anything else is refused as a
 * SYNTAX_ERROR: a query the sandbox cannot check is one our client must not
 * rely on without a test that says so (docs/api-conformance.md, COQL row).
 * Pure: no I/O, no allocation; fuzzed with the rest of the sandbox's input.
 */
#include "sandbox_coql.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum tok_kind { TOK_END, TOK_WORD, TOK_QUOTED, TOK_SYMBOL, TOK_BAD };

struct lexer {
    const char *s;
    enum tok_kind kind;
    char text[COQL_NAME_MAX];
};

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '$';
}

/* The next token into lx->text; a quoted one without its quotes ('' stands for '). */
static void next(struct lexer *lx)
{
    while (isspace((unsigned char)*lx->s)) {
        lx->s++;
    }
    size_t n = 0;
    char c = *lx->s;
    lx->kind = TOK_BAD;
    if (c == '\0') {
        lx->kind = TOK_END;
    } else if (c == '\'') {
        lx->s++;
        while (*lx->s != '\0' && n + 1 < sizeof lx->text) {
            if (lx->s[0] == '\'' && lx->s[1] == '\'') {
                lx->text[n++] = '\'';
                lx->s += 2;
            } else if (lx->s[0] == '\'') {
                lx->s++;
                lx->kind = TOK_QUOTED;
                break;
            } else {
                lx->text[n++] = *lx->s++;
            }
        }
    } else if (word_char(c)) {
        while (word_char(*lx->s) && n + 1 < sizeof lx->text) {
            lx->text[n++] = *lx->s++;
        }
        lx->kind = word_char(*lx->s) ? TOK_BAD : TOK_WORD;
    } else if (strchr(",=()", c) != NULL) {
        lx->text[n++] = *lx->s++;
        lx->kind = TOK_SYMBOL;
    }
    lx->text[n] = '\0';
}

static bool is_keyword(const struct lexer *lx, const char *kw)
{
    return lx->kind == TOK_WORD && strcasecmp(lx->text, kw) == 0;
}

static bool is_symbol(const struct lexer *lx, char c)
{
    return lx->kind == TOK_SYMBOL && lx->text[0] == c;
}

static int fail(char why[COQL_WHY_MAX], const char *what, const struct lexer *lx)
{
    snprintf(why, COQL_WHY_MAX, "%s near '%.40s'", what, lx->text);
    return COQL_SYNTAX;
}

static int columns(struct lexer *lx, struct coql_query *q, char why[COQL_WHY_MAX])
{
    for (;;) {
        if (lx->kind != TOK_WORD && lx->kind != TOK_QUOTED) {
            return fail(why, "a column name expected", lx);
        }
        if (q->ncols == COQL_COLS_MAX) {
            snprintf(why, COQL_WHY_MAX, "more than %d columns", COQL_COLS_MAX);
            return COQL_LIMIT;
        }
        snprintf(q->cols[q->ncols++], COQL_NAME_MAX, "%s", lx->text);
        next(lx);
        if (!is_symbol(lx, ',')) {
            return COQL_OK;
        }
        next(lx);
    }
}

static int condition(struct lexer *lx, struct coql_query *q, char why[COQL_WHY_MAX])
{
    bool paren = is_symbol(lx, '(');
    if (paren) {
        next(lx);
    }
    if (lx->kind != TOK_WORD && lx->kind != TOK_QUOTED) {
        return fail(why, "a column name expected in where", lx);
    }
    snprintf(q->where_col, sizeof q->where_col, "%s", lx->text);
    next(lx);
    if (!is_symbol(lx, '=')) {
        return fail(why, "the sandbox knows only '=' conditions", lx);
    }
    next(lx);
    if (lx->kind != TOK_QUOTED) {
        return fail(why, "a quoted value expected", lx);
    }
    snprintf(q->where_val, sizeof q->where_val, "%s", lx->text);
    next(lx);
    if (paren) {
        if (!is_symbol(lx, ')')) {
            return fail(why, "')' expected", lx);
        }
        next(lx);
    }
    return COQL_OK;
}

static int number(struct lexer *lx, int *out, char why[COQL_WHY_MAX])
{
    char *end;
    long v = strtol(lx->text, &end, 10);
    if (lx->kind != TOK_WORD || *end != '\0' || v < 0 || v > 1000000000L) {
        return fail(why, "a number expected", lx);
    }
    *out = (int)v;
    next(lx);
    return COQL_OK;
}

static int limits(struct lexer *lx, struct coql_query *q, char why[COQL_WHY_MAX])
{
    q->limit = COQL_LIMIT_DEFAULT;
    q->offset = 0;
    if (!is_keyword(lx, "limit")) {
        return COQL_OK;
    }
    next(lx);
    int rc = number(lx, &q->limit, why);
    if (rc == COQL_OK && is_keyword(lx, "offset")) {
        next(lx);
        rc = number(lx, &q->offset, why);
    }
    if (rc == COQL_OK && (q->limit < 1 || q->limit > COQL_LIMIT_MAX)) {
        snprintf(why, COQL_WHY_MAX, "limit must be 1 to %d", COQL_LIMIT_MAX);
        rc = COQL_LIMIT;
    }
    return rc;
}

int sandbox_coql_parse(const char *text, struct coql_query *q, char why[COQL_WHY_MAX])
{
    struct lexer lx = {.s = text};
    memset(q, 0, sizeof *q);
    why[0] = '\0';
    next(&lx);
    if (!is_keyword(&lx, "select")) {
        return fail(why, "select expected", &lx);
    }
    next(&lx);
    int rc = columns(&lx, q, why);
    if (rc != COQL_OK) {
        return rc;
    }
    if (!is_keyword(&lx, "from")) {
        return fail(why, "from expected", &lx);
    }
    next(&lx);
    if (lx.kind != TOK_WORD) {
        return fail(why, "a module name expected", &lx);
    }
    snprintf(q->module, sizeof q->module, "%s", lx.text);
    next(&lx);
    if (!is_keyword(&lx, "where")) {
        return fail(why, "where expected", &lx);
    }
    next(&lx);
    rc = condition(&lx, q, why);
    if (rc == COQL_OK) {
        rc = limits(&lx, q, why);
    }
    if (rc == COQL_OK && lx.kind != TOK_END) {
        rc = fail(why, "unexpected text", &lx);
    }
    return rc;
}
