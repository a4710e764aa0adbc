#ifndef BN_PART_SAFETENSORS_H
#define BN_PART_SAFETENSORS_H
/* SafeTensors reader (mmap, validation) and writer (issue: core). */

#endif /* BN_PART_SAFETENSORS_H */
