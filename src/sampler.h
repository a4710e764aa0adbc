#ifndef BN_PART_SAMPLER_H
#define BN_PART_SAMPLER_H
/* Sampler chain (issue: generation). */

#endif /* BN_PART_SAMPLER_H */
