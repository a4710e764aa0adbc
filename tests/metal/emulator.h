/* The GPU emulator's C interface (tests only): runs the kernels of
   src/metal/bitnet.metal, compiled as C++ through tests/metal/metal_stdlib,
   the way a Metal dispatch would. Used by test_metal_kernels.cpp directly and
   by the Metal API stand-in (tests/metal/Metal) to execute command buffers. */
#ifndef BNM_EMULATOR_H
#define BNM_EMULATOR_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

/* Buffers a kernel takes (its [[buffer(i)]] arguments), or -1 when the
   source has no kernel of that name. */
int bnm_kernel_buffers(const char *name);

/* Runs kernel `name` over groups[0] x groups[1] x groups[2] threadgroups of
   threads[0] x threads[1] x threads[2] threads, buffer i at address bufs[i].
   Returns 0, or -1 with a message in err (a barrier some thread never
   reached, a simdgroup calling different SIMD-group functions, a deadlock,
   an unknown kernel). */
int bnm_dispatch(const char *name, void *const *bufs, int n_bufs, const unsigned groups[3], const unsigned threads[3],
                 char *err, size_t err_len);

/* The path of the .metal file the kernels were compiled from. */
const char *bnm_source_path(void);

/* bn_margs's field offsets in declaration order, then its size; returns the count. */
int bnm_margs_layout(size_t *offsets, int max);
/* The same list as an initializer, for a struct T with bn_margs's fields: the emulator computes it
   for the kernels' bn_margs, a test for the copy it compares (offsetof needs <stddef.h>). */
#define BNM_MARGS_LAYOUT(T)                                                                               \
    {offsetof(T, n_tokens), offsetof(T, rows), offsetof(T, cols), offsetof(T, layout), offsetof(T, scale),     \
     offsetof(T, ftype), offsetof(T, tiled), offsetof(T, add), offsetof(T, norm), offsetof(T, quant),          \
     offsetof(T, eps), offsetof(T, n_heads), offsetof(T, n_kv_heads), offsetof(T, head_dim), offsetof(T, n_ctx), \
     offsetof(T, n_layers), offsetof(T, layer), offsetof(T, kv_f16), sizeof(T)}

/* Rounding ties of the int8 quantization. The row kernel rounds x * a to
   the nearest integer; where x * a lies within a few ulp of k + 0.5, the CPU
   path, whose floats differ from the GPU's in the last bits (attention adds
   in another order), may round it the other way, and everything after it
   moves by ~1e-2. The emulator watches every quantizing bn_rows dispatch
   since bnm_ties_reset and keeps the closest ties; bnm_ties_flip makes the
   next run round one of them the other way, which shows that a difference
   from the CPU is that rounding and nothing else. */
typedef struct bnm_tie {
    int dispatch;   /* the n-th quantizing bn_rows dispatch since bnm_ties_reset (from 0) */
    int row, col;   /* token row and element */
    float v;        /* x * a */
    float distance; /* |x * a - (k + 0.5)| */
} bnm_tie;
void bnm_ties_reset(void);
int bnm_ties_closest(int k, bnm_tie *out); /* the k-th closest tie (k from 0); 0 if there is none */
void bnm_ties_flip(const bnm_tie *tie);    /* round this one the other way, once, counting from the next reset */

/* Threads run and fiber switches since the start (the emulation's cost). */
void bnm_stats(long long *threads, long long *switches);

#ifdef __cplusplus
}
#endif
#endif
