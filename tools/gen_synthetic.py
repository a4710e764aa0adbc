#!/usr/bin/env python3
"""Write a random-weight BitNet b1.58 model folder in HF's packed layout, for
benchmarks that need no download. Python 3 standard library only.

    python3 tools/gen_synthetic.py build/bitnet-2b4t-synth            # the 2B4T shape
    python3 tools/gen_synthetic.py OUT --hidden 256 --layers 2 ...    # any shape

The folder holds config.json (model_type "bitnet", BitNetForCausalLM,
quantization_config bitlinear/offline as microsoft/bitnet-b1.58-2B-4T) and
model.safetensors with:
  - every *_proj.weight as uint8 [out/4, in]: byte [r, c] holds the codes
    (ternary value + 1) of rows r + i*out/4, i = 0..3, in bits 2i..2i+1;
  - *_proj.weight_scale as bf16 [1] (HF BitLinear divides by it);
  - embeddings, norms (and lm_head when untied) as bf16.
Weights are random: the ternary values are -1, 0, +1 with probabilities
1/4, 1/2, 1/4; embeddings are random bf16 of magnitude ~2^-7..2^-5. The
model computes nonsense, at exactly the cost of the real one.
"""
import argparse
import json
import os
import random
import struct

# 2B4T: microsoft/bitnet-b1.58-2B-4T config.json
PRESET_2B4T = dict(hidden=2560, layers=30, heads=20, kv_heads=5, ffn=6912, vocab=128256, act="relu2",
                   tied=True, rope_theta=500000.0, max_pos=4096, eps=1e-5, bos=128000, eos=128001)


def ternary_bytes(n, rnd):
    """n packed bytes whose four 2-bit fields each hold a code 0, 1 or 2."""
    table = bytes(sum((f if f < 3 else 1) << (2 * i) for i, f in enumerate(((b >> 0) & 3, (b >> 2) & 3,
                                                                               (b >> 4) & 3, (b >> 6) & 3)))
                  for b in range(256))
    return rnd(n).translate(table)


def bf16_random(n, rnd):
    """n random bf16 values (little endian): random sign, exponent 2^-7..2^-5, random mantissa."""
    data = bytearray(rnd(2 * n))
    hi = bytes((b & 0x80) | (0x3c if (b & 0x7f) < 64 else 0x3d) for b in range(256))
    data[1::2] = bytes(data[1::2]).translate(hi)
    return bytes(data)


def bf16_const(value, n):
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    bits = (bits + 0x7fff + ((bits >> 16) & 1)) >> 16  # round to nearest even
    return struct.pack("<H", bits) * n


def build(args):
    seed = random.Random(args.seed)

    def rnd(n):  # reproducible random bytes, fast enough for ~1 GB
        return seed.getrandbits(8 * n).to_bytes(n, "little") if n else b""

    h, ffn, L = args.hidden, args.ffn, args.layers
    head_dim = h // args.heads
    kv = args.kv_heads * head_dim
    tensors = []  # (name, dtype, shape, bytes or callable producing bytes)

    def add(name, dtype, shape, make):
        tensors.append((name, dtype, shape, make))

    def add_linear(prefix, out_f, in_f):
        if out_f % 4:
            raise SystemExit(f"{prefix}: out features {out_f} not a multiple of 4 (packed layout)")
        add(prefix + ".weight", "U8", [out_f // 4, in_f], lambda: ternary_bytes(out_f // 4 * in_f, rnd))
        # effective weight = value / weight_scale: keep outputs O(inputs)
        add(prefix + ".weight_scale", "BF16", [1], lambda: bf16_const(float(in_f) ** 0.5, 1))

    add("model.embed_tokens.weight", "BF16", [args.vocab, h], lambda: bf16_random(args.vocab * h, rnd))
    for i in range(L):
        p = f"model.layers.{i}"
        add(p + ".input_layernorm.weight", "BF16", [h], lambda: bf16_const(1.0, h))
        add(p + ".post_attention_layernorm.weight", "BF16", [h], lambda: bf16_const(1.0, h))
        add(p + ".self_attn.attn_sub_norm.weight", "BF16", [h], lambda: bf16_const(1.0, h))
        add(p + ".mlp.ffn_sub_norm.weight", "BF16", [ffn], lambda: bf16_const(1.0, ffn))
        add_linear(p + ".self_attn.q_proj", h, h)
        add_linear(p + ".self_attn.k_proj", kv, h)
        add_linear(p + ".self_attn.v_proj", kv, h)
        add_linear(p + ".self_attn.o_proj", h, h)
        add_linear(p + ".mlp.gate_proj", ffn, h)
        add_linear(p + ".mlp.up_proj", ffn, h)
        add_linear(p + ".mlp.down_proj", h, ffn)
    add("model.norm.weight", "BF16", [h], lambda: bf16_const(1.0, h))
    if not args.tied:
        add("lm_head.weight", "BF16", [args.vocab, h], lambda: bf16_random(args.vocab * h, rnd))

    size = {"U8": 1, "BF16": 2}
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape, _ in tensors:
        n = size[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for name, dtype, shape, make in tensors:
            data = make()
            assert len(data) == header[name]["data_offsets"][1] - header[name]["data_offsets"][0], name
            f.write(data)

    config = {
        "architectures": ["BitNetForCausalLM"],
        "model_type": "bitnet",
        "vocab_size": args.vocab,
        "hidden_size": h,
        "intermediate_size": ffn,
        "num_hidden_layers": L,
        "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads,
        "hidden_act": args.act,
        "max_position_embeddings": args.max_pos,
        "rms_norm_eps": args.eps,
        "rope_theta": args.rope_theta,
        "tie_word_embeddings": args.tied,
        "bos_token_id": args.bos,
        "eos_token_id": args.eos,
        "attention_bias": False,
        "quantization_config": {"quant_method": "bitnet", "linear_class": "bitlinear",
                                "quantization_mode": "offline"},
        "torch_dtype": "bfloat16",
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"gen_synthetic: wrote {args.out} ({offset / 1e6:.1f} MB of tensors, {L} layers, hidden {h}, "
          f"ffn {ffn}, vocab {args.vocab})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output folder (put it under build/: never commit it)")
    d = PRESET_2B4T
    ap.add_argument("--hidden", type=int, default=d["hidden"])
    ap.add_argument("--layers", type=int, default=d["layers"])
    ap.add_argument("--heads", type=int, default=d["heads"])
    ap.add_argument("--kv-heads", type=int, default=d["kv_heads"])
    ap.add_argument("--ffn", type=int, default=d["ffn"])
    ap.add_argument("--vocab", type=int, default=d["vocab"])
    ap.add_argument("--act", default=d["act"], choices=["relu2", "silu"])
    ap.add_argument("--untied", dest="tied", action="store_false", help="separate lm_head.weight")
    ap.add_argument("--rope-theta", type=float, default=d["rope_theta"])
    ap.add_argument("--max-pos", type=int, default=d["max_pos"])
    ap.add_argument("--eps", type=float, default=d["eps"])
    ap.add_argument("--bos", type=int, default=d["bos"])
    ap.add_argument("--eos", type=int, default=d["eos"])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.hidden % args.heads or args.heads % args.kv_heads:
        raise SystemExit("hidden must divide by heads, heads by kv heads")
    build(args)


if __name__ == "__main__":
    main()
