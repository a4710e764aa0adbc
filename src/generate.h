#ifndef BN_PART_GENERATE_H
#define BN_PART_GENERATE_H
/* Generation loop, stop conditions, streaming, beam search, batch scheduler (issue: generation). */

#endif /* BN_PART_GENERATE_H */
