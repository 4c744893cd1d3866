"""docs/configuration.md is made from the config tables in the code (each
binary's --help-markdown, put together by deploy/gen-config-doc.sh): it
fails here as soon as a table changes and the doc was not regenerated."""
import difflib
import os
import subprocess

from conftest import BUILD, ROOT

BINARIES = ["batchcall-api", "batchcall-worker", "batchcall-scheduler", "batchcall"]


def test_committed_configuration_doc_is_the_generated_one():
    out = subprocess.run([os.path.join(ROOT, "deploy", "gen-config-doc.sh"), BUILD],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
        committed = f.read()
    diff = "".join(difflib.unified_diff(committed.splitlines(True), out.splitlines(True),
                                        "docs/configuration.md", "generated"))
    assert not diff, ("docs/configuration.md is stale: run "
                      "deploy/gen-config-doc.sh build > docs/configuration.md\n" + diff)


def test_every_flag_of_every_binary_is_in_the_doc():
    """The doc lists each binary's flags as its --help does, and each row
    names the flag's environment variable."""
    with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
        doc = f.read()
    for b in BINARIES:
        section = doc.split(f"## {b}\n", 1)[1].split("\n## ", 1)[0]
        helptext = subprocess.run([os.path.join(BUILD, b), "--help"], capture_output=True,
                                  text=True, timeout=30).stdout
        flags = [ln.split()[0] for ln in helptext.splitlines()
                 if ln.startswith("  --") and ln.split()[0] not in ("--help", "--help-markdown")]
        assert len(flags) >= 5, helptext
        for flag in flags:
            row = [ln for ln in section.splitlines() if ln.startswith(f"| `{flag}` |")]
            assert len(row) == 1, (b, flag)
            assert "| `BC_" in row[0], row[0]
