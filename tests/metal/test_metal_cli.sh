#!/bin/sh
# The bitnet command's --metal (run, chat, bench) on the Metal API stand-in: tests/metal/build.sh builds
# OUT_DIR/bitnet with BITNET_METAL, as the Makefile does on a Mac. Greedy output equals the CPU's;
# a build without the backend refuses --metal.   tests/metal/test_metal_cli.sh OUT_DIR
bin=$1/bitnet
pass=0
fail=0
check() { # name, status
    if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $1"; fi
}
for m in tiny-gqa-tied/master tiny-mha-untied/packed-autobit llama-bitnet/packed; do
    dir=tests/fixtures/hf/$m
    cpu=$("$bin" run -m "$dir" --ids 1,300,52,7,99 -n 16 --temp 0 2>/dev/null)
    gpu=$("$bin" run -m "$dir" --ids 1,300,52,7,99 -n 16 --temp 0 --metal 2>/tmp/metal_cli_err.$$)
    echo "    $m: cpu [$cpu] metal [$gpu]"
    [ -n "$gpu" ] && [ "$cpu" = "$gpu" ] && grep -q "kernel metal" /tmp/metal_cli_err.$$
    check "run --metal $m" $?
done
# text in and out (models/shakespeare has a tokenizer): run and chat, greedy
cpu=$("$bin" run -m models/shakespeare -p "ROMEO:" -n 24 --temp 0 2>/dev/null)
gpu=$("$bin" run -m models/shakespeare -p "ROMEO:" -n 24 --temp 0 --metal 2>/dev/null)
[ -n "$gpu" ] && [ "$cpu" = "$gpu" ]
check "run --metal (text)" $?
cpu=$(printf 'Hello there\n' | "$bin" chat -m models/shakespeare --template llama3 -n 12 --temp 0 2>/dev/null)
gpu=$(printf 'Hello there\n' | "$bin" chat -m models/shakespeare --template llama3 -n 12 --temp 0 --metal 2>/dev/null)
echo "    chat: cpu [$cpu] metal [$gpu]" | tr '\n' ' '
echo
[ -n "$gpu" ] && [ "$cpu" = "$gpu" ]
check "chat --metal" $?
out=$("$bin" bench --metal --quick -m tests/fixtures/hf/llama-bitnet/packed 2>&1)
echo "$out" | sed 's/^/    /'
echo "$out" | grep -q "kernel metal" && echo "$out" | grep -q "^tg32 "
check "bench --metal" $?
# the plain build (Linux): --metal is refused with a reason
if [ -x build/bitnet ]; then
    build/bitnet run -m tests/fixtures/hf/llama-bitnet/packed --ids 1,2 --metal >/dev/null 2>/tmp/metal_cli_err.$$
    rc=$?
    [ $rc -eq 1 ] && grep -q "no Metal backend" /tmp/metal_cli_err.$$
    check "plain build refuses --metal" $?
fi
rm -f /tmp/metal_cli_err.$$
echo "metal_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
