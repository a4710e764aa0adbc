#ifndef BN_PART_TERNARY_SIMD_H
#define BN_PART_TERNARY_SIMD_H
#include "base.h"
#include "ternary_matmul.h"
/* SIMD ternary kernels: AVX2 (maddubs), AVX-512 BW + VNNI (vpdpbusd), NEON
   (smull/smlal) and NEON dotprod (sdot), for both weight layouts, chosen at
   run time (bn_kernel_detect) and compiled with per-function target
   attributes, so that the header needs no -m flags. Each kernel computes
   exactly what the scalar reference in ternary_matmul.h computes: integer
   sums, bit-identical. BITNET_NO_SIMD leaves only the scalar kernels. */

BN_EXTERN_C_BEGIN
/* 1 when this build has the kernel and this CPU can run it. */
BN_API int bn_kernel_supported(bn_kernel kernel);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

#if !defined(BITNET_NO_SIMD) && (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define BN__SIMD_X86 1
#include <immintrin.h>
#define BN__TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define BN__TARGET_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define BN__TARGET_AVX512_GFNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,gfni")))
#define BN__TARGET_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#define BN__INLINE static inline __attribute__((always_inline))
/* A kernel loop in a function of its own: inlined into a caller with more
   live vectors, g++ 12 shuffles its accumulators through extra moves. */
#define BN__NOINLINE static __attribute__((noinline))
#endif

#if !defined(BITNET_NO_SIMD) && (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__) && \
    defined(__ARM_NEON)
#define BN__SIMD_NEON 1
#include <arm_neon.h>
#define BN__INLINE static inline __attribute__((always_inline))
#if defined(__ARM_FEATURE_DOTPROD)
#define BN__TARGET_DOTPROD
#define BN__SIMD_NEON_DOT 1
#elif defined(__clang__)
#define BN__TARGET_DOTPROD __attribute__((target("dotprod")))
#define BN__SIMD_NEON_DOT 1
#elif defined(__GNUC__) && __GNUC__ >= 10
#define BN__TARGET_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#define BN__SIMD_NEON_DOT 1
#endif
#if defined(__linux__)
#include <sys/auxv.h>
#endif
#endif

#if defined(BN__SIMD_X86) || defined(BN__SIMD_NEON)
/* Most SIMD kernels are written for one row and one token or a tile of
   BN__ROWTILE tokens (a bn__trow_fn); this runs one over the rows and tokens
   of a bn__tdot_fn call. */
#define BN__ROWTILE 4
typedef void (*bn__trow_fn)(const uint8_t *w, int nblocks, const int8_t *const *x, int nt, int32_t *out);

static void bn__tdot_by_row(bn__trow_fn row_dot, const uint8_t *w, size_t row_bytes, int nr, int nblocks,
                            const int8_t *const *x, int nt, int32_t *out) {
    int32_t part[BN__ROWTILE];
    int r, t0, n, t;
    for (r = 0; r < nr; r++)
        for (t0 = 0; t0 < nt; t0 += n) {
            n = nt - t0 >= BN__ROWTILE ? BN__ROWTILE : 1;
            row_dot(w + (size_t)r * row_bytes, nblocks, x + t0, n, part);
            for (t = 0; t < n; t++) out[r * nt + t0 + t] = part[t];
        }
}

/* The same for float kernels written for one row (its 16-column blocks
   block_step bytes apart) against BN__FROW_TOKENS tokens (row_tile) or one
   (row_one): a bn__fdot_fn that goes row by row. */
#define BN__FROW_TOKENS 4
typedef void (*bn__frow_fn)(const uint8_t *row, size_t block_step, int tiled, bn_ftype type, int cols,
                            const float *const *x, float *out);

static void bn__fdot_by_row(bn__frow_fn row_tile, bn__frow_fn row_one, const uint8_t *w, size_t row_step,
                            size_t block_step, int tiled, int nr, bn_ftype type, int cols, const float *const *x,
                            int nt, float *out) {
    int r, t0, n;
    for (r = 0; r < nr; r++) {
        const uint8_t *row = w + (size_t)r * row_step;
        for (t0 = 0; t0 < nt; t0 += n) {
            n = nt - t0 >= BN__FROW_TOKENS ? BN__FROW_TOKENS : 1;
            (n > 1 ? row_tile : row_one)(row, block_step, tiled, type, cols, x + t0, out + r * nt + t0);
        }
    }
}
#endif

/* ---- CPU detection (asked each time: no global cache) ---- */
#if defined(BN__SIMD_X86)
static void bn__cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    __asm__ __volatile__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static unsigned bn__xgetbv0(void) {
    unsigned a, d;
    __asm__ __volatile__("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
    return a;
}
/* Register reg (0-3: EAX, EBX, ECX, EDX) of CPUID leaf 7, subleaf sub; 0 where the CPU has no leaf 7. */
static unsigned bn__cpuid7(unsigned sub, int reg) {
    unsigned r[4];
    bn__cpuid(0, 0, r);
    if (r[0] < 7) return 0;
    bn__cpuid(7, sub, r);
    return r[reg];
}
/* AVX-VNNI (CPUID 7.1 EAX bit 4), which AVX-512 CPUs may have as well. */
static int bn__has_avx_vnni(void) { return (bn__cpuid7(1, 0) >> 4) & 1; }
/* GFNI (CPUID 7.0 ECX bit 8). */
static int bn__has_gfni(void) { return (bn__cpuid7(0, 2) >> 8) & 1; }
/* The vendor string's first four letters are "Genu" (GenuineIntel). */
static int bn__is_intel(void) {
    unsigned r[4];
    bn__cpuid(0, 0, r);
    return r[1] == 0x756e6547u;
}

BN_API bn_kernel bn_kernel_detect(void) {
    unsigned r[4], max_leaf, xcr0;
    int avx2, avx512;
    bn__cpuid(0, 0, r);
    max_leaf = r[0];
    if (max_leaf < 7) return BN_KERNEL_SCALAR;
    bn__cpuid(1, 0, r);
    /* OSXSAVE, AVX, FMA, F16C */
    if (!(r[2] & (1u << 27)) || !(r[2] & (1u << 28)) || !(r[2] & (1u << 12)) || !(r[2] & (1u << 29)))
        return BN_KERNEL_SCALAR;
    xcr0 = bn__xgetbv0();
    if ((xcr0 & 6u) != 6u) return BN_KERNEL_SCALAR; /* the OS saves xmm + ymm */
    bn__cpuid(7, 0, r);
    avx2 = (r[1] >> 5) & 1;
    /* AVX-512 F, BW, VL and VNNI, and the OS saves opmask + zmm state */
    avx512 = ((r[1] >> 16) & 1) && ((r[1] >> 30) & 1) && ((r[1] >> 31) & 1) && ((r[2] >> 11) & 1) &&
             (xcr0 & 0xe0u) == 0xe0u;
    /* GFNI's one-instruction digits win where the shift and mask take the
       multiplies' time (Intel Xeon, family 6 model 207: the 4x4 tile in L2 at
       8 tokens +13-17 %, B = 8 decoding at 4 and 8 threads +6 %) and lose a
       little where they cost nothing (Zen 5: the tile 2-5 % slower), so only
       Intel gets them by default (docs/kernels.md). */
    if (avx512 && avx2) return bn__has_gfni() && bn__is_intel() ? BN_KERNEL_AVX512_GFNI : BN_KERNEL_AVX512;
    if (!avx2) return BN_KERNEL_SCALAR;
    return bn__has_avx_vnni() ? BN_KERNEL_AVX_VNNI : BN_KERNEL_AVX2;
}
#elif defined(BN__SIMD_NEON)
BN_API bn_kernel bn_kernel_detect(void) {
#if defined(BN__SIMD_NEON_DOT) && defined(__ARM_FEATURE_DOTPROD)
    return BN_KERNEL_NEON_DOT; /* built for a CPU that has it */
#elif defined(BN__SIMD_NEON_DOT) && defined(__linux__) && defined(AT_HWCAP)
    return (getauxval(AT_HWCAP) & (1ul << 20)) ? BN_KERNEL_NEON_DOT : BN_KERNEL_NEON; /* HWCAP_ASIMDDP */
#elif defined(BN__SIMD_NEON_DOT) && defined(__APPLE__)
    return BN_KERNEL_NEON_DOT; /* every Apple arm64 CPU has it */
#else
    return BN_KERNEL_NEON;
#endif
}
#else
BN_API bn_kernel bn_kernel_detect(void) { return BN_KERNEL_SCALAR; }
#endif

#if !defined(BN__SIMD_X86)
static int bn__has_avx_vnni(void) { return 0; }
static int bn__has_gfni(void) { return 0; }
#endif

/* The two AVX-512 kernels share everything but the ternary tile's digits. */
static int bn__kernel_avx512(bn_kernel kernel) { return kernel == BN_KERNEL_AVX512 || kernel == BN_KERNEL_AVX512_GFNI; }

BN_API int bn_kernel_supported(bn_kernel kernel) {
    bn_kernel best = bn_kernel_detect();
    switch (kernel) {
    case BN_KERNEL_AUTO:
    case BN_KERNEL_SCALAR: return 1;
    case BN_KERNEL_AVX2: return best == BN_KERNEL_AVX2 || best == BN_KERNEL_AVX_VNNI || bn__kernel_avx512(best);
    case BN_KERNEL_AVX512: return bn__kernel_avx512(best);
    case BN_KERNEL_AVX512_GFNI: return bn__kernel_avx512(best) && bn__has_gfni();
    case BN_KERNEL_AVX_VNNI: return best == BN_KERNEL_AVX_VNNI || (bn__kernel_avx512(best) && bn__has_avx_vnni());
    case BN_KERNEL_NEON: return best == BN_KERNEL_NEON || best == BN_KERNEL_NEON_DOT;
    case BN_KERNEL_NEON_DOT: return best == BN_KERNEL_NEON_DOT;
    }
    return 0;
}

/* ---- x86 kernels ---- */
#if defined(BN__SIMD_X86)

BN__TARGET_AVX2 static int32_t bn__hsum_256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* Through memory: the AVX-512 extract/shuffle intrinsics of g++ 12 start
   from an "undefined" vector, which -Wmaybe-uninitialized reports. */
BN__TARGET_AVX512 static int32_t bn__hsum_512(__m512i v) {
    int32_t lanes[16];
    _mm512_storeu_si512((void *)lanes, v);
    return bn__hsum_256(_mm256_add_epi32(_mm256_loadu_si256((const __m256i *)lanes),
                                         _mm256_loadu_si256((const __m256i *)(lanes + 8))));
}

/* A loaded vector kept in its register: an empty asm that the compiler must
   assume changes it, so that it cannot fold the load into each instruction
   that reads it. Tuned for Zen (g++ 12 -march=native on a Zen 5 takes
   -mtune=znver3), g++ folds the block's load into each of the four ANDs of
   the GEMV: four loads of one line still on its way from memory, and the 2B4T
   matrices streamed at 17-19 GB/s instead of 24-28 (one core; the default
   -O2 build loads once either way). Not in the AVX-VNNI row kernel: there
   the same barrier cost a third (15 against 21-23 GB/s). */
#define BN__IN_REGISTER(v) __asm__("" : "+v"(v))

/* The x86 kernels keep every accumulator in a named variable (no arrays
   indexed by loops): compilers at -O2 do not always unroll such loops, and
   an accumulator array left in memory costs a store and a load per
   instruction. */

/* ---- I2 with AVX-512 VNNI ----
   One 64-byte load is one block; digit k of byte j is bits 2k..2k+1 and
   belongs to activation 64k + j. Two ways to get the digits:
   - shift and mask, (v >> 2k) & 3: three shifts and four ANDs per block,
     shared by 4 tokens with one accumulator each (the GEMM);
   - mask only, v & (3 << 2k): the code times 4^k, still an unsigned byte
     (<= 128) for vpdpbusd; one accumulator per digit, whose sum is divided by
     4^k at the end, exactly (each product is a multiple of 4^k). One AND and
     one vpdpbusd per 64 weights: the form for one token (the GEMV), where
     the shifts would not be shared enough to pay. */
BN__TARGET_AVX512 BN__INLINE __m512i bn__dp512(__m512i acc, __m512i d, const int8_t *x) {
    return _mm512_dpbusd_epi32(acc, d, _mm512_loadu_si512((const void *)x));
}

/* (g++ 12 reports the "undefined" start vector of the plain forms of these
   intrinsics under -Wmaybe-uninitialized, so the all-lanes maskz_ forms.) */
#define BN__ALL16 ((__mmask16)0xffff)
#define BN__ALL8 ((__mmask8)0xff)

/* the digit sums of the mask-only form, each divided by its 4^k, added lane by lane */
BN__TARGET_AVX512 BN__INLINE __m512i bn__i2_unscale512(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
    return _mm512_add_epi32(_mm512_add_epi32(a0, _mm512_maskz_srai_epi32(BN__ALL16, a1, 2)),
                            _mm512_add_epi32(_mm512_maskz_srai_epi32(BN__ALL16, a2, 4),
                                             _mm512_maskz_srai_epi32(BN__ALL16, a3, 6)));
}

/* The horizontal sums of v0..v3 as the four lanes of one vector. */
BN__TARGET_AVX512 static __m128i bn__hsum4_512(__m512i v0, __m512i v1, __m512i v2, __m512i v3) {
    __m512i a = _mm512_add_epi32(_mm512_maskz_unpacklo_epi32(BN__ALL16, v0, v1),
                                 _mm512_maskz_unpackhi_epi32(BN__ALL16, v0, v1));
    __m512i b = _mm512_add_epi32(_mm512_maskz_unpacklo_epi32(BN__ALL16, v2, v3),
                                 _mm512_maskz_unpackhi_epi32(BN__ALL16, v2, v3));
    __m512i c = _mm512_add_epi32(_mm512_maskz_unpacklo_epi64(BN__ALL8, a, b), _mm512_maskz_unpackhi_epi64(BN__ALL8, a, b));
    /* each 128-bit lane of c now holds one partial sum of v0, v1, v2, v3: add the four lanes */
    __m256i d = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(BN__ALL8, c, 0),
                                 _mm512_maskz_extracti64x4_epi64(BN__ALL8, c, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
}

/* How far ahead of the loads a streaming kernel asks for its weights. One
   core's out-of-order window covers only a few hundred bytes of weights
   (each 64 bytes take a dozen instructions), too few cache misses in flight
   to use the memory's bandwidth; the hardware prefetcher helps but stops at
   4 KB pages. Measured on the 2B4T shapes (Zen, 1 thread): 27 GB/s without,
   31-35 GB/s at 8-64 KB ahead. Prefetches never fault, so running past the
   end of the matrix is harmless. They ask for L2 (T1), not L1 (T0): a T0
   prefetch holds one of L1's few miss buffers until its line arrives, which
   caps the lines in flight; L2 has more. Zen 4, the 30 layers' ternary
   matrices of 2B4T, 2 threads, alternating runs: one token 29-39 ms with T0,
   19-23 ms with T1 (8 KB to 32 KB ahead alike); 8 tokens about the same.
   Zen 5, 2B4T shapes, `bitnet bench --threads-sweep -t 2` with a T1 and a
   T0 build in turn, three times: one thread 24.6-25.3 tok/s with T1,
   20.2-22.0 with T0; two threads alike (35.9-44.0 and 37.9-43.7).
   Only a call's first pass over its rows asks: a second pass (the next
   tokens of a tile) would ask again for lines already on their way, and
   those requests cost more than they save (the 4x4 tile at 8 tokens, one
   Zen 5 core, 2560-column rows streamed from memory: 9.7 GB/s with both
   passes asking, 12.1 with the first alone; 14.5 with the rows in L2). */
#define BN__PREFETCH_AHEAD 16384
#define BN__PREFETCH_WEIGHTS(p) _mm_prefetch((const char *)(p), _MM_HINT_T1)

/* One row against one token, mask-only form: a vector whose lanes add up to the dot. */
BN__TARGET_AVX512 BN__NOINLINE __m512i bn__i2_gemv_row512(const uint8_t *w, int nblocks, const int8_t *x, int prefetch) {
    const __m512i m0 = _mm512_set1_epi8(3), m1 = _mm512_set1_epi8(12), m2 = _mm512_set1_epi8(48),
                  m3 = _mm512_set1_epi8((char)192);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    int b;
    for (b = 0; b < nblocks; b++) {
        const int8_t *xb = x + (size_t)b * 256;
        __m512i v = _mm512_load_si512((const void *)(w + (size_t)b * 64));
        BN__IN_REGISTER(v);
        if (prefetch) BN__PREFETCH_WEIGHTS(w + (size_t)b * 64 + BN__PREFETCH_AHEAD);
        a0 = bn__dp512(a0, _mm512_and_si512(v, m0), xb);
        a1 = bn__dp512(a1, _mm512_and_si512(v, m1), xb + 64);
        a2 = bn__dp512(a2, _mm512_and_si512(v, m2), xb + 128);
        a3 = bn__dp512(a3, _mm512_and_si512(v, m3), xb + 192);
    }
    return bn__i2_unscale512(a0, a1, a2, a3);
}

/* nr <= 4 rows against one token; out[r * stride]. */
BN__TARGET_AVX512 static void bn__i2_gemv512(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *x,
                                             int32_t *out, int stride, int prefetch) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i v0 = bn__i2_gemv_row512(w, nblocks, x, prefetch);
    __m512i v1 = nr > 1 ? bn__i2_gemv_row512(w + row_bytes, nblocks, x, prefetch) : zero;
    __m512i v2 = nr > 2 ? bn__i2_gemv_row512(w + 2 * row_bytes, nblocks, x, prefetch) : zero;
    __m512i v3 = nr > 3 ? bn__i2_gemv_row512(w + 3 * row_bytes, nblocks, x, prefetch) : zero;
    int32_t sums[4];
    int r;
    _mm_storeu_si128((__m128i *)sums, bn__hsum4_512(v0, v1, v2, v3));
    for (r = 0; r < nr; r++) out[r * stride] = sums[r];
}

/* Four rows against a tile of 4 tokens (16 accumulators): each activation
   vector loaded serves four rows and each digit vector four tokens, and 16
   independent vpdpbusd chains hide its latency. (2B4T shapes, 8 tokens, 2
   threads: 560 GMAC/s against 512 for 2 rows x 4 tokens, 609 against 536
   when the weights are in L2.) Rows past nr repeat row 0; their sums are
   dropped. DIGIT(v, k) is digit k (0-3) of each byte of v: a shift and a
   mask, or one GFNI instruction (below). */
#define BN__I2_4X4_TOKEN(t, A0, A1, A2, A3)                 \
    xv = _mm512_loadu_si512((const void *)(x[t] + o));      \
    A0 = _mm512_dpbusd_epi32(A0, d0, xv);                   \
    A1 = _mm512_dpbusd_epi32(A1, d1, xv);                   \
    A2 = _mm512_dpbusd_epi32(A2, d2, xv);                   \
    A3 = _mm512_dpbusd_epi32(A3, d3, xv)
/* digit k of the block's four rows against the 4 tokens */
#define BN__I2_4X4_DIGIT(k, DIGIT)                                                       \
    do {                                                                                 \
        size_t o = (size_t)b * 256 + 64 * (k);                                           \
        __m512i d0 = DIGIT(v0, k), d1 = DIGIT(v1, k), d2 = DIGIT(v2, k), d3 = DIGIT(v3, k), xv; \
        BN__I2_4X4_TOKEN(0, a00, a10, a20, a30);                                         \
        BN__I2_4X4_TOKEN(1, a01, a11, a21, a31);                                         \
        BN__I2_4X4_TOKEN(2, a02, a12, a22, a32);                                         \
        BN__I2_4X4_TOKEN(3, a03, a13, a23, a33);                                         \
    } while (0)
/* The tile's body, for either DIGIT. */
#define BN__I2_4X4_TILE(DIGIT)                                                                                      \
    const uint8_t *w0 = w, *w1 = nr > 1 ? w + row_bytes : w, *w2 = nr > 2 ? w + 2 * row_bytes : w,                 \
                  *w3 = nr > 3 ? w + 3 * row_bytes : w;                                                             \
    __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00; \
    __m512i a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;                 \
    int32_t sums[4][4];                                                                                             \
    int b, r;                                                                                                       \
    for (b = 0; b < nblocks; b++) {                                                                                 \
        size_t wo = (size_t)b * 64;                                                                                 \
        __m512i v0 = _mm512_load_si512((const void *)(w0 + wo)), v1 = _mm512_load_si512((const void *)(w1 + wo)); \
        __m512i v2 = _mm512_load_si512((const void *)(w2 + wo)), v3 = _mm512_load_si512((const void *)(w3 + wo)); \
        if (prefetch) {                                                                                             \
            BN__PREFETCH_WEIGHTS(w0 + wo + BN__PREFETCH_AHEAD);                                                     \
            BN__PREFETCH_WEIGHTS(w1 + wo + BN__PREFETCH_AHEAD);                                                     \
            BN__PREFETCH_WEIGHTS(w2 + wo + BN__PREFETCH_AHEAD);                                                     \
            BN__PREFETCH_WEIGHTS(w3 + wo + BN__PREFETCH_AHEAD);                                                     \
        }                                                                                                           \
        /* the four digits written out: as a loop, g++ 12 copies every                                             \
           accumulator around each vpdpbusd and spills some (40 % slower) */                                        \
        BN__I2_4X4_DIGIT(0, DIGIT);                                                                                 \
        BN__I2_4X4_DIGIT(1, DIGIT);                                                                                 \
        BN__I2_4X4_DIGIT(2, DIGIT);                                                                                 \
        BN__I2_4X4_DIGIT(3, DIGIT);                                                                                 \
    }                                                                                                               \
    _mm_storeu_si128((__m128i *)sums[0], bn__hsum4_512(a00, a01, a02, a03));                                        \
    _mm_storeu_si128((__m128i *)sums[1], bn__hsum4_512(a10, a11, a12, a13));                                        \
    _mm_storeu_si128((__m128i *)sums[2], bn__hsum4_512(a20, a21, a22, a23));                                        \
    _mm_storeu_si128((__m128i *)sums[3], bn__hsum4_512(a30, a31, a32, a33));                                        \
    for (r = 0; r < nr; r++) memcpy(out + r * stride, sums[r], sizeof sums[r])

#define BN__I2_SHIFT_DIGIT(v, k) _mm512_and_si512(_mm512_srli_epi16(v, 2 * (k)), m3)
BN__TARGET_AVX512 BN__NOINLINE void bn__i2_tile4x4_512(const uint8_t *w, size_t row_bytes, int nr, int nblocks,
                                                 const int8_t *const *x, int32_t *out, int stride, int prefetch) {
    const __m512i m3 = _mm512_set1_epi8(3);
    BN__I2_4X4_TILE(BN__I2_SHIFT_DIGIT);
}

/* With GFNI a digit is one instruction where the shift and mask are two:
   gf2p8affineqb multiplies each byte, as a vector of 8 bits, by an 8x8 bit
   matrix, and the matrix g[k] takes bits 2k and 2k+1 to bits 0 and 1 and
   clears the rest. (Byte 7 - i of the matrix is the mask of the bits that
   go into result bit i.) */
#define BN__I2_GFNI_DIGIT(v, k) _mm512_gf2p8affine_epi64_epi8(v, g[k], 0)
BN__TARGET_AVX512_GFNI BN__NOINLINE void bn__i2_tile4x4_512_gfni(const uint8_t *w, size_t row_bytes, int nr, int nblocks,
                                                           const int8_t *const *x, int32_t *out, int stride,
                                                           int prefetch) {
    __m512i g[4];
    int k;
    for (k = 0; k < 4; k++)
        g[k] = _mm512_set1_epi64((long long)((uint64_t)(1u << 2 * k) << 56 | (uint64_t)(2u << 2 * k) << 48));
    {
        BN__I2_4X4_TILE(BN__I2_GFNI_DIGIT);
    }
}

/* Tiles of 4 tokens by `tile`, then the rest one token at a time; the first pass prefetches. */
typedef void (*bn__i2_tile_fn)(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *const *x,
                               int32_t *out, int stride, int prefetch);
BN__TARGET_AVX512 static void bn__tdot_i2_tiles512(bn__i2_tile_fn tile, const uint8_t *w, size_t row_bytes, int nr,
                                                   int nblocks, const int8_t *const *x, int nt, int32_t *out) {
    int t = 0;
    for (; t + 4 <= nt; t += 4) tile(w, row_bytes, nr, nblocks, x + t, out + t, nt, t == 0);
    for (; t < nt; t++) bn__i2_gemv512(w, row_bytes, nr, nblocks, x[t], out + t, nt, t == 0);
}

/* The bn__tdot_fn of each tile; one token at a time has no shifts for GFNI to save. */
BN__TARGET_AVX512 static void bn__tdot_i2_avx512(const uint8_t *w, size_t row_bytes, int nr, int nblocks,
                                                 const int8_t *const *x, int nt, int32_t *out) {
    bn__tdot_i2_tiles512(bn__i2_tile4x4_512, w, row_bytes, nr, nblocks, x, nt, out);
}
BN__TARGET_AVX512 static void bn__tdot_i2_avx512_gfni(const uint8_t *w, size_t row_bytes, int nr, int nblocks,
                                                      const int8_t *const *x, int nt, int32_t *out) {
    bn__tdot_i2_tiles512(bn__i2_tile4x4_512_gfni, w, row_bytes, nr, nblocks, x, nt, out);
}

/* TQ1 with AVX-512: t = q * 3^k mod 256 (bytes wrap), digit = (t >= 86) + (t >= 171). */
BN__TARGET_AVX512 BN__INLINE __m512i bn__tq1_digit512(__m512i q) {
    const __m512i one = _mm512_set1_epi8(1);
    __m512i d = _mm512_maskz_mov_epi8(_mm512_cmpge_epu8_mask(q, _mm512_set1_epi8((char)86)), one);
    return _mm512_mask_add_epi8(d, _mm512_cmpge_epu8_mask(q, _mm512_set1_epi8((char)171)), d, one);
}
BN__TARGET_AVX512 BN__INLINE __m512i bn__times3_512(__m512i q) { return _mm512_add_epi8(_mm512_add_epi8(q, q), q); }

BN__TARGET_AVX512 static void bn__trow_tq1_avx512(const uint8_t *w, int nblocks, const int8_t *const *x, int nt,
                                                  int32_t *out) {
    int b, t, k;
    if (nt == BN__ROWTILE) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (b = 0; b < nblocks; b++) {
            __m512i q = _mm512_loadu_si512((const void *)(w + (size_t)b * 64));
            size_t o = (size_t)b * 320;
            for (k = 0; k < 5; k++) {
                __m512i d = bn__tq1_digit512(q);
                a0 = bn__dp512(a0, d, x[0] + o + 64 * k);
                a1 = bn__dp512(a1, d, x[1] + o + 64 * k);
                a2 = bn__dp512(a2, d, x[2] + o + 64 * k);
                a3 = bn__dp512(a3, d, x[3] + o + 64 * k);
                q = bn__times3_512(q);
            }
        }
        out[0] = bn__hsum_512(a0);
        out[1] = bn__hsum_512(a1);
        out[2] = bn__hsum_512(a2);
        out[3] = bn__hsum_512(a3);
        return;
    }
    for (t = 0; t < nt; t++) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0;
        const int8_t *xt = x[t];
        for (b = 0; b < nblocks; b++) {
            const int8_t *xb = xt + (size_t)b * 320;
            __m512i q0 = _mm512_loadu_si512((const void *)(w + (size_t)b * 64));
            __m512i q1 = bn__times3_512(q0), q2 = bn__times3_512(q1), q3 = bn__times3_512(q2);
            __m512i q4 = bn__times3_512(q3);
            a0 = bn__dp512(a0, bn__tq1_digit512(q0), xb);
            a1 = bn__dp512(a1, bn__tq1_digit512(q1), xb + 64);
            a2 = bn__dp512(a2, bn__tq1_digit512(q2), xb + 128);
            a3 = bn__dp512(a3, bn__tq1_digit512(q3), xb + 192);
            a4 = bn__dp512(a4, bn__tq1_digit512(q4), xb + 256);
        }
        out[t] = bn__hsum_512(
            _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)), a4));
    }
}

/* I2 with AVX2: each block is two 32-byte halves. maddubs gives int16 sums
   of two products (|sum| <= 512); the 8 of one block are added in int16
   (<= 4096) and widened to int32 once per block. */
#define BN__I2_AVX2_DIGITS(v, m3, d0, d1, d2, d3)              \
    d0 = _mm256_and_si256(v, m3);                              \
    d1 = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);        \
    d2 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);        \
    d3 = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3)

BN__TARGET_AVX2 BN__INLINE __m256i bn__mb256(__m256i s16, __m256i d, const int8_t *x) {
    return _mm256_add_epi16(s16, _mm256_maddubs_epi16(d, _mm256_loadu_si256((const __m256i *)x)));
}

/* int16 sums of one 32-byte half of an I2 block (digits d0..d3) with one token */
BN__TARGET_AVX2 BN__INLINE __m256i bn__i2_half256(__m256i s16, __m256i d0, __m256i d1, __m256i d2, __m256i d3,
                                                   const int8_t *xh) {
    s16 = bn__mb256(s16, d0, xh);
    s16 = bn__mb256(s16, d1, xh + 64);
    s16 = bn__mb256(s16, d2, xh + 128);
    return bn__mb256(s16, d3, xh + 192);
}

BN__TARGET_AVX2 BN__INLINE __m256i bn__widen_add(__m256i acc, __m256i s16) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
}

BN__TARGET_AVX2 static void bn__trow_i2_avx2(const uint8_t *w, int nblocks, const int8_t *const *x, int nt,
                                             int32_t *out) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i v, d0, d1, d2, d3;
    int b, t, h;
    if (nt == BN__ROWTILE) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (b = 0; b < nblocks; b++) {
            __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
            for (h = 0; h < 2; h++) {
                size_t o = (size_t)b * 256 + 32 * h;
                v = _mm256_loadu_si256((const __m256i *)(w + (size_t)b * 64 + 32 * h));
                BN__I2_AVX2_DIGITS(v, m3, d0, d1, d2, d3);
                s0 = bn__i2_half256(s0, d0, d1, d2, d3, x[0] + o);
                s1 = bn__i2_half256(s1, d0, d1, d2, d3, x[1] + o);
                s2 = bn__i2_half256(s2, d0, d1, d2, d3, x[2] + o);
                s3 = bn__i2_half256(s3, d0, d1, d2, d3, x[3] + o);
            }
            a0 = bn__widen_add(a0, s0);
            a1 = bn__widen_add(a1, s1);
            a2 = bn__widen_add(a2, s2);
            a3 = bn__widen_add(a3, s3);
        }
        out[0] = bn__hsum_256(a0);
        out[1] = bn__hsum_256(a1);
        out[2] = bn__hsum_256(a2);
        out[3] = bn__hsum_256(a3);
        return;
    }
    for (t = 0; t < nt; t++) {
        __m256i a0 = _mm256_setzero_si256();
        const int8_t *xt = x[t];
        for (b = 0; b < nblocks; b++) {
            const int8_t *xb = xt + (size_t)b * 256;
            __m256i v0 = _mm256_loadu_si256((const __m256i *)(w + (size_t)b * 64)), s0, s1;
            __m256i v1 = _mm256_loadu_si256((const __m256i *)(w + (size_t)b * 64 + 32)), e0, e1, e2, e3;
            BN__I2_AVX2_DIGITS(v0, m3, d0, d1, d2, d3);
            BN__I2_AVX2_DIGITS(v1, m3, e0, e1, e2, e3);
            s0 = bn__i2_half256(_mm256_setzero_si256(), d0, d1, d2, d3, xb);
            s1 = bn__i2_half256(_mm256_setzero_si256(), e0, e1, e2, e3, xb + 32);
            a0 = bn__widen_add(a0, _mm256_add_epi16(s0, s1));
        }
        out[t] = bn__hsum_256(a0);
    }
}

/* TQ1 with AVX2, which lacks unsigned byte compares: keep u = t ^ 0x80, for
   which signed compares order like unsigned ones on t, and 3u = 3t ^ 0x80
   (mod 256). digit = -(u > 85 - 128) - (u > 170 - 128). */
BN__TARGET_AVX2 BN__INLINE __m256i bn__tq1_digit256(__m256i u) {
    __m256i m1 = _mm256_cmpgt_epi8(u, _mm256_set1_epi8(85 - 128)), m2 = _mm256_cmpgt_epi8(u, _mm256_set1_epi8(170 - 128));
    return _mm256_sub_epi8(_mm256_sub_epi8(_mm256_setzero_si256(), m1), m2);
}
BN__TARGET_AVX2 BN__INLINE __m256i bn__times3_256(__m256i u) { return _mm256_add_epi8(_mm256_add_epi8(u, u), u); }

BN__TARGET_AVX2 static void bn__trow_tq1_avx2(const uint8_t *w, int nblocks, const int8_t *const *x, int nt,
                                              int32_t *out) {
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    int b, t, h, k;
    if (nt == BN__ROWTILE) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (b = 0; b < nblocks; b++) {
            __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
            for (h = 0; h < 2; h++) {
                __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(w + (size_t)b * 64 + 32 * h)), flip);
                for (k = 0; k < 5; k++) {
                    __m256i d = bn__tq1_digit256(u);
                    size_t o = (size_t)b * 320 + 64 * k + 32 * h;
                    s0 = bn__mb256(s0, d, x[0] + o);
                    s1 = bn__mb256(s1, d, x[1] + o);
                    s2 = bn__mb256(s2, d, x[2] + o);
                    s3 = bn__mb256(s3, d, x[3] + o);
                    u = bn__times3_256(u);
                }
            }
            a0 = bn__widen_add(a0, s0);
            a1 = bn__widen_add(a1, s1);
            a2 = bn__widen_add(a2, s2);
            a3 = bn__widen_add(a3, s3);
        }
        out[0] = bn__hsum_256(a0);
        out[1] = bn__hsum_256(a1);
        out[2] = bn__hsum_256(a2);
        out[3] = bn__hsum_256(a3);
        return;
    }
    for (t = 0; t < nt; t++) {
        __m256i a0 = _mm256_setzero_si256();
        const int8_t *xt = x[t];
        for (b = 0; b < nblocks; b++) {
            __m256i s = _mm256_setzero_si256();
            for (h = 0; h < 2; h++) {
                const int8_t *xh = xt + (size_t)b * 320 + 32 * h;
                __m256i u0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(w + (size_t)b * 64 + 32 * h)), flip);
                __m256i u1 = bn__times3_256(u0), u2 = bn__times3_256(u1), u3 = bn__times3_256(u2);
                __m256i u4 = bn__times3_256(u3);
                s = bn__mb256(s, bn__tq1_digit256(u0), xh);
                s = bn__mb256(s, bn__tq1_digit256(u1), xh + 64);
                s = bn__mb256(s, bn__tq1_digit256(u2), xh + 128);
                s = bn__mb256(s, bn__tq1_digit256(u3), xh + 192);
                s = bn__mb256(s, bn__tq1_digit256(u4), xh + 256);
            }
            a0 = bn__widen_add(a0, s);
        }
        out[t] = bn__hsum_256(a0);
    }
}

/* I2 with AVX-VNNI: the mask-only form of the AVX-512 GEMV on 32-byte halves
   of each block, for every (row, token) of the call: client CPUs with
   AVX-VNNI have two cores' worth of bandwidth per core at most, and this
   keeps them on it with the least code. */
BN__TARGET_AVXVNNI BN__NOINLINE __m256i bn__i2_row_avxvnni(const uint8_t *w, int nblocks, const int8_t *x, int prefetch) {
    const __m256i m0 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(12), m2 = _mm256_set1_epi8(48),
                  m3 = _mm256_set1_epi8((char)192);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    int b, h;
    for (b = 0; b < nblocks; b++) {
        if (prefetch) BN__PREFETCH_WEIGHTS(w + (size_t)b * 64 + BN__PREFETCH_AHEAD);
        for (h = 0; h < 2; h++) {
            const int8_t *xh = x + (size_t)b * 256 + 32 * h;
            __m256i v = _mm256_load_si256((const __m256i *)(w + (size_t)b * 64 + 32 * h));
            a0 = _mm256_dpbusd_avx_epi32(a0, _mm256_and_si256(v, m0), _mm256_loadu_si256((const __m256i *)xh));
            a1 = _mm256_dpbusd_avx_epi32(a1, _mm256_and_si256(v, m1), _mm256_loadu_si256((const __m256i *)(xh + 64)));
            a2 = _mm256_dpbusd_avx_epi32(a2, _mm256_and_si256(v, m2), _mm256_loadu_si256((const __m256i *)(xh + 128)));
            a3 = _mm256_dpbusd_avx_epi32(a3, _mm256_and_si256(v, m3), _mm256_loadu_si256((const __m256i *)(xh + 192)));
        }
    }
    return _mm256_add_epi32(_mm256_add_epi32(a0, _mm256_srai_epi32(a1, 2)),
                            _mm256_add_epi32(_mm256_srai_epi32(a2, 4), _mm256_srai_epi32(a3, 6)));
}

BN__TARGET_AVXVNNI static void bn__tdot_i2_avxvnni(const uint8_t *w, size_t row_bytes, int nr, int nblocks,
                                                   const int8_t *const *x, int nt, int32_t *out) {
    int r, t;
    for (r = 0; r < nr; r++)
        for (t = 0; t < nt; t++)
            out[r * nt + t] = bn__hsum_256(bn__i2_row_avxvnni(w + (size_t)r * row_bytes, nblocks, x[t], t == 0));
}

static void bn__tdot_tq1_avx512(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *const *x,
                                int nt, int32_t *out) {
    bn__tdot_by_row(bn__trow_tq1_avx512, w, row_bytes, nr, nblocks, x, nt, out);
}
static void bn__tdot_i2_avx2(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *const *x, int nt,
                             int32_t *out) {
    bn__tdot_by_row(bn__trow_i2_avx2, w, row_bytes, nr, nblocks, x, nt, out);
}
static void bn__tdot_tq1_avx2(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *const *x, int nt,
                              int32_t *out) {
    bn__tdot_by_row(bn__trow_tq1_avx2, w, row_bytes, nr, nblocks, x, nt, out);
}

static bn__tdot_fn bn__tdot_simd(bn_kernel kernel, bn_tlayout layout) {
    int tq1 = layout == BN_TLAYOUT_TQ1;
    if (kernel == BN_KERNEL_AVX512) return tq1 ? bn__tdot_tq1_avx512 : bn__tdot_i2_avx512;
    if (kernel == BN_KERNEL_AVX512_GFNI) return tq1 ? bn__tdot_tq1_avx512 : bn__tdot_i2_avx512_gfni;
    if (kernel == BN_KERNEL_AVX2) return tq1 ? bn__tdot_tq1_avx2 : bn__tdot_i2_avx2;
    if (kernel == BN_KERNEL_AVX_VNNI) return tq1 ? bn__tdot_tq1_avx2 : bn__tdot_i2_avxvnni;
    return NULL;
}

/* ---- x86 float kernels (lm_head, untied embeddings as a matrix) ---- */
BN__TARGET_AVX2 static float bn__hsum_ps256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    return _mm_cvtss_f32(s);
}

/* 16 weights from column c as floats; lanes outside `mask` are 0. (The
   maskz_ forms: g++ 12 reports the plain ones' "undefined" start vector
   under -Wmaybe-uninitialized.) */
BN__TARGET_AVX512 BN__INLINE __m512 bn__fload_avx512(const void *row, const bn_ftype T, int c, __mmask16 mask) {
    const __mmask16 all = (__mmask16)0xffff;
    switch (T) {
    case BN_FTYPE_F32: return _mm512_maskz_loadu_ps(mask, (const float *)row + c);
    case BN_FTYPE_BF16:
        return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(
            all, _mm512_maskz_cvtepu16_epi32(all, _mm256_maskz_loadu_epi16(mask, (const uint16_t *)row + c)), 16));
    case BN_FTYPE_F16: return _mm512_maskz_cvtph_ps(all, _mm256_maskz_loadu_epi16(mask, (const uint16_t *)row + c));
    default:
        return _mm512_maskz_cvtepi32_ps(
            all, _mm512_maskz_cvtepi8_epi32(all, _mm_maskz_loadu_epi8(mask, (const int8_t *)row + c)));
    }
}

/* The horizontal sums of v0..v3 as the four lanes of one vector. Every lane
   is added up by the same tree, so a sum does not depend on its position. */
BN__TARGET_AVX512 static __m128 bn__hsum4_ps512(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
    __m512 a = _mm512_add_ps(_mm512_maskz_unpacklo_ps(BN__ALL16, v0, v1), _mm512_maskz_unpackhi_ps(BN__ALL16, v0, v1));
    __m512 b = _mm512_add_ps(_mm512_maskz_unpacklo_ps(BN__ALL16, v2, v3), _mm512_maskz_unpackhi_ps(BN__ALL16, v2, v3));
    __m512 c = _mm512_add_ps(_mm512_castpd_ps(_mm512_maskz_unpacklo_pd(BN__ALL8, _mm512_castps_pd(a), _mm512_castps_pd(b))),
                             _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(BN__ALL8, _mm512_castps_pd(a), _mm512_castps_pd(b))));
    /* each 128-bit lane of c now holds one partial sum of v0, v1, v2, v3 */
    __m256 d = _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(BN__ALL8, _mm512_castps_pd(c), 0)),
                             _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(BN__ALL8, _mm512_castps_pd(c), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
}

/* Six rows against NT <= 4 tokens, one accumulator per (row, token) fed 16
   columns per step: each converted weight vector serves NT tokens and each
   activation vector six rows, and every sum is formed in the same order in
   any tile. The kernel is bound by what it loads from L2, so the more rows
   share an activation vector the better, up to the 32 registers (24
   accumulators, 6 weight vectors, 1 activation vector). 2B4T head, 8
   tokens, 2 threads: 6 rows 21 ms, 4 rows 23, one row at a time 35. Rows
   past nr repeat row 0; their sums are dropped. Row r's sum for token t goes
   to out[r * ldo + t]. (F32, F16 and I8; BF16 has its own kernel below.) */
#define BN__FT_WEIGHTS(M)                              \
    w0 = bn__fload_avx512(r0 + off, T, 0, M);          \
    w1 = bn__fload_avx512(r1 + off, T, 0, M);          \
    w2 = bn__fload_avx512(r2 + off, T, 0, M);          \
    w3 = bn__fload_avx512(r3 + off, T, 0, M);          \
    w4 = bn__fload_avx512(r4 + off, T, 0, M);          \
    w5 = bn__fload_avx512(r5 + off, T, 0, M)
#define BN__FT_TOKEN(t, M, A0, A1, A2, A3, A4, A5)    \
    xv = _mm512_maskz_loadu_ps(M, x[t] + c);          \
    A0 = _mm512_fmadd_ps(w0, xv, A0);                 \
    A1 = _mm512_fmadd_ps(w1, xv, A1);                 \
    A2 = _mm512_fmadd_ps(w2, xv, A2);                 \
    A3 = _mm512_fmadd_ps(w3, xv, A3);                 \
    A4 = _mm512_fmadd_ps(w4, xv, A4);                 \
    A5 = _mm512_fmadd_ps(w5, xv, A5)
#define BN__FT_STEP(M)                                                         \
    BN__FT_WEIGHTS(M);                                                         \
    BN__FT_TOKEN(0, M, a00, a10, a20, a30, a40, a50);                          \
    if (NT > 1) { BN__FT_TOKEN(1, M, a01, a11, a21, a31, a41, a51); }          \
    if (NT > 2) { BN__FT_TOKEN(2, M, a02, a12, a22, a32, a42, a52); }          \
    if (NT > 3) { BN__FT_TOKEN(3, M, a03, a13, a23, a33, a43, a53); }

/* Prefetches for the block at `off` of a group of six rows: tiled, the group
   is one stream, asked for BN__PREFETCH_AHEAD bytes ahead; row-major, six
   streams, each asked for at the next group's lines (the hardware
   prefetcher alone falls behind either way). */
BN__TARGET_AVX512 BN__INLINE void bn__fprefetch6(const uint8_t *w, size_t row_step, size_t off, int tiled,
                                                 size_t block_bytes) {
    size_t line, r;
    if (tiled) {
        for (line = 0; line < block_bytes; line += 64) BN__PREFETCH_WEIGHTS(w + off + BN__PREFETCH_AHEAD + line);
    } else {
        for (r = 0; r < 6; r++) BN__PREFETCH_WEIGHTS(w + r * row_step + off + 6 * row_step);
    }
}

BN__TARGET_AVX512 BN__INLINE void bn__fdot_avx512_tile(const uint8_t *w, size_t row_step, size_t block_step, int tiled,
                                                        int nr, const bn_ftype T, int cols, const float *const *x,
                                                        const int NT, float *out, int ldo, int prefetch) {
    const uint8_t *r0 = w, *r1 = nr > 1 ? w + row_step : w, *r2 = nr > 2 ? w + 2 * row_step : w,
                  *r3 = nr > 3 ? w + 3 * row_step : w, *r4 = nr > 4 ? w + 4 * row_step : w,
                  *r5 = nr > 5 ? w + 5 * row_step : w;
    const size_t block_bytes = 6 * 16 * bn__ftype_size(T);
    size_t off = 0;
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    __m512 a40 = a00, a41 = a00, a42 = a00, a43 = a00, a50 = a00, a51 = a00, a52 = a00, a53 = a00;
    __m512 w0, w1, w2, w3, w4, w5, xv;
    float sums[6][4];
    int c = 0, r, t;
    for (; c + 16 <= cols; c += 16, off += block_step) {
        if (prefetch) bn__fprefetch6(w, row_step, off, tiled, block_bytes);
        BN__FT_STEP(BN__ALL16)
    }
    if (c < cols) {
        __mmask16 tail = (__mmask16)((1u << (cols - c)) - 1);
        BN__FT_STEP(tail)
    }
    /* row r's tokens as the lanes of one vector (unused tokens' sums are 0) */
    _mm_storeu_ps(sums[0], bn__hsum4_ps512(a00, a01, a02, a03));
    _mm_storeu_ps(sums[1], bn__hsum4_ps512(a10, a11, a12, a13));
    _mm_storeu_ps(sums[2], bn__hsum4_ps512(a20, a21, a22, a23));
    _mm_storeu_ps(sums[3], bn__hsum4_ps512(a30, a31, a32, a33));
    _mm_storeu_ps(sums[4], bn__hsum4_ps512(a40, a41, a42, a43));
    _mm_storeu_ps(sums[5], bn__hsum4_ps512(a50, a51, a52, a53));
    for (r = 0; r < nr; r++)
        for (t = 0; t < NT; t++) out[r * ldo + t] = sums[r][t];
}

BN__TARGET_AVX512 BN__INLINE void bn__fdot_avx512_type(const uint8_t *w, size_t row_step, size_t block_step, int tiled,
                                                        int nr, const bn_ftype T, int cols, const float *const *x,
                                                        int nt, float *out) {
    int t0, n, pf;
    for (t0 = 0; t0 < nt; t0 += n) {
        n = BN_MIN(nt - t0, 4);
        pf = t0 == 0; /* the first pass over the rows asks for their lines (BN__PREFETCH_AHEAD) */
        switch (n) {
        case 1: bn__fdot_avx512_tile(w, row_step, block_step, tiled, nr, T, cols, x + t0, 1, out + t0, nt, pf); break;
        case 2: bn__fdot_avx512_tile(w, row_step, block_step, tiled, nr, T, cols, x + t0, 2, out + t0, nt, pf); break;
        case 3: bn__fdot_avx512_tile(w, row_step, block_step, tiled, nr, T, cols, x + t0, 3, out + t0, nt, pf); break;
        default: bn__fdot_avx512_tile(w, row_step, block_step, tiled, nr, T, cols, x + t0, 4, out + t0, nt, pf); break;
        }
    }
}

/* ---- BF16 with AVX-512: six rows as three pairs against NT <= 8 tokens ----
   A pair's block is one vector whose lanes 0-7 belong to the first row and
   8-15 to the second: "lo" holds columns 0-7 of both, "hi" columns 8-15.
   Tiled, that is one 64-byte load of the interleaved words (see bn_fmat),
   a shift and a mask: two instructions make 32 floats, where widening made
   16 with two. Row-major, the two rows are widened and their halves
   shuffled into the same lanes, so both layouts form the same sums. Each
   activation half is broadcast to both halves of a vector, and the weights
   converted once serve all 8 tokens: 24 accumulators, 6 weight vectors, 1
   activation vector. (2B4T head alone, 8 tokens, 2 threads, Zen 4: 34-36 ms
   against 42.7 for the widening kernel in tiles of 4 tokens.) */
#define BN__BF_PAIR_TILED(p, L, H)                                                          \
    v = _mm512_load_si512((const void *)(w + off + 64 * (p)));                              \
    L = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(BN__ALL16, v, 16));                      \
    H = _mm512_castsi512_ps(_mm512_and_si512(v, himask))
#define BN__BF_PAIR_ROWS(RA, RB, M, L, H)                                                   \
    do {                                                                                    \
        __m512 a_ = bn__fload_avx512(RA + off, BN_FTYPE_BF16, 0, M);                         \
        __m512 b_ = bn__fload_avx512(RB + off, BN_FTYPE_BF16, 0, M);                         \
        L = _mm512_maskz_shuffle_f32x4(BN__ALL16, a_, b_, 0x44); /* a 0-7, b 0-7 */           \
        H = _mm512_maskz_shuffle_f32x4(BN__ALL16, a_, b_, 0xee); /* a 8-15, b 8-15 */         \
    } while (0)
#define BN__BF_TOKEN(t, A0, A1, A2)                       \
    if (NT > (t)) {                                       \
        xv = bn__bcast8_ps(x[t] + c, mlo);                \
        A0 = _mm512_fmadd_ps(l0, xv, A0);                 \
        A1 = _mm512_fmadd_ps(l1, xv, A1);                 \
        A2 = _mm512_fmadd_ps(l2, xv, A2);                 \
        xv = bn__bcast8_ps(x[t] + c + 8, mhi);            \
        A0 = _mm512_fmadd_ps(h0, xv, A0);                 \
        A1 = _mm512_fmadd_ps(h1, xv, A1);                 \
        A2 = _mm512_fmadd_ps(h2, xv, A2);                 \
    }

/* the three pairs' products for every token of the tile */
#define BN__BF_TOKENS                  \
    BN__BF_TOKEN(0, a00, a10, a20)     \
    BN__BF_TOKEN(1, a01, a11, a21)     \
    BN__BF_TOKEN(2, a02, a12, a22)     \
    BN__BF_TOKEN(3, a03, a13, a23)     \
    BN__BF_TOKEN(4, a04, a14, a24)     \
    BN__BF_TOKEN(5, a05, a15, a25)     \
    BN__BF_TOKEN(6, a06, a16, a26)     \
    BN__BF_TOKEN(7, a07, a17, a27)

/* x[0..7] (the lanes in `m`, others 0) in both halves of a vector. A full
   one is a single vbroadcastf64x4 from memory, written as asm: the intrinsic
   trips g++ 12's -Wmaybe-uninitialized (its "undefined" start vector), and
   its maskz_ form compiles to a load and a shuffle, 16 more shuffles a step. */
BN__TARGET_AVX512 BN__INLINE __m512 bn__bcast8_ps(const float *x, __mmask8 m) {
    __m512 r;
    if (m != (__mmask8)0xff)
        return _mm512_castpd_ps(_mm512_maskz_broadcast_f64x4(BN__ALL8, _mm256_castps_pd(_mm256_maskz_loadu_ps(m, x))));
    __asm__("{vbroadcastf64x4 %1, %0|vbroadcastf64x4 %0, %1}" : "=v"(r) : "m"(*(const float(*)[8])x));
    return r;
}

/* The sums of lanes 0-7 and of lanes 8-15 of v, by the same tree. */
BN__TARGET_AVX512 static void bn__hsum_halves_ps512(__m512 v, float *first, float *second) {
    v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(BN__ALL16, v, v, 0xb1)); /* + lane i ^ 4 */
    v = _mm512_add_ps(v, _mm512_maskz_permute_ps(BN__ALL16, v, 0x4e));        /* + lane i ^ 2 */
    v = _mm512_add_ps(v, _mm512_maskz_permute_ps(BN__ALL16, v, 0xb1));        /* + lane i ^ 1 */
    /* (both halves through maskz extracts: g++ 12 reports the casts' "undefined" vectors) */
    *first = _mm_cvtss_f32(_mm256_castps256_ps128(
        _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(BN__ALL8, _mm512_castps_pd(v), 0))));
    *second = _mm_cvtss_f32(_mm256_castps256_ps128(
        _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(BN__ALL8, _mm512_castps_pd(v), 1))));
}

BN__TARGET_AVX512 BN__INLINE void bn__fdot_bf16_avx512_tile(const uint8_t *w, size_t row_step, size_t block_step,
                                                             int tiled, int nr, int cols, const float *const *x,
                                                             const int NT, float *out) {
    const uint8_t *r0 = w, *r1 = nr > 1 ? w + row_step : w, *r2 = nr > 2 ? w + 2 * row_step : w,
                  *r3 = nr > 3 ? w + 3 * row_step : w, *r4 = nr > 4 ? w + 4 * row_step : w,
                  *r5 = nr > 5 ? w + 5 * row_step : w;
    const __m512i himask = _mm512_set1_epi32((int)0xffff0000u);
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a04 = a00, a05 = a00, a06 = a00, a07 = a00;
    __m512 a10 = a00, a11 = a00, a12 = a00, a13 = a00, a14 = a00, a15 = a00, a16 = a00, a17 = a00;
    __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00, a24 = a00, a25 = a00, a26 = a00, a27 = a00;
    __m512 l0, l1, l2, h0, h1, h2, xv;
    __m512i v;
    float sums[6][8];
    size_t off = 0;
    int c = 0, r, t;
    if (tiled) { /* whole blocks: constant masks, no branch but the loop's (the same sums as below) */
        const __mmask8 mlo = (__mmask8)0xff, mhi = (__mmask8)0xff;
        for (; c + 16 <= cols; c += 16, off += block_step) {
            bn__fprefetch6(w, row_step, off, 1, 6 * 16 * 2);
            BN__BF_PAIR_TILED(0, l0, h0);
            BN__BF_PAIR_TILED(1, l1, h1);
            BN__BF_PAIR_TILED(2, l2, h2);
            BN__BF_TOKENS
        }
    }
    for (; c < cols; c += 16, off += block_step) {
        int left = cols - c;
        __mmask8 mlo = (__mmask8)(left >= 8 ? 0xff : (1u << left) - 1);
        __mmask8 mhi = (__mmask8)(left >= 16 ? 0xff : left > 8 ? (1u << (left - 8)) - 1 : 0);
        bn__fprefetch6(w, row_step, off, tiled, 6 * 16 * 2);
        if (tiled) { /* padded to whole blocks with zeros */
            BN__BF_PAIR_TILED(0, l0, h0);
            BN__BF_PAIR_TILED(1, l1, h1);
            BN__BF_PAIR_TILED(2, l2, h2);
        } else {
            __mmask16 m = (__mmask16)(left >= 16 ? 0xffff : (1u << left) - 1);
            BN__BF_PAIR_ROWS(r0, r1, m, l0, h0);
            BN__BF_PAIR_ROWS(r2, r3, m, l1, h1);
            BN__BF_PAIR_ROWS(r4, r5, m, l2, h2);
        }
        BN__BF_TOKENS
    }
    {
        const __m512 acc[3][8] = {{a00, a01, a02, a03, a04, a05, a06, a07},
                                  {a10, a11, a12, a13, a14, a15, a16, a17},
                                  {a20, a21, a22, a23, a24, a25, a26, a27}};
        for (r = 0; r < 3; r++)
            for (t = 0; t < NT; t++) bn__hsum_halves_ps512(acc[r][t], &sums[2 * r][t], &sums[2 * r + 1][t]);
    }
    for (r = 0; r < nr; r++)
        for (t = 0; t < NT; t++) out[r * NT + t] = sums[r][t];
}

/* Two tiled groups (12 rows) against one token, columns a multiple of 16:
   each activation half broadcast serves six pairs instead of three, six
   accumulators keep twice the products in flight, and each pair's products
   follow its load at once. Every (row, token) sum is formed as in
   bn__fdot_bf16_avx512_tile, bit for bit. (2B4T head streamed from memory,
   one token, AMD EPYC Zen 5: 24.5 GB/s against 22.2 for the six-row tile
   with one thread, see docs/performance.md.) */
#define BN__BF_PAIR_FMA(g, p, A)                                                                     \
    v = _mm512_load_si512((const void *)((g) + off + 64 * (p)));                                     \
    A = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_maskz_slli_epi32(BN__ALL16, v, 16)), xl, A);      \
    A = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, himask)), xh, A)
BN__TARGET_AVX512 BN__NOINLINE void bn__fdot_bf16_avx512_12x1(const uint8_t *w, size_t group_bytes, size_t block_step,
                                                             int cols, const float *x, float *out) {
    const __m512i himask = _mm512_set1_epi32((int)0xffff0000u);
    const uint8_t *g0 = w, *g1 = w + group_bytes;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, xl, xh;
    __m512i v;
    size_t off = 0;
    int c;
    for (c = 0; c + 16 <= cols; c += 16, off += block_step) {
        bn__fprefetch6(g0, 0, off, 1, 6 * 16 * 2);
        bn__fprefetch6(g1, 0, off, 1, 6 * 16 * 2);
        xl = bn__bcast8_ps(x + c, (__mmask8)0xff);
        xh = bn__bcast8_ps(x + c + 8, (__mmask8)0xff);
        BN__BF_PAIR_FMA(g0, 0, a0);
        BN__BF_PAIR_FMA(g0, 1, a1);
        BN__BF_PAIR_FMA(g0, 2, a2);
        BN__BF_PAIR_FMA(g1, 0, a3);
        BN__BF_PAIR_FMA(g1, 1, a4);
        BN__BF_PAIR_FMA(g1, 2, a5);
    }
    bn__hsum_halves_ps512(a0, &out[0], &out[1]);
    bn__hsum_halves_ps512(a1, &out[2], &out[3]);
    bn__hsum_halves_ps512(a2, &out[4], &out[5]);
    bn__hsum_halves_ps512(a3, &out[6], &out[7]);
    bn__hsum_halves_ps512(a4, &out[8], &out[9]);
    bn__hsum_halves_ps512(a5, &out[10], &out[11]);
}

BN__TARGET_AVX512 static void bn__fdot_bf16_avx512(const uint8_t *w, size_t row_step, size_t block_step, int tiled,
                                                   int nr, int cols, const float *const *x, int nt, float *out) {
    switch (nt) {
    case 1: bn__fdot_bf16_avx512_tile(w, row_step, block_step, tiled, nr, cols, x, 1, out); break;
    case 2: bn__fdot_bf16_avx512_tile(w, row_step, block_step, tiled, nr, cols, x, 2, out); break;
    case 3: bn__fdot_bf16_avx512_tile(w, row_step, block_step, tiled, nr, cols, x, 3, out); break;
    case 4: bn__fdot_bf16_avx512_tile(w, row_step, block_step, tiled, nr, cols, x, 4, out); break;
    case 5: bn__fdot_bf16_avx512_tile(w, row_step, block_step, tiled, nr, cols, x, 5, out); break;
    case 6: bn__fdot_bf16_avx512_tile(w, row_step, block_step, tiled, nr, cols, x, 6, out); break;
    case 7: bn__fdot_bf16_avx512_tile(w, row_step, block_step, tiled, nr, cols, x, 7, out); break;
    default: bn__fdot_bf16_avx512_tile(w, row_step, block_step, tiled, nr, cols, x, 8, out); break;
    }
}

BN__TARGET_AVX512 static void bn__fdot_avx512(const uint8_t *w, size_t row_step, size_t block_step, int tiled, int nr,
                                              bn_ftype type, int cols, const float *const *x, int nt, float *out) {
    switch (type) {
    case BN_FTYPE_F32: bn__fdot_avx512_type(w, row_step, block_step, tiled, nr, BN_FTYPE_F32, cols, x, nt, out); break;
    case BN_FTYPE_BF16: bn__fdot_bf16_avx512(w, row_step, block_step, tiled, nr, cols, x, nt, out); break;
    case BN_FTYPE_F16: bn__fdot_avx512_type(w, row_step, block_step, tiled, nr, BN_FTYPE_F16, cols, x, nt, out); break;
    default: bn__fdot_avx512_type(w, row_step, block_step, tiled, nr, BN_FTYPE_I8, cols, x, nt, out); break;
    }
}

/* 8 weights from column c of a row (c + 8 <= 16 within a block) as floats;
   a tiled BF16 block's interleaved words hold columns j and j + 8. */
BN__TARGET_AVX2 BN__INLINE __m256 bn__fload_avx2(const void *row, const bn_ftype T, int tiled, int c) {
    switch (T) {
    case BN_FTYPE_F32: return _mm256_loadu_ps((const float *)row + c);
    case BN_FTYPE_BF16:
        if (tiled) {
            __m256i v = _mm256_loadu_si256((const __m256i *)row);
            return _mm256_castsi256_ps(c == 0 ? _mm256_slli_epi32(v, 16)
                                              : _mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
        }
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + c))), 16));
    case BN_FTYPE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + c)));
    default: return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((const int8_t *)row + c))));
    }
}

/* One row (its 16-column blocks block_step bytes apart) against NT tokens. */
BN__TARGET_AVX2 BN__INLINE void bn__fdot_avx2_core(const uint8_t *row, size_t block_step, int tiled, const bn_ftype T,
                                                    int cols, const float *const *x, const int NT, float *out) {
    __m256 acc[BN__FROW_TOKENS][2];
    int c = 0, t;
    for (t = 0; t < NT; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    for (; c + 16 <= cols; c += 16, row += block_step) {
        __m256 w0 = bn__fload_avx2(row, T, tiled, 0), w1 = bn__fload_avx2(row, T, tiled, 8);
        for (t = 0; t < NT; t++) {
            acc[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + c), acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + c + 8), acc[t][1]);
        }
    }
    for (t = 0; t < NT; t++) {
        float tail = c < cols ? bn__fdot_block_part(row, T, tiled, 0, cols - c, x[t] + c) : 0.0f;
        out[t] = bn__hsum_ps256(_mm256_add_ps(acc[t][0], acc[t][1])) + tail;
    }
}

BN__TARGET_AVX2 BN__INLINE void bn__fdot_avx2_nt(const uint8_t *row, size_t block_step, int tiled, bn_ftype type,
                                                  int cols, const float *const *x, const int NT, float *out) {
    switch (type) {
    case BN_FTYPE_F32: bn__fdot_avx2_core(row, block_step, tiled, BN_FTYPE_F32, cols, x, NT, out); break;
    case BN_FTYPE_BF16: bn__fdot_avx2_core(row, block_step, tiled, BN_FTYPE_BF16, cols, x, NT, out); break;
    case BN_FTYPE_F16: bn__fdot_avx2_core(row, block_step, tiled, BN_FTYPE_F16, cols, x, NT, out); break;
    default: bn__fdot_avx2_core(row, block_step, tiled, BN_FTYPE_I8, cols, x, NT, out); break;
    }
}

BN__TARGET_AVX2 static void bn__frow_avx2_tile(const uint8_t *row, size_t block_step, int tiled, bn_ftype type,
                                               int cols, const float *const *x, float *out) {
    bn__fdot_avx2_nt(row, block_step, tiled, type, cols, x, BN__FROW_TOKENS, out);
}
BN__TARGET_AVX2 static void bn__frow_avx2_one(const uint8_t *row, size_t block_step, int tiled, bn_ftype type,
                                              int cols, const float *const *x, float *out) {
    bn__fdot_avx2_nt(row, block_step, tiled, type, cols, x, 1, out);
}
static void bn__fdot_avx2(const uint8_t *w, size_t row_step, size_t block_step, int tiled, int nr, bn_ftype type,
                          int cols, const float *const *x, int nt, float *out) {
    bn__fdot_by_row(bn__frow_avx2_tile, bn__frow_avx2_one, w, row_step, block_step, tiled, nr, type, cols, x, nt, out);
}

static bn__fdot_fn bn__fdot_simd(bn_kernel kernel) {
    if (bn__kernel_avx512(kernel)) return bn__fdot_avx512;
    if (kernel == BN_KERNEL_AVX2 || kernel == BN_KERNEL_AVX_VNNI) return bn__fdot_avx2;
    return NULL;
}

static bn__fdot12_fn bn__fdot12_simd(bn_kernel kernel, bn_ftype type) {
    return bn__kernel_avx512(kernel) && type == BN_FTYPE_BF16 ? bn__fdot_bf16_avx512_12x1 : NULL;
}

/* ---- NEON kernels ---- */
#elif defined(BN__SIMD_NEON)

/* The 16 codes of digit k of a 16-byte quarter, as signed bytes. */
BN__INLINE int8x16_t bn__i2_neon_digit(uint8x16_t v, int k) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    switch (k) {
    case 0: return vreinterpretq_s8_u8(vandq_u8(v, m3));
    case 1: return vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 2), m3));
    case 2: return vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 4), m3));
    default: return vreinterpretq_s8_u8(vshrq_n_u8(v, 6));
    }
}

/* digit = (t >= 86) + (t >= 171); compare masks are -1 as signed bytes. */
BN__INLINE int8x16_t bn__tq1_neon_digit(uint8x16_t t) {
    int8x16_t m = vaddq_s8(vreinterpretq_s8_u8(vcgeq_u8(t, vdupq_n_u8(86))),
                           vreinterpretq_s8_u8(vcgeq_u8(t, vdupq_n_u8(171))));
    return vnegq_s8(m);
}

/* Without dotprod: smull/smlal into int16 (a block adds at most 32 products
   of |v| <= 256 per lane: <= 8192), widened into int32 once per block. */
BN__INLINE int16x8_t bn__neon_mla(int16x8_t acc, int8x16_t d, const int8_t *x) {
    int8x16_t xv = vld1q_s8(x);
    acc = vmlal_s8(acc, vget_low_s8(d), vget_low_s8(xv));
    return vmlal_s8(acc, vget_high_s8(d), vget_high_s8(xv));
}

BN__INLINE void bn__neon_core(int tq1, const uint8_t *w, int nblocks, const int8_t *const *x, const int NT,
                              int32_t *out) {
    const int bw = tq1 ? 320 : 256, nd = tq1 ? 5 : 4;
    int32x4_t acc[BN__ROWTILE];
    int16x8_t s16[BN__ROWTILE];
    int b, t, q, k;
    for (t = 0; t < NT; t++) acc[t] = vdupq_n_s32(0);
    for (b = 0; b < nblocks; b++) {
        for (t = 0; t < NT; t++) s16[t] = vdupq_n_s16(0);
        for (q = 0; q < 4; q++) {
            uint8x16_t v = vld1q_u8(w + (size_t)b * 64 + 16 * q);
            for (k = 0; k < nd; k++) {
                int8x16_t d = tq1 ? bn__tq1_neon_digit(v) : bn__i2_neon_digit(v, k);
                for (t = 0; t < NT; t++) s16[t] = bn__neon_mla(s16[t], d, x[t] + (size_t)b * bw + 64 * k + 16 * q);
                if (tq1) v = vmulq_u8(v, vdupq_n_u8(3));
            }
        }
        for (t = 0; t < NT; t++) acc[t] = vpadalq_s16(acc[t], s16[t]);
    }
    for (t = 0; t < NT; t++) out[t] = vaddvq_s32(acc[t]);
}

static void bn__trow_i2_neon(const uint8_t *w, int nblocks, const int8_t *const *x, int nt, int32_t *out) {
    int t;
    if (nt == BN__ROWTILE) {
        bn__neon_core(0, w, nblocks, x, BN__ROWTILE, out);
        return;
    }
    for (t = 0; t < nt; t++) bn__neon_core(0, w, nblocks, x + t, 1, out + t);
}

static void bn__trow_tq1_neon(const uint8_t *w, int nblocks, const int8_t *const *x, int nt, int32_t *out) {
    int t;
    if (nt == BN__ROWTILE) {
        bn__neon_core(1, w, nblocks, x, BN__ROWTILE, out);
        return;
    }
    for (t = 0; t < nt; t++) bn__neon_core(1, w, nblocks, x + t, 1, out + t);
}

#if defined(BN__SIMD_NEON_DOT)
/* With dotprod: sdot adds 4 products into each int32 lane. */
BN__TARGET_DOTPROD BN__INLINE void bn__neondot_core(int tq1, const uint8_t *w, int nblocks, const int8_t *const *x,
                                                    const int NT, int32_t *out) {
    const int bw = tq1 ? 320 : 256, nd = tq1 ? 5 : 4;
    int32x4_t acc[BN__ROWTILE];
    int b, t, q, k;
    for (t = 0; t < NT; t++) acc[t] = vdupq_n_s32(0);
    for (b = 0; b < nblocks; b++)
        for (q = 0; q < 4; q++) {
            uint8x16_t v = vld1q_u8(w + (size_t)b * 64 + 16 * q);
            for (k = 0; k < nd; k++) {
                int8x16_t d = tq1 ? bn__tq1_neon_digit(v) : bn__i2_neon_digit(v, k);
                for (t = 0; t < NT; t++)
                    acc[t] = vdotq_s32(acc[t], d, vld1q_s8(x[t] + (size_t)b * bw + 64 * k + 16 * q));
                if (tq1) v = vmulq_u8(v, vdupq_n_u8(3));
            }
        }
    for (t = 0; t < NT; t++) out[t] = vaddvq_s32(acc[t]);
}

BN__TARGET_DOTPROD static void bn__trow_i2_neondot(const uint8_t *w, int nblocks, const int8_t *const *x, int nt,
                                                   int32_t *out) {
    int t;
    if (nt == BN__ROWTILE) {
        bn__neondot_core(0, w, nblocks, x, BN__ROWTILE, out);
        return;
    }
    for (t = 0; t < nt; t++) bn__neondot_core(0, w, nblocks, x + t, 1, out + t);
}

BN__TARGET_DOTPROD static void bn__trow_tq1_neondot(const uint8_t *w, int nblocks, const int8_t *const *x, int nt,
                                                    int32_t *out) {
    int t;
    if (nt == BN__ROWTILE) {
        bn__neondot_core(1, w, nblocks, x, BN__ROWTILE, out);
        return;
    }
    for (t = 0; t < nt; t++) bn__neondot_core(1, w, nblocks, x + t, 1, out + t);
}
#endif

static void bn__tdot_i2_neon(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *const *x, int nt,
                             int32_t *out) {
    bn__tdot_by_row(bn__trow_i2_neon, w, row_bytes, nr, nblocks, x, nt, out);
}
static void bn__tdot_tq1_neon(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *const *x, int nt,
                              int32_t *out) {
    bn__tdot_by_row(bn__trow_tq1_neon, w, row_bytes, nr, nblocks, x, nt, out);
}
#if defined(BN__SIMD_NEON_DOT)
static void bn__tdot_i2_neondot(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *const *x,
                                int nt, int32_t *out) {
    bn__tdot_by_row(bn__trow_i2_neondot, w, row_bytes, nr, nblocks, x, nt, out);
}
static void bn__tdot_tq1_neondot(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *const *x,
                                 int nt, int32_t *out) {
    bn__tdot_by_row(bn__trow_tq1_neondot, w, row_bytes, nr, nblocks, x, nt, out);
}
#endif

static bn__tdot_fn bn__tdot_simd(bn_kernel kernel, bn_tlayout layout) {
    int tq1 = layout == BN_TLAYOUT_TQ1;
#if defined(BN__SIMD_NEON_DOT)
    if (kernel == BN_KERNEL_NEON_DOT) return tq1 ? bn__tdot_tq1_neondot : bn__tdot_i2_neondot;
#endif
    if (kernel == BN_KERNEL_NEON) return tq1 ? bn__tdot_tq1_neon : bn__tdot_i2_neon;
    return NULL;
}

/* ---- NEON float kernel: 8 columns per step ---- */
/* Columns c .. c + 7 of a row's block (c is 0 or 8) as two vectors; a tiled
   BF16 block's interleaved words hold columns j and j + 8. */
BN__INLINE void bn__fload_neon(const void *row, const bn_ftype T, int tiled, int c, float32x4_t *lo,
                               float32x4_t *hi) {
    switch (T) {
    case BN_FTYPE_F32:
        *lo = vld1q_f32((const float *)row + c);
        *hi = vld1q_f32((const float *)row + c + 4);
        break;
    case BN_FTYPE_BF16:
        if (tiled) {
            uint32x4_t w0 = vld1q_u32((const uint32_t *)row), w1 = vld1q_u32((const uint32_t *)row + 4);
            if (c == 0) {
                *lo = vreinterpretq_f32_u32(vshlq_n_u32(w0, 16));
                *hi = vreinterpretq_f32_u32(vshlq_n_u32(w1, 16));
            } else {
                *lo = vreinterpretq_f32_u32(vandq_u32(w0, vdupq_n_u32(0xffff0000u)));
                *hi = vreinterpretq_f32_u32(vandq_u32(w1, vdupq_n_u32(0xffff0000u)));
            }
        } else {
            uint16x8_t h = vld1q_u16((const uint16_t *)row + c);
            *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
            *hi = vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h), 16));
        }
        break;
    case BN_FTYPE_F16: {
        uint16x8_t h = vld1q_u16((const uint16_t *)row + c);
        *lo = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
        *hi = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h)));
        break;
    }
    default: {
        int16x8_t h = vmovl_s8(vld1_s8((const int8_t *)row + c));
        *lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
        *hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(h)));
        break;
    }
    }
}

/* One row (its 16-column blocks block_step bytes apart) against NT tokens. */
BN__INLINE void bn__fdot_neon_core(const uint8_t *row, size_t block_step, int tiled, const bn_ftype T, int cols,
                                   const float *const *x, const int NT, float *out) {
    float32x4_t acc[BN__FROW_TOKENS][2];
    int c = 0, t;
    for (t = 0; t < NT; t++) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
    for (; c + 8 <= cols; c += 8) {
        float32x4_t w0, w1;
        bn__fload_neon(row + (size_t)(c / 16) * block_step, T, tiled, c % 16, &w0, &w1);
        for (t = 0; t < NT; t++) {
            acc[t][0] = vfmaq_f32(acc[t][0], w0, vld1q_f32(x[t] + c));
            acc[t][1] = vfmaq_f32(acc[t][1], w1, vld1q_f32(x[t] + c + 4));
        }
    }
    for (t = 0; t < NT; t++) {
        float tail = 0.0f;
        if (c < cols) /* the last block's columns from c on */
            tail = bn__fdot_block_part(row + (size_t)(c / 16) * block_step, T, tiled, c % 16, c % 16 + cols - c,
                                       x[t] + c - c % 16);
        out[t] = vaddvq_f32(vaddq_f32(acc[t][0], acc[t][1])) + tail;
    }
}

BN__INLINE void bn__fdot_neon_nt(const uint8_t *row, size_t block_step, int tiled, bn_ftype type, int cols,
                                 const float *const *x, const int NT, float *out) {
    switch (type) {
    case BN_FTYPE_F32: bn__fdot_neon_core(row, block_step, tiled, BN_FTYPE_F32, cols, x, NT, out); break;
    case BN_FTYPE_BF16: bn__fdot_neon_core(row, block_step, tiled, BN_FTYPE_BF16, cols, x, NT, out); break;
    case BN_FTYPE_F16: bn__fdot_neon_core(row, block_step, tiled, BN_FTYPE_F16, cols, x, NT, out); break;
    default: bn__fdot_neon_core(row, block_step, tiled, BN_FTYPE_I8, cols, x, NT, out); break;
    }
}

static void bn__frow_neon_tile(const uint8_t *row, size_t block_step, int tiled, bn_ftype type, int cols,
                               const float *const *x, float *out) {
    bn__fdot_neon_nt(row, block_step, tiled, type, cols, x, BN__FROW_TOKENS, out);
}
static void bn__frow_neon_one(const uint8_t *row, size_t block_step, int tiled, bn_ftype type, int cols,
                              const float *const *x, float *out) {
    bn__fdot_neon_nt(row, block_step, tiled, type, cols, x, 1, out);
}
static void bn__fdot_neon(const uint8_t *w, size_t row_step, size_t block_step, int tiled, int nr, bn_ftype type,
                          int cols, const float *const *x, int nt, float *out) {
    bn__fdot_by_row(bn__frow_neon_tile, bn__frow_neon_one, w, row_step, block_step, tiled, nr, type, cols, x, nt, out);
}

static bn__fdot_fn bn__fdot_simd(bn_kernel kernel) {
    return kernel == BN_KERNEL_NEON || kernel == BN_KERNEL_NEON_DOT ? bn__fdot_neon : NULL;
}

static bn__fdot12_fn bn__fdot12_simd(bn_kernel kernel, bn_ftype type) {
    BN_UNUSED(kernel);
    BN_UNUSED(type);
    return NULL;
}

#else /* no SIMD in this build */

static bn__tdot_fn bn__tdot_simd(bn_kernel kernel, bn_tlayout layout) {
    BN_UNUSED(kernel);
    BN_UNUSED(layout);
    return NULL;
}

static bn__fdot_fn bn__fdot_simd(bn_kernel kernel) {
    BN_UNUSED(kernel);
    return NULL;
}

static bn__fdot12_fn bn__fdot12_simd(bn_kernel kernel, bn_ftype type) {
    BN_UNUSED(kernel);
    BN_UNUSED(type);
    return NULL;
}

#endif

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_TERNARY_SIMD_H */
