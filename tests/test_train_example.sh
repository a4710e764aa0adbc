#!/bin/sh
# examples/train.c end to end on a small piece of tinyshakespeare: tokenizer,
# a few steps of a tiny model, the HF folder it saves, a checkpoint resumed.
cd "$(dirname "$0")/.." || exit 1
OUT=build/test_train_example
rm -rf "$OUT" && mkdir -p "$OUT/model"
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

head -c 80000 data/tinyshakespeare.txt > "$OUT/text.txt"
check "tokenizer trains" "python3 tools/train_tokenizer.py $OUT/text.txt --vocab 300 --out $OUT/model --encode $OUT/data 2> $OUT/tok.log"
check "train.c builds" "cc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror examples/train.c -o $OUT/train -lm -lpthread"
ARGS="--data $OUT/data --ckpt $OUT/ckpt.safetensors --batch 4 --seq 32 --dim 32 --ffn 64 --layers 1 --heads 2 --kv-heads 1 --threads 2 --lr 1e-2 --warmup 5 --eval-every 10 --ckpt-every 10"
check "trains 30 steps" "$OUT/train $ARGS --steps 30 --out $OUT/model > $OUT/run1.out 2> $OUT/run1.err"
first=$(sed -n 's/^step 10: .*val loss \([0-9.]*\) nats.*/\1/p' "$OUT/run1.out")
last=$(sed -n 's/^final: val loss \([0-9.]*\) nats.*/\1/p' "$OUT/run1.out")
check "validation loss falls (step 10: $first, final: $last)" "[ -n '$first' ] && [ -n '$last' ] && awk 'BEGIN { exit !($last < $first) }'"
check "HF folder saved" "[ -s $OUT/model/config.json ] && [ -s $OUT/model/model.safetensors ] && [ -s $OUT/model/generation_config.json ] && [ -s $OUT/model/tokenizer.json ]"
check "config is a bitnet model" "grep -q '\"model_type\": \"bitnet\"' $OUT/model/config.json && grep -q '\"linear_class\": \"bitlinear\"' $OUT/model/config.json"
check "resumes from the checkpoint" "$OUT/train $ARGS --steps 35 --resume > $OUT/run2.out 2> $OUT/run2.err && grep -q 'resumed .* at step 30' $OUT/run2.err && grep -q '^step    35/35' $OUT/run2.err"
check "bad option is a usage error" "$OUT/train --data $OUT/data --bogus > /dev/null 2>&1; [ \$? -eq 2 ]"
check "missing data is an error" "! $OUT/train --data $OUT/nowhere --steps 1 > /dev/null 2>&1"
echo "test_train_example: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
