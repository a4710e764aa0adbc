#!/bin/sh
# Builds the Metal backend's tests on Linux (tests/all.sh runs them; docs/metal.md):
#   tests/metal/build.sh OUT_DIR [FLAGS...]
# OUT_DIR/test_metal_kernels  src/metal/bitnet.metal compiled as C++ through tests/metal/metal_stdlib
#                             (the emulator in tests/metal/kernels.cpp), against bitnet.h's scalar reference
# OUT_DIR/test_metal_forward  bitnet_metal.m compiled by clang's Objective-C front end against GNUstep's
#                             Foundation and the Metal API stand-in (tests/metal/Metal), on the emulator
# and type-checks bitnet_metal.m with ARC as on a Mac (-fobjc-arc, Apple's runtime, syntax only: Debian's
# GCC Objective-C runtime has no ARC, so the executable build is manual reference counting).
# FLAGS (e.g. the sanitizers) go to every compile and link. Run from the repository root.
set -e
out=$1
shift
flags="$*"
warn="-Wall -Wextra -Wpedantic -Werror"
objc="clang -fobjc-runtime=gcc -fblocks -fconstant-string-class=NSConstantString -isystem /usr/include/GNUstep \
 -isystem $(gcc -print-file-name=include) -DGNUSTEP -DGNUSTEP_BASE_LIBRARY=1 -DGNU_RUNTIME=1 -D_NATIVE_OBJC_EXCEPTIONS"
mkdir -p "$out"
clang -fsyntax-only -fobjc-arc -fobjc-runtime=macosx -fblocks -isystem tests/metal/arc -Itests/metal -I. $warn bitnet_metal.m
clang++ -std=c++17 $flags $warn -Itests/metal -c tests/metal/kernels.cpp -o "$out/kernels.o"
clang++ -std=c++17 $flags $warn -Itests/metal tests/test_metal_kernels.cpp "$out/kernels.o" -o "$out/test_metal_kernels" -lm -lpthread
$objc $flags $warn -Itests/metal -I. -c bitnet_metal.m -o "$out/bitnet_metal.o"
$objc $flags $warn -Itests/metal -c tests/metal/Metal.m -o "$out/Metal.o"
clang -std=c99 $flags $warn -c tests/metal/test_metal_forward.c -o "$out/test_metal_forward.o"
clang++ $flags "$out/test_metal_forward.o" "$out/bitnet_metal.o" "$out/Metal.o" "$out/kernels.o" \
    -o "$out/test_metal_forward" -lgnustep-base -lobjc -lm -lpthread
# the bitnet command with --metal (BITNET_METAL, as the Makefile builds it on a Mac), on the stand-in
clang -std=c99 $flags -DBITNET_METAL -Wall -Wextra -Wpedantic -Werror -c tools/bitnet.c -o "$out/bitnet_cli.o"
for src in tools/*.c; do
    [ "$src" = tools/bitnet.c ] && continue
    clang -std=c99 $flags -DBITNET_METAL $warn -c "$src" -o "$out/cli_$(basename "$src" .c).o"
done
clang++ $flags "$out"/bitnet_cli.o $(ls "$out"/cli_*.o 2>/dev/null) "$out/bitnet_metal.o" "$out/Metal.o" "$out/kernels.o" \
    -o "$out/bitnet" -lgnustep-base -lobjc -lm -lpthread
