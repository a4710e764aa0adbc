"""`bitnet convert` on the HF parity fixtures (tests/fixtures/hf), Debian's python3.

    /usr/bin/python3 tests/convert/test_convert.py BITNET LOGITS

References: the fixtures' packed/ and packed-autobit/ folders, which HF transformers itself
wrote from master/; HF's logits in reference.safetensors; bn_forward on the input folder
(LOGITS is tests/convert/logits.c). Prints "test_convert: N passed, M failed"."""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BITNET = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bitnet")
LOGITS = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else os.path.join(ROOT, "build", "tests", "logits")
FX = os.path.join(ROOT, "tests", "fixtures", "hf")
CASES = ["tiny-gqa-tied", "tiny-mha-untied", "llama-bitnet"]


def read_st(path):
    """{name: (dtype, shape, bytes)} of a .safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items()}


def read_folder(path):
    index = os.path.join(path, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_st(os.path.join(path, "model.safetensors"))
    out = {}
    for shard in sorted(set(json.load(open(index))["weight_map"].values())):
        out.update(read_st(os.path.join(path, shard)))
    return out


def scalar(dtype, raw):
    if dtype == "F32":
        return struct.unpack("<f", raw)[0]
    if dtype == "BF16":
        return struct.unpack("<f", b"\0\0" + raw)[0]
    raise ValueError(dtype)


class Convert(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bitnet-convert-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def convert(self, src, name, *args, rc=0):
        out = os.path.join(self.tmp, name)
        p = subprocess.run([BITNET, "convert", src, out] + list(args), capture_output=True, timeout=120)
        self.assertEqual(p.returncode, rc, p.stderr.decode())
        return out

    def logits(self, case, *dirs):
        p = subprocess.run([LOGITS, os.path.join(FX, case, "reference.safetensors")] + list(dirs),
                           capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return json.loads(p.stdout)

    def test_master_to_packed_equals_hf_byte_for_byte(self):
        for case in CASES:
            for to, hf in (("packed", "packed"), ("autobit", "packed-autobit")):
                out = self.convert(os.path.join(FX, case, "master"), case + to, "--to", to, "--scale-dtype", "bf16")
                for name in ("model.safetensors", "config.json"):
                    with open(os.path.join(out, name), "rb") as a, open(os.path.join(FX, case, hf, name), "rb") as b:
                        self.assertEqual(a.read(), b.read(), "%s %s %s" % (case, to, name))

    def test_packed_output_gives_the_master_logits(self):
        for case in CASES:
            master = os.path.join(FX, case, "master")
            packed = self.convert(master, case + "-p", "--to", "packed")
            autobit = self.convert(master, case + "-a", "--to", "autobit")
            r = self.logits(case, master, packed, autobit)
            for d in (packed, autobit):
                self.assertLessEqual(r[d]["first"], 1e-6, "%s: %s" % (case, d))  # bn_forward on the input
                self.assertLessEqual(r[d]["master"], 1e-5, "%s: %s" % (case, d))  # HF on the input
            # with bf16 scales (HF's own packing) the output is HF's packed checkpoint: HF's packed logits
            p16 = self.convert(master, case + "-p16", "--to", "packed", "--scale-dtype", "bf16")
            self.assertLessEqual(self.logits(case, p16)[p16]["packed"], 1e-5, case)

    def test_round_trip_keeps_codes_and_scales(self):
        for case in CASES:
            for dtype, scale_dtype, tol in (("bf16", "bf16", 0.0), ("f32", "f32", 1e-6), ("f16", "bf16", 0.0),
                                            ("bf16", "f32", 1e-6)):
                p1 = self.convert(os.path.join(FX, case, "master"), "%s-%s-1" % (case, dtype), "--to", "packed",
                                  "--scale-dtype", scale_dtype)
                m2 = self.convert(p1, "%s-%s-2" % (case, dtype), "--to", "master", "--dtype", dtype)
                p3 = self.convert(m2, "%s-%s-3" % (case, dtype), "--to", "packed", "--scale-dtype", scale_dtype)
                a, b = read_folder(p1), read_folder(p3)
                self.assertEqual(sorted(a), sorted(b))
                n_linear = 0
                for name, (dt, shape, raw) in a.items():
                    if name.endswith("_proj.weight"):
                        n_linear += 1
                        self.assertEqual((dt, shape, raw), b[name], "%s: codes of %s" % (case, name))
                    elif name.endswith("_proj.weight_scale"):
                        x, y = scalar(dt, raw), scalar(b[name][0], b[name][2])
                        self.assertLessEqual(abs(x - y), tol * abs(x), "%s %s: %s %r %r" % (case, dtype, name, x, y))
                    else:
                        self.assertEqual((dt, shape, raw), b[name], name)
                self.assertGreater(n_linear, 0)
                m = read_folder(m2)
                self.assertEqual(m["model.layers.0.self_attn.q_proj.weight"][0], dtype.upper())

    def test_packed_to_master_gives_the_packed_logits(self):
        """Master outputs in every dtype: the online quantization gives back the input's scales, so
        bn_forward computes the packed input's logits (bf16 too: not a bf16-rounded scale)."""
        for case in CASES:
            for src in ("packed", "packed-autobit"):
                packed = os.path.join(FX, case, src)
                ms = [self.convert(packed, "%s-%s-m-%s" % (case, src, dt), "--to", "master", "--dtype", dt)
                      for dt in ("bf16", "f16", "f32")]
                r = self.logits(case, packed, *ms)
                for m in ms:
                    self.assertLessEqual(r[m]["first"], 1e-6, m)
                cfg = json.load(open(os.path.join(ms[0], "config.json")))
                want = json.load(open(os.path.join(FX, case, "master", "config.json")))
                self.assertEqual(cfg, want)  # the rest of config.json is kept; quantization_config as HF's master

    def test_shards_with_an_index(self):
        case = "tiny-gqa-tied"
        one = self.convert(os.path.join(FX, case, "master"), "one", "--to", "packed")
        many = self.convert(os.path.join(FX, case, "master"), "many", "--to", "packed", "--max-shard-size", "200KB")
        index = json.load(open(os.path.join(many, "model.safetensors.index.json")))
        shards = sorted(set(index["weight_map"].values()))
        self.assertGreater(len(shards), 2)
        self.assertEqual(shards[0], "model-00001-of-%05d.safetensors" % len(shards))
        for s in shards:
            self.assertLessEqual(os.path.getsize(os.path.join(many, s)), 200000 + 393216 + 4096)  # one big tensor may stand alone
        a, b = read_folder(one), read_folder(many)
        self.assertEqual(a, b)
        self.assertEqual(index["metadata"]["total_size"], sum(len(v[2]) for v in a.values()))
        self.assertFalse(os.path.exists(os.path.join(many, "model.safetensors")))
        r = self.logits(case, one, many)
        self.assertEqual(r[many]["first"], 0.0)

    def test_model_with_tokenizer_generates_the_same(self):
        src = os.path.join(ROOT, "models", "shakespeare")
        m = self.convert(src, "shakespeare-master", "--to", "master", "--dtype", "f32")
        for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            with open(os.path.join(src, name), "rb") as a, open(os.path.join(m, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        back = self.convert(m, "shakespeare-packed", "--to", "packed")

        def run(d):
            p = subprocess.run([BITNET, "run", "-m", d, "-p", "ROMEO:", "-n", "40", "--temp", "0"], capture_output=True)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            return p.stdout

        want = run(src)
        self.assertEqual(run(m), want)
        self.assertEqual(run(back), want)

    def test_errors(self):
        master = os.path.join(FX, "tiny-gqa-tied", "master")
        self.convert(master, "x", "--to", "ternary", rc=2)
        self.convert(master, "x", rc=2)
        self.convert(os.path.join(self.tmp, "missing"), "x", "--to", "packed", rc=3)
        self.convert(os.path.join(FX, "tiny-gqa-tied"), "x", "--to", "packed", rc=3)  # no config.json
        p = subprocess.run([BITNET, "convert", master, master, "--to", "packed"], capture_output=True)
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import unittest_summary
    unittest_summary.main("test_convert")
