#!/bin/sh
# The fuzz harnesses of tests/fuzz (see README.md there), found by file name: tests/fuzz/fuzz_<name>.c.
#   sh tests/fuzz/fuzz.sh build-replay         ASan+UBSan replay binaries  -> build/fuzz/replay_<name>
#   sh tests/fuzz/fuzz.sh build-fuzz           libFuzzer binaries (clang)  -> build/fuzz/fuzz_<name>
#   sh tests/fuzz/fuzz.sh run SECONDS [NAME..] build-fuzz, then run each harness SECONDS seconds, one at a time
#                                              (FUZZ_NO_BUILD=1: run the binaries already in build/fuzz)
# FUZZ_CC (default clang), FUZZ_CFLAGS (default -O2 -g), FUZZ_LDFLAGS and FUZZ_JOBS (default 1: -fork=N when more)
# can be set.
set -u
cd "$(dirname "$0")/../.."
CC=${FUZZ_CC:-clang}
OPT=${FUZZ_CFLAGS:--O2 -g}
WARN="-std=c99 -Wall -Wextra -Wpedantic -Werror"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
LIBS="-lm -lpthread"
OUTD=build/fuzz
FUZZER_IMPL="-fsanitize=fuzzer-no-link -fsanitize-coverage-ignorelist=tests/fuzz/coverage_ignore.txt"
mkdir -p "$OUTD"

names() {
    for src in tests/fuzz/fuzz_*.c; do
        [ -f "$src" ] || continue
        n=${src#tests/fuzz/fuzz_}
        echo "${n%.c}"
    done
}

# build FLAVOUR IMPL_FLAGS HARNESS_FLAGS EXTRA_OBJ: the implementation once, then each harness.
build() {
    flavour=$1 implflags=$2 hflags=$3 extra=$4 status=0
    $CC $WARN $OPT $SAN $implflags -c tests/fuzz/impl.c -o "$OUTD/impl-$flavour.o" || return 1
    for n in $(names); do
        rm -f "$OUTD/${flavour}_$n"
        if ! $CC $WARN $OPT $SAN $hflags "tests/fuzz/fuzz_$n.c" $extra "$OUTD/impl-$flavour.o" \
            -o "$OUTD/${flavour}_$n" ${FUZZ_LDFLAGS:-} $LIBS; then
            echo "fuzz: building $n ($flavour) failed"
            status=1
        fi
    done
    return $status
}

case "${1:-}" in
build-replay)
    $CC $OPT -fsanitize=address,undefined -c tests/fuzz/replay.c -o "$OUTD/replay-main.o" &&
        build replay "" "" "$OUTD/replay-main.o"
    ;;
build-fuzz)
    build fuzz "$FUZZER_IMPL" "-fsanitize=fuzzer" ""
    ;;
run)
    secs=${2:-60}
    shift 2 2>/dev/null || shift $#
    list=${*:-$(names)}
    [ "${FUZZ_NO_BUILD:-0}" = 1 ] || build fuzz "$FUZZER_IMPL" "-fsanitize=fuzzer" "" || exit 1
    # the harnesses that load files write them to TMPDIR: a tmpfs runs them about three times faster
    [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm
    fail=0
    for n in $list; do
        work="$OUTD/corpus/$n" art="$OUTD/artifacts/$n/"
        mkdir -p "$work" "$art"
        dict=""; [ -f "tests/fuzz/$n.dict" ] && dict="-dict=tests/fuzz/$n.dict"
        opts=""; [ -f "tests/fuzz/$n.options" ] && opts=$(cat "tests/fuzz/$n.options")
        jobs=""; [ "${FUZZ_JOBS:-1}" -gt 1 ] && jobs="-fork=$FUZZ_JOBS -ignore_crashes=1"
        echo "== fuzz $n: $secs s"
        # new inputs go to build/fuzz/corpus/<name>; the committed seeds are read, never written
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            "$OUTD/fuzz_$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$art" $dict $opts $jobs "$work" "tests/fuzz/corpus/$n" 2>&1 | tee "$OUTD/$n.log" |
            grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|ERROR|SUMMARY|stat::|Done [0-9]+ runs" || true
        if ls "$art" | grep -q .; then
            echo "fuzz $n: new findings in $art (copy each to tests/fuzz/crashes/$n/ once fixed)"
            fail=1
        fi
    done
    exit $fail
    ;;
*)
    sed -n '2,7p' "$0"
    exit 2
    ;;
esac
