/* Soak: thousands of requests through the batcher on the shipped model, with
   random prompt lengths (some too long for a slot), random cancellations
   (from on_token and from outside), random token limits and a small context
   so that many end full; half the prompts start with a shared text, so the
   prompt cache is used while requests come and go. Every accepted request must end exactly once, with a
   reason whose token counts agree with it; `make test` runs this under
   ASan + UBSan + LeakSanitizer as well, which must stay silent. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

#define N_REQUESTS 2000
#define N_CTX 48
#define N_SLOTS 6

typedef struct request {
    int accepted, done, closed, n_prompt, max_new, cancel_at, n_seen;
    bn_stop_reason reason;
    int n_generated, n_cached;
} request;

typedef struct soak {
    request req[N_REQUESTS];
    int by_id[N_REQUESTS]; /* batcher id -> request */
    int eos[8];
} soak;

static soak S;

static int on_token(void *user, const bn_token_event *ev) {
    request *r = &S.req[S.by_id[ev->id]];
    (void)user;
    if (ev->token < 0) { /* the closing call: once, before on_done */
        BNT_CHECKF(ev->logits == NULL && !r->done && !r->closed, "request %d: a second closing call",
                   S.by_id[ev->id]);
        r->closed++;
        return 0;
    }
    BNT_CHECK(ev->logits != NULL && ev->token < 1024 && !r->done && !r->closed && ev->index == r->n_seen);
    r->n_seen++;
    return r->cancel_at > 0 && r->n_seen >= r->cancel_at;
}

static void on_done(void *user, int id, const bn_generate_result *res) {
    request *r = &S.req[S.by_id[id]];
    (void)user;
    BNT_CHECKF(!r->done, "request %d ended twice", S.by_id[id]);
    BNT_CHECKF(r->closed == 1, "request %d: on_done without its closing call", S.by_id[id]);
    r->done = 1;
    r->reason = res->reason;
    r->n_generated = res->n_generated;
    r->n_cached = res->n_cached;
}

static void test_batcher_soak(void) {
    bn_model *m = NULL;
    bn_context *ctx = NULL;
    bn_batcher *b = NULL;
    bn_error err;
    bn_context_params cp = bn_context_default_params();
    bn_batcher_params bp = bn_batcher_default_params();
    uint64_t rng = 20240601;
    int32_t prompt[N_CTX + 8], eos[8], shared[N_CTX + 8];
    int next = 0, i, k, steps = 0, counts[BN_STOP_ERROR + 1] = {0}, rejected = 0, outside_cancels = 0, cache_hits = 0;
    BNT_CHECKF(bn_model_load(&m, "models/shakespeare", NULL, &err) == BN_OK, "%s", err.msg);
    if (!m) return;
    cp.n_ctx = N_CTX;
    cp.n_seq = N_SLOTS;
    cp.n_batch = 64;
    cp.n_threads = 2;
    BNT_CHECKF(bn_context_new(&ctx, m, &cp, &err) == BN_OK, "%s", err.msg);
    for (k = 0; k < N_CTX + 8; k++) shared[k] = (int32_t)(bn_rng_next(&rng) % 1024);
    for (k = 0; k < 8; k++) eos[k] = (int32_t)(bn_rng_next(&rng) % 1024); /* some requests end on one of these */
    bp.eos = eos;
    bp.n_eos = 8;
    bp.prefill_chunk = 16;
    if (ctx) BNT_CHECKF(bn_batcher_new(&b, ctx, &bp, &err) == BN_OK, "%s", err.msg);
    if (!b) goto done;
    while (next < N_REQUESTS || bn_batcher_n_active(b) > 0) {
        /* join as many as there are free slots (and sometimes try one too many) */
        while (next < N_REQUESTS && bn_batcher_n_active(b) < N_SLOTS + (int)(bn_rng_next(&rng) % 2)) {
            request *r = &S.req[next];
            bn_request_params rp = bn_request_default_params();
            int id = -1;
            bn_status st;
            r->n_prompt = 1 + (int)(bn_rng_next(&rng) % (N_CTX + 4)); /* up to a few past the context */
            for (k = 0; k < r->n_prompt; k++) prompt[k] = (int32_t)(bn_rng_next(&rng) % 1024);
            if (bn_rng_next(&rng) % 2) memcpy(prompt, shared, sizeof(int32_t) * (bn_rng_next(&rng) % r->n_prompt));
            r->max_new = bn_rng_next(&rng) % 3 == 0 ? -1 : (int)(bn_rng_next(&rng) % 40);
            r->cancel_at = bn_rng_next(&rng) % 7 == 0 ? 1 + (int)(bn_rng_next(&rng) % 20) : 0;
            rp.max_new_tokens = r->max_new;
            rp.sampler.temperature = bn_rng_next(&rng) % 2 ? 1.0f : 0.0f;
            rp.sampler.seed = bn_rng_next(&rng);
            rp.on_token = on_token;
            rp.on_done = on_done;
            st = bn_batcher_add(b, prompt, r->n_prompt, &rp, &id, &err);
            if (st == BN_ERR_CONTEXT_FULL) break; /* every slot busy: not this request's fault, retry later */
            if (st == BN_OK) {
                BNT_CHECK(id >= 0 && id < N_REQUESTS);
                if (id >= 0 && id < N_REQUESTS) S.by_id[id] = next;
                r->accepted = 1;
            } else {
                BNT_CHECKF(st == BN_ERR_ARG && r->n_prompt >= N_CTX, "prompt of %d: %s", r->n_prompt, err.msg);
                rejected++;
            }
            next++;
        }
        if (bn_rng_next(&rng) % 50 == 0) { /* a client goes away */
            for (k = 0; k < next; k++)
                if (S.req[k].accepted && !S.req[k].done) {
                    int id;
                    for (id = 0; id < N_REQUESTS && !(S.by_id[id] == k && S.req[k].accepted); id++) {
                    }
                    if (id < N_REQUESTS && bn_batcher_cancel(b, id)) outside_cancels++;
                    break;
                }
        }
        if (bn_batcher_step(b, NULL, &err) != BN_OK) {
            BNT_CHECKF(0, "step: %s", err.msg);
            break;
        }
        steps++;
    }
    for (i = 0; i < N_REQUESTS; i++) {
        request *r = &S.req[i];
        if (!r->accepted) continue;
        BNT_CHECKF(r->done, "request %d never ended", i);
        if (!r->done) continue;
        counts[r->reason]++;
        switch (r->reason) {
        case BN_STOP_MAX_TOKENS: BNT_CHECK(r->n_generated == r->max_new); break;
        /* the cache holds N_CTX positions; the last token sampled is never fed */
        case BN_STOP_CONTEXT_FULL: BNT_CHECKF(r->n_prompt + r->n_generated == N_CTX + 1, "%d + %d", r->n_prompt, r->n_generated); break;
        case BN_STOP_EOS: BNT_CHECK(r->n_generated >= 1); break;
        case BN_STOP_CANCELLED: BNT_CHECK(r->cancel_at == 0 || r->n_generated <= r->cancel_at); break;
        default: BNT_CHECKF(0, "request %d ended with reason %d", i, (int)r->reason);
        }
        if (r->max_new >= 0) BNT_CHECK(r->n_generated <= r->max_new);
        BNT_CHECK(r->n_cached >= 0 && r->n_cached < r->n_prompt);
        cache_hits += r->n_cached > 0;
    }
    printf("    %d requests (%d refused: prompt too long), %d steps: %d eos, %d max tokens, %d context full, "
           "%d cancelled (%d from outside); %d reused cached positions\n", N_REQUESTS, rejected, steps,
           counts[BN_STOP_EOS], counts[BN_STOP_MAX_TOKENS], counts[BN_STOP_CONTEXT_FULL], counts[BN_STOP_CANCELLED],
           outside_cancels, cache_hits);
    BNT_CHECK(counts[BN_STOP_EOS] > 0 && counts[BN_STOP_MAX_TOKENS] > 0 && counts[BN_STOP_CONTEXT_FULL] > 0 &&
              counts[BN_STOP_CANCELLED] > 0 && rejected > 0 && cache_hits > 0);
    for (k = 0; k < N_SLOTS; k++) BNT_CHECK(bn_seq_len(ctx, k) <= N_CTX); /* what the prompt cache keeps */
done:
    bn_batcher_free(b);
    bn_context_free(ctx);
    bn_model_free(m);
}

int main(void) {
    BNT_RUN(test_batcher_soak);
    return bnt_finish("soak");
}
