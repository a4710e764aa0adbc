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

/* Threads run and fiber switches since the start (the emulation's cost). */
void bnm_stats(long long *threads, long long *switches);

#ifdef __cplusplus
}
#endif
#endif
