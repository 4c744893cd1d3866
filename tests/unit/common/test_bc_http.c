/* Tests common/bc_http.c's graceful stop on a real server on loopback: once
 * bc_http_stop has begun, no handler runs (a request gets 503), answers
 * already promised are still given, and the daemon stops without a
 * suspended connection (which libmicrohttpd answers by aborting). */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bc_http.h"
#include "bc_test.h"

typedef struct {
    atomic_int handled;
    bc_http_later *_Atomic held;   /* the first request's promised answer */
} fixture;

/* Defers the first request's answer until the test gives it; answers the
 * others at once. */
static void handler(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    fixture *f = ud;

    bc_http_set_route(req, "/x");
    if (atomic_fetch_add(&f->handled, 1) == 0) {
        atomic_store(&f->held, bc_http_defer(req));
        return;
    }
    bc_http_json(resp, 200, json_pack("{s:s}", "ok", "now"));
}

static long get(int port, long timeout_ms)
{
    char url[64];
    long code = 0;
    CURL *c = curl_easy_init();

    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fwrite);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, stderr);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

typedef struct {
    int port;
    long code;
} first_req;

static void *first(void *p)
{
    first_req *r = p;

    r->code = get(r->port, 20000);
    return NULL;
}

static void *stopper(void *p)
{
    bc_http_stop(p);
    return NULL;
}

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000L }, NULL);
}

static void test_stop_runs_no_new_handler_and_keeps_promises(void **state)
{
    fixture f = { 0 };
    bc_http_opts o = { .bind = "127.0.0.1", .max_body = 1024, .threads = 2,
                       .handler = handler, .ud = &f };
    bc_err err = { "" };
    bc_http *h = bc_http_start(&o, &err);
    pthread_t t1, ts;
    first_req r1;
    long late = 0;

    (void)state;
    assert_non_null(h);
    r1.port = bc_http_port(h);
    assert_int_equal(pthread_create(&t1, NULL, first, &r1), 0);
    while (!atomic_load(&f.held))
        sleep_ms(5);
    assert_int_equal(get(r1.port, 5000), 200);   /* served before the stop */
    assert_int_equal(pthread_create(&ts, NULL, stopper, h), 0);
    /* The stop waits for the promised answer; meanwhile a new request is
     * refused, not handled. */
    for (int i = 0; i < 200 && late != 503; i++) {
        late = get(r1.port, 2000);
        if (late != 503)
            sleep_ms(10);
    }
    assert_int_equal(late, 503);
    /* Requests before the stop began were handled; none after it is. */
    int handled = atomic_load(&f.handled);
    assert_int_equal(get(r1.port, 2000), 503);
    assert_int_equal(atomic_load(&f.handled), handled);
    bc_http_answer(atomic_load(&f.held), 200, json_pack("{s:s}", "ok", "later"));
    pthread_join(t1, NULL);
    assert_int_equal(r1.code, 200);
    pthread_join(ts, NULL);   /* and the daemon stopped, the process alive */
}

/* bc_http_drop_later: the handler's reference is held while the response
 * goes out and dropped once the request has completed. */
static json_t *dropped;
static atomic_int refs_in_handler;

/* jansson counts references with atomic operations on another thread's
 * side, so they are read here atomically too. */
static size_t refs(void)
{
    return __atomic_load_n(&dropped->refcount, __ATOMIC_ACQUIRE);
}

static void dropping_handler(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    (void)ud;
    bc_http_set_route(req, "/x");
    bc_http_drop_later(req, json_incref(dropped));
    atomic_store(&refs_in_handler, (int)refs());
    bc_http_json(resp, 200, json_pack("{s:s}", "ok", "now"));
}

static void test_drop_later_drops_after_the_response(void **state)
{
    bc_http_opts o = { .bind = "127.0.0.1", .max_body = 1024, .threads = 2,
                       .handler = dropping_handler };
    bc_err err = { "" };
    bc_http *h;

    (void)state;
    dropped = json_pack("{s:[i,i,i]}", "recipients", 1, 2, 3);
    assert_non_null(h = bc_http_start(&o, &err));
    assert_int_equal(get(bc_http_port(h), 5000), 200);
    assert_int_equal(atomic_load(&refs_in_handler), 2);   /* ours and the request's */
    for (int i = 0; i < 400 && refs() != 1; i++)
        sleep_ms(5);
    assert_int_equal(refs(), 1);
    bc_http_stop(h);
    json_decref(dropped);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_runs_no_new_handler_and_keeps_promises),
        cmocka_unit_test(test_drop_later_drops_after_the_response),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
