#ifndef BN_PART_MODEL_H
#define BN_PART_MODEL_H
/* config.json, architectures, weight variants, model loading (issue: core). */

#endif /* BN_PART_MODEL_H */
