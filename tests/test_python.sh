#!/bin/sh
# The Python binding (python/bitnet.py over `make lib`) with Debian's python3, checked against
# the `bitnet` command on models/shakespeare. Prints "test_python: N passed, M failed".
cd "$(dirname "$0")/.." || exit 1
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
{ make -s lib && sh tests/build_tool.sh; } || { echo "test_python: 0 passed, 1 failed"; exit 1; }
exec "$PY" tests/python/test_bitnet.py build/libbitnet.so build/tool-test/bitnet
