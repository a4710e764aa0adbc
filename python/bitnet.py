"""bitnet.h from Python: the shared library (`make lib`) through ctypes, standard library only.

    import bitnet
    model = bitnet.Model("models/shakespeare")        # a folder, or ORG/NAME[@REV] in the HF cache
    print(model.generate("ROMEO:", max_tokens=60, temperature=0))
    for piece in model.stream("JULIET:", max_tokens=60):
        print(piece, end="", flush=True)

Model(path, threads=0, n_ctx=0) loads the weights and the tokenizer once; its methods:
    tokenize(text, add_special=False, special=False) -> [int]
    detokenize(ids, skip_special=False) -> str
    generate(prompt, max_tokens=-1, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
             repeat_penalty=1.0, seed=None, stop=(), ignore_eos=False) -> str
    stream(prompt, ...same...) -> iterator of str pieces (each complete UTF-8)
    generate_tokens(prompt_ids, ...same...) -> [int]
    chat(messages, template=None, ...same...) -> str   messages: [{"role": ..., "content": ...}]
    perplexity(text, n_ctx=None) -> float             as `bitnet ppl`
    generate_batch(prompts, ...same...) -> [str]      decoded together (continuous batching)
Errors raise bitnet.Error (status, message) with the library's message naming the file,
tensor or byte at fault. The library is found through BITNET_LIB, else build/libbitnet.so
beside this folder, else the system's library path. docs/python.md has more."""

import ctypes
import ctypes.util
import math
import os
import queue
import sys
import threading

__all__ = ["Model", "Error", "load_library"]

# ---- the C types (bitnet.h); tests/python/test_bitnet.py checks their sizes against the C compiler's ----

c_int, c_float, c_double, c_size_t, c_char_p, c_void_p = (ctypes.c_int, ctypes.c_float, ctypes.c_double,
                                                          ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p)
c_int32, c_int8, c_uint64 = ctypes.c_int32, ctypes.c_int8, ctypes.c_uint64
P = ctypes.POINTER

ERROR_MSG_MAX = 512
MAX_EOS = 8
TOK_ADD_SPECIAL, TOK_PARSE_SPECIAL, TOK_REPLACE_INVALID, TOK_SKIP_SPECIAL = 1, 2, 4, 8
STOP_REASONS = {0: "none", 1: "eos", 2: "stop string", 3: "max tokens", 4: "context full", 5: "cancelled",
                6: "error", 7: "grammar"}


class bn_error(ctypes.Structure):
    _fields_ = [("status", c_int), ("msg", ctypes.c_char * ERROR_MSG_MAX)]


class bn_config(ctypes.Structure):
    _fields_ = [("arch", c_int), ("act", c_int), ("variant", c_int), ("vocab_size", c_int), ("hidden_size", c_int),
                ("intermediate_size", c_int), ("n_layers", c_int), ("n_heads", c_int), ("n_kv_heads", c_int),
                ("head_dim", c_int), ("max_seq_len", c_int), ("rope_theta", c_float), ("rms_norm_eps", c_float),
                ("tie_word_embeddings", c_int), ("has_sub_norms", c_int), ("bos_token_id", c_int), ("n_eos", c_int),
                ("eos_token_ids", c_int * MAX_EOS)]


class bn_limits(ctypes.Structure):
    _fields_ = [("max_alloc", c_size_t), ("max_total", c_size_t)]


class bn_context_params(ctypes.Structure):
    _fields_ = [("n_ctx", c_int), ("n_seq", c_int), ("n_batch", c_int), ("n_threads", c_int), ("kernel", c_int),
                ("kv_type", c_int), ("limits", bn_limits), ("backend", c_void_p)]


class bn_sampler_params(ctypes.Structure):
    _fields_ = [("temperature", c_float), ("top_k", c_int), ("top_p", c_float), ("min_p", c_float),
                ("repeat_penalty", c_float), ("presence_penalty", c_float), ("frequency_penalty", c_float),
                ("penalty_last_n", c_int), ("seed", c_uint64), ("logit_bias", c_void_p), ("n_logit_bias", c_int),
                ("grammar", c_char_p), ("grammar_root", c_char_p), ("json_schema", c_char_p),
                ("grammar_vocab", c_void_p)]


class bn_token_event(ctypes.Structure):
    _fields_ = [("id", c_int), ("token", c_int32), ("index", c_int), ("text", c_void_p), ("len", c_size_t),
                ("logits", P(c_float)), ("n_vocab", c_int), ("end_token", c_int), ("reason", c_int)]


class bn_generate_result(ctypes.Structure):
    _fields_ = [("reason", c_int), ("n_prompt", c_int), ("n_cached", c_int), ("n_generated", c_int),
                ("prompt_s", c_double), ("gen_s", c_double)]


TOKEN_FN = ctypes.CFUNCTYPE(c_int, c_void_p, P(bn_token_event))
DONE_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, P(bn_generate_result))


class bn_generate_params(ctypes.Structure):
    _fields_ = [("max_new_tokens", c_int), ("eos", P(c_int32)), ("n_eos", c_int), ("ignore_eos", c_int),
                ("tokenizer", c_void_p), ("decode_flags", ctypes.c_uint), ("stop", P(c_char_p)), ("n_stop", c_int),
                ("on_token", TOKEN_FN), ("user", c_void_p)]


class bn_request_params(ctypes.Structure):
    _fields_ = [("sampler", bn_sampler_params), ("max_new_tokens", c_int), ("ignore_eos", c_int),
                ("tokenizer", c_void_p), ("decode_flags", ctypes.c_uint), ("stop", P(c_char_p)), ("n_stop", c_int),
                ("on_token", TOKEN_FN), ("on_done", DONE_FN), ("user", c_void_p)]


class bn_batcher_params(ctypes.Structure):
    _fields_ = [("n_slots", c_int), ("n_batch", c_int), ("prefill_chunk", c_int), ("eos", P(c_int32)),
                ("n_eos", c_int), ("prompt_cache", c_int)]


class bn_chat_message(ctypes.Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


STRUCTS = {"bn_error": bn_error, "bn_config": bn_config, "bn_limits": bn_limits,
           "bn_context_params": bn_context_params, "bn_sampler_params": bn_sampler_params,
           "bn_token_event": bn_token_event, "bn_generate_params": bn_generate_params,
           "bn_generate_result": bn_generate_result, "bn_request_params": bn_request_params,
           "bn_batcher_params": bn_batcher_params, "bn_chat_message": bn_chat_message}


class Error(Exception):
    """A failure reported by bitnet.h: .status is the bn_status name, str() the library's message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


_LIB = None


def _library_path():
    env = os.environ.get("BITNET_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("libbitnet.so", "libbitnet.dylib", "bitnet.dll"):
        p = os.path.join(here, "..", "build", name)
        if os.path.exists(p):
            return p
    return ctypes.util.find_library("bitnet")


def load_library(path=None):
    """Loads the shared library once (path, BITNET_LIB, ../build/libbitnet.so, the system's)."""
    global _LIB
    if _LIB is not None and path is None:
        return _LIB
    path = path or _library_path()
    if not path:
        raise OSError("libbitnet not found: run `make lib` (it builds build/libbitnet.so) or set BITNET_LIB")
    lib = ctypes.CDLL(path)
    sig = {
        "bn_status_name": (c_char_p, [c_int]),
        "bn_free": (None, [c_void_p]),
        "bn_model_load": (c_int, [P(c_void_p), c_char_p, c_void_p, P(bn_error)]),
        "bn_model_free": (None, [c_void_p]),
        "bn_model_config": (P(bn_config), [c_void_p]),
        "bn_context_default_params": (bn_context_params, []),
        "bn_context_new": (c_int, [P(c_void_p), c_void_p, P(bn_context_params), P(bn_error)]),
        "bn_context_free": (None, [c_void_p]),
        "bn_context_get_params": (P(bn_context_params), [c_void_p]),
        "bn_context_reset": (None, [c_void_p]),
        "bn_score": (c_int, [c_void_p, c_int, P(c_int32), c_int, P(c_double), P(bn_error)]),
        "bn_tokenizer_load": (c_int, [P(c_void_p), c_char_p, P(bn_error)]),
        "bn_tokenizer_free": (None, [c_void_p]),
        "bn_tokenizer_eos_id": (c_int32, [c_void_p]),
        "bn_tokenizer_encode": (c_int, [c_void_p, c_char_p, c_size_t, ctypes.c_uint, P(P(c_int32)), P(c_size_t),
                                        P(bn_error)]),
        "bn_tokenizer_decode": (c_int, [c_void_p, P(c_int32), c_size_t, ctypes.c_uint, P(c_void_p), P(c_size_t),
                                        P(bn_error)]),
        "bn_chat_template_from_name": (c_int, [c_char_p]),
        "bn_chat_format": (c_int, [c_void_p, c_int, P(bn_chat_message), c_size_t, c_int, P(c_void_p), P(c_size_t),
                                   P(bn_error)]),
        "bn_sampler_default_params": (bn_sampler_params, []),
        "bn_sampler_new": (c_int, [P(c_void_p), P(bn_sampler_params), c_int, P(bn_error)]),
        "bn_sampler_free": (None, [c_void_p]),
        "bn_generate_default_params": (bn_generate_params, []),
        "bn_generate": (c_int, [c_void_p, c_int, c_void_p, P(c_int32), c_int, P(bn_generate_params), P(c_int32), c_int,
                                P(bn_generate_result), P(bn_error)]),
        "bn_batcher_default_params": (bn_batcher_params, []),
        "bn_request_default_params": (bn_request_params, []),
        "bn_batcher_new": (c_int, [P(c_void_p), c_void_p, P(bn_batcher_params), P(bn_error)]),
        "bn_batcher_free": (None, [c_void_p]),
        "bn_batcher_add": (c_int, [c_void_p, P(c_int32), c_int, P(bn_request_params), P(c_int), P(bn_error)]),
        "bn_batcher_step": (c_int, [c_void_p, P(c_int), P(bn_error)]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    if path is not None and _LIB is not None:
        return lib
    _LIB = lib
    return lib


def _check(lib, status, err):
    if status != 0:
        name = lib.bn_status_name(status).decode()
        raise Error(name, err.msg.decode("utf-8", "replace") or name)


def _resolve_model(path):
    """A folder, or ORG/NAME[@REV] found in the HF cache (as `bitnet -m` resolves it, without downloading)."""
    if os.path.exists(path) or path.count("/") != 1:
        return path
    repo, _, rev = path.partition("@")
    rev = rev or "main"
    cache = (os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or
             os.path.join(os.environ.get("HF_HOME") or os.path.join(
                 os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"), "hub"))
    folder = os.path.join(cache, "models--" + repo.replace("/", "--"))
    commit = rev
    ref = os.path.join(folder, "refs", rev)
    if os.path.isfile(ref):
        with open(ref) as f:
            commit = f.read().strip()
    snap = os.path.join(folder, "snapshots", commit)
    if os.path.isfile(os.path.join(snap, "config.json")):
        return snap
    raise Error("missing", "%s is neither a folder nor in the HF cache (%s): `bitnet pull %s` downloads it"
                % (path, cache, path))


def _sampler_params(lib, temperature, top_k, top_p, min_p, repeat_penalty, seed):
    sp = lib.bn_sampler_default_params()
    sp.temperature = temperature
    sp.top_k = top_k
    sp.top_p = top_p
    sp.min_p = min_p
    sp.repeat_penalty = repeat_penalty
    if seed is not None:
        sp.seed = seed
    return sp


class Model:
    """A model folder (config.json, *.safetensors, tokenizer.json) loaded once; one context for
    single generations, and one per batch size for generate_batch."""

    def __init__(self, path, threads=0, n_ctx=0, library=None):
        self.lib = load_library(library) if library else load_library()
        self.path = _resolve_model(os.fspath(path))
        self._model = c_void_p()
        self._tok = c_void_p()
        self._ctx = c_void_p()
        self.threads, self.n_ctx = threads, n_ctx
        self._lock = threading.Lock()
        err = bn_error()
        _check(self.lib, self.lib.bn_model_load(ctypes.byref(self._model), self.path.encode(), None, ctypes.byref(err)),
               err)
        try:
            if os.path.exists(os.path.join(self.path, "tokenizer.json")):
                _check(self.lib, self.lib.bn_tokenizer_load(ctypes.byref(self._tok), self.path.encode(),
                                                            ctypes.byref(err)), err)
            self._ctx = self._new_context(1)
        except Exception:
            self.close()
            raise
        self.config = self.lib.bn_model_config(self._model).contents
        self.vocab_size = self.config.vocab_size

    def _new_context(self, n_seq):
        cp = self.lib.bn_context_default_params()
        cp.n_ctx, cp.n_seq, cp.n_threads = self.n_ctx, n_seq, self.threads
        ctx, err = c_void_p(), bn_error()
        _check(self.lib, self.lib.bn_context_new(ctypes.byref(ctx), self._model, ctypes.byref(cp), ctypes.byref(err)),
               err)
        return ctx

    def close(self):
        if getattr(self, "_ctx", None):
            self.lib.bn_context_free(self._ctx)
            self._ctx = c_void_p()
        if getattr(self, "_tok", None):
            self.lib.bn_tokenizer_free(self._tok)
            self._tok = c_void_p()
        if getattr(self, "_model", None):
            self.lib.bn_model_free(self._model)
            self._model = c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def context_length(self):
        return self.lib.bn_context_get_params(self._ctx).contents.n_ctx

    # ---- text <-> ids ----

    def _need_tokenizer(self):
        if not self._tok:
            raise Error("missing", "%s has no tokenizer.json: pass token ids instead" % self.path)

    def tokenize(self, text, add_special=False, special=False):
        self._need_tokenizer()
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
        flags = (TOK_ADD_SPECIAL if add_special else 0) | (TOK_PARSE_SPECIAL if special else 0)
        ids, n, err = P(c_int32)(), c_size_t(), bn_error()
        _check(self.lib, self.lib.bn_tokenizer_encode(self._tok, data, len(data), flags, ctypes.byref(ids),
                                                      ctypes.byref(n), ctypes.byref(err)), err)
        try:
            return ids[:n.value]
        finally:
            self.lib.bn_free(ids)

    def detokenize(self, ids, skip_special=False):
        self._need_tokenizer()
        arr = (c_int32 * len(ids))(*ids)
        text, n, err = c_void_p(), c_size_t(), bn_error()
        _check(self.lib, self.lib.bn_tokenizer_decode(self._tok, arr, len(ids), TOK_SKIP_SPECIAL if skip_special else 0,
                                                      ctypes.byref(text), ctypes.byref(n), ctypes.byref(err)), err)
        try:
            return ctypes.string_at(text, n.value).decode("utf-8", "replace")
        finally:
            self.lib.bn_free(text)

    def eos_ids(self):
        """The end tokens: config.json's and generation_config.json's, and the tokenizer's eos_token."""
        ids = list(self.config.eos_token_ids[:self.config.n_eos])
        if self._tok:
            e = self.lib.bn_tokenizer_eos_id(self._tok)
            if e >= 0 and e not in ids:
                ids.append(e)
        return ids[:MAX_EOS]

    # ---- generation ----

    def _run(self, prompt_ids, on_text, max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop,
             ignore_eos, special=False):
        """bn_generate on sequence 0 from an empty context: on_text(piece) for every piece of text
        the library hands out (return True to stop). Returns (generated ids, stop reason)."""
        lib = self.lib
        if not prompt_ids:
            raise Error("invalid argument", "the prompt is empty")
        if stop:
            self._need_tokenizer()
        sampler, err = c_void_p(), bn_error()
        sp = _sampler_params(lib, temperature, top_k, top_p, min_p, repeat_penalty, seed)
        _check(lib, lib.bn_sampler_new(ctypes.byref(sampler), ctypes.byref(sp), self.vocab_size, ctypes.byref(err)),
               err)
        generated = []

        def on_token(user, event):
            ev = event.contents
            if ev.token >= 0:
                generated.append(ev.token)
            if ev.len and on_text(ctypes.string_at(ev.text, ev.len).decode("utf-8", "replace")):
                return 1
            return 0

        token_cb = TOKEN_FN(on_token)  # kept alive during the call
        gp = lib.bn_generate_default_params()
        gp.max_new_tokens = max_tokens
        gp.ignore_eos = 1 if ignore_eos else 0
        gp.tokenizer = self._tok or None  # end tokens: the model's and the tokenizer's eos_token
        gp.decode_flags = 0 if special else TOK_SKIP_SPECIAL
        stops = [x.encode() for x in stop]
        stop_arr = (c_char_p * max(1, len(stops)))(*stops)
        gp.stop, gp.n_stop = (stop_arr, len(stops)) if stops else (None, 0)
        gp.on_token = token_cb
        ids = (c_int32 * len(prompt_ids))(*prompt_ids)
        res = bn_generate_result()
        try:
            with self._lock:
                lib.bn_context_reset(self._ctx)
                st = lib.bn_generate(self._ctx, 0, sampler, ids, len(prompt_ids), ctypes.byref(gp), None, 0,
                                     ctypes.byref(res), ctypes.byref(err))
            _check(lib, st, err)
        finally:
            lib.bn_sampler_free(sampler)
        self.last_stop_reason = STOP_REASONS.get(res.reason, str(res.reason))
        return generated, self.last_stop_reason

    def _prompt(self, prompt):
        if isinstance(prompt, (list, tuple)):
            return list(prompt)
        self._need_tokenizer()
        data = prompt.encode("utf-8")
        ids, n, err = P(c_int32)(), c_size_t(), bn_error()
        _check(self.lib, self.lib.bn_tokenizer_encode(self._tok, data, len(data),
                                                      TOK_ADD_SPECIAL | TOK_REPLACE_INVALID, ctypes.byref(ids),
                                                      ctypes.byref(n), ctypes.byref(err)), err)
        try:
            return ids[:n.value]
        finally:
            self.lib.bn_free(ids)

    def generate(self, prompt, max_tokens=-1, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0,
                 seed=None, stop=(), ignore_eos=False):
        """The text generated after prompt (a str, tokenized with BOS as `bitnet run` does, or ids)."""
        pieces = []
        self._run(self._prompt(prompt), lambda s: pieces.append(s), max_tokens, temperature, top_k, top_p, min_p,
                  repeat_penalty, seed, stop, ignore_eos)
        return "".join(pieces)

    def generate_tokens(self, prompt, max_tokens=-1, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
                        repeat_penalty=1.0, seed=None, stop=(), ignore_eos=False):
        """The ids generated after prompt (str or ids), the last sampled one included."""
        ids, _ = self._run(self._prompt(prompt), lambda s: None, max_tokens, temperature, top_k, top_p, min_p,
                           repeat_penalty, seed, stop, ignore_eos)
        return ids

    def stream(self, prompt, max_tokens=-1, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0,
               seed=None, stop=(), ignore_eos=False):
        """Yields the text as it is generated. The library runs on a thread of its own and hands
        each piece over; leaving the loop early stops the generation at the next token."""
        prompt_ids = self._prompt(prompt)
        q, cancel, done = queue.Queue(), threading.Event(), object()
        failure = []

        def on_text(s):
            q.put(s)
            return cancel.is_set()

        def work():
            try:
                self._run(prompt_ids, on_text, max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed,
                          stop, ignore_eos)
            except BaseException as e:  # noqa: B902 - handed to the consumer
                failure.append(e)
            finally:
                q.put(done)

        t = threading.Thread(target=work, daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    break
                yield item
        finally:
            cancel.set()
            t.join()
        if failure:
            raise failure[0]

    def chat(self, messages, template=None, add_generation_prompt=True, **kw):
        """The assistant's reply to messages ([{"role", "content"}]) in the model's chat template
        (tokenizer_config.json's, or template="llama3" / "bitnet")."""
        self._need_tokenizer()
        lib = self.lib
        tmpl = 0 if template is None else lib.bn_chat_template_from_name(template.encode())
        keep = [(m["role"].encode(), m["content"].encode()) for m in messages]
        arr = (bn_chat_message * max(1, len(keep)))(*[bn_chat_message(r, c) for r, c in keep])
        text, n, err = c_void_p(), c_size_t(), bn_error()
        _check(lib, lib.bn_chat_format(self._tok, tmpl, arr, len(keep), 1 if add_generation_prompt else 0,
                                       ctypes.byref(text), ctypes.byref(n), ctypes.byref(err)), err)
        try:
            prompt = ctypes.string_at(text, n.value).decode("utf-8")
        finally:
            lib.bn_free(text)
        return self.generate(self.tokenize(prompt, special=True), **kw)

    # ---- scoring ----

    def perplexity(self, text, n_ctx=None):
        """exp(mean next-token cross-entropy) over windows of n_ctx tokens, as `bitnet ppl` (bn_score)."""
        ids = self.tokenize(text) if isinstance(text, str) else list(text)
        if len(ids) < 2:
            raise Error("invalid argument", "fewer than 2 tokens: nothing to score")
        lib, err = self.lib, bn_error()
        win = n_ctx or self.context_length
        total, scored = 0.0, 0
        with self._lock:
            for w0 in range(0, len(ids), win):
                w = ids[w0:w0 + win]
                if len(w) < 2:
                    break
                logprob = (c_double * (len(w) - 1))()
                lib.bn_context_reset(self._ctx)
                _check(lib, lib.bn_score(self._ctx, 0, (c_int32 * len(w))(*w), len(w), logprob, ctypes.byref(err)),
                       err)
                total -= math.fsum(logprob)
                scored += len(w) - 1
        self.last_nats_per_token = total / scored
        return math.exp(total / scored)

    # ---- batched requests ----

    def generate_batch(self, prompts, max_tokens=64, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
                       repeat_penalty=1.0, seed=None, stop=(), ignore_eos=False):
        """The texts generated for each prompt (ids lists without a tokenizer), decoded together by
        the library's continuous batcher (one forward pass per step for all of them)."""
        lib, err = self.lib, bn_error()
        prompt_ids = [self._prompt(p) for p in prompts]
        if not prompt_ids:
            return []
        if stop:
            self._need_tokenizer()
        ctx = self._new_context(len(prompt_ids))
        batcher = c_void_p()
        texts = [[] for _ in prompt_ids]
        tokens = [[] for _ in prompt_ids]
        rid_to_index = {}

        def on_token(user, event):
            ev = event.contents
            i = rid_to_index[ev.id]
            if ev.token >= 0:
                tokens[i].append(ev.token)
            if ev.len:
                texts[i].append(ctypes.string_at(ev.text, ev.len))
            return 0

        tok_cb = TOKEN_FN(on_token)  # kept alive until the batcher is freed
        stops = [x.encode() for x in stop]
        stop_arr = (c_char_p * max(1, len(stops)))(*stops)
        try:
            bp = lib.bn_batcher_default_params()
            _check(lib, lib.bn_batcher_new(ctypes.byref(batcher), ctx, ctypes.byref(bp), ctypes.byref(err)), err)
            for i, ids in enumerate(prompt_ids):
                rp = lib.bn_request_default_params()
                rp.sampler = _sampler_params(lib, temperature, top_k, top_p, min_p, repeat_penalty,
                                             None if seed is None else seed + i)
                rp.max_new_tokens = max_tokens
                rp.ignore_eos = 1 if ignore_eos else 0
                rp.tokenizer = self._tok or None
                rp.stop, rp.n_stop = (stop_arr, len(stops)) if stops else (None, 0)
                rp.on_token = tok_cb
                rid = c_int()
                arr = (c_int32 * len(ids))(*ids)
                _check(lib, lib.bn_batcher_add(batcher, arr, len(ids), ctypes.byref(rp), ctypes.byref(rid),
                                               ctypes.byref(err)), err)
                rid_to_index[rid.value] = i
            active = c_int(1)
            while active.value > 0:
                _check(lib, lib.bn_batcher_step(batcher, ctypes.byref(active), ctypes.byref(err)), err)
        finally:
            if batcher:
                lib.bn_batcher_free(batcher)
            lib.bn_context_free(ctx)
        if not self._tok:
            return tokens
        return [b"".join(t).decode("utf-8", "replace") for t in texts]


if __name__ == "__main__":
    m = Model(sys.argv[1] if len(sys.argv) > 1 else "models/shakespeare")
    for piece in m.stream(sys.argv[2] if len(sys.argv) > 2 else "ROMEO:", max_tokens=100):
        print(piece, end="", flush=True)
    print()
