/* Quantization-aware training: the training forward against HF's own logits
   on the HF fixtures (master weights, online quantization), packing against
   HF's packed checkpoints, the optimizer and LR schedule against hand-computed
   values, checkpoints and the HF-layout save, and a loop whose loss must drop. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

#define HF BNT_FIXTURES "/hf/"

/* The bn_config of an HF fixture case (see tests/fixtures/hf/README.md). */
static bn_config fixture_config(const char *name) {
    bn_config c = bn_train_default_config();
    if (!strcmp(name, "tiny-gqa-tied")) {
        c.vocab_size = 1024, c.hidden_size = 192, c.intermediate_size = 512, c.n_layers = 3;
        c.n_heads = 6, c.n_kv_heads = 2, c.rope_theta = 500000.0f, c.tie_word_embeddings = 1;
    } else {
        c.vocab_size = 777, c.hidden_size = 128, c.intermediate_size = 320, c.n_layers = 2;
        c.n_heads = 4, c.n_kv_heads = 4, c.rope_theta = 10000.0f, c.tie_word_embeddings = 0;
    }
    c.max_seq_len = 256;
    c.rms_norm_eps = 1e-5f;
    return c;
}

/* HF's logits for the fixture prompt (master weights = WeightQuant/ActQuant online)
   against bn_train_forward on the same weights. */
static void check_forward_matches_hf(const char *name) {
    char path[256];
    bn_config c = fixture_config(name);
    bn_train_model *m = NULL;
    bn_safetensors *ref = NULL;
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    bn_ag_tensor *logits = NULL;
    bn_error err;
    const bn_safetensors_tensor *ids_t, *want_t;
    int32_t ids[12];
    float *want = NULL;
    int i, bad = 0;
    double worst = 0.0;
    BNT_CHECK(bn_train_model_new(&m, &c, 1, &err) == BN_OK);
    snprintf(path, sizeof path, HF "%s/master/model.safetensors", name);
    BNT_CHECKF(bn_train_model_load_weights(m, path, &err) == BN_OK, "%s", err.msg);
    snprintf(path, sizeof path, HF "%s/reference.safetensors", name);
    BNT_CHECKF(bn_safetensors_load(&ref, path, &err) == BN_OK, "%s", err.msg);
    if (!ref || !m) goto done;
    ids_t = bn_safetensors_find(ref, "input_ids");
    want_t = bn_safetensors_find(ref, "master.logits");
    BNT_CHECK(ids_t && want_t && bn_safetensors_numel(ids_t) == 12 &&
              bn_safetensors_numel(want_t) == 12 * c.vocab_size);
    if (!ids_t || !want_t) goto done;
    memcpy(ids, ids_t->data, sizeof ids);
    want = (float *)malloc(sizeof(float) * 12 * c.vocab_size);
    BNT_CHECK(bn_safetensors_read_f32(want_t, want, &err) == BN_OK);
    BNT_CHECK(bn_train_forward(m, g, ids, 1, 12, NULL, &logits) != NULL && logits);
    if (!logits) goto done;
    for (i = 0; i < 12 * c.vocab_size; i++) {
        double d = fabs((double)logits->data[i] - want[i]);
        if (d > worst) worst = d;
        if (d > 2e-3 * (1.0 + fabs(want[i]))) bad++;
    }
    BNT_CHECKF(bad == 0, "%s: %d of %d logits differ from HF (worst %.3g)", name, bad, 12 * c.vocab_size, worst);
done:
    free(want);
    bn_safetensors_free(ref);
    bn_ag_graph_free(g);
    bn_train_model_free(m);
}

static void test_forward_matches_hf_gqa_tied(void) { check_forward_matches_hf("tiny-gqa-tied"); }
static void test_forward_matches_hf_mha_untied(void) { check_forward_matches_hf("tiny-mha-untied"); }

/* Ternarizing HF's master weights and packing them must give HF's packed
   checkpoint byte for byte, and our scale rounded to bf16 its weight_scale. */
static void test_pack_matches_hf_packed(void) {
    bn_safetensors *master = NULL, *packed = NULL;
    bn_error err;
    int i, n_checked = 0;
    BNT_CHECKF(bn_safetensors_load(&master, HF "tiny-gqa-tied/master/model.safetensors", &err) == BN_OK, "%s", err.msg);
    BNT_CHECKF(bn_safetensors_load(&packed, HF "tiny-gqa-tied/packed/model.safetensors", &err) == BN_OK, "%s", err.msg);
    for (i = 0; master && packed && i < master->n_tensors; i++) {
        const bn_safetensors_tensor *w = &master->tensors[i], *p, *ps;
        char scale_name[128];
        int rows, cols;
        float *wf, s;
        int8_t *q;
        uint8_t *mine;
        if (!strstr(w->name, "_proj.weight")) continue;
        p = bn_safetensors_find(packed, w->name);
        snprintf(scale_name, sizeof scale_name, "%s_scale", w->name);
        ps = bn_safetensors_find(packed, scale_name);
        BNT_CHECK(p && ps && p->dtype == BN_DTYPE_U8 && ps->dtype == BN_DTYPE_BF16);
        if (!p || !ps) continue;
        rows = (int)w->shape[0];
        cols = (int)w->shape[1];
        wf = (float *)malloc(sizeof(float) * rows * cols);
        q = (int8_t *)malloc((size_t)rows * cols);
        mine = (uint8_t *)malloc((size_t)rows * cols / 4);
        BNT_CHECK(bn_safetensors_read_f32(w, wf, &err) == BN_OK);
        s = bn_ternarize(wf, (size_t)rows * cols, q);
        BNT_CHECK(bn_train_pack_ternary(q, rows, cols, mine, &err) == BN_OK);
        BNT_CHECK(p->shape[0] == rows / 4 && p->shape[1] == cols);
        BNT_CHECKF(memcmp(mine, p->data, (size_t)rows * cols / 4) == 0, "%s: packed bytes differ", w->name);
        {
            uint16_t hf_scale;
            memcpy(&hf_scale, ps->data, 2);
            BNT_CHECKF(bn_f32_to_bf16(s) == hf_scale, "%s: scale %g vs HF %g", w->name, s, bn_bf16_to_f32(hf_scale));
        }
        n_checked++;
        free(wf);
        free(q);
        free(mine);
    }
    BNT_CHECK(n_checked == 21); /* 7 linears x 3 layers */
    bn_safetensors_free(master);
    bn_safetensors_free(packed);
}

static void test_pack_by_hand(void) {
    /* 4 rows x 2 cols: byte (0, c) holds rows 0..3 of column c, code = value + 1 */
    int8_t q[8] = {1, -1, 0, 0, -1, 1, 1, 0};
    uint8_t out[2];
    BNT_CHECK(bn_train_pack_ternary(q, 4, 2, out, NULL) == BN_OK);
    BNT_CHECK(out[0] == (2 | 1 << 2 | 0 << 4 | 2 << 6));
    BNT_CHECK(out[1] == (0 | 1 << 2 | 2 << 4 | 1 << 6));
    BNT_CHECK(bn_train_pack_ternary(q, 2, 4, out, NULL) == BN_ERR_SHAPE);
}

static void test_lr_schedule(void) {
    BNT_CHECK(fabsf(bn_train_lr(0, 10, 110, 1e-3f, 1e-4f) - 1e-4f) < 1e-9f);  /* warmup: (0+1)/10 */
    BNT_CHECK(fabsf(bn_train_lr(9, 10, 110, 1e-3f, 1e-4f) - 1e-3f) < 1e-9f);
    BNT_CHECK(fabsf(bn_train_lr(10, 10, 110, 1e-3f, 1e-4f) - 1e-3f) < 1e-9f); /* cosine starts at max */
    BNT_CHECK(fabsf(bn_train_lr(60, 10, 110, 1e-3f, 1e-4f) - 5.5e-4f) < 1e-8f); /* half way: the mean */
    BNT_CHECK(fabsf(bn_train_lr(110, 10, 110, 1e-3f, 1e-4f) - 1e-4f) < 1e-9f);
}

/* One AdamW step by hand: bias correction makes the first update lr * g / (|g| + eps). */
static void test_adamw_by_hand(void) {
    bn_config c = bn_train_default_config();
    bn_train_model *m = NULL;
    bn_adamw opt;
    bn_error err;
    float w0, n0, g = 0.5f, lr = 0.01f;
    c.vocab_size = 8, c.hidden_size = 8, c.intermediate_size = 8, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1;
    BNT_CHECK(bn_train_model_new(&m, &c, 3, &err) == BN_OK);
    BNT_CHECK(bn_adamw_init(&opt, m, 0.9f, 0.95f, 1e-8f, 0.1f, &err) == BN_OK);
    bn_train_zero_grad(m);
    m->embed->grad[5] = g;             /* a matrix: decayed */
    m->layers[0].input_norm->grad[2] = -g; /* a norm weight: not decayed */
    w0 = m->embed->data[5];
    n0 = m->layers[0].input_norm->data[2];
    bn_adamw_step(&opt, m, lr);
    BNT_CHECK(fabsf(m->embed->data[5] - (w0 * (1.0f - lr * 0.1f) - lr)) < 1e-7f);
    BNT_CHECK(fabsf(m->layers[0].input_norm->data[2] - (n0 + lr)) < 1e-7f);
    BNT_CHECK(opt.step == 1);
    bn_adamw_free(&opt);
    bn_train_model_free(m);
}

static void test_clip_grad_norm(void) {
    bn_config c = bn_train_default_config();
    bn_train_model *m = NULL;
    bn_error err;
    c.vocab_size = 8, c.hidden_size = 8, c.intermediate_size = 8, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1;
    BNT_CHECK(bn_train_model_new(&m, &c, 3, &err) == BN_OK);
    bn_train_zero_grad(m);
    m->embed->grad[0] = 3.0f;
    m->norm->grad[1] = 4.0f;
    BNT_CHECK(fabsf(bn_train_clip_grad_norm(m, 1.0f) - 5.0f) < 1e-6f);
    BNT_CHECK(fabsf(m->embed->grad[0] - 0.6f) < 1e-6f && fabsf(m->norm->grad[1] - 0.8f) < 1e-6f);
    BNT_CHECK(fabsf(bn_train_clip_grad_norm(m, 10.0f) - 1.0f) < 1e-5f); /* under the limit: unchanged */
    BNT_CHECK(fabsf(m->embed->grad[0] - 0.6f) < 1e-6f);
    bn_train_model_free(m);
}

/* A tiny model on a fixed periodic token stream: the loss must fall far below
   the uniform guess within a few dozen steps. */
static bn_config tiny_config(void) {
    bn_config c = bn_train_default_config();
    c.vocab_size = 16, c.hidden_size = 32, c.intermediate_size = 64, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1;
    c.max_seq_len = 16;
    return c;
}

static void make_batch(int step, int32_t *tokens, int32_t *targets, int n_seq, int seq_len) {
    static const int32_t pattern[7] = {3, 1, 4, 1, 5, 9, 2};
    int s, t;
    for (s = 0; s < n_seq; s++)
        for (t = 0; t < seq_len; t++) {
            int k = step * 3 + s * 5 + t;
            tokens[s * seq_len + t] = pattern[k % 7];
            targets[s * seq_len + t] = pattern[(k + 1) % 7];
        }
}

static float train_steps(bn_train_model *m, bn_adamw *opt, int from, int to, float *first_loss) {
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    int32_t tokens[4 * 16], targets[4 * 16];
    float last = 0.0f;
    bn_error err;
    int step;
    for (step = from; step < to; step++) {
        bn_ag_tensor *loss;
        make_batch(step, tokens, targets, 4, 16);
        bn_train_zero_grad(m);
        loss = bn_train_forward(m, g, tokens, 4, 16, targets, NULL);
        if (!loss || bn_ag_backward(g, loss, &err)) {
            BNT_CHECK(0);
            break;
        }
        last = loss->data[0];
        if (step == from && first_loss) *first_loss = last;
        bn_train_clip_grad_norm(m, 1.0f);
        bn_adamw_step(opt, m, bn_train_lr(step, 5, 60, 1e-2f, 1e-3f));
        bn_ag_graph_reset(g);
    }
    bn_ag_graph_free(g);
    return last;
}

static void test_loss_drops(void) {
    bn_config c = tiny_config();
    bn_train_model *m = NULL;
    bn_adamw opt;
    bn_error err;
    float first = 0.0f, last;
    BNT_CHECK(bn_train_model_new(&m, &c, 7, &err) == BN_OK);
    BNT_CHECK(bn_adamw_init(&opt, m, 0.9f, 0.95f, 1e-8f, 0.0f, &err) == BN_OK);
    last = train_steps(m, &opt, 0, 60, &first);
    BNT_CHECKF(fabsf(first - logf(16.0f)) < 0.3f, "first loss %.3f is not near ln 16", first);
    BNT_CHECKF(last < 0.5f, "loss went from %.3f to only %.3f", first, last);
    bn_adamw_free(&opt);
    bn_train_model_free(m);
}

/* Stopping, saving a checkpoint and resuming gives the same weights as not stopping. */
static void test_checkpoint_resume(void) {
    bn_config c = tiny_config();
    bn_train_model *a = NULL, *b = NULL;
    bn_adamw oa, ob;
    bn_error err;
    const char *path = "build/test_train.ckpt.safetensors";
    int i, same = 1;
    BNT_CHECK(bn_train_model_new(&a, &c, 11, &err) == BN_OK);
    BNT_CHECK(bn_adamw_init(&oa, a, 0.9f, 0.95f, 1e-8f, 0.1f, &err) == BN_OK);
    train_steps(a, &oa, 0, 10, NULL);
    BNT_CHECKF(bn_train_checkpoint_save(a, &oa, path, &err) == BN_OK, "%s", err.msg);
    BNT_CHECKF(bn_train_checkpoint_load(&b, &ob, path, &err) == BN_OK, "%s", err.msg);
    if (!b) goto done;
    BNT_CHECK(ob.step == 10 && b->n_params == a->n_params && b->cfg.hidden_size == 32 && b->cfg.max_seq_len == 16);
    ob.weight_decay = oa.weight_decay;
    train_steps(a, &oa, 10, 15, NULL);
    train_steps(b, &ob, 10, 15, NULL);
    for (i = 0; i < a->n_params; i++)
        if (memcmp(a->params[i]->data, b->params[i]->data, a->params[i]->n * sizeof(float))) same = 0;
    BNT_CHECK(same);
    bn_adamw_free(&ob);
    bn_train_model_free(b);
done:
    bn_adamw_free(&oa);
    bn_train_model_free(a);
    remove(path);
    BNT_CHECK(bn_train_checkpoint_load(&b, &ob, BNT_FIXTURES "/hf/tiny-gqa-tied/packed/model.safetensors", &err) ==
              BN_ERR_MISSING);
}

/* The HF folder: tensor names, dtypes and shapes as in the HF packed fixture, config.json values. */
static void test_save_hf_layout(void) {
    bn_config c = fixture_config("tiny-gqa-tied");
    bn_train_model *m = NULL;
    bn_safetensors *mine = NULL, *hf = NULL;
    bn_json_doc doc;
    char *text = NULL;
    size_t len;
    bn_error err;
    int i;
    c.bos_token_id = 1;
    c.eos_token_ids[c.n_eos++] = 2;
    BNT_CHECK(bn_train_model_new(&m, &c, 5, &err) == BN_OK);
    BNT_CHECKF(bn_train_save_hf(m, "build", &err) == BN_OK, "%s", err.msg);
    BNT_CHECKF(bn_safetensors_load(&mine, "build/model.safetensors", &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(bn_safetensors_load(&hf, HF "tiny-gqa-tied/packed/model.safetensors", &err) == BN_OK);
    if (mine && hf) {
        BNT_CHECKF(mine->n_tensors == hf->n_tensors, "%d tensors, HF has %d", mine->n_tensors, hf->n_tensors);
        for (i = 0; i < hf->n_tensors; i++) {
            const bn_safetensors_tensor *h = &hf->tensors[i], *t = bn_safetensors_find(mine, h->name);
            BNT_CHECKF(t != NULL, "%s missing", h->name);
            if (!t) continue;
            /* same shapes; uint8 where HF has uint8, float (F32 here, bf16 in HF) elsewhere */
            BNT_CHECKF(t->n_dims == h->n_dims && t->shape[0] == h->shape[0] && (h->n_dims < 2 || t->shape[1] == h->shape[1]),
                       "%s: shape differs", h->name);
            BNT_CHECKF((h->dtype == BN_DTYPE_U8) == (t->dtype == BN_DTYPE_U8), "%s: dtype differs", h->name);
        }
    }
    BNT_CHECK(bn_read_file("build/config.json", &text, &len, &err) == BN_OK);
    if (text && bn_json_parse(&doc, text, len, "config.json", &err) == BN_OK) {
        const bn_json *q = bn_json_get(doc.root, "quantization_config");
        BNT_CHECK(bn_json_streq(bn_json_get(doc.root, "model_type"), "bitnet"));
        BNT_CHECK(bn_json_streq(bn_json_get(doc.root, "hidden_act"), "relu2"));
        BNT_CHECK(bn_json_number(doc.root, "num_key_value_heads", 0) == 2);
        BNT_CHECK(bn_json_number(doc.root, "rope_theta", 0) == 500000.0);
        BNT_CHECK(bn_json_number(doc.root, "rms_norm_eps", 0) == 1e-5);
        BNT_CHECK(bn_json_get(doc.root, "tie_word_embeddings")->type == BN_JSON_TRUE);
        BNT_CHECK(q && bn_json_streq(bn_json_get(q, "linear_class"), "bitlinear"));
        BNT_CHECK(q && bn_json_streq(bn_json_get(q, "quantization_mode"), "offline"));
        bn_json_free(&doc);
    } else {
        BNT_CHECK(0);
    }
    bn_free(text);
    bn_safetensors_free(mine);
    bn_safetensors_free(hf);
    bn_train_model_free(m);
}

/* The same function family: a model trained here, saved in the HF layout and
   loaded by the inference path (bn_model_load + bn_forward: packed ternary
   weights, integer kernels) gives the logits of the training forward. */
static void test_saved_model_matches_inference(void) {
    bn_config c = bn_train_default_config();
    bn_train_model *m = NULL;
    bn_adamw opt;
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    bn_context_params cp = bn_context_default_params();
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    bn_ag_tensor *logits = NULL;
    bn_batch batch;
    bn_error err;
    int32_t tokens[16], pos[16], t, i, bad = 0;
    int8_t want_logits[16];
    double worst = 0.0;
    c.vocab_size = 96, c.hidden_size = 128, c.intermediate_size = 256, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2;
    c.max_seq_len = 16;
    c.rope_theta = 10000.0f;
    BNT_CHECK(bn_train_model_new(&m, &c, 21, &err) == BN_OK);
    BNT_CHECK(bn_adamw_init(&opt, m, 0.9f, 0.95f, 1e-8f, 0.1f, &err) == BN_OK);
    train_steps(m, &opt, 0, 8, NULL); /* move the weights away from their initialization */
    BNT_CHECKF(bn_train_save_hf(m, "build", &err) == BN_OK, "%s", err.msg);
    BNT_CHECKF(bn_model_load(&model, "build", NULL, &err) == BN_OK, "%s", err.msg);
    if (!model) goto done;
    BNT_CHECK(bn_model_config(model)->variant == BN_WEIGHTS_BITLINEAR && bn_model_config(model)->tie_word_embeddings);
    cp.n_threads = 1;
    BNT_CHECKF(bn_context_new(&ctx, model, &cp, &err) == BN_OK, "%s", err.msg);
    if (!ctx) goto done;
    for (t = 0; t < 16; t++) {
        tokens[t] = (t * 37 + 5) % 96;
        pos[t] = t;
        want_logits[t] = 1;
    }
    memset(&batch, 0, sizeof batch);
    batch.n_tokens = 16;
    batch.token = tokens;
    batch.pos = pos;
    batch.want_logits = want_logits;
    BNT_CHECKF(bn_forward(ctx, &batch, &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(bn_train_forward(m, g, tokens, 1, 16, NULL, &logits) != NULL);
    for (t = 0; logits && t < 16; t++) {
        const float *inf = bn_get_logits(ctx, t);
        BNT_CHECK(inf != NULL);
        for (i = 0; inf && i < 96; i++) {
            double d = fabs((double)inf[i] - logits->data[t * 96 + i]);
            if (d > worst) worst = d;
            if (d > 1e-3 * (1.0 + fabs(inf[i]))) bad++;
        }
    }
    BNT_CHECKF(bad == 0, "%d of %d logits differ between training and inference (worst %.3g)", bad, 16 * 96, worst);
done:
    bn_context_free(ctx);
    bn_model_free(model);
    bn_ag_graph_free(g);
    bn_adamw_free(&opt);
    bn_train_model_free(m);
}

static void test_bad_config(void) {
    bn_config c = bn_train_default_config();
    bn_train_model *m = NULL;
    bn_error err;
    c.n_heads = 3; /* 256 does not split into 3 heads */
    BNT_CHECK(bn_train_model_new(&m, &c, 1, &err) == BN_ERR_CONFIG && m == NULL);
    c = bn_train_default_config();
    c.intermediate_size = 642;
    BNT_CHECK(bn_train_model_new(&m, &c, 1, &err) == BN_ERR_CONFIG);
}

/* A checkpoint whose metadata config is `config`, the tensors of a tiny model's. */
static void write_checkpoint_with_config(const char *path, const char *config) {
    bn_config c = tiny_config();
    bn_train_model *m = NULL;
    bn_error err;
    bn_safetensors_tensor *ts;
    const char *metadata[] = {"config", config, "step", "3", NULL};
    int i;
    BNT_CHECK(bn_train_model_new(&m, &c, 5, &err) == BN_OK);
    if (!m) return;
    ts = (bn_safetensors_tensor *)calloc((size_t)m->n_params, sizeof *ts);
    for (i = 0; i < m->n_params; i++) {
        ts[i].name = m->names[i];
        ts[i].dtype = BN_DTYPE_F32;
        ts[i].n_dims = 1;
        ts[i].shape[0] = (int64_t)m->params[i]->n;
        ts[i].data = m->params[i]->data;
    }
    BNT_CHECKF(bn_safetensors_write(path, ts, m->n_params, metadata, &err) == BN_OK, "%s", err.msg);
    free(ts);
    bn_train_model_free(m);
}

/* The checkpoint's config (its config.json) is range-checked before any number
   becomes an int: "vocab_size": 1e10 was a float-to-int overflow (UBSan); and
   sizes that claim more weights than the file holds are refused before they
   are allocated. */
#define CKPT_CONFIG(sizes, extra)                                                                             \
    "{\"model_type\": \"bitnet\", " sizes ", \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"                   \
    " \"tie_word_embeddings\": true" extra "}"
#define CKPT_SIZES(vocab, hidden, layers) \
    "\"vocab_size\": " vocab ", \"hidden_size\": " hidden ", \"intermediate_size\": 64, \"num_hidden_layers\": " layers
static void test_checkpoint_config_checked(void) {
    static const struct { const char *config; bn_status status; const char *word; } cases[] = {
        {CKPT_CONFIG(CKPT_SIZES("1e10", "32", "1"), ", \"max_position_embeddings\": 16"), BN_ERR_CONFIG, "vocab_size"},
        {CKPT_CONFIG(CKPT_SIZES("16", "-32", "1"), ", \"max_position_embeddings\": 16"), BN_ERR_CONFIG, "hidden_size"},
        {CKPT_CONFIG(CKPT_SIZES("16", "32", "1"), ", \"rope_theta\": 1e300"), BN_ERR_CONFIG, "rope_theta"},
        /* an id outside int is left out, as config.json's is */
        {CKPT_CONFIG(CKPT_SIZES("16", "32", "1"), ", \"bos_token_id\": 3e9"), BN_OK, NULL},
        {"{\"model_type\": \"bitnet\", " CKPT_SIZES("16", "32", "1") "}", BN_ERR_CONFIG, "num_attention_heads"},
        {CKPT_CONFIG(CKPT_SIZES("16777216", "65536", "1000"), ""), BN_ERR_SHAPE, "weights"},
        {CKPT_CONFIG(CKPT_SIZES("16", "32", "1"), ", \"max_position_embeddings\": 16"), BN_OK, NULL},
    };
    const char *path = "build/test_train.badcfg.safetensors";
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bn_train_model *m = NULL;
        bn_adamw opt;
        bn_error err;
        bn_status s;
        write_checkpoint_with_config(path, cases[i].config);
        s = bn_train_checkpoint_load(&m, &opt, path, &err);
        if (s == BN_ERR_MISSING && cases[i].status == BN_OK) s = BN_OK; /* no adam tensors in this file */
        BNT_CHECKF(s == cases[i].status, "case %d: %s (%s)", (int)i, bn_status_name(s), s ? err.msg : "loaded");
        if (s && cases[i].word)
            BNT_CHECKF(strstr(err.msg, cases[i].word) != NULL, "case %d: %s", (int)i, err.msg);
        if (s) printf("    %s\n", err.msg);
        if (m) bn_adamw_free(&opt);
        bn_train_model_free(m);
    }
    remove(path);
}

/* bn__train_n_weights (what a checkpoint's config is checked against) is what bn_train_model_new allocates. */
static void test_n_weights_formula(void) {
    bn_config c = tiny_config();
    bn_train_model *m = NULL;
    bn_error err;
    int k;
    for (k = 0; k < 2; k++) {
        c.tie_word_embeddings = k;
        BNT_CHECK(bn_train_model_new(&m, &c, 1, &err) == BN_OK);
        if (m) BNT_CHECK(bn__train_n_weights(&c) == (double)bn_train_model_n_weights(m));
        bn_train_model_free(m);
        m = NULL;
    }
}

int main(void) {
    BNT_RUN(test_forward_matches_hf_gqa_tied);
    BNT_RUN(test_forward_matches_hf_mha_untied);
    BNT_RUN(test_pack_matches_hf_packed);
    BNT_RUN(test_pack_by_hand);
    BNT_RUN(test_lr_schedule);
    BNT_RUN(test_adamw_by_hand);
    BNT_RUN(test_clip_grad_norm);
    BNT_RUN(test_loss_drops);
    BNT_RUN(test_checkpoint_resume);
    BNT_RUN(test_save_hf_layout);
    BNT_RUN(test_saved_model_matches_inference);
    BNT_RUN(test_bad_config);
    BNT_RUN(test_checkpoint_config_checked);
    BNT_RUN(test_n_weights_formula);
    return bnt_finish("train");
}
