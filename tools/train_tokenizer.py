#!/usr/bin/env python3
"""Train a byte-level BPE tokenizer and save it as a HuggingFace tokenizer.json.

The result is built like LLaMA 3's tokenizer (which microsoft/bitnet-b1.58-2B-4T
uses): a regex Split pre-tokenizer with LLaMA 3's pattern, then ByteLevel
(bytes mapped to printable characters as GPT-2 does), a BPE model with merges,
and a ByteLevel decoder. So HF `tokenizers` and bitnet.h's tokenizer both load
it, and both encode a text to the same ids as this script's own encoder.

Python 3 standard library only.

    python3 tools/train_tokenizer.py data/tinyshakespeare.txt --vocab 1024 \\
        --out models/shakespeare --train-fraction 0.9 --encode build/shakespeare

trains on the first 90 % of the bytes of the text (the training split), writes
tokenizer.json + tokenizer_config.json into --out, and with --encode writes the
token ids of the training and validation splits (uint16, little-endian) as
train.bin and val.bin, with their byte counts in split.json.
"""
import argparse
import collections
import json
import os
import re
import struct
import sys

# LLaMA 3's pre-tokenizer pattern, as it appears in tokenizer.json...
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# ...and the same pattern for Python's `re`, which has no \p{..} classes:
# a letter is [^\W\d_], a number \d (exact for ASCII text such as tinyshakespeare).
L, N = r"[^\W\d_]", r"\d"
PY_PATTERN = re.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    r"|(?:[^\r\n\w]|_)?" + L + r"+"
    r"|" + N + r"{1,3}"
    r"| ?(?:[^\s\w]|_)+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+")

SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>"]


def bytes_to_unicode():
    """GPT-2's map from the 256 byte values to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_CHAR = bytes_to_unicode()


def pretokenize(text):
    """Split text into pre-tokens, each as a string of byte-level characters."""
    return ["".join(BYTE_CHAR[b] for b in piece.encode("utf-8")) for piece in PY_PATTERN.findall(text)]


def train_bpe(text, n_merges, log=sys.stderr):
    """Classic BPE: repeatedly merge the most frequent adjacent pair (ties: the
    pair that sorts first), counting pairs inside pre-tokens only."""
    counts = collections.Counter(pretokenize(text))
    words = [list(w) for w in counts]
    freq = [counts[w] for w in counts]
    pair_count = collections.Counter()
    where = collections.defaultdict(set)  # pair -> indices of the words holding it
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += freq[i]
            where[(a, b)].add(i)
    merges = []
    for m in range(n_merges):
        if not pair_count:
            break
        best = min(pair_count.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        if pair_count[best] < 2:
            break
        merges.append(best)
        joined = best[0] + best[1]
        for i in list(where[best]):
            w = words[i]
            for a, b in zip(w, w[1:]):  # take the word's pairs out...
                pair_count[(a, b)] -= freq[i]
                if pair_count[(a, b)] <= 0:
                    del pair_count[(a, b)]
                where[(a, b)].discard(i)
            out, k = [], 0
            while k < len(w):  # ...merge every occurrence, left to right...
                if k + 1 < len(w) and w[k] == best[0] and w[k + 1] == best[1]:
                    out.append(joined)
                    k += 2
                else:
                    out.append(w[k])
                    k += 1
            words[i] = out
            for a, b in zip(out, out[1:]):  # ...and put the new pairs in
                pair_count[(a, b)] += freq[i]
                where[(a, b)].add(i)
        where.pop(best, None)
        if log and (m + 1) % 200 == 0:
            print("  %d merges" % (m + 1), file=log)
    return merges


class Encoder:
    """Byte-level BPE encoding as HF tokenizers does it: each pre-token is
    split into byte characters, then the adjacent pair with the lowest merge
    rank is merged until no pair has a rank."""

    def __init__(self, merges):
        self.rank = {pair: r for r, pair in enumerate(merges)}
        # base vocabulary: the 256 byte characters, in byte order
        self.vocab = {}
        for b in range(256):
            self.vocab[BYTE_CHAR[b]] = b
        for a, b in merges:
            self.vocab[a + b] = len(self.vocab)
        self.cache = {}

    def encode_word(self, w):
        if w in self.cache:
            return self.cache[w]
        syms = list(w)
        while len(syms) > 1:
            best, best_rank = None, None
            for k in range(len(syms) - 1):
                r = self.rank.get((syms[k], syms[k + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = k, r
            if best is None:
                break
            syms[best:best + 2] = [syms[best] + syms[best + 1]]
        ids = [self.vocab[s] for s in syms]
        self.cache[w] = ids
        return ids

    def encode(self, text):
        ids = []
        for w in pretokenize(text):
            ids.extend(self.encode_word(w))
        return ids


def tokenizer_json(enc, merges):
    vocab = dict(enc.vocab)
    added = []
    for s in SPECIAL_TOKENS:
        added.append({"id": len(vocab), "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
        vocab[s] = len(vocab)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": ["%s %s" % (a, b) for a, b in merges]},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("text")
    ap.add_argument("--vocab", type=int, default=1024, help="total vocabulary, special tokens included")
    ap.add_argument("--out", required=True, help="folder for tokenizer.json and tokenizer_config.json")
    ap.add_argument("--train-fraction", type=float, default=0.9,
                    help="train on this leading fraction of the text's bytes (the rest is validation)")
    ap.add_argument("--encode", help="folder for train.bin / val.bin (uint16 ids) and split.json")
    args = ap.parse_args()

    data = open(args.text, "rb").read()
    cut = int(len(data) * args.train_fraction)
    train_text, val_text = data[:cut].decode("utf-8"), data[cut:].decode("utf-8")
    n_merges = args.vocab - 256 - len(SPECIAL_TOKENS)
    print("training %d merges on %d bytes" % (n_merges, cut), file=sys.stderr)
    merges = train_bpe(train_text, n_merges)
    enc = Encoder(merges)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(enc, merges), f, ensure_ascii=False, indent=1)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": SPECIAL_TOKENS[0],
                   "eos_token": SPECIAL_TOKENS[1], "add_bos_token": False, "clean_up_tokenization_spaces": False,
                   "model_max_length": 1024}, f, indent=1)
    if args.encode:
        os.makedirs(args.encode, exist_ok=True)
        split = {"text": args.text, "train_fraction": args.train_fraction, "vocab_size": len(enc.vocab) + len(SPECIAL_TOKENS),
                 "bos_token_id": len(enc.vocab), "eos_token_id": len(enc.vocab) + 1}
        for name, text in (("train", train_text), ("val", val_text)):
            ids = enc.encode(text)
            with open(os.path.join(args.encode, name + ".bin"), "wb") as f:
                f.write(struct.pack("<%dH" % len(ids), *ids))
            nbytes = len(text.encode("utf-8"))
            split[name] = {"bytes": nbytes, "tokens": len(ids), "byte_offset": 0 if name == "train" else cut}
            print("%s: %d bytes, %d tokens, %.3f bytes/token" % (name, nbytes, len(ids), nbytes / len(ids)),
                  file=sys.stderr)
        with open(os.path.join(args.encode, "split.json"), "w") as f:
            json.dump(split, f, indent=1)


if __name__ == "__main__":
    main()
