#!/bin/sh
# The `bitnet` command's option tables (tools/cli.h): usage errors exit 2 with a message that
# names the option, every option in the sources' tables appears in its command's --help, and
# docs/cli.md is what `bitnet help --markdown` writes. No model is loaded: options are parsed
# before anything else, so a run that gets past parsing ends at the missing model (exit 3).
# Prints "test_cli_options: N passed, M failed".
cd "$(dirname "$0")/.." || exit 1
make -s build/bitnet >/dev/null || { echo "test_cli_options: 0 passed, 1 failed"; exit 1; }
B=build/bitnet
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bitnet-options.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
NOMODEL="$TMP/no-model"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# usage NAME RC TEXT CMD...: exits with RC and, when TEXT is given, says TEXT on stderr
usage() {
    name=$1 want=$2 text=$3
    shift 3
    "$@" > "$TMP/out" 2> "$TMP/err"
    rc=$?
    if [ "$rc" -ne "$want" ]; then bad "$name (exit $rc, want $want)"; sed 's/^/    /' "$TMP/err" | head -3
    elif [ -n "$text" ] && ! grep -qF -- "$text" "$TMP/err"; then bad "$name (stderr lacks '$text')"; sed 's/^/    /' "$TMP/err" | head -3
    else ok "$name"; fi
}

# --- each kind of mistake: exit 2, the option named
usage "unknown option" 2 "'--bogus'" $B run -m "$NOMODEL" -p hi --bogus
usage "unknown short option" 2 "'-q'" $B ppl -q
usage "missing value" 2 "--temp needs a value" $B run -m "$NOMODEL" -p hi --temp
usage "not an integer" 2 "-n expects an integer" $B run -m "$NOMODEL" -p hi -n many
usage "integer below its range" 2 "--top-k expects an integer >= 0, got '-3'" $B run -m "$NOMODEL" -p hi --top-k -3
usage "integer above its range" 2 "--beams expects an integer from 1 to 256" $B run -m "$NOMODEL" -p hi --beams 300
usage "integer with trailing text" 2 "--threads" $B run -m "$NOMODEL" -p hi --threads 4x
usage "integer overflow" 2 "-c expects an integer" $B run -m "$NOMODEL" -p hi -c 99999999999999999999
usage "float out of range" 2 "--top-p expects a number from 0 to 1, got '1.5'" $B run -m "$NOMODEL" -p hi --top-p 1.5
usage "float excluded minimum" 2 "--repeat-penalty expects a number > 0" $B chat -m "$NOMODEL" --repeat-penalty 0
usage "float not a number" 2 "--temp expects a number" $B run -m "$NOMODEL" -p hi --temp warm
usage "float nan" 2 "--min-p" $B run -m "$NOMODEL" -p hi --min-p nan
usage "bad enum value" 2 "--kv expects one of f32, f16, got 'q8'" $B run -m "$NOMODEL" -p hi --kv q8
usage "bad enum value (bench)" 2 "--layout expects one of auto, i2, tq1" $B bench --layout i3
usage "bad enum value (chat)" 2 "--template" $B chat -m "$NOMODEL" --template jinja
usage "flag given a value" 2 "--ignore-eos takes no value" $B run -m "$NOMODEL" -p hi --ignore-eos=1
usage "--name=value with a bad value" 2 "--temp" $B run -m "$NOMODEL" -p hi --temp=hot
usage "unexpected operand" 2 "unexpected argument 'stray'" $B run -m "$NOMODEL" -p hi stray
usage "too many operands" 2 "too many arguments" $B tokenize -m "$NOMODEL" one two
usage "rounds below 1" 2 "-r expects an integer from 1" $B bench-batch -m "$NOMODEL" -r 0
stops=""
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17; do stops="$stops --stop s$i"; done
usage "repeatable option over its limit" 2 "at most 16 --stop" $B run -m "$NOMODEL" -p hi $stops
usage "usage error names the command" 2 "bitnet ppl:" $B ppl --bos=yes

# --- accepted forms get past parsing (and stop at the missing model: exit 3)
usage "--name=value" 3 "" $B run -m "$NOMODEL" -p hi --temp=0.5 --top-k=0 --kv=f16
usage "options after operands" 3 "" $B tokenize 'some text' -m "$NOMODEL"
usage "16 --stop strings" 3 "" $B run -m "$NOMODEL" -p hi $(echo "$stops" | sed 's/ --stop s17//')
usage "range ends are accepted" 3 "" $B run -m "$NOMODEL" -p hi --top-p 1 --min-p 0 --beams 256 -n -1
usage "-- ends the options" 3 "" $B tokenize -m "$NOMODEL" -- --not-an-option
usage "every enum value" 3 "" $B run -m "$NOMODEL" -p hi --layout tq1 --head i8 --kv f16 --kernel scalar

# --- every option of every table appears in its command's --help. The tables are read from
# the sources here (an independent reading of the CLI_* rows), the help from the binary.
python3 - "$B" > "$TMP/help.log" <<'EOF'
import re, subprocess, sys, glob
src = "".join(open(f).read() for f in sorted(glob.glob("tools/*.c")))
tables = {}  # table name -> ([spellings], [included tables])
for m in re.finditer(r"const cli_opt (\w+)\[\] = \{(.*?)CLI_END\}", src, re.S):
    body = m.group(2)
    names = [n for k, n in re.findall(r"CLI_(FLAG|FLAG_SET|INT|FLOAT|FLOAT_ABOVE|STRING|ENUM|LIST)\(\s*\"([^\"]+)\"", body)]
    incs = re.findall(r"CLI_INCLUDE\([^,]+,\s*\w+,\s*[\w.]+,\s*(\w+)\)", body) + re.findall(r"CLI_ALSO\((\w+)\)", body)
    tables[m.group(1)] = (names, incs)
def spellings(t):
    names, incs = tables[t]
    out = [s.strip() for n in names for s in n.split(",")]
    for i in incs: out += spellings(i)
    return out
cmds = re.findall(r"const cli_command cmd_\w+ = \{\s*\"([\w-]+)\".*?\b(\w+),\s*sizeof\(", src, re.S)
bad = 0
for name, table in cmds:
    help = subprocess.run([sys.argv[1], name, "--help"], capture_output=True, text=True).stdout
    listed = set(re.findall(r"(?<![\w-])(--?[\w-]+)", help))
    for s in spellings(table):
        if s not in listed:
            print("missing from bitnet %s --help: %s" % (name, s)); bad += 1
print("commands %d, checked %d options" % (len(cmds), sum(len(spellings(t)) for _, t in cmds)))
sys.exit(1 if bad or len(cmds) < 8 else 0)
EOF
if [ $? -eq 0 ]; then ok "--help lists every option ($(tail -n 1 "$TMP/help.log"))"; else bad "--help lists every option"; cat "$TMP/help.log"; fi

# --- help: every command's, and `bitnet help COMMAND` is the same text
for c in $($B help | sed -n 's/^  \([a-z-]*\) .*/\1/p' | grep -v '^help$'); do
    $B "$c" --help > "$TMP/h1" 2>&1 && $B help "$c" > "$TMP/h2" 2>&1 && cmp -s "$TMP/h1" "$TMP/h2" &&
        grep -q "^usage: bitnet $c " "$TMP/h1" && ok "help $c" || bad "help $c"
done
usage "help of an unknown command" 2 "unknown command" $B help frobnicate

# --- docs/cli.md is current
$B help --markdown > "$TMP/cli.md"
if cmp -s "$TMP/cli.md" docs/cli.md; then ok "docs/cli.md = bitnet help --markdown"
else bad "docs/cli.md is stale: run  build/bitnet help --markdown > docs/cli.md"; diff "$TMP/cli.md" docs/cli.md | head -10; fi

echo "test_cli_options: $pass passed, $fail failed"
[ $fail -eq 0 ]
