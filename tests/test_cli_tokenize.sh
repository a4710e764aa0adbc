#!/bin/sh
# `bitnet tokenize` / `bitnet detokenize` as people and scripts use them.
# Expected ids are HF tokenizers' (tests/fixtures/tokenizers/reference.json).
# Prints "test_cli_tokenize: N passed, M failed".
cd "$(dirname "$0")/.." || exit 1
make -s build/bitnet >/dev/null || { echo "test_cli_tokenize: 0 passed, 1 failed"; exit 1; }
B=build/bitnet
L3=tests/fixtures/tokenizers/llama3
SPM=tests/fixtures/tokenizers/spm32k
TMP=build/test_cli_tokenize.tmp
pass=0 fail=0

# check NAME EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then pass=$((pass + 1)); echo "ok   $1"
    else fail=$((fail + 1)); echo "FAIL $1: expected '$2', got '$3'"; fi
}
# status NAME EXPECTED_STATUS CMD...
status() {
    name=$1 want=$2; shift 2
    "$@" >/dev/null 2>"$TMP.err"; got=$?
    check "$name" "$want" "$got"
}

check "tokenize llama3" "[9906, 11, 1917, 0]" "$($B tokenize -m $L3 'Hello, world!')"
check "tokenize llama3 --special" "[128000, 36885, 3361, 4037, 1495, 128009]" \
    "$($B tokenize -m $L3 --special '<|begin_of_text|>literal special token text<|eot_id|>')"
check "special tokens are text without --special" "0" \
    "$($B tokenize -m $L3 '<|eot_id|>' | grep -c 128009)"
check "tokenize spm32k --add-special" "[1, 22557, 1526]" "$($B tokenize -m $SPM --add-special 'Hello world')"
printf 'hello\n\nworld\n' > "$TMP"
check "tokenize -f FILE" "[15339, 271, 14957, 198]" "$($B tokenize -m $L3 -f "$TMP")"
check "tokenize -f - (stdin)" "[15339, 271, 14957, 198]" "$($B tokenize -m $L3 -f - < "$TMP")"
check "detokenize ids" "Hello, world!" "$($B detokenize -m $L3 9906 11 1917 0)"
check "detokenize JSON list" "Hello, world!" "$($B detokenize -m $L3 '[9906, 11, 1917, 0]')"
check "detokenize spm32k" "<s> Hello</s>" "$($B detokenize -m $SPM 1 22557 2)"
check "detokenize --skip-special" "Hello" "$($B detokenize -m $SPM --skip-special 1 22557 2)"
# a round trip through a pipe, byte for byte
head -c 20000 data/tinyshakespeare.txt > "$TMP"
$B detokenize -m $L3 "$($B tokenize -m $L3 -f "$TMP")" > "$TMP.out"
if cmp -s "$TMP" "$TMP.out"; then check "round trip of 20 kB" same same; else check "round trip of 20 kB" same different; fi
# errors and exit statuses
status "no model folder: usage error" 2 $B tokenize 'x'
status "unknown option: usage error" 2 $B tokenize -m $L3 --bogus 'x'
status "missing tokenizer: load error" 3 $B tokenize -m tests/fixtures 'x'
status "id out of range: run error" 1 $B detokenize -m $L3 999999
status "bad id: usage error" 2 $B detokenize -m $L3 12x
printf 'a\377b' > "$TMP"
status "invalid UTF-8: run error" 1 $B tokenize -m $L3 -f "$TMP"
check "invalid UTF-8 error names the byte" "1" "$(grep -c 'byte 1' "$TMP.err")"
check "--replace-invalid" "$($B tokenize -m $L3 'a�b')" "$($B tokenize -m $L3 --replace-invalid -f "$TMP")"
status "unknown command" 2 $B frobnicate
rm -f "$TMP" "$TMP.out" "$TMP.err"
echo "test_cli_tokenize: $pass passed, $fail failed"
[ $fail -eq 0 ]
