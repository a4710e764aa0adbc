#ifndef BN_PART_FORWARD_H
#define BN_PART_FORWARD_H
/* Context, KV cache, batched transformer forward (issue: core). */

#endif /* BN_PART_FORWARD_H */
