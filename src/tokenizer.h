#ifndef BN_PART_TOKENIZER_H
#define BN_PART_TOKENIZER_H
/* HF tokenizer.json: BPE, normalizers, pre-tokenizers, decoders, chat templates (issue: tokenizer). */

#endif /* BN_PART_TOKENIZER_H */
