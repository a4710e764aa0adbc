#!/bin/sh
# The whole test suite, as `make test` runs it. Every step records its counts
# in build/results.txt; the last line printed is "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
RES=build/results.txt
mkdir -p build/tests build/asan
: > "$RES"; rm -f "$RES.fail"
WARN="-Wall -Wextra -Wpedantic -Werror"
LIBS="-lm -lpthread"
R() { tests/run.sh "$RES" "$@"; }

# 1. The committed bitnet.h must be a fresh amalgamation of src/.
R amalgamation python3 amalgamate.py --check
python3 amalgamate.py # test the sources as they are, even if the committed header is stale

# 1b. Each part in src/ is valid C on its own: it includes the parts it uses (amalgamate.py checks
#     that they come earlier), so an editor or clangd sees what the amalgamation sees.
R parts-standalone sh -c 'for part in src/*.h; do gcc -std=c99 -fsyntax-only -Wno-unused-function \
    -Werror=implicit-function-declaration -DBITNET_IMPLEMENTATION -x c "$part" 2> build/part.err ||
    { cat build/part.err; exit 1; }; done'

# 2. The header compiles warning-free as C99 and C++, with gcc and clang, in each configuration.
for cc in "gcc -std=c99" "clang -std=c99" "g++ -std=c++11 -x c++" "clang++ -std=c++11 -x c++"; do
    for defs in "" "-DBITNET_STATIC" "-DBITNET_NO_THREADS -DBITNET_NO_SIMD -DBITNET_NO_MMAP" \
        "-DBITNET_NO_TRAIN -DBITNET_NO_HUGE_PAGES"; do
        label="warnings:$(echo "$cc $defs" | sed 's/ -x c++//; s/ -D/+/g; s/ /_/g')"
        R "$label" $cc -O2 $WARN $defs -c tests/compile_check.c -o build/compile_check.o
    done
done
# BITNET_NO_TRAIN leaves no autograd or training code in the object.
R "no-train-symbols" sh -c 'gcc -std=c99 -O2 -DBITNET_NO_TRAIN -c tests/compile_check.c -o build/compile_check_nt.o &&
    ! nm build/compile_check_nt.o | grep -E "bn_(ag|train|adamw)_"'
# The allocator macros come all three or none.
R "allocator-all-or-none" sh -c '! gcc -std=c99 -DBN_MALLOC=malloc -c tests/compile_check.c -o build/compile_check_am.o 2>/dev/null'

# 2b. The Win32 code paths (thread pool, file mapping, timer) compile and link warning-free with
#     MinGW-w64: the header alone, and test_threads (the pool) and test_floatops (the pool, fixtures
#     mapped with CreateFileMapping). Compiled, not run (no Windows here).
if command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1; then
    for defs in "" "-DBITNET_NO_THREADS -DBITNET_NO_SIMD -DBITNET_NO_MMAP"; do
        R "win32-warnings:mingw_c99$(echo "$defs" | sed 's/ -D/+/g; s/^-D/+/')" x86_64-w64-mingw32-gcc -std=c99 -O2 $WARN \
            $defs -c tests/compile_check.c -o build/compile_check_win32.o
    done
    for t in test_threads test_floatops; do
        R "win32-build:$t" x86_64-w64-mingw32-gcc -std=c99 -O2 $WARN tests/$t.c -o "build/tests/$t.exe"
    done
else
    echo "SKIPPED: Win32 compile check: x86_64-w64-mingw32-gcc missing (make deps installs it)"
fi

# 3. Unit tests, optimized, then again under AddressSanitizer + UndefinedBehaviorSanitizer.
for src in tests/test_*.c; do
    name=$(basename "$src" .c)
    if R "build:$name" gcc -std=c99 -O2 -g $WARN "$src" -o "build/tests/$name" $LIBS; then :; fi
    [ -x "build/tests/$name" ] && R "$name" "build/tests/$name"
done
for src in tests/test_*.c; do
    name=$(basename "$src" .c)
    R "build-asan:$name" clang -std=c99 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
        -fno-omit-frame-pointer $WARN "$src" -o "build/asan/$name" $LIBS
    [ -x "build/asan/$name" ] && ASAN_OPTIONS=detect_leaks=1 R "asan:$name" "build/asan/$name"
done

# 3a. Fuzz harnesses (tests/fuzz/README.md), without libFuzzer: every committed corpus input and every
#     past crash input replayed through its harness under ASan + UBSan (LeakSanitizer on).
R "build-fuzz-replay" env FUZZ_CFLAGS="-O1 -g" sh tests/fuzz/fuzz.sh build-replay
for src in tests/fuzz/fuzz_*.c; do
    [ -f "$src" ] || continue
    name=${src#tests/fuzz/fuzz_}; name=${name%.c}
    [ -x "build/fuzz/replay_$name" ] && ASAN_OPTIONS=detect_leaks=1 R "fuzz-replay:$name" \
        "build/fuzz/replay_$name" "tests/fuzz/corpus/$name" "tests/fuzz/crashes/$name"
done

# 3b. NEON kernels: test_kernels and test_floatops cross-compiled for aarch64 and run under qemu-user, once
#     built for a dotprod CPU, once built generic (run-time detection) on a CPU without dotprod (plain NEON).
if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; then
    for v in "dotprod|-march=armv8.2-a+dotprod|max" "neon||cortex-a53"; do
        tag=${v%%|*}; rest=${v#*|}; march=${rest%%|*}; cpu=${rest#*|}
        for t in test_kernels test_floatops; do
            R "build-arm64-$tag:$t" aarch64-linux-gnu-gcc -std=c99 -O2 $march $WARN tests/$t.c \
                -o "build/tests/$t-arm64-$tag" $LIBS
            [ -x "build/tests/$t-arm64-$tag" ] &&
                R "qemu-arm64-$tag:$t" qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu "build/tests/$t-arm64-$tag"
        done
    done
else
    echo "SKIPPED: NEON kernels not tested: aarch64-linux-gnu-gcc or qemu-aarch64 missing (make deps installs them)"
fi

# 3c. The Metal backend on Linux (docs/metal.md): src/metal/bitnet.metal compiled as C++ through
#     tests/metal/metal_stdlib, its kernels run by the emulator against the scalar reference; bitnet_metal.m
#     built with clang's Objective-C front end against GNUstep's Foundation and the Metal API stand-in
#     (tests/metal/Metal), the whole forward on the HF fixtures against the CPU path, and the bitnet command's
#     --metal; the two test programs under ASan + UBSan too.
if [ -f /usr/include/GNUstep/Foundation/Foundation.h ] && command -v clang++ >/dev/null 2>&1; then
    R "build:metal" sh tests/metal/build.sh build/metal -O2 -g
    for t in test_metal_kernels test_metal_forward; do
        [ -x "build/metal/$t" ] && R "${t#test_}" "build/metal/$t"
    done
    [ -x build/metal/bitnet ] && R "metal_cli" sh tests/metal/test_metal_cli.sh build/metal
    R "build-asan:metal" sh tests/metal/build.sh build/asan/metal -O1 -g -fsanitize=address,undefined \
        -fno-sanitize-recover=all -fno-omit-frame-pointer
    for t in test_metal_kernels test_metal_forward; do
        [ -x "build/asan/metal/$t" ] && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/metal/lsan.supp \
            R "asan:${t#test_}" "build/asan/metal/$t"
    done
else
    echo "SKIPPED: Metal backend not tested: GNUstep's Foundation (libgnustep-base-dev) or clang++ missing (make deps installs them)"
fi

# 4. The single-file examples build warning-free; generate.c runs on the shipped model.
mkdir -p build/examples
for src in examples/*.c; do
    name=$(basename "$src" .c)
    R "example:$name" gcc -std=c99 -O2 $WARN "$src" -o "build/examples/$name" $LIBS
done
[ -x build/examples/generate ] && R "example-run:generate" sh -c \
    'out=$(build/examples/generate models/shakespeare "ROMEO:" 40) && printf "%s\n" "$out" | head -n 3 && case "$out" in "ROMEO:"?*) exit 0;; *) exit 1;; esac'

# 4b. The quick start at the top of bitnet.h is a whole program: cut out of the header as it stands
#     there, it builds warning-free and generates text.
R "quickstart" sh -c 'python3 -c "
s = open(\"bitnet.h\").read(); b = s.index(\"QUICK START\"); a = s.index(\"\n\n\", b) + 2
e = s.index(\"\n\n   bn_generate runs\", a); print(\"\n\".join(l[7:] for l in s[a:e].split(\"\n\")))" \
    > build/examples/quickstart.c && gcc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -I. build/examples/quickstart.c \
    -o build/examples/quickstart -lm -lpthread && out=$(build/examples/quickstart) && [ ${#out} -gt 20 ]'

# 5. Script tests (command-line programs): each prints its own "name: N passed, M failed".
for t in tests/test_*.sh; do
    [ -f "$t" ] || continue
    R "$(basename "$t" .sh)" sh "$t"
done

# 5b. The command built without the libcurl loader (BITNET_NO_DLOPEN; tests/build_tool.sh built it)
#     passes the command-line tests: nothing but a download needs libcurl.
[ -x build/tool-test/bitnet-nocurl ] && BITNET_BIN=build/tool-test/bitnet-nocurl R "no-libcurl:test_cli" sh tests/test_cli.sh

sh tests/summary.sh "$RES"
