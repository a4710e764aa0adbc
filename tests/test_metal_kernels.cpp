/* The Metal kernels (src/metal/bitnet.metal), compiled as C++ through
   tests/metal/metal_stdlib and run by the emulator (tests/metal/kernels.cpp),
   against bitnet.h's scalar reference, over odd shapes and extreme values:
   integer results (ternary dot products, int8 activations) bit for bit,
   float results within the bounds stated at each check. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"
#include "metal/emulator.h"
#include <ctype.h>
#include <float.h>
#include <string>
#include <vector>

/* The kernels' argument struct, as the host fills it (checked against the kernels' own below). */
struct bn_margs {
    int n_tokens, rows, cols, layout;
    float scale;
    int ftype, tiled, add, norm, quant;
    float eps;
    int n_heads, n_kv_heads, head_dim, n_ctx, n_layers, layer, kv_f16;
};

static unsigned rng_state = 12345;
static unsigned rnd(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}
static float rndf(void) { return (float)rnd() / 16777216.0f * 2.0f - 1.0f; } /* [-1, 1) */

static bool dispatch(const char *name, std::vector<void *> bufs, unsigned gx, unsigned gy, unsigned threads) {
    char err[512];
    unsigned groups[3] = {gx, gy, 1}, th[3] = {threads, 1, 1};
    int rc = bnm_dispatch(name, bufs.data(), (int)bufs.size(), groups, th, err, sizeof err);
    BNT_CHECKF(rc == 0, "%s", err);
    return rc == 0;
}

static std::string read_text(const char *path) {
    std::string s;
    FILE *f = fopen(path, "rb");
    char buf[4096];
    size_t n;
    if (!f) return s;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    fclose(f);
    return s;
}

/* The source keeps the rules metal_stdlib relies on: every kernel is one the
   emulator has, its buffers are numbered 0..n-1 in order and then come the
   four position attributes; `threadgroup` only declares at kernel scope. */
static void test_source_rules(void) {
    std::string src = read_text(bnm_source_path());
    const char *attrs[4] = {"threadgroup_position_in_grid", "thread_index_in_threadgroup",
                            "simdgroup_index_in_threadgroup", "thread_index_in_simdgroup"};
    size_t at = 0, line_start = 0;
    int n_kernels = 0;
    BNT_CHECKF(!src.empty(), "cannot read %s", bnm_source_path());
    while ((at = src.find("\nkernel void ", at)) != std::string::npos) {
        size_t name0 = at + 13, name1 = src.find('(', name0), end = src.find(") {", name1), p = name1;
        std::string name = src.substr(name0, name1 - name0), sig = src.substr(name1, end - name1);
        int n = bnm_kernel_buffers(name.c_str()), i;
        BNT_CHECKF(n > 0, "kernel %s is not one the emulator runs (tests/metal/kernels.cpp)", name.c_str());
        for (i = 0; i < n; i++) {
            std::string want = "[[buffer(" + std::to_string(i) + ")]]";
            size_t q = sig.find("[[", p - name1);
            BNT_CHECKF(q != std::string::npos && sig.compare(q, want.size(), want) == 0, "%s: argument %d is not %s",
                       name.c_str(), i, want.c_str());
            p = name1 + (q == std::string::npos ? sig.size() : q + 2);
        }
        for (i = 0; i < 4; i++) {
            std::string want = std::string("[[") + attrs[i] + "]]";
            size_t q = sig.find("[[", p - name1);
            BNT_CHECKF(q != std::string::npos && sig.compare(q, want.size(), want) == 0, "%s: position argument %d is not %s",
                       name.c_str(), i, want.c_str());
            p = name1 + (q == std::string::npos ? sig.size() : q + 2);
        }
        BNT_CHECKF(sig.find("[[", p - name1) == std::string::npos, "%s: arguments after the four positions", name.c_str());
        n_kernels++;
        at = end;
    }
    BNT_CHECK(n_kernels == 6);
    for (at = 0; at < src.size(); at = line_start) { /* threadgroup: declarations at kernel scope only */
        size_t nl = src.find('\n', at);
        std::string line = src.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        size_t q = line.find("threadgroup");
        line_start = nl == std::string::npos ? src.size() : nl + 1;
        if (line.compare(0, 2, "//") == 0 || line.find("//") < q) continue;
        while (q != std::string::npos && ((q > 0 && (isalnum((unsigned char)line[q - 1]) || line[q - 1] == '_')) ||
                                          isalnum((unsigned char)line[q + 11]) || line[q + 11] == '_'))
            q = line.find("threadgroup", q + 11); /* a word of its own, not part of threadgroup_barrier etc. */
        if (q == std::string::npos) continue;
        BNT_CHECKF(line.compare(0, 16, "    threadgroup ") == 0, "threadgroup used other than to declare at kernel scope: %s",
                   line.c_str());
    }
    /* the host's copy of bn_margs matches the kernels' */
    {
        size_t off[32];
        const size_t mine[] = BNM_MARGS_LAYOUT(bn_margs);
        int n = bnm_margs_layout(off, 32), i;
        BNT_CHECK(n == (int)(sizeof mine / sizeof mine[0]));
        for (i = 0; i < n && i < 32; i++) BNT_CHECKF(off[i] == mine[i], "bn_margs field %d", i);
    }
}

/* The emulator itself: SIMD-group functions give what the specification
   says, barriers order threadgroup memory, a missing barrier shows as wrong
   data, and misuse is reported, not silently run. */
static void test_emulator(void) {
    std::vector<int> in(256), out(256 * 6), race(256);
    unsigned groups[3] = {1, 1, 1}, th[3] = {256, 1, 1};
    char err[512];
    void *bufs[2];
    int t, i, bad = 0, stale = 0;
    for (t = 0; t < 256; t++) in[t] = (int)(rnd() % 2001) - 1000;
    BNT_CHECK(dispatch("bnm_test_collectives", {in.data(), out.data()}, 1, 1, 256));
    for (t = 0; t < 256; t++) {
        int lo = t / 32 * 32, sum = 0, mx = INT32_MIN;
        for (i = lo; i < lo + 32; i++) {
            sum += in[i];
            mx = in[i] > mx ? in[i] : mx;
        }
        bad += out[t * 6 + 0] != sum || out[t * 6 + 1] != sum || out[t * 6 + 2] != in[lo + (t + 1) % 32] ||
               out[t * 6 + 3] != in[lo + 3] || out[t * 6 + 4] != mx ||
               out[t * 6 + 5] != in[(t + 1) % 256] + ((t + 1) % 256) / 32;
    }
    BNT_CHECKF(bad == 0, "%d threads got wrong collectives", bad);
    bufs[0] = in.data();
    bufs[1] = race.data();
    BNT_CHECK(bnm_dispatch("bnm_test_race", bufs, 2, groups, th, err, sizeof err) == 0);
    for (t = 0; t < 256; t++) stale += race[t] != in[(t + 1) % 256];
    BNT_CHECKF(stale > 0, "a read of threadgroup memory without a barrier went unnoticed");
    bufs[1] = out.data();
    BNT_CHECK(bnm_dispatch("bnm_test_divergent", bufs, 2, groups, th, err, sizeof err) != 0 && strstr(err, "barrier"));
    printf("    divergent barrier: %s\n", err);
    BNT_CHECK(bnm_dispatch("bnm_test_mixed", bufs, 2, groups, th, err, sizeof err) != 0 && strstr(err, "simd_max"));
    printf("    mixed simd functions: %s\n", err);
    BNT_CHECK(bnm_dispatch("no_such_kernel", bufs, 2, groups, th, err, sizeof err) != 0);
}

static bn_margs margs(void) {
    bn_margs a;
    memset(&a, 0, sizeof a);
    return a;
}

/* Ternary matrix x int8 activations, both layouts, against the scalar
   kernel: the integer sums bit for bit (scale 1, act_scale 1: y is the exact
   int32 as a float), then y bit for bit with bn_tmat_matmul's (the same
   float operations on the same integers). */
static void test_tmatmul(void) {
    const int Ms[] = {1, 4, 5, 13}, Ks[] = {1, 63, 64, 255, 257, 320, 321, 700, 1333}, Ts[] = {1, 2, 8, 9, 17};
    const bn_tlayout layouts[] = {BN_TLAYOUT_I2, BN_TLAYOUT_TQ1};
    int li, mi, ki, ti, cases = 0, bad_int = 0, bad_float = 0;
    for (li = 0; li < 2; li++)
        for (mi = 0; mi < 4; mi++)
            for (ki = 0; ki < 9; ki++)
                for (ti = 0; ti < 5; ti++) {
                    int M = Ms[mi], K = Ks[ki], T = Ts[ti], i;
                    bool extreme = (mi + ki + ti) % 3 == 0;
                    std::vector<int8_t> w((size_t)M * K), x((size_t)T * K);
                    std::vector<int32_t> ref((size_t)T * M);
                    std::vector<float> y((size_t)T * M), yref((size_t)T * M), ones(T, 1.0f), act(T);
                    bn_tmat m;
                    bn_error err;
                    bn_margs a = margs();
                    for (i = 0; i < M * K; i++) w[i] = extreme ? (i % 7 ? 1 : -1) : (int8_t)(rnd() % 3) - 1;
                    for (i = 0; i < T * K; i++) x[i] = extreme ? (i % 5 ? -128 : 127) : (int8_t)(rnd() % 256 - 128);
                    for (i = 0; i < T; i++) act[i] = 1.0f + (float)(rnd() % 1000) / 7.0f;
                    BNT_CHECK(bn_tmat_pack(&m, w.data(), M, K, 0.37f + (float)ki, layouts[li], &err) == BN_OK);
                    bn_tmat_matmul_i32(&m, x.data(), T, ref.data(), NULL, BN_KERNEL_SCALAR);
                    bn_tmat_matmul(&m, x.data(), act.data(), T, yref.data(), NULL, BN_KERNEL_SCALAR);
                    a.n_tokens = T;
                    a.rows = M;
                    a.cols = K;
                    a.layout = layouts[li] == BN_TLAYOUT_I2 ? 1 : 2;
                    a.scale = 1.0f;
                    dispatch("bn_tmatmul", {&a, m.data, x.data(), ones.data(), y.data()}, (unsigned)(M + 7) / 8,
                             (unsigned)(T + 7) / 8, 128);
                    for (i = 0; i < T * M; i++) bad_int += y[i] != (float)ref[i];
                    a.scale = m.scale;
                    dispatch("bn_tmatmul", {&a, m.data, x.data(), act.data(), y.data()}, (unsigned)(M + 7) / 8,
                             (unsigned)(T + 7) / 8, 128);
                    bad_float += memcmp(y.data(), yref.data(), sizeof(float) * y.size()) != 0;
                    bn_tmat_free(&m);
                    cases++;
                }
    BNT_CHECKF(bad_int == 0, "%d integer sums differ from the scalar kernel", bad_int);
    BNT_CHECKF(bad_float == 0, "%d cases' outputs differ from bn_tmat_matmul", bad_float);
    printf("    ternary matmul: %d cases (I2 and TQ1; M 1-13, K 1-1333, 1-17 tokens) exact\n", cases);
}

/* The row kernel in each of the forward's uses, against bitnet.h's scalar
   float helpers (RMSNorm sums in double there, in float here): normed values
   within 4e-6 relative of the CPU's (plus 1e-30); the int8 activations and
   their scale bit for bit bn_quantize_act of the kernel's own normed row
   (the same input: a tie rounds the same way), and within 1 of the CPU's. */
static void test_rows(void) {
    const int Ns[] = {1, 5, 64, 192, 255, 256, 257, 1333};
    bn__fops fo;
    int ni, mode, T = 3, cases = 0, bad_q = 0, far_q = 0;
    double worst = 0.0;
    bn__fops_init(&fo, BN_KERNEL_SCALAR);
    for (ni = 0; ni < 8; ni++)
        for (mode = 0; mode < 6; mode++) {
            /* 0 attention input (norm, quant), 1 sub-norm + quant, 2 residual + norm + quant,
               3 relu2 gate + sub-norm + quant, 4 silu gate + quant, 5 residual + final norm (no quant) */
            int n = Ns[ni], t, i;
            std::vector<float> x((size_t)T * n), add((size_t)T * n), w(n), y((size_t)T * n), xr, yr((size_t)T * n), s(T);
            std::vector<int8_t> q((size_t)T * n), qr(n), qself(n);
            bn_margs a = margs();
            for (i = 0; i < T * n; i++) {
                x[i] = rndf() * (i % 11 == 0 ? 40.0f : 2.0f);
                add[i] = rndf();
            }
            if (ni == 2) x[5] = 0.0f, x[n + 3] = 1e-20f; /* tiny and zero values */
            for (i = 0; i < n; i++) w[i] = 0.5f + rndf() * 0.4f;
            for (i = 0; i < n; i++) x[2 * n + i] = ni == 1 ? 0.0f : x[2 * n + i]; /* an all-zero row (amax clamp) */
            xr = x;
            a.n_tokens = T;
            a.cols = n;
            a.eps = 1e-5f;
            a.add = mode == 2 || mode == 5 ? 1 : mode == 3 ? 2 : mode == 4 ? 3 : 0;
            a.norm = mode != 4;
            a.quant = mode != 5;
            dispatch("bn_rows", {&a, x.data(), add.data(), w.data(), y.data(), q.data(), s.data()}, (unsigned)T, 1, 256);
            for (t = 0; t < T; t++) {
                float *v = xr.data() + (size_t)t * n, *o = yr.data() + (size_t)t * n;
                const float *u = add.data() + (size_t)t * n;
                for (i = 0; i < n; i++) {
                    if (a.add == 1) v[i] += u[i];
                    o[i] = v[i];
                }
                if (a.add == 2) fo.relu2_mul(o, u, n);
                if (a.add == 3)
                    for (i = 0; i < n; i++) o[i] = o[i] / (1.0f + expf(-o[i])) * u[i];
                if (a.norm) bn__rmsnorm(&fo, o, o, w.data(), n, 1e-5f);
                for (i = 0; i < n; i++) {
                    double d = fabs((double)y[(size_t)t * n + i] - o[i]) / (fabs(o[i]) + 1e-30);
                    worst = d > worst ? d : worst;
                }
                if (a.quant) {
                    float sr = bn_quantize_act(y.data() + (size_t)t * n, n, qself.data());
                    bn_quantize_act(o, n, qr.data());
                    bad_q += memcmp(&sr, &s[t], sizeof sr) != 0 || memcmp(qself.data(), q.data() + (size_t)t * n, n) != 0;
                    for (i = 0; i < n; i++) far_q += abs(qr[i] - q[(size_t)t * n + i]) > 1;
                }
            }
            BNT_CHECKF(memcmp(x.data(), xr.data(), sizeof(float) * x.size()) == 0, "n %d mode %d: residual stream", n, mode);
            cases++;
        }
    BNT_CHECKF(worst <= 4e-6, "row kernel: normed values %.3g relative from the CPU's", worst);
    BNT_CHECKF(bad_q == 0, "%d rows quantized unlike bn_quantize_act", bad_q);
    BNT_CHECKF(far_q == 0, "%d int8 activations more than 1 from the CPU's", far_q);
    printf("    row kernel: %d cases (n 1-1333, six modes), float worst %.2e relative, int8 exact\n", cases, worst);
    /* quantization at the edges: exact ties, +-127/-128 clamps */
    {
        const int n = 300;
        std::vector<float> v(n), y(n), dummy(n, 0.0f);
        std::vector<int8_t> q(n), qr(n);
        float s, sr;
        bn_margs a = margs();
        int i;
        for (i = 0; i < n; i++) v[i] = (float)((i % 255) - 127) + (i % 2 ? 0.5f : 0.0f);
        v[7] = -127.0f * 1.0000001f;
        a.n_tokens = 1;
        a.cols = n;
        a.quant = 1;
        dispatch("bn_rows", {&a, v.data(), dummy.data(), dummy.data(), y.data(), q.data(), &s}, 1, 1, 256);
        sr = bn_quantize_act(v.data(), n, qr.data());
        BNT_CHECK(memcmp(&s, &sr, sizeof s) == 0 && memcmp(q.data(), qr.data(), n) == 0);
    }
}

/* The arguments of bn_rope_kv and bn_attention (layer 1 of n_layers). */
static bn_margs attn_args(int T, int nh, int nkv, int hd, int n_ctx, int n_layers, int f16) {
    bn_margs a = margs();
    a.n_tokens = T;
    a.n_heads = nh;
    a.n_kv_heads = nkv;
    a.head_dim = hd;
    a.n_ctx = n_ctx;
    a.n_layers = n_layers;
    a.layer = 1;
    a.kv_f16 = f16;
    return a;
}

/* RoPE and the KV store against the CPU's formula and table (the same
   float operations: exact here; a GPU that fuses them into FMAs is within
   1 ulp), f32 and f16 caches (f16 stores bit for bit bn_f32_to_f16). */
static void test_rope_kv(void) {
    const int hds[] = {32, 48, 128}, heads[][2] = {{6, 2}, {4, 4}, {2, 1}};
    int c, f16, bad = 0, cases = 0;
    for (c = 0; c < 3; c++)
        for (f16 = 0; f16 < 2; f16++) {
            int hd = hds[c], nh = heads[c][0], nkv = heads[c][1], n_ctx = 19, n_layers = 2, n_seq = 3, T = 5, t, i, h;
            size_t esize = f16 ? 2 : 4, kv_dim = (size_t)nkv * hd, q_dim = (size_t)nh * hd;
            size_t cache_elems = (size_t)n_seq * n_layers * nkv * n_ctx * hd;
            std::vector<float> q(T * q_dim), k(T * kv_dim), v(T * kv_dim), q0, k0, cs((size_t)n_ctx * hd / 2), sn(cs.size());
            std::vector<unsigned char> kc(cache_elems * esize, 0), vc(cache_elems * esize, 0);
            int32_t pos[5] = {0, 7, 18, 3, 4}, seq[5] = {0, 2, 1, 2, 0};
            bn_margs a = margs();
            bn__rope_table(cs.data(), sn.data(), n_ctx, hd, 500000.0f);
            for (i = 0; i < (int)q.size(); i++) q[i] = rndf() * 3.0f;
            for (i = 0; i < (int)k.size(); i++) k[i] = rndf() * 3.0f, v[i] = rndf();
            q0 = q;
            k0 = k;
            a = attn_args(T, nh, nkv, hd, n_ctx, n_layers, f16);
            dispatch("bn_rope_kv", {&a, pos, seq, q.data(), k.data(), v.data(), cs.data(), sn.data(), kc.data(), vc.data()},
                     (unsigned)T, 1, 256);
            for (t = 0; t < T; t++)
                for (h = 0; h < nh + nkv; h++) {
                    float *src = h < nh ? &q0[t * q_dim + (size_t)h * hd] : &k0[t * kv_dim + (size_t)(h - nh) * hd];
                    const float *got = h < nh ? &q[t * q_dim + (size_t)h * hd] : &k[t * kv_dim + (size_t)(h - nh) * hd];
                    const float *cp = &cs[(size_t)pos[t] * hd / 2], *sp = &sn[(size_t)pos[t] * hd / 2];
                    for (i = 0; i < hd / 2; i++) {
                        float x1 = src[i], x2 = src[i + hd / 2];
                        float y1 = x1 * cp[i] - x2 * sp[i], y2 = x2 * cp[i] + x1 * sp[i];
                        bad += got[i] != y1 || got[i + hd / 2] != y2;
                    }
                    if (h >= nh) {
                        size_t at = ((((size_t)seq[t] * n_layers + 1) * nkv + (h - nh)) * n_ctx + pos[t]) * hd;
                        for (i = 0; i < hd; i++) {
                            float kv = got[i], vv = v[t * kv_dim + (size_t)(h - nh) * hd + i];
                            if (f16) {
                                uint16_t kb = bn_f32_to_f16(kv), vb = bn_f32_to_f16(vv);
                                bad += memcmp(&kc[(at + i) * 2], &kb, 2) != 0 || memcmp(&vc[(at + i) * 2], &vb, 2) != 0;
                            } else {
                                bad += memcmp(&kc[(at + i) * 4], &kv, 4) != 0 || memcmp(&vc[(at + i) * 4], &vv, 4) != 0;
                            }
                        }
                    }
                }
            cases++;
        }
    BNT_CHECKF(bad == 0, "%d RoPE / KV values differ", bad);
    printf("    rope + kv store: %d cases exact\n", cases);
}

/* Attention against bitnet.h's bn__attn_heads (scalar helpers). The online
   softmax rescales as it goes where the CPU subtracts the final max, so
   each weight exp(s - max) carries a rounding of about |s| ulp: outputs
   (convex sums of V rows) within 1e-5 of the CPU's relative to the largest
   |V|, for scores up to ~100 as here. */
static void test_attention(void) {
    const int hds[] = {32, 48, 128, 256}, groups[] = {1, 3}, keys[] = {1, 2, 5, 17, 100};
    bn__fops fo;
    double worst = 0.0;
    int hi, gi, ki, f16, cases = 0;
    bn__fops_init(&fo, BN_KERNEL_SCALAR);
    for (hi = 0; hi < 4; hi++)
        for (gi = 0; gi < 2; gi++)
            for (ki = 0; ki < 5; ki++)
                for (f16 = 0; f16 < 2; f16++) {
                    int hd = hds[hi], nkv = 2, nh = nkv * groups[gi], n_ctx = 101, n_layers = 2, n_seq = 2, T = 2;
                    int n_keys = keys[ki], t, h, i;
                    size_t esize = f16 ? 2 : 4, elems = (size_t)n_seq * n_layers * nkv * n_ctx * hd;
                    std::vector<unsigned char> kc(elems * esize), vc(elems * esize);
                    std::vector<float> q((size_t)T * nh * hd), out(q.size()), ref(hd),
                        scores((size_t)n_ctx + hd);
                    int32_t pos[2] = {n_keys - 1, (n_keys - 1) / 2}, seq[2] = {1, 0};
                    bn_margs a = margs();
                    float vmax = 0.0f;
                    for (i = 0; i < (int)elems; i++) {
                        float kv = rndf() * 2.0f, vv = rndf() * (i % 13 == 0 ? 8.0f : 1.0f);
                        if (f16) {
                            uint16_t kb = bn_f32_to_f16(kv), vb = bn_f32_to_f16(vv);
                            memcpy(&kc[(size_t)i * 2], &kb, 2);
                            memcpy(&vc[(size_t)i * 2], &vb, 2);
                        } else {
                            memcpy(&kc[(size_t)i * 4], &kv, 4);
                            memcpy(&vc[(size_t)i * 4], &vv, 4);
                        }
                        vmax = fabsf(vv) > vmax ? fabsf(vv) : vmax;
                    }
                    for (i = 0; i < (int)q.size(); i++) q[i] = rndf() * (hi == 3 ? 6.0f : 1.5f);
                    a = attn_args(T, nh, nkv, hd, n_ctx, n_layers, f16);
                    dispatch("bn_attention", {&a, pos, seq, q.data(), kc.data(), vc.data(), out.data()}, (unsigned)nh,
                             (unsigned)T, 128);
                    for (t = 0; t < T; t++)
                        for (h = 0; h < nh; h++) {
                            size_t head = ((((size_t)seq[t] * n_layers + 1) * nkv + h / groups[gi]) * n_ctx) * hd * esize;
                            bn__attn_heads(&fo, 1, hd, &q[((size_t)t * nh + h) * hd], ref.data(), kc.data() + head,
                                           vc.data() + head, (size_t)hd * esize, pos[t] + 1, f16, scores.data(), n_ctx);
                            for (i = 0; i < hd; i++) {
                                double d = fabs((double)out[((size_t)t * nh + h) * hd + i] - ref[i]) / vmax;
                                worst = d > worst ? d : worst;
                            }
                        }
                    cases++;
                }
    BNT_CHECKF(worst <= 1e-5, "attention: %.3g from the CPU's (relative to max |V|)", worst);
    printf("    attention: %d cases (head_dim 32-256, MHA and GQA, 1-100 keys, f32 and f16 KV), worst %.2e\n", cases, worst);
}

/* A float matrix of each type, row-major and tiled as the loader tiles it. */
static void make_fmat(bn_fmat *m, std::vector<unsigned char> &data, std::vector<float> &scales, bn_ftype type, int rows,
                      int cols) {
    size_t es = type == BN_FTYPE_F32 ? 4 : type == BN_FTYPE_I8 ? 1 : 2, i;
    data.assign((size_t)rows * cols * es, 0);
    scales.assign(rows, 0.0f);
    for (i = 0; i < (size_t)rows * cols; i++) {
        float f = rndf() * (i % 17 == 0 ? 4.0f : 0.5f);
        if (type == BN_FTYPE_F32) memcpy(&data[i * 4], &f, 4);
        else if (type == BN_FTYPE_BF16) { uint16_t h = bn_f32_to_bf16(f); memcpy(&data[i * 2], &h, 2); }
        else if (type == BN_FTYPE_F16) { uint16_t h = bn_f32_to_f16(f); memcpy(&data[i * 2], &h, 2); }
        else data[i] = (unsigned char)(int8_t)(rnd() % 255 - 127);
    }
    for (i = 0; i < (size_t)rows; i++) scales[i] = 0.001f + (float)i * 1e-4f;
    memset(m, 0, sizeof *m);
    m->rows = rows;
    m->cols = cols;
    m->type = type;
    m->data = data.data();
    m->row_scale = type == BN_FTYPE_I8 ? scales.data() : NULL;
}

/* The lm_head (and the embedding lookup) against the scalar float kernel:
   logits within 1e-6 of the CPU's relative to sum |w x| (another summation
   order); embedding rows bit for bit bn_fmat_row. */
static void test_fmatmul_embed(void) {
    const int Rs[] = {1, 5, 6, 7, 37}, Cs[] = {1, 15, 16, 17, 257, 700}, Ns[] = {1, 3, 9};
    const bn_ftype types[] = {BN_FTYPE_F32, BN_FTYPE_BF16, BN_FTYPE_F16, BN_FTYPE_I8};
    double worst = 0.0;
    int ty, ri, ci, ni, tiled, cases = 0, bad_embed = 0;
    for (ty = 0; ty < 4; ty++)
        for (ri = 0; ri < 5; ri++)
            for (ci = 0; ci < 6; ci++)
                for (tiled = 0; tiled < 2; tiled++) {
                    int R = Rs[ri], C = Cs[ci], nb = 11, i, o, r;
                    std::vector<unsigned char> data;
                    std::vector<float> scales, x((size_t)nb * C), xg, ref, logits, emb((size_t)nb * C), row(C);
                    std::vector<int32_t> tok(nb);
                    bn_fmat rm, m;
                    bn_error err;
                    bn_margs a = margs();
                    make_fmat(&rm, data, scales, types[ty], R, C);
                    if (tiled) BNT_CHECK(bn_fmat_tile(&m, &rm, &err) == BN_OK);
                    else m = rm;
                    for (i = 0; i < (int)x.size(); i++) x[i] = rndf();
                    a.rows = R;
                    a.cols = C;
                    a.ftype = (int)types[ty];
                    a.tiled = tiled;
                    for (ni = 0; ni < 3; ni++) {
                        int n = Ns[ni];
                        std::vector<int32_t> row_token(n);
                        xg.assign((size_t)n * C, 0.0f);
                        for (o = 0; o < n; o++) {
                            row_token[o] = (o * 5 + ni) % nb;
                            memcpy(&xg[(size_t)o * C], &x[(size_t)row_token[o] * C], sizeof(float) * C);
                        }
                        ref.assign((size_t)n * R, 0.0f);
                        logits.assign((size_t)n * R, 0.0f);
                        bn_fmat_matmul_kernel(&m, xg.data(), n, ref.data(), NULL, BN_KERNEL_SCALAR);
                        a.n_tokens = n;
                        dispatch("bn_fmatmul", {&a, (void *)m.data, (void *)(m.row_scale ? m.row_scale : scales.data()),
                                                x.data(), row_token.data(), logits.data()},
                                 (unsigned)(R + 23) / 24, (unsigned)(n + 7) / 8, 128);
                        for (o = 0; o < n; o++)
                            for (r = 0; r < R; r++) {
                                double mag = 0.0, d;
                                for (i = 0; i < C; i++) mag += fabs((double)bn__fmat_at(&m, r, i) * xg[(size_t)o * C + i]);
                                d = fabs((double)logits[(size_t)o * R + r] - ref[(size_t)o * R + r]) / (mag + 1e-30);
                                worst = d > worst ? d : worst;
                            }
                        cases++;
                    }
                    /* embedding lookup of nb tokens */
                    for (i = 0; i < nb; i++) tok[i] = (int32_t)(rnd() % R);
                    a.n_tokens = nb;
                    dispatch("bn_embed", {&a, tok.data(), (void *)m.data, (void *)(m.row_scale ? m.row_scale : scales.data()), emb.data()},
                             (unsigned)(C + 255) / 256, (unsigned)nb, 256);
                    for (i = 0; i < nb; i++) {
                        bn_fmat_row(&m, tok[i], row.data());
                        bad_embed += memcmp(row.data(), &emb[(size_t)i * C], sizeof(float) * C) != 0;
                    }
                    if (tiled) bn_fmat_free(&m);
                }
    BNT_CHECKF(worst <= 1e-6, "lm_head: %.3g from the CPU's (relative to sum |w x|)", worst);
    BNT_CHECKF(bad_embed == 0, "%d embedding rows differ", bad_embed);
    printf("    lm_head: %d cases (f32, bf16, f16, int8; row-major and tiled), worst %.2e; embeddings exact\n", cases, worst);
}

int main(void) {
    long long threads, switches;
    BNT_RUN(test_source_rules);
    BNT_RUN(test_emulator);
    BNT_RUN(test_tmatmul);
    BNT_RUN(test_rows);
    BNT_RUN(test_rope_kv);
    BNT_RUN(test_attention);
    BNT_RUN(test_fmatmul_embed);
    bnm_stats(&threads, &switches);
    printf("    emulated %lld GPU threads, %lld fiber switches\n", threads, switches);
    return bnt_finish("metal_kernels");
}
