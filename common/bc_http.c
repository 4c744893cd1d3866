#include "bc_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* A connection from accept to close (libmicrohttpd's socket context), for
 * the request deadline: since_ms is when its current request began to be
 * awaited (its opening, or the end of the previous answer), 0 while none
 * is awaited (a whole request being handled or answered). */
typedef struct bc_http_conn {
    struct bc_http_conn *prev, *next;
    int fd;
    long long since_ms;
    int cut;                  /* shut down by bc_http_tick */
} bc_http_conn;

struct bc_http {
    struct MHD_Daemon *d;
    bc_http_opts o;
    int port;
    pthread_mutex_t mu;
    int deferred;             /* answers promised and not yet given */
    int handling;             /* requests inside a handler right now */
    int stopping;             /* bc_http_stop began: no new handler runs */
    bc_http_conn *conns;      /* every open connection (under mu) */
    long long next_sweep;     /* bc_http_tick's thread only */
};

struct bc_http_req {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    char *body;
    size_t len;
    int too_large;            /* over max_body: the body is dropped, 413 owed */
    int refused;              /* that 413 is queued */
    struct timespec start;
    char route[64];
    /* The matched route's "{name}" segments, and the methods of routes
     * whose path matched under another method ("GET, POST"). */
    struct { const char *name; size_t nlen; char val[BC_HTTP_PARAM_MAX]; } param[4];
    int nparam;
    char allow[64];
    /* Answering later (bc_http_defer): guarded by mu, since the answer
     * may come from another thread before the connection is suspended. */
    bc_http *h;
    pthread_mutex_t mu;
    int deferred, suspended, answered;
    bc_http_resp later;
    json_t *drop[4];          /* bc_http_drop_later's, dropped when completed */
    int ndrop;
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const double latency_buckets[] = { 0.001, 0.005, 0.01, 0.025, 0.05,
                                          0.1, 0.25, 0.5, 1, 2.5, 5 };

const char *bc_http_method(const bc_http_req *r) { return r->method; }
const char *bc_http_path(const bc_http_req *r) { return r->path; }

const char *bc_http_header(const bc_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *bc_http_query(const bc_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int bc_http_query_long(const bc_http_req *r, const char *name, long min, long max,
                       long def, long *out)
{
    const char *v = bc_http_query(r, name);
    char *end;
    long n;

    *out = def;
    if (!v)
        return 0;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

const char *bc_http_body(const bc_http_req *r, size_t *len)
{
    if (len)
        *len = r->len;
    return r->body ? r->body : "";
}

void bc_http_drop_later(const bc_http_req *r, json_t *j)
{
    bc_http_req *w = (bc_http_req *)r;   /* the handler's view is const; the request is ours */

    if (!j)
        return;
    if (w->ndrop == (int)(sizeof w->drop / sizeof w->drop[0]))
        json_decref(j);
    else
        w->drop[w->ndrop++] = j;
}

const char *bc_http_client_ip(const bc_http_req *r, char *buf, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    snprintf(buf, cap, "unknown");
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)ci->client_addr)->sin_addr,
                  buf, (socklen_t)cap);
    else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ci->client_addr)->sin6_addr,
                  buf, (socklen_t)cap);
    return buf;
}

void bc_http_set_route(const bc_http_req *r, const char *route)
{
    /* The request is ours; handlers only get a const view of it. */
    snprintf(((bc_http_req *)r)->route, sizeof r->route, "%s", route);
}

const char *bc_http_param(const bc_http_req *r, const char *name)
{
    for (int i = 0; i < r->nparam; i++)
        if (strlen(name) == r->param[i].nlen && !strncmp(r->param[i].name, name, r->param[i].nlen))
            return r->param[i].val;
    return NULL;
}

const char *bc_http_allow(const bc_http_req *r)
{
    return r->allow[0] ? r->allow : NULL;
}

void bc_http_json(bc_http_resp *resp, int status, json_t *body)
{
    free(resp->body);
    resp->status = status;
    resp->body = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    resp->len = resp->body ? strlen(resp->body) : 0;
    resp->content_type = "application/json";
    json_decref(body);
}

void bc_http_add_header(bc_http_resp *resp, const char *name, const char *val)
{
    if (resp->nheaders >= 8)
        return;
    snprintf(resp->hname[resp->nheaders], sizeof resp->hname[0], "%s", name);
    snprintf(resp->hval[resp->nheaders], sizeof resp->hval[0], "%s", val);
    resp->nheaders++;
}

static enum MHD_Result send_resp(struct MHD_Connection *c, bc_http_resp *resp)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (!resp->body) {
        resp->body = strdup("");
        resp->len = 0;
    }
    r = MHD_create_response_from_buffer(resp->len, resp->body,
                                        MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(resp->body);
        return MHD_NO;
    }
    resp->body = NULL;
    MHD_add_response_header(r, "Content-Type",
                            resp->content_type ? resp->content_type : "application/json");
    for (int i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(r, resp->hname[i], resp->hval[i]);
    ret = MHD_queue_response(c, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

void bc_http_error(bc_http_resp *resp, int status, const char *code, const char *msg)
{
    bc_http_json(resp, status, json_pack("{s:s,s:s}", "error", msg, "code", code));
}

static void builtin(bc_http *h, const bc_http_req *r, bc_http_resp *resp)
{
    const char *p = r->path;

    if (!strcmp(p, "/healthz")) {
        bc_http_set_route(r, "/healthz");
        bc_http_json(resp, 200, json_pack("{s:s}", "status", "ok"));
    } else if (!strcmp(p, "/readyz")) {
        int ok = !h->o.ready || h->o.ready(h->o.ud);

        bc_http_set_route(r, "/readyz");
        bc_http_json(resp, ok ? 200 : 503,
                     json_pack("{s:s}", "status", ok ? "ready" : "not ready"));
    } else if (!strcmp(p, "/metrics") && h->o.metrics) {
        bc_http_set_route(r, "/metrics");
        resp->status = 200;
        resp->body = bc_metrics_render(h->o.metrics);
        resp->len = resp->body ? strlen(resp->body) : 0;
        resp->content_type = "text/plain; version=0.0.4";
    }
}

/* ---- the route table ------------------------------------------------------ */

void bc_http_miss(const bc_http_req *r, bc_http_resp *resp, bc_http_error_fn err,
                  const char *not_found)
{
    char msg[80] = "use ";
    size_t n = strlen(msg);

    if (!r->allow[0]) {
        err(resp, 404, "not_found", not_found);
        return;
    }
    /* "GET, POST" reads "use GET or POST". */
    for (const char *a = r->allow; *a && n + 4 < sizeof msg; a++) {
        if (a[0] == ',' && a[1] == ' ') {
            n += (size_t)snprintf(msg + n, sizeof msg - n, " or ");
            a++;
        } else {
            msg[n++] = *a;
            msg[n] = '\0';
        }
    }
    err(resp, 405, "method_not_allowed", msg);
}

/* 1 if path (n bytes) fits pattern, with r's params set to its "{name}"
 * segments. */
static int match(const char *pattern, const char *path, size_t n, bc_http_req *r)
{
    const char *p = pattern, *u = path, *end = path + n;

    r->nparam = 0;
    while (*p && u < end) {
        if (*p != '{') {
            if (*p++ != *u++)
                return 0;
            continue;
        }
        const char *close = strchr(p, '}'), *seg = u;
        size_t len;

        while (u < end && *u != '/')
            u++;
        len = (size_t)(u - seg);
        if (!close || !len || len >= BC_HTTP_PARAM_MAX ||
            r->nparam >= (int)(sizeof r->param / sizeof r->param[0]))
            return 0;
        r->param[r->nparam].name = p + 1;
        r->param[r->nparam].nlen = (size_t)(close - p - 1);
        memcpy(r->param[r->nparam].val, seg, len);
        r->param[r->nparam++].val[len] = '\0';
        p = close + 1;
    }
    return !*p && u == end;
}

/* The label of a route: its own, else its pattern with ":name" for
 * "{name}" (the form the metrics have always had). */
static void route_label(const bc_http_route *rt, bc_http_req *r)
{
    size_t n = 0;

    if (rt->label) {
        bc_http_set_route(r, rt->label);
        return;
    }
    for (const char *p = rt->pattern; *p && n + 1 < sizeof r->route; p++) {
        if (*p == '{')
            r->route[n++] = ':';
        else if (*p != '}')
            r->route[n++] = *p;
    }
    r->route[n] = '\0';
}

static int under(const char *prefix, const char *path)
{
    size_t n = prefix ? strlen(prefix) : 0;

    return n && !strncmp(path, prefix, n) &&
           (prefix[n - 1] == '/' || !path[n] || path[n] == '/');
}

static void allow_add(bc_http_req *r, const char *method)
{
    size_t n = strlen(r->allow), m = strlen(method);

    for (const char *a = r->allow; (a = strstr(a, method)); a += m)
        if ((a == r->allow || a[-1] == ' ') && (!a[m] || a[m] == ','))
            return;   /* listed already */
    if (n + m + 3 <= sizeof r->allow)
        snprintf(r->allow + n, sizeof r->allow - n, "%s%s", n ? ", " : "", method);
}

static void serve(const bc_http_surface *s, const bc_http_route *rt, bc_http_req *r,
                  bc_http_resp *resp)
{
    if (s->serve)
        s->serve(s->ud, s->arg, rt, r, resp);
    else if (rt)
        rt->fn(s->ud, r, resp);
    else
        bc_http_miss(r, resp, bc_http_error, "not found");
}

static void answer_with(bc_http_later *r, bc_http_resp *resp);

/* A route that waits (BC_HTTP_WAITS), run on a thread of its own. */
typedef struct waiting {
    const bc_http_surface *s;
    const bc_http_route *rt;
    bc_http_req *r;
} waiting;

static void *waiting_main(void *arg)
{
    waiting *w = arg;
    bc_http_resp resp = { .status = 404 };

    serve(w->s, w->rt, w->r, &resp);
    answer_with(w->r, &resp);
    free(w);
    return NULL;
}

static void undefer(bc_http_req *r);

/* Defers r and runs its route on a new thread: 1, or 0 if no thread could
 * be had (the caller runs it here). */
static int serve_aside(const bc_http_surface *s, const bc_http_route *rt, bc_http_req *r)
{
    waiting *w = malloc(sizeof *w);
    pthread_attr_t attr;
    pthread_t t;
    int rc;

    if (!w)
        return 0;
    *w = (waiting){ s, rt, r };
    bc_http_defer(r);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &attr, waiting_main, w);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        return 1;
    free(w);
    undefer(r);
    return 0;
}

/* 1 if the path (n bytes) is a literal route's, one without "{name}". */
static int literal_route(const bc_http *h, const char *path, size_t n)
{
    for (const bc_http_surface *s = h->o.surfaces; s && s->routes; s++)
        for (const bc_http_route *rt = s->routes; rt->method; rt++)
            if (!strchr(rt->pattern, '{') && strlen(rt->pattern) == n &&
                !strncmp(rt->pattern, path, n))
                return 1;
    return 0;
}

/* Finds the request's route in the table and runs it; else answers the
 * surface whose route's path or prefix it is (405 or 404), else leaves the
 * request to the catch-all handler. A literal route's path is that route's
 * resource alone: no pattern takes it, so GET /v1/calls/batch is a 405
 * naming POST, not a call whose id is "batch". */
static void dispatch(bc_http *h, bc_http_req *r, bc_http_resp *resp)
{
    const bc_http_surface *owner = NULL;
    size_t n = strlen(r->path);
    int literal;

    if (n > 1 && r->path[n - 1] == '/')
        n--;
    literal = literal_route(h, r->path, n);
    for (const bc_http_surface *s = h->o.surfaces; s && s->routes; s++)
        for (const bc_http_route *rt = s->routes; rt->method; rt++) {
            if ((literal && strchr(rt->pattern, '{')) || !match(rt->pattern, r->path, n, r))
                continue;
            if (!strcmp(rt->method, r->method)) {
                r->allow[0] = '\0';
                route_label(rt, r);
                if (!(rt->flags & BC_HTTP_WAITS) || !serve_aside(s, rt, r))
                    serve(s, rt, r, resp);
                return;
            }
            allow_add(r, rt->method);
            if (!owner) {
                owner = s;
                route_label(rt, r);
            }
        }
    r->nparam = 0;
    for (const bc_http_surface *s = h->o.surfaces; s && s->routes && !owner; s++)
        if (under(s->prefix, r->path))
            owner = s;
    if (!owner) {
        if (h->o.handler)
            h->o.handler(h->o.ud, r, resp);
        return;
    }
    serve(owner, NULL, r, resp);
    if (resp->status == 405 && r->allow[0])
        bc_http_add_header(resp, "Allow", r->allow);
}

/* The method as a metric label: the ones HTTP defines, else "other", so a
 * client cannot mint series (the registry is finite). */
static const char *method_label(const char *m)
{
    static const char *const known[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                         "OPTIONS" };

    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(m, known[i]))
            return known[i];
    return "other";
}

static void record(bc_http *h, const bc_http_req *r, int status)
{
    char labels[160];
    struct timespec now;
    double secs;

    if (!h->o.metrics)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    secs = (double)(now.tv_sec - r->start.tv_sec) +
           (double)(now.tv_nsec - r->start.tv_nsec) / 1e9;
    snprintf(labels, sizeof labels, "method=\"%s\",route=\"%s\",code=\"%d\"",
             method_label(r->method), r->route[0] ? r->route : "other", status);
    bc_metrics_inc(h->o.metrics, "http_requests_total",
                   "HTTP requests served, by route and status", labels, 1);
    snprintf(labels, sizeof labels, "route=\"%s\"", r->route[0] ? r->route : "other");
    bc_metric_observe(bc_metrics_get(h->o.metrics, BC_HISTOGRAM,
                                     "http_request_duration_seconds",
                                     "HTTP request latency", labels,
                                     latency_buckets, 11),
                      secs);
}

/* Sends a deferred request's answer (r->mu held). */
static enum MHD_Result answer_now(bc_http *h, bc_http_req *r)
{
    enum MHD_Result ret;

    record(h, r, r->later.status);
    ret = send_resp(r->conn, &r->later);
    return ret;
}

/* Starts (since_ms = now) or stops (0) the deadline of c's request. */
static void await_request(bc_http *h, struct MHD_Connection *c, long long since_ms)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    bc_http_conn *k = ci ? ci->socket_context : NULL;

    if (!k)
        return;
    pthread_mutex_lock(&h->mu);
    k->since_ms = since_ms;
    pthread_mutex_unlock(&h->mu);
}

/* Answers 413 to a request whose body is over the cap. */
static enum MHD_Result refuse(bc_http *h, bc_http_req *r)
{
    bc_http_resp resp = { .status = 413 };

    await_request(h, r->conn, 0);
    r->refused = 1;
    bc_http_error(&resp, 413, "payload_too_large", "request body too large");
    record(h, r, 413);
    return send_resp(r->conn, &resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    bc_http *h = cls;
    bc_http_req *r = *con_cls;
    bc_http_resp resp = { .status = 404 };
    enum MHD_Result ret;

    (void)version;
    if (!r) {
        const char *cl;

        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        r->conn = c;
        r->h = h;
        pthread_mutex_init(&r->mu, NULL);
        r->method = method;
        r->path = url;
        clock_gettime(CLOCK_MONOTONIC, &r->start);
        *con_cls = r;
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > h->o.max_body)
            r->too_large = 1;
        if (!r->too_large)
            return MHD_YES;
        /* Refuse before reading a byte of an announced oversized body. */
        return refuse(h, r);
    }
    if (*upload_size) {
        size_t n = *upload_size;

        *upload_size = 0;
        if (r->too_large)
            return MHD_YES;
        if (r->len + n > h->o.max_body) {
            /* A body that grows past the cap as it comes (chunked): MHD
             * takes an answer only before the body or after all of it, so
             * the rest is read and dropped, and the 413 goes at its end
             * (a body that never ends meets the request deadline). */
            r->too_large = 1;
            free(r->body);
            r->body = NULL;
            r->len = 0;
            return MHD_YES;
        }
        char *nb = realloc(r->body, r->len + n + 1);
        if (!nb)
            return MHD_NO;
        r->body = nb;
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        r->body[r->len] = '\0';
        return MHD_YES;
    }
    if (r->refused)
        return MHD_YES;   /* 413 already queued */
    if (r->too_large)
        return refuse(h, r);
    if (r->deferred) {
        /* Called again after bc_http_answer resumed the connection. */
        pthread_mutex_lock(&r->mu);
        ret = r->answered ? answer_now(h, r) : MHD_YES;
        pthread_mutex_unlock(&r->mu);
        return ret;
    }
    await_request(h, c, 0);   /* whole: the handler's time is not the client's */
    /* Once stopping, no handler starts: one could defer its answer after
     * bc_http_stop saw none promised, and MHD_stop_daemon aborts the
     * process on a suspended connection. */
    pthread_mutex_lock(&h->mu);
    if (!h->stopping)
        h->handling++;
    else
        resp.status = 503;
    pthread_mutex_unlock(&h->mu);
    if (resp.status == 503) {
        bc_http_error(&resp, 503, "unavailable", "shutting down");
        record(h, r, 503);
        return send_resp(c, &resp);
    }
    builtin(h, r, &resp);
    if (!r->route[0])
        dispatch(h, r, &resp);
    pthread_mutex_lock(&h->mu);
    h->handling--;
    pthread_mutex_unlock(&h->mu);
    if (r->deferred) {
        free(resp.body);
        pthread_mutex_lock(&r->mu);
        if (r->answered) {
            ret = answer_now(h, r);
        } else {
            /* This thread goes back to serving others until the answer. */
            MHD_suspend_connection(c);
            r->suspended = 1;
            ret = MHD_YES;
        }
        pthread_mutex_unlock(&r->mu);
        return ret;
    }
    if (resp.status == 404 && !resp.body)
        bc_http_error(&resp, 404, "not_found", "not found");
    record(h, r, resp.status);
    ret = send_resp(c, &resp);
    return ret;
}

bc_http_later *bc_http_defer(const bc_http_req *req)
{
    bc_http_req *r = (bc_http_req *)req;

    pthread_mutex_lock(&r->h->mu);
    r->h->deferred++;
    pthread_mutex_unlock(&r->h->mu);
    r->deferred = 1;
    return r;
}

/* Takes back a bc_http_defer that nothing will answer: the request is
 * answered on its own thread after all. */
static void undefer(bc_http_req *r)
{
    pthread_mutex_lock(&r->h->mu);
    r->h->deferred--;
    pthread_mutex_unlock(&r->h->mu);
    r->deferred = 0;
}

/* Answers a deferred request with resp, whose body becomes the request's. */
static void answer_with(bc_http_later *r, bc_http_resp *resp)
{
    bc_http *h = r->h;   /* r may be freed the moment r->mu is released */

    pthread_mutex_lock(&r->mu);
    free(r->later.body);
    r->later = *resp;
    resp->body = NULL;
    r->answered = 1;
    if (r->suspended) {
        r->suspended = 0;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&h->mu);
    h->deferred--;
    pthread_mutex_unlock(&h->mu);
}

void bc_http_answer(bc_http_later *r, int status, json_t *body)
{
    bc_http_resp resp = { 0 };

    bc_http_json(&resp, status, body);
    answer_with(r, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    bc_http_req *r = *con_cls;

    (void)toe;
    /* Kept alive, the connection awaits its next request from now. */
    await_request(cls, c, now_ms());
    if (r) {
        for (int i = 0; i < r->ndrop; i++)
            json_decref(r->drop[i]);
        free(r->body);
        free(r->later.body);
        pthread_mutex_destroy(&r->mu);
        free(r);
    }
    *con_cls = NULL;
}

/* Tracks every connection for bc_http_tick. libmicrohttpd says CLOSED
 * before it closes the socket, so under mu a listed fd is still this
 * connection's. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    bc_http *h = cls;
    bc_http_conn *k = *socket_context;
    const union MHD_ConnectionInfo *ci;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(k = calloc(1, sizeof *k)))
            return;   /* untracked: only the idle timeout applies */
        k->fd = ci->connect_fd;
        k->since_ms = now_ms();
        pthread_mutex_lock(&h->mu);
        k->next = h->conns;
        if (h->conns)
            h->conns->prev = k;
        h->conns = k;
        pthread_mutex_unlock(&h->mu);
        *socket_context = k;
    } else if (k) {
        pthread_mutex_lock(&h->mu);
        if (k->prev)
            k->prev->next = k->next;
        else
            h->conns = k->next;
        if (k->next)
            k->next->prev = k->prev;
        pthread_mutex_unlock(&h->mu);
        free(k);
        *socket_context = NULL;
    }
}

void bc_http_tick(bc_http *h)
{
    long long now = now_ms(), limit;
    int cut = 0;

    if (!h || !h->o.request_timeout_s || now < h->next_sweep)
        return;
    h->next_sweep = now + 100;
    limit = (long long)h->o.request_timeout_s * 1000;
    pthread_mutex_lock(&h->mu);
    for (bc_http_conn *k = h->conns; k; k = k->next)
        if (k->since_ms && !k->cut && now - k->since_ms >= limit) {
            /* The server thread sees the stream end and closes it; an idle
             * timeout would not, as every byte trickled resets it. */
            shutdown(k->fd, SHUT_RDWR);
            k->cut = 1;
            cut++;
        }
    pthread_mutex_unlock(&h->mu);
    if (cut && h->o.metrics)
        bc_metrics_inc(h->o.metrics, "http_request_deadline_closed_total",
                       "Connections closed because a request did not arrive whole in time",
                       NULL, cut);
}

bc_http *bc_http_start(const bc_http_opts *opts, bc_err *err)
{
    bc_http *h = calloc(1, sizeof *h);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    const union MHD_DaemonInfo *info;

    if (!h) {
        bc_err_set(err, "http: out of memory");
        return NULL;
    }
    h->o = *opts;
    pthread_mutex_init(&h->mu, NULL);
    if (!h->o.max_body)
        h->o.max_body = 1 << 20;
    sa.sin_port = htons((uint16_t)opts->port);
    if (inet_pton(AF_INET, opts->bind ? opts->bind : "127.0.0.1", &sa.sin_addr) != 1) {
        bc_err_set(err, "http: bad bind address '%s'", opts->bind);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    h->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME,
        0, NULL, NULL, on_request, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(opts->threads ? opts->threads : 2),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(opts->max_conns ? opts->max_conns : 1000),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(opts->timeout_s ? opts->timeout_s : 30),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, opts->max_conns_per_ip,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_END);
    if (!h->d) {
        bc_err_set(err, "http: cannot listen on %s:%d",
                   opts->bind ? opts->bind : "127.0.0.1", opts->port);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : opts->port;
    return h;
}

void bc_http_stop(bc_http *h)
{
    if (!h)
        return;
    /* A suspended connection must be resumed before the daemon stops:
     * start no more handlers, then wait for those running and the answers
     * promised (each comes within its own deadline, e.g. Kafka's message
     * timeout). */
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < 4000; i++) {
        int open;

        pthread_mutex_lock(&h->mu);
        open = h->deferred + h->handling;
        pthread_mutex_unlock(&h->mu);
        if (!open)
            break;
        nanosleep(&(struct timespec){ 0, 10000000L }, NULL);
    }
    MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int bc_http_port(const bc_http *h)
{
    return h->port;
}
