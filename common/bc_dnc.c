#include "bc_dnc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_csv.h"

const bc_pg_stmt bc_dnc_stmts[] = {
    /* A number listed already keeps its first reason and time. */
    { "dnc_add",
      "WITH i AS (INSERT INTO dnc (tenant_id, number, reason)"
      "           SELECT $1, n, $3 FROM unnest($2::text[]) AS n"
      "           ON CONFLICT DO NOTHING RETURNING 1)"
      " SELECT count(*) AS added FROM i" },
    { "dnc_hits",
      "SELECT number FROM dnc WHERE tenant_id = $1 AND number = ANY($2::text[])" },
    { 0, 0 },
};

char *bc_dnc_array(json_t *arr, const char *field)
{
    char *buf = NULL;
    size_t len = 0, i, n = 0;
    FILE *f = open_memstream(&buf, &len);
    json_t *x;

    if (!f)
        return NULL;
    fputc('{', f);
    json_array_foreach(arr, i, x) {
        const char *s = json_string_value(field ? json_object_get(x, field) : x);

        if (s)
            fprintf(f, "%s%s", n++ ? "," : "", s);
    }
    fputc('}', f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int bc_dnc_add(bc_pg *pg, const char *tenant, const char *array, const char *reason,
               long long *added, bc_err *err)
{
    const char *p[] = { tenant, array, reason };
    PGresult *res = bc_pg_exec(pg, "dnc_add", 3, p, err);

    if (!res) {
        bc_err_wrap(err, "add to the DNC list of tenant '%s'", tenant);
        return -1;
    }
    *added = bc_pg_int(res, 0, "added", 0);
    PQclear(res);
    return 0;
}

/* One chunk: the header, then the records in [from, to). */
static int import_chunk(bc_pg *pg, const char *tenant, const char *head, size_t hlen,
                        const char *from, size_t n, long first_line, const char *reason,
                        long long *rows, long long *added, bc_err *err)
{
    char *doc = malloc(hlen + n + 1), *arr = NULL;
    json_t *recips = NULL;
    long long got = 0;
    int rc = -1;

    if (!doc) {
        bc_err_set(err, "out of memory");
        return -1;
    }
    memcpy(doc, head, hlen);
    memcpy(doc + hlen, from, n);
    if (!(recips = bc_csv_recipients(doc, hlen + n, BC_DNC_CHUNK + 1, hlen + n + 1, err))) {
        /* Its "line N" counts from this chunk's header. */
        bc_err_wrap(err, "in the records from line %ld", first_line);
        goto out;
    }
    if (!(arr = bc_dnc_array(recips, "to_number"))) {
        bc_err_set(err, "out of memory");
        goto out;
    }
    if (bc_dnc_add(pg, tenant, arr, reason, &got, err) < 0)
        goto out;
    *rows += (long long)json_array_size(recips);
    *added += got;
    rc = 0;
out:
    json_decref(recips);
    free(arr);
    free(doc);
    return rc;
}

int bc_dnc_import_csv(bc_pg *pg, const bc_audit_actor *who, const char *buf, size_t len,
                      const char *reason, long long *rows, long long *added, bc_err *err)
{
    const char *tenant = who->tenant_id;
    const char *end = buf + len, *nl = memchr(buf, '\n', len), *p;
    size_t hlen;
    long line = 2;

    *rows = *added = 0;
    if (!nl) {
        bc_err_set(err, "no records: the file is a header line at most");
        return -1;
    }
    hlen = (size_t)(nl - buf) + 1;
    if (bc_pg_begin(pg, err) < 0)
        return -1;
    for (p = nl + 1; p < end;) {
        const char *q = p;
        long n = 0;

        while (q < end && n < BC_DNC_CHUNK) {
            const char *e = memchr(q, '\n', (size_t)(end - q));
            q = e ? e + 1 : end;
            n++;
        }
        if (import_chunk(pg, tenant, buf, hlen, p, (size_t)(q - p), line, reason, rows, added,
                         err) < 0) {
            bc_pg_rollback(pg);
            return -1;
        }
        line += n;
        p = q;
    }
    if (bc_audit_write(pg, who, "dnc.import", NULL,
                       json_pack("{s:I,s:I,s:s?}", "numbers", (json_int_t)*rows, "added",
                                 (json_int_t)*added, "reason", reason), err) < 0) {
        bc_pg_rollback(pg);
        return -1;
    }
    return bc_pg_commit(pg, err);
}
