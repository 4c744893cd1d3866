#include "bc_metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 512
#define MAX_BUCKETS 16

struct bc_metric {
    bc_metric_type type;
    char name[96];
    char help[160];
    char labels[160];
    double value;           /* counter / gauge; histogram sum */
    unsigned long count;    /* histogram */
    size_t nbuckets;
    double bounds[MAX_BUCKETS];
    unsigned long buckets[MAX_BUCKETS];
    pthread_mutex_t *mu;
};

struct bc_metrics {
    pthread_mutex_t mu;
    size_t n;
    bc_metric series[MAX_SERIES];
};

bc_metrics *bc_metrics_new(void)
{
    bc_metrics *m = calloc(1, sizeof *m);

    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void bc_metrics_free(bc_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

bc_metric *bc_metrics_get(bc_metrics *m, bc_metric_type type, const char *name,
                          const char *help, const char *labels,
                          const double *buckets, size_t nbuckets)
{
    bc_metric *s = NULL;

    if (!m)
        return NULL;
    if (!labels)
        labels = "";
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->series[i].name, name) && !strcmp(m->series[i].labels, labels)) {
            s = &m->series[i];
            goto out;
        }
    if (m->n == MAX_SERIES)
        goto out;
    s = &m->series[m->n++];
    s->type = type;
    s->mu = &m->mu;
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->help, sizeof s->help, "%s", help ? help : "");
    snprintf(s->labels, sizeof s->labels, "%s", labels);
    if (type == BC_HISTOGRAM) {
        s->nbuckets = nbuckets < MAX_BUCKETS ? nbuckets : MAX_BUCKETS;
        memcpy(s->bounds, buckets, s->nbuckets * sizeof *buckets);
    }
out:
    pthread_mutex_unlock(&m->mu);
    return s;
}

void bc_metric_add(bc_metric *s, double v)
{
    if (!s)
        return;
    pthread_mutex_lock(s->mu);
    s->value += v;
    pthread_mutex_unlock(s->mu);
}

void bc_metric_set(bc_metric *s, double v)
{
    if (!s)
        return;
    pthread_mutex_lock(s->mu);
    s->value = v;
    pthread_mutex_unlock(s->mu);
}

void bc_metric_observe(bc_metric *s, double v)
{
    if (!s)
        return;
    pthread_mutex_lock(s->mu);
    s->value += v;
    s->count++;
    for (size_t i = 0; i < s->nbuckets; i++)
        if (v <= s->bounds[i])
            s->buckets[i]++;
    pthread_mutex_unlock(s->mu);
}

void bc_metrics_inc(bc_metrics *m, const char *name, const char *help,
                    const char *labels, double v)
{
    bc_metric_add(bc_metrics_get(m, BC_COUNTER, name, help, labels, NULL, 0), v);
}

static const char *type_name(bc_metric_type t)
{
    return t == BC_COUNTER ? "counter" : t == BC_GAUGE ? "gauge" : "histogram";
}

static void labels_with(char *out, size_t cap, const char *labels,
                        const char *extra)
{
    if (*labels && extra)
        snprintf(out, cap, "{%s,%s}", labels, extra);
    else if (*labels || extra)
        snprintf(out, cap, "{%s}", *labels ? labels : extra);
    else
        out[0] = '\0';
}

static void render_series(FILE *f, const bc_metric *s)
{
    char lb[256], le[48];

    if (s->type != BC_HISTOGRAM) {
        labels_with(lb, sizeof lb, s->labels, NULL);
        fprintf(f, "%s%s %.17g\n", s->name, lb, s->value);
        return;
    }
    for (size_t b = 0; b < s->nbuckets; b++) {
        snprintf(le, sizeof le, "le=\"%g\"", s->bounds[b]);
        labels_with(lb, sizeof lb, s->labels, le);
        fprintf(f, "%s_bucket%s %lu\n", s->name, lb, s->buckets[b]);
    }
    labels_with(lb, sizeof lb, s->labels, "le=\"+Inf\"");
    fprintf(f, "%s_bucket%s %lu\n", s->name, lb, s->count);
    labels_with(lb, sizeof lb, s->labels, NULL);
    fprintf(f, "%s_sum%s %.17g\n%s_count%s %lu\n", s->name, lb, s->value,
            s->name, lb, s->count);
}

char *bc_metrics_render(bc_metrics *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return NULL;
    pthread_mutex_lock(&m->mu);
    /* The text format wants each metric's series in one group, so render
     * every name once, at its first series, with all series of that name. */
    for (size_t i = 0; i < m->n; i++) {
        const bc_metric *s = &m->series[i];
        int seen = 0;

        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcmp(m->series[j].name, s->name);
        if (seen)
            continue;
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help,
                s->name, type_name(s->type));
        for (size_t j = i; j < m->n; j++)
            if (!strcmp(m->series[j].name, s->name))
                render_series(f, &m->series[j]);
    }
    pthread_mutex_unlock(&m->mu);
    fclose(f);
    return buf;
}
