#!/bin/sh
# The `bitnet` command on the tiny HF fixtures: exit codes, and outputs checked
# against references - HF's greedy continuations and logits (reference.safetensors),
# and texts derived from token ids by a tokenizer made up here so that each id's
# text is known (printable ASCII bytes are themselves, other ids are "w<id>").
# Prints "test_cli: N passed, M failed".
cd "$(dirname "$0")/.." || exit 1
PASS=0
FAIL=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bitnet-cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
BIN=${BITNET_BIN:-build/bitnet} # BITNET_BIN: test that binary as it is (e.g. the build without libcurl)
HF=tests/fixtures/hf
mkdir -p build
if [ -z "${BITNET_BIN:-}" ] && ! cc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror tools/*.c -o "$BIN" -lm -lpthread -ldl; then
    echo "test_cli: 0 passed, 1 failed"
    exit 1
fi

ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; }
# expect_rc NAME RC CMD...: the command exits with RC
expect_rc() {
    name=$1 want=$2
    shift 2
    "$@" > "$TMP/out" 2> "$TMP/err"
    rc=$?
    if [ "$rc" -eq "$want" ]; then ok "$name"; else bad "$name (exit $rc, want $want)"; sed 's/^/    /' "$TMP/err" | head -5; fi
}
# same NAME FILE1 FILE2: identical bytes
same() {
    if cmp -s "$2" "$3"; then ok "$1"; else bad "$1"; echo "    got:  $(head -c 300 "$2")"; echo "    want: $(head -c 300 "$3")"; fi
}

# Reads the fixtures and writes reference files for the checks (python3 standard library only).
python3 - "$TMP" <<'EOF'
import json, math, os, struct, sys
tmp = sys.argv[1]
def st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, m in h.items():
        if k == "__metadata__": continue
        s, e = m["data_offsets"]
        raw = b[8 + n + s:8 + n + e]
        out[k] = (m["shape"], struct.unpack("<%d%s" % (len(raw) // 4, "i" if m["dtype"] == "I32" else "f"), raw))
    return out
for case in ["tiny-gqa-tied", "tiny-mha-untied", "llama-bitnet"]:
    r = st("tests/fixtures/hf/%s/reference.safetensors" % case)
    ids = r["input_ids"][1]
    open(os.path.join(tmp, case + ".prompt"), "w").write(",".join(map(str, ids)))
    for var in ["packed", "master"]:
        open(os.path.join(tmp, "%s.%s.greedy" % (case, var)), "w").write(" ".join(map(str, r[var + ".greedy"][1])) + "\n")
    # HF's loss on the prompt: mean cross-entropy of input_ids[1:] under logits[:-1]
    (n, V), L = r["packed.logits"]
    nats = 0.0
    for i in range(n - 1):
        row = L[i * V:(i + 1) * V]
        m = max(row)
        nats += m + math.log(sum(math.exp(x - m) for x in row)) - row[ids[i + 1]]
    open(os.path.join(tmp, case + ".nats"), "w").write("%.6f\n" % (nats / (n - 1)))

# A tokenizer for the 777-token tiny-mha-untied model whose every id has a known text:
# ids 32..126 and 10 are those ASCII bytes, 770..774 the LLaMA 3 specials,
# every other id is the word "w<id>". Byte-level BPE with no merges.
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    k = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + k); k += 1
    return dict(zip(bs, map(chr, cs)))
b2u = bytes_to_unicode()
specials = {770: "<|begin_of_text|>", 771: "<|end_of_text|>", 772: "<|start_header_id|>", 773: "<|end_header_id|>", 774: "<|eot_id|>"}
vocab = {}
for i in range(777):
    if i in specials: continue
    vocab[b2u[i] if 32 <= i <= 126 or i == 10 else "w%d" % i] = i
tok = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True} for i, c in sorted(specials.items())],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                       "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                       "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [770], "tokens": ["<|begin_of_text|>"]}}},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
              "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": []}}
d = os.path.join(tmp, "model")
os.makedirs(d, exist_ok=True)
json.dump(tok, open(os.path.join(d, "tokenizer.json"), "w"))
cfg = json.load(open("tests/fixtures/tokenizers/llama3/tokenizer_config.json"))
json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": cfg["chat_template"]},
          open(os.path.join(d, "tokenizer_config.json"), "w"))
EOF
cp "$HF/tiny-mha-untied/packed/config.json" "$HF/tiny-mha-untied/packed/model.safetensors" "$TMP/model/"

# text of ids as the made-up tokenizer decodes them (specials skipped), and ids of an ASCII text
cat > "$TMP/tok.py" <<'EOF'
import sys
def text(ids, special=False):
    out = ""
    for i in ids:
        if 770 <= i <= 774:
            if special: out += ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"][i - 770]
        elif 32 <= i <= 126 or i == 10: out += chr(i)
        else: out += "w%d" % i
    return out
if sys.argv[1] == "text":
    print(text([int(x) for x in open(sys.argv[2]).read().split()]))
elif sys.argv[1] == "ids":
    print(",".join(str(ord(c)) for c in sys.argv[2]))
elif sys.argv[1] == "cut":  # text of the ids, cut before the first occurrence of the stop string
    t = text([int(x) for x in open(sys.argv[2]).read().split()])
    print(t[:t.index(sys.argv[3])] if sys.argv[3] in t else t)
elif sys.argv[1] == "stopof":  # a stop string spanning the texts of generated tokens k and k+1
    ids = [int(x) for x in open(sys.argv[2]).read().split()]
    k = int(sys.argv[3])
    a, b = text([ids[k]]), text([ids[k + 1]])
    print(a[-2:] + b[:2])
elif sys.argv[1] == "close":
    a = float(open(sys.argv[2]).read().split("nats/token:")[1].split()[0]); b = float(open(sys.argv[3]).read())
    sys.exit(0 if abs(a - b) < 1e-4 else 1)
EOF
TOK="python3 $TMP/tok.py"

# --- help, usage errors, exit codes
expect_rc "help" 0 $BIN --help
expect_rc "no command" 2 $BIN
expect_rc "unknown command" 2 $BIN frobnicate
for c in run chat ppl inspect bench bench-batch; do
    expect_rc "$c --help" 0 $BIN $c --help
    grep -q "usage: bitnet $c" "$TMP/out" && ok "$c --help text" || bad "$c --help text"
done
expect_rc "run without -m" 2 $BIN run -p hi
expect_rc "run unknown option" 2 $BIN run -m "$TMP/model" -p hi --bogus
expect_rc "run bad number" 2 $BIN run -m "$TMP/model" -p hi -n many
expect_rc "run missing model" 3 $BIN run -m "$TMP/nothing" --ids 1,2
expect_rc "run text without tokenizer" 3 $BIN run -m "$HF/tiny-mha-untied/packed" -p hello
expect_rc "run id outside vocab" 1 $BIN run -m "$HF/tiny-mha-untied/packed" --ids 1,5000 -n 2
expect_rc "ppl missing file" 1 $BIN ppl -m "$HF/tiny-mha-untied/packed" --ids-file "$TMP/none.txt"
expect_rc "inspect missing model" 3 $BIN inspect -m "$TMP/nothing"

# --- run --ids: HF's greedy continuation, for every case and two weight variants
for case in tiny-gqa-tied tiny-mha-untied llama-bitnet; do
    for var in packed master; do
        expect_rc "run greedy $case/$var" 0 $BIN run -m "$HF/$case/$var" --ids "$(cat "$TMP/$case.prompt")" -n 24 --temp 0 --ignore-eos -t 1
        same "run greedy $case/$var = HF" "$TMP/out" "$TMP/$case.$var.greedy"
    done
done
grep -q "^generate: 24 tokens" "$TMP/err" && ok "run speed summary on stderr" || bad "run speed summary on stderr"

# --- --kernel: the scalar reference kernels give HF's greedy continuation too, the load line names
# them; a kernel this CPU cannot run is refused (exit 1, saying so), an unknown name is a usage error
for case in tiny-gqa-tied tiny-mha-untied llama-bitnet; do
    expect_rc "run --kernel scalar $case" 0 $BIN run -m "$HF/$case/packed" --ids "$(cat "$TMP/$case.prompt")" -n 24 --temp 0 --ignore-eos -t 1 --kernel scalar
    same "run --kernel scalar $case = HF" "$TMP/out" "$TMP/$case.packed.greedy"
done
grep -q "kernel scalar" "$TMP/err" && ok "the load line names --kernel" || bad "the load line names --kernel"
case "$(uname -m)" in x86_64 | amd64) other=neon ;; *) other=avx2 ;; esac
expect_rc "run --kernel $other refused on $(uname -m)" 1 $BIN run -m "$HF/tiny-mha-untied/packed" --ids 1,2,3 -n 2 --kernel $other
grep -q "kernel $other: this CPU (or this build) cannot run it" "$TMP/err" && ok "--kernel $other: says why" || bad "--kernel $other: says why"
expect_rc "unknown --kernel" 2 $BIN run -m "$HF/tiny-mha-untied/packed" --ids 1,2 --kernel sse9

# --- the same seed gives the same sampled text; beams run
$BIN run -m "$HF/tiny-mha-untied/packed" --ids 5,6,7 -n 16 --temp 1.2 --seed 7 > "$TMP/s1" 2>/dev/null
$BIN run -m "$HF/tiny-mha-untied/packed" --ids 5,6,7 -n 16 --temp 1.2 --seed 7 -t 2 > "$TMP/s2" 2>/dev/null
same "seeded sampling reproducible across thread counts" "$TMP/s1" "$TMP/s2"
expect_rc "run --beams" 0 $BIN run -m "$HF/tiny-mha-untied/packed" --ids 5,6,7 -n 6 --beams 3
grep -q "^beam 2:" "$TMP/err" && ok "beam summary" || bad "beam summary"

# --- text in, text out through the made-up tokenizer
$BIN run -m "$TMP/model" --ids "$($TOK ids 'hello world')" -n 12 --temp 0 > "$TMP/ids" 2>/dev/null
$TOK text "$TMP/ids" > "$TMP/want"
expect_rc "run text prompt" 0 $BIN run -m "$TMP/model" -p "hello world" --no-bos -n 12 --temp 0
same "run text = decode of run ids" "$TMP/out" "$TMP/want"
STOP=$($TOK stopof "$TMP/ids" 3)
$TOK cut "$TMP/ids" "$STOP" > "$TMP/want"
expect_rc "run --stop" 0 $BIN run -m "$TMP/model" -p "hello world" --no-bos -n 12 --temp 0 --stop "$STOP"
same "stop string spanning two tokens cuts the text" "$TMP/out" "$TMP/want"
grep -q "stopped: stop string" "$TMP/err" && ok "stop reason reported" || bad "stop reason reported"

# --- ppl: HF's loss on the fixture prompt, and text vs ids agree
tr ',' ' ' < "$TMP/tiny-mha-untied.prompt" > "$TMP/p.ids"
expect_rc "ppl ids" 0 $BIN ppl -m "$HF/tiny-mha-untied/packed" --ids-file "$TMP/p.ids" -c 12
if $TOK close "$TMP/out" "$TMP/tiny-mha-untied.nats"; then ok "ppl = HF loss"; else bad "ppl = HF loss"; cat "$TMP/out"; fi
# the loading options: each variant still computes HF's loss (int8 head: within 1 %)
expect_rc "ppl --head f32" 0 $BIN ppl -m "$HF/tiny-mha-untied/packed" --ids-file "$TMP/p.ids" -c 12 --head f32
$TOK close "$TMP/out" "$TMP/tiny-mha-untied.nats" && ok "--head f32 = HF loss" || bad "--head f32 = HF loss"
expect_rc "ppl --layout tq1" 0 $BIN ppl -m "$HF/tiny-mha-untied/packed" --ids-file "$TMP/p.ids" -c 12 --layout tq1
$TOK close "$TMP/out" "$TMP/tiny-mha-untied.nats" && ok "--layout tq1 = HF loss" || bad "--layout tq1 = HF loss"
within() { # within NAME FRACTION: the last ppl's nats/token within FRACTION of HF's loss
    python3 -c "import sys; a=float(open(sys.argv[1]).read().split('nats/token:')[1].split()[0]); b=float(open(sys.argv[2]).read()); sys.exit(0 if abs(a-b) < float(sys.argv[3])*b else 1)" "$TMP/out" "$TMP/tiny-mha-untied.nats" "$2" && ok "$1" || { bad "$1"; grep nats "$TMP/out"; cat "$TMP/tiny-mha-untied.nats"; }
}
expect_rc "ppl --kv f16" 0 $BIN ppl -m "$HF/tiny-mha-untied/packed" --ids-file "$TMP/p.ids" -c 12 --kv f16
within "--kv f16 within 0.1 % of HF loss" 0.001
expect_rc "ppl --head i8" 0 $BIN ppl -m "$HF/tiny-mha-untied/packed" --ids-file "$TMP/p.ids" -c 12 --head i8
within "--head i8 within 1 % of HF loss" 0.01
expect_rc "bad --head" 2 $BIN ppl -m "$HF/tiny-mha-untied/packed" --ids-file "$TMP/p.ids" --head q4
expect_rc "bad --layout" 2 $BIN ppl -m "$HF/tiny-mha-untied/packed" --ids-file "$TMP/p.ids" --layout i3
printf 'the quick brown fox jumps over the lazy dog, again and again.' > "$TMP/text.txt"
$TOK ids "$(cat "$TMP/text.txt")" | tr ',' ' ' > "$TMP/text.ids"
expect_rc "ppl text" 0 $BIN ppl -m "$TMP/model" -f "$TMP/text.txt" -c 16
grep "nats/token" "$TMP/out" > "$TMP/a"
grep -q "^bits/byte: " "$TMP/out" && ok "ppl prints bits/byte" || bad "ppl prints bits/byte"
grep -q "^tokens: 61 in 4 windows" "$TMP/out" && ok "ppl token count and windows" || bad "ppl token count and windows"
$BIN ppl -m "$TMP/model" --ids-file "$TMP/text.ids" -c 16 2>/dev/null | grep "nats/token" > "$TMP/b"
same "ppl text = ppl of its ids" "$TMP/a" "$TMP/b"

# --- inspect
for var in packed:bitlinear packed-autobit:autobitlinear master:master; do
    d=${var%%:*} w=${var#*:}
    expect_rc "inspect $d" 0 $BIN inspect -m "$HF/llama-bitnet/$d" --tensors
    grep -q "^weights: .*$w" "$TMP/out" && ok "inspect $d variant" || { bad "inspect $d variant"; grep weights "$TMP/out"; }
done
grep -q "^architecture: llama" "$TMP/out" && ok "inspect architecture" || bad "inspect architecture"
grep -q "model.layers.0.mlp.gate_proj.weight" "$TMP/out" && ok "inspect lists tensors" || bad "inspect lists tensors"

# --- chat: the first reply is the greedy continuation of the formatted conversation;
# the second turn reuses the cache
python3 -c "
s = '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\nhi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n'
sp = {'<|begin_of_text|>': 770, '<|start_header_id|>': 772, '<|end_header_id|>': 773, '<|eot_id|>': 774}
ids = []
while s:
    for k, v in sp.items():
        if s.startswith(k): ids.append(v); s = s[len(k):]; break
    else: ids.append(ord(s[0])); s = s[1:]
print(','.join(map(str, ids)))" > "$TMP/chat.ids"
$BIN run -m "$TMP/model" --ids "$(cat "$TMP/chat.ids")" -n 6 --temp 0 > "$TMP/ids" 2>/dev/null
$TOK text "$TMP/ids" > "$TMP/want"
printf 'hi there\nand again\n' | $BIN chat -m "$TMP/model" -n 6 --temp 0 -v > "$TMP/out" 2> "$TMP/err"
rc=$?
[ $rc -eq 0 ] && ok "chat exit" || bad "chat exit ($rc)"
head -n 1 "$TMP/out" > "$TMP/first"
same "chat first reply = greedy continuation of the template" "$TMP/first" "$TMP/want"
[ "$(wc -l < "$TMP/out")" -eq 2 ] && ok "chat two replies" || bad "chat two replies"
if grep "cache: reusing" "$TMP/err" | tail -n 1 | grep -qv "reusing 0 "; then ok "chat reuses the cache"; else bad "chat reuses the cache"; cat "$TMP/err"; fi

# --- bench runs (a tiny model; the bandwidth probe reads a 1 GiB buffer)
expect_rc "bench" 0 $BIN bench -m "$HF/tiny-mha-untied/packed" --quick -t 1
for k in pp128 tg32 "peak RSS" bandwidth roofline; do
    grep -q "^$k" "$TMP/out" && ok "bench line $k" || bad "bench line $k"
done
# --threads-sweep: one row per thread count (1 and 2 here), each with decode, its GB/s, the bandwidth,
# the roofline, decode's share of it and of the best read, and nothing of the full run
expect_rc "bench --threads-sweep" 0 $BIN bench -m "$HF/tiny-mha-untied/packed" --threads-sweep -t 2
num='[0-9][0-9.]*'
[ "$(grep -cE "^ +[12] +$num +$num +$num +$num +$num % +$num %\$" "$TMP/out")" = 2 ] &&
    [ "$(awk '/^threads /{getline; a=$1; getline; print a "," $1}' "$TMP/out")" = "1,2" ] &&
    grep -q "^threads-sweep" "$TMP/out" && ! grep -q "^pp128" "$TMP/out" && ok "bench --threads-sweep rows" ||
    { bad "bench --threads-sweep rows"; sed 's/^/    /' "$TMP/out"; }
# --profile: a line per stage of the forward pass, whose shares add up to 100 %
expect_rc "bench --profile" 0 $BIN bench -m "$HF/tiny-mha-untied/packed" --quick -t 2 --profile
stages=$(awk '/^stage /{on=1; next} on && /^[a-z_]+ +[0-9]/{printf "%s ", $1} on && !/^[a-z_]+ +[0-9]/{on=0}' "$TMP/out")
[ "$stages" = "attn_in qkv rope_kv attention attn_out o_proj ffn_in gate_up ffn_mid down_proj residual head " ] &&
    awk '/^stage /{on=1; next} on && /^[a-z_]+ +[0-9]/{sub("%", "", $3); t += $3; next} {on=0}
         END{exit !(t > 99 && t < 101)}' "$TMP/out" &&
    ok "bench --profile stages" || { bad "bench --profile stages ($stages)"; sed 's/^/    /' "$TMP/out"; }
expect_rc "bench missing model" 3 $BIN bench -m "$TMP/nothing"
expect_rc "bench unknown option" 2 $BIN bench --bogus

# --- bench-batch runs
expect_rc "bench-batch" 0 $BIN bench-batch -m "$HF/tiny-mha-untied/packed" -b 1,2 -n 2 -t 1
grep -q "^   2 " "$TMP/out" && ok "bench-batch table" || bad "bench-batch table"
# rounds: B = 1 listed last still gives every row its ratio, and B = 1's is 1
expect_rc "bench-batch rounds" 0 $BIN bench-batch -m "$HF/tiny-mha-untied/packed" -b 2,1 -n 2 -t 1 -r 3
[ "$(grep -c "x  *[0-9.]* ( *[0-9.]*x)  *[0-9.]* ( *[0-9]* %)$" "$TMP/out")" = 2 ] &&
    grep -q "^   1 .* 1.00x .*)$" "$TMP/out" && ! grep -q " 0.00x" "$TMP/out" && ok "bench-batch rounds table" ||
    bad "bench-batch rounds table"
# the matmul ceiling and the roofline: a positive rate for every B, the ceiling's ratio to B = 1's
# median, and a roofline that never promises more than the ceiling (it only adds memory's time)
grep -q "ceiling  *roofline$" "$TMP/out" && ! grep -q " 0.0 (" "$TMP/out" && ok "bench-batch ceiling" ||
    bad "bench-batch ceiling"
awk '/^ +[0-9]+ .*%\)$/ { gsub(/\( *[0-9.]*x\)|\( *[0-9]* %\)/, ""); n++; if (!($8 > 0 && $8 <= $7)) bad++ }
     END { exit !(n == 2 && !bad) }' "$TMP/out" && grep -q "^roofline: .* at [0-9.]* GB/s" "$TMP/out" &&
    ok "bench-batch roofline" || bad "bench-batch roofline"
# --profile: the largest B's steps once more, one forward each, a line per stage adding up to 100 %
expect_rc "bench-batch --profile" 0 $BIN bench-batch -m "$HF/tiny-mha-untied/packed" -b 2,3,1 -n 4 -t 2 --profile
stages=$(awk '/^stage /{on=1; next} on && /^[a-z_]+ +[0-9]/{printf "%s ", $1} on && !/^[a-z_]+ +[0-9]/{on=0}' "$TMP/out")
[ "$stages" = "attn_in qkv rope_kv attention attn_out o_proj ffn_in gate_up ffn_mid down_proj residual head " ] &&
    grep -q "^profile    B = 3, 4 steps, .* 2 threads: the forward pass [0-9.]* ms, the batcher [0-9.]* ms$" "$TMP/out" &&
    awk '/^stage /{on=1; next} on && /^[a-z_]+ +[0-9]/{sub("%", "", $3); t += $3; next} {on=0}
         END{exit !(t > 99 && t < 101)}' "$TMP/out" &&
    ok "bench-batch --profile stages" || { bad "bench-batch --profile stages ($stages)"; sed 's/^/    /' "$TMP/out"; }
expect_rc "bench-batch -r 0" 2 $BIN bench-batch -m "$HF/tiny-mha-untied/packed" -r 0

# --- --metal in a build without the Metal backend (Linux): every command that takes it refuses it
# with exit 1 and the reason, before it serves or measures anything (tests/metal/test_metal_cli.sh runs
# the commands on the Metal API stand-in)
SH=models/shakespeare
for cmd in "run -m $SH -p hi" "chat -m $SH" "serve -m $SH --port 18151" "ppl -m $SH -f data/tinyshakespeare.txt" \
    "bench -m $HF/tiny-mha-untied/packed --quick" "bench-batch -m $HF/tiny-mha-untied/packed -b 1 -n 2" \
    "bench-serve -m $HF/tiny-mha-untied/packed"; do
    name=${cmd%% *}
    # shellcheck disable=SC2086
    $BIN $cmd --metal < /dev/null > "$TMP/out" 2> "$TMP/err"
    rc=$?
    if [ $rc -eq 1 ] && grep -q "this build has no Metal backend" "$TMP/err"; then ok "$name --metal refused without Metal"
    else bad "$name --metal refused without Metal (exit $rc)"; sed 's/^/    /' "$TMP/err" | head -3; fi
done

echo "test_cli: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
