#ifndef BN_PART_GRAMMAR_H
#define BN_PART_GRAMMAR_H
#include "base.h"
#include "json.h"
#include "tokenizer.h"
/* Grammars: text a program can parse. A context-free grammar in llama.cpp's
   GBNF notation (or a JSON Schema, turned into one) is compiled once; a
   matcher then follows the text as it is generated, byte by byte, and says
   which tokens may come next. The sampler (bn_sampler_params.grammar /
   .json_schema) uses it to draw only tokens that keep the text inside the
   grammar, and an end token only where the grammar may end. docs/grammars.md
   has the notation, the JSON Schema subset and the costs.

       root   ::= answer " " ("yes" | "no")
       answer ::= [A-Z] [a-z]{1,9}        # a rule: names, literals, classes,
       num    ::= "-"? [0-9]+ ("." [0-9]+)?   # groups, * + ? {m} {m,} {m,n}

   Literals and classes are Unicode: "é", [α-ω], [^"\\], \xHH \uHHHH
   \UHHHHHHHH, \n \r \t; `.` is any character. A rule's alternatives may span
   lines after a `|` or inside parentheses. Errors give the line and column.
   A step that would follow more than 65,536 grammar positions at once (a
   grammar ambiguous beyond use, e.g. (("x"?){200}){200}) is refused like a
   byte the grammar does not allow.

   Matching is on bytes: a character class is matched one UTF-8 byte at a
   time, so a token may end in the middle of a character. The state is a set
   of pushdown stacks; sets are interned and their transitions on each byte
   cached, so the automaton is built lazily as generation explores it, and a
   step's mask over the vocabulary is one walk of the token trie that drops a
   whole subtree at the first byte no stack accepts. */

typedef struct bn_grammar bn_grammar;             /* compiled: read-only, shareable */
typedef struct bn_grammar_vocab bn_grammar_vocab; /* the tokens' bytes as a trie: read-only, shareable */
typedef struct bn_grammar_matcher bn_grammar_matcher; /* where a text is in a grammar: one per sequence */

BN_EXTERN_C_BEGIN
/* Compile GBNF text[0..len). root: the start rule (NULL: "root"). Bad
   grammars give BN_ERR_FORMAT naming the line and column: unbalanced
   groups, undefined rules, empty classes, left recursion (a rule that can
   reach itself without consuming a character: the matcher works top-down)
   and rules that can never finish. */
BN_API bn_status bn_grammar_parse(bn_grammar **out, const char *text, size_t len, const char *root, bn_error *err);
BN_API void bn_grammar_free(bn_grammar *g);

/* JSON Schema text[0..len) -> GBNF (NUL-terminated, BN_MALLOC'd: free with
   bn_free). The subset: type (also a list), properties, required,
   additionalProperties, items, minItems/maxItems, enum, const, anyOf/oneOf
   (oneOf as anyOf), allOf of one schema, $ref to #/$defs or #/definitions,
   minLength/maxLength, pattern (a simple regular expression), format date /
   time / date-time / uuid; annotations (title, description, ...) are ignored.
   Any other keyword gives BN_ERR_UNSUPPORTED naming it and where it is. Generated
   objects hold their properties in the schema's order, only the listed ones. */
BN_API bn_status bn_json_schema_to_gbnf(const char *schema, size_t len, char **gbnf, size_t *gbnf_len, bn_error *err);
/* The same from a parsed schema (e.g. a member of a request body; $ref "#..." points into it).
   struct bn_json is bn_json, of the JSON section below. */
struct bn_json;
BN_API bn_status bn_json_schema_node_to_gbnf(const struct bn_json *schema, char **gbnf, size_t *gbnf_len, bn_error *err);

/* The tokens of a tokenizer as bytes (bn_tokenizer_token_bytes), in a trie.
   Special tokens are never allowed, except the end tokens eos[0..n_eos)
   (NULL: the tokenizer's eos token), allowed where the grammar may end.
   Build one per tokenizer and share it (read-only): the 128256 tokens of
   LLaMA 3 take about 0.1 s and 7 MB. */
BN_API bn_status bn_grammar_vocab_new(bn_grammar_vocab **out, const bn_tokenizer *tok, const int32_t *eos, int n_eos,
                                      bn_error *err);
BN_API void bn_grammar_vocab_free(bn_grammar_vocab *v);

BN_API bn_status bn_grammar_matcher_new(bn_grammar_matcher **out, const bn_grammar *g, bn_error *err);
BN_API void bn_grammar_matcher_free(bn_grammar_matcher *m);
/* Back to the start of the grammar (the automaton built so far is kept). */
BN_API void bn_grammar_matcher_reset(bn_grammar_matcher *m);
/* Feed bytes: 1 if the text is still the start of some text of the grammar,
   0 if not (the matcher is then left as it was). */
BN_API int bn_grammar_matcher_accept_bytes(bn_grammar_matcher *m, const char *bytes, size_t n);
/* 1 if the text so far is a complete text of the grammar. */
BN_API int bn_grammar_matcher_can_end(const bn_grammar_matcher *m);
/* 1 if the grammar can go on (more text is allowed). */
BN_API int bn_grammar_matcher_can_continue(const bn_grammar_matcher *m);
/* Token level: whether token may come next (an end token: where the grammar
   may end), and feeding it (0 and nothing changes if it may not). */
BN_API int bn_grammar_matcher_allows(bn_grammar_matcher *m, const bn_grammar_vocab *v, int32_t token);
BN_API int bn_grammar_matcher_accept_token(bn_grammar_matcher *m, const bn_grammar_vocab *v, int32_t token);
/* Every token that may come next: bit t of mask (n_vocab bits, 32 a word) is
   set for each; returns how many. Ids the vocab does not know stay 0. */
BN_API int bn_grammar_matcher_mask(bn_grammar_matcher *m, const bn_grammar_vocab *v, uint32_t *mask, int n_vocab);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

/* ==== compiled form =========================================================

   Every rule is a list of alternatives; an alternative is a sequence of
   elements ending with BN__G_END. An element is a character class or a
   reference to a rule. Groups and repetitions become rules of their own:
   x* is r ::= x r | "", x{2,4} is x x o2 with o2 ::= x o1 | "" and
   o1 ::= x | "". Literals are sequences of one-character classes. */

enum { BN__G_END = 0, BN__G_CHAR, BN__G_REF };

typedef struct bn__gel {
    int32_t kind, arg; /* arg: class index (CHAR) or rule index (REF) */
} bn__gel;

/* A set of code points: the ASCII ones as a bitmap, the others as sorted,
   disjoint [lo, hi] ranges (never surrogates: UTF-8 cannot encode them). */
typedef struct bn__gclass {
    uint32_t ascii[4];
    int32_t first, n; /* into bn_grammar.ranges, pairs */
} bn__gclass;

struct bn_grammar {
    bn__gel *el;
    int32_t n_el;
    int32_t *alt;       /* element index of each alternative's first element */
    int32_t *rule_alt;  /* rule r's alternatives: alt[rule_alt[r] .. rule_alt[r + 1]) */
    int32_t n_rules, root;
    bn__gclass *cls;
    int32_t n_cls;
    uint32_t *ranges;   /* lo, hi pairs */
    int32_t n_ranges;
};

BN_API void bn_grammar_free(bn_grammar *g) {
    if (!g) return;
    BN_FREE(g->el);
    BN_FREE(g->alt);
    BN_FREE(g->rule_alt);
    BN_FREE(g->cls);
    BN_FREE(g->ranges);
    BN_FREE(g);
}

/* ==== the GBNF parser ======================================================= */

#define BN__G_MAX_DEPTH 64          /* nested groups */
#define BN__G_MAX_REPEAT 10000      /* bounds of {m,n} */
#define BN__G_MAX_ELEMENTS (1 << 22) /* the compiled grammar */

typedef struct bn__grule {
    const char *name; /* into the source; NULL for a group or a repetition */
    size_t name_len;
    size_t at;        /* byte offset of the definition (or the group / operator) */
    size_t ref_at;    /* first reference, for "undefined rule" */
    int defined;
    bn__gel *el;      /* alternatives, each ended by BN__G_END */
    int32_t n_el, cap_el;
} bn__grule;

typedef struct bn__gvec {
    bn__gel *p;
    int32_t n, cap;
} bn__gvec;

typedef struct bn__gparser {
    const char *src;
    size_t len, pos;
    bn__grule *rules;
    int32_t n_rules, cap_rules;
    int32_t *name_hash; /* user rules by name: open addressing over rule ids, -1 empty */
    uint32_t name_mask;
    bn__gclass *cls;
    int32_t n_cls, cap_cls;
    uint32_t *ranges;
    int32_t n_ranges, cap_ranges;
    int32_t *cls_hash;
    uint32_t cls_mask;
    int64_t n_el_total;
    int depth;
    bn_error *err;
    bn_status st;
} bn__gparser;

/* 1-based line and column (in characters) of byte offset at in src. */
static void bn__g_linecol(const char *src, size_t at, int *line, int *col) {
    size_t i;
    int l = 1, c = 1;
    for (i = 0; i < at; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* Record the first error, at byte offset at: "grammar: line L, column C: msg". */
static int bn__g_fail_at(bn__gparser *p, size_t at, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int bn__g_fail_at(bn__gparser *p, size_t at, const char *fmt, ...) {
    if (p->st == BN_OK) {
        char msg[300];
        int line, col;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        bn__g_linecol(p->src, at, &line, &col);
        p->st = bn_errorf(p->err, BN_ERR_FORMAT, "grammar: line %d, column %d: %s", line, col, msg);
    }
    return 0;
}

static int bn__g_nomem(bn__gparser *p) {
    if (p->st == BN_OK) p->st = bn_errorf(p->err, BN_ERR_NOMEM, "grammar: out of memory");
    return 0;
}

static int bn__gvec_push(bn__gparser *p, bn__gvec *v, int32_t kind, int32_t arg) {
    if (++p->n_el_total > BN__G_MAX_ELEMENTS)
        return bn__g_fail_at(p, p->pos, "the grammar is too large (more than %d elements once repetitions are expanded)",
                             BN__G_MAX_ELEMENTS);
    if (v->n == v->cap) {
        int32_t cap = v->cap ? v->cap * 2 : 16;
        bn__gel *np = (bn__gel *)BN_REALLOC(v->p, sizeof(bn__gel) * (size_t)cap);
        if (!np) return bn__g_nomem(p);
        v->p = np;
        v->cap = cap;
    }
    v->p[v->n].kind = kind;
    v->p[v->n].arg = arg;
    v->n++;
    return 1;
}

/* Append an alternative (elements + END) to rule r. */
static int bn__g_add_alt(bn__gparser *p, int32_t r, const bn__gel *el, int32_t n) {
    bn__grule *R = &p->rules[r];
    int32_t need = R->n_el + n + 1;
    if (need > R->cap_el) {
        int32_t cap = R->cap_el ? R->cap_el : 8;
        bn__gel *np;
        while (cap < need) cap *= 2;
        np = (bn__gel *)BN_REALLOC(R->el, sizeof(bn__gel) * (size_t)cap);
        if (!np) return bn__g_nomem(p);
        R->el = np;
        R->cap_el = cap;
    }
    if (n) memcpy(R->el + R->n_el, el, sizeof(bn__gel) * (size_t)n);
    R->el[R->n_el + n].kind = BN__G_END;
    R->el[R->n_el + n].arg = 0;
    R->n_el = need;
    return 1;
}

/* A new rule (no alternatives yet); -1 when out of memory. */
static int32_t bn__g_new_rule(bn__gparser *p, const char *name, size_t name_len, size_t at) {
    bn__grule *R;
    if (p->n_rules == p->cap_rules) {
        int32_t cap = p->cap_rules ? p->cap_rules * 2 : 32;
        bn__grule *np = (bn__grule *)BN_REALLOC(p->rules, sizeof(bn__grule) * (size_t)cap);
        if (!np) return bn__g_nomem(p) - 1;
        p->rules = np;
        p->cap_rules = cap;
    }
    R = &p->rules[p->n_rules];
    memset(R, 0, sizeof *R);
    R->name = name;
    R->name_len = name_len;
    R->at = at;
    R->ref_at = at;
    return p->n_rules++;
}

static uint32_t bn__g_hash(const void *data, size_t n) {
    const unsigned char *s = (const unsigned char *)data;
    uint32_t h = 2166136261u; /* FNV-1a */
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
    return h;
}

/* Grow an open-addressing table of ids (-1 = empty) to hold count + 1 at
   most half full, rehashing with key(i). */
static int bn__g_table_grow(int32_t **table, uint32_t *mask, int32_t count, uint32_t (*key)(const void *, int32_t),
                            const void *ctx) {
    uint32_t cap = *mask ? *mask + 1 : 0, ncap = cap ? cap : 64, i;
    int32_t *nt;
    if ((uint32_t)(count + 1) * 2 <= cap) return 1;
    while ((uint32_t)(count + 1) * 2 > ncap) ncap *= 2;
    nt = (int32_t *)BN_MALLOC(sizeof(int32_t) * ncap);
    if (!nt) return 0;
    for (i = 0; i < ncap; i++) nt[i] = -1;
    for (i = 0; i < cap; i++) {
        int32_t id = (*table)[i];
        uint32_t h;
        if (id < 0) continue;
        for (h = key(ctx, id) & (ncap - 1); nt[h] >= 0; h = (h + 1) & (ncap - 1)) {
        }
        nt[h] = id;
    }
    BN_FREE(*table);
    *table = nt;
    *mask = ncap - 1;
    return 1;
}

static uint32_t bn__g_rule_key(const void *ctx, int32_t id) {
    const bn__grule *R = &((const bn__gparser *)ctx)->rules[id];
    return bn__g_hash(R->name, R->name_len);
}

/* The user rule called name (created on first mention). */
static int32_t bn__g_rule_id(bn__gparser *p, const char *name, size_t n, size_t at) {
    uint32_t h;
    int32_t r;
    if (!bn__g_table_grow(&p->name_hash, &p->name_mask, p->n_rules, bn__g_rule_key, p)) return bn__g_nomem(p) - 1;
    for (h = bn__g_hash(name, n) & p->name_mask; p->name_hash[h] >= 0; h = (h + 1) & p->name_mask) {
        const bn__grule *R = &p->rules[p->name_hash[h]];
        if (R->name_len == n && memcmp(R->name, name, n) == 0) return p->name_hash[h];
    }
    r = bn__g_new_rule(p, name, n, at);
    if (r >= 0) p->name_hash[h] = r;
    return r;
}

/* ---- character classes ---- */

typedef struct bn__granges {
    uint32_t *p; /* lo, hi pairs */
    int32_t n, cap;
} bn__granges;

static int bn__granges_add(bn__gparser *p, bn__granges *r, uint32_t lo, uint32_t hi) {
    if (r->n == r->cap) {
        int32_t cap = r->cap ? r->cap * 2 : 8;
        uint32_t *np = (uint32_t *)BN_REALLOC(r->p, sizeof(uint32_t) * 2 * (size_t)cap);
        if (!np) return bn__g_nomem(p);
        r->p = np;
        r->cap = cap;
    }
    r->p[2 * r->n] = lo;
    r->p[2 * r->n + 1] = hi;
    r->n++;
    return 1;
}

static int bn__g_cmp_range(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sort and merge; negate (within U+0000..U+10FFFF) if asked; drop surrogates. */
static int bn__granges_normalize(bn__gparser *p, bn__granges *r, int negate) {
    int32_t i, n = 0;
    if (r->n) qsort(r->p, (size_t)r->n, sizeof(uint32_t) * 2, bn__g_cmp_range);
    for (i = 0; i < r->n; i++) {
        if (n && r->p[2 * i] <= r->p[2 * n - 1] + 1) {
            if (r->p[2 * i + 1] > r->p[2 * n - 1]) r->p[2 * n - 1] = r->p[2 * i + 1];
        } else {
            r->p[2 * n] = r->p[2 * i];
            r->p[2 * n + 1] = r->p[2 * i + 1];
            n++;
        }
    }
    r->n = n;
    if (negate) {
        bn__granges neg;
        uint32_t next = 0;
        memset(&neg, 0, sizeof neg);
        for (i = 0; i < n; i++) {
            if (r->p[2 * i] > next && !bn__granges_add(p, &neg, next, r->p[2 * i] - 1)) return 0;
            next = r->p[2 * i + 1] + 1;
        }
        if (next <= 0x10FFFF && !bn__granges_add(p, &neg, next, 0x10FFFF)) return 0;
        BN_FREE(r->p);
        *r = neg;
    }
    /* cut the surrogates out */
    for (i = 0; i < r->n; i++) {
        uint32_t lo = r->p[2 * i], hi = r->p[2 * i + 1];
        if (hi < 0xD800 || lo > 0xDFFF) continue;
        if (lo < 0xD800 && hi > 0xDFFF) {
            if (!bn__granges_add(p, r, 0xE000, hi)) return 0;
            r->p[2 * i + 1] = 0xD7FF;
        } else if (lo < 0xD800) {
            r->p[2 * i + 1] = 0xD7FF;
        } else if (hi > 0xDFFF) {
            r->p[2 * i] = 0xE000;
        } else {
            r->p[2 * i] = 1; /* wholly surrogate: emptied below */
            r->p[2 * i + 1] = 0;
        }
    }
    for (i = 0, n = 0; i < r->n; i++)
        if (r->p[2 * i] <= r->p[2 * i + 1]) {
            r->p[2 * n] = r->p[2 * i];
            r->p[2 * n + 1] = r->p[2 * i + 1];
            n++;
        }
    r->n = n;
    if (n) qsort(r->p, (size_t)n, sizeof(uint32_t) * 2, bn__g_cmp_range);
    return 1;
}

static uint32_t bn__g_class_key(const void *ctx, int32_t id) {
    const bn__gparser *p = (const bn__gparser *)ctx;
    const bn__gclass *c = &p->cls[id];
    return bn__g_hash(c->ascii, sizeof c->ascii) ^ (bn__g_hash(p->ranges + 2 * c->first, sizeof(uint32_t) * 2 * (size_t)c->n) * 31u);
}

/* The class index of normalized ranges r (equal classes share one); -1 when out of memory. */
static int32_t bn__g_intern_class(bn__gparser *p, const bn__granges *r) {
    bn__gclass c;
    int32_t i, n_wide = 0, id;
    uint32_t h;
    memset(&c, 0, sizeof c);
    for (i = 0; i < r->n; i++) {
        uint32_t lo = r->p[2 * i], hi = r->p[2 * i + 1], cp;
        for (cp = lo; cp <= hi && cp < 0x80; cp++) c.ascii[cp >> 5] |= 1u << (cp & 31);
        n_wide += hi >= 0x80;
    }
    if (p->n_ranges + n_wide + 1 > p->cap_ranges) { /* + 1: never NULL */
        int32_t cap = p->cap_ranges ? p->cap_ranges : 64;
        uint32_t *np;
        while (cap < p->n_ranges + n_wide + 1) cap *= 2;
        np = (uint32_t *)BN_REALLOC(p->ranges, sizeof(uint32_t) * 2 * (size_t)cap);
        if (!np) return bn__g_nomem(p) - 1;
        p->ranges = np;
        p->cap_ranges = cap;
    }
    c.first = p->n_ranges;
    for (i = 0; i < r->n; i++) {
        uint32_t lo = r->p[2 * i], hi = r->p[2 * i + 1];
        if (hi < 0x80) continue;
        p->ranges[2 * (c.first + c.n)] = lo < 0x80 ? 0x80 : lo;
        p->ranges[2 * (c.first + c.n) + 1] = hi;
        c.n++;
    }
    /* look for an equal class (the new ranges sit at the end of p->ranges, not yet kept) */
    if (p->n_cls == p->cap_cls) {
        int32_t cap = p->cap_cls ? p->cap_cls * 2 : 64;
        bn__gclass *np = (bn__gclass *)BN_REALLOC(p->cls, sizeof(bn__gclass) * (size_t)cap);
        if (!np) return bn__g_nomem(p) - 1;
        p->cls = np;
        p->cap_cls = cap;
    }
    p->cls[p->n_cls] = c;
    if (!bn__g_table_grow(&p->cls_hash, &p->cls_mask, p->n_cls, bn__g_class_key, p)) return bn__g_nomem(p) - 1;
    for (h = bn__g_class_key(p, p->n_cls) & p->cls_mask; (id = p->cls_hash[h]) >= 0; h = (h + 1) & p->cls_mask) {
        const bn__gclass *o = &p->cls[id];
        if (!memcmp(o->ascii, c.ascii, sizeof c.ascii) && o->n == c.n &&
            !memcmp(p->ranges + 2 * o->first, p->ranges + 2 * c.first, sizeof(uint32_t) * 2 * (size_t)c.n))
            return id;
    }
    p->cls_hash[h] = p->n_cls;
    p->n_ranges += c.n;
    return p->n_cls++;
}

/* ---- lexing ---- */

static int bn__g_is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Skip blanks and # comments; newlines too when newline_ok. */
static void bn__g_space(bn__gparser *p, int newline_ok) {
    while (p->pos < p->len) {
        char c = p->src[p->pos];
        if (c == ' ' || c == '\t' || (newline_ok && (c == '\n' || c == '\r'))) {
            p->pos++;
        } else if (c == '#') {
            while (p->pos < p->len && p->src[p->pos] != '\n' && p->src[p->pos] != '\r') p->pos++;
        } else {
            break;
        }
    }
}

static int bn__g_hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One character of a literal or class at p->pos (an escape or a UTF-8
   character) into *cp; 0 on error. */
static int bn__g_char(bn__gparser *p, uint32_t *cp) {
    size_t at = p->pos, n, bad;
    unsigned char c;
    if (at >= p->len) return bn__g_fail_at(p, at, "unexpected end of the grammar");
    c = (unsigned char)p->src[at];
    if (c == '\\') {
        int digits = 0, i;
        uint32_t v = 0;
        if (at + 1 >= p->len) return bn__g_fail_at(p, at, "unexpected end of the grammar after '\\'");
        c = (unsigned char)p->src[at + 1];
        p->pos = at + 2;
        switch (c) {
        case 'n': *cp = '\n'; return 1;
        case 'r': *cp = '\r'; return 1;
        case 't': *cp = '\t'; return 1;
        case '0': *cp = 0; return 1;
        case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '.': case '\'':
            *cp = c;
            return 1;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default: return bn__g_fail_at(p, at, "unknown escape '\\%c'", c >= 0x20 && c < 0x7f ? (char)c : '?');
        }
        for (i = 0; i < digits; i++) {
            int h = p->pos < p->len ? bn__g_hex(p->src[p->pos]) : -1;
            if (h < 0) return bn__g_fail_at(p, at, "'\\%c' needs %d hexadecimal digits", c, digits);
            v = v * 16 + (uint32_t)h;
            p->pos++;
        }
        if (v > 0x10FFFF) return bn__g_fail_at(p, at, "code point U+%lX is beyond U+10FFFF", (unsigned long)v);
        *cp = v;
        return 1;
    }
    n = bn__utf8_check((const unsigned char *)p->src + at, p->len - at, &bad);
    if (!n) return bn__g_fail_at(p, at, "invalid UTF-8");
    *cp = bn__utf8_next(p->src + at, p->len - at, &n);
    p->pos = at + n;
    return 1;
}

/* The class of one code point (a literal character). */
static int32_t bn__g_char_class(bn__gparser *p, uint32_t cp) {
    bn__granges r;
    int32_t id;
    memset(&r, 0, sizeof r);
    if (!bn__granges_add(p, &r, cp, cp) || !bn__granges_normalize(p, &r, 0)) {
        BN_FREE(r.p);
        return -1;
    }
    id = r.n ? bn__g_intern_class(p, &r) : -2; /* a lone surrogate matches nothing */
    BN_FREE(r.p);
    return id;
}

/* [...] at p->pos into a class id, or -1. */
static int32_t bn__g_class(bn__gparser *p) {
    size_t at = p->pos;
    bn__granges r;
    int negate = 0, ok = 1;
    int32_t id = -1;
    memset(&r, 0, sizeof r);
    p->pos++; /* '[' */
    if (p->pos < p->len && p->src[p->pos] == '^') {
        negate = 1;
        p->pos++;
    }
    while (ok) {
        uint32_t lo, hi;
        size_t c_at = p->pos;
        if (p->pos >= p->len) {
            ok = bn__g_fail_at(p, at, "unterminated character class: expected ']'");
            break;
        }
        if (p->src[p->pos] == ']') {
            p->pos++;
            break;
        }
        ok = bn__g_char(p, &lo);
        hi = lo;
        if (ok && p->pos + 1 < p->len && p->src[p->pos] == '-' && p->src[p->pos + 1] != ']') {
            p->pos++;
            ok = bn__g_char(p, &hi);
            if (ok && hi < lo)
                ok = bn__g_fail_at(p, c_at, "character range ends (U+%04lX) before it starts (U+%04lX)",
                                   (unsigned long)hi, (unsigned long)lo);
        }
        if (ok) ok = bn__granges_add(p, &r, lo, hi);
    }
    if (ok && bn__granges_normalize(p, &r, negate)) {
        if (!r.n) bn__g_fail_at(p, at, "empty character class: it matches no character");
        else id = bn__g_intern_class(p, &r);
    }
    BN_FREE(r.p);
    return id;
}

/* ---- rules ---- */

static int bn__g_alternates(bn__gparser *p, int32_t rule, int nested);

/* A new rule with the alternative el[0..n) (a group or literal that a repetition applies to). */
static int32_t bn__g_wrap(bn__gparser *p, const bn__gel *el, int32_t n, size_t at) {
    int32_t r = bn__g_new_rule(p, NULL, 0, at);
    if (r < 0 || !bn__g_add_alt(p, r, el, n)) return -1;
    return r;
}

/* Apply {min,max} (max < 0: unbounded) to the last symbol of seq, seq->p[start..n). */
static int bn__g_repeat(bn__gparser *p, bn__gvec *seq, int32_t start, int min, int max, size_t at) {
    bn__gel x, two[2];
    int32_t r, inner, i;
    if (seq->n - start != 1) { /* a literal of several characters: one rule for the whole */
        r = bn__g_wrap(p, seq->p + start, seq->n - start, at);
        if (r < 0) return 0;
        seq->n = start;
        x.kind = BN__G_REF;
        x.arg = r;
    } else {
        x = seq->p[start];
        seq->n = start;
    }
    for (i = 0; i < min; i++)
        if (!bn__gvec_push(p, seq, x.kind, x.arg)) return 0;
    if (max < 0) { /* r ::= x r | "" */
        r = bn__g_new_rule(p, NULL, 0, at);
        if (r < 0) return 0;
        two[0] = x;
        two[1].kind = BN__G_REF;
        two[1].arg = r;
        if (!bn__g_add_alt(p, r, two, 2) || !bn__g_add_alt(p, r, NULL, 0)) return 0;
        return bn__gvec_push(p, seq, BN__G_REF, r);
    }
    /* (x (x (...)?)?)?, innermost first: o1 ::= x | "", o(k) ::= x o(k-1) | "" */
    inner = -1;
    for (i = min; i < max; i++) {
        r = bn__g_new_rule(p, NULL, 0, at);
        if (r < 0) return 0;
        two[0] = x;
        two[1].kind = BN__G_REF;
        two[1].arg = inner;
        if (!bn__g_add_alt(p, r, two, inner >= 0 ? 2 : 1) || !bn__g_add_alt(p, r, NULL, 0)) return 0;
        p->n_el_total += 3;
        if (p->n_el_total > BN__G_MAX_ELEMENTS)
            return bn__g_fail_at(p, at, "the grammar is too large (more than %d elements once repetitions are expanded)",
                                 BN__G_MAX_ELEMENTS);
        inner = r;
    }
    return inner < 0 ? 1 : bn__gvec_push(p, seq, BN__G_REF, inner);
}

/* A decimal bound of {m,n}, or -1 when there is none. */
static int bn__g_bound(bn__gparser *p, size_t at, int *ok) {
    long v = 0;
    int any = 0;
    while (p->pos < p->len && p->src[p->pos] >= '0' && p->src[p->pos] <= '9') {
        v = v * 10 + (p->src[p->pos++] - '0');
        any = 1;
        if (v > BN__G_MAX_REPEAT) {
            *ok = bn__g_fail_at(p, at, "repetition bound larger than %d", BN__G_MAX_REPEAT);
            return -1;
        }
    }
    return any ? (int)v : -1;
}

/* *, +, ? or {m}, {m,}, {,n}, {m,n} after a symbol, if there is one. */
static int bn__g_postfix(bn__gparser *p, bn__gvec *seq, int32_t start) {
    size_t at = p->pos;
    char c;
    int min, max, ok = 1;
    if (p->pos >= p->len) return 1;
    c = p->src[p->pos];
    if (c == '*' || c == '+' || c == '?') {
        p->pos++;
        return bn__g_repeat(p, seq, start, c == '+', c == '?' ? 1 : -1, at);
    }
    if (c != '{') return 1;
    p->pos++;
    bn__g_space(p, 0);
    min = bn__g_bound(p, at, &ok);
    if (!ok) return 0;
    bn__g_space(p, 0);
    if (p->pos < p->len && p->src[p->pos] == ',') {
        p->pos++;
        bn__g_space(p, 0);
        max = bn__g_bound(p, at, &ok);
        if (!ok) return 0;
        if (min < 0) min = 0;
    } else {
        if (min < 0) return bn__g_fail_at(p, at, "expected a number in '{...}'");
        max = min;
    }
    bn__g_space(p, 0);
    if (p->pos >= p->len || p->src[p->pos] != '}') return bn__g_fail_at(p, at, "expected '}' to close '{'");
    p->pos++;
    if (max >= 0 && max < min) return bn__g_fail_at(p, at, "repetition {%d,%d}: the maximum is below the minimum", min, max);
    return bn__g_repeat(p, seq, start, min, max, at);
}

/* One symbol and its repetition, appended to seq. */
static int bn__g_item(bn__gparser *p, int32_t rule, bn__gvec *seq) {
    int32_t start = seq->n, id;
    size_t at = p->pos;
    char c = p->src[p->pos];
    BN_UNUSED(rule);
    if (c == '"') {
        p->pos++;
        for (;;) {
            uint32_t cp;
            if (p->pos >= p->len || p->src[p->pos] == '\n' || p->src[p->pos] == '\r')
                return bn__g_fail_at(p, at, "unterminated string literal: expected '\"'");
            if (p->src[p->pos] == '"') {
                p->pos++;
                break;
            }
            if (!bn__g_char(p, &cp)) return 0;
            id = bn__g_char_class(p, cp);
            if (id == -2) return bn__g_fail_at(p, at, "a surrogate code point (U+%04lX) cannot be matched", (unsigned long)cp);
            if (id < 0 || !bn__gvec_push(p, seq, BN__G_CHAR, id)) return 0;
        }
        if (seq->n == start) return 1; /* "" matches the empty string: nothing to repeat */
    } else if (c == '[') {
        id = bn__g_class(p);
        if (id < 0 || !bn__gvec_push(p, seq, BN__G_CHAR, id)) return 0;
    } else if (c == '.') {
        bn__granges r;
        memset(&r, 0, sizeof r);
        p->pos++;
        id = bn__granges_normalize(p, &r, 1) ? bn__g_intern_class(p, &r) : -1;
        BN_FREE(r.p);
        if (id < 0 || !bn__gvec_push(p, seq, BN__G_CHAR, id)) return 0;
    } else if (c == '(') {
        int32_t r;
        if (++p->depth > BN__G_MAX_DEPTH) return bn__g_fail_at(p, at, "groups nested deeper than %d", BN__G_MAX_DEPTH);
        p->pos++;
        r = bn__g_new_rule(p, NULL, 0, at);
        if (r < 0 || !bn__g_alternates(p, r, 1)) return 0;
        if (p->pos >= p->len || p->src[p->pos] != ')') return bn__g_fail_at(p, at, "unbalanced '(': expected ')'");
        p->pos++;
        p->depth--;
        if (!bn__gvec_push(p, seq, BN__G_REF, r)) return 0;
    } else if (bn__g_is_name_char(c)) {
        size_t n = 0;
        int32_t r;
        while (p->pos + n < p->len && bn__g_is_name_char(p->src[p->pos + n])) n++;
        r = bn__g_rule_id(p, p->src + p->pos, n, at);
        if (r < 0) return 0;
        if (!p->rules[r].defined && p->rules[r].ref_at > at) p->rules[r].ref_at = at;
        p->pos += n;
        if (!bn__gvec_push(p, seq, BN__G_REF, r)) return 0;
    } else if (c == ')') {
        return bn__g_fail_at(p, at, "unbalanced ')': no '(' to close");
    } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        return bn__g_fail_at(p, at, "'%c' must follow a symbol", c);
    } else {
        return bn__g_fail_at(p, at, "unexpected character '%c'", c >= 0x20 && c < 0x7f ? c : '?');
    }
    return bn__g_postfix(p, seq, start);
}

/* A sequence of symbols, ended by '|', ')' or a newline (unless nested). */
static int bn__g_sequence(bn__gparser *p, int32_t rule, int nested) {
    bn__gvec seq;
    int ok = 1;
    memset(&seq, 0, sizeof seq);
    for (;;) {
        char c;
        bn__g_space(p, nested);
        if (p->pos >= p->len) break;
        c = p->src[p->pos];
        if (c == '|' || c == '\n' || c == '\r' || (c == ')' && nested)) break;
        if (!bn__g_item(p, rule, &seq)) {
            ok = 0;
            break;
        }
    }
    if (ok) ok = bn__g_add_alt(p, rule, seq.p, seq.n);
    BN_FREE(seq.p);
    return ok;
}

/* Alternatives separated by '|'; a '|' may also begin the next line. */
static int bn__g_alternates(bn__gparser *p, int32_t rule, int nested) {
    if (!bn__g_sequence(p, rule, nested)) return 0;
    for (;;) {
        size_t at = p->pos;
        bn__g_space(p, 1);
        if (p->pos >= p->len || p->src[p->pos] != '|') {
            p->pos = at;
            return 1;
        }
        p->pos++;
        bn__g_space(p, 1);
        if (!bn__g_sequence(p, rule, nested)) return 0;
    }
}

/* name ::= alternates, then the end of the line. */
static int bn__g_rule(bn__gparser *p) {
    size_t at = p->pos, n = 0;
    int32_t r;
    while (p->pos + n < p->len && bn__g_is_name_char(p->src[p->pos + n])) n++;
    if (!n) return bn__g_fail_at(p, at, "expected a rule name");
    r = bn__g_rule_id(p, p->src + at, n, at);
    if (r < 0) return 0;
    if (p->rules[r].defined) {
        int line, col;
        bn__g_linecol(p->src, p->rules[r].at, &line, &col);
        return bn__g_fail_at(p, at, "rule '%.*s' is defined twice (first at line %d)", (int)n, p->src + at, line);
    }
    p->rules[r].defined = 1;
    p->rules[r].at = at;
    p->pos += n;
    bn__g_space(p, 0);
    if (p->pos + 3 > p->len || memcmp(p->src + p->pos, "::=", 3) != 0)
        return bn__g_fail_at(p, p->pos, "expected '::=' after the rule name '%.*s'", (int)n, p->src + at);
    p->pos += 3;
    bn__g_space(p, 1);
    if (!bn__g_alternates(p, r, 0)) return 0;
    if (p->pos < p->len && p->src[p->pos] == ')') return bn__g_fail_at(p, p->pos, "unbalanced ')': no '(' to close");
    if (p->pos < p->len && p->src[p->pos] != '\n' && p->src[p->pos] != '\r')
        return bn__g_fail_at(p, p->pos, "expected the end of the line");
    bn__g_space(p, 1);
    return 1;
}

/* ==== checks: undefined rules, nullable rules, left recursion, rules that never finish ==== */

/* The name of rule r for messages: its own, or "a group/repetition in rule X". */
static void bn__g_rule_desc(const bn__gparser *p, int32_t r, char *buf, size_t cap) {
    const bn__grule *R = &p->rules[r];
    int line, col;
    if (R->name) {
        snprintf(buf, cap, "rule '%.*s'", (int)BN_MIN(R->name_len, 64), R->name);
        return;
    }
    bn__g_linecol(p->src, R->at, &line, &col);
    snprintf(buf, cap, "the group or repetition at line %d, column %d", line, col);
}

static int bn__g_check(bn__gparser *p, int32_t root) {
    int32_t n = p->n_rules, r, i;
    unsigned char *nullable = (unsigned char *)bn__zalloc((size_t)n), *productive = (unsigned char *)bn__zalloc((size_t)n);
    unsigned char *color = (unsigned char *)bn__zalloc((size_t)n);
    int32_t *stack = BN_ALLOC(int32_t, 3 * (size_t)n + 3);
    int changed = 1, ok = 1;
    if (!nullable || !productive || !color || !stack) ok = bn__g_nomem(p);
    for (r = 0; ok && r < n; r++)
        if (!p->rules[r].defined && p->rules[r].name)
            ok = bn__g_fail_at(p, p->rules[r].ref_at, "undefined rule '%.*s'", (int)p->rules[r].name_len,
                               p->rules[r].name);
    /* nullable and productive: fixpoints over the alternatives */
    while (ok && changed) {
        changed = 0;
        for (r = 0; r < n; r++) {
            const bn__grule *R = &p->rules[r];
            int alt_null = 1, alt_prod = 1;
            for (i = 0; i < R->n_el; i++) {
                const bn__gel *e = &R->el[i];
                if (e->kind == BN__G_END) {
                    if (alt_null && !nullable[r]) nullable[r] = 1, changed = 1;
                    if (alt_prod && !productive[r]) productive[r] = 1, changed = 1;
                    alt_null = alt_prod = 1;
                } else if (e->kind == BN__G_CHAR) {
                    alt_null = 0;
                } else {
                    alt_null &= nullable[e->arg];
                    alt_prod &= productive[e->arg];
                }
            }
        }
    }
    /* left recursion: a cycle in "r can begin with s" (s after only nullable symbols);
       an iterative depth-first search (rule, next element, at a start?), color 1 = on the path, 2 = done */
    for (r = 0; ok && r < n; r++) {
        int32_t sp = 0;
        if (color[r]) continue;
        stack[sp++] = r;
        stack[sp++] = 0;
        stack[sp++] = 1;
        color[r] = 1;
        while (ok && sp) {
            int32_t cur = stack[sp - 3], k = stack[sp - 2], lead = stack[sp - 1], next = -1;
            const bn__grule *R = &p->rules[cur];
            for (; k < R->n_el && next < 0; k++) {
                const bn__gel *e = &R->el[k];
                if (e->kind == BN__G_END) {
                    lead = 1;
                } else if (lead && e->kind == BN__G_REF) {
                    next = e->arg;
                    lead = nullable[e->arg];
                } else {
                    lead = 0;
                }
            }
            stack[sp - 2] = k;
            stack[sp - 1] = lead;
            if (next < 0) {
                color[cur] = 2;
                sp -= 3;
            } else if (color[next] == 1) {
                char a[160];
                bn__g_rule_desc(p, next, a, sizeof a);
                ok = bn__g_fail_at(p, p->rules[next].at,
                                   "left recursion: %s can reach itself without matching a character (%s)", a,
                                   p->rules[next].name ? "write it with repetition, e.g. x ::= y (\"+\" y)*"
                                                       : "it repeats something that can match the empty string");
            } else if (color[next] == 0) {
                color[next] = 1;
                stack[sp++] = next;
                stack[sp++] = 0;
                stack[sp++] = 1;
            }
        }
    }
    if (ok && !productive[root]) {
        char a[160];
        bn__g_rule_desc(p, root, a, sizeof a);
        ok = bn__g_fail_at(p, p->rules[root].at, "%s can never finish: every alternative needs itself again", a);
    }
    for (r = 0; ok && r < n; r++)
        if (!productive[r]) {
            char a[160];
            bn__g_rule_desc(p, r, a, sizeof a);
            ok = bn__g_fail_at(p, p->rules[r].at, "%s can never finish: every alternative needs itself again", a);
        }
    BN_FREE(nullable);
    BN_FREE(productive);
    BN_FREE(color);
    BN_FREE(stack);
    return ok;
}

/* The parser's rules as one flat bn_grammar. */
static int bn__g_flatten(bn__gparser *p, int32_t root, bn_grammar **out) {
    bn_grammar *g = BN_ZALLOC(bn_grammar, 1);
    int32_t r, i, n_el = 0, n_alt = 0, at = 0, a = 0;
    if (!g) return bn__g_nomem(p);
    for (r = 0; r < p->n_rules; r++) {
        n_el += p->rules[r].n_el;
        for (i = 0; i < p->rules[r].n_el; i++) n_alt += p->rules[r].el[i].kind == BN__G_END;
    }
    g->el = BN_ALLOC(bn__gel, n_el + 1);
    g->alt = BN_ALLOC(int32_t, n_alt + 1);
    g->rule_alt = BN_ALLOC(int32_t, p->n_rules + 1);
    if (!g->el || !g->alt || !g->rule_alt) {
        bn_grammar_free(g);
        return bn__g_nomem(p);
    }
    for (r = 0; r < p->n_rules; r++) {
        const bn__grule *R = &p->rules[r];
        g->rule_alt[r] = a;
        for (i = 0; i < R->n_el; i++) {
            if (i == 0 || R->el[i - 1].kind == BN__G_END) g->alt[a++] = at + i;
            g->el[at + i] = R->el[i];
        }
        at += R->n_el;
    }
    g->rule_alt[p->n_rules] = a;
    g->n_el = n_el;
    g->n_rules = p->n_rules;
    g->root = root;
    g->cls = p->cls;
    g->n_cls = p->n_cls;
    g->ranges = p->ranges;
    g->n_ranges = p->n_ranges;
    p->cls = NULL;
    p->ranges = NULL;
    *out = g;
    return 1;
}

BN_API bn_status bn_grammar_parse(bn_grammar **out, const char *text, size_t len, const char *root, bn_error *err) {
    bn__gparser p;
    int32_t r, root_id = -1;
    size_t root_len;
    *out = NULL;
    memset(&p, 0, sizeof p);
    p.src = text ? text : "";
    p.len = text ? len : 0;
    p.err = err;
    if (!root) root = "root";
    root_len = strlen(root);
    bn__g_space(&p, 1);
    while (p.st == BN_OK && p.pos < p.len) bn__g_rule(&p);
    if (p.st == BN_OK) {
        for (r = 0; r < p.n_rules; r++)
            if (p.rules[r].name && p.rules[r].name_len == root_len && !memcmp(p.rules[r].name, root, root_len))
                root_id = r;
        if (root_id < 0 || !p.rules[root_id].defined)
            p.st = bn_errorf(err, BN_ERR_FORMAT, "grammar: no rule named '%s' (generation starts there)", root);
    }
    if (p.st == BN_OK && bn__g_check(&p, root_id)) bn__g_flatten(&p, root_id, out);
    for (r = 0; r < p.n_rules; r++) BN_FREE(p.rules[r].el);
    BN_FREE(p.rules);
    BN_FREE(p.name_hash);
    BN_FREE(p.cls);
    BN_FREE(p.ranges);
    BN_FREE(p.cls_hash);
    return p.st;
}

/* ==== the matcher ===========================================================

   A stack is a chain of frames (element position, parent frame, partial
   UTF-8 character): the top frame's element is the character class to match
   next; each frame below is where to go on once the rule above it ends. A
   state is the set of stacks the text so far can be in (several: grammars
   are ambiguous until the text decides), plus "accepting" when one of them
   has ended. Frames and sets are interned (equal ones share an id), so a set
   is a number, and each set caches its 256 transitions: after the first
   tokens the matcher mostly looks up tables. When the cache grows past
   BN_GRAMMAR_CACHE_BYTES it is emptied at the next token, keeping the state. */

#ifndef BN_GRAMMAR_CACHE_BYTES
#define BN_GRAMMAR_CACHE_BYTES ((size_t)64 << 20)
#endif

typedef struct bn__gframe {
    int32_t pos, parent; /* parent: frame id, -1 for none */
    uint32_t partial;    /* BN__GP_*: the character being matched, 0 between characters */
} bn__gframe;

typedef struct bn__gset {
    int32_t first, n;  /* frame ids: items[first .. first + n), sorted */
    int32_t trans;     /* transition table (256 set ids; -2 unknown, -1 dead), or -1 */
    int32_t accepting;
} bn__gset;

/* A partial character: value bits so far, continuation bytes still needed,
   the lead byte's kind (the second byte's bounds: E0, ED, F0, F4 restrict
   it), whether the next byte is the second, and CANON when every completion
   is in the class (the value then no longer matters: fewer distinct states). */
#define BN__GP_ACTIVE 0x80000000u
#define BN__GP_CANON 0x40000000u
#define BN__GP_SECOND 0x20000000u
#define BN__GP_KIND_SHIFT 26 /* 3 bits */
#define BN__GP_NEED_SHIFT 24 /* 2 bits */
#define BN__GP_VALUE 0x1FFFFFu
enum { BN__GK_ANY = 0, BN__GK_E0, BN__GK_ED, BN__GK_F0, BN__GK_F4 };
enum { BN__GF_REJECT = 0, BN__GF_PARTIAL, BN__GF_DONE };
#define BN__GM_MASKS 4
/* The most (position, parent) pairs one step may visit. Grammars that need
   more are ambiguous beyond use, e.g. ((x?){200}){200}: each x could be any
   of 40000 optional ones, in 200 groups. Such a step is refused like a byte the grammar does not allow.
   The bound is also what a hostile grammar can cost per byte (about 0.5 ms
   on a 2-core AMD EPYC): the JSON grammar and converted schemas visit at most a few hundred
   pairs a step, the fuzz corpus's grammars at most 2,600. */
#define BN__GM_MAX_VISITS (1 << 16)

struct bn_grammar_matcher {
    const bn_grammar *g;
    size_t cache_limit; /* BN_GRAMMAR_CACHE_BYTES */
    bn__gframe *frames;
    int32_t n_frames, cap_frames;
    int32_t *fhash;
    uint32_t fmask;
    int32_t *items;
    int32_t n_items, cap_items;
    bn__gset *sets;
    int32_t n_sets, cap_sets;
    int32_t *shash;
    uint32_t smask;
    int32_t *trans;
    int32_t n_tables, cap_tables;
    int32_t start, cur;
    int oom;
    /* one transition's scratch: the frames it reaches, the expansion's work list and visited pairs */
    int32_t *out;
    int32_t n_out, cap_out, accepting;
    int32_t *work;
    int32_t n_work, cap_work;
    uint64_t *seen;
    uint32_t *seen_stamp, stamp, seen_mask;
    int32_t n_seen;
    /* the mask walk: the set at each depth of the token trie */
    int32_t *path;
    int32_t cap_path;
    /* the last masks made, by set (a text that stays in one state, e.g. a long string, reuses them) */
    uint32_t *masks;
    int32_t mask_set[BN__GM_MASKS], mask_count[BN__GM_MASKS], mask_words, mask_next;
    const bn_grammar_vocab *mask_vocab;
};

static int bn__gclass_has(const bn_grammar *g, const bn__gclass *c, uint32_t cp) {
    const uint32_t *r = g->ranges + 2 * (size_t)c->first;
    int32_t a = 0, b = c->n;
    if (cp < 0x80) return (c->ascii[cp >> 5] >> (cp & 31)) & 1;
    while (a < b) {
        int32_t mid = (a + b) / 2;
        if (r[2 * mid + 1] < cp) a = mid + 1;
        else b = mid;
    }
    return a < c->n && r[2 * a] <= cp;
}

/* How much of [lo, hi] (code points >= 0x80) the class holds: 0 none, 1 some, 2 all. */
static int bn__gclass_overlap(const bn_grammar *g, const bn__gclass *c, uint32_t lo, uint32_t hi) {
    const uint32_t *r = g->ranges + 2 * (size_t)c->first;
    int32_t a = 0, b = c->n;
    while (a < b) {
        int32_t mid = (a + b) / 2;
        if (r[2 * mid + 1] < lo) a = mid + 1;
        else b = mid;
    }
    if (a == c->n || r[2 * a] > hi) return 0;
    return r[2 * a] <= lo && r[2 * a + 1] >= hi ? 2 : 1;
}

/* A partial character that needs `need` more bytes, given its value so far:
   rejected if no completion is in the class, canonical if all are. */
static int bn__gclass_partial(const bn_grammar *g, const bn__gclass *c, uint32_t value, uint32_t lo, uint32_t hi,
                              uint32_t need, uint32_t kind, uint32_t second, uint32_t *partial) {
    int o = bn__gclass_overlap(g, c, lo, hi);
    uint32_t base = BN__GP_ACTIVE | (need << BN__GP_NEED_SHIFT) | (kind << BN__GP_KIND_SHIFT) | second;
    if (!o) return BN__GF_REJECT;
    *partial = o == 2 ? base | BN__GP_CANON : base | value;
    return BN__GF_PARTIAL;
}

/* Feed byte b to class c with partial character *partial. */
static int bn__gclass_feed(const bn_grammar *g, const bn__gclass *c, uint32_t *partial, unsigned b) {
    uint32_t p = *partial, value, need, kind, lo, hi;
    if (!p) {
        if (b < 0x80) return (c->ascii[b >> 5] >> (b & 31)) & 1 ? BN__GF_DONE : BN__GF_REJECT;
        if (b >= 0xC2 && b <= 0xDF) {
            value = b & 0x1F;
            return bn__gclass_partial(g, c, value, value << 6, (value << 6) | 0x3F, 1, BN__GK_ANY, BN__GP_SECOND, partial);
        }
        if (b >= 0xE0 && b <= 0xEF) {
            value = b & 0x0F;
            lo = b == 0xE0 ? 0x800 : value << 12;
            hi = b == 0xED ? 0xD7FF : (value << 12) | 0xFFF;
            kind = b == 0xE0 ? BN__GK_E0 : b == 0xED ? BN__GK_ED : BN__GK_ANY;
            return bn__gclass_partial(g, c, value, lo, hi, 2, kind, BN__GP_SECOND, partial);
        }
        if (b >= 0xF0 && b <= 0xF4) {
            value = b & 0x07;
            lo = b == 0xF0 ? 0x10000 : value << 18;
            hi = b == 0xF4 ? 0x10FFFF : (value << 18) | 0x3FFFF;
            kind = b == 0xF0 ? BN__GK_F0 : b == 0xF4 ? BN__GK_F4 : BN__GK_ANY;
            return bn__gclass_partial(g, c, value, lo, hi, 3, kind, BN__GP_SECOND, partial);
        }
        return BN__GF_REJECT; /* a continuation byte or an invalid lead */
    }
    kind = (p >> BN__GP_KIND_SHIFT) & 7;
    need = (p >> BN__GP_NEED_SHIFT) & 3;
    lo = 0x80, hi = 0xBF;
    if (p & BN__GP_SECOND) {
        if (kind == BN__GK_E0) lo = 0xA0;
        else if (kind == BN__GK_ED) hi = 0x9F;
        else if (kind == BN__GK_F0) lo = 0x90;
        else if (kind == BN__GK_F4) hi = 0x8F;
    }
    if (b < lo || b > hi) return BN__GF_REJECT;
    need--;
    if (p & BN__GP_CANON) {
        if (!need) return BN__GF_DONE;
        *partial = BN__GP_ACTIVE | BN__GP_CANON | (need << BN__GP_NEED_SHIFT);
        return BN__GF_PARTIAL;
    }
    value = ((p & BN__GP_VALUE) << 6) | (b & 0x3F);
    if (!need) return bn__gclass_has(g, c, value) ? BN__GF_DONE : BN__GF_REJECT;
    lo = value << (6 * need);
    hi = lo | ((1u << (6 * need)) - 1);
    return bn__gclass_partial(g, c, value, lo, hi, need, BN__GK_ANY, 0, partial);
}

/* ---- interning ---- */

static uint32_t bn__gm_frame_hash(int32_t pos, int32_t parent, uint32_t partial) {
    uint64_t h = ((uint64_t)(uint32_t)pos * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(uint32_t)parent * 0xC2B2AE3D27D4EB4Full) ^
                 ((uint64_t)partial * 0x165667B19E3779F9ull);
    return (uint32_t)(h ^ (h >> 29));
}

static uint32_t bn__gm_frame_key(const void *ctx, int32_t id) {
    const bn__gframe *f = &((const bn_grammar_matcher *)ctx)->frames[id];
    return bn__gm_frame_hash(f->pos, f->parent, f->partial);
}

/* Grow the array whose pointer is at pp (any T *, passed as its address) to
   hold need elements of esize, doubling; 0 (and m->oom) when out of memory. */
static int bn__gm_grow(bn_grammar_matcher *m, void *pp, int32_t *cap, int32_t need, size_t esize) {
    int32_t nc;
    void *p, *np;
    if (need <= *cap) return 1;
    nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    memcpy(&p, pp, sizeof p);
    np = BN_REALLOC(p, esize * (size_t)nc);
    if (!np) {
        m->oom = 1;
        return 0;
    }
    memcpy(pp, &np, sizeof np);
    *cap = nc;
    return 1;
}

/* The id of frame (pos, parent, partial), made if new; -1 when out of memory. */
static int32_t bn__gm_frame(bn_grammar_matcher *m, int32_t pos, int32_t parent, uint32_t partial) {
    uint32_t h;
    int32_t id;
    if (!bn__g_table_grow(&m->fhash, &m->fmask, m->n_frames, bn__gm_frame_key, m) ||
        !bn__gm_grow(m, &m->frames, &m->cap_frames, m->n_frames + 1, sizeof(bn__gframe))) {
        m->oom = 1;
        return -1;
    }
    for (h = bn__gm_frame_hash(pos, parent, partial) & m->fmask; (id = m->fhash[h]) >= 0; h = (h + 1) & m->fmask) {
        const bn__gframe *f = &m->frames[id];
        if (f->pos == pos && f->parent == parent && f->partial == partial) return id;
    }
    id = m->n_frames++;
    m->frames[id].pos = pos;
    m->frames[id].parent = parent;
    m->frames[id].partial = partial;
    m->fhash[h] = id;
    return id;
}

static uint32_t bn__gm_set_hash(const int32_t *items, int32_t n, int32_t accepting) {
    return bn__g_hash(items, sizeof(int32_t) * (size_t)n) ^ (uint32_t)accepting * 0x9E3779B9u;
}

static uint32_t bn__gm_set_key(const void *ctx, int32_t id) {
    const bn_grammar_matcher *m = (const bn_grammar_matcher *)ctx;
    const bn__gset *s = &m->sets[id];
    return bn__gm_set_hash(m->items + s->first, s->n, s->accepting);
}

static int bn__gm_cmp_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The set of the frames in m->out (and m->accepting); -1 if it is empty (dead) or out of memory. */
static int32_t bn__gm_set(bn_grammar_matcher *m) {
    int32_t i, n = 0, id;
    uint32_t h;
    if (m->oom) return -1;
    if (m->n_out > 1) qsort(m->out, (size_t)m->n_out, sizeof(int32_t), bn__gm_cmp_id);
    for (i = 0; i < m->n_out; i++)
        if (!n || m->out[i] != m->out[n - 1]) m->out[n++] = m->out[i];
    m->n_out = n;
    if (!n && !m->accepting) return -1;
    if (!bn__g_table_grow(&m->shash, &m->smask, m->n_sets, bn__gm_set_key, m) ||
        !bn__gm_grow(m, &m->sets, &m->cap_sets, m->n_sets + 1, sizeof(bn__gset))) {
        m->oom = 1;
        return -1;
    }
    for (h = bn__gm_set_hash(m->out, n, m->accepting) & m->smask; (id = m->shash[h]) >= 0; h = (h + 1) & m->smask) {
        const bn__gset *s = &m->sets[id];
        if (s->n == n && s->accepting == m->accepting &&
            (!n || !memcmp(m->items + s->first, m->out, sizeof(int32_t) * (size_t)n)))
            return id;
    }
    if (!bn__gm_grow(m, &m->items, &m->cap_items, m->n_items + n, sizeof(int32_t))) return -1;
    if (n) memcpy(m->items + m->n_items, m->out, sizeof(int32_t) * (size_t)n);
    id = m->n_sets++;
    m->sets[id].first = m->n_items;
    m->sets[id].n = n;
    m->sets[id].trans = -1;
    m->sets[id].accepting = m->accepting;
    m->n_items += n;
    m->shash[h] = id;
    return id;
}

/* ---- expansion: from a position to the character classes that can come next ---- */

static void bn__gm_push_work(bn_grammar_matcher *m, int32_t pos, int32_t parent) {
    if (!bn__gm_grow(m, &m->work, &m->cap_work, m->n_work + 2, sizeof(int32_t))) return;
    m->work[m->n_work++] = pos;
    m->work[m->n_work++] = parent;
}

static void bn__gm_push_out(bn_grammar_matcher *m, int32_t frame) {
    if (frame < 0 || !bn__gm_grow(m, &m->out, &m->cap_out, m->n_out + 1, sizeof(int32_t))) return;
    m->out[m->n_out++] = frame;
}

/* 1 the first time (pos, parent) is seen in this transition. */
static int bn__gm_first_visit(bn_grammar_matcher *m, int32_t pos, int32_t parent) {
    uint64_t key = ((uint64_t)(uint32_t)pos << 32) | (uint32_t)(parent + 1);
    uint32_t h;
    if (!m->seen || (uint32_t)(m->n_seen + 1) * 2 > m->seen_mask + 1) { /* grow, keeping this transition's marks */
        uint32_t cap = m->seen ? (m->seen_mask + 1) * 2 : 256, i;
        uint64_t *ns = BN_ALLOC(uint64_t, cap);
        uint32_t *nst = (uint32_t *)bn__zalloc(sizeof(uint32_t) * cap);
        if (!ns || !nst) {
            BN_FREE(ns);
            BN_FREE(nst);
            m->oom = 1;
            return 0;
        }
        for (i = 0; m->seen && i <= m->seen_mask; i++)
            if (m->seen_stamp[i] == m->stamp) {
                uint32_t j = bn__gm_frame_hash((int32_t)(m->seen[i] >> 32), (int32_t)m->seen[i], 0) & (cap - 1);
                while (nst[j] == m->stamp) j = (j + 1) & (cap - 1);
                ns[j] = m->seen[i];
                nst[j] = m->stamp;
            }
        BN_FREE(m->seen);
        BN_FREE(m->seen_stamp);
        m->seen = ns;
        m->seen_stamp = nst;
        m->seen_mask = cap - 1;
    }
    for (h = bn__gm_frame_hash((int32_t)(key >> 32), (int32_t)key, 0) & m->seen_mask; m->seen_stamp[h] == m->stamp;
         h = (h + 1) & m->seen_mask)
        if (m->seen[h] == key) return 0;
    m->seen[h] = key;
    m->seen_stamp[h] = m->stamp;
    m->n_seen++;
    return 1;
}

/* Everything the work list reaches without consuming a byte: character
   classes become top frames in m->out; stacks that end set m->accepting.
   Finite: the grammar has no left recursion, and each (position, parent)
   is expanded once. */
static void bn__gm_expand(bn_grammar_matcher *m) {
    const bn_grammar *g = m->g;
    while (m->n_work && !m->oom) {
        if (m->n_seen > BN__GM_MAX_VISITS) { /* too ambiguous: the step fails (see bn__gm_compute) */
            m->n_work = 0;
            return;
        }
        int32_t parent = m->work[--m->n_work], pos = m->work[--m->n_work], a, ret;
        const bn__gel *e = &g->el[pos];
        if (!bn__gm_first_visit(m, pos, parent)) continue;
        if (e->kind == BN__G_CHAR) {
            bn__gm_push_out(m, bn__gm_frame(m, pos, parent, 0));
        } else if (e->kind == BN__G_END) {
            if (parent < 0) m->accepting = 1;
            else bn__gm_push_work(m, m->frames[parent].pos, m->frames[parent].parent);
        } else {
            /* a reference: go on at pos + 1 once the rule ends (a tail call keeps the parent) */
            ret = g->el[pos + 1].kind == BN__G_END ? parent : bn__gm_frame(m, pos + 1, parent, 0);
            if (m->oom) return;
            for (a = g->rule_alt[e->arg]; a < g->rule_alt[e->arg + 1]; a++) bn__gm_push_work(m, g->alt[a], ret);
        }
    }
}

static void bn__gm_begin(bn_grammar_matcher *m) {
    m->n_out = 0;
    m->n_work = 0;
    m->accepting = 0;
    m->n_seen = 0;
    if (++m->stamp == 0) { /* wrapped: forget every old mark */
        if (m->seen_stamp) memset(m->seen_stamp, 0, sizeof(uint32_t) * ((size_t)m->seen_mask + 1));
        m->stamp = 1;
    }
}

/* The set after feeding byte b to every stack of set s (not cached). */
static int32_t bn__gm_compute(bn_grammar_matcher *m, int32_t s, unsigned b) {
    const bn_grammar *g = m->g;
    int32_t i, n = m->sets[s].n;
    bn__gm_begin(m);
    for (i = 0; i < n && !m->oom; i++) {
        bn__gframe f = m->frames[m->items[m->sets[s].first + i]];
        uint32_t partial = f.partial;
        int r = bn__gclass_feed(g, &g->cls[g->el[f.pos].arg], &partial, b);
        if (r == BN__GF_PARTIAL) {
            bn__gm_push_out(m, bn__gm_frame(m, f.pos, f.parent, partial));
        } else if (r == BN__GF_DONE) {
            bn__gm_push_work(m, f.pos + 1, f.parent);
            bn__gm_expand(m);
        }
    }
    if (m->n_seen > BN__GM_MAX_VISITS) m->n_out = m->accepting = 0; /* refused, as a byte the grammar does not allow */
    return bn__gm_set(m);
}

static size_t bn__gm_bytes(const bn_grammar_matcher *m) {
    return (size_t)m->cap_frames * sizeof(bn__gframe) + (size_t)m->cap_items * 4 + (size_t)m->cap_sets * sizeof(bn__gset) +
           (size_t)m->cap_tables * 4 + ((size_t)m->fmask + (size_t)m->smask + 2) * 4;
}

/* The set after byte b from set s: from s's table, or computed and remembered. */
static int32_t bn__gm_step(bn_grammar_matcher *m, int32_t s, unsigned b) {
    int32_t t = m->sets[s].trans, r;
    if (t >= 0 && (r = m->trans[(size_t)t * 256 + b]) != -2) return r;
    r = bn__gm_compute(m, s, b);
    if (m->oom) return -1;
    if (t < 0 && bn__gm_bytes(m) < m->cache_limit &&
        bn__gm_grow(m, &m->trans, &m->cap_tables, (m->n_tables + 1) * 256, sizeof(int32_t))) {
        int i;
        t = m->n_tables++;
        for (i = 0; i < 256; i++) m->trans[(size_t)t * 256 + i] = -2;
        m->sets[s].trans = t;
    }
    if (t >= 0) m->trans[(size_t)t * 256 + b] = r;
    return r;
}

/* The set after bytes[0..n) from set s, or -1. */
static int32_t bn__gm_run(bn_grammar_matcher *m, int32_t s, const char *bytes, size_t n) {
    size_t i;
    for (i = 0; i < n && s >= 0; i++) s = bn__gm_step(m, s, (unsigned char)bytes[i]);
    return s;
}

/* The set of the grammar's start. */
static int32_t bn__gm_start_set(bn_grammar_matcher *m) {
    const bn_grammar *g = m->g;
    int32_t a;
    bn__gm_begin(m);
    for (a = g->rule_alt[g->root]; a < g->rule_alt[g->root + 1]; a++) bn__gm_push_work(m, g->alt[a], -1);
    bn__gm_expand(m);
    return bn__gm_set(m);
}

static void bn__gm_clear(bn_grammar_matcher *m) {
    int i;
    for (i = 0; i < BN__GM_MASKS; i++) m->mask_set[i] = -1; /* set ids are about to mean other sets */
    m->n_frames = m->n_items = m->n_sets = m->n_tables = 0;
    if (m->fhash) memset(m->fhash, 0xff, sizeof(int32_t) * ((size_t)m->fmask + 1));
    if (m->shash) memset(m->shash, 0xff, sizeof(int32_t) * ((size_t)m->smask + 1));
}

/* The cache is over budget: empty it, keeping the current state (its stacks re-made in a fresh table). */
static void bn__gm_flush(bn_grammar_matcher *m) {
    int32_t cur = m->cur, i, n = m->sets[cur].n, total = 0, accepting = m->sets[cur].accepting, *chain = NULL, at;
    bn__gframe *saved;
    for (i = 0; i < n; i++) {
        int32_t f = m->items[m->sets[cur].first + i];
        for (; f >= 0; f = m->frames[f].parent) total++;
    }
    saved = BN_ALLOC(bn__gframe, total + 1);
    chain = BN_ALLOC(int32_t, 2 * (size_t)n + 1);
    if (!saved || !chain) {
        BN_FREE(saved);
        BN_FREE(chain);
        return; /* keep the big cache rather than lose the state */
    }
    for (i = 0, at = 0; i < n; i++) { /* each stack top first, as (pos, partial); parent = -2 between stacks */
        int32_t f = m->items[m->sets[cur].first + i];
        chain[2 * i] = at;
        for (; f >= 0; f = m->frames[f].parent) saved[at++] = m->frames[f];
        chain[2 * i + 1] = at;
    }
    bn__gm_clear(m);
    m->oom = 0;
    m->start = bn__gm_start_set(m);
    m->n_out = 0;
    for (i = 0; i < n; i++) {
        int32_t parent = -1, k;
        for (k = chain[2 * i + 1] - 1; k >= chain[2 * i]; k--)
            parent = bn__gm_frame(m, saved[k].pos, parent, saved[k].partial);
        bn__gm_push_out(m, parent);
    }
    m->accepting = accepting;
    m->cur = bn__gm_set(m);
    BN_FREE(saved);
    BN_FREE(chain);
}

BN_API bn_status bn_grammar_matcher_new(bn_grammar_matcher **out, const bn_grammar *g, bn_error *err) {
    bn_grammar_matcher *m;
    int i;
    *out = NULL;
    if (!g) return bn_errorf(err, BN_ERR_ARG, "grammar matcher: no grammar");
    m = BN_ZALLOC(bn_grammar_matcher, 1);
    if (!m) return bn_errorf(err, BN_ERR_NOMEM, "grammar matcher: out of memory");
    m->g = g;
    m->cache_limit = BN_GRAMMAR_CACHE_BYTES;
    for (i = 0; i < BN__GM_MASKS; i++) m->mask_set[i] = -1;
    m->start = m->cur = bn__gm_start_set(m);
    if (m->start < 0) {
        int oom = m->oom;
        bn_grammar_matcher_free(m);
        return oom ? bn_errorf(err, BN_ERR_NOMEM, "grammar matcher: out of memory")
                   : bn_errorf(err, BN_ERR_UNSUPPORTED, "grammar matcher: the grammar's start is too ambiguous (more "
                                                        "than %d positions to follow)", BN__GM_MAX_VISITS);
    }
    *out = m;
    return BN_OK;
}

BN_API void bn_grammar_matcher_free(bn_grammar_matcher *m) {
    if (!m) return;
    BN_FREE(m->frames);
    BN_FREE(m->fhash);
    BN_FREE(m->items);
    BN_FREE(m->sets);
    BN_FREE(m->shash);
    BN_FREE(m->trans);
    BN_FREE(m->out);
    BN_FREE(m->work);
    BN_FREE(m->seen);
    BN_FREE(m->seen_stamp);
    BN_FREE(m->path);
    BN_FREE(m->masks);
    BN_FREE(m);
}

BN_API void bn_grammar_matcher_reset(bn_grammar_matcher *m) {
    if (bn__gm_bytes(m) > m->cache_limit) {
        bn__gm_clear(m);
        m->oom = 0;
        m->start = bn__gm_start_set(m);
    }
    m->cur = m->start;
}

/* Move to set s (>= 0), emptying the cache first if it is over budget. */
static void bn__gm_move(bn_grammar_matcher *m, int32_t s) {
    m->cur = s;
    if (bn__gm_bytes(m) > m->cache_limit) bn__gm_flush(m);
}

BN_API int bn_grammar_matcher_accept_bytes(bn_grammar_matcher *m, const char *bytes, size_t n) {
    int32_t s = bn__gm_run(m, m->cur, bytes, n);
    if (s < 0) return 0;
    bn__gm_move(m, s);
    return 1;
}

BN_API int bn_grammar_matcher_can_end(const bn_grammar_matcher *m) { return m->cur >= 0 && m->sets[m->cur].accepting; }

BN_API int bn_grammar_matcher_can_continue(const bn_grammar_matcher *m) { return m->cur >= 0 && m->sets[m->cur].n > 0; }

/* ==== JSON Schema -> GBNF ===================================================

   Each schema becomes a rule; the JSON building blocks (string, number, ...)
   are written once at the end, for those used. Whitespace between tokens is
   bounded (a space, or a newline and up to 20 blanks) so that a model cannot
   fill its whole output with it. */

enum {
    BN__JS_WS = 1, BN__JS_VALUE = 2, BN__JS_STRING = 4, BN__JS_NUMBER = 8, BN__JS_INTEGER = 16, BN__JS_BOOLEAN = 32,
    BN__JS_NULL = 64, BN__JS_CHAR = 128, BN__JS_DATE = 256, BN__JS_TIME = 512, BN__JS_UUID = 1024
};

static const char *const bn__js_prims[] = {
    "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n",
    "value ::= object | array | string | number | boolean | null\n"
    "object ::= \"{\" ws ( member ( \",\" ws member )* )? \"}\"\n"
    "member ::= string ws \":\" ws value ws\n"
    "array ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n",
    "string ::= \"\\\"\" char* \"\\\"\"\n",
    "number ::= integer ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?\n",
    "integer ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n",
    "boolean ::= \"true\" | \"false\"\n",
    "null ::= \"null\"\n",
    /* a character of a JSON string: \u escapes of surrogates left out, so that every char is one code point */
    "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" ( [0-9a-cA-CefEF] hex hex hex | [dD] [0-7] hex hex ) )\n"
    "hex ::= [0-9a-fA-F]\n",
    /* RFC 3339 full-date (years 1000-9999, February up to the 28th: a subset that is always valid) */
    "date ::= [1-9] [0-9]{3} \"-\" ( ( \"0\" [13578] | \"1\" [02] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"3\" [01] )"
    " | ( \"0\" [469] | \"11\" ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"30\" ) | \"02-\" ( \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8] ) )\n",
    /* RFC 3339 full-time (no leap second) */
    "time ::= ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,9} )?"
    " ( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )\n",
    "uuid ::= hex{8} \"-\" hex{4} \"-\" hex{4} \"-\" hex{4} \"-\" hex{12}\n"};

/* What each building block uses in turn. */
static const unsigned bn__js_prim_needs[] = {
    0, BN__JS_WS | BN__JS_STRING | BN__JS_NUMBER | BN__JS_BOOLEAN | BN__JS_NULL, BN__JS_CHAR, BN__JS_INTEGER, 0, 0, 0, 0,
    0, 0, BN__JS_CHAR};

static const char *const bn__js_prim_names[] = {"ws", "value", "object", "member", "array", "string", "number",
                                               "integer", "boolean", "null", "char", "hex", "date", "time", "uuid",
                                               "root"};

typedef struct bn__js {
    const bn_json *root;
    bn__buf out;
    char **names;            /* rule names in use */
    int n_names, cap_names;
    const bn_json **refs;    /* $ref strings already given a rule, and its index */
    int *ref_rule;
    int *ref_inside;         /* while its target is being converted: the value of `inside` then; else -1 */
    int n_refs, cap_refs;
    int inside;              /* how many objects and arrays the conversion is inside */
    unsigned need;
    char path[400];          /* where in the schema, for errors (a JSON pointer) */
    size_t path_len;
    int depth;
    bn_error *err;
    bn_status st;
} bn__js;

static int bn__js_fail(bn__js *js, bn_status st, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int bn__js_fail(bn__js *js, bn_status st, const char *fmt, ...) {
    if (js->st == BN_OK) {
        char msg[300];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        js->st = bn_errorf(js->err, st, "json schema at %s: %s", js->path_len ? js->path : "/", msg);
    }
    return -1;
}

static int bn__js_nomem(bn__js *js) { return bn__js_fail(js, BN_ERR_NOMEM, "out of memory"); }

/* Append "/a" (a JSON pointer step) to the error path; returns the old length to restore. */
static size_t bn__js_push(bn__js *js, const char *a, size_t n) {
    size_t old = js->path_len;
    if (js->path_len + n + 2 < sizeof js->path) {
        js->path[js->path_len++] = '/';
        memcpy(js->path + js->path_len, a, n);
        js->path_len += n;
        js->path[js->path_len] = 0;
    }
    return old;
}

static void bn__js_pop(bn__js *js, size_t old) {
    js->path_len = old;
    js->path[old] = 0;
}

/* A new rule name from hint ([a-zA-Z0-9-], made unique with a number); its index, or -1. */
static int bn__js_name(bn__js *js, const char *hint, size_t n) {
    char base[48], name[64];
    size_t i, len = 0;
    int k, j;
    for (i = 0; i < n && len < 40; i++) {
        char c = hint[i];
        base[len++] = bn__g_is_name_char(c) && c != '_' ? c : '-';
    }
    if (!len) base[len++] = 'r';
    base[len] = 0;
    for (k = 0;; k++) {
        int taken = 0;
        if (k) snprintf(name, sizeof name, "%s-%d", base, k);
        else snprintf(name, sizeof name, "%s", base);
        for (j = 0; j < js->n_names && !taken; j++) taken = !strcmp(js->names[j], name);
        for (j = 0; j < (int)(sizeof bn__js_prim_names / sizeof *bn__js_prim_names) && !taken; j++)
            taken = !strcmp(bn__js_prim_names[j], name);
        if (!taken) break;
    }
    if (js->n_names == js->cap_names) {
        int cap = js->cap_names ? js->cap_names * 2 : 32;
        char **nn = (char **)BN_REALLOC(js->names, sizeof(char *) * (size_t)cap);
        if (!nn) return bn__js_nomem(js);
        js->names = nn;
        js->cap_names = cap;
    }
    js->names[js->n_names] = bn__strndup(name, strlen(name));
    if (!js->names[js->n_names]) return bn__js_nomem(js);
    return js->n_names++;
}

/* s[0..n) in double quotes, '"' and '\\' escaped, appended to b: a GBNF literal
   (controls as \xHH; UTF-8 passes through) or, with json, a JSON string (controls as \u00HH). */
static int bn__js_quote(bn__buf *b, const char *s, size_t n, int json) {
    size_t i;
    int ok = bn__buf_add(b, "\"", 1);
    for (i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            ok = bn__buf_add(b, esc, 2);
        } else if (c < 0x20 || (c == 0x7f && !json)) {
            snprintf(esc, sizeof esc, json ? "\\u%04x" : "\\x%02X", c);
            ok = bn__buf_adds(b, esc);
        } else {
            ok = bn__buf_add(b, s + i, 1);
        }
    }
    return ok && bn__buf_add(b, "\"", 1);
}

static int bn__js_lit(bn__buf *b, const char *s, size_t n) { return bn__js_quote(b, s, n, 0); }
static int bn__js_json_string(bn__buf *b, const char *s, size_t n) { return bn__js_quote(b, s, n, 1); }

/* A JSON value as compact JSON text. */
static int bn__js_json_text(bn__buf *b, const bn_json *v) {
    char num[40];
    int i, ok = 1;
    switch (v->type) {
    case BN_JSON_NULL: return bn__buf_adds(b, "null");
    case BN_JSON_FALSE: return bn__buf_adds(b, "false");
    case BN_JSON_TRUE: return bn__buf_adds(b, "true");
    case BN_JSON_NUMBER:
        if (v->num == floor(v->num) && fabs(v->num) < 9007199254740992.0) snprintf(num, sizeof num, "%.0f", v->num);
        else snprintf(num, sizeof num, "%.17g", v->num);
        return bn__buf_adds(b, num);
    case BN_JSON_STRING: return bn__js_json_string(b, v->str, (size_t)v->len);
    case BN_JSON_ARRAY:
    case BN_JSON_OBJECT:
        ok = bn__buf_add(b, v->type == BN_JSON_ARRAY ? "[" : "{", 1);
        for (i = 0; ok && i < v->len; i++) {
            if (i) ok = bn__buf_add(b, ",", 1);
            if (ok && v->type == BN_JSON_OBJECT)
                ok = bn__js_json_string(b, v->child[i].key, (size_t)v->child[i].key_len) && bn__buf_add(b, ":", 1);
            if (ok) ok = bn__js_json_text(b, &v->child[i]);
        }
        return ok && bn__buf_add(b, v->type == BN_JSON_ARRAY ? "]" : "}", 1);
    }
    return 0;
}

/* The GBNF literal that produces exactly the JSON text of v. */
static int bn__js_value_lit(bn__buf *b, const bn_json *v) {
    bn__buf t;
    int ok;
    memset(&t, 0, sizeof t);
    ok = bn__js_json_text(&t, v) && bn__js_lit(b, t.p, t.len);
    BN_FREE(t.p);
    return ok;
}

/* Write "name ::= body\n"; frees body. Returns idx, or -1. */
static int bn__js_emit(bn__js *js, int idx, bn__buf *body) {
    int ok = idx >= 0 && body->p && bn__buf_adds(&js->out, js->names[idx]) && bn__buf_adds(&js->out, " ::= ") &&
             bn__buf_add(&js->out, body->p, body->len) && bn__buf_add(&js->out, "\n", 1);
    BN_FREE(body->p);
    memset(body, 0, sizeof *body);
    if (idx < 0) return -1;
    return ok ? idx : bn__js_nomem(js);
}

static const char *const bn__js_annotations[] = {"title", "description", "$schema", "$id", "$comment", "default",
                                                 "examples", "deprecated", "readOnly", "writeOnly", "$anchor",
                                                 "$defs", "definitions"};
static const char *const bn__js_keywords[] = {"type", "properties", "required", "additionalProperties", "items",
                                              "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf",
                                              "$ref", "minLength", "maxLength", "pattern", "format", "uniqueItems"};

static int bn__js_key_in(const bn_json *m, const char *const *list, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if ((size_t)m->key_len == strlen(list[i]) && !memcmp(m->key, list[i], (size_t)m->key_len)) return 1;
    return 0;
}

#define BN__JS_IN(m, list) bn__js_key_in(m, list, sizeof list / sizeof *list)

/* Refuse keywords outside the subset, naming them. */
static int bn__js_check_keywords(bn__js *js, const bn_json *s) {
    int i;
    for (i = 0; i < s->len; i++) {
        const bn_json *m = &s->child[i];
        if (BN__JS_IN(m, bn__js_annotations) || BN__JS_IN(m, bn__js_keywords)) continue;
        return bn__js_fail(js, BN_ERR_UNSUPPORTED, "keyword '%.*s' is not supported", BN_MIN(m->key_len, 60), m->key);
    }
    return 0;
}

/* The only keywords of s besides annotations are in allowed[]? */
static int bn__js_only(const bn_json *s, const char *const *allowed, size_t n, const char **other) {
    int i;
    for (i = 0; i < s->len; i++)
        if (!BN__JS_IN(&s->child[i], bn__js_annotations) && !bn__js_key_in(&s->child[i], allowed, n)) {
            *other = s->child[i].key;
            return 0;
        }
    return 1;
}

/* A non-negative integer keyword, or dflt when absent; -2 on error. */
static int bn__js_count(bn__js *js, const bn_json *s, const char *key, int dflt) {
    const bn_json *v = bn_json_get(s, key);
    if (!v) return dflt;
    if (!bn_json_is_int(v) || v->num < 0 || v->num > BN__G_MAX_REPEAT)
        return bn__js_fail(js, BN_ERR_UNSUPPORTED, "'%s' must be an integer from 0 to %d", key, BN__G_MAX_REPEAT) - 1;
    return (int)v->num;
}

/* "{m,n}" (n < 0: unbounded) after x: appended to b as x{m,n}. */
static int bn__js_repeat(bn__buf *b, int min, int max) {
    char q[40];
    if (max < 0) snprintf(q, sizeof q, "{%d,}", min);
    else snprintf(q, sizeof q, "{%d,%d}", min, max);
    return bn__buf_adds(b, q);
}

static int bn__js_prim(bn__js *js, unsigned flag) {
    js->need |= flag;
    return 0;
}

/* ---- simple regular expressions (string patterns) ---- */

typedef struct bn__jsre {
    bn__js *js;
    const char *s;
    size_t n, pos;
    bn__buf *b;
    int depth;
} bn__jsre;

static int bn__jsre_fail(bn__jsre *re, const char *msg) {
    return bn__js_fail(re->js, BN_ERR_UNSUPPORTED, "pattern: %s at character %lu (only simple regular expressions: "
                                                   "literals, classes, ., groups, |, * + ? {m,n}, ^ and $ at the ends)",
                       msg, (unsigned long)re->pos + 1);
}

/* Code point ranges of a shorthand class (\d \w \s; upper case: the complement) added to r. */
static int bn__jsre_shorthand(bn__gparser *gp, bn__granges *r, char c) {
    bn__granges t;
    int ok = 1, i;
    char lc = (char)(c | 0x20);
    memset(&t, 0, sizeof t);
    if (lc == 'd') {
        ok = bn__granges_add(gp, &t, '0', '9');
    } else if (lc == 'w') {
        ok = bn__granges_add(gp, &t, '0', '9') && bn__granges_add(gp, &t, 'A', 'Z') &&
             bn__granges_add(gp, &t, 'a', 'z') && bn__granges_add(gp, &t, '_', '_');
    } else { /* ECMAScript's \s */
        ok = bn__granges_add(gp, &t, '\t', '\r') && bn__granges_add(gp, &t, ' ', ' ') &&
             bn__granges_add(gp, &t, 0xA0, 0xA0) && bn__granges_add(gp, &t, 0x1680, 0x1680) &&
             bn__granges_add(gp, &t, 0x2000, 0x200A) && bn__granges_add(gp, &t, 0x2028, 0x2029) &&
             bn__granges_add(gp, &t, 0x202F, 0x202F) && bn__granges_add(gp, &t, 0x205F, 0x205F) &&
             bn__granges_add(gp, &t, 0x3000, 0x3000) && bn__granges_add(gp, &t, 0xFEFF, 0xFEFF);
    }
    if (ok && c != lc) ok = bn__granges_normalize(gp, &t, 1);
    for (i = 0; ok && i < t.n; i++) ok = bn__granges_add(gp, r, t.p[2 * i], t.p[2 * i + 1]);
    BN_FREE(t.p);
    return ok;
}

/* One character of a pattern (an escape or UTF-8) into *cp, or, for a
   shorthand class (\d ...) when r is given, its ranges added to r and *cp = ~0. */
static int bn__jsre_char(bn__jsre *re, bn__gparser *gp, bn__granges *r, uint32_t *cp) {
    size_t l, bad;
    char c;
    if (re->pos >= re->n) return bn__jsre_fail(re, "unexpected end");
    c = re->s[re->pos];
    if (c != '\\') {
        if (!bn__utf8_check((const unsigned char *)re->s + re->pos, re->n - re->pos, &bad))
            return bn__jsre_fail(re, "invalid UTF-8");
        *cp = bn__utf8_next(re->s + re->pos, re->n - re->pos, &l);
        re->pos += l;
        return 0;
    }
    if (re->pos + 1 >= re->n) return bn__jsre_fail(re, "'\\' at the end");
    c = re->s[re->pos + 1];
    re->pos += 2;
    switch (c) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
        *cp = ~0u;
        if (!r) return bn__jsre_fail(re, "a class escape as the end of a range");
        return bn__jsre_shorthand(gp, r, c) ? 0 : bn__js_nomem(re->js);
    case 'n': *cp = '\n'; return 0;
    case 'r': *cp = '\r'; return 0;
    case 't': *cp = '\t'; return 0;
    case 'f': *cp = '\f'; return 0;
    case 'v': *cp = '\v'; return 0;
    case 'x': case 'u': {
        int digits = c == 'x' ? 2 : 4, i;
        uint32_t v = 0;
        for (i = 0; i < digits; i++) {
            int h = re->pos < re->n ? bn__g_hex(re->s[re->pos]) : -1;
            if (h < 0) return bn__jsre_fail(re, "a \\x or \\u escape without its hexadecimal digits");
            v = v * 16 + (uint32_t)h;
            re->pos++;
        }
        *cp = v;
        return 0;
    }
    default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            return bn__jsre_fail(re, "an escape that is not supported (backreference, word boundary, ...)");
        *cp = (unsigned char)c; /* \. \\ \/ \- \[ ... : the character itself */
        return 0;
    }
}

/* A code point inside a GBNF class: printable ASCII as itself, others escaped. */
static int bn__js_class_char(bn__buf *b, uint32_t cp) {
    char tmp[16];
    if (cp > 0x20 && cp < 0x7f && !strchr("]\\^-\"", (int)cp)) {
        tmp[0] = (char)cp;
        return bn__buf_add(b, tmp, 1);
    }
    snprintf(tmp, sizeof tmp, cp < 0x10000 ? "\\u%04lX" : "\\U%08lX", (unsigned long)cp);
    return bn__buf_adds(b, tmp);
}

/* Append the GBNF for the JSON encoding of the code points in r (normalized):
   the ones that need no escape as one class, '"' and '\\' as their escapes.
   Control characters are left out: the strings made are a subset of the
   pattern's, all of which match it. */
static int bn__jsre_emit_class(bn__jsre *re, const bn__granges *r) {
    bn__buf *b = re->b;
    int i, has_quote = 0, has_bslash = 0, any = 0, ok = bn__buf_adds(b, "(");
    for (i = 0; ok && i < r->n; i++) {
        uint32_t lo = r->p[2 * i], hi = r->p[2 * i + 1], a = lo < 0x20 ? 0x20 : lo;
        has_quote |= lo <= '"' && '"' <= hi;
        has_bslash |= lo <= '\\' && '\\' <= hi;
        while (ok && a <= hi) { /* the piece from a up to the next '"' or '\\' */
            uint32_t end = hi;
            if (a == '"' || a == '\\') end = a;
            else if (a < '"' && '"' <= end) end = '"' - 1;
            else if (a < '\\' && '\\' <= end) end = '\\' - 1;
            if (a != '"' && a != '\\') {
                ok = bn__buf_adds(b, any ? "" : " [") && bn__js_class_char(b, a) &&
                     (a == end || (bn__buf_adds(b, "-") && bn__js_class_char(b, end)));
                any = 1;
            }
            a = end + 1;
        }
    }
    if (ok && any) ok = bn__buf_adds(b, "]");
    if (ok && has_quote) ok = bn__buf_adds(b, any ? " | \"\\\\\\\"\"" : " \"\\\\\\\"\"");
    if (ok && has_bslash) ok = bn__buf_adds(b, any || has_quote ? " | \"\\\\\\\\\"" : " \"\\\\\\\\\"");
    if (ok && !any && !has_quote && !has_bslash) return bn__jsre_fail(re, "a class of control characters only");
    return ok && bn__buf_adds(b, " )") ? 0 : bn__js_nomem(re->js);
}

/* A class [...], '.', an escape or a literal character at re->pos. */
static int bn__jsre_atom(bn__jsre *re) {
    bn__gparser gp;
    bn__granges r;
    uint32_t cp;
    int negate = 0, st = 0;
    char c = re->s[re->pos];
    memset(&gp, 0, sizeof gp);
    memset(&r, 0, sizeof r);
    if (c == '.') { /* any character but the line terminators */
        re->pos++;
        negate = 1;
        if (!bn__granges_add(&gp, &r, '\n', '\n') || !bn__granges_add(&gp, &r, '\r', '\r') ||
            !bn__granges_add(&gp, &r, 0x2028, 0x2029))
            st = -1;
    } else if (c == '[') {
        re->pos++;
        if (re->pos < re->n && re->s[re->pos] == '^') negate = 1, re->pos++;
        for (;;) {
            uint32_t hi;
            if (re->pos >= re->n) {
                st = bn__jsre_fail(re, "unterminated class");
                break;
            }
            if (re->s[re->pos] == ']') {
                re->pos++;
                break;
            }
            if ((st = bn__jsre_char(re, &gp, &r, &cp)) < 0) break;
            if (cp == ~0u) continue;
            hi = cp;
            if (re->pos + 1 < re->n && re->s[re->pos] == '-' && re->s[re->pos + 1] != ']') {
                re->pos++;
                if ((st = bn__jsre_char(re, &gp, NULL, &hi)) < 0) break;
                if (hi < cp) {
                    st = bn__jsre_fail(re, "a range that ends before it starts");
                    break;
                }
            }
            if (!bn__granges_add(&gp, &r, cp, hi)) {
                st = -1;
                break;
            }
        }
    } else if ((st = bn__jsre_char(re, &gp, &r, &cp)) == 0 && cp != ~0u && !bn__granges_add(&gp, &r, cp, cp)) {
        st = -1;
    }
    if (st == 0 && !bn__granges_normalize(&gp, &r, negate)) st = -1;
    if (st == 0) st = bn__jsre_emit_class(re, &r);
    BN_FREE(r.p);
    if (gp.st != BN_OK) return bn__js_nomem(re->js);
    return st;
}

static int bn__jsre_alt(bn__jsre *re, int top, int *nullable);

/* A quantifier after an atom, copied as GBNF (a lazy '?' after it changes nothing here).
   *nullable: on entry whether the atom can match nothing, on return whether the
   quantified atom can. A repetition of an atom that can match nothing would be
   a rule that reaches itself without a character, which grammars refuse. */
static int bn__jsre_quant(bn__jsre *re, int *nullable) {
    char c;
    if (re->pos >= re->n) return 0;
    c = re->s[re->pos];
    if (*nullable && c != '?')
        return bn__jsre_fail(re, "a repetition of something that can match nothing, such as (a|)+");
    if (c == '*' || c == '+' || c == '?') {
        *nullable = c != '+';
        re->pos++;
        if (!bn__buf_add(re->b, &c, 1)) return bn__js_nomem(re->js);
    } else if (c == '{') {
        size_t at = re->pos, end = at + 1, comma = 0;
        long min, max;
        while (end < re->n && ((re->s[end] >= '0' && re->s[end] <= '9') || re->s[end] == ',')) {
            if (re->s[end] == ',') {
                if (comma) break;
                comma = end;
            }
            end++;
        }
        if (end >= re->n || re->s[end] != '}' || end == at + 1 || comma == at + 1 || end - at > 14)
            return bn__jsre_fail(re, "a '{' that is not a quantifier {m}, {m,} or {m,n}");
        min = strtol(re->s + at + 1, NULL, 10);
        max = !comma ? min : comma + 1 < end ? strtol(re->s + comma + 1, NULL, 10) : -1;
        if (min > BN__G_MAX_REPEAT || max > BN__G_MAX_REPEAT || (max >= 0 && max < min))
            return bn__jsre_fail(re, "a quantifier out of range");
        re->pos = end + 1;
        *nullable = min == 0;
        if (!bn__js_repeat(re->b, (int)min, (int)max)) return bn__js_nomem(re->js);
    } else {
        return 0;
    }
    if (re->pos < re->n && re->s[re->pos] == '?') re->pos++;
    if (re->pos < re->n && (re->s[re->pos] == '*' || re->s[re->pos] == '+' || re->s[re->pos] == '{'))
        return bn__jsre_fail(re, "two quantifiers in a row");
    return 0;
}

/* A sequence of atoms up to '|' or ')' (or the end). At the top, ^ may open
   it and $ close it; without them any characters may come before or after
   (a JSON Schema pattern matches anywhere in the string). */
static int bn__jsre_seq(bn__jsre *re, int top, int *nullable) {
    int anchored_end = 0, item;
    *nullable = 1;
    if (top && re->pos < re->n && re->s[re->pos] == '^') re->pos++;
    else if (top && !bn__buf_adds(re->b, " char*")) return bn__js_nomem(re->js);
    while (re->pos < re->n) {
        char c = re->s[re->pos];
        if (c == '|' || c == ')') break;
        if (c == '$') {
            re->pos++;
            if (!top || (re->pos < re->n && re->s[re->pos] != '|')) return bn__jsre_fail(re, "'$' before the end");
            anchored_end = 1;
            break;
        }
        if (c == '^') return bn__jsre_fail(re, "'^' after the start");
        if (c == '*' || c == '+' || c == '?' || c == '{') return bn__jsre_fail(re, "a quantifier without an atom");
        if (!bn__buf_adds(re->b, " ")) return bn__js_nomem(re->js);
        if (c == '(') {
            if (++re->depth > BN__G_MAX_DEPTH) return bn__jsre_fail(re, "groups nested too deep");
            re->pos++;
            if (re->pos < re->n && re->s[re->pos] == '?') {
                if (re->pos + 1 >= re->n || re->s[re->pos + 1] != ':')
                    return bn__jsre_fail(re, "a lookaround or named group");
                re->pos += 2;
            }
            if (!bn__buf_adds(re->b, "(") || bn__jsre_alt(re, 0, &item) < 0) return re->js->st ? -1 : bn__js_nomem(re->js);
            if (re->pos >= re->n || re->s[re->pos] != ')') return bn__jsre_fail(re, "unbalanced '('");
            re->pos++;
            re->depth--;
            if (!bn__buf_adds(re->b, " )")) return bn__js_nomem(re->js);
        } else if (bn__jsre_atom(re) < 0) {
            return -1;
        } else {
            item = 0;
        }
        if (bn__jsre_quant(re, &item) < 0) return -1;
        *nullable &= item;
    }
    if (top && !anchored_end && !bn__buf_adds(re->b, " char*")) return bn__js_nomem(re->js);
    return 0;
}

static int bn__jsre_alt(bn__jsre *re, int top, int *nullable) {
    int seq;
    if (bn__jsre_seq(re, top, nullable) < 0) return -1;
    while (re->pos < re->n && re->s[re->pos] == '|') {
        re->pos++;
        if (!bn__buf_adds(re->b, " |")) return bn__js_nomem(re->js);
        if (bn__jsre_seq(re, top, &seq) < 0) return -1;
        *nullable |= seq;
    }
    if (top && re->pos < re->n) return bn__jsre_fail(re, "unbalanced ')'");
    return 0;
}

/* ---- schemas ---- */

static int bn__js_schema(bn__js *js, const bn_json *s, const char *hint);

/* Remember that the $ref string ref names rule idx. */
static int bn__js_add_ref(bn__js *js, const bn_json *ref, int idx) {
    if (js->n_refs == js->cap_refs) {
        int cap = js->cap_refs ? js->cap_refs * 2 : 16;
        const bn_json **nr = (const bn_json **)BN_REALLOC((void *)js->refs, sizeof(bn_json *) * (size_t)cap);
        int *ni;
        if (!nr) return bn__js_nomem(js);
        js->refs = nr;
        ni = (int *)BN_REALLOC(js->ref_rule, sizeof(int) * (size_t)cap);
        if (!ni) return bn__js_nomem(js);
        js->ref_rule = ni;
        ni = (int *)BN_REALLOC(js->ref_inside, sizeof(int) * (size_t)cap);
        if (!ni) return bn__js_nomem(js);
        js->ref_inside = ni;
        js->cap_refs = cap;
    }
    js->refs[js->n_refs] = ref;
    js->ref_inside[js->n_refs] = js->inside;
    js->ref_rule[js->n_refs++] = idx;
    return 0;
}

/* What a JSON pointer ("#", "#/$defs/x", with ~0 and ~1) points to in the document, or NULL. */
static const bn_json *bn__js_resolve(const bn_json *t, const char *s, size_t n) {
    size_t i = 1;
    if (!n || s[0] != '#' || (n > 1 && s[1] != '/')) return NULL;
    while (i < n && t) { /* each "/token" */
        char tok[256];
        size_t tl = 0;
        int j;
        const bn_json *next = NULL;
        i++;
        while (i < n && s[i] != '/') {
            char c = s[i++];
            if (c == '~' && i < n && (s[i] == '0' || s[i] == '1')) c = s[i++] == '0' ? '~' : '/';
            if (tl == sizeof tok - 1) return NULL;
            tok[tl++] = c;
        }
        tok[tl] = 0;
        if (t->type == BN_JSON_OBJECT) {
            for (j = 0; j < t->len && !next; j++)
                if ((size_t)t->child[j].key_len == tl && !memcmp(t->child[j].key, tok, tl)) next = &t->child[j];
        } else if (t->type == BN_JSON_ARRAY && tl && strspn(tok, "0123456789") == tl && tl < 9) {
            j = atoi(tok);
            if (j < t->len) next = &t->child[j];
        }
        t = next;
    }
    return t;
}

/* The rule of the target of a $ref; each target gets one rule, so references may recurse,
   but only from inside an object or array that the target opened: a target that reaches
   itself before its first character ({"$ref": "#"}, or through anyOf) has no finite value,
   and its grammar would be left-recursive. */
static int bn__js_ref(bn__js *js, const bn_json *ref) {
    const bn_json *t;
    const char *s = ref->str, *last;
    size_t n = (size_t)ref->len, old;
    bn__buf body;
    int k, idx, sub;
    for (k = 0; k < js->n_refs; k++)
        if (js->refs[k]->len == ref->len && !memcmp(js->refs[k]->str, s, n)) {
            if (js->ref_inside[k] == js->inside)
                return bn__js_fail(js, BN_ERR_FORMAT,
                                   "$ref '%.*s' refers to itself before any character of its value (a loop that matches nothing)",
                                   (int)BN_MIN(n, 80), s);
            return js->ref_rule[k];
        }
    if (!n || s[0] != '#')
        return bn__js_fail(js, BN_ERR_UNSUPPORTED, "$ref '%.*s': only references within the schema (#/...) are supported",
                           (int)BN_MIN(n, 80), s);
    t = bn__js_resolve(js->root, s, n);
    if (!t) return bn__js_fail(js, BN_ERR_FORMAT, "$ref '%.*s' points to nothing", (int)BN_MIN(n, 80), s);
    for (last = s + n; last > s && last[-1] != '/' && last[-1] != '#';) last--;
    idx = bn__js_name(js, last, (size_t)(s + n - last));
    if (idx < 0 || bn__js_add_ref(js, ref, idx) < 0) return -1;
    k = js->n_refs - 1;
    old = js->path_len;
    js->path_len = 0;
    if (n > 2) bn__js_push(js, s + 2, n - 2);
    sub = bn__js_schema(js, t, js->names[idx]);
    bn__js_pop(js, old);
    js->ref_inside[k] = -1;
    if (sub < 0) return -1;
    memset(&body, 0, sizeof body);
    if (!bn__buf_adds(&body, js->names[sub])) return bn__js_nomem(js);
    return bn__js_emit(js, idx, &body);
}

/* v is an instance of JSON type `type`? (for filtering enum values) */
static int bn__js_type_is(const bn_json *v, const char *type) {
    if (!strcmp(type, "integer")) return v->type == BN_JSON_NUMBER && v->num == floor(v->num);
    if (!strcmp(type, "number")) return v->type == BN_JSON_NUMBER;
    if (!strcmp(type, "string")) return v->type == BN_JSON_STRING;
    if (!strcmp(type, "boolean")) return v->type == BN_JSON_TRUE || v->type == BN_JSON_FALSE;
    if (!strcmp(type, "null")) return v->type == BN_JSON_NULL;
    if (!strcmp(type, "array")) return v->type == BN_JSON_ARRAY;
    return v->type == BN_JSON_OBJECT;
}

/* The rule of sub-schema v of key `key` (and index i >= 0 inside it), named from the parent. */
static int bn__js_sub(bn__js *js, const bn_json *v, int parent, const char *key, const char *suffix, int i) {
    char hint[96], num[16];
    size_t old = bn__js_push(js, key, strlen(key));
    int r;
    if (i >= 0) {
        snprintf(num, sizeof num, "%d", i);
        bn__js_push(js, num, strlen(num));
    }
    snprintf(hint, sizeof hint, "%s-%s%s", js->names[parent], suffix, i >= 0 ? num : "");
    r = bn__js_schema(js, v, hint);
    bn__js_pop(js, old);
    return r;
}

static int bn__js_is_required(const bn_json *req, const bn_json *prop) {
    int j;
    for (j = 0; req && j < req->len; j++)
        if (req->child[j].type == BN_JSON_STRING && prop->key_len == req->child[j].len &&
            !memcmp(prop->key, req->child[j].str, (size_t)prop->key_len))
            return 1;
    return 0;
}

/* An object with the listed properties in order, the optional ones
   optional. Rule f<i> writes properties i.. when none came before, r<i>
   when one did (so each one's comma is right): 2n small rules. */
static int bn__js_properties(bn__js *js, const bn_json *s, const bn_json *props, int idx, bn__buf *body) {
    const bn_json *req = bn_json_get(s, "required");
    int n = props->len, i, k, *val, *rule, ok = 1;
    if (req && req->type != BN_JSON_ARRAY) return bn__js_fail(js, BN_ERR_FORMAT, "'required' must be an array");
    for (i = 0; req && i < req->len; i++) {
        int j, found = 0;
        if (req->child[i].type != BN_JSON_STRING) return bn__js_fail(js, BN_ERR_FORMAT, "'required' must hold strings");
        for (j = 0; j < n && !found; j++)
            found = props->child[j].key_len == req->child[i].len &&
                    !memcmp(props->child[j].key, req->child[i].str, (size_t)req->child[i].len);
        if (!found)
            return bn__js_fail(js, BN_ERR_UNSUPPORTED, "required property '%.*s' is not in 'properties'",
                               BN_MIN(req->child[i].len, 60), req->child[i].str);
    }
    val = (int *)bn__zalloc(sizeof(int) * (size_t)(3 * n + 3));
    if (!val) return bn__js_nomem(js);
    rule = val + n + 1; /* rule[2 * i + k]: k = 0 first, 1 after one */
    for (i = 0; i < n && ok; i++) {
        size_t old = bn__js_push(js, "properties", 10);
        char hint[96];
        bn__js_push(js, props->child[i].key, (size_t)props->child[i].key_len);
        snprintf(hint, sizeof hint, "%s-%.*s", js->names[idx], BN_MIN(props->child[i].key_len, 32), props->child[i].key);
        val[i] = bn__js_schema(js, &props->child[i], hint);
        bn__js_pop(js, old);
        ok = val[i] >= 0;
    }
    for (i = n - 1; ok && i >= 0; i--) {
        int required = bn__js_is_required(req, &props->child[i]);
        for (k = 0; k < (i ? 2 : 1) && ok; k++) { /* (nothing comes before the first property) */
            bn__buf b, key;
            char hint[96];
            memset(&b, 0, sizeof b);
            memset(&key, 0, sizeof key);
            snprintf(hint, sizeof hint, "%s-%s%d", js->names[idx], k ? "r" : "f", i);
            rule[2 * i + k] = bn__js_name(js, hint, strlen(hint));
            if (rule[2 * i + k] < 0) break;
            ok = bn__buf_adds(&b, required ? "" : "( ") && bn__buf_adds(&b, k ? "\",\" ws " : "") &&
                 bn__js_json_string(&key, props->child[i].key, (size_t)props->child[i].key_len) &&
                 bn__js_lit(&b, key.p, key.len) && bn__buf_adds(&b, " ws \":\" ws ") &&
                 bn__buf_adds(&b, js->names[val[i]]) && bn__buf_adds(&b, " ws");
            if (ok && i + 1 < n) ok = bn__buf_adds(&b, " ") && bn__buf_adds(&b, js->names[rule[2 * (i + 1) + 1]]);
            if (ok && !required)
                ok = bn__buf_adds(&b, " ) | ") &&
                     bn__buf_adds(&b, i + 1 < n ? js->names[rule[2 * (i + 1) + k]] : "\"\"");
            BN_FREE(key.p);
            if (!ok) {
                BN_FREE(b.p);
                break;
            }
            ok = bn__js_emit(js, rule[2 * i + k], &b) >= 0;
        }
    }
    if (ok) ok = bn__buf_adds(body, "\"{\" ws ") && (n == 0 || bn__buf_adds(body, js->names[rule[0]])) &&
                 bn__buf_adds(body, " \"}\"");
    BN_FREE(val);
    if (!ok) return js->st ? -1 : bn__js_nomem(js);
    return 0;
}

static int bn__js_object(bn__js *js, const bn_json *s, int idx, bn__buf *body) {
    const bn_json *props = bn_json_get(s, "properties"), *add = bn_json_get(s, "additionalProperties");
    int val;
    if (props && props->type != BN_JSON_OBJECT) return bn__js_fail(js, BN_ERR_FORMAT, "'properties' must be an object");
    if (props) return bn__js_properties(js, s, props, idx, body);
    if (bn_json_get(s, "required") && bn_json_get(s, "required")->len > 0)
        return bn__js_fail(js, BN_ERR_UNSUPPORTED, "'required' without 'properties'");
    if (add && add->type == BN_JSON_FALSE) return bn__buf_adds(body, "\"{\" ws \"}\"") ? 0 : bn__js_nomem(js);
    if (add && add->type != BN_JSON_TRUE && add->type != BN_JSON_OBJECT)
        return bn__js_fail(js, BN_ERR_FORMAT, "'additionalProperties' must be a boolean or a schema");
    /* a map: any keys, values of the additionalProperties schema */
    if (add && add->type == BN_JSON_OBJECT) {
        if ((val = bn__js_sub(js, add, idx, "additionalProperties", "value", -1)) < 0) return -1;
    } else {
        val = -1;
        bn__js_prim(js, BN__JS_VALUE);
    }
    bn__js_prim(js, BN__JS_STRING);
    {
        const char *v = val >= 0 ? js->names[val] : "value";
        int ok = bn__buf_adds(body, "\"{\" ws ( string ws \":\" ws ") && bn__buf_adds(body, v) &&
                 bn__buf_adds(body, " ws ( \",\" ws string ws \":\" ws ") && bn__buf_adds(body, v) &&
                 bn__buf_adds(body, " ws )* )? \"}\"");
        return ok ? 0 : bn__js_nomem(js);
    }
}

static int bn__js_array(bn__js *js, const bn_json *s, int idx, bn__buf *body) {
    const bn_json *items = bn_json_get(s, "items"), *uniq = bn_json_get(s, "uniqueItems");
    int min = bn__js_count(js, s, "minItems", 0), max = bn__js_count(js, s, "maxItems", -1), it, ok;
    const char *name;
    if (min < -1 || max < -1) return -1;
    if (uniq && uniq->type == BN_JSON_TRUE) return bn__js_fail(js, BN_ERR_UNSUPPORTED, "keyword 'uniqueItems' is not supported");
    if (max >= 0 && max < min) return bn__js_fail(js, BN_ERR_FORMAT, "maxItems %d is below minItems %d", max, min);
    if (items && items->type == BN_JSON_ARRAY)
        return bn__js_fail(js, BN_ERR_UNSUPPORTED, "'items' as an array (tuples) is not supported");
    if (items && items->type != BN_JSON_TRUE) {
        if ((it = bn__js_sub(js, items, idx, "items", "item", -1)) < 0) return -1;
        name = js->names[it];
    } else {
        bn__js_prim(js, BN__JS_VALUE);
        name = "value";
    }
    if (max == 0) return bn__buf_adds(body, "\"[\" ws \"]\"") ? 0 : bn__js_nomem(js);
    ok = bn__buf_adds(body, "\"[\" ws ") && bn__buf_adds(body, min ? "" : "( ") && bn__buf_adds(body, name) &&
         bn__buf_adds(body, " ws ( \",\" ws ") && bn__buf_adds(body, name) && bn__buf_adds(body, " ws )") &&
         bn__js_repeat(body, min ? min - 1 : 0, max < 0 ? -1 : max - 1) && bn__buf_adds(body, min ? "" : " )?") &&
         bn__buf_adds(body, " \"]\"");
    return ok ? 0 : bn__js_nomem(js);
}

static int bn__js_string(bn__js *js, const bn_json *s, bn__buf *body) {
    const bn_json *pattern = bn_json_get(s, "pattern"), *format = bn_json_get(s, "format");
    int min = bn__js_count(js, s, "minLength", 0), max = bn__js_count(js, s, "maxLength", -1), ok;
    int lengths = bn_json_get(s, "minLength") || bn_json_get(s, "maxLength");
    if (min < -1 || max < -1) return -1;
    if (max >= 0 && max < min) return bn__js_fail(js, BN_ERR_FORMAT, "maxLength %d is below minLength %d", max, min);
    if ((pattern || format) && lengths)
        return bn__js_fail(js, BN_ERR_UNSUPPORTED, "minLength/maxLength together with %s is not supported",
                           pattern ? "pattern" : "format");
    if (pattern && format) return bn__js_fail(js, BN_ERR_UNSUPPORTED, "pattern together with format is not supported");
    bn__js_prim(js, BN__JS_CHAR);
    if (format) {
        static const char *const names[] = {"date", "time", "date-time", "uuid"};
        static const char *const rules[] = {"date", "time", "date \"T\" time", "uuid"};
        static const unsigned flags[] = {BN__JS_DATE, BN__JS_TIME, BN__JS_DATE | BN__JS_TIME, BN__JS_UUID};
        int f;
        if (format->type != BN_JSON_STRING) return bn__js_fail(js, BN_ERR_FORMAT, "'format' must be a string");
        for (f = 0; f < 4; f++)
            if (bn_json_streq(format, names[f])) {
                bn__js_prim(js, flags[f]);
                ok = bn__buf_adds(body, "\"\\\"\" ") && bn__buf_adds(body, rules[f]) && bn__buf_adds(body, " \"\\\"\"");
                return ok ? 0 : bn__js_nomem(js);
            }
        return bn__js_fail(js, BN_ERR_UNSUPPORTED, "format '%.*s' is not supported (date, time, date-time and uuid are)",
                           BN_MIN(format->len, 40), format->str);
    }
    if (pattern) {
        bn__jsre re;
        int nullable;
        if (pattern->type != BN_JSON_STRING) return bn__js_fail(js, BN_ERR_FORMAT, "'pattern' must be a string");
        memset(&re, 0, sizeof re);
        re.js = js;
        re.s = pattern->str;
        re.n = (size_t)pattern->len;
        re.b = body;
        if (!bn__buf_adds(body, "\"\\\"\" (")) return bn__js_nomem(js);
        if (bn__jsre_alt(&re, 1, &nullable) < 0) return -1;
        return bn__buf_adds(body, " ) \"\\\"\"") ? 0 : bn__js_nomem(js);
    }
    ok = bn__buf_adds(body, "\"\\\"\" char") && (lengths ? bn__js_repeat(body, min, max) : bn__buf_adds(body, "*")) &&
         bn__buf_adds(body, " \"\\\"\"");
    return ok ? 0 : bn__js_nomem(js);
}

/* The body for one JSON type. */
static int bn__js_typed(bn__js *js, const bn_json *s, const char *type, int idx, bn__buf *body) {
    static const char *const prims[] = {"number", "integer", "boolean", "null"};
    static const unsigned flags[] = {BN__JS_NUMBER, BN__JS_INTEGER, BN__JS_BOOLEAN, BN__JS_NULL};
    int i, r, object = !strcmp(type, "object");
    if (object || !strcmp(type, "array")) { /* what they hold comes after a "{" or "[" */
        js->inside++;
        r = object ? bn__js_object(js, s, idx, body) : bn__js_array(js, s, idx, body);
        js->inside--;
        return r;
    }
    if (!strcmp(type, "string")) return bn__js_string(js, s, body);
    for (i = 0; i < 4; i++)
        if (!strcmp(type, prims[i])) {
            bn__js_prim(js, flags[i]);
            return bn__buf_adds(body, prims[i]) ? 0 : bn__js_nomem(js);
        }
    return bn__js_fail(js, BN_ERR_FORMAT, "unknown type '%s'", type);
}

/* The type a schema without "type" describes, from its keywords ("" for any value). */
static const char *bn__js_implied_type(const bn_json *s) {
    if (bn_json_get(s, "properties") || bn_json_get(s, "additionalProperties") || bn_json_get(s, "required")) return "object";
    if (bn_json_get(s, "items") || bn_json_get(s, "minItems") || bn_json_get(s, "maxItems")) return "array";
    if (bn_json_get(s, "minLength") || bn_json_get(s, "maxLength") || bn_json_get(s, "pattern") || bn_json_get(s, "format"))
        return "string";
    return "";
}

/* v fits the schema's "type" (any when it has none)? For enum values. */
static int bn__js_fits_type(const bn_json *s, const bn_json *v) {
    const bn_json *type = bn_json_get(s, "type");
    int i;
    if (!type) return 1;
    if (type->type == BN_JSON_STRING) return bn__js_type_is(v, type->str);
    for (i = 0; type->type == BN_JSON_ARRAY && i < type->len; i++)
        if (type->child[i].type == BN_JSON_STRING && bn__js_type_is(v, type->child[i].str)) return 1;
    return 0;
}

/* enum: its values as literals (those that fit the schema's type). */
static int bn__js_enum(bn__js *js, const bn_json *s, const bn_json *values, bn__buf *body) {
    int i, any = 0;
    if (values->type != BN_JSON_ARRAY) return bn__js_fail(js, BN_ERR_FORMAT, "'enum' must be an array");
    for (i = 0; i < values->len; i++) {
        if (!bn__js_fits_type(s, &values->child[i])) continue;
        if ((any && !bn__buf_adds(body, " | ")) || !bn__js_value_lit(body, &values->child[i])) return bn__js_nomem(js);
        any = 1;
    }
    return any ? 0 : bn__js_fail(js, BN_ERR_UNSUPPORTED, "no value of 'enum' fits 'type'");
}

/* The rule for schema s (an object or a boolean); its index in js->names, or -1. */
static int bn__js_schema(bn__js *js, const bn_json *s, const char *hint) {
    static const char *const ref_ok[] = {"$ref"}, *const of_ok[] = {"anyOf", "oneOf"}, *const all_ok[] = {"allOf"};
    const bn_json *v, *type;
    const char *other = NULL;
    bn__buf body;
    int idx, i, st = 0;
    memset(&body, 0, sizeof body);
    if (js->st) return -1;
    if (s->type == BN_JSON_FALSE) return bn__js_fail(js, BN_ERR_UNSUPPORTED, "the schema false allows no value");
    if (s->type != BN_JSON_TRUE && s->type != BN_JSON_OBJECT)
        return bn__js_fail(js, BN_ERR_FORMAT, "a schema must be an object or a boolean");
    if (++js->depth > 100) return bn__js_fail(js, BN_ERR_UNSUPPORTED, "schemas nested deeper than 100");
    idx = bn__js_name(js, hint, strlen(hint));
    if (idx < 0) return -1;
    if (s->type == BN_JSON_TRUE) {
        bn__js_prim(js, BN__JS_VALUE);
        st = bn__buf_adds(&body, "value") ? 0 : bn__js_nomem(js);
    } else if (bn__js_check_keywords(js, s) < 0) {
        st = -1;
    } else if ((v = bn_json_get(s, "$ref")) != NULL) {
        int r;
        if (v->type != BN_JSON_STRING) st = bn__js_fail(js, BN_ERR_FORMAT, "'$ref' must be a string");
        else if (!bn__js_only(s, ref_ok, 1, &other))
            st = bn__js_fail(js, BN_ERR_UNSUPPORTED, "keyword '%s' beside '$ref' is not supported", other);
        else if ((r = bn__js_ref(js, v)) < 0) st = -1;
        else st = bn__buf_adds(&body, js->names[r]) ? 0 : bn__js_nomem(js);
    } else if ((v = bn_json_get(s, "const")) != NULL) {
        st = bn__js_value_lit(&body, v) ? 0 : bn__js_nomem(js);
    } else if ((v = bn_json_get(s, "enum")) != NULL) {
        st = bn__js_enum(js, s, v, &body);
    } else if ((v = bn_json_get(s, "anyOf")) != NULL || (v = bn_json_get(s, "oneOf")) != NULL) {
        const char *key = bn_json_get(s, "anyOf") ? "anyOf" : "oneOf";
        if (v->type != BN_JSON_ARRAY || v->len == 0) st = bn__js_fail(js, BN_ERR_FORMAT, "'%s' must be a non-empty array", key);
        else if (!bn__js_only(s, of_ok, 2, &other) || (bn_json_get(s, "anyOf") && bn_json_get(s, "oneOf")))
            st = bn__js_fail(js, BN_ERR_UNSUPPORTED, "keyword '%s' beside '%s' is not supported", other ? other : "oneOf", key);
        for (i = 0; st == 0 && i < v->len; i++) {
            int r = bn__js_sub(js, &v->child[i], idx, key, "", i);
            if (r < 0 || (i && !bn__buf_adds(&body, " | ")) || !bn__buf_adds(&body, js->names[r])) st = r < 0 ? -1 : bn__js_nomem(js);
        }
    } else if ((v = bn_json_get(s, "allOf")) != NULL) {
        int r;
        if (v->type != BN_JSON_ARRAY || v->len != 1 || !bn__js_only(s, all_ok, 1, &other))
            st = bn__js_fail(js, BN_ERR_UNSUPPORTED, "'allOf' is supported with one schema and nothing beside it");
        else if ((r = bn__js_sub(js, &v->child[0], idx, "allOf", "", 0)) < 0) st = -1;
        else st = bn__buf_adds(&body, js->names[r]) ? 0 : bn__js_nomem(js);
    } else if ((type = bn_json_get(s, "type")) != NULL) {
        if (type->type == BN_JSON_STRING) {
            st = bn__js_typed(js, s, type->str, idx, &body);
        } else if (type->type == BN_JSON_ARRAY && type->len > 0) {
            for (i = 0; st == 0 && i < type->len; i++) {
                if (type->child[i].type != BN_JSON_STRING) st = bn__js_fail(js, BN_ERR_FORMAT, "'type' must hold strings");
                else if ((i && !bn__buf_adds(&body, " | ")) || !bn__buf_adds(&body, "( ")) st = bn__js_nomem(js);
                else if ((st = bn__js_typed(js, s, type->child[i].str, idx, &body)) == 0 && !bn__buf_adds(&body, " )"))
                    st = bn__js_nomem(js);
            }
        } else {
            st = bn__js_fail(js, BN_ERR_FORMAT, "'type' must be a string or a non-empty array of strings");
        }
    } else if (*bn__js_implied_type(s)) {
        st = bn__js_typed(js, s, bn__js_implied_type(s), idx, &body);
    } else {
        bn__js_prim(js, BN__JS_VALUE);
        st = bn__buf_adds(&body, "value") ? 0 : bn__js_nomem(js);
    }
    js->depth--;
    if (st < 0) {
        BN_FREE(body.p);
        return -1;
    }
    return bn__js_emit(js, idx, &body);
}

BN_API bn_status bn_json_schema_node_to_gbnf(const bn_json *schema, char **gbnf, size_t *gbnf_len, bn_error *err) {
    bn__js js;
    bn__buf all;
    int r, i;
    *gbnf = NULL;
    if (gbnf_len) *gbnf_len = 0;
    if (!schema) return bn_errorf(err, BN_ERR_ARG, "json schema: no schema");
    memset(&js, 0, sizeof js);
    memset(&all, 0, sizeof all);
    js.root = schema;
    js.err = err;
    r = bn__js_schema(&js, schema, "schema");
    if (r >= 0) {
        unsigned need = js.need | BN__JS_WS, before;
        do { /* the building blocks the used ones use */
            before = need;
            for (i = 0; i < (int)(sizeof bn__js_prims / sizeof *bn__js_prims); i++)
                if (need & (1u << i)) need |= bn__js_prim_needs[i];
        } while (need != before);
        if (!bn__buf_adds(&all, "root ::= ws ") || !bn__buf_adds(&all, js.names[r]) || !bn__buf_adds(&all, "\n") ||
            !bn__buf_add(&all, js.out.p, js.out.len))
            bn__js_nomem(&js);
        for (i = 0; js.st == BN_OK && i < (int)(sizeof bn__js_prims / sizeof *bn__js_prims); i++)
            if ((need & (1u << i)) && !bn__buf_adds(&all, bn__js_prims[i])) bn__js_nomem(&js);
    }
    for (i = 0; i < js.n_names; i++) BN_FREE(js.names[i]);
    BN_FREE(js.names);
    BN_FREE((void *)js.refs);
    BN_FREE(js.ref_rule);
    BN_FREE(js.ref_inside);
    BN_FREE(js.out.p);
    if (js.st != BN_OK) {
        BN_FREE(all.p);
        return js.st;
    }
    *gbnf = all.p;
    if (gbnf_len) *gbnf_len = all.len;
    return BN_OK;
}

BN_API bn_status bn_json_schema_to_gbnf(const char *schema, size_t len, char **gbnf, size_t *gbnf_len, bn_error *err) {
    bn_json_doc doc;
    bn_status st;
    size_t at, bad, l;
    *gbnf = NULL;
    if (gbnf_len) *gbnf_len = 0;
    for (at = 0; schema && at < len; at += l) /* a schema is text: its strings become grammar literals */
        if (!(l = bn__utf8_check((const unsigned char *)schema + at, len - at, &bad)))
            return bn_errorf(err, BN_ERR_FORMAT, "json schema: invalid UTF-8 at byte offset %lu", (unsigned long)at);
    st = bn_json_parse(&doc, schema ? schema : "", schema ? len : 0, "json schema", err);
    if (st) return st;
    st = bn_json_schema_node_to_gbnf(doc.root, gbnf, gbnf_len, err);
    bn_json_free(&doc);
    return st;
}

/* ==== tokens ================================================================

   The vocabulary as a trie of the tokens' bytes, nodes in depth-first order:
   a node's subtree is the nodes up to its skip index, so a walk that finds a
   byte no stack accepts jumps over every token that begins with it. */

typedef struct bn__gnode {
    int32_t skip;      /* the first node after this one's subtree */
    int32_t tok_first; /* tokens whose bytes end here: ids[tok_first .. tok_first + tok_n) */
    int32_t tok_n;
    uint16_t depth;    /* bytes from the root */
    unsigned char byte, pad_;
} bn__gnode;

struct bn_grammar_vocab {
    int32_t n_tok;     /* ids [0, n_tok) have an entry below */
    char *bytes;
    size_t *off;
    int32_t *len;      /* -1: never allowed (special, empty or no token) */
    bn__gnode *nodes;
    int32_t n_nodes, max_depth;
    int32_t *ids;      /* token ids sorted by their bytes */
    int32_t *eos;
    int n_eos;
};

BN_API void bn_grammar_vocab_free(bn_grammar_vocab *v) {
    if (!v) return;
    BN_FREE(v->bytes);
    BN_FREE(v->off);
    BN_FREE(v->len);
    BN_FREE(v->nodes);
    BN_FREE(v->ids);
    BN_FREE(v->eos);
    BN_FREE(v);
}

typedef struct bn__gtok {
    uint64_t key; /* the first 8 bytes, big-endian, zero-padded: most comparisons end here */
    const char *p;
    int32_t len, id;
} bn__gtok;

static int bn__gtok_cmp(const void *a, const void *b) {
    const bn__gtok *x = (const bn__gtok *)a, *y = (const bn__gtok *)b;
    int c;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    c = x->len > 8 && y->len > 8 ? memcmp(x->p + 8, y->p + 8, (size_t)BN_MIN(x->len, y->len) - 8) : 0;
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The trie of the sorted tokens t[0..n). */
static int bn__gvocab_trie(bn_grammar_vocab *v, const bn__gtok *t, int32_t n, size_t total) {
    int32_t *path = BN_ALLOC(int32_t, v->max_depth + 1), depth = 0, i, d;
    v->nodes = BN_ALLOC(bn__gnode, total + 1);
    v->ids = BN_ALLOC(int32_t, n + 1);
    if (!path || !v->nodes || !v->ids) {
        BN_FREE(path);
        return 0;
    }
    memset(&v->nodes[0], 0, sizeof v->nodes[0]);
    v->n_nodes = 1;
    path[0] = 0;
    for (i = 0; i < n; i++) {
        int32_t lcp = 0;
        bn__gnode *leaf;
        if (i) /* the path holds the previous token's bytes: keep what this one shares */
            while (lcp < t[i - 1].len && lcp < t[i].len && t[i - 1].p[lcp] == t[i].p[lcp]) lcp++;
        for (d = depth; d > lcp; d--) v->nodes[path[d]].skip = v->n_nodes;
        for (d = lcp + 1; d <= t[i].len; d++) {
            bn__gnode *nd = &v->nodes[v->n_nodes];
            memset(nd, 0, sizeof *nd);
            nd->byte = (unsigned char)t[i].p[d - 1];
            nd->depth = (uint16_t)d;
            path[d] = v->n_nodes++;
        }
        depth = t[i].len;
        v->ids[i] = t[i].id;
        leaf = &v->nodes[path[depth]];
        if (!leaf->tok_n) leaf->tok_first = i;
        leaf->tok_n++;
    }
    for (d = depth; d >= 0; d--) v->nodes[path[d]].skip = v->n_nodes;
    BN_FREE(path);
    return 1;
}

static int bn__gvocab_is_eos(const bn_grammar_vocab *v, int32_t token) {
    int i;
    for (i = 0; i < v->n_eos; i++)
        if (v->eos[i] == token) return 1;
    return 0;
}

BN_API bn_status bn_grammar_vocab_new(bn_grammar_vocab **out, const bn_tokenizer *tok, const int32_t *eos, int n_eos,
                                      bn_error *err) {
    bn_grammar_vocab *v;
    bn__gtok *t = NULL;
    bn__buf all, sa, sb;
    int32_t i, n_t = 0, tok_eos;
    size_t total;
    *out = NULL;
    if (!tok) return bn_errorf(err, BN_ERR_ARG, "grammar vocab: no tokenizer");
    if (n_eos < 0 || (n_eos > 0 && !eos)) return bn_errorf(err, BN_ERR_ARG, "grammar vocab: %d end tokens without an array", n_eos);
    tok_eos = bn_tokenizer_eos_id(tok);
    if (!eos) {
        eos = &tok_eos;
        n_eos = tok_eos >= 0;
    }
    v = BN_ZALLOC(bn_grammar_vocab, 1);
    if (!v) return bn_errorf(err, BN_ERR_NOMEM, "grammar vocab: out of memory");
    memset(&all, 0, sizeof all);
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    v->n_tok = bn_tokenizer_vocab_size(tok);
    v->off = BN_ALLOC(size_t, v->n_tok + 1);
    v->len = BN_ALLOC(int32_t, v->n_tok + 1);
    v->eos = BN_ALLOC(int32_t, n_eos + 1);
    if (!v->off || !v->len || !v->eos) goto nomem;
    for (i = 0; i < n_eos; i++) v->eos[i] = eos[i];
    v->n_eos = n_eos;
    for (i = 0; i < v->n_tok; i++) { /* every token's bytes, one after the other */
        const char *b;
        long n = bn_tokenizer_is_special(tok, i) || bn__gvocab_is_eos(v, i) ? -1 : bn__token_bytes(tok, i, &sa, &sb, &b);
        v->len[i] = n > 0 && n < 65536 ? (int32_t)n : -1;
        v->off[i] = all.len;
        if (v->len[i] < 0) continue;
        if (!bn__buf_add(&all, b, (size_t)n)) goto nomem;
        if (n > v->max_depth) v->max_depth = (int32_t)n;
        n_t++;
    }
    total = all.len;
    v->bytes = all.p ? all.p : (char *)BN_MALLOC(1);
    all.p = NULL;
    t = BN_ALLOC(bn__gtok, n_t + 1);
    if (!v->bytes || !t) goto nomem;
    for (i = 0, n_t = 0; i < v->n_tok; i++) {
        if (v->len[i] < 0) continue;
        int k;
        t[n_t].p = v->bytes + v->off[i];
        t[n_t].len = v->len[i];
        t[n_t].id = i;
        t[n_t].key = 0;
        for (k = 0; k < 8; k++) t[n_t].key = t[n_t].key << 8 | (k < v->len[i] ? (unsigned char)t[n_t].p[k] : 0);
        n_t++;
    }
    qsort(t, (size_t)n_t, sizeof *t, bn__gtok_cmp);
    if (!bn__gvocab_trie(v, t, n_t, total)) goto nomem;
    BN_FREE(t);
    BN_FREE(sa.p);
    BN_FREE(sb.p);
    *out = v;
    return BN_OK;
nomem:
    BN_FREE(t);
    BN_FREE(all.p);
    BN_FREE(sa.p);
    BN_FREE(sb.p);
    bn_grammar_vocab_free(v);
    return bn_errorf(err, BN_ERR_NOMEM, "grammar vocab: out of memory for %d tokens", bn_tokenizer_vocab_size(tok));
}

/* The set after token (not an end token), or -1. */
static int32_t bn__gm_token(bn_grammar_matcher *m, const bn_grammar_vocab *v, int32_t token) {
    if (token < 0 || token >= v->n_tok || v->len[token] < 0) return -1;
    return bn__gm_run(m, m->cur, v->bytes + v->off[token], (size_t)v->len[token]);
}

BN_API int bn_grammar_matcher_allows(bn_grammar_matcher *m, const bn_grammar_vocab *v, int32_t token) {
    if (bn__gvocab_is_eos(v, token)) return bn_grammar_matcher_can_end(m);
    return bn__gm_token(m, v, token) >= 0;
}

BN_API int bn_grammar_matcher_accept_token(bn_grammar_matcher *m, const bn_grammar_vocab *v, int32_t token) {
    int32_t s;
    if (bn__gvocab_is_eos(v, token)) return bn_grammar_matcher_can_end(m); /* the text ends: nothing to move */
    s = bn__gm_token(m, v, token);
    if (s < 0) return 0;
    bn__gm_move(m, s);
    return 1;
}

/* The walk of the token trie from the current set: bit t of mask for each token allowed; their number. */
static int32_t bn__gm_walk(bn_grammar_matcher *m, const bn_grammar_vocab *v, uint32_t *mask, int n_vocab) {
    int32_t i = 1, k, count = 0, *path;
    memset(mask, 0, sizeof(uint32_t) * (((size_t)n_vocab + 31) / 32));
    if (!bn__gm_grow(m, &m->path, &m->cap_path, v->max_depth + 1, sizeof(int32_t))) return 0;
    path = m->path;
    path[0] = m->cur;
    while (i < v->n_nodes) {
        const bn__gnode *nd = &v->nodes[i];
        int32_t s = path[nd->depth - 1], t = m->sets[s].trans, r;
        /* the step, its cached case inline: this loop runs once per trie node reached */
        if (t < 0 || (r = m->trans[(size_t)t * 256 + nd->byte]) == -2) r = bn__gm_step(m, s, nd->byte);
        if (r < 0) { /* no stack takes this byte: skip every token that starts so */
            i = nd->skip;
            continue;
        }
        path[nd->depth] = r;
        for (k = nd->tok_first; k < nd->tok_first + nd->tok_n; k++)
            if (v->ids[k] < n_vocab) {
                mask[v->ids[k] >> 5] |= 1u << (v->ids[k] & 31);
                count++;
            }
        i++;
    }
    if (bn_grammar_matcher_can_end(m))
        for (k = 0; k < v->n_eos; k++)
            if (v->eos[k] >= 0 && v->eos[k] < n_vocab && !((mask[v->eos[k] >> 5] >> (v->eos[k] & 31)) & 1)) {
                mask[v->eos[k] >> 5] |= 1u << (v->eos[k] & 31);
                count++;
            }
    return count;
}

BN_API int bn_grammar_matcher_mask(bn_grammar_matcher *m, const bn_grammar_vocab *v, uint32_t *mask, int n_vocab) {
    int32_t words = (n_vocab + 31) / 32, i, count;
    if (m->mask_vocab != v || m->mask_words != words) { /* another vocabulary or size: forget the old masks */
        uint32_t *nm = (uint32_t *)BN_REALLOC(m->masks, sizeof(uint32_t) * (size_t)words * BN__GM_MASKS);
        for (i = 0; i < BN__GM_MASKS; i++) m->mask_set[i] = -1;
        m->mask_vocab = nm ? v : NULL;
        m->mask_words = nm ? words : 0;
        if (nm) m->masks = nm;
    }
    for (i = 0; i < BN__GM_MASKS && m->mask_vocab; i++)
        if (m->mask_set[i] == m->cur) {
            memcpy(mask, m->masks + (size_t)i * words, sizeof(uint32_t) * (size_t)words);
            return m->mask_count[i];
        }
    count = bn__gm_walk(m, v, mask, n_vocab);
    if (m->mask_vocab && !m->oom) {
        i = m->mask_next;
        m->mask_next = (m->mask_next + 1) % BN__GM_MASKS;
        m->mask_set[i] = m->cur;
        m->mask_count[i] = count;
        memcpy(m->masks + (size_t)i * words, mask, sizeof(uint32_t) * (size_t)words);
    }
    if (bn__gm_bytes(m) > m->cache_limit) bn__gm_flush(m);
    return count;
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_GRAMMAR_H */
