#ifndef BN_PART_TERNARY_SIMD_H
#define BN_PART_TERNARY_SIMD_H
/* AVX2 / AVX-512 VNNI / NEON ternary kernels (issue: kernels). Empty until written. */

#endif /* BN_PART_TERNARY_SIMD_H */
