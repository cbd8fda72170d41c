#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets from the repository's own examples into
fuzz/seeds/TARGET/ (not committed: `cargo fuzz cmin` folds them into fuzz/corpus/).
Run from the repository root: python3 fuzz/seed.py"""

import glob
import hashlib
import os
import re
import sys

ROOT = os.getcwd()
OUT = os.path.join(ROOT, "fuzz", "seeds")


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = os.path.join(OUT, target)
    os.makedirs(folder, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(folder, name), "wb") as out:
        out.write(data)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def yaml_blocks(markdown):
    return re.findall(r"```ya?ml\n(.*?)```", markdown, re.S)


def rust_raw_strings(source):
    return [m.group(2) for m in re.finditer(r'b?r(#+)"(.*?)"\1', source, re.S)]


docs = [read(p) for p in sorted(glob.glob("docs/*.md")) + ["README.md"]]
doc_yaml = [block for doc in docs for block in yaml_blocks(doc)]

# Config and rule files, whole: the examples, deploy files, rule files and docs' YAML.
for path in ["examples/vastwatch.yaml", "deploy/vastwatch.yaml", "rules/vast.yaml"]:
    write("load_files", read(path))
for block in doc_yaml:
    write("load_files", block)

# Expressions: every `expr:` / `recover:` in rule files and docs, and the expression
# strings in the expression tests.
exprs = set()
for text in [read("rules/vast.yaml")] + doc_yaml:
    for m in re.finditer(r"^\s*-?\s*(?:expr|recover):\s*(.+?)\s*$", text, re.M):
        exprs.add(m.group(1).strip("'\""))
for path in glob.glob("src/rules/expr/*tests.rs") + ["benches/expr.rs"]:
    for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', read(path)):
        text = m.group(1).replace('\\"', '"')
        if 2 < len(text) < 300 and re.search(r"[<>=()&|]", text):
            exprs.add(text)
for text in exprs:
    write("rule_expr", text)

# Worker-list bodies: the reference document's example, and the decoder's test bodies.
REFERENCE = "/work/shared/reference/vast-worker-list.md"
if os.path.exists(REFERENCE):
    for block in re.findall(r"```json\n(.*?)```", read(REFERENCE), re.S):
        write("vast_response", block)
for path in ["src/poll/decode.rs", "tests/it/faults.rs", "tests/it/polling.rs"]:
    for text in rust_raw_strings(read(path)):
        if text.lstrip()[:1] in "[{":
            write("vast_response", text)

# Scenarios: the built-ins and the docs' scenario blocks.
for path in sorted(glob.glob("src/sim/scenarios/*.yaml")):
    write("scenario", read(path))
for block in yaml_blocks(read("docs/scenarios.md")):
    write("scenario", block)

# Series notation: the test file whole, and every series in it.
test_file = read("rules/tests/vast_test.yaml")
write("series_notation", test_file)
for m in re.finditer(r"^\s+(?:\w+):\s*([-\w.+ ]+x\d+[-\w.+ ]*?)\s*(?:#.*)?$", test_file, re.M):
    write("series_notation", m.group(1))
for text in ["1+1x3", "10-2x2", "_ 1 _x2", "-1+1x1", "1e-1+1e-1x1", "LOADING x2 running _",
             "ok x3 fail x2 ok"]:
    write("series_notation", text)

for target in sorted(os.listdir(OUT)):
    print(target, len(os.listdir(os.path.join(OUT, target))), file=sys.stderr)
