#!/bin/sh
# README.md and docs/: the README stays within 12 KB, every relative link in them leads to a
# file that exists and, for "file#anchor", to a heading of that file (GitHub's anchor rules), and
# every bn_ / BN_ / BITNET_ name they mention exists in bitnet.h or bitnet_metal.m (a BITNET_ name
# may instead be the command's or the Python binding's: tools/, python/; a renamed API fails here),
# and the README links every page of docs/ (a new page goes in its Features list) and names every
# option macro the header tests (its Build options table).
# Prints "test_docs: N passed, M failed".
cd "$(dirname "$0")/.." || exit 1
python3 - <<'PY'
import glob, os, re, sys
passed = failed = 0
def check(ok, name):
    global passed, failed
    if ok: passed += 1; print("ok   " + name)
    else: failed += 1; print("FAIL " + name)
def anchors(path):
    out = set()
    for line in open(path, encoding="utf-8"):
        m = re.match(r"#+ (.*)", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(a)
    return out
# the product's two files: the header, and the Metal backend's (its bn_metal_* API and kernel names)
header_words = set(re.findall(r"\w+", open("bitnet.h", encoding="utf-8").read() +
                              open("bitnet_metal.m", encoding="utf-8").read()))
# BITNET_ names may also be the command's or the Python binding's (environment variables, build flags)
tool_words = set(w for f in glob.glob("tools/*.[ch]") + glob.glob("python/*.py")
                 for w in re.findall(r"\bBITNET_\w+", open(f, encoding="utf-8").read()))
size = os.path.getsize("README.md")
check(size <= 12 * 1024, "README.md is %d bytes (at most 12288)" % size)
for doc in ["README.md"] + sorted(glob.glob("docs/*.md")):
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", open(doc, encoding="utf-8").read()):
        if re.match(r"[a-z]+:", target): continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        if not os.path.exists(full): bad.append(target)
        elif anchor and full.endswith(".md") and anchor not in anchors(full): bad.append(target)
    check(not bad, "%s: links resolve%s" % (doc, " (broken: %s)" % ", ".join(bad) if bad else ""))
    names = set(re.findall(r"\b(?:bn_|BN_|BITNET_)\w*[A-Za-z0-9]\b", open(doc, encoding="utf-8").read()))
    unknown = sorted(n for n in names if n not in header_words and n not in tool_words)
    check(not unknown, "%s: API names exist in bitnet.h%s" % (doc, " (not found: %s)" % ", ".join(unknown) if unknown else ""))
readme = open("README.md", encoding="utf-8").read()
orphans = [d for d in sorted(glob.glob("docs/*.md")) if "(%s" % d not in readme]
check(not orphans, "README.md links every page of docs/%s" % (" (missing: %s)" % ", ".join(orphans) if orphans else ""))
header = open("bitnet.h", encoding="utf-8").read()
options = set()
for line in re.findall(r"(?m)^\s*#\s*(?:if|elif|ifdef|ifndef)\b.*", header):
    options |= set(re.findall(r"\b(BITNET_\w+)", line))
options |= set(re.findall(r"(?m)^\s*#\s*ifndef\s+(BN_[A-Z]\w*)", header))
options -= {"BITNET_H", "BITNET_IMPLEMENTATION_DONE", "BN_API"}  # guards; BN_API follows BITNET_STATIC
unnamed = sorted(o for o in options if o not in readme)
check(not unnamed, "README.md names every option macro (%d)%s" % (len(options), " (missing: %s)" % ", ".join(unnamed) if unnamed else ""))
print("test_docs: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PY
