/* bitnet_metal.m - bitnet.h's forward pass on Apple GPUs, through Metal.

   Build it into a program that uses bitnet.h (one of its C files defines
   BITNET_IMPLEMENTATION as usual; this file only includes the header):

       clang -O2 -fobjc-arc main.c bitnet_metal.m -framework Metal -framework Foundation

   and give contexts the backend (bitnet.h, backend.h):

       bn_backend *gpu;
       if (bn_metal_backend_new(&gpu, &err) != BN_OK) ... err.msg says why
       bn_context_params cp = bn_context_default_params();
       cp.backend = gpu;
       bn_context_new(&ctx, model, &cp, &err);   then bn_forward / bn_eval / generation as usual
       ...
       bn_context_free(ctx); bn_metal_backend_free(gpu);

   What runs where: the whole forward of a batch is one command buffer
   (embedding lookup, per layer RMSNorm + int8 quantization, the ternary
   GEMV/GEMM with exact integer sums, RoPE and the KV store, attention over
   the cache, the FFN, the final norm and the lm_head). The GPU reads the
   model's packed weights, float matrices and the context's KV cache where
   the CPU has them (unified memory: newBufferWithBytesNoCopy over their
   page-aligned blocks); small tables (norm weights, RoPE) are copied once.
   bn_seq_copy / truncate / reset and KV save/restore work on the same memory
   between calls. The kernels are in src/metal/bitnet.metal; amalgamate.py
   copies them below as a string compiled at run time (fast math off: the
   results follow the CPU path's IEEE arithmetic).

   Compiles with or without ARC (-fobjc-arc): the tests build it on Linux
   with GNUstep, whose runtime has no ARC, against a stand-in of the Metal
   API (tests/metal). docs/metal.md says what was run where. */
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bitnet.h"

#if __has_feature(objc_arc)
/* an object handed to C as a void * keeps one reference, dropped by BN__MTL_DROP_VOID */
#define BN__MTL_RELEASE(x) ((void)0)
#define BN__MTL_TO_VOID(x) ((__bridge_retained void *)(x))
#define BN__MTL_FROM_VOID(T, p) ((__bridge T)(p))
#define BN__MTL_DROP_VOID(p) ((void)(__bridge_transfer id)(p))
#else /* manual reference counting: what alloc/new returned is released by hand */
#define BN__MTL_RELEASE(x) [(x) release]
#define BN__MTL_TO_VOID(x) ((void *)[(x) retain])
#define BN__MTL_FROM_VOID(T, p) ((T)(p))
#define BN__MTL_DROP_VOID(p) [(id)(p) release]
#endif

/* Buffers over the CPU's memory are whole pages of Apple silicon (16 KB;
   also whole pages of an Intel Mac). */
#define BN__MTL_PAGE 16384

/* ---- BEGIN GENERATED: src/metal/bitnet.metal (amalgamate.py copies it here; edit that file) ---- */
/* the kernels' arguments (buffer 0), as bitnet.metal declares them */
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
typedef struct bn_margs bn_margs;

/* src/metal/bitnet.metal, line by line */
static const char *const bn__metal_source[] = {
    "// bitnet.metal - the Metal Shading Language kernels of bitnet_metal.m.\n",
    "//\n",
    "// amalgamate.py copies this file, line for line, into bitnet_metal.m as a\n",
    "// string that the host compiles at run time (newLibraryWithSource), so a\n",
    "// compile error's line number is a line of this file. The tests compile the\n",
    "// same text as C++ (tests/metal/metal_stdlib emulates the language and runs\n",
    "// each threadgroup's threads for real) and check every kernel against the\n",
    "// scalar reference in bitnet.h.\n",
    "//\n",
    "// Rules that keep both true: threadgroup memory is declared at kernel scope\n",
    "// only (never a `threadgroup` pointer), arguments come as buffers 0..n-1 then\n",
    "// the four thread-position attributes in the order below, and every\n",
    "// threadgroup_barrier and simd_* call is reached by all threads of the group\n",
    "// (uniform control flow).\n",
    "//\n",
    "// The numbers follow bitnet.h's CPU path: activations are quantized per\n",
    "// token to int8 (a = 127 / max(max|x|, 1e-5), round half to even), the\n",
    "// ternary dot products are exact int32 sums, y = dot * scale / a; norms,\n",
    "// RoPE, attention and the lm_head are float (their sums in another order\n",
    "// than the CPU's, so equal within rounding).\n",
    "\n",
    "#include <metal_stdlib>\n",
    "using namespace metal;\n",
    "\n",
    "// The arguments of every kernel (buffer 0). The host fills the same struct\n",
    "// (bn_margs in bitnet_metal.m): 4-byte fields only, so both agree on its layout.\n",
    "struct bn_margs {\n",
    "    int n_tokens;    // tokens (rows of activations) in this dispatch\n",
    "    int rows;        // output features of a matrix; vocab rows of the lm_head\n",
    "    int cols;        // input features\n",
    "    int layout;      // ternary layout: 1 = I2 (256 weights a block), 2 = TQ1 (320)\n",
    "    float scale;     // the ternary matrix's weight scale\n",
    "    int ftype;       // float matrix element type: 0 f32, 1 bf16, 2 f16, 3 int8\n",
    "    int tiled;       // float matrix in bitnet.h's tiled layout (6-row groups, 16-column blocks)\n",
    "    int add;         // row kernel: 1 = x += add (the residual stream), 2 = x = relu(x)^2 * add, 3 = silu(x) * add\n",
    "    int norm;        // row kernel: 1 = RMSNorm with weight w\n",
    "    int quant;       // row kernel: 1 = quantize to int8 with a per-row scale\n",
    "    float eps;       // RMSNorm epsilon\n",
    "    int n_heads, n_kv_heads, head_dim, n_ctx, n_layers, layer, kv_f16;\n",
    "};\n",
    "\n",
    "#define BN_SIMD 32         // threads in a simdgroup (Apple GPUs)\n",
    "#define BN_ROW_THREADS 256 // threads of the row and embedding kernels\n",
    "#define BN_NSG 4           // simdgroups of the matrix and attention kernels\n",
    "#define BN_MM_ROWS 2       // ternary rows per simdgroup\n",
    "#define BN_MM_TOKENS 8     // tokens per threadgroup (the activation tile)\n",
    "#define BN_FM_TOKENS 8     // tokens per threadgroup of the lm_head\n",
    "#define BN_FM_COLS 256     // columns of the lm_head's activation tile\n",
    "#define BN_FM_GROUP 6      // rows of a tiled float matrix's group (BN_FMAT_TILE_ROWS)\n",
    "#define BN_FM_BLOCK 16     // columns of its blocks (BN_FMAT_TILE_COLS)\n",
    "#define BN_HD_MAX 256      // largest head_dim the attention kernel takes\n",
    "\n",
    "// ---- float matrices (embeddings, lm_head) ------------------------------------\n",
    "\n",
    "// The position of column j of a 16-column block: bf16 blocks interleave the\n",
    "// two halves (bitnet.h's bn__ftile_pos).\n",
    "static uint bn_tile_pos(int ftype, uint j) {\n",
    "    if (ftype != 1) return j;\n",
    "    return j < 8 ? 2 * j : 2 * (j - 8) + 1;\n",
    "}\n",
    "\n",
    "// Element (r, c) of a float matrix, without the int8 row scale.\n",
    "static float bn_fmat_at(device const uchar *data, int ftype, int tiled, int cols, uint r, uint c) {\n",
    "    uint idx;\n",
    "    if (tiled) {\n",
    "        uint ncols = (uint(cols) + BN_FM_BLOCK - 1) / BN_FM_BLOCK * BN_FM_BLOCK;\n",
    "        idx = (r / BN_FM_GROUP) * BN_FM_GROUP * ncols + (c / BN_FM_BLOCK) * BN_FM_GROUP * BN_FM_BLOCK +\n",
    "              (r % BN_FM_GROUP) * BN_FM_BLOCK + bn_tile_pos(ftype, c % BN_FM_BLOCK);\n",
    "    } else {\n",
    "        idx = r * uint(cols) + c;\n",
    "    }\n",
    "    if (ftype == 0) return ((device const float *)data)[idx];\n",
    "    if (ftype == 1) return as_type<float>(uint(((device const ushort *)data)[idx]) << 16);\n",
    "    if (ftype == 2) return float(((device const half *)data)[idx]);\n",
    "    return float(((device const char *)data)[idx]);\n",
    "}\n",
    "\n",
    "// x[t] = embed[token[t]]: one threadgroup per (column range, token).\n",
    "kernel void bn_embed(constant bn_margs &a [[buffer(0)]], device const int *token [[buffer(1)]],\n",
    "                     device const uchar *embed [[buffer(2)]], device const float *row_scale [[buffer(3)]],\n",
    "                     device float *x [[buffer(4)]],\n",
    "                     uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],\n",
    "                     uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {\n",
    "    uint c = tg.x * BN_ROW_THREADS + tid, t = tg.y;\n",
    "    if (c >= uint(a.cols)) return;\n",
    "    uint r = uint(token[t]);\n",
    "    float w = bn_fmat_at(embed, a.ftype, a.tiled, a.cols, r, c);\n",
    "    x[t * uint(a.cols) + c] = a.ftype == 3 ? w * row_scale[r] : w;\n",
    "}\n",
    "\n",
    "// ---- the row kernel: residual add / gated activation, RMSNorm, int8 quantization\n",
    "\n",
    "// RMSNorm's sum of squares as a pair of floats (hi + lo, about 48 bits): the\n",
    "// CPU path adds the squares in double, and an int8 activation that lands\n",
    "// near a rounding tie after the norm flips with the last bit of the mean.\n",
    "// With the pair, mean(x^2) rounds to the float the CPU's double gives but\n",
    "// in the rarest cases, so the normed rows, and everything quantized from\n",
    "// them, are the CPU's to the bit.\n",
    "struct bn_f2 {\n",
    "    float hi, lo;\n",
    "};\n",
    "\n",
    "// a + b exactly, as a float and the rounding error (Knuth's two-sum)\n",
    "static bn_f2 bn_two_sum(float a, float b) {\n",
    "    bn_f2 r;\n",
    "    float bb;\n",
    "    r.hi = a + b;\n",
    "    bb = r.hi - a;\n",
    "    r.lo = (a - (r.hi - bb)) + (b - bb);\n",
    "    return r;\n",
    "}\n",
    "\n",
    "static bn_f2 bn_f2_add(bn_f2 a, bn_f2 b) {\n",
    "    bn_f2 s = bn_two_sum(a.hi, b.hi);\n",
    "    float lo = s.lo + (a.lo + b.lo), hi = s.hi + lo;\n",
    "    s.lo = lo - (hi - s.hi);\n",
    "    s.hi = hi;\n",
    "    return s;\n",
    "}\n",
    "\n",
    "// x^2 added to a pair: the square is exact as x * x plus fma's rounding error.\n",
    "static bn_f2 bn_f2_add_square(bn_f2 a, float x) {\n",
    "    bn_f2 sq;\n",
    "    sq.hi = x * x;\n",
    "    sq.lo = fma(x, x, -sq.hi);\n",
    "    return bn_f2_add(a, sq);\n",
    "}\n",
    "\n",
    "// (a.hi + a.lo) / n rounded to float (one correction step of the quotient).\n",
    "static float bn_f2_div(bn_f2 a, float n) {\n",
    "    float q = a.hi / n, r = fma(-q, n, a.hi) + a.lo;\n",
    "    return q + r / n;\n",
    "}\n",
    "\n",
    "// One threadgroup per token row of n = cols floats; each thread takes\n",
    "// elements tid, tid + 256, ... in every stage, so a stage reads only what\n",
    "// the same thread wrote before it.\n",
    "//   v = x (+ add, or act(x) * add)     (add = 1 also stores v back into x)\n",
    "//   v = w * (v * 1 / sqrt(mean(v^2) + eps))   if norm\n",
    "//   y = v;  xq = round(v * s), act_scale = s   if quant\n",
    "kernel void bn_rows(constant bn_margs &a [[buffer(0)]], device float *x [[buffer(1)]],\n",
    "                    device const float *add [[buffer(2)]], device const float *w [[buffer(3)]],\n",
    "                    device float *y [[buffer(4)]], device char *xq [[buffer(5)]],\n",
    "                    device float *act_scale [[buffer(6)]],\n",
    "                    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],\n",
    "                    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {\n",
    "    threadgroup float partial[BN_ROW_THREADS / BN_SIMD], partial_lo[BN_ROW_THREADS / BN_SIMD];\n",
    "    uint n = uint(a.cols), base = tg.x * n, i, k;\n",
    "    float amax = 0.0f;\n",
    "    bn_f2 ss;\n",
    "    ss.hi = 0.0f;\n",
    "    ss.lo = 0.0f;\n",
    "    for (i = tid; i < n; i += BN_ROW_THREADS) {\n",
    "        float v = x[base + i];\n",
    "        if (a.add == 1) {\n",
    "            v = v + add[base + i];\n",
    "            x[base + i] = v;\n",
    "        } else if (a.add == 2) {\n",
    "            float r = v > 0.0f ? v * v : 0.0f;\n",
    "            v = r * add[base + i];\n",
    "        } else if (a.add == 3) {\n",
    "            v = v / (1.0f + exp(-v)) * add[base + i];\n",
    "        }\n",
    "        y[base + i] = v;\n",
    "        ss = bn_f2_add_square(ss, v);\n",
    "    }\n",
    "    if (a.norm) {\n",
    "        bn_f2 total;\n",
    "        float inv;\n",
    "        for (ushort m = BN_SIMD / 2; m > 0; m /= 2) { // the lanes' pairs, added as pairs\n",
    "            bn_f2 other;\n",
    "            other.hi = simd_shuffle_xor(ss.hi, m);\n",
    "            other.lo = simd_shuffle_xor(ss.lo, m);\n",
    "            ss = bn_f2_add(ss, other);\n",
    "        }\n",
    "        if (lane == 0) {\n",
    "            partial[sg] = ss.hi;\n",
    "            partial_lo[sg] = ss.lo;\n",
    "        }\n",
    "        threadgroup_barrier(mem_flags::mem_threadgroup);\n",
    "        total.hi = 0.0f;\n",
    "        total.lo = 0.0f;\n",
    "        for (k = 0; k < BN_ROW_THREADS / BN_SIMD; k++) {\n",
    "            bn_f2 p;\n",
    "            p.hi = partial[k];\n",
    "            p.lo = partial_lo[k];\n",
    "            total = bn_f2_add(total, p);\n",
    "        }\n",
    "        inv = 1.0f / sqrt(bn_f2_div(total, float(n)) + a.eps); // the CPU's 1 / sqrtf((float)(ss / n) + eps)\n",
    "        for (i = tid; i < n; i += BN_ROW_THREADS) y[base + i] = w[i] * (y[base + i] * inv);\n",
    "        threadgroup_barrier(mem_flags::mem_threadgroup); // partial is reused below\n",
    "    }\n",
    "    if (a.quant) {\n",
    "        float s;\n",
    "        for (i = tid; i < n; i += BN_ROW_THREADS) amax = max(amax, fabs(y[base + i]));\n",
    "        amax = simd_max(amax);\n",
    "        if (lane == 0) partial[sg] = amax;\n",
    "        threadgroup_barrier(mem_flags::mem_threadgroup);\n",
    "        for (k = 0; k < BN_ROW_THREADS / BN_SIMD; k++) amax = max(amax, partial[k]);\n",
    "        s = 127.0f / max(amax, 1e-5f);\n",
    "        for (i = tid; i < n; i += BN_ROW_THREADS) {\n",
    "            float q = rint(y[base + i] * s); // half to even, as torch.round\n",
    "            xq[base + i] = char(q > 127.0f ? 127.0f : q < -128.0f ? -128.0f : q);\n",
    "        }\n",
    "        if (tid == 0) act_scale[tg.x] = s;\n",
    "    }\n",
    "}\n",
    "\n",
    "// ---- ternary matrix x int8 activations -----------------------------------------\n",
    "\n",
    "// The code (weight + 1) of digit k of a packed byte: I2 holds 4 digits of 2\n",
    "// bits, TQ1 5 base-3 digits as q = ceil(v * 256 / 243).\n",
    "static int bn_code(int layout, uint byte, uint k) {\n",
    "    if (layout == 1) return int((byte >> (2 * k)) & 3);\n",
    "    uint p = 1;\n",
    "    for (uint j = 0; j < k; j++) p *= 3;\n",
    "    return int((((byte * p) & 255) * 3) >> 8);\n",
    "}\n",
    "\n",
    "// y[t * rows + r] = (sum_c W[r][c] * xq[t][c]) * scale / act_scale[t].\n",
    "// A threadgroup takes BN_NSG * BN_MM_ROWS rows and BN_MM_TOKENS tokens; for\n",
    "// each 64-byte block of its rows, the threads first copy the tokens'\n",
    "// activations of that block into threadgroup memory (zeros past cols), then\n",
    "// each simdgroup's lanes take two bytes of each of its rows' blocks (8 or 10\n",
    "// weights) against every token. The sums are exact int32; simd_sum adds the\n",
    "// lanes' parts.\n",
    "kernel void bn_tmatmul(constant bn_margs &a [[buffer(0)]], device const uchar *w [[buffer(1)]],\n",
    "                       device const char *xq [[buffer(2)]], device const float *act_scale [[buffer(3)]],\n",
    "                       device float *y [[buffer(4)]],\n",
    "                       uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],\n",
    "                       uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {\n",
    "    threadgroup char xs[BN_MM_TOKENS][320];\n",
    "    int bw = a.layout == 1 ? 256 : 320, digits = a.layout == 1 ? 4 : 5;\n",
    "    int nblocks = (a.cols + bw - 1) / bw, t0 = int(tg.y) * BN_MM_TOKENS, nt = min(a.n_tokens - t0, BN_MM_TOKENS);\n",
    "    int r0 = (int(tg.x) * BN_NSG + int(sg)) * BN_MM_ROWS;\n",
    "    uint row_bytes = uint(nblocks) * 64;\n",
    "    int acc[BN_MM_ROWS][BN_MM_TOKENS];\n",
    "    for (int r = 0; r < BN_MM_ROWS; r++)\n",
    "        for (int t = 0; t < BN_MM_TOKENS; t++) acc[r][t] = 0;\n",
    "    for (int b = 0; b < nblocks; b++) {\n",
    "        for (int e = int(tid); e < BN_MM_TOKENS * bw; e += BN_SIMD * BN_NSG) {\n",
    "            int t = e / bw, c = b * bw + e % bw;\n",
    "            xs[t][e % bw] = t < nt && c < a.cols ? xq[(t0 + t) * a.cols + c] : char(0);\n",
    "        }\n",
    "        threadgroup_barrier(mem_flags::mem_threadgroup);\n",
    "        for (int r = 0; r < BN_MM_ROWS; r++) {\n",
    "            if (r0 + r >= a.rows) break;\n",
    "            device const uchar *blk = w + uint(r0 + r) * row_bytes + uint(b) * 64 + 2 * lane;\n",
    "            for (int j = 0; j < 2; j++) {\n",
    "                uint byte = blk[j], col = 2 * lane + uint(j);\n",
    "                for (int k = 0; k < digits; k++) {\n",
    "                    int v = bn_code(a.layout, byte, uint(k)) - 1;\n",
    "                    for (int t = 0; t < nt; t++) acc[r][t] += v * int(xs[t][uint(k) * 64 + col]);\n",
    "                }\n",
    "            }\n",
    "        }\n",
    "        threadgroup_barrier(mem_flags::mem_threadgroup); // xs is rewritten next block\n",
    "    }\n",
    "    for (int r = 0; r < BN_MM_ROWS; r++)\n",
    "        for (int t = 0; t < nt; t++) {\n",
    "            int dot = simd_sum(acc[r][t]);\n",
    "            if (lane == 0 && r0 + r < a.rows) y[(t0 + t) * a.rows + r0 + r] = float(dot) * a.scale / act_scale[t0 + t];\n",
    "        }\n",
    "}\n",
    "\n",
    "// ---- RoPE and the KV cache -------------------------------------------------------\n",
    "\n",
    "// Rotates token tg.x's query and key heads (HF's rotate-half: element i\n",
    "// pairs with i + head_dim/2) with the CPU's cos/sin table, and stores its K\n",
    "// and V rows in the cache at (seq, layer, kv head, pos), f32 or f16.\n",
    "kernel void bn_rope_kv(constant bn_margs &a [[buffer(0)]], device const int *pos [[buffer(1)]],\n",
    "                       device const int *seq [[buffer(2)]], device float *q [[buffer(3)]],\n",
    "                       device float *k [[buffer(4)]], device const float *v [[buffer(5)]],\n",
    "                       device const float *rope_cos [[buffer(6)]], device const float *rope_sin [[buffer(7)]],\n",
    "                       device uchar *k_cache [[buffer(8)]], device uchar *v_cache [[buffer(9)]],\n",
    "                       uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],\n",
    "                       uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {\n",
    "    uint t = tg.x, hd = uint(a.head_dim), half_dim = hd / 2, p = uint(pos[t]);\n",
    "    uint q_dim = uint(a.n_heads) * hd, kv_dim = uint(a.n_kv_heads) * hd;\n",
    "    device const float *cs = rope_cos + p * half_dim, *sn = rope_sin + p * half_dim;\n",
    "    for (uint e = tid; e < uint(a.n_heads + a.n_kv_heads) * half_dim; e += BN_ROW_THREADS) {\n",
    "        uint h = e / half_dim, i = e % half_dim;\n",
    "        bool is_k = h >= uint(a.n_heads);\n",
    "        device float *row = is_k ? k + t * kv_dim + (h - uint(a.n_heads)) * hd : q + t * q_dim + h * hd;\n",
    "        float x1 = row[i], x2 = row[i + half_dim];\n",
    "        float y1 = x1 * cs[i] - x2 * sn[i], y2 = x2 * cs[i] + x1 * sn[i];\n",
    "        row[i] = y1;\n",
    "        row[i + half_dim] = y2;\n",
    "        if (is_k) {\n",
    "            uint kh = h - uint(a.n_heads);\n",
    "            uint at = (((uint(seq[t]) * uint(a.n_layers) + uint(a.layer)) * uint(a.n_kv_heads) + kh) * uint(a.n_ctx) + p) * hd;\n",
    "            device const float *vr = v + t * kv_dim + kh * hd;\n",
    "            if (a.kv_f16) {\n",
    "                device half *kc = (device half *)k_cache + at, *vc = (device half *)v_cache + at;\n",
    "                kc[i] = half(y1);\n",
    "                kc[i + half_dim] = half(y2);\n",
    "                vc[i] = half(vr[i]);\n",
    "                vc[i + half_dim] = half(vr[i + half_dim]);\n",
    "            } else {\n",
    "                device float *kc = (device float *)k_cache + at, *vc = (device float *)v_cache + at;\n",
    "                kc[i] = y1;\n",
    "                kc[i + half_dim] = y2;\n",
    "                vc[i] = vr[i];\n",
    "                vc[i + half_dim] = vr[i + half_dim];\n",
    "            }\n",
    "        }\n",
    "    }\n",
    "}\n",
    "\n",
    "// ---- attention ---------------------------------------------------------------------\n",
    "\n",
    "// Causal attention of query head tg.x of token tg.y over positions 0..pos of\n",
    "// its sequence, reading the K/V head of its group (GQA). Each simdgroup\n",
    "// takes every BN_NSG-th key with an online softmax (running max m, sum l and\n",
    "// weighted sum o, o spread over the lanes); the simdgroups' parts are then\n",
    "// merged through threadgroup memory.\n",
    "kernel void bn_attention(constant bn_margs &a [[buffer(0)]], device const int *pos [[buffer(1)]],\n",
    "                         device const int *seq [[buffer(2)]], device const float *q [[buffer(3)]],\n",
    "                         device const uchar *k_cache [[buffer(4)]], device const uchar *v_cache [[buffer(5)]],\n",
    "                         device float *out [[buffer(6)]],\n",
    "                         uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],\n",
    "                         uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {\n",
    "    threadgroup float part_m[BN_NSG], part_l[BN_NSG], part_o[BN_NSG][BN_HD_MAX];\n",
    "    const uint per_lane = BN_HD_MAX / BN_SIMD;\n",
    "    uint h = tg.x, t = tg.y, hd = uint(a.head_dim), kh = h / uint(a.n_heads / a.n_kv_heads);\n",
    "    uint n_keys = uint(pos[t]) + 1;\n",
    "    uint head = ((uint(seq[t]) * uint(a.n_layers) + uint(a.layer)) * uint(a.n_kv_heads) + kh) * uint(a.n_ctx) * hd;\n",
    "    float scale = 1.0f / sqrt(float(hd)), m = -INFINITY, l = 0.0f, qv[per_lane], o[per_lane];\n",
    "    device const float *qh = q + (t * uint(a.n_heads) + h) * hd;\n",
    "    for (uint j = 0; j < per_lane; j++) {\n",
    "        uint d = lane + j * BN_SIMD;\n",
    "        qv[j] = d < hd ? qh[d] : 0.0f;\n",
    "        o[j] = 0.0f;\n",
    "    }\n",
    "    for (uint p = sg; p < n_keys; p += BN_NSG) {\n",
    "        uint row = head + p * hd;\n",
    "        float dot = 0.0f, s, m_new, corr, e;\n",
    "        for (uint j = 0; j < per_lane; j++) {\n",
    "            uint d = lane + j * BN_SIMD;\n",
    "            if (d < hd) dot += qv[j] * (a.kv_f16 ? float(((device const half *)k_cache)[row + d]) : ((device const float *)k_cache)[row + d]);\n",
    "        }\n",
    "        s = simd_sum(dot) * scale;\n",
    "        m_new = max(m, s);\n",
    "        corr = exp(m - m_new);\n",
    "        e = exp(s - m_new);\n",
    "        l = l * corr + e;\n",
    "        for (uint j = 0; j < per_lane; j++) {\n",
    "            uint d = lane + j * BN_SIMD;\n",
    "            float vv = d < hd ? (a.kv_f16 ? float(((device const half *)v_cache)[row + d]) : ((device const float *)v_cache)[row + d]) : 0.0f;\n",
    "            o[j] = o[j] * corr + e * vv;\n",
    "        }\n",
    "        m = m_new;\n",
    "    }\n",
    "    if (lane == 0) {\n",
    "        part_m[sg] = m;\n",
    "        part_l[sg] = l;\n",
    "    }\n",
    "    for (uint j = 0; j < per_lane; j++) part_o[sg][lane + j * BN_SIMD] = o[j];\n",
    "    threadgroup_barrier(mem_flags::mem_threadgroup);\n",
    "    float mx = -INFINITY, sum = 0.0f;\n",
    "    for (uint g = 0; g < BN_NSG; g++) mx = max(mx, part_m[g]);\n",
    "    for (uint g = 0; g < BN_NSG; g++) sum += part_l[g] * exp(part_m[g] - mx);\n",
    "    for (uint d = tid; d < hd; d += BN_SIMD * BN_NSG) {\n",
    "        float acc = 0.0f;\n",
    "        for (uint g = 0; g < BN_NSG; g++) acc += part_o[g][d] * exp(part_m[g] - mx);\n",
    "        out[(t * uint(a.n_heads) + h) * hd + d] = acc / sum;\n",
    "    }\n",
    "}\n",
    "\n",
    "// ---- float matrix x float activations (the lm_head) ---------------------------------\n",
    "\n",
    "// logits[o * rows + r] = sum_c M[r][c] * x[row_token[o]][c] (times the int8\n",
    "// row scale), for the n_tokens output rows o. A threadgroup takes BN_NSG\n",
    "// groups of 6 rows and BN_FM_TOKENS outputs; the outputs' activations come\n",
    "// through threadgroup memory BN_FM_COLS columns at a time, and each\n",
    "// simdgroup's lanes take every 32nd column of its 6 rows.\n",
    "kernel void bn_fmatmul(constant bn_margs &a [[buffer(0)]], device const uchar *m [[buffer(1)]],\n",
    "                       device const float *row_scale [[buffer(2)]], device const float *x [[buffer(3)]],\n",
    "                       device const int *row_token [[buffer(4)]], device float *logits [[buffer(5)]],\n",
    "                       uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],\n",
    "                       uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {\n",
    "    threadgroup float xs[BN_FM_TOKENS][BN_FM_COLS];\n",
    "    int o0 = int(tg.y) * BN_FM_TOKENS, nt = min(a.n_tokens - o0, BN_FM_TOKENS);\n",
    "    int r0 = (int(tg.x) * BN_NSG + int(sg)) * BN_FM_GROUP;\n",
    "    float acc[BN_FM_GROUP][BN_FM_TOKENS];\n",
    "    for (int r = 0; r < BN_FM_GROUP; r++)\n",
    "        for (int t = 0; t < BN_FM_TOKENS; t++) acc[r][t] = 0.0f;\n",
    "    for (int c0 = 0; c0 < a.cols; c0 += BN_FM_COLS) {\n",
    "        for (int e = int(tid); e < BN_FM_TOKENS * BN_FM_COLS; e += BN_SIMD * BN_NSG) {\n",
    "            int t = e / BN_FM_COLS, c = c0 + e % BN_FM_COLS;\n",
    "            xs[t][e % BN_FM_COLS] = t < nt && c < a.cols ? x[row_token[o0 + t] * a.cols + c] : 0.0f;\n",
    "        }\n",
    "        threadgroup_barrier(mem_flags::mem_threadgroup);\n",
    "        for (int r = 0; r < BN_FM_GROUP; r++) {\n",
    "            if (r0 + r >= a.rows) break;\n",
    "            for (int c = int(lane); c < BN_FM_COLS && c0 + c < a.cols; c += BN_SIMD) {\n",
    "                float wv = bn_fmat_at(m, a.ftype, a.tiled, a.cols, uint(r0 + r), uint(c0 + c));\n",
    "                for (int t = 0; t < nt; t++) acc[r][t] += wv * xs[t][c];\n",
    "            }\n",
    "        }\n",
    "        threadgroup_barrier(mem_flags::mem_threadgroup);\n",
    "    }\n",
    "    for (int r = 0; r < BN_FM_GROUP; r++)\n",
    "        for (int t = 0; t < nt; t++) {\n",
    "            float dot = simd_sum(acc[r][t]);\n",
    "            if (lane == 0 && r0 + r < a.rows)\n",
    "                logits[(o0 + t) * a.rows + r0 + r] = a.ftype == 3 ? dot * row_scale[r0 + r] : dot;\n",
    "        }\n",
    "}\n",
};
/* ---- END GENERATED ---- */

enum { BN__K_EMBED, BN__K_ROWS, BN__K_TMATMUL, BN__K_ROPE_KV, BN__K_ATTENTION, BN__K_FMATMUL, BN__K_COUNT };
static const char *const bn__mtl_kernel_names[BN__K_COUNT] = {"bn_embed",     "bn_rows",      "bn_tmatmul",
                                                              "bn_rope_kv",   "bn_attention", "bn_fmatmul"};
/* threads per threadgroup of each kernel (bitnet.metal: BN_ROW_THREADS, BN_NSG * BN_SIMD) */
static const NSUInteger bn__mtl_kernel_threads[BN__K_COUNT] = {256, 256, 128, 256, 128, 128};

static bn_status bn__mtl_error(bn_error *err, bn_status s, const char *what, NSError *e) {
    const char *why = e ? [[e localizedDescription] UTF8String] : NULL;
    return bn_errorf(err, s, "Metal: %s%s%s", what, why ? ": " : "", why ? why : "");
}

/* ---- the device: compiled kernels, shared by every context ---------------- */

@interface BNMetalDevice : NSObject {
  @public
    id<MTLDevice> device;
    id<MTLCommandQueue> queue;
    id<MTLComputePipelineState> pipelines[BN__K_COUNT];
    char name[128];
}
@end

@implementation BNMetalDevice
#if !__has_feature(objc_arc)
- (void)dealloc {
    int k;
    for (k = 0; k < BN__K_COUNT; k++) [pipelines[k] release];
    [queue release];
    [device release];
    [super dealloc];
}
#endif
@end

/* The kernels' source as one string (owned by the caller). */
static NSString *bn__mtl_new_source(void) {
    size_t n = sizeof bn__metal_source / sizeof bn__metal_source[0], len = 0, i;
    NSMutableData *text;
    for (i = 0; i < n; i++) len += strlen(bn__metal_source[i]);
    text = [NSMutableData dataWithCapacity:len];
    for (i = 0; i < n; i++) [text appendBytes:bn__metal_source[i] length:strlen(bn__metal_source[i])];
    return [[NSString alloc] initWithData:text encoding:NSUTF8StringEncoding];
}

static bn_status bn__mtl_compile(BNMetalDevice *d, bn_error *err) {
    MTLCompileOptions *opts = [[MTLCompileOptions alloc] init];
    NSString *src = bn__mtl_new_source();
    NSError *e = nil;
    id<MTLLibrary> lib;
    int k;
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
    opts.fastMathEnabled = NO; /* IEEE division, sqrt and exp, as the CPU path (mathMode on macOS 15+) */
#pragma clang diagnostic pop
    lib = [d->device newLibraryWithSource:src options:opts error:&e];
    BN__MTL_RELEASE(opts);
    BN__MTL_RELEASE(src);
    if (!lib) return bn__mtl_error(err, BN_ERR_UNSUPPORTED, "the kernels (bitnet.metal) do not compile", e);
    for (k = 0; k < BN__K_COUNT; k++) {
        NSString *fname = [NSString stringWithUTF8String:bn__mtl_kernel_names[k]];
        id<MTLFunction> f = [lib newFunctionWithName:fname];
        if (!f) {
            BN__MTL_RELEASE(lib);
            return bn_errorf(err, BN_ERR_UNSUPPORTED, "Metal: kernel %s is missing from the library", bn__mtl_kernel_names[k]);
        }
        d->pipelines[k] = [d->device newComputePipelineStateWithFunction:f error:&e];
        BN__MTL_RELEASE(f);
        if (!d->pipelines[k]) {
            BN__MTL_RELEASE(lib);
            return bn__mtl_error(err, BN_ERR_UNSUPPORTED, "a compute pipeline could not be made", e);
        }
        if (d->pipelines[k].threadExecutionWidth != 32 ||
            d->pipelines[k].maxTotalThreadsPerThreadgroup < bn__mtl_kernel_threads[k]) {
            bn_errorf(err, BN_ERR_UNSUPPORTED,
                      "Metal: %s runs %lu-wide SIMD groups and at most %lu threads a threadgroup; the kernels need 32 and %lu",
                      bn__mtl_kernel_names[k], (unsigned long)d->pipelines[k].threadExecutionWidth,
                      (unsigned long)d->pipelines[k].maxTotalThreadsPerThreadgroup,
                      (unsigned long)bn__mtl_kernel_threads[k]);
            BN__MTL_RELEASE(lib);
            return BN_ERR_UNSUPPORTED;
        }
    }
    BN__MTL_RELEASE(lib);
    return BN_OK;
}

/* ---- a context's buffers ----------------------------------------------------- */

/* A place in a buffer: the memory of a weight or scratch array. */
typedef struct bn__mref {
    __unsafe_unretained id<MTLBuffer> buf;
    NSUInteger off;
} bn__mref;

typedef struct bn__mlayer {
    bn__mref attn_norm, ffn_norm, attn_sub_norm, ffn_sub_norm;
    bn__mref w[7]; /* q, k, v, o, gate, up, down */
    const bn_tmat *m[7];
} bn__mlayer;

@interface BNMetalContext : NSObject {
  @public
    BNMetalDevice *dev;
    const bn_model *model;
    bn_backend_view view;
    NSMutableArray *keep; /* owns every buffer below */
    bn__mref weights_block, kc, vc, rope_cos, rope_sin, final_norm, embed, embed_scale, head, head_scale;
    bn__mref tokens, pos, seq, row_token;
    bn__mref x, xn, xq, act_scale, q, k, v, att, gate, up, proj, logits;
    int logits_rows; /* rows the logits buffer holds */
    bn__mlayer *layers;
}
@end

@implementation BNMetalContext
- (void)dealloc {
    free(layers);
#if !__has_feature(objc_arc)
    [keep release];
    [dev release];
    [super dealloc];
#endif
}
@end

static bn__mref bn__mtl_keep(BNMetalContext *c, id<MTLBuffer> buf, NSUInteger off) {
    bn__mref r;
    r.buf = buf;
    r.off = off;
    if (buf) {
        [c->keep addObject:buf];
        BN__MTL_RELEASE(buf);
    }
    return r;
}

/* A shared-storage scratch buffer of n bytes. */
static bn__mref bn__mtl_scratch(BNMetalContext *c, size_t n) {
    return bn__mtl_keep(c, [c->dev->device newBufferWithLength:(n ? n : 4) options:MTLResourceStorageModeShared], 0);
}

/* CPU memory [p, p + n) for the GPU: the same memory when it lies in whole
   pages (page-aligned start; the allocation padded to whole pages, as
   bitnet.h's large blocks are), otherwise a copy. `copy_ok` 0 for memory both
   sides write (the KV cache). */
static bn__mref bn__mtl_wrap(BNMetalContext *c, const void *p, size_t n, int copy_ok) {
    size_t whole = (n + BN__MTL_PAGE - 1) / BN__MTL_PAGE * BN__MTL_PAGE;
    bn__mref r;
    memset(&r, 0, sizeof r);
    if ((uintptr_t)p % BN__MTL_PAGE == 0 && n >= BN__MTL_PAGE)
        return bn__mtl_keep(c, [c->dev->device newBufferWithBytesNoCopy:(void *)p length:whole
                                                                  options:MTLResourceStorageModeShared deallocator:nil], 0);
    if (!copy_ok) return r;
    return bn__mtl_keep(c, [c->dev->device newBufferWithBytes:p length:(n ? n : 4) options:MTLResourceStorageModeShared], 0);
}

/* A part of the weight block, or a copy of what lies outside it. */
static bn__mref bn__mtl_weight(BNMetalContext *c, const void *p, size_t n) {
    const uint8_t *base = c->view.weights, *q = (const uint8_t *)p;
    if (c->weights_block.buf && q >= base && q + n <= base + c->view.weights_bytes) {
        bn__mref r = c->weights_block;
        r.off = (NSUInteger)(q - base);
        return r;
    }
    return bn__mtl_wrap(c, p, n, 1);
}

static size_t bn__mtl_fmat_bytes(const bn_fmat *m) {
    size_t es = m->type == BN_FTYPE_F32 ? 4 : m->type == BN_FTYPE_I8 ? 1 : 2;
    if (!m->tiled) return (size_t)m->rows * m->cols * es;
    return ((size_t)m->rows + 5) / 6 * 6 * (((size_t)m->cols + 15) / 16 * 16) * es; /* BN_FMAT_TILE_ROWS/COLS */
}

static int bn__mtl_ok(const bn__mref *r) { return r->buf != nil; }

static bn_status bn__mtl_context_buffers(BNMetalContext *c, bn_error *err) {
    const bn_config *cf = c->view.config;
    size_t nb = (size_t)c->view.n_batch, hid = (size_t)cf->hidden_size, q_dim = (size_t)cf->n_heads * cf->head_dim,
           kv_dim = (size_t)cf->n_kv_heads * cf->head_dim, ffn = (size_t)cf->intermediate_size, half = cf->head_dim / 2;
    size_t wide = hid > q_dim ? hid : q_dim;
    int l, i, ok = 1;
    wide = wide > ffn ? wide : ffn;
    c->weights_block = bn__mtl_wrap(c, c->view.weights, c->view.weights_bytes, 0);
    c->kc = bn__mtl_wrap(c, c->view.k_cache, c->view.kv_bytes, 0);
    c->vc = bn__mtl_wrap(c, c->view.v_cache, c->view.kv_bytes, 0);
    if (!bn__mtl_ok(&c->kc) || !bn__mtl_ok(&c->vc))
        return bn_errorf(err, BN_ERR_NOMEM, "Metal: the KV cache (%lu bytes) could not be mapped for the GPU",
                         (unsigned long)c->view.kv_bytes);
    c->rope_cos = bn__mtl_wrap(c, c->view.rope_cos, sizeof(float) * (size_t)c->view.n_ctx * half, 1);
    c->rope_sin = bn__mtl_wrap(c, c->view.rope_sin, sizeof(float) * (size_t)c->view.n_ctx * half, 1);
    c->final_norm = bn__mtl_weight(c, c->view.final_norm, sizeof(float) * hid);
    c->embed = bn__mtl_weight(c, c->view.embed->data, bn__mtl_fmat_bytes(c->view.embed));
    c->head = c->view.lm_head->data == c->view.embed->data ? c->embed
                                                            : bn__mtl_weight(c, c->view.lm_head->data, bn__mtl_fmat_bytes(c->view.lm_head));
    /* int8 row scales, or a placeholder the kernels do not read */
    c->embed_scale = c->view.embed->row_scale ? bn__mtl_wrap(c, c->view.embed->row_scale, sizeof(float) * (size_t)cf->vocab_size, 1)
                                              : c->final_norm;
    c->head_scale = c->view.lm_head->row_scale ? bn__mtl_wrap(c, c->view.lm_head->row_scale, sizeof(float) * (size_t)cf->vocab_size, 1)
                                               : c->final_norm;
    ok &= bn__mtl_ok(&c->rope_cos) && bn__mtl_ok(&c->rope_sin) && bn__mtl_ok(&c->final_norm) && bn__mtl_ok(&c->embed) &&
          bn__mtl_ok(&c->head) && bn__mtl_ok(&c->embed_scale) && bn__mtl_ok(&c->head_scale);
    c->layers = (bn__mlayer *)calloc((size_t)cf->n_layers, sizeof(bn__mlayer));
    if (!c->layers) return bn_errorf(err, BN_ERR_NOMEM, "Metal: out of memory");
    for (l = 0; l < cf->n_layers && ok; l++) {
        bn_backend_layer L;
        bn__mlayer *ml = &c->layers[l];
        bn_backend_layer_get(c->model, l, &L);
        ml->m[0] = L.wq, ml->m[1] = L.wk, ml->m[2] = L.wv, ml->m[3] = L.wo;
        ml->m[4] = L.w_gate, ml->m[5] = L.w_up, ml->m[6] = L.w_down;
        ml->attn_norm = bn__mtl_weight(c, L.attn_norm, sizeof(float) * hid);
        ml->ffn_norm = bn__mtl_weight(c, L.ffn_norm, sizeof(float) * hid);
        ml->attn_sub_norm = L.attn_sub_norm ? bn__mtl_weight(c, L.attn_sub_norm, sizeof(float) * q_dim) : ml->attn_norm;
        ml->ffn_sub_norm = L.ffn_sub_norm ? bn__mtl_weight(c, L.ffn_sub_norm, sizeof(float) * ffn) : ml->ffn_norm;
        ok &= bn__mtl_ok(&ml->attn_norm) && bn__mtl_ok(&ml->ffn_norm) && bn__mtl_ok(&ml->attn_sub_norm) &&
              bn__mtl_ok(&ml->ffn_sub_norm);
        for (i = 0; i < 7; i++) {
            if (ml->m[i]->layout != BN_TLAYOUT_I2 && ml->m[i]->layout != BN_TLAYOUT_TQ1)
                return bn_errorf(err, BN_ERR_UNSUPPORTED, "Metal: ternary layout %d", (int)ml->m[i]->layout);
            ml->w[i] = bn__mtl_weight(c, ml->m[i]->data, ml->m[i]->nbytes);
            ok &= bn__mtl_ok(&ml->w[i]);
        }
    }
    c->tokens = bn__mtl_scratch(c, sizeof(int32_t) * nb);
    c->pos = bn__mtl_scratch(c, sizeof(int32_t) * nb);
    c->seq = bn__mtl_scratch(c, sizeof(int32_t) * nb);
    c->row_token = bn__mtl_scratch(c, sizeof(int32_t) * nb);
    c->x = bn__mtl_scratch(c, sizeof(float) * nb * hid);
    c->xn = bn__mtl_scratch(c, sizeof(float) * nb * wide);
    c->xq = bn__mtl_scratch(c, nb * wide);
    c->act_scale = bn__mtl_scratch(c, sizeof(float) * nb);
    c->q = bn__mtl_scratch(c, sizeof(float) * nb * q_dim);
    c->k = bn__mtl_scratch(c, sizeof(float) * nb * kv_dim);
    c->v = bn__mtl_scratch(c, sizeof(float) * nb * kv_dim);
    c->att = bn__mtl_scratch(c, sizeof(float) * nb * q_dim);
    c->gate = bn__mtl_scratch(c, sizeof(float) * nb * ffn);
    c->up = bn__mtl_scratch(c, sizeof(float) * nb * ffn);
    c->proj = bn__mtl_scratch(c, sizeof(float) * nb * hid);
    ok &= bn__mtl_ok(&c->tokens) && bn__mtl_ok(&c->pos) && bn__mtl_ok(&c->seq) && bn__mtl_ok(&c->row_token) &&
          bn__mtl_ok(&c->x) && bn__mtl_ok(&c->xn) && bn__mtl_ok(&c->xq) && bn__mtl_ok(&c->act_scale) &&
          bn__mtl_ok(&c->q) && bn__mtl_ok(&c->k) && bn__mtl_ok(&c->v) && bn__mtl_ok(&c->att) && bn__mtl_ok(&c->gate) &&
          bn__mtl_ok(&c->up) && bn__mtl_ok(&c->proj);
    if (!ok) return bn_errorf(err, BN_ERR_NOMEM, "Metal: out of GPU memory for the model's buffers");
    return BN_OK;
}

/* ---- the forward pass ----------------------------------------------------------- */

static bn_margs bn__mtl_args(void) {
    bn_margs a;
    memset(&a, 0, sizeof a);
    return a;
}

/* One dispatch: arguments at buffer 0, then the buffers in order. */
static void bn__mtl_dispatch(BNMetalContext *c, id<MTLComputeCommandEncoder> enc, int kernel, const bn_margs *a,
                             const bn__mref *bufs, int n_bufs, NSUInteger gx, NSUInteger gy) {
    int i;
    [enc setComputePipelineState:c->dev->pipelines[kernel]];
    [enc setBytes:a length:sizeof *a atIndex:0];
    for (i = 0; i < n_bufs; i++) [enc setBuffer:bufs[i].buf offset:bufs[i].off atIndex:(NSUInteger)i + 1];
    [enc dispatchThreadgroups:MTLSizeMake(gx, gy, 1) threadsPerThreadgroup:MTLSizeMake(bn__mtl_kernel_threads[kernel], 1, 1)];
}

/* The row kernel (bitnet.metal, bn_rows): x (+ add / act(x) * add), norm by w, quantize into xq. */
static void bn__mtl_rows(BNMetalContext *c, id<MTLComputeCommandEncoder> enc, int n, int cols, bn__mref x, bn__mref add,
                         int add_mode, const bn__mref *w, int quant) {
    bn_margs a = bn__mtl_args();
    bn__mref b[6];
    a.n_tokens = n;
    a.cols = cols;
    a.add = add_mode;
    a.norm = w != NULL;
    a.quant = quant;
    a.eps = c->view.config->rms_norm_eps;
    b[0] = x, b[1] = add, b[2] = w ? *w : c->final_norm, b[3] = c->xn, b[4] = c->xq, b[5] = c->act_scale;
    bn__mtl_dispatch(c, enc, BN__K_ROWS, &a, b, 6, (NSUInteger)n, 1);
}

/* y = W xq (quantized input in c->xq, its scales in c->act_scale). */
static void bn__mtl_tmatmul(BNMetalContext *c, id<MTLComputeCommandEncoder> enc, int n, const bn_tmat *m, bn__mref w,
                            bn__mref y) {
    bn_margs a = bn__mtl_args();
    bn__mref b[4];
    a.n_tokens = n;
    a.rows = m->rows;
    a.cols = m->cols;
    a.layout = m->layout == BN_TLAYOUT_I2 ? 1 : 2;
    a.scale = m->scale;
    b[0] = w, b[1] = c->xq, b[2] = c->act_scale, b[3] = y;
    bn__mtl_dispatch(c, enc, BN__K_TMATMUL, &a, b, 4, (NSUInteger)(m->rows + 7) / 8, (NSUInteger)(n + 7) / 8);
}

static bn_margs bn__mtl_attn_args(BNMetalContext *c, int n, int layer) {
    const bn_config *cf = c->view.config;
    bn_margs a = bn__mtl_args();
    a.n_tokens = n;
    a.n_heads = cf->n_heads;
    a.n_kv_heads = cf->n_kv_heads;
    a.head_dim = cf->head_dim;
    a.n_ctx = c->view.n_ctx;
    a.n_layers = cf->n_layers;
    a.layer = layer;
    a.kv_f16 = c->view.kv_type == BN_FTYPE_F16;
    return a;
}

static void bn__mtl_layer(BNMetalContext *c, id<MTLComputeCommandEncoder> enc, int n, int l) {
    const bn_config *cf = c->view.config;
    const bn__mlayer *L = &c->layers[l];
    int hid = cf->hidden_size, q_dim = cf->n_heads * cf->head_dim;
    bn_margs a = bn__mtl_attn_args(c, n, l);
    bn__mref b[9];
    /* attention input: the previous layer's FFN output joins the residual stream first */
    bn__mtl_rows(c, enc, n, hid, c->x, c->proj, l > 0, &L->attn_norm, 1);
    bn__mtl_tmatmul(c, enc, n, L->m[0], L->w[0], c->q);
    bn__mtl_tmatmul(c, enc, n, L->m[1], L->w[1], c->k);
    bn__mtl_tmatmul(c, enc, n, L->m[2], L->w[2], c->v);
    b[0] = c->pos, b[1] = c->seq, b[2] = c->q, b[3] = c->k, b[4] = c->v, b[5] = c->rope_cos, b[6] = c->rope_sin;
    b[7] = c->kc, b[8] = c->vc;
    bn__mtl_dispatch(c, enc, BN__K_ROPE_KV, &a, b, 9, (NSUInteger)n, 1);
    b[0] = c->pos, b[1] = c->seq, b[2] = c->q, b[3] = c->kc, b[4] = c->vc, b[5] = c->att;
    bn__mtl_dispatch(c, enc, BN__K_ATTENTION, &a, b, 6, (NSUInteger)cf->n_heads, (NSUInteger)n);
    bn__mtl_rows(c, enc, n, q_dim, c->att, c->att, 0, cf->has_sub_norms ? &L->attn_sub_norm : NULL, 1);
    bn__mtl_tmatmul(c, enc, n, L->m[3], L->w[3], c->proj);
    /* feed-forward */
    bn__mtl_rows(c, enc, n, hid, c->x, c->proj, 1, &L->ffn_norm, 1);
    bn__mtl_tmatmul(c, enc, n, L->m[4], L->w[4], c->gate);
    bn__mtl_tmatmul(c, enc, n, L->m[5], L->w[5], c->up);
    bn__mtl_rows(c, enc, n, cf->intermediate_size, c->gate, c->up, cf->act == BN_ACT_RELU2 ? 2 : 3,
                 cf->has_sub_norms ? &L->ffn_sub_norm : NULL, 1);
    bn__mtl_tmatmul(c, enc, n, L->m[6], L->w[6], c->proj);
}

static bn_status bn__mtl_forward(void *state, const bn_batch *batch, const int *logits_row, int n_out, float *logits,
                                 bn_error *err) {
    BNMetalContext *c = BN__MTL_FROM_VOID(BNMetalContext *, state);
    const bn_config *cf = c->view.config;
    int n = batch->n_tokens, t, l;
    bn_status s = BN_OK;
    @autoreleasepool {
        id<MTLCommandBuffer> cb;
        id<MTLComputeCommandEncoder> enc;
        int32_t *seq, *rows;
        bn_margs a = bn__mtl_args();
        bn__mref b[5];
        if (n_out > c->logits_rows) { /* grows to the most rows of logits a batch asked for */
            if (c->logits.buf) [c->keep removeObject:c->logits.buf];
            c->logits = bn__mtl_scratch(c, sizeof(float) * (size_t)n_out * cf->vocab_size);
            if (!c->logits.buf) {
                c->logits_rows = 0;
                return bn_errorf(err, BN_ERR_NOMEM, "Metal: out of memory for %d rows of logits", n_out);
            }
            c->logits_rows = n_out;
        }
        memcpy([c->tokens.buf contents], batch->token, sizeof(int32_t) * (size_t)n);
        memcpy([c->pos.buf contents], batch->pos, sizeof(int32_t) * (size_t)n);
        seq = (int32_t *)[c->seq.buf contents];
        rows = (int32_t *)[c->row_token.buf contents];
        for (t = 0; t < n; t++) {
            seq[t] = batch->seq ? batch->seq[t] : 0;
            if (logits_row[t] >= 0) rows[logits_row[t]] = t;
        }
        cb = [c->dev->queue commandBuffer];
        enc = [cb computeCommandEncoder];
        if (!cb || !enc) return bn_errorf(err, BN_ERR_IO, "Metal: no command buffer");
        a.n_tokens = n;
        a.cols = cf->hidden_size;
        a.ftype = (int)c->view.embed->type;
        a.tiled = c->view.embed->tiled;
        b[0] = c->tokens, b[1] = c->embed, b[2] = c->embed_scale, b[3] = c->x;
        bn__mtl_dispatch(c, enc, BN__K_EMBED, &a, b, 4, (NSUInteger)(cf->hidden_size + 255) / 256, (NSUInteger)n);
        for (l = 0; l < cf->n_layers; l++) bn__mtl_layer(c, enc, n, l);
        bn__mtl_rows(c, enc, n, cf->hidden_size, c->x, c->proj, 1, &c->final_norm, 0);
        if (n_out > 0) {
            a = bn__mtl_args();
            a.n_tokens = n_out;
            a.rows = cf->vocab_size;
            a.cols = cf->hidden_size;
            a.ftype = (int)c->view.lm_head->type;
            a.tiled = c->view.lm_head->tiled;
            b[0] = c->head, b[1] = c->head_scale, b[2] = c->xn, b[3] = c->row_token, b[4] = c->logits;
            bn__mtl_dispatch(c, enc, BN__K_FMATMUL, &a, b, 5, (NSUInteger)(cf->vocab_size + 23) / 24,
                             (NSUInteger)(n_out + 7) / 8);
        }
        [enc endEncoding];
        [cb commit];
        [cb waitUntilCompleted];
        if (cb.status != MTLCommandBufferStatusCompleted) {
            s = bn__mtl_error(err, BN_ERR_IO, "the forward pass failed on the GPU", cb.error);
        } else if (n_out > 0) {
            memcpy(logits, [c->logits.buf contents], sizeof(float) * (size_t)n_out * cf->vocab_size);
        }
    }
    return s;
}

/* ---- the backend table -------------------------------------------------------------- */

static bn_status bn__mtl_context_new(void *user, bn_context *ctx, void **state, bn_error *err) {
    BNMetalDevice *d = BN__MTL_FROM_VOID(BNMetalDevice *, user);
    BNMetalContext *c;
    bn_status s;
    *state = NULL;
    @autoreleasepool {
        c = [[BNMetalContext alloc] init];
        if (!c) return bn_errorf(err, BN_ERR_NOMEM, "Metal: out of memory");
#if __has_feature(objc_arc)
        c->dev = d;
#else
        c->dev = [d retain];
#endif
        c->model = bn_context_model(ctx);
        c->keep = [[NSMutableArray alloc] init];
        bn_backend_view_get(ctx, &c->view);
        if (c->view.config->head_dim > 256 || c->view.config->head_dim % 2)
            s = bn_errorf(err, BN_ERR_UNSUPPORTED, "Metal: head_dim %d (the attention kernel takes even sizes up to 256)",
                          c->view.config->head_dim);
        else
            s = bn__mtl_context_buffers(c, err);
        if (s) {
            BN__MTL_RELEASE(c);
            return s;
        }
        *state = BN__MTL_TO_VOID(c);
        BN__MTL_RELEASE(c);
    }
    return BN_OK;
}

static void bn__mtl_context_free(void *state) {
    @autoreleasepool {
        BN__MTL_DROP_VOID(state);
    }
}

bn_status bn_metal_backend_new(bn_backend **out, bn_error *err) {
    bn_backend *be;
    BNMetalDevice *d;
    bn_status s;
    *out = NULL;
    @autoreleasepool {
        d = [[BNMetalDevice alloc] init];
        if (!d) return bn_errorf(err, BN_ERR_NOMEM, "Metal: out of memory");
        d->device = MTLCreateSystemDefaultDevice();
        if (!d->device) {
            BN__MTL_RELEASE(d);
            return bn_errorf(err, BN_ERR_UNSUPPORTED, "Metal: no Metal device (MTLCreateSystemDefaultDevice found none)");
        }
        d->queue = [d->device newCommandQueue];
        s = d->queue ? bn__mtl_compile(d, err) : bn_errorf(err, BN_ERR_UNSUPPORTED, "Metal: no command queue");
        if (s) {
            BN__MTL_RELEASE(d);
            return s;
        }
        snprintf(d->name, sizeof d->name, "metal (%s)", [[d->device name] UTF8String]);
        be = (bn_backend *)calloc(1, sizeof *be);
        if (!be) {
            BN__MTL_RELEASE(d);
            return bn_errorf(err, BN_ERR_NOMEM, "Metal: out of memory");
        }
        be->name = d->name;
        be->user = BN__MTL_TO_VOID(d);
        BN__MTL_RELEASE(d);
        be->context_new = bn__mtl_context_new;
        be->forward = bn__mtl_forward;
        be->context_free = bn__mtl_context_free;
        *out = be;
    }
    return BN_OK;
}

void bn_metal_backend_free(bn_backend *be) {
    if (!be) return;
    @autoreleasepool {
        BN__MTL_DROP_VOID(be->user);
    }
    free(be);
}
