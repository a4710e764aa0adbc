#!/bin/sh
# Runs test programs and records their counts for tests/summary.sh.
#   tests/run.sh RESULTS LABEL CMD...    run CMD; count its "suite: N passed, M failed" line,
#                                        or 1 pass / 1 fail by exit status if it prints none
# The lines of a failing step that say what failed (FAIL..., not ok..., errors, sanitizer
# reports) also go to RESULTS.fail, which tests/summary.sh repeats above the closing line,
# so that the end of a long log names what failed.
RESULTS=$1; LABEL=$2; shift 2
out=$("$@" 2>&1); rc=$?
printf '%s\n' "$out" | sed "s|^|[$LABEL] |"
line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_./-]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
if [ -n "$line" ]; then
    p=$(printf '%s' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/')
    f=$(printf '%s' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "[$LABEL] exited with status $rc"; fi
else
    if [ "$rc" -eq 0 ]; then p=1; f=0; else p=0; f=1; echo "[$LABEL] FAILED (exit status $rc)"; fi
fi
echo "$LABEL $p $f" >> "$RESULTS"
if [ "$f" -gt 0 ]; then
    what=$(printf '%s\n' "$out" | grep -E -A 3 '^ *(FAIL|not ok)|ERROR|runtime error|error:|did not' | head -n 40)
    [ -n "$what" ] || what=$(printf '%s\n' "$out" | tail -n 20)
    { echo "[$LABEL]"; [ -z "$line" ] && echo "  exit status $rc"; printf '%s\n' "$what" | sed 's/^/  /'; } >> "$RESULTS.fail"
fi
exit 0
