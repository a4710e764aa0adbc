#ifndef BN_PART_AUTOGRAD_H
#define BN_PART_AUTOGRAD_H
/* Tape-based reverse-mode autograd (issue: training). */

#endif /* BN_PART_AUTOGRAD_H */
