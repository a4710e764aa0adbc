"""python/bitnet.py (ctypes over `make lib`) on models/shakespeare, with Debian's python3:

    /usr/bin/python3 tests/python/test_bitnet.py LIBBITNET BITNET

The references are the `bitnet` command's outputs on the same model (run --temp 0 token for
token, tokenize, ppl, chat) and the C compiler's own layout of the structs the binding mirrors.
Prints "test_python: N passed, M failed"."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LIB = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "libbitnet.so")
BITNET = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else os.path.join(ROOT, "build", "bitnet")
MODEL = os.path.join(ROOT, "models", "shakespeare")
os.environ["BITNET_LIB"] = LIB
sys.path.insert(0, os.path.join(ROOT, "python"))
import bitnet  # noqa: E402

PROMPT = "JULIET:\nO Romeo"
M = None


def setUpModule():
    global M
    M = bitnet.Model(MODEL, threads=2)


def tearDownModule():
    M.close()


def cli(*args, stdin=None):
    p = subprocess.run([BITNET] + list(args), capture_output=True, input=stdin, timeout=300)
    if p.returncode != 0:
        raise AssertionError(p.stderr.decode())
    return p.stdout.decode("utf-8")


class Abi(unittest.TestCase):
    def test_struct_layouts_match_the_header(self):
        """Every mirrored struct has the C compiler's size and field offsets."""
        tmp = tempfile.mkdtemp(prefix="bitnet-abi-")
        try:
            lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "%s/bitnet.h"' % ROOT, "int main(void) {"]
            for name, cls in bitnet.STRUCTS.items():
                lines.append('printf("%s %%zu\\n", sizeof(%s));' % (name, name))
                for f in cls._fields_:
                    lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (name, f[0], name, f[0]))
            lines.append("return 0; }")
            src = os.path.join(tmp, "abi.c")
            with open(src, "w") as f:
                f.write("\n".join(lines))
            subprocess.run(["cc", "-std=c99", src, "-o", os.path.join(tmp, "abi")], check=True)
            got = dict(l.split() for l in subprocess.run([os.path.join(tmp, "abi")], capture_output=True,
                                                            check=True).stdout.decode().splitlines())
            for name, cls in bitnet.STRUCTS.items():
                self.assertEqual(int(got[name]), bitnet.ctypes.sizeof(cls), name)
                for f in cls._fields_:
                    self.assertEqual(int(got[name + "." + f[0]]), getattr(cls, f[0]).offset, name + "." + f[0])
        finally:
            shutil.rmtree(tmp)


class Generate(unittest.TestCase):
    def test_generate_matches_bitnet_run(self):
        want = cli("run", "-m", MODEL, "-p", PROMPT, "-n", "60", "--temp", "0")
        got = M.generate(PROMPT, max_tokens=60, temperature=0)
        self.assertEqual(got + "\n", want)
        self.assertGreater(len(got), 20)

    def test_tokens_match_bitnet_run_token_for_token(self):
        prompt_ids = json.loads(cli("tokenize", "-m", MODEL, "--add-special", PROMPT))
        want = [int(x) for x in cli("run", "-m", MODEL, "--ids", ",".join(map(str, prompt_ids)), "-n", "50",
                                    "--temp", "0").split()]
        self.assertEqual(M.generate_tokens(prompt_ids, max_tokens=50, temperature=0), want)
        self.assertEqual(M.generate_tokens(PROMPT, max_tokens=50, temperature=0), want)
        self.assertEqual(len(want), 50)

    def test_sampling_is_seeded_like_the_cli(self):
        want = cli("run", "-m", MODEL, "-p", PROMPT, "-n", "40", "--temp", "0.9", "--seed", "42")
        self.assertEqual(M.generate(PROMPT, max_tokens=40, temperature=0.9, seed=42) + "\n", want)

    def test_stream(self):
        pieces = list(M.stream(PROMPT, max_tokens=60, temperature=0))
        self.assertGreater(len(pieces), 10)
        self.assertEqual("".join(pieces), M.generate(PROMPT, max_tokens=60, temperature=0))
        self.assertTrue(all(isinstance(p, str) and p for p in pieces))

    def test_stream_stopped_early_then_the_model_is_free(self):
        it = M.stream(PROMPT, max_tokens=200, temperature=0)
        first = [next(it), next(it)]
        it.close()  # leaving the loop: the generation stops, its thread ends
        self.assertEqual("".join(first), M.generate(PROMPT, max_tokens=2, temperature=0))

    def test_stop_strings(self):
        full = M.generate(PROMPT, max_tokens=60, temperature=0)
        stop = full[10:14]
        got = M.generate(PROMPT, max_tokens=60, temperature=0, stop=[stop])
        self.assertEqual(got, full[:full.index(stop)])
        self.assertEqual(M.last_stop_reason, "stop string")

    def test_batch_equals_one_at_a_time(self):
        prompts = ["ROMEO:", "JULIET:\nO Romeo", "KING HENRY:"]
        got = M.generate_batch(prompts, max_tokens=24, temperature=0)
        self.assertEqual(got, [M.generate(p, max_tokens=24, temperature=0) for p in prompts])

    def test_chat_matches_bitnet_chat(self):
        want = cli("chat", "-m", MODEL, "--template", "bitnet", "--temp", "0", "-n", "16", stdin=b"ROMEO\n")
        got = M.chat([{"role": "user", "content": "ROMEO"}], template="bitnet", max_tokens=16, temperature=0)
        self.assertEqual(got, want.rstrip("\n"))
        with self.assertRaises(bitnet.Error):  # no chat_template in tokenizer_config.json
            M.chat([{"role": "user", "content": "hi"}])


class TextAndScores(unittest.TestCase):
    def test_tokenize_detokenize(self):
        text = "ROMEO:\nBut, soft! what light through yonder window breaks?"
        ids = M.tokenize(text)
        self.assertEqual(ids, json.loads(cli("tokenize", "-m", MODEL, text)))
        self.assertEqual(M.detokenize(ids), text)

    def test_perplexity_matches_bitnet_ppl(self):
        tmp = tempfile.mkdtemp(prefix="bitnet-ppl-")
        try:
            with open(os.path.join(ROOT, "data", "tinyshakespeare.txt"), encoding="utf-8") as f:
                text = f.read()[:6000]
            path = os.path.join(tmp, "t.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            out = cli("ppl", "-m", MODEL, "-f", path)
            want = float(re.search(r"nats/token: ([0-9.]+)", out).group(1))
            ppl = M.perplexity(text)
            self.assertAlmostEqual(M.last_nats_per_token, want, delta=2e-6)
            self.assertAlmostEqual(ppl, float(re.search(r"perplexity: ([0-9.]+)", out).group(1)), delta=1e-3)
        finally:
            shutil.rmtree(tmp)


class Errors(unittest.TestCase):
    def test_bad_folder_raises_with_the_library_message(self):
        tmp = tempfile.mkdtemp(prefix="bitnet-bad-")
        try:
            with self.assertRaises(bitnet.Error) as e:
                bitnet.Model(tmp)
            self.assertIn("config.json", str(e.exception))
            shutil.copy(os.path.join(MODEL, "config.json"), tmp)
            with open(os.path.join(tmp, "model.safetensors"), "wb") as f:
                f.write(b"\xff" * 64)
            with self.assertRaises(bitnet.Error) as e:
                bitnet.Model(tmp)
            self.assertIn("model.safetensors", str(e.exception))
            self.assertEqual(e.exception.status, "format error")
        finally:
            shutil.rmtree(tmp)

    def test_missing_repo_id_says_how_to_get_it(self):
        os.environ["HF_HUB_CACHE"] = tempfile.gettempdir() + "/bitnet-empty-cache"
        try:
            with self.assertRaises(bitnet.Error) as e:
                bitnet.Model("nobody/nothing")
            self.assertIn("bitnet pull nobody/nothing", str(e.exception))
        finally:
            del os.environ["HF_HUB_CACHE"]

    def test_bad_arguments(self):
        with self.assertRaises(bitnet.Error):
            M.generate([], max_tokens=4)
        with self.assertRaises(bitnet.Error):
            M.detokenize([10 ** 6])


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import unittest_summary
    unittest_summary.main("test_python")
