#!/bin/sh
# `bitnet serve` as its users meet it, on models/shakespeare (context 256), only on 127.0.0.1:
#   serve_openai  the official openai npm client, unchanged: every endpoint and error status
#   serve_greedy  greedy through the server == `bitnet run --temp 0`, alone and beside 15 streams
#   serve_structured  response_format json_object / json_schema through the openai client: every
#                 answer parses and validates (a validator in the test), unsupported keywords 400
#   serve_load    64 streams, 16 disconnects, 1,000 malformed requests: on a server built with
#                 ASan + UBSan, whose log must stay free of reports
#   serve_page    the chat page in headless Chromium (screenshot: build/serve-chat.png)
# Needs node, and openai + puppeteer-core in build/npm and chromium (make deps installs them).
# Prints "test_serve: N passed, M failed".
cd "$(dirname "$0")/.." || exit 1
NPM=build/npm/node_modules
LOGS=build/test_serve
P=${TEST_SERVE_PORT:-18100}   # the first of three ports on 127.0.0.1
A=$P B=$((P + 1)) C=$((P + 2))
pass=0 fail=0 pids=""

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
finish() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    echo "test_serve: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit $?
}

if ! command -v node >/dev/null 2>&1 || [ ! -d "$NPM/openai" ] || [ ! -d "$NPM/puppeteer-core" ]; then
    bad "node, build/npm/node_modules/openai or puppeteer-core missing (run make deps)"
    finish
fi
mkdir -p "$LOGS"
make -s build/bitnet >/dev/null || { bad "build bitnet"; finish; }

# The server under AddressSanitizer + UndefinedBehaviorSanitizer, rebuilt when a source changed.
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
if [ ! -x build/asan/bitnet ] || [ -n "$(find tools bitnet.h -newer build/asan/bitnet -name '*.[ch]' 2>/dev/null | head -n 1)" ]; then
    mkdir -p build/asan/serve-obj
    for f in tools/*.c; do
        clang -std=c99 -O1 -g $SAN -Wall -Wextra -Wpedantic -Werror -c "$f" -o "build/asan/serve-obj/$(basename "$f" .c).o" &
    done
    wait
    clang $SAN build/asan/serve-obj/*.o -o build/asan/bitnet -lm -lpthread || { bad "build bitnet with ASan + UBSan"; finish; }
fi

# start NAME PORT BINARY ARGS...: a server in the background, its log in $LOGS/NAME.log
start() {
    name=$1 port=$2 bin=$3
    shift 3
    ASAN_OPTIONS=detect_leaks=1 "$bin" serve -m models/shakespeare --port "$port" "$@" >"$LOGS/$name.log" 2>&1 &
    pids="$pids $!"
    eval "pid_$name=$!"
    if node -e "
        const http = require('http'); const end = Date.now() + 60000;
        (function poll() {
          http.get({ host: '127.0.0.1', port: $port, path: '/health' }, (r) => process.exit(r.statusCode === 200 ? 0 : 1))
            .on('error', () => Date.now() > end ? process.exit(1) : setTimeout(poll, 100));
        })();"; then ok "server $name answers /health"; else bad "server $name did not start: $(tail -n 3 "$LOGS/$name.log")"; fi
}

# suite NAME SCRIPT: runs a node suite and adds up its "NAME: N passed, M failed" line
suite() {
    out=$(NODE_PATH=$NPM PORT_A=$A PORT_B=$B PORT_C=$C timeout 400 node "tests/serve/$2" 2>&1)
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E "^$1: [0-9]+ passed, [0-9]+ failed$" | tail -n 1)
    if [ -z "$line" ]; then bad "$1 did not finish"; return; fi
    pass=$((pass + $(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
    fail=$((fail + $(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')))
}

start A $A build/bitnet --parallel 24
start C $C build/bitnet --parallel 1 --queue 0 --api-key sekret --max-body 65536 --timeout 2
start B $B build/asan/bitnet --parallel 16 --queue 64 --timeout 3

BITNET=build/bitnet suite serve_openai openai.cjs
BITNET=build/bitnet suite serve_greedy greedy.cjs
suite serve_structured structured.cjs
BITNET=build/asan/bitnet suite serve_load load.cjs
CHROMIUM=$(command -v chromium || echo /usr/bin/chromium) suite serve_page page.cjs

# Each server stops cleanly on SIGTERM (exit status 0); the sanitized one reported nothing (leaks included).
for name in A B C; do
    eval "p=\$pid_$name"
    kill -TERM "$p" 2>/dev/null
    if wait "$p"; then ok "server $name stops on SIGTERM with status 0"; else bad "server $name exit status $?"; fi
done
pids=""
if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$LOGS/B.log" >/dev/null; then
    bad "ASan/UBSan reports in $LOGS/B.log:"
    grep -E -A 12 "ERROR: (Address|Leak)Sanitizer|runtime error:" "$LOGS/B.log" | head -n 40
else
    ok "no ASan/UBSan report from the server under load ($(grep -c ' prompt=' "$LOGS/B.log") requests logged)"
fi
finish
