/* bench_serve.c: `bitnet bench-serve`, a benchmark of the server (not a test): total tokens/s
   and time to first token at 1, 4, 8 and 16 concurrent streaming clients, beside what
   `bitnet bench-batch` measures for the same batch sizes without HTTP in between.

   It starts `bitnet serve` (this binary, /proc/self/exe) on a free loopback port with
   --parallel the largest client count, runs the clients from threads here, stops the server,
   then runs `bitnet bench-batch` with the same prompt length and token count. Every request
   is a completion of a prompt of random token ids, greedy, with ignore_eos, streamed. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "../bitnet.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MODEL_DIR "build/bitnet-2b4t-synth"
#define MAX_CLIENTS 64

typedef struct bench_serve_args {
    cli_model model; /* -m and the engine options, passed on to serve and bench-batch */
    const char *clients;
    int tokens, prompt_len, rounds, no_batch;
} bench_serve_args;

static void bench_serve_defaults(void *p) {
    bench_serve_args *a = (bench_serve_args *)p;
    cli_model_defaults(&a->model);
    a->model.dir = BENCH_MODEL_DIR;
    a->clients = "1,4,8,16";
    a->tokens = 64;
    a->prompt_len = 16;
    a->rounds = 2;
}

static const cli_opt BENCH_SERVE_OPTIONS[] = {
    CLI_STRING("-m, --model", "DIR", bench_serve_args, model.dir, "model folder"),
    CLI_STRING("-c, --clients", "LIST", bench_serve_args, clients, "the numbers of concurrent clients to measure"),
    CLI_INT("-n, --tokens", "N", bench_serve_args, tokens, 1, 100000, "tokens generated per request (end tokens ignored)"),
    CLI_INT("--prompt-len", "N", bench_serve_args, prompt_len, 1, 4096, "random prompt ids per request"),
    CLI_INT("-r, --rounds", "N", bench_serve_args, rounds, 1, 1000, "requests each client sends, one after another"),
    CLI_FLAG("--no-batch", bench_serve_args, no_batch, "skip the bench-batch run"),
    CLI_INCLUDE("engine options", bench_serve_args, model, CLI_ENGINE_OPTIONS),
    CLI_END};

static int bench_serve_run(void *p, int argc, char **argv);

const cli_command cmd_bench_serve = {
    "bench-serve",
    "the server's tok/s and time to first token at 1-16 clients, beside bench-batch",
    "[-m DIR] [options]",
    "A benchmark of bitnet serve, not a test: for each client count C it starts C streaming clients\n"
    "that each send --rounds completions of --prompt-len random token ids, greedy, --tokens new tokens\n"
    "each, and prints the total generated tokens/s (all tokens over the wall time of the phase) and\n"
    "the time to first token, median and 99th percentile. Then it runs bitnet bench-batch for the\n"
    "same batch sizes, prompt length and token count and prints the server's rate against it. The\n"
    "server (this binary, started on a free loopback port; its log: build/bench-serve.log) runs with\n"
    "--parallel the largest C, and with the LLaMA 3 tokenizer of tests/fixtures when DIR has none.\n"
    "DIR defaults to " BENCH_MODEL_DIR ", which tools/gen_synthetic.py writes on first use (the\n"
    "2B4T shape, random weights). The figures depend on the machine and its load: quote them with\n"
    "both.\n",
    BENCH_SERVE_OPTIONS, sizeof(bench_serve_args), bench_serve_defaults, bench_serve_run, 0, 0};

#ifdef _WIN32
static int bench_serve_run(void *p, int argc, char **argv) {
    (void)p;
    (void)argc;
    (void)argv;
    fprintf(stderr, "bitnet bench-serve: not available on Windows (bitnet serve is POSIX only)\n");
    return EXIT_RUN;
}
#else

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct bench_opts {
    const bench_serve_args *a;
    int clients[16], n_clients, tokens, prompt_len, rounds;
} bench_opts;

typedef struct client {
    int port, tokens, prompt_len, rounds, id;
    double *ttft;       /* rounds entries */
    int generated;      /* completion tokens the server reported */
    int failed;
} client;

static double wall(void) { return bn_time_s(); }

static int connect_local(int port) {
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request over HTTP/1.0 (the answer ends when the server closes); on_data sees what has
   arrived so far. Returns the whole answer (malloc'd) or NULL. */
static char *http_exchange(int port, const char *req, size_t n, void (*on_data)(void *, const char *, size_t), void *user) {
    int fd = connect_local(port);
    size_t len = 0, cap = 1 << 14;
    char *buf = (char *)malloc(cap);
    if (fd < 0 || !buf) {
        if (fd >= 0) close(fd);
        free(buf);
        return NULL;
    }
    if (send(fd, req, n, 0) != (ssize_t)n) len = 0;
    else
        for (;;) {
            ssize_t k;
            if (cap - len < 4096) {
                char *p = (char *)realloc(buf, cap *= 2);
                if (!p) break;
                buf = p;
            }
            k = recv(fd, buf + len, cap - len - 1, 0);
            if (k <= 0) break;
            len += (size_t)k;
            buf[len] = 0;
            if (on_data) on_data(user, buf, len);
        }
    close(fd);
    buf[len] = 0;
    return buf;
}

typedef struct first_event {
    double t0, at;
} first_event;

static void note_first_event(void *user, const char *buf, size_t len) {
    first_event *f = (first_event *)user;
    (void)len;
    if (f->at == 0.0 && strstr(buf, "data: {")) f->at = wall();
}

/* The completion tokens in the last usage of a stream, or -1. */
static int usage_tokens(const char *answer) {
    const char *u = answer, *p;
    while ((p = strstr(u, "\"completion_tokens\":"))) u = p + 1;
    return u == answer ? -1 : atoi(u + strlen("completion_tokens\":"));
}

static void *client_main(void *arg) {
    client *c = (client *)arg;
    uint64_t rng = 0x5EED + (uint64_t)c->id * 7919;
    int r, i;
    for (r = 0; r < c->rounds; r++) {
        char body[8192], req[9000];
        int at, n;
        first_event f;
        char *answer;
        at = snprintf(body, sizeof body, "{\"prompt\":[");
        for (i = 0; i < c->prompt_len && at < (int)sizeof body - 32; i++)
            at += snprintf(body + at, sizeof body - (size_t)at, "%s%d", i ? "," : "", (int)(bn_rng_next(&rng) % 1000));
        snprintf(body + at, sizeof body - (size_t)at,
                 "],\"max_tokens\":%d,\"temperature\":0,\"ignore_eos\":true,\"return_tokens\":true,\"stream\":true,"
                 "\"stream_options\":{\"include_usage\":true}}", c->tokens);
        n = snprintf(req, sizeof req, "POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     (int)strlen(body), body);
        f.t0 = wall();
        f.at = 0.0;
        answer = http_exchange(c->port, req, (size_t)n, note_first_event, &f);
        if (!answer || !strstr(answer, "data: [DONE]") || f.at == 0.0) c->failed++;
        else {
            c->ttft[r] = f.at - f.t0;
            c->generated += usage_tokens(answer);
        }
        free(answer);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of n sorted values (nearest rank). */
static double quantile(const double *v, int n, double q) {
    int k = (int)(q * n + 0.999999) - 1;
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

typedef struct phase {
    double tok_s, p50, p99;
    int requests, failed;
} phase;

static phase run_phase(int port, const bench_opts *o, int n_clients) {
    client cl[MAX_CLIENTS];
    pthread_t th[MAX_CLIENTS];
    double *ttft = (double *)calloc((size_t)n_clients * (size_t)o->rounds, sizeof(double)), t0, dt;
    phase ph;
    int i, k, total = 0, n = 0;
    memset(&ph, 0, sizeof ph);
    if (!ttft) return ph;
    for (i = 0; i < n_clients; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].port = port;
        cl[i].tokens = o->tokens;
        cl[i].prompt_len = o->prompt_len;
        cl[i].rounds = o->rounds;
        cl[i].id = i;
        cl[i].ttft = ttft + (size_t)i * (size_t)o->rounds;
    }
    t0 = wall();
    for (i = 0; i < n_clients; i++) pthread_create(&th[i], NULL, client_main, &cl[i]);
    for (i = 0; i < n_clients; i++) pthread_join(th[i], NULL);
    dt = wall() - t0;
    for (i = 0; i < n_clients; i++) {
        total += cl[i].generated;
        ph.failed += cl[i].failed;
        for (k = 0; k < o->rounds; k++)
            if (cl[i].ttft[k] > 0.0) ttft[n++] = cl[i].ttft[k];
    }
    qsort(ttft, (size_t)n, sizeof(double), cmp_double);
    ph.tok_s = total / dt;
    ph.requests = n;
    if (n > 0) {
        ph.p50 = quantile(ttft, n, 0.50);
        ph.p99 = quantile(ttft, n, 0.99);
    }
    free(ttft);
    return ph;
}

/* A free TCP port on 127.0.0.1 (bound and released: the server takes it right after). */
static int free_port(void) {
    struct sockaddr_in a;
    socklen_t n = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &n) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* The engine options for a child (serve, bench-batch): appended to argv[n..]; returns the new n. */
typedef struct engine_argv {
    char threads[16];
} engine_argv;

static int child_args(const bench_opts *o, engine_argv *buf, const char **argv, int n) {
    const cli_model *m = &o->a->model;
    snprintf(buf->threads, sizeof buf->threads, "%d", m->n_threads);
    argv[n++] = "-t", argv[n++] = buf->threads;
    argv[n++] = "--layout", argv[n++] = m->layout == BN_TLAYOUT_I2 ? "i2" : m->layout == BN_TLAYOUT_TQ1 ? "tq1" : "auto";
    argv[n++] = "--head", argv[n++] = m->head < 0 ? "auto" : cli_ftype_name(m->head);
    argv[n++] = "--kv", argv[n++] = cli_ftype_name(m->kv);
    argv[n++] = "--kernel", argv[n++] = bn_kernel_name((bn_kernel)m->kernel);
    if (m->metal) argv[n++] = "--metal";
    argv[n] = NULL;
    return n;
}

#define FALLBACK_TOKENIZER "tests/fixtures/tokenizers/llama3"

static pid_t start_server(const bench_opts *o, int port, int parallel) {
    char ps[16], pp[16], pc[16], tj[4096];
    const char *argv[32];
    engine_argv eb;
    int n = 0;
    pid_t pid;
    snprintf(ps, sizeof ps, "%d", port);
    snprintf(pp, sizeof pp, "%d", parallel);
    snprintf(pc, sizeof pc, "%d", o->prompt_len + o->tokens + 8);
    argv[n++] = "bitnet";
    argv[n++] = "serve";
    argv[n++] = "-m", argv[n++] = o->a->model.dir;
    argv[n++] = "--port", argv[n++] = ps;
    argv[n++] = "--parallel", argv[n++] = pp;
    argv[n++] = "--ctx-size", argv[n++] = pc;
    argv[n++] = "--timeout", argv[n++] = "600";
    /* the server needs a tokenizer, though the prompts are ids: the synthetic model has none, and
       LLaMA 3's (the fixture) has its vocabulary size */
    snprintf(tj, sizeof tj, "%s/tokenizer.json", o->a->model.dir);
    if (access(tj, F_OK) != 0 && access(FALLBACK_TOKENIZER "/tokenizer.json", F_OK) == 0)
        argv[n++] = "--tokenizer", argv[n++] = FALLBACK_TOKENIZER;
    child_args(o, &eb, argv, n);
    pid = fork();
    if (pid == 0) {
        FILE *log = freopen("build/bench-serve.log", "w", stderr);
        (void)log;
        execv("/proc/self/exe", (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_healthy(int port, pid_t pid) {
    double end = wall() + 300.0;
    while (wall() < end) {
        static const char req[] = "GET /health HTTP/1.0\r\n\r\n";
        char *answer = http_exchange(port, req, sizeof req - 1, NULL, NULL);
        int ok = answer && strncmp(answer, "HTTP/1.1 200", 12) == 0;
        free(answer);
        if (ok) return 1;
        if (waitpid(pid, NULL, WNOHANG) == pid) return 0;
        {
            struct timespec ts = {0, 100000000L};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

/* bench-batch's median total tok/s for each client count; 0 where it gave none. */
static void run_bench_batch(const bench_opts *o, double *rate) {
    char list[128] = "", pn[16], pl[16], cmd[1024];
    const char *argv[32];
    engine_argv eb;
    int i, n = 0, at = 0, fds[2];
    pid_t pid;
    for (i = 0; i < o->n_clients; i++) {
        rate[i] = 0.0;
        at += snprintf(list + at, sizeof list - (size_t)at, "%s%d", i ? "," : "", o->clients[i]);
    }
    snprintf(pn, sizeof pn, "%d", o->tokens);
    snprintf(pl, sizeof pl, "%d", o->prompt_len);
    argv[n++] = "bitnet";
    argv[n++] = "bench-batch";
    argv[n++] = "-m", argv[n++] = o->a->model.dir;
    argv[n++] = "-b", argv[n++] = list;
    argv[n++] = "-n", argv[n++] = pn;
    argv[n++] = "--prompt-len", argv[n++] = pl;
    argv[n++] = "-r", argv[n++] = "1";
    n = child_args(o, &eb, argv, n);
    if (pipe(fds) != 0) return;
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execv("/proc/self/exe", (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    {
        FILE *f = fdopen(fds[0], "r");
        while (f && fgets(cmd, sizeof cmd, f)) {
            int b;
            double r;
            if (sscanf(cmd, "%d %lf", &b, &r) == 2)
                for (i = 0; i < o->n_clients; i++)
                    if (o->clients[i] == b) rate[i] = r;
        }
        if (f) fclose(f);
    }
    waitpid(pid, NULL, 0);
}

static int bench_serve_run(void *p, int argc, char **argv) {
    bench_opts o;
    phase ph[16];
    double batch[16];
    int i, port, max_c = 1, rc = -1;
    const char *c;
    pid_t pid;
    (void)argc;
    (void)argv;
    memset(&o, 0, sizeof o);
    o.a = (const bench_serve_args *)p;
    o.tokens = o.a->tokens;
    o.prompt_len = o.a->prompt_len;
    o.rounds = o.a->rounds;
    for (c = o.a->clients; *c && o.n_clients < 16;) {
        char *end;
        long k = strtol(c, &end, 10);
        if (end == c || k < 1 || k > MAX_CLIENTS || (*end && *end != ','))
            return cli_usage_error(&cmd_bench_serve, "-c expects client counts in 1..%d such as 1,4,8,16", MAX_CLIENTS);
        o.clients[o.n_clients++] = (int)k;
        c = *end ? end + 1 : end;
    }
    if (o.n_clients == 0) return cli_usage_error(&cmd_bench_serve, "-c expects client counts such as 1,4,8,16");
    for (i = 0; i < o.n_clients; i++) max_c = o.clients[i] > max_c ? o.clients[i] : max_c;
    if (o.a->model.metal) { /* say here, not only in the server's log, when --metal cannot be had */
        bn_context_params cp = bn_context_default_params();
        if (!cli_backend(&o.a->model, &cp)) return EXIT_RUN;
    }
    if (access(o.a->model.dir, F_OK) != 0 && !strcmp(o.a->model.dir, BENCH_MODEL_DIR)) {
        printf("bench-serve: generating the 2B4T-shaped synthetic model in %s (once)\n", BENCH_MODEL_DIR);
        fflush(stdout);
        if (system("python3 tools/gen_synthetic.py " BENCH_MODEL_DIR) != 0) return EXIT_LOAD;
    }
    signal(SIGPIPE, SIG_IGN);
    port = free_port();
    pid = start_server(&o, port, max_c);
    if (pid < 0 || !wait_healthy(port, pid)) {
        fprintf(stderr, "bitnet bench-serve: the server did not start (see build/bench-serve.log)\n");
        if (pid > 0) kill(pid, SIGTERM), waitpid(pid, NULL, 0);
        return EXIT_RUN;
    }
    printf("bench-serve: %s, bitnet serve --parallel %d on 127.0.0.1:%d, prompt %d ids, %d tokens per request, %d rounds\n",
           o.a->model.dir, max_c, port, o.prompt_len, o.tokens, o.rounds);
    fflush(stdout);
    {
        bench_opts warm = o;
        warm.rounds = 1;
        warm.tokens = 4;
        run_phase(port, &warm, 1); /* first touch of the weights and the KV cache */
    }
    for (i = 0; i < o.n_clients; i++) {
        ph[i] = run_phase(port, &o, o.clients[i]);
        fprintf(stderr, "bench-serve: %d clients: %.1f tok/s\n", o.clients[i], ph[i].tok_s);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (!o.a->no_batch) run_bench_batch(&o, batch);
    printf("%8s %12s %12s %9s %10s %10s %9s\n", "clients", "serve tok/s", "batch tok/s", "vs batch", "TTFT p50", "TTFT p99",
           "requests");
    for (i = 0; i < o.n_clients; i++) {
        printf("%8d %12.1f ", o.clients[i], ph[i].tok_s);
        if (!o.a->no_batch && batch[i] > 0.0) printf("%12.1f %8.1f%% ", batch[i], 100.0 * ph[i].tok_s / batch[i]);
        else printf("%12s %9s ", "-", "-");
        printf("%8.0f ms %7.0f ms %9d%s\n", ph[i].p50 * 1e3, ph[i].p99 * 1e3, ph[i].requests,
               ph[i].failed ? " (some failed)" : "");
        if (ph[i].failed) rc = EXIT_RUN;
    }
    return rc < 0 ? EXIT_OK : rc;
}

#endif /* _WIN32 */
