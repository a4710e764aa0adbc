/* The sampler chain, one step at a time on hand-made logits whose expected
   result is worked out by hand (or by a plain full sort), then the whole
   chain: seeds, penalty window, and draw frequencies. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

#define NMAX 4096
static bn_candidate buf[NMAX];

static bn_candidates make(const float *logits, int n) {
    bn_candidates c;
    c.data = buf;
    bn_candidates_init(&c, logits, n);
    return c;
}

static int has_id(const bn_candidates *c, int id) {
    int i;
    for (i = 0; i < c->n; i++)
        if (c->data[i].id == id) return 1;
    return 0;
}

static void test_prng_reference_values(void) {
    /* splitmix64 seeded with 0: the reference sequence from its author's C code */
    uint64_t s = 0;
    BNT_CHECK(bn_rng_next(&s) == 0xE220A8397B1DCDAFull);
    BNT_CHECK(bn_rng_next(&s) == 0x6E789E6AA1B965F4ull);
    BNT_CHECK(bn_rng_next(&s) == 0x06C45D188009454Full);
    s = 12345;
    {
        int i;
        double lo = 1, hi = 0;
        for (i = 0; i < 10000; i++) {
            double u = bn_rng_uniform(&s);
            if (u < lo) lo = u;
            if (u > hi) hi = u;
        }
        BNT_CHECK(lo >= 0.0 && lo < 0.01 && hi < 1.0 && hi > 0.99);
    }
}

static void test_argmax_ties_lowest_id(void) {
    float l[5] = {1, 5, 3, 5, 2};
    bn_candidates c = make(l, 5);
    BNT_CHECK(bn_sample_argmax(&c) == 1);
}

/* greedy without bias or penalties reads the logits directly: same answer */
static void test_greedy_fast_path(void) {
    float l[6] = {1, 5, 3, 5, 2, -7};
    bn_sampler *s;
    bn_sampler_params p = bn_sampler_default_params();
    p.temperature = 0.0f;
    p.repeat_penalty = 1.0f;
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    BNT_CHECK(bn_sampler_new(&s, &p, 6, NULL) == BN_OK);
    BNT_CHECK(bn_sampler_sample(s, l) == 1); /* the tie of 5s goes to the lowest id */
    l[5] = 9.0f;
    BNT_CHECK(bn_sampler_sample(s, l) == 5);
    bn_sampler_free(s);
}

/* The greedy fast path (a blocked scan) against a plain scan, which is the
   definition: the first index of the largest logit. Sizes below, at and
   around the block of 16; the maximum in the first element, a middle block,
   the tail; ties across blocks; -0 and +0; infinities; NaNs, which never win
   unless the first logit is one (then 0, as the plain scan answers). */
static int plain_argmax(const float *l, int n) {
    int i, best = 0;
    for (i = 1; i < n; i++)
        if (l[i] > l[best]) best = i;
    return best;
}

static void test_greedy_fast_path_matches_plain_scan(void) {
    static const int sizes[] = {1, 2, 15, 16, 17, 31, 32, 33, 100, 4096};
    static float l[NMAX];
    uint64_t rng = 99;
    int si, round, i, ok = 1;
    bn_sampler_params p = bn_sampler_default_params();
    p.temperature = 0.0f;
    p.repeat_penalty = 1.0f;
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    for (si = 0; si < (int)(sizeof sizes / sizeof sizes[0]); si++) {
        int n = sizes[si];
        bn_sampler *s;
        if (bn_sampler_new(&s, &p, n, NULL) != BN_OK) {
            ok = 0;
            continue;
        }
        for (round = 0; round < 40; round++) {
            int at = (int)(bn_rng_next(&rng) % (uint64_t)n), got, want;
            for (i = 0; i < n; i++) l[i] = (float)(bn_rng_next(&rng) % 64) - 32.0f; /* many ties */
            switch (round % 8) {
            case 1: l[at] = 1e30f; break;
            case 2: l[n - 1] = 100.0f; break;
            case 3: for (i = 0; i < n; i++) l[i] = (i % 2) ? -0.0f : 0.0f; break;
            case 4: l[at] = INFINITY; l[n - 1] = INFINITY; break;
            case 5: for (i = 1; i < n; i += 3) l[i] = NAN; break;
            case 6: l[0] = NAN; break;
            case 7: for (i = 0; i < n; i++) l[i] = -INFINITY; l[at] = -1e30f; break;
            default: break;
            }
            got = bn_sampler_sample(s, l);
            want = plain_argmax(l, n);
            if (got != want) {
                ok = 0;
                printf("  n %d round %d: %d, plain scan %d\n", n, round, got, want);
            }
        }
        bn_sampler_free(s);
    }
    BNT_CHECK(ok);
}

static void test_top_k_small(void) {
    float l[6] = {1, 5, 3, 5, 2, -1};
    bn_candidates c = make(l, 6);
    bn_sample_top_k(&c, 3);
    BNT_CHECK(c.n == 3 && c.sorted);
    BNT_CHECK(c.data[0].id == 1 && c.data[1].id == 3 && c.data[2].id == 2);
    c = make(l, 6);
    bn_sample_top_k(&c, 0); /* off */
    BNT_CHECK(c.n == 6 && !c.sorted);
    bn_sample_top_k(&c, 100); /* more than there are: all, sorted */
    BNT_CHECK(c.n == 6 && c.data[0].id == 1 && c.data[5].id == 5);
}

/* Reference: a full qsort of (logit desc, id asc). */
static int cmp_ref(const void *a, const void *b) {
    const bn_candidate *x = (const bn_candidate *)a, *y = (const bn_candidate *)b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static void test_top_k_matches_full_sort(void) {
    static float l[NMAX];
    static bn_candidate ref[NMAX];
    uint64_t rng = 7;
    int i, k, trial;
    for (trial = 0; trial < 4; trial++) {
        bn_candidates c;
        for (i = 0; i < NMAX; i++) /* coarse values so that ties occur */
            l[i] = (float)(int)(bn_rng_uniform(&rng) * 200.0) * 0.25f;
        c = make(l, NMAX);
        memcpy(ref, c.data, sizeof(bn_candidate) * NMAX);
        qsort(ref, NMAX, sizeof(bn_candidate), cmp_ref);
        k = trial == 0 ? 1 : trial == 1 ? 40 : trial == 2 ? 333 : NMAX;
        bn_sample_top_k(&c, k);
        BNT_CHECK(c.n == k);
        for (i = 0; i < k; i++) BNT_CHECKF(c.data[i].id == ref[i].id, "k=%d rank %d: %d vs %d", k, i, c.data[i].id, ref[i].id);
    }
}

static void test_softmax_known(void) {
    float l[4];
    bn_candidates c;
    int i;
    for (i = 0; i < 4; i++) l[i] = logf((float)(i + 1)) + 3.0f; /* p = 0.1, 0.2, 0.3, 0.4 */
    c = make(l, 4);
    bn_sample_softmax(&c);
    for (i = 0; i < 4; i++) BNT_CHECKF(fabsf(c.data[i].p - 0.1f * (float)(i + 1)) < 1e-6f, "p[%d]=%g", i, c.data[i].p);
}

static void test_top_p_small(void) {
    float l[4];
    bn_candidates c;
    int i;
    for (i = 0; i < 4; i++) l[i] = logf((float)(i + 1)); /* p = 0.1, 0.2, 0.3, 0.4 */
    c = make(l, 4);
    bn_sample_top_p(&c, 0.5f, 1); /* 0.4 < 0.5, 0.4 + 0.3 >= 0.5 */
    BNT_CHECK(c.n == 2 && c.data[0].id == 3 && c.data[1].id == 2);
    c = make(l, 4);
    bn_sample_top_p(&c, 0.75f, 1); /* 0.4, 0.7, 0.9 */
    BNT_CHECK(c.n == 3 && has_id(&c, 1) && !has_id(&c, 0));
    c = make(l, 4);
    bn_sample_top_p(&c, 0.3f, 1); /* the top token alone */
    BNT_CHECK(c.n == 1 && c.data[0].id == 3);
    c = make(l, 4);
    bn_sample_top_p(&c, 0.3f, 3); /* min_keep */
    BNT_CHECK(c.n == 3);
    c = make(l, 4);
    bn_sample_top_p(&c, 1.0f, 1); /* off */
    BNT_CHECK(c.n == 4);
    /* after top-k: renormalized over the 2 survivors (0.4/0.7, 0.3/0.7) */
    c = make(l, 4);
    bn_sample_top_k(&c, 2);
    bn_sample_top_p(&c, 0.5f, 1); /* 0.571 >= 0.5 */
    BNT_CHECK(c.n == 1 && c.data[0].id == 3);
}

static void test_top_p_needs_big_prefix(void) {
    /* 1000 equal logits: p = 0.001 each. top_p 0.1005 needs 101 tokens, more than
       the first partial selection (64) holds; ties go to the lowest ids. */
    static float l[1000];
    bn_candidates c;
    int i, ok = 1;
    for (i = 0; i < 1000; i++) l[i] = 0.5f;
    c = make(l, 1000);
    bn_sample_top_p(&c, 0.1005f, 1);
    BNT_CHECKF(c.n == 101, "n=%d", c.n);
    for (i = 0; i < c.n; i++) ok &= c.data[i].id == i;
    BNT_CHECK(ok);
    /* five tokens scattered in a large vocabulary hold ~all the mass */
    for (i = 0; i < 1000; i++) l[i] = -20.0f;
    l[7] = 5; l[400] = 4; l[999] = 4.5f; l[3] = 3; l[512] = 2;
    c = make(l, 1000);
    bn_sample_top_p(&c, 0.99f, 1);
    BNT_CHECKF(c.n == 5, "n=%d", c.n);
    BNT_CHECK(c.data[0].id == 7 && c.data[1].id == 999 && c.data[2].id == 400 && c.data[3].id == 3 && c.data[4].id == 512);
}

static void test_min_p(void) {
    /* relative probabilities 1, 0.5, 0.04, 0.1: min_p 0.05 drops only token 2 */
    float l[4];
    bn_candidates c;
    l[0] = 1.0f; l[1] = 1.0f + logf(0.5f); l[2] = 1.0f + logf(0.04f); l[3] = 1.0f + logf(0.1f);
    c = make(l, 4);
    bn_sample_min_p(&c, 0.05f, 1);
    BNT_CHECK(c.n == 3 && has_id(&c, 0) && has_id(&c, 1) && has_id(&c, 3) && !has_id(&c, 2));
    c = make(l, 4);
    bn_sample_min_p(&c, 0.6f, 1); /* only the top one */
    BNT_CHECK(c.n == 1 && c.data[0].id == 0);
    c = make(l, 4);
    bn_sample_min_p(&c, 0.6f, 2); /* min_keep: the 2 best */
    BNT_CHECK(c.n == 2 && has_id(&c, 0) && has_id(&c, 1));
    c = make(l, 4);
    bn_sample_top_k(&c, 4); /* sorted path */
    bn_sample_min_p(&c, 0.05f, 1);
    BNT_CHECK(c.n == 3 && c.data[0].id == 0 && c.data[1].id == 1 && c.data[2].id == 3);
}

static void test_temperature(void) {
    float l[2] = {2.0f, -4.0f};
    bn_candidates c = make(l, 2);
    bn_sample_temperature(&c, 2.0f);
    BNT_CHECK(c.data[0].logit == 1.0f && c.data[1].logit == -2.0f);
}

static void test_penalties(void) {
    float l[4] = {2.0f, -2.0f, 1.0f, 0.5f};
    int32_t toks[2] = {0, 1};
    int counts[2] = {2, 1};
    bn_candidates c = make(l, 4);
    bn_sample_penalties(&c, toks, counts, 2, 2.0f, 0.1f, 0.5f);
    /* token 0: 2/2 - 2*0.1 - 0.5 = 0.3; token 1: -2*2 - 0.1 - 0.5 = -4.6 */
    BNT_CHECKF(fabsf(c.data[0].logit - 0.3f) < 1e-6f, "%g", c.data[0].logit);
    BNT_CHECKF(fabsf(c.data[1].logit + 4.6f) < 1e-6f, "%g", c.data[1].logit);
    BNT_CHECK(c.data[2].logit == 1.0f && c.data[3].logit == 0.5f);
}

static void test_logit_bias(void) {
    float l[3] = {3.0f, 2.0f, 1.0f};
    bn_logit_bias b[2];
    bn_candidates c = make(l, 3);
    b[0].token = 0; b[0].bias = -INFINITY;
    b[1].token = 2; b[1].bias = 1.5f;
    bn_sample_logit_bias(&c, b, 2);
    BNT_CHECK(bn_sample_argmax(&c) == 2);
}

static void test_draw(void) {
    float l[4];
    bn_candidates c;
    int i;
    for (i = 0; i < 4; i++) l[i] = logf((float)(i + 1)); /* p = 0.1, 0.2, 0.3, 0.4 */
    c = make(l, 4);
    BNT_CHECK(bn_sample_draw(&c, 0.05) == 0);
    BNT_CHECK(bn_sample_draw(&c, 0.15) == 1);
    BNT_CHECK(bn_sample_draw(&c, 0.35) == 2);
    BNT_CHECK(bn_sample_draw(&c, 0.65) == 3);
    BNT_CHECK(bn_sample_draw(&c, 0.9999999) == 3);
}

static void test_chain_frequencies(void) {
    /* temperature 1, no filters: draws follow p = 0.1..0.4 */
    float l[4];
    int i, hist[4] = {0, 0, 0, 0};
    bn_sampler *s;
    bn_sampler_params p = bn_sampler_default_params();
    p.temperature = 1.0f; p.top_k = 0; p.top_p = 1.0f; p.min_p = 0.0f; p.seed = 99;
    for (i = 0; i < 4; i++) l[i] = logf((float)(i + 1));
    BNT_CHECK(bn_sampler_new(&s, &p, 4, NULL) == BN_OK);
    for (i = 0; i < 20000; i++) hist[bn_sampler_sample(s, l)]++;
    for (i = 0; i < 4; i++) BNT_CHECKF(fabs(hist[i] / 20000.0 - 0.1 * (i + 1)) < 0.015, "token %d: %d", i, hist[i]);
    bn_sampler_free(s);
    /* temperature 0.5 squares the odds: p ~ 1, 4, 9, 16 over 30 */
    p.temperature = 0.5f;
    BNT_CHECK(bn_sampler_new(&s, &p, 4, NULL) == BN_OK);
    memset(hist, 0, sizeof hist);
    for (i = 0; i < 20000; i++) hist[bn_sampler_sample(s, l)]++;
    for (i = 0; i < 4; i++)
        BNT_CHECKF(fabs(hist[i] / 20000.0 - (double)((i + 1) * (i + 1)) / 30.0) < 0.015, "token %d: %d", i, hist[i]);
    bn_sampler_free(s);
    /* top-k 2 with temperature: only tokens 2 and 3, in ratio 3:4 */
    p.temperature = 1.0f; p.top_k = 2;
    BNT_CHECK(bn_sampler_new(&s, &p, 4, NULL) == BN_OK);
    memset(hist, 0, sizeof hist);
    for (i = 0; i < 20000; i++) hist[bn_sampler_sample(s, l)]++;
    BNT_CHECK(hist[0] == 0 && hist[1] == 0);
    BNT_CHECKF(fabs(hist[3] / 20000.0 - 4.0 / 7.0) < 0.015, "%d", hist[3]);
    bn_sampler_free(s);
}

static void random_logits(float *l, int n, uint64_t *rng) {
    int i;
    for (i = 0; i < n; i++) l[i] = (float)(bn_rng_uniform(rng) * 8.0 - 4.0);
}

static void test_seed_reproducible(void) {
    static float l[1000];
    int32_t a[50], b[50], c[50];
    bn_sampler *s1, *s2, *s3;
    bn_sampler_params p = bn_sampler_default_params();
    uint64_t rng = 1;
    int i, differ = 0;
    p.temperature = 1.5f; p.top_k = 0; p.top_p = 0.98f; p.min_p = 0.0f; p.seed = 42;
    BNT_CHECK(bn_sampler_new(&s1, &p, 1000, NULL) == BN_OK);
    BNT_CHECK(bn_sampler_new(&s2, &p, 1000, NULL) == BN_OK);
    p.seed = 43;
    BNT_CHECK(bn_sampler_new(&s3, &p, 1000, NULL) == BN_OK);
    for (i = 0; i < 50; i++) {
        random_logits(l, 1000, &rng);
        a[i] = bn_sampler_sample(s1, l);
        b[i] = bn_sampler_sample(s2, l);
        c[i] = bn_sampler_sample(s3, l);
        differ += a[i] != c[i];
    }
    BNT_CHECK(memcmp(a, b, sizeof a) == 0);
    BNT_CHECK(differ > 10); /* flat-ish distributions over 1000 tokens: another seed draws others */
    /* reset replays the same draws */
    bn_sampler_reset(s1);
    rng = 1;
    for (i = 0; i < 50; i++) {
        random_logits(l, 1000, &rng);
        b[i] = bn_sampler_sample(s1, l);
    }
    BNT_CHECK(memcmp(a, b, sizeof a) == 0);
    bn_sampler_free(s1);
    bn_sampler_free(s2);
    bn_sampler_free(s3);
}

static void test_penalty_window(void) {
    /* greedy + repeat penalty 10 over a window of 2: logits 5, 4, 3 */
    float l[3] = {5.0f, 4.0f, 3.0f};
    bn_sampler *s;
    bn_sampler_params p = bn_sampler_default_params();
    p.temperature = 0.0f; p.repeat_penalty = 10.0f; p.penalty_last_n = 2;
    BNT_CHECK(bn_sampler_new(&s, &p, 3, NULL) == BN_OK);
    BNT_CHECK(bn_sampler_sample(s, l) == 0);
    bn_sampler_accept(s, 0);
    BNT_CHECK(bn_sampler_sample(s, l) == 1); /* 0 penalized to 0.5 */
    bn_sampler_accept(s, 1);
    BNT_CHECK(bn_sampler_sample(s, l) == 2); /* 0 and 1 penalized */
    bn_sampler_accept(s, 2);                 /* window now {1, 2}: 0 left it */
    BNT_CHECK(bn_sampler_sample(s, l) == 0);
    bn_sampler_free(s);
    /* frequency penalty counts repeats inside the window */
    p.repeat_penalty = 1.0f; p.frequency_penalty = 0.6f; p.penalty_last_n = 8;
    BNT_CHECK(bn_sampler_new(&s, &p, 3, NULL) == BN_OK);
    bn_sampler_accept(s, 0);
    BNT_CHECK(bn_sampler_sample(s, l) == 0); /* 5 - 0.6 = 4.4 > 4 */
    bn_sampler_accept(s, 0);
    BNT_CHECK(bn_sampler_sample(s, l) == 1); /* 5 - 1.2 = 3.8 < 4 */
    bn_sampler_free(s);
}

static void test_bad_params(void) {
    bn_sampler *s = NULL;
    bn_error err;
    bn_logit_bias b;
    bn_sampler_params p = bn_sampler_default_params();
    b.token = 10; b.bias = 1.0f;
    p.logit_bias = &b; p.n_logit_bias = 1;
    BNT_CHECK(bn_sampler_new(&s, &p, 5, &err) == BN_ERR_ARG && s == NULL);
    BNT_CHECK(strstr(err.msg, "token 10") != NULL);
    BNT_CHECK(bn_sampler_new(&s, NULL, 0, &err) == BN_ERR_ARG);
}

int main(void) {
    BNT_RUN(test_prng_reference_values);
    BNT_RUN(test_argmax_ties_lowest_id);
    BNT_RUN(test_greedy_fast_path);
    BNT_RUN(test_greedy_fast_path_matches_plain_scan);
    BNT_RUN(test_top_k_small);
    BNT_RUN(test_top_k_matches_full_sort);
    BNT_RUN(test_softmax_known);
    BNT_RUN(test_top_p_small);
    BNT_RUN(test_top_p_needs_big_prefix);
    BNT_RUN(test_min_p);
    BNT_RUN(test_temperature);
    BNT_RUN(test_penalties);
    BNT_RUN(test_logit_bias);
    BNT_RUN(test_draw);
    BNT_RUN(test_chain_frequencies);
    BNT_RUN(test_seed_reproducible);
    BNT_RUN(test_penalty_window);
    BNT_RUN(test_bad_params);
    return bnt_finish("test_sampler");
}
