/* bitnet: the command-line front end of bitnet.h.

       bitnet tokenize   -m DIR [--special] [--add-special] TEXT | -f FILE   token ids as a JSON list
       bitnet detokenize -m DIR [--skip-special] ID...                         the text of token ids

   Each command is a function in the COMMANDS table at the end; more commands
   (run, chat, ppl, inspect) are added there.

   Exit status (scripts can rely on it):
       0  success
       1  failure while running (I/O, out of memory, bad input data)
       2  usage error (unknown option, missing or malformed argument)
       3  the model or tokenizer could not be loaded

   Build: make (or cc -O2 tools/bitnet.c -o bitnet -lm -lpthread). */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_OK 0
#define EXIT_RUN 1
#define EXIT_USAGE 2
#define EXIT_LOAD 3

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

/* ------------------------------------------------------------ main */

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *what;
} command;

static const command COMMANDS[] = {
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
