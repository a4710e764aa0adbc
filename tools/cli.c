/* cli.c: the option tables' machinery (parsing, --help, validation, the Markdown reference),
   the option blocks that several commands share, and helpers they share. See cli.h. */
#include "cli.h"
#include "hub.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _WIN32
#include <io.h>
#define is_terminal(fd) _isatty(fd)
#else
#include <unistd.h>
#define is_terminal(fd) isatty(fd)
#endif

const char CLI_EXIT_STATUS[] =
    "exit status: 0 ok, 1 failure while running, 2 usage error, 3 model/tokenizer load failed\n";

/* ------------------------------------------------------------------ shared option blocks */

static const cli_choice LAYOUTS[] = {
    {"auto", BN_TLAYOUT_DEFAULT}, {"i2", BN_TLAYOUT_I2}, {"tq1", BN_TLAYOUT_TQ1}, {NULL, 0}};
static const cli_choice HEAD_TYPES[] = {{"auto", -1},          {"f32", BN_FTYPE_F32}, {"bf16", BN_FTYPE_BF16},
                                        {"f16", BN_FTYPE_F16}, {"i8", BN_FTYPE_I8},   {NULL, 0}};
static const cli_choice KV_TYPES[] = {{"f32", BN_FTYPE_F32}, {"f16", BN_FTYPE_F16}, {NULL, 0}};
static const cli_choice KERNELS[] = {{"auto", BN_KERNEL_AUTO},
                                     {"scalar", BN_KERNEL_SCALAR},
                                     {"avx2", BN_KERNEL_AVX2},
                                     {"avx-vnni", BN_KERNEL_AVX_VNNI},
                                     {"avx512", BN_KERNEL_AVX512},
                                     {"avx512-gfni", BN_KERNEL_AVX512_GFNI},
                                     {"neon", BN_KERNEL_NEON},
                                     {"neon-dotprod", BN_KERNEL_NEON_DOT},
                                     {NULL, 0}};

const cli_opt CLI_ENGINE_OPTIONS[] = {
    CLI_INT("-t, --threads", "N", cli_model, n_threads, 0, 4096, "threads; 0: one per core"),
    CLI_ENUM("--layout", cli_model, layout, LAYOUTS,
             "in-memory ternary layout: i2 (2 bits a weight) or tq1 (1.6 bits, slower); auto: the measured best"),
    CLI_ENUM("--head", cli_model, head, HEAD_TYPES,
             "lm_head type; auto: the library's choice for the type on disk; i8 is faster (docs/kernels.md)"),
    CLI_ENUM("--kv", cli_model, kv, KV_TYPES, "KV cache type"),
    CLI_ENUM("--kernel", cli_model, kernel, KERNELS,
             "the CPU's matrix kernels; auto: the best this CPU runs (bn_kernel_detect; docs/kernels.md)"),
    CLI_FLAG("--metal", cli_model, metal, "run the model on the GPU through Metal (macOS builds; docs/metal.md)"),
    CLI_END};

const cli_opt CLI_MODEL_OPTIONS[] = {
    CLI_STRING("-m, --model", "DIR", cli_model, dir,
               "model folder (config.json + model.safetensors [+ tokenizer.json]), or ORG/NAME[@REV]: a "
               "HuggingFace repo in the HF cache, pulled when missing"),
    CLI_STRING("--tokenizer", "DIR", cli_model, tokenizer_dir,
               "take tokenizer.json from another folder (or ORG/NAME[@REV])"),
    CLI_INT("-c, --ctx-size", "N", cli_model, n_ctx, 0, INT_MAX,
            "context length; 0: the model's max_position_embeddings"),
    CLI_ALSO(CLI_ENGINE_OPTIONS),
    CLI_END};

void cli_model_defaults(cli_model *m) {
    memset(m, 0, sizeof *m);
    m->layout = BN_TLAYOUT_DEFAULT;
    m->head = -1;
    m->kv = (int)bn_context_default_params().kv_type;
}

bn_model_params cli_model_params(const cli_model *m) {
    bn_model_params p = bn_model_default_params();
    p.layout = (bn_tlayout)m->layout;
    if (m->head >= 0) {
        p.head_type = (bn_ftype)m->head;
        p.head_type_set = 1;
    }
    return p;
}

bn_context_params cli_context_params(const cli_model *m) {
    bn_context_params p = bn_context_default_params();
    p.n_ctx = m->n_ctx;
    p.n_threads = m->n_threads;
    p.kv_type = (bn_ftype)m->kv;
    p.kernel = (bn_kernel)m->kernel;
    return p;
}

#ifdef BITNET_METAL
static bn_backend *metal_backend; /* one for the process: contexts share its compiled kernels */
static void free_metal_backend(void) { bn_metal_backend_free(metal_backend); }
#endif

int cli_backend(const cli_model *m, bn_context_params *cp) {
    if (!bn_kernel_supported(cp->kernel)) {
        fprintf(stderr, "bitnet: --kernel %s: this CPU (or this build) cannot run it; the best here is %s\n",
                bn_kernel_name(cp->kernel), bn_kernel_name(bn_kernel_detect()));
        return 0;
    }
    if (!m->metal) return 1;
#ifdef BITNET_METAL
    if (!metal_backend) {
        bn_error err;
        if (bn_metal_backend_new(&metal_backend, &err) != BN_OK) {
            fprintf(stderr, "bitnet: --metal: %s\n", err.msg);
            return 0;
        }
        atexit(free_metal_backend);
    }
    cp->backend = metal_backend;
    return 1;
#else
    (void)cp;
    fprintf(stderr, "bitnet: --metal: this build has no Metal backend (on a Mac, `make` builds one; docs/metal.md)\n");
    return 0;
#endif
}

const cli_opt CLI_GENERATION_OPTIONS[] = {
    CLI_INT("-n, --n-predict", "N", cli_generation, n_predict, -1, INT_MAX,
            "tokens to generate; -1: until an end token or the context is full"),
    CLI_FLOAT("--temp", "T", cli_generation, sampler.temperature, 0, FLT_MAX, "temperature; 0: greedy"),
    CLI_INT("--top-k", "K", cli_generation, sampler.top_k, 0, INT_MAX, "keep the K most likely tokens; 0: off"),
    CLI_FLOAT("--top-p", "P", cli_generation, sampler.top_p, 0, 1, "nucleus sampling; 1: off"),
    CLI_FLOAT("--min-p", "P", cli_generation, sampler.min_p, 0, 1, "drop tokens below P x the most likely; 0: off"),
    CLI_FLOAT_ABOVE("--repeat-penalty", "R", cli_generation, sampler.repeat_penalty, 0, FLT_MAX,
                    "penalize the tokens of the last --repeat-last-n: positive logits divided by R, negative ones "
                    "multiplied; 1: off"),
    CLI_INT("--repeat-last-n", "N", cli_generation, sampler.penalty_last_n, 0, INT_MAX, "the window of the penalties"),
    CLI_FLOAT("--presence-penalty", "X", cli_generation, sampler.presence_penalty, -FLT_MAX, FLT_MAX,
              "subtracted once from the logit of every token in the window"),
    CLI_FLOAT("--frequency-penalty", "X", cli_generation, sampler.frequency_penalty, -FLT_MAX, FLT_MAX,
              "subtracted from a token's logit once per occurrence in the window"),
    CLI_INT("--seed", "S", cli_generation, seed, 0, INT_MAX,
            "random seed (default: from the clock, printed on stderr)"),
    CLI_LIST("--stop", "TEXT", cli_generation, stops, "stop when TEXT appears (TEXT is not printed)"),
    CLI_FLAG("--ignore-eos", cli_generation, ignore_eos, "do not stop at end tokens"),
    CLI_FLAG("--special", cli_generation, special, "print special tokens (e.g. <|eot_id|>) instead of skipping them"),
    CLI_STRING("--grammar", "FILE", cli_generation, grammar_file,
               "generate only text of this GBNF grammar (docs/grammars.md); '-': standard input"),
    CLI_STRING("--json-schema", "FILE", cli_generation, json_schema_file,
               "generate only JSON valid against this JSON Schema (the subset in docs/grammars.md)"),
    CLI_FLAG("--json", cli_generation, json, "generate only a JSON object"),
    CLI_END};

void cli_generation_defaults(cli_generation *g) {
    memset(g, 0, sizeof *g);
    g->sampler = bn_sampler_default_params();
    g->n_predict = -1;
    g->seed = -1;
}

int cli_end_tokens(const cli_session *s, int32_t eos[CLI_MAX_EOS]) {
    const bn_config *cfg = bn_model_config(s->model);
    int i, j, n = 0;
    int32_t tok_eos = s->tok ? bn_tokenizer_eos_id(s->tok) : -1;
    for (i = 0; i < cfg->n_eos && n < CLI_MAX_EOS - 1; i++) eos[n++] = cfg->eos_token_ids[i];
    for (j = 0; j < n && eos[j] != tok_eos; j++) {}
    if (tok_eos >= 0 && j == n) eos[n++] = tok_eos;
    return n;
}

int cli_generation_grammar(cli_generation *g, const cli_command *cmd, const cli_session *s) {
    const char *file = g->grammar_file ? g->grammar_file : g->json_schema_file;
    char *data = NULL;
    size_t len = 0;
    int32_t eos[CLI_MAX_EOS];
    bn_error err;
    if (!!g->grammar_file + !!g->json_schema_file + !!g->json > 1)
        return cli_usage_error(cmd, "give one of --grammar, --json-schema and --json");
    if (!file && !g->json) return EXIT_OK;
    if (!s->tok) return cli_usage_error(cmd, "--grammar, --json-schema and --json need a tokenizer (not --ids)");
    if (file) {
        if (!cli_read_input(file, &data, &len)) return EXIT_RUN;
        g->grammar_text = (char *)malloc(len + 1); /* NUL-terminated (standard input's buffer is not) */
        if (g->grammar_text) {
            memcpy(g->grammar_text, data, len);
            g->grammar_text[len] = 0;
        }
        free(data);
        if (!g->grammar_text) return EXIT_RUN;
    }
    if (g->grammar_file) g->sampler.grammar = g->grammar_text;
    else g->sampler.json_schema = g->json ? "{\"type\": \"object\"}" : g->grammar_text;
    if (bn_grammar_vocab_new(&g->grammar_vocab, s->tok, eos, cli_end_tokens(s, eos), &err) != BN_OK) {
        fprintf(stderr, "bitnet %s: %s\n", cmd->name, err.msg);
        return EXIT_RUN;
    }
    g->sampler.grammar_vocab = g->grammar_vocab;
    return EXIT_OK;
}

void cli_generation_free(cli_generation *g) {
    free(g->grammar_text);
    bn_grammar_vocab_free(g->grammar_vocab);
    g->grammar_text = NULL;
    g->grammar_vocab = NULL;
}

uint64_t cli_seed(const cli_generation *g) {
    uint64_t seed;
    if (g->seed >= 0) return (uint64_t)g->seed;
    seed = ((uint64_t)time(NULL) ^ ((uint64_t)clock() << 20)) & 0x7fffffff;
    fprintf(stderr, "seed: %llu\n", (unsigned long long)seed);
    return seed;
}

/* ------------------------------------------------------------------ parsing */

/* Each spelling of "-m, --model" in turn: *len gets its length; NULL after the last. */
static const char *next_spelling(const char *s, size_t *len) {
    while (*s == ',' || *s == ' ') s++;
    if (!*s) return NULL;
    *len = strcspn(s, ", ");
    return s;
}

static int spelled_as(const char *names, const char *a, size_t alen) {
    size_t len;
    const char *s;
    for (s = next_spelling(names, &len); s; s = next_spelling(s + len, &len))
        if (len == alen && !memcmp(s, a, len)) return 1;
    return 0;
}

/* The option spelled a[0..alen) in the table (and the blocks it includes); *base gets the
   offset of its block in the argument struct. */
static const cli_opt *find_option(const cli_opt *t, const char *a, size_t alen, size_t *base) {
    for (; t->type != CLI_T_END; t++) {
        if (t->type == CLI_T_INCLUDE) {
            size_t inner = 0;
            const cli_opt *o = find_option(t->include, a, alen, &inner);
            if (o) {
                *base = t->offset + inner;
                return o;
            }
        } else if (spelled_as(t->names, a, alen)) {
            *base = 0;
            return t;
        }
    }
    return NULL;
}

static int is_unbounded(double v) {
    return v <= (double)INT_MIN || v >= (double)INT_MAX || v <= -FLT_MAX || v >= FLT_MAX;
}

/* "an integer from 0 to 1", "a number > 0", ... */
static void describe_range(const cli_opt *o, char *buf, size_t size) {
    const char *what = o->type == CLI_T_INT ? "an integer" : "a number";
    int lo = !is_unbounded(o->min), hi = !is_unbounded(o->max);
    if (lo && hi)
        snprintf(buf, size, "%s from %g%s to %g", what, o->min, o->flags & CLI_MIN_EXCLUSIVE ? " (excluded)" : "",
                 o->max);
    else if (lo)
        snprintf(buf, size, "%s %s %g", what, o->flags & CLI_MIN_EXCLUSIVE ? ">" : ">=", o->min);
    else if (hi)
        snprintf(buf, size, "%s <= %g", what, o->max);
    else
        snprintf(buf, size, "%s", what);
}

static void choice_names(const cli_choice *c, const char *sep, char *buf, size_t size) {
    size_t n = 0;
    buf[0] = 0;
    for (; c->name && n < size; c++) n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? sep : "", c->name);
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "bitnet %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see bitnet %s --help)\n", cmd->name);
    return EXIT_USAGE;
}

/* Stores v, the value of option o spelled `name`, into its field. 0 after a usage message. */
static int set_value(const cli_command *cmd, const cli_opt *o, char *field, const char *name, const char *v) {
    char range[96], *end;
    if (o->type == CLI_T_INT) {
        long x;
        int ok;
        errno = 0;
        x = strtol(v, &end, 10);
        ok = *v && !*end && errno != ERANGE && x >= (long)INT_MIN && x <= (long)INT_MAX;
        if (!ok || (double)x < o->min || (double)x > o->max) {
            describe_range(o, range, sizeof range);
            cli_usage_error(cmd, "%s expects %s, got '%s'", name, range, v);
            return 0;
        }
        *(int *)(void *)field = (int)x;
    } else if (o->type == CLI_T_FLOAT) {
        double x = strtod(v, &end);
        int ok = *v && !*end && x == x && x >= -FLT_MAX && x <= FLT_MAX;
        if (!ok || x < o->min || x > o->max || (o->flags & CLI_MIN_EXCLUSIVE && x <= o->min)) {
            describe_range(o, range, sizeof range);
            cli_usage_error(cmd, "%s expects %s, got '%s'", name, range, v);
            return 0;
        }
        *(float *)(void *)field = (float)x;
    } else if (o->type == CLI_T_STRING) {
        *(const char **)(void *)field = v;
    } else if (o->type == CLI_T_ENUM) {
        const cli_choice *c;
        for (c = o->choices; c->name; c++)
            if (!strcmp(c->name, v)) break;
        if (!c->name) {
            char names[128];
            choice_names(o->choices, ", ", names, sizeof names);
            cli_usage_error(cmd, "%s expects one of %s, got '%s'", name, names, v);
            return 0;
        }
        *(int *)(void *)field = c->value;
    } else if (o->type == CLI_T_LIST) {
        cli_list *l = (cli_list *)(void *)field;
        if (l->n == CLI_LIST_MAX) {
            cli_usage_error(cmd, "at most %d %s options", CLI_LIST_MAX, name);
            return 0;
        }
        l->items[l->n++] = v;
    }
    return 1;
}

int cli_parse(const cli_command *cmd, void *args, int argc, char **argv, int *n_operands) {
    int i, n = 0, options_done = 0;
    if (!cli_check(cmd)) return EXIT_RUN;
    for (i = 1; i < argc; i++) {
        char *a = argv[i], name[64];
        const char *value = NULL, *eq;
        const cli_opt *o;
        size_t base = 0, alen;
        if (options_done || a[0] != '-' || a[1] == 0) { /* an operand ("-" is standard input) */
            argv[n++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            options_done = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_print_help(cmd, stdout);
            return EXIT_OK;
        }
        eq = a[1] == '-' ? strchr(a, '=') : NULL; /* --name=value */
        alen = eq ? (size_t)(eq - a) : strlen(a);
        o = find_option(cmd->options, a, alen, &base);
        snprintf(name, sizeof name, "%.*s", (int)(alen < 60 ? alen : 60), a);
        if (!o) {
            cli_usage_error(cmd, "unknown option '%s'", name);
            return EXIT_USAGE;
        }
        if (o->type == CLI_T_FLAG) {
            if (eq) {
                cli_usage_error(cmd, "%s takes no value", name);
                return EXIT_USAGE;
            }
            *(int *)(void *)((char *)args + base + o->offset) = (int)o->min;
            continue;
        }
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            cli_usage_error(cmd, "%s needs a value", name);
            return EXIT_USAGE;
        }
        if (!set_value(cmd, o, (char *)args + base + o->offset, name, value)) return EXIT_USAGE;
    }
    if (n < cmd->min_operands || (cmd->max_operands >= 0 && n > cmd->max_operands)) {
        if (n < cmd->min_operands)
            cli_usage_error(cmd, "missing operand: usage: bitnet %s %s", cmd->name, cmd->usage);
        else if (cmd->max_operands == 0)
            cli_usage_error(cmd, "unexpected argument '%s'", argv[0]);
        else
            cli_usage_error(cmd, "too many arguments ('%s'); quote a text that has spaces", argv[cmd->max_operands]);
        return EXIT_USAGE;
    }
    if (n_operands) *n_operands = n;
    return CLI_PROCEED;
}

int cli_main(const cli_command *cmd, int argc, char **argv) {
    void *args = calloc(1, cmd->args_size ? cmd->args_size : 1);
    int n = 0, rc;
    if (!args) {
        fprintf(stderr, "bitnet %s: out of memory\n", cmd->name);
        return EXIT_RUN;
    }
    if (cmd->defaults) cmd->defaults(args);
    rc = cli_parse(cmd, args, argc, argv, &n);
    if (rc == CLI_PROCEED) rc = cmd->run(args, n, argv);
    free(args);
    return rc;
}

/* ------------------------------------------------------------------ checking a table */

static size_t field_size(cli_type t) {
    switch (t) {
    case CLI_T_FLAG:
    case CLI_T_INT:
    case CLI_T_ENUM:
        return sizeof(int);
    case CLI_T_FLOAT:
        return sizeof(float);
    case CLI_T_STRING:
        return sizeof(const char *);
    case CLI_T_LIST:
        return sizeof(cli_list);
    default:
        return 0;
    }
}

static int check_table(const cli_command *cmd, const cli_opt *root, const cli_opt *t, size_t base, size_t limit) {
    for (; t->type != CLI_T_END; t++) {
        size_t len, other_base;
        const char *s;
        if (t->type == CLI_T_INCLUDE) {
            if (!check_table(cmd, root, t->include, base + t->offset, limit)) return 0;
            continue;
        }
        if (t->size != field_size(t->type) || base + t->offset + t->size > limit || !t->names || !t->help ||
            (t->type == CLI_T_ENUM && !t->choices) || (t->type != CLI_T_ENUM && t->type != CLI_T_FLAG && !t->arg)) {
            fprintf(stderr, "bitnet %s: internal error: the table entry of %s does not match its field\n", cmd->name,
                    t->names ? t->names : "(unnamed)");
            return 0;
        }
        for (s = next_spelling(t->names, &len); s; s = next_spelling(s + len, &len))
            if (s[0] != '-' || find_option(root, s, len, &other_base) != t || (len == 2 && s[1] == 'h') ||
                (len == 6 && !memcmp(s, "--help", 6))) {
                fprintf(stderr, "bitnet %s: internal error: the spelling '%.*s' is taken or malformed\n", cmd->name,
                        (int)len, s);
                return 0;
            }
    }
    return 1;
}

int cli_check(const cli_command *cmd) { return check_table(cmd, cmd->options, cmd->options, 0, cmd->args_size); }

/* ------------------------------------------------------------------ --help */

#define HELP_COL 30 /* where the help texts start */
#define HELP_WIDTH 100

#define NBSP '\001' /* a space where wrap() does not break */

/* Prints text from column col (the cursor is there), wrapping at HELP_WIDTH to column indent. */
static void wrap(FILE *out, const char *text, int col, int indent) {
    while (*text) {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + (int)word > HELP_WIDTH) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        for (; word; word--, text++, col++) fputc(*text == NBSP ? ' ' : *text, out);
        while (*text == ' ') text++;
    }
}

/* The option's default as text, from the field after defaults(); "" when none is shown. */
static void default_text(const cli_opt *o, const char *field, char *buf, size_t size) {
    buf[0] = 0;
    if (strstr(o->help, "default")) return; /* the help text describes it */
    if (o->type == CLI_T_INT)
        snprintf(buf, size, "%d", *(const int *)(const void *)field);
    else if (o->type == CLI_T_FLOAT)
        snprintf(buf, size, "%g", (double)*(const float *)(const void *)field);
    else if (o->type == CLI_T_STRING && *(const char *const *)(const void *)field)
        snprintf(buf, size, "%s", *(const char *const *)(const void *)field);
    else if (o->type == CLI_T_ENUM) {
        const cli_choice *c;
        for (c = o->choices; c->name; c++)
            if (c->value == *(const int *)(const void *)field) snprintf(buf, size, "%s", c->name);
    }
}

static void option_value_name(const cli_opt *o, const char *sep, char *buf, size_t size) {
    if (o->type == CLI_T_ENUM)
        choice_names(o->choices, sep, buf, size);
    else
        snprintf(buf, size, "%s", o->arg ? o->arg : "");
}

/* One option's line(s) of --help; defaults: its block's struct after defaults(). */
static void print_option(FILE *out, const cli_opt *t, const char *defaults) {
    char left[160], value[128], dflt[128], help[512];
    int col;
    option_value_name(t, "|", value, sizeof value);
    /* "  -m, --model DIR", or "      --tokenizer DIR" when there is no short spelling */
    snprintf(left, sizeof left, "%s%s%s%s", t->names[1] == '-' ? "    " : "", t->names, value[0] ? " " : "", value);
    col = fprintf(out, "  %s", left);
    if (col >= HELP_COL) {
        fprintf(out, "\n");
        col = 0;
    }
    fprintf(out, "%*s", HELP_COL - col, "");
    default_text(t, defaults + t->offset, dflt, sizeof dflt);
    snprintf(help, sizeof help, "%s%s%s%s%s", t->help, t->type == CLI_T_LIST ? " (repeatable)" : "",
             dflt[0] ? " (default\001" : "", dflt, dflt[0] ? ")" : "");
    wrap(out, help, HELP_COL, HELP_COL);
    fprintf(out, "\n");
}

/* The table's options; headed blocks after the others (and after -h, --help at the top). */
static void print_options(FILE *out, const cli_opt *t, const char *defaults, int top) {
    const cli_opt *o;
    for (o = t; o->type != CLI_T_END; o++)
        if (o->type == CLI_T_INCLUDE && !o->names)
            print_options(out, o->include, defaults + o->offset, 0);
        else if (o->type != CLI_T_INCLUDE)
            print_option(out, o, defaults);
    if (top) fprintf(out, "  -h, --help%*sprint this help\n", HELP_COL - 12, "");
    for (o = t; o->type != CLI_T_END; o++)
        if (o->type == CLI_T_INCLUDE && o->names) {
            fprintf(out, "\n%s:\n", o->names);
            print_options(out, o->include, defaults + o->offset, 0);
        }
}

static void *new_defaults(const cli_command *cmd) {
    void *d = calloc(1, cmd->args_size ? cmd->args_size : 1);
    if (d && cmd->defaults) cmd->defaults(d);
    return d;
}

void cli_print_help(const cli_command *cmd, FILE *out) {
    char *defaults = (char *)new_defaults(cmd);
    if (!defaults) return;
    fprintf(out, "usage: bitnet %s %s\n%s\noptions:\n", cmd->name, cmd->usage, cmd->about);
    print_options(out, cmd->options, defaults, 1);
    fprintf(out, "\n%s", CLI_EXIT_STATUS);
    free(defaults);
}

/* ------------------------------------------------------------------ the Markdown reference */

/* Text for a table cell: '|' escaped, newlines as spaces. */
static void md_cell(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s == '\n' ? ' ' : *s, out);
    }
}

/* "my options" -> "my-options" (GitHub's anchor of a heading). */
static void md_anchor(FILE *out, const char *heading) {
    for (; *heading; heading++) fputc(*heading == ' ' ? '-' : *heading, out);
}

static void md_rows(FILE *out, const cli_opt *t, const char *defaults) {
    for (; t->type != CLI_T_END; t++) {
        char value[128], dflt[128];
        size_t len;
        const char *s;
        if (t->type == CLI_T_INCLUDE) {
            if (!t->names) md_rows(out, t->include, defaults + t->offset); /* headed blocks are linked */
            continue;
        }
        fputs("| ", out);
        for (s = next_spelling(t->names, &len); s; s = next_spelling(s + len, &len))
            fprintf(out, "%s`%.*s`", s == t->names ? "" : ", ", (int)len, s);
        option_value_name(t, ", ", value, sizeof value);
        fputs(" | ", out);
        md_cell(out, value);
        default_text(t, defaults + t->offset, dflt, sizeof dflt);
        fputs(" | ", out);
        md_cell(out, dflt);
        fputs(" | ", out);
        md_cell(out, t->help);
        fprintf(out, "%s |\n", t->type == CLI_T_LIST ? " (repeatable)" : "");
    }
}

static void md_table(FILE *out, const cli_opt *t, const char *defaults) {
    const cli_opt *o;
    int n_links = 0, n_own = 0, k = 0;
    for (o = t; o->type != CLI_T_END; o++) {
        n_own += o->type != CLI_T_INCLUDE || !o->names;
        n_links += o->type == CLI_T_INCLUDE && o->names;
    }
    if (n_own) {
        fprintf(out, "| option | value | default | description |\n|---|---|---|---|\n");
        md_rows(out, t, defaults);
    }
    for (o = t; o->type != CLI_T_END; o++)
        if (o->type == CLI_T_INCLUDE && o->names) {
            fprintf(out, "%s[%s](#",
                    k == 0             ? (n_own ? "\nAnd the " : "The ")
                    : k == n_links - 1 ? " and the "
                                       : ", the ",
                    o->names);
            md_anchor(out, o->names);
            fputs(")", out);
            k++;
        }
    if (n_links) fprintf(out, ".\n");
}

/* The headed blocks of the tables, each once, in the order of first use. */
#define MD_MAX_BLOCKS 16
typedef struct md_block {
    const cli_opt *include; /* the CLI_T_INCLUDE entry */
    const char *defaults;   /* its struct's defaults */
} md_block;

static void md_collect(md_block *blocks, int *n, const cli_opt *t, const char *defaults) {
    for (; t->type != CLI_T_END; t++) {
        int k, seen = 0;
        if (t->type != CLI_T_INCLUDE) continue;
        md_collect(blocks, n, t->include, defaults + t->offset);
        if (!t->names) continue;
        for (k = 0; k < *n; k++) seen |= !strcmp(blocks[k].include->names, t->names);
        if (!seen && *n < MD_MAX_BLOCKS) {
            blocks[*n].include = t;
            blocks[(*n)++].defaults = defaults + t->offset;
        }
    }
}

void cli_print_markdown(const cli_command *const *cmds, int n, FILE *out) {
    md_block blocks[MD_MAX_BLOCKS];
    char *defaults[64];
    int i, k, n_blocks = 0;
    if (n > 64) n = 64;
    fprintf(out, "# The `bitnet` command\n\n"
                 "Generated from the option tables in `tools/` by `bitnet help --markdown`; `tests/test_cli.sh`\n"
                 "checks that this file is current. `bitnet COMMAND --help` prints the same.\n\n"
                 "Options may come in any order, before or after the operands; `--name=value` works as well as\n"
                 "`--name value`, and `--` ends the options. Exit status: 0 ok, 1 failure while running, 2 usage\n"
                 "error (unknown option, missing or malformed value), 3 the model or tokenizer could not be loaded.\n\n"
                 "| command | |\n|---|---|\n");
    for (i = 0; i < n; i++) {
        fprintf(out, "| [%s](#bitnet-%s) | ", cmds[i]->name, cmds[i]->name);
        md_cell(out, cmds[i]->summary);
        fprintf(out, " |\n");
    }
    for (i = 0; i < n; i++) {
        defaults[i] = (char *)new_defaults(cmds[i]);
        if (!defaults[i]) return;
        fprintf(out, "\n## bitnet %s\n\n```\nbitnet %s %s\n```\n\n%s\n", cmds[i]->name, cmds[i]->name, cmds[i]->usage,
                cmds[i]->about);
        md_table(out, cmds[i]->options, defaults[i]);
        md_collect(blocks, &n_blocks, cmds[i]->options, defaults[i]);
    }
    for (k = 0; k < n_blocks; k++) {
        fprintf(out, "\n## %s\n\n", blocks[k].include->names);
        md_table(out, blocks[k].include->include, blocks[k].defaults);
    }
    for (i = 0; i < n; i++) free(defaults[i]);
}

/* ------------------------------------------------------------------ sessions */

int cli_stderr_is_tty(void) { return is_terminal(2); }

int cli_file_exists(const char *dir, const char *name) {
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

void cli_session_free(cli_session *s) {
    bn_context_free(s->ctx);
    bn_tokenizer_free(s->tok);
    bn_model_free(s->model);
    memset(s, 0, sizeof *s);
}

/* Ends the "loading ..." line on a terminal before a message. */
static void end_progress(void) {
    if (cli_stderr_is_tty()) fprintf(stderr, "\n");
}

int cli_resolve_model(cli_model *m) {
    static char dir[4096], tok[4096];
    const char *p;
    if (m->dir && m->dir != dir) {
        if (!(p = hub_model_path(m->dir))) return 0;
        snprintf(dir, sizeof dir, "%s", p);
        m->dir = dir;
    }
    if (m->tokenizer_dir && m->tokenizer_dir != tok) {
        if (!(p = hub_model_path(m->tokenizer_dir))) return 0;
        snprintf(tok, sizeof tok, "%s", p);
        m->tokenizer_dir = tok;
    }
    return 1;
}

int cli_session_open(cli_session *s, const cli_model *m, int n_seq, int need_tokenizer) {
    bn_error err;
    bn_model_params mp = cli_model_params(m);
    bn_context_params cp = cli_context_params(m);
    cli_model resolved = *m;
    const char *tdir;
    double t0 = bn_time_s();
    size_t mapped = 0, alloc = 0;
    memset(s, 0, sizeof *s);
    if (!m->dir) {
        fprintf(stderr, "bitnet: no model given: use -m DIR (a folder with config.json and model.safetensors) or "
                        "-m ORG/NAME (a HuggingFace repo)\n");
        return EXIT_USAGE;
    }
    if (!cli_resolve_model(&resolved)) return EXIT_LOAD;
    m = &resolved;
    tdir = m->tokenizer_dir ? m->tokenizer_dir : m->dir;
    progress_preload(m->dir);
    if (cli_stderr_is_tty()) fprintf(stderr, "loading %s ...", m->dir);
    if (bn_model_load(&s->model, m->dir, &mp, &err) != BN_OK) {
        end_progress();
        fprintf(stderr, "bitnet: cannot load the model: %s\n", err.msg);
        return EXIT_LOAD;
    }
    if (m->tokenizer_dir || cli_file_exists(tdir, "tokenizer.json")) {
        if (bn_tokenizer_load(&s->tok, tdir, &err) != BN_OK) {
            end_progress();
            fprintf(stderr, "bitnet: cannot load the tokenizer: %s\n", err.msg);
            cli_session_free(s);
            return EXIT_LOAD;
        }
    } else if (need_tokenizer) {
        end_progress();
        fprintf(stderr,
                "bitnet: %s has no tokenizer.json: give token ids with --ids, or a tokenizer with --tokenizer DIR\n",
                m->dir);
        cli_session_free(s);
        return EXIT_LOAD;
    }
    cp.n_seq = n_seq;
    if (!cli_backend(m, &cp)) {
        end_progress();
        cli_session_free(s);
        return EXIT_RUN;
    }
    if (bn_context_new(&s->ctx, s->model, &cp, &err) != BN_OK) {
        end_progress();
        fprintf(stderr, "bitnet: cannot create a context: %s\n", err.msg);
        cli_session_free(s);
        return err.status == BN_ERR_NOMEM ? EXIT_RUN : EXIT_USAGE;
    }
    s->load_s = bn_time_s() - t0;
    bn_model_memory(s->model, &mapped, &alloc);
    if (cli_stderr_is_tty()) fprintf(stderr, "\r");
    fprintf(stderr, "load: %.2f s, %.1f MiB mapped, %.1f MiB allocated, threads %s%.0d, kernel %s, context %d\n",
            s->load_s, (double)mapped / 1048576.0, (double)alloc / 1048576.0, m->n_threads > 0 ? "" : "auto",
            m->n_threads > 0 ? m->n_threads : 0,
            cp.backend ? cp.backend->name : bn_kernel_name(bn_context_get_params(s->ctx)->kernel),
            bn_context_get_params(s->ctx)->n_ctx);
    return EXIT_OK;
}

/* ------------------------------------------------------------------ input */

int cli_read_input(const char *path, char **data, size_t *len) {
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

int cli_parse_ids(const char *s, int32_t **out) {
    int n = 0, cap = 16;
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)cap);
    *out = NULL;
    while (ids && *s) {
        char *end;
        long v;
        if (strchr("[], \t\r\n", *s)) {
            s++;
            continue;
        }
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

const char *cli_ftype_name(int t) {
    return t == BN_FTYPE_F32 ? "f32" : t == BN_FTYPE_F16 ? "f16" : t == BN_FTYPE_I8 ? "i8" : "bf16";
}
