#include "bc_pg.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct bc_pg {
    PGconn *conn;
    char *dsn;
    const bc_pg_stmt *stmts;
    int in_txn;
    char sqlstate[6];
    /* Whether conn was up after the owning thread last used it: the one
     * field another thread (a readiness probe) may read. */
    atomic_int up;
};

struct bc_pgpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n, nfree;
    bc_pg **all;
    bc_pg **free;
};

/* Calls fn on each entry of a statement table, those of the tables it
 * includes (BC_PG_INCLUDE) in place, until one returns < 0. */
static int each_stmt(const bc_pg_stmt *stmts, int (*fn)(const bc_pg_stmt *s, void *ud),
                     void *ud)
{
    for (const bc_pg_stmt *s = stmts; s && (s->name || s->sql); s++) {
        int rc = s->name ? fn(s, ud)
                         : each_stmt((const bc_pg_stmt *)(const void *)s->sql, fn, ud);

        if (rc < 0)
            return -1;
    }
    return 0;
}

typedef struct {
    bc_pg *pg;
    bc_err *err;
    json_t *plans;    /* explain_one's output */
} stmt_walk;

static int prepare_one(const bc_pg_stmt *s, void *ud)
{
    stmt_walk *k = ud;
    /* An entry with an empty name is a session setting, run as it is. */
    PGresult *res = s->name[0] ? PQprepare(k->pg->conn, s->name, s->sql, 0, NULL)
                               : PQexec(k->pg->conn, s->sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

    if (!ok)
        bc_err_set(k->err, "prepare '%s': %s", s->name, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

static int prepare_all(bc_pg *pg, const bc_pg_stmt *stmts, bc_err *err)
{
    stmt_walk k = { pg, err, NULL };

    return each_stmt(stmts, prepare_one, &k);
}

/* EXPLAIN EXECUTE of one prepared statement with every parameter NULL:
 * the values do not matter to a generic plan. EXECUTE takes no
 * parameters of its own, so this one text is built: from a name in our
 * statement tables, quoted as an identifier. */
static int explain_one(const bc_pg_stmt *s, void *ud)
{
    stmt_walk *k = ud;
    PGconn *conn = k->pg->conn;
    PGresult *d;
    char *id, *sql;
    size_t cap, len;
    int n;

    if (!s->name[0])
        return 0;
    d = PQdescribePrepared(conn, s->name);
    n = PQresultStatus(d) == PGRES_COMMAND_OK ? PQnparams(d) : -1;
    PQclear(d);
    id = n >= 0 ? PQescapeIdentifier(conn, s->name, strlen(s->name)) : NULL;
    cap = (id ? strlen(id) : 0) + 32 + 6 * (size_t)(n > 0 ? n : 0);
    if (!(sql = id ? malloc(cap) : NULL)) {
        bc_err_set(k->err, "explain '%s': %s", s->name, n < 0 ? "not prepared" : "out of memory");
        PQfreemem(id);
        return -1;
    }
    len = (size_t)snprintf(sql, cap, "EXPLAIN EXECUTE %s", id);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(sql + len, cap - len, "%sNULL", i ? "," : "(");
    if (n > 0)
        snprintf(sql + len, cap - len, ")");
    PQfreemem(id);

    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;

    free(sql);
    if (ok) {
        json_t *lines = json_array();

        for (int r = 0; r < PQntuples(res); r++)
            json_array_append_new(lines, json_string(PQgetvalue(res, r, 0)));
        json_object_set_new(k->plans, s->name, lines);
    } else {
        bc_err_set(k->err, "explain '%s': %s", s->name, PQresultErrorMessage(res));
    }
    PQclear(res);
    return ok ? 0 : -1;
}

json_t *bc_pg_explain(bc_pg *pg, bc_err *err)
{
    stmt_walk k = { pg, err, json_object() };

    if (each_stmt(pg->stmts, explain_one, &k) < 0) {
        json_decref(k.plans);
        return NULL;
    }
    return k.plans;
}

static void ignore_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static int open_conn(bc_pg *pg, bc_err *err)
{
    PQfinish(pg->conn);
    pg->conn = PQconnectdb(pg->dsn);
    pg->in_txn = 0;
    atomic_store(&pg->up, PQstatus(pg->conn) == CONNECTION_OK);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        bc_err_set(err, "connect to postgres: %s", PQerrorMessage(pg->conn));
        return -1;
    }
    /* Quiet NOTICEs: they would go to stderr as non-JSON lines. */
    PQsetNoticeProcessor(pg->conn, ignore_notice, NULL);
    return prepare_all(pg, pg->stmts, err);
}

bc_pg *bc_pg_connect(const char *dsn, const bc_pg_stmt *stmts, bc_err *err)
{
    bc_pg *pg = calloc(1, sizeof *pg);

    if (!pg || !(pg->dsn = strdup(dsn))) {
        free(pg);
        bc_err_set(err, "postgres: out of memory");
        return NULL;
    }
    pg->stmts = stmts;
    if (open_conn(pg, err) < 0) {
        bc_pg_free(pg);
        return NULL;
    }
    return pg;
}

void bc_pg_free(bc_pg *pg)
{
    if (!pg)
        return;
    PQfinish(pg->conn);
    free(pg->dsn);
    free(pg);
}

PGconn *bc_pg_conn(bc_pg *pg) { return pg->conn; }
const char *bc_pg_sqlstate(const bc_pg *pg) { return pg->sqlstate; }

int bc_pg_alive(bc_pg *pg)
{
    return pg->conn && PQstatus(pg->conn) == CONNECTION_OK;
}

int bc_pg_up(const bc_pg *pg)
{
    return pg && atomic_load(&pg->up);
}

/* Reconnect lazily, but never inside a transaction: its work is gone and
 * the caller must learn that from the failure, not from a silent retry. */
static int ensure(bc_pg *pg, bc_err *err)
{
    if (bc_pg_alive(pg))
        return 0;
    if (pg->in_txn) {
        bc_err_set(err, "postgres connection lost inside a transaction");
        return -1;
    }
    return open_conn(pg, err);
}

static PGresult *check(bc_pg *pg, PGresult *res, const char *what, bc_err *err)
{
    ExecStatusType st = PQresultStatus(res);
    const char *state;

    atomic_store(&pg->up, PQstatus(pg->conn) == CONNECTION_OK);
    pg->sqlstate[0] = '\0';
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state)
        snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", state);
    bc_err_set(err, "%s: %s", what,
               res ? PQresultErrorMessage(res) : PQerrorMessage(pg->conn));
    /* Trim libpq's trailing newline from the message. */
    if (err) {
        size_t n = strlen(err->msg);
        while (n && (err->msg[n - 1] == '\n'))
            err->msg[--n] = '\0';
    }
    PQclear(res);
    return NULL;
}

PGresult *bc_pg_exec(bc_pg *pg, const char *stmt, int nparams,
                     const char *const *params, bc_err *err)
{
    if (ensure(pg, err) < 0)
        return NULL;
    return check(pg, PQexecPrepared(pg->conn, stmt, nparams, params, NULL, NULL, 0),
                 stmt, err);
}

int bc_pg_run(bc_pg *pg, const char *stmt, int nparams, const char *const *params,
              bc_err *err)
{
    PGresult *res = bc_pg_exec(pg, stmt, nparams, params, err);

    PQclear(res);
    return res ? 0 : -1;
}

PGresult *bc_pg_exec_sql(bc_pg *pg, const char *sql, int nparams,
                         const char *const *params, bc_err *err)
{
    if (ensure(pg, err) < 0)
        return NULL;
    return check(pg, PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0),
                 "query", err);
}

static int simple(bc_pg *pg, const char *sql, bc_err *err)
{
    PGresult *res;

    if (ensure(pg, err) < 0)
        return -1;
    res = check(pg, PQexec(pg->conn, sql), sql, err);
    PQclear(res);
    return res ? 0 : -1;
}

int bc_pg_begin(bc_pg *pg, bc_err *err)
{
    if (simple(pg, "BEGIN", err) < 0)
        return -1;
    pg->in_txn = 1;
    return 0;
}

int bc_pg_begin_snapshot(bc_pg *pg, bc_err *err)
{
    if (simple(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", err) < 0)
        return -1;
    pg->in_txn = 1;
    return 0;
}

int bc_pg_in_txn(const bc_pg *pg)
{
    return pg->in_txn;
}

int bc_pg_commit(bc_pg *pg, bc_err *err)
{
    int rc = simple(pg, "COMMIT", err);

    pg->in_txn = 0;
    return rc;
}

void bc_pg_rollback(bc_pg *pg)
{
    if (bc_pg_alive(pg))
        PQclear(PQexec(pg->conn, "ROLLBACK"));
    pg->in_txn = 0;
}

const char *bc_pg_val(const PGresult *res, int row, const char *col)
{
    int c = PQfnumber(res, col);

    if (c < 0 || row >= PQntuples(res) || PQgetisnull(res, row, c))
        return NULL;
    return PQgetvalue(res, row, c);
}

long long bc_pg_int(const PGresult *res, int row, const char *col, long long def)
{
    const char *v = bc_pg_val(res, row, col);

    return v ? strtoll(v, NULL, 10) : def;
}

bc_pgpool *bc_pgpool_new(const char *dsn, const bc_pg_stmt *stmts, int n,
                         bc_err *err)
{
    bc_pgpool *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->all = calloc((size_t)n, sizeof *p->all);
    p->free = calloc((size_t)n, sizeof *p->free);
    if (!p->all || !p->free)
        goto fail;
    for (int i = 0; i < n; i++) {
        if (!(p->all[i] = bc_pg_connect(dsn, stmts, err)))
            goto fail;
        p->free[p->nfree++] = p->all[i];
        p->n++;
    }
    return p;
fail:
    bc_pgpool_free(p);
    return NULL;
}

void bc_pgpool_free(bc_pgpool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        bc_pg_free(p->all[i]);
    free(p->all);
    free(p->free);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

bc_pg *bc_pgpool_get(bc_pgpool *p)
{
    bc_pg *pg;

    pthread_mutex_lock(&p->mu);
    while (p->nfree == 0)
        pthread_cond_wait(&p->cv, &p->mu);
    pg = p->free[--p->nfree];
    pthread_mutex_unlock(&p->mu);
    return pg;
}

void bc_pgpool_put(bc_pgpool *p, bc_pg *pg)
{
    if (!pg)
        return;
    /* A connection handed back mid-transaction would leak its locks. */
    if (pg->in_txn)
        bc_pg_rollback(pg);
    pthread_mutex_lock(&p->mu);
    p->free[p->nfree++] = pg;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* What is buffered before it is sent: big enough that a send costs
 * little per row, small enough that the server starts early. */
#define COPY_PIECE (64 * 1024)

struct bc_pg_copy {
    bc_pg *pg;
    char *buf;
    size_t len, cap;
    int field;         /* fields written in the current row */
    int failed;        /* a send or an allocation failed */
    char why[200];
};

bc_pg_copy *bc_pg_copy_begin(bc_pg *pg, const char *copy_sql, bc_err *err)
{
    bc_pg_copy *c;
    PGresult *res;

    if (ensure(pg, err) < 0)
        return NULL;
    if (!(c = calloc(1, sizeof *c)) || !(c->buf = malloc(COPY_PIECE + 4096))) {
        free(c);
        bc_err_set(err, "copy: out of memory");
        return NULL;
    }
    c->pg = pg;
    c->cap = COPY_PIECE + 4096;
    res = PQexec(pg->conn, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        check(pg, res, "copy", err);
        free(c->buf);
        free(c);
        return NULL;
    }
    PQclear(res);
    return c;
}

static void copy_put(bc_pg_copy *c, const char *s, size_t n)
{
    if (c->failed)
        return;
    if (c->len + n > c->cap) {
        size_t cap = c->cap * 2 > c->len + n ? c->cap * 2 : c->len + n;
        char *b = realloc(c->buf, cap);

        if (!b) {
            c->failed = 1;
            snprintf(c->why, sizeof c->why, "copy: out of memory");
            return;
        }
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, s, n);
    c->len += n;
}

static void copy_send(bc_pg_copy *c)
{
    if (c->failed || c->len == 0)
        return;
    if (PQputCopyData(c->pg->conn, c->buf, (int)c->len) != 1) {
        c->failed = 1;
        snprintf(c->why, sizeof c->why, "copy: %s", PQerrorMessage(c->pg->conn));
    }
    c->len = 0;
}

/* s[0..n) escaped for a text-format field: runs without a special byte
 * are copied whole. */
static void copy_escaped(bc_pg_copy *c, const char *s, size_t n)
{
    static const char special[256] = { ['\\'] = '\\', ['\t'] = 't', ['\n'] = 'n', ['\r'] = 'r' };
    size_t run = 0;

    for (size_t i = 0; i < n; i++) {
        char e = special[(unsigned char)s[i]];

        if (!e)
            continue;
        copy_put(c, s + run, i - run);
        copy_put(c, (const char[]){ '\\', e }, 2);
        run = i + 1;
    }
    copy_put(c, s + run, n - run);
}

static void copy_sep(bc_pg_copy *c)
{
    if (c->field++)
        copy_put(c, "\t", 1);
}

void bc_pg_copy_str(bc_pg_copy *c, const char *s)
{
    copy_sep(c);
    if (s)
        copy_escaped(c, s, strlen(s));
    else
        copy_put(c, "\\N", 2);
}

void bc_pg_copy_int(bc_pg_copy *c, long long v)
{
    char n[24];

    copy_sep(c);
    copy_put(c, n, (size_t)snprintf(n, sizeof n, "%lld", v));
}

static int copy_json_piece(const char *s, size_t n, void *ud)
{
    copy_escaped(ud, s, n);
    return 0;
}

void bc_pg_copy_json(bc_pg_copy *c, const json_t *j)
{
    copy_sep(c);
    if (!j || json_is_null(j))
        copy_put(c, "\\N", 2);
    else if (json_dump_callback(j, copy_json_piece, c, JSON_COMPACT | JSON_ENCODE_ANY) < 0 &&
             !c->failed) {
        c->failed = 1;
        snprintf(c->why, sizeof c->why, "copy: a JSON value could not be written");
    }
}

void bc_pg_copy_row(bc_pg_copy *c)
{
    copy_put(c, "\n", 1);
    c->field = 0;
    if (c->len >= COPY_PIECE)
        copy_send(c);
}

void bc_pg_copy_abort(bc_pg_copy *c, const char *why)
{
    if (c->failed)
        return;
    c->failed = 1;
    snprintf(c->why, sizeof c->why, "%s", why);
}

int bc_pg_copy_end(bc_pg_copy *c, bc_err *err)
{
    PGconn *conn = c->pg->conn;
    PGresult *res = NULL;
    int ok;

    copy_send(c);
    /* Ending with an error makes the server refuse the whole COPY. */
    ok = PQputCopyEnd(conn, c->failed ? c->why : NULL) == 1 && !c->failed;
    if (c->failed)
        bc_err_set(err, "%s", c->why);
    else if (!ok)
        bc_err_set(err, "copy end: %s", PQerrorMessage(conn));
    else
        ok = (res = check(c->pg, PQgetResult(conn), "copy", err)) != NULL;
    PQclear(res);
    /* Drain: a COPY yields exactly one more NULL result. */
    while ((res = PQgetResult(conn)))
        PQclear(res);
    free(c->buf);
    free(c);
    return ok ? 0 : -1;
}
