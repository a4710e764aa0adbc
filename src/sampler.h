#ifndef BN_PART_SAMPLER_H
#define BN_PART_SAMPLER_H
#include "base.h"
#include "grammar.h"
/* Sampler chain: turns one row of logits into the next token.

   The chain runs in llama.cpp's order, each step a small function on a list
   of candidates (token id, logit, probability):

       logit bias -> repetition / presence / frequency penalties
       -> (temperature <= 0: argmax, done)
       -> top-k -> top-p -> min-p -> temperature -> draw from the softmax

   top-k and top-p keep a sorted prefix with a partial selection (a heap of
   the k best), never a full sort of the vocabulary (128256 for 2B4T). The
   random numbers come from a small PRNG kept in the sampler (splitmix64), so
   the same seed and the same logits give the same tokens on any thread count.

   A sampler remembers the last penalty_last_n tokens it was told about
   (bn_sampler_accept, bn_sampler_accept_prompt): the penalties look at that window.

   Structured output: with params.grammar (GBNF) or params.json_schema, and
   params.grammar_vocab (the tokens' bytes, bn_grammar_vocab_new), only
   tokens that keep the generated text inside the grammar are drawn, and an
   end token only where the grammar may end. The chain first runs as
   without a grammar; if the token it draws fits, it is taken (most steps:
   one check of the token's bytes); if not, every token the grammar rejects
   is removed and the chain runs again on the rest with a new draw. Greedy
   sampling thus gives the best allowed token, and without top-k/top-p/min-p
   a draw is exactly the softmax restricted to the allowed tokens. The
   grammar follows the tokens given to bn_sampler_accept (the generated
   ones); prompt tokens go to bn_sampler_accept_prompt. */

typedef struct bn_logit_bias {
    int32_t token;
    float bias; /* added to the logit; -INFINITY bans the token */
} bn_logit_bias;

typedef struct bn_sampler_params {
    float temperature;       /* <= 0: greedy (argmax after bias and penalties). Default 0.8 */
    int top_k;               /* keep the k most likely tokens; <= 0: off. Default 40 */
    float top_p;             /* keep the smallest set whose probability reaches top_p; >= 1: off. Default 0.95 */
    float min_p;             /* drop tokens with p < min_p * p(most likely); <= 0: off. Default 0.05 */
    float repeat_penalty;    /* seen tokens: positive logits divided, negative multiplied by it; 1: off (default) */
    float presence_penalty;  /* subtracted once from the logit of every seen token; 0: off (default) */
    float frequency_penalty; /* subtracted once per occurrence in the window; 0: off (default) */
    int penalty_last_n;      /* how many recent tokens the penalties look at; 0: none. Default 64 */
    uint64_t seed;           /* default 0x5EED; the same seed gives the same draws */
    const bn_logit_bias *logit_bias; /* copied by bn_sampler_new; may be NULL */
    int n_logit_bias;
    /* structured output (at most one of grammar and json_schema; compiled by bn_sampler_new, not kept) */
    const char *grammar;      /* GBNF text, NUL-terminated; NULL: none */
    const char *grammar_root; /* its start rule; NULL: "root" */
    const char *json_schema;  /* a JSON Schema, NUL-terminated; "{\"type\":\"object\"}" for any JSON object */
    const bn_grammar_vocab *grammar_vocab; /* needed with either; must outlive the sampler */
} bn_sampler_params;

/* One candidate token. p is filled by bn_sample_softmax. */
typedef struct bn_candidate {
    int32_t id;
    float logit;
    float p;
} bn_candidate;

/* A list of candidates. sorted: data is ordered by logit, highest first
   (ties: lower id first). A fresh list holds the whole vocabulary in id order. */
typedef struct bn_candidates {
    bn_candidate *data;
    int n;
    int sorted;
} bn_candidates;

typedef struct bn_sampler bn_sampler;

BN_EXTERN_C_BEGIN
BN_API bn_sampler_params bn_sampler_default_params(void);
/* Errors: BN_ERR_ARG for bad values, the grammar's or the schema's error
   (line and column, or the schema keyword) for a bad grammar. */
BN_API bn_status bn_sampler_new(bn_sampler **out, const bn_sampler_params *params, int n_vocab, bn_error *err);
BN_API void bn_sampler_free(bn_sampler *s);
/* Forget the token window, restart the random numbers from the seed and the grammar from its start. */
BN_API void bn_sampler_reset(bn_sampler *s);
/* Only the grammar back to its start (a new reply of a chat); the window and the random numbers go on. */
BN_API void bn_sampler_reset_grammar(bn_sampler *s);
/* Tell the sampler a token was generated: it joins the penalty window and
   moves the grammar. Returns 0 if the grammar does not allow it (the
   grammar then stays where it was), else 1. */
BN_API int bn_sampler_accept(bn_sampler *s, int32_t token);
/* Tell the sampler a token of the prompt: the penalty window only. */
BN_API void bn_sampler_accept_prompt(bn_sampler *s, int32_t token);
/* Pick the next token from n_vocab logits (not modified). Does not accept it.
   -1 when a grammar allows no token at all (its text is complete and there
   is no end token, or it needs a character no token has). */
BN_API int32_t bn_sampler_sample(bn_sampler *s, const float *logits);
/* The candidates of the last bn_sampler_sample (after the chain), for display or tests.
   Empty after a greedy draw with no logit bias and no penalty to apply: that one reads
   the argmax straight from the logits. */
BN_API const bn_candidates *bn_sampler_candidates(const bn_sampler *s);

/* The steps, usable on their own. */
/* Fill c (c->data has room for n_vocab) with every token in id order. */
BN_API void bn_candidates_init(bn_candidates *c, const float *logits, int n_vocab);
/* Add biases; needs c in id order (as bn_candidates_init leaves it). */
BN_API void bn_sample_logit_bias(bn_candidates *c, const bn_logit_bias *bias, int n_bias);
/* tokens[i] occurred counts[i] times in the window (tokens distinct). Needs c in id order. */
BN_API void bn_sample_penalties(bn_candidates *c, const int32_t *tokens, const int *counts, int n,
                                float repeat_penalty, float frequency_penalty, float presence_penalty);
BN_API int32_t bn_sample_argmax(const bn_candidates *c); /* highest logit; ties: lowest id */
BN_API void bn_sample_top_k(bn_candidates *c, int k);    /* leaves c sorted, n = min(k, n) */
BN_API void bn_sample_softmax(bn_candidates *c);          /* p from logits, in place */
BN_API void bn_sample_top_p(bn_candidates *c, float top_p, int min_keep); /* leaves c sorted */
BN_API void bn_sample_min_p(bn_candidates *c, float min_p, int min_keep);
BN_API void bn_sample_temperature(bn_candidates *c, float temperature);
/* Keep the candidates whose bit is set in mask (bit t of mask[t / 32]), in their order. */
BN_API void bn_sample_allowed(bn_candidates *c, const uint32_t *mask);
/* Draw a token from the softmax of the candidates using u in [0, 1). */
BN_API int32_t bn_sample_draw(bn_candidates *c, double u);
/* The PRNG: splitmix64 on *state, and a double in [0, 1) from it. */
BN_API uint64_t bn_rng_next(uint64_t *state);
BN_API double bn_rng_uniform(uint64_t *state);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

struct bn_sampler {
    bn_sampler_params params;
    bn_logit_bias *bias;  /* own copy of params.logit_bias */
    int n_vocab;
    bn_candidates cands;
    int32_t *window;      /* ring of the last penalty_last_n accepted tokens */
    int window_len, window_next;
    int32_t *scratch_tokens; /* penalty_last_n: sorted copy of the window */
    int *scratch_counts;
    uint64_t rng;
    bn_grammar *grammar; /* with a grammar: its matcher, the vocab and a mask of n_vocab bits */
    bn_grammar_matcher *gm;
    const bn_grammar_vocab *gv;
    uint32_t *mask;
};

BN_API bn_sampler_params bn_sampler_default_params(void) {
    bn_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.penalty_last_n = 64;
    p.seed = 0x5EED;
    p.logit_bias = NULL;
    p.n_logit_bias = 0;
    return p;
}

BN_API uint64_t bn_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

BN_API double bn_rng_uniform(uint64_t *state) {
    return (double)(bn_rng_next(state) >> 11) * (1.0 / 9007199254740992.0); /* 53 bits / 2^53 */
}

/* Compile the grammar (or the schema's) of p into s. */
static bn_status bn__sampler_grammar(bn_sampler *s, const bn_sampler_params *p, bn_error *err) {
    char *gbnf = NULL;
    size_t len = 0;
    bn_status st;
    if (p->grammar && p->json_schema)
        return bn_errorf(err, BN_ERR_ARG, "sampler: give a grammar or a JSON schema, not both");
    if (!p->grammar_vocab)
        return bn_errorf(err, BN_ERR_ARG, "sampler: a grammar needs params.grammar_vocab (bn_grammar_vocab_new)");
    if (p->json_schema) {
        st = bn_json_schema_to_gbnf(p->json_schema, strlen(p->json_schema), &gbnf, &len, err);
        if (st) return st;
    }
    st = gbnf ? bn_grammar_parse(&s->grammar, gbnf, len, NULL, err)
              : bn_grammar_parse(&s->grammar, p->grammar, strlen(p->grammar), p->grammar_root, err);
    BN_FREE(gbnf);
    if (!st) st = bn_grammar_matcher_new(&s->gm, s->grammar, err);
    s->gv = p->grammar_vocab;
    s->mask = (uint32_t *)bn__zalloc(sizeof(uint32_t) * (((size_t)s->n_vocab + 31) / 32));
    if (!st && !s->mask) st = bn_errorf(err, BN_ERR_NOMEM, "sampler: out of memory");
    return st;
}

BN_API bn_status bn_sampler_new(bn_sampler **out, const bn_sampler_params *params, int n_vocab, bn_error *err) {
    bn_sampler *s;
    bn_sampler_params p = params ? *params : bn_sampler_default_params();
    int i, w;
    *out = NULL;
    if (n_vocab <= 0) return bn_errorf(err, BN_ERR_ARG, "sampler: n_vocab must be positive (got %d)", n_vocab);
    if (p.n_logit_bias < 0 || (p.n_logit_bias > 0 && !p.logit_bias))
        return bn_errorf(err, BN_ERR_ARG, "sampler: n_logit_bias %d without a logit_bias array", p.n_logit_bias);
    for (i = 0; i < p.n_logit_bias; i++)
        if (p.logit_bias[i].token < 0 || p.logit_bias[i].token >= n_vocab)
            return bn_errorf(err, BN_ERR_ARG, "sampler: logit bias for token %d, outside the vocabulary [0, %d)",
                             (int)p.logit_bias[i].token, n_vocab);
    if (p.repeat_penalty <= 0.0f)
        return bn_errorf(err, BN_ERR_ARG, "sampler: repeat_penalty must be > 0 (got %g; 1 = off)",
                         (double)p.repeat_penalty);
    if (p.penalty_last_n < 0) p.penalty_last_n = 0;
    w = p.penalty_last_n;
    s = BN_ZALLOC(bn_sampler, 1);
    if (!s) return bn_errorf(err, BN_ERR_NOMEM, "sampler: out of memory");
    s->n_vocab = n_vocab;
    s->cands.data = BN_ALLOC(bn_candidate, n_vocab);
    s->window = BN_ALLOC(int32_t, w + 1);
    s->scratch_tokens = BN_ALLOC(int32_t, w + 1);
    s->scratch_counts = BN_ALLOC(int, w + 1);
    s->bias = BN_ALLOC(bn_logit_bias, p.n_logit_bias + 1);
    if (!s->cands.data || !s->window || !s->scratch_tokens || !s->scratch_counts || !s->bias) {
        bn_sampler_free(s);
        return bn_errorf(err, BN_ERR_NOMEM, "sampler: out of memory for %d candidates", n_vocab);
    }
    for (i = 0; i < p.n_logit_bias; i++) s->bias[i] = p.logit_bias[i];
    p.logit_bias = s->bias;
    if (p.grammar || p.json_schema) {
        bn_status st = bn__sampler_grammar(s, &p, err);
        if (st) {
            bn_sampler_free(s);
            return st;
        }
    }
    p.grammar = p.grammar_root = p.json_schema = NULL; /* not kept */
    s->params = p;
    bn_sampler_reset(s);
    *out = s;
    return BN_OK;
}

BN_API void bn_sampler_free(bn_sampler *s) {
    if (!s) return;
    BN_FREE(s->cands.data);
    BN_FREE(s->window);
    BN_FREE(s->scratch_tokens);
    BN_FREE(s->scratch_counts);
    BN_FREE(s->bias);
    bn_grammar_matcher_free(s->gm);
    bn_grammar_free(s->grammar);
    BN_FREE(s->mask);
    BN_FREE(s);
}

BN_API void bn_sampler_reset(bn_sampler *s) {
    s->window_len = 0;
    s->window_next = 0;
    s->rng = s->params.seed;
    s->cands.n = 0;
    s->cands.sorted = 0;
    bn_sampler_reset_grammar(s);
}

BN_API void bn_sampler_reset_grammar(bn_sampler *s) {
    if (s->gm) bn_grammar_matcher_reset(s->gm);
}

BN_API void bn_sampler_accept_prompt(bn_sampler *s, int32_t token) {
    int w = s->params.penalty_last_n;
    if (w <= 0) return;
    s->window[s->window_next] = token;
    s->window_next = (s->window_next + 1) % w;
    if (s->window_len < w) s->window_len++;
}

BN_API int bn_sampler_accept(bn_sampler *s, int32_t token) {
    bn_sampler_accept_prompt(s, token);
    return s->gm ? bn_grammar_matcher_accept_token(s->gm, s->gv, token) : 1;
}

BN_API const bn_candidates *bn_sampler_candidates(const bn_sampler *s) { return &s->cands; }

/* ---- the steps ---- */

BN_API void bn_candidates_init(bn_candidates *c, const float *logits, int n_vocab) {
    int i;
    for (i = 0; i < n_vocab; i++) {
        c->data[i].id = i;
        c->data[i].logit = logits[i];
        c->data[i].p = 0.0f;
    }
    c->n = n_vocab;
    c->sorted = 0;
}

/* The id-order steps index data by token id; a list that was cut or sorted cannot be. */
static int bn__cands_in_id_order(const bn_candidates *c, int32_t id) {
    return id >= 0 && id < c->n && c->data[id].id == id;
}

BN_API void bn_sample_logit_bias(bn_candidates *c, const bn_logit_bias *bias, int n_bias) {
    int i;
    for (i = 0; i < n_bias; i++)
        if (bn__cands_in_id_order(c, bias[i].token)) c->data[bias[i].token].logit += bias[i].bias;
}

BN_API void bn_sample_penalties(bn_candidates *c, const int32_t *tokens, const int *counts, int n,
                                float repeat_penalty, float frequency_penalty, float presence_penalty) {
    int i;
    for (i = 0; i < n; i++) {
        float *logit;
        if (!bn__cands_in_id_order(c, tokens[i]) || counts[i] <= 0) continue;
        logit = &c->data[tokens[i]].logit;
        /* CTRL's repetition penalty: push the logit toward "less likely" whatever its sign */
        if (*logit > 0.0f) *logit /= repeat_penalty;
        else *logit *= repeat_penalty;
        *logit -= (float)counts[i] * frequency_penalty + presence_penalty;
    }
}

/* a ranks before b: higher logit, or the same logit and a lower id. A total
   order, so every selection below has one well-defined answer. */
static int bn__cand_before(const bn_candidate *a, const bn_candidate *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

BN_API int32_t bn_sample_argmax(const bn_candidates *c) {
    int i, best = 0;
    if (c->n <= 0) return -1;
    for (i = 1; i < c->n; i++)
        if (bn__cand_before(&c->data[i], &c->data[best])) best = i;
    return c->data[best].id;
}

static void bn__cand_swap(bn_candidate *a, bn_candidate *b) {
    bn_candidate t = *a;
    *a = *b;
    *b = t;
}

/* Restore the heap property of h[0..n) below node i. The heap's root is the
   candidate that ranks *last*, so the heap holds the best ones seen so far. */
static void bn__heap_sift_down(bn_candidate *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && bn__cand_before(&h[worst], &h[l])) worst = l;
        if (r < n && bn__cand_before(&h[worst], &h[r])) worst = r;
        if (worst == i) return;
        bn__cand_swap(&h[i], &h[worst]);
        i = worst;
    }
}

/* Partial selection: move the m best candidates to the front of c->data,
   sorted best first; the others stay behind them in some order.
   O(n log m), and for logits (few newcomers beat the heap's root) close to O(n). */
static void bn__sort_prefix(bn_candidates *c, int m) {
    bn_candidate *h = c->data;
    int i;
    if (m > c->n) m = c->n;
    if (m <= 0) return;
    for (i = m / 2 - 1; i >= 0; i--) bn__heap_sift_down(h, m, i);
    for (i = m; i < c->n; i++) {
        if (bn__cand_before(&h[i], &h[0])) {
            bn__cand_swap(&h[i], &h[0]);
            bn__heap_sift_down(h, m, 0);
        }
    }
    /* heap sort: repeatedly move the worst to the end of the prefix */
    for (i = m - 1; i > 0; i--) {
        bn__cand_swap(&h[0], &h[i]);
        bn__heap_sift_down(h, i, 0);
    }
}

BN_API void bn_sample_top_k(bn_candidates *c, int k) {
    if (k <= 0) return;
    if (k > c->n) k = c->n;
    if (!c->sorted) bn__sort_prefix(c, k);
    c->n = k;
    c->sorted = 1;
}

BN_API void bn_sample_softmax(bn_candidates *c) {
    double sum = 0.0;
    float max;
    int i;
    if (c->n <= 0) return;
    max = c->data[0].logit;
    for (i = 1; i < c->n; i++)
        if (c->data[i].logit > max) max = c->data[i].logit;
    for (i = 0; i < c->n; i++) {
        float e = expf(c->data[i].logit - max);
        c->data[i].p = e;
        sum += e;
    }
    for (i = 0; i < c->n; i++) c->data[i].p = (float)(c->data[i].p / sum);
}

/* With c sorted: how many leading candidates reach probability top_p (at least min_keep),
   or 0 if the first m do not. */
static int bn__nucleus_size(const bn_candidates *c, int m, float top_p, int min_keep) {
    double cum = 0.0;
    int i;
    for (i = 0; i < m; i++) {
        cum += c->data[i].p;
        if (cum >= top_p && i + 1 >= min_keep) return i + 1;
    }
    return m == c->n ? m : 0;
}

BN_API void bn_sample_top_p(bn_candidates *c, float top_p, int min_keep) {
    int m, keep;
    if (top_p >= 1.0f || c->n <= 0) return;
    bn_sample_softmax(c);
    if (c->sorted) {
        keep = bn__nucleus_size(c, c->n, top_p, min_keep);
    } else {
        /* sort a prefix big enough to hold the nucleus: try 64 candidates, then 4x more */
        m = 64;
        for (;;) {
            if (m > c->n) m = c->n;
            bn__sort_prefix(c, m);
            keep = bn__nucleus_size(c, m, top_p, min_keep);
            if (keep > 0) break;
            m *= 4;
        }
        c->sorted = 1;
    }
    c->n = keep;
}

BN_API void bn_sample_min_p(bn_candidates *c, float min_p, int min_keep) {
    float max, threshold;
    int i, kept = 0;
    if (min_p <= 0.0f || c->n <= 0) return;
    /* p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p): no softmax needed */
    max = c->data[0].logit;
    for (i = 1; i < c->n; i++)
        if (c->data[i].logit > max) max = c->data[i].logit;
    threshold = max + logf(min_p);
    if (c->sorted) {
        while (kept < c->n && (c->data[kept].logit >= threshold || kept < min_keep)) kept++;
    } else {
        int n_above = 0;
        for (i = 0; i < c->n; i++) n_above += c->data[i].logit >= threshold;
        if (n_above < min_keep) { /* rare: keep the min_keep best instead */
            bn_sample_top_k(c, min_keep);
            return;
        }
        for (i = 0; i < c->n; i++) /* compact, keeping the order */
            if (c->data[i].logit >= threshold) c->data[kept++] = c->data[i];
    }
    c->n = kept;
}

BN_API void bn_sample_temperature(bn_candidates *c, float temperature) {
    int i;
    if (temperature <= 0.0f || temperature == 1.0f) return;
    for (i = 0; i < c->n; i++) c->data[i].logit /= temperature;
}

BN_API void bn_sample_allowed(bn_candidates *c, const uint32_t *mask) {
    int i, kept = 0;
    for (i = 0; i < c->n; i++) {
        int32_t id = c->data[i].id;
        if ((mask[id >> 5] >> (id & 31)) & 1) c->data[kept++] = c->data[i];
    }
    c->n = kept;
}

BN_API int32_t bn_sample_draw(bn_candidates *c, double u) {
    double cum = 0.0;
    int i;
    if (c->n <= 0) return -1;
    bn_sample_softmax(c);
    for (i = 0; i < c->n; i++) {
        cum += c->data[i].p;
        if (u < cum) return c->data[i].id;
    }
    return c->data[c->n - 1].id; /* u within rounding of 1 */
}

static int bn__cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The window as (distinct token, count) pairs, from a sorted copy. */
static int bn__window_counts(bn_sampler *s) {
    int i, n = 0;
    memcpy(s->scratch_tokens, s->window, sizeof(int32_t) * (size_t)s->window_len);
    qsort(s->scratch_tokens, (size_t)s->window_len, sizeof(int32_t), bn__cmp_i32);
    for (i = 0; i < s->window_len; i++) {
        if (n > 0 && s->scratch_tokens[n - 1] == s->scratch_tokens[i]) {
            s->scratch_counts[n - 1]++;
        } else {
            s->scratch_tokens[n] = s->scratch_tokens[i];
            s->scratch_counts[n] = 1;
            n++;
        }
    }
    return n;
}

static int bn__penalties_on(const bn_sampler_params *p) {
    return p->penalty_last_n > 0 &&
           (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f);
}

/* The first index of the largest logit (NaNs never win, unless logits[0] is
   one: then 0), as a plain scan finds it. A plain scan is one compare and
   branch per logit, 90 us for 2B4T's 128k on a Zen 5 core: a B = 8 step
   samples eight times on one thread while the pool waits. So: the maximum
   over 16 lanes of fixed length, which compilers vectorize at -O2, then the
   first block holding it; 33 us. (The lanes start at logits[0], so a NaN
   cannot stick in one.) */
#define BN__ARGMAX_LANES 16
static int32_t bn__argmax_logits(const float *logits, int n) {
    float lane[BN__ARGMAX_LANES], top;
    int i, j, hit = 0;
    if (n <= 0) return -1;
    top = logits[0];
    if (top != top) return 0;
    for (j = 0; j < BN__ARGMAX_LANES; j++) lane[j] = top;
    for (i = 0; i + BN__ARGMAX_LANES <= n; i += BN__ARGMAX_LANES)
        for (j = 0; j < BN__ARGMAX_LANES; j++) lane[j] = logits[i + j] > lane[j] ? logits[i + j] : lane[j];
    for (j = 0; j < BN__ARGMAX_LANES; j++)
        if (lane[j] > top) top = lane[j];
    for (; i < n; i++)
        if (logits[i] > top) top = logits[i];
    for (i = 0; i + BN__ARGMAX_LANES <= n; i += BN__ARGMAX_LANES) {
        for (j = 0; j < BN__ARGMAX_LANES; j++) hit |= logits[i + j] == top;
        if (hit) break;
    }
    for (; i < n; i++)
        if (logits[i] == top) return i;
    return 0; /* not reached: top is one of the logits */
}

/* Greedy with nothing that changes the logits: the token is the argmax of the
   logits themselves (bn__argmax_logits). */
static int bn__sampler_plain_greedy(const bn_sampler *s) {
    const bn_sampler_params *p = &s->params;
    return p->temperature <= 0.0f && p->n_logit_bias == 0 && !(bn__penalties_on(p) && s->window_len > 0);
}

/* A plain greedy draw, made here (bn__sampler_chain) or elsewhere (the
   batcher's, over its pool): no candidate list is built (128k of them for
   2B4T, 1.5 MB written per token), so bn_sampler_candidates is empty. */
static int32_t bn__sampler_greedy_taken(bn_sampler *s, int32_t token) {
    s->cands.n = 0;
    s->cands.sorted = 0;
    return token;
}

/* The chain on logits; with mask, only the tokens it allows. */
static int32_t bn__sampler_chain(bn_sampler *s, const float *logits, const uint32_t *mask) {
    const bn_sampler_params *p = &s->params;
    bn_candidates *c = &s->cands;
    if (!mask && bn__sampler_plain_greedy(s)) /* the argmax of the logits themselves */
        return bn__sampler_greedy_taken(s, bn__argmax_logits(logits, s->n_vocab));
    bn_candidates_init(c, logits, s->n_vocab);
    bn_sample_logit_bias(c, s->bias, p->n_logit_bias);
    if (bn__penalties_on(p) && s->window_len > 0) {
        int n = bn__window_counts(s);
        bn_sample_penalties(c, s->scratch_tokens, s->scratch_counts, n, p->repeat_penalty, p->frequency_penalty,
                            p->presence_penalty);
    }
    if (mask) bn_sample_allowed(c, mask);
    if (p->temperature <= 0.0f) return bn_sample_argmax(c);
    bn_sample_top_k(c, p->top_k);
    bn_sample_top_p(c, p->top_p, 1);
    bn_sample_min_p(c, p->min_p, 1);
    bn_sample_temperature(c, p->temperature);
    return bn_sample_draw(c, bn_rng_uniform(&s->rng));
}

BN_API int32_t bn_sampler_sample(bn_sampler *s, const float *logits) {
    int32_t token = bn__sampler_chain(s, logits, NULL);
    if (!s->gm || (token >= 0 && bn_grammar_matcher_allows(s->gm, s->gv, token))) return token;
    if (!bn_grammar_matcher_mask(s->gm, s->gv, s->mask, s->n_vocab)) {
        s->cands.n = 0;
        return -1;
    }
    return bn__sampler_chain(s, logits, s->mask);
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_SAMPLER_H */
