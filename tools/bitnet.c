/* bitnet: the command-line front end of bitnet.h.

       bitnet run     -m DIR -p "prompt"     generate text (streams to stdout)
       bitnet chat    -m DIR                 interactive chat with the model's template
       bitnet ppl     -m DIR -f FILE         perplexity of a text file
       bitnet inspect -m DIR                 config, tensors, weight variant
       bitnet tokenize   -m DIR TEXT         token ids as a JSON list
       bitnet detokenize -m DIR ID...        the text of token ids
       bitnet bench, bench-batch             speed (tools/bench.c)
       bitnet serve   -m DIR                 OpenAI-compatible HTTP server (tools/serve.c)
       bitnet bench-serve                    the server's speed (tools/bench_serve.c)

   This file holds the library's implementation, the user commands and main(). Each command is
   an argument struct, an option table (tools/cli.h explains them), and a function that runs it;
   the COMMANDS table at the end lists every command, including those in other tools/ files.
   docs/cli.md is the reference that `bitnet help --markdown` writes from the tables.

   Build: make (or: cc -O2 tools/[a-z]*.c -o bitnet -lm -lpthread). */
#define _DEFAULT_SOURCE /* lets bitnet.h ask Linux for huge pages for the weights (madvise) */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "cli.h"
#include "hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#ifdef _WIN32
#include <io.h>
#define is_terminal(fd) _isatty(fd)
#else
#include <unistd.h>
#define is_terminal(fd) isatty(fd)
#endif

/* ------------------------------------------------------------ streaming text */

/* bn_generate's callback: prints the finished text the library hands over
   (or, without a tokenizer, the ids) and keeps it when asked (chat's reply). */
typedef struct printer {
    FILE *out;
    int ids;         /* no tokenizer: print ids, the end token left out */
    int n_printed;
    int keep;        /* keep the text in text/len */
    char *text;
    size_t len, cap;
} printer;

/* Start a generation's output; the kept-text buffer is reused from turn to turn. */
static void printer_init(printer *p, const bn_tokenizer *tok, int keep) {
    p->out = stdout;
    p->ids = tok == NULL;
    p->n_printed = 0;
    p->keep = keep;
    p->len = 0;
}

static int printer_keep(printer *p, const char *text, size_t len) {
    if (p->len + len + 1 > p->cap) {
        size_t cap = (p->len + len + 1) * 2;
        char *t = (char *)realloc(p->text, cap);
        if (!t) return 0;
        p->text = t;
        p->cap = cap;
    }
    memcpy(p->text + p->len, text, len);
    p->len += len;
    p->text[p->len] = 0;
    return 1;
}

static int printer_on_token(void *user, const bn_token_event *ev) {
    printer *p = (printer *)user;
    if (p->ids) {
        if (ev->token >= 0 && !ev->end_token) fprintf(p->out, "%s%d", p->n_printed++ ? " " : "", (int)ev->token);
    } else if (ev->len) {
        fwrite(ev->text, 1, ev->len, p->out);
        if (p->keep && !printer_keep(p, ev->text, ev->len)) return 1;
    }
    fflush(p->out);
    return 0;
}

/* The generation parameters run and chat share: the library turns ids into
   text, applies the stop strings and the end tokens, and calls the printer. */
static bn_generate_params generate_params(const cli_session *s, const cli_generation *g, printer *pr) {
    bn_generate_params gp = bn_generate_default_params();
    gp.max_new_tokens = g->n_predict;
    gp.ignore_eos = g->ignore_eos;
    gp.tokenizer = s->tok;
    gp.decode_flags = g->special ? 0u : BN_TOK_SKIP_SPECIAL;
    gp.stop = g->stops.items;
    gp.n_stop = g->stops.n;
    gp.on_token = printer_on_token;
    gp.user = pr;
    return gp;
}

static void print_speed(const bn_generate_result *r) {
    fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tok/s)\n", r->n_prompt, r->prompt_s,
            r->prompt_s > 0 ? r->n_prompt / r->prompt_s : 0.0);
    fprintf(stderr, "generate: %d tokens in %.3f s (%.1f tok/s), stopped: %s\n", r->n_generated, r->gen_s,
            r->gen_s > 0 ? r->n_generated / r->gen_s : 0.0, bn_stop_reason_name(r->reason));
}

/* ------------------------------------------------------------ run */

typedef struct run_args {
    cli_model model;
    cli_generation gen;
    const char *prompt, *file, *ids, *prompt_cache;
    int bos, beams;
} run_args;

static void run_defaults(void *p) {
    run_args *a = (run_args *)p;
    cli_model_defaults(&a->model);
    cli_generation_defaults(&a->gen);
    a->bos = 1;
    a->beams = 1;
}

static const cli_opt RUN_OPTIONS[] = {
    CLI_STRING("-p, --prompt", "TEXT", run_args, prompt, "the prompt"),
    CLI_STRING("-f, --file", "FILE", run_args, file, "read the prompt from FILE ('-': standard input)"),
    CLI_STRING("--ids", "LIST", run_args, ids, "the prompt as token ids, e.g. 1,15043,3186"),
    CLI_FLAG_SET("--no-bos", run_args, bos, 0, "do not add the tokenizer's BOS to a text prompt"),
    CLI_INT("--beams", "N", run_args, beams, 1, 256, "beam search with N beams (prints the best; greedy, no sampling)"),
    CLI_STRING("--prompt-cache", "FILE", run_args, prompt_cache,
               "reuse the prompt's state saved in FILE (what it shares with this prompt) and save it there (docs/state.md)"),
    CLI_INCLUDE("model options", run_args, model, CLI_MODEL_OPTIONS),
    CLI_INCLUDE("generation options", run_args, gen, CLI_GENERATION_OPTIONS),
    CLI_END};

/* The prompt as ids: --ids, or the text of -p / -f encoded. */
static int prompt_ids(const cli_session *s, const run_args *o, int32_t **ids, int *n) {
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    bn_error err;
    *ids = NULL;
    *n = 0;
    if (o->ids) {
        *n = cli_parse_ids(o->ids, ids);
        if (*n <= 0) {
            free(*ids);
            *ids = NULL;
            return cli_usage_error(&cmd_run, "--ids expects a list of token ids such as 1,2,3, got '%s'", o->ids);
        }
        return EXIT_OK;
    }
    if (o->file && !cli_read_input(o->file, &text, &len)) return EXIT_RUN;
    if (bn_tokenizer_encode(s->tok, text ? text : o->prompt, text ? len : strlen(o->prompt),
                            (o->bos ? BN_TOK_ADD_SPECIAL : 0u) | BN_TOK_REPLACE_INVALID, ids, &n_ids,
                            &err) != BN_OK) {
        fprintf(stderr, "bitnet: cannot tokenize the prompt: %s\n", err.msg);
        free(text);
        return EXIT_RUN;
    }
    free(text);
    *n = (int)n_ids;
    if (*n == 0) return cli_usage_error(&cmd_run, "the prompt is empty");
    return EXIT_OK;
}

static int run_beams(cli_session *s, const run_args *a, const int32_t *ids, int n) {
    const cli_generation *g = &a->gen;
    bn_beam_params bp = bn_beam_default_params();
    bn_beam_result r;
    bn_error err;
    int32_t no_eos = -1;
    int i, rc = EXIT_OK;
    bp.n_beams = a->beams;
    bp.max_new_tokens = g->n_predict > 0 ? g->n_predict : 32;
    bp.tokenizer = s->tok;
    if (g->ignore_eos) { /* an empty list: no end tokens */
        bp.eos = &no_eos;
        bp.n_eos = 0;
    }
    if (bn_beam_search(s->ctx, 0, ids, n, &bp, &r, &err) != BN_OK) {
        fprintf(stderr, "bitnet: beam search failed: %s\n", err.msg);
        return EXIT_RUN;
    }
    if (r.n > 0) {
        const bn_beam_hyp *best = &r.hyps[0];
        int n_out = best->n_tokens - best->ended; /* the end token is not part of the text */
        char *text = NULL;
        if (!s->tok) {
            for (i = 0; i < n_out; i++) printf("%s%d", i ? " " : "", (int)best->tokens[i]);
        } else if (bn_tokenizer_decode(s->tok, best->tokens, (size_t)n_out, g->special ? 0u : BN_TOK_SKIP_SPECIAL,
                                       &text, NULL, &err) == BN_OK) {
            fputs(text, stdout);
            bn_free(text);
        } else {
            fprintf(stderr, "bitnet: %s\n", err.msg);
            rc = EXIT_RUN;
        }
    }
    fprintf(stdout, "\n");
    for (i = 0; i < r.n; i++)
        fprintf(stderr, "beam %d: %d tokens, score %.4f (sum log p %.4f)\n", i, r.hyps[i].n_tokens,
                (double)r.hyps[i].score, (double)r.hyps[i].sum_logprob);
    bn_beam_result_free(&r);
    return rc;
}

/* --prompt-cache: loads FILE into sequence 0 when it exists and belongs to this model.
   Returns the number of tokens it holds, or -1 when there is none to use. */
static int prompt_cache_read(cli_session *s, const char *path) {
    bn_error err;
    FILE *f = fopen(path, "rb");
    if (!f) return -1; /* not written yet */
    fclose(f);
    if (bn_seq_state_load_file(s->ctx, 0, path, &err) != BN_OK) {
        fprintf(stderr, "prompt cache: not used, it will be written again: %s\n", err.msg);
        return -1;
    }
    return bn_seq_len(s->ctx, 0);
}

/* Cuts sequence 0 to the longest start it shares with ids[0..n); returns its length. */
static int keep_common_start(cli_session *s, const int32_t *ids, int n) {
    int n_held = 0, keep = 0;
    const int32_t *held = bn_seq_tokens(s->ctx, 0, &n_held);
    while (keep < n_held && keep < n && held[keep] == ids[keep]) keep++;
    bn_seq_truncate(s->ctx, 0, keep);
    return keep;
}

/* Writes sequence 0's state to FILE; a failure is reported, not fatal. */
static void prompt_cache_save(cli_session *s, const char *path) {
    bn_error err;
    if (bn_seq_state_save_file(s->ctx, 0, path, &err) != BN_OK) fprintf(stderr, "prompt cache: %s\n", err.msg);
}

/* With --prompt-cache: all of the prompt but its last token goes into sequence 0 (reusing what
   FILE holds of it), and FILE is written when that changed. Returns how many tokens are in, or -1. */
static int run_prompt_cache(cli_session *s, const run_args *a, bn_sampler *sampler, const int32_t *ids, int n) {
    bn_error err;
    double t0;
    int n_held = prompt_cache_read(s, a->prompt_cache), keep = keep_common_start(s, ids, n - 1), i;
    t0 = bn_time_s();
    if (n - 1 > keep && bn_eval(s->ctx, 0, ids + keep, n - 1 - keep, &err) != BN_OK) {
        fprintf(stderr, "bitnet run: %s\n", err.msg);
        return -1;
    }
    fprintf(stderr, "prompt cache: %d of %d prompt tokens from %s, %d evaluated in %.3f s\n", keep, n, a->prompt_cache,
            n - 1 - keep, bn_time_s() - t0);
    if (n_held != keep || keep < n - 1) prompt_cache_save(s, a->prompt_cache);
    for (i = 0; i < n - 1; i++) bn_sampler_accept_prompt(sampler, ids[i]);
    return n - 1;
}

static int run_run(void *p, int argc, char **argv) {
    run_args *a = (run_args *)p;
    cli_generation *g = &a->gen;
    cli_session s;
    int rc, n = 0, first = 0;
    int32_t *ids = NULL;
    bn_sampler *sampler = NULL;
    bn_generate_params gp;
    bn_generate_result res;
    bn_error err;
    printer pr;
    (void)argc;
    (void)argv;
    if (!!a->prompt + !!a->file + !!a->ids != 1)
        return cli_usage_error(&cmd_run, "give exactly one of -p PROMPT, -f FILE or --ids LIST");
    rc = cli_session_open(&s, &a->model, a->beams, !a->ids);
    if (rc) return rc;
    if (a->ids) { /* ids in, ids out */
        bn_tokenizer_free(s.tok);
        s.tok = NULL;
    }
    rc = prompt_ids(&s, a, &ids, &n);
    if (!rc && a->beams > 1 && (g->grammar_file || g->json_schema_file || g->json || a->prompt_cache))
        rc = cli_usage_error(&cmd_run, "--beams takes no grammar and no --prompt-cache");
    if (!rc && a->beams > 1) rc = run_beams(&s, a, ids, n);
    if (!rc) rc = cli_generation_grammar(g, &cmd_run, &s);
    if (rc || a->beams > 1) {
        free(ids);
        cli_generation_free(g);
        cli_session_free(&s);
        return rc;
    }
    g->sampler.seed = cli_seed(g);
    if (bn_sampler_new(&sampler, &g->sampler, bn_model_config(s.model)->vocab_size, &err) != BN_OK) {
        fprintf(stderr, "bitnet run: %s\n", err.msg);
        free(ids);
        cli_generation_free(g);
        cli_session_free(&s);
        return EXIT_USAGE;
    }
    if (a->prompt_cache && (first = run_prompt_cache(&s, a, sampler, ids, n)) < 0) {
        bn_sampler_free(sampler);
        free(ids);
        cli_generation_free(g);
        cli_session_free(&s);
        return EXIT_RUN;
    }
    memset(&pr, 0, sizeof pr);
    printer_init(&pr, s.tok, 0);
    gp = generate_params(&s, g, &pr);
    rc = bn_generate(s.ctx, 0, sampler, ids + first, n - first, &gp, NULL, 0, &res, &err) == BN_OK ? EXIT_OK : EXIT_RUN;
    fprintf(stdout, "\n");
    fflush(stdout);
    if (rc) fprintf(stderr, "bitnet run: %s\n", err.msg);
    else print_speed(&res);
    bn_sampler_free(sampler);
    free(ids);
    cli_generation_free(g);
    cli_session_free(&s);
    return rc;
}

const cli_command cmd_run = {
    "run", "generate text from a prompt (streams to stdout)", "-m DIR (-p PROMPT | -f FILE | --ids LIST) [options]",
    "Generates a continuation of the prompt and streams it to stdout (the prompt itself is not\n"
    "echoed); the load and speed summary goes to stderr. With --ids (or a model folder without a\n"
    "tokenizer) the prompt and the output are token ids.\n",
    RUN_OPTIONS, sizeof(run_args), run_defaults, run_run, 0, 0};

/* ------------------------------------------------------------ chat */

typedef struct chat_args {
    cli_model model;
    cli_generation gen;
    const char *system, *prompt_cache;
    int template_id, verbose;
} chat_args;

static void chat_defaults(void *p) {
    chat_args *a = (chat_args *)p;
    cli_model_defaults(&a->model);
    cli_generation_defaults(&a->gen);
    a->template_id = BN_CHAT_AUTO;
}

static const cli_choice CHAT_TEMPLATES[] = {
    {"auto", BN_CHAT_AUTO}, {"llama3", BN_CHAT_LLAMA3}, {"bitnet", BN_CHAT_BITNET}, {NULL, 0}};

static const cli_opt CHAT_OPTIONS[] = {
    CLI_STRING("-s, --system", "TEXT", chat_args, system, "a system message"),
    CLI_ENUM("--template", chat_args, template_id, CHAT_TEMPLATES,
             "the chat format; auto: the one recognized in tokenizer_config.json"),
    CLI_FLAG("-v, --verbose", chat_args, verbose, "print the cache reuse and the speed of each turn on stderr"),
    CLI_STRING("--prompt-cache", "FILE", chat_args, prompt_cache,
               "start from the conversation state saved in FILE (what it shares with the first prompt) and save "
               "it there after each reply (docs/state.md)"),
    CLI_INCLUDE("model options", chat_args, model, CLI_MODEL_OPTIONS),
    CLI_INCLUDE("generation options", chat_args, gen, CLI_GENERATION_OPTIONS),
    CLI_END};

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

/* One turn: format the whole conversation, evaluate only what sequence 0 does not
   hold yet, generate the reply (a new text of the grammar, if there is one). */
static int chat_turn(cli_session *s, const chat_args *a, bn_chat_template tmpl, conversation *conv, bn_sampler *sampler,
                     printer *rp) {
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    int32_t *ids = NULL;
    int keep, n_ctx = bn_context_get_params(s->ctx)->n_ctx;
    bn_error err;
    bn_generate_params gp = generate_params(s, &a->gen, rp);
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
    keep = keep_common_start(s, ids, (int)n_ids - 1);
    if (a->verbose) fprintf(stderr, "[cache: reusing %d of %d prompt tokens]\n", keep, (int)n_ids);
    bn_sampler_reset_grammar(sampler);
    printer_init(rp, s->tok, 1);
    if (bn_generate(s->ctx, 0, sampler, ids + keep, (int)n_ids - keep, &gp, NULL, 0, &res, &err) != BN_OK) {
        fprintf(stderr, "bitnet chat: %s\n", err.msg);
        bn_free(ids);
        return EXIT_RUN;
    }
    fprintf(stdout, "\n");
    fflush(stdout);
    /* sequence 0 now holds the prompt and every generated token but the last */
    if (a->prompt_cache) prompt_cache_save(s, a->prompt_cache);
    if (a->verbose) print_speed(&res);
    bn_free(ids);
    return conv_add(conv, "assistant", rp->text ? rp->text : "", rp->len) ? EXIT_OK : EXIT_RUN;
}

static int chat_run(void *p, int argc, char **argv) {
    chat_args *a = (chat_args *)p;
    cli_session s;
    int rc, n_system = 0, interactive;
    bn_sampler *sampler = NULL;
    bn_chat_template tmpl;
    conversation conv;
    printer rp;
    bn_error err;
    (void)argc;
    (void)argv;
    rc = cli_session_open(&s, &a->model, 1, 1);
    if (rc) return rc;
    tmpl = a->template_id != BN_CHAT_AUTO ? (bn_chat_template)a->template_id : bn_tokenizer_chat_template(s.tok);
    if (tmpl == BN_CHAT_UNKNOWN || tmpl == BN_CHAT_AUTO) {
        cli_session_free(&s);
        return cli_usage_error(&cmd_chat, "no chat template recognized in tokenizer_config.json; use --template llama3 "
                                          "or --template bitnet");
    }
    rc = cli_generation_grammar(&a->gen, &cmd_chat, &s);
    if (rc) {
        cli_session_free(&s);
        return rc;
    }
    a->gen.sampler.seed = cli_seed(&a->gen);
    if (bn_sampler_new(&sampler, &a->gen.sampler, bn_model_config(s.model)->vocab_size, &err) != BN_OK) {
        fprintf(stderr, "bitnet chat: %s\n", err.msg);
        cli_generation_free(&a->gen);
        cli_session_free(&s);
        return EXIT_USAGE;
    }
    if (a->prompt_cache) { /* the first turn keeps what its prompt shares with it */
        int n_held = prompt_cache_read(&s, a->prompt_cache);
        if (n_held >= 0) fprintf(stderr, "prompt cache: %d tokens from %s\n", n_held, a->prompt_cache);
    }
    memset(&conv, 0, sizeof conv);
    memset(&rp, 0, sizeof rp);
    if (a->system) {
        conv_add(&conv, "system", a->system, strlen(a->system));
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
            bn_sampler_reset(sampler);
        } else if (line[0]) {
            rc = conv_add(&conv, "user", line, strlen(line)) ? chat_turn(&s, a, tmpl, &conv, sampler, &rp) : EXIT_RUN;
        }
        free(line);
        if (rc) break;
    }
    conv_clear(&conv, 0);
    free(conv.msgs);
    free(conv.texts);
    free(rp.text);
    bn_sampler_free(sampler);
    cli_generation_free(&a->gen);
    cli_session_free(&s);
    return rc;
}

const cli_command cmd_chat = {
    "chat", "interactive chat with the model's chat template", "-m DIR [options]",
    "Interactive chat: each line you type is a user message; the reply streams back. The\n"
    "conversation stays in the KV cache: each turn evaluates only the new tokens.\n"
    "Lines: /reset starts over, /exit (or the end of the input) quits.\n",
    CHAT_OPTIONS, sizeof(chat_args), chat_defaults, chat_run, 0, 0};

/* ------------------------------------------------------------ ppl */

typedef struct ppl_args {
    cli_model model;
    const char *file, *ids_file;
    int bos;
} ppl_args;

static void ppl_defaults(void *p) { cli_model_defaults(&((ppl_args *)p)->model); }

static const cli_opt PPL_OPTIONS[] = {
    CLI_STRING("-f, --file", "FILE", ppl_args, file,
               "the text (tokenized without special tokens; '-': standard input)"),
    CLI_STRING("--ids-file", "FILE", ppl_args, ids_file, "token ids instead of text (whitespace or comma separated)"),
    CLI_FLAG("--bos", ppl_args, bos, "start each window with the tokenizer's BOS token"),
    CLI_INCLUDE("model options", ppl_args, model, CLI_MODEL_OPTIONS),
    CLI_END};

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

/* The ids to score: --ids-file's, or -f's text encoded (then *byte_cache is set up for bits/byte).
   Returns the count, or -1 after a message. */
static int ppl_read_ids(const ppl_args *a, const cli_session *s, int32_t **ids, int **byte_cache) {
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    bn_error err;
    int n, i;
    if (!cli_read_input(a->ids_file ? a->ids_file : a->file, &text, &len)) return -1;
    if (a->ids_file) {
        n = cli_parse_ids(text, ids);
        free(text);
        if (n < 0) fprintf(stderr, "bitnet ppl: %s: expected token ids separated by spaces or commas\n", a->ids_file);
        return n;
    }
    if (bn_tokenizer_encode(s->tok, text, len, BN_TOK_REPLACE_INVALID, ids, &n_ids, &err) != BN_OK) {
        fprintf(stderr, "bitnet ppl: cannot tokenize %s: %s\n", a->file, err.msg);
        free(text);
        return -1;
    }
    free(text);
    *byte_cache = (int *)malloc(sizeof(int) * (size_t)bn_tokenizer_vocab_size(s->tok));
    if (*byte_cache)
        for (i = 0; i < bn_tokenizer_vocab_size(s->tok); i++) (*byte_cache)[i] = -1;
    return (int)n_ids;
}

static int ppl_run(void *p, int argc, char **argv) {
    const ppl_args *a = (const ppl_args *)p;
    cli_session s;
    int i, rc, n = 0, n_ctx, win, n_windows, k, n_vocab, *byte_cache = NULL;
    int32_t *ids = NULL, *w;
    double total = 0.0, bytes = 0.0, t0, *logprob;
    long scored = 0;
    bn_error err;
    (void)argc;
    (void)argv;
    if (!!a->file + !!a->ids_file != 1)
        return cli_usage_error(&cmd_ppl, "give exactly one of -f FILE or --ids-file FILE");
    rc = cli_session_open(&s, &a->model, 1, a->file != NULL || a->bos);
    if (rc) return rc;
    n_vocab = bn_model_config(s.model)->vocab_size;
    n = ppl_read_ids(a, &s, &ids, &byte_cache);
    if (n < 0) {
        cli_session_free(&s);
        return EXIT_RUN;
    }
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab) {
            fprintf(stderr, "bitnet ppl: token id %d (at %d) is outside the model's vocabulary of %d\n", (int)ids[i], i,
                    n_vocab);
            free(ids);
            free(byte_cache);
            cli_session_free(&s);
            return EXIT_RUN;
        }
    n_ctx = bn_context_get_params(s.ctx)->n_ctx;
    win = a->bos ? n_ctx - 1 : n_ctx; /* text tokens per window */
    n_windows = (n + win - 1) / win;
    w = (int32_t *)malloc(sizeof(int32_t) * (size_t)n_ctx);
    logprob = (double *)malloc(sizeof(double) * (size_t)n_ctx);
    t0 = bn_time_s();
    rc = w && logprob ? EXIT_OK : EXIT_RUN;
    for (k = 0; !rc && k < n_windows; k++) {
        int start = k * win, len = BN_MIN(win, n - start), wl = 0, first_scored;
        if (a->bos) w[wl++] = bn_tokenizer_bos_id(s.tok) >= 0 ? bn_tokenizer_bos_id(s.tok) : 0;
        memcpy(w + wl, ids + start, sizeof(int32_t) * (size_t)len);
        wl += len;
        if (wl < 2) break; /* nothing to predict */
        bn_seq_truncate(s.ctx, 0, 0); /* each window starts from nothing */
        if (bn_score(s.ctx, 0, w, wl, logprob, &err) != BN_OK) {
            fprintf(stderr, "bitnet ppl: %s\n", err.msg);
            rc = EXIT_RUN;
            break;
        }
        for (i = 0; i < wl - 1; i++) total -= logprob[i];
        scored += wl - 1;
        first_scored = a->bos ? 0 : 1; /* the tokens whose probability was scored */
        for (i = first_scored; byte_cache && i < len; i++) bytes += token_bytes(s.tok, ids[start + i], byte_cache);
        if (cli_stderr_is_tty())
            fprintf(stderr, "\r[%d/%d windows] ppl so far %.4f, %.1f s   ", k + 1, n_windows, exp(total / scored),
                    bn_time_s() - t0);
    }
    if (cli_stderr_is_tty()) fprintf(stderr, "\n");
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
    free(logprob);
    free(ids);
    free(byte_cache);
    cli_session_free(&s);
    return rc;
}

const cli_command cmd_ppl = {
    "ppl", "perplexity of a text file", "-m DIR (-f FILE | --ids-file FILE) [options]",
    "Perplexity over a text file: the tokens are cut into windows of the context length and each\n"
    "window is scored as HF does (model(ids, labels=ids).loss: the mean cross-entropy of each next\n"
    "token given the window so far). Prints the token count, nats/token, perplexity and bits per\n"
    "byte of the scored text.\n",
    PPL_OPTIONS, sizeof(ppl_args), ppl_defaults, ppl_run, 0, 0};

/* ------------------------------------------------------------ inspect */

typedef struct inspect_args {
    const char *dir;
    int tensors;
} inspect_args;

static const cli_opt INSPECT_OPTIONS[] = {
    CLI_STRING("-m, --model", "DIR", inspect_args, dir, "model folder, or ORG/NAME[@REV] (the HF cache)"),
    CLI_FLAG("--tensors", inspect_args, tensors, "list every tensor with its dtype, shape and bytes"),
    CLI_END};

static int inspect_run(void *p, int argc, char **argv) {
    const inspect_args *a = (const inspect_args *)p;
    const char *dir;
    bn_safetensors *st = NULL;
    bn_model *model = NULL;
    bn_error err;
    const bn_config *c;
    int i;
    size_t mapped = 0, alloc = 0, by_dtype[32];
    int count_dtype[32];
    double t0;
    (void)argc;
    (void)argv;
    if (!a->dir) return cli_usage_error(&cmd_inspect, "no model given: use -m DIR");
    if (!(dir = hub_model_path(a->dir))) return EXIT_LOAD;
    if (bn_safetensors_load(&st, dir, &err) != BN_OK) {
        fprintf(stderr, "bitnet inspect: %s\n", err.msg);
        return EXIT_LOAD;
    }
    t0 = bn_time_s();
    if (bn_model_load(&model, dir, NULL, &err) != BN_OK) {
        fprintf(stderr, "bitnet inspect: cannot load the model: %s\n", err.msg);
        bn_safetensors_free(st);
        return EXIT_LOAD;
    }
    c = bn_model_config(model);
    bn_model_memory(model, &mapped, &alloc);
    printf("model: %s\n", dir);
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
        const bn_safetensors_tensor *t = &st->tensors[i];
        int d = (int)t->dtype & 31;
        by_dtype[d] += t->nbytes;
        count_dtype[d]++;
        if (a->tensors) {
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
    bn_safetensors_free(st);
    return EXIT_OK;
}

const cli_command cmd_inspect = {
    "inspect", "config, tensors, dtypes, bytes and weight variant of a model folder", "-m DIR [--tensors]",
    "Prints the configuration, the weight variant detected, tensor counts and bytes by dtype, and\n"
    "the memory the loaded model takes.\n",
    INSPECT_OPTIONS, sizeof(inspect_args), NULL, inspect_run, 0, 0};

/* ------------------------------------------------------------ tokenize */

static int load_tokenizer(const char *dir, bn_tokenizer **tok) {
    bn_error err;
    if (!(dir = hub_model_path(dir))) return 0; /* a folder, or ORG/NAME[@REV] from the HF cache */
    if (bn_tokenizer_load(tok, dir, &err) != BN_OK) {
        fprintf(stderr, "bitnet: cannot load the tokenizer: %s\n", err.msg);
        return 0;
    }
    return 1;
}

typedef struct tokenize_args {
    const char *dir, *file;
    int special, add_special, replace_invalid, timing;
} tokenize_args;

static const cli_opt TOKENIZE_OPTIONS[] = {
    CLI_STRING("-m, --model", "DIR", tokenize_args, dir, "folder with tokenizer.json (and tokenizer_config.json), or ORG/NAME[@REV]"),
    CLI_STRING("-f, --file", "FILE", tokenize_args, file,
               "tokenize the file's bytes instead of TEXT ('-': standard input)"),
    CLI_FLAG("--special", tokenize_args, special,
             "special tokens written in the text (e.g. <|eot_id|>) become their ids"),
    CLI_FLAG("--add-special", tokenize_args, add_special,
             "let the tokenizer add its BOS etc. (HF add_special_tokens=True)"),
    CLI_FLAG("--replace-invalid", tokenize_args, replace_invalid, "invalid UTF-8 becomes U+FFFD instead of an error"),
    CLI_FLAG("--timing", tokenize_args, timing, "print load time, memory and encode speed on stderr"),
    CLI_END};

static int tokenize_run(void *p, int argc, char **argv) {
    const tokenize_args *a = (const tokenize_args *)p;
    const char *text = argc ? argv[0] : NULL;
    unsigned flags = (a->special ? BN_TOK_PARSE_SPECIAL : 0u) | (a->add_special ? BN_TOK_ADD_SPECIAL : 0u) |
                     (a->replace_invalid ? BN_TOK_REPLACE_INVALID : 0u);
    bn_tokenizer *tok = NULL;
    char *data = NULL;
    size_t len = 0, n = 0, i;
    int32_t *ids = NULL;
    bn_error err;
    double t0, t1, t2;
    if (!a->dir) return cli_usage_error(&cmd_tokenize, "no tokenizer given: use -m DIR");
    if (!text == !a->file) return cli_usage_error(&cmd_tokenize, "give either TEXT or -f FILE");
    if (a->file && !cli_read_input(a->file, &data, &len)) return EXIT_RUN;
    if (!a->file) len = strlen(text);
    t0 = bn_time_s();
    if (!load_tokenizer(a->dir, &tok)) {
        free(data);
        return EXIT_LOAD;
    }
    t1 = bn_time_s();
    if (bn_tokenizer_encode(tok, a->file ? data : text, len, flags, &ids, &n, &err) != BN_OK) {
        fprintf(stderr, "bitnet tokenize: %s\n", err.msg);
        bn_tokenizer_free(tok);
        free(data);
        return EXIT_RUN;
    }
    t2 = bn_time_s();
    if (a->timing)
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

const cli_command cmd_tokenize = {
    "tokenize", "token ids of a text, as a JSON list", "-m DIR [options] (TEXT | -f FILE)",
    "Prints the token ids of the text as a JSON list on one line.\n",
    TOKENIZE_OPTIONS, sizeof(tokenize_args), NULL, tokenize_run, 0, 1};

/* ------------------------------------------------------------ detokenize */

typedef struct detokenize_args {
    const char *dir;
    int skip_special;
} detokenize_args;

static const cli_opt DETOKENIZE_OPTIONS[] = {
    CLI_STRING("-m, --model", "DIR", detokenize_args, dir, "folder with tokenizer.json, or ORG/NAME[@REV]"),
    CLI_FLAG("--skip-special", detokenize_args, skip_special, "leave special tokens out"),
    CLI_END};

static int detokenize_run(void *p, int argc, char **argv) {
    const detokenize_args *a = (const detokenize_args *)p;
    bn_tokenizer *tok = NULL;
    int32_t *ids = NULL, *more;
    size_t n = 0, len = 0;
    char *text = NULL;
    bn_error err;
    int i, k, rc = EXIT_OK;
    if (!a->dir) return cli_usage_error(&cmd_detokenize, "no tokenizer given: use -m DIR");
    for (i = 0; i < argc; i++) { /* each operand holds one id or a list */
        int got = cli_parse_ids(argv[i], &more);
        int32_t *grown = got > 0 ? (int32_t *)realloc(ids, sizeof(int32_t) * (n + (size_t)got)) : ids;
        if (got < 0 || !grown) {
            free(more);
            free(ids);
            return got < 0 ? cli_usage_error(&cmd_detokenize, "not a token id: '%s'", argv[i]) : EXIT_RUN;
        }
        ids = grown;
        for (k = 0; k < got; k++) ids[n++] = more[k];
        free(more);
    }
    if (!load_tokenizer(a->dir, &tok)) {
        free(ids);
        return EXIT_LOAD;
    }
    if (bn_tokenizer_decode(tok, ids, n, a->skip_special ? BN_TOK_SKIP_SPECIAL : 0u, &text, &len, &err) != BN_OK) {
        fprintf(stderr, "bitnet detokenize: %s\n", err.msg);
        rc = EXIT_RUN;
    } else {
        fwrite(text, 1, len, stdout);
    }
    bn_free(text);
    bn_tokenizer_free(tok);
    free(ids);
    return rc;
}

const cli_command cmd_detokenize = {
    "detokenize", "the text of token ids", "-m DIR [--skip-special] ID...",
    "Prints the text of the token ids, exactly (no newline added). The IDs may also be given as one\n"
    "JSON list, e.g. the output of bitnet tokenize: '[9906, 11]'.\n",
    DETOKENIZE_OPTIONS, sizeof(detokenize_args), NULL, detokenize_run, 0, -1};

/* ------------------------------------------------------------ main */

/* Every command, in the order `bitnet help` lists them. */
static const cli_command *const COMMANDS[] = {&cmd_run,     &cmd_chat,        &cmd_ppl,      &cmd_inspect,
                                              &cmd_bench,   &cmd_bench_batch, &cmd_tokenize, &cmd_detokenize,
                                              &cmd_serve,   &cmd_bench_serve, &cmd_pull,     &cmd_ls,
                                              &cmd_rm,      &cmd_convert};
#define N_COMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])

static const cli_command *find_command(const char *name) {
    int i;
    for (i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, COMMANDS[i]->name)) return COMMANDS[i];
    return NULL;
}

static int usage(int status) {
    FILE *f = status ? stderr : stdout;
    int i;
    fprintf(f, "bitnet %s: BitNet b1.58 models on the CPU\nusage: bitnet <command> [options]   "
               "(bitnet <command> --help for its options)\n\ncommands:\n", BITNET_VERSION);
    for (i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-12s %s\n", COMMANDS[i]->name, COMMANDS[i]->summary);
    fprintf(f, "  %-12s %s\n", "help", "this list; help COMMAND: its options; help --markdown: docs/cli.md");
    fprintf(f, "\n%s", CLI_EXIT_STATUS);
    return status;
}

/* bitnet help [COMMAND | --markdown] */
static int help(int argc, char **argv) {
    const cli_command *cmd;
    if (argc < 2) return usage(EXIT_OK);
    if (!strcmp(argv[1], "--markdown")) {
        cli_print_markdown(COMMANDS, N_COMMANDS, stdout);
        return EXIT_OK;
    }
    if ((cmd = find_command(argv[1])) != NULL) {
        cli_print_help(cmd, stdout);
        return EXIT_OK;
    }
    fprintf(stderr, "bitnet help: unknown command '%s'\n", argv[1]);
    return usage(EXIT_USAGE);
}

int main(int argc, char **argv) {
    const cli_command *cmd;
    if (argc < 2) return usage(EXIT_USAGE);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) return usage(EXIT_OK);
    if (!strcmp(argv[1], "help")) return help(argc - 1, argv + 1);
    if (!strcmp(argv[1], "--version")) {
        printf("bitnet %s\n", BITNET_VERSION);
        return EXIT_OK;
    }
    if ((cmd = find_command(argv[1])) != NULL) return cli_main(cmd, argc - 1, argv + 1);
    fprintf(stderr, "bitnet: unknown command '%s'\n", argv[1]);
    return usage(EXIT_USAGE);
}
