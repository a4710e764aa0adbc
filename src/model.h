#ifndef BN_PART_MODEL_H
#define BN_PART_MODEL_H
#include "base.h"
#include "json.h"
#include "safetensors.h"
#include "ternary_matmul.h"
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
    bn_limits limits;   /* on the bytes the load allocates (see bn_limits); zeros: the defaults */
} bn_model_params;

typedef struct bn_model bn_model; /* defined in the implementation; see bn_model_config */

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
/* The loaded weights, read-only and owned by the model (for tools that measure them): layer's
   ternary linears in the order q, k, v, o, gate, up, down (which = 0..6; NULL outside the
   model), and the output head. */
BN_API const bn_tmat *bn_model_linear(const bn_model *model, int layer, int which);
BN_API const bn_fmat *bn_model_lm_head(const bn_model *model);
/* Parse and validate a config.json text (and generation_config.json, may be
   NULL) into *cfg without loading weights; `what` names the file in errors. */
BN_API bn_status bn_config_parse(bn_config *cfg, const char *config_json, const char *generation_config_json,
                                 const char *what, bn_error *err);
/* The config.json that bn_config_parse reads back as *cfg (every end token
   in eos_token_id), written from the same table of keys. *json is
   BN_MALLOC'd and NUL-terminated (free with bn_free); len may be NULL. */
BN_API bn_status bn_config_to_json(const bn_config *cfg, char **json, size_t *len, bn_error *err);
BN_API const char *bn_arch_name(bn_arch arch);
BN_API const char *bn_weight_variant_name(bn_weight_variant variant);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

/* ---- the model in memory -------------------------------------------------
   One transformer block's weights. The ternary linears are bn_tmat in the
   kernels' layout; norms are f32 copies; attn_sub_norm/ffn_sub_norm are NULL
   for architectures without them (llama). */
typedef struct bn_layer {
    float *attn_norm;     /* input_layernorm [hidden] */
    float *ffn_norm;      /* post_attention_layernorm [hidden] */
    float *attn_sub_norm; /* [n_heads * head_dim] or NULL */
    float *ffn_sub_norm;  /* [intermediate] or NULL */
    bn_tmat wq, wk, wv, wo, w_gate, w_up, w_down;
} bn_layer;

struct bn_model {
    bn_config config;
    bn_fmat embed;      /* [vocab, hidden], usually bf16 pointing into the mapped file */
    bn_fmat lm_head;    /* [vocab, hidden]; when tied, the same data as embed (not owned) */
    float *final_norm;  /* model.norm [hidden] */
    bn_layer *layers;
    bn_safetensors *st; /* the mapped checkpoint, kept open while embed/lm_head point into it */
    bn__budget budget;  /* params.limits, and the bytes allocated (bn_model_memory) */
    bn__tarena weights; /* every layer's packed ternary matrices, in one block */
};

BN_API const char *bn_arch_name(bn_arch arch) { return arch == BN_ARCH_BITNET ? "bitnet" : "llama"; }

BN_API const char *bn_weight_variant_name(bn_weight_variant variant) {
    switch (variant) {
    case BN_WEIGHTS_MASTER: return "master (quantized at load)";
    case BN_WEIGHTS_BITLINEAR: return "packed bitlinear";
    case BN_WEIGHTS_AUTOBITLINEAR: return "packed autobitlinear";
    }
    return "?";
}

BN_API bn_model_params bn_model_default_params(void) {
    bn_model_params p;
    memset(&p, 0, sizeof p);
    p.layout = BN_TLAYOUT_DEFAULT;
    p.head_type = BN_FTYPE_BF16;
    p.head_type_set = 0;
    return p;
}

/* ---- config.json ---------------------------------------------------------- */

/* config.json's integer keys: bn_config_parse reads them and bn_config_to_json
   writes them, both from this table. */
#define BN__CFG_HEADS (-1) /* the default of num_key_value_heads: num_attention_heads */
typedef struct bn__cfg_key {
    const char *key;
    size_t offset; /* of the int in bn_config */
    int dflt;      /* when absent: 0 an error, > 0 this value, BN__CFG_HEADS the head count */
    int limit;
} bn__cfg_key;

static const bn__cfg_key bn__cfg_keys[] = {
    {"vocab_size", offsetof(bn_config, vocab_size), 0, 1 << 24},
    {"hidden_size", offsetof(bn_config, hidden_size), 0, 1 << 16},
    {"intermediate_size", offsetof(bn_config, intermediate_size), 0, 1 << 18},
    {"num_hidden_layers", offsetof(bn_config, n_layers), 0, 1024},
    {"num_attention_heads", offsetof(bn_config, n_heads), 0, 1024},
    {"num_key_value_heads", offsetof(bn_config, n_kv_heads), BN__CFG_HEADS, 1024},
    {"max_position_embeddings", offsetof(bn_config, max_seq_len), 2048, 1 << 24},
};

static int *bn__cfg_field(bn_config *cfg, const bn__cfg_key *k) { return (int *)(void *)((char *)cfg + k->offset); }

/* A positive integer up to limit; the default when absent if dflt > 0, else an error. */
static bn_status bn__cfg_int(const bn_json *root, const char *key, int *out, int dflt, int limit, const char *what,
                             bn_error *err) {
    return bn__json_int_field(root, key, 1, limit, dflt > 0, dflt, out, what, err);
}

/* Append the ids of an int-or-list value to the EOS list, without duplicates. */
static void bn__cfg_add_eos(bn_config *cfg, const bn_json *v) {
    int i, j, n = 1;
    if (!v) return;
    if (v->type == BN_JSON_ARRAY) n = v->len;
    for (i = 0; i < n; i++) {
        const bn_json *e = v->type == BN_JSON_ARRAY ? &v->child[i] : v;
        int dup = 0;
        if (!bn_json_is_int(e) || e->num < 0) continue;
        for (j = 0; j < cfg->n_eos; j++) dup |= cfg->eos_token_ids[j] == (int)e->num;
        if (!dup && cfg->n_eos < BN_MAX_EOS) cfg->eos_token_ids[cfg->n_eos++] = (int)e->num;
    }
}

/* quantization_config: which weight variant the checkpoint holds. */
static bn_status bn__cfg_quant(bn_config *cfg, const bn_json *q, const char *what, bn_error *err) {
    const char *method = bn_json_string(q, "quant_method", "bitnet");
    const char *cls = bn_json_string(q, "linear_class", "bitlinear");
    const char *mode = bn_json_string(q, "quantization_mode", "offline");
    const bn_json *skip = bn_json_get(q, "modules_to_not_convert");
    int i;
    if (strcmp(method, "bitnet") != 0)
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: quantization_config.quant_method \"%s\" (only \"bitnet\")", what,
                         method);
    if (strcmp(cls, "bitlinear") != 0 && strcmp(cls, "autobitlinear") != 0)
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: quantization_config.linear_class \"%s\"", what, cls);
    if (bn_json_bool(q, "use_rms_norm", 0))
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: quantization_config.use_rms_norm (an RMSNorm inside every linear)", what);
    if (strcmp(mode, "online") == 0) cfg->variant = BN_WEIGHTS_MASTER;
    else if (strcmp(mode, "offline") == 0)
        cfg->variant = strcmp(cls, "bitlinear") == 0 ? BN_WEIGHTS_BITLINEAR : BN_WEIGHTS_AUTOBITLINEAR;
    else return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: quantization_config.quantization_mode \"%s\"", what, mode);
    /* lm_head is never quantized here; a projection left in float is not supported. */
    if (skip && skip->type == BN_JSON_ARRAY)
        for (i = 0; i < skip->len; i++)
            if (skip->child[i].type == BN_JSON_STRING && strstr(skip->child[i].str, "proj"))
                return bn_errorf(err, BN_ERR_UNSUPPORTED,
                                 "%s: modules_to_not_convert lists \"%s\": float projections are not supported", what,
                                 skip->child[i].str);
    return BN_OK;
}

/* RoPE: a top-level rope_theta (older checkpoints) or transformers-5
   rope_parameters.rope_theta; only the default (unscaled) RoPE is supported. */
static bn_status bn__cfg_rope(bn_config *cfg, const bn_json *root, const char *what, bn_error *err) {
    const bn_json *params = bn_json_get(root, "rope_parameters"), *scaling = bn_json_get(root, "rope_scaling");
    const char *type;
    double theta = bn_json_number(root, "rope_theta", 10000.0);
    if (params && params->type == BN_JSON_OBJECT) {
        theta = bn_json_number(params, "rope_theta", theta);
        type = bn_json_string(params, "rope_type", "default");
        if (strcmp(type, "default") != 0)
            return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: rope_parameters.rope_type \"%s\" (only \"default\")", what, type);
    }
    if (scaling && scaling->type == BN_JSON_OBJECT) {
        type = bn_json_string(scaling, "rope_type", bn_json_string(scaling, "type", "default"));
        if (strcmp(type, "default") != 0)
            return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: rope_scaling type \"%s\" (only default RoPE)", what, type);
    }
    /* checked as the float it becomes: 1e-50 is > 0 as a double but 0 as a float */
    if (!((float)theta > 0.0f) || theta > 1e12)
        return bn_errorf(err, BN_ERR_CONFIG, "%s: rope_theta = %g must be > 0 (as a float) and at most 1e12", what, theta);
    cfg->rope_theta = (float)theta;
    return BN_OK;
}

static bn_status bn__cfg_from_json(bn_config *cfg, const bn_json *root, const bn_json *gen, const char *what,
                                   bn_error *err) {
    const char *model_type = bn_json_string(root, "model_type", NULL), *act;
    const bn_json *q = bn_json_get(root, "quantization_config"), *hd = bn_json_get(root, "head_dim");
    double eps;
    size_t i;
    bn_status s;
    memset(cfg, 0, sizeof *cfg);
    if (!root || root->type != BN_JSON_OBJECT) return bn_errorf(err, BN_ERR_CONFIG, "%s: not a JSON object", what);
    if (!model_type) return bn_errorf(err, BN_ERR_CONFIG, "%s: \"model_type\" is missing", what);
    if (strcmp(model_type, "bitnet") == 0) {
        cfg->arch = BN_ARCH_BITNET;
        cfg->has_sub_norms = 1;
        act = "relu2";
    } else if (strcmp(model_type, "llama") == 0) {
        cfg->arch = BN_ARCH_LLAMA;
        act = "silu";
        /* A plain llama is a float model; only BitNet-quantized ones run here. */
        if (!q || q->type != BN_JSON_OBJECT)
            return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: model_type \"llama\" without a bitnet quantization_config", what);
    } else {
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: model_type \"%s\" (supported: bitnet, llama with bitnet quantization)",
                         what, model_type);
    }
    cfg->variant = BN_WEIGHTS_BITLINEAR; /* bitnet checkpoints without quantization_config ship packed */
    if (q && q->type == BN_JSON_OBJECT && (s = bn__cfg_quant(cfg, q, what, err)) != BN_OK) return s;
    act = bn_json_string(root, "hidden_act", act);
    if (strcmp(act, "relu2") == 0) cfg->act = BN_ACT_RELU2;
    else if (strcmp(act, "silu") == 0) cfg->act = BN_ACT_SILU;
    else return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" (supported: relu2, silu)", what, act);

    for (i = 0; i < sizeof bn__cfg_keys / sizeof bn__cfg_keys[0]; i++) {
        const bn__cfg_key *k = &bn__cfg_keys[i];
        if ((s = bn__cfg_int(root, k->key, bn__cfg_field(cfg, k), k->dflt == BN__CFG_HEADS ? cfg->n_heads : k->dflt,
                             k->limit, what, err)))
            return s;
    }
    if (hd && hd->type != BN_JSON_NULL) {
        if ((s = bn__cfg_int(root, "head_dim", &cfg->head_dim, 0, 1 << 14, what, err))) return s;
    } else {
        if (cfg->hidden_size % cfg->n_heads != 0)
            return bn_errorf(err, BN_ERR_CONFIG,
                             "%s: hidden_size %d is not divisible by num_attention_heads %d (and no head_dim is given)",
                             what, cfg->hidden_size, cfg->n_heads);
        cfg->head_dim = cfg->hidden_size / cfg->n_heads;
    }
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        return bn_errorf(err, BN_ERR_CONFIG, "%s: num_key_value_heads %d does not divide num_attention_heads %d", what,
                         cfg->n_kv_heads, cfg->n_heads);
    if (cfg->head_dim % 2 != 0) return bn_errorf(err, BN_ERR_CONFIG, "%s: head_dim %d must be even for RoPE", what, cfg->head_dim);
    if ((double)cfg->n_heads * cfg->head_dim > (1 << 16))
        return bn_errorf(err, BN_ERR_CONFIG, "%s: num_attention_heads x head_dim is too large", what);
    if ((s = bn__cfg_rope(cfg, root, what, err))) return s;
    eps = bn_json_number(root, "rms_norm_eps", cfg->arch == BN_ARCH_BITNET ? 1e-5 : 1e-6);
    if (!((float)eps > 0.0f) || eps >= 1.0)
        return bn_errorf(err, BN_ERR_CONFIG, "%s: rms_norm_eps = %g must be in (0, 1), and > 0 as a float", what, eps);
    cfg->rms_norm_eps = (float)eps;
    cfg->tie_word_embeddings = bn_json_bool(root, "tie_word_embeddings", 0);
    cfg->bos_token_id = -1;
    if (bn_json_is_int(bn_json_get(root, "bos_token_id"))) cfg->bos_token_id = (int)bn_json_number(root, "bos_token_id", -1);
    if (gen && bn_json_is_int(bn_json_get(gen, "bos_token_id"))) cfg->bos_token_id = (int)bn_json_number(gen, "bos_token_id", -1);
    bn__cfg_add_eos(cfg, bn_json_get(root, "eos_token_id"));
    if (gen) bn__cfg_add_eos(cfg, bn_json_get(gen, "eos_token_id"));
    return BN_OK;
}

BN_API bn_status bn_config_parse(bn_config *cfg, const char *config_json, const char *generation_config_json,
                                 const char *what, bn_error *err) {
    bn_json_doc doc, gdoc;
    bn_status s;
    char gwhat[600];
    memset(&gdoc, 0, sizeof gdoc);
    what = what ? what : "config.json";
    if ((s = bn_json_parse(&doc, config_json, strlen(config_json), what, err))) return s;
    if (generation_config_json) {
        snprintf(gwhat, sizeof gwhat, "generation_config.json beside %s", what);
        if ((s = bn_json_parse(&gdoc, generation_config_json, strlen(generation_config_json), gwhat, err))) {
            bn_json_free(&doc);
            return s;
        }
    }
    s = bn__cfg_from_json(cfg, doc.root, gdoc.root, what, err);
    bn_json_free(&doc);
    bn_json_free(&gdoc);
    return s;
}

/* ---- writing config.json ---- */

static void bn__sbuf_fmt(bn__sbuf *b, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void bn__sbuf_fmt(bn__sbuf *b, const char *fmt, ...) {
    char tmp[256];
    int n;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) b->oom = 1; /* every piece here is short */
    else bn__sbuf_put(b, tmp, (size_t)n);
}

/* The shortest decimal that reads back as the same float (1e-05, not 9.99999975e-06), as a JSON number. */
static void bn__fmt_float(char *buf, size_t size, float v) {
    int prec;
    for (prec = 1; prec < 9; prec++) {
        snprintf(buf, size, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    if (prec == 9) snprintf(buf, size, "%.9g", (double)v);
    if (!strpbrk(buf, ".eEni")) strncat(buf, ".0", size - strlen(buf) - 1); /* keep it a JSON float */
}

/* "  key": the bos id or null, and the end tokens as null, one id, or a list. */
static void bn__cfg_write_tokens(bn__sbuf *b, const bn_config *cfg) {
    int i;
    if (cfg->bos_token_id >= 0) bn__sbuf_fmt(b, "  \"bos_token_id\": %d,\n", cfg->bos_token_id);
    else bn__sbuf_str(b, "  \"bos_token_id\": null,\n");
    bn__sbuf_str(b, "  \"eos_token_id\": ");
    if (cfg->n_eos == 0) bn__sbuf_str(b, "null");
    if (cfg->n_eos == 1) bn__sbuf_fmt(b, "%d", cfg->eos_token_ids[0]);
    for (i = 0; cfg->n_eos > 1 && i < cfg->n_eos; i++)
        bn__sbuf_fmt(b, "%s%d%s", i ? ", " : "[", cfg->eos_token_ids[i], i + 1 == cfg->n_eos ? "]" : "");
    bn__sbuf_str(b, ",\n");
}

static const char *bn__cfg_quant_json(bn_weight_variant v) {
    switch (v) {
    case BN_WEIGHTS_MASTER: return "\"linear_class\": \"autobitlinear\", \"quantization_mode\": \"online\"";
    case BN_WEIGHTS_BITLINEAR: return "\"linear_class\": \"bitlinear\", \"quantization_mode\": \"offline\"";
    case BN_WEIGHTS_AUTOBITLINEAR: return "\"linear_class\": \"autobitlinear\", \"quantization_mode\": \"offline\"";
    }
    return "";
}

BN_API bn_status bn_config_to_json(const bn_config *cfg, char **json, size_t *len, bn_error *err) {
    bn__sbuf b;
    char eps[32], theta[32];
    size_t i;
    *json = NULL;
    if (len) *len = 0;
    if (cfg->n_heads <= 0 || cfg->n_eos < 0 || cfg->n_eos > BN_MAX_EOS)
        return bn_errorf(err, BN_ERR_ARG, "bn_config_to_json: the config has %d heads and %d end tokens", cfg->n_heads,
                         cfg->n_eos);
    memset(&b, 0, sizeof b);
    bn__sbuf_fmt(&b, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n",
                 cfg->arch == BN_ARCH_BITNET ? "BitNetForCausalLM" : "LlamaForCausalLM", bn_arch_name(cfg->arch));
    for (i = 0; i < sizeof bn__cfg_keys / sizeof bn__cfg_keys[0]; i++)
        bn__sbuf_fmt(&b, "  \"%s\": %d,\n", bn__cfg_keys[i].key, *bn__cfg_field((bn_config *)cfg, &bn__cfg_keys[i]));
    if (cfg->head_dim != cfg->hidden_size / cfg->n_heads || cfg->hidden_size % cfg->n_heads)
        bn__sbuf_fmt(&b, "  \"head_dim\": %d,\n", cfg->head_dim);
    bn__fmt_float(eps, sizeof eps, cfg->rms_norm_eps);
    bn__fmt_float(theta, sizeof theta, cfg->rope_theta);
    bn__sbuf_fmt(&b, "  \"hidden_act\": \"%s\",\n  \"rms_norm_eps\": %s,\n", cfg->act == BN_ACT_RELU2 ? "relu2" : "silu",
                 eps);
    bn__sbuf_fmt(&b, "  \"rope_theta\": %s,\n  \"rope_parameters\": {\"rope_theta\": %s, \"rope_type\": \"default\"},\n",
                 theta, theta);
    bn__sbuf_fmt(&b, "  \"tie_word_embeddings\": %s,\n", cfg->tie_word_embeddings ? "true" : "false");
    bn__cfg_write_tokens(&b, cfg);
    /* keys HF's from_pretrained expects that bn_config does not hold */
    bn__sbuf_str(&b, "  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n  \"pad_token_id\": null,\n"
                     "  \"initializer_range\": 0.02,\n  \"use_cache\": true,\n");
    bn__sbuf_fmt(&b, "  \"quantization_config\": {\"quant_method\": \"bitnet\", %s}\n}\n", bn__cfg_quant_json(cfg->variant));
    if (b.oom) {
        BN_FREE(b.s);
        return bn_errorf(err, BN_ERR_NOMEM, "bn_config_to_json: out of memory");
    }
    *json = b.s;
    if (len) *len = b.len;
    return BN_OK;
}

/* ---- tensors ---------------------------------------------------------------- */

/* A tensor the architecture needs, with the expected dtype class and shape. */
static bn_status bn__need(const bn_safetensors *st, const char *name, int n_dims, int64_t d0, int64_t d1,
                          const bn_safetensors_tensor **out, bn_error *err) {
    const bn_safetensors_tensor *t = bn_safetensors_find(st, name);
    *out = NULL;
    if (!t) return bn_errorf(err, BN_ERR_MISSING, "%s: tensor '%s' is missing", st->files[0].path, name);
    if (t->n_dims != n_dims || t->shape[0] != d0 || (n_dims > 1 && t->shape[1] != d1)) {
        if (n_dims == 1)
            return bn_errorf(err, BN_ERR_SHAPE, "%s: tensor '%s' has shape [%lld%s], expected [%lld]",
                             st->files[t->file].path, name, (long long)(t->n_dims ? t->shape[0] : 0),
                             t->n_dims > 1 ? ", ..." : "", (long long)d0);
        return bn_errorf(err, BN_ERR_SHAPE, "%s: tensor '%s' has shape [%lld, %lld]%s, expected [%lld, %lld]",
                         st->files[t->file].path, name, (long long)t->shape[0],
                         (long long)(t->n_dims > 1 ? t->shape[1] : 0), t->n_dims != 2 ? " (not 2-D)" : "",
                         (long long)d0, (long long)d1);
    }
    *out = t;
    return BN_OK;
}

static int bn__is_float(bn_dtype d) { return d == BN_DTYPE_F32 || d == BN_DTYPE_F16 || d == BN_DTYPE_BF16; }

/* May the load allocate n bytes for tensor t (keep: for good; else a temporary)? */
static bn_status bn__model_take(bn_model *m, const bn_safetensors_tensor *t, size_t n, int keep, bn_error *err) {
    char what[BN_ERROR_MSG_MAX / 2];
    snprintf(what, sizeof what, "%s: tensor '%s'", m->st->files[t->file].path, t->name);
    return bn__budget_take(&m->budget, n, keep, what, err);
}

/* A norm weight [n] of a float type. */
static bn_status bn__check_norm(const bn_model *m, const char *name, int n, const bn_safetensors_tensor **t, bn_error *err) {
    bn_status s = bn__need(m->st, name, 1, n, 0, t, err);
    if (s) return s;
    if (!bn__is_float((*t)->dtype))
        return bn_errorf(err, BN_ERR_SHAPE, "%s: tensor '%s' has dtype %s, expected a float type",
                         m->st->files[(*t)->file].path, name, bn_dtype_name((*t)->dtype));
    return BN_OK;
}

/* A norm weight as a new f32 array (out NULL: only check the tensor). */
static bn_status bn__load_norm(bn_model *m, const char *name, int n, float **out, bn_error *err) {
    const bn_safetensors_tensor *t;
    bn_status s = bn__check_norm(m, name, n, &t, err);
    if (!s && out) s = bn__model_take(m, t, sizeof(float) * (size_t)n, 1, err);
    if (s || !out) return s;
    *out = BN_ALLOC(float, n);
    if (!*out) return bn_errorf(err, BN_ERR_NOMEM, "out of memory for '%s'", name);
    return bn_safetensors_read_f32(t, *out, err);
}

/* Drop the pages of bytes [p, p + n) of tensor t's mapped file from this
   process once the load has converted them (packed ternary codes, master
   weights, a float matrix copied elsewhere): nothing reads them again, and
   otherwise they stay in the RSS next to their converted copy. Only whole
   pages inside the range; MADV_DONTNEED on a private read-only file mapping
   is safe (touched again, a page comes back from the page cache). A no-op
   where the file is not mapped, or off Linux. */
#if defined(BN__MADVISE) && !defined(BITNET_NO_MMAP)
#define BN__ADVISE_FILE_PAGES 1 /* madvise is declared and tensors may live in mapped files */
#endif
static void bn__release_pages(const bn_model *m, const bn_safetensors_tensor *t, const void *p, size_t n) {
#if defined(BN__ADVISE_FILE_PAGES)
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) / page * page, hi = ((uintptr_t)p + n) / page * page;
    if (m->st->files[t->file].mapped_ && hi > lo) madvise((void *)lo, hi - lo, BN__MADV_DONTNEED);
#else
    BN_UNUSED(m);
    BN_UNUSED(t);
    BN_UNUSED(p);
    BN_UNUSED(n);
#endif
}

/* The row-major rows x cols `src` of `type` as the tiled `out` (see bn_fmat),
   in huge pages when it is big: the kernels read a group of rows as one
   stream, and the 2B4T lm_head GEMV runs 20 % faster from huge pages than
   from the file's 4 KB page-cache pages. It goes about 64 MB of rows at a
   time, and when src lies in tensor t's mapped file, each piece's file
   pages are dropped once copied, so the RSS never holds both. */
static bn_status bn__fmat_tile_from(bn_model *m, const bn_safetensors_tensor *t, const void *src, bn_ftype type, bn_fmat *out,
                                    bn_error *err) {
    size_t esize = bn__ftype_size(type), row_bytes = esize * (size_t)out->cols,
           nbytes = bn__fmat_tiled_bytes(out->rows, out->cols, type),
           piece_rows = BN_MAX(((size_t)64 << 20) / row_bytes / BN_FMAT_TILE_ROWS, 1) * BN_FMAT_TILE_ROWS;
    uint8_t *dst;
    int r0, r1;
    bn_status s = bn__model_take(m, t, nbytes, 1, err);
    if (s) return s;
    dst = bn__alloc_aligned(nbytes, &out->owned);
    if (!dst) return bn_errorf(err, BN_ERR_NOMEM, "out of memory for '%s' (%llu bytes)", t->name, (unsigned long long)nbytes);
    for (r0 = 0; r0 < out->rows; r0 = r1) {
        r1 = (int)BN_MIN((size_t)r0 + piece_rows, (size_t)out->rows);
        bn__fmat_tile_rows(dst, (const uint8_t *)src, out->rows, out->cols, type, r0, r1);
        if (src == t->data) bn__release_pages(m, t, (const uint8_t *)src + (size_t)r0 * row_bytes, (size_t)(r1 - r0) * row_bytes);
    }
    out->type = type;
    out->data = dst;
    out->tiled = 1;
    return BN_OK;
}

/* The row-major f32 `f` (rows x cols) as `type`, a new row-major array; int8
   gets one absmax scale per row, into out->owned_scale. */
static void *bn__fmat_convert(const float *f, bn_ftype type, bn_fmat *out) {
    size_t n = (size_t)out->rows * out->cols, i;
    int r, c;
    if (type == BN_FTYPE_BF16 || type == BN_FTYPE_F16) {
        uint16_t *h = BN_ALLOC(uint16_t, n);
        if (h)
            for (i = 0; i < n; i++) h[i] = type == BN_FTYPE_BF16 ? bn_f32_to_bf16(f[i]) : bn_f32_to_f16(f[i]);
        return h;
    } else {
        int8_t *q = BN_ALLOC(int8_t, n);
        out->owned_scale = BN_ALLOC(float, out->rows);
        if (!q || !out->owned_scale) {
            BN_FREE(q);
            return NULL;
        }
        for (r = 0; r < out->rows; r++) {
            const float *row = f + (size_t)r * out->cols;
            float amax = 0.0f;
            for (c = 0; c < out->cols; c++) amax = BN_MAX(amax, fabsf(row[c]));
            out->owned_scale[r] = amax > 0.0f ? amax / 127.0f : 1.0f;
            for (c = 0; c < out->cols; c++) q[(size_t)r * out->cols + c] = (int8_t)rintf(row[c] / out->owned_scale[r]);
        }
        out->row_scale = out->owned_scale;
        return q;
    }
}

/* A bf16/f16/f32 rows x cols tensor as a tiled bn_fmat of its own type, or of
   p->head_type when the caller asks for another (converted through f32). */
static bn_status bn__load_fmat(bn_model *m, const bn_safetensors_tensor *t, bn_fmat *out, const bn_model_params *p, bn_error *err) {
    size_t n = (size_t)bn_safetensors_numel(t);
    bn_ftype disk;
    float *f;
    void *converted;
    bn_status s;
    memset(out, 0, sizeof *out);
    out->rows = (int)t->shape[0];
    out->cols = (int)t->shape[1];
    if (t->dtype == BN_DTYPE_F32) disk = BN_FTYPE_F32;
    else if (t->dtype == BN_DTYPE_BF16) disk = BN_FTYPE_BF16;
    else if (t->dtype == BN_DTYPE_F16) disk = BN_FTYPE_F16;
    else return bn_errorf(err, BN_ERR_SHAPE, "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16",
                          m->st->files[t->file].path, t->name, bn_dtype_name(t->dtype));
    if (!p->head_type_set || p->head_type == disk) return bn__fmat_tile_from(m, t, t->data, disk, out, err);
    /* temporaries: the floats, then the converted copy (at most as large) and its row scales */
    if ((s = bn__model_take(m, t, sizeof(float) * n * 2, 0, err)) ||
        (p->head_type == BN_FTYPE_I8 && (s = bn__model_take(m, t, sizeof(float) * (size_t)out->rows, 1, err))))
        return s;
    f = BN_ALLOC(float, n);
    if (!f) return bn_errorf(err, BN_ERR_NOMEM, "out of memory converting '%s'", t->name);
    if ((s = bn_safetensors_read_f32(t, f, err))) {
        BN_FREE(f);
        return s;
    }
    bn__release_pages(m, t, t->data, t->nbytes);
    converted = p->head_type == BN_FTYPE_F32 ? (void *)f : bn__fmat_convert(f, p->head_type, out);
    if (!converted) {
        BN_FREE(f);
        return bn_errorf(err, BN_ERR_NOMEM, "out of memory converting '%s'", t->name);
    }
    s = bn__fmat_tile_from(m, t, converted, p->head_type, out, err);
    if (converted != f) BN_FREE(converted);
    BN_FREE(f);
    return s;
}

/* bf16/f32 master weights, quantized as HF's online AutoBitLinear does:
   s = 1 / max(mean|W|, 1e-5), Wq = clamp(round(W * s), -1, 1), W ~ Wq / s. */
static bn_status bn__quantize_master(const bn_safetensors_tensor *t, int rows, int cols, bn_tmat *out, bn_tlayout layout,
                                     bn__tarena *arena, bn_error *err) {
    size_t n = (size_t)rows * cols;
    float *w = BN_ALLOC(float, n), s;
    int8_t *q = BN_ALLOC(int8_t, n);
    bn_status st = BN_OK;
    if (!w || !q) st = bn_errorf(err, BN_ERR_NOMEM, "out of memory quantizing '%s'", t->name);
    if (!st) st = bn_safetensors_read_f32(t, w, err);
    if (!st) {
        s = bn_ternarize(w, n, q);
        st = bn__tmat_pack_in(out, q, rows, cols, 1.0f / s, layout, arena, err);
    }
    BN_FREE(w);
    BN_FREE(q);
    return st;
}

/* Packed uint8 [ceil(rows/4), cols]: byte [r, c] holds the codes (value + 1)
   of rows r + i * ceil(rows/4), i = 0..3, in bits 2i..2i+1. */
static bn_status bn__unpack_codes(const bn_safetensors *st, const bn_safetensors_tensor *t, int rows, int cols, int8_t *q,
                                  bn_error *err) {
    int prow = (rows + 3) / 4, r, c, i;
    const uint8_t *b = (const uint8_t *)t->data;
    for (r = 0; r < prow; r++)
        for (c = 0; c < cols; c++) {
            uint8_t byte = b[(size_t)r * cols + c];
            for (i = 0; i < 4; i++) {
                int code = (byte >> (2 * i)) & 3, row = r + i * prow;
                if (row >= rows) continue;
                if (code == 3)
                    return bn_errorf(err, BN_ERR_FORMAT, "%s: tensor '%s': invalid ternary code 3 at byte offset %lu",
                                     st->files[t->file].path, t->name,
                                     (unsigned long)(t->offset + (size_t)r * cols + (size_t)c));
                q[(size_t)row * cols + c] = (int8_t)(code - 1);
            }
        }
    return BN_OK;
}

/* One ternary linear "<prefix>.weight" [rows, cols], checked against the
   file: master floats [rows, cols], or packed uint8 codes [ceil(rows/4), cols]
   with "<prefix>.weight_scale", one positive float (*scale gets it; *ts is
   NULL for master weights). */
static bn_status bn__check_linear(const bn_model *m, const char *name, const char *sname, int rows, int cols,
                                  const bn_safetensors_tensor **t, const bn_safetensors_tensor **ts, float *scale, bn_error *err) {
    const char *path;
    bn_status s;
    *ts = NULL;
    *t = bn_safetensors_find(m->st, name);
    if (!*t) return bn_errorf(err, BN_ERR_MISSING, "%s: tensor '%s' is missing", m->st->files[0].path, name);
    path = m->st->files[(*t)->file].path;
    if (bn__is_float((*t)->dtype)) return bn__need(m->st, name, 2, rows, cols, t, err);
    if ((*t)->dtype != BN_DTYPE_U8)
        return bn_errorf(err, BN_ERR_SHAPE, "%s: tensor '%s' has dtype %s, expected BF16/F16/F32 master or U8 packed",
                         path, name, bn_dtype_name((*t)->dtype));
    if ((s = bn__need(m->st, name, 2, (rows + 3) / 4, cols, t, err))) return s;
    *ts = bn_safetensors_find(m->st, sname);
    if (!*ts) return bn_errorf(err, BN_ERR_MISSING, "%s: tensor '%s' is missing (packed weights need it)", path, sname);
    path = m->st->files[(*ts)->file].path;
    if (bn_safetensors_numel(*ts) != 1 || !bn__is_float((*ts)->dtype))
        return bn_errorf(err, BN_ERR_SHAPE, "%s: tensor '%s' must hold one float", path, sname);
    if ((s = bn_safetensors_read_f32(*ts, scale, err))) return s;
    if (!(*scale > 0.0f) || !isfinite(*scale))
        return bn_errorf(err, BN_ERR_FORMAT, "%s: tensor '%s' = %g is not a positive number", path, sname, (double)*scale);
    return BN_OK;
}

/* One ternary linear "<prefix>.weight" of shape [rows, cols] in any variant,
   packed into the model's arena (out NULL: only check the tensors). */
static bn_status bn__load_linear(bn_model *m, const char *prefix, int rows, int cols, bn_tmat *out,
                                 const bn_model_params *p, bn_error *err) {
    char name[256], sname[256];
    const bn_safetensors_tensor *t, *ts;
    float scale = 1.0f;
    bn_status s;
    snprintf(name, sizeof name, "%s.weight", prefix);
    snprintf(sname, sizeof sname, "%s.weight_scale", prefix);
    if ((s = bn__check_linear(m, name, sname, rows, cols, &t, &ts, &scale, err)) || !out) return s;
    /* temporaries: the weights as floats (master) or codes, and as int8 values */
    if ((s = bn__model_take(m, t, (size_t)rows * cols * (ts ? 1 : 1 + sizeof(float)), 0, err))) return s;
    if (!ts) { /* master weights: quantize now */
        s = bn__quantize_master(t, rows, cols, out, p->layout, &m->weights, err);
        if (!s) bn__release_pages(m, t, t->data, t->nbytes);
    } else { /* packed codes + weight_scale */
        int8_t *q;
        /* bitlinear stores 1/mean|W| and divides by it; autobitlinear stores mean|W| and multiplies. */
        if (m->config.variant == BN_WEIGHTS_BITLINEAR) scale = 1.0f / scale;
        q = BN_ALLOC(int8_t, (size_t)rows * cols);
        if (!q) return bn_errorf(err, BN_ERR_NOMEM, "out of memory unpacking '%s'", name);
        s = bn__unpack_codes(m->st, t, rows, cols, q, err);
        if (!s) s = bn__tmat_pack_in(out, q, rows, cols, scale, p->layout, &m->weights, err);
        if (!s) bn__release_pages(m, t, t->data, t->nbytes);
        BN_FREE(q);
    }
    /* a matrix that did not fit the arena has memory of its own */
    if (!s && out->owned) s = bn__model_take(m, t, out->nbytes, 1, err);
    return s;
}

/* The seven linears of a layer, in the order they are loaded and packed:
   the one list of their names and shapes, for the loader and the arena size. */
#define BN__N_LINEARS 7
typedef struct bn__linear_spec {
    const char *name; /* after "model.layers.N." */
    int rows, cols;
} bn__linear_spec;

static void bn__layer_linears(const bn_config *c, bn__linear_spec spec[BN__N_LINEARS]) {
    static const char *const names[BN__N_LINEARS] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                     "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                     "mlp.down_proj"};
    int q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim, h = c->hidden_size,
        f = c->intermediate_size, i;
    const int rows[BN__N_LINEARS] = {q_dim, kv_dim, kv_dim, h, f, f, h};
    const int cols[BN__N_LINEARS] = {h, h, h, q_dim, h, h, f};
    for (i = 0; i < BN__N_LINEARS; i++) {
        spec[i].name = names[i];
        spec[i].rows = rows[i];
        spec[i].cols = cols[i];
    }
}

/* Layer l's tensors into L, or (L NULL) only checked against the file. */
static bn_status bn__load_layer(bn_model *m, int l, bn_layer *L, const bn_model_params *p, bn_error *err) {
    const bn_config *c = &m->config;
    bn_layer none;
    bn_layer *at = L ? L : &none; /* the destinations, unused when only checking */
    bn_tmat *const dst[BN__N_LINEARS] = {&at->wq, &at->wk, &at->wv, &at->wo, &at->w_gate, &at->w_up, &at->w_down};
    bn__linear_spec spec[BN__N_LINEARS];
    int q_dim = c->n_heads * c->head_dim, h = c->hidden_size, f = c->intermediate_size, i;
    char pre[128], name[192];
    bn_status s;
#define BN__NAME(suffix) (snprintf(name, sizeof name, "%s.%s", pre, suffix), name)
    snprintf(pre, sizeof pre, "model.layers.%d", l);
#define BN__OUT(field) (L ? &L->field : NULL)
    if ((s = bn__load_norm(m, BN__NAME("input_layernorm.weight"), h, BN__OUT(attn_norm), err)) ||
        (s = bn__load_norm(m, BN__NAME("post_attention_layernorm.weight"), h, BN__OUT(ffn_norm), err)))
        return s;
    bn__layer_linears(c, spec);
    for (i = 0; i < BN__N_LINEARS; i++)
        if ((s = bn__load_linear(m, BN__NAME(spec[i].name), spec[i].rows, spec[i].cols, L ? dst[i] : NULL, p, err)))
            return s;
    if (c->has_sub_norms &&
        ((s = bn__load_norm(m, BN__NAME("self_attn.attn_sub_norm.weight"), q_dim, BN__OUT(attn_sub_norm), err)) ||
         (s = bn__load_norm(m, BN__NAME("mlp.ffn_sub_norm.weight"), f, BN__OUT(ffn_sub_norm), err))))
        return s;
#undef BN__OUT
#undef BN__NAME
    return BN_OK;
}

/* Bytes of one layer's packed matrices. */
static size_t bn__layer_packed_bytes(const bn_config *c, bn_tlayout layout) {
    bn__linear_spec spec[BN__N_LINEARS];
    size_t total = 0;
    int i;
    bn__layer_linears(c, spec);
    for (i = 0; i < BN__N_LINEARS; i++) total += bn__tmat_packed_bytes(spec[i].rows, spec[i].cols, layout);
    return total;
}

/* Every tensor that config.json implies, checked against the file (name,
   shape, dtype, scales) before anything is allocated from the config's sizes:
   a config that claims more than the file holds fails here, cheaply. */
static bn_status bn__check_tensors(bn_model *m, const bn_model_params *p, bn_error *err) {
    const bn_config *c = &m->config;
    const bn_safetensors_tensor *t;
    bn_status s;
    int l;
    if ((s = bn__need(m->st, "model.embed_tokens.weight", 2, c->vocab_size, c->hidden_size, &t, err)) ||
        (!c->tie_word_embeddings &&
         (s = bn__need(m->st, "lm_head.weight", 2, c->vocab_size, c->hidden_size, &t, err))) ||
        (s = bn__load_norm(m, "model.norm.weight", c->hidden_size, NULL, err)))
        return s;
    for (l = 0; l < c->n_layers; l++)
        if ((s = bn__load_layer(m, l, NULL, p, err))) return s;
    return BN_OK;
}

static bn_status bn__load_weights(bn_model *m, const bn_model_params *p, bn_error *err) {
    const bn_config *c = &m->config;
    const bn_safetensors_tensor *t;
    bn_model_params embed_p = *p;
    bn_status s;
    int l;
    size_t arena;
    char what[BN_ERROR_MSG_MAX / 2];
    if ((s = bn__check_tensors(m, p, err))) return s;
    embed_p.head_type_set = 0; /* embeddings stay as on disk; head_type applies to lm_head */
    if ((s = bn__need(m->st, "model.embed_tokens.weight", 2, c->vocab_size, c->hidden_size, &t, err)) ||
        (s = bn__load_fmat(m, t, &m->embed, &embed_p, err)))
        return s;
    if (c->tie_word_embeddings && (!p->head_type_set || p->head_type == m->embed.type)) {
        m->lm_head = m->embed; /* the same matrix, owned by embed */
        m->lm_head.owned = NULL;
        m->lm_head.owned_scale = NULL;
    } else if (!c->tie_word_embeddings &&
               (s = bn__need(m->st, "lm_head.weight", 2, c->vocab_size, c->hidden_size, &t, err))) {
        return s;
    } else if ((s = bn__load_fmat(m, t, &m->lm_head, p, err))) { /* untied, or tied but converted */
        return s;
    }
    if ((s = bn__load_norm(m, "model.norm.weight", c->hidden_size, &m->final_norm, err))) return s;
    arena = (size_t)c->n_layers * bn__layer_packed_bytes(c, p->layout);
    snprintf(what, sizeof what, "%s: the packed matrices of %d layers", m->st->files[0].path, c->n_layers);
    if ((s = bn__budget_take(&m->budget, arena + sizeof(bn_layer) * (size_t)c->n_layers, 1, what, err))) return s;
    m->layers = BN_ZALLOC(bn_layer, c->n_layers);
    if (!m->layers) return bn_errorf(err, BN_ERR_NOMEM, "out of memory for %d layers", c->n_layers);
    if ((s = bn__tarena_init(&m->weights, arena, err))) return s;
    for (l = 0; l < c->n_layers; l++)
        if ((s = bn__load_layer(m, l, &m->layers[l], p, err))) return s;
    return BN_OK;
}

/* The folder holding config.json: path itself, or the folder of a file path. */
static char *bn__model_dir(const char *path) {
    if (bn__ends_with(path, ".safetensors") || bn__ends_with(path, ".json")) {
        char *d = bn__dirname(path);
        if (d && !d[0]) { BN_FREE(d); return bn__strndup(".", 1); }
        return d;
    }
    return bn__strndup(path, strlen(path));
}

static bn_status bn__model_load(bn_model *m, const char *path, const bn_model_params *p, bn_error *err) {
    char *dir = bn__model_dir(path), *cfg_path = NULL, *gen_path = NULL, *cfg_text = NULL, *gen_text = NULL;
    bn_status s;
    if (!dir) return bn_errorf(err, BN_ERR_NOMEM, "out of memory");
    cfg_path = bn__path_join(dir, "config.json");
    gen_path = bn__path_join(dir, "generation_config.json");
    if (!cfg_path || !gen_path) { s = bn_errorf(err, BN_ERR_NOMEM, "out of memory"); goto done; }
    if (!bn__file_exists(cfg_path)) { s = bn_errorf(err, BN_ERR_MISSING, "%s: no config.json", cfg_path); goto done; }
    if ((s = bn_read_file(cfg_path, &cfg_text, NULL, err))) goto done;
    if (bn__file_exists(gen_path) && (s = bn_read_file(gen_path, &gen_text, NULL, err))) goto done;
    if ((s = bn_config_parse(&m->config, cfg_text, gen_text, cfg_path, err))) goto done;
    if ((s = bn_safetensors_load(&m->st, path, err))) goto done;
    s = bn__load_weights(m, p, err);
done:
    BN_FREE(dir);
    BN_FREE(cfg_path);
    BN_FREE(gen_path);
    BN_FREE(cfg_text);
    BN_FREE(gen_text);
    return s;
}

BN_API bn_status bn_model_load(bn_model **out, const char *path, const bn_model_params *params, bn_error *err) {
    bn_model_params p = params ? *params : bn_model_default_params();
    bn_model *m;
    bn_status s;
    *out = NULL;
    if (!path) return bn_errorf(err, BN_ERR_ARG, "bn_model_load: path is NULL");
    m = BN_ZALLOC(bn_model, 1);
    if (!m) return bn_errorf(err, BN_ERR_NOMEM, "out of memory");
    bn__budget_init(&m->budget, &p.limits);
    s = bn__model_load(m, path, &p, err);
    if (s) {
        bn_model_free(m);
        return s;
    }
    *out = m;
    return BN_OK;
}

BN_API void bn_model_free(bn_model *m) {
    int l;
    if (!m) return;
    if (m->layers)
        for (l = 0; l < m->config.n_layers; l++) {
            bn_layer *L = &m->layers[l];
            BN_FREE(L->attn_norm);
            BN_FREE(L->ffn_norm);
            BN_FREE(L->attn_sub_norm);
            BN_FREE(L->ffn_sub_norm);
            bn_tmat_free(&L->wq);
            bn_tmat_free(&L->wk);
            bn_tmat_free(&L->wv);
            bn_tmat_free(&L->wo);
            bn_tmat_free(&L->w_gate);
            bn_tmat_free(&L->w_up);
            bn_tmat_free(&L->w_down);
        }
    BN_FREE(m->layers);
    BN_FREE(m->weights.owned);
    BN_FREE(m->final_norm);
    bn_fmat_free(&m->lm_head);
    bn_fmat_free(&m->embed);
    bn_safetensors_free(m->st);
    BN_FREE(m);
}

BN_API const bn_config *bn_model_config(const bn_model *model) { return &model->config; }

BN_API void bn_model_memory(const bn_model *model, size_t *bytes_mapped, size_t *bytes_allocated) {
    if (bytes_mapped) *bytes_mapped = model->st ? model->st->bytes_mapped : 0;
    if (bytes_allocated) *bytes_allocated = model->budget.used;
}

BN_API const bn_tmat *bn_model_linear(const bn_model *model, int layer, int which) {
    const bn_layer *L;
    if (layer < 0 || layer >= model->config.n_layers || which < 0 || which > 6) return NULL;
    L = &model->layers[layer];
    switch (which) {
    case 0: return &L->wq;
    case 1: return &L->wk;
    case 2: return &L->wv;
    case 3: return &L->wo;
    case 4: return &L->w_gate;
    case 5: return &L->w_up;
    default: return &L->w_down;
    }
}

BN_API const bn_fmat *bn_model_lm_head(const bn_model *model) { return &model->lm_head; }

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_MODEL_H */
