#!/bin/sh
# tools/train_tokenizer.py: trains a byte-level BPE on a piece of tinyshakespeare,
# then checks its tokenizer.json, the pre-tokenizer split on a hand-made text,
# that encoding round-trips, and that bitnet.h's tokenizer (the C code) encodes
# the held-out text to exactly the ids of the Python encoder.
cd "$(dirname "$0")/.." || exit 1
OUT=build/test_train_tokenizer
rm -rf "$OUT" && mkdir -p "$OUT"
head -c 60000 data/tinyshakespeare.txt > "$OUT/text.txt"
python3 tools/train_tokenizer.py "$OUT/text.txt" --vocab 400 --out "$OUT/tok" --encode "$OUT/data" 2> "$OUT/train.log" || {
    cat "$OUT/train.log"
    echo "test_train_tokenizer: 0 passed, 1 failed"
    exit 1
}
# The C side: encode the validation part with bitnet.h, print the ids.
cat > "$OUT/encode.c" <<'EOF'
#define BITNET_IMPLEMENTATION
#include "../../bitnet.h"
#include <stdio.h>
int main(int argc, char **argv) {
    bn_tokenizer *tok;
    bn_error err;
    char *text;
    size_t len, n, i;
    int32_t *ids;
    if (argc < 3 || bn_tokenizer_load(&tok, argv[1], &err) || bn_read_file(argv[2], &text, &len, &err) ||
        bn_tokenizer_encode(tok, text, len, 0, &ids, &n, &err)) {
        fprintf(stderr, "encode: %s\n", err.msg);
        return 1;
    }
    for (i = 0; i < n; i++) printf("%d\n", (int)ids[i]);
    bn_free(ids);
    bn_free(text);
    bn_tokenizer_free(tok);
    return 0;
}
EOF
c_ids=""
if cc -O1 -o "$OUT/encode" "$OUT/encode.c" -lm -lpthread 2> "$OUT/cc.log"; then c_ids="$OUT/c_ids.txt"; fi
python3 - "$OUT" "$c_ids" <<'EOF'
import json, os, struct, sys
sys.path.insert(0, "tools")
import train_tokenizer as T

out, c_ids = sys.argv[1], sys.argv[2]
passed = failed = 0

def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + detail if detail else ""))

tj = json.load(open(os.path.join(out, "tok", "tokenizer.json"), encoding="utf-8"))
model = tj["model"]
all_ids = set(model["vocab"].values()) | set(t["id"] for t in tj["added_tokens"])
check("vocab is ids 0..399", sorted(all_ids) == list(range(400)), "%d ids" % len(all_ids))
check("special tokens", [(t["content"], t["id"], t["special"]) for t in tj["added_tokens"]] ==
      [("<|begin_of_text|>", 398, True), ("<|end_of_text|>", 399, True)])
check("256 byte tokens first", all(model["vocab"][T.BYTE_CHAR[b]] == b for b in range(256)))
merges = [tuple(m.split(" ")) for m in model["merges"]]
check("every merge makes a vocab token", all(a + b in model["vocab"] for a, b in merges))
check("HF layout", tj["model"]["type"] == "BPE" and tj["pre_tokenizer"]["pretokenizers"][1]["type"] == "ByteLevel"
      and tj["decoder"]["type"] == "ByteLevel")
# LLaMA 3's split, by hand: contractions, a leading non-letter glued to a word, digits in threes,
# punctuation with its newlines, a space run leaving its last space to the next word.
pieces = T.PY_PATTERN.findall("He's  (going) 12345 now!\n\n  end")
check("pre-tokenizer split", pieces == ["He", "'s", " ", " (", "going", ")", " ", "123", "45", " now", "!\n\n", " ", " end"],
      repr(pieces))
enc = T.Encoder(merges)
data = open(os.path.join(out, "text.txt"), "rb").read()
val = data[int(len(data) * 0.9):].decode("utf-8")
ids = enc.encode(val)
inv = {i: s for s, i in model["vocab"].items()}
byte_of = {c: b for b, c in T.BYTE_CHAR.items()}
back = bytes(byte_of[c] for i in ids for c in inv[i]).decode("utf-8")
check("round trip", back == val)
check("compresses", len(ids) < 0.6 * len(val.encode("utf-8")), "%d ids for %d bytes" % (len(ids), len(val)))
stored = open(os.path.join(out, "data", "val.bin"), "rb").read()
check("val.bin holds the ids", list(struct.unpack("<%dH" % (len(stored) // 2), stored)) == ids)
split = json.load(open(os.path.join(out, "data", "split.json")))
check("split.json", split["val"]["tokens"] == len(ids) and split["val"]["bytes"] == len(val.encode("utf-8"))
      and split["bos_token_id"] == 398 and split["eos_token_id"] == 399)
if c_ids:
    open(os.path.join(out, "val.txt"), "w", encoding="utf-8", newline="").write(val)
    rc = os.system("%s %s %s > %s" % (os.path.join(out, "encode"), os.path.join(out, "tok"), os.path.join(out, "val.txt"), c_ids))
    got = [int(x) for x in open(c_ids).read().split()] if rc == 0 else None
    check("bitnet.h encodes like the Python encoder", got == ids,
          "C gave %s ids" % (len(got) if got is not None else "no"))
else:
    check("bitnet.h tokenizer builds", False, open(os.path.join(out, "cc.log")).read()[:500])
print("test_train_tokenizer: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
EOF
