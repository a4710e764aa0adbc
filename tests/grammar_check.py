#!/usr/bin/env python3
"""Checks texts generated under grammars by test_grammar.c, with parsers written
here, independently of bitnet.h: Python's json module and a JSON Schema
validator written from the specification (draft 2020-12, the keywords the
library supports; formats per RFC 3339 and RFC 4122), a recursive-descent
parser for the arithmetic grammar, regular expressions for the others.

    python3 tests/grammar_check.py FILE.jsonl

Each line: {"case": ..., "check": ..., "schema": ..., "reason": ..., "text": ...}.
A text that stopped at the token limit ("max tokens") must be the start of a
valid text (only for cases whose grammar has no bound); any other must be whole.
Exit status 1 and a line per failure when any text is invalid."""
import datetime
import json
import re
import sys

# ---- JSON Schema (the subset) -------------------------------------------------


def json_type(v, t):
    if t == "null":
        return v is None
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "string":
        return isinstance(v, str)
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    raise ValueError("unknown type " + t)


def json_equal(a, b):
    """JSON Schema equality: numbers by value, booleans apart from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) == type(b) and a == b


def days_in_month(y, m):
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def is_date(s):  # RFC 3339 full-date
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", s)
    if not m:
        return False
    y, mo, d = (int(g) for g in m.groups())
    return 1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo)


def is_time(s):  # RFC 3339 full-time
    m = re.fullmatch(r"(\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))", s)
    if not m:
        return False
    h, mi, se = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if h > 23 or mi > 59 or se > 60:
        return False
    if m.group(6) is not None and (int(m.group(6)) > 23 or int(m.group(7)) > 59):
        return False
    return True


def is_date_time(s):
    parts = re.split("[Tt]", s)
    return len(parts) == 2 and is_date(parts[0]) and is_time(parts[1])


def is_uuid(s):  # RFC 4122 string form
    return re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", s) is not None


FORMATS = {"date": is_date, "time": is_time, "date-time": is_date_time, "uuid": is_uuid}


def resolve(root, ref):
    assert ref.startswith("#")
    node = root
    for tok in ref[2:].split("/") if len(ref) > 1 else []:
        tok = tok.replace("~1", "/").replace("~0", "~")
        node = node[int(tok)] if isinstance(node, list) else node[tok]
    return node


def validate(v, s, root, path="$"):
    """The list of errors of instance v against schema s."""
    if s is True:
        return []
    if s is False:
        return [path + ": false schema"]
    errs = []
    if "$ref" in s:
        errs += validate(v, resolve(root, s["$ref"]), root, path)
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(json_type(v, t) for t in types):
            errs.append("%s: %r is not of type %s" % (path, v, types))
    if "enum" in s and not any(json_equal(v, e) for e in s["enum"]):
        errs.append("%s: %r not in enum" % (path, v))
    if "const" in s and not json_equal(v, s["const"]):
        errs.append("%s: %r is not the const" % (path, v))
    if "anyOf" in s and not any(not validate(v, sub, root, path) for sub in s["anyOf"]):
        errs.append("%s: %r matches no anyOf branch" % (path, v))
    if "oneOf" in s:
        n = sum(1 for sub in s["oneOf"] if not validate(v, sub, root, path))
        if n != 1:
            errs.append("%s: %r matches %d oneOf branches" % (path, v, n))
    for sub in s.get("allOf", []):
        errs += validate(v, sub, root, path)
    if isinstance(v, dict):
        props = s.get("properties", {})
        for k, sub in props.items():
            if k in v:
                errs += validate(v[k], sub, root, path + "." + k)
        for k in s.get("required", []):
            if k not in v:
                errs.append("%s: required %r missing" % (path, k))
        extra = [k for k in v if k not in props]
        add = s.get("additionalProperties", True)
        if add is False and extra:
            errs.append("%s: additional properties %r" % (path, extra))
        elif isinstance(add, dict):
            for k in extra:
                errs += validate(v[k], add, root, path + "." + k)
    if isinstance(v, list):
        if "items" in s:
            for i, x in enumerate(v):
                errs += validate(x, s["items"], root, "%s[%d]" % (path, i))
        if len(v) < s.get("minItems", 0) or len(v) > s.get("maxItems", len(v)):
            errs.append("%s: %d items" % (path, len(v)))
    if isinstance(v, str):
        if len(v) < s.get("minLength", 0) or len(v) > s.get("maxLength", len(v)):
            errs.append("%s: length %d" % (path, len(v)))
        if "pattern" in s and not re.search(s["pattern"], v):
            errs.append("%s: %r does not match %r" % (path, v, s["pattern"]))
        if "format" in s and not FORMATS[s["format"]](v):
            errs.append("%s: %r is not a %s" % (path, v, s["format"]))
    return errs


def json_prefix_ok(t):
    """t is the start of some JSON text: a scan that tracks strings and brackets."""
    stack, i, n = [], 0, len(t)
    in_str = esc = False
    for c in t:
        if in_str:
            if esc:
                if c not in '"\\/bfnrtu':
                    return False
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
            elif ord(c) < 0x20:
                return False
        elif c == '"':
            in_str = True
        elif c in "{[":
            stack.append(c)
        elif c in "}]":
            if not stack or "{[".index(stack.pop()) != "}]".index(c):
                return False
        elif c not in " \t\n\r,:-+.eE0123456789truefalsn":
            return False
    # close what is open and see that json accepts the completion of the last value
    return True


# ---- the other grammars --------------------------------------------------------


class Arith:
    """expr ::= term (("+" | "-") term)*; term ::= factor (("*" | "/") factor)*; factor ::= number | "(" expr ")"."""

    def __init__(self, s):
        self.s, self.i = s, 0

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def number(self):
        j = self.i
        while self.peek().isdigit() and self.peek() in "0123456789":
            self.i += 1
        if self.i == j:
            raise ValueError("number expected at %d" % j)

    def factor(self):
        if self.peek() == "(":
            self.i += 1
            self.expr()
            if self.peek() != ")":
                raise ValueError("')' expected at %d" % self.i)
            self.i += 1
        else:
            self.number()

    def term(self):
        self.factor()
        while self.peek() in ("*", "/") and self.peek():
            self.i += 1
            self.factor()

    def expr(self):
        self.term()
        while self.peek() in ("+", "-") and self.peek():
            self.i += 1
            self.term()

    @staticmethod
    def ok(s):
        p = Arith(s)
        try:
            p.expr()
        except ValueError:
            return False
        return p.i == len(s)


COMMANDS = {v + " " + o for v in ("go", "look", "take") for o in ("north", "south", "lamp")} | {"quit"}


def check(case):
    t, c, reason = case["text"], case["check"], case["reason"]
    if reason == "max tokens":
        if not case.get("unbounded"):
            return "stopped at the token limit under a bounded grammar"
        return None if json_prefix_ok(t) else "not the start of a JSON text"
    if reason not in ("eos", "grammar complete"):
        return "stopped for %r" % reason
    if c == "schema":
        try:
            v = json.loads(t)
        except ValueError as e:
            return "json: %s" % e
        errs = validate(v, case["schema"], case["schema"])
        return "; ".join(errs) if errs else None
    if c == "json":
        try:
            json.loads(t)
        except ValueError as e:
            return "json: %s" % e
        return None
    if c == "arith":
        return None if Arith.ok(t) else "not an arithmetic expression"
    if c == "commands":
        return None if t in COMMANDS else "not a command"
    if c.startswith("re:"):
        return None if re.fullmatch(c[3:], t) else "does not match " + c[3:]
    return "unknown check " + c


def main():
    bad = total = 0
    per_case = {}
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            case = json.loads(line)
            total += 1
            per_case[case["case"]] = per_case.get(case["case"], 0) + 1
            err = check(case)
            if err:
                bad += 1
                print("FAIL %s (%s): %s: %r" % (case["case"], case.get("run", ""), err, case["text"]))
    print("grammar_check: %d texts in %d cases, %d invalid" % (total, len(per_case), bad))
    sys.exit(1 if bad or not total else 0)


if __name__ == "__main__":
    main()
