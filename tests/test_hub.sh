#!/bin/sh
# `bitnet pull`, -m ORG/NAME, ls and rm against the test Hub (tests/hub/testhub.py), with the
# official @huggingface/hub client where `make deps` installed it, and the build without the
# libcurl loader for what works offline. Debian's python3. Prints "test_hub: N passed, M failed".
cd "$(dirname "$0")/.." || exit 1
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
sh tests/build_tool.sh || { echo "test_hub: 0 passed, 1 failed"; exit 1; }
exec "$PY" tests/hub/test_hub.py build/tool-test/bitnet build/tool-test/bitnet-nocurl
