/* Tests common/bc_metrics.c: Prometheus text, one group per metric. */
#include <stdlib.h>
#include <string.h>

#include "bc_metrics.h"
#include "bc_test.h"

static void test_render_groups_series(void **state)
{
    (void)state;
    bc_metrics *m = bc_metrics_new();
    static const double b[] = { 0.1, 1 };
    char *text, *first, *second;

    bc_metrics_inc(m, "reqs_total", "Requests", "code=\"200\"", 2);
    bc_metric_set(bc_metrics_get(m, BC_GAUGE, "live", "Live", NULL, NULL, 0), 5);
    bc_metrics_inc(m, "reqs_total", "Requests", "code=\"500\"", 1);
    bc_metric_observe(bc_metrics_get(m, BC_HISTOGRAM, "lat_seconds", "Latency", NULL, b, 2), 0.5);
    text = bc_metrics_render(m);
    assert_non_null(text);
    assert_non_null(strstr(text, "# TYPE reqs_total counter\n"));
    first = strstr(text, "reqs_total{code=\"200\"} 2\n");
    second = strstr(text, "reqs_total{code=\"500\"} 1\n");
    assert_non_null(first);
    assert_non_null(second);
    /* Both series of one name sit together, before the next metric. */
    assert_true(second < strstr(text, "# TYPE live gauge"));
    assert_non_null(strstr(text, "live 5\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.1\"} 0\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"1\"} 1\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(text, "lat_seconds_count 1\n"));
    free(text);
    bc_metrics_free(m);
}

BC_TEST_MAIN(cmocka_unit_test(test_render_groups_series))
