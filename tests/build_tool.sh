#!/bin/sh
# Builds the `bitnet` command for the script tests into build/tool-test/, incrementally (an
# object is rebuilt when its tools/*.c, a tools/*.h or bitnet.h is newer):
#   bitnet          as `make` builds it
#   bitnet-nocurl   without the libcurl loader (BITNET_NO_DLOPEN): nothing but a download needs it
# Exits non-zero when a build fails.
cd "$(dirname "$0")/.." || exit 1
OBJ=build/tool-test
CFLAGS="-std=c99 -O2 -Wall -Wextra -Wpedantic -Werror"
mkdir -p "$OBJ"
stale() { # stale OBJECT SOURCE
    [ -f "$1" ] || return 0
    for dep in "$2" bitnet.h tools/*.h; do [ "$dep" -nt "$1" ] && return 0; done
    return 1
}
for src in tools/*.c; do
    o="$OBJ/$(basename "$src" .c).o"
    if stale "$o" "$src"; then cc $CFLAGS -c "$src" -o "$o" || exit 1; fi
done
if stale "$OBJ/curl-nodl.o" tools/curl.c; then cc $CFLAGS -DBITNET_NO_DLOPEN -c tools/curl.c -o "$OBJ/curl-nodl.o" || exit 1; fi
objs=""
for src in tools/*.c; do objs="$objs $OBJ/$(basename "$src" .c).o"; done
cc $objs -o "$OBJ/bitnet" -lm -lpthread -ldl || exit 1
cc $(echo $objs | tr ' ' '\n' | grep -v '/curl.o$') "$OBJ/curl-nodl.o" -o "$OBJ/bitnet-nocurl" -lm -lpthread || exit 1
