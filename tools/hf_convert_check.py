"""Checks that HF transformers loads what `bitnet convert` writes and computes the logits it should.

Two steps, so that the second can run on a machine that has torch and transformers and no
compiler (the converted folders and bitnet's numbers travel with it):

    make && cc -std=c99 -O2 tests/convert/logits.c -o build/tests/logits -lm -lpthread
    python3 tools/hf_convert_check.py prepare OUT build/bitnet build/tests/logits
    python3 tools/hf_convert_check.py check OUT            # needs torch and transformers

prepare: for each case of tests/fixtures/hf (tiny-gqa-tied, tiny-mha-untied, llama-bitnet) runs
    bitnet convert master -> packed-f32, autobit-f32, packed-bf16, autobit-bf16 (--to packed|autobit
        [--scale-dtype bf16]); packed -> master-from-packed (bf16), master-f32-from-packed (--dtype f32);
        packed-autobit -> master-from-autobit (bf16)
into OUT/CASE/NAME, then bitnet's own logits on every converted folder (bn_forward, the fixture's
prompt; OUT/CASE/bitnet_logits.safetensors) and its greedy continuation (`bitnet run --ids
--temp 0 --ignore-eos`, as many tokens as the fixture's HF greedy; OUT/bitnet.json).

check: loads every converted folder with AutoModelForCausalLM (float32, CPU) and compares its
logits on the fixture prompt with (a) bitnet's logits on the same folder, (b) HF's reference
logits of the folder it came from (reference.safetensors: master for master's outputs, packed
and packed-autobit for theirs; a bf16-scale output against HF's own packed / packed-autobit), and its greedy
continuation (argmax step by step, no end-token stop) with the reference's and bitnet's. Prints one row a
folder (max |diff| and relative L2 ||a-b||/||b||) and writes $OUT/hf_check.json (default: OUT)."""
import json
import os
import shutil
import struct
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
FX = os.path.join(ROOT, "tests", "fixtures", "hf")
CASES = ("tiny-gqa-tied", "tiny-mha-untied", "llama-bitnet")
# name: (input folder of the fixture, convert options, the HF reference variant it must compute)
OUTPUTS = {
    "packed-f32": ("master", ["--to", "packed"], "master"),
    "autobit-f32": ("master", ["--to", "autobit"], "master"),
    "packed-bf16": ("master", ["--to", "packed", "--scale-dtype", "bf16"], "packed"),
    "autobit-bf16": ("master", ["--to", "autobit", "--scale-dtype", "bf16"], "packed-autobit"),
    "master-from-packed": ("packed", ["--to", "master"], "packed"),
    "master-f32-from-packed": ("packed", ["--to", "master", "--dtype", "f32"], "packed"),
    "master-from-autobit": ("packed-autobit", ["--to", "master"], "packed-autobit"),
}


def reference_greedy_length(case):
    with open(os.path.join(FX, case, "reference.json")) as f:
        return json.load(f)["gen_len"]


def prompt_ids(case):
    """The fixture's input_ids (reference.safetensors, read with the standard library)."""
    path = os.path.join(FX, case, "reference.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        t = header["input_ids"]
        f.seek(8 + n + t["data_offsets"][0])
        raw = f.read(t["data_offsets"][1] - t["data_offsets"][0])
    fmt = {"I32": "i", "I64": "q", "F32": "f"}[t["dtype"]]
    return [int(x) for x in struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw)]


def prepare(out, bitnet, logits_tool):
    greedy = {}
    for case in CASES:
        dirs = []
        ids = prompt_ids(case)
        for name, (src, opts, _) in OUTPUTS.items():
            d = os.path.join(out, case, name)
            shutil.rmtree(d, ignore_errors=True)
            subprocess.run([bitnet, "convert", os.path.join(FX, case, src), d] + opts, check=True,
                           stdout=subprocess.DEVNULL)
            dirs.append(d)
            run = subprocess.run([bitnet, "run", "-m", d, "--ids", ",".join(map(str, ids)), "--temp", "0",
                                  "--ignore-eos", "-n", str(reference_greedy_length(case))], capture_output=True,
                                 text=True, check=True)
            greedy["%s/%s" % (case, name)] = [int(x) for x in run.stdout.split()]
        subprocess.run([logits_tool, os.path.join(FX, case, "reference.safetensors"), "--save",
                        os.path.join(out, case, "bitnet_logits.safetensors")] + dirs, check=True,
                       stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "bitnet.json"), "w") as f:
        json.dump({"greedy": greedy}, f, indent=1)
    print("prepared", out)


def check(out):
    os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    from safetensors.torch import load_file

    print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
    torch.set_num_threads(8)
    with open(os.path.join(out, "bitnet.json")) as f:
        bitnet_greedy = json.load(f)["greedy"]

    def load(path):
        try:
            m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except TypeError:
            m = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
        return m.eval()

    def diff(a, b):
        return (a - b).abs().max().item(), ((a - b).norm() / b.norm()).item()

    def greedy(m, ids, n):
        """Greedy continuation without stopping at end tokens: argmax of the last position, n times."""
        seq = ids
        for _ in range(n):
            nxt = m(input_ids=seq).logits[0, -1].argmax().reshape(1, 1)
            seq = torch.cat([seq, nxt], dim=1)
        return seq[0, ids.shape[1]:].tolist()

    def read_f32(path):
        """bitnet's logits file (f32 tensors; bn_safetensors_write), read without the safetensors package."""
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header, data = json.loads(f.read(n)), f.read()
        return {k: torch.frombuffer(bytearray(data[v["data_offsets"][0]:v["data_offsets"][1]]),
                                    dtype=torch.float32).reshape(v["shape"])
                for k, v in header.items() if k != "__metadata__"}

    for case in CASES:  # the device's transformers reproduces the fixtures' references
        ref = load_file(os.path.join(FX, case, "reference.safetensors"))
        for v in ("master", "packed", "packed-autobit"):
            with torch.no_grad():
                d = diff(load(os.path.join(FX, case, v))(input_ids=ref["input_ids"].long().reshape(1, -1)).logits[0]
                         .double(), ref[v + ".logits"].double())
            print("%-16s %-22s HF here vs reference.safetensors: %.2e / %.2e" % (case, "fixture " + v, d[0], d[1]),
                  flush=True)

    results, worst = {}, {}
    for case in CASES:
        ref = load_file(os.path.join(FX, case, "reference.safetensors"))
        mine = read_f32(os.path.join(out, case, "bitnet_logits.safetensors"))
        ids = ref["input_ids"].long().reshape(1, -1)
        for name, (src, _, variant) in OUTPUTS.items():
            key = "%s/%s" % (case, name)
            d = os.path.join(out, case, name)
            try:
                with torch.no_grad():
                    m = load(d)
                    hf = m(input_ids=ids).logits[0].double()
                    gen = greedy(m, ids, ref[variant + ".greedy"].numel())
                cls = "%s/%s" % (type(m).__name__, type(m.model.layers[0].self_attn.q_proj).__name__)
                bn = mine[[k for k in mine if k.endswith(os.path.join(case, name))][0]].double()
                vs_bitnet = diff(hf, bn)
                vs_ref = diff(hf, ref[variant + ".logits"].double())
                r = {"class": cls, "from": src, "reference": variant,
                     "vs_bitnet_max_abs": vs_bitnet[0], "vs_bitnet_rel_l2": vs_bitnet[1],
                     "vs_hf_reference_max_abs": vs_ref[0], "vs_hf_reference_rel_l2": vs_ref[1],
                     "greedy_equals_reference": gen == ref[variant + ".greedy"].long().tolist(),
                     "greedy_equals_bitnet": gen == bitnet_greedy[key]}
                for k in ("vs_bitnet_max_abs", "vs_bitnet_rel_l2", "vs_hf_reference_max_abs", "vs_hf_reference_rel_l2"):
                    worst[k] = max(worst.get(k, 0.0), r[k])
                print("%-16s %-22s %-34s vs bitnet %.2e / %.2e   vs HF %-14s %.2e / %.2e   greedy = HF %s, = bitnet %s"
                      % (case, name, cls, vs_bitnet[0], vs_bitnet[1], variant, vs_ref[0], vs_ref[1],
                         r["greedy_equals_reference"], r["greedy_equals_bitnet"]), flush=True)
            except Exception as e:  # noqa: BLE001 - reported per folder
                r = {"error": repr(e)}
                print("%-16s %-22s ERROR %r" % (case, name, e), flush=True)
            results[key] = r
    ok = all("error" not in r and r["greedy_equals_reference"] and r["greedy_equals_bitnet"] for r in results.values())
    print("worst (max |diff| / rel L2):", json.dumps(worst), "| all greedy equal:", ok, flush=True)
    with open(os.path.join(os.environ.get("OUT", out), "hf_check.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "worst": worst,
                   "all_greedy_equal": ok, "folders": results}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "prepare":
        prepare(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2]))
    else:
        sys.exit(__doc__)
