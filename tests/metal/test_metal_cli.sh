#!/bin/sh
# The bitnet command's --metal (run, chat, ppl, serve, bench, bench-serve) on the Metal API stand-in:
# tests/metal/build.sh builds OUT_DIR/bitnet with BITNET_METAL, as the Makefile does on a Mac. Greedy
# output equals the CPU's (the server's too, for two requests decoded in the same batched steps).
# tests/test_cli.sh checks that a build without the backend refuses --metal.
#   tests/metal/test_metal_cli.sh OUT_DIR   (the server listens on 127.0.0.1:18150)
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
# ppl --metal: the perplexity of a short text (bn_score: logits at every position) within 1e-4 of the CPU's
head -c 600 data/tinyshakespeare.txt > /tmp/metal_cli_ppl.$$
cpu=$("$bin" ppl -m models/shakespeare -f /tmp/metal_cli_ppl.$$ -c 64 2>/dev/null | sed -n 's/^perplexity: //p')
gpu=$("$bin" ppl -m models/shakespeare -f /tmp/metal_cli_ppl.$$ -c 64 --metal 2>/dev/null | sed -n 's/^perplexity: //p')
echo "    ppl: cpu $cpu metal $gpu"
[ -n "$cpu" ] && [ -n "$gpu" ] && awk -v a="$cpu" -v b="$gpu" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * a) }'
check "ppl --metal" $?
rm -f /tmp/metal_cli_ppl.$$
# serve --metal: two greedy completions at once (one context of 2 sequences on the GPU, batched steps),
# each equal to `bitnet run --temp 0` on the CPU
port=18150
"$bin" serve -m models/shakespeare --port $port --parallel 2 --metal >/tmp/metal_cli_serve.$$ 2>&1 &
spid=$!
/usr/bin/python3 - "$port" "$bin" <<'EOF'
import json, subprocess, sys, threading, time, urllib.request
port, bin = sys.argv[1], sys.argv[2]
url = "http://127.0.0.1:%s" % port
end = time.time() + 60
while True:
    try:
        urllib.request.urlopen(url + "/health", timeout=5).read()
        break
    except Exception:
        if time.time() > end: sys.exit("serve --metal did not answer /health")
        time.sleep(0.1)
prompts, got = ["ROMEO:", "JULIET:\nO Romeo"], {}
def complete(p):
    body = json.dumps({"prompt": p, "max_tokens": 20, "temperature": 0}).encode()
    req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
    got[p] = json.load(urllib.request.urlopen(req, timeout=300))["choices"][0]["text"]
threads = [threading.Thread(target=complete, args=(p,)) for p in prompts]
for t in threads: t.start()
for t in threads: t.join()
bad = 0
for p in prompts:
    cpu = subprocess.run([bin, "run", "-m", "models/shakespeare", "-p", p, "-n", "20", "--temp", "0"],
                         capture_output=True, text=True).stdout
    cpu = cpu[:-1] if cpu.endswith("\n") else cpu
    print("    serve %r: cpu %r metal %r" % (p, cpu, got.get(p)))
    bad += got.get(p) != cpu
sys.exit(1 if bad else 0)
EOF
rc=$?
kill -TERM $spid 2>/dev/null
wait $spid
src=$?
[ $rc -eq 0 ] && [ $src -eq 0 ] && grep -q "kernel metal" /tmp/metal_cli_serve.$$
check "serve --metal" $?
rm -f /tmp/metal_cli_serve.$$
out=$("$bin" bench --metal --quick -m tests/fixtures/hf/llama-bitnet/packed 2>&1)
echo "$out" | sed 's/^/    /'
echo "$out" | grep -q "kernel metal" && echo "$out" | grep -q "^tg32 "
check "bench --metal" $?
# --threads-sweep and --profile measure the CPU path: a usage error with --metal
"$bin" bench --metal --profile -m tests/fixtures/hf/llama-bitnet/packed >/dev/null 2>&1
[ $? -eq 2 ]
check "bench --metal --profile refused" $?
# bench-serve --metal passes --metal on to the server it starts (its log: build/bench-serve.log)
"$bin" bench-serve -m models/shakespeare --metal -c 1,2 -n 4 -r 1 --prompt-len 4 --no-batch >/dev/null 2>&1 &&
    grep -q "kernel metal" build/bench-serve.log
check "bench-serve --metal" $?
rm -f /tmp/metal_cli_err.$$
echo "metal_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
