#ifndef BN_PART_JSON_H
#define BN_PART_JSON_H
#include "base.h"
/* A small, strict JSON parser (RFC 8259) that builds a read-only tree.
   Used for config.json, SafeTensors headers and tokenizer.json (9 MB, ~700k
   values), so it is one pass, allocation-light and bounded in depth.

   The children of an array or object are stored contiguously: node->child[i]
   for i in [0, node->len). Object members carry their key in child[i].key.
   Strings are decoded to UTF-8 and NUL-terminated (use len: "\u0000" may occur). */

typedef enum bn_json_type {
    BN_JSON_NULL,
    BN_JSON_FALSE,
    BN_JSON_TRUE,
    BN_JSON_NUMBER,
    BN_JSON_STRING,
    BN_JSON_ARRAY,
    BN_JSON_OBJECT
} bn_json_type;

typedef struct bn_json bn_json;
struct bn_json {
    bn_json_type type;
    int len;          /* string: bytes; array/object: number of children */
    int key_len;      /* bytes of key (object members only) */
    double num;       /* number value */
    const char *str;  /* string value */
    const char *key;  /* member key when the parent is an object, else NULL */
    bn_json *child;   /* array/object children, contiguous */
};

typedef struct bn_json_doc {
    bn_json *root;
    void *arena_; /* internal */
} bn_json_doc;

#define BN_JSON_MAX_DEPTH 256

BN_EXTERN_C_BEGIN
/* Parse text[0..len). On failure the error names `what` (e.g. the file name)
   and the byte offset. The document owns every node and string. */
BN_API bn_status bn_json_parse(bn_json_doc *doc, const char *text, size_t len, const char *what, bn_error *err);
BN_API void bn_json_free(bn_json_doc *doc);
/* Member of an object by key, or NULL (also when obj is NULL or not an object). */
BN_API const bn_json *bn_json_get(const bn_json *obj, const char *key);
/* Convenience readers: the default when absent or of another type. */
BN_API double bn_json_number(const bn_json *obj, const char *key, double dflt);
BN_API const char *bn_json_string(const bn_json *obj, const char *key, const char *dflt);
BN_API int bn_json_bool(const bn_json *obj, const char *key, int dflt);
BN_API int bn_json_is_int(const bn_json *v); /* a number with an integral value that fits an int */
BN_API int bn_json_streq(const bn_json *v, const char *s); /* v is a string equal to s */
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

/* Nodes and strings live in a chain of blocks that never move, so pointers
   into the tree stay valid while the parser grows it. The first block is sized
   from the input (a small document costs a small allocation); each later one
   doubles, up to 1 MB, so a large document takes few blocks. */
typedef struct bn__arena_block {
    struct bn__arena_block *next;
    size_t used, cap;
    /* data follows, aligned for doubles/pointers */
} bn__arena_block;

#define BN__ARENA_MAX_BLOCK ((size_t)1 << 20)

/* n bytes from the arena; *next_cap is the size of the next block to make. */
static void *bn__arena_alloc(void **arena, size_t n, size_t *next_cap) {
    bn__arena_block *b = (bn__arena_block *)*arena;
    size_t hdr = (sizeof(bn__arena_block) + 15) & ~(size_t)15;
    n = (n + 15) & ~(size_t)15;
    if (!b || b->used + n > b->cap) {
        size_t cap = BN_MAX(n, *next_cap);
        bn__arena_block *nb = (bn__arena_block *)BN_MALLOC(hdr + cap);
        if (!nb) return NULL;
        nb->next = b;
        nb->used = 0;
        nb->cap = cap;
        *arena = nb;
        b = nb;
        *next_cap = BN_MIN(*next_cap * 2, BN__ARENA_MAX_BLOCK);
    }
    b->used += n;
    return (char *)b + hdr + b->used - n;
}

static void bn__arena_free(void *arena) {
    bn__arena_block *b = (bn__arena_block *)arena;
    while (b) {
        bn__arena_block *next = b->next;
        BN_FREE(b);
        b = next;
    }
}

typedef struct bn__jparser {
    const char *s, *what;
    size_t pos, len;
    void *arena;
    size_t arena_next; /* size of the arena's next block */
    bn_json *stack; /* children being collected, for all open containers */
    size_t stack_len, stack_cap;
    bn_error *err;
    bn_status status;
} bn__jparser;

static int bn__jfail(bn__jparser *p, const char *msg) {
    if (p->status == BN_OK)
        p->status = bn_errorf(p->err, BN_ERR_FORMAT, "%s: invalid JSON at byte %lu: %s", p->what,
                              (unsigned long)p->pos, msg);
    return 0;
}

static int bn__jnomem(bn__jparser *p) {
    if (p->status == BN_OK) p->status = bn_errorf(p->err, BN_ERR_NOMEM, "%s: out of memory parsing JSON", p->what);
    return 0;
}

static void bn__jskip_ws(bn__jparser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int bn__jpush(bn__jparser *p, const bn_json *v) {
    if (p->stack_len == p->stack_cap) {
        size_t cap = p->stack_cap ? p->stack_cap * 2 : 256;
        bn_json *ns = (bn_json *)BN_REALLOC(p->stack, cap * sizeof(bn_json));
        if (!ns) return bn__jnomem(p);
        p->stack = ns;
        p->stack_cap = cap;
    }
    p->stack[p->stack_len++] = *v;
    return 1;
}

static int bn__jhex4(bn__jparser *p, unsigned *out) {
    unsigned v = 0;
    int i;
    if (p->pos + 4 > p->len) return bn__jfail(p, "truncated \\u escape");
    for (i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return bn__jfail(p, "bad hex digit in \\u escape");
    }
    *out = v;
    return 1;
}

static size_t bn__utf8_put(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xc0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Parse a string starting at the opening quote. Decoded text is never longer
   than the source, so one allocation of the raw length suffices. Lone
   surrogates decode to U+FFFD, as most JSON libraries do. */
static int bn__jstring(bn__jparser *p, const char **out, int *out_len) {
    size_t start = ++p->pos, end = start, n = 0;
    char *buf;
    int has_escape = 0;
    while (end < p->len && p->s[end] != '"') {
        if (p->s[end] == '\\') { has_escape = 1; end++; }
        end++;
    }
    if (end >= p->len) return bn__jfail(p, "unterminated string");
    if (end - start > (size_t)INT_MAX / 2) return bn__jfail(p, "string too long");
    buf = (char *)bn__arena_alloc(&p->arena, end - start + 1, &p->arena_next);
    if (!buf) return bn__jnomem(p);
    if (!has_escape) {
        size_t i;
        for (i = start; i < end; i++)
            if ((unsigned char)p->s[i] < 0x20) { p->pos = i; return bn__jfail(p, "control character in string"); }
        memcpy(buf, p->s + start, end - start);
        n = end - start;
        p->pos = end + 1;
    } else {
        while (p->pos < end) {
            unsigned char c = (unsigned char)p->s[p->pos];
            if (c < 0x20) return bn__jfail(p, "control character in string");
            if (c != '\\') { buf[n++] = (char)c; p->pos++; continue; }
            p->pos++;
            c = (unsigned char)p->s[p->pos++];
            switch (c) {
            case '"': buf[n++] = '"'; break;
            case '\\': buf[n++] = '\\'; break;
            case '/': buf[n++] = '/'; break;
            case 'b': buf[n++] = '\b'; break;
            case 'f': buf[n++] = '\f'; break;
            case 'n': buf[n++] = '\n'; break;
            case 'r': buf[n++] = '\r'; break;
            case 't': buf[n++] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (!bn__jhex4(p, &cp)) return 0;
                if (cp >= 0xd800 && cp < 0xdc00) {
                    size_t save = p->pos;
                    if (p->pos + 6 <= end && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                        p->pos += 2;
                        if (!bn__jhex4(p, &lo)) return 0;
                        if (lo >= 0xdc00 && lo < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        else { p->pos = save; cp = 0xfffd; }
                    } else {
                        cp = 0xfffd;
                    }
                } else if (cp >= 0xdc00 && cp < 0xe000) {
                    cp = 0xfffd;
                }
                n += bn__utf8_put(buf + n, cp); /* \uXXXX is 6 source bytes, at most 4 out */
                break;
            }
            default: p->pos--; return bn__jfail(p, "bad escape in string");
            }
        }
        p->pos = end + 1;
    }
    buf[n] = 0;
    *out = buf;
    *out_len = (int)n;
    return 1;
}

/* Numbers: exact for the common case (<= 19 significant digits, small
   exponent), independent of the C locale. */
static int bn__jnumber(bn__jparser *p, double *out) {
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *s = p->s;
    size_t i = p->pos;
    int neg = 0, digits = 0, exp10 = 0, eneg = 0, e = 0;
    uint64_t mant = 0;
    double v;
    if (i < p->len && s[i] == '-') { neg = 1; i++; }
    if (i >= p->len || s[i] < '0' || s[i] > '9') { p->pos = i; return bn__jfail(p, "bad number"); }
    if (s[i] == '0') {
        i++;
        if (i < p->len && s[i] >= '0' && s[i] <= '9') { p->pos = i; return bn__jfail(p, "leading zero in number"); }
    } else {
        while (i < p->len && s[i] >= '0' && s[i] <= '9') {
            if (digits < 19) { mant = mant * 10 + (uint64_t)(s[i] - '0'); digits += mant != 0; }
            else exp10++;
            i++;
        }
    }
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') { p->pos = i; return bn__jfail(p, "bad fraction"); }
        while (i < p->len && s[i] >= '0' && s[i] <= '9') {
            if (digits < 19) { mant = mant * 10 + (uint64_t)(s[i] - '0'); digits += mant != 0; exp10--; }
            i++;
        }
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        if (i >= p->len || s[i] < '0' || s[i] > '9') { p->pos = i; return bn__jfail(p, "bad exponent"); }
        while (i < p->len && s[i] >= '0' && s[i] <= '9') {
            if (e < 100000) e = e * 10 + (s[i] - '0');
            i++;
        }
    }
    exp10 += eneg ? -e : e;
    v = (double)mant;
    if (mant == 0) {
        v = 0.0;
    } else if (mant < ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
        v = exp10 < 0 ? v / pow10[-exp10] : v * pow10[exp10];
    } else {
        v = v * pow(10.0, (double)exp10);
    }
    *out = neg ? -v : v;
    p->pos = i;
    return 1;
}

static int bn__jvalue(bn__jparser *p, bn_json *v, int depth);

/* Parse the members of an array or object, collecting them on the shared
   stack, then move them into one contiguous arena block. */
static int bn__jcontainer(bn__jparser *p, bn_json *v, int depth, int is_obj) {
    size_t base = p->stack_len, count, i;
    char close = is_obj ? '}' : ']';
    v->type = is_obj ? BN_JSON_OBJECT : BN_JSON_ARRAY;
    if (depth >= BN_JSON_MAX_DEPTH) return bn__jfail(p, "nesting too deep");
    p->pos++;
    bn__jskip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 1;
    }
    for (;;) {
        bn_json item;
        memset(&item, 0, sizeof item);
        bn__jskip_ws(p);
        if (is_obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"') return bn__jfail(p, "expected a string key");
            if (!bn__jstring(p, &item.key, &item.key_len)) return 0;
            bn__jskip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return bn__jfail(p, "expected ':'");
            p->pos++;
            bn__jskip_ws(p);
        }
        {
            const char *key = item.key;
            int key_len = item.key_len;
            if (!bn__jvalue(p, &item, depth + 1)) return 0;
            item.key = key;
            item.key_len = key_len;
        }
        if (!bn__jpush(p, &item)) return 0;
        bn__jskip_ws(p);
        if (p->pos >= p->len) return bn__jfail(p, is_obj ? "unterminated object" : "unterminated array");
        if (p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->s[p->pos] == close) { p->pos++; break; }
        return bn__jfail(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    count = p->stack_len - base;
    if (count > (size_t)INT_MAX) return bn__jfail(p, "too many elements");
    v->child = (bn_json *)bn__arena_alloc(&p->arena, count * sizeof(bn_json), &p->arena_next);
    if (!v->child) return bn__jnomem(p);
    for (i = 0; i < count; i++) v->child[i] = p->stack[base + i];
    v->len = (int)count;
    p->stack_len = base;
    return 1;
}

static int bn__jliteral(bn__jparser *p, const char *word, bn_json_type t, bn_json *v) {
    size_t n = strlen(word);
    if (p->pos + n > p->len || memcmp(p->s + p->pos, word, n) != 0) return bn__jfail(p, "unexpected character");
    p->pos += n;
    v->type = t;
    return 1;
}

static int bn__jvalue(bn__jparser *p, bn_json *v, int depth) {
    char c;
    bn__jskip_ws(p);
    if (p->pos >= p->len) return bn__jfail(p, "unexpected end of input");
    c = p->s[p->pos];
    switch (c) {
    case '{': return bn__jcontainer(p, v, depth, 1);
    case '[': return bn__jcontainer(p, v, depth, 0);
    case '"': v->type = BN_JSON_STRING; return bn__jstring(p, &v->str, &v->len);
    case 't': return bn__jliteral(p, "true", BN_JSON_TRUE, v);
    case 'f': return bn__jliteral(p, "false", BN_JSON_FALSE, v);
    case 'n': return bn__jliteral(p, "null", BN_JSON_NULL, v);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) { v->type = BN_JSON_NUMBER; return bn__jnumber(p, &v->num); }
        return bn__jfail(p, "unexpected character");
    }
}

BN_API bn_status bn_json_parse(bn_json_doc *doc, const char *text, size_t len, const char *what, bn_error *err) {
    bn__jparser p;
    bn_json *root;
    memset(&p, 0, sizeof p);
    memset(doc, 0, sizeof *doc);
    p.s = text;
    p.len = len;
    p.what = what ? what : "JSON";
    p.err = err;
    /* room for the text's strings and a node per 16 bytes: most documents fit the first block */
    p.arena_next = BN_MIN(BN_MAX(len + len / 16 * sizeof(bn_json), (size_t)256), BN__ARENA_MAX_BLOCK);
    root = (bn_json *)bn__arena_alloc(&p.arena, sizeof(bn_json), &p.arena_next);
    if (!root) {
        bn__jnomem(&p);
    } else {
        memset(root, 0, sizeof *root);
        if (bn__jvalue(&p, root, 0)) {
            bn__jskip_ws(&p);
            if (p.pos != p.len) bn__jfail(&p, "trailing characters after the JSON value");
        }
    }
    BN_FREE(p.stack);
    if (p.status != BN_OK) {
        bn__arena_free(p.arena);
        return p.status;
    }
    doc->root = root;
    doc->arena_ = p.arena;
    return BN_OK;
}

BN_API void bn_json_free(bn_json_doc *doc) {
    if (!doc) return;
    bn__arena_free(doc->arena_);
    doc->arena_ = NULL;
    doc->root = NULL;
}

BN_API const bn_json *bn_json_get(const bn_json *obj, const char *key) {
    int i;
    size_t n;
    if (!obj || obj->type != BN_JSON_OBJECT || !key) return NULL;
    n = strlen(key);
    /* last one wins on duplicate keys, as in most JSON libraries */
    for (i = obj->len - 1; i >= 0; i--)
        if ((size_t)obj->child[i].key_len == n && memcmp(obj->child[i].key, key, n) == 0) return &obj->child[i];
    return NULL;
}

BN_API double bn_json_number(const bn_json *obj, const char *key, double dflt) {
    const bn_json *v = bn_json_get(obj, key);
    return v && v->type == BN_JSON_NUMBER ? v->num : dflt;
}

BN_API const char *bn_json_string(const bn_json *obj, const char *key, const char *dflt) {
    const bn_json *v = bn_json_get(obj, key);
    return v && v->type == BN_JSON_STRING ? v->str : dflt;
}

BN_API int bn_json_bool(const bn_json *obj, const char *key, int dflt) {
    const bn_json *v = bn_json_get(obj, key);
    if (!v) return dflt;
    if (v->type == BN_JSON_TRUE) return 1;
    if (v->type == BN_JSON_FALSE) return 0;
    return dflt;
}

BN_API int bn_json_is_int(const bn_json *v) {
    return v && v->type == BN_JSON_NUMBER && v->num == floor(v->num) && v->num >= (double)INT_MIN &&
           v->num <= (double)INT_MAX;
}

/* The integer member `key` of obj, in [lo, hi], into *out: the one way a
   size or an id is read from a file, so that no number reaches an int cast
   unchecked. Absent or null: dflt when has_dflt, else an error. Errors are
   BN_ERR_CONFIG and name `what` and the key. */
BN_MAYBE_UNUSED static bn_status bn__json_int_field(const bn_json *obj, const char *key, int lo, int hi, int has_dflt,
                                                    int dflt, int *out, const char *what, bn_error *err) {
    const bn_json *v = bn_json_get(obj, key);
    if (!v || v->type == BN_JSON_NULL) {
        if (!has_dflt) return bn_errorf(err, BN_ERR_CONFIG, "%s: \"%s\" is missing", what, key);
        *out = dflt;
        return BN_OK;
    }
    if (v->type != BN_JSON_NUMBER || v->num != floor(v->num))
        return bn_errorf(err, BN_ERR_CONFIG, "%s: \"%s\" is not an integer", what, key);
    if (!(v->num >= lo && v->num <= hi))
        return bn_errorf(err, BN_ERR_CONFIG, "%s: \"%s\" = %g is out of range (%d..%d)", what, key, v->num, lo, hi);
    *out = (int)v->num;
    return BN_OK;
}

/* The same for a number in [lo, hi] (a float field: no NaN, no overflow on the cast). */
BN_MAYBE_UNUSED static bn_status bn__json_num_field(const bn_json *obj, const char *key, double lo, double hi,
                                                    double dflt, double *out, const char *what, bn_error *err) {
    const bn_json *v = bn_json_get(obj, key);
    if (!v || v->type == BN_JSON_NULL) {
        *out = dflt;
        return BN_OK;
    }
    if (v->type != BN_JSON_NUMBER || !(v->num >= lo && v->num <= hi))
        return bn_errorf(err, BN_ERR_CONFIG, "%s: \"%s\" is not a number in [%g, %g]", what, key, lo, hi);
    *out = v->num;
    return BN_OK;
}

BN_API int bn_json_streq(const bn_json *v, const char *s) {
    return v && v->type == BN_JSON_STRING && (size_t)v->len == strlen(s) && memcmp(v->str, s, (size_t)v->len) == 0;
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_JSON_H */
