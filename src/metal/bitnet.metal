// bitnet.metal - the Metal Shading Language kernels of bitnet_metal.m.
//
// amalgamate.py copies this file, line for line, into bitnet_metal.m as a
// string that the host compiles at run time (newLibraryWithSource), so a
// compile error's line number is a line of this file. The tests compile the
// same text as C++ (tests/metal/metal_stdlib emulates the language and runs
// each threadgroup's threads for real) and check every kernel against the
// scalar reference in bitnet.h.
//
// Rules that keep both true: threadgroup memory is declared at kernel scope
// only (never a `threadgroup` pointer), arguments come as buffers 0..n-1 then
// the four thread-position attributes in the order below, and every
// threadgroup_barrier and simd_* call is reached by all threads of the group
// (uniform control flow).
//
// The numbers follow bitnet.h's CPU path: activations are quantized per
// token to int8 (a = 127 / max(max|x|, 1e-5), round half to even), the
// ternary dot products are exact int32 sums, y = dot * scale / a; norms,
// RoPE, attention and the lm_head are float (their sums in another order
// than the CPU's, so equal within rounding).

#include <metal_stdlib>
using namespace metal;

// The arguments of every kernel (buffer 0). The host fills the same struct
// (bn_margs in bitnet_metal.m): 4-byte fields only, so both agree on its layout.
struct bn_margs {
    int n_tokens;    // tokens (rows of activations) in this dispatch
    int rows;        // output features of a matrix; vocab rows of the lm_head
    int cols;        // input features
    int layout;      // ternary layout: 1 = I2 (256 weights a block), 2 = TQ1 (320)
    float scale;     // the ternary matrix's weight scale
    int ftype;       // float matrix element type: 0 f32, 1 bf16, 2 f16, 3 int8
    int tiled;       // float matrix in bitnet.h's tiled layout (6-row groups, 16-column blocks)
    int add;         // row kernel: 1 = x += add (the residual stream), 2 = x = relu(x)^2 * add, 3 = silu(x) * add
    int norm;        // row kernel: 1 = RMSNorm with weight w
    int quant;       // row kernel: 1 = quantize to int8 with a per-row scale
    float eps;       // RMSNorm epsilon
    int n_heads, n_kv_heads, head_dim, n_ctx, n_layers, layer, kv_f16;
};

#define BN_SIMD 32         // threads in a simdgroup (Apple GPUs)
#define BN_ROW_THREADS 256 // threads of the row and embedding kernels
#define BN_NSG 4           // simdgroups of the matrix and attention kernels
#define BN_MM_ROWS 2       // ternary rows per simdgroup
#define BN_MM_TOKENS 8     // tokens per threadgroup (the activation tile)
#define BN_FM_TOKENS 8     // tokens per threadgroup of the lm_head
#define BN_FM_COLS 256     // columns of the lm_head's activation tile
#define BN_FM_GROUP 6      // rows of a tiled float matrix's group (BN_FMAT_TILE_ROWS)
#define BN_FM_BLOCK 16     // columns of its blocks (BN_FMAT_TILE_COLS)
#define BN_HD_MAX 256      // largest head_dim the attention kernel takes

// ---- float matrices (embeddings, lm_head) ------------------------------------

// The position of column j of a 16-column block: bf16 blocks interleave the
// two halves (bitnet.h's bn__ftile_pos).
static uint bn_tile_pos(int ftype, uint j) {
    if (ftype != 1) return j;
    return j < 8 ? 2 * j : 2 * (j - 8) + 1;
}

// Element (r, c) of a float matrix, without the int8 row scale.
static float bn_fmat_at(device const uchar *data, int ftype, int tiled, int cols, uint r, uint c) {
    uint idx;
    if (tiled) {
        uint ncols = (uint(cols) + BN_FM_BLOCK - 1) / BN_FM_BLOCK * BN_FM_BLOCK;
        idx = (r / BN_FM_GROUP) * BN_FM_GROUP * ncols + (c / BN_FM_BLOCK) * BN_FM_GROUP * BN_FM_BLOCK +
              (r % BN_FM_GROUP) * BN_FM_BLOCK + bn_tile_pos(ftype, c % BN_FM_BLOCK);
    } else {
        idx = r * uint(cols) + c;
    }
    if (ftype == 0) return ((device const float *)data)[idx];
    if (ftype == 1) return as_type<float>(uint(((device const ushort *)data)[idx]) << 16);
    if (ftype == 2) return float(((device const half *)data)[idx]);
    return float(((device const char *)data)[idx]);
}

// x[t] = embed[token[t]]: one threadgroup per (column range, token).
kernel void bn_embed(constant bn_margs &a [[buffer(0)]], device const int *token [[buffer(1)]],
                     device const uchar *embed [[buffer(2)]], device const float *row_scale [[buffer(3)]],
                     device float *x [[buffer(4)]],
                     uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                     uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    uint c = tg.x * BN_ROW_THREADS + tid, t = tg.y;
    if (c >= uint(a.cols)) return;
    uint r = uint(token[t]);
    float w = bn_fmat_at(embed, a.ftype, a.tiled, a.cols, r, c);
    x[t * uint(a.cols) + c] = a.ftype == 3 ? w * row_scale[r] : w;
}

// ---- the row kernel: residual add / gated activation, RMSNorm, int8 quantization

// RMSNorm's sum of squares as a pair of floats (hi + lo, about 48 bits): the
// CPU path adds the squares in double, and an int8 activation that lands
// near a rounding tie after the norm flips with the last bit of the mean.
// With the pair, mean(x^2) rounds to the float the CPU's double gives but
// in the rarest cases, so the normed rows, and everything quantized from
// them, are the CPU's to the bit.
struct bn_f2 {
    float hi, lo;
};

// a + b exactly, as a float and the rounding error (Knuth's two-sum)
static bn_f2 bn_two_sum(float a, float b) {
    bn_f2 r;
    float bb;
    r.hi = a + b;
    bb = r.hi - a;
    r.lo = (a - (r.hi - bb)) + (b - bb);
    return r;
}

static bn_f2 bn_f2_add(bn_f2 a, bn_f2 b) {
    bn_f2 s = bn_two_sum(a.hi, b.hi);
    float lo = s.lo + (a.lo + b.lo), hi = s.hi + lo;
    s.lo = lo - (hi - s.hi);
    s.hi = hi;
    return s;
}

// x^2 added to a pair: the square is exact as x * x plus fma's rounding error.
static bn_f2 bn_f2_add_square(bn_f2 a, float x) {
    bn_f2 sq;
    sq.hi = x * x;
    sq.lo = fma(x, x, -sq.hi);
    return bn_f2_add(a, sq);
}

// (a.hi + a.lo) / n rounded to float (one correction step of the quotient).
static float bn_f2_div(bn_f2 a, float n) {
    float q = a.hi / n, r = fma(-q, n, a.hi) + a.lo;
    return q + r / n;
}

// One threadgroup per token row of n = cols floats; each thread takes
// elements tid, tid + 256, ... in every stage, so a stage reads only what
// the same thread wrote before it.
//   v = x (+ add, or act(x) * add)     (add = 1 also stores v back into x)
//   v = w * (v * 1 / sqrt(mean(v^2) + eps))   if norm
//   y = v;  xq = round(v * s), act_scale = s   if quant
kernel void bn_rows(constant bn_margs &a [[buffer(0)]], device float *x [[buffer(1)]],
                    device const float *add [[buffer(2)]], device const float *w [[buffer(3)]],
                    device float *y [[buffer(4)]], device char *xq [[buffer(5)]],
                    device float *act_scale [[buffer(6)]],
                    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float partial[BN_ROW_THREADS / BN_SIMD], partial_lo[BN_ROW_THREADS / BN_SIMD];
    uint n = uint(a.cols), base = tg.x * n, i, k;
    float amax = 0.0f;
    bn_f2 ss;
    ss.hi = 0.0f;
    ss.lo = 0.0f;
    for (i = tid; i < n; i += BN_ROW_THREADS) {
        float v = x[base + i];
        if (a.add == 1) {
            v = v + add[base + i];
            x[base + i] = v;
        } else if (a.add == 2) {
            float r = v > 0.0f ? v * v : 0.0f;
            v = r * add[base + i];
        } else if (a.add == 3) {
            v = v / (1.0f + exp(-v)) * add[base + i];
        }
        y[base + i] = v;
        ss = bn_f2_add_square(ss, v);
    }
    if (a.norm) {
        bn_f2 total;
        float inv;
        for (ushort m = BN_SIMD / 2; m > 0; m /= 2) { // the lanes' pairs, added as pairs
            bn_f2 other;
            other.hi = simd_shuffle_xor(ss.hi, m);
            other.lo = simd_shuffle_xor(ss.lo, m);
            ss = bn_f2_add(ss, other);
        }
        if (lane == 0) {
            partial[sg] = ss.hi;
            partial_lo[sg] = ss.lo;
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        total.hi = 0.0f;
        total.lo = 0.0f;
        for (k = 0; k < BN_ROW_THREADS / BN_SIMD; k++) {
            bn_f2 p;
            p.hi = partial[k];
            p.lo = partial_lo[k];
            total = bn_f2_add(total, p);
        }
        inv = 1.0f / sqrt(bn_f2_div(total, float(n)) + a.eps); // the CPU's 1 / sqrtf((float)(ss / n) + eps)
        for (i = tid; i < n; i += BN_ROW_THREADS) y[base + i] = w[i] * (y[base + i] * inv);
        threadgroup_barrier(mem_flags::mem_threadgroup); // partial is reused below
    }
    if (a.quant) {
        float s;
        for (i = tid; i < n; i += BN_ROW_THREADS) amax = max(amax, fabs(y[base + i]));
        amax = simd_max(amax);
        if (lane == 0) partial[sg] = amax;
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (k = 0; k < BN_ROW_THREADS / BN_SIMD; k++) amax = max(amax, partial[k]);
        s = 127.0f / max(amax, 1e-5f);
        for (i = tid; i < n; i += BN_ROW_THREADS) {
            float q = rint(y[base + i] * s); // half to even, as torch.round
            xq[base + i] = char(q > 127.0f ? 127.0f : q < -128.0f ? -128.0f : q);
        }
        if (tid == 0) act_scale[tg.x] = s;
    }
}

// ---- ternary matrix x int8 activations -----------------------------------------

// The code (weight + 1) of digit k of a packed byte: I2 holds 4 digits of 2
// bits, TQ1 5 base-3 digits as q = ceil(v * 256 / 243).
static int bn_code(int layout, uint byte, uint k) {
    if (layout == 1) return int((byte >> (2 * k)) & 3);
    uint p = 1;
    for (uint j = 0; j < k; j++) p *= 3;
    return int((((byte * p) & 255) * 3) >> 8);
}

// y[t * rows + r] = (sum_c W[r][c] * xq[t][c]) * scale / act_scale[t].
// A threadgroup takes BN_NSG * BN_MM_ROWS rows and BN_MM_TOKENS tokens; for
// each 64-byte block of its rows, the threads first copy the tokens'
// activations of that block into threadgroup memory (zeros past cols), then
// each simdgroup's lanes take two bytes of each of its rows' blocks (8 or 10
// weights) against every token. The sums are exact int32; simd_sum adds the
// lanes' parts.
kernel void bn_tmatmul(constant bn_margs &a [[buffer(0)]], device const uchar *w [[buffer(1)]],
                       device const char *xq [[buffer(2)]], device const float *act_scale [[buffer(3)]],
                       device float *y [[buffer(4)]],
                       uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                       uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    threadgroup char xs[BN_MM_TOKENS][320];
    int bw = a.layout == 1 ? 256 : 320, digits = a.layout == 1 ? 4 : 5;
    int nblocks = (a.cols + bw - 1) / bw, t0 = int(tg.y) * BN_MM_TOKENS, nt = min(a.n_tokens - t0, BN_MM_TOKENS);
    int r0 = (int(tg.x) * BN_NSG + int(sg)) * BN_MM_ROWS;
    uint row_bytes = uint(nblocks) * 64;
    int acc[BN_MM_ROWS][BN_MM_TOKENS];
    for (int r = 0; r < BN_MM_ROWS; r++)
        for (int t = 0; t < BN_MM_TOKENS; t++) acc[r][t] = 0;
    for (int b = 0; b < nblocks; b++) {
        for (int e = int(tid); e < BN_MM_TOKENS * bw; e += BN_SIMD * BN_NSG) {
            int t = e / bw, c = b * bw + e % bw;
            xs[t][e % bw] = t < nt && c < a.cols ? xq[(t0 + t) * a.cols + c] : char(0);
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (int r = 0; r < BN_MM_ROWS; r++) {
            if (r0 + r >= a.rows) break;
            device const uchar *blk = w + uint(r0 + r) * row_bytes + uint(b) * 64 + 2 * lane;
            for (int j = 0; j < 2; j++) {
                uint byte = blk[j], col = 2 * lane + uint(j);
                for (int k = 0; k < digits; k++) {
                    int v = bn_code(a.layout, byte, uint(k)) - 1;
                    for (int t = 0; t < nt; t++) acc[r][t] += v * int(xs[t][uint(k) * 64 + col]);
                }
            }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup); // xs is rewritten next block
    }
    for (int r = 0; r < BN_MM_ROWS; r++)
        for (int t = 0; t < nt; t++) {
            int dot = simd_sum(acc[r][t]);
            if (lane == 0 && r0 + r < a.rows) y[(t0 + t) * a.rows + r0 + r] = float(dot) * a.scale / act_scale[t0 + t];
        }
}

// ---- RoPE and the KV cache -------------------------------------------------------

// Rotates token tg.x's query and key heads (HF's rotate-half: element i
// pairs with i + head_dim/2) with the CPU's cos/sin table, and stores its K
// and V rows in the cache at (seq, layer, kv head, pos), f32 or f16.
kernel void bn_rope_kv(constant bn_margs &a [[buffer(0)]], device const int *pos [[buffer(1)]],
                       device const int *seq [[buffer(2)]], device float *q [[buffer(3)]],
                       device float *k [[buffer(4)]], device const float *v [[buffer(5)]],
                       device const float *rope_cos [[buffer(6)]], device const float *rope_sin [[buffer(7)]],
                       device uchar *k_cache [[buffer(8)]], device uchar *v_cache [[buffer(9)]],
                       uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                       uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    uint t = tg.x, hd = uint(a.head_dim), half_dim = hd / 2, p = uint(pos[t]);
    uint q_dim = uint(a.n_heads) * hd, kv_dim = uint(a.n_kv_heads) * hd;
    device const float *cs = rope_cos + p * half_dim, *sn = rope_sin + p * half_dim;
    for (uint e = tid; e < uint(a.n_heads + a.n_kv_heads) * half_dim; e += BN_ROW_THREADS) {
        uint h = e / half_dim, i = e % half_dim;
        bool is_k = h >= uint(a.n_heads);
        device float *row = is_k ? k + t * kv_dim + (h - uint(a.n_heads)) * hd : q + t * q_dim + h * hd;
        float x1 = row[i], x2 = row[i + half_dim];
        float y1 = x1 * cs[i] - x2 * sn[i], y2 = x2 * cs[i] + x1 * sn[i];
        row[i] = y1;
        row[i + half_dim] = y2;
        if (is_k) {
            uint kh = h - uint(a.n_heads);
            uint at = (((uint(seq[t]) * uint(a.n_layers) + uint(a.layer)) * uint(a.n_kv_heads) + kh) * uint(a.n_ctx) + p) * hd;
            device const float *vr = v + t * kv_dim + kh * hd;
            if (a.kv_f16) {
                device half *kc = (device half *)k_cache + at, *vc = (device half *)v_cache + at;
                kc[i] = half(y1);
                kc[i + half_dim] = half(y2);
                vc[i] = half(vr[i]);
                vc[i + half_dim] = half(vr[i + half_dim]);
            } else {
                device float *kc = (device float *)k_cache + at, *vc = (device float *)v_cache + at;
                kc[i] = y1;
                kc[i + half_dim] = y2;
                vc[i] = vr[i];
                vc[i + half_dim] = vr[i + half_dim];
            }
        }
    }
}

// ---- attention ---------------------------------------------------------------------

// Causal attention of query head tg.x of token tg.y over positions 0..pos of
// its sequence, reading the K/V head of its group (GQA). Each simdgroup
// takes every BN_NSG-th key with an online softmax (running max m, sum l and
// weighted sum o, o spread over the lanes); the simdgroups' parts are then
// merged through threadgroup memory.
kernel void bn_attention(constant bn_margs &a [[buffer(0)]], device const int *pos [[buffer(1)]],
                         device const int *seq [[buffer(2)]], device const float *q [[buffer(3)]],
                         device const uchar *k_cache [[buffer(4)]], device const uchar *v_cache [[buffer(5)]],
                         device float *out [[buffer(6)]],
                         uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                         uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float part_m[BN_NSG], part_l[BN_NSG], part_o[BN_NSG][BN_HD_MAX];
    const uint per_lane = BN_HD_MAX / BN_SIMD;
    uint h = tg.x, t = tg.y, hd = uint(a.head_dim), kh = h / uint(a.n_heads / a.n_kv_heads);
    uint n_keys = uint(pos[t]) + 1;
    uint head = ((uint(seq[t]) * uint(a.n_layers) + uint(a.layer)) * uint(a.n_kv_heads) + kh) * uint(a.n_ctx) * hd;
    float scale = 1.0f / sqrt(float(hd)), m = -INFINITY, l = 0.0f, qv[per_lane], o[per_lane];
    device const float *qh = q + (t * uint(a.n_heads) + h) * hd;
    for (uint j = 0; j < per_lane; j++) {
        uint d = lane + j * BN_SIMD;
        qv[j] = d < hd ? qh[d] : 0.0f;
        o[j] = 0.0f;
    }
    for (uint p = sg; p < n_keys; p += BN_NSG) {
        uint row = head + p * hd;
        float dot = 0.0f, s, m_new, corr, e;
        for (uint j = 0; j < per_lane; j++) {
            uint d = lane + j * BN_SIMD;
            if (d < hd) dot += qv[j] * (a.kv_f16 ? float(((device const half *)k_cache)[row + d]) : ((device const float *)k_cache)[row + d]);
        }
        s = simd_sum(dot) * scale;
        m_new = max(m, s);
        corr = exp(m - m_new);
        e = exp(s - m_new);
        l = l * corr + e;
        for (uint j = 0; j < per_lane; j++) {
            uint d = lane + j * BN_SIMD;
            float vv = d < hd ? (a.kv_f16 ? float(((device const half *)v_cache)[row + d]) : ((device const float *)v_cache)[row + d]) : 0.0f;
            o[j] = o[j] * corr + e * vv;
        }
        m = m_new;
    }
    if (lane == 0) {
        part_m[sg] = m;
        part_l[sg] = l;
    }
    for (uint j = 0; j < per_lane; j++) part_o[sg][lane + j * BN_SIMD] = o[j];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float mx = -INFINITY, sum = 0.0f;
    for (uint g = 0; g < BN_NSG; g++) mx = max(mx, part_m[g]);
    for (uint g = 0; g < BN_NSG; g++) sum += part_l[g] * exp(part_m[g] - mx);
    for (uint d = tid; d < hd; d += BN_SIMD * BN_NSG) {
        float acc = 0.0f;
        for (uint g = 0; g < BN_NSG; g++) acc += part_o[g][d] * exp(part_m[g] - mx);
        out[(t * uint(a.n_heads) + h) * hd + d] = acc / sum;
    }
}

// ---- float matrix x float activations (the lm_head) ---------------------------------

// logits[o * rows + r] = sum_c M[r][c] * x[row_token[o]][c] (times the int8
// row scale), for the n_tokens output rows o. A threadgroup takes BN_NSG
// groups of 6 rows and BN_FM_TOKENS outputs; the outputs' activations come
// through threadgroup memory BN_FM_COLS columns at a time, and each
// simdgroup's lanes take every 32nd column of its 6 rows.
kernel void bn_fmatmul(constant bn_margs &a [[buffer(0)]], device const uchar *m [[buffer(1)]],
                       device const float *row_scale [[buffer(2)]], device const float *x [[buffer(3)]],
                       device const int *row_token [[buffer(4)]], device float *logits [[buffer(5)]],
                       uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                       uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
    threadgroup float xs[BN_FM_TOKENS][BN_FM_COLS];
    int o0 = int(tg.y) * BN_FM_TOKENS, nt = min(a.n_tokens - o0, BN_FM_TOKENS);
    int r0 = (int(tg.x) * BN_NSG + int(sg)) * BN_FM_GROUP;
    float acc[BN_FM_GROUP][BN_FM_TOKENS];
    for (int r = 0; r < BN_FM_GROUP; r++)
        for (int t = 0; t < BN_FM_TOKENS; t++) acc[r][t] = 0.0f;
    for (int c0 = 0; c0 < a.cols; c0 += BN_FM_COLS) {
        for (int e = int(tid); e < BN_FM_TOKENS * BN_FM_COLS; e += BN_SIMD * BN_NSG) {
            int t = e / BN_FM_COLS, c = c0 + e % BN_FM_COLS;
            xs[t][e % BN_FM_COLS] = t < nt && c < a.cols ? x[row_token[o0 + t] * a.cols + c] : 0.0f;
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (int r = 0; r < BN_FM_GROUP; r++) {
            if (r0 + r >= a.rows) break;
            for (int c = int(lane); c < BN_FM_COLS && c0 + c < a.cols; c += BN_SIMD) {
                float wv = bn_fmat_at(m, a.ftype, a.tiled, a.cols, uint(r0 + r), uint(c0 + c));
                for (int t = 0; t < nt; t++) acc[r][t] += wv * xs[t][c];
            }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    for (int r = 0; r < BN_FM_GROUP; r++)
        for (int t = 0; t < nt; t++) {
            float dot = simd_sum(acc[r][t]);
            if (lane == 0 && r0 + r < a.rows)
                logits[(o0 + t) * a.rows + r0 + r] = a.ftype == 3 ? dot * row_scale[r0 + r] : dot;
        }
}
