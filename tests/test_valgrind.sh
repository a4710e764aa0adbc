#!/bin/sh
# Valgrind memcheck over the bitnet command: the shipped model (tokenize,
# generate, chat-formatted prompt) and a HF fixture with the shipped tokenizer.
# Any invalid read or write, use of uninitialised memory in a branch, or a
# definite leak fails the test. Skipped (counted as passed, with a note) when
# valgrind is missing; `make deps` installs it.
cd "$(dirname "$0")/.." || exit 1
pass=0 fail=0
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIPPED: valgrind missing (make deps installs it)"
    echo "valgrind: 0 passed, 0 failed"
    exit 0
fi
make -s build/bitnet >/dev/null || { echo "valgrind: 0 passed, 1 failed"; exit 1; }
VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite"
# check NAME EXIT CMD...: CMD must exit with status EXIT and valgrind must report nothing
check() {
    name=$1 want=$2; shift 2
    out=$($VG "$@" 2>&1); rc=$?
    if [ "$rc" -eq "$want" ]; then
        pass=$((pass + 1)); echo "ok   $name"
    else
        fail=$((fail + 1)); echo "FAIL $name (exit status $rc, want $want; 99: valgrind found errors)"
        printf '%s\n' "$out" | tail -n 30
    fi
}
check run-shakespeare 0 build/bitnet run -m models/shakespeare -p "ROMEO:" -n 6 --seed 3 -t 2
check run-stop-strings 0 build/bitnet run -m models/shakespeare -p "JULIET:" -n 6 --seed 3 -t 1 --stop "" --stop "e"
check tokenize 0 build/bitnet tokenize -m models/shakespeare "O Romeo, Romeo! caf\303\251"
check run-fixture 0 build/bitnet run -m tests/fixtures/hf/tiny-gqa-tied/packed --tokenizer models/shakespeare -p "To be" -n 4 -t 1
check load-failure 3 build/bitnet run -m tests/fixtures/hf -p x -n 1
echo "valgrind: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
