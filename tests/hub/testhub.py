"""A HuggingFace Hub for tests: Python standard library only, on 127.0.0.1.

It answers the calls that huggingface_hub, @huggingface/hub and `bitnet pull` make, with the
Hub's status codes and headers (written from the Hub's API documentation and from how those
clients read the answers):

    GET  /api/models/{repo}[/revision/{rev}][?blobs=true]   model info: "sha", "siblings"
                                                             (blobs: size, blobId, lfs.sha256)
    GET  /api/models/{repo}/tree/{rev}[/{path}]?recursive=   files and folders
    POST /api/models/{repo}/paths-info/{rev}                 {"paths": [...], "expand": bool}
    HEAD|GET /{repo}/resolve/{rev}/{path}
         a file kept in git (config.json ...): 307 to /api/resolve-cache/models/{repo}/{commit}/{path}
             (a relative redirect: clients follow it with their token), which answers 200 with
             ETag "<git blob id>" and X-Repo-Commit
         an LFS file (*.safetensors, *.bin): 302 to a signed URL on the CDN (another port, so
             another origin), with X-Repo-Commit, X-Linked-Etag "<sha256>", X-Linked-Size
    errors: 401/403/404 with X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound,
        GatedRepo) and X-Error-Message, and a JSON body {"error": ...}

The CDN checks the URL's signature and expiry, and refuses a request that carries an
Authorization header (as S3 does for a presigned URL: a client must not forward the token).
Both honor Range (206 with Content-Range, 416 past the end).

Tests steer faults per LFS file (by SHA-256): corrupt bytes, a connection that stalls after N
bytes (to kill a client mid-download), one that drops after N bytes, 503s. Every request is
logged (method, path, Range, whether a token came)."""

import hashlib
import hmac
import json
import os
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".model")
SECRET = b"test-hub-signing-key"


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha, size):
    return ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (sha, size)).encode()


class File:
    def __init__(self, path, data):
        self.path = path
        self.data = data
        self.size = len(data)
        self.lfs = path.endswith(LFS_SUFFIXES) or len(data) > 10 * 1024 * 1024
        self.sha256 = hashlib.sha256(data).hexdigest()
        # The git blob of an LFS file is its pointer; its ETag is the SHA-256 of the content.
        self.blob_id = git_blob_id(lfs_pointer(self.sha256, self.size) if self.lfs else data)
        self.etag = self.sha256 if self.lfs else self.blob_id

    def entry(self, commit, expand):
        e = {"type": "file", "oid": self.blob_id, "size": self.size, "path": self.path}
        if self.lfs:
            e["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(lfs_pointer(self.sha256, self.size))}
        if expand:
            e["lastCommit"] = {"id": commit, "title": "Upload " + self.path, "date": "2025-01-01T00:00:00.000Z"}
            e["securityFileStatus"] = {"status": "safe"}
        return e


class Repo:
    def __init__(self, repo_id, gated=False, private=False):
        self.id = repo_id
        self.gated = gated
        self.private = private
        self.commits = {}  # commit -> {path: File}
        self.refs = {}     # branch or tag -> commit

    def add_revision(self, names, files, parent=None):
        """files: {path: bytes}; names: the branches/tags that point to the new commit."""
        tree = {p: File(p, d) for p, d in sorted(files.items())}
        canon = json.dumps([parent] + [[p, f.blob_id] for p, f in tree.items()]).encode()
        commit = hashlib.sha1(b"commit " + self.id.encode() + canon).hexdigest()
        self.commits[commit] = tree
        for n in names:
            self.refs[n] = commit
        return commit

    def resolve(self, rev):
        if rev in self.refs:
            return self.refs[rev]
        if rev in self.commits:
            return rev
        return None


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.corrupt = set()      # sha256 of LFS files served with a flipped byte
        self.stall_after = {}     # sha256 -> bytes to send before the connection stalls
        self.drop_after = {}      # sha256 -> [bytes, times]: the connection closes after bytes
        self.fail_503 = {}        # path substring -> times to answer 503

    def clear(self):
        with self.lock:
            self.corrupt.clear()
            self.stall_after.clear()
            self.drop_after.clear()
            self.fail_503.clear()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up mid-answer (the tests kill some) is no error of the server


def _free_port(start):
    for port in range(start, 19999):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return s, port
        except OSError:
            s.close()
    raise RuntimeError("no free port in 19000-19999")


class TestHub:
    """Start with TestHub(); .endpoint is HF_ENDPOINT. Tokens: GRANTED reads everything,
    DENIED is a valid account without access to gated repos."""
    GRANTED = "hf_test_granted_token"
    DENIED = "hf_test_denied_token"

    def __init__(self, base_port=None):
        self.repos = {}
        self.faults = Faults()
        self.log = []
        self.log_lock = threading.Lock()
        start = base_port or (19000 + (os.getpid() * 7) % 900)
        self.hub = self._serve(HubHandler, start)
        self.cdn = self._serve(CdnHandler, self.hub.server_port + 1)
        self.endpoint = "http://127.0.0.1:%d" % self.hub.server_port
        self.cdn_base = "http://127.0.0.1:%d" % self.cdn.server_port

    def _serve(self, handler, start):
        sock, port = _free_port(start)
        sock.close()
        srv = Server(("127.0.0.1", port), handler)
        srv.hub = self
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv

    def close(self):
        for s in (self.hub, self.cdn):
            s.shutdown()
            s.server_close()

    def add_repo(self, repo_id, gated=False, private=False):
        self.repos[repo_id] = Repo(repo_id, gated, private)
        return self.repos[repo_id]

    def record(self, **kv):
        with self.log_lock:
            self.log.append(kv)

    def requests(self, **match):
        with self.log_lock:
            return [r for r in self.log if all(r.get(k) == v for k, v in match.items())]

    def clear_log(self):
        with self.log_lock:
            self.log.clear()

    def sign(self, sha, expires):
        return hmac.new(SECRET, ("%s:%d" % (sha, expires)).encode(), hashlib.sha256).hexdigest()

    def blob(self, sha):
        for repo in self.repos.values():
            for tree in repo.commits.values():
                for f in tree.values():
                    if f.lfs and f.sha256 == sha:
                        return f
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "testhub/1.0"

    def log_message(self, *args):
        pass

    @property
    def hub(self):
        return self.server.hub

    def token(self):
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def _record(self):
        self.hub.record(port=self.server.server_port, method=self.command, path=self.path,
                        range=self.headers.get("Range"), auth=self.headers.get("Authorization") is not None,
                        server="cdn" if isinstance(self, CdnHandler) else "hub")

    def send(self, status, body=b"", headers=None, content_type="application/json; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", "Root=1-%08x" % (int(time.time() * 1000) & 0xffffffff))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message):
        body = json.dumps({"error": message}).encode()
        h = {"X-Error-Message": message}
        if code:
            h["X-Error-Code"] = code
        self.send(status, body, h)

    def send_file(self, f, data, extra):
        """200 or 206 for a Range, with the faults the test asked for."""
        size = len(data)
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        h = dict(extra)
        h["Accept-Ranges"] = "bytes"
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            try:
                start = int(a) if a else max(0, size - int(b))
                end = min(int(b), size - 1) if a and b else size - 1
            except ValueError:
                start, end = 0, size - 1
            if start >= size or start > end:
                h["Content-Range"] = "bytes */%d" % size
                return self.send(416, b"", h)
            status = 206
            h["Content-Range"] = "bytes %d-%d/%d" % (start, end, size)
        body = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "binary/octet-stream" if f.lfs else "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in h.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        faults = self.hub.faults
        with faults.lock:
            stall = faults.stall_after.get(f.sha256) if f.lfs else None
            drop = faults.drop_after.get(f.sha256) if f.lfs else None
            if drop and drop[1] > 0:
                drop[1] -= 1
            else:
                drop = None
        limit = None
        if stall is not None:
            limit = max(0, stall - start)
        if drop is not None:
            limit = max(0, drop[0] - start)
        if limit is None or limit >= len(body):
            self.wfile.write(body)
            return
        self.wfile.write(body[:limit])
        self.wfile.flush()
        if stall is not None and drop is None:
            for _ in range(600):  # until the client is killed (or 60 s)
                time.sleep(0.1)
                with faults.lock:
                    if f.sha256 not in faults.stall_after:
                        break
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._record()
        if not self.maybe_503():
            self.get(urllib.parse.urlsplit(self.path))

    def maybe_503(self):
        with self.hub.faults.lock:
            for key, n in list(self.hub.faults.fail_503.items()):
                if key in self.path and n > 0:
                    self.hub.faults.fail_503[key] = n - 1
                    self.send(503, b"Service Unavailable", content_type="text/plain")
                    return True
        return False


class HubHandler(Handler):
    def repo_and_rest(self, parts):
        """parts after the prefix: org, name, rest..."""
        if len(parts) < 2:
            return None, None, parts
        rid = parts[0] + "/" + parts[1]
        return rid, self.hub.repos.get(rid), parts[2:]

    def check_access(self, repo, rid, files):
        """None when the request may go on; else the error was sent. files: is it about file contents?"""
        tok = self.token()
        valid = tok in (TestHub.GRANTED, TestHub.DENIED)
        if tok is not None and not valid:
            self.error(401, None, "Invalid credentials in Authorization header")
            return False
        if repo is None or (repo.private and tok != TestHub.GRANTED):
            if tok is None:
                self.error(401, "RepoNotFound", "Repository not found")
            else:
                self.error(404, "RepoNotFound", "Repository not found")
            return False
        if files and repo.gated:
            if tok is None:
                self.error(401, "GatedRepo", "Access to model %s is restricted. You must have access to it and be "
                           "authenticated to access it. Please log in." % rid)
                return False
            if tok != TestHub.GRANTED:
                self.error(403, "GatedRepo", "Access to model %s is restricted and you are not in the authorized "
                           "list. Visit %s/%s to ask for access." % (rid, self.hub.endpoint, rid))
                return False
        return True

    def get(self, url):
        query = urllib.parse.parse_qs(url.query)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        if parts[:2] == ["api", "models"]:
            return self.api_models(parts[2:], query)
        if parts[:3] == ["api", "resolve-cache", "models"]:
            return self.resolve_cache(parts[3:])
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(parts)
        self.error(404, None, "Sorry, we can't find the page you are looking for.")

    def do_POST(self):
        self._record()
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if parts[:2] == ["api", "models"] and len(parts) >= 5 and parts[4] == "paths-info":
            rid, repo, rest = self.repo_and_rest(parts[2:])
            if not self.check_access(repo, rid, False):
                return
            commit = repo.resolve("/".join(rest[1:]) or "main")
            if commit is None:
                return self.error(404, "RevisionNotFound", "Invalid rev id: %s" % "/".join(rest[1:]))
            if "json" in (self.headers.get("Content-Type") or ""):
                req = json.loads(raw or b"{}")
                paths, expand = req.get("paths", []), bool(req.get("expand"))
            else:  # huggingface_hub posts a form
                form = urllib.parse.parse_qs(raw.decode())
                paths, expand = form.get("paths", []), form.get("expand", ["false"])[0].lower() == "true"
            tree = repo.commits[commit]
            out = []
            for p in paths:
                p = p.strip("/")
                if p in tree:
                    out.append(tree[p].entry(commit, expand))
                elif any(k.startswith(p + "/") for k in tree):
                    out.append({"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0,
                                "path": p})
            return self.send(200, json.dumps(out).encode())
        self.error(404, None, "Not Found")

    def api_models(self, parts, query):
        rid, repo, rest = self.repo_and_rest(parts)
        if not self.check_access(repo, rid, False):
            return
        if not rest or rest[0] == "revision":
            rev = "/".join(rest[1:]) if rest else "main"
            commit = repo.resolve(rev)
            if commit is None:
                return self.error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
            blobs = query.get("blobs", ["false"])[0].lower() in ("true", "1")
            sib = []
            for f in repo.commits[commit].values():
                s = {"rfilename": f.path}
                if blobs:
                    s["blobId"] = f.blob_id
                    s["size"] = f.size
                    if f.lfs:
                        s["lfs"] = {"sha256": f.sha256, "size": f.size,
                                    "pointerSize": len(lfs_pointer(f.sha256, f.size))}
                sib.append(s)
            info = {"_id": hashlib.md5(rid.encode()).hexdigest()[:24], "id": rid, "modelId": rid,
                    "author": rid.split("/")[0], "sha": commit, "lastModified": "2025-01-01T00:00:00.000Z",
                    "createdAt": "2025-01-01T00:00:00.000Z", "private": repo.private,
                    "gated": "manual" if repo.gated else False, "disabled": False, "downloads": 0, "likes": 0,
                    "library_name": "transformers", "pipeline_tag": "text-generation",
                    "tags": ["transformers", "safetensors", "bitnet", "text-generation"],
                    "siblings": sib, "spaces": []}
            return self.send(200, json.dumps(info).encode())
        if rest[0] == "tree":
            rev = rest[1] if len(rest) > 1 else "main"
            sub = "/".join(rest[2:]).strip("/")
            commit = repo.resolve(rev)
            if commit is None:
                return self.error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            expand = query.get("expand", ["false"])[0].lower() == "true"
            out, dirs = [], set()
            for path, f in repo.commits[commit].items():
                if sub and not path.startswith(sub + "/"):
                    continue
                rel = path[len(sub) + 1:] if sub else path
                comps = rel.split("/")
                for i in range(1, len(comps)):
                    d = "/".join(([sub] if sub else []) + comps[:i])
                    if d not in dirs and (recursive or i == 1):
                        dirs.add(d)
                        out.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0,
                                    "path": d})
                if recursive or len(comps) == 1:
                    out.append(f.entry(commit, expand))
            return self.send(200, json.dumps(out).encode())
        self.error(404, None, "Not Found")

    def resolve(self, parts):
        rid, repo, rest = self.repo_and_rest(parts)
        rest = rest[1:]  # "resolve"
        if not self.check_access(repo, rid, True):
            return
        # the revision may hold slashes (refs/pr/1) only when %-encoded: the next part is the revision
        rev, path = rest[0], "/".join(rest[1:])
        commit = repo.resolve(rev)
        if commit is None:
            return self.error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
        f = repo.commits[commit].get(path)
        if f is None:
            return self.error(404, "EntryNotFound", "Entry not found")
        common = {"X-Repo-Commit": commit, "Vary": "Origin, Accept, Range"}
        if f.lfs:
            expires = int(time.time()) + 3600
            loc = "%s/repos/%s/%s/%s?response-content-disposition=%s&Expires=%d&Signature=%s&Key-Pair-Id=K3TEST" % (
                self.hub.cdn_base, f.sha256[:2], f.sha256[2:4], f.sha256,
                urllib.parse.quote("inline; filename*=UTF-8''%s;" % path.split("/")[-1]), expires,
                self.hub.sign(f.sha256, expires))
            h = dict(common)
            h.update({"Location": loc, "X-Linked-Etag": '"%s"' % f.sha256, "X-Linked-Size": str(f.size),
                      "ETag": '"%s"' % f.blob_id})
            return self.send(302, ("Found. Redirecting to %s" % loc).encode(), h, "text/plain; charset=utf-8")
        loc = "/api/resolve-cache/models/%s/%s/%s" % (rid, commit, urllib.parse.quote(path))
        h = dict(common)
        h.update({"Location": loc, "ETag": '"%s"' % f.blob_id})
        self.send(307, ("Temporary Redirect. Redirecting to %s" % loc).encode(), h, "text/plain; charset=utf-8")

    def resolve_cache(self, parts):
        rid, repo, rest = self.repo_and_rest(parts)
        if not self.check_access(repo, rid, True):
            return
        if len(rest) < 2 or rest[0] not in repo.commits:
            return self.error(404, "RevisionNotFound", "Invalid rev id")
        f = repo.commits[rest[0]].get("/".join(rest[1:]))
        if f is None or f.lfs:
            return self.error(404, "EntryNotFound", "Entry not found")
        self.send_file(f, f.data, {"ETag": '"%s"' % f.blob_id, "X-Repo-Commit": rest[0]})


class CdnHandler(Handler):
    def get(self, url):
        q = urllib.parse.parse_qs(url.query)
        sha = url.path.rsplit("/", 1)[-1]
        if self.headers.get("Authorization"):
            return self.send(400, b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed"
                             b"</Message></Error>", content_type="application/xml")
        try:
            expires, sig = int(q["Expires"][0]), q["Signature"][0]
        except (KeyError, ValueError):
            return self.send(403, b"<Error><Code>AccessDenied</Code></Error>", content_type="application/xml")
        if expires < time.time() or not hmac.compare_digest(sig, self.hub.sign(sha, expires)):
            return self.send(403, b"<Error><Code>AccessDenied</Code></Error>", content_type="application/xml")
        f = self.hub.blob(sha)
        if f is None:
            return self.send(404, b"<Error><Code>NoSuchKey</Code></Error>", content_type="application/xml")
        data = f.data
        if sha in self.hub.faults.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.send_file(f, data, {"ETag": '"%s"' % hashlib.md5(f.data).hexdigest(), "X-Cache": "Miss from cloudfront",
                                 "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT"})


# ---- fixture repos made from the project's checkpoints ----

def split_safetensors(data, n_shards):
    """Cuts one .safetensors file into n shards (the tensors in order) and the index HF writes."""
    hlen = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + hlen])
    meta = header.pop("__metadata__", None)
    names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    per = (len(names) + n_shards - 1) // n_shards
    shards, weight_map, total = {}, {}, 0
    for i in range(n_shards):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, n_shards)
        hdr, chunks, off = {}, [], 0
        for k in names[i * per:(i + 1) * per]:
            b, e = header[k]["data_offsets"]
            t = dict(header[k])
            t["data_offsets"] = [off, off + e - b]
            hdr[k] = t
            chunks.append(data[8 + hlen + b:8 + hlen + e])
            off += e - b
            weight_map[k] = fname
            total += e - b
        if meta:
            hdr["__metadata__"] = meta
        hb = json.dumps(hdr).encode()
        hb += b" " * (-len(hb) % 8)
        shards[fname] = struct.pack("<Q", len(hb)) + hb + b"".join(chunks)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    shards["model.safetensors.index.json"] = (json.dumps(index, indent=2) + "\n").encode()
    return shards


def read_folder(path):
    out = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            out[name] = f.read()
    return out


def standard_repos(hub, root):
    """The repos the tests use. root: the project's checkout."""
    shakespeare = read_folder(os.path.join(root, "models", "shakespeare"))
    extra = {"README.md": b"---\nlicense: mit\n---\n# shakespeare\n",
             ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n",
             "pytorch_model.bin": hashlib.sha256(b"not needed").digest() * 1000,
             "original/notes.txt": b"a nested file that a model does not need\n"}
    r = hub.add_repo("bitnet-test/shakespeare")
    old = dict(shakespeare, **extra)
    old["config.json"] = shakespeare["config.json"].replace(b'"max_position_embeddings": 256',
                                                            b'"max_position_embeddings": 128')
    v1 = r.add_revision(["v1"], old)
    r.add_revision(["main"], dict(shakespeare, **extra), parent=v1)

    fx = os.path.join(root, "tests", "fixtures", "hf")
    gqa = read_folder(os.path.join(fx, "tiny-gqa-tied", "packed"))
    files = {"config.json": gqa["config.json"]}
    files.update(split_safetensors(gqa["model.safetensors"], 2))
    hub.add_repo("bitnet-test/tiny-sharded").add_revision(["main"], files)

    mha = read_folder(os.path.join(fx, "tiny-mha-untied", "packed"))
    hub.add_repo("bitnet-test/gated", gated=True).add_revision(["main"], mha)
    hub.add_repo("bitnet-test/private", private=True).add_revision(["main"], mha)
    hub.add_repo("bitnet-test/no-weights").add_revision(["main"], {"config.json": gqa["config.json"],
                                                                    "README.md": b"# empty\n"})


if __name__ == "__main__":
    import sys
    h = TestHub(int(sys.argv[1]) if len(sys.argv) > 1 else None)
    standard_repos(h, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    print("HF_ENDPOINT=%s" % h.endpoint, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        h.close()
