"""`bitnet pull`, `-m ORG/NAME`, `ls` and `rm` against the test Hub (tests/hub/testhub.py).

    /usr/bin/python3 tests/hub/test_hub.py BITNET [BITNET_WITHOUT_LIBCURL]

The references are independent of the code under test: the fixture files' own bytes, hashes
computed here with hashlib, the cache that the official @huggingface/hub client writes, and
`bitnet run` on the original folder. Prints "test_hub: N passed, M failed"."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import testhub  # noqa: E402

BITNET = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bitnet")
BITNET_NOCURL = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
NPM_MODULES = os.path.join(ROOT, "build", "npm-hub", "node_modules")
SHAKESPEARE = os.path.join(ROOT, "models", "shakespeare")
REPO = "bitnet-test/shakespeare"
PROMPT = "JULIET:\nO Romeo"

HUB = None


def setUpModule():
    global HUB
    HUB = testhub.TestHub()
    testhub.standard_repos(HUB, ROOT)


def tearDownModule():
    HUB.close()


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class HubCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bitnet-hub-")
        self.cache = os.path.join(self.tmp, "cache")
        HUB.faults.clear()
        HUB.clear_log()

    def tearDown(self):
        HUB.faults.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def env(self, **extra):
        e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "BITNET_"))}
        e.update(HF_ENDPOINT=HUB.endpoint, HF_HUB_CACHE=self.cache, HF_HOME=os.path.join(self.tmp, "hfhome"))
        e.update({k: v for k, v in extra.items() if v is not None})
        return e

    def bitnet(self, *args, binary=None, **env):
        p = subprocess.run([binary or BITNET] + list(args), capture_output=True, env=self.env(**env), timeout=120)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def pull(self, repo=REPO, **env):
        rc, out, err = self.bitnet("pull", repo, **env)
        self.assertEqual(rc, 0, err)
        return out.strip()

    def repo_dir(self, repo=REPO):
        return os.path.join(self.cache, "models--" + repo.replace("/", "--"))

    def greedy(self, model, binary=None, **env):
        rc, out, err = self.bitnet("run", "-m", model, "-p", PROMPT, "-n", "24", "--temp", "0", "--seed", "1",
                                   binary=binary, **env)
        self.assertEqual(rc, 0, err)
        return out


class Pull(HubCase):
    def test_pull_is_byte_for_byte_in_the_hf_layout(self):
        snap = self.pull()
        repo = HUB.repos[REPO]
        commit = repo.refs["main"]
        self.assertEqual(snap, os.path.join(self.repo_dir(), "snapshots", commit))
        with open(os.path.join(self.repo_dir(), "refs", "main")) as f:
            self.assertEqual(f.read().strip(), commit)
        tree = repo.commits[commit]
        want = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"}
        self.assertEqual(set(os.listdir(snap)), want)  # no README, .bin or nested files
        for name in want:
            p = os.path.join(snap, name)
            self.assertTrue(os.path.islink(p))
            self.assertEqual(os.readlink(p), "../../blobs/" + tree[name].etag)
            with open(p, "rb") as f:
                self.assertEqual(f.read(), tree[name].data, name)
        self.assertEqual(sha256_file(os.path.join(snap, "model.safetensors")),
                         hashlib.sha256(open(os.path.join(SHAKESPEARE, "model.safetensors"), "rb").read()).hexdigest())
        self.assertFalse([r for r in HUB.requests(server="cdn") if r["auth"]], "the token went to the CDN")

    def test_second_pull_downloads_nothing(self):
        self.pull()
        HUB.clear_log()
        self.pull()
        self.assertEqual(HUB.requests(server="cdn"), [])
        self.assertEqual([r for r in HUB.requests(method="GET") if "/resolve" in r["path"]], [])

    def test_sharded_checkpoint_and_run_by_repo_id(self):
        snap = self.pull("bitnet-test/tiny-sharded")
        names = sorted(os.listdir(snap))
        self.assertEqual(names, ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                 "model.safetensors.index.json"])
        args = ["--ids", "1,2,3,4,5", "-n", "8", "--temp", "0"]
        rc, out, err = self.bitnet("run", "-m", "bitnet-test/tiny-sharded", *args)
        self.assertEqual(rc, 0, err)
        rc2, ref, err2 = self.bitnet("run", "-m", os.path.join(ROOT, "tests/fixtures/hf/tiny-gqa-tied/packed"), *args)
        self.assertEqual(rc2, 0, err2)
        self.assertEqual(out, ref)

    def test_revisions_tag_and_commit(self):
        repo = HUB.repos[REPO]
        snap_v1 = self.pull(REPO + "@v1")
        self.assertTrue(snap_v1.endswith(repo.refs["v1"]))
        with open(os.path.join(snap_v1, "config.json"), "rb") as f:
            self.assertIn(b'"max_position_embeddings": 128', f.read())
        snap_c = self.pull(REPO + "@" + repo.refs["main"])
        self.assertTrue(snap_c.endswith(repo.refs["main"]))
        self.assertFalse(os.path.exists(os.path.join(self.repo_dir(), "refs", repo.refs["main"])))
        # the weights are one blob shared by both snapshots
        self.assertEqual(os.path.realpath(os.path.join(snap_v1, "model.safetensors")),
                         os.path.realpath(os.path.join(snap_c, "model.safetensors")))

    def test_errors_name_the_cause(self):
        rc, _, err = self.bitnet("pull", REPO + "@no-such-branch")
        self.assertEqual(rc, 1)
        self.assertIn("has no revision 'no-such-branch'", err)
        rc, _, err = self.bitnet("pull", "bitnet-test/does-not-exist")
        self.assertEqual(rc, 1)
        self.assertIn("not found", err)
        self.assertIn("HF_TOKEN", err)
        rc, _, err = self.bitnet("pull", "bitnet-test/no-weights")
        self.assertEqual(rc, 1)
        self.assertIn("no *.safetensors", err)
        rc, _, err = self.bitnet("pull", "not a repo")
        self.assertEqual(rc, 2)
        rc, _, err = self.bitnet("pull", "../etc/passwd")
        self.assertEqual(rc, 2)

    def test_private_repo(self):
        rc, _, err = self.bitnet("pull", "bitnet-test/private")
        self.assertEqual(rc, 1)
        self.assertIn("private, set HF_TOKEN", err)
        self.pull("bitnet-test/private", HF_TOKEN=testhub.TestHub.GRANTED)


class Gated(HubCase):
    def test_without_token_fails_naming_hf_token(self):
        rc, _, err = self.bitnet("pull", "bitnet-test/gated")
        self.assertEqual(rc, 1)
        self.assertIn("gated", err)
        self.assertIn("HF_TOKEN", err)
        self.assertFalse(os.path.exists(os.path.join(self.repo_dir("bitnet-test/gated"), "refs", "main")))

    def test_token_without_access(self):
        rc, _, err = self.bitnet("pull", "bitnet-test/gated", HF_TOKEN=testhub.TestHub.DENIED)
        self.assertEqual(rc, 1)
        self.assertIn("has no access", err)

    def test_with_token_from_env_or_token_file(self):
        snap = self.pull("bitnet-test/gated", HF_TOKEN=testhub.TestHub.GRANTED)
        self.assertTrue(os.path.exists(os.path.join(snap, "model.safetensors")))
        self.assertTrue(HUB.requests(server="hub", auth=True))
        self.assertFalse([r for r in HUB.requests(server="cdn") if r["auth"]], "the token went to the CDN")
        shutil.rmtree(self.cache)
        os.makedirs(os.path.join(self.tmp, "hfhome"))
        with open(os.path.join(self.tmp, "hfhome", "token"), "w") as f:
            f.write(testhub.TestHub.GRANTED + "\n")
        self.pull("bitnet-test/gated")


class Resume(HubCase):
    def test_killed_download_resumes_with_range(self):
        tree = HUB.repos[REPO].commits[HUB.repos[REPO].refs["main"]]
        blob = tree["model.safetensors"]
        half = blob.size // 2
        HUB.faults.stall_after[blob.sha256] = half
        incomplete = os.path.join(self.repo_dir(), "blobs", blob.sha256 + ".incomplete")
        p = subprocess.Popen([BITNET, "pull", REPO], env=self.env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and (not os.path.exists(incomplete) or os.path.getsize(incomplete) < half):
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
        del HUB.faults.stall_after[blob.sha256]
        self.assertEqual(os.path.getsize(incomplete), half)
        snap = os.path.join(self.repo_dir(), "snapshots", blob_commit())
        self.assertFalse(os.path.lexists(os.path.join(snap, "model.safetensors")))
        HUB.clear_log()
        self.pull()
        gets = [r for r in HUB.requests(server="cdn", method="GET")]
        self.assertEqual([r["range"] for r in gets], ["bytes=%d-" % half])
        self.assertEqual(sha256_file(os.path.join(snap, "model.safetensors")), blob.sha256)
        self.assertFalse(os.path.exists(incomplete))

    def test_transient_failures_are_retried(self):
        blob = HUB.repos[REPO].commits[blob_commit()]["model.safetensors"]
        HUB.faults.drop_after[blob.sha256] = [blob.size // 3, 1]
        HUB.faults.fail_503["/api/models/" + REPO] = 1
        HUB.faults.fail_503["/repos/"] = 1
        snap = self.pull()
        self.assertEqual(sha256_file(os.path.join(snap, "model.safetensors")), blob.sha256)
        ranges = [r["range"] for r in HUB.requests(server="cdn", method="GET")]
        self.assertIn("bytes=%d-" % (blob.size // 3), ranges)

    def test_corrupt_blob_is_refused_and_never_linked(self):
        blob = HUB.repos[REPO].commits[blob_commit()]["model.safetensors"]
        HUB.faults.corrupt.add(blob.sha256)
        rc, _, err = self.bitnet("pull", REPO)
        self.assertEqual(rc, 1)
        self.assertIn("corrupt", err)
        self.assertIn(blob.sha256, err)
        snap = os.path.join(self.repo_dir(), "snapshots", blob_commit())
        self.assertFalse(os.path.lexists(os.path.join(snap, "model.safetensors")))
        self.assertFalse([n for n in os.listdir(os.path.join(self.repo_dir(), "blobs")) if blob.sha256 in n])
        self.assertFalse(os.path.exists(os.path.join(self.repo_dir(), "refs", "main")))
        # -m does not take the incomplete snapshot for a model
        HUB.faults.corrupt.discard(blob.sha256)
        self.assertEqual(self.greedy(REPO), self.greedy(SHAKESPEARE))

    def test_full_disk(self):
        blob = HUB.repos[REPO].commits[blob_commit()]["model.safetensors"]
        blobs = os.path.join(self.repo_dir(), "blobs")
        os.makedirs(blobs)
        os.symlink("/dev/full", os.path.join(blobs, blob.sha256 + ".incomplete"))
        rc, _, err = self.bitnet("pull", REPO)
        self.assertEqual(rc, 1)
        self.assertIn("no space left", err)


def blob_commit():
    return HUB.repos[REPO].refs["main"]


class Offline(HubCase):
    def test_run_by_repo_id_pulls_then_works_offline(self):
        want = self.greedy(SHAKESPEARE)
        self.assertEqual(self.greedy(REPO), want)  # pulled on first use
        self.assertTrue(HUB.requests(server="cdn"))
        HUB.clear_log()
        dead = "http://127.0.0.1:9"  # nothing listens: any request would fail
        self.assertEqual(self.greedy(REPO, HF_HUB_OFFLINE="1", HF_ENDPOINT=dead), want)
        self.assertEqual(self.greedy(REPO, HF_ENDPOINT=dead), want)  # cached: no request at all
        rc, out, err = self.bitnet("tokenize", "-m", REPO, "ROMEO", HF_HUB_OFFLINE="1")
        self.assertEqual(rc, 0, err)
        self.assertEqual(HUB.log, [])

    def test_offline_without_cache_fails_clearly(self):
        rc, _, err = self.bitnet("run", "-m", REPO, "-p", "x", HF_HUB_OFFLINE="1")
        self.assertEqual(rc, 3)
        self.assertIn("HF_HUB_OFFLINE", err)
        rc, _, err = self.bitnet("pull", REPO, HF_HUB_OFFLINE="1")
        self.assertEqual(rc, 1)
        self.assertIn("not in the cache", err)
        self.assertEqual(HUB.log, [])

    def test_without_libcurl(self):
        rc, _, err = self.bitnet("pull", REPO, BITNET_LIBCURL="/nonexistent/libcurl.so.4")
        self.assertEqual(rc, 1)
        self.assertIn("libcurl", err)
        self.assertIn("apt-get install libcurl4", err)
        self.pull()
        self.assertEqual(self.greedy(REPO, BITNET_LIBCURL="/nonexistent/libcurl.so.4"), self.greedy(SHAKESPEARE))

    @unittest.skipUnless(BITNET_NOCURL, "no build without the libcurl loader given")
    def test_build_without_loader(self):
        rc, _, err = self.bitnet("pull", REPO, binary=BITNET_NOCURL)
        self.assertEqual(rc, 1)
        self.assertIn("without the libcurl loader", err)
        self.pull()
        self.assertEqual(self.greedy(REPO, binary=BITNET_NOCURL), self.greedy(SHAKESPEARE))
        rc, out, _ = self.bitnet("ls", binary=BITNET_NOCURL)
        self.assertIn(REPO, out)


class LsRm(HubCase):
    def test_ls_and_rm(self):
        repo = HUB.repos[REPO]
        rc, out, _ = self.bitnet("ls")
        self.assertIn("no models", out)
        self.pull(REPO + "@v1")
        self.pull(REPO)
        self.pull("bitnet-test/tiny-sharded")
        rc, out, err = self.bitnet("ls")
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        row = [l for l in lines if l.startswith(REPO) and repo.refs["v1"][:12] in l]
        self.assertEqual(len(row), 1, out)
        self.assertIn(" v1 ", row[0])
        self.assertIn("complete", row[0])
        self.assertTrue([l for l in lines if l.startswith(REPO) and " main " in l and repo.refs["main"][:12] in l])
        self.assertTrue([l for l in lines if l.startswith("bitnet-test/tiny-sharded")])
        # remove one revision: its snapshot and ref go, the blobs main still uses stay
        rc, out, err = self.bitnet("rm", REPO + "@v1")
        self.assertEqual(rc, 0, err)
        self.assertFalse(os.path.exists(os.path.join(self.repo_dir(), "snapshots", repo.refs["v1"])))
        self.assertFalse(os.path.exists(os.path.join(self.repo_dir(), "refs", "v1")))
        main_snap = os.path.join(self.repo_dir(), "snapshots", repo.refs["main"])
        for name in os.listdir(main_snap):
            self.assertTrue(os.path.exists(os.path.join(main_snap, name)), name)
        old_config = repo.commits[repo.refs["v1"]]["config.json"].etag
        self.assertFalse(os.path.exists(os.path.join(self.repo_dir(), "blobs", old_config)))
        self.assertEqual(self.greedy(REPO), self.greedy(SHAKESPEARE))
        rc, _, err = self.bitnet("rm", REPO + "@v1")
        self.assertEqual(rc, 1)
        rc, out, err = self.bitnet("rm", REPO)
        self.assertEqual(rc, 0, err)
        self.assertFalse(os.path.exists(self.repo_dir()))
        rc, out, _ = self.bitnet("ls")
        self.assertNotIn(REPO + " ", out)
        self.assertIn("bitnet-test/tiny-sharded", out)


@unittest.skipUnless(os.path.isdir(os.path.join(NPM_MODULES, "@huggingface", "hub")) and shutil.which("node"),
                     "@huggingface/hub is not installed (make deps installs it into build/npm-hub)")
class OfficialClient(HubCase):
    def js_download(self, cache, repo=REPO):
        p = subprocess.run(["node", os.path.join(HERE, "npm_download.mjs"), NPM_MODULES, HUB.endpoint, repo, cache],
                           capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode().strip()

    def test_javascript_cache_runs_offline(self):
        js_cache = os.path.join(self.tmp, "js-cache")
        snap = self.js_download(js_cache)
        self.assertTrue(snap.endswith(blob_commit()))
        want = self.greedy(SHAKESPEARE)
        got = self.greedy(REPO, HF_HUB_CACHE=js_cache, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
        self.assertEqual(got, want)
        rc, out, _ = self.bitnet("ls", HF_HUB_CACHE=js_cache)
        self.assertIn(REPO, out)

    def test_same_layout_as_javascript(self):
        js_cache = os.path.join(self.tmp, "js-cache")
        self.js_download(js_cache)
        self.pull()
        ours, theirs = self.repo_dir(), os.path.join(js_cache, "models--" + REPO.replace("/", "--"))
        for name in os.listdir(os.path.join(ours, "snapshots", blob_commit())):
            a = os.path.join(ours, "snapshots", blob_commit(), name)
            b = os.path.join(theirs, "snapshots", blob_commit(), name)
            self.assertEqual(os.readlink(a), os.readlink(b), name)
        for ref in ("main",):
            with open(os.path.join(ours, "refs", ref)) as f, open(os.path.join(theirs, "refs", ref)) as g:
                self.assertEqual(f.read().strip(), g.read().strip())


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import unittest_summary
    unittest_summary.main("test_hub")
