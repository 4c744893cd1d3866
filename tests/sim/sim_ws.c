#include "sim_ws.h"

#include <libwebsockets.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bc_crypto.h"
#include "bc_svc.h"

#define MEDIA_EVERY_US 20000
#define MEDIA_BYTES 160          /* 20 ms of 8 kHz u-law */

/* One text frame, with the LWS_PRE bytes lws_write() needs before it. */
typedef struct frame {
    struct frame *next;
    int what;                    /* SIM_WS_STARTED / SIM_WS_STOPPED once written, or -1 */
    size_t len;
    unsigned char buf[];
} frame;

typedef struct conn {
    struct conn *next;           /* w->live: the service thread's only */
    sim_ws *w;
    unsigned long id;
    struct lws *wsi;
    char *url;
    char account[64], call_sid[40], stream_sid[40];
    json_t *params;
    void *owner;
    unsigned gen;
    int media_left, media_sent, seq;
    long long t0_ms;
    frame *q, *qtail;
    int open, stop_req, closing, dead, told_end;
} conn;

typedef struct cmd {
    struct cmd *next;
    conn *open;                  /* a connection to make, or NULL: */
    unsigned long stop;          /* the id of one to stop */
} cmd;

struct sim_ws {
    struct lws_context *ctx;
    pthread_t thread;
    pthread_mutex_t mu;          /* guards cmds and next_id */
    cmd *cmds, *cmds_tail;
    unsigned long next_id;
    atomic_int stop, quiet;
    conn *live;
    sim_ws_event_fn fn;
    void *ud;
    char silence[((MEDIA_BYTES + 2) / 3) * 4 + 1];   /* base64 of 0xFF x 160 */
};

static void tell(conn *c, int what, int code)
{
    if (!c->w->quiet)
        c->w->fn(c->w->ud, c->owner, c->gen, what, code);
}

/* Queues json (taken) as a text frame; what is told once it is written. */
static void enqueue(conn *c, json_t *json, int what)
{
    char *s = json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t len = s ? strlen(s) : 0;
    frame *f = s ? malloc(sizeof *f + LWS_PRE + len) : NULL;

    json_decref(json);
    if (!f) {
        free(s);
        return;
    }
    f->next = NULL;
    f->what = what;
    f->len = len;
    memcpy(f->buf + LWS_PRE, s, len);
    free(s);
    if (c->qtail)
        c->qtail->next = f;
    else
        c->q = f;
    c->qtail = f;
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
}

static char *seqno(conn *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%d", ++c->seq);
    return buf;
}

static void send_start(conn *c)
{
    char n[16];

    enqueue(c, json_pack("{s:s,s:s,s:s}", "event", "connected", "protocol", "Call",
                         "version", "1.0.0"), -1);
    enqueue(c, json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:[s],s:O,s:{s:s,s:i,s:i}},s:s}",
                         "event", "start", "sequenceNumber", seqno(c, n, sizeof n),
                         "start", "accountSid", c->account, "streamSid", c->stream_sid,
                         "callSid", c->call_sid, "tracks", "inbound",
                         "customParameters", c->params, "mediaFormat",
                         "encoding", "audio/x-mulaw", "sampleRate", 8000, "channels", 1,
                         "streamSid", c->stream_sid), SIM_WS_STARTED);
    c->t0_ms = bc_now_ms();
}

static void send_media(conn *c)
{
    char n[16], chunk[16], ts[24];

    snprintf(chunk, sizeof chunk, "%d", ++c->media_sent);
    snprintf(ts, sizeof ts, "%lld", bc_now_ms() - c->t0_ms);
    enqueue(c, json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s},s:s}", "event", "media",
                         "sequenceNumber", seqno(c, n, sizeof n), "media", "track", "inbound",
                         "chunk", chunk, "timestamp", ts, "payload", c->w->silence,
                         "streamSid", c->stream_sid), -1);
}

static void send_stop(conn *c)
{
    char n[16];

    enqueue(c, json_pack("{s:s,s:s,s:{s:s,s:s},s:s}", "event", "stop",
                         "sequenceNumber", seqno(c, n, sizeof n), "stop",
                         "accountSid", c->account, "callSid", c->call_sid,
                         "streamSid", c->stream_sid), SIM_WS_STOPPED);
}

/* Twilio's error for a connection that failed, from libwebsockets' words:
 * 31920 the answer was not 101, 31910 TLS failed, 31901 timed out, 31902
 * refused (or unreachable). */
static int failure_code(const char *why)
{
    if (!why)
        return 31902;
    if (strstr(why, "101") || strstr(why, "HS:") || strcasestr(why, "upgrade"))
        return 31920;
    if (strcasestr(why, "cert") || strcasestr(why, "tls") || strcasestr(why, "ssl"))
        return 31910;
    if (strcasestr(why, "timeout") || strcasestr(why, "timed out"))
        return 31901;
    return 31902;
}

static void ended(conn *c, int what, int code)
{
    c->dead = 1;
    c->wsi = NULL;
    if (!c->told_end) {
        c->told_end = 1;
        tell(c, what, code);
    }
}

static void connect_one(sim_ws *w, conn *c)
{
    struct lws_client_connect_info ci;
    char *copy = strdup(c->url), host[256];
    const char *prot = NULL, *addr = NULL, *path = NULL;
    char fullpath[2048];
    int port = 443;

    c->next = w->live;
    w->live = c;
    if (!copy || lws_parse_uri(copy, &prot, &addr, &port, &path) || strcmp(prot, "wss") ||
        !*addr) {
        free(copy);
        ended(c, SIM_WS_FAILED, 31923);
        return;
    }
    snprintf(host, sizeof host, "%s", addr);
    /* lws_parse_uri drops the path's leading slash. */
    snprintf(fullpath, sizeof fullpath, "/%s", path);
    memset(&ci, 0, sizeof ci);
    ci.context = w->ctx;
    ci.address = host;
    ci.port = port;
    ci.path = fullpath;
    ci.host = host;
    ci.origin = host;
    ci.ssl_connection = LCCSCF_USE_SSL;
    ci.alpn = "http/1.1";
    /* Twilio asks for no subprotocol; ours only picks our callback. */
    ci.local_protocol_name = "twilio-media-stream";
    ci.userdata = c;
    ci.pwsi = &c->wsi;
    if (!lws_client_connect_via_info(&ci))
        ended(c, SIM_WS_FAILED, 31902);
    free(copy);
}

static conn *find(sim_ws *w, unsigned long id)
{
    for (conn *c = w->live; c; c = c->next)
        if (c->id == id && !c->dead)
            return c;
    return NULL;
}

static void stop_one(conn *c)
{
    if (c->stop_req)
        return;
    c->stop_req = 1;
    if (!c->open)
        return;             /* closed at once when (if) the handshake ends */
    lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    send_stop(c);
}

/* Runs what other threads queued (service thread). */
static void drain(sim_ws *w)
{
    cmd *list;

    pthread_mutex_lock(&w->mu);
    list = w->cmds;
    w->cmds = w->cmds_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (list) {
        cmd *next = list->next;
        conn *c;

        if (list->open)
            connect_one(w, list->open);
        else if ((c = find(w, list->stop)))
            stop_one(c);
        free(list);
        list = next;
    }
}

static int writeable(conn *c, struct lws *wsi)
{
    frame *f = c->q;
    int n;

    if (!f) {
        if (!c->closing)
            return 0;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    c->q = f->next;
    if (!c->q)
        c->qtail = NULL;
    n = lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
    if (f->what == SIM_WS_STOPPED)
        c->closing = 1;
    if (f->what >= 0)
        tell(c, f->what, 0);
    if (n < (int)f->len) {
        free(f);
        return -1;
    }
    free(f);
    if (c->q || c->closing)
        lws_callback_on_writable(wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    sim_ws *w = lws_context_user(lws_get_context(wsi));
    conn *c = user;

    (void)len;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        drain(w);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c)
            ended(c, SIM_WS_FAILED, failure_code(in));
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->open = 1;
        tell(c, SIM_WS_OPEN, 0);
        if (c->stop_req) {
            /* Hung up while we were connecting: nothing to say. */
            c->closing = 1;
            lws_callback_on_writable(wsi);
            break;
        }
        send_start(c);
        if (c->media_left > 0)
            lws_set_timer_usecs(wsi, MEDIA_EVERY_US);
        break;
    case LWS_CALLBACK_TIMER:
        if (!c->stop_req && c->media_left-- > 0) {
            send_media(c);
            if (c->media_left > 0)
                lws_set_timer_usecs(wsi, MEDIA_EVERY_US);
        }
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return writeable(c, wsi);
    case LWS_CALLBACK_CLIENT_CLOSED:
        /* After our stop (told when it was written) nobody needs telling. */
        if (c && c->stop_req) {
            c->dead = 1;
            c->wsi = NULL;
        } else if (c) {
            ended(c, SIM_WS_AGENT_CLOSED, 0);
        }
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    { "twilio-media-stream", callback, 0, 4096, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void conn_free(conn *c)
{
    while (c->q) {
        frame *f = c->q;
        c->q = f->next;
        free(f);
    }
    json_decref(c->params);
    free(c->url);
    free(c);
}

/* Frees the connections libwebsockets is done with (after lws_service,
 * never inside a callback, where the wsi may still point at one). */
static void reap(sim_ws *w)
{
    for (conn **p = &w->live; *p;) {
        conn *c = *p;
        if (c->dead) {
            *p = c->next;
            conn_free(c);
        } else {
            p = &c->next;
        }
    }
}

static void *service(void *arg)
{
    sim_ws *w = arg;

    while (!w->stop) {
        if (lws_service(w->ctx, 0) < 0)
            break;
        reap(w);
    }
    return NULL;
}

sim_ws *sim_ws_new(const char *ca_file, sim_ws_event_fn fn, void *ud, bc_err *err)
{
    struct lws_context_creation_info info;
    unsigned char raw[MEDIA_BYTES];
    sim_ws *w = calloc(1, sizeof *w);

    if (!w) {
        bc_err_set(err, "sim_ws: out of memory");
        return NULL;
    }
    w->fn = fn;
    w->ud = ud;
    memset(raw, 0xFF, sizeof raw);
    EVP_EncodeBlock((unsigned char *)w->silence, raw, sizeof raw);
    pthread_mutex_init(&w->mu, NULL);
    /* Our JSON log is the only thing on stderr; failures reach the ledger. */
    lws_set_log_level(0, NULL);
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.user = w;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    if (ca_file && *ca_file)
        info.client_ssl_ca_filepath = ca_file;
    w->ctx = lws_create_context(&info);
    if (!w->ctx) {
        bc_err_set(err, "libwebsockets: cannot create a client context (agent-ca '%s')",
                   ca_file ? ca_file : "");
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    if (pthread_create(&w->thread, NULL, service, w)) {
        bc_err_set(err, "sim_ws: cannot start the service thread");
        lws_context_destroy(w->ctx);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

static void push_cmd(sim_ws *w, cmd *k)
{
    pthread_mutex_lock(&w->mu);
    if (w->cmds_tail)
        w->cmds_tail->next = k;
    else
        w->cmds = k;
    w->cmds_tail = k;
    pthread_mutex_unlock(&w->mu);
    lws_cancel_service(w->ctx);
}

unsigned long sim_ws_open(sim_ws *w, const sim_ws_stream *st, char *sid_out, size_t cap)
{
    conn *c = calloc(1, sizeof *c);
    cmd *k = calloc(1, sizeof *k);
    unsigned char r[16];

    if (!c || !k || !(c->url = strdup(st->url))) {
        free(c);
        free(k);
        return 0;
    }
    c->w = w;
    snprintf(c->account, sizeof c->account, "%s", st->account_sid);
    snprintf(c->call_sid, sizeof c->call_sid, "%s", st->call_sid);
    bc_random_bytes(r, sizeof r);
    snprintf(c->stream_sid, sizeof c->stream_sid, "MZ");
    for (int i = 0; i < 16; i++)
        snprintf(c->stream_sid + 2 + 2 * i, 3, "%02x", r[i]);
    snprintf(sid_out, cap, "%s", c->stream_sid);
    c->params = st->params ? json_deep_copy(st->params) : json_object();
    c->media_left = st->media_frames;
    c->owner = st->owner;
    c->gen = st->gen;
    pthread_mutex_lock(&w->mu);
    c->id = ++w->next_id;
    pthread_mutex_unlock(&w->mu);
    k->open = c;
    push_cmd(w, k);
    return c->id;
}

void sim_ws_stop(sim_ws *w, unsigned long id)
{
    cmd *k;

    if (!id || !(k = calloc(1, sizeof *k)))
        return;
    k->stop = id;
    push_cmd(w, k);
}

void sim_ws_free(sim_ws *w)
{
    if (!w)
        return;
    w->stop = 1;
    lws_cancel_service(w->ctx);
    pthread_join(w->thread, NULL);
    /* Closing what is left tells nobody: the owner is going away. */
    w->quiet = 1;
    lws_context_destroy(w->ctx);
    for (cmd *k = w->cmds, *n; k; k = n) {   /* queued, never made */
        n = k->next;
        if (k->open)
            conn_free(k->open);
        free(k);
    }
    for (conn *c = w->live, *n; c; c = n) {
        n = c->next;
        conn_free(c);
    }
    pthread_mutex_destroy(&w->mu);
    free(w);
}
