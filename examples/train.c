/* Train a small BitNet b1.58 language model from scratch on a CPU, with
   quantization-aware training, and save it in the HuggingFace layout.

   The data is what tools/train_tokenizer.py --encode writes: train.bin and
   val.bin (uint16 token ids) and split.json (byte and token counts, vocab).

       python3 tools/train_tokenizer.py data/tinyshakespeare.txt --vocab 1024 \
           --out models/shakespeare --encode build/shakespeare
       cc -O3 -march=native -o build/train examples/train.c -lm -lpthread
       build/train --data build/shakespeare --out models/shakespeare --steps 2000

   Prints a progress line per step and the validation loss every --eval-every
   steps (nats/token and bits/byte); saves a checkpoint (weights + AdamW state)
   every --ckpt-every steps and at the end, and --resume continues from it. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#ifdef __GLIBC__
#include <malloc.h> /* mallopt: keep freed step buffers in the heap instead of unmapping them */
#endif

typedef struct options {
    const char *data, *out, *ckpt;
    int resume, layers, dim, ffn, heads, kv_heads, seq, batch, steps, warmup, threads, eval_every, ckpt_every, seed;
    float lr, min_lr, wd, clip;
    double time_limit;
} options;

typedef struct dataset {
    int32_t *train, *val;
    size_t n_train, n_val;
    double val_bytes;
    int vocab, bos, eos;
} dataset;

static void usage(void) {
    fprintf(stderr,
            "usage: train --data DIR [--out DIR] [options]\n"
            "  --data DIR        train.bin, val.bin, split.json from tools/train_tokenizer.py --encode\n"
            "  --out DIR         save the HF model folder here at the end (config.json, model.safetensors, ...)\n"
            "  --ckpt FILE       checkpoint file (default DIR/../train.ckpt.safetensors or build/train.ckpt)\n"
            "  --resume          continue from --ckpt\n"
            "  --layers N --dim N --ffn N --heads N --kv-heads N   model shape (4 256 640 4 2)\n"
            "  --seq N           context length trained on, also max_position_embeddings (256)\n"
            "  --batch N         sequences per step (16)\n"
            "  --steps N         total optimizer steps; the LR schedule ends there (1000)\n"
            "  --lr X --min-lr X --warmup N --wd X --clip X   AdamW (2e-3 2e-4 50 0.1 1.0)\n"
            "  --threads N       threads (0 = all cores)\n"
            "  --eval-every N    validation every N steps (250); --ckpt-every N (250)\n"
            "  --time-limit S    stop (and save) after S seconds; with --steps 0 the LR schedule runs\n"
            "                    over the time instead (total steps estimated from the speed so far)\n"
            "  --seed N\n");
    exit(2);
}

static void parse_args(int argc, char **argv, options *o) {
    int i;
    memset(o, 0, sizeof *o);
    o->ckpt = "build/train.ckpt.safetensors";
    o->layers = 4, o->dim = 256, o->ffn = 640, o->heads = 4, o->kv_heads = 2, o->seq = 256, o->batch = 16;
    o->steps = 1000, o->warmup = 50, o->eval_every = 250, o->ckpt_every = 250, o->seed = 1;
    o->lr = 2e-3f, o->min_lr = 2e-4f, o->wd = 0.1f, o->clip = 1.0f;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT_S(name, field) if (!strcmp(a, name) && v) { o->field = v; i++; continue; }
#define OPT_I(name, field) if (!strcmp(a, name) && v) { o->field = atoi(v); i++; continue; }
#define OPT_F(name, field) if (!strcmp(a, name) && v) { o->field = (float)atof(v); i++; continue; }
        OPT_S("--data", data) OPT_S("--out", out) OPT_S("--ckpt", ckpt)
        OPT_I("--layers", layers) OPT_I("--dim", dim) OPT_I("--ffn", ffn) OPT_I("--heads", heads)
        OPT_I("--kv-heads", kv_heads) OPT_I("--seq", seq) OPT_I("--batch", batch) OPT_I("--steps", steps)
        OPT_I("--warmup", warmup) OPT_I("--threads", threads) OPT_I("--eval-every", eval_every)
        OPT_I("--ckpt-every", ckpt_every) OPT_I("--seed", seed)
        OPT_F("--lr", lr) OPT_F("--min-lr", min_lr) OPT_F("--wd", wd) OPT_F("--clip", clip)
        if (!strcmp(a, "--time-limit") && v) { o->time_limit = atof(v); i++; continue; }
        if (!strcmp(a, "--resume")) { o->resume = 1; continue; }
        fprintf(stderr, "train: unknown or incomplete option '%s'\n", a);
        usage();
    }
    if (!o->data || (o->steps <= 0 && o->time_limit <= 0)) usage();
}

/* uint16 token ids of a .bin file, widened to int32. */
static int32_t *read_tokens(const char *dir, const char *name, size_t *n) {
    char *path = (char *)malloc(strlen(dir) + strlen(name) + 2), *bytes;
    size_t len, i;
    int32_t *ids;
    bn_error err;
    sprintf(path, "%s/%s", dir, name);
    if (bn_read_file(path, &bytes, &len, &err)) {
        fprintf(stderr, "train: %s\n", err.msg);
        exit(1);
    }
    *n = len / 2;
    ids = (int32_t *)malloc(sizeof(int32_t) * (*n + 1));
    for (i = 0; i < *n; i++) ids[i] = (uint8_t)bytes[2 * i] | ((uint8_t)bytes[2 * i + 1] << 8);
    bn_free(bytes);
    free(path);
    return ids;
}

static void load_dataset(const char *dir, dataset *d) {
    char *path = (char *)malloc(strlen(dir) + 16), *text;
    size_t len;
    bn_json_doc doc;
    bn_error err;
    sprintf(path, "%s/split.json", dir);
    if (bn_read_file(path, &text, &len, &err) || bn_json_parse(&doc, text, len, path, &err)) {
        fprintf(stderr, "train: %s\n", err.msg);
        exit(1);
    }
    d->vocab = (int)bn_json_number(doc.root, "vocab_size", 0);
    d->bos = (int)bn_json_number(doc.root, "bos_token_id", -1);
    d->eos = (int)bn_json_number(doc.root, "eos_token_id", -1);
    d->val_bytes = bn_json_number(bn_json_get(doc.root, "val"), "bytes", 0);
    bn_json_free(&doc);
    bn_free(text);
    free(path);
    d->train = read_tokens(dir, "train.bin", &d->n_train);
    d->val = read_tokens(dir, "val.bin", &d->n_val);
    if (d->vocab <= 0 || d->n_train < 1000 || d->n_val < 2) {
        fprintf(stderr, "train: %s holds too little data\n", dir);
        exit(1);
    }
}

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Validation: mean nats/token over non-overlapping windows, and the same as
   bits per byte of validation text: nats/token * tokens / bytes / ln 2. */
static void evaluate(bn_train_model *m, bn_pool *pool, const dataset *d, int seq, double *nats, double *bpb,
                     size_t *n_pred_out) {
    size_t n_pred;
    bn_error err;
    if (bn_train_eval(m, pool, d->val, d->n_val, seq, nats, &n_pred, &err)) {
        fprintf(stderr, "train: eval: %s\n", err.msg);
        exit(1);
    }
    *bpb = *nats * (double)d->n_val / d->val_bytes / log(2.0);
    if (n_pred_out) *n_pred_out = n_pred;
}

int main(int argc, char **argv) {
    options o;
    dataset d;
    bn_train_model *m = NULL;
    bn_adamw opt;
    bn_ag_graph *g;
    bn_pool *pool;
    bn_error err;
    int32_t *tokens, *targets;
    double t_start, t_train = 0.0, nats, bpb, train_loss_avg = 0.0;
    int64_t step, first_step, total_steps;
    size_t tokens_seen = 0;
    parse_args(argc, argv, &o);
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
    load_dataset(o.data, &d);
    pool = bn_pool_new(o.threads);
    if (o.resume) {
        if (bn_train_checkpoint_load(&m, &opt, o.ckpt, &err)) {
            fprintf(stderr, "train: resume: %s\n", err.msg);
            return 1;
        }
        fprintf(stderr, "resumed %s at step %lld\n", o.ckpt, (long long)opt.step);
        o.seq = m->cfg.max_seq_len;
    } else {
        bn_config c = bn_train_default_config();
        c.vocab_size = d.vocab;
        c.hidden_size = o.dim;
        c.intermediate_size = o.ffn;
        c.n_layers = o.layers;
        c.n_heads = o.heads;
        c.n_kv_heads = o.kv_heads;
        c.max_seq_len = o.seq;
        c.bos_token_id = d.bos;
        if (d.eos >= 0) c.eos_token_ids[c.n_eos++] = d.eos;
        if (bn_train_model_new(&m, &c, (uint64_t)o.seed, &err) || bn_adamw_init(&opt, m, 0.9f, 0.95f, 1e-8f, o.wd, &err)) {
            fprintf(stderr, "train: %s\n", err.msg);
            return 1;
        }
    }
    opt.weight_decay = o.wd;
    fprintf(stderr, "model: %d layers, dim %d, ffn %d, heads %d/%d, vocab %d, context %d: %.2fM weights\n",
            m->cfg.n_layers, m->cfg.hidden_size, m->cfg.intermediate_size, m->cfg.n_heads, m->cfg.n_kv_heads,
            m->cfg.vocab_size, m->cfg.max_seq_len, (double)bn_train_model_n_weights(m) / 1e6);
    fprintf(stderr, "data: %zu train tokens, %zu val tokens (%.0f bytes); batch %d x %d; %d threads\n", d.n_train,
            d.n_val, d.val_bytes, o.batch, o.seq, bn_pool_size(pool));
    g = bn_ag_graph_new(pool);
    tokens = (int32_t *)malloc(sizeof(int32_t) * (size_t)o.batch * o.seq);
    targets = (int32_t *)malloc(sizeof(int32_t) * (size_t)o.batch * o.seq);
    t_start = bn_time_s();
    first_step = opt.step;
    total_steps = o.steps > 0 ? o.steps : INT64_MAX;
    for (step = opt.step; step < total_steps; step++) {
        uint64_t rng = ((uint64_t)o.seed << 32) ^ (uint64_t)(step + 1) * 0x9E3779B97F4A7C15ull;
        double t0 = bn_time_s(), dt;
        float lr, gnorm, loss_value;
        if (o.steps <= 0) { /* time-based schedule: the steps that fit in the time left at the speed so far */
            double elapsed = t0 - t_start;
            total_steps = step < first_step + 3 ? INT64_MAX
                                                : step + 1 + (int64_t)((o.time_limit - elapsed) / (elapsed / (step - first_step)));
            lr = bn_train_lr(step, o.warmup, step < first_step + 3 ? step + 1000000 : total_steps, o.lr, o.min_lr);
        } else {
            lr = bn_train_lr(step, o.warmup, o.steps, o.lr, o.min_lr);
        }
        bn_ag_tensor *loss;
        int b, t;
        for (b = 0; b < o.batch; b++) { /* random windows of seq + 1 tokens */
            size_t start = (size_t)(next_rand(&rng) % (uint64_t)(d.n_train - (size_t)o.seq - 1));
            for (t = 0; t < o.seq; t++) {
                tokens[b * o.seq + t] = d.train[start + (size_t)t];
                targets[b * o.seq + t] = d.train[start + (size_t)t + 1];
            }
        }
        bn_train_zero_grad(m);
        loss = bn_train_forward(m, g, tokens, o.batch, o.seq, targets, NULL);
        if (!loss || bn_ag_backward(g, loss, &err)) {
            fprintf(stderr, "train: step %lld: %s\n", (long long)step, loss ? err.msg : bn_ag_graph_error(g)->msg);
            return 1;
        }
        loss_value = loss->data[0];
        gnorm = bn_train_clip_grad_norm(m, o.clip);
        bn_adamw_step(&opt, m, lr);
        train_loss_avg = step == first_step ? loss_value : 0.9 * train_loss_avg + 0.1 * loss_value;
        bn_ag_graph_reset(g);
        dt = bn_time_s() - t0;
        t_train += dt;
        tokens_seen += (size_t)o.batch * o.seq;
        fprintf(stderr, "step %5lld/%lld  loss %.4f (avg %.4f)  lr %.2e  |g| %.3f  %.0f tok/s  %.0fs\n", (long long)step + 1,
                (long long)(total_steps == INT64_MAX ? 0 : total_steps), loss_value, train_loss_avg, lr, gnorm, o.batch * o.seq / dt, bn_time_s() - t_start);
        if ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || step + 1 == total_steps) {
            evaluate(m, pool, &d, m->cfg.max_seq_len, &nats, &bpb, NULL);
            printf("step %lld: train loss %.4f (avg of recent steps), val loss %.4f nats/token = %.4f bits/byte\n",
                   (long long)step + 1, train_loss_avg, nats, bpb);
            fflush(stdout);
        }
        if ((o.ckpt_every > 0 && (step + 1) % o.ckpt_every == 0) || step + 1 == total_steps) {
            if (bn_train_checkpoint_save(m, &opt, o.ckpt, &err)) fprintf(stderr, "train: checkpoint: %s\n", err.msg);
        }
        if (o.time_limit > 0 && bn_time_s() - t_start > o.time_limit) {
            fprintf(stderr, "train: time limit reached at step %lld\n", (long long)step + 1);
            if (bn_train_checkpoint_save(m, &opt, o.ckpt, &err)) fprintf(stderr, "train: checkpoint: %s\n", err.msg);
            break;
        }
    }
    printf("trained %zu tokens in %.1f s of steps (%.0f tokens/s)\n", tokens_seen, t_train,
           t_train > 0 ? tokens_seen / t_train : 0.0);
    if (o.out) {
        size_t n_pred;
        evaluate(m, pool, &d, m->cfg.max_seq_len, &nats, &bpb, &n_pred);
        printf("final: val loss %.4f nats/token over %zu predictions (%zu tokens, %.0f bytes, windows of %d): "
               "%.4f bits/byte\n", nats, n_pred, d.n_val, d.val_bytes, m->cfg.max_seq_len, bpb);
        if (bn_train_save_hf(m, o.out, &err)) {
            fprintf(stderr, "train: save: %s\n", err.msg);
            return 1;
        }
        printf("saved %s\n", o.out);
    }
    free(tokens);
    free(targets);
    bn_ag_graph_free(g);
    bn_adamw_free(&opt);
    bn_train_model_free(m);
    bn_pool_free(pool);
    free(d.train);
    free(d.val);
    return 0;
}
