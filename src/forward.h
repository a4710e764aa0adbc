#ifndef BN_PART_FORWARD_H
#define BN_PART_FORWARD_H
/* A context holds what one or more sequences need to run through a model:
   the KV cache (one slot per sequence), scratch buffers, the thread pool and
   the logits of the last forward.

   bn_forward runs a batch of tokens, each tagged with its sequence and
   position, through the transformer in one pass over the weights: prompt
   processing is a batch of many tokens of one sequence; batched decoding is a
   batch of one token for each of many sequences. */

typedef struct bn_context bn_context;

typedef struct bn_context_params {
    int n_ctx;     /* positions per sequence; 0 = the model's max_seq_len */
    int n_seq;     /* sequences (KV slots) the context holds; default 1 */
    int n_batch;   /* most tokens one bn_forward call takes; default 512 */
    int n_threads; /* 0 = one per core */
    bn_kernel kernel; /* BN_KERNEL_AUTO unless testing */
} bn_context_params;

/* One bn_forward call's input. Tokens of the same sequence must come in
   order, and pos[i] must equal that sequence's length so far (use
   bn_seq_truncate to rewind). want_logits may be NULL: logits for the last
   token of the batch only. */
typedef struct bn_batch {
    int n_tokens;
    const int32_t *token;
    const int32_t *pos;
    const int32_t *seq;        /* NULL: all sequence 0 */
    const int8_t *want_logits; /* NULL: only the last token */
} bn_batch;

/* BN_CONTRACT_PENDING: declared ahead of the implementation (issue: core);
   remove this guard when the functions exist. */
#ifdef BN_CONTRACT_PENDING
BN_EXTERN_C_BEGIN
BN_API bn_context_params bn_context_default_params(void);
BN_API bn_status bn_context_new(bn_context **out, const bn_model *model, const bn_context_params *params,
                                bn_error *err);
BN_API void bn_context_free(bn_context *ctx);
BN_API bn_status bn_forward(bn_context *ctx, const bn_batch *batch, bn_error *err);
/* Logits (vocab_size floats) of batch token i, or NULL if they were not asked for. */
BN_API const float *bn_get_logits(const bn_context *ctx, int i);
/* Append n tokens to sequence seq (prompt or one decode step); logits of the last. */
BN_API bn_status bn_eval(bn_context *ctx, int seq, const int32_t *tokens, int n, bn_error *err);
BN_API int bn_seq_len(const bn_context *ctx, int seq);
BN_API void bn_seq_truncate(bn_context *ctx, int seq, int len);
BN_API bn_status bn_seq_copy(bn_context *ctx, int src, int dst, bn_error *err);
BN_API void bn_context_reset(bn_context *ctx); /* all sequences empty */
BN_EXTERN_C_END
#endif /* BN_CONTRACT_PENDING */

#endif /* BN_PART_FORWARD_H */
