/* bc_metrics: counters, gauges and histograms, rendered as Prometheus text. */
#ifndef BC_METRICS_H
#define BC_METRICS_H

#include <stddef.h>

typedef struct bc_metrics bc_metrics;
typedef struct bc_metric bc_metric;

typedef enum { BC_COUNTER, BC_GAUGE, BC_HISTOGRAM } bc_metric_type;

bc_metrics *bc_metrics_new(void);
void bc_metrics_free(bc_metrics *m);

/* Returns the series name{labels}, creating it on first use. labels is
 * Prometheus label text without braces ('route="/x",code="201"') or NULL; the
 * caller keeps label values bounded. Buckets (upper bounds, ascending,
 * nbuckets of them) are used for histograms only. The pointer stays valid
 * until bc_metrics_free. Thread-safe. NULL if the registry is full. */
bc_metric *bc_metrics_get(bc_metrics *m, bc_metric_type type, const char *name,
                          const char *help, const char *labels,
                          const double *buckets, size_t nbuckets);

void bc_metric_add(bc_metric *s, double v);      /* counter / gauge */
void bc_metric_set(bc_metric *s, double v);      /* gauge */
void bc_metric_observe(bc_metric *s, double v);  /* histogram */

/* Renders every series; returns a new string, caller frees it. */
char *bc_metrics_render(bc_metrics *m);

/* Shorthand: add v to a counter series looked up by name and labels. */
void bc_metrics_inc(bc_metrics *m, const char *name, const char *help,
                    const char *labels, double v);

#endif
