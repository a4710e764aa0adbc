/* cli.h: what the translation units of the `bitnet` command share.

   The command is built from every .c file in tools/. tools/bitnet.c holds BITNET_IMPLEMENTATION,
   main() and the COMMANDS table; each further command lives in a tools/<topic>.c of its own,
   includes this file (which includes ../bitnet.h without BITNET_IMPLEMENTATION), and defines one
   `const cli_command cmd_<name>`, declared at the end of this file and listed in COMMANDS.

   A command is an argument struct, a function that fills it with defaults, an option table over
   its fields and the function that runs it. main() parses argv against the table: --help, the
   usage errors (exit 2 and a message naming the option) and docs/cli.md (`bitnet help
   --markdown`) all come from the table, so a command never reads argv itself.

       typedef struct hello_args {
           cli_model model;        // -m, --tokenizer, -c, -t, --layout, --head, --kv
           cli_generation gen;     // -n, --temp, --top-k, ..., --seed, --stop, --ignore-eos
           const char *name;
           int times, shout;
       } hello_args;

       static void hello_defaults(void *p) {
           hello_args *a = (hello_args *)p;
           cli_model_defaults(&a->model);
           cli_generation_defaults(&a->gen);
           a->name = "world";
           a->times = 1;
       }

       static const cli_opt HELLO_OPTIONS[] = {
           CLI_STRING("--name", "TEXT", hello_args, name, "whom to greet"),
           CLI_INT("-k, --times", "N", hello_args, times, 1, 100, "how many greetings"),
           CLI_FLAG("--shout", hello_args, shout, "in capitals"),
           CLI_INCLUDE("model options", hello_args, model, CLI_MODEL_OPTIONS),
           CLI_INCLUDE("generation options", hello_args, gen, CLI_GENERATION_OPTIONS),
           CLI_END};

       static int hello_run(void *p, int argc, char **argv) {   // argc/argv: the operands
           hello_args *a = (hello_args *)p;
           ...
           return EXIT_OK;
       }

       const cli_command cmd_hello = {
           "hello", "greets someone",                    // name, one line for `bitnet help`
           "[options] [WORDS...]",                       // usage after "bitnet hello"
           "Greets NAME TIMES times.\n",                 // what --help says before the options
           HELLO_OPTIONS, sizeof(hello_args), hello_defaults, hello_run, 0, -1};  // operands: 0..any

   Then: `extern const cli_command cmd_hello` below, &cmd_hello in COMMANDS (tools/bitnet.c), and
   `build/bitnet help --markdown > docs/cli.md` (tests/test_cli_options.sh checks that it is
   current and that every option of every table appears in its command's --help).

   Option types: CLI_FLAG (sets an int to 1; CLI_FLAG_SET to another value), CLI_INT and
   CLI_FLOAT with an inclusive range (CLI_FLOAT_ABOVE: exclusive minimum), CLI_STRING, CLI_ENUM
   (one of a cli_choice list of names, stored as an int), CLI_LIST (repeatable string, into a
   cli_list), CLI_INCLUDE (a shared block over a struct member, listed under its heading; the
   Markdown reference prints each heading's block once and links to it).
   Spellings are "-x, --long"; "--long=VALUE" works too; "--" ends the options. --help shows the
   field's value after defaults() as "(default ...)" unless the help text speaks of its default
   itself. A usage error found after parsing (two options that exclude each other, a missing -m)
   goes through cli_usage_error() so that it reads like the table's. A new shared option goes in
   its block in cli.c, and every command that includes the block gets it. */
#ifndef BITNET_CLI_H
#define BITNET_CLI_H

#include "../bitnet.h"

#include <float.h>
#include <limits.h> /* INT_MAX, FLT_MAX for the tables */
#include <stddef.h>
#include <stdio.h>

/* Exit status (scripts can rely on it). */
#define EXIT_OK 0
#define EXIT_RUN 1   /* failure while running (I/O, out of memory, context full, bad input data) */
#define EXIT_USAGE 2 /* unknown option, missing or malformed argument */
#define EXIT_LOAD 3  /* the model or tokenizer could not be loaded */
extern const char CLI_EXIT_STATUS[]; /* the line --help ends with */

/* ------------------------------------------------------------------ option tables */

typedef enum cli_type {
    CLI_T_END = 0,
    CLI_T_FLAG,
    CLI_T_INT,
    CLI_T_FLOAT,
    CLI_T_STRING,
    CLI_T_ENUM,
    CLI_T_LIST,
    CLI_T_INCLUDE
} cli_type;

#define CLI_MIN_EXCLUSIVE 1u /* CLI_T_FLOAT: the value must be greater than min */

typedef struct cli_choice {
    const char *name;
    int value;
} cli_choice;

/* A repeatable string option's values (pointers into argv). */
#define CLI_LIST_MAX 16
typedef struct cli_list {
    const char *items[CLI_LIST_MAX];
    int n;
} cli_list;

typedef struct cli_opt {
    cli_type type;
    const char *names; /* "-m, --model"; for CLI_T_INCLUDE the block's heading */
    const char *arg;   /* the value's name in --help ("DIR"); NULL for flags and enums */
    const char *help;
    size_t offset, size; /* the field in the argument struct */
    double min, max;     /* CLI_T_INT, CLI_T_FLOAT: accepted range; CLI_T_FLAG: the value set */
    unsigned flags;
    const cli_choice *choices;     /* CLI_T_ENUM: ends with {NULL, 0} */
    const struct cli_opt *include; /* CLI_T_INCLUDE: the block, its offsets relative to `offset` */
} cli_opt;

/* clang-format off */
#define CLI_FIELD_(T, f) offsetof(T, f), sizeof(((T *)0)->f)
#define CLI_FLAG(names, T, f, help) {CLI_T_FLAG, names, NULL, help, CLI_FIELD_(T, f), 1, 1, 0, NULL, NULL}
#define CLI_FLAG_SET(names, T, f, value, help) \
    {CLI_T_FLAG, names, NULL, help, CLI_FIELD_(T, f), value, value, 0, NULL, NULL}
#define CLI_INT(names, arg, T, f, lo, hi, help) {CLI_T_INT, names, arg, help, CLI_FIELD_(T, f), lo, hi, 0, NULL, NULL}
#define CLI_FLOAT(names, arg, T, f, lo, hi, help) \
    {CLI_T_FLOAT, names, arg, help, CLI_FIELD_(T, f), lo, hi, 0, NULL, NULL}
#define CLI_FLOAT_ABOVE(names, arg, T, f, lo, hi, help) \
    {CLI_T_FLOAT, names, arg, help, CLI_FIELD_(T, f), lo, hi, CLI_MIN_EXCLUSIVE, NULL, NULL}
#define CLI_STRING(names, arg, T, f, help) {CLI_T_STRING, names, arg, help, CLI_FIELD_(T, f), 0, 0, 0, NULL, NULL}
#define CLI_ENUM(names, T, f, choices, help) \
    {CLI_T_ENUM, names, NULL, help, CLI_FIELD_(T, f), 0, 0, 0, choices, NULL}
#define CLI_LIST(names, arg, T, f, help) {CLI_T_LIST, names, arg, help, CLI_FIELD_(T, f), 0, 0, 0, NULL, NULL}
#define CLI_INCLUDE(heading, T, f, block) \
    {CLI_T_INCLUDE, heading, NULL, NULL, CLI_FIELD_(T, f), 0, 0, 0, NULL, block}
#define CLI_ALSO(block) {CLI_T_INCLUDE, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL, block} /* same struct, no heading */
#define CLI_END {CLI_T_END, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL, NULL}
/* clang-format on */

typedef struct cli_command {
    const char *name;    /* bitnet NAME */
    const char *summary; /* one line in `bitnet help` */
    const char *usage;   /* what follows "usage: bitnet NAME " */
    const char *about;   /* what --help prints before the options (lines end with \n) */
    const cli_opt *options;
    size_t args_size;
    void (*defaults)(void *args);                  /* args is zeroed first */
    int (*run)(void *args, int argc, char **argv); /* argv: the operands; returns an exit status */
    int min_operands, max_operands;                /* max -1: any number */
} cli_command;

/* Parses argv[1..argc) (argv[0] is the command's name) into args, which defaults() has filled.
   Options and operands may mix; the operands are moved to argv[0..*n_operands). Returns
   CLI_PROCEED to run the command, EXIT_OK after --help, or EXIT_USAGE after a message. */
#define CLI_PROCEED (-1)
int cli_parse(const cli_command *cmd, void *args, int argc, char **argv, int *n_operands);
/* Runs a command: defaults, parse, run. */
int cli_main(const cli_command *cmd, int argc, char **argv);
/* A usage error found after parsing: prints "bitnet NAME: MESSAGE (see bitnet NAME --help)". */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* --help text of a command; its option reference in Markdown (shared blocks as links). */
void cli_print_help(const cli_command *cmd, FILE *out);
void cli_print_markdown(const cli_command *const *cmds, int n, FILE *out);
/* 1 when every option of the command's table has a field of its type's size, a spelling that
   starts with '-' and no spelling used twice; else prints the problem and returns 0. */
int cli_check(const cli_command *cmd);

/* ------------------------------------------------------------------ shared option blocks */

/* The model and how it runs: CLI_MODEL_OPTIONS (-m, --tokenizer, -c and CLI_ENGINE_OPTIONS), or
   CLI_ENGINE_OPTIONS alone (-t, --layout, --head, --kv) for a command with its own -m. */
typedef struct cli_model {
    const char *dir, *tokenizer_dir;
    int n_ctx, n_threads; /* 0: the model's max_position_embeddings / one per core */
    int layout, head, kv; /* bn_tlayout, bn_ftype (-1: as stored), bn_ftype */
    int metal;            /* --metal: the forward pass on the GPU (bitnet_metal.m) */
    int kernel;           /* --kernel: a bn_kernel, BN_KERNEL_AUTO by default */
} cli_model;
extern const cli_opt CLI_MODEL_OPTIONS[], CLI_ENGINE_OPTIONS[];
void cli_model_defaults(cli_model *m);
bn_model_params cli_model_params(const cli_model *m);
/* -m and --tokenizer may name ORG/NAME[@REV]: each becomes the folder of its snapshot in the HF
   cache, pulled first when missing (hub_model_path, tools/hub.c: the one place where a -m
   argument is resolved). 0 after printing why it cannot be had. */
int cli_resolve_model(cli_model *m);
bn_context_params cli_context_params(const cli_model *m);
/* --metal: puts the process's Metal backend (made on first use, freed at exit) into cp->backend.
   Returns 0, having printed why, when it cannot: no GPU, or a build without BITNET_METAL (the
   Makefile defines it on macOS and links bitnet_metal.m); also when cp->kernel (--kernel) cannot
   run on this CPU. */
int cli_backend(const cli_model *m, bn_context_params *cp);

/* Sampling and when to stop: what run, chat and serve share. */
typedef struct cli_generation {
    bn_sampler_params sampler;
    int n_predict; /* -1: until an end token or the context is full */
    int seed;      /* -1: from the clock */
    cli_list stops;
    int ignore_eos, special;
    const char *grammar_file, *json_schema_file; /* --grammar, --json-schema */
    int json;                                     /* --json */
    char *grammar_text;                           /* the file, read by cli_generation_grammar */
    bn_grammar_vocab *grammar_vocab;
} cli_generation;
extern const cli_opt CLI_GENERATION_OPTIONS[];
void cli_generation_defaults(cli_generation *g);

/* The sampler's seed: --seed, or one from the clock, printed on stderr so a run can be repeated. */
uint64_t cli_seed(const cli_generation *g);

/* ------------------------------------------------------------------ helpers */

/* A model with its tokenizer and a context, as run, chat and ppl use it. */
typedef struct cli_session {
    bn_model *model;
    bn_tokenizer *tok; /* NULL when the folder has none (then only ids work) */
    bn_context *ctx;
    double load_s;
} cli_session;
/* Loads m->dir (and its tokenizer when present, or required) and creates a context of n_seq
   sequences; prints the load summary on stderr. Returns an exit status. */
int cli_session_open(cli_session *s, const cli_model *m, int n_seq, int need_tokenizer);
void cli_session_free(cli_session *s);
/* The end tokens generation stops at by default: the model's (config.json + generation_config.json)
   and the tokenizer's eos_token, as bn_generate and the batcher take them. Returns how many. */
#define CLI_MAX_EOS (BN_MAX_EOS + 1)
int cli_end_tokens(const cli_session *s, int32_t eos[CLI_MAX_EOS]);
/* --grammar / --json-schema / --json: reads the file and builds the tokens' trie (s's tokenizer,
   its end tokens allowed where the grammar may end) into g->sampler. Returns an exit status (a
   usage error names cmd). */
int cli_generation_grammar(cli_generation *g, const cli_command *cmd, const cli_session *s);
void cli_generation_free(cli_generation *g);

int cli_stderr_is_tty(void);
int cli_file_exists(const char *dir, const char *name);
/* A whole file, or standard input for "-"; prints the error and returns 0 on failure. */
int cli_read_input(const char *path, char **data, size_t *len);
/* "1,2,3", "1 2 3" or "[1, 2, 3]" -> a malloc'd array; the count, or -1 on a malformed list. */
int cli_parse_ids(const char *s, int32_t **out);
const char *cli_ftype_name(int ftype);

/* ------------------------------------------------------------------ the commands */

extern const cli_command cmd_run, cmd_chat, cmd_ppl, cmd_inspect, cmd_tokenize, cmd_detokenize, cmd_bench,
    cmd_bench_batch, cmd_serve, cmd_bench_serve;
extern const cli_command cmd_pull, cmd_ls, cmd_rm; /* tools/hub.c */
extern const cli_command cmd_convert;              /* tools/convert.c */

#endif
