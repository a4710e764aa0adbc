#ifndef BN_PART_TERNARY_MATMUL_H
#define BN_PART_TERNARY_MATMUL_H
/* Ternary weight layouts, activation quantization, scalar reference kernels (issues: core, kernels). */

#endif /* BN_PART_TERNARY_MATMUL_H */
