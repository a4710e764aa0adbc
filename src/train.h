#ifndef BN_PART_TRAIN_H
#define BN_PART_TRAIN_H
/* BitNet quantization-aware training, AdamW, HF-layout checkpoints (issue: training). */

#endif /* BN_PART_TRAIN_H */
