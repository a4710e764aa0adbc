#ifndef BN_PART_TOKENIZER_H
#define BN_PART_TOKENIZER_H
#include "base.h"
#include "json.h"
#include "unicode_tables.h"
/* HF tokenizer.json: text -> token ids -> text, id for id with HuggingFace
   `tokenizers` for the BPE tokenizers that BitNet / LLaMA / Mistral models use.

   The pipeline is HF's, stage by stage:
     1. added tokens (`added_tokens`) are cut out of the text first (special ones only
        when the caller passes BN_TOK_PARSE_SPECIAL);
     2. the normalizer runs on each remaining piece (Prepend, Replace, Sequence);
     3. the pre-tokenizer splits it into words (Split with the LLaMA 3 or GPT-2
        regex, ByteLevel, Metaspace, Digits, Sequence);
     4. the BPE model turns each word into ids (merges by rank, byte_fallback,
        unk_token, ignore_merges);
     5. the post-processor adds BOS etc. when asked (TemplateProcessing, ByteLevel).
   Decoding runs the decoders (ByteLevel, Replace, ByteFallback, Fuse, Strip,
   Metaspace, Sequence) over the token strings, as HF does. Any other component in the
   file is refused with BN_ERR_UNSUPPORTED naming it: never silently wrong ids.

   Input text must be UTF-8. Invalid UTF-8 gives BN_ERR_ARG naming the byte
   offset, or, with BN_TOK_REPLACE_INVALID, each maximal invalid subsequence
   becomes U+FFFD (the rule of Python's errors="replace" and Rust's
   from_utf8_lossy). A loaded tokenizer is read-only and can be shared by threads. */

typedef struct bn_tokenizer bn_tokenizer;

/* Flags for bn_tokenizer_encode / bn_tokenizer_decode. */
#define BN_TOK_ADD_SPECIAL 1u     /* encode: the post-processor adds BOS etc. (HF add_special_tokens=True) */
#define BN_TOK_PARSE_SPECIAL 2u   /* encode: special tokens written in the text ("<|eot_id|>") become their ids */
#define BN_TOK_REPLACE_INVALID 4u /* encode: invalid UTF-8 becomes U+FFFD instead of an error */
#define BN_TOK_SKIP_SPECIAL 8u    /* decode: leave special tokens out of the text */

/* Chat prompt formats we know (no Jinja engine: a template is recognized, not run). */
typedef enum bn_chat_template {
    BN_CHAT_AUTO = 0, /* the one recognized in tokenizer_config.json's chat_template */
    BN_CHAT_UNKNOWN,  /* no chat_template, or one we do not recognize */
    BN_CHAT_LLAMA3,   /* <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> */
    BN_CHAT_BITNET    /* microsoft/bitnet-b1.58-2B-4T: "Role: content<|eot_id|>" */
} bn_chat_template;

typedef struct bn_chat_message {
    const char *role;    /* "system", "user", "assistant" */
    const char *content; /* UTF-8, NUL-terminated */
} bn_chat_message;

/* The UTF-8 stream, a streaming decoder: feed ids one at a time, get text
   pieces that are always complete UTF-8. What it holds back: a character split
   across tokens, until its last byte arrives. Same text as bn_tokenizer_decode of all
   the ids (HF's DecodeStream algorithm). A plain struct the caller owns. */
typedef struct bn_utf8_stream {
    const bn_tokenizer *tok;
    unsigned flags;
    int32_t *ids; /* the window of ids still needed as context */
    size_t n_ids, cap_ids, prefix_index;
    char *prefix; /* decode of ids[0..prefix_index) */
    size_t prefix_len;
    char *piece; /* the last piece returned */
    size_t piece_len;
} bn_utf8_stream;

BN_EXTERN_C_BEGIN
/* Load DIR/tokenizer.json and, when present, DIR/tokenizer_config.json. */
BN_API bn_status bn_tokenizer_load(bn_tokenizer **out, const char *dir, bn_error *err);
/* The same from memory; config may be NULL. `what` names the source in errors. */
BN_API bn_status bn_tokenizer_load_memory(bn_tokenizer **out, const char *json, size_t len, const char *config,
                                          size_t config_len, const char *what, bn_error *err);
BN_API void bn_tokenizer_free(bn_tokenizer *tok);

/* Bytes of memory the loaded tokenizer holds. */
BN_API size_t bn_tokenizer_memory(const bn_tokenizer *tok);
/* Number of ids (largest id + 1 over the model vocab and added tokens). */
BN_API int bn_tokenizer_vocab_size(const bn_tokenizer *tok);
/* The id of a token string (added tokens first, then the model vocab), or -1. */
BN_API int32_t bn_tokenizer_token_to_id(const bn_tokenizer *tok, const char *s, size_t len);
/* The token string of an id (as stored: byte-level tokens use the byte->unicode map), or NULL. */
BN_API const char *bn_tokenizer_id_to_token(const bn_tokenizer *tok, int32_t id, size_t *len);
BN_API int bn_tokenizer_is_special(const bn_tokenizer *tok, int32_t id);
/* The bytes token id adds to a text after other tokens: the decoders run on it
   as on the middle of a text (a byte-level token gives its raw bytes, possibly
   part of a UTF-8 character; "<0x0A>" the byte 0x0A; SentencePiece's "\xe2\x96\x81"
   a space). Writes up to cap bytes to buf (may be NULL) and returns the whole
   length, as snprintf does; -1 for an id that names no token. Grammars match tokens by these bytes. */
BN_API int bn_tokenizer_token_bytes(const bn_tokenizer *tok, int32_t id, char *buf, size_t cap);
/* bos_token / eos_token of tokenizer_config.json, or -1. */
BN_API int32_t bn_tokenizer_bos_id(const bn_tokenizer *tok);
BN_API int32_t bn_tokenizer_eos_id(const bn_tokenizer *tok);

/* Text -> ids. *ids is BN_MALLOC'd (free with bn_free); *n_ids may be 0. */
BN_API bn_status bn_tokenizer_encode(const bn_tokenizer *tok, const char *text, size_t len, unsigned flags,
                                     int32_t **ids, size_t *n_ids, bn_error *err);
/* Ids -> text (NUL-terminated, BN_MALLOC'd). An id outside [0, vocab size) is an error. */
BN_API bn_status bn_tokenizer_decode(const bn_tokenizer *tok, const int32_t *ids, size_t n_ids, unsigned flags,
                                     char **text, size_t *len, bn_error *err);

BN_API void bn_utf8_stream_init(bn_utf8_stream *s, const bn_tokenizer *tok, unsigned flags);
/* Feed one id; *piece (valid until the next call) gets the new text, *len may be 0. */
BN_API bn_status bn_utf8_stream_push(bn_utf8_stream *s, int32_t id, const char **piece, size_t *len, bn_error *err);
/* At the end: whatever was held back (an incomplete character shows as U+FFFD). */
BN_API bn_status bn_utf8_stream_flush(bn_utf8_stream *s, const char **piece, size_t *len, bn_error *err);
BN_API void bn_utf8_stream_free(bn_utf8_stream *s);
/* The length of the UTF-8 character at s[0..n) (1-4), or 0 when the bytes
   there are not one (overlong, a surrogate, above U+10FFFF, cut short). */
BN_API size_t bn_utf8_char_len(const char *s, size_t n);

/* The template recognized in tokenizer_config.json (BN_CHAT_UNKNOWN if none). */
BN_API bn_chat_template bn_tokenizer_chat_template(const bn_tokenizer *tok);
/* "llama3", "bitnet" -> the template; BN_CHAT_UNKNOWN for other names. */
BN_API bn_chat_template bn_chat_template_from_name(const char *name);
BN_API const char *bn_chat_template_name(bn_chat_template t);
/* Format a conversation as the model's chat template would (BN_CHAT_AUTO: the
   recognized one). The text contains special tokens: encode it with
   BN_TOK_PARSE_SPECIAL. *out is BN_MALLOC'd and NUL-terminated. */
BN_API bn_status bn_chat_format(const bn_tokenizer *tok, bn_chat_template tmpl, const bn_chat_message *msgs,
                                size_t n_msgs, int add_generation_prompt, char **out, size_t *out_len,
                                bn_error *err);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

/* ---------------------------------------------------------------- UTF-8 */

/* Length of the valid UTF-8 character at s[0..n), or 0 if the bytes there are
   not one (overlong, surrogate, > U+10FFFF, truncated). When 0, *bad gets the
   length of the maximal invalid subpart to replace with one U+FFFD. */
static size_t bn__utf8_check(const unsigned char *s, size_t n, size_t *bad) {
    unsigned c = s[0], lo = 0x80, hi = 0xbf;
    size_t need, i;
    *bad = 1;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    for (i = 1; i < need; i++) {
        unsigned b;
        if (i >= n) { *bad = i; return 0; }
        b = s[i];
        if (b < lo || b > hi) { *bad = i; return 0; }
        lo = 0x80;
        hi = 0xbf;
    }
    return need;
}

/* Decode one character of a string known to hold UTF-8; bounded by n, so
   malformed bytes (from a malformed tokenizer.json) read as U+FFFD, 1 byte. */
static uint32_t bn__utf8_next(const char *str, size_t n, size_t *len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t bad, l = bn__utf8_check(s, n, &bad);
    *len = l ? l : 1;
    switch (l) {
    case 1: return s[0];
    case 2: return ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
    case 3: return ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
    case 4:
        return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) | ((uint32_t)(s[2] & 0x3f) << 6) |
               (s[3] & 0x3f);
    default: return 0xfffd;
    }
}

/* ------------------------------------------------------ growable buffers */

typedef struct bn__buf {
    char *p;
    size_t len, cap;
} bn__buf;

static int bn__buf_reserve(bn__buf *b, size_t extra) {
    if (b->len + extra + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;
        while (cap < b->len + extra + 1) cap *= 2;
        np = (char *)BN_REALLOC(b->p, cap);
        if (!np) return 0;
        b->p = np;
        b->cap = cap;
    }
    return 1;
}

static int bn__buf_add(bn__buf *b, const void *s, size_t n) {
    if (!bn__buf_reserve(b, n)) return 0;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 1;
}

static int bn__buf_adds(bn__buf *b, const char *s) { return bn__buf_add(b, s, strlen(s)); }

typedef struct bn__ids {
    int32_t *p;
    size_t n, cap;
} bn__ids;

static int bn__ids_push(bn__ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *np = (int32_t *)BN_REALLOC(v->p, cap * sizeof(int32_t));
        if (!np) return 0;
        v->p = np;
        v->cap = cap;
    }
    v->p[v->n++] = id;
    return 1;
}

/* A list of strings kept as (offset, length) into one bn__buf, so that the
   buffer may grow while the list is built. */
typedef struct bn__spans {
    size_t *off, *len;
    size_t n, cap;
} bn__spans;

static int bn__spans_push(bn__spans *v, size_t off, size_t len) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        size_t *no = (size_t *)BN_REALLOC(v->off, cap * sizeof(size_t));
        size_t *nl;
        if (!no) return 0;
        v->off = no;
        nl = (size_t *)BN_REALLOC(v->len, cap * sizeof(size_t));
        if (!nl) return 0;
        v->len = nl;
        v->cap = cap;
    }
    v->off[v->n] = off;
    v->len[v->n] = len;
    v->n++;
    return 1;
}

static void bn__spans_free(bn__spans *v) {
    BN_FREE(v->off);
    BN_FREE(v->len);
    memset(v, 0, sizeof *v);
}

/* --------------------------------------------------------- the tokenizer */

/* Pipeline components. Strings point into the tokenizer's string store. */
enum { BN__NORM_PREPEND = 1, BN__NORM_REPLACE };
enum { BN__PRE_SPLIT = 1, BN__PRE_BYTELEVEL, BN__PRE_METASPACE, BN__PRE_DIGITS };
enum { BN__PREPEND_ALWAYS = 1, BN__PREPEND_FIRST, BN__PREPEND_NEVER };
enum { BN__RE_LLAMA3 = 1, BN__RE_GPT2 };
enum { BN__DEC_BYTELEVEL = 1, BN__DEC_REPLACE, BN__DEC_BYTEFALLBACK, BN__DEC_FUSE, BN__DEC_STRIP, BN__DEC_METASPACE };
#define BN__TOK_MAX_STEPS 16

typedef struct bn__tok_step {
    int kind;
    int regex;                     /* Split: which known pattern */
    int add_prefix_space, use_regex; /* ByteLevel */
    const char *a, *b;             /* Prepend: a; Replace: a -> b; Strip: a = the character */
    size_t a_len, b_len;
    size_t a_off, b_off;           /* where a and b are in the store, while it may still move */
    int start, stop;               /* Strip */
    int prepend, split;            /* Metaspace (a = the replacement character) */
    int individual;                /* Digits: each digit alone, else runs of digits */
} bn__tok_step;

typedef struct bn__added_token {
    int32_t id;
    const char *content; /* its own string (the id's table entry is the last added token with that id) */
    size_t len, off;     /* off: where content is in the store, while it may still move */
    const char *norm; /* normalized content (normalized tokens only) */
    size_t norm_len;
    unsigned char special, lstrip, rstrip, normalized, single_word;
} bn__added_token;

typedef struct bn__merge_slot {
    uint64_t key; /* (left id << 32) | right id; ~0 when empty */
    uint32_t rank;
    int32_t new_id;
} bn__merge_slot;

/* Added tokens grouped by first byte, longest first within a group, so the
   first one that matches at a position is the leftmost-longest match. */
typedef struct bn__matcher {
    int32_t *idx; /* indices into tokenizer.added */
    int first[257];
} bn__matcher;

#define BN__CHAR_CACHE 0x800 /* ids of one-character tokens below U+0800, looked up at load */

struct bn_tokenizer {
    int n_vocab;
    /* token strings by id: tokens of the model vocab, overridden by added tokens */
    char *store;
    size_t store_len, store_cap;
    size_t *tok_off;
    int32_t *tok_len; /* -1: no token has this id */
    unsigned char *tok_special; /* 1: a special token; 2: an added token with normalized: true */
    /* the BPE model's vocab (model ids only): string -> id, open addressing */
    int32_t *vhash;
    uint32_t vmask;
    int32_t char_id[BN__CHAR_CACHE];
    bn__merge_slot *mhash;
    uint32_t mmask;
    size_t n_merges;
    int byte_fallback, fuse_unk, ignore_merges;
    int split_at_marker; /* long words may be cut before each "\xe2\x96\x81" (see bn__model_word) */
    int32_t unk_id;
    int32_t byte_id[256]; /* byte_fallback: the id of "<0xNN>", or -1 */
    /* added tokens, and matchers for the ones cut from raw text and from normalized text */
    bn__added_token *added;
    int n_added, has_normalized_added;
    bn__matcher raw_match, norm_match;
    /* pipeline */
    bn__tok_step norm[BN__TOK_MAX_STEPS], pre[BN__TOK_MAX_STEPS], dec[BN__TOK_MAX_STEPS];
    int n_norm, n_pre, n_dec, has_decoder;
    int32_t *post_prefix, *post_suffix; /* TemplateProcessing "single" around sequence A */
    int n_post_prefix, n_post_suffix;
    /* byte-level map: byte -> UTF-8 of its code point, and code point -> byte */
    char bl_utf8[256][2];
    unsigned char bl_len[256];
    int16_t bl_byte[0x144];
    /* tokenizer_config.json */
    int32_t bos_id, eos_id;
    bn_chat_template chat;
    int chat_gen_prompt_always; /* the template adds the assistant header unconditionally */
    const char *bos_token;
};

/* ------------------------------------------------------------- hashing */

static uint64_t bn__hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t bn__hash_u64(uint64_t x) { /* splitmix64 finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint32_t bn__table_size(size_t n) {
    uint32_t s = 16;
    while (s < 2 * n) s *= 2;
    return s;
}

/* The model-vocab id of a string, or -1. */
static int32_t bn__vocab_find(const bn_tokenizer *t, const char *s, size_t n) {
    uint32_t i = (uint32_t)bn__hash_bytes(s, n) & t->vmask;
    for (;;) {
        int32_t id = t->vhash[i];
        if (id < 0) return -1;
        if ((size_t)t->tok_len[id] == n && memcmp(t->store + t->tok_off[id], s, n) == 0) return id;
        i = (i + 1) & t->vmask;
    }
}

static const bn__merge_slot *bn__merge_find(const bn_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = (uint32_t)bn__hash_u64(key) & t->mmask;
    for (;;) {
        const bn__merge_slot *s = &t->mhash[i];
        if (s->key == key) return s;
        if (s->key == ~(uint64_t)0) return NULL;
        i = (i + 1) & t->mmask;
    }
}

/* ------------------------------------------------------------ loading */

/* The GPT-2 byte <-> unicode map: printable Latin-1 bytes stand for
   themselves, the other 68 bytes take code points 256, 257, ... in order. */
static void bn__bytelevel_init(bn_tokenizer *t) {
    int b, extra = 0;
    for (b = 0; b < 0x144; b++) t->bl_byte[b] = -1;
    for (b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        unsigned cp = keep ? (unsigned)b : 256u + (unsigned)extra++;
        char tmp[4];
        t->bl_len[b] = (unsigned char)bn__utf8_put(tmp, cp);
        memcpy(t->bl_utf8[b], tmp, t->bl_len[b]);
        t->bl_byte[cp] = (int16_t)b;
    }
}

/* Copy a string into the tokenizer's store; returns its offset. */
static int bn__store_add(bn_tokenizer *t, const char *s, size_t n, size_t *off) {
    if (t->store_len + n + 1 > t->store_cap) {
        size_t cap = t->store_cap ? t->store_cap : 4096;
        char *np;
        while (cap < t->store_len + n + 1) cap *= 2;
        np = (char *)BN_REALLOC(t->store, cap);
        if (!np) return 0;
        t->store = np;
        t->store_cap = cap;
    }
    memcpy(t->store + t->store_len, s, n);
    t->store[t->store_len + n] = 0;
    *off = t->store_len;
    t->store_len += n + 1;
    return 1;
}

typedef struct bn__loader {
    bn_tokenizer *t;
    const char *what;
    bn_error *err;
    /* strings of pipeline steps are stored at the end, once the store stops moving */
} bn__loader;

static bn_status bn__tok_nomem(bn__loader *L) {
    return bn_errorf(L->err, BN_ERR_NOMEM, "%s: out of memory loading the tokenizer", L->what);
}

static int bn__json_int_in(const bn_json *v, int lo, int hi) {
    return bn_json_is_int(v) && v->num >= lo && v->num <= hi;
}

/* The model: BPE only. Fills the vocab, the merge table and the options. */
static bn_status bn__load_model(bn__loader *L, const bn_json *model, const bn_json *added) {
    bn_tokenizer *t = L->t;
    const bn_json *vocab = bn_json_get(model, "vocab"), *merges = bn_json_get(model, "merges");
    const bn_json *type = bn_json_get(model, "type"), *v;
    int i, max_id = -1;
    size_t total = 0, n_entries;
    bn__buf tmp;
    if (!model || model->type != BN_JSON_OBJECT)
        return bn_errorf(L->err, BN_ERR_MISSING, "%s: no \"model\" object", L->what);
    if (type && !bn_json_streq(type, "BPE"))
        return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: model type \"%s\" is not supported (only BPE)", L->what,
                         type->type == BN_JSON_STRING ? type->str : "?");
    if (!vocab || vocab->type != BN_JSON_OBJECT || !merges || merges->type != BN_JSON_ARRAY)
        return bn_errorf(L->err, BN_ERR_FORMAT, "%s: BPE model needs a \"vocab\" object and a \"merges\" array",
                         L->what);
    v = bn_json_get(model, "dropout");
    if (v && v->type != BN_JSON_NULL && !(v->type == BN_JSON_NUMBER && v->num == 0.0))
        return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: BPE dropout is not supported", L->what);
    v = bn_json_get(model, "continuing_subword_prefix");
    if (v && v->type != BN_JSON_NULL && !(v->type == BN_JSON_STRING && v->len == 0))
        return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: BPE continuing_subword_prefix is not supported", L->what);
    v = bn_json_get(model, "end_of_word_suffix");
    if (v && v->type != BN_JSON_NULL && !(v->type == BN_JSON_STRING && v->len == 0))
        return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: BPE end_of_word_suffix is not supported", L->what);
    t->byte_fallback = bn_json_bool(model, "byte_fallback", 0);
    t->fuse_unk = bn_json_bool(model, "fuse_unk", 0);
    t->ignore_merges = bn_json_bool(model, "ignore_merges", 0);

    /* ids: the largest over the vocab and the added tokens */
    for (i = 0; i < vocab->len; i++) {
        const bn_json *e = &vocab->child[i];
        if (!bn__json_int_in(e, 0, INT_MAX - 1))
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: vocab entry %d has no valid id", L->what, i);
        if ((int)e->num > max_id) max_id = (int)e->num;
        total += (size_t)e->key_len + 1;
    }
    if (added)
        for (i = 0; i < added->len; i++) {
            const bn_json *id = bn_json_get(&added->child[i], "id"), *c = bn_json_get(&added->child[i], "content");
            if (!bn__json_int_in(id, 0, INT_MAX - 1) || !c || c->type != BN_JSON_STRING || c->len == 0)
                return bn_errorf(L->err, BN_ERR_FORMAT, "%s: added_tokens[%d] needs an id and a non-empty content",
                                 L->what, i);
            if ((int)id->num > max_id) max_id = (int)id->num;
            total += (size_t)c->len * 2 + 2;
        }
    /* Ids number the entries: the per-id tables are sized by the largest id, so
       it must be justified by entries that exist (a gap is allowed, up to as many
       ids as there are entries), else a 48-byte file could ask for gigabytes. */
    n_entries = (size_t)vocab->len + (added ? (size_t)added->len : 0);
    if ((size_t)max_id >= 2 * n_entries)
        return bn_errorf(L->err, BN_ERR_FORMAT, "%s: token id %d is beyond what %lu vocab and added_tokens entries "
                         "can number (ids must be below twice the number of entries)", L->what, max_id,
                         (unsigned long)n_entries);
    t->n_vocab = max_id + 1;
    t->tok_off = BN_ZALLOC(size_t, t->n_vocab + 1);
    t->tok_len = BN_ALLOC(int32_t, t->n_vocab + 1);
    t->tok_special = BN_ZALLOC(unsigned char, t->n_vocab + 1);
    t->vmask = bn__table_size((size_t)vocab->len) - 1;
    t->vhash = BN_ALLOC(int32_t, (size_t)t->vmask + 1);
    t->store_cap = total + 4096;
    t->store = (char *)BN_MALLOC(t->store_cap);
    if (!t->tok_off || !t->tok_len || !t->tok_special || !t->vhash || !t->store) return bn__tok_nomem(L);
    for (i = 0; i < t->n_vocab; i++) t->tok_len[i] = -1;
    memset(t->vhash, 0xff, ((size_t)t->vmask + 1) * sizeof(int32_t));
    for (i = 0; i < vocab->len; i++) {
        const bn_json *e = &vocab->child[i];
        int32_t id = (int32_t)e->num;
        uint32_t h;
        size_t off;
        if (t->tok_len[id] >= 0)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: vocab id %d is used twice", L->what, (int)id);
        if (bn__vocab_find(t, e->key, (size_t)e->key_len) >= 0)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: vocab token \"%s\" appears twice", L->what, e->key);
        if (!bn__store_add(t, e->key, (size_t)e->key_len, &off)) return bn__tok_nomem(L);
        t->tok_off[id] = off;
        t->tok_len[id] = e->key_len;
        h = (uint32_t)bn__hash_bytes(e->key, (size_t)e->key_len) & t->vmask;
        while (t->vhash[h] >= 0) h = (h + 1) & t->vmask;
        t->vhash[h] = id;
    }

    /* merges: "a b" strings or ["a", "b"] pairs; rank = position; the later wins on a repeat */
    t->n_merges = (size_t)merges->len;
    t->mmask = bn__table_size(t->n_merges) - 1;
    t->mhash = BN_ALLOC(bn__merge_slot, (size_t)t->mmask + 1);
    if (!t->mhash) return bn__tok_nomem(L);
    memset(t->mhash, 0xff, ((size_t)t->mmask + 1) * sizeof(bn__merge_slot));
    memset(&tmp, 0, sizeof tmp);
    t->split_at_marker = bn__vocab_find(t, "\xe2\x96\x81", 3) >= 0; /* U+2581, SentencePiece's space */
    for (i = 0; i < merges->len; i++) {
        const bn_json *m = &merges->child[i];
        const char *a, *b;
        size_t an, bn;
        int32_t ia, ib, inew;
        uint64_t key;
        uint32_t h;
        if (m->type == BN_JSON_STRING) {
            const char *sp = (const char *)memchr(m->str, ' ', (size_t)m->len);
            if (!sp || memchr(sp + 1, ' ', (size_t)(m->str + m->len - sp - 1))) {
                BN_FREE(tmp.p);
                return bn_errorf(L->err, BN_ERR_FORMAT, "%s: merges[%d] \"%s\" is not two tokens separated by a space",
                                 L->what, i, m->str);
            }
            a = m->str;
            an = (size_t)(sp - m->str);
            b = sp + 1;
            bn = (size_t)(m->str + m->len - b);
        } else if (m->type == BN_JSON_ARRAY && m->len == 2 && m->child[0].type == BN_JSON_STRING &&
                   m->child[1].type == BN_JSON_STRING) {
            a = m->child[0].str;
            an = (size_t)m->child[0].len;
            b = m->child[1].str;
            bn = (size_t)m->child[1].len;
        } else {
            BN_FREE(tmp.p);
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", L->what, i);
        }
        if (bn >= 3 && memcmp(b, "\xe2\x96\x81", 3) == 0 && !(an >= 3 && memcmp(a + an - 3, "\xe2\x96\x81", 3) == 0))
            t->split_at_marker = 0; /* a merge joins something else to a following marker */
        tmp.len = 0;
        if (!bn__buf_add(&tmp, a, an) || !bn__buf_add(&tmp, b, bn)) {
            BN_FREE(tmp.p);
            return bn__tok_nomem(L);
        }
        ia = bn__vocab_find(t, a, an);
        ib = bn__vocab_find(t, b, bn);
        inew = bn__vocab_find(t, tmp.p, tmp.len);
        if (ia < 0 || ib < 0 || inew < 0) {
            bn_status st = bn_errorf(L->err, BN_ERR_FORMAT, "%s: merges[%d]: token \"%s\" is not in the vocab",
                                     L->what, i, ia < 0 ? a : ib < 0 ? b : tmp.p);
            BN_FREE(tmp.p);
            return st;
        }
        key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
        h = (uint32_t)bn__hash_u64(key) & t->mmask;
        while (t->mhash[h].key != ~(uint64_t)0 && t->mhash[h].key != key) h = (h + 1) & t->mmask;
        t->mhash[h].key = key;
        t->mhash[h].rank = (uint32_t)i;
        t->mhash[h].new_id = inew;
    }
    BN_FREE(tmp.p);

    v = bn_json_get(model, "unk_token");
    t->unk_id = -1;
    if (v && v->type == BN_JSON_STRING) {
        t->unk_id = bn__vocab_find(t, v->str, (size_t)v->len);
        if (t->unk_id < 0)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: unk_token \"%s\" is not in the vocab", L->what, v->str);
    }
    for (i = 0; i < 256; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", i);
        t->byte_id[i] = bn__vocab_find(t, name, 6);
    }
    for (i = 0; i < BN__CHAR_CACHE; i++) {
        char u[4];
        t->char_id[i] = bn__vocab_find(t, u, bn__utf8_put(u, (unsigned)i));
    }
    return BN_OK;
}

static bn_status bn__load_added(bn__loader *L, const bn_json *added) {
    bn_tokenizer *t = L->t;
    int i;
    if (!added || added->type == BN_JSON_NULL) return BN_OK;
    if (added->type != BN_JSON_ARRAY) return bn_errorf(L->err, BN_ERR_FORMAT, "%s: added_tokens is not an array", L->what);
    t->added = BN_ZALLOC(bn__added_token, added->len + 1);
    if (!t->added) return bn__tok_nomem(L);
    for (i = 0; i < added->len; i++) {
        const bn_json *a = &added->child[i];
        const bn_json *c = bn_json_get(a, "content");
        bn__added_token *at = &t->added[t->n_added++];
        size_t off;
        at->id = (int32_t)bn_json_number(a, "id", 0); /* validated in bn__load_model */
        at->special = (unsigned char)bn_json_bool(a, "special", 0);
        at->lstrip = (unsigned char)bn_json_bool(a, "lstrip", 0);
        at->rstrip = (unsigned char)bn_json_bool(a, "rstrip", 0);
        at->normalized = (unsigned char)bn_json_bool(a, "normalized", !at->special);
        at->single_word = (unsigned char)bn_json_bool(a, "single_word", 0);
        if (!bn__store_add(t, c->str, (size_t)c->len, &off)) return bn__tok_nomem(L);
        at->len = (size_t)c->len;
        at->off = off;
        t->tok_off[at->id] = off; /* offsets now; pointers once the store stops moving */
        t->tok_len[at->id] = c->len;
        t->tok_special[at->id] = (unsigned char)(at->special | (at->normalized ? 2 : 0));
        if (at->normalized) t->has_normalized_added = 1;
    }
    return BN_OK;
}

typedef struct bn__msort {
    unsigned first;
    size_t len;
    int32_t idx;
} bn__msort;

static int bn__msort_cmp(const void *pa, const void *pb) {
    const bn__msort *a = (const bn__msort *)pa, *b = (const bn__msort *)pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* The matcher of the added tokens with normalized == norm (by their normalized form then). */
static int bn__matcher_build(bn__matcher *m, const bn_tokenizer *t, int norm) {
    bn__msort *v = BN_ALLOC(bn__msort, t->n_added + 1);
    int i, n = 0, b, k = 0;
    if (!v) return 0;
    for (i = 0; i < t->n_added; i++) {
        const bn__added_token *a = &t->added[i];
        const char *s = norm ? a->norm : a->content;
        size_t len = norm ? a->norm_len : a->len;
        if ((int)a->normalized != norm || !s || len == 0) continue;
        v[n].first = (unsigned char)s[0];
        v[n].len = len;
        v[n].idx = i;
        n++;
    }
    qsort(v, (size_t)n, sizeof *v, bn__msort_cmp);
    m->idx = BN_ALLOC(int32_t, n + 1);
    if (!m->idx) {
        BN_FREE(v);
        return 0;
    }
    for (i = 0; i < n; i++) m->idx[i] = v[i].idx;
    for (b = 0; b <= 256; b++) {
        while (k < n && (int)v[k].first < b) k++;
        m->first[b] = k;
    }
    BN_FREE(v);
    return 1;
}

/* A step's string parameter, copied into the store; the pointer is set once
   the store stops moving (bn__fix_step_strings). */
static int bn__step_str(bn__loader *L, const bn_json *v, size_t *off, size_t *n) {
    if (!bn__store_add(L->t, v->str, (size_t)v->len, off)) return 0;
    *n = (size_t)v->len;
    return 1;
}

static bn_status bn__unsupported(bn__loader *L, const char *what, const bn_json *node) {
    const char *type = bn_json_string(node, "type", NULL);
    if (!type) return bn_errorf(L->err, BN_ERR_FORMAT, "%s: %s without a \"type\"", L->what, what);
    return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: %s \"%s\" is not supported", L->what, what, type);
}

static bn_status bn__string_pattern(bn__loader *L, const char *what, const bn_json *node, const bn_json **out) {
    const bn_json *pat = bn_json_get(node, "pattern"), *s = bn_json_get(pat, "String");
    if (!s || s->type != BN_JSON_STRING) {
        if (bn_json_get(pat, "Regex"))
            return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: %s with a Regex pattern is not supported (only String)",
                             L->what, what);
        return bn_errorf(L->err, BN_ERR_FORMAT, "%s: %s needs a pattern", L->what, what);
    }
    if (s->len == 0) return bn_errorf(L->err, BN_ERR_FORMAT, "%s: %s has an empty pattern", L->what, what);
    *out = s;
    return BN_OK;
}

static bn_status bn__load_normalizer(bn__loader *L, const bn_json *n) {
    bn_tokenizer *t = L->t;
    const char *type;
    bn__tok_step *st;
    if (!n || n->type == BN_JSON_NULL) return BN_OK;
    type = bn_json_string(n, "type", "");
    if (strcmp(type, "Sequence") == 0) {
        const bn_json *list = bn_json_get(n, "normalizers");
        int i;
        if (!list || list->type != BN_JSON_ARRAY)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: normalizer Sequence without \"normalizers\"", L->what);
        for (i = 0; i < list->len; i++) {
            bn_status s = bn__load_normalizer(L, &list->child[i]);
            if (s) return s;
        }
        return BN_OK;
    }
    if (t->n_norm == BN__TOK_MAX_STEPS) return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: too many normalizers", L->what);
    st = &t->norm[t->n_norm];
    memset(st, 0, sizeof *st);
    if (strcmp(type, "Prepend") == 0) {
        const bn_json *p = bn_json_get(n, "prepend");
        if (!p || p->type != BN_JSON_STRING)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: Prepend normalizer without \"prepend\"", L->what);
        st->kind = BN__NORM_PREPEND;
        if (!bn__step_str(L, p, &st->a_off, &st->a_len)) return bn__tok_nomem(L);
    } else if (strcmp(type, "Replace") == 0) {
        const bn_json *pat = NULL, *c = bn_json_get(n, "content");
        bn_status s = bn__string_pattern(L, "Replace normalizer", n, &pat);
        if (s) return s;
        if (!c || c->type != BN_JSON_STRING)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: Replace normalizer without \"content\"", L->what);
        st->kind = BN__NORM_REPLACE;
        if (!bn__step_str(L, pat, &st->a_off, &st->a_len) || !bn__step_str(L, c, &st->b_off, &st->b_len))
            return bn__tok_nomem(L);
    } else {
        return bn__unsupported(L, "normalizer", n);
    }
    t->n_norm++;
    return BN_OK;
}

/* The split patterns we recognize, exactly as tokenizer.json spells them. */
static const char bn__re_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char bn__re_gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Metaspace's options, shared by the pre-tokenizer and the decoder. Files from
   before prepend_scheme existed say add_prefix_space (true = always). */
static bn_status bn__load_metaspace(bn__loader *L, const bn_json *m, bn__tok_step *st) {
    const bn_json *r = bn_json_get(m, "replacement");
    const char *scheme = bn_json_string(m, "prepend_scheme", NULL);
    size_t cl = 0;
    if (!r || r->type != BN_JSON_STRING || r->len == 0)
        return bn_errorf(L->err, BN_ERR_FORMAT, "%s: Metaspace needs a replacement character", L->what);
    bn__utf8_next(r->str, (size_t)r->len, &cl);
    if (cl != (size_t)r->len)
        return bn_errorf(L->err, BN_ERR_FORMAT, "%s: Metaspace replacement must be one character", L->what);
    if (!scheme) st->prepend = bn_json_bool(m, "add_prefix_space", 1) ? BN__PREPEND_ALWAYS : BN__PREPEND_NEVER;
    else if (strcmp(scheme, "always") == 0) st->prepend = BN__PREPEND_ALWAYS;
    else if (strcmp(scheme, "first") == 0) st->prepend = BN__PREPEND_FIRST;
    else if (strcmp(scheme, "never") == 0) st->prepend = BN__PREPEND_NEVER;
    else return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: Metaspace prepend_scheme \"%s\"", L->what, scheme);
    st->split = bn_json_bool(m, "split", 1);
    if (!bn__step_str(L, r, &st->a_off, &st->a_len)) return bn__tok_nomem(L);
    return BN_OK;
}

static bn_status bn__load_pretokenizer(bn__loader *L, const bn_json *p) {
    bn_tokenizer *t = L->t;
    const char *type;
    bn__tok_step *st;
    if (!p || p->type == BN_JSON_NULL) return BN_OK;
    type = bn_json_string(p, "type", "");
    if (strcmp(type, "Sequence") == 0) {
        const bn_json *list = bn_json_get(p, "pretokenizers");
        int i;
        if (!list || list->type != BN_JSON_ARRAY)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: pre_tokenizer Sequence without \"pretokenizers\"", L->what);
        for (i = 0; i < list->len; i++) {
            bn_status s = bn__load_pretokenizer(L, &list->child[i]);
            if (s) return s;
        }
        return BN_OK;
    }
    if (t->n_pre == BN__TOK_MAX_STEPS)
        return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: too many pre-tokenizers", L->what);
    st = &t->pre[t->n_pre];
    memset(st, 0, sizeof *st);
    if (strcmp(type, "Split") == 0) {
        const bn_json *re = bn_json_get(bn_json_get(p, "pattern"), "Regex");
        const char *behavior = bn_json_string(p, "behavior", "");
        if (!re || re->type != BN_JSON_STRING)
            return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: Split pre-tokenizer: only the LLaMA 3 and GPT-2 Regex "
                             "patterns are supported", L->what);
        if (bn_json_streq(re, bn__re_llama3)) st->regex = BN__RE_LLAMA3;
        else if (bn_json_streq(re, bn__re_gpt2)) st->regex = BN__RE_GPT2;
        else
            return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: Split pre-tokenizer pattern \"%.200s\" is not supported "
                             "(only the LLaMA 3 and GPT-2 patterns)", L->what, re->str);
        if (strcmp(behavior, "Isolated") != 0 || bn_json_bool(p, "invert", 0))
            return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: Split pre-tokenizer behavior \"%s\"%s is not supported "
                             "(only Isolated, not inverted)", L->what, behavior, bn_json_bool(p, "invert", 0) ? " inverted" : "");
        st->kind = BN__PRE_SPLIT;
    } else if (strcmp(type, "ByteLevel") == 0) {
        st->kind = BN__PRE_BYTELEVEL;
        st->add_prefix_space = bn_json_bool(p, "add_prefix_space", 1);
        st->use_regex = bn_json_bool(p, "use_regex", 1);
    } else if (strcmp(type, "Metaspace") == 0) {
        bn_status s = bn__load_metaspace(L, p, st);
        if (s) return s;
        st->kind = BN__PRE_METASPACE;
    } else if (strcmp(type, "Digits") == 0) {
        st->kind = BN__PRE_DIGITS;
        st->individual = bn_json_bool(p, "individual_digits", 0);
    } else {
        return bn__unsupported(L, "pre_tokenizer", p);
    }
    t->n_pre++;
    return BN_OK;
}

static bn_status bn__load_decoder(bn__loader *L, const bn_json *d) {
    bn_tokenizer *t = L->t;
    const char *type;
    bn__tok_step *st;
    if (!d || d->type == BN_JSON_NULL) return BN_OK;
    t->has_decoder = 1;
    type = bn_json_string(d, "type", "");
    if (strcmp(type, "Sequence") == 0) {
        const bn_json *list = bn_json_get(d, "decoders");
        int i;
        if (!list || list->type != BN_JSON_ARRAY)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: decoder Sequence without \"decoders\"", L->what);
        for (i = 0; i < list->len; i++) {
            bn_status s = bn__load_decoder(L, &list->child[i]);
            if (s) return s;
        }
        return BN_OK;
    }
    if (t->n_dec == BN__TOK_MAX_STEPS) return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: too many decoders", L->what);
    st = &t->dec[t->n_dec];
    memset(st, 0, sizeof *st);
    if (strcmp(type, "ByteLevel") == 0) {
        st->kind = BN__DEC_BYTELEVEL;
    } else if (strcmp(type, "ByteFallback") == 0) {
        st->kind = BN__DEC_BYTEFALLBACK;
    } else if (strcmp(type, "Fuse") == 0) {
        st->kind = BN__DEC_FUSE;
    } else if (strcmp(type, "Metaspace") == 0) {
        bn_status s = bn__load_metaspace(L, d, st);
        if (s) return s;
        st->kind = BN__DEC_METASPACE;
    } else if (strcmp(type, "Replace") == 0) {
        const bn_json *pat = NULL, *c = bn_json_get(d, "content");
        bn_status s = bn__string_pattern(L, "Replace decoder", d, &pat);
        if (s) return s;
        if (!c || c->type != BN_JSON_STRING)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: Replace decoder without \"content\"", L->what);
        st->kind = BN__DEC_REPLACE;
        if (!bn__step_str(L, pat, &st->a_off, &st->a_len) || !bn__step_str(L, c, &st->b_off, &st->b_len))
            return bn__tok_nomem(L);
    } else if (strcmp(type, "Strip") == 0) {
        const bn_json *c = bn_json_get(d, "content"), *a = bn_json_get(d, "start"), *b = bn_json_get(d, "stop");
        size_t cl = 0;
        if (!c || c->type != BN_JSON_STRING || c->len == 0 || !bn__json_int_in(a, 0, 1 << 20) ||
            !bn__json_int_in(b, 0, 1 << 20))
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: Strip decoder needs a content character, start and stop",
                             L->what);
        bn__utf8_next(c->str, (size_t)c->len, &cl);
        if (cl != (size_t)c->len)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: Strip decoder content must be one character", L->what);
        st->kind = BN__DEC_STRIP;
        st->start = (int)a->num;
        st->stop = (int)b->num;
        if (!bn__step_str(L, c, &st->a_off, &st->a_len)) return bn__tok_nomem(L);
    } else {
        return bn__unsupported(L, "decoder", d);
    }
    t->n_dec++;
    return BN_OK;
}

/* Post-processors: ByteLevel (no effect on ids), TemplateProcessing (its
   "single" template: special tokens around sequence A), Sequence. */
static bn_status bn__load_post(bn__loader *L, const bn_json *p) {
    bn_tokenizer *t = L->t;
    const char *type;
    if (!p || p->type == BN_JSON_NULL) return BN_OK;
    type = bn_json_string(p, "type", "");
    if (strcmp(type, "Sequence") == 0) {
        const bn_json *list = bn_json_get(p, "processors");
        int i;
        if (!list || list->type != BN_JSON_ARRAY)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: post_processor Sequence without \"processors\"", L->what);
        for (i = 0; i < list->len; i++) {
            bn_status s = bn__load_post(L, &list->child[i]);
            if (s) return s;
        }
        return BN_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) return BN_OK; /* only moves offsets */
    if (strcmp(type, "TemplateProcessing") == 0) {
        const bn_json *single = bn_json_get(p, "single"), *specials = bn_json_get(p, "special_tokens");
        int i, j, seen_a = 0, n = 0;
        if (t->post_prefix || t->post_suffix)
            return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: more than one TemplateProcessing", L->what);
        if (!single || single->type != BN_JSON_ARRAY)
            return bn_errorf(L->err, BN_ERR_FORMAT, "%s: TemplateProcessing without a \"single\" template", L->what);
        for (i = 0; i < single->len; i++) { /* count ids */
            const bn_json *sp = bn_json_get(&single->child[i], "SpecialToken");
            const bn_json *ids = bn_json_get(bn_json_get(specials, bn_json_string(sp, "id", "")), "ids");
            if (sp) n += ids && ids->type == BN_JSON_ARRAY ? ids->len : 0;
        }
        t->post_prefix = BN_ALLOC(int32_t, n + 1);
        t->post_suffix = BN_ALLOC(int32_t, n + 1);
        if (!t->post_prefix || !t->post_suffix) return bn__tok_nomem(L);
        for (i = 0; i < single->len; i++) {
            const bn_json *item = &single->child[i];
            const bn_json *sp = bn_json_get(item, "SpecialToken"), *seq = bn_json_get(item, "Sequence");
            if (seq) {
                if (seen_a || !bn_json_streq(bn_json_get(seq, "id"), "A"))
                    return bn_errorf(L->err, BN_ERR_UNSUPPORTED,
                                     "%s: TemplateProcessing \"single\" must hold sequence A once", L->what);
                seen_a = 1;
            } else if (sp) {
                const char *name = bn_json_string(sp, "id", "");
                const bn_json *ids = bn_json_get(bn_json_get(specials, name), "ids");
                if (!ids || ids->type != BN_JSON_ARRAY)
                    return bn_errorf(L->err, BN_ERR_FORMAT, "%s: TemplateProcessing special token \"%s\" has no ids",
                                     L->what, name);
                for (j = 0; j < ids->len; j++) {
                    if (!bn__json_int_in(&ids->child[j], 0, t->n_vocab - 1))
                        return bn_errorf(L->err, BN_ERR_FORMAT, "%s: TemplateProcessing special token \"%s\": bad id",
                                         L->what, name);
                    if (seen_a) t->post_suffix[t->n_post_suffix++] = (int32_t)ids->child[j].num;
                    else t->post_prefix[t->n_post_prefix++] = (int32_t)ids->child[j].num;
                }
            } else {
                return bn_errorf(L->err, BN_ERR_FORMAT, "%s: TemplateProcessing item %d is neither SpecialToken nor "
                                 "Sequence", L->what, i);
            }
        }
        if (!seen_a)
            return bn_errorf(L->err, BN_ERR_UNSUPPORTED, "%s: TemplateProcessing \"single\" without sequence A", L->what);
        return BN_OK;
    }
    return bn__unsupported(L, "post_processor", p);
}

static void bn__fix_step_strings(bn_tokenizer *t, bn__tok_step *steps, int n) {
    int i;
    for (i = 0; i < n; i++) {
        steps[i].a = t->store + steps[i].a_off;
        steps[i].b = t->store + steps[i].b_off;
    }
}

static bn_status bn__normalize(const bn_tokenizer *t, bn__buf *buf, size_t off, size_t len, size_t *out_off,
                               size_t *out_len);

/* Recognize the chat template of tokenizer_config.json. */
static void bn__load_config(bn__loader *L, const bn_json *cfg) {
    bn_tokenizer *t = L->t;
    const bn_json *tmpl, *v;
    const char *s = NULL;
    int k;
    t->bos_id = t->eos_id = -1;
    t->chat = BN_CHAT_UNKNOWN;
    if (!cfg) return;
    for (k = 0; k < 2; k++) { /* bos_token / eos_token: a string or {"content": ...} */
        const char *name;
        v = bn_json_get(cfg, k == 0 ? "bos_token" : "eos_token");
        name = v && v->type == BN_JSON_STRING ? v->str : bn_json_string(v, "content", NULL);
        if (name) {
            int32_t id = bn_tokenizer_token_to_id(t, name, strlen(name));
            if (k == 0) {
                t->bos_id = id;
                if (id >= 0) t->bos_token = t->store + t->tok_off[id];
            } else {
                t->eos_id = id;
            }
        }
    }
    tmpl = bn_json_get(cfg, "chat_template");
    if (tmpl && tmpl->type == BN_JSON_STRING) s = tmpl->str;
    if (tmpl && tmpl->type == BN_JSON_ARRAY) { /* [{"name": "default", "template": ...}, ...] */
        int i;
        for (i = 0; i < tmpl->len; i++)
            if (bn_json_streq(bn_json_get(&tmpl->child[i], "name"), "default"))
                s = bn_json_string(&tmpl->child[i], "template", NULL);
    }
    if (!s) return;
    /* Llama 3's template; not Llama 3.1's, which adds a dated system block and tools */
    if ((strstr(s, "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'") ||
         strstr(s, "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'")) &&
        !strstr(s, "Knowledge") && !strstr(s, "tools"))
        t->chat = BN_CHAT_LLAMA3;
    else if (strstr(s, "message['role'] | capitalize + ': '") && strstr(s, "<|eot_id|>") && strstr(s, "'Assistant: '"))
        t->chat = BN_CHAT_BITNET;
    t->chat_gen_prompt_always = t->chat != BN_CHAT_UNKNOWN && !strstr(s, "add_generation_prompt");
}

BN_API bn_status bn_tokenizer_load_memory(bn_tokenizer **out, const char *json, size_t len, const char *config,
                                          size_t config_len, const char *what, bn_error *err) {
    bn_json_doc doc, cdoc;
    bn__loader L;
    bn_tokenizer *t;
    bn_status st;
    const bn_json *root, *v, *added;
    int i;
    *out = NULL;
    if (!what) what = "tokenizer.json";
    st = bn_json_parse(&doc, json, len, what, err);
    if (st) return st;
    memset(&cdoc, 0, sizeof cdoc);
    if (config) {
        st = bn_json_parse(&cdoc, config, config_len, "tokenizer_config.json", err);
        if (st) {
            bn_json_free(&doc);
            return st;
        }
    }
    t = BN_ZALLOC(bn_tokenizer, 1);
    if (!t) {
        bn_json_free(&doc);
        bn_json_free(&cdoc);
        return bn_errorf(err, BN_ERR_NOMEM, "%s: out of memory", what);
    }
    L.t = t;
    L.what = what;
    L.err = err;
    bn__bytelevel_init(t);
    root = doc.root;
    added = bn_json_get(root, "added_tokens");
    if (root->type != BN_JSON_OBJECT) st = bn_errorf(err, BN_ERR_FORMAT, "%s: not a JSON object", what);
    if (!st && added && added->type != BN_JSON_ARRAY && added->type != BN_JSON_NULL)
        st = bn_errorf(err, BN_ERR_FORMAT, "%s: added_tokens is not an array", what);
    if (!st && added && added->type != BN_JSON_ARRAY) added = NULL;
    v = bn_json_get(root, "truncation");
    if (!st && v && v->type != BN_JSON_NULL)
        st = bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: truncation is not supported (set it to null)", what);
    if (!st) st = bn__load_model(&L, bn_json_get(root, "model"), added);
    if (!st) st = bn__load_added(&L, added);
    if (!st) st = bn__load_normalizer(&L, bn_json_get(root, "normalizer"));
    if (!st) st = bn__load_pretokenizer(&L, bn_json_get(root, "pre_tokenizer"));
    if (!st) st = bn__load_post(&L, bn_json_get(root, "post_processor"));
    if (!st) st = bn__load_decoder(&L, bn_json_get(root, "decoder"));
    if (!st) {
        /* the store no longer moves: turn offsets into pointers */
        bn__fix_step_strings(t, t->norm, t->n_norm);
        bn__fix_step_strings(t, t->pre, t->n_pre);
        bn__fix_step_strings(t, t->dec, t->n_dec);
        for (i = 0; i < t->n_added; i++) {
            bn__added_token *a = &t->added[i];
            a->content = t->store + a->off;
        }
        /* normalized added tokens are matched in normalized text, as their normalized form */
        for (i = 0; !st && i < t->n_added; i++) {
            bn__added_token *a = &t->added[i];
            bn__buf b;
            size_t off = 0, nl = 0;
            if (!a->normalized) continue;
            memset(&b, 0, sizeof b);
            if (!bn__buf_add(&b, a->content, a->len)) st = bn__tok_nomem(&L);
            if (!st) st = bn__normalize(t, &b, 0, a->len, &off, &nl);
            if (!st) {
                a->norm = (const char *)BN_MALLOC(nl + 1);
                if (!a->norm) st = bn__tok_nomem(&L);
                else memcpy((char *)a->norm, b.p + off, nl);
                a->norm_len = nl;
            }
            BN_FREE(b.p);
        }
        if (!st && (!bn__matcher_build(&t->raw_match, t, 0) || !bn__matcher_build(&t->norm_match, t, 1)))
            st = bn__tok_nomem(&L);
    }
    if (!st) bn__load_config(&L, cdoc.root);
    bn_json_free(&doc);
    bn_json_free(&cdoc);
    if (st) {
        bn_tokenizer_free(t);
        return st;
    }
    *out = t;
    return BN_OK;
}

BN_API bn_status bn_tokenizer_load(bn_tokenizer **out, const char *dir, bn_error *err) {
    char *path = bn__path_join(dir, "tokenizer.json"), *cpath = bn__path_join(dir, "tokenizer_config.json");
    char *json = NULL, *cfg = NULL;
    size_t len = 0, clen = 0;
    bn_status st;
    *out = NULL;
    if (!path || !cpath) {
        BN_FREE(path);
        BN_FREE(cpath);
        return bn_errorf(err, BN_ERR_NOMEM, "out of memory");
    }
    st = bn_read_file(path, &json, &len, err);
    if (st == BN_OK) {
        FILE *f = fopen(cpath, "rb"); /* optional */
        if (f) {
            fclose(f);
            st = bn_read_file(cpath, &cfg, &clen, err);
        }
    }
    if (st == BN_OK) st = bn_tokenizer_load_memory(out, json, len, cfg, clen, path, err);
    BN_FREE(json);
    BN_FREE(cfg);
    BN_FREE(path);
    BN_FREE(cpath);
    return st;
}

BN_API void bn_tokenizer_free(bn_tokenizer *t) {
    int i;
    if (!t) return;
    for (i = 0; i < t->n_added; i++) BN_FREE((void *)t->added[i].norm);
    BN_FREE(t->store);
    BN_FREE(t->tok_off);
    BN_FREE(t->tok_len);
    BN_FREE(t->tok_special);
    BN_FREE(t->vhash);
    BN_FREE(t->mhash);
    BN_FREE(t->added);
    BN_FREE(t->raw_match.idx);
    BN_FREE(t->norm_match.idx);
    BN_FREE(t->post_prefix);
    BN_FREE(t->post_suffix);
    BN_FREE(t);
}

BN_API int bn_tokenizer_vocab_size(const bn_tokenizer *t) { return t->n_vocab; }

BN_API size_t bn_tokenizer_memory(const bn_tokenizer *t) {
    size_t n = sizeof *t + t->store_cap + (size_t)(t->n_vocab + 1) * (sizeof(size_t) + sizeof(int32_t) + 1);
    n += ((size_t)t->vmask + 1) * sizeof(int32_t) + ((size_t)t->mmask + 1) * sizeof(bn__merge_slot);
    n += (size_t)(t->n_added + 1) * (sizeof(bn__added_token) + 2 * sizeof(int32_t));
    n += (size_t)(t->n_post_prefix + t->n_post_suffix + 2) * sizeof(int32_t);
    return n;
}

BN_API int32_t bn_tokenizer_token_to_id(const bn_tokenizer *t, const char *s, size_t len) {
    int i;
    for (i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->added[i].content, s, len) == 0)
            return t->added[i].id;
    return bn__vocab_find(t, s, len);
}

BN_API const char *bn_tokenizer_id_to_token(const bn_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab || t->tok_len[id] < 0) return NULL;
    if (len) *len = (size_t)t->tok_len[id];
    return t->store + t->tok_off[id];
}

BN_API int bn_tokenizer_is_special(const bn_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->tok_special[id] & 1);
}

BN_API int32_t bn_tokenizer_bos_id(const bn_tokenizer *t) { return t->bos_id; }
BN_API int32_t bn_tokenizer_eos_id(const bn_tokenizer *t) { return t->eos_id; }

/* ----------------------------------------------------------- normalizers */

/* Normalize buf[off, off+len) into a new string appended to buf. */
static bn_status bn__normalize(const bn_tokenizer *t, bn__buf *buf, size_t off, size_t len, size_t *out_off,
                               size_t *out_len) {
    int k;
    for (k = 0; k < t->n_norm; k++) {
        const bn__tok_step *st = &t->norm[k];
        size_t start = buf->len, i;
        if (st->kind == BN__NORM_PREPEND) {
            if (len == 0) continue; /* HF prepends only to non-empty text */
            if (!bn__buf_reserve(buf, st->a_len + len)) return BN_ERR_NOMEM;
            memcpy(buf->p + buf->len, st->a, st->a_len);
            memcpy(buf->p + buf->len + st->a_len, buf->p + off, len);
            buf->len += st->a_len + len;
        } else { /* BN__NORM_REPLACE: every non-overlapping occurrence, left to right */
            size_t count = 0;
            for (i = 0; i + st->a_len <= len;) {
                if (memcmp(buf->p + off + i, st->a, st->a_len) == 0) { count++; i += st->a_len; }
                else i++;
            }
            if (!bn__buf_reserve(buf, len + count * st->b_len)) return BN_ERR_NOMEM;
            for (i = 0; i < len;) {
                if (i + st->a_len <= len && memcmp(buf->p + off + i, st->a, st->a_len) == 0) {
                    memcpy(buf->p + buf->len, st->b, st->b_len);
                    buf->len += st->b_len;
                    i += st->a_len;
                } else {
                    buf->p[buf->len++] = buf->p[off + i++];
                }
            }
        }
        buf->p[buf->len] = 0;
        off = start;
        len = buf->len - start;
    }
    *out_off = off;
    *out_len = len;
    return BN_OK;
}

/* ------------------------------------------------------ pre-tokenizers */

/* Split patterns as hand-written scanners, not a regex engine. Each one
   returns the length of the match that the regex (Oniguruma semantics:
   alternatives tried left to right, greedy quantifiers with backtracking)
   finds starting at s[i]; the alternatives are commented where they are
   checked. Both patterns match at every position (every character is a
   letter, a number, whitespace or "other"), so a split is just the sequence of
   these matches. Character classes come from unicode_tables.h. */

static int bn__class_at(const char *s, size_t n, size_t i, uint32_t *cp, size_t *len) {
    uint32_t c;
    if ((unsigned char)s[i] < 0x80) {
        *len = 1;
        c = (unsigned char)s[i];
    } else {
        c = bn__utf8_next(s + i, n - i, len);
    }
    if (cp) *cp = c;
    return bn__uc_class(c);
}

/* End of the run of characters of class cls starting at i. */
static size_t bn__run_end(const char *s, size_t n, size_t i, int cls) {
    while (i < n) {
        size_t l;
        if (bn__class_at(s, n, i, NULL, &l) != cls) break;
        i += l;
    }
    return i;
}

/* 's 't 're 've 'm 'll 'd after the apostrophe at s[i-1]; icase: as (?i:...),
   where simple case folding also lets U+017F (long s) match 's'. */
static size_t bn__contraction(const char *s, size_t n, size_t i, int icase) {
    char c0, c1;
    if (i >= n) return 0;
    c0 = s[i];
    c1 = i + 1 < n ? s[i + 1] : 0;
    if (icase) {
        if (c0 >= 'A' && c0 <= 'Z') c0 = (char)(c0 + 32);
        if (c1 >= 'A' && c1 <= 'Z') c1 = (char)(c1 + 32);
        if ((unsigned char)c0 == 0xc5 && (unsigned char)c1 == 0xbf) return 2; /* U+017F */
    }
    if (c0 == 's' || c0 == 't' || c0 == 'm' || c0 == 'd') return 1;
    if ((c0 == 'r' || c0 == 'v') && c1 == 'e') return 2;
    if (c0 == 'l' && c1 == 'l') return 2;
    return 0;
}

/* The whitespace alternatives shared by both patterns, on the run [i, e):
   \s+(?!\S) takes the run up to the end of text, or all but its last
   character when a non-space follows; \s+ takes what is left (one char). */
static size_t bn__space_tail(const char *s, size_t n, size_t i, size_t e) {
    size_t last = i, j = i;
    if (e == n) return e - i;
    while (j < e) { /* start of the run's last character */
        size_t l;
        last = j;
        bn__utf8_next(s + j, n - j, &l);
        j += l;
    }
    return last > i ? last - i : e - i;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
   \s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t bn__scan_llama3(const char *s, size_t n, size_t i) {
    uint32_t c, c2 = 0;
    size_t l, l2 = 0, j, e;
    int cls = bn__class_at(s, n, i, &c, &l), cls2 = -1;
    if (i + l < n) cls2 = bn__class_at(s, n, i + l, &c2, &l2);
    if (c == '\'') { /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
        size_t m = bn__contraction(s, n, i + 1, 1);
        if (m) return 1 + m;
    }
    if (cls == BN_UC_LETTER) return bn__run_end(s, n, i, BN_UC_LETTER) - i; /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c != '\r' && c != '\n' && cls != BN_UC_NUMBER && cls2 == BN_UC_LETTER)
        return bn__run_end(s, n, i + l, BN_UC_LETTER) - i;
    if (cls == BN_UC_NUMBER) { /* \p{N}{1,3} */
        int k;
        for (j = i, k = 0; k < 3 && j < n; k++) {
            size_t lj;
            if (bn__class_at(s, n, j, NULL, &lj) != BN_UC_NUMBER) break;
            j += lj;
        }
        return j - i;
    }
    j = (c == ' ' && cls2 == BN_UC_OTHER) ? i + 1 : cls == BN_UC_OTHER ? i : n + 1;
    if (j <= n) { /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
        j = bn__run_end(s, n, j, BN_UC_OTHER);
        while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
        return j - i;
    }
    /* cls == BN_UC_SPACE */
    e = bn__run_end(s, n, i, BN_UC_SPACE);
    for (j = e; j > i; j--) /* \s*[\r\n]+ : up to the run's last line break */
        if (s[j - 1] == '\r' || s[j - 1] == '\n') return j - i;
    return bn__space_tail(s, n, i, e);
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t bn__scan_gpt2(const char *s, size_t n, size_t i) {
    uint32_t c, c2 = 0;
    size_t l, l2 = 0;
    int cls = bn__class_at(s, n, i, &c, &l), cls2 = -1;
    if (i + l < n) cls2 = bn__class_at(s, n, i + l, &c2, &l2);
    if (c == '\'') {
        size_t m = bn__contraction(s, n, i + 1, 0);
        if (m) return 1 + m;
    }
    if (c == ' ' && cls2 != BN_UC_SPACE && cls2 != -1) return bn__run_end(s, n, i + 1, cls2) - i; /*  ?X+ */
    if (cls != BN_UC_SPACE) return bn__run_end(s, n, i, cls) - i;                                /* X+ */
    return bn__space_tail(s, n, i, bn__run_end(s, n, i, BN_UC_SPACE));
}

/* --------------------------------------------------------------- BPE */

typedef struct bn__sym {
    int32_t id, prev, next;
    uint32_t len; /* bytes; 0 once merged into its left neighbour */
} bn__sym;

typedef struct bn__heap_item {
    uint32_t rank, pos;
    int32_t new_id;
} bn__heap_item;

/* Per-call scratch space for encoding. */
typedef struct bn__enc {
    const bn_tokenizer *t;
    unsigned flags;
    int at_start;         /* the segment being encoded begins the input */
    size_t norm_start;    /* where its normalized text begins */
    bn__ids out;
    bn__buf text;         /* normalized and pre-tokenized strings */
    bn__spans a, b;       /* pre-tokenizer piece lists */
    bn__sym *sym;
    size_t sym_cap;
    bn__heap_item *heap;
    size_t heap_cap, heap_n;
    /* cache of word -> ids for short words: most words of a text repeat */
    uint32_t *cache;      /* slot -> 1 + index into cache_ent, 0 = empty */
    uint32_t cache_mask, cache_n;
    size_t *cache_ent;    /* per entry: word offset in cache_text, word length, ids offset, ids count */
    size_t cache_ent_cap;
    bn__buf cache_text;
    bn__ids cache_ids;
} bn__enc;

static int bn__heap_less(const bn__heap_item *a, const bn__heap_item *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int bn__heap_push(bn__enc *E, uint32_t rank, uint32_t pos, int32_t new_id) {
    size_t i;
    if (E->heap_n == E->heap_cap) {
        size_t cap = E->heap_cap ? E->heap_cap * 2 : 64;
        bn__heap_item *nh = (bn__heap_item *)BN_REALLOC(E->heap, cap * sizeof(bn__heap_item));
        if (!nh) return 0;
        E->heap = nh;
        E->heap_cap = cap;
    }
    i = E->heap_n++;
    E->heap[i].rank = rank;
    E->heap[i].pos = pos;
    E->heap[i].new_id = new_id;
    while (i > 0) { /* sift up */
        size_t p = (i - 1) / 2;
        bn__heap_item tmp;
        if (!bn__heap_less(&E->heap[i], &E->heap[p])) break;
        tmp = E->heap[i];
        E->heap[i] = E->heap[p];
        E->heap[p] = tmp;
        i = p;
    }
    return 1;
}

static bn__heap_item bn__heap_pop(bn__enc *E) {
    bn__heap_item top = E->heap[0];
    size_t i = 0, n = --E->heap_n;
    E->heap[0] = E->heap[n];
    for (;;) { /* sift down */
        size_t l = 2 * i + 1, r = l + 1, m = i;
        bn__heap_item tmp;
        if (l < n && bn__heap_less(&E->heap[l], &E->heap[m])) m = l;
        if (r < n && bn__heap_less(&E->heap[r], &E->heap[m])) m = r;
        if (m == i) break;
        tmp = E->heap[i];
        E->heap[i] = E->heap[m];
        E->heap[m] = tmp;
        i = m;
    }
    return top;
}

/* Queue the merge of symbol pos with its right neighbour, if the pair has one. */
static int bn__queue_pair(bn__enc *E, int32_t pos) {
    const bn__merge_slot *m;
    int32_t next = E->sym[pos].next;
    if (next < 0) return 1;
    m = bn__merge_find(E->t, E->sym[pos].id, E->sym[next].id);
    return m ? bn__heap_push(E, m->rank, (uint32_t)pos, m->new_id) : 1;
}

static int bn__sym_add(bn__enc *E, size_t *n, int32_t id, size_t len) {
    if (*n == E->sym_cap) {
        size_t cap = E->sym_cap ? E->sym_cap * 2 : 256;
        bn__sym *ns = (bn__sym *)BN_REALLOC(E->sym, cap * sizeof(bn__sym));
        if (!ns) return 0;
        E->sym = ns;
        E->sym_cap = cap;
    }
    E->sym[*n].id = id;
    E->sym[*n].len = (uint32_t)len;
    E->sym[*n].prev = (int32_t)*n - 1;
    E->sym[*n].next = (int32_t)*n + 1;
    (*n)++;
    return 1;
}

/* The initial symbols of a word: one per character (its token), else its
   <0xNN> byte tokens (byte_fallback), else unk (fused when fuse_unk), else
   dropped, in HF's order of checks. */
static int bn__word_symbols(bn__enc *E, const char *w, size_t n, size_t *count) {
    const bn_tokenizer *t = E->t;
    size_t i = 0, unk_len = 0;
    int32_t unk = -1;
    *count = 0;
    while (i < n) {
        size_t l;
        uint32_t cp = bn__utf8_next(w + i, n - i, &l);
        int32_t id = cp < BN__CHAR_CACHE && l == (cp < 0x80 ? 1u : 2u) ? t->char_id[cp] : bn__vocab_find(t, w + i, l);
        if (id >= 0) {
            if (unk >= 0) {
                if (!bn__sym_add(E, count, unk, unk_len)) return 0;
                unk = -1;
            }
            if (!bn__sym_add(E, count, id, l)) return 0;
        } else {
            size_t k, ok = t->byte_fallback;
            for (k = 0; ok && k < l; k++) ok = t->byte_id[(unsigned char)w[i + k]] >= 0;
            if (ok) {
                for (k = 0; k < l; k++)
                    if (!bn__sym_add(E, count, t->byte_id[(unsigned char)w[i + k]], 1)) return 0;
            } else if (t->unk_id >= 0) {
                if (unk >= 0 && t->fuse_unk) {
                    unk_len += l;
                } else {
                    if (unk >= 0 && !bn__sym_add(E, count, unk, unk_len)) return 0;
                    unk = t->unk_id;
                    unk_len = l;
                }
            }
        }
        i += l;
    }
    if (unk >= 0 && !bn__sym_add(E, count, unk, unk_len)) return 0;
    if (*count) E->sym[*count - 1].next = -1;
    return 1;
}

/* HF's merge loop: always merge the queued pair of lowest rank (leftmost on a
   tie); an entry is stale when its left symbol is gone or the pair there no
   longer gives the same token. */
static int bn__bpe_word(bn__enc *E, const char *w, size_t n) {
    size_t count, i;
    int32_t pos;
    if (!bn__word_symbols(E, w, n, &count)) return 0;
    E->heap_n = 0;
    for (i = 0; i + 1 < count; i++)
        if (!bn__queue_pair(E, (int32_t)i)) return 0;
    while (E->heap_n) {
        bn__heap_item top = bn__heap_pop(E);
        bn__sym *s = &E->sym[top.pos];
        const bn__merge_slot *m;
        int32_t next;
        if (s->len == 0 || s->next < 0) continue;
        next = s->next;
        m = bn__merge_find(E->t, s->id, E->sym[next].id);
        if (!m || m->new_id != top.new_id) continue;
        s->id = top.new_id;
        s->len += E->sym[next].len;
        E->sym[next].len = 0;
        s->next = E->sym[next].next;
        if (s->next >= 0) E->sym[s->next].prev = (int32_t)top.pos;
        if (s->prev >= 0 && !bn__queue_pair(E, s->prev)) return 0;
        if (!bn__queue_pair(E, (int32_t)top.pos)) return 0;
    }
    for (pos = count ? 0 : -1; pos >= 0; pos = E->sym[pos].next)
        if (!bn__ids_push(&E->out, E->sym[pos].id)) return 0;
    return 1;
}

#define BN__CACHE_MAX_WORD 64

/* BPE of a word, remembered for the rest of this call when it is short. */
static int bn__bpe_cached(bn__enc *E, size_t off, size_t n) {
    const char *w = E->text.p + off;
    uint32_t h = 0;
    size_t start, k;
    if (n > BN__CACHE_MAX_WORD || !E->cache) return bn__bpe_word(E, w, n);
    h = (uint32_t)bn__hash_bytes(w, n) & E->cache_mask;
    for (;;) {
        uint32_t e = E->cache[h];
        const size_t *ent;
        if (!e) break;
        ent = E->cache_ent + 4 * (e - 1);
        if (ent[1] == n && memcmp(E->cache_text.p + ent[0], w, n) == 0) {
            for (k = 0; k < ent[3]; k++)
                if (!bn__ids_push(&E->out, E->cache_ids.p[ent[2] + k])) return 0;
            return 1;
        }
        h = (h + 1) & E->cache_mask;
    }
    start = E->out.n;
    if (!bn__bpe_word(E, w, n)) return 0;
    if (E->cache_n < E->cache_mask / 2) { /* remember it */
        size_t *ent;
        if ((size_t)E->cache_n * 4 + 4 > E->cache_ent_cap) {
            size_t cap = E->cache_ent_cap ? E->cache_ent_cap * 2 : 1024;
            size_t *ne = (size_t *)BN_REALLOC(E->cache_ent, cap * sizeof(size_t));
            if (!ne) return 0;
            E->cache_ent = ne;
            E->cache_ent_cap = cap;
        }
        ent = E->cache_ent + 4 * (size_t)E->cache_n;
        ent[0] = E->cache_text.len;
        ent[1] = n;
        ent[2] = E->cache_ids.n;
        ent[3] = E->out.n - start;
        if (!bn__buf_add(&E->cache_text, E->text.p + off, n)) return 0;
        for (k = start; k < E->out.n; k++)
            if (!bn__ids_push(&E->cache_ids, E->out.p[k])) return 0;
        E->cache[h] = ++E->cache_n;
    }
    return 1;
}

/* One word through the model: ignore_merges looks the whole word up first.
   A SentencePiece-style model has no pre-tokenizer, so its "word" is the whole
   text. When no merge joins a marker "\xe2\x96\x81" to anything before it
   but another marker (checked at load), no merge can ever cross the point
   before a marker that follows another character, and cutting the word there
   gives exactly HF's result, in short cacheable pieces. */
static int bn__model_word(bn__enc *E, size_t off, size_t n) {
    const bn_tokenizer *t = E->t;
    const char *w = E->text.p + off;
    size_t i, start = 0;
    if (n == 0) return 1;
    if (t->ignore_merges) {
        int32_t id = bn__vocab_find(t, w, n);
        if (id >= 0) return bn__ids_push(&E->out, id);
    }
    if (n <= BN__CACHE_MAX_WORD || !t->split_at_marker) return bn__bpe_cached(E, off, n);
    for (i = 1; i + 3 <= n; i++) {
        if (memcmp(w + i, "\xe2\x96\x81", 3) != 0) continue;
        if (i >= 3 && memcmp(w + i - 3, "\xe2\x96\x81", 3) == 0) continue;
        if (!bn__bpe_cached(E, off + start, i - start)) return 0;
        start = i;
        i += 2;
    }
    return bn__bpe_cached(E, off + start, n - start);
}

/* ------------------------------------------------------- the pipeline */

/* Pre-tokenize text[off, off+len) with every step, then run each piece
   through the model. */
/* Metaspace: spaces become the replacement character, which is put in front
   (always, or only at the very start of the input), then the text is cut
   before each replacement character when split is set. */
static int bn__metaspace(bn__enc *E, const bn__tok_step *st, size_t o, size_t n, int at_start, bn__spans *nxt) {
    size_t at = E->text.len, i, start;
    int lead;
    if (n == 0) return bn__spans_push(nxt, o, 0);
    lead = (st->prepend == BN__PREPEND_ALWAYS || (st->prepend == BN__PREPEND_FIRST && at_start)) &&
           !(n >= st->a_len && memcmp(E->text.p + o, st->a, st->a_len) == 0) && E->text.p[o] != ' ';
    if (!bn__buf_reserve(&E->text, st->a_len * (n + 1) + n)) return 0;
    if (lead) bn__buf_add(&E->text, st->a, st->a_len);
    for (i = 0; i < n; i++) {
        if (E->text.p[o + i] == ' ') bn__buf_add(&E->text, st->a, st->a_len);
        else bn__buf_add(&E->text, E->text.p + o + i, 1);
    }
    if (!st->split) return bn__spans_push(nxt, at, E->text.len - at);
    for (i = start = at; i + st->a_len <= E->text.len; i++) { /* each replacement starts a piece */
        if (i > start && memcmp(E->text.p + i, st->a, st->a_len) == 0) {
            if (!bn__spans_push(nxt, start, i - start)) return 0;
            start = i;
        }
    }
    return bn__spans_push(nxt, start, E->text.len - start);
}

static int bn__pretokenize_and_model(bn__enc *E, size_t off, size_t len, int at_start) {
    const bn_tokenizer *t = E->t;
    bn__spans *cur = &E->a, *nxt = &E->b, *tmp;
    size_t p;
    int k;
    cur->n = 0;
    if (!bn__spans_push(cur, off, len)) return 0;
    for (k = 0; k < t->n_pre; k++) {
        const bn__tok_step *st = &t->pre[k];
        nxt->n = 0;
        for (p = 0; p < cur->n; p++) {
            size_t o = cur->off[p], n = cur->len[p], i;
            if (st->kind == BN__PRE_METASPACE) {
                if (!bn__metaspace(E, st, o, n, at_start && p == 0, nxt)) return 0;
                continue;
            }
            if (st->kind == BN__PRE_DIGITS) { /* numbers (\p{N}) apart from the rest: one by one, or in runs */
                for (i = 0; i < n;) {
                    size_t l;
                    int num = bn__class_at(E->text.p + o, n, i, NULL, &l) == BN_UC_NUMBER;
                    size_t e = num && st->individual ? i + l : bn__run_end(E->text.p + o, n, i, BN_UC_NUMBER);
                    if (!num) { /* up to the next number */
                        e = i + l;
                        while (e < n && bn__class_at(E->text.p + o, n, e, NULL, &l) != BN_UC_NUMBER) e += l;
                    }
                    if (!bn__spans_push(nxt, o + i, e - i)) return 0;
                    i = e;
                }
                continue;
            }
            if (st->kind == BN__PRE_BYTELEVEL && st->add_prefix_space && (n == 0 || E->text.p[o] != ' ')) {
                size_t at = E->text.len; /* a copy with a space in front */
                if (!bn__buf_reserve(&E->text, n + 1)) return 0;
                bn__buf_add(&E->text, " ", 1);
                bn__buf_add(&E->text, E->text.p + o, n);
                o = at;
                n++;
            }
            if (st->kind == BN__PRE_SPLIT || (st->kind == BN__PRE_BYTELEVEL && st->use_regex)) {
                int re = st->kind == BN__PRE_SPLIT ? st->regex : BN__RE_GPT2;
                for (i = 0; i < n;) {
                    const char *s = E->text.p + o;
                    size_t m = re == BN__RE_LLAMA3 ? bn__scan_llama3(s, n, i) : bn__scan_gpt2(s, n, i);
                    if (!bn__spans_push(nxt, o + i, m)) return 0;
                    i += m;
                }
            } else {
                if (!bn__spans_push(nxt, o, n)) return 0;
            }
        }
        if (st->kind == BN__PRE_BYTELEVEL) { /* map each byte to its code point's UTF-8 */
            for (p = 0; p < nxt->n; p++) {
                size_t o = nxt->off[p], n = nxt->len[p], i, at = E->text.len;
                if (!bn__buf_reserve(&E->text, 2 * n)) return 0;
                for (i = 0; i < n; i++) {
                    unsigned char byte = (unsigned char)E->text.p[o + i];
                    memcpy(E->text.p + E->text.len, t->bl_utf8[byte], t->bl_len[byte]);
                    E->text.len += t->bl_len[byte];
                }
                E->text.p[E->text.len] = 0;
                nxt->off[p] = at;
                nxt->len[p] = E->text.len - at;
            }
        }
        tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    for (p = 0; p < cur->n; p++)
        if (!bn__model_word(E, cur->off[p], cur->len[p])) return 0;
    return 1;
}

static int bn__is_word_char(uint32_t cp) {
    int c = bn__uc_class(cp);
    return c == BN_UC_LETTER || c == BN_UC_NUMBER;
}

/* Find added tokens in s[0, n) (leftmost, longest; lstrip/rstrip widen the
   match over whitespace; single_word ones only as whole words), and call back
   for the text between them and for each token. `norm` selects the tokens
   matched in normalized text. Returns 0 on failure. */
typedef int (*bn__segment_fn)(bn__enc *E, size_t off, size_t len, int32_t added_id);

static int bn__split_added(bn__enc *E, size_t off, size_t n, int norm, bn__segment_fn fn) {
    const bn_tokenizer *t = E->t;
    const bn__matcher *mt = norm ? &t->norm_match : &t->raw_match;
    size_t i = 0, done = 0;
    if (mt->first[256] == 0) return fn(E, off, n, -1); /* no added tokens of this kind */
    while (i < n) {
        const char *s = E->text.p + off;
        unsigned char b = (unsigned char)s[i];
        int k, found = -1;
        size_t mlen = 0;
        for (k = mt->first[b]; k < mt->first[b + 1]; k++) { /* longest first */
            const bn__added_token *a = &t->added[mt->idx[k]];
            const char *c = norm ? a->norm : a->content;
            size_t cl = norm ? a->norm_len : a->len;
            if (cl <= n - i && memcmp(s + i, c, cl) == 0) {
                found = mt->idx[k];
                mlen = cl;
                break;
            }
        }
        if (found < 0) {
            i++;
            continue;
        }
        {
            const bn__added_token *a = &t->added[found];
            size_t start = i, stop = i + mlen;
            int ok = !(a->special && !(E->flags & BN_TOK_PARSE_SPECIAL));
            if (ok && a->single_word) {
                size_t l;
                uint32_t before = 0, after = 0;
                size_t j = start;
                if (start > 0) { /* the character before */
                    while (j > 0 && ((unsigned char)s[j - 1] & 0xc0) == 0x80) j--;
                    if (j > 0) j--;
                    before = bn__utf8_next(s + j, n - j, &l);
                }
                if (stop < n) after = bn__utf8_next(s + stop, n - stop, &l);
                if ((start > 0 && bn__is_word_char(before)) || (stop < n && bn__is_word_char(after))) ok = 0;
            }
            if (!ok) { /* HF skips this match and searches on after it */
                i = stop;
                continue;
            }
            if (a->lstrip) { /* swallow whitespace before, but not into the previous match */
                while (start > done) {
                    size_t j = start - 1, l;
                    while (j > done && ((unsigned char)s[j] & 0xc0) == 0x80) j--;
                    if (bn__uc_class(bn__utf8_next(s + j, n - j, &l)) != BN_UC_SPACE) break;
                    start = j;
                }
            }
            if (a->rstrip) {
                while (stop < n) {
                    size_t l;
                    if (bn__uc_class(bn__utf8_next(s + stop, n - stop, &l)) != BN_UC_SPACE) break;
                    stop += l;
                }
            }
            if (start > done && !fn(E, off + done, start - done, -1)) return 0;
            if (!fn(E, off + start, stop - start, a->id)) return 0;
            done = i = stop;
        }
    }
    if (done < n || n == 0) return fn(E, off + done, n - done, -1);
    return 1;
}

static int bn__segment_normalized(bn__enc *E, size_t off, size_t len, int32_t added_id) {
    if (added_id >= 0) return bn__ids_push(&E->out, added_id);
    return bn__pretokenize_and_model(E, off, len, E->at_start && off == E->norm_start);
}

static int bn__segment_raw(bn__enc *E, size_t off, size_t len, int32_t added_id) {
    size_t noff = off, nlen = len;
    if (added_id >= 0) return bn__ids_push(&E->out, added_id);
    if (E->t->n_norm && bn__normalize(E->t, &E->text, off, len, &noff, &nlen) != BN_OK) return 0;
    E->at_start = off == 0; /* this segment begins the input (Metaspace prepend_scheme "first") */
    E->norm_start = noff;
    if (E->t->has_normalized_added) return bn__split_added(E, noff, nlen, 1, bn__segment_normalized);
    return bn__pretokenize_and_model(E, noff, nlen, E->at_start);
}

static void bn__enc_free(bn__enc *E) {
    BN_FREE(E->out.p);
    BN_FREE(E->text.p);
    bn__spans_free(&E->a);
    bn__spans_free(&E->b);
    BN_FREE(E->sym);
    BN_FREE(E->heap);
    BN_FREE(E->cache);
    BN_FREE(E->cache_ent);
    BN_FREE(E->cache_text.p);
    BN_FREE(E->cache_ids.p);
}

/* Copy text into E->text, checking (or repairing) its UTF-8. */
static bn_status bn__take_text(bn__enc *E, const char *text, size_t len, unsigned flags, bn_error *err) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, run = 0;
    if (!bn__buf_reserve(&E->text, len + len / 2 + 16)) return bn_errorf(err, BN_ERR_NOMEM, "encode: out of memory");
    while (i < len) {
        size_t bad, l;
        if (s[i] < 0x80) { i++; continue; }
        l = bn__utf8_check(s + i, len - i, &bad);
        if (l) { i += l; continue; }
        if (!(flags & BN_TOK_REPLACE_INVALID))
            return bn_errorf(err, BN_ERR_ARG, "encode: invalid UTF-8 at byte %lu of the input", (unsigned long)i);
        if (!bn__buf_add(&E->text, text + run, i - run) || !bn__buf_add(&E->text, "\xef\xbf\xbd", 3))
            return bn_errorf(err, BN_ERR_NOMEM, "encode: out of memory");
        i += bad;
        run = i;
    }
    if (!bn__buf_add(&E->text, text + run, len - run)) return bn_errorf(err, BN_ERR_NOMEM, "encode: out of memory");
    return BN_OK;
}

BN_API bn_status bn_tokenizer_encode(const bn_tokenizer *t, const char *text, size_t len, unsigned flags,
                                     int32_t **ids, size_t *n_ids, bn_error *err) {
    bn__enc E;
    bn_status st;
    size_t n;
    int k, ok = 1;
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return bn_errorf(err, BN_ERR_ARG, "encode: NULL text");
    memset(&E, 0, sizeof E);
    E.t = t;
    E.flags = flags;
    st = bn__take_text(&E, text ? text : "", len, flags, err);
    if (st) {
        bn__enc_free(&E);
        return st;
    }
    n = E.text.len;
    if (n > 256) { /* a word cache pays off on longer texts */
        E.cache_mask = bn__table_size(n / 16 < 65536 ? n / 16 : 65536) - 1;
        E.cache = BN_ZALLOC(uint32_t, (size_t)E.cache_mask + 1);
        ok = E.cache != NULL;
    }
    if (ok && (flags & BN_TOK_ADD_SPECIAL))
        for (k = 0; ok && k < t->n_post_prefix; k++) ok = bn__ids_push(&E.out, t->post_prefix[k]);
    if (ok) ok = bn__split_added(&E, 0, n, 0, bn__segment_raw);
    if (ok && (flags & BN_TOK_ADD_SPECIAL))
        for (k = 0; ok && k < t->n_post_suffix; k++) ok = bn__ids_push(&E.out, t->post_suffix[k]);
    if (!ok) {
        bn__enc_free(&E);
        return bn_errorf(err, BN_ERR_NOMEM, "encode: out of memory");
    }
    *ids = E.out.p;
    *n_ids = E.out.n;
    if (!*ids) *ids = BN_ALLOC(int32_t, 1); /* never NULL on success */
    E.out.p = NULL;
    bn__enc_free(&E);
    if (!*ids) return bn_errorf(err, BN_ERR_NOMEM, "encode: out of memory");
    return BN_OK;
}

/* ------------------------------------------------------------ decoding */

/* Append bytes as UTF-8 with each maximal invalid subsequence replaced by U+FFFD. */
static int bn__add_lossy(bn__buf *out, const char *s, size_t n) {
    size_t i = 0, run = 0;
    while (i < n) {
        size_t bad, l;
        if ((unsigned char)s[i] < 0x80) { i++; continue; }
        l = bn__utf8_check((const unsigned char *)s + i, n - i, &bad);
        if (l) { i += l; continue; }
        if (!bn__buf_add(out, s + run, i - run) || !bn__buf_add(out, "\xef\xbf\xbd", 3)) return 0;
        i += bad;
        run = i;
    }
    return bn__buf_add(out, s + run, n - run);
}

static int bn__is_valid_utf8(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t bad, l = bn__utf8_check((const unsigned char *)s + i, n - i, &bad);
        if (!l) return 0;
        i += l;
    }
    return 1;
}

/* The byte of a "<0xNN>" token, else -1. */
static int bn__byte_token(const char *s, size_t n) {
    int v = 0, h;
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    for (h = 3; h < 5; h++) {
        char c = s[h];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else return -1;
    }
    return v;
}

/* One decoder over the token list cur (strings in buf), into nxt. */
static int bn__decode_step(const bn_tokenizer *t, const bn__tok_step *st, bn__buf *buf, bn__spans *cur,
                           bn__spans *nxt) {
    size_t p, i;
    nxt->n = 0;
    switch (st->kind) {
    case BN__DEC_BYTELEVEL: { /* every token's characters back to bytes, one lossy UTF-8 string */
        bn__buf raw;
        size_t at;
        memset(&raw, 0, sizeof raw);
        for (p = 0; p < cur->n; p++) {
            size_t start = raw.len;
            int all = 1;
            for (i = 0; i < cur->len[p];) {
                size_t l;
                uint32_t cp = bn__utf8_next(buf->p + cur->off[p] + i, cur->len[p] - i, &l);
                unsigned char byte;
                if (cp >= 0x144 || t->bl_byte[cp] < 0) { all = 0; break; }
                byte = (unsigned char)t->bl_byte[cp];
                if (!bn__buf_add(&raw, &byte, 1)) { BN_FREE(raw.p); return 0; }
                i += l;
            }
            if (!all) { /* a token outside the map keeps its own bytes */
                raw.len = start;
                if (!bn__buf_add(&raw, buf->p + cur->off[p], cur->len[p])) { BN_FREE(raw.p); return 0; }
            }
        }
        at = buf->len;
        if (!bn__add_lossy(buf, raw.p ? raw.p : "", raw.len)) { BN_FREE(raw.p); return 0; }
        BN_FREE(raw.p);
        return bn__spans_push(nxt, at, buf->len - at);
    }
    case BN__DEC_FUSE: {
        size_t at = buf->len;
        for (p = 0; p < cur->n; p++) {
            if (!bn__buf_reserve(buf, cur->len[p])) return 0;
            bn__buf_add(buf, buf->p + cur->off[p], cur->len[p]);
        }
        return bn__spans_push(nxt, at, buf->len - at);
    }
    case BN__DEC_REPLACE:
        for (p = 0; p < cur->n; p++) {
            size_t at = buf->len, n = cur->len[p];
            for (i = 0; i < n;) {
                if (i + st->a_len <= n && memcmp(buf->p + cur->off[p] + i, st->a, st->a_len) == 0) {
                    if (!bn__buf_add(buf, st->b, st->b_len)) return 0;
                    i += st->a_len;
                } else {
                    if (!bn__buf_reserve(buf, 1)) return 0;
                    bn__buf_add(buf, buf->p + cur->off[p] + i, 1);
                    i++;
                }
            }
            if (!bn__spans_push(nxt, at, buf->len - at)) return 0;
        }
        return 1;
    case BN__DEC_BYTEFALLBACK: { /* runs of <0xNN> tokens: their bytes if valid UTF-8, else U+FFFD per byte */
        bn__buf run;
        int ok = 1;
        memset(&run, 0, sizeof run);
        for (p = 0; ok && p <= cur->n; p++) {
            int byte = p < cur->n ? bn__byte_token(buf->p + cur->off[p], cur->len[p]) : -1;
            if (byte >= 0) {
                unsigned char c = (unsigned char)byte;
                ok = bn__buf_add(&run, &c, 1);
                continue;
            }
            if (run.len) { /* flush the run before this token */
                size_t at = buf->len;
                if (bn__is_valid_utf8(run.p, run.len)) {
                    ok = bn__buf_add(buf, run.p, run.len) && bn__spans_push(nxt, at, run.len);
                } else {
                    for (i = 0; ok && i < run.len; i++) {
                        at = buf->len;
                        ok = bn__buf_add(buf, "\xef\xbf\xbd", 3) && bn__spans_push(nxt, at, 3);
                    }
                }
                run.len = 0;
            }
            if (ok && p < cur->n) ok = bn__spans_push(nxt, cur->off[p], cur->len[p]);
        }
        BN_FREE(run.p);
        return ok;
    }
    case BN__DEC_METASPACE: /* the replacement becomes a space, and disappears from the first token */
        for (p = 0; p < cur->n; p++) {
            size_t at = buf->len, n = cur->len[p];
            int drop = p == 0 && st->prepend != BN__PREPEND_NEVER;
            if (!bn__buf_reserve(buf, n)) return 0;
            for (i = 0; i < n;) {
                if (i + st->a_len <= n && memcmp(buf->p + cur->off[p] + i, st->a, st->a_len) == 0) {
                    if (!drop) bn__buf_add(buf, " ", 1);
                    i += st->a_len;
                } else {
                    bn__buf_add(buf, buf->p + cur->off[p] + i, 1);
                    i++;
                }
            }
            if (!bn__spans_push(nxt, at, buf->len - at)) return 0;
        }
        return 1;
    case BN__DEC_STRIP:
        for (p = 0; p < cur->n; p++) {
            size_t o = cur->off[p], n = cur->len[p], cut = 0, end = n;
            int k;
            for (k = 0; k < st->start && cut + st->a_len <= n; k++) {
                if (memcmp(buf->p + o + cut, st->a, st->a_len) != 0) break;
                cut += st->a_len;
            }
            for (k = 0; k < st->stop && end >= cut + st->a_len; k++) {
                if (memcmp(buf->p + o + end - st->a_len, st->a, st->a_len) != 0) break;
                end -= st->a_len;
            }
            if (!bn__spans_push(nxt, o + cut, end - cut)) return 0;
        }
        return 1;
    }
    return 0;
}

BN_API bn_status bn_tokenizer_decode(const bn_tokenizer *t, const int32_t *ids, size_t n_ids, unsigned flags,
                                     char **text, size_t *len, bn_error *err) {
    bn__buf buf, out;
    bn__spans a, b, *cur = &a, *nxt = &b, *tmp;
    size_t i;
    int k, ok = 1;
    *text = NULL;
    if (len) *len = 0;
    memset(&buf, 0, sizeof buf);
    memset(&out, 0, sizeof out);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    for (i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab)
            return bn_errorf(err, BN_ERR_ARG, "decode: id %ld (position %lu) is outside the vocabulary [0, %d)",
                             (long)id, (unsigned long)i, t->n_vocab);
    }
    /* the token strings (HF skips ids that name no token; a normalized added token
       reaches the decoders in its normalized form, as in HF) */
    ok = bn__buf_reserve(&buf, 64);
    for (i = 0; ok && i < n_ids; i++) {
        int32_t id = ids[i];
        size_t at = buf.len, tl;
        const char *ts;
        if (t->tok_len[id] < 0 || ((flags & BN_TOK_SKIP_SPECIAL) && (t->tok_special[id] & 1))) continue;
        ts = t->store + t->tok_off[id];
        tl = (size_t)t->tok_len[id];
        if (t->tok_special[id] & 2) {
            int k;
            for (k = 0; k < t->n_added; k++)
                if (t->added[k].id == id && t->added[k].norm) {
                    ts = t->added[k].norm;
                    tl = t->added[k].norm_len;
                }
        }
        ok = bn__buf_add(&buf, ts, tl) && bn__spans_push(cur, at, tl);
    }
    for (k = 0; ok && k < t->n_dec; k++) {
        ok = bn__decode_step(t, &t->dec[k], &buf, cur, nxt);
        tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    for (i = 0; ok && i < cur->n; i++) { /* join: "" with a decoder, " " without (as HF) */
        if (i && !t->has_decoder) ok = bn__buf_add(&out, " ", 1);
        if (ok) ok = bn__buf_add(&out, buf.p + cur->off[i], cur->len[i]);
    }
    if (ok && !out.p) ok = bn__buf_add(&out, "", 0);
    BN_FREE(buf.p);
    bn__spans_free(&a);
    bn__spans_free(&b);
    if (!ok) {
        BN_FREE(out.p);
        return bn_errorf(err, BN_ERR_NOMEM, "decode: out of memory");
    }
    *text = out.p;
    if (len) *len = out.len;
    return BN_OK;
}

/* One decoder on a single token in the middle of a text, into out: raw bytes
   (no U+FFFD for a partial character), a Metaspace replacement becomes a space,
   a Strip after Fuse concerns only the text's ends. */
static int bn__token_bytes_step(const bn_tokenizer *t, const bn__tok_step *st, const char *s, size_t n, int fused,
                                bn__buf *out) {
    size_t i, l;
    out->len = 0;
    switch (st->kind) {
    case BN__DEC_BYTELEVEL:
        for (i = 0; i < n; i += l) {
            uint32_t cp = bn__utf8_next(s + i, n - i, &l);
            if (cp >= 0x144 || t->bl_byte[cp] < 0) { /* a token outside the map keeps its own bytes */
                out->len = 0;
                return bn__buf_add(out, s, n);
            }
            out->p[out->len++] = (char)t->bl_byte[cp]; /* room: never more bytes than characters */
        }
        return 1;
    case BN__DEC_BYTEFALLBACK: {
        int byte = bn__byte_token(s, n);
        char c = (char)byte;
        return byte >= 0 ? bn__buf_add(out, &c, 1) : bn__buf_add(out, s, n);
    }
    case BN__DEC_REPLACE:
    case BN__DEC_METASPACE:
        for (i = 0; i < n;) {
            if (st->a_len && i + st->a_len <= n && memcmp(s + i, st->a, st->a_len) == 0) {
                if (!(st->kind == BN__DEC_REPLACE ? bn__buf_add(out, st->b, st->b_len) : bn__buf_add(out, " ", 1)))
                    return 0;
                i += st->a_len;
            } else {
                if (!bn__buf_add(out, s + i, 1)) return 0;
                i++;
            }
        }
        return 1;
    case BN__DEC_STRIP:
        if (!fused) {
            size_t cut = 0, end = n;
            int k;
            for (k = 0; k < st->start && cut + st->a_len <= n && memcmp(s + cut, st->a, st->a_len) == 0; k++)
                cut += st->a_len;
            for (k = 0; k < st->stop && end >= cut + st->a_len && memcmp(s + end - st->a_len, st->a, st->a_len) == 0; k++)
                end -= st->a_len;
            return bn__buf_add(out, s + cut, end - cut);
        }
        return bn__buf_add(out, s, n);
    default: /* Fuse: one token is already one string */
        return bn__buf_add(out, s, n);
    }
}

/* The bytes of token id in the middle of a text (see bn_tokenizer_token_bytes)
   into scratch buffers a and b that the caller keeps between calls; *out
   points into one of them. -1 for an id that names no token or out of memory. */
static long bn__token_bytes(const bn_tokenizer *t, int32_t id, bn__buf *a, bn__buf *b, const char **out) {
    bn__buf *cur = a, *nxt = b, *tmp;
    const char *ts;
    size_t tl;
    int k, fused = 0, ok;
    if (id < 0 || id >= t->n_vocab || t->tok_len[id] < 0) return -1;
    ts = t->store + t->tok_off[id];
    tl = (size_t)t->tok_len[id];
    if (t->tok_special[id] & 2)
        for (k = 0; k < t->n_added; k++)
            if (t->added[k].id == id && t->added[k].norm) {
                ts = t->added[k].norm;
                tl = t->added[k].norm_len;
            }
    a->len = 0;
    /* without a decoder, tokens are joined with spaces (as bn_tokenizer_decode) */
    ok = bn__buf_add(cur, " ", t->has_decoder ? 0 : 1) && bn__buf_add(cur, ts, tl);
    for (k = 0; ok && k < t->n_dec; k++) {
        ok = bn__buf_reserve(nxt, cur->len) && bn__token_bytes_step(t, &t->dec[k], cur->p, cur->len, fused, nxt);
        fused |= t->dec[k].kind == BN__DEC_FUSE;
        tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    *out = cur->p;
    return ok ? (long)cur->len : -1;
}

BN_API int bn_tokenizer_token_bytes(const bn_tokenizer *t, int32_t id, char *buf, size_t cap) {
    bn__buf a, b;
    const char *bytes;
    long n;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    n = bn__token_bytes(t, id, &a, &b, &bytes);
    if (n > INT_MAX) n = -1;
    if (n > 0 && buf) memcpy(buf, bytes, BN_MIN((size_t)n, cap));
    BN_FREE(a.p);
    BN_FREE(b.p);
    return (int)n;
}

/* ------------------------------------------------------------ streaming */

BN_API void bn_utf8_stream_init(bn_utf8_stream *s, const bn_tokenizer *tok, unsigned flags) {
    memset(s, 0, sizeof *s);
    s->tok = tok;
    s->flags = flags;
}

BN_API size_t bn_utf8_char_len(const char *s, size_t n) {
    size_t bad;
    return n ? bn__utf8_check((const unsigned char *)s, n, &bad) : 0;
}

BN_API void bn_utf8_stream_free(bn_utf8_stream *s) {
    BN_FREE(s->ids);
    BN_FREE(s->prefix);
    BN_FREE(s->piece);
    memset(s, 0, sizeof *s);
}

static int bn__ends_with_replacement(const char *s, size_t n) {
    return n >= 3 && memcmp(s + n - 3, "\xef\xbf\xbd", 3) == 0;
}

/* HF's DecodeStream: decode the window of ids; when it has grown past the
   text already returned and does not end in U+FFFD (an incomplete
   character), return the new part and slide the window. */
BN_API bn_status bn_utf8_stream_push(bn_utf8_stream *s, int32_t id, const char **piece, size_t *len, bn_error *err) {
    char *str = NULL;
    size_t n = 0;
    bn_status st;
    *piece = "";
    *len = 0;
    if (s->n_ids == s->cap_ids) {
        size_t cap = s->cap_ids ? s->cap_ids * 2 : 16;
        int32_t *ni = (int32_t *)BN_REALLOC(s->ids, cap * sizeof(int32_t));
        if (!ni) return bn_errorf(err, BN_ERR_NOMEM, "decode stream: out of memory");
        s->ids = ni;
        s->cap_ids = cap;
    }
    s->ids[s->n_ids++] = id;
    st = bn_tokenizer_decode(s->tok, s->ids, s->n_ids, s->flags, &str, &n, err);
    if (st) {
        s->n_ids--;
        return st;
    }
    if (n > s->prefix_len && !bn__ends_with_replacement(str, n)) {
        size_t new_prefix_index = s->n_ids - s->prefix_index;
        if (memcmp(str, s->prefix ? s->prefix : "", s->prefix_len) != 0) {
            BN_FREE(str);
            return bn_errorf(err, BN_ERR_UNSUPPORTED, "decode stream: the decoder changed text already returned");
        }
        BN_FREE(s->piece);
        s->piece = bn__strndup(str + s->prefix_len, n - s->prefix_len);
        BN_FREE(str);
        if (!s->piece) return bn_errorf(err, BN_ERR_NOMEM, "decode stream: out of memory");
        s->piece_len = n - s->prefix_len;
        memmove(s->ids, s->ids + s->prefix_index, (s->n_ids - s->prefix_index) * sizeof(int32_t));
        s->n_ids -= s->prefix_index;
        BN_FREE(s->prefix);
        s->prefix = NULL;
        st = bn_tokenizer_decode(s->tok, s->ids, s->n_ids, s->flags, &s->prefix, &s->prefix_len, err);
        if (st) return st;
        s->prefix_index = new_prefix_index;
        *piece = s->piece;
        *len = s->piece_len;
        return BN_OK;
    }
    BN_FREE(str);
    return BN_OK;
}

BN_API bn_status bn_utf8_stream_flush(bn_utf8_stream *s, const char **piece, size_t *len, bn_error *err) {
    char *str = NULL;
    size_t n = 0;
    bn_status st;
    *piece = "";
    *len = 0;
    if (!s->n_ids) return BN_OK;
    st = bn_tokenizer_decode(s->tok, s->ids, s->n_ids, s->flags, &str, &n, err);
    if (st) return st;
    BN_FREE(s->piece);
    s->piece = NULL;
    s->piece_len = 0;
    if (n > s->prefix_len && memcmp(str, s->prefix ? s->prefix : "", s->prefix_len) == 0) {
        s->piece = bn__strndup(str + s->prefix_len, n - s->prefix_len);
        if (!s->piece) {
            BN_FREE(str);
            return bn_errorf(err, BN_ERR_NOMEM, "decode stream: out of memory");
        }
        s->piece_len = n - s->prefix_len;
        *piece = s->piece;
        *len = s->piece_len;
    }
    BN_FREE(str);
    /* start over: what follows is a new text */
    s->n_ids = 0;
    s->prefix_index = 0;
    BN_FREE(s->prefix);
    s->prefix = NULL;
    s->prefix_len = 0;
    return BN_OK;
}

/* ----------------------------------------------------------------- chat */

BN_API bn_chat_template bn_tokenizer_chat_template(const bn_tokenizer *t) { return t->chat; }

BN_API bn_chat_template bn_chat_template_from_name(const char *name) {
    if (name && (strcmp(name, "llama3") == 0 || strcmp(name, "llama-3") == 0)) return BN_CHAT_LLAMA3;
    if (name && (strcmp(name, "bitnet") == 0 || strcmp(name, "bitnet-2b4t") == 0)) return BN_CHAT_BITNET;
    return BN_CHAT_UNKNOWN;
}

BN_API const char *bn_chat_template_name(bn_chat_template t) {
    switch (t) {
    case BN_CHAT_AUTO: return "auto";
    case BN_CHAT_LLAMA3: return "llama3";
    case BN_CHAT_BITNET: return "bitnet";
    case BN_CHAT_UNKNOWN: break;
    }
    return "unknown";
}

/* Jinja's `trim`: Python's str.strip(), i.e. Unicode whitespace (plus U+001C..U+001F). */
static int bn__is_py_space(uint32_t cp) { return bn__uc_class(cp) == BN_UC_SPACE || (cp >= 0x1c && cp <= 0x1f); }

static int bn__add_trimmed(bn__buf *b, const char *s) {
    size_t n = strlen(s), i = 0, e = n, l;
    while (i < n && bn__is_py_space(bn__utf8_next(s + i, n - i, &l))) i += l;
    while (e > i) {
        size_t j = e - 1;
        while (j > i && ((unsigned char)s[j] & 0xc0) == 0x80) j--;
        if (!bn__is_py_space(bn__utf8_next(s + j, n - j, &l))) break;
        e = j;
    }
    return bn__buf_add(b, s + i, e - i);
}

BN_API bn_status bn_chat_format(const bn_tokenizer *t, bn_chat_template tmpl, const bn_chat_message *msgs,
                                size_t n_msgs, int add_generation_prompt, char **out, size_t *out_len,
                                bn_error *err) {
    bn__buf b;
    size_t i;
    int ok = 1, gen = add_generation_prompt;
    *out = NULL;
    if (out_len) *out_len = 0;
    if (tmpl == BN_CHAT_AUTO) {
        tmpl = t->chat;
        if (t->chat_gen_prompt_always) gen = 1; /* that template has no add_generation_prompt switch */
    }
    if (tmpl != BN_CHAT_LLAMA3 && tmpl != BN_CHAT_BITNET)
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "chat: the tokenizer's chat_template is not one we recognize "
                         "(llama3, bitnet); choose one explicitly");
    memset(&b, 0, sizeof b);
    ok = bn__buf_add(&b, "", 0);
    for (i = 0; ok && i < n_msgs; i++) {
        const char *role = msgs[i].role ? msgs[i].role : "", *content = msgs[i].content ? msgs[i].content : "";
        if (i == 0 && t->bos_token) ok = bn__buf_adds(&b, t->bos_token); /* {% if loop.index0 == 0 %}bos_token */
        if (!ok) break;
        if (tmpl == BN_CHAT_LLAMA3) {
            ok = bn__buf_adds(&b, "<|start_header_id|>") && bn__buf_adds(&b, role) &&
                 bn__buf_adds(&b, "<|end_header_id|>\n\n");
        } else { /* role | capitalize + ': ' (ASCII case mapping) */
            size_t k, rl = strlen(role);
            for (k = 0; ok && k < rl; k++) {
                char c = role[k];
                if (k == 0 && c >= 'a' && c <= 'z') c = (char)(c - 32);
                if (k > 0 && c >= 'A' && c <= 'Z') c = (char)(c + 32);
                ok = bn__buf_add(&b, &c, 1);
            }
            if (ok) ok = bn__buf_adds(&b, ": ");
        }
        if (ok) ok = bn__add_trimmed(&b, content) && bn__buf_adds(&b, "<|eot_id|>");
    }
    if (ok && gen)
        ok = bn__buf_adds(&b, tmpl == BN_CHAT_LLAMA3 ? "<|start_header_id|>assistant<|end_header_id|>\n\n" : "Assistant: ");
    if (!ok) {
        BN_FREE(b.p);
        return bn_errorf(err, BN_ERR_NOMEM, "chat: out of memory");
    }
    *out = b.p;
    if (out_len) *out_len = b.len;
    return BN_OK;
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_TOKENIZER_H */
