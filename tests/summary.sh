#!/bin/sh
# Adds up the counts tests/run.sh recorded and prints the closing line.
RESULTS=$1
awk '{ p += $2; f += $3; if ($3 > 0) bad = bad "  " $1 " (" $3 " failed)\n" }
     END { if (bad != "") printf "failures:\n%s", bad; printf "%d passed, %d failed\n", p, f; exit (f > 0) }' "$RESULTS"
