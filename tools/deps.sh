#!/bin/sh
# Install the packages the build and test suite need (Debian/Ubuntu), skipping
# what is already there. Run as root or with sudo available.
set -e
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
have python3 || need="$need python3"
have qemu-aarch64 || need="$need qemu-user"
have aarch64-linux-gnu-gcc || need="$need gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
have x86_64-w64-mingw32-gcc || need="$need gcc-mingw-w64-x86-64"
if [ -z "$need" ]; then echo "deps: all present"; exit 0; fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "deps: installing$need"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
