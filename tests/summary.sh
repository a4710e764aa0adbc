#!/bin/sh
# Adds up the counts tests/run.sh recorded and prints the closing line, after
# what each failing step said of its failures (tests/run.sh keeps those lines).
RESULTS=$1
[ -s "$RESULTS.fail" ] && { echo "what failed:"; cat "$RESULTS.fail"; }
awk '{ p += $2; f += $3; if ($3 > 0) bad = bad "  " $1 " (" $3 " failed)\n" }
     END { if (bad != "") printf "failures:\n%s", bad; printf "%d passed, %d failed\n", p, f; exit (f > 0) }' "$RESULTS"
