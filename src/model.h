#ifndef BN_PART_MODEL_H
#define BN_PART_MODEL_H
/* A loaded model: its configuration (from config.json) and its weights in the
   layouts the kernels want. Read-only once loaded: one model can serve many
   contexts on many threads.

   Supported (see README): model_type "bitnet" (BitNetForCausalLM, as
   microsoft/bitnet-b1.58-2B-4T) and "llama" with a bitnet quantization_config
   (tiiuae/Falcon3-*-1.58bit, HF1BitLLM/Llama3-8B-1.58), each as bf16 master
   weights (quantized at load), packed `bitlinear` or packed `autobitlinear`. */

typedef enum bn_arch { BN_ARCH_BITNET = 0, BN_ARCH_LLAMA } bn_arch;
typedef enum bn_act { BN_ACT_RELU2 = 0, BN_ACT_SILU } bn_act;

/* How the ternary linears are stored on disk. */
typedef enum bn_weight_variant {
    BN_WEIGHTS_MASTER = 0,     /* bf16/f32 master weights, quantized online at load (absmean) */
    BN_WEIGHTS_BITLINEAR,      /* packed uint8 codes; weight_scale = 1/mean|W| (divides) */
    BN_WEIGHTS_AUTOBITLINEAR   /* packed uint8 codes; weight_scale = mean|W| (multiplies) */
} bn_weight_variant;

#define BN_MAX_EOS 8

typedef struct bn_config {
    bn_arch arch;
    bn_act act;
    bn_weight_variant variant;
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;             /* explicit in config.json or hidden_size / n_heads */
    int max_seq_len;          /* max_position_embeddings */
    float rope_theta;
    float rms_norm_eps;
    int tie_word_embeddings;
    int has_sub_norms;        /* attn_sub_norm + ffn_sub_norm (bitnet arch) */
    int bos_token_id;         /* -1 when absent */
    int n_eos;
    int eos_token_ids[BN_MAX_EOS]; /* config.json and generation_config.json, merged */
} bn_config;

typedef struct bn_model_params {
    bn_tlayout layout;  /* in-memory ternary layout; BN_TLAYOUT_DEFAULT picks the measured best */
    bn_ftype head_type; /* lm_head (and untied embeddings kept as-is on disk when possible) */
    int head_type_set;  /* 0: the library's measured default for head_type */
} bn_model_params;

typedef struct bn_model bn_model; /* defined in the implementation; see bn_model_config */

/* BN_CONTRACT_PENDING: declared ahead of the implementation (issue: core);
   remove this guard when the functions exist. */
#ifdef BN_CONTRACT_PENDING
BN_EXTERN_C_BEGIN
BN_API bn_model_params bn_model_default_params(void);
/* Load an HF model folder (config.json + model.safetensors or a sharded
   model.safetensors.index.json; generation_config.json when present), or a
   .safetensors file with config.json beside it. params may be NULL. */
BN_API bn_status bn_model_load(bn_model **out, const char *path, const bn_model_params *params, bn_error *err);
BN_API void bn_model_free(bn_model *model);
BN_API const bn_config *bn_model_config(const bn_model *model);
/* Bytes of files mapped and bytes allocated (converted weights) by the load. */
BN_API void bn_model_memory(const bn_model *model, size_t *bytes_mapped, size_t *bytes_allocated);
BN_EXTERN_C_END
#endif /* BN_CONTRACT_PENDING */

#endif /* BN_PART_MODEL_H */
