"""Checks that HF transformers loads what `bitnet convert` writes and computes the same logits.

    for c in tiny-gqa-tied tiny-mha-untied llama-bitnet; do F=tests/fixtures/hf/$c; D=out/$c
      bitnet convert $F/master $D/packed-f32 --to packed
      bitnet convert $F/master $D/autobit-f32 --to autobit
      bitnet convert $F/master $D/packed-bf16 --to packed --scale-dtype bf16
      bitnet convert $F/master $D/autobit-bf16 --to autobit --scale-dtype bf16
      bitnet convert $F/packed $D/master-from-packed --to master
      bitnet convert $F/packed $D/master-f32-from-packed --to master --dtype f32
    done
    python3 tools/hf_convert_check.py out        # needs torch and transformers

Loads each converted folder and the fixture it came from with AutoModelForCausalLM (float32,
CPU), runs the fixture prompt, and prints the largest |logit difference| between them (and to
HF's packed and autobit fixtures). JSON to $OUT/hf_check.json (default: the current folder)."""
import json
import os
import sys
import time
os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
import torch, transformers
from transformers import AutoModelForCausalLM
from safetensors.torch import load_file

FX = "tests/fixtures/hf"
HERE = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
torch.set_num_threads(8)

def load(path):
    try:
        m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except TypeError:
        m = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    return m.eval()

@torch.no_grad()
def logits(path, ids):
    m = load(path)
    info = "%s/%s" % (type(m).__name__, type(m.model.layers[0].self_attn.q_proj).__name__)
    return m(input_ids=ids).logits[0].double(), info

results = {}
sources = {"packed-f32": "master", "autobit-f32": "master", "packed-bf16": "master", "autobit-bf16": "master",
           "master-from-packed": "packed", "master-f32-from-packed": "packed"}
for case in ("tiny-gqa-tied", "tiny-mha-untied", "llama-bitnet"):
    ref = load_file(os.path.join(FX, case, "reference.safetensors"))
    ids = ref["input_ids"].long().reshape(1, -1)
    base = {}
    for v in ("master", "packed", "packed-autobit"):
        base[v], _ = logits(os.path.join(FX, case, v), ids)
        d = (base[v] - ref[v + ".logits"].double()).abs().max().item()
        print("%-16s %-22s here vs reference.safetensors: max |diff| %.3e" % (case, v, d), flush=True)
    for name, src in sources.items():
        t0 = time.time()
        try:
            got, info = logits(os.path.join(HERE, case, name), ids)
            d_src = (got - base[src]).abs().max().item()
            d_hfpacked = (got - base["packed"]).abs().max().item()
            d_hfauto = (got - base["packed-autobit"]).abs().max().item()
            results["%s/%s" % (case, name)] = {"class": info, "vs_input": d_src, "vs_hf_packed": d_hfpacked,
                                               "vs_hf_autobit": d_hfauto, "input": src}
            print("%-16s %-22s %-40s max |logit - input(%s)| %.3e   vs HF packed %.3e   vs HF autobit %.3e  (%.1f s)" % (
                case, name, info, src, d_src, d_hfpacked, d_hfauto, time.time() - t0), flush=True)
        except Exception as e:  # noqa
            results["%s/%s" % (case, name)] = {"error": repr(e)}
            print("%-16s %-22s ERROR %r" % (case, name, e), flush=True)
out = os.environ.get("OUT", ".")
json.dump(results, open(os.path.join(out, "hf_check.json"), "w"), indent=1)
