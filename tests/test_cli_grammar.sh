#!/bin/sh
# `bitnet run` and `bitnet chat` with --grammar, --json-schema, --json and --prompt-cache on
# models/shakespeare: outputs checked by Python (json, the schema validator of
# tests/grammar_check.py, the command set), bad grammars and schemas refused with exit status 2
# and their line / keyword, and a prompt cache that gives the same text as no cache.
# Prints "test_cli_grammar: N passed, M failed".
cd "$(dirname "$0")/.." || exit 1
PASS=0
FAIL=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bitnet-cli-grammar.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
BIN=build/bitnet
M=models/shakespeare
mkdir -p build
if ! cc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror tools/*.c -o "$BIN" -lm -lpthread; then
    echo "test_cli_grammar: 0 passed, 1 failed"
    exit 1
fi
ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; }
check() { if "$@" > /dev/null 2>&1; then ok "$NAME"; else bad "$NAME"; fi; }

cat > "$TMP/commands.gbnf" <<'EOF'
# a command: verb and object
root   ::= verb " " object
verb   ::= "go" | "look" | "take"
object ::= "north" | "south" | "lamp"
EOF
cat > "$TMP/npc.json" <<'EOF'
{"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}, "mood": {"enum": ["calm", "angry"]},
 "hp": {"type": "integer"}}, "required": ["name", "mood", "hp"], "additionalProperties": false}
EOF
cat > "$TMP/valid.py" <<'EOF'
import json, sys
sys.path.insert(0, "tests")
from grammar_check import validate
kind, path = sys.argv[1], sys.argv[2]
for line in open(path, encoding="utf-8").read().split("\n")[:-1]:
    if kind == "commands":
        assert line in {v + " " + o for v in ("go", "look", "take") for o in ("north", "south", "lamp")}, line
    elif kind == "object":
        assert isinstance(json.loads(line), dict), line
    elif kind == "prefix":
        from grammar_check import json_prefix_ok
        assert line.lstrip().startswith("{") and json_prefix_ok(line), line
    else:
        schema = json.load(open(kind))
        errs = validate(json.loads(line), schema, schema)
        assert not errs, (line, errs)
EOF

# --- outputs under each constraint, several seeds and temperatures (one line per run)
for s in 1 2 3 4 5 6; do
    $BIN run -m $M -p "ROMEO:" --grammar "$TMP/commands.gbnf" --seed $s --temp 1.2 2>/dev/null >> "$TMP/commands.out"
    $BIN run -m $M -p "ROMEO:" --json-schema "$TMP/npc.json" --seed $s --temp 0.$s -n 240 2>/dev/null | tr -d '\n' >> "$TMP/npc.out"
    echo >> "$TMP/npc.out"
    # --json has no longest text: one that stops at -n must be the start of a JSON object
    $BIN run -m $M -p "{" --json --seed $s -n 200 2>"$TMP/err.$s" | tr -d '\n' > "$TMP/json.$s"
    if grep -q "stopped: eos" "$TMP/err.$s"; then cat "$TMP/json.$s" >> "$TMP/json.out"; echo >> "$TMP/json.out"
    else cat "$TMP/json.$s" >> "$TMP/json.cut"; echo >> "$TMP/json.cut"; fi
done
NAME="run --grammar: every output a command"; check python3 "$TMP/valid.py" commands "$TMP/commands.out"
NAME="run --json-schema: every output valid against the schema"; check python3 "$TMP/valid.py" "$TMP/npc.json" "$TMP/npc.out"
NAME="run --json: the texts that ended are JSON objects (at least 3 of 6)"
check sh -c "[ \$(wc -l < '$TMP/json.out') -ge 3 ] && python3 '$TMP/valid.py' object '$TMP/json.out'"
touch "$TMP/json.cut"
NAME="run --json: the texts cut at -n are starts of JSON objects"; check python3 "$TMP/valid.py" prefix "$TMP/json.cut"

# --- bad grammars and schemas: exit status 2, the line and column or the keyword named
printf 'root ::= verb\nverb ::= ("go" | "take"\n' > "$TMP/bad.gbnf"
$BIN run -m $M -p "x" --grammar "$TMP/bad.gbnf" > /dev/null 2> "$TMP/err"
rc=$?
NAME="bad grammar: exit 2 and line 2, column 10"; check sh -c "[ $rc -eq 2 ] && grep -q 'line 2, column 10' '$TMP/err'"
printf 'root ::= a\na ::= a "x" | "y"\n' > "$TMP/left.gbnf"
$BIN run -m $M -p "x" --grammar "$TMP/left.gbnf" > /dev/null 2> "$TMP/err"
rc=$?
NAME="left recursion: exit 2, named"; check sh -c "[ $rc -eq 2 ] && grep -q 'left recursion' '$TMP/err'"
echo '{"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}}' > "$TMP/bad.json"
$BIN run -m $M -p "x" --json-schema "$TMP/bad.json" > /dev/null 2> "$TMP/err"
rc=$?
NAME="unsupported keyword: exit 2, keyword and place named"
check sh -c "[ $rc -eq 2 ] && grep -q \"/properties/age: keyword 'minimum' is not supported\" '$TMP/err'"
$BIN run -m $M --ids 1,2 --json > /dev/null 2> "$TMP/err"
rc=$?
NAME="--json with --ids (no tokenizer): exit 2"; check sh -c "[ $rc -eq 2 ]"
$BIN run -m $M -p x --json --grammar "$TMP/commands.gbnf" > /dev/null 2> "$TMP/err"
rc=$?
NAME="--json and --grammar together: exit 2"; check sh -c "[ $rc -eq 2 ]"

# --- --prompt-cache: written, then reused; the text is the one without a cache
P="JULIET: O Romeo, Romeo, wherefore art thou Romeo?"
$BIN run -m $M -p "$P" -n 24 --temp 0 > "$TMP/nocache" 2>/dev/null
$BIN run -m $M -p "$P" -n 24 --temp 0 --prompt-cache "$TMP/p.bin" > "$TMP/c1" 2> "$TMP/e1"
$BIN run -m $M -p "$P" -n 24 --temp 0 --prompt-cache "$TMP/p.bin" > "$TMP/c2" 2> "$TMP/e2"
NAME="prompt cache written on the first run"; check sh -c "[ -s '$TMP/p.bin' ] && grep -q 'prompt cache: 0 of' '$TMP/e1'"
NAME="prompt cache reused on the second run"; check grep -q "prompt cache: 15 of 16 prompt tokens" "$TMP/e2"
NAME="prompt cache: the same text as without"; check sh -c "cmp -s '$TMP/nocache' '$TMP/c1' && cmp -s '$TMP/nocache' '$TMP/c2'"
$BIN run -m $M -p "$P Speak" -n 24 --temp 0 > "$TMP/nocache2" 2>/dev/null
$BIN run -m $M -p "$P Speak" -n 24 --temp 0 --prompt-cache "$TMP/p.bin" > "$TMP/c3" 2> "$TMP/e3"
NAME="prompt cache: a longer prompt reuses the shared start"; check sh -c "grep -q 'prompt cache: 15 of 19 prompt tokens' '$TMP/e3' && cmp -s '$TMP/nocache2' '$TMP/c3'"
head -c 1000 "$TMP/p.bin" > "$TMP/cut.bin"
$BIN run -m $M -p "$P" -n 24 --temp 0 --prompt-cache "$TMP/cut.bin" > "$TMP/c4" 2> "$TMP/e4"
NAME="prompt cache: a truncated file is not used and is written again"
check sh -c "grep -q 'not used.*truncated' '$TMP/e4' && cmp -s '$TMP/nocache' '$TMP/c4' && [ \$(wc -c < '$TMP/cut.bin') -gt 1000 ]"
$BIN run -m tests/fixtures/hf/tiny-mha-untied/packed --ids 1,2,3,4 -n 2 --temp 0 --prompt-cache "$TMP/other.bin" > /dev/null 2>&1
$BIN run -m $M -p "$P" -n 24 --temp 0 --prompt-cache "$TMP/other.bin" > "$TMP/c5" 2> "$TMP/e5"
NAME="prompt cache: another model's file is not used"; check sh -c "grep -q 'made for another model' '$TMP/e5' && cmp -s '$TMP/nocache' '$TMP/c5'"

# --- chat: each reply a command (the grammar starts over each turn); the cache file reused
printf 'go\nagain\n' | $BIN chat -m $M --template llama3 --grammar "$TMP/commands.gbnf" --seed 3 --prompt-cache "$TMP/chat.bin" \
    > "$TMP/chat.out" 2> "$TMP/chat.err"
NAME="chat --grammar: two replies, each a command"; check sh -c "[ \$(wc -l < '$TMP/chat.out') -eq 2 ] && python3 '$TMP/valid.py' commands '$TMP/chat.out'"
printf 'go\n' | $BIN chat -m $M --template llama3 --grammar "$TMP/commands.gbnf" --seed 3 -v --prompt-cache "$TMP/chat.bin" \
    > "$TMP/chat2.out" 2> "$TMP/chat2.err"
NAME="chat --prompt-cache: the saved conversation's shared start is reused"
check sh -c "grep -q 'prompt cache: [1-9][0-9]* tokens from' '$TMP/chat2.err' && grep 'cache: reusing' '$TMP/chat2.err' | grep -qv 'reusing 0 '"
NAME="chat --prompt-cache: the same first reply"; check sh -c "[ \"\$(head -n 1 '$TMP/chat.out')\" = \"\$(cat '$TMP/chat2.out')\" ]"

echo "test_cli_grammar: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
