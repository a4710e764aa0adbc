/* config.json parsing and validation, and model loading errors: every bad
   config or checkpoint (written here, into build/tmp) must give its named error. */
#include <stdlib.h>

/* The library allocates through these: the largest request since the last reset is recorded. */
static size_t largest_alloc;
static void *counting_malloc(size_t n) {
    if (n > largest_alloc) largest_alloc = n;
    return malloc(n);
}
static void *counting_realloc(void *p, size_t n) {
    if (n > largest_alloc) largest_alloc = n;
    return realloc(p, n);
}
#define BN_MALLOC(n) counting_malloc(n)
#define BN_REALLOC(p, n) counting_realloc(p, n)
#define BN_FREE(p) free(p)
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

#include <sys/stat.h>

#define TMP "build/tmp"
#define SRC_MODEL BNT_FIXTURES "/hf/tiny-mha-untied/packed"

/* A minimal valid bitnet config with one key's text replaced or added. */
static void config_with(char *out, size_t n, const char *extra) {
    snprintf(out, n,
             "{\"model_type\": \"bitnet\", \"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128,"
             " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
             " \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0%s%s}",
             extra ? ", " : "", extra ? extra : "");
}

static void expect_config_error(const char *extra, bn_status status, const char *word) {
    char text[2048];
    bn_config cfg;
    bn_error err;
    bn_status s;
    config_with(text, sizeof text, extra);
    s = bn_config_parse(&cfg, text, NULL, "test-config.json", &err);
    BNT_CHECKF(s == status, "[%s]: status %s, want %s (%s)", extra, bn_status_name(s), bn_status_name(status),
               s ? err.msg : "accepted");
    if (s) {
        printf("    %-60.60s -> %s\n", extra, err.msg);
        BNT_CHECKF(strstr(err.msg, "test-config.json") != NULL, "message does not name the file: %s", err.msg);
        BNT_CHECKF(strstr(err.msg, word) != NULL, "message lacks '%s': %s", word, err.msg);
    }
}

static void test_config_values(void) {
    char text[2048];
    bn_config cfg;
    bn_error err;
    config_with(text, sizeof text, NULL);
    BNT_CHECKF(bn_config_parse(&cfg, text, NULL, "c", &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(cfg.arch == BN_ARCH_BITNET && cfg.act == BN_ACT_RELU2 && cfg.has_sub_norms);
    BNT_CHECK(cfg.head_dim == 16 && cfg.n_kv_heads == 2 && cfg.rope_theta == 10000.0f);
    BNT_CHECK(cfg.variant == BN_WEIGHTS_BITLINEAR && !cfg.tie_word_embeddings && cfg.n_eos == 0 && cfg.bos_token_id == -1);
    /* transformers-5 rope_parameters wins over nothing; explicit head_dim; eos lists merged with generation_config */
    config_with(text, sizeof text,
                "\"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"}, \"head_dim\": 32,"
                " \"eos_token_id\": [5, 6], \"bos_token_id\": 1, \"tie_word_embeddings\": true,"
                " \"quantization_config\": {\"quant_method\": \"bitnet\", \"linear_class\": \"autobitlinear\","
                " \"quantization_mode\": \"offline\", \"modules_to_not_convert\": [\"lm_head\"]}");
    BNT_CHECKF(bn_config_parse(&cfg, text, "{\"eos_token_id\": [6, 7], \"bos_token_id\": 2}", "c", &err) == BN_OK, "%s",
               err.msg);
    BNT_CHECK(cfg.rope_theta == 500000.0f && cfg.head_dim == 32 && cfg.tie_word_embeddings);
    BNT_CHECK(cfg.variant == BN_WEIGHTS_AUTOBITLINEAR && cfg.bos_token_id == 2);
    BNT_CHECK(cfg.n_eos == 3 && cfg.eos_token_ids[0] == 5 && cfg.eos_token_ids[1] == 6 && cfg.eos_token_ids[2] == 7);
    /* llama with a bitnet quantization_config, silu, online quantization */
    config_with(text, sizeof text,
                "\"model_type\": \"llama\", \"hidden_act\": \"silu\", \"eos_token_id\": 11,"
                " \"quantization_config\": {\"quant_method\": \"bitnet\", \"linear_class\": \"autobitlinear\","
                " \"quantization_mode\": \"online\"}");
    BNT_CHECKF(bn_config_parse(&cfg, text, NULL, "c", &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(cfg.arch == BN_ARCH_LLAMA && cfg.act == BN_ACT_SILU && !cfg.has_sub_norms);
    BNT_CHECK(cfg.variant == BN_WEIGHTS_MASTER && cfg.n_eos == 1 && cfg.eos_token_ids[0] == 11);
}

/* bn_config_to_json writes what bn_config_parse reads back: write, parse, equal. */
static int config_round_trips(const bn_config *cfg, const char *what) {
    char *json = NULL, *again = NULL;
    bn_config back;
    bn_error err;
    int same;
    BNT_CHECKF(bn_config_to_json(cfg, &json, NULL, &err) == BN_OK, "%s: %s", what, err.msg);
    if (!json) return 0;
    BNT_CHECKF(bn_config_parse(&back, json, NULL, what, &err) == BN_OK, "%s: %s\n%s", what, err.msg, json);
    same = back.arch == cfg->arch && back.act == cfg->act && back.variant == cfg->variant &&
           back.vocab_size == cfg->vocab_size && back.hidden_size == cfg->hidden_size &&
           back.intermediate_size == cfg->intermediate_size && back.n_layers == cfg->n_layers &&
           back.n_heads == cfg->n_heads && back.n_kv_heads == cfg->n_kv_heads && back.head_dim == cfg->head_dim &&
           back.max_seq_len == cfg->max_seq_len && back.rope_theta == cfg->rope_theta &&
           back.rms_norm_eps == cfg->rms_norm_eps && back.tie_word_embeddings == cfg->tie_word_embeddings &&
           back.has_sub_norms == cfg->has_sub_norms && back.bos_token_id == cfg->bos_token_id &&
           back.n_eos == cfg->n_eos && memcmp(back.eos_token_ids, cfg->eos_token_ids, sizeof(int) * (size_t)cfg->n_eos) == 0;
    BNT_CHECKF(same, "%s: the config read back differs from the one written:\n%s", what, json);
    /* and writing it again gives the same text */
    BNT_CHECK(bn_config_to_json(&back, &again, NULL, &err) == BN_OK && again && strcmp(json, again) == 0);
    bn_free(json);
    bn_free(again);
    return same;
}

static void test_config_round_trip(void) {
    static const char *const extras[] = {
        NULL,
        "\"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"}, \"head_dim\": 32,"
        " \"eos_token_id\": [5, 6, 9], \"bos_token_id\": 1, \"tie_word_embeddings\": true, \"rms_norm_eps\": 3.3e-6,"
        " \"quantization_config\": {\"quant_method\": \"bitnet\", \"linear_class\": \"autobitlinear\","
        " \"quantization_mode\": \"offline\"}",
        "\"model_type\": \"llama\", \"hidden_act\": \"silu\", \"eos_token_id\": 11, \"rope_theta\": 12345.678,"
        " \"quantization_config\": {\"quant_method\": \"bitnet\", \"linear_class\": \"autobitlinear\","
        " \"quantization_mode\": \"online\"}",
    };
    static const char *const dirs[] = {SRC_MODEL, BNT_FIXTURES "/hf/llama-bitnet/packed", "models/shakespeare"};
    char text[2048], path[512];
    bn_config cfg;
    bn_error err;
    size_t i;
    for (i = 0; i < sizeof extras / sizeof extras[0]; i++) {
        config_with(text, sizeof text, extras[i]);
        BNT_CHECKF(bn_config_parse(&cfg, text, NULL, "c", &err) == BN_OK, "%s", err.msg);
        config_round_trips(&cfg, extras[i] ? extras[i] : "the minimal config");
    }
    for (i = 0; i < sizeof dirs / sizeof dirs[0]; i++) { /* real config.json + generation_config.json */
        char *c = NULL, *g = NULL;
        size_t len;
        snprintf(path, sizeof path, "%s/config.json", dirs[i]);
        BNT_CHECKF(bn_read_file(path, &c, &len, &err) == BN_OK, "%s", err.msg);
        snprintf(path, sizeof path, "%s/generation_config.json", dirs[i]);
        if (bn_read_file(path, &g, &len, NULL) != BN_OK) g = NULL;
        if (c) BNT_CHECKF(bn_config_parse(&cfg, c, g, dirs[i], &err) == BN_OK, "%s", err.msg);
        if (c) config_round_trips(&cfg, dirs[i]);
        bn_free(c);
        bn_free(g);
    }
    /* the training default, with the head size training fills in */
    cfg = bn_train_default_config();
    cfg.head_dim = cfg.hidden_size / cfg.n_heads;
    cfg.eos_token_ids[cfg.n_eos++] = 3;
    config_round_trips(&cfg, "bn_train_default_config");
}

static void test_config_errors(void) {
    expect_config_error("\"hidden_size\": 0", BN_ERR_CONFIG, "hidden_size");
    expect_config_error("\"num_hidden_layers\": -2", BN_ERR_CONFIG, "num_hidden_layers");
    expect_config_error("\"vocab_size\": 1.5", BN_ERR_CONFIG, "vocab_size");
    expect_config_error("\"intermediate_size\": \"big\"", BN_ERR_CONFIG, "intermediate_size");
    expect_config_error("\"hidden_size\": 66", BN_ERR_CONFIG, "not divisible");
    expect_config_error("\"num_key_value_heads\": 3", BN_ERR_CONFIG, "does not divide");
    expect_config_error("\"head_dim\": 0", BN_ERR_CONFIG, "head_dim");
    expect_config_error("\"head_dim\": 15", BN_ERR_CONFIG, "even");
    expect_config_error("\"rope_theta\": 0", BN_ERR_CONFIG, "rope_theta");
    expect_config_error("\"rope_parameters\": {\"rope_theta\": -1}", BN_ERR_CONFIG, "rope_theta");
    expect_config_error("\"rope_parameters\": {\"rope_theta\": 10000, \"rope_type\": \"yarn\"}", BN_ERR_UNSUPPORTED, "yarn");
    expect_config_error("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}", BN_ERR_UNSUPPORTED, "llama3");
    expect_config_error("\"rms_norm_eps\": -1e-5", BN_ERR_CONFIG, "rms_norm_eps");
    /* > 0 as a double, 0 as the float it becomes (found by the fuzzer: RMSNorm then divided by zero) */
    expect_config_error("\"rms_norm_eps\": 1e-50", BN_ERR_CONFIG, "rms_norm_eps");
    expect_config_error("\"rope_theta\": 1e-300", BN_ERR_CONFIG, "rope_theta");
    expect_config_error("\"model_type\": \"gpt2\"", BN_ERR_UNSUPPORTED, "gpt2");
    expect_config_error("\"model_type\": \"llama\"", BN_ERR_UNSUPPORTED, "quantization_config");
    expect_config_error("\"hidden_act\": \"gelu\"", BN_ERR_UNSUPPORTED, "gelu");
    expect_config_error("\"quantization_config\": {\"quant_method\": \"gptq\"}", BN_ERR_UNSUPPORTED, "gptq");
    expect_config_error("\"quantization_config\": {\"linear_class\": \"fancy\"}", BN_ERR_UNSUPPORTED, "fancy");
    expect_config_error("\"quantization_config\": {\"quantization_mode\": \"sometimes\"}", BN_ERR_UNSUPPORTED, "sometimes");
    expect_config_error("\"quantization_config\": {\"use_rms_norm\": true}", BN_ERR_UNSUPPORTED, "use_rms_norm");
    expect_config_error("\"quantization_config\": {\"modules_to_not_convert\": [\"lm_head\", \"model.layers.0.mlp.down_proj\"]}",
                        BN_ERR_UNSUPPORTED, "down_proj");
    {
        bn_config cfg;
        bn_error err;
        BNT_CHECK(bn_config_parse(&cfg, "{\"model_type\": ", NULL, "broken.json", &err) == BN_ERR_FORMAT);
        BNT_CHECK(strstr(err.msg, "broken.json") && strstr(err.msg, "byte"));
        BNT_CHECK(bn_config_parse(&cfg, "[]", NULL, "array.json", &err) == BN_ERR_CONFIG);
    }
}

/* ---- broken checkpoints, made from a fixture ---------------------------- */

typedef struct edit {
    const char *drop;          /* tensor to leave out */
    const char *reshape;       /* tensor whose first dimension is changed */
    const char *retype;        /* tensor written as I32 zeros of its numel */
    const char *corrupt_codes; /* U8 tensor whose first byte becomes 0xff (code 3) */
} edit;

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* Copy SRC_MODEL into dir with the edit applied. */
static void make_model(const char *dir, const edit *e) {
    bn_safetensors *st = NULL;
    bn_error err;
    bn_safetensors_tensor *ts;
    char path[512], *cfg;
    uint8_t *bad_codes = NULL;
    int32_t *zeros = NULL;
    int i, n = 0;
    mkdir(dir, 0755);
    BNT_CHECK(bn_read_file(SRC_MODEL "/config.json", &cfg, NULL, &err) == BN_OK);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, cfg);
    bn_free(cfg);
    BNT_CHECK(bn_safetensors_load(&st, SRC_MODEL, &err) == BN_OK);
    ts = (bn_safetensors_tensor *)malloc(sizeof(bn_safetensors_tensor) * (size_t)st->n_tensors);
    for (i = 0; i < st->n_tensors; i++) {
        bn_safetensors_tensor t = st->tensors[i];
        if (e->drop && strcmp(t.name, e->drop) == 0) continue;
        if (e->reshape && strcmp(t.name, e->reshape) == 0) {
            t.shape[0] -= 1;
        }
        if (e->retype && strcmp(t.name, e->retype) == 0) {
            zeros = (int32_t *)calloc((size_t)bn_safetensors_numel(&t), sizeof(int32_t));
            t.dtype = BN_DTYPE_I32;
            t.data = zeros;
        }
        if (e->corrupt_codes && strcmp(t.name, e->corrupt_codes) == 0) {
            bad_codes = (uint8_t *)malloc(t.nbytes);
            memcpy(bad_codes, t.data, t.nbytes);
            bad_codes[5] = 0xff;
            t.data = bad_codes;
        }
        ts[n++] = t;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    BNT_CHECKF(bn_safetensors_write(path, ts, n, NULL, &err) == BN_OK, "%s", err.msg);
    free(ts);
    free(bad_codes);
    free(zeros);
    bn_safetensors_free(st);
}

static void expect_load_error(const char *dir, bn_status status, const char *word1, const char *word2) {
    bn_model *m = NULL;
    bn_error err;
    bn_status s = bn_model_load(&m, dir, NULL, &err);
    BNT_CHECKF(s == status, "%s: status %s, want %s (%s)", dir, bn_status_name(s), bn_status_name(status),
               s ? err.msg : "loaded");
    BNT_CHECK(m == NULL);
    if (s) {
        printf("    %s\n", err.msg);
        BNT_CHECKF(strstr(err.msg, dir) != NULL, "message does not name the file: %s", err.msg);
        if (word1) BNT_CHECKF(strstr(err.msg, word1) != NULL, "message lacks '%s': %s", word1, err.msg);
        if (word2) BNT_CHECKF(strstr(err.msg, word2) != NULL, "message lacks '%s': %s", word2, err.msg);
    }
    bn_model_free(m);
}

static void test_unchanged_copy_loads(void) {
    edit e;
    bn_model *m = NULL;
    bn_error err;
    memset(&e, 0, sizeof e);
    make_model(TMP "/m_ok", &e);
    BNT_CHECKF(bn_model_load(&m, TMP "/m_ok", NULL, &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(m && bn_model_config(m)->n_layers == 2);
    bn_model_free(m);
    /* a file path with config.json beside it works too */
    BNT_CHECKF(bn_model_load(&m, TMP "/m_ok/model.safetensors", NULL, &err) == BN_OK, "%s", err.msg);
    bn_model_free(m);
}

static void test_missing_tensor(void) {
    edit e;
    memset(&e, 0, sizeof e);
    e.drop = "model.layers.1.self_attn.v_proj.weight";
    make_model(TMP "/m_missing", &e);
    expect_load_error(TMP "/m_missing", BN_ERR_MISSING, e.drop, "missing");
    e.drop = "lm_head.weight"; /* untied model */
    make_model(TMP "/m_missing_head", &e);
    expect_load_error(TMP "/m_missing_head", BN_ERR_MISSING, e.drop, NULL);
    e.drop = "model.layers.0.mlp.ffn_sub_norm.weight";
    make_model(TMP "/m_missing_subnorm", &e);
    expect_load_error(TMP "/m_missing_subnorm", BN_ERR_MISSING, e.drop, NULL);
    e.drop = "model.layers.0.mlp.up_proj.weight_scale";
    make_model(TMP "/m_missing_scale", &e);
    expect_load_error(TMP "/m_missing_scale", BN_ERR_MISSING, e.drop, NULL);
}

static void test_misshapen_tensor(void) {
    edit e;
    memset(&e, 0, sizeof e);
    e.reshape = "model.layers.0.self_attn.q_proj.weight"; /* packed [32, 128] -> [31, 128] */
    make_model(TMP "/m_shape_q", &e);
    expect_load_error(TMP "/m_shape_q", BN_ERR_SHAPE, e.reshape, "[31, 128]");
    e.reshape = "model.embed_tokens.weight";
    make_model(TMP "/m_shape_embed", &e);
    expect_load_error(TMP "/m_shape_embed", BN_ERR_SHAPE, e.reshape, "776");
    e.reshape = "model.norm.weight";
    make_model(TMP "/m_shape_norm", &e);
    expect_load_error(TMP "/m_shape_norm", BN_ERR_SHAPE, e.reshape, "127");
    e.reshape = NULL;
    e.retype = "model.layers.1.input_layernorm.weight";
    make_model(TMP "/m_type_norm", &e);
    expect_load_error(TMP "/m_type_norm", BN_ERR_SHAPE, e.retype, "I32");
    e.retype = "model.layers.1.mlp.gate_proj.weight";
    make_model(TMP "/m_type_linear", &e);
    expect_load_error(TMP "/m_type_linear", BN_ERR_SHAPE, e.retype, "I32");
}

static void test_bad_codes(void) {
    edit e;
    memset(&e, 0, sizeof e);
    e.corrupt_codes = "model.layers.0.mlp.down_proj.weight";
    make_model(TMP "/m_codes", &e);
    expect_load_error(TMP "/m_codes", BN_ERR_FORMAT, e.corrupt_codes, "byte offset");
}

static void test_bad_files(void) {
    edit e;
    char path[256];
    memset(&e, 0, sizeof e);
    mkdir(TMP "/m_noconfig", 0755);
    expect_load_error(TMP "/m_noconfig", BN_ERR_MISSING, "config.json", NULL);
    make_model(TMP "/m_badconfig", &e);
    write_text(TMP "/m_badconfig/config.json", "{\"model_type\": \"bitnet\",, }");
    expect_load_error(TMP "/m_badconfig", BN_ERR_FORMAT, "config.json", "byte");
    make_model(TMP "/m_badgen", &e);
    write_text(TMP "/m_badgen/generation_config.json", "{\"eos_token_id\": [1, 2}");
    expect_load_error(TMP "/m_badgen", BN_ERR_FORMAT, "generation_config.json", NULL);
    make_model(TMP "/m_badst", &e);
    snprintf(path, sizeof path, TMP "/m_badst/model.safetensors");
    {
        FILE *f = fopen(path, "wb");
        fwrite("\x08\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}", 1, 16, f);
        fclose(f);
    }
    expect_load_error(TMP "/m_badst", BN_ERR_FORMAT, "model.safetensors", "'a'");
    mkdir(TMP "/m_noweights", 0755);
    write_text(TMP "/m_noweights/config.json", "{\"model_type\": \"bitnet\", \"vocab_size\": 10, \"hidden_size\": 8,"
               " \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2}");
    expect_load_error(TMP "/m_noweights", BN_ERR_MISSING, "model.safetensors", NULL);
}

/* A config that claims far more than the file holds is refused before
   anything is allocated from its sizes: num_hidden_layers 1024 and
   intermediate_size 262144 beside a 1 MB model once asked for 35 GB for the
   packed matrices before the first layer's tensors were looked at. */
static void test_config_claims_more_than_file(void) {
    edit e;
    char *cfg, text[4096];
    bn_model *m = NULL;
    bn_error err;
    bn_status s;
    memset(&e, 0, sizeof e);
    make_model(TMP "/m_claims", &e);
    BNT_CHECK(bn_read_file(SRC_MODEL "/config.json", &cfg, NULL, &err) == BN_OK);
    if (!cfg) return;
    snprintf(text, sizeof text, "%.*s, \"num_hidden_layers\": 1024, \"intermediate_size\": 262144}",
             (int)(strrchr(cfg, '}') - cfg), cfg);
    bn_free(cfg);
    write_text(TMP "/m_claims/config.json", text);
    largest_alloc = 0;
    s = bn_model_load(&m, TMP "/m_claims", NULL, &err);
    BNT_CHECKF(s == BN_ERR_SHAPE, "status %s: %s", bn_status_name(s), s ? err.msg : "loaded");
    BNT_CHECKF(largest_alloc < ((size_t)4 << 20), "largest allocation %llu bytes", (unsigned long long)largest_alloc);
    if (s) printf("    %s (largest allocation %llu bytes)\n", err.msg, (unsigned long long)largest_alloc);
    bn_model_free(m);
}

/* bn_model_params.limits: a single allocation over max_alloc, or a total over
   max_total, is refused before it is made, naming the tensor and the size. */
static void test_load_limits(void) {
    bn_model_params p = bn_model_default_params();
    bn_model *m = NULL;
    bn_error err;
    bn_status s;
    size_t mapped = 0, allocated = 0;
    BNT_CHECKF(bn_model_load(&m, SRC_MODEL, NULL, &err) == BN_OK, "%s", err.msg);
    if (m) bn_model_memory(m, &mapped, &allocated);
    bn_model_free(m);
    m = NULL;
    BNT_CHECK(allocated > 0);
    p.limits.max_alloc = 4096;
    largest_alloc = 0;
    s = bn_model_load(&m, SRC_MODEL, &p, &err);
    BNT_CHECKF(s == BN_ERR_NOMEM && strstr(err.msg, "bn_limits.max_alloc") && strstr(err.msg, "tensor '") &&
                   strstr(err.msg, "bytes"), "%s: %s", bn_status_name(s), s ? err.msg : "loaded");
    BNT_CHECKF(largest_alloc < ((size_t)1 << 20), "largest allocation %llu", (unsigned long long)largest_alloc);
    if (s) printf("    %s\n", err.msg);
    bn_model_free(m);
    m = NULL;
    p.limits.max_alloc = 0;
    p.limits.max_total = allocated - 1;
    s = bn_model_load(&m, SRC_MODEL, &p, &err);
    BNT_CHECKF(s == BN_ERR_NOMEM && strstr(err.msg, "bn_limits.max_total"), "%s: %s", bn_status_name(s),
               s ? err.msg : "loaded");
    if (s) printf("    %s\n", err.msg);
    bn_model_free(m);
    m = NULL;
    p.limits.max_total = allocated * 2; /* room for the load's temporaries */
    BNT_CHECKF(bn_model_load(&m, SRC_MODEL, &p, &err) == BN_OK, "%s", err.msg);
    if (m) { /* bn_context_params.limits: an embedder's budget for the KV cache and scratch */
        bn_context_params cp = bn_context_default_params();
        bn_context *ctx = NULL;
        cp.n_ctx = 128;
        cp.limits.max_total = 100000; /* each half of the KV cache: 2 layers x 128 positions x 128 kv dims x 4 bytes = 131072 */
        largest_alloc = 0;
        s = bn_context_new(&ctx, m, &cp, &err);
        BNT_CHECKF(s == BN_ERR_NOMEM && strstr(err.msg, "KV cache") && strstr(err.msg, "n_ctx 128") &&
                       strstr(err.msg, "bn_limits.max_total"), "%s: %s", bn_status_name(s), s ? err.msg : "created");
        BNT_CHECK(ctx == NULL && largest_alloc < 65536);
        if (s) printf("    %s\n", err.msg);
        cp.limits.max_total = 0;
        cp.limits.max_alloc = 100000;
        s = bn_context_new(&ctx, m, &cp, &err);
        BNT_CHECKF(s == BN_ERR_NOMEM && strstr(err.msg, "bn_limits.max_alloc"), "%s", s ? err.msg : "created");
        cp.limits.max_alloc = 0;
        cp.limits.max_total = (size_t)64 << 20;
        BNT_CHECKF(bn_context_new(&ctx, m, &cp, &err) == BN_OK, "%s", err.msg);
        bn_context_free(ctx);
    }
    bn_model_free(m);
}

/* Damaged headers and config values: loading either fails with a message
   or gives a model that runs a token without crashing (ASan watches). */
static void test_fuzz_load(void) {
    char *orig, *cfg;
    size_t len, hlen;
    bn_error err;
    uint32_t seed = 777;
    int iter, loaded = 0, refused = 0;
    static const char *const cfg_edits[] = {
        "\"num_key_value_heads\": 1", "\"num_key_value_heads\": 2", "\"head_dim\": 16", "\"head_dim\": 64",
        "\"vocab_size\": 776", "\"intermediate_size\": 324", "\"num_hidden_layers\": 3", "\"hidden_size\": 256",
        "\"tie_word_embeddings\": true", "\"model_type\": \"llama\""};
    BNT_CHECK(bn_read_file(SRC_MODEL "/model.safetensors", &orig, &len, &err) == BN_OK);
    BNT_CHECK(bn_read_file(SRC_MODEL "/config.json", &cfg, NULL, &err) == BN_OK);
    if (!orig || !cfg) return;
    hlen = (size_t)(unsigned char)orig[0] | ((size_t)(unsigned char)orig[1] << 8);
    mkdir(TMP "/m_fuzz", 0755);
    for (iter = 0; iter < 60; iter++) {
        char *buf = (char *)malloc(len), text[4096];
        bn_model *m = NULL;
        FILE *f;
        int k;
        memcpy(buf, orig, len);
        if (iter % 2 == 0) {
            for (k = 0; k < 2; k++) {
                seed = seed * 1103515245u + 12345u;
                buf[8 + (seed >> 8) % hlen] = "0123456789"[(seed >> 20) % 10]; /* a digit in the header */
            }
            write_text(TMP "/m_fuzz/config.json", cfg);
        } else { /* the config says one thing, the weights another */
            const char *close = strrchr(cfg, '}');
            snprintf(text, sizeof text, "%.*s, %s}", (int)(close - cfg), cfg, cfg_edits[(iter / 2) % 10]);
            write_text(TMP "/m_fuzz/config.json", text);
        }
        f = fopen(TMP "/m_fuzz/model.safetensors", "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        if (bn_model_load(&m, TMP "/m_fuzz", NULL, &err) == BN_OK) {
            bn_context *ctx = NULL;
            bn_context_params cp = bn_context_default_params();
            int32_t tok = 3;
            loaded++;
            cp.n_ctx = 8;
            BNT_CHECK(bn_context_new(&ctx, m, &cp, &err) == BN_OK);
            if (ctx) BNT_CHECK(bn_eval(ctx, 0, &tok, 1, &err) == BN_OK && bn_get_logits(ctx, -1) != NULL);
            bn_context_free(ctx);
            bn_model_free(m);
        } else {
            refused++;
            BNT_CHECK(strlen(err.msg) > 0);
        }
        free(buf);
    }
    printf("    60 damaged checkpoints: %d loaded and ran, %d refused\n", loaded, refused);
    bn_free(orig);
    bn_free(cfg);
}

int main(void) {
    mkdir("build", 0755);
    mkdir(TMP, 0755);
    BNT_RUN(test_config_values);
    BNT_RUN(test_config_errors);
    BNT_RUN(test_config_round_trip);
    BNT_RUN(test_unchanged_copy_loads);
    BNT_RUN(test_missing_tensor);
    BNT_RUN(test_misshapen_tensor);
    BNT_RUN(test_bad_codes);
    BNT_RUN(test_bad_files);
    BNT_RUN(test_config_claims_more_than_file);
    BNT_RUN(test_load_limits);
    BNT_RUN(test_fuzz_load);
    return bnt_finish("model_errors");
}
