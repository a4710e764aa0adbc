#!/usr/bin/env python3
"""Check a model folder that bitnet.h trained with HuggingFace itself.

Loads the folder with transformers' AutoModelForCausalLM (BitNetForCausalLM with
packed BitLinear weights) and AutoTokenizer, checks that HF's tokenizer gives
the ids of tools/train_tokenizer.py's encoder on the validation text, and
computes the validation loss the way examples/train.c and `bitnet ppl` do:
the text's last (1 - fraction) of bytes, tokenized without special tokens, cut
into non-overlapping windows of the context length; the mean next-token
cross-entropy over all predictions (nats/token), and bits per byte =
nats/token * tokens / bytes / ln 2.

    python3 tools/hf_eval.py models/shakespeare --text data/tinyshakespeare.txt

Needs torch and transformers (not part of bitnet.h's build).
"""
import argparse
import json
import math
import os
import sys
import time

# BitLinear decorates its quantization helpers with @torch.compile; eager mode is the same arithmetic.
os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_tokenizer  # noqa: E402


def load_model(path, device):
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    return model.to(device).eval()


def scored_bytes(ids, ctx, token_len):
    """Bytes of the tokens that get a prediction: all but the first of each window (as `bitnet ppl` counts)."""
    return sum(token_len[t] for i, t in enumerate(ids) if i % ctx != 0)


@torch.no_grad()
def window_loss(model, ids, ctx, device, batch=16):
    """Sum of next-token nats over non-overlapping windows of ctx tokens, and the count."""
    total, count = 0.0, 0
    full = len(ids) // ctx
    windows = [ids[i * ctx:(i + 1) * ctx] for i in range(full)]
    for b in range(0, len(windows), batch):
        x = torch.tensor(windows[b:b + batch], dtype=torch.long, device=device)
        logits = model(input_ids=x).logits.double()
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                                reduction="sum")
        total += nll.item()
        count += x.shape[0] * (x.shape[1] - 1)
    rest = ids[full * ctx:]
    if len(rest) >= 2:
        x = torch.tensor([rest], dtype=torch.long, device=device)
        logits = model(input_ids=x).logits.double()
        total += torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:], reduction="sum").item()
        count += len(rest) - 1
    return total, count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--text", default="data/tinyshakespeare.txt")
    ap.add_argument("--fraction", type=float, default=0.9, help="validation = the bytes after this fraction")
    ap.add_argument("--ctx", type=int, default=0, help="window length (default: max_position_embeddings)")
    ap.add_argument("--devices", default="cpu,cuda", help="where to run the loss, comma-separated")
    ap.add_argument("--ours", type=float, default=0.0, help="bitnet.h's nats/token, to print the relative difference")
    args = ap.parse_args()

    print("torch %s, transformers %s" % (torch.__version__, transformers.__version__))
    data = open(args.text, "rb").read()
    cut = int(len(data) * args.fraction)
    val = data[cut:].decode("utf-8")
    n_bytes = len(data) - cut
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    ctx = args.ctx or cfg["max_position_embeddings"]

    try:
        tok = AutoTokenizer.from_pretrained(args.model)
        ids = tok(val, add_special_tokens=False)["input_ids"]
        decode = tok.decode
    except Exception as e:  # fall back to the tokenizers library itself
        print("AutoTokenizer failed (%s: %s); using tokenizers.Tokenizer" % (type(e).__name__, e))
        import tokenizers
        tok = tokenizers.Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
        ids = tok.encode(val, add_special_tokens=False).ids
        decode = tok.decode
    tj = json.load(open(os.path.join(args.model, "tokenizer.json"), encoding="utf-8"))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in tj["model"]["merges"]]
    ours = train_tokenizer.Encoder(merges).encode(val)
    same = sum(1 for a, b in zip(ids, ours) if a == b)
    print("tokenizer %s: %d ids from HF, %d from tools/train_tokenizer.py, %d equal%s" %
          (type(tok).__name__, len(ids), len(ours), same,
           " (identical)" if ids == ours else " (DIFFERENT)"))
    print("decode round trip: %s" % ("exact" if decode(ids) == val else "DIFFERS"))
    char_byte = {c: b for b, c in train_tokenizer.BYTE_CHAR.items()}
    token_len = {i: len(s) for s, i in tj["model"]["vocab"].items() if all(c in char_byte for c in s)}
    n_scored_bytes = scored_bytes(ids, ctx, token_len)

    for device in args.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            continue
        try:
            evaluate_on(device, args, ids, ctx, n_bytes, n_scored_bytes, decode)
        except Exception:
            import traceback
            traceback.print_exc()


def evaluate_on(device, args, ids, ctx, n_bytes, n_scored_bytes, decode):
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    t0 = time.time()
    model = load_model(args.model, device)
    q = model.model.layers[0].self_attn.q_proj
    print("[%s] %s: q_proj is %s, weight %s %s, weight_scale %s" %
          (device, type(model).__name__, type(q).__name__, tuple(q.weight.shape), q.weight.dtype,
           q.weight_scale.dtype if hasattr(q, "weight_scale") else None))
    total, count = window_loss(model, ids, ctx, device)
    nats = total / count
    bpb = nats * len(ids) / n_bytes / math.log(2)
    bpb_scored = total / math.log(2) / n_scored_bytes
    line = "[%s] HF validation loss: %.6f nats/token over %d predictions (%d tokens, %d bytes, windows of %d): " \
           "%.6f bits/byte of text (nats/token * tokens / bytes / ln 2), %.6f bits per scored byte " \
           "(%d bytes, as bitnet ppl)" % (device, nats, count, len(ids), n_bytes, ctx, bpb, bpb_scored, n_scored_bytes)
    if args.ours:
        line += "; bitnet.h %.6f nats/token, difference %.4f %%" % (args.ours, 100 * (args.ours - nats) / nats)
    print(line + " (%.1f s)" % (time.time() - t0))
    prompt = torch.tensor([ids[:16]], dtype=torch.long, device=device)
    out = model.generate(prompt, max_new_tokens=48, do_sample=False)
    print("[%s] greedy continuation of the first 16 validation tokens: %r" % (device, decode(out[0].tolist())))


if __name__ == "__main__":
    main()
