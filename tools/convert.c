/* convert.c: `bitnet convert IN OUT --to packed|autobit|master`, between HF's three layouts of
   a BitNet b1.58 checkpoint (tests/fixtures/hf/README.md describes them):

     master   bf16/f16/f32 weights, quantized at load (quantization_mode "online")
     packed   uint8 [out/4, in] codes, weight_scale = 1/mean|W|   (linear_class "bitlinear")
     autobit  the same codes,     weight_scale = mean|W|          (linear_class "autobitlinear")

   Every *_proj.weight becomes ternary codes q and a scale m (the effective weight is q * m):
   from master by the absmean rule the loader uses (bn_ternarize), from packed layouts by
   unpacking. Packed outputs store q in HF's packing and m (or 1/m) as a bf16 [1] tensor, as
   HF's own checkpoints do. A master output must mean the same after the online quantization
   that reads it, which takes mean|W| for the scale: so each nonzero weight is written as
   +-m * n / nnz (n weights, nnz of them nonzero), whose mean is m and which rounds back to q.
   Other tensors are copied unchanged, config.json gets the matching quantization_config
   (everything else in it is kept byte for byte), and the other files of the folder
   (tokenizer, generation config) are copied. Files larger than --max-shard-size are split
   into model-0000i-of-0000n.safetensors with a model.safetensors.index.json, as
   transformers' save_pretrained does; tensors are laid out as the safetensors library lays
   them out (by element size, then name), so a conversion of an HF checkpoint can be
   compared with HF's byte for byte. One tensor is in memory at a time. */
#if !defined(_WIN32) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif
#include "../bitnet.h"
#include "cli.h"
#include "hub.h"
#include "progress.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifndef _WIN32
#include <dirent.h>
#endif

typedef enum target { TO_PACKED, TO_AUTOBIT, TO_MASTER } target;

/* One tensor of the output: where its bytes come from and how they are made. */
typedef struct out_tensor {
    char name[256];
    bn_dtype dtype;
    int n_dims;
    int64_t shape[BN_SAFETENSORS_MAX_DIMS];
    size_t nbytes;
    const bn_safetensors_tensor *src;   /* the input tensor (the weight, for a linear) */
    const bn_safetensors_tensor *scale; /* a packed input's weight_scale, else NULL */
    int kind;                  /* 0 copy, 1 linear weight, 2 linear weight_scale, 3 float cast */
    int shard;
    size_t offset;             /* in its shard's data section */
} out_tensor;

typedef struct conversion {
    target to;
    bn_weight_variant from;
    bn_dtype master_dtype;
    bn_dtype scale_dtype;  /* of a packed output's weight_scale */
    out_tensor *t;
    int n;
    int n_shards;
    progress bar;
    long long written;
} conversion;

static int is_linear_weight(const bn_safetensors_tensor *t) {
    size_t n = strlen(t->name);
    return t->n_dims == 2 && n > 12 && strcmp(t->name + n - 12, "_proj.weight") == 0;
}

static int is_linear_scale(const bn_safetensors_tensor *t) {
    size_t n = strlen(t->name);
    return n > 18 && strcmp(t->name + n - 18, "_proj.weight_scale") == 0;
}

static size_t numel(const out_tensor *o) {
    size_t n = 1;
    int i;
    for (i = 0; i < o->n_dims; i++) n *= (size_t)o->shape[i];
    return n;
}

/* ------------------------------------------------------------ ternary codes and scales */

/* m, the scale of a linear weight (effective weight = q * m). A master weight's is mean|W| (the
   absmean rule; q then comes from bn_ternarize, as at load): q gets its codes when not NULL. */
static int read_scale(const conversion *cv, const out_tensor *o, int8_t *q, float *m, bn_error *err) {
    const bn_safetensors_tensor *w = o->src;
    if (cv->from == BN_WEIGHTS_MASTER) {
        size_t n = (size_t)bn_safetensors_numel(w), i;
        float *f = (float *)malloc(n * sizeof(float));
        double sum = 0.0;
        if (!f) return bn_errorf(err, BN_ERR_NOMEM, "%s: out of memory", w->name) == BN_OK;
        if (bn_safetensors_read_f32(w, f, err) != BN_OK) {
            free(f);
            return 0;
        }
        for (i = 0; i < n; i++) sum += fabs((double)f[i]);
        if (q) bn_ternarize(f, n, q);
        *m = (float)(n ? sum / (double)n : 0.0);
        if (*m < 1e-5f) *m = 1e-5f;
        free(f);
    } else {
        float ws;
        if (bn_safetensors_read_f32(o->scale, &ws, err) != BN_OK) return 0;
        if (!(ws > 0.0f) || !isfinite(ws)) {
            bn_errorf(err, BN_ERR_FORMAT, "%s: weight_scale %g is not a positive number", o->scale->name, (double)ws);
            return 0;
        }
        *m = cv->from == BN_WEIGHTS_BITLINEAR ? 1.0f / ws : ws; /* bitlinear divides, autobitlinear multiplies */
    }
    return 1;
}

/* q (rows x cols) and m of a linear weight in the input. */
static int read_ternary(const conversion *cv, const out_tensor *o, int8_t *q, float *m, bn_error *err) {
    const bn_safetensors_tensor *w = o->src;
    if (!read_scale(cv, o, q, m, err)) return 0;
    if (cv->from != BN_WEIGHTS_MASTER) {
        int rows = (int)w->shape[0] * 4, cols = (int)w->shape[1], r, c, i, prow = rows / 4;
        const uint8_t *b = (const uint8_t *)w->data;
        for (r = 0; r < prow; r++)
            for (c = 0; c < cols; c++) {
                unsigned byte = b[(size_t)r * (size_t)cols + (size_t)c];
                for (i = 0; i < 4; i++) {
                    unsigned code = (byte >> (2 * i)) & 3u;
                    if (code == 3) {
                        bn_errorf(err, BN_ERR_FORMAT, "%s: byte [%d, %d] holds code 3, not a ternary value", w->name,
                                  r, c);
                        return 0;
                    }
                    q[(size_t)(r + i * prow) * (size_t)cols + (size_t)c] = (int8_t)((int)code - 1);
                }
            }
    }
    return 1;
}

/* A float in a master's element type, and back. */
static uint16_t to_half(bn_dtype dtype, float x) { return dtype == BN_DTYPE_BF16 ? bn_f32_to_bf16(x) : bn_f32_to_f16(x); }
static float from_half(bn_dtype dtype, uint16_t h) { return dtype == BN_DTYPE_BF16 ? bn_bf16_to_f32(h) : bn_f16_to_f32(h); }

static void put_master(bn_dtype dtype, void *buf, size_t i, float x) {
    if (dtype == BN_DTYPE_F32) memcpy((char *)buf + 4 * i, &x, 4);
    else {
        uint16_t h = to_half(dtype, x);
        memcpy((char *)buf + 2 * i, &h, 2);
    }
}

/* x rounded to a master's element type. */
static double representable(bn_dtype dtype, double x) {
    return dtype == BN_DTYPE_F32 ? (double)(float)x : (double)from_half(dtype, to_half(dtype, (float)x));
}

/* A master weight whose online quantization gives back codes q and scale m: mean|W| must be m,
   and every weight round to its code (|w| > m/2 for +-1, |w| < m/2 for 0). A single magnitude
   v = m*n/nnz would carry the rounding of v to bf16 (up to 2^-9) into the scale. So k nonzero
   weights take the representable value just above v and the rest the one just below, k making
   the sum of magnitudes as close to m*n as those steps go; what is left, less than one step, is
   put on one or two weights of code 0 (tiny against m/2, so they still quantize to 0). The mean
   is then m to double precision, and a loader's f32 scale is m itself. */
static void write_master(bn_dtype dtype, const int8_t *q, size_t n, size_t nnz, float m, void *buf) {
    double v = nnz ? (double)m * (double)n / (double)nnz : 0.0, r = representable(dtype, v), lo, hi, k, rest = 0;
    double extra[2] = {0, 0};
    size_t i, seen = 0, zeros = 0, n_hi = 0;
    if (dtype == BN_DTYPE_F32) {
        lo = r <= v ? r : nextafterf((float)r, 0.0f);
        hi = r <= v ? nextafterf((float)r, INFINITY) : r;
    } else {
        uint16_t h = to_half(dtype, (float)v);
        lo = r <= v ? r : from_half(dtype, (uint16_t)(h - 1));
        hi = r <= v ? from_half(dtype, (uint16_t)(h + 1)) : r;
    }
    if (nnz && hi > lo) {
        k = floor(((double)m * (double)n - (double)nnz * lo) / (hi - lo));
        n_hi = k <= 0 ? 0 : k >= (double)nnz ? nnz : (size_t)k;
        rest = (double)m * (double)n - ((double)n_hi * hi + (double)(nnz - n_hi) * lo);
        extra[0] = representable(dtype, rest);
        extra[1] = representable(dtype, rest - extra[0]);
        if (!(fabs(extra[0]) < 0.25 * m && fabs(extra[1]) < 0.25 * m)) extra[0] = extra[1] = 0; /* a very sparse matrix */
    }
    for (i = 0; i < n; i++) {
        float x = 0.0f;
        if (q[i]) x = (float)q[i] * (float)(seen++ < n_hi ? hi : lo);
        else if (zeros < 2) x = (float)extra[zeros++];
        put_master(dtype, buf, i, x);
    }
}

/* The bytes of an output tensor into buf (o->nbytes). */
static int make_tensor(const conversion *cv, const out_tensor *o, void *buf, bn_error *err) {
    if (o->kind == 0) {
        memcpy(buf, o->src->data, o->nbytes);
        return 1;
    }
    if (o->kind == 2) { /* weight_scale of a packed output */
        float m;
        uint16_t v;
        if (!read_scale(cv, o, NULL, &m, err)) return 0;
        m = cv->to == TO_PACKED ? 1.0f / m : m;
        if (o->dtype == BN_DTYPE_F32) memcpy(buf, &m, 4);
        else {
            v = bn_f32_to_bf16(m);
            memcpy(buf, &v, 2);
        }
        return 1;
    }
    if (o->kind == 3) { /* a float tensor cast to the master dtype */
        size_t n = numel(o), i;
        float *f = (float *)malloc(n * sizeof(float));
        if (!f || bn_safetensors_read_f32(o->src, f, err) != BN_OK) {
            if (!f) bn_errorf(err, BN_ERR_NOMEM, "out of memory");
            free(f);
            return 0;
        }
        for (i = 0; i < n; i++) put_master(o->dtype, buf, i, f[i]);
        free(f);
        return 1;
    }
    {
        int rows = (int)(o->src->dtype == BN_DTYPE_U8 ? o->src->shape[0] * 4 : o->src->shape[0]);
        int cols = (int)o->src->shape[1];
        size_t n = (size_t)rows * (size_t)cols, i, nnz = 0;
        int8_t *q = (int8_t *)malloc(n);
        float m;
        if (!q) return bn_errorf(err, BN_ERR_NOMEM, "%s: out of memory", o->name) == BN_OK;
        if (!read_ternary(cv, o, q, &m, err)) {
            free(q);
            return 0;
        }
        if (cv->to != TO_MASTER) {
            int ok = bn_train_pack_ternary(q, rows, cols, (uint8_t *)buf, err) == BN_OK;
            free(q);
            return ok;
        }
        for (i = 0; i < n; i++) nnz += q[i] != 0;
        write_master(o->dtype, q, n, nnz, m, buf);
        free(q);
        return 1;
    }
}

/* ------------------------------------------------------------ the plan */

static int add_out(conversion *cv, int *cap, const out_tensor *o) {
    if (cv->n == *cap) {
        out_tensor *p = (out_tensor *)realloc(cv->t, sizeof(out_tensor) * (size_t)(*cap = *cap ? 2 * *cap : 64));
        if (!p) return 0;
        cv->t = p;
    }
    cv->t[cv->n++] = *o;
    return 1;
}

/* The safetensors library's layout: larger elements first, then by name. */
static int cmp_layout(const void *a, const void *b) {
    const out_tensor *x = (const out_tensor *)a, *y = (const out_tensor *)b;
    size_t ex = bn_dtype_size(x->dtype), ey = bn_dtype_size(y->dtype);
    if (ex != ey) return ex > ey ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int plan(conversion *cv, const bn_safetensors *st, bn_error *err) {
    int i, cap = 0;
    for (i = 0; i < st->n_tensors; i++) {
        const bn_safetensors_tensor *t = &st->tensors[i];
        out_tensor o;
        memset(&o, 0, sizeof o);
        o.src = t;
        if (strlen(t->name) >= sizeof o.name - 8)
            return bn_errorf(err, BN_ERR_FORMAT, "tensor name too long: %.100s", t->name) == BN_OK;
        if (is_linear_scale(t)) continue; /* made with its weight */
        strcpy(o.name, t->name);
        o.dtype = t->dtype;
        o.n_dims = t->n_dims;
        memcpy(o.shape, t->shape, sizeof o.shape);
        if (is_linear_weight(t)) {
            int packed_in = cv->from != BN_WEIGHTS_MASTER;
            int64_t rows = packed_in ? t->shape[0] * 4 : t->shape[0];
            if (packed_in) {
                char sname[300];
                fmt_path(sname, sizeof sname, "%s_scale", t->name);
                if (t->dtype != BN_DTYPE_U8 || !(o.scale = bn_safetensors_find(st, sname)) || bn_safetensors_numel(o.scale) != 1)
                    return bn_errorf(err, BN_ERR_FORMAT, "%s: a packed weight must be U8 with a [1] %s", t->name,
                                     sname) == BN_OK;
            } else if (t->dtype != BN_DTYPE_F32 && t->dtype != BN_DTYPE_F16 && t->dtype != BN_DTYPE_BF16) {
                return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: master weights must be F32, F16 or BF16, not %s", t->name,
                                 bn_dtype_name(t->dtype)) == BN_OK;
            }
            if (rows % 4 != 0)
                return bn_errorf(err, BN_ERR_SHAPE, "%s: %lld rows are not a multiple of 4 (HF's packing needs it)",
                                 t->name, (long long)rows) == BN_OK;
            o.kind = 1;
            if (cv->to == TO_MASTER) {
                o.dtype = cv->master_dtype;
                o.shape[0] = rows;
            } else {
                o.dtype = BN_DTYPE_U8;
                o.shape[0] = rows / 4;
            }
            if (!add_out(cv, &cap, &o)) return bn_errorf(err, BN_ERR_NOMEM, "out of memory") == BN_OK;
            if (cv->to != TO_MASTER) { /* its weight_scale */
                fmt_path(o.name, sizeof o.name, "%s_scale", t->name);
                o.kind = 2;
                o.dtype = cv->scale_dtype;
                o.n_dims = 1;
                o.shape[0] = 1;
                if (!add_out(cv, &cap, &o)) return bn_errorf(err, BN_ERR_NOMEM, "out of memory") == BN_OK;
            }
            continue;
        }
        if (!add_out(cv, &cap, &o)) return bn_errorf(err, BN_ERR_NOMEM, "out of memory") == BN_OK;
    }
    for (i = 0; i < cv->n; i++) cv->t[i].nbytes = numel(&cv->t[i]) * bn_dtype_size(cv->t[i].dtype);
    qsort(cv->t, (size_t)cv->n, sizeof(out_tensor), cmp_layout);
    return 1;
}

/* Assigns tensors to shards of at most max_bytes (a larger tensor gets a shard of its own). */
static void assign_shards(conversion *cv, long long max_bytes) {
    long long in_shard = 0;
    int i, s = 0;
    for (i = 0; i < cv->n; i++) {
        if (in_shard > 0 && in_shard + (long long)cv->t[i].nbytes > max_bytes) {
            s++;
            in_shard = 0;
        }
        cv->t[i].shard = s;
        cv->t[i].offset = (size_t)in_shard;
        in_shard += (long long)cv->t[i].nbytes;
    }
    cv->n_shards = cv->n ? s + 1 : 1;
}

/* ------------------------------------------------------------ writing */

static void shard_name(const conversion *cv, int s, char *out, size_t cap) {
    if (cv->n_shards == 1) snprintf(out, cap, "model.safetensors");
    else snprintf(out, cap, "model-%05d-of-%05d.safetensors", s + 1, cv->n_shards);
}

/* A string builder for headers and JSON. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = (char *)realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *f, long long x, long long y) {
    char tmp[96];
    int k = snprintf(tmp, sizeof tmp, f, x, y);
    if (k > 0) sb_add(b, tmp, (size_t)k);
}

/* A JSON string (names come from the input file: escape what JSON requires). */
static void sb_json_string(sbuf *b, const char *s) {
    sb_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_add(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_add(b, e, 6);
        } else sb_add(b, (const char *)&c, 1);
    }
    sb_add(b, "\"", 1);
}

static int write_shard(conversion *cv, const char *dir, int s, bn_error *err) {
    char path[4096], name[64];
    sbuf h;
    FILE *f;
    int i, ok = 1;
    uint8_t len8[8];
    size_t max_bytes = 0;
    void *buf;
    memset(&h, 0, sizeof h);
    sb_str(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (i = 0; i < cv->n; i++) {
        const out_tensor *o = &cv->t[i];
        int k;
        if (o->shard != s) continue;
        if (o->nbytes > max_bytes) max_bytes = o->nbytes;
        sb_str(&h, ",");
        sb_json_string(&h, o->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, bn_dtype_name(o->dtype));
        sb_str(&h, "\",\"shape\":[");
        for (k = 0; k < o->n_dims; k++) sb_printf(&h, k ? ",%lld" : "%lld", (long long)o->shape[k], 0);
        sb_printf(&h, "],\"data_offsets\":[%lld,%lld]}", (long long)o->offset, (long long)(o->offset + o->nbytes));
    }
    sb_str(&h, "}");
    while (!h.failed && h.n % 8) sb_str(&h, " ");
    shard_name(cv, s, name, sizeof name);
    fmt_path(path, sizeof path, "%s/%s", dir, name);
    buf = malloc(max_bytes ? max_bytes : 1);
    f = fopen(path, "wb");
    if (h.failed || !buf || !f) {
        bn_errorf(err, f ? BN_ERR_NOMEM : BN_ERR_IO, "%s: %s", path, f ? "out of memory" : strerror(errno));
        free(h.p);
        free(buf);
        if (f) fclose(f);
        return 0;
    }
    for (i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.p, 1, h.n, f) == h.n;
    for (i = 0; ok && i < cv->n; i++) {
        const out_tensor *o = &cv->t[i];
        if (o->shard != s) continue;
        if (!make_tensor(cv, o, buf, err)) {
            ok = -1;
            break;
        }
        ok = fwrite(buf, 1, o->nbytes, f) == o->nbytes;
        cv->written += (long long)o->nbytes;
        progress_update(&cv->bar, cv->written);
    }
    if (fclose(f) != 0 && ok > 0) ok = 0;
    if (ok == 0) bn_errorf(err, BN_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    free(h.p);
    free(buf);
    return ok > 0;
}

static int write_index(const conversion *cv, const char *dir, bn_error *err) {
    char path[4096], name[64];
    sbuf b;
    FILE *f;
    long long total = 0;
    int i, first = 1;
    out_tensor *sorted = (out_tensor *)malloc(sizeof(out_tensor) * (size_t)(cv->n ? cv->n : 1));
    if (!sorted) return bn_errorf(err, BN_ERR_NOMEM, "out of memory") == BN_OK;
    memcpy(sorted, cv->t, sizeof(out_tensor) * (size_t)cv->n);
    for (i = 0; i < cv->n; i++) total += (long long)cv->t[i].nbytes;
    memset(&b, 0, sizeof b);
    sb_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %lld\n  },\n  \"weight_map\": {\n", total, 0);
    for (i = 0; i < cv->n; i++) { /* by name, as transformers writes it */
        int j, best = i;
        for (j = i + 1; j < cv->n; j++)
            if (strcmp(sorted[j].name, sorted[best].name) < 0) best = j;
        if (best != i) {
            out_tensor tmp = sorted[i];
            sorted[i] = sorted[best];
            sorted[best] = tmp;
        }
        shard_name(cv, sorted[i].shard, name, sizeof name);
        sb_str(&b, first ? "    " : ",\n    ");
        first = 0;
        sb_json_string(&b, sorted[i].name);
        sb_str(&b, ": ");
        sb_json_string(&b, name);
    }
    sb_str(&b, "\n  }\n}\n");
    free(sorted);
    fmt_path(path, sizeof path, "%s/model.safetensors.index.json", dir);
    f = b.failed ? NULL : fopen(path, "wb");
    if (!f || fwrite(b.p, 1, b.n, f) != b.n || fclose(f) != 0) {
        bn_errorf(err, BN_ERR_IO, "%s: cannot write", path);
        free(b.p);
        return 0;
    }
    free(b.p);
    return 1;
}

/* ------------------------------------------------------------ config.json */

/* Skips whitespace, then one JSON value (the text was validated by bn_json_parse). */
static size_t skip_ws(const char *s, size_t i, size_t n) {
    while (i < n && isspace((unsigned char)s[i])) i++;
    return i;
}

static size_t skip_value(const char *s, size_t i, size_t n) {
    int depth = 0;
    i = skip_ws(s, i, n);
    do {
        if (i >= n) return n;
        if (s[i] == '"') {
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
            i++;
        } else if (s[i] == '{' || s[i] == '[') depth++, i++;
        else if (s[i] == '}' || s[i] == ']') depth--, i++;
        else if (depth > 0) i++;
        else {
            while (i < n && !strchr(",}] \t\r\n", s[i])) i++;
        }
    } while (depth > 0);
    return i;
}

/* In the object at s[obj] ('{'), the value of key: [*vs, *ve). *end: the object's closing '}'. */
static int find_member(const char *s, size_t n, size_t obj, const char *key, size_t *vs, size_t *ve, size_t *end) {
    size_t i = skip_ws(s, obj + 1, n), klen = strlen(key);
    int found = 0;
    while (i < n && s[i] != '}') {
        size_t ks = i, ke = skip_value(s, i, n), v;
        i = skip_ws(s, ke, n) + 1; /* past ':' */
        v = skip_ws(s, i, n);
        i = skip_value(s, v, n);
        if (!found && ke - ks == klen + 2 && memcmp(s + ks + 1, key, klen) == 0) {
            *vs = v;
            *ve = i;
            found = 1;
        }
        i = skip_ws(s, i, n);
        if (i < n && s[i] == ',') i = skip_ws(s, i + 1, n);
    }
    *end = i;
    return found;
}

/* text with [a, b) replaced by rep. */
static char *splice(const char *text, size_t n, size_t a, size_t b, const char *rep) {
    size_t k = strlen(rep);
    char *out = (char *)malloc(n - (b - a) + k + 1);
    if (!out) return NULL;
    memcpy(out, text, a);
    memcpy(out + a, rep, k);
    memcpy(out + a + k, text + b, n - b);
    out[n - (b - a) + k] = 0;
    return out;
}

/* Sets a string member of the object at obj: replaced in place, or added before its '}'. */
static char *set_string_member(char *text, size_t obj, const char *key, const char *value) {
    size_t n = strlen(text), vs, ve, end, i;
    char rep[256];
    char *out;
    if (find_member(text, n, obj, key, &vs, &ve, &end)) {
        snprintf(rep, sizeof rep, "\"%s\"", value);
        out = splice(text, n, vs, ve, rep);
    } else {
        i = end;
        while (i > obj + 1 && isspace((unsigned char)text[i - 1])) i--;
        snprintf(rep, sizeof rep, "%s\"%s\": \"%s\"", i > obj + 1 ? ", " : "", key, value);
        out = splice(text, n, i, i, rep);
    }
    free(text);
    return out;
}

/* config.json with quantization_config saying the new layout; every other byte kept. */
static char *updated_config(const char *text, size_t n, target to) {
    const char *cls = to == TO_PACKED ? "bitlinear" : "autobitlinear", *mode = to == TO_MASTER ? "online" : "offline";
    size_t root = skip_ws(text, 0, n), vs, ve, end;
    char *out = (char *)malloc(n + 1);
    if (!out) return NULL;
    memcpy(out, text, n);
    out[n] = 0;
    if (find_member(out, n, root, "quantization_config", &vs, &ve, &end) && out[vs] == '{') {
        out = out ? set_string_member(out, vs, "quant_method", "bitnet") : NULL;
        out = out ? set_string_member(out, vs, "linear_class", cls) : NULL;
        out = out ? set_string_member(out, vs, "quantization_mode", mode) : NULL;
        return out;
    }
    {
        char rep[256], *res;
        size_t i = end;
        while (i > root + 1 && isspace((unsigned char)out[i - 1])) i--;
        snprintf(rep, sizeof rep,
                 "%s\n  \"quantization_config\": {\"quant_method\": \"bitnet\", \"linear_class\": \"%s\", "
                 "\"quantization_mode\": \"%s\"}",
                 i > root + 1 ? "," : "", cls, mode);
        res = splice(out, n, i, i, rep);
        free(out);
        return res;
    }
}

/* ------------------------------------------------------------ the command */

static int copy_file(const char *from, const char *to) {
    char buf[1 << 16];
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    size_t n;
    int ok = a && b;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b && fclose(b) != 0) ok = 0;
    return ok;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The folder's other files: tokenizer, generation config, README (not other weights). */
static int copy_side_files(const char *in, const char *out) {
#ifndef _WIN32
    static const char *const skip[] = {".safetensors", ".safetensors.index.json", ".bin", ".pt", ".pth", ".gguf",
                                       ".h5", ".msgpack", ".onnx", NULL};
    DIR *d = opendir(in);
    struct dirent *de;
    int ok = 1;
    if (!d) return 0;
    while ((de = readdir(d)) != NULL) {
        char a[4096], b[4096];
        struct stat st;
        int k, skipped = de->d_name[0] == '.' || !strcmp(de->d_name, "config.json");
        for (k = 0; skip[k] && !skipped; k++) skipped = ends_with(de->d_name, skip[k]);
        fmt_path(a, sizeof a, "%s/%s", in, de->d_name);
        if (skipped || stat(a, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        fmt_path(b, sizeof b, "%s/%s", out, de->d_name);
        if (!copy_file(a, b)) {
            fprintf(stderr, "bitnet convert: cannot copy %s to %s\n", a, b);
            ok = 0;
        }
    }
    closedir(d);
    return ok;
#else
    (void)in, (void)out;
    return 1;
#endif
}

/* "5GB" (10^9, as transformers reads it), "500MB", "2GiB", "4096". -1 when malformed. */
static long long parse_size_arg(const char *s) {
    char *end;
    double v = strtod(s, &end);
    static const struct { const char *unit; double mul; } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"KiB", 1024.0},
        {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
    size_t i;
    if (end == s || !(v > 0)) return -1;
    for (i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].unit)) return (long long)(v * units[i].mul);
    return -1;
}

typedef struct convert_args {
    int to, dtype, scale_dtype;
    const char *max_shard_size;
} convert_args;

static const cli_choice TARGETS[] = {{"packed", TO_PACKED}, {"autobit", TO_AUTOBIT}, {"master", TO_MASTER}, {NULL, 0}};
static const cli_choice MASTER_DTYPES[] = {
    {"bf16", BN_DTYPE_BF16}, {"f16", BN_DTYPE_F16}, {"f32", BN_DTYPE_F32}, {NULL, 0}};
static const cli_choice SCALE_DTYPES[] = {{"f32", BN_DTYPE_F32}, {"bf16", BN_DTYPE_BF16}, {NULL, 0}};

static void convert_defaults(void *p) {
    convert_args *a = (convert_args *)p;
    a->to = -1;
    a->dtype = BN_DTYPE_BF16;
    a->scale_dtype = BN_DTYPE_F32;
    a->max_shard_size = "5GB";
}

static const cli_opt CONVERT_OPTIONS[] = {
    CLI_ENUM("--to", convert_args, to, TARGETS,
             "the layout to write (required): packed (uint8 codes, linear_class bitlinear; the linears in a "
             "quarter of bf16's bytes), autobit (the same codes, autobitlinear), master (float weights "
             "quantized at load)"),
    CLI_ENUM("--dtype", convert_args, dtype, MASTER_DTYPES,
             "a master output's weights (each keeps the input's scales exactly)"),
    CLI_ENUM("--scale-dtype", convert_args, scale_dtype, SCALE_DTYPES,
             "a packed output's weight_scale; f32 is exact, so the output computes the input's logits; "
             "bf16 is what HF's own packing writes"),
    CLI_STRING("--max-shard-size", "SIZE", convert_args, max_shard_size,
               "split larger outputs into shards with an index (GB = 10^9, GiB = 2^30)"),
    CLI_END};

static int convert_run(void *args, int argc, char **argv) {
    convert_args *a = (convert_args *)args;
    const char *in_arg = argv[0], *out = argv[1], *p;
    char in[4096], path[4096], label[160];
    conversion cv;
    bn_config cfg;
    bn_safetensors *st = NULL;
    bn_error err;
    char *cfg_text = NULL, *gen_text = NULL, *new_cfg = NULL;
    size_t cfg_len = 0, gen_len = 0;
    long long max_shard, total = 0;
    int i, rc = EXIT_RUN;
    (void)argc;
    memset(&cv, 0, sizeof cv);
    if (a->to < 0) return cli_usage_error(&cmd_convert, "--to packed, autobit or master is required");
    if ((max_shard = parse_size_arg(a->max_shard_size)) <= 0)
        return cli_usage_error(&cmd_convert, "--max-shard-size expects a size such as 5GB, got '%s'", a->max_shard_size);
    cv.to = (target)a->to;
    cv.master_dtype = (bn_dtype)a->dtype;
    cv.scale_dtype = (bn_dtype)a->scale_dtype;
    if (!(p = hub_model_path(in_arg))) return EXIT_LOAD;
    snprintf(in, sizeof in, "%s", p);
    fmt_path(path, sizeof path, "%s/config.json", in);
    if (bn_read_file(path, &cfg_text, &cfg_len, &err) != BN_OK) {
        fprintf(stderr, "bitnet convert: %s\n", err.msg);
        return EXIT_LOAD;
    }
    fmt_path(path, sizeof path, "%s/generation_config.json", in);
    if (bn_read_file(path, &gen_text, &gen_len, NULL) != BN_OK) gen_text = NULL;
    if (bn_config_parse(&cfg, cfg_text, gen_text, "config.json", &err) != BN_OK ||
        bn_safetensors_load(&st, in, &err) != BN_OK) {
        fprintf(stderr, "bitnet convert: %s\n", err.msg);
        rc = EXIT_LOAD;
        goto done;
    }
    cv.from = cfg.variant;
    if (!plan(&cv, st, &err)) {
        fprintf(stderr, "bitnet convert: %s\n", err.msg);
        rc = EXIT_LOAD;
        goto done;
    }
    if (cv.from == BN_WEIGHTS_MASTER && cv.to == TO_MASTER) /* a change of dtype: cast the linears */
        for (i = 0; i < cv.n; i++)
            if (cv.t[i].kind == 1) cv.t[i].kind = 3;
    assign_shards(&cv, max_shard);
    if (!(new_cfg = updated_config(cfg_text, cfg_len, cv.to))) {
        fprintf(stderr, "bitnet convert: out of memory\n");
        goto done;
    }
    if (!make_dirs(out, 1)) {
        fprintf(stderr, "bitnet convert: cannot create %s: %s\n", out, strerror(errno));
        goto done;
    }
    fmt_path(path, sizeof path, "%s/config.json", out);
    {
        struct stat a, b;
        if (stat(in, &a) == 0 && stat(out, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            rc = cli_usage_error(&cmd_convert, "OUT must be another folder than IN");
            goto done;
        }
    }
    for (i = 0; i < cv.n; i++) total += (long long)cv.t[i].nbytes;
    snprintf(label, sizeof label, "convert to %s", TARGETS[cv.to].name);
    progress_begin(&cv.bar, label, total, 0);
    for (i = 0; i < cv.n_shards; i++)
        if (!write_shard(&cv, out, i, &err)) {
            progress_end(&cv.bar, 0);
            fprintf(stderr, "bitnet convert: %s\n", err.msg);
            goto done;
        }
    progress_end(&cv.bar, 1);
    if (cv.n_shards > 1 && !write_index(&cv, out, &err)) {
        fprintf(stderr, "bitnet convert: %s\n", err.msg);
        goto done;
    }
    {
        FILE *f = fopen(path, "wb");
        size_t k = strlen(new_cfg);
        if (!f || fwrite(new_cfg, 1, k, f) != k || fclose(f) != 0) {
            fprintf(stderr, "bitnet convert: cannot write %s\n", path);
            goto done;
        }
    }
    if (!copy_side_files(in, out)) goto done;
    {
        char sz[32];
        fprintf(stderr, "converted %s (%s) to %s (%s): %d tensors, %s in %d file(s)\n", in,
                bn_weight_variant_name(cv.from), out, TARGETS[cv.to].name, cv.n, progress_bytes(total, sz, sizeof sz),
                cv.n_shards);
    }
    rc = EXIT_OK;
done:
    bn_safetensors_free(st);
    bn_free(cfg_text);
    bn_free(gen_text);
    free(new_cfg);
    free(cv.t);
    return rc;
}

const cli_command cmd_convert = {
    "convert", "convert a checkpoint between HF's master, packed and autobit layouts", "IN OUT --to LAYOUT [options]",
    "Converts a BitNet b1.58 checkpoint between HF's layouts (IN: a folder or ORG/NAME[@REV]; OUT: a\n"
    "folder, created). Every *_proj.weight becomes ternary codes and a scale, written in the target\n"
    "layout; other tensors are copied; config.json gets the matching quantization_config; the\n"
    "tokenizer and other files are copied. The output loads in HF transformers and in bitnet.h and\n"
    "computes the input's logits (docs/hub.md).\n",
    CONVERT_OPTIONS, sizeof(convert_args), convert_defaults, convert_run, 2, 2};
