/* The HF parity test again, with every float matrix (embeddings, lm_head)
   copied into huge pages at load, as the 2B4T lm_head is on Linux (see
   bn__fmat_copy_huge in src/model.h): 1 byte is above the threshold. */
#define _DEFAULT_SOURCE
#define BN_HUGE_COPY_MIN 1
#define HF_PARITY_NAME "hf_parity_huge_pages"
#include "test_hf_parity.c"
