"""The shape a maintainer can live in (issue 16), kept by a test: no C
source file over 900 lines, no function over 120, and no SQL in a header
(statements live in the .c that runs them or in .sql files embedded at
build time; docs/design-notes.md). Needs no stack."""
import json
import os
import re
import subprocess

from conftest import ROOT

DIRS = ("api", "cli", "common", "scheduler", "worker", "tests/sim", "examples")
MAX_FILE_LINES = 900
MAX_FUNCTION_LINES = 120
SQL = re.compile(r'"\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|WITH)\s', re.I)


def sources(*exts):
    out = subprocess.run(["git", "ls-files", *DIRS], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    return [p for p in out if p.endswith(exts)]


def test_no_source_file_is_over_900_lines():
    long = {}
    for p in sources(".c", ".h"):
        with open(os.path.join(ROOT, p), encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n > MAX_FILE_LINES:
            long[p] = n
    assert long == {}


def test_no_function_is_over_120_lines():
    out = subprocess.run(["ctags", "-x", "--c-kinds=f", "--fields=+ne", "--output-format=json",
                          *sources(".c")], cwd=ROOT, capture_output=True, text=True, check=True)
    long = {}
    for line in out.stdout.splitlines():
        tag = json.loads(line)
        if "end" in tag and tag["end"] - tag["line"] + 1 > MAX_FUNCTION_LINES:
            long[f"{tag['path']}:{tag['name']}"] = tag["end"] - tag["line"] + 1
    assert long == {}


def test_no_header_holds_sql():
    found = {}
    for p in sources(".h"):
        with open(os.path.join(ROOT, p), encoding="utf-8") as f:
            hits = [i for i, line in enumerate(f, 1) if SQL.search(line)]
        if hits:
            found[p] = hits
    assert found == {}
