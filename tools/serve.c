/* serve.c: `bitnet serve`, an OpenAI-compatible HTTP server (docs/serve.md).

   Threads:
   - the main thread accepts connections and starts one thread per connection;
   - a connection thread reads requests (http.c), checks them (serve_api.c),
     tokenizes prompts, queues their choices and writes the answers, streamed or whole;
   - the scheduler thread owns the context and its bn_batcher: between steps it admits
     queued choices into free slots and cancels those whose client went away, then runs
     one batched step for every active sequence. Its callbacks turn tokens into text and
     hand it to the waiting connection thread.
   One mutex (server.lock) guards the queue, the choices' shared fields and the metrics. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "serve.h"
#include "cli.h"
#include "http.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ options */

typedef struct serve_args {
    cli_model model;    /* -m, --tokenizer, -c, -t, --layout, --head, --kv */
    cli_generation gen; /* defaults for the fields a request leaves out */
    const char *host, *api_key, *alias;
    int template_id, port, parallel, queue, timeout_s, max_body, verbose;
} serve_args;

static void serve_defaults(void *p) {
    serve_args *a = (serve_args *)p;
    cli_model_defaults(&a->model);
    cli_generation_defaults(&a->gen);
    a->host = "127.0.0.1";
    a->template_id = BN_CHAT_AUTO;
    a->port = 8080;
    a->parallel = 4;
    a->queue = 64;
    a->timeout_s = 30;
    a->max_body = 8 << 20;
}

#define TEMPLATE_PLAIN (-1)
static const cli_choice SERVE_TEMPLATES[] = {
    {"auto", BN_CHAT_AUTO}, {"llama3", BN_CHAT_LLAMA3}, {"bitnet", BN_CHAT_BITNET}, {"plain", TEMPLATE_PLAIN}, {NULL, 0}};

static const cli_opt SERVE_OPTIONS[] = {
    CLI_STRING("--host", "ADDR", serve_args, host, "address to listen on (the default serves this machine only)"),
    CLI_INT("--port", "N", serve_args, port, 0, 65535, "TCP port; 0: a free one, printed at start"),
    CLI_INT("--parallel", "N", serve_args, parallel, 1, 256, "sequences decoded at once: the KV slots"),
    CLI_INT("--queue", "N", serve_args, queue, 0, 100000, "sequences that may wait for a slot; beyond, 503"),
    CLI_STRING("--api-key", "KEY", serve_args, api_key, "require 'Authorization: Bearer KEY' (default: none)"),
    CLI_STRING("--alias", "NAME", serve_args, alias, "the model's id in the API (default: the folder's name)"),
    CLI_ENUM("--template", serve_args, template_id, SERVE_TEMPLATES,
             "chat format; auto: the one in tokenizer_config.json, else plain ('User: ...' lines)"),
    CLI_INT("--timeout", "S", serve_args, timeout_s, 1, 86400, "seconds a client may take to send a request or stay idle"),
    CLI_INT("--max-body", "BYTES", serve_args, max_body, 1024, INT_MAX, "largest request body; larger: 413"),
    CLI_FLAG("-v, --verbose", serve_args, verbose, "log the scheduler's admissions and cancellations"),
    CLI_INCLUDE("model options", serve_args, model, CLI_MODEL_OPTIONS),
    CLI_INCLUDE("generation options", serve_args, gen, CLI_GENERATION_OPTIONS),
    CLI_END};

static int serve_run(void *p, int argc, char **argv);

const cli_command cmd_serve = {
    "serve",
    "OpenAI-compatible HTTP server with continuous batching and a chat page",
    "-m DIR [options]",
    "An OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions, /v1/models, /health,\n"
    "/tokenize, /detokenize, /metrics (Prometheus) and a chat page at /. Every active request decodes\n"
    "in the same batched step. The generation options are the defaults for what a request leaves\n"
    "out. docs/serve.md has the endpoints, the errors and what a client should do at a full context.\n",
    SERVE_OPTIONS, sizeof(serve_args), serve_defaults, serve_run, 0, 0};

#ifdef _WIN32
static int serve_run(void *p, int argc, char **argv) {
    (void)p;
    (void)argc;
    (void)argv;
    fprintf(stderr, "bitnet serve: not available on Windows yet (POSIX sockets); use WSL\n");
    return EXIT_RUN;
}
#else

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_HEAD (16 << 10)       /* request line + headers */
#define MAX_CONNS 512             /* open connections; more get a 503 at once */
#define MAX_CHOICES 16            /* prompts x n per request */
#define WAIT_SLICE_MS 100         /* how often a waiting connection checks that its client is still there */
#define CONN_STACK (1u << 20)

/* ------------------------------------------------------------ metrics */

#define N_BUCKETS 12
#define RATE_WINDOW 10 /* seconds over which tokens/s is measured */

static const double TTFT_BOUNDS[N_BUCKETS] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double ITL_BOUNDS[N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

typedef struct histogram {
    const double *bounds;
    unsigned long long counts[N_BUCKETS + 1]; /* the last: above every bound */
    unsigned long long total;
    double sum;
} histogram;

static void hist_add(histogram *h, double v) {
    int i = 0;
    while (i < N_BUCKETS && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->total++;
    h->sum += v;
}

typedef struct metrics {
    unsigned long long by_status[600];
    unsigned long long prompt_tokens, cached_tokens, generated_tokens, rejected;
    histogram ttft, itl;
    long long rate_sec[RATE_WINDOW + 1]; /* per-second generated-token counts, a ring keyed by the second */
    unsigned long long rate_count[RATE_WINDOW + 1];
    long kv_used;
} metrics;

/* ------------------------------------------------------------ server state */

struct job;

/* One sequence to generate: a request has prompts x n of them. */
typedef struct choice {
    struct job *job;
    int index;              /* in the response */
    const int32_t *prompt;  /* the job's */
    int n_prompt;
    uint64_t seed;
    int batch_id;           /* bn_batcher's id while active */
    int state;              /* CH_QUEUED, CH_ACTIVE, CH_DONE */
    int cancel_sent;
    /* the scheduler's alone */
    double t_last;
    /* shared, under server.lock */
    char *text;
    size_t len, cap;
    oai_logprob *lp;
    int n_lp, cap_lp;
    int32_t *tokens;        /* generated ids (an ending EOS left out) */
    int n_tokens, cap_tokens;
    int completion_tokens;
    int cached_tokens;      /* of the prompt, positions the batcher's prompt cache held */
    const char *finish_reason;
} choice;

enum { CH_QUEUED, CH_ACTIVE, CH_DONE };

typedef struct job {
    struct server *srv;
    oai_request *req;
    int32_t **prompt_ids;    /* per prompt */
    int *prompt_len;
    int n_prompts;
    choice *choices;
    int n_choices, n_done;
    int cancelled;           /* the client went away: stop generating */
    double t_start;
    pthread_cond_t cond;     /* signalled when a choice gets text or ends */
} job;

typedef struct server {
    serve_args o;
    cli_session sess;        /* the model, tokenizer and context (model, tok and ctx below point into it) */
    bn_model *model;
    bn_tokenizer *tok;
    bn_context *ctx;
    bn_batcher *batcher;
    bn_chat_template tmpl;   /* BN_CHAT_UNKNOWN: the plain format */
    char model_name[256];
    int n_vocab, n_ctx, n_slots;
    const bn_grammar_vocab *grammar_vocab; /* the generation options' (--grammar ...) or own_vocab */
    bn_grammar_vocab *own_vocab;
    oai_limits lim;
    int listen_fd;
    long long created;
    volatile sig_atomic_t *stop_flag;
    pthread_t scheduler;
    pthread_mutex_t lock;
    pthread_cond_t sched_cond; /* work for the scheduler */
    pthread_cond_t idle_cond;  /* a connection closed */
    int stopping;
    choice **queue;            /* waiting choices, oldest first */
    int q_len;
    choice **active;           /* n_slots entries, NULL where free */
    int n_active;
    int n_conns;
    int *conn_fds;             /* open connections (to shut down at exit) */
    unsigned long long counter;
    metrics m;
} server;

static void lock(server *s) { pthread_mutex_lock(&s->lock); }
static void unlock(server *s) { pthread_mutex_unlock(&s->lock); }

/* Wall-clock seconds (the library's monotonic clock). */
static double now_s(void) { return bn_time_s(); }

static void log_line(const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static void log_line(const char *fmt, ...) {
    char stamp[32], line[1024];
    time_t t = time(NULL);
    struct tm tm;
    va_list ap;
    localtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s\n", stamp, line);
}

/* ------------------------------------------------------------ scheduler: token callbacks */

static int grow(void **p, int *cap, int need, size_t elem) {
    void *np;
    int c = *cap ? *cap : 16;
    if (need <= *cap) return 1;
    while (c < need) c *= 2;
    np = realloc(*p, (size_t)c * elem);
    if (!np) return 0;
    *p = np;
    *cap = c;
    return 1;
}

static void append_text(choice *c, const char *t, size_t n) {
    if (!n) return;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        char *p;
        while (cap < c->len + n + 1) cap *= 2;
        p = (char *)realloc(c->text, cap);
        if (!p) return; /* out of memory: the text is cut short, the stream goes on */
        c->text = p;
        c->cap = cap;
    }
    memcpy(c->text + c->len, t, n);
    c->len += n;
    c->text[c->len] = 0;
}

static void rate_add(metrics *m, double t) {
    long long sec = (long long)t;
    int k = (int)(sec % (RATE_WINDOW + 1));
    if (m->rate_sec[k] != sec) {
        m->rate_sec[k] = sec;
        m->rate_count[k] = 0;
    }
    m->rate_count[k]++;
}

/* Generated tokens per second over the last RATE_WINDOW whole seconds. */
static double rate_get(const metrics *m, double t) {
    long long sec = (long long)t;
    unsigned long long n = 0;
    int k;
    for (k = 0; k <= RATE_WINDOW; k++)
        if (m->rate_sec[k] < sec && m->rate_sec[k] >= sec - RATE_WINDOW) n += m->rate_count[k];
    return (double)n / RATE_WINDOW;
}

/* The batcher's callback: a sampled token with the finished text it completed (ids -> text, stop
   strings and end tokens are the library's), then a closing call (token -1) with the held-back tail. */
static int on_token(void *user, const bn_token_event *ev) {
    choice *c = (choice *)user;
    job *j = c->job;
    server *s = j->srv;
    oai_logprob lp;
    int counted = ev->token >= 0 && !ev->end_token, stop; /* a generated token of the completion */
    double t = now_s();
    if (counted && j->req->logprobs) oai_logprob_from_logits(&lp, ev->logits, ev->n_vocab, ev->token, j->req->top_logprobs);
    lock(s);
    if (ev->token >= 0) {
        if (c->t_last == 0.0) hist_add(&s->m.ttft, t - j->t_start);
        else hist_add(&s->m.itl, t - c->t_last);
        c->t_last = t;
    }
    if (counted) {
        c->completion_tokens++;
        s->m.generated_tokens++;
        rate_add(&s->m, t);
        if (grow((void **)&c->tokens, &c->cap_tokens, c->n_tokens + 1, sizeof *c->tokens)) c->tokens[c->n_tokens++] = ev->token;
        if (j->req->logprobs && grow((void **)&c->lp, &c->cap_lp, c->n_lp + 1, sizeof *c->lp)) c->lp[c->n_lp++] = lp;
    }
    append_text(c, ev->text, ev->len);
    stop = j->cancelled;
    pthread_cond_broadcast(&j->cond);
    unlock(s);
    return stop;
}

static const char *finish_reason(bn_stop_reason reason) {
    switch (reason) {
    case BN_STOP_EOS:
    case BN_STOP_GRAMMAR: /* the response_format's text is complete */
    case BN_STOP_STRING: return "stop";
    case BN_STOP_MAX_TOKENS:
    case BN_STOP_CONTEXT_FULL: return "length";
    default: return "cancelled";
    }
}

/* A choice is over: its state, the slot, the waiting connection. Under the lock. */
static void choice_done_locked(server *s, choice *c, const char *reason) {
    job *j = c->job;
    if (c->state == CH_ACTIVE) {
        int i;
        for (i = 0; i < s->n_slots; i++)
            if (s->active[i] == c) s->active[i] = NULL;
        s->n_active--;
    }
    c->state = CH_DONE;
    c->finish_reason = reason;
    j->n_done++;
    pthread_cond_broadcast(&j->cond);
}

static void on_done(void *user, int id, const bn_generate_result *res) {
    choice *c = (choice *)user;
    server *s = c->job->srv;
    (void)id;
    lock(s);
    c->cached_tokens = res->n_cached;
    s->m.cached_tokens += (unsigned long long)res->n_cached;
    choice_done_locked(s, c, finish_reason(res->reason)); /* from here on the connection may free c */
    unlock(s);
}

/* Hands a choice to the batcher (the scheduler thread, between steps). */
static void start_choice(server *s, choice *c) {
    bn_request_params rp = bn_request_default_params();
    bn_error err;
    job *j = c->job;
    rp.sampler = j->req->sampler;
    rp.sampler.seed = c->seed;
    rp.max_new_tokens = j->req->max_tokens;
    rp.ignore_eos = j->req->ignore_eos;
    rp.tokenizer = s->tok; /* the library turns ids into text, with the stop strings and end tokens */
    rp.decode_flags = s->o.gen.special ? 0u : BN_TOK_SKIP_SPECIAL;
    rp.stop = j->req->stop;
    rp.n_stop = j->req->n_stop;
    rp.on_token = on_token;
    rp.on_done = on_done;
    rp.user = c;
    if (bn_batcher_add(s->batcher, c->prompt, c->n_prompt, &rp, &c->batch_id, &err) != BN_OK) {
        log_line("scheduler: cannot start a sequence: %s", err.msg);
        lock(s);
        choice_done_locked(s, c, "error");
        unlock(s);
    }
}

/* Cells of the KV cache in use: the tokens every slot holds. */
static long kv_cells_used(const server *s) {
    long n = 0;
    int i;
    for (i = 0; i < s->n_slots; i++) n += bn_seq_len(s->ctx, i);
    return n;
}

/* Between steps, under the lock: choices to cancel (their client left) and to admit. */
static void plan_step(server *s, int *cancel, int *n_cancel, choice **admit, int *n_admit) {
    int i;
    *n_cancel = *n_admit = 0;
    for (i = 0; i < s->n_slots; i++) {
        choice *c = s->active[i];
        if (c && c->job->cancelled && !c->cancel_sent && c->batch_id >= 0) {
            c->cancel_sent = 1;
            cancel[(*n_cancel)++] = c->batch_id;
        }
    }
    while (s->q_len > 0 && s->n_active < s->n_slots) {
        choice *c = s->queue[0];
        memmove(s->queue, s->queue + 1, sizeof *s->queue * (size_t)--s->q_len);
        for (i = 0; s->active[i]; i++) {
        }
        s->active[i] = c;
        c->state = CH_ACTIVE;
        s->n_active++;
        admit[(*n_admit)++] = c;
    }
}

/* At shutdown: every queued and active choice ends as cancelled. */
static void cancel_everything(server *s) {
    int i;
    lock(s);
    while (s->q_len > 0) choice_done_locked(s, s->queue[--s->q_len], "cancelled");
    unlock(s);
    for (i = 0; i < s->n_slots; i++) {
        choice *c;
        lock(s);
        c = s->active[i];
        unlock(s);
        if (c && c->batch_id >= 0) bn_batcher_cancel(s->batcher, c->batch_id);
    }
}

static void *scheduler_main(void *arg) {
    server *s = (server *)arg;
    int *cancel = (int *)malloc(sizeof(int) * (size_t)s->n_slots), n_cancel, n_admit, i;
    choice **admit = (choice **)malloc(sizeof(choice *) * (size_t)s->n_slots);
    bn_error err;
    if (!cancel || !admit) {
        log_line("scheduler: out of memory");
        lock(s);
        s->stopping = 1;
        unlock(s);
    }
    lock(s);
    while (!s->stopping) {
        if (s->n_active == 0 && s->q_len == 0) {
            pthread_cond_wait(&s->sched_cond, &s->lock);
            continue;
        }
        plan_step(s, cancel, &n_cancel, admit, &n_admit);
        unlock(s);
        for (i = 0; i < n_cancel; i++) bn_batcher_cancel(s->batcher, cancel[i]);
        for (i = 0; i < n_admit; i++) start_choice(s, admit[i]);
        if (s->o.verbose && (n_admit || n_cancel))
            log_line("scheduler: %d joined, %d cancelled, %d active", n_admit, n_cancel, bn_batcher_n_active(s->batcher));
        if (bn_batcher_n_active(s->batcher) > 0 && bn_batcher_step(s->batcher, NULL, &err) != BN_OK) {
            log_line("scheduler: a step failed: %s; the active requests end", err.msg);
            lock(s);
            for (i = 0; i < s->n_slots; i++)
                if (s->active[i] && s->active[i]->batch_id >= 0) cancel[i] = s->active[i]->batch_id;
                else cancel[i] = -1;
            unlock(s);
            for (i = 0; i < s->n_slots; i++)
                if (cancel[i] >= 0) bn_batcher_cancel(s->batcher, cancel[i]);
        }
        lock(s);
        s->m.kv_used = kv_cells_used(s);
    }
    unlock(s);
    cancel_everything(s);
    free(cancel);
    free(admit);
    return NULL;
}

/* ------------------------------------------------------------ connections: bytes in and out */

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* SIGPIPE is ignored instead */
#endif

typedef struct conn {
    server *s;
    int fd;
    int slot;             /* in server.conn_fds */
    char peer[64];
    char *buf;            /* bytes received, not yet consumed */
    size_t len, cap;
    char *body;           /* the request body (into buf, or decoded from chunks into body_owned) */
    size_t body_len;
    char *body_owned;
    size_t consumed;      /* bytes of buf this request used */
    int status;           /* for the log line */
    int prompt_tokens, completion_tokens;
    int close_after;      /* close the connection after this response */
    int have_head;        /* the request's head was read: path holds its path (for the log line) */
    char path[208];
    int head_only;        /* HEAD: the response has no body */
} conn;

static int send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return 0;
        p += k;
        n -= (size_t)k;
    }
    return 1;
}

/* Waits until fd is readable or the deadline passes: 1 readable, 0 timeout, -1 error. */
static int wait_readable(int fd, double deadline) {
    for (;;) {
        struct pollfd p;
        double left = deadline - now_s();
        int r;
        if (left <= 0) return 0;
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        r = poll(&p, 1, (int)(left * 1000.0) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r > 0) return 1;
    }
}

/* Reads what has arrived into c->buf (growing it up to limit bytes): >0 bytes read,
   0 the peer closed, -1 an error or a full buffer, -2 the deadline passed. */
static long read_more(conn *c, double deadline, size_t limit) {
    ssize_t k;
    int r;
    if (c->len >= limit) return -1;
    if (c->cap - c->len < 4096 && c->cap < limit) {
        size_t cap = c->cap ? c->cap * 2 : 8192;
        char *p;
        if (cap > limit) cap = limit;
        p = (char *)realloc(c->buf, cap);
        if (!p) return -1;
        c->buf = p;
        c->cap = cap;
    }
    r = wait_readable(c->fd, deadline);
    if (r <= 0) return r == 0 ? -2 : -1;
    do k = recv(c->fd, c->buf + c->len, (c->cap < limit ? c->cap : limit) - c->len, 0);
    while (k < 0 && errno == EINTR);
    if (k < 0) return -1;
    c->len += (size_t)k;
    return (long)k;
}

/* Whether the client closed its side (checked while a request waits for the model). */
static int client_gone(int fd) {
    struct pollfd p;
    char b;
    ssize_t k;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLERR | POLLNVAL)) return 1;
    k = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Reads one request: its head into rq and its body into c->body. Returns HTTP_DONE,
   -1 when the connection should just close (peer gone, idle timeout), or a status. */
static int read_request(conn *c, http_request *rq) {
    server *s = c->s;
    double timeout = s->o.timeout_s, deadline = now_s() + timeout;
    size_t head, limit = MAX_HEAD + (size_t)s->o.max_body * 2 + 65536;
    int st;
    long k;
    for (;;) {
        st = c->len ? http_parse_request(c->buf, c->len, MAX_HEAD, rq) : HTTP_INCOMPLETE;
        if (st != HTTP_INCOMPLETE) break;
        k = read_more(c, deadline, MAX_HEAD + 1);
        if (k == -2) return c->len ? 408 : -1;
        if (k <= 0) return -1;
    }
    if (st != HTTP_DONE) return st;
    c->have_head = 1;
    snprintf(c->path, sizeof c->path, "%.*s", (int)(rq->path_len < 200 ? rq->path_len : 200), rq->path);
    head = rq->head_len;
    if (rq->content_length > s->o.max_body) return 413;
    if (rq->expect_continue && (rq->chunked || rq->content_length > 0) && c->len == head &&
        !send_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25))
        return -1;
    deadline = now_s() + timeout;
    if (rq->chunked) {
        size_t used = 0, n = 0;
        for (;;) {
            st = http_chunked_body(c->buf + head, c->len - head, (size_t)s->o.max_body, &used, &n, NULL);
            if (st != HTTP_INCOMPLETE) break;
            k = read_more(c, deadline, limit);
            if (k == -2) return 408;
            if (k == -1 && c->len >= limit) return 413;
            if (k <= 0) return -1;
        }
        if (st != HTTP_DONE) return st;
        c->body_owned = (char *)malloc(n + 1);
        if (!c->body_owned) return 500;
        http_chunked_body(c->buf + head, c->len - head, (size_t)s->o.max_body, &used, &n, c->body_owned);
        c->body = c->body_owned;
        c->body_len = n;
        c->consumed = head + used;
    } else {
        size_t n = rq->content_length > 0 ? (size_t)rq->content_length : 0;
        while (c->len < head + n) {
            k = read_more(c, deadline, head + n);
            if (k == -2) return 408;
            if (k <= 0) return -1;
        }
        c->body = c->buf + head;
        c->body_len = n;
        c->consumed = head + n;
    }
    /* the buffer may have moved while the body came in: point the head's fields at it again */
    return http_parse_request(c->buf, c->len, MAX_HEAD, rq);
}

/* ------------------------------------------------------------ responses */

static const char *CORS = "Access-Control-Allow-Origin: *\r\n";

static int respond(conn *c, const http_request *rq, int status, const char *ctype, const char *body, size_t n,
                   const char *extra) {
    char head[1024], more[512];
    size_t hl;
    int keep = rq && rq->keep_alive && !c->close_after;
    snprintf(more, sizeof more, "%s%s", CORS, extra ? extra : "");
    hl = http_format_head(head, sizeof head, status, ctype, (long long)n, keep, more);
    c->status = status;
    if (!keep) c->close_after = 1;
    if (!send_all(c->fd, head, hl)) return 0;
    return c->head_only || n == 0 || send_all(c->fd, body, n);
}

static int respond_json(conn *c, const http_request *rq, int status, const jw *w, const char *extra) {
    if (w->oom) {
        static const char oom[] = "{\"error\":{\"message\":\"Out of memory.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        return respond(c, rq, 500, "application/json", oom, sizeof oom - 1, NULL);
    }
    return respond(c, rq, status, "application/json", w->p, w->len, extra);
}

static int respond_error(conn *c, const http_request *rq, const api_error *e) {
    jw w;
    int ok;
    char extra[256] = "";
    if (e->status == 401) snprintf(extra, sizeof extra, "WWW-Authenticate: Bearer\r\n");
    if (e->status == 503) snprintf(extra, sizeof extra, "Retry-After: 1\r\n");
    if (e->status == 405) snprintf(extra, sizeof extra, "Allow: %s\r\n", e->param ? e->param : "GET, POST");
    jw_init(&w);
    api_error_json(&w, e);
    if (e->status == 405) { /* the Allow list went into the header, not the body */
        api_error e2 = *e;
        e2.param = NULL;
        jw_reset(&w);
        api_error_json(&w, &e2);
    }
    ok = respond_json(c, rq, e->status, &w, extra);
    jw_free(&w);
    return ok;
}

/* An error answer for a request that could not be read (then the connection closes). */
static void respond_status(conn *c, int status) {
    api_error e;
    const char *what = status == 408   ? "The request took too long to arrive."
                       : status == 413 ? "The request body is larger than this server accepts (--max-body)."
                       : status == 431 ? "The request's headers are too large."
                       : status == 501 ? "Only the chunked transfer coding is supported."
                       : status == 505 ? "Only HTTP/1.0 and HTTP/1.1 are supported."
                       : status == 417 ? "Only 'Expect: 100-continue' is supported."
                                       : "The request is not valid HTTP.";
    api_fail(&e, status, status >= 500 ? "server_error" : "invalid_request_error", NULL, NULL, "%s", what);
    c->close_after = 1;
    respond_error(c, NULL, &e);
}

/* ------------------------------------------------------------ jobs: a request's sequences */

/* The prompt as text, for models whose tokenizer has no chat template we know:
   "System: ...\nUser: ...\nAssistant:" - a base model continues it as a dialogue. */
static char *plain_chat(const bn_chat_message *m, int n, size_t *len) {
    size_t cap = 16, at = 0;
    int i;
    char *out;
    for (i = 0; i < n; i++) cap += strlen(m[i].role) + strlen(m[i].content) + 4;
    out = (char *)malloc(cap);
    if (!out) return NULL;
    for (i = 0; i < n; i++) {
        size_t rl = strlen(m[i].role), cl = strlen(m[i].content);
        memcpy(out + at, m[i].role, rl);
        if (out[at] >= 'a' && out[at] <= 'z') out[at] = (char)(out[at] - 32);
        at += rl;
        memcpy(out + at, ": ", 2);
        memcpy(out + at + 2, m[i].content, cl);
        at += 2 + cl;
        out[at++] = '\n';
    }
    memcpy(out + at, "Assistant:", 10);
    at += 10;
    out[at] = 0;
    *len = at;
    return out;
}

/* The chat request's conversation as token ids, through the model's template. */
static int chat_prompt(server *s, const oai_request *r, int32_t **ids, int *n, api_error *e) {
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    unsigned flags;
    bn_error err;
    if (s->tmpl == BN_CHAT_UNKNOWN) {
        text = plain_chat(r->messages, r->n_messages, &len);
        flags = BN_TOK_ADD_SPECIAL;
        if (!text) return api_fail(e, 500, "server_error", NULL, NULL, "Out of memory.");
    } else {
        if (bn_chat_format(s->tok, s->tmpl, r->messages, (size_t)r->n_messages, 1, &text, &len, &err) != BN_OK)
            return api_fail(e, 500, "server_error", NULL, NULL, "The chat template failed: %s", err.msg);
        flags = BN_TOK_PARSE_SPECIAL;
    }
    if (bn_tokenizer_encode(s->tok, text, len, flags, ids, &n_ids, &err) != BN_OK) {
        free(text);
        return api_fail(e, 400, "invalid_request_error", "messages", NULL, "Cannot tokenize the messages: %s", err.msg);
    }
    free(text);
    *n = (int)n_ids;
    return 1;
}

static int prompt_tokens(server *s, const oai_request *r, int k, int32_t **ids, int *n, api_error *e) {
    const oai_prompt *p = &r->prompts[k];
    size_t n_ids = 0;
    bn_error err;
    if (p->ids) {
        *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)p->n_ids);
        if (!*ids) return api_fail(e, 500, "server_error", NULL, NULL, "Out of memory.");
        memcpy(*ids, p->ids, sizeof(int32_t) * (size_t)p->n_ids);
        *n = p->n_ids;
        return 1;
    }
    if (bn_tokenizer_encode(s->tok, p->text, p->len, BN_TOK_ADD_SPECIAL, ids, &n_ids, &err) != BN_OK)
        return api_fail(e, 400, "invalid_request_error", "prompt", NULL, "Cannot tokenize the prompt: %s", err.msg);
    *n = (int)n_ids;
    return 1;
}

static void job_free(job *j) {
    int i;
    for (i = 0; j->choices && i < j->n_choices; i++) {
        free(j->choices[i].text);
        free(j->choices[i].lp);
        free(j->choices[i].tokens);
    }
    for (i = 0; j->prompt_ids && i < j->n_prompts; i++) bn_free(j->prompt_ids[i]);
    free(j->choices);
    free(j->prompt_ids);
    free(j->prompt_len);
    pthread_cond_destroy(&j->cond);
}

/* Tokenizes the prompts and lays out the choices; 0 with e set when the request cannot run. */
static int job_init(server *s, job *j, oai_request *r, api_error *e) {
    int k, i, n_prompts = r->chat ? 1 : r->n_prompts;
    memset(j, 0, sizeof *j);
    pthread_cond_init(&j->cond, NULL);
    j->srv = s;
    j->req = r;
    j->t_start = now_s();
    if (n_prompts * r->n > MAX_CHOICES)
        return api_fail(e, 400, "invalid_request_error", "n", "invalid_value",
                        "Invalid 'n': %d prompts x n = %d exceeds %d sequences per request.", n_prompts, n_prompts * r->n,
                        MAX_CHOICES);
    j->prompt_ids = (int32_t **)calloc((size_t)n_prompts, sizeof *j->prompt_ids);
    j->prompt_len = (int *)calloc((size_t)n_prompts, sizeof *j->prompt_len);
    j->choices = (choice *)calloc((size_t)(n_prompts * r->n), sizeof *j->choices);
    if (!j->prompt_ids || !j->prompt_len || !j->choices) return api_fail(e, 500, "server_error", NULL, NULL, "Out of memory.");
    j->n_prompts = n_prompts;
    for (k = 0; k < n_prompts; k++) {
        int ok = r->chat ? chat_prompt(s, r, &j->prompt_ids[k], &j->prompt_len[k], e)
                         : prompt_tokens(s, r, k, &j->prompt_ids[k], &j->prompt_len[k], e);
        if (!ok) return 0;
        if (j->prompt_len[k] == 0)
            return api_fail(e, 400, "invalid_request_error", r->chat ? "messages" : "prompt", "invalid_value",
                            "The prompt is empty: it has no tokens.");
        if (j->prompt_len[k] >= s->n_ctx)
            return api_fail(e, 400, "invalid_request_error", r->chat ? "messages" : "prompt", "context_length_exceeded",
                            "This model's maximum context length is %d tokens. However, your %s resulted in %d tokens. "
                            "Please reduce the length of the %s.",
                            s->n_ctx, r->chat ? "messages" : "prompt", j->prompt_len[k], r->chat ? "messages" : "prompt");
    }
    for (k = 0; k < n_prompts; k++)
        for (i = 0; i < r->n; i++) {
            choice *c = &j->choices[j->n_choices];
            c->job = j;
            c->index = j->n_choices++;
            c->prompt = j->prompt_ids[k];
            c->n_prompt = j->prompt_len[k];
            c->batch_id = -1;
            c->seed = r->sampler.seed + (uint64_t)i; /* n > 1: each choice draws its own numbers */
        }
    return 1;
}

static uint64_t mix64(uint64_t x) { return bn_rng_next(&x); }

/* Queues the job's choices, or answers 503 when the queue is full. */
static int job_submit(server *s, job *j, api_error *e) {
    int i, room;
    lock(s);
    room = s->n_slots + s->o.queue - s->n_active - s->q_len;
    if (s->stopping || j->n_choices > room) {
        s->m.rejected++;
        unlock(s);
        return api_fail(e, 503, "server_error", NULL, "server_busy",
                        "The server is busy: %d sequences are running and %d waiting (--parallel %d, --queue %d). "
                        "Retry after a second.", s->n_active, s->q_len, s->n_slots, s->o.queue);
    }
    if (!j->req->has_seed) {
        uint64_t seed = mix64((uint64_t)(now_s() * 1e9) ^ (++s->counter << 32));
        for (i = 0; i < j->n_choices; i++) j->choices[i].seed = seed + (uint64_t)i;
    }
    for (i = 0; i < j->n_choices; i++) {
        choice *c = &j->choices[i];
        s->m.prompt_tokens += (unsigned long long)c->n_prompt;
        if (j->req->max_tokens == 0) { /* nothing to generate */
            c->state = CH_QUEUED;
            choice_done_locked(s, c, "length");
        } else {
            c->state = CH_QUEUED;
            s->queue[s->q_len++] = c;
        }
    }
    pthread_cond_signal(&s->sched_cond);
    unlock(s);
    return 1;
}

/* The client left: queued choices end now, active ones at the scheduler's next step. Under the lock. */
static void job_cancel_locked(server *s, job *j) {
    int i, k = 0;
    j->cancelled = 1;
    for (i = 0; i < s->q_len; i++) {
        if (s->queue[i]->job == j) choice_done_locked(s, s->queue[i], "cancelled");
        else s->queue[k++] = s->queue[i];
    }
    s->q_len = k;
    pthread_cond_signal(&s->sched_cond);
}

/* Waits on the job's condition for a slice of time; the lock is held around it. */
static void job_wait_slice(server *s, job *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&j->cond, &s->lock, &ts);
}

/* Cancels what still runs and waits until the scheduler has let go of every choice. */
static void job_stop(server *s, job *j) {
    lock(s);
    if (j->n_done < j->n_choices) job_cancel_locked(s, j);
    while (j->n_done < j->n_choices) job_wait_slice(s, j);
    unlock(s);
}

/* ------------------------------------------------------------ generation endpoints */

static void job_usage(const job *j, oai_usage *u) {
    int k, i;
    memset(u, 0, sizeof *u);
    for (k = 0; k < j->n_prompts; k++) u->prompt_tokens += j->prompt_len[k];
    for (i = 0; i < j->n_choices; i++) u->completion_tokens += j->choices[i].completion_tokens;
    for (k = 0; k < j->n_prompts; k++) { /* a prompt's choices run side by side: the most any of them reused */
        int most = 0;
        for (i = 0; i < j->n_choices; i++)
            if (j->choices[i].prompt == j->prompt_ids[k]) most = j->choices[i].cached_tokens > most ? j->choices[i].cached_tokens : most;
        u->cached_tokens += most;
    }
}

static void job_meta(const server *s, const job *j, char *id, size_t cap, oai_meta *m) {
    snprintf(id, cap, "%s-%016llx", j->req->chat ? "chatcmpl" : "cmpl",
             (unsigned long long)mix64((uint64_t)(j->t_start * 1e9) ^ (uint64_t)(uintptr_t)j));
    m->id = id;
    m->model = s->model_name;
    m->created = (long long)time(NULL);
    m->tok = s->tok;
}

static void choice_view(const choice *c, const oai_request *r, oai_choice_view *v) {
    memset(v, 0, sizeof *v);
    v->index = c->index;
    v->text = c->text ? c->text : "";
    v->len = c->len;
    v->logprobs = r->logprobs;
    v->lp = c->lp;
    v->n_lp = c->n_lp;
    v->return_tokens = r->return_tokens;
    v->tokens = c->tokens;
    v->n_tokens = c->n_tokens;
    v->finish_reason = c->finish_reason;
}

/* The whole answer once every choice has ended; 0 when the client left first. */
static int answer_whole(conn *c, const http_request *rq, job *j) {
    server *s = c->s;
    oai_choice_view *views;
    oai_meta m;
    oai_usage u;
    char id[64];
    jw w;
    int i, ok;
    lock(s);
    while (j->n_done < j->n_choices) {
        job_wait_slice(s, j);
        if (client_gone(c->fd)) {
            job_cancel_locked(s, j);
            unlock(s);
            c->status = 499; /* client closed the request (nginx's code), for the log */
            c->close_after = 1;
            return 0;
        }
    }
    unlock(s);
    views = (oai_choice_view *)calloc((size_t)j->n_choices, sizeof *views);
    if (!views) return 0;
    for (i = 0; i < j->n_choices; i++) choice_view(&j->choices[i], j->req, &views[i]);
    job_meta(s, j, id, sizeof id, &m);
    job_usage(j, &u);
    jw_init(&w);
    oai_write_response(&w, j->req->chat, &m, views, j->n_choices, &u);
    ok = respond_json(c, rq, 200, &w, NULL);
    jw_free(&w);
    free(views);
    return ok;
}

/* One HTTP chunk in one send (size line, data, CRLF); to an HTTP/1.0 client, the bytes alone
   (the body ends when the connection closes). */
static int send_chunk(int fd, int chunked, const char *data, size_t n) {
    char line[16];
    size_t k = http_chunk_size_line(line, n);
    char *buf;
    int ok;
    if (!chunked) return send_all(fd, data, n);
    buf = (char *)malloc(k + n + 2);
    if (!buf) return 0;
    memcpy(buf, line, k);
    memcpy(buf + k, data, n);
    memcpy(buf + k + n, "\r\n", 2);
    ok = send_all(fd, buf, k + n + 2);
    free(buf);
    return ok;
}

typedef struct stream_pos {
    size_t text;   /* bytes sent */
    int lp;        /* logprob entries sent */
    int tokens;
    int finished;  /* the last chunk went out */
} stream_pos;

/* The SSE events for whatever the choices produced since the last call. Under the lock. */
static int stream_events_locked(const job *j, const oai_meta *m, stream_pos *pos, jw *out) {
    int i, all = 1;
    jw chunk;
    jw_init(&chunk);
    for (i = 0; i < j->n_choices; i++) {
        const choice *c = &j->choices[i];
        oai_choice_view v;
        int done = c->state == CH_DONE;
        if (pos[i].finished) continue;
        if (c->len == pos[i].text && c->n_lp == pos[i].lp && !(j->req->return_tokens && c->n_tokens > pos[i].tokens) &&
            !done) {
            all = 0;
            continue;
        }
        choice_view(c, j->req, &v);
        v.text += pos[i].text;
        v.len -= pos[i].text;
        if (pos[i].lp) v.lp += pos[i].lp; /* (no arithmetic on a NULL pointer) */
        v.n_lp -= pos[i].lp;
        if (pos[i].tokens) v.tokens += pos[i].tokens;
        v.n_tokens -= pos[i].tokens;
        v.text_offset = pos[i].text;
        v.finish_reason = done ? c->finish_reason : NULL;
        jw_reset(&chunk);
        oai_write_chunk(&chunk, j->req->chat, m, &v, 0, j->req->include_usage);
        jw_raw(out, "data: ", 6);
        jw_raw(out, chunk.p, chunk.len);
        jw_raw(out, "\n\n", 2);
        pos[i].text = c->len;
        pos[i].lp = c->n_lp;
        pos[i].tokens = c->n_tokens;
        pos[i].finished = done;
        all &= done;
    }
    jw_free(&chunk);
    return all;
}

/* Server-Sent Events: a chunk per choice whenever it has new text, then the usage and [DONE]. */
static int answer_stream(conn *c, const http_request *rq, job *j) {
    server *s = c->s;
    stream_pos *pos = (stream_pos *)calloc((size_t)j->n_choices, sizeof *pos);
    char head[1024], id[64];
    oai_meta m;
    oai_usage u;
    jw out, chunk;
    size_t hl;
    int i, all = 0, ok = pos != NULL, chunked = rq->minor >= 1; /* HTTP/1.0 has no chunks: the close ends the body */
    job_meta(s, j, id, sizeof id, &m);
    if (!chunked) c->close_after = 1;
    hl = http_format_head(head, sizeof head, 200, "text/event-stream", chunked ? -1 : -2, rq->keep_alive && !c->close_after,
                          "Access-Control-Allow-Origin: *\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    c->status = 200;
    ok = ok && send_all(c->fd, head, hl);
    jw_init(&out);
    jw_init(&chunk);
    for (i = 0; ok && j->req->chat && i < j->n_choices; i++) { /* the role first, as OpenAI does */
        oai_choice_view v;
        memset(&v, 0, sizeof v);
        v.index = i;
        v.text = "";
        jw_reset(&chunk);
        oai_write_chunk(&chunk, 1, &m, &v, 1, j->req->include_usage);
        jw_raw(&out, "data: ", 6);
        jw_raw(&out, chunk.p, chunk.len);
        jw_raw(&out, "\n\n", 2);
    }
    if (ok && out.len) ok = send_chunk(c->fd, chunked, out.p, out.len);
    while (ok && !all) {
        lock(s);
        jw_reset(&out);
        all = stream_events_locked(j, &m, pos, &out);
        while (!all && out.len == 0) {
            job_wait_slice(s, j);
            if (client_gone(c->fd)) {
                ok = 0;
                break;
            }
            all = stream_events_locked(j, &m, pos, &out);
        }
        unlock(s);
        if (ok && out.len) ok = !out.oom && send_chunk(c->fd, chunked, out.p, out.len);
    }
    if (ok) {
        jw_reset(&out);
        if (j->req->include_usage) {
            job_usage(j, &u);
            jw_reset(&chunk);
            oai_write_usage_chunk(&chunk, j->req->chat, &m, &u);
            jw_raw(&out, "data: ", 6);
            jw_raw(&out, chunk.p, chunk.len);
            jw_raw(&out, "\n\n", 2);
        }
        jw_raw(&out, "data: [DONE]\n\n", 14);
        ok = !out.oom && send_chunk(c->fd, chunked, out.p, out.len) && (!chunked || send_all(c->fd, "0\r\n\r\n", 5));
    }
    if (!ok) {
        lock(s);
        job_cancel_locked(s, j);
        unlock(s);
        c->close_after = 1;
        if (c->status == 200) c->status = 499;
    }
    if (!rq->keep_alive) c->close_after = 1;
    jw_free(&out);
    jw_free(&chunk);
    free(pos);
    return ok;
}

static int h_generate(conn *c, const http_request *rq, int chat) {
    server *s = c->s;
    oai_request r;
    api_error e;
    oai_usage u;
    job j;
    int ok;
    if (!oai_parse_request(&r, chat, c->body, c->body_len, &s->lim, &e)) {
        oai_request_free(&r);
        return respond_error(c, rq, &e);
    }
    if (!job_init(s, &j, &r, &e) || !job_submit(s, &j, &e)) {
        job_free(&j);
        oai_request_free(&r);
        return respond_error(c, rq, &e);
    }
    ok = r.stream ? answer_stream(c, rq, &j) : answer_whole(c, rq, &j);
    job_stop(s, &j);
    job_usage(&j, &u);
    c->prompt_tokens = u.prompt_tokens;
    c->completion_tokens = u.completion_tokens;
    job_free(&j);
    oai_request_free(&r);
    return ok;
}

static int h_chat(conn *c, const http_request *rq) { return h_generate(c, rq, 1); }
static int h_complete(conn *c, const http_request *rq) { return h_generate(c, rq, 0); }

/* ------------------------------------------------------------ the other endpoints */

static int h_health(conn *c, const http_request *rq) {
    jw w;
    int ok, idle, busy;
    lock(c->s);
    busy = c->s->n_active;
    idle = c->s->n_slots - busy;
    unlock(c->s);
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "status");
    jw_cstr(&w, "ok");
    jw_key(&w, "slots_idle");
    jw_int(&w, idle);
    jw_key(&w, "slots_processing");
    jw_int(&w, busy);
    jw_obj_end(&w);
    ok = respond_json(c, rq, 200, &w, NULL);
    jw_free(&w);
    return ok;
}

static void model_object(jw *w, const server *s) {
    jw_obj(w);
    jw_key(w, "id");
    jw_cstr(w, s->model_name);
    jw_key(w, "object");
    jw_cstr(w, "model");
    jw_key(w, "created");
    jw_int(w, s->created);
    jw_key(w, "owned_by");
    jw_cstr(w, "bitnet.h");
    jw_obj_end(w);
}

static int h_models(conn *c, const http_request *rq) {
    jw w;
    int ok;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "object");
    jw_cstr(&w, "list");
    jw_key(&w, "data");
    jw_arr(&w);
    model_object(&w, c->s);
    jw_arr_end(&w);
    jw_obj_end(&w);
    ok = respond_json(c, rq, 200, &w, NULL);
    jw_free(&w);
    return ok;
}

/* GET /v1/models/{id} */
static int h_model(conn *c, const http_request *rq, const char *id, size_t n) {
    api_error e;
    jw w;
    int ok;
    if (n != strlen(c->s->model_name) || memcmp(id, c->s->model_name, n) != 0) {
        api_fail(&e, 404, "invalid_request_error", "model", "model_not_found", "The model '%.*s' does not exist.",
                 (int)(n > 200 ? 200 : n), id);
        return respond_error(c, rq, &e);
    }
    jw_init(&w);
    model_object(&w, c->s);
    ok = respond_json(c, rq, 200, &w, NULL);
    jw_free(&w);
    return ok;
}

static int h_tokenize(conn *c, const http_request *rq) {
    bn_json_doc doc;
    api_error e;
    bn_error err;
    const char *text;
    size_t len, n = 0, i;
    int32_t *ids = NULL;
    int add, parse, ok;
    jw w;
    if (!oai_parse_tokenize(c->body, c->body_len, &doc, &text, &len, &add, &parse, &e)) {
        bn_json_free(&doc);
        return respond_error(c, rq, &e);
    }
    if (bn_tokenizer_encode(c->s->tok, text, len, (add ? BN_TOK_ADD_SPECIAL : 0u) | (parse ? BN_TOK_PARSE_SPECIAL : 0u),
                            &ids, &n, &err) != BN_OK) {
        bn_json_free(&doc);
        api_fail(&e, 400, "invalid_request_error", "content", NULL, "Cannot tokenize: %s", err.msg);
        return respond_error(c, rq, &e);
    }
    bn_json_free(&doc);
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "tokens");
    jw_arr(&w);
    for (i = 0; i < n; i++) jw_int(&w, ids[i]);
    jw_arr_end(&w);
    jw_obj_end(&w);
    bn_free(ids);
    ok = respond_json(c, rq, 200, &w, NULL);
    jw_free(&w);
    return ok;
}

static int h_detokenize(conn *c, const http_request *rq) {
    api_error e;
    bn_error err;
    int32_t *ids;
    int n, ok;
    char *text = NULL;
    size_t len = 0;
    jw w;
    if (!oai_parse_detokenize(c->body, c->body_len, c->s->n_vocab, &ids, &n, &e)) return respond_error(c, rq, &e);
    if (bn_tokenizer_decode(c->s->tok, ids, (size_t)n, 0u, &text, &len, &err) != BN_OK) {
        free(ids);
        api_fail(&e, 400, "invalid_request_error", "tokens", NULL, "Cannot detokenize: %s", err.msg);
        return respond_error(c, rq, &e);
    }
    free(ids);
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "content");
    jw_str(&w, text, len);
    jw_obj_end(&w);
    bn_free(text);
    ok = respond_json(c, rq, 200, &w, NULL);
    jw_free(&w);
    return ok;
}

/* Resident memory in bytes (0 where the system does not say). */
static double resident_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    int ok;
    if (!f) return 0.0;
    ok = fscanf(f, "%lu %lu", &size, &rss) == 2;
    fclose(f);
    return ok ? (double)rss * (double)sysconf(_SC_PAGESIZE) : 0.0;
}

static void metric(jw *w, const char *name, const char *type, const char *help, double v) {
    char line[512];
    snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
    jw_raw(w, line, strlen(line));
}

static void metric_hist(jw *w, const char *name, const char *help, const histogram *h) {
    char line[512];
    unsigned long long cum = 0;
    int i;
    snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    jw_raw(w, line, strlen(line));
    for (i = 0; i < N_BUCKETS; i++) {
        cum += h->counts[i];
        snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], cum);
        jw_raw(w, line, strlen(line));
    }
    snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.17g\n%s_count %llu\n", name, h->total, name, h->sum,
             name, h->total);
    jw_raw(w, line, strlen(line));
}

static int h_metrics(conn *c, const http_request *rq) {
    server *s = c->s;
    metrics m;
    jw w;
    int i, queued, active, ok;
    char line[128];
    lock(s);
    m = s->m;
    queued = s->q_len;
    active = s->n_active;
    unlock(s);
    jw_init(&w);
    jw_raw(&w, "# HELP bitnet_requests_total HTTP requests answered, by status.\n# TYPE bitnet_requests_total counter\n", 97);
    for (i = 100; i < 600; i++)
        if (m.by_status[i]) {
            snprintf(line, sizeof line, "bitnet_requests_total{status=\"%d\"} %llu\n", i, m.by_status[i]);
            jw_raw(&w, line, strlen(line));
        }
    metric(&w, "bitnet_requests_rejected_total", "counter", "Requests answered 503 because every slot and the queue were full.", (double)m.rejected);
    metric(&w, "bitnet_prompt_tokens_total", "counter", "Prompt tokens of the requests run (each choice counts its prompt).", (double)m.prompt_tokens);
    metric(&w, "bitnet_prompt_tokens_cached_total", "counter", "Prompt tokens whose keys and values the prompt cache held (not computed again).", (double)m.cached_tokens);
    metric(&w, "bitnet_generated_tokens_total", "counter", "Tokens generated (end tokens not counted).", (double)m.generated_tokens);
    metric(&w, "bitnet_tokens_per_second", "gauge", "Tokens generated per second over the last 10 seconds.", rate_get(&m, now_s()));
    metric(&w, "bitnet_requests_queued", "gauge", "Sequences waiting for a slot (a request with n choices counts n).", queued);
    metric(&w, "bitnet_requests_active", "gauge", "Sequences being generated: slots in use.", active);
    metric(&w, "bitnet_slots_total", "gauge", "Sequences that can be generated at once (--parallel).", s->n_slots);
    metric(&w, "bitnet_kv_cells_used", "gauge", "KV cache cells holding a token.", (double)m.kv_used);
    metric(&w, "bitnet_kv_cells_free", "gauge", "KV cache cells free.", (double)((long)s->n_slots * s->n_ctx - m.kv_used));
    metric_hist(&w, "bitnet_time_to_first_token_seconds", "From a request's arrival to its first generated token.", &m.ttft);
    metric_hist(&w, "bitnet_time_per_output_token_seconds", "Between consecutive tokens of a sequence.", &m.itl);
    metric(&w, "process_resident_memory_bytes", "gauge", "Resident memory of the server.", resident_bytes());
    ok = w.oom ? respond(c, rq, 500, "text/plain", "out of memory\n", 14, NULL)
               : respond(c, rq, 200, "text/plain; version=0.0.4; charset=utf-8", w.p, w.len, NULL);
    jw_free(&w);
    return ok;
}

static char *PAGE;
static size_t PAGE_LEN;

static int h_page(conn *c, const http_request *rq) {
    return respond(c, rq, 200, "text/html; charset=utf-8", PAGE, PAGE_LEN, "Cache-Control: no-cache\r\n");
}

/* ------------------------------------------------------------ routing */

typedef int (*handler_fn)(conn *c, const http_request *rq);

typedef struct route {
    const char *method, *path;
    handler_fn fn;
    int auth; /* needs the API key when one is set */
} route;

static const route ROUTES[] = {
    {"GET", "/", h_page, 0},
    {"GET", "/index.html", h_page, 0},
    {"GET", "/health", h_health, 0},
    {"GET", "/v1/health", h_health, 0},
    {"GET", "/v1/models", h_models, 1},
    {"GET", "/models", h_models, 1},
    {"POST", "/v1/chat/completions", h_chat, 1},
    {"POST", "/chat/completions", h_chat, 1},
    {"POST", "/v1/completions", h_complete, 1},
    {"POST", "/completions", h_complete, 1},
    {"POST", "/tokenize", h_tokenize, 1},
    {"POST", "/detokenize", h_detokenize, 1},
    {"GET", "/metrics", h_metrics, 1},
};

static int path_is(const http_request *rq, const char *p) {
    return rq->path_len == strlen(p) && memcmp(rq->path, p, rq->path_len) == 0;
}

/* Compares in time that does not depend on where the strings differ. */
static int same_secret(const char *a, size_t n, const char *b) {
    size_t m = strlen(b), i;
    unsigned diff = (unsigned)(n ^ m);
    for (i = 0; i < n; i++) diff |= (unsigned)(unsigned char)a[i] ^ (unsigned)(unsigned char)b[i % (m ? m : 1)];
    return diff == 0;
}

static int authorized(const server *s, const http_request *rq) {
    size_t n;
    const char *v;
    if (!s->o.api_key) return 1;
    v = http_header_value(rq, "authorization", &n);
    if (!v || n < 7 || (memcmp(v, "Bearer ", 7) != 0 && memcmp(v, "bearer ", 7) != 0)) return 0;
    return same_secret(v + 7, n - 7, s->o.api_key);
}

static int dispatch(conn *c, const http_request *rq) {
    server *s = c->s;
    api_error e;
    char allow[64] = "";
    const char *method = rq->method;
    size_t i;
    c->head_only = !strcmp(method, "HEAD");
    if (c->head_only) method = "GET";
    if (!strcmp(method, "OPTIONS")) /* CORS preflight: any origin may call the API (with its key) */
        return respond(c, rq, 204, NULL, NULL, 0,
                       "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
                       "Access-Control-Allow-Headers: Authorization, Content-Type\r\nAccess-Control-Max-Age: 86400\r\n");
    for (i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        const route *r = &ROUTES[i];
        if (!path_is(rq, r->path)) continue;
        if (strcmp(method, r->method) != 0) {
            snprintf(allow, sizeof allow, "%s%s", r->method, strcmp(r->method, "GET") ? "" : ", HEAD");
            continue;
        }
        if (r->auth && !authorized(s, rq)) {
            api_fail(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                     "Incorrect API key provided: send 'Authorization: Bearer KEY' with the key given to bitnet serve --api-key.");
            return respond_error(c, rq, &e);
        }
        return r->fn(c, rq);
    }
    if (!allow[0] && rq->path_len > 11 && memcmp(rq->path, "/v1/models/", 11) == 0) {
        if (strcmp(method, "GET") != 0) strcpy(allow, "GET, HEAD");
        else if (!authorized(s, rq)) {
            api_fail(&e, 401, "invalid_request_error", NULL, "invalid_api_key", "Incorrect API key provided.");
            return respond_error(c, rq, &e);
        } else
            return h_model(c, rq, rq->path + 11, rq->path_len - 11);
    }
    if (allow[0]) {
        api_fail(&e, 405, "invalid_request_error", allow, "method_not_allowed", "Method %s is not allowed on %.*s (use %s).",
                 rq->method, (int)(rq->path_len > 200 ? 200 : rq->path_len), rq->path, allow);
        return respond_error(c, rq, &e);
    }
    api_fail(&e, 404, "invalid_request_error", NULL, "unknown_url", "Unknown request URL: %s %.*s.", rq->method,
             (int)(rq->path_len > 200 ? 200 : rq->path_len), rq->path);
    return respond_error(c, rq, &e);
}

/* ------------------------------------------------------------ connection threads */

static void count_status(server *s, int status) {
    lock(s);
    if (status >= 100 && status < 600) s->m.by_status[status]++;
    unlock(s);
}

/* Closes after the response has gone: stop sending, drain what the client still sends
   for a moment (closing with unread bytes would reset the connection and could lose
   the response), then close. */
static void linger_close(int fd) {
    char sink[4096];
    double deadline = now_s() + 1.0;
    size_t drained = 0;
    shutdown(fd, SHUT_WR);
    while (drained < ((size_t)16 << 20) && wait_readable(fd, deadline) > 0) {
        ssize_t k = recv(fd, sink, sizeof sink, 0);
        if (k <= 0) break;
        drained += (size_t)k;
    }
    close(fd);
}

static void conn_unregister(server *s, int slot) {
    lock(s);
    s->conn_fds[slot] = -1;
    s->n_conns--;
    pthread_cond_broadcast(&s->idle_cond);
    unlock(s);
}

static void *conn_main(void *arg) {
    conn *c = (conn *)arg;
    server *s = c->s;
    int slot;
    for (;;) {
        http_request rq;
        double t0;
        int st;
        c->body = c->body_owned = NULL;
        c->body_len = c->consumed = 0;
        c->status = 0;
        c->prompt_tokens = c->completion_tokens = 0;
        c->have_head = 0;
        st = read_request(c, &rq);
        t0 = now_s();
        if (st == -1) break;
        if (st != HTTP_DONE) {
            respond_status(c, st);
            count_status(s, st);
            if (c->have_head)
                log_line("%s %s %s %d (request not read)", c->peer, rq.method, c->path, st);
            else
                log_line("%s - - %d (request not read)", c->peer, st);
            break;
        }
        dispatch(c, &rq);
        count_status(s, c->status);
        log_line("%s %s %s %d prompt=%d gen=%d %.1f ms", c->peer, rq.method, c->path, c->status, c->prompt_tokens,
                 c->completion_tokens, (now_s() - t0) * 1000.0);
        free(c->body_owned);
        c->body_owned = NULL;
        if (c->close_after || !rq.keep_alive) break;
        memmove(c->buf, c->buf + c->consumed, c->len - c->consumed); /* a pipelined request may follow */
        c->len -= c->consumed;
        lock(s);
        st = s->stopping;
        unlock(s);
        if (st) break;
    }
    free(c->body_owned);
    linger_close(c->fd);
    free(c->buf);
    slot = c->slot;
    free(c);
    conn_unregister(s, slot);
    return NULL;
}

/* A connection past MAX_CONNS gets its 503 without a thread of its own. */
static void refuse_connection(int fd) {
    static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                              "Connection: close\r\nContent-Length: 110\r\n\r\n"
                              "{\"error\":{\"message\":\"Too many open connections.\",\"type\":\"server_error\",\"param\":null,\"code\":\"server_busy\"}}";
    send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void start_connection(server *s, int fd, const struct sockaddr_storage *addr) {
    conn *c;
    pthread_t th;
    pthread_attr_t attr;
    int one = 1, slot;
    struct timeval tv;
    lock(s);
    for (slot = 0; slot < MAX_CONNS && s->conn_fds[slot] >= 0; slot++) {
    }
    if (slot == MAX_CONNS || s->stopping) {
        s->m.by_status[503]++;
        unlock(s);
        refuse_connection(fd);
        return;
    }
    s->conn_fds[slot] = fd;
    s->n_conns++;
    unlock(s);
    c = (conn *)calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        conn_unregister(s, slot);
        return;
    }
    c->s = s;
    c->fd = fd;
    c->slot = slot;
    if (addr->ss_family == AF_INET6) {
        char a[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, a, sizeof a);
        snprintf(c->peer, sizeof c->peer, "[%s]:%d", a, ntohs(((const struct sockaddr_in6 *)addr)->sin6_port));
    } else {
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, a, sizeof a);
        snprintf(c->peer, sizeof c->peer, "%s:%d", a, ntohs(((const struct sockaddr_in *)addr)->sin_port));
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* SSE events go out as they are written */
    tv.tv_sec = s->o.timeout_s;                                  /* a client that stops reading is dropped */
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, CONN_STACK);
    if (pthread_create(&th, &attr, conn_main, c) != 0) {
        close(fd);
        free(c);
        conn_unregister(s, slot);
    }
    pthread_attr_destroy(&attr);
}

static int listen_on(const char *host, int port, int *bound_port) {
    struct addrinfo hints, *res = NULL, *ai;
    char ps[16];
    int fd = -1, one = 1, rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(ps, sizeof ps, "%d", port);
    rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "bitnet serve: cannot resolve --host %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) break;
        close(fd);
        fd = -1;
    }
    if (fd < 0) fprintf(stderr, "bitnet serve: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
    freeaddrinfo(res);
    if (fd >= 0) {
        struct sockaddr_storage a;
        socklen_t n = sizeof a;
        *bound_port = port;
        if (getsockname(fd, (struct sockaddr *)&a, &n) == 0)
            *bound_port = a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
                                                  : ntohs(((struct sockaddr_in *)&a)->sin_port);
    }
    return fd;
}

static volatile sig_atomic_t STOP;
static void on_signal(int sig) {
    (void)sig;
    STOP = 1;
}

/* Loads the model, tokenizer and context, and makes the batcher. Returns an exit status. */
static int server_open(server *s) {
    bn_error err;
    bn_batcher_params bp = bn_batcher_default_params();
    const serve_args *o = &s->o;
    const char *base;
    const bn_config *cfg;
    int i, rc = cli_session_open(&s->sess, &o->model, o->parallel, 1);
    if (rc) return rc;
    s->model = s->sess.model;
    s->tok = s->sess.tok;
    s->ctx = s->sess.ctx;
    cfg = bn_model_config(s->model);
    /* --grammar / --json-schema / --json: the default for requests without response_format; the
       tokens' trie serves response_format too */
    rc = cli_generation_grammar(&s->o.gen, &cmd_serve, &s->sess);
    if (rc) return rc;
    s->grammar_vocab = s->o.gen.grammar_vocab;
    if (!s->grammar_vocab) {
        int32_t eos[CLI_MAX_EOS];
        if (bn_grammar_vocab_new(&s->own_vocab, s->tok, eos, cli_end_tokens(&s->sess, eos), &err) != BN_OK) {
            fprintf(stderr, "bitnet serve: %s\n", err.msg);
            return EXIT_RUN;
        }
        s->grammar_vocab = s->own_vocab;
    }
    bp.n_slots = o->parallel; /* end tokens: the model's and the tokenizer's (the library's default) */
    if (bn_batcher_new(&s->batcher, s->ctx, &bp, &err) != BN_OK) {
        fprintf(stderr, "bitnet serve: %s\n", err.msg);
        return EXIT_USAGE;
    }
    s->n_vocab = cfg->vocab_size;
    s->n_ctx = bn_context_get_params(s->ctx)->n_ctx;
    s->n_slots = o->parallel;
    s->tmpl = o->template_id == TEMPLATE_PLAIN  ? BN_CHAT_UNKNOWN
              : o->template_id == BN_CHAT_AUTO ? bn_tokenizer_chat_template(s->tok)
                                               : (bn_chat_template)o->template_id;
    base = strrchr(o->model.dir, '/');
    base = base && base[1] ? base + 1 : o->model.dir;
    snprintf(s->model_name, sizeof s->model_name, "%s", o->alias ? o->alias : base);
    s->lim.n_vocab = s->n_vocab;
    s->lim.max_n = MAX_CHOICES;
    s->lim.sampler = o->gen.sampler;
    s->lim.max_tokens = o->gen.n_predict;
    s->lim.seed = o->gen.seed;
    s->lim.stop = o->gen.stops.items;
    s->lim.n_stop = o->gen.stops.n;
    s->lim.ignore_eos = o->gen.ignore_eos;
    s->lim.grammar_vocab = s->grammar_vocab;
    s->m.ttft.bounds = TTFT_BOUNDS;
    s->m.itl.bounds = ITL_BOUNDS;
    s->created = (long long)time(NULL);
    s->queue = (choice **)calloc((size_t)(s->n_slots + o->queue + MAX_CHOICES), sizeof *s->queue);
    s->active = (choice **)calloc((size_t)s->n_slots, sizeof *s->active);
    s->conn_fds = (int *)malloc(sizeof(int) * MAX_CONNS);
    if (!s->queue || !s->active || !s->conn_fds) {
        fprintf(stderr, "bitnet serve: out of memory\n");
        return EXIT_RUN;
    }
    for (i = 0; i < MAX_CONNS; i++) s->conn_fds[i] = -1;
    fprintf(stderr, "bitnet serve: %s, %d slots x %d tokens of context, chat template %s\n", s->model_name, s->n_slots,
            s->n_ctx, s->tmpl == BN_CHAT_UNKNOWN ? "plain" : bn_chat_template_name(s->tmpl));
    return EXIT_OK;
}

static void server_close(server *s) {
    free(s->queue);
    free(s->active);
    free(s->conn_fds);
    bn_batcher_free(s->batcher);
    cli_generation_free(&s->o.gen);
    bn_grammar_vocab_free(s->own_vocab);
    cli_session_free(&s->sess);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->sched_cond);
    pthread_cond_destroy(&s->idle_cond);
}

/* The page's lines joined, once. */
static int build_page(void) {
    size_t n = 0, i;
    for (i = 0; SERVE_PAGE[i]; i++) n += strlen(SERVE_PAGE[i]) + 1;
    PAGE = (char *)malloc(n + 1);
    if (!PAGE) return 0;
    for (i = 0; SERVE_PAGE[i]; i++) {
        size_t k = strlen(SERVE_PAGE[i]);
        memcpy(PAGE + PAGE_LEN, SERVE_PAGE[i], k);
        PAGE_LEN += k;
        PAGE[PAGE_LEN++] = '\n';
    }
    return 1;
}

/* Stops taking work, ends every request, waits for the connections to close. */
static void server_stop(server *s) {
    int i;
    double deadline = now_s() + 10.0;
    lock(s);
    s->stopping = 1;
    pthread_cond_signal(&s->sched_cond);
    for (i = 0; i < MAX_CONNS; i++)
        if (s->conn_fds[i] >= 0) shutdown(s->conn_fds[i], SHUT_RD); /* wakes a thread waiting for a request */
    unlock(s);
    pthread_join(s->scheduler, NULL);
    lock(s);
    while (s->n_conns > 0 && now_s() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&s->idle_cond, &s->lock, &ts);
    }
    unlock(s);
}

static int serve_run(void *p, int argc, char **argv) {
    server *s = (server *)calloc(1, sizeof(server));
    struct sigaction sa;
    int rc, port = 0;
    (void)argc;
    (void)argv;
    if (!s) return EXIT_RUN;
    s->o = *(const serve_args *)p;
    if (!s->o.model.dir) {
        free(s);
        return cli_usage_error(&cmd_serve, "no model given: use -m DIR");
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->sched_cond, NULL);
    pthread_cond_init(&s->idle_cond, NULL);
    s->listen_fd = -1;
    rc = build_page() ? server_open(s) : EXIT_RUN;
    if (!rc) {
        s->listen_fd = listen_on(s->o.host, s->o.port, &port);
        if (s->listen_fd < 0) rc = EXIT_RUN;
    }
    if (!rc && pthread_create(&s->scheduler, NULL, scheduler_main, s) != 0) rc = EXIT_RUN;
    if (rc) {
        if (s->listen_fd >= 0) close(s->listen_fd);
        server_close(s);
        free(PAGE);
        free(s);
        return rc;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    fprintf(stderr, "bitnet serve: listening on http://%s:%d%s\n", strchr(s->o.host, ':') ? "[::1]" : s->o.host, port,
            s->o.api_key ? " (API key required)" : "");
    while (!STOP) {
        struct pollfd p;
        struct sockaddr_storage addr;
        socklen_t n = sizeof addr;
        int fd;
        p.fd = s->listen_fd;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, 200) <= 0) continue;
        fd = accept(s->listen_fd, (struct sockaddr *)&addr, &n);
        if (fd >= 0) start_connection(s, fd, &addr);
    }
    fprintf(stderr, "bitnet serve: stopping\n");
    close(s->listen_fd);
    server_stop(s);
    server_close(s);
    free(PAGE);
    free(s);
    return EXIT_OK;
}

#endif /* _WIN32 */
