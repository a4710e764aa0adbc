#!/bin/sh
# `bitnet convert` between HF's master, packed and autobit layouts on the HF parity fixtures:
# byte for byte against HF's own packing, logits through bn_forward, round trips, shards.
# Debian's python3. Prints "test_convert: N passed, M failed".
cd "$(dirname "$0")/.." || exit 1
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
mkdir -p build/tests
sh tests/build_tool.sh &&
    cc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror tests/convert/logits.c -o build/tests/logits -lm -lpthread ||
    { echo "test_convert: 0 passed, 1 failed"; exit 1; }
exec "$PY" tests/convert/test_convert.py build/tool-test/bitnet build/tests/logits
