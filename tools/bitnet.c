/* bitnet: the command-line front end of bitnet.h.

       bitnet run     -m DIR -p "prompt"     generate text (streams to stdout)
       bitnet chat    -m DIR                 interactive chat with the model's template
       bitnet ppl     -m DIR -f FILE         perplexity of a text file
       bitnet inspect -m DIR                 config, tensors, weight variant
       bitnet bench   [-m DIR]              prompt and decode speed against the memory bandwidth
       bitnet bench-batch -m DIR             total tok/s when decoding B sequences at once
       bitnet tokenize   -m DIR [--special] [--add-special] TEXT | -f FILE   token ids as a JSON list
       bitnet detokenize -m DIR [--skip-special] ID...                         the text of token ids

   Each command is a function in the COMMANDS table at the end.

   Exit status (scripts can rely on it):
       0  success
       1  failure while running (I/O, out of memory, context full, bad input data)
       2  usage error (unknown option, missing or malformed argument)
       3  the model or tokenizer could not be loaded

   Build: make (or: cc -O2 tools/[a-z]*.c -o bitnet -lm -lpthread). */
#define _DEFAULT_SOURCE /* lets bitnet.h ask Linux for huge pages for the weights (madvise) */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>
#ifdef _WIN32
#include <io.h>
#define is_terminal(fd) _isatty(fd)
#else
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#define is_terminal(fd) isatty(fd)
#endif

#define BENCH_MODEL "build/bitnet-2b4t-synth" /* bitnet bench's model when -m is not given */

static const char *EXIT_HELP = "exit status: 0 ok, 1 failure while running, 2 usage error, 3 model/tokenizer load failed\n";

/* Reads a whole file, or standard input for "-". */
static int read_input(const char *path, char **data, size_t *len) {
    bn_error err;
    if (strcmp(path, "-") == 0) {
        size_t cap = 1 << 16, n = 0, got;
        char *buf = (char *)malloc(cap);
        while (buf && (got = fread(buf + n, 1, cap - n, stdin)) > 0) {
            n += got;
            if (n == cap) {
                char *nb = (char *)realloc(buf, cap *= 2);
                if (!nb) free(buf);
                buf = nb;
            }
        }
        if (!buf) {
            fprintf(stderr, "bitnet: out of memory reading standard input\n");
            return 0;
        }
        *data = buf;
        *len = n;
        return 1;
    }
    if (bn_read_file(path, data, len, &err) != BN_OK) {
        fprintf(stderr, "bitnet: %s\n", err.msg);
        return 0;
    }
    return 1;
}

static int load_tokenizer(const char *dir, bn_tokenizer **tok) {
    bn_error err;
    if (bn_tokenizer_load(tok, dir, &err) != BN_OK) {
        fprintf(stderr, "bitnet: cannot load the tokenizer: %s\n", err.msg);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------- tokenize */

static const char *TOKENIZE_HELP =
    "usage: bitnet tokenize -m DIR [options] TEXT\n"
    "       bitnet tokenize -m DIR [options] -f FILE     (FILE '-' is standard input)\n"
    "Prints the token ids of the text as a JSON list on one line.\n"
    "  -m, --model DIR     folder with tokenizer.json (and tokenizer_config.json)\n"
    "  -f, --file FILE     tokenize the file's bytes instead of TEXT\n"
    "      --special       special tokens written in the text (e.g. <|eot_id|>) become their ids\n"
    "      --add-special   let the tokenizer add its BOS etc. (HF add_special_tokens=True)\n"
    "      --replace-invalid  invalid UTF-8 becomes U+FFFD instead of an error\n"
    "      --timing        print load time, memory and encode speed on stderr\n";

static int cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL, *file = NULL, *text = NULL;
    unsigned flags = 0;
    bn_tokenizer *tok = NULL;
    char *data = NULL;
    size_t len = 0, n = 0, i;
    int32_t *ids = NULL;
    bn_error err;
    int a, timing = 0;
    double t0, t1, t2;
    for (a = 1; a < argc; a++) {
        const char *s = argv[a];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) { printf("%s%s", TOKENIZE_HELP, EXIT_HELP); return EXIT_OK; }
        if ((!strcmp(s, "-m") || !strcmp(s, "--model")) && a + 1 < argc) dir = argv[++a];
        else if ((!strcmp(s, "-f") || !strcmp(s, "--file")) && a + 1 < argc) file = argv[++a];
        else if (!strcmp(s, "--special")) flags |= BN_TOK_PARSE_SPECIAL;
        else if (!strcmp(s, "--add-special")) flags |= BN_TOK_ADD_SPECIAL;
        else if (!strcmp(s, "--replace-invalid")) flags |= BN_TOK_REPLACE_INVALID;
        else if (!strcmp(s, "--timing")) timing = 1;
        else if (!strcmp(s, "--")) { if (a + 1 < argc && !text) text = argv[++a]; }
        else if (s[0] == '-' && s[1] != 0) { fprintf(stderr, "bitnet tokenize: unknown option or missing value: %s\n%s", s, TOKENIZE_HELP); return EXIT_USAGE; }
        else if (!text) text = s;
        else { fprintf(stderr, "bitnet tokenize: one TEXT only (quote it)\n"); return EXIT_USAGE; }
    }
    if (!dir || (!text && !file) || (text && file)) {
        fprintf(stderr, "%s", TOKENIZE_HELP);
        return EXIT_USAGE;
    }
    if (file && !read_input(file, &data, &len)) return EXIT_RUN;
    if (!file) len = strlen(text);
    t0 = bn_time_s();
    if (!load_tokenizer(dir, &tok)) {
        free(data);
        return EXIT_LOAD;
    }
    t1 = bn_time_s();
    if (bn_tokenizer_encode(tok, file ? data : text, len, flags, &ids, &n, &err) != BN_OK) {
        fprintf(stderr, "bitnet tokenize: %s\n", err.msg);
        bn_tokenizer_free(tok);
        free(data);
        return EXIT_RUN;
    }
    t2 = bn_time_s();
    if (timing)
        fprintf(stderr, "load %.3f s (%.1f MiB); encode %lu bytes -> %lu tokens in %.3f s (%.2f MB/s)\n", t1 - t0,
                (double)bn_tokenizer_memory(tok) / (1024.0 * 1024.0), (unsigned long)len, (unsigned long)n, t2 - t1,
                t2 > t1 ? (double)len / 1e6 / (t2 - t1) : 0.0);
    putchar('[');
    for (i = 0; i < n; i++) printf(i ? ", %d" : "%d", (int)ids[i]);
    printf("]\n");
    bn_free(ids);
    bn_tokenizer_free(tok);
    free(data);
    return EXIT_OK;
}

/* ----------------------------------------------------- detokenize */

static const char *DETOKENIZE_HELP =
    "usage: bitnet detokenize -m DIR [--skip-special] ID...\n"
    "Prints the text of the token ids, exactly (no newline added). IDs may also be\n"
    "given as one JSON list, e.g. the output of bitnet tokenize: '[9906, 11]'.\n"
    "  -m, --model DIR     folder with tokenizer.json\n"
    "      --skip-special  leave special tokens out\n";

/* Appends the ids in s ("12", "[1, 2, 3]", "4,5") to ids; 0 on a malformed one. */
static int parse_ids(const char *s, int32_t **ids, size_t *n, size_t *cap) {
    while (*s) {
        char *end;
        long v;
        if (*s == '[' || *s == ']' || *s == ',' || *s == ' ' || *s == '\t' || *s == '\n') { s++; continue; }
        v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 2147483647L) return 0;
        if (*n == *cap) {
            int32_t *ni = (int32_t *)realloc(*ids, sizeof(int32_t) * (*cap = *cap ? *cap * 2 : 64));
            if (!ni) return 0;
            *ids = ni;
        }
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
    return 1;
}

static int cmd_detokenize(int argc, char **argv) {
    const char *dir = NULL;
    unsigned flags = 0;
    bn_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, len = 0;
    char *text = NULL;
    bn_error err;
    int a, status = EXIT_OK;
    for (a = 1; a < argc; a++) {
        const char *s = argv[a];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) { printf("%s%s", DETOKENIZE_HELP, EXIT_HELP); free(ids); return EXIT_OK; }
        if ((!strcmp(s, "-m") || !strcmp(s, "--model")) && a + 1 < argc) dir = argv[++a];
        else if (!strcmp(s, "--skip-special")) flags |= BN_TOK_SKIP_SPECIAL;
        else if (!parse_ids(s, &ids, &n, &cap)) {
            fprintf(stderr, "bitnet detokenize: not a token id: '%s'\n%s", s, DETOKENIZE_HELP);
            free(ids);
            return EXIT_USAGE;
        }
    }
    if (!dir) {
        fprintf(stderr, "%s", DETOKENIZE_HELP);
        free(ids);
        return EXIT_USAGE;
    }
    if (!load_tokenizer(dir, &tok)) {
        free(ids);
        return EXIT_LOAD;
    }
    if (bn_tokenizer_decode(tok, ids, n, flags, &text, &len, &err) != BN_OK) {
        fprintf(stderr, "bitnet detokenize: %s\n", err.msg);
        status = EXIT_RUN;
    } else {
        fwrite(text, 1, len, stdout);
    }
    bn_free(text);
    bn_tokenizer_free(tok);
    free(ids);
    return status;
}

/* ------------------------------------------------------------------ options */

#define MAX_STOPS 16

/* Everything the generation commands accept; each command reads what it needs. */
typedef struct options {
    const char *model_dir, *tokenizer_dir, *prompt, *prompt_file, *ids, *file, *system, *template_name;
    const char *stops[MAX_STOPS];
    int n_stops;
    int n_predict, n_ctx, n_threads, n_beams, ignore_eos, seed_set, show_special, bos, batch_max, verbose;
    bn_model_params mp;   /* --layout, --head */
    bn_ftype kv_type;     /* --kv */
    uint64_t seed;
    bn_sampler_params sp;
} options;

static void options_init(options *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = -1;
    o->sp = bn_sampler_default_params();
    o->mp = bn_model_default_params();
    o->kv_type = bn_context_default_params().kv_type;
}

/* f32 | bf16 | f16 | i8 -> *out; 0 when the name is not one of them. */
static int parse_ftype(const char *opt, const char *s, int allow_low, bn_ftype *out) {
    if (!strcmp(s, "f32")) *out = BN_FTYPE_F32;
    else if (!strcmp(s, "f16")) *out = BN_FTYPE_F16;
    else if (allow_low && !strcmp(s, "bf16")) *out = BN_FTYPE_BF16;
    else if (allow_low && !strcmp(s, "i8")) *out = BN_FTYPE_I8;
    else {
        fprintf(stderr, "bitnet: %s expects %s, got '%s'\n", opt, allow_low ? "f32, bf16, f16 or i8" : "f32 or f16", s);
        return 0;
    }
    return 1;
}

/* Reads argv[*i]'s value; prints a usage error when it is missing. */
static const char *need_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "bitnet: option %s needs a value (see --help)\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static int parse_int(const char *opt, const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < -2147483647L || v > 2147483647L) {
        fprintf(stderr, "bitnet: %s expects an integer, got '%s'\n", opt, s);
        return 0;
    }
    *out = (int)v;
    return 1;
}

static int parse_float(const char *opt, const char *s, float *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || v != v) {
        fprintf(stderr, "bitnet: %s expects a number, got '%s'\n", opt, s);
        return 0;
    }
    *out = (float)v;
    return 1;
}

/* Parses the options every command shares. Returns 1 when argv[*i] was one of
   them (consuming its value), 0 when it is not, -1 on a malformed value. */
static int parse_common(options *o, int argc, char **argv, int *i) {
    const char *a = argv[*i], *v;
    int iv;
    float fv;
#define VALUE() do { if (!(v = need_value(argc, argv, i))) return -1; } while (0)
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VALUE(); o->model_dir = v; return 1; }
    if (!strcmp(a, "--tokenizer")) { VALUE(); o->tokenizer_dir = v; return 1; }
    if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { VALUE(); return parse_int(a, v, &o->n_threads) ? 1 : -1; }
    if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { VALUE(); return parse_int(a, v, &o->n_ctx) ? 1 : -1; }
    if (!strcmp(a, "--layout")) {
        VALUE();
        if (!strcmp(v, "i2")) o->mp.layout = BN_TLAYOUT_I2;
        else if (!strcmp(v, "tq1")) o->mp.layout = BN_TLAYOUT_TQ1;
        else {
            fprintf(stderr, "bitnet: --layout expects i2 or tq1, got '%s'\n", v);
            return -1;
        }
        return 1;
    }
    if (!strcmp(a, "--head")) {
        VALUE();
        o->mp.head_type_set = 1;
        return parse_ftype(a, v, 1, &o->mp.head_type) ? 1 : -1;
    }
    if (!strcmp(a, "--kv")) { VALUE(); return parse_ftype(a, v, 0, &o->kv_type) ? 1 : -1; }
    if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) { VALUE(); return parse_int(a, v, &o->n_predict) ? 1 : -1; }
    if (!strcmp(a, "--temp")) { VALUE(); return parse_float(a, v, &o->sp.temperature) ? 1 : -1; }
    if (!strcmp(a, "--top-k")) { VALUE(); return parse_int(a, v, &o->sp.top_k) ? 1 : -1; }
    if (!strcmp(a, "--top-p")) { VALUE(); return parse_float(a, v, &o->sp.top_p) ? 1 : -1; }
    if (!strcmp(a, "--min-p")) { VALUE(); return parse_float(a, v, &o->sp.min_p) ? 1 : -1; }
    if (!strcmp(a, "--repeat-penalty")) { VALUE(); return parse_float(a, v, &o->sp.repeat_penalty) ? 1 : -1; }
    if (!strcmp(a, "--repeat-last-n")) { VALUE(); return parse_int(a, v, &o->sp.penalty_last_n) ? 1 : -1; }
    if (!strcmp(a, "--presence-penalty")) { VALUE(); return parse_float(a, v, &o->sp.presence_penalty) ? 1 : -1; }
    if (!strcmp(a, "--frequency-penalty")) { VALUE(); return parse_float(a, v, &o->sp.frequency_penalty) ? 1 : -1; }
    if (!strcmp(a, "--seed")) {
        VALUE();
        if (!parse_int(a, v, &iv) || iv < 0) return -1;
        o->seed = (uint64_t)iv;
        o->seed_set = 1;
        return 1;
    }
    if (!strcmp(a, "--stop")) {
        VALUE();
        if (o->n_stops == MAX_STOPS) {
            fprintf(stderr, "bitnet: at most %d --stop strings\n", MAX_STOPS);
            return -1;
        }
        o->stops[o->n_stops++] = v;
        return 1;
    }
    if (!strcmp(a, "--ignore-eos")) { o->ignore_eos = 1; return 1; }
    if (!strcmp(a, "--special")) { o->show_special = 1; return 1; }
    if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { o->verbose = 1; return 1; }
    BN_UNUSED(fv);
#undef VALUE
    return 0;
}

static const char *COMMON_HELP =
    "  -m, --model DIR          model folder (config.json + model.safetensors [+ tokenizer.json])\n"
    "      --tokenizer DIR      take tokenizer.json from another folder\n"
    "  -t, --threads N          threads (default: one per core)\n"
    "  -c, --ctx-size N         context length (default: the model's max_position_embeddings)\n"
    "      --layout i2|tq1      in-memory ternary layout (default i2: 2 bits; tq1: 1.6 bits, slower)\n"
    "      --head f32|bf16|f16|i8   lm_head type (default: as on disk, bf16; i8 is faster, see README)\n"
    "      --kv f32|f16         KV cache type (default f32)\n";

static const char *SAMPLING_HELP =
    "  -n, --n-predict N        tokens to generate (default -1: until an end token or the context is full)\n"
    "      --temp T             temperature; 0 = greedy (default 0.8)\n"
    "      --top-k K            keep the K most likely tokens; 0 = off (default 40)\n"
    "      --top-p P            nucleus sampling; 1 = off (default 0.95)\n"
    "      --min-p P            drop tokens below P x the most likely; 0 = off (default 0.05)\n"
    "      --repeat-penalty R   penalize tokens of the last --repeat-last-n; 1 = off (default 1)\n"
    "      --repeat-last-n N    window for the penalties (default 64)\n"
    "      --presence-penalty X, --frequency-penalty X   (default 0)\n"
    "      --seed S             random seed (default: from the clock, printed on stderr)\n"
    "      --stop TEXT          stop when TEXT appears (repeatable; TEXT is not printed)\n"
    "      --ignore-eos         do not stop at end tokens\n"
    "      --special            print special tokens (e.g. <|eot_id|>) instead of skipping them\n";

/* ------------------------------------------------------------ loading */

static int stderr_is_tty(void) { return is_terminal(2); }

typedef struct session {
    bn_model *model;
    bn_tokenizer *tok; /* NULL when the folder has none (then only --ids works) */
    bn_context *ctx;
    double load_s;
} session;

static void session_free(session *s) {
    bn_context_free(s->ctx);
    bn_tokenizer_free(s->tok);
    bn_model_free(s->model);
    memset(s, 0, sizeof *s);
}

static int file_exists(const char *dir, const char *name) {
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* Loads the model (and its tokenizer when present or required), creates a
   context with n_seq sequences. Returns an exit status. */
static int session_open(session *s, const options *o, int n_seq, int need_tokenizer) {
    bn_error err;
    bn_context_params cp = bn_context_default_params();
    const char *tdir = o->tokenizer_dir ? o->tokenizer_dir : o->model_dir;
    double t0 = bn_time_s();
    size_t mapped = 0, alloc = 0;
    memset(s, 0, sizeof *s);
    if (!o->model_dir) {
        fprintf(stderr, "bitnet: no model given: use -m DIR (a folder with config.json and model.safetensors)\n");
        return EXIT_USAGE;
    }
    if (stderr_is_tty()) fprintf(stderr, "loading %s ...", o->model_dir);
    if (bn_model_load(&s->model, o->model_dir, &o->mp, &err) != BN_OK) {
        if (stderr_is_tty()) fprintf(stderr, "\n");
        fprintf(stderr, "bitnet: cannot load the model: %s\n", err.msg);
        return EXIT_LOAD;
    }
    if (o->tokenizer_dir || file_exists(tdir, "tokenizer.json")) {
        if (bn_tokenizer_load(&s->tok, tdir, &err) != BN_OK) {
            if (stderr_is_tty()) fprintf(stderr, "\n");
            fprintf(stderr, "bitnet: cannot load the tokenizer: %s\n", err.msg);
            session_free(s);
            return EXIT_LOAD;
        }
    } else if (need_tokenizer) {
        if (stderr_is_tty()) fprintf(stderr, "\n");
        fprintf(stderr, "bitnet: %s has no tokenizer.json: give token ids with --ids, or a tokenizer with --tokenizer DIR\n",
                o->model_dir);
        session_free(s);
        return EXIT_LOAD;
    }
    cp.n_ctx = o->n_ctx;
    cp.n_seq = n_seq;
    cp.n_threads = o->n_threads;
    cp.kv_type = o->kv_type;
    if (o->batch_max > 0) cp.n_batch = o->batch_max;
    if (bn_context_new(&s->ctx, s->model, &cp, &err) != BN_OK) {
        if (stderr_is_tty()) fprintf(stderr, "\n");
        fprintf(stderr, "bitnet: cannot create a context: %s\n", err.msg);
        session_free(s);
        return err.status == BN_ERR_NOMEM ? EXIT_RUN : EXIT_USAGE;
    }
    s->load_s = bn_time_s() - t0;
    bn_model_memory(s->model, &mapped, &alloc);
    if (stderr_is_tty()) fprintf(stderr, "\r");
    fprintf(stderr, "load: %.2f s, %.1f MiB mapped, %.1f MiB allocated, threads %s%.0d, kernel %s, context %d\n",
            s->load_s, (double)mapped / 1048576.0, (double)alloc / 1048576.0, o->n_threads > 0 ? "" : "auto",
            o->n_threads > 0 ? o->n_threads : 0, bn_kernel_name(bn_kernel_detect()), bn_context_get_params(s->ctx)->n_ctx);
    return EXIT_OK;
}

/* "1,2,3" or "1 2 3" -> ids. Returns the count, or -1 on a malformed list. */
static int parse_id_list(const char *s, int32_t **out) {
    int n = 0, cap = 16;
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)cap);
    while (ids && *s) {
        char *end;
        long v;
        while (*s == ',' || *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') s++;
        if (!*s) break;
        v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 2147483647L) {
            free(ids);
            return -1;
        }
        if (n == cap) {
            int32_t *p = (int32_t *)realloc(ids, sizeof(int32_t) * (size_t)(cap *= 2));
            if (!p) {
                free(ids);
                return -1;
            }
            ids = p;
        }
        ids[n++] = (int32_t)v;
        s = end;
    }
    *out = ids;
    return ids ? n : -1;
}

static char *read_text_file(const char *path, size_t *len) {
    char *data = NULL;
    bn_error err;
    if (bn_read_file(path, &data, len, &err) != BN_OK) {
        fprintf(stderr, "bitnet: %s\n", err.msg);
        return NULL;
    }
    return data;
}

/* Token ids that end generation: the model's (config + generation_config) and the tokenizer's eos. */
static int collect_eos(const session *s, int32_t *eos) {
    const bn_config *cfg = bn_model_config(s->model);
    int n = 0, i;
    for (i = 0; i < cfg->n_eos && n < 8; i++) eos[n++] = cfg->eos_token_ids[i];
    if (s->tok && n < 8) {
        int32_t e = bn_tokenizer_eos_id(s->tok), seen = 0;
        for (i = 0; i < n; i++) seen |= eos[i] == e;
        if (e >= 0 && !seen) eos[n++] = e;
    }
    return n;
}

/* ------------------------------------------------------------ streaming text */

typedef struct printer {
    const bn_tokenizer *tok; /* NULL: print ids */
    bn_token_stream ts;
    char buf[32];
    FILE *out;
    int n_printed;
} printer;

/* bn_generate's token_text: the tokenizer's streaming decode, or "id " without a tokenizer. */
static const char *printer_text(void *user, int32_t token, int32_t prev, size_t *len) {
    printer *p = (printer *)user;
    const char *piece = "";
    BN_UNUSED(prev);
    *len = 0;
    if (!p->tok) {
        snprintf(p->buf, sizeof p->buf, "%s%d", p->n_printed++ ? " " : "", (int)token);
        *len = strlen(p->buf);
        return p->buf;
    }
    if (bn_token_stream_push(&p->ts, token, &piece, len, NULL) != BN_OK) *len = 0;
    return piece;
}

static int printer_on_token(void *user, int32_t token, const char *text, size_t len) {
    printer *p = (printer *)user;
    BN_UNUSED(token);
    if (len) {
        fwrite(text, 1, len, p->out);
        fflush(p->out);
    }
    return 0;
}

static void printer_init(printer *p, const bn_tokenizer *tok, int show_special) {
    memset(p, 0, sizeof *p);
    p->tok = tok;
    p->out = stdout;
    if (tok) bn_token_stream_init(&p->ts, tok, show_special ? 0u : BN_TOK_SKIP_SPECIAL);
}

static void printer_end(printer *p) {
    if (p->tok) {
        const char *piece;
        size_t len = 0;
        if (bn_token_stream_flush(&p->ts, &piece, &len, NULL) == BN_OK && len) fwrite(piece, 1, len, p->out);
        bn_token_stream_free(&p->ts);
    }
}

static void print_speed(const bn_generate_result *r) {
    fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tok/s)\n", r->n_prompt, r->prompt_s,
            r->prompt_s > 0 ? r->n_prompt / r->prompt_s : 0.0);
    fprintf(stderr, "generate: %d tokens in %.3f s (%.1f tok/s), stopped: %s\n", r->n_generated, r->gen_s,
            r->gen_s > 0 ? r->n_generated / r->gen_s : 0.0, bn_stop_reason_str(r->reason));
}

static uint64_t pick_seed(const options *o) {
    uint64_t seed = o->seed_set ? o->seed : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    if (!o->seed_set) seed &= 0x7fffffff;
    return seed;
}

/* ------------------------------------------------------------ run */

static const char *RUN_HELP =
    "usage: bitnet run -m DIR (-p PROMPT | -f FILE | --ids 1,2,3) [options]\n"
    "Generates a continuation of the prompt and streams it to stdout (the prompt itself\n"
    "is not echoed); the load and speed summary goes to stderr. With --ids (or a\n"
    "model folder without a tokenizer) the prompt and the output are token ids.\n\n"
    "  -p, --prompt TEXT        the prompt\n"
    "  -f, --file FILE          read the prompt from FILE\n"
    "      --ids LIST           the prompt as token ids, e.g. 1,15043,3186\n"
    "      --no-bos             do not add the tokenizer's BOS to a text prompt\n"
    "      --beams N            beam search with N beams (prints the best; greedy, no sampling)\n";

static int run_usage(int status) {
    FILE *f = status ? stderr : stdout;
    fprintf(f, "%s%s%s\n%s", RUN_HELP, COMMON_HELP, SAMPLING_HELP, EXIT_HELP);
    return status;
}

/* The prompt as ids: --ids, or the text of -p / -f encoded. */
static int prompt_ids(const session *s, const options *o, int32_t **ids, int *n) {
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    bn_error err;
    *ids = NULL;
    *n = 0;
    if (o->ids) {
        *n = parse_id_list(o->ids, ids);
        if (*n <= 0) {
            fprintf(stderr, "bitnet: --ids expects a list of token ids such as 1,2,3\n");
            free(*ids);
            *ids = NULL;
            return EXIT_USAGE;
        }
        return EXIT_OK;
    }
    if (o->prompt_file) {
        text = read_text_file(o->prompt_file, &len);
        if (!text) return EXIT_RUN;
    }
    if (bn_tokenizer_encode(s->tok, text ? text : o->prompt, text ? len : strlen(o->prompt),
                            (o->bos ? BN_TOK_ADD_SPECIAL : 0u) | BN_TOK_REPLACE_INVALID, ids, &n_ids,
                            &err) != BN_OK) {
        fprintf(stderr, "bitnet: cannot tokenize the prompt: %s\n", err.msg);
        bn_free(text);
        return EXIT_RUN;
    }
    bn_free(text);
    *n = (int)n_ids;
    if (*n == 0) {
        fprintf(stderr, "bitnet: the prompt is empty\n");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static int run_beams(session *s, const options *o, const int32_t *ids, int n) {
    bn_beam_params bp = bn_beam_default_params();
    bn_beam_result r;
    bn_error err;
    int32_t eos[8];
    int i, n_eos = collect_eos(s, eos);
    printer pr;
    bp.n_beams = o->n_beams;
    bp.max_new_tokens = o->n_predict > 0 ? o->n_predict : 32;
    bp.eos = eos;
    bp.n_eos = o->ignore_eos ? 0 : n_eos;
    if (bn_beam_search(s->ctx, 0, ids, n, &bp, &r, &err) != BN_OK) {
        fprintf(stderr, "bitnet: beam search failed: %s\n", err.msg);
        return EXIT_RUN;
    }
    printer_init(&pr, s->tok, o->show_special);
    for (i = 0; r.n > 0 && i < r.hyps[0].n_tokens; i++) {
        size_t len;
        const char *t;
        if (!o->ignore_eos && i == r.hyps[0].n_tokens - 1) {
            int k, is_eos = 0;
            for (k = 0; k < n_eos; k++) is_eos |= eos[k] == r.hyps[0].tokens[i];
            if (is_eos) break;
        }
        t = printer_text(&pr, r.hyps[0].tokens[i], -1, &len);
        fwrite(t, 1, len, stdout);
    }
    printer_end(&pr);
    fprintf(stdout, "\n");
    for (i = 0; i < r.n; i++)
        fprintf(stderr, "beam %d: %d tokens, score %.4f (sum log p %.4f)\n", i, r.hyps[i].n_tokens,
                (double)r.hyps[i].score, (double)r.hyps[i].sum_logprob);
    bn_beam_result_free(&r);
    return EXIT_OK;
}

static int cmd_run(int argc, char **argv) {
    options o;
    session s;
    int i, rc, n = 0, n_eos;
    int32_t *ids = NULL, eos[8];
    bn_sampler *sampler = NULL;
    bn_generate_params gp = bn_generate_default_params();
    bn_generate_result res;
    bn_error err;
    printer pr;
    options_init(&o);
    o.bos = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c = parse_common(&o, argc, argv, &i);
        if (c < 0) return EXIT_USAGE;
        if (c > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return run_usage(EXIT_OK);
        if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(o.prompt = need_value(argc, argv, &i))) return EXIT_USAGE;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(o.prompt_file = need_value(argc, argv, &i))) return EXIT_USAGE;
        } else if (!strcmp(a, "--ids")) {
            if (!(o.ids = need_value(argc, argv, &i))) return EXIT_USAGE;
        } else if (!strcmp(a, "--no-bos")) {
            o.bos = 0;
        } else if (!strcmp(a, "--beams")) {
            const char *v = need_value(argc, argv, &i);
            if (!v || !parse_int(a, v, &o.n_beams) || o.n_beams < 1) return EXIT_USAGE;
        } else {
            fprintf(stderr, "bitnet run: unknown option '%s' (see bitnet run --help)\n", a);
            return EXIT_USAGE;
        }
    }
    if (!!o.prompt + !!o.prompt_file + !!o.ids != 1) {
        fprintf(stderr, "bitnet run: give exactly one of -p PROMPT, -f FILE or --ids LIST (see --help)\n");
        return EXIT_USAGE;
    }
    rc = session_open(&s, &o, o.n_beams > 1 ? o.n_beams : 1, !o.ids);
    if (rc) return rc;
    if (o.ids) { /* ids in, ids out */
        bn_tokenizer_free(s.tok);
        s.tok = NULL;
    }
    rc = prompt_ids(&s, &o, &ids, &n);
    if (!rc && o.n_beams > 1) rc = run_beams(&s, &o, ids, n);
    if (rc || o.n_beams > 1) {
        free(ids);
        session_free(&s);
        return rc;
    }
    o.sp.seed = pick_seed(&o);
    if (!o.seed_set) fprintf(stderr, "seed: %llu\n", (unsigned long long)o.sp.seed);
    if (bn_sampler_new(&sampler, &o.sp, bn_model_config(s.model)->vocab_size, &err) != BN_OK) {
        fprintf(stderr, "bitnet run: %s\n", err.msg);
        free(ids);
        session_free(&s);
        return EXIT_USAGE;
    }
    printer_init(&pr, s.tok, o.show_special);
    n_eos = collect_eos(&s, eos);
    gp.max_new_tokens = o.n_predict;
    gp.eos = eos;
    gp.n_eos = n_eos;
    gp.ignore_eos = o.ignore_eos;
    gp.stop = o.stops;
    gp.n_stop = o.n_stops;
    gp.token_text = printer_text;
    gp.token_text_user = &pr;
    gp.on_token = printer_on_token;
    gp.user = &pr;
    rc = bn_generate(s.ctx, 0, sampler, ids, n, &gp, NULL, 0, &res, &err) == BN_OK ? EXIT_OK : EXIT_RUN;
    if (res.reason != BN_STOP_STRING) printer_end(&pr);
    else if (pr.tok) bn_token_stream_free(&pr.ts);
    fprintf(stdout, "\n");
    fflush(stdout);
    if (rc) fprintf(stderr, "bitnet run: %s\n", err.msg);
    else print_speed(&res);
    bn_sampler_free(sampler);
    free(ids);
    session_free(&s);
    return rc;
}

/* ------------------------------------------------------------ chat */

static const char *CHAT_HELP =
    "usage: bitnet chat -m DIR [options]\n"
    "Interactive chat: each line you type is a user message; the reply streams back.\n"
    "The conversation stays in the KV cache: each turn evaluates only the new tokens.\n"
    "Lines: /reset starts over, /exit (or end of input) quits.\n\n"
    "  -s, --system TEXT        a system message\n"
    "      --template NAME      llama3 or bitnet (default: recognized in tokenizer_config.json)\n";

static int chat_usage(int status) {
    FILE *f = status ? stderr : stdout;
    fprintf(f, "%s%s%s\n%s", CHAT_HELP, COMMON_HELP, SAMPLING_HELP, EXIT_HELP);
    return status;
}

/* A line from stdin without its newline, malloc'd; NULL at end of input. */
static char *read_line(FILE *in) {
    size_t cap = 256, n = 0;
    char *buf = (char *)malloc(cap);
    int c;
    if (!buf) return NULL;
    while ((c = fgetc(in)) != EOF && c != '\n') {
        if (n + 2 > cap) {
            char *p = (char *)realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
        }
        buf[n++] = (char)c;
    }
    if (c == EOF && n == 0) {
        free(buf);
        return NULL;
    }
    if (n && buf[n - 1] == '\r') n--;
    buf[n] = 0;
    return buf;
}

typedef struct conversation {
    bn_chat_message *msgs;
    char **texts; /* owned copies of the contents */
    int n, cap;
} conversation;

static int conv_add(conversation *c, const char *role, const char *text, size_t len) {
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 8;
        bn_chat_message *m = (bn_chat_message *)realloc(c->msgs, sizeof *m * (size_t)cap);
        char **t;
        if (!m) return 0;
        c->msgs = m;
        t = (char **)realloc(c->texts, sizeof *t * (size_t)cap);
        if (!t) return 0;
        c->texts = t;
        c->cap = cap;
    }
    c->texts[c->n] = (char *)malloc(len + 1);
    if (!c->texts[c->n]) return 0;
    memcpy(c->texts[c->n], text, len);
    c->texts[c->n][len] = 0;
    c->msgs[c->n].role = role;
    c->msgs[c->n].content = c->texts[c->n];
    c->n++;
    return 1;
}

static void conv_clear(conversation *c, int keep) {
    while (c->n > keep) free(c->texts[--c->n]);
}

/* The reply as it streams: printed and kept for the conversation. */
typedef struct reply {
    printer pr;
    char *text;
    size_t len, cap;
} reply;

static int reply_on_token(void *user, int32_t token, const char *text, size_t len) {
    reply *r = (reply *)user;
    printer_on_token(&r->pr, token, text, len);
    if (r->len + len + 1 > r->cap) {
        size_t cap = (r->len + len + 1) * 2;
        char *p = (char *)realloc(r->text, cap);
        if (!p) return 1;
        r->text = p;
        r->cap = cap;
    }
    memcpy(r->text + r->len, text, len);
    r->len += len;
    return 0;
}

/* One turn: format the whole conversation, evaluate only what the cache does
   not hold yet, generate the reply. cache/n_cache: the tokens in sequence 0. */
static int chat_turn(session *s, const options *o, bn_chat_template tmpl, conversation *conv, bn_sampler *sampler,
                     int32_t *cache, int *n_cache, reply *rp) {
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    int32_t *ids = NULL, eos[8], *out;
    int keep = 0, n_ctx = bn_context_get_params(s->ctx)->n_ctx, n_out, n_eos = collect_eos(s, eos);
    bn_error err;
    bn_generate_params gp = bn_generate_default_params();
    bn_generate_result res;
    if (bn_chat_format(s->tok, tmpl, conv->msgs, (size_t)conv->n, 1, &text, &len, &err) != BN_OK ||
        bn_tokenizer_encode(s->tok, text, len, BN_TOK_PARSE_SPECIAL | BN_TOK_REPLACE_INVALID, &ids, &n_ids, &err) !=
            BN_OK) {
        fprintf(stderr, "bitnet chat: %s\n", err.msg);
        bn_free(text);
        return EXIT_RUN;
    }
    bn_free(text);
    if ((int)n_ids >= n_ctx) {
        fprintf(stderr, "bitnet chat: the conversation (%d tokens) no longer fits the context (%d); /reset or use -c\n",
                (int)n_ids, n_ctx);
        bn_free(ids);
        return EXIT_RUN;
    }
    while (keep < *n_cache && keep < (int)n_ids - 1 && cache[keep] == ids[keep]) keep++;
    bn_seq_truncate(s->ctx, 0, keep);
    if (o->verbose) fprintf(stderr, "[cache: reusing %d of %d prompt tokens]\n", keep, (int)n_ids);
    n_out = n_ctx - (int)n_ids + 1;
    out = (int32_t *)malloc(sizeof(int32_t) * (size_t)n_out);
    printer_init(&rp->pr, s->tok, o->show_special);
    rp->len = 0;
    gp.max_new_tokens = o->n_predict;
    gp.eos = eos;
    gp.n_eos = n_eos;
    gp.ignore_eos = o->ignore_eos;
    gp.stop = o->stops;
    gp.n_stop = o->n_stops;
    gp.token_text = printer_text;
    gp.token_text_user = &rp->pr;
    gp.on_token = reply_on_token;
    gp.user = rp;
    if (!out || bn_generate(s->ctx, 0, sampler, ids + keep, (int)n_ids - keep, &gp, out, n_out, &res, &err) != BN_OK) {
        fprintf(stderr, "bitnet chat: %s\n", out ? err.msg : "out of memory");
        bn_token_stream_free(&rp->pr.ts);
        free(out);
        bn_free(ids);
        return EXIT_RUN;
    }
    if (res.reason != BN_STOP_STRING) {
        const char *piece;
        size_t plen = 0;
        if (bn_token_stream_flush(&rp->pr.ts, &piece, &plen, NULL) == BN_OK) reply_on_token(rp, -1, piece, plen);
    }
    bn_token_stream_free(&rp->pr.ts);
    fprintf(stdout, "\n");
    fflush(stdout);
    /* the cache now holds the prompt and every generated token but the last */
    memcpy(cache, ids, sizeof(int32_t) * n_ids);
    *n_cache = (int)n_ids;
    if (res.n_generated > 1) {
        memcpy(cache + n_ids, out, sizeof(int32_t) * (size_t)(res.n_generated - 1));
        *n_cache += res.n_generated - 1;
    }
    if (o->verbose) print_speed(&res);
    free(out);
    bn_free(ids);
    return conv_add(conv, "assistant", rp->text ? rp->text : "", rp->len) ? EXIT_OK : EXIT_RUN;
}

static int cmd_chat(int argc, char **argv) {
    options o;
    session s;
    int i, rc, n_cache = 0, n_system = 0, interactive;
    int32_t *cache;
    bn_sampler *sampler = NULL;
    bn_chat_template tmpl;
    conversation conv;
    reply rp;
    bn_error err;
    options_init(&o);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c = parse_common(&o, argc, argv, &i);
        if (c < 0) return EXIT_USAGE;
        if (c > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return chat_usage(EXIT_OK);
        if (!strcmp(a, "-s") || !strcmp(a, "--system")) {
            if (!(o.system = need_value(argc, argv, &i))) return EXIT_USAGE;
        } else if (!strcmp(a, "--template")) {
            if (!(o.template_name = need_value(argc, argv, &i))) return EXIT_USAGE;
        } else {
            fprintf(stderr, "bitnet chat: unknown option '%s' (see bitnet chat --help)\n", a);
            return EXIT_USAGE;
        }
    }
    rc = session_open(&s, &o, 1, 1);
    if (rc) return rc;
    tmpl = o.template_name ? bn_chat_template_from_name(o.template_name) : bn_tokenizer_chat_template(s.tok);
    if (tmpl == BN_CHAT_UNKNOWN || tmpl == BN_CHAT_AUTO) {
        fprintf(stderr, "bitnet chat: %s; use --template llama3 or --template bitnet\n",
                o.template_name ? "unknown template name" : "no chat template recognized in tokenizer_config.json");
        session_free(&s);
        return EXIT_USAGE;
    }
    o.sp.seed = pick_seed(&o);
    cache = (int32_t *)malloc(sizeof(int32_t) * (size_t)bn_context_get_params(s.ctx)->n_ctx);
    if (!cache || bn_sampler_new(&sampler, &o.sp, bn_model_config(s.model)->vocab_size, &err) != BN_OK) {
        fprintf(stderr, "bitnet chat: %s\n", cache ? err.msg : "out of memory");
        free(cache);
        session_free(&s);
        return cache ? EXIT_USAGE : EXIT_RUN;
    }
    memset(&conv, 0, sizeof conv);
    memset(&rp, 0, sizeof rp);
    if (o.system) {
        conv_add(&conv, "system", o.system, strlen(o.system));
        n_system = 1;
    }
    interactive = is_terminal(0);
    fprintf(stderr, "chat template: %s; /reset to start over, /exit to quit\n", bn_chat_template_name(tmpl));
    for (;;) {
        char *line;
        if (interactive) {
            fprintf(stdout, "> ");
            fflush(stdout);
        }
        line = read_line(stdin);
        if (!line || !strcmp(line, "/exit") || !strcmp(line, "/quit")) {
            free(line);
            break;
        }
        if (!strcmp(line, "/reset")) {
            conv_clear(&conv, n_system);
            n_cache = 0;
            bn_sampler_reset(sampler);
        } else if (line[0]) {
            rc = conv_add(&conv, "user", line, strlen(line)) ? chat_turn(&s, &o, tmpl, &conv, sampler, cache, &n_cache, &rp)
                                                            : EXIT_RUN;
        }
        free(line);
        if (rc) break;
    }
    conv_clear(&conv, 0);
    free(conv.msgs);
    free(conv.texts);
    free(rp.text);
    free(cache);
    bn_sampler_free(sampler);
    session_free(&s);
    return rc;
}

/* ------------------------------------------------------------ ppl */

static const char *PPL_HELP =
    "usage: bitnet ppl -m DIR (-f FILE | --ids-file FILE) [options]\n"
    "Perplexity over a text file: the tokens are cut into windows of the context\n"
    "length and each window is scored as HF does (model(ids, labels=ids).loss: the\n"
    "mean cross-entropy of each next token given the window so far). Prints the\n"
    "token count, nats/token, perplexity and bits per byte of the scored text.\n\n"
    "  -f, --file FILE          the text (tokenized without special tokens)\n"
    "      --ids-file FILE      token ids instead of text (whitespace or comma separated)\n"
    "      --bos                start each window with the tokenizer's BOS token\n";

static int ppl_usage(int status) {
    FILE *f = status ? stderr : stdout;
    fprintf(f, "%s%s\n%s", PPL_HELP, COMMON_HELP, EXIT_HELP);
    return status;
}

/* Cross-entropy of the next token given logits: log-sum-exp minus its logit. */
static double next_token_nats(const float *logits, int n_vocab, int32_t next) {
    double max = logits[0], sum = 0.0;
    int i;
    for (i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    for (i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - max);
    return max + log(sum) - (double)logits[next];
}

/* Scores one window: the sum of next-token nats of w[1..n) given w[0..i]. */
static int score_window(bn_context *ctx, const int32_t *w, int n, int n_vocab, double *nats, bn_error *err) {
    int n_batch = bn_context_get_params(ctx)->n_batch, done = 0, i;
    int32_t *pos = (int32_t *)malloc(sizeof(int32_t) * (size_t)n_batch);
    int8_t *want = (int8_t *)malloc((size_t)n_batch);
    bn_status st = BN_OK;
    *nats = 0.0;
    bn_seq_truncate(ctx, 0, 0);
    if (!pos || !want) st = bn_errorf(err, BN_ERR_NOMEM, "out of memory");
    while (!st && done < n - 1) { /* the last token predicts nothing */
        bn_batch b;
        int chunk = BN_MIN(n - 1 - done, n_batch);
        for (i = 0; i < chunk; i++) {
            pos[i] = done + i;
            want[i] = 1;
        }
        memset(&b, 0, sizeof b);
        b.n_tokens = chunk;
        b.token = w + done;
        b.pos = pos;
        b.want_logits = want;
        st = bn_forward(ctx, &b, err);
        for (i = 0; !st && i < chunk; i++) *nats += next_token_nats(bn_get_logits(ctx, i), n_vocab, w[done + i + 1]);
        done += chunk;
    }
    free(pos);
    free(want);
    return st;
}

/* Bytes of text each scored token stands for (its decoded length). */
static double token_bytes(const bn_tokenizer *tok, int32_t id, int *cache) {
    if (cache[id] < 0) {
        char *text = NULL;
        size_t len = 0;
        cache[id] = bn_tokenizer_decode(tok, &id, 1, 0u, &text, &len, NULL) == BN_OK ? (int)len : 0;
        bn_free(text);
    }
    return cache[id];
}

static int cmd_ppl(int argc, char **argv) {
    options o;
    session s;
    const char *ids_file = NULL;
    int i, rc, n = 0, n_ctx, win, n_windows, k, n_vocab, *byte_cache = NULL;
    int32_t *ids = NULL, *w;
    double total = 0.0, bytes = 0.0, t0;
    long scored = 0;
    bn_error err;
    options_init(&o);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c = parse_common(&o, argc, argv, &i);
        if (c < 0) return EXIT_USAGE;
        if (c > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return ppl_usage(EXIT_OK);
        if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(o.file = need_value(argc, argv, &i))) return EXIT_USAGE;
        } else if (!strcmp(a, "--ids-file")) {
            if (!(ids_file = need_value(argc, argv, &i))) return EXIT_USAGE;
        } else if (!strcmp(a, "--bos")) {
            o.bos = 1;
        } else {
            fprintf(stderr, "bitnet ppl: unknown option '%s' (see bitnet ppl --help)\n", a);
            return EXIT_USAGE;
        }
    }
    if (!!o.file + !!ids_file != 1) {
        fprintf(stderr, "bitnet ppl: give exactly one of -f FILE or --ids-file FILE (see --help)\n");
        return EXIT_USAGE;
    }
    rc = session_open(&s, &o, 1, o.file != NULL || o.bos);
    if (rc) return rc;
    n_vocab = bn_model_config(s.model)->vocab_size;
    if (ids_file) {
        size_t len;
        char *text = read_text_file(ids_file, &len);
        n = text ? parse_id_list(text, &ids) : -1;
        bn_free(text);
        if (n < 0) {
            fprintf(stderr, "bitnet ppl: %s: expected token ids separated by spaces or commas\n", ids_file);
            session_free(&s);
            return EXIT_RUN;
        }
    } else {
        size_t len, n_ids = 0;
        char *text = read_text_file(o.file, &len);
        if (!text || bn_tokenizer_encode(s.tok, text, len, BN_TOK_REPLACE_INVALID, &ids, &n_ids, &err) != BN_OK) {
            if (text) fprintf(stderr, "bitnet ppl: cannot tokenize %s: %s\n", o.file, err.msg);
            bn_free(text);
            session_free(&s);
            return EXIT_RUN;
        }
        bn_free(text);
        n = (int)n_ids;
        byte_cache = (int *)malloc(sizeof(int) * (size_t)bn_tokenizer_vocab_size(s.tok));
        if (byte_cache)
            for (i = 0; i < bn_tokenizer_vocab_size(s.tok); i++) byte_cache[i] = -1;
    }
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab) {
            fprintf(stderr, "bitnet ppl: token id %d (at %d) is outside the model's vocabulary of %d\n", (int)ids[i], i,
                    n_vocab);
            free(ids);
            free(byte_cache);
            session_free(&s);
            return EXIT_RUN;
        }
    n_ctx = bn_context_get_params(s.ctx)->n_ctx;
    win = o.bos ? n_ctx - 1 : n_ctx; /* text tokens per window */
    n_windows = (n + win - 1) / win;
    w = (int32_t *)malloc(sizeof(int32_t) * (size_t)n_ctx);
    t0 = bn_time_s();
    rc = w ? EXIT_OK : EXIT_RUN;
    for (k = 0; !rc && k < n_windows; k++) {
        int start = k * win, len = BN_MIN(win, n - start), wl = 0, first_scored;
        double nats;
        if (o.bos) w[wl++] = bn_tokenizer_bos_id(s.tok) >= 0 ? bn_tokenizer_bos_id(s.tok) : 0;
        memcpy(w + wl, ids + start, sizeof(int32_t) * (size_t)len);
        wl += len;
        if (wl < 2) break; /* nothing to predict */
        if (score_window(s.ctx, w, wl, n_vocab, &nats, &err) != BN_OK) {
            fprintf(stderr, "bitnet ppl: %s\n", err.msg);
            rc = EXIT_RUN;
            break;
        }
        total += nats;
        scored += wl - 1;
        first_scored = o.bos ? 0 : 1; /* the tokens whose probability was scored */
        for (i = first_scored; byte_cache && i < len; i++) bytes += token_bytes(s.tok, ids[start + i], byte_cache);
        if (stderr_is_tty())
            fprintf(stderr, "\r[%d/%d windows] ppl so far %.4f, %.1f s   ", k + 1, n_windows, exp(total / scored),
                    bn_time_s() - t0);
    }
    if (stderr_is_tty()) fprintf(stderr, "\n");
    if (!rc && scored == 0) {
        fprintf(stderr, "bitnet ppl: fewer than 2 tokens: nothing to score\n");
        rc = EXIT_RUN;
    }
    if (!rc) {
        printf("tokens: %d in %d windows of up to %d (%ld scored)\n", n, n_windows, n_ctx, scored);
        printf("nats/token: %.6f\n", total / (double)scored);
        printf("perplexity: %.4f\n", exp(total / (double)scored));
        if (bytes > 0) printf("bits/byte: %.6f\n", total / log(2.0) / bytes);
        fprintf(stderr, "ppl: %.2f s (%.1f tok/s)\n", bn_time_s() - t0, (double)n / (bn_time_s() - t0));
    }
    free(w);
    free(ids);
    free(byte_cache);
    session_free(&s);
    return rc;
}

/* ------------------------------------------------------------ inspect */

static const char *INSPECT_HELP =
    "usage: bitnet inspect -m DIR [--tensors]\n"
    "Prints the configuration, the weight variant detected, tensor counts and bytes\n"
    "by dtype, and the memory the loaded model takes. --tensors lists every tensor.\n";

static int cmd_inspect(int argc, char **argv) {
    options o;
    bn_safetensors *st = NULL;
    bn_model *model = NULL;
    bn_error err;
    const bn_config *c;
    int i, list = 0;
    size_t mapped = 0, alloc = 0, by_dtype[32];
    int count_dtype[32];
    double t0;
    options_init(&o);
    for (i = 1; i < argc; i++) {
        int r = parse_common(&o, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("%s\n%s", INSPECT_HELP, EXIT_HELP);
            return EXIT_OK;
        }
        if (!strcmp(argv[i], "--tensors")) {
            list = 1;
            continue;
        }
        fprintf(stderr, "bitnet inspect: unknown option '%s' (see bitnet inspect --help)\n", argv[i]);
        return EXIT_USAGE;
    }
    if (!o.model_dir) {
        fprintf(stderr, "bitnet inspect: no model given: use -m DIR\n");
        return EXIT_USAGE;
    }
    if (bn_st_open(&st, o.model_dir, &err) != BN_OK) {
        fprintf(stderr, "bitnet inspect: %s\n", err.msg);
        return EXIT_LOAD;
    }
    t0 = bn_time_s();
    if (bn_model_load(&model, o.model_dir, NULL, &err) != BN_OK) {
        fprintf(stderr, "bitnet inspect: cannot load the model: %s\n", err.msg);
        bn_st_close(st);
        return EXIT_LOAD;
    }
    c = bn_model_config(model);
    bn_model_memory(model, &mapped, &alloc);
    printf("model: %s\n", o.model_dir);
    printf("architecture: %s (%s FFN%s)\n", bn_arch_name(c->arch), c->act == BN_ACT_RELU2 ? "relu2" : "SiLU-gated",
           c->has_sub_norms ? ", attn/ffn sub-norms" : "");
    printf("weights: %s\n", bn_weight_variant_name(c->variant));
    printf("vocab_size: %d\nhidden_size: %d\nintermediate_size: %d\nlayers: %d\n", c->vocab_size, c->hidden_size,
           c->intermediate_size, c->n_layers);
    printf("heads: %d (kv %d, head_dim %d)\nmax_position_embeddings: %d\nrope_theta: %g\nrms_norm_eps: %g\n",
           c->n_heads, c->n_kv_heads, c->head_dim, c->max_seq_len, (double)c->rope_theta, (double)c->rms_norm_eps);
    printf("tie_word_embeddings: %s\nbos_token_id: %d\neos_token_ids:", c->tie_word_embeddings ? "yes" : "no",
           c->bos_token_id);
    for (i = 0; i < c->n_eos; i++) printf(" %d", c->eos_token_ids[i]);
    printf("\n");
    memset(by_dtype, 0, sizeof by_dtype);
    memset(count_dtype, 0, sizeof count_dtype);
    for (i = 0; i < st->n_tensors; i++) {
        const bn_st_tensor *t = &st->tensors[i];
        int d = (int)t->dtype & 31;
        by_dtype[d] += t->nbytes;
        count_dtype[d]++;
        if (list) {
            int k;
            printf("  %-48s %-5s [", t->name, bn_dtype_name(t->dtype));
            for (k = 0; k < t->n_dims; k++) printf("%s%lld", k ? ", " : "", (long long)t->shape[k]);
            printf("] %lu bytes\n", (unsigned long)t->nbytes);
        }
    }
    printf("tensors: %d in %d file(s)\n", st->n_tensors, st->n_files);
    for (i = 0; i < 32; i++)
        if (count_dtype[i])
            printf("  %-5s %5d tensors, %.2f MiB\n", bn_dtype_name((bn_dtype)i), count_dtype[i],
                   (double)by_dtype[i] / 1048576.0);
    printf("loaded in %.2f s: %.2f MiB mapped, %.2f MiB allocated\n", bn_time_s() - t0, (double)mapped / 1048576.0,
           (double)alloc / 1048576.0);
    bn_model_free(model);
    bn_st_close(st);
    return EXIT_OK;
}

/* ------------------------------------------------------------ bench-batch */

/* n token ids from the library's PRNG (the benchmarks' prompts). */
static void bench_tokens(int32_t *tok, int n, int vocab, uint64_t *rng) {
    int i;
    for (i = 0; i < n; i++) tok[i] = (int32_t)(bn_rng_next(rng) % (uint64_t)vocab);
}


static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n sorted values. */
static double median_sorted(const double *v, int n) { return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

static const char *BENCH_BATCH_HELP =
    "usage: bitnet bench-batch -m DIR [-b 1,2,4,8,16] [-n STEPS] [-r ROUNDS] [--prompt-len N] [-t THREADS]\n"
    "                          [--layout i2|tq1] [--head f32|bf16|f16|i8] [--kv f32|f16]\n"
    "Decoding throughput with B sequences at once (continuous batching through\n"
    "bn_batcher: one bn_forward per step, one token per sequence). Each sequence\n"
    "gets a prompt of --prompt-len ids (default 16); then STEPS decode steps are\n"
    "timed (default 32). Prints total and per-sequence tok/s for each B.\n"
    "-r ROUNDS (default 1) goes through the list of B that many times, so that the\n"
    "runs of different B alternate; it prints each B's median, slowest and fastest\n"
    "total tok/s, and as 'vs B=1' the median over rounds of the round's ratio to B = 1\n"
    "(a shared machine's memory bandwidth drifts: the ratio of neighbouring runs is\n"
    "steadier than the ratio of two medians).\n"
    "'ceiling' is the most a step of B tokens could give if it did nothing but its\n"
    "matrix products (the ternary linears and the lm_head) at the rate the kernels\n"
    "reach on weights already in cache (one thread measured, best of the rounds,\n"
    "times the threads), with its ratio to B = 1's median: where memory is no\n"
    "longer the limit, the arithmetic is, and no batch size goes past it.\n";

typedef struct bench_count {
    int tokens;
} bench_count;

static int bench_on_token(void *user, int id, int32_t token, const float *logits) {
    BN_UNUSED(id);
    BN_UNUSED(token);
    BN_UNUSED(logits);
    ((bench_count *)user)->tokens++;
    return 0;
}

/* Decode steps/sec with B sequences; *tok_s gets total tokens/s. */
static int bench_one(const options *o, bn_model *model, int B, int steps, int plen, double *tok_s) {
    bn_context_params cp = bn_context_default_params();
    bn_context *ctx = NULL;
    bn_batcher *b = NULL;
    bn_batcher_params bp = bn_batcher_default_params();
    bn_request_params rp = bn_request_default_params();
    bench_count count;
    bn_error err;
    int32_t *prompt = (int32_t *)malloc(sizeof(int32_t) * (size_t)plen);
    int i, n_active = 0, V = bn_model_config(model)->vocab_size, rc = EXIT_OK;
    double t0;
    uint64_t rng = 1234;
    cp.n_seq = B;
    cp.n_ctx = plen + steps + 4;
    cp.n_batch = BN_MAX(B * plen, B);
    cp.n_threads = o->n_threads;
    cp.kv_type = o->kv_type;
    if (!prompt || bn_context_new(&ctx, model, &cp, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench-batch: %s\n", prompt ? err.msg : "out of memory");
        free(prompt);
        return EXIT_RUN;
    }
    bp.prefill_chunk = B * plen;
    rp.max_new_tokens = steps + 2;
    rp.ignore_eos = 1;
    rp.on_token = bench_on_token;
    rp.user = &count;
    if (bn_batcher_new(&b, ctx, &bp, &err) != BN_OK) rc = EXIT_RUN;
    for (i = 0; !rc && i < B; i++) {
        bench_tokens(prompt, plen, V, &rng);
        if (bn_batcher_add(b, prompt, plen, &rp, NULL, &err) != BN_OK) rc = EXIT_RUN;
    }
    /* step 1 processes every prompt and samples each first token; then time */
    if (!rc && bn_batcher_step(b, &n_active, &err) != BN_OK) rc = EXIT_RUN;
    count.tokens = 0;
    t0 = bn_time_s();
    for (i = 0; !rc && i < steps; i++)
        if (bn_batcher_step(b, &n_active, &err) != BN_OK) rc = EXIT_RUN;
    *tok_s = rc ? 0.0 : count.tokens / (bn_time_s() - t0);
    if (rc) fprintf(stderr, "bitnet bench-batch: %s\n", err.msg);
    bn_batcher_free(b);
    bn_context_free(ctx);
    free(prompt);
    return rc;
}

/* Bytes of one element of a float matrix. */
static size_t ftype_bytes(bn_ftype type) { return type == BN_FTYPE_F32 ? 4 : type == BN_FTYPE_I8 ? 1 : 2; }

/* The best seconds of `reps` calls of a ternary (t != NULL) or float (f) matmul of B tokens. */
static double best_matmul_seconds(const bn_tmat *t, const bn_fmat *f, const int8_t *xq, const float *x,
                                  const float *act_scale, int B, float *y, int reps, bn_kernel kernel) {
    double best = 1e30;
    int r;
    for (r = 0; r < reps; r++) {
        double t0 = bn_time_s(), dt;
        if (t) bn_tmat_matmul(t, xq, act_scale, B, y, NULL, kernel);
        else bn_fmat_matmul_kernel(f, x, B, y, NULL, kernel);
        dt = bn_time_s() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

/* Seconds a decode step of B tokens spends in matrix products at best: each
   family's multiply-adds at the rate its kernel reaches on one thread over a
   slice of about 256 KB of the model's own weights (in L2 after the first
   call), times n_threads. An upper bound on speed: it leaves out memory,
   attention and everything else, and assumes the threads scale perfectly. */
static double matmul_floor_seconds(const bn_model *m, int B, int n_threads) {
    const bn_config *cfg = bn_model_config(m);
    const size_t slice_bytes = (size_t)256 << 10;
    bn_tmat t = m->layers[0].w_gate;
    bn_fmat f = m->lm_head;
    size_t row_bytes = t.nbytes / (size_t)t.rows, ternary_macs = 0;
    int cols = BN_MAX(t.cols, f.cols), l, i, frows;
    /* activations 64-byte aligned, as a context's are (a vector load that straddles two lines costs two) */
    char *mem = (char *)malloc((size_t)B * cols * 5 + 128);
    int8_t *xq = mem ? (int8_t *)(mem + (64 - (uintptr_t)mem % 64)) : NULL;
    float *x = mem ? (float *)(xq + ((size_t)B * cols + 63) / 64 * 64) : NULL;
    float *scales = (float *)malloc(sizeof(float) * (size_t)B), *y;
    double ts, fs, floor_s = 0.0;
    for (l = 0; l < cfg->n_layers; l++) {
        const bn_layer *L = &m->layers[l];
        const bn_tmat *mats[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (i = 0; i < 7; i++) ternary_macs += (size_t)mats[i]->rows * mats[i]->cols;
    }
    t.rows = (int)BN_MIN((size_t)t.rows, BN_MAX(slice_bytes / row_bytes, 4));
    t.nbytes = (size_t)t.rows * row_bytes;
    frows = (int)(slice_bytes / ((size_t)f.cols * ftype_bytes(f.type))) / BN_FMAT_TILE_ROWS * BN_FMAT_TILE_ROWS;
    f.rows = BN_MIN(f.rows, BN_MAX(frows, BN_FMAT_TILE_ROWS)); /* whole groups of a tiled matrix */
    y = (float *)malloc(sizeof(float) * (size_t)B * (size_t)BN_MAX(t.rows, f.rows));
    if (xq && x && scales && y) {
        for (i = 0; i < B * cols; i++) {
            xq[i] = (int8_t)(i * 37 % 255 - 127);
            x[i] = (float)(i * 37 % 255 - 127) / 127.0f;
        }
        for (i = 0; i < B; i++) scales[i] = 1.0f;
        bn_kernel kernel = bn_kernel_detect(); /* once: cpuid can cost more than a small matmul in a VM */
        ts = best_matmul_seconds(&t, NULL, xq, NULL, scales, B, y, 20, kernel);
        fs = best_matmul_seconds(NULL, &f, NULL, x, NULL, B, y, 20, kernel);
        floor_s = ((double)ternary_macs / ((double)t.rows * t.cols) * ts +
                   (double)m->lm_head.rows / f.rows * fs) / n_threads;
    }
    free(mem);
    free(scales);
    free(y);
    return floor_s;
}

static int cmd_bench_batch(int argc, char **argv) {
    options o;
    bn_model *model = NULL;
    bn_error err;
    const char *bs = "1,2,4,8,16";
    int32_t *list = NULL;
    int i, k, n_b, steps = 32, plen = 16, rounds = 1, rc = EXIT_OK;
    double *rates = NULL, *ratios = NULL, *floors = NULL, base_med = 0.0;
    options_init(&o);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c;
        if (!strcmp(a, "-n")) { /* steps, not tokens to predict */
            const char *v = need_value(argc, argv, &i);
            if (!v || !parse_int(a, v, &steps) || steps < 1) return EXIT_USAGE;
            continue;
        }
        c = parse_common(&o, argc, argv, &i);
        if (c < 0) return EXIT_USAGE;
        if (c > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s\n%s", BENCH_BATCH_HELP, EXIT_HELP);
            return EXIT_OK;
        }
        if (!strcmp(a, "-b")) {
            if (!(bs = need_value(argc, argv, &i))) return EXIT_USAGE;
        } else if (!strcmp(a, "-r")) {
            const char *v = need_value(argc, argv, &i);
            if (!v || !parse_int(a, v, &rounds)) return EXIT_USAGE;
            if (rounds < 1) {
                fprintf(stderr, "bitnet bench-batch: -r expects a number of rounds >= 1\n");
                return EXIT_USAGE;
            }
        } else if (!strcmp(a, "--prompt-len")) {
            const char *v = need_value(argc, argv, &i);
            if (!v || !parse_int(a, v, &plen) || plen < 1) return EXIT_USAGE;
        } else {
            fprintf(stderr, "bitnet bench-batch: unknown option '%s' (see --help)\n", a);
            return EXIT_USAGE;
        }
    }
    n_b = parse_id_list(bs, &list);
    if (n_b <= 0) {
        fprintf(stderr, "bitnet bench-batch: -b expects batch sizes such as 1,2,4,8\n");
        free(list);
        return EXIT_USAGE;
    }
    if (!o.model_dir) {
        fprintf(stderr, "bitnet bench-batch: no model given: use -m DIR\n");
        free(list);
        return EXIT_USAGE;
    }
    if (bn_model_load(&model, o.model_dir, &o.mp, &err) != BN_OK) { /* --layout, --head */
        fprintf(stderr, "bitnet bench-batch: cannot load the model: %s\n", err.msg);
        free(list);
        return EXIT_LOAD;
    }
    rates = (double *)calloc((size_t)n_b * (size_t)rounds, sizeof(double));
    floors = (double *)calloc((size_t)n_b, sizeof(double));
    ratios = (double *)calloc((size_t)n_b * (size_t)rounds, sizeof(double));
    if (!rates || !ratios || !floors) rc = EXIT_RUN;
    for (k = 0; !rc && k < rounds; k++) {
        double base = 0.0;
        if (rounds > 1) fprintf(stderr, "bitnet bench-batch: round %d of %d\n", k + 1, rounds);
        for (i = 0; !rc && i < n_b; i++) {
            double f;
            if (list[i] < 1) continue;
            rc = bench_one(&o, model, list[i], steps, plen, &rates[(size_t)i * rounds + k]);
            /* the best of the rounds: a busy host slows the in-cache rate too */
            f = matmul_floor_seconds(model, (int)list[i], o.n_threads > 0 ? o.n_threads : bn_cpu_count());
            if (f > 0.0 && (floors[i] == 0.0 || f < floors[i])) floors[i] = f;
        }
        for (i = 0; i < n_b; i++)
            if (base == 0.0 && list[i] == 1) base = rates[(size_t)i * rounds + k];
        for (i = 0; i < n_b; i++) ratios[(size_t)i * rounds + k] = base > 0.0 ? rates[(size_t)i * rounds + k] / base : 0.0;
    }
    for (i = 0; !rc && i < n_b; i++) {
        qsort(&rates[(size_t)i * rounds], (size_t)rounds, sizeof(double), cmp_double);
        if (list[i] == 1 && base_med == 0.0) base_med = median_sorted(&rates[(size_t)i * rounds], rounds);
    }
    if (!rc)
        printf("%4s %12s %9s %9s %12s %8s %18s\n", "B", "total tok/s", "slowest", "fastest", "tok/s/seq", "vs B=1",
               "ceiling");
    for (i = 0; !rc && i < n_b; i++) {
        double *r = &rates[(size_t)i * rounds], med, ceiling;
        if (list[i] < 1) continue;
        med = median_sorted(r, rounds);
        ceiling = floors[i] > 0.0 ? list[i] / floors[i] : 0.0;
        qsort(&ratios[(size_t)i * rounds], (size_t)rounds, sizeof(double), cmp_double);
        printf("%4d %12.1f %9.1f %9.1f %12.1f %7.2fx %9.1f", (int)list[i], med, r[0], r[rounds - 1], med / list[i],
               median_sorted(&ratios[(size_t)i * rounds], rounds), ceiling);
        if (base_med > 0.0) printf(" (%5.2fx)", ceiling / base_med);
        printf("\n");
    }
    bn_model_free(model);
    free(list);
    free(rates);
    free(ratios);
    free(floors);
    return rc;
}

/* ------------------------------------------------------------ bench */

static const char *BENCH_HELP =
    "usage: bitnet bench [-m DIR] [-t THREADS] [--layout i2|tq1] [--head f32|bf16|f16|i8] [--kv f32|f16] [--quick]\n"
    "       bitnet bench [-m DIR] [-t THREADS] --ctx N [--kv f32|f16]\n"
    "Prompt and decode speed against this machine's memory bandwidth: pp128 and pp512\n"
    "(one bn_eval of 128 / 512 tokens), tg128 (128 one-token steps) with all threads and\n"
    "with one, the bytes of weights a decode step reads, the streaming read bandwidth\n"
    "measured here, the roofline (bandwidth / bytes per token) and the peak RSS.\n"
    "--quick: a smaller cache, no pp512, tg32. --ctx N: only the decode speed after N\n"
    "tokens of context. DIR defaults to " BENCH_MODEL ", which\n"
    "tools/gen_synthetic.py writes on first use (the 2B4T shape, random weights).\n"
    "A benchmark, not a test: the numbers depend on the machine and its load.\n";

/* Peak resident set of this process in MB (0 where unknown). */
static double peak_rss_mb(void) {
#ifdef _WIN32
    return 0.0;
#else
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
#if defined(__APPLE__)
    return ru.ru_maxrss / 1e6; /* bytes */
#else
    return ru.ru_maxrss * 1024.0 / 1e6; /* KB */
#endif
#endif
}

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

typedef struct bw_job {
    const uint64_t *buf;
    size_t n; /* words */
    int prefetch;
    uint64_t sums[256];
} bw_job;

/* The sum of words [lo, hi), with four independent chains. */
static uint64_t bw_sum_plain(const uint64_t *buf, size_t lo, size_t hi, int prefetch) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i;
    for (i = lo; i + 4 <= hi; i += 4) {
        if (prefetch && i % 8 == 0) PREFETCH((const char *)(buf + i) + 16384);
        a += buf[i];
        b += buf[i + 1];
        c += buf[i + 2];
        d += buf[i + 3];
    }
    for (; i < hi; i++) a += buf[i];
    return a + b + c + d;
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
/* The same with 512-bit loads, so that the loop is bound by memory, not by adds. */
__attribute__((target("avx512f"))) static uint64_t bw_sum_avx512(const uint64_t *buf, size_t lo, size_t hi,
                                                                  int prefetch) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    uint64_t lanes[8], s = 0;
    size_t i;
    for (i = lo; i + 32 <= hi; i += 32) {
        if (prefetch) {
            const char *ahead = (const char *)(buf + i) + 16384;
            _mm_prefetch(ahead, _MM_HINT_T0);
            _mm_prefetch(ahead + 64, _MM_HINT_T0);
            _mm_prefetch(ahead + 128, _MM_HINT_T0);
            _mm_prefetch(ahead + 192, _MM_HINT_T0);
        }
        a = _mm512_add_epi64(a, _mm512_loadu_si512((const void *)(buf + i)));
        b = _mm512_add_epi64(b, _mm512_loadu_si512((const void *)(buf + i + 8)));
        c = _mm512_add_epi64(c, _mm512_loadu_si512((const void *)(buf + i + 16)));
        d = _mm512_add_epi64(d, _mm512_loadu_si512((const void *)(buf + i + 24)));
    }
    _mm512_storeu_si512((void *)lanes, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
    for (i = 0; i < 8; i++) s += lanes[i];
    return s + bw_sum_plain(buf, lo + (hi - lo) / 32 * 32, hi, 0);
}
#endif

static void bw_worker(void *arg, int ith, int nth) {
    bw_job *j = (bw_job *)arg;
    size_t per = j->n / (size_t)nth / 32 * 32, lo = per * (size_t)ith, hi = ith == nth - 1 ? j->n : lo + per;
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    if (bn_kernel_supported(BN_KERNEL_AVX512)) {
        j->sums[ith] = bw_sum_avx512(j->buf, lo, hi, j->prefetch);
        return;
    }
#endif
    j->sums[ith] = bw_sum_plain(j->buf, lo, hi, j->prefetch);
}

/* Best of 10 passes over a 1 GiB buffer (far larger than any cache), every
   other one with software prefetch, on huge pages where the OS gives them:
   the roofline is the fastest streaming read found here, not a slow one. */
static double measure_bandwidth(int n_threads) {
    const size_t bytes = (size_t)1 << 30, huge = (size_t)2 << 20;
    bw_job job;
    bn_pool *pool = bn_pool_new(n_threads);
    double best = 0.0;
    uint64_t keep = 0;
    size_t i;
    int rep;
    char *raw = (char *)malloc(bytes + huge);
    uint64_t *buf = raw ? (uint64_t *)(raw + (huge - (uintptr_t)raw % huge)) : NULL;
    if (!buf || !pool) {
        free(raw);
        bn_pool_free(pool);
        return 0.0;
    }
#if defined(MADV_HUGEPAGE)
    madvise(buf, bytes, MADV_HUGEPAGE);
#endif
    for (i = 0; i < bytes / 8; i++) buf[i] = i;
    memset(&job, 0, sizeof job);
    job.buf = buf;
    job.n = bytes / 8;
    for (rep = 0; rep < 10; rep++) {
        double t0 = bn_time_s(), dt;
        job.prefetch = rep % 2;
        bn_pool_run(pool, bw_worker, &job);
        dt = bn_time_s() - t0;
        if (bytes / dt / 1e9 > best) best = (double)bytes / dt / 1e9;
        keep += job.sums[0];
    }
    if (keep == 42) printf(" "); /* the sums are used */
    free(raw);
    bn_pool_free(pool);
    return best;
}

/* Bytes of weights one decode step reads: the ternary linears and lm_head. */
static size_t decode_weight_bytes(const bn_model *m) {
    const bn_config *c = bn_model_config(m);
    size_t total = 0;
    int l;
    for (l = 0; l < c->n_layers; l++) {
        const bn_layer *L = &m->layers[l];
        total += L->wq.nbytes + L->wk.nbytes + L->wv.nbytes + L->wo.nbytes + L->w_gate.nbytes + L->w_up.nbytes +
                 L->w_down.nbytes;
    }
    return total + (size_t)m->lm_head.rows * m->lm_head.cols * ftype_bytes(m->lm_head.type);
}

/* Tokens per second of n_steps one-token steps after a prompt of n_prompt
   tokens (not timed); n_steps = 0 times the prompt itself (one bn_eval). */
static double bench_eval(bn_context *ctx, int n_prompt, int n_steps, int vocab) {
    int32_t *tok = (int32_t *)malloc(sizeof(int32_t) * (size_t)n_prompt), one[1];
    bn_error err;
    double t0 = 0.0, dt;
    uint64_t rng = 7;
    int i, ok = tok != NULL;
    bn_context_reset(ctx);
    if (ok) bench_tokens(tok, n_prompt, vocab, &rng);
    if (n_steps == 0) t0 = bn_time_s();
    if (ok && bn_eval(ctx, 0, tok, n_prompt, &err) != BN_OK) ok = 0;
    if (n_steps > 0) t0 = bn_time_s();
    for (i = 0; ok && i < n_steps; i++) {
        bench_tokens(one, 1, vocab, &rng);
        if (bn_eval(ctx, 0, one, 1, &err) != BN_OK) ok = 0;
    }
    dt = bn_time_s() - t0;
    free(tok);
    if (!ok) {
        fprintf(stderr, "bitnet bench: %s\n", tok ? err.msg : "out of memory");
        return 0.0;
    }
    return (n_steps > 0 ? n_steps : n_prompt) / dt;
}

static const char *ftype_name(bn_ftype t) {
    return t == BN_FTYPE_F32 ? "f32" : t == BN_FTYPE_F16 ? "f16" : t == BN_FTYPE_I8 ? "i8" : "bf16";
}

static int cmd_bench(int argc, char **argv) {
    options o;
    bn_context_params cp = bn_context_default_params();
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    bn_error err;
    const bn_config *c;
    size_t mapped = 0, allocated = 0, wbytes, kv_bytes;
    double t0, load_s, tg, tg1 = 0.0, bw, bw1, roof;
    int i, quick = 0, long_ctx = 0, n_threads, rc = EXIT_OK;
    options_init(&o);
    o.model_dir = BENCH_MODEL;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s\n%s", BENCH_HELP, EXIT_HELP);
            return EXIT_OK;
        }
        if (!strcmp(a, "--quick")) {
            quick = 1;
            continue;
        }
        if (!strcmp(a, "--ctx")) {
            const char *v = need_value(argc, argv, &i);
            if (!v || !parse_int(a, v, &long_ctx) || long_ctx < 1) return EXIT_USAGE;
            continue;
        }
        r = parse_common(&o, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) {
            fprintf(stderr, "bitnet bench: unknown option '%s' (see --help)\n", a);
            return EXIT_USAGE;
        }
    }
    if (!file_exists(o.model_dir, "config.json")) {
        if (strcmp(o.model_dir, BENCH_MODEL) != 0) {
            fprintf(stderr, "bitnet bench: no config.json in %s\n", o.model_dir);
            return EXIT_LOAD;
        }
        printf("bench: generating the 2B4T-shaped synthetic model in %s (once)\n", BENCH_MODEL);
        fflush(stdout);
        if (system("python3 tools/gen_synthetic.py " BENCH_MODEL) != 0) return EXIT_LOAD;
    }
    t0 = bn_time_s();
    if (bn_model_load(&model, o.model_dir, &o.mp, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench: cannot load the model: %s\n", err.msg);
        return EXIT_LOAD;
    }
    load_s = bn_time_s() - t0;
    c = bn_model_config(model);
    bn_model_memory(model, &mapped, &allocated);
    wbytes = decode_weight_bytes(model);
    n_threads = o.n_threads > 0 ? o.n_threads : bn_cpu_count();
    cp.n_threads = n_threads;
    cp.kv_type = o.kv_type;
    cp.kernel = bn_kernel_detect();
    if (long_ctx > 0) { /* decode at a long context only */
        cp.n_ctx = long_ctx + 64;
        cp.n_batch = 256;
        if (bn_context_new(&ctx, model, &cp, &err) != BN_OK) {
            fprintf(stderr, "bitnet bench: %s\n", err.msg);
            bn_model_free(model);
            return EXIT_RUN;
        }
        bench_eval(ctx, 8, 4, c->vocab_size); /* warm-up */
        printf("tg32 @ %d  %.2f tok/s (%d threads, kernel %s, KV cache %s)\n", long_ctx,
               bench_eval(ctx, long_ctx, 32, c->vocab_size), n_threads, bn_kernel_name(cp.kernel),
               ftype_name(cp.kv_type));
        bn_context_free(ctx);
        bn_model_free(model);
        return EXIT_OK;
    }
    cp.n_ctx = quick ? 256 : 640;
    cp.n_batch = quick ? 128 : 512;
    if (bn_context_new(&ctx, model, &cp, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench: %s\n", err.msg);
        bn_model_free(model);
        return EXIT_RUN;
    }
    kv_bytes = (size_t)2 * c->n_layers * cp.n_ctx * c->n_kv_heads * c->head_dim * (cp.kv_type == BN_FTYPE_F16 ? 2 : 4);
    printf("model      %s: %d layers, hidden %d, ffn %d, vocab %d, loaded in %.1f s\n", o.model_dir, c->n_layers,
           c->hidden_size, c->intermediate_size, c->vocab_size, load_s);
    printf("layout     %s, lm_head %s, kernel %s, threads %d\n",
           model->layers[0].wq.layout == BN_TLAYOUT_TQ1 ? "tq1" : "i2", ftype_name(model->lm_head.type),
           bn_kernel_name(cp.kernel), n_threads);
    printf("memory     mapped %.1f MB, allocated %.1f MB, KV cache %.1f MB (%s, n_ctx %d)\n", mapped / 1e6,
           allocated / 1e6, kv_bytes / 1e6, ftype_name(cp.kv_type), cp.n_ctx);
    printf("weights    %.1f MB read per decoded token (ternary linears + lm_head)\n", wbytes / 1e6);
    fflush(stdout);
    bench_eval(ctx, 8, 0, c->vocab_size); /* warm-up: first touch of the weights, KV cache, scratch */
    printf("pp128      %.2f tok/s\n", bench_eval(ctx, 128, 0, c->vocab_size));
    fflush(stdout);
    if (!quick) {
        printf("pp512      %.2f tok/s\n", bench_eval(ctx, 512, 0, c->vocab_size));
        fflush(stdout);
    }
    tg = bench_eval(ctx, 1, quick ? 32 : 128, c->vocab_size);
    printf("tg%-3d      %.2f tok/s (%d threads), %.2f GB/s of weights\n", quick ? 32 : 128, tg, n_threads,
           tg * wbytes / 1e9);
    fflush(stdout);
    bn_context_free(ctx);
    ctx = NULL;
    cp.n_threads = 1;
    if (bn_context_new(&ctx, model, &cp, &err) == BN_OK) {
        tg1 = bench_eval(ctx, 1, quick ? 16 : 64, c->vocab_size);
        printf("tg (1 thr) %.2f tok/s, %.2f GB/s of weights\n", tg1, tg1 * wbytes / 1e9);
        if (!quick) printf("pp128 (1)  %.2f tok/s\n", bench_eval(ctx, 128, 0, c->vocab_size));
        fflush(stdout);
        bn_context_free(ctx);
    }
    /* The budget is the model's files + KV cache + 64 MB: the load converts
       the packed weights, copies the float matrices into their tiled layout
       and drops the file pages it no longer reads, so what stays is about
       one copy of the model. (Measured before the bandwidth buffer.) */
    printf("peak RSS   %.1f MB (model files %.1f MB, allocated %.1f MB, KV %.1f MB; budget: files + KV + 64 MB = %.1f MB)\n",
           peak_rss_mb(), mapped / 1e6, allocated / 1e6, kv_bytes / 1e6, (mapped + kv_bytes) / 1e6 + 64.0);
    bn_model_free(model);
    bw = measure_bandwidth(n_threads);
    bw1 = measure_bandwidth(1);
    if (bw <= 0.0 || bw1 <= 0.0) {
        fprintf(stderr, "bitnet bench: no memory for the 1 GiB bandwidth buffer\n");
        return EXIT_RUN;
    }
    roof = bw * 1e9 / (double)wbytes;
    printf("bandwidth  %.2f GB/s streaming read (%d threads), %.2f GB/s (1 thread)\n", bw, n_threads, bw1);
    printf("roofline   %.2f tok/s = %.2f GB/s / %.1f MB per token; decode reaches %.1f %% of it\n", roof, bw,
           wbytes / 1e6, 100.0 * tg / roof);
    printf("roofline1  %.2f tok/s at 1 thread; decode reaches %.1f %%\n", bw1 * 1e9 / (double)wbytes,
           100.0 * tg1 / (bw1 * 1e9 / (double)wbytes));
    return rc;
}

/* ------------------------------------------------------------ main */

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *what;
} command;

static const command COMMANDS[] = {
    {"run", cmd_run, "generate text from a prompt (streams to stdout)"},
    {"chat", cmd_chat, "interactive chat with the model's chat template"},
    {"ppl", cmd_ppl, "perplexity of a text file"},
    {"inspect", cmd_inspect, "config, tensors, dtypes, bytes and weight variant of a model folder"},
    {"bench", cmd_bench, "prompt and decode speed against the memory bandwidth (roofline)"},
    {"bench-batch", cmd_bench_batch, "decoding throughput with B sequences at once"},
    {"tokenize", cmd_tokenize, "token ids of a text, as a JSON list"},
    {"detokenize", cmd_detokenize, "the text of token ids"},
};

static int usage(int status) {
    FILE *f = status ? stderr : stdout;
    size_t i;
    fprintf(f, "bitnet %s: BitNet b1.58 models on the CPU\nusage: bitnet <command> [options]   "
               "(bitnet <command> --help for its options)\n\ncommands:\n", BITNET_VERSION);
    for (i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) fprintf(f, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].what);
    fprintf(f, "\n%s", EXIT_HELP);
    return status;
}

int main(int argc, char **argv) {
    size_t i;
    if (argc < 2) return usage(EXIT_USAGE);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) return usage(EXIT_OK);
    if (!strcmp(argv[1], "--version")) {
        printf("bitnet %s\n", BITNET_VERSION);
        return EXIT_OK;
    }
    for (i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "bitnet: unknown command '%s'\n", argv[1]);
    return usage(EXIT_USAGE);
}
