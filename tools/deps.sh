#!/bin/sh
# Install the packages the build and test suite need (Debian/Ubuntu), skipping
# what is already there. Run as root or with sudo available.
set -e
cd "$(dirname "$0")/.."
need=""
have() { command -v "$1" >/dev/null 2>&1; }
have gcc || need="$need gcc"
have g++ || need="$need g++"
have clang || need="$need clang"
# libFuzzer and the sanitizer runtimes for `make fuzz` (clang's -fsanitize=fuzzer)
[ -n "$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] ||
    [ "$(uname -m)" != x86_64 ] || need="$need libclang-rt-14-dev"
have valgrind || need="$need valgrind"
have make || need="$need make"
[ -x /usr/bin/python3 ] || need="$need python3" # Debian's: the binding's and the test Hub's tests use it
/sbin/ldconfig -p 2>/dev/null | grep -q "libcurl.so.4 " || need="$need libcurl4" # loaded by `bitnet pull` (tools/curl.c)
have qemu-aarch64 || need="$need qemu-user"
have aarch64-linux-gnu-gcc || need="$need gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
have x86_64-w64-mingw32-gcc || need="$need gcc-mingw-w64-x86-64"
have node || need="$need nodejs"
have npm || need="$need npm"
have chromium || need="$need chromium" # the serve tests' browser (tests/serve/page.cjs)
# the Metal backend's tests (tests/metal): clang's Objective-C front end with GNUstep's Foundation
[ -f /usr/include/GNUstep/Foundation/Foundation.h ] || need="$need libgnustep-base-dev"
if [ -z "$need" ]; then echo "deps: all packages present"
else
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    echo "deps: installing$need"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi

# npm packages for the serve tests (the official openai client, puppeteer-core), pinned by
# tests/serve/package-lock.json, into build/npm (ignored by git).
if ! cmp -s tests/serve/package-lock.json build/npm/package-lock.json || [ ! -d build/npm/node_modules/openai ]; then
    echo "deps: npm ci into build/npm (openai, puppeteer-core)"
    mkdir -p build/npm
    cp tests/serve/package.json tests/serve/package-lock.json build/npm/
    npm ci --prefix build/npm --ignore-scripts --no-audit --no-fund --loglevel=error
fi

# npm packages for the Hub tests (the official @huggingface/hub client), pinned by
# tests/hub/package-lock.json, into build/npm-hub (ignored by git).
if ! cmp -s tests/hub/package-lock.json build/npm-hub/package-lock.json || [ ! -d build/npm-hub/node_modules/@huggingface/hub ]; then
    echo "deps: npm ci into build/npm-hub (@huggingface/hub)"
    mkdir -p build/npm-hub
    cp tests/hub/package.json tests/hub/package-lock.json build/npm-hub/
    npm ci --prefix build/npm-hub --ignore-scripts --no-audit --no-fund --loglevel=error
fi
